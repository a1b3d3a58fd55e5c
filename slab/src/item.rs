//! The 32-byte item header that opens every used chunk.
//!
//! memcached spends 48 bytes (56 with CAS) on its item header; this one is 32, CAS included:
//!
//! ```text
//!  offset size field        guarded by            meaning
//!   0      4   hash_next    stripe lock           next item in the same hash bucket
//!   4      4   lru_prev     class lock            towards the LRU head (newer)
//!   8      4   lru_next     class lock            towards the LRU tail (older); free-list link
//!  12      4   exptime      stripe lock           cache time it expires at, 0 = never
//!  16      4   client_flags stripe lock (fixed)   the 32-bit flags the client stored
//!  20      4   value_len    stripe lock           bytes of value (an overwrite in place changes it)
//!  24      4   cas_lo       stripe lock           CAS unique, low 32 bits
//!  28      2   cas_hi       stripe lock           CAS unique, high 15 bits (47 bits in all); top bit: HOT_BIT
//!  30      1   key_len      fixed while linked    1..=250
//!  31      1   bits         stripe lock           FETCHED ACCESSED STALE WIN_TOKEN KEY_BINARY LINKED CHAINED WARM
//!  32      key_len bytes of key, then value_len bytes of value (no trailing "\r\n")
//! ```
//!
//! The LRU segment an item is on (HOT, WARM, COLD or TEMP, see the `lru` module) is two
//! bits: WARM in `bits` and the top bit of `cas_hi` ([`Segment`]). Both change only with
//! the class and the stripe lock held, while the item is off the lists; CAS writes keep
//! the segment bit.
//!
//! The CAS unique is written with the item and changed in place only by a meta invalidation
//! (`md <key> I`), under the stripe lock; eviction reads it (flush check) with both locks.
//!
//! Every field is an atomic used with `Relaxed` ordering: the locks named above order the
//! accesses; atomics make it impossible for a lock-protocol slip to become a data race.
//! The class of a chunk is not stored: it is the class of the page the chunk is in.

use std::sync::atomic::{AtomicU16, AtomicU32, AtomicU8, Ordering::Relaxed};

/// Header bit: the item was read at least once since it was stored.
pub const FETCHED: u8 = 1;
/// Header bit: the item was read since it last passed the LRU tail (second chance).
pub const ACCESSED: u8 = 2;
/// Header bit: a meta invalidation (`md I`, or an `ms I` with an older cas) marked the
/// item stale; meta reads report it (`X`) until it is replaced.
pub const STALE: u8 = 4;
/// Header bit: a meta read was handed this item's recache token (`W`); later readers are
/// told so (`Z`) instead of winning it too.
pub const WIN_TOKEN_SENT: u8 = 8;
/// Header bit: the key arrived base64-encoded (meta `b`), so meta replies echo it encoded.
pub const KEY_BINARY: u8 = 16;
/// Header bit: the chunk holds an item that is in the index and on its class's LRU. Set
/// and cleared only with both the stripe and the class lock held, so the page mover, which
/// holds the class lock, can tell a linked item from a free or in-flight chunk.
pub const LINKED: u8 = 32;
/// Header bit: the item's value continues in data chunks (see the `chain` module).
pub const CHAINED: u8 = 64;
/// Header bit: one of the two bits naming the item's LRU segment (see [`Segment`]).
pub const WARM: u8 = 128;

/// The top bit of `cas_hi`: the other bit naming the LRU segment.
const SEGMENT_HI: u16 = 1 << 15;

/// The four LRU lists of a class (memcached's HOT, WARM, COLD and TEMP; see `lru`).
/// The discriminant indexes per-segment arrays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Segment {
    Hot = 0,
    Warm = 1,
    Cold = 2,
    Temp = 3,
}

impl Segment {
    pub const ALL: [Segment; 4] = [Segment::Hot, Segment::Warm, Segment::Cold, Segment::Temp];

    /// (WARM in `bits`, SEGMENT_HI in `cas_hi`): COLD is neither, so a header with both
    /// cleared names the list flat mode uses.
    fn encode(self) -> (bool, bool) {
        match self {
            Segment::Cold => (false, false),
            Segment::Warm => (true, false),
            Segment::Hot => (false, true),
            Segment::Temp => (true, true),
        }
    }

    fn decode(warm: bool, hi: bool) -> Segment {
        match (warm, hi) {
            (false, false) => Segment::Cold,
            (true, false) => Segment::Warm,
            (false, true) => Segment::Hot,
            (true, true) => Segment::Temp,
        }
    }
}

/// See the module docs for the layout.
#[repr(C)]
pub struct ItemHeader {
    pub hash_next: AtomicU32,
    pub lru_prev: AtomicU32,
    pub lru_next: AtomicU32,
    pub exptime: AtomicU32,
    pub client_flags: AtomicU32,
    pub value_len: AtomicU32,
    cas_lo: AtomicU32,
    cas_hi: AtomicU16,
    pub key_len: AtomicU8,
    pub bits: AtomicU8,
}

const _: () = assert!(std::mem::size_of::<ItemHeader>() == 32);
const _: () = assert!(std::mem::align_of::<ItemHeader>() <= crate::arena::CHUNK_ALIGN);

/// Largest CAS unique the header can hold (47 bits: `cas_hi`'s top bit is the segment's).
pub const CAS_MAX: u64 = (1 << 47) - 1;

impl ItemHeader {
    /// Header size in bytes.
    pub const SIZE: usize = std::mem::size_of::<ItemHeader>();

    /// Bytes a chunk must have to hold an item with this key and value.
    pub fn total_size(key_len: usize, value_len: usize) -> usize {
        Self::SIZE + key_len + value_len
    }

    pub fn cas(&self) -> u64 {
        let hi = self.cas_hi.load(Relaxed) & !SEGMENT_HI;
        u64::from(self.cas_lo.load(Relaxed)) | (u64::from(hi) << 32)
    }

    /// Set the CAS unique (at most [`CAS_MAX`]), keeping the segment bit.
    pub fn set_cas(&self, cas: u64) {
        self.cas_lo.store(cas as u32, Relaxed);
        let seg = self.cas_hi.load(Relaxed) & SEGMENT_HI;
        self.cas_hi
            .store(((cas >> 32) as u16 & !SEGMENT_HI) | seg, Relaxed);
    }

    /// The LRU list the item is on (meaningful while it is LINKED).
    pub fn segment(&self) -> Segment {
        Segment::decode(self.has_bit(WARM), self.cas_hi.load(Relaxed) & SEGMENT_HI != 0)
    }

    /// Name the item's LRU list (both locks held, item off the lists).
    pub fn set_segment(&self, seg: Segment) {
        let (warm, hi) = seg.encode();
        if warm {
            self.set_bit(WARM);
        } else {
            self.clear_bit(WARM);
        }
        let old = self.cas_hi.load(Relaxed);
        self.cas_hi
            .store(if hi { old | SEGMENT_HI } else { old & !SEGMENT_HI }, Relaxed);
    }

    pub fn key_len(&self) -> usize {
        usize::from(self.key_len.load(Relaxed))
    }

    pub fn value_len(&self) -> usize {
        self.value_len.load(Relaxed) as usize
    }

    /// Key and value bytes after the header.
    pub fn payload_len(&self) -> usize {
        self.key_len() + self.value_len()
    }

    pub fn has_bit(&self, bit: u8) -> bool {
        self.bits.load(Relaxed) & bit != 0
    }

    pub fn set_bit(&self, bit: u8) {
        // Only the stripe-lock holder writes `bits`, so load+store cannot lose an update
        // and is cheaper than fetch_or on the get path.
        let bits = self.bits.load(Relaxed);
        if bits & bit == 0 {
            self.bits.store(bits | bit, Relaxed);
        }
    }

    /// Note a read: the first marks the item FETCHED, later ones ACCESSED (memcached's
    /// ACTIVE, also set on the second fetch), which is what the LRU promotes, so an item
    /// read once after it was stored is not kept over items read repeatedly. True when
    /// this read made the item ACCESSED.
    pub fn mark_read(&self) -> bool {
        let bits = self.bits.load(Relaxed);
        if bits & FETCHED == 0 {
            self.bits.store(bits | FETCHED, Relaxed);
            false
        } else if bits & ACCESSED == 0 {
            self.bits.store(bits | ACCESSED, Relaxed);
            true
        } else {
            false
        }
    }

    pub fn clear_bit(&self, bit: u8) {
        let bits = self.bits.load(Relaxed);
        if bits & bit != 0 {
            self.bits.store(bits & !bit, Relaxed);
        }
    }

    /// A data chunk of a chained item (see the `chain` module): CHAINED with no key.
    /// Items, in flight or linked, always have a key.
    pub fn is_data_chunk(&self) -> bool {
        self.has_bit(CHAINED) && self.key_len() == 0
    }

    /// True when the item's time is up at cache time `now`.
    pub fn is_expired(&self, now: u32) -> bool {
        let exp = self.exptime.load(Relaxed);
        exp != 0 && exp <= now
    }
}
