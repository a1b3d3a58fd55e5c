//! The per-class groups: `stats slabs` (pages and chunks, per-class hit counters) and
//! `stats items` (items and LRU figures of each class that holds items).
//!
//! The segment rows (`number_hot` ... `hits_to_temp`) are the engine's HOT, WARM, COLD and
//! TEMP lists (see slabcache's `lru` module). An age is the seconds since the list's tail
//! item was last written (memcached: last accessed, refreshed on its second fetch).

use super::{write_stat, Rows};
use crate::context::Context;

pub fn slabs(shared: &Context) -> Rows {
    let mut rows = Rows::new();
    let out = &mut rows;
    let classes = shared.cache.class_stats();
    for c in &classes {
        let id = c.id;
        for (name, value) in [
            ("chunk_size", c.chunk_size),
            ("chunks_per_page", c.chunks_per_page),
            ("total_pages", c.total_pages),
            ("total_chunks", c.total_chunks),
            ("used_chunks", c.used_chunks),
            ("free_chunks", c.free_chunks),
            ("free_chunks_end", c.free_chunks_end),
            ("get_hits", c.get_hits),
            ("cmd_set", c.cmd_set),
            ("delete_hits", c.delete_hits),
            ("incr_hits", c.incr_hits),
            ("decr_hits", c.decr_hits),
            ("cas_hits", c.cas_hits),
            ("cas_badval", c.cas_badval),
            ("touch_hits", c.touch_hits),
        ] {
            write_stat(out, format_args!("{id}:{name}"), value);
        }
    }
    write_stat(out, "active_slabs", classes.len());
    write_stat(out, "total_malloced", shared.cache.stats().total_malloced);
    rows
}

pub fn items(shared: &Context) -> Rows {
    let mut rows = Rows::new();
    let out = &mut rows;
    // As memcached, the segment fields only while its LRU maintainer runs.
    let segmented = shared.config.lru_maintainer;
    let temp_lru = segmented && shared.maintenance.tunables().temp_lru;
    let now = shared.clock.now();
    let age = |written: Option<u32>| written.map_or(0, |t| u64::from(now.saturating_sub(t)));
    for c in shared.cache.class_stats().iter().filter(|c| c.items > 0) {
        let id = c.id;
        let mut put = |name: &str, value: u64| {
            write_stat(out, format_args!("items:{id}:{name}"), value);
        };
        put("number", c.items);
        if segmented {
            put("number_hot", c.hot_items);
            put("number_warm", c.warm_items);
            put("number_cold", c.cold_items);
            if temp_lru {
                put("number_temp", c.temp_items);
            }
            put("age_hot", age(c.hot_tail_written));
            put("age_warm", age(c.warm_tail_written));
        }
        put("age", age(c.cold_tail_written));
        put("mem_requested", c.mem_requested);
        put("evicted", c.evicted);
        put("evicted_nonzero", c.evicted_nonzero);
        put("evicted_time", c.evicted_time);
        put("outofmemory", c.outofmemory);
        put("tailrepairs", 0);
        put("reclaimed", c.reclaimed);
        put("expired_unfetched", c.expired_unfetched);
        put("evicted_unfetched", c.evicted_unfetched);
        if segmented {
            put("evicted_active", c.evicted_active);
        }
        put("crawler_reclaimed", c.crawler_reclaimed);
        put("crawler_items_checked", c.crawler_items_checked);
        put("lrutail_reflocked", 0);
        if segmented {
            put("moves_to_cold", c.moves_to_cold);
            put("moves_to_warm", c.moves_to_warm);
            put("moves_within_lru", c.moves_within_lru);
            put("direct_reclaims", c.direct_reclaims);
            put("hits_to_hot", c.hits_to_hot);
            put("hits_to_warm", c.hits_to_warm);
            put("hits_to_cold", c.hits_to_cold);
            put("hits_to_temp", c.hits_to_temp);
        }
    }
    rows
}
