//! `cod chain verify | export | import` (through the daemon when it runs).

use super::backend::Backend;
use super::{CmdError, CmdResult, Output};
use crate::fsutil;
use crate::nodedir::NodeDir;
use serde_json::json;
use std::path::Path;

pub fn verify(out: &Output, node: Option<&Path>) -> CmdResult {
    let dir = NodeDir::find(node)?;
    let report = Backend::open(&dir)?.verify(&dir)?;
    let mut human = format!(
        "records    {} ({} applied)\naccounts   {}\nissued     {}\ncheckpoint {}\n",
        report.records,
        report.applied,
        report.accounts,
        json!(report.issued),
        report
            .checkpoint_period
            .map_or("none yet".to_string(), |p| format!("period {p}")),
    );
    for f in &report.forks {
        human.push_str(&format!("fork (settled): {f}\n"));
    }
    for p in &report.problems {
        human.push_str(&format!("PROBLEM: {p}\n"));
    }
    human.push_str(if report.ok() {
        "chain OK\n"
    } else {
        "chain has problems\n"
    });
    out.emit(human, &report);
    if report.ok() {
        Ok(())
    } else {
        Err(CmdError::msg(format!(
            "chain verify found {} problem(s)",
            report.problems.len()
        )))
    }
}

pub fn export(out: &Output, node: Option<&Path>, file: &Path) -> CmdResult {
    let dir = NodeDir::find(node)?;
    if file.exists() {
        return Err(fsutil::FsError::Exists(file.to_path_buf()).into());
    }
    // Written where it goes, as the records are read (by the daemon, when it runs), and
    // renamed into place once whole.
    let tmp = fsutil::temp_beside(file, 0o644)?;
    let records = Backend::open(&dir)?.export_into(&tmp)?;
    let bytes = tmp
        .as_file()
        .metadata()
        .map_err(fsutil::io_err(file))?
        .len();
    fsutil::persist(tmp, file, false)?;
    out.emit(
        format!("exported {records} records to {}\n", file.display()),
        json!({"records": records, "file": file, "bytes": bytes}),
    );
    Ok(())
}

pub fn import(out: &Output, node: Option<&Path>, file: &Path) -> CmdResult {
    let dir = NodeDir::find(node)?;
    let report = Backend::open_writable(&dir)?
        .import_file(file)
        .map_err(|e| CmdError {
            code: e.code,
            error: e.error.context(file.display().to_string()),
        })?;
    let refused = &report.refused;
    out.emit(
        format!(
            "{} records read: {} added, {} already held, {} waiting for missing records, {} refused\nchain now holds {} applied records\n",
            report.read, report.added, report.duplicate, report.pending, refused.len(), report.applied_total
        ),
        &report,
    );
    if refused.is_empty() {
        Ok(())
    } else {
        Err(CmdError::msg(format!(
            "{} record(s) refused:\n  {}",
            refused.len(),
            refused.join("\n  ")
        )))
    }
}

/// `cod chain torrents [--out DIR]`: what the daemon seeds of the chain as torrents and the
/// DHT item naming it; with `--out`, the files and their `.torrent` files, for any client.
pub fn torrents(out: &Output, node: Option<&Path>, into: Option<&Path>) -> CmdResult {
    let dir = NodeDir::find(node)?;
    let mut d = super::backend::daemon(&dir)?;
    let v: crate::views::TorrentsView = d.ask(crate::control::ask::Torrents {})?;
    if !v.enabled {
        return Err(CmdError::msg(
            "this node seeds no archive torrents: node.ini turns them off ([archive] torrents = false) or the DHT",
        ));
    }
    let mut h = format!(
        "ledger {}\nDHT item (BEP 44): key {} salt {} (target {})\n",
        v.ledger, v.key, v.salt, v.target
    );
    match &v.item {
        Some(i) => h.push_str(&format!(
            "  newest seen: index {}, {} records\n",
            i.index, i.records
        )),
        None => h.push_str("  not seen on the DHT yet\n"),
    }
    let files: Vec<&crate::views::TorrentFile> = v.index.iter().chain(&v.segments).collect();
    match &v.index {
        Some(i) => h.push_str(&format!(
            "seeding an index of {} records in {} segments:\n",
            i.records,
            v.segments.len()
        )),
        None => h.push_str("nothing written yet\n"),
    }
    for f in &files {
        h.push_str(&format!(
            "  {}  {} records, {} bytes\n    {}\n",
            f.name, f.records, f.bytes, f.magnet
        ));
    }
    if let Some(into) = into {
        std::fs::create_dir_all(into).map_err(fsutil::io_err(into))?;
        for f in &files {
            let data = std::fs::read(&f.path).map_err(fsutil::io_err(&f.path))?;
            let info = crate::package::Info::of(&f.name, &data, &mut |_| {});
            if info.infohash().to_string() != f.infohash {
                return Err(CmdError::msg(format!(
                    "{} was rewritten meanwhile; run the command again",
                    f.path.display()
                )));
            }
            fsutil::write_atomic(&into.join(&f.name), &data, 0o644, true)?;
            let torrent = into.join(format!("{}.torrent", f.name));
            fsutil::write_atomic(&torrent, &info.torrent_file(), 0o644, true)?;
        }
        h.push_str(&format!(
            "wrote {} files and their .torrent files into {}\n",
            files.len(),
            into.display()
        ));
    }
    out.emit(h, &v);
    Ok(())
}
