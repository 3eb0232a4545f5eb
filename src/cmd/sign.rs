//! `cod issue`, `cod distribute`, `cod sign list | show | approve | reject | repropose`,
//! `cod signers [change]` (daemon only: signature requests live between nodes).

use super::backend::daemon;
use super::{CmdError, CmdResult, Output};
use crate::cli::{IssueArgs, SignCommand, SignersCommand};
use crate::control::Request;
use crate::nodedir::NodeDir;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

fn usage(msg: impl std::fmt::Display) -> CmdError {
    CmdError {
        code: 2,
        error: anyhow::anyhow!("{msg}"),
    }
}

fn line(r: &Value) -> String {
    let expires = r["expires"]
        .as_u64()
        .unwrap_or(0)
        .saturating_sub(crate::clock::now());
    format!(
        "{}  {:<10} {:<9} {}/{} signed  {:>6}  {}\n",
        super::prefix(r["id"].as_str().unwrap_or("?"), 12),
        r["kind"].as_str().unwrap_or("?"),
        r["state"]["state"].as_str().unwrap_or("?"),
        r["signed"],
        r["quorum"],
        if expires == 0 {
            "expired".to_string()
        } else {
            humantime::format_duration(std::time::Duration::from_secs(expires)).to_string()
        },
        r["summary"].as_str().unwrap_or(""),
    )
}

fn detail(r: &Value) -> String {
    let mut h = line(r);
    h.push_str(&format!(
        "id        {}\nproposer  {}\n",
        r["id"].as_str().unwrap_or("?"),
        r["proposer"].as_str().unwrap_or("?")
    ));
    if let Some(reason) = r["state"]["reason"].as_str() {
        h.push_str(&format!("reason    {reason}\n"));
    }
    for j in r["rejections"].as_array().cloned().unwrap_or_default() {
        h.push_str(&format!(
            "rejected by {}: {}\n",
            super::prefix(j["node_id"].as_str().unwrap_or("?"), 16),
            j["reason"].as_str().unwrap_or("")
        ));
    }
    h
}

pub fn issue(out: &Output, node: Option<&Path>, a: IssueArgs) -> CmdResult {
    let dir = NodeDir::find(node)?;
    let com = dir.com_config()?;
    let mut attest = BTreeMap::new();
    for b in &a.backing {
        let (item, qty) = b
            .split_once('=')
            .ok_or_else(|| usage(format!("{b:?} is not [CLASS:]ITEM=QTY")))?;
        let (class, item) = match item.split_once(':') {
            Some((c, i)) => (Some(c), i),
            None => (None, item),
        };
        let def = com.backing.get(item).ok_or_else(|| {
            usage(format!(
                "com.ini has no backing item {item:?} (it has: {})",
                com.backing.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
        })?;
        if let Some(c) = class {
            let actual = serde_json::to_value(def.class)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default();
            if c != actual {
                return Err(usage(format!("{item} is {actual} backing, not {c}")));
            }
        }
        let qty: u64 = qty
            .parse()
            .map_err(|_| usage(format!("{qty:?} is not a whole quantity")))?;
        attest.insert(item.to_string(), qty);
    }
    let v = daemon(&dir)?.call(&Request::Issue { attest })?;
    out.emit(format!("proposed:\n{}", detail(&v)), v);
    Ok(())
}

pub fn distribute(out: &Output, node: Option<&Path>) -> CmdResult {
    let dir = NodeDir::find(node)?;
    let v = daemon(&dir)?.call(&Request::Distribute)?;
    out.emit(format!("proposed:\n{}", detail(&v)), v);
    Ok(())
}

pub fn signers(out: &Output, node: Option<&Path>, c: Option<SignersCommand>) -> CmdResult {
    let dir = NodeDir::find(node)?;
    let mut d = daemon(&dir)?;
    match c {
        None => {
            let v = d.call(&Request::Signers)?;
            let mut h = format!(
                "quorum {} of {} signers{}\n",
                v["quorum"],
                v["keys"].as_array().map_or(0, Vec::len),
                if v["changed"] == true {
                    " (changed on the ledger since com.ini)"
                } else {
                    " (com.ini's)"
                }
            );
            for k in v["keys"].as_array().cloned().unwrap_or_default() {
                let k = k.as_str().unwrap_or_default();
                let me = if k == v["fingerprint"].as_str().unwrap_or_default() {
                    "  (this node)"
                } else {
                    ""
                };
                h.push_str(&format!("  {k}{me}\n"));
            }
            out.emit(h, v);
        }
        Some(SignersCommand::Change {
            add,
            remove,
            quorum,
        }) => {
            let v = d.call(&Request::SignersChange {
                add,
                remove,
                quorum,
            })?;
            out.emit(format!("proposed:\n{}", detail(&v)), v);
        }
    }
    Ok(())
}

pub fn sign(out: &Output, node: Option<&Path>, c: SignCommand) -> CmdResult {
    let dir = NodeDir::find(node)?;
    let mut d = daemon(&dir)?;
    match c {
        SignCommand::List => {
            let v = d.call(&Request::SignList)?;
            let list = v["requests"].as_array().cloned().unwrap_or_default();
            let mut h = String::new();
            for r in &list {
                h.push_str(&line(r));
            }
            if list.is_empty() {
                h.push_str("no signature requests\n");
            }
            out.emit(h, v);
        }
        SignCommand::Show { id } => {
            let v = d.call(&Request::SignShow { id })?;
            out.emit(detail(&v), v);
        }
        SignCommand::Approve { id } => {
            let v = d.call(&Request::SignApprove { id })?;
            out.emit(format!("signed:\n{}", detail(&v)), v);
        }
        SignCommand::Reject { id, reason } => {
            let v = d.call(&Request::SignReject { id, reason })?;
            out.emit(format!("rejected:\n{}", detail(&v)), v);
        }
        SignCommand::Repropose { id } => {
            let v = d.call(&Request::SignRepropose { id })?;
            out.emit(format!("proposed again:\n{}", detail(&v)), v);
        }
    }
    Ok(())
}
