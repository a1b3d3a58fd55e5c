//! The request model and its executor: the one place where requests meet the cache.
//!
//! Each protocol module of [`crate::wire`] decodes its bytes (with the `proto` crate) into a
//! [`Command`]; [`execute`] runs it against the cache, counts it, and reports what happened
//! as [`Outcome`]s to the protocol's [`Reply`] encoder, which alone decides the bytes (and
//! which replies its quiet, noreply and opaque rules drop). A command family lives in one
//! file: [`get`] (get, gat, touch, `me`), [`store`], [`delete`], [`arith`], [`control`]
//! (flush, version, verbosity, quit, shutdown, memory limit, noop, gated refusals),
//! [`config`] (the cluster configuration), [`stats`] and [`admin`] (`slabs`, `lru_crawler`,
//! `lru`, `watch`); [`auth`] (SASL and the authfile, run by the wire modules with the
//! connection's session). The options only meta has (`N`, `R`, `u`, `I`, the return flags, ...) ride along
//! on the command; they never make a second dispatch.

pub mod admin;
pub mod arith;
pub mod auth;
pub mod config;
pub mod control;
pub mod delete;
pub mod get;
pub mod metadump;
pub mod outcome;
pub mod stats;
pub mod store;

use proto::text::{AdminRequest, Gate, StatsRequest};
use proto::ProtoError;

use crate::context::Context;
use crate::stats::Counters;

pub use metadump::Metadump;
pub use outcome::{Action, ArithReply, Hit, Keys, Outcome, Reply};
pub use stats::StatsReply;
pub use store::StoreMode;

/// One request, whatever protocol it came in.
pub enum Command<'a> {
    /// get, gets, gat, gats, `mg`, binary Get/Gat and their quiet and key forms.
    Get(get::Get<'a>),
    /// text `touch`, binary Touch.
    Touch {
        key: &'a [u8],
        exptime: i64,
    },
    /// `me`: an item's metadata, without touching it.
    Debug {
        key: &'a [u8],
    },
    Store(store::Store<'a>),
    Delete(delete::Delete<'a>),
    Arith(arith::Arith<'a>),
    Flush(control::Flush),
    Stats(StatsRequest),
    Version,
    Verbosity {
        level: u32,
    },
    Quit,
    Noop,
    /// `graceful`: save the cache for a warm restart (with `-e`).
    Shutdown {
        graceful: bool,
    },
    CacheMemlimit {
        megabytes: u64,
    },
    ConfigGet {
        key: &'a [u8],
    },
    ConfigSet {
        key: &'a [u8],
        flags: u32,
        value: &'a [u8],
    },
    ConfigDelete {
        key: &'a [u8],
    },
    /// `slabs`, `lru_crawler`, `lru`; `pipelined`: replies of earlier requests of this
    /// batch are still queued (memcached refuses a metadump then).
    Admin {
        request: AdminRequest,
        pipelined: bool,
    },
    /// A request memcached refuses after checking a server setting (see
    /// [`proto::text::Request::Refused`]).
    Refused {
        gate: Gate,
        error: ProtoError,
    },
}

/// Run one command and report its outcomes to `reply` (measured by [`crate::metrics`]:
/// value size, sampled latency and hot keys).
#[inline]
pub fn execute<R: Reply>(cmd: Command<'_>, ctx: &Context, counters: &Counters, reply: &mut R) -> Action {
    let timing = crate::metrics::begin(&cmd, ctx);
    let action = dispatch(cmd, ctx, counters, reply);
    timing.finish();
    action
}

fn dispatch<R: Reply>(cmd: Command<'_>, ctx: &Context, counters: &Counters, reply: &mut R) -> Action {
    match cmd {
        Command::Get(g) => {
            if let Some(done) = get::get(g, ctx, counters, reply) {
                return Action::Paused(done);
            }
        }
        Command::Touch { key, exptime } => get::touch(key, exptime, ctx, counters, reply),
        Command::Debug { key } => get::debug(key, ctx, counters, reply),
        Command::Store(s) => store::store(s, ctx, counters, reply),
        Command::Delete(d) => delete::delete(d, ctx, counters, reply),
        Command::Arith(a) => arith::arith(a, ctx, counters, reply),
        Command::Flush(f) => control::flush(f, ctx, counters, reply),
        Command::Stats(which) => reply.send(Outcome::Stats(stats::stats(which, ctx))),
        Command::Version => reply.send(Outcome::Version(crate::config::PROTOCOL_VERSION)),
        Command::Verbosity { level } => control::verbosity(level, ctx, reply),
        Command::Quit => {
            reply.send(Outcome::Quit);
            return Action::Close;
        }
        Command::Noop => reply.send(Outcome::Noop),
        Command::Shutdown { graceful } => return control::shutdown(graceful, ctx, reply),
        Command::CacheMemlimit { megabytes } => control::memlimit(megabytes, ctx, reply),
        Command::ConfigGet { key } => config::get(key, ctx, reply),
        Command::ConfigSet { key, flags, value } => config::set(key, flags, value, ctx, reply),
        Command::ConfigDelete { key } => config::delete(key, ctx, reply),
        Command::Admin { request, pipelined } => return admin::execute(request, pipelined, ctx, reply),
        Command::Refused { gate, error } => control::refused(gate, error, ctx, counters, reply),
    }
    Action::Continue
}
