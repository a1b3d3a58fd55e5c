//! The text protocol: requests from [`proto::text::decode`] become commands; outcomes
//! become text replies. noreply is this encoder's rule alone: a request in noreply mode
//! gets nothing at all, whatever its outcome.
//!
//! With `-Y`, a connection must first authenticate with a `set` whose data is `user
//! password` ([`proto::text_auth`], [`crate::cmd::auth::authfile_login`]); until then every
//! other request is refused.

use proto::text::{self, Decoded, Reply as Line, Request};
use proto::{ClientError, ProtoError, ServerError};
use slabcache::{ArithError, DeleteResult, StoreError, StoreOptions};

use super::step::{Lent, Step, Turn};
use super::value_rest::{append_value, ValueRest, ValueSink};
use crate::auth::Session;
use crate::cluster::ConfigChangeError;
use crate::cmd::store::Refusal;
use crate::cmd::{self, Action, Command, Keys, Metadump, Outcome, Reply, StatsReply};
use crate::context::Context;
use crate::stats::{bump, Counters};

/// Decode and execute one text request from the front of `input`.
///
/// `conn.stacked` tracks what memcached calls its response stack: whether replies of earlier
/// commands of this batch are still queued. memcached writes them out after each
/// get-family command and `mn` (and whenever the input runs dry, where the connection
/// clears the flag); `lru_crawler metadump` is refused while it is set.
///
/// `turn` is what the connection allows this request: where a paused multi-get resumes,
/// the reply bytes before it pauses again, and the replies it may hold. A large value
/// hit leaves its remaining pieces in `conn.rest`.
pub fn step(input: &[u8], ctx: &Context, counters: &Counters, conn: Lent<'_>, turn: Turn) -> Step {
    let Lent {
        out,
        session,
        rest,
        stacked,
    } = conn;
    if ctx.config.auth_file.is_some() && !session.authenticated {
        return login(input, ctx, counters, out, session);
    }
    let was_stacked = std::mem::replace(stacked, true);
    match text::decode(input, &ctx.limits) {
        Decoded::Incomplete => {
            *stacked = was_stacked;
            Step::Incomplete
        }
        Decoded::Meta(meta) => super::meta::step(meta, ctx, counters, out, turn, rest),
        Decoded::Error {
            error,
            consumed,
            swallow,
            close,
            noreply,
            unlink,
        } => {
            let refusal = match error {
                ProtoError::Server(ServerError::ObjectTooLarge) => Refusal::TooLarge,
                ProtoError::Client(ClientError::BadDataChunk) => Refusal::BadDataChunk,
                _ => Refusal::Uncounted,
            };
            if let (Refusal::TooLarge, Some(key)) = (refusal, unlink) {
                // memcached counts a set by prefix before it finds the item too large.
                ctx.detail.record(key, crate::stats::detail::PrefixOp::Set);
            }
            cmd::store::refused(ctx, counters, refusal, unlink);
            let reply = if noreply { &b""[..] } else { error.as_wire() };
            Step::refused(consumed, swallow, reply, close, out)
        }
        Decoded::Request { request, consumed } => {
            if matches!(
                request,
                Request::Get { .. } | Request::GetAndTouch { .. } | Request::MetaNoop
            ) {
                *stacked = false;
            }
            let limit = out.len().saturating_add(turn.room);
            let mut reply = TextReply {
                out,
                rest,
                limit,
                pause_per_key: turn.pause_per_key,
                noreply: request.noreply(),
                with_cas: matches!(
                    request,
                    Request::Get { with_cas: true, .. } | Request::GetAndTouch { with_cas: true, .. }
                ),
            };
            let mut command =
                cmd::store::with_intake(command(request, was_stacked, turn.resume), turn.intake);
            if let Command::Get(g) = &mut command {
                // memcached needs a response object per key, and gives up the whole line
                // when it runs out of them.
                if turn.replies != usize::MAX && g.refused.is_none() && g.keys.clone().count() > turn.replies
                {
                    bump(&counters.response_obj_oom, 1);
                    g.refused = Some(ServerError::OutOfMemoryWritingGet.into());
                }
            }
            match cmd::execute(command, ctx, counters, &mut reply) {
                Action::Paused(done) => Step::Paused(done),
                action => Step::done(consumed, action),
            }
        }
    }
}

/// A request on a connection that must authenticate first (`-Y`).
fn login(input: &[u8], ctx: &Context, counters: &Counters, out: &mut Vec<u8>, session: &mut Session) -> Step {
    use proto::text_auth::{self, AuthDecoded};
    match text_auth::decode(input) {
        AuthDecoded::Incomplete => Step::Incomplete,
        AuthDecoded::Close => Step::done(0, cmd::Action::Close),
        AuthDecoded::Refused { reply, consumed } => {
            out.extend_from_slice(reply);
            Step::done(consumed, cmd::Action::Continue)
        }
        AuthDecoded::Credentials {
            user,
            password,
            consumed,
        } => {
            let ok = cmd::auth::authfile_login(user, password, ctx, session, counters);
            out.extend_from_slice(if ok {
                text_auth::AUTHENTICATED
            } else {
                text_auth::AUTH_FAILURE
            });
            Step::done(consumed, cmd::Action::Continue)
        }
    }
}

/// The next class of an `lru_crawler metadump` in progress, or its `END`. Returns false once
/// the dump is complete.
pub fn metadump(dump: &mut Metadump, ctx: &Context, out: &mut Vec<u8>) -> bool {
    let more = dump.step(ctx, |item| text::write_metadump_item(out, item));
    if !more {
        text::write_end(out);
    }
    more
}

/// The command a text request asks for.
fn command(request: Request<'_>, pipelined: bool, resume: usize) -> Command<'_> {
    let get = |keys, touch, refused: bool| {
        let refused = refused.then(|| ClientError::BadCommandLineFormat.into());
        Command::Get(cmd::get::Get {
            keys: Keys::Line(keys),
            touch,
            refused,
            meta: None,
            skip: resume,
        })
    };
    match request {
        Request::Get { keys, .. } => get(keys, None, false),
        Request::GetAndTouch { exptime, keys, .. } => get(keys, Some(exptime), false),
        Request::GetRefused { keys_before, touch } => get(keys_before, touch, true),
        Request::Store {
            mode,
            key,
            flags,
            exptime,
            value,
            cas_unique,
            ..
        } => Command::Store(cmd::store::Store {
            mode: cmd::store::engine_mode(mode, (mode == text::StoreMode::Cas).then_some(cas_unique)),
            key,
            flags,
            exptime,
            value,
            opts: StoreOptions::default(),
            detail: true,
            intake: None,
        }),
        Request::Delete { key, .. } => Command::Delete(cmd::delete::Delete::plain(key)),
        Request::Arith { op, key, delta, .. } => {
            Command::Arith(cmd::arith::Arith::plain(op == text::ArithOp::Incr, key, delta))
        }
        Request::Touch { key, exptime, .. } => Command::Touch { key, exptime },
        Request::FlushAll { delay, .. } => Command::Flush(cmd::control::Flush {
            delay,
            count_refused: true,
        }),
        Request::Version => Command::Version,
        Request::Verbosity { level, .. } => Command::Verbosity { level },
        Request::Quit => Command::Quit,
        Request::Stats(which) => Command::Stats(which),
        Request::CacheMemlimit { megabytes, .. } => Command::CacheMemlimit { megabytes },
        Request::Shutdown { graceful } => Command::Shutdown { graceful },
        Request::ConfigGet { key } => Command::ConfigGet { key },
        Request::ConfigSet {
            key, flags, value, ..
        } => Command::ConfigSet { key, flags, value },
        Request::ConfigDelete { key, .. } => Command::ConfigDelete { key },
        Request::MetaNoop => Command::Noop,
        Request::Admin { request, .. } => Command::Admin { request, pipelined },
        Request::Refused { gate, error, .. } => Command::Refused { gate, error },
    }
}

/// The text encoder for one request.
pub struct TextReply<'o> {
    pub out: &'o mut Vec<u8>,
    /// A large value's pieces still to write (see [`super::value_rest`]).
    pub rest: &'o mut Option<ValueRest>,
    /// A multi-get pauses once `out` is longer than this; a longer value is written in
    /// pieces (see `value_rest`).
    pub limit: usize,
    /// A multi-get pauses after every key ([`super::Turn::pause_per_key`]).
    pub pause_per_key: bool,
    /// memcached's noreply mode: send nothing.
    pub noreply: bool,
    /// gets, gats: `VALUE` lines carry the cas.
    pub with_cas: bool,
}

impl Reply for TextReply<'_> {
    fn full(&self) -> bool {
        self.pause_per_key || self.out.len() > self.limit || self.rest.is_some()
    }

    fn writing_value(&self) -> bool {
        self.rest.is_some()
    }

    fn send(&mut self, outcome: Outcome<'_>) {
        if let Outcome::Message(line) = &outcome {
            self.out.extend_from_slice(line.as_bytes());
            return;
        }
        if self.noreply {
            return;
        }
        let out = &mut *self.out;
        let line = match outcome {
            Outcome::Hit(hit) => {
                let cas = self.with_cas.then_some(hit.cas);
                text::write_value_header(out, hit.key, hit.flags, hit.value.len(), cas);
                let sink = ValueSink {
                    out,
                    limit: self.limit,
                    rest: self.rest,
                };
                append_value(sink, hit.key, hit.cas, &hit.value, b"\r\n");
                return;
            }
            Outcome::Miss { .. } | Outcome::Quit | Outcome::Debug(_) => return,
            Outcome::GetEnd => Line::End,
            Outcome::Touched(found) => {
                if found.is_some() {
                    Line::Touched
                } else {
                    Line::NotFound
                }
            }
            Outcome::Stored(_, result) => match result {
                Ok(_) => Line::Stored,
                Err(StoreError::NotStored) => Line::NotStored,
                Err(StoreError::Exists) => Line::Exists,
                Err(StoreError::NotFound) => Line::NotFound,
                Err(StoreError::TooLarge) => Line::ServerError(ServerError::ObjectTooLarge),
                Err(StoreError::OutOfMemory) => Line::ServerError(ServerError::OutOfMemoryStoring),
                Err(StoreError::BadKey) => Line::ClientError(ClientError::BadCommandLineFormat),
            },
            Outcome::Deleted(DeleteResult::Deleted) => Line::Deleted,
            Outcome::Deleted(_) => Line::NotFound,
            Outcome::Arith(result) => match result {
                Ok(done) => Line::Number(done.value),
                // Without a compare cas there is no mismatch.
                Err(ArithError::NotFound | ArithError::Exists) => Line::NotFound,
                Err(ArithError::NonNumeric) => Line::ClientError(ClientError::NonNumericValue),
                Err(ArithError::OutOfMemory | ArithError::CreateFailed) => {
                    Line::ServerError(ServerError::OutOfMemory)
                }
            },
            Outcome::Ok => Line::Ok,
            Outcome::FlushDisabled => Line::ClientError(ClientError::FlushAllNotAllowed),
            Outcome::Failed(e) => Line::Proto(e),
            Outcome::Version(v) => Line::Version(v),
            Outcome::Message(_) => return,
            Outcome::Noop => Line::MetaNoop,
            Outcome::Stats(stats) => return stats_reply(out, stats),
            Outcome::Config(key, found) => {
                match found {
                    Some((flags, body)) => text::write_config(out, key, flags, &body),
                    None => text::write_end(out),
                }
                return;
            }
            Outcome::ConfigChanged(set, result) => match result {
                Ok(()) if set => Line::Stored,
                Ok(()) => Line::Deleted,
                Err(ConfigChangeError::Disabled) => Line::Error,
                Err(ConfigChangeError::NotFound) => Line::NotFound,
                Err(ConfigChangeError::Invalid) => Line::ClientError(ClientError::BadDataChunk),
            },
        };
        line.encode(out);
    }
}

fn stats_reply(out: &mut Vec<u8>, stats: StatsReply) {
    match stats {
        StatsReply::Rows { rows, end } => {
            for (name, value) in rows {
                text::write_stat(out, name, value);
            }
            if end {
                text::write_end(out);
            }
        }
        StatsReply::Reset => Line::Reset.encode(out),
        StatsReply::DetailToggled => Line::Ok.encode(out),
        // The `PREFIX ...` lines and their `END`.
        StatsReply::DetailDump(dump) => out.extend_from_slice(&dump),
        StatsReply::Cachedump(Ok(items)) => {
            for (key, size, exptime) in items {
                out.extend_from_slice(b"ITEM ");
                out.extend_from_slice(&key);
                out.extend_from_slice(format!(" [{size} b; {exptime} s]\r\n").as_bytes());
            }
            text::write_end(out);
        }
        StatsReply::Cachedump(Err(e)) | StatsReply::Refused(e) => Line::Proto(e).encode(out),
    }
}
