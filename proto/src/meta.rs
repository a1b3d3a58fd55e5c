//! memcached's meta text commands (`mg`, `ms`, `md`, `ma`, `mn`, `me`): decoding one
//! command (and the `ms` data block) from a byte slice, and encoding the replies.
//!
//! Pure code: no I/O, no clock, no storage. [`decode`] answers [`MetaDecoded`]: not enough
//! bytes yet, a borrowed [`MetaRequest`] plus the bytes it used, or an error with the exact
//! line memcached 1.6.18 sends, how many bytes to drop now, how many further bytes to
//! swallow (an `ms` data block that arrives after a rejected `ms` line), and whether to
//! close the connection.
//!
//! # Syntax
//!
//! `<cm> <key> <datalen (ms only)> <flag>*\r\n`. Tokens are separated by runs of spaces
//! only (a tab is part of a token), the line ends at `\n` with one optional `\r` before it,
//! and a NUL byte ends the line early, because memcached tokenizes with `strlen`. A flag is
//! identified by the first byte of its token; the rest of the token is its argument, and is
//! ignored for flags that take none (`vxyz` is `v`).
//!
//! # Numbers
//!
//! Flag arguments are read the way memcached's `safe_strto*` helpers read them (checked on
//! the wire): leading whitespace and a `+`/`-` sign are accepted, trailing garbage after a
//! whitespace byte is ignored, and out-of-range values are truncated rather than refused:
//! `T`, `N`, `R` and the `ms` data length are parsed as 64-bit then cut to 32 bits
//! (`T4294967296` is `T0`, i.e. no expiry; `ms k 4294967298` stores 2 bytes); `F` wraps to
//! 32 bits (`F4294967296` is `F0`); `C`, `D`, `J`, `E` are unsigned 64-bit and refuse a
//! `-` that makes the value negative.
//!
//! # Errors (memcached 1.6.18, byte-exact)
//!
//! * missing key (`mg\r\n`, `ms\r\n`, `md\r\n`, `ma\r\n`): `ERROR`; `me\r\n`:
//!   `CLIENT_ERROR bad command line format`.
//! * key longer than 250 bytes (before any base64 decoding), `ms` without a data length,
//!   or with a data length that is not a number or is negative: `CLIENT_ERROR bad command
//!   line format`. These `ms` errors do **not** swallow the data block, so memcached then
//!   reads the block as a command (usually `ERROR`).
//! * more than 17 flags (16 for `ms`): `CLIENT_ERROR options flags are too long` for `mg`,
//!   `CLIENT_ERROR options flags too long` for the others; no swallow.
//! * flag problems for `mg` and `ms`: the first unknown flag gives `CLIENT_ERROR invalid
//!   flag`, the first repeated flag (or a flag byte >= 127) `CLIENT_ERROR duplicate flag`;
//!   otherwise the *last* bad argument decides: `CLIENT_ERROR bad token in command line
//!   format` (N, T, R, C, E), `CLIENT_ERROR incorrect length for M token`, `CLIENT_ERROR
//!   invalid numeric delta value` (D), `CLIENT_ERROR invalid numeric initial value` (J),
//!   `CLIENT_ERROR error decoding key` (b), while a bad `F` keeps the previous message
//!   (`CLIENT_ERROR bad command line format` if none). For `md` and `ma` every one of those
//!   is `CLIENT_ERROR invalid or duplicate flag`.
//! * `O` token longer than 32 bytes including the `O`: `CLIENT_ERROR opaque token too
//!   long`.
//! * `M` mode not one of the documented letters: `CLIENT_ERROR invalid mode for ms M token`
//!   / `CLIENT_ERROR invalid mode for ma M token` (it wins over a too-long opaque).
//! * `ms` item over the size limit ([`Limits::item_fits`] on decoded key length, `F` flags
//!   and data length; with `-I 1m`, key `big` and no flags the largest value is 1048514
//!   bytes, verified): `SERVER_ERROR object too large for cache`, and memcached unlinks any
//!   old item under that key, whatever the mode (reported as `unlink`).
//! * `ms` data block not followed by `\r\n`: `CLIENT_ERROR bad data chunk`, after consuming
//!   exactly data length + 2 bytes.
//! * no `\n` within 2048 buffered bytes: the connection is closed without a reply.
//!
//! After the data length of an `ms` parsed, every error swallows data length + 2 bytes.
//!
//! memcached reports a too-long opaque and an invalid `ma` mode only after it has looked
//! the item up (so `mg` with `N` or `T` has already touched the item). This module reports
//! them at decode time, before anything happens; the reply bytes are the same.
//!
//! # Flags accepted beyond memcached 1.6.18
//!
//! `E` (explicit new cas) and `x` (`md`: drop the value, keep the item) come from later 1.6
//! releases; 1.6.18 answers `CLIENT_ERROR invalid flag` to them. They are decoded here so the
//! server can support them. memcached accepts every known flag on every command and ignores
//! the ones that do not apply (`mg foo Mx` is a plain `mg`); so does this module.
//!
//! # The `q` flag (verified on the wire)
//!
//! * `mg`: hides `EN` (miss) only. A hit is always sent, `HD` or `VA`.
//! * `ms`: hides `HD`; `NS`, `EX`, `NF` are sent.
//! * `md`: hides `HD`; `NF`, `EX` are sent.
//! * `ma`: hides `HD`/`VA` after changing an existing number, but **not** after `N`
//!   created the item (memcached quirk: that `HD`/`VA` is sent); `NF`, `NS`, `EX` are sent.
//! * `mn` has no flags and is always answered `MN`; errors are always sent.
//!
//! The reply writers below apply these rules themselves and return whether they wrote.

use crate::base64;
use crate::error::{ClientError, ProtoError, ServerError};
use crate::format::{push_i64, push_u64};
use crate::token::{parse_i64, parse_u64, Tokens};
use crate::Limits;
pub use crate::StoreMode;

mod decoder;
mod encoder;

pub use decoder::decode;
#[cfg(test)]
use decoder::decode_key_base64;
pub(crate) use decoder::decode_line;
pub use encoder::*;

/// memcached closes a connection whose buffered bytes hold no `\n` after this many; the
/// same limit as the text protocol's.
pub const MAX_PARTIAL_LINE: usize = crate::text::LONG_LINE;
/// Longest `O` token memcached echoes, counting the `O` itself.
pub const MAX_OPAQUE_TOKEN: usize = 32;
/// memcached's meta limit on its token count (command, key, flags and terminal token).
const MAX_META_NTOKENS: usize = 20;
/// Most flags any meta command can carry: 20 minus command, key and terminal token.
const MAX_FLAGS: usize = MAX_META_NTOKENS - 3;
/// Size of the inline buffer for a base64-decoded key: a 250-byte token decodes to at
/// most 187 bytes, so any key memcached accepts fits.
const KEY_BUF: usize = 250;

/// Which meta command a line is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetaCommand {
    /// `mg`
    Get,
    /// `ms`
    Set,
    /// `md`
    Delete,
    /// `ma`
    Arithmetic,
    /// `mn`
    Noop,
    /// `me`
    Debug,
}

impl MetaCommand {
    /// The command for a first token, if it is a meta command.
    pub fn from_verb(verb: &[u8]) -> Option<MetaCommand> {
        Some(match verb {
            b"mg" => MetaCommand::Get,
            b"ms" => MetaCommand::Set,
            b"md" => MetaCommand::Delete,
            b"ma" => MetaCommand::Arithmetic,
            b"mn" => MetaCommand::Noop,
            b"me" => MetaCommand::Debug,
            _ => return None,
        })
    }

    /// The two-letter verb.
    pub fn verb(self) -> &'static [u8] {
        match self {
            MetaCommand::Get => b"mg",
            MetaCommand::Set => b"ms",
            MetaCommand::Delete => b"md",
            MetaCommand::Arithmetic => b"ma",
            MetaCommand::Noop => b"mn",
            MetaCommand::Debug => b"me",
        }
    }
}

/// The first word of `buf` as a meta command, if the buffered line starts with one. Lets a
/// dispatcher route a line without decoding it (leading spaces are skipped, as memcached's
/// tokenizer does).
pub fn peek_command(buf: &[u8]) -> Option<MetaCommand> {
    let start = buf.iter().position(|&b| b != b' ')?;
    let rest = &buf[start..];
    let end = rest
        .iter()
        .position(|&b| b == b' ' || b == b'\n' || b == b'\0' || b == b'\r')
        .unwrap_or(rest.len());
    MetaCommand::from_verb(&rest[..end])
}

/// `ma` mode (`M` flag).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArithMode {
    /// `MI`, `M+` or no `M`.
    Increment,
    /// `MD`, `M-`.
    Decrement,
}

/// The command-specific part of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetaOp<'a> {
    /// `mg`.
    Get,
    /// `ms`: the data block, without its `\r\n`.
    Set {
        /// `M` mode, `Set` by default.
        mode: StoreMode,
        /// The value.
        data: &'a [u8],
    },
    /// `md`.
    Delete,
    /// `ma`: `D` (default 1) and `J` (default 0) resolved.
    Arithmetic {
        /// `M` mode, increment by default.
        mode: ArithMode,
        /// `D`, 1 by default.
        delta: u64,
        /// `J`, 0 by default: the value an `N` auto-create seeds.
        initial: u64,
    },
    /// `mn`.
    Noop,
    /// `me`.
    Debug,
}

/// A key as sent, plus its decoded bytes when the `b` flag asked for base64.
#[derive(Clone, Copy)]
pub struct MetaKey<'a> {
    raw: &'a [u8],
    decoded: [u8; KEY_BUF],
    decoded_len: usize,
    binary: bool,
}

impl<'a> MetaKey<'a> {
    fn plain(raw: &'a [u8]) -> Self {
        MetaKey {
            raw,
            decoded: [0; KEY_BUF],
            decoded_len: 0,
            binary: false,
        }
    }

    /// The key to look up: the decoded bytes for a base64 key, else the token itself.
    pub fn bytes(&self) -> &[u8] {
        if self.binary {
            &self.decoded[..self.decoded_len]
        } else {
            self.raw
        }
    }

    /// The key token as it appeared on the line.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// True if the `b` flag made this a base64 key. Replies that echo such a key (`k`)
    /// re-encode it and add a `b` flag; memcached also remembers it on the stored item.
    pub fn is_binary(&self) -> bool {
        self.binary
    }
}

impl PartialEq for MetaKey<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw && self.binary == other.binary && self.bytes() == other.bytes()
    }
}

impl Eq for MetaKey<'_> {}

impl std::fmt::Debug for MetaKey<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetaKey")
            .field("raw", &String::from_utf8_lossy(self.raw))
            .field("binary", &self.binary)
            .field("bytes", &self.bytes())
            .finish()
    }
}

/// Every flag memcached 1.6 documents, as parsed from one request. Flags that do not
/// apply to the command are still recorded (memcached accepts and ignores them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MetaFlags<'a> {
    /// `b`: key is base64.
    pub base64: bool,
    /// `c`: return cas.
    pub return_cas: bool,
    /// `f`: return client flags.
    pub return_flags: bool,
    /// `h`: return whether the item was hit before.
    pub return_hit: bool,
    /// `k`: return the key.
    pub return_key: bool,
    /// `l`: return seconds since last access.
    pub return_last_access: bool,
    /// `q`: noreply semantics (see the module docs).
    pub quiet: bool,
    /// `s`: return value size.
    pub return_size: bool,
    /// `t`: return remaining TTL (-1 for never).
    pub return_ttl: bool,
    /// `u`: do not bump the item in the LRU.
    pub no_bump: bool,
    /// `v`: return the value (`VA` instead of `HD`).
    pub return_value: bool,
    /// `I`: invalidate (ms with C: accept older cas and mark stale; md: mark stale).
    pub invalidate: bool,
    /// `x`: md removes the value but keeps the item (newer memcached).
    pub remove_value: bool,
    /// `O`: opaque, the token after the `O`, echoed as ` O<opaque>`.
    pub opaque: Option<&'a [u8]>,
    /// `T`: new TTL (mg/ma touch, ms TTL, md with I).
    pub ttl: Option<i32>,
    /// `N`: vivify on miss with this TTL.
    pub vivify_ttl: Option<i32>,
    /// `R`: win the recache token if the remaining TTL is below this.
    pub recache_ttl: Option<i32>,
    /// `F`: client flags for ms (0 if absent).
    pub client_flags: Option<u32>,
    /// `C`: compare cas.
    pub compare_cas: Option<u64>,
    /// `E`: explicit new cas (newer memcached).
    pub new_cas: Option<u64>,
    /// `M`: raw mode byte; see [`MetaOp`] for the resolved mode.
    pub mode: Option<u8>,
    /// `D`: delta for ma.
    pub delta: Option<u64>,
    /// `J`: initial value for ma auto-create.
    pub initial: Option<u64>,
    order: FlagOrder,
}

/// First bytes of the flag tokens in request order: replies list return flags in the order
/// they were asked for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct FlagOrder {
    bytes: [u8; MAX_FLAGS],
    len: usize,
}

impl MetaFlags<'_> {
    /// The flag letters in request order (one per flag token, `P`/`L` included).
    pub fn order(&self) -> &[u8] {
        &self.order.bytes[..self.order.len]
    }
}

/// One decoded meta command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetaRequest<'a> {
    /// The command and its command-specific arguments.
    pub op: MetaOp<'a>,
    /// The key (empty for `mn`).
    pub key: MetaKey<'a>,
    /// All flags, in parsed form and in request order.
    pub flags: MetaFlags<'a>,
}

impl MetaRequest<'_> {
    /// The command this request is.
    pub fn command(&self) -> MetaCommand {
        match self.op {
            MetaOp::Get => MetaCommand::Get,
            MetaOp::Set { .. } => MetaCommand::Set,
            MetaOp::Delete => MetaCommand::Delete,
            MetaOp::Arithmetic { .. } => MetaCommand::Arithmetic,
            MetaOp::Noop => MetaCommand::Noop,
            MetaOp::Debug => MetaCommand::Debug,
        }
    }
}

/// Every error line the meta commands produce. Lines shared with the classic text protocol
/// (`ERROR`, `bad command line format`, `bad data chunk`, `object too large for cache`,
/// the out-of-memory and non-numeric lines, the silent close) are [`ProtoError`]s, so each
/// wire text is still spelled once in the crate; the meta-only ones are variants here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MetaError {
    /// A line the text protocol also uses.
    Proto(ProtoError),
    /// Too many flags on `mg` (`options flags are too long`).
    GetTooManyFlags,
    /// Too many flags on `ms`, `md`, `ma` (`options flags too long`).
    TooManyFlags,
    /// Unknown flag letter (`mg`, `ms`).
    InvalidFlag,
    /// Repeated flag, or a flag byte of 127 or more (`mg`, `ms`).
    DuplicateFlag,
    /// Bad number after `N`, `T`, `R`, `C` or `E` (`mg`, `ms`).
    BadToken,
    /// `M` token not exactly two bytes (`mg`, `ms`).
    BadModeLength,
    /// Bad `D` delta (`mg`, `ms`).
    InvalidDelta,
    /// Bad `J` initial value (`mg`, `ms`).
    InvalidInitial,
    /// `b` key that does not decode (`mg`, `ms`).
    KeyDecode,
    /// Any flag error on `md` and `ma`.
    InvalidOrDuplicateFlag,
    /// `O` token longer than [`MAX_OPAQUE_TOKEN`].
    OpaqueTooLong,
    /// `ms` mode letter not one of `E A P R S`.
    InvalidSetMode,
    /// `ma` mode letter not one of `I + D -`.
    InvalidArithMode,
}

impl MetaError {
    /// `ERROR`: not a meta command, or a meta command without its key.
    pub const UNKNOWN_COMMAND: MetaError = MetaError::Proto(ProtoError::Error);
    /// `CLIENT_ERROR bad command line format`.
    pub const BAD_FORMAT: MetaError = MetaError::Proto(ProtoError::Client(ClientError::BadCommandLineFormat));
    /// `CLIENT_ERROR bad data chunk`.
    pub const BAD_DATA_CHUNK: MetaError = MetaError::Proto(ProtoError::Client(ClientError::BadDataChunk));
    /// `SERVER_ERROR object too large for cache`.
    pub const TOO_LARGE: MetaError = MetaError::Proto(ProtoError::Server(ServerError::ObjectTooLarge));
    /// Server side: `SERVER_ERROR out of memory storing object` (ms).
    pub const OUT_OF_MEMORY_STORING: MetaError =
        MetaError::Proto(ProtoError::Server(ServerError::OutOfMemoryStoring));
    /// Server side: `CLIENT_ERROR cannot increment or decrement non-numeric value` (ma).
    pub const NON_NUMERIC: MetaError = MetaError::Proto(ProtoError::Client(ClientError::NonNumericValue));
    /// Server side: `SERVER_ERROR out of memory` (ma).
    pub const OUT_OF_MEMORY: MetaError = MetaError::Proto(ProtoError::Server(ServerError::OutOfMemory));
    /// No `\n` within [`MAX_PARTIAL_LINE`] bytes: close without a reply.
    pub const LINE_TOO_LONG: MetaError = MetaError::Proto(ProtoError::LineTooLong);

    /// The reply line including `\r\n` (empty for the silent close).
    pub fn line(self) -> &'static [u8] {
        match self {
            MetaError::Proto(e) => e.as_wire(),
            MetaError::GetTooManyFlags => b"CLIENT_ERROR options flags are too long\r\n",
            MetaError::TooManyFlags => b"CLIENT_ERROR options flags too long\r\n",
            MetaError::InvalidFlag => b"CLIENT_ERROR invalid flag\r\n",
            MetaError::DuplicateFlag => b"CLIENT_ERROR duplicate flag\r\n",
            MetaError::BadToken => b"CLIENT_ERROR bad token in command line format\r\n",
            MetaError::BadModeLength => b"CLIENT_ERROR incorrect length for M token\r\n",
            MetaError::InvalidDelta => b"CLIENT_ERROR invalid numeric delta value\r\n",
            MetaError::InvalidInitial => b"CLIENT_ERROR invalid numeric initial value\r\n",
            MetaError::KeyDecode => b"CLIENT_ERROR error decoding key\r\n",
            MetaError::InvalidOrDuplicateFlag => b"CLIENT_ERROR invalid or duplicate flag\r\n",
            MetaError::OpaqueTooLong => b"CLIENT_ERROR opaque token too long\r\n",
            MetaError::InvalidSetMode => b"CLIENT_ERROR invalid mode for ms M token\r\n",
            MetaError::InvalidArithMode => b"CLIENT_ERROR invalid mode for ma M token\r\n",
        }
    }

    /// Appends [`MetaError::line`].
    pub fn write(self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.line());
    }
}

impl From<ProtoError> for MetaError {
    fn from(e: ProtoError) -> Self {
        MetaError::Proto(e)
    }
}

/// Outcome of [`decode`]; the same shape as the text decoder's.
// The request carries its base64-decoded key inline (a few hundred bytes) so decoding
// never allocates; one such value per command is cheap to move.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetaDecoded<'a> {
    /// No complete command (or `ms` data block) yet; read more and call again.
    Incomplete,
    /// A command that used the first `consumed` bytes.
    Request {
        /// The command, borrowing from the buffer.
        request: MetaRequest<'a>,
        /// Bytes used: the line and, for `ms`, the data block with its `\r\n`.
        consumed: usize,
    },
    /// Malformed input. memcached always sends meta errors, `q` or not.
    Error {
        /// What was wrong; [`MetaError::line`] is the reply.
        error: MetaError,
        /// Bytes to drop from the front of the buffer now (never more than buffered).
        consumed: usize,
        /// Further bytes to discard as they arrive: the data block of a refused `ms`.
        swallow: usize,
        /// Close the connection after the reply (only the silent long-line close).
        close: bool,
        /// A key whose stored item must be unlinked: memcached drops the old value when an
        /// `ms` (any mode) is refused as too large, so it cannot be read stale.
        unlink: Option<MetaKey<'a>>,
    },
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod prop;
