//! The global budget for read buffers beyond a connection's free allowance: memory that
//! partial requests (an append or prepend value still arriving, a long multi-get line) hold
//! outside the cache. Large set, add, replace and cas values go into a reserved item
//! instead (see `crate::net::conn`).
//!
//! A connection may buffer up to [`FREE_ALLOWANCE`] bytes of input on its own; above that
//! it reserves what it holds here first. Without `-o read_buf_mem_limit` the budget is
//! what the cache has not allocated of `-m` plus a twentieth of `-m`, so partial values
//! count toward `-m` (an empty cache lends its unused memory, a full one keeps 5 % of
//! `-m` for values in flight): the process stays within `-m` x 1.05 plus fixed costs,
//! however many clients stop halfway through a value. With the option, its size is the
//! budget. A store that cannot reserve is refused as memcached refuses one it cannot
//! allocate; any other request that cannot, closes the connection (`read_buf_oom`).
//!
//! Reservations are taken and given back only when a request outgrows the allowance and
//! when it completes, never per ordinary request.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// Input bytes a connection buffers without a reservation.
pub const FREE_ALLOWANCE: usize = 64 * 1024;

pub struct ReadBudget {
    /// `-o read_buf_mem_limit` in bytes; 0: derived from `-m` and the cache's use.
    explicit: usize,
    used: AtomicUsize,
}

impl ReadBudget {
    pub fn new(read_buf_mem_limit: usize) -> ReadBudget {
        ReadBudget {
            explicit: read_buf_mem_limit,
            used: AtomicUsize::new(0),
        }
    }

    /// Reserve `bytes` more, if the budget has them.
    pub fn reserve(&self, bytes: usize, cache: &slabcache::Cache) -> bool {
        let limit = if self.explicit > 0 {
            self.explicit
        } else {
            let m = cache.memory_limit();
            m.saturating_sub(cache.malloced_bytes()) + m / 20
        };
        self.used
            .fetch_update(Relaxed, Relaxed, |used| {
                (used.checked_add(bytes)? <= limit).then_some(used + bytes)
            })
            .is_ok()
    }

    pub fn release(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Relaxed);
    }

    /// Bytes reserved now.
    pub fn used(&self) -> usize {
        self.used.load(Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_explicit_limit_bounds_reservations() {
        let (ctx, _) = crate::context::for_tests(&[]);
        let b = ReadBudget::new(1 << 20);
        assert!(b.reserve(600 << 10, &ctx.cache));
        assert!(!b.reserve(600 << 10, &ctx.cache));
        b.release(600 << 10);
        assert!(b.reserve(1 << 20, &ctx.cache));
        assert_eq!(b.used(), 1 << 20);
    }

    #[test]
    fn without_a_limit_the_cache_lends_what_it_has_not_allocated() {
        let (ctx, _) = crate::context::for_tests(&[]); // -m 8
        let b = ReadBudget::new(0);
        assert!(b.reserve(8 << 20, &ctx.cache));
        assert!(!b.reserve(1 << 20, &ctx.cache));
    }
}
