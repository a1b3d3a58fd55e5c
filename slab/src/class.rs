//! Slab classes: the ladder of chunk sizes, memcached's to the byte.
//!
//! Class 1's chunk is memcached's 48-byte item header plus `-n` (48 by default); each next
//! class is the previous size times `-f` (1.25), truncated, then rounded up to 8 bytes,
//! until a chunk would reach `chunk_max / growth_factor`; the last class's chunk is
//! `chunk_max` (`-o slab_chunk_max`, half a page by default), the unit of chained items.
//! Class ids start at 1 as in memcached's `stats slabs`.
//!
//! So class ids and chunk sizes are memcached's: `slabs reassign 17 0`, `stats items`
//! readers and memcached's own tests address the same sizes on both servers. Our items
//! are 16 bytes smaller (32-byte header against 48), so a class holds slightly larger
//! items here. (An earlier ladder of exact powers of `-f` from our own header kept 1.50x
//! memcached's items per MB at 30-byte values against 1.25x now, but 1.20x at 100 bytes
//! against 1.26x now, and it named different sizes by the same class id.)

/// memcached's item header (with CAS) on 64-bit builds: where its class ladder starts.
const MEMCACHED_ITEM_HEADER: usize = 48;

/// memcached's limit on slab classes (ids 1..=63).
pub const MAX_CLASSES: usize = 63;

/// The chunk size of every class, index 0 = class 1.
#[derive(Debug, Clone)]
pub struct ClassTable {
    sizes: Vec<usize>,
    page_size: usize,
}

impl ClassTable {
    /// The ladder for chunks aligned to `align` bytes (the arena's unit, 8 below 32 GiB).
    pub fn new(
        min_chunk: usize,
        growth_factor: f64,
        chunk_max: usize,
        page_size: usize,
        align: usize,
    ) -> ClassTable {
        // memcached's ladder, to the byte: it starts at its own 48-byte item header plus
        // `-n`, multiplies the previous (rounded) size by the factor, truncates, and rounds
        // up to 8. Our items are 16 bytes smaller, so each class holds items a little larger
        // than memcached's same class, and class ids mean the same sizes on both servers.
        let mut sizes: Vec<usize> = Vec::new();
        let mut size = (MEMCACHED_ITEM_HEADER + min_chunk.max(1)) as u32;
        while sizes.len() < MAX_CLASSES - 1 {
            if f64::from(size) >= chunk_max as f64 / growth_factor {
                break;
            }
            size = size.div_ceil(align as u32) * align as u32;
            if let Some(&last) = sizes.last() {
                // A factor close to 1 must still make progress.
                size = size.max((last + align) as u32);
            }
            sizes.push(size as usize);
            size = (f64::from(size) * growth_factor) as u32;
        }
        sizes.push(chunk_max);
        ClassTable { sizes, page_size }
    }

    /// `-o slab_sizes`: the given sizes rounded up to `align` (memcached rounds to 8), a
    /// size that rounds onto the one before dropped, then `chunk_max` as the last class.
    pub fn from_sizes(given: &[usize], chunk_max: usize, page_size: usize, align: usize) -> ClassTable {
        let mut sizes: Vec<usize> = Vec::new();
        for &size in given.iter().take(MAX_CLASSES - 1) {
            let size = size.div_ceil(align) * align;
            if sizes.last().is_none_or(|&last| size > last) {
                sizes.push(size);
            }
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
    fn given_sizes_are_rounded_and_end_at_chunk_max() {
        // memcached 1.6.18's `-vv` with `-o slab_sizes=100-200-300`: 104, 200, 304, 524288.
        let t = ClassTable::from_sizes(&[100, 200, 300], 1 << 19, 1 << 20, 8);
        assert_eq!(t.len(), 4);
        assert_eq!(
            (t.chunk_size(1), t.chunk_size(2), t.chunk_size(3)),
            (104, 200, 304)
        );
        assert_eq!(t.chunk_size(4), 1 << 19);
        assert_eq!(t.class_for(201), Some(3));
        // A coarser arena unit may round two sizes together: the second goes.
        let coarse = ClassTable::from_sizes(&[100, 110, 300], 1 << 19, 1 << 20, 256);
        assert_eq!(coarse.len(), 3);
    }

    #[test]
    fn ladder_grows_by_factor_and_ends_at_page() {
        let t = ClassTable::new(48, 1.25, 1 << 19, 1 << 20, 8);
        // memcached 1.6.18's `-vv` ladder with -n 48 -f 1.25.
        assert_eq!(t.chunk_size(1), 96);
        assert_eq!(t.chunk_size(2), 120);
        assert_eq!(t.chunk_size(3), 152);
        assert_eq!(t.chunk_size(17), 3632);
        assert_eq!(t.chunk_size(31), 82792);
        assert_eq!(t.chunk_size(38), 394840);
        assert_eq!(t.len(), 39);
        assert_eq!(t.chunk_size(t.len()), 1 << 19);
        for id in 2..t.len() {
            assert!(t.chunk_size(id) > t.chunk_size(id - 1));
            assert_eq!(t.chunk_size(id) % 8, 0);
        }
        assert!(t.len() <= MAX_CLASSES);
    }

    #[test]
    fn class_for_picks_smallest_fit() {
        let t = ClassTable::new(48, 1.25, 1 << 19, 1 << 20, 8);
        assert_eq!(t.class_for(1), Some(1));
        assert_eq!(t.class_for(96), Some(1));
        assert_eq!(t.class_for(97), Some(2));
        assert_eq!(t.class_for(1 << 19), Some(t.len()));
        assert_eq!(t.class_for((1 << 19) + 1), None);
    }

    #[test]
    fn tiny_factor_is_capped() {
        let t = ClassTable::new(48, 1.01, 1 << 20, 1 << 20, 8);
        assert_eq!(t.len(), MAX_CLASSES);
    }

    #[test]
    fn a_larger_unit_rounds_every_class_to_it() {
        let t = ClassTable::new(48, 1.25, 1 << 19, 1 << 20, 256);
        assert_eq!(t.chunk_size(1), 256);
        for id in 2..=t.len() {
            assert!(t.chunk_size(id) > t.chunk_size(id - 1));
            assert_eq!(t.chunk_size(id) % 256, 0);
        }
    }
}
