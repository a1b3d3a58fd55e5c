//! The whole-server fuzz target's harness (`fuzz/fuzz_targets/slabcached_server.rs`), also
//! run by `cargo test` over the committed seed corpus: one input is a script of byte
//! streams on several connections, each fed through the connection code a worker drives
//! (read → decode → execute → encode → write) against a tiny cache, and checked.
//!
//! Not part of the server's interface (hidden from the docs); it lives in the library so
//! the fuzz crate and the tests drive the real `Conn` rather than a copy.
//!
//! # Input
//! Byte 0 picks the configuration: bit 0 adds `-M` (no eviction); bit 1 `-C` (no CAS);
//! bit 2 `-o read_buf_mem_limit=1 -t 16` (a read budget of 1 MB and 42 queued replies per
//! connection, so large values are refused and deep pipelines closed); bit 3 makes the
//! socket buffers small, about 4 KB each way, so replies and requests back up early. The
//! cache is always `-m 1 -I 128k -o slab_chunk_max=16384`, so small stores evict, values
//! above 16 KB are chains and pages move. Then records, until the input ends; each opens
//! with an op byte: bits 0-1 the connection (one of [`CONNS`], opened on first use), bits
//! 2-4 the action, bits 5-7 the piece size the client writes in ([`PIECES`], at most
//! [`MAX_PIECES`] pieces; the server is driven after each piece, so requests arrive split
//! at many points).
//!
//! | action | then | what the client does |
//! |---|---|---|
//! | 0-2 | length, bytes | sends the bytes, reads the replies |
//! | 3 | length, bytes | sends the bytes, does not read |
//! | 4 | n | sends (n+1) KB of `v` (the value of a large store) |
//! | 5 | - | closes its end |
//! | 6 | - | half-closes (shuts down its writing side) |
//! | 7 | s | s seconds pass; the page mover and LRU crawler run |
//!
//! A length is one byte, or 255 followed by two big-endian bytes. Actions 0-2 with piece
//! code 7 (which would repeat code 0, all at once) send the bytes as one UDP datagram's
//! payload instead, run as the UDP thread runs it.
//!
//! # Checks
//! No panic; after every drive, the connection's buffers within [`conn_bound`]; every UDP
//! response within [`udp_response_bound`] (one value, or a capped dump); after
//! action 7 and at the end, [`slabcache::Cache::check_consistency`]; at the end, with every
//! connection closed, the read budget fully given back, a new client still able to store
//! and read back a small and a chained value (unless `-M` refuses them), and the item
//! memory within the largest limit set plus one first page per class (memcached's rule).

use std::io::{ErrorKind, Read, Write};
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU32, AtomicU8};
use std::sync::{Arc, OnceLock};

use mio::net::UnixStream;

use crate::context::{build_cache, Context};
use crate::net::bufpool::BufPool;
use crate::net::conn::{Conn, Drive};
use crate::net::stream::Stream;
use crate::stats::Counters;

/// Connections an input can use.
pub const CONNS: usize = 4;
/// Sizes of the pieces a client writes in (op bits 5-7); 0 = all at once.
pub const PIECES: [usize; 8] = [0, 1, 3, 16, 100, 1500, 9000, 0];
/// Pieces one send is cut into at most (each costs a write, a drive and a read).
pub const MAX_PIECES: usize = 32;
/// Drives of one connection per piece before the harness stops waiting for it (a
/// connection that keeps yielding is making progress on a long reply).
const MAX_DRIVES: usize = 256;
/// Item size limit of the fuzzed cache (`-I`).
const ITEM_SIZE_MAX: usize = 128 * 1024;

/// The flags of configuration byte `b`.
pub fn config_args(b: u8) -> Vec<&'static str> {
    let mut args = vec![
        "slabcached",
        "-m",
        "1",
        "-I",
        "128k",
        "-o",
        "slab_chunk_max=16384",
    ];
    if b & 1 != 0 {
        args.push("-M");
    }
    if b & 2 != 0 {
        args.push("-C");
    }
    if b & 4 != 0 {
        args.extend(["-o", "read_buf_mem_limit=1", "-t", "16"]);
    }
    args
}

/// A fresh server state for configuration byte `b`: context and its one counters block.
pub fn context(b: u8) -> (Context, Arc<Counters>) {
    // The flags are parsed once per configuration: clap costs more than the rest of a
    // small input.
    static CONFIGS: OnceLock<Vec<crate::Config>> = OnceLock::new();
    let configs = CONFIGS.get_or_init(|| {
        use clap::Parser;
        (0..8u8)
            .map(|b| {
                let args = crate::config::Args::try_parse_from(config_args(b)).expect("fuzz flags parse");
                crate::Config::from_args(&args).expect("fuzz flags are valid")
            })
            .collect()
    });
    let config = configs[usize::from(b & 7)].clone();
    let cache = build_cache(&config).expect("tiny cache builds");
    let cluster = crate::cluster::Cluster::from_config(&config, 11211).expect("no cluster");
    let counters = Arc::new(Counters::default());
    let ctx = Context::new(config, cache, cluster, vec![Arc::clone(&counters)], Vec::new());
    (ctx, counters)
}

/// Most buffer bytes one connection may hold: a read buffer of one maximal request plus
/// the slack `Conn::grow` allows (2 MB), and a write buffer past its 1 MB high-water mark
/// by one reply of at most an item, with Vec growth doubling both.
pub fn conn_bound() -> usize {
    2 * (ITEM_SIZE_MAX + (2 << 20) + 16 * 1024) + 2 * ((1 << 20) + ITEM_SIZE_MAX + 64 * 1024)
}

/// Largest response one UDP datagram may make the server hold: one value of the largest
/// item with its header line and `END`, or a `stats cachedump` at its 2 MB cap.
pub fn udp_response_bound() -> usize {
    (2 << 20) + ITEM_SIZE_MAX + 64 * 1024
}

/// Piece code (op bits 5-7) that turns a send into a UDP datagram.
const UDP_PIECE_CODE: u8 = 7;

/// One client connection: the server's `Conn` and the client's end of the socket pair.
struct Client {
    conn: Conn,
    peer: UnixStream,
}

/// The server side of one input: the context, the worker's buffer pool, the connections.
struct Harness {
    ctx: Context,
    /// Socket buffers of about 4 KB each way (configuration bit 3).
    small_buffers: bool,
    counters: Arc<Counters>,
    pool: BufPool,
    clients: Vec<Option<Client>>,
    /// Largest item memory limit seen (`cache_memlimit` can raise it).
    max_limit: usize,
    /// Most buffer bytes a connection held after a drive.
    max_held: usize,
    sink: Vec<u8>,
    /// Where UDP responses are built, kept between datagrams as the UDP thread keeps it.
    udp_buf: Vec<u8>,
}

impl Harness {
    fn new(config: u8) -> Harness {
        let (ctx, counters) = context(config);
        let max_limit = ctx.cache.memory_limit();
        Harness {
            ctx,
            small_buffers: config & 8 != 0,
            counters,
            pool: BufPool::default(),
            clients: (0..CONNS).map(|_| None).collect(),
            max_limit,
            max_held: 0,
            sink: vec![0; 64 * 1024],
            udp_buf: Vec::new(),
        }
    }

    fn client(&mut self, i: usize) -> &mut Client {
        let ctx = &self.ctx;
        let small = self.small_buffers;
        self.clients[i].get_or_insert_with(|| {
            let (server, peer) = UnixStream::pair().expect("socket pair");
            if small {
                for fd in [server.as_raw_fd(), peer.as_raw_fd()] {
                    crate::sys::set_send_buffer(fd, 2048).expect("SO_SNDBUF");
                }
            }
            let conn = Conn::new(
                Stream::Unix(server),
                i as i32,
                Arc::new(AtomicU32::new(0)),
                Arc::new(AtomicU8::new(0)),
                ctx,
            );
            Client { conn, peer }
        })
    }

    /// Drive connection `i` as its worker would after a readiness event, until it waits;
    /// the client reads its replies if `read`. Returns false once the connection is gone.
    fn drive(&mut self, i: usize, read: bool) -> bool {
        let Some(client) = self.clients[i].as_mut() else {
            return false;
        };
        for _ in 0..MAX_DRIVES {
            let drive = client.conn.drive(&self.ctx, &self.counters, &mut self.pool);
            let held = client.conn.held_bytes();
            self.max_held = self.max_held.max(held);
            assert!(held <= conn_bound(), "connection {i} holds {held} bytes");
            self.max_limit = self.max_limit.max(self.ctx.cache.memory_limit());
            if read {
                while matches!(client.peer.read(&mut self.sink), Ok(n) if n > 0) {}
            }
            match drive {
                Drive::Wait => return true,
                Drive::Yield => continue,
                Drive::Close => {
                    let mut client = self.clients[i].take().expect("present");
                    client.conn.release_buffers(&self.counters, &mut self.pool);
                    return false;
                }
                Drive::Watch(_) => {
                    // The worker hands the socket to the logger thread; here it just ends.
                    let client = self.clients[i].take().expect("present");
                    drop(client.conn.into_watcher());
                    return false;
                }
            }
        }
        true
    }

    /// Client `i` sends `bytes` in pieces of `piece` (0: at once), the server driven after
    /// each; at most [`MAX_PIECES`] pieces, so a long input stays a fast one.
    fn send(&mut self, i: usize, bytes: &[u8], piece: usize, read: bool) {
        let piece = if piece == 0 {
            bytes.len().max(1)
        } else {
            piece.max(bytes.len().div_ceil(MAX_PIECES))
        };
        let mut at = 0;
        let mut stalls = 0;
        while at < bytes.len() {
            let end = (at + piece).min(bytes.len());
            match self.client(i).peer.write(&bytes[at..end]) {
                Ok(n) => at += n,
                // The server stopped reading (back-pressure): drive it, and read as a
                // client must in the end; give the rest up if it stays stuck.
                Err(e) if e.kind() == ErrorKind::WouldBlock && stalls < 8 => {
                    stalls += 1;
                    if !self.drive(i, true) {
                        return;
                    }
                    continue;
                }
                Err(_) => return,
            }
            if !self.drive(i, read) {
                return;
            }
        }
    }

    /// `payload` arrives as one UDP datagram; each response must stay within one value.
    fn datagram(&mut self, payload: &[u8]) {
        let mut buf = std::mem::take(&mut self.udp_buf);
        let mut largest = 0;
        crate::wire::run_all(payload, &self.ctx, &self.counters, &mut buf, |response| {
            largest = largest.max(response.len());
        });
        assert!(
            largest <= udp_response_bound(),
            "a UDP response of {largest} bytes"
        );
        buf.shrink_to(64 * 1024);
        self.udp_buf = buf;
    }

    /// Client `i` closes (or half-closes) and the server sees it.
    fn close(&mut self, i: usize, half: bool) {
        if let Some(client) = self.clients[i].as_mut() {
            let _ = client
                .peer
                .shutdown(if half { Shutdown::Write } else { Shutdown::Both });
            client.conn.hangup = true;
            self.drive(i, true);
            if !half {
                if let Some(mut client) = self.clients[i].take() {
                    client.conn.release_buffers(&self.counters, &mut self.pool);
                }
            }
        }
    }

    /// Time passes and the background work the maintenance thread does runs.
    fn maintain(&mut self, secs: u32) {
        self.ctx.clock.advance(secs);
        let now = self.ctx.clock.now();
        for _ in 0..10_000 {
            if !self.ctx.cache.rebalance_step(now) {
                break;
            }
        }
        for _ in 0..100 {
            if !self.ctx.cache.crawl_step(now, 1000, 0) {
                break;
            }
        }
        self.check_cache();
    }

    /// Whatever the input did, a new client can still store a value of `len` bytes under
    /// `key` and read it back (with `-M`, a full cache may refuse the store instead).
    fn probe(&mut self, key: &[u8], len: usize) {
        let now = self.ctx.clock.now();
        // A page move left under way would keep its items from eviction for a while.
        for _ in 0..100_000 {
            if !self.ctx.cache.rebalance_step(now) {
                break;
            }
        }
        let key = String::from_utf8_lossy(key);
        let value: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
        let expected = [
            format!("STORED\r\nVALUE {key} 0 {len}\r\n").as_bytes(),
            &value,
            b"\r\nEND\r\n",
        ]
        .concat();
        let mut reply = self.store_and_get(&key, &value);
        // With -C a flush_all hides what is stored in its second (memcached's rule,
        // t/flush-all.t): the one just run, then a delayed one falling due a second later.
        // Each retry, a second on, leaves one of them behind.
        for _ in 0..2 {
            if self.ctx.config.use_cas || reply != b"STORED\r\nEND\r\n" {
                break;
            }
            self.ctx.clock.advance(1);
            reply = self.store_and_get(&key, &value);
        }
        let refused = !self.ctx.config.evictions && reply.starts_with(b"SERVER_ERROR out of memory");
        assert!(
            reply == expected || refused,
            "probe {key}: {:?}",
            String::from_utf8_lossy(&reply[..reply.len().min(200)])
        );
    }

    /// Connection 0 sets `key` to `value` and gets it; returns the replies.
    fn store_and_get(&mut self, key: &str, value: &[u8]) -> Vec<u8> {
        let request = [
            format!("set {key} 0 0 {}\r\n", value.len()).as_bytes(),
            value,
            format!("\r\nget {key}\r\n").as_bytes(),
        ]
        .concat();
        self.send(0, &request, 0, false);
        let mut reply = Vec::new();
        for _ in 0..MAX_DRIVES {
            let Some(client) = self.clients[0].as_mut() else {
                break;
            };
            match client.peer.read(&mut self.sink) {
                Ok(n) if n > 0 => reply.extend_from_slice(&self.sink[..n]),
                _ => {
                    if reply.ends_with(b"END\r\n") || !self.drive(0, false) {
                        break;
                    }
                }
            }
        }
        reply
    }

    fn check_cache(&self) {
        if let Err(e) = self.ctx.cache.check_consistency() {
            panic!("{e}");
        }
    }

    /// Close every connection and check what must hold once none is left.
    fn finish(mut self) -> Summary {
        for i in 0..CONNS {
            self.close(i, false);
        }
        assert_eq!(self.ctx.read_budget.used(), 0, "read budget not given back");
        self.check_cache();
        self.probe(b"fuzz:probe:small", 10);
        self.probe(b"fuzz:probe:chained", 40_000);
        self.close(0, false);
        self.check_cache();
        let stats = self.ctx.cache.stats();
        let page = crate::config::SLAB_PAGE_SIZE;
        let classes = self
            .ctx
            .cache
            .class_stats()
            .iter()
            .filter(|c| c.total_pages > 0)
            .count();
        let bound = self.max_limit + classes * page;
        assert!(
            stats.total_malloced as usize <= bound,
            "item memory {} above {bound} (limit {} + {classes} first pages)",
            stats.total_malloced,
            self.max_limit
        );
        let counters = self.counters.snapshot();
        Summary {
            bytes_read: counters.bytes_read,
            bytes_written: counters.bytes_written,
            evictions: stats.evictions,
            slabs_moved: self.ctx.cache.mover_stats().slabs_moved,
            total_items: stats.total_items,
            budget_refusals: counters.response_obj_oom + counters.read_buf_oom,
            max_held: self.max_held,
        }
    }
}

/// What one input did (the tests check that the seeds reach the code they are meant for).
#[derive(Debug, Default, Clone, Copy)]
pub struct Summary {
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub evictions: u64,
    pub slabs_moved: u64,
    pub total_items: u64,
    /// Connections closed for want of read budget or reply room (`read_buf_oom`,
    /// `response_obj_oom`).
    pub budget_refusals: u64,
    /// Most buffer bytes one connection held after a drive.
    pub max_held: usize,
}

/// Read a record length: one byte, or 255 and a big-endian u16.
fn length(data: &mut &[u8]) -> usize {
    match data.split_first() {
        Some((&255, rest)) if rest.len() >= 2 => {
            *data = &rest[2..];
            usize::from(u16::from_be_bytes([rest[0], rest[1]]))
        }
        Some((&n, rest)) => {
            *data = rest;
            usize::from(n)
        }
        None => 0,
    }
}

/// Run one fuzz input (see the module docs); panics on any broken check.
pub fn run(mut data: &[u8]) -> Summary {
    let Some((&config, rest)) = data.split_first() else {
        return Summary::default();
    };
    data = rest;
    let mut h = Harness::new(config);
    while let Some((&op, rest)) = data.split_first() {
        data = rest;
        let conn = usize::from(op & 3);
        let piece = PIECES[usize::from(op >> 5)];
        match (op >> 2) & 7 {
            0..=2 if op >> 5 == UDP_PIECE_CODE => {
                let n = length(&mut data).min(data.len());
                let (bytes, rest) = data.split_at(n);
                data = rest;
                h.datagram(bytes);
            }
            action @ 0..=3 => {
                let n = length(&mut data).min(data.len());
                let (bytes, rest) = data.split_at(n);
                data = rest;
                h.send(conn, bytes, piece, action != 3);
            }
            4 => {
                let kb = usize::from(data.first().copied().unwrap_or(0)) + 1;
                data = data.get(1..).unwrap_or(&[]);
                let piece = if piece == 0 { 0 } else { piece.max(1024) };
                h.send(conn, &vec![b'v'; kb * 1024], piece, true);
            }
            5 => h.close(conn, false),
            6 => h.close(conn, true),
            _ => {
                let secs = u32::from(data.first().copied().unwrap_or(0));
                data = data.get(1..).unwrap_or(&[]);
                h.maintain(secs);
            }
        }
    }
    h.finish()
}
