//! The coin module's core: records, the rules, the state, and the engine that takes records
//! in any order and always reaches the same state. Pure: no I/O (the store persists what
//! the engine decides; see `crate::store`).
//!
//! Architecture invariant: the ledger state is a function of the *set* of admitted records
//! ([`Ledger::from_records`] computes it from scratch); [`Ledger::ingest`] reaches the same
//! state incrementally, falling back to the full computation when a fork needs it. The
//! property tests check exactly this equivalence.

pub mod db;
pub mod economics;
pub mod record;
pub mod rules;
pub mod state;

use crate::config::ComConfig;
use crate::ids::{AccountId, CodId, RecordHash};
use crate::keys::{PublicKey, SecretKey};
use db::{Source, Table, Writes};
pub use record::{
    B64, Body, Content, Distribute, Handover, Head, Issue, Kind, Members, Output, Record,
    RecordError, Sig, SignerSet, Transfer,
};
pub use state::{
    AccountState, Checkpoint, Dep, DerivedSources, DerivedWrites, Settlement, State, Summary,
};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::ops::Bound;
use std::sync::Arc;

/// Records kept waiting for missing dependencies, at most.
pub const MAX_PENDING: usize = 100_000;
/// …and their size in memory, at most (see [`Record::size_estimate`]).
pub const MAX_PENDING_BYTES: usize = 64 << 20;
/// Transfers kept in memory until their account's opening record arrives, at most (the
/// account waiting longest makes room for more).
pub const MAX_AWAITING_KEY: usize = 10_000;
/// …of which one account may have, at most.
pub const MAX_AWAITING_PER_ACCOUNT: usize = 64;
/// …and their size in memory, at most.
pub const MAX_AWAITING_BYTES: usize = 16 << 20;
/// Records kept waiting per account, at most (one account cannot fill the pending pool).
pub const MAX_PENDING_PER_ACCOUNT: usize = 1_000;
/// Records held for one (account, seq), at most: one plus a few fork proofs.
pub const MAX_PER_SLOT: usize = 4;
/// Records a fork's new winner may undo in place, at most, and how far back the application
/// log may be read to find them (beyond either, the state is recomputed from the records).
pub const MAX_REFORK: usize = 100_000;
pub const MAX_REFORK_LOG: usize = 1_000_000;
/// How far beyond its chain's next seq a record may be held aside.
pub const AWAIT_WINDOW: u64 = MAX_AWAITING_PER_ACCOUNT as u64;

/// Records held until their account's chain can say who may sign them: transfers until the
/// account's opening arrives (their signature cannot be checked before), and records beyond
/// the chain's next seq signed by a key or a signer set the chain does not name yet (a
/// `rekey` or `signers` record on the way may) — and other copies of a held, waiting record
/// (the same body, other signatures), in case the held one turns out wrongly signed. Never
/// stored, never counted in a slot.
/// Bounded; when full, the account that has waited longest makes room, so records for
/// accounts that never open cannot shut later ones out for good.
#[derive(Clone, Debug, Default)]
struct Awaiting {
    /// Per account, its records and whether their signatures were checked already.
    by_account: HashMap<AccountId, Vec<(Record, bool)>>,
    /// Accounts in the order they began to wait.
    order: VecDeque<AccountId>,
    count: usize,
    bytes: usize,
}

impl Awaiting {
    fn hold(&mut self, r: Record, checked: bool) -> Result<(), RecordError> {
        let a = r.account();
        if let Some(list) = self.by_account.get(&a) {
            // (Copies of one record with other signatures are held apart: which of them
            // is signed as its branch requires is not known yet.)
            if list
                .iter()
                .any(|(x, _)| x.hash() == r.hash() && x.sigs() == r.sigs())
            {
                return Ok(());
            }
            if list.len() >= MAX_AWAITING_PER_ACCOUNT {
                return Err(RecordError::TooMany {
                    what: "records awaiting what this account's chain says of their signers",
                    count: list.len(),
                    max: MAX_AWAITING_PER_ACCOUNT,
                });
            }
        }
        let size = r.size_estimate();
        while (self.count >= MAX_AWAITING_KEY || self.bytes + size > MAX_AWAITING_BYTES)
            && let Some(oldest) = self.order.pop_front()
        {
            if let Some(l) = self.by_account.remove(&oldest) {
                self.count -= l.len();
                self.bytes -= l.iter().map(|(r, _)| r.size_estimate()).sum::<usize>();
            }
        }
        let order = &mut self.order;
        self.by_account
            .entry(a)
            .or_insert_with(|| {
                order.push_back(a);
                Vec::new()
            })
            .push((r, checked));
        self.count += 1;
        self.bytes += size;
        Ok(())
    }

    /// The records `a` held, now that its key is known.
    fn take(&mut self, a: &AccountId) -> Option<Vec<(Record, bool)>> {
        let mut held = self.by_account.remove(a)?;
        // In chain order, so that a `rekey` is decided before the records it signs for.
        held.sort_by_key(|(r, _)| r.seq());
        self.count -= held.len();
        self.bytes -= held.iter().map(|(r, _)| r.size_estimate()).sum::<usize>();
        self.order.retain(|x| x != a);
        Some(held)
    }
}

/// A record about to be decided for the first time: what admission found already.
struct New {
    /// Its slot holds another record.
    slot_held: bool,
    /// What it waits for.
    deps: Vec<Dep>,
}

/// What the pending records wait for, in memory (rebuilt from the pending table on a start).
#[derive(Clone, Debug, Default)]
struct Pending {
    deps: BTreeMap<RecordHash, Vec<Dep>>,
    waiting: HashMap<Dep, BTreeSet<RecordHash>>,
    per_account: HashMap<AccountId, usize>,
    /// [`Record::size_estimate`] of every pending record, summed.
    bytes: usize,
    /// Waiting network records (checkpoints among them), kept apart because few.
    network: BTreeSet<RecordHash>,
}

/// The records a ledger holds in memory apart from its state (see [`Ledger::pools`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Pools {
    pub pending: usize,
    pub pending_bytes: usize,
    /// Records held aside until their chain can say who may sign them.
    pub awaiting_key: usize,
    pub awaiting_key_bytes: usize,
}

/// The ledger rules this software implements. A handover to higher rules (see
/// [`Handover`]) freezes a ledger at its checkpoint for software that knows only these.
pub const RULES_VERSION: u32 = 1;

/// What every rule needs to know about the cod.
#[derive(Clone, Debug)]
pub struct Params {
    pub cod: CodId,
    pub com: ComConfig,
    /// The deployer's key (`keys/cod.pub.key`), for com.ini's fallback duty.
    pub deployer: PublicKey,
    pub network: AccountId,
    /// The ledger rules this node follows ([`RULES_VERSION`]).
    pub rules: u32,
}

impl Params {
    pub fn new(cod: CodId, com: ComConfig, deployer: PublicKey) -> Self {
        Self {
            network: AccountId::network(&cod),
            cod,
            com,
            deployer,
            rules: RULES_VERSION,
        }
    }
}

/// Where a record stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    /// Part of the ledger state.
    Applied,
    /// Waiting for these records or accounts.
    Pending(Vec<Dep>),
    /// Lost a fork: another record holds its (account, seq). Kept as proof.
    Lost { winner: RecordHash },
}

/// An admitted record removed because it can never apply (the store deletes it too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    pub hash: RecordHash,
    pub account: AccountId,
    pub seq: u64,
    pub error: RecordError,
}

/// What one ingest changed, for the store and the event stream.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The record was already known.
    pub duplicate: bool,
    /// Held aside in memory until its account's chain can say who may sign it (its opening,
    /// or a `rekey` or `signers` record ahead of it, is not here yet): see `Awaiting`.
    pub awaiting_key: bool,
    /// Newly admitted records (verified; now stored): applied, pending or fork candidates.
    pub admitted: Vec<RecordHash>,
    /// Records newly applied (this one and any it released), in order.
    pub applied: Vec<RecordHash>,
    /// Formerly pending records that turned out invalid once their dependencies arrived.
    pub dropped: Vec<Dropped>,
    /// The record waits for these.
    pub pending: Vec<Dep>,
    /// Slots (account, seq) where a fork was seen.
    pub forks: Vec<(AccountId, u64)>,
    /// The state was recomputed from all records (a fork changed a winner).
    pub rebuilt: bool,
}

/// The records a ledger holds (applied, pending, and fork proofs), as tables (in memory,
/// or layered over a store).
#[derive(Clone, Debug, Default)]
pub struct Held {
    pub records: Table<RecordHash, Arc<Record>>,
    /// Every held record by position: (account, seq, hash).
    pub slots: Table<(AccountId, u64, RecordHash), ()>,
    /// Positions holding more than one record: each a proof that the account signed twice.
    pub forks: Table<(AccountId, u64), ()>,
    /// The opening key of every account whose opening is held.
    pub keys: Table<AccountId, PublicKey>,
    /// The records waiting for what they depend on.
    pub pending: Table<RecordHash, ()>,
}

impl Held {
    fn over(s: HeldSources) -> Self {
        Self {
            records: Table::over(s.records),
            slots: Table::over(s.slots),
            forks: Table::over(s.forks),
            keys: Table::over(s.keys),
            pending: Table::over(s.pending),
        }
    }
}

/// Where [`Held`]'s committed entries are read from.
pub struct HeldSources {
    pub records: Arc<dyn Source<RecordHash, Arc<Record>>>,
    pub slots: Arc<dyn Source<(AccountId, u64, RecordHash), ()>>,
    pub forks: Arc<dyn Source<(AccountId, u64), ()>>,
    pub keys: Arc<dyn Source<AccountId, PublicKey>>,
    pub pending: Arc<dyn Source<RecordHash, ()>>,
}

/// [`Held`]'s changes since they were last taken.
#[derive(Debug, Default)]
pub struct HeldWrites {
    pub records: (bool, Writes<RecordHash, Arc<Record>>),
    pub slots: (bool, Writes<(AccountId, u64, RecordHash), ()>),
    pub forks: (bool, Writes<(AccountId, u64), ()>),
    pub keys: (bool, Writes<AccountId, PublicKey>),
    pub pending: (bool, Writes<RecordHash, ()>),
}

/// Every change a ledger made since they were last taken ([`Ledger::take_writes`]).
#[derive(Debug, Default)]
pub struct LedgerWrites {
    pub held: HeldWrites,
    pub derived: DerivedWrites,
}

impl LedgerWrites {
    pub fn is_empty(&self) -> bool {
        fn none<K, V>((cleared, w): &(bool, Writes<K, V>)) -> bool {
            !cleared && w.is_empty()
        }
        let (h, d) = (&self.held, &self.derived);
        none(&h.records)
            && none(&h.slots)
            && none(&h.forks)
            && none(&h.keys)
            && none(&h.pending)
            && none(&d.accounts)
            && none(&d.applied)
            && none(&d.chain)
            && none(&d.log)
            && none(&d.unclaimed)
            && none(&d.claimed)
    }
}

/// What a store keeps of a ledger besides its tables, so it resumes without replaying.
pub struct Stored {
    /// Records held.
    pub held: u64,
    pub summary: Summary,
}

#[derive(Clone, Debug)]
pub struct Ledger {
    params: Params,
    h: Held,
    /// Records held (the size of `h.records`).
    held_n: u64,
    /// (Shared with the readers' views until it changes.)
    awaiting: Arc<Awaiting>,
    state: State,
    /// (Shared with the readers' views until it changes.)
    pending: Arc<Pending>,
    /// Checkpoints on a lost branch already handed to the full computation.
    tried_checkpoints: HashSet<RecordHash>,
}

impl Ledger {
    pub fn new(params: Params) -> Self {
        let state = State::genesis(&params);
        Self::with(params, Held::default(), 0, state)
    }

    fn with(params: Params, h: Held, held_n: u64, state: State) -> Self {
        Self {
            params,
            h,
            held_n,
            awaiting: Arc::default(),
            state,
            pending: Arc::default(),
            tried_checkpoints: HashSet::new(),
        }
    }

    /// The ledger of a set of records that were verified when admitted (e.g. read back from
    /// the store): forms and signatures are not checked again, everything else is.
    pub fn from_records(params: Params, records: impl IntoIterator<Item = Record>) -> Self {
        Self::load(params, records).0
    }

    /// [`Ledger::from_records`], also returning the records that can never apply (which the
    /// caller's store should forget).
    pub fn load(params: Params, records: impl IntoIterator<Item = Record>) -> (Self, Vec<Dropped>) {
        let mut l = Self::new(params);
        for r in records {
            l.admit_unchecked(r);
        }
        let dropped = l.rebuild();
        (l, dropped)
    }

    /// A ledger as a store keeps it: its tables layered over the store, its state as
    /// stored — nothing replayed. Only the pending records are read (to know what each
    /// waits for).
    pub fn resume(
        params: Params,
        held: HeldSources,
        derived: DerivedSources,
        stored: Stored,
    ) -> Self {
        let state = State::resume(&params, stored.summary, derived);
        let mut l = Self::with(params, Held::over(held), stored.held, state);
        for (hash, ()) in l.h.pending.entries() {
            if let Some(r) = l.h.records.get(&hash) {
                let deps = l.state.missing(&r);
                l.set_pending(hash, deps);
            }
        }
        l
    }

    /// This ledger as a reader sees it, its tables read from `held` and `derived` (a
    /// snapshot of the store it was just committed to): the same state, which the writer's
    /// later changes leave alone. Costs what the state keeps in memory, not the history:
    /// the pending index and the records awaiting keys are shared until the writer changes
    /// them.
    pub fn reader(&self, held: HeldSources, derived: DerivedSources) -> Self {
        Self {
            params: self.params.clone(),
            h: Held::over(held),
            held_n: self.held_n,
            awaiting: self.awaiting.clone(),
            state: State::resume(&self.params, self.state.summary(), derived),
            pending: self.pending.clone(),
            tried_checkpoints: self.tried_checkpoints.clone(),
        }
    }

    /// Every change since the last call: the caller commits them before the ledger reads
    /// again (see [`Table::take_writes`]).
    pub fn take_writes(&mut self) -> LedgerWrites {
        LedgerWrites {
            held: HeldWrites {
                records: self.h.records.take_writes(),
                slots: self.h.slots.take_writes(),
                forks: self.h.forks.take_writes(),
                keys: self.h.keys.take_writes(),
                pending: self.h.pending.take_writes(),
            },
            derived: self.state.take_writes(),
        }
    }

    /// Puts back changes taken by [`Ledger::take_writes`] whose commit failed, so the ledger
    /// stays whole (what it holds, the store does not yet).
    pub fn restore_writes(&mut self, w: LedgerWrites) {
        self.h.records.restore(w.held.records);
        self.h.slots.restore(w.held.slots);
        self.h.forks.restore(w.held.forks);
        self.h.keys.restore(w.held.keys);
        self.h.pending.restore(w.held.pending);
        self.state.restore_writes(w.derived);
    }

    pub fn params(&self) -> &Params {
        &self.params
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    pub fn record(&self, h: &RecordHash) -> Option<Arc<Record>> {
        self.h.records.get(h)
    }

    pub fn holds(&self, h: &RecordHash) -> bool {
        self.h.records.contains(h)
    }

    /// Every held record, in hash order (a whole scan: for exports and checks).
    pub fn records(&self) -> Vec<Arc<Record>> {
        self.h
            .records
            .entries()
            .into_iter()
            .map(|(_, r)| r)
            .collect()
    }

    pub fn len(&self) -> usize {
        self.held_n as usize
    }

    pub fn is_empty(&self) -> bool {
        self.held_n == 0
    }

    fn rec(&self, h: &RecordHash) -> Arc<Record> {
        self.h
            .records
            .get(h)
            .unwrap_or_else(|| panic!("record {h} is held"))
    }

    /// Applied records from position `from` of the application log (dependencies first),
    /// at most `limit`.
    pub fn log(&self, from: usize, limit: usize) -> Vec<Arc<Record>> {
        self.state
            .log(from as u64, limit)
            .iter()
            .map(|h| self.rec(h))
            .collect()
    }

    /// The account's key in force: its opening key, or the one its last `rekey` named.
    pub fn key_of(&self, a: &AccountId) -> Option<PublicKey> {
        self.state
            .account(a)
            .and_then(|s| s.rekeyed().cloned())
            .or_else(|| self.h.keys.get(a))
    }

    /// Applied records of an account from `from` on, in seq order, at most `limit`.
    pub fn chain_of(&self, a: &AccountId, from: u64, limit: usize) -> Vec<Arc<Record>> {
        self.state
            .chain_of(a, from, limit)
            .iter()
            .map(|(_, h)| self.rec(h))
            .collect()
    }

    /// The applied record at (account, seq).
    pub fn at(&self, a: &AccountId, seq: u64) -> Option<Arc<Record>> {
        self.state.applied_at(a, seq).map(|h| self.rec(&h))
    }

    /// The held records at (account, seq): more than one is a fork's proof.
    pub fn held_at(&self, a: &AccountId, seq: u64) -> BTreeSet<RecordHash> {
        let lo = (*a, seq, RecordHash::from_bytes([0; 32]));
        let hi = (*a, seq, RecordHash::from_bytes([0xff; 32]));
        self.h
            .slots
            .range(Bound::Included(&lo), Bound::Included(&hi), MAX_PER_SLOT + 1)
            .into_iter()
            .map(|((_, _, h), ())| h)
            .collect()
    }

    /// The applied record that holds `body`'s place (its account and seq), if that is
    /// another record: then `body` can never apply (a proposal the chain moved past).
    pub fn superseded_by(&self, body: &Body) -> Option<RecordHash> {
        let h = self.state.applied_at(&body.account, body.seq)?;
        (h != body.hash()).then_some(h)
    }

    pub fn status(&self, h: &RecordHash) -> Option<Status> {
        let r = self.h.records.get(h)?;
        if self.state.is_applied(h) {
            return Some(Status::Applied);
        }
        if let Some(winner) = self.state.applied_at(&r.account(), r.seq()) {
            return Some(Status::Lost { winner });
        }
        Some(Status::Pending(
            self.pending.deps.get(h).cloned().unwrap_or_default(),
        ))
    }

    /// Records waiting, and what they take in memory: (pending on dependencies, their bytes,
    /// awaiting their account's opening, their bytes).
    pub fn pools(&self) -> Pools {
        Pools {
            pending: self.pending.deps.len(),
            pending_bytes: self.pending.bytes,
            awaiting_key: self.awaiting.count,
            awaiting_key_bytes: self.awaiting.bytes,
        }
    }

    pub fn pending(&self) -> impl Iterator<Item = (&RecordHash, &Vec<Dep>)> {
        self.pending.deps.iter()
    }

    /// Records held aside (in memory, never stored) until their chain can say who signs
    /// them: their account's opening, or the record naming their signers, has not come.
    pub fn awaiting(&self) -> impl Iterator<Item = &Record> {
        self.awaiting.by_account.values().flatten().map(|(r, _)| r)
    }

    /// How many slots hold more than one record (see [`Ledger::forks`]).
    pub fn fork_count(&self) -> usize {
        self.h.forks.entries().len()
    }

    /// Slots holding more than one record: each is a proof that the account signed two
    /// records with the same seq.
    pub fn forks(&self) -> Vec<((AccountId, u64), BTreeSet<RecordHash>)> {
        self.h
            .forks
            .entries()
            .into_iter()
            .map(|((a, seq), ())| ((a, seq), self.held_at(&a, seq)))
            .collect()
    }

    /// Takes a record from anywhere (a peer, an archive, the local wallet): checks its form
    /// and signatures, then applies it, keeps it pending, or keeps it as a fork proof.
    /// An `Err` means the record is refused and nothing changed.
    pub fn ingest(&mut self, r: Record) -> Result<Outcome, RecordError> {
        self.ingest_inner(r, false)
    }

    /// [`Ledger::ingest`] for checked records, in order: forms and signatures found sound
    /// are not checked again. `each` sees the ledger after every record (to persist it).
    pub fn ingest_checked(
        &mut self,
        c: Checked,
        mut each: impl FnMut(&Ledger, &Result<Outcome, RecordError>),
    ) -> Vec<Result<Outcome, RecordError>> {
        // Checked against another cod's rules: trust nothing.
        let trusted = c.cod == self.params.cod;
        c.items
            .into_iter()
            .map(|(r, check)| {
                let result = match check {
                    // (Held back by this node's clock, whoever checked it.)
                    Check::Refused(e @ RecordError::Ahead { .. }) => Err(e),
                    Check::Sound if trusted => self.ingest_inner(r, true),
                    Check::Refused(e) if trusted => Err(e),
                    _ => self.ingest_inner(r, false), // held, awaiting its key, or untrusted
                };
                each(self, &result);
                result
            })
            .collect()
    }

    /// Checks the form and signatures of many records on all cores (records held already are
    /// not checked again). See [`Checked`].
    pub fn check(&self, records: Vec<Record>) -> Checked {
        self.verifier_for(&records).check(records)
    }

    /// A [`Verifier`] holding just what checking `records` needs (their accounts' keys,
    /// which of them are held): as small as the batch, so a caller can take it under a lock
    /// and check without it. Its checks need no chain (an opening key never changes, a
    /// replacement key names itself; who may sign where is checked at admission), so its
    /// results stay sound however the ledger moves on meanwhile.
    pub fn verifier_for(&self, records: &[Record]) -> Verifier {
        let accounts: BTreeSet<AccountId> = records.iter().map(Record::account).collect();
        Verifier {
            params: self.params.clone(),
            keys: accounts
                .into_iter()
                .filter_map(|a| Some((a, self.h.keys.get(&a)?)))
                .collect(),
            held: records
                .iter()
                .map(Record::hash)
                .filter(|h| self.h.records.contains(h))
                .collect(),
            key_source: None,
            source: None,
        }
    }

    /// A snapshot for checking records without this ledger at hand, e.g. on other threads
    /// while it applies earlier ones.
    pub fn verifier(&self) -> Verifier {
        let (source, layer) = self.h.records.parts();
        Verifier {
            params: self.params.clone(),
            // (The stored keys are read as the batches name their accounts, not all now.)
            keys: self.h.keys.layer().into_iter().collect(),
            key_source: self.h.keys.parts().0,
            held: layer,
            source,
        }
    }

    fn ingest_inner(&mut self, r: Record, verified: bool) -> Result<Outcome, RecordError> {
        let mut out = Outcome::default();
        if let Some(held) = self.h.records.get(&r.hash()) {
            out.duplicate = true;
            // The same body with other signatures. The copy held is kept; but while it waits
            // (not applied), it may turn out signed by a key its branch does not allow — a
            // `rekey` ahead of it had not come — and be dropped: then a copy whose signatures
            // check is tried in its place, so it waits aside meanwhile (see `Awaiting`).
            if held.sigs() != r.sigs() && !self.state.is_applied(&r.hash()) {
                self.hold_alternative(r, verified)?;
            }
            return Ok(out);
        }
        if !verified {
            rules::check_form(&r, &self.params)?;
        }
        let key = self.signing_key(&r, verified)?;
        let opening_missing = r.kind() == Kind::Transfer
            && r.seq() > 0
            && match verified {
                true => !self.h.keys.contains(&r.account()),
                false => key.is_none(),
            };
        if opening_missing {
            out.pending = vec![Dep::Account(r.account())];
            Arc::make_mut(&mut self.awaiting).hold(r, false)?;
            out.awaiting_key = true;
            return Ok(out);
        }
        if !verified {
            rules::check_sigs(&r, key.as_ref())?;
        }
        match self.check_signers_now(&r) {
            Ok(()) => {}
            Err(Ok(refused)) => return Err(refused),
            Err(Err(unknown)) => {
                // A record still to come may sign it right: held aside, within a window of
                // its chain (so nobody pins junk far ahead), its signatures already checked.
                let next = self.state.account(&r.account()).map_or(0, |s| s.next_seq());
                if r.seq() > next.saturating_add(AWAIT_WINDOW) {
                    return Err(unknown);
                }
                out.pending = r.body().prev.map(Dep::Record).into_iter().collect();
                Arc::make_mut(&mut self.awaiting).hold(r, true)?;
                out.awaiting_key = true;
                return Ok(out);
            }
        }
        let in_slot = self.held_in_slot(&r.account(), r.seq());
        if in_slot >= MAX_PER_SLOT {
            return Err(RecordError::TooMany {
                what: "records signed for one (account, seq)",
                count: in_slot,
                max: MAX_PER_SLOT,
            });
        }
        let deps = self.state.missing(&r);
        if !deps.is_empty() {
            let of_account = self
                .pending
                .per_account
                .get(&r.account())
                .copied()
                .unwrap_or(0);
            if self.pending.deps.len() >= MAX_PENDING {
                return Err(RecordError::TooMany {
                    what: "pending records",
                    count: self.pending.deps.len(),
                    max: MAX_PENDING,
                });
            }
            if self.pending.bytes + r.size_estimate() > MAX_PENDING_BYTES {
                return Err(RecordError::TooMany {
                    what: "bytes of pending records",
                    count: self.pending.bytes,
                    max: MAX_PENDING_BYTES,
                });
            }
            if of_account >= MAX_PENDING_PER_ACCOUNT {
                return Err(RecordError::TooMany {
                    what: "pending records of this account",
                    count: of_account,
                    max: MAX_PENDING_PER_ACCOUNT,
                });
            }
        }
        let new = New {
            slot_held: in_slot > 0,
            deps,
        };
        self.decide(r, new, &mut out)?;
        // The chains that moved, or took a record (a `rekey` held but not yet applied names a
        // key too), may now say who signs what waited for them; after a full recomputation,
        // any chain may have.
        let moved: BTreeSet<AccountId> = if out.rebuilt {
            self.awaiting.by_account.keys().copied().collect()
        } else {
            out.applied
                .iter()
                .chain(&out.admitted)
                .filter_map(|h| self.h.records.get(h).map(|r| r.account()))
                .collect()
        };
        for a in moved {
            if !self.awaiting.by_account.contains_key(&a) {
                continue;
            }
            let Some(held) = Arc::make_mut(&mut self.awaiting).take(&a) else {
                continue;
            };
            for (r, checked) in held {
                // Checked against the chain again (its signatures only if never checked); one
                // still ahead waits again, a bad one is not admitted.
                if let Ok(more) = self.ingest_inner(r, checked) {
                    out.admitted.extend(more.admitted);
                    out.applied.extend(more.applied);
                    out.dropped.extend(more.dropped);
                    out.forks.extend(more.forks);
                    out.rebuilt |= more.rebuilt;
                }
            }
        }
        Ok(out)
    }

    /// Keeps aside another copy of a held, waiting record (another signature set), if its
    /// signatures check: it is tried when its account's chain moves, and is a duplicate by
    /// then unless the held copy was dropped.
    fn hold_alternative(&mut self, r: Record, verified: bool) -> Result<(), RecordError> {
        if !verified {
            rules::check_form(&r, &self.params)?;
            rules::check_sigs(&r, self.signing_key(&r, false)?.as_ref())?;
        }
        Arc::make_mut(&mut self.awaiting).hold(r, true)
    }

    /// The key a transfer's signature is checked against: an opening's own, else its
    /// account's opening key if held (`None` for network records, and for a checked record,
    /// which needs only know its account's opening is here).
    fn signing_key(&self, r: &Record, verified: bool) -> Result<Option<PublicKey>, RecordError> {
        Ok(match r.kind() {
            Kind::Transfer if r.seq() == 0 => rules::opening_key(r, &self.params)?,
            Kind::Transfer if verified => None,
            Kind::Transfer => self.h.keys.get(&r.account()),
            _ => None,
        })
    }

    fn admit_unchecked(&mut self, r: Record) {
        if self.h.records.contains(&r.hash()) {
            return;
        }
        let slot_held = !self.held_at(&r.account(), r.seq()).is_empty();
        self.admit(r, slot_held);
    }

    /// Holds a record not held yet; `slot_held`: its slot holds another already.
    fn admit(&mut self, r: Record, slot_held: bool) {
        if r.kind() == Kind::Transfer
            && r.seq() == 0
            && let Ok(Some(k)) = rules::opening_key(&r, &self.params)
        {
            self.h.keys.insert(r.account(), k);
        }
        let (a, seq, h) = (r.account(), r.seq(), r.hash());
        if slot_held {
            self.h.forks.insert((a, seq), ());
        }
        self.h.slots.insert((a, seq, h), ());
        self.h.records.insert(h, Arc::new(r));
        self.held_n += 1;
    }

    /// How many records (account, seq) holds. A held record is applied, pending, or a fork
    /// proof in a slot whose record is applied; so a slot without an applied record, of an
    /// account with nothing pending, holds nothing — known from memory and one point read,
    /// where listing the slot means a range read (most new records come to such a slot).
    fn held_in_slot(&self, a: &AccountId, seq: u64) -> usize {
        if !self.pending.per_account.contains_key(a) && self.state.applied_at(a, seq).is_none() {
            debug_assert!(
                self.held_at(a, seq).is_empty(),
                "{a} {seq}: held, not pending"
            );
            return 0;
        }
        self.held_at(a, seq).len()
    }

    /// Drops an admitted record that can never apply, saying why.
    fn forget(&mut self, h: RecordHash, error: RecordError) -> Dropped {
        let r = self.rec(&h);
        let d = Dropped {
            hash: h,
            account: r.account(),
            seq: r.seq(),
            error,
        };
        self.unadmit(&h);
        d
    }

    fn unadmit(&mut self, h: &RecordHash) {
        if let Some(r) = self.h.records.remove(h) {
            let (a, seq) = (r.account(), r.seq());
            self.h.slots.remove(&(a, seq, *h));
            self.held_n -= 1;
            if self.held_at(&a, seq).len() < 2 {
                self.h.forks.remove(&(a, seq));
            }
            if seq == 0 && self.held_at(&a, 0).is_empty() {
                self.h.keys.remove(&a);
            }
        }
    }

    fn set_pending(&mut self, h: RecordHash, deps: Vec<Dep>) {
        let p = Arc::make_mut(&mut self.pending);
        for d in &deps {
            p.waiting.entry(*d).or_default().insert(h);
        }
        if p.deps.insert(h, deps).is_none()
            && let Some(r) = self.h.records.get(&h)
        {
            self.h.pending.insert(h, ());
            *p.per_account.entry(r.account()).or_default() += 1;
            p.bytes += r.size_estimate();
            if r.account() == self.params.network {
                p.network.insert(h);
            }
        }
    }

    fn clear_pending(&mut self, h: &RecordHash) {
        if !self.pending.deps.contains_key(h) {
            return;
        }
        let p = Arc::make_mut(&mut self.pending);
        if let Some(deps) = p.deps.remove(h) {
            p.network.remove(h);
            self.h.pending.remove(h);
            if let Some(r) = self.h.records.get(h) {
                p.bytes -= r.size_estimate();
                if let Some(n) = p.per_account.get_mut(&r.account()) {
                    *n -= 1;
                    if *n == 0 {
                        p.per_account.remove(&r.account());
                    }
                }
            }
            for d in deps {
                if let Some(w) = p.waiting.get_mut(&d) {
                    w.remove(h);
                    if w.is_empty() {
                        p.waiting.remove(&d);
                    }
                }
            }
        }
    }

    /// The records a distribution's checkpoint adds to the previous one, from the applied
    /// chains (`None` if a head is not applied).
    fn period_records(&self, d: &Distribute) -> Option<Vec<Arc<Record>>> {
        period_records_in(&self.h.records, &self.state, d)
    }

    /// Is `h` a held record that is not applied because it, or a record it descends from,
    /// lost a fork here? (A checkpoint naming it must be settled by the full computation.)
    fn descends_from_lost(&self, mut h: RecordHash) -> bool {
        for _ in 0..self.held_n {
            let Some(r) = self.h.records.get(&h) else {
                return false;
            };
            if self.state.is_applied(&h) {
                return false;
            }
            if self
                .state
                .applied_at(&r.account(), r.seq())
                .is_some_and(|w| w != h)
            {
                return true;
            }
            match r.body().prev {
                Some(p) => h = p,
                None => return false,
            }
        }
        false
    }

    /// A waiting distribution that is next on the network chain with every record of its
    /// checkpoint held: if it still waits, what it names lost a fork here (directly or through
    /// what it depends on), and the full computation — where the checkpoint settles the fork —
    /// decides it. Each such checkpoint is handed over once.
    fn checkpoint_on_lost_branch(&mut self) -> bool {
        let head = self
            .state
            .account(&self.params.network)
            .and_then(|s| s.head)
            .map(|h| h.hash);
        let previous = self
            .state
            .checkpoint
            .as_ref()
            .map(|c| c.heads.clone())
            .unwrap_or_default();
        let cut_held = |d: &Distribute| {
            d.heads.iter().all(|(a, h)| {
                let stop = previous.get(a);
                let mut at = Some(h.hash);
                while let Some(x) = at {
                    if Some(x) == stop.map(|s| s.hash) {
                        return true;
                    }
                    // Below an applied record lies the applied chain, which holds the previous
                    // checkpoint's head (applied) unless that is above it: no need to walk it
                    // (through the store) on every ingest while a distribution waits.
                    if let Some((acct, seq)) = self.state.position(&x) {
                        return acct == *a && stop.is_none_or(|s| s.seq <= seq);
                    }
                    match self.h.records.get(&x) {
                        Some(r) if r.account() == *a => at = r.body().prev,
                        _ => return false,
                    }
                }
                stop.is_none()
            })
        };
        let ready = self.pending.network.iter().find(|h| {
            let Some(r) = self.h.records.get(h) else {
                return false;
            };
            let Content::Distribute(d) = &r.body().content else {
                return false;
            };
            !self.tried_checkpoints.contains(*h) && r.body().prev == head && cut_held(d)
        });
        match ready.copied() {
            Some(h) => {
                self.tried_checkpoints.insert(h);
                true
            }
            None => false,
        }
    }

    /// Is this node stopped by a handover while holding member records beyond its checkpoint
    /// (applied before the handover came)? The full computation then drops them, as it
    /// would have in any other arrival order.
    fn frozen_beyond_checkpoint(&self) -> bool {
        if self.state.frozen(&self.params).is_none() {
            return false;
        }
        let heads = self.state.checkpoint.as_ref().map(|c| &c.heads);
        self.state.accounts().iter().any(|(a, s)| {
            *a != self.params.network
                && s.head.is_some_and(|h| {
                    heads
                        .and_then(|hs| hs.get(a))
                        .is_none_or(|cut| h.seq > cut.seq)
                })
        })
    }

    /// Is this member slot fixed by the last checkpoint? (A slot of the network's chain never
    /// is: its lowest-hash valid candidate wins, and a distribution waiting for a record its
    /// checkpoint holds may become valid when that record comes — found by the conformance
    /// suite, `network-fork`.)
    fn slot_forced(&self, a: &AccountId, seq: u64) -> bool {
        *a != self.params.network
            && self
                .state
                .checkpoint
                .as_ref()
                .and_then(|c| c.heads.get(a))
                .is_some_and(|h| seq <= h.seq)
    }

    /// What the chain already says about a record's signers, checked before it is admitted so
    /// that nobody fills slots and pools with records that can never apply. `Err(Ok(e))`: it
    /// can never be signed right (refused); `Err(Err(e))`: not yet known — a record still to
    /// come may make it right (held aside). A network record needs a quorum of the signer set
    /// in force at its seq (beyond the chain's next seq, only the latest set is known); a
    /// transfer, the key in force along its own `prev` links (see [`Ledger::key_on_branch`]).
    fn check_signers_now(&self, r: &Record) -> Result<(), Result<RecordError, RecordError>> {
        let a = r.account();
        let next = self.state.account(&a).map_or(0, |s| s.next_seq());
        if a == self.params.network {
            return self
                .check_fork_signer(r)
                .map_err(|e| if r.seq() <= next { Ok(e) } else { Err(e) });
        }
        if r.seq() == 0 {
            return Ok(());
        }
        if let Some(known) = self.check_branch_signer(r) {
            // Its predecessors are here: the key in force for it is known.
            return known.map_err(Ok);
        }
        let named = r.sigs().first().and_then(|s| s.key.as_ref());
        // A predecessor is missing: the key in force now, or one a held `rekey` names, may be
        // right once it comes; anything else waits aside.
        let acct = self.state.account(&a);
        let head = acct.as_ref().and_then(|s| s.head);
        let now = acct.as_ref().and_then(AccountState::rekeyed);
        let plausible = match named {
            None => now.is_none(),
            Some(der) => {
                now.is_some_and(|k| k.der() == der.0.as_slice()) || {
                    // (Empty when the record is not beyond the head.)
                    let lo = (
                        a,
                        head.map_or(0, |h| h.seq + 1),
                        RecordHash::from_bytes([0; 32]),
                    );
                    let hi = (a, r.seq(), RecordHash::from_bytes([0; 32]));
                    self.h
                        .slots
                        .range(Bound::Included(&lo), Bound::Excluded(&hi), usize::MAX)
                        .into_iter()
                        .any(|((_, _, h), ())| match &self.rec(&h).body().content {
                            Content::Transfer(t) => t.rekey.as_ref() == Some(der),
                            _ => false,
                        })
                }
            }
        };
        if plausible {
            Ok(())
        } else {
            Err(Err(self.wrong_key(&a, now.map(PublicKey::der))))
        }
    }

    /// A member record's signer against the key in force along its branch, if its
    /// predecessors are here to say.
    fn check_branch_signer(&self, r: &Record) -> Option<Result<(), RecordError>> {
        let expected = self.key_on_branch(r)?;
        let named = r.sigs().first().and_then(|s| s.key.as_ref());
        Some(if named.map(|k| &k.0) == expected.as_ref() {
            Ok(())
        } else {
            Err(self.wrong_key(&r.account(), expected.as_deref()))
        })
    }

    /// `WrongKey`, naming the key in force (its DER, or the account's opening key).
    fn wrong_key(&self, a: &AccountId, in_force: Option<&[u8]>) -> RecordError {
        RecordError::WrongKey {
            in_force: match in_force {
                Some(der) => crate::ids::Fingerprint::of(der).to_string(),
                None => self
                    .h
                    .keys
                    .get(a)
                    .map_or("unknown".into(), |k| k.fingerprint().to_string()),
            },
        }
    }

    /// The key a member record at seq > 0 must be signed by, following its own `prev` links
    /// through the records held here: `Some(Some(der))` the key the nearest `rekey` before it
    /// named, `Some(None)` the opening key, `None` if a predecessor is not here (not known
    /// yet). Where the links reach the applied chain, the chain's key history answers, so a
    /// record on a branch that lost a fork is judged by its own branch.
    fn key_on_branch(&self, r: &Record) -> Option<Option<Vec<u8>>> {
        let mut at = r.body().prev;
        while let Some(h) = at {
            if let Some((_, seq)) = self.state.position(&h) {
                let acct = self.state.account(&r.account());
                return Some(acct.and_then(|s| s.key_after(seq).map(|k| k.der().to_vec())));
            }
            let prev = self.h.records.get(&h)?;
            if let Content::Transfer(Transfer { rekey: Some(k), .. }) = &prev.body().content {
                return Some(Some(k.0.clone()));
            }
            at = prev.body().prev;
        }
        Some(None)
    }

    /// Is a record that competes for a slot signed as the chain requires there: a network
    /// record by a quorum of the signer set in force at that seq, a member record by the key
    /// in force along its own branch (when its predecessors are here to say)?
    fn check_fork_signer(&self, r: &Record) -> Result<(), RecordError> {
        let a = r.account();
        if a == self.params.network {
            return rules::check_quorum(r, &self.params, self.state.signers_at(r.seq()));
        }
        if r.seq() == 0 {
            return Ok(());
        }
        self.check_branch_signer(r).unwrap_or(Ok(()))
    }

    /// Decides a new record (an error refuses it), then the admitted ones its application
    /// releases (an error drops them).
    fn decide(&mut self, r: Record, new: New, out: &mut Outcome) -> Result<(), RecordError> {
        let mut queue = VecDeque::from([(r, Some(new))]);
        let mut first = true;
        while let Some((r, new)) = queue.pop_front() {
            let h = r.hash();
            let fresh = new.is_some();
            // A rebuild decided every held record at once; what was queued before it is
            // either applied, pending or gone now. (A record dropped since it was queued
            // is not decided.)
            if out.rebuilt {
                break;
            }
            if !fresh && !self.h.records.contains(&h) {
                continue;
            }
            let result = self.decide_one(r, new, out);
            match result {
                Ok(Some(released)) => queue.extend(released.into_iter().map(|x| (x, None))),
                Ok(None) => {}
                Err(e) if first && fresh => return Err(e),
                Err(error) => {
                    self.clear_pending(&h);
                    if let Some(r) = self.h.records.get(&h) {
                        out.dropped.push(Dropped {
                            hash: h,
                            account: r.account(),
                            seq: r.seq(),
                            error,
                        });
                    }
                    self.unadmit(&h);
                }
            }
            first = false;
        }
        // What just arrived may complete a waiting checkpoint's branch down to a record that
        // lost a fork here: that checkpoint settles the fork. And a handover that stops this
        // node keeps only what its checkpoint holds, even what was applied before it came.
        if !out.rebuilt && (self.checkpoint_on_lost_branch() || self.frozen_beyond_checkpoint()) {
            out.dropped.extend(self.rebuild());
            out.rebuilt = true;
        }
        Ok(())
    }

    /// One step of [`Ledger::decide`]: returns records released by applying this one.
    /// `new`: the record is not admitted yet.
    fn decide_one(
        &mut self,
        r: Record,
        new: Option<New>,
        out: &mut Outcome,
    ) -> Result<Option<Vec<Record>>, RecordError> {
        let h = r.hash();
        let slot = (r.account(), r.seq());
        let (fresh, slot_held) = (new.is_some(), new.as_ref().is_some_and(|n| n.slot_held));
        if let Some(winner) = self.state.applied_at(&slot.0, slot.1) {
            if winner == h {
                return Ok(None);
            }
            // A fork: two records signed for the same (account, seq) — by the key in force
            // there, or it is no proof of anything (a replaced key signs nothing more).
            self.check_fork_signer(&r)?;
            self.clear_pending(&h);
            if fresh {
                self.admit(r, slot_held);
                out.admitted.push(h);
            }
            if !out.forks.contains(&slot) {
                out.forks.push(slot);
            }
            let forced = self.slot_forced(&slot.0, slot.1);
            if !forced && h < winner {
                // The slot is decided again: by undoing what the old winner carried, if that
                // is a member's branch beyond the checkpoint, else from scratch.
                if let Some(again) = self.refork(h, winner, out) {
                    return Ok(Some(again));
                }
                out.dropped.extend(self.rebuild());
                out.rebuilt = true;
            }
            return Ok(None);
        }
        let deps = match new {
            Some(n) => n.deps,
            None => self.state.missing(&r),
        };
        let heads_lost = match &r.body().content {
            Content::Distribute(d) => d.heads.values().any(|x| self.descends_from_lost(x.hash)),
            _ => false,
        };
        if heads_lost {
            // The checkpoint names a record that lost a fork here: the full computation,
            // where a checkpoint decides the forks it covers, settles it.
            if fresh {
                self.admit(r, slot_held);
                out.admitted.push(h);
            }
            out.dropped.extend(self.rebuild());
            out.rebuilt = true;
            return Ok(None);
        }
        if !deps.is_empty() {
            if fresh {
                self.admit(r, slot_held);
                out.admitted.push(h);
                out.pending = deps.clone();
            }
            self.clear_pending(&h);
            self.set_pending(h, deps);
            return Ok(None);
        }
        // (The state takes an account's key from its opening.)
        let key = match r.kind() {
            Kind::Transfer if r.seq() == 0 => rules::opening_key(&r, &self.params)?,
            _ => None,
        };
        let period_records: Vec<Arc<Record>> = match &r.body().content {
            Content::Distribute(d) => self
                .period_records(d)
                .ok_or(RecordError::HeadInvalid(r.account()))?,
            _ => Vec::new(),
        };
        self.state
            .apply(&r, &self.params, key.as_ref(), &period_records)?;
        self.clear_pending(&h);
        if fresh {
            self.admit(r.clone(), slot_held);
            out.admitted.push(h);
        } else if let Some(k) = key {
            self.h.keys.insert(r.account(), k);
        }
        out.applied.push(h);
        self.settle_slot(&slot, h, out);
        let mut released = Vec::new();
        for dep in [Dep::Record(h), Dep::Account(r.account())] {
            if let Some(ws) = self.pending.waiting.get(&dep) {
                for w in ws.clone() {
                    let waiting = self.rec(&w);
                    if self.state.missing(&waiting).is_empty() {
                        self.clear_pending(&w);
                        released.push(Record::clone(&waiting));
                    }
                }
            }
        }
        Ok(Some(released))
    }

    /// `twin`, held, has a lower hash than `winner`, applied in its member slot beyond the
    /// checkpoint: the slot is decided again without recomputing the history. What applied
    /// because of `winner` — its account's later records, the records that claimed what they
    /// paid, and so on — is undone, newest first; `twin` is decided now (applied, waiting,
    /// or kept as proof if it cannot apply), and the undone records are returned, oldest
    /// first, then what had lost to them in their slots, to be decided again in that order,
    /// as if they had just arrived. What waits is told what it waits for anew. The cost is
    /// the records applied since `winner` (at most [`MAX_REFORK`]) and the pending pool,
    /// not the history. `None` (nothing changed) when it does not apply:
    /// the network's chain, an account's opening, a handover that stopped this node, a twin
    /// that claims what the branch it replaces paid, or more than [`MAX_REFORK`] records to
    /// undo — then the state is recomputed from scratch.
    fn refork(
        &mut self,
        twin: RecordHash,
        winner: RecordHash,
        out: &mut Outcome,
    ) -> Option<Vec<Record>> {
        // (The network's slots are all forced.)
        let member_branch = |l: &Self, r: &Record| {
            r.kind() == Kind::Transfer && r.seq() > 0 && !l.slot_forced(&r.account(), r.seq())
        };
        if self.state.frozen(&self.params).is_some() || !member_branch(self, &self.rec(&winner)) {
            return None;
        }
        // What applied because of `winner`, found along chains and claims.
        let mut undo: HashSet<RecordHash> = HashSet::from([winner]);
        let mut todo = vec![winner];
        while let Some(x) = todo.pop() {
            let r = self.rec(&x);
            if !member_branch(self, &r) || undo.len() > MAX_REFORK {
                return None;
            }
            let next = self.state.applied_at(&r.account(), r.seq() + 1);
            let claimers = r
                .body()
                .content
                .outputs()
                .iter()
                .filter_map(|o| self.state.claimer(&o.account, &x));
            for y in next.into_iter().chain(claimers.collect::<Vec<_>>()) {
                if undo.insert(y) {
                    todo.push(y);
                }
            }
        }
        // A twin that claims what the other branch paid would wait for the branch it
        // replaces: only the full computation decides that slot.
        if let Content::Transfer(t) = &self.rec(&twin).body().content
            && t.claims.iter().any(|c| undo.contains(c))
        {
            return None;
        }
        // The application log from `winner` on (each undone record comes after it).
        let end = self.state.applied_count() as u64;
        let mut tail = Vec::new();
        let mut at = end;
        'found: loop {
            if at == 0 || tail.len() > MAX_REFORK_LOG {
                return None;
            }
            let from = at.saturating_sub(1024);
            for h in self.state.log(from, (at - from) as usize).into_iter().rev() {
                tail.push(h);
                if h == winner {
                    break 'found;
                }
            }
            at = from;
        }
        let start = end - tail.len() as u64;
        tail.reverse();
        let (undone, keep): (Vec<RecordHash>, Vec<RecordHash>) =
            tail.into_iter().partition(|h| undo.contains(h));
        let mut scratch = self.state.clone();
        for h in undone.iter().rev() {
            let r = self.rec(h);
            let a = r.account();
            let prev_time = self.rec(&r.body().prev?).body().time;
            let mut claimed = Vec::new();
            if let Content::Transfer(t) = &r.body().content {
                for c in &t.claims {
                    claimed.push((*c, state::credited_to(&self.rec(c), &a)?));
                }
            }
            scratch.unapply_transfer(&r, prev_time, &claimed)?;
        }
        scratch.rewrite_log(start, &keep);
        self.state = scratch;
        // What waits may now wait for an undone record too.
        let waiting: Vec<RecordHash> = self.pending.deps.keys().copied().collect();
        for w in waiting {
            let deps = self.state.missing(&self.rec(&w));
            if !deps.is_empty() && self.pending.deps.get(&w) != Some(&deps) {
                self.clear_pending(&w);
                self.set_pending(w, deps);
            }
        }
        let mut again = Vec::with_capacity(undone.len() + 1);
        // (Waiting for what it lacks, or unable to apply, it is kept: a fork's proof.)
        if let Ok(Some(released)) = self.decide_one(Record::clone(&self.rec(&twin)), None, out) {
            again.extend(released);
        }
        again.extend(undone.iter().map(|h| Record::clone(&self.rec(h))));
        // And what lost to an undone record in its slot, chain by chain (what waits there
        // waits still).
        let mut seen = HashSet::new();
        for h in &undone {
            let r = self.rec(h);
            for x in self.held_at(&r.account(), r.seq()) {
                if x != twin
                    && !undo.contains(&x)
                    && !self.pending.deps.contains_key(&x)
                    && !self.state.is_applied(&x)
                    && seen.insert(x)
                {
                    again.push(Record::clone(&self.rec(&x)));
                }
            }
        }
        Some(again)
    }

    /// `winner` was just applied at `slot`: the records that waited there on dependencies
    /// are decided as [`Ledger::rebuild`] decides them. One with a higher hash (or in a slot
    /// nothing reopens) lost the fork and stops waiting — kept as proof if signed as the
    /// chain requires, else dropped; one with a lower hash still waits, and wins if what it
    /// lacks arrives. (Nothing to do, known from memory, unless the account has records
    /// waiting.)
    fn settle_slot(&mut self, slot: &(AccountId, u64), winner: RecordHash, out: &mut Outcome) {
        if !self.pending.per_account.contains_key(&slot.0) {
            return;
        }
        let waiting: Vec<RecordHash> = self
            .held_at(&slot.0, slot.1)
            .into_iter()
            .filter(|x| *x != winner && self.pending.deps.contains_key(x))
            .collect();
        if waiting.is_empty() {
            return;
        }
        if !out.forks.contains(slot) {
            out.forks.push(*slot);
        }
        let forced = self.slot_forced(&slot.0, slot.1);
        for x in waiting {
            let lacks = self.pending.deps.get(&x).is_some_and(|d| !d.is_empty());
            if !forced && x < winner && lacks {
                continue;
            }
            self.clear_pending(&x);
            if let Err(error) = self.check_fork_signer(&self.rec(&x)) {
                out.dropped.push(self.forget(x, error));
            }
        }
    }

    /// Recomputes the state from all admitted records: the definition the incremental path
    /// must match (see `docs/ledger.md`, "The state of a set of records").
    fn rebuild(&mut self) -> Vec<Dropped> {
        let p = self.params.clone();
        let mut world = self.state.fresh(&p);

        // 1. The network chain, in seq order. At each seq the lowest-hash valid candidate
        //    wins; a distribution is valid if its checkpoint replays cleanly on its own.
        let mut seq = 0;
        loop {
            let cands = self.held_at(&p.network, seq);
            if cands.is_empty() {
                break;
            }
            let prev = world
                .account(&p.network)
                .and_then(|s| s.head)
                .map(|h| h.hash);
            let mut chosen = false;
            for h in &cands {
                let r = self.rec(h);
                if r.body().prev != prev {
                    continue;
                }
                match &r.body().content {
                    Content::Distribute(d) => {
                        let mut trial = world.clone();
                        if self.replay_cut(&mut trial, d)
                            && let Some(recs) = period_records_in(&self.h.records, &trial, d)
                            && trial.apply(&r, &p, None, &recs).is_ok()
                        {
                            world = trial;
                            chosen = true;
                        }
                    }
                    _ => chosen = world.apply(&r, &p, None, &[]).is_ok(),
                }
                if chosen {
                    break;
                }
            }
            if !chosen {
                break;
            }
            seq += 1;
        }

        // 2. Member records beyond the last checkpoint, slot by slot in dependency order:
        //    a slot is decided once none of its candidates waits on an undecided record;
        //    then its lowest-hash valid candidate wins. (Every account holding a record
        //    beyond its opening holds the opening's key.)
        let mut dead: HashSet<RecordHash> = HashSet::new();
        let mut everything: Option<Vec<(RecordHash, Arc<Record>)>> = None;
        let accounts: Vec<AccountId> = self
            .h
            .keys
            .entries()
            .into_iter()
            .map(|(a, _)| a)
            .filter(|a| *a != p.network)
            .collect();
        loop {
            let mut progress = false;
            for a in &accounts {
                loop {
                    let acct_state = world.account(a);
                    let next = acct_state.as_ref().map_or(0, |s| s.next_seq());
                    let head = acct_state.and_then(|s| s.head).map(|h| h.hash);
                    let cands = self.held_at(a, next);
                    if cands.is_empty() {
                        break;
                    }
                    let mut ready = Vec::new();
                    let mut blocked = false;
                    for h in &cands {
                        if dead.contains(h) {
                            continue;
                        }
                        let r = self.rec(h);
                        if r.body().prev != head {
                            dead.insert(*h);
                            progress = true;
                            continue;
                        }
                        let missing = world.missing(&r);
                        let is_dead = missing.iter().any(|d| match d {
                            Dep::Record(x) => !self.h.records.contains(x) || dead.contains(x),
                            Dep::Account(y) => self.held_at(y, 0).iter().all(|x| dead.contains(x)),
                        });
                        if is_dead {
                            dead.insert(*h);
                            progress = true;
                        } else if missing.is_empty() {
                            ready.push(*h);
                        } else {
                            blocked = true;
                        }
                    }
                    if blocked || ready.is_empty() {
                        break;
                    }
                    let mut winner = None;
                    for h in &ready {
                        let r = self.rec(h);
                        let key = if r.seq() == 0 {
                            rules::opening_key(&r, &p).ok().flatten()
                        } else {
                            self.h.keys.get(a)
                        };
                        if world.apply(&r, &p, key.as_ref(), &[]).is_ok() {
                            winner = Some(*h);
                            break;
                        }
                        dead.insert(*h);
                    }
                    progress = true;
                    let Some(w) = winner else { break };
                    for h in &cands {
                        if *h != w {
                            dead.insert(*h);
                        }
                    }
                }
            }
            if !progress {
                // What cannot be reached in this set — network records the network chain did
                // not take, member records whose predecessor is missing or lost — never applies
                // here: mark it dead, so the slots waiting on it can be decided.
                // (Every held record, read once for all the passes: rebuild admits nothing.)
                let all = everything.get_or_insert_with(|| self.h.records.entries());
                let unreachable: Vec<RecordHash> = all
                    .iter()
                    .filter(|(h, r)| {
                        if dead.contains(h) || world.is_applied(h) {
                            return false;
                        }
                        let st = world.account(&r.account());
                        let at_next = r.seq() == st.as_ref().map_or(0, |s| s.next_seq())
                            && r.body().prev == st.and_then(|s| s.head).map(|x| x.hash);
                        r.account() == p.network || !at_next
                    })
                    .map(|(h, _)| *h)
                    .collect();
                if unreachable.is_empty() {
                    break;
                }
                dead.extend(unreachable);
            }
        }

        self.state = world;
        // Re-derive the pending index; records that can never apply are dropped.
        self.pending = Arc::default();
        self.h.pending = self.h.pending.fresh();
        let unapplied: Vec<Arc<Record>> = everything
            .unwrap_or_else(|| self.h.records.entries())
            .into_iter()
            .filter(|(h, _)| !self.state.is_applied(h))
            .map(|(_, r)| r)
            .collect();
        let mut dropped = Vec::new();
        for r in unapplied {
            let h = r.hash();
            let deps = self.state.missing(&r);
            if let Some(winner) = self.state.applied_at(&r.account(), r.seq()) {
                // Lost a fork: kept as proof if signed as the chain requires there (else it
                // proves nothing and goes, as the incremental path refuses it). A lower-hash
                // loser that only lacked a dependency is reconsidered when it arrives.
                if let Err(error) = self.check_fork_signer(&r) {
                    dropped.push(self.forget(h, error));
                    continue;
                }
                let forced = self.slot_forced(&r.account(), r.seq());
                if !forced && h < winner && !deps.is_empty() {
                    self.set_pending(h, deps);
                }
                continue;
            }
            if !deps.is_empty() {
                self.set_pending(h, deps);
                continue;
            }
            // Its dependencies are settled: if it does not apply now, it never will.
            let key = self.h.keys.get(&r.account());
            let recs = match &r.body().content {
                Content::Distribute(d) => self.period_records(d).unwrap_or_default(),
                _ => Vec::new(),
            };
            match self.state.clone().apply(&r, &p, key.as_ref(), &recs) {
                Err(error) => dropped.push(self.forget(h, error)),
                // Applicable, but not reached in this computation (its slot waited on a record
                // that is dead here): it stays held and is decided on its next chance.
                Ok(()) => self.set_pending(h, Vec::new()),
            }
        }
        dropped
    }

    /// Applies a checkpoint's records (those after the previous checkpoint) to `trial`, in
    /// dependency order, using only the chains the checkpoint names. False if any is missing
    /// or invalid.
    fn replay_cut(&self, trial: &mut State, d: &Distribute) -> bool {
        let p = &self.params;
        let mut queues: Vec<VecDeque<Arc<Record>>> = Vec::new();
        for (a, head) in &d.heads {
            let old = trial.account(a).and_then(|s| s.head);
            let mut list = VecDeque::new();
            let mut at = Some(head.hash);
            loop {
                match (at, old) {
                    (Some(h), Some(o)) if h == o.hash => break,
                    (None, None) => break,
                    (None, Some(_)) => return false, // does not pass through the old head
                    (Some(h), _) => {
                        let Some(r) = self.h.records.get(&h) else {
                            return false;
                        };
                        if r.account() != *a {
                            return false;
                        }
                        at = r.body().prev;
                        list.push_front(r);
                    }
                }
            }
            queues.push(list);
        }
        loop {
            let mut progress = false;
            for q in queues.iter_mut() {
                while let Some(r) = q.front() {
                    if !trial.missing(r).is_empty() {
                        break;
                    }
                    let key = if r.seq() == 0 {
                        rules::opening_key(r, p).ok().flatten()
                    } else {
                        self.h.keys.get(&r.account())
                    };
                    if trial.apply(r, p, key.as_ref(), &[]).is_err() {
                        return false;
                    }
                    q.pop_front();
                    progress = true;
                }
            }
            if queues.iter().all(VecDeque::is_empty) {
                return true;
            }
            if !progress {
                return false;
            }
        }
    }

    // ---- Making records (the local wallet and the signers' proposals). ----

    /// A member account's opening record (seq 0): carries its key, pays nothing, and is
    /// dated 0 — so a key's opening in a ledger is one and the same record wherever and
    /// whenever it is made (signatures are deterministic): a node re-deployed, or a new
    /// version continuing the ledger, never forks its own account.
    pub fn make_open(&self, key: &SecretKey) -> Record {
        let body = Body {
            version: record::RECORD_VERSION,
            cod: self.params.cod,
            time: 0,
            account: key.public().node_id(&self.params.cod),
            seq: 0,
            prev: None,
            content: Content::Transfer(Transfer {
                claims: Vec::new(),
                key: Some(B64(key.public().der().to_vec())),
                memo: None,
                outputs: Vec::new(),
                rekey: None,
                redeem: BTreeMap::new(),
                vouch: Vec::new(),
            }),
        };
        let sig = Sig {
            key: None,
            sig: B64(key.sign(&body.canonical_bytes())),
        };
        Record::new(body, vec![sig])
    }

    /// Builds and signs a transfer from `key`'s account, claiming every unclaimed credit
    /// (up to the claims limit) and paying `outputs`. Checks it against the current state
    /// and returns the exact reason when it cannot go through.
    pub fn make_transfer(
        &self,
        key: &SecretKey,
        outputs: Vec<Output>,
        memo: Option<String>,
        time: u64,
    ) -> Result<Record, RecordError> {
        let account = key.public().node_id(&self.params.cod);
        self.make_transfer_from(account, key, outputs, memo, None, time)
    }

    /// Replaces `account`'s key: a transfer signed by `key` (the key in force) that pays
    /// nothing, claims what is waiting, and names `new` as the key for every later record.
    pub fn make_rekey(
        &self,
        account: AccountId,
        key: &SecretKey,
        new: &PublicKey,
        time: u64,
    ) -> Result<Record, RecordError> {
        self.make_transfer_from(account, key, Vec::new(), None, Some(new), time)
    }

    /// [`Ledger::make_transfer`] from `account`, whose key in force `key` must be (after a
    /// key replacement, the account id no longer derives from it); `rekey` replaces it.
    pub fn make_transfer_from(
        &self,
        account: AccountId,
        key: &SecretKey,
        outputs: Vec<Output>,
        memo: Option<String>,
        rekey: Option<&PublicKey>,
        time: u64,
    ) -> Result<Record, RecordError> {
        let payment = Payment {
            outputs,
            memo,
            ..Payment::default()
        };
        self.make_payment(account, key, payment, rekey, time)
    }

    /// The general form of [`Ledger::make_transfer_from`]: payments, a redemption and
    /// vouches in one record.
    pub fn make_payment(
        &self,
        account: AccountId,
        key: &SecretKey,
        payment: Payment,
        rekey: Option<&PublicKey>,
        time: u64,
    ) -> Result<Record, RecordError> {
        let Payment {
            mut outputs,
            memo,
            redeem,
            mut vouch,
        } = payment;
        vouch.sort();
        vouch.dedup();
        let acct = self.state.account(&account).unwrap_or_default();
        let seq = acct.next_seq();
        let prev = acct.head.map(|h| h.hash);
        // (Its peers would hold it back, `Checked::hold_ahead`.)
        if acct.head_time > time.saturating_add(crate::clock::MAX_CLOCK_SKEW) {
            return Err(RecordError::HeadAhead {
                head: acct.head_time,
                now: time,
            });
        }
        let time = time.max(acct.head_time);
        // Only members' credits made by the transfer's time: a record never depends on a
        // member's dated after it, so every cut by date is closed (network records are
        // inside every cut; a credit dated ahead — its author's clock ran fast — is claimed
        // once this clock passes it; see `Checked::hold_ahead`).
        let claimable = |r: &Record| r.kind() != Kind::Transfer || r.body().time <= time;
        let claims: Vec<RecordHash> = if seq == 0 {
            Vec::new()
        } else {
            self.state
                .credits_of(&account, 2 * record::MAX_CLAIMS)
                .into_iter()
                .map(|(h, _)| h)
                .filter(|h| self.record(h).is_some_and(|r| claimable(&r)))
                .take(record::MAX_CLAIMS)
                .collect()
        };
        outputs.sort();
        for w in outputs.windows(2) {
            if (&w[0].account, &w[0].asset) == (&w[1].account, &w[1].asset) {
                return Err(RecordError::OutputsOrder);
            }
        }
        let body = Body {
            version: record::RECORD_VERSION,
            cod: self.params.cod,
            time,
            account,
            seq,
            prev,
            content: Content::Transfer(Transfer {
                key: (seq == 0).then(|| B64(key.public().der().to_vec())),
                claims,
                outputs,
                memo,
                rekey: rekey.map(|k| B64(k.der().to_vec())),
                redeem,
                vouch,
            }),
        };
        // After a replacement the signature names its key, so it checks without the chain.
        let rekeyed = acct.rekeyed().is_some();
        let sig = Sig {
            key: rekeyed.then(|| B64(key.public().der().to_vec())),
            sig: B64(key.sign(&body.canonical_bytes())),
        };
        let r = Record::new(body, vec![sig]);
        rules::check_form(&r, &self.params)?;
        if let Some(Dep::Account(a)) = self
            .state
            .missing(&r)
            .into_iter()
            .find(|d| matches!(d, Dep::Account(_)))
        {
            return Err(RecordError::NoSuchAccount(a));
        }
        let opening = self
            .h
            .keys
            .get(&account)
            .unwrap_or_else(|| key.public().clone());
        if seq > 0 {
            rules::check_sigs(&r, Some(&opening))?;
        }
        self.state
            .clone()
            .apply(&r, &self.params, Some(&opening), &[])?;
        Ok(r)
    }

    /// The issuance the backing rule gives for these attested figures at `time` (unsigned),
    /// naming who did the attested work (`work`: account → item → quantity).
    pub fn propose_issue(
        &self,
        attest: BTreeMap<String, u64>,
        work: BTreeMap<AccountId, BTreeMap<String, u64>>,
        time: u64,
    ) -> Result<Body, RecordError> {
        let p = &self.params;
        let net = self.state.account(&p.network);
        let time = time.max(net.map_or(0, |s| s.head_time));
        let period = p.com.period_of(time);
        let mut all = self.state.attest.clone();
        for (item, qty) in &attest {
            all.insert(item.clone(), (*qty, period));
        }
        let amounts = economics::issuance(&p.com, &all, period, &self.state.circulation())
            .ok_or(RecordError::Overflow)?;
        self.network_proposal(
            time,
            Content::Issue(Issue {
                period,
                attest,
                amounts,
                work,
            }),
        )
    }

    /// The distribution closing `period` (or a special one), made the way every node makes
    /// it, so that honest nodes holding the same records produce the same body byte for byte.
    /// Its time is the period's end (or `not_before`, if later: the special distribution's
    /// moment, or the deployer's fallback time), never before the network chain's head; its
    /// checkpoint holds every record made before the period's end (a special one: before its
    /// time), trimmed until nothing in it depends on a record outside it.
    pub fn propose_distribution(
        &self,
        period: u64,
        special: bool,
        not_before: u64,
    ) -> Result<Body, RecordError> {
        self.distribution_body(period, special, not_before, None)
    }

    /// The handover to `h`: a special distribution of the current period dated `time`, whose
    /// checkpoint is the last state that nodes of earlier rules keep.
    pub fn propose_handover(&self, h: Handover, time: u64) -> Result<Body, RecordError> {
        let net_time = self
            .state
            .account(&self.params.network)
            .map_or(0, |s| s.head_time);
        let time = time.max(net_time);
        self.distribution_body(self.params.com.period_of(time), true, time, Some(h))
    }

    fn distribution_body(
        &self,
        period: u64,
        special: bool,
        not_before: u64,
        handover: Option<Handover>,
    ) -> Result<Body, RecordError> {
        let p = &self.params;
        let net = self.state.account(&p.network);
        let net_time = net.map_or(0, |s| s.head_time);
        let (cut, time) = if special {
            let time = not_before.max(net_time);
            (time, time)
        } else {
            let end = p.com.period_bounds(period).1;
            (end, end.max(not_before).max(net_time))
        };
        let mut d = Distribute {
            admitted: Vec::new(),
            period,
            special,
            handover,
            heads: self.cut_heads(cut),
            payouts: Vec::new(),
        };
        let recs = self
            .period_records(&d)
            .ok_or(RecordError::HeadInvalid(p.network))?;
        let settled = self.state.settlement(&d, p, &recs)?;
        d.payouts = settled.payouts;
        d.admitted = settled.admitted;
        self.network_proposal(time, Content::Distribute(d))
    }

    /// Does this proposed distribution settle nothing — pay nobody, admit nobody, and add no
    /// record to the checkpoint? Then a period needs no record (its pool is carried on).
    pub fn settles_nothing(&self, body: &Body) -> bool {
        let Content::Distribute(d) = &body.content else {
            return false;
        };
        d.payouts.is_empty()
            && d.admitted.is_empty()
            && d.handover.is_none()
            && self.period_records(d).is_some_and(|r| r.is_empty())
    }

    /// A change of membership: `admit` and `remove` (any order; sorted here).
    pub fn propose_members(
        &self,
        mut admit: Vec<AccountId>,
        mut remove: Vec<AccountId>,
        time: u64,
    ) -> Result<Body, RecordError> {
        admit.sort();
        admit.dedup();
        remove.sort();
        remove.dedup();
        let net = self.state.account(&self.params.network);
        let time = time.max(net.map_or(0, |s| s.head_time));
        self.network_proposal(time, Content::Members(Members { admit, remove }))
    }

    /// A change of the signer set, to take effect from the next network record on.
    pub fn propose_signers(&self, set: SignerSet, time: u64) -> Result<Body, RecordError> {
        let net = self.state.account(&self.params.network);
        let time = time.max(net.map_or(0, |s| s.head_time));
        self.network_proposal(time, Content::Signers(set))
    }

    /// The next network record with `content`, checked against the chain as it is.
    fn network_proposal(&self, time: u64, content: Content) -> Result<Body, RecordError> {
        let net = self.state.account(&self.params.network).unwrap_or_default();
        let body = Body {
            version: record::RECORD_VERSION,
            cod: self.params.cod,
            time,
            account: self.params.network,
            seq: net.next_seq(),
            prev: net.head.map(|h| h.hash),
            content,
        };
        self.check_proposal(&body)?;
        Ok(body)
    }

    /// The checkpoint for a cut at `cut` (Unix seconds): per member account, its last applied
    /// record made before `cut` (never before the previous checkpoint), then trimmed until no
    /// record inside claims a record outside or pays an account opened outside.
    pub fn cut_heads(&self, cut: u64) -> BTreeMap<AccountId, Head> {
        let p = &self.params;
        let previous = self
            .state
            .checkpoint
            .as_ref()
            .map(|c| c.heads.clone())
            .unwrap_or_default();
        let mut heads: BTreeMap<AccountId, Head> = BTreeMap::new();
        for (a, st) in &self.state.accounts() {
            let Some(head) = st.head.filter(|_| *a != p.network) else {
                continue;
            };
            let floor = previous.get(a).map(|h| h.seq);
            let mut seq = head.seq;
            loop {
                let r = self.at(a, seq).expect("applied chains are contiguous");
                if r.body().time < cut || Some(seq) == floor {
                    heads.insert(
                        *a,
                        Head {
                            hash: r.hash(),
                            seq,
                        },
                    );
                    break;
                }
                if seq == 0 {
                    break;
                }
                seq -= 1;
            }
        }
        // Trim to a closed cut: repeat until nothing changes.
        loop {
            let mut changed = false;
            let snapshot = heads.clone();
            let inside = |h: &RecordHash| match self.state.position(h) {
                Some((acct, seq)) => {
                    acct == p.network || snapshot.get(&acct).is_some_and(|x| seq <= x.seq)
                }
                None => false,
            };
            for (a, head) in &snapshot {
                let from = previous.get(a).map_or(0, |h| h.seq + 1);
                let bad = (from..=head.seq).find(|seq| {
                    let r = self.at(a, *seq).expect("applied");
                    let claims_outside = match &r.body().content {
                        Content::Transfer(t) => t.claims.iter().any(|c| !inside(c)),
                        _ => false,
                    };
                    let vouches = match &r.body().content {
                        Content::Transfer(t) => t.vouch.as_slice(),
                        _ => &[],
                    };
                    claims_outside
                        || r.body()
                            .content
                            .outputs()
                            .iter()
                            .map(|o| &o.account)
                            .chain(vouches)
                            .any(|a| *a != p.network && !snapshot.contains_key(a))
                });
                if let Some(seq) = bad {
                    changed = true;
                    match seq.checked_sub(1) {
                        Some(s) => {
                            let r = self.at(a, s).expect("applied");
                            heads.insert(
                                *a,
                                Head {
                                    hash: r.hash(),
                                    seq: s,
                                },
                            );
                        }
                        None => {
                            heads.remove(a);
                        }
                    }
                }
            }
            if !changed {
                return heads;
            }
        }
    }

    /// Would this unsigned network record apply now? (What a signer checks before signing:
    /// the content must be exactly what its own chain gives.)
    pub fn check_proposal(&self, body: &Body) -> Result<(), RecordError> {
        let r = Record::new(body.clone(), Vec::new());
        rules::check_form(&r, &self.params)?;
        let recs = match &body.content {
            Content::Distribute(d) => self
                .period_records(d)
                .ok_or(RecordError::HeadInvalid(body.account))?,
            _ => Vec::new(),
        };
        let mut trial = self.state.clone();
        trial.apply_proposal(&r, &self.params, None, &recs)
    }
}

/// What a member's transfer does besides claiming: pay, redeem, vouch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Payment {
    pub outputs: Vec<Output>,
    pub memo: Option<String>,
    /// Backing items delivered → quantity: their value leaves circulation.
    pub redeem: BTreeMap<String, u64>,
    /// Accounts sponsored for admission.
    pub vouch: Vec<AccountId>,
}

fn period_records_in(
    records: &Table<RecordHash, Arc<Record>>,
    state: &State,
    d: &Distribute,
) -> Option<Vec<Arc<Record>>> {
    let mut out = Vec::new();
    for (a, head) in &d.heads {
        let from = state
            .checkpoint
            .as_ref()
            .and_then(|c| c.heads.get(a))
            .map_or(0, |h| h.seq + 1);
        // Nothing new (`from` past the head) is an empty stretch, as `from..=head.seq` is.
        let count = head.seq.saturating_add(1).saturating_sub(from);
        if count == 0 {
            continue;
        }
        let chain = state.chain_of(a, from, usize::try_from(count).ok()?);
        if chain.len() as u64 != count || chain.last().map(|(seq, _)| *seq) != Some(head.seq) {
            return None;
        }
        for (_, h) in chain {
            out.push(records.get(&h)?);
        }
    }
    Some(out)
}

/// Signs a network record's body as one signer and merges the signature in, keeping the
/// signatures sorted by fingerprint as the rules require.
pub fn add_signature(body: &Body, sigs: &[Sig], key: &SecretKey) -> Vec<Sig> {
    let mut all: Vec<Sig> = sigs.to_vec();
    let der = key.public().der().to_vec();
    if !all
        .iter()
        .any(|s| s.key.as_ref().is_some_and(|k| k.0 == der))
    {
        all.push(Sig {
            key: Some(B64(der)),
            sig: B64(key.sign(&body.canonical_bytes())),
        });
    }
    all.sort_by_key(|s| s.key.as_ref().map(|k| crate::ids::Fingerprint::of(&k.0)));
    all
}

/// What checking one record's form and signatures found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// Held already, so not checked again.
    Held,
    /// Form and signatures are sound.
    Sound,
    /// Its account's key is not known yet: checked once it is.
    KeyUnknown,
    Refused(RecordError),
}

/// Whether a node whose clock reads `now` holds `r` back for now: a transfer dated more than
/// [`crate::clock::MAX_CLOCK_SKEW`] after it ([`Checked::hold_ahead`]).
pub fn held_back(r: &Record, now: u64) -> bool {
    r.kind() == Kind::Transfer && r.body().time > now.saturating_add(crate::clock::MAX_CLOCK_SKEW)
}

/// Records with the result of checking their form and signatures, in their order, ready for
/// [`Ledger::ingest_checked`]. Only [`Ledger::check`] and [`Verifier::check`] make one.
pub struct Checked {
    cod: CodId,
    items: Vec<(Record, Check)>,
}

impl Checked {
    /// The records with their results, in order.
    pub fn items(&self) -> &[(Record, Check)] {
        &self.items
    }

    pub fn into_items(self) -> Vec<(Record, Check)> {
        self.items
    }

    /// Refuses, for now, the transfers dated more than [`crate::clock::MAX_CLOCK_SKEW`]
    /// after `now` (this node's clock): [`Ledger::ingest_checked`] then neither stores nor
    /// applies them ([`RecordError::Ahead`], no misbehaviour: the sender's clock, or this
    /// one, is off). Their sender offers them again; they are taken once the clock gets near
    /// them. Were they taken, every record that claims one — every account the far-dated
    /// record pays, and whoever they pay in turn — would wait outside a distribution's closed
    /// cut until the far date, and no period before it could be settled. (Network records
    /// are always inside a cut, and each of their signers refused a proposal dated that far
    /// from its clock.)
    pub fn hold_ahead(&mut self, now: u64) {
        for (r, check) in &mut self.items {
            // (A refusal stands: a forged record dated ahead is still forged; and one held
            // here already is a duplicate.)
            let settled = matches!(check, Check::Refused(_) | Check::Held);
            if !settled && held_back(r, now) {
                let time = r.body().time;
                *check = Check::Refused(RecordError::Ahead { time, now });
            }
        }
    }

    /// What the checks found, without the records: the records' checks can be taken up again
    /// by [`Verdicts::rejoin`] once the same records are read again (from a file too large to
    /// hold, say), without checking their signatures twice. The records refused, with why, if
    /// any was.
    pub fn verdicts(&self) -> Result<Verdicts, Vec<(RecordHash, RecordError)>> {
        let refused: Vec<_> = self
            .items
            .iter()
            .filter_map(|(r, c)| match c {
                Check::Refused(e) => Some((r.hash(), e.clone())),
                _ => None,
            })
            .collect();
        if !refused.is_empty() {
            return Err(refused);
        }
        Ok(Verdicts {
            cod: self.cod,
            bound: Verdicts::bind(self.items.iter().map(|(r, _)| r)),
            checks: self
                .items
                .iter()
                .map(|(_, c)| match c {
                    Check::Sound => Verdict::Sound,
                    Check::Held => Verdict::Held,
                    _ => Verdict::KeyUnknown,
                })
                .collect(),
        })
    }
}

/// A ledger's keys and the records it holds, taken at one moment ([`Ledger::verifier`]; a
/// layered ledger's verifier asks its store, so it also knows what was stored since), which
/// checks batch after batch: each batch's openings teach it their keys for the next.
pub struct Verifier {
    params: Params,
    /// The keys it knows: the ledger's uncommitted ones, then each account's as it first
    /// meets the account (from `key_source`, or an opening it checked).
    keys: HashMap<AccountId, PublicKey>,
    /// The committed opening keys, for a ledger layered over a store.
    key_source: Option<Arc<dyn Source<AccountId, PublicKey>>>,
    held: BTreeSet<RecordHash>,
    /// The committed records, for a ledger layered over a store.
    source: Option<Arc<dyn Source<RecordHash, Arc<Record>>>>,
}

impl Verifier {
    pub fn check(&mut self, records: Vec<Record>) -> Checked {
        if let Some(source) = &self.key_source {
            let unknown: BTreeSet<AccountId> = records
                .iter()
                .map(Record::account)
                .filter(|a| !self.keys.contains_key(a))
                .collect();
            for a in unknown {
                if let Some(k) = source.get(&a) {
                    self.keys.insert(a, k);
                }
            }
        }
        let (checked, opened) = check_batch(
            &self.params,
            records,
            |a| self.keys.get(a),
            |h| self.held.contains(h) || self.source.as_ref().is_some_and(|s| s.contains(h)),
        );
        // The keys it learns are per account; the records it checked are not remembered (a
        // layered ledger's source tells which are stored by now), so it stays small however
        // long a replay runs.
        self.keys.extend(opened);
        checked
    }

    /// [`Verifier::check`] for records a peer sent, at `now` by this node's clock: transfers
    /// dated more than the tolerated skew after it are held back *unchecked* (as
    /// [`Checked::hold_ahead`] would hold them): they are neither stored nor passed on, so
    /// checking their signatures would be work for nothing — every time a peer offers them
    /// again, until the clock gets there.
    pub fn check_at(&mut self, records: Vec<Record>, now: u64) -> Checked {
        let ahead = |r: &Record| held_back(r, now);
        if !records.iter().any(ahead) {
            return self.check(records);
        }
        // Which go unchecked, in order; the others are checked together.
        let held: Vec<bool> = records.iter().map(ahead).collect();
        let (mut unchecked, rest): (Vec<Record>, Vec<Record>) =
            records.into_iter().partition(|r| ahead(r));
        unchecked.reverse();
        let checked = self.check(rest);
        let cod = checked.cod;
        let mut checked = checked.items.into_iter();
        let items = held
            .into_iter()
            .filter_map(|is_held| {
                if !is_held {
                    return checked.next();
                }
                let r = unchecked.pop()?;
                let time = r.body().time;
                Some((r, Check::Refused(RecordError::Ahead { time, now })))
            })
            .collect();
        Checked { cod, items }
    }
}

/// The checks of a [`Checked`] without its records (a byte each), bound to them by a digest
/// of everything that was checked: each record's hash (its body) and its signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdicts {
    cod: CodId,
    bound: [u8; 32],
    checks: Vec<Verdict>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Held,
    Sound,
    KeyUnknown,
}

impl Verdicts {
    fn bind<'a>(records: impl Iterator<Item = &'a Record>) -> [u8; 32] {
        use sha2::Digest;
        let mut d = sha2::Sha256::new();
        let mut put = |bytes: &[u8]| {
            d.update((bytes.len() as u64).to_be_bytes());
            d.update(bytes);
        };
        for r in records {
            put(r.hash().as_bytes());
            put(&(r.sigs().len() as u64).to_be_bytes());
            for sig in r.sigs() {
                put(sig.key.as_ref().map_or(&[][..], |k| &k.0));
                put(&[u8::from(sig.key.is_some())]);
                put(&sig.sig.0);
            }
        }
        d.finalize().into()
    }

    /// How many records they are of.
    pub fn len(&self) -> usize {
        self.checks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.checks.is_empty()
    }

    /// `records` with these checks, if they are the very records checked, in the same order
    /// (and `None` if not: nothing is taken on trust).
    pub fn rejoin(self, records: Vec<Record>) -> Option<Checked> {
        if records.len() != self.checks.len() || Self::bind(records.iter()) != self.bound {
            return None;
        }
        Some(Checked {
            cod: self.cod,
            items: records
                .into_iter()
                .zip(self.checks)
                .map(|(r, v)| {
                    let c = match v {
                        Verdict::Held => Check::Held,
                        Verdict::Sound => Check::Sound,
                        Verdict::KeyUnknown => Check::KeyUnknown,
                    };
                    (r, c)
                })
                .collect(),
        })
    }
}

/// Checks form and signatures on all cores. A transfer's key is `key_of` its account, or
/// the key its opening in `records` carries (bound to the account by the account id, so
/// usable before the opening itself is checked). Returns the keys opened in `records` too.
fn check_batch<'k>(
    params: &Params,
    records: Vec<Record>,
    key_of: impl Fn(&AccountId) -> Option<&'k PublicKey> + Sync,
    held: impl Fn(&RecordHash) -> bool + Sync,
) -> (Checked, HashMap<AccountId, PublicKey>) {
    use rayon::prelude::*;
    let opened: HashMap<AccountId, PublicKey> = records
        .iter()
        .filter(|r| r.kind() == Kind::Transfer && r.seq() == 0)
        .filter_map(|r| {
            rules::opening_key(r, params)
                .ok()
                .flatten()
                .map(|k| (r.account(), k))
        })
        .collect();
    let checks: Vec<_> = records
        .par_iter()
        .map(|r| {
            if held(&r.hash()) {
                return Check::Held;
            }
            let check = || {
                rules::check_form(r, params)?;
                let key = match r.kind() {
                    Kind::Transfer if r.seq() == 0 => rules::opening_key(r, params)?,
                    Kind::Transfer => {
                        match key_of(&r.account()).or_else(|| opened.get(&r.account())) {
                            Some(k) => Some(k.clone()),
                            None => return Ok(Check::KeyUnknown),
                        }
                    }
                    _ => None,
                };
                rules::check_sigs(r, key.as_ref()).map(|()| Check::Sound)
            };
            check().unwrap_or_else(Check::Refused)
        })
        .collect();
    let checked = Checked {
        cod: params.cod,
        items: records.into_iter().zip(checks).collect(),
    };
    (checked, opened)
}

#[cfg(test)]
pub(crate) mod tests;
#[cfg(test)]
mod worked_examples;
