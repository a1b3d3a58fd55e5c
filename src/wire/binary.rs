//! The binary protocol, byte-exact with memcached 1.6.18 (its quirks are listed in
//! `proto::binary`'s docs, which decode the frames and write the packets).
//!
//! Every reply echoes the request's opcode (quiet ones included) and opaque; successful
//! stores, deletes and incr/decr carry the item's new cas. Quiet opcodes drop exactly what
//! memcached drops ([`binary::suppresses`]), decided in this encoder only: misses of the
//! get family, successes of the others; errors are always sent. A `Noop` is answered like
//! any request, which ends a `GetQ`/`GetKQ` batch since replies go out in request order.
//!
//! Beyond 1.6.18, the ElastiCache configuration opcodes (0x60..=0x67) are served from the
//! cluster state, as `config get/set/delete` are on the text protocol; 1.6.18 answers them
//! `Unknown command`. `Verbosity` is answered `Unknown command`, as are the SASL opcodes
//! without `-S` (as 1.6.18 does without SASL), but the frame is skipped exactly, where
//! memcached skips the body length once more from the end of the key and loses sync.
//!
//! With `-S`, a connection that has not authenticated may only list the mechanisms,
//! authenticate and ask the version; anything else gets `Auth failure.` and the connection
//! is closed ([`binary::refuse_unauthenticated`], [`crate::cmd::auth`]).

use proto::binary::{self, BinCommand, BinDecoded, BinRequest, Opcode, Status, ARITH_NO_CREATE};
use proto::text::{StatsDetail, StatsRequest};
use slabcache::{ArithError, DeleteResult, StoreError, StoreMode, StoreOptions};

use super::step::{Lent, Step, Turn};
use super::value_rest::{append_value, ValueRest, ValueSink};
use crate::auth::Session;
use crate::cluster::ConfigChangeError;
use crate::cmd::auth::SaslReply;
use crate::cmd::store::Refusal;
use crate::cmd::{self, Action, Command, Keys, Outcome, Reply, StatsReply};
use crate::context::Context;
use crate::stats::Counters;

/// Decode and execute one request frame from the front of `input`; `conn` lends the
/// connection's reply buffer, authentication state and value pieces.
pub fn step(input: &[u8], ctx: &Context, counters: &Counters, conn: Lent<'_>, turn: Turn) -> Step {
    // `conn.stacked` is the text protocol's alone.
    let Lent {
        out, session, rest, ..
    } = conn;
    if ctx.config.sasl && !session.authenticated {
        if let Some(refused) = binary::refuse_unauthenticated(input) {
            refused.write_reply(out);
            return Step::done(refused.consumed, Action::Close);
        }
    }
    match binary::decode(input, &ctx.limits) {
        BinDecoded::Incomplete => Step::Incomplete,
        BinDecoded::Request { request, consumed } => {
            if ctx.config.sasl {
                if let Some(reply) = sasl(&request, session, counters) {
                    write_sasl(out, &request, reply);
                    return Step::done(consumed, Action::Continue);
                }
            }
            let mut reply = BinaryReply {
                limit: out.len().saturating_add(turn.room),
                out,
                rest,
                opcode: request.opcode,
                opaque: request.opaque,
            };
            let action =
                match command(&request, ctx, turn.resume).map(|c| cmd::store::with_intake(c, turn.intake)) {
                    Ok(command) => cmd::execute(command, ctx, counters, &mut reply),
                    Err(status) => {
                        reply.status(status, 0);
                        Action::Continue
                    }
                };
            match action {
                Action::Paused(done) => Step::Paused(done),
                action => Step::done(consumed, action),
            }
        }
        BinDecoded::Error(e) => {
            cmd::store::refused(ctx, counters, Refusal::Uncounted, e.unlink);
            // memcached answers before it swallows the rest of a refused frame; nothing
            // else can be written in between, so the reply goes out now.
            e.write_reply(out);
            Step::Done {
                consumed: e.consumed,
                swallow: e.swallow,
                after_swallow: b"",
                action: if e.close {
                    Action::CloseOnError
                } else {
                    Action::Continue
                },
            }
        }
    }
}

/// A SASL command's reply, or `None` for any other command.
fn sasl(req: &BinRequest<'_>, session: &mut Session, counters: &Counters) -> Option<SaslReply> {
    Some(match req.command {
        BinCommand::SaslListMechs => cmd::auth::list_mechanisms(session),
        BinCommand::Sasl {
            step,
            mechanism,
            data,
        } => cmd::auth::authenticate(step, mechanism, data, session, counters),
        _ => return None,
    })
}

fn write_sasl(out: &mut Vec<u8>, req: &BinRequest<'_>, reply: SaslReply) {
    let (op, opaque) = (req.opcode.as_u8(), req.opaque);
    match reply {
        SaslReply::Mechanisms(list) => {
            binary::write_response(out, op, Status::NoError, opaque, 0, &[], &[], &list)
        }
        SaslReply::Authenticated => {
            binary::write_response(out, op, Status::NoError, opaque, 0, &[], &[], b"Authenticated")
        }
        SaslReply::Continue(challenge) => {
            binary::write_response(out, op, Status::AuthContinue, opaque, 0, &[], &[], &challenge)
        }
        SaslReply::Failed => binary::write_error(out, op, Status::AuthError, opaque),
        SaslReply::InvalidArguments => binary::write_error(out, op, Status::InvalidArguments, opaque),
    }
}

/// The command a frame asks for, or the status that refuses it outright.
fn command<'a>(req: &BinRequest<'a>, ctx: &Context, resume: usize) -> Result<Command<'a>, Status> {
    let header_cas = (req.cas != 0).then_some(req.cas);
    let get = |key, touch| {
        Command::Get(cmd::get::Get {
            keys: Keys::One(Some(key)),
            touch,
            refused: None,
            meta: None,
            skip: resume,
        })
    };
    Ok(match req.command {
        BinCommand::Get { key } => get(key, None),
        BinCommand::Gat { key, exptime } => get(key, Some(i64::from(exptime))),
        BinCommand::Touch { key, exptime } => Command::Touch {
            key,
            exptime: i64::from(exptime),
        },
        BinCommand::Store {
            mode,
            key,
            flags,
            exptime,
            value,
        } => {
            // memcached turns set, add and replace with a header cas into a compare-and-swap
            // (so an add with a cas on a missing key is "not found"); append and prepend
            // compare it. With CAS disabled its items cannot hold the request's cas, so it
            // is ignored.
            let cas = header_cas.filter(|_| ctx.config.use_cas);
            Command::Store(cmd::store::Store {
                mode: cmd::store::engine_mode(mode, cas),
                key,
                flags,
                exptime: i64::from(exptime),
                value,
                opts: StoreOptions {
                    compare_cas: cas,
                    ..StoreOptions::default()
                },
                detail: true,
                intake: None,
            })
        }
        BinCommand::Delete { key } => Command::Delete(cmd::delete::Delete {
            compare_cas: header_cas,
            ..cmd::delete::Delete::plain(key)
        }),
        BinCommand::Arith {
            incr,
            key,
            delta,
            initial,
            exptime,
        } => Command::Arith(cmd::arith::Arith {
            compare_cas: header_cas,
            create: (exptime != ARITH_NO_CREATE).then_some((initial, i64::from(exptime))),
            ..cmd::arith::Arith::plain(incr, key, delta)
        }),
        BinCommand::Quit => Command::Quit,
        BinCommand::Flush { delay } => Command::Flush(cmd::control::Flush {
            delay: i64::from(delay.unwrap_or(0)),
            // memcached refuses with an auth error and does not count it.
            count_refused: false,
        }),
        BinCommand::Noop => Command::Noop,
        BinCommand::Version => Command::Version,
        BinCommand::Stat { group } => Command::Stats(stats_group(group).ok_or(Status::KeyNotFound)?),
        BinCommand::Verbosity { .. } | BinCommand::SaslListMechs | BinCommand::Sasl { .. } => {
            return Err(Status::UnknownCommand)
        }
        BinCommand::ConfigGet { key } => Command::ConfigGet { key },
        BinCommand::ConfigSet { key, flags, value } => Command::ConfigSet { key, flags, value },
        BinCommand::ConfigDelete { key } => Command::ConfigDelete { key },
    })
}

/// A Stat group name, matched as memcached matches them (`reset`, `settings`, `detail` by
/// prefix, the others exactly). Unknown groups (`conns` and `cachedump` included, which
/// memcached serves on text only) are `None`: `Not found`.
fn stats_group(group: &[u8]) -> Option<StatsRequest> {
    Some(match group {
        b"" => StatsRequest::General,
        g if g.starts_with(b"reset") => StatsRequest::Reset,
        g if g.starts_with(b"settings") => StatsRequest::Settings,
        g if g.starts_with(b"detail") => StatsRequest::Detail(match &g[6..] {
            d if d.starts_with(b" dump") => StatsDetail::Dump,
            d if d.starts_with(b" on") => StatsDetail::On,
            d if d.starts_with(b" off") => StatsDetail::Off,
            _ => return None,
        }),
        b"items" => StatsRequest::Items,
        b"slabs" => StatsRequest::Slabs,
        b"sizes" => StatsRequest::Sizes,
        b"sizes_enable" => StatsRequest::SizesEnable,
        b"sizes_disable" => StatsRequest::SizesDisable,
        b"hotkeys" => StatsRequest::Hotkeys,
        _ => return None,
    })
}

/// The binary encoder for one request.
pub struct BinaryReply<'o> {
    pub out: &'o mut Vec<u8>,
    /// A large value's pieces still to write (see [`super::value_rest`]).
    pub rest: &'o mut Option<ValueRest>,
    /// A value that would take `out` past this length goes out in pieces.
    pub limit: usize,
    pub opcode: Opcode,
    pub opaque: u32,
}

impl BinaryReply<'_> {
    /// Send `status` (with `cas` on success) unless the opcode is quiet about it.
    fn status(&mut self, status: Status, cas: u64) {
        if binary::suppresses(self.opcode, status) {
            return;
        }
        if status == Status::NoError {
            binary::write_status_only(self.out, self.opcode, status, self.opaque, cas);
        } else {
            binary::write_error(self.out, self.opcode, status, self.opaque);
        }
    }

    /// memcached's out-of-memory reply: status 0x82 with a text naming what failed.
    fn out_of_memory(&mut self, what: &[u8]) {
        let op = self.opcode.as_u8();
        binary::write_response(self.out, op, Status::OutOfMemory, self.opaque, 0, &[], &[], what);
    }

    fn miss(&mut self, key: &[u8]) {
        if !binary::suppresses(self.opcode, Status::KeyNotFound) {
            binary::write_get_miss(self.out, self.opcode, self.opaque, key);
        }
    }
}

impl Reply for BinaryReply<'_> {
    fn full(&self) -> bool {
        self.rest.is_some()
    }

    fn writing_value(&self) -> bool {
        self.rest.is_some()
    }

    fn send(&mut self, outcome: Outcome<'_>) {
        let (opcode, opaque) = (self.opcode, self.opaque);
        match outcome {
            Outcome::Hit(hit) => {
                binary::write_get_hit_head(
                    self.out,
                    opcode,
                    opaque,
                    hit.cas,
                    hit.flags,
                    hit.key,
                    hit.value.len(),
                );
                let sink = ValueSink {
                    out: self.out,
                    limit: self.limit,
                    rest: self.rest,
                };
                append_value(sink, hit.key, hit.cas, &hit.value, b"");
            }
            Outcome::Miss { key } => self.miss(key),
            Outcome::Touched(Some((cas, flags))) => {
                binary::write_touch_hit(self.out, opcode, opaque, cas, flags)
            }
            Outcome::Touched(None) => self.miss(&[]),
            Outcome::Stored(mode, result) => {
                let status = match result {
                    Ok(cas) => return self.status(Status::NoError, cas),
                    Err(StoreError::Exists) => Status::KeyExists,
                    Err(StoreError::NotFound) => Status::KeyNotFound,
                    Err(StoreError::TooLarge) => Status::ValueTooLarge,
                    Err(StoreError::OutOfMemory) => {
                        return self.out_of_memory(b"Out of memory allocating item")
                    }
                    // A refused add means the key exists, a refused replace that it does not.
                    Err(StoreError::NotStored | StoreError::BadKey) => match mode {
                        StoreMode::Add => Status::KeyExists,
                        StoreMode::Replace => Status::KeyNotFound,
                        _ => Status::ItemNotStored,
                    },
                };
                self.status(status, 0);
            }
            Outcome::Deleted(result) => self.status(
                match result {
                    DeleteResult::Deleted | DeleteResult::Invalidated => Status::NoError,
                    DeleteResult::NotFound => Status::KeyNotFound,
                    DeleteResult::Exists => Status::KeyExists,
                },
                0,
            ),
            Outcome::Arith(result) => match result {
                Ok(done) => {
                    if !binary::suppresses(opcode, Status::NoError) {
                        binary::write_arith(self.out, opcode, opaque, done.cas, done.value);
                    }
                }
                Err(ArithError::NotFound) => self.status(Status::KeyNotFound, 0),
                Err(ArithError::Exists) => self.status(Status::KeyExists, 0),
                Err(ArithError::NonNumeric) => self.status(Status::NonNumeric, 0),
                Err(ArithError::OutOfMemory) => self.out_of_memory(b"Out of memory incrementing value"),
                Err(ArithError::CreateFailed) => self.out_of_memory(b"Out of memory allocating new item"),
            },
            Outcome::Ok | Outcome::Noop | Outcome::Quit => self.status(Status::NoError, 0),
            Outcome::FlushDisabled => self.status(Status::AuthError, 0),
            Outcome::Version(v) => binary::write_version(self.out, opaque, v.as_bytes()),
            Outcome::Stats(stats) => stats_reply(self.out, opaque, stats),
            Outcome::Config(key, Some((flags, body))) => {
                binary::write_config_hit(self.out, opcode, opaque, 0, flags, key, &body);
            }
            Outcome::Config(key, None) => self.miss(key),
            Outcome::ConfigChanged(_, result) => self.status(
                // The binary twin of the text replies: `ERROR` (disabled) is an unknown
                // command, `CLIENT_ERROR bad data chunk` invalid arguments.
                match result {
                    Ok(()) => Status::NoError,
                    Err(ConfigChangeError::Disabled) => Status::UnknownCommand,
                    Err(ConfigChangeError::NotFound) => Status::KeyNotFound,
                    Err(ConfigChangeError::Invalid) => Status::InvalidArguments,
                },
                0,
            ),
            // Text-only outcomes; no binary frame maps to a command that produces them.
            Outcome::GetEnd | Outcome::Debug(_) | Outcome::Failed(_) | Outcome::Message(_) => {}
        }
    }
}

/// Stat packets: one per row, then the empty one that ends a listing (also the whole
/// reply to `reset` and `detail on|off`).
fn stats_reply(out: &mut Vec<u8>, opaque: u32, stats: StatsReply) {
    match stats {
        StatsReply::Rows { rows, end } => {
            for (name, value) in rows {
                binary::write_stat(out, opaque, name.as_bytes(), value.as_bytes());
            }
            if end {
                binary::write_stat_end(out, opaque);
            }
        }
        StatsReply::DetailDump(dump) => {
            binary::write_stat(out, opaque, b"detailed", &dump);
            binary::write_stat_end(out, opaque);
        }
        StatsReply::Reset | StatsReply::DetailToggled | StatsReply::Cachedump(_) | StatsReply::Refused(_) => {
            binary::write_stat_end(out, opaque)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_success_and_loud_errors() {
        let mut out = Vec::new();
        let mut reply = BinaryReply {
            out: &mut out,
            rest: &mut None,
            limit: usize::MAX,
            opcode: Opcode::SetQ,
            opaque: 9,
        };
        reply.status(Status::NoError, 5);
        assert!(reply.out.is_empty());
        reply.status(Status::KeyExists, 0);
        assert_eq!(out[1], Opcode::SetQ.as_u8());
        assert_eq!(&out[12..16], &9u32.to_be_bytes());
        assert!(out.ends_with(b"Data exists for key."));
    }
}
