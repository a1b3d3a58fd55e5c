//! Pages that move between slab classes: `slabs reassign`, the automove balancer, and
//! giving memory back under a lowered limit.
//!
//! A move is asynchronous, as in memcached: [`Cache::reassign`] only records the request;
//! [`Cache::rebalance_step`], called from a background thread with the server's clock,
//! does the work, a batch of chunks per call.
//!
//! # Emptying a page
//! 1. Under the source class lock the page is marked moving ([`MovingPage`]): its free
//!    chunks leave the free list, the carve stops if it was carving it, and chunks freed
//!    later on it are not reused. `used` counts its chunks still holding an item or in a
//!    writer's hands (allocated, not yet published).
//! 2. The mover visits every chunk. A linked item (header bit `LINKED`, changed only under
//!    both locks) is taken with its stripe lock (`try_lock`: the class lock is held, so
//!    waiting could deadlock; a busy item is retried next pass). A live item is copied to a
//!    free chunk of its class elsewhere and takes the old chunk's place in its hash chain
//!    and LRU (a rescue); with no free chunk it is evicted; a dead one is reclaimed.
//!    Readers of values hold the stripe lock, so none sees a half-moved item; gets never
//!    wait for more than one item's copy.
//! 3. When `used` is 0 the page belongs to nobody: it goes to the destination class (as a
//!    pending page its carve takes when needed) or to the global pool.
//!
//! # A page that does not empty
//! Chunks in a writer's hands (an item reserved for a value still arriving, see `intake`)
//! leave only when their writer links or drops them, which a slow client may put off for
//! ever. memcached's mover waits for such items without end. Here, once
//! [`MOVE_STALL_PASSES`] passes in a row freed nothing, the mover stops spinning (the
//! background thread sleeps between steps) and after [`MOVE_STALL_SECS`] more it gives the
//! page up: the page's free chunks, kept on a *parked* list while it was emptied, go back
//! on the class's free list, the page becomes the class's newest (so the next move picks
//! another one), and the chunks still held count as `slab_reassign_busy_items`.

use std::sync::atomic::Ordering::Relaxed;

use crate::arena::{ChunkRef, NIL};
use crate::balancer::Balancer;
use crate::cache::{lock, Cache, ClassState};
use crate::item::{CHAINED, FETCHED, LINKED};

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

/// The page a class is giving up, kept in that class's state while it is emptied.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MovingPage {
    pub page: usize,
    /// Chunks of the page still holding an item or allocated to a writer.
    pub used: usize,
    /// The page's free chunks (off the free list, linked through `lru_next`), handed back
    /// if the move is given up.
    pub parked: ChunkRef,
}

/// A move under way.
#[derive(Debug, Clone, Copy)]
struct ActiveMove {
    src: usize,
    /// 0 = the global pool.
    dst: usize,
    page: usize,
    /// Chunks of the page that were ever handed out (the rest were never carved).
    slots: usize,
    next_slot: usize,
    /// `used` at the end of the last full pass, and how many passes in a row freed
    /// nothing since cache time `stalled_since`.
    used_at_pass: usize,
    stalled_passes: u32,
    stalled_since: u32,
}

/// Full passes that free nothing before the mover stops spinning on a page.
pub(crate) const MOVE_STALL_PASSES: u32 = 64;
/// Seconds a stalled page move waits (after [`MOVE_STALL_PASSES`]) before giving the page up.
pub(crate) const MOVE_STALL_SECS: u32 = 2;

/// Chunks visited per [`Cache::rebalance_step`] (one class-lock hold).
const MOVE_BATCH: usize = 256;

/// A class keeps this many pages (memcached's `MIN_PAGES_FOR_SOURCE`).
pub(crate) const MIN_PAGES_FOR_SOURCE: usize = 2;

/// The mover's state, under its own lock (taken before any class lock, never under one).
#[derive(Debug)]
pub(crate) struct MoverState {
    /// 0 off, 1 balancer, 2 aggressive (a page to any class that evicts).
    pub automove: u8,
    /// Seconds of history the balancer looks at (`slab_automove_window`).
    pub window: usize,
    /// A younger class takes a page from the oldest when its age is below this fraction of
    /// the oldest's (`slab_automove_ratio`).
    pub ratio: f64,
    request: Option<(usize, usize)>,
    active: Option<ActiveMove>,
    /// Where `slabs reassign -1` looks first (it rotates, as memcached's does).
    pick_cursor: usize,
    pub balancer: Balancer,
    stats: MoverStats,
}

impl Default for MoverState {
    fn default() -> Self {
        MoverState {
            automove: 1,
            window: 30,
            ratio: 0.8,
            request: None,
            active: None,
            pick_cursor: 0,
            balancer: Balancer::default(),
            stats: MoverStats::default(),
        }
    }
}

impl Cache {
    /// `slabs reassign <src> <dst>`: move one page from class `src` (-1: any class with a
    /// spare page; 0: the global pool) to class `dst` (0: the global pool). Returns at
    /// once; the page moves during the following [`Cache::rebalance_step`]s.
    pub fn reassign(&self, src: i32, dst: i32) -> Result<(), ReassignError> {
        let mut m = lock(&self.mover);
        if m.request.is_some() || m.active.is_some() {
            return Err(ReassignError::Busy);
        }
        if src == dst {
            return Err(ReassignError::Same);
        }
        let largest = self.classes.len() as i32;
        let src = if src == -1 {
            self.pick_any(&mut m, dst).map_or(-1, |c| c as i32)
        } else {
            src
        };
        if !(0..=largest).contains(&src) || !(0..=largest).contains(&dst) {
            return Err(ReassignError::BadClass);
        }
        if self.pages_of(src as usize) < 2 {
            return Err(ReassignError::NoSpare);
        }
        m.request = Some((src as usize, dst as usize));
        Ok(())
    }

    /// `slabs automove 0|1|2`: 0 off, 1 the balancer (memcached's default), 2 aggressive.
    pub fn set_automove(&self, mode: u8) {
        lock(&self.mover).automove = mode.min(2);
    }

    /// The automove mode in force.
    pub fn automove(&self) -> u8 {
        lock(&self.mover).automove
    }

    /// The balancer's `slab_automove_ratio` and `slab_automove_window` (seconds).
    pub fn set_automove_tuning(&self, ratio: f64, window: usize) {
        let mut m = lock(&self.mover);
        m.ratio = ratio;
        m.window = window.max(1);
    }

    /// One bounded slice of background work at cache time `now`: advance a page move, or
    /// start one (a requested one, one the balancer wants, or one that gives memory back
    /// under a lowered limit). Returns true while there is more to do (call again soon).
    pub fn rebalance_step(&self, now: u32) -> bool {
        let mut m = lock(&self.mover);
        // A move that ran in this step may have a successor at once (pages still over a
        // lowered limit): ask to be called again until a step finds nothing to do.
        let mut started = false;
        if m.active.is_none() {
            let next = m.request.take().or_else(|| self.choose_move(&mut m, now));
            if let Some((src, dst)) = next {
                m.active = self.start_move(&mut m, src, dst);
                started = true;
            }
        }
        if let Some(active) = m.active {
            m.active = self.advance_move(&mut m, active, now);
            // A page waiting on writers is looked at again on the thread's slow tick.
            started = m.active.is_none_or(|a| a.stalled_passes < MOVE_STALL_PASSES);
        }
        m.stats.slab_reassign_running = m.active.is_some();
        started
    }

    /// Finish a page move under way and forget a requested one, for a snapshot taken with
    /// no other thread using the cache (so no item is busy and a pass empties the page).
    /// False if the move could not finish.
    pub(crate) fn settle_moves(&self, now: u32) -> bool {
        let mut m = lock(&self.mover);
        m.request = None;
        // Each pass visits a batch; a page of the smallest class takes a few thousand
        // slots, so this bound is many full passes.
        for _ in 0..1_000_000 {
            let Some(active) = m.active else {
                m.stats.slab_reassign_running = false;
                return true;
            };
            m.active = self.advance_move(&mut m, active, now);
        }
        false
    }

    /// The mover's counters.
    pub fn mover_stats(&self) -> MoverStats {
        lock(&self.mover).stats.clone()
    }

    fn pages_of(&self, class: usize) -> usize {
        if class == 0 {
            lock(&self.pool).free.len()
        } else {
            lock(&self.class_state[class]).pages.len()
        }
    }

    /// memcached's `slabs reassign -1`: the next class, round-robin, with a page to spare.
    pub(crate) fn pick_any(&self, m: &mut MoverState, dst: i32) -> Option<usize> {
        let n = self.classes.len();
        for _ in 0..n {
            m.pick_cursor = m.pick_cursor % n + 1;
            let c = m.pick_cursor;
            if c as i32 != dst && self.pages_of(c) >= 2 {
                return Some(c);
            }
        }
        None
    }

    /// Begin emptying a page of `src` (or take one from the pool, for src 0).
    fn start_move(&self, m: &mut MoverState, src: usize, dst: usize) -> Option<ActiveMove> {
        if src == 0 {
            let page = lock(&self.pool).take_pooled()?;
            self.finish_move(m, dst, page);
            return None;
        }
        let mut cs = lock(&self.class_state[src]);
        if cs.pages.len() < MIN_PAGES_FOR_SOURCE {
            return None;
        }
        // A page the class never started is free to go; otherwise its oldest page, as
        // memcached does, unless that is the page being carved.
        if let Some(page) = cs.pending.pop() {
            cs.pages.retain(|&p| p != page);
            cs.page_gen += 1;
            drop(cs);
            self.finish_move(m, dst, page);
            return None;
        }
        let carving = cs.carve.map(|(p, _)| p);
        let page = *cs
            .pages
            .iter()
            .find(|&&p| Some(p) != carving)
            .unwrap_or(&cs.pages[0]);
        let per_page = self.classes.chunks_per_page(src);
        let slots = match cs.carve {
            Some((p, next)) if p == page => {
                cs.carve = None;
                next.min(per_page)
            }
            _ => per_page,
        };
        let (on_free_list, parked) = self.unlink_free_chunks_of(&mut cs, page);
        cs.moving = Some(MovingPage {
            page,
            used: slots - on_free_list,
            parked,
        });
        Some(ActiveMove {
            src,
            dst,
            page,
            slots,
            next_slot: 0,
            used_at_pass: usize::MAX,
            stalled_passes: 0,
            stalled_since: 0,
        })
    }

    /// Take `page`'s chunks off the class's free list; returns how many there were, and
    /// the list they now make (linked through `lru_next`).
    fn unlink_free_chunks_of(&self, cs: &mut ClassState, page: usize) -> (usize, ChunkRef) {
        let (mut kept_head, mut kept_tail, mut removed, mut parked) = (NIL, NIL, 0, NIL);
        let mut c = cs.free_head;
        while c != NIL {
            let next = self.header(c).lru_next.load(Relaxed);
            if self.page_of(c) == page {
                removed += 1;
                self.header(c).lru_next.store(parked, Relaxed);
                parked = c;
            } else {
                self.header(c).lru_next.store(NIL, Relaxed);
                if kept_tail == NIL {
                    kept_head = c;
                } else {
                    self.header(kept_tail).lru_next.store(c, Relaxed);
                }
                kept_tail = c;
            }
            c = next;
        }
        cs.free_head = kept_head;
        cs.free_count -= removed;
        (removed, parked)
    }

    /// Visit the next batch of the moving page's chunks; finish the move once the page is
    /// empty. Returns the move if it is still under way.
    fn advance_move(&self, m: &mut MoverState, mut mv: ActiveMove, now: u32) -> Option<ActiveMove> {
        let mut cs = lock(&self.class_state[mv.src]);
        let chunk_size = self.classes.chunk_size(mv.src);
        let end = (mv.next_slot + MOVE_BATCH).min(mv.slots);
        for slot in mv.next_slot..end {
            let offset = mv.page * self.config.page_size + slot * chunk_size;
            let c = self.arena.chunk_at(offset);
            let h = self.header(c);
            if h.has_bit(LINKED) {
                self.move_item(m, &mut cs, mv.src, c, now);
            } else if h.is_data_chunk() {
                self.move_data(m, &mut cs, mv.src, c);
            }
        }
        mv.next_slot = end;
        if mv.next_slot < mv.slots {
            return Some(mv);
        }
        let used = cs.moving.map_or(0, |p| p.used);
        if used > 0 {
            // Items that were busy, or chunks a writer held while we passed: go round again,
            // unless writers have held the page for too long (see the module docs).
            if used < mv.used_at_pass {
                mv.stalled_passes = 0;
            } else {
                if mv.stalled_passes == 0 {
                    mv.stalled_since = now;
                }
                mv.stalled_passes = mv.stalled_passes.saturating_add(1);
            }
            mv.used_at_pass = used;
            if mv.stalled_passes >= MOVE_STALL_PASSES
                && now.saturating_sub(mv.stalled_since) >= MOVE_STALL_SECS
            {
                self.give_up_move(m, &mut cs, mv);
                return None;
            }
            mv.next_slot = 0;
            return Some(mv);
        }
        cs.moving = None;
        cs.pages.retain(|&p| p != mv.page);
        cs.page_gen += 1;
        drop(cs);
        self.finish_move(m, mv.dst, mv.page);
        None
    }

    /// Stop emptying `mv`'s page and leave it to its class: its parked free chunks go back
    /// on the free list, the carve resumes it if it was carving it, and it becomes the
    /// class's newest page so the next move looks elsewhere first.
    fn give_up_move(&self, m: &mut MoverState, cs: &mut ClassState, mv: ActiveMove) {
        let Some(moving) = cs.moving.take() else {
            return;
        };
        let mut c = moving.parked;
        while c != NIL {
            let h = self.header(c);
            let next = h.lru_next.load(Relaxed);
            h.lru_next.store(cs.free_head, Relaxed);
            cs.free_head = c;
            cs.free_count += 1;
            c = next;
        }
        if mv.slots < self.classes.chunks_per_page(mv.src) && cs.carve.is_none() {
            cs.carve = Some((mv.page, mv.slots));
        }
        cs.pages.retain(|&p| p != mv.page);
        cs.pages.push(mv.page);
        cs.page_gen += 1;
        m.stats.slab_reassign_busy_items += moving.used as u64;
    }

    /// Hand an empty page, which no class holds now but is still counted as in one, to
    /// `dst` (0: the pool), and count the move.
    fn finish_move(&self, m: &mut MoverState, dst: usize, page: usize) {
        if dst == 0 {
            self.page_class[page].store(0, Relaxed);
            let mut pool = lock(&self.pool);
            pool.give(
                page,
                self.page_limit.load(Relaxed),
                &self.arena,
                self.config.page_size,
            );
        } else {
            self.page_class[page].store(dst as u8, Relaxed);
            let mut cs = lock(&self.class_state[dst]);
            cs.pages.push(page);
            cs.page_gen += 1;
            let per_page = self.classes.chunks_per_page(dst);
            if cs.carve.is_none_or(|(_, next)| next >= per_page) {
                cs.carve = Some((page, 0));
            } else {
                cs.pending.push(page);
            }
        }
        m.stats.slabs_moved += 1;
    }

    /// Rescue, evict or reclaim the linked item in chunk `c` of the moving page (class
    /// lock held as `cs`). A busy stripe leaves it for the next pass.
    fn move_item(&self, m: &mut MoverState, cs: &mut ClassState, class: usize, c: ChunkRef, now: u32) {
        let hash = self.hash(self.key_of(c));
        let Ok(mut st) = self.stripes[Cache::stripe_of(hash)].try_lock() else {
            m.stats.slab_reassign_busy_items += 1;
            return;
        };
        let h = self.header(c);
        let dead = h.is_expired(now) || self.is_flushed(c);
        if !dead {
            if let Some(n) = self.rescue_chunk(cs, class) {
                self.copy_chunk(c, n);
                self.replace_links(&mut st, cs, hash, c, n);
                self.repoint_data_chunks(n);
                h.bits.store(0, Relaxed);
                if let Some(p) = cs.moving.as_mut() {
                    p.used -= 1;
                }
                m.stats.slab_reassign_rescues += 1;
                return;
            }
        }
        let fetched = h.has_bit(FETCHED);
        self.remove_linked(&mut st, cs, hash, c);
        if dead {
            cs.reclaimed += 1;
            if !fetched {
                cs.expired_unfetched += 1;
            }
            m.stats.slab_reassign_inline_reclaim += 1;
        } else {
            m.stats.slab_reassign_evictions_nomem += 1;
        }
        // On the moving page: counted off, not put on the free list.
        self.free_chunk(cs, c);
    }

    /// Rescue data chunk `c` of a chained item into another chunk of the class, or evict
    /// the whole item (class lock held as `cs`). A chain still being written, or a busy
    /// stripe, leaves it for the next pass.
    fn move_data(&self, m: &mut MoverState, cs: &mut ClassState, class: usize, c: ChunkRef) {
        let head = self.header(c).lru_prev.load(Relaxed);
        let hh = self.header(head);
        if !hh.has_bit(LINKED) || !hh.has_bit(CHAINED) {
            m.stats.slab_reassign_busy_items += 1;
            return;
        }
        let hash = self.hash(self.key_of(head));
        let Ok(mut st) = self.stripes[Cache::stripe_of(hash)].try_lock() else {
            m.stats.slab_reassign_busy_items += 1;
            return;
        };
        if let Some(n) = self.rescue_chunk(cs, class) {
            self.copy_chunk(c, n);
            self.relink_data_chunk(head, c, n);
            self.header(c).bits.store(0, Relaxed);
            if let Some(p) = cs.moving.as_mut() {
                p.used -= 1;
            }
            m.stats.slab_reassign_chunk_rescues += 1;
            return;
        }
        // Frees every data chunk, `c` included (counted off the moving page).
        self.remove_linked(&mut st, cs, hash, head);
        self.free_chunk(cs, head);
        m.stats.slab_reassign_evictions_nomem += 1;
    }

    /// A free chunk of `class` off the moving page, without taking a new page.
    fn rescue_chunk(&self, cs: &mut ClassState, class: usize) -> Option<ChunkRef> {
        if cs.free_head != NIL {
            let c = cs.free_head;
            cs.free_head = self.header(c).lru_next.load(Relaxed);
            cs.free_count -= 1;
            return Some(c);
        }
        let per_page = self.classes.chunks_per_page(class);
        let (page, next) = cs.carve.as_mut().filter(|(_, next)| *next < per_page)?;
        let offset = *page * self.config.page_size + *next * self.classes.chunk_size(class);
        *next += 1;
        Some(self.arena.chunk_at(offset))
    }

    /// Copy chunk `from` (an item or a data chunk; its item's stripe lock held) into the
    /// free chunk `to`: header fields and the payload bytes in use. Hash and LRU links of
    /// an item are the caller's to set; a data chunk's chain links are copied.
    fn copy_chunk(&self, from: ChunkRef, to: ChunkRef) {
        let (a, b) = (self.header(from), self.header(to));
        b.exptime.store(a.exptime.load(Relaxed), Relaxed);
        b.client_flags.store(a.client_flags.load(Relaxed), Relaxed);
        b.value_len.store(a.value_len.load(Relaxed), Relaxed);
        b.key_len.store(a.key_len.load(Relaxed), Relaxed);
        b.set_cas(a.cas());
        b.lru_prev.store(a.lru_prev.load(Relaxed), Relaxed);
        b.lru_next.store(a.lru_next.load(Relaxed), Relaxed);
        b.bits.store(a.bits.load(Relaxed), Relaxed);
        // The segment's other bit is in the CAS word, which `set_cas` leaves alone.
        b.set_segment(a.segment());
        let len = self.stored_len(from);
        // SAFETY: `from`'s bytes change only under its item's stripe lock, which is held;
        // a different chunk than `to`.
        let src = unsafe { self.arena.payload(from, len) };
        // SAFETY: `to` was just taken off the free list or the carve under the class lock:
        // no index, LRU or other writer reaches it.
        let dst = unsafe { self.arena.payload_mut(to, len) };
        dst.copy_from_slice(src);
    }
}
