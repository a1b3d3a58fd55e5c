//! Command execution: the one place where decoded requests meet the cache. Each text
//! request is matched once, turned into cache calls, counted, and answered through the
//! `proto` crate's encoders. The cache calls shared with the meta and binary protocols
//! ([`store`], [`arith`], [`delete`], [`fetch`], [`flush_all`]) live here with their
//! counters, so every protocol counts a command the same way; `exec_meta` and
//! `exec_binary` hold only what is protocol-specific, and `exec_admin` the administrative
//! text commands (`slabs`, `lru_crawler`, `lru`).

use proto::text::{self, ArithOp, Decoded, Gate, Reply, Request};
use proto::{ClientError, ProtoError, ServerError};
use slabcache::{
    ArithDone, ArithError, ArithOptions, DeleteOptions, DeleteResult, ItemRef, StoreError, StoreMode,
    StoreOptions,
};

use crate::cluster::ConfigChangeError;
use crate::config::PROTOCOL_VERSION;
use crate::context::Context;
use crate::stats::{bump, Counters};

/// What the connection does after a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Continue,
    /// Close after writing queued replies.
    Close,
    /// Stop the server (the `shutdown` command).
    Shutdown,
    /// List items for `lru_crawler metadump`, a class at a time, before the next request.
    Metadump(crate::exec_admin::Metadump),
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
        let action = if close { Action::Close } else { Action::Continue };
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

/// The legacy auto-discovery key: `get AmazonElastiCache:cluster` answers the cluster
/// config as an ordinary value.
const LEGACY_CLUSTER_KEY: &[u8] = b"AmazonElastiCache:cluster";

/// Decode and execute one text request from the front of `input`.
///
/// `stacked` tracks what memcached calls its response stack: whether replies of earlier
/// commands of this batch are still queued. memcached writes them out after each
/// get-family command and `mn` (and whenever the input runs dry, where the connection
/// clears the flag); `lru_crawler metadump` is refused while it is set.
pub fn text(
    input: &[u8],
    shared: &Context,
    counters: &Counters,
    out: &mut Vec<u8>,
    stacked: &mut bool,
) -> Step {
    let was_stacked = std::mem::replace(stacked, true);
    match text::decode(input, &shared.limits) {
        Decoded::Incomplete => {
            *stacked = was_stacked;
            Step::Incomplete
        }
        Decoded::Meta(meta) => crate::exec_meta::step(meta, shared, counters, out),
        Decoded::Error {
            error,
            consumed,
            swallow,
            close,
            noreply,
            unlink,
        } => {
            match error {
                ProtoError::Server(ServerError::ObjectTooLarge) => bump(&counters.store_too_large, 1),
                // memcached counts the set before it checks the data block's ending.
                ProtoError::Client(ClientError::BadDataChunk) => bump(&counters.cmd_set, 1),
                _ => {}
            }
            if let Some(key) = unlink {
                shared.cache.delete(key, shared.clock.now());
            }
            let reply = if noreply { &b""[..] } else { error.as_wire() };
            Step::refused(consumed, swallow, reply, close, out)
        }
        Decoded::Request { request, consumed } => {
            let noreply = request.noreply();
            if matches!(
                request,
                Request::Get { .. } | Request::GetAndTouch { .. } | Request::MetaNoop
            ) {
                *stacked = false;
            }
            // Replies of noreply requests are built then dropped: simpler than threading
            // the flag through every handler, and noreply is rare on the hot path.
            let mark = out.len();
            let action = execute(request, was_stacked, shared, counters, out);
            if noreply {
                out.truncate(mark);
            }
            Step::done(consumed, action)
        }
    }
}

/// Decode and execute one binary-protocol request from the front of `input`.
pub fn binary(input: &[u8], shared: &Context, counters: &Counters, out: &mut Vec<u8>) -> Step {
    crate::exec_binary::step(input, shared, counters, out)
}

fn execute(
    request: Request<'_>,
    was_stacked: bool,
    shared: &Context,
    counters: &Counters,
    out: &mut Vec<u8>,
) -> Action {
    let cache = &shared.cache;
    let now = shared.clock.now();
    match request {
        Request::Admin { request, .. } => {
            return crate::exec_admin::execute(request, was_stacked, shared, out)
        }
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
        Request::GetRefused { keys_before, touch } => {
            // memcached looks up (and counts, and touches) the keys ahead of the long one
            // before it notices; their replies are dropped.
            let touch = touch.map(|t| shared.clock.expiry(t));
            let mut dropped = Vec::new();
            for key in keys_before {
                get_one(key, touch, false, shared, counters, &mut dropped);
            }
            Reply::ClientError(ClientError::BadCommandLineFormat).encode(out);
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
            let mode = match mode {
                text::StoreMode::Set => StoreMode::Set,
                text::StoreMode::Add => StoreMode::Add,
                text::StoreMode::Replace => StoreMode::Replace,
                text::StoreMode::Append => StoreMode::Append,
                text::StoreMode::Prepend => StoreMode::Prepend,
                text::StoreMode::Cas => StoreMode::Cas(cas_unique),
            };
            let exptime = shared.clock.expiry(exptime);
            let result = store(
                shared,
                counters,
                mode,
                key,
                flags,
                exptime,
                value,
                StoreOptions::default(),
            );
            let reply = match result {
                Ok(_) => Reply::Stored,
                Err(StoreError::NotStored) => Reply::NotStored,
                Err(StoreError::Exists) => Reply::Exists,
                Err(StoreError::NotFound) => Reply::NotFound,
                Err(StoreError::TooLarge) => Reply::ServerError(ServerError::ObjectTooLarge),
                Err(StoreError::OutOfMemory) => Reply::ServerError(ServerError::OutOfMemoryStoring),
                Err(StoreError::BadKey) => Reply::ClientError(ClientError::BadCommandLineFormat),
            };
            reply.encode(out);
        }
        Request::Delete { key, .. } => {
            if delete(shared, counters, key, DeleteOptions::default()) == DeleteResult::Deleted {
                Reply::Deleted.encode(out);
            } else {
                Reply::NotFound.encode(out);
            }
        }
        Request::Arith { op, key, delta, .. } => {
            let incr = op == ArithOp::Incr;
            match arith(shared, counters, key, incr, delta, ArithOptions::default()) {
                Ok(done) => Reply::Number(done.value).encode(out),
                // Without a compare cas there is no mismatch.
                Err(ArithError::NotFound | ArithError::Exists) => Reply::NotFound.encode(out),
                Err(ArithError::NonNumeric) => Reply::ClientError(ClientError::NonNumericValue).encode(out),
                Err(ArithError::OutOfMemory | ArithError::CreateFailed) => {
                    Reply::ServerError(ServerError::OutOfMemory).encode(out)
                }
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
                flush_all(shared, delay);
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
                Gate::SlabReassign => shared.config.slab_reassign,
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
    shared: &Context,
    counters: &Counters,
    out: &mut Vec<u8>,
) {
    fetch(key, touch, shared, counters, |it| {
        text::write_value(out, it.key, it.flags, it.value, with_cas.then_some(it.cas));
    });
}

// ---- cache calls shared by the text, meta and binary protocols ----------------------------

/// Read one key for a get (`touch` None) or get-and-touch (the new cache-time expiry),
/// counting it as memcached does: a get in `cmd_get`/`get_hits`/`get_misses`, a gat in
/// `cmd_touch`/`touch_hits`/`touch_misses` only. `write` is called with the item on a hit,
/// under the item's lock. A get of the legacy auto-discovery key that misses answers the
/// cluster config as an ordinary value (flags 0, cas 0). Returns whether it hit.
pub(crate) fn fetch(
    key: &[u8],
    touch: Option<u32>,
    shared: &Context,
    counters: &Counters,
    write: impl FnOnce(ItemRef<'_>),
) -> bool {
    let now = shared.clock.now();
    if touch.is_some() {
        bump(&counters.cmd_touch, 1);
    } else {
        bump(&counters.cmd_get, 1);
    }
    // The writer is needed again for the legacy key when the lookup misses.
    let mut write = Some(write);
    let mut call = |it: ItemRef<'_>| {
        if let Some(w) = write.take() {
            w(it);
        }
    };
    let hit = match touch {
        None => shared.cache.get(key, now, &mut call),
        Some(exptime) => shared.cache.get_and_touch(key, exptime, now, &mut call),
    };
    match (hit.is_some(), touch.is_some()) {
        (true, false) => bump(&counters.get_hits, 1),
        (false, false) => {
            if key == LEGACY_CLUSTER_KEY {
                let body = shared.cluster.body();
                call(ItemRef {
                    key,
                    value: &body,
                    flags: 0,
                    cas: 0,
                    exptime: 0,
                    class: 0,
                });
                bump(&counters.get_hits, 1);
                return true;
            }
            bump(&counters.get_misses, 1);
        }
        (true, true) => bump(&counters.touch_hits, 1),
        (false, true) => bump(&counters.touch_misses, 1),
    }
    hit.is_some()
}

/// A store, counted: `cmd_set` for every attempt (memcached counts refused ones too),
/// `cas_*` for compare-and-swaps, `store_too_large`/`store_no_memory` for failures.
/// `exptime` is cache time ([`crate::clock::Clock::expiry`]). Returns the new cas.
#[allow(clippy::too_many_arguments)]
pub(crate) fn store(
    shared: &Context,
    counters: &Counters,
    mode: StoreMode,
    key: &[u8],
    flags: u32,
    exptime: u32,
    value: &[u8],
    opts: StoreOptions,
) -> Result<u64, StoreError> {
    bump(&counters.cmd_set, 1);
    let now = shared.clock.now();
    let result = shared
        .cache
        .store_with(mode, key, flags, exptime, value, now, opts);
    match result {
        Err(StoreError::TooLarge) => bump(&counters.store_too_large, 1),
        Err(StoreError::OutOfMemory) => bump(&counters.store_no_memory, 1),
        _ => {}
    }
    if let StoreMode::Cas(_) = mode {
        match result {
            Ok(_) => bump(&counters.cas_hits, 1),
            Err(StoreError::Exists) => bump(&counters.cas_badval, 1),
            Err(StoreError::NotFound) => bump(&counters.cas_misses, 1),
            Err(_) => {}
        }
    }
    result
}

/// A delete, counted: `delete_hits` when removed, `delete_misses` when missing (a cas
/// mismatch and an invalidation are counted by the caller, which knows its protocol's rule).
pub(crate) fn delete(shared: &Context, counters: &Counters, key: &[u8], opts: DeleteOptions) -> DeleteResult {
    let result = shared.cache.delete_with(key, shared.clock.now(), opts);
    match result {
        DeleteResult::Deleted => bump(&counters.delete_hits, 1),
        DeleteResult::NotFound => bump(&counters.delete_misses, 1),
        DeleteResult::Invalidated | DeleteResult::Exists => {}
    }
    result
}

/// incr/decr, counted: `incr_hits`/`decr_hits` when an existing number changed,
/// `incr_misses`/`decr_misses` when the item was missing and not created (a creation
/// counts as neither, as in memcached).
pub(crate) fn arith(
    shared: &Context,
    counters: &Counters,
    key: &[u8],
    incr: bool,
    delta: u64,
    opts: ArithOptions,
) -> Result<ArithDone, ArithError> {
    let (hits, misses) = if incr {
        (&counters.incr_hits, &counters.incr_misses)
    } else {
        (&counters.decr_hits, &counters.decr_misses)
    };
    let result = shared.cache.arith(key, incr, delta, shared.clock.now(), opts);
    match result {
        Ok(done) if !done.created => bump(hits, 1),
        Err(ArithError::NotFound) => bump(misses, 1),
        _ => {}
    }
    result
}

/// flush_all with memcached's delay rule (0 or less: now; else the wire's exptime rules).
/// The caller checks `flush_enabled` and counts `cmd_flush` (the protocols differ there).
pub(crate) fn flush_all(shared: &Context, delay: i64) {
    let at = if delay > 0 {
        Some(shared.clock.expiry(delay))
    } else {
        None
    };
    shared.cache.flush_all(at, shared.clock.now());
}
