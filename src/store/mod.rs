//! The node's persistent store: RocksDB with one column family per kind of data, behind the
//! small [`KvStore`] trait that an in-memory store also implements (for tests).
//!
//! Architecture invariant: the store holds only what the ledger admitted; it never decides
//! validity itself. Derived state (balances, heads, claims) can always be rebuilt from
//! `records` (see [`crate::chain`] for the key layout).

mod memory;
pub use memory::MemStore;

use crate::ids::CodId;
use std::path::{Path, PathBuf};

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
    #[error("store at {path}: {source}")]
    Db {
        path: PathBuf,
        source: rocksdb::Error,
    },
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
}

/// What the chain layer needs from a store.
pub trait KvStore: Send + Sync {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// Every (key, value) whose key starts with `prefix`, in key order.
    fn scan(&self, cf: Cf, prefix: &[u8]) -> Result<Vec<Entry>, StoreError>;
    /// Applies `ops` atomically and durably: once this returns, they survive a crash.
    fn write(&self, ops: Vec<Op>) -> Result<(), StoreError>;
}

/// The RocksDB store.
pub struct RocksStore {
    db: rocksdb::DB,
    path: PathBuf,
}

impl std::fmt::Debug for RocksStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RocksStore({})", self.path.display())
    }
}

fn options(create: bool) -> rocksdb::Options {
    let mut o = rocksdb::Options::default();
    o.create_if_missing(create);
    o.create_missing_column_families(create);
    o
}

impl RocksStore {
    fn db_err(&self) -> impl FnOnce(rocksdb::Error) -> StoreError + '_ {
        |source| StoreError::Db {
            path: self.path.clone(),
            source,
        }
    }

    fn open_db(path: &Path, create: bool) -> Result<rocksdb::DB, StoreError> {
        let names = Cf::ALL.map(Cf::name);
        rocksdb::DB::open_cf(&options(create), path, names).map_err(|source| {
            if source.to_string().contains("lock") {
                StoreError::Locked(path.to_path_buf())
            } else {
                StoreError::Db {
                    path: path.to_path_buf(),
                    source,
                }
            }
        })
    }

    /// Creates a new, empty store for `cod` at `path` (which must not hold one).
    pub fn create(path: &Path, cod: &CodId) -> Result<Self, StoreError> {
        if path.join("CURRENT").exists() {
            return Err(StoreError::Exists(path.to_path_buf()));
        }
        let store = Self {
            db: Self::open_db(path, true)?,
            path: path.to_path_buf(),
        };
        store.write(vec![
            Op::Put(
                Cf::Meta,
                b"schema".to_vec(),
                SCHEMA_VERSION.to_string().into_bytes(),
            ),
            Op::Put(Cf::Meta, b"cod_id".to_vec(), cod.to_string().into_bytes()),
        ])?;
        Ok(store)
    }

    /// Opens the store of `cod` at `path`, refusing another cod's or another schema's.
    pub fn open(path: &Path, cod: &CodId) -> Result<Self, StoreError> {
        if !path.join("CURRENT").exists() {
            return Err(StoreError::Missing(path.to_path_buf()));
        }
        let store = Self {
            db: Self::open_db(path, false)?,
            path: path.to_path_buf(),
        };
        let get = |k: &[u8]| -> Result<String, StoreError> {
            Ok(store
                .get(Cf::Meta, k)?
                .map(|v| String::from_utf8_lossy(&v).into_owned())
                .unwrap_or_default())
        };
        let schema = get(b"schema")?;
        if schema != SCHEMA_VERSION.to_string() {
            return Err(StoreError::Schema {
                path: path.to_path_buf(),
                found: schema,
            });
        }
        let found = get(b"cod_id")?;
        if found != cod.to_string() {
            return Err(StoreError::WrongCod {
                path: path.to_path_buf(),
                expected: *cod,
                found,
            });
        }
        Ok(store)
    }

    fn cf(&self, cf: Cf) -> &rocksdb::ColumnFamily {
        self.db
            .cf_handle(cf.name())
            .expect("column families are created on open")
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl KvStore for RocksStore {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.db.get_cf(self.cf(cf), key).map_err(self.db_err())
    }

    fn scan(&self, cf: Cf, prefix: &[u8]) -> Result<Vec<Entry>, StoreError> {
        let mode = rocksdb::IteratorMode::From(prefix, rocksdb::Direction::Forward);
        let mut out = Vec::new();
        for item in self.db.iterator_cf(self.cf(cf), mode) {
            let (k, v) = item.map_err(self.db_err())?;
            if !k.starts_with(prefix) {
                break;
            }
            out.push((k.into_vec(), v.into_vec()));
        }
        Ok(out)
    }

    fn write(&self, ops: Vec<Op>) -> Result<(), StoreError> {
        let mut batch = rocksdb::WriteBatch::default();
        for op in ops {
            match op {
                Op::Put(cf, k, v) => batch.put_cf(self.cf(cf), k, v),
                Op::Delete(cf, k) => batch.delete_cf(self.cf(cf), k),
                // Keys are at most 72 bytes, so this range covers the whole family.
                Op::Clear(cf) => {
                    batch.delete_range_cf(self.cf(cf), [].as_slice(), [0xffu8; 80].as_slice())
                }
            }
        }
        let mut o = rocksdb::WriteOptions::default();
        o.set_sync(true);
        self.db.write_opt(batch, &o).map_err(self.db_err())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_belongs_to_one_cod() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("store");
        let a: CodId = "0123456789abcdef0123456789abcdef01234567".parse().unwrap();
        let b: CodId = "1123456789abcdef0123456789abcdef01234567".parse().unwrap();
        assert!(matches!(
            RocksStore::open(&p, &a),
            Err(StoreError::Missing(_))
        ));
        drop(RocksStore::create(&p, &a).unwrap());
        assert!(matches!(
            RocksStore::create(&p, &a),
            Err(StoreError::Exists(_))
        ));
        let s = RocksStore::open(&p, &a).unwrap();
        assert!(
            matches!(RocksStore::open(&p, &a), Err(StoreError::Locked(_))),
            "one process at a time"
        );
        drop(s);
        let err = RocksStore::open(&p, &b).unwrap_err();
        assert!(matches!(err, StoreError::WrongCod { .. }), "{err}");
    }

    fn exercise(s: &dyn KvStore) {
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
        assert_eq!(s.get(Cf::State, b"k").unwrap(), None);
    }

    #[test]
    fn rocksdb_and_memory_stores_behave_alike() {
        let dir = tempfile::tempdir().unwrap();
        let cod: CodId = "0123456789abcdef0123456789abcdef01234567".parse().unwrap();
        exercise(&RocksStore::create(&dir.path().join("s"), &cod).unwrap());
        exercise(&MemStore::default());
    }
}
