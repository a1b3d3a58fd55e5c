//! The logger thread: started by the first watcher, it moves every thread's lines to the
//! watchers that want them and writes each watcher's buffer to its socket, never waiting
//! on one (the sockets are non-blocking). A watcher whose buffer cannot take a line (plus
//! memcached's 128 bytes of room for a `skipped=` line) after a write attempt misses it;
//! it skips every further line of that round, and its next line is preceded by
//! `skipped=<count>\n`. A watcher that hung up (read returns 0) or whose socket failed is
//! closed and leaves `stats conns`.
//!
//! The thread sleeps between rounds: 1 ms while lines keep coming, up to 20 ms when
//! none do, and on a condition variable (woken by a new watcher) when nobody watches.

use std::io::{self, Read, Write};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use super::{lock, CloseReason, LogStats, NewWatcher, ThreadLog};
use crate::context::Context;
use crate::net::stream::Stream;

const MIN_SLEEP: Duration = Duration::from_millis(1);
const MAX_SLEEP: Duration = Duration::from_millis(20);
/// Room kept for a `skipped=` line, as memcached keeps.
const SKIP_ROOM: usize = 128;

pub(super) fn spawn(ctx: Arc<Context>) -> io::Result<()> {
    std::thread::Builder::new()
        .name("logger".into())
        .spawn(move || run(&ctx))?;
    Ok(())
}

/// A watcher, owned by the logger thread.
struct Watcher {
    stream: Stream,
    fd: i32,
    streams: u16,
    min_gid: u64,
    /// Bytes `pos..` are still to be written.
    buf: Vec<u8>,
    pos: usize,
    /// Lines missed since the last one delivered.
    skipped: u64,
    /// A write this round could not make room: skip the rest of the round.
    failed_flush: bool,
    closed: bool,
}

impl Watcher {
    fn new(w: NewWatcher) -> Watcher {
        Watcher {
            stream: w.stream,
            fd: w.fd,
            streams: w.streams,
            min_gid: w.min_gid,
            buf: w.first_bytes,
            pos: 0,
            skipped: 0,
            failed_flush: false,
            closed: false,
        }
    }

    fn unsent(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Queue `line`, or count it skipped when there is no room even after a write.
    fn offer(&mut self, line: &[u8], capacity: usize, stats: &LogStats) {
        if self.closed {
            return;
        }
        if !self.failed_flush && self.unsent() + line.len() + SKIP_ROOM > capacity {
            self.flush();
            if self.unsent() + line.len() + SKIP_ROOM > capacity {
                self.failed_flush = true;
            }
        }
        if self.failed_flush {
            self.skipped += 1;
            stats.watcher_skipped.fetch_add(1, Relaxed);
            return;
        }
        if self.skipped > 0 {
            let _ = writeln!(self.buf, "skipped={}", self.skipped);
            self.skipped = 0;
        }
        self.buf.extend_from_slice(line);
        stats.watcher_sent.fetch_add(1, Relaxed);
    }

    /// Write what the socket takes now.
    fn flush(&mut self) {
        while !self.closed && self.pos < self.buf.len() {
            match self.stream.write(&self.buf[self.pos..]) {
                Ok(0) => self.closed = true,
                Ok(n) => self.pos += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => self.closed = true,
            }
        }
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        } else if self.pos > self.buf.len() / 2 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
    }

    /// Notice a client that hung up (whatever it sends is ignored, as memcached does).
    fn check_hangup(&mut self) {
        let mut scratch = [0u8; 512];
        loop {
            match self.stream.read(&mut scratch) {
                Ok(0) => {
                    self.closed = true;
                    return;
                }
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => {
                    self.closed = true;
                    return;
                }
            }
        }
    }
}

fn run(ctx: &Context) {
    let shared = Arc::clone(ctx.watch.shared());
    let stats = &shared.stats;
    let capacity = shared.watcher_buf;
    let mut watchers: Vec<Watcher> = Vec::new();
    let mut drained = ThreadLog::default();
    let mut sleep = MIN_SLEEP;
    while !ctx.stopping.load(Relaxed) {
        {
            let mut state = lock(&shared.state);
            watchers.extend(state.pending.drain(..).map(Watcher::new));
            if watchers.is_empty() {
                let _ = shared.wake.wait_timeout(state, Duration::from_millis(500));
                continue;
            }
        }
        let mut found = false;
        let logs: Vec<_> = {
            let mut logs = lock(&shared.logs);
            // A thread that ended leaves its buffer behind; drop it once drained.
            logs.retain(|l| Arc::strong_count(l) > 1 || !lock(l).lines.is_empty());
            logs.clone()
        };
        for log in logs {
            std::mem::swap(&mut *lock(&log), &mut drained);
            stats.worker_written.fetch_add(drained.written, Relaxed);
            stats.worker_dropped.fetch_add(drained.dropped, Relaxed);
            found |= !drained.lines.is_empty();
            let mut start = 0;
            for &(gid, stream, end) in &drained.lines {
                let line = &drained.bytes[start..end];
                start = end;
                for w in watchers.iter_mut() {
                    if w.streams & stream != 0 && gid >= w.min_gid {
                        w.offer(line, capacity, stats);
                    }
                }
            }
            drained.bytes.clear();
            drained.lines.clear();
            drained.written = 0;
            drained.dropped = 0;
        }
        for w in watchers.iter_mut() {
            w.failed_flush = false;
            w.check_hangup();
            w.flush();
        }
        if watchers.iter().any(|w| w.closed) {
            close_watchers(ctx, &mut watchers);
        }
        stats.watchers.store(watchers.len(), Relaxed);
        sleep = if found {
            (sleep / 2).max(MIN_SLEEP)
        } else {
            (sleep + sleep / 8).min(MAX_SLEEP)
        };
        let state = lock(&shared.state);
        if state.pending.is_empty() {
            let _ = shared.wake.wait_timeout(state, sleep);
        }
    }
}

/// Close the watchers that hung up or failed, and stop recording what nobody watches.
fn close_watchers(ctx: &Context, watchers: &mut Vec<Watcher>) {
    let shared = ctx.watch.shared();
    let mut state = lock(&shared.state);
    watchers.retain(|w| {
        if !w.closed {
            return true;
        }
        // The entry goes before the socket is closed, so its fd cannot be reused by a
        // connection whose entry this would remove.
        let entry = lock(&ctx.conns).remove(&w.fd);
        if let Some(entry) = entry {
            // memcached closes a watcher as it closes a connection on error.
            ctx.watch.conn_close(&entry.addr, CloseReason::Error, w.fd);
        }
        ctx.curr_connections.fetch_sub(1, Relaxed);
        state.count -= 1;
        false
    });
    let streams = watchers
        .iter()
        .map(|w| w.streams)
        .chain(state.pending.iter().map(|w| w.streams))
        .fold(0, |all, s| all | s);
    ctx.watch.set_streams(streams);
}
