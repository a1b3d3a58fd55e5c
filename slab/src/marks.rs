//! When was an item last written? Answered without storing a time in the item.
//!
//! The 32-byte header has no room for a timestamp, but every write gives the item a fresh
//! CAS unique from one global, increasing counter. So a short list of (first unique issued
//! in second `t`, `t`) marks is enough to date any item: its write time is the time of the
//! last mark at or below its unique. The list gains at most one mark per second of writes,
//! so recording costs one relaxed load per write; when it is full its older half is thinned
//! out, so old items are dated more coarsely (never later than their real write time).
//!
//! This dates the last *write* (store, incr/decr, meta invalidation), which is what meta's
//! `l` flag and `me`'s `la=` report here. memcached reports the last access, but only
//! refreshes it on an item's second fetch, so for items read at most once the two agree.

use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::Mutex;

/// Most marks kept; 16 bytes each.
const MAX_MARKS: usize = 4096;

pub(crate) struct WriteMarks {
    /// Cache time of the newest mark: the fast path compares against it without the lock.
    newest: AtomicU32,
    /// (CAS unique, cache time), both non-decreasing.
    marks: Mutex<Vec<(u64, u32)>>,
}

impl WriteMarks {
    pub(crate) fn new() -> WriteMarks {
        WriteMarks {
            newest: AtomicU32::new(0),
            marks: Mutex::new(Vec::new()),
        }
    }

    /// Record that unique `cas` was issued at cache time `now`.
    pub(crate) fn note(&self, cas: u64, now: u32) {
        if self.newest.load(Relaxed) >= now {
            return;
        }
        let mut marks = self.marks.lock().unwrap_or_else(|e| e.into_inner());
        let (last_cas, last_time) = marks.last().copied().unwrap_or((0, 0));
        if last_time >= now {
            return;
        }
        if marks.len() >= MAX_MARKS {
            thin_older_half(&mut marks);
        }
        // Uniques are taken before the lock, so a racing writer may hold a smaller one
        // than the last mark: keep the list sorted (this only dates that item earlier).
        marks.push((cas.max(last_cas), now));
        self.newest.store(now, Relaxed);
    }

    /// Cache time at which the item with unique `cas` was written (at the latest); 0 if
    /// nothing was ever recorded.
    pub(crate) fn written_at(&self, cas: u64) -> u32 {
        let marks = self.marks.lock().unwrap_or_else(|e| e.into_inner());
        let n = marks.partition_point(|&(c, _)| c <= cas);
        match n {
            0 => marks.first().map_or(0, |m| m.1),
            n => marks[n - 1].1,
        }
    }
}

impl WriteMarks {
    /// The marks, oldest first, for a warm restart's saved state.
    pub(crate) fn to_vec(&self) -> Vec<(u64, u32)> {
        self.marks.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Take the marks a stopped process saved (oldest first; an unsorted or oversized
    /// list is refused, so dating stays monotonic).
    pub(crate) fn restore(&self, saved: Vec<(u64, u32)>) -> bool {
        let sorted = saved.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1);
        if !sorted || saved.len() > MAX_MARKS {
            return false;
        }
        self.newest.store(saved.last().map_or(0, |m| m.1), Relaxed);
        *self.marks.lock().unwrap_or_else(|e| e.into_inner()) = saved;
        true
    }
}

/// Drop every other mark of the older half: recent writes keep one-second resolution, older
/// ones lose it gradually.
fn thin_older_half(marks: &mut Vec<(u64, u32)>) {
    let half = marks.len() / 2;
    let mut i = 0;
    marks.retain(|_| {
        let keep = i >= half || i % 2 == 0;
        i += 1;
        keep
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_writes_to_the_second() {
        let m = WriteMarks::new();
        assert_eq!(m.written_at(5), 0);
        m.note(1, 10);
        m.note(2, 10);
        m.note(3, 12);
        m.note(9, 15);
        assert_eq!(m.written_at(1), 10);
        assert_eq!(m.written_at(2), 10);
        assert_eq!(m.written_at(3), 12);
        assert_eq!(m.written_at(8), 12);
        assert_eq!(m.written_at(9), 15);
        assert_eq!(m.written_at(1000), 15);
        // A late writer with an older unique never breaks the order.
        m.note(4, 16);
        assert_eq!(m.written_at(9), 16);
        assert_eq!(m.written_at(8), 12);
    }

    #[test]
    fn stays_bounded_and_never_dates_later() {
        let m = WriteMarks::new();
        for t in 1..=20_000u32 {
            m.note(u64::from(t) * 10, t);
        }
        assert!(m.marks.lock().unwrap().len() <= MAX_MARKS);
        for t in [1u32, 50, 5_000, 15_000, 19_999, 20_000] {
            let at = m.written_at(u64::from(t) * 10 + 5);
            assert!(at <= t, "item written at {t} dated {at}");
        }
        // The newest marks keep full resolution.
        assert_eq!(m.written_at(199_995), 19_999);
    }
}
