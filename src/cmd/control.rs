//! flush_all, verbosity, shutdown, cache_memlimit and the requests refused after a
//! server-setting check.

use proto::text::Gate;
use proto::ProtoError;

use super::outcome::{Action, Outcome, Reply};
use crate::context::Context;
use crate::stats::{bump, Counters};

pub struct Flush {
    /// As sent: 0 (or less) is now, else an exptime.
    pub delay: i64,
    /// Count a refused flush in `cmd_flush` (text does, binary does not).
    pub count_refused: bool,
}

pub(super) fn flush<R: Reply>(f: Flush, ctx: &Context, counters: &Counters, reply: &mut R) {
    if !ctx.config.flush_enabled {
        if f.count_refused {
            bump(&counters.cmd_flush, 1);
        }
        return reply.send(Outcome::FlushDisabled);
    }
    bump(&counters.cmd_flush, 1);
    let at = (f.delay > 0).then(|| ctx.clock.expiry(f.delay));
    ctx.cache.flush_all(at, ctx.clock.now());
    reply.send(Outcome::Ok);
}

pub(super) fn verbosity<R: Reply>(level: u32, ctx: &Context, reply: &mut R) {
    ctx.verbosity
        .store(level.min(2) as u8, std::sync::atomic::Ordering::Relaxed);
    reply.send(Outcome::Ok);
}

/// `shutdown [graceful]` (with `-A`): the connection closes and the server stops; a
/// graceful stop (memcached's SIGUSR1) saves the cache for a warm restart with `-e`.
pub(super) fn shutdown<R: Reply>(graceful: bool, ctx: &Context, reply: &mut R) -> Action {
    if !ctx.config.enable_shutdown {
        reply.send(Outcome::Failed(ProtoError::ShutdownNotEnabled));
        return Action::Continue;
    }
    if graceful {
        ctx.graceful.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    Action::Shutdown
}

pub(super) fn memlimit<R: Reply>(megabytes: u64, ctx: &Context, reply: &mut R) {
    let bytes = usize::try_from(megabytes)
        .unwrap_or(usize::MAX)
        .saturating_mul(1 << 20);
    ctx.cache.set_memory_limit(bytes);
    reply.send(Outcome::Ok);
}

pub(super) fn refused<R: Reply>(
    gate: Gate,
    error: ProtoError,
    ctx: &Context,
    counters: &Counters,
    reply: &mut R,
) {
    let open = match gate {
        Gate::FlushAll => {
            bump(&counters.cmd_flush, 1);
            ctx.config.flush_enabled
        }
        Gate::Shutdown => ctx.config.enable_shutdown,
        Gate::Cachedump => ctx.config.dump_enabled,
        Gate::SlabReassign => ctx.config.slab_reassign,
    };
    reply.send(Outcome::Failed(if open { error } else { gate.disabled_error() }));
}
