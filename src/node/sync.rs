//! Keeping the chain in step with peers. Push: records made here go to every confirmed peer
//! at once. Pull (anti-entropy): now and then, and whenever a peer appears, compare a short
//! summary with a random peer; only if it differs compare per-bucket digests, then heads,
//! then fetch the missing chain segments. A node far behind (fresh, or back from a long
//! absence) instead replays the peer's application log, which lists dependencies first.

use super::Shared;
use crate::api::{MAX_RECORDS_PER_CALL, MAX_RECORDS_PER_PAGE};
use crate::ids::{AccountId, RecordHash};
use crate::ledger::{Checked, Outcome, Record, RecordError};
use crate::lock::Locked;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Pages fetched from one peer in one round (the next round continues).
const MAX_PAGES_PER_ROUND: usize = 200;
/// Records pushed to one peer in one round.
const MAX_PUSH_PER_ROUND: usize = 2_000;
/// Records pushed in one round to a peer with less than half our records.
const MAX_PUSH_FAR_BEHIND: usize = 200;

pub async fn run(shared: Arc<Shared>) {
    let mut round = 0usize;
    loop {
        let mut peers = shared.peers.locked().confirmed();
        peers.retain(|p| !shared.is_banned(&p.addr));
        if !peers.is_empty() {
            // In turn, so every peer is compared with within a few intervals.
            round = round.wrapping_add(1);
            let p = &peers[round % peers.len()];
            if let Err(e) = sync_with(&shared, &p.addr).await {
                tracing::debug!("sync with {}: {e}", p.addr);
                if e.starts_with(FORGED)
                    && let Ok(a) = p.addr.parse::<std::net::SocketAddr>()
                {
                    shared.offended(a.ip(), super::guard::Offense::Forged);
                }
            }
        }
        let wait = Duration::from_secs(shared.config.sync_interval.max(1));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shared.shutdown.cancelled() => return,
        }
    }
}

/// Decodes fetched records on all cores.
fn decode(values: Vec<crate::api::RawRecord>) -> Result<Vec<Record>, String> {
    use rayon::prelude::*;
    values
        .par_iter()
        .map(|v| Record::from_bytes(v.get().as_bytes()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{FORGED}: {e}"))
}

/// Ingests fetched records (checked on all cores) and tells everyone what applied.
async fn ingest(shared: &Arc<Shared>, values: Vec<crate::api::RawRecord>) -> Result<usize, String> {
    let s = shared.clone();
    let results = shared
        .tasks
        .spawn_blocking(move || s.ingest(decode(values)?).map_err(|e| e.to_string()))
        .await
        .map_err(|e| e.to_string())??;
    announce(shared, results)
}

/// Stores records checked already (see [`replay_log`]) and tells everyone what applied.
async fn store(shared: Arc<Shared>, checked: Checked) -> Result<usize, String> {
    let s = shared.clone();
    let results = shared
        .tasks
        .spawn_blocking(move || s.chain().ingest_checked(checked).map_err(|e| e.to_string()))
        .await
        .map_err(|e| e.to_string())??;
    announce(&shared, results)
}

/// Announces what applied; returns how many records did, or — after announcing them — an
/// error if the peer sent a record no honest node sends (see [`FORGED`]).
fn announce(shared: &Shared, results: Vec<Result<Outcome, RecordError>>) -> Result<usize, String> {
    shared.note_forks(&results);
    let mut forged = None;
    let mut applied = Vec::new();
    for r in results {
        match r {
            Ok(o) => applied.extend(o.applied),
            Err(e) if e.proves_misbehaviour() => forged = Some(e),
            Err(_) => {}
        }
    }
    shared.announce_applied(&applied, false);
    match forged {
        Some(e) => Err(format!("{FORGED}: {e}")),
        None => Ok(applied.len()),
    }
}

/// How a round's error begins when the peer sent a forged or malformed record: the peer's
/// address is then held to have misbehaved.
const FORGED: &str = "peer sent a bad record";

/// Replays `addr`'s application log from the start: page k+1 is fetched while page k is
/// checked on all cores, and checked while page k is stored.
async fn replay_log(shared: &Arc<Shared>, addr: &str) -> Result<(), String> {
    let fetch = |from: u64| {
        let (api, addr) = (shared.api.clone(), addr.to_string());
        tokio::spawn(async move {
            api.log(&addr, from, MAX_RECORDS_PER_PAGE)
                .await
                .map(|p| (from, p))
        })
    };
    let mut verifier = shared.chain().ledger().verifier();
    let mut storing: Option<tokio::task::JoinHandle<Result<usize, String>>> = None;
    let mut next = Some(fetch(0));
    let mut pages = 0;
    while let Some(task) = next.take() {
        let (from, page) = task
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        pages += 1;
        // A cursor must move forward, and one round is bounded; the next continues.
        if let Some(n) = page
            .next
            .filter(|n| *n > from && pages < MAX_PAGES_PER_ROUND)
            .filter(|_| !shared.shutdown.is_cancelled())
        {
            next = Some(fetch(n));
        }
        let (v, checked) = shared
            .tasks
            .spawn_blocking(move || {
                let checked = decode(page.records).map(|r| verifier.check(r));
                (verifier, checked)
            })
            .await
            .map_err(|e| e.to_string())?;
        verifier = v;
        let checked = checked?;
        if let Some(previous) = storing.take() {
            previous.await.map_err(|e| e.to_string())??;
        }
        storing = Some(shared.tasks.spawn(store(shared.clone(), checked)));
    }
    if let Some(last) = storing {
        last.await.map_err(|e| e.to_string())??;
    }
    Ok(())
}

/// One anti-entropy round with `addr`.
pub async fn sync_with(shared: &Arc<Shared>, addr: &str) -> Result<(), String> {
    let theirs = shared.api.summary(addr).await.map_err(|e| e.to_string())?;
    shared.peers.locked().set_applied(addr, theirs.applied);
    let ours = shared
        .read_view(super::api::summary_of)
        .await
        .map_err(|e| e.to_string())?;
    if theirs.digest == ours.digest {
        return Ok(());
    }
    // Far behind: replay the peer's log, dependencies first.
    if ours.applied.saturating_mul(2) < theirs.applied {
        replay_log(shared, addr).await?;
        if shared.shutdown.is_cancelled() {
            return Ok(());
        }
    }
    // Then (or otherwise) chain by chain: buckets, heads, missing segments — both ways, so
    // one round also brings the peer what it lacks.
    let theirs_b = shared.api.buckets(addr).await.map_err(|e| e.to_string())?;
    let ours_b = shared
        .read_view(super::api::buckets_of)
        .await
        .map_err(|e| e.to_string())?;
    let mut push = Vec::new();
    // A peer far behind replays our log by itself, so pushing much would only double its
    // work; a little still reaches it if it cannot reach us.
    let push_limit = if theirs.applied.saturating_mul(2) < ours.applied {
        MAX_PUSH_FAR_BEHIND
    } else {
        MAX_PUSH_PER_ROUND
    };
    for b in 0..=255u8 {
        let (t, o) = (
            theirs_b.buckets.get(b as usize),
            ours_b.buckets.get(b as usize),
        );
        if t == o {
            continue;
        }
        let theirs = if t.is_none_or(|t| t.is_empty()) {
            Default::default()
        } else {
            shared
                .api
                .heads(addr, b)
                .await
                .map_err(|e| e.to_string())?
                .heads
        };
        for (account, head) in &theirs {
            let Ok(a) = account.parse::<AccountId>() else {
                continue;
            };
            let next = shared
                .view()
                .state()
                .account(&a)
                .map_or(0, |s| s.next_seq());
            let their_next = head.seq.saturating_add(1);
            if their_next < next || (their_next == next && held(shared, &head.hash)) {
                continue; // level or ahead here
            }
            // Fetch up to their head: from our next seq, or — when our chains differ at a seq
            // we both have (a fork) — from the start of that account's chain.
            let mut from = if their_next == next {
                0
            } else {
                next.min(head.seq)
            };
            let mut pages = 0;
            loop {
                let page = shared
                    .api
                    .chain(addr, account, from, MAX_RECORDS_PER_PAGE)
                    .await
                    .map_err(|e| e.to_string())?;
                ingest(shared, page.records).await?;
                pages += 1;
                match page.next {
                    Some(n) if n > from && n <= head.seq && pages < MAX_PAGES_PER_ROUND => from = n,
                    _ => break,
                }
            }
        }
        // What this node has beyond their heads in this bucket goes to them.
        let l = shared.view();
        for (a, st) in &l.state().accounts_in_bucket(b) {
            let Some(mine) = st.head else { continue };
            let their_next = theirs
                .get(&a.to_string())
                .map_or(0, |h| h.seq.saturating_add(1));
            if mine.seq + 1 > their_next && push.len() < push_limit {
                push.extend(l.chain_of(a, their_next, push_limit - push.len()));
            }
        }
    }
    if !push.is_empty() {
        shared
            .api
            .submit(addr, push.iter().map(|r| r.to_raw()).collect())
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn held(shared: &Shared, h: &RecordHash) -> bool {
    shared.view().holds(h)
}

/// Pushes records made here to every confirmed peer, a batch at a time.
pub async fn gossip(shared: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<RecordHash>) {
    loop {
        let first = tokio::select! {
            h = rx.recv() => h,
            _ = shared.shutdown.cancelled() => return,
        };
        let Some(first) = first else { return };
        let mut batch = vec![first];
        // Gather what arrives in the next moments into the same push.
        let deadline = tokio::time::Instant::now() + Duration::from_millis(20);
        while batch.len() < MAX_RECORDS_PER_CALL {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(h)) => batch.push(h),
                _ => break,
            }
        }
        let records: Vec<crate::api::RawRecord> = {
            let l = shared.view();
            batch
                .iter()
                .filter_map(|h| l.record(h))
                .map(|r| r.to_raw())
                .collect()
        };
        let peers = shared.peers.locked().confirmed();
        let pushes = peers.into_iter().map(|p| {
            let (shared, records) = (shared.clone(), records.clone());
            async move {
                if let Err(e) = shared.api.submit(&p.addr, records).await {
                    tracing::debug!("push to {}: {e}", p.addr);
                }
            }
        });
        futures::future::join_all(pushes).await;
    }
}
