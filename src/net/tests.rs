//! A connection in process: requests written into one end of a socket pair, the connection
//! driven as a worker drives it, replies read from the other end.

use std::io::{Read, Write};
use std::sync::atomic::AtomicU32;
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
    let conn = Conn::new(Stream::Unix(server), 0, Arc::new(AtomicU32::new(0)), &ctx);
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
