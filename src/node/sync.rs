//! Keeping the chain in step with peers. Push: records made here go to every confirmed peer
//! at once. Pull (anti-entropy): now and then, and whenever a peer appears, compare a short
//! summary with a random peer; only if it differs compare per-bucket digests, then heads,
//! then fetch the missing chain segments. A node far behind (fresh, or back from a long
//! absence) instead replays the peer's application log, which lists dependencies first.

use super::Shared;
use crate::api::{MAX_RECORDS_PER_CALL, MAX_RECORDS_PER_PAGE, Summary};
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

/// Why a sync round with a peer ended early.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The peer did not answer as it should: unreachable, an error, a malformed answer.
    #[error(transparent)]
    Peer(#[from] crate::api::client::ApiError),
    /// The peer sent a record no honest node sends (malformed, or forged): it misbehaved.
    #[error("peer sent a bad record: {0}")]
    Forged(String),
    /// This node's store failed.
    #[error("store: {0}")]
    Store(#[from] crate::store::StoreError),
    /// Work this round started ended without its result.
    #[error("{0}")]
    Task(#[from] tokio::task::JoinError),
    /// The node is stopping.
    #[error("the node is stopping")]
    Stopped,
}

/// Compares chains with one confirmed peer after another, every `sync_interval`.
pub async fn run(shared: Arc<Shared>) {
    let mut round = 0usize;
    let period = Duration::from_secs(shared.config.sync_interval.max(1));
    super::every(&shared.shutdown, period, || {
        let mut peers = shared.peers.locked().confirmed();
        peers.retain(|p| !shared.is_banned(&p.addr));
        // In turn, so every peer is compared with within a few intervals.
        round = round.wrapping_add(1);
        let peer = (!peers.is_empty()).then(|| peers[round % peers.len()].addr.clone());
        let shared = shared.clone();
        async move {
            let Some(addr) = peer else { return };
            let synced = sync_with(&shared, &addr).await;
            // (After the records: requests built on what the peer holds check against them.)
            super::signing::pull(&shared, &addr).await;
            let outcome = match &synced {
                Ok(()) => "ok",
                Err(SyncError::Forged(_)) => "forged",
                Err(_) => "failed",
            };
            metrics::counter!("cod_sync_rounds_total", "outcome" => outcome).increment(1);
            match synced {
                Ok(()) => shared
                    .synced
                    .store(true, std::sync::atomic::Ordering::Relaxed),
                Err(e @ SyncError::Forged(_)) => {
                    tracing::debug!("sync with {addr}: {e}");
                    if let Ok(a) = addr.parse::<std::net::SocketAddr>() {
                        shared.offended(a.ip(), super::guard::Offense::Forged);
                    }
                }
                Err(e) => tracing::debug!("sync with {addr}: {e}"),
            }
        }
    })
    .await
}

/// Decodes fetched records on all cores.
fn decode(values: Vec<crate::api::RawRecord>) -> Result<Vec<Record>, SyncError> {
    use rayon::prelude::*;
    values
        .par_iter()
        .map(|v| Record::from_bytes(v.get().as_bytes()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| SyncError::Forged(e.to_string()))
}

/// Ingests fetched records (checked on all cores) and tells everyone what applied. Whether
/// any was held back, dated too far after this node's clock: the account's later records,
/// dated no earlier, would be too.
async fn ingest(
    shared: &Arc<Shared>,
    values: Vec<crate::api::RawRecord>,
) -> Result<bool, SyncError> {
    let s = shared.clone();
    let results = shared
        .tasks
        .spawn_blocking(move || Ok::<_, SyncError>(s.ingest(decode(values)?)?))
        .await??;
    let ahead = results
        .iter()
        .any(|r| matches!(r, Err(RecordError::Ahead { .. })));
    announce(shared, results)?;
    Ok(ahead)
}

/// Stores records checked already (see [`replay_log`]) and tells everyone what applied.
async fn store(shared: Arc<Shared>, checked: Checked) -> Result<usize, SyncError> {
    let s = shared.clone();
    let results = shared
        .tasks
        .spawn_blocking(move || {
            let records: Vec<Record> = checked.items().iter().map(|(r, _)| r.clone()).collect();
            s.stem_seen(&records);
            s.ingest_checked(checked)
        })
        .await??;
    announce(&shared, results)
}

/// Announces what applied; returns how many records did, or — after announcing them — an
/// error if the peer sent a record no honest node sends.
fn announce(
    shared: &Shared,
    results: Vec<Result<Outcome, RecordError>>,
) -> Result<usize, SyncError> {
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
        Some(e) => Err(SyncError::Forged(e.to_string())),
        None => Ok(applied.len()),
    }
}

/// Replays `addr`'s application log from the start: page k+1 is fetched while page k is
/// checked on all cores, and checked while page k is stored.
async fn replay_log(shared: &Arc<Shared>, addr: &str) -> Result<(), SyncError> {
    let fetch = |from: u64| {
        let (api, addr, stop) = (
            shared.api.clone(),
            addr.to_string(),
            shared.shutdown.clone(),
        );
        shared.tasks.spawn(async move {
            tokio::select! {
                page = api.log(&addr, from, MAX_RECORDS_PER_PAGE) => Ok(page.map(|p| (from, p))?),
                _ = stop.cancelled() => Err(SyncError::Stopped),
            }
        })
    };
    let mut verifier = shared.chain().ledger().verifier();
    let mut storing: Option<tokio::task::JoinHandle<Result<usize, SyncError>>> = None;
    let mut next = Some(fetch(0));
    let mut pages = 0;
    while let Some(task) = next.take() {
        let (from, page) = task.await??;
        pages += 1;
        // A cursor must move forward, and one round is bounded; the next continues.
        if let Some(n) = page
            .next
            .filter(|n| *n > from && pages < MAX_PAGES_PER_ROUND)
            .filter(|_| !shared.shutdown.is_cancelled())
        {
            next = Some(fetch(n));
        }
        let now = shared.now();
        let (v, checked) = shared
            .tasks
            .spawn_blocking(move || {
                let checked = decode(page.records).map(|r| verifier.check_at(r, now));
                (verifier, checked)
            })
            .await?;
        verifier = v;
        let checked = checked?;
        if let Some(previous) = storing.take() {
            previous.await??;
        }
        storing = Some(shared.tasks.spawn(store(shared.clone(), checked)));
    }
    if let Some(last) = storing {
        last.await??;
    }
    Ok(())
}

/// One anti-entropy round with `addr`.
pub async fn sync_with(shared: &Arc<Shared>, addr: &str) -> Result<(), SyncError> {
    let theirs = shared.api.summary(addr).await?;
    shared.peers.locked().set_applied(addr, theirs.applied);
    // What this node shows: without its own records still on their stems (see `stem`).
    let public = shared.public_view();
    let ours = shared
        .tasks
        .spawn_blocking(move || super::api::summary_of(&public))
        .await?;
    if proofs_to_send(shared, addr, &ours, &theirs) {
        push_proofs(shared, addr).await?;
        let sent = proofs_summary(&ours, &theirs);
        let mut memo = shared.proofs_sent.locked();
        if memo.len() >= MAX_PROOF_MEMOS && !memo.contains_key(addr) {
            memo.clear();
        }
        memo.insert(addr.to_string(), sent);
    }
    if theirs.digest == ours.digest {
        return Ok(());
    }
    // Far behind: replay the peer's log, dependencies first. (Judged by what this node
    // holds, not by what it shows: while its own records are hidden it may show far less.)
    if shared.view().state().applied_count().saturating_mul(2) < theirs.applied {
        replay_log(shared, addr).await?;
        if shared.shutdown.is_cancelled() {
            return Ok(());
        }
    }
    // Then (or otherwise) chain by chain: buckets, heads, missing segments — both ways, so
    // one round also brings the peer what it lacks.
    let theirs_b = shared.api.buckets(addr).await?;
    let public = shared.public_view();
    let ours_b = shared
        .tasks
        .spawn_blocking({
            let public = public.clone();
            move || super::api::buckets_of(&public)
        })
        .await?;
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
            shared.api.heads(addr, b).await?.heads
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
            // A record made here that the peer names as a head: fetched again (only a peer
            // that sends it whole has it), which ends its stem here.
            let own_out = shared.stem_holds_own(&head.hash);
            if !own_out && (their_next < next || (their_next == next && held(shared, &head.hash))) {
                continue; // level or ahead here
            }
            // Fetch up to their head: from our next seq, or — when our chains differ at a seq
            // we both have (a fork) — from the start of that account's chain.
            let mut from = if own_out {
                head.seq
            } else if their_next == next {
                0
            } else {
                next.min(head.seq)
            };
            let mut pages = 0;
            loop {
                let page = shared
                    .api
                    .chain(addr, account, from, MAX_RECORDS_PER_PAGE)
                    .await?;
                if ingest(shared, page.records).await? {
                    break; // (the rest waits for this node's clock)
                }
                pages += 1;
                match page.next {
                    Some(n) if n > from && n <= head.seq && pages < MAX_PAGES_PER_ROUND => from = n,
                    _ => break,
                }
            }
        }
        // What this node shows beyond their heads in this bucket goes to them.
        let l = &public;
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
            .await?;
    }
    Ok(())
}

/// Whether to send `addr` this node's double-spend proofs. Sync serves applied records
/// only: a peer that holds fewer proofs than this node (it came late, or from elsewhere), or
/// as many but others, is sent them (found by the fault runs: two nodes that had each missed
/// the other's double spend held one proof each, and neither was ever sent the other's). (A
/// node older than the digest says only how many it holds.) Not again while both nodes'
/// proofs are as when they were last sent: what the peer did not take then (a slot holding
/// its most records already, proofs beyond one round's) it would not take now.
fn proofs_to_send(shared: &Shared, addr: &str, ours: &Summary, theirs: &Summary) -> bool {
    let others = !theirs.forks_digest.is_empty() && theirs.forks_digest != ours.forks_digest;
    let differ = ours.forks > theirs.forks || (ours.forks > 0 && others);
    differ && shared.proofs_sent.locked().get(addr) != Some(&proofs_summary(ours, theirs))
}

/// Both nodes' proofs, as [`proofs_to_send`] remembers them.
fn proofs_summary(ours: &Summary, theirs: &Summary) -> String {
    format!(
        "{} {} {} {}",
        ours.forks, ours.forks_digest, theirs.forks, theirs.forks_digest
    )
}

/// Peers whose last proofs sent are remembered, at most (then forgotten all at once).
const MAX_PROOF_MEMOS: usize = 1024;

/// Double-spend proofs sent to a peer in one round, at most (records).
const MAX_PROOFS_PUSHED: usize = 128;

/// Sends `addr` the records of the forked slots this node holds (from the last slot, by
/// account and seq), at most [`MAX_PROOFS_PUSHED`].
async fn push_proofs(shared: &Arc<Shared>, addr: &str) -> Result<(), SyncError> {
    let public = shared.public_view();
    let records = shared
        .tasks
        .spawn_blocking(move || {
            let l = &public;
            let mut forks = l.forks();
            forks.reverse();
            forks
                .into_iter()
                .flat_map(|(_, hashes)| hashes)
                .filter_map(|h| l.record(&h))
                .take(MAX_PROOFS_PUSHED)
                .map(|r| r.to_raw())
                .collect::<Vec<_>>()
        })
        .await?;
    if !records.is_empty() {
        shared.api.submit(addr, records).await?;
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
        tokio::select! {
            _ = futures::future::join_all(pushes) => {}
            _ = shared.shutdown.cancelled() => return,
        }
    }
}
