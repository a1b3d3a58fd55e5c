//! A worker's pool of I/O buffers, so that an idle connection holds none.
//!
//! A connection takes a read and a write buffer of [`BUF_SIZE`] bytes when it has work and
//! gives them back when it goes idle with nothing buffered (a partial command is copied
//! into a buffer of its own size first). Taking and giving are a `Vec` pop and push on the
//! worker's own thread. The pool keeps at most [`KEEP`] spare buffers of each kind; it counts what it
//! allocates and frees in the worker's counters (`stats` shows them as memcached's
//! `read_buf_count`, `read_buf_bytes`, `read_buf_bytes_free`).

use crate::stats::{bump, Counters};

/// Size of a pooled buffer (memcached's read buffers are 16 KB too).
pub const BUF_SIZE: usize = 16 * 1024;
/// Spare buffers a worker keeps (1 MB).
const KEEP: usize = 64;

/// Read and write buffers are kept apart: a read buffer stays initialised (its length is
/// its capacity, so reads never zero it again), a write buffer stays empty.
#[derive(Default)]
pub struct BufPool {
    spare_read: Vec<Vec<u8>>,
    spare_write: Vec<Vec<u8>>,
}

impl BufPool {
    /// A buffer of at least `BUF_SIZE` initialised bytes (its whole capacity) to read into.
    pub fn take_read(&mut self, counters: &Counters) -> Vec<u8> {
        let mut buf = Self::take(&mut self.spare_read, counters);
        buf.resize(buf.capacity(), 0);
        buf
    }

    /// An empty buffer with room for `BUF_SIZE` bytes of replies.
    pub fn take_write(&mut self, counters: &Counters) -> Vec<u8> {
        bump(&counters.wbuf_takes, 1);
        Self::take(&mut self.spare_write, counters)
    }

    fn take(spare: &mut Vec<Vec<u8>>, counters: &Counters) -> Vec<u8> {
        bump(&counters.buf_takes, 1);
        spare.pop().unwrap_or_else(|| {
            bump(&counters.buf_allocs, 1);
            Vec::with_capacity(BUF_SIZE)
        })
    }

    /// Give back a write buffer taken with [`BufPool::take_write`].
    pub fn give_write(&mut self, mut buf: Vec<u8>, counters: &Counters) {
        if buf.capacity() != 0 {
            bump(&counters.wbuf_gives, 1);
            buf.clear();
            Self::give_to(&mut self.spare_write, buf, counters);
        }
    }

    /// Give back a read buffer taken with [`BufPool::take_read`] (it may have grown).
    pub fn give(&mut self, buf: Vec<u8>, counters: &Counters) {
        if buf.capacity() != 0 {
            Self::give_to(&mut self.spare_read, buf, counters);
        }
    }

    /// Keep a buffer of up to twice `BUF_SIZE` (a pipelined batch's may grow once); free
    /// a larger one, or one beyond the spares kept.
    fn give_to(spare: &mut Vec<Vec<u8>>, buf: Vec<u8>, counters: &Counters) {
        bump(&counters.buf_gives, 1);
        if (BUF_SIZE..=2 * BUF_SIZE).contains(&buf.capacity()) && spare.len() < KEEP {
            spare.push(buf);
        } else {
            bump(&counters.buf_frees, 1);
        }
    }
}
