//! The three wire protocols around the one executor: each module decodes a request with
//! the `proto` crate, maps it onto a [`crate::cmd::Command`], runs it, and encodes the
//! outcomes with its own [`crate::cmd::Reply`] encoder, which is the one place that
//! protocol's quiet, noreply and opaque rules live. A stored value goes into a reply with
//! `slabcache::Value::append_to`, piece by piece for a chained item.
//!
//! - [`text`]: the classic text protocol (and the line-level dispatch to meta);
//! - [`meta`]: `mg ms md ma me` (`mn` is decoded with the text commands);
//! - [`binary`]: the binary protocol;
//! - [`run_all`]: a whole buffer of requests with nothing more to come (a UDP datagram).

pub mod binary;
pub mod meta;
pub mod partial;
mod step;
#[cfg(test)]
mod tests;
pub mod text;
pub mod value_rest;

pub use step::{Lent, Step, Turn};

use crate::auth::Session;
use crate::context::Context;
use crate::stats::Counters;

/// Run every complete request of `payload` as one connection's input that has nothing
/// more to come (a UDP datagram), handing each response to `respond` as memcached cuts
/// them into datagram messages: one per command that answers, and one per key of a
/// multi-get, the last with `END`. Keys missed before the first hit of a multi-get are one
/// empty message, later misses none: memcached sends a response list whose head is empty
/// as a bare header, and an empty one after a sent one goes with it. `buf` is where a response is built; it holds one at a time, so the
/// memory a datagram can claim is one value, not the sum of the values it asks for. A
/// request cut short at the end of `payload` is dropped, and so is the reply to one whose
/// refused data block goes past its end (memcached answers once it has swallowed the block).
pub fn run_all(
    payload: &[u8],
    shared: &Context,
    counters: &Counters,
    buf: &mut Vec<u8>,
    mut respond: impl FnMut(&[u8]),
) {
    let binary = payload.first() == Some(&0x80);
    let mut session = Session::default();
    let mut stacked = false;
    let mut rest = None;
    let mut pos = 0;
    let mut resume = 0;
    // Whether the multi-get under way has sent a message yet.
    let mut sent = false;
    while pos < payload.len() {
        buf.clear();
        let turn = Turn {
            resume,
            room: usize::MAX,
            replies: usize::MAX,
            intake: None,
            pause_per_key: true,
        };
        let input = &payload[pos..];
        let lent = Lent {
            out: buf,
            session: &mut session,
            rest: &mut rest,
            stacked: &mut stacked,
        };
        let step = if binary {
            binary::step(input, shared, counters, lent, turn)
        } else {
            text::step(input, shared, counters, lent, turn)
        };
        // With no room limit a value is written whole; a piece left over is finished here.
        while rest.is_some() {
            if value_rest::continue_value(&mut rest, shared, buf, usize::MAX).is_err() {
                return; // the item changed under a value being sent: send nothing more
            }
        }
        if !buf.is_empty() || (matches!(step, Step::Paused(_)) && !sent) {
            respond(buf);
            sent = true;
        }
        match step {
            Step::Incomplete => return,
            Step::Paused(done) => resume = done,
            Step::Done {
                consumed,
                swallow,
                after_swallow,
                ..
            } => {
                resume = 0;
                sent = false;
                pos += consumed;
                if swallow > 0 {
                    if swallow > payload.len() - pos {
                        return; // the rest of the block would come in datagrams never read
                    }
                    pos += swallow;
                    if !after_swallow.is_empty() {
                        respond(after_swallow);
                    }
                }
            }
        }
    }
}
