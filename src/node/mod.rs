//! The node daemon (`cod node run`): wires the store, the ledger, the REST API, discovery,
//! sync, mirrors and the control socket together, and owns their shutdown.
//!
//! Tasks share one [`Shared`]: the chain behind a mutex (held briefly; heavy work runs on
//! blocking threads), the peer table, an event broadcast (control subscribers, the TUI) and a
//! cancellation token. Shutdown (SIGTERM, SIGINT, `cod node stop`): the token is cancelled,
//! every task returns, the store is closed (RocksDB flushes), and the socket and pid file are
//! removed. A pid file or socket left by a crash is recognized (nothing answers) and replaced.

pub mod api;
mod control;
pub mod discovery;
mod git_mirror;
pub mod guard;
pub mod hooks;
mod http;
pub mod logfile;
mod metrics;
mod mirror;
pub mod peers;
pub mod signing;
mod stem;
pub mod supervisor;
mod sync;
mod torrents;

use crate::api::client::ApiClient;
use crate::chain::Chain;
use crate::clock::now_ms;
use crate::config::NodeConfig;
use crate::control::Event;
use crate::fsutil::FsError;
use crate::ids::{AccountId, RecordHash};
use crate::keyfile::Passphrase;
use crate::keys::SecretKey;
use crate::ledger::{Check, Outcome, Params, Record, RecordError};
use crate::lock::Locked;
use crate::nodedir::{NodeDir, NodeDirError};
use crate::store::StoreError;
use peers::PeerTable;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::sync::{Notify, broadcast, mpsc};
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    NodeDir(#[from] NodeDirError),
    #[error("a daemon is already running for this node (pid {0}); stop it with `cod node stop`")]
    AlreadyRunning(String),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("DHT: {0}")]
    Dht(std::io::Error),
    #[error(transparent)]
    TaskEnded(supervisor::Ended),
}

/// Everything the daemon's tasks share.
pub struct Shared {
    pub(crate) dir: NodeDir,
    pub(crate) config: NodeConfig,
    pub(crate) params: Params,
    pub(crate) key: SecretKey,
    pub(crate) node_id: AccountId,
    /// What peers know this node by, made fresh at this start (see [`crate::transport`]).
    pub(crate) transport: crate::transport::TransportKey,
    pub(crate) info: crate::api::Info,
    /// The writer: held while records are applied and committed, never to read.
    pub(crate) chain: Mutex<Chain>,
    /// What readers read: the chain as last committed (see [`crate::chain::View`]).
    pub(crate) views: crate::chain::Views,
    pub(crate) peers: Mutex<PeerTable>,
    pub(crate) events: broadcast::Sender<Event>,
    /// Records to push to every peer: those this node originated, and double-spend proofs.
    pub(crate) gossip: mpsc::UnboundedSender<RecordHash>,
    /// Wakes the mirror writer (records were applied).
    pub(crate) mirror_now: Notify,
    pub(crate) shutdown: CancellationToken,
    /// Where the node reads the time (see [`crate::clock`]).
    pub(crate) clock: Arc<dyn crate::clock::Clock>,
    /// The short tasks started on the node's behalf (a client's connection, a push, a check,
    /// blocking work on the chain): a stopping node waits for them (see
    /// [`NodeHandle::stopped`]), so its store is closed when it has stopped.
    pub(crate) tasks: tokio_util::task::TaskTracker,
    pub(crate) started: u64,
    /// Whether this node has compared its chain with a peer's since it started (a sync round
    /// that ended well): until then it signs nothing on its own (`signing::may_sign`).
    pub(crate) synced: std::sync::atomic::AtomicBool,
    /// node.ini `[signing] auto` as last (re)loaded (`cod config reload`).
    pub(crate) auto_sign: std::sync::atomic::AtomicBool,
    /// node.ini as last (re)loaded: what a reload compares with.
    pub(crate) loaded: Mutex<NodeConfig>,
    /// Held for the whole of a reload (see [`Shared::reload`]).
    reloading: Mutex<()>,
    pub(crate) api: ApiClient,
    /// The files this node seeds over the BitTorrent peer wire.
    pub(crate) library: Arc<crate::seeder::Library>,
    /// The infohashes of its package, com.ini and cod.ini (announced in the DHT).
    pub(crate) own_infohashes: [[u8; 20]; 3],
    /// Newer versions of this cod seen on nodes of the same deployer, by cod id.
    pub(crate) offers: Mutex<std::collections::BTreeMap<String, Offer>>,
    /// Signature requests for issuance and distribution, by record hash.
    pub(crate) requests: Mutex<crate::signature_requests::RequestBook>,
    /// What this node signed on the network chain (kept in [`SIGNED_FILE`]).
    pub(crate) signed: Mutex<crate::signature_requests::Signed>,
    /// Why this node could not compute the distribution it would propose, as last logged
    /// (said once, not every tick).
    pub(crate) settle_error: Mutex<Option<String>>,
    /// Signature requests whose refusal was logged, with the reason: a request peers offer
    /// again and again is logged once per reason.
    pub(crate) refusals_told: Mutex<Told>,
    /// By peer address: the proofs summaries (this node's and the peer's) this node last sent
    /// its double-spend proofs for ([`sync::proofs_to_send`]).
    pub(crate) proofs_sent: Mutex<std::collections::BTreeMap<String, String>>,
    /// Who may connect to the public port, and how much (bans, scores, per-address caps).
    pub(crate) guard: Mutex<guard::Guard>,
    /// Permits for API work that checks signatures (see `api::HEAVY_AT_ONCE`).
    pub(crate) heavy: tokio::sync::Semaphore,
    /// The node's DHT client, once the DHT task has started it (the archive torrents use it).
    pub(crate) dht: tokio::sync::watch::Sender<Option<mainline::async_dht::AsyncDht>>,
    /// What the archive torrents task seeds and saw (`cod chain torrents`).
    pub(crate) torrents: Mutex<crate::views::TorrentsView>,
    /// The epoch's stem routes and the records on stems held here (see [`stem`]).
    pub(crate) stem: Mutex<crate::stem::Stem>,
    /// Wakes the stem task (the book's deadlines changed).
    pub(crate) stem_wake: Notify,
    /// What peers read while records made here are on their stems, and since when.
    pub(crate) public: Mutex<Option<(crate::chain::View, std::time::Instant)>>,
    /// Records being made here now (see [`Shared::hide_from_peers`]).
    pub(crate) making: std::sync::atomic::AtomicUsize,
    /// Records made here waiting to leave along their stem (the stem task sends them).
    pub(crate) own_queue: Mutex<Vec<Record>>,
    /// Signature requests this node proposed or signed, held back from its own resends until
    /// they come back from a peer (see `signing::send_own`).
    pub(crate) held_back: Mutex<std::collections::BTreeMap<RecordHash, signing::HeldBack>>,
    /// Discoveries that have not finished a first round yet (see [`Shared::alone`]).
    pub(crate) discovering: std::sync::atomic::AtomicUsize,
}

/// Where an archive comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArchiveFrom {
    /// The operator's (`cod chain import`): taken as it is, as an import into a stopped
    /// node's store would be.
    Operator,
    /// A mirror's or an archive torrent's: held to this node's clock like any peer's
    /// records (`Checked::hold_ahead`).
    Network,
}

impl Shared {
    /// This node's account.
    pub fn node_id(&self) -> AccountId {
        self.node_id
    }

    /// What its peers know it by in this run (see [`crate::transport`]).
    pub fn peer_id(&self) -> crate::ids::PeerId {
        self.transport.peer_id()
    }

    /// The ledger's parameters (com.ini, the cod, the deployer's key).
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// The peers confirmed now.
    pub fn confirmed_peers(&self) -> Vec<peers::Peer> {
        self.peers.locked().confirmed()
    }

    /// The node's HTTP client (peers' APIs, HTTP mirrors).
    pub fn api(&self) -> &ApiClient {
        &self.api
    }

    /// The chain as last committed, to read: taken without waiting for the writer, and one
    /// moment however long it is read.
    pub fn view(&self) -> crate::chain::View {
        self.views.latest()
    }

    /// Runs `read` on the chain as last committed, off the async threads (a view reads the
    /// store).
    pub async fn read_view<T: Send + 'static>(
        &self,
        read: impl FnOnce(&crate::chain::View) -> T + Send + 'static,
    ) -> Result<T, tokio::task::JoinError> {
        let view = self.view();
        self.tasks.spawn_blocking(move || read(&view)).await
    }

    /// Runs `work` (a send to peers, say) beside the node's tasks, until it ends or the node
    /// stops: a stop does not wait for a peer that does not answer.
    pub(crate) fn spawn_until_stop(
        &self,
        work: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        let stop = self.shutdown.clone();
        self.tasks.spawn(async move {
            tokio::select! {
                _ = work => {}
                _ = stop.cancelled() => {}
            }
        });
    }

    /// Seconds since the Unix epoch, by the node's clock.
    pub fn now(&self) -> u64 {
        self.clock.now()
    }

    /// The chain, locked. If a thread panicked while holding it, the ledger in memory may be
    /// half-changed: it is rebuilt from the store (which only ever holds whole batches)
    /// before anyone reads it again.
    pub fn chain(&self) -> std::sync::MutexGuard<'_, Chain> {
        match self.chain.lock() {
            Ok(guard) => guard,
            Err(poisoned) => {
                let mut guard = poisoned.into_inner();
                self.chain.clear_poison();
                let outcome = guard.reload();
                tracing::warn!(
                    "a task panicked while holding the chain; reloaded it from the store: {outcome:?}"
                );
                guard
            }
        }
    }

    /// Imports an archive (blocking: call it off the async threads). Signatures are checked
    /// without the chain, and the chain is free between batches, so the node goes on
    /// serving meanwhile. On error, also what was applied before it.
    pub fn import_archive(
        &self,
        archive: impl std::io::Read + std::io::Seek + Send,
        from: ArchiveFrom,
    ) -> Result<crate::chain::ImportReport, (String, crate::chain::Applied)> {
        let verifier = self.chain().ledger().verifier();
        crate::chain::import_from(archive, &self.params.cod, verifier, |mut batch, report| {
            if from == ArchiveFrom::Network {
                batch.hold_ahead(self.now());
            }
            crate::chain::import_batch(&mut self.chain(), batch, report)
        })
    }

    /// `ip` misbehaved: its score rises, and a ban (when this causes one) is logged.
    pub fn offended(&self, ip: std::net::IpAddr, offense: guard::Offense) {
        let banned = self.guard.locked().offended(ip, offense, now_ms());
        if banned {
            self.log(
                "warn",
                format!(
                    "banned {} for {} minutes: misbehaved ({offense:?} last)",
                    guard::address(ip),
                    guard::BAN_MS / 60_000
                ),
            );
        }
    }

    /// Is the peer at `addr` (`host:port`) banned? Only numeric addresses can be.
    pub fn is_banned(&self, addr: &str) -> bool {
        addr.parse::<std::net::SocketAddr>()
            .is_ok_and(|a| self.guard.locked().is_banned(&a.ip(), now_ms()))
    }

    /// Whether this node signs, without asking, what the chain fully determines.
    pub fn auto_sign(&self) -> bool {
        self.auto_sign.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Reads node.ini again and takes what a running node can take (`cod config reload`,
    /// SIGHUP): `[signing] auto`, new `[peers] static` addresses, `[log] level`, `[archive]
    /// mirrors` (`config::node::LIVE_SETTINGS`). Names what changed and what waits for the
    /// next start.
    pub fn reload(&self) -> Result<crate::views::Reloaded, ReloadError> {
        // One reload at a time, reading the file under its lock: two at once (a SIGHUP and
        // `cod config reload`) cannot leave the older file's settings in force. (`loaded`
        // itself is held only to compare and swap: the mirror task reads it.)
        let _one = self.reloading.locked();
        let new = self.dir.node_config()?;
        let (live, _) = crate::config::node::changed(&self.loaded.locked(), &new);
        let (_, restart) = crate::config::node::changed(&self.config, &new);
        if live.contains(&"log.level") {
            logfile::set_level(&new.log.level)?;
        }
        self.auto_sign
            .store(new.auto_sign, std::sync::atomic::Ordering::SeqCst);
        {
            let mut table = self.peers.locked();
            for addr in &new.peers.static_peers {
                table.add_candidate(addr, peers::FoundVia::Static);
            }
        }
        *self.loaded.locked() = new;
        if live.contains(&"archive.mirrors") {
            self.mirror_now.notify_one();
        }
        let said = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let r = crate::views::Reloaded {
            applied: said(&live),
            at_next_start: said(&restart),
        };
        self.log(
            "info",
            format!(
                "node.ini reloaded: {} taken{}",
                if r.applied.is_empty() {
                    "nothing new".to_string()
                } else {
                    r.applied.join(", ")
                },
                if r.at_next_start.is_empty() {
                    String::new()
                } else {
                    format!("; {} at the next start", r.at_next_start.join(", "))
                }
            ),
        );
        Ok(r)
    }

    pub fn emit(&self, e: Event) {
        let _ = self.events.send(e);
    }

    pub fn log(&self, level: &str, message: impl Into<String>) {
        let message = message.into();
        match level {
            "warn" => tracing::warn!("{message}"),
            _ => tracing::info!("{message}"),
        }
        self.emit(Event::Log {
            level: level.into(),
            message,
            time: self.now(),
        });
    }

    /// Checks `records` on all cores, holding the chain only to take what that needs and
    /// then to store the results: API handlers and other syncs are not kept waiting for RSA.
    /// Blocking: call it from `spawn_blocking`.
    pub fn ingest(
        &self,
        records: Vec<Record>,
    ) -> Result<Vec<Result<Outcome, RecordError>>, StoreError> {
        self.stem_seen(&records);
        let mut verifier = self.chain().ledger().verifier_for(&records);
        let checked = verifier.check_at(records, self.now());
        self.ingest_checked(checked)
    }

    /// Stores records checked already (their signatures verified), counting them and those
    /// the rules refuse for `/metrics` — all but those dated too far after this node's clock,
    /// held back until it gets there (`Checked::hold_ahead`; every way a peer's records come
    /// in passes here, and a mirror's or torrent's archive is held back alike). Blocking.
    pub fn ingest_checked(
        &self,
        mut checked: crate::ledger::Checked,
    ) -> Result<Vec<Result<Outcome, RecordError>>, StoreError> {
        checked.hold_ahead(self.now());
        let ahead = checked
            .items()
            .iter()
            .filter(|(_, c)| matches!(c, Check::Refused(RecordError::Ahead { .. })))
            .count();
        if ahead > 0 {
            ::metrics::counter!("cod_records_held_ahead_total").increment(ahead as u64);
            tracing::debug!("held back {ahead} transfers dated too far after this node's clock");
        }
        ::metrics::counter!("cod_records_checked_total").increment(checked.items().len() as u64);
        let results = self.chain().ingest_checked(checked)?;
        let refused = results.iter().filter(|r| r.is_err()).count();
        ::metrics::counter!("cod_records_refused_total").increment(refused as u64);
        Ok(results)
    }

    /// Says, in the log and to subscribers, where an ingest met a double spend — which record
    /// holds the slot everywhere, and that the others change nothing — and which held records
    /// it dropped, and why.
    pub fn note_forks(&self, results: &[Result<Outcome, RecordError>]) {
        let slots: std::collections::BTreeSet<(AccountId, u64)> = results
            .iter()
            .flatten()
            .flat_map(|o| o.forks.iter().copied())
            .collect();
        for (account, seq) in slots {
            let (holder, proof) = {
                let l = self.view();
                let mut proof: Vec<RecordHash> = l.held_at(&account, seq).into_iter().collect();
                if proof.len() < 2 {
                    proof.clear(); // (no longer a fork: a rebuild dropped one)
                }
                let holder = l
                    .at(&account, seq)
                    .map_or("none yet".to_string(), |r| r.hash().short());
                (holder, proof)
            };
            // The proof goes to every peer, so each node holds it whatever it synced first
            // (sync serves applied records only); a node pushes a slot's proof once, when it
            // first sees the fork.
            for h in proof {
                let _ = self.gossip.send(h);
            }
            let whose = if account == self.node_id {
                "this node's account".to_string()
            } else {
                format!("account {}", account.short())
            };
            self.log(
                "warn",
                format!(
                    "double spend: {whose} signed two records for seq {seq}; record {holder} \
                     holds it on every node (the lowest hash), the other changes nothing and is \
                     kept as proof (`cod chain verify`)"
                ),
            );
        }
        // Records that were held and can never apply now (they waited for, or were built
        // on, what lost a fork or turned out invalid): the operator sees each go.
        for d in results.iter().flatten().flat_map(|o| &o.dropped) {
            let whose = if d.account == self.node_id {
                "this node's account".to_string()
            } else {
                format!("account {}", d.account.short())
            };
            self.log(
                "warn",
                format!(
                    "record {} ({whose}, seq {}) dropped: {}",
                    d.hash.short(),
                    d.seq,
                    d.error
                ),
            );
        }
    }

    /// Tells subscribers, mirrors and (for records made here) peers about applied records.
    pub fn announce_applied(&self, hashes: &[RecordHash], originated_here: bool) {
        if hashes.is_empty() {
            return;
        }
        ::metrics::counter!("cod_records_applied_total").increment(hashes.len() as u64);
        {
            let l = self.view();
            for h in hashes {
                if let Some(r) = l.record(h) {
                    self.emit(Event::Record(crate::views::RecentRecord::of(&r)));
                }
            }
            self.emit(sync_event(&l));
        }
        if originated_here {
            for h in hashes {
                let _ = self.gossip.send(*h);
            }
        }
        self.mirror_now.notify_one();
    }

    /// Announces what an import applied: each record, or — for an import too large to
    /// announce record by record — only the new totals.
    pub fn announce_imported(&self, applied: &crate::chain::Applied) {
        if applied.count > 0 && applied.announced().is_empty() {
            self.emit(sync_event(&self.view()));
            self.mirror_now.notify_one();
        } else {
            self.announce_applied(applied.announced(), true);
        }
    }
}

impl Shared {
    /// Sees to the records of this node's own account as it starts. A store holding
    /// nothing but them — the opening `cod deploy` wrote, and what the node made before it
    /// ever had a peer — has shown them to nobody: peers see an empty chain until they have
    /// gone out along a stem (they wait for a first relay, see
    /// [`crate::stem::Stem::own_until_relay`]), so the first peer does not learn them from
    /// their author. A store without the opening (a data directory outside the node
    /// directory starts empty) gets it now, the same way. (An account whose first key was
    /// replaced is not opened by its new key: its records come from its chain.) Blocking.
    fn open_account(self: &Arc<Self>) {
        let l = self.view();
        let own = l.state().account(&self.node_id).map_or(0, |a| a.next_seq());
        if own > 0 {
            let only_own = l.len() as u64 == own && own <= crate::stem::MAX_PER_MESSAGE as u64;
            if only_own && self.config.peers.stem {
                match crate::chain::View::empty(self.params.clone()) {
                    Ok(empty) => {
                        *self.public.locked() = Some((empty, std::time::Instant::now()));
                        let hashes: Vec<RecordHash> = l
                            .chain_of(&self.node_id, 0, own as usize)
                            .iter()
                            .map(|r| r.hash())
                            .collect();
                        self.originated_before_peers(&hashes);
                    }
                    Err(e) => self.log("warn", format!("cannot hide this node's records: {e}")),
                }
            }
            return;
        }
        if self.key.public().node_id(&self.params.cod) != self.node_id {
            return;
        }
        let hiding = self.hide_from_peers();
        let outcome = {
            let mut chain = self.chain();
            let open = chain.ledger().make_open(&self.key);
            chain.ingest(open)
        };
        match outcome {
            Ok(o) => {
                self.announce_applied(&o.applied, false);
                self.originated_before_peers(&o.applied);
            }
            Err(e) => self.log("warn", format!("could not open this node's account: {e}")),
        }
        drop(hiding);
    }
}

/// What a [`Told`] remembers, at most.
pub(crate) const MAX_TOLD: usize = 1024;

/// Things told already (a hook's events, a log line), newest last, at most [`MAX_TOLD`]:
/// each is told once while remembered.
#[derive(Default)]
pub(crate) struct Told {
    order: std::collections::VecDeque<String>,
    set: std::collections::HashSet<String>,
}

impl Told {
    /// Whether `key` is new (and remembers it).
    pub(crate) fn first(&mut self, key: String) -> bool {
        if !self.set.insert(key.clone()) {
            return false;
        }
        self.order.push_back(key);
        if self.order.len() > MAX_TOLD
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
        true
    }
}

/// Runs `round` at once and then again `period` after each round ends (rounds never
/// overlap), until the node stops; a stop also ends a round midway. The node's periodic
/// tasks — sync, peer checks, peer exchange, signature requests — all tick this way; those
/// that keep state from round to round (mirrors, torrents, the stem, discovery) loop over
/// [`pause`] themselves.
pub(crate) async fn every<F, Fut>(
    stop: &CancellationToken,
    period: std::time::Duration,
    mut round: F,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    loop {
        tokio::select! {
            _ = round() => {}
            _ = stop.cancelled() => return,
        }
        if pause(stop, period, None).await == Paused::Stopped {
            return;
        }
    }
}

/// How a periodic task's [`pause`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Paused {
    /// Its time was up.
    Elapsed,
    /// Something asked for a round now.
    Woken,
    /// The node stops: the task ends.
    Stopped,
}

/// The pause between two rounds of a periodic task: `period`, cut short when `wake` is
/// notified or the node stops.
pub(crate) async fn pause(
    stop: &CancellationToken,
    period: std::time::Duration,
    wake: Option<&tokio::sync::Notify>,
) -> Paused {
    let woken = async {
        match wake {
            Some(n) => n.notified().await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::time::sleep(period) => Paused::Elapsed,
        _ = woken => Paused::Woken,
        _ = stop.cancelled() => Paused::Stopped,
    }
}

/// An `accept`'s outcome: the connection, or — when it failed (out of file descriptors,
/// say) — `None` after a pause, so the loop does not spin: 10 ms after the first failure in
/// a row (which is logged), doubling to a second.
pub(crate) async fn accepted<T>(
    shared: &Shared,
    what: &str,
    failures: &mut u32,
    result: std::io::Result<T>,
) -> Option<T> {
    match result {
        Ok(c) => {
            *failures = 0;
            Some(c)
        }
        Err(e) => {
            *failures = failures.saturating_add(1);
            if *failures == 1 {
                shared.log("warn", format!("{what}: cannot accept: {e}"));
            }
            let ms = (10u64 << (*failures).min(7)).min(1000);
            tokio::select! {
                _ = tokio::time::sleep(std::time::Duration::from_millis(ms)) => {}
                _ = shared.shutdown.cancelled() => {}
            }
            None
        }
    }
}

/// The chain's sync state as an event: records held and applied, and what waits for what.
/// Why this node's key cannot sign for its account, if so: its chain says the account moved
/// to another key (`cod key rekey`, perhaps on another machine, or interrupted here).
/// Not fatal: the chain may yet bring the replacement that names this key.
pub fn key_not_in_force(shared: &Shared) -> Option<String> {
    let in_force = shared.view().key_of(&shared.node_id)?;
    if &in_force == shared.key.public() {
        return None;
    }
    let key_file = shared.dir.resolve(&shared.config.key);
    let next = crate::nodedir::pending_key_path(&key_file);
    Some(format!(
        "this node's key {} is not its account's key in force ({}), so its transfers are refused{}",
        shared.key.public().fingerprint().short(),
        in_force.fingerprint().short(),
        if next.exists() {
            format!(
                "; {} holds a replacement an interrupted `cod key rekey` left: stop the node, move it to {}, start again",
                next.display(),
                key_file.display()
            )
        } else {
            String::new()
        }
    ))
}

pub fn sync_event(l: &crate::ledger::Ledger) -> Event {
    let missing = l
        .pending()
        .flat_map(|(_, d)| d.iter().map(ToString::to_string))
        .take(20)
        .collect();
    Event::Sync {
        held: l.len(),
        applied: l.state().applied_count(),
        pending: l.pending().count(),
        missing,
    }
}

/// `cod upgrade check`: the newer versions of this cod seen on peers.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Offers {
    pub offers: Vec<Offer>,
}

/// A newer version of this cod, and the nodes that run (and seed) it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Offer {
    pub cod_id: String,
    pub cod_version: String,
    pub com_version: String,
    pub software_version: String,
    pub package: String,
    pub peers: std::collections::BTreeSet<String>,
    pub first_seen: u64,
}

impl Shared {
    /// Notes what another node runs: a newer version of this cod by the same deployer
    /// becomes an offer (reported once, as an event and in the log).
    pub fn note_version(&self, addr: &str, info: &crate::api::Info) {
        if info.deployer != self.info.deployer || info.cod_id == self.info.cod_id {
            return;
        }
        let (Ok(theirs), Ok(ours)) = (
            semver::Version::parse(&info.cod_version),
            semver::Version::parse(&self.info.cod_version),
        ) else {
            return;
        };
        if theirs <= ours {
            return;
        }
        let mut offers = self.offers.locked();
        if offers.len() >= 16 && !offers.contains_key(&info.cod_id) {
            return;
        }
        let new = !offers.contains_key(&info.cod_id);
        let o = offers.entry(info.cod_id.clone()).or_insert_with(|| Offer {
            cod_id: info.cod_id.clone(),
            cod_version: info.cod_version.clone(),
            com_version: info.com_version.clone(),
            software_version: info.software_version.clone(),
            package: info.package.clone(),
            peers: Default::default(),
            first_seen: self.now(),
        });
        if o.peers.len() < 32 {
            o.peers.insert(addr.to_string());
        }
        drop(offers);
        if new {
            self.log("info", format!("a newer version of this cod runs on {addr}: cod {} ({}); see `cod upgrade check`", info.cod_version, info.cod_id));
            self.emit(Event::Upgrade {
                cod_id: info.cod_id.clone(),
                cod_version: info.cod_version.clone(),
                peer: addr.to_string(),
            });
        }
    }
}

/// How `cod node run` gets the key's passphrase.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub passphrase: Passphrase,
    /// Read the passphrase from the first line of stdin (`cod node start` pipes it).
    pub passphrase_stdin: bool,
    /// Recompute the stored state from the records first (`cod node run --full`).
    pub full: bool,
}

fn io_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> NodeError + '_ {
    move |source| NodeError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Is another live daemon using this node? Removes a pid file or socket a crash left behind.
fn claim_runtime_files(dir: &NodeDir, config: &NodeConfig) -> Result<(), NodeError> {
    let pid_path = dir.pid_path(config);
    if let Ok(text) = std::fs::read_to_string(&pid_path) {
        let pid: i32 = text.trim().parse().unwrap_or(0);
        let alive = crate::nodedir::process_alive(pid);
        if alive && pid != std::process::id() as i32 {
            return Err(NodeError::AlreadyRunning(pid.to_string()));
        }
        std::fs::remove_file(&pid_path).map_err(io_err(&pid_path))?;
    }
    let socket = dir.socket_path(config);
    if socket.exists() {
        if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
            return Err(NodeError::AlreadyRunning("unknown".into()));
        }
        std::fs::remove_file(&socket).map_err(io_err(&socket))?;
    }
    Ok(())
}

/// glibc's allocator, tuned for a daemon whose memory strangers drive: buffers of 1 MiB and
/// more (request bodies, pages) are mapped and unmapped rather than kept in the heap once
/// freed (glibc otherwise raises that threshold as it goes), and two arenas serve all
/// threads, so a burst of large requests does not leave the node holding what it freed.
fn tune_allocator() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only sets allocator parameters; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Hands memory freed by a large, passing job (an import, a verify, an export: each reads
/// much of the history) back to the system, so the node's resident size is what it holds.
pub fn release_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only returns free heap memory to the system.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// File descriptors kept for everything but public connections: the store, the control
/// socket and its clients, the DHT, calls to peers, files served.
const RESERVED_FDS: u64 = 512;

/// Raises the soft limit on open files to the hard one; returns the soft limit in force.
pub(crate) fn raise_nofile_limit() -> u64 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => hard,
            Err(_) => soft,
        },
        Ok((soft, _)) => soft,
        Err(_) => 1024,
    }
}

/// Public connections that fit under a file-descriptor limit, leaving [`RESERVED_FDS`]
/// (and the control socket) served even when the public port is saturated.
fn connection_budget(nofile: u64) -> usize {
    nofile.saturating_sub(RESERVED_FDS).clamp(16, 1 << 20) as usize
}

/// The peers confirmed when the node last stopped, tried first when it starts again.
pub const PEERS_FILE: &str = "peers.json";
/// Longest `peers.json` read.
const MAX_PEERS_FILE_BYTES: u64 = 64 * 1024;

fn read_remembered(data_dir: &std::path::Path) -> Vec<String> {
    let mut bytes = Vec::new();
    match std::fs::File::open(data_dir.join(PEERS_FILE)) {
        Ok(f) => {
            let _ = std::io::Read::read_to_end(
                &mut std::io::Read::take(f, MAX_PEERS_FILE_BYTES),
                &mut bytes,
            );
        }
        Err(_) => return Vec::new(),
    }
    peers::parse_remembered(&bytes)
}

/// Writes the peers confirmed now (atomically), for the next start.
fn write_remembered(shared: &Shared) {
    let list = shared.peers.locked().to_remember();
    let path = shared.dir.data_dir(&shared.config).join(PEERS_FILE);
    let bytes = serde_json::to_vec_pretty(&list).expect("plain data");
    if let Err(e) = crate::fsutil::write_atomic(&path, &bytes, 0o600, true) {
        tracing::warn!("cannot remember the peers for the next start: {e}");
    }
}

/// Why `cod config reload` (or SIGHUP) left node.ini's settings as they were.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error(transparent)]
    Config(#[from] NodeDirError),
    #[error("[log] level: {0}")]
    LogLevel(#[from] logfile::LevelError),
}

/// What this node signed on the network chain, kept across restarts (see
/// [`crate::signature_requests::Signed`]).
pub const SIGNED_FILE: &str = "signed.json";
/// Its size at most (it holds at most `MAX_SIGNED_SEQS` seqs, a few records each).
const MAX_SIGNED_FILE_BYTES: usize = 8 << 20;

/// A node that cannot read what it signed must not sign again blindly: an unreadable file
/// stops the start (a missing one is a node that never signed).
fn read_signed(data_dir: &std::path::Path) -> Result<crate::signature_requests::Signed, NodeError> {
    let path = data_dir.join(SIGNED_FILE);
    match std::fs::read(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Default::default()),
        Err(e) => Err(io_err(&path)(e)),
        Ok(bytes) if bytes.len() > MAX_SIGNED_FILE_BYTES => {
            Err(io_err(&path)(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "larger than the node writes",
            )))
        }
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| io_err(&path)(std::io::Error::new(std::io::ErrorKind::InvalidData, e))),
    }
}

/// Writes what this node signed, durably, before its signature leaves; forgets the records
/// kept for promises it no longer holds (see [`SIGNED_RECORDS_DIR`]).
pub fn write_signed(shared: &Shared) -> Result<(), FsError> {
    let data_dir = shared.dir.data_dir(&shared.config);
    // (Written under the lock: a later write always holds the later notes.)
    let signed = shared.signed.locked();
    let bytes = serde_json::to_vec(&*signed).expect("plain data");
    crate::fsutil::write_atomic(&data_dir.join(SIGNED_FILE), &bytes, 0o600, true)?;
    let keep: std::collections::BTreeSet<String> =
        signed.signed_ids().map(|h| h.to_string()).collect();
    if let Ok(entries) = std::fs::read_dir(data_dir.join(SIGNED_RECORDS_DIR)) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if RecordHash::from_canonical(&name).is_ok() && !keep.contains(&name) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    Ok(())
}

/// The records this node signed on the network chain, one file each (named by its hash,
/// its canonical bytes), kept while `signed.json` holds a promise for it: a node that
/// restarts holds them again and offers them to its peers, whose answers carry the
/// rejections that free it of its promise — without them it would not sign again for the
/// seq until the promise ran out (found by the fault runs: signers killed while their
/// proposals were rejected stalled the period for an hour).
pub const SIGNED_RECORDS_DIR: &str = "signed";

/// Keeps `record`, which this node is about to sign (before `signed.json` notes it).
pub fn write_signed_record(shared: &Shared, record: &Record) -> Result<(), FsError> {
    let dir = shared.dir.data_dir(&shared.config).join(SIGNED_RECORDS_DIR);
    std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
        .create(&dir)
        .map_err(crate::fsutil::io_err(&dir))?;
    let path = dir.join(record.hash().to_string());
    crate::fsutil::write_atomic(&path, &record.to_bytes(), 0o600, true)
}

/// The kept records whose promise still holds at `now` (see [`SIGNED_RECORDS_DIR`]); one
/// unreadable, too large or not the record its name says is left out, with a warning.
pub fn read_signed_records(shared: &Shared, now: u64) -> Vec<Record> {
    let dir = shared.dir.data_dir(&shared.config).join(SIGNED_RECORDS_DIR);
    let ids: Vec<RecordHash> = shared.signed.locked().in_force(now).collect();
    ids.into_iter()
        .filter_map(|id| {
            let path = dir.join(id.to_string());
            let read = std::fs::metadata(&path)
                .and_then(|m| {
                    if m.len() > crate::ledger::record::MAX_RECORD_BYTES as u64 {
                        return Err(std::io::Error::other("larger than a record"));
                    }
                    std::fs::read(&path)
                })
                .map_err(|e| e.to_string())
                .and_then(|b| Record::from_bytes(&b).map_err(|e| e.to_string()))
                .and_then(|r| {
                    (r.hash() == id)
                        .then_some(r)
                        .ok_or_else(|| "it holds another record".to_string())
                });
            match read {
                Ok(r) => Some(r),
                // (A promise noted by a version that did not keep its record.)
                Err(_) if !path.exists() => None,
                Err(e) => {
                    tracing::warn!("{}: {e}", path.display());
                    None
                }
            }
        })
        .collect()
}

/// The operator's bans, kept across restarts (`cod peers ban`).
pub const BANS_FILE: &str = "bans.json";

fn read_bans(data_dir: &std::path::Path) -> Vec<(std::net::IpAddr, u64)> {
    std::fs::read(data_dir.join(BANS_FILE))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Writes the operator's bans in force (atomically).
pub fn write_bans(shared: &Shared) -> Result<(), FsError> {
    let bans = shared.guard.locked().manual_bans(now_ms());
    let path = shared.dir.data_dir(&shared.config).join(BANS_FILE);
    crate::fsutil::write_atomic(
        &path,
        &serde_json::to_vec_pretty(&bans).expect("plain data"),
        0o600,
        true,
    )
}

/// How long a starting daemon waits for a store another process holds.
const STORE_WAIT_SECS: u64 = 30;

/// Loads the chain, waiting while another process (a `cod` command that found no daemon and
/// opened the store itself) holds it: such commands are brief, and a daemon started by a
/// service manager should not fail for them.
fn load_chain_waiting(dir: &NodeDir, full: bool) -> Result<Chain, NodeError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(STORE_WAIT_SECS);
    let mut said = false;
    loop {
        match dir.load_chain(full) {
            Err(NodeDirError::Store(StoreError::Locked(path)))
                if std::time::Instant::now() < deadline =>
            {
                if !std::mem::replace(&mut said, true) {
                    tracing::warn!(
                        "{} is held by another cod process; waiting up to {STORE_WAIT_SECS} s",
                        path.display()
                    );
                }
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            other => return Ok(other?),
        }
    }
}

/// Runs the daemon in the foreground until it is told to stop (SIGTERM, SIGINT, `cod node
/// stop`) or one of its tasks fails: the process around a [`NodeHandle`] — the passphrase
/// from stdin, the allocator, the runtime, the signals.
pub fn run(dir: NodeDir, opts: RunOptions) -> Result<(), NodeError> {
    let config = dir.node_config()?;
    let data_dir = dir.data_dir(&config);
    // (Before the passphrase is asked for: a second daemon is refused at once.)
    claim_runtime_files(&dir, &config)?;

    let mut passphrase = opts.passphrase.clone();
    if opts.passphrase_stdin {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .map_err(io_err(std::path::Path::new("stdin")))?;
        passphrase.value = Some(pkcs8::der::zeroize::Zeroizing::new(
            line.trim_end_matches(['\r', '\n']).to_string(),
        ));
    }
    let key = dir.secret_key(&passphrase)?;
    tune_allocator();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(io_err(&data_dir))?;
    runtime.block_on(async move {
        // SIGHUP's default is to end the process: taken from the start, so that logrotate's
        // SIGHUP does not kill a node still starting (`--full` can take minutes).
        let _early_hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup());
        let node = NodeBuilder::new(dir, key).full(opts.full).start().await?;
        let signals = tokio::spawn(stop_on_signals(node.shared().clone()));
        let stopped = node.stopped().await;
        signals.abort();
        stopped
    })?;
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    Ok(())
}

/// Stops the node on SIGTERM or SIGINT; reopens its log file on SIGHUP.
async fn stop_on_signals(shared: Arc<Shared>) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        shared.log(
            "warn",
            "cannot watch SIGTERM, SIGINT and SIGHUP: stop the node with `cod node stop`",
        );
        return;
    };
    loop {
        tokio::select! {
            _ = term.recv() => shared.log("info", "SIGTERM: shutting down"),
            _ = int.recv() => shared.log("info", "SIGINT: shutting down"),
            _ = hup.recv() => {
                if logfile::reopen_installed() {
                    shared.log("info", "SIGHUP: log file reopened");
                }
                let s = shared.clone();
                let reloaded = tokio::task::spawn_blocking(move || s.reload()).await;
                if let Ok(Err(e)) = reloaded {
                    shared.log("warn", format!("SIGHUP: node.ini not reloaded: {e}"));
                }
                continue;
            }
            _ = shared.shutdown.cancelled() => {}
        }
        break;
    }
    shared.shutdown.cancel();
}

/// A node to start: its directory and key, and how to start it.
pub struct NodeBuilder {
    dir: NodeDir,
    key: SecretKey,
    full: bool,
    clock: Arc<dyn crate::clock::Clock>,
    discoveries: Vec<Arc<dyn discovery::Discovery>>,
}

impl NodeBuilder {
    /// The node deployed in `dir`, run with `key` (its account's key, or a key it moved to).
    pub fn new(dir: NodeDir, key: SecretKey) -> Self {
        Self {
            dir,
            key,
            full: false,
            clock: Arc::new(crate::clock::SystemClock),
            discoveries: Vec::new(),
        }
    }

    /// Finds peers through `d` too, beside what node.ini asks for (a
    /// [`discovery::Directory`] meshes nodes that run in one process).
    pub fn discovery(mut self, d: Arc<dyn discovery::Discovery>) -> Self {
        self.discoveries.push(d);
        self
    }

    /// Reads the time from `clock` (the system's by default): a test's
    /// [`crate::clock::ManualClock`] runs periods and expiries without waiting for them.
    pub fn clock(mut self, clock: Arc<dyn crate::clock::Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Recompute the stored state from the records first (`cod node run --full`).
    pub fn full(mut self, full: bool) -> Self {
        self.full = full;
        self
    }

    /// Opens the store (waiting up to 30 s while a brief `cod` command holds it), binds the
    /// API port and the control socket, and starts the node's tasks under a supervisor. Call
    /// it within a multi-threaded tokio runtime. The node runs until [`NodeHandle::stop`], a
    /// `stop` on its control socket, or a task's failure ([`NodeHandle::stopped`] says which).
    pub async fn start(self) -> Result<NodeHandle, NodeError> {
        let NodeBuilder {
            dir,
            key,
            full,
            clock,
            mut discoveries,
        } = self;
        let config = dir.node_config()?;
        let data_dir = dir.data_dir(&config);
        std::fs::create_dir_all(&data_dir).map_err(io_err(&data_dir))?;
        claim_runtime_files(&dir, &config)?;
        if full {
            tracing::info!("recomputing the stored state from the records (--full)");
        }
        let loading = dir.clone();
        let chain = tokio::task::spawn_blocking(move || load_chain_waiting(&loading, full))
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))?;
        let params = dir.params()?;
        // The account: its id derives from its opening key, which a `rekey` may have replaced.
        let node_id = dir.deployment.node_id;
        let mut limits = config.limits.clone();
        limits.connections = limits
            .connections
            .min(connection_budget(raise_nofile_limit()));
        let mut guard = guard::Guard::new(limits);
        for (ip, until) in read_bans(&data_dir) {
            guard.ban(ip, until, now_ms());
        }

        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| NodeError::Listen {
                addr: config.listen.to_string(),
                source,
            })?;
        let local = listener.local_addr().map_err(io_err(&data_dir))?;
        let metrics_listener = match config.metrics {
            Some(at) => Some(tokio::net::TcpListener::bind(at).await.map_err(|source| {
                NodeError::Listen {
                    addr: format!("{at} (node.ini [metrics] listen)"),
                    source,
                }
            })?),
            None => None,
        };
        let addr = config.public_addr.clone().unwrap_or_else(|| {
            if local.ip().is_unspecified() {
                format!("127.0.0.1:{}", local.port())
            } else {
                local.to_string()
            }
        });
        let cod_config = dir.cod_config()?;
        // The three files this node offers for as long as it runs.
        let library = crate::seeder::Library::default();
        let mut own_infohashes = [[0u8; 20]; 3];
        for (i, (name, path)) in [
            (dir.deployment.package.clone(), dir.package_path()),
            ("com.ini".to_string(), dir.root.join("package/com.ini")),
            ("cod.ini".to_string(), dir.root.join("package/cod.ini")),
        ]
        .into_iter()
        .enumerate()
        {
            own_infohashes[i] = library.offer(&name, path.clone()).map_err(io_err(&path))?;
        }
        let transport = crate::transport::TransportKey::generate();
        let info = crate::api::Info {
            cod_id: dir.deployment.cod_id.to_string(),
            peer_id: transport.peer_id().to_string(),
            software_version: env!("CARGO_PKG_VERSION").to_string(),
            com_version: params.com.version.to_string(),
            cod_version: cod_config.version.to_string(),
            addr: addr.clone(),
            time: 0,
            deployer: params.deployer.fingerprint().to_string(),
            package: dir.deployment.package.clone(),
            ledger: params.cod.to_string(),
            com: hex::encode(own_infohashes[1]),
        };
        let (events, _) = broadcast::channel(4096);
        let (gossip_tx, gossip_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            peers: Mutex::new({
                let mut table = PeerTable::new(config.peers.max);
                for addr in read_remembered(&data_dir) {
                    table.add_candidate(&addr, peers::FoundVia::Remembered);
                }
                table
            }),
            dir: dir.clone(),
            config: config.clone(),
            auto_sign: std::sync::atomic::AtomicBool::new(config.auto_sign),
            loaded: Mutex::new(config.clone()),
            reloading: Mutex::default(),
            params,
            key,
            node_id,
            transport,
            info,
            views: chain.views(),
            chain: Mutex::new(chain),
            events,
            gossip: gossip_tx,
            mirror_now: Notify::new(),
            shutdown: CancellationToken::new(),
            started: clock.now(),
            synced: std::sync::atomic::AtomicBool::new(false),
            clock,
            tasks: tokio_util::task::TaskTracker::new(),
            api: ApiClient::through(config.proxy.as_deref()),
            requests: Mutex::default(),
            signed: Mutex::new(read_signed(&data_dir)?),
            settle_error: Mutex::default(),
            refusals_told: Mutex::default(),
            proofs_sent: Mutex::default(),
            guard: Mutex::new(guard),
            heavy: tokio::sync::Semaphore::new(api::HEAVY_AT_ONCE),
            library: Arc::new(library),
            own_infohashes,
            offers: Mutex::new(std::collections::BTreeMap::new()),
            dht: tokio::sync::watch::Sender::new(None),
            torrents: Mutex::default(),
            stem: Mutex::default(),
            stem_wake: Notify::new(),
            public: Mutex::new(None),
            making: Default::default(),
            own_queue: Mutex::default(),
            held_back: Mutex::default(),
            // (Until discovery starts, which sets it.)
            discovering: std::sync::atomic::AtomicUsize::new(1),
        });

        let socket_path = dir.socket_path(&config);
        let control = control::bind(&socket_path)?;
        // Written before the control socket answers: `cod node stop` waits for this process
        // to end once the socket is gone.
        let pid_path = dir.pid_path(&config);
        crate::fsutil::write_atomic(
            &pid_path,
            format!("{}\n", std::process::id()).as_bytes(),
            0o644,
            true,
        )
        .map_err(|e| NodeError::Io {
            path: pid_path.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
        shared.log(
            "info",
            format!(
                "node {} of cod {} listening on {addr} (API), control socket {}",
                node_id,
                shared.params.cod,
                socket_path.display()
            ),
        );
        if let Some(warning) = key_not_in_force(&shared) {
            shared.log("warn", warning);
        }
        let s = shared.clone();
        tokio::task::spawn_blocking(move || {
            s.open_account();
            signing::restore(&s);
        })
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));

        let mut tasks = supervisor::Supervisor::new(shared.shutdown.clone());
        tasks.spawn("API", api::serve(shared.clone(), listener));
        tasks.spawn("control", control::serve(shared.clone(), control));
        discoveries.extend(discovery::configured(&config));
        discovery::spawn(&mut tasks, &shared, local.port(), discoveries);
        tasks.spawn("sync", sync::run(shared.clone()));
        tasks.spawn("gossip", sync::gossip(shared.clone(), gossip_rx));
        tasks.spawn("stem", stem::run(shared.clone()));
        tasks.spawn("mirror", mirror::run(shared.clone()));
        tasks.spawn(
            "archive torrents",
            torrents::run(shared.clone(), local.port()),
        );
        tasks.spawn("signing", signing::run(shared.clone()));
        tasks.spawn("hooks", hooks::run(shared.clone()));
        if let Some(listener) = metrics_listener {
            tasks.spawn("metrics", metrics::serve(shared.clone(), listener));
        }
        Ok(NodeHandle {
            running: tokio::spawn(tasks.run(std::time::Duration::from_secs(5))),
            shared,
            api_addr: local,
            socket_path,
            pid_path,
        })
    }
}

/// A running node.
pub struct NodeHandle {
    shared: Arc<Shared>,
    running: tokio::task::JoinHandle<Result<(), supervisor::Ended>>,
    api_addr: std::net::SocketAddr,
    socket_path: PathBuf,
    pid_path: PathBuf,
}

impl NodeHandle {
    /// What the node's tasks share (its chain, peers, events, its stop token).
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The address its API (and BitTorrent peer wire) listens on.
    pub fn api_addr(&self) -> std::net::SocketAddr {
        self.api_addr
    }

    /// Stops the node and waits until it has stopped (see [`NodeHandle::stopped`]).
    pub async fn stop(self) -> Result<(), NodeError> {
        self.shared.shutdown.cancel();
        self.stopped().await
    }

    /// Waits until the node stops — told to, or because one of its tasks ended (then that
    /// is the error, and logged). Its tasks are over then and its control socket is gone;
    /// the store closes as the handle goes (with the last request a client left running).
    pub async fn stopped(self) -> Result<(), NodeError> {
        let ended = self
            .running
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        if let Err(e) = &ended {
            self.shared.log("error", e.to_string());
        }
        // The short tasks end with the stop (or with what they are doing): until then they
        // hold the store.
        self.shared.tasks.close();
        let grace = std::time::Duration::from_secs(5);
        if tokio::time::timeout(grace, self.shared.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                "{} tasks still running 5 s after the stop; the store closes once they end",
                self.shared.tasks.len()
            );
        }
        write_remembered(&self.shared);
        let _ = std::fs::remove_file(&self.socket_path);
        let _ = std::fs::remove_file(&self.pid_path);
        tracing::info!("stopped");
        ended.map_err(NodeError::TaskEnded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex as StdMutex;
    use std::time::{Duration, Instant};

    /// Rounds start at once and then at least `period` after the last one ended: a slow round
    /// pushes the next back instead of overlapping it — until the stop.
    #[tokio::test]
    async fn every_round_starts_a_period_after_the_last_ended_until_the_stop() {
        let period = Duration::from_millis(30);
        let stop = CancellationToken::new();
        let rounds = Arc::new(StdMutex::new(Vec::<(Instant, Instant)>::new()));
        let task = {
            let (stop, rounds) = (stop.clone(), rounds.clone());
            tokio::spawn(async move {
                let mut n = 0u32;
                every(&stop, period, || {
                    n += 1;
                    let (rounds, n) = (rounds.clone(), n);
                    async move {
                        let start = Instant::now();
                        if n == 2 {
                            tokio::time::sleep(period * 4).await;
                        }
                        rounds.lock().unwrap().push((start, Instant::now()));
                    }
                })
                .await
            })
        };
        wait_until(|| rounds.lock().unwrap().len() >= 5).await;
        stop.cancel();
        tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .expect("the stop ends it")
            .unwrap();
        let seen = rounds.lock().unwrap().clone();
        for pair in seen.windows(2) {
            assert!(pair[1].0 >= pair[0].1 + period, "{seen:?}");
        }
        assert!(
            seen[1].1 - seen[1].0 >= period * 4,
            "the slow one ran whole"
        );
    }

    async fn wait_until(done: impl Fn() -> bool) {
        tokio::time::timeout(Duration::from_secs(30), async {
            while !done() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("within 30 s");
    }

    #[test]
    fn told_once_and_remembered_within_bounds() {
        let mut t = Told::default();
        assert!(t.first("a".into()));
        assert!(!t.first("a".into()));
        for i in 0..MAX_TOLD {
            t.first(i.to_string());
        }
        assert!(t.order.len() <= MAX_TOLD && t.set.len() == t.order.len());
        assert!(t.first("a".into()), "the oldest is forgotten");
    }

    #[tokio::test]
    async fn a_stop_ends_a_round_midway() {
        let stop = CancellationToken::new();
        let started = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let finished = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let task = {
            let (stop, started, finished) = (stop.clone(), started.clone(), finished.clone());
            tokio::spawn(async move {
                every(&stop, Duration::from_secs(1), || {
                    let (started, finished) = (started.clone(), finished.clone());
                    async move {
                        started.store(true, std::sync::atomic::Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                        finished.store(true, std::sync::atomic::Ordering::SeqCst);
                    }
                })
                .await
            })
        };
        wait_until(|| started.load(std::sync::atomic::Ordering::SeqCst)).await;
        stop.cancel();
        tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .expect("the stop ends the round")
            .unwrap();
        assert!(!finished.load(std::sync::atomic::Ordering::SeqCst));
    }
}
