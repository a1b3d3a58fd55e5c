//! Pages that move between slab classes: the global page pool (memcached's class 0),
//! `slabs reassign`, and the automove balancer.
//!
//! A move is asynchronous, as in memcached: [`Cache::reassign`] only records the request;
//! [`Cache::rebalance_step`], called from a background thread with the server's clock,
//! does the work a page at a time.

use crate::cache::Cache;

/// Why `slabs reassign` refused (memcached 1.6's `REASSIGN_*` results).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReassignError {
    /// A move is already in progress.
    Busy,
    /// A class id is out of range (dst 0 is the global pool; src -1 picks a class).
    BadClass,
    /// The source class has fewer than two pages.
    NoSpare,
    /// Source and destination are the same class.
    Same,
}

/// The mover's counters, as `stats` reports them.
#[derive(Debug, Clone, Default)]
pub struct MoverStats {
    pub slabs_moved: u64,
    pub slab_reassign_rescues: u64,
    pub slab_reassign_chunk_rescues: u64,
    pub slab_reassign_evictions_nomem: u64,
    pub slab_reassign_inline_reclaim: u64,
    pub slab_reassign_busy_items: u64,
    pub slab_reassign_busy_deletes: u64,
    pub slab_reassign_running: bool,
}

impl Cache {
    /// `slabs reassign <src> <dst>`: move one page from class `src` (-1: any class with a
    /// spare page) to class `dst` (0: the global page pool). Returns at once; the page
    /// moves during the following [`Cache::rebalance_step`]s.
    pub fn reassign(&self, src: i32, dst: i32) -> Result<(), ReassignError> {
        let _ = (src, dst);
        Err(ReassignError::Busy)
    }

    /// `slabs automove 0|1|2`: 0 off, 1 the balancer (memcached's default), 2 aggressive.
    pub fn set_automove(&self, mode: u8) {
        let _ = mode;
    }

    /// The automove mode in force.
    pub fn automove(&self) -> u8 {
        1
    }

    /// One bounded slice of background work: advance a page move, or let the balancer
    /// decide on one. Returns true while a move is in progress (call again soon).
    pub fn rebalance_step(&self, now: u32) -> bool {
        let _ = now;
        false
    }

    /// The mover's counters.
    pub fn mover_stats(&self) -> MoverStats {
        MoverStats::default()
    }
}
