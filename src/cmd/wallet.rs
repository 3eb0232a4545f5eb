//! `cod transfer`, `cod balance`, `cod history`: the member's own account (through the
//! daemon when it runs, else on the store directly).

use super::backend::Backend;
use super::{CmdError, CmdResult, Output};
use crate::cli::{AccountArg, BalanceArgs, HistoryArgs, TransferArgs};
use crate::config::ComConfig;
use crate::ids::AccountId;
use crate::ledger::Output as Payment;
use crate::nodedir::NodeDir;
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::Path;

fn fmt_time(t: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(t))
        .to_string()
}

fn fmt_amount(com: &ComConfig, asset: &str, units: u64) -> String {
    com.assets
        .get(asset)
        .map_or(units.to_string(), |a| a.format(units))
}

fn label(account: &str, me: &AccountId) -> String {
    if account == "network" {
        "network".into()
    } else if account == me.to_string() {
        "this node".into()
    } else {
        account.chars().take(8).collect()
    }
}

pub fn transfer(out: &Output, node: Option<&Path>, a: TransferArgs) -> CmdResult {
    let dir = NodeDir::find(node)?;
    let com = dir.com_config()?;
    let cod = dir.deployment.cod_id;
    if a.to.len() != a.amount.len() {
        return Err(CmdError::usage(format!(
            "give one --amount for each --to ({} --to, {} --amount)",
            a.to.len(),
            a.amount.len()
        )));
    }
    let assets: Vec<String> = match a.asset.len() {
        0 if com.assets.len() == 1 => {
            vec![com.assets.keys().next().expect("one asset").clone(); a.to.len()]
        }
        0 => {
            return Err(CmdError::usage(format!(
                "this cod has several assets ({}); name one with --asset",
                com.assets.keys().cloned().collect::<Vec<_>>().join(", ")
            )));
        }
        1 => vec![a.asset[0].clone(); a.to.len()],
        n if n == a.to.len() => a.asset.clone(),
        n => {
            return Err(CmdError::usage(format!(
                "give one --asset for all outputs or one per --to (got {n} for {} outputs)",
                a.to.len()
            )));
        }
    };
    let mut outputs = Vec::new();
    for ((to, amount), asset) in a.to.iter().zip(&a.amount).zip(&assets) {
        let def = com
            .assets
            .get(asset)
            .ok_or_else(|| CmdError::usage(format!("unknown asset {asset:?}")))?;
        let units = def.parse(amount).map_err(CmdError::usage)?;
        if units == 0 {
            return Err(CmdError::usage("amounts must be more than zero"));
        }
        outputs.push(Payment {
            account: to.resolve(&cod),
            amount: units,
            asset: asset.clone(),
        });
    }
    let mut redeem: BTreeMap<String, u64> = BTreeMap::new();
    for r in &a.redeem {
        let (item, qty) = super::item_quantity(&com, r, 1)?;
        if redeem.insert(item.clone(), qty).is_some() {
            return Err(CmdError::usage(format!("{item} is named twice")));
        }
    }
    let vouch: Vec<AccountId> = a.vouch.iter().map(|v| v.resolve(&cod)).collect();
    let me = dir.deployment.node_id;
    let mut summary: Vec<String> = outputs
        .iter()
        .map(|o| {
            format!(
                "{} {} to {}",
                fmt_amount(&com, &o.asset, o.amount),
                o.asset,
                label(
                    &if o.account == AccountId::network(&cod) {
                        "network".to_string()
                    } else {
                        o.account.to_string()
                    },
                    &me
                )
            )
        })
        .collect();
    if let Some(value) = crate::ledger::economics::value_of(&com, &redeem) {
        for (asset, v) in value {
            summary.push(format!(
                "{} {asset} back to the network for {} delivered",
                fmt_amount(&com, &asset, v),
                redeem
                    .iter()
                    .filter(|(item, _)| com.backing[*item].asset == asset)
                    .map(|(item, q)| format!("{q} {}", com.backing[item].unit))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    for v in &vouch {
        summary.push(format!("vouch for {}", super::prefix(&v.to_string(), 12)));
    }
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
    let payment = crate::ledger::Payment {
        outputs,
        memo: a.memo,
        redeem,
        vouch,
    };
    let result = Backend::open_writable(&dir)?.transfer(&dir, payment, &a.passphrase.source())?;
    out.emit(
        format!(
            "{} {}\nrecord {}{}\n",
            if a.to.is_empty() { "made" } else { "paid" },
            summary.join(", "),
            result.record,
            if result.recovered {
                " (found on the chain after the daemon's answer was lost)"
            } else {
                ""
            }
        ),
        &result,
    );
    Ok(())
}

fn target(dir: &NodeDir, arg: Option<AccountArg>) -> Option<AccountId> {
    arg.map(|a| a.resolve(&dir.deployment.cod_id))
}

pub fn balance(out: &Output, node: Option<&Path>, a: BalanceArgs) -> CmdResult {
    let dir = NodeDir::find(node)?;
    let com = dir.com_config()?;
    let v = Backend::open(&dir)?.balance(target(&dir, a.account), dir.deployment.node_id)?;
    let mut human = format!(
        "account {}{}\n",
        v.account,
        match (v.network, v.member) {
            (true, _) => " (network)",
            (false, true) => " (a member: receives distributions)",
            (false, false) => "",
        }
    );
    if !v.known {
        human
            .push_str("(no records of this account on this node: not opened, or not synced yet)\n");
    }
    for (code, a) in &v.assets {
        human.push_str(&format!(
            "{code:>10} {:>16}",
            fmt_amount(&com, code, a.total)
        ));
        if a.incoming > 0 {
            human.push_str(&format!(
                "   ({} received, claimed by the next transfer)",
                fmt_amount(&com, code, a.incoming)
            ));
        }
        human.push('\n');
    }
    if let Some(e) = &v.economy {
        for line in e.human(|code, u| fmt_amount(&com, code, u)) {
            human.push_str(&line);
            human.push('\n');
        }
    }
    out.emit(human, serde_json::json!(v));
    Ok(())
}

pub fn history(out: &Output, node: Option<&Path>, a: HistoryArgs) -> CmdResult {
    let dir = NodeDir::find(node)?;
    let com = dir.com_config()?;
    let me = dir.deployment.node_id;
    let v = Backend::open(&dir)?.history(target(&dir, a.account), me, a.limit)?;
    let mut human = format!("history of {}\n", v.account);
    for e in &v.entries {
        let change: Vec<String> = e
            .change
            .iter()
            .map(|(asset, d)| {
                format!(
                    "{}{} {asset}",
                    if *d < 0 { "-" } else { "+" },
                    fmt_amount(&com, asset, d.unsigned_abs())
                )
            })
            .collect();
        let with: Vec<String> = e.with.iter().map(|x| label(x, &me)).collect();
        human.push_str(&format!(
            "{}  {:<10} {:<24} {}  {}{}\n",
            fmt_time(e.time),
            e.kind,
            change.join(", "),
            with.join(", "),
            super::prefix(&e.record.to_string(), 8),
            e.memo
                .as_deref()
                .map(|m| format!("  \"{m}\""))
                .unwrap_or_default()
        ));
    }
    if v.entries.is_empty() {
        human.push_str("(nothing yet)\n");
    }
    out.emit(human, &v);
    Ok(())
}
