//! The events the command executors report, each behind one check of [`Watch::streams`]
//! (done by the caller with [`Watch::wants`]): the lookups of `fetchers` and the stores of
//! `mutations`, with the connection id the worker noted ([`super::current_fd`]).
//!
//! memcached logs a lookup wherever it looks a key up: every get, touch, delete and
//! incr/decr, and the look a store takes at the key before it writes, which is logged
//! before the store itself. Where the engine's own operation does not report what it found,
//! a peek (no LRU bump, no hit counted) finds it, only while someone watches.
//!
//! [`Watch::streams`]: super::Watch::streams
//! [`Watch::wants`]: super::Watch::wants

use slabcache::{GetOptions, HitCounter, StoreError, StoreMode};

use super::{current_fd, format, WatchStreams};
use crate::context::Context;

/// A lookup found `found` (the item's class and value length) or nothing.
pub fn item_get(ctx: &Context, key: &[u8], found: Option<(usize, usize)>) {
    let cfd = current_fd();
    ctx.watch.log(WatchStreams::FETCHERS, |out| {
        format::item_get(out, key, found, cfd)
    });
}

/// Log the lookup an operation that does not report one makes (delete, incr/decr, the
/// look before a store).
pub fn peeked_get(ctx: &Context, key: &[u8]) {
    let peek = GetOptions {
        bump: false,
        vivify: false,
        counter: HitCounter::None,
    };
    let found = ctx
        .cache
        .meta_get(key, ctx.clock.now(), peek, |it| (it.class, it.value.len()));
    item_get(ctx, key, found);
}

/// A store ran: `exptime` is the request's expiry in cache time.
pub fn item_store(
    ctx: &Context,
    key: &[u8],
    mode: StoreMode,
    result: Result<u64, StoreError>,
    exptime: u32,
    value_len: usize,
) {
    let now = ctx.clock.now();
    let ttl = if exptime == 0 {
        0
    } else {
        exptime.wrapping_sub(now)
    };
    let class = ctx.cache.class_for_item(key.len(), value_len).unwrap_or(0);
    let cfd = current_fd();
    let event = format::StoreEvent {
        key,
        result,
        mode,
        ttl,
        class,
        cfd,
        size: value_len,
    };
    ctx.watch
        .log(WatchStreams::MUTATIONS, |out| format::item_store(out, &event));
}
