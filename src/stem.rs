//! Origin privacy for new records: Dandelion++ (Fanti et al., SIGMETRICS 2018), as Monero
//! runs it. Pure: the book decides, the node's stem task (`node/stem.rs`) sends.
//!
//! A record made here does not go to every peer at once — the first node a spy hears it from
//! would be its author. It goes to one peer (the *stem*), which passes it to one of its own
//! peers, and so on, until a node that is in *fluff* mode for this epoch applies it and
//! pushes it to all its peers as usual. Each node chooses, once per epoch (about ten
//! minutes), whether it fluffs (with probability [`FLUFF_PROBABILITY`]) and which
//! [`RELAYS`] peers it stems to; the records of one inbound peer always go on to the same
//! relay (so repeated records do not reveal more of the graph), and the node's own records
//! always go to its first relay.
//!
//! Every node that holds a stem record sets an *embargo* timer with a random (exponential)
//! part: if the record has not come back fluffed when it fires, that node fluffs it itself,
//! so a peer that swallows stems delays a record but cannot lose it. The author's timer is
//! the longest, so that under such a black hole a relay rather than the author fluffs first.
//!
//! Relays hold stem records in this book only — not in the chain — so nothing a relay
//! answers shows them; [`MAX_RELAYED`] and [`MAX_RELAYED_BYTES`] bound the book.
//! (`docs/anonymity.md` says what this hides and what it does not.)

use crate::ids::RecordHash;
use crate::ledger::Record;
use rand::Rng;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// The chance that a node is a fluff node for an epoch (Dandelion++'s q; Monero uses 0.2).
pub const FLUFF_PROBABILITY: f64 = 0.2;
/// Peers a node stems to in an epoch.
pub const RELAYS: usize = 2;
/// An epoch lasts this long, plus up to [`EPOCH_JITTER_MS`] (so nodes do not change routes
/// in step).
pub const EPOCH_MS: u64 = 600_000;
pub const EPOCH_JITTER_MS: u64 = 30_000;
/// A relay's embargo: this much, plus an exponential wait of mean [`EMBARGO_MEAN_MS`].
pub const RELAY_EMBARGO_MIN_MS: u64 = 2_000;
/// The author's embargo: this much, plus the same exponential wait.
pub const OWN_EMBARGO_MIN_MS: u64 = 15_000;
pub const EMBARGO_MEAN_MS: f64 = 8_000.0;
/// An own record made before the node had a peer (its account's opening, made at its first
/// start) waits for a first relay this long at most, then goes out by itself.
pub const OWN_WAIT_FOR_RELAY_MS: u64 = 600_000;
/// The exponential part of an embargo, at most.
pub const EMBARGO_RANDOM_MAX_MS: u64 = 60_000;
/// Stem records from peers held at once, at most, and their bytes.
pub const MAX_RELAYED: usize = 512;
pub const MAX_RELAYED_BYTES: usize = 8 << 20;
/// Records of one stem message, at most.
pub const MAX_PER_MESSAGE: usize = 64;
/// Longest `from` of a stem message, in characters (an opaque token: only which relay).
pub const MAX_FROM_CHARS: usize = 128;
/// A stem record is taken only for an account's next records: one this far past the
/// account's next seq — counting the records of the account this node holds on stems, and
/// those before it in the same message — or before it, is skipped (it could not apply soon
/// anyway).
pub const SEQ_WINDOW: u64 = 128;

/// An own record that comes back is passed on this many times, like a new record, and then
/// fluffed, like a loop: as any node does with a record it gets twice, so that sending a
/// record twice to a node does not tell whether the node made it.
pub const MAX_RETURNS: u8 = 1;
/// Stem records held for one sender (an address), at most.
pub const MAX_PER_SOURCE: usize = 64;

/// Where records go next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Apply here and push to every peer.
    Fluff,
    /// Stem on to this peer (its address).
    Relay(String),
}

#[derive(Debug, Clone)]
struct Epoch {
    /// When it ends (milliseconds).
    ends: u64,
    /// How many peers there were to choose from when it began.
    chosen_from: usize,
    fluff: bool,
    relays: Vec<String>,
    /// Pins inbound peers to relays: unknown to every other node.
    secret: [u8; 32],
}

#[derive(Debug, Clone)]
struct Entry {
    record: Record,
    /// Who sent it (none for own records).
    source: Option<String>,
    bytes: usize,
    deadline: u64,
    /// Made here (applied here already, and hidden from peers until it comes back).
    own: bool,
    /// Made here before there was a relay: it waits for one (its deadline is the end of
    /// that wait, [`OWN_WAIT_FOR_RELAY_MS`]).
    waiting: bool,
    /// How often an own record came back along the stem (it is passed on again, up to
    /// [`MAX_RETURNS`] times: other nodes fluff what they see twice).
    returned: u8,
}

/// What to do with a stem message from a peer.
#[derive(Debug, Default)]
pub struct Arrival {
    /// The records to pass on, and where (none if all were known or fluffed).
    pub forward: Option<(Route, Vec<Record>)>,
    /// Records that came round a loop: fluff them here.
    pub fluff: Vec<Record>,
}

/// Why a stem message was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("the stem pool is full")]
    Full,
    #[error("at most {MAX_PER_MESSAGE} records per stem message")]
    TooMany,
}

/// The node's epoch and the stem records it holds.
#[derive(Debug, Default)]
pub struct Stem {
    epoch: Option<Epoch>,
    pool: BTreeMap<RecordHash, Entry>,
    /// Which record holds each (account, seq) in the pool: one per slot.
    slots: BTreeMap<(crate::ids::AccountId, u64), RecordHash>,
    /// Relayed records held per sender.
    per_source: BTreeMap<String, usize>,
    relayed: usize,
    relayed_bytes: usize,
}

/// A random wait of at least `min` milliseconds: exponential beyond it, cut at
/// [`EMBARGO_RANDOM_MAX_MS`].
fn embargo(min: u64, rng: &mut impl Rng) -> u64 {
    let u: f64 = rng.r#gen();
    let extra = -EMBARGO_MEAN_MS * (1.0 - u).ln();
    min + (extra as u64).min(EMBARGO_RANDOM_MAX_MS)
}

impl Stem {
    /// Starts a new epoch if the current one ended — or if the node has twice as many peers
    /// as when it began (a node that has just started knows few peers, and relays chosen
    /// among the first would carry its records for a whole epoch; doubling bounds how often
    /// new peers can make it choose again) — and replaces relays that are no longer among
    /// `peers` (the confirmed peers' addresses) with random others.
    pub fn refresh(&mut self, now: u64, peers: &[String], rng: &mut impl Rng) {
        if self
            .epoch
            .as_ref()
            .is_none_or(|e| now >= e.ends || peers.len() >= 2 * e.chosen_from.max(1))
        {
            self.epoch = Some(Epoch {
                ends: now + EPOCH_MS + rng.gen_range(0..=EPOCH_JITTER_MS),
                chosen_from: peers.len(),
                fluff: rng.gen_bool(FLUFF_PROBABILITY),
                relays: Vec::new(),
                secret: rng.r#gen(),
            });
        }
        let e = self.epoch.as_mut().expect("set above");
        e.relays.retain(|r| peers.contains(r));
        let mut free: Vec<&String> = peers.iter().filter(|p| !e.relays.contains(p)).collect();
        while e.relays.len() < RELAYS && !free.is_empty() {
            let pick = free.swap_remove(rng.gen_range(0..free.len()));
            e.relays.push(pick.clone());
        }
    }

    /// Whether this node fluffs the stems it receives in this epoch.
    pub fn is_fluff(&self) -> bool {
        self.epoch.as_ref().is_some_and(|e| e.fluff)
    }

    /// The peers it stems to in this epoch.
    pub fn relays(&self) -> &[String] {
        self.epoch.as_ref().map_or(&[], |e| &e.relays)
    }

    /// Where the stems of the peer `from` go: always the same relay within an epoch.
    fn route_from(&self, from: &str) -> Route {
        match &self.epoch {
            Some(e) if !e.fluff && !e.relays.is_empty() => {
                let h = Sha256::new()
                    .chain_update(e.secret)
                    .chain_update(from.as_bytes())
                    .finalize();
                let pick = u64::from_be_bytes(h[..8].try_into().expect("8 bytes"));
                Route::Relay(e.relays[(pick % e.relays.len() as u64) as usize].clone())
            }
            _ => Route::Fluff,
        }
    }

    /// Takes records made here (applied here already): they go to the first relay whatever
    /// the epoch's mode (its address is returned). With no relay — no peer to hide them
    /// from — they are not held: the caller fluffs them.
    pub fn own(
        &mut self,
        records: Vec<(Record, usize)>,
        now: u64,
        rng: &mut impl Rng,
    ) -> Option<String> {
        let relay = self.relays().first().cloned()?;
        for (record, bytes) in records {
            // (Held as a relayed record before, say one gathered by quorum here too: now own.)
            self.seen(&[record.hash()]);
            let deadline = now + embargo(OWN_EMBARGO_MIN_MS, rng);
            self.insert(Entry {
                record,
                source: None,
                bytes,
                deadline,
                own: true,
                waiting: false,
                returned: 0,
            });
        }
        Some(relay)
    }

    /// Holds records made here before the node has a peer (its account's opening, made as
    /// it first starts): they wait for a first relay — see [`Stem::depart`] — and go out
    /// by themselves after [`OWN_WAIT_FOR_RELAY_MS`]. (A node that has never had a peer
    /// has nobody to hide them from, but the first peer it meets would be the first to get
    /// them from it, and learn its author.)
    pub fn own_until_relay(&mut self, records: Vec<(Record, usize)>, now: u64) {
        for (record, bytes) in records {
            self.seen(&[record.hash()]);
            self.insert(Entry {
                record,
                source: None,
                bytes,
                deadline: now + OWN_WAIT_FOR_RELAY_MS,
                own: true,
                waiting: true,
                returned: 0,
            });
        }
    }

    /// The own records that waited for a relay, once there is one: they leave for it now,
    /// with an author's embargo from now.
    pub fn depart(&mut self, now: u64, rng: &mut impl Rng) -> Option<(String, Vec<Record>)> {
        let relay = self.relays().first().cloned()?;
        let mut leaving = Vec::new();
        for e in self.pool.values_mut().filter(|e| e.waiting) {
            e.waiting = false;
            e.deadline = now + embargo(OWN_EMBARGO_MIN_MS, rng);
            leaving.push(e.record.clone());
        }
        (!leaving.is_empty()).then_some((relay, leaving))
    }

    /// Takes a stem message from the peer `from`, sent from `source` (an address; empty: one
    /// held to the pool's bounds only) (its records checked already, each with its size): the new ones are held and passed on along `from`'s route; an own record that
    /// came back is passed on again (the author fluffing it would name itself); any other
    /// record seen before came round a loop and is fluffed here.
    pub fn arrived(
        &mut self,
        records: Vec<(Record, usize)>,
        from: &str,
        source: &str,
        now: u64,
        rng: &mut impl Rng,
    ) -> Result<Arrival, Refused> {
        if records.len() > MAX_PER_MESSAGE {
            return Err(Refused::TooMany);
        }
        // Each record once, and a new one only if no other record holds its slot here.
        let mut once = std::collections::BTreeSet::new();
        let records: Vec<(Record, usize)> = records
            .into_iter()
            .filter(|(r, _)| once.insert(r.hash()))
            .filter(|(r, _)| {
                self.pool.contains_key(&r.hash())
                    || !self.slots.contains_key(&(r.account(), r.seq()))
            })
            .collect();
        let new: Vec<usize> = records
            .iter()
            .filter(|(r, _)| !self.pool.contains_key(&r.hash()))
            .map(|(_, b)| *b)
            .collect();
        let from_source = self.per_source.get(source).copied().unwrap_or(0);
        if self.relayed + new.len() > MAX_RELAYED
            || self.relayed_bytes + new.iter().sum::<usize>() > MAX_RELAYED_BYTES
            || (!source.is_empty() && from_source + new.len() > MAX_PER_SOURCE)
        {
            return Err(Refused::Full);
        }
        let mut out = Arrival::default();
        let mut forward = Vec::new();
        for (record, bytes) in records {
            match self.pool.get_mut(&record.hash()) {
                Some(e) if e.own && e.returned < MAX_RETURNS => {
                    e.returned += 1;
                    forward.push(record);
                }
                Some(_) => out.fluff.push(record),
                None => {
                    let deadline = now + embargo(RELAY_EMBARGO_MIN_MS, rng);
                    self.insert(Entry {
                        record: record.clone(),
                        source: Some(source.to_string()),
                        bytes,
                        deadline,
                        own: false,
                        waiting: false,
                        returned: 0,
                    });
                    forward.push(record);
                }
            }
        }
        if !forward.is_empty() {
            out.forward = Some((self.route_from(from), forward));
        }
        Ok(out)
    }

    fn insert(&mut self, e: Entry) {
        let h = e.record.hash();
        self.slots.insert((e.record.account(), e.record.seq()), h);
        if let Some(source) = &e.source {
            self.relayed += 1;
            self.relayed_bytes += e.bytes;
            *self.per_source.entry(source.clone()).or_default() += 1;
        }
        self.pool.insert(h, e);
    }

    /// Forgets records seen fluffed (they reached this node by another way, or it fluffed
    /// them); true if an own record was among them.
    pub fn seen<'a>(&mut self, hashes: impl IntoIterator<Item = &'a RecordHash>) -> bool {
        let mut own = false;
        for h in hashes {
            if let Some(e) = self.pool.remove(h) {
                own |= e.own;
                let slot = (e.record.account(), e.record.seq());
                if self.slots.get(&slot) == Some(h) {
                    self.slots.remove(&slot);
                }
                if let Some(source) = &e.source {
                    self.relayed -= 1;
                    self.relayed_bytes -= e.bytes;
                    if let Some(n) = self.per_source.get_mut(source) {
                        *n -= 1;
                        if *n == 0 {
                            self.per_source.remove(source);
                        }
                    }
                }
            }
        }
        own
    }

    /// Forgets the records held here that came back: those of `records` held with the same
    /// signatures (a copy with others proves nothing); true if an own one was among them.
    pub fn came_back(&mut self, records: &[Record]) -> bool {
        let back: Vec<RecordHash> = records
            .iter()
            .filter(|r| self.holds_same(r))
            .map(Record::hash)
            .collect();
        self.seen(&back)
    }

    /// Whether `r` is held here with the same signatures: the very record held (checked
    /// when it was made or taken), not a copy with others (the hash leaves them out).
    pub fn holds_same(&self, r: &Record) -> bool {
        self.pool
            .get(&r.hash())
            .is_some_and(|e| e.record.sigs() == r.sigs())
    }

    /// Takes out the records whose embargo has passed: the caller fluffs them.
    pub fn due(&mut self, now: u64) -> Vec<Record> {
        self.take(|e| e.deadline <= now)
    }

    /// Takes out every own record on its stem (to fluff them now): not those still waiting
    /// for a relay.
    pub fn take_own(&mut self) -> Vec<Record> {
        self.take(|e| e.own && !e.waiting)
    }

    /// Takes out the own records still waiting for a relay (to fluff them now: the node is
    /// alone).
    pub fn take_waiting(&mut self) -> Vec<Record> {
        self.take(|e| e.waiting)
    }

    fn take(&mut self, pick: impl Fn(&Entry) -> bool) -> Vec<Record> {
        let picked: Vec<RecordHash> = self
            .pool
            .iter()
            .filter(|(_, e)| pick(e))
            .map(|(h, _)| *h)
            .collect();
        let records = picked
            .iter()
            .filter_map(|h| self.pool.get(h).map(|e| e.record.clone()))
            .collect();
        self.seen(&picked);
        records
    }

    /// Whether a record made here is still on its stem (hidden from peers).
    pub fn holds_own(&self) -> bool {
        self.pool.values().any(|e| e.own)
    }

    /// Whether `h` is held as a stem record (own or relayed).
    pub fn holds(&self, h: &RecordHash) -> bool {
        self.pool.contains_key(h)
    }

    /// The account's next seq after `next` (its chain's) and the records of it held here on
    /// stems that follow on from there.
    pub fn next_seq(&self, account: &crate::ids::AccountId, next: u64) -> u64 {
        let mut n = next;
        while self.slots.contains_key(&(*account, n)) {
            n += 1;
        }
        n
    }

    /// Whether `h` is a record made here, still on its stem.
    pub fn holds_own_record(&self, h: &RecordHash) -> bool {
        self.pool.get(h).is_some_and(|e| e.own)
    }

    /// The earliest embargo deadline, if any record is held.
    pub fn next_deadline(&self) -> Option<u64> {
        self.pool.values().map(|e| e.deadline).min()
    }

    /// Stem records from peers held, and their bytes.
    pub fn relayed(&self) -> (usize, usize) {
        (self.relayed, self.relayed_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::record::{Body, Content, RECORD_VERSION, Transfer};
    use crate::ledger::tests::{key, params};
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    /// A distinct record for each `i`, in a slot of its own (seq `i`): the book looks at
    /// nothing else.
    fn rec(i: u64) -> (Record, usize) {
        let p = params();
        let body = Body {
            version: RECORD_VERSION,
            cod: p.cod,
            time: i,
            account: key("node1").public().node_id(&p.cod),
            seq: i,
            prev: None,
            content: Content::Transfer(Transfer {
                claims: Vec::new(),
                key: None,
                memo: None,
                outputs: Vec::new(),
                rekey: None,
                redeem: Default::default(),
                vouch: Vec::new(),
            }),
        };
        (Record::new(body, Vec::new()), 1000)
    }

    fn peers(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("127.0.0.1:{}", 7000 + i)).collect()
    }

    /// A book in relay (not fluff) mode with relays among `n` peers.
    fn relay_book(n: usize, rng: &mut StdRng) -> Stem {
        loop {
            let mut s = Stem::default();
            s.refresh(0, &peers(n), rng);
            if !s.is_fluff() {
                return s;
            }
        }
    }

    fn fluff_book(n: usize, rng: &mut StdRng) -> Stem {
        loop {
            let mut s = Stem::default();
            s.refresh(0, &peers(n), rng);
            if s.is_fluff() {
                return s;
            }
        }
    }

    #[test]
    fn an_epoch_keeps_its_relays_replaces_lost_ones_and_ends() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut s = Stem::default();
        s.refresh(0, &peers(10), &mut rng);
        let first = s.relays().to_vec();
        assert_eq!(first.len(), RELAYS);
        assert_ne!(first[0], first[1]);
        s.refresh(1000, &peers(10), &mut rng);
        assert_eq!(s.relays(), first, "stable within an epoch");
        // One relay gone: replaced by another peer, the other kept.
        let fewer: Vec<String> = peers(10).into_iter().filter(|p| *p != first[0]).collect();
        s.refresh(2000, &fewer, &mut rng);
        assert_eq!(s.relays().len(), RELAYS);
        assert!(s.relays().contains(&first[1]));
        assert!(!s.relays().contains(&first[0]));
        // Fewer peers than relays: all of them; none: none.
        s.refresh(3000, &peers(1), &mut rng);
        assert_eq!(s.relays(), &peers(1)[..]);
        s.refresh(4000, &[], &mut rng);
        assert!(s.relays().is_empty());
        // After the epoch, new choices are made (over many epochs, all peers get chosen).
        let mut chosen = std::collections::BTreeSet::new();
        let mut t = 0;
        for _ in 0..200 {
            t += EPOCH_MS + EPOCH_JITTER_MS;
            s.refresh(t, &peers(10), &mut rng);
            chosen.extend(s.relays().iter().cloned());
        }
        assert_eq!(chosen.len(), 10);
    }

    #[test]
    fn a_node_chooses_again_as_its_peers_double_not_for_each_new_peer() {
        let mut rng = StdRng::seed_from_u64(10);
        let mut s = Stem::default();
        // Just started: one peer known (say, a static one).
        s.refresh(0, &peers(1), &mut rng);
        assert_eq!(s.relays(), &peers(1)[..]);
        let mut epochs = 0;
        let mut secret = s.epoch.as_ref().unwrap().secret;
        for n in 2..=64 {
            s.refresh(n as u64, &peers(n), &mut rng);
            let now = s.epoch.as_ref().unwrap().secret;
            if now != secret {
                epochs += 1;
                secret = now;
                assert!(n.is_power_of_two(), "a new epoch at {n} peers");
            }
        }
        assert_eq!(epochs, 6, "at 2, 4, 8, 16, 32 and 64 peers");
        // Fewer peers start no new epoch.
        s.refresh(100, &peers(10), &mut rng);
        assert_eq!(s.epoch.as_ref().unwrap().secret, secret);
    }

    #[test]
    fn about_one_epoch_in_five_fluffs() {
        let mut rng = StdRng::seed_from_u64(2);
        let mut s = Stem::default();
        let (mut fluff, epochs) = (0, 10_000);
        let mut t = 0;
        for _ in 0..epochs {
            s.refresh(t, &peers(4), &mut rng);
            fluff += s.is_fluff() as usize;
            t += EPOCH_MS + EPOCH_JITTER_MS + 1;
        }
        let share = fluff as f64 / epochs as f64;
        assert!((0.18..0.22).contains(&share), "{share}");
    }

    #[test]
    fn stems_from_one_peer_always_take_the_same_relay_and_peers_spread_over_both() {
        let mut rng = StdRng::seed_from_u64(3);
        let mut s = relay_book(10, &mut rng);
        let mut used = std::collections::BTreeSet::new();
        for p in 0..50u64 {
            let from = format!("peer{p}");
            let mut routes = std::collections::BTreeSet::new();
            for i in 0..5 {
                let a = s
                    .arrived(vec![rec(p * 10 + i)], &from, &from, 0, &mut rng)
                    .unwrap();
                let (route, records) = a.forward.unwrap();
                assert_eq!(records.len(), 1);
                assert!(a.fluff.is_empty());
                routes.insert(format!("{route:?}"));
            }
            assert_eq!(routes.len(), 1, "one route per inbound peer");
            used.extend(routes);
        }
        assert_eq!(used.len(), RELAYS, "{used:?}");
        assert!(used.iter().all(|r| r.starts_with("Relay")));
    }

    #[test]
    fn a_fluff_node_fluffs_what_it_receives_but_stems_its_own() {
        let mut rng = StdRng::seed_from_u64(4);
        let mut s = fluff_book(10, &mut rng);
        let a = s.arrived(vec![rec(1)], "p", "src", 0, &mut rng).unwrap();
        assert_eq!(a.forward.unwrap().0, Route::Fluff);
        let first = s.relays()[0].clone();
        assert_eq!(s.own(vec![rec(2)], 0, &mut rng), Some(first));
        assert!(s.holds_own());
    }

    #[test]
    fn without_peers_own_records_are_not_held() {
        let mut rng = StdRng::seed_from_u64(5);
        let mut s = Stem::default();
        s.refresh(0, &[], &mut rng);
        assert_eq!(s.own(vec![rec(1), rec(2)], 0, &mut rng), None);
        assert!(!s.holds_own());
        assert!(!s.holds(&rec(1).0.hash()));
        // Stems from a peer are fluffed too (no relay to pass them to).
        let a = s.arrived(vec![rec(3)], "p", "src", 0, &mut rng).unwrap();
        assert_eq!(a.forward.unwrap().0, Route::Fluff);
    }

    #[test]
    fn an_opening_made_before_any_peer_waits_for_the_first_relay() {
        let mut rng = StdRng::seed_from_u64(11);
        let mut s = Stem::default();
        s.refresh(0, &[], &mut rng);
        s.own_until_relay(vec![rec(0)], 0);
        assert!(s.holds_own() && s.holds_own_record(&rec(0).0.hash()));
        assert_eq!(s.depart(10, &mut rng), None, "no relay yet");
        assert!(s.take_own().is_empty(), "not fluffed while it waits");
        assert_eq!(s.due(OWN_WAIT_FOR_RELAY_MS - 1), vec![]);
        // A first peer: it leaves for it, once, with an author's embargo from then.
        s.refresh(5_000, &peers(1), &mut rng);
        let (relay, leaving) = s.depart(5_000, &mut rng).unwrap();
        assert_eq!((relay, leaving), (peers(1)[0].clone(), vec![rec(0).0]));
        assert_eq!(s.depart(5_001, &mut rng), None);
        let deadline = s.next_deadline().unwrap();
        assert!(deadline >= 5_000 + OWN_EMBARGO_MIN_MS, "{deadline}");
        assert!(deadline <= 5_000 + OWN_EMBARGO_MIN_MS + EMBARGO_RANDOM_MAX_MS);
        assert_eq!(
            s.take_own(),
            vec![rec(0).0],
            "on its stem now, like any own record"
        );

        // With no peer ever, it goes out by itself when the wait ends.
        let mut s = Stem::default();
        s.refresh(0, &[], &mut rng);
        s.own_until_relay(vec![rec(0)], 1_000);
        assert_eq!(s.due(1_000 + OWN_WAIT_FOR_RELAY_MS), vec![rec(0).0]);
        assert!(!s.holds_own());
        // A node found alone takes it out at once; an own record on its stem stays.
        s.own_until_relay(vec![rec(0)], 0);
        s.refresh(1, &peers(1), &mut rng);
        s.own(vec![rec(1)], 1, &mut rng);
        s.refresh(2, &[], &mut rng);
        assert_eq!(s.take_waiting(), vec![rec(0).0]);
        assert!(s.holds_own_record(&rec(1).0.hash()));
        assert!(s.seen(&[rec(1).0.hash()]));
        // It came back (a peer had it some other way) before leaving: forgotten.
        s.own_until_relay(vec![rec(0)], 0);
        assert!(s.came_back(&[rec(0).0]));
        assert!(!s.holds_own());
    }

    #[test]
    fn a_record_back_round_a_loop_is_fluffed_and_an_own_one_goes_round_again() {
        let mut rng = StdRng::seed_from_u64(6);
        let mut s = relay_book(3, &mut rng);
        let a = s.arrived(vec![rec(1)], "p", "src", 0, &mut rng).unwrap();
        assert!(a.forward.is_some());
        let again = s
            .arrived(vec![rec(1), rec(2)], "q", "src", 0, &mut rng)
            .unwrap();
        assert_eq!(again.fluff.len(), 1);
        assert_eq!(again.fluff[0].hash(), rec(1).0.hash());
        assert_eq!(again.forward.unwrap().1[0].hash(), rec(2).0.hash());
        s.own(vec![rec(3)], 0, &mut rng);
        for _ in 0..MAX_RETURNS {
            let back = s.arrived(vec![rec(3)], "p", "src", 0, &mut rng).unwrap();
            assert!(back.fluff.is_empty(), "the author does not name itself");
            assert_eq!(back.forward.unwrap().1.len(), 1);
        }
        let bounced = s.arrived(vec![rec(3)], "p", "src", 0, &mut rng).unwrap();
        assert_eq!(bounced.fluff.len(), 1);
        assert!(bounced.forward.is_none());
        // Own records count against no cap; relayed ones do.
        assert_eq!(s.relayed(), (2, 2000));
    }

    #[test]
    fn the_pool_is_bounded_in_records_and_bytes() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut s = relay_book(3, &mut rng);
        let many: Vec<_> = (0..=MAX_PER_MESSAGE as u64).map(rec).collect();
        assert_eq!(
            s.arrived(many, "p", "src", 0, &mut rng).unwrap_err(),
            Refused::TooMany
        );
        for batch in 0..(MAX_RELAYED / MAX_PER_MESSAGE) as u64 {
            let records = (0..MAX_PER_MESSAGE as u64)
                .map(|i| (rec(batch * 1000 + i).0, 10))
                .collect();
            s.arrived(records, "p", &format!("src{batch}"), 0, &mut rng)
                .unwrap();
        }
        assert_eq!(s.relayed().0, MAX_RELAYED);
        assert_eq!(
            s.arrived(vec![rec(999_999)], "p", "src", 0, &mut rng)
                .unwrap_err(),
            Refused::Full
        );
        // Records already held do not count again (a loop still gets through).
        assert_eq!(
            s.arrived(vec![(rec(0).0, 10)], "p", "src", 0, &mut rng)
                .unwrap()
                .fluff
                .len(),
            1
        );
        // Seen records make room.
        s.seen(&[rec(1).0.hash()]);
        s.arrived(vec![rec(999_999)], "p", "src", 0, &mut rng)
            .unwrap();
        // Bytes.
        let mut s = relay_book(3, &mut rng);
        s.arrived(
            vec![(rec(1).0, MAX_RELAYED_BYTES - 10)],
            "p",
            "src",
            0,
            &mut rng,
        )
        .unwrap();
        assert_eq!(
            s.arrived(vec![(rec(2).0, 11)], "p", "src", 0, &mut rng)
                .unwrap_err(),
            Refused::Full
        );
        s.arrived(vec![(rec(2).0, 10)], "p", "src", 0, &mut rng)
            .unwrap();
        assert_eq!(s.relayed(), (2, MAX_RELAYED_BYTES));
    }

    #[test]
    fn one_sender_holds_a_share_of_the_pool_one_record_a_slot_each_record_once() {
        let mut rng = StdRng::seed_from_u64(11);
        let mut s = relay_book(3, &mut rng);
        let batch = |from: u64| (from..from + MAX_PER_SOURCE as u64).map(rec).collect();
        s.arrived(batch(0), "p", "a", 0, &mut rng).unwrap();
        assert_eq!(
            s.arrived(vec![rec(1000)], "p", "a", 0, &mut rng)
                .unwrap_err(),
            Refused::Full,
            "its share is full"
        );
        s.arrived(vec![rec(1000)], "p", "b", 0, &mut rng).unwrap();
        s.seen(&[rec(0).0.hash()]);
        s.arrived(vec![rec(1001)], "p", "a", 0, &mut rng).unwrap();
        // Another record of a slot held: skipped, not held, not passed on.
        let (mut twin, len) = rec(2000);
        twin = Record::new(
            Body {
                time: 1,
                ..twin.body().clone()
            },
            Vec::new(),
        );
        s.arrived(vec![rec(2000)], "p", "c", 0, &mut rng).unwrap();
        let a = s
            .arrived(vec![(twin.clone(), len)], "p", "c", 0, &mut rng)
            .unwrap();
        assert!(a.forward.is_none() && a.fluff.is_empty());
        assert!(!s.holds(&twin.hash()));
        // A record twice in one message counts once (it is no loop).
        let a = s
            .arrived(vec![rec(3000), rec(3000)], "p", "c", 0, &mut rng)
            .unwrap();
        assert_eq!(a.forward.unwrap().1.len(), 1);
        assert!(a.fluff.is_empty());
    }

    #[test]
    fn an_accounts_next_seq_counts_its_records_held_on_stems() {
        let mut rng = StdRng::seed_from_u64(14);
        let mut s = relay_book(3, &mut rng);
        let account = rec(0).0.account();
        assert_eq!(s.next_seq(&account, 5), 5);
        s.arrived(vec![rec(5), rec(6), rec(8)], "p", "a", 0, &mut rng)
            .unwrap();
        assert_eq!(s.next_seq(&account, 5), 7, "a gap at 7");
        assert_eq!(s.next_seq(&account, 4), 4);
        s.seen(&[rec(5).0.hash()]);
        assert_eq!(s.next_seq(&account, 6), 7);
    }

    #[test]
    fn an_own_record_sent_twice_is_treated_as_any_record_sent_twice() {
        let mut rng = StdRng::seed_from_u64(12);
        let mut s = relay_book(3, &mut rng);
        s.own(vec![rec(1)], 0, &mut rng);
        // rec(1) made here, rec(2) not: a peer sending each twice sees the same.
        for r in [rec(1), rec(2)] {
            let first = s.arrived(vec![r.clone()], "p", "a", 0, &mut rng).unwrap();
            assert!(first.forward.is_some() && first.fluff.is_empty());
            let second = s.arrived(vec![r], "p", "a", 0, &mut rng).unwrap();
            assert!(second.forward.is_none());
            assert_eq!(second.fluff.len(), 1);
        }
    }

    #[test]
    fn an_own_record_replaces_a_relayed_one_and_the_counts_stay_true() {
        let mut rng = StdRng::seed_from_u64(13);
        let mut s = relay_book(3, &mut rng);
        s.arrived(vec![rec(1)], "p", "a", 0, &mut rng).unwrap();
        assert_eq!(s.relayed(), (1, 1000));
        s.own(vec![rec(1)], 0, &mut rng);
        assert_eq!(s.relayed(), (0, 0));
        assert!(s.holds_own_record(&rec(1).0.hash()));
        assert!(s.seen(&[rec(1).0.hash()]));
        assert_eq!(s.relayed(), (0, 0));
        assert!(!s.holds(&rec(1).0.hash()));
    }

    #[test]
    fn embargoes_end_after_their_random_waits_the_authors_last() {
        let mut rng = StdRng::seed_from_u64(8);
        let mut s = relay_book(3, &mut rng);
        let relayed = MAX_RELAYED as u64;
        for i in 0..relayed {
            let source = format!("src{}", i as usize / MAX_PER_SOURCE);
            s.arrived(vec![rec(i)], "p", &source, 0, &mut rng).unwrap();
        }
        let own = 2000u64;
        s.own((relayed..relayed + own).map(rec).collect(), 0, &mut rng);
        assert!(s.due(RELAY_EMBARGO_MIN_MS - 1).is_empty());
        let (mut relay_waits, mut own_waits) = (Vec::new(), Vec::new());
        let mut t = RELAY_EMBARGO_MIN_MS;
        while s.next_deadline().is_some() {
            for r in s.due(t) {
                if r.body().time < relayed {
                    relay_waits.push(t - RELAY_EMBARGO_MIN_MS);
                } else {
                    assert!(t >= OWN_EMBARGO_MIN_MS, "an own record waits its minimum");
                    own_waits.push(t - OWN_EMBARGO_MIN_MS);
                }
            }
            t += 100;
        }
        assert_eq!(
            (relay_waits.len(), own_waits.len()),
            (relayed as usize, own as usize)
        );
        assert!(t <= OWN_EMBARGO_MIN_MS + EMBARGO_RANDOM_MAX_MS + 200);
        // The random part is exponential with the stated mean (within a few percent), for
        // relays and authors alike.
        for waits in [&relay_waits, &own_waits] {
            let mean = waits.iter().sum::<u64>() as f64 / waits.len() as f64;
            assert!(
                (EMBARGO_MEAN_MS * 0.88..EMBARGO_MEAN_MS * 1.12).contains(&mean),
                "{mean}"
            );
        }
        assert_eq!(s.relayed(), (0, 0));
        assert!(!s.holds_own());
    }

    #[test]
    fn a_record_comes_back_only_with_its_own_signatures() {
        let mut rng = StdRng::seed_from_u64(15);
        let mut s = relay_book(3, &mut rng);
        let (r, len) = rec(1);
        let signed = Record::new(
            r.body().clone(),
            crate::ledger::add_signature(r.body(), &[], key("node1")),
        );
        s.own(vec![(signed.clone(), len)], 0, &mut rng);
        // The same body with other signatures (the hash is the body's): not back.
        let forged = Record::new(
            r.body().clone(),
            crate::ledger::add_signature(r.body(), &[], key("node2")),
        );
        assert_eq!(forged.hash(), signed.hash());
        assert!(s.holds_same(&signed));
        assert!(!s.holds_same(&forged) && !s.holds_same(&r));
        assert!(!s.came_back(&[forged, r]));
        assert!(s.holds_own());
        assert!(s.came_back(&[signed]));
        assert!(!s.holds_own());
    }

    #[test]
    fn seen_and_take_own_forget_what_they_name() {
        let mut rng = StdRng::seed_from_u64(9);
        let mut s = relay_book(3, &mut rng);
        s.arrived(vec![rec(1)], "p", "src", 0, &mut rng).unwrap();
        s.own(vec![rec(2), rec(3)], 0, &mut rng);
        assert!(!s.seen(&[rec(1).0.hash()]), "not own");
        assert_eq!(s.relayed(), (0, 0));
        assert!(s.seen(&[rec(2).0.hash()]));
        assert!(s.holds_own());
        let taken = s.take_own();
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0].hash(), rec(3).0.hash());
        assert!(!s.holds_own());
        assert!(s.next_deadline().is_none());
    }
}
