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
