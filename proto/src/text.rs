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
//! The administrative commands (`slabs`, `lru_crawler`, `lru`) come back as
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
mod reply;

pub use admin::{
    parse_class_list, AdminRequest, ClassIds, ClassSelection, Double, LruTuning, MAX_CRAWLER_SLEEP_US,
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
    /// An administrative command: `slabs`, `lru_crawler` or `lru` (see [`AdminRequest`]).
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

/// The storage commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StoreMode {
    /// `set`: store unconditionally.
    Set,
    /// `add`: store only if the key is absent.
    Add,
    /// `replace`: store only if the key is present.
    Replace,
    /// `append`: add the data after the existing value (flags and exptime are ignored).
    Append,
    /// `prepend`: add the data before the existing value.
    Prepend,
    /// `cas`: store only if the item's CAS unique is still the one given.
    Cas,
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

/// Decodes one request from the front of `buf`.
pub fn decode<'a>(buf: &'a [u8], limits: &Limits) -> Decoded<'a> {
    // One pass finds the end of the line and, in the same scan, any NUL that cuts it short.
    let Some(stop) = find_line_stop(buf) else {
        return incomplete_line(buf);
    };
    let newline = if buf[stop] == b'\n' {
        stop
    } else {
        match buf[stop..].iter().position(|&b| b == b'\n') {
            Some(n) => stop + n,
            None => return incomplete_line(buf),
        }
    };
    let mut line = &buf[..stop];
    // memcached strips a `\r` only from a line of two or more bytes (the `\r` counted), and
    // only when it sits right before the newline; a NUL before it makes the test moot.
    if stop == newline && line.len() > 1 && line.ends_with(b"\r") {
        line = &line[..line.len() - 1];
    }
    Line {
        buf,
        line,
        end: newline + 1,
        limits,
    }
    .decode()
}

/// No newline yet: wait, unless memcached would already have given up on this connection.
fn incomplete_line(buf: &[u8]) -> Decoded<'_> {
    if buf.len() <= LONG_LINE {
        return Decoded::Incomplete;
    }
    let spaces = buf.iter().take_while(|&&b| b == b' ').count();
    let rest = &buf[spaces..];
    if spaces <= MAX_LEADING_SPACES && (rest.starts_with(b"get ") || rest.starts_with(b"gets ")) {
        return Decoded::Incomplete;
    }
    Decoded::Error {
        error: ProtoError::LineTooLong,
        consumed: buf.len(),
        swallow: 0,
        close: true,
        noreply: true,
        unlink: None,
    }
}

/// A complete command line and its context.
struct Line<'a, 'l> {
    /// The whole input buffer (data blocks follow the line in it).
    buf: &'a [u8],
    /// The command line without its line ending (and cut at a NUL).
    line: &'a [u8],
    /// Offset just past the newline.
    end: usize,
    limits: &'l Limits,
}

impl<'a> Line<'a, '_> {
    fn ok(&self, request: Request<'a>) -> Decoded<'a> {
        Decoded::Request {
            request,
            consumed: self.end,
        }
    }

    fn err(&self, error: impl Into<ProtoError>, noreply: bool) -> Decoded<'a> {
        Decoded::error(error, self.end, noreply)
    }

    fn bad_format(&self, noreply: bool) -> Decoded<'a> {
        self.err(ClientError::BadCommandLineFormat, noreply)
    }

    fn key_ok(&self, key: &[u8]) -> bool {
        key.len() <= self.limits.max_key_len
    }

    /// memcached's command dispatch. It branches on the first byte before comparing whole
    /// names, and the branch decides what an unrecognised name gets: inside a branch,
    /// plain `ERROR`; past all of them, the HTTP check first. The order is kept so that,
    /// e.g., `gimme / HTTP/1.1` gets `ERROR` while `GET / HTTP/1.1` is closed.
    fn decode(self) -> Decoded<'a> {
        let t = Tokens::split(self.line);
        let cmd = t.get(0);
        // No command is shorter than two bytes; this also catches the empty line.
        if t.is_empty() || cmd.len() < 2 {
            return self.err(ProtoError::Error, false);
        }
        match cmd[0] {
            b'm' if cmd.len() == 2 => self.meta(&t),
            b'g' => {
                if t.ntokens() < 3 {
                    return self.err(ProtoError::Error, false);
                }
                match cmd {
                    b"get" => self.get(false),
                    b"gets" => self.get(true),
                    b"gat" => self.gat(&t, false),
                    b"gats" => self.gat(&t, true),
                    _ => self.err(ProtoError::Error, false),
                }
            }
            b's' => match cmd {
                b"set" => self.store(&t, StoreMode::Set),
                b"stats" => self.stats(&t),
                b"shutdown" => self.shutdown(&t),
                b"slabs" => self.slabs(&t),
                _ => self.err(ProtoError::Error, false),
            },
            b'a' => match cmd {
                b"add" => self.store(&t, StoreMode::Add),
                b"append" => self.store(&t, StoreMode::Append),
                _ => self.err(ProtoError::Error, false),
            },
            b'c' => match cmd {
                b"cas" => self.store(&t, StoreMode::Cas),
                b"cache_memlimit" => self.memlimit(&t),
                b"config" => self.config(&t),
                _ => self.err(ProtoError::Error, false),
            },
            b'i' => match cmd {
                b"incr" => self.arith(&t, ArithOp::Incr),
                _ => self.err(ProtoError::Error, false),
            },
            b'd' => match cmd {
                b"delete" => self.delete(&t),
                b"decr" => self.arith(&t, ArithOp::Decr),
                _ => self.err(ProtoError::Error, false),
            },
            b't' => match cmd {
                b"touch" => self.touch(&t),
                _ => self.err(ProtoError::Error, false),
            },
            _ => match cmd {
                b"replace" => self.store(&t, StoreMode::Replace),
                b"prepend" => self.store(&t, StoreMode::Prepend),
                b"bget" if t.ntokens() >= 3 => self.get(false),
                b"flush_all" => self.flush_all(&t),
                b"version" => self.ok(Request::Version),
                b"quit" => self.ok(Request::Quit),
                b"verbosity" => self.verbosity(&t),
                b"lru_crawler" => self.lru_crawler(&t),
                b"lru" => self.lru(&t),
                // Known to memcached but not implemented here; they answer malformed input
                // with `ERROR` and never reach the HTTP check.
                b"bget" | b"watch" | b"extstore" => self.err(ProtoError::Error, false),
                _ if t.last().starts_with(b"HTTP/") => self.err(ProtoError::HttpRequest, true),
                _ => self.err(ProtoError::Error, false),
            },
        }
    }

    /// Two-byte commands starting with `m`.
    fn meta(&self, t: &Tokens<'a>) -> Decoded<'a> {
        match t.get(0) {
            // memcached ignores anything after `mn`.
            b"mn" => self.ok(Request::MetaNoop),
            // The meta decoder takes over with the tokens split here: it has its own flag
            // rules, and an `ms` data block to find.
            b"mg" | b"ms" | b"md" | b"ma" | b"me" => {
                Decoded::Meta(crate::meta::decode_line(self.buf, t, self.end, self.limits))
            }
            _ => self.err(ProtoError::Error, false),
        }
    }

    /// The words of the line from word `n` on, unsplit (keys past the 23rd token).
    fn words_from(&self, n: usize) -> &'a [u8] {
        let mut rest = self.line;
        for _ in 0..n {
            let start = rest.iter().position(|&b| b != b' ').unwrap_or(rest.len());
            rest = &rest[start..];
            let end = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
            rest = &rest[end..];
        }
        rest
    }

    /// `get`/`gets`/`bget`, dispatched only with at least one key.
    fn get(&self, with_cas: bool) -> Decoded<'a> {
        match Keys::validated(self.words_from(1), self.limits.max_key_len) {
            Ok(keys) => self.ok(Request::Get { keys, with_cas }),
            Err(keys_before) => self.ok(Request::GetRefused {
                keys_before,
                touch: None,
            }),
        }
    }

    fn gat(&self, t: &Tokens<'a>, with_cas: bool) -> Decoded<'a> {
        let Some(exptime) = parse_i32_truncating(t.get(1)) else {
            return self.err(ClientError::InvalidExptime, false);
        };
        match Keys::validated(self.words_from(2), self.limits.max_key_len) {
            Ok(keys) => self.ok(Request::GetAndTouch {
                exptime: exptime.into(),
                keys,
                with_cas,
            }),
            Err(keys_before) => self.ok(Request::GetRefused {
                keys_before,
                touch: Some(exptime.into()),
            }),
        }
    }

    fn store(&self, t: &Tokens<'a>, mode: StoreMode) -> Decoded<'a> {
        let base = if mode == StoreMode::Cas { 7 } else { 6 };
        if t.ntokens() != base && t.ntokens() != base + 1 {
            return self.err(ProtoError::Error, false);
        }
        let noreply = t.ends_with_noreply();
        let key = t.get(1);
        if !self.key_ok(key) {
            return self.bad_format(noreply);
        }
        let (Some(flags), Some(exptime), Some(len)) = (
            parse_u32_truncating(t.get(2)),
            parse_i32_truncating(t.get(3)),
            parse_i32_truncating(t.get(4)),
        ) else {
            return self.bad_format(noreply);
        };
        let cas_unique = if mode == StoreMode::Cas {
            match parse_u64(t.get(5)) {
                Some(c) => c,
                None => return self.bad_format(noreply),
            }
        } else {
            0
        };
        let Some(len) = value_len(len) else {
            return self.bad_format(noreply);
        };
        let unlink = (mode == StoreMode::Set).then_some(key);
        self.data_block(key, flags, len, noreply, unlink, |value| Request::Store {
            mode,
            key,
            flags,
            exptime: exptime.into(),
            value,
            cas_unique,
            noreply,
        })
    }

    /// The data block of a storage command whose line was valid: refuse it unswallowed if
    /// the item can never fit, wait for all of it, then check its `\r\n`.
    fn data_block(
        &self,
        key: &[u8],
        flags: u32,
        len: usize,
        noreply: bool,
        unlink: Option<&'a [u8]>,
        request: impl FnOnce(&'a [u8]) -> Request<'a>,
    ) -> Decoded<'a> {
        if !self.limits.item_fits(key.len(), flags, len) {
            return Decoded::Error {
                error: ServerError::ObjectTooLarge.into(),
                consumed: self.end,
                swallow: len + 2,
                close: false,
                noreply,
                unlink,
            };
        }
        let total = self.end.saturating_add(len).saturating_add(2);
        if self.buf.len() < total {
            return Decoded::Incomplete;
        }
        let value = &self.buf[self.end..self.end + len];
        if &self.buf[self.end + len..total] != b"\r\n" {
            return Decoded::error(ClientError::BadDataChunk, total, noreply);
        }
        Decoded::Request {
            request: request(value),
            consumed: total,
        }
    }

    fn delete(&self, t: &Tokens<'a>) -> Decoded<'a> {
        if !(3..=5).contains(&t.ntokens()) {
            return self.err(ProtoError::Error, false);
        }
        let mut noreply = false;
        if t.ntokens() > 3 {
            // The pre-1.4 "hold time" survives only as a literal 0.
            let hold_is_zero = t.get(2) == b"0";
            noreply = t.ends_with_noreply();
            let valid = (t.ntokens() == 4 && (hold_is_zero || noreply))
                || (t.ntokens() == 5 && hold_is_zero && noreply);
            if !valid {
                return self.err(ClientError::DeleteUsage, noreply);
            }
        }
        let key = t.get(1);
        if !self.key_ok(key) {
            return self.bad_format(noreply);
        }
        self.ok(Request::Delete { key, noreply })
    }

    fn arith(&self, t: &Tokens<'a>, op: ArithOp) -> Decoded<'a> {
        if t.ntokens() != 4 && t.ntokens() != 5 {
            return self.err(ProtoError::Error, false);
        }
        let noreply = t.ends_with_noreply();
        let key = t.get(1);
        if !self.key_ok(key) {
            return self.bad_format(noreply);
        }
        match parse_u64(t.get(2)) {
            Some(delta) => self.ok(Request::Arith {
                op,
                key,
                delta,
                noreply,
            }),
            None => self.err(ClientError::InvalidDelta, noreply),
        }
    }

    fn touch(&self, t: &Tokens<'a>) -> Decoded<'a> {
        if t.ntokens() != 4 && t.ntokens() != 5 {
            return self.err(ProtoError::Error, false);
        }
        let noreply = t.ends_with_noreply();
        let key = t.get(1);
        if !self.key_ok(key) {
            return self.bad_format(noreply);
        }
        match parse_i32_truncating(t.get(2)) {
            Some(exptime) => self.ok(Request::Touch {
                key,
                exptime: exptime.into(),
                noreply,
            }),
            None => self.err(ClientError::InvalidExptime, noreply),
        }
    }

    fn flush_all(&self, t: &Tokens<'a>) -> Decoded<'a> {
        if !(2..=4).contains(&t.ntokens()) {
            return self.err(ProtoError::Error, false);
        }
        let noreply = t.ends_with_noreply();
        // memcached reads a delay whenever the line is longer than `flush_all [noreply]`,
        // so `flush_all noreply x` tries (and fails) to read `noreply` as the delay.
        let mut delay = 0;
        if t.ntokens() != if noreply { 3 } else { 2 } {
            match parse_i32_truncating(t.get(1)) {
                Some(d) => delay = d,
                None => {
                    return self.ok(Request::Refused {
                        gate: Gate::FlushAll,
                        error: ClientError::InvalidExptime.into(),
                        noreply,
                    })
                }
            }
        }
        self.ok(Request::FlushAll {
            delay: delay.into(),
            noreply,
        })
    }

    fn verbosity(&self, t: &Tokens<'a>) -> Decoded<'a> {
        if t.ntokens() != 3 && t.ntokens() != 4 {
            return self.err(ProtoError::Error, false);
        }
        let noreply = t.ends_with_noreply();
        match parse_u32_truncating(t.get(1)) {
            Some(level) => self.ok(Request::Verbosity { level, noreply }),
            None => self.bad_format(noreply),
        }
    }

    fn memlimit(&self, t: &Tokens<'a>) -> Decoded<'a> {
        if t.ntokens() != 3 && t.ntokens() != 4 {
            return self.err(ProtoError::Error, false);
        }
        let noreply = t.ends_with_noreply();
        match parse_u32_truncating(t.get(1)) {
            None => self.err(ProtoError::Error, noreply),
            Some(mb) if mb < 8 => self.err(ProtoError::MemlimitTooSmall, noreply),
            Some(mb) if mb > 1_000_000_000 => self.err(ProtoError::MemlimitNotMegabytes, noreply),
            Some(mb) => self.ok(Request::CacheMemlimit {
                megabytes: mb.into(),
                noreply,
            }),
        }
    }

    fn shutdown(&self, t: &Tokens<'a>) -> Decoded<'a> {
        match (t.ntokens(), t.get(1)) {
            (2, _) => self.ok(Request::Shutdown { graceful: false }),
            (3, b"graceful") => self.ok(Request::Shutdown { graceful: true }),
            _ => self.ok(Request::Refused {
                gate: Gate::Shutdown,
                error: ClientError::InvalidShutdownMode.into(),
                noreply: false,
            }),
        }
    }

    fn stats(&self, t: &Tokens<'a>) -> Decoded<'a> {
        if t.ntokens() == 2 {
            return self.ok(Request::Stats(StatsRequest::General));
        }
        let stats = match t.get(1) {
            b"reset" => StatsRequest::Reset,
            b"settings" => StatsRequest::Settings,
            b"conns" => StatsRequest::Conns,
            b"extstore" => StatsRequest::Extstore,
            b"items" => StatsRequest::Items,
            b"slabs" => StatsRequest::Slabs,
            b"sizes" => StatsRequest::Sizes,
            b"sizes_enable" => StatsRequest::SizesEnable,
            b"sizes_disable" => StatsRequest::SizesDisable,
            b"detail" => match t.get(2) {
                b"on" => StatsRequest::Detail(StatsDetail::On),
                b"off" => StatsRequest::Detail(StatsDetail::Off),
                b"dump" => StatsRequest::Detail(StatsDetail::Dump),
                _ => return self.err(ClientError::StatsDetailUsage, false),
            },
            b"cachedump" => return self.cachedump(t),
            _ => return self.err(ProtoError::Error, false),
        };
        self.ok(Request::Stats(stats))
    }

    fn cachedump(&self, t: &Tokens<'a>) -> Decoded<'a> {
        let refused = |error: ClientError| {
            self.ok(Request::Refused {
                gate: Gate::Cachedump,
                error: error.into(),
                noreply: false,
            })
        };
        if t.ntokens() < 5 {
            return refused(ClientError::BadCommandLine);
        }
        let (Some(class), Some(limit)) = (parse_u32_truncating(t.get(2)), parse_u32_truncating(t.get(3)))
        else {
            return refused(ClientError::BadCommandLineFormat);
        };
        if class >= MAX_SLAB_CLASSES {
            return refused(ClientError::IllegalSlabId);
        }
        self.ok(Request::Stats(StatsRequest::Cachedump { class, limit }))
    }

    /// ElastiCache's `config` commands, modelled on the storage and delete commands.
    fn config(&self, t: &Tokens<'a>) -> Decoded<'a> {
        let key = t.get(2);
        match (t.get(1), t.ntokens()) {
            (b"get", 4) => {
                if !self.key_ok(key) {
                    return self.bad_format(false);
                }
                self.ok(Request::ConfigGet { key })
            }
            (b"set", 6 | 7) => {
                let noreply = t.ends_with_noreply();
                if !self.key_ok(key) {
                    return self.bad_format(noreply);
                }
                let (Some(flags), Some(len)) = (
                    parse_u32_truncating(t.get(3)),
                    parse_i32_truncating(t.get(4)).and_then(value_len),
                ) else {
                    return self.bad_format(noreply);
                };
                self.data_block(key, flags, len, noreply, None, |value| Request::ConfigSet {
                    key,
                    flags,
                    value,
                    noreply,
                })
            }
            (b"delete", 4 | 5) => {
                let noreply = t.ends_with_noreply();
                if t.ntokens() == 5 && !noreply {
                    return self.err(ProtoError::Error, false);
                }
                if !self.key_ok(key) {
                    return self.bad_format(noreply);
                }
                self.ok(Request::ConfigDelete { key, noreply })
            }
            _ => self.err(ProtoError::Error, false),
        }
    }
}

/// memcached's check on a data block length: a non-negative `int` that still fits after
/// the `\r\n` is added.
fn value_len(len: i32) -> Option<usize> {
    if (0..=i32::MAX - 2).contains(&len) {
        usize::try_from(len).ok()
    } else {
        None
    }
}
