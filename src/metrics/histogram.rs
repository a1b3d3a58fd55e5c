//! A histogram with power-of-two buckets, written by one thread and read by any.
//!
//! Bucket `b` counts the values `v` with `2^(b-1) < v <= 2^b` (bucket 0: `v <= 1`); the
//! last bucket takes everything larger. Recording is a few instructions and two relaxed
//! load/store pairs: there is one writer, so no read-modify-write is needed.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Buckets: up to 2^(BUCKETS-2), then one for larger values.
pub const BUCKETS: usize = 32;

#[derive(Default)]
pub struct LogHistogram {
    buckets: [AtomicU64; BUCKETS],
    sum: AtomicU64,
}

/// The bucket of `value`: the smallest `b` with `value <= 2^b`, capped at the last.
#[inline]
pub fn bucket_of(value: u64) -> usize {
    let b = if value <= 1 {
        0
    } else {
        (u64::BITS - (value - 1).leading_zeros()) as usize
    };
    b.min(BUCKETS - 1)
}

impl LogHistogram {
    /// Count `value` (single writer).
    #[inline]
    pub fn record(&self, value: u64) {
        let bucket = &self.buckets[bucket_of(value)];
        bucket.store(bucket.load(Relaxed).wrapping_add(1), Relaxed);
        self.sum
            .store(self.sum.load(Relaxed).wrapping_add(value), Relaxed);
    }

    /// Add this histogram's counts and sum into `into`.
    pub fn add_to(&self, into: &mut Snapshot) {
        for (total, b) in into.buckets.iter_mut().zip(&self.buckets) {
            *total += b.load(Relaxed);
        }
        into.sum += self.sum.load(Relaxed);
    }
}

/// Summed counts of some histograms.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub buckets: [u64; BUCKETS],
    pub sum: u64,
}

impl Snapshot {
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// Take away an earlier snapshot of the same histograms (the counts only grow, so
    /// what is left is what was recorded since; wrapping like the counters themselves).
    pub fn subtract(&mut self, earlier: &Snapshot) {
        for (b, e) in self.buckets.iter_mut().zip(&earlier.buckets) {
            *b = b.wrapping_sub(*e);
        }
        self.sum = self.sum.wrapping_sub(earlier.sum);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_land_in_power_of_two_buckets() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(1), 0);
        assert_eq!(bucket_of(2), 1);
        assert_eq!(bucket_of(3), 2);
        assert_eq!(bucket_of(4), 2);
        assert_eq!(bucket_of(1024), 10);
        assert_eq!(bucket_of(1025), 11);
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
        let h = LogHistogram::default();
        for v in [1, 100, 100, 5000] {
            h.record(v);
        }
        let mut s = Snapshot::default();
        h.add_to(&mut s);
        assert_eq!((s.count(), s.sum), (4, 5201));
        assert_eq!(s.buckets[7], 2);
    }
}
