//! Tests of items reserved ahead of their value (`intake`): a reserve, write and commit
//! does what `store_with` does in every mode (property test against a second cache); a
//! dropped reservation gives its chunks back; readers never see a reserved item before
//! its commit; and a page move meeting a reservation either finishes once the writer is
//! done or gives the page up.

use crate::*;
use proptest::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

fn big_cache() -> Arc<Cache> {
    Arc::new(
        Cache::new(CacheConfig {
            memory_limit: 64 << 20,
            item_size_max: 4 << 20,
            ..CacheConfig::default()
        })
        .unwrap(),
    )
}

fn used_chunks(c: &Cache) -> u64 {
    c.class_stats().iter().map(|s| s.used_chunks).sum()
}

/// Reserve, write in uneven pieces, commit.
#[allow(clippy::too_many_arguments)]
fn store_reserved(
    c: &Arc<Cache>,
    mode: StoreMode,
    key: &[u8],
    flags: u32,
    exptime: u32,
    value: &[u8],
    now: u32,
    opts: StoreOptions,
) -> Result<u64, StoreError> {
    let mut r = c.reserve(key, value.len(), now)?;
    let mut at = 0;
    let mut piece = 1;
    while at < value.len() {
        let n = piece.min(value.len() - at);
        assert_eq!(r.write(&value[at..at + n]), n);
        at += n;
        piece = piece * 3 + 7;
    }
    assert_eq!(r.remaining(), 0);
    r.commit(mode, flags, exptime, now, opts)
}

fn snapshot(c: &Cache, key: &[u8]) -> Option<(Vec<u8>, u32, u64, u32, bool, bool)> {
    let opts = GetOptions {
        bump: false,
        vivify: false,
        counter: HitCounter::None,
    };
    c.meta_get(key, 10, opts, |v| {
        (
            v.value.to_vec(),
            v.flags,
            v.cas,
            v.exptime(),
            v.stale(),
            v.key_binary(),
        )
    })
}

#[derive(Debug, Clone)]
enum Op {
    Store {
        mode: u8,
        key: u8,
        len: usize,
        cas_pick: u8,
        invalidate: bool,
        binary: bool,
    },
    Delete(u8),
}

fn op() -> impl Strategy<Value = Op> {
    let len = prop_oneof![0usize..100, 100usize..40_000, 600_000usize..1_500_000];
    prop_oneof![
        4 => (0u8..4, 0u8..3, len, 0u8..3, any::<bool>(), any::<bool>()).prop_map(
            |(mode, key, len, cas_pick, invalidate, binary)| Op::Store {
                mode,
                key,
                len,
                cas_pick,
                invalidate,
                binary
            }
        ),
        1 => (0u8..3).prop_map(Op::Delete),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// The same stores through `store_with` on one cache and reserve/write/commit on
    /// another give the same results, the same items (value, flags, cas, expiry, marks)
    /// and the same counters.
    #[test]
    fn reserved_stores_equal_copied_stores(ops in proptest::collection::vec(op(), 1..24)) {
        let (a, b) = (big_cache(), big_cache());
        // Class stats list classes with pages: give the smallest one a page in both (a
        // reservation takes memory before the store decides, a copied store after).
        for c in [&a, &b] {
            c.store(StoreMode::Set, b"w", 0, 0, b"", 1).unwrap();
        }
        for (i, op) in ops.iter().enumerate() {
            match *op {
                Op::Delete(k) => {
                    let key = [b'k', k];
                    prop_assert_eq!(a.delete(&key, 5), b.delete(&key, 5));
                }
                Op::Store { mode, key, len, cas_pick, invalidate, binary } => {
                    let key = [b'k', key];
                    let current = snapshot(&a, &key).map_or(0, |s| s.2);
                    let cas = match cas_pick {
                        0 => current,
                        1 => current.saturating_sub(1),
                        _ => current + 1000,
                    };
                    let mode = match mode {
                        0 => StoreMode::Set,
                        1 => StoreMode::Add,
                        2 => StoreMode::Replace,
                        _ => StoreMode::Cas(cas),
                    };
                    let opts = StoreOptions { compare_cas: None, invalidate, key_binary: binary };
                    let value: Vec<u8> = (0..len).map(|j| (i * 7 + j) as u8).collect();
                    let (flags, exp) = (i as u32, 100 + i as u32);
                    let ra = a.store_with(mode, &key, flags, exp, &value, 5, opts);
                    let rb = store_reserved(&b, mode, &key, flags, exp, &value, 5, opts);
                    prop_assert_eq!(ra, rb, "op {} {:?}", i, op);
                }
            }
            for k in 0..3u8 {
                prop_assert_eq!(snapshot(&a, &[b'k', k]), snapshot(&b, &[b'k', k]));
            }
        }
        let (sa, sb) = (a.stats(), b.stats());
        prop_assert_eq!(sa.curr_items, sb.curr_items);
        prop_assert_eq!(sa.total_items, sb.total_items);
        let counters = |c: &Cache| {
            c.class_stats()
                .iter()
                .map(|s| (s.id, s.cmd_set, s.cas_hits, s.cas_badval))
                .filter(|t| t.1 + t.2 + t.3 > 0)
                .collect::<Vec<_>>()
        };
        prop_assert_eq!(counters(&a), counters(&b));
    }
}

#[test]
fn a_dropped_reservation_gives_its_chunks_back() {
    let c = big_cache();
    c.store(StoreMode::Set, b"warm", 0, 0, b"up", 1).unwrap();
    let before = used_chunks(&c);
    for len in [20_000, 2_000_000] {
        let mut r = c.reserve(b"k", len, 1).unwrap();
        assert!(used_chunks(&c) > before);
        r.write(&vec![b'x'; len / 2]);
        drop(r);
        assert_eq!(used_chunks(&c), before);
        assert!(c.get(b"k", 1, |_| ()).is_none());
    }
    // A failed commit (add over a present key) frees the item too.
    c.store(StoreMode::Set, b"k", 0, 0, b"old", 1).unwrap();
    let before = used_chunks(&c);
    let r = store_reserved(
        &c,
        StoreMode::Add,
        b"k",
        0,
        0,
        &[b'n'; 50_000],
        1,
        StoreOptions::default(),
    );
    assert_eq!(r, Err(StoreError::NotStored));
    assert_eq!(used_chunks(&c), before);
    // An incomplete value never commits.
    let mut r = c.reserve(b"k", 10, 1).unwrap();
    r.write(b"12345");
    assert_eq!(
        r.commit(StoreMode::Set, 0, 0, 1, StoreOptions::default()),
        Err(StoreError::NotStored)
    );
    assert_eq!(used_chunks(&c), before);
    assert_eq!(c.get(b"k", 1, |it| it.value.to_vec()).unwrap(), b"old");
}

#[test]
fn values_read_into_the_item_directly() {
    let c = big_cache();
    for len in [20_000, 1_500_000] {
        let value: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
        let mut r = c.reserve(b"direct", len, 1).unwrap();
        let mut at = 0;
        while r.remaining() > 0 {
            let dst = r.unfilled_mut();
            // Short "reads", as a socket gives them.
            let n = dst.len().min(7_777).min(len - at);
            dst[..n].copy_from_slice(&value[at..at + n]);
            r.advance(n);
            at += n;
        }
        assert!(r.unfilled_mut().is_empty());
        r.commit(StoreMode::Set, 0, 0, 1, StoreOptions::default())
            .unwrap();
        assert_eq!(c.get(b"direct", 1, |it| it.value.to_vec()).unwrap(), value);
    }
}

#[test]
fn reserve_refuses_what_a_store_refuses() {
    let c = big_cache();
    assert_eq!(c.reserve(b"", 10, 1).unwrap_err(), StoreError::BadKey);
    assert_eq!(c.reserve(&[b'k'; 251], 10, 1).unwrap_err(), StoreError::BadKey);
    assert_eq!(c.reserve(b"k", 4 << 20, 1).unwrap_err(), StoreError::TooLarge);
    // Every chunk of the class held by reservations: out of memory, nothing evicted.
    let small = Arc::new(
        Cache::new(CacheConfig {
            memory_limit: 4 << 20,
            ..CacheConfig::default()
        })
        .unwrap(),
    );
    let mut held = Vec::new();
    let err = loop {
        match small.reserve(format!("r{}", held.len()).as_bytes(), 900_000, 1) {
            Ok(r) => held.push(r),
            Err(e) => break e,
        }
        assert!(held.len() < 100);
    };
    assert_eq!(err, StoreError::OutOfMemory);
    assert!(!held.is_empty());
    let n = held.len();
    drop(held);
    // Memory came back: as many fit again.
    let again: Vec<_> = (0..n)
        .map(|i| small.reserve(format!("r{i}").as_bytes(), 900_000, 1).unwrap())
        .collect();
    assert_eq!(again.len(), n);
}

#[test]
fn readers_see_the_old_value_until_commit() {
    let c = big_cache();
    let len = 1_200_000; // chained
    c.store(StoreMode::Set, b"k", 1, 0, &vec![b'a'; len], 1).unwrap();
    let committed = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (c, committed, stop) = (Arc::clone(&c), Arc::clone(&committed), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut reads = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let done = committed.load(Ordering::SeqCst);
                let v = c.get(b"k", 1, |it| (it.value.to_vec(), it.flags)).unwrap();
                if v.1 == 1 {
                    assert!(v.0.iter().all(|&b| b == b'a') && v.0.len() == len);
                } else {
                    assert!(v.0.iter().all(|&b| b == b'b') && v.0.len() == len + 1);
                }
                if !done {
                    // Read before the commit was announced may be either; after, only new.
                } else {
                    assert_eq!(v.1, 2, "old value read after commit");
                }
                reads += 1;
            }
            reads
        })
    };
    let mut r = c.reserve(b"k", len + 1, 1).unwrap();
    for piece in vec![b'b'; len + 1].chunks(4096) {
        r.write(piece);
        assert_eq!(c.get(b"k", 1, |it| it.flags), Some(1));
    }
    r.commit(StoreMode::Set, 2, 0, 1, StoreOptions::default())
        .unwrap();
    committed.store(true, Ordering::SeqCst);
    std::thread::sleep(std::time::Duration::from_millis(20));
    stop.store(true, Ordering::Relaxed);
    assert!(reader.join().unwrap() > 0);
    assert_eq!(c.get(b"k", 1, |it| it.flags), Some(2));
}

const PAGE: usize = 65536;
const LEN: usize = 20_000; // a few chunks to a 64 KB page

/// A cache of 64 KB pages whose class for LEN-byte values has three pages, and a
/// reservation in a chunk of its oldest page (the one a move takes).
fn cache_with_reservation_on_oldest_page() -> (Arc<Cache>, Reservation, usize) {
    let c = Arc::new(
        Cache::new(CacheConfig {
            memory_limit: 32 * PAGE,
            page_size: PAGE,
            item_size_max: PAGE,
            ..CacheConfig::default()
        })
        .unwrap(),
    );
    c.set_automove(0);
    c.store(StoreMode::Set, b"k0", 0, 0, &[b'v'; LEN], 1).unwrap();
    let class = c.get(b"k0", 1, |it| it.class).unwrap();
    let per_page = c
        .class_stats()
        .iter()
        .find(|s| s.id == class)
        .unwrap()
        .chunks_per_page;
    for i in 1..3 * per_page {
        c.store(StoreMode::Set, format!("k{i}").as_bytes(), 0, 0, &[b'v'; LEN], 1)
            .unwrap();
    }
    assert_eq!(
        c.class_stats()
            .iter()
            .find(|s| s.id == class)
            .unwrap()
            .total_pages,
        3
    );
    // k0's chunk (oldest page) is the only free one: the reservation takes it.
    assert!(c.delete(b"k0", 1));
    let r = c.reserve(b"new", LEN, 1).unwrap();
    (c, r, class)
}

#[test]
fn a_move_waits_for_a_writer_that_finishes() {
    let (c, mut r, class) = cache_with_reservation_on_oldest_page();
    c.reassign(class as i32, 0).unwrap();
    for _ in 0..10 {
        c.rebalance_step(1);
    }
    assert!(c.mover_stats().slab_reassign_running);
    r.write(&[b'n'; LEN]);
    r.commit(StoreMode::Set, 0, 0, 1, StoreOptions::default())
        .unwrap();
    for _ in 0..100 {
        if !c.rebalance_step(1) {
            break;
        }
    }
    let m = c.mover_stats();
    assert_eq!(m.slabs_moved, 1);
    assert!(!m.slab_reassign_running);
    // The committed item was rescued or evicted with the page, never torn.
    if let Some(v) = c.get(b"new", 1, |it| it.value.to_vec()) {
        assert_eq!(v, vec![b'n'; LEN]);
    }
}

#[test]
fn a_move_gives_up_a_page_a_writer_keeps() {
    let (c, mut r, class) = cache_with_reservation_on_oldest_page();
    let pages = |c: &Cache| {
        c.class_stats()
            .iter()
            .find(|s| s.id == class)
            .unwrap()
            .total_pages
    };
    c.reassign(class as i32, 0).unwrap();
    // The mover stops asking to be called at once when passes free nothing...
    let mut steps = 0;
    while c.rebalance_step(1) {
        steps += 1;
        assert!(steps < 10_000, "the mover spins on a page a writer holds");
    }
    assert!(c.mover_stats().slab_reassign_running);
    // ...and gives the page up a few seconds later.
    c.rebalance_step(2);
    assert!(c.mover_stats().slab_reassign_running);
    c.rebalance_step(1 + crate::mover::MOVE_STALL_SECS);
    let m = c.mover_stats();
    assert!(!m.slab_reassign_running);
    assert_eq!(m.slabs_moved, 0);
    assert!(m.slab_reassign_busy_items >= 1);
    assert_eq!(pages(&c), 3);
    // The writer finishes; its item is intact, and the page's free chunks are usable again.
    r.write(&[b'n'; LEN]);
    r.commit(StoreMode::Set, 0, 0, 1, StoreOptions::default())
        .unwrap();
    assert_eq!(c.get(b"new", 1, |it| it.value.to_vec()).unwrap(), vec![b'n'; LEN]);
    let before = c
        .class_stats()
        .iter()
        .find(|s| s.id == class)
        .unwrap()
        .free_chunks;
    for i in 0..4 {
        c.store(StoreMode::Set, format!("z{i}").as_bytes(), 0, 0, &[b'z'; LEN], 1)
            .unwrap();
    }
    let per_page = c
        .class_stats()
        .iter()
        .find(|s| s.id == class)
        .unwrap()
        .chunks_per_page;
    assert_eq!(pages(&c), 3 + (4 - before).div_ceil(per_page));
    // A later move takes another page, and finishes.
    c.reassign(class as i32, 0).unwrap();
    for _ in 0..1000 {
        if !c.rebalance_step(10) {
            break;
        }
    }
    assert_eq!(c.mover_stats().slabs_moved, 1);
    assert_eq!(c.get(b"new", 1, |it| it.value.len()).unwrap_or(LEN), LEN);
}

#[test]
fn a_writer_that_gives_up_during_a_move_lets_it_finish() {
    let (c, r, class) = cache_with_reservation_on_oldest_page();
    c.reassign(class as i32, 0).unwrap();
    for _ in 0..10 {
        c.rebalance_step(1);
    }
    drop(r);
    for _ in 0..100 {
        if !c.rebalance_step(1) {
            break;
        }
    }
    assert_eq!(c.mover_stats().slabs_moved, 1);
}
