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
/// more to come (a UDP datagram), appending the replies to `out`, with no output bound. A
/// request cut short at the end of `payload` is dropped.
pub fn run_all(payload: &[u8], shared: &Context, counters: &Counters, out: &mut Vec<u8>) {
    let binary = payload.first() == Some(&0x80);
    let mut session = Session::default();
    let mut stacked = false;
    let mut rest = None;
    let mut pos = 0;
    let mut resume = 0;
    while pos < payload.len() {
        let turn = Turn {
            resume,
            room: usize::MAX,
            replies: usize::MAX,
            intake: None,
        };
        let input = &payload[pos..];
        let lent = Lent {
            out,
            session: &mut session,
            rest: &mut rest,
            stacked: &mut stacked,
        };
        let step = if binary {
            binary::step(input, shared, counters, lent, turn)
        } else {
            text::step(input, shared, counters, lent, turn)
        };
        // A value larger than one turn writes is continued here: nothing limits a turn.
        while rest.is_some() {
            if value_rest::continue_value(&mut rest, shared, out, usize::MAX).is_err() {
                return; // the item changed under a value being sent: send nothing more
            }
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
                pos += consumed;
                if swallow > 0 {
                    // The refused data block is in `payload` or nowhere.
                    pos += swallow.min(payload.len() - pos);
                    out.extend_from_slice(after_swallow);
                }
            }
        }
    }
}
