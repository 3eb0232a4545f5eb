//! `node.ini`: one member's node — where it keeps data, which key it uses, how it reaches
//! the network, where it mirrors the chain. Relative paths are relative to the node
//! directory (the directory holding node.ini).

use super::ConfigError;
use super::ini::Ini;
use super::values;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// The public Mainline DHT routers: the default for real deployments only. Tests and the
/// demo always set their own loopback bootstrap.
pub const PUBLIC_BOOTSTRAP: [&str; 4] = [
    "router.bittorrent.com:6881",
    "dht.transmissionbt.com:6881",
    "dht.libtorrent.org:25401",
    "router.utorrent.com:6881",
];

pub const DEFAULT_LISTEN: &str = "0.0.0.0:7410";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    /// Store, socket, pid and log files live here.
    pub data_dir: PathBuf,
    /// The node's secret key file.
    pub key: PathBuf,
    /// Passphrase file for unattended starts (first line), if the key is encrypted.
    pub passphrase_file: Option<PathBuf>,
    /// TCP address for the cod API and the BitTorrent peer wire (one port, told apart by
    /// the first bytes).
    pub listen: SocketAddr,
    /// `host:port` peers should use to reach this node, if not the listen address; `""`
    /// (node.ini `public_addr = none`): the node tells no address (an outbound-only member).
    pub public_addr: Option<String>,
    /// A SOCKS5 proxy (`host:port`, e.g. a local Tor client) that every connection to peers
    /// and mirrors goes through, names resolved by the proxy. With it the DHT is off.
    pub proxy: Option<String>,
    pub dht: DhtConfig,
    pub peers: PeersConfig,
    /// Archive mirrors: directories or http(s) URLs that receive every record.
    pub mirrors: Vec<String>,
    /// Also use the mirrors the package names (cod.ini `[archive] mirrors`).
    pub package_mirrors: bool,
    /// Seed the chain as torrents and point at them from the DHT (`[archive] torrents`).
    pub torrents: bool,
    /// Seconds between writing the torrents anew, when records were applied.
    pub torrent_interval: u64,
    /// Sign, without asking, records that are fully determined by the chain.
    pub auto_sign: bool,
    /// Seconds between anti-entropy rounds with a random peer.
    pub sync_interval: u64,
    /// What the public port allows each address (see `node::guard`).
    pub limits: Limits,
    /// Memory for the store's caches and write buffers, in bytes (`[store] cache`, MiB).
    pub store_cache: u64,
    pub log: LogConfig,
    /// node.ini `[hooks]`: a shell command per event (`payment`, `sign_request`, `upgrade`).
    pub hooks: BTreeMap<String, String>,
    /// node.ini `[metrics] listen`: where `GET /metrics` (Prometheus text) is served, a
    /// loopback address; none by default.
    pub metrics: Option<SocketAddr>,
}

/// The events a node.ini `[hooks]` command can run on (see `node::hooks`).
pub const HOOK_EVENTS: [&str; 3] = ["payment", "sign_request", "upgrade"];
/// Longest hook command, in bytes.
pub const MAX_HOOK_BYTES: usize = 4096;

/// node.ini `[log]`: what the daemon logs, how, and (when it writes the file itself: `cod
/// node start`) when the file is rotated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// Which events: `LEVEL` or `TARGET=LEVEL` directives, comma-separated (`info`,
    /// `warn,cod::node::sync=debug`). The `COD_LOG` environment variable overrides it.
    pub level: String,
    /// One JSON object per line instead of text.
    pub json: bool,
    /// Rotate the file before it would grow past this many bytes; 0: never (logrotate moves
    /// it and sends SIGHUP).
    pub max_bytes: u64,
    /// Rotated files kept: node.log.1 (the newest) … node.log.KEEP.
    pub keep: u32,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
            json: false,
            max_bytes: 10 << 20,
            keep: 5,
        }
    }
}

/// node.ini settings a running node takes at once (`cod config reload`, SIGHUP).
pub const LIVE_SETTINGS: [&str; 4] = [
    "signing.auto",
    "peers.static",
    "log.level",
    "archive.mirrors",
];

/// What differs between two readings of node.ini, as (live, restart): the settings of
/// [`LIVE_SETTINGS`] that changed, and every other section or key that did — those wait for
/// the node's next start.
pub fn changed(old: &NodeConfig, new: &NodeConfig) -> (Vec<&'static str>, Vec<&'static str>) {
    let mut live = Vec::new();
    if old.auto_sign != new.auto_sign {
        live.push("signing.auto");
    }
    if old.peers.static_peers != new.peers.static_peers {
        live.push("peers.static");
    }
    if old.log.level != new.log.level {
        live.push("log.level");
    }
    if (&old.mirrors, old.package_mirrors) != (&new.mirrors, new.package_mirrors) {
        live.push("archive.mirrors");
    }
    let mut restart = Vec::new();
    let mut differs = |name: &'static str, d: bool| {
        if d {
            restart.push(name);
        }
    };
    differs("node.data_dir", old.data_dir != new.data_dir);
    differs("node.key", old.key != new.key);
    differs(
        "node.passphrase_file",
        old.passphrase_file != new.passphrase_file,
    );
    differs("node.listen", old.listen != new.listen);
    differs("node.public_addr", old.public_addr != new.public_addr);
    differs("node.proxy", old.proxy != new.proxy);
    differs("dht", old.dht != new.dht);
    differs(
        "peers",
        (old.peers.exchange, old.peers.max, old.peers.stem)
            != (new.peers.exchange, new.peers.max, new.peers.stem),
    );
    differs(
        "archive.torrents",
        (old.torrents, old.torrent_interval) != (new.torrents, new.torrent_interval),
    );
    differs("sync", old.sync_interval != new.sync_interval);
    differs("limits", old.limits != new.limits);
    differs("store", old.store_cache != new.store_cache);
    differs(
        "log",
        (old.log.json, old.log.max_bytes, old.log.keep)
            != (new.log.json, new.log.max_bytes, new.log.keep),
    );
    differs("hooks", old.hooks != new.hooks);
    differs("metrics", old.metrics != new.metrics);
    (live, restart)
}

/// A log filter: `LEVEL` or `TARGET=LEVEL`, comma-separated; targets are Rust paths.
fn log_filter(v: &str) -> Result<String, String> {
    const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
    let target = |t: &str| {
        !t.is_empty()
            && t.split("::")
                .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
    };
    let ok = v.len() <= 512
        && v.split(',').all(|d| match d.trim().split_once('=') {
            Some((t, l)) => target(t.trim()) && LEVELS.contains(&l.trim()),
            None => LEVELS.contains(&d.trim()),
        });
    if ok {
        Ok(v.to_string())
    } else {
        Err(format!(
            "{v:?}: use a level ({}) or TARGET=LEVEL, comma-separated",
            LEVELS.join(", ")
        ))
    }
}

/// `[store] cache` by default, MiB (also the store's default when no node.ini says).
pub const DEFAULT_STORE_CACHE_MIB: u64 = 64;

/// The limits the operator may tune (node.ini `[limits]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Open connections on the public port, at most.
    pub connections: usize,
    /// …from one address.
    pub connections_per_address: usize,
    /// Requests one address may make per second, on average…
    pub requests_per_second: u32,
    /// …and in a burst.
    pub request_burst: u32,
    /// Peer-wire (BitTorrent) connections at most, and from one address.
    pub peer_wire: usize,
    pub peer_wire_per_address: usize,
    /// Bytes of request bodies held at once (being read, or waiting to be handled), and
    /// from one address.
    pub body_bytes: u64,
    pub body_bytes_per_address: u64,
    /// Addresses never limited nor banned.
    pub trusted: Vec<IpAddr>,
    /// A connection's first byte must arrive within this…
    pub first_byte: std::time::Duration,
    /// …a request's head within this…
    pub head_time: std::time::Duration,
    /// …and a body at the minimum rate once this has passed.
    pub body_grace: std::time::Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            connections: 512,
            connections_per_address: 32,
            requests_per_second: 100,
            request_burst: 500,
            peer_wire: 32,
            peer_wire_per_address: 4,
            body_bytes: 32 << 20,
            body_bytes_per_address: 8 << 20,
            trusted: Vec::new(),
            first_byte: std::time::Duration::from_secs(10),
            head_time: std::time::Duration::from_secs(20),
            body_grace: std::time::Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhtConfig {
    pub enabled: bool,
    /// UDP port of the DHT node (0: any free port).
    pub port: u16,
    pub bootstrap: Vec<String>,
    /// Seconds between announcements of the three infohashes.
    pub announce_interval: u64,
    /// Seconds between lookups of the three infohashes.
    pub lookup_interval: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeersConfig {
    pub static_peers: Vec<String>,
    pub exchange: bool,
    pub max: usize,
    /// Records made here travel a random stem of peers before they spread (Dandelion++,
    /// `crate::stem`); off, they go to every peer at once.
    pub stem: bool,
}

fn path(v: &str) -> Result<PathBuf, String> {
    if v.is_empty() {
        Err("must not be empty".into())
    } else {
        Ok(PathBuf::from(v))
    }
}

/// A git mirror on another host (libgit2 connects to it itself, not through the node's proxy).
pub fn git_remote(mirror: &str) -> bool {
    mirror
        .strip_prefix("git+")
        .is_some_and(|url| url.contains("://") && !url.starts_with("file://"))
}

impl NodeConfig {
    pub fn parse(file: &str, text: &str) -> Result<Self, ConfigError> {
        let ini = Ini::parse(file, text)?;
        ini.reject_unknown_sections(
            &[
                "node", "dht", "peers", "sync", "archive", "signing", "limits", "store", "log",
                "hooks", "metrics",
            ],
            &[],
        )?;

        let mut s = ini.required("node")?;
        let data_dir = s.or_default("data_dir", PathBuf::from("."), path)?;
        let key = s.or_default("key", PathBuf::from("node.sec.key"), path)?;
        let passphrase_file = s.optional("passphrase_file", path)?;
        let listen: Option<SocketAddr> = s.optional("listen", values::socket_addr)?;
        let public_addr = s.optional("public_addr", |v| {
            if v == "none" {
                Ok(String::new())
            } else {
                values::host_port(v)
            }
        })?;
        let proxy = s.optional("proxy", values::socks5_proxy)?;
        s.finish()?;
        // A hidden node answers only on loopback (a local onion service forwards there):
        // on any other address, whoever probes the host would meet the peer id it shows
        // through the proxy.
        let hidden = proxy.is_some() || public_addr.as_deref() == Some("");
        let listen = match listen {
            Some(l) if hidden && !l.ip().is_loopback() => {
                return Err(ConfigError::new(
                    file,
                    0,
                    None,
                    format!(
                        "listen = {l} with a proxy or public_addr = none: anyone probing this host would find the node there; listen on 127.0.0.1"
                    ),
                ));
            }
            Some(l) => l,
            None if hidden => SocketAddr::from(([127, 0, 0, 1], 7410)),
            None => DEFAULT_LISTEN.parse().expect("valid default"),
        };

        let mut dht = DhtConfig {
            enabled: true,
            port: 0,
            bootstrap: PUBLIC_BOOTSTRAP.iter().map(|s| s.to_string()).collect(),
            announce_interval: 300,
            lookup_interval: 60,
        };
        if proxy.is_some() {
            // The DHT speaks UDP from this host's own address: no SOCKS5 proxy carries it.
            dht.enabled = false;
        }
        if let Some(mut s) = ini.optional("dht") {
            match s.optional("enabled", values::boolean)? {
                Some(true) if proxy.is_some() => {
                    return Err(ConfigError::new(file, 0, None, "[dht] enabled = true and [node] proxy: the DHT would speak from this host's own address, around the proxy; use [peers] static (onion addresses too) with a proxy".into()));
                }
                Some(on) => dht.enabled = on,
                None => {}
            }
            dht.port = s.or_default("port", 0, values::u64_in(0, 65535))? as u16;
            if let Some(b) = s.optional("bootstrap", values::list(values::host_port))? {
                dht.bootstrap = b;
            }
            dht.announce_interval = s
                .or_default(
                    "announce_interval",
                    Duration::from_secs(300),
                    values::duration,
                )?
                .as_secs();
            dht.lookup_interval = s
                .or_default("lookup_interval", Duration::from_secs(60), values::duration)?
                .as_secs();
            s.finish()?;
        }

        let mut peers = PeersConfig {
            static_peers: Vec::new(),
            exchange: true,
            max: 64,
            stem: true,
        };
        if let Some(mut s) = ini.optional("peers") {
            peers.static_peers =
                s.or_default("static", Vec::new(), values::list(values::host_port))?;
            peers.exchange = s.or_default("exchange", true, values::boolean)?;
            peers.max = s.or_default("max", 64, values::u64_in(1, 4096))? as usize;
            peers.stem = s.or_default("stem", true, values::boolean)?;
            s.finish()?;
        }
        if !dht.enabled && peers.static_peers.is_empty() && !peers.exchange {
            return Err(ConfigError::new(file, 0, None, "this node could never find a peer: enable [dht], list [peers] static, or enable exchange".into()));
        }

        let (mut mirrors, mut package_mirrors) = (Vec::new(), true);
        let (mut torrents, mut torrent_interval) = (true, 600);
        if let Some(mut s) = ini.optional("archive") {
            mirrors = s.or_default("mirrors", Vec::new(), values::list(values::mirror))?;
            if proxy.is_some()
                && let Some(m) = mirrors.iter().find(|m| git_remote(m))
            {
                return Err(ConfigError::new(
                    file,
                    0,
                    None,
                    format!(
                        "mirror {m}: git connects to remote repositories on its own, around [node] proxy; use a local path or an http(s) mirror"
                    ),
                ));
            }
            package_mirrors = s.or_default("package_mirrors", true, values::boolean)?;
            torrents = s.or_default("torrents", true, values::boolean)?;
            torrent_interval = s
                .or_default(
                    "torrent_interval",
                    Duration::from_secs(600),
                    values::duration_in(1, 86_400),
                )?
                .as_secs();
            s.finish()?;
        }
        let mut auto_sign = false;
        if let Some(mut s) = ini.optional("signing") {
            auto_sign = s.or_default("auto", false, values::boolean)?;
            s.finish()?;
        }
        let mut sync_interval = 10;
        if let Some(mut s) = ini.optional("sync") {
            sync_interval = s
                .or_default("interval", Duration::from_secs(10), values::duration)?
                .as_secs();
            s.finish()?;
        }
        let mut store_cache = DEFAULT_STORE_CACHE_MIB;
        if let Some(mut s) = ini.optional("store") {
            store_cache =
                s.or_default("cache", DEFAULT_STORE_CACHE_MIB, values::u64_in(8, 65_536))?;
            s.finish()?;
        }
        let mut log = LogConfig::default();
        if let Some(mut s) = ini.optional("log") {
            log.level = s.or_default("level", log.level, log_filter)?;
            log.json = match s
                .or_default("format", "text".to_string(), |v| Ok(v.to_string()))?
                .as_str()
            {
                "text" => false,
                "json" => true,
                other => return Err(s.key_error("format", format!("{other:?}: use text or json"))),
            };
            log.max_bytes = s.or_default("max_size", 10, values::u64_in(0, 1 << 20))? << 20;
            log.keep = s.or_default("keep", 5, values::u64_in(1, 100))? as u32;
            s.finish()?;
        }
        let mut hooks = BTreeMap::new();
        if let Some(mut s) = ini.optional("hooks") {
            let command = |v: &str| {
                if v.trim().is_empty() || v.len() > MAX_HOOK_BYTES {
                    Err(format!("a shell command of 1 to {MAX_HOOK_BYTES} bytes"))
                } else {
                    Ok(v.to_string())
                }
            };
            for event in HOOK_EVENTS {
                if let Some(cmd) = s.optional(event, command)? {
                    hooks.insert(event.to_string(), cmd);
                }
            }
            s.finish()?;
        }
        let mut metrics = None;
        if let Some(mut s) = ini.optional("metrics") {
            metrics = s.optional("listen", |v| {
                let a: SocketAddr = v
                    .parse()
                    .map_err(|_| format!("{v:?} is not an IP:PORT address"))?;
                if a.ip().is_loopback() {
                    Ok(a)
                } else {
                    Err(format!(
                        "{a}: metrics are served on a loopback address only (127.0.0.1:9410, \
                         [::1]:9410); put a proxy in front to show them elsewhere"
                    ))
                }
            })?;
            s.finish()?;
        }
        let mut limits = Limits::default();
        if let Some(mut s) = ini.optional("limits") {
            let d = Limits::default();
            let count = |max| values::u64_in(1, max);
            limits.connections =
                s.or_default("connections", d.connections as u64, count(65_536))? as usize;
            limits.connections_per_address = s.or_default(
                "connections_per_address",
                d.connections_per_address as u64,
                count(65_536),
            )? as usize;
            limits.requests_per_second = s.or_default(
                "requests_per_second",
                u64::from(d.requests_per_second),
                count(1_000_000),
            )? as u32;
            limits.request_burst = s.or_default(
                "request_burst",
                u64::from(d.request_burst),
                count(1_000_000),
            )? as u32;
            limits.trusted = s.or_default("trusted", Vec::new(), values::list(values::ip_addr))?;
            let deadline = || values::duration_in(1, 600);
            limits.first_byte = s.or_default("first_byte", d.first_byte, deadline())?;
            limits.head_time = s.or_default("head_time", d.head_time, deadline())?;
            limits.body_grace = s.or_default("body_grace", d.body_grace, deadline())?;
            s.finish()?;
        }
        Ok(Self {
            data_dir,
            key,
            passphrase_file,
            listen,
            public_addr,
            proxy,
            dht,
            peers,
            mirrors,
            package_mirrors,
            torrents,
            torrent_interval,
            auto_sign,
            sync_interval,
            limits,
            store_cache: store_cache << 20,
            log,
            hooks,
            metrics,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let n = NodeConfig::parse("node.ini", "[node]\n").unwrap();
        assert_eq!(n.listen.port(), 7410);
        assert_eq!(n.dht.bootstrap.len(), 4);
        assert_eq!(n.key, PathBuf::from("node.sec.key"));
        let n = NodeConfig::parse(
            "node.ini",
            "[node]\nlisten = 127.0.0.1:0\n[dht]\nbootstrap = 127.0.0.1:6881\n[peers]\nstatic = 127.0.0.1:7411\n[archive]\nmirrors = ./mirror, http://127.0.0.1:8000/chain/\n[signing]\nauto = true\n",
        )
        .unwrap();
        assert_eq!(n.dht.bootstrap, ["127.0.0.1:6881"]);
        assert_eq!(n.mirrors, ["./mirror", "http://127.0.0.1:8000/chain"]);
        assert!(n.auto_sign);
        assert_eq!(n.limits, Limits::default());
        assert!(n.torrents);
        assert_eq!(n.torrent_interval, 600);
        assert_eq!(n.log, LogConfig::default());
        assert!(n.hooks.is_empty());
        assert_eq!(n.metrics, None);
        let n =
            NodeConfig::parse("node.ini", "[node]\n[metrics]\nlisten = 127.0.0.1:9410\n").unwrap();
        assert_eq!(n.metrics, Some("127.0.0.1:9410".parse().unwrap()));
        let e = NodeConfig::parse("node.ini", "[node]\n[metrics]\nlisten = 0.0.0.0:9410\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("loopback"), "{e}");
        let n =
            NodeConfig::parse("node.ini", "[node]\n[hooks]\npayment = notify-send paid\n").unwrap();
        assert_eq!(n.hooks["payment"], "notify-send paid");
        for bad in ["[hooks]\npaid = x\n", "[hooks]\npayment =\n"] {
            assert!(
                NodeConfig::parse("node.ini", &format!("[node]\n{bad}")).is_err(),
                "{bad}"
            );
        }
        let n = NodeConfig::parse(
            "node.ini",
            "[node]
[archive]
torrents = false
torrent_interval = 30s
",
        )
        .unwrap();
        assert!(!n.torrents);
        assert_eq!(n.torrent_interval, 30);
        // A proxy turns the DHT off (UDP would go around it), and refuses it turned on, and
        // git remotes (libgit2 would connect around it).
        let n = NodeConfig::parse(
            "node.ini",
            "[node]\nproxy = 127.0.0.1:9050\npublic_addr = none\n[peers]\nstatic = abcdefghij.onion:7410\n[archive]\nmirrors = git+/srv/chain.git, https://example.org/chain\n",
        )
        .unwrap();
        assert_eq!(n.proxy.as_deref(), Some("127.0.0.1:9050"));
        assert!(!n.dht.enabled);
        assert_eq!(n.public_addr.as_deref(), Some(""), "no address told");
        assert_eq!(
            n.listen.to_string(),
            "127.0.0.1:7410",
            "a hidden node listens on loopback"
        );
        for bad in [
            "[node]\nproxy = 127.0.0.1:9050\n[dht]\nenabled = true\n",
            "[node]\nproxy = 127.0.0.1:9050\n[archive]\nmirrors = git+git://example.org/c.git\n",
            "[node]\nproxy = 127.0.0.1:9050\n[archive]\nmirrors = git+http://example.org/c.git\n",
            "[node]\nproxy = http://127.0.0.1:8080\n",
            "[node]\nproxy = 127.0.0.1\n",
            "[node]\nproxy = 127.0.0.1:9050\nlisten = 0.0.0.0:7410\n",
            "[node]\npublic_addr = none\nlisten = 192.0.2.7:7410\n",
        ] {
            assert!(NodeConfig::parse("node.ini", bad).is_err(), "{bad}");
        }
        let n = NodeConfig::parse("node.ini", "[node]\nproxy = socks5h://[::1]:9050\n").unwrap();
        assert_eq!(n.proxy.as_deref(), Some("[::1]:9050"));
        assert!(git_remote("git+https://example.org/c.git"));
        assert!(!git_remote("git+/srv/c.git") && !git_remote("git+file:///srv/c.git"));
        assert!(!git_remote("https://example.org/chain"));
        for bad in [
            "torrent_interval = 0s",
            "torrent_interval = 2d",
            "torrents = maybe",
        ] {
            assert!(
                NodeConfig::parse("node.ini", &format!("[node]\n[archive]\n{bad}\n")).is_err(),
                "{bad}"
            );
        }
        let n = NodeConfig::parse(
            "node.ini",
            "[node]\n[limits]\nconnections = 100\nrequests_per_second = 5\ntrusted = 127.0.0.1, ::1\n",
        )
        .unwrap();
        assert_eq!(n.limits.connections, 100);
        assert_eq!(n.limits.requests_per_second, 5);
        assert_eq!(n.limits.trusted.len(), 2);
        let n = NodeConfig::parse(
            "node.ini",
            "[node]\n[limits]\nfirst_byte = 3s\nhead_time = 1m\nbody_grace = 5s\n",
        )
        .unwrap();
        assert_eq!(n.limits.first_byte.as_secs(), 3);
        assert_eq!(n.limits.head_time.as_secs(), 60);
        assert_eq!(n.limits.body_grace.as_secs(), 5);
        for bad in ["head_time = 0s", "head_time = 11m", "first_byte = soon"] {
            let text = format!("[node]\n[limits]\n{bad}\n");
            assert!(NodeConfig::parse("node.ini", &text).is_err(), "{bad}");
        }
        assert_eq!(n.store_cache, DEFAULT_STORE_CACHE_MIB << 20);
        let n = NodeConfig::parse("node.ini", "[node]\n[store]\ncache = 256\n").unwrap();
        assert_eq!(n.store_cache, 256 << 20);
    }

    #[test]
    fn mistakes_are_positioned() {
        let cases = [
            (
                "[node]\nlisten = everywhere\n",
                "node.ini:2: key \"listen\": in [node]: \"everywhere\" is not an IP:port address like 0.0.0.0:7410",
            ),
            (
                "[node]\n[dht]\nport = 70000\n",
                "node.ini:3: key \"port\": in [dht]: 70000 is out of range 0..=65535",
            ),
            (
                "[node]\n[peers]\nstatic = a:1, b\n",
                "node.ini:3: key \"static\": in [peers]: item 2: \"b\" is not host:port",
            ),
            (
                "[node]\nkeyfile = x\n",
                "node.ini:2: key \"keyfile\": unknown key in [node]; known keys: data_dir, key, listen, passphrase_file, proxy, public_addr",
            ),
            ("[dht]\n", "node.ini: missing section [node]"),
            (
                "[node]\n[store]\ncache = 4\n",
                "node.ini:3: key \"cache\": in [store]: 4 is out of range 8..=65536",
            ),
            (
                "[node]\n[dht]\nenabled = false\n[peers]\nexchange = false\n",
                "node.ini: this node could never find a peer: enable [dht], list [peers] static, or enable exchange",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(
                NodeConfig::parse("node.ini", text).unwrap_err().to_string(),
                want
            );
        }
    }

    #[test]
    fn log_settings_parse_and_bad_ones_say_why() {
        let n = NodeConfig::parse(
            "node.ini",
            "[node]\n[log]\nlevel = warn, cod::node::sync=debug\nformat = json\nmax_size = 0\nkeep = 9\n",
        )
        .unwrap();
        assert_eq!(
            n.log,
            LogConfig {
                level: "warn, cod::node::sync=debug".into(),
                json: true,
                max_bytes: 0,
                keep: 9,
            }
        );
        let n = NodeConfig::parse("node.ini", "[node]\n[log]\nmax_size = 3\n").unwrap();
        assert_eq!(n.log.max_bytes, 3 << 20);
        for (bad, says) in [
            ("level = loud", "use a level"),
            ("level = cod::=info", "use a level"),
            ("level = info,", "use a level"),
            ("format = xml", "use text or json"),
            ("keep = 0", "keep"),
            ("max_size = -1", "max_size"),
            ("colour = yes", "colour"),
        ] {
            let e = NodeConfig::parse("node.ini", &format!("[node]\n[log]\n{bad}\n"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn a_reload_says_what_it_takes_at_once_and_what_waits_for_a_restart() {
        let old = NodeConfig::parse("node.ini", "[node]\n").unwrap();
        assert_eq!(changed(&old, &old), (vec![], vec![]));
        let new = NodeConfig::parse(
            "node.ini",
            "[node]\nlisten = 127.0.0.1:7411\n[signing]\nauto = true\n[peers]\nstatic = 10.0.0.1:7410\n\
             [log]\nlevel = debug\nformat = json\n[hooks]\npayment = true\n\
             [archive]\nmirrors = /srv/mirror\ntorrents = false\n",
        )
        .unwrap();
        let (live, restart) = changed(&old, &new);
        assert_eq!(live, LIVE_SETTINGS);
        assert_eq!(restart, ["node.listen", "archive.torrents", "log", "hooks"]);
        // Each of the node's settings is compared: a field added to NodeConfig must be named
        // here (the struct is destructured, so the compiler says so).
        let NodeConfig {
            data_dir: _,
            key: _,
            passphrase_file: _,
            listen: _,
            public_addr: _,
            proxy: _,
            dht: _,
            peers: _,
            mirrors: _,
            package_mirrors: _,
            torrents: _,
            torrent_interval: _,
            auto_sign: _,
            sync_interval: _,
            limits: _,
            store_cache: _,
            log: _,
            hooks: _,
            metrics: _,
        } = new;
    }
}
