//! node.ini `[hooks]`: a shell command run on an event, like bitcoind's `-walletnotify` —
//! `payment` (an applied record pays this node's account), `sign_request` (a request this
//! node's key can sign is waiting), `upgrade` (a newer version of this cod was seen). The
//! command runs with `sh -c` in the node directory, the event as one JSON document on stdin
//! and its name in `COD_EVENT`; at most [`MAX_RUNNING`] at once — the others wait their turn,
//! in order, up to [`MAX_WAITING`] (beyond, an event is skipped and logged) — each stopped
//! after [`TIMEOUT`]. Of what a failing hook writes on stderr, [`MAX_STDERR`] bytes are kept
//! and the first 500 characters logged; the rest is read and dropped.

use super::{Shared, Told};
use crate::control::Event;
use crate::ids::{AccountId, RecordHash};
use crate::lock::Locked;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Hook commands running at once, at most.
pub const MAX_RUNNING: usize = 4;
/// Hook commands waiting for one of those to end, at most.
pub const MAX_WAITING: usize = 256;
/// A failing hook's stderr kept for the log, at most (bytes).
pub const MAX_STDERR: usize = 4096;
/// How long a hook command may run.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// What a hook is told, on stdin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum HookEvent {
    /// An applied record pays this node's account: what, per asset (smallest units).
    Payment {
        record: RecordHash,
        kind: String,
        from: AccountId,
        seq: u64,
        time: u64,
        amounts: BTreeMap<String, u64>,
    },
    /// A signature request this node's key can sign waits for its decision.
    SignRequest {
        id: RecordHash,
        kind: String,
        period: u64,
        summary: String,
        expires: u64,
        signed: usize,
        quorum: usize,
    },
    /// A newer version of this cod, seen on a node.
    Upgrade {
        cod_id: String,
        cod_version: String,
        peer: String,
    },
}

impl HookEvent {
    pub fn name(&self) -> &'static str {
        match self {
            HookEvent::Payment { .. } => "payment",
            HookEvent::SignRequest { .. } => "sign_request",
            HookEvent::Upgrade { .. } => "upgrade",
        }
    }
}

/// The hook event an event of the node gives, if any. `record` finds an applied record.
/// Only events `wants` names are looked at (and remembered as told).
fn hook_event(
    e: Event,
    me: &AccountId,
    record: impl Fn(&RecordHash) -> Option<Arc<crate::ledger::Record>>,
    told: &mut Told,
    wants: impl Fn(&str) -> bool,
) -> Option<HookEvent> {
    match e {
        Event::Record(r) if r.account != *me && wants("payment") => {
            let record = record(&r.hash)?;
            let mut amounts = BTreeMap::new();
            for o in record
                .body()
                .content
                .outputs()
                .iter()
                .filter(|o| o.account == *me)
            {
                let sum: &mut u64 = amounts.entry(o.asset.clone()).or_default();
                *sum = sum.saturating_add(o.amount);
            }
            (!amounts.is_empty()).then_some(HookEvent::Payment {
                record: r.hash,
                kind: r.kind,
                from: r.account,
                seq: r.seq,
                time: r.time,
                amounts,
            })
        }
        Event::SignRequest(v)
            if wants("sign_request")
                && v.signer
                && v.state == crate::signature_requests::State::Pending
                && told.first(format!("request {}", v.id)) =>
        {
            Some(HookEvent::SignRequest {
                id: v.id,
                kind: v.kind,
                period: v.period,
                summary: v.summary,
                expires: v.expires,
                signed: v.signed,
                quorum: v.quorum,
            })
        }
        Event::Upgrade {
            cod_id,
            cod_version,
            peer,
        } if wants("upgrade") && told.first(format!("version {cod_id}")) => {
            Some(HookEvent::Upgrade {
                cod_id,
                cod_version,
                peer,
            })
        }
        _ => None,
    }
}

/// Runs the hooks node.ini names on the node's events until the node stops.
pub async fn run(shared: Arc<Shared>) {
    if shared.config.hooks.is_empty() {
        shared.shutdown.cancelled().await;
        return;
    }
    let mut events = shared.events.subscribe();
    // The hook runs wait in a queue, in the order their events came; MAX_RUNNING workers
    // take them one at a time.
    let (queue, waiting) = tokio::sync::mpsc::channel::<(String, HookEvent)>(MAX_WAITING);
    let waiting = Arc::new(tokio::sync::Mutex::new(waiting));
    for _ in 0..MAX_RUNNING {
        let (s, waiting) = (shared.clone(), waiting.clone());
        shared.spawn_until_stop(async move {
            loop {
                let next = waiting.lock().await.recv().await;
                let Some((command, event)) = next else { return };
                run_one(&s, &command, &event).await;
            }
        });
    }
    let mut told = Told::default();
    loop {
        let e = tokio::select! {
            e = events.recv() => e,
            _ = shared.shutdown.cancelled() => return,
        };
        let e = match e {
            Ok(e) => e,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                shared.log(
                    "warn",
                    format!("hooks: {n} events went by unseen (too many at once)"),
                );
                continue;
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        };
        // (A distribution this node signs by itself waits for nobody's decision.)
        if let Event::SignRequest(v) = &e
            && shared.auto_sign()
            && shared.requests.locked().get(&v.id).is_some_and(
                |r| matches!(&r.body.content, crate::ledger::Content::Distribute(d) if !d.special),
            )
        {
            continue;
        }
        let hooks = &shared.config.hooks;
        // A payment's record is read from the store: off the async threads.
        let paying = match &e {
            Event::Record(r) if r.account != shared.node_id && hooks.contains_key("payment") => {
                let (s, h) = (shared.clone(), r.hash);
                shared
                    .tasks
                    .spawn_blocking(move || s.view().record(&h))
                    .await
                    .ok()
                    .flatten()
            }
            _ => None,
        };
        let event = hook_event(
            e,
            &shared.node_id,
            |_| paying.clone(),
            &mut told,
            |name| hooks.contains_key(name),
        );
        let Some(event) = event else {
            continue;
        };
        let Some(command) = shared.config.hooks.get(event.name()).cloned() else {
            continue;
        };
        // Beyond MAX_WAITING waiting, the event is skipped.
        if let Err(e) = queue.try_send((command, event)) {
            let event = match e {
                tokio::sync::mpsc::error::TrySendError::Full((_, e))
                | tokio::sync::mpsc::error::TrySendError::Closed((_, e)) => e,
            };
            shared.log(
                "warn",
                format!(
                    "hooks: {MAX_WAITING} hook runs wait already; this {} event is skipped",
                    event.name()
                ),
            );
        }
    }
}

async fn run_one(shared: &Shared, command: &str, event: &HookEvent) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let name = event.name();
    let json = serde_json::to_string(event).expect("events serialize") + "\n";
    let child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .current_dir(&shared.dir.root)
        .env("COD_EVENT", name)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            shared.log("warn", format!("hooks: cannot run the {name} hook: {e}"));
            return;
        }
    };
    if let Some(mut stdin) = child.stdin.take() {
        // (A hook that does not read its stdin is its own business.)
        let _ = stdin.write_all(json.as_bytes()).await;
    }
    let stderr = child.stderr.take();
    let said = async move {
        let mut kept = Vec::new();
        if let Some(mut err) = stderr {
            let _ = (&mut err)
                .take(MAX_STDERR as u64)
                .read_to_end(&mut kept)
                .await;
            // (Read to the end, so a talkative hook never blocks on a full pipe.)
            let _ = tokio::io::copy(&mut err, &mut tokio::io::sink()).await;
        }
        kept
    };
    let ended = async {
        let (said, status) = tokio::join!(said, child.wait());
        status.map(|status| (status, said))
    };
    match tokio::time::timeout(TIMEOUT, ended).await {
        Ok(Ok((status, _))) if status.success() => {}
        Ok(Ok((status, said))) => {
            let said = String::from_utf8_lossy(&said);
            let said: String = said.trim().chars().take(500).collect();
            shared.log(
                "warn",
                format!("hooks: the {name} hook failed ({status}): {said}"),
            );
        }
        Ok(Err(e)) => shared.log("warn", format!("hooks: the {name} hook: {e}")),
        Err(_) => shared.log(
            "warn",
            format!(
                "hooks: the {name} hook ran {} s and was stopped",
                TIMEOUT.as_secs()
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signature_requests::{RequestView, State};

    #[test]
    fn upgrades_and_requests_are_told_once_and_only_pending_ones_for_this_signer() {
        let me = AccountId::from_canonical(&"11".repeat(32)).unwrap();
        let none = |_: &RecordHash| None;
        let all = |_: &str| true;
        let mut told = Told::default();
        let up = || Event::Upgrade {
            cod_id: "ab".repeat(20),
            cod_version: "2.0.0".into(),
            peer: "10.0.0.1:7410".into(),
        };
        // An event no hook wants is not even remembered: the first wanted one is told.
        assert!(hook_event(up(), &me, none, &mut told, |_| false).is_none());
        let e = hook_event(up(), &me, none, &mut told, all).unwrap();
        assert_eq!(e.name(), "upgrade");
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["event"], "upgrade");
        assert_eq!(json["cod_version"], "2.0.0");
        assert!(
            hook_event(up(), &me, none, &mut told, all).is_none(),
            "once"
        );

        let request = |signer: bool, state: State| {
            let mut v: RequestView = serde_json::from_value(serde_json::json!({
                "id": "22".repeat(32), "kind": "distribute", "period": 3, "summary": "s",
                "proposer": "", "created": 1, "expires": 2, "signed": 1, "quorum": 2,
                "signer": signer, "state": State::Pending, "rejections": [],
            }))
            .unwrap();
            v.state = state;
            Event::SignRequest(Box::new(v))
        };
        assert!(hook_event(request(false, State::Pending), &me, none, &mut told, all).is_none());
        assert!(hook_event(request(true, State::Approved), &me, none, &mut told, all).is_none());
        let e = hook_event(request(true, State::Pending), &me, none, &mut told, all).unwrap();
        assert_eq!(serde_json::to_value(&e).unwrap()["event"], "sign_request");
        assert!(hook_event(request(true, State::Pending), &me, none, &mut told, all).is_none());
    }
}
