//! Tests of chained large items: values above `slab_chunk_max` stored across chunks of the
//! largest class, read back in pieces, appended to, replaced, evicted, reclaimed, moved
//! with their pages, and read by other threads while pages move.

use crate::*;
use proptest::prelude::*;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

const PAGE: usize = 65536;

/// 64 KiB pages, 32 KiB chunk max, items up to 1 MiB.
fn cache(pages: usize) -> Cache {
    Cache::new(CacheConfig {
        memory_limit: pages * PAGE,
        page_size: PAGE,
        item_size_max: 1 << 20,
        ..CacheConfig::default()
    })
    .unwrap()
}

fn pattern(seed: u32, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(31).wrapping_add(seed) as u8)
        .collect()
}

fn get(c: &Cache, key: &[u8]) -> Option<Vec<u8>> {
    c.get(key, 1, |it| {
        let parts: usize = it.value.parts().map(|p| p.len()).sum();
        assert_eq!(parts, it.value.len());
        it.value.to_vec()
    })
}

fn class_stats(c: &Cache, id: usize) -> ClassStats {
    c.class_stats()
        .into_iter()
        .find(|s| s.id == id)
        .unwrap_or_default()
}

#[test]
fn large_values_round_trip_in_pieces() {
    let c = cache(64);
    let largest = c.class_count();
    assert_eq!(c.chunk_size(largest), PAGE / 2);
    for (i, len) in [PAGE / 2 - 40, PAGE / 2, 100_000, 300_001, 1_000_000]
        .into_iter()
        .enumerate()
    {
        let v = pattern(i as u32, len);
        c.store(StoreMode::Set, format!("big{i}").as_bytes(), 7, 0, &v, 1)
            .unwrap();
        assert_eq!(get(&c, format!("big{i}").as_bytes()), Some(v));
    }
    let many = c.get(b"big4", 1, |it| {
        (it.value.parts().count(), it.value.as_slice().is_none())
    });
    assert_eq!(many, Some((1_000_000usize.div_ceil(PAGE / 2 - 32), true)));
    assert!(c.store(StoreMode::Set, b"huge", 0, 0, &vec![0; 1 << 20], 1) == Err(StoreError::TooLarge));
    // The whole value counts in `bytes`, the chunks in the largest class.
    let s = class_stats(&c, largest);
    assert_eq!(s.items, 5, "the first fits one chunk of the largest class");
    assert!(s.used_chunks > 40);
}

#[test]
fn append_prepend_replace_and_delete_free_every_chunk() {
    let c = cache(64);
    let largest = c.class_count();
    let a = pattern(1, 70_000);
    let b = pattern(2, 50_000);
    c.store(StoreMode::Set, b"k", 0, 0, &a, 1).unwrap();
    c.store(StoreMode::Append, b"k", 0, 0, &b, 1).unwrap();
    assert_eq!(get(&c, b"k"), Some([a.clone(), b.clone()].concat()));
    c.store(StoreMode::Prepend, b"k", 0, 0, b"head:", 1).unwrap();
    assert_eq!(
        get(&c, b"k"),
        Some([b"head:".to_vec(), a.clone(), b.clone()].concat())
    );
    // A chain replaced by a small value, and the other way round.
    c.store(StoreMode::Set, b"k", 0, 0, b"small", 1).unwrap();
    assert_eq!(get(&c, b"k"), Some(b"small".to_vec()));
    c.store(StoreMode::Set, b"k", 0, 0, &a, 1).unwrap();
    assert_eq!(get(&c, b"k"), Some(a.clone()));
    assert_eq!(c.incr_decr(b"k", true, 1, 1), Err(ArithError::NonNumeric));
    assert!(c.delete(b"k", 1));
    assert_eq!(class_stats(&c, largest).used_chunks, 0);
    assert_eq!(c.stats().curr_items, 0);
    assert_eq!(c.stats().bytes, 0);
}

#[test]
fn chained_items_are_evicted_whole_under_pressure() {
    let c = cache(8);
    for i in 0..40u32 {
        let v = pattern(i, 150_000);
        c.store(StoreMode::Set, format!("k{i}").as_bytes(), 0, 0, &v, 1)
            .unwrap();
    }
    assert!(c.stats().evictions > 0);
    let mut hits = 0;
    for i in 0..40u32 {
        if let Some(v) = get(&c, format!("k{i}").as_bytes()) {
            assert_eq!(v, pattern(i, 150_000));
            hits += 1;
        }
    }
    assert!(hits >= 2, "the newest items stay: {hits}");
    let s = class_stats(&c, c.class_count());
    assert_eq!(s.total_chunks, s.used_chunks + s.free_chunks);
    assert_eq!(c.stats().total_malloced, 8 * PAGE as u64);
}

#[test]
fn expired_chains_are_reclaimed_by_the_crawler() {
    let c = cache(16);
    for i in 0..5u32 {
        c.store(
            StoreMode::Set,
            format!("k{i}").as_bytes(),
            0,
            5,
            &pattern(i, 100_000),
            1,
        )
        .unwrap();
    }
    assert!(class_stats(&c, c.class_count()).used_chunks > 10);
    c.crawl_start(None).unwrap();
    while c.crawl_step(10, 100, 0) {}
    assert_eq!(c.crawler_stats().crawler_reclaimed, 5);
    assert_eq!(class_stats(&c, c.class_count()).used_chunks, 0);
}

#[test]
fn moving_a_page_of_chunks_rescues_or_evicts_chains() {
    let c = cache(32);
    c.set_automove(0);
    let largest = c.class_count();
    for i in 0..6u32 {
        c.store(
            StoreMode::Set,
            format!("k{i}").as_bytes(),
            i,
            0,
            &pattern(i, 100_000),
            1,
        )
        .unwrap();
    }
    c.delete(b"k1", 1);
    c.delete(b"k4", 1);
    let before = class_stats(&c, largest).total_pages;
    for _ in 0..3 {
        assert_eq!(c.reassign(largest as i32, 0), Ok(()));
        while c.rebalance_step(1) {}
    }
    assert_eq!(class_stats(&c, largest).total_pages, before - 3);
    let m = c.mover_stats();
    assert!(
        m.slab_reassign_chunk_rescues > 0 || m.slab_reassign_rescues > 0,
        "{m:?}"
    );
    for i in [0u32, 2, 3, 5] {
        if let Some(v) = get(&c, format!("k{i}").as_bytes()) {
            assert_eq!(v, pattern(i, 100_000));
        }
    }
    let s = class_stats(&c, largest);
    assert_eq!(s.total_chunks, s.used_chunks + s.free_chunks);
}

#[test]
fn readers_never_see_torn_chains_during_moves() {
    let c = Arc::new(cache(24));
    c.set_automove(0);
    let largest = c.class_count();
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|t| {
            let (c, stop) = (c.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut i = t;
                while !stop.load(Ordering::Relaxed) {
                    let k = format!("k{}", i % 12);
                    if let Some((v, flags)) = c.get(k.as_bytes(), 1, |it| (it.value.to_vec(), it.flags)) {
                        assert_eq!(v, pattern(flags, v.len()), "torn value for {k}");
                    }
                    i += 1;
                }
            })
        })
        .collect();
    for round in 0..30u32 {
        for i in 0..12u32 {
            let seed = round * 100 + i;
            let len = 40_000 + (seed as usize * 7919) % 120_000;
            let _ = c.store(
                StoreMode::Set,
                format!("k{i}").as_bytes(),
                seed,
                0,
                &pattern(seed, len),
                1,
            );
        }
        let (src, dst) = if round % 2 == 0 {
            (largest as i32, 0)
        } else {
            (0, largest as i32)
        };
        let _ = c.reassign(src, dst);
        while c.rebalance_step(1) {}
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().unwrap();
    }
    assert!(c.mover_stats().slabs_moved > 5);
}

/// Memory beyond what 32-bit links in 8-byte units address (32 GiB): the unit grows, the
/// map is only reserved, and items of every size store and read back. (64 GiB of address
/// space; nothing near that is touched.)
#[test]
fn an_arena_larger_than_32_gib_works_and_stays_lazy() {
    let c = Cache::new(CacheConfig {
        memory_limit: 64 << 30,
        ..CacheConfig::default()
    })
    .unwrap();
    assert_eq!(c.chunk_size(1), 96, "memcached's first class, a multiple of 16");
    for (i, len) in [1usize, 100, 5000, 600_000].into_iter().enumerate() {
        let v = pattern(i as u32, len);
        c.store(StoreMode::Set, format!("k{i}").as_bytes(), 0, 0, &v, 1)
            .unwrap();
        assert_eq!(get(&c, format!("k{i}").as_bytes()), Some(v));
    }
    assert_eq!(c.stats().limit_maxbytes, 64 << 30);
    assert!(c.stats().total_malloced <= 8 << 20, "pages are taken as needed");
    assert!(Cache::new(CacheConfig {
        memory_limit: (4 << 40) + 1,
        ..CacheConfig::default()
    })
    .is_err());
}

/// The smallest chunk max memcached runs with: 512-byte chunks, values of every size.
#[test]
fn a_512_byte_chunk_max_chains_long_keys_and_large_values() {
    let c = Cache::new(CacheConfig {
        slab_chunk_max: 512,
        ..CacheConfig::default()
    })
    .unwrap();
    assert_eq!(c.chunk_size(c.class_count()), 512);
    let key = vec![b'k'; 250];
    for (i, len) in [1usize, 200, 300, 5000, 1_000_000 - 400].into_iter().enumerate() {
        let v = pattern(i as u32, len);
        c.store(StoreMode::Set, &key, 0, 0, &v, 1).unwrap();
        assert_eq!(get(&c, &key), Some(v));
    }
}

proptest! {
    /// Small and chained values mixed, with page moves: a read is a miss or the last value
    /// written; chunk counts add up.
    #[test]
    fn chains_match_the_model(ops in prop::collection::vec(
        (0u16..40, prop_oneof![1usize..2000, 20_000usize..200_000], 0u8..10), 1..120)) {
        let c = cache(12);
        c.set_automove(0);
        let mut last: HashMap<u16, Vec<u8>> = HashMap::new();
        for (i, (k, len, what)) in ops.into_iter().enumerate() {
            let key = format!("k{k}");
            match what {
                0..=4 => {
                    let v = pattern(i as u32, len);
                    match c.store(StoreMode::Set, key.as_bytes(), 0, 0, &v, 1) {
                        Ok(_) => { last.insert(k, v); }
                        Err(StoreError::OutOfMemory) => { last.remove(&k); }
                        Err(e) => prop_assert!(false, "unexpected {:?}", e),
                    }
                }
                5 => {
                    let tail = pattern(i as u32, len / 10);
                    match c.store(StoreMode::Append, key.as_bytes(), 0, 0, &tail, 1) {
                        Ok(_) => { last.get_mut(&k).unwrap().extend_from_slice(&tail); }
                        Err(StoreError::NotStored) => {
                            // A miss, or no memory for the longer value (old one kept).
                            if let Some(v) = get(&c, key.as_bytes()) {
                                prop_assert_eq!(Some(&v), last.get(&k));
                            } else {
                                last.remove(&k);
                            }
                        }
                        Err(StoreError::TooLarge) => {}
                        Err(e) => prop_assert!(false, "unexpected {:?}", e),
                    }
                }
                6 => { c.delete(key.as_bytes(), 1); last.remove(&k); }
                7 => {
                    let _ = c.reassign(-1, 0);
                    while c.rebalance_step(1) {}
                }
                _ => {
                    if let Some(v) = get(&c, key.as_bytes()) {
                        prop_assert_eq!(Some(&v), last.get(&k));
                    }
                }
            }
        }
        for s in c.class_stats() {
            prop_assert_eq!(s.total_chunks, s.used_chunks + s.free_chunks);
        }
        for (k, v) in &last {
            if let Some(got) = get(&c, format!("k{k}").as_bytes()) {
                prop_assert_eq!(&got, v);
            }
        }
    }
}
