//! memcached's text ("ASCII") protocol: a decoder for requests and encoders for replies.
//!
//! [`decode`] takes the bytes a connection has buffered and returns the first request in
//! them, borrowing keys and values from the buffer; it keeps no state between calls, so a
//! server simply calls it again with more bytes after [`Decoded::Incomplete`]. Behaviour is
//! memcached 1.6.18's, byte for byte, including its quirks; the notable ones:
//!
//! - **Lines** end at `\n`; a `\r` just before it is dropped. A NUL byte ends the line early
//!   (memcached runs `strlen` over it), the rest up to the newline is ignored.
//! - **Tokens** are separated by runs of spaces only: tabs and other control bytes are
//!   ordinary key bytes. At most 23 tokens are split off (see [`crate::token`]).
//! - **Numbers** go through C's `strtol`/`strtoul`: `+5`, `\t5` and `5\tjunk` are all 5,
//!   and 32-bit fields silently *truncate* a wider value (flags `4294967296` is 0, exptime
//!   `4294967296` is 0, length `4294967297` is 1).
//! - **Empty lines** (and lines of one byte) are answered with `ERROR`.
//! - **Long lines**: once more than [`LONG_LINE`] bytes are buffered with no newline,
//!   memcached closes the connection without a reply, unless they start with `get ` or
//!   `gets ` (multi-gets may be any length).
//! - **Data blocks** are exactly `<bytes>` + 2 bytes long and must end in `\r\n`; if not,
//!   the reply is `CLIENT_ERROR bad data chunk` and all `<bytes>` + 2 bytes are consumed
//!   anyway, so whatever the client sent after them is read as the next command.
//! - **Too large** values are refused from the command line alone; the data block is then
//!   swallowed (not checked) as it arrives. memcached sends `SERVER_ERROR object too large
//!   for cache` only after the swallow finishes.
//!
//! Meta commands (`mg`, `ms`, `md`, `ma`, `me`) are recognised where memcached recognises
//! them (a first token of exactly two bytes) and handed, already split, to the meta decoder ([`crate::meta::decode`] is its entry point for a line of its own), whose
//! result comes back as [`Decoded::Meta`]; `mn` is simple enough to be decoded here.
//! The administrative commands (`slabs`, `lru_crawler`, `lru`, `watch`) come back as
//! [`Request::Admin`], described with their memcached quirks on [`AdminRequest`]'s module.
//!
//! # noreply
//! A command that takes `noreply` is in noreply mode when its *last* token is exactly
//! `noreply`, whatever position that is (memcached's `set_noreply_maybe`). In that mode
//! memcached suppresses the command's one reply whatever it is: success, `NOT_FOUND`, and
//! also `CLIENT_ERROR`/`SERVER_ERROR` lines, including `bad data chunk` and `object too
//! large` (the data block is still consumed or swallowed). The exception is the check
//! memcached makes *before* it looks for `noreply`: a wrong number of tokens gets `ERROR`
//! even when the line ends in `noreply`. `get`, `gets`, `gat`, `gats`, `stats`, `version`,
//! `shutdown` and `config get` never take `noreply`; for those a trailing `noreply` is
//! just another token (a key, for the gets). The `noreply` field of [`Decoded::Error`] and
//! [`Request::noreply`] carry the result.
//!
//! # What memcached does around the decoder
//! Observed on memcached 1.6.18 and left to the server, since they concern when replies
//! are written rather than what a request means:
//! - Replies are queued, not written, until the input runs dry, a `get`-family command or
//!   `mn` completes, or a `quit`; while a data block (or a swallow) is still arriving,
//!   earlier queued replies wait with it.
//! - Closing for [`ProtoError::HttpRequest`] or [`ProtoError::LineTooLong`] drops replies
//!   still queued.
//! - A `get` refused for a too-long key also drops the queued replies of the commands
//!   before it in the same batch (a memcached bug; a server need not copy it).
//! - `incr`/`decr` rewrite a value in place when the new number is not longer, padding it
//!   with spaces: `10` decremented by 9 reads back as `1 `.
#![warn(missing_docs)]

use std::fmt;

use crate::error::{ClientError, ProtoError, ServerError};
use crate::meta::MetaDecoded;
use crate::token::{find_line_stop, parse_i32_truncating, parse_u32_truncating, parse_u64, Tokens};
use crate::Limits;

mod admin;
mod decoder;
mod reply;

pub use decoder::decode;
use decoder::Line;

pub use crate::StoreMode;
pub use admin::{
    parse_class_list, AdminRequest, ClassIds, ClassSelection, Double, LruTuning, WatchStreams,
    MAX_CRAWLER_SLEEP_US,
};
pub use reply::{
    write_config, write_end, write_metadump_item, write_stat, write_value, write_value_header, MetadumpItem,
    Reply,
};

#[cfg(test)]
mod tests;

/// Bytes memcached buffers without finding a newline before it gives up on the connection
/// (unless they are the start of a multi-get).
pub const LONG_LINE: usize = 2048;

/// A multi-get line may be preceded by at most this many spaces and still be recognised
/// as one while it is incomplete.
const MAX_LEADING_SPACES: usize = 100;

/// memcached's `MAX_NUMBER_OF_SLAB_CLASSES`: `stats cachedump` class ids must be below it.
pub const MAX_SLAB_CLASSES: u32 = 64;

/// The outcome of [`decode`].
// `Meta` holds a meta request with its base64-decoded key inline (a few hundred bytes):
// decoding never allocates, and the value is returned once per request, then destructured.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// No complete request yet: no newline yet, or a storage command whose data block has
    /// not fully arrived. Never returned as an error for a prefix of a valid request.
    Incomplete,
    /// One complete request, borrowing its key(s)/value from the buffer; the first
    /// `consumed` bytes of the buffer belong to it.
    Request {
        /// The request.
        request: Request<'a>,
        /// Bytes of the buffer this request used, line ending and data block included.
        consumed: usize,
    },
    /// A meta command line (`mg`, `ms`, `md`, `ma`, `me`), decoded by [`crate::meta`].
    /// Its result has the same meaning as this enum's variants, with meta's own error
    /// type; meta errors are sent whatever `q` says.
    Meta(MetaDecoded<'a>),
    /// Malformed input.
    Error {
        /// What was wrong, and (through [`ProtoError::as_wire`]) what to reply.
        error: ProtoError,
        /// Bytes to drop from the front of the buffer now.
        consumed: usize,
        /// Further bytes to discard as they arrive (memcached's `conn_swallow`), after the
        /// `consumed` ones: the data block of a storage command refused from its command
        /// line. memcached sends the reply once the swallow is complete.
        swallow: usize,
        /// Close the connection once the reply (if any) and earlier replies are written.
        close: bool,
        /// Send nothing: the command was in noreply mode when memcached found the error
        /// (see the module docs), or the error is one memcached answers with silence.
        noreply: bool,
        /// A key whose stored item must be unlinked as a side effect: memcached drops the
        /// old value when a `set` is refused as too large, so it cannot be read stale.
        unlink: Option<&'a [u8]>,
    },
}

impl<'a> Decoded<'a> {
    /// The bytes to write for an error: a [`Decoded::Error`]'s wire text, or nothing when
    /// `noreply` says so, or a meta error's line. Empty for requests and `Incomplete`.
    pub fn error_reply(&self) -> &'static [u8] {
        match self {
            Decoded::Error { error, noreply, .. } if !noreply => error.as_wire(),
            Decoded::Meta(MetaDecoded::Error { error, .. }) => error.line(),
            _ => b"",
        }
    }

    fn error(error: impl Into<ProtoError>, consumed: usize, noreply: bool) -> Self {
        let error = error.into();
        Decoded::Error {
            error,
            consumed,
            swallow: 0,
            close: error.closes_connection(),
            noreply: noreply || error.as_wire().is_empty(),
            unlink: None,
        }
    }
}

/// One decoded text-protocol request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request<'a> {
    /// `get <key>*` / `gets <key>*` (and memcached's undocumented `bget`, a `get`). Reply
    /// with a `VALUE` block per hit (`with_cas`: with the CAS unique) then `END`.
    Get {
        /// At least one key.
        keys: Keys<'a>,
        /// `gets`: include each item's CAS unique.
        with_cas: bool,
    },
    /// `gat <exptime> <key>*` / `gats ...`: get and touch. memcached accepts an empty key
    /// list here (`gat 0` replies `END`).
    GetAndTouch {
        /// The new expiry, as memcached reads it (see [`Request::Store`]'s `exptime`).
        exptime: i64,
        /// Zero or more keys.
        keys: Keys<'a>,
        /// `gats`: include each item's CAS unique.
        with_cas: bool,
    },
    /// `set|add|replace|append|prepend <key> <flags> <exptime> <bytes> [noreply]` and
    /// `cas <key> <flags> <exptime> <bytes> <cas unique> [noreply]`, with the data block.
    Store {
        /// Which command.
        mode: StoreMode,
        /// The key, 1..=`max_key_len` bytes.
        key: &'a [u8],
        /// Client flags; memcached truncates wider numbers to 32 bits.
        flags: u32,
        /// The expiry as memcached reads it: a number in `i32` range (memcached parses a
        /// 64-bit `long` and truncates it to `int32_t`, so `4294967296` arrives as 0 and
        /// `2147483648` as -2147483648). Negative means already expired; up to 30 days is
        /// relative; more is a Unix time. The server converts it.
        exptime: i64,
        /// The data block without its `\r\n`.
        value: &'a [u8],
        /// For [`StoreMode::Cas`], the unique to compare; 0 otherwise.
        cas_unique: u64,
        /// Reply with nothing.
        noreply: bool,
    },
    /// `delete <key> [0] [noreply]`.
    Delete {
        /// The key.
        key: &'a [u8],
        /// Reply with nothing.
        noreply: bool,
    },
    /// `incr|decr <key> <delta> [noreply]`.
    Arith {
        /// Which of the two.
        op: ArithOp,
        /// The key.
        key: &'a [u8],
        /// The amount; any `u64`.
        delta: u64,
        /// Reply with nothing.
        noreply: bool,
    },
    /// `touch <key> <exptime> [noreply]`.
    Touch {
        /// The key.
        key: &'a [u8],
        /// The new expiry, read as for [`Request::Store`].
        exptime: i64,
        /// Reply with nothing.
        noreply: bool,
    },
    /// `flush_all [delay] [noreply]`. On a server with flush disabled, reply
    /// [`ClientError::FlushAllNotAllowed`] (unless `noreply`) and do nothing.
    FlushAll {
        /// Seconds from now (or a Unix time), read as an exptime; 0 (or negative) is now.
        delay: i64,
        /// Reply with nothing.
        noreply: bool,
    },
    /// `version`; any further tokens are ignored.
    Version,
    /// `verbosity <level> [noreply]`; reply `OK`.
    Verbosity {
        /// The level as sent (truncated to 32 bits); memcached caps it at 2.
        level: u32,
        /// Reply with nothing.
        noreply: bool,
    },
    /// `quit`: close the connection after writing the replies already queued; no reply.
    Quit,
    /// `stats [...]`.
    Stats(StatsRequest),
    /// `cache_memlimit <megabytes> [noreply]`, already checked to be in 8..=1_000_000_000.
    /// Reply `OK`, or [`ProtoError::MemlimitAdjustFailed`] if the server cannot.
    CacheMemlimit {
        /// The new limit in megabytes.
        megabytes: u64,
        /// Reply with nothing.
        noreply: bool,
    },
    /// `shutdown [graceful]`. On a server without the shutdown command enabled reply
    /// [`ProtoError::ShutdownNotEnabled`]; otherwise close this connection and stop.
    Shutdown {
        /// `shutdown graceful`.
        graceful: bool,
    },
    /// `config get <key>` (AWS ElastiCache auto discovery; not in memcached 1.6.18, which
    /// says `ERROR`). Reply with [`write_config`] for a known key.
    ConfigGet {
        /// The configuration key, e.g. `cluster`.
        key: &'a [u8],
    },
    /// `config set <key> <flags> <bytes> [noreply]` with a data block, as a storage command.
    ConfigSet {
        /// The configuration key.
        key: &'a [u8],
        /// Client flags.
        flags: u32,
        /// The data block without its `\r\n`.
        value: &'a [u8],
        /// Reply with nothing.
        noreply: bool,
    },
    /// `config delete <key> [noreply]`.
    ConfigDelete {
        /// The configuration key.
        key: &'a [u8],
        /// Reply with nothing.
        noreply: bool,
    },
    /// `mn`, the meta no-op: reply `MN` and flush.
    MetaNoop,
    /// A `get`/`gets`/`gat`/`gats` line with a key longer than `max_key_len`. memcached
    /// walks the keys in order and only notices the long one when it reaches it, so the keys
    /// before it have been looked up (and touched, for gat), counted, and their replies
    /// dropped. Do the same for `keys_before`, then reply
    /// [`ClientError::BadCommandLineFormat`].
    GetRefused {
        /// The valid keys ahead of the first too-long one (possibly none).
        keys_before: Keys<'a>,
        /// For `gat`/`gats`: the new expiry, read as for [`Request::Store`].
        touch: Option<i64>,
    },
    /// An administrative command: `slabs`, `lru_crawler`, `lru` or `watch` (see [`AdminRequest`]).
    Admin {
        /// The command.
        request: AdminRequest,
        /// Reply with nothing (`slabs automove` and `lru` only).
        noreply: bool,
    },
    /// A request memcached rejects, but only *after* checking a server setting this crate
    /// cannot see: if `gate` is disabled on the server, reply with
    /// [`Gate::disabled_error`] instead of `error`. Either reply is suppressed by
    /// `noreply`.
    Refused {
        /// The setting memcached checks first.
        gate: Gate,
        /// The reply when the gate is open.
        error: ProtoError,
        /// Reply with nothing.
        noreply: bool,
    },
}

impl Request<'_> {
    /// True when the server must send nothing for this request (memcached's noreply mode;
    /// see the module docs). Requests that never take `noreply` return false.
    pub fn noreply(&self) -> bool {
        match self {
            Request::Store { noreply, .. }
            | Request::Delete { noreply, .. }
            | Request::Arith { noreply, .. }
            | Request::Touch { noreply, .. }
            | Request::FlushAll { noreply, .. }
            | Request::Verbosity { noreply, .. }
            | Request::CacheMemlimit { noreply, .. }
            | Request::ConfigSet { noreply, .. }
            | Request::ConfigDelete { noreply, .. }
            | Request::Admin { noreply, .. }
            | Request::Refused { noreply, .. } => *noreply,
            Request::Get { .. }
            | Request::GetAndTouch { .. }
            | Request::Version
            | Request::Quit
            | Request::Stats(_)
            | Request::Shutdown { .. }
            | Request::ConfigGet { .. }
            | Request::MetaNoop
            | Request::GetRefused { .. } => false,
        }
    }
}

/// `incr` or `decr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArithOp {
    /// `incr`: add, wrapping at 2^64.
    Incr,
    /// `decr`: subtract, stopping at 0.
    Decr,
}

/// The server settings memcached consults before some argument checks (see
/// [`Request::Refused`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Gate {
    /// Whether `flush_all` is allowed (memcached's `-F` disables it).
    FlushAll,
    /// Whether `shutdown` is enabled (memcached's `-A` enables it).
    Shutdown,
    /// Whether `stats cachedump` is allowed (memcached's `-X` disables it).
    Cachedump,
    /// Whether `slabs reassign` is allowed (memcached's `-o no_slab_reassign` disables it).
    SlabReassign,
}

impl Gate {
    /// The reply when this setting is off.
    pub fn disabled_error(self) -> ProtoError {
        match self {
            Gate::FlushAll => ClientError::FlushAllNotAllowed.into(),
            Gate::Shutdown => ProtoError::ShutdownNotEnabled,
            Gate::Cachedump => ClientError::CachedumpNotAllowed.into(),
            Gate::SlabReassign => ClientError::SlabReassignDisabled.into(),
        }
    }
}

/// The `stats` sub-commands memcached 1.6.18 answers. Tokens after the ones listed are
/// ignored, as memcached does; an unknown sub-command is an `ERROR`. None take `noreply`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatsRequest {
    /// `stats`: the general counters.
    General,
    /// `stats settings`.
    Settings,
    /// `stats items`.
    Items,
    /// `stats slabs`.
    Slabs,
    /// `stats sizes`.
    Sizes,
    /// `stats sizes_enable`: memcached replies one `STAT sizes_status ...` line, no `END`.
    SizesEnable,
    /// `stats sizes_disable`: likewise.
    SizesDisable,
    /// `stats conns`.
    Conns,
    /// `stats extstore` (`END` alone from a memcached without external storage in use).
    Extstore,
    /// `stats reset`: reply `RESET`.
    Reset,
    /// `stats hotkeys` (slabcached's own): the most requested keys of the last minute or
    /// so, one `STAT <key> <requests/s>` line each, hottest first.
    Hotkeys,
    /// `stats detail on|off|dump`.
    Detail(StatsDetail),
    /// `stats cachedump <class> <limit>`, class already below [`MAX_SLAB_CLASSES`]. On a
    /// server with dumping disabled reply [`ClientError::CachedumpNotAllowed`].
    Cachedump {
        /// The slab class.
        class: u32,
        /// At most this many items; 0 for memcached's default.
        limit: u32,
    },
}

/// `stats detail` actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatsDetail {
    /// Start per-prefix statistics; reply `OK`.
    On,
    /// Stop them; reply `OK`.
    Off,
    /// Dump them (`PREFIX ...` lines then `END`).
    Dump,
}

/// The keys of a `get`-family line: an iterator that borrows the line and allocates
/// nothing. Every key has already been checked to be 1..=`max_key_len` bytes (memcached
/// checks them all before answering, and refuses the whole line if one is too long).
#[derive(Clone)]
pub struct Keys<'a> {
    rest: &'a [u8],
    remaining: usize,
}

impl<'a> Keys<'a> {
    /// Walks the space-separated words of `rest`. `Err` holds the keys before the first one
    /// longer than `max_len`.
    fn validated(rest: &'a [u8], max_len: usize) -> Result<Self, Self> {
        let mut remaining = 0;
        let mut offset = 0;
        for word in rest.split(|&b| b == b' ') {
            if word.len() > max_len {
                return Err(Keys {
                    rest: &rest[..offset],
                    remaining,
                });
            }
            offset += word.len() + 1;
            remaining += usize::from(!word.is_empty());
        }
        Ok(Keys { rest, remaining })
    }
}

impl<'a> Iterator for Keys<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let start = self.rest.iter().position(|&b| b != b' ')?;
        let rest = &self.rest[start..];
        let end = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
        self.rest = &rest[end..];
        self.remaining -= 1;
        Some(&rest[..end])
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl ExactSizeIterator for Keys<'_> {}

impl std::iter::FusedIterator for Keys<'_> {}

/// Two key lists are equal when they hold the same keys in the same order, whatever the
/// spacing between them on the wire.
impl PartialEq for Keys<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.clone().eq(other.clone())
    }
}

impl Eq for Keys<'_> {}

impl fmt::Debug for Keys<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.clone().map(|k| String::from_utf8_lossy(k)))
            .finish()
    }
}
