//! What one decode-and-execute step did, for the connection.

use crate::auth::Session;
use crate::cmd::Action;
use crate::wire::value_rest::ValueRest;

/// The result of decoding and executing (at most) one request.
pub enum Step {
    /// No complete request buffered.
    Incomplete,
    /// A multi-get filled the output bound after this many of its keys: the request is
    /// not consumed, and is decoded again to resume with its next key.
    Paused(usize),
    Done {
        /// Input bytes used.
        consumed: usize,
        /// Further input bytes to discard as they arrive.
        swallow: usize,
        /// Reply to send once they have been discarded.
        after_swallow: &'static [u8],
        action: Action,
    },
}

impl Step {
    /// A refused request: `reply` goes out now, or, when `swallow` bytes of its data
    /// block are still to be discarded, once they have been (memcached answers after the
    /// swallow).
    pub fn refused(
        consumed: usize,
        swallow: usize,
        reply: &'static [u8],
        close: bool,
        out: &mut Vec<u8>,
    ) -> Step {
        let action = if close {
            Action::CloseOnError
        } else {
            Action::Continue
        };
        if swallow > 0 {
            return Step::Done {
                consumed,
                swallow,
                after_swallow: reply,
                action,
            };
        }
        out.extend_from_slice(reply);
        Step::done(consumed, action)
    }

    pub fn done(consumed: usize, action: Action) -> Step {
        Step::Done {
            consumed,
            swallow: 0,
            after_swallow: b"",
            action,
        }
    }
}

/// What the connection allows the request at the front of its input.
#[derive(Clone, Copy)]
pub struct Turn<'a> {
    /// Keys of this multi-get answered by earlier turns (see [`Step::Paused`]).
    pub resume: usize,
    /// Reply bytes the connection takes before a multi-get pauses.
    pub room: usize,
    /// Replies ("response objects") the connection can still hold: bounded only with
    /// `-o read_buf_mem_limit`, as memcached bounds them (a multi-get with more keys is
    /// refused `out of memory writing get response`).
    pub replies: usize,
    /// The item the value of the store at the front went into as it arrived (the input
    /// then holds the store's header with a value length of 0; see `crate::net::conn`).
    pub intake: Option<&'a crate::cmd::store::Intake>,
    /// UDP: a multi-get pauses after every key but the last, so each key's reply (the
    /// last one with `END`) can go out as its own datagram message, as memcached frames
    /// them (see [`crate::wire::run_all`]).
    pub pause_per_key: bool,
}

/// What a step may change of its connection, lent for that step only: each a field of
/// the connection borrowed on its own, so the read buffer the request is decoded from
/// stays borrowed beside them.
pub struct Lent<'a> {
    /// The reply buffer.
    pub out: &'a mut Vec<u8>,
    /// Authentication state (`-S`, `-Y`).
    pub session: &'a mut Session,
    /// A large value of a get reply still to be written (see [`crate::wire::value_rest`]).
    pub rest: &'a mut Option<ValueRest>,
    /// Text only: replies of earlier commands of this batch are queued (see
    /// [`crate::wire::text::step`]).
    pub stacked: &'a mut bool,
}
