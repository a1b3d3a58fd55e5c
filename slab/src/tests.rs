//! Engine tests: commands one by one, expiry with a manual clock, eviction under a tiny
//! arena, a model-based property test, and a threaded stress run.

use crate::*;
use proptest::prelude::*;
use std::collections::HashMap;
use std::sync::Arc;

fn small(pages: usize) -> Cache {
    Cache::new(CacheConfig {
        memory_limit: pages * 65536,
        page_size: 65536,
        item_size_max: 65536,
        ..CacheConfig::default()
    })
    .unwrap()
}

fn get(c: &Cache, key: &[u8], now: u32) -> Option<(Vec<u8>, u32)> {
    c.get(key, now, |it| (it.value.to_vec(), it.flags))
}

#[test]
fn set_get_delete() {
    let c = Cache::new(CacheConfig::default()).unwrap();
    assert_eq!(get(&c, b"k", 10), None);
    c.store(StoreMode::Set, b"k", 7, 0, b"hello", 10).unwrap();
    assert_eq!(get(&c, b"k", 10), Some((b"hello".to_vec(), 7)));
    c.store(StoreMode::Set, b"k", 8, 0, b"", 10).unwrap();
    assert_eq!(get(&c, b"k", 10), Some((vec![], 8)));
    assert!(c.delete(b"k", 10));
    assert!(!c.delete(b"k", 10));
    assert_eq!(get(&c, b"k", 10), None);
    assert_eq!(c.stats().curr_items, 0);
}

#[test]
fn prefetch_hints_change_nothing() {
    let c = small(4);
    c.store(StoreMode::Set, b"k", 1, 0, b"v", 1).unwrap();
    let too_long = [b'x'; MAX_KEY_LEN + 1];
    for key in [&b"k"[..], b"missing", b"", &too_long] {
        c.prefetch_index(key);
        c.prefetch_item(key);
    }
    assert_eq!(get(&c, b"k", 1), Some((b"v".to_vec(), 1)));
    assert_eq!(c.stats().curr_items, 1);
}

#[test]
fn add_replace_append_prepend() {
    let c = Cache::new(CacheConfig::default()).unwrap();
    assert_eq!(
        c.store(StoreMode::Replace, b"k", 0, 0, b"x", 1),
        Err(StoreError::NotStored)
    );
    assert_eq!(
        c.store(StoreMode::Append, b"k", 0, 0, b"x", 1),
        Err(StoreError::NotStored)
    );
    c.store(StoreMode::Add, b"k", 3, 0, b"mid", 1).unwrap();
    assert_eq!(
        c.store(StoreMode::Add, b"k", 0, 0, b"x", 1),
        Err(StoreError::NotStored)
    );
    c.store(StoreMode::Append, b"k", 9, 0, b">>", 1).unwrap();
    c.store(StoreMode::Prepend, b"k", 9, 0, b"<<", 1).unwrap();
    assert_eq!(get(&c, b"k", 1), Some((b"<<mid>>".to_vec(), 3)));
    c.store(StoreMode::Replace, b"k", 4, 0, b"new", 1).unwrap();
    assert_eq!(get(&c, b"k", 1), Some((b"new".to_vec(), 4)));
}

#[test]
fn cas_checks_unique() {
    let c = Cache::new(CacheConfig::default()).unwrap();
    assert_eq!(
        c.store(StoreMode::Cas(1), b"k", 0, 0, b"x", 1),
        Err(StoreError::NotFound)
    );
    let cas = c.store(StoreMode::Set, b"k", 0, 0, b"a", 1).unwrap();
    assert_eq!(c.get(b"k", 1, |it| it.cas), Some(cas));
    assert_eq!(
        c.store(StoreMode::Cas(cas + 100), b"k", 0, 0, b"b", 1),
        Err(StoreError::Exists)
    );
    let cas2 = c.store(StoreMode::Cas(cas), b"k", 0, 0, b"b", 1).unwrap();
    assert!(cas2 > cas);
    assert_eq!(
        c.store(StoreMode::Cas(cas), b"k", 0, 0, b"c", 1),
        Err(StoreError::Exists)
    );
    assert_eq!(get(&c, b"k", 1).unwrap().0, b"b");
}

#[test]
fn incr_decr_like_memcached() {
    let c = Cache::new(CacheConfig::default()).unwrap();
    assert_eq!(c.incr_decr(b"n", true, 1, 1), Err(ArithError::NotFound));
    c.store(StoreMode::Set, b"n", 5, 0, b"100", 1).unwrap();
    assert_eq!(c.incr_decr(b"n", false, 1, 1), Ok(99));
    // Shorter results keep the old length, padded with spaces.
    assert_eq!(get(&c, b"n", 1), Some((b"99 ".to_vec(), 5)));
    assert_eq!(c.incr_decr(b"n", true, 1, 1), Ok(100));
    assert_eq!(c.incr_decr(b"n", true, 900, 1), Ok(1000));
    assert_eq!(get(&c, b"n", 1).unwrap().0, b"1000");
    assert_eq!(c.incr_decr(b"n", false, 5000, 1), Ok(0));
    c.store(StoreMode::Set, b"n", 0, 0, b"18446744073709551615", 1)
        .unwrap();
    assert_eq!(c.incr_decr(b"n", true, 2, 1), Ok(1));
    c.store(StoreMode::Set, b"s", 0, 0, b"abc", 1).unwrap();
    assert_eq!(c.incr_decr(b"s", true, 1, 1), Err(ArithError::NonNumeric));
}

#[test]
fn expiry_and_touch() {
    let c = Cache::new(CacheConfig::default()).unwrap();
    c.store(StoreMode::Set, b"k", 0, 20, b"v", 10).unwrap();
    assert!(get(&c, b"k", 19).is_some());
    assert!(get(&c, b"k", 20).is_none());
    assert_eq!(c.stats().get_expired, 1);
    c.store(StoreMode::Set, b"k", 0, 20, b"v", 10).unwrap();
    assert!(c.touch(b"k", 50, 15));
    assert!(get(&c, b"k", 40).is_some());
    assert_eq!(c.get_and_touch(b"k", 45, 41, |it| it.exptime), Some(45));
    assert!(get(&c, b"k", 45).is_none());
    assert!(!c.touch(b"k", 0, 46));
}

#[test]
fn flush_all_now_and_delayed() {
    let c = Cache::new(CacheConfig::default()).unwrap();
    c.store(StoreMode::Set, b"a", 0, 0, b"1", 10).unwrap();
    c.flush_all(None, 10);
    assert!(get(&c, b"a", 10).is_none());
    assert_eq!(c.stats().get_flushed, 1);
    c.store(StoreMode::Set, b"b", 0, 0, b"2", 10).unwrap();
    assert!(
        get(&c, b"b", 10).is_some(),
        "items stored after a flush survive it"
    );
    c.flush_all(Some(15), 10);
    c.store(StoreMode::Set, b"c", 0, 0, b"3", 12).unwrap();
    assert!(get(&c, b"b", 14).is_some());
    assert!(get(&c, b"b", 15).is_none());
    assert!(get(&c, b"c", 15).is_none());
    c.store(StoreMode::Set, b"d", 0, 0, b"4", 16).unwrap();
    assert!(get(&c, b"d", 16).is_some());
}

#[test]
fn too_large_and_bad_keys() {
    let c = small(4);
    let big = vec![0u8; 65536];
    assert_eq!(
        c.store(StoreMode::Set, b"k", 0, 0, &big, 1),
        Err(StoreError::TooLarge)
    );
    let ok = vec![1u8; 65536 - 40];
    c.store(StoreMode::Set, b"k", 0, 0, &ok, 1).unwrap();
    assert_eq!(
        c.store(StoreMode::Append, b"k", 0, 0, &ok, 1),
        Err(StoreError::NotStored)
    );
    assert_eq!(
        c.store(StoreMode::Set, &[b'x'; 251], 0, 0, b"v", 1),
        Err(StoreError::BadKey)
    );
    assert_eq!(
        c.store(StoreMode::Set, b"", 0, 0, b"v", 1),
        Err(StoreError::BadKey)
    );
    assert!(c.store(StoreMode::Set, &[b'x'; 250], 0, 0, b"v", 1).is_ok());
}

#[test]
fn eviction_keeps_memory_and_values() {
    let c = small(4);
    for i in 0..20_000u32 {
        let key = format!("key:{i}");
        let value = format!("value-of-{i}-{}", "x".repeat(60));
        c.store(StoreMode::Set, key.as_bytes(), i, 0, value.as_bytes(), 1)
            .unwrap();
    }
    let s = c.stats();
    assert!(s.evictions > 0);
    assert!(s.total_malloced <= 4 * 65536);
    let mut hits = 0;
    for i in 0..20_000u32 {
        let key = format!("key:{i}");
        if let Some((v, flags)) = get(&c, key.as_bytes(), 1) {
            assert_eq!(v, format!("value-of-{i}-{}", "x".repeat(60)).as_bytes());
            assert_eq!(flags, i);
            hits += 1;
        }
    }
    assert!(hits > 1000, "hits {hits}");
    assert!(get(&c, b"key:19999", 1).is_some(), "newest item survives");
}

#[test]
fn no_evict_mode_reports_out_of_memory() {
    let c = Cache::new(CacheConfig {
        memory_limit: 65536,
        page_size: 65536,
        item_size_max: 65536,
        evict: false,
        ..CacheConfig::default()
    })
    .unwrap();
    let mut oom = false;
    for i in 0..10_000u32 {
        match c.store(StoreMode::Set, format!("k{i}").as_bytes(), 0, 0, &[7u8; 100], 1) {
            Ok(_) => {}
            Err(StoreError::OutOfMemory) => {
                oom = true;
                break;
            }
            Err(e) => panic!("{e:?}"),
        }
    }
    assert!(oom);
    assert_eq!(c.stats().evictions, 0);
    assert!(get(&c, b"k0", 1).is_some());
}

#[test]
fn preaccounted_memory_counts_against_the_limit() {
    // Ten pages of limit, nine and a bit counted as taken: one class gets one page (its
    // first, which is allowed even over the limit) and no second one.
    let c = Cache::new(CacheConfig {
        memory_limit: 10 * 65536,
        page_size: 65536,
        item_size_max: 65536,
        evict: false,
        preaccounted: 9 * 65536 + 32,
        ..CacheConfig::default()
    })
    .unwrap();
    assert_eq!(c.stats().total_malloced, 9 * 65536 + 32);
    let value = [1u8; 20_000];
    let stored = (0..10u32)
        .take_while(|i| {
            c.store(StoreMode::Set, format!("k{i}").as_bytes(), 0, 0, &value, 1)
                .is_ok()
        })
        .count();
    assert!((1..10).contains(&stored), "stored {stored}");
    assert_eq!(c.stats().total_malloced, 10 * 65536 + 32);
}

#[test]
fn expired_items_are_reclaimed_first() {
    let c = small(1);
    for i in 0..200u32 {
        c.store(StoreMode::Set, format!("t{i}").as_bytes(), 0, 5, &[1u8; 200], 1)
            .unwrap();
    }
    for i in 0..200u32 {
        c.store(StoreMode::Set, format!("n{i}").as_bytes(), 0, 0, &[2u8; 200], 10)
            .unwrap();
    }
    let s = c.stats();
    assert!(s.reclaimed > 0);
}

#[test]
fn stats_and_dump_per_class() {
    let c = Cache::new(CacheConfig::default()).unwrap();
    c.store(StoreMode::Set, b"small", 0, 0, &[0; 10], 1).unwrap();
    c.store(StoreMode::Set, b"medium", 0, 0, &[0; 1000], 1).unwrap();
    c.store(StoreMode::Set, b"large", 0, 30, &[0; 100_000], 1)
        .unwrap();
    let classes = c.class_stats();
    assert_eq!(classes.len(), 3);
    for cl in &classes {
        assert_eq!(cl.used_chunks, 1);
        assert_eq!(cl.items, 1);
        let mut keys = vec![];
        c.dump(cl.id, 100, |k, n, e| keys.push((k.to_vec(), n, e)));
        assert_eq!(keys.len(), 1);
    }
    let mut seen = vec![];
    c.dump(classes[2].id, 0, |k, n, e| seen.push((k.to_vec(), n, e)));
    assert_eq!(seen, vec![(b"large".to_vec(), 100_000, 30)]);
    assert_eq!(c.stats().curr_items, 3);
    assert_eq!(c.stats().total_items, 3);
}

#[test]
fn overwriting_a_key_in_its_class_reuses_the_chunk() {
    let c = Cache::new(CacheConfig::default()).unwrap();
    let cas1 = c.store(StoreMode::Set, b"k", 1, 0, &[b'a'; 100], 1).unwrap();
    let bytes1 = c.stats().bytes;
    // Same class (100 → 98 bytes of value), so stored over the old chunk.
    let cas2 = c.store(StoreMode::Set, b"k", 2, 50, &[b'b'; 98], 2).unwrap();
    assert!(cas2 > cas1);
    assert_eq!(get(&c, b"k", 2), Some((vec![b'b'; 98], 2)));
    let st = c.stats();
    assert_eq!((st.curr_items, st.total_items), (1, 2));
    assert_eq!(st.bytes, bytes1 - 2);
    let classes = c.class_stats();
    assert_eq!(classes.len(), 1);
    assert_eq!(classes[0].used_chunks, 1);
    let mut seen = vec![];
    c.dump(classes[0].id, 0, |k, n, e| seen.push((k.to_vec(), n, e)));
    assert_eq!(seen, vec![(b"k".to_vec(), 98, 50)]);
    // An append builds the new value from the old one: a new chunk, same answer.
    c.store(StoreMode::Append, b"k", 0, 0, b"c", 3).unwrap();
    let mut want = vec![b'b'; 98];
    want.push(b'c');
    assert_eq!(get(&c, b"k", 3), Some((want, 2)));
    // A value of another class moves the item.
    c.store(StoreMode::Set, b"k", 3, 0, &[b'd'; 1000], 4).unwrap();
    assert_eq!(get(&c, b"k", 4), Some((vec![b'd'; 1000], 3)));
    assert_eq!(c.stats().curr_items, 1);
    assert_eq!(c.class_stats().iter().map(|cl| cl.used_chunks).sum::<u64>(), 1);
}

#[test]
fn table_grows_without_losing_items() {
    let c = Cache::new(CacheConfig {
        memory_limit: 256 << 20,
        ..CacheConfig::default()
    })
    .unwrap();
    for i in 0..200_000u32 {
        c.store(StoreMode::Set, &i.to_le_bytes(), i, 0, b"v", 1).unwrap();
    }
    for i in 0..200_000u32 {
        assert_eq!(c.get(&i.to_le_bytes(), 1, |it| it.flags), Some(i));
    }
}

#[test]
fn threads_share_the_cache() {
    let c = Arc::new(small(8));
    let threads: Vec<_> = (0..4u32)
        .map(|t| {
            let c = Arc::clone(&c);
            std::thread::spawn(move || {
                let (mut reads, mut hits) = (0u32, 0u32);
                let mut x = t.wrapping_mul(2654435761) | 1;
                for _ in 0..50_000 {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    let k = x % 3000;
                    let key = format!("k{k}");
                    match x % 7 {
                        0 => {
                            c.delete(key.as_bytes(), 1);
                        }
                        1..=3 => {
                            // Each write's fill byte is random and also in the flags, so a
                            // reader would notice a value torn between two writes.
                            let len = (x % 300) as usize;
                            let fill = (x >> 9) % 26;
                            let mut v = format!("{k}:").into_bytes();
                            v.resize(v.len() + len, b'a' + fill as u8);
                            let _ = c.store(StoreMode::Set, key.as_bytes(), k << 5 | fill, 0, &v, 1);
                        }
                        _ => {
                            reads += 1;
                            if let Some((v, f)) = get(&c, key.as_bytes(), 1) {
                                hits += 1;
                                assert_eq!(f >> 5, k);
                                assert!(v.starts_with(format!("{k}:").as_bytes()));
                                let fill = b'a' + (f & 31) as u8;
                                assert!(v[format!("{k}:").len()..].iter().all(|&b| b == fill));
                            }
                        }
                    }
                }
                (reads, hits)
            })
        })
        .collect();
    let (mut reads, mut hits) = (0, 0);
    for t in threads {
        let (r, h) = t.join().unwrap();
        reads += r;
        hits += h;
    }
    // Reads did find what other threads wrote (about two thirds of the keys are live at
    // any time), so the checks above ran on real values.
    assert!(reads > 50_000 && hits > reads / 4, "{hits} hits of {reads} reads");
    assert!(c.stats().total_malloced <= 8 * 65536);
}

#[derive(Debug, Clone)]
enum Op {
    Set(u8, u8, u32),
    Add(u8, u8),
    Replace(u8, u8),
    Append(u8, u8),
    Prepend(u8, u8),
    Delete(u8),
    Incr(u8, u8),
    Decr(u8, u8),
    Get(u8),
    CasLast(u8, u8),
}

fn op() -> impl Strategy<Value = Op> {
    let k = 0u8..16;
    let v = 0u8..40;
    prop_oneof![
        (k.clone(), v.clone(), any::<u32>()).prop_map(|(k, v, f)| Op::Set(k, v, f)),
        (k.clone(), v.clone()).prop_map(|(k, v)| Op::Add(k, v)),
        (k.clone(), v.clone()).prop_map(|(k, v)| Op::Replace(k, v)),
        (k.clone(), v.clone()).prop_map(|(k, v)| Op::Append(k, v)),
        (k.clone(), v.clone()).prop_map(|(k, v)| Op::Prepend(k, v)),
        k.clone().prop_map(Op::Delete),
        (k.clone(), v.clone()).prop_map(|(k, d)| Op::Incr(k, d)),
        (k.clone(), v.clone()).prop_map(|(k, d)| Op::Decr(k, d)),
        k.clone().prop_map(Op::Get),
        (k, v).prop_map(|(k, v)| Op::CasLast(k, v)),
    ]
}

fn value_for(n: u8) -> Vec<u8> {
    if n.is_multiple_of(3) {
        n.to_string().into_bytes()
    } else {
        vec![b'a' + n % 26; usize::from(n)]
    }
}

proptest! {
    /// With room to spare, every answer equals a HashMap model's.
    #[test]
    fn matches_model_without_pressure(ops in prop::collection::vec(op(), 1..200)) {
        let c = Cache::new(CacheConfig::default()).unwrap();
        let mut model: HashMap<Vec<u8>, (Vec<u8>, u32, u64)> = HashMap::new();
        for op in ops {
            match op {
                Op::Set(k, v, f) => {
                    let cas = c.store(StoreMode::Set, &[k], f, 0, &value_for(v), 1).unwrap();
                    model.insert(vec![k], (value_for(v), f, cas));
                }
                Op::Add(k, v) => {
                    let r = c.store(StoreMode::Add, &[k], 1, 0, &value_for(v), 1);
                    match model.entry(vec![k]) {
                        std::collections::hash_map::Entry::Occupied(_) => {
                            prop_assert_eq!(r, Err(StoreError::NotStored))
                        }
                        std::collections::hash_map::Entry::Vacant(e) => {
                            e.insert((value_for(v), 1, r.unwrap()));
                        }
                    }
                }
                Op::Replace(k, v) => {
                    let r = c.store(StoreMode::Replace, &[k], 2, 0, &value_for(v), 1);
                    match model.get_mut(&vec![k]) {
                        Some(e) => *e = (value_for(v), 2, r.unwrap()),
                        None => prop_assert_eq!(r, Err(StoreError::NotStored)),
                    }
                }
                Op::Append(k, v) | Op::Prepend(k, v) => {
                    let append = matches!(op, Op::Append(..));
                    let mode = if append { StoreMode::Append } else { StoreMode::Prepend };
                    let r = c.store(mode, &[k], 9, 0, &value_for(v), 1);
                    match model.get_mut(&vec![k]) {
                        Some(e) => {
                            let mut nv = if append { e.0.clone() } else { value_for(v) };
                            nv.extend_from_slice(&if append { value_for(v) } else { e.0.clone() });
                            *e = (nv, e.1, r.unwrap());
                        }
                        None => prop_assert_eq!(r, Err(StoreError::NotStored)),
                    }
                }
                Op::Delete(k) => {
                    prop_assert_eq!(c.delete(&[k], 1), model.remove(&vec![k]).is_some());
                }
                Op::Incr(k, d) | Op::Decr(k, d) => {
                    let incr = matches!(op, Op::Incr(..));
                    let r = c.incr_decr(&[k], incr, u64::from(d), 1);
                    match model.get_mut(&vec![k]) {
                        None => prop_assert_eq!(r, Err(ArithError::NotFound)),
                        Some(e) => {
                            // memcached reads leading digits up to whitespace or the end.
                            let head: Vec<u8> = e.0.iter().copied().take_while(|b| !b.is_ascii_whitespace()).collect();
                            let parsed = if head.is_empty() { None } else if head.iter().all(u8::is_ascii_digit) {
                                std::str::from_utf8(&head).unwrap().parse::<u64>().ok()
                            } else { None };
                            match parsed {
                                None => prop_assert_eq!(r, Err(ArithError::NonNumeric)),
                                Some(n) => {
                                    let want = if incr { n.wrapping_add(u64::from(d)) } else { n.saturating_sub(u64::from(d)) };
                                    prop_assert_eq!(r, Ok(want));
                                    let mut nv = want.to_string().into_bytes();
                                    if nv.len() < e.0.len() { nv.resize(e.0.len(), b' '); }
                                    let cas = c.get(&[k], 1, |it| it.cas).unwrap();
                                    *e = (nv, e.1, cas);
                                }
                            }
                        }
                    }
                }
                Op::Get(k) => {
                    let got = c.get(&[k], 1, |it| (it.value.to_vec(), it.flags, it.cas));
                    prop_assert_eq!(got, model.get(&vec![k]).cloned());
                }
                Op::CasLast(k, v) => {
                    let expected = model.get(&vec![k]).map(|e| e.2);
                    let r = c.store(StoreMode::Cas(expected.unwrap_or(0)), &[k], 5, 0, &value_for(v), 1);
                    match expected {
                        None => prop_assert_eq!(r, Err(StoreError::NotFound)),
                        Some(_) => { model.insert(vec![k], (value_for(v), 5, r.unwrap())); }
                    }
                }
            }
        }
        prop_assert_eq!(c.stats().curr_items, model.len() as u64);
    }

    /// Under eviction pressure: memory stays within the limit and a read returns either a
    /// miss or the last value written for that key, never another key's or a stale one.
    #[test]
    fn pressure_never_returns_wrong_values(ops in prop::collection::vec((0u16..2000, 0usize..3000, any::<bool>()), 1..400)) {
        let c = small(2);
        let mut last: HashMap<u16, Vec<u8>> = HashMap::new();
        for (i, (k, len, write)) in ops.into_iter().enumerate() {
            let key = format!("key{k}");
            if write {
                let mut v = format!("{k}/{i}/").into_bytes();
                v.resize(v.len() + len, b'z');
                match c.store(StoreMode::Set, key.as_bytes(), 0, 0, &v, 1) {
                    Ok(_) => { last.insert(k, v); }
                    Err(StoreError::OutOfMemory) => { last.remove(&k); }
                    Err(e) => prop_assert!(false, "unexpected {:?}", e),
                }
            } else if let Some(v) = c.get(key.as_bytes(), 1, |it| it.value.to_vec()) {
                prop_assert_eq!(Some(&v), last.get(&k));
            }
        }
        // Over the limit only by first pages: a class with no page may take one anyway
        // (memcached's rule), so a size never stored before can be stored.
        let classes = c.class_stats().len() as u64;
        prop_assert!(c.stats().total_malloced <= (2 * 65536u64).max(classes * 65536));
    }
}

// ---- meta and binary protocol support ------------------------------------------------------

/// What a meta read reports: (value, fetched before, created, stale, token sent, key binary).
fn peek(
    c: &Cache,
    key: &[u8],
    now: u32,
    opts: GetOptions,
) -> Option<(Vec<u8>, bool, bool, bool, bool, bool)> {
    c.meta_get(key, now, opts, |it| {
        (
            it.value.to_vec(),
            it.fetched,
            it.created,
            it.stale(),
            it.win_token_sent(),
            it.key_binary(),
        )
    })
}

const BUMP: GetOptions = GetOptions {
    bump: true,
    vivify: false,
    counter: HitCounter::Get,
};
const NO_BUMP: GetOptions = GetOptions {
    bump: false,
    vivify: false,
    counter: HitCounter::None,
};

#[test]
fn meta_get_reports_fetched_before_and_honours_no_bump() {
    let c = Cache::new(CacheConfig::default()).unwrap();
    c.store(StoreMode::Set, b"k", 0, 0, b"v", 1).unwrap();
    assert!(!peek(&c, b"k", 1, NO_BUMP).unwrap().1);
    assert!(!peek(&c, b"k", 1, NO_BUMP).unwrap().1, "u must not mark the item");
    assert!(
        !peek(&c, b"k", 1, BUMP).unwrap().1,
        "the read sees the state before"
    );
    assert!(peek(&c, b"k", 1, BUMP).unwrap().1);
    let class = c.meta_get(b"k", 1, NO_BUMP, |it| it.class).unwrap();
    let hits = |c: &Cache| c.class_stats().iter().find(|s| s.id == class).unwrap().get_hits;
    assert_eq!(hits(&c), 2, "only counted reads add to get_hits");
    assert_eq!(peek(&c, b"missing", 1, BUMP), None);
}

#[test]
fn touch_counts_as_a_fetch() {
    let c = Cache::new(CacheConfig::default()).unwrap();
    c.store(StoreMode::Set, b"k", 0, 0, b"v", 1).unwrap();
    assert!(c.touch(b"k", 100, 1));
    assert!(peek(&c, b"k", 1, NO_BUMP).unwrap().1);
}

#[test]
fn meta_get_vivifies_an_empty_item_and_can_change_expiry_and_token() {
    let c = Cache::new(CacheConfig::default()).unwrap();
    let vivify = GetOptions { vivify: true, ..BUMP };
    let first = c.meta_get(b"v", 10, vivify, |it| {
        assert!(it.created && it.value.is_empty() && it.flags == 0 && it.exptime() == 0);
        assert!(!it.win_token_sent());
        it.set_exptime(40);
        it.set_win_token_sent();
        it.cas
    });
    assert!(first.is_some_and(|cas| cas > 0));
    let again = c
        .meta_get(b"v", 11, vivify, |it| {
            (it.created, it.exptime(), it.win_token_sent())
        })
        .unwrap();
    assert_eq!(again, (false, 40, true), "the second read finds the created item");
    assert_eq!(c.stats().total_items, 1);
    assert_eq!(
        peek(&c, b"v", 40, NO_BUMP),
        None,
        "the expiry set by the read applies"
    );
}

#[test]
fn written_at_dates_the_last_write() {
    let c = Cache::new(CacheConfig::default()).unwrap();
    c.store(StoreMode::Set, b"a", 0, 0, b"1", 100).unwrap();
    c.store(StoreMode::Set, b"b", 0, 0, b"1", 105).unwrap();
    let at = |k: &[u8]| c.meta_get(k, 110, NO_BUMP, |it| it.written_at()).unwrap();
    assert_eq!((at(b"a"), at(b"b")), (100, 105));
    c.incr_decr(b"a", true, 1, 108).unwrap();
    assert_eq!(at(b"a"), 108, "an incr is a write");
    c.meta_get(b"b", 109, BUMP, |_| ()).unwrap();
    assert_eq!(at(b"b"), 105, "a read is not");
}

#[test]
fn store_with_append_cas_stale_write_and_binary_key() {
    let c = Cache::new(CacheConfig::default()).unwrap();
    let cas = c.store(StoreMode::Set, b"k", 3, 50, b"mid", 1).unwrap();
    let cmp = |v| StoreOptions {
        compare_cas: Some(v),
        ..StoreOptions::default()
    };
    assert_eq!(
        c.store_with(StoreMode::Append, b"k", 0, 0, b">", 1, cmp(cas + 1)),
        Err(StoreError::Exists)
    );
    // 0 means no condition, as in memcached.
    let cas = c
        .store_with(StoreMode::Append, b"k", 0, 0, b">", 1, cmp(0))
        .unwrap();
    let cas = c
        .store_with(StoreMode::Prepend, b"k", 0, 0, b"<", 1, cmp(cas))
        .unwrap();
    assert_eq!(get(&c, b"k", 1), Some((b"<mid>".to_vec(), 3)));

    // An older cas with `invalidate` stores a stale value that keeps the old expiry.
    let stale = StoreOptions {
        invalidate: true,
        ..StoreOptions::default()
    };
    assert_eq!(
        c.store_with(StoreMode::Cas(cas + 5), b"k", 0, 0, b"x", 1, stale),
        Err(StoreError::Exists),
        "a newer cas is never accepted"
    );
    assert_eq!(
        c.store_with(StoreMode::Cas(cas - 1), b"k", 9, 0, b"old", 1, stale)
            .map(|n| n > cas),
        Ok(true)
    );
    let (v, _, _, is_stale, _, _) = peek(&c, b"k", 1, NO_BUMP).unwrap();
    assert_eq!((v.as_slice(), is_stale), (&b"old"[..], true));
    assert_eq!(c.meta_get(b"k", 1, NO_BUMP, |it| it.exptime()), Some(50));
    // Without `invalidate` an older cas is just a mismatch; a plain set clears the mark.
    assert_eq!(
        c.store(StoreMode::Cas(1), b"k", 0, 0, b"x", 1),
        Err(StoreError::Exists)
    );
    c.store(StoreMode::Set, b"k", 0, 0, b"new", 1).unwrap();
    assert!(!peek(&c, b"k", 1, NO_BUMP).unwrap().3);

    let bin = StoreOptions {
        key_binary: true,
        ..StoreOptions::default()
    };
    c.store_with(StoreMode::Set, b"\x01\x02", 0, 0, b"v", 1, bin)
        .unwrap();
    assert!(peek(&c, b"\x01\x02", 1, NO_BUMP).unwrap().5);
    c.store_with(StoreMode::Append, b"\x01\x02", 0, 0, b"w", 1, bin)
        .unwrap();
    assert!(
        !peek(&c, b"\x01\x02", 1, NO_BUMP).unwrap().5,
        "memcached's appended item does not keep the mark"
    );
}

#[test]
fn delete_with_cas_and_invalidation() {
    let c = Cache::new(CacheConfig::default()).unwrap();
    let cas = c.store(StoreMode::Set, b"k", 0, 0, b"v", 1).unwrap();
    let with = |compare_cas, invalidate, exptime| DeleteOptions {
        compare_cas,
        invalidate,
        exptime,
    };
    assert_eq!(
        c.delete_with(b"k", 1, with(Some(cas + 1), false, None)),
        DeleteResult::Exists
    );
    assert_eq!(
        c.delete_with(b"nope", 1, with(None, true, None)),
        DeleteResult::NotFound
    );
    c.meta_get(b"k", 1, NO_BUMP, |it| it.set_win_token_sent());
    assert_eq!(
        c.delete_with(b"k", 1, with(Some(cas), true, Some(30))),
        DeleteResult::Invalidated
    );
    let (exp, new_cas, stale, token) = c
        .meta_get(b"k", 1, NO_BUMP, |it| {
            (it.exptime(), it.cas, it.stale(), it.win_token_sent())
        })
        .unwrap();
    assert_eq!((exp, stale, token), (30, true, false));
    assert!(new_cas > cas, "invalidation renews the cas");
    // A flush still removes an invalidated item.
    c.flush_all(None, 2);
    assert_eq!(peek(&c, b"k", 2, NO_BUMP), None);
    c.store(StoreMode::Set, b"k", 0, 0, b"v", 3).unwrap();
    assert_eq!(
        c.delete_with(b"k", 3, with(None, false, None)),
        DeleteResult::Deleted
    );
}

#[test]
fn arith_with_cas_creation_and_expiry() {
    let c = Cache::new(CacheConfig::default()).unwrap();
    let create = |initial, exptime| ArithOptions {
        create: Some((initial, exptime)),
        ..ArithOptions::default()
    };
    assert_eq!(
        c.arith(b"n", true, 1, 1, ArithOptions::default()),
        Err(ArithError::NotFound)
    );
    let made = c.arith(b"n", true, 1, 1, create(10, 90)).unwrap();
    assert_eq!(
        (made.value, made.created, made.exptime, made.exptime_before),
        (10, true, 90, 90)
    );
    assert_eq!(get(&c, b"n", 1), Some((b"10".to_vec(), 0)));
    let opts = ArithOptions {
        compare_cas: Some(made.cas + 1),
        ..ArithOptions::default()
    };
    assert_eq!(c.arith(b"n", true, 1, 1, opts), Err(ArithError::Exists));
    let opts = ArithOptions {
        compare_cas: Some(made.cas),
        set_exptime: Some(200),
        create: Some((0, 0)),
    };
    let done = c.arith(b"n", false, 3, 1, opts).unwrap();
    assert_eq!(
        (done.value, done.created, done.exptime_before, done.exptime),
        (7, false, 90, 200)
    );
    assert!(done.cas > made.cas);
    // Like memcached: an empty value is non-numeric even when the cas is wrong.
    c.store(StoreMode::Set, b"e", 0, 0, b"", 1).unwrap();
    let opts = ArithOptions {
        compare_cas: Some(12345),
        ..ArithOptions::default()
    };
    assert_eq!(c.arith(b"e", true, 1, 1, opts), Err(ArithError::NonNumeric));
    c.store(StoreMode::Set, b"e", 0, 0, b"x", 1).unwrap();
    assert_eq!(c.arith(b"e", true, 1, 1, opts), Err(ArithError::Exists));
}

#[test]
fn immediate_flush_spends_a_cas_like_memcached() {
    let c = Cache::new(CacheConfig::default()).unwrap();
    assert_eq!(c.store(StoreMode::Set, b"a", 0, 0, b"1", 1), Ok(1));
    c.flush_all(None, 1);
    assert_eq!(c.store(StoreMode::Set, b"b", 0, 0, b"1", 1), Ok(3));
    c.flush_all(Some(100), 1);
    assert_eq!(c.store(StoreMode::Set, b"c", 0, 0, b"1", 1), Ok(4));
    assert_eq!(get(&c, b"b", 1).map(|v| v.0), Some(b"1".to_vec()));
}

#[test]
fn cas_disabled_never_compares_on_append_and_in_place_incr_links_nothing() {
    let c = Cache::new(CacheConfig {
        use_cas: false,
        ..CacheConfig::default()
    })
    .unwrap();
    assert_eq!(c.store(StoreMode::Set, b"k", 0, 0, b"1", 1), Ok(0));
    let opts = StoreOptions {
        compare_cas: Some(5),
        ..StoreOptions::default()
    };
    assert_eq!(c.store_with(StoreMode::Append, b"k", 0, 0, b"0", 1, opts), Ok(0));
    assert_eq!(get(&c, b"k", 1).map(|v| v.0), Some(b"10".to_vec()));
    let before = c.stats().total_items;
    assert_eq!(c.incr_decr(b"k", true, 5, 1), Ok(15));
    assert_eq!(c.stats().total_items, before, "same length: rewritten in place");
    assert_eq!(c.incr_decr(b"k", true, 100, 1), Ok(115));
    assert_eq!(c.stats().total_items, before + 1, "longer: a new item");
}

#[test]
fn size_histogram_counts_while_enabled() {
    let c = Cache::new(CacheConfig::default()).unwrap();
    c.store(StoreMode::Set, b"before", 0, 0, &[0; 500], 1).unwrap();
    assert_eq!(c.size_histogram(), None);
    c.set_size_tracking(true);
    assert_eq!(c.size_histogram(), Some(vec![]));
    c.store(StoreMode::Set, b"a", 0, 0, &[0; 10], 1).unwrap(); // 43 bytes -> 64
    c.store(StoreMode::Set, b"b", 0, 0, &[0; 100], 1).unwrap(); // 133 -> 160
    c.store(StoreMode::Set, b"c", 0, 0, &[0; 100], 1).unwrap();
    assert_eq!(c.size_histogram(), Some(vec![(64, 1), (160, 2)]));
    c.delete(b"c", 1);
    // An item linked before tracking began never drives a bucket below zero.
    c.delete(b"before", 1);
    assert_eq!(c.size_histogram(), Some(vec![(64, 1), (160, 1)]));
    c.set_size_tracking(false);
    assert_eq!(c.size_histogram(), None);
}
