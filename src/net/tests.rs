//! A connection in process: requests written into one end of a socket pair, the connection
//! driven as a worker drives it, replies read from the other end.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicU32, AtomicU8};
use std::sync::Arc;

use mio::net::UnixStream;

use super::bufpool::BufPool;
use super::conn::{Conn, Drive};
use super::stream::Stream;
use crate::context::{for_tests, Context};
use crate::stats::Counters;

struct Pair {
    ctx: Context,
    counters: Arc<Counters>,
    conn: Conn,
    client: UnixStream,
    pool: BufPool,
}

fn pair(args: &[&str]) -> Pair {
    let (ctx, counters) = for_tests(args);
    let (server, client) = UnixStream::pair().unwrap();
    let conn = Conn::new(
        Stream::Unix(server),
        0,
        Arc::new(AtomicU32::new(0)),
        Arc::new(AtomicU8::new(0)),
        &ctx,
    );
    Pair {
        ctx,
        counters,
        conn,
        client,
        pool: BufPool::default(),
    }
}

impl Pair {
    /// Send `input`, drive the connection, and return what it answered.
    fn send(&mut self, input: &[u8]) -> (Vec<u8>, Drive) {
        self.client.write_all(input).unwrap();
        let drive = self.conn.drive(&self.ctx, &self.counters, &mut self.pool);
        let mut out = Vec::new();
        let mut buf = [0u8; 65536];
        loop {
            match self.client.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("{e}"),
            }
        }
        (out, drive)
    }

    fn text(&mut self, input: &str) -> String {
        String::from_utf8(self.send(input.as_bytes()).0).unwrap()
    }
}

#[test]
fn a_pipelined_batch_is_answered_in_order() {
    let mut p = pair(&[]);
    let (out, drive) = p.send(b"set a 0 0 1\r\nx\r\nget a\r\ndelete a\r\nget a\r\n");
    assert_eq!(out, b"STORED\r\nVALUE a 0 1\r\nx\r\nEND\r\nDELETED\r\nEND\r\n");
    assert!(matches!(drive, Drive::Wait));
    assert_eq!(p.counters.snapshot().bytes_written, out.len() as u64);
}

#[test]
fn a_request_split_across_reads_waits_for_its_data() {
    let mut p = pair(&[]);
    assert_eq!(p.text("set k 0 0 5\r\nab"), "");
    assert_eq!(p.text("cde\r\nget "), "STORED\r\n");
    assert_eq!(p.text("k\r\n"), "VALUE k 0 5\r\nabcde\r\nEND\r\n");
}

#[test]
fn a_refused_data_block_is_swallowed_before_the_reply() {
    let mut p = pair(&["-I", "1024", "-o", "slab_chunk_max=1024"]);
    let block = vec![b'v'; 1500];
    assert_eq!(p.text("set big 0 0 1500\r\n"), "");
    assert_eq!(p.send(&block[..1000]).0, b"");
    let (out, _) = p.send(&[&block[1000..], &b"\r\nget big\r\n"[..]].concat());
    assert_eq!(out, b"SERVER_ERROR object too large for cache\r\nEND\r\n");
}

#[test]
fn quit_closes_after_the_replies_before_it() {
    let mut p = pair(&[]);
    let (out, drive) = p.send(b"get a\r\nquit\r\nget b\r\n");
    assert_eq!(out, b"END\r\n");
    assert!(matches!(drive, Drive::Close));
}

#[test]
fn the_first_byte_picks_binary() {
    let mut p = pair(&[]);
    let mut noop = vec![0x80, 0x0a];
    noop.resize(24, 0);
    let (out, _) = p.send(&noop);
    assert_eq!((out.len(), out[0], out[1]), (24, 0x81, 0x0a));
    // From then on the connection speaks binary only: a text line is a header with a bad
    // magic, which closes it without a reply.
    let (out, drive) = p.send(b"get aaaaaaaaaaaaaaaaaaaaa\r\n");
    assert_eq!(out, b"");
    assert!(matches!(drive, Drive::Close));
}

/// A small xorshift generator: the random streams below are the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// A request of the three protocols, sometimes damaged (bytes flipped, cut short, noise).
fn random_request(rng: &mut Rng) -> Vec<u8> {
    let key = format!("k{}", rng.below(20));
    let value = vec![b'a' + rng.below(26) as u8; [1, 100, 3000, 70_000, 300_000][rng.below(5)]];
    let mut req = match rng.below(10) {
        0 => format!("get {key} k1 k2 k3\r\n").into_bytes(),
        1 => [
            format!("set {key} 0 0 {}\r\n", value.len()).as_bytes(),
            &value,
            b"\r\n",
        ]
        .concat(),
        2 => format!("mg {key} v k t\r\n").into_bytes(),
        3 => [
            format!("ms {key} {} T0\r\n", value.len()).as_bytes(),
            &value,
            b"\r\n",
        ]
        .concat(),
        4 => format!("incr {key} 1\r\ndelete {key}\r\ngets {key}\r\n").into_bytes(),
        5 => format!("append {key} 0 0 1\r\nz\r\nmn\r\n").into_bytes(),
        6 => {
            let mut f = vec![
                0x80,
                0x00,
                0,
                key.len() as u8,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                key.len() as u8,
            ];
            f.resize(24, 0);
            [f, key.into_bytes()].concat()
        }
        7 => (0..rng.below(64)).map(|_| rng.next() as u8).collect(),
        8 => format!("get {}\r\n", "k ".repeat(rng.below(3000))).into_bytes(),
        _ => b"stats\r\nversion\r\n".to_vec(),
    };
    match rng.below(8) {
        0 if !req.is_empty() => {
            let at = rng.below(req.len());
            req[at] = rng.next() as u8;
        }
        1 => req.truncate(rng.below(req.len() + 1)),
        _ => {}
    }
    req
}

/// Random byte streams on several connections through read → decode → execute → encode →
/// write against a tiny cache: nothing panics, no connection holds more than its bound,
/// every reservation is given back, and a key no stream touches keeps its value.
#[test]
fn random_streams_keep_the_server_bounded_and_consistent() {
    let (ctx, counters) = for_tests(&["-I", "1m"]);
    let mut pool = BufPool::default();
    // The sentinel is stored through the shared context's cache directly.
    let now = ctx.clock.now();
    ctx.cache
        .store_with(
            slabcache::StoreMode::Set,
            b"sentinel",
            7,
            0,
            b"kept",
            now,
            Default::default(),
        )
        .unwrap();
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut conns: Vec<Option<(Conn, UnixStream)>> = (0..6).map(|_| None).collect();
    let mut sink = vec![0u8; 1 << 16];
    for _ in 0..3000 {
        let i = rng.below(conns.len());
        let slot = &mut conns[i];
        if slot.is_none() {
            let (server, client) = UnixStream::pair().unwrap();
            *slot = Some((
                Conn::new(
                    Stream::Unix(server),
                    0,
                    Arc::new(AtomicU32::new(0)),
                    Arc::new(AtomicU8::new(0)),
                    &ctx,
                ),
                client,
            ));
        }
        let (conn, client) = slot.as_mut().unwrap();
        let req = random_request(&mut rng);
        let mut at = 0;
        // Feed in random pieces, driving after each; sometimes the client does not read.
        while at < req.len() {
            let n = (1 + rng.below(20_000)).min(req.len() - at);
            match client.write(&req[at..at + n]) {
                Ok(w) => at += w,
                Err(_) => break, // the server is not reading (back-pressure) or closed
            }
            let closed = matches!(conn.drive(&ctx, &counters, &mut pool), Drive::Close);
            assert!(
                conn.held_bytes() <= 4 << 20,
                "connection holds {} bytes",
                conn.held_bytes()
            );
            if rng.below(4) != 0 {
                while matches!(client.read(&mut sink), Ok(n) if n > 0) {}
            }
            if closed {
                conn.release_buffers(&counters, &mut pool);
                *slot = None;
                break;
            }
        }
    }
    for slot in conns.iter_mut() {
        if let Some((conn, _)) = slot.as_mut() {
            conn.release_buffers(&counters, &mut pool);
        }
    }
    assert_eq!(ctx.read_budget.used(), 0);
    ctx.cache.check_consistency().unwrap();
    let peek = slabcache::GetOptions {
        bump: false,
        vivify: false,
        counter: slabcache::HitCounter::None,
    };
    let kept = ctx.cache.meta_get(b"sentinel", ctx.clock.now(), peek, |it| {
        (it.flags, it.value.to_vec())
    });
    assert_eq!(kept, Some((7, b"kept".to_vec())));
}

/// The whole-server fuzz target's seed corpus and every regression input committed next to
/// it (fuzz/corpus/slabcached_server), through the same harness libFuzzer runs: nothing
/// panics, buffers and item memory stay bounded, the cache stays consistent.
#[test]
fn the_server_fuzz_corpus_runs_clean() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/slabcached_server");
    let (mut ran, mut total) = (0, crate::fuzzing::Summary::default());
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let input = std::fs::read(&path).unwrap();
        let start = std::time::Instant::now();
        let did = crate::fuzzing::run(&input);
        assert!(
            start.elapsed().as_secs() < 20,
            "{} took {:?}",
            path.display(),
            start.elapsed()
        );
        eprintln!("{}: {did:?}", path.display());
        total.bytes_written += did.bytes_written;
        total.evictions += did.evictions;
        total.slabs_moved += did.slabs_moved;
        ran += 1;
    }
    assert!(ran >= 8, "only {ran} inputs in {}", dir.display());
    // The seeds reach replies, eviction and the page mover (see fuzz/make_seeds.py).
    assert!(
        total.bytes_written > 0 && total.evictions > 0 && total.slabs_moved > 0,
        "{total:?}"
    );
}
