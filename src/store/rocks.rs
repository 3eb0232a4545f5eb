//! The RocksDB store (feature `node`).

use super::{Cf, Entry, KvStore, Op, SCHEMA_UPGRADABLE, SCHEMA_VERSION, StoreError};
use crate::ids::CodId;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The RocksDB store: the database as it is, or as it was at one moment (a snapshot, see
/// [`KvStore::snapshot`], which takes no writes).
pub struct RocksStore {
    // Declared before `db`, so it is released before the database can close (every holder
    // of this `Arc` holds the database too).
    snap: Option<Arc<rocksdb::SnapshotWithThreadMode<'static, rocksdb::DB>>>,
    db: Arc<rocksdb::DB>,
    path: PathBuf,
    /// Writes are synced (a scratch store's are not, nor logged).
    durable: bool,
    /// A scratch store's directory, removed once the database has closed (declared after
    /// `db`, so it is dropped after it by the last holder).
    scratch_dir: Option<Arc<tempfile::TempDir>>,
}

/// RocksDB's memory by default (node.ini `[store] cache`): its block cache and its write
/// buffers together, whatever the size of the history.
pub const DEFAULT_CACHE_BYTES: usize =
    (crate::config::node::DEFAULT_STORE_CACHE_MIB as usize) << 20;
/// The least it may be given.
pub const MIN_CACHE_BYTES: usize = 8 << 20;

impl std::fmt::Debug for RocksStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RocksStore({})", self.path.display())
    }
}

fn options(create: bool, cache_bytes: usize) -> rocksdb::Options {
    let mut o = rocksdb::Options::default();
    o.create_if_missing(create);
    o.create_missing_column_families(create);
    // Bounded, so the daemon's file descriptors can be budgeted (see node::RESERVED_FDS).
    o.set_max_open_files(MAX_OPEN_FILES);
    // Memory bounded by the budget: half for the block cache (index and filter blocks
    // included), half for the write buffers of all column families together.
    let budget = cache_bytes.max(MIN_CACHE_BYTES);
    let mut table = rocksdb::BlockBasedOptions::default();
    table.set_block_cache(&rocksdb::Cache::new_lru_cache(budget / 2));
    table.set_cache_index_and_filter_blocks(true);
    // Most lookups of a new record's hash miss: a bloom filter answers them without reading
    // a block.
    table.set_bloom_filter(10.0, false);
    o.set_block_based_table_factory(&table);
    o.set_db_write_buffer_size(budget / 2);
    o.set_write_buffer_size((budget / 8).min(16 << 20));
    o.set_max_write_buffer_number(2);
    o
}

/// Files RocksDB keeps open at most.
pub const MAX_OPEN_FILES: i32 = 256;

fn db_err(path: &Path) -> impl FnOnce(rocksdb::Error) -> StoreError + '_ {
    |source| StoreError::Db {
        path: path.to_path_buf(),
        message: source.to_string(),
    }
}

impl RocksStore {
    fn open_db(
        path: &Path,
        create: bool,
        read_only: bool,
        cache_bytes: usize,
    ) -> Result<rocksdb::DB, StoreError> {
        let names = Cf::ALL.map(Cf::name);
        let db = if read_only {
            // Only the families the store has (an older layout lacks some; reads of those
            // find nothing). Every table file is opened now, not when first read: a writer
            // (the daemon) compacting meanwhile deletes files this reader's view still names,
            // and an open file stays readable once deleted (its disk space comes back when
            // the reader closes).
            let mut o = options(false, cache_bytes);
            o.set_max_open_files(-1);
            let have = rocksdb::DB::list_cf(&o, path).unwrap_or_default();
            let names: Vec<_> = names
                .into_iter()
                .filter(|n| have.iter().any(|h| h == n))
                .collect();
            // A file the writer deletes between this reader reading the list of files and
            // opening them fails the open: the list is read again.
            let mut tries = 0;
            loop {
                tries += 1;
                match rocksdb::DB::open_cf_for_read_only(&o, path, &names, false) {
                    Err(e) if tries < 5 && e.kind() == rocksdb::ErrorKind::IOError => {
                        std::thread::sleep(std::time::Duration::from_millis(20));
                    }
                    other => break other,
                }
            }
        } else {
            // A store of an older layout gains the families it lacks.
            let mut o = options(create, cache_bytes);
            o.create_missing_column_families(true);
            rocksdb::DB::open_cf(&o, path, names)
        };
        db.map_err(|source| {
            if is_lock_error(source.as_ref()) {
                StoreError::Locked(path.to_path_buf())
            } else {
                StoreError::Db {
                    path: path.to_path_buf(),
                    message: source.to_string(),
                }
            }
        })
    }

    /// Creates a new, empty store for `cod` at `path` (which must not hold one).
    pub fn create(path: &Path, cod: &CodId) -> Result<Self, StoreError> {
        if path.join("CURRENT").exists() {
            return Err(StoreError::Exists(path.to_path_buf()));
        }
        let store = Self::writer(Self::open_db(path, true, false, DEFAULT_CACHE_BYTES)?, path);
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

    /// Opens the store of `cod` at `path`, refusing another cod's or another schema's. Only
    /// one process at a time may (RocksDB's lock): see [`RocksStore::open_read_only`].
    pub fn open(path: &Path, cod: &CodId) -> Result<Self, StoreError> {
        Self::open_as(path, cod, false, DEFAULT_CACHE_BYTES)
    }

    /// [`RocksStore::open`] with a memory budget for RocksDB (see [`DEFAULT_CACHE_BYTES`]).
    pub fn open_with_cache(
        path: &Path,
        cod: &CodId,
        cache_bytes: usize,
    ) -> Result<Self, StoreError> {
        Self::open_as(path, cod, false, cache_bytes)
    }

    /// Opens the store to read only: takes no lock, so it never keeps a daemon from starting,
    /// and sees the store as it was when opened. Writes fail. It holds every table file open
    /// (a writer's compactions delete them), so the process needs a descriptor per file.
    pub fn open_read_only(path: &Path, cod: &CodId) -> Result<Self, StoreError> {
        Self::open_as(path, cod, true, DEFAULT_CACHE_BYTES)
    }

    fn open_as(
        path: &Path,
        cod: &CodId,
        read_only: bool,
        cache_bytes: usize,
    ) -> Result<Self, StoreError> {
        if !path.join("CURRENT").exists() {
            return Err(StoreError::Missing(path.to_path_buf()));
        }
        if !read_only {
            remove_stale_scratch(path);
        }
        let store = Self::writer(Self::open_db(path, false, read_only, cache_bytes)?, path);
        let get = |k: &[u8]| -> Result<String, StoreError> {
            Ok(store
                .get(Cf::Meta, k)?
                .map(|v| String::from_utf8_lossy(&v).into_owned())
                .unwrap_or_default())
        };
        let schema = get(b"schema")?;
        let known = std::iter::once(&SCHEMA_VERSION)
            .chain(SCHEMA_UPGRADABLE)
            .any(|v| v.to_string() == schema);
        if !known {
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

    fn writer(db: rocksdb::DB, path: &Path) -> Self {
        Self {
            snap: None,
            db: Arc::new(db),
            path: path.to_path_buf(),
            durable: true,
            scratch_dir: None,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A column family; only a store of an older layout opened read-only lacks some, and
    /// reads of those find nothing.
    fn has(&self, cf: Cf) -> Option<&rocksdb::ColumnFamily> {
        self.db.cf_handle(cf.name())
    }

    fn iter(
        &self,
        h: &rocksdb::ColumnFamily,
        from: &[u8],
    ) -> rocksdb::DBIteratorWithThreadMode<'_, rocksdb::DB> {
        let mode = rocksdb::IteratorMode::From(from, rocksdb::Direction::Forward);
        match &self.snap {
            Some(snap) => snap.iterator_cf(h, mode),
            None => self.db.iterator_cf(h, mode),
        }
    }
}

impl KvStore for RocksStore {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(h) = self.has(cf) else {
            return Ok(None);
        };
        match &self.snap {
            Some(snap) => snap.get_cf(h, key),
            None => self.db.get_cf(h, key),
        }
        .map_err(db_err(&self.path))
    }

    fn scan(&self, cf: Cf, prefix: &[u8]) -> Result<Vec<Entry>, StoreError> {
        let Some(h) = self.has(cf) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for item in self.iter(h, prefix) {
            let (k, v) = item.map_err(db_err(&self.path))?;
            if !k.starts_with(prefix) {
                break;
            }
            out.push((k.into_vec(), v.into_vec()));
        }
        Ok(out)
    }

    fn range(
        &self,
        cf: Cf,
        from: std::ops::Bound<&[u8]>,
        to: std::ops::Bound<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        use std::ops::Bound::*;
        let start = match from {
            Included(k) | Excluded(k) => k,
            Unbounded => &[],
        };
        let mut out = Vec::new();
        let Some(h) = self.has(cf) else {
            return Ok(Vec::new());
        };
        for item in self.iter(h, start) {
            if out.len() >= limit {
                break;
            }
            let (k, v) = item.map_err(db_err(&self.path))?;
            if matches!(from, Excluded(s) if *k == *s) {
                continue;
            }
            match to {
                Included(e) if *k > *e => break,
                Excluded(e) if *k >= *e => break,
                _ => {}
            }
            out.push((k.into_vec(), v.into_vec()));
        }
        Ok(out)
    }

    fn snapshot(&self) -> Arc<dyn KvStore> {
        let snap = self.snap.clone().unwrap_or_else(|| {
            let snap = self.db.snapshot();
            // SAFETY: the snapshot borrows the database, which lives behind an `Arc` (its
            // address never moves) that every store holding the snapshot keeps, and whose
            // field order drops the snapshot first; so the database outlives every use of
            // the borrow.
            let snap: rocksdb::SnapshotWithThreadMode<'static, rocksdb::DB> =
                unsafe { std::mem::transmute(snap) };
            Arc::new(snap)
        });
        Arc::new(RocksStore {
            snap: Some(snap),
            db: self.db.clone(),
            path: self.path.clone(),
            durable: self.durable,
            scratch_dir: self.scratch_dir.clone(),
        })
    }

    /// A database in a new directory beside this one, `NAME.scratch.PID.RANDOM`, removed
    /// when the last handle is dropped (or, after a crash, by the next [`RocksStore::open`]
    /// once that process is gone).
    fn scratch(&self) -> Result<Arc<dyn KvStore>, StoreError> {
        let (parent, name) = scratch_place(&self.path);
        let dir = tempfile::Builder::new()
            .prefix(&format!("{name}.scratch.{}.", std::process::id()))
            .tempdir_in(parent)
            .map_err(|e| StoreError::Db {
                path: parent.to_path_buf(),
                message: format!("cannot make a scratch store here: {e}"),
            })?;
        let db = Self::open_db(dir.path(), true, false, DEFAULT_CACHE_BYTES)?;
        Ok(Arc::new(RocksStore {
            snap: None,
            db: Arc::new(db),
            path: dir.path().to_path_buf(),
            durable: false,
            scratch_dir: Some(Arc::new(dir)),
        }))
    }

    fn write(&self, ops: Vec<Op>) -> Result<(), StoreError> {
        if self.snap.is_some() {
            return Err(StoreError::ReadOnly(self.path.clone()));
        }
        let cf = |cf: Cf| {
            self.db
                .cf_handle(cf.name())
                .expect("a store opened for writing has every column family")
        };
        let mut batch = rocksdb::WriteBatch::default();
        for op in ops {
            match op {
                Op::Put(c, k, v) => batch.put_cf(cf(c), k, v),
                Op::Delete(c, k) => batch.delete_cf(cf(c), k),
                // Keys are at most 72 bytes, so this range covers the whole family.
                Op::Clear(c) => {
                    batch.delete_range_cf(cf(c), [].as_slice(), [0xffu8; 80].as_slice())
                }
            }
        }
        let mut o = rocksdb::WriteOptions::default();
        o.set_sync(self.durable);
        o.disable_wal(!self.durable);
        self.db.write_opt(batch, &o).map_err(db_err(&self.path))
    }
}

/// The directory a store's scratch stores go in, and the name they begin with.
fn scratch_place(path: &Path) -> (&Path, String) {
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map_or("store".into(), |n| n.to_string_lossy().into_owned());
    (parent, name)
}

/// Removes the scratch stores beside `path` that a process now gone left (it crashed
/// while recomputing).
fn remove_stale_scratch(path: &Path) {
    if !Path::new("/proc/self").exists() {
        return; // (no way to tell a live process's here)
    }
    let (parent, name) = scratch_place(path);
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    let prefix = format!("{name}.scratch.");
    for e in entries.flatten() {
        let file = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = file.strip_prefix(&prefix) else {
            continue;
        };
        let pid = rest.split('.').next().and_then(|p| p.parse::<u32>().ok());
        let alive = pid.is_some_and(|p| Path::new(&format!("/proc/{p}")).exists());
        if !alive {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// Is this RocksDB error the lock file held by another process? (Its message names the
/// LOCK file; other errors may well contain "lock", as in "block checksum mismatch".)
fn is_lock_error(message: &str) -> bool {
    message.contains("While lock file") || message.contains("lock hold by current process")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::exercise;

    #[test]
    fn only_the_lock_file_means_in_use() {
        assert!(is_lock_error(
            "IO error: While lock file: /n/store/LOCK: Resource temporarily unavailable"
        ));
        assert!(is_lock_error(
            "IO error: lock hold by current process, acquire time 1 acquiring thread 2: /n/store/LOCK: No locks available"
        ));
        for other in [
            "Corruption: block checksum mismatch: stored = 1, computed = 2 in /n/store/000012.sst offset 0 size 4",
            "IO error: No such file or directory: While opening a file for sequentially reading: /n/store/MANIFEST-000005",
            "Invalid argument: Column family not found: blocks",
        ] {
            assert!(!is_lock_error(other), "{other}");
        }
    }

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
        s.write(vec![Op::Put(Cf::State, b"k".to_vec(), b"v".to_vec())])
            .unwrap();
        // A reader takes no lock: the writer keeps the store, and a writer can come while
        // a reader has it open.
        let r = RocksStore::open_read_only(&p, &a).unwrap();
        assert_eq!(r.get(Cf::State, b"k").unwrap(), Some(b"v".to_vec()));
        assert!(r.write(vec![Op::Delete(Cf::State, b"k".to_vec())]).is_err());
        drop(s);
        let w = RocksStore::open(&p, &a).unwrap();
        drop((w, r));
        let err = RocksStore::open(&p, &b).unwrap_err();
        assert!(matches!(err, StoreError::WrongCod { .. }), "{err}");
    }

    #[test]
    fn a_reader_outlives_the_compactions_of_a_writer() {
        use std::ops::Bound::Unbounded;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("store");
        let cod: CodId = "0123456789abcdef0123456789abcdef01234567".parse().unwrap();
        let w = RocksStore::create(&p, &cod).unwrap();
        // More table files than RocksDB opens when a database opens (16): three flushes in
        // each family, short of the four that start a compaction, each over the same keys (a
        // compaction then rewrites them all, rather than moving them down as they are).
        let key = |cf: Cf, i: u32| [vec![cf as u8], i.to_be_bytes().to_vec()].concat();
        for round in 0..3u8 {
            for cf in Cf::ALL {
                let puts = (0..50)
                    .map(|i| Op::Put(cf, key(cf, i), vec![round; 100]))
                    .collect();
                w.write(puts).unwrap();
                w.db.flush_cf(w.has(cf).unwrap()).unwrap();
            }
        }
        let tables = || -> std::collections::BTreeSet<_> {
            std::fs::read_dir(&p)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .filter(|n| n.to_string_lossy().ends_with(".sst"))
                .collect()
        };
        let before = tables();
        assert!(before.len() > 16, "{} table files", before.len());
        let r = RocksStore::open_read_only(&p, &cod).unwrap();
        for cf in Cf::ALL {
            w.db.compact_range_cf(w.has(cf).unwrap(), None::<&[u8]>, None::<&[u8]>);
        }
        assert!(
            tables().is_disjoint(&before),
            "the writer deleted every file the reader's view names"
        );
        for cf in Cf::ALL {
            for i in 0..50 {
                assert_eq!(r.get(cf, &key(cf, i)).unwrap(), Some(vec![2; 100]));
            }
            let all = r.range(cf, Unbounded, Unbounded, usize::MAX).unwrap();
            let ours = all.iter().filter(|(k, _)| k[0] == cf as u8).count();
            assert_eq!(ours, 50, "{}", cf.name());
        }
    }

    #[test]
    fn rocksdb_behaves_like_every_store() {
        let dir = tempfile::tempdir().unwrap();
        let cod: CodId = "0123456789abcdef0123456789abcdef01234567".parse().unwrap();
        let store = RocksStore::create(&dir.path().join("s"), &cod).unwrap();
        exercise(&store);
        // Scratch stores go when dropped; one a dead process left goes at the next open.
        let scratch = store.scratch().unwrap();
        let place = |p: &Path| p.parent().unwrap().read_dir().unwrap().count();
        assert_eq!(place(&dir.path().join("s")), 2);
        drop(scratch);
        assert_eq!(place(&dir.path().join("s")), 1);
        drop(store);
        let stale = dir.path().join(format!("s.scratch.{}.x", u32::MAX));
        std::fs::create_dir(&stale).unwrap();
        let ours = dir
            .path()
            .join(format!("s.scratch.{}.y", std::process::id()));
        std::fs::create_dir(&ours).unwrap();
        drop(RocksStore::open(&dir.path().join("s"), &cod).unwrap());
        assert!(!stale.exists(), "a dead process's scratch is removed");
        assert!(ours.exists(), "a live process's scratch is kept");
    }
}
