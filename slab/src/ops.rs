//! The operations clients ask for, one entry each: `meta_get` (every read, touch included),
//! `store_with`, `delete_with`, `arith`, then flush_all, the memory limit and cachedump.
//! Each keyed one starts from the key's stripe lock. A store's decisions (modes, cas rules,
//! marks, counters) are written once, in `store_in_slot`, for both a value that is copied in
//! (`store_with`) and one written ahead into a reserved item (`intake`).

use std::sync::atomic::Ordering::Relaxed;

use crate::arena::NIL;
use crate::cache::*;
use crate::intake::Reservation;
use crate::item::{ItemHeader, ACCESSED, FETCHED, KEY_BINARY, STALE, WIN_TOKEN_SENT};

/// What a store asks for, besides its value.
pub(crate) struct StoreRequest<'k> {
    pub mode: StoreMode,
    pub key: &'k [u8],
    pub flags: u32,
    pub exptime: u32,
    pub now: u32,
    pub opts: StoreOptions,
}

/// The value of a store: bytes to copy, or an item already written (see `intake`).
pub(crate) enum Incoming<'v> {
    Bytes(&'v [u8]),
    Reserved(&'v mut Reservation),
}

impl Incoming<'_> {
    fn len(&self) -> usize {
        match self {
            Incoming::Bytes(v) => v.len(),
            Incoming::Reserved(r) => r.len(),
        }
    }
}

impl Cache {
    /// The meta protocol's read: look `key` up (or create it, see [`GetOptions::vivify`])
    /// and call `read` with the item under its stripe lock. `read` may change the expiry
    /// and token marks; the hit is counted and the item marked read afterwards, so `read`
    /// sees whether it had been fetched before.
    #[inline]
    pub fn meta_get<R>(
        &self,
        key: &[u8],
        now: u32,
        opts: GetOptions,
        read: impl FnOnce(&ItemView<'_>) -> R,
    ) -> Option<R> {
        match self.lookup(key, now, opts, read) {
            Lookup::Hit(r) => Some(r),
            _ => None,
        }
    }

    /// [`Cache::meta_get`], saying why a miss missed (memcached's `watch fetchers` tells
    /// an expired or flushed item from a missing one).
    pub fn lookup<R>(
        &self,
        key: &[u8],
        now: u32,
        opts: GetOptions,
        read: impl FnOnce(&ItemView<'_>) -> R,
    ) -> Lookup<R> {
        let Some(Slot {
            hash,
            idx,
            mut st,
            found,
        }) = self.lock_key(key, now)
        else {
            return Lookup::Missing;
        };
        let (found, miss) = match found {
            Found::Live(c) => (Some(c), Lookup::Missing),
            Found::Missing => (None, Lookup::Missing),
            Found::Expired => {
                self.get_expired.fetch_add(1, Relaxed);
                (None, Lookup::Expired)
            }
            Found::Flushed => {
                self.get_flushed.fetch_add(1, Relaxed);
                (None, Lookup::Flushed)
            }
        };
        let (c, created) = match found {
            Some(c) => (c, false),
            None if opts.vivify => {
                let Ok(c) = self.replace_with(&mut st, idx, hash, NIL, key, 0, 0, &[], now) else {
                    return Lookup::Missing;
                };
                (c, true)
            }
            None => return miss,
        };
        let h = self.header(c);
        let class = self.class_of(c);
        let view = ItemView {
            cache: self,
            chunk: c,
            key: self.key_of(c),
            value: self.value_of(c),
            flags: h.client_flags.load(Relaxed),
            cas: self.visible_cas(h.cas()),
            class,
            fetched: h.has_bit(FETCHED),
            created,
        };
        let r = read(&view);
        if opts.bump && h.mark_read() {
            self.lru_bump(c);
        }
        let counters = self.counters(class);
        match opts.counter {
            HitCounter::Get => counters.hits[h.segment() as usize].fetch_add(1, Relaxed),
            HitCounter::Touch => counters.touch_hits.fetch_add(1, Relaxed),
            HitCounter::None => 0,
        };
        Lookup::Hit(r)
    }

    /// [`Cache::store`] with the meta and binary protocols' extra conditions and marks
    /// (see [`StoreOptions`]).
    #[allow(clippy::too_many_arguments)]
    pub fn store_with(
        &self,
        mode: StoreMode,
        key: &[u8],
        flags: u32,
        exptime: u32,
        value: &[u8],
        now: u32,
        opts: StoreOptions,
    ) -> Result<u64, StoreError> {
        let mut slot = self.lock_key_for_store(key, now).ok_or(StoreError::BadKey)?;
        if !self.fits(key.len(), value.len()) {
            // memcached drops the old value when a set fails, so a client never reads data
            // older than its last write.
            if let (StoreMode::Set, Found::Live(old)) = (mode, &slot.found) {
                let old = *old;
                self.unlink(&mut slot.st, slot.hash, old, Unlink::Deleted);
            }
            return Err(StoreError::TooLarge);
        }
        let request = StoreRequest {
            mode,
            key,
            flags,
            exptime,
            now,
            opts,
        };
        self.store_in_slot(slot, request, Incoming::Bytes(value))
    }

    /// The decisions every store makes once its key's stripe is locked and the item is
    /// known to fit: which modes store over what is there, the cas rules, stale writes,
    /// the marks the new item starts with and the counters. `incoming` is the value: bytes
    /// to copy into a new item ([`Cache::store_with`]), or an item written ahead of time
    /// ([`crate::Reservation::commit`]), which is linked instead.
    // Inlined into its two callers, so the set path stays one function.
    #[inline(always)]
    pub(crate) fn store_in_slot(
        &self,
        slot: Slot<'_>,
        req: StoreRequest<'_>,
        mut incoming: Incoming<'_>,
    ) -> Result<u64, StoreError> {
        let Slot {
            hash,
            idx,
            mut st,
            found,
        } = slot;
        let StoreRequest {
            mode,
            key,
            flags,
            exptime,
            now,
            opts,
        } = req;
        let value_len = incoming.len();
        let old = match found {
            Found::Live(c) => c,
            _ => NIL,
        };
        // Bits the new item starts with besides KEY_BINARY (a stale cas write keeps some).
        let mut carried = 0u8;
        let mut link = |cache: &Cache, st: &mut Stripe, flags: u32, exptime: u32| match &mut incoming {
            Incoming::Bytes(value) => {
                cache.replace_with(st, idx, hash, old, key, flags, exptime, &[value], now)
            }
            Incoming::Reserved(r) => Ok(r.link(cache, st, hash, old, flags, exptime, now)),
        };
        let result = match mode {
            StoreMode::Set => link(self, &mut st, flags, exptime),
            StoreMode::Add if old != NIL => {
                // memcached refreshes the existing item's LRU position on a failed add.
                self.header(old).set_bit(ACCESSED);
                Err(StoreError::NotStored)
            }
            StoreMode::Add => link(self, &mut st, flags, exptime),
            StoreMode::Replace | StoreMode::Append | StoreMode::Prepend if old == NIL => {
                Err(StoreError::NotStored)
            }
            StoreMode::Replace => link(self, &mut st, flags, exptime),
            StoreMode::Append | StoreMode::Prepend => {
                // A value reserved ahead cannot be built from the old one (the server keeps
                // append and prepend on the buffered path).
                let Incoming::Bytes(value) = incoming else {
                    return Err(StoreError::NotStored);
                };
                let h = self.header(old);
                // A compare cas of 0 means "no condition", as in memcached; with CAS
                // disabled memcached's items cannot carry the request's cas, so it never
                // compares.
                let expected = if self.config.use_cas {
                    opts.compare_cas.unwrap_or(0)
                } else {
                    0
                };
                if expected != 0 && expected != self.visible_cas(h.cas()) {
                    Err(StoreError::Exists)
                } else {
                    let (old_flags, old_exp) = (h.client_flags.load(Relaxed), h.exptime.load(Relaxed));
                    // The old value may be a chain: its pieces are copied, never joined first.
                    let mut parts: Vec<&[u8]> = Vec::with_capacity(3);
                    if mode == StoreMode::Prepend {
                        parts.push(value);
                    }
                    parts.extend(self.value_of(old).parts());
                    if mode == StoreMode::Append {
                        parts.push(value);
                    }
                    self.replace_with(&mut st, idx, hash, old, key, old_flags, old_exp, &parts, now)
                        .map_err(|_| StoreError::NotStored)
                }
            }
            StoreMode::Cas(_) if old == NIL => Err(StoreError::NotFound),
            StoreMode::Cas(expected) => {
                let class = self.class_of(old);
                let h = self.header(old);
                let current = self.visible_cas(h.cas());
                // A unique of 0 never matches (always the case with CAS disabled), as in memcached.
                if expected != 0 && current == expected {
                    self.counters(class).cas_hits.fetch_add(1, Relaxed);
                    link(self, &mut st, flags, exptime)
                } else if opts.invalidate && expected != 0 && expected < current {
                    // meta's stale write: an older cas may still store, but the value is
                    // marked stale, keeps the old expiry and whether its token was handed out.
                    self.counters(class).cas_hits.fetch_add(1, Relaxed);
                    carried = STALE | (h.bits.load(Relaxed) & WIN_TOKEN_SENT);
                    let old_exp = h.exptime.load(Relaxed);
                    link(self, &mut st, flags, old_exp)
                } else {
                    self.counters(class).cas_badval.fetch_add(1, Relaxed);
                    Err(StoreError::Exists)
                }
            }
        };
        if mode == StoreMode::Set && result == Err(StoreError::OutOfMemory) && old != NIL {
            self.unlink(&mut st, hash, old, Unlink::Deleted);
        }
        let c = result?;
        let h = self.header(c);
        // memcached builds an appended value in a fresh item that does not inherit the
        // binary-key mark; every other mode stores the request's own item.
        if opts.key_binary && !matches!(mode, StoreMode::Append | StoreMode::Prepend) {
            carried |= KEY_BINARY;
        }
        if carried != 0 {
            h.bits.store(h.bits.load(Relaxed) | carried, Relaxed);
        }
        let class = self
            .classes
            .class_for(ItemHeader::total_size(key.len(), value_len))
            .unwrap_or(1);
        self.counters(class).cmd_set.fetch_add(1, Relaxed);
        Ok(self.visible_cas(h.cas()))
    }

    /// Delete with the meta and binary protocols' options: a cas that must match, or
    /// invalidation (mark stale, optionally re-expire) instead of removal.
    pub fn delete_with(&self, key: &[u8], now: u32, opts: DeleteOptions) -> DeleteResult {
        let Some(Slot {
            hash,
            idx: _,
            mut st,
            found,
        }) = self.lock_key(key, now)
        else {
            return DeleteResult::NotFound;
        };
        let c = match found {
            Found::Live(c) => c,
            _ => return DeleteResult::NotFound,
        };
        let h = self.header(c);
        if opts
            .compare_cas
            .is_some_and(|cas| cas != self.visible_cas(h.cas()))
        {
            return DeleteResult::Exists;
        }
        if opts.invalidate {
            if let Some(exptime) = opts.exptime {
                h.exptime.store(exptime, Relaxed);
            }
            h.set_bit(STALE);
            // The next reader wins the recache token again.
            h.clear_bit(WIN_TOKEN_SENT);
            // A new unique makes clients holding the old one fail their cas; it is never
            // below the flush mark, so the item cannot turn "flushed" by it.
            let cas = self.next_cas();
            h.set_cas(cas);
            self.write_marks.note(cas, now);
            return DeleteResult::Invalidated;
        }
        self.counters(self.class_of(c)).delete_hits.fetch_add(1, Relaxed);
        self.unlink(&mut st, hash, c, Unlink::Deleted);
        DeleteResult::Deleted
    }

    /// incr/decr with the meta and binary protocols' options: a cas that must match,
    /// creation of a missing item, and a new expiry applied with the change.
    pub fn arith(
        &self,
        key: &[u8],
        incr: bool,
        delta: u64,
        now: u32,
        opts: ArithOptions,
    ) -> Result<ArithDone, ArithError> {
        let Slot {
            hash,
            idx,
            mut st,
            found,
        } = self.lock_key(key, now).ok_or(ArithError::NotFound)?;
        let old = match found {
            Found::Live(c) => c,
            _ => {
                let Some((initial, exptime)) = opts.create else {
                    return Err(ArithError::NotFound);
                };
                let mut digits = [0u8; 20];
                let n = write_decimal(initial, &mut digits);
                let c = self
                    .replace_with(&mut st, idx, hash, NIL, key, 0, exptime, &[&digits[..n]], now)
                    .map_err(|_| ArithError::CreateFailed)?;
                let h = self.header(c);
                return Ok(ArithDone {
                    value: initial,
                    cas: self.visible_cas(h.cas()),
                    exptime_before: exptime,
                    exptime: h.exptime.load(Relaxed),
                    created: true,
                });
            }
        };
        let h = self.header(old);
        // A chained value is far too long to be a number.
        let old_value = self.value_of(old).as_slice().unwrap_or(b"x");
        // memcached's order: an empty value is refused before the cas is compared, a
        // mismatching cas before the number is parsed.
        if old_value.is_empty() {
            return Err(ArithError::NonNumeric);
        }
        if opts
            .compare_cas
            .is_some_and(|cas| cas != 0 && cas != self.visible_cas(h.cas()))
        {
            return Err(ArithError::Exists);
        }
        let current = parse_decimal(old_value).ok_or(ArithError::NonNumeric)?;
        let result = if incr {
            current.wrapping_add(delta)
        } else {
            current.saturating_sub(delta)
        };
        let mut digits = [b' '; 20];
        let n = write_decimal(result, &mut digits);
        let mut text = [b' '; 250];
        let new_len = if n <= old_value.len() && old_value.len() <= text.len() {
            old_value.len()
        } else {
            n
        };
        text[..n].copy_from_slice(&digits[..n]);
        // memcached rewrites a number that still fits in place, without linking a new item.
        let in_place = n <= old_value.len();
        let class = self.class_of(old);
        let (flags, exptime) = (h.client_flags.load(Relaxed), h.exptime.load(Relaxed));
        // A value longer than `text` that still parses is padded by spaces we cannot hold
        // here; shortening it to the digits changes only its whitespace.
        let c = self
            .replace_with(
                &mut st,
                idx,
                hash,
                old,
                key,
                flags,
                exptime,
                &[&text[..new_len]],
                now,
            )
            .map_err(|_| ArithError::OutOfMemory)?;
        if in_place {
            // Keep `total_items` counting links as memcached does.
            self.total_items.fetch_sub(1, Relaxed);
        }
        let counters = self.counters(class);
        if incr {
            counters.incr_hits.fetch_add(1, Relaxed);
        } else {
            counters.decr_hits.fetch_add(1, Relaxed);
        }
        let h = self.header(c);
        if let Some(t) = opts.set_exptime {
            h.exptime.store(t, Relaxed);
        }
        Ok(ArithDone {
            value: result,
            cas: self.visible_cas(h.cas()),
            exptime_before: exptime,
            exptime: h.exptime.load(Relaxed),
            created: false,
        })
    }

    /// Invalidate every item stored before cache time `at` (None: now). Memory is
    /// reclaimed lazily, as items are met. A later call replaces a pending one.
    pub fn flush_all(&self, at: Option<u32>, now: u32) {
        match at {
            Some(t) if t > now => self.flush_at.store(t, Relaxed),
            _ => {
                self.flush_at.store(0, Relaxed);
                // memcached spends a unique on an immediate flush (its flush mark), so the
                // uniques clients see after it stay equal to memcached's.
                self.flush_below_cas
                    .store(self.next_cas.fetch_add(1, Relaxed), Relaxed);
                if !self.config.use_cas {
                    self.flush_clear_cas.store(u64::MAX, Relaxed);
                    self.flush_second.store(now.max(1), Relaxed);
                }
            }
        }
        // The crawler gives the flushed items' memory back on a pass from then on.
        self.crawler_due_at(at.unwrap_or(now).max(now));
    }

    /// Change the memory limit (cache_memlimit). It cannot exceed the arena mapped at
    /// start. Pooled pages over a lowered limit go back to the kernel at once; pages held
    /// by classes are taken back by the mover, a page at a time (see `mover`).
    pub fn set_memory_limit(&self, bytes: usize) {
        let pages = (bytes / self.config.page_size).clamp(1, self.page_class.len());
        self.page_limit.store(pages, Relaxed);
        lock(&self.pool).trim(pages, &self.arena, self.config.page_size);
    }

    /// Memory limit in bytes now in force.
    pub fn memory_limit(&self) -> usize {
        self.page_limit.load(Relaxed) * self.config.page_size
    }

    /// Bytes of pages taken from the arena so far (in classes or pooled): the part of the
    /// limit the cache has touched.
    pub fn malloced_bytes(&self) -> usize {
        lock(&self.pool).malloced() * self.config.page_size
    }

    /// Visit up to `limit` items of a class, newest first (0 = no limit), for
    /// `stats cachedump`: key, value length, expiry (cache time, 0 = never).
    pub fn dump(&self, class: usize, limit: usize, mut visit: impl FnMut(&[u8], usize, u32)) {
        if class == 0 || class > self.classes.len() {
            return;
        }
        let cs = lock(&self.class_state[class]);
        let mut n = 0;
        for list in &cs.lists {
            let mut c = list.head;
            while c != NIL && (limit == 0 || n < limit) {
                let h = self.header(c);
                visit(self.key_of(c), h.value_len(), h.exptime.load(Relaxed));
                n += 1;
                c = h.lru_next.load(Relaxed);
            }
        }
    }
}

/// memcached's reading of a stored number for incr/decr: optional leading whitespace, an
/// optional '+', at least one decimal digit, then the end of the value or whitespace. Out of u64 range
/// or anything else is non-numeric.
fn parse_decimal(value: &[u8]) -> Option<u64> {
    let mut i = value.iter().take_while(|b| b.is_ascii_whitespace()).count();
    if value.get(i) == Some(&b'+') {
        i += 1;
    }
    let mut n: u64 = 0;
    if value.get(i).is_none_or(|b| !b.is_ascii_digit()) {
        // No digits at all (an empty value included) is not a number.
        return None;
    }
    while let Some(&b) = value.get(i) {
        if !b.is_ascii_digit() {
            break;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
        i += 1;
    }
    match value.get(i) {
        None => Some(n),
        Some(b) if b.is_ascii_whitespace() => Some(n),
        Some(_) => None,
    }
}

/// Write `n` in decimal at the start of `buf`; returns the length.
fn write_decimal(mut n: u64, buf: &mut [u8; 20]) -> usize {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let len = tmp.len() - i;
    buf[..len].copy_from_slice(&tmp[i..]);
    len
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_parsing_follows_memcached() {
        assert_eq!(parse_decimal(b"42"), Some(42));
        assert_eq!(parse_decimal(b"99 "), Some(99));
        assert_eq!(parse_decimal(b"  7"), Some(7));
        assert_eq!(parse_decimal(b""), None);
        assert_eq!(parse_decimal(b"  "), None);
        assert_eq!(parse_decimal(b"12abc"), None);
        assert_eq!(parse_decimal(b"-1"), None);
        assert_eq!(parse_decimal(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_decimal(b"18446744073709551616"), None);
    }

    #[test]
    fn decimal_writing() {
        let mut b = [0; 20];
        let n = write_decimal(0, &mut b);
        assert_eq!(&b[..n], b"0");
        let n = write_decimal(u64::MAX, &mut b);
        assert_eq!(&b[..n], b"18446744073709551615");
    }
}
