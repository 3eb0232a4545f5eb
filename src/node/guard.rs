//! The gate in front of the public port: per-address connection counts and request rates,
//! and a misbehaviour score that bans an address for a while (like Bitcoin Core's). Pure:
//! the accept loop, the HTTP server and the peer wire ask it and report to it; time comes
//! in as milliseconds.
//!
//! An address is an IPv4 address, or an IPv6 /64 network (the port, and an IPv6 host's low
//! 64 bits, are the sender's to choose): see [`address`]. Addresses the operator trusts
//! (node.ini `[limits] trusted`) are never limited or banned.

pub use crate::config::node::Limits;
use serde::Serialize;
use std::collections::HashMap;
use std::net::IpAddr;

/// The address a connection from `ip` counts for: IPv4 as it is (also when mapped into
/// IPv6), IPv6 by its /64 network.
pub fn address(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut o = v6.octets();
                o[8..].fill(0);
                IpAddr::V6(o.into())
            }
        },
    }
}

/// What each kind of misbehaviour costs. An address reaching [`BAN_SCORE`] is banned.
///
/// Only what no honest node or client of any version does counts. Requests beyond the rate
/// are answered 429, and malformed or unknown requests 400 or 404, but none of those is held
/// against an address: a burst is not misbehaviour, and another version's node may send
/// fields or routes this one does not know (BitTorrent clients, too, try an encrypted
/// handshake that looks like garbage before the plain one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Offense {
    /// A record whose encoding or signature is not valid: never sent by an honest node.
    Forged,
    /// A peer-wire message against the protocol (a bad request, an unrequested piece, a
    /// file this node does not offer).
    Protocol,
    /// Request heads (or paths) too large.
    BadHead,
    /// A body that arrived too slowly.
    Slow,
}

impl Offense {
    /// Its name, as the peers view spells it.
    pub fn name(self) -> &'static str {
        match self {
            Offense::Forged => "forged",
            Offense::Protocol => "protocol",
            Offense::BadHead => "bad_head",
            Offense::Slow => "slow",
        }
    }

    pub fn points(self) -> u32 {
        match self {
            Offense::Forged => 50,
            Offense::Protocol | Offense::BadHead | Offense::Slow => 20,
        }
    }
}

/// A score at which an address is banned.
pub const BAN_SCORE: u32 = 100;
/// How long a ban for misbehaviour lasts.
pub const BAN_MS: u64 = 60 * 60 * 1000;
/// A score falls by one point per this many milliseconds.
pub const DECAY_MS: u64 = 6_000;
/// Addresses tracked at most (those with no connection and the least to remember go first).
pub const MAX_TRACKED: usize = 4096;
/// Entries forgotten at once when the table is full of scores and bans.
const EVICTED_AT_ONCE: usize = MAX_TRACKED / 8;

#[derive(Debug, Clone, Default)]
struct Entry {
    connections: usize,
    wire: usize,
    body_bytes: u64,
    score: u32,
    /// When `score` was last brought up to date.
    scored_at: u64,
    banned_until: Option<u64>,
    /// Banned by the operator (until unbanned, or `banned_until`).
    manual: bool,
    why: Option<Offense>,
    tokens: f64,
    tokens_at: u64,
}

impl Entry {
    fn decay(&mut self, now: u64) {
        let steps = now.saturating_sub(self.scored_at) / DECAY_MS;
        self.score = self.score.saturating_sub(steps.min(u32::MAX as u64) as u32);
        self.scored_at += steps * DECAY_MS;
    }

    fn banned(&self, now: u64) -> bool {
        self.banned_until.is_some_and(|t| t > now)
    }

    fn idle(&self, now: u64) -> bool {
        self.connections == 0 && !self.banned(now) && self.score == 0
    }
}

/// Whether a new connection may proceed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    Yes,
    Banned,
    /// This address has [`Limits::connections_per_address`] open already.
    AddressFull,
    /// The port has [`Limits::connections`] open already.
    Full,
}

/// One address the guard knows something about, for `cod peers` and the TUI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct AddressState {
    pub address: IpAddr,
    pub connections: usize,
    pub score: u32,
    /// Unix milliseconds until which it is banned.
    pub banned_until: Option<u64>,
    pub manual: bool,
    /// The offense that last raised its score.
    pub last_offense: Option<Offense>,
}

#[derive(Debug, Default)]
pub struct Guard {
    limits: Limits,
    by_addr: HashMap<IpAddr, Entry>,
    connections: usize,
    wire: usize,
    body_bytes: u64,
}

impl Guard {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            by_addr: HashMap::new(),
            connections: 0,
            wire: 0,
            body_bytes: 0,
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Is `ip` trusted (node.ini `[limits] trusted`): never limited or banned?
    pub fn trusted(&self, ip: &IpAddr) -> bool {
        self.limits.trusted.iter().any(|t| address(*t) == *ip)
    }

    /// A connection from `ip` arrived: may it proceed? If so it counts until [`Guard::release`].
    pub fn admit(&mut self, ip: IpAddr, now: u64) -> Admit {
        let ip = address(ip);
        let trusted = self.trusted(&ip);
        if self.by_addr.get(&ip).is_some_and(|e| e.banned(now)) && !trusted {
            return Admit::Banned;
        }
        if self.connections >= self.limits.connections {
            return Admit::Full;
        }
        let per = self.limits.connections_per_address;
        if !trusted && self.by_addr.get(&ip).is_some_and(|e| e.connections >= per) {
            return Admit::AddressFull;
        }
        self.make_room(now);
        self.entry(ip, now).connections += 1;
        self.connections += 1;
        Admit::Yes
    }

    /// A connection [`Guard::admit`]ted from `ip` closed.
    pub fn release(&mut self, ip: IpAddr) {
        let ip = address(ip);
        if let Some(e) = self.by_addr.get_mut(&ip)
            && e.connections > 0
        {
            e.connections -= 1;
            self.connections -= 1;
        }
    }

    /// An admitted connection turned out to be peer wire: may it have one of the few slots
    /// (held until [`Guard::release_wire`])? Seeding is cheap per connection but slots are
    /// few, so one address cannot take them all.
    pub fn admit_wire(&mut self, ip: IpAddr) -> bool {
        let ip = address(ip);
        let trusted = self.trusted(&ip);
        let per = self.limits.peer_wire_per_address;
        let Some(e) = self.by_addr.get_mut(&ip) else {
            return false; // only admitted connections ask
        };
        if self.wire >= self.limits.peer_wire || (!trusted && e.wire >= per) {
            return false;
        }
        e.wire += 1;
        self.wire += 1;
        true
    }

    pub fn release_wire(&mut self, ip: IpAddr) {
        let ip = address(ip);
        if let Some(e) = self.by_addr.get_mut(&ip)
            && e.wire > 0
        {
            e.wire -= 1;
            self.wire -= 1;
        }
    }

    /// `bytes` more of a request body from `ip` are about to be held: within the budgets
    /// (in all, and per address)? If so they count until [`Guard::release_body`].
    pub fn reserve_body(&mut self, ip: IpAddr, bytes: u64) -> bool {
        let ip = address(ip);
        let trusted = self.trusted(&ip);
        let per = self.limits.body_bytes_per_address;
        let total = self.limits.body_bytes;
        let Some(e) = self.by_addr.get_mut(&ip) else {
            return false;
        };
        if self.body_bytes + bytes > total || (!trusted && e.body_bytes + bytes > per) {
            return false;
        }
        e.body_bytes += bytes;
        self.body_bytes += bytes;
        true
    }

    pub fn release_body(&mut self, ip: IpAddr, bytes: u64) {
        let ip = address(ip);
        if let Some(e) = self.by_addr.get_mut(&ip) {
            let n = bytes.min(e.body_bytes);
            e.body_bytes -= n;
            self.body_bytes -= n;
        }
    }

    pub fn is_banned(&self, ip: &IpAddr, now: u64) -> bool {
        let ip = &address(*ip);
        !self.trusted(ip) && self.by_addr.get(ip).is_some_and(|e| e.banned(now))
    }

    /// A request from `ip`: within its rate? (A token bucket.)
    pub fn allow_request(&mut self, ip: IpAddr, now: u64) -> bool {
        let ip = address(ip);
        if self.trusted(&ip) {
            return true;
        }
        let (rate, burst) = (
            f64::from(self.limits.requests_per_second),
            f64::from(self.limits.request_burst),
        );
        let e = self.entry(ip, now);
        let elapsed = now.saturating_sub(e.tokens_at) as f64 / 1000.0;
        e.tokens = (e.tokens + elapsed * rate).min(burst);
        e.tokens_at = now;
        if e.tokens >= 1.0 {
            e.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// `ip` misbehaved. Returns true if this banned it.
    pub fn offended(&mut self, ip: IpAddr, offense: Offense, now: u64) -> bool {
        let ip = address(ip);
        if self.trusted(&ip) {
            return false;
        }
        self.make_room(now);
        let e = self.entry(ip, now);
        e.decay(now);
        e.score = e.score.saturating_add(offense.points());
        e.why = Some(offense);
        if e.score >= BAN_SCORE && !e.banned(now) {
            e.banned_until = Some(now + BAN_MS);
            e.manual = false;
            return true;
        }
        false
    }

    /// The operator bans `ip` until `until` (unix ms; `u64::MAX`: until unbanned).
    pub fn ban(&mut self, ip: IpAddr, until: u64, now: u64) {
        let ip = address(ip);
        let e = self.entry(ip, now);
        e.banned_until = Some(until);
        e.manual = true;
    }

    /// Lifts a ban and forgets the score; returns whether `ip` was banned.
    pub fn unban(&mut self, ip: &IpAddr, now: u64) -> bool {
        let ip = &address(*ip);
        match self.by_addr.get_mut(ip) {
            Some(e) => {
                let was = e.banned(now);
                e.banned_until = None;
                e.manual = false;
                e.score = 0;
                was
            }
            None => false,
        }
    }

    /// Addresses banned, scored or connected, worst first.
    pub fn list(&mut self, now: u64) -> Vec<AddressState> {
        let mut out: Vec<AddressState> = self
            .by_addr
            .iter_mut()
            .filter_map(|(ip, e)| {
                e.decay(now);
                (!e.idle(now)).then(|| AddressState {
                    address: *ip,
                    connections: e.connections,
                    score: e.score,
                    banned_until: e.banned_until.filter(|t| *t > now),
                    manual: e.manual,
                    last_offense: e.why,
                })
            })
            .collect();
        out.sort_by_key(|a| {
            (
                std::cmp::Reverse(a.banned_until.is_some()),
                std::cmp::Reverse(a.score),
                a.address,
            )
        });
        out
    }

    /// Manual bans still in force: what is kept across restarts.
    pub fn manual_bans(&self, now: u64) -> Vec<(IpAddr, u64)> {
        let mut v: Vec<(IpAddr, u64)> = self
            .by_addr
            .iter()
            .filter(|(_, e)| e.manual && e.banned(now))
            .map(|(ip, e)| (*ip, e.banned_until.unwrap_or(u64::MAX)))
            .collect();
        v.sort();
        v
    }

    pub fn connections(&self) -> usize {
        self.connections
    }

    fn entry(&mut self, ip: IpAddr, now: u64) -> &mut Entry {
        let burst = f64::from(self.limits.request_burst);
        self.by_addr.entry(ip).or_insert_with(|| Entry {
            scored_at: now,
            tokens: burst,
            tokens_at: now,
            ..Entry::default()
        })
    }

    /// Keeps the table at most [`MAX_TRACKED`] long: forgets addresses with nothing to
    /// remember, then the least scored without connections or bans.
    fn make_room(&mut self, now: u64) {
        if self.by_addr.len() < MAX_TRACKED {
            return;
        }
        self.by_addr.retain(|_, e| {
            e.decay(now);
            !e.idle(now)
        });
        // Still full (of scores, or of bans from many addresses): the bans and scores that
        // matter least go — an eighth of the table at once, so that a flood from many
        // addresses costs one scan per [`EVICTED_AT_ONCE`] of them, not one per address.
        // Connections and the operator's bans stay.
        if self.by_addr.len() >= MAX_TRACKED {
            let mut least: Vec<((u64, u32), IpAddr)> = self
                .by_addr
                .iter()
                .filter(|(_, e)| e.connections == 0 && !e.manual)
                .map(|(ip, e)| ((e.banned_until.unwrap_or(0), e.score), *ip))
                .collect();
            let n = EVICTED_AT_ONCE.min(least.len());
            if n > 0 {
                least.select_nth_unstable(n - 1);
                for (_, ip) in &least[..n] {
                    self.by_addr.remove(ip);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_offense_is_named_as_it_is_serialized() {
        for o in [
            Offense::Forged,
            Offense::Protocol,
            Offense::BadHead,
            Offense::Slow,
        ] {
            assert_eq!(serde_json::json!(o), o.name());
        }
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    fn small() -> Limits {
        Limits {
            connections: 5,
            connections_per_address: 2,
            requests_per_second: 10,
            request_burst: 20,
            peer_wire: 3,
            peer_wire_per_address: 2,
            body_bytes: 1 << 20,
            body_bytes_per_address: 1 << 20,
            trusted: vec![ip(1)],
            ..Limits::default()
        }
    }

    #[test]
    fn body_bytes_in_flight_are_budgeted() {
        let mut g = Guard::new(Limits {
            body_bytes: 100,
            body_bytes_per_address: 60,
            ..small()
        });
        assert!(!g.reserve_body(ip(2), 1), "not admitted first");
        g.admit(ip(2), 0);
        g.admit(ip(3), 0);
        assert!(g.reserve_body(ip(2), 50));
        assert!(!g.reserve_body(ip(2), 11), "per address");
        assert!(g.reserve_body(ip(3), 50));
        g.admit(ip(1), 0);
        assert!(!g.reserve_body(ip(1), 1), "in all, trusted or not");
        g.release_body(ip(2), 50);
        g.release_body(ip(2), 50); // more than held changes nothing
        assert!(g.reserve_body(ip(1), 50));
        assert_eq!(g.body_bytes, 100);
    }

    #[test]
    fn peer_wire_slots_are_few_and_shared_out() {
        let mut g = Guard::new(Limits {
            connections: 100,
            connections_per_address: 10,
            ..small()
        });
        assert!(!g.admit_wire(ip(2)), "not admitted first");
        for _ in 0..4 {
            g.admit(ip(2), 0);
        }
        g.admit(ip(3), 0);
        assert!(g.admit_wire(ip(2)));
        assert!(g.admit_wire(ip(2)));
        assert!(!g.admit_wire(ip(2)), "two per address");
        assert!(g.admit_wire(ip(3)));
        g.admit(ip(4), 0);
        assert!(!g.admit_wire(ip(4)), "three in all");
        g.release_wire(ip(2));
        assert!(g.admit_wire(ip(4)));
    }

    #[test]
    fn connections_are_capped_per_address_and_in_all() {
        let mut g = Guard::new(small());
        assert_eq!(g.admit(ip(2), 0), Admit::Yes);
        assert_eq!(g.admit(ip(2), 0), Admit::Yes);
        assert_eq!(g.admit(ip(2), 0), Admit::AddressFull);
        g.release(ip(2));
        assert_eq!(g.admit(ip(2), 0), Admit::Yes);
        // A trusted address is not capped per address, but counts toward the total.
        assert_eq!(g.admit(ip(1), 0), Admit::Yes);
        assert_eq!(g.admit(ip(1), 0), Admit::Yes);
        assert_eq!(g.admit(ip(1), 0), Admit::Yes);
        assert_eq!(g.admit(ip(3), 0), Admit::Full);
        assert_eq!(g.connections(), 5);
        for _ in 0..10 {
            g.release(ip(2)); // more releases than admits change nothing
        }
        assert_eq!(g.connections(), 3);
        assert_eq!(g.admit(ip(3), 0), Admit::Yes);
    }

    #[test]
    fn requests_beyond_the_rate_are_refused_and_the_bucket_refills() {
        let mut g = Guard::new(small());
        let allowed = (0..100).filter(|_| g.allow_request(ip(2), 1000)).count();
        assert_eq!(allowed, 20, "the burst");
        assert!(!g.allow_request(ip(2), 1000));
        assert!(
            g.allow_request(ip(2), 1100),
            "a tenth of a second gives one"
        );
        assert!(!g.allow_request(ip(2), 1100));
        assert!((0..100).all(|_| g.allow_request(ip(1), 1000)), "trusted");
    }

    #[test]
    fn misbehaviour_bans_for_a_while_and_scores_decay() {
        let mut g = Guard::new(small());
        assert!(!g.offended(ip(2), Offense::Forged, 0));
        assert!(g.offended(ip(2), Offense::Forged, 0), "two forgeries ban");
        assert!(g.is_banned(&ip(2), 1));
        assert_eq!(g.admit(ip(2), 1), Admit::Banned);
        assert!(!g.is_banned(&ip(2), BAN_MS + 1), "bans end");
        // Slow offenses decay before they add up.
        assert!(!g.offended(ip(3), Offense::Slow, 0));
        for i in 1..50 {
            assert!(!g.offended(ip(3), Offense::Slow, i * 20 * DECAY_MS));
        }
        assert!(!g.offended(ip(1), Offense::Forged, 0));
        assert!(!g.offended(ip(1), Offense::Forged, 0));
        assert!(
            !g.is_banned(&ip(1), 0),
            "trusted addresses are never banned"
        );
    }

    #[test]
    fn the_operator_bans_and_unbans() {
        let mut g = Guard::new(small());
        g.ban(ip(7), u64::MAX, 0);
        assert!(g.is_banned(&ip(7), 1 << 60));
        assert_eq!(g.manual_bans(5), vec![(ip(7), u64::MAX)]);
        let listed = g.list(5);
        assert_eq!(listed[0].address, ip(7));
        assert!(listed[0].manual);
        assert!(g.unban(&ip(7), 5));
        assert!(!g.is_banned(&ip(7), 5));
        assert!(!g.unban(&ip(7), 5));
        assert!(g.manual_bans(5).is_empty());
        assert!(g.list(5).is_empty(), "nothing left to show");
    }

    #[test]
    fn ipv6_hosts_count_by_their_network() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(address(a), address(b));
        assert_ne!(address(a), address(c));
        let mapped: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
        assert_eq!(address(mapped), IpAddr::from([10, 1, 2, 3]));
        assert_eq!(address(ip(9)), ip(9));
    }

    #[test]
    fn the_table_stays_bounded_and_keeps_what_matters() {
        let mut g = Guard::new(Limits {
            connections: 100_000,
            ..small()
        });
        g.ban(IpAddr::from([10, 0, 0, 1]), u64::MAX, 0);
        assert_eq!(g.admit(IpAddr::from([10, 0, 0, 2]), 0), Admit::Yes);
        for i in 0..(3 * MAX_TRACKED as u32) {
            let a = IpAddr::from((0x0b00_0000 + i).to_be_bytes());
            g.offended(a, Offense::Slow, 0);
            // Bans from many addresses do not grow it either.
            let b = IpAddr::from((0x0c00_0000 + i).to_be_bytes());
            g.offended(b, Offense::Forged, 0);
            g.offended(b, Offense::Forged, 0);
        }
        assert!(g.by_addr.len() <= MAX_TRACKED);
        assert!(g.is_banned(&IpAddr::from([10, 0, 0, 1]), 0));
        assert_eq!(
            g.by_addr[&IpAddr::from([10, 0, 0, 2])].connections,
            1,
            "a connected address is never forgotten"
        );
    }
}
