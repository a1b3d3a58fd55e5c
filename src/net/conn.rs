//! One client connection: its buffers and the read → decode → execute → write cycle.
//!
//! Requests are decoded in place from the read buffer (keys and values are borrowed, not
//! copied) and every reply for one batch of requests is appended to one write buffer, so
//! a pipelined burst costs one `write`. Back-pressure: while more than [`WRITE_HIGH_WATER`]
//! bytes of replies wait for a client that is not reading, no further requests are read
//! or executed. An `lru_crawler metadump` is written under the same rule, one slab class
//! per turn ([`crate::cmd::Metadump`]), and the requests after it wait for its `END`.

use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::Arc;

use crate::cmd::{Action, Metadump};
use crate::context::Context;
use crate::net::stream::Stream;
use crate::stats::{bump, Counters};
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
    /// Keys of the multi-get at `rpos` already answered: it paused at the output bound
    /// and resumes with the next one (the request stays in `rbuf`, so a paused reply costs
    /// no memory beyond the bound).
    resume: usize,
}

enum Progress {
    /// No complete request left in the buffer.
    NeedInput,
    /// Budget used up with requests possibly left.
    Budget,
    /// The connection must close (after writing what is queued).
    Close,
}

impl Conn {
    pub fn new(stream: Stream, fd: i32, last_cmd: Arc<AtomicU32>, shared: &Context) -> Conn {
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
            drained: false,
            write_interest: false,
            prefilled: false,
            read_failed: false,
            stacked: false,
            metadump: None,
            resume: 0,
        }
    }

    pub fn fd(&self) -> i32 {
        self.fd
    }

    pub fn stream_mut(&mut self) -> &mut Stream {
        &mut self.stream
    }

    /// Replies are waiting for the socket to accept them.
    pub fn has_pending_output(&self) -> bool {
        self.wpos < self.wbuf.len()
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
        let mut budget = shared.config.reqs_per_event;
        if self.read_failed {
            return Drive::Close;
        }
        if !std::mem::take(&mut self.prefilled) {
            self.drained = false;
        }
        loop {
            if self.flush(counters).is_err() {
                return Drive::Close;
            }
            if self.wbuf.len() - self.wpos > WRITE_HIGH_WATER {
                return Drive::Wait; // resumed by the writable event
            }
            if self.closing {
                return if self.wbuf.is_empty() {
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
                Ok(0) => return Err(io::Error::from(io::ErrorKind::UnexpectedEof)),
                Ok(n) => {
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
                Protocol::Binary => wire::binary::step(input, shared, counters, &mut self.wbuf),
                _ => {
                    let room = WRITE_HIGH_WATER - (self.wbuf.len() - self.wpos);
                    let stacked = &mut self.stacked;
                    wire::text::step(
                        input,
                        shared,
                        counters,
                        &mut self.wbuf,
                        stacked,
                        self.resume,
                        room,
                    )
                }
            };
            match step {
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
                    self.rpos += consumed;
                    self.resume = 0;
                    self.swallow = swallow;
                    self.after_swallow = after_swallow;
                    *budget -= 1;
                    self.last_cmd.store(shared.clock.now(), Relaxed);
                    match action {
                        // Only a text multi-get pauses, and its step reports that as
                        // `Step::Paused`.
                        Action::Continue | Action::Paused(_) => {}
                        Action::Metadump(dump) => self.metadump = Some(dump),
                        Action::Close => return Progress::Close,
                        Action::Shutdown => {
                            shared.request_stop();
                            return Progress::Close;
                        }
                    }
                }
            }
        }
    }
}
