//! `cod chain verify | export | import`.

use super::{CmdError, CmdResult, Output};
use crate::archive;
use crate::chain;
use crate::fsutil;
use crate::ledger::Record;
use crate::nodedir::NodeDir;
use serde_json::json;
use std::path::Path;

pub fn verify(out: &Output, node: Option<&Path>) -> CmdResult {
    let dir = NodeDir::find(node)?;
    let store = dir.open_store()?;
    let report = chain::verify(dir.params()?, &store)?;
    let mut human = format!(
        "records   {} ({} applied)\naccounts  {}\nissued    {:?}\ncheckpoint {}\n",
        report.records,
        report.applied,
        report.accounts,
        report.issued,
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
    out.emit(
        human,
        serde_json::to_value(&report).expect("report serializes"),
    );
    if report.ok() {
        Ok(())
    } else {
        Err(CmdError::msg(format!(
            "chain verify found {} problem(s)",
            report.problems.len()
        )))
    }
}

/// Records in an order that applies front to back: by time, then account and seq.
fn export_order(records: &mut [&Record]) {
    records.sort_by_key(|r| (r.body().time, r.account(), r.seq()));
}

pub fn export(out: &Output, node: Option<&Path>, file: &Path) -> CmdResult {
    let dir = NodeDir::find(node)?;
    let chain = dir.load_chain()?;
    let l = chain.ledger();
    let mut records: Vec<&Record> = l.records().collect();
    export_order(&mut records);
    let bytes = archive::write(&l.params().cod, records.iter().copied());
    fsutil::write_atomic(file, &bytes, 0o644, false)?;
    out.emit(
        format!("exported {} records to {}\n", records.len(), file.display()),
        json!({"records": records.len(), "file": file, "bytes": bytes.len()}),
    );
    Ok(())
}

pub fn import(out: &Output, node: Option<&Path>, file: &Path) -> CmdResult {
    let dir = NodeDir::find(node)?;
    let mut chain = dir.load_chain()?;
    let bytes = fsutil::read(file)?;
    let records = archive::read(&bytes, &chain.ledger().params().cod)
        .map_err(|e| CmdError::msg(format!("{}: {e}", file.display())))?;
    // Every record is checked before anything is stored: one forged record refuses the file.
    let checks = chain.ledger().verify_many(&records);
    let forged: Vec<String> = records
        .iter()
        .zip(&checks)
        .filter_map(|(r, c)| {
            c.as_ref()
                .err()
                .map(|e| format!("record {}: {e}", r.hash()))
        })
        .collect();
    if !forged.is_empty() {
        return Err(CmdError::msg(format!(
            "{}: refused, nothing imported:\n  {}",
            file.display(),
            forged.join("\n  ")
        )));
    }
    let total = records.len();
    let results = chain.ingest_batch(records)?;
    let (mut applied, mut duplicate, mut pending) = (0, 0, 0);
    let mut refused = Vec::new();
    for r in &results {
        match r {
            Ok(o) if o.duplicate => duplicate += 1,
            Ok(o) if o.applied.is_empty() => pending += 1,
            Ok(_) => applied += 1,
            Err(e) => refused.push(e.to_string()),
        }
    }
    let applied_now = chain.ledger().state().applied_count();
    out.emit(
        format!(
            "{total} records read: {applied} added, {duplicate} already held, {pending} waiting for missing records, {} refused\nchain now holds {applied_now} applied records\n",
            refused.len()
        ),
        json!({"read": total, "added": applied, "duplicate": duplicate, "pending": pending, "refused": refused, "applied_total": applied_now}),
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
