//! Binary protocol execution, byte-exact with memcached 1.6.18 (its quirks are listed in
//! `proto::binary`'s docs, which decode the frames and encode the replies).
//!
//! Every reply echoes the request's opcode (quiet ones included) and opaque; successful
//! stores, deletes and incr/decr carry the item's new cas. Quiet opcodes drop exactly what
//! memcached drops ([`binary::suppresses`]): misses of the get family, successes of the
//! others; errors are always sent. A `Noop` is answered like any request, which ends a
//! `GetQ`/`GetKQ` batch since the connection writes replies in request order.
//!
//! Beyond 1.6.18, the ElastiCache configuration opcodes (0x60..=0x67) are served from the
//! cluster state, as `config get/set/delete` are on the text protocol; 1.6.18 answers them
//! `Unknown command`. `Verbosity` and the SASL opcodes are answered `Unknown command`, as
//! 1.6.18 does without SASL (slabcached has none), but the frame is skipped exactly, where
//! memcached skips the body length once more from the end of the key and loses sync.

use proto::binary::{
    self, BinCommand, BinDecoded, BinErrorKind, BinRequest, Status, StoreMode as BinStoreMode,
    ARITH_NO_CREATE,
};
use proto::text::{StatsDetail, StatsRequest};
use slabcache::{ArithError, ArithOptions, DeleteOptions, DeleteResult, StoreError, StoreMode, StoreOptions};

use crate::cluster::ConfigChangeError;
use crate::config::PROTOCOL_VERSION;
use crate::context::Context;
use crate::exec::{self, Action, Step};
use crate::stats::{bump, Counters};

/// Decode and execute one request frame from the front of `input`.
pub fn step(input: &[u8], shared: &Context, counters: &Counters, out: &mut Vec<u8>) -> Step {
    match binary::decode(input, &shared.limits) {
        BinDecoded::Incomplete => Step::Incomplete,
        BinDecoded::Request { request, consumed } => {
            let action = execute(&request, shared, counters, out);
            Step::done(consumed, action)
        }
        BinDecoded::Error(e) => {
            if let Some(key) = e.unlink {
                shared.cache.delete(key, shared.clock.now());
            }
            // memcached answers before it swallows the rest of a refused frame; nothing
            // else can be written in between, so the reply goes out now.
            e.write_reply(out);
            debug_assert!(e.kind != BinErrorKind::BadMagic || e.status.is_none());
            Step::Done {
                consumed: e.consumed,
                swallow: e.swallow,
                after_swallow: b"",
                action: if e.close { Action::Close } else { Action::Continue },
            }
        }
    }
}

/// Send `status` (with `cas` on success) unless the opcode is quiet about it.
fn reply(out: &mut Vec<u8>, req: &BinRequest<'_>, status: Status, cas: u64) {
    if binary::suppresses(req.opcode, status) {
        return;
    }
    if status == Status::NoError {
        binary::write_status_only(out, req.opcode, status, req.opaque, cas);
    } else {
        binary::write_error(out, req.opcode, status, req.opaque);
    }
}

/// memcached's out-of-memory reply: status 0x82 with a text naming what failed.
fn out_of_memory(out: &mut Vec<u8>, req: &BinRequest<'_>, what: &[u8]) {
    binary::write_response(
        out,
        req.opcode.as_u8(),
        Status::OutOfMemory,
        req.opaque,
        0,
        &[],
        &[],
        what,
    );
}

/// The wire's 32-bit exptime as cache time.
fn expiry(shared: &Context, exptime: u32) -> u32 {
    shared.clock.expiry(i64::from(exptime))
}

fn execute(req: &BinRequest<'_>, shared: &Context, counters: &Counters, out: &mut Vec<u8>) -> Action {
    match req.command {
        BinCommand::Get { key } => get(req, key, None, shared, counters, out),
        BinCommand::Gat { key, exptime } => {
            get(req, key, Some(expiry(shared, exptime)), shared, counters, out);
        }
        BinCommand::Touch { key, exptime } => {
            let hit = exec::fetch(key, Some(expiry(shared, exptime)), shared, counters, |it| {
                binary::write_touch_hit(out, req.opcode, req.opaque, it.cas, it.flags);
            });
            if !hit {
                binary::write_get_miss(out, req.opcode, req.opaque, key);
            }
        }
        BinCommand::Store {
            mode,
            key,
            flags,
            exptime,
            value,
        } => store(req, mode, key, flags, exptime, value, shared, counters, out),
        BinCommand::Delete { key } => {
            let opts = DeleteOptions {
                compare_cas: (req.cas != 0).then_some(req.cas),
                ..DeleteOptions::default()
            };
            let status = match exec::delete(shared, counters, key, opts) {
                DeleteResult::Deleted | DeleteResult::Invalidated => Status::NoError,
                DeleteResult::NotFound => Status::KeyNotFound,
                DeleteResult::Exists => Status::KeyExists,
            };
            reply(out, req, status, 0);
        }
        BinCommand::Arith {
            incr,
            key,
            delta,
            initial,
            exptime,
        } => {
            let opts = ArithOptions {
                compare_cas: (req.cas != 0).then_some(req.cas),
                create: (exptime != ARITH_NO_CREATE).then(|| (initial, expiry(shared, exptime))),
                set_exptime: None,
            };
            match exec::arith(shared, counters, key, incr, delta, opts) {
                Ok(done) => {
                    if !binary::suppresses(req.opcode, Status::NoError) {
                        binary::write_arith(out, req.opcode, req.opaque, done.cas, done.value);
                    }
                }
                Err(ArithError::NotFound) => reply(out, req, Status::KeyNotFound, 0),
                Err(ArithError::Exists) => reply(out, req, Status::KeyExists, 0),
                Err(ArithError::NonNumeric) => reply(out, req, Status::NonNumeric, 0),
                Err(ArithError::OutOfMemory) => out_of_memory(out, req, b"Out of memory incrementing value"),
                Err(ArithError::CreateFailed) => {
                    out_of_memory(out, req, b"Out of memory allocating new item")
                }
            }
        }
        BinCommand::Quit => {
            reply(out, req, Status::NoError, 0);
            return Action::Close;
        }
        BinCommand::Flush { delay } => {
            if !shared.config.flush_enabled {
                // memcached refuses with an auth error and does not count it.
                reply(out, req, Status::AuthError, 0);
            } else {
                bump(&counters.cmd_flush, 1);
                exec::flush_all(shared, i64::from(delay.unwrap_or(0)));
                reply(out, req, Status::NoError, 0);
            }
        }
        BinCommand::Noop => reply(out, req, Status::NoError, 0),
        BinCommand::Version => binary::write_version(out, req.opaque, PROTOCOL_VERSION.as_bytes()),
        BinCommand::Stat { group } => stat(req, group, shared, out),
        BinCommand::Verbosity { .. } | BinCommand::SaslListMechs | BinCommand::Sasl { .. } => {
            reply(out, req, Status::UnknownCommand, 0);
        }
        BinCommand::ConfigGet { key } => match shared.cluster.config_get(key) {
            Some((flags, body)) => {
                binary::write_config_hit(out, req.opcode, req.opaque, 0, flags, key, &body);
            }
            None => {
                if !binary::suppresses(req.opcode, Status::KeyNotFound) {
                    binary::write_get_miss(out, req.opcode, req.opaque, key);
                }
            }
        },
        BinCommand::ConfigSet { key, flags, value } => {
            let status = config_status(shared.cluster.config_set(key, flags, value));
            reply(out, req, status, 0);
        }
        BinCommand::ConfigDelete { key } => {
            let status = config_status(shared.cluster.config_delete(key));
            reply(out, req, status, 0);
        }
    }
    Action::Continue
}

/// The binary twin of the text protocol's config set/delete replies: `ERROR` (disabled)
/// is an unknown command, `CLIENT_ERROR bad data chunk` invalid arguments.
fn config_status(result: Result<(), ConfigChangeError>) -> Status {
    match result {
        Ok(()) => Status::NoError,
        Err(ConfigChangeError::Disabled) => Status::UnknownCommand,
        Err(ConfigChangeError::NotFound) => Status::KeyNotFound,
        Err(ConfigChangeError::Invalid) => Status::InvalidArguments,
    }
}

/// Get, GetQ, GetK, GetKQ, and with `touch` the Gat family.
fn get(
    req: &BinRequest<'_>,
    key: &[u8],
    touch: Option<u32>,
    shared: &Context,
    counters: &Counters,
    out: &mut Vec<u8>,
) {
    let hit = exec::fetch(key, touch, shared, counters, |it| {
        binary::write_get_hit(out, req.opcode, req.opaque, it.cas, it.flags, it.key, it.value);
    });
    if !hit && !binary::suppresses(req.opcode, Status::KeyNotFound) {
        binary::write_get_miss(out, req.opcode, req.opaque, key);
    }
}

#[allow(clippy::too_many_arguments)]
fn store(
    req: &BinRequest<'_>,
    mode: BinStoreMode,
    key: &[u8],
    flags: u32,
    exptime: u32,
    value: &[u8],
    shared: &Context,
    counters: &Counters,
    out: &mut Vec<u8>,
) {
    // memcached turns set, add and replace with a header cas into a compare-and-swap (so
    // an add with a cas on a missing key is "not found"); append and prepend compare it.
    // With CAS disabled its items cannot hold the request's cas, so it is ignored.
    let cas = (req.cas != 0 && shared.config.use_cas).then_some(req.cas);
    let slab_mode = match (mode, cas) {
        (BinStoreMode::Set | BinStoreMode::Add | BinStoreMode::Replace, Some(cas)) => StoreMode::Cas(cas),
        (BinStoreMode::Set, None) => StoreMode::Set,
        (BinStoreMode::Add, None) => StoreMode::Add,
        (BinStoreMode::Replace, None) => StoreMode::Replace,
        (BinStoreMode::Append, _) => StoreMode::Append,
        (BinStoreMode::Prepend, _) => StoreMode::Prepend,
    };
    let opts = StoreOptions {
        compare_cas: cas,
        ..StoreOptions::default()
    };
    let exptime = expiry(shared, exptime);
    let status = match exec::store(shared, counters, slab_mode, key, flags, exptime, value, opts) {
        Ok(new_cas) => return reply(out, req, Status::NoError, new_cas),
        Err(StoreError::Exists) => Status::KeyExists,
        Err(StoreError::NotFound) => Status::KeyNotFound,
        Err(StoreError::TooLarge) => Status::ValueTooLarge,
        Err(StoreError::OutOfMemory) => {
            return out_of_memory(out, req, b"Out of memory allocating item");
        }
        // A refused add means the key exists, a refused replace that it does not.
        Err(StoreError::NotStored | StoreError::BadKey) => match slab_mode {
            StoreMode::Add => Status::KeyExists,
            StoreMode::Replace => Status::KeyNotFound,
            _ => Status::ItemNotStored,
        },
    };
    reply(out, req, status, 0);
}

/// `Stat`: the text protocol's `stats <group>` rendered, each `STAT name value` line sent
/// as a packet and `END` as the empty terminator. Group names are matched as memcached
/// matches them (`reset`, `settings`, `detail` by prefix, the others exactly); unknown
/// groups (`conns` and `cachedump` included, which memcached serves on text only) are
/// answered `Not found`.
fn stat(req: &BinRequest<'_>, group: &[u8], shared: &Context, out: &mut Vec<u8>) {
    let mut text = Vec::new();
    let which = match group {
        b"" => StatsRequest::General,
        g if g.starts_with(b"reset") => StatsRequest::Reset,
        g if g.starts_with(b"settings") => StatsRequest::Settings,
        g if g.starts_with(b"detail") => match &g[6..] {
            d if d.starts_with(b" dump") => {
                crate::stats::render(StatsRequest::Detail(StatsDetail::Dump), shared, &mut text);
                binary::write_stat(out, req.opaque, b"detailed", &text);
                binary::write_stat_end(out, req.opaque);
                return;
            }
            d if d.starts_with(b" on") => StatsRequest::Detail(StatsDetail::On),
            d if d.starts_with(b" off") => StatsRequest::Detail(StatsDetail::Off),
            _ => return binary::write_error(out, req.opcode, Status::KeyNotFound, req.opaque),
        },
        b"items" => StatsRequest::Items,
        b"slabs" => StatsRequest::Slabs,
        b"sizes" => StatsRequest::Sizes,
        b"sizes_enable" => StatsRequest::SizesEnable,
        b"sizes_disable" => StatsRequest::SizesDisable,
        _ => return binary::write_error(out, req.opcode, Status::KeyNotFound, req.opaque),
    };
    crate::stats::render(which, shared, &mut text);
    let ends_listing = matches!(
        which,
        StatsRequest::Reset | StatsRequest::Detail(StatsDetail::On | StatsDetail::Off)
    );
    for line in text.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if let Some(stat) = line.strip_prefix(b"STAT ") {
            let split = stat.iter().position(|&b| b == b' ').unwrap_or(stat.len());
            let (name, value) = stat.split_at(split);
            binary::write_stat(out, req.opaque, name, value.get(1..).unwrap_or_default());
        } else if line == b"END" {
            binary::write_stat_end(out, req.opaque);
        }
    }
    // reset and detail on/off answer a text word (RESET, OK); binary gets the terminator.
    if ends_listing {
        binary::write_stat_end(out, req.opaque);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::binary::Opcode;

    #[test]
    fn quiet_success_and_loud_errors() {
        let req = BinRequest {
            opcode: Opcode::SetQ,
            opaque: 9,
            cas: 0,
            vbucket: 0,
            data_type: 0,
            command: BinCommand::Noop,
        };
        let mut out = Vec::new();
        reply(&mut out, &req, Status::NoError, 5);
        assert!(out.is_empty());
        reply(&mut out, &req, Status::KeyExists, 0);
        assert_eq!(out[1], Opcode::SetQ.as_u8());
        assert_eq!(&out[12..16], &9u32.to_be_bytes());
        assert!(out.ends_with(b"Data exists for key."));
    }
}
