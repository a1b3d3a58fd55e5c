//! Slab classes: the ladder of chunk sizes, memcached-style.
//!
//! Class 1's chunk holds a header plus `min_chunk` bytes of key and value (`-n`, 48 by
//! default); class k's chunk is `base * growth_factor^(k-1)` (`-f`, 1.25) rounded up to 8
//! bytes, until a chunk would pass `chunk_max / growth_factor`; the last class's chunk is
//! `chunk_max` (`-o slab_chunk_max`, half a page by default), the unit of chained items.
//! Class ids start at 1 as in memcached's `stats slabs`.
//!
//! memcached multiplies the previous *rounded* size, so its rounding compounds and its
//! classes drift apart faster than the factor says; taking powers of the factor from the
//! base keeps every class within 8 bytes of the geometric ladder, which wastes less of
//! each chunk (e.g. a 100-byte value with a short key lands in a 160-byte chunk, not 176).

use crate::arena::CHUNK_ALIGN;
use crate::item::ItemHeader;

/// memcached's limit on slab classes (ids 1..=63).
pub const MAX_CLASSES: usize = 63;

/// The chunk size of every class, index 0 = class 1.
#[derive(Debug, Clone)]
pub struct ClassTable {
    sizes: Vec<usize>,
    page_size: usize,
}

fn align_up(n: usize) -> usize {
    n.div_ceil(CHUNK_ALIGN) * CHUNK_ALIGN
}

impl ClassTable {
    pub fn new(min_chunk: usize, growth_factor: f64, chunk_max: usize, page_size: usize) -> ClassTable {
        let mut sizes: Vec<usize> = Vec::new();
        let base = (ItemHeader::SIZE + min_chunk.max(1)) as f64;
        let mut ideal = base;
        while sizes.len() < MAX_CLASSES - 1 {
            let mut size = align_up(ideal as usize);
            if let Some(&last) = sizes.last() {
                // A factor close to 1 must still make progress.
                size = size.max(last + CHUNK_ALIGN);
            }
            if size as f64 > chunk_max as f64 / growth_factor {
                break;
            }
            sizes.push(size);
            ideal *= growth_factor;
        }
        sizes.push(chunk_max);
        ClassTable { sizes, page_size }
    }

    /// Number of classes.
    pub fn len(&self) -> usize {
        self.sizes.len()
    }

    /// Chunk size of class `id` (1-based).
    pub fn chunk_size(&self, id: usize) -> usize {
        self.sizes[id - 1]
    }

    /// Chunks that fit in one page of class `id`.
    pub fn chunks_per_page(&self, id: usize) -> usize {
        self.page_size / self.chunk_size(id)
    }

    /// The smallest class whose chunks hold `total` bytes, if any.
    pub fn class_for(&self, total: usize) -> Option<usize> {
        if total > *self.sizes.last()? {
            return None;
        }
        let idx = self.sizes.partition_point(|&s| s < total);
        (idx < self.sizes.len()).then_some(idx + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ladder_grows_by_factor_and_ends_at_page() {
        let t = ClassTable::new(48, 1.25, 1 << 20, 1 << 20);
        assert_eq!(t.chunk_size(1), 80);
        assert_eq!(t.chunk_size(2), 104);
        assert_eq!(t.chunk_size(3), 128);
        assert_eq!(t.chunk_size(4), 160);
        assert_eq!(t.chunk_size(t.len()), 1 << 20);
        for id in 2..t.len() {
            assert!(t.chunk_size(id) > t.chunk_size(id - 1));
            assert_eq!(t.chunk_size(id) % 8, 0);
        }
        assert!(t.len() <= MAX_CLASSES);
    }

    #[test]
    fn class_for_picks_smallest_fit() {
        let t = ClassTable::new(48, 1.25, 1 << 20, 1 << 20);
        assert_eq!(t.class_for(1), Some(1));
        assert_eq!(t.class_for(80), Some(1));
        assert_eq!(t.class_for(81), Some(2));
        assert_eq!(t.class_for(1 << 20), Some(t.len()));
        assert_eq!(t.class_for((1 << 20) + 1), None);
    }

    #[test]
    fn tiny_factor_is_capped() {
        let t = ClassTable::new(48, 1.01, 1 << 20, 1 << 20);
        assert_eq!(t.len(), MAX_CLASSES);
    }
}
