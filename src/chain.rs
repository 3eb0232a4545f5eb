//! The ledger kept on disk: a [`Ledger`] whose tables are layered over a [`KvStore`] and
//! whose every decision — records and the state derived from them — is written in one
//! atomic, synced batch before it is acknowledged. A start reads the summary, not the
//! history (records and accounts are read when the ledger needs them). Readers read a
//! [`View`]: the chain as of the last commit, over a snapshot of the store.
//!
//! Key layout (schema 4; ids as raw bytes, integers big-endian):
//!
//! | family | key | value |
//! |---|---|---|
//! | records | hash | canonical record bytes |
//! | slots | account ‖ seq ‖ hash | empty: every held record by position |
//! | forks | account ‖ seq | empty: positions holding two or more records |
//! | keys | account | DER of the key its held opening carries |
//! | pending | hash | empty: records waiting for what they depend on |
//! | applied | hash | account ‖ seq |
//! | chains | account ‖ seq | hash of the applied record there |
//! | log | position | hash (the order records were applied in) |
//! | credits | payee ‖ paying record | unclaimed amounts (see [`Codec`] for amounts) |
//! | claims | payee ‖ credit | claiming record hash |
//! | state | account | JSON account state |
//! | meta | `summary` | JSON `{held, state}`: what the ledger keeps besides its tables |

use crate::ids::RecordHash;
use crate::ledger::db::{Codec, Source, Writes};
use crate::ledger::{
    Check, Checked, DerivedSources, Ledger, LedgerWrites, Outcome, Params, Record, RecordError,
    Stored, Summary,
};
use crate::store::{Cf, KvStore, Op, SCHEMA_VERSION, StoreError};
use serde_json::json;
use std::marker::PhantomData;
use std::ops::Bound;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error("stored record {hash} is unreadable: {error}")]
    Corrupt { hash: String, error: RecordError },
    #[error(
        "the stored state is unreadable ({0}); start with `cod node run --full` to recompute it"
    )]
    State(String),
    /// A transfer was asked for as record `expected` of its account, but the account's next
    /// record is `next`: another transfer was made since (perhaps this one, whose answer was
    /// lost). Nothing was paid.
    #[error(
        "not paid: the transfer was to be record {expected} of this account, but its next record is {next} (another transfer was made meanwhile; check `cod history` before trying again)"
    )]
    SeqTaken { expected: u64, next: u64 },
    #[error("cannot write the archive: {0}")]
    Write(#[from] std::io::Error),
    #[error("cannot recompute the chain: {0}")]
    Replay(String),
}

/// The [`Cf::Meta`] key of the summary.
pub const SUMMARY_KEY: &[u8] = b"summary";

/// One table's committed entries, read from a column family. A store that fails to read,
/// or holds bytes that do not decode, panics: the daemon reloads the chain from the store
/// (see `node::Shared::chain`), and `cod node run --full` recomputes what is derived.
struct CfSource<K, V> {
    store: Arc<dyn KvStore>,
    cf: Cf,
    kv: PhantomData<fn() -> (K, V)>,
}

fn cf_source<K: Codec + 'static, V: Codec + 'static>(
    store: &Arc<dyn KvStore>,
    cf: Cf,
) -> Arc<dyn Source<K, V>> {
    Arc::new(CfSource {
        store: store.clone(),
        cf,
        kv: PhantomData,
    })
}

impl<K: Codec, V: Codec> CfSource<K, V> {
    fn decode(&self, k: &[u8], v: &[u8]) -> V {
        V::from_key(v).unwrap_or_else(|| {
            panic!(
                "store: the {} entry {} does not decode",
                self.cf.name(),
                hex::encode(k)
            )
        })
    }
}

fn unreadable(e: StoreError) -> ! {
    panic!("store unreadable: {e}")
}

impl<K: Codec, V: Codec> Source<K, V> for CfSource<K, V> {
    fn get(&self, key: &K) -> Option<V> {
        let k = key.to_key();
        let v = self
            .store
            .get(self.cf, &k)
            .unwrap_or_else(|e| unreadable(e))?;
        Some(self.decode(&k, &v))
    }

    fn contains(&self, key: &K) -> bool {
        let k = key.to_key();
        self.store
            .get(self.cf, &k)
            .unwrap_or_else(|e| unreadable(e))
            .is_some()
    }

    fn range(&self, from: Bound<&K>, to: Bound<&K>, limit: usize) -> Vec<(K, V)> {
        let from = from.map(Codec::to_key);
        let to = to.map(Codec::to_key);
        self.store
            .range(
                self.cf,
                from.as_ref().map(Vec::as_slice),
                to.as_ref().map(Vec::as_slice),
                limit,
            )
            .unwrap_or_else(|e| unreadable(e))
            .into_iter()
            .map(|(k, v)| {
                let key = K::from_key(&k).unwrap_or_else(|| {
                    panic!(
                        "store: a {} key {} does not decode",
                        self.cf.name(),
                        hex::encode(&k)
                    )
                });
                let value = self.decode(&k, &v);
                (key, value)
            })
            .collect()
    }
}

fn sources(store: &Arc<dyn KvStore>) -> (crate::ledger::HeldSources, DerivedSources) {
    (
        crate::ledger::HeldSources {
            records: cf_source(store, Cf::Records),
            slots: cf_source(store, Cf::Slots),
            forks: cf_source(store, Cf::Forks),
            keys: cf_source(store, Cf::Keys),
            pending: cf_source(store, Cf::Pending),
        },
        DerivedSources {
            accounts: cf_source(store, Cf::State),
            applied: cf_source(store, Cf::Applied),
            chain: cf_source(store, Cf::Chains),
            log: cf_source(store, Cf::Log),
            unclaimed: cf_source(store, Cf::Credits),
            claimed: cf_source(store, Cf::Claims),
        },
    )
}

fn table_ops<K: Codec, V: Codec>(
    cf: Cf,
    (cleared, writes): &(bool, Writes<K, V>),
    replace: bool,
    ops: &mut Vec<Op>,
) {
    if *cleared || replace {
        ops.push(Op::Clear(cf));
    }
    for (k, v) in writes {
        ops.push(match v {
            Some(v) => Op::Put(cf, k.to_key(), v.to_key()),
            None => Op::Delete(cf, k.to_key()),
        });
    }
}

/// The store operations of a ledger's changes; with `replace`, every table but the
/// records is cleared first (a whole recomputation), and the records' own writes are left
/// out (they are stored already).
fn writes_ops(w: &LedgerWrites, replace: bool) -> Vec<Op> {
    let mut ops = Vec::new();
    if !replace {
        table_ops(Cf::Records, &w.held.records, false, &mut ops);
    }
    table_ops(Cf::Slots, &w.held.slots, replace, &mut ops);
    table_ops(Cf::Forks, &w.held.forks, replace, &mut ops);
    table_ops(Cf::Keys, &w.held.keys, replace, &mut ops);
    table_ops(Cf::Pending, &w.held.pending, replace, &mut ops);
    let d = &w.derived;
    table_ops(Cf::State, &d.accounts, replace, &mut ops);
    table_ops(Cf::Applied, &d.applied, replace, &mut ops);
    table_ops(Cf::Chains, &d.chain, replace, &mut ops);
    table_ops(Cf::Log, &d.log, replace, &mut ops);
    table_ops(Cf::Credits, &d.unclaimed, replace, &mut ops);
    table_ops(Cf::Claims, &d.claimed, replace, &mut ops);
    ops
}

/// The stored summary: what a ledger keeps besides its tables.
fn summary_op(l: &Ledger) -> Op {
    let summary = json!({"held": l.len(), "state": l.state().summary()});
    Op::Put(
        Cf::Meta,
        SUMMARY_KEY.to_vec(),
        serde_json::to_vec(&summary).expect("json"),
    )
}

/// What the store keeps besides its tables: `None` if it keeps no summary of this schema
/// (a store written by an older schema, whose derived state older rules made, or never
/// written).
fn read_stored(store: &dyn KvStore) -> Result<Option<Stored>, ChainError> {
    let schema = store.get(Cf::Meta, b"schema")?;
    if schema.as_deref() != Some(SCHEMA_VERSION.to_string().as_bytes()) {
        return Ok(None);
    }
    let Some(raw) = store.get(Cf::Meta, SUMMARY_KEY)? else {
        return Ok(None);
    };
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Top {
        held: u64,
        state: Summary,
    }
    let Ok(top) = serde_json::from_slice::<Top>(&raw) else {
        return Ok(None); // an older summary: recompute
    };
    Ok(Some(Stored {
        held: top.held,
        summary: top.state,
    }))
}

fn read_records(store: &dyn KvStore) -> Result<Vec<Record>, ChainError> {
    let mut records = Vec::new();
    for (k, v) in store.scan(Cf::Records, b"")? {
        let r = Record::from_bytes(&v).map_err(|error| ChainError::Corrupt {
            hash: hex::encode(&k),
            error,
        })?;
        records.push(r);
    }
    Ok(records)
}

/// The chain as it was at one commit, for readers: a ledger over a snapshot of the store
/// (see [`Ledger::reader`]). However long a reader reads, it reads that one moment, and
/// it never waits for the writer.
#[derive(Clone)]
pub struct View {
    ledger: Arc<Ledger>,
    store: Arc<dyn KvStore>,
    /// Its applied heads, read once for every reader of this view.
    heads: Arc<std::sync::OnceLock<Vec<(crate::ids::AccountId, crate::ledger::Head)>>>,
}

impl View {
    fn new(ledger: Ledger, store: Arc<dyn KvStore>) -> Self {
        Self {
            ledger: Arc::new(ledger),
            store,
            heads: Arc::default(),
        }
    }

    /// `ledger` as committed to `store` (nothing uncommitted), read from a snapshot of it.
    fn of(ledger: &Ledger, store: &Arc<dyn KvStore>) -> Self {
        let snapshot = store.snapshot();
        let (held, derived) = sources(&snapshot);
        Self::new(ledger.reader(held, derived), snapshot)
    }

    /// The head of every account with an applied record, by account (what the sync
    /// digests cover): read from the store by the first reader that asks.
    pub fn heads(&self) -> &[(crate::ids::AccountId, crate::ledger::Head)] {
        self.heads.get_or_init(|| {
            self.ledger
                .state()
                .accounts()
                .into_iter()
                .filter_map(|(a, st)| st.head.map(|h| (a, h)))
                .collect()
        })
    }

    /// The store as it was at that commit (read-only), for reading stored bytes as they are.
    pub fn store(&self) -> &Arc<dyn KvStore> {
        &self.store
    }
}

impl View {
    /// The chain of no records (in memory): what a node shows its peers before anything of
    /// its own has gone out.
    pub fn empty(params: Params) -> Result<Self, ChainError> {
        let chain = Chain::empty(params, Arc::new(crate::store::MemStore::default()))?;
        Ok(chain.views().latest())
    }
}

impl std::ops::Deref for View {
    type Target = Ledger;
    fn deref(&self) -> &Ledger {
        &self.ledger
    }
}

/// Where readers find the chain as last committed: replaced after every commit.
#[derive(Clone)]
pub struct Views(Arc<std::sync::RwLock<View>>);

impl Views {
    fn new(view: View) -> Self {
        Self(Arc::new(std::sync::RwLock::new(view)))
    }

    /// The chain as last committed.
    pub fn latest(&self) -> View {
        self.0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn set(&self, view: View) {
        *self
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = view;
    }
}

/// The ledger and its store, kept in step.
pub struct Chain {
    ledger: Ledger,
    store: Arc<dyn KvStore>,
    views: Views,
    /// A write failed and the store could not be read back since: the ledger in memory may
    /// hold what the store does not, so nothing is accepted until [`Chain::reload`] works.
    stale: Option<String>,
}

impl Chain {
    /// Opens the chain a store keeps: its stored state, read without replaying the records
    /// (a store without one — written by an older schema — is recomputed once).
    pub fn load(params: Params, store: Box<dyn KvStore>) -> Result<Self, ChainError> {
        let store: Arc<dyn KvStore> = store.into();
        match read_stored(store.as_ref())? {
            Some(stored) => Ok(Self::resumed(params, store, stored)),
            None => Self::recompute_in(params, store),
        }
    }

    /// Recomputes everything derived from the stored records and replaces what is stored
    /// (`cod node run --full`; the first start after a schema change). Records that can
    /// never apply are forgotten.
    pub fn recompute(params: Params, store: Box<dyn KvStore>) -> Result<Self, ChainError> {
        Self::recompute_in(params, store.into())
    }

    fn recompute_in(params: Params, store: Arc<dyn KvStore>) -> Result<Self, ChainError> {
        let source = store.snapshot();
        if !has_log(source.as_ref())? {
            return Self::recompute_in_memory(params, store);
        }
        let replayed = replay(params.clone(), source.as_ref(), store.scratch()?, true)?;
        // Records a limit refused, or whose opening never came, might apply in another
        // order: nothing is forgotten on their account — the store stays as it is.
        let waiting = replayed.chain.ledger.awaiting().count();
        if replayed.unsettled > 0 || waiting > 0 {
            return Err(ChainError::Replay(format!(
                "{} records were refused for a limit and {waiting} wait for their account's \
                 opening when replayed in the order of the application log; nothing was changed",
                replayed.unsettled
            )));
        }
        for p in &replayed.problems {
            tracing::warn!("recomputing the chain: {p}; it is forgotten");
        }
        // 1. The summary and every derived table but the log go in one write: from here
        //    until the new summary is written, a start (after a crash, say) recomputes
        //    again — in the order of the log, which is rewritten in place, not cleared.
        let mut ops = vec![Op::Delete(Cf::Meta, SUMMARY_KEY.to_vec())];
        ops.extend(recomputed().filter(|cf| *cf != Cf::Log).map(Op::Clear));
        store.write(ops)?;
        // 2. What the replay derived, a page at a time; then the old log's tail goes.
        let scratch = replayed.chain.store.clone();
        let mut log_end = None;
        for cf in recomputed() {
            for_each_page(scratch.as_ref(), cf, None, |page| {
                if cf == Cf::Log {
                    log_end = page.last().map(|(k, _)| k.clone());
                }
                let ops = page.into_iter().map(|(k, v)| Op::Put(cf, k, v)).collect();
                store.write(ops)
            })?;
        }
        for_each_page(store.as_ref(), Cf::Log, log_end, |page| {
            store.write(
                page.into_iter()
                    .map(|(k, _)| Op::Delete(Cf::Log, k))
                    .collect(),
            )
        })?;
        // 3. The records that can never apply are forgotten.
        let ledger = replayed.chain.ledger();
        for_each_page(source.as_ref(), Cf::Records, None, |page| {
            let ops: Vec<Op> = page
                .into_iter()
                .filter(|(k, _)| RecordHash::from_key(k).is_none_or(|h| !ledger.holds(&h)))
                .map(|(k, _)| Op::Delete(Cf::Records, k))
                .collect();
            store.write(ops)
        })?;
        // 4. The summary: the store is whole again.
        store.write(vec![summary_op(ledger), schema_op()])?;
        Self::reopened(params, store)
    }

    /// [`Chain::recompute`] of a store of layout 1, which keeps no application log to
    /// replay in order: its records are all read into memory (stores of that layout predate
    /// long histories).
    fn recompute_in_memory(params: Params, store: Arc<dyn KvStore>) -> Result<Self, ChainError> {
        let records = read_records(store.as_ref())?;
        let (mut ledger, dropped) = Ledger::load(params.clone(), records);
        let mut ops: Vec<Op> = dropped
            .iter()
            .map(|d| Op::Delete(Cf::Records, d.hash.as_bytes().to_vec()))
            .collect();
        ops.push(summary_op(&ledger));
        ops.extend(writes_ops(&ledger.take_writes(), true));
        ops.push(schema_op());
        store.write(ops)?;
        Self::reopened(params, store)
    }

    /// A chain of no records over `store`, which is empty.
    fn empty(params: Params, store: Arc<dyn KvStore>) -> Result<Self, ChainError> {
        store.write(vec![summary_op(&Ledger::new(params.clone())), schema_op()])?;
        Self::reopened(params, store)
    }

    /// Reads the chain from a store it will not write to (opened read-only): the stored
    /// state, or — in a store without one — the records, recomputed in memory.
    pub fn load_read_only(params: Params, store: Box<dyn KvStore>) -> Result<Self, ChainError> {
        let store: Arc<dyn KvStore> = store.into();
        match read_stored(store.as_ref())? {
            Some(stored) => Ok(Self::resumed(params, store, stored)),
            None => {
                // (Only here is the whole history in memory; its view shares nothing.)
                let ledger = Ledger::from_records(params, read_records(store.as_ref())?);
                Ok(Self {
                    views: Views::new(View::new(ledger.clone(), store.clone())),
                    ledger,
                    store,
                    stale: None,
                })
            }
        }
    }

    /// The chain a store holds right after its summary was written.
    fn reopened(params: Params, store: Arc<dyn KvStore>) -> Result<Self, ChainError> {
        let stored = read_stored(store.as_ref())?
            .ok_or_else(|| ChainError::State("the summary just written is missing".into()))?;
        Ok(Self::resumed(params, store, stored))
    }

    fn resumed(params: Params, store: Arc<dyn KvStore>, stored: Stored) -> Self {
        let (held, derived) = sources(&store);
        let ledger = Ledger::resume(params, held, derived, stored);
        Self {
            views: Views::new(View::of(&ledger, &store)),
            ledger,
            store,
            stale: None,
        }
    }

    /// Shows what was just committed to the readers.
    fn publish(&self) {
        self.views.set(View::of(&self.ledger, &self.store));
    }

    /// Where readers find the chain as last committed.
    pub fn views(&self) -> Views {
        self.views.clone()
    }

    /// Does the stored state match the one the records give? (What `cod chain verify`
    /// checks, without its other checks.)
    #[cfg(test)]
    pub fn derived_state_matches(&self) -> Result<bool, ChainError> {
        let records = read_records(self.store.as_ref())?;
        let expected = Ledger::from_records(self.ledger.params().clone(), records);
        Ok(tests::stored_derived(self.store.as_ref())? == tests::derived_of(expected))
    }

    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// Goes back to exactly what the store holds (after a failed write, or a panic while
    /// the chain was locked): what was not committed is dropped.
    pub fn reload(&mut self) -> Result<(), ChainError> {
        match read_stored(self.store.as_ref()) {
            Ok(Some(stored)) => {
                let params = self.ledger.params().clone();
                let (held, derived) = sources(&self.store);
                self.ledger = Ledger::resume(params, held, derived, stored);
                self.stale = None;
                self.publish();
                Ok(())
            }
            Ok(None) => {
                let e = ChainError::State("no stored summary".into());
                self.stale = Some(e.to_string());
                Err(e)
            }
            Err(e) => {
                self.stale = Some(e.to_string());
                Err(e)
            }
        }
    }

    /// Makes, signs and stores a transfer from `account`, whose key in force `key` is (the
    /// wallet's one way in). With `seq`, only as that record of the account: see
    /// [`ChainError::SeqTaken`].
    pub fn transfer(
        &mut self,
        account: crate::ids::AccountId,
        key: &crate::keys::SecretKey,
        payment: crate::ledger::Payment,
        time: u64,
        seq: Option<u64>,
    ) -> Result<Record, ChainError> {
        let r = self
            .ledger
            .make_payment(account, key, payment, None, time)?;
        if let Some(expected) = seq.filter(|s| *s != r.seq()) {
            return Err(ChainError::SeqTaken {
                expected,
                next: r.seq(),
            });
        }
        self.ingest(r.clone())?;
        Ok(r)
    }

    pub fn store(&self) -> &dyn KvStore {
        self.store.as_ref()
    }

    /// Ingests one record and persists the outcome before returning it.
    pub fn ingest(&mut self, r: Record) -> Result<Outcome, ChainError> {
        Ok(self
            .ingest_batch(vec![r])?
            .pop()
            .expect("one result per record")?)
    }

    /// Ingests records in order and persists all their outcomes in one synced batch.
    /// Per-record results: a refused record changes nothing.
    pub fn ingest_batch(
        &mut self,
        records: Vec<Record>,
    ) -> Result<Vec<Result<Outcome, RecordError>>, StoreError> {
        let checked = self.ledger.check(records);
        self.ingest_checked(checked)
    }

    /// [`Chain::ingest_batch`] for records checked already (on all cores, perhaps while
    /// earlier ones were applied; see [`Ledger::verifier`]).
    pub fn ingest_checked(
        &mut self,
        checked: Checked,
    ) -> Result<Vec<Result<Outcome, RecordError>>, StoreError> {
        if self.stale.is_some() && self.reload().is_err() {
            return Err(StoreError::Unreadable(
                self.stale.clone().unwrap_or_default(),
            ));
        }
        let pools = self.ledger.pools();
        let results = self.ledger.ingest_checked(checked, |_, _| {});
        if results.iter().flatten().any(|o| o.rebuilt) {
            tracing::info!(
                "recomputed the whole state from the records (a fork or a checkpoint asked for it)"
            );
        }
        let writes = self.ledger.take_writes();
        if writes.is_empty() {
            // Duplicates, refusals, records awaiting keys: nothing to store.
            if self.ledger.pools() != pools {
                self.publish();
            }
            return Ok(results);
        }
        let mut ops = writes_ops(&writes, false);
        ops.push(summary_op(&self.ledger));
        if let Err(e) = self.store.write(ops) {
            // Nothing was acknowledged: go back to exactly what the store holds — or, if it
            // cannot be read either, keep the ledger whole (its changes put back) and accept
            // nothing until the store reads.
            self.ledger.restore_writes(writes);
            let _ = self.reload();
            return Err(e);
        }
        self.publish();
        Ok(results)
    }
}

/// Do two stores hold the same derived state — everything but the records, the application
/// log (its order is the order records arrived in) and the pending set? Read a page at a
/// time.
fn same_derived(a: &dyn KvStore, b: &dyn KvStore) -> Result<bool, StoreError> {
    if a.get(Cf::Meta, SUMMARY_KEY)? != b.get(Cf::Meta, SUMMARY_KEY)? {
        return Ok(false);
    }
    for cf in DERIVED {
        let mut after: Option<Vec<u8>> = None;
        loop {
            let from = after.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
            let page = a.range(cf, from, Bound::Unbounded, PAGE)?;
            if page != b.range(cf, from, Bound::Unbounded, PAGE)? {
                return Ok(false);
            }
            match page.last() {
                Some((last, _)) => after = Some(last.clone()),
                None => break,
            }
        }
    }
    Ok(true)
}

const DERIVED: [Cf; 8] = [
    Cf::Slots,
    Cf::Forks,
    Cf::Keys,
    Cf::Applied,
    Cf::Chains,
    Cf::Credits,
    Cf::Claims,
    Cf::State,
];

/// What a recomputation replaces: every table but the records and the meta.
fn recomputed() -> impl Iterator<Item = Cf> {
    Cf::ALL
        .into_iter()
        .filter(|cf| !matches!(cf, Cf::Meta | Cf::Records))
}

/// Entries read per page where a whole table is read (a replay, a comparison, a copy); tiny
/// in tests, so that they read many pages.
const PAGE: usize = if cfg!(test) { 3 } else { IMPORT_BATCH };

/// Calls `each` with every entry of `cf` in `store` (after the key `after`, if given), a
/// page at a time, in key order.
fn for_each_page<E: From<StoreError>>(
    store: &dyn KvStore,
    cf: Cf,
    mut after: Option<Vec<u8>>,
    mut each: impl FnMut(Vec<crate::store::Entry>) -> Result<(), E>,
) -> Result<(), E> {
    loop {
        let from = after.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
        let page = store.range(cf, from, Bound::Unbounded, PAGE)?;
        let Some((last, _)) = page.last() else {
            return Ok(());
        };
        after = Some(last.clone());
        each(page)?;
    }
}

/// Does the store keep an application log (every layout since 2 does, once it applied a
/// record)?
fn has_log(store: &dyn KvStore) -> Result<bool, StoreError> {
    let records = store.range(Cf::Records, Bound::Unbounded, Bound::Unbounded, 1)?;
    let log = store.range(Cf::Log, Bound::Unbounded, Bound::Unbounded, 1)?;
    Ok(records.is_empty() || !log.is_empty())
}

fn schema_op() -> Op {
    Op::Put(
        Cf::Meta,
        b"schema".to_vec(),
        SCHEMA_VERSION.to_string().into_bytes(),
    )
}

/// A store's records replayed from scratch (see [`replay`]).
struct Replayed {
    /// The chain they make, over the scratch store.
    chain: Chain,
    /// Records the store holds (each counted once).
    stored: usize,
    /// Records refused or unreadable, each with why.
    problems: Vec<String>,
    /// Of those, refused for a limit (too many waiting): in another order they might apply.
    unsettled: usize,
}

/// Replays the records `source` holds into an empty chain over `scratch`, a page at a time,
/// so that memory holds a page and the chain's pools, not the history: first the applied
/// ones in the order of `source`'s application log (so each comes after what it depends
/// on, and nothing waits), then every other stored record by hash (pending records, fork
/// proofs). Signatures are checked on all cores. A record refused is a problem, and so is
/// one that does not decode or is stored under another hash — or, if `strict`, that is an
/// error (a recomputation stops rather than forget a record it cannot read).
fn replay(
    params: Params,
    source: &dyn KvStore,
    scratch: Arc<dyn KvStore>,
    strict: bool,
) -> Result<Replayed, ChainError> {
    let mut out = Replayed {
        chain: Chain::empty(params, scratch)?,
        stored: 0,
        problems: Vec::new(),
        unsettled: 0,
    };
    let mut refused = std::collections::HashSet::new();
    for_each_page(source, Cf::Log, None, |page| {
        let mut batch = Vec::with_capacity(page.len());
        for (_, h) in page {
            // (What does not read here is met, and reported, in the second pass.)
            let Some(h) = RecordHash::from_key(&h) else {
                continue;
            };
            if let Some(bytes) = source.get(Cf::Records, h.as_bytes())?
                && let Ok(r) = Record::from_bytes(&bytes)
                && r.hash() == h
            {
                batch.push(r);
            }
        }
        out.ingest(batch, &mut refused)
    })?;
    for_each_page(source, Cf::Records, None, |page| {
        let mut batch = Vec::new();
        for (k, v) in page {
            out.stored += 1;
            // (Met in the first pass: these very bytes, which hashed to their key.)
            if RecordHash::from_key(&k)
                .is_some_and(|h| out.chain.ledger.holds(&h) || refused.contains(&h))
            {
                continue;
            }
            let problem = match Record::from_bytes(&v) {
                Ok(r) if r.hash().as_bytes().as_slice() == k.as_slice() => {
                    batch.push(r);
                    continue;
                }
                Ok(r) => RecordError::Malformed(format!("it hashes to {}", r.hash())),
                Err(e) => e,
            };
            if strict {
                return Err(ChainError::Corrupt {
                    hash: hex::encode(&k),
                    error: problem,
                });
            }
            out.problems.push(format!(
                "record stored under {}: {problem}",
                hex::encode(&k)
            ));
        }
        out.ingest(batch, &mut refused)
    })?;
    Ok(out)
}

impl Replayed {
    /// Ingests a page of records; those refused are problems (and not tried again).
    fn ingest(
        &mut self,
        batch: Vec<Record>,
        refused: &mut std::collections::HashSet<RecordHash>,
    ) -> Result<(), ChainError> {
        if batch.is_empty() {
            return Ok(());
        }
        let named: Vec<_> = batch
            .iter()
            .map(|r| (r.hash(), r.account(), r.seq()))
            .collect();
        let checked = self.chain.ledger.check(batch);
        let results = self.chain.ingest_checked(checked)?;
        for ((h, a, seq), result) in named.into_iter().zip(results) {
            if let Err(e) = result {
                refused.insert(h);
                self.unsettled += usize::from(matches!(e, RecordError::TooMany { .. }));
                self.problems
                    .push(format!("record {h} ({a} seq {seq}): {e}"));
            }
        }
        Ok(())
    }
}

/// The whole chain as an archive, in an order that applies front to back: the applied
/// records in the order they were applied (each after everything it depends on, whatever
/// the clocks that dated them said), then the rest — pending records and fork proofs — by
/// time, account and seq.
pub fn export(l: &Ledger) -> Vec<u8> {
    let applied = l.log(0, usize::MAX);
    let rest: Vec<Arc<Record>> = l
        .records()
        .into_iter()
        .filter(|r| !l.state().is_applied(&r.hash()))
        .collect();
    write_archive(
        &l.params().cod,
        applied.iter().map(|r| &**r).collect(),
        rest.iter().map(|r| &**r).collect(),
    )
}

/// [`export`] from a store as it is at this moment, written to `out` a page at a time:
/// memory holds a page and the records not applied (pending records, fork proofs), not the
/// history. Needs no lock on the chain, so a daemon exports while it goes on applying
/// records. Returns `out` and how many records were written.
pub fn export_to<W: std::io::Write>(
    cod: &crate::ids::CodId,
    store: &dyn KvStore,
    out: W,
) -> Result<(W, usize), ChainError> {
    let store = store.snapshot();
    let mut archive = crate::archive::Writer::new(out, cod)?;
    let read = |k: &[u8], v: &[u8]| {
        Record::from_bytes(v).map_err(|error| ChainError::Corrupt {
            hash: hex::encode(k),
            error,
        })
    };
    let (mut logged, mut applied) = (0usize, 0usize);
    for_each_page(store.as_ref(), Cf::Log, None, |page| {
        for (_, h) in page {
            if let Some(v) = store.get(Cf::Records, &h)? {
                read(&h, &v)?; // (stored bytes are canonical: they go out as they are)
                archive.push(&v)?;
                logged += 1;
            }
        }
        Ok::<_, ChainError>(())
    })?;
    // (A store of layout 1 has no log: then every record goes by time.)
    let has_log = has_log(store.as_ref())?;
    let mut rest = Vec::new();
    for_each_page(store.as_ref(), Cf::Records, None, |page| {
        for (k, v) in page {
            if has_log && store.get(Cf::Applied, &k)?.is_some() {
                applied += 1;
            } else {
                rest.push(read(&k, &v)?);
            }
        }
        Ok::<_, ChainError>(())
    })?;
    if has_log && logged != applied {
        // (A record would go out twice, or not at all.)
        return Err(ChainError::State(format!(
            "its application log names {logged} stored records, its applied table {applied}"
        )));
    }
    rest.sort_by_key(|r| (r.body().time, r.account(), r.seq(), r.hash()));
    for r in rest {
        archive.push(&r.to_bytes())?;
    }
    Ok(archive.finish()?)
}

/// An archive of `applied` as they are, then `rest` by time, account, seq and hash.
fn write_archive(
    cod: &crate::ids::CodId,
    applied: Vec<&Record>,
    mut rest: Vec<&Record>,
) -> Vec<u8> {
    rest.sort_by_key(|r| (r.body().time, r.account(), r.seq(), r.hash()));
    crate::archive::write(cod, applied.into_iter().chain(rest))
}

/// Records an import stores per batch: each batch is one synced write, and the chain is free
/// between batches (a daemon goes on serving, and the batch's changes are all it holds).
pub const IMPORT_BATCH: usize = 2_000;

/// What an import did (see [`import`]).
#[derive(Debug, Default)]
pub struct ImportReport {
    pub read: usize,
    pub added: usize,
    pub duplicate: usize,
    pub pending: usize,
    /// Records the rules refused, each with why.
    pub refused: Vec<String>,
    pub applied: Applied,
}

/// The records an import applied: how many, and — for an import of at most
/// [`Applied::ANNOUNCED`] — which, in the order they were, to announce one by one (events,
/// gossip). A larger import is history, which peers take by sync: its hashes are not kept,
/// so the memory an import holds does not grow with the archive.
#[derive(Debug, Default)]
pub struct Applied {
    pub count: usize,
    hashes: Vec<RecordHash>,
}

impl Applied {
    pub const ANNOUNCED: usize = 1_024;

    pub fn extend(&mut self, applied: impl IntoIterator<Item = RecordHash>) {
        for h in applied {
            self.count += 1;
            if self.count <= Self::ANNOUNCED {
                self.hashes.push(h);
            } else if !self.hashes.is_empty() {
                self.hashes = Vec::new();
            }
        }
    }

    /// The records to announce one by one: none when there were more than
    /// [`Applied::ANNOUNCED`].
    pub fn announced(&self) -> &[RecordHash] {
        &self.hashes
    }
}

impl ImportReport {
    /// What `cod chain import` reports: the counts, and the applied records the chain now
    /// holds.
    pub fn summary(&self, applied_total: usize) -> ImportSummary {
        ImportSummary {
            read: self.read,
            added: self.added,
            duplicate: self.duplicate,
            pending: self.pending,
            refused: self.refused.clone(),
            applied_total,
        }
    }
}

/// What `cod chain import` reports (see [`ImportReport`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ImportSummary {
    pub read: usize,
    pub added: usize,
    pub duplicate: usize,
    pub pending: usize,
    pub refused: Vec<String>,
    pub applied_total: usize,
}

/// Imports an archive (see [`import_from`]) into `chain`.
pub fn import(
    chain: &mut Chain,
    archive: impl std::io::Read + std::io::Seek + Send,
) -> Result<ImportSummary, String> {
    let cod = chain.ledger().params().cod;
    let verifier = chain.ledger().verifier();
    let report = import_from(archive, &cod, verifier, |batch, report| {
        import_batch(chain, batch, report)
    })
    .map_err(|(e, _)| e)?;
    Ok(report.summary(chain.ledger().state().applied_count()))
}

/// Forged records an import names before it says how many more there were.
const REFUSALS_NAMED: usize = 20;

/// Imports an archive, read twice so that it is never whole in memory. First every record is
/// decoded and its form and signatures checked with `verifier` (taken from the chain: the
/// checks need no lock on it), a page at a time on all cores, and the archive's trailer and
/// checksum are checked: a damaged archive, or one forged record, refuses the whole file
/// before anything is stored. Then the records are read again, each page matched to what was
/// checked (a file changed meanwhile is refused from there on), and handed to `ingest` in
/// batches of [`IMPORT_BATCH`]; rule violations are reported per record. On an error, the
/// records applied by then are returned with it.
pub fn import_from<F: std::io::Read + std::io::Seek + Send>(
    mut file: F,
    cod: &crate::ids::CodId,
    mut verifier: crate::ledger::Verifier,
    mut ingest: impl FnMut(Checked, &mut ImportReport) -> Result<(), String>,
) -> Result<ImportReport, (String, Applied)> {
    let started = std::time::Instant::now();
    let mut checks = Vec::new();
    let mut forged = Vec::new();
    let mut forged_count = 0usize;
    let read = read_pages(&mut file, cod, |page| {
        match verifier.check(page).verdicts() {
            Ok(v) => checks.push(v),
            Err(refused) => {
                forged_count += refused.len();
                let room = REFUSALS_NAMED.saturating_sub(forged.len());
                forged.extend(
                    refused
                        .into_iter()
                        .take(room)
                        .map(|(h, e)| format!("record {h}: {e}")),
                );
            }
        }
        Ok(())
    })
    .map_err(|e| (e, Applied::default()))?;
    if forged_count > 0 {
        let more = match forged_count - forged.len() {
            0 => String::new(),
            n => format!("\n  and {n} more"),
        };
        let e = format!(
            "refused, nothing imported:\n  {}{more}",
            forged.join("\n  ")
        );
        return Err((e, Applied::default()));
    }
    let checked = started.elapsed();
    let mut report = ImportReport {
        read,
        ..ImportReport::default()
    };
    let changed = || "the archive changed while it was being imported; import it again".to_string();
    let mut checks = checks.into_iter();
    let again = read_pages(&mut file, cod, |page| {
        let batch = checks
            .next()
            .and_then(|v| v.rejoin(page))
            .ok_or_else(changed)?;
        ingest(batch, &mut report)
    });
    match again {
        Err(e) => return Err((e, report.applied)),
        Ok(_) if checks.next().is_some() => return Err((changed(), report.applied)),
        Ok(_) => {}
    }
    tracing::info!(
        "imported an archive of {read} records in {:.1} s: read and checked {:.1} s, read again, \
         applied and stored {:.1} s",
        started.elapsed().as_secs_f64(),
        checked.as_secs_f64(),
        (started.elapsed() - checked).as_secs_f64()
    );
    Ok(report)
}

/// What the thread reading an archive hands on.
enum ReadAhead {
    Page(Vec<Record>),
    /// The end: the archive's record count, its trailer checked, or why it is not sound.
    End(Result<usize, crate::archive::ArchiveError>),
}

/// Reads the archive in `file` from its start, a page of [`IMPORT_BATCH`] records at a time,
/// on a thread of its own, so the next page is decoded while `each` takes this one; then its
/// trailer. Returns how many records it holds, or the first error of either side.
fn read_pages<F: std::io::Read + std::io::Seek + Send>(
    file: &mut F,
    cod: &crate::ids::CodId,
    mut each: impl FnMut(Vec<Record>) -> Result<(), String>,
) -> Result<usize, String> {
    file.rewind()
        .map_err(|e| format!("cannot read the archive: {e}"))?;
    let input = std::io::BufReader::with_capacity(1 << 20, file);
    let mut reader = crate::archive::Reader::new(input, cod).map_err(|e| e.to_string())?;
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        scope.spawn(move || {
            loop {
                let next = match reader.page(IMPORT_BATCH) {
                    Ok(page) if page.is_empty() => break,
                    Ok(page) => ReadAhead::Page(page),
                    Err(e) => ReadAhead::End(Err(e)),
                };
                let end = matches!(next, ReadAhead::End(_));
                // (Sending fails once `each` has failed: nothing more is wanted.)
                if tx.send(next).is_err() || end {
                    return;
                }
            }
            let _ = tx.send(ReadAhead::End(reader.finish()));
        });
        for next in rx {
            match next {
                ReadAhead::Page(page) => each(page)?,
                ReadAhead::End(end) => return end.map_err(|e| e.to_string()),
            }
        }
        // The reading thread panicked (the scope passes its panic on).
        Err("the archive's reader failed".into())
    })
}

/// Ingests one batch of an import, adding to its report.
pub fn import_batch(
    chain: &mut Chain,
    batch: Checked,
    report: &mut ImportReport,
) -> Result<(), String> {
    let results = chain.ingest_checked(batch).map_err(|e| e.to_string())?;
    for r in &results {
        match r {
            Ok(o) if o.duplicate => report.duplicate += 1,
            Ok(o) if o.applied.is_empty() => report.pending += 1,
            Ok(_) => report.added += 1,
            Err(e) => report.refused.push(e.to_string()),
        }
        if let Ok(o) = r {
            report.applied.extend(o.applied.iter().copied());
        }
    }
    Ok(())
}

/// What `cod chain verify` found.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VerifyReport {
    pub records: usize,
    pub applied: usize,
    /// Problems: each makes the chain incomplete or invalid.
    pub problems: Vec<String>,
    /// Double spends seen and settled (proofs kept): not problems of this node's chain.
    pub forks: Vec<String>,
    pub accounts: usize,
    pub issued: crate::ledger::economics::Amounts,
    pub checkpoint_period: Option<u64>,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Checks a stored chain from scratch: every record's encoding, form and signatures (in
/// parallel), completeness (nothing waits for a missing record), validity (chains, claims,
/// balances, quorums, checkpoints), conservation, and the stored derived state. The
/// records are replayed into a scratch store ([`KvStore::scratch`]), a page at a time, so
/// memory does not hold the history.
pub fn verify(params: Params, store: &dyn KvStore) -> Result<VerifyReport, ChainError> {
    // One moment's records and derived state, so a daemon verifies while it goes on writing.
    let store = store.snapshot();
    // A store of an older layout keeps no state of this form yet (its node's next start
    // recomputes it): only its records are checked.
    let layout = store.get(Cf::Meta, b"schema")?;
    let current = layout.as_deref() == Some(SCHEMA_VERSION.to_string().as_bytes());
    if !has_log(store.as_ref())? {
        return verify_in_memory(params, store.as_ref());
    }
    let replayed = replay(params, store.as_ref(), store.scratch()?, false)?;
    let mut report = VerifyReport {
        records: replayed.stored,
        problems: replayed.problems,
        ..VerifyReport::default()
    };
    describe(&mut report, replayed.chain.ledger());
    if current && !same_derived(store.as_ref(), replayed.chain.store.as_ref())? {
        report.problems.push("the stored state (balances, heads, claims, positions) differs from the one the records give: `cod node run --full` recomputes it".into());
    }
    Ok(report)
}

/// [`verify`] for a store of layout 1 (no application log to replay in order): its records
/// are read into memory.
fn verify_in_memory(params: Params, store: &dyn KvStore) -> Result<VerifyReport, ChainError> {
    let mut report = VerifyReport::default();
    let mut records = Vec::new();
    let raw = store.scan(Cf::Records, b"")?;
    report.records = raw.len();
    for (k, v) in raw {
        match Record::from_bytes(&v) {
            Ok(r) if r.hash().as_bytes().as_slice() == k.as_slice() => records.push(r),
            Ok(r) => report.problems.push(format!(
                "record stored under {}: it hashes to {}",
                hex::encode(&k),
                r.hash()
            )),
            Err(e) => report
                .problems
                .push(format!("record stored under {}: {e}", hex::encode(&k))),
        }
    }
    Ok(verify_records(params, records, report).0)
}

/// Checks a set of records from scratch: signatures on all cores, then every rule,
/// completeness and conservation. `report` may already hold decoding problems. Returns the
/// report and the ledger the sound records make.
pub fn verify_records(
    params: Params,
    records: Vec<Record>,
    mut report: VerifyReport,
) -> (VerifyReport, Ledger) {
    report.records = report.records.max(records.len());
    let probe = Ledger::new(params.clone());
    let mut sound = Vec::new();
    for (r, check) in probe.check(records).into_items() {
        match check {
            Check::Sound | Check::Held => sound.push(r), // (an empty ledger holds nothing)
            Check::KeyUnknown => report.problems.push(format!(
                "record {} ({} seq {}): its account was never opened",
                r.hash(),
                r.account(),
                r.seq()
            )),
            Check::Refused(e) => report.problems.push(format!(
                "record {} ({} seq {}): {e}",
                r.hash(),
                r.account(),
                r.seq()
            )),
        }
    }
    let (ledger, dropped) = Ledger::load(params, sound);
    for d in dropped {
        report.problems.push(format!(
            "record {} ({} seq {}) is invalid: {}",
            d.hash, d.account, d.seq, d.error
        ));
    }
    describe(&mut report, &ledger);
    (report, ledger)
}

/// Adds to `report` what `ledger` holds: the records that wait (each a problem: something
/// is missing), its forks, its figures, and whether its balances add up to its issuance.
fn describe(report: &mut VerifyReport, ledger: &Ledger) {
    // Records that follow the losing side of a fork (made on it before its author learned
    // of the fork) wait for records that are held — nothing is missing: they are the rest of
    // that losing branch, settled with it. Those wait, one after another, only for records
    // lost or losing: found by growing the set from the fork's losers.
    let pending: std::collections::BTreeMap<&RecordHash, &Vec<crate::ledger::Dep>> =
        ledger.pending().collect();
    let lost = |h: &RecordHash| {
        ledger.holds(h) && !ledger.state().is_applied(h) && !pending.contains_key(h)
    };
    let mut losing: std::collections::BTreeSet<&RecordHash> = std::collections::BTreeSet::new();
    loop {
        let more: Vec<&RecordHash> = pending
            .iter()
            .filter(|(h, deps)| {
                !losing.contains(*h)
                    && !deps.is_empty()
                    && deps.iter().all(|d| match d {
                        crate::ledger::Dep::Record(d) => lost(d) || losing.contains(d),
                        crate::ledger::Dep::Account(_) => false,
                    })
            })
            .map(|(h, _)| *h)
            .collect();
        if more.is_empty() {
            break;
        }
        losing.extend(more);
    }
    for h in &losing {
        let r = ledger.record(h).expect("pending records are held");
        report.forks.push(format!(
            "record {h} ({} seq {}) follows the losing side of a fork",
            r.account(),
            r.seq()
        ));
    }
    for (h, deps) in pending.iter().filter(|(h, _)| !losing.contains(*h)) {
        let r = ledger.record(h).expect("pending records are held");
        let deps: Vec<String> = deps.iter().map(ToString::to_string).collect();
        report.problems.push(format!(
            "incomplete: record {h} ({} seq {}) waits for {}",
            r.account(),
            r.seq(),
            deps.join(", ")
        ));
    }
    for r in ledger.awaiting() {
        report.problems.push(format!(
            "incomplete: record {} ({} seq {}) waits for its account's opening, or for who may sign it",
            r.hash(),
            r.account(),
            r.seq()
        ));
    }
    for ((a, seq), hashes) in ledger.forks() {
        let hs: Vec<String> = hashes.iter().map(ToString::to_string).collect();
        report.forks.push(format!(
            "account {a} signed {} records for seq {seq}: {}",
            hashes.len(),
            hs.join(", ")
        ));
    }
    let state = ledger.state();
    if state.total_balances() != state.outstanding() {
        report.problems.push(format!(
            "balances {:?} do not add up to the coins outstanding {:?} (issued {:?}, redeemed {:?})",
            state.total_balances(),
            state.outstanding(),
            state.issued,
            state.redeemed
        ));
    }
    report.applied = state.applied_count();
    report.accounts = state.account_count();
    report.issued = state.issued.clone();
    report.checkpoint_period = state.checkpoint.as_ref().map(|c| c.period);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::tests::{DAY, EPOCH, Scenario, key, out, sign_network};
    use crate::store::{Entry, MemStore, Snapshot};
    use std::sync::Arc;

    /// A store whose writes and reads can be made to fail (the reads a reload makes: the
    /// summary and scans; the tables' point reads go on working).
    #[derive(Default)]
    struct Flaky {
        mem: MemStore,
        fail_writes: std::sync::atomic::AtomicBool,
        fail_reads: std::sync::atomic::AtomicBool,
    }
    impl KvStore for Flaky {
        fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
            if cf == Cf::Meta && self.fail_reads.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(StoreError::Unreadable("disk gone".into()));
            }
            self.mem.get(cf, key)
        }
        fn scan(&self, cf: Cf, prefix: &[u8]) -> Result<Vec<Entry>, StoreError> {
            if self.fail_reads.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(StoreError::Unreadable("disk gone".into()));
            }
            self.mem.scan(cf, prefix)
        }
        fn range(
            &self,
            cf: Cf,
            from: Bound<&[u8]>,
            to: Bound<&[u8]>,
            limit: usize,
        ) -> Result<Vec<Entry>, StoreError> {
            self.mem.range(cf, from, to, limit)
        }
        fn snapshot(&self) -> Arc<dyn KvStore> {
            self.mem.snapshot()
        }
        fn write(&self, ops: Vec<Op>) -> Result<(), StoreError> {
            if self.fail_writes.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(StoreError::Unreadable("write failed".into()));
            }
            self.mem.write(ops)
        }
        fn scratch(&self) -> Result<Arc<dyn KvStore>, StoreError> {
            self.mem.scratch()
        }
    }

    /// The derived part of a store's entries, read at one moment (what [`derived_of`]
    /// computes from the records in memory).
    pub(super) fn stored_derived(store: &dyn KvStore) -> Result<Snapshot, StoreError> {
        let store = store.snapshot();
        let mut out = Snapshot::new();
        for cf in DERIVED {
            out.extend(store.scan(cf, b"")?.into_iter().map(|(k, v)| ((cf, k), v)));
        }
        if let Some(v) = store.get(Cf::Meta, SUMMARY_KEY)? {
            out.insert((Cf::Meta, SUMMARY_KEY.to_vec()), v);
        }
        Ok(out)
    }

    /// What a store holds of a ledger in memory, derived part only (see [`stored_derived`]).
    pub(super) fn derived_of(mut l: Ledger) -> Snapshot {
        let mut ops = vec![summary_op(&l)];
        ops.extend(writes_ops(&l.take_writes(), true));
        ops.into_iter()
            .filter_map(|op| match op {
                Op::Put(cf, k, v) if DERIVED.contains(&cf) || cf == Cf::Meta => Some(((cf, k), v)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_failed_write_that_cannot_be_read_back_refuses_instead_of_forgetting() {
        use std::sync::atomic::Ordering::SeqCst;
        let s = Scenario::standard();
        let flaky = Arc::new(Flaky::default());
        let mut chain = Chain::load(s.l.params().clone(), Box::new(flaky.clone())).unwrap();
        for r in &s.records[..s.records.len() - 1] {
            chain.ingest(r.clone()).unwrap();
        }
        let held = chain.ledger().len();
        let last = s.records.last().unwrap().clone();
        flaky.fail_writes.store(true, SeqCst);
        flaky.fail_reads.store(true, SeqCst);
        assert!(chain.ingest(last.clone()).is_err());
        // Before: the ledger silently became empty. Now it refuses until the store reads.
        flaky.fail_writes.store(false, SeqCst);
        let err = chain.ingest(last.clone()).unwrap_err().to_string();
        assert!(err.contains("cannot be read back"), "{err}");
        flaky.fail_reads.store(false, SeqCst);
        assert!(!chain.ingest(last).unwrap().applied.is_empty());
        assert_eq!(chain.ledger().len(), held + 1);
        let again = Chain::load(s.l.params().clone(), Box::new(flaky.clone())).unwrap();
        assert_eq!(again.ledger().state(), chain.ledger().state());
    }

    #[test]
    fn a_view_keeps_its_moment_while_the_writer_goes_on() {
        let s = Scenario::standard();
        let (last, first) = s.records.split_last().unwrap();
        let mem = Arc::new(MemStore::default());
        let mut chain = Chain::load(s.l.params().clone(), Box::new(mem.clone())).unwrap();
        chain.ingest_batch(first.to_vec()).unwrap();
        let views = chain.views();
        let before = views.latest();
        let state = before.state().clone();
        assert_eq!(&state, chain.ledger().state());
        assert!(!before.holds(&last.hash()));

        assert!(!chain.ingest(last.clone()).unwrap().applied.is_empty());
        // The view taken before reads what it read, from the store as it was; the latest
        // one reads what was committed since.
        assert!(!before.holds(&last.hash()));
        assert_eq!(before.state(), &state);
        assert_eq!(
            before
                .store()
                .get(Cf::Records, last.hash().as_bytes())
                .unwrap(),
            None
        );
        let after = views.latest();
        assert!(after.state().is_applied(&last.hash()));
        assert_eq!(after.state(), chain.ledger().state());
        assert_eq!(after.len(), chain.ledger().len());
        assert_eq!(
            after.heads().len(),
            chain
                .ledger()
                .state()
                .accounts()
                .iter()
                .filter(|(_, a)| a.head.is_some())
                .count()
        );
        // A reload (after a panic or a failed write) shows the store again.
        chain.reload().unwrap();
        assert_eq!(views.latest().state(), chain.ledger().state());
    }

    /// A member's two nodes spent apart (`tests/chaos.rs`, seed 2012266501724543161): one
    /// kept a record it had made on top of its losing spend. Nothing is missing, so the chain
    /// verifies — the record is reported with the fork it follows, not as incomplete; a
    /// record that waits for one truly missing still is.
    #[test]
    fn a_record_on_the_losing_side_of_a_fork_is_settled_with_it() {
        let s = Scenario::standard();
        let p = s.l.params().clone();
        let spend = |to: &str, t: u64| {
            s.l.make_transfer(key("node1"), vec![out(&p, to, 300)], None, t)
                .unwrap()
        };
        let (a, b) = (
            spend("node2", EPOCH + DAY + 50),
            spend("node3", EPOCH + DAY + 51),
        );
        let lose = if a.hash() < b.hash() {
            b.clone()
        } else {
            a.clone()
        };
        // Its author, not knowing yet, went on from the losing side.
        let mut apart = s.l.clone();
        apart.ingest(lose.clone()).unwrap();
        let after = apart
            .make_transfer(
                key("node1"),
                vec![out(&p, "node4", 10)],
                None,
                EPOCH + DAY + 60,
            )
            .unwrap();
        let mut all = s.records.clone();
        all.extend([a, b, after.clone()]);
        let (report, _) = verify_records(p.clone(), all.clone(), VerifyReport::default());
        assert!(report.ok(), "{:?}", report.problems);
        assert!(
            report
                .forks
                .iter()
                .any(|f| f.contains(&after.hash().to_string()) && f.contains("losing side")),
            "{:?}",
            report.forks
        );
        // Without the losing record it follows, it waits for something missing.
        all.retain(|r| r.hash() != lose.hash());
        let (report, _) = verify_records(p, all, VerifyReport::default());
        assert!(
            report.problems.iter().any(|m| m.starts_with("incomplete")),
            "{:?}",
            report.problems
        );
    }

    /// A verifier of a chain on a store reads the keys of the accounts its batches name from
    /// the store, as it meets them: transfers of accounts opened before it was taken check
    /// sound, and it knows what is held.
    #[test]
    fn a_stored_chains_verifier_reads_the_keys_it_needs() {
        let s = Scenario::standard();
        let mut s2 = Scenario::standard();
        let p = s.l.params().clone();
        let later = vec![
            s2.pay("node1", &[("node2", 10)], EPOCH + DAY + 50),
            s2.pay("node2", &[("node3", 5)], EPOCH + DAY + 60),
        ];
        let mem = Arc::new(MemStore::default());
        let mut chain = Chain::load(p.clone(), Box::new(mem.clone())).unwrap();
        chain.ingest_batch(s.records.clone()).unwrap();
        let chain = Chain::load(p, Box::new(mem.clone())).unwrap();
        let mut v = chain.ledger().verifier();
        let checked = v.check(later.clone());
        assert!(
            checked.items().iter().all(|(_, c)| c == &Check::Sound),
            "{:?}",
            checked.items()
        );
        let again = v.check(s.records[..2].to_vec());
        assert!(again.items().iter().all(|(_, c)| c == &Check::Held));
        // A forged signature is still caught.
        let mut forged = later[0].to_json();
        forged["sigs"][0]["sig"] = later[1].to_json()["sigs"][0]["sig"].clone();
        let forged = Record::from_json(forged).unwrap();
        assert!(matches!(
            v.check(vec![forged]).items()[0].1,
            Check::Refused(_)
        ));
    }

    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

        /// The ledger layered over a store — committed batch by batch, reopened from what is
        /// stored without replaying — reaches the state, the forks and the pending records
        /// the records give computed from scratch in memory, in any arrival order, with
        /// double spends (whose settling recomputes everything) among them.
        #[test]
        fn a_stored_chain_agrees_with_its_records_across_restarts(
            ops in proptest::collection::vec(any::<(u8, u8, u8, u16)>(), 1..14),
            picks in proptest::collection::vec((any::<u64>(), any::<u16>(), any::<bool>()), 0..3),
            seed in any::<u64>(),
            batch in 1..5usize,
            restarts in proptest::collection::btree_set(0..40usize, 0..4),
        ) {
            use crate::ledger::tests::{history, shuffle, with_twins};
            let s = history(&ops);
            let p = s.l.params().clone();
            let mut all = with_twins(&s, &picks).unwrap_or_else(|| s.records.clone());
            shuffle(&mut all, seed);
            // The same records in the same order, in memory and never restarted.
            let mut memory = Ledger::new(p.clone());
            for r in &all {
                let _ = memory.ingest(r.clone());
            }
            let held: Vec<Record> = memory.records().into_iter().map(|r| Record::clone(&r)).collect();
            let rebuilt = Ledger::from_records(p.clone(), held);
            prop_assert_eq!(rebuilt.state(), memory.state());
            let mem = Arc::new(MemStore::default());
            let mut chain = Chain::load(p.clone(), Box::new(mem.clone())).unwrap();
            // A restart forgets the records held aside until their account's opening (or a
            // key) comes, as a peer's would: sync brings them again — here, a second pass.
            for pass in 0..2 {
                for (i, chunk) in all.chunks(batch).enumerate() {
                    chain.ingest_batch(chunk.to_vec()).unwrap();
                    if pass == 0 && restarts.contains(&i) {
                        chain = Chain::load(p.clone(), Box::new(mem.clone())).unwrap();
                    }
                }
            }
            let l = chain.ledger();
            prop_assert_eq!(l.state(), memory.state());
            prop_assert_eq!(l.forks(), memory.forks());
            let pending = |l: &Ledger| l.pending().map(|(h, _)| *h).collect::<Vec<_>>();
            prop_assert_eq!(pending(l), pending(&memory));
            prop_assert_eq!(l.len(), memory.len());
            // What readers see is what was committed last.
            let view = chain.views().latest();
            prop_assert_eq!(view.state(), memory.state());
            prop_assert_eq!(view.forks(), memory.forks());
            prop_assert_eq!(pending(&view), pending(&memory));
            prop_assert_eq!(view.len(), memory.len());
            prop_assert_eq!(l.state().total_balances(), l.state().outstanding());
            prop_assert!(chain.derived_state_matches().unwrap());
            // The replay of the stored records (verify's, a page at a time) agrees: every
            // problem it finds is a record that waits, as it waits in memory.
            let report = verify(p.clone(), mem.as_ref()).unwrap();
            prop_assert_eq!(report.applied, memory.state().applied_count());
            prop_assert_eq!(report.records, memory.len());
            // (A record waiting only for a fork's losers is told with the forks, not as a
            // problem: nothing is missing.)
            let losing = report.forks.iter().filter(|f| f.contains("losing side")).count();
            prop_assert_eq!(report.forks.len() - losing, memory.forks().len());
            prop_assert!(report.problems.iter().all(|p| p.starts_with("incomplete")), "{:?}", report.problems);
            prop_assert_eq!(report.problems.len() + losing, pending(&memory).len());
            // And once more from the store alone.
            let again = Chain::load(p, Box::new(mem.clone())).unwrap();
            prop_assert_eq!(again.ledger().state(), memory.state());
            prop_assert_eq!(pending(again.ledger()), pending(&memory));
        }
    }

    /// A store of layout 1 (records, and a partial derived state in an older form) is
    /// recomputed on its first load: the derived state is rewritten whole, the old entries
    /// go, and later loads resume from what was written.
    #[test]
    fn a_store_of_the_first_layout_is_recomputed_once() {
        let s = Scenario::standard();
        let p = s.l.params().clone();
        let mem = Arc::new(MemStore::default());
        let mut ops: Vec<Op> = s
            .records
            .iter()
            .map(|r| Op::Put(Cf::Records, r.hash().as_bytes().to_vec(), r.to_bytes()))
            .collect();
        let r0 = &s.records[0];
        let mut v1_chains = r0.account().as_bytes().to_vec();
        v1_chains.extend_from_slice(&0u64.to_be_bytes());
        v1_chains.extend_from_slice(r0.hash().as_bytes());
        ops.push(Op::Put(Cf::Chains, v1_chains.clone(), Vec::new()));
        ops.push(Op::Put(
            Cf::State,
            b"!summary".to_vec(),
            br#"{"applied":3,"issued":{},"checkpoint":null}"#.to_vec(),
        ));
        ops.push(Op::Put(Cf::Meta, b"schema".to_vec(), b"1".to_vec()));
        mem.write(ops).unwrap();
        // Verified before any start: its records are sound; its old state is not judged.
        let report = verify(p.clone(), mem.as_ref()).unwrap();
        assert!(report.ok(), "{:?}", report.problems);
        assert_eq!(report.applied, s.l.state().applied_count());

        let chain = Chain::load(p.clone(), Box::new(mem.clone())).unwrap();
        assert_eq!(chain.ledger().state(), s.l.state());
        assert_eq!(mem.get(Cf::Chains, &v1_chains).unwrap(), None);
        assert_eq!(
            mem.get(Cf::Meta, b"schema").unwrap(),
            Some(SCHEMA_VERSION.to_string().into_bytes())
        );
        assert_eq!(mem.get(Cf::State, b"!summary").unwrap(), None);
        assert!(chain.derived_state_matches().unwrap());
        let before = dump(&mem);
        let again = Chain::load(p.clone(), Box::new(mem.clone())).unwrap();
        assert_eq!(again.ledger().state(), s.l.state());
        assert_eq!(dump(&mem), before, "resumed, not recomputed");
        assert!(verify(p, mem.as_ref()).unwrap().ok());
    }

    /// A store of schema 3 holds a state derived by the rules before issue 15 (no
    /// founders, no members): it is recomputed on its first load, not resumed.
    #[test]
    fn a_store_of_schema_3_is_recomputed_by_the_new_rules() {
        let s = Scenario::standard();
        let p = s.l.params().clone();
        let mem = Arc::new(MemStore::default());
        let ops: Vec<Op> = s
            .records
            .iter()
            .map(|r| Op::Put(Cf::Records, r.hash().as_bytes().to_vec(), r.to_bytes()))
            .chain([Op::Put(Cf::Meta, b"schema".to_vec(), b"1".to_vec())])
            .collect();
        mem.write(ops).unwrap();
        Chain::load(p.clone(), Box::new(mem.clone())).unwrap();
        // What the old rules stored: accounts without membership, a summary without it.
        let mut old = Vec::new();
        for (k, v) in mem.scan(Cf::State, b"").unwrap() {
            let text = String::from_utf8(v)
                .unwrap()
                .replace(r#","founder":true"#, "");
            old.push(Op::Put(Cf::State, k, text.into_bytes()));
        }
        let summary = mem.get(Cf::Meta, SUMMARY_KEY).unwrap().unwrap();
        let summary = String::from_utf8(summary)
            .unwrap()
            .replace(r#""members":4"#, r#""members":0"#);
        old.push(Op::Put(
            Cf::Meta,
            SUMMARY_KEY.to_vec(),
            summary.into_bytes(),
        ));
        old.push(Op::Put(Cf::Meta, b"schema".to_vec(), b"3".to_vec()));
        mem.write(old).unwrap();
        assert!(
            dump(&mem)
                .iter()
                .all(|(_, v)| !v.windows(7).any(|w| w == b"founder")),
            "the old form has no founders"
        );
        let chain = Chain::load(p, Box::new(mem.clone())).unwrap();
        assert_eq!(chain.ledger().state(), s.l.state());
        assert_eq!(chain.ledger().state().member_count(), 4);
        assert!(chain.derived_state_matches().unwrap());
    }

    /// An exported chain imports whole into an empty node even where the clocks disagree
    /// with the dependencies (a transfer dated before the distribution whose payout it
    /// claims): the archive lists the applied records in the order they were applied.
    #[test]
    fn an_export_imports_whole_whatever_the_clocks_said() {
        let mut s = Scenario::standard();
        let p = s.l.params().clone();
        // node1 claims its share of the distribution (dated EPOCH + DAY + 1) at a time
        // before it, and goes on paying.
        s.pay("node1", &[("node2", 10)], EPOCH + 500);
        for i in 0..5 {
            s.pay("node1", &[("node3", 1)], EPOCH + 600 + i);
        }
        let mem = Arc::new(MemStore::default());
        let mut chain = Chain::load(p.clone(), Box::new(mem.clone())).unwrap();
        chain.ingest_batch(s.records.clone()).unwrap();
        assert_eq!(chain.ledger().state(), s.l.state());
        let (streamed, n) = export_to(&p.cod, mem.as_ref(), Vec::new()).unwrap();
        assert_eq!(n, chain.ledger().len());
        assert_eq!(
            streamed,
            export(chain.ledger()),
            "from the store as from memory"
        );
        for archive in [export(chain.ledger()), streamed] {
            let mut fresh = Ledger::new(p.clone());
            let records = crate::archive::read(&archive, &p.cod).unwrap();
            for r in records {
                let o = fresh.ingest(r).unwrap();
                assert!(
                    o.pending.is_empty(),
                    "each record applies as it comes: {o:?}"
                );
            }
            assert_eq!(fresh.state(), s.l.state());
        }
    }

    /// An archive served one way on its first reading and another on its second (a file
    /// changed while it was imported).
    struct Swapped {
        readings: Vec<std::io::Cursor<Vec<u8>>>,
        rewinds: usize,
    }
    impl Swapped {
        fn new(readings: Vec<Vec<u8>>) -> Self {
            let readings = readings.into_iter().map(std::io::Cursor::new).collect();
            Self {
                readings,
                rewinds: 0,
            }
        }
        fn now(&mut self) -> &mut std::io::Cursor<Vec<u8>> {
            let i = self.rewinds.saturating_sub(1).min(self.readings.len() - 1);
            &mut self.readings[i]
        }
    }
    impl std::io::Read for Swapped {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.now().read(buf)
        }
    }
    impl std::io::Seek for Swapped {
        fn seek(&mut self, to: std::io::SeekFrom) -> std::io::Result<u64> {
            if to == std::io::SeekFrom::Start(0) {
                self.rewinds += 1;
            }
            self.now().seek(to)
        }
    }

    /// An import keeps the hashes it applied only while they are few enough to announce.
    #[test]
    fn an_import_announces_its_records_one_by_one_only_when_they_are_few() {
        let h = |i: usize| {
            let mut b = [0u8; 32];
            b[..8].copy_from_slice(&(i as u64).to_le_bytes());
            RecordHash::from_bytes(b)
        };
        let mut a = Applied::default();
        a.extend((0..Applied::ANNOUNCED).map(h));
        assert_eq!(a.count, Applied::ANNOUNCED);
        assert_eq!(
            a.announced(),
            (0..Applied::ANNOUNCED).map(h).collect::<Vec<_>>()
        );
        a.extend([h(Applied::ANNOUNCED)]);
        assert_eq!((a.count, a.announced()), (Applied::ANNOUNCED + 1, &[][..]));
        a.extend((0..10).map(h));
        assert_eq!((a.count, a.announced()), (Applied::ANNOUNCED + 11, &[][..]));
    }

    /// An import reads its archive twice — checks everything, then ingests — and takes
    /// nothing from an archive with a forged record, nor records that changed between the
    /// readings (their signatures are checked once).
    #[test]
    fn an_import_takes_all_or_nothing_of_what_it_checked() {
        let s = Scenario::standard();
        let p = s.l.params().clone();
        let fresh = || Chain::load(p.clone(), Box::new(MemStore::default())).unwrap();
        let archive = crate::archive::write(&p.cod, &s.records);
        let mut chain = fresh();
        let report = import(&mut chain, std::io::Cursor::new(archive.clone())).unwrap();
        assert_eq!(report.added, s.records.len());
        assert_eq!(chain.ledger().state(), s.l.state());

        // The last record's signature, damaged.
        let mut forged = s.records.clone();
        let last = forged.pop().unwrap();
        let mut sigs = last.sigs().to_vec();
        sigs[0].sig.0[0] ^= 1;
        forged.push(Record::new(last.body().clone(), sigs));
        let forged = crate::archive::write(&p.cod, &forged);
        let mut chain = fresh();
        let err = import(&mut chain, std::io::Cursor::new(forged.clone())).unwrap_err();
        assert!(err.starts_with("refused, nothing imported"), "{err}");
        assert!(err.contains(&last.hash().to_string()), "{err}");
        assert_eq!(chain.ledger().len(), 0);

        // Sound when checked, forged when read again.
        let mut chain = fresh();
        let err = import(&mut chain, Swapped::new(vec![archive.clone(), forged])).unwrap_err();
        assert!(err.contains("changed while it was being imported"), "{err}");
        assert_eq!(chain.ledger().len(), 0);
        // The same archive both times imports (the rewinds are what the test thinks).
        let mut chain = fresh();
        import(&mut chain, Swapped::new(vec![archive.clone(), archive])).unwrap();
        assert_eq!(chain.ledger().state(), s.l.state());
    }

    /// `cod node run --full`: a stored state the records do not give (an account's state
    /// damaged, a log entry gone, a forged record stored among them) is recomputed from the
    /// records — a page at a time, through a scratch store — and what can never apply is
    /// forgotten; a record that cannot be read stops it before anything is written.
    #[test]
    fn a_recomputation_rewrites_the_state_the_records_give() {
        let s = Scenario::standard();
        let p = s.l.params().clone();
        let mem = Arc::new(MemStore::default());
        let mut chain = Chain::load(p.clone(), Box::new(mem.clone())).unwrap();
        chain.ingest_batch(s.records.clone()).unwrap();
        assert_eq!(chain.ledger().state(), s.l.state());
        drop(chain);
        let state = mem.scan(Cf::State, b"").unwrap();
        let log = mem.scan(Cf::Log, b"").unwrap();
        let mut v = s.records[3].to_json();
        v["time"] = json!(v["time"].as_u64().unwrap() + 1);
        let forged = Record::from_json(v).unwrap();
        mem.write(vec![
            Op::Put(Cf::State, state[0].0.clone(), state[1].1.clone()),
            Op::Delete(Cf::Log, log[2].0.clone()),
            Op::Put(
                Cf::Records,
                forged.hash().as_bytes().to_vec(),
                forged.to_bytes(),
            ),
        ])
        .unwrap();
        let report = verify(p.clone(), mem.as_ref()).unwrap();
        assert_eq!(report.problems.len(), 2, "{:?}", report.problems);
        assert!(report.problems[0].contains("does not verify"), "{report:?}");
        assert!(report.problems[1].contains("stored state"), "{report:?}");
        assert_eq!(report.records, s.records.len() + 1);
        assert_eq!(report.applied, s.l.state().applied_count());

        let chain = Chain::recompute(p.clone(), Box::new(mem.clone())).unwrap();
        assert_eq!(chain.ledger().state(), s.l.state());
        assert!(chain.derived_state_matches().unwrap());
        assert_eq!(
            mem.get(Cf::Records, forged.hash().as_bytes()).unwrap(),
            None
        );
        assert_eq!(mem.scan(Cf::Log, b"").unwrap().len(), log.len());
        assert!(verify(p.clone(), mem.as_ref()).unwrap().ok());
        let again = Chain::load(p.clone(), Box::new(mem.clone())).unwrap();
        assert_eq!(again.ledger().state(), s.l.state());
        drop((chain, again));

        mem.write(vec![Op::Put(Cf::Records, vec![7; 32], b"{}".to_vec())])
            .unwrap();
        let report = verify(p.clone(), mem.as_ref()).unwrap();
        assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
        assert!(report.problems[0].starts_with("record stored under 0707"));
        let before = dump(&mem);
        let e = Chain::recompute(p, Box::new(mem.clone())).err().unwrap();
        assert!(matches!(e, ChainError::Corrupt { .. }), "{e}");
        assert_eq!(dump(&mem), before, "nothing written");
    }

    fn dump(m: &MemStore) -> Vec<Entry> {
        Cf::ALL
            .iter()
            .flat_map(|cf| m.scan(*cf, b"").unwrap())
            .collect()
    }

    #[test]
    fn bad_input_is_refused_and_nothing_is_stored() {
        let s = Scenario::standard();
        let mem = Arc::new(MemStore::default());
        let mut chain = Chain::load(s.l.params().clone(), Box::new(mem.clone())).unwrap();
        for r in &s.records {
            chain.ingest(r.clone()).unwrap();
        }
        let p = s.l.params().clone();
        let good =
            s.l.make_transfer(
                key("node1"),
                vec![out(&p, "node2", 10)],
                None,
                EPOCH + DAY + 50,
            )
            .unwrap();
        let before = dump(&mem);

        // Garbled, truncated, oversized encodings never become records.
        let bytes = good.to_bytes();
        assert!(Record::from_bytes(&bytes[..bytes.len() - 3]).is_err());
        assert!(Record::from_bytes(b"{\"kind\":\"transfer\"}").is_err());
        // Forged signature, wrong cod, non-member signer: each refused with its own error.
        let mut forged = good.to_json();
        forged["sigs"][0]["sig"] = s.records[0].to_json()["sigs"][0]["sig"].clone();
        let e1 = chain
            .ingest(Record::from_json(forged).unwrap())
            .unwrap_err();
        let mut other = good.body().clone();
        other.cod = "ffffffffffffffffffffffffffffffffffffffff".parse().unwrap();
        let e2 = chain
            .ingest(Record::new(other, good.sigs().to_vec()))
            .unwrap_err();
        let issue =
            s.l.propose_issue(
                [("bread".into(), 20)].into(),
                Default::default(),
                EPOCH + DAY + 99,
            )
            .unwrap();
        let e3 = chain
            .ingest(sign_network(issue, &["node1", "node5"]))
            .unwrap_err();
        let errors: Vec<String> = [e1, e2, e3].iter().map(ToString::to_string).collect();
        assert!(errors[0].contains("does not verify"), "{errors:?}");
        assert!(errors[1].contains("belongs to cod ffff"), "{errors:?}");
        assert!(
            errors[2].contains("is not in the signer set in force"),
            "{errors:?}"
        );
        // A replay is a duplicate.
        assert!(chain.ingest(s.records[3].clone()).unwrap().duplicate);
        assert_eq!(dump(&mem), before, "nothing stored");

        chain.ingest(good).unwrap();
        assert_ne!(dump(&mem), before);
        // The stored state reloads to the same ledger.
        let again = Chain::load(p, Box::new(mem.clone())).unwrap();
        assert_eq!(again.ledger().state(), chain.ledger().state());
        assert!(again.derived_state_matches().unwrap());
    }
}
