//! A large value written in pieces: a get reply copies a value into the connection's
//! output whole when the output has room for it (as it does while the client reads).
//! Otherwise, for a value of more than [`PIECE`] bytes, it writes what there is room for
//! (at least a piece) and leaves a [`ValueRest`], which the connection continues as the
//! client reads, before it runs any other request.
//!
//! Each piece is copied under the item's lock (the engine's read), so a piece is never torn;
//! between pieces the item may change. A value is only written in pieces when its item has
//! a cas unique (every write gets a new one), and each piece checks it: if the item was
//! replaced or removed meanwhile, the reply cannot be completed with the bytes it started
//! with and the connection is closed ([`Torn`]), so a client never reads a mix of two values.
//! With CAS disabled (`-C`) values are copied whole, as before.

use slabcache::{GetOptions, HitCounter, Value};

use crate::context::Context;

/// Values larger than this are written a piece of this size at a time.
pub const PIECE: usize = 256 * 1024;

/// The part of a value still to be written, and what ends the reply after it.
#[derive(Debug)]
pub struct ValueRest {
    key: Vec<u8>,
    cas: u64,
    len: usize,
    sent: usize,
    trailer: &'static [u8],
}

/// The item changed between two pieces of its value.
#[derive(Debug, PartialEq, Eq)]
pub struct Torn;

/// Where a value goes: the output, the room the connection gives it, and the slot for
/// what does not fit.
pub struct ValueSink<'a> {
    pub out: &'a mut Vec<u8>,
    /// The output may grow to this length before a value is split.
    pub limit: usize,
    pub rest: &'a mut Option<ValueRest>,
}

/// Append `value` and `trailer`; or, for a large value that does not fit the room and whose
/// item has a cas, what fits (at least a piece), with the rest left in `rest`.
pub fn append_value(sink: ValueSink<'_>, key: &[u8], cas: u64, value: &Value<'_>, trailer: &'static [u8]) {
    let room = sink.limit.saturating_sub(sink.out.len()).max(PIECE);
    if value.len() <= room || cas == 0 {
        value.append_to(sink.out);
        sink.out.extend_from_slice(trailer);
        return;
    }
    copy_range(sink.out, value, 0, room);
    *sink.rest = Some(ValueRest {
        key: key.to_vec(),
        cas,
        len: value.len(),
        sent: room,
        trailer,
    });
}

/// Write the next part of `rest`: what `room` allows, at least a piece. Clears `rest` once
/// the value and its trailer are written.
pub fn continue_value(
    rest: &mut Option<ValueRest>,
    ctx: &Context,
    out: &mut Vec<u8>,
    room: usize,
) -> Result<(), Torn> {
    let Some(r) = rest.as_mut() else {
        return Ok(());
    };
    let peek = GetOptions {
        bump: false,
        vivify: false,
        counter: HitCounter::None,
    };
    let n = room.max(PIECE).min(r.len - r.sent);
    let copied = ctx.cache.meta_get(&r.key, ctx.clock.now(), peek, |it| {
        if it.cas != r.cas || it.value.len() != r.len {
            return false;
        }
        copy_range(out, &it.value, r.sent, n);
        true
    });
    if copied != Some(true) {
        *rest = None;
        return Err(Torn);
    }
    r.sent += n;
    if r.sent == r.len {
        out.extend_from_slice(r.trailer);
        *rest = None;
    }
    Ok(())
}

/// Append bytes `from..from + n` of `value`.
fn copy_range(out: &mut Vec<u8>, value: &Value<'_>, from: usize, n: usize) {
    out.reserve(n);
    let (mut skip, mut left) = (from, n);
    for piece in value.parts() {
        if left == 0 {
            break;
        }
        if skip >= piece.len() {
            skip -= piece.len();
            continue;
        }
        let take = (piece.len() - skip).min(left);
        out.extend_from_slice(&piece[skip..skip + take]);
        skip = 0;
        left -= take;
    }
}
