//! Encoding meta replies, with the `q`, `O` and `k` rules of the parent module's docs.

use super::*;

/// ` <letter><number>`
fn flag_num(out: &mut Vec<u8>, letter: u8, v: u64) {
    out.push(b' ');
    out.push(letter);
    push_u64(out, v);
}

/// ` k<key>`, or ` k<base64> b` for a binary key.
fn flag_key(out: &mut Vec<u8>, key: &[u8], binary: bool) {
    out.extend_from_slice(b" k");
    if binary {
        base64::encode(out, key);
        out.extend_from_slice(b" b");
    } else {
        out.extend_from_slice(key);
    }
}

fn flag_opaque(out: &mut Vec<u8>, flags: &MetaFlags<'_>) {
    out.extend_from_slice(b" O");
    out.extend_from_slice(flags.opaque.unwrap_or_default());
}

/// Writes `code` plus the `O` and `k` flags in request order: the reply of every meta
/// command that has no item to describe.
fn write_code_with_opaque_key(out: &mut Vec<u8>, code: &[u8], req: &MetaRequest<'_>) {
    out.extend_from_slice(code);
    for &o in req.flags.order() {
        match o {
            b'O' => flag_opaque(out, &req.flags),
            b'k' => flag_key(out, req.key.bytes(), req.key.is_binary()),
            _ => {}
        }
    }
    out.extend_from_slice(b"\r\n");
}

/// `MN\r\n`, the reply to `mn`.
pub fn write_mn(out: &mut Vec<u8>) {
    out.extend_from_slice(b"MN\r\n");
}

/// What the server knows about an item a meta command found (or created).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ItemMeta {
    /// Seconds of TTL left before this request changed it; -1 for no expiry.
    pub ttl: i64,
    /// TTL after a `T` (or `N` creating the item) in this request took effect. A `t`
    /// after such a flag reports this one, a `t` before it the old one (memcached
    /// processes the flags in order).
    pub new_ttl: Option<i64>,
    /// The item's cas (`c`).
    pub cas: u64,
    /// The item's client flags (`f`).
    pub client_flags: u32,
    /// Value length in bytes.
    pub size: u64,
    /// Fetched before this request (`h`).
    pub hit_before: bool,
    /// Seconds since last access before this request (`l`).
    pub last_access: u64,
    /// The item's key was stored as binary (`b`): `k` echoes it in base64.
    pub key_binary: bool,
    /// This request created the item (`N` vivify on miss).
    pub created: bool,
    /// `W`: this client won the recache token.
    pub won: bool,
    /// `X`: the item is stale (invalidated by `md I`).
    pub stale: bool,
    /// `Z`: a win token was already handed out for this item.
    pub win_token_sent: bool,
}

/// Writes the requested return flags for `item` in request order (everything between the
/// code and the `\r\n` of a `mg` hit).
fn write_item_flags(out: &mut Vec<u8>, req: &MetaRequest<'_>, item: &ItemMeta, key: &[u8]) {
    let mut ttl = item.ttl;
    for &o in req.flags.order() {
        match o {
            b'T' => ttl = item.new_ttl.unwrap_or(ttl),
            b'N' if item.created => ttl = item.new_ttl.unwrap_or(ttl),
            b's' => flag_num(out, b's', item.size),
            b't' => {
                out.extend_from_slice(b" t");
                push_i64(out, ttl);
            }
            b'c' => flag_num(out, b'c', item.cas),
            b'f' => flag_num(out, b'f', u64::from(item.client_flags)),
            b'l' => flag_num(out, b'l', item.last_access),
            b'h' => flag_num(out, b'h', u64::from(item.hit_before)),
            b'O' => flag_opaque(out, &req.flags),
            b'k' => flag_key(out, key, item.key_binary),
            _ => {}
        }
    }
}

/// Reply to an `mg` that found (or vivified) an item: `VA <size> <flags>*\r\n<data>\r\n`
/// with `v`, else `HD <flags>*\r\n`, then ` Z`, ` X`, ` W` as set. Never suppressed by `q`.
/// `value` is only written with `v`.
pub fn write_mg_hit(out: &mut Vec<u8>, req: &MetaRequest<'_>, item: &ItemMeta, value: &[u8]) -> bool {
    write_mg_hit_head(out, req, item, value.len());
    if req.flags.return_value {
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    true
}

/// [`write_mg_hit`] up to the value: with `v` (`req.flags.return_value`) the caller then
/// appends the value's `value_len` bytes and `\r\n`.
pub fn write_mg_hit_head(out: &mut Vec<u8>, req: &MetaRequest<'_>, item: &ItemMeta, value_len: usize) {
    if req.flags.return_value {
        out.extend_from_slice(b"VA ");
        push_u64(out, value_len as u64);
    } else {
        out.extend_from_slice(b"HD");
    }
    write_item_flags(out, req, item, req.key.bytes());
    if item.win_token_sent {
        out.extend_from_slice(b" Z");
    }
    if item.stale {
        out.extend_from_slice(b" X");
    }
    if item.won {
        out.extend_from_slice(b" W");
    }
    out.extend_from_slice(b"\r\n");
}

/// Reply to an `mg` miss: `EN` plus `O`/`k` flags, or nothing with `q`.
pub fn write_mg_miss(out: &mut Vec<u8>, req: &MetaRequest<'_>) -> bool {
    if req.flags.quiet {
        return false;
    }
    write_code_with_opaque_key(out, b"EN", req);
    true
}

/// Result of an `ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetOutcome {
    /// `HD`.
    Stored {
        /// The stored item's new cas, echoed by `c`.
        cas: u64,
    },
    /// `NS`
    NotStored,
    /// `EX` (cas mismatch)
    Exists,
    /// `NF` (cas given, item missing)
    NotFound,
}

/// Reply to an `ms`: the code plus `O`, `k`, `c` in request order (`c` is 0 unless
/// stored). `q` suppresses `HD` only.
pub fn write_ms_result(out: &mut Vec<u8>, req: &MetaRequest<'_>, outcome: SetOutcome) -> bool {
    let (code, cas): (&[u8], u64) = match outcome {
        SetOutcome::Stored { cas } => (b"HD", cas),
        SetOutcome::NotStored => (b"NS", 0),
        SetOutcome::Exists => (b"EX", 0),
        SetOutcome::NotFound => (b"NF", 0),
    };
    if req.flags.quiet && matches!(outcome, SetOutcome::Stored { .. }) {
        return false;
    }
    out.extend_from_slice(code);
    for &o in req.flags.order() {
        match o {
            b'O' => flag_opaque(out, &req.flags),
            b'k' => flag_key(out, req.key.bytes(), req.key.is_binary()),
            b'c' => flag_num(out, b'c', cas),
            _ => {}
        }
    }
    out.extend_from_slice(b"\r\n");
    true
}

/// Result of an `md`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeleteOutcome {
    /// `HD`: deleted, or marked stale with `I`.
    Deleted,
    /// `NF`
    NotFound,
    /// `EX`: `C` did not match.
    Exists,
}

/// Reply to an `md`: the code plus `O`/`k` flags. `q` suppresses `HD` only.
pub fn write_md_result(out: &mut Vec<u8>, req: &MetaRequest<'_>, outcome: DeleteOutcome) -> bool {
    let code: &[u8] = match outcome {
        DeleteOutcome::Deleted if req.flags.quiet => return false,
        DeleteOutcome::Deleted => b"HD",
        DeleteOutcome::NotFound => b"NF",
        DeleteOutcome::Exists => b"EX",
    };
    write_code_with_opaque_key(out, code, req);
    true
}

/// Result of an `ma`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArithOutcome {
    /// The number after the operation (or the `J` seed if `N` created it); `item.created`
    /// tells which, since `q` does not hide the reply for a created item.
    Done {
        /// The number now stored.
        value: u64,
        /// The item, for `c`, `t` and `created`.
        item: ItemMeta,
    },
    /// `NF`: missing and no `N`.
    NotFound,
    /// `NS`: auto-create failed to store.
    NotStored,
    /// `EX`: `C` did not match.
    Exists,
}

/// Reply to an `ma`: `HD <flags>*\r\n`, or `VA <len> <flags>*\r\n<number>\r\n` with `v`;
/// flags `c`, `t`, `O`, `k` in request order. `NF`/`NS`/`EX` carry `O`/`k` only.
pub fn write_ma_result(out: &mut Vec<u8>, req: &MetaRequest<'_>, outcome: ArithOutcome) -> bool {
    let (value, item) = match outcome {
        ArithOutcome::Done { value, item } => (value, item),
        other => {
            let code: &[u8] = match other {
                ArithOutcome::NotFound => b"NF",
                ArithOutcome::NotStored => b"NS",
                _ => b"EX",
            };
            write_code_with_opaque_key(out, code, req);
            return true;
        }
    };
    // memcached marks the reply skippable only on the path that changed an existing item.
    if req.flags.quiet && !item.created {
        return false;
    }
    let mut number = Vec::new();
    push_u64(&mut number, value);
    if req.flags.return_value {
        out.extend_from_slice(b"VA ");
        push_u64(out, number.len() as u64);
    } else {
        out.extend_from_slice(b"HD");
    }
    let mut ttl = item.ttl;
    for &o in req.flags.order() {
        match o {
            b'T' => ttl = item.new_ttl.unwrap_or(ttl),
            b'N' if item.created => ttl = item.new_ttl.unwrap_or(ttl),
            b'c' => flag_num(out, b'c', item.cas),
            b't' => {
                out.extend_from_slice(b" t");
                push_i64(out, ttl);
            }
            b'O' => flag_opaque(out, &req.flags),
            b'k' => flag_key(out, req.key.bytes(), req.key.is_binary()),
            _ => {}
        }
    }
    out.extend_from_slice(b"\r\n");
    if req.flags.return_value {
        out.extend_from_slice(&number);
        out.extend_from_slice(b"\r\n");
    }
    true
}

/// What `me` prints about an item.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DebugInfo {
    /// Seconds of TTL left; -1 for no expiry. memcached prints `exp=` as the *negated*
    /// remaining time (`exp=-100` for 100 seconds left) and `exp=-1` for no expiry;
    /// this encoder reproduces that.
    pub ttl: i64,
    /// Seconds since last access.
    pub last_access: u64,
    /// The item's cas.
    pub cas: u64,
    /// Fetched at least once.
    pub fetched: bool,
    /// Slab class id.
    pub class_id: u32,
    /// Total item size in memory, header included.
    pub size: u64,
    /// Key stored as binary: printed in base64.
    pub key_binary: bool,
}

/// Reply to an `me` hit: `ME <key> exp=.. la=.. cas=.. fetch=yes|no cls=.. size=..\r\n`.
pub fn write_me(out: &mut Vec<u8>, key: &[u8], info: &DebugInfo) {
    out.extend_from_slice(b"ME ");
    if info.key_binary {
        base64::encode(out, key);
    } else {
        out.extend_from_slice(key);
    }
    out.extend_from_slice(b" exp=");
    push_i64(
        out,
        if info.ttl == -1 {
            -1
        } else {
            info.ttl.wrapping_neg()
        },
    );
    out.extend_from_slice(b" la=");
    push_u64(out, info.last_access);
    out.extend_from_slice(b" cas=");
    push_u64(out, info.cas);
    out.extend_from_slice(if info.fetched { b" fetch=yes" } else { b" fetch=no" });
    out.extend_from_slice(b" cls=");
    push_u64(out, u64::from(info.class_id));
    out.extend_from_slice(b" size=");
    push_u64(out, info.size);
    out.extend_from_slice(b"\r\n");
}

/// Reply to an `me` miss: `EN\r\n` (`me` has no `q`).
pub fn write_me_miss(out: &mut Vec<u8>) {
    out.extend_from_slice(b"EN\r\n");
}
