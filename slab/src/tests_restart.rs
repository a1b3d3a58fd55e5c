//! Warm restart in the engine: a cache over a memory file, snapshotted, dropped and opened
//! again, serves the same items; anything that does not match starts it empty.

use std::path::PathBuf;

use crate::*;

/// A memory file path of its own for one test (removed by [`Cleanup`]).
fn temp_file(name: &str) -> PathBuf {
    let dir = if std::path::Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    dir.join(format!("slabcache-test-{}-{name}", std::process::id()))
}

struct Cleanup(PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn config() -> CacheConfig {
    CacheConfig {
        memory_limit: 32 << 20,
        item_size_max: 2 << 20,
        ..CacheConfig::default()
    }
}

fn value(i: usize) -> Vec<u8> {
    // Sizes from a few bytes to chained items of several chunks.
    let len = match i % 50 {
        0 => 700_000,
        1 => 9_000,
        n => n * 37,
    };
    (0..len).map(|j| (i * 31 + j) as u8).collect()
}

fn fill(c: &Cache, n: usize, now: u32) -> Vec<u64> {
    (0..n)
        .map(|i| {
            c.store(
                StoreMode::Set,
                format!("key{i}").as_bytes(),
                i as u32,
                0,
                &value(i),
                now,
            )
            .unwrap()
        })
        .collect()
}

fn restart(path: &std::path::Path, c: Cache, cfg: CacheConfig, now: u32) -> (Cache, Restored) {
    let snap = c.snapshot(now).unwrap();
    let text = {
        let mut s = String::new();
        snap.write_to(&mut s);
        s
    };
    drop(c);
    let snap = Snapshot::parse(&text).unwrap();
    Cache::open_file(cfg, path, Some(&snap), now).unwrap()
}

#[test]
fn every_item_comes_back_with_its_flags_and_cas() {
    let path = temp_file("all");
    let _clean = Cleanup(path.clone());
    let (c, r) = Cache::open_file(config(), &path, None, 10).unwrap();
    assert!(matches!(r, Restored::Empty(None)));
    let cas = fill(&c, 200, 10);
    c.store(StoreMode::Set, b"short", 7, 15, b"dies", 10).unwrap();
    let (c, r) = restart(&path, c, config(), 20);
    match r {
        Restored::Warm { items, dropped } => assert_eq!((items, dropped), (200, 1)),
        other => panic!("not restored: {other:?}"),
    }
    for (i, &want_cas) in cas.iter().enumerate() {
        let got = c
            .get(format!("key{i}").as_bytes(), 20, |it| {
                (it.value.to_vec(), it.flags, it.cas)
            })
            .unwrap_or_else(|| panic!("key{i} missing"));
        assert_eq!(got, (value(i), i as u32, want_cas), "key{i}");
    }
    assert!(c.get(b"short", 20, |_| ()).is_none(), "expired while down");
    let next = c.store(StoreMode::Set, b"new", 0, 0, b"v", 20).unwrap();
    assert!(next > *cas.iter().max().unwrap());
    // The rebuilt free lists and LRU work: overwrite and evict through the whole cache.
    for i in 0..2000 {
        c.store(
            StoreMode::Set,
            format!("more{i}").as_bytes(),
            0,
            0,
            &[1u8; 5000],
            20,
        )
        .unwrap();
    }
}

#[test]
fn different_settings_or_damage_start_empty() {
    let path = temp_file("bad");
    let _clean = Cleanup(path.clone());
    let (c, _) = Cache::open_file(config(), &path, None, 10).unwrap();
    fill(&c, 50, 10);
    let other = CacheConfig {
        growth_factor: 1.5,
        ..config()
    };
    let (c, r) = restart(&path, c, other.clone(), 11);
    assert!(
        matches!(r, Restored::Empty(Some(RestoreError::Setting { ref name, .. })) if name == "growth_factor"),
        "{r:?}"
    );
    assert!(c.get(b"key1", 11, |_| ()).is_none());

    // Classes given by `slab_sizes` instead of a factor are a different layout too.
    fill(&c, 50, 11);
    let sized = CacheConfig {
        slab_sizes: Some(vec![100, 200, 300]),
        ..other.clone()
    };
    let (c, r) = restart(&path, c, sized, 11);
    assert!(
        matches!(r, Restored::Empty(Some(RestoreError::Setting { ref name, ref now, .. })) if name == "growth_factor" && now == "100-200-300"),
        "{r:?}"
    );
    let (c, _) = restart(&path, c, other.clone(), 11);

    fill(&c, 50, 11);
    let snap = c.snapshot(11).unwrap();
    drop(c);
    // One flipped byte in the file.
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.iter().position(|&b| b != 0).unwrap() + 40;
    bytes[at] ^= 0x20;
    std::fs::write(&path, &bytes).unwrap();
    let (c, r) = Cache::open_file(other.clone(), &path, Some(&snap), 12).unwrap();
    assert!(
        matches!(r, Restored::Empty(Some(RestoreError::Checksum))),
        "{r:?}"
    );
    assert!(c.get(b"key1", 12, |_| ()).is_none());

    // A truncated file.
    fill(&c, 5, 12);
    let snap = c.snapshot(12).unwrap();
    drop(c);
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(1 << 20).unwrap();
    drop(f);
    let (c, r) = Cache::open_file(other, &path, Some(&snap), 13).unwrap();
    assert!(
        matches!(r, Restored::Empty(Some(RestoreError::FileSize { .. }))),
        "{r:?}"
    );
    assert!(c.get(b"key1", 13, |_| ()).is_none());
}

#[test]
fn a_truncated_snapshot_is_refused() {
    let path = temp_file("meta");
    let _clean = Cleanup(path.clone());
    let (c, _) = Cache::open_file(config(), &path, None, 10).unwrap();
    fill(&c, 5, 10);
    let mut text = String::new();
    c.snapshot(10).unwrap().write_to(&mut text);
    let cut = &text[..text.len() / 2];
    assert!(matches!(
        Snapshot::parse(cut),
        Err(RestoreError::Missing(_) | RestoreError::Malformed(_))
    ));
    let other_layout = text.replace(&format!("setting.layout {LAYOUT_VERSION}"), "setting.layout 999");
    assert!(matches!(
        Snapshot::parse(&other_layout),
        Err(RestoreError::Layout { .. })
    ));
}

#[test]
fn a_second_process_cannot_share_the_file() {
    let path = temp_file("lock");
    let _clean = Cleanup(path.clone());
    let (_c, _) = Cache::open_file(config(), &path, None, 10).unwrap();
    assert!(Cache::open_file(config(), &path, None, 10).is_err());
}

#[test]
fn an_anonymous_cache_has_no_snapshot() {
    let c = Cache::new(config()).unwrap();
    assert_eq!(c.snapshot(1).unwrap_err(), SaveError::NotFileBacked);
}
