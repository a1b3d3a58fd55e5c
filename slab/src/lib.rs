//! slabcached's storage engine: a slab-allocated item cache with per-class LRU eviction.
//!
//! Goals: memcached's memory model (one arena of pages, slab classes grown by a factor,
//! per-class LRU, lazy expiry, `-m` really honoured), a smaller item header (32 bytes, CAS
//! included, against memcached's 48–56), and no global lock on the read path.
//! Non-goals: the wire protocol (see the `proto` crate), clocks and threads (callers pass
//! `now`, a cache time in seconds, and drive the background work through
//! [`Cache::rebalance_step`] and [`Cache::crawl_step`]), and persistence beyond a warm
//! restart: over a memory file ([`Cache::open_file`]), a clean stop's [`Snapshot`] lets the
//! next process serve the same items (see the `restart` and `restore` modules).
//!
//! # Memory
//! [`arena`] maps `memory_limit` bytes once (plus one spare page per class: a class with
//! no page may take its first one over the limit, as in memcached); pages (`page_size`,
//! 1 MiB by default) are given to classes on need and carved into chunks lazily, so RSS
//! follows what is stored. Pages move: [`mover`] empties a page of one class (rescuing
//! live items into free chunks of their class, evicting the rest) and gives it to another
//! class or to the global pool ([`pool`]), on `slabs reassign`, when the [`balancer`]
//! sees a class evicting younger items than another keeps, or to give memory back under
//! a lowered limit. The [`crawler`] reclaims expired and flushed items in the background.
//! Items larger than `slab_chunk_max` (half a page by default) are chains of chunks of the
//! largest class ([`chain`]), read as pieces ([`Value`]) without being joined.
//! A store may also allocate its item first and write the value in as it arrives
//! ([`Cache::reserve`], [`Reservation`]): the item is linked only on commit.
//! Each chunk holds an [`item::ItemHeader`], the key and the value. Items are named by
//! 32-bit chunk indices, never pointers: hash chains, LRU lists and free lists are indices
//! stored in the headers themselves, so the index costs 4 bytes of bucket per 1.5 items.
//!
//! # Concurrency and lock order
//! - The index is split into 256 *stripes* by key hash, each a `Mutex` over a chained hash
//!   table. All reads and writes of an item's key, value, expiry and flag bits happen with
//!   its stripe lock held; a reader copies the value out inside that lock.
//! - Each slab *class* has a `Mutex` over its LRU list, free list and counters.
//! - Order: **stripe, then class**. A store holds its key's stripe and takes the class lock
//!   to allocate and link. Eviction starts from the class lock (the LRU tail) and so may
//!   only `try_lock` the victim's stripe: a busy stripe makes it skip that item, never wait.
//!   No thread ever blocks on a stripe while holding a class lock, so there is no cycle.
//! - The write-marks mutex (item dating, see below) is a leaf: it is taken under a stripe
//!   lock, never while a class lock is held, and nothing is locked while holding it.
//! - A chunk's payload is written while no index, LRU or free list reaches it, or (its value
//!   only, by a store of the same key that fits the same class) under its stripe lock; it is
//!   freed only by a holder of both its stripe and class locks. So readers under the stripe
//!   lock never see it change, and readers under the class lock alone read only the key. Header fields are atomics (used `Relaxed`; the locks order them).
//! - The read path takes one stripe lock; it marks the item ACCESSED instead of relinking
//!   it, and eviction gives ACCESSED tail items a second chance (CLOCK on the LRU list), so
//!   gets never touch the class lock.
//!
//! # Time and expiry
//! `now` and expiry times are "cache time": seconds on the caller's clock, with 0 meaning
//! "never expires". Expired and flushed items are never returned and are reclaimed when a
//! lookup, the eviction scan or the LRU crawler meets them. `flush_all` records the CAS counter: every item
//! with a smaller CAS unique was stored before the flush and is invalid.
//!
//! # Meta and binary protocol support
//! [`Cache::meta_get`] hands a reader the item under its stripe lock with what memcached's
//! meta commands report (fetched before, stale, recache token sent, binary key, last write)
//! and lets it change the expiry and token mark; it can also create a missing item (`N`).
//! [`Cache::store_with`], [`Cache::delete_with`] and [`Cache::arith`] add compare-cas on
//! every mode, stale writes and invalidation, and incr/decr auto-creation. The extra marks
//! are bits of the header's `bits` byte; the write time comes from the CAS unique (the
//! `marks` module), so the header stays 32 bytes.
#![deny(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]

// Pointers into the map live in `arena`; `cache`, `chain` and `mover` call its unsafe payload
// accessors, each call with the `SAFETY:` argument of the lock protocol.
#[allow(unsafe_code)]
mod arena;
mod balancer;
#[allow(unsafe_code)]
mod cache;
#[allow(unsafe_code)]
mod chain;
mod class;
mod consistency;
mod crawler;
mod index;
// Writes a reserved item's value bytes through the arena's payload accessors.
#[allow(unsafe_code)]
mod intake;
mod item;
mod lru;
mod marks;
#[allow(unsafe_code)]
mod mover;
mod observe;
mod ops;
mod pool;
#[allow(unsafe_code)]
mod restart;
#[allow(unsafe_code)]
mod restore;
mod stats;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_chain;
#[cfg(test)]
mod tests_crawler;
#[cfg(test)]
mod tests_intake;
#[cfg(test)]
mod tests_lru;
#[cfg(test)]
mod tests_mover;
#[cfg(test)]
mod tests_restart;
#[cfg(test)]
mod tests_util;

pub use cache::{
    ArithDone, ArithError, ArithOptions, Cache, CacheConfig, CacheError, DeleteOptions, DeleteResult,
    GetOptions, HitCounter, ItemView, Lookup, StoreError, StoreMode, StoreOptions, MAX_KEY_LEN,
};
pub use chain::{Parts, Value};
pub use consistency::Inconsistency;
pub use crawler::{CrawlError, CrawlerStats, MetaEntry};
pub use intake::Reservation;

/// The largest memory limit the engine accepts (its chunk indices are 32-bit).
pub const MAX_MEMORY_LIMIT: usize = arena::MAX_ARENA_BYTES;
pub use class::MAX_CLASSES;
pub use item::Segment;
pub use lru::LruStats;
pub use mover::{MoverStats, ReassignError};
pub use observe::{Evicted, EvictionObserver, MoveObserver};
pub use restart::{checksum, RestoreError, SaveError, Snapshot, LAYOUT_VERSION};
pub use restore::Restored;
pub use stats::{CacheStats, ClassStats};

/// Size of the per-item header in bytes (key and value come on top).
pub const ITEM_HEADER_SIZE: usize = item::ItemHeader::SIZE;
