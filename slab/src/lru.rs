//! Per-class LRU lists and eviction: memcached's HOT, WARM, COLD and TEMP segments, or one
//! flat CLOCK list.
//!
//! A get never touches the class lock: it marks the item FETCHED, then (second read)
//! ACCESSED, memcached's ACTIVE. Each class has four lists, newest first; an item's header
//! names its list ([`Segment`]):
//! - HOT: where a new item starts. Kept at `hot_lru_pct` of the class's bytes: its tail
//!   moves to WARM if ACCESSED, else to COLD (`moves_to_warm`, `moves_to_cold`).
//! - WARM: items read again. Kept at `warm_lru_pct`: an ACCESSED tail gets another round in
//!   WARM (`moves_within_lru`), any other goes to COLD.
//! - COLD: where eviction takes from. An item that becomes ACCESSED while in COLD is queued
//!   (a bounded lock-free queue; dropped when full) for the maintainer, which moves it to
//!   WARM; eviction also moves an ACCESSED COLD tail to WARM instead of evicting it.
//! - TEMP (`temporary_ttl`): items stored with a TTL below it. Never evicted, only
//!   reclaimed once dead, and not counted in the HOT and WARM shares.
//!
//! The shares weigh the items' bytes (header, key and value), as memcached's do, out of the
//! class's HOT, WARM and COLD bytes. A maintainer pass also
//! moves an inactive HOT tail to COLD when it is older than `hot_max_factor` times the COLD
//! tail's age. Ages are from the last write: the header has no access time. For a HOT item
//! the two mostly agree, but a WARM item is there because it was read since its write, so
//! `warm_max_factor` (memcached's age limit on WARM, by last access) is kept and shown but
//! not applied: by write time it would push the items read most out of WARM.
//!
//! The HOT and WARM lists are balanced ("juggled") by the LRU maintainer
//! ([`Cache::lru_maintain`], driven by the server's background thread), and by every
//! allocation that has to evict, so the cache behaves without the thread too. Eviction
//! takes the COLD tail; with COLD empty the HOT tail, then the WARM tail. A dead (expired
//! or flushed) tail item of any list is reclaimed.
//!
//! In flat mode (`lru mode flat`) new items go to COLD and an ACCESSED tail gets a second
//! chance at the COLD head (CLOCK); HOT and WARM drain into COLD.
//!
//! An item's segment changes only with both the class lock and the item's stripe lock
//! held, while it is off the lists. Starting from a class lock, stripes are only
//! `try_lock`ed: a busy item is passed over.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering::Relaxed};

use crossbeam_queue::ArrayQueue;

use crate::arena::{ChunkRef, NIL};
use crate::cache::{lock, Cache, ClassState, Stripe};
use crate::item::{ItemHeader, Segment, ACCESSED, FETCHED, LINKED};

/// Items on a page being moved that one search may evict back to the mover, besides
/// its budget (see `evict_from`): about a page of small items, the mover's own unit of
/// work, so a tail made of that page's items is passed in one allocation.
const MOVING_EVICT_MAX: usize = 1024;

/// How many tail items one allocation looks at before giving up, per pass.
const EVICTION_SEARCH: usize = 32;

/// HOT/WARM tail items moved per allocation at most.
const JUGGLE_PER_ALLOC: usize = 2;

/// HOT/WARM tail items one maintainer pass moves per class at most.
const JUGGLE_PER_PASS: usize = 500;

/// TEMP tail items one pass looks at for dead ones.
const TEMP_SEARCH: usize = 5;

/// Capacity of the queue of COLD items read twice, waiting to move to WARM.
const BUMP_QUEUE: usize = 4096;

/// Bumps one maintainer pass drains at most.
const BUMPS_PER_PASS: usize = 4096;

/// memcached's default `warm_lru_pct`.
pub const DEFAULT_WARM_PCT: u8 = 40;
/// memcached's default `hot_lru_pct`.
pub const DEFAULT_HOT_PCT: u8 = 20;
/// memcached's default `hot_max_factor` (0.2), in hundredths.
const DEFAULT_HOT_FACTOR: u32 = 20;

/// One LRU list of a class, newest first.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct LruList {
    pub head: ChunkRef,
    pub tail: ChunkRef,
    pub count: usize,
    /// The items' sizes (header, key and value), what the HOT and WARM shares weigh.
    pub bytes: usize,
}

/// The stripe an allocating caller already holds, if any, and its index.
pub(crate) type Held<'a> = Option<(&'a mut Stripe, usize)>;

/// The run-time LRU settings (`lru mode|tune|temp_ttl`) and the maintainer's shared state.
pub(crate) struct LruState {
    segmented: AtomicBool,
    hot_pct: AtomicU8,
    warm_pct: AtomicU8,
    /// New items with a TTL below this go to TEMP; 0 = no TEMP list.
    temp_ttl: AtomicU32,
    /// `hot_max_factor` in hundredths (see [`Cache::set_hot_max_factor`]).
    hot_factor: AtomicU32,
    /// COLD items that became ACCESSED, for the maintainer to move to WARM.
    bumps: ArrayQueue<ChunkRef>,
    bumps_dropped: AtomicU64,
    juggles: AtomicU64,
}

impl Default for LruState {
    fn default() -> Self {
        LruState {
            segmented: AtomicBool::new(true),
            hot_pct: AtomicU8::new(DEFAULT_HOT_PCT),
            warm_pct: AtomicU8::new(DEFAULT_WARM_PCT),
            temp_ttl: AtomicU32::new(0),
            hot_factor: AtomicU32::new(DEFAULT_HOT_FACTOR),
            bumps: ArrayQueue::new(BUMP_QUEUE),
            bumps_dropped: AtomicU64::new(0),
            juggles: AtomicU64::new(0),
        }
    }
}

/// The LRU maintainer's cache-wide counters (`stats`).
#[derive(Debug, Clone, Copy, Default)]
pub struct LruStats {
    /// Maintainer passes (memcached's `lru_maintainer_juggles`).
    pub juggles: u64,
    /// COLD bumps dropped because the queue was full (`lru_bumps_dropped`).
    pub bumps_dropped: u64,
}

impl ClassState {
    pub(crate) fn list(&self, seg: Segment) -> &LruList {
        &self.lists[seg as usize]
    }

    /// The item eviction would look at first (COLD's tail, else HOT's, else WARM's).
    pub(crate) fn eviction_tail(&self) -> ChunkRef {
        [Segment::Cold, Segment::Hot, Segment::Warm]
            .iter()
            .map(|&s| self.list(s).tail)
            .find(|&t| t != NIL)
            .unwrap_or(NIL)
    }
}

impl Cache {
    /// Put `c` at the head of list `seg` and name it in its header.
    pub(crate) fn lru_push(&self, cs: &mut ClassState, c: ChunkRef, seg: Segment) {
        let h = self.header(c);
        h.set_segment(seg);
        let list = &mut cs.lists[seg as usize];
        list.count += 1;
        list.bytes += ItemHeader::SIZE + h.payload_len();
        h.lru_prev.store(NIL, Relaxed);
        h.lru_next.store(list.head, Relaxed);
        if list.head != NIL {
            self.header(list.head).lru_prev.store(c, Relaxed);
        } else {
            list.tail = c;
        }
        list.head = c;
    }

    /// Take `c` off the list its header names.
    pub(crate) fn lru_remove(&self, cs: &mut ClassState, c: ChunkRef) {
        let h = self.header(c);
        let list = &mut cs.lists[h.segment() as usize];
        list.count -= 1;
        list.bytes -= ItemHeader::SIZE + h.payload_len();
        let (prev, next) = (h.lru_prev.load(Relaxed), h.lru_next.load(Relaxed));
        if prev == NIL {
            list.head = next;
        } else {
            self.header(prev).lru_next.store(next, Relaxed);
        }
        if next == NIL {
            list.tail = prev;
        } else {
            self.header(next).lru_prev.store(prev, Relaxed);
        }
    }

    /// Move linked `c` to the head of `seg` (both locks held).
    fn lru_move(&self, cs: &mut ClassState, c: ChunkRef, seg: Segment) {
        self.lru_remove(cs, c);
        self.lru_push(cs, c, seg);
    }

    /// The list a new item with expiry `exptime` starts on at cache time `now`.
    pub(crate) fn first_segment(&self, exptime: u32, now: u32) -> Segment {
        let temp_ttl = self.lru.temp_ttl.load(Relaxed);
        if temp_ttl != 0 && exptime != 0 && exptime.saturating_sub(now) < temp_ttl {
            Segment::Temp
        } else if self.lru_segmented() {
            Segment::Hot
        } else {
            Segment::Cold
        }
    }

    /// A read made linked item `c` ACCESSED (its stripe lock held): a COLD item is queued
    /// for the maintainer to move to WARM. Lock-free; dropped when the queue is full.
    pub(crate) fn lru_bump(&self, c: ChunkRef) {
        if self.header(c).segment() == Segment::Cold
            && self.lru_segmented()
            && self.lru.bumps.push(c).is_err()
        {
            self.lru.bumps_dropped.fetch_add(1, Relaxed);
        }
    }

    /// Whether the segmented mode is on (`lru mode segmented`, memcached's default).
    pub fn lru_segmented(&self) -> bool {
        self.lru.segmented.load(Relaxed)
    }

    /// `lru mode flat|segmented`.
    pub fn set_lru_segmented(&self, on: bool) {
        self.lru.segmented.store(on, Relaxed);
    }

    /// `lru tune`'s warm share, percent of a class's bytes (memcached's `warm_lru_pct`).
    pub fn set_warm_pct(&self, pct: u8) {
        self.lru.warm_pct.store(pct.min(80), Relaxed);
    }

    /// `lru tune`'s hot share, percent of a class's bytes (memcached's `hot_lru_pct`).
    pub fn set_hot_pct(&self, pct: u8) {
        self.lru.hot_pct.store(pct.min(80), Relaxed);
    }

    /// `-o temporary_ttl` / `lru temp_ttl`: new items with a TTL below `ttl` go to the TEMP
    /// list; None (or 0) turns TEMP off.
    pub fn set_temp_ttl(&self, ttl: Option<u32>) {
        self.lru.temp_ttl.store(ttl.unwrap_or(0), Relaxed);
    }

    /// `lru tune`'s and `-o hot_max_factor`: a maintainer pass also moves an inactive HOT
    /// tail to COLD once its age is more than `factor` times the COLD tail's. Kept to
    /// hundredths. (`warm_max_factor` has no engine setting: see the module docs.)
    pub fn set_hot_max_factor(&self, factor: f64) {
        let hundredths = (factor * 100.0).round().clamp(0.0, f64::from(u32::MAX)) as u32;
        self.lru.hot_factor.store(hundredths, Relaxed);
    }

    /// The maintainer's counters.
    pub fn lru_stats(&self) -> LruStats {
        LruStats {
            juggles: self.lru.juggles.load(Relaxed),
            bumps_dropped: self.lru.bumps_dropped.load(Relaxed),
        }
    }

    /// One pass of the LRU maintainer: move queued COLD bumps to WARM, then bring each
    /// class's HOT and WARM lists toward their shares and reclaim dead TEMP tails.
    /// Returns how many items it moved or reclaimed (0: nothing to do, sleep longer).
    pub fn lru_maintain(&self, now: u32) -> usize {
        self.lru.juggles.fetch_add(1, Relaxed);
        let mut work = 0;
        for _ in 0..BUMPS_PER_PASS {
            let Some(c) = self.lru.bumps.pop() else { break };
            work += usize::from(self.move_bumped(c));
        }
        for class in 1..=self.classes.len() {
            let mut cs = lock(&self.class_state[class]);
            if cs.items == 0 {
                continue;
            }
            let max_age = self.max_age(&cs, now);
            work += self.juggle(&mut cs, &mut None, NIL, now, JUGGLE_PER_PASS, max_age);
        }
        work
    }

    /// The age (seconds since the last write: the header keeps no access time) past which
    /// a HOT tail moves to COLD whatever the share: the COLD tail's age times the factor.
    /// None in flat mode or with COLD empty (then only the shares apply).
    fn max_age(&self, cs: &ClassState, now: u32) -> Option<u32> {
        let tail = cs.list(Segment::Cold).tail;
        if !self.lru_segmented() || tail == NIL {
            return None;
        }
        let cold_age = u64::from(now.saturating_sub(self.write_marks.written_at(self.header(tail).cas())));
        let scaled =
            |f: &AtomicU32| (cold_age * u64::from(f.load(Relaxed)) / 100).min(u64::from(u32::MAX)) as u32;
        Some(scaled(&self.lru.hot_factor))
    }

    /// Whether `c` was last written more than `max_age` seconds before `now`.
    fn older_than(&self, c: ChunkRef, max_age: u32, now: u32) -> bool {
        now.saturating_sub(self.write_marks.written_at(self.header(c).cas())) > max_age
    }

    /// Move a queued chunk to WARM if it still is a linked, ACCESSED COLD item of a page
    /// that is not being moved. The chunk may have been freed or reused since it was
    /// queued: everything is checked again under the locks.
    fn move_bumped(&self, c: ChunkRef) -> bool {
        let class = self.class_of(c);
        if class == 0 || class > self.classes.len() {
            return false;
        }
        let mut cs = lock(&self.class_state[class]);
        let page = self.page_of(c);
        // Under this class lock a chunk of a page of the class keeps its LINKED bit, and a
        // linked item its key.
        if self.class_of(c) != class || cs.moving.is_some_and(|m| m.page == page) {
            return false;
        }
        let h = self.header(c);
        if !h.has_bit(LINKED) || h.is_data_chunk() || h.segment() != Segment::Cold || !h.has_bit(ACCESSED) {
            return false;
        }
        let moved = self.with_item_locked(c, false, &mut None, |cache, _, _| {
            if !h.has_bit(LINKED) || h.segment() != Segment::Cold {
                return false;
            }
            h.clear_bit(ACCESSED);
            cache.lru_move(&mut cs, c, Segment::Warm);
            cs.moves_to_warm += 1;
            true
        });
        moved == Some(true)
    }

    /// Free one item of a class for an allocation (class lock held as `cs`): see the
    /// module docs. Items whose stripe is busy, on a page being moved, or `protect` (an
    /// item the caller still needs) are passed over. `force` evicts even ACCESSED items.
    pub(crate) fn evict_one(
        &self,
        cs: &mut ClassState,
        held: &mut Stripe,
        held_idx: usize,
        protect: ChunkRef,
        now: u32,
        force: bool,
    ) -> Option<ChunkRef> {
        if !force {
            cs.direct_reclaims += 1;
        }
        let mut held = Some((held, held_idx));
        self.juggle(cs, &mut held, protect, now, JUGGLE_PER_ALLOC, None);
        if cs.free_head != NIL {
            // The juggle reclaimed a dead item.
            let c = cs.free_head;
            cs.free_head = self.header(c).lru_next.load(Relaxed);
            cs.free_count -= 1;
            return Some(c);
        }
        // COLD first; HOT and WARM only when COLD (then HOT) has nothing evictable, for
        // instance every item a reader's stripe holds; WARM's tail goes whatever its marks.
        // TEMP gives up dead items only.
        for seg in [Segment::Cold, Segment::Hot, Segment::Warm, Segment::Temp] {
            let force = force || seg == Segment::Warm;
            if let Some(c) = self.evict_from(cs, seg, &mut held, protect, now, force) {
                return Some(c);
            }
        }
        None
    }

    /// Search list `seg` from its tail for an item to evict or reclaim (TEMP: only dead
    /// items). ACCESSED items met on the way are promoted unless `force`.
    fn evict_from(
        &self,
        cs: &mut ClassState,
        seg: Segment,
        held: &mut Held<'_>,
        protect: ChunkRef,
        now: u32,
        force: bool,
    ) -> Option<ChunkRef> {
        let moving = cs.moving.map(|m| m.page);
        let mut c = cs.list(seg).tail;
        let (mut searched, mut to_mover) = (0, 0);
        while searched < EVICTION_SEARCH {
            if c == NIL {
                return None;
            }
            let prev = self.header(c).lru_prev.load(Relaxed);
            let on_moving = moving == Some(self.page_of(c));
            if on_moving && c != protect && to_mover < MOVING_EVICT_MAX {
                // A chunk on the page being emptied cannot go to a writer, but its item can
                // be evicted back to the mover, outside the search budget: when the tail is
                // all on that page (its oldest items), skipping them would refuse every
                // store until the move ends.
                to_mover += 1;
                let got = self.with_item_locked(c, false, held, |cache, st, hash| {
                    cache.try_evict(cs, st, hash, c, now, force, seg == Segment::Temp)
                });
                if got == Some(true) {
                    self.free_chunk(cs, c);
                }
                c = prev;
                continue;
            }
            searched += 1;
            let skip = c == protect || on_moving;
            let got = self.with_item_locked(c, skip, held, |cache, st, hash| {
                cache.try_evict(cs, st, hash, c, now, force, seg == Segment::Temp)
            });
            if got == Some(true) {
                cs.used_chunks -= 1;
                return Some(c);
            }
            c = prev;
        }
        None
    }

    /// Run `f` with `c`'s stripe locked (the held one, or try-locked), unless `skip` (the
    /// caller's own item, or one on a page being emptied, which is the mover's); None when
    /// it was passed over.
    fn with_item_locked<R>(
        &self,
        c: ChunkRef,
        skip: bool,
        held: &mut Held<'_>,
        f: impl FnOnce(&Cache, &mut Stripe, u64) -> R,
    ) -> Option<R> {
        if skip {
            return None;
        }
        let hash = self.hash(self.key_of(c));
        let idx = Self::stripe_of(hash);
        if let Some((st, held_idx)) = held.as_mut() {
            if *held_idx == idx {
                return Some(f(self, st, hash));
            }
        }
        let mut st = self.stripes[idx].try_lock().ok()?;
        Some(f(self, &mut st, hash))
    }

    /// Bring HOT and WARM toward their shares of the class (at most `budget` items each),
    /// and with `hot_max_age` also move inactive HOT tails older than that to COLD;
    /// reclaim dead items at the TEMP tail. Returns the items moved or reclaimed.
    fn juggle(
        &self,
        cs: &mut ClassState,
        held: &mut Held<'_>,
        protect: ChunkRef,
        now: u32,
        budget: usize,
        hot_max_age: Option<u32>,
    ) -> usize {
        let segmented = self.lru_segmented();
        // memcached weighs the shares in bytes of the class's HOT, WARM and COLD items.
        let bytes: usize = [Segment::Hot, Segment::Warm, Segment::Cold]
            .iter()
            .map(|&s| cs.list(s).bytes)
            .sum();
        let share = |pct: &AtomicU8| {
            if segmented {
                bytes * usize::from(pct.load(Relaxed)) / 100
            } else {
                0
            }
        };
        let (hot_limit, warm_limit) = (share(&self.lru.hot_pct), share(&self.lru.warm_pct));
        let mut work = 0;
        for (seg, limit, max_age) in [
            (Segment::Hot, hot_limit, hot_max_age),
            (Segment::Warm, warm_limit, None),
        ] {
            // From the tail, passing over busy items (a reader holds their stripe).
            let mut c = cs.list(seg).tail;
            for _ in 0..budget {
                if c == NIL {
                    break;
                }
                // Under its share, an ACCESSED tail stays (it is rescued once the list is
                // over its share) and an inactive one moves only when too old.
                let over = cs.list(seg).bytes > limit;
                if !over
                    && (self.header(c).has_bit(ACCESSED)
                        || !max_age.is_some_and(|age| self.older_than(c, age, now)))
                {
                    break;
                }
                let prev = self.header(c).lru_prev.load(Relaxed);
                let skip = c == protect || cs.moving.is_some_and(|m| m.page == self.page_of(c));
                let done = self.with_item_locked(c, skip, held, |cache, st, hash| {
                    let h = cache.header(c);
                    if h.is_expired(now) || cache.is_flushed(c) {
                        cache.reclaim_dead(cs, st, hash, c);
                    } else if h.has_bit(ACCESSED) && segmented {
                        h.clear_bit(ACCESSED);
                        cache.lru_move(cs, c, Segment::Warm);
                        if seg == Segment::Hot {
                            cs.moves_to_warm += 1;
                        } else {
                            cs.moves_within_lru += 1;
                        }
                    } else {
                        cache.lru_move(cs, c, Segment::Cold);
                        cs.moves_to_cold += 1;
                    }
                });
                if done.is_some() {
                    work += 1;
                }
                c = prev;
            }
        }
        let mut c = cs.list(Segment::Temp).tail;
        for _ in 0..TEMP_SEARCH {
            if c == NIL {
                break;
            }
            let prev = self.header(c).lru_prev.load(Relaxed);
            let skip = c == protect || cs.moving.is_some_and(|m| m.page == self.page_of(c));
            let reclaimed = self.with_item_locked(c, skip, held, |cache, st, hash| {
                let dead = cache.header(c).is_expired(now) || cache.is_flushed(c);
                if dead {
                    cache.reclaim_dead(cs, st, hash, c);
                }
                dead
            });
            work += usize::from(reclaimed == Some(true));
            c = prev;
        }
        work
    }

    /// Unlink and free a dead item (both locks held).
    fn reclaim_dead(&self, cs: &mut ClassState, st: &mut Stripe, hash: u64, c: ChunkRef) {
        if !self.header(c).has_bit(FETCHED) {
            cs.expired_unfetched += 1;
        }
        cs.reclaimed += 1;
        self.remove_linked(st, cs, hash, c);
        self.free_chunk(cs, c);
    }

    /// With both of `c`'s locks held: reclaim or evict it (true), or promote it / keep it
    /// (false). `dead_only`: a live item is kept whatever its marks (TEMP).
    #[allow(clippy::too_many_arguments)]
    fn try_evict(
        &self,
        cs: &mut ClassState,
        st: &mut Stripe,
        hash: u64,
        c: ChunkRef,
        now: u32,
        force: bool,
        dead_only: bool,
    ) -> bool {
        let h = self.header(c);
        let dead = h.is_expired(now) || self.is_flushed(c);
        let active = h.has_bit(ACCESSED);
        if !dead {
            if !self.config.evict || dead_only {
                return false;
            }
            if !force && active {
                h.clear_bit(ACCESSED);
                if self.lru_segmented() {
                    if h.segment() != Segment::Warm {
                        cs.moves_to_warm += 1;
                    } else {
                        cs.moves_within_lru += 1;
                    }
                    self.lru_move(cs, c, Segment::Warm);
                } else {
                    self.lru_move(cs, c, Segment::Cold);
                }
                return false;
            }
        }
        let fetched = h.has_bit(FETCHED);
        if !dead {
            self.observe_eviction(c, now);
        }
        // The chunk goes to the allocating writer.
        self.remove_linked(st, cs, hash, c);
        if dead {
            cs.reclaimed += 1;
            if !fetched {
                cs.expired_unfetched += 1;
            }
        } else {
            cs.evicted += 1;
            cs.last_evicted = Some((h.cas(), now));
            if active {
                cs.evicted_active += 1;
            }
            if h.exptime.load(Relaxed) != 0 {
                cs.evicted_nonzero += 1;
            }
            if !fetched {
                cs.evicted_unfetched += 1;
            }
        }
        true
    }
}
