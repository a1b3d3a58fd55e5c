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

use slabcache::{GetOptions, HitCounter, ItemView, StoreError, StoreMode};

use super::{current_fd, format, GetStatus, WatchStreams};
use crate::context::Context;

/// A lookup found what `found` says.
pub fn item_get(ctx: &Context, key: &[u8], found: GetStatus) {
    let cfd = current_fd();
    ctx.watch.log(WatchStreams::FETCHERS, |out| {
        format::item_get(out, key, found, cfd)
    });
}

/// Log the lookup an operation that does not report one makes (delete, incr/decr, the
/// look before a store).
pub fn peeked_get(ctx: &Context, key: &[u8]) {
    let opts = GetOptions {
        bump: false,
        vivify: false,
        counter: HitCounter::None,
    };
    let found = ctx
        .cache
        .lookup(key, ctx.clock.now(), opts, |it| (it.class, it.value.len()));
    item_get(ctx, key, GetStatus::of(&found));
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
    let mut class = ctx.cache.class_for_item(key.len(), value_len).unwrap_or(0);
    let (mut exptime, mut value_len) = (exptime, value_len);
    // memcached logs the item it linked, which for an append or prepend is the joined
    // value under the old item's expiry.
    if matches!(mode, StoreMode::Append | StoreMode::Prepend) && result.is_ok() {
        if let Some(joined) = peek(ctx, key, |it| (it.class, it.value.len(), it.exptime())) {
            (class, value_len, exptime) = joined;
        }
    }
    let ttl = if exptime == 0 {
        0
    } else {
        exptime.wrapping_sub(now)
    };
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

/// Look at `key` without bumping it or counting a hit.
fn peek<R>(ctx: &Context, key: &[u8], read: impl FnOnce(&ItemView<'_>) -> R) -> Option<R> {
    let opts = GetOptions {
        bump: false,
        vivify: false,
        counter: HitCounter::None,
    };
    ctx.cache.meta_get(key, ctx.clock.now(), opts, read)
}
