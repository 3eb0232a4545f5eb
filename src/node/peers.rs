//! The peer table: every address heard of, how, and what confirming it showed. Pure.

use crate::ids::PeerId;
use crate::views::ClockOffset;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FoundVia {
    Dht,
    Static,
    Exchange,
    /// A directory shared by nodes in one process (`discovery::Directory`).
    Directory,
    /// Confirmed when the node last ran (`peers.json` in its data directory).
    Remembered,
    /// Named by the operator (`cod peers add`).
    Operator,
}

impl std::fmt::Display for FoundVia {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FoundVia::Dht => "dht",
            FoundVia::Static => "static",
            FoundVia::Exchange => "exchange",
            FoundVia::Directory => "directory",
            FoundVia::Remembered => "remembered",
            FoundVia::Operator => "operator",
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Peer {
    pub addr: String,
    pub found_via: FoundVia,
    /// Its transport identity, set once `info` and the key challenge succeeded.
    pub peer_id: Option<PeerId>,
    pub confirmed: bool,
    pub software_version: String,
    pub com_version: String,
    pub cod_version: String,
    /// Unix seconds of the last successful contact.
    pub last_seen: u64,
    /// Round trip of the last `info` call, milliseconds.
    pub latency_ms: u64,
    /// Consecutive failed contacts.
    pub failures: u32,
    /// Unix seconds before which the node will not try again.
    pub retry_at: u64,
    /// Records the peer had applied at the last sync summary.
    pub applied: Option<usize>,
    /// How far its clock is ahead of this node's (behind if negative), in seconds: the time
    /// its last `info` answer gave, less this node's clock when the answer came (so within a
    /// round trip).
    #[serde(default)]
    pub clock_offset: Option<i64>,
}

/// `theirs - ours` (Unix seconds; `theirs` a peer's word), saturating.
pub fn offset_between(theirs: u64, ours: u64) -> i64 {
    let d = i128::from(theirs) - i128::from(ours);
    i64::try_from(d).unwrap_or(if d < 0 { i64::MIN } else { i64::MAX })
}

/// `cod peers`: the peer table, and the addresses the guard limits or bans — the daemon's
/// answer, read back typed by the CLI.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PeersView {
    pub peers: Vec<Peer>,
    pub addresses: Vec<super::guard::AddressState>,
}

/// `cod peers ban`: the address banned, and until when (Unix seconds; none: until unbanned).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Banned {
    pub banned: std::net::IpAddr,
    pub until: Option<u64>,
}

/// `cod peers add`: the address, and whether it was new to the table (false: known
/// already, or the table is full).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerAdded {
    pub added: String,
    pub new: bool,
}

/// `cod peers remove`: the address, and whether the table held it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerRemoved {
    pub removed: String,
    pub was_known: bool,
}

/// `cod peers unban`: the address, and whether it was banned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unbanned {
    pub unbanned: std::net::IpAddr,
    pub was_banned: bool,
}

/// Peers remembered across restarts, at most.
pub const MAX_REMEMBERED: usize = 64;

impl PeerTable {
    /// What to remember for the next start: the confirmed peers' addresses, the most
    /// recently seen first, at most [`MAX_REMEMBERED`].
    pub fn to_remember(&self) -> Vec<String> {
        let mut confirmed: Vec<&Peer> = self.peers.values().filter(|p| p.confirmed).collect();
        confirmed.sort_by_key(|p| std::cmp::Reverse(p.last_seen));
        confirmed
            .into_iter()
            .take(MAX_REMEMBERED)
            .map(|p| p.addr.clone())
            .collect()
    }
}

/// Reads remembered addresses (`peers.json`, written by this node): only numeric
/// `IP:port` addresses, at most [`MAX_REMEMBERED`]; anything unreadable is nothing.
pub fn parse_remembered(bytes: &[u8]) -> Vec<String> {
    let list: Vec<String> = serde_json::from_slice(bytes).unwrap_or_default();
    list.into_iter()
        .filter(|a| a.parse::<std::net::SocketAddr>().is_ok())
        .take(MAX_REMEMBERED)
        .collect()
}

/// Contacts that fail this many times in a row make a peer down (and no longer used).
pub const DOWN_AFTER_FAILURES: u32 = 3;

#[derive(Debug, Default)]
pub struct PeerTable {
    peers: BTreeMap<String, Peer>,
    /// Addresses that turned out to be this node itself.
    own: BTreeSet<String>,
    max: usize,
    /// Whether the log last said this node's clock is off (see [`PeerTable::clock_turned`]).
    clock_off: bool,
}

impl PeerTable {
    pub fn new(max: usize) -> Self {
        Self {
            peers: BTreeMap::new(),
            own: BTreeSet::new(),
            max,
            clock_off: false,
        }
    }

    /// Notes an address; returns true if it is new. Never this node's own addresses.
    pub fn add_candidate(&mut self, addr: &str, via: FoundVia) -> bool {
        if self.own.contains(addr) || self.peers.contains_key(addr) || self.peers.len() >= self.max
        {
            return false;
        }
        self.peers.insert(
            addr.to_string(),
            Peer {
                addr: addr.to_string(),
                found_via: via,
                peer_id: None,
                confirmed: false,
                software_version: String::new(),
                com_version: String::new(),
                cod_version: String::new(),
                last_seen: 0,
                latency_ms: 0,
                failures: 0,
                retry_at: 0,
                applied: None,
                clock_offset: None,
            },
        );
        true
    }

    /// Forgets the peer at `addr`; whether it was in the table.
    pub fn remove(&mut self, addr: &str) -> bool {
        self.peers.remove(addr).is_some()
    }

    pub fn mark_own(&mut self, addr: &str) {
        self.own.insert(addr.to_string());
        self.peers.remove(addr);
    }

    /// Records a successful confirmation; returns true if the peer was not confirmed before.
    pub fn confirm(
        &mut self,
        addr: &str,
        peer_id: PeerId,
        versions: [String; 3],
        latency_ms: u64,
        now: u64,
    ) -> bool {
        let Some(p) = self.peers.get_mut(addr) else {
            return false;
        };
        let was = p.confirmed;
        p.peer_id = Some(peer_id);
        p.confirmed = true;
        [p.software_version, p.com_version, p.cod_version] = versions;
        p.latency_ms = latency_ms;
        p.last_seen = now;
        p.failures = 0;
        p.retry_at = 0;
        // One entry per node: an older address of the same node (the same transport key)
        // goes.
        let dupes: Vec<String> = self
            .peers
            .values()
            .filter(|q| q.addr != addr && q.peer_id == Some(peer_id))
            .map(|q| q.addr.clone())
            .collect();
        for d in dupes {
            self.peers.remove(&d);
        }
        !was
    }

    /// Records a failed contact; returns true if this made a confirmed peer go down.
    pub fn fail(&mut self, addr: &str, now: u64) -> bool {
        let Some(p) = self.peers.get_mut(addr) else {
            return false;
        };
        p.failures += 1;
        // Back off: 2, 4, 8 … seconds, at most 5 minutes.
        p.retry_at = now + (1u64 << p.failures.min(8)).min(300);
        if p.confirmed && p.failures >= DOWN_AFTER_FAILURES {
            p.confirmed = false;
            return true;
        }
        false
    }

    /// Notes what a peer's clock said (its `info` answer's time, less this node's clock).
    pub fn set_clock_offset(&mut self, addr: &str, offset: i64) {
        if let Some(p) = self.peers.get_mut(addr) {
            p.clock_offset = Some(offset);
        }
    }

    /// The median of the confirmed peers' clock offsets, if any gave one.
    pub fn clock_offset(&self) -> Option<ClockOffset> {
        let mut offsets: Vec<i64> = self
            .peers
            .values()
            .filter(|p| p.confirmed)
            .filter_map(|p| p.clock_offset)
            .collect();
        if offsets.is_empty() {
            return None;
        }
        offsets.sort_unstable();
        let mid = offsets.len() / 2;
        // (Of an even count, the mean of the middle two, rounded toward zero.)
        let median = if offsets.len() % 2 == 1 {
            offsets[mid]
        } else {
            let sum = i128::from(offsets[mid - 1]) + i128::from(offsets[mid]);
            i64::try_from(sum / 2).expect("between two i64s")
        };
        Some(ClockOffset {
            median,
            peers: offsets.len(),
        })
    }

    /// Whether this node's clock has just turned off ([`ClockOffset::is_off`]: `Some(true)`)
    /// or back in step (`Some(false)`) since the last call — for the log, once each way.
    pub fn clock_turned(&mut self) -> Option<bool> {
        let off = self.clock_offset().is_some_and(|c| c.is_off());
        (off != std::mem::replace(&mut self.clock_off, off)).then_some(off)
    }

    pub fn set_applied(&mut self, addr: &str, applied: usize) {
        if let Some(p) = self.peers.get_mut(addr) {
            p.applied = Some(applied);
        }
    }

    pub fn confirmed(&self) -> Vec<Peer> {
        self.peers
            .values()
            .filter(|p| p.confirmed)
            .cloned()
            .collect()
    }

    /// Addresses due for a (re)confirmation at `now`: unconfirmed ones whose back-off is
    /// over, and confirmed ones not seen for `refresh` seconds.
    pub fn due(&self, now: u64, refresh: u64) -> Vec<String> {
        self.peers
            .values()
            .filter(|p| p.retry_at <= now && (!p.confirmed || p.last_seen + refresh <= now))
            .map(|p| p.addr.clone())
            .collect()
    }

    /// Whether the table holds a peer, or an address not yet given up on (it failed fewer
    /// than [`DOWN_AFTER_FAILURES`] times in a row — a peer starting a moment later than
    /// this node is still one): something a node waiting for its first peer may still get.
    pub fn has_prospects(&self) -> bool {
        self.peers
            .values()
            .any(|p| p.confirmed || p.failures < DOWN_AFTER_FAILURES)
    }

    pub fn all(&self) -> Vec<Peer> {
        self.peers.values().cloned().collect()
    }

    /// Forgets unconfirmed addresses that kept failing (they come back if heard of again).
    pub fn prune(&mut self, max_failures: u32) {
        self.peers
            .retain(|_, p| p.confirmed || p.failures < max_failures);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v() -> [String; 3] {
        ["0.1.0".into(), "1.0.0".into(), "1.0.0".into()]
    }

    #[test]
    fn candidates_confirm_fail_and_come_back() {
        let mut t = PeerTable::new(10);
        assert!(!t.has_prospects(), "nothing to wait for");
        assert!(t.add_candidate("127.0.0.1:1", FoundVia::Dht));
        assert!(t.has_prospects(), "not tried yet");
        assert!(
            !t.add_candidate("127.0.0.1:1", FoundVia::Static),
            "known already"
        );
        assert_eq!(t.due(100, 60), ["127.0.0.1:1"]);
        let id = PeerId::from_bytes([1; 32]);
        assert!(t.confirm("127.0.0.1:1", id, v(), 3, 100));
        assert!(
            !t.confirm("127.0.0.1:1", id, v(), 3, 101),
            "already confirmed"
        );
        assert!(t.due(120, 60).is_empty());
        assert_eq!(t.due(161, 60), ["127.0.0.1:1"], "refreshed after a minute");
        assert!(!t.fail("127.0.0.1:1", 200));
        assert!(!t.fail("127.0.0.1:1", 200));
        assert!(t.fail("127.0.0.1:1", 200), "down after three failures");
        assert!(t.confirmed().is_empty());
        assert!(t.due(200, 60).is_empty(), "backing off");
        assert!(!t.has_prospects(), "given up on");
        assert!(t.confirm("127.0.0.1:1", id, v(), 3, 300));
        assert!(t.has_prospects());
        assert_eq!(t.confirmed().len(), 1);
    }

    /// The median of the confirmed peers' clocks says whether this node's is off: one peer's
    /// wrong clock does not, and the log hears of it once each way.
    #[test]
    fn the_peers_clocks_tell_whether_this_ones_is_off() {
        let mut t = PeerTable::new(10);
        assert_eq!(t.clock_offset(), None);
        let add = |t: &mut PeerTable, i: u8, offset: i64| {
            let addr = format!("127.0.0.{i}:1");
            t.add_candidate(&addr, FoundVia::Dht);
            t.confirm(&addr, PeerId::from_bytes([i; 32]), v(), 1, 100);
            t.set_clock_offset(&addr, offset);
        };
        add(&mut t, 1, 900);
        add(&mut t, 2, 890);
        let two = t.clock_offset().unwrap();
        assert_eq!(
            two,
            ClockOffset {
                median: 895,
                peers: 2
            }
        );
        assert!(!two.is_off(), "two peers are not enough to say");
        assert_eq!(t.clock_turned(), None);
        add(&mut t, 3, -2);
        let three = t.clock_offset().unwrap();
        assert_eq!(three.median, 890);
        assert!(three.is_off());
        assert!(
            three
                .describe()
                .starts_with("890 s behind its peers' (median of 3) — set it right")
        );
        assert_eq!(t.clock_turned(), Some(true));
        assert_eq!(t.clock_turned(), None, "said once");
        // An unconfirmed peer's clock counts for nothing; a fourth in step brings the median
        // back within half the tolerated skew.
        t.add_candidate("127.0.0.9:1", FoundVia::Dht);
        t.set_clock_offset("127.0.0.9:1", -5000);
        assert_eq!(t.clock_offset().unwrap().peers, 3);
        add(&mut t, 4, 0);
        add(&mut t, 5, 1);
        let five = t.clock_offset().unwrap();
        assert_eq!(
            five,
            ClockOffset {
                median: 1,
                peers: 5
            }
        );
        assert_eq!(five.describe(), "in step with its peers' (median of 5)");
        assert_eq!(t.clock_turned(), Some(false));
        let ahead = ClockOffset {
            median: -400,
            peers: 3,
        };
        assert!(ahead.describe().starts_with("400 s ahead of its peers'"));
        assert!(ahead.is_off());
        assert!(
            !ClockOffset {
                median: -300,
                peers: 9
            }
            .is_off(),
            "half the skew is tolerated"
        );
        assert_eq!(
            offset_between(u64::MAX, 0),
            i64::MAX,
            "a peer's word, clamped"
        );
        // Peers claiming the ends of time move the median, not the arithmetic.
        let mut far = PeerTable::new(10);
        for i in 1..=2u8 {
            add(&mut far, i, i64::MAX);
        }
        assert_eq!(far.clock_offset().unwrap().median, i64::MAX);
        assert_eq!(offset_between(0, u64::MAX), i64::MIN);
        assert_eq!(offset_between(100, 130), -30);
    }

    #[test]
    fn confirmed_peers_are_remembered_newest_first_and_bounded() {
        let mut t = PeerTable::new(200);
        for i in 0..100u8 {
            let addr = format!("127.0.0.{i}:7000");
            t.add_candidate(&addr, FoundVia::Dht);
            if i % 2 == 0 {
                t.confirm(&addr, PeerId::from_bytes([i; 32]), v(), 1, u64::from(i));
            }
        }
        let kept = t.to_remember();
        assert_eq!(kept.len(), 50, "confirmed ones only");
        assert_eq!(kept[0], "127.0.0.98:7000", "the most recently seen first");
        let bytes = serde_json::to_vec(&kept).unwrap();
        assert_eq!(parse_remembered(&bytes), kept);
        // Written by the node, but read as untrusted: bounded, numeric addresses only.
        let many: Vec<String> = (0..1000)
            .map(|i| format!("10.0.{}.{}:1", i / 256, i % 256))
            .collect();
        let read = parse_remembered(&serde_json::to_vec(&many).unwrap());
        assert_eq!(read.len(), MAX_REMEMBERED);
        let odd = br#"["example.org:80", "1.2.3.4:5", "::1", "[::1]:7", 7]"#;
        assert!(parse_remembered(odd).is_empty(), "not a list of strings");
        let odd = br#"["example.org:80", "1.2.3.4:5", "::1", "[::1]:7"]"#;
        assert_eq!(parse_remembered(odd), ["1.2.3.4:5", "[::1]:7"]);
        assert!(parse_remembered(b"garbage").is_empty());
    }

    #[test]
    fn own_addresses_and_moved_nodes() {
        let mut t = PeerTable::new(10);
        t.add_candidate("127.0.0.1:9", FoundVia::Dht);
        t.mark_own("127.0.0.1:9");
        assert!(
            !t.add_candidate("127.0.0.1:9", FoundVia::Exchange),
            "never lists itself"
        );
        let id = PeerId::from_bytes([2; 32]);
        t.add_candidate("127.0.0.1:1", FoundVia::Dht);
        t.add_candidate("127.0.0.1:2", FoundVia::Exchange);
        t.confirm("127.0.0.1:1", id, v(), 1, 1);
        t.confirm("127.0.0.1:2", id, v(), 1, 2);
        assert_eq!(t.all().len(), 1, "one entry per transport key");
        // Another run of a node, or its other deployment, has a key of its own.
        t.add_candidate("127.0.0.1:3", FoundVia::Dht);
        t.confirm("127.0.0.1:3", PeerId::from_bytes([3; 32]), v(), 1, 3);
        assert_eq!(t.all().len(), 2, "two keys, two peers");
        let mut full = PeerTable::new(1);
        full.add_candidate("a:1", FoundVia::Dht);
        assert!(!full.add_candidate("b:1", FoundVia::Dht), "bounded");
    }
}
