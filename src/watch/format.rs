//! The log lines of memcached 1.6.18's streams, byte for byte: every line is
//! `ts=<secs>.<usecs> gid=<n> type=<event> ...` ending in a bare `\n` (the microseconds are
//! not zero-padded, as memcached prints them), and keys are URI-encoded.

use std::io::Write;
use std::net::SocketAddr;

use slabcache::{Evicted, StoreError, StoreMode};

/// Why a connection closed, as `conn_close` lines name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CloseReason {
    /// A read or write failed, or the client sent something unservable (memcached's
    /// default).
    #[default]
    Error,
    /// The client hung up or sent `quit`.
    Normal,
    IdleTimeout,
    /// The `shutdown` command.
    Shutdown,
}

impl CloseReason {
    fn name(self) -> &'static str {
        match self {
            CloseReason::Error => "error",
            CloseReason::Normal => "normal",
            CloseReason::IdleTimeout => "idle_timeout",
            CloseReason::Shutdown => "shutdown",
        }
    }
}

/// What a lookup found, as `item_get` lines say it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GetStatus {
    NotFound,
    /// The item's class and value length.
    Found(usize, usize),
    Flushed,
    Expired,
}

impl GetStatus {
    /// The status of an engine lookup whose reader returned the class and value length.
    pub fn of(lookup: &slabcache::Lookup<(usize, usize)>) -> GetStatus {
        match *lookup {
            slabcache::Lookup::Hit((class, size)) => GetStatus::Found(class, size),
            slabcache::Lookup::Missing => GetStatus::NotFound,
            slabcache::Lookup::Expired => GetStatus::Expired,
            slabcache::Lookup::Flushed => GetStatus::Flushed,
        }
    }
}

/// `ts=<secs>.<usecs> gid=<gid> `: the start of every line.
pub fn prefix(out: &mut Vec<u8>, secs: u64, micros: u32, gid: u64) {
    let _ = write!(out, "ts={secs}.{micros} gid={gid} ");
}

/// memcached's `uriencode`: letters, digits and `-._~` as they are, every other byte `%XX`.
pub fn uri_key(out: &mut Vec<u8>, key: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in key {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        }
    }
}

/// `type=item_get ...`: one lookup (a get, touch, delete, incr/decr, and the one every
/// store makes of the key first).
pub fn item_get(out: &mut Vec<u8>, key: &[u8], found: GetStatus, cfd: i32) {
    let (status, class, size) = match found {
        GetStatus::Found(class, size) => ("found", class, size),
        GetStatus::NotFound => ("not_found", 0, 0),
        GetStatus::Flushed => ("flushed", 0, 0),
        GetStatus::Expired => ("expired", 0, 0),
    };
    out.extend_from_slice(b"type=item_get key=");
    uri_key(out, key);
    let _ = writeln!(out, " status={status} clsid={class} cfd={cfd} size={size}");
}

/// One store, as an `item_store` line shows it.
pub struct StoreEvent<'a> {
    pub key: &'a [u8],
    pub result: Result<u64, StoreError>,
    pub mode: StoreMode,
    /// Seconds left as memcached computes them (its unsigned difference; 0 for no expiry).
    pub ttl: u32,
    /// The class of the request's item.
    pub class: usize,
    pub cfd: i32,
    /// The request's value length.
    pub size: usize,
}

/// `type=item_store ...`.
pub fn item_store(out: &mut Vec<u8>, e: &StoreEvent<'_>) {
    let StoreEvent {
        key,
        result,
        mode,
        ttl,
        class,
        cfd,
        size,
    } = *e;
    let status = match result {
        Ok(_) => "stored",
        Err(StoreError::Exists) => "exists",
        Err(StoreError::NotFound) => "not_found",
        Err(StoreError::TooLarge) => "too_large",
        Err(StoreError::OutOfMemory) => "no_memory",
        Err(_) => "not_stored",
    };
    let cmd = match mode {
        StoreMode::Add => "add",
        StoreMode::Set => "set",
        StoreMode::Replace => "replace",
        StoreMode::Append => "append",
        StoreMode::Prepend => "prepend",
        StoreMode::Cas(_) => "cas",
    };
    out.extend_from_slice(b"type=item_store key=");
    uri_key(out, key);
    let _ = writeln!(
        out,
        " status={status} cmd={cmd} ttl={ttl} clsid={class} cfd={cfd} size={size}"
    );
}

/// `type=eviction ...`: `ttl` is -1 for an item that never expires, `la` the seconds since
/// its last write (slabcached keeps no access time).
pub fn eviction(out: &mut Vec<u8>, e: &Evicted<'_>) {
    let ttl = if e.exptime > 0 {
        i64::from(e.exptime) - i64::from(e.now)
    } else {
        -1
    };
    let la = e.now.wrapping_sub(e.written_at) as i32;
    out.extend_from_slice(b"type=eviction key=");
    uri_key(out, e.key);
    let fetch = if e.fetched { "yes" } else { "no" };
    let _ = writeln!(
        out,
        " fetch={fetch} ttl={ttl} la={la} clsid={} size={}",
        e.class, e.value_len
    );
}

/// `type=slab_move ...`: the automove balancer moves a page (`dst` 0: to the global pool).
pub fn slab_move(out: &mut Vec<u8>, src: usize, dst: usize) {
    let _ = writeln!(out, "type=slab_move src={src} dst={dst}");
}

/// A peer as `conn_new`/`conn_close` lines show it: (rip, rport, transport), from the
/// address `stats conns` keeps (`tcp:<ip>:<port>`, or `unix:...`).
fn endpoint(peer: &str) -> (String, u16, &'static str) {
    match peer
        .strip_prefix("tcp:")
        .and_then(|a| a.parse::<SocketAddr>().ok())
    {
        Some(addr) => (addr.ip().to_string(), addr.port(), "tcp"),
        None => ("unix".to_string(), 0, "local"),
    }
}

/// `type=conn_new ...`.
pub fn conn_new(out: &mut Vec<u8>, peer: &str, cfd: i32) {
    let (rip, rport, transport) = endpoint(peer);
    let _ = writeln!(
        out,
        "type=conn_new rip={rip} rport={rport} transport={transport} cfd={cfd}"
    );
}

/// `type=conn_close ...`.
pub fn conn_close(out: &mut Vec<u8>, peer: &str, reason: CloseReason, cfd: i32) {
    let (rip, rport, transport) = endpoint(peer);
    let _ = writeln!(
        out,
        "type=conn_close rip={rip} rport={rport} transport={transport} reason={} cfd={cfd}",
        reason.name()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        f(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn keys_are_uri_encoded_as_memcached_does() {
        assert_eq!(line(|o| uri_key(o, b"aZ09-._~")), "aZ09-._~");
        assert_eq!(line(|o| uri_key(o, b"a b/\x00\xff#")), "a%20b%2F%00%FF%23");
        assert_eq!(line(|o| uri_key(o, &[b'#'; 250])).len(), 750);
    }

    fn store(result: Result<u64, StoreError>, mode: StoreMode, ttl: u32) -> StoreEvent<'static> {
        StoreEvent {
            key: b"k",
            result,
            mode,
            ttl,
            class: 2,
            cfd: 9,
            size: 4,
        }
    }

    #[test]
    fn lines() {
        assert_eq!(
            line(|o| prefix(o, 1700000000, 4071, 7)),
            "ts=1700000000.4071 gid=7 "
        );
        assert_eq!(
            line(|o| item_get(o, b"foo", GetStatus::NotFound, 12)),
            "type=item_get key=foo status=not_found clsid=0 cfd=12 size=0\n"
        );
        assert_eq!(
            line(|o| item_get(o, b"foo", GetStatus::Found(1, 5), 12)),
            "type=item_get key=foo status=found clsid=1 cfd=12 size=5\n"
        );
        assert_eq!(
            line(|o| item_get(o, b"foo", GetStatus::Expired, 12)),
            "type=item_get key=foo status=expired clsid=0 cfd=12 size=0\n"
        );
        assert_eq!(
            line(|o| item_get(o, b"foo", GetStatus::Flushed, 12)),
            "type=item_get key=foo status=flushed clsid=0 cfd=12 size=0\n"
        );
        assert_eq!(
            line(|o| item_store(o, &store(Ok(1), StoreMode::Cas(3), 0))),
            "type=item_store key=k status=stored cmd=cas ttl=0 clsid=2 cfd=9 size=4\n"
        );
        assert_eq!(
            line(|o| item_store(o, &store(Err(StoreError::NotStored), StoreMode::Add, 60))),
            "type=item_store key=k status=not_stored cmd=add ttl=60 clsid=2 cfd=9 size=4\n"
        );
        let evicted = Evicted {
            key: b"n,foo1",
            fetched: false,
            exptime: 0,
            written_at: 10,
            now: 15,
            class: 40,
            value_len: 11000,
        };
        assert_eq!(
            line(|o| eviction(o, &evicted)),
            "type=eviction key=n%2Cfoo1 fetch=no ttl=-1 la=5 clsid=40 size=11000\n"
        );
        assert_eq!(line(|o| slab_move(o, 3, 0)), "type=slab_move src=3 dst=0\n");
        assert_eq!(
            line(|o| conn_new(o, "tcp:127.0.0.1:4000", 30)),
            "type=conn_new rip=127.0.0.1 rport=4000 transport=tcp cfd=30\n"
        );
        assert_eq!(
            line(|o| conn_close(o, "tcp:[::1]:4000", CloseReason::Normal, 30)),
            "type=conn_close rip=::1 rport=4000 transport=tcp reason=normal cfd=30\n"
        );
        assert_eq!(
            line(|o| conn_close(o, "unix:", CloseReason::IdleTimeout, 8)),
            "type=conn_close rip=unix rport=0 transport=local reason=idle_timeout cfd=8\n"
        );
    }
}
