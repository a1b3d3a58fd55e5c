//! What the executor reports and what its command families share: the [`Outcome`]s a
//! protocol's [`Reply`] encoder receives, the item a get hands it ([`Hit`]), the keys of a
//! get ([`Keys`]), the connection's next [`Action`], and the wire's time rules.

use proto::meta::{DebugInfo, ItemMeta};
use proto::ProtoError;
use slabcache::{ArithError, DeleteResult, StoreError, StoreMode};

use super::metadump::Metadump;
use super::stats::StatsReply;
use crate::cluster::ConfigChangeError;
use crate::context::Context;

/// What the connection does after a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Continue,
    /// Close after writing queued replies (the client asked to).
    Close,
    /// Close after writing queued replies: the client sent something that cannot be
    /// served (a `connevents` watcher sees `reason=error`).
    CloseOnError,
    /// The connection becomes a log watcher of these streams (its slot is reserved).
    Watch(proto::text::WatchStreams),
    /// Stop the server (the `shutdown` command).
    Shutdown,
    /// List items for `lru_crawler metadump`, a class at a time, before the next request.
    Metadump(Metadump),
    /// A multi-get filled the connection's output bound after answering this many of its
    /// keys (counted from the start of the line): the request stays buffered and resumes
    /// with the next key once the client has read (see `crate::net::conn`).
    Paused(usize),
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

/// A changed (or created) number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArithReply {
    pub value: u64,
    pub cas: u64,
    pub created: bool,
    /// TTL left before the change (-1: none, and for a created item).
    pub ttl: i64,
    /// TTL after a touch or a creation.
    pub new_ttl: Option<i64>,
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
    /// A reply line in the server's own words, `\r\n` included (a failed `refresh_certs`
    /// says why); text sends it even under `noreply`, as memcached does. Binary never
    /// produces one.
    Message(String),
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

    /// The encoder's output reached its bound: a multi-get stops before its next key.
    fn full(&self) -> bool {
        false
    }

    /// A large value is being written in pieces: the request waits for them to be out.
    fn writing_value(&self) -> bool {
        false
    }
}

/// A wire exptime (relative seconds, a Unix time, or negative for "already expired") as
/// cache time.
pub(super) fn expiry(ctx: &Context, exptime: i64) -> u32 {
    ctx.clock.expiry(exptime)
}

/// Remaining TTL as meta prints it: -1 for none, else memcached's unsigned 32-bit
/// difference (so an item given a past expiry in this very request shows a huge number,
/// as it does in memcached).
pub(super) fn ttl_left(exptime: u32, now: u32) -> i64 {
    if exptime == 0 {
        -1
    } else {
        i64::from(exptime.wrapping_sub(now))
    }
}
