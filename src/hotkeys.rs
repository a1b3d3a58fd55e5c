//! Hot keys: an estimate of the most requested keys of the last 30 to 60 seconds.
//!
//! Each worker samples about one keyed request in [`SAMPLE_GAP`] (at random gaps, see
//! [`crate::metrics`], so a periodic load cannot hide a key between samples) into its own [`HotKeys`] sketch. A sketch is a space-saving top-K
//! list: a key already listed gains one; a new key takes a free slot, or the slot of the
//! least counted key and that key's count plus one, so a key requested more often than
//! 1 / K of the samples is never lost. Counts are kept per 30-second window, aligned to
//! the clock so every worker's windows coincide; the estimate covers the current window
//! and the previous one, and a window without samples forgets everything older.
//!
//! Only the sampling worker and a reader (`stats hotkeys`, `/metrics`) take a sketch's
//! lock, so it is uncontended on the request path. `-X` (no dumping: keys are data) turns
//! sampling off.

use std::collections::HashMap;

/// Mean number of keyed requests between two samples of a worker.
pub const SAMPLE_GAP: u32 = 64;
/// Keys one worker's sketch follows.
pub const CAPACITY: usize = 64;
/// Seconds in one counting window.
pub const WINDOW_SECS: u32 = 30;
/// Keys `stats hotkeys` lists at most.
pub const LISTED: usize = 20;

struct Slot {
    /// [`key_hash`] of `key`: the scan compares these, and bytes only on a match.
    hash: u64,
    key: Vec<u8>,
    /// Samples in the current window (with what the slot inherited when it was taken).
    current: u64,
    /// Samples in the previous window.
    previous: u64,
}

impl Slot {
    fn total(&self) -> u64 {
        self.current + self.previous
    }
}

/// One worker's sketch.
pub struct HotKeys {
    slots: Vec<Slot>,
    /// Index (cache seconds / [`WINDOW_SECS`]) of the current window.
    window: u32,
    /// Cache time when sampling began (the first window may be partial).
    since: u32,
}

impl HotKeys {
    /// An empty sketch that starts counting at cache time `now`.
    pub fn new(now: u32) -> HotKeys {
        HotKeys {
            slots: Vec::with_capacity(CAPACITY),
            window: now / WINDOW_SECS,
            since: now,
        }
    }

    /// Move the windows forward to the one holding `now`.
    fn advance(&mut self, now: u32) {
        let window = now / WINDOW_SECS;
        if window == self.window {
            return;
        }
        if window == self.window + 1 {
            for s in &mut self.slots {
                s.previous = s.current;
                s.current = 0;
            }
            self.slots.retain(|s| s.previous > 0);
        } else if window > self.window {
            self.slots.clear();
        }
        self.window = window.max(self.window);
    }

    /// Count one sampled request for `key` at cache time `now`.
    pub fn record(&mut self, key: &[u8], now: u32) {
        self.advance(now);
        let hash = key_hash(key);
        if let Some(s) = self.slots.iter_mut().find(|s| s.hash == hash && s.key == key) {
            s.current += 1;
            return;
        }
        if self.slots.len() < CAPACITY {
            self.slots.push(Slot {
                hash,
                key: key.to_vec(),
                current: 1,
                previous: 0,
            });
            return;
        }
        let Some(least) = self.slots.iter_mut().min_by_key(|s| s.total()) else {
            return;
        };
        let inherited = least.total();
        least.hash = hash;
        least.key.clear();
        least.key.extend_from_slice(key);
        least.current = inherited + 1;
        least.previous = 0;
    }

    /// Seconds the counts of this sketch cover at cache time `now` (at least 1).
    fn span(&self, now: u32) -> u32 {
        let window_start = self.window * WINDOW_SECS;
        let counted_from = window_start.saturating_sub(WINDOW_SECS).max(self.since);
        now.saturating_sub(counted_from).max(1)
    }

    /// Add each key's estimated requests per second at cache time `now` to `rates`.
    pub fn add_rates(&mut self, now: u32, rates: &mut HashMap<Vec<u8>, f64>) {
        self.advance(now);
        let per_sample = f64::from(SAMPLE_GAP) / f64::from(self.span(now));
        for s in &self.slots {
            *rates.entry(s.key.clone()).or_insert(0.0) += s.total() as f64 * per_sample;
        }
    }
}

/// A quick hash of a key (FNV-1a): enough to tell the sketch's 64 keys apart.
fn key_hash(key: &[u8]) -> u64 {
    key.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The hottest keys of `rates`, hottest first (ties by key), at most `limit`.
pub fn hottest(rates: HashMap<Vec<u8>, f64>, limit: usize) -> Vec<(Vec<u8>, f64)> {
    let mut list: Vec<_> = rates.into_iter().filter(|(_, r)| *r > 0.0).collect();
    list.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    list.truncate(limit);
    list
}

/// A key as a `STAT` name or a Prometheus label: printable ASCII as is, any other byte
/// (space, control, `%`, non-ASCII: binary protocol keys may hold them) as `%XX`.
pub fn printable_key(key: &[u8]) -> String {
    let mut out = String::with_capacity(key.len());
    for &b in key {
        if b.is_ascii_graphic() && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A gap between samples, uniform in `1..2*mean` (so averaging `mean`), from a small
/// xorshift generator: no need for quality, only for gaps that do not line up with a
/// periodic load.
pub fn next_gap(state: &mut u32, mean: u32) -> u32 {
    let mut x = *state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *state = x;
    1 + x % (2 * mean - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rates(sketch: &mut HotKeys, now: u32) -> Vec<(Vec<u8>, f64)> {
        let mut map = HashMap::new();
        sketch.add_rates(now, &mut map);
        hottest(map, LISTED)
    }

    #[test]
    fn the_most_sampled_key_comes_first() {
        let mut s = HotKeys::new(0);
        for i in 0..1000u32 {
            s.record(b"hot", 5);
            s.record(format!("cold{}", i % 300).as_bytes(), 5);
        }
        let list = rates(&mut s, 10);
        assert_eq!(list[0].0, b"hot");
        // 1000 samples over 10 s, each standing for SAMPLE_GAP requests.
        assert_eq!(list[0].1, 1000.0 * f64::from(SAMPLE_GAP) / 10.0);
        assert!(s.slots.len() <= CAPACITY);
    }

    #[test]
    fn old_windows_are_forgotten() {
        let mut s = HotKeys::new(0);
        s.record(b"a", 1);
        // Next window: still counted (previous window).
        s.record(b"b", WINDOW_SECS + 1);
        let keys: Vec<_> = rates(&mut s, WINDOW_SECS + 2).into_iter().map(|e| e.0).collect();
        assert_eq!(keys, vec![b"a".to_vec(), b"b".to_vec()]);
        // Two windows on, `a` is gone; after a silent window, everything is.
        assert_eq!(rates(&mut s, 2 * WINDOW_SECS + 1).len(), 1);
        assert!(rates(&mut s, 5 * WINDOW_SECS).is_empty());
    }

    #[test]
    fn keys_print_safely() {
        assert_eq!(printable_key(b"user:1"), "user:1");
        assert_eq!(printable_key(b"a b%\x00\xff"), "a%20b%25%00%FF");
    }

    #[test]
    fn gaps_average_the_sample_gap() {
        let mut state = 0x9e37_79b9;
        let n = 100_000;
        let total: u64 = (0..n).map(|_| u64::from(next_gap(&mut state, SAMPLE_GAP))).sum();
        let mean = total as f64 / f64::from(n);
        assert!((mean - f64::from(SAMPLE_GAP)).abs() < 1.0, "{mean}");
    }
}
