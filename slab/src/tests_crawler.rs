//! Tests of the LRU crawler: reclaiming expired and flushed items without traffic, its
//! `lru_crawler crawl` results, automatic passes, `tocrawl`, and what metadump lists.

use crate::*;

fn cache() -> Cache {
    Cache::new(CacheConfig {
        memory_limit: 8 << 20,
        ..CacheConfig::default()
    })
    .unwrap()
}

fn crawl_to_end(c: &Cache, now: u32, tocrawl: u32) {
    for _ in 0..100_000 {
        if !c.crawl_step(now, 100, tocrawl) {
            return;
        }
    }
    panic!("the crawl never finished");
}

#[test]
fn crawl_reclaims_expired_items_without_a_lookup() {
    let c = cache();
    for i in 0..300 {
        let exptime = if i % 3 == 0 { 0 } else { 5 };
        c.store(
            StoreMode::Set,
            format!("k{i}").as_bytes(),
            0,
            exptime,
            &[b'v'; 500],
            1,
        )
        .unwrap();
    }
    // The first step starts an automatic pass; at time 2 nothing has expired.
    crawl_to_end(&c, 2, 0);
    assert_eq!(c.crawler_stats().crawler_reclaimed, 0);
    assert_eq!(c.crawler_stats().crawler_items_checked, 300);
    assert_eq!(c.crawl_start(None), Ok(()));
    assert!(c.crawler_stats().lru_crawler_running);
    assert_eq!(c.crawl_start(Some(&[1])), Err(CrawlError::Busy));
    crawl_to_end(&c, 10, 0);
    let s = c.crawler_stats();
    assert_eq!((s.crawler_reclaimed, s.lru_crawler_starts), (200, 2));
    assert!(!s.lru_crawler_running);
    assert_eq!(c.stats().curr_items, 100);
    assert_eq!(c.stats().reclaimed, 200);
    let class = c.class_stats().into_iter().find(|s| s.items > 0).unwrap();
    assert_eq!(class.crawler_reclaimed, 200);
    assert_eq!(class.used_chunks, 100);
    // Reclaimed chunks are reused: new items of that size take no new page.
    let pages = c.stats().total_malloced;
    for i in 0..200 {
        c.store(StoreMode::Set, format!("n{i}").as_bytes(), 0, 0, &[b'w'; 500], 10)
            .unwrap();
    }
    assert_eq!(c.stats().total_malloced, pages);
}

#[test]
fn flushed_items_are_reclaimed_too() {
    let c = cache();
    for i in 0..50 {
        c.store(StoreMode::Set, format!("k{i}").as_bytes(), 0, 0, b"v", 1)
            .unwrap();
    }
    c.flush_all(None, 1);
    c.crawl_start(None).unwrap();
    crawl_to_end(&c, 1, 0);
    assert_eq!(c.crawler_stats().crawler_reclaimed, 50);
    assert_eq!(c.stats().curr_items, 0);
}

/// With CAS disabled a flush is dated to the second, as memcached's is: an item stored in
/// the flush's second is flushed too, one stored a second later is not.
#[test]
fn without_cas_a_flush_hides_items_of_its_own_second() {
    let c = Cache::new(CacheConfig {
        use_cas: false,
        ..CacheConfig::default()
    })
    .unwrap();
    c.store(StoreMode::Set, b"a", 0, 0, b"1", 5).unwrap();
    c.flush_all(None, 5);
    c.store(StoreMode::Set, b"b", 0, 0, b"2", 5).unwrap();
    assert_eq!(c.get(b"b", 5, |_| ()), None);
    c.store(StoreMode::Set, b"b", 0, 0, b"3", 6).unwrap();
    assert_eq!(c.get(b"b", 6, |it| it.value.to_vec()), Some(b"3".to_vec()));
    assert_eq!(c.get(b"a", 6, |_| ()), None);
    // With CAS on, the unique alone decides: a store right after the flush is kept.
    let c = cache();
    c.flush_all(None, 5);
    c.store(StoreMode::Set, b"b", 0, 0, b"2", 5).unwrap();
    assert!(c.get(b"b", 5, |_| ()).is_some());
}

#[test]
fn crawl_results_and_automatic_passes() {
    let c = cache();
    assert_eq!(c.crawl_start(Some(&[])), Err(CrawlError::NotStarted));
    assert_eq!(c.crawl_start(Some(&[0])), Err(CrawlError::BadClass));
    assert_eq!(c.crawl_start(Some(&[64])), Err(CrawlError::BadClass));
    // The first step makes the first automatic pass.
    crawl_to_end(&c, 1, 0);
    assert_eq!(c.crawler_stats().lru_crawler_starts, 1);
    // Any id of memcached's range is accepted, even one with no items.
    assert_eq!(c.crawl_start(Some(&[3, 60])), Ok(()));
    crawl_to_end(&c, 1, 0);
    let starts = c.crawler_stats().lru_crawler_starts;
    // After a pass the next automatic one waits AUTO_CRAWL_SECS.
    assert!(!c.crawl_step(2, 100, 0));
    assert_eq!(c.crawler_stats().lru_crawler_starts, starts);
    c.crawl_step(1 + crate::crawler::AUTO_CRAWL_SECS, 100, 0);
    assert_eq!(c.crawler_stats().lru_crawler_starts, starts + 1);
}

#[test]
fn expired_items_are_visited_within_a_second_not_at_the_next_full_pass() {
    let c = cache();
    crawl_to_end(&c, 1, 0);
    for i in 0..40 {
        c.store(StoreMode::Set, format!("k{i}").as_bytes(), 0, 3, &[b'v'; 2000], 1)
            .unwrap();
    }
    crawl_to_end(&c, 2, 0);
    assert_eq!(c.stats().curr_items, 40);
    crawl_to_end(&c, 3, 0);
    assert_eq!(c.stats().curr_items, 0);
    assert_eq!(c.crawler_stats().crawler_reclaimed, 40);
}

#[test]
fn tocrawl_limits_items_per_class() {
    let c = cache();
    for i in 0..100 {
        c.store(StoreMode::Set, format!("k{i}").as_bytes(), 0, 5, b"v", 1)
            .unwrap();
    }
    c.crawl_start(None).unwrap();
    crawl_to_end(&c, 10, 30);
    assert_eq!(c.crawler_stats().crawler_items_checked, 30);
    assert_eq!(c.crawler_stats().crawler_reclaimed, 30);
}

#[test]
fn metadump_lists_live_items() {
    let c = cache();
    c.store(StoreMode::Set, b"forever", 0, 0, b"12345", 1).unwrap();
    c.store(StoreMode::Set, b"later", 0, 100, b"x", 1).unwrap();
    c.store(StoreMode::Set, b"gone", 0, 3, b"x", 1).unwrap();
    c.store(StoreMode::Set, b"big", 0, 0, &[0; 5000], 2).unwrap();
    c.get(b"later", 5, |_| ());
    let mut seen = Vec::new();
    c.metadump(None, 5, |e| {
        seen.push((
            e.key.to_vec(),
            e.exptime,
            e.fetched,
            e.total_size,
            e.class,
            e.cas,
            e.last_access,
        ))
    });
    seen.sort();
    let keys: Vec<&[u8]> = seen.iter().map(|s| s.0.as_slice()).collect();
    assert_eq!(keys, [&b"big"[..], b"forever", b"later"]);
    let later = &seen[2];
    assert_eq!((later.1, later.2, later.3), (100, true, 32 + 5 + 1));
    assert!(later.5 > 0);
    assert_eq!(seen[0].6, 2, "dated by its write");
    // A class list restricts the dump.
    let small = seen[1].4;
    let mut n = 0;
    c.metadump(Some(&[small]), 5, |_| n += 1);
    assert!((1..3).contains(&n));
}

/// Pages that leave a class while the crawler walks it must not make it skip the pages
/// that stay: the walk restarts when the class's pages changed.
#[test]
fn a_crawl_finds_every_flushed_item_while_pages_move() {
    let c = Cache::new(CacheConfig {
        memory_limit: 16 << 16,
        page_size: 1 << 16,
        item_size_max: 1 << 16,
        ..CacheConfig::default()
    })
    .unwrap();
    c.set_automove(0);
    for i in 0..3000 {
        c.store(StoreMode::Set, format!("k{i}").as_bytes(), 0, 0, &[b'v'; 200], 1)
            .unwrap();
    }
    c.flush_all(None, 2);
    c.crawl_step(2, 50, 0);
    let class = c.class_stats().into_iter().find(|s| s.items > 0).unwrap().id;
    // The first page goes while the walk is on it.
    assert_eq!(c.reassign(class as i32, 0), Ok(()));
    while c.rebalance_step(2) {}
    crawl_to_end(&c, 2, 0);
    assert_eq!(c.stats().curr_items, 0, "{:?}", c.crawler_stats());
}
