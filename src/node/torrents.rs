//! The chain as torrents found through the DHT (issue 16; the rules are [`crate::torrents`],
//! the format `docs/formats.md`): so the chain outlives every node that holds it, with no
//! setup. Every `[archive] torrent_interval` in which records were applied (or an hour
//! closed), the node writes its applied records as segments — identical on every node that
//! holds the same records, so all of them seed the same swarms — and an index listing them,
//! seeds them on its API port, announces their infohashes on the DHT, and puts a BEP 44 item
//! naming the index under a key derived from the ledger id, with a `seq` that grows with the
//! records the index lists (then with the closed hours), so an index never replaces a fuller
//! one. Any BitTorrent client can seed the files (`cod chain torrents --out DIR` writes them
//! and their `.torrent` files). A node that tells no address only restores.
//!
//! A node with no confirmed peer reads the item and, when it names more records than the node
//! holds, downloads the index and each segment it lacks from whoever seeds them, and imports
//! them — every record verified, as from any archive.

use super::Shared;
use crate::lock::Locked;
use crate::package::Info;
use crate::torrents::{self as t, Index, Item, Segment, Span};
use crate::views::{ItemSeen, TorrentFile, TorrentsView};
use futures::StreamExt;
use mainline::async_dht::AsyncDht;
use mainline::{Id, MutableItem, SigningKey};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Applied records read from the log at a time.
const PAGE: usize = 4096;
/// Seeders asked for one file, at most.
const MAX_SEEDERS: usize = 16;
/// How long a DHT lookup may go without an answer, and an announce or a put may take.
const DHT_SECS: u64 = 10;
/// Items kept from one lookup, at most.
const MAX_ITEMS: usize = 16;
/// While the node has no peer, it looks at the item at least this often (seconds).
const LONELY_SECS: u64 = 30;
/// A restore stops after this many segments in a row failed (an index is given up for good
/// when they were refused).
const MAX_FAILED: usize = 3;
/// A segment no seeder gave is asked for again after a round, then two, four… at most
/// after this long (seconds).
const MAX_RETRY_SECS: u64 = 600;
/// A download may take a minute plus its length at this rate (bytes a second).
const MIN_RATE: u64 = 64 * 1024;

/// A file this node wrote and seeds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Written {
    name: String,
    #[serde(with = "hex::serde")]
    infohash: [u8; 20],
    /// A segment's span, and the digest of the span's [`t::Tally`] when it was written
    /// (`None` and zeros for the index).
    span: Option<Span>,
    #[serde(with = "hex::serde")]
    digest: [u8; 32],
    records: u64,
    bytes: u64,
    path: PathBuf,
}

/// What the node published last (kept in `<data>/torrents/published.json`, so a restart
/// seeds at once and rewrites only what changed).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Published {
    segments: Vec<Written>,
    index: Option<Written>,
    /// The closed hours the segments were cut at.
    closed: u64,
}

impl Published {
    fn files(&self) -> impl Iterator<Item = &Written> {
        self.segments.iter().chain(&self.index)
    }

    fn records(&self) -> u64 {
        self.segments.iter().map(|s| s.records).sum()
    }
}

pub async fn run(shared: Arc<Shared>, port: u16) {
    if !shared.config.dht.enabled || !shared.config.torrents {
        return shared.shutdown.cancelled().await;
    }
    let mut started = shared.dht.subscribe();
    let dht = tokio::select! {
        d = async { started.wait_for(Option::is_some).await.map(|d| d.clone()) } => match d {
            Ok(Some(d)) => d,
            _ => return shared.shutdown.cancelled().await,
        },
        _ = shared.shutdown.cancelled() => return,
    };
    let mut node = Torrents::new(shared.clone(), dht, port);
    // A round may wait on seeders and the DHT for long: the node's stop ends it at once.
    tokio::select! {
        _ = async {
            node.resume().await;
            loop {
                node.round().await;
                let interval = shared.config.torrent_interval;
                let wait = if lonely(&shared) {
                    interval.min(LONELY_SECS)
                } else {
                    interval
                };
                let wait = Duration::from_secs(wait);
                if super::pause(&shared.shutdown, wait, None).await == super::Paused::Stopped {
                    return;
                }
            }
        } => {}
        _ = shared.shutdown.cancelled() => {}
    }
}

fn lonely(shared: &Shared) -> bool {
    shared.peers.locked().confirmed().is_empty()
}

struct Torrents {
    shared: Arc<Shared>,
    dht: AsyncDht,
    port: u16,
    key: SigningKey,
    dir: PathBuf,
    published: Published,
    /// The files of the publication before (still seeded: a download may be under way).
    previous: Published,
    /// (the sync digest of the applied heads, closed hours) when the segments were last
    /// written: either changes the segments.
    planned: Option<(String, u64)>,
    /// When the files were last announced and the item last put.
    announced: Option<Instant>,
    put: Option<Instant>,
    /// Segments downloaded and imported, by infohash (not downloaded again).
    restored: HashSet<[u8; 20]>,
    /// Indexes and segments whose contents were refused (forged or damaged: the item's key is
    /// anyone's), never downloaded again.
    refused: HashSet<[u8; 20]>,
    /// The index restored from last (by infohash): a node that goes on restoring does not
    /// download it again.
    last_index: Option<([u8; 20], Index)>,
    /// Segments no seeder gave: how often in a row, and when last. Not asked for again for
    /// a while, twice as long after each failure.
    failed: HashMap<[u8; 20], (u32, Instant)>,
}

impl Torrents {
    fn new(shared: Arc<Shared>, dht: AsyncDht, port: u16) -> Self {
        let key = SigningKey::from_bytes(&t::item_seed(&shared.params.cod));
        let dir = shared.dir.data_dir(&shared.config).join("torrents");
        {
            let mut v = shared.torrents.locked();
            let pk = key.verifying_key().to_bytes();
            *v = TorrentsView {
                enabled: true,
                ledger: shared.params.cod.to_string(),
                key: hex::encode(pk),
                salt: hex::encode(t::SALT),
                target: MutableItem::target_from_key(&pk, Some(t::SALT)).to_string(),
                ..TorrentsView::default()
            };
        }
        Self {
            shared,
            dht,
            port,
            key,
            dir,
            published: Published::default(),
            previous: Published::default(),
            planned: None,
            announced: None,
            put: None,
            restored: HashSet::new(),
            refused: HashSet::new(),
            failed: HashMap::new(),
            last_index: None,
        }
    }

    /// Seeds what the last run published, if its files are still there as written.
    async fn resume(&mut self) {
        let (s, dir) = (self.shared.clone(), self.dir.clone());
        let resumed = self
            .shared
            .tasks
            .spawn_blocking(move || -> Option<Published> {
                let bytes = std::fs::read(dir.join("published.json")).ok()?;
                let p: Published = serde_json::from_slice(&bytes).ok()?;
                let infos: Vec<(Info, PathBuf)> = p
                    .files()
                    .map(|w| {
                        let data = std::fs::read(&w.path).ok()?;
                        let info = Info::of(&w.name, &data, &mut |_| {});
                        (*info.infohash().as_bytes() == w.infohash).then(|| (info, w.path.clone()))
                    })
                    .collect::<Option<_>>()?;
                for (info, path) in infos {
                    s.library.offer_info(info, path);
                }
                Some(p)
            })
            .await;
        if let Ok(Some(p)) = resumed {
            self.published = p;
            self.show();
        }
    }

    async fn round(&mut self) {
        let seen = self.read_items().await;
        let applied = self.shared.view().state().applied_count() as u64;
        // The fullest item whose index was not refused: a vandal's cannot hide the others.
        let best = seen
            .iter()
            .find(|i| !self.refused.contains(&i.index))
            .cloned();
        if let Some(item) = &best
            && item.records > applied
            && lonely(&self.shared)
        {
            self.restore(item).await;
        }
        // A node that tells no address (`public_addr = none`) seeds nothing: it only restores.
        if !self.shared.info.addr.is_empty() {
            self.publish(seen.first()).await;
        }
    }

    /// Writes the segments anew if the applied records changed or an hour closed since, then
    /// announces them and puts the item, as they fall due.
    async fn publish(&mut self, seen: Option<&Item>) {
        let now = self.shared.now();
        let closed = t::closed_hours(now);
        let key = (
            super::api::summary_of(&self.shared.public_view()).digest,
            closed,
        );
        let mut fresh = false;
        if self.planned.as_ref() != Some(&key) {
            let (s, dir, old) = (
                self.shared.clone(),
                self.dir.clone(),
                self.published.clone(),
            );
            let written = self
                .shared
                .tasks
                .spawn_blocking(move || write(&s, &dir, &old, now))
                .await
                .map_err(TorrentError::from)
                .and_then(|r| r);
            match written {
                Ok(p) => {
                    fresh = p.index.as_ref().map(|w| w.infohash)
                        != self.published.index.as_ref().map(|w| w.infohash);
                    if fresh {
                        self.replace(p).await;
                    }
                    self.planned = Some(key);
                }
                Err(e) => self.shared.log("warn", format!("archive torrents: {e}")),
            }
        }
        let Some(index) = self.published.index.clone() else {
            return;
        };
        let every = Duration::from_secs(self.shared.config.dht.announce_interval);
        let due = |at: Option<Instant>| fresh || at.is_none_or(|t| t.elapsed() >= every);
        if due(self.announced) {
            let port = self.port;
            let announces = self.published.files().map(|w| {
                let (dht, ih) = (self.dht.clone(), w.infohash);
                async move {
                    let put = dht.announce_peer(Id::from(ih), Some(port));
                    match tokio::time::timeout(Duration::from_secs(DHT_SECS), put).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => tracing::debug!("announce {}: {e}", hex::encode(ih)),
                        Err(_) => tracing::debug!("announce {}: timed out", hex::encode(ih)),
                    }
                }
            });
            futures::future::join_all(announces).await;
            self.announced = Some(Instant::now());
        }
        let ours = Item {
            index: index.infohash,
            records: self.published.records(),
            closed: self.published.closed,
        };
        let Some(seq) = ours.seq() else {
            return;
        };
        if t::should_put(&ours, seen) && due(self.put) {
            let item = MutableItem::new(self.key.clone(), &ours.encode(), seq, Some(t::SALT));
            let put = self.dht.put_mutable(item, None);
            match tokio::time::timeout(Duration::from_secs(DHT_SECS), put).await {
                Ok(Ok(_)) => {
                    self.put = Some(Instant::now());
                    let mut v = self.shared.torrents.locked();
                    v.put_at = Some(now);
                    v.item = Some(seen_view(&ours));
                }
                Ok(Err(e)) => tracing::debug!("archive item put: {e}"),
                Err(_) => tracing::debug!("archive item put: timed out"),
            }
        }
    }

    /// Seeds `p` (its new files were offered as they were written) and, for now, the
    /// publication it replaces; stops seeding what came before that, and deletes every
    /// other file in the directory (left by a run that stopped, or a write that failed).
    async fn replace(&mut self, p: Published) {
        let keep: HashSet<[u8; 20]> = p
            .files()
            .chain(self.published.files())
            .map(|w| w.infohash)
            .collect();
        for w in self.previous.files() {
            if !keep.contains(&w.infohash) {
                self.shared.library.withdraw(&w.infohash);
            }
        }
        self.previous = std::mem::replace(&mut self.published, p);
        let (dir, json) = (
            self.dir.clone(),
            serde_json::to_vec_pretty(&self.published).expect("plain data"),
        );
        let cleaned = self
            .shared
            .tasks
            .spawn_blocking(move || -> Result<(), TorrentError> {
                crate::fsutil::write_atomic(&dir.join("published.json"), &json, 0o644, true)?;
                for entry in std::fs::read_dir(&dir)
                    .map_err(crate::fsutil::io_err(&dir))?
                    .flatten()
                {
                    let name = entry.file_name();
                    let ours = name
                        .to_str()
                        .and_then(|n| n.split_once('.'))
                        .and_then(|(stem, _)| <[u8; 20]>::try_from(hex::decode(stem).ok()?).ok())
                        .is_some_and(|ih| keep.contains(&ih));
                    if !ours && name != "published.json" {
                        let _ = std::fs::remove_file(entry.path());
                    }
                }
                Ok(())
            })
            .await;
        if let Ok(Err(e)) = cleaned {
            self.shared.log("warn", format!("archive torrents: {e}"));
        }
        self.show();
    }

    /// What `cod chain torrents` shows.
    fn show(&self) {
        let file = |w: &Written| TorrentFile {
            infohash: hex::encode(w.infohash),
            name: w.name.clone(),
            records: w.records,
            bytes: w.bytes,
            magnet: crate::package::torrent::magnet(
                &crate::ids::CodId::from_bytes(w.infohash),
                &w.name,
                Some(w.bytes),
            ),
            path: w.path.clone(),
        };
        let mut v = self.shared.torrents.locked();
        v.index = self.published.index.as_ref().map(file);
        v.segments = self.published.segments.iter().map(file).collect();
        v.restored = self.restored.len() as u64;
    }

    /// The well-formed items on the DHT, newest (highest `seq`) first. Others are ignored:
    /// the key is anyone's.
    async fn read_items(&mut self) -> Vec<Item> {
        let pk = self.key.verifying_key().to_bytes();
        let mut stream = self.dht.get_mutable(&pk, Some(t::SALT), None);
        let mut items: Vec<Item> = Vec::new();
        while let Ok(Some(m)) =
            tokio::time::timeout(Duration::from_secs(DHT_SECS), stream.next()).await
        {
            if let Some(item) = Item::decode(m.value(), m.seq())
                && !items.contains(&item)
                && items.len() < MAX_ITEMS
            {
                items.push(item);
            }
        }
        items.sort_by_key(|i| std::cmp::Reverse((i.seq(), i.encode())));
        if let Some(b) = items.first() {
            self.shared.torrents.locked().item = Some(seen_view(b));
        }
        items
    }

    /// Downloads the item's index and every segment it lists that this node lacks, and
    /// imports them, while the node has no peer. It stops after [`MAX_FAILED`] segments in a
    /// row failed (the next round goes on); an index that does not decode, or [`MAX_FAILED`]
    /// of whose segments in a row were refused, is given up for good.
    async fn restore(&mut self, item: &Item) {
        if self.refused.contains(&item.index) {
            return;
        }
        let ledger = self.shared.params.cod;
        let cached = match &self.last_index {
            Some((ih, index)) if *ih == item.index => Some(index.clone()),
            _ => None,
        };
        let known = cached.is_some();
        let fetched = match cached {
            Some(index) => Ok(Ok(index)),
            None => self
                .download(item.index, t::MAX_INDEX_BYTES)
                .await
                .map(|bytes| Index::decode(&bytes, &ledger)),
        };
        let index = match fetched {
            Ok(Ok(i)) => {
                self.last_index = Some((item.index, i.clone()));
                i
            }
            Ok(Err(e)) => {
                self.refused.insert(item.index);
                return self
                    .shared
                    .log("warn", format!("archive index refused: {e}"));
            }
            // (Asked again next round: a seeder may come.)
            Err(e) => {
                return self
                    .shared
                    .log("info", format!("archive index not downloaded: {e}"));
            }
        };
        if !known {
            self.shared.log(
                "info",
                format!(
                    "restoring from the archive torrents on the DHT: {} records in {} segments",
                    index.records(),
                    index.segments.len()
                ),
            );
        }
        let ours: HashSet<[u8; 20]> = self.published.segments.iter().map(|w| w.infohash).collect();
        let (mut refused_in_a_row, mut failed_in_a_row) = (0, 0);
        for seg in index.segments {
            let ih = seg.infohash;
            if self.restored.contains(&ih) || ours.contains(&ih) || self.backing_off(&ih) {
                continue;
            }
            if !lonely(&self.shared) {
                break; // a peer came: sync takes over
            }
            match self.restore_segment(&seg).await {
                Ok(true) => (refused_in_a_row, failed_in_a_row) = (0, 0),
                Ok(false) => {
                    self.refused.insert(ih);
                    refused_in_a_row += 1;
                    if refused_in_a_row == MAX_FAILED {
                        self.refused.insert(item.index);
                        self.shared.log(
                            "warn",
                            format!(
                                "archive index {} given up: its segments are refused",
                                hex::encode(item.index)
                            ),
                        );
                        break;
                    }
                }
                Err(e) => {
                    let tries = self.failed.get(&ih).map_or(0, |(n, _)| *n);
                    self.failed
                        .insert(ih, (tries.saturating_add(1), Instant::now()));
                    self.shared.log(
                        "info",
                        format!("archive segment {} not restored: {e}", seg.name),
                    );
                    failed_in_a_row += 1;
                    if failed_in_a_row == MAX_FAILED {
                        break;
                    }
                }
            }
        }
        self.show();
    }

    /// Was this segment refused, or did it fail to come (no seeder) lately?
    fn backing_off(&self, ih: &[u8; 20]) -> bool {
        let base = self.shared.config.torrent_interval.min(LONELY_SECS);
        self.refused.contains(ih)
            || self.failed.get(ih).is_some_and(|(tries, at)| {
                let wait = base.saturating_mul(1 << (tries - 1).min(10));
                at.elapsed() < Duration::from_secs(wait.min(MAX_RETRY_SECS))
            })
    }

    /// Downloads a segment and imports it: whether its records were taken (false: refused).
    async fn restore_segment(&mut self, seg: &Segment) -> Result<bool, TorrentError> {
        let bytes = self.download(seg.infohash, seg.bytes).await?;
        if bytes.len() as u64 != seg.bytes {
            return Ok(false);
        }
        let (s, name) = (self.shared.clone(), seg.name.clone());
        let taken = self
            .shared
            .tasks
            .spawn_blocking(move || {
                super::mirror::import(&s, &bytes, &format!("archive torrent {name}"))
            })
            .await?;
        if taken {
            self.restored.insert(seg.infohash);
        }
        Ok(taken)
    }

    /// Downloads a file by infohash from the seeders the DHT names (at most `max_len` bytes,
    /// within a minute plus the time its length takes at [`MIN_RATE`]).
    async fn download(&self, infohash: [u8; 20], max_len: u64) -> Result<Vec<u8>, TorrentError> {
        let mut peers: Vec<SocketAddr> = Vec::new();
        let mut stream = self.dht.get_peers(Id::from(infohash));
        while let Ok(Some(batch)) =
            tokio::time::timeout(Duration::from_secs(DHT_SECS), stream.next()).await
        {
            peers.extend(
                batch
                    .into_iter()
                    .filter(|a| !a.ip().is_unspecified() && a.port() != 0)
                    .map(SocketAddr::V4),
            );
            if peers.len() >= 4 * MAX_SEEDERS {
                break;
            }
        }
        peers.sort();
        peers.dedup();
        peers.retain(|p| !(p.ip().is_loopback() && p.port() == self.port));
        // At random: a DHT node that answers with made-up addresses cannot fill every slot.
        rand::seq::SliceRandom::shuffle(peers.as_mut_slice(), &mut rand::thread_rng());
        peers.truncate(MAX_SEEDERS);
        if peers.is_empty() {
            return Err(TorrentError::NoSeeder);
        }
        let deadline = Duration::from_secs(60 + max_len / MIN_RATE);
        let fetch = crate::seeder::fetch(&peers, infohash, max_len, &|_, _| {});
        match tokio::time::timeout(deadline, fetch).await {
            Ok(r) => Ok(r.map(|(_, bytes)| bytes)?),
            Err(_) => Err(TorrentError::Late(deadline.as_secs())),
        }
    }
}

fn seen_view(i: &Item) -> ItemSeen {
    ItemSeen {
        index: hex::encode(i.index),
        records: i.records,
    }
}

/// Writes the segments of the chain as it is now and their index into `dir` (blocking). A
/// first pass over the applied records tallies each span; a span whose tally is the one `old`
/// wrote is kept as it is, and only the records of the others are read again, sorted and
/// written — so memory holds the records of the spans that changed (usually the open one),
/// not the history.
fn write(
    shared: &Shared,
    dir: &Path,
    old: &Published,
    now: u64,
) -> Result<Published, TorrentError> {
    std::fs::create_dir_all(dir).map_err(crate::fsutil::io_err(dir))?;
    let view = shared.public_view(); // without own records on their stems
    let closed = t::closed_hours(now);
    let span = |r: &crate::ledger::Record| t::span_of(r.body().time, closed);
    let mut tallies: BTreeMap<Span, t::Tally> = BTreeMap::new();
    each_applied(&view, |r| {
        tallies.entry(span(r)).or_default().add(r.hash().as_bytes())
    });
    let mut kept: HashMap<Span, Vec<Written>> = HashMap::new();
    for (s, tally) in &tallies {
        let parts: Vec<Written> = old
            .segments
            .iter()
            .filter(|w| w.span == Some(*s))
            .cloned()
            .collect();
        if !parts.is_empty()
            && parts
                .iter()
                .all(|w| w.digest == tally.digest() && w.path.is_file())
        {
            kept.insert(*s, parts);
        }
    }
    type Key = (u64, crate::ids::AccountId, u64, crate::ids::RecordHash);
    let mut fresh: HashMap<Span, Vec<(Key, u64)>> = HashMap::new();
    if kept.len() < tallies.len() {
        each_applied(&view, |r| {
            let s = span(r);
            if !kept.contains_key(&s) {
                let b = r.body();
                let line = r.to_bytes().len() as u64 + 1;
                fresh
                    .entry(s)
                    .or_default()
                    .push(((b.time, b.account, b.seq, r.hash()), line));
            }
        });
    }
    let cod = shared.params.cod;
    let mut segments = Vec::new();
    for (s, tally) in &tallies {
        if let Some(parts) = kept.remove(s) {
            segments.extend(parts);
            continue;
        }
        let mut records = fresh.remove(s).unwrap_or_default();
        records.sort_unstable();
        let sizes: Vec<u64> = records.iter().map(|(_, size)| *size).collect();
        for (part, range) in t::parts(&sizes).into_iter().enumerate() {
            let mut out = crate::archive::Writer::new(Vec::new(), &cod)?;
            for ((.., h), _) in &records[range] {
                let r = view.record(h).ok_or(TorrentError::Missing(*h))?;
                out.push(&r.to_bytes())?;
            }
            let (bytes, n) = out.finish()?;
            let name = t::segment_name(&cod, *s, part);
            let mut w = store(&shared.library, dir, &name, &bytes, n as u64, "archive")?;
            (w.span, w.digest) = (Some(*s), tally.digest());
            segments.push(w);
        }
    }
    let index = Index {
        ledger: cod,
        segments: segments
            .iter()
            .map(|w| Segment {
                infohash: w.infohash,
                records: w.records,
                bytes: w.bytes,
                name: w.name.clone(),
            })
            .collect(),
    };
    let records = index.records();
    let index = store(
        &shared.library,
        dir,
        &t::index_name(&cod),
        &index.encode(),
        records,
        "index",
    )?;
    Ok(Published {
        segments,
        index: Some(index),
        closed,
    })
}

/// Calls `f` with every applied record of `view`, a page at a time.
fn each_applied(view: &crate::chain::View, mut f: impl FnMut(&crate::ledger::Record)) {
    let mut from = 0;
    loop {
        let page = view.log(from, PAGE);
        if page.is_empty() {
            return;
        }
        from += page.len();
        page.iter().for_each(|r| f(r));
    }
}

/// Why publishing or fetching the archive torrents failed (logged; the task goes on).
#[derive(Debug, thiserror::Error)]
enum TorrentError {
    #[error(transparent)]
    Fs(#[from] crate::fsutil::FsError),
    #[error("writing a segment: {0}")]
    Write(#[from] std::io::Error),
    #[error("record {0} went missing")]
    Missing(crate::ids::RecordHash),
    #[error("no seeder found on the DHT")]
    NoSeeder,
    #[error(transparent)]
    Fetch(#[from] crate::seeder::FetchError),
    #[error("not done within {0} s")]
    Late(u64),
    #[error("a blocking task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Writes `bytes` as `<dir>/<infohash>.<ext>` and offers it.
fn store(
    library: &crate::seeder::Library,
    dir: &Path,
    name: &str,
    bytes: &[u8],
    records: u64,
    ext: &str,
) -> Result<Written, TorrentError> {
    let info = Info::of(name, bytes, &mut |_| {});
    let infohash = *info.infohash().as_bytes();
    let path = dir.join(format!("{}.{ext}", hex::encode(infohash)));
    crate::fsutil::write_atomic(&path, bytes, 0o644, true)?;
    library.offer_info(info, path.clone());
    Ok(Written {
        name: name.to_string(),
        infohash,
        span: None,
        digest: [0; 32],
        records,
        bytes: bytes.len() as u64,
        path,
    })
}
