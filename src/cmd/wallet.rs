//! `cod transfer`, `cod balance`, `cod history`: the member's own account.

use super::{CmdError, CmdResult, Output};
use crate::cli::{AccountArg, BalanceArgs, HistoryArgs, TransferArgs};
use crate::config::com::Asset;
use crate::ids::AccountId;
use crate::ledger::{Content, Ledger, Output as Payment, RecordError};
use crate::nodedir::NodeDir;
use serde_json::json;
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::Path;

/// Exit code for a transfer the ledger refuses (documented in `cod --help`).
pub const EXIT_REFUSED: u8 = 4;

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn fmt_time(t: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(t))
        .to_string()
}

fn asset_def<'a>(l: &'a Ledger, code: &str) -> &'a Asset {
    static PLAIN: Asset = Asset {
        decimals: 0,
        description: None,
    };
    l.params().com.assets.get(code).unwrap_or(&PLAIN)
}

fn account_label(l: &Ledger, a: &AccountId, me: &AccountId) -> String {
    if *a == l.params().network {
        "network".into()
    } else if a == me {
        format!("{} (this node)", a.short())
    } else {
        a.short()
    }
}

/// A refusal in the member's terms (amounts with decimals).
fn explain(l: &Ledger, e: &RecordError) -> String {
    match e {
        RecordError::Overspend {
            asset,
            held,
            wanted,
        } => {
            let a = asset_def(l, asset);
            format!(
                "this account holds {} {asset} but the transfer needs {}",
                a.format(*held),
                a.format(*wanted)
            )
        }
        RecordError::NoSuchAccount(a) => format!(
            "account {a} does not exist in this cod (never opened, or not synced to this node yet)"
        ),
        other => other.to_string(),
    }
}

pub fn transfer(out: &Output, node: Option<&Path>, a: TransferArgs) -> CmdResult {
    let dir = NodeDir::find(node)?;
    let mut chain = dir.load_chain()?;
    let l = chain.ledger();
    let cod = l.params().cod;
    if a.to.len() != a.amount.len() {
        return Err(CmdError {
            code: 2,
            error: anyhow::anyhow!(
                "give one --amount for each --to ({} --to, {} --amount)",
                a.to.len(),
                a.amount.len()
            ),
        });
    }
    let assets: Vec<String> = match a.asset.len() {
        0 if l.params().com.assets.len() == 1 => {
            vec![l.params().com.assets.keys().next().expect("one").clone(); a.to.len()]
        }
        0 => {
            return Err(CmdError {
                code: 2,
                error: anyhow::anyhow!(
                    "this cod has several assets ({}); name one with --asset",
                    l.params()
                        .com
                        .assets
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
        1 => vec![a.asset[0].clone(); a.to.len()],
        n if n == a.to.len() => a.asset.clone(),
        n => {
            return Err(CmdError {
                code: 2,
                error: anyhow::anyhow!(
                    "give one --asset for all outputs or one per --to (got {n} for {} outputs)",
                    a.to.len()
                ),
            });
        }
    };
    let mut outputs = Vec::new();
    for ((to, amount), asset) in a.to.iter().zip(&a.amount).zip(&assets) {
        let def = l.params().com.assets.get(asset).ok_or_else(|| CmdError {
            code: 2,
            error: anyhow::anyhow!("unknown asset {asset:?}"),
        })?;
        let units = def.parse(amount).map_err(|e| CmdError {
            code: 2,
            error: anyhow::anyhow!(e),
        })?;
        if units == 0 {
            return Err(CmdError {
                code: 2,
                error: anyhow::anyhow!("amounts must be more than zero"),
            });
        }
        outputs.push(Payment {
            account: to.resolve(&cod),
            amount: units,
            asset: asset.clone(),
        });
    }
    let key = dir.secret_key(&a.passphrase.source())?;
    let me = key.public().node_id(&cod);
    let record = l
        .make_transfer(&key, outputs.clone(), a.memo.clone(), now())
        .map_err(|e| CmdError {
            code: EXIT_REFUSED,
            error: anyhow::anyhow!("cannot transfer: {}", explain(l, &e)),
        })?;
    let summary: Vec<String> = outputs
        .iter()
        .map(|o| {
            format!(
                "{} {} to {}",
                asset_def(l, &o.asset).format(o.amount),
                o.asset,
                account_label(l, &o.account, &me)
            )
        })
        .collect();
    if !a.yes {
        if !std::io::stdin().is_terminal() {
            return Err(CmdError::msg(
                "no terminal to confirm on: add --yes to transfer without asking",
            ));
        }
        let ok = dialoguer::Confirm::new()
            .with_prompt(format!("Pay {}?", summary.join(", ")))
            .default(false)
            .interact()
            .map_err(|e| CmdError::msg(format!("confirmation failed: {e}")))?;
        if !ok {
            return Err(CmdError::msg("transfer cancelled"));
        }
    }
    let hash = record.hash();
    chain.ingest(record).map_err(|e| CmdError {
        code: EXIT_REFUSED,
        error: anyhow::anyhow!("cannot transfer: {e}"),
    })?;
    let l = chain.ledger();
    let after = l
        .state()
        .account(&me)
        .map(|s| s.spendable.clone())
        .unwrap_or_default();
    out.emit(
        format!("paid {}\nrecord {hash}\n", summary.join(", ")),
        json!({
            "record": hash,
            "account": me,
            "outputs": outputs.iter().map(|o| json!({"account": o.account, "asset": o.asset, "amount": o.amount})).collect::<Vec<_>>(),
            "spendable_after": after,
        }),
    );
    Ok(())
}

fn target(dir: &NodeDir, l: &Ledger, arg: Option<AccountArg>) -> AccountId {
    arg.map_or(dir.deployment.node_id, |a| a.resolve(&l.params().cod))
}

pub fn balance(out: &Output, node: Option<&Path>, a: BalanceArgs) -> CmdResult {
    let dir = NodeDir::find(node)?;
    let chain = dir.load_chain()?;
    let l = chain.ledger();
    let account = target(&dir, l, a.account);
    let state = l.state().account(&account);
    let mut human = format!(
        "account {}{}\n",
        account,
        if account == l.params().network {
            " (network)"
        } else {
            ""
        }
    );
    if state.is_none_or(|s| s.head.is_none()) && account != l.params().network {
        human
            .push_str("(no records of this account on this node: not opened, or not synced yet)\n");
    }
    let mut assets = BTreeMap::new();
    for (code, def) in &l.params().com.assets {
        let spendable = state
            .and_then(|s| s.spendable.get(code))
            .copied()
            .unwrap_or(0);
        let incoming = state
            .and_then(|s| s.incoming.get(code))
            .copied()
            .unwrap_or(0);
        let total = spendable + incoming;
        human.push_str(&format!("{code:>10} {:>16}", def.format(total)));
        if incoming > 0 {
            human.push_str(&format!(
                "   ({} received, claimed by the next transfer)",
                def.format(incoming)
            ));
        }
        human.push('\n');
        assets.insert(code.clone(), json!({"total": total, "spendable": spendable, "incoming": incoming, "decimals": def.decimals}));
    }
    out.emit(human, json!({"account": account, "assets": assets}));
    Ok(())
}

pub fn history(out: &Output, node: Option<&Path>, a: HistoryArgs) -> CmdResult {
    let dir = NodeDir::find(node)?;
    let chain = dir.load_chain()?;
    let l = chain.ledger();
    let account = target(&dir, l, a.account);
    let me = dir.deployment.node_id;
    // (time, hash, kind, per-asset change, counterparties, memo)
    let mut entries = Vec::new();
    for r in l.records().filter(|r| l.state().is_applied(&r.hash())) {
        let mine = r.account() == account;
        let mut delta: BTreeMap<String, i128> = BTreeMap::new();
        let mut with = Vec::new();
        for o in r.body().content.outputs() {
            if mine {
                *delta.entry(o.asset.clone()).or_default() -= o.amount as i128;
                with.push(account_label(l, &o.account, &me));
            } else if o.account == account {
                *delta.entry(o.asset.clone()).or_default() += o.amount as i128;
            }
        }
        if !mine && delta.is_empty() {
            continue;
        }
        if !mine {
            with.push(account_label(l, &r.account(), &me));
        }
        if let (true, Content::Issue(i)) = (mine, &r.body().content) {
            for (asset, v) in &i.amounts {
                *delta.entry(asset.clone()).or_default() += *v as i128;
            }
        }
        let memo = match &r.body().content {
            Content::Transfer(t) => t.memo.clone(),
            _ => None,
        };
        let kind = if r.kind() == crate::ledger::Kind::Transfer && r.seq() == 0 {
            "open".to_string()
        } else {
            r.kind().to_string()
        };
        entries.push((r.body().time, r.hash(), kind, delta, with, memo));
    }
    entries.sort_by_key(|e| std::cmp::Reverse((e.0, e.1)));
    entries.truncate(a.limit);
    let mut human = format!("history of {}\n", account);
    let mut json_entries = Vec::new();
    for (time, hash, kind, delta, with, memo) in &entries {
        let change: Vec<String> = delta
            .iter()
            .map(|(asset, v)| {
                let sign = if *v < 0 { "-" } else { "+" };
                format!(
                    "{sign}{} {asset}",
                    asset_def(l, asset).format(v.unsigned_abs() as u64)
                )
            })
            .collect();
        human.push_str(&format!(
            "{}  {:<10} {:<24} {}  {}{}\n",
            fmt_time(*time),
            kind,
            change.join(", "),
            with.join(", "),
            hash.short(),
            memo.as_ref()
                .map(|m| format!("  \"{m}\""))
                .unwrap_or_default()
        ));
        json_entries.push(json!({"time": time, "record": hash, "kind": kind, "change": delta.iter().map(|(k, v)| (k.clone(), json!(*v as i64))).collect::<serde_json::Map<_, _>>(), "with": with, "memo": memo}));
    }
    if entries.is_empty() {
        human.push_str("(nothing yet)\n");
    }
    out.emit(human, json!({"account": account, "entries": json_entries}));
    Ok(())
}
