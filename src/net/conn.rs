//! One client connection: its buffers and the read → decode → execute → write cycle.
//!
//! Requests are decoded in place from the read buffer (keys and values are borrowed, not
//! copied) and every reply for one batch of requests is appended to one write buffer, so
//! a pipelined burst costs one `write`. Back-pressure: while more than [`WRITE_HIGH_WATER`]
//! bytes of replies wait for a client that is not reading, no further requests are read
//! or executed. An `lru_crawler metadump` is written under the same rule, one slab class
//! per turn ([`crate::cmd::Metadump`]), and the requests after it wait for its `END`.

use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicU32, AtomicU8, Ordering::Relaxed};
use std::sync::Arc;

use crate::auth::Session;
use crate::cmd::{Action, Metadump};
use crate::context::Context;
use crate::net::stream::Stream;
use crate::stats::{bump, ConnState, Counters};
use crate::watch::{CloseReason, WatchStreams};
use crate::wire::{self, Step};

/// Stop executing requests while this many reply bytes are unsent.
const WRITE_HIGH_WATER: usize = 1 << 20;
/// Read in chunks of at least this size.
const READ_CHUNK: usize = 16 * 1024;
/// Buffers larger than this are given back when the connection goes idle.
const KEEP_BUFFER: usize = 64 * 1024;

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
    /// Replies of earlier text commands of this batch are queued (see [`wire::text::step`]).
    stacked: bool,
    /// An `lru_crawler metadump` still listing classes; requests after it wait.
    metadump: Option<Metadump>,
    /// Authentication state (`-S`, `-Y`).
    session: Session,
    /// What a `connevents` watcher is told when this connection closes.
    close_reason: CloseReason,
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
            stacked: false,
            metadump: None,
            session: Session::default(),
            close_reason: CloseReason::Error,
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
    pub fn prefill(&mut self, shared: &Context, counters: &Counters) -> Option<&[u8]> {
        if self.prefilled || self.closing || self.has_pending_output() || self.rpos != self.rend {
            return None;
        }
        self.prefilled = true;
        self.drained = false;
        match self.fill(shared, counters) {
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
        if self.swallow > 0 {
            return None;
        }
        proto::peek_key(&self.rbuf[self.rpos..self.rend])
    }

    /// Serve the connection until it would block, must close, or used its budget.
    pub fn drive(&mut self, shared: &Context, counters: &Counters) -> Drive {
        self.state.store(ConnState::ParseCmd as u8, Relaxed);
        let drive = self.serve(shared, counters);
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

    fn serve(&mut self, shared: &Context, counters: &Counters) -> Drive {
        let mut budget = shared.config.reqs_per_event;
        if self.read_failed {
            return Drive::Close;
        }
        if !std::mem::take(&mut self.prefilled) {
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
            match self.process(shared, counters, &mut budget) {
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
                self.shrink_idle_buffers();
                return Drive::Wait;
            }
            match self.fill(shared, counters) {
                Ok(true) => continue,
                Ok(false) => {
                    if self.flush(counters).is_err() {
                        return Drive::Close;
                    }
                    self.shrink_idle_buffers();
                    return Drive::Wait;
                }
                Err(_) => return Drive::Close,
            }
        }
    }

    /// Read what the socket has. Ok(true): got bytes; Ok(false): would block.
    fn fill(&mut self, shared: &Context, counters: &Counters) -> io::Result<bool> {
        if self.rpos == self.rend {
            self.rpos = 0;
            self.rend = 0;
        } else if self.rpos > 0 && (self.rpos > KEEP_BUFFER || self.rend == self.rbuf.len()) {
            self.rbuf.copy_within(self.rpos..self.rend, 0);
            self.rend -= self.rpos;
            self.rpos = 0;
        }
        // A client can make us buffer at most one maximal request (plus slack): the
        // decoder refuses anything larger before it arrives.
        if self.rend - self.rpos > shared.config.item_size_max + (1 << 20) {
            return Err(io::Error::other("request larger than any the decoder accepts"));
        }
        if self.rbuf.len() - self.rend < READ_CHUNK {
            let size = (self.rbuf.len() * 2).max(self.rend + READ_CHUNK);
            self.rbuf.resize(size, 0);
        }
        loop {
            match self.stream.read(&mut self.rbuf[self.rend..]) {
                Ok(0) => {
                    self.close_reason = CloseReason::Normal;
                    return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
                }
                Ok(n) => {
                    self.seen_input = true;
                    self.drained = self.rend + n < self.rbuf.len();
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
        } else if self.wpos > KEEP_BUFFER && self.wpos * 2 > self.wbuf.len() {
            self.wbuf.drain(..self.wpos);
            self.wpos = 0;
        }
        Ok(())
    }

    fn shrink_idle_buffers(&mut self) {
        if self.rpos == self.rend && self.rbuf.len() > KEEP_BUFFER {
            self.rbuf = Vec::new();
            self.rpos = 0;
            self.rend = 0;
        }
        if self.wbuf.is_empty() && self.wbuf.capacity() > KEEP_BUFFER {
            self.wbuf = Vec::new();
        }
    }

    /// Execute the complete requests in the read buffer.
    fn process(&mut self, shared: &Context, counters: &Counters, budget: &mut usize) -> Progress {
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
            if let Some(dump) = &mut self.metadump {
                // One class per turn, each counted as a request.
                *budget -= 1;
                if !wire::text::metadump(dump, shared, &mut self.wbuf) {
                    self.metadump = None;
                    self.stacked = false;
                }
                continue;
            }
            if self.rpos == self.rend {
                return Progress::NeedInput;
            }
            if self.protocol == Protocol::Unknown {
                self.protocol = if self.rbuf[self.rpos] == 0x80 {
                    Protocol::Binary
                } else {
                    Protocol::Text
                };
            }
            let input = &self.rbuf[self.rpos..self.rend];
            let step = match self.protocol {
                Protocol::Binary => {
                    wire::binary::step(input, shared, counters, &mut self.wbuf, &mut self.session)
                }
                _ => wire::text::step(
                    input,
                    shared,
                    counters,
                    &mut self.wbuf,
                    &mut self.stacked,
                    &mut self.session,
                ),
            };
            match step {
                Step::Incomplete => return Progress::NeedInput,
                Step::Done {
                    consumed,
                    swallow,
                    after_swallow,
                    action,
                } => {
                    self.rpos += consumed;
                    self.swallow = swallow;
                    self.after_swallow = after_swallow;
                    *budget -= 1;
                    self.last_cmd.store(shared.clock.now(), Relaxed);
                    match action {
                        Action::Continue => {}
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
