//! One client connection: its buffers and the read → decode → execute → write cycle.
//!
//! Requests are decoded in place from the read buffer (keys and values are borrowed, not
//! copied) and every reply for one batch of requests is appended to one write buffer, so
//! a pipelined burst costs one `write`. Back-pressure: while more than [`WRITE_HIGH_WATER`]
//! bytes of replies wait for a client that is not reading, no further requests are read
//! or executed, a text multi-get stops between two keys and resumes with the next once
//! the client has read (its request stays in the read buffer), and a large value that does
//! not fit goes out in parts ([`wire::value_rest`]). An `lru_crawler metadump`
//! is written under the same rule, one slab class per turn ([`crate::cmd::Metadump`]), and
//! the requests after it wait for its `END`.
//!
//! Memory: the buffers come from the worker's pool ([`BufPool`]) and go back to it when the
//! connection waits with nothing buffered, so an idle connection holds none (a partial
//! command is kept in a buffer of its own size). Input beyond [`FREE_ALLOWANCE`] (a large
//! value arriving) is reserved in the global [`ReadBudget`] first; a store that cannot
//! reserve is refused as memcached refuses one it cannot allocate, and its value swallowed.
//!
//! Large values go straight into cache memory instead: once the header of a set, add,
//! replace, cas (text, `ms`, binary) is in and its value is over [`INTAKE_MIN`], the item
//! is reserved in the cache (evicting as a store would) and the value is read into it as
//! it arrives ([`PendingIntake`]): what the read buffer holds is copied in, the rest is read
//! from the socket straight into the item, so the read buffer stays small and a full cache takes
//! as many uploads at once as it has items to give, as memcached's does. The header waits
//! with its value length rewritten to 0; when the value and the text `\r\n` are in, it
//! runs through the usual wire step with the item lent to the store
//! ([`crate::cmd::store::Intake`]). An item that cannot be reserved (every chunk held)
//! gets memcached's out-of-memory reply and its value swallowed; a connection closed
//! mid-value frees its item. append and prepend, and base64 `ms` keys, stay buffered.

use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicU32, AtomicU8, Ordering::Relaxed};
use std::sync::Arc;

use crate::auth::Session;
use crate::cmd::store::Intake;
use crate::cmd::{Action, Metadump};
use crate::context::Context;
use crate::net::budget::{ReadBudget, FREE_ALLOWANCE};
use crate::net::bufpool::{BufPool, BUF_SIZE};
use crate::net::stream::Stream;
use crate::stats::{bump, ConnState, Counters};
use crate::watch::{CloseReason, WatchStreams};
use crate::wire::value_rest::{self, ValueRest};
use crate::wire::{self, Step, Turn};

/// Stop executing requests while this many reply bytes are unsent.
const WRITE_HIGH_WATER: usize = 1 << 20;
/// Read in chunks of at least this size.
const READ_CHUNK: usize = 16 * 1024;
/// A partial command at most this long is moved out of the pooled buffer when the
/// connection waits (larger ones are partial values, reserved in the budget).
const SMALL_PARTIAL: usize = 4 * 1024;
/// Values larger than this go straight into a reserved item (see the module docs): more
/// than a pooled read buffer holds.
const INTAKE_MIN: usize = BUF_SIZE;
/// Replies a pooled 16 KB buffer stands for when `-o read_buf_mem_limit` bounds them
/// (memcached fits about this many response objects in one of its 16 KB bundles).
const REPLIES_PER_BUFFER: usize = 14;

/// What the worker should do after driving a connection.
pub enum Drive {
    /// Wait for the next readiness event.
    Wait,
    /// The request budget ran out with work left: drive again soon.
    Yield,
    /// Close the connection.
    Close,
    /// The connection became a log watcher: hand it to [`crate::watch`].
    Watch(WatchStreams),
}

/// Which protocol the connection speaks, decided by its first byte.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Unknown,
    Text,
    Binary,
}

pub struct Conn {
    stream: Stream,
    fd: i32,
    /// Read buffer; bytes `rpos..rend` are received and not yet consumed. Its length is
    /// its initialised size, so reads never re-zero memory.
    rbuf: Vec<u8>,
    rpos: usize,
    rend: usize,
    wbuf: Vec<u8>,
    /// Bytes of `wbuf` already written.
    wpos: usize,
    /// Bytes still to discard from the input (a refused data block).
    swallow: usize,
    /// Reply to send once the swallow completes (memcached answers after swallowing).
    after_swallow: &'static [u8],
    /// Close once the write buffer is empty.
    closing: bool,
    protocol: Protocol,
    last_cmd: Arc<AtomicU32>,
    /// Where `stats conns` sees this connection ([`ConnState`]): set when an event is
    /// served and when the connection goes back to waiting, never per request.
    state: Arc<AtomicU8>,
    /// Some bytes were ever read (a connection that sent nothing is `conn_new_cmd`).
    seen_input: bool,
    /// The last read returned less than it asked for: the socket was empty then, and any
    /// later data raises a new readiness edge, so reading again now would only cost an
    /// EAGAIN syscall.
    drained: bool,
    /// Whether the worker registered write interest (only while replies are pending:
    /// otherwise every ACK would wake the loop for nothing).
    pub write_interest: bool,
    /// `prefill` has read for the current event (and set `drained`), so `drive` must not
    /// forget that the socket is already empty.
    prefilled: bool,
    /// `prefill`'s read failed (EOF or error, with no request buffered): close.
    read_failed: bool,
    /// The peer closed its side or reset (the event said so): read until EOF even after a
    /// short read, or a FIN that came with the last data would never be seen.
    pub hangup: bool,
    /// Replies of earlier text commands of this batch are queued (see [`wire::text::step`]).
    stacked: bool,
    /// An `lru_crawler metadump` still listing classes; requests after it wait.
    metadump: Option<Metadump>,
    /// Authentication state (`-S`, `-Y`).
    session: Session,
    /// What a `connevents` watcher is told when this connection closes.
    close_reason: CloseReason,
    /// Keys of the multi-get at `rpos` already answered: it paused at the output bound
    /// and resumes with the next one (the request stays in `rbuf`, so a paused reply costs
    /// no memory beyond the bound).
    resume: usize,
    /// Bytes of `rbuf` reserved in `budget` (its size beyond [`FREE_ALLOWANCE`]).
    reserved: usize,
    budget: Arc<ReadBudget>,
    /// With `-o read_buf_mem_limit`: replies this connection may queue unsent (memcached's
    /// response objects); `replies` is how many are queued.
    reply_cap: Option<usize>,
    replies: usize,
    /// A large value of a get reply still being written, a piece per turn (see
    /// [`wire::value_rest`]); it goes before any other request.
    value_rest: Option<ValueRest>,
    /// A store whose value is arriving straight into its item.
    intake: Option<Box<PendingIntake>>,
}

/// A store whose value goes into the item reserved for it as it arrives (see the module
/// docs): the item, and the request the wire step will decode once the value is in.
struct PendingIntake {
    item: Intake,
    /// The store's header with a value length of 0, then the trailer bytes as they come.
    request: Vec<u8>,
    /// Trailer bytes still to come (the text `\r\n`).
    trailer_left: usize,
}

/// Where the value of the binary frame at the front of `pending` starts (past the header,
/// extras and key); `usize::MAX` while the header itself is incomplete.
fn binary_value_offset(pending: &[u8]) -> usize {
    match pending.get(..proto::binary::HEADER_LEN) {
        Some(h) => {
            proto::binary::HEADER_LEN + usize::from(h[4]) + usize::from(u16::from_be_bytes([h[2], h[3]]))
        }
        None => usize::MAX,
    }
}

enum Progress {
    /// No complete request left in the buffer.
    NeedInput,
    /// Budget used up with requests possibly left.
    Budget,
    /// The connection must close (after writing what is queued).
    Close,
    /// The connection became a watcher.
    Watch(WatchStreams),
}

impl Conn {
    pub fn new(
        stream: Stream,
        fd: i32,
        last_cmd: Arc<AtomicU32>,
        state: Arc<AtomicU8>,
        shared: &Context,
    ) -> Conn {
        let protocol = match shared.config.binding {
            crate::config::Binding::Ascii => Protocol::Text,
            crate::config::Binding::Binary => Protocol::Binary,
            crate::config::Binding::Auto => Protocol::Unknown,
        };
        Conn {
            stream,
            fd,
            rbuf: Vec::new(),
            rpos: 0,
            rend: 0,
            wbuf: Vec::new(),
            wpos: 0,
            swallow: 0,
            after_swallow: b"",
            closing: false,
            protocol,
            last_cmd,
            state,
            seen_input: false,
            drained: false,
            write_interest: false,
            prefilled: false,
            read_failed: false,
            hangup: false,
            stacked: false,
            metadump: None,
            session: Session::default(),
            close_reason: CloseReason::Error,
            resume: 0,
            reserved: 0,
            budget: Arc::clone(&shared.read_budget),
            reply_cap: reply_cap(shared),
            replies: 0,
            value_rest: None,
            intake: None,
        }
    }

    pub fn close_reason(&self) -> CloseReason {
        self.close_reason
    }

    pub fn set_close_reason(&mut self, reason: CloseReason) {
        self.close_reason = reason;
    }

    /// The socket and the replies not yet sent, for a connection that became a watcher.
    pub fn into_watcher(self) -> (Stream, Vec<u8>) {
        let unsent = self.wbuf[self.wpos..].to_vec();
        (self.stream, unsent)
    }

    pub fn fd(&self) -> i32 {
        self.fd
    }

    pub fn stream_mut(&mut self) -> &mut Stream {
        &mut self.stream
    }

    /// Bytes of buffers the connection holds (tests and the fuzz harness check the bound).
    #[doc(hidden)]
    pub fn held_bytes(&self) -> usize {
        self.rbuf.capacity() + self.wbuf.capacity()
    }

    /// Replies (or TLS records) are waiting for the socket to accept them.
    pub fn has_pending_output(&self) -> bool {
        self.wpos < self.wbuf.len() || self.stream.wants_write()
    }

    pub fn last_command(&self) -> u32 {
        self.last_cmd.load(Relaxed)
    }

    /// First half of a readiness event, run for every ready connection before any is
    /// driven: read what arrived, and return the key of the first request so its index
    /// entry can be prefetched while the other connections are read. Skipped (None, and
    /// `drive` reads as usual) when the connection has replies or requests left over.
    pub fn prefill(&mut self, shared: &Context, counters: &Counters, pool: &mut BufPool) -> Option<&[u8]> {
        if self.prefilled || self.closing || self.has_pending_output() || self.rpos != self.rend {
            return None;
        }
        self.prefilled = true;
        self.drained = false;
        match self.fill(shared, counters, pool) {
            Ok(true) => {}
            Ok(false) => self.drained = true,
            Err(_) => {
                self.read_failed = true;
                return None;
            }
        }
        self.peek_key()
    }

    /// The key of the first buffered request (see [`Conn::prefill`]).
    pub fn peek_key(&self) -> Option<&[u8]> {
        if self.swallow > 0 || self.intake.is_some() {
            return None;
        }
        proto::peek_key(&self.rbuf[self.rpos..self.rend])
    }

    /// Serve the connection until it would block, must close, or used its budget.
    pub fn drive(&mut self, shared: &Context, counters: &Counters, pool: &mut BufPool) -> Drive {
        self.state.store(ConnState::ParseCmd as u8, Relaxed);
        let drive = self.serve(shared, counters, pool);
        // A yielded connection is still being served (it is driven again soon).
        if matches!(drive, Drive::Wait) {
            self.state.store(self.waiting_state() as u8, Relaxed);
        }
        drive
    }

    /// What the connection waits for between events, in memcached's terms.
    fn waiting_state(&self) -> ConnState {
        let pending = &self.rbuf[self.rpos..self.rend];
        if self.has_pending_output() || self.metadump.is_some() {
            ConnState::Mwrite
        } else if self.intake.is_some() {
            ConnState::Nread
        } else if self.swallow > 0 {
            ConnState::Swallow
        } else if pending.is_empty() {
            if self.seen_input {
                ConnState::Read
            } else {
                ConnState::NewCmd
            }
        } else if match self.protocol {
            // memcached reads a frame's header, extras and key before its value.
            Protocol::Binary => pending.len() >= binary_value_offset(pending),
            _ => pending.contains(&b'\n'),
        } {
            // A whole command line (or frame up to its value) is in: what is missing is
            // its data.
            ConnState::Nread
        } else {
            ConnState::Read
        }
    }

    fn serve(&mut self, shared: &Context, counters: &Counters, pool: &mut BufPool) -> Drive {
        let mut budget = shared.config.reqs_per_event;
        if self.read_failed {
            return Drive::Close;
        }
        if !std::mem::take(&mut self.prefilled) || self.hangup {
            self.drained = false;
        }
        if shared.watch.streams() != 0 {
            crate::watch::set_current_fd(self.fd);
        }
        loop {
            if self.flush(counters).is_err() {
                return Drive::Close;
            }
            if self.wbuf.len() - self.wpos > WRITE_HIGH_WATER {
                return Drive::Wait; // resumed by the writable event
            }
            if self.closing {
                return if self.wbuf.is_empty() && !self.stream.wants_write() {
                    Drive::Close
                } else {
                    Drive::Wait
                };
            }
            match self.process(shared, counters, pool, &mut budget) {
                Progress::Close => {
                    self.closing = true;
                    continue;
                }
                Progress::Watch(streams) => return Drive::Watch(streams),
                Progress::Budget => {
                    return if self.flush(counters).is_err() {
                        Drive::Close
                    } else {
                        Drive::Yield
                    };
                }
                Progress::NeedInput => {}
            }
            if self.drained {
                if self.flush(counters).is_err() {
                    return Drive::Close;
                }
                self.shrink_idle_buffers(counters, pool);
                return Drive::Wait;
            }
            match self.fill(shared, counters, pool) {
                Ok(true) => continue,
                Ok(false) => {
                    if self.flush(counters).is_err() {
                        return Drive::Close;
                    }
                    self.shrink_idle_buffers(counters, pool);
                    return Drive::Wait;
                }
                // A client that half-closed still gets the replies to what it sent: every
                // complete request has run by now, so close once they are written.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && self.has_pending_output() => {
                    self.closing = true;
                }
                Err(_) => return Drive::Close,
            }
        }
    }

    /// Read what the socket has. Ok(true): got bytes (or a refused value is to be
    /// swallowed); Ok(false): would block.
    fn fill(&mut self, shared: &Context, counters: &Counters, pool: &mut BufPool) -> io::Result<bool> {
        if self.rpos == self.rend {
            if let Some(intake) = self.intake.as_deref().filter(|i| i.item.remaining() > 0) {
                // A value arriving into its item is read there directly: no read buffer,
                // no copy (the trailer and what follows come through the buffer).
                let stream = &mut self.stream;
                loop {
                    let mut asked = 0;
                    let got = intake.item.read_into(|buf| {
                        asked = buf.len();
                        stream.read(buf)
                    });
                    match got {
                        Ok(0) => {
                            self.close_reason = CloseReason::Normal;
                            return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
                        }
                        Ok(n) => {
                            self.seen_input = true;
                            self.drained = !self.hangup && n < asked;
                            bump(&counters.bytes_read, n as u64);
                            return Ok(true);
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        let consumed = self.rpos > 0;
        if self.rpos == self.rend {
            self.rpos = 0;
            self.rend = 0;
        }
        let large_done =
            self.rbuf.len() > FREE_ALLOWANCE && consumed && self.rend - self.rpos <= BUF_SIZE / 2;
        if self.rbuf.len() < BUF_SIZE || large_done {
            // No buffer, a partial command kept in one of its own size, or a large request
            // done: continue in a pooled buffer.
            self.rebuffer(counters, pool);
        } else if self.rpos > 0 && (self.rpos > FREE_ALLOWANCE || self.rend == self.rbuf.len()) {
            self.rbuf.copy_within(self.rpos..self.rend, 0);
            self.rend -= self.rpos;
            self.rpos = 0;
        }
        if self.rbuf.len() - self.rend < READ_CHUNK && self.grow(shared, counters, pool)? {
            return Ok(true);
        }
        loop {
            match self.stream.read(&mut self.rbuf[self.rend..]) {
                Ok(0) => {
                    self.close_reason = CloseReason::Normal;
                    return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
                }
                Ok(n) => {
                    self.seen_input = true;
                    self.drained = !self.hangup && self.rend + n < self.rbuf.len();
                    self.rend += n;
                    bump(&counters.bytes_read, n as u64);
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            }
        }
    }

    /// Move the buffered input into a pooled buffer, giving back a larger one and its
    /// reservation.
    fn rebuffer(&mut self, counters: &Counters, pool: &mut BufPool) {
        let held = self.rend - self.rpos;
        let mut buf = pool.take_read(counters);
        if held > buf.len() {
            buf.resize(held, 0);
        }
        buf[..held].copy_from_slice(&self.rbuf[self.rpos..self.rend]);
        let old = std::mem::replace(&mut self.rbuf, buf);
        if old.len() >= BUF_SIZE {
            pool.give(old, counters);
        }
        self.rpos = 0;
        self.rend = held;
        self.release_reservation();
    }

    /// Make room to read a chunk more, for the request at the front of the input: past
    /// the free allowance only with a reservation. A store that cannot have one is refused
    /// (the reply queued, its value to be swallowed); any other request closes the
    /// connection (memcached's `read_buf_oom`). A large store's value goes into an item
    /// instead ([`Conn::start_intake`]). Ok(true): the buffered input is to be processed
    /// before anything more is read (an intake or a swallow began).
    fn grow(&mut self, shared: &Context, counters: &Counters, pool: &mut BufPool) -> io::Result<bool> {
        if self.rpos > 0 {
            self.rbuf.copy_within(self.rpos..self.rend, 0);
            self.rend -= self.rpos;
            self.rpos = 0;
        }
        if self.start_intake(shared, counters, pool) {
            return Ok(true);
        }
        let binary = self.protocol == Protocol::Binary;
        let store = wire::partial::pending_store(&self.rbuf[..self.rend], binary);
        let size = match store {
            // The buffer already has room for the rest of this store.
            Some(p) if p.total > self.rend && p.total <= self.rbuf.len() => return Ok(false),
            // Room for exactly the rest of a large store.
            Some(p) if p.total > self.rend => p.total.max(self.rend + READ_CHUNK),
            _ => (self.rbuf.len() * 2).max(self.rend + READ_CHUNK),
        };
        // A client can make us buffer at most one maximal request (plus slack): the
        // decoder refuses anything larger before it arrives.
        if size > shared.config.item_size_max + (2 << 20) {
            return Err(io::Error::other("request larger than any the decoder accepts"));
        }
        let want = size.saturating_sub(FREE_ALLOWANCE);
        if want > self.reserved {
            if !self.budget.reserve(want - self.reserved, &shared.cache) {
                let Some(p) = store else {
                    bump(&counters.read_buf_oom, 1);
                    return Err(io::Error::other("no read buffer memory"));
                };
                if self.wbuf.capacity() == 0 {
                    self.wbuf = pool.take_write(counters);
                }
                self.after_swallow = wire::partial::refuse(&p, shared, counters, &mut self.wbuf);
                self.swallow = p.total - self.rend;
                self.rpos = self.rend;
                self.rebuffer(counters, pool);
                return Ok(true);
            }
            self.reserved = want;
        }
        self.rbuf.resize(size, 0);
        Ok(false)
    }

    /// If the request at the front of the input (at offset 0) is a store whose header is in
    /// and whose value is large, reserve its item and consume the header: the value goes
    /// into the item as it arrives. Refuses it (reply queued, value to be swallowed) if no
    /// item can be had. Returns whether it did either.
    fn start_intake(&mut self, shared: &Context, counters: &Counters, pool: &mut BufPool) -> bool {
        // Nothing is reserved for a connection that may not store yet.
        let locked = (shared.config.sasl || shared.config.auth_file.is_some()) && !self.session.authenticated;
        if self.intake.is_some() || self.protocol == Protocol::Unknown || locked {
            return false;
        }
        let binary = self.protocol == Protocol::Binary;
        let Some(start) = wire::partial::intake_start(&self.rbuf[..self.rend], binary) else {
            return false;
        };
        if start.value_len <= INTAKE_MIN {
            return false;
        }
        let now = shared.clock.now();
        match shared.cache.reserve(start.key, start.value_len, now) {
            Ok(item) => {
                self.rpos = start.header_len;
                self.intake = Some(Box::new(PendingIntake {
                    item: Intake::new(item, now),
                    request: start.header,
                    trailer_left: start.trailer,
                }));
                true
            }
            Err(slabcache::StoreError::OutOfMemory) => {
                if self.wbuf.capacity() == 0 {
                    self.wbuf = pool.take_write(counters);
                }
                let p = start.store;
                self.after_swallow = wire::partial::refuse(&p, shared, counters, &mut self.wbuf);
                self.swallow = p.total - self.rend;
                self.rpos = self.rend;
                self.rebuffer(counters, pool);
                true
            }
            // Left to the decoder, which refuses it the usual way.
            Err(_) => false,
        }
    }

    /// Move the input's next bytes into the pending intake's item, then its trailer into
    /// its request. Returns the intake once complete.
    fn feed_intake(&mut self) -> Option<Box<PendingIntake>> {
        let intake = self.intake.as_mut()?;
        self.rpos += intake.item.write(&self.rbuf[self.rpos..self.rend]);
        if intake.item.remaining() > 0 {
            return None;
        }
        let t = intake.trailer_left.min(self.rend - self.rpos);
        intake
            .request
            .extend_from_slice(&self.rbuf[self.rpos..self.rpos + t]);
        self.rpos += t;
        intake.trailer_left -= t;
        if intake.trailer_left > 0 {
            return None;
        }
        self.intake.take()
    }

    fn release_reservation(&mut self) {
        if self.reserved > 0 {
            self.budget.release(std::mem::take(&mut self.reserved));
        }
    }

    /// Give every buffer back (the connection is closing).
    pub fn release_buffers(&mut self, counters: &Counters, pool: &mut BufPool) {
        if self.rbuf.len() >= BUF_SIZE {
            pool.give(std::mem::take(&mut self.rbuf), counters);
        }
        pool.give_write(std::mem::take(&mut self.wbuf), counters);
        self.release_reservation();
    }

    /// Write as much of the reply buffer as the socket takes.
    fn flush(&mut self, counters: &Counters) -> io::Result<()> {
        self.stream.flush()?; // TLS records queued by an earlier write
        while self.wpos < self.wbuf.len() {
            match self.stream.write(&self.wbuf[self.wpos..]) {
                Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
                Ok(n) => {
                    self.wpos += n;
                    bump(&counters.bytes_written, n as u64);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        if self.wpos == self.wbuf.len() {
            self.wbuf.clear();
            self.wpos = 0;
            self.stacked = false;
            self.replies = 0;
        } else if self.wpos > FREE_ALLOWANCE && self.wpos * 2 > self.wbuf.len() {
            self.wbuf.drain(..self.wpos);
            self.wpos = 0;
        }
        Ok(())
    }

    /// The connection waits: give back what it does not need to keep (see the module doc).
    fn shrink_idle_buffers(&mut self, counters: &Counters, pool: &mut BufPool) {
        let held = self.rend - self.rpos;
        if held <= SMALL_PARTIAL && self.rbuf.len() >= BUF_SIZE {
            let partial = self.rbuf[self.rpos..self.rend].to_vec();
            pool.give(std::mem::replace(&mut self.rbuf, partial), counters);
            self.rpos = 0;
            self.rend = held;
            self.release_reservation();
        }
        if self.wbuf.is_empty() {
            pool.give_write(std::mem::take(&mut self.wbuf), counters);
        }
    }

    /// Execute the complete requests in the read buffer.
    fn process(
        &mut self,
        shared: &Context,
        counters: &Counters,
        pool: &mut BufPool,
        budget: &mut usize,
    ) -> Progress {
        if self.wbuf.capacity() == 0 {
            self.wbuf = pool.take_write(counters);
        }
        loop {
            if self.swallow > 0 {
                let n = self.swallow.min(self.rend - self.rpos);
                self.rpos += n;
                self.swallow -= n;
                if self.swallow > 0 {
                    return Progress::NeedInput;
                }
                self.wbuf
                    .extend_from_slice(std::mem::take(&mut self.after_swallow));
            }
            if self.wbuf.len() - self.wpos > WRITE_HIGH_WATER || *budget == 0 {
                return if self.metadump.is_none() && self.rpos == self.rend {
                    Progress::NeedInput
                } else {
                    Progress::Budget
                };
            }
            if self.value_rest.is_some() {
                *budget -= 1;
                let room = WRITE_HIGH_WATER - (self.wbuf.len() - self.wpos);
                if value_rest::continue_value(&mut self.value_rest, shared, &mut self.wbuf, room).is_err() {
                    // The item changed between two pieces: the reply cannot be completed.
                    return Progress::Close;
                }
                continue;
            }
            if let Some(dump) = &mut self.metadump {
                // One class per turn, each counted as a request.
                *budget -= 1;
                if !wire::text::metadump(dump, shared, &mut self.wbuf) {
                    self.metadump = None;
                    self.stacked = false;
                }
                continue;
            }
            // A store whose value went into its item runs once the value is complete.
            let ready = self.feed_intake();
            if ready.is_none() && (self.intake.is_some() || self.rpos == self.rend) {
                return Progress::NeedInput;
            }
            if let Some(cap) = self.reply_cap {
                if self.replies >= cap {
                    // memcached closes a connection it has no response object for, and
                    // drops the replies it had not sent.
                    bump(&counters.response_obj_oom, 1);
                    self.wbuf.truncate(self.wpos);
                    return Progress::Close;
                }
            }
            if self.protocol == Protocol::Unknown {
                self.protocol = if self.rbuf[self.rpos] == 0x80 {
                    Protocol::Binary
                } else {
                    Protocol::Text
                };
            }
            let input = match &ready {
                Some(intake) => &intake.request[..],
                None => &self.rbuf[self.rpos..self.rend],
            };
            let turn = Turn {
                resume: self.resume,
                room: WRITE_HIGH_WATER - (self.wbuf.len() - self.wpos),
                replies: self.reply_cap.map_or(usize::MAX, |cap| cap - self.replies),
                intake: ready.as_ref().map(|i| &i.item),
                pause_per_key: false,
            };
            let lent = wire::Lent {
                out: &mut self.wbuf,
                session: &mut self.session,
                rest: &mut self.value_rest,
                stacked: &mut self.stacked,
            };
            let step = match self.protocol {
                Protocol::Binary => wire::binary::step(input, shared, counters, lent, turn),
                _ => wire::text::step(input, shared, counters, lent, turn),
            };
            match step {
                // A completed intake's request is whole; anything else is a bug not to spin on.
                Step::Incomplete if ready.is_some() => return Progress::Close,
                Step::Incomplete => return Progress::NeedInput,
                Step::Paused(done) => {
                    // The reply is past the bound: the next turn of the loop stops here,
                    // and the get goes on once the client has read.
                    self.resume = done;
                    *budget = budget.saturating_sub(1);
                }
                Step::Done {
                    consumed,
                    swallow,
                    after_swallow,
                    action,
                } => {
                    // An intake's request was consumed from the input as it arrived.
                    if ready.is_none() {
                        self.rpos += consumed;
                    }
                    self.resume = 0;
                    self.replies += 1;
                    bump(&counters.response_obj_count, 1);
                    self.swallow = swallow;
                    self.after_swallow = after_swallow;
                    *budget -= 1;
                    self.last_cmd.store(shared.clock.now(), Relaxed);
                    match action {
                        // Only a text multi-get pauses, and its step reports that as
                        // `Step::Paused`.
                        Action::Continue | Action::Paused(_) => {}
                        Action::Metadump(dump) => self.metadump = Some(dump),
                        Action::Close => {
                            self.close_reason = CloseReason::Normal;
                            return Progress::Close;
                        }
                        Action::CloseOnError => return Progress::Close,
                        Action::Watch(streams) => return Progress::Watch(streams),
                        Action::Shutdown => {
                            self.close_reason = CloseReason::Shutdown;
                            shared.request_stop();
                            return Progress::Close;
                        }
                    }
                }
            }
        }
    }
}

/// Replies a connection may queue with `-o read_buf_mem_limit`: memcached splits the limit
/// between its worker threads in 16 KB buffers, one of them the read buffer, the rest
/// holding response objects.
fn reply_cap(shared: &Context) -> Option<usize> {
    let limit = shared.config.read_buf_mem_limit;
    if limit == 0 {
        return None;
    }
    let buffers = (limit / shared.config.threads.max(1) / BUF_SIZE).max(1);
    Some(buffers.saturating_sub(1).max(1) * REPLIES_PER_BUFFER)
}
