//! set, add, replace, append, prepend, cas, `ms`, and the binary stores.
//!
//! Counted as memcached counts them: `cmd_set` for every attempt (refused ones too),
//! `cas_hits`/`cas_badval`/`cas_misses` for compare-and-swaps, `store_too_large` and
//! `store_no_memory` for failures.

use slabcache::{StoreError, StoreOptions};

pub use slabcache::StoreMode;

use super::outcome::{expiry, Outcome, Reply};
use crate::context::Context;
use crate::stats::detail::PrefixOp;
use crate::stats::{bump, Counters};

pub struct Store<'a> {
    /// The mode after each protocol's cas rule: a compare cas turns text's `cas`, meta's
    /// set and replace, and binary's set, add and replace into [`StoreMode::Cas`].
    pub mode: StoreMode,
    pub key: &'a [u8],
    pub flags: u32,
    /// As sent (relative seconds, a Unix time, or negative).
    pub exptime: i64,
    pub value: &'a [u8],
    /// Append/prepend's compare cas, meta's `I` and `b`.
    pub opts: StoreOptions,
    /// Counted under its key's prefix by `stats detail` (memcached counts text and binary
    /// stores there, not meta's).
    pub detail: bool,
}

/// The engine's mode for a decoded store. `compare` is the cas that makes a set, add or
/// replace a compare-and-swap (each protocol decides when its cas does: text's `cas` verb,
/// meta's `C` on set and replace, binary's header cas on set, add and replace); append and
/// prepend compare it themselves ([`StoreOptions::compare_cas`]).
pub fn engine_mode(mode: proto::StoreMode, compare: Option<u64>) -> StoreMode {
    use proto::StoreMode as Wire;
    match (mode, compare) {
        (Wire::Cas, cas) => StoreMode::Cas(cas.unwrap_or(0)),
        (Wire::Set | Wire::Add | Wire::Replace, Some(cas)) => StoreMode::Cas(cas),
        (Wire::Set, None) => StoreMode::Set,
        (Wire::Add, None) => StoreMode::Add,
        (Wire::Replace, None) => StoreMode::Replace,
        (Wire::Append, _) => StoreMode::Append,
        (Wire::Prepend, _) => StoreMode::Prepend,
    }
}

pub(super) fn store<R: Reply>(s: Store<'_>, ctx: &Context, counters: &Counters, reply: &mut R) {
    bump(&counters.cmd_set, 1);
    if s.detail {
        ctx.detail.record(s.key, PrefixOp::Set);
    }
    let now = ctx.clock.now();
    let exptime = expiry(ctx, s.exptime);
    let result = ctx
        .cache
        .store_with(s.mode, s.key, s.flags, exptime, s.value, now, s.opts);
    match result {
        Err(StoreError::TooLarge) => bump(&counters.store_too_large, 1),
        Err(StoreError::OutOfMemory) => bump(&counters.store_no_memory, 1),
        _ => {}
    }
    if let StoreMode::Cas(_) = s.mode {
        match result {
            Ok(_) => bump(&counters.cas_hits, 1),
            Err(StoreError::Exists) => bump(&counters.cas_badval, 1),
            Err(StoreError::NotFound) => bump(&counters.cas_misses, 1),
            Err(_) => {}
        }
    }
    reply.send(Outcome::Stored(s.mode, result));
}

/// Why a decoder refused a request, as far as the counters care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The item would not fit (`store_too_large`).
    TooLarge,
    /// The data block did not end in `\r\n` (memcached counts the set before it checks).
    BadDataChunk,
    /// Anything else, and every binary refusal (memcached's binary side counts none).
    Uncounted,
}

/// A request the decoder refused: counted as memcached counts it, and the old item under
/// `unlink` dropped (memcached unlinks it when a set is refused as too large, so it cannot
/// be read stale).
pub fn refused(ctx: &Context, counters: &Counters, refusal: Refusal, unlink: Option<&[u8]>) {
    match refusal {
        Refusal::TooLarge => bump(&counters.store_too_large, 1),
        Refusal::BadDataChunk => bump(&counters.cmd_set, 1),
        Refusal::Uncounted => {}
    }
    if let Some(key) = unlink {
        ctx.cache.delete_with(key, ctx.clock.now(), Default::default());
    }
}
