//! A worker thread: one mio event loop serving many connections.
//!
//! New sockets arrive from the listener over a channel, announced by a [`Waker`]. The
//! connections with readiness events are first all read, so the index entries their
//! requests need can be prefetched ([`Worker::serve_ready`]); then each is driven
//! ([`crate::net::conn::Conn::drive`]) until it would block, or until it has served `-R`
//! requests, in which case it goes on a pending list and is driven again after the other
//! ready connections (mio is edge-triggered, so a yielded connection would otherwise never
//! be woken again).

use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU32, AtomicU8, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use crossbeam::channel::{self, Receiver, Sender};
use mio::{Events, Interest, Poll, Token, Waker};

use crate::context::{ConnEntry, Context};
use crate::net::bufpool::BufPool;
use crate::net::conn::{Conn, Drive};
use crate::net::stream::Stream;
use crate::stats::Counters;

const WAKER: Token = Token(usize::MAX);

/// A worker that has had ready connections for this long without its poll ever coming back
/// empty yields the CPU once. When threads outnumber cores (other workers, the clients on
/// the same box), a worker that always has work would otherwise keep the core for a whole
/// scheduler slice (milliseconds) while the connections of the thread waiting for that core
/// starve. What it fixed and what it costs: docs/performance.md, "The fairness yield".
const FAIRNESS_SLICE: Duration = Duration::from_micros(300);

/// A poll that took longer than this blocked for lack of events: the worker had been idle,
/// so its busy stretch starts again (a ready poll returns in a few microseconds).
const POLL_SLEPT: Duration = Duration::from_micros(20);

/// A socket handed from the listener to a worker.
pub struct NewConn {
    stream: Stream,
    peer: String,
    listen: String,
}

/// The listener's end of a worker.
pub struct WorkerHandle {
    tx: Sender<NewConn>,
    waker: Arc<Waker>,
}

impl WorkerHandle {
    pub fn send(&self, stream: Stream, peer: String, listen: String) {
        if self.tx.send(NewConn { stream, peer, listen }).is_ok() {
            let _ = self.waker.wake();
        }
    }

    pub fn wake(&self) {
        let _ = self.waker.wake();
    }
}

pub struct Worker {
    shared: Arc<Context>,
    counters: Arc<Counters>,
    poll: Poll,
    rx: Receiver<NewConn>,
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    pending: Vec<usize>,
    /// Connections with a readiness event in the current poll round.
    ready: Vec<usize>,
    /// I/O buffers for this worker's connections.
    pool: BufPool,
}

impl Worker {
    pub fn new(shared: Arc<Context>, counters: Arc<Counters>) -> io::Result<(Worker, WorkerHandle)> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let (tx, rx) = channel::unbounded();
        let worker = Worker {
            shared,
            counters,
            poll,
            rx,
            conns: Vec::new(),
            free: Vec::new(),
            pending: Vec::new(),
            ready: Vec::new(),
            pool: BufPool::default(),
        };
        Ok((worker, WorkerHandle { tx, waker }))
    }

    pub fn run(mut self) {
        crate::metrics::attach(&self.shared);
        let mut events = Events::with_capacity(256);
        let mut last_idle_check = self.shared.clock.now();
        let mut busy_since = std::time::Instant::now();
        loop {
            let timeout = if self.pending.is_empty() {
                Duration::from_millis(500)
            } else {
                Duration::ZERO
            };
            let poll_started = std::time::Instant::now();
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    log::error!("poll failed: {e}");
                    break;
                }
            }
            let slept = poll_started.elapsed() > POLL_SLEPT;
            if self.shared.stopping.load(Relaxed) {
                break;
            }
            self.ready.clear();
            for event in events.iter() {
                match event.token() {
                    WAKER => self.accept_new(),
                    Token(i) => {
                        if event.is_read_closed() || event.is_error() {
                            if let Some(conn) = self.conns.get_mut(i).and_then(Option::as_mut) {
                                conn.hangup = true;
                            }
                        }
                        self.ready.push(i);
                    }
                }
            }
            self.serve_ready();
            for i in std::mem::take(&mut self.pending) {
                self.drive(i);
            }
            // A poll that slept found no work waiting: the worker was not hogging its core.
            if events.is_empty() || slept {
                busy_since = std::time::Instant::now();
            } else if busy_since.elapsed() > FAIRNESS_SLICE {
                std::thread::yield_now();
                busy_since = std::time::Instant::now();
            }
            let now = self.shared.clock.now();
            if now != last_idle_check {
                last_idle_check = now;
                self.close_idle(now);
            }
        }
        for i in 0..self.conns.len() {
            if self.conns[i].is_some() {
                self.close(i);
            }
        }
    }

    /// Serve the connections of this poll round in three passes: read every socket and
    /// prefetch the index bucket of each first request's key; prefetch the item that bucket
    /// names; then execute and reply. A lookup's two cache misses (bucket, item) are then
    /// loaded while the other sockets are read instead of stalling the request that needs
    /// them (measurements: docs/performance.md, "Where the CPU goes without pipelining").
    fn serve_ready(&mut self) {
        for &i in &self.ready {
            if let Some(conn) = self.conns.get_mut(i).and_then(Option::as_mut) {
                if let Some(key) = conn.prefill(&self.shared, &self.counters, &mut self.pool) {
                    self.shared.cache.prefetch_index(key);
                }
            }
        }
        for &i in &self.ready {
            let conn = self.conns.get(i).and_then(Option::as_ref);
            if let Some(key) = conn.and_then(Conn::peek_key) {
                self.shared.cache.prefetch_item(key);
            }
        }
        for k in 0..self.ready.len() {
            self.drive(self.ready[k]);
        }
    }

    fn accept_new(&mut self) {
        while let Ok(new) = self.rx.try_recv() {
            let index = self.free.pop().unwrap_or_else(|| {
                self.conns.push(None);
                self.conns.len() - 1
            });
            let mut stream = new.stream;
            if let Err(e) = self
                .poll
                .registry()
                .register(&mut stream, Token(index), Interest::READABLE)
            {
                log::warn!("cannot register connection: {e}");
                self.free.push(index);
                self.shared.curr_connections.fetch_sub(1, Relaxed);
                continue;
            }
            let last_cmd = Arc::new(AtomicU32::new(self.shared.clock.now()));
            let state = Arc::new(AtomicU8::new(crate::stats::ConnState::NewCmd as u8));
            let fd = stream.as_raw_fd();
            self.shared.watch.conn_new(&new.peer, fd);
            self.shared
                .conns
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(
                    fd,
                    ConnEntry {
                        addr: new.peer,
                        listen_addr: new.listen,
                        last_cmd: Arc::clone(&last_cmd),
                        state: Arc::clone(&state),
                        watching: false,
                    },
                );
            if self.shared.verbosity.load(Relaxed) > 1 {
                log::debug!("<{fd} new client connection");
            }
            self.conns[index] = Some(Conn::new(stream, fd, last_cmd, state, &self.shared));
            // Data may have arrived before registration.
            self.pending.push(index);
        }
    }

    fn drive(&mut self, index: usize) {
        let Some(conn) = self.conns.get_mut(index).and_then(Option::as_mut) else {
            return;
        };
        let drive = conn.drive(&self.shared, &self.counters, &mut self.pool);
        if let Drive::Watch(streams) = drive {
            self.hand_to_logger(index, streams);
            return;
        }
        if !matches!(drive, Drive::Close) && conn.has_pending_output() != conn.write_interest {
            let interest = if conn.write_interest {
                Interest::READABLE
            } else {
                Interest::READABLE | Interest::WRITABLE
            };
            let token = Token(index);
            if self
                .poll
                .registry()
                .reregister(conn.stream_mut(), token, interest)
                .is_err()
            {
                self.close(index);
                return;
            }
            conn.write_interest = !conn.write_interest;
        }
        match drive {
            Drive::Wait => {}
            Drive::Yield => {
                crate::stats::bump(&self.counters.conn_yields, 1);
                if !self.pending.contains(&index) {
                    self.pending.push(index);
                }
            }
            Drive::Close => self.close(index),
            Drive::Watch(_) => unreachable!("handed over above"),
        }
    }

    /// A connection that sent `watch` leaves this loop for the logger thread (it stays in
    /// `stats conns` until the logger closes it).
    fn hand_to_logger(&mut self, index: usize, streams: crate::watch::WatchStreams) {
        if let Some(mut conn) = self.conns[index].take() {
            let _ = self.poll.registry().deregister(conn.stream_mut());
            self.free.push(index);
            self.pending.retain(|&i| i != index);
            let fd = conn.fd();
            if let Some(entry) = self
                .shared
                .conns
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_mut(&fd)
            {
                entry.watching = true;
            }
            let (stream, unsent) = conn.into_watcher();
            self.shared
                .watch
                .attach(&self.shared, stream, fd, streams.0, unsent);
        }
    }

    fn close(&mut self, index: usize) {
        if let Some(mut conn) = self.conns[index].take() {
            conn.release_buffers(&self.counters, &mut self.pool);
            let _ = self.poll.registry().deregister(conn.stream_mut());
            let entry = self
                .shared
                .conns
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&conn.fd());
            if let Some(entry) = entry {
                let reason = conn.close_reason();
                self.shared.watch.conn_close(&entry.addr, reason, conn.fd());
            }
            self.shared.curr_connections.fetch_sub(1, Relaxed);
            self.free.push(index);
            if self.shared.verbosity.load(Relaxed) > 1 {
                log::debug!("<{} connection closed.", conn.fd());
            }
        }
    }

    fn close_idle(&mut self, now: u32) {
        let timeout = self.shared.config.idle_timeout;
        if timeout == 0 {
            return;
        }
        for i in 0..self.conns.len() {
            let idle = self.conns[i]
                .as_ref()
                .is_some_and(|c| now.saturating_sub(c.last_command()) > timeout);
            if idle {
                crate::stats::bump(&self.counters.idle_kicks, 1);
                if let Some(conn) = self.conns[i].as_mut() {
                    conn.set_close_reason(crate::watch::CloseReason::IdleTimeout);
                }
                self.close(i);
            }
        }
    }
}
