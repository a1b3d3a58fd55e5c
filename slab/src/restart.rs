//! Warm restart (memcached's `-e`): what a cache over a memory file saves when it stops
//! cleanly, as text, and the checks a new process makes before it trusts the file.
//!
//! The items need no saving: they are in the memory file, a shared map (see `arena`).
//! What lives on the heap is saved as a [`Snapshot`]:
//! - the settings the layout depends on (`-m`, page size, `slab_chunk_max`, `-I`, `-n`,
//!   `-f`, `-C`, the header size and [`LAYOUT_VERSION`]): any difference and the file is
//!   not used;
//! - which page belongs to which class (its pages, the ones not yet carved, and how far
//!   the carve got) and to the pool: chunks past the carve may hold a former class's
//!   bytes, so only carved chunks are read back;
//! - the CAS counter, the flush marks, the write-time marks and each index stripe's size;
//! - a checksum of every carved page ([`data_checksum`]), so a file changed or damaged
//!   while no server ran is never served.
//!
//! The index and the LRU lists are not saved: the `restore` module rebuilds them by walking
//! the carved chunks, as the crawler does (an item is a chunk whose header has `LINKED`),
//! checking every item and chain against the class it is in. LRU order is rebuilt from the
//! CAS uniques (newest write at the head); the warm list keeps its members.
//!
//! Text lines are `key value`; keys this module does not know are ignored, so the server
//! adds its own lines (clock, version) to the same file.

use std::collections::HashMap;
use std::fmt;
use std::fmt::Write as _;

use crate::cache::{lock, Cache, CacheConfig, Shape, STRIPES};
use crate::item::ItemHeader;

/// Version of what the memory file and the snapshot mean: bumped whenever the item header,
/// the chain layout, the page layout or this format changes, so another build's file is
/// refused instead of misread.
pub const LAYOUT_VERSION: u32 = 1;

/// The heap state of a cache at a clean stop (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// (name, value) of every setting the layout depends on.
    pub(crate) settings: Vec<(String, String)>,
    pub(crate) next_cas: u64,
    pub(crate) flush_below_cas: u64,
    pub(crate) flush_at: u32,
    pub(crate) flush_second: u32,
    pub(crate) flush_clear_cas: u64,
    pub(crate) pool_free: Vec<usize>,
    pub(crate) pool_released: Vec<usize>,
    pub(crate) next_fresh: usize,
    pub(crate) granted: usize,
    /// Index 0 is class 1.
    pub(crate) classes: Vec<ClassPages>,
    pub(crate) stripe_buckets: Vec<usize>,
    pub(crate) marks: Vec<(u64, u32)>,
    /// Items linked at the stop (for the log).
    pub items: usize,
    pub(crate) data_checksum: u64,
}

/// A class's pages in a [`Snapshot`].
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ClassPages {
    pub pages: Vec<usize>,
    pub pending: Vec<usize>,
    pub carve: Option<(usize, usize)>,
}

/// Why a memory file's items were not restored; the cache starts empty.
#[derive(Debug)]
pub enum RestoreError {
    /// A line the snapshot needs is not there (a truncated file).
    Missing(String),
    /// A line could not be read.
    Malformed(String),
    /// The file was saved by a build with another layout.
    Layout { saved: String },
    /// A setting the layout depends on differs.
    Setting {
        name: String,
        saved: String,
        now: String,
    },
    /// The memory file does not have the size the settings give.
    FileSize { found: u64, expected: u64 },
    /// The memory file's pages are not what was saved.
    Checksum,
    /// The saved page lists or an item do not make sense.
    Corrupt(&'static str),
}

impl fmt::Display for RestoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RestoreError::Missing(key) => write!(f, "metadata has no `{key}` line (truncated?)"),
            RestoreError::Malformed(key) => write!(f, "metadata line `{key}` is malformed"),
            RestoreError::Layout { saved } => write!(
                f,
                "memory file layout version {saved} is not this build's ({LAYOUT_VERSION})"
            ),
            RestoreError::Setting { name, saved, now } => {
                write!(f, "setting {name} differs: saved {saved}, now {now}")
            }
            RestoreError::FileSize { found, expected } => {
                write!(f, "memory file is {found} bytes, expected {expected}")
            }
            RestoreError::Checksum => write!(f, "memory file checksum mismatch (changed or damaged)"),
            RestoreError::Corrupt(what) => write!(f, "memory file is inconsistent: {what}"),
        }
    }
}

impl std::error::Error for RestoreError {}

/// Why a snapshot could not be taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaveError {
    /// The arena is anonymous: nothing would survive the process.
    NotFileBacked,
    /// A page move did not finish.
    MoveUnfinished,
}

impl fmt::Display for SaveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SaveError::NotFileBacked => write!(f, "the cache has no memory file"),
            SaveError::MoveUnfinished => write!(f, "a slab page move did not finish"),
        }
    }
}

impl std::error::Error for SaveError {}

/// The settings a memory file's layout depends on, as text, in a fixed order.
pub(crate) fn settings_of(config: &CacheConfig, shape: &Shape) -> Vec<(String, String)> {
    let chunk_max = shape.classes.chunk_size(shape.classes.len());
    [
        ("layout", LAYOUT_VERSION.to_string()),
        ("header_size", ItemHeader::SIZE.to_string()),
        ("memory_limit", config.memory_limit.to_string()),
        ("page_size", config.page_size.to_string()),
        ("slab_chunk_max", chunk_max.to_string()),
        ("item_size_max", config.item_size_max.to_string()),
        ("min_chunk", config.min_chunk.to_string()),
        // `{:?}` prints the shortest text that reads back as the same f64. With
        // `slab_sizes` the sizes stand in its place, as in memcached's restart file.
        (
            "growth_factor",
            match &config.slab_sizes {
                Some(sizes) => sizes.iter().map(usize::to_string).collect::<Vec<_>>().join("-"),
                None => format!("{:?}", config.growth_factor),
            },
        ),
        ("use_cas", config.use_cas.to_string()),
        ("classes", shape.classes.len().to_string()),
        ("arena_bytes", shape.arena_bytes(config).to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

fn list(values: &[usize]) -> String {
    if values.is_empty() {
        return "-".into();
    }
    let mut s = String::new();
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(s, "{v}");
    }
    s
}

fn parse_list(key: &str, text: &str) -> Result<Vec<usize>, RestoreError> {
    if text == "-" {
        return Ok(Vec::new());
    }
    text.split(',')
        .map(|v| v.parse().map_err(|_| RestoreError::Malformed(key.into())))
        .collect()
}

impl Snapshot {
    /// Append the snapshot as `key value` lines.
    pub fn write_to(&self, out: &mut String) {
        for (k, v) in &self.settings {
            let _ = writeln!(out, "setting.{k} {v}");
        }
        let _ = writeln!(out, "next_cas {}", self.next_cas);
        let _ = writeln!(out, "flush_below_cas {}", self.flush_below_cas);
        let _ = writeln!(out, "flush_at {}", self.flush_at);
        let _ = writeln!(out, "flush_second {}", self.flush_second);
        let _ = writeln!(out, "flush_clear_cas {}", self.flush_clear_cas);
        let _ = writeln!(out, "pool.free {}", list(&self.pool_free));
        let _ = writeln!(out, "pool.released {}", list(&self.pool_released));
        let _ = writeln!(out, "pool.next_fresh {}", self.next_fresh);
        let _ = writeln!(out, "pool.granted {}", self.granted);
        let _ = writeln!(out, "classes {}", self.classes.len());
        for (i, c) in self.classes.iter().enumerate() {
            let carve = c
                .carve
                .map_or_else(|| "-".to_string(), |(p, n)| format!("{p}:{n}"));
            let _ = writeln!(
                out,
                "class.{} {} {} {carve}",
                i + 1,
                list(&c.pages),
                list(&c.pending)
            );
        }
        let _ = writeln!(out, "stripes {}", list(&self.stripe_buckets));
        let marks: Vec<String> = self.marks.iter().map(|(c, t)| format!("{c}:{t}")).collect();
        let marks = if marks.is_empty() {
            "-".to_string()
        } else {
            marks.join(",")
        };
        let _ = writeln!(out, "marks {marks}");
        let _ = writeln!(out, "items {}", self.items);
        let _ = writeln!(out, "data_checksum {:016x}", self.data_checksum);
    }

    /// Read a snapshot from `key value` lines (other keys are ignored).
    pub fn parse(text: &str) -> Result<Snapshot, RestoreError> {
        let lines: HashMap<&str, &str> = text.lines().filter_map(|l| l.split_once(' ')).collect();
        let get = |key: &str| -> Result<&str, RestoreError> {
            lines
                .get(key)
                .copied()
                .ok_or_else(|| RestoreError::Missing(key.into()))
        };
        fn num<T: std::str::FromStr>(key: &str, v: &str) -> Result<T, RestoreError> {
            v.parse().map_err(|_| RestoreError::Malformed(key.into()))
        }
        let layout = get("setting.layout")?;
        if layout != LAYOUT_VERSION.to_string() {
            return Err(RestoreError::Layout { saved: layout.into() });
        }
        let mut settings = Vec::new();
        for name in SETTING_NAMES {
            let key = format!("setting.{name}");
            settings.push((name.to_string(), get(&key)?.to_string()));
        }
        let class_count: usize = num("classes", get("classes")?)?;
        if class_count > crate::class::MAX_CLASSES {
            return Err(RestoreError::Malformed("classes".into()));
        }
        let mut classes = Vec::with_capacity(class_count);
        for id in 1..=class_count {
            let key = format!("class.{id}");
            let mut parts = get(&key)?.split(' ');
            let (Some(pages), Some(pending), Some(carve), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return Err(RestoreError::Malformed(key));
            };
            let carve = match carve {
                "-" => None,
                c => {
                    let (p, n) = c
                        .split_once(':')
                        .ok_or_else(|| RestoreError::Malformed(key.clone()))?;
                    Some((num(&key, p)?, num(&key, n)?))
                }
            };
            classes.push(ClassPages {
                pages: parse_list(&key, pages)?,
                pending: parse_list(&key, pending)?,
                carve,
            });
        }
        let marks = match get("marks")? {
            "-" => Vec::new(),
            text => text
                .split(',')
                .map(|m| {
                    let (c, t) = m
                        .split_once(':')
                        .ok_or_else(|| RestoreError::Malformed("marks".into()))?;
                    Ok((num("marks", c)?, num("marks", t)?))
                })
                .collect::<Result<_, RestoreError>>()?,
        };
        let checksum = get("data_checksum")?;
        Ok(Snapshot {
            settings,
            next_cas: num("next_cas", get("next_cas")?)?,
            flush_below_cas: num("flush_below_cas", get("flush_below_cas")?)?,
            flush_at: num("flush_at", get("flush_at")?)?,
            flush_second: num("flush_second", get("flush_second")?)?,
            flush_clear_cas: num("flush_clear_cas", get("flush_clear_cas")?)?,
            pool_free: parse_list("pool.free", get("pool.free")?)?,
            pool_released: parse_list("pool.released", get("pool.released")?)?,
            next_fresh: num("pool.next_fresh", get("pool.next_fresh")?)?,
            granted: num("pool.granted", get("pool.granted")?)?,
            classes,
            stripe_buckets: parse_list("stripes", get("stripes")?)?,
            marks,
            items: num("items", get("items")?)?,
            data_checksum: u64::from_str_radix(checksum, 16)
                .map_err(|_| RestoreError::Malformed("data_checksum".into()))?,
        })
    }

    /// The first setting that differs from what `config` gives, if any.
    pub(crate) fn check_settings(&self, config: &CacheConfig, shape: &Shape) -> Result<(), RestoreError> {
        for ((name, saved), (_, now)) in self.settings.iter().zip(settings_of(config, shape)) {
            if *saved != now {
                return Err(RestoreError::Setting {
                    name: name.clone(),
                    saved: saved.clone(),
                    now,
                });
            }
        }
        Ok(())
    }
}

/// The names [`settings_of`] gives, in its order.
const SETTING_NAMES: [&str; 11] = [
    "layout",
    "header_size",
    "memory_limit",
    "page_size",
    "slab_chunk_max",
    "item_size_max",
    "min_chunk",
    "growth_factor",
    "use_cas",
    "classes",
    "arena_bytes",
];

/// A 64-bit checksum of `bytes`: four lanes, each word mixed in by steps that are each
/// one-to-one, so changing any single 8-byte word always changes the result. Not
/// cryptographic: it guards against damage, not against someone forging a file.
pub fn checksum(bytes: &[u8]) -> u64 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut lanes = [K, K.rotate_left(16), K.rotate_left(32), K.rotate_left(48)];
    let mut blocks = bytes.chunks_exact(32);
    for block in &mut blocks {
        for (lane, word) in lanes.iter_mut().zip(block.chunks_exact(8)) {
            let w = u64::from_le_bytes(word.try_into().unwrap_or_default());
            *lane = (*lane ^ w).wrapping_mul(K).rotate_left(31);
        }
    }
    let mut h = bytes.len() as u64;
    for &b in blocks.remainder() {
        h = (h ^ u64::from(b)).wrapping_mul(K);
    }
    for lane in lanes {
        h = (h ^ lane).wrapping_mul(K).rotate_left(27);
    }
    h ^ (h >> 29)
}

impl Cache {
    /// The checksum of the given pages of the arena, read on a few threads. Order does not
    /// matter (each page's sum is mixed with its number and the results added).
    ///
    /// Called only while no other thread uses the cache (see `Arena::bytes`).
    pub(crate) fn data_checksum(&self, pages: &[usize]) -> u64 {
        let page_size = self.config.page_size;
        let sum_of = |pages: &[usize]| -> u64 {
            pages.iter().fold(0u64, |acc, &p| {
                // SAFETY: no other thread uses the cache during a save or a restore (this
                // function's contract), so nothing writes the page while it is read.
                let bytes = unsafe { self.arena.bytes(p * page_size, page_size) };
                let mixed = (checksum(bytes) ^ (p as u64).wrapping_mul(0xA24B_AED4_963E_E407))
                    .wrapping_mul(0x9FB2_1C65_1E98_DF25);
                acc.wrapping_add(mixed ^ (mixed >> 32))
            })
        };
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, 4);
        if threads == 1 || pages.len() < 64 {
            return sum_of(pages);
        }
        let per = pages.len().div_ceil(threads);
        std::thread::scope(|s| {
            let handles: Vec<_> = pages
                .chunks(per)
                .map(|part| s.spawn(move || sum_of(part)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_default())
                .fold(0u64, u64::wrapping_add)
        })
    }

    /// Whether the arena is a memory file's map (a warm restart is possible).
    pub fn is_file_backed(&self) -> bool {
        self.arena.is_file_backed()
    }

    /// Finish background work and describe the cache for a warm restart: call once no
    /// other thread uses the cache any more (the server's workers and maintenance thread
    /// have stopped), then write the snapshot next to the memory file. `now` is the cache
    /// time (for a page move that must finish). The memory file is synced first.
    pub fn snapshot(&self, now: u32) -> Result<Snapshot, SaveError> {
        if !self.arena.is_file_backed() {
            return Err(SaveError::NotFileBacked);
        }
        if !self.settle_moves(now) {
            return Err(SaveError::MoveUnfinished);
        }
        let shape = Shape {
            classes: self.classes.clone(),
            pages: 0,
            total_pages: self.page_class.len(),
        };
        let settings = settings_of(&self.config, &shape);
        let (pool_free, pool_released, next_fresh, granted) = {
            let pool = lock(&self.pool);
            (
                pool.free.clone(),
                pool.released.clone(),
                pool.next_fresh,
                pool.granted,
            )
        };
        let mut classes = Vec::with_capacity(self.classes.len());
        let mut items = 0;
        let mut carved_pages = Vec::new();
        for id in 1..=self.classes.len() {
            let cs = lock(&self.class_state[id]);
            items += cs.items;
            carved_pages.extend(cs.pages.iter().filter(|p| !cs.pending.contains(p)));
            classes.push(ClassPages {
                pages: cs.pages.clone(),
                pending: cs.pending.clone(),
                carve: cs.carve,
            });
        }
        let stripe_buckets = self.stripes.iter().map(|s| lock(s).buckets.len()).collect();
        let data_checksum = self.data_checksum(&carved_pages);
        let _ = self.arena.sync();
        use std::sync::atomic::Ordering::Relaxed;
        Ok(Snapshot {
            settings,
            next_cas: self.next_cas.load(Relaxed),
            flush_below_cas: self.flush_below_cas.load(Relaxed),
            flush_at: self.flush_at.load(Relaxed),
            flush_second: self.flush_second.load(Relaxed),
            flush_clear_cas: self.flush_clear_cas.load(Relaxed),
            pool_free,
            pool_released,
            next_fresh,
            granted,
            classes,
            stripe_buckets,
            marks: self.write_marks.to_vec(),
            items,
            data_checksum,
        })
    }
}

/// Stripes the index has (what a snapshot's `stripes` line must list).
pub(crate) const STRIPE_COUNT: usize = STRIPES;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_sees_any_changed_word() {
        let mut bytes = vec![0u8; 4096];
        let base = checksum(&bytes);
        for at in [0, 7, 8, 1000, 4095] {
            bytes[at] ^= 1;
            assert_ne!(checksum(&bytes), base, "flip at {at}");
            bytes[at] ^= 1;
        }
        assert_eq!(checksum(&bytes), base);
        assert_ne!(checksum(&bytes[..4095]), base);
    }
}
