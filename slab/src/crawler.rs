//! The LRU crawler: walks class LRUs in the background, reclaiming expired and flushed
//! items so their memory comes back without traffic, and lists items for
//! `lru_crawler metadump`.

use crate::cache::Cache;

/// Why `lru_crawler crawl|metadump` refused (memcached's `CRAWLER_*` results).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrawlError {
    /// A crawl is already running.
    Busy,
    /// A class id in the list is out of range or not a number.
    BadClass,
    /// None of the named classes holds an item.
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

impl Cache {
    /// `lru_crawler crawl <classes>`: schedule a reclaiming pass over these classes
    /// (`None` = all). Returns at once; [`Cache::crawl_step`] does the work.
    pub fn crawl_start(&self, classes: Option<&[usize]>) -> Result<(), CrawlError> {
        let _ = classes;
        Ok(())
    }

    /// One bounded slice of crawling at cache time `now`: looks at up to `budget` items.
    /// Starts a full pass by itself when one is due (`tocrawl` limits items per class, 0 = all).
    /// Returns true while a pass is in progress.
    pub fn crawl_step(&self, now: u32, budget: usize, tocrawl: u32) -> bool {
        let _ = (now, budget, tocrawl);
        false
    }

    /// Visit the live items of `classes` (`None` = all) for `lru_crawler metadump`, a
    /// class at a time, newest first. `visit` is called without any lock held that a
    /// worker waits on for long (a few items at a time are copied out under the class lock).
    pub fn metadump(&self, classes: Option<&[usize]>, now: u32, mut visit: impl FnMut(&MetaEntry<'_>)) {
        let _ = (classes, now, &mut visit);
    }

    /// The crawler's counters.
    pub fn crawler_stats(&self) -> CrawlerStats {
        CrawlerStats::default()
    }
}
