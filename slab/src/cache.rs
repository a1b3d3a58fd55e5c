//! The cache: hash index, slab classes, per-class LRU, and every item operation.
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

/// Longest key memcached accepts.
pub const MAX_KEY_LEN: usize = 250;

/// Number of index stripes (a power of two). Each has its own lock and hash table, so a
/// table grows one stripe at a time and no growth stalls more than 1/STRIPES of the keys.
const STRIPES: usize = 256;
const INITIAL_BUCKETS: usize = 64;

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
    /// `-C` turns this off: CAS uniques are then reported as 0.
    pub use_cas: bool,
    /// `-M` turns this off: a full class answers OutOfMemory instead of evicting.
    pub evict: bool,
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
            use_cas: true,
            evict: true,
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

/// A stored item as seen by a reader, borrowed for the duration of the read callback.
#[derive(Debug, Clone, Copy)]
pub struct ItemRef<'a> {
    pub key: &'a [u8],
    pub value: Value<'a>,
    pub flags: u32,
    /// 0 when CAS is disabled.
    pub cas: u64,
    /// Cache time of expiry, 0 = never.
    pub exptime: u32,
    /// Slab class id.
    pub class: usize,
}

/// An item as a meta read sees it, under its stripe lock: the fields `mg` and `me` can
/// report, and the changes they may make (expiry, recache token).
pub struct ItemView<'a> {
    cache: &'a Cache,
    chunk: ChunkRef,
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
    fn header(&self) -> &ItemHeader {
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

/// Cache-wide counters, as `stats` reports them.
#[derive(Debug, Clone, Default)]
pub struct CacheStats {
    pub curr_items: u64,
    pub total_items: u64,
    pub bytes: u64,
    pub evictions: u64,
    pub reclaimed: u64,
    pub expired_unfetched: u64,
    pub evicted_unfetched: u64,
    pub get_expired: u64,
    pub get_flushed: u64,
    pub limit_maxbytes: u64,
    pub total_malloced: u64,
    pub hash_bytes: u64,
    pub slab_global_page_pool: u64,
}

/// One slab class, as `stats slabs` and `stats items` report it.
#[derive(Debug, Clone, Default)]
pub struct ClassStats {
    pub id: usize,
    pub chunk_size: u64,
    pub chunks_per_page: u64,
    pub total_pages: u64,
    pub total_chunks: u64,
    pub used_chunks: u64,
    pub free_chunks: u64,
    pub free_chunks_end: u64,
    pub mem_requested: u64,
    pub items: u64,
    pub evicted: u64,
    pub evicted_nonzero: u64,
    pub reclaimed: u64,
    pub outofmemory: u64,
    pub expired_unfetched: u64,
    pub evicted_unfetched: u64,
    pub get_hits: u64,
    pub cmd_set: u64,
    pub delete_hits: u64,
    pub incr_hits: u64,
    pub decr_hits: u64,
    pub cas_hits: u64,
    pub cas_badval: u64,
    pub touch_hits: u64,
    pub crawler_reclaimed: u64,
    pub crawler_items_checked: u64,
    /// Items on the warm list (memcached's `number_warm`); the rest are on probation.
    pub warm_items: u64,
    pub moves_to_warm: u64,
    pub moves_to_cold: u64,
}

/// One stripe of the index: a chained hash table whose chains run through the items'
/// `hash_next` fields, so an indexed item costs the table 4 bytes of bucket at most.
pub(crate) struct Stripe {
    buckets: Vec<ChunkRef>,
    count: usize,
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
    /// The page the mover is emptying, if it is one of this class's.
    pub moving: Option<MovingPage>,
    /// The probation list (new items), newest first; see `lru`.
    pub lru_head: ChunkRef,
    pub lru_tail: ChunkRef,
    /// The warm list (items read again), newest first, and its length.
    pub warm_head: ChunkRef,
    pub warm_tail: ChunkRef,
    pub warm_items: usize,
    pub moves_to_warm: u64,
    pub moves_to_cold: u64,
    pub used_chunks: usize,
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

/// Per-class operation counters, touched without the class lock. Each class has
/// [`COUNTER_SHARDS`] blocks, one cache line each, and a thread bumps the block of its own
/// shard: with one shared block, every get hit of two worker threads would bounce the same
/// cache line between cores.
#[derive(Default)]
#[repr(align(64))]
struct ClassCounters {
    get_hits: AtomicU64,
    cmd_set: AtomicU64,
    delete_hits: AtomicU64,
    incr_hits: AtomicU64,
    decr_hits: AtomicU64,
    cas_hits: AtomicU64,
    cas_badval: AtomicU64,
    touch_hits: AtomicU64,
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

/// memcached's `stats sizes`: how many items of each size (rounded up to 32 bytes) were
/// linked since tracking was turned on. Off by default: while on, every link and unlink
/// touches a shared counter.
struct SizeHistogram {
    enabled: std::sync::atomic::AtomicBool,
    buckets: Box<[AtomicU64]>,
}

impl SizeHistogram {
    const BUCKET: usize = 32;

    fn new(item_size_max: usize) -> SizeHistogram {
        let n = item_size_max / Self::BUCKET + 2;
        SizeHistogram {
            enabled: std::sync::atomic::AtomicBool::new(false),
            buckets: (0..n).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    fn bucket(&self, size: usize) -> Option<&AtomicU64> {
        if !self.enabled.load(Relaxed) {
            return None;
        }
        self.buckets.get(size.div_ceil(Self::BUCKET))
    }

    fn add(&self, size: usize) {
        if let Some(b) = self.bucket(size) {
            b.fetch_add(1, Relaxed);
        }
    }

    fn remove(&self, size: usize) {
        // Items linked before tracking began were never counted: never go below zero.
        if let Some(b) = self.bucket(size) {
            let _ = b.fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1));
        }
    }
}

/// Counter blocks per class (see [`ClassCounters`]).
const COUNTER_SHARDS: usize = 8;

thread_local! {
    /// This thread's counter shard, handed out round-robin on first use.
    static COUNTER_SHARD: usize = {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        NEXT.fetch_add(1, Relaxed) % COUNTER_SHARDS
    };
}

/// What a lookup found under the stripe lock.
enum Found {
    Live(ChunkRef),
    Missing,
    Expired,
    Flushed,
}

/// A key's stripe, locked, and what a lookup of the key found in it.
struct Slot<'c> {
    hash: u64,
    idx: usize,
    st: MutexGuard<'c, Stripe>,
    found: Found,
}

/// Why an item is being unlinked (for counters).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Unlink {
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
    hasher: ahash::RandomState,
    pub(crate) stripes: Box<[PaddedMutex<Stripe>]>,
    /// Index 0 is unused so class ids index directly.
    pub(crate) class_state: Box<[Mutex<ClassState>]>,
    class_counters: Box<[ClassCounters]>,
    /// `stats sizes`: item sizes in 32-byte buckets, while tracking is on.
    sizes: SizeHistogram,
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
    next_cas: AtomicU64,
    /// Items whose CAS unique is below this were stored before a flush_all took effect.
    flush_below_cas: AtomicU64,
    /// Cache time a delayed flush_all takes effect, 0 = none pending.
    flush_at: AtomicU32,
    total_items: AtomicU64,
    get_expired: AtomicU64,
    get_flushed: AtomicU64,
    /// `lru mode segmented` (else flat), and the warm list's share of a class in percent.
    pub(crate) segmented: std::sync::atomic::AtomicBool,
    pub(crate) warm_pct: AtomicU8,
    /// Dates items by their CAS unique (meta `l`, `me la=`).
    pub(crate) write_marks: WriteMarks,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a lock never leaves the structures half-linked (the code
    // between lock and unlock does not panic on any input), so a poisoned lock is usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Cache {
    /// Build a cache: validates the configuration and maps the arena.
    pub fn new(config: CacheConfig) -> Result<Cache, CacheError> {
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
            || chunk_max < 1024
        {
            return Err(CacheError::InvalidConfig(
                "slab chunk max must divide the page size, be a multiple of 8 and >= 1024",
            ));
        }
        if config.growth_factor <= 1.0 || !config.growth_factor.is_finite() {
            return Err(CacheError::InvalidConfig("growth factor must be greater than 1"));
        }
        if config.memory_limit > MAX_ARENA_BYTES {
            return Err(CacheError::InvalidConfig("memory limit above 32 GiB"));
        }
        let pages = (config.memory_limit / config.page_size).max(1);
        let classes = ClassTable::new(
            config.min_chunk,
            config.growth_factor,
            chunk_max,
            config.page_size,
        );
        // One spare page per class: a class's first page may go over the limit.
        let total_pages = pages + classes.len().min(MAX_CLASSES);
        let arena = Arena::new(total_pages * config.page_size).map_err(CacheError::Map)?;
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
        Ok(Cache {
            config,
            arena,
            classes,
            hasher: ahash::RandomState::new(),
            stripes,
            class_state,
            class_counters,
            sizes,
            page_class,
            pool: Mutex::new(PagePool::new(total_pages)),
            page_limit: AtomicUsize::new(pages),
            mover: Mutex::new(MoverState::default()),
            crawler: Mutex::new(CrawlerState::default()),
            segmented: std::sync::atomic::AtomicBool::new(true),
            warm_pct: AtomicU8::new(crate::lru::DEFAULT_WARM_PCT),
            next_cas: AtomicU64::new(1),
            flush_below_cas: AtomicU64::new(0),
            flush_at: AtomicU32::new(0),
            total_items: AtomicU64::new(0),
            get_expired: AtomicU64::new(0),
            get_flushed: AtomicU64::new(0),
            write_marks: WriteMarks::new(),
        })
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

    fn bucket_of(hash: u64, buckets: usize) -> usize {
        hash as usize & (buckets - 1)
    }

    pub(crate) fn header(&self, c: ChunkRef) -> &ItemHeader {
        self.arena.header(c)
    }

    pub(crate) fn page_of(&self, c: ChunkRef) -> usize {
        Arena::offset_of(c) / self.config.page_size
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

    fn next_cas(&self) -> u64 {
        let cas = self.next_cas.fetch_add(1, Relaxed);
        // 48 bits last 2^48 stores (years at millions per second); wrap rather than fail.
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
    fn apply_pending_flush(&self, now: u32) {
        let at = self.flush_at.load(Relaxed);
        if at != 0 && now >= at && self.flush_at.compare_exchange(at, 0, Relaxed, Relaxed).is_ok() {
            self.flush_below_cas.store(self.next_cas.load(Relaxed), Relaxed);
        }
    }

    pub(crate) fn is_flushed(&self, c: ChunkRef) -> bool {
        self.header(c).cas() < self.flush_below_cas.load(Relaxed)
    }

    // ---- index -----------------------------------------------------------------------

    fn find(&self, st: &Stripe, hash: u64, key: &[u8]) -> ChunkRef {
        let mut c = st.buckets[Self::bucket_of(hash, st.buckets.len())];
        while c != NIL {
            let h = self.header(c);
            if h.key_len() == key.len() && self.key_of(c) == key {
                return c;
            }
            c = h.hash_next.load(Relaxed);
        }
        NIL
    }

    /// Find `key` and drop it on the way if it is expired or flushed.
    fn find_live(&self, st: &mut Stripe, hash: u64, key: &[u8], now: u32, dead: Unlink) -> Found {
        let c = self.find(st, hash, key);
        if c == NIL {
            return Found::Missing;
        }
        if self.header(c).is_expired(now) {
            self.unlink(st, hash, c, dead);
            return Found::Expired;
        }
        if self.is_flushed(c) {
            self.unlink(st, hash, c, dead);
            return Found::Flushed;
        }
        Found::Live(c)
    }

    /// Start loading the index bucket of `key` into the CPU cache: a hint, for a request
    /// that will be executed a few microseconds later, with no effect on the cache's
    /// contents. [`Cache::prefetch_item`] is the second step, once the bucket has arrived.
    pub fn prefetch_index(&self, key: &[u8]) {
        if let Some((st, b)) = self.lock_bucket(key) {
            crate::arena::prefetch_line(&st.buckets[b]);
        }
    }

    /// Start loading the first item of `key`'s bucket into the CPU cache (a hint, like
    /// [`Cache::prefetch_index`]). Most chains are one item long at the table's load.
    pub fn prefetch_item(&self, key: &[u8]) {
        if let Some((st, b)) = self.lock_bucket(key) {
            self.arena.prefetch(st.buckets[b]);
        }
    }

    /// `key`'s stripe, locked, and its bucket index there; None for a key no command accepts.
    fn lock_bucket(&self, key: &[u8]) -> Option<(MutexGuard<'_, Stripe>, usize)> {
        if key.is_empty() || key.len() > MAX_KEY_LEN {
            return None;
        }
        let hash = self.hash(key);
        let st = lock(&self.stripes[Self::stripe_of(hash)]);
        let b = Self::bucket_of(hash, st.buckets.len());
        Some((st, b))
    }

    /// The common start of every keyed operation: refuse a bad key (None), apply a due
    /// delayed flush, lock the key's stripe and look the key up (dropping it if dead).
    fn lock_key(&self, key: &[u8], now: u32) -> Option<Slot<'_>> {
        self.lock_key_as(key, now, Unlink::Expired)
    }

    /// [`Cache::lock_key`] for a store, which reclaims a dead item rather than expiring it.
    fn lock_key_for_store(&self, key: &[u8], now: u32) -> Option<Slot<'_>> {
        self.lock_key_as(key, now, Unlink::Reclaimed)
    }

    fn lock_key_as(&self, key: &[u8], now: u32, dead: Unlink) -> Option<Slot<'_>> {
        if key.is_empty() || key.len() > MAX_KEY_LEN {
            return None;
        }
        self.apply_pending_flush(now);
        let hash = self.hash(key);
        let idx = Self::stripe_of(hash);
        let mut st = lock(&self.stripes[idx]);
        let found = self.find_live(&mut st, hash, key, now, dead);
        Some(Slot { hash, idx, st, found })
    }

    fn table_insert(&self, st: &mut Stripe, hash: u64, c: ChunkRef) {
        if st.count + 1 > st.buckets.len() + st.buckets.len() / 2 {
            self.table_grow(st);
        }
        let b = Self::bucket_of(hash, st.buckets.len());
        self.header(c).hash_next.store(st.buckets[b], Relaxed);
        st.buckets[b] = c;
        st.count += 1;
    }

    pub(crate) fn table_remove(&self, st: &mut Stripe, hash: u64, c: ChunkRef) {
        let b = Self::bucket_of(hash, st.buckets.len());
        let next = self.header(c).hash_next.load(Relaxed);
        if st.buckets[b] == c {
            st.buckets[b] = next;
        } else {
            let mut p = st.buckets[b];
            while p != NIL {
                let ph = self.header(p);
                if ph.hash_next.load(Relaxed) == c {
                    ph.hash_next.store(next, Relaxed);
                    break;
                }
                p = ph.hash_next.load(Relaxed);
            }
            debug_assert_ne!(p, NIL, "item missing from its hash chain");
        }
        st.count -= 1;
    }

    /// Put `new` in `old`'s place in the hash chain and the LRU (both locks held): the
    /// mover's rescue of an item into another chunk of its class.
    pub(crate) fn replace_links(
        &self,
        st: &mut Stripe,
        cs: &mut ClassState,
        hash: u64,
        old: ChunkRef,
        new: ChunkRef,
    ) {
        let (o, n) = (self.header(old), self.header(new));
        let b = Self::bucket_of(hash, st.buckets.len());
        n.hash_next.store(o.hash_next.load(Relaxed), Relaxed);
        if st.buckets[b] == old {
            st.buckets[b] = new;
        } else {
            let mut p = st.buckets[b];
            while p != NIL {
                let ph = self.header(p);
                if ph.hash_next.load(Relaxed) == old {
                    ph.hash_next.store(new, Relaxed);
                    break;
                }
                p = ph.hash_next.load(Relaxed);
            }
        }
        let (prev, next) = (o.lru_prev.load(Relaxed), o.lru_next.load(Relaxed));
        n.lru_prev.store(prev, Relaxed);
        n.lru_next.store(next, Relaxed);
        let (head, tail) = if o.has_bit(WARM) {
            (&mut cs.warm_head, &mut cs.warm_tail)
        } else {
            (&mut cs.lru_head, &mut cs.lru_tail)
        };
        if prev != NIL {
            self.header(prev).lru_next.store(new, Relaxed);
        } else {
            *head = new;
        }
        if next != NIL {
            self.header(next).lru_prev.store(new, Relaxed);
        } else {
            *tail = new;
        }
    }

    fn table_grow(&self, st: &mut Stripe) {
        let mut buckets = vec![NIL; st.buckets.len() * 2];
        for &head in &st.buckets {
            let mut c = head;
            while c != NIL {
                let h = self.header(c);
                let next = h.hash_next.load(Relaxed);
                let b = Self::bucket_of(self.hash(self.key_of(c)), buckets.len());
                h.hash_next.store(buckets[b], Relaxed);
                buckets[b] = c;
                c = next;
            }
        }
        st.buckets = buckets;
    }

    // ---- classes: LRU and free lists (class lock held) ----------------------------------

    pub(crate) fn free_chunk(&self, cs: &mut ClassState, c: ChunkRef) {
        let h = self.header(c);
        h.bits.store(0, Relaxed);
        if let Some(moving) = cs.moving.as_mut().filter(|m| m.page == self.page_of(c)) {
            // The mover is emptying this page: the chunk is done with, not reusable.
            moving.used -= 1;
            cs.used_chunks -= 1;
            return;
        }
        h.lru_next.store(cs.free_head, Relaxed);
        cs.free_head = c;
        cs.free_count += 1;
        cs.used_chunks -= 1;
    }

    /// Remove a linked item from the index (stripe lock held), its LRU, and free it.
    fn unlink(&self, st: &mut Stripe, hash: u64, c: ChunkRef, why: Unlink) {
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
    fn take_page(&self, class: usize, first: bool) -> Option<usize> {
        let page = lock(&self.pool).take(self.page_limit.load(Relaxed), first)?;
        self.page_class[page].store(class as u8, Relaxed);
        Some(page)
    }

    /// Get a chunk of `class` for a new item, evicting if needed. The caller holds stripe
    /// `held_idx` (as `held`); `protect` is an item the caller still needs (never evicted).
    fn alloc(
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

    fn alloc_free(&self, cs: &mut ClassState, class: usize) -> Option<ChunkRef> {
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
                    page
                }
            };
            cs.carve = Some((page, 0));
        }
        let (page, next) = cs.carve.as_mut()?;
        let offset = *page * self.config.page_size + *next * self.classes.chunk_size(class);
        *next += 1;
        let c = Arena::chunk_at(offset);
        // A page that served another class holds its old bytes: a header read by the
        // crawler or mover before the writer fills it must not look like an item.
        self.header(c).bits.store(0, Relaxed);
        Some(c)
    }

    /// A head and `n` data chunks of the largest class for a chained item, evicting as
    /// needed, all under that class's lock. On failure nothing is kept (out of memory).
    fn alloc_chain(
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
    fn write_item(
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

    /// Link a written item into its class's LRU and the index.
    fn publish(&self, st: &mut Stripe, hash: u64, c: ChunkRef) {
        let class = self.class_of(c);
        {
            let mut cs = lock(&self.class_state[class]);
            self.lru_push_head(&mut cs, c);
            let h = self.header(c);
            h.set_bit(LINKED);
            let exp = h.exptime.load(Relaxed);
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
    fn overwrite(&self, c: ChunkRef, key_len: usize, flags: u32, exptime: u32, value: &[u8], now: u32) {
        let h = self.header(c);
        let (old_size, new_size) = (
            ItemHeader::SIZE + h.payload_len(),
            ItemHeader::SIZE + key_len + value.len(),
        );
        if old_size != new_size {
            let mut cs = lock(&self.class_state[self.class_of(c)]);
            cs.requested = cs.requested - old_size + new_size;
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
        // WARM says which LRU list the item is on: it stays there.
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
    fn replace_with(
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
        self.publish(st, hash, c);
        Ok(c)
    }

    // ---- public operations ---------------------------------------------------------------

    /// Look `key` up at cache time `now`; on a hit, call `read` with the item (under the
    /// key's stripe lock, so keep it short: copy the value out) and mark the item used.
    pub fn get<R>(&self, key: &[u8], now: u32, read: impl FnOnce(ItemRef<'_>) -> R) -> Option<R> {
        self.get_inner(key, now, None, read)
    }

    /// get-and-touch: as `get`, and set the item's expiry to `exptime` first.
    pub fn get_and_touch<R>(
        &self,
        key: &[u8],
        exptime: u32,
        now: u32,
        read: impl FnOnce(ItemRef<'_>) -> R,
    ) -> Option<R> {
        self.get_inner(key, now, Some(exptime), read)
    }

    fn get_inner<R>(
        &self,
        key: &[u8],
        now: u32,
        touch: Option<u32>,
        read: impl FnOnce(ItemRef<'_>) -> R,
    ) -> Option<R> {
        // `_locked` keeps the stripe locked while the item is read below.
        let Slot {
            st: _locked, found, ..
        } = self.lock_key(key, now)?;
        let c = match found {
            Found::Live(c) => c,
            Found::Missing => return None,
            Found::Expired => {
                self.get_expired.fetch_add(1, Relaxed);
                return None;
            }
            Found::Flushed => {
                self.get_flushed.fetch_add(1, Relaxed);
                return None;
            }
        };
        let h = self.header(c);
        h.set_bit(FETCHED);
        h.set_bit(ACCESSED);
        let class = self.class_of(c);
        let counters = self.counters(class);
        counters.get_hits.fetch_add(1, Relaxed);
        if let Some(exptime) = touch {
            h.exptime.store(exptime, Relaxed);
            counters.touch_hits.fetch_add(1, Relaxed);
        }
        Some(read(ItemRef {
            key: self.key_of(c),
            value: self.value_of(c),
            flags: h.client_flags.load(Relaxed),
            cas: self.visible_cas(h.cas()),
            exptime: h.exptime.load(Relaxed),
            class,
        }))
    }

    /// The meta protocol's read: look `key` up (or create it, see [`GetOptions::vivify`])
    /// and call `read` with the item under its stripe lock. `read` may change the expiry
    /// and token marks; the hit is counted and the item marked read afterwards, so `read`
    /// sees whether it had been fetched before.
    pub fn meta_get<R>(
        &self,
        key: &[u8],
        now: u32,
        opts: GetOptions,
        read: impl FnOnce(&ItemView<'_>) -> R,
    ) -> Option<R> {
        let Slot {
            hash,
            idx,
            mut st,
            found,
        } = self.lock_key(key, now)?;
        let found = match found {
            Found::Live(c) => Some(c),
            Found::Missing => None,
            Found::Expired => {
                self.get_expired.fetch_add(1, Relaxed);
                None
            }
            Found::Flushed => {
                self.get_flushed.fetch_add(1, Relaxed);
                None
            }
        };
        let (c, created) = match found {
            Some(c) => (c, false),
            None if opts.vivify => {
                let c = self
                    .replace_with(&mut st, idx, hash, NIL, key, 0, 0, &[], now)
                    .ok()?;
                (c, true)
            }
            None => return None,
        };
        let h = self.header(c);
        let class = self.class_of(c);
        let view = ItemView {
            cache: self,
            chunk: c,
            key: self.key_of(c),
            value: self.value_of(c),
            flags: h.client_flags.load(Relaxed),
            cas: self.visible_cas(h.cas()),
            class,
            fetched: h.has_bit(FETCHED),
            created,
        };
        let r = read(&view);
        if opts.bump {
            h.set_bit(FETCHED);
            h.set_bit(ACCESSED);
        }
        let counters = self.counters(class);
        match opts.counter {
            HitCounter::Get => counters.get_hits.fetch_add(1, Relaxed),
            HitCounter::Touch => counters.touch_hits.fetch_add(1, Relaxed),
            HitCounter::None => 0,
        };
        Some(r)
    }

    /// set / add / replace / append / prepend / cas. Returns the new item's CAS unique.
    /// append/prepend keep the old item's flags and expiry, as memcached does.
    pub fn store(
        &self,
        mode: StoreMode,
        key: &[u8],
        flags: u32,
        exptime: u32,
        value: &[u8],
        now: u32,
    ) -> Result<u64, StoreError> {
        self.store_with(mode, key, flags, exptime, value, now, StoreOptions::default())
    }

    /// [`Cache::store`] with the meta and binary protocols' extra conditions and marks
    /// (see [`StoreOptions`]).
    #[allow(clippy::too_many_arguments)]
    pub fn store_with(
        &self,
        mode: StoreMode,
        key: &[u8],
        flags: u32,
        exptime: u32,
        value: &[u8],
        now: u32,
        opts: StoreOptions,
    ) -> Result<u64, StoreError> {
        let Slot {
            hash,
            idx,
            mut st,
            found,
        } = self.lock_key_for_store(key, now).ok_or(StoreError::BadKey)?;
        let old = match found {
            Found::Live(c) => c,
            _ => NIL,
        };
        if !self.fits(key.len(), value.len()) {
            // memcached drops the old value when a set fails, so a client never reads data
            // older than its last write.
            if mode == StoreMode::Set && old != NIL {
                self.unlink(&mut st, hash, old, Unlink::Deleted);
            }
            return Err(StoreError::TooLarge);
        }
        // Bits the new item starts with besides KEY_BINARY (a stale cas write keeps some).
        let mut carried = 0u8;
        let result = match mode {
            StoreMode::Set => self.replace_with(&mut st, idx, hash, old, key, flags, exptime, &[value], now),
            StoreMode::Add if old != NIL => {
                // memcached refreshes the existing item's LRU position on a failed add.
                self.header(old).set_bit(ACCESSED);
                Err(StoreError::NotStored)
            }
            StoreMode::Add => self.replace_with(&mut st, idx, hash, old, key, flags, exptime, &[value], now),
            StoreMode::Replace | StoreMode::Append | StoreMode::Prepend if old == NIL => {
                Err(StoreError::NotStored)
            }
            StoreMode::Replace => {
                self.replace_with(&mut st, idx, hash, old, key, flags, exptime, &[value], now)
            }
            StoreMode::Append | StoreMode::Prepend => {
                let h = self.header(old);
                // A compare cas of 0 means "no condition", as in memcached; with CAS
                // disabled memcached's items cannot carry the request's cas, so it never
                // compares.
                let expected = if self.config.use_cas {
                    opts.compare_cas.unwrap_or(0)
                } else {
                    0
                };
                if expected != 0 && expected != self.visible_cas(h.cas()) {
                    Err(StoreError::Exists)
                } else {
                    let (old_flags, old_exp) = (h.client_flags.load(Relaxed), h.exptime.load(Relaxed));
                    // The old value may be a chain: its pieces are copied, never joined first.
                    let mut parts: Vec<&[u8]> = Vec::with_capacity(3);
                    if mode == StoreMode::Prepend {
                        parts.push(value);
                    }
                    parts.extend(self.value_of(old).parts());
                    if mode == StoreMode::Append {
                        parts.push(value);
                    }
                    self.replace_with(&mut st, idx, hash, old, key, old_flags, old_exp, &parts, now)
                        .map_err(|_| StoreError::NotStored)
                }
            }
            StoreMode::Cas(_) if old == NIL => Err(StoreError::NotFound),
            StoreMode::Cas(expected) => {
                let class = self.class_of(old);
                let h = self.header(old);
                let current = self.visible_cas(h.cas());
                // A unique of 0 never matches (always the case with CAS disabled), as in memcached.
                if expected != 0 && current == expected {
                    self.counters(class).cas_hits.fetch_add(1, Relaxed);
                    self.replace_with(&mut st, idx, hash, old, key, flags, exptime, &[value], now)
                } else if opts.invalidate && expected != 0 && expected < current {
                    // meta's stale write: an older cas may still store, but the value is
                    // marked stale, keeps the old expiry and whether its token was handed out.
                    self.counters(class).cas_hits.fetch_add(1, Relaxed);
                    carried = STALE | (h.bits.load(Relaxed) & WIN_TOKEN_SENT);
                    let old_exp = h.exptime.load(Relaxed);
                    self.replace_with(&mut st, idx, hash, old, key, flags, old_exp, &[value], now)
                } else {
                    self.counters(class).cas_badval.fetch_add(1, Relaxed);
                    Err(StoreError::Exists)
                }
            }
        };
        if mode == StoreMode::Set && result == Err(StoreError::OutOfMemory) && old != NIL {
            self.unlink(&mut st, hash, old, Unlink::Deleted);
        }
        let c = result?;
        let h = self.header(c);
        // memcached builds an appended value in a fresh item that does not inherit the
        // binary-key mark; every other mode stores the request's own item.
        if opts.key_binary && !matches!(mode, StoreMode::Append | StoreMode::Prepend) {
            carried |= KEY_BINARY;
        }
        if carried != 0 {
            h.bits.store(h.bits.load(Relaxed) | carried, Relaxed);
        }
        let class = self
            .classes
            .class_for(ItemHeader::total_size(key.len(), value.len()))
            .unwrap_or(1);
        self.counters(class).cmd_set.fetch_add(1, Relaxed);
        Ok(self.visible_cas(h.cas()))
    }

    /// Remove `key`. True if a live item was removed.
    pub fn delete(&self, key: &[u8], now: u32) -> bool {
        self.delete_with(key, now, DeleteOptions::default()) == DeleteResult::Deleted
    }

    /// Delete with the meta and binary protocols' options: a cas that must match, or
    /// invalidation (mark stale, optionally re-expire) instead of removal.
    pub fn delete_with(&self, key: &[u8], now: u32, opts: DeleteOptions) -> DeleteResult {
        let Some(Slot {
            hash,
            idx: _,
            mut st,
            found,
        }) = self.lock_key(key, now)
        else {
            return DeleteResult::NotFound;
        };
        let c = match found {
            Found::Live(c) => c,
            _ => return DeleteResult::NotFound,
        };
        let h = self.header(c);
        if opts
            .compare_cas
            .is_some_and(|cas| cas != self.visible_cas(h.cas()))
        {
            return DeleteResult::Exists;
        }
        if opts.invalidate {
            if let Some(exptime) = opts.exptime {
                h.exptime.store(exptime, Relaxed);
            }
            h.set_bit(STALE);
            // The next reader wins the recache token again.
            h.clear_bit(WIN_TOKEN_SENT);
            // A new unique makes clients holding the old one fail their cas; it is never
            // below the flush mark, so the item cannot turn "flushed" by it.
            let cas = self.next_cas();
            h.set_cas(cas);
            self.write_marks.note(cas, now);
            return DeleteResult::Invalidated;
        }
        self.counters(self.class_of(c)).delete_hits.fetch_add(1, Relaxed);
        self.unlink(&mut st, hash, c, Unlink::Deleted);
        DeleteResult::Deleted
    }

    /// Set a live item's expiry. True if the item exists. Like memcached, a touch counts
    /// as a fetch (meta `h`, `me fetch=`).
    pub fn touch(&self, key: &[u8], exptime: u32, now: u32) -> bool {
        // `_locked` keeps the stripe locked while the item is changed below.
        let Some(Slot {
            st: _locked, found, ..
        }) = self.lock_key(key, now)
        else {
            return false;
        };
        match found {
            Found::Live(c) => {
                let h = self.header(c);
                h.exptime.store(exptime, Relaxed);
                h.set_bit(FETCHED);
                h.set_bit(ACCESSED);
                self.counters(self.class_of(c)).touch_hits.fetch_add(1, Relaxed);
                true
            }
            _ => false,
        }
    }

    /// incr (wrapping at 2^64) or decr (stopping at 0) a decimal value; returns the new
    /// value. As in memcached, a result shorter than the stored text is padded with
    /// spaces to the old length; a longer one grows the item. Never returns
    /// [`ArithError::Exists`] or [`ArithError::CreateFailed`] (see [`Cache::arith`]).
    pub fn incr_decr(&self, key: &[u8], incr: bool, delta: u64, now: u32) -> Result<u64, ArithError> {
        self.arith(key, incr, delta, now, ArithOptions::default())
            .map(|done| done.value)
    }

    /// incr/decr with the meta and binary protocols' options: a cas that must match,
    /// creation of a missing item, and a new expiry applied with the change.
    pub fn arith(
        &self,
        key: &[u8],
        incr: bool,
        delta: u64,
        now: u32,
        opts: ArithOptions,
    ) -> Result<ArithDone, ArithError> {
        let Slot {
            hash,
            idx,
            mut st,
            found,
        } = self.lock_key(key, now).ok_or(ArithError::NotFound)?;
        let old = match found {
            Found::Live(c) => c,
            _ => {
                let Some((initial, exptime)) = opts.create else {
                    return Err(ArithError::NotFound);
                };
                let mut digits = [0u8; 20];
                let n = write_decimal(initial, &mut digits);
                let c = self
                    .replace_with(&mut st, idx, hash, NIL, key, 0, exptime, &[&digits[..n]], now)
                    .map_err(|_| ArithError::CreateFailed)?;
                let h = self.header(c);
                return Ok(ArithDone {
                    value: initial,
                    cas: self.visible_cas(h.cas()),
                    exptime_before: exptime,
                    exptime: h.exptime.load(Relaxed),
                    created: true,
                });
            }
        };
        let h = self.header(old);
        // A chained value is far too long to be a number.
        let old_value = self.value_of(old).as_slice().unwrap_or(b"x");
        // memcached's order: an empty value is refused before the cas is compared, a
        // mismatching cas before the number is parsed.
        if old_value.is_empty() {
            return Err(ArithError::NonNumeric);
        }
        if opts
            .compare_cas
            .is_some_and(|cas| cas != 0 && cas != self.visible_cas(h.cas()))
        {
            return Err(ArithError::Exists);
        }
        let current = parse_decimal(old_value).ok_or(ArithError::NonNumeric)?;
        let result = if incr {
            current.wrapping_add(delta)
        } else {
            current.saturating_sub(delta)
        };
        let mut digits = [b' '; 20];
        let n = write_decimal(result, &mut digits);
        let mut text = [b' '; 250];
        let new_len = if n <= old_value.len() && old_value.len() <= text.len() {
            old_value.len()
        } else {
            n
        };
        text[..n].copy_from_slice(&digits[..n]);
        // memcached rewrites a number that still fits in place, without linking a new item.
        let in_place = n <= old_value.len();
        let class = self.class_of(old);
        let (flags, exptime) = (h.client_flags.load(Relaxed), h.exptime.load(Relaxed));
        // A value longer than `text` that still parses is padded by spaces we cannot hold
        // here; shortening it to the digits changes only its whitespace.
        let c = self
            .replace_with(
                &mut st,
                idx,
                hash,
                old,
                key,
                flags,
                exptime,
                &[&text[..new_len]],
                now,
            )
            .map_err(|_| ArithError::OutOfMemory)?;
        if in_place {
            // Keep `total_items` counting links as memcached does.
            self.total_items.fetch_sub(1, Relaxed);
        }
        let counters = self.counters(class);
        if incr {
            counters.incr_hits.fetch_add(1, Relaxed);
        } else {
            counters.decr_hits.fetch_add(1, Relaxed);
        }
        let h = self.header(c);
        if let Some(t) = opts.set_exptime {
            h.exptime.store(t, Relaxed);
        }
        Ok(ArithDone {
            value: result,
            cas: self.visible_cas(h.cas()),
            exptime_before: exptime,
            exptime: h.exptime.load(Relaxed),
            created: false,
        })
    }

    /// Invalidate every item stored before cache time `at` (None: now). Memory is
    /// reclaimed lazily, as items are met. A later call replaces a pending one.
    pub fn flush_all(&self, at: Option<u32>, now: u32) {
        match at {
            Some(t) if t > now => self.flush_at.store(t, Relaxed),
            _ => {
                self.flush_at.store(0, Relaxed);
                // memcached spends a unique on an immediate flush (its flush mark), so the
                // uniques clients see after it stay equal to memcached's.
                self.flush_below_cas
                    .store(self.next_cas.fetch_add(1, Relaxed), Relaxed);
            }
        }
        // The crawler gives the flushed items' memory back on a pass from then on.
        self.crawler_due_at(at.unwrap_or(now).max(now));
    }

    /// Change the memory limit (cache_memlimit). It cannot exceed the arena mapped at
    /// start. Pooled pages over a lowered limit go back to the kernel at once; pages held
    /// by classes are taken back by the mover, a page at a time (see `mover`).
    pub fn set_memory_limit(&self, bytes: usize) {
        let pages = (bytes / self.config.page_size).clamp(1, self.page_class.len());
        self.page_limit.store(pages, Relaxed);
        lock(&self.pool).trim(pages, &self.arena, self.config.page_size);
    }

    /// Memory limit in bytes now in force.
    pub fn memory_limit(&self) -> usize {
        self.page_limit.load(Relaxed) * self.config.page_size
    }

    /// Visit up to `limit` items of a class, newest first (0 = no limit), for
    /// `stats cachedump`: key, value length, expiry (cache time, 0 = never).
    pub fn dump(&self, class: usize, limit: usize, mut visit: impl FnMut(&[u8], usize, u32)) {
        if class == 0 || class > self.classes.len() {
            return;
        }
        let cs = lock(&self.class_state[class]);
        let mut n = 0;
        for head in [cs.warm_head, cs.lru_head] {
            let mut c = head;
            while c != NIL && (limit == 0 || n < limit) {
                let h = self.header(c);
                visit(self.key_of(c), h.value_len(), h.exptime.load(Relaxed));
                n += 1;
                c = h.lru_next.load(Relaxed);
            }
        }
    }

    /// Cache-wide counters.
    pub fn stats(&self) -> CacheStats {
        let (malloced, pooled) = {
            let pool = lock(&self.pool);
            (pool.malloced(), pool.free.len())
        };
        let mut s = CacheStats {
            total_items: self.total_items.load(Relaxed),
            get_expired: self.get_expired.load(Relaxed),
            get_flushed: self.get_flushed.load(Relaxed),
            limit_maxbytes: self.memory_limit() as u64,
            total_malloced: (malloced * self.config.page_size) as u64,
            slab_global_page_pool: pooled as u64,
            ..CacheStats::default()
        };
        for class in 1..=self.classes.len() {
            let cs = lock(&self.class_state[class]);
            s.curr_items += cs.items as u64;
            s.bytes += cs.requested as u64;
            s.evictions += cs.evicted;
            s.reclaimed += cs.reclaimed;
            s.expired_unfetched += cs.expired_unfetched;
            s.evicted_unfetched += cs.evicted_unfetched;
        }
        for stripe in self.stripes.iter() {
            s.hash_bytes += (lock(stripe).buckets.len() * std::mem::size_of::<ChunkRef>()) as u64;
        }
        s
    }

    /// Per-class figures for every class that has ever been given a page.
    pub fn class_stats(&self) -> Vec<ClassStats> {
        let mut out = Vec::new();
        for id in 1..=self.classes.len() {
            let cs = lock(&self.class_state[id]);
            if cs.pages.is_empty() {
                continue;
            }
            let per_page = self.classes.chunks_per_page(id);
            let carved_left =
                cs.carve.map_or(0, |(_, next)| per_page.saturating_sub(next)) + cs.pending.len() * per_page;
            let sum = |f: fn(&ClassCounters) -> &AtomicU64| self.counter_total(id, f);
            out.push(ClassStats {
                id,
                chunk_size: self.classes.chunk_size(id) as u64,
                chunks_per_page: per_page as u64,
                total_pages: cs.pages.len() as u64,
                total_chunks: (cs.pages.len() * per_page) as u64,
                used_chunks: cs.used_chunks as u64,
                free_chunks: (cs.free_count + carved_left) as u64,
                free_chunks_end: carved_left as u64,
                mem_requested: cs.requested as u64,
                items: cs.items as u64,
                evicted: cs.evicted,
                evicted_nonzero: cs.evicted_nonzero,
                reclaimed: cs.reclaimed,
                outofmemory: cs.outofmemory,
                expired_unfetched: cs.expired_unfetched,
                evicted_unfetched: cs.evicted_unfetched,
                get_hits: sum(|k| &k.get_hits),
                cmd_set: sum(|k| &k.cmd_set),
                delete_hits: sum(|k| &k.delete_hits),
                incr_hits: sum(|k| &k.incr_hits),
                decr_hits: sum(|k| &k.decr_hits),
                cas_hits: sum(|k| &k.cas_hits),
                cas_badval: sum(|k| &k.cas_badval),
                touch_hits: sum(|k| &k.touch_hits),
                crawler_reclaimed: cs.crawler_reclaimed,
                crawler_items_checked: cs.crawler_items_checked,
                warm_items: cs.warm_items as u64,
                moves_to_warm: cs.moves_to_warm,
                moves_to_cold: cs.moves_to_cold,
            });
        }
        out
    }

    /// `stats reset`: zero the counters (not the contents).
    pub fn reset_stats(&self) {
        self.total_items.store(0, Relaxed);
        self.get_expired.store(0, Relaxed);
        self.get_flushed.store(0, Relaxed);
        for id in 1..=self.classes.len() {
            let mut cs = lock(&self.class_state[id]);
            cs.evicted = 0;
            cs.evicted_nonzero = 0;
            cs.reclaimed = 0;
            cs.outofmemory = 0;
            cs.expired_unfetched = 0;
            cs.evicted_unfetched = 0;
            cs.crawler_reclaimed = 0;
            cs.crawler_items_checked = 0;
            cs.moves_to_warm = 0;
            cs.moves_to_cold = 0;
            for k in &self.class_counters[id * COUNTER_SHARDS..(id + 1) * COUNTER_SHARDS] {
                for counter in [
                    &k.get_hits,
                    &k.cmd_set,
                    &k.delete_hits,
                    &k.incr_hits,
                    &k.decr_hits,
                    &k.cas_hits,
                    &k.cas_badval,
                    &k.touch_hits,
                ] {
                    counter.store(0, Relaxed);
                }
            }
        }
    }

    /// Turn `stats sizes` tracking on (from an empty histogram) or off.
    pub fn set_size_tracking(&self, on: bool) {
        if on && !self.sizes.enabled.load(Relaxed) {
            for b in self.sizes.buckets.iter() {
                b.store(0, Relaxed);
            }
        }
        self.sizes.enabled.store(on, Relaxed);
    }

    /// `stats sizes`: (size, items) for every non-empty 32-byte bucket, or None when
    /// tracking is off.
    pub fn size_histogram(&self) -> Option<Vec<(usize, u64)>> {
        if !self.sizes.enabled.load(Relaxed) {
            return None;
        }
        let rows = self.sizes.buckets.iter().enumerate();
        Some(
            rows.filter_map(|(i, b)| {
                let n = b.load(Relaxed);
                (n > 0).then_some((i * SizeHistogram::BUCKET, n))
            })
            .collect(),
        )
    }

    /// The calling thread's counter block for `class`.
    fn counters(&self, class: usize) -> &ClassCounters {
        let shard = COUNTER_SHARD.with(|s| *s);
        &self.class_counters[class * COUNTER_SHARDS + shard]
    }

    /// One counter of `class`, summed over the shards.
    fn counter_total(&self, class: usize, field: fn(&ClassCounters) -> &AtomicU64) -> u64 {
        self.class_counters[class * COUNTER_SHARDS..(class + 1) * COUNTER_SHARDS]
            .iter()
            .map(|k| field(k).load(Relaxed))
            .sum()
    }
}

/// Whether two byte slices share memory (a value built from the old one, as by append or
/// prepend, must not be written over the bytes it is being copied from).
fn overlaps(a: &[u8], b: &[u8]) -> bool {
    let (a0, b0) = (a.as_ptr() as usize, b.as_ptr() as usize);
    a0 < b0 + b.len() && b0 < a0 + a.len()
}

/// memcached's reading of a stored number for incr/decr: optional leading whitespace, an
/// optional '+', at least one decimal digit, then the end of the value or whitespace. Out of u64 range
/// or anything else is non-numeric.
fn parse_decimal(value: &[u8]) -> Option<u64> {
    let mut i = value.iter().take_while(|b| b.is_ascii_whitespace()).count();
    if value.get(i) == Some(&b'+') {
        i += 1;
    }
    let mut n: u64 = 0;
    if value.get(i).is_none_or(|b| !b.is_ascii_digit()) {
        // No digits at all (an empty value included) is not a number.
        return None;
    }
    while let Some(&b) = value.get(i) {
        if !b.is_ascii_digit() {
            break;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
        i += 1;
    }
    match value.get(i) {
        None => Some(n),
        Some(b) if b.is_ascii_whitespace() => Some(n),
        Some(_) => None,
    }
}

/// Write `n` in decimal at the start of `buf`; returns the length.
fn write_decimal(mut n: u64, buf: &mut [u8; 20]) -> usize {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let len = tmp.len() - i;
    buf[..len].copy_from_slice(&tmp[i..]);
    len
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_parsing_follows_memcached() {
        assert_eq!(parse_decimal(b"42"), Some(42));
        assert_eq!(parse_decimal(b"99 "), Some(99));
        assert_eq!(parse_decimal(b"  7"), Some(7));
        assert_eq!(parse_decimal(b""), None);
        assert_eq!(parse_decimal(b"  "), None);
        assert_eq!(parse_decimal(b"12abc"), None);
        assert_eq!(parse_decimal(b"-1"), None);
        assert_eq!(parse_decimal(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_decimal(b"18446744073709551616"), None);
    }

    #[test]
    fn decimal_writing() {
        let mut b = [0; 20];
        let n = write_decimal(0, &mut b);
        assert_eq!(&b[..n], b"0");
        let n = write_decimal(u64::MAX, &mut b);
        assert_eq!(&b[..n], b"18446744073709551615");
    }
}
