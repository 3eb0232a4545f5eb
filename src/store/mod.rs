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
pub use rocks::RocksStore;

use crate::ids::CodId;
use std::path::PathBuf;

/// Column families. `meta` holds the schema version and the cod id, so a store is never
/// opened for another cod.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Cf {
    Meta,
    /// record hash → canonical record bytes (every admitted record)
    Records,
    /// account ‖ seq (big-endian) ‖ hash → "" (every admitted record, by position)
    Chains,
    /// payee ‖ credit hash → claiming record hash (applied claims; derived)
    Claims,
    /// account ‖ seq → the hashes of two or more records signed for that slot (proofs)
    Forks,
    /// account → its derived state; `!summary` → totals (derived)
    State,
}

impl Cf {
    pub const ALL: [Cf; 6] = [
        Cf::Meta,
        Cf::Records,
        Cf::Chains,
        Cf::Claims,
        Cf::Forks,
        Cf::State,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Cf::Meta => "meta",
            Cf::Records => "records",
            Cf::Chains => "chains",
            Cf::Claims => "claims",
            Cf::Forks => "forks",
            Cf::State => "state",
        }
    }
}

pub const SCHEMA_VERSION: u32 = 1;

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
    /// Several scans of one moment (a snapshot): a write that lands meanwhile shows in none
    /// of them. Long reads use it instead of holding the writer's lock.
    fn scan_consistent(&self, scans: &[(Cf, &[u8])]) -> Result<Vec<Vec<Entry>>, StoreError>;
    /// Applies `ops` atomically and durably: once this returns, they survive a crash.
    fn write(&self, ops: Vec<Op>) -> Result<(), StoreError>;
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
        let both = s
            .scan_consistent(&[(Cf::Chains, b"a"), (Cf::Chains, b"b"), (Cf::State, b"")])
            .unwrap();
        assert_eq!(
            both,
            vec![
                s.scan(Cf::Chains, b"a").unwrap(),
                s.scan(Cf::Chains, b"b").unwrap(),
                vec![]
            ]
        );
        assert_eq!(s.get(Cf::State, b"k").unwrap(), None);
    }

    #[test]
    fn the_memory_store_behaves() {
        exercise(&MemStore::default());
    }
}
