//! Server counters (with the engine's own counters, its
//! page mover's and crawler's, and the run-time settings of [`crate::maintain`]).
//!
//! Each worker thread owns a [`Counters`] block and is its only writer, so a bump is a
//! plain load and store on an atomic (no locked instruction on the hot path); `stats`
//! sums the blocks of all workers. `stats reset` records a baseline to subtract rather
//! than writing into blocks other threads own.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

macro_rules! counters {
    ($($name:ident),* $(,)?) => {
        /// One worker's counters (single writer: its own thread).
        #[derive(Default)]
        pub struct Counters { $(pub $name: AtomicU64,)* }

        /// A point-in-time sum of counters.
        #[derive(Default, Clone, Copy, Debug)]
        pub struct Totals { $(pub $name: u64,)* }

        impl Counters {
            pub fn snapshot(&self) -> Totals {
                Totals { $($name: self.$name.load(Relaxed),)* }
            }
        }

        impl Totals {
            fn add(&mut self, other: &Totals) {
                $(self.$name = self.$name.wrapping_add(other.$name);)*
            }
            fn sub(&mut self, other: &Totals) {
                $(self.$name = self.$name.wrapping_sub(other.$name);)*
            }
        }
    };
}

counters!(
    cmd_get,
    cmd_set,
    cmd_flush,
    cmd_touch,
    cmd_meta,
    get_hits,
    get_misses,
    delete_misses,
    delete_hits,
    incr_misses,
    incr_hits,
    decr_misses,
    decr_hits,
    cas_misses,
    cas_hits,
    cas_badval,
    touch_hits,
    touch_misses,
    store_too_large,
    store_no_memory,
    auth_cmds,
    auth_errors,
    bytes_read,
    bytes_written,
    conn_yields,
    total_connections,
    rejected_connections,
    idle_kicks,
    response_obj_oom,
    response_obj_count,
    read_buf_oom,
    // Gauges as differences of these (read with `StatsRegistry::raw`, never reset):
    // buffers of the workers' pools allocated and freed, taken and given back (all), and
    // taken and given back as write buffers.
    buf_allocs,
    buf_frees,
    buf_takes,
    buf_gives,
    wbuf_takes,
    wbuf_gives,
);

/// Add `n` to a counter this thread owns.
#[inline]
pub fn bump(counter: &AtomicU64, n: u64) {
    counter.store(counter.load(Relaxed).wrapping_add(n), Relaxed);
}

/// Every worker's counters plus the reset baseline.
pub struct StatsRegistry {
    blocks: Vec<std::sync::Arc<Counters>>,
    baseline: Mutex<Totals>,
}

impl StatsRegistry {
    pub fn new(blocks: Vec<std::sync::Arc<Counters>>) -> StatsRegistry {
        StatsRegistry {
            blocks,
            baseline: Mutex::new(Totals::default()),
        }
    }

    /// Counters summed over all workers, minus the last reset.
    pub fn totals(&self) -> Totals {
        let mut t = self.raw();
        t.sub(&self.baseline.lock().unwrap_or_else(|e| e.into_inner()));
        t
    }

    /// Counters summed over all workers, ignoring resets (for gauges kept as differences).
    pub fn raw(&self) -> Totals {
        let mut t = Totals::default();
        for b in &self.blocks {
            t.add(&b.snapshot());
        }
        t
    }

    pub fn reset(&self) {
        *self.baseline.lock().unwrap_or_else(|e| e.into_inner()) = self.raw();
    }
}
