//! The meta commands (`mg ms md ma me`): a [`proto::meta::MetaRequest`] becomes a command
//! whose meta-only flags ride along as options; outcomes become meta replies, with the
//! `q`, `O` and `k` rules (applied by `proto::meta`'s writers) in this one encoder.
//!
//! The `E` (explicit new cas) and `x` (`md`: drop only the value) flags of later memcached
//! releases are refused exactly as 1.6.18 refuses them: an explicit cas would also defeat
//! `flush_all`, which slabcached decides by comparing cas uniques.

use proto::meta::{
    self, ArithMode, ArithOutcome, DeleteOutcome, ItemMeta, MetaCommand, MetaDecoded, MetaError, MetaOp,
    MetaRequest, SetOutcome, StoreMode,
};
use slabcache::{ArithError, DeleteResult, StoreError, StoreOptions};

use super::step::{Step, Turn};
use super::value_rest::{append_value, ValueRest, ValueSink};
use crate::cmd::store::Refusal;
use crate::cmd::{self, Action, Command, Keys, Outcome, Reply};
use crate::context::Context;
use crate::stats::Counters;

/// memcached's reply when `ma` cannot allocate the item `N` asked it to create.
const CREATE_OUT_OF_MEMORY: &[u8] = b"SERVER_ERROR Out of memory allocating new item\r\n";

/// Execute one decoded meta command (or answer its decoding error).
pub fn step(
    decoded: MetaDecoded<'_>,
    ctx: &Context,
    counters: &Counters,
    out: &mut Vec<u8>,
    turn: Turn,
    rest: &mut Option<ValueRest>,
) -> Step {
    match decoded {
        MetaDecoded::Incomplete => Step::Incomplete,
        MetaDecoded::Request { request, consumed } => {
            if let Some(e) = unsupported_flag(&request) {
                e.write(out);
            } else {
                let mut reply = MetaReply {
                    limit: out.len().saturating_add(turn.room),
                    out,
                    rest,
                    req: &request,
                };
                if let Action::Paused(done) = cmd::execute(
                    cmd::store::with_intake(command(&request, turn.resume), turn.intake),
                    ctx,
                    counters,
                    &mut reply,
                ) {
                    return Step::Paused(done);
                }
            }
            Step::done(consumed, Action::Continue)
        }
        MetaDecoded::Error {
            error,
            consumed,
            swallow,
            close,
            unlink,
        } => {
            let refusal = match error {
                MetaError::TOO_LARGE => Refusal::TooLarge,
                // memcached counts an `ms` whose data block it read before checking its end.
                MetaError::BAD_DATA_CHUNK => Refusal::BadDataChunk,
                _ => Refusal::Uncounted,
            };
            cmd::store::refused(ctx, counters, refusal, unlink.as_ref().map(|k| k.bytes()));
            Step::refused(consumed, swallow, error.line(), close, out)
        }
    }
}

/// The error memcached 1.6.18 gives a flag it does not know but the decoder accepts.
fn unsupported_flag(req: &MetaRequest<'_>) -> Option<MetaError> {
    if !req.flags.order().iter().any(|&f| f == b'E' || f == b'x') {
        return None;
    }
    Some(match req.command() {
        MetaCommand::Delete | MetaCommand::Arithmetic => MetaError::InvalidOrDuplicateFlag,
        _ => MetaError::InvalidFlag,
    })
}

/// The command a meta request asks for.
fn command<'r>(req: &'r MetaRequest<'_>, resume: usize) -> Command<'r> {
    let f = &req.flags;
    let key = req.key.bytes();
    let ttl = f.ttl.map(i64::from);
    match req.op {
        MetaOp::Get => Command::Get(cmd::get::Get {
            keys: Keys::One(Some(key)),
            touch: ttl,
            refused: None,
            meta: Some(f),
            skip: resume,
        }),
        MetaOp::Set { mode, data } => Command::Store(cmd::store::Store {
            // A compare cas turns set and replace into cas; add ignores it; append and
            // prepend check it themselves (StoreOptions::compare_cas).
            mode: cmd::store::engine_mode(
                mode,
                f.compare_cas
                    .filter(|_| matches!(mode, StoreMode::Set | StoreMode::Replace)),
            ),
            key,
            flags: f.client_flags.unwrap_or(0),
            exptime: ttl.unwrap_or(0),
            value: data,
            opts: StoreOptions {
                compare_cas: f.compare_cas,
                invalidate: f.invalidate,
                key_binary: req.key.is_binary(),
            },
            detail: false,
            intake: None,
        }),
        MetaOp::Delete => Command::Delete(cmd::delete::Delete {
            key,
            compare_cas: f.compare_cas,
            invalidate: f.invalidate,
            exptime: ttl,
            mismatch_is_miss: true,
            detail: false,
        }),
        MetaOp::Arithmetic { mode, delta, initial } => {
            // memcached creates the item without expiry, then walks the flags: `N` (only
            // for a created item) and `T` set it, the later one winning.
            let created_exptime = f.order().iter().fold(0, |exp, &flag| match flag {
                b'T' => ttl.unwrap_or(exp),
                b'N' => f.vivify_ttl.map_or(exp, i64::from),
                _ => exp,
            });
            Command::Arith(cmd::arith::Arith {
                incr: mode == ArithMode::Increment,
                key,
                delta,
                compare_cas: f.compare_cas,
                create: f.vivify_ttl.map(|_| (initial, created_exptime)),
                touch: ttl,
            })
        }
        MetaOp::Noop => Command::Noop,
        MetaOp::Debug => Command::Debug { key },
    }
}

/// The meta encoder for one request.
pub struct MetaReply<'o, 'r> {
    pub out: &'o mut Vec<u8>,
    /// A large value's pieces still to write (see [`super::value_rest`]).
    pub rest: &'o mut Option<ValueRest>,
    /// A value that would take `out` past this length goes out in pieces.
    pub limit: usize,
    pub req: &'r MetaRequest<'r>,
}

impl Reply for MetaReply<'_, '_> {
    fn full(&self) -> bool {
        self.rest.is_some()
    }

    fn writing_value(&self) -> bool {
        self.rest.is_some()
    }

    fn send(&mut self, outcome: Outcome<'_>) {
        let (out, req) = (&mut *self.out, self.req);
        match outcome {
            Outcome::Hit(hit) => {
                meta::write_mg_hit_head(out, req, &hit.meta, hit.value.len());
                if req.flags.return_value {
                    let sink = ValueSink {
                        out,
                        limit: self.limit,
                        rest: self.rest,
                    };
                    append_value(sink, hit.key, hit.cas, &hit.value, b"\r\n");
                }
            }
            Outcome::Miss { .. } => {
                meta::write_mg_miss(out, req);
            }
            Outcome::Stored(_, result) => {
                let outcome = match result {
                    Ok(cas) => SetOutcome::Stored { cas },
                    Err(StoreError::NotStored) => SetOutcome::NotStored,
                    Err(StoreError::Exists) => SetOutcome::Exists,
                    Err(StoreError::NotFound) => SetOutcome::NotFound,
                    // The decoder refuses oversized items first; these are here for completeness.
                    Err(StoreError::TooLarge) => return MetaError::TOO_LARGE.write(out),
                    Err(StoreError::OutOfMemory) => return MetaError::OUT_OF_MEMORY_STORING.write(out),
                    Err(StoreError::BadKey) => return MetaError::BAD_FORMAT.write(out),
                };
                meta::write_ms_result(out, req, outcome);
            }
            Outcome::Deleted(result) => {
                let outcome = match result {
                    DeleteResult::Deleted | DeleteResult::Invalidated => DeleteOutcome::Deleted,
                    DeleteResult::NotFound => DeleteOutcome::NotFound,
                    DeleteResult::Exists => DeleteOutcome::Exists,
                };
                meta::write_md_result(out, req, outcome);
            }
            Outcome::Arith(result) => {
                let outcome = match result {
                    Ok(done) => ArithOutcome::Done {
                        value: done.value,
                        item: ItemMeta {
                            ttl: done.ttl,
                            new_ttl: done.new_ttl,
                            cas: done.cas,
                            created: done.created,
                            ..ItemMeta::default()
                        },
                    },
                    Err(ArithError::NotFound) => ArithOutcome::NotFound,
                    Err(ArithError::Exists) => ArithOutcome::Exists,
                    Err(ArithError::NonNumeric) => return MetaError::NON_NUMERIC.write(out),
                    Err(ArithError::OutOfMemory) => return MetaError::OUT_OF_MEMORY.write(out),
                    Err(ArithError::CreateFailed) => return out.extend_from_slice(CREATE_OUT_OF_MEMORY),
                };
                meta::write_ma_result(out, req, outcome);
            }
            Outcome::Debug(Some((key, info))) => meta::write_me(out, key, &info),
            Outcome::Debug(None) => meta::write_me_miss(out),
            Outcome::Noop => meta::write_mn(out),
            // The other outcomes belong to commands no meta request maps to.
            _ => {}
        }
    }
}
