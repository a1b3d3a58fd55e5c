//! memcached's log streams: `watch fetchers|mutations|evictions|connevents|...` turns a
//! connection into a watcher that receives one line per event of the streams it named.
//!
//! The request path pays one relaxed atomic load ([`Watch::streams`]) while nobody
//! watches. When someone does, the thread that sees an event formats its line
//! ([`format`]) into a bounded buffer of its own (one per thread, registered on first use,
//! behind a mutex only that thread and the logger take); a full buffer drops the line
//! (`log_worker_dropped`). The logger thread ([`logger`]) moves the lines to each watcher's
//! bounded buffer and writes them to its socket without blocking; a watcher whose buffer is
//! full misses lines, and is told how many with a `skipped=N` line before the next one it
//! gets (`log_watcher_skipped`). A slow watcher never stalls a worker.
//!
//! A watcher is handed over by its worker with its socket ([`Watch::attach`]); the logger
//! owns it from then on and closes it when the client hangs up. Like memcached, a server
//! has at most [`MAX_WATCHERS`] watchers.

pub mod events;
pub mod format;
mod logger;

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicU16, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

pub use format::{CloseReason, GetStatus};
pub use proto::text::WatchStreams;

use crate::context::Context;
use crate::net::stream::Stream;

/// memcached's limit on simultaneous watchers.
pub const MAX_WATCHERS: usize = 20;
/// memcached's default per-thread log buffer (`-o worker_logbuf_size`, in KB there).
pub const WORKER_LOGBUF_SIZE: usize = 64 * 1024;
/// memcached's default per-watcher buffer (`-o watcher_logbuf_size`, in KB there).
pub const WATCHER_LOGBUF_SIZE: usize = 256 * 1024;

/// `watch` refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchError {
    /// Already [`MAX_WATCHERS`].
    TooMany,
}

/// The log streams of one server.
pub struct Watch {
    /// The streams some watcher wants: the one thing the request path reads.
    streams: AtomicU16,
    shared: Arc<Shared>,
}

/// What the event sources, the eviction observer and the logger thread share.
pub(crate) struct Shared {
    /// Tells this server's thread buffers from another's (tests run several servers in
    /// one process).
    id: usize,
    /// [`Watch::streams`] again, for the eviction observer (which cannot hold the Watch:
    /// it lives in the context that owns the cache).
    streams: AtomicU16,
    gid: AtomicU64,
    worker_buf: usize,
    pub(crate) watcher_buf: usize,
    /// Every thread buffer ever registered.
    pub(crate) logs: Mutex<Vec<Arc<Mutex<ThreadLog>>>>,
    pub(crate) state: Mutex<State>,
    pub(crate) wake: Condvar,
    pub(crate) stats: LogStats,
}

/// Watchers not yet taken over by the logger, and the count of all of them.
#[derive(Default)]
pub(crate) struct State {
    pub(crate) pending: Vec<NewWatcher>,
    /// Watchers reserved, pending or running (at most [`MAX_WATCHERS`]).
    pub(crate) count: usize,
    pub(crate) logger_running: bool,
}

/// A connection that became a watcher, on its way to the logger.
pub(crate) struct NewWatcher {
    pub(crate) stream: Stream,
    pub(crate) fd: i32,
    pub(crate) streams: u16,
    /// Events older than the watch are not shown.
    pub(crate) min_gid: u64,
    /// What the connection still had to send, then `OK\r\n`.
    pub(crate) first_bytes: Vec<u8>,
}

/// `stats` rows of the logger.
#[derive(Default)]
pub(crate) struct LogStats {
    pub(crate) worker_dropped: AtomicU64,
    pub(crate) worker_written: AtomicU64,
    pub(crate) watcher_skipped: AtomicU64,
    pub(crate) watcher_sent: AtomicU64,
    pub(crate) watchers: AtomicUsize,
}

/// One thread's lines waiting for the logger.
#[derive(Default)]
pub(crate) struct ThreadLog {
    pub(crate) bytes: Vec<u8>,
    /// (gid, stream, end offset in `bytes`) of each line.
    pub(crate) lines: Vec<(u64, u16, usize)>,
    pub(crate) written: u64,
    pub(crate) dropped: u64,
}

static NEXT_ID: AtomicUsize = AtomicUsize::new(1);

thread_local! {
    /// This thread's buffer, and the id of the server it belongs to.
    static LOCAL: RefCell<Option<(usize, Arc<Mutex<ThreadLog>>)>> = const { RefCell::new(None) };
    /// The connection this worker is serving, for the `cfd=` of its events.
    static CURRENT_FD: Cell<i32> = const { Cell::new(0) };
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Watch {
    /// `worker_buf` and `watcher_buf` are the buffer sizes in bytes.
    pub fn new(worker_buf: usize, watcher_buf: usize) -> Watch {
        Watch {
            streams: AtomicU16::new(0),
            shared: Arc::new(Shared {
                id: NEXT_ID.fetch_add(1, Relaxed),
                streams: AtomicU16::new(0),
                gid: AtomicU64::new(0),
                worker_buf,
                watcher_buf,
                logs: Mutex::new(Vec::new()),
                state: Mutex::new(State::default()),
                wake: Condvar::new(),
                stats: LogStats::default(),
            }),
        }
    }

    /// The streams someone watches (0 almost always): check before building an event.
    #[inline]
    pub fn streams(&self) -> u16 {
        self.streams.load(Relaxed)
    }

    /// Whether any of `streams` is watched.
    #[inline]
    pub fn wants(&self, streams: u16) -> bool {
        self.streams() & streams != 0
    }

    /// Send the cache's evictions to the `evictions` stream and its automove decisions
    /// to `sysevents`.
    pub fn observe_cache(&self, cache: &slabcache::Cache) {
        let shared = Arc::clone(&self.shared);
        cache.set_eviction_observer(Box::new(move |e| {
            if shared.streams.load(Relaxed) & WatchStreams::EVICTIONS != 0 {
                shared.log(WatchStreams::EVICTIONS, |out| format::eviction(out, e));
            }
        }));
        let shared = Arc::clone(&self.shared);
        cache.set_move_observer(Box::new(move |src, dst| {
            if shared.streams.load(Relaxed) & WatchStreams::SYSEVENTS != 0 {
                shared.log(WatchStreams::SYSEVENTS, |out| format::slab_move(out, src, dst));
            }
        }));
    }

    /// Record one event of `stream`: `body` writes the line after its `ts= gid= ` prefix.
    pub fn log(&self, stream: u16, body: impl FnOnce(&mut Vec<u8>)) {
        self.shared.log(stream, body);
    }

    /// Reserve a watcher slot for a `watch` command.
    pub fn reserve(&self) -> Result<(), WatchError> {
        let mut state = lock(&self.shared.state);
        if state.count >= MAX_WATCHERS {
            return Err(WatchError::TooMany);
        }
        state.count += 1;
        Ok(())
    }

    /// Hand a connection that sent `watch` (its slot reserved) to the logger: from now on
    /// it receives `unsent`, `OK`, then the lines of `streams`.
    pub fn attach(&self, ctx: &Arc<Context>, stream: Stream, fd: i32, streams: u16, mut unsent: Vec<u8>) {
        unsent.extend_from_slice(b"OK\r\n");
        let min_gid = self.shared.next_gid();
        let mut state = lock(&self.shared.state);
        state.pending.push(NewWatcher {
            stream,
            fd,
            streams,
            min_gid,
            first_bytes: unsent,
        });
        // Events from now on are recorded (the logger drops those older than min_gid).
        self.streams.fetch_or(streams, Relaxed);
        self.shared.streams.fetch_or(streams, Relaxed);
        if !state.logger_running {
            match logger::spawn(Arc::clone(ctx)) {
                Ok(()) => state.logger_running = true,
                Err(e) => log::error!("cannot start the logger thread: {e}"),
            }
        }
        self.shared.wake.notify_one();
    }

    /// Publish the streams the watchers now want (the logger, after a watcher left).
    pub(crate) fn set_streams(&self, streams: u16) {
        self.streams.store(streams, Relaxed);
        self.shared.streams.store(streams, Relaxed);
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The logger's `stats` rows, in memcached's order.
    pub fn stats_rows(&self) -> [(&'static str, u64); 5] {
        let s = &self.shared.stats;
        [
            ("log_worker_dropped", s.worker_dropped.load(Relaxed)),
            ("log_worker_written", s.worker_written.load(Relaxed)),
            ("log_watcher_skipped", s.watcher_skipped.load(Relaxed)),
            ("log_watcher_sent", s.watcher_sent.load(Relaxed)),
            ("log_watchers", s.watchers.load(Relaxed) as u64),
        ]
    }

    /// A connection opened (`connevents`).
    pub fn conn_new(&self, peer: &str, fd: i32) {
        if self.wants(WatchStreams::CONNEVENTS) {
            self.log(WatchStreams::CONNEVENTS, |out| format::conn_new(out, peer, fd));
        }
    }

    /// A connection closed (`connevents`).
    pub fn conn_close(&self, peer: &str, reason: CloseReason, fd: i32) {
        if self.wants(WatchStreams::CONNEVENTS) {
            self.log(WatchStreams::CONNEVENTS, |out| {
                format::conn_close(out, peer, reason, fd)
            });
        }
    }
}

/// Note the connection this thread serves next (called by a worker only while someone
/// watches).
pub fn set_current_fd(fd: i32) {
    CURRENT_FD.with(|c| c.set(fd));
}

/// The connection this thread is serving.
pub fn current_fd() -> i32 {
    CURRENT_FD.with(Cell::get)
}

impl Shared {
    fn next_gid(&self) -> u64 {
        self.gid.fetch_add(1, Relaxed) + 1
    }

    fn log(&self, stream: u16, body: impl FnOnce(&mut Vec<u8>)) {
        let log = LOCAL.with(|local| {
            let mut local = local.borrow_mut();
            match &*local {
                Some((id, log)) if *id == self.id => Arc::clone(log),
                _ => {
                    let log = Arc::new(Mutex::new(ThreadLog::default()));
                    lock(&self.logs).push(Arc::clone(&log));
                    *local = Some((self.id, Arc::clone(&log)));
                    log
                }
            }
        });
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let mut log = lock(&log);
        let start = log.bytes.len();
        if start >= self.worker_buf {
            log.dropped += 1;
            return;
        }
        let gid = self.next_gid();
        format::prefix(&mut log.bytes, now.as_secs(), now.subsec_micros(), gid);
        body(&mut log.bytes);
        if log.bytes.len() > self.worker_buf {
            log.bytes.truncate(start);
            log.dropped += 1;
            return;
        }
        let end = log.bytes.len();
        log.lines.push((gid, stream, end));
        log.written += 1;
    }
}
