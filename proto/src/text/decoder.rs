//! Decoding one text request (see the parent module's docs for memcached's quirks).

use super::*;

/// Decodes one request from the front of `buf`.
pub fn decode<'a>(buf: &'a [u8], limits: &Limits) -> Decoded<'a> {
    // One pass finds the end of the line and, in the same scan, any NUL that cuts it short.
    let Some(stop) = find_line_stop(buf) else {
        return incomplete_line(buf);
    };
    let newline = if buf[stop] == b'\n' {
        stop
    } else {
        match buf[stop..].iter().position(|&b| b == b'\n') {
            Some(n) => stop + n,
            None => return incomplete_line(buf),
        }
    };
    let mut line = &buf[..stop];
    // memcached strips a `\r` only from a line of two or more bytes (the `\r` counted), and
    // only when it sits right before the newline; a NUL before it makes the test moot.
    if stop == newline && line.len() > 1 && line.ends_with(b"\r") {
        line = &line[..line.len() - 1];
    }
    Line {
        buf,
        line,
        end: newline + 1,
        limits,
    }
    .decode()
}

/// No newline yet: wait, unless memcached would already have given up on this connection.
fn incomplete_line(buf: &[u8]) -> Decoded<'_> {
    if buf.len() <= LONG_LINE {
        return Decoded::Incomplete;
    }
    let spaces = buf.iter().take_while(|&&b| b == b' ').count();
    let rest = &buf[spaces..];
    if spaces <= MAX_LEADING_SPACES && (rest.starts_with(b"get ") || rest.starts_with(b"gets ")) {
        return Decoded::Incomplete;
    }
    Decoded::Error {
        error: ProtoError::LineTooLong,
        consumed: buf.len(),
        swallow: 0,
        close: true,
        noreply: true,
        unlink: None,
    }
}

/// A complete command line and its context.
pub(super) struct Line<'a, 'l> {
    /// The whole input buffer (data blocks follow the line in it).
    buf: &'a [u8],
    /// The command line without its line ending (and cut at a NUL).
    line: &'a [u8],
    /// Offset just past the newline.
    end: usize,
    limits: &'l Limits,
}

impl<'a> Line<'a, '_> {
    pub(super) fn ok(&self, request: Request<'a>) -> Decoded<'a> {
        Decoded::Request {
            request,
            consumed: self.end,
        }
    }

    pub(super) fn err(&self, error: impl Into<ProtoError>, noreply: bool) -> Decoded<'a> {
        Decoded::error(error, self.end, noreply)
    }

    pub(super) fn bad_format(&self, noreply: bool) -> Decoded<'a> {
        self.err(ClientError::BadCommandLineFormat, noreply)
    }

    fn key_ok(&self, key: &[u8]) -> bool {
        key.len() <= self.limits.max_key_len
    }

    /// memcached's command dispatch. It branches on the first byte before comparing whole
    /// names, and the branch decides what an unrecognised name gets: inside a branch,
    /// plain `ERROR`; past all of them, the HTTP check first. The order is kept so that,
    /// e.g., `gimme / HTTP/1.1` gets `ERROR` while `GET / HTTP/1.1` is closed.
    fn decode(self) -> Decoded<'a> {
        let t = Tokens::split(self.line);
        let cmd = t.get(0);
        // No command is shorter than two bytes; this also catches the empty line.
        if t.is_empty() || cmd.len() < 2 {
            return self.err(ProtoError::Error, false);
        }
        match cmd[0] {
            b'm' if cmd.len() == 2 => self.meta(&t),
            b'g' => {
                if t.ntokens() < 3 {
                    return self.err(ProtoError::Error, false);
                }
                match cmd {
                    b"get" => self.get(false),
                    b"gets" => self.get(true),
                    b"gat" => self.gat(&t, false),
                    b"gats" => self.gat(&t, true),
                    _ => self.err(ProtoError::Error, false),
                }
            }
            b's' => match cmd {
                b"set" => self.store(&t, StoreMode::Set),
                b"stats" => self.stats(&t),
                b"shutdown" => self.shutdown(&t),
                b"slabs" => self.slabs(&t),
                _ => self.err(ProtoError::Error, false),
            },
            b'a' => match cmd {
                b"add" => self.store(&t, StoreMode::Add),
                b"append" => self.store(&t, StoreMode::Append),
                _ => self.err(ProtoError::Error, false),
            },
            b'c' => match cmd {
                b"cas" => self.store(&t, StoreMode::Cas),
                b"cache_memlimit" => self.memlimit(&t),
                b"config" => self.config(&t),
                _ => self.err(ProtoError::Error, false),
            },
            b'i' => match cmd {
                b"incr" => self.arith(&t, ArithOp::Incr),
                _ => self.err(ProtoError::Error, false),
            },
            b'd' => match cmd {
                b"delete" => self.delete(&t),
                b"decr" => self.arith(&t, ArithOp::Decr),
                _ => self.err(ProtoError::Error, false),
            },
            b't' => match cmd {
                b"touch" => self.touch(&t),
                _ => self.err(ProtoError::Error, false),
            },
            _ => match cmd {
                b"replace" => self.store(&t, StoreMode::Replace),
                b"prepend" => self.store(&t, StoreMode::Prepend),
                b"bget" if t.ntokens() >= 3 => self.get(false),
                b"flush_all" => self.flush_all(&t),
                b"version" => self.ok(Request::Version),
                b"quit" => self.ok(Request::Quit),
                b"verbosity" => self.verbosity(&t),
                b"lru_crawler" => self.lru_crawler(&t),
                b"lru" => self.lru(&t),
                b"watch" => self.watch(&t),
                b"refresh_certs" => self.refresh_certs(&t),
                // Known to memcached but not implemented here; they answer malformed input
                // with `ERROR` and never reach the HTTP check.
                b"bget" | b"extstore" => self.err(ProtoError::Error, false),
                _ if t.last().starts_with(b"HTTP/") => self.err(ProtoError::HttpRequest, true),
                _ => self.err(ProtoError::Error, false),
            },
        }
    }

    /// Two-byte commands starting with `m`.
    fn meta(&self, t: &Tokens<'a>) -> Decoded<'a> {
        match t.get(0) {
            // memcached ignores anything after `mn`.
            b"mn" => self.ok(Request::MetaNoop),
            // The meta decoder takes over with the tokens split here: it has its own flag
            // rules, and an `ms` data block to find.
            b"mg" | b"ms" | b"md" | b"ma" | b"me" => {
                Decoded::Meta(crate::meta::decode_line(self.buf, t, self.end, self.limits))
            }
            _ => self.err(ProtoError::Error, false),
        }
    }

    /// The words of the line from word `n` on, unsplit (keys past the 23rd token).
    fn words_from(&self, n: usize) -> &'a [u8] {
        let mut rest = self.line;
        for _ in 0..n {
            let start = rest.iter().position(|&b| b != b' ').unwrap_or(rest.len());
            rest = &rest[start..];
            let end = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
            rest = &rest[end..];
        }
        rest
    }

    /// `get`/`gets`/`bget`, dispatched only with at least one key.
    fn get(&self, with_cas: bool) -> Decoded<'a> {
        match Keys::validated(self.words_from(1), self.limits.max_key_len) {
            Ok(keys) => self.ok(Request::Get { keys, with_cas }),
            Err(keys_before) => self.ok(Request::GetRefused {
                keys_before,
                touch: None,
            }),
        }
    }

    fn gat(&self, t: &Tokens<'a>, with_cas: bool) -> Decoded<'a> {
        let Some(exptime) = parse_i32_truncating(t.get(1)) else {
            return self.err(ClientError::InvalidExptime, false);
        };
        match Keys::validated(self.words_from(2), self.limits.max_key_len) {
            Ok(keys) => self.ok(Request::GetAndTouch {
                exptime: exptime.into(),
                keys,
                with_cas,
            }),
            Err(keys_before) => self.ok(Request::GetRefused {
                keys_before,
                touch: Some(exptime.into()),
            }),
        }
    }

    fn store(&self, t: &Tokens<'a>, mode: StoreMode) -> Decoded<'a> {
        let base = if mode == StoreMode::Cas { 7 } else { 6 };
        if t.ntokens() != base && t.ntokens() != base + 1 {
            return self.err(ProtoError::Error, false);
        }
        let noreply = t.ends_with_noreply();
        let key = t.get(1);
        if !self.key_ok(key) {
            return self.bad_format(noreply);
        }
        let (Some(flags), Some(exptime), Some(len)) = (
            parse_u32_truncating(t.get(2)),
            parse_i32_truncating(t.get(3)),
            parse_i32_truncating(t.get(4)),
        ) else {
            return self.bad_format(noreply);
        };
        let cas_unique = if mode == StoreMode::Cas {
            match parse_u64(t.get(5)) {
                Some(c) => c,
                None => return self.bad_format(noreply),
            }
        } else {
            0
        };
        let Some(len) = value_len(len) else {
            return self.bad_format(noreply);
        };
        let unlink = (mode == StoreMode::Set).then_some(key);
        self.data_block(key, flags, len, noreply, unlink, |value| Request::Store {
            mode,
            key,
            flags,
            exptime: exptime.into(),
            value,
            cas_unique,
            noreply,
        })
    }

    /// The data block of a storage command whose line was valid: refuse it unswallowed if
    /// the item can never fit, wait for all of it, then check its `\r\n`.
    fn data_block(
        &self,
        key: &[u8],
        flags: u32,
        len: usize,
        noreply: bool,
        unlink: Option<&'a [u8]>,
        request: impl FnOnce(&'a [u8]) -> Request<'a>,
    ) -> Decoded<'a> {
        if !self.limits.item_fits(key.len(), flags, len) {
            return Decoded::Error {
                error: ServerError::ObjectTooLarge.into(),
                consumed: self.end,
                swallow: len + 2,
                close: false,
                noreply,
                unlink,
            };
        }
        let total = self.end.saturating_add(len).saturating_add(2);
        if self.buf.len() < total {
            return Decoded::Incomplete;
        }
        let value = &self.buf[self.end..self.end + len];
        if &self.buf[self.end + len..total] != b"\r\n" {
            return Decoded::error(ClientError::BadDataChunk, total, noreply);
        }
        Decoded::Request {
            request: request(value),
            consumed: total,
        }
    }

    fn delete(&self, t: &Tokens<'a>) -> Decoded<'a> {
        if !(3..=5).contains(&t.ntokens()) {
            return self.err(ProtoError::Error, false);
        }
        let mut noreply = false;
        if t.ntokens() > 3 {
            // The pre-1.4 "hold time" survives only as a literal 0.
            let hold_is_zero = t.get(2) == b"0";
            noreply = t.ends_with_noreply();
            let valid = (t.ntokens() == 4 && (hold_is_zero || noreply))
                || (t.ntokens() == 5 && hold_is_zero && noreply);
            if !valid {
                return self.err(ClientError::DeleteUsage, noreply);
            }
        }
        let key = t.get(1);
        if !self.key_ok(key) {
            return self.bad_format(noreply);
        }
        self.ok(Request::Delete { key, noreply })
    }

    fn arith(&self, t: &Tokens<'a>, op: ArithOp) -> Decoded<'a> {
        if t.ntokens() != 4 && t.ntokens() != 5 {
            return self.err(ProtoError::Error, false);
        }
        let noreply = t.ends_with_noreply();
        let key = t.get(1);
        if !self.key_ok(key) {
            return self.bad_format(noreply);
        }
        match parse_u64(t.get(2)) {
            Some(delta) => self.ok(Request::Arith {
                op,
                key,
                delta,
                noreply,
            }),
            None => self.err(ClientError::InvalidDelta, noreply),
        }
    }

    fn touch(&self, t: &Tokens<'a>) -> Decoded<'a> {
        if t.ntokens() != 4 && t.ntokens() != 5 {
            return self.err(ProtoError::Error, false);
        }
        let noreply = t.ends_with_noreply();
        let key = t.get(1);
        if !self.key_ok(key) {
            return self.bad_format(noreply);
        }
        match parse_i32_truncating(t.get(2)) {
            Some(exptime) => self.ok(Request::Touch {
                key,
                exptime: exptime.into(),
                noreply,
            }),
            None => self.err(ClientError::InvalidExptime, noreply),
        }
    }

    fn flush_all(&self, t: &Tokens<'a>) -> Decoded<'a> {
        if !(2..=4).contains(&t.ntokens()) {
            return self.err(ProtoError::Error, false);
        }
        let noreply = t.ends_with_noreply();
        // memcached reads a delay whenever the line is longer than `flush_all [noreply]`,
        // so `flush_all noreply x` tries (and fails) to read `noreply` as the delay.
        let mut delay = 0;
        if t.ntokens() != if noreply { 3 } else { 2 } {
            match parse_i32_truncating(t.get(1)) {
                Some(d) => delay = d,
                None => {
                    return self.ok(Request::Refused {
                        gate: Gate::FlushAll,
                        error: ClientError::InvalidExptime.into(),
                        noreply,
                    })
                }
            }
        }
        self.ok(Request::FlushAll {
            delay: delay.into(),
            noreply,
        })
    }

    fn verbosity(&self, t: &Tokens<'a>) -> Decoded<'a> {
        if t.ntokens() != 3 && t.ntokens() != 4 {
            return self.err(ProtoError::Error, false);
        }
        let noreply = t.ends_with_noreply();
        match parse_u32_truncating(t.get(1)) {
            Some(level) => self.ok(Request::Verbosity { level, noreply }),
            None => self.bad_format(noreply),
        }
    }

    fn memlimit(&self, t: &Tokens<'a>) -> Decoded<'a> {
        if t.ntokens() != 3 && t.ntokens() != 4 {
            return self.err(ProtoError::Error, false);
        }
        let noreply = t.ends_with_noreply();
        match parse_u32_truncating(t.get(1)) {
            None => self.err(ProtoError::Error, noreply),
            Some(mb) if mb < 8 => self.err(ProtoError::MemlimitTooSmall, noreply),
            Some(mb) if mb > 1_000_000_000 => self.err(ProtoError::MemlimitNotMegabytes, noreply),
            Some(mb) => self.ok(Request::CacheMemlimit {
                megabytes: mb.into(),
                noreply,
            }),
        }
    }

    fn shutdown(&self, t: &Tokens<'a>) -> Decoded<'a> {
        match (t.ntokens(), t.get(1)) {
            (2, _) => self.ok(Request::Shutdown { graceful: false }),
            (3, b"graceful") => self.ok(Request::Shutdown { graceful: true }),
            _ => self.ok(Request::Refused {
                gate: Gate::Shutdown,
                error: ClientError::InvalidShutdownMode.into(),
                noreply: false,
            }),
        }
    }

    fn stats(&self, t: &Tokens<'a>) -> Decoded<'a> {
        if t.ntokens() == 2 {
            return self.ok(Request::Stats(StatsRequest::General));
        }
        let stats = match t.get(1) {
            b"reset" => StatsRequest::Reset,
            b"settings" => StatsRequest::Settings,
            b"conns" => StatsRequest::Conns,
            b"extstore" => StatsRequest::Extstore,
            b"items" => StatsRequest::Items,
            b"slabs" => StatsRequest::Slabs,
            b"sizes" => StatsRequest::Sizes,
            b"sizes_enable" => StatsRequest::SizesEnable,
            b"sizes_disable" => StatsRequest::SizesDisable,
            b"hotkeys" => StatsRequest::Hotkeys,
            b"detail" => match t.get(2) {
                b"on" => StatsRequest::Detail(StatsDetail::On),
                b"off" => StatsRequest::Detail(StatsDetail::Off),
                b"dump" => StatsRequest::Detail(StatsDetail::Dump),
                _ => return self.err(ClientError::StatsDetailUsage, false),
            },
            b"cachedump" => return self.cachedump(t),
            _ => return self.err(ProtoError::Error, false),
        };
        self.ok(Request::Stats(stats))
    }

    fn cachedump(&self, t: &Tokens<'a>) -> Decoded<'a> {
        let refused = |error: ClientError| {
            self.ok(Request::Refused {
                gate: Gate::Cachedump,
                error: error.into(),
                noreply: false,
            })
        };
        if t.ntokens() < 5 {
            return refused(ClientError::BadCommandLine);
        }
        let (Some(class), Some(limit)) = (parse_u32_truncating(t.get(2)), parse_u32_truncating(t.get(3)))
        else {
            return refused(ClientError::BadCommandLineFormat);
        };
        if class >= MAX_SLAB_CLASSES {
            return refused(ClientError::IllegalSlabId);
        }
        self.ok(Request::Stats(StatsRequest::Cachedump { class, limit }))
    }

    /// ElastiCache's `config` commands, modelled on the storage and delete commands.
    fn config(&self, t: &Tokens<'a>) -> Decoded<'a> {
        let key = t.get(2);
        match (t.get(1), t.ntokens()) {
            (b"get", 4) => {
                if !self.key_ok(key) {
                    return self.bad_format(false);
                }
                self.ok(Request::ConfigGet { key })
            }
            (b"set", 6 | 7) => {
                let noreply = t.ends_with_noreply();
                if !self.key_ok(key) {
                    return self.bad_format(noreply);
                }
                let (Some(flags), Some(len)) = (
                    parse_u32_truncating(t.get(3)),
                    parse_i32_truncating(t.get(4)).and_then(value_len),
                ) else {
                    return self.bad_format(noreply);
                };
                self.data_block(key, flags, len, noreply, None, |value| Request::ConfigSet {
                    key,
                    flags,
                    value,
                    noreply,
                })
            }
            (b"delete", 4 | 5) => {
                let noreply = t.ends_with_noreply();
                if t.ntokens() == 5 && !noreply {
                    return self.err(ProtoError::Error, false);
                }
                if !self.key_ok(key) {
                    return self.bad_format(noreply);
                }
                self.ok(Request::ConfigDelete { key, noreply })
            }
            _ => self.err(ProtoError::Error, false),
        }
    }
}

/// memcached's check on a data block length: a non-negative `int` that still fits after
/// the `\r\n` is added.
fn value_len(len: i32) -> Option<usize> {
    if (0..=i32::MAX - 2).contains(&len) {
        usize::try_from(len).ok()
    } else {
        None
    }
}
