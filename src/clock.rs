//! The wall clock: the one place cod reads it. Seconds since the Unix epoch are what records,
//! periods and signature requests carry; milliseconds are the guard's rate limits and bans.
//! (A clock before the epoch reads as 0.)
//!
//! A node reads the time through its [`Clock`] (`Shared::now`): the system's, or one a test
//! sets and advances ([`ManualClock`]) to run settlement periods, expiries and skew between
//! nodes without waiting for them. The guard's rate limits and bans are about time that
//! really passed, and read the system's clock always.

use std::sync::atomic::{AtomicU64, Ordering};

/// How far apart two nodes' clocks may be and still agree (seconds): a proposal dated
/// further than this from a signer's clock is refused, and a record from a peer dated more
/// than this after the node's clock is held back until the clock gets there (Bitcoin's rule
/// for block times: a chain cannot be dated into the future, since everything after waits).
pub const MAX_CLOCK_SKEW: u64 = 600;
use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Where a node reads the time.
pub trait Clock: Send + Sync {
    /// Seconds since the Unix epoch.
    fn now(&self) -> u64;
}

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> u64 {
        now()
    }
}

/// A clock that reads what it was last set to: it moves only when told.
#[derive(Debug)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    pub fn new(at: u64) -> Self {
        Self(AtomicU64::new(at))
    }

    pub fn set(&self, at: u64) {
        self.0.store(at, Ordering::SeqCst);
    }

    /// Moves the clock `secs` seconds on (saturating).
    pub fn advance(&self, secs: u64) {
        let _ = self
            .0
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |t| {
                Some(t.saturating_add(secs))
            });
    }
}

impl Clock for ManualClock {
    fn now(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let c = ManualClock::new(1_000);
        assert_eq!(c.now(), 1_000);
        c.advance(20);
        assert_eq!(c.now(), 1_020);
        c.set(5);
        assert_eq!(c.now(), 5);
        c.set(u64::MAX - 1);
        c.advance(10);
        assert_eq!(c.now(), u64::MAX);
    }

    #[test]
    fn the_system_clock_is_the_wall_clock() {
        let before = now();
        let read = SystemClock.now();
        assert!(before <= read && read <= now());
    }
}
