//! Who owns each page: a slab class, the global page pool (memcached's class 0), or
//! nobody yet.
//!
//! The arena is mapped once, larger than `-m` by one page per class: memcached lets a
//! class that has no page take its first one even when the limit is reached (otherwise
//! a size nobody stored before could never be stored), and so do we. Pages are handed
//! out in this order: a page from the pool, then (below the limit) a page given back to
//! the kernel earlier, then a never-touched one. A page that leaves a class goes to the
//! pool, or back to the kernel (`MADV_DONTNEED`) while more memory is held than the
//! limit allows, which is how a lowered `cache_memlimit` gives memory back.

use crate::arena::Arena;

/// The page bookkeeping, under the cache's pool lock (a leaf: taken under a class lock,
/// never the other way round).
#[derive(Debug, Default)]
pub(crate) struct PagePool {
    /// Backed pages that belong to no class (`slab_global_page_pool`).
    pub free: Vec<usize>,
    /// Pages given back to the kernel, to be reused before fresh ones.
    pub released: Vec<usize>,
    /// The next never-used page.
    pub next_fresh: usize,
    /// Pages the arena has (the limit plus one spare per class).
    pub total: usize,
    /// Pages held by classes.
    pub in_classes: usize,
    /// First pages granted over the limit: they raise the cap for good, as in memcached,
    /// where such pages stay allocated.
    pub granted: usize,
    /// Pages counted as held without being in the arena (`CacheConfig::preaccounted`).
    pub phantom: usize,
}

impl PagePool {
    pub fn new(total: usize, phantom: usize) -> PagePool {
        PagePool {
            total,
            phantom,
            ..PagePool::default()
        }
    }

    /// Pages that count against the limit: in classes, in the pool, or preaccounted.
    pub fn malloced(&self) -> usize {
        self.in_classes + self.free.len() + self.phantom
    }

    /// A page for a class. `limit` is the page limit in force; `first` says the class has
    /// no page yet, which may go over the limit (memcached's rule).
    pub fn take(&mut self, limit: usize, first: bool) -> Option<usize> {
        let page = match self.free.pop() {
            Some(page) => page,
            None => {
                // Only memory beyond the limit is a grant; a pooled page is already counted.
                let over = self.malloced() >= limit + self.granted;
                if over && !first {
                    return None;
                }
                let page = self.released.pop().or_else(|| {
                    (self.next_fresh < self.total).then(|| {
                        self.next_fresh += 1;
                        self.next_fresh - 1
                    })
                })?;
                if over {
                    self.granted += 1;
                }
                page
            }
        };
        self.in_classes += 1;
        Some(page)
    }

    /// Whether more pages hold memory than `limit` (and the grants) allow.
    pub fn over(&self, limit: usize) -> bool {
        self.malloced() > limit + self.granted
    }

    /// Take a page from the pool only (a move from class 0).
    pub fn take_pooled(&mut self) -> Option<usize> {
        let page = self.free.pop()?;
        self.in_classes += 1;
        Some(page)
    }

    /// A page a class gave up: into the pool, or back to the kernel while over `limit`.
    pub fn give(&mut self, page: usize, limit: usize, arena: &Arena, page_size: usize) {
        self.in_classes -= 1;
        if self.malloced() >= limit + self.granted {
            arena.release(page * page_size, page_size);
            self.released.push(page);
        } else {
            self.free.push(page);
        }
    }

    /// Give pooled pages back to the kernel until at most `limit` pages hold memory.
    pub fn trim(&mut self, limit: usize, arena: &Arena, page_size: usize) {
        while self.over(limit) {
            let Some(page) = self.free.pop() else { break };
            arena.release(page * page_size, page_size);
            self.released.push(page);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::PagePool;

    #[test]
    fn a_first_page_from_the_pool_is_no_grant() {
        let mut p = PagePool::new(10, 0);
        for _ in 0..4 {
            p.take(4, false).unwrap();
        }
        assert_eq!(p.take(4, false), None, "at the limit");
        // A class with no page may go over: a grant.
        let granted = p.take(4, true).unwrap();
        assert_eq!((p.granted, p.malloced()), (1, 5));
        // A page back in the pool and taken again as a first page: no new grant.
        p.in_classes -= 1;
        p.free.push(granted);
        p.take(4, true).unwrap();
        assert_eq!((p.granted, p.malloced()), (1, 5));
    }
}
