//! Test shorthands: a plain get, store, delete, touch and incr/decr, in an `impl Cache`
//! that only tests compile, written over the engine's single entry per operation
//! (`meta_get`, `store_with`, `delete_with`, `arith`).

use crate::*;

/// An item as the shorthand `get` hands it to its callback.
#[derive(Debug, Clone, Copy)]
pub struct ItemRef<'a> {
    pub value: Value<'a>,
    pub flags: u32,
    pub cas: u64,
    pub exptime: u32,
    pub class: usize,
}

fn read_opts(counter: HitCounter) -> GetOptions {
    GetOptions {
        bump: true,
        vivify: false,
        counter,
    }
}

fn item<'a>(v: &ItemView<'a>) -> ItemRef<'a> {
    ItemRef {
        value: v.value,
        flags: v.flags,
        cas: v.cas,
        exptime: v.exptime(),
        class: v.class,
    }
}

impl Cache {
    pub(crate) fn get<R>(&self, key: &[u8], now: u32, read: impl FnOnce(ItemRef<'_>) -> R) -> Option<R> {
        self.meta_get(key, now, read_opts(HitCounter::Get), |v| read(item(v)))
    }

    pub(crate) fn get_and_touch<R>(
        &self,
        key: &[u8],
        exptime: u32,
        now: u32,
        read: impl FnOnce(ItemRef<'_>) -> R,
    ) -> Option<R> {
        self.meta_get(key, now, read_opts(HitCounter::Touch), |v| {
            v.set_exptime(exptime);
            read(item(v))
        })
    }

    pub(crate) fn store(
        &self,
        mode: StoreMode,
        key: &[u8],
        flags: u32,
        exptime: u32,
        value: &[u8],
        now: u32,
    ) -> Result<u64, StoreError> {
        self.store_with(mode, key, flags, exptime, value, now, StoreOptions::default())
    }

    pub(crate) fn delete(&self, key: &[u8], now: u32) -> bool {
        self.delete_with(key, now, DeleteOptions::default()) == DeleteResult::Deleted
    }

    pub(crate) fn touch(&self, key: &[u8], exptime: u32, now: u32) -> bool {
        self.meta_get(key, now, read_opts(HitCounter::Touch), |v| v.set_exptime(exptime))
            .is_some()
    }

    pub(crate) fn incr_decr(&self, key: &[u8], incr: bool, delta: u64, now: u32) -> Result<u64, ArithError> {
        self.arith(key, incr, delta, now, ArithOptions::default())
            .map(|done| done.value)
    }
}
