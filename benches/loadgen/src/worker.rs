//! One load thread: a mio event loop that drives its share of the connections.
//!
//! Closed loop: each connection keeps `--pipeline` requests in flight (preload: `--preload-depth`
//! sets, or two noreply batches) and queues new requests as soon as replies complete; all
//! requests queued at once go out in one `write`. Paced (`--rate`): each connection also waits
//! for its own next send time, one interval (`connections / rate`) after the previous one, the
//! connections' schedules staggered evenly across an interval; a connection that fell behind
//! catches up by at most one interval, so a slow server sees no burst. Replies are parsed in place in a per-connection
//! read buffer. A connection whose byte stream stops making sense (or that the server closes) is
//! dropped, its requests in flight counted as errors, and reopened after a short back-off.
//!
//! Counters: every thread keeps its own, publishes the running totals to a cache-line-aligned
//! slot once per loop turn for the progress line, and returns the measured-window counts and its
//! latency histogram when it ends; the main thread merges them.

use crate::config::{Config, Protocol};
use crate::parse::{self, Expect, Kind, Pending, Step, Tally, MAX_FRAME};
use crate::rng::Rng;
use crate::tls::Link;
use crate::workload::{Workload, OP_GETK, OP_GETKQ, OP_SET, OP_SETQ};
use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::time::{Duration, Instant};

/// Phase: preload or warm-up, replies are not measured.
pub const PHASE_RUN: u8 = 0;
/// Phase: measured window.
pub const PHASE_MEASURE: u8 = 1;
/// Phase: stop now.
pub const PHASE_STOP: u8 = 2;

const READ_CHUNK: usize = 64 * 1024;
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// How often requests in flight are checked against `--request-timeout`.
const TIMEOUT_CHECK: Duration = Duration::from_millis(100);
/// Longest latency the histogram holds (1 hour, in ns); longer samples are clamped.
const HIST_MAX_NS: u64 = 3_600_000_000_000;

/// Running totals a thread publishes for the progress line.
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct Progress {
    /// Replies completed.
    pub requests: AtomicU64,
    /// Sets completed (preload batches count each set).
    pub sets: AtomicU64,
    /// Keys found.
    pub hits: AtomicU64,
    /// Keys not found.
    pub misses: AtomicU64,
    /// Errors.
    pub errors: AtomicU64,
    /// Sum of reply latencies, ns.
    pub latency_ns: AtomicU64,
    /// Connections currently open.
    pub live: AtomicU64,
}

/// State shared between the main thread and the workers.
#[derive(Debug)]
pub struct Shared {
    /// Current phase (`PHASE_*`).
    pub phase: AtomicU8,
    /// One progress slot per worker.
    pub progress: Vec<Progress>,
}

impl Shared {
    /// Shared state for `threads` workers.
    pub fn new(threads: usize) -> Self {
        Shared {
            phase: AtomicU8::new(PHASE_RUN),
            progress: (0..threads).map(|_| Progress::default()).collect(),
        }
    }
}

/// Counts of completed requests.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    /// Replies completed (a multi-get or a noreply batch is one).
    pub requests: u64,
    /// Gets and multi-gets.
    pub gets: u64,
    /// Sets.
    pub sets: u64,
    /// Keys found.
    pub hits: u64,
    /// Keys not found.
    pub misses: u64,
    /// Errors, including requests lost with a reset connection.
    pub errors: u64,
    /// Sum of latencies, ns.
    pub latency_ns: u64,
}

impl Counts {
    /// Adds `o` into `self`.
    pub fn add(&mut self, o: &Counts) {
        self.requests += o.requests;
        self.gets += o.gets;
        self.sets += o.sets;
        self.hits += o.hits;
        self.misses += o.misses;
        self.errors += o.errors;
        self.latency_ns += o.latency_ns;
    }
}

/// What a worker did, returned when it ends.
#[derive(Debug)]
pub struct WorkerResult {
    /// Counts over the measured window.
    pub measured: Counts,
    /// Latencies over the measured window, ns.
    pub hist: Histogram<u64>,
    /// Preload: sets acknowledged (noreply: sets in completed batches).
    pub preload_sets: u64,
    /// Preload: errors.
    pub preload_errors: u64,
    /// Connections reset after an error.
    pub reconnects: u64,
    /// Failed connection attempts.
    pub connect_failures: u64,
    /// Preload: all of this thread's keys were sent and answered.
    pub finished: bool,
}

/// What a worker does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Set each key of the connection's slice of the key space once.
    Preload,
    /// Random get/set mix until stopped.
    Load,
}

struct Conn {
    stream: Option<Link>,
    wbuf: Vec<u8>,
    wpos: usize,
    rbuf: Vec<u8>,
    rstart: usize,
    rend: usize,
    inflight: VecDeque<Pending>,
    opaque: u32,
    retry_at: Instant,
    backoff: Duration,
    next_key: u64,
    end_key: u64,
    /// Paced load: when this connection may send its next request.
    next_send: Instant,
}

impl Conn {
    fn next_opaque(&mut self) -> u32 {
        self.opaque = self.opaque.wrapping_add(1);
        self.opaque
    }

    fn preload_left(&self) -> bool {
        self.next_key < self.end_key || !self.inflight.is_empty()
    }
}

struct Stats {
    mode: Mode,
    measuring: bool,
    total: Counts,
    measured: Counts,
    hist: Histogram<u64>,
    preload_sets: u64,
    preload_errors: u64,
}

impl Stats {
    fn record(&mut self, p: &Pending, t: Tally, now: Instant) {
        let lat = u64::try_from(now.saturating_duration_since(p.sent).as_nanos()).unwrap_or(u64::MAX);
        let mut c = Counts {
            requests: 1,
            errors: u64::from(t.errors),
            latency_ns: lat,
            ..Counts::default()
        };
        match p.kind {
            Kind::Get => {
                c.gets = 1;
                c.hits = u64::from(t.hits);
                c.misses = u64::from(t.misses);
            }
            Kind::Set => c.sets = 1,
            Kind::SetBatch(n) => c.sets = u64::from(n),
        }
        self.total.add(&c);
        match self.mode {
            Mode::Preload => {
                self.preload_sets += c.sets;
                self.preload_errors += c.errors;
            }
            Mode::Load if self.measuring => {
                self.measured.add(&c);
                self.hist.saturating_record(lat.clamp(1, HIST_MAX_NS));
            }
            Mode::Load => {}
        }
    }

    fn lost(&mut self, p: &Pending) {
        let n = match p.kind {
            Kind::SetBatch(n) => u64::from(n),
            Kind::Get | Kind::Set => 1,
        };
        self.total.errors += n;
        match self.mode {
            Mode::Preload => self.preload_errors += n,
            Mode::Load if self.measuring => self.measured.errors += n,
            Mode::Load => {}
        }
    }
}

/// One worker thread's state.
pub struct Worker<'a> {
    /// `--tls`: the client configuration connections are wrapped with.
    tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    cfg: &'a Config,
    wl: &'a Workload,
    shared: &'a Shared,
    id: usize,
    addr: SocketAddr,
    poll: Poll,
    conns: Vec<Conn>,
    rng: Rng,
    stats: Stats,
    reconnects: u64,
    connect_failures: u64,
    reports: u32,
}

impl<'a> Worker<'a> {
    /// Worker `id` of `cfg.threads`, owning the global connections `id, id + threads, ...`.
    pub fn new(
        cfg: &'a Config,
        wl: &'a Workload,
        shared: &'a Shared,
        id: usize,
        addr: SocketAddr,
        mode: Mode,
    ) -> io::Result<Self> {
        let now = Instant::now();
        let total = cfg.connections as u128;
        let keys = u128::from(cfg.keys);
        let conns = (id..cfg.connections)
            .step_by(cfg.threads)
            .map(|g| {
                let g = g as u128;
                Conn {
                    stream: None,
                    wbuf: Vec::with_capacity(READ_CHUNK),
                    wpos: 0,
                    rbuf: vec![0; READ_CHUNK],
                    rstart: 0,
                    rend: 0,
                    inflight: VecDeque::new(),
                    opaque: 0,
                    retry_at: now,
                    backoff: BACKOFF_MIN,
                    next_key: (g * keys / total) as u64,
                    end_key: ((g + 1) * keys / total) as u64,
                    next_send: now + pace_interval(cfg).mul_f64(g as f64 / total as f64),
                }
            })
            .collect();
        let hist = Histogram::new_with_bounds(1, HIST_MAX_NS, 3)
            .map_err(|e| io::Error::other(format!("histogram: {e}")))?;
        Ok(Worker {
            tls: if cfg.tls {
                Some(crate::tls::client_config()?)
            } else {
                None
            },
            cfg,
            wl,
            shared,
            id,
            addr,
            poll: Poll::new()?,
            conns,
            rng: Rng::new(
                cfg.seed,
                id as u64 + 1 + if mode == Mode::Preload { 1 << 32 } else { 0 },
            ),
            stats: Stats {
                mode,
                measuring: false,
                total: Counts::default(),
                measured: Counts::default(),
                hist,
                preload_sets: 0,
                preload_errors: 0,
            },
            reconnects: 0,
            connect_failures: 0,
            reports: 0,
        })
    }

    /// Runs until the phase is `PHASE_STOP` (or, preloading, until every key is set).
    pub fn run(mut self) -> WorkerResult {
        let mut events = Events::with_capacity(1024);
        let mut finished = false;
        let request_timeout = Duration::from_secs_f64(self.cfg.request_timeout);
        let mut next_timeout_check = Instant::now() + TIMEOUT_CHECK;
        let yield_after = Duration::from_micros(self.cfg.yield_after_us);
        let mut busy_since = Instant::now();
        loop {
            let phase = self.shared.phase.load(Ordering::Acquire);
            if phase == PHASE_STOP {
                break;
            }
            self.stats.measuring = phase == PHASE_MEASURE;
            if self.stats.mode == Mode::Preload && !self.conns.iter().any(Conn::preload_left) {
                finished = true;
                break;
            }
            let now = Instant::now();
            let mut timeout = Duration::from_millis(100);
            for i in 0..self.conns.len() {
                let c = &self.conns[i];
                if c.stream.is_some() || (self.stats.mode == Mode::Preload && !c.preload_left()) {
                    continue;
                }
                if c.retry_at <= now {
                    if self.connect(i, now) {
                        self.service(i, Readiness::None);
                    }
                } else {
                    timeout = timeout.min(c.retry_at - now);
                }
            }
            if now >= next_timeout_check {
                next_timeout_check = now + TIMEOUT_CHECK;
                for i in 0..self.conns.len() {
                    let stuck = self.conns[i]
                        .inflight
                        .front()
                        .is_some_and(|p| now.saturating_duration_since(p.sent) > request_timeout);
                    if stuck {
                        self.reset(i, "request timed out");
                    }
                }
            }
            if let Some(due) = self.paced_due(now) {
                timeout = timeout.min(due.saturating_duration_since(now));
            }
            self.publish();
            match self.poll.poll(&mut events, Some(timeout)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    eprintln!("loadgen: thread {}: poll failed: {e}", self.id);
                    break;
                }
            }
            for ev in events.iter() {
                let readiness = if ev.is_read_closed() || ev.is_error() {
                    Readiness::Hangup
                } else if ev.is_readable() {
                    Readiness::Data
                } else {
                    Readiness::None
                };
                self.service(ev.token().0, readiness);
            }
            if self.stats.mode == Mode::Load && self.cfg.rate > 0 {
                let now = Instant::now();
                for i in 0..self.conns.len() {
                    let c = &self.conns[i];
                    if c.stream.is_some() && c.next_send <= now && c.inflight.len() < self.cfg.pipeline {
                        self.service(i, Readiness::None);
                    }
                }
            }
            // --yield-after-us (a diagnostic, off by default): give the core away after a
            // stretch of work without an empty poll, as slabcached's workers do.
            if !yield_after.is_zero() {
                if events.is_empty() {
                    busy_since = Instant::now();
                } else if busy_since.elapsed() > yield_after {
                    std::thread::yield_now();
                    busy_since = Instant::now();
                }
            }
        }
        self.publish();
        for c in &mut self.conns {
            if let Some(mut s) = c.stream.take() {
                let _ = self.poll.registry().deregister(s.socket());
            }
        }
        WorkerResult {
            measured: self.stats.measured,
            hist: self.stats.hist,
            preload_sets: self.stats.preload_sets,
            preload_errors: self.stats.preload_errors,
            reconnects: self.reconnects,
            connect_failures: self.connect_failures,
            finished,
        }
    }

    /// Paced load: the earliest send time of a connection that has room in flight.
    fn paced_due(&self, now: Instant) -> Option<Instant> {
        if self.stats.mode != Mode::Load || self.cfg.rate == 0 {
            return None;
        }
        self.conns
            .iter()
            .filter(|c| c.stream.is_some() && c.inflight.len() < self.cfg.pipeline)
            .map(|c| c.next_send.max(now))
            .min()
    }

    fn publish(&self) {
        let p = &self.shared.progress[self.id];
        let t = &self.stats.total;
        p.requests.store(t.requests, Ordering::Relaxed);
        p.sets.store(t.sets, Ordering::Relaxed);
        p.hits.store(t.hits, Ordering::Relaxed);
        p.misses.store(t.misses, Ordering::Relaxed);
        p.errors.store(t.errors, Ordering::Relaxed);
        p.latency_ns.store(t.latency_ns, Ordering::Relaxed);
        let live = self.conns.iter().filter(|c| c.stream.is_some()).count();
        p.live.store(live as u64, Ordering::Relaxed);
    }

    /// Reads what is there (if the event says so), queues new requests, writes; resets on error.
    fn service(&mut self, i: usize, readiness: Readiness) {
        let Some(conn) = self.conns.get_mut(i) else {
            return;
        };
        if conn.stream.is_none() {
            return;
        }
        let mut res = Ok(());
        if readiness != Readiness::None {
            let until_eof = readiness == Readiness::Hangup;
            res = read_conn(conn, self.wl, &mut self.stats, until_eof);
        }
        if res.is_ok() {
            fill(conn, self.cfg, self.wl, &mut self.rng, self.stats.mode);
            res = flush(conn);
        }
        if let Err(reason) = res {
            self.reset(i, reason);
        }
    }

    fn connect(&mut self, i: usize, now: Instant) -> bool {
        let timeout = Duration::from_millis(self.cfg.connect_timeout_ms.max(1));
        let res = std::net::TcpStream::connect_timeout(&self.addr, timeout).and_then(|s| {
            s.set_nodelay(true)?;
            s.set_nonblocking(true)?;
            let mut s = Link::new(TcpStream::from_std(s), self.tls.as_ref())?;
            self.poll
                .registry()
                .register(s.socket(), Token(i), Interest::READABLE | Interest::WRITABLE)?;
            Ok(s)
        });
        let conn = &mut self.conns[i];
        match res {
            Ok(s) => {
                conn.stream = Some(s);
                true
            }
            Err(e) => {
                self.connect_failures += 1;
                conn.retry_at = now + conn.backoff;
                conn.backoff = (conn.backoff * 2).min(BACKOFF_MAX);
                if self.reports < 5 {
                    self.reports += 1;
                    eprintln!(
                        "loadgen: thread {}: connect to {} failed: {e}",
                        self.id, self.addr
                    );
                }
                false
            }
        }
    }

    fn reset(&mut self, i: usize, reason: &str) {
        let conn = &mut self.conns[i];
        if let Some(mut s) = conn.stream.take() {
            let _ = self.poll.registry().deregister(s.socket());
        }
        for p in conn.inflight.drain(..) {
            self.stats.lost(&p);
        }
        conn.wbuf.clear();
        conn.wpos = 0;
        conn.rstart = 0;
        conn.rend = 0;
        conn.retry_at = Instant::now() + conn.backoff;
        conn.backoff = (conn.backoff * 2).min(BACKOFF_MAX);
        self.reconnects += 1;
        if self.reports < 5 {
            self.reports += 1;
            eprintln!("loadgen: thread {}: connection reset: {reason}", self.id);
        }
    }
}

/// What an event says about a connection's read side.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Readiness {
    None,
    Data,
    /// The peer closed or the socket failed: read on to the end to report it.
    Hangup,
}

/// Reads until the socket is empty (or, with `until_eof`, closed), completing replies as
/// they arrive.
fn read_conn(conn: &mut Conn, wl: &Workload, stats: &mut Stats, until_eof: bool) -> Result<(), &'static str> {
    loop {
        if conn.rend == conn.rbuf.len() {
            if conn.rstart > 0 {
                conn.rbuf.copy_within(conn.rstart..conn.rend, 0);
                conn.rend -= conn.rstart;
                conn.rstart = 0;
            } else if conn.rbuf.len() > MAX_FRAME + READ_CHUNK {
                return Err("reply larger than the frame limit");
            } else {
                let n = conn.rbuf.len() * 2;
                conn.rbuf.resize(n, 0);
            }
        }
        let Some(stream) = conn.stream.as_mut() else {
            return Ok(());
        };
        match stream.read(&mut conn.rbuf[conn.rend..]) {
            Ok(0) => return Err("connection closed by the server"),
            Ok(n) => {
                conn.rend += n;
                let drained = conn.rend < conn.rbuf.len();
                complete(conn, wl, stats)?;
                // A read that did not fill the buffer emptied the socket: more data raises a
                // new edge, so reading again now would only fetch EAGAIN, one wasted system
                // call per reply (the server follows the same rule).
                if drained && !until_eof {
                    return Ok(());
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Err("read error"),
        }
    }
}

/// Parses buffered bytes against the requests in flight, in order.
fn complete(conn: &mut Conn, wl: &Workload, stats: &mut Stats) -> Result<(), &'static str> {
    let now = Instant::now();
    while conn.rstart < conn.rend {
        let Some(p) = conn.inflight.front_mut() else {
            return Err("unsolicited data from the server");
        };
        let mut consumed = 0;
        let step = parse::parse(p, &conn.rbuf[conn.rstart..conn.rend], &mut consumed, wl);
        conn.rstart += consumed;
        match step {
            Step::Incomplete => break,
            Step::Done(t) => {
                if let Some(p) = conn.inflight.pop_front() {
                    stats.record(&p, t, now);
                }
                conn.backoff = BACKOFF_MIN;
            }
            Step::Desync(e) => return Err(e),
        }
    }
    if conn.rstart == conn.rend {
        conn.rstart = 0;
        conn.rend = 0;
    }
    Ok(())
}

/// Paced load: time between two requests of one connection (zero when not paced).
fn pace_interval(cfg: &Config) -> Duration {
    if cfg.rate == 0 {
        Duration::ZERO
    } else {
        Duration::from_secs_f64(cfg.connections as f64 / cfg.rate as f64)
    }
}

/// Queues requests until the connection has its quota in flight (paced: and its send time
/// has come).
fn fill(conn: &mut Conn, cfg: &Config, wl: &Workload, rng: &mut Rng, mode: Mode) {
    let now = Instant::now();
    match mode {
        Mode::Load if cfg.rate > 0 => {
            let interval = pace_interval(cfg);
            while conn.inflight.len() < cfg.pipeline && conn.next_send <= now {
                let p = load_request(conn, wl, rng, now);
                conn.inflight.push_back(p);
                conn.next_send = (conn.next_send + interval).max(now.checked_sub(interval).unwrap_or(now));
            }
        }
        Mode::Load => {
            while conn.inflight.len() < cfg.pipeline {
                let p = load_request(conn, wl, rng, now);
                conn.inflight.push_back(p);
            }
        }
        Mode::Preload if cfg.preload_noreply => {
            while conn.inflight.len() < 2 && conn.next_key < conn.end_key {
                let end = conn.end_key.min(conn.next_key + cfg.preload_depth as u64);
                let n = (end - conn.next_key) as u32;
                let expect = match wl.protocol {
                    Protocol::Text => {
                        for k in conn.next_key..end {
                            let vlen = wl.value_len(rng);
                            wl.text_set(&mut conn.wbuf, k, vlen, true);
                        }
                        wl.text_get(&mut conn.wbuf, std::iter::once(end - 1));
                        Expect::TextGet { keys: 1, quiet: true }
                    }
                    Protocol::Binary => {
                        for k in conn.next_key..end {
                            let vlen = wl.value_len(rng);
                            let o = conn.next_opaque();
                            wl.bin_set(&mut conn.wbuf, OP_SETQ, k, vlen, o);
                        }
                        let noop_opaque = conn.next_opaque();
                        wl.bin_noop(&mut conn.wbuf, noop_opaque);
                        Expect::BinBatch { keys: 0, noop_opaque }
                    }
                };
                conn.next_key = end;
                conn.inflight
                    .push_back(Pending::new(expect, Kind::SetBatch(n), now));
            }
        }
        Mode::Preload => {
            while conn.inflight.len() < cfg.preload_depth && conn.next_key < conn.end_key {
                let k = conn.next_key;
                conn.next_key += 1;
                let vlen = wl.value_len(rng);
                let p = set_request(conn, wl, k, vlen, now);
                conn.inflight.push_back(p);
            }
        }
    }
}

fn set_request(conn: &mut Conn, wl: &Workload, key: u64, vlen: usize, now: Instant) -> Pending {
    let expect = match wl.protocol {
        Protocol::Text => {
            wl.text_set(&mut conn.wbuf, key, vlen, false);
            Expect::TextStore
        }
        Protocol::Binary => {
            let opaque = conn.next_opaque();
            wl.bin_set(&mut conn.wbuf, OP_SET, key, vlen, opaque);
            Expect::BinStore { opaque }
        }
    };
    Pending::new(expect, Kind::Set, now)
}

fn load_request(conn: &mut Conn, wl: &Workload, rng: &mut Rng, now: Instant) -> Pending {
    if !rng.chance(wl.get_ratio) {
        let key = rng.below(wl.keys);
        let vlen = wl.value_len(rng);
        return set_request(conn, wl, key, vlen, now);
    }
    let k = wl.multiget;
    let expect = match (wl.protocol, k) {
        (Protocol::Text, _) => {
            wl.text_get(&mut conn.wbuf, (0..k).map(|_| rng.below(wl.keys)));
            Expect::TextGet {
                keys: k as u32,
                quiet: false,
            }
        }
        (Protocol::Binary, 1) => {
            let opaque = conn.next_opaque();
            wl.bin_get(&mut conn.wbuf, OP_GETK, rng.below(wl.keys), opaque);
            Expect::BinGet { opaque }
        }
        (Protocol::Binary, _) => {
            for _ in 0..k {
                let o = conn.next_opaque();
                wl.bin_get(&mut conn.wbuf, OP_GETKQ, rng.below(wl.keys), o);
            }
            let noop_opaque = conn.next_opaque();
            wl.bin_noop(&mut conn.wbuf, noop_opaque);
            Expect::BinBatch {
                keys: k as u32,
                noop_opaque,
            }
        }
    };
    Pending::new(expect, Kind::Get, now)
}

/// Writes until done or the socket would block.
fn flush(conn: &mut Conn) -> Result<(), &'static str> {
    let Some(stream) = conn.stream.as_mut() else {
        return Ok(());
    };
    if stream.flush().is_err() {
        return Err("write error (connection closed by the server?)");
    }
    while conn.wpos < conn.wbuf.len() {
        match stream.write(&conn.wbuf[conn.wpos..]) {
            Ok(0) => return Err("write returned 0"),
            Ok(n) => conn.wpos += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Err("write error (connection closed by the server?)"),
        }
    }
    if conn.wpos == conn.wbuf.len() {
        conn.wbuf.clear();
        conn.wpos = 0;
    }
    Ok(())
}
