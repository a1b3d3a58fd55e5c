//! The request model and its executor: the one place where requests meet the cache.
//!
//! Each protocol module of [`crate::wire`] decodes its bytes (with the `proto` crate) into a
//! [`Command`]; [`execute`] runs it against the cache, counts it, and reports what happened
//! as [`Outcome`]s to the protocol's [`Reply`] encoder, which alone decides the bytes (and
//! which replies its quiet, noreply and opaque rules drop). A command family lives in one
//! file: [`get`] (get, gat, touch, `me`), [`store`], [`delete`], [`arith`], [`control`]
//! (flush, version, verbosity, quit, shutdown, memory limit, noop, gated refusals),
//! [`config`] (the cluster configuration), [`stats`] and [`admin`] (`slabs`, `lru_crawler`,
//! `lru`). The options only meta has (`N`, `R`, `u`, `I`, the return flags, ...) ride along
//! on the command; they never make a second dispatch.

pub mod admin;
pub mod arith;
pub mod config;
pub mod control;
pub mod delete;
pub mod get;
pub mod stats;
pub mod store;

use proto::meta::{DebugInfo, ItemMeta};
use proto::text::{AdminRequest, Gate, StatsRequest};
use proto::ProtoError;
use slabcache::{ArithError, DeleteResult, StoreError};

use crate::cluster::ConfigChangeError;
use crate::context::Context;
use crate::stats::Counters;

pub use admin::Metadump;
pub use arith::ArithReply;
pub use stats::StatsReply;
pub use store::StoreMode;

/// What the connection does after a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Continue,
    /// Close after writing queued replies.
    Close,
    /// Stop the server (the `shutdown` command).
    Shutdown,
    /// List items for `lru_crawler metadump`, a class at a time, before the next request.
    Metadump(Metadump),
}

/// The keys of a get: one (meta, binary) or a text line's list.
#[derive(Clone)]
pub enum Keys<'a> {
    One(Option<&'a [u8]>),
    Line(proto::text::Keys<'a>),
}

impl<'a> Iterator for Keys<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        match self {
            Keys::One(k) => k.take(),
            Keys::Line(keys) => keys.next(),
        }
    }
}

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
    Shutdown,
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

/// An item found by a get, under its lock for as long as the encoder looks at it.
pub struct Hit<'a> {
    pub key: &'a [u8],
    /// One slice, or the pieces of a large item stored as a chain of chunks.
    pub value: slabcache::Value<'a>,
    pub flags: u32,
    pub cas: u64,
    /// What a meta get reports (only computed for a command with meta options).
    pub meta: ItemMeta,
}

/// What executing a command produced, for the protocol's encoder to turn into bytes.
pub enum Outcome<'a> {
    /// A get found `Hit` (or created it, with meta `N`).
    Hit(&'a Hit<'a>),
    /// A get missed this key.
    Miss {
        key: &'a [u8],
    },
    /// The get family's last key was answered (text's `END`).
    GetEnd,
    /// A touch: the item's cas and flags when it was there.
    Touched(Option<(u64, u32)>),
    /// `me`: the key and its metadata, or `None` for a miss.
    Debug(Option<(&'a [u8], DebugInfo)>),
    /// A store, with the mode it ran as (binary answers a refused add and replace
    /// differently): the new cas, or why not.
    Stored(StoreMode, Result<u64, StoreError>),
    Deleted(DeleteResult),
    Arith(Result<ArithReply, ArithError>),
    /// A command that has no result beyond having worked (flush, verbosity, memory limit,
    /// the admin commands).
    Ok,
    /// `flush_all` on a server started with flushing disabled.
    FlushDisabled,
    /// A reply line of the text protocol's own (admin commands, gated refusals, a get
    /// refused for a long key). Binary never produces one.
    Failed(ProtoError),
    Version(&'static str),
    Noop,
    /// The connection closes (binary answers first, text does not).
    Quit,
    Stats(StatsReply),
    /// `config get`: flags and body, or `None` for an unknown key.
    Config(&'a [u8], Option<(u32, Vec<u8>)>),
    /// `config set` (`true`) or `config delete`, and how it went.
    ConfigChanged(bool, Result<(), ConfigChangeError>),
}

/// A protocol's encoder: it receives every outcome of one request, in order.
pub trait Reply {
    fn send(&mut self, outcome: Outcome<'_>);
}

/// Run one command and report its outcomes to `reply`.
pub fn execute<R: Reply>(cmd: Command<'_>, ctx: &Context, counters: &Counters, reply: &mut R) -> Action {
    match cmd {
        Command::Get(g) => get::get(g, ctx, counters, reply),
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
        Command::Shutdown => return control::shutdown(ctx, reply),
        Command::CacheMemlimit { megabytes } => control::memlimit(megabytes, ctx, reply),
        Command::ConfigGet { key } => config::get(key, ctx, reply),
        Command::ConfigSet { key, flags, value } => config::set(key, flags, value, ctx, reply),
        Command::ConfigDelete { key } => config::delete(key, ctx, reply),
        Command::Admin { request, pipelined } => return admin::execute(request, pipelined, ctx, reply),
        Command::Refused { gate, error } => control::refused(gate, error, ctx, counters, reply),
    }
    Action::Continue
}

/// A wire exptime (relative seconds, a Unix time, or negative for "already expired") as
/// cache time.
fn expiry(ctx: &Context, exptime: i64) -> u32 {
    ctx.clock.expiry(exptime)
}

/// Remaining TTL as meta prints it: -1 for none, else memcached's unsigned 32-bit
/// difference (so an item given a past expiry in this very request shows a huge number,
/// as it does in memcached).
fn ttl_left(exptime: u32, now: u32) -> i64 {
    if exptime == 0 {
        -1
    } else {
        i64::from(exptime.wrapping_sub(now))
    }
}
