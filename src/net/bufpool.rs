//! A worker's pool of I/O buffers, so that an idle connection holds none.
//!
//! A connection takes a read and a write buffer of [`BUF_SIZE`] bytes when it has work and
//! gives them back when it goes idle with nothing buffered (a partial command is copied
//! into a buffer of its own size first). Taking and giving are a `Vec` pop and push on the
//! worker's own thread. The pool keeps at most [`KEEP`] spare buffers; it counts what it
//! allocates and frees in the worker's counters (`stats` shows them as memcached's
//! `read_buf_count`, `read_buf_bytes`, `read_buf_bytes_free`).

use crate::stats::{bump, Counters};

/// Size of a pooled buffer (memcached's read buffers are 16 KB too).
pub const BUF_SIZE: usize = 16 * 1024;
/// Spare buffers a worker keeps (1 MB).
const KEEP: usize = 64;

#[derive(Default)]
pub struct BufPool {
    spare: Vec<Vec<u8>>,
}

impl BufPool {
    /// A buffer of at least `BUF_SIZE` initialised bytes (its whole capacity) to read into.
    pub fn take_read(&mut self, counters: &Counters) -> Vec<u8> {
        let mut buf = self.take(counters);
        buf.resize(buf.capacity(), 0);
        buf
    }

    /// An empty buffer with room for `BUF_SIZE` bytes of replies.
    pub fn take_write(&mut self, counters: &Counters) -> Vec<u8> {
        bump(&counters.wbuf_takes, 1);
        let mut buf = self.take(counters);
        buf.clear();
        buf
    }

    fn take(&mut self, counters: &Counters) -> Vec<u8> {
        bump(&counters.buf_takes, 1);
        self.spare.pop().unwrap_or_else(|| {
            bump(&counters.buf_allocs, 1);
            Vec::with_capacity(BUF_SIZE)
        })
    }

    /// Give back a write buffer taken with [`BufPool::take_write`].
    pub fn give_write(&mut self, buf: Vec<u8>, counters: &Counters) {
        if buf.capacity() != 0 {
            bump(&counters.wbuf_gives, 1);
            self.give(buf, counters);
        }
    }

    /// Give back a buffer (one that grew past twice `BUF_SIZE`, as a pipelined batch's
    /// may once, is kept; a larger one, or one beyond the spares kept, is freed).
    pub fn give(&mut self, buf: Vec<u8>, counters: &Counters) {
        if buf.capacity() == 0 {
            return;
        }
        bump(&counters.buf_gives, 1);
        if (BUF_SIZE..=2 * BUF_SIZE).contains(&buf.capacity()) && self.spare.len() < KEEP {
            self.spare.push(buf);
        } else {
            bump(&counters.buf_frees, 1);
        }
    }
}
