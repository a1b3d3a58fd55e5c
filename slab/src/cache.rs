//! The cache's state and its core: configuration, the `Cache` struct and its constructor,
//! and allocating, writing, publishing and unlinking items. The rest of `impl Cache` is
//! split by seam: `index` (stripes and lookups), `ops` (the client operations), `lru`
//! (lists and eviction), `chain` (large items), `mover`, `balancer` and `pool` (pages that
//! move), `crawler`, and `stats`.
//!
//! See the crate docs for the lock protocol. In short: a key's stripe lock is taken first,
//! then (briefly) its class lock; eviction, which starts from a class lock, only
//! `try_lock`s other stripes and skips items it cannot lock.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering::Relaxed};
use std::sync::{Mutex, MutexGuard};

use crate::arena::{Arena, ChunkRef, CHUNK_ALIGN, MAX_ARENA_BYTES, NIL};
use crate::chain::{Layout, Value};
use crate::class::ClassTable;
use crate::class::MAX_CLASSES;
use crate::crawler::CrawlerState;
use crate::item::{
    ItemHeader, ACCESSED, CAS_MAX, CHAINED, FETCHED, KEY_BINARY, LINKED, STALE, WARM, WIN_TOKEN_SENT,
};
use crate::marks::WriteMarks;
use crate::mover::{MoverState, MovingPage};
use crate::pool::PagePool;
use crate::stats::{ClassCounters, SizeHistogram, COUNTER_SHARDS};

/// The smallest `slab_chunk_max`: a chained item's head must hold a header, the longest
/// key, its link and some value (memcached accepts 512 too).
const MIN_CHUNK_MAX: usize = 512;

/// Longest key memcached accepts.
pub const MAX_KEY_LEN: usize = 250;

/// Number of index stripes (a power of two). Each has its own lock and hash table, so a
/// table grows one stripe at a time and no growth stalls more than 1/STRIPES of the keys.
pub(crate) const STRIPES: usize = 256;
/// Buckets per stripe at start: 65536 in all, memcached's starting hash power (16), which
/// `stats` reports as `hash_power_level` (t/restart.t checks it before and after a restart).
pub(crate) const INITIAL_BUCKETS: usize = 256;

/// How the cache is sized and behaves; the server fills it from memcached's flags.
#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// `-m`: bytes of item memory.
    pub memory_limit: usize,
    /// Size of a slab page (memcached's is 1 MiB whatever `-I` says).
    pub page_size: usize,
    /// `-o slab_chunk_max`: the largest chunk; bigger items are chains of such chunks.
    /// 0 = half a page, memcached's default.
    pub slab_chunk_max: usize,
    /// `-I`: the largest item (header, key and value) that may be stored.
    pub item_size_max: usize,
    /// `-n`: key+value bytes of the smallest chunk.
    pub min_chunk: usize,
    /// `-f`: chunk size growth factor between classes.
    pub growth_factor: f64,
    /// `-o slab_sizes`: the classes' chunk sizes (ascending, before the last class of
    /// `slab_chunk_max`), instead of the ladder `min_chunk` and `growth_factor` make.
    pub slab_sizes: Option<Vec<usize>>,
    /// `-C` turns this off: CAS uniques are then reported as 0.
    pub use_cas: bool,
    /// `-M` turns this off: a full class answers OutOfMemory instead of evicting.
    pub evict: bool,
    /// Bytes counted as already allocated at start, against the limit and in
    /// `total_malloced` (memcached's `T_MEMD_INITIAL_MALLOC` test hook: it lets a test
    /// reach a multi-GB limit without filling it). 0 in normal runs.
    pub preaccounted: usize,
    /// Ask for transparent huge pages (`-L`). Off by default: a first write into a huge
    /// page makes the kernel find and zero 2 MiB at once (compacting memory if need be),
    /// which stalled stores of new items for up to ~20 ms on a fresh cache.
    pub huge_pages: bool,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            memory_limit: 64 << 20,
            page_size: 1 << 20,
            slab_chunk_max: 0,
            item_size_max: 1 << 20,
            min_chunk: 48,
            growth_factor: 1.25,
            slab_sizes: None,
            use_cas: true,
            evict: true,
            preaccounted: 0,
            huge_pages: false,
        }
    }
}

/// Why a cache could not be built.
#[derive(Debug)]
pub enum CacheError {
    /// The configuration is inconsistent; the text says which part.
    InvalidConfig(&'static str),
    /// The arena could not be mapped.
    Map(std::io::Error),
}

impl std::fmt::Display for CacheError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CacheError::InvalidConfig(what) => write!(f, "invalid cache configuration: {what}"),
            CacheError::Map(e) => write!(f, "cannot map item memory: {e}"),
        }
    }
}

impl std::error::Error for CacheError {}

/// The storage commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreMode {
    Set,
    Add,
    Replace,
    Append,
    Prepend,
    /// Store only if the item's CAS unique equals this.
    Cas(u64),
}

/// Why a store did not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreError {
    /// add on a present key, replace/append/prepend on a missing one, or append/prepend
    /// that could not allocate.
    NotStored,
    /// cas: the item changed since the client read it.
    Exists,
    /// cas: no such item.
    NotFound,
    /// Header, key and value exceed the item size limit.
    TooLarge,
    /// No chunk could be found or evicted (or eviction is off).
    OutOfMemory,
    /// The key is empty or longer than 250 bytes.
    BadKey,
}

/// Why incr/decr failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArithError {
    NotFound,
    /// The stored value is not a decimal 64-bit unsigned number.
    NonNumeric,
    OutOfMemory,
    /// [`ArithOptions::compare_cas`] did not match.
    Exists,
    /// [`ArithOptions::create`] was asked for and no memory could be found for the item.
    CreateFailed,
}

/// Extra conditions and marks for [`Cache::store_with`] (meta `ms`, binary stores).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreOptions {
    /// append/prepend only: the item's cas must equal this, unless it is 0 (set/replace
    /// compare through [`StoreMode::Cas`]; add ignores a cas, as memcached does).
    pub compare_cas: Option<u64>,
    /// [`StoreMode::Cas`] only: a cas *older* than the item's still stores, but the new
    /// value is marked stale and keeps the old expiry (meta `ms ... C<cas> I`).
    pub invalidate: bool,
    /// The key was sent base64-encoded (meta `b`): remember it for replies that echo it.
    pub key_binary: bool,
}

/// Options of [`Cache::delete_with`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeleteOptions {
    /// The item's cas must equal this.
    pub compare_cas: Option<u64>,
    /// Mark the item stale and give it a new cas instead of removing it (meta `md I`).
    pub invalidate: bool,
    /// With `invalidate`: the new expiry (meta `T`).
    pub exptime: Option<u32>,
}

/// What [`Cache::delete_with`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteResult {
    Deleted,
    /// Marked stale (`invalidate`).
    Invalidated,
    NotFound,
    /// The cas did not match; nothing changed.
    Exists,
}

/// Options of [`Cache::arith`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ArithOptions {
    /// The item's cas must equal this, unless it is 0.
    pub compare_cas: Option<u64>,
    /// On a miss, create the item with this value and expiry instead of failing.
    pub create: Option<(u64, u32)>,
    /// Give an existing item this expiry along with the change (a created one gets the
    /// expiry in `create`).
    pub set_exptime: Option<u32>,
}

/// A successful [`Cache::arith`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArithDone {
    /// The number now stored.
    pub value: u64,
    /// The item's new cas (0 with CAS disabled).
    pub cas: u64,
    /// Expiry before `set_exptime` (the one in `create`, for a creation).
    pub exptime_before: u32,
    /// Expiry now.
    pub exptime: u32,
    /// The item was missing and has been created.
    pub created: bool,
}

/// Which per-class hit counter a [`Cache::meta_get`] hit adds to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum HitCounter {
    /// `get_hits`.
    #[default]
    Get,
    /// `touch_hits` (a read that also changed the expiry).
    Touch,
    /// Neither (a debug peek).
    None,
}

/// What [`Cache::lookup`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup<R> {
    /// The item (or a new one, with `vivify`), and what the reader returned.
    Hit(R),
    Missing,
    /// There, but past its expiry (now removed).
    Expired,
    /// There, but older than a flush_all (now removed).
    Flushed,
}

/// Options of [`Cache::meta_get`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GetOptions {
    /// Mark the item read (fetched, recently used) once the callback has seen it; meta's
    /// `u` turns this off. The callback sees the marks as they were before.
    pub bump: bool,
    /// On a miss, create an empty item (flags 0, no expiry) and hand it to the callback
    /// (meta `N`). A failed allocation is a miss.
    pub vivify: bool,
    /// Per-class counter a hit adds to.
    pub counter: HitCounter,
}

/// An item as a meta read sees it, under its stripe lock: the fields `mg` and `me` can
/// report, and the changes they may make (expiry, recache token).
pub struct ItemView<'a> {
    pub(crate) cache: &'a Cache,
    pub(crate) chunk: ChunkRef,
    pub key: &'a [u8],
    pub value: Value<'a>,
    pub flags: u32,
    /// 0 when CAS is disabled.
    pub cas: u64,
    /// Slab class id.
    pub class: usize,
    /// The item had been read before this request.
    pub fetched: bool,
    /// This request created the item (`vivify`).
    pub created: bool,
}

impl ItemView<'_> {
    pub(crate) fn header(&self) -> &ItemHeader {
        self.cache.header(self.chunk)
    }

    /// Cache time of expiry, 0 = never.
    pub fn exptime(&self) -> u32 {
        self.header().exptime.load(Relaxed)
    }

    pub fn set_exptime(&self, exptime: u32) {
        self.header().exptime.store(exptime, Relaxed);
    }

    /// Marked stale by a meta invalidation.
    pub fn stale(&self) -> bool {
        self.header().has_bit(STALE)
    }

    /// A reader was already handed this item's recache token.
    pub fn win_token_sent(&self) -> bool {
        self.header().has_bit(WIN_TOKEN_SENT)
    }

    /// Record that this reader is handed the recache token.
    pub fn set_win_token_sent(&self) {
        self.header().set_bit(WIN_TOKEN_SENT);
    }

    /// The key was stored base64-encoded (meta `b`).
    pub fn key_binary(&self) -> bool {
        self.header().has_bit(KEY_BINARY)
    }

    /// Cache time of the item's last write, to the second for recent writes (see the
    /// `marks` module: no time is kept in the item itself).
    pub fn written_at(&self) -> u32 {
        self.cache.write_marks.written_at(self.header().cas())
    }

    /// Bytes the item occupies: header, key and value.
    pub fn total_size(&self) -> usize {
        ItemHeader::total_size(self.key.len(), self.value.len())
    }
}

/// One stripe of the index: a chained hash table whose chains run through the items'
/// `hash_next` fields, so an indexed item costs the table 4 bytes of bucket at most.
pub(crate) struct Stripe {
    pub(crate) buckets: Vec<ChunkRef>,
    pub(crate) count: usize,
}

/// A class's mutable state, under its lock.
#[derive(Default)]
pub(crate) struct ClassState {
    pub free_head: ChunkRef,
    pub free_count: usize,
    /// Page being handed out chunk by chunk, and its next unused chunk index: chunks are
    /// only touched when first used, so RSS follows what is stored.
    pub carve: Option<(usize, usize)>,
    /// Pages given to the class (by the mover) that wait, untouched, for the carve.
    pub pending: Vec<usize>,
    /// Every page of the class, oldest first (pending ones included).
    pub pages: Vec<usize>,
    /// Bumped whenever `pages` changes, so a walk by index (the crawler) can tell that
    /// pages moved under it.
    pub page_gen: u64,
    /// The page the mover is emptying, if it is one of this class's.
    pub moving: Option<MovingPage>,
    /// The HOT, WARM, COLD and TEMP lists, indexed by `Segment`; see `lru`.
    pub lists: [crate::lru::LruList; 4],
    pub moves_to_warm: u64,
    pub moves_to_cold: u64,
    pub moves_within_lru: u64,
    pub evicted_active: u64,
    /// Allocations that found no free chunk and freed one from the LRU themselves.
    pub direct_reclaims: u64,
    /// The last evicted item's CAS unique and the cache time of its eviction: dated by
    /// the write marks when stats are asked for, so eviction itself takes no other lock.
    pub last_evicted: Option<(u64, u32)>,
    pub used_chunks: usize,
    /// Of `used_chunks`, those held by reservations (values still arriving; see `intake`).
    pub reserved_chunks: usize,
    pub items: usize,
    pub requested: usize,
    pub evicted: u64,
    pub evicted_nonzero: u64,
    pub reclaimed: u64,
    pub outofmemory: u64,
    pub expired_unfetched: u64,
    pub evicted_unfetched: u64,
    pub crawler_reclaimed: u64,
    pub crawler_items_checked: u64,
    /// Earliest expiry among items linked since the crawler last visited (0 = none):
    /// when it has passed, the crawler visits the class without waiting for its full pass.
    pub soonest_expiry: u32,
}

/// A mutex alone on its cache line, so threads locking neighbouring stripes do not slow
/// each other down.
#[repr(align(64))]
pub(crate) struct PaddedMutex<T>(Mutex<T>);

impl<T> std::ops::Deref for PaddedMutex<T> {
    type Target = Mutex<T>;
    fn deref(&self) -> &Mutex<T> {
        &self.0
    }
}

/// What a lookup found under the stripe lock.
pub(crate) enum Found {
    Live(ChunkRef),
    Missing,
    Expired,
    Flushed,
}

/// A key's stripe, locked, and what a lookup of the key found in it.
pub(crate) struct Slot<'c> {
    pub(crate) hash: u64,
    pub(crate) idx: usize,
    pub(crate) st: MutexGuard<'c, Stripe>,
    pub(crate) found: Found,
}

/// Why an item is being unlinked (for counters).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unlink {
    Replaced,
    Deleted,
    /// Found dead by a read.
    Expired,
    /// Found dead by a store of the same key: memcached counts it `reclaimed` (its store
    /// takes the dead item's memory from the LRU tail).
    Reclaimed,
}

/// The cache. Share it between threads with `Arc<Cache>`; every method takes `&self`.
pub struct Cache {
    pub(crate) config: CacheConfig,
    pub(crate) arena: Arena,
    pub(crate) classes: ClassTable,
    pub(crate) hasher: ahash::RandomState,
    pub(crate) stripes: Box<[PaddedMutex<Stripe>]>,
    /// Index 0 is unused so class ids index directly.
    pub(crate) class_state: Box<[Mutex<ClassState>]>,
    pub(crate) class_counters: Box<[ClassCounters]>,
    /// `stats sizes`: item sizes in 32-byte buckets, while tracking is on.
    pub(crate) sizes: SizeHistogram,
    /// Class of each page (0 = in the pool or not yet used).
    pub(crate) page_class: Box<[AtomicU8]>,
    /// Which pages are where (leaf lock, see `pool`).
    pub(crate) pool: Mutex<PagePool>,
    /// Pages the memory limit allows (cache_memlimit changes it).
    pub(crate) page_limit: AtomicUsize,
    /// The page mover's request, progress and counters.
    pub(crate) mover: Mutex<MoverState>,
    /// The LRU crawler's pass and counters.
    pub(crate) crawler: Mutex<CrawlerState>,
    pub(crate) next_cas: AtomicU64,
    /// Items whose CAS unique is below this were stored before a flush_all took effect.
    pub(crate) flush_below_cas: AtomicU64,
    /// With CAS disabled: the cache time of the last flush (see `is_flushed`), 0 = none.
    pub(crate) flush_second: AtomicU32,
    /// The smallest unique known to be written after `flush_second` (u64::MAX: none yet).
    pub(crate) flush_clear_cas: AtomicU64,
    /// Cache time a delayed flush_all takes effect, 0 = none pending.
    pub(crate) flush_at: AtomicU32,
    pub(crate) total_items: AtomicU64,
    pub(crate) get_expired: AtomicU64,
    pub(crate) get_flushed: AtomicU64,
    /// The LRU settings, the maintainer's bump queue and counters.
    pub(crate) lru: crate::lru::LruState,
    /// Dates items by their CAS unique (meta `l`, `me la=`).
    pub(crate) write_marks: WriteMarks,
    /// Told of every eviction (see `observe`).
    pub(crate) evict_observer: std::sync::OnceLock<crate::observe::EvictionObserver>,
    /// Told of every automove decision (see `observe`).
    pub(crate) move_observer: std::sync::OnceLock<crate::observe::MoveObserver>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a lock never leaves the structures half-linked (the code
    // between lock and unlock does not panic on any input), so a poisoned lock is usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What a configuration makes of the arena: the class ladder, the pages `-m` allows, and
/// the pages mapped (one spare per class on top).
pub(crate) struct Shape {
    pub classes: ClassTable,
    pub pages: usize,
    pub total_pages: usize,
}

impl Shape {
    pub fn arena_bytes(&self, config: &CacheConfig) -> usize {
        self.total_pages * config.page_size
    }
}

impl Cache {
    /// Build a cache: validates the configuration and maps the arena.
    pub fn new(config: CacheConfig) -> Result<Cache, CacheError> {
        let shape = Cache::shape(&config)?;
        let arena = Arena::new(shape.arena_bytes(&config), config.huge_pages).map_err(CacheError::Map)?;
        Ok(Cache::with_arena(config, shape, arena))
    }

    /// Validate `config` and work out the arena it needs.
    pub(crate) fn shape(config: &CacheConfig) -> Result<Shape, CacheError> {
        if !config.page_size.is_multiple_of(CHUNK_ALIGN) || config.page_size < 1024 {
            return Err(CacheError::InvalidConfig(
                "page size must be a multiple of 8, >= 1024",
            ));
        }
        let chunk_max = match config.slab_chunk_max {
            0 => config.page_size / 2,
            n => n,
        };
        if chunk_max > config.page_size
            || !config.page_size.is_multiple_of(chunk_max)
            || !chunk_max.is_multiple_of(CHUNK_ALIGN)
            || !chunk_max.is_multiple_of(crate::arena::unit_for(config.memory_limit))
            || chunk_max < MIN_CHUNK_MAX
        {
            return Err(CacheError::InvalidConfig(
                "slab chunk max must divide the page size, be a multiple of 8 and >= 512",
            ));
        }
        if config.growth_factor <= 1.0 || !config.growth_factor.is_finite() {
            return Err(CacheError::InvalidConfig("growth factor must be greater than 1"));
        }
        if config.memory_limit > MAX_ARENA_BYTES {
            return Err(CacheError::InvalidConfig("memory limit above 4 TiB"));
        }
        let pages = (config.memory_limit / config.page_size).max(1);
        // Chunk sizes are multiples of the arena's unit, which grows past 32 GiB.
        let unit = crate::arena::unit_for((pages + MAX_CLASSES) * config.page_size);
        let classes = match &config.slab_sizes {
            Some(sizes) => {
                if sizes.first().is_some_and(|&s| s <= ItemHeader::SIZE) {
                    return Err(CacheError::InvalidConfig("a slab size must hold an item header"));
                }
                ClassTable::from_sizes(sizes, chunk_max, config.page_size, unit)
            }
            None => ClassTable::new(
                config.min_chunk,
                config.growth_factor,
                chunk_max,
                config.page_size,
                unit,
            ),
        };
        // One spare page per class: a class's first page may go over the limit.
        let total_pages = pages + classes.len().min(MAX_CLASSES);
        Ok(Shape {
            classes,
            pages,
            total_pages,
        })
    }

    /// An empty cache over `arena`, which `shape` sized.
    pub(crate) fn with_arena(config: CacheConfig, shape: Shape, arena: Arena) -> Cache {
        let Shape {
            classes,
            pages,
            total_pages,
        } = shape;
        let stripes = (0..STRIPES)
            .map(|_| {
                PaddedMutex(Mutex::new(Stripe {
                    buckets: vec![NIL; INITIAL_BUCKETS],
                    count: 0,
                }))
            })
            .collect();
        let class_state = (0..=classes.len()).map(|_| Mutex::default()).collect();
        let class_counters = (0..(classes.len() + 1) * COUNTER_SHARDS)
            .map(|_| ClassCounters::default())
            .collect();
        let page_class = (0..total_pages).map(|_| AtomicU8::new(0)).collect();
        let sizes = SizeHistogram::new(config.item_size_max);
        let phantom_pages = config.preaccounted.div_ceil(config.page_size);
        Cache {
            config,
            arena,
            classes,
            hasher: ahash::RandomState::new(),
            stripes,
            class_state,
            class_counters,
            sizes,
            page_class,
            pool: Mutex::new(PagePool::new(total_pages, phantom_pages)),
            page_limit: AtomicUsize::new(pages),
            mover: Mutex::new(MoverState::default()),
            crawler: Mutex::new(CrawlerState::default()),
            lru: crate::lru::LruState::default(),
            next_cas: AtomicU64::new(1),
            flush_below_cas: AtomicU64::new(0),
            flush_at: AtomicU32::new(0),
            flush_second: AtomicU32::new(0),
            flush_clear_cas: AtomicU64::new(u64::MAX),
            total_items: AtomicU64::new(0),
            get_expired: AtomicU64::new(0),
            get_flushed: AtomicU64::new(0),
            write_marks: WriteMarks::new(),
            evict_observer: std::sync::OnceLock::new(),
            move_observer: std::sync::OnceLock::new(),
        }
    }

    pub fn config(&self) -> &CacheConfig {
        &self.config
    }

    /// Number of slab classes.
    pub fn class_count(&self) -> usize {
        self.classes.len()
    }

    /// Chunk size of a class (1-based id).
    pub fn chunk_size(&self, class: usize) -> usize {
        self.classes.chunk_size(class)
    }

    /// Whether an item of this key and value length could ever be stored (larger items
    /// than a chunk are chained).
    pub fn fits(&self, key_len: usize, value_len: usize) -> bool {
        ItemHeader::total_size(key_len, value_len) <= self.config.item_size_max
    }

    // ---- small helpers -------------------------------------------------------------

    pub(crate) fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    pub(crate) fn stripe_of(hash: u64) -> usize {
        (hash >> 40) as usize & (STRIPES - 1)
    }

    pub(crate) fn bucket_of(hash: u64, buckets: usize) -> usize {
        hash as usize & (buckets - 1)
    }

    pub(crate) fn header(&self, c: ChunkRef) -> &ItemHeader {
        self.arena.header(c)
    }

    pub(crate) fn page_of(&self, c: ChunkRef) -> usize {
        self.arena.offset_of(c) / self.config.page_size
    }

    pub(crate) fn class_of(&self, c: ChunkRef) -> usize {
        usize::from(self.page_class[self.page_of(c)].load(Relaxed))
    }

    /// Key of a linked item, for a reader holding its stripe lock or only its class lock
    /// (the evictor, cachedump): unlike the value, the key never changes while the item is
    /// linked. (Values are read with `value_of`, under the stripe lock.)
    pub(crate) fn key_of(&self, c: ChunkRef) -> &[u8] {
        let klen = self.header(c).key_len();
        // SAFETY: `c` is linked (the caller's class lock keeps it so); its key bytes were
        // written before it was published and are not written again until it is freed.
        unsafe { self.arena.payload(c, klen) }
    }

    pub(crate) fn next_cas(&self) -> u64 {
        let cas = self.next_cas.fetch_add(1, Relaxed);
        // 47 bits last 2^47 stores (years at millions per second); wrap rather than fail.
        cas & CAS_MAX
    }

    pub(crate) fn visible_cas(&self, cas: u64) -> u64 {
        if self.config.use_cas {
            cas
        } else {
            0
        }
    }

    /// Apply a delayed flush_all whose time has come.
    pub(crate) fn apply_pending_flush(&self, now: u32) {
        let at = self.flush_at.load(Relaxed);
        if at != 0 && now >= at && self.flush_at.compare_exchange(at, 0, Relaxed, Relaxed).is_ok() {
            self.flush_below_cas.store(self.next_cas.load(Relaxed), Relaxed);
            if !self.config.use_cas {
                self.flush_clear_cas.store(u64::MAX, Relaxed);
                self.flush_second.store(at, Relaxed);
            }
        }
    }

    /// Whether a flush_all invalidated the item: it was stored before the flush (its CAS
    /// unique is below the mark) or, with CAS disabled (`-C`), in the flush's second,
    /// because without uniques memcached dates a flush to the second and so hides items
    /// stored in that same second too (t/flush-all.t pins it).
    pub(crate) fn is_flushed(&self, c: ChunkRef) -> bool {
        let cas = self.header(c).cas();
        if cas < self.flush_below_cas.load(Relaxed) {
            return true;
        }
        let second = self.flush_second.load(Relaxed);
        if second == 0 || cas >= self.flush_clear_cas.load(Relaxed) {
            return false;
        }
        if self.write_marks.written_at(cas) <= second {
            return true;
        }
        // Uniques grow with time: every later one is past the flush second too, and is
        // answered above without the write marks' lock.
        self.flush_clear_cas.fetch_min(cas, Relaxed);
        false
    }

    // ---- classes: LRU and free lists (class lock held) ----------------------------------

    pub(crate) fn free_chunk(&self, cs: &mut ClassState, c: ChunkRef) {
        let h = self.header(c);
        h.bits.store(0, Relaxed);
        if let Some(moving) = cs.moving.as_mut().filter(|m| m.page == self.page_of(c)) {
            // The mover is emptying this page: the chunk is done with, not reusable (it is
            // parked, in case the mover gives the page up).
            moving.used -= 1;
            h.lru_next.store(moving.parked, Relaxed);
            moving.parked = c;
            cs.used_chunks -= 1;
            return;
        }
        h.lru_next.store(cs.free_head, Relaxed);
        cs.free_head = c;
        cs.free_count += 1;
        cs.used_chunks -= 1;
    }

    /// Remove a linked item from the index (stripe lock held), its LRU, and free it.
    pub(crate) fn unlink(&self, st: &mut Stripe, hash: u64, c: ChunkRef, why: Unlink) {
        let mut cs = lock(&self.class_state[self.class_of(c)]);
        let dead = matches!(why, Unlink::Expired | Unlink::Reclaimed);
        if dead && !self.header(c).has_bit(FETCHED) {
            cs.expired_unfetched += 1;
        }
        if why == Unlink::Reclaimed {
            cs.reclaimed += 1;
        }
        self.remove_linked(st, &mut cs, hash, c);
        self.free_chunk(&mut cs, c);
    }

    /// Take a linked item out of the index and its class's LRU and counters, with both
    /// locks held, and free a chained item's data chunks. The head chunk is then the
    /// caller's: to free, to reuse or to drop with its page.
    pub(crate) fn remove_linked(&self, st: &mut Stripe, cs: &mut ClassState, hash: u64, c: ChunkRef) {
        let h = self.header(c);
        let size = ItemHeader::SIZE + h.payload_len();
        self.table_remove(st, hash, c);
        self.lru_remove(cs, c);
        cs.items -= 1;
        cs.requested -= size;
        self.sizes.remove(size);
        // A chain's data chunks are in the same class as its head: this lock covers them.
        self.free_data_chunks(cs, c);
        h.bits.store(0, Relaxed);
    }

    /// A page for `class` from the pool (class lock held; the pool lock is a leaf).
    pub(crate) fn take_page(&self, class: usize, first: bool) -> Option<usize> {
        let page = lock(&self.pool).take(self.page_limit.load(Relaxed), first)?;
        self.page_class[page].store(class as u8, Relaxed);
        Some(page)
    }

    /// Get a chunk of `class` for a new item, evicting if needed. The caller holds stripe
    /// `held_idx` (as `held`); `protect` is an item the caller still needs (never evicted).
    pub(crate) fn alloc(
        &self,
        class: usize,
        held: &mut Stripe,
        held_idx: usize,
        protect: ChunkRef,
        now: u32,
    ) -> Option<ChunkRef> {
        let mut cs = lock(&self.class_state[class]);
        let chunk = self.alloc_free(&mut cs, class).or_else(|| {
            self.evict_one(&mut cs, held, held_idx, protect, now, false)
                .or_else(|| self.evict_one(&mut cs, held, held_idx, protect, now, true))
        });
        match chunk {
            Some(c) => {
                cs.used_chunks += 1;
                Some(c)
            }
            None => {
                cs.outofmemory += 1;
                None
            }
        }
    }

    pub(crate) fn alloc_free(&self, cs: &mut ClassState, class: usize) -> Option<ChunkRef> {
        if cs.free_head != NIL {
            let c = cs.free_head;
            cs.free_head = self.header(c).lru_next.load(Relaxed);
            cs.free_count -= 1;
            return Some(c);
        }
        let per_page = self.classes.chunks_per_page(class);
        if cs.carve.is_none_or(|(_, next)| next >= per_page) {
            let page = match cs.pending.pop() {
                Some(page) => page,
                None => {
                    let page = self.take_page(class, cs.pages.is_empty())?;
                    cs.pages.push(page);
                    cs.page_gen += 1;
                    page
                }
            };
            cs.carve = Some((page, 0));
        }
        let (page, next) = cs.carve.as_mut()?;
        let offset = *page * self.config.page_size + *next * self.classes.chunk_size(class);
        *next += 1;
        let c = self.arena.chunk_at(offset);
        // A page that served another class holds its old bytes: a header read by the
        // crawler or mover before the writer fills it must not look like an item.
        self.header(c).bits.store(0, Relaxed);
        Some(c)
    }

    /// A head and `n` data chunks of the largest class for a chained item, evicting as
    /// needed, all under that class's lock. On failure nothing is kept (out of memory).
    pub(crate) fn alloc_chain(
        &self,
        n: usize,
        held: &mut Stripe,
        held_idx: usize,
        protect: ChunkRef,
        now: u32,
    ) -> (Option<ChunkRef>, Vec<ChunkRef>) {
        let class = self.chain_class();
        let mut cs = lock(&self.class_state[class]);
        let mut got: Vec<ChunkRef> = Vec::with_capacity(n + 1);
        while got.len() <= n {
            let c = self.alloc_free(&mut cs, class).or_else(|| {
                self.evict_one(&mut cs, held, held_idx, protect, now, false)
                    .or_else(|| self.evict_one(&mut cs, held, held_idx, protect, now, true))
            });
            let Some(c) = c else {
                for c in got {
                    self.free_chunk(&mut cs, c);
                }
                cs.outofmemory += 1;
                return (None, Vec::new());
            };
            cs.used_chunks += 1;
            got.push(c);
        }
        let head = got.remove(0);
        (Some(head), got)
    }

    /// Fill freshly allocated chunks: `c` and, for a chained item, `data`. `parts` are
    /// concatenated to form the value.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn write_item(
        &self,
        c: ChunkRef,
        data: &[ChunkRef],
        key: &[u8],
        flags: u32,
        exptime: u32,
        parts: &[&[u8]],
        now: u32,
    ) {
        let value_len: usize = parts.iter().map(|p| p.len()).sum();
        let h = self.header(c);
        h.hash_next.store(NIL, Relaxed);
        h.exptime.store(exptime, Relaxed);
        h.client_flags.store(flags, Relaxed);
        h.value_len.store(value_len as u32, Relaxed);
        h.key_len.store(key.len() as u8, Relaxed);
        h.bits.store(0, Relaxed);
        let cas = self.next_cas();
        h.set_cas(cas);
        self.write_marks.note(cas, now);
        // SAFETY: `c` came from `alloc` and is not linked anywhere yet: this thread owns it.
        let k = unsafe { self.arena.payload_mut(c, key.len()) };
        k.copy_from_slice(key);
        self.write_value(c, key.len(), parts, data);
    }

    /// Link a written item into its class's LRU (HOT, or TEMP or COLD: see `lru`) and
    /// the index.
    pub(crate) fn publish(&self, st: &mut Stripe, hash: u64, c: ChunkRef, now: u32) {
        let class = self.class_of(c);
        {
            let mut cs = lock(&self.class_state[class]);
            let h = self.header(c);
            let exp = h.exptime.load(Relaxed);
            self.lru_push(&mut cs, c, self.first_segment(exp, now));
            h.set_bit(LINKED);
            if exp != 0 && (cs.soonest_expiry == 0 || exp < cs.soonest_expiry) {
                cs.soonest_expiry = exp;
            }
            cs.items += 1;
            cs.requested += ItemHeader::SIZE + self.header(c).payload_len();
            self.sizes.add(ItemHeader::SIZE + self.header(c).payload_len());
        }
        self.table_insert(st, hash, c);
        self.total_items.fetch_add(1, Relaxed);
    }

    /// Store a new value for the linked item `c` over its old one (stripe lock held, the
    /// new item needs the same class). A set of an existing key costs no allocation, no
    /// LRU relinking and no class lock (unless the size changed): the item stays where it
    /// is on the LRU, marked ACCESSED, so eviction gives it a second chance as if moved to
    /// the head. Readers of the value hold the stripe lock, so none sees a half-written one.
    pub(crate) fn overwrite(
        &self,
        c: ChunkRef,
        key_len: usize,
        flags: u32,
        exptime: u32,
        value: &[u8],
        now: u32,
    ) {
        let h = self.header(c);
        let (old_size, new_size) = (
            ItemHeader::SIZE + h.payload_len(),
            ItemHeader::SIZE + key_len + value.len(),
        );
        if old_size != new_size {
            let mut cs = lock(&self.class_state[self.class_of(c)]);
            cs.requested = cs.requested - old_size + new_size;
            let list = &mut cs.lists[h.segment() as usize];
            list.bytes = list.bytes - old_size + new_size;
            self.sizes.remove(old_size);
            self.sizes.add(new_size);
        }
        // SAFETY: the caller holds the stripe lock indexing `c`, which every reader of its
        // value bytes also holds; class-lock-only readers read just the key (`key_of`), and
        // only bytes after the key are written.
        let v = unsafe { self.arena.payload_range_mut(c, key_len, value.len()) };
        v.copy_from_slice(value);
        h.value_len.store(value.len() as u32, Relaxed);
        h.exptime.store(exptime, Relaxed);
        h.client_flags.store(flags, Relaxed);
        // WARM (with a bit of the CAS word) says which LRU list the item is on: it stays.
        h.bits
            .store(ACCESSED | LINKED | (h.bits.load(Relaxed) & WARM), Relaxed);
        let cas = self.next_cas();
        h.set_cas(cas);
        self.write_marks.note(cas, now);
        self.total_items.fetch_add(1, Relaxed);
    }

    /// Write a new version of `key`, replacing `old` (NIL if none): over `old` itself when
    /// the value fits its class and is not built from it (append/prepend), otherwise into a
    /// newly allocated and linked chunk. Returns the item's chunk.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn replace_with(
        &self,
        st: &mut Stripe,
        idx: usize,
        hash: u64,
        old: ChunkRef,
        key: &[u8],
        flags: u32,
        exptime: u32,
        parts: &[&[u8]],
        now: u32,
    ) -> Result<ChunkRef, StoreError> {
        let value_len: usize = parts.iter().map(|p| p.len()).sum();
        let total = ItemHeader::total_size(key.len(), value_len);
        if total > self.config.item_size_max {
            return Err(StoreError::TooLarge);
        }
        let layout = self.layout(key.len(), value_len).ok_or(StoreError::TooLarge)?;
        // Not with -M: there memcached's store of an existing key needs a free chunk
        // (else "out of memory"), and so does ours. The overlap test is what keeps the
        // in-place write sound: no slice of the old value may be read while it is written.
        if let (Layout::Single(class), [part]) = (layout, parts) {
            let in_place = old != NIL
                && self.config.evict
                && self.class_of(old) == class
                && !self.header(old).has_bit(CHAINED)
                && !self.value_of(old).as_slice().is_some_and(|v| overlaps(part, v));
            if in_place {
                self.overwrite(old, key.len(), flags, exptime, part, now);
                return Ok(old);
            }
        }
        let (c, data) = match layout {
            Layout::Single(class) => (self.alloc(class, st, idx, old, now), Vec::new()),
            Layout::Chained(n) => self.alloc_chain(n, st, idx, old, now),
        };
        let c = c.ok_or(StoreError::OutOfMemory)?;
        self.write_item(c, &data, key, flags, exptime, parts, now);
        if old != NIL {
            self.unlink(st, hash, old, Unlink::Replaced);
        }
        self.publish(st, hash, c, now);
        Ok(c)
    }
}

/// Whether two byte slices share memory (a value built from the old one, as by append or
/// prepend, must not be written over the bytes it is being copied from).
fn overlaps(a: &[u8], b: &[u8]) -> bool {
    let (a0, b0) = (a.as_ptr() as usize, b.as_ptr() as usize);
    a0 < b0 + b.len() && b0 < a0 + a.len()
}
