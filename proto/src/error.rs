//! The error replies of the text protocol, each spelled on the wire exactly once.
//!
//! memcached's error lines are part of its interface: clients match on the exact text
//! (`SERVER_ERROR object too large for cache` is how several clients learn about `-I`), so
//! each one is a variant here and its bytes live in a single `as_wire` match arm. The texts
//! are those of memcached 1.6.18, checked against a running instance.
//!
//! [`ClientError`] and [`ServerError`] are the `CLIENT_ERROR ...` and `SERVER_ERROR ...`
//! lines, which the server also produces while executing a request. [`ProtoError`] is
//! everything the decoder can report, including the bare `ERROR` line, memcached's other
//! error-ish lines that carry no standard prefix, and the two malformed inputs that get no
//! reply at all but a closed connection.
#![warn(missing_docs)]

use std::fmt;

/// A `CLIENT_ERROR <message>` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientError {
    /// A bad number, a key longer than the limit, a negative or huge value length, a bad
    /// `cas` unique: memcached does not say which.
    BadCommandLineFormat,
    /// `delete <key> <anything but 0>`: the pre-1.4 "hold time" argument is gone.
    DeleteUsage,
    /// `stats cachedump` with fewer than two arguments.
    BadCommandLine,
    /// The data block of a storage command did not end in `\r\n`.
    BadDataChunk,
    /// A `touch`, `gat`/`gats` or `flush_all` time that is not a number.
    InvalidExptime,
    /// An `incr`/`decr` delta that is not an unsigned 64-bit number.
    InvalidDelta,
    /// `incr`/`decr` on an item whose value is not a decimal number.
    NonNumericValue,
    /// `flush_all` on a server started with flush disabled (memcached's `-F`).
    FlushAllNotAllowed,
    /// `stats cachedump` on a server started with dumping disabled (memcached's `-X`).
    CachedumpNotAllowed,
    /// `stats cachedump <class> ...` with a class number of 64 or more.
    IllegalSlabId,
    /// `stats detail` without `on`, `off` or `dump`.
    StatsDetailUsage,
    /// `shutdown` followed by anything but `graceful`.
    InvalidShutdownMode,
}

impl ClientError {
    /// The complete reply line, `\r\n` included.
    pub fn as_wire(&self) -> &'static [u8] {
        match self {
            ClientError::BadCommandLineFormat => b"CLIENT_ERROR bad command line format\r\n",
            ClientError::DeleteUsage => {
                b"CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n"
            }
            ClientError::BadCommandLine => b"CLIENT_ERROR bad command line\r\n",
            ClientError::BadDataChunk => b"CLIENT_ERROR bad data chunk\r\n",
            ClientError::InvalidExptime => b"CLIENT_ERROR invalid exptime argument\r\n",
            ClientError::InvalidDelta => b"CLIENT_ERROR invalid numeric delta argument\r\n",
            ClientError::NonNumericValue => {
                b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n"
            }
            ClientError::FlushAllNotAllowed => b"CLIENT_ERROR flush_all not allowed\r\n",
            ClientError::CachedumpNotAllowed => b"CLIENT_ERROR stats cachedump not allowed\r\n",
            ClientError::IllegalSlabId => b"CLIENT_ERROR Illegal slab id\r\n",
            ClientError::StatsDetailUsage => b"CLIENT_ERROR usage: stats detail on|off|dump\r\n",
            ClientError::InvalidShutdownMode => b"CLIENT_ERROR invalid shutdown mode\r\n",
        }
    }
}

/// A `SERVER_ERROR <message>` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServerError {
    /// The item (key, flags, value and per-item overhead) can never fit in the largest
    /// item size. For `set` memcached also unlinks any existing item under that key, so a
    /// failed update does not leave the old value readable.
    ObjectTooLarge,
    /// No memory could be found (even by eviction) for an item of an acceptable size.
    /// memcached unlinks the old item on a failed `set` here too.
    OutOfMemoryStoring,
    /// `incr`/`decr` could not allocate the new value.
    OutOfMemory,
    /// A multi-get ran out of memory building its reply; sent instead of `END`.
    OutOfMemoryWritingGet,
    /// `stats` could not allocate its reply.
    OutOfMemoryWritingStats,
}

impl ServerError {
    /// The complete reply line, `\r\n` included.
    pub fn as_wire(&self) -> &'static [u8] {
        match self {
            ServerError::ObjectTooLarge => b"SERVER_ERROR object too large for cache\r\n",
            ServerError::OutOfMemoryStoring => b"SERVER_ERROR out of memory storing object\r\n",
            ServerError::OutOfMemory => b"SERVER_ERROR out of memory\r\n",
            ServerError::OutOfMemoryWritingGet => b"SERVER_ERROR out of memory writing get response\r\n",
            ServerError::OutOfMemoryWritingStats => b"SERVER_ERROR out of memory writing stats\r\n",
        }
    }
}

/// Anything the text decoder rejects, and the reply memcached gives for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProtoError {
    /// The bare `ERROR` line: an unknown command, an empty line, a known command with the
    /// wrong number of tokens, and (memcached's choice) a non-numeric `cache_memlimit`.
    Error,
    /// A `CLIENT_ERROR` line.
    Client(ClientError),
    /// A `SERVER_ERROR` line.
    Server(ServerError),
    /// `shutdown` on a server that was not started with the shutdown command enabled
    /// (memcached's `-A`). Note the colon: this is not the bare `ERROR` line.
    ShutdownNotEnabled,
    /// `cache_memlimit` below 8 megabytes.
    MemlimitTooSmall,
    /// `cache_memlimit` above 1,000,000,000 megabytes: memcached assumes bytes were meant.
    MemlimitNotMegabytes,
    /// The server could not resize its memory to the new `cache_memlimit`.
    MemlimitAdjustFailed,
    /// More than [`crate::text::LONG_LINE`] bytes arrived without a newline and they are not
    /// the start of a `get`/`gets` line. memcached sends nothing and closes the connection
    /// (it has no "line too long" reply), so the wire text is empty.
    LineTooLong,
    /// An unknown command whose last token starts with `HTTP/`: someone pointed a web
    /// client at the cache. memcached closes the connection without a reply.
    HttpRequest,
}

impl ProtoError {
    /// The complete reply line, `\r\n` included; empty for the errors memcached answers by
    /// closing the connection silently.
    pub fn as_wire(&self) -> &'static [u8] {
        match self {
            ProtoError::Error => b"ERROR\r\n",
            ProtoError::Client(e) => e.as_wire(),
            ProtoError::Server(e) => e.as_wire(),
            ProtoError::ShutdownNotEnabled => b"ERROR: shutdown not enabled\r\n",
            ProtoError::MemlimitTooSmall => b"MEMLIMIT_TOO_SMALL cannot set maxbytes to less than 8m\r\n",
            ProtoError::MemlimitNotMegabytes => {
                b"MEMLIMIT_ADJUST_FAILED input value is megabytes not bytes\r\n"
            }
            ProtoError::MemlimitAdjustFailed => {
                b"MEMLIMIT_ADJUST_FAILED out of bounds or unable to adjust\r\n"
            }
            ProtoError::LineTooLong | ProtoError::HttpRequest => b"",
        }
    }

    /// True when memcached answers this error by closing the connection, with no reply of
    /// its own (memcached also drops replies it had queued but not yet written).
    pub fn closes_connection(&self) -> bool {
        matches!(self, ProtoError::LineTooLong | ProtoError::HttpRequest)
    }
}

impl From<ClientError> for ProtoError {
    fn from(e: ClientError) -> Self {
        ProtoError::Client(e)
    }
}

impl From<ServerError> for ProtoError {
    fn from(e: ServerError) -> Self {
        ProtoError::Server(e)
    }
}

/// Shows the reply line without its `\r\n`, for logs.
fn fmt_wire(wire: &[u8], f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let text = wire.strip_suffix(b"\r\n").unwrap_or(wire);
    // Every wire text above is ASCII; the lossy conversion never actually replaces.
    f.write_str(&String::from_utf8_lossy(text))
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_wire(self.as_wire(), f)
    }
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_wire(self.as_wire(), f)
    }
}

impl fmt::Display for ProtoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtoError::LineTooLong => f.write_str("line too long without a newline (closed)"),
            ProtoError::HttpRequest => f.write_str("HTTP request on the memcached port (closed)"),
            other => fmt_wire(other.as_wire(), f),
        }
    }
}

impl std::error::Error for ClientError {}
impl std::error::Error for ServerError {}
impl std::error::Error for ProtoError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_ends_in_crlf_and_has_one_prefix() {
        let all = [
            ProtoError::Error,
            ProtoError::ShutdownNotEnabled,
            ProtoError::MemlimitTooSmall,
            ProtoError::MemlimitNotMegabytes,
            ProtoError::MemlimitAdjustFailed,
            ClientError::BadCommandLineFormat.into(),
            ClientError::DeleteUsage.into(),
            ClientError::BadCommandLine.into(),
            ClientError::BadDataChunk.into(),
            ClientError::InvalidExptime.into(),
            ClientError::InvalidDelta.into(),
            ClientError::NonNumericValue.into(),
            ClientError::FlushAllNotAllowed.into(),
            ClientError::CachedumpNotAllowed.into(),
            ClientError::IllegalSlabId.into(),
            ClientError::StatsDetailUsage.into(),
            ClientError::InvalidShutdownMode.into(),
            ServerError::ObjectTooLarge.into(),
            ServerError::OutOfMemoryStoring.into(),
            ServerError::OutOfMemory.into(),
            ServerError::OutOfMemoryWritingGet.into(),
            ServerError::OutOfMemoryWritingStats.into(),
        ];
        for e in all {
            let w = e.as_wire();
            assert!(w.ends_with(b"\r\n"), "{e}");
            assert_eq!(w.iter().filter(|&&b| b == b'\n').count(), 1, "{e}");
            assert!(!e.closes_connection());
            assert!(!e.to_string().is_empty());
        }
        for e in [ProtoError::LineTooLong, ProtoError::HttpRequest] {
            assert!(e.as_wire().is_empty());
            assert!(e.closes_connection());
        }
    }

    #[test]
    fn exact_texts() {
        assert_eq!(ProtoError::Error.as_wire(), b"ERROR\r\n");
        assert_eq!(
            ServerError::ObjectTooLarge.as_wire(),
            b"SERVER_ERROR object too large for cache\r\n"
        );
        assert_eq!(
            ClientError::DeleteUsage.to_string(),
            "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]"
        );
        assert_eq!(
            ProtoError::ShutdownNotEnabled.as_wire(),
            b"ERROR: shutdown not enabled\r\n"
        );
    }
}
