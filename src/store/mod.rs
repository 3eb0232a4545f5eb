//! The node's persistent store: RocksDB with one column family per kind of data, behind the
//! small [`KvStore`] trait that an in-memory store also implements (for tests).
//!
//! Architecture invariant: the store holds only what the ledger admitted; it never decides
//! validity itself. Derived state (balances, heads, claims) can always be rebuilt from
//! `records` (see [`crate::chain`] for the key layout).

mod memory;
#[cfg(feature = "node")]
mod rocks;
pub use memory::MemStore;
#[cfg(feature = "node")]
pub use rocks::{DEFAULT_CACHE_BYTES, MIN_CACHE_BYTES, RocksStore};

use crate::ids::CodId;
use std::ops::Bound;
use std::path::PathBuf;

/// Column families. `meta` holds the schema version and the cod id, so a store is never
/// opened for another cod.
/// The layout of each is in [`crate::chain`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Cf {
    Meta,
    /// record hash → canonical record bytes (every held record)
    Records,
    /// every held record by position
    Slots,
    /// positions holding two or more records (proofs of double spends)
    Forks,
    /// opening keys of the accounts whose opening is held
    Keys,
    /// records waiting for what they depend on
    Pending,
    /// applied record → its position
    Applied,
    /// position → applied record
    Chains,
    /// the application log
    Log,
    /// unclaimed credits
    Credits,
    /// claimed credits → the claiming record
    Claims,
    /// per account its state; the summary
    State,
}

impl Cf {
    pub const ALL: [Cf; 12] = [
        Cf::Meta,
        Cf::Records,
        Cf::Slots,
        Cf::Forks,
        Cf::Keys,
        Cf::Pending,
        Cf::Applied,
        Cf::Chains,
        Cf::Log,
        Cf::Credits,
        Cf::Claims,
        Cf::State,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Cf::Meta => "meta",
            Cf::Records => "records",
            Cf::Slots => "slots",
            Cf::Forks => "forks",
            Cf::Keys => "keys",
            Cf::Pending => "pending",
            Cf::Applied => "applied",
            Cf::Chains => "chains",
            Cf::Log => "log",
            Cf::Credits => "credits",
            Cf::Claims => "claims",
            Cf::State => "state",
        }
    }
}

/// The store layout's version. A store of version 1 (the derived state not kept in full),
/// 2 (its summary among the accounts) or 3 (derived by rules before membership, redemption
/// and work: issue 15) is opened and recomputed into version 4 on its first start.
pub const SCHEMA_VERSION: u32 = 4;
/// Older layouts this software opens (and upgrades when it writes).
pub const SCHEMA_UPGRADABLE: &[u32] = &[1, 2, 3];

/// A key and its value.
pub type Entry = (Vec<u8>, Vec<u8>);
/// Keys and values across column families.
pub type Snapshot = std::collections::BTreeMap<(Cf, Vec<u8>), Vec<u8>>;

/// One change in an atomic batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Put(Cf, Vec<u8>, Vec<u8>),
    Delete(Cf, Vec<u8>),
    /// Removes everything in a column family (derived data about to be rewritten).
    Clear(Cf),
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store at {path}: {message}")]
    Db { path: PathBuf, message: String },
    #[error("a store already exists at {0}; cod never overwrites one")]
    Exists(PathBuf),
    #[error("no store at {0}: is this a deployed node directory? (`cod deploy` creates one)")]
    Missing(PathBuf),
    #[error(
        "the store at {path} belongs to cod {found}, not {expected}; deployments never share data"
    )]
    WrongCod {
        path: PathBuf,
        expected: CodId,
        found: String,
    },
    #[error(
        "the store at {path} has schema version {found}; this cod understands {SCHEMA_VERSION} (use `cod import`)"
    )]
    Schema { path: PathBuf, found: String },
    #[error(
        "the store at {0} is in use by another process (is the node running? `cod node status`)"
    )]
    Locked(PathBuf),
    #[error("the store at {0} was opened to read only (or is a snapshot); nothing can be written")]
    ReadOnly(PathBuf),
    #[error(
        "a write to the store failed and the store cannot be read back ({0}); nothing is accepted until it can (check the disk, then restart the node)"
    )]
    Unreadable(String),
}

/// What the chain layer needs from a store.
pub trait KvStore: Send + Sync {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// Every (key, value) whose key starts with `prefix`, in key order.
    fn scan(&self, cf: Cf, prefix: &[u8]) -> Result<Vec<Entry>, StoreError>;
    /// Entries with keys in `(from, to)`, in key order, at most `limit`.
    fn range(
        &self,
        cf: Cf,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError>;
    /// The store as it is now, read-only: writes that land later do not show in it, and
    /// writing to it fails. Readers keep one instead of holding the writer's lock.
    fn snapshot(&self) -> std::sync::Arc<dyn KvStore>;
    /// Applies `ops` atomically and durably: once this returns, they survive a crash.
    fn write(&self, ops: Vec<Op>) -> Result<(), StoreError>;
    /// A new, empty store of the same kind for the caller alone, gone when its last handle
    /// is dropped, and not durable (a crash loses it): where a recomputation from the
    /// records (`cod chain verify`, `cod node run --full`) keeps what it derives, instead
    /// of memory.
    fn scratch(&self) -> Result<std::sync::Arc<dyn KvStore>, StoreError>;
}

/// A shared store is a store: a caller keeps one handle and gives the chain another.
impl<T: KvStore + ?Sized> KvStore for std::sync::Arc<T> {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        (**self).get(cf, key)
    }
    fn scan(&self, cf: Cf, prefix: &[u8]) -> Result<Vec<Entry>, StoreError> {
        (**self).scan(cf, prefix)
    }
    fn range(
        &self,
        cf: Cf,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        (**self).range(cf, from, to, limit)
    }
    fn snapshot(&self) -> std::sync::Arc<dyn KvStore> {
        (**self).snapshot()
    }
    fn write(&self, ops: Vec<Op>) -> Result<(), StoreError> {
        (**self).write(ops)
    }
    fn scratch(&self) -> Result<std::sync::Arc<dyn KvStore>, StoreError> {
        (**self).scratch()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// What every store must do alike.
    pub(crate) fn exercise(s: &dyn KvStore) {
        s.write(vec![
            Op::Put(Cf::Chains, b"a1".to_vec(), b"x".to_vec()),
            Op::Put(Cf::Chains, b"a2".to_vec(), b"y".to_vec()),
            Op::Put(Cf::Chains, b"b1".to_vec(), b"z".to_vec()),
            Op::Put(Cf::State, b"k".to_vec(), b"v".to_vec()),
        ])
        .unwrap();
        assert_eq!(s.scan(Cf::Chains, b"a").unwrap().len(), 2);
        assert_eq!(s.get(Cf::Chains, b"b1").unwrap(), Some(b"z".to_vec()));
        s.write(vec![
            Op::Delete(Cf::Chains, b"a1".to_vec()),
            Op::Clear(Cf::State),
        ])
        .unwrap();
        assert_eq!(s.scan(Cf::Chains, b"").unwrap().len(), 2);
        assert!(s.scan(Cf::State, b"").unwrap().is_empty());
        // A snapshot keeps its moment: later writes show in the store, not in it, and it
        // takes no writes itself.
        let then = s.snapshot();
        s.write(vec![
            Op::Put(Cf::Chains, b"a3".to_vec(), b"w".to_vec()),
            Op::Delete(Cf::Chains, b"b1".to_vec()),
        ])
        .unwrap();
        assert_eq!(then.scan(Cf::Chains, b"").unwrap().len(), 2);
        assert_eq!(then.get(Cf::Chains, b"b1").unwrap(), Some(b"z".to_vec()));
        assert_eq!(then.get(Cf::Chains, b"a3").unwrap(), None);
        assert_eq!(then.snapshot().scan(Cf::Chains, b"").unwrap().len(), 2);
        assert!(matches!(
            then.write(vec![Op::Clear(Cf::Chains)]),
            Err(StoreError::ReadOnly(_))
        ));
        assert_eq!(s.get(Cf::Chains, b"a3").unwrap(), Some(b"w".to_vec()));
        s.write(vec![
            Op::Delete(Cf::Chains, b"a3".to_vec()),
            Op::Put(Cf::Chains, b"b1".to_vec(), b"z".to_vec()),
        ])
        .unwrap();
        drop(then);
        assert_eq!(s.get(Cf::State, b"k").unwrap(), None);
        use Bound::*;
        let keys = |from, to, n| -> Vec<Vec<u8>> {
            s.range(Cf::Chains, from, to, n)
                .unwrap()
                .into_iter()
                .map(|(k, _)| k)
                .collect()
        };
        assert_eq!(
            keys(Unbounded, Unbounded, 9),
            [b"a2".to_vec(), b"b1".to_vec()]
        );
        assert_eq!(keys(Excluded(b"a2"), Unbounded, 9), [b"b1".to_vec()]);
        assert_eq!(keys(Included(b"a2"), Excluded(b"b1"), 9), [b"a2".to_vec()]);
        assert_eq!(keys(Included(b"a"), Included(b"b1"), 1), [b"a2".to_vec()]);
        assert!(keys(Included(b"b2"), Unbounded, 9).is_empty());
        assert!(
            keys(Included(b"b1"), Included(b"a2"), 9).is_empty(),
            "reversed: empty"
        );
        assert!(keys(Included(b"b1"), Excluded(b"b1"), 9).is_empty());
        // A scratch store starts empty, takes writes, and shares nothing with its store.
        let scratch = s.scratch().unwrap();
        assert!(scratch.scan(Cf::Chains, b"").unwrap().is_empty());
        scratch
            .write(vec![Op::Put(Cf::Chains, b"c1".to_vec(), b"s".to_vec())])
            .unwrap();
        assert_eq!(scratch.get(Cf::Chains, b"c1").unwrap(), Some(b"s".to_vec()));
        assert_eq!(scratch.snapshot().scan(Cf::Chains, b"").unwrap().len(), 1);
        assert_eq!(s.get(Cf::Chains, b"c1").unwrap(), None);
    }

    #[test]
    fn the_memory_store_behaves() {
        exercise(&MemStore::default());
    }
}
