//! delete, `md`, binary Delete.
//!
//! Counted as memcached counts them: `delete_hits` when removed, `delete_misses` when
//! missing; a meta delete refused by its cas counts as a miss too, a binary one as
//! neither.

use slabcache::{DeleteOptions, DeleteResult};

use super::outcome::{expiry, Outcome, Reply};
use crate::context::Context;
use crate::stats::detail::PrefixOp;
use crate::stats::{bump, Counters};

pub struct Delete<'a> {
    pub key: &'a [u8],
    pub compare_cas: Option<u64>,
    /// meta `I`: mark stale instead of removing, with `T`'s new expiry.
    pub invalidate: bool,
    pub exptime: Option<i64>,
    /// Count a cas mismatch in `delete_misses` (meta does, binary does not).
    pub mismatch_is_miss: bool,
    /// Counted under its key's prefix by `stats detail` (text and binary, not meta).
    pub detail: bool,
}

impl<'a> Delete<'a> {
    pub fn plain(key: &'a [u8]) -> Self {
        Delete {
            key,
            compare_cas: None,
            invalidate: false,
            exptime: None,
            mismatch_is_miss: false,
            detail: true,
        }
    }
}

pub(super) fn delete<R: Reply>(d: Delete<'_>, ctx: &Context, counters: &Counters, reply: &mut R) {
    let opts = DeleteOptions {
        compare_cas: d.compare_cas,
        invalidate: d.invalidate,
        exptime: d.exptime.map(|t| expiry(ctx, t)),
    };
    if d.detail {
        ctx.detail.record(d.key, PrefixOp::Delete);
    }
    let result = ctx.cache.delete_with(d.key, ctx.clock.now(), opts);
    match result {
        DeleteResult::Deleted => bump(&counters.delete_hits, 1),
        DeleteResult::NotFound => bump(&counters.delete_misses, 1),
        DeleteResult::Exists if d.mismatch_is_miss => bump(&counters.delete_misses, 1),
        DeleteResult::Invalidated | DeleteResult::Exists => {}
    }
    reply.send(Outcome::Deleted(result));
}
