//! Per-prefix counters: `stats detail on|off|dump` and `-D <delimiter>`.
//!
//! While detail is on, every text or binary get, set-family store and delete counts under
//! its key's prefix (the bytes before the first delimiter; keys without one are not
//! counted), as memcached does; meta commands and incr/decr are not counted there either.
//! `stats detail dump` lists one `PREFIX <p> get <n> hit <n> set <n> del <n>` line per
//! prefix, sorted by prefix, and `stats reset` forgets them all.
//!
//! The request path pays one relaxed load ([`PrefixStats::enabled`]) while detail is off.
//! While on, a count takes a mutex: memcached serialises them on its global stats lock too,
//! and detail is a debugging aid, not a default.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Mutex;

/// The counts of one prefix.
#[derive(Default, Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrefixCounts {
    pub gets: u64,
    pub hits: u64,
    pub sets: u64,
    pub deletes: u64,
}

/// What a request counts under its prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrefixOp {
    /// A key looked up by a get; `hit`: it was found.
    Get { hit: bool },
    /// A store attempt (counted before it is tried, so refusals count too).
    Set,
    /// A delete attempt, found or not.
    Delete,
}

/// The per-prefix table and its on/off switch.
pub struct PrefixStats {
    enabled: AtomicBool,
    delimiter: u8,
    table: Mutex<BTreeMap<Box<[u8]>, PrefixCounts>>,
}

impl PrefixStats {
    /// `delimiter` is `-D`'s character; memcached compares keys with its first byte.
    pub fn new(delimiter: char, enabled: bool) -> PrefixStats {
        let mut utf8 = [0u8; 4];
        PrefixStats {
            enabled: AtomicBool::new(enabled),
            delimiter: delimiter.encode_utf8(&mut utf8).as_bytes()[0],
            table: Mutex::new(BTreeMap::new()),
        }
    }

    /// Whether requests are being counted (the one check on the request path).
    #[inline]
    pub fn enabled(&self) -> bool {
        self.enabled.load(Relaxed)
    }

    /// `stats detail on|off`: counts already made are kept either way.
    pub fn set_enabled(&self, on: bool) {
        self.enabled.store(on, Relaxed);
    }

    /// Count `op` under `key`'s prefix, if detail is on and the key has one.
    #[inline]
    pub fn record(&self, key: &[u8], op: PrefixOp) {
        if self.enabled() {
            self.record_slow(key, op);
        }
    }

    #[cold]
    fn record_slow(&self, key: &[u8], op: PrefixOp) {
        // memcached reads the key as a C string: a NUL ends it before any delimiter.
        let Some(end) = key
            .iter()
            .take_while(|&&b| b != 0)
            .position(|&b| b == self.delimiter)
        else {
            return;
        };
        let prefix = &key[..end];
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        let counts = match table.get_mut(prefix) {
            Some(counts) => counts,
            None => table.entry(prefix.into()).or_default(),
        };
        match op {
            PrefixOp::Get { hit } => {
                counts.gets += 1;
                counts.hits += u64::from(hit);
            }
            PrefixOp::Set => counts.sets += 1,
            PrefixOp::Delete => counts.deletes += 1,
        }
    }

    /// `stats reset`: forget every prefix.
    pub fn clear(&self) {
        self.table.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// `stats detail dump`: the `PREFIX ...` lines, each ending in `\r\n`, then `END\r\n`
    /// (the text reply, and the value of binary's single `detailed` stat).
    pub fn dump(&self) -> Vec<u8> {
        use std::io::Write;
        let table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::with_capacity(table.len() * 64 + 5);
        for (prefix, c) in table.iter() {
            out.extend_from_slice(b"PREFIX ");
            out.extend_from_slice(prefix);
            let _ = write!(
                out,
                " get {} hit {} set {} del {}\r\n",
                c.gets, c.hits, c.sets, c.deletes
            );
        }
        out.extend_from_slice(b"END\r\n");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::{PrefixOp, PrefixStats};

    #[test]
    fn counts_by_prefix_only_while_on() {
        let p = PrefixStats::new(':', false);
        p.record(b"foo:1", PrefixOp::Set);
        assert_eq!(p.dump(), b"END\r\n");
        p.set_enabled(true);
        p.record(b"foo:1", PrefixOp::Set);
        p.record(b"foo:2", PrefixOp::Get { hit: true });
        p.record(b"foo:3", PrefixOp::Get { hit: false });
        p.record(b"bar:", PrefixOp::Delete);
        p.record(b"nodelimiter", PrefixOp::Set);
        p.record(b"a\0b:c", PrefixOp::Set);
        assert_eq!(
            String::from_utf8(p.dump()).unwrap(),
            "PREFIX bar get 0 hit 0 set 0 del 1\r\nPREFIX foo get 2 hit 1 set 1 del 0\r\nEND\r\n"
        );
        p.set_enabled(false);
        p.record(b"foo:1", PrefixOp::Set);
        assert!(String::from_utf8(p.dump())
            .unwrap()
            .contains("PREFIX foo get 2 hit 1 set 1"));
        p.clear();
        assert_eq!(p.dump(), b"END\r\n");
    }

    #[test]
    fn delimiter_is_configurable_and_prefix_may_be_empty() {
        let p = PrefixStats::new('/', true);
        p.record(b"a/b:c", PrefixOp::Set);
        p.record(b"/x", PrefixOp::Get { hit: false });
        assert_eq!(
            String::from_utf8(p.dump()).unwrap(),
            "PREFIX  get 1 hit 0 set 0 del 0\r\nPREFIX a get 0 hit 0 set 1 del 0\r\nEND\r\n"
        );
    }
}
