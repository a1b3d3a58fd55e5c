//! incr, decr, `ma`, binary Increment/Decrement.
//!
//! Counted as memcached counts them: `incr_hits`/`decr_hits` when an existing number
//! changed, `incr_misses`/`decr_misses` when the item was missing and not created (a
//! creation counts as neither).

use slabcache::{ArithError, ArithOptions};

use super::outcome::{expiry, ttl_left, ArithReply, Outcome, Reply};
use crate::context::Context;
use crate::stats::{bump, Counters};
use crate::watch::{self, WatchStreams};

pub struct Arith<'a> {
    pub incr: bool,
    pub key: &'a [u8],
    pub delta: u64,
    pub compare_cas: Option<u64>,
    /// Create a missing item holding this number, with this expiry (as sent).
    pub create: Option<(u64, i64)>,
    /// A new expiry applied with the change (meta `T`).
    pub touch: Option<i64>,
}

impl<'a> Arith<'a> {
    pub fn plain(incr: bool, key: &'a [u8], delta: u64) -> Self {
        Arith {
            incr,
            key,
            delta,
            compare_cas: None,
            create: None,
            touch: None,
        }
    }
}

pub(super) fn arith<R: Reply>(a: Arith<'_>, ctx: &Context, counters: &Counters, reply: &mut R) {
    let now = ctx.clock.now();
    let touch = a.touch.map(|t| expiry(ctx, t));
    let opts = ArithOptions {
        compare_cas: a.compare_cas,
        create: a.create.map(|(initial, exptime)| (initial, expiry(ctx, exptime))),
        set_exptime: touch,
    };
    let (hits, misses) = if a.incr {
        (&counters.incr_hits, &counters.incr_misses)
    } else {
        (&counters.decr_hits, &counters.decr_misses)
    };
    if ctx.watch.wants(WatchStreams::FETCHERS) {
        watch::events::peeked_get(ctx, a.key);
    }
    let result = ctx.cache.arith(a.key, a.incr, a.delta, now, opts);
    match result {
        Ok(done) if !done.created => bump(hits, 1),
        Err(ArithError::NotFound) => bump(misses, 1),
        _ => {}
    }
    reply.send(Outcome::Arith(result.map(|done| ArithReply {
        value: done.value,
        cas: done.cas,
        created: done.created,
        ttl: if done.created {
            -1
        } else {
            ttl_left(done.exptime_before, now)
        },
        new_ttl: (touch.is_some() || done.created).then(|| ttl_left(done.exptime, now)),
    })));
}
