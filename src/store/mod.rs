//! The node's persistent store: RocksDB with one column family per kind of data.
//!
//! Architecture invariant: the store holds only what the ledger validated; it never decides
//! validity itself. Derived state (balances, heads) can always be rebuilt from `records`.

use crate::ids::CodId;
use std::path::{Path, PathBuf};

/// Column families. `meta` holds the schema version and the cod id, so a store is never
/// opened for another cod.
pub const COLUMN_FAMILIES: [&str; 6] = ["meta", "records", "chains", "claims", "forks", "state"];
pub const SCHEMA_VERSION: u32 = 1;

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
}

pub struct Store {
    db: rocksdb::DB,
    path: PathBuf,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Store({})", self.path.display())
    }
}

fn options(create: bool) -> rocksdb::Options {
    let mut o = rocksdb::Options::default();
    o.create_if_missing(create);
    o.create_missing_column_families(create);
    o
}

impl Store {
    /// Creates a new, empty store for `cod` at `path` (which must not hold one).
    pub fn create(path: &Path, cod: &CodId) -> Result<Self, StoreError> {
        if path.join("CURRENT").exists() {
            return Err(StoreError::Exists(path.to_path_buf()));
        }
        let db = rocksdb::DB::open_cf(&options(true), path, COLUMN_FAMILIES).map_err(|source| {
            StoreError::Db {
                path: path.to_path_buf(),
                source,
            }
        })?;
        let store = Self {
            db,
            path: path.to_path_buf(),
        };
        let mut batch = rocksdb::WriteBatch::default();
        batch.put_cf(store.cf("meta"), b"schema", SCHEMA_VERSION.to_string());
        batch.put_cf(store.cf("meta"), b"cod_id", cod.to_string());
        store.write(batch)?;
        Ok(store)
    }

    /// Opens the store of `cod` at `path`, refusing another cod's or another schema's.
    pub fn open(path: &Path, cod: &CodId) -> Result<Self, StoreError> {
        if !path.join("CURRENT").exists() {
            return Err(StoreError::Missing(path.to_path_buf()));
        }
        let db =
            rocksdb::DB::open_cf(&options(false), path, COLUMN_FAMILIES).map_err(|source| {
                StoreError::Db {
                    path: path.to_path_buf(),
                    source,
                }
            })?;
        let store = Self {
            db,
            path: path.to_path_buf(),
        };
        let get = |k: &[u8]| -> Result<String, StoreError> {
            Ok(store
                .db
                .get_cf(store.cf("meta"), k)
                .map_err(|source| StoreError::Db {
                    path: path.to_path_buf(),
                    source,
                })?
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

    fn cf(&self, name: &str) -> &rocksdb::ColumnFamily {
        self.db
            .cf_handle(name)
            .expect("column families are created on open")
    }

    /// Applies a batch atomically with the WAL synced: once this returns, the batch survives
    /// a crash of the process or the machine.
    fn write(&self, batch: rocksdb::WriteBatch) -> Result<(), StoreError> {
        let mut o = rocksdb::WriteOptions::default();
        o.set_sync(true);
        self.db
            .write_opt(batch, &o)
            .map_err(|source| StoreError::Db {
                path: self.path.clone(),
                source,
            })
    }

    pub fn path(&self) -> &Path {
        &self.path
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
        assert!(matches!(Store::open(&p, &a), Err(StoreError::Missing(_))));
        drop(Store::create(&p, &a).unwrap());
        assert!(matches!(Store::create(&p, &a), Err(StoreError::Exists(_))));
        Store::open(&p, &a).unwrap();
        let err = Store::open(&p, &b).unwrap_err();
        assert!(matches!(err, StoreError::WrongCod { .. }), "{err}");
    }
}
