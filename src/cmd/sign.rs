//! `cod issue`, `cod distribute`, `cod sign list | show | approve | reject | repropose`,
//! `cod signers [change]` (daemon only: signature requests live between nodes).

use super::backend::daemon;
use super::{CmdError, CmdResult, Output};
use crate::cli::{IssueArgs, MembersCommand, SignCommand, SignersCommand};
use crate::control::client::Client;
use crate::control::{Ask, ask};
use crate::nodedir::NodeDir;
use crate::signature_requests::{RequestList, RequestView, SignersView, State};
use std::collections::BTreeMap;
use std::path::Path;

fn line(r: &RequestView) -> String {
    let expires = r.expires.saturating_sub(crate::clock::now());
    format!(
        "{}  {:<10} {:<9} {}/{} signed  {:>6}  {}\n",
        super::prefix(&r.id.to_string(), 12),
        r.kind,
        r.state.name(),
        r.signed,
        r.quorum,
        if expires == 0 {
            "expired".to_string()
        } else {
            humantime::format_duration(std::time::Duration::from_secs(expires)).to_string()
        },
        r.summary,
    )
}

fn detail(r: &RequestView) -> String {
    let mut h = line(r);
    let proposer = if r.proposer.is_empty() {
        "a peer"
    } else {
        &r.proposer
    };
    h.push_str(&format!("id        {}\nproposer  {proposer}\n", r.id));
    if let State::Rejected(reason) | State::Superseded(reason) = &r.state {
        h.push_str(&format!("reason    {reason}\n"));
    }
    for j in &r.rejections {
        h.push_str(&format!(
            "rejected by {}: {}\n",
            super::prefix(&j.node_id, 16),
            j.reason
        ));
    }
    h
}

/// Sends a request that answers with a signature request, and shows it after `what`.
fn proposed(
    out: &Output,
    d: &mut Client,
    what: &str,
    req: impl Ask<Answer = RequestView>,
) -> CmdResult {
    let r = d.ask(req)?;
    out.emit(format!("{what}:\n{}", detail(&r)), &r);
    Ok(())
}

pub fn issue(out: &Output, node: Option<&Path>, a: IssueArgs) -> CmdResult {
    let dir = NodeDir::find(node)?;
    let com = dir.com_config()?;
    let mut attest = BTreeMap::new();
    for b in &a.backing {
        let (class, rest) = match b.split_once(':') {
            Some((c, i)) => (Some(c), i),
            None => (None, b.as_str()),
        };
        let (item, qty) = super::item_quantity(&com, rest, 0)?;
        let def = &com.backing[&item];
        if let Some(c) = class {
            let actual = serde_json::to_value(def.class)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default();
            if c != actual {
                return Err(CmdError::usage(format!(
                    "{item} is {actual} backing, not {c}"
                )));
            }
        }
        attest.insert(item, qty);
    }
    // --work ACCOUNT:ITEM=QTY: who did the attested labor or ran the capacity.
    let mut work: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for w in &a.work {
        let (account, rest) = w
            .split_once(':')
            .ok_or_else(|| CmdError::usage(format!("{w:?} is not ACCOUNT:ITEM=QTY")))?;
        let (item, qty) = super::item_quantity(&com, rest, 1)?;
        let slot = work
            .entry(account.to_string())
            .or_default()
            .entry(item)
            .or_insert(0);
        *slot = slot
            .checked_add(qty)
            .ok_or_else(|| CmdError::usage("work quantities overflow"))?;
    }
    proposed(
        out,
        &mut daemon(&dir)?,
        "proposed",
        ask::Issue { attest, work },
    )
}

pub fn distribute(out: &Output, node: Option<&Path>) -> CmdResult {
    let dir = NodeDir::find(node)?;
    proposed(out, &mut daemon(&dir)?, "proposed", ask::Distribute {})
}

pub fn signers(out: &Output, node: Option<&Path>, c: Option<SignersCommand>) -> CmdResult {
    let dir = NodeDir::find(node)?;
    let mut d = daemon(&dir)?;
    match c {
        None => {
            let v: SignersView = d.ask(ask::Signers {})?;
            let mut h = format!(
                "quorum {} of {} signers{}\n",
                v.quorum,
                v.keys.len(),
                if v.changed {
                    " (changed on the ledger since com.ini)"
                } else {
                    " (com.ini's)"
                }
            );
            for k in &v.keys {
                let me = if *k == v.fingerprint {
                    "  (this node)"
                } else {
                    ""
                };
                h.push_str(&format!("  {k}{me}\n"));
            }
            out.emit(h, &v);
        }
        Some(SignersCommand::Change {
            add,
            remove,
            quorum,
        }) => {
            let req = ask::SignersChange {
                add,
                remove,
                quorum,
            };
            proposed(out, &mut d, "proposed", req)?;
        }
    }
    Ok(())
}

pub fn members(out: &Output, node: Option<&Path>, c: Option<MembersCommand>) -> CmdResult {
    let dir = NodeDir::find(node)?;
    let mut d = daemon(&dir)?;
    let req = match c {
        None => {
            let v: crate::views::MembersView = d.ask(ask::Members {})?;
            let mut h = format!(
                "{} members; admission by {}\n",
                v.count,
                match v.sponsors {
                    Some(n) => format!("a quorum of signers, or {n} members vouching"),
                    None => "a quorum of signers".into(),
                }
            );
            for m in &v.members {
                h.push_str(&format!("  {m}\n"));
            }
            for c in &v.candidates {
                h.push_str(&format!(
                    "  {} (vouched for by {} member(s); counted at the next distribution)\n",
                    c.account,
                    c.vouchers.len()
                ));
            }
            out.emit(h, &v);
            return Ok(());
        }
        Some(MembersCommand::Admit { accounts }) => ask::MembersChange {
            admit: accounts,
            remove: vec![],
        },
        Some(MembersCommand::Remove { accounts }) => ask::MembersChange {
            admit: vec![],
            remove: accounts,
        },
    };
    proposed(out, &mut d, "proposed", req)
}

pub fn sign(out: &Output, node: Option<&Path>, c: SignCommand) -> CmdResult {
    let dir = NodeDir::find(node)?;
    let mut d = daemon(&dir)?;
    match c {
        SignCommand::List => {
            let v: RequestList = d.ask(ask::SignList {})?;
            let mut h: String = v.requests.iter().map(line).collect();
            if v.requests.is_empty() {
                h.push_str("no signature requests\n");
            }
            out.emit(h, &v);
        }
        SignCommand::Show { id } => {
            let r: RequestView = d.ask(ask::SignShow { id })?;
            out.emit(detail(&r), &r);
        }
        SignCommand::Approve { id } => proposed(out, &mut d, "signed", ask::SignApprove { id })?,
        SignCommand::Reject { id, reason } => {
            proposed(out, &mut d, "rejected", ask::SignReject { id, reason })?
        }
        SignCommand::Repropose { id } => {
            proposed(out, &mut d, "proposed again", ask::SignRepropose { id })?
        }
    }
    Ok(())
}
