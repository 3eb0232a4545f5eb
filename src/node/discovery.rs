//! Finding peers, through [`Discovery`]s: the Mainline DHT (announce and look up the
//! package, com.ini and cod.ini infohashes; an address found under all three is a
//! candidate), static peers from node.ini, peer exchange, and a [`Directory`] that nodes in
//! one process share. Every candidate is confirmed before use: `GET /v1/info` must name this
//! cod, and the peer must sign a fresh challenge with the transport key of the peer id it
//! shows (`crate::transport`: not its account, which peers never learn).

use super::Shared;
use super::peers::FoundVia;
use super::supervisor::Supervisor;
use crate::control::Event;
use crate::lock::Locked;
use base64::Engine as _;
use futures::future::BoxFuture;
use rand::RngCore;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Addresses remembered from DHT lookups, at most.
const MAX_SEEN: usize = 4096;
/// Candidates taken from one peer-exchange answer, at most.
const MAX_EXCHANGED: usize = 32;

/// Confirmed peers are re-checked this often (seconds).
const REFRESH_SECS: u64 = 60;

/// A way to learn the addresses of other nodes of this cod. What it finds is a candidate
/// only: the node confirms each (its info and the key challenge) before it counts it as a
/// peer, whatever found it. A node runs the DHT, its static peers and peer exchange as its
/// node.ini says ([`configured`]), and any discovery given to `NodeBuilder::discovery`.
pub trait Discovery: Send + Sync {
    /// Its task's name (the supervisor's log says it if the task ends).
    fn name(&self) -> &'static str;
    /// Runs until the node stops: makes this node findable and tells `cx` what it finds.
    fn run(self: Arc<Self>, cx: Context) -> BoxFuture<'static, ()>;
}

/// What a [`Discovery`] sees of its node.
#[derive(Clone)]
pub struct Context {
    shared: Arc<Shared>,
    api_port: u16,
    /// This discovery finished a first round (see [`Context::looked`]).
    looked: Arc<std::sync::atomic::AtomicBool>,
}

impl Context {
    /// This node's API address, as it tells its peers.
    pub fn addr(&self) -> &str {
        &self.shared.info.addr
    }

    /// The port its API listens on.
    pub fn api_port(&self) -> u16 {
        self.api_port
    }

    /// Hands over an address found: a new candidate for the peer table (false if it was
    /// known, or the table is full).
    pub fn found(&self, addr: &str, via: FoundVia) -> bool {
        self.shared.peers.locked().add_candidate(addr, via)
    }

    /// Tells the node this discovery finished a first round: whatever it could find at
    /// first was handed over. Once every discovery did, a node that has no peer and no
    /// address left to try is alone (its first records need not wait for a peer).
    pub fn looked(&self) {
        if !self.looked.swap(true, std::sync::atomic::Ordering::SeqCst) {
            self.shared
                .discovering
                .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    fn has_looked(&self) -> bool {
        self.looked.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Resolves when the node stops.
    pub async fn stopped(&self) {
        self.shared.shutdown.cancelled().await
    }
}

/// The discoveries node.ini asks for: the Mainline DHT (`[dht] enabled`), the static peers
/// (`[peers] static`) and peer exchange (`[peers] exchange`).
pub fn configured(config: &crate::config::NodeConfig) -> Vec<Arc<dyn Discovery>> {
    let mut all: Vec<Arc<dyn Discovery>> = Vec::new();
    if !config.peers.static_peers.is_empty() {
        all.push(Arc::new(StaticPeers(config.peers.static_peers.clone())));
    }
    if config.dht.enabled {
        all.push(Arc::new(MainlineDht));
    }
    if config.peers.exchange {
        all.push(Arc::new(PeerExchange));
    }
    all
}

/// Starts the discoveries and the confirmation of what they find under the node's
/// supervisor.
pub fn spawn(
    tasks: &mut Supervisor,
    shared: &Arc<Shared>,
    api_port: u16,
    discoveries: Vec<Arc<dyn Discovery>>,
) {
    shared
        .discovering
        .store(discoveries.len(), std::sync::atomic::Ordering::SeqCst);
    for d in discoveries {
        let cx = Context {
            shared: shared.clone(),
            api_port,
            looked: Default::default(),
        };
        tasks.spawn(d.name(), d.run(cx));
    }
    tasks.spawn("peer confirmation", confirm_loop(shared.clone()));
}

/// Addresses named in node.ini: candidates from the start.
pub struct StaticPeers(pub Vec<String>);

impl Discovery for StaticPeers {
    fn name(&self) -> &'static str {
        "static peers"
    }

    fn run(self: Arc<Self>, cx: Context) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            for p in &self.0 {
                cx.found(p, FoundVia::Static);
            }
            cx.looked();
            cx.stopped().await
        })
    }
}

/// The Mainline DHT (BEP 5): announces this node under the cod's three infohashes and the
/// deployer's key, and looks them up (see `docs/node.md`).
pub struct MainlineDht;

impl Discovery for MainlineDht {
    fn name(&self) -> &'static str {
        "DHT"
    }

    fn run(self: Arc<Self>, cx: Context) -> BoxFuture<'static, ()> {
        Box::pin(dht(cx))
    }
}

/// Asks a random confirmed peer for the peers it knows, now and then.
pub struct PeerExchange;

impl Discovery for PeerExchange {
    fn name(&self) -> &'static str {
        "peer exchange"
    }

    fn run(self: Arc<Self>, cx: Context) -> BoxFuture<'static, ()> {
        // It asks peers: a node without any has nothing to wait for from it.
        cx.looked();
        Box::pin(exchange_loop(cx.shared))
    }
}

/// A directory that nodes running in one process share (tests, simulations): each lists
/// its address there while it runs and takes the others' as candidates, every second.
#[derive(Clone, Default)]
pub struct Directory(Arc<std::sync::Mutex<std::collections::BTreeSet<String>>>);

impl Discovery for Directory {
    fn name(&self) -> &'static str {
        "directory"
    }

    fn run(self: Arc<Self>, cx: Context) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            let me = cx.addr().to_string();
            self.0.locked().insert(me.clone());
            loop {
                let others = self.0.locked().clone();
                for a in others.iter().filter(|a| **a != me) {
                    cx.found(a, FoundVia::Directory);
                }
                cx.looked();
                let paused = super::pause(&cx.shared.shutdown, Duration::from_secs(1), None);
                if paused.await == super::Paused::Stopped {
                    break;
                }
            }
            self.0.locked().remove(&me);
        })
    }
}

/// The Mainline DHT until the node stops — at once, even in the middle of an announce or a
/// lookup (which wait seconds on peers that are gone).
async fn dht(cx: Context) {
    let stop = cx.shared.shutdown.clone();
    tokio::select! {
        _ = dht_rounds(cx) => {}
        _ = stop.cancelled() => {}
    }
}

async fn dht_rounds(cx: Context) {
    let (shared, api_port) = (cx.shared.clone(), cx.api_port);
    let hashes = shared.own_infohashes.map(mainline::Id::from);
    // Every version of the deployer's cods meets under this key.
    let deployer_key = mainline::Id::from(crate::api::deployer_infohash(
        &shared.params.deployer.fingerprint(),
    ));
    let cfg = &shared.config.dht;
    let bind = match shared.config.listen.ip() {
        IpAddr::V4(ip) => ip,
        IpAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
    };
    let built = {
        let mut b = mainline::Dht::builder();
        b.server_mode().bootstrap(&cfg.bootstrap).bind_address(bind);
        if cfg.port != 0 {
            b.port(cfg.port);
        }
        b.build()
    };
    let dht = match built {
        Ok(d) => d.as_async(),
        Err(e) => {
            // The node goes on with the peers it knows of otherwise.
            shared.log("warn", format!("DHT did not start: {e}"));
            cx.looked();
            return shared.shutdown.cancelled().await;
        }
    };
    shared.dht.send_replace(Some(dht.clone()));
    shared.log(
        "info",
        format!(
            "DHT node on {} (bootstrap: {})",
            dht.info().await.local_addr(),
            cfg.bootstrap.join(", ")
        ),
    );
    // address → which of the three infohashes it was found under (bits 0..2).
    let mut seen: HashMap<SocketAddr, u8> = HashMap::new();
    let mut next_announce = Instant::now();
    let mut next_lookup = Instant::now();
    loop {
        let now_i = Instant::now();
        if now_i >= next_announce {
            // A node that tells no address (`public_addr = none`) announces nothing: it
            // only looks up.
            let hidden = shared.info.addr.is_empty();
            for h in hashes.into_iter().chain([deployer_key]).filter(|_| !hidden) {
                if let Err(e) = dht.announce_peer(h, Some(api_port)).await {
                    tracing::debug!("announce {h}: {e}");
                }
            }
            // Announce soon again while the DHT is young and lookups find nothing yet.
            let quick = lonely(&shared);
            next_announce = now_i
                + Duration::from_secs(if quick {
                    cfg.announce_interval.min(5)
                } else {
                    cfg.announce_interval
                });
        }
        if now_i >= next_lookup {
            // The four lookups at once: each waits on nodes that may be gone (a node that
            // restarted left its old DHT address behind), so one after another they took
            // the sum of those waits.
            let lookup = |h: mainline::Id| {
                let dht = dht.clone();
                async move {
                    use futures::StreamExt;
                    let mut found = Vec::new();
                    metrics::counter!("cod_dht_lookups_total").increment(1);
                    let mut stream = dht.get_peers(h);
                    while let Some(batch) =
                        tokio::time::timeout(Duration::from_secs(10), stream.next())
                            .await
                            .ok()
                            .flatten()
                    {
                        found.extend(batch.into_iter().map(SocketAddr::V4));
                    }
                    found
                }
            };
            let (own, mut found) = futures::join!(
                futures::future::join_all(hashes.iter().map(|h| lookup(*h))),
                lookup(deployer_key)
            );
            for (bit, addrs) in own.into_iter().enumerate() {
                for a in addrs {
                    if seen.len() < MAX_SEEN || seen.contains_key(&a) {
                        *seen.entry(a).or_default() |= 1 << bit;
                    }
                }
            }
            // Other versions of this cod meet under the deployer's key.
            {
                found.sort();
                found.dedup();
                let known: std::collections::BTreeSet<String> = shared
                    .peers
                    .locked()
                    .all()
                    .into_iter()
                    .map(|p| p.addr)
                    .collect();
                // Candidates all: confirming tells a node of this ledger (a peer, whatever
                // its version) from one of another (whose newer version becomes an offer).
                let mut table = shared.peers.locked();
                for addr in found
                    .into_iter()
                    .filter(|a| !known.contains(&a.to_string()) && seen.get(a) != Some(&0b111))
                    .take(16)
                {
                    if table.add_candidate(&addr.to_string(), FoundVia::Dht) {
                        tracing::info!("DHT candidate {addr} (the deployer's key)");
                    }
                }
            }
            {
                let mut table = shared.peers.locked();
                for (addr, bits) in &seen {
                    if *bits == 0b111 && table.add_candidate(&addr.to_string(), FoundVia::Dht) {
                        tracing::info!("DHT candidate {addr}");
                    }
                }
            }
            // A first round counts once the DHT is reached: lookups in a DHT not joined
            // yet find nothing, which says nothing about who else is there.
            if !cx.has_looked() && dht.bootstrapped().await {
                cx.looked();
            }
            let quick = lonely(&shared);
            next_lookup = Instant::now()
                + Duration::from_secs(if quick {
                    cfg.lookup_interval.min(5)
                } else {
                    cfg.lookup_interval
                });
        }
        let wake = next_announce.min(next_lookup);
        let wait = wake.saturating_duration_since(Instant::now());
        if super::pause(&shared.shutdown, wait, None).await == super::Paused::Stopped {
            return;
        }
    }
}

/// No confirmed peer yet: announce and look up often, while the DHT is young.
fn lonely(shared: &Shared) -> bool {
    shared.peers.locked().confirmed().is_empty()
}

/// Is this this very node? (Its own transport key: each run of each deployment has its own,
/// so the member's other deployment is a peer like any other.)
fn is_self(shared: &Shared, info: &crate::api::Info) -> bool {
    info.peer_id == shared.info.peer_id
}

/// Do two versions run the same model? The same com.ini file (nodes older than the `com`
/// field: the same com version).
fn same_model(ours: &crate::api::Info, theirs: &crate::api::Info) -> bool {
    if theirs.com.is_empty() {
        theirs.com_version == ours.com_version
    } else {
        theirs.com == ours.com
    }
}

/// Checks that `addr` is a node of this ledger holding the transport key of the peer id it
/// claims. (What account it holds is neither asked nor told.)
async fn confirm(shared: &Shared, addr: &str) -> Result<(crate::api::Info, u64), ConfirmError> {
    let t = Instant::now();
    let info = shared.api.info(addr).await?;
    let latency = t.elapsed().as_millis() as u64;
    if info.cod_id != shared.info.cod_id {
        // Another version of this cod (a newer one becomes an offer), or another cod.
        shared.note_version(addr, &info);
    }
    // Every version that keeps this ledger by the same model is a peer: one chain for all.
    if info.ledger_id() != shared.info.ledger {
        return Err(ConfirmError::OtherLedger {
            ledger: info.ledger_id().to_string(),
            cod: info.cod_id.to_string(),
        });
    }
    if info.cod_id != shared.info.cod_id && !same_model(&shared.info, &info) {
        return Err(ConfirmError::OtherModel {
            cod: info.cod_id.to_string(),
            version: info.cod_version.to_string(),
            com: info.com_version.to_string(),
        });
    }
    let peer: crate::ids::PeerId = info.peer_id.parse()?;
    if is_self(shared, &info) {
        return Ok((info, latency)); // this node itself; the caller marks the address as own
    }
    let mut nonce = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let answer = shared.api.challenge(addr, &nonce).await?;
    let sig = base64::engine::general_purpose::STANDARD.decode(&answer.signature)?;
    let message = crate::transport::challenge_message(&shared.params.cod, &nonce);
    if !peer.verifies(&message, &sig) {
        return Err(ConfirmError::Challenge);
    }
    Ok((info, latency))
}

/// Why an address is not confirmed as a peer.
#[derive(Debug, thiserror::Error)]
enum ConfirmError {
    #[error(transparent)]
    Api(#[from] crate::api::client::ApiError),
    #[error("keeps ledger {ledger}, not this one (cod {cod})")]
    OtherLedger { ledger: String, cod: String },
    #[error(
        "runs cod {cod} {version} with another com.ini (com {com}): its records may follow \
         other rules, so the two versions do not sync (see docs/upgrade.md)"
    )]
    OtherModel {
        cod: String,
        version: String,
        com: String,
    },
    #[error("bad peer id: {0}")]
    PeerId(#[from] crate::ids::IdParseError),
    #[error("bad signature: {0}")]
    Signature(#[from] base64::DecodeError),
    #[error("failed the key challenge")]
    Challenge,
}

/// Confirms the peers due for it, every second: those heard of, and the confirmed ones
/// every [`REFRESH_SECS`].
async fn confirm_loop(shared: Arc<Shared>) {
    super::every(&shared.shutdown, Duration::from_secs(1), || {
        confirm_round(shared.clone())
    })
    .await
}

async fn confirm_round(shared: Arc<Shared>) {
    let due = shared.peers.locked().due(shared.now(), REFRESH_SECS);
    let checks = due.into_iter().map(|addr| {
        let shared = shared.clone();
        async move {
            let result = confirm(&shared, &addr).await;
            (addr, result)
        }
    });
    for (addr, result) in futures::future::join_all(checks).await {
        let mut table = shared.peers.locked();
        match result {
            Ok((info, _)) if is_self(&shared, &info) => table.mark_own(&addr),
            Ok((info, latency)) => {
                let id: crate::ids::PeerId = info.peer_id.parse().expect("checked in confirm");
                let via = table
                    .all()
                    .into_iter()
                    .find(|p| p.addr == addr)
                    .map(|p| p.found_via);
                let now = shared.now();
                let fresh = table.confirm(
                    &addr,
                    id,
                    [info.software_version, info.com_version, info.cod_version],
                    latency,
                    now,
                );
                // (One peer's clock says nothing alone: the log hears of the median.)
                table.set_clock_offset(&addr, super::peers::offset_between(info.time, now));
                let clock = table.clock_turned().zip(table.clock_offset());
                drop(table);
                if let Some((off, offset)) = clock {
                    let said = format!("this node's clock is {}", offset.describe());
                    shared.log(if off { "warn" } else { "info" }, said);
                }
                if fresh {
                    shared.log(
                        "info",
                        format!("peer {addr} confirmed: peer id {}", id.short()),
                    );
                    shared.emit(Event::Peer {
                        addr: addr.clone(),
                        peer_id: id.to_string(),
                        up: true,
                        found_via: via.map(|v| v.to_string()).unwrap_or_default(),
                    });
                    // A new peer: compare chains with it at once, both ways.
                    let (s2, a2) = (shared.clone(), addr.clone());
                    shared.spawn_until_stop(async move {
                        if let Err(e) = super::sync::sync_with(&s2, &a2).await {
                            tracing::debug!("first sync with {a2}: {e}");
                        }
                    });
                }
            }
            Err(reason) => {
                let down = table.fail(&addr, shared.now());
                drop(table);
                tracing::debug!("peer {addr}: {reason}");
                if down {
                    shared.log("warn", format!("peer {addr} is down: {reason}"));
                    shared.emit(Event::Peer {
                        addr: addr.clone(),
                        peer_id: String::new(),
                        up: false,
                        found_via: String::new(),
                    });
                }
            }
        }
    }
    shared.peers.locked().prune(12);
}

/// Asks a random confirmed peer for its peers, every `sync_interval` (2 to 30 s).
async fn exchange_loop(shared: Arc<Shared>) {
    let period = Duration::from_secs(shared.config.sync_interval.clamp(2, 30));
    super::every(&shared.shutdown, period, || exchange_round(shared.clone())).await
}

async fn exchange_round(shared: Arc<Shared>) {
    let peers = shared.peers.locked().confirmed();
    if peers.is_empty() {
        return;
    }
    let p = &peers[rand::random::<usize>() % peers.len()];
    if let Ok(list) = shared.api.peers(&p.addr).await {
        let mut table = shared.peers.locked();
        for e in list.into_iter().take(MAX_EXCHANGED) {
            if e.peer_id != shared.info.peer_id {
                table.add_candidate(&e.addr, FoundVia::Exchange);
            }
        }
    }
}
