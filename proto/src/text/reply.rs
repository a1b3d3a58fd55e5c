//! Encoders for text-protocol replies, appending to a caller's `Vec<u8>`.
//!
//! Numbers are formatted by [`crate::format`].

use std::fmt::{self, Display, Write as _};

use crate::error::{ClientError, ProtoError, ServerError};
use crate::format::push_u64;

/// A one-line reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply<'a> {
    /// `STORED`
    Stored,
    /// `NOT_STORED`
    NotStored,
    /// `EXISTS`: a `cas` whose unique no longer matches.
    Exists,
    /// `NOT_FOUND`
    NotFound,
    /// `DELETED`
    Deleted,
    /// `TOUCHED`
    Touched,
    /// `OK`
    Ok,
    /// `END`: closes a `get` or `stats` reply.
    End,
    /// `ERROR`
    Error,
    /// `RESET`: after `stats reset`.
    Reset,
    /// `MN`: after the meta no-op.
    MetaNoop,
    /// The new value after `incr`/`decr`.
    Number(u64),
    /// `VERSION <v>`
    Version(&'a str),
    /// `CLIENT_ERROR <message>`
    ClientError(ClientError),
    /// `SERVER_ERROR <message>`
    ServerError(ServerError),
    /// Any decoder error's reply (empty for the ones memcached answers by closing).
    Proto(ProtoError),
}

impl Reply<'_> {
    /// Appends the reply line, `\r\n` included.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let fixed: &[u8] = match self {
            Reply::Stored => b"STORED\r\n",
            Reply::NotStored => b"NOT_STORED\r\n",
            Reply::Exists => b"EXISTS\r\n",
            Reply::NotFound => b"NOT_FOUND\r\n",
            Reply::Deleted => b"DELETED\r\n",
            Reply::Touched => b"TOUCHED\r\n",
            Reply::Ok => b"OK\r\n",
            Reply::End => b"END\r\n",
            Reply::Error => ProtoError::Error.as_wire(),
            Reply::Reset => b"RESET\r\n",
            Reply::MetaNoop => b"MN\r\n",
            Reply::ClientError(e) => e.as_wire(),
            Reply::ServerError(e) => e.as_wire(),
            Reply::Proto(e) => e.as_wire(),
            Reply::Number(n) => {
                push_u64(out, *n);
                out.extend_from_slice(b"\r\n");
                return;
            }
            Reply::Version(v) => {
                out.extend_from_slice(b"VERSION ");
                out.extend_from_slice(v.as_bytes());
                out.extend_from_slice(b"\r\n");
                return;
            }
        };
        out.extend_from_slice(fixed);
    }
}

impl From<ProtoError> for Reply<'_> {
    fn from(e: ProtoError) -> Self {
        Reply::Proto(e)
    }
}

impl From<ClientError> for Reply<'_> {
    fn from(e: ClientError) -> Self {
        Reply::ClientError(e)
    }
}

impl From<ServerError> for Reply<'_> {
    fn from(e: ServerError) -> Self {
        Reply::ServerError(e)
    }
}

/// Appends `VALUE <key> <flags> <bytes>[ <cas>]\r\n`, the header of one hit in a `get`
/// reply, for a server that appends (or writes out separately) the value and its `\r\n`.
pub fn write_value_header(out: &mut Vec<u8>, key: &[u8], flags: u32, len: usize, cas: Option<u64>) {
    out.extend_from_slice(b"VALUE ");
    out.extend_from_slice(key);
    out.push(b' ');
    push_u64(out, flags.into());
    out.push(b' ');
    push_u64(out, len as u64);
    if let Some(cas) = cas {
        out.push(b' ');
        push_u64(out, cas);
    }
    out.extend_from_slice(b"\r\n");
}

/// Appends one hit of a `get` reply: `VALUE <key> <flags> <bytes>[ <cas>]\r\n<data>\r\n`
/// (`cas` for `gets`/`gats`).
pub fn write_value(out: &mut Vec<u8>, key: &[u8], flags: u32, value: &[u8], cas: Option<u64>) {
    write_value_header(out, key, flags, value.len(), cas);
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Appends `END\r\n`, which closes `get` and `stats` replies.
pub fn write_end(out: &mut Vec<u8>) {
    out.extend_from_slice(b"END\r\n");
}

/// Lets `write!` append to a byte vector; writing to memory cannot fail.
struct VecWriter<'v>(&'v mut Vec<u8>);

impl fmt::Write for VecWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// Appends `STAT <name> <value>\r\n`.
pub fn write_stat(out: &mut Vec<u8>, name: impl Display, value: impl Display) {
    // VecWriter never fails, and a Display impl that fails on its own is a bug in the
    // caller's type; either way there is nothing to report to the client.
    let _ = write!(VecWriter(out), "STAT {name} {value}\r\n");
}

/// One item as an `lru_crawler metadump` line lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetadumpItem<'a> {
    /// The key (written URI-encoded).
    pub key: &'a [u8],
    /// Unix time of expiry; `None` for never (written `-1`).
    pub exptime: Option<u64>,
    /// Unix time of the last access.
    pub last_access: u64,
    /// CAS unique (0 with CAS disabled).
    pub cas: u64,
    /// Whether the item was read since it was stored.
    pub fetched: bool,
    /// Slab class id.
    pub class: usize,
    /// Bytes the item takes, header included.
    pub size: usize,
}

/// Appends one `lru_crawler metadump` line:
/// `key=<key> exp=<unix time|-1> la=<unix time> cas=<n> fetch=<yes|no> cls=<id> size=<bytes>`
/// ended by a bare `\n`, as memcached writes it (the closing `END` has `\r\n`). The key is
/// URI-encoded as memcached does it: ASCII letters, digits and `-._~` as they are, every
/// other byte as `%XX` (upper-case hex).
pub fn write_metadump_item(out: &mut Vec<u8>, item: &MetadumpItem<'_>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.extend_from_slice(b"key=");
    for &b in item.key {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        }
    }
    let fetched = if item.fetched { "yes" } else { "no" };
    let _ = match item.exptime {
        Some(exp) => write!(VecWriter(out), " exp={exp}"),
        None => write!(VecWriter(out), " exp=-1"),
    };
    let _ = writeln!(
        VecWriter(out),
        " la={} cas={} fetch={fetched} cls={} size={}",
        item.last_access,
        item.cas,
        item.class,
        item.size
    );
}

/// Appends an ElastiCache `config get` reply:
/// `CONFIG <key> <flags> <bytes>\r\n<body>\r\nEND\r\n`. For the `cluster` key the body is
/// `<config version>\n<host>|<ip>|<port> ...\n`, built by the server.
pub fn write_config(out: &mut Vec<u8>, key: &[u8], flags: u32, body: &[u8]) {
    out.extend_from_slice(b"CONFIG ");
    out.extend_from_slice(key);
    out.push(b' ');
    push_u64(out, flags.into());
    out.push(b' ');
    push_u64(out, body.len() as u64);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out.extend_from_slice(b"\r\nEND\r\n");
}
