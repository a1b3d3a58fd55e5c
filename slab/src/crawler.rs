//! The LRU crawler: walks the classes in the background, reclaiming expired and flushed
//! items so their memory comes back without traffic, and lists items for
//! `lru_crawler metadump`.
//!
//! It walks a class page by page and chunk by chunk rather than along the LRU list: a
//! (page, slot) cursor stays valid whatever gets, stores and evictions do to the list
//! between two slices, so no placeholder item is needed (memcached links one into the
//! LRU). A chunk holds an item when its header has `LINKED`, which only changes under the
//! class lock the crawler holds; a dead item is removed with its stripe `try_lock`ed, as
//! the evictor does. A pass over all classes starts by itself every [`AUTO_CRAWL_SECS`]
//! while the crawler is on, and on `lru_crawler crawl`; in between, once a second, it
//! visits the classes where an item has expired since their last visit (each class keeps
//! the earliest expiry it has seen), so memory with a short TTL comes back within seconds.

use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;

use crate::cache::{lock, Cache, ClassState};
use crate::item::{ItemHeader, FETCHED, LINKED};

/// Walks of one class a pass may restart because its pages moved meanwhile.
const MAX_RESTARTS: u32 = 3;

/// Seconds between automatic passes over every class.
pub const AUTO_CRAWL_SECS: u32 = 60;

/// Why `lru_crawler crawl|metadump` refused (memcached's `CRAWLER_*` results).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrawlError {
    /// A crawl is already running.
    Busy,
    /// A class id in the list is out of range.
    BadClass,
    /// The list names no class.
    NotStarted,
}

/// The crawler's counters, as `stats` reports them.
#[derive(Debug, Clone, Default)]
pub struct CrawlerStats {
    pub crawler_reclaimed: u64,
    pub crawler_items_checked: u64,
    pub lru_crawler_running: bool,
    pub lru_crawler_starts: u64,
}

/// One live item as `lru_crawler metadump` lists it.
#[derive(Debug, Clone, Copy)]
pub struct MetaEntry<'a> {
    pub key: &'a [u8],
    /// Cache time of expiry, 0 = never.
    pub exptime: u32,
    /// Cache time of the last write (memcached's `la`, last access, is approximated by it).
    pub last_access: u32,
    /// 0 with CAS disabled.
    pub cas: u64,
    pub fetched: bool,
    pub class: usize,
    /// Header, key and value bytes.
    pub total_size: usize,
}

/// Where a pass is, under the crawler's lock (taken before any class lock).
#[derive(Debug, Default)]
pub(crate) struct CrawlerState {
    /// Classes still to visit in this pass, the current one first.
    queue: VecDeque<usize>,
    /// Position in the current class: index into its page list, and slot.
    page_index: usize,
    slot: usize,
    /// Items checked in the current class (for `tocrawl`).
    checked_in_class: u32,
    /// The class's page generation when its walk began, and how often the walk restarted
    /// because pages moved in or out meanwhile (the index would have skipped some).
    class_gen: u64,
    restarts: u32,
    starts: u64,
    reclaimed: u64,
    checked: u64,
    /// Cache time the next automatic pass over every class is due (0: at the first step).
    next_auto: u32,
    /// Cache time classes were last checked for expired items (once a second).
    last_expiry_check: u32,
}

impl Cache {
    /// `lru_crawler crawl <classes>`: schedule a reclaiming pass over these classes
    /// (`None` = all). Returns at once; [`Cache::crawl_step`] does the work.
    pub fn crawl_start(&self, classes: Option<&[usize]>) -> Result<(), CrawlError> {
        let mut cr = lock(&self.crawler);
        if !cr.queue.is_empty() {
            return Err(CrawlError::Busy);
        }
        let n = self.classes.len();
        let list: Vec<usize> = match classes {
            None => (1..=n).collect(),
            Some(ids) if ids.iter().any(|&id| id == 0 || id > crate::class::MAX_CLASSES) => {
                return Err(CrawlError::BadClass)
            }
            // Ids beyond the ladder are accepted, as memcached accepts any id up to its
            // largest, and have nothing to crawl.
            Some(ids) => ids.iter().copied().filter(|&id| id <= n).collect(),
        };
        if classes.is_some_and(|ids| ids.is_empty()) {
            return Err(CrawlError::NotStarted);
        }
        self.begin_pass(&mut cr, list);
        Ok(())
    }

    /// Have the next automatic pass over every class start at cache time `at` at the latest.
    pub(crate) fn crawler_due_at(&self, at: u32) {
        let mut cr = lock(&self.crawler);
        cr.next_auto = cr.next_auto.min(at);
    }

    fn begin_pass(&self, cr: &mut CrawlerState, classes: Vec<usize>) {
        cr.queue = classes.into();
        (cr.page_index, cr.slot, cr.checked_in_class, cr.restarts) = (0, 0, 0, 0);
        cr.starts += 1;
    }

    /// One bounded slice of crawling at cache time `now`: looks at up to `budget` chunks.
    /// Starts a pass over all classes by itself when one is due; `tocrawl` limits the items
    /// checked per class (0 = all). Returns true while a pass is in progress.
    pub fn crawl_step(&self, now: u32, budget: usize, tocrawl: u32) -> bool {
        let mut cr = lock(&self.crawler);
        if cr.queue.is_empty() {
            let due: Vec<usize> = if now >= cr.next_auto {
                (1..=self.classes.len()).collect()
            } else if now != cr.last_expiry_check {
                // Classes where something expired since they were last visited.
                cr.last_expiry_check = now;
                (1..=self.classes.len())
                    .filter(|&id| {
                        let exp = lock(&self.class_state[id]).soonest_expiry;
                        exp != 0 && exp <= now
                    })
                    .collect()
            } else {
                Vec::new()
            };
            if due.is_empty() {
                return false;
            }
            let full = due.len() == self.classes.len();
            self.begin_pass(&mut cr, due);
            if full {
                cr.next_auto = now.saturating_add(AUTO_CRAWL_SECS);
            }
        }
        let mut left = budget.max(1);
        while left > 0 {
            let Some(&class) = cr.queue.front() else { break };
            let done = self.crawl_class(&mut cr, class, now, &mut left, tocrawl);
            if done {
                cr.queue.pop_front();
                (cr.page_index, cr.slot, cr.checked_in_class, cr.restarts) = (0, 0, 0, 0);
            }
        }
        !cr.queue.is_empty()
    }

    /// Crawl `class` from the cursor for at most `left` chunks. True when the class is done.
    fn crawl_class(
        &self,
        cr: &mut CrawlerState,
        class: usize,
        now: u32,
        left: &mut usize,
        tocrawl: u32,
    ) -> bool {
        let mut cs = lock(&self.class_state[class]);
        let per_page = self.classes.chunks_per_page(class);
        let chunk_size = self.classes.chunk_size(class);
        if cr.page_index == 0 && cr.slot == 0 {
            // Recomputed from the items this visit finds alive.
            cs.soonest_expiry = 0;
            cr.class_gen = cs.page_gen;
        }
        loop {
            if tocrawl != 0 && cr.checked_in_class >= tocrawl {
                return true;
            }
            let Some(&page) = cs.pages.get(cr.page_index) else {
                if cs.page_gen != cr.class_gen && cr.restarts < MAX_RESTARTS {
                    // Pages moved during the walk: walk the class once more.
                    cr.restarts += 1;
                    (cr.page_index, cr.slot) = (0, 0);
                    cr.class_gen = cs.page_gen;
                    continue;
                }
                return true;
            };
            let slots = match cs.carve {
                Some((p, next)) if p == page => next.min(per_page),
                _ if cs.pending.contains(&page) => 0,
                _ => per_page,
            };
            while cr.slot < slots {
                if *left == 0 {
                    return false;
                }
                *left -= 1;
                let c = self
                    .arena
                    .chunk_at(page * self.config.page_size + cr.slot * chunk_size);
                cr.slot += 1;
                let h = self.header(c);
                if !h.has_bit(LINKED) {
                    continue;
                }
                cr.checked += 1;
                cr.checked_in_class += 1;
                cs.crawler_items_checked += 1;
                if (h.is_expired(now) || self.is_flushed(c)) && self.reclaim(&mut cs, c) {
                    cr.reclaimed += 1;
                    cs.crawler_reclaimed += 1;
                } else if h.has_bit(LINKED) {
                    let exp = h.exptime.load(Relaxed);
                    if exp != 0 && (cs.soonest_expiry == 0 || exp < cs.soonest_expiry) {
                        cs.soonest_expiry = exp;
                    }
                }
                if tocrawl != 0 && cr.checked_in_class >= tocrawl {
                    return true;
                }
            }
            cr.page_index += 1;
            cr.slot = 0;
        }
    }

    /// Remove the dead linked item `c` (class lock held as `cs`) if its stripe is free.
    fn reclaim(&self, cs: &mut ClassState, c: crate::arena::ChunkRef) -> bool {
        let hash = self.hash(self.key_of(c));
        let Ok(mut st) = self.stripes[Cache::stripe_of(hash)].try_lock() else {
            return false;
        };
        let fetched = self.header(c).has_bit(FETCHED);
        self.remove_linked(&mut st, cs, hash, c);
        cs.reclaimed += 1;
        if !fetched {
            cs.expired_unfetched += 1;
        }
        self.free_chunk(cs, c);
        true
    }

    /// Visit the live items of `classes` (`None` = all) for `lru_crawler metadump`, a
    /// class at a time. Items are copied out a page at a time under the class lock and
    /// `visit` runs with no lock held.
    pub fn metadump(&self, classes: Option<&[usize]>, now: u32, mut visit: impl FnMut(&MetaEntry<'_>)) {
        let all: Vec<usize> = (1..=self.classes.len()).collect();
        let list = classes.unwrap_or(&all);
        struct Copied {
            key: Vec<u8>,
            exptime: u32,
            cas: u64,
            fetched: bool,
            size: usize,
        }
        for &class in list.iter().filter(|&&id| id >= 1 && id <= self.classes.len()) {
            let per_page = self.classes.chunks_per_page(class);
            let chunk_size = self.classes.chunk_size(class);
            let mut page_index = 0;
            loop {
                let mut batch = Vec::new();
                {
                    let cs = lock(&self.class_state[class]);
                    let Some(&page) = cs.pages.get(page_index) else {
                        break;
                    };
                    let slots = match cs.carve {
                        Some((p, next)) if p == page => next.min(per_page),
                        _ if cs.pending.contains(&page) => 0,
                        _ => per_page,
                    };
                    for slot in 0..slots {
                        let c = self
                            .arena
                            .chunk_at(page * self.config.page_size + slot * chunk_size);
                        let h = self.header(c);
                        if !h.has_bit(LINKED) || h.is_expired(now) || self.is_flushed(c) {
                            continue;
                        }
                        batch.push(Copied {
                            key: self.key_of(c).to_vec(),
                            exptime: h.exptime.load(Relaxed),
                            cas: h.cas(),
                            fetched: h.has_bit(FETCHED),
                            size: ItemHeader::SIZE + h.payload_len(),
                        });
                    }
                }
                page_index += 1;
                for it in &batch {
                    visit(&MetaEntry {
                        key: &it.key,
                        exptime: it.exptime,
                        last_access: self.write_marks.written_at(it.cas),
                        cas: self.visible_cas(it.cas),
                        fetched: it.fetched,
                        class,
                        total_size: it.size,
                    });
                }
            }
        }
    }

    /// The crawler's counters.
    pub fn crawler_stats(&self) -> CrawlerStats {
        let cr = lock(&self.crawler);
        CrawlerStats {
            crawler_reclaimed: cr.reclaimed,
            crawler_items_checked: cr.checked,
            lru_crawler_running: !cr.queue.is_empty(),
            lru_crawler_starts: cr.starts,
        }
    }
}
