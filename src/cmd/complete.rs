//! What the shell offers at TAB besides commands and flags: the values the node knows —
//! account ids, signature-request ids, peer addresses, node directories. The shell's script
//! (`cod completions SHELL`) runs `cod` at each TAB with the words typed so far; these
//! functions answer for one argument each. Each asks the node's daemon (or, for accounts,
//! reads its store when no daemon runs), waits at most [`WAIT`], and offers nothing when it
//! cannot answer: completing never prints an error or hangs the shell.

use super::backend::Backend;
use crate::control::ask;
use crate::nodedir::NodeDir;
use clap_complete::engine::{CompletionCandidate, PathCompleter, ValueCompleter};
use std::ffi::OsStr;
use std::path::PathBuf;
use std::time::Duration;

/// The longest a TAB waits for the node.
pub const WAIT: Duration = Duration::from_secs(2);

/// The node the command line being completed means: its `--node DIR` (or `--node=DIR`),
/// else `COD_NODE`, else the one deployment there is. (The shell passes the words typed
/// after a `--`.)
fn node() -> Option<NodeDir> {
    let words: Vec<String> = std::env::args().skip_while(|a| a != "--").skip(1).collect();
    NodeDir::find(
        node_in(&words)
            .or_else(|| std::env::var_os("COD_NODE").map(PathBuf::from))
            .as_deref(),
    )
    .ok()
}

/// The last `--node` value among `words`.
fn node_in(words: &[String]) -> Option<PathBuf> {
    let mut found = None;
    let mut it = words.iter();
    while let Some(w) = it.next() {
        if w == "--node" {
            found = it.next().map(PathBuf::from);
        } else if let Some(v) = w.strip_prefix("--node=") {
            found = Some(v.into());
        }
    }
    found
}

/// `f`'s answer if it comes within [`WAIT`] (a daemon that does not answer leaves its thread
/// behind; the process ends right after completing).
fn within<T: Send + 'static>(f: impl FnOnce() -> Option<T> + Send + 'static) -> Option<T> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(WAIT).ok().flatten()
}

/// `(value, help)` pairs that start with what is typed, as candidates.
fn offer(current: &OsStr, values: Vec<(String, String)>) -> Vec<CompletionCandidate> {
    let typed = current.to_string_lossy();
    values
        .into_iter()
        .filter(|(v, _)| v.starts_with(typed.as_ref()))
        .map(|(v, help)| CompletionCandidate::new(v).help(Some(help.into())))
        .collect()
}

/// Account ids: `network`, the members and the accounts vouched for.
pub fn accounts(current: &OsStr) -> Vec<CompletionCandidate> {
    let mut values = vec![("network".to_string(), "the network account".to_string())];
    values.extend(within(known_accounts).unwrap_or_default());
    offer(current, values)
}

fn known_accounts() -> Option<Vec<(String, String)>> {
    let dir = node()?;
    let view = match Backend::open(&dir).ok()? {
        Backend::Daemon(mut d) => d.ask(ask::Members {}).ok()?,
        Backend::Direct(chain) => crate::views::members(chain.ledger()),
    };
    let members = view
        .members
        .iter()
        .map(|a| (a.to_string(), "member".to_string()));
    let candidates = view.candidates.iter().map(|c| {
        (
            c.account.to_string(),
            format!("vouched for by {}", c.vouchers.len()),
        )
    });
    Some(members.chain(candidates).collect())
}

/// Signature requests the daemon holds, with what each is.
pub fn requests(current: &OsStr) -> Vec<CompletionCandidate> {
    let values = within(|| {
        let mut d = super::backend::daemon(&node()?).ok()?;
        let list: crate::signature_requests::RequestList = d.ask(ask::SignList {}).ok()?;
        Some(
            list.requests
                .into_iter()
                .map(|r| (r.id.to_string(), r.summary))
                .collect(),
        )
    });
    offer(current, values.unwrap_or_default())
}

/// Addresses in the daemon's peer table.
pub fn peers(current: &OsStr) -> Vec<CompletionCandidate> {
    offer(current, within(|| peers_view(false)).unwrap_or_default())
}

/// Addresses the daemon limits or bans.
pub fn banned(current: &OsStr) -> Vec<CompletionCandidate> {
    offer(current, within(|| peers_view(true)).unwrap_or_default())
}

fn peers_view(banned: bool) -> Option<Vec<(String, String)>> {
    let mut d = super::backend::daemon(&node()?).ok()?;
    let v: crate::node::peers::PeersView = d.ask(ask::Peers {}).ok()?;
    Some(if banned {
        v.addresses
            .into_iter()
            .filter(|a| a.banned_until.is_some())
            .map(|a| (a.address.to_string(), format!("score {}", a.score)))
            .collect()
    } else {
        v.peers
            .into_iter()
            .map(|p| {
                let state = if p.confirmed {
                    "confirmed"
                } else {
                    "not confirmed"
                };
                (p.addr, format!("{state}, cod {}", p.cod_version))
            })
            .collect()
    })
}

/// Node directories: the deployments under the default base, then any directory.
pub fn node_dirs(current: &OsStr) -> Vec<CompletionCandidate> {
    let mut deployed = Vec::new();
    if let Ok(base) = crate::nodedir::default_base()
        && let Ok(entries) = std::fs::read_dir(&base)
    {
        for e in entries.flatten() {
            if e.path().join(crate::nodedir::DEPLOYMENT_FILE).exists() {
                deployed.push((e.path().display().to_string(), "a deployment".to_string()));
            }
        }
    }
    deployed.sort();
    let mut out = offer(current, deployed);
    out.extend(PathCompleter::dir().complete(current));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(w: &[&str]) -> Vec<String> {
        w.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_node_is_the_last_node_flag_in_either_spelling() {
        assert_eq!(node_in(&words(&["cod", "sign", "approve"])), None);
        assert_eq!(
            node_in(&words(&["cod", "--node", "/a", "sign"])),
            Some("/a".into())
        );
        assert_eq!(
            node_in(&words(&["cod", "--node=/a", "--node", "/b", "x"])),
            Some("/b".into())
        );
        // `--node` being typed: no value yet.
        assert_eq!(node_in(&words(&["cod", "--node"])), None);
    }

    #[test]
    fn only_values_that_start_with_what_is_typed_are_offered() {
        let values = vec![
            ("abc".to_string(), "x".to_string()),
            ("abd".to_string(), "y".to_string()),
            ("b".to_string(), "z".to_string()),
        ];
        let got: Vec<String> = offer(OsStr::new("ab"), values.clone())
            .iter()
            .map(|c| c.get_value().to_string_lossy().into_owned())
            .collect();
        assert_eq!(got, ["abc", "abd"]);
        assert_eq!(offer(OsStr::new(""), values).len(), 3);
    }

    #[test]
    fn a_source_that_does_not_answer_in_time_offers_nothing() {
        let slow = within(|| {
            std::thread::sleep(WAIT * 3);
            Some(1)
        });
        assert_eq!(slow, None);
        assert_eq!(within(|| Some(2)), Some(2));
    }
}
