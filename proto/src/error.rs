//! The error replies of the text protocol, each spelled on the wire exactly once.
//!
//! memcached's error lines are part of its interface: clients match on the exact text
//! (`SERVER_ERROR object too large for cache` is how several clients learn about `-I`), so
//! each one is a variant here and its bytes live in a single `as_wire` match arm. The texts
//! are those of memcached 1.6.18, checked against a running instance.
//!
//! [`ClientError`] and [`ServerError`] are the `CLIENT_ERROR ...` and `SERVER_ERROR ...`
//! lines, which the server also produces while executing a request; [`AdminError`] the
//! refusals of the administrative commands (`slabs`, `lru_crawler`, `lru`). [`ProtoError`] is
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
    /// `stats detail dump` on a server started with dumping disabled (`-X`; memcached
    /// 1.6.18 dumps regardless).
    DetailDumpNotAllowed,
    /// `stats cachedump <class> ...` with a class number of 64 or more.
    IllegalSlabId,
    /// `stats detail` without `on`, `off` or `dump`.
    StatsDetailUsage,
    /// `shutdown` followed by anything but `graceful`.
    InvalidShutdownMode,
    /// `slabs reassign` on a server started without slab reassignment
    /// (memcached's `-o no_slab_reassign`).
    SlabReassignDisabled,
    /// `lru_crawler crawl|metadump` while the LRU crawler is disabled.
    LruCrawlerDisabled,
    /// `lru_crawler sleep` of more than 1,000,000 microseconds.
    CrawlerSleepTooLong,
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
            ClientError::DetailDumpNotAllowed => b"CLIENT_ERROR stats detail dump not allowed\r\n",
            ClientError::IllegalSlabId => b"CLIENT_ERROR Illegal slab id\r\n",
            ClientError::StatsDetailUsage => b"CLIENT_ERROR usage: stats detail on|off|dump\r\n",
            ClientError::InvalidShutdownMode => b"CLIENT_ERROR invalid shutdown mode\r\n",
            ClientError::SlabReassignDisabled => b"CLIENT_ERROR slab reassignment disabled\r\n",
            ClientError::LruCrawlerDisabled => b"CLIENT_ERROR lru crawler disabled\r\n",
            ClientError::CrawlerSleepTooLong => b"CLIENT_ERROR sleep must be one second or less\r\n",
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

/// The refusals of memcached's administrative commands (`slabs`, `lru_crawler`, `lru`):
/// lines with their own first word (`BUSY`, `BADCLASS`, ...) or an `ERROR` with a reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AdminError {
    /// `slabs reassign` while a page move is in progress.
    ReassignBusy,
    /// `slabs reassign` with a class id out of range.
    ReassignBadClass,
    /// `slabs reassign` from a class with no page to spare.
    ReassignNoSpare,
    /// `slabs reassign` with the same source and destination.
    ReassignSame,
    /// `lru_crawler crawl|metadump` while a crawl is running.
    CrawlerBusy,
    /// `lru_crawler crawl|metadump` with a class id that is not a number in 1..=63.
    CrawlerBadClass,
    /// `lru_crawler crawl|metadump` whose class list names no class (`,`).
    CrawlerNotStarted,
    /// `lru_crawler crawl hash`: memcached walks the hash table only for metadump, and
    /// says so with this generic line.
    CrawlerUnknownError,
    /// `lru_crawler enable` while the crawler is already enabled.
    CrawlerStartFailed,
    /// `lru_crawler metadump` on a server started with dumping disabled (`-X`).
    MetadumpNotAllowed,
    /// `lru_crawler metadump` after other commands whose replies are still queued.
    MetadumpPipelined,
    /// `lru tune` whose hot and warm percentages add up to more than 80.
    LruPercentsTooHigh,
    /// `lru tune` with an age factor that is not greater than 0.
    LruFactorsNotPositive,
}

impl AdminError {
    /// The complete reply line, `\r\n` included.
    pub fn as_wire(&self) -> &'static [u8] {
        match self {
            AdminError::ReassignBusy => b"BUSY currently processing reassign request\r\n",
            AdminError::ReassignBadClass => b"BADCLASS invalid src or dst class id\r\n",
            AdminError::ReassignNoSpare => b"NOSPARE source class has no spare pages\r\n",
            AdminError::ReassignSame => b"SAME src and dst class are identical\r\n",
            AdminError::CrawlerBusy => b"BUSY currently processing crawler request\r\n",
            AdminError::CrawlerBadClass => b"BADCLASS invalid class id\r\n",
            AdminError::CrawlerNotStarted => b"NOTSTARTED no items to crawl\r\n",
            AdminError::CrawlerUnknownError => b"ERROR an unknown error happened\r\n",
            AdminError::CrawlerStartFailed => b"ERROR failed to start lru crawler thread\r\n",
            AdminError::MetadumpNotAllowed => b"ERROR metadump not allowed\r\n",
            AdminError::MetadumpPipelined => b"ERROR cannot pipeline other commands before metadump\r\n",
            AdminError::LruPercentsTooHigh => b"ERROR hot and warm pcts must not exceed 80\r\n",
            AdminError::LruFactorsNotPositive => b"ERROR hot/warm age factors must be greater than 0\r\n",
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
    /// A refusal of an administrative command.
    Admin(AdminError),
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
            ProtoError::Admin(e) => e.as_wire(),
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

impl From<AdminError> for ProtoError {
    fn from(e: AdminError) -> Self {
        ProtoError::Admin(e)
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

impl fmt::Display for AdminError {
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
impl std::error::Error for AdminError {}
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
            ClientError::DetailDumpNotAllowed.into(),
            ClientError::IllegalSlabId.into(),
            ClientError::StatsDetailUsage.into(),
            ClientError::InvalidShutdownMode.into(),
            ClientError::SlabReassignDisabled.into(),
            ClientError::LruCrawlerDisabled.into(),
            ClientError::CrawlerSleepTooLong.into(),
            AdminError::ReassignBusy.into(),
            AdminError::ReassignBadClass.into(),
            AdminError::ReassignNoSpare.into(),
            AdminError::ReassignSame.into(),
            AdminError::CrawlerBusy.into(),
            AdminError::CrawlerBadClass.into(),
            AdminError::CrawlerNotStarted.into(),
            AdminError::CrawlerUnknownError.into(),
            AdminError::CrawlerStartFailed.into(),
            AdminError::MetadumpNotAllowed.into(),
            AdminError::MetadumpPipelined.into(),
            AdminError::LruPercentsTooHigh.into(),
            AdminError::LruFactorsNotPositive.into(),
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
