//! The automove balancer: which page should move next, decided once a second from each
//! class's evictions, allocation failures, free chunks and LRU age (memcached 1.6's
//! `slab_automove=1` algorithm; `2` moves a page to any class that evicts).
//!
//! Mode 1, per class, over a window of the last `slab_automove_window` seconds:
//! - a class with more than 2.5 pages of free chunks that was quiet for the whole window
//!   (no evictions, no failed allocation, no new page) gives a page to the global pool;
//! - otherwise the class that evicted most often (in over half the window's seconds, or
//!   more than a quarter of all evictions) and whose items are youngest takes a page from
//!   the class with the oldest items (at least two pages), if its age is below
//!   `slab_automove_ratio` of the oldest's. Age is the time since the LRU tail item was
//!   written (the write marks date it; memcached uses last access).
//!
//! memcached waits until the window has filled once before moving pages between classes;
//! this averages over the seconds seen so far instead, so a shift in item sizes is
//! followed within seconds of a restart too.
//!
//! Independently of the mode, while more memory is held than the limit allows (a lowered
//! `cache_memlimit`), a page of the class with the oldest items goes back to the pool,
//! which returns it to the kernel.

use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;

use crate::arena::NIL;
use crate::cache::{lock, Cache};
use crate::mover::{MoverState, MIN_PAGES_FOR_SOURCE};

/// Free chunks above this many pages' worth, in a quiet class, go to the pool.
const FREE_PAGES_FOR_RECLAIM: f64 = 2.5;

/// One second of one class in the balancer's window.
#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    /// Share of the second's evictions that were this class's.
    evicted_ratio: f64,
    evicted: bool,
    /// Evicted, ran out of memory or gained a page: not a class to take memory from.
    dirty: bool,
    /// Seconds since the LRU tail item was written.
    age: u32,
}

/// One class as the balancer sees it this second.
#[derive(Debug, Clone, Copy, Default)]
struct ClassFigures {
    evicted: u64,
    outofmemory: u64,
    pages: usize,
    free_chunks: usize,
    per_page: usize,
    age: u32,
}

/// What the balancer remembers between seconds.
#[derive(Debug, Default)]
pub(crate) struct Balancer {
    last_check: u32,
    /// Per class id: the figures at the last check.
    before: Vec<ClassFigures>,
    /// Per class id: the last `window` samples, newest last.
    window: Vec<VecDeque<Sample>>,
    /// Per class id: quiet for a whole window at the last check, so its free pages may go
    /// to the pool one after another without waiting for the next second.
    quiet: Vec<bool>,
}

impl Cache {
    /// The next move the background work should make, if any: (src, dst), dst 0 = pool.
    pub(crate) fn choose_move(&self, m: &mut MoverState, now: u32) -> Option<(usize, usize)> {
        if let Some(src) = self.over_limit_source() {
            return Some((src, 0));
        }
        if m.automove == 0 {
            return None;
        }
        if now == m.balancer.last_check {
            // Between checks, only more free pages of quiet classes go to the pool.
            let quiet = (1..m.balancer.quiet.len())
                .find(|&id| m.balancer.quiet[id] && self.has_free_pages(id))
                .map(|id| (id, 0));
            return self.observe_move(quiet);
        }
        m.balancer.last_check = now;
        let figures: Vec<ClassFigures> = (0..=self.classes.len())
            .map(|id| {
                if id == 0 {
                    ClassFigures::default()
                } else {
                    self.figures(id, now)
                }
            })
            .collect();
        let b = &mut m.balancer;
        if b.before.len() != figures.len() {
            b.before = figures.clone();
            b.window = vec![VecDeque::new(); figures.len()];
            b.quiet = vec![false; figures.len()];
            return None;
        }
        let delta = |id: usize| figures[id].evicted.saturating_sub(b.before[id].evicted);
        let evicted_total: u64 = (1..figures.len()).map(delta).sum();
        if m.automove == 2 {
            let dst = (1..figures.len())
                .filter(|&id| delta(id) > 0)
                .max_by_key(|&id| delta(id));
            b.before = figures;
            let dst = dst?;
            let src = self.pick_any(m, dst as i32)?;
            return Some((src, dst));
        }
        let window = m.window;
        let (mut oldest, mut oldest_age) = (None, 0u64);
        let (mut youngest, mut youngest_age, mut youngest_evicting) = (None, u64::MAX, false);
        let mut to_pool = None;
        for (id, (&f, &was)) in figures.iter().zip(&b.before).enumerate().skip(1) {
            let evicted = delta(id);
            let sample = Sample {
                evicted_ratio: if evicted > 0 {
                    evicted as f64 / evicted_total as f64
                } else {
                    0.0
                },
                evicted: evicted > 0,
                dirty: evicted > 0 || f.outofmemory > was.outofmemory || f.pages > was.pages,
                age: f.age,
            };
            let w = &mut b.window[id];
            w.push_back(sample);
            while w.len() > window {
                w.pop_front();
            }
            let n = w.len() as f64;
            let age = (w.iter().map(|s| u64::from(s.age)).sum::<u64>() as f64 / n) as u64;
            let dirty = w.iter().any(|s| s.dirty);
            let evicted_seen = w.iter().filter(|s| s.evicted).count() as f64;
            let evicted_ratio = w.iter().map(|s| s.evicted_ratio).sum::<f64>();
            b.quiet[id] = !dirty && w.len() >= window;
            if b.quiet[id] && to_pool.is_none() && Self::free_pages(&f) {
                to_pool = Some(id);
            }
            if age > oldest_age && f.pages > MIN_PAGES_FOR_SOURCE {
                (oldest, oldest_age) = (Some(id), age);
            }
            if age < youngest_age && (evicted_seen > n / 2.0 || evicted_ratio / n > 0.25) {
                (youngest, youngest_age, youngest_evicting) = (Some(id), age, sample.evicted);
            }
        }
        b.before = figures;
        if let Some(src) = to_pool {
            return self.observe_move(Some((src, 0)));
        }
        let (src, dst) = (oldest?, youngest?);
        let older = (youngest_age as f64) < oldest_age as f64 * m.ratio;
        self.observe_move((src != dst && older && youngest_evicting).then_some((src, dst)))
    }

    /// While pages hold more memory than the limit allows, the class to take one from:
    /// the one with the oldest items among those with pages to spare.
    fn over_limit_source(&self) -> Option<usize> {
        let limit = self.page_limit.load(Relaxed);
        {
            let mut pool = lock(&self.pool);
            pool.trim(limit, &self.arena, self.config.page_size);
            if !pool.over(limit) {
                return None;
            }
        }
        (1..=self.classes.len())
            .map(|id| (id, self.figures(id, u32::MAX)))
            .filter(|(_, f)| f.pages >= MIN_PAGES_FOR_SOURCE)
            .max_by_key(|(_, f)| (f.age, f.pages))
            .map(|(id, _)| id)
    }

    /// More than 2.5 pages of free chunks, and a page to spare.
    fn free_pages(f: &ClassFigures) -> bool {
        f.free_chunks as f64 > f.per_page as f64 * FREE_PAGES_FOR_RECLAIM && f.pages >= MIN_PAGES_FOR_SOURCE
    }

    fn has_free_pages(&self, id: usize) -> bool {
        Self::free_pages(&self.figures(id, 0))
    }

    /// A class's figures at cache time `now`.
    fn figures(&self, id: usize, now: u32) -> ClassFigures {
        let cs = lock(&self.class_state[id]);
        let per_page = self.classes.chunks_per_page(id);
        let carved_left = cs.carve.map_or(0, |(_, next)| per_page.saturating_sub(next));
        let tail = cs.eviction_tail();
        let tail_cas = (tail != NIL).then(|| self.header(tail).cas());
        let figures = ClassFigures {
            evicted: cs.evicted,
            outofmemory: cs.outofmemory,
            pages: cs.pages.len(),
            free_chunks: cs.free_count + carved_left + cs.pending.len() * per_page,
            per_page,
            age: 0,
        };
        drop(cs);
        let age = tail_cas.map_or(0, |cas| now.saturating_sub(self.write_marks.written_at(cas)));
        ClassFigures { age, ..figures }
    }
}
