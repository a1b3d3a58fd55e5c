//! The item arena: one memory map, cut into pages and chunks: anonymous, or (for a warm
//! restart, memcached's `-e`) a shared map of a memory file, so the items outlive the
//! process (see the `restart` module).
//!
//! This module and [`crate::item`]'s header type are the only places that turn an offset
//! into a pointer. Everything else names memory by [`ChunkRef`], a 32-bit index, so the
//! links of the hash chains and LRU lists are plain integers that can never dangle into
//! freed heap memory: the map lives as long as the cache.
//!
//! ```text
//!   arena (memory_limit bytes, mapped once, touched lazily so RSS follows use)
//!   +-----------+-----------+-----------+-- ... --+
//!   |  page 0   |  page 1   |  page 2   |         |     page_size bytes each (1 MiB default)
//!   +-----------+-----------+-----------+-- ... --+
//!   page k belongs to one slab class and is an array of chunks of that class's size:
//!   +--------+--------+--------+-- ... --+
//!   | chunk  | chunk  | chunk  |         |   chunk = 32-byte ItemHeader, key, value
//!   +--------+--------+--------+-- ... --+
//! ```
//!
//! A `ChunkRef` is `offset / unit + 1`, so 0 can mean "none" in link fields. The unit is 8
//! bytes (chunk sizes are multiples of it) up to a 32 GiB arena, which 32 bits address;
//! a larger arena doubles the unit as often as it needs, up to [`MAX_ARENA_BYTES`]
//! (chunk sizes are then rounded to the larger unit), so the 32-byte item header keeps its
//! 32-bit links whatever `-m` is.

use std::fs::File;
use std::path::Path;

use crate::item::ItemHeader;
use memmap2::{MmapMut, MmapOptions};

/// The smallest unit of chunk sizes and offsets, and of a `ChunkRef` (the unit grows with
/// the arena, see the module docs).
pub const CHUNK_ALIGN: usize = 8;

/// The largest arena: 4 TiB, named with 32-bit `ChunkRef`s in units of 1 KiB.
pub const MAX_ARENA_BYTES: usize = 1 << 42;

/// The unit of `ChunkRef`s for an arena of `bytes`: the smallest power of two, at least
/// [`CHUNK_ALIGN`], with which 32 bits (less the null link) name every byte.
pub fn unit_for(bytes: usize) -> usize {
    bytes
        .div_ceil(u32::MAX as usize - 1)
        .next_power_of_two()
        .max(CHUNK_ALIGN)
}

/// Index of a chunk in the arena: `offset / CHUNK_ALIGN + 1`; 0 is the null link.
pub type ChunkRef = u32;

/// The null link in hash chains, LRU lists and free lists.
pub const NIL: ChunkRef = 0;

/// The mapped memory. Chunk contents are shared between threads; who may touch which bytes
/// when is decided by the cache's lock protocol (see the crate docs), not by this type.
pub struct Arena {
    /// Keeps the mapping alive and gives pages back ([`Arena::release`]); item access goes
    /// through `base`.
    map: MmapMut,
    /// Start of the mapping, taken once from a mutable borrow so writes through it are allowed.
    base: *mut u8,
    len: usize,
    /// log2 of the `ChunkRef` unit.
    unit_shift: u32,
    /// The memory file of a file-backed arena, kept open (and locked) while it is mapped.
    file: Option<File>,
}

/// How a memory file was found when the arena was mapped over it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileState {
    /// Its contents were kept, as asked.
    Kept,
    /// It was (re)created empty: asked to, or its size was not the arena's.
    Cleared { size_was: Option<u64> },
}

// SAFETY: Arena is a pointer into a mapping it owns. Headers are atomics; payload access is
// through `unsafe fn`s whose contracts forbid concurrent conflicting access.
unsafe impl Send for Arena {}
// SAFETY: as for Send: shared use only reaches memory through atomics or the unsafe payload
// accessors, whose callers guarantee exclusive writers.
unsafe impl Sync for Arena {}

impl Arena {
    /// Map `bytes` of anonymous, zero-filled memory. Pages are only backed when first written.
    /// `huge_pages` asks for transparent huge pages (`-L`).
    pub fn new(bytes: usize, huge_pages: bool) -> std::io::Result<Arena> {
        // No swap reservation: the map is sized for the limit plus a spare page per class
        // and only what is written is ever backed, so reserving all of it up front would
        // refuse large `-m` values for memory that is never used.
        let map = MmapOptions::new()
            .len(bytes.max(1))
            .no_reserve_swap()
            .map_anon()?;
        // With -L, transparent huge pages where the kernel offers them (THP "madvise"
        // mode): fewer TLB misses for gets that touch random places in the arena, but each
        // first write backs 2 MiB at once, and with the kernel's default defrag setting that
        // write waits for compaction: p99.9 of new-key sets went from ~1 ms to ~20 ms at
        // 50k sets/s (docs/performance.md). memcached's -L likewise asks for large pages.
        // Failure (no THP) changes nothing else.
        #[cfg(target_os = "linux")]
        if huge_pages {
            let _ = map.advise(memmap2::Advice::HugePage);
        }
        #[cfg(not(target_os = "linux"))]
        let _ = huge_pages;
        Ok(Arena::from_map(map, None))
    }

    /// Map `bytes` of the memory file at `path`, shared, so what is written survives the
    /// process. With `keep` the file's contents are kept if it has exactly this size;
    /// otherwise (or without `keep`) it is emptied first, so the arena reads as zeros.
    /// The file is locked (`flock`) against a second server using it at the same time.
    pub fn open_file(path: &Path, bytes: usize, keep: bool) -> std::io::Result<(Arena, FileState)> {
        use std::os::unix::fs::OpenOptionsExt;
        let bytes = bytes.max(1);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)?;
        lock_exclusive(&file)?;
        let size = file.metadata()?.len();
        let state = if keep && size == bytes as u64 {
            FileState::Kept
        } else {
            // Truncating to 0 first drops every old byte (on tmpfs, frees the memory).
            file.set_len(0)?;
            file.set_len(bytes as u64)?;
            FileState::Cleared {
                size_was: keep.then_some(size),
            }
        };
        // No MAP_POPULATE: on tmpfs it would back every hole of the file with memory; the
        // restore reads only the pages that hold chunks.
        let mut options = MmapOptions::new();
        options.len(bytes);
        // SAFETY: the file is locked against other slabcached processes; another program
        // changing it under us is outside what a memory file supports (as with memcached).
        // Item memory is only reached through the pointers below, as for the anonymous map.
        let map = unsafe { options.map_mut(&file)? };
        Ok((Arena::from_map(map, Some(file)), state))
    }

    fn from_map(mut map: MmapMut, file: Option<File>) -> Arena {
        let base = map.as_mut_ptr();
        let len = map.len();
        let unit_shift = unit_for(len).trailing_zeros();
        Arena {
            map,
            base,
            len,
            unit_shift,
            file,
        }
    }

    /// Whether the arena is a memory file's map.
    pub fn is_file_backed(&self) -> bool {
        self.file.is_some()
    }

    /// Write the map's dirty pages to its file (a no-op for an anonymous map, and
    /// nearly one on tmpfs).
    pub fn sync(&self) -> std::io::Result<()> {
        if self.file.is_some() {
            self.map.flush()?;
        }
        Ok(())
    }

    /// Whether `len` bytes from the start of `chunk` lie inside the arena: for chunk
    /// references read from a memory file, which must be checked before use.
    pub fn contains(&self, chunk: ChunkRef, len: usize) -> bool {
        chunk != NIL
            && (chunk as usize - 1)
                .checked_shl(self.unit_shift)
                .and_then(|offset| offset.checked_add(len))
                .is_some_and(|end| end <= self.len)
    }

    /// `len` bytes of the arena from `offset`, for reading.
    ///
    /// # Safety
    /// No thread may write these bytes while the slice lives: the restart code reads
    /// whole pages while no other thread uses the cache (before it is shared, or after
    /// every worker stopped).
    pub unsafe fn bytes(&self, offset: usize, len: usize) -> &[u8] {
        assert!(offset.checked_add(len).is_some_and(|end| end <= self.len));
        // SAFETY: in bounds (checked above); no concurrent writer by the contract.
        unsafe { std::slice::from_raw_parts(self.base.add(offset), len) }
    }

    /// Chunk sizes and offsets are multiples of this.
    pub fn unit(&self) -> usize {
        1 << self.unit_shift
    }

    /// The chunk that starts at byte `offset` (a multiple of [`Arena::unit`]).
    pub fn chunk_at(&self, offset: usize) -> ChunkRef {
        debug_assert_eq!(offset % self.unit(), 0);
        (offset >> self.unit_shift) as ChunkRef + 1
    }

    /// Byte offset of a chunk.
    pub fn offset_of(&self, chunk: ChunkRef) -> usize {
        debug_assert_ne!(chunk, NIL);
        (chunk as usize - 1) << self.unit_shift
    }

    fn check(&self, chunk: ChunkRef, len: usize) -> usize {
        let offset = self.offset_of(chunk);
        assert!(
            chunk != NIL && offset + len <= self.len,
            "chunk {chunk} (+{len} bytes) outside the arena"
        );
        offset
    }

    /// Give the memory of `len` bytes from `offset` back to the kernel; they read as zeros
    /// when next touched. Used for pages that left every class (a lowered memory limit).
    /// Out-of-range requests are ignored.
    pub fn release(&self, offset: usize, len: usize) {
        if offset.checked_add(len).is_none_or(|end| end > self.len) {
            return;
        }
        // A shared file map keeps its file's pages on DONTNEED: only REMOVE (a hole
        // punched in the file) gives a tmpfs file's memory back.
        #[cfg(target_os = "linux")]
        let advice = if self.file.is_some() {
            memmap2::UncheckedAdvice::Remove
        } else {
            memmap2::UncheckedAdvice::DontNeed
        };
        #[cfg(target_os = "linux")]
        // SAFETY: the cache calls this only for a page that no class, free list, LRU or
        // index reaches (it was taken off its class and is in the pool's hands), so no
        // reference into these bytes is live, and zeroed bytes are valid for every type
        // the arena holds (atomics and plain bytes).
        let _ = unsafe { self.map.unchecked_advise_range(advice, offset, len) };
    }

    /// Ask the CPU to start loading the first [`PREFETCH_BYTES`] of a chunk: the header, the
    /// key and a small value, which a get reads one after the other. A hint only:
    /// out-of-range chunks are ignored.
    pub fn prefetch(&self, chunk: ChunkRef) {
        if chunk == NIL || self.offset_of(chunk) >= self.len {
            return;
        }
        let start = self.base.wrapping_add(self.offset_of(chunk));
        for line in (0..PREFETCH_BYTES).step_by(64) {
            prefetch_line(start.wrapping_add(line));
        }
    }

    /// The header of a chunk. All header fields are atomics, so sharing the reference
    /// between threads is sound whatever the lock protocol does.
    pub fn header(&self, chunk: ChunkRef) -> &ItemHeader {
        let offset = self.check(chunk, std::mem::size_of::<ItemHeader>());
        // SAFETY: `check` proved the header lies inside the map; offsets are multiples of 8
        // into a page-aligned map, which satisfies ItemHeader's alignment (4). The map is
        // zero-initialised and every bit pattern is valid for atomics. Only atomic operations
        // are done through the reference, so concurrent use is free of data races. The
        // reference cannot outlive the map because it borrows `self`.
        unsafe { &*(self.base.add(offset) as *const ItemHeader) }
    }

    /// The `len` payload bytes (key then value) after a chunk's header, for reading.
    ///
    /// # Safety
    /// No thread may write these bytes while the returned slice lives. The cache upholds
    /// this: payload bytes are written into a chunk just taken from a free list (owned by one
    /// thread), or, for the value bytes of a linked item, by a holder of the lock of the
    /// stripe that indexes it; a chunk is only freed by a thread holding that stripe lock.
    /// Readers of value bytes hold the stripe lock; readers under the class lock alone read
    /// only the key, which never changes while the item is linked.
    pub unsafe fn payload(&self, chunk: ChunkRef, len: usize) -> &[u8] {
        let start = self.check(chunk, ItemHeader::SIZE + len) + ItemHeader::SIZE;
        // SAFETY: in bounds by `check`; no concurrent writer by this function's contract.
        unsafe { std::slice::from_raw_parts(self.base.add(start), len) }
    }

    /// `len` payload bytes from byte `from` of a linked chunk's payload, for rewriting in
    /// place (a value overwritten by a store of the same key into the same class).
    ///
    /// # Safety
    /// No other thread may read or write these bytes while the returned slice lives. The
    /// cache calls this with the stripe lock of the chunk's key held, for value bytes only:
    /// every reader of value bytes holds that lock, and readers under the class lock alone
    /// read only the key.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn payload_range_mut(&self, chunk: ChunkRef, from: usize, len: usize) -> &mut [u8] {
        let start = self.check(chunk, ItemHeader::SIZE + from + len) + ItemHeader::SIZE + from;
        // SAFETY: in bounds by `check`; exclusive by this function's contract, and the map's
        // memory is writable and `base` came from a mutable borrow of the map.
        unsafe { std::slice::from_raw_parts_mut(self.base.add(start), len) }
    }

    /// The `len` payload bytes after a chunk's header, for writing.
    ///
    /// # Safety
    /// The caller must own the chunk exclusively: it was just taken from a free list or a
    /// fresh page and is not yet reachable from any index, LRU or free list, so no other
    /// thread reads or writes its payload while the returned slice lives.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn payload_mut(&self, chunk: ChunkRef, len: usize) -> &mut [u8] {
        let start = self.check(chunk, ItemHeader::SIZE + len) + ItemHeader::SIZE;
        // SAFETY: in bounds by `check`; exclusive by this function's contract, and the map's
        // memory is writable and `base` came from a mutable borrow of the map.
        unsafe { std::slice::from_raw_parts_mut(self.base.add(start), len) }
    }
}

/// Lock `file` for this process alone (released when it is closed), or fail at once.
fn lock_exclusive(file: &File) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a descriptor this function's caller owns; no memory is involved.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        return Err(std::io::Error::new(
            e.kind(),
            format!("memory file is in use by another process ({e})"),
        ));
    }
    Ok(())
}

/// How much of an item [`Arena::prefetch`] asks for: chunks are 8-byte aligned, so a 32-byte
/// header, a 20-byte key and a 100-byte value can touch four 64-byte lines.
const PREFETCH_BYTES: usize = 256;

/// Start loading the cache line holding `p` into all cache levels.
pub(crate) fn prefetch_line<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint that never faults and has no architectural effect, so any
    // address, even an unmapped one, is allowed.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast::<i8>())
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}
