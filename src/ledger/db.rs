//! Where a ledger keeps what grows with its history (records, positions, claims, the
//! application log): [`Table`]s, each either wholly in memory or a layer of uncommitted
//! changes over committed data that the edge provides through a [`Source`] (the node's store).
//! The engine reads and writes tables the same way in both cases; the caller of a layered
//! ledger takes the changes ([`Table::take_writes`]) after each batch, commits them, and from
//! then on the source answers for them. Pure: no I/O here — a source is the caller's.
//!
//! [`Codec`] is the byte form of keys and values in a store: fixed-width ids and big-endian
//! integers concatenated, so the byte order of keys is the order of the tuples they encode.

use crate::ids::{AccountId, RecordHash};
use crate::keys::PublicKey;
use crate::ledger::Record;
use crate::ledger::economics::Amounts;
use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

/// Committed entries of one table, read-only. A source that cannot read its medium panics
/// (the caller restarts from what was committed; see `crate::chain`).
pub trait Source<K, V>: Send + Sync {
    fn get(&self, key: &K) -> Option<V>;
    fn contains(&self, key: &K) -> bool {
        self.get(key).is_some()
    }
    /// Entries with keys in `(from, to)`, in key order, at most `limit`.
    fn range(&self, from: Bound<&K>, to: Bound<&K>, limit: usize) -> Vec<(K, V)>;
}

/// Does `(from, to)` hold no key at all (its start beyond its end, or one bound excluding
/// the other)?
pub fn is_empty_range<K: Ord + ?Sized>(from: Bound<&K>, to: Bound<&K>) -> bool {
    use Bound::*;
    match (from, to) {
        (Included(a), Included(b)) => a > b,
        (Included(a), Excluded(b)) | (Excluded(a), Included(b)) | (Excluded(a), Excluded(b)) => {
            a >= b
        }
        _ => false,
    }
}

/// A source, shared by the tables layered over it.
pub type SharedSource<K, V> = Arc<dyn Source<K, V>>;

/// Changes not yet committed: a value written, or `None` for one removed.
pub type Writes<K, V> = BTreeMap<K, Option<V>>;

/// A map that is either wholly in memory (no source) or a layer of changes over a
/// [`Source`]. Cloning copies the layer, not the source.
pub struct Table<K, V> {
    base: Option<Arc<dyn Source<K, V>>>,
    /// The source is to be ignored (the table is being replaced as a whole): on commit, the
    /// caller clears what is stored before writing the layer.
    cleared: bool,
    writes: Writes<K, V>,
}

impl<K: Clone, V: Clone> Clone for Table<K, V> {
    fn clone(&self) -> Self {
        Self {
            base: self.base.clone(),
            cleared: self.cleared,
            writes: self.writes.clone(),
        }
    }
}

impl<K, V> std::fmt::Debug for Table<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Table({}, {} in memory{})",
            if self.base.is_some() {
                "layered"
            } else {
                "memory"
            },
            self.writes.len(),
            if self.cleared { ", cleared" } else { "" }
        )
    }
}

impl<K, V> Default for Table<K, V> {
    fn default() -> Self {
        Self {
            base: None,
            cleared: false,
            writes: BTreeMap::new(),
        }
    }
}

impl<K: Ord + Clone, V: Clone> Table<K, V> {
    /// An empty table in memory.
    pub fn new() -> Self {
        Self::default()
    }

    /// A layer over committed entries.
    pub fn over(base: Arc<dyn Source<K, V>>) -> Self {
        Self {
            base: Some(base),
            cleared: false,
            writes: BTreeMap::new(),
        }
    }

    /// An empty table that will replace this one: over the same source, ignoring it.
    pub fn fresh(&self) -> Self {
        Self {
            base: self.base.clone(),
            cleared: self.base.is_some(),
            writes: BTreeMap::new(),
        }
    }

    fn live_base(&self) -> Option<&Arc<dyn Source<K, V>>> {
        self.base.as_ref().filter(|_| !self.cleared)
    }

    pub fn get(&self, k: &K) -> Option<V> {
        match self.writes.get(k) {
            Some(v) => v.clone(),
            None => self.live_base().and_then(|b| b.get(k)),
        }
    }

    pub fn contains(&self, k: &K) -> bool {
        match self.writes.get(k) {
            Some(v) => v.is_some(),
            None => self.live_base().is_some_and(|b| b.contains(k)),
        }
    }

    /// The source (unless ignored) and the keys the layer holds: enough to tell later,
    /// without this table, whether it held a key now (or a key committed since).
    pub fn parts(&self) -> (Option<SharedSource<K, V>>, std::collections::BTreeSet<K>) {
        let layer = self
            .writes
            .iter()
            .filter(|(_, v)| v.is_some())
            .map(|(k, _)| k.clone())
            .collect();
        (self.live_base().cloned(), layer)
    }

    /// The entries written and not committed (for a table without a source, all of them).
    pub fn layer(&self) -> Vec<(K, V)> {
        self.writes
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.clone()?)))
            .collect()
    }

    pub fn insert(&mut self, k: K, v: V) {
        self.writes.insert(k, Some(v));
    }

    /// Removes `k`, returning its value.
    pub fn remove(&mut self, k: &K) -> Option<V> {
        let old = self.get(k);
        if self.live_base().is_some() {
            if old.is_some() {
                self.writes.insert(k.clone(), None);
            }
        } else {
            self.writes.remove(k);
        }
        old
    }

    /// Entries with keys in `(from, to)`, in key order, at most `limit`.
    pub fn range(&self, from: Bound<&K>, to: Bound<&K>, limit: usize) -> Vec<(K, V)> {
        if is_empty_range(from, to) {
            return Vec::new(); // (a reversed range is empty, not a panic)
        }
        let layer = self.writes.range::<K, _>((from, to));
        let Some(base) = self.live_base() else {
            return layer
                .filter_map(|(k, v)| Some((k.clone(), v.clone()?)))
                .take(limit)
                .collect();
        };
        let layer: Vec<(&K, &Option<V>)> = layer.collect();
        // Each entry of the layer may hide one of the source's.
        let under = base.range(from, to, limit.saturating_add(layer.len()));
        let mut out = Vec::new();
        let (mut i, mut j) = (0, 0);
        while out.len() < limit && (i < layer.len() || j < under.len()) {
            let take_layer = match (layer.get(i), under.get(j)) {
                (Some((lk, _)), Some((uk, _))) => {
                    if *lk == uk {
                        j += 1; // the layer's entry replaces the source's
                    }
                    *lk <= uk
                }
                (Some(_), None) => true,
                _ => false,
            };
            if take_layer {
                let (k, v) = layer[i];
                i += 1;
                if let Some(v) = v {
                    out.push((k.clone(), v.clone()));
                }
            } else {
                out.push(under[j].clone());
                j += 1;
            }
        }
        out
    }

    /// Every entry, in key order.
    pub fn entries(&self) -> Vec<(K, V)> {
        self.range(Bound::Unbounded, Bound::Unbounded, usize::MAX)
    }

    /// The changes since the last call, and whether what is stored must be cleared before
    /// they are written; from now on the source is trusted to hold them (the caller commits
    /// them before the next read).
    pub fn take_writes(&mut self) -> (bool, Writes<K, V>) {
        let cleared = std::mem::take(&mut self.cleared);
        (cleared, std::mem::take(&mut self.writes))
    }

    /// Puts back changes taken by [`Table::take_writes`] whose commit failed (changes made
    /// since are newer and stay).
    pub fn restore(&mut self, (cleared, writes): (bool, Writes<K, V>)) {
        self.cleared |= cleared;
        for (k, v) in writes {
            self.writes.entry(k).or_insert(v);
        }
    }
}

impl<K: Ord + Clone, V: Clone + PartialEq> PartialEq for Table<K, V> {
    fn eq(&self, other: &Self) -> bool {
        self.entries() == other.entries()
    }
}

impl<K: Ord + Clone, V: Clone + Eq> Eq for Table<K, V> {}

/// The byte form of a key or a value in a store. Fixed-width parts first: a variable-length
/// part (a record, amounts, a key) is only ever last.
pub trait Codec: Sized {
    fn put(&self, out: &mut Vec<u8>);
    /// Reads one from the front of `b`, advancing it.
    fn take(b: &mut &[u8]) -> Option<Self>;

    fn to_key(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.put(&mut out);
        out
    }

    /// Decodes exactly `b` (nothing may be left over).
    fn from_key(mut b: &[u8]) -> Option<Self> {
        let v = Self::take(&mut b)?;
        b.is_empty().then_some(v)
    }
}

fn take_n<const N: usize>(b: &mut &[u8]) -> Option<[u8; N]> {
    let (head, rest) = b.split_first_chunk::<N>()?;
    *b = rest;
    Some(*head)
}

impl Codec for u64 {
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_be_bytes());
    }
    fn take(b: &mut &[u8]) -> Option<Self> {
        take_n::<8>(b).map(u64::from_be_bytes)
    }
}

impl Codec for AccountId {
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes());
    }
    fn take(b: &mut &[u8]) -> Option<Self> {
        take_n::<32>(b).map(AccountId::from_bytes)
    }
}

impl Codec for RecordHash {
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes());
    }
    fn take(b: &mut &[u8]) -> Option<Self> {
        take_n::<32>(b).map(RecordHash::from_bytes)
    }
}

impl Codec for () {
    fn put(&self, _: &mut Vec<u8>) {}
    fn take(_: &mut &[u8]) -> Option<Self> {
        Some(())
    }
}

impl<A: Codec, B: Codec> Codec for (A, B) {
    fn put(&self, out: &mut Vec<u8>) {
        self.0.put(out);
        self.1.put(out);
    }
    fn take(b: &mut &[u8]) -> Option<Self> {
        Some((A::take(b)?, B::take(b)?))
    }
}

impl<A: Codec, B: Codec, C: Codec> Codec for (A, B, C) {
    fn put(&self, out: &mut Vec<u8>) {
        self.0.put(out);
        self.1.put(out);
        self.2.put(out);
    }
    fn take(b: &mut &[u8]) -> Option<Self> {
        Some((A::take(b)?, B::take(b)?, C::take(b)?))
    }
}

/// A record: its canonical bytes (the rest of the value).
impl Codec for Arc<Record> {
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_bytes());
    }
    fn take(b: &mut &[u8]) -> Option<Self> {
        let r = Record::from_bytes(b).ok()?;
        *b = &[];
        Some(Arc::new(r))
    }
}

/// A key: its DER SubjectPublicKeyInfo (the rest of the value).
impl Codec for PublicKey {
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.der());
    }
    fn take(b: &mut &[u8]) -> Option<Self> {
        let k = PublicKey::from_der(b).ok()?;
        *b = &[];
        Some(k)
    }
}

/// An account's state: its JSON (the rest of the value), as `cod chain verify` and older
/// tools read it.
impl Codec for super::AccountState {
    fn put(&self, out: &mut Vec<u8>) {
        serde_json::to_writer(out, self).expect("account states serialize");
    }
    fn take(b: &mut &[u8]) -> Option<Self> {
        let s = serde_json::from_slice(b).ok()?;
        *b = &[];
        Some(s)
    }
}

/// Amounts: per asset, its name's length (one byte), the name, the amount (big-endian), in
/// asset order.
impl Codec for Amounts {
    fn put(&self, out: &mut Vec<u8>) {
        for (asset, v) in self {
            let name = asset.as_bytes();
            out.push(u8::try_from(name.len()).expect("asset names are at most 32 bytes"));
            out.extend_from_slice(name);
            v.put(out);
        }
    }
    fn take(b: &mut &[u8]) -> Option<Self> {
        let mut m = Amounts::new();
        while let Some((&n, rest)) = b.split_first() {
            *b = rest;
            let name = b.get(..n as usize)?;
            let name = std::str::from_utf8(name).ok()?.to_string();
            *b = &b[n as usize..];
            m.insert(name, u64::take(b)?);
        }
        Some(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::sync::Mutex;

    /// A committed map, as a store would hold it.
    #[derive(Default)]
    struct Committed(Mutex<BTreeMap<u64, u64>>);

    impl Source<u64, u64> for Committed {
        fn get(&self, k: &u64) -> Option<u64> {
            self.0.lock().unwrap().get(k).copied()
        }
        fn range(&self, from: Bound<&u64>, to: Bound<&u64>, limit: usize) -> Vec<(u64, u64)> {
            let m = self.0.lock().unwrap();
            m.range::<u64, _>((from, to))
                .take(limit)
                .map(|(k, v)| (*k, *v))
                .collect()
        }
    }

    fn commit(t: &mut Table<u64, u64>, c: &Committed) {
        let (cleared, w) = t.take_writes();
        let mut m = c.0.lock().unwrap();
        if cleared {
            m.clear();
        }
        for (k, v) in w {
            match v {
                Some(v) => m.insert(k, v),
                None => m.remove(&k),
            };
        }
    }

    #[derive(Clone, Debug)]
    enum Op {
        Insert(u64, u64),
        Remove(u64),
        Commit,
        Fresh,
        Range(u64, u64, usize),
        Reversed(u64, u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0..40u64, any::<u64>()).prop_map(|(k, v)| Op::Insert(k, v)),
            2 => (0..40u64).prop_map(Op::Remove),
            1 => Just(Op::Commit),
            1 => Just(Op::Fresh),
            2 => (0..40u64, 0..40u64, 0..10usize).prop_map(|(a, b, n)| Op::Range(a, b, n)),
            1 => (0..40u64, 0..40u64).prop_map(|(a, b)| Op::Reversed(a, b)),
        ]
    }

    proptest! {
        /// A layered table reads exactly as a plain map given the same changes, whenever
        /// its layer is committed and whatever it hides.
        #[test]
        fn a_layer_reads_as_a_map(ops in proptest::collection::vec(op(), 1..80)) {
            let c = Arc::new(Committed::default());
            let mut t: Table<u64, u64> = Table::over(c.clone());
            let mut mem: Table<u64, u64> = Table::new();
            let mut model: BTreeMap<u64, u64> = BTreeMap::new();
            for o in ops {
                match o {
                    Op::Insert(k, v) => {
                        t.insert(k, v);
                        mem.insert(k, v);
                        model.insert(k, v);
                    }
                    Op::Remove(k) => {
                        let want = model.remove(&k);
                        prop_assert_eq!(t.remove(&k), want);
                        prop_assert_eq!(mem.remove(&k), want);
                    }
                    Op::Commit => commit(&mut t, &c),
                    Op::Fresh => {
                        t = t.fresh();
                        mem = mem.fresh();
                        model.clear();
                    }
                    Op::Range(a, b, n) => {
                        let want: Vec<(u64, u64)> = model
                            .range(a.min(b)..b.max(a))
                            .take(n)
                            .map(|(k, v)| (*k, *v))
                            .collect();
                        let (lo, hi) = (a.min(b), b.max(a));
                        let r = (Bound::Included(&lo), Bound::Excluded(&hi));
                        prop_assert_eq!(t.range(r.0, r.1, n), want.clone());
                        prop_assert_eq!(mem.range(r.0, r.1, n), want);
                    }
                    Op::Reversed(a, b) => {
                        // From the larger to the smaller: nothing (or the one key, if equal
                        // and both included).
                        let (hi, lo) = (a.max(b), a.min(b));
                        let want: Vec<(u64, u64)> = model
                            .range(hi..=lo.max(hi))
                            .filter(|_| hi == lo)
                            .map(|(k, v)| (*k, *v))
                            .collect();
                        let r = (Bound::Included(&hi), Bound::Included(&lo));
                        prop_assert_eq!(t.range(r.0, r.1, 9), want.clone());
                        prop_assert_eq!(mem.range(r.0, r.1, 9), want);
                        prop_assert!(t.range(Bound::Excluded(&hi), Bound::Excluded(&lo), 9).is_empty());
                    }
                }
                for k in 0..40 {
                    prop_assert_eq!(t.get(&k), model.get(&k).copied());
                }
                prop_assert_eq!(mem.entries(), model.iter().map(|(k, v)| (*k, *v)).collect::<Vec<_>>());
            }
        }

        #[test]
        fn keys_keep_their_order_in_bytes(a in any::<(u64, u64)>(), b in any::<(u64, u64)>()) {
            prop_assert_eq!(a.cmp(&b), a.to_key().cmp(&b.to_key()));
            prop_assert_eq!(<(u64, u64)>::from_key(&a.to_key()), Some(a));
        }

        #[test]
        fn amounts_round_trip(m in proptest::collection::btree_map("[a-z]{1,32}", any::<u64>(), 0..5)) {
            prop_assert_eq!(Amounts::from_key(&m.to_key()), Some(m));
        }
    }

    #[test]
    fn codecs_refuse_short_or_long_bytes() {
        assert_eq!(u64::from_key(&[0; 7]), None);
        assert_eq!(u64::from_key(&[0; 9]), None);
        assert_eq!(Amounts::from_key(&[5, b'a']), None);
        assert_eq!(<(u64, ())>::from_key(&7u64.to_key()), Some((7, ())));
    }
}
