//! An in-memory [`KvStore`] for tests: the same semantics as RocksDB, nothing on disk.

use super::{Cf, Entry, KvStore, Op, Snapshot, StoreError};
use crate::lock::Locked;
use std::sync::Mutex;

#[derive(Default, Debug)]
pub struct MemStore {
    data: Mutex<Snapshot>,
    /// A snapshot: writes fail.
    frozen: bool,
}

fn scan_in(data: &Snapshot, cf: Cf, prefix: &[u8]) -> Vec<Entry> {
    data.range((cf, prefix.to_vec())..)
        .take_while(|((c, k), _)| *c == cf && k.starts_with(prefix))
        .map(|((_, k), v)| (k.clone(), v.clone()))
        .collect()
}

impl KvStore for MemStore {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.data.locked().get(&(cf, key.to_vec())).cloned())
    }

    fn scan(&self, cf: Cf, prefix: &[u8]) -> Result<Vec<Entry>, StoreError> {
        Ok(scan_in(&self.data.locked(), cf, prefix))
    }

    fn range(
        &self,
        cf: Cf,
        from: std::ops::Bound<&[u8]>,
        to: std::ops::Bound<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        if crate::ledger::db::is_empty_range(from, to) {
            return Ok(Vec::new());
        }
        let key = |b: std::ops::Bound<&[u8]>| b.map(|k| (cf, k.to_vec()));
        let lo = match from {
            std::ops::Bound::Unbounded => std::ops::Bound::Included((cf, Vec::new())),
            b => key(b),
        };
        Ok(self
            .data
            .locked()
            .range((lo, key(to)))
            .take_while(|((c, _), _)| *c == cf)
            .take(limit)
            .map(|((_, k), v)| (k.clone(), v.clone()))
            .collect())
    }

    fn snapshot(&self) -> std::sync::Arc<dyn KvStore> {
        std::sync::Arc::new(MemStore {
            data: Mutex::new(self.data.locked().clone()),
            frozen: true,
        })
    }

    fn scratch(&self) -> Result<std::sync::Arc<dyn KvStore>, StoreError> {
        Ok(std::sync::Arc::new(MemStore::default()))
    }

    fn write(&self, ops: Vec<Op>) -> Result<(), StoreError> {
        if self.frozen {
            return Err(StoreError::ReadOnly("memory".into()));
        }
        let mut data = self.data.locked();
        for op in ops {
            match op {
                Op::Put(cf, k, v) => {
                    data.insert((cf, k), v);
                }
                Op::Delete(cf, k) => {
                    data.remove(&(cf, k));
                }
                Op::Clear(cf) => data.retain(|(c, _), _| *c != cf),
            }
        }
        Ok(())
    }
}
