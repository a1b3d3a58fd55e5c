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
mod tests;

#[cfg(test)]
mod prop;
