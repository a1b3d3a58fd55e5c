//! Decoding one meta command (see the parent module's docs for memcached's rules).

use super::*;

fn fail(error: MetaError, consumed: usize, swallow: usize) -> MetaDecoded<'static> {
    MetaDecoded::Error {
        error,
        consumed,
        swallow,
        close: false,
        unlink: None,
    }
}

/// Decodes one meta command from the front of `buf`.
///
/// `limits.max_key_len` (250 in memcached) bounds the key token; `limits.item_size_max`
/// bounds an `ms` data length before the decoder waits for the block, so a hostile length
/// never makes the caller buffer more than one line plus `item_size_max + 2` bytes.
pub fn decode<'a>(buf: &'a [u8], limits: &Limits) -> MetaDecoded<'a> {
    let Some(nl) = buf.iter().position(|&b| b == b'\n') else {
        if buf.len() > MAX_PARTIAL_LINE {
            return MetaDecoded::Error {
                error: MetaError::LINE_TOO_LONG,
                consumed: buf.len(),
                swallow: 0,
                close: true,
                unlink: None,
            };
        }
        return MetaDecoded::Incomplete;
    };
    let line_len = nl + 1;
    let mut line = &buf[..nl];
    // memcached strips the '\r' only when something precedes it.
    if line.len() > 1 && line.ends_with(b"\r") {
        line = &line[..line.len() - 1];
    }
    // memcached's tokenizer stops at a NUL (it works on a C string).
    if let Some(nul) = line.iter().position(|&b| b == 0) {
        line = &line[..nul];
    }
    decode_line(buf, &Tokens::split(line), line_len, limits)
}

/// Decodes a meta command whose line the text decoder has already found and split: `words`
/// are its tokens, `line_len` the bytes up to and including its newline.
pub(crate) fn decode_line<'a>(
    buf: &'a [u8],
    words: &Tokens<'a>,
    line_len: usize,
    limits: &Limits,
) -> MetaDecoded<'a> {
    let Some(cmd) = MetaCommand::from_verb(words.get(0)) else {
        return fail(MetaError::UNKNOWN_COMMAND, line_len, 0);
    };
    match cmd {
        MetaCommand::Noop => MetaDecoded::Request {
            request: MetaRequest {
                op: MetaOp::Noop,
                key: MetaKey::plain(&[]),
                flags: MetaFlags::default(),
            },
            consumed: line_len,
        },
        MetaCommand::Debug => decode_debug(words, line_len, limits),
        MetaCommand::Set => decode_set(buf, words, line_len, limits),
        MetaCommand::Get | MetaCommand::Delete | MetaCommand::Arithmetic => {
            decode_keyed(cmd, words, line_len, limits)
        }
    }
}

fn decode_debug<'a>(words: &Tokens<'a>, line_len: usize, limits: &Limits) -> MetaDecoded<'a> {
    let raw = words.get(1);
    if words.ntokens() < 3 || raw.len() > limits.max_key_len {
        return fail(MetaError::BAD_FORMAT, line_len, 0);
    }
    let mut key = MetaKey::plain(raw);
    let mut flags = MetaFlags::default();
    // `me` looks at exactly one optional token and only if it is the single letter `b`.
    if words.ntokens() >= 4 && words.get(2) == b"b" {
        if !decode_key_base64(&mut key) {
            return fail(MetaError::BAD_FORMAT, line_len, 0);
        }
        flags.base64 = true;
    }
    MetaDecoded::Request {
        request: MetaRequest {
            op: MetaOp::Debug,
            key,
            flags,
        },
        consumed: line_len,
    }
}

fn decode_keyed<'a>(
    cmd: MetaCommand,
    words: &Tokens<'a>,
    line_len: usize,
    limits: &Limits,
) -> MetaDecoded<'a> {
    if words.ntokens() < 3 {
        return fail(MetaError::UNKNOWN_COMMAND, line_len, 0);
    }
    let raw = words.get(1);
    if raw.len() > limits.max_key_len {
        return fail(MetaError::BAD_FORMAT, line_len, 0);
    }
    if words.ntokens() > MAX_META_NTOKENS {
        let e = if cmd == MetaCommand::Get {
            MetaError::GetTooManyFlags
        } else {
            MetaError::TooManyFlags
        };
        return fail(e, line_len, 0);
    }
    let mut key = MetaKey::plain(raw);
    let flags = match parse_flags(words.rest(2), &mut key) {
        Ok(f) => f,
        Err(e) if cmd == MetaCommand::Get => return fail(e, line_len, 0),
        Err(_) => return fail(MetaError::InvalidOrDuplicateFlag, line_len, 0),
    };
    let op = match cmd {
        MetaCommand::Get => MetaOp::Get,
        MetaCommand::Delete => MetaOp::Delete,
        _ => {
            let mode = match flags.mode {
                None | Some(b'I') | Some(b'+') => ArithMode::Increment,
                Some(b'D') | Some(b'-') => ArithMode::Decrement,
                Some(_) => return fail(MetaError::InvalidArithMode, line_len, 0),
            };
            MetaOp::Arithmetic {
                mode,
                delta: flags.delta.unwrap_or(1),
                initial: flags.initial.unwrap_or(0),
            }
        }
    };
    if opaque_too_long(&flags) {
        return fail(MetaError::OpaqueTooLong, line_len, 0);
    }
    MetaDecoded::Request {
        request: MetaRequest { op, key, flags },
        consumed: line_len,
    }
}

fn decode_set<'a>(buf: &'a [u8], words: &Tokens<'a>, line_len: usize, limits: &Limits) -> MetaDecoded<'a> {
    if words.ntokens() < 3 {
        return fail(MetaError::UNKNOWN_COMMAND, line_len, 0);
    }
    let raw = words.get(1);
    if raw.len() > limits.max_key_len || words.ntokens() == 3 {
        return fail(MetaError::BAD_FORMAT, line_len, 0);
    }
    if words.ntokens() > MAX_META_NTOKENS {
        return fail(MetaError::TooManyFlags, line_len, 0);
    }
    // memcached reads the length as a C int: parse, truncate to 32 bits, then refuse
    // negatives and lengths that would overflow once the "\r\n" is added.
    let data_len = match parse_i64(words.get(2)) {
        Some(v) if (0..=i32::MAX as i64 - 2).contains(&(v as i32 as i64)) => v as i32 as usize,
        _ => return fail(MetaError::BAD_FORMAT, line_len, 0),
    };
    // From here on every error also swallows the data block that follows the line.
    let swallow = data_len + 2;
    let mut key = MetaKey::plain(raw);
    let flags = match parse_flags(words.rest(3), &mut key) {
        Ok(f) => f,
        Err(e) => return fail(e, line_len, swallow),
    };
    let mode = match flags.mode {
        None | Some(b'S') => StoreMode::Set,
        Some(b'E') => StoreMode::Add,
        Some(b'A') => StoreMode::Append,
        Some(b'P') => StoreMode::Prepend,
        Some(b'R') => StoreMode::Replace,
        Some(_) => return fail(MetaError::InvalidSetMode, line_len, swallow),
    };
    if opaque_too_long(&flags) {
        return fail(MetaError::OpaqueTooLong, line_len, swallow);
    }
    // memcached sizes the item from the (decoded) key, the flags and the value.
    if !limits.item_fits(key.bytes().len(), flags.client_flags.unwrap_or(0), data_len) {
        return MetaDecoded::Error {
            error: MetaError::TOO_LARGE,
            consumed: line_len,
            swallow,
            close: false,
            unlink: Some(key),
        };
    }
    let total = line_len + data_len + 2;
    let Some(block) = buf.get(line_len..total) else {
        return MetaDecoded::Incomplete;
    };
    let (data, end) = block.split_at(data_len);
    if end != b"\r\n" {
        // memcached has read exactly the announced bytes; nothing more is skipped.
        return fail(MetaError::BAD_DATA_CHUNK, total, 0);
    }
    MetaDecoded::Request {
        request: MetaRequest {
            op: MetaOp::Set { mode, data },
            key,
            flags,
        },
        consumed: total,
    }
}

fn opaque_too_long(flags: &MetaFlags<'_>) -> bool {
    flags.opaque.is_some_and(|o| o.len() + 1 > MAX_OPAQUE_TOKEN)
}

/// memcached's flag pre-parse: records every flag, stops at the first unknown or repeated
/// flag, and otherwise reports the last bad argument (see the module docs).
pub(super) fn parse_flags<'a>(
    tokens: &[&'a [u8]],
    key: &mut MetaKey<'_>,
) -> Result<MetaFlags<'a>, MetaError> {
    let mut f = MetaFlags::default();
    let mut seen = [false; 128];
    // The message of the last bad argument that has one (a bad F has none).
    let mut soft: Option<MetaError> = None;
    let mut has_error = false;
    for tok in tokens {
        let o = tok[0];
        if o >= 127 || seen[usize::from(o)] {
            return Err(MetaError::DuplicateFlag);
        }
        seen[usize::from(o)] = true;
        let arg = &tok[1..];
        let mut bad = |e: Option<MetaError>| {
            has_error = true;
            if e.is_some() {
                soft = e;
            }
        };
        match o {
            b'b' => {
                if !decode_key_base64(key) {
                    bad(Some(MetaError::KeyDecode));
                }
                f.base64 = true;
            }
            b'N' => match parse_i64(arg) {
                Some(v) => f.vivify_ttl = Some(v as i32),
                None => bad(Some(MetaError::BadToken)),
            },
            b'T' => match parse_i64(arg) {
                Some(v) => f.ttl = Some(v as i32),
                None => bad(Some(MetaError::BadToken)),
            },
            b'R' => match parse_i64(arg) {
                Some(v) => f.recache_ttl = Some(v as i32),
                None => bad(Some(MetaError::BadToken)),
            },
            b'F' => match parse_u64(arg) {
                Some(v) => f.client_flags = Some(v as u32),
                None => bad(None),
            },
            b'C' => match parse_u64(arg) {
                Some(v) => f.compare_cas = Some(v),
                None => bad(Some(MetaError::BadToken)),
            },
            b'E' => match parse_u64(arg) {
                Some(v) => f.new_cas = Some(v),
                None => bad(Some(MetaError::BadToken)),
            },
            b'M' => {
                if tok.len() == 2 {
                    f.mode = Some(tok[1]);
                } else {
                    bad(Some(MetaError::BadModeLength));
                }
            }
            b'J' => match parse_u64(arg) {
                Some(v) => f.initial = Some(v),
                None => bad(Some(MetaError::InvalidInitial)),
            },
            b'D' => match parse_u64(arg) {
                Some(v) => f.delta = Some(v),
                None => bad(Some(MetaError::InvalidDelta)),
            },
            b'O' => f.opaque = Some(arg),
            b'P' | b'L' => {}
            b'c' => f.return_cas = true,
            b'f' => f.return_flags = true,
            b'h' => f.return_hit = true,
            b'k' => f.return_key = true,
            b'l' => f.return_last_access = true,
            b'q' => f.quiet = true,
            b's' => f.return_size = true,
            b't' => f.return_ttl = true,
            b'u' => f.no_bump = true,
            b'v' => f.return_value = true,
            b'I' => f.invalidate = true,
            b'x' => f.remove_value = true,
            _ => return Err(MetaError::InvalidFlag),
        }
        // The caller bounds the token count, so the order array cannot overflow.
        if f.order.len < MAX_FLAGS {
            f.order.bytes[f.order.len] = o;
            f.order.len += 1;
        }
    }
    if has_error {
        return Err(soft.unwrap_or(MetaError::BAD_FORMAT));
    }
    Ok(f)
}

/// Decodes the key in place into its inline buffer ([`base64::decode`]'s rules).
pub(super) fn decode_key_base64(key: &mut MetaKey<'_>) -> bool {
    let mut out = [0u8; KEY_BUF];
    let Some(len) = base64::decode(key.raw, &mut out) else {
        return false;
    };
    key.decoded = out;
    key.decoded_len = len;
    key.binary = true;
    true
}
