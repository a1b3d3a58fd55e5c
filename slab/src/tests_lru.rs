//! Tests of the segmented LRU (`lru`): HOT/WARM/COLD/TEMP flows, the maintainer pass, the
//! per-segment counters, and readers racing the maintainer.

use crate::arena::NIL;
use crate::cache::lock;
use crate::item::Segment;
use crate::*;
use proptest::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

const PAGE: usize = 65536;

fn cache(pages: usize) -> Cache {
    let c = Cache::new(CacheConfig {
        memory_limit: pages * PAGE,
        page_size: PAGE,
        item_size_max: PAGE,
        ..CacheConfig::default()
    })
    .unwrap();
    c.set_automove(0);
    c
}

/// A value that names its key, so a torn or foreign value is detectable.
fn value_for(key: &str, len: usize) -> Vec<u8> {
    let mut v = key.as_bytes().to_vec();
    v.resize(len, b'.');
    v
}

fn set(c: &Cache, key: &str, exptime: u32, now: u32) {
    c.store(
        StoreMode::Set,
        key.as_bytes(),
        0,
        exptime,
        &value_for(key, 100),
        now,
    )
    .unwrap();
}

fn hit(c: &Cache, key: &str, now: u32) -> bool {
    c.get(key.as_bytes(), now, |_| ()).is_some()
}

fn class_of(c: &Cache, key: &str) -> usize {
    c.get(key.as_bytes(), 1, |it| it.class).unwrap()
}

fn stats(c: &Cache, class: usize) -> ClassStats {
    c.class_stats().into_iter().find(|s| s.id == class).unwrap()
}

/// Walk every list of every class: links agree both ways, each item names the list it is
/// on, counts match, and the lists hold exactly the class's items.
fn check_lists(c: &Cache) {
    for class in 1..=c.class_count() {
        let cs = lock(&c.class_state[class]);
        let mut total = 0;
        for seg in Segment::ALL {
            let list = cs.list(seg);
            let (mut n, mut prev, mut it) = (0, NIL, list.head);
            while it != NIL {
                let h = c.header(it);
                assert_eq!(h.segment(), seg, "class {class}: item on the wrong list");
                assert!(h.has_bit(crate::item::LINKED));
                assert_eq!(h.lru_prev.load(Ordering::Relaxed), prev);
                prev = it;
                it = h.lru_next.load(Ordering::Relaxed);
                n += 1;
            }
            assert_eq!(list.tail, prev, "class {class} {seg:?}: tail");
            assert_eq!(list.count, n, "class {class} {seg:?}: count");
            total += n;
        }
        assert_eq!(total, cs.items, "class {class}: lists hold every item");
    }
}

#[test]
fn new_items_start_hot_and_the_maintainer_keeps_hot_at_its_share() {
    let c = cache(16);
    // Keys of one length: the shares weigh bytes, so equal items make them item counts.
    for i in 0..100 {
        set(&c, &format!("k{i:03}"), 0, 1);
    }
    let class = class_of(&c, "k000");
    let before = stats(&c, class);
    assert_eq!(before.hot_items, 100, "no eviction yet: every item is still HOT");
    assert!(c.lru_maintain(1) > 0);
    let after = stats(&c, class);
    assert_eq!(after.hot_items, 20, "hot_lru_pct 20 of 100 equal items");
    assert_eq!(after.cold_items, 80);
    assert_eq!(after.moves_to_cold, 80);
    assert_eq!(c.lru_stats().juggles, 1);
    // Nothing left to do.
    assert_eq!(c.lru_maintain(1), 0);
    check_lists(&c);
}

#[test]
fn a_cold_item_read_twice_moves_to_warm_through_the_bump_queue() {
    let c = cache(16);
    for i in 0..50 {
        set(&c, &format!("k{i}"), 0, 1);
    }
    c.lru_maintain(1);
    let class = class_of(&c, "k0");
    // `class_of` read k0 once (FETCHED); one more read makes it ACCESSED in COLD.
    assert_eq!(stats(&c, class).moves_to_warm, 0);
    assert!(hit(&c, "k0", 1));
    c.lru_maintain(1);
    let s = stats(&c, class);
    assert_eq!(s.moves_to_warm, 1);
    assert_eq!(s.warm_items, 1);
    assert_eq!(s.hits_to_cold, 2, "both reads found it in COLD");
    assert!(hit(&c, "k0", 1));
    assert_eq!(stats(&c, class).hits_to_warm, 1);
    check_lists(&c);
}

#[test]
fn an_item_read_twice_survives_a_scan() {
    let c = cache(8);
    // A full class first: WARM's share is of the items the class holds.
    for i in 0..5000 {
        set(&c, &format!("fill{i}"), 0, 1);
    }
    c.lru_maintain(1);
    for i in 0..200 {
        set(&c, &format!("keep{i}"), 0, 1);
    }
    for i in 0..200 {
        let k = format!("keep{i}");
        assert!(hit(&c, &k, 1) && hit(&c, &k, 1));
    }
    c.lru_maintain(1);
    // A scan many times the cache's size, every key stored once, never read, with the
    // maintainer running now and then as its thread would.
    for i in 0..20_000 {
        set(&c, &format!("scan{i}"), 0, 1);
        if i % 500 == 0 {
            c.lru_maintain(1);
        }
    }
    let kept = (0..200).filter(|i| hit(&c, &format!("keep{i}"), 1)).count();
    assert!(kept >= 190, "kept {kept} of 200 keys read twice");
    let s = stats(&c, class_of(&c, "keep0"));
    assert!(s.evicted > 0);
    check_lists(&c);
}

#[test]
fn temp_items_are_never_evicted_only_reclaimed_when_dead() {
    let c = cache(8);
    c.set_temp_ttl(Some(61));
    // TTL 30 < 61: TEMP. TTL 3600 and no TTL: HOT.
    set(&c, "canary", 1 + 30, 1);
    let class = class_of(&c, "canary");
    let s = stats(&c, class);
    assert_eq!((s.temp_items, s.hot_items), (1, 0));
    for i in 0..20_000 {
        set(&c, &format!("k{i}"), if i % 2 == 0 { 3600 } else { 0 }, 1);
    }
    let s = stats(&c, class);
    assert!(s.evicted > 0);
    assert_eq!(s.temp_items, 1, "still one item in TEMP");
    assert!(s.hot_items > 0);
    assert!(hit(&c, "canary", 1), "the TEMP item was never evicted");
    // Once dead, the maintainer reclaims it.
    let reclaimed = stats(&c, class).reclaimed;
    c.lru_maintain(40);
    let s = stats(&c, class);
    assert_eq!(s.temp_items, 0);
    assert!(s.reclaimed > reclaimed);
    check_lists(&c);
}

#[test]
fn flat_mode_puts_new_items_in_cold_and_drains_the_others() {
    let c = cache(16);
    for i in 0..40 {
        set(&c, &format!("a{i}"), 0, 1);
    }
    c.set_lru_segmented(false);
    for i in 0..40 {
        set(&c, &format!("b{i}"), 0, 1);
    }
    let class = class_of(&c, "a0");
    assert_eq!(stats(&c, class).cold_items, 40);
    c.lru_maintain(1);
    let s = stats(&c, class);
    assert_eq!((s.hot_items, s.warm_items, s.cold_items), (0, 0, 80));
    check_lists(&c);
}

#[test]
fn lru_tune_shares_apply_on_the_next_pass() {
    let c = cache(16);
    c.set_hot_pct(50);
    for i in 0..100 {
        set(&c, &format!("k{i:03}"), 0, 1);
    }
    c.lru_maintain(1);
    let s = stats(&c, class_of(&c, "k000"));
    assert_eq!(s.hot_items, 50);
}

/// The shares weigh bytes, as memcached's do: HOT at 20 % keeps fewer large items than
/// small ones of the same class.
#[test]
fn the_hot_share_weighs_bytes_not_items() {
    let c = cache(16);
    let store = |key: &str, len: usize| {
        c.store(StoreMode::Set, key.as_bytes(), 0, 0, &value_for(key, len), 1)
            .unwrap();
    };
    // One class (its 240-byte chunks take items of 193 to 240 bytes): 80 items of 196
    // bytes, then 20 of 236, the newest, which HOT keeps.
    for i in 0..80 {
        store(&format!("s{i:03}"), 160);
    }
    for i in 0..20 {
        store(&format!("l{i:03}"), 200);
    }
    let class = class_of(&c, "s000");
    assert_eq!(class, class_of(&c, "l000"), "one class");
    c.lru_maintain(1);
    let s = stats(&c, class);
    // 20 % of 80 x 196 + 20 x 236 bytes is 4,080: 17 large items (4,012 bytes), not 20.
    assert_eq!(s.hot_items, 17);
    check_lists(&c);
}

#[test]
fn the_maintainer_moves_hot_tails_older_than_the_factor_times_cold_age() {
    let run = |hot_factor: f64| {
        let c = cache(16);
        c.set_hot_pct(50);
        c.set_hot_max_factor(hot_factor);
        for i in 0..50 {
            set(&c, &format!("old{i}"), 0, 1);
        }
        c.lru_maintain(1);
        for i in 0..10 {
            set(&c, &format!("new{i}"), 0, 100);
        }
        c.lru_maintain(100);
        check_lists(&c);
        stats(&c, class_of(&c, "old0")).hot_items
    };
    // The share alone (50 % of 60) keeps 30 HOT; with the age rule (the COLD tail is 99 s
    // old, 0.2 x 99 < 99) every old HOT item goes and the 10 new ones stay.
    assert_eq!(run(1000.0), 30);
    assert_eq!(run(0.2), 10);
}

/// WARM holds items read since their write: an old write time does not push them out
/// while WARM is under its share (memcached's age limit there is by last access, which the
/// header does not keep).
#[test]
fn an_old_warm_item_stays_warm_under_its_share() {
    let c = cache(16);
    set(&c, "w", 0, 1);
    assert!(hit(&c, "w", 1) && hit(&c, "w", 1));
    for i in 0..20 {
        set(&c, &format!("f{i}"), 0, 1);
    }
    c.lru_maintain(1);
    let class = class_of(&c, "w");
    assert_eq!(stats(&c, class).warm_items, 1);
    // COLD's tail becomes an item written now: by write time, `w` is 999 s older.
    for i in 0..20 {
        assert!(c.delete(format!("f{i}").as_bytes(), 1000));
    }
    for i in 0..50 {
        set(&c, &format!("k{i}"), 0, 1000);
    }
    for _ in 0..3 {
        c.lru_maintain(1000);
    }
    let s = stats(&c, class);
    assert_eq!(s.warm_items, 1);
    assert!(s.moves_to_cold > 0);
}

#[derive(Debug, Clone)]
enum Op {
    Set(u16, u32),
    Get(u16),
    Delete(u16),
    Maintain,
    Mode(bool),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..600u16, prop_oneof![Just(0u32), Just(5), Just(100)]).prop_map(|(k, t)| Op::Set(k, t)),
        4 => (0..600u16).prop_map(Op::Get),
        1 => (0..600u16).prop_map(Op::Delete),
        1 => Just(Op::Maintain),
        1 => any::<bool>().prop_map(Op::Mode),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any mix of stores, reads, deletes, maintainer passes and mode switches (with TEMP
    /// on, and time passing so items expire) keeps the lists consistent, the segment
    /// counts adding up to the items, and the per-segment hits adding up to get_hits.
    #[test]
    fn lists_and_counters_add_up(ops in proptest::collection::vec(op(), 1..1500)) {
        let c = cache(4);
        c.set_temp_ttl(Some(10));
        let mut now = 1;
        for (n, op) in ops.iter().enumerate() {
            if n % 100 == 99 {
                now += 3;
            }
            match *op {
                Op::Set(k, ttl) => {
                    let exp = if ttl == 0 { 0 } else { now + ttl };
                    let key = format!("key{k}");
                    c.store(StoreMode::Set, key.as_bytes(), 0, exp, &value_for(&key, 50 + usize::from(k % 7) * 40), now).unwrap();
                }
                Op::Get(k) => {
                    let key = format!("key{k}");
                    if let Some(v) = c.get(key.as_bytes(), now, |it| it.value.to_vec()) {
                        prop_assert!(v.starts_with(key.as_bytes()));
                    }
                }
                Op::Delete(k) => {
                    c.delete(format!("key{k}").as_bytes(), now);
                }
                Op::Maintain => {
                    c.lru_maintain(now);
                }
                Op::Mode(on) => c.set_lru_segmented(on),
            }
        }
        check_lists(&c);
        for s in c.class_stats() {
            prop_assert_eq!(s.hot_items + s.warm_items + s.cold_items + s.temp_items, s.items);
            prop_assert_eq!(s.hits_to_hot + s.hits_to_warm + s.hits_to_cold + s.hits_to_temp, s.get_hits);
        }
    }
}

/// Readers never see a torn or foreign value while a writer overwrites and evicts and a
/// maintainer thread moves items between the lists.
#[test]
fn readers_never_see_a_torn_value_while_the_maintainer_moves_items() {
    let c = Arc::new(cache(6));
    let stop = Arc::new(AtomicBool::new(false));
    let keys = 3000;
    let maintainer = {
        let (c, stop) = (Arc::clone(&c), Arc::clone(&stop));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                c.lru_maintain(1);
            }
        })
    };
    let mut threads = Vec::new();
    for t in 0..2u64 {
        let (c, stop) = (Arc::clone(&c), Arc::clone(&stop));
        threads.push(std::thread::spawn(move || {
            let mut x = t * 7 + 1;
            let mut hits = 0u64;
            while !stop.load(Ordering::Relaxed) {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                // Skewed: a small set of keys is read far more often.
                let k = if x >> 60 < 12 {
                    (x >> 20) % 100
                } else {
                    (x >> 20) % keys
                };
                let key = format!("k{k}");
                if let Some(v) = c.get(key.as_bytes(), 1, |it| it.value.to_vec()) {
                    let len = 60 + (k as usize % 5) * 30;
                    assert_eq!(v.len(), len, "{key}: wrong length");
                    assert_eq!(v, value_for(&key, len), "{key}: torn or foreign value");
                    hits += 1;
                }
            }
            hits
        }));
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(1500);
    let mut i = 0u64;
    while std::time::Instant::now() < deadline {
        let k = (i * 7919) % keys;
        let key = format!("k{k}");
        let len = 60 + (k as usize % 5) * 30;
        if let Err(e) = c.store(StoreMode::Set, key.as_bytes(), 0, 0, &value_for(&key, len), 1) {
            stop.store(true, Ordering::Relaxed);
            panic!("{key}: {e:?} {:#?}", c.class_stats());
        }
        i += 1;
    }
    stop.store(true, Ordering::Relaxed);
    maintainer.join().unwrap();
    let hits: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert!(hits > 0);
    check_lists(&c);
    let s: Vec<_> = c.class_stats();
    assert!(s.iter().any(|s| s.moves_to_cold > 0));
    assert!(s.iter().any(|s| s.moves_to_warm > 0 || s.moves_within_lru > 0));
    // With the readers gone, one pass brings every HOT list to its share.
    c.lru_maintain(1);
    for s in c.class_stats() {
        assert!(
            s.hot_items <= s.items / 5,
            "class {}: {} of {} items HOT",
            s.id,
            s.hot_items,
            s.items
        );
    }
}
