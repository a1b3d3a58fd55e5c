//! Decoding one request frame (see the parent module's docs for memcached's checks).

use super::*;

/// The shape rule for an opcode's frame: which extras length it needs, whether it needs a
/// key, and how the body length must relate to extras + key.
#[derive(Clone, Copy)]
struct Shape {
    /// Allowed extras lengths.
    extras: &'static [u8],
    key: KeyRule,
    body: BodyRule,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum KeyRule {
    Required,
    Forbidden,
    Optional,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum BodyRule {
    /// Body is exactly extras + key.
    Exact,
    /// Anything after extras + key is the value.
    Value,
    /// memcached does not look past extras + key; the rest stays in the stream.
    Unchecked,
}

fn shape(op: Opcode) -> Shape {
    use BodyRule::*;
    use KeyRule::*;
    let (extras, key, body): (&'static [u8], KeyRule, BodyRule) = match op {
        Opcode::Get | Opcode::GetQ | Opcode::GetK | Opcode::GetKQ => (&[0], Required, Exact),
        Opcode::Set | Opcode::SetQ | Opcode::Add | Opcode::AddQ | Opcode::Replace | Opcode::ReplaceQ => {
            (&[8], Required, Value)
        }
        Opcode::Append | Opcode::AppendQ | Opcode::Prepend | Opcode::PrependQ => (&[0], Required, Value),
        Opcode::Delete | Opcode::DeleteQ => (&[0], Required, Exact),
        Opcode::Increment | Opcode::IncrementQ | Opcode::Decrement | Opcode::DecrementQ => {
            (&[20], Required, Exact)
        }
        Opcode::Quit | Opcode::QuitQ | Opcode::Noop | Opcode::Version | Opcode::SaslListMechs => {
            (&[0], Forbidden, Exact)
        }
        Opcode::Flush | Opcode::FlushQ => (&[0, 4], Forbidden, Exact),
        Opcode::Stat => (&[0], Optional, Unchecked),
        Opcode::Verbosity => (&[4], Forbidden, Exact),
        Opcode::Touch | Opcode::Gat | Opcode::GatQ | Opcode::GatK | Opcode::GatKQ => {
            (&[4], Required, Unchecked)
        }
        Opcode::SaslAuth | Opcode::SaslStep => (&[0], Required, Value),
        Opcode::ConfigGet | Opcode::ConfigGetQ | Opcode::ConfigGetK | Opcode::ConfigGetKQ => {
            (&[0], Required, Exact)
        }
        Opcode::ConfigSet | Opcode::ConfigSetQ => (&[4], Required, Value),
        Opcode::ConfigDelete | Opcode::ConfigDeleteQ => (&[0], Required, Exact),
    };
    Shape { extras, key, body }
}

pub(super) fn be_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_be_bytes(a)
}

pub(super) fn be_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_be_bytes(a)
}

/// Decodes one request frame from the front of `buf`.
///
/// Length fields are validated (see the module docs for the order) before anything waits
/// for or reads a value, so a hostile body length never makes the caller buffer more than
/// one header, extras and key plus an item that [`Limits::item_fits`]; nothing here
/// allocates.
pub fn decode<'a>(buf: &'a [u8], limits: &Limits) -> BinDecoded<'a> {
    let Some(h) = Header::parse(buf) else {
        return BinDecoded::Incomplete;
    };
    let err = |kind, status, swallow: usize, close| {
        BinDecoded::Error(BinError {
            kind,
            status,
            opcode: h.opcode,
            opaque: h.opaque,
            consumed: HEADER_LEN,
            swallow,
            close,
            unlink: None,
        })
    };
    if h.magic != MAGIC_REQUEST {
        return err(BinErrorKind::BadMagic, None, 0, true);
    }
    let key_len = usize::from(h.key_len);
    let extras_len = usize::from(h.extras_len);
    let body_len = h.body_len as usize;
    // memcached looks at nothing but the magic until extras and key are buffered.
    if buf.len() < HEADER_LEN + extras_len + key_len {
        return BinDecoded::Incomplete;
    }
    // Both checks as memcached writes them; the second alone would do, but they are cheap.
    if key_len > body_len || key_len + extras_len > body_len {
        return err(
            BinErrorKind::LengthsExceedBody,
            Some(Status::UnknownCommand),
            0,
            true,
        );
    }
    if key_len > limits.max_key_len {
        return err(BinErrorKind::KeyTooLong, Some(Status::InvalidArguments), 0, true);
    }
    // memcached 1.6.18 has no Verbosity handler: it is an unknown command, whatever its shape.
    let Some(op) = Opcode::from_u8(h.opcode).filter(|&op| op != Opcode::Verbosity) else {
        // Skip the whole body: the frame is well-formed, just not understood.
        return err(
            BinErrorKind::UnknownOpcode,
            Some(Status::UnknownCommand),
            body_len,
            false,
        );
    };
    let rule = shape(op);
    let key_ok = match rule.key {
        KeyRule::Required => key_len > 0,
        KeyRule::Forbidden => key_len == 0,
        KeyRule::Optional => true,
    };
    let body_ok = match rule.body {
        BodyRule::Exact => body_len == key_len + extras_len,
        BodyRule::Value | BodyRule::Unchecked => true,
    };
    if !rule.extras.contains(&h.extras_len) || !key_ok || !body_ok {
        return err(BinErrorKind::BadShape, Some(Status::InvalidArguments), 0, true);
    }
    // Header, extras and key: at most 24 + 255 + max_key_len bytes.
    let head_len = HEADER_LEN + extras_len + key_len;
    let value_len = match rule.body {
        BodyRule::Value => body_len - key_len - extras_len,
        BodyRule::Exact | BodyRule::Unchecked => 0,
    };
    let Some(head) = buf.get(..head_len) else {
        return BinDecoded::Incomplete;
    };
    let extras = &head[HEADER_LEN..HEADER_LEN + extras_len];
    let key = &head[HEADER_LEN + extras_len..];
    if rule.body == BodyRule::Value {
        // memcached sizes the item from key, flags and value before reading the value.
        let flags = if extras.len() >= 4 { be_u32(extras) } else { 0 };
        if !limits.item_fits(key_len, flags, value_len) {
            return BinDecoded::Error(BinError {
                kind: BinErrorKind::ValueTooLarge,
                status: Some(Status::ValueTooLarge),
                opcode: h.opcode,
                opaque: h.opaque,
                consumed: head_len,
                // memcached holds the value length in a C int: one of 2^31 or more is
                // negative, and it swallows nothing.
                swallow: if i32::try_from(value_len).is_ok() {
                    value_len
                } else {
                    0
                },
                close: false,
                // Only a plain set drops the old value, so it cannot be read stale.
                unlink: matches!(op, Opcode::Set | Opcode::SetQ).then_some(key),
            });
        }
    }
    let frame_len = head_len + value_len;
    let Some(value) = buf.get(head_len..frame_len) else {
        return BinDecoded::Incomplete;
    };
    let command = command_for(op, extras, key, value);
    BinDecoded::Request {
        request: BinRequest {
            opcode: op,
            opaque: h.opaque,
            cas: h.cas,
            vbucket: h.vbucket_or_status,
            data_type: h.data_type,
            command,
        },
        consumed: frame_len,
    }
}

/// Builds the command from a frame whose lengths `shape` has already approved.
fn command_for<'a>(op: Opcode, extras: &'a [u8], key: &'a [u8], value: &'a [u8]) -> BinCommand<'a> {
    let store = |mode| BinCommand::Store {
        mode,
        key,
        flags: be_u32(extras),
        exptime: be_u32(&extras[4..]),
        value,
    };
    let concat = |mode| BinCommand::Store {
        mode,
        key,
        flags: 0,
        exptime: 0,
        value,
    };
    let arith = |incr| BinCommand::Arith {
        incr,
        key,
        delta: be_u64(extras),
        initial: be_u64(&extras[8..]),
        exptime: be_u32(&extras[16..]),
    };
    match op {
        Opcode::Get | Opcode::GetQ | Opcode::GetK | Opcode::GetKQ => BinCommand::Get { key },
        Opcode::Set | Opcode::SetQ => store(StoreMode::Set),
        Opcode::Add | Opcode::AddQ => store(StoreMode::Add),
        Opcode::Replace | Opcode::ReplaceQ => store(StoreMode::Replace),
        Opcode::Append | Opcode::AppendQ => concat(StoreMode::Append),
        Opcode::Prepend | Opcode::PrependQ => concat(StoreMode::Prepend),
        Opcode::Delete | Opcode::DeleteQ => BinCommand::Delete { key },
        Opcode::Increment | Opcode::IncrementQ => arith(true),
        Opcode::Decrement | Opcode::DecrementQ => arith(false),
        Opcode::Quit | Opcode::QuitQ => BinCommand::Quit,
        Opcode::Flush | Opcode::FlushQ => BinCommand::Flush {
            delay: (extras.len() == 4).then(|| be_u32(extras)),
        },
        Opcode::Noop => BinCommand::Noop,
        Opcode::Version => BinCommand::Version,
        Opcode::Stat => BinCommand::Stat { group: key },
        Opcode::Verbosity => BinCommand::Verbosity {
            level: be_u32(extras),
        },
        Opcode::Touch => BinCommand::Touch {
            key,
            exptime: be_u32(extras),
        },
        Opcode::Gat | Opcode::GatQ | Opcode::GatK | Opcode::GatKQ => BinCommand::Gat {
            key,
            exptime: be_u32(extras),
        },
        Opcode::SaslListMechs => BinCommand::SaslListMechs,
        Opcode::SaslAuth => BinCommand::Sasl {
            step: false,
            mechanism: key,
            data: value,
        },
        Opcode::SaslStep => BinCommand::Sasl {
            step: true,
            mechanism: key,
            data: value,
        },
        Opcode::ConfigGet | Opcode::ConfigGetQ | Opcode::ConfigGetK | Opcode::ConfigGetKQ => {
            BinCommand::ConfigGet { key }
        }
        Opcode::ConfigSet | Opcode::ConfigSetQ => BinCommand::ConfigSet {
            key,
            flags: be_u32(extras),
            value,
        },
        Opcode::ConfigDelete | Opcode::ConfigDeleteQ => BinCommand::ConfigDelete { key },
    }
}
