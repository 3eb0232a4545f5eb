//! Dandelion++ in the daemon; the rules are [`crate::stem`]'s. A record made here (a
//! transfer, a record this node gathered the quorum for) is applied here, then sent along
//! its stem; until it comes back from a peer, what peers can read of this node — the REST
//! API, sync rounds, mirrors, archive torrents — is the chain as it was before it (the
//! *public view*, a snapshot). Stems from peers are checked, held unapplied in the book,
//! and passed on or fluffed; a task fluffs what outlived its embargo.

use super::Shared;
use crate::chain::View;
use crate::ids::RecordHash;
use crate::ledger::{Check, Record};
use crate::lock::Locked;
use crate::stem::{Arrival, Route};
use sha2::Digest;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// The longest the node hides from peers what it applied while its own records are on their
/// stems; past it, they are fluffed (a node that makes records without pause still shows
/// its chain).
const MAX_HIDDEN: Duration = Duration::from_secs(30);
/// A stem message to a relay that takes longer has failed; through a proxy (a Tor circuit
/// to build), [`STEM_CALL_PROXIED`].
const STEM_CALL: Duration = Duration::from_secs(10);
const STEM_CALL_PROXIED: Duration = Duration::from_secs(60);

/// Milliseconds on a monotonic clock: the book's time.
fn ms() -> u64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// Held while a record is made and applied here: the chain stays hidden from peers at least
/// until the record is on its stem (see [`Shared::hide_from_peers`]).
pub struct Hiding<'a>(&'a Shared);

impl Drop for Hiding<'_> {
    fn drop(&mut self) {
        self.0.making.fetch_sub(1, Ordering::SeqCst);
        self.0.show_if_idle();
    }
}

impl Shared {
    /// The chain as peers may read it: while a record made here is on its stem, the chain
    /// as it was before that record; otherwise the chain as last committed.
    pub fn public_view(&self) -> View {
        match &*self.public.locked() {
            Some((view, _)) => view.clone(),
            None => self.view(),
        }
    }

    /// Called before making and applying a record here: from now until the record has
    /// come back from a peer (or the guard drops without one), peers read the chain as it is
    /// now. Nothing is hidden with stems off.
    pub fn hide_from_peers(&self) -> Hiding<'_> {
        let mut public = self.public.locked();
        self.making.fetch_add(1, Ordering::SeqCst);
        if self.config.peers.stem && public.is_none() {
            *public = Some((self.view(), Instant::now()));
        }
        Hiding(self)
    }

    /// Shows peers the whole chain again once no record made here is being made or on its
    /// stem.
    pub fn show_if_idle(&self) {
        let mut public = self.public.locked();
        if public.is_some()
            && self.making.load(Ordering::SeqCst) == 0
            && !self.stem.locked().holds_own()
        {
            *public = None;
            drop(public);
            self.mirror_now.notify_one();
        }
    }

    /// Sends records made here (and applied) along their stem — or, with stems off, to
    /// every peer at once.
    pub fn originated(self: &Arc<Self>, hashes: &[RecordHash]) {
        if hashes.is_empty() {
            return;
        }
        if !self.config.peers.stem {
            for h in hashes {
                let _ = self.gossip.send(*h);
            }
            return;
        }
        let records = self.made_here(hashes);
        let relay = self
            .stem_book()
            .own(records.clone(), ms(), &mut rand::thread_rng());
        match relay {
            // Sent by the stem task, with what else is made in the next moments: one stem
            // message for a burst.
            Some(_) => self
                .own_queue
                .locked()
                .extend(records.into_iter().map(|(r, _)| r)),
            // No peer to hide them from: out at once (peers that come take them by sync).
            None => {
                for h in hashes {
                    let _ = self.gossip.send(*h);
                }
            }
        }
        self.stem_wake.notify_one();
    }

    /// Like [`Shared::originated`], for records made as the node starts: with no peer yet,
    /// they wait hidden for a first relay rather than go out by themselves.
    pub fn originated_before_peers(self: &Arc<Self>, hashes: &[RecordHash]) {
        if !self.config.peers.stem || self.stem_relay().is_some() {
            return self.originated(hashes);
        }
        let records = self.made_here(hashes);
        self.stem.locked().own_until_relay(records, ms());
    }

    /// The records of `hashes` (applied here), each with its size.
    fn made_here(&self, hashes: &[RecordHash]) -> Vec<(Record, usize)> {
        let l = self.view();
        hashes
            .iter()
            .filter_map(|h| l.record(h))
            .map(|r| {
                let len = r.to_bytes().len();
                ((*r).clone(), len)
            })
            .collect()
    }

    /// Records that reached this node from a peer, whole (not merely named): the stems of
    /// those held here with the same signatures are over (an own one among them may be shown
    /// to peers now). A copy with other signatures — forged, since the hash leaves them out —
    /// ends nothing.
    pub fn stem_seen(&self, records: &[Record]) {
        let own = self.stem.locked().came_back(records);
        if own {
            self.show_if_idle();
        }
    }

    /// Whether `h` is a record made here that is still on its stem.
    pub fn stem_holds_own(&self, h: &RecordHash) -> bool {
        self.stem.locked().holds_own_record(h)
    }

    /// The peer this node's own records go to in this epoch (none with stems off or no
    /// peer).
    pub fn stem_relay(&self) -> Option<String> {
        if !self.config.peers.stem {
            return None;
        }
        self.stem_book().relays().first().cloned()
    }

    /// The stem book, its epoch brought up to date with the confirmed peers (a new epoch if
    /// due; relays that left replaced).
    fn stem_book(&self) -> std::sync::MutexGuard<'_, crate::stem::Stem> {
        let peers = self.relay_candidates();
        let mut book = self.stem.locked();
        book.refresh(ms(), &peers, &mut rand::thread_rng());
        book
    }

    /// Whether this node is alone: every discovery finished a first round, and it has no
    /// peer and no address left to try. Its records then have nobody to be hidden from (and
    /// whoever comes later knows they could only come from it).
    pub fn alone(&self) -> bool {
        self.discovering.load(Ordering::SeqCst) == 0 && !self.peers.locked().has_prospects()
    }

    /// The peers a stem may go to: the confirmed ones, not banned.
    pub(crate) fn relay_candidates(&self) -> Vec<String> {
        let mut peers = self.peers.locked().confirmed();
        peers.retain(|p| !self.is_banned(&p.addr));
        peers.into_iter().map(|p| p.addr).collect()
    }
}

/// What this node calls itself in stem messages to `addr`: a token of its own for each
/// relay (a keyed hash of the address, the key made at each start), so relays cannot tell
/// that their stems come from one node — only each its own sender, for pinning its route.
fn from_token(addr: &str) -> String {
    static KEY: std::sync::OnceLock<[u8; 32]> = std::sync::OnceLock::new();
    let key = KEY.get_or_init(rand::random);
    let h = sha2::Sha256::new()
        .chain_update(key)
        .chain_update(addr.as_bytes())
        .finalize();
    hex::encode(&h[..16])
}

/// Passes records on to `addr`. If it does not take them: records from peers are fluffed
/// here; records made here go to the other relay, and failing that stay held until their
/// embargo ends (fluffing them at once would name this node their author to its peers).
fn forward(shared: &Arc<Shared>, addr: String, records: Vec<Record>) {
    let s = shared.clone();
    shared.spawn_until_stop(async move {
        if send(&s, &addr, &records).await {
            return;
        }
        let own = {
            let book = s.stem.locked();
            records.iter().all(|r| book.holds_own_record(&r.hash()))
        };
        if !own {
            tracing::debug!("stem to {addr} failed: fluffing {} records", records.len());
            fluff(&s, records).await;
            return;
        }
        let other = s
            .stem
            .locked()
            .relays()
            .iter()
            .find(|r| **r != addr)
            .cloned();
        if let Some(other) = other
            && send(&s, &other, &records).await
        {
            return;
        }
        tracing::debug!("stem of own records failed: they wait for their embargo");
    });
}

/// Sends records along a stem to `addr`: whether it took them.
async fn send(shared: &Shared, addr: &str, records: &[Record]) -> bool {
    let raw = records.iter().map(|r| r.to_raw()).collect();
    let limit = match shared.config.proxy {
        Some(_) => STEM_CALL_PROXIED,
        None => STEM_CALL,
    };
    let sent = tokio::time::timeout(limit, shared.api.stem(addr, raw, &from_token(addr))).await;
    matches!(sent, Ok(Ok(())))
}

/// Fluffs records: applies them here (an own one is applied already) and pushes every one
/// that is applied to every peer.
pub async fn fluff(shared: &Arc<Shared>, records: Vec<Record>) {
    if records.is_empty() {
        return;
    }
    let s = shared.clone();
    let _ = shared
        .tasks
        .spawn_blocking(move || {
            let mut hashes: Vec<RecordHash> = records.iter().map(Record::hash).collect();
            match s.ingest(records) {
                Ok(results) => {
                    s.note_forks(&results);
                    let applied: Vec<RecordHash> = results
                        .into_iter()
                        .flatten()
                        .flat_map(|o| o.applied)
                        .collect();
                    s.announce_applied(&applied, false);
                    // Those that waited here for these (a message that overtook an earlier
                    // one on the stem) go out with them.
                    hashes.extend(applied);
                }
                Err(e) => tracing::warn!("fluffing stem records: {e}"),
            }
            hashes.sort_unstable();
            hashes.dedup();
            let l = s.view();
            for h in hashes.iter().filter(|h| l.state().is_applied(h)) {
                let _ = s.gossip.send(*h);
            }
            s.show_if_idle();
        })
        .await;
}

/// Why a stem message was not taken.
pub enum StemRefusal {
    /// A record no honest node sends.
    Forged(String),
    Malformed(String),
    TooMany,
    Full,
}

/// A stem message, checked: the records worth holding, each with its size, the sender's
/// token, and how many records the message carried.
pub struct Checked {
    pub records: Vec<(Record, usize)>,
    pub from: String,
    pub count: usize,
}

/// Checks a stem message (blocking: signatures): the records worth holding — new ones that
/// are sound and due soon on their account's chain, and ones this node holds on a stem
/// already (a loop).
pub fn check(shared: &Shared, body: &[u8]) -> Result<Checked, StemRefusal> {
    let msg: crate::api::Stem =
        serde_json::from_slice(body).map_err(|e| StemRefusal::Malformed(e.to_string()))?;
    if msg.records.len() > crate::stem::MAX_PER_MESSAGE {
        return Err(StemRefusal::TooMany);
    }
    if msg.from.chars().count() > crate::stem::MAX_FROM_CHARS {
        return Err(StemRefusal::Malformed("from: too long".into()));
    }
    let view = shared.view();
    // (A transfer dated too far ahead: held back here, unchecked, as any way in would hold
    // it, `Verifier::check_at`.)
    let now = shared.now();
    let mut candidates = Vec::new();
    for raw in &msg.records {
        let bytes = raw.get().as_bytes();
        let r = Record::from_bytes(bytes).map_err(|e| {
            if e.proves_misbehaviour() {
                StemRefusal::Forged(e.to_string())
            } else {
                StemRefusal::Malformed(e.to_string())
            }
        })?;
        if crate::ledger::held_back(&r, now) {
            continue;
        }
        // One held on a stem already came round a loop: taken, once its signatures check
        // (the hash leaves them out, so a copy with others is not the record held).
        if !shared.stem.locked().holds(&r.hash()) {
            if view.holds(&r.hash()) {
                continue; // out already
            }
            let next = view
                .state()
                .account(&r.account())
                .map_or(0, |a| a.next_seq());
            let next = shared.stem.locked().next_seq(&r.account(), next);
            // (A burst of an account's records may come in one message: the window widens
            // by the message's size.)
            let window = crate::stem::SEQ_WINDOW + msg.records.len() as u64;
            if r.seq() < next || r.seq() >= next.saturating_add(window) {
                continue; // stale, or too far ahead to apply soon
            }
        }
        candidates.push((r, bytes.len()));
    }
    // Their signatures, on all cores.
    let sizes: Vec<usize> = candidates.iter().map(|(_, n)| *n).collect();
    let checked = view.check(candidates.into_iter().map(|(r, _)| r).collect());
    let mut taken = Vec::new();
    for ((r, check), size) in checked.into_items().into_iter().zip(sizes) {
        match check {
            Check::Sound => taken.push((r, size)),
            // The chain holds it, so it was not checked again: an own record that came back
            // along its stem (applied here as it was made) is the loop above all the same —
            // passed on once, then spread, as any node does. (Dropped, as it was, its author
            // alone swallowed it: it came out only when a relay's embargo or its own ended,
            // seconds later — and a relay that sent it there saw a black hole where the
            // author is.) Only the very record held: a copy with other signatures is not.
            Check::Held if shared.stem.locked().holds_same(&r) => taken.push((r, size)),
            Check::Refused(e) if e.proves_misbehaviour() => {
                return Err(StemRefusal::Forged(e.to_string()));
            }
            Check::Held | Check::KeyUnknown | Check::Refused(_) => {}
        }
    }
    Ok(Checked {
        records: taken,
        from: msg.from,
        count: msg.records.len(),
    })
}

/// Takes checked stem records from the peer `from`: holds them and passes them on, or
/// fluffs them (with stems off, every stem is fluffed).
pub fn arrived(
    shared: &Arc<Shared>,
    records: Vec<(Record, usize)>,
    from: &str,
    source: &str,
) -> Result<(), StemRefusal> {
    if records.is_empty() {
        return Ok(());
    }
    if !shared.config.peers.stem {
        let s = shared.clone();
        shared.spawn_until_stop(async move {
            fluff(&s, records.into_iter().map(|(r, _)| r).collect()).await
        });
        return Ok(());
    }
    let Arrival {
        forward: next,
        fluff: looped,
    } = shared
        .stem_book()
        .arrived(records, from, source, ms(), &mut rand::thread_rng())
        .map_err(|e| match e {
            crate::stem::Refused::Full => StemRefusal::Full,
            crate::stem::Refused::TooMany => StemRefusal::TooMany,
        })?;
    shared.stem_wake.notify_one();
    let mut to_fluff = looped;
    match next {
        Some((Route::Relay(addr), records)) => forward(shared, addr, records),
        Some((Route::Fluff, records)) => to_fluff.extend(records),
        None => {}
    }
    if !to_fluff.is_empty() {
        let s = shared.clone();
        shared.spawn_until_stop(async move { fluff(&s, to_fluff).await });
    }
    Ok(())
}

/// How long own records made one after another are gathered into one stem message.
const GATHER: Duration = Duration::from_millis(20);

/// Sends the own records queued to the first relay, in messages of at most
/// [`crate::stem::MAX_PER_MESSAGE`].
fn send_own(shared: &Arc<Shared>) {
    let queued = std::mem::take(&mut *shared.own_queue.locked());
    let relay = shared.stem.locked().relays().first().cloned();
    // (Records seen meanwhile are out already.)
    let queued: Vec<Record> = queued
        .into_iter()
        .filter(|r| shared.stem_holds_own(&r.hash()))
        .collect();
    let Some(relay) = relay else {
        // The peer left meanwhile: out at once, as with no peer.
        let hashes: Vec<RecordHash> = queued.iter().map(Record::hash).collect();
        shared.stem.locked().seen(&hashes);
        for h in hashes {
            let _ = shared.gossip.send(h);
        }
        shared.show_if_idle();
        return;
    };
    for chunk in queued.chunks(crate::stem::MAX_PER_MESSAGE) {
        forward(shared, relay.clone(), chunk.to_vec());
    }
}

/// Fluffs what outlived its embargo, keeps the epoch's relays among the confirmed peers,
/// and fluffs the own records of a node that has hidden its chain for too long.
pub async fn run(shared: Arc<Shared>) {
    loop {
        let wait = shared
            .stem
            .locked()
            .next_deadline()
            .map_or(Duration::from_secs(1), |d| {
                Duration::from_millis(d.saturating_sub(ms())).min(Duration::from_secs(1))
            });
        match super::pause(&shared.shutdown, wait, Some(&shared.stem_wake)).await {
            super::Paused::Stopped => return,
            super::Paused::Woken => {
                // Own records made together leave together. (The timers below run on this
                // pass too: a relay woken by stems without pause still fluffs what is due.)
                tokio::time::sleep(GATHER).await;
                send_own(&shared);
            }
            super::Paused::Elapsed => {}
        }
        let (mut due, departing) = {
            let mut book = shared.stem_book();
            (book.due(ms()), book.depart(ms(), &mut rand::thread_rng()))
        };
        if let Some((relay, records)) = departing {
            // Hidden since the node started: the limit counts from now, as they leave.
            if let Some((_, since)) = shared.public.locked().as_mut() {
                *since = Instant::now();
            }
            forward(&shared, relay, records);
        }
        let hidden_too_long = shared
            .public
            .locked()
            .as_ref()
            .is_some_and(|(_, since)| since.elapsed() > MAX_HIDDEN);
        if hidden_too_long {
            due.extend(shared.stem.locked().take_own());
        }
        if shared.alone() {
            due.extend(shared.stem.locked().take_waiting());
        }
        if !due.is_empty() {
            tracing::debug!("fluffing {} stem records whose embargo ended", due.len());
            fluff(&shared, due).await;
        }
        shared.show_if_idle();
    }
}
