//! The server's coarse clock and memcached's expiry-time arithmetic.
//!
//! Cache time is whole seconds since a point just before the process started (like
//! memcached's `current_time`), kept in an atomic that the listener thread refreshes, so
//! request handling never calls into the kernel for the time. Starting at 2 makes the
//! "already expired" marker 1 always lie in the past.

use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::time::{SystemTime, UNIX_EPOCH};

/// Relative expiry times are at most 30 days; larger values are absolute unix times.
pub const MAX_RELATIVE_EXPTIME: i64 = 60 * 60 * 24 * 30;

/// Cache time of an item that must be treated as expired already.
const EXPIRED: u32 = 1;

pub struct Clock {
    /// Unix time at cache time 0.
    epoch: u64,
    now: AtomicU32,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Clock {
    pub fn new() -> Clock {
        let unix = unix_now();
        Clock {
            epoch: unix.saturating_sub(2),
            now: AtomicU32::new(2),
        }
    }

    /// The clock of a warm restart: cache time continues from a process whose cache time 0
    /// was unix time `epoch`, and which stopped at cache time `stopped_at`. With the
    /// system clock steady, the time the server was down passes for the items too (to
    /// the second, including a restart within the same second). Should the system clock
    /// have gone back since, cache time resumes where it stopped rather than go back.
    pub fn resume(epoch: u64, stopped_at: u32) -> Clock {
        let unix = unix_now();
        let epoch = epoch.min(unix.saturating_sub(u64::from(stopped_at)));
        let clock = Clock {
            epoch,
            now: AtomicU32::new(2),
        };
        clock.tick();
        clock
    }

    /// Re-read the system clock; called a few times a second by the listener thread.
    pub fn tick(&self) {
        let now = unix_now().saturating_sub(self.epoch).max(2);
        self.now.store(u32::try_from(now).unwrap_or(u32::MAX), Relaxed);
    }

    /// Move the clock `secs` forward without waiting (the fuzz harness: time passes for
    /// expiry, deterministically; a later [`Clock::tick`] goes back to real time).
    #[doc(hidden)]
    pub fn advance(&self, secs: u32) {
        self.now.fetch_add(secs, Relaxed);
    }

    /// Current cache time.
    pub fn now(&self) -> u32 {
        self.now.load(Relaxed)
    }

    /// Unix time of the process start as memcached reports it (`time - uptime`).
    pub fn started_unix(&self) -> u64 {
        self.epoch
    }

    pub fn unix(&self) -> u64 {
        self.epoch + u64::from(self.now())
    }

    /// Seconds since start, for `uptime`.
    pub fn uptime(&self) -> u32 {
        self.now().saturating_sub(2)
    }

    /// The wire's exptime (0 = never, negative = expired, up to 30 days = relative,
    /// otherwise a unix time) as cache time (0 = never).
    pub fn expiry(&self, exptime: i64) -> u32 {
        self.expiry_at(exptime, self.now())
    }

    /// [`Clock::expiry`] counted from cache time `now` (a store whose value took a while
    /// to arrive counts from its header, as memcached does).
    pub fn expiry_at(&self, exptime: i64, now: u32) -> u32 {
        if exptime == 0 {
            return 0;
        }
        if exptime < 0 {
            return EXPIRED;
        }
        if exptime > MAX_RELATIVE_EXPTIME {
            let abs = exptime as u64;
            if abs <= self.epoch {
                return EXPIRED;
            }
            return u32::try_from(abs - self.epoch).unwrap_or(u32::MAX);
        }
        now.saturating_add(exptime as u32)
    }

    /// Cache time as unix time, for `stats cachedump` (0 stays 0).
    pub fn to_unix(&self, cache_time: u32) -> u64 {
        if cache_time == 0 {
            0
        } else {
            self.epoch + u64::from(cache_time)
        }
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exptime_rules() {
        let c = Clock {
            epoch: 1_000_000_000,
            now: AtomicU32::new(100),
        };
        assert_eq!(c.expiry(0), 0);
        assert_eq!(c.expiry(-1), EXPIRED);
        assert_eq!(c.expiry(10), 110);
        assert_eq!(c.expiry(MAX_RELATIVE_EXPTIME), 100 + MAX_RELATIVE_EXPTIME as u32);
        assert_eq!(c.expiry(1_000_000_500), 500);
        assert_eq!(c.expiry(MAX_RELATIVE_EXPTIME + 1), EXPIRED);
        assert_eq!(c.to_unix(500), 1_000_000_500);
    }
}
