//! memcached's binary protocol: one request frame decoded from a byte slice, and response
//! frames encoded into a `Vec<u8>`.
//!
//! Pure code: no I/O, no clock, no storage. [`decode`] looks at the bytes a connection has
//! buffered and answers with one of three things ([`BinDecoded`]): not enough bytes yet, a
//! borrowed [`BinRequest`] plus how many bytes it used, or a [`BinError`] saying what
//! memcached 1.6 would put on the wire, whether it would hang up, and how many bytes of the
//! bad frame to throw away.
//!
//! # Frame layout
//!
//! Every frame starts with a 24-byte header, all integers big-endian:
//!
//! | offset | size | request            | response           |
//! |--------|------|--------------------|--------------------|
//! | 0      | 1    | magic `0x80`       | magic `0x81`       |
//! | 1      | 1    | opcode             | opcode (echoed)    |
//! | 2      | 2    | key length         | key length         |
//! | 4      | 1    | extras length      | extras length      |
//! | 5      | 1    | data type (`0`)    | data type (`0`)    |
//! | 6      | 2    | vbucket id         | status             |
//! | 8      | 4    | total body length  | total body length  |
//! | 12     | 4    | opaque             | opaque (echoed)    |
//! | 16     | 8    | cas                | cas                |
//!
//! The body follows: extras, then key, then value; the value length is what is left of the
//! body length. memcached ignores the data type and vbucket fields; they are passed through.
//!
//! # What memcached 1.6.18 does with bad frames (checked against the real server)
//!
//! The checks run in this order, and [`decode`] runs them in the same order so the first
//! failing one decides the reply:
//!
//! 1. **Bad magic** (first byte not `0x80`): the connection is closed with no reply.
//!    (On a brand-new connection memcached picks the protocol from the first byte, so a
//!    non-`0x80` first byte is treated as a text command instead; that choice belongs to the
//!    server, not to this module.)
//! 2. **Key length or key + extras length larger than the body length**: status
//!    `Unknown command` (0x81) and the connection is closed. This and every later check
//!    wait until header, extras and key are buffered, as memcached reads them before it
//!    looks at anything but the magic (so a frame announcing more extras and key than it
//!    sends gets no answer until they arrive).
//! 3. **Key longer than 250 bytes** (`Limits::max_key_len`): status `Invalid arguments`
//!    (0x04) and the connection is closed, whatever the opcode.
//! 4. **Unknown opcode**: status `Unknown command` (0x81); the connection stays open and the
//!    rest of the frame is skipped. memcached itself skips *body length* bytes counted from
//!    the end of the key, i.e. it over-reads by extras + key length and loses sync when those
//!    are non-zero; this module skips exactly the rest of the frame instead (documented
//!    divergence). `Verbosity` (0x1b) is one of these: memcached 1.6.18 has no handler for
//!    it. It also treats the SASL opcodes (when built or started without SASL, after their
//!    shape checks) and the ElastiCache config opcodes (0x60..=0x67) as unknown; this module
//!    decodes those and leaves the choice of reply to the server.
//! 5. **Wrong extras/key/body shape for the opcode** (e.g. `Set` without its 8 extras bytes,
//!    `Get` with extras, `Noop` with a body): status `Invalid arguments` (0x04) and the
//!    connection is closed.
//! 6. **Item too large** (opcodes with a value): status `Too large` (0x03), the connection
//!    is kept and the value bytes are swallowed. Decided, like memcached, from key length,
//!    flags and value length once header, extras and key are buffered
//!    ([`Limits::item_fits`]; with `-I 1m`, key `big` and flags 0 the largest value is
//!    1048514 bytes, verified). For `Set`/`SetQ` (only) memcached also unlinks the old
//!    item, reported in [`BinError::unlink`]. memcached (1.6.18) holds the value length in a
//!    C int: a value length of 2^31 or more is negative there and nothing is swallowed, the
//!    following bytes being read as the next frame; this module does the same.
//!
//! Error replies carry a fixed text body ([`Status::message`]), e.g. a `Get` miss is status
//! 1 with body `Not found`. `GetK`/`GatK` misses instead echo the key with no text.
//!
//! # Quiet opcodes
//!
//! memcached 1.6.18, verified on the wire ([`suppresses`] encodes this table):
//!
//! | quiet opcode | suppressed reply | still sent |
//! |---|---|---|
//! | `GetQ`, `GetKQ`, `GatQ`, `GatKQ` | miss (`Key not found`) | hits, all other errors |
//! | `SetQ`, `AddQ`, `ReplaceQ`, `AppendQ`, `PrependQ` | success | `Key exists`, `Key not found`, `Not stored`, `Too large`, ... |
//! | `DeleteQ` | success | `Key not found`, `Key exists` |
//! | `IncrementQ`, `DecrementQ` | success (including auto-create) | `Key not found`, `Non-numeric`, `Key exists` |
//! | `FlushQ` | success | errors |
//! | `QuitQ` | the reply (the connection is closed silently) | — |
//! | `ConfigGetQ`, `ConfigGetKQ` | miss | hits, errors (by analogy with `GetQ`) |
//! | `ConfigSetQ`, `ConfigDeleteQ` | success | errors (by analogy with `SetQ`) |
//!
//! Replies that are sent keep the request's opcode, quiet or not (a `GetQ` hit is answered
//! with opcode `0x09`).
//!
//! # Opcodes with loose length checks
//!
//! memcached does not check the body length of `Touch`/`Gat*` and `Stat` beyond extras +
//! key: any further body bytes are left in the stream and read as the next header (which
//! usually fails the magic check and closes the connection). [`decode`] reproduces that by
//! consuming only header + extras + key for these opcodes.

use crate::Limits;
pub use crate::StoreMode;

mod decoder;
mod encoder;

pub use decoder::decode;
pub use encoder::*;

/// Magic byte that starts every request frame.
pub const MAGIC_REQUEST: u8 = 0x80;
/// Magic byte that starts every response frame.
pub const MAGIC_RESPONSE: u8 = 0x81;
/// Length of the fixed frame header.
pub const HEADER_LEN: usize = 24;
/// `Increment`/`Decrement` expiration meaning "do not create the item on a miss".
pub const ARITH_NO_CREATE: u32 = 0xffff_ffff;

/// Binary protocol opcodes: every one memcached 1.6 handles, plus `Verbosity` and the
/// ElastiCache cluster-configuration opcodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Opcode {
    /// Fetch a value.
    Get = 0x00,
    /// Store unconditionally (compare-and-swap with a non-zero cas).
    Set = 0x01,
    /// Store only if absent.
    Add = 0x02,
    /// Store only if present.
    Replace = 0x03,
    /// Remove.
    Delete = 0x04,
    /// Add to a decimal value.
    Increment = 0x05,
    /// Subtract from a decimal value (floors at 0).
    Decrement = 0x06,
    /// Reply and close.
    Quit = 0x07,
    /// Invalidate everything, now or after a delay.
    Flush = 0x08,
    /// Quiet `Get`.
    GetQ = 0x09,
    /// Do nothing; answers (and so flushes quiet pipelines).
    Noop = 0x0a,
    /// Server version string.
    Version = 0x0b,
    /// `Get` that echoes the key.
    GetK = 0x0c,
    /// Quiet `GetK`.
    GetKQ = 0x0d,
    /// Add bytes after the value.
    Append = 0x0e,
    /// Add bytes before the value.
    Prepend = 0x0f,
    /// Statistics, one packet per stat, ended by an empty one.
    Stat = 0x10,
    /// Quiet `Set`.
    SetQ = 0x11,
    /// Quiet `Add`.
    AddQ = 0x12,
    /// Quiet `Replace`.
    ReplaceQ = 0x13,
    /// Quiet `Delete`.
    DeleteQ = 0x14,
    /// Quiet `Increment`.
    IncrementQ = 0x15,
    /// Quiet `Decrement`.
    DecrementQ = 0x16,
    /// Close without a reply.
    QuitQ = 0x17,
    /// Quiet `Flush`.
    FlushQ = 0x18,
    /// Quiet `Append`.
    AppendQ = 0x19,
    /// Quiet `Prepend`.
    PrependQ = 0x1a,
    /// Set log verbosity (memcached 1.6.18 answers `Unknown command`).
    Verbosity = 0x1b,
    /// Set a new expiration.
    Touch = 0x1c,
    /// Get and touch.
    Gat = 0x1d,
    /// Quiet `Gat`.
    GatQ = 0x1e,
    /// List SASL mechanisms.
    SaslListMechs = 0x20,
    /// Start SASL authentication.
    SaslAuth = 0x21,
    /// Continue SASL authentication.
    SaslStep = 0x22,
    /// `Gat` that echoes the key.
    GatK = 0x23,
    /// Quiet `GatK`.
    GatKQ = 0x24,
    /// ElastiCache: read a cluster configuration.
    ConfigGet = 0x60,
    /// Quiet `ConfigGet`.
    ConfigGetQ = 0x61,
    /// `ConfigGet` that echoes the key.
    ConfigGetK = 0x62,
    /// Quiet `ConfigGetK`.
    ConfigGetKQ = 0x63,
    /// ElastiCache: store a cluster configuration.
    ConfigSet = 0x64,
    /// Quiet `ConfigSet`.
    ConfigSetQ = 0x65,
    /// ElastiCache: delete a cluster configuration.
    ConfigDelete = 0x66,
    /// Quiet `ConfigDelete`.
    ConfigDeleteQ = 0x67,
}

impl Opcode {
    /// Every opcode, in wire order; handy for tables and tests.
    pub const ALL: [Opcode; 44] = [
        Opcode::Get,
        Opcode::Set,
        Opcode::Add,
        Opcode::Replace,
        Opcode::Delete,
        Opcode::Increment,
        Opcode::Decrement,
        Opcode::Quit,
        Opcode::Flush,
        Opcode::GetQ,
        Opcode::Noop,
        Opcode::Version,
        Opcode::GetK,
        Opcode::GetKQ,
        Opcode::Append,
        Opcode::Prepend,
        Opcode::Stat,
        Opcode::SetQ,
        Opcode::AddQ,
        Opcode::ReplaceQ,
        Opcode::DeleteQ,
        Opcode::IncrementQ,
        Opcode::DecrementQ,
        Opcode::QuitQ,
        Opcode::FlushQ,
        Opcode::AppendQ,
        Opcode::PrependQ,
        Opcode::Verbosity,
        Opcode::Touch,
        Opcode::Gat,
        Opcode::GatQ,
        Opcode::SaslListMechs,
        Opcode::SaslAuth,
        Opcode::SaslStep,
        Opcode::GatK,
        Opcode::GatKQ,
        Opcode::ConfigGet,
        Opcode::ConfigGetQ,
        Opcode::ConfigGetK,
        Opcode::ConfigGetKQ,
        Opcode::ConfigSet,
        Opcode::ConfigSetQ,
        Opcode::ConfigDelete,
        Opcode::ConfigDeleteQ,
    ];

    /// The opcode for a wire byte, or `None` if this module does not know it.
    pub fn from_u8(b: u8) -> Option<Opcode> {
        // ALL is sorted by wire value, so a binary search finds the byte.
        Opcode::ALL
            .binary_search_by_key(&b, |op| *op as u8)
            .ok()
            .map(|i| Opcode::ALL[i])
    }

    /// The wire byte.
    pub fn as_u8(self) -> u8 {
        self as u8
    }

    /// True for the quiet variants (`GetQ`, `SetQ`, ...).
    pub fn is_quiet(self) -> bool {
        self.quiet_kind() != QuietKind::Loud
    }

    /// True for the opcodes whose hit (and miss) replies echo the key.
    pub fn returns_key(self) -> bool {
        matches!(
            self,
            Opcode::GetK
                | Opcode::GetKQ
                | Opcode::GatK
                | Opcode::GatKQ
                | Opcode::ConfigGetK
                | Opcode::ConfigGetKQ
        )
    }

    fn quiet_kind(self) -> QuietKind {
        match self {
            Opcode::GetQ
            | Opcode::GetKQ
            | Opcode::GatQ
            | Opcode::GatKQ
            | Opcode::ConfigGetQ
            | Opcode::ConfigGetKQ => QuietKind::HidesMiss,
            Opcode::SetQ
            | Opcode::AddQ
            | Opcode::ReplaceQ
            | Opcode::DeleteQ
            | Opcode::IncrementQ
            | Opcode::DecrementQ
            | Opcode::QuitQ
            | Opcode::FlushQ
            | Opcode::AppendQ
            | Opcode::PrependQ
            | Opcode::ConfigSetQ
            | Opcode::ConfigDeleteQ => QuietKind::HidesSuccess,
            _ => QuietKind::Loud,
        }
    }
}

impl From<Opcode> for u8 {
    fn from(op: Opcode) -> u8 {
        op as u8
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum QuietKind {
    Loud,
    HidesMiss,
    HidesSuccess,
}

/// True when memcached sends no reply for `status` to a request with `opcode` (the quiet
/// table in the module docs). Loud opcodes never suppress anything.
pub fn suppresses(opcode: Opcode, status: Status) -> bool {
    match opcode.quiet_kind() {
        QuietKind::Loud => false,
        QuietKind::HidesMiss => status == Status::KeyNotFound,
        QuietKind::HidesSuccess => status == Status::NoError,
    }
}

/// Response status codes, with memcached's values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum Status {
    /// Success.
    NoError = 0x00,
    /// No such item (`Not found`).
    KeyNotFound = 0x01,
    /// cas mismatch, or `Add` on an existing key.
    KeyExists = 0x02,
    /// Item exceeds the size limit.
    ValueTooLarge = 0x03,
    /// Malformed frame (memcached then closes).
    InvalidArguments = 0x04,
    /// Append/prepend to a missing item, failed auto-create.
    ItemNotStored = 0x05,
    /// Incr/decr on a non-numeric value.
    NonNumeric = 0x06,
    /// Authentication failed or required.
    AuthError = 0x20,
    /// SASL needs another step.
    AuthContinue = 0x21,
    /// Unknown opcode, or inconsistent lengths.
    UnknownCommand = 0x81,
    /// No memory for the item.
    OutOfMemory = 0x82,
}

impl Status {
    /// The wire value.
    pub fn code(self) -> u16 {
        self as u16
    }

    /// The status for a wire value, if memcached defines it.
    pub fn from_u16(v: u16) -> Option<Status> {
        Some(match v {
            0x00 => Status::NoError,
            0x01 => Status::KeyNotFound,
            0x02 => Status::KeyExists,
            0x03 => Status::ValueTooLarge,
            0x04 => Status::InvalidArguments,
            0x05 => Status::ItemNotStored,
            0x06 => Status::NonNumeric,
            0x20 => Status::AuthError,
            0x21 => Status::AuthContinue,
            0x81 => Status::UnknownCommand,
            0x82 => Status::OutOfMemory,
            _ => return None,
        })
    }

    /// The text memcached puts in the body of an error reply with this status (empty for
    /// success and for `AuthContinue`, whose body is the SASL challenge).
    pub fn message(self) -> &'static [u8] {
        match self {
            Status::NoError | Status::AuthContinue => b"",
            Status::KeyNotFound => b"Not found",
            Status::KeyExists => b"Data exists for key.",
            Status::ValueTooLarge => b"Too large.",
            Status::InvalidArguments => b"Invalid arguments",
            Status::ItemNotStored => b"Not stored.",
            Status::NonNumeric => b"Non-numeric server-side value for incr or decr",
            Status::AuthError => b"Auth failure.",
            Status::UnknownCommand => b"Unknown command",
            Status::OutOfMemory => b"Out of memory",
        }
    }
}

/// The 24-byte request header, fields in host order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Magic byte.
    pub magic: u8,
    /// Opcode byte.
    pub opcode: u8,
    /// Key length.
    pub key_len: u16,
    /// Extras length.
    pub extras_len: u8,
    /// Data type (always 0 in practice).
    pub data_type: u8,
    /// vbucket id in a request, status in a response.
    pub vbucket_or_status: u16,
    /// Extras + key + value length.
    pub body_len: u32,
    /// Echoed in the reply.
    pub opaque: u32,
    /// Compare-and-swap value (0 = none).
    pub cas: u64,
}

impl Header {
    /// Reads a header from the first [`HEADER_LEN`] bytes, or `None` if there are fewer.
    pub fn parse(buf: &[u8]) -> Option<Header> {
        let h: &[u8; HEADER_LEN] = buf.get(..HEADER_LEN)?.try_into().ok()?;
        Some(Header {
            magic: h[0],
            opcode: h[1],
            key_len: u16::from_be_bytes([h[2], h[3]]),
            extras_len: h[4],
            data_type: h[5],
            vbucket_or_status: u16::from_be_bytes([h[6], h[7]]),
            body_len: u32::from_be_bytes([h[8], h[9], h[10], h[11]]),
            opaque: u32::from_be_bytes([h[12], h[13], h[14], h[15]]),
            cas: u64::from_be_bytes([h[16], h[17], h[18], h[19], h[20], h[21], h[22], h[23]]),
        })
    }
}

/// The operation of a request, with its parsed extras and borrowed key and value.
///
/// Quietness and key-echoing are properties of [`BinRequest::opcode`], not of the command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinCommand<'a> {
    /// `Get`, `GetQ`, `GetK`, `GetKQ`.
    Get {
        /// The key.
        key: &'a [u8],
    },
    /// `Set`/`Add`/`Replace` (extras: flags, exptime) and `Append`/`Prepend` (no extras;
    /// flags and exptime are 0), with their quiet forms. A non-zero header cas makes a
    /// set/replace a compare-and-swap.
    Store {
        /// Which store.
        mode: StoreMode,
        /// The key.
        key: &'a [u8],
        /// Client flags to store.
        flags: u32,
        /// Expiration as sent (relative seconds, or a Unix time past 30 days).
        exptime: u32,
        /// The value.
        value: &'a [u8],
    },
    /// `Delete`, `DeleteQ`; a non-zero header cas must match.
    Delete {
        /// The key.
        key: &'a [u8],
    },
    /// `Increment`/`Decrement` (+Q). On a miss the item is created with `initial` unless
    /// `exptime` is [`ARITH_NO_CREATE`].
    Arith {
        /// Increment (true) or decrement.
        incr: bool,
        /// The key.
        key: &'a [u8],
        /// Amount to add or subtract.
        delta: u64,
        /// Value to create on a miss.
        initial: u64,
        /// Expiration of a created item, or [`ARITH_NO_CREATE`].
        exptime: u32,
    },
    /// `Quit`, `QuitQ`: reply (unless quiet) and close.
    Quit,
    /// `Flush`, `FlushQ`, with the optional 4-byte delay extras.
    Flush {
        /// Seconds (or Unix time) until the flush takes effect; `None` = now.
        delay: Option<u32>,
    },
    /// `Noop`.
    Noop,
    /// `Version`.
    Version,
    /// `Stat` with an optional group name in the key field (empty = general stats).
    Stat {
        /// Stat group (`settings`, `items`, `reset`, ...).
        group: &'a [u8],
    },
    /// `Verbosity` (4-byte level extras). memcached 1.6.18 answers it `Unknown command`.
    Verbosity {
        /// Requested level.
        level: u32,
    },
    /// `Touch`: new exptime, reply has the flags extras but no value.
    Touch {
        /// The key.
        key: &'a [u8],
        /// New expiration.
        exptime: u32,
    },
    /// `Gat`, `GatQ`, `GatK`, `GatKQ`.
    Gat {
        /// The key.
        key: &'a [u8],
        /// New expiration.
        exptime: u32,
    },
    /// `SaslListMechs`.
    SaslListMechs,
    /// `SaslAuth` (`step == false`) and `SaslStep`: mechanism in the key, data as value.
    Sasl {
        /// `SaslStep` rather than `SaslAuth`.
        step: bool,
        /// Mechanism name (key field).
        mechanism: &'a [u8],
        /// Mechanism data (value field).
        data: &'a [u8],
    },
    /// `ConfigGet` family (ElastiCache): config type in the key.
    ConfigGet {
        /// Configuration type, e.g. `cluster`.
        key: &'a [u8],
    },
    /// `ConfigSet`, `ConfigSetQ`: 4-byte flags extras, config body as value.
    ConfigSet {
        /// Configuration type.
        key: &'a [u8],
        /// Flags stored with it.
        flags: u32,
        /// Configuration body.
        value: &'a [u8],
    },
    /// `ConfigDelete`, `ConfigDeleteQ`.
    ConfigDelete {
        /// Configuration type.
        key: &'a [u8],
    },
}

/// One decoded request. The reply echoes `opcode` and `opaque`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BinRequest<'a> {
    /// The opcode as sent (quiet and key-echo variants kept).
    pub opcode: Opcode,
    /// Echoed in the reply.
    pub opaque: u32,
    /// Header cas: compare-and-swap for stores, deletes and arithmetic (0 = none).
    pub cas: u64,
    /// vbucket id (ignored by memcached).
    pub vbucket: u16,
    /// Data type (ignored by memcached).
    pub data_type: u8,
    /// The operation and its arguments.
    pub command: BinCommand<'a>,
}

/// Why a frame was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinErrorKind {
    /// First byte is not [`MAGIC_REQUEST`].
    BadMagic,
    /// Key length, or key + extras length, exceeds the body length.
    LengthsExceedBody,
    /// Key longer than `Limits::max_key_len`.
    KeyTooLong,
    /// Opcode this module does not know.
    UnknownOpcode,
    /// Extras, key or body length wrong for the opcode.
    BadShape,
    /// Value longer than `Limits::item_size_max`.
    ValueTooLarge,
    /// A command other than SASL's and `Version` on a connection that has not
    /// authenticated, with SASL on ([`refuse_unauthenticated`]).
    Unauthenticated,
}

/// A rejected frame and memcached's reaction to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BinError<'a> {
    /// What was wrong.
    pub kind: BinErrorKind,
    /// Reply status, or `None` to send nothing (bad magic).
    pub status: Option<Status>,
    /// Raw opcode byte from the header, echoed in the reply.
    pub opcode: u8,
    /// Opaque from the header, echoed in the reply.
    pub opaque: u32,
    /// Bytes to drop from the front of the buffer now (never more than its length).
    pub consumed: usize,
    /// Further bytes of the bad frame to discard as they arrive (they may not be buffered
    /// yet). Only non-zero when the connection stays open.
    pub swallow: usize,
    /// Close the connection after writing the reply.
    pub close: bool,
    /// A key whose stored item the server must unlink: memcached drops the old value when
    /// a `Set`/`SetQ` is refused as too large, so it cannot be read stale afterwards.
    pub unlink: Option<&'a [u8]>,
}

impl BinError<'_> {
    /// Appends the error reply (header plus [`Status::message`] body), if there is one.
    pub fn write_reply(&self, out: &mut Vec<u8>) {
        if let Some(status) = self.status {
            write_error(out, self.opcode, status, self.opaque);
        }
    }
}

/// Outcome of [`decode`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinDecoded<'a> {
    /// Not enough bytes for a whole frame yet; read more and call again.
    Incomplete,
    /// A request that used the first `consumed` bytes of the buffer.
    Request {
        /// The request, borrowing key and value from the buffer.
        request: BinRequest<'a>,
        /// Bytes of the buffer this frame used.
        consumed: usize,
    },
    /// A bad frame; see [`BinError`].
    Error(BinError<'a>),
}

/// The longest SASL mechanism name memcached takes; a longer one is `Invalid arguments`.
pub const MAX_SASL_MECH_LEN: usize = 32;

/// Whether memcached serves `opcode` before the connection authenticated (with SASL on):
/// the SASL opcodes and `Version` only.
pub fn allowed_before_auth(opcode: u8) -> bool {
    matches!(opcode, 0x20..=0x22) || opcode == Opcode::Version.as_u8()
}

/// memcached's check of a frame on a connection that must authenticate first (SASL on, not
/// yet authenticated): once header, extras and key are buffered and the lengths are
/// consistent, any opcode not [`allowed_before_auth`] is refused with `Auth failure.`
/// (status 0x20) and the connection is closed; the key length and the opcode's shape are
/// checked only after this. `None`: the frame goes on to [`decode`] (allowed, incomplete,
/// or refused by an earlier check there).
pub fn refuse_unauthenticated(buf: &[u8]) -> Option<BinError<'_>> {
    let h = Header::parse(buf)?;
    let (key_len, extras_len) = (usize::from(h.key_len), usize::from(h.extras_len));
    if h.magic != MAGIC_REQUEST
        || buf.len() < HEADER_LEN + extras_len + key_len
        || key_len + extras_len > h.body_len as usize
        || allowed_before_auth(h.opcode)
    {
        return None;
    }
    Some(BinError {
        kind: BinErrorKind::Unauthenticated,
        status: Some(Status::AuthError),
        opcode: h.opcode,
        opaque: h.opaque,
        consumed: HEADER_LEN,
        swallow: 0,
        close: true,
        unlink: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_key_len: 250,
        item_size_max: 1024 * 1024,
        item_overhead: 56,
    };

    /// Builds a request frame; lengths default to the real ones.
    fn frame(op: u8, extras: &[u8], key: &[u8], value: &[u8]) -> Vec<u8> {
        frame_with(op, extras, key, value, None, None, None)
    }

    fn frame_with(
        op: u8,
        extras: &[u8],
        key: &[u8],
        value: &[u8],
        key_len: Option<u16>,
        extras_len: Option<u8>,
        body_len: Option<u32>,
    ) -> Vec<u8> {
        let mut v = vec![MAGIC_REQUEST, op];
        v.extend_from_slice(&key_len.unwrap_or(key.len() as u16).to_be_bytes());
        v.push(extras_len.unwrap_or(extras.len() as u8));
        v.push(0);
        v.extend_from_slice(&0u16.to_be_bytes());
        let body = body_len.unwrap_or((extras.len() + key.len() + value.len()) as u32);
        v.extend_from_slice(&body.to_be_bytes());
        v.extend_from_slice(&0xdead_beefu32.to_be_bytes());
        v.extend_from_slice(&7u64.to_be_bytes());
        v.extend_from_slice(extras);
        v.extend_from_slice(key);
        v.extend_from_slice(value);
        v
    }

    fn req(buf: &[u8]) -> (BinRequest<'_>, usize) {
        match decode(buf, &LIMITS) {
            BinDecoded::Request { request, consumed } => (request, consumed),
            other => panic!("expected a request, got {other:?}"),
        }
    }

    fn error(buf: &[u8]) -> BinError<'_> {
        match decode(buf, &LIMITS) {
            BinDecoded::Error(e) => e,
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn unauthenticated_frames_are_refused_after_the_length_checks() {
        let set = frame(0x01, &[0; 8], b"k", b"v");
        let e = refuse_unauthenticated(&set).unwrap();
        assert_eq!(
            (e.kind, e.status, e.close, e.opcode),
            (BinErrorKind::Unauthenticated, Some(Status::AuthError), true, 1)
        );
        // Unknown opcodes and over-long keys are refused for authentication first.
        assert!(refuse_unauthenticated(&frame(0x50, &[], &[], &[])).is_some());
        assert!(refuse_unauthenticated(&frame(0x00, &[], &[b'k'; 300], &[])).is_some());
        for allowed in [
            frame(0x20, &[], &[], &[]),
            frame(0x21, &[], b"PLAIN", b"x"),
            frame(0x0b, &[], &[], &[]),
        ] {
            assert_eq!(refuse_unauthenticated(&allowed), None);
        }
        // Not yet buffered, bad magic, inconsistent lengths: decode decides.
        assert_eq!(refuse_unauthenticated(&set[..HEADER_LEN + 4]), None);
        let mut bad = set.clone();
        bad[0] = 0x81;
        assert_eq!(refuse_unauthenticated(&bad), None);
        let short_body = frame_with(0x01, &[0; 8], b"k", &[], None, None, Some(3));
        assert_eq!(refuse_unauthenticated(&short_body), None);
    }

    #[test]
    fn opcode_round_trip_and_unknowns() {
        for op in Opcode::ALL {
            assert_eq!(Opcode::from_u8(op.as_u8()), Some(op));
        }
        for b in [0x1f, 0x25, 0x30, 0x3c, 0x50, 0x5f, 0x68, 0xff] {
            assert_eq!(Opcode::from_u8(b), None, "{b:#x}");
        }
        assert!(Opcode::ALL.windows(2).all(|w| (w[0] as u8) < (w[1] as u8)));
    }

    #[test]
    fn decodes_each_command() {
        let set_extras = [0, 0, 0xca, 0xfe, 0, 0, 0x0e, 0x10];
        let mut arith = Vec::new();
        arith.extend_from_slice(&5u64.to_be_bytes());
        arith.extend_from_slice(&10u64.to_be_bytes());
        arith.extend_from_slice(&ARITH_NO_CREATE.to_be_bytes());
        let k = b"key".as_slice();
        let cases: Vec<(Vec<u8>, BinCommand<'static>)> = vec![
            (frame(0x00, &[], k, &[]), BinCommand::Get { key: b"key" }),
            (frame(0x0d, &[], k, &[]), BinCommand::Get { key: b"key" }),
            (
                frame(0x11, &set_extras, k, b"val"),
                BinCommand::Store {
                    mode: StoreMode::Set,
                    key: b"key",
                    flags: 0xcafe,
                    exptime: 3600,
                    value: b"val",
                },
            ),
            (
                frame(0x02, &set_extras, k, b""),
                BinCommand::Store {
                    mode: StoreMode::Add,
                    key: b"key",
                    flags: 0xcafe,
                    exptime: 3600,
                    value: b"",
                },
            ),
            (
                frame(0x03, &set_extras, k, b"v"),
                BinCommand::Store {
                    mode: StoreMode::Replace,
                    key: b"key",
                    flags: 0xcafe,
                    exptime: 3600,
                    value: b"v",
                },
            ),
            (
                frame(0x0e, &[], k, b"tail"),
                BinCommand::Store {
                    mode: StoreMode::Append,
                    key: b"key",
                    flags: 0,
                    exptime: 0,
                    value: b"tail",
                },
            ),
            (
                frame(0x1a, &[], k, b"head"),
                BinCommand::Store {
                    mode: StoreMode::Prepend,
                    key: b"key",
                    flags: 0,
                    exptime: 0,
                    value: b"head",
                },
            ),
            (frame(0x04, &[], k, &[]), BinCommand::Delete { key: b"key" }),
            (
                frame(0x05, &arith, k, &[]),
                BinCommand::Arith {
                    incr: true,
                    key: b"key",
                    delta: 5,
                    initial: 10,
                    exptime: ARITH_NO_CREATE,
                },
            ),
            (
                frame(0x16, &arith, k, &[]),
                BinCommand::Arith {
                    incr: false,
                    key: b"key",
                    delta: 5,
                    initial: 10,
                    exptime: ARITH_NO_CREATE,
                },
            ),
            (frame(0x07, &[], &[], &[]), BinCommand::Quit),
            (frame(0x08, &[], &[], &[]), BinCommand::Flush { delay: None }),
            (
                frame(0x18, &[0, 0, 0, 9], &[], &[]),
                BinCommand::Flush { delay: Some(9) },
            ),
            (frame(0x0a, &[], &[], &[]), BinCommand::Noop),
            (frame(0x0b, &[], &[], &[]), BinCommand::Version),
            (frame(0x10, &[], &[], &[]), BinCommand::Stat { group: b"" }),
            (
                frame(0x10, &[], b"items", &[]),
                BinCommand::Stat { group: b"items" },
            ),
            (
                frame(0x1c, &[0, 0, 0, 100], k, &[]),
                BinCommand::Touch {
                    key: b"key",
                    exptime: 100,
                },
            ),
            (
                frame(0x24, &[0, 0, 0, 100], k, &[]),
                BinCommand::Gat {
                    key: b"key",
                    exptime: 100,
                },
            ),
            (frame(0x20, &[], &[], &[]), BinCommand::SaslListMechs),
            (
                frame(0x21, &[], b"PLAIN", b"\0u\0p"),
                BinCommand::Sasl {
                    step: false,
                    mechanism: b"PLAIN",
                    data: b"\0u\0p",
                },
            ),
            (
                frame(0x22, &[], b"PLAIN", b"x"),
                BinCommand::Sasl {
                    step: true,
                    mechanism: b"PLAIN",
                    data: b"x",
                },
            ),
            (
                frame(0x60, &[], b"cluster", &[]),
                BinCommand::ConfigGet { key: b"cluster" },
            ),
            (
                frame(0x64, &[0, 0, 0, 1], b"cluster", b"1\nhost|ip|11211\n"),
                BinCommand::ConfigSet {
                    key: b"cluster",
                    flags: 1,
                    value: b"1\nhost|ip|11211\n",
                },
            ),
            (
                frame(0x67, &[], b"cluster", &[]),
                BinCommand::ConfigDelete { key: b"cluster" },
            ),
        ];
        for (buf, want) in cases {
            let (r, consumed) = req(&buf);
            assert_eq!(r.command, want, "opcode {:#x}", buf[1]);
            assert_eq!(consumed, buf.len());
            assert_eq!(r.opaque, 0xdead_beef);
            assert_eq!(r.cas, 7);
            assert_eq!(r.opcode.as_u8(), buf[1]);
        }
    }

    #[test]
    fn incomplete_until_whole_frame_then_exact_consumption() {
        let mut buf = frame(0x01, &[0; 8], b"k", b"value");
        let full = buf.len();
        for cut in 0..full {
            assert_eq!(decode(&buf[..cut], &LIMITS), BinDecoded::Incomplete, "cut {cut}");
        }
        buf.extend_from_slice(&frame(0x0a, &[], &[], &[]));
        let (_, consumed) = req(&buf);
        assert_eq!(consumed, full);
        let (noop, _) = req(&buf[consumed..]);
        assert_eq!(noop.command, BinCommand::Noop);
    }

    #[test]
    fn bad_frames_follow_memcached() {
        struct Case {
            name: &'static str,
            buf: Vec<u8>,
            kind: BinErrorKind,
            status: Option<Status>,
            swallow: usize,
            close: bool,
        }
        let c = |name, buf, kind, status, swallow, close| Case {
            name,
            buf,
            kind,
            status,
            swallow,
            close,
        };
        // memcached's answer to a frame whose extras, key or body do not fit its opcode.
        let bad_shape = |name, buf| {
            c(
                name,
                buf,
                BinErrorKind::BadShape,
                Some(Status::InvalidArguments),
                0,
                true,
            )
        };
        let mut bad_magic = frame(0x0a, &[], &[], &[]);
        bad_magic[0] = 0x81;
        let cases = vec![
            c("bad magic", bad_magic, BinErrorKind::BadMagic, None, 0, true),
            c(
                "key > body",
                frame_with(0x00, &[], b"bk", &[], None, None, Some(1)),
                BinErrorKind::LengthsExceedBody,
                Some(Status::UnknownCommand),
                0,
                true,
            ),
            c(
                "key + extras > body",
                frame_with(0x01, &[0; 8], b"bk", &[], None, None, Some(9)),
                BinErrorKind::LengthsExceedBody,
                Some(Status::UnknownCommand),
                0,
                true,
            ),
            c(
                "key 251",
                frame(0x00, &[], &[b'a'; 251], &[]),
                BinErrorKind::KeyTooLong,
                Some(Status::InvalidArguments),
                0,
                true,
            ),
            c(
                "unknown opcode with long key",
                frame(0x50, &[], &[b'a'; 251], &[]),
                BinErrorKind::KeyTooLong,
                Some(Status::InvalidArguments),
                0,
                true,
            ),
            c(
                "unknown opcode",
                frame(0x50, &[1], b"ab", b"xyz"),
                BinErrorKind::UnknownOpcode,
                Some(Status::UnknownCommand),
                6,
                false,
            ),
            bad_shape("get with extras", frame(0x00, &[0; 4], b"bk", &[])),
            bad_shape("get without key", frame(0x00, &[], &[], &[])),
            bad_shape("get with value", frame(0x00, &[], b"k", b"v")),
            bad_shape("set extras 4", frame(0x01, &[0; 4], b"bk", b"v")),
            bad_shape("set without key", frame(0x01, &[0; 8], &[], b"v")),
            bad_shape("noop with body", frame(0x0a, &[], &[], b"x")),
            bad_shape("version with key", frame(0x0b, &[], b"k", &[])),
            bad_shape("quit with key", frame(0x07, &[], b"k", &[])),
            bad_shape("flush extras 8", frame(0x08, &[0; 8], &[], &[])),
            bad_shape("flush with key", frame(0x08, &[], b"k", &[])),
            bad_shape("delete with extras", frame(0x04, &[0; 4], b"k", &[])),
            bad_shape("incr extras 8", frame(0x05, &[0; 8], b"k", &[])),
            bad_shape("incr with value", frame(0x05, &[0; 20], b"k", b"zz")),
            bad_shape("touch extras 8", frame(0x1c, &[0; 8], b"k", &[])),
            bad_shape("touch no key", frame(0x1c, &[0; 4], &[], &[])),
            bad_shape("stat with extras", frame(0x10, &[0; 4], &[], &[])),
            bad_shape("append with extras", frame(0x0e, &[0; 4], b"k", b"x")),
            bad_shape("append without key", frame(0x0e, &[], &[], b"x")),
            bad_shape("sasl list with key", frame(0x20, &[], b"k", &[])),
            bad_shape("sasl auth without key", frame(0x21, &[], &[], b"x")),
            c(
                "set value too large",
                frame_with(0x01, &[0; 8], b"big", &[], None, None, Some(11 + 2 * 1024 * 1024)),
                BinErrorKind::ValueTooLarge,
                Some(Status::ValueTooLarge),
                2 * 1024 * 1024,
                false,
            ),
            c(
                "append value too large, value length 2^31 - 1",
                frame_with(0x0e, &[], b"big", &[], None, None, Some(i32::MAX as u32 + 3)),
                BinErrorKind::ValueTooLarge,
                Some(Status::ValueTooLarge),
                i32::MAX as usize,
                false,
            ),
            // memcached's value length is a C int: 2^31 or more is negative, nothing is
            // swallowed and the next bytes are read as a frame (verified on 1.6.18).
            c(
                "append value too large, body len near u32::MAX",
                frame_with(0x0e, &[], b"big", &[], None, None, Some(u32::MAX)),
                BinErrorKind::ValueTooLarge,
                Some(Status::ValueTooLarge),
                0,
                false,
            ),
            c(
                "set with body length 0xFFFFFFF0",
                frame_with(0x01, &[0; 8], b"big", &[], None, None, Some(0xFFFF_FFF0)),
                BinErrorKind::ValueTooLarge,
                Some(Status::ValueTooLarge),
                0,
                false,
            ),
            // memcached 1.6.18 has no Verbosity handler, whatever the frame's shape.
            c(
                "verbosity",
                frame(0x1b, &[0, 0, 0, 2], &[], &[]),
                BinErrorKind::UnknownOpcode,
                Some(Status::UnknownCommand),
                4,
                false,
            ),
            c(
                "verbosity without extras",
                frame(0x1b, &[], &[], &[]),
                BinErrorKind::UnknownOpcode,
                Some(Status::UnknownCommand),
                0,
                false,
            ),
        ];
        for case in cases {
            let e = error(&case.buf);
            assert_eq!(e.kind, case.kind, "{}", case.name);
            assert_eq!(e.status, case.status, "{}", case.name);
            assert_eq!(e.swallow, case.swallow, "{}", case.name);
            assert_eq!(e.close, case.close, "{}", case.name);
            let consumed = if case.kind == BinErrorKind::ValueTooLarge {
                HEADER_LEN + case.buf[4] as usize + 3
            } else {
                HEADER_LEN
            };
            assert_eq!(e.consumed, consumed, "{}", case.name);
            let unlink =
                (case.kind == BinErrorKind::ValueTooLarge && case.buf[1] == 0x01).then_some(&b"big"[..]);
            assert_eq!(e.unlink, unlink, "{}", case.name);
            assert_eq!(e.opcode, case.buf[1], "{}", case.name);
        }
    }

    #[test]
    fn nothing_is_checked_before_extras_and_key_are_buffered() {
        // Key length 5 over a body of 3: memcached waits for the 5 key bytes, then answers
        // `Unknown command` and closes (verified on 1.6.18).
        let buf = frame_with(0x00, &[], b"abc", &[], None, None, Some(3));
        let mut short = buf.clone();
        short[2..4].copy_from_slice(&5u16.to_be_bytes());
        assert_eq!(decode(&short, &LIMITS), BinDecoded::Incomplete);
        short.extend_from_slice(b"de");
        assert_eq!(error(&short).kind, BinErrorKind::LengthsExceedBody);
        // A key over 250 bytes is refused only once it has arrived.
        let long = frame(0x00, &[], &[b'a'; 300], &[]);
        assert_eq!(decode(&long[..HEADER_LEN + 10], &LIMITS), BinDecoded::Incomplete);
        assert_eq!(error(&long).kind, BinErrorKind::KeyTooLong);
    }

    #[test]
    fn loose_opcodes_leave_extra_body_in_stream() {
        // memcached reads only extras + key for touch/gat/stat; the rest is the next header.
        let buf = frame(0x1c, &[0, 0, 0, 5], b"k", b"vv");
        let (r, consumed) = req(&buf);
        assert_eq!(
            r.command,
            BinCommand::Touch {
                key: b"k",
                exptime: 5
            }
        );
        assert_eq!(consumed, HEADER_LEN + 4 + 1);
        let buf = frame(0x10, &[], b"slabs", b"junk");
        let (r, consumed) = req(&buf);
        assert_eq!(r.command, BinCommand::Stat { group: b"slabs" });
        assert_eq!(consumed, HEADER_LEN + 5);
    }

    #[test]
    fn value_size_limit_is_memcacheds_item_sum() {
        // Checked on memcached 1.6.18 with -I 1m: key "big", flags 0, value 1048514 is
        // stored and 1048515 is "Too large."; with flags 1 the limit drops by 4 bytes.
        let cases = [
            (0u32, 1048514usize, true),
            (0, 1048515, false),
            (1, 1048510, true),
            (1, 1048511, false),
        ];
        for (flags, len, fits) in cases {
            let mut extras = flags.to_be_bytes().to_vec();
            extras.extend_from_slice(&[0; 4]);
            let buf = frame(0x01, &extras, b"big", &vec![b'a'; len]);
            let got = decode(&buf, &LIMITS);
            assert_eq!(
                matches!(got, BinDecoded::Request { .. }),
                fits,
                "flags {flags} len {len}"
            );
        }
        // Add and append never unlink; an incomplete key delays the verdict.
        let buf = frame_with(0x02, &[0; 8], b"big", &[], None, None, Some(11 + 2_000_000));
        assert_eq!(error(&buf).unlink, None);
        assert_eq!(decode(&buf[..30], &LIMITS), BinDecoded::Incomplete);
    }

    #[test]
    fn quiet_table() {
        use Status::*;
        let hides_miss = [
            Opcode::GetQ,
            Opcode::GetKQ,
            Opcode::GatQ,
            Opcode::GatKQ,
            Opcode::ConfigGetQ,
            Opcode::ConfigGetKQ,
        ];
        let hides_success = [
            Opcode::SetQ,
            Opcode::AddQ,
            Opcode::ReplaceQ,
            Opcode::DeleteQ,
            Opcode::IncrementQ,
            Opcode::DecrementQ,
            Opcode::QuitQ,
            Opcode::FlushQ,
            Opcode::AppendQ,
            Opcode::PrependQ,
            Opcode::ConfigSetQ,
            Opcode::ConfigDeleteQ,
        ];
        let all_status = [
            NoError,
            KeyNotFound,
            KeyExists,
            ValueTooLarge,
            InvalidArguments,
            ItemNotStored,
            NonNumeric,
            AuthError,
            AuthContinue,
            UnknownCommand,
            OutOfMemory,
        ];
        for op in Opcode::ALL {
            for st in all_status {
                let want = (hides_miss.contains(&op) && st == KeyNotFound)
                    || (hides_success.contains(&op) && st == NoError);
                assert_eq!(suppresses(op, st), want, "{op:?} {st:?}");
            }
            assert_eq!(
                op.is_quiet(),
                hides_miss.contains(&op) || hides_success.contains(&op),
                "{op:?}"
            );
        }
    }

    #[test]
    fn status_codes_round_trip() {
        for v in 0..=u16::MAX {
            if let Some(s) = Status::from_u16(v) {
                assert_eq!(s.code(), v);
            }
        }
    }

    /// Reply bytes captured from memcached 1.6.18.
    #[test]
    fn encoders_match_memcached_bytes() {
        let opq: u32 = 0xdead_beef;
        let hdr = |op: u8, kl: u16, el: u8, st: u16, bl: u32, cas: u64| {
            let mut v = vec![0x81, op];
            v.extend_from_slice(&kl.to_be_bytes());
            v.push(el);
            v.push(0);
            v.extend_from_slice(&st.to_be_bytes());
            v.extend_from_slice(&bl.to_be_bytes());
            v.extend_from_slice(&opq.to_be_bytes());
            v.extend_from_slice(&cas.to_be_bytes());
            v
        };
        let cat = |a: Vec<u8>, b: &[u8]| [a.as_slice(), b].concat();
        let cases: Vec<(&str, Vec<u8>, Vec<u8>)> = vec![
            (
                "get miss",
                {
                    let mut o = Vec::new();
                    write_get_miss(&mut o, Opcode::Get, opq, b"nokey");
                    o
                },
                cat(hdr(0x00, 0, 0, 1, 9, 0), b"Not found"),
            ),
            (
                "getk miss",
                {
                    let mut o = Vec::new();
                    write_get_miss(&mut o, Opcode::GetK, opq, b"nokey");
                    o
                },
                cat(hdr(0x0c, 5, 0, 1, 5, 0), b"nokey"),
            ),
            (
                "getq hit",
                {
                    let mut o = Vec::new();
                    write_get_hit(&mut o, Opcode::GetQ, opq, 48, 0xcafe, b"bk", b"val");
                    o
                },
                cat(hdr(0x09, 0, 4, 0, 7, 48), b"\x00\x00\xca\xfeval"),
            ),
            (
                "gatkq hit",
                {
                    let mut o = Vec::new();
                    write_get_hit(&mut o, Opcode::GatKQ, opq, 55, 1, b"bk", b"PREv2APP");
                    o
                },
                cat(hdr(0x24, 2, 4, 0, 14, 55), b"\x00\x00\x00\x01bkPREv2APP"),
            ),
            (
                "touch hit",
                {
                    let mut o = Vec::new();
                    write_touch_hit(&mut o, Opcode::Touch, opq, 55, 1);
                    o
                },
                cat(hdr(0x1c, 0, 4, 0, 4, 55), b"\x00\x00\x00\x01"),
            ),
            (
                "addq exists",
                {
                    let mut o = Vec::new();
                    write_error(&mut o, Opcode::AddQ, Status::KeyExists, opq);
                    o
                },
                cat(hdr(0x12, 0, 0, 2, 20, 0), b"Data exists for key."),
            ),
            (
                "incr",
                {
                    let mut o = Vec::new();
                    write_arith(&mut o, Opcode::Increment, opq, 51, 6);
                    o
                },
                cat(hdr(0x05, 0, 0, 0, 8, 51), &6u64.to_be_bytes()),
            ),
            (
                "set ok",
                {
                    let mut o = Vec::new();
                    write_status_only(&mut o, Opcode::Set, Status::NoError, opq, 48);
                    o
                },
                hdr(0x01, 0, 0, 0, 0, 48),
            ),
            (
                "version",
                {
                    let mut o = Vec::new();
                    write_version(&mut o, opq, b"1.6.18");
                    o
                },
                cat(hdr(0x0b, 0, 0, 0, 6, 0), b"1.6.18"),
            ),
            (
                "stat",
                {
                    let mut o = Vec::new();
                    write_stat(&mut o, opq, b"maxconns", b"1024");
                    write_stat_end(&mut o, opq);
                    o
                },
                [
                    cat(hdr(0x10, 8, 0, 0, 12, 0), b"maxconns1024"),
                    hdr(0x10, 0, 0, 0, 0, 0),
                ]
                .concat(),
            ),
            (
                "unknown command",
                {
                    let mut o = Vec::new();
                    error(&frame(0x50, &[], &[], &[])).write_reply(&mut o);
                    o
                },
                cat(hdr(0x50, 0, 0, 0x81, 15, 0), b"Unknown command"),
            ),
            (
                "invalid arguments",
                {
                    let mut o = Vec::new();
                    error(&frame(0x00, &[0; 4], b"bk", &[])).write_reply(&mut o);
                    o
                },
                cat(hdr(0x00, 0, 0, 4, 17, 0), b"Invalid arguments"),
            ),
            (
                "too large",
                {
                    let mut o = Vec::new();
                    write_error(&mut o, Opcode::SetQ, Status::ValueTooLarge, opq);
                    o
                },
                cat(hdr(0x11, 0, 0, 3, 10, 0), b"Too large."),
            ),
            (
                "non-numeric",
                {
                    let mut o = Vec::new();
                    write_error(&mut o, Opcode::Increment, Status::NonNumeric, opq);
                    o
                },
                cat(
                    hdr(0x05, 0, 0, 6, 46, 0),
                    b"Non-numeric server-side value for incr or decr",
                ),
            ),
            (
                "not stored",
                {
                    let mut o = Vec::new();
                    write_error(&mut o, Opcode::AppendQ, Status::ItemNotStored, opq);
                    o
                },
                cat(hdr(0x19, 0, 0, 5, 11, 0), b"Not stored."),
            ),
        ];
        for (name, got, want) in cases {
            assert_eq!(got, want, "{name}");
        }
        let mut o = Vec::new();
        error(&{
            let mut f = frame(0x0a, &[], &[], &[]);
            f[0] = 0;
            f
        })
        .write_reply(&mut o);
        assert!(o.is_empty(), "bad magic closes without a reply");
    }
}

#[cfg(test)]
mod prop {
    use super::*;
    use proptest::prelude::*;

    fn check(buf: &[u8], limits: &Limits) {
        match decode(buf, limits) {
            BinDecoded::Incomplete => {}
            BinDecoded::Request {
                request: req,
                consumed,
            } => {
                assert!(consumed >= HEADER_LEN && consumed <= buf.len());
                let key = match req.command {
                    BinCommand::Get { key }
                    | BinCommand::Store { key, .. }
                    | BinCommand::Delete { key }
                    | BinCommand::Arith { key, .. }
                    | BinCommand::Touch { key, .. }
                    | BinCommand::Gat { key, .. }
                    | BinCommand::ConfigGet { key }
                    | BinCommand::ConfigSet { key, .. }
                    | BinCommand::ConfigDelete { key } => Some(key),
                    BinCommand::Sasl { mechanism, .. } => Some(mechanism),
                    _ => None,
                };
                if let Some(key) = key {
                    assert!(!key.is_empty() && key.len() <= limits.max_key_len);
                }
            }
            BinDecoded::Error(e) => {
                assert!(e.consumed <= buf.len());
                assert!(!(e.close && e.swallow > 0));
                let mut out = Vec::new();
                e.write_reply(&mut out);
            }
        }
    }

    /// A plausible header (request magic, known or unknown opcode, small lengths) so the
    /// search reaches the per-opcode checks instead of dying on the magic byte.
    fn framed() -> impl Strategy<Value = Vec<u8>> {
        (
            any::<u8>(),
            0u16..300,
            prop_oneof![Just(0u8), Just(4), Just(8), Just(20), any::<u8>()],
            0u32..400,
            proptest::collection::vec(any::<u8>(), 0..400),
        )
            .prop_map(|(op, kl, el, bl, body)| {
                let mut v = vec![MAGIC_REQUEST, op];
                v.extend_from_slice(&kl.to_be_bytes());
                v.push(el);
                v.push(0);
                v.extend_from_slice(&[0, 0]);
                v.extend_from_slice(&bl.to_be_bytes());
                v.extend_from_slice(&[0; 12]);
                v.extend_from_slice(&body);
                v
            })
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(buf in proptest::collection::vec(any::<u8>(), 0..600)) {
            check(&buf, &Limits::default());
        }

        #[test]
        fn plausible_frames_never_panic(buf in framed(), max in 0usize..300) {
            check(&buf, &Limits { item_size_max: max, ..Limits::default() });
        }

        #[test]
        fn decoding_a_prefix_never_claims_more(buf in framed(), cut in 0usize..700) {
            let cut = cut.min(buf.len());
            let limits = Limits::default();
            if let BinDecoded::Request { consumed, .. } = decode(&buf[..cut], &limits) {
                // A complete frame in the prefix must be the same frame in the whole.
                prop_assert_eq!(decode(&buf, &limits), decode(&buf[..consumed], &limits));
            }
        }
    }
}
