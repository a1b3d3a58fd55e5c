//! Command execution: the one place where decoded requests meet the cache. Each text
//! request is matched once, turned into cache calls, counted, and answered through the
//! `proto` crate's encoders.

use proto::text::{self, ArithOp, Decoded, Gate, Reply, Request};
use proto::{ClientError, ProtoError, ServerError};
use slabcache::{ArithError, StoreError, StoreMode};

use crate::cluster::ConfigChangeError;
use crate::config::PROTOCOL_VERSION;
use crate::server::Shared;
use crate::stats::{bump, Counters};

/// What the connection does after a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Continue,
    /// Close after writing queued replies.
    Close,
    /// Stop the server (the `shutdown` command).
    Shutdown,
}

/// The result of decoding and executing (at most) one request.
pub enum Step {
    /// No complete request buffered.
    Incomplete,
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
    pub fn done(consumed: usize, action: Action) -> Step {
        Step::Done {
            consumed,
            swallow: 0,
            after_swallow: b"",
            action,
        }
    }
}

/// The legacy auto-discovery key: `get AmazonElastiCache:cluster` answers the cluster
/// config as an ordinary value.
const LEGACY_CLUSTER_KEY: &[u8] = b"AmazonElastiCache:cluster";

/// Decode and execute one text request from the front of `input`.
pub fn text(input: &[u8], shared: &Shared, counters: &Counters, out: &mut Vec<u8>) -> Step {
    match text::decode(input, &shared.limits) {
        Decoded::Incomplete => Step::Incomplete,
        Decoded::Meta(meta) => crate::exec_meta::step(meta, shared, counters, out),
        decoded @ Decoded::Error { .. } => {
            let reply = decoded.error_reply();
            let Decoded::Error {
                error,
                consumed,
                swallow,
                close,
                unlink,
                ..
            } = decoded
            else {
                unreachable!("matched above")
            };
            if error == ProtoError::Server(ServerError::ObjectTooLarge) {
                bump(&counters.store_too_large, 1);
            }
            if let Some(key) = unlink {
                shared.cache.delete(key, shared.clock.now());
            }
            let action = if close { Action::Close } else { Action::Continue };
            if swallow > 0 {
                Step::Done {
                    consumed,
                    swallow,
                    after_swallow: reply,
                    action,
                }
            } else {
                out.extend_from_slice(reply);
                Step::done(consumed, action)
            }
        }
        Decoded::Request { request, consumed } => {
            let noreply = request.noreply();
            // Replies of noreply requests are built then dropped: simpler than threading
            // the flag through every handler, and noreply is rare on the hot path.
            let mark = out.len();
            let action = execute(request, shared, counters, out);
            if noreply {
                out.truncate(mark);
            }
            Step::done(consumed, action)
        }
    }
}

/// Decode and execute one binary-protocol request from the front of `input`.
pub fn binary(input: &[u8], shared: &Shared, counters: &Counters, out: &mut Vec<u8>) -> Step {
    crate::exec_binary::step(input, shared, counters, out)
}

fn execute(request: Request<'_>, shared: &Shared, counters: &Counters, out: &mut Vec<u8>) -> Action {
    let cache = &shared.cache;
    let now = shared.clock.now();
    match request {
        Request::Get { keys, with_cas } => {
            for key in keys {
                get_one(key, None, with_cas, shared, counters, out);
            }
            text::write_end(out);
        }
        Request::GetAndTouch {
            exptime,
            keys,
            with_cas,
        } => {
            let exptime = shared.clock.expiry(exptime);
            for key in keys {
                get_one(key, Some(exptime), with_cas, shared, counters, out);
            }
            text::write_end(out);
        }
        Request::Store {
            mode,
            key,
            flags,
            exptime,
            value,
            cas_unique,
            ..
        } => {
            bump(&counters.cmd_set, 1);
            let mode = match mode {
                text::StoreMode::Set => StoreMode::Set,
                text::StoreMode::Add => StoreMode::Add,
                text::StoreMode::Replace => StoreMode::Replace,
                text::StoreMode::Append => StoreMode::Append,
                text::StoreMode::Prepend => StoreMode::Prepend,
                text::StoreMode::Cas => StoreMode::Cas(cas_unique),
            };
            let result = cache.store(mode, key, flags, shared.clock.expiry(exptime), value, now);
            let reply = match result {
                Ok(_) => Reply::Stored,
                Err(StoreError::NotStored) => Reply::NotStored,
                Err(StoreError::Exists) => Reply::Exists,
                Err(StoreError::NotFound) => Reply::NotFound,
                Err(StoreError::TooLarge) => {
                    bump(&counters.store_too_large, 1);
                    Reply::ServerError(ServerError::ObjectTooLarge)
                }
                Err(StoreError::OutOfMemory) => {
                    bump(&counters.store_no_memory, 1);
                    Reply::ServerError(ServerError::OutOfMemoryStoring)
                }
                Err(StoreError::BadKey) => Reply::ClientError(ClientError::BadCommandLineFormat),
            };
            if let StoreMode::Cas(_) = mode {
                match result {
                    Ok(_) => bump(&counters.cas_hits, 1),
                    Err(StoreError::Exists) => bump(&counters.cas_badval, 1),
                    Err(StoreError::NotFound) => bump(&counters.cas_misses, 1),
                    Err(_) => {}
                }
            }
            reply.encode(out);
        }
        Request::Delete { key, .. } => {
            if cache.delete(key, now) {
                bump(&counters.delete_hits, 1);
                Reply::Deleted.encode(out);
            } else {
                bump(&counters.delete_misses, 1);
                Reply::NotFound.encode(out);
            }
        }
        Request::Arith { op, key, delta, .. } => {
            let incr = op == ArithOp::Incr;
            let (hits, misses) = if incr {
                (&counters.incr_hits, &counters.incr_misses)
            } else {
                (&counters.decr_hits, &counters.decr_misses)
            };
            match cache.incr_decr(key, incr, delta, now) {
                Ok(value) => {
                    bump(hits, 1);
                    Reply::Number(value).encode(out);
                }
                Err(ArithError::NotFound) => {
                    bump(misses, 1);
                    Reply::NotFound.encode(out);
                }
                Err(ArithError::NonNumeric) => Reply::ClientError(ClientError::NonNumericValue).encode(out),
                Err(ArithError::OutOfMemory) => Reply::ServerError(ServerError::OutOfMemory).encode(out),
            }
        }
        Request::Touch { key, exptime, .. } => {
            bump(&counters.cmd_touch, 1);
            if cache.touch(key, shared.clock.expiry(exptime), now) {
                bump(&counters.touch_hits, 1);
                Reply::Touched.encode(out);
            } else {
                bump(&counters.touch_misses, 1);
                Reply::NotFound.encode(out);
            }
        }
        Request::FlushAll { delay, .. } => {
            // memcached counts every flush_all, refused ones included.
            bump(&counters.cmd_flush, 1);
            if !shared.config.flush_enabled {
                Reply::ClientError(ClientError::FlushAllNotAllowed).encode(out);
            } else {
                let at = if delay > 0 {
                    Some(shared.clock.expiry(delay))
                } else {
                    None
                };
                cache.flush_all(at, now);
                Reply::Ok.encode(out);
            }
        }
        Request::Version => Reply::Version(PROTOCOL_VERSION).encode(out),
        Request::Verbosity { level, .. } => {
            shared
                .verbosity
                .store(level.min(2) as u8, std::sync::atomic::Ordering::Relaxed);
            Reply::Ok.encode(out);
        }
        Request::Quit => return Action::Close,
        Request::Stats(which) => crate::stats::render(which, shared, out),
        Request::CacheMemlimit { megabytes, .. } => {
            let bytes = usize::try_from(megabytes)
                .unwrap_or(usize::MAX)
                .saturating_mul(1 << 20);
            cache.set_memory_limit(bytes);
            Reply::Ok.encode(out);
        }
        Request::Shutdown { .. } => {
            if !shared.config.enable_shutdown {
                Reply::Proto(ProtoError::ShutdownNotEnabled).encode(out);
            } else {
                return Action::Shutdown;
            }
        }
        Request::ConfigGet { key } => {
            if let Some((flags, body)) = shared.cluster.config_get(key) {
                text::write_config(out, key, flags, &body);
            } else {
                text::write_end(out);
            }
        }
        Request::ConfigSet {
            key, flags, value, ..
        } => match shared.cluster.config_set(key, flags, value) {
            Ok(()) => Reply::Stored.encode(out),
            Err(ConfigChangeError::Disabled) => Reply::Error.encode(out),
            Err(ConfigChangeError::NotFound) => Reply::NotFound.encode(out),
            Err(ConfigChangeError::Invalid) => Reply::ClientError(ClientError::BadDataChunk).encode(out),
        },
        Request::ConfigDelete { key, .. } => match shared.cluster.config_delete(key) {
            Ok(()) => Reply::Deleted.encode(out),
            Err(ConfigChangeError::Disabled) => Reply::Error.encode(out),
            Err(ConfigChangeError::NotFound) => Reply::NotFound.encode(out),
            Err(ConfigChangeError::Invalid) => Reply::ClientError(ClientError::BadDataChunk).encode(out),
        },
        Request::MetaNoop => Reply::MetaNoop.encode(out),
        Request::Refused { gate, error, .. } => {
            if gate == Gate::FlushAll {
                bump(&counters.cmd_flush, 1);
            }
            let open = match gate {
                Gate::FlushAll => shared.config.flush_enabled,
                Gate::Shutdown => shared.config.enable_shutdown,
                Gate::Cachedump => shared.config.dump_enabled,
            };
            Reply::Proto(if open { error } else { gate.disabled_error() }).encode(out);
        }
    }
    Action::Continue
}

/// One key of a get/gets/gat/gats: a `VALUE` block on a hit.
fn get_one(
    key: &[u8],
    touch: Option<u32>,
    with_cas: bool,
    shared: &Shared,
    counters: &Counters,
    out: &mut Vec<u8>,
) {
    let now = shared.clock.now();
    // memcached counts gat/gats keys as touches only.
    if touch.is_some() {
        bump(&counters.cmd_touch, 1);
    } else {
        bump(&counters.cmd_get, 1);
    }
    let write = |it: slabcache::ItemRef<'_>| {
        text::write_value(out, it.key, it.flags, it.value, with_cas.then_some(it.cas));
    };
    let hit = match touch {
        None => shared.cache.get(key, now, write),
        Some(exptime) => shared.cache.get_and_touch(key, exptime, now, write),
    };
    match (hit.is_some(), touch.is_some()) {
        (true, false) => bump(&counters.get_hits, 1),
        (false, false) => {
            if key == LEGACY_CLUSTER_KEY {
                text::write_value(out, key, 0, &shared.cluster.body(), with_cas.then_some(0));
                bump(&counters.get_hits, 1);
            } else {
                bump(&counters.get_misses, 1);
            }
        }
        (true, true) => bump(&counters.touch_hits, 1),
        (false, true) => bump(&counters.touch_misses, 1),
    }
}
