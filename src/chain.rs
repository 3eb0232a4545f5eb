//! The ledger kept on disk: a [`Ledger`] whose every decision is written to a [`KvStore`] in
//! one atomic, synced batch before it is acknowledged.
//!
//! Key layout (all ids as raw bytes, seq big-endian):
//!
//! | family | key | value |
//! |---|---|---|
//! | records | hash | canonical record bytes |
//! | chains | account ‖ seq ‖ hash | empty |
//! | claims | payee ‖ credit hash | claiming record hash |
//! | forks | account ‖ seq | JSON list of the slot's record hashes |
//! | state | account | JSON account state; `!summary`: JSON totals |

use crate::ids::{AccountId, RecordHash};
use crate::ledger::{
    Check, Checked, Content, Dropped, Ledger, Outcome, Params, Record, RecordError, State,
};
use crate::store::{Cf, KvStore, Op, Snapshot, StoreError};
use serde_json::json;
use std::collections::BTreeSet;

#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error("stored record {hash} is unreadable: {error}")]
    Corrupt { hash: String, error: RecordError },
    /// A transfer was asked for as record `expected` of its account, but the account's next
    /// record is `next`: another transfer was made since (perhaps this one, whose answer was
    /// lost). Nothing was paid.
    #[error(
        "not paid: the transfer was to be record {expected} of this account, but its next record is {next} (another transfer was made meanwhile; check `cod history` before trying again)"
    )]
    SeqTaken { expected: u64, next: u64 },
}

pub const SUMMARY_KEY: &[u8] = b"!summary";

pub fn chains_key(account: &AccountId, seq: u64, hash: &RecordHash) -> Vec<u8> {
    let mut k = Vec::with_capacity(72);
    k.extend_from_slice(account.as_bytes());
    k.extend_from_slice(&seq.to_be_bytes());
    k.extend_from_slice(hash.as_bytes());
    k
}

fn slot_key(account: &AccountId, seq: u64) -> Vec<u8> {
    let mut k = account.as_bytes().to_vec();
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// The derived state as stored: per account, and the summary.
pub fn derived_ops(state: &State, accounts: impl IntoIterator<Item = AccountId>) -> Vec<Op> {
    let mut ops: Vec<Op> = accounts
        .into_iter()
        .filter_map(|a| {
            let s = state.account(&a)?;
            let v = json!({
                "head": s.head.map(|h| json!({"seq": h.seq, "hash": h.hash})),
                "head_time": s.head_time,
                "spendable": s.spendable,
                "incoming": s.incoming,
            });
            Some(Op::Put(
                Cf::State,
                a.as_bytes().to_vec(),
                serde_json::to_vec(&v).expect("json"),
            ))
        })
        .collect();
    let summary = json!({
        "applied": state.applied_count(),
        "issued": state.issued,
        "checkpoint": state.checkpoint.as_ref().map(|c| json!({"record": c.record, "period": c.period})),
    });
    ops.push(Op::Put(
        Cf::State,
        SUMMARY_KEY.to_vec(),
        serde_json::to_vec(&summary).expect("json"),
    ));
    ops
}

/// Every derived entry (state and claims) for a whole state, replacing what is stored.
pub fn all_derived_ops(ledger: &Ledger) -> Vec<Op> {
    let state = ledger.state();
    let mut ops = vec![Op::Clear(Cf::State), Op::Clear(Cf::Claims)];
    ops.extend(derived_ops(state, state.accounts.keys().copied()));
    for r in ledger.records().filter(|r| state.is_applied(&r.hash())) {
        if let Content::Transfer(t) = &r.body().content {
            for c in &t.claims {
                let mut k = r.account().as_bytes().to_vec();
                k.extend_from_slice(c.as_bytes());
                ops.push(Op::Put(Cf::Claims, k, r.hash().as_bytes().to_vec()));
            }
        }
    }
    ops
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

/// The ledger and its store, kept in step.
pub struct Chain {
    ledger: Ledger,
    store: std::sync::Arc<dyn KvStore>,
    /// A write failed and the store could not be read back since: the ledger in memory may
    /// hold what the store does not, so nothing is accepted until [`Chain::reload`] works.
    stale: Option<String>,
}

impl Chain {
    /// Reads every stored record and recomputes the state from them (derived data in the
    /// store is rewritten if it disagrees).
    pub fn load(params: Params, store: Box<dyn KvStore>) -> Result<Self, ChainError> {
        let (chain, dropped) = Self::read(params, store)?;
        let mut ops: Vec<Op> = dropped
            .iter()
            .flat_map(|d| {
                [
                    Op::Delete(Cf::Records, d.hash.as_bytes().to_vec()),
                    Op::Delete(Cf::Chains, chains_key(&d.account, d.seq, &d.hash)),
                ]
            })
            .collect();
        let expected = all_derived_ops(&chain.ledger);
        if chain.stored_derived()? != derived_map(&expected) {
            ops.extend(expected);
        }
        if !ops.is_empty() {
            chain.store.write(ops)?;
        }
        Ok(chain)
    }

    /// Reads the chain from a store it will not write to (opened read-only): the same
    /// ledger [`Chain::load`] gives, without repairing the store.
    pub fn load_read_only(params: Params, store: Box<dyn KvStore>) -> Result<Self, ChainError> {
        Ok(Self::read(params, store)?.0)
    }

    fn read(params: Params, store: Box<dyn KvStore>) -> Result<(Self, Vec<Dropped>), ChainError> {
        let store: std::sync::Arc<dyn KvStore> = store.into();
        let records = read_records(store.as_ref())?;
        let (ledger, dropped) = Ledger::load(params, records);
        let chain = Self {
            ledger,
            store,
            stale: None,
        };
        Ok((chain, dropped))
    }

    fn stored_derived(&self) -> Result<Snapshot, StoreError> {
        let mut m = Snapshot::new();
        for cf in [Cf::State, Cf::Claims] {
            for (k, v) in self.store.scan(cf, b"")? {
                m.insert((cf, k), v);
            }
        }
        Ok(m)
    }

    /// Does the stored derived state match the records? (`cod chain verify`)
    pub fn derived_state_matches(&self) -> Result<bool, StoreError> {
        Ok(self.stored_derived()? == derived_map(&all_derived_ops(&self.ledger)))
    }

    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// Rebuilds the ledger from exactly what the store holds (after a failed write, or a
    /// panic while the chain was locked).
    pub fn reload(&mut self) -> Result<(), ChainError> {
        match read_records(self.store.as_ref()) {
            Ok(records) => {
                self.ledger = Ledger::load(self.ledger.params().clone(), records).0;
                self.stale = None;
                Ok(())
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
        outputs: Vec<crate::ledger::Output>,
        memo: Option<String>,
        time: u64,
        seq: Option<u64>,
    ) -> Result<Record, ChainError> {
        let r = self
            .ledger
            .make_transfer_from(account, key, outputs, memo, None, time)?;
        if let Some(expected) = seq.filter(|s| *s != r.seq()) {
            return Err(ChainError::SeqTaken {
                expected,
                next: r.seq(),
            });
        }
        self.ingest(r.clone())?;
        Ok(r)
    }

    /// The store, shared: reads of stored record bytes need no lock on the chain.
    pub fn store_handle(&self) -> std::sync::Arc<dyn KvStore> {
        self.store.clone()
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
        let mut ops = Vec::new();
        let mut touched = BTreeSet::new();
        let mut rebuilt = false;
        let results = self.ledger.ingest_checked(checked, |l, result| {
            if let Ok(o) = result {
                rebuilt |= o.rebuilt;
                outcome_ops(l, o, &mut ops, &mut touched);
            }
        });
        if ops.is_empty() && !rebuilt {
            return Ok(results); // duplicates, refusals, records awaiting keys: nothing to store
        }
        if rebuilt {
            ops.extend(all_derived_ops(&self.ledger));
        } else {
            touched.insert(self.ledger.params().network);
            ops.extend(derived_ops(self.ledger.state(), touched));
        }
        if let Err(e) = self.store.write(ops) {
            // Nothing was acknowledged: go back to exactly what the store holds (or, if it
            // cannot be read either, accept nothing until it can).
            let _ = self.reload();
            return Err(e);
        }
        Ok(results)
    }
}

/// The store operations that persist one outcome (derived views of `touched` come after).
fn outcome_ops(l: &Ledger, o: &Outcome, ops: &mut Vec<Op>, touched: &mut BTreeSet<AccountId>) {
    for h in &o.admitted {
        let r = l.record(h).expect("admitted records are in the ledger");
        ops.push(Op::Put(Cf::Records, h.as_bytes().to_vec(), r.to_bytes()));
        ops.push(Op::Put(
            Cf::Chains,
            chains_key(&r.account(), r.seq(), h),
            Vec::new(),
        ));
    }
    for d in &o.dropped {
        ops.push(Op::Delete(Cf::Records, d.hash.as_bytes().to_vec()));
        ops.push(Op::Delete(
            Cf::Chains,
            chains_key(&d.account, d.seq, &d.hash),
        ));
    }
    for h in &o.applied {
        let r = l.record(h).expect("applied records are in the ledger");
        touched.insert(r.account());
        for out in r.body().content.outputs() {
            touched.insert(out.account);
        }
        if let Content::Transfer(t) = &r.body().content {
            for c in &t.claims {
                let mut k = r.account().as_bytes().to_vec();
                k.extend_from_slice(c.as_bytes());
                ops.push(Op::Put(Cf::Claims, k, h.as_bytes().to_vec()));
            }
        }
    }
    for (a, seq) in &o.forks {
        let hashes: Vec<String> = l
            .forks()
            .filter(|(s, _)| s == &(*a, *seq))
            .flat_map(|(_, hs)| hs.iter().map(|h| h.to_string()))
            .collect();
        ops.push(Op::Put(
            Cf::Forks,
            slot_key(a, *seq),
            serde_json::to_vec(&hashes).expect("json"),
        ));
    }
}

fn derived_map(ops: &[Op]) -> Snapshot {
    ops.iter()
        .filter_map(|op| match op {
            Op::Put(cf, k, v) => Some(((*cf, k.clone()), v.clone())),
            _ => None,
        })
        .collect()
}

/// The whole chain as an archive, in an order that applies front to back.
pub fn export(l: &Ledger) -> Vec<u8> {
    write_archive(&l.params().cod, l.records().collect())
}

/// [`export`] from a store, read at one moment: needs no lock on the chain, so a daemon
/// exports while it goes on applying records.
pub fn export_store(cod: &crate::ids::CodId, store: &dyn KvStore) -> Result<Vec<u8>, ChainError> {
    let [raw]: [Vec<crate::store::Entry>; 1] = store
        .scan_consistent(&[(Cf::Records, b"")])?
        .try_into()
        .expect("one scan asked, one given");
    let records = raw
        .into_iter()
        .map(|(k, v)| {
            Record::from_bytes(&v).map_err(|error| ChainError::Corrupt {
                hash: hex::encode(&k),
                error,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(write_archive(cod, records.iter().collect()))
}

/// An archive of `records` in a stable order: by time, then account and seq.
fn write_archive(cod: &crate::ids::CodId, mut records: Vec<&Record>) -> Vec<u8> {
    records.sort_by_key(|r| (r.body().time, r.account(), r.seq()));
    crate::archive::write(cod, records)
}

/// Imports an archive: every record's form and signatures are checked before anything is
/// stored (one forged record refuses the whole file); then they are ingested, and rule
/// violations are reported per record. Returns the import report (`refused` lists those).
pub fn import(chain: &mut Chain, bytes: &[u8]) -> Result<serde_json::Value, String> {
    let records =
        crate::archive::read(bytes, &chain.ledger().params().cod).map_err(|e| e.to_string())?;
    let checked = chain.ledger().check(records);
    import_checked(chain, checked).map(|(report, _)| report)
}

/// [`import`] of records checked beforehand — with a [`crate::ledger::Verifier`] taken from
/// the chain, say, so the signatures are checked without holding it. Also returns the hashes
/// of the records applied, in the order they were.
pub fn import_checked(
    chain: &mut Chain,
    checked: Checked,
) -> Result<(serde_json::Value, Vec<RecordHash>), String> {
    let total = checked.items().len();
    let forged: Vec<String> = checked
        .items()
        .iter()
        .filter_map(|(r, c)| match c {
            Check::Refused(e) => Some(format!("record {}: {e}", r.hash())),
            _ => None,
        })
        .collect();
    if !forged.is_empty() {
        return Err(format!(
            "refused, nothing imported:\n  {}",
            forged.join("\n  ")
        ));
    }
    let results = chain.ingest_checked(checked).map_err(|e| e.to_string())?;
    let (mut added, mut duplicate, mut pending) = (0, 0, 0);
    let mut refused = Vec::new();
    let mut applied = Vec::new();
    for r in &results {
        match r {
            Ok(o) if o.duplicate => duplicate += 1,
            Ok(o) if o.applied.is_empty() => pending += 1,
            Ok(_) => added += 1,
            Err(e) => refused.push(e.to_string()),
        }
        if let Ok(o) = r {
            applied.extend(o.applied.iter().copied());
        }
    }
    let report = json!({
        "read": total,
        "added": added,
        "duplicate": duplicate,
        "pending": pending,
        "refused": refused,
        "applied_total": chain.ledger().state().applied_count(),
    });
    Ok((report, applied))
}

/// What `cod chain verify` found.
#[derive(Debug, Default, serde::Serialize)]
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
/// balances, quorums, checkpoints), conservation, and the stored derived state.
pub fn verify(params: Params, store: &dyn KvStore) -> Result<VerifyReport, StoreError> {
    let mut report = VerifyReport::default();
    let mut records = Vec::new();
    // One moment's records and derived state, so a daemon verifies while it goes on writing.
    let [raw, state, claims]: [Vec<crate::store::Entry>; 3] = store
        .scan_consistent(&[(Cf::Records, b""), (Cf::State, b""), (Cf::Claims, b"")])?
        .try_into()
        .expect("three scans asked, three given");
    report.records = raw.len();
    for (k, v) in raw {
        match Record::from_bytes(&v) {
            Ok(r) if r.hash().as_bytes().as_slice() == k.as_slice() => records.push(r),
            Ok(r) => report.problems.push(format!(
                "record stored under {} hashes to {}",
                hex::encode(&k),
                r.hash()
            )),
            Err(e) => report
                .problems
                .push(format!("record {}: {e}", hex::encode(&k))),
        }
    }
    let (mut report, ledger) = verify_records(params, records, report);
    let mut stored = Snapshot::new();
    for (cf, entries) in [(Cf::State, state), (Cf::Claims, claims)] {
        for (k, v) in entries {
            stored.insert((cf, k), v);
        }
    }
    if stored != derived_map(&all_derived_ops(&ledger)) {
        report.problems.push("the stored balances and heads differ from those the records give (they are rebuilt on the next start)".into());
    }
    Ok(report)
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
    for (h, deps) in ledger.pending() {
        let r = ledger.record(h).expect("pending records are held");
        let deps: Vec<String> = deps.iter().map(ToString::to_string).collect();
        report.problems.push(format!(
            "incomplete: record {h} ({} seq {}) waits for {}",
            r.account(),
            r.seq(),
            deps.join(", ")
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
    if state.total_balances() != state.issued {
        report.problems.push(format!(
            "balances {:?} do not add up to issuance {:?}",
            state.total_balances(),
            state.issued
        ));
    }
    report.applied = state.applied_count();
    report.accounts = state.accounts.len();
    report.issued = state.issued.clone();
    report.checkpoint_period = state.checkpoint.as_ref().map(|c| c.period);
    (report, ledger)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::tests::{DAY, EPOCH, Scenario, key, out, sign_network};
    use crate::store::{Entry, MemStore};
    use std::sync::Arc;

    /// A store wrapper that counts writes, to show refused records change nothing.
    struct Shared(Arc<MemStore>);
    impl KvStore for Shared {
        fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
            self.0.get(cf, key)
        }
        fn scan(&self, cf: Cf, prefix: &[u8]) -> Result<Vec<Entry>, StoreError> {
            self.0.scan(cf, prefix)
        }
        fn scan_consistent(&self, scans: &[(Cf, &[u8])]) -> Result<Vec<Vec<Entry>>, StoreError> {
            self.0.scan_consistent(scans)
        }
        fn write(&self, ops: Vec<Op>) -> Result<(), StoreError> {
            self.0.write(ops)
        }
    }

    /// A store whose writes and reads can be made to fail.
    #[derive(Default)]
    struct Flaky {
        mem: MemStore,
        fail_writes: std::sync::atomic::AtomicBool,
        fail_reads: std::sync::atomic::AtomicBool,
    }
    impl KvStore for Arc<Flaky> {
        fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
            self.mem.get(cf, key)
        }
        fn scan(&self, cf: Cf, prefix: &[u8]) -> Result<Vec<Entry>, StoreError> {
            if self.fail_reads.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(StoreError::Unreadable("disk gone".into()));
            }
            self.mem.scan(cf, prefix)
        }
        fn scan_consistent(&self, scans: &[(Cf, &[u8])]) -> Result<Vec<Vec<Entry>>, StoreError> {
            if self.fail_reads.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(StoreError::Unreadable("disk gone".into()));
            }
            self.mem.scan_consistent(scans)
        }
        fn write(&self, ops: Vec<Op>) -> Result<(), StoreError> {
            if self.fail_writes.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(StoreError::Unreadable("write failed".into()));
            }
            self.mem.write(ops)
        }
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
        let mut chain = Chain::load(s.l.params().clone(), Box::new(Shared(mem.clone()))).unwrap();
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
            s.l.propose_issue([("bread".into(), 20)].into(), EPOCH + DAY + 99)
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
        let again = Chain::load(p, Box::new(Shared(mem.clone()))).unwrap();
        assert_eq!(again.ledger().state(), chain.ledger().state());
        assert!(again.derived_state_matches().unwrap());
    }
}
