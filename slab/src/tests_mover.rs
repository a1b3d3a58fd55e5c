//! Tests of pages that move: `slabs reassign` results, emptying a page (rescue, eviction,
//! reclaim), the global pool, the balancer after a shift in value sizes, a lowered memory
//! limit, a model-based property test with moves mixed in, and readers running during
//! moves that must never see a torn value.

use crate::*;
use proptest::prelude::*;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

const PAGE: usize = 65536;

fn cache(pages: usize) -> Cache {
    Cache::new(CacheConfig {
        memory_limit: pages * PAGE,
        page_size: PAGE,
        item_size_max: PAGE,
        ..CacheConfig::default()
    })
    .unwrap()
}

/// A value whose bytes all derive from the key and a version, so a torn or foreign value
/// is detectable: `len` bytes of `tag`.
fn value(tag: u8, len: usize) -> Vec<u8> {
    vec![tag; len]
}

fn pages_of(c: &Cache, class: usize) -> u64 {
    c.class_stats()
        .iter()
        .find(|s| s.id == class)
        .map_or(0, |s| s.total_pages)
}

fn class_of_value(c: &Cache, len: usize) -> usize {
    c.store(StoreMode::Set, b"probe", 0, 0, &value(1, len), 1)
        .unwrap();
    let class = c.get(b"probe", 1, |it| it.class).unwrap();
    c.delete(b"probe", 1);
    class
}

/// Run background steps until the mover is idle (bounded).
fn settle(c: &Cache, now: u32) {
    for _ in 0..100_000 {
        if !c.rebalance_step(now) {
            return;
        }
    }
    panic!("the mover never finished");
}

#[test]
fn reassign_answers_as_memcached() {
    let c = cache(16);
    c.set_automove(0);
    let small = class_of_value(&c, 100);
    assert_eq!(c.reassign(small as i32, small as i32), Err(ReassignError::Same));
    assert_eq!(c.reassign(small as i32, 999), Err(ReassignError::BadClass));
    assert_eq!(c.reassign(-2, small as i32), Err(ReassignError::BadClass));
    assert_eq!(c.reassign(small as i32, 0), Err(ReassignError::NoSpare));
    for i in 0..2000 {
        c.store(
            StoreMode::Set,
            format!("k{i}").as_bytes(),
            0,
            0,
            &value(2, 100),
            1,
        )
        .unwrap();
    }
    assert!(pages_of(&c, small) >= 2);
    assert_eq!(c.reassign(small as i32, 0), Ok(()));
    assert_eq!(c.reassign(small as i32, 0), Err(ReassignError::Busy));
    settle(&c, 1);
    assert_eq!(c.mover_stats().slabs_moved, 1);
    assert!(!c.mover_stats().slab_reassign_running);
    // -1 picks a class with a page to spare; from the pool (0) to a class works too.
    assert_eq!(c.reassign(-1, 0), Ok(()));
    settle(&c, 1);
    assert_eq!(c.stats().slab_global_page_pool, 2);
    // A class taking a new page takes a pooled one first; the pool must keep two to give.
    let big = class_of_value(&c, 5000);
    assert_eq!(c.stats().slab_global_page_pool, 1);
    assert_eq!(c.reassign(0, big as i32), Err(ReassignError::NoSpare));
    assert_eq!(c.reassign(-1, 0), Ok(()));
    settle(&c, 1);
    assert_eq!(c.reassign(0, big as i32), Ok(()));
    settle(&c, 1);
    assert_eq!(c.stats().slab_global_page_pool, 1);
    assert_eq!(pages_of(&c, big), 2);
    assert_eq!(c.mover_stats().slabs_moved, 4);
}

#[test]
fn moving_a_page_keeps_or_drops_items_never_corrupts_them() {
    let c = cache(16);
    c.set_automove(0);
    let n = 3000;
    for i in 0..n {
        let v = value((i % 251) as u8, 100);
        c.store(StoreMode::Set, format!("k{i}").as_bytes(), i as u32, 0, &v, 1)
            .unwrap();
    }
    // Free some chunks so part of the page's items can be rescued.
    for i in (0..n).step_by(3) {
        c.delete(format!("k{i}").as_bytes(), 1);
    }
    let class = class_of_value(&c, 100);
    let (pages, items) = (pages_of(&c, class), c.stats().curr_items);
    let big = class_of_value(&c, 5000);
    assert_eq!(c.reassign(class as i32, big as i32), Ok(()));
    settle(&c, 1);
    assert_eq!(pages_of(&c, class), pages - 1);
    let m = c.mover_stats();
    let lost = items - c.stats().curr_items;
    assert_eq!(lost, m.slab_reassign_evictions_nomem);
    assert!(m.slab_reassign_rescues > 0, "free chunks elsewhere were used");
    for i in 0..n {
        let got = c.get(format!("k{i}").as_bytes(), 1, |it| (it.value.to_vec(), it.flags));
        if i % 3 == 0 {
            assert_eq!(got, None);
        } else if let Some((v, flags)) = got {
            assert_eq!(v, value((i % 251) as u8, 100));
            assert_eq!(flags, i as u32);
        }
    }
    // The page now serves the other class, which had none.
    for i in 0..10 {
        c.store(
            StoreMode::Set,
            format!("big{i}").as_bytes(),
            0,
            0,
            &value(9, 5000),
            1,
        )
        .unwrap();
    }
    assert!(pages_of(&c, big) >= 1);
    // The class's counters still add up.
    let s = c.class_stats().into_iter().find(|s| s.id == class).unwrap();
    assert_eq!(s.used_chunks, s.items);
    assert_eq!(s.total_chunks, s.used_chunks + s.free_chunks);
}

#[test]
fn expired_items_on_a_moving_page_are_reclaimed() {
    let c = cache(16);
    c.set_automove(0);
    for i in 0..2000 {
        c.store(
            StoreMode::Set,
            format!("k{i}").as_bytes(),
            0,
            5,
            &value(3, 100),
            1,
        )
        .unwrap();
    }
    let class = class_of_value(&c, 100);
    assert_eq!(c.reassign(class as i32, 0), Ok(()));
    settle(&c, 10);
    let m = c.mover_stats();
    assert!(m.slab_reassign_inline_reclaim > 0);
    assert_eq!(m.slab_reassign_evictions_nomem + m.slab_reassign_rescues, 0);
}

#[test]
fn a_class_with_no_page_gets_its_first_one_over_the_limit() {
    let c = cache(4);
    c.set_automove(0);
    for i in 0..5000 {
        c.store(
            StoreMode::Set,
            format!("k{i}").as_bytes(),
            0,
            0,
            &value(4, 100),
            1,
        )
        .unwrap();
    }
    assert!(c.stats().evictions > 0);
    // A new size stores at once, on a page beyond the limit; the next of that size evicts.
    for i in 0..20 {
        c.store(
            StoreMode::Set,
            format!("big{i}").as_bytes(),
            0,
            0,
            &value(5, 20000),
            1,
        )
        .unwrap();
    }
    assert_eq!(c.stats().total_malloced, 5 * PAGE as u64);
}

#[test]
fn balancer_follows_a_shift_in_value_sizes() {
    let c = cache(16);
    let mut now = 1;
    for i in 0..20_000 {
        c.store(
            StoreMode::Set,
            format!("s{i}").as_bytes(),
            0,
            0,
            &value(6, 100),
            now,
        )
        .unwrap();
    }
    let big = class_of_value(&c, 5000);
    assert_eq!(pages_of(&c, big), 1, "the new size's first page");
    // New keys of the new size, a second's worth at a time, ten seconds later.
    now += 10;
    for sec in 0..30 {
        for i in 0..200 {
            let k = format!("b{sec}-{i}");
            c.store(StoreMode::Set, k.as_bytes(), 0, 0, &value(7, 5000), now)
                .unwrap();
        }
        c.rebalance_step(now);
        settle(&c, now);
        now += 1;
    }
    assert!(c.mover_stats().slabs_moved >= 5, "{:?}", c.mover_stats());
    assert!(pages_of(&c, big) >= 5);
}

#[test]
fn a_lowered_limit_gives_pages_back() {
    let c = cache(16);
    c.set_automove(0);
    for i in 0..20_000 {
        c.store(
            StoreMode::Set,
            format!("k{i}").as_bytes(),
            0,
            0,
            &value(8, 100),
            1,
        )
        .unwrap();
    }
    assert_eq!(c.stats().total_malloced, 16 * PAGE as u64);
    c.set_memory_limit(6 * PAGE);
    for now in 1..100 {
        c.rebalance_step(now);
        settle(&c, now);
    }
    assert_eq!(c.stats().total_malloced, 6 * PAGE as u64);
    assert_eq!(c.stats().limit_maxbytes, 6 * PAGE as u64);
    // Growing it again lets the class take pages again.
    c.set_memory_limit(16 * PAGE);
    for i in 0..20_000 {
        c.store(
            StoreMode::Set,
            format!("n{i}").as_bytes(),
            0,
            0,
            &value(8, 100),
            1,
        )
        .unwrap();
    }
    assert_eq!(c.stats().total_malloced, 16 * PAGE as u64);
}

/// Readers on other threads during back-and-forth moves: a hit is always the last value
/// written for that key by the single writer (each value is one repeated byte, and the
/// flags say which), never a torn or foreign one.
#[test]
fn readers_never_see_torn_values_during_moves() {
    let c = Arc::new(cache(12));
    c.set_automove(0);
    let small = class_of_value(&c, 100);
    let big = class_of_value(&c, 3000);
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..3)
        .map(|t| {
            let (c, stop) = (c.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut hits = 0u64;
                let mut i = t;
                while !stop.load(Ordering::Relaxed) {
                    let k = format!("k{}", i % 4000);
                    if let Some((v, flags)) = c.get(k.as_bytes(), 1, |it| (it.value.to_vec(), it.flags)) {
                        assert!(v.iter().all(|&b| b == flags as u8), "torn value for {k}");
                        hits += 1;
                    }
                    i += 7;
                }
                hits
            })
        })
        .collect();
    for round in 0..40u32 {
        for i in 0..4000u32 {
            let tag = (round * 31 + i) as u8;
            let len = if i % 2 == 0 { 100 } else { 3000 };
            let _ = c.store(
                StoreMode::Set,
                format!("k{i}").as_bytes(),
                u32::from(tag),
                0,
                &value(tag, len),
                1,
            );
            if i % 500 == 0 {
                let (src, dst) = if round % 2 == 0 {
                    (small, big)
                } else {
                    (big, small)
                };
                let _ = c.reassign(src as i32, dst as i32);
                c.rebalance_step(1);
            }
        }
        settle(&c, 1);
    }
    stop.store(true, Ordering::Relaxed);
    let hits: u64 = readers.into_iter().map(|r| r.join().unwrap()).sum();
    assert!(hits > 0);
    assert!(c.mover_stats().slabs_moved > 10);
}

#[derive(Debug, Clone)]
enum Op {
    Set(u16, usize),
    Get(u16),
    Delete(u16),
    Reassign(i32, i32),
    Step,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u16..600, prop_oneof![10usize..200, 1000usize..9000]).prop_map(|(k, l)| Op::Set(k, l)),
        3 => (0u16..600).prop_map(Op::Get),
        1 => (0u16..600).prop_map(Op::Delete),
        1 => (-1i32..12, 0i32..12).prop_map(|(s, d)| Op::Reassign(s, d)),
        2 => Just(Op::Step),
    ]
}

proptest! {
    /// With moves, rescues and evictions mixed in: a read is a miss or the last value
    /// written, the item count matches the index, and memory stays within the limit plus
    /// first pages.
    #[test]
    fn moves_never_return_wrong_values(ops in prop::collection::vec(op(), 1..500)) {
        let c = cache(6);
        c.set_automove(0);
        let mut last: HashMap<u16, Vec<u8>> = HashMap::new();
        for (i, op) in ops.into_iter().enumerate() {
            match op {
                Op::Set(k, len) => {
                    let v = value((i % 256) as u8, len);
                    match c.store(StoreMode::Set, format!("k{k}").as_bytes(), 0, 0, &v, 1) {
                        Ok(_) => { last.insert(k, v); }
                        Err(StoreError::OutOfMemory) => { last.remove(&k); }
                        Err(e) => prop_assert!(false, "unexpected {:?}", e),
                    }
                }
                Op::Get(k) => {
                    if let Some(v) = c.get(format!("k{k}").as_bytes(), 1, |it| it.value.to_vec()) {
                        prop_assert_eq!(Some(&v), last.get(&k));
                    }
                }
                Op::Delete(k) => {
                    c.delete(format!("k{k}").as_bytes(), 1);
                    last.remove(&k);
                }
                Op::Reassign(s, d) => { let _ = c.reassign(s, d); }
                Op::Step => { c.rebalance_step(1); }
            }
        }
        settle(&c, 1);
        let live = (0..600u16)
            .filter(|k| c.get(format!("k{k}").as_bytes(), 1, |_| ()).is_some())
            .count() as u64;
        prop_assert_eq!(c.stats().curr_items, live);
        for s in c.class_stats() {
            prop_assert_eq!(s.used_chunks, s.items);
            prop_assert_eq!(s.total_chunks, s.used_chunks + s.free_chunks);
        }
        let classes = c.class_stats().len() as u64;
        prop_assert!(c.stats().total_malloced <= (6 * PAGE as u64).max(classes * PAGE as u64) + classes * PAGE as u64);
    }
}

/// The segmented LRU keeps keys that were read again through a one-time scan of new
/// keys; the flat CLOCK list lets the scan push most of them out.
#[test]
fn segmented_lru_keeps_reread_keys_through_a_scan() {
    let survivors = |segmented: bool| {
        let c = cache(8);
        c.set_automove(0);
        c.set_lru_segmented(segmented);
        // 1000 hot keys, read twice while other keys come and go.
        for round in 0..4 {
            for i in 0..1000 {
                let k = format!("hot{i}");
                if c.get(k.as_bytes(), 1, |_| ()).is_none() {
                    c.store(StoreMode::Set, k.as_bytes(), 0, 0, &value(1, 100), 1)
                        .unwrap();
                }
                let filler = format!("fill{round}-{i}");
                c.store(StoreMode::Set, filler.as_bytes(), 0, 0, &value(2, 100), 1)
                    .unwrap();
            }
        }
        // A scan: 6000 keys stored once and never read.
        for i in 0..6000 {
            c.store(
                StoreMode::Set,
                format!("scan{i}").as_bytes(),
                0,
                0,
                &value(3, 100),
                1,
            )
            .unwrap();
        }
        (0..1000)
            .filter(|i| c.get(format!("hot{i}").as_bytes(), 1, |_| ()).is_some())
            .count()
    };
    let (segmented, flat) = (survivors(true), survivors(false));
    assert!(segmented > 900, "segmented kept {segmented} of 1000");
    assert!(segmented > flat, "segmented {segmented}, flat {flat}");
}
