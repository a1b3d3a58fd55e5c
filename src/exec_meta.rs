//! Meta protocol execution (`mg ms md ma mn me`), byte-exact with memcached 1.6.18.
//!
//! `proto::meta` decodes a command and encodes its replies (including which replies `q`
//! hides); this module turns a decoded command into cache calls, applies the flags whose
//! effect depends on their order on the line (`T`, `N`, `R`, as memcached walks the flags
//! left to right), and counts the command the way memcached does: `mg` as a get (or, with
//! `T`, a touch), `ms` as a set, `md` as a delete, `ma` as an incr/decr, `me` in `cmd_meta`
//! (the only meta command 1.6.18 counts there), `mn` not at all.
//!
//! Differences from 1.6.18, both deliberate:
//! - `l` and `me`'s `la=` report the seconds since the item was last *written*: slabcached
//!   keeps no access time in its item header (see `slabcache`'s `marks` module). memcached
//!   refreshes its time only on an item's second fetch, so the two agree until then.
//! - `me`'s `cls=` and `size=` are slabcached's own class id and item size (its header is
//!   smaller than memcached's).
//!
//! The `E` (explicit new cas) and `x` (`md`: drop only the value) flags of later memcached
//! releases are refused exactly as 1.6.18 refuses them: an explicit cas would also defeat
//! `flush_all`, which slabcached decides by comparing cas uniques.

use proto::meta::{
    self, ArithMode, ArithOutcome, DebugInfo, DeleteOutcome, ItemMeta, MetaCommand, MetaDecoded, MetaError,
    MetaOp, MetaRequest, SetMode, SetOutcome,
};
use slabcache::{
    ArithError, ArithOptions, DeleteOptions, DeleteResult, GetOptions, HitCounter, StoreError, StoreMode,
    StoreOptions,
};

use crate::context::Context;
use crate::exec::{self, Action, Step};
use crate::stats::{bump, Counters};

/// memcached's reply when `ma` cannot allocate the item `N` asked it to create.
const CREATE_OUT_OF_MEMORY: &[u8] = b"SERVER_ERROR Out of memory allocating new item\r\n";

/// Execute one decoded meta command (or answer its decoding error).
pub fn step(decoded: MetaDecoded<'_>, shared: &Context, counters: &Counters, out: &mut Vec<u8>) -> Step {
    match decoded {
        MetaDecoded::Incomplete => Step::Incomplete,
        MetaDecoded::Request { request, consumed } => {
            execute(&request, shared, counters, out);
            Step::done(consumed, Action::Continue)
        }
        MetaDecoded::Error {
            error,
            consumed,
            swallow,
            close,
            unlink,
        } => {
            if error == MetaError::TOO_LARGE {
                bump(&counters.store_too_large, 1);
            }
            // memcached counts an `ms` whose data block it read before checking its end.
            if error == MetaError::BAD_DATA_CHUNK {
                bump(&counters.cmd_set, 1);
            }
            if let Some(key) = unlink {
                shared.cache.delete(key.bytes(), shared.clock.now());
            }
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

fn execute(req: &MetaRequest<'_>, shared: &Context, counters: &Counters, out: &mut Vec<u8>) {
    if let Some(e) = unsupported_flag(req) {
        e.write(out);
        return;
    }
    match req.op {
        MetaOp::Get => get(req, shared, counters, out),
        MetaOp::Set { mode, data } => set(req, mode, data, shared, counters, out),
        MetaOp::Delete => delete(req, shared, counters, out),
        MetaOp::Arithmetic { mode, delta, initial } => {
            arithmetic(
                req,
                mode == ArithMode::Increment,
                delta,
                initial,
                shared,
                counters,
                out,
            );
        }
        MetaOp::Noop => meta::write_mn(out),
        MetaOp::Debug => debug(req, shared, counters, out),
    }
}

/// A meta TTL flag (`T`, `N`, `R`) as cache time, with the wire's exptime rules.
fn expiry(shared: &Context, ttl: i32) -> u32 {
    shared.clock.expiry(i64::from(ttl))
}

/// Remaining TTL as meta prints it: -1 for none, else memcached's unsigned 32-bit
/// difference (so an item given a past expiry in this very request shows a huge number,
/// as it does in memcached).
fn ttl_left(exptime: u32, now: u32) -> i64 {
    if exptime == 0 {
        -1
    } else {
        i64::from(exptime.wrapping_sub(now))
    }
}

fn get(req: &MetaRequest<'_>, shared: &Context, counters: &Counters, out: &mut Vec<u8>) {
    let f = &req.flags;
    let now = shared.clock.now();
    let touch = f.ttl.map(|t| expiry(shared, t));
    let vivify = f.vivify_ttl.map(|t| expiry(shared, t));
    let recache = f.recache_ttl.map(|t| expiry(shared, t));
    let opts = GetOptions {
        bump: !f.no_bump,
        vivify: vivify.is_some(),
        counter: if touch.is_some() {
            HitCounter::Touch
        } else {
            HitCounter::Get
        },
    };
    let hit = shared.cache.meta_get(req.key.bytes(), now, opts, |it| {
        let before = it.exptime();
        let mut new_ttl = None;
        let mut won = false;
        // memcached applies these in the order the flags were given: `R` compares with
        // the expiry a preceding `T` has just set.
        for &flag in f.order() {
            match (flag, touch, vivify, recache) {
                (b'T', Some(t), _, _) => {
                    it.set_exptime(t);
                    new_ttl = Some(ttl_left(t, now));
                }
                (b'N', _, Some(t), _) if it.created => {
                    it.set_exptime(t);
                    new_ttl = Some(ttl_left(t, now));
                    won = true;
                }
                (b'R', _, _, Some(limit)) => {
                    let exp = it.exptime();
                    if !it.win_token_sent() && !it.created && exp != 0 && exp < limit {
                        won = true;
                    }
                }
                _ => {}
            }
        }
        let token_sent = it.win_token_sent();
        let stale = it.stale();
        // A stale item hands its token to the first reader after the invalidation.
        if stale && !token_sent {
            won = true;
        }
        if won {
            it.set_win_token_sent();
        }
        let item = ItemMeta {
            ttl: if it.created { -1 } else { ttl_left(before, now) },
            new_ttl,
            cas: it.cas,
            client_flags: it.flags,
            size: it.value.len() as u64,
            hit_before: it.fetched,
            last_access: u64::from(now.saturating_sub(it.written_at())),
            key_binary: it.key_binary(),
            created: it.created,
            won,
            stale,
            win_token_sent: token_sent,
        };
        meta::write_mg_hit(out, req, &item, it.value);
    });
    // memcached counts a hit with `T` as a touch, and everything else (a vivified item
    // included, and a miss even with `T`) as a get.
    match (hit.is_some(), touch.is_some()) {
        (true, true) => {
            bump(&counters.cmd_touch, 1);
            bump(&counters.touch_hits, 1);
        }
        (true, false) => {
            bump(&counters.cmd_get, 1);
            bump(&counters.get_hits, 1);
        }
        (false, _) => {
            bump(&counters.cmd_get, 1);
            bump(&counters.get_misses, 1);
            meta::write_mg_miss(out, req);
        }
    }
}

fn set(
    req: &MetaRequest<'_>,
    mode: SetMode,
    data: &[u8],
    shared: &Context,
    counters: &Counters,
    out: &mut Vec<u8>,
) {
    let f = &req.flags;
    // A compare cas turns set and replace into cas; add ignores it; append and prepend
    // check it themselves (StoreOptions::compare_cas).
    let mode = match (mode, f.compare_cas) {
        (SetMode::Set | SetMode::Replace, Some(cas)) => StoreMode::Cas(cas),
        (SetMode::Set, None) => StoreMode::Set,
        (SetMode::Replace, None) => StoreMode::Replace,
        (SetMode::Add, _) => StoreMode::Add,
        (SetMode::Append, _) => StoreMode::Append,
        (SetMode::Prepend, _) => StoreMode::Prepend,
    };
    let opts = StoreOptions {
        compare_cas: f.compare_cas,
        invalidate: f.invalidate,
        key_binary: req.key.is_binary(),
    };
    let exptime = f.ttl.map_or(0, |t| expiry(shared, t));
    let flags = f.client_flags.unwrap_or(0);
    let outcome = match exec::store(
        shared,
        counters,
        mode,
        req.key.bytes(),
        flags,
        exptime,
        data,
        opts,
    ) {
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

fn delete(req: &MetaRequest<'_>, shared: &Context, counters: &Counters, out: &mut Vec<u8>) {
    let f = &req.flags;
    let opts = DeleteOptions {
        compare_cas: f.compare_cas,
        invalidate: f.invalidate,
        exptime: f.ttl.map(|t| expiry(shared, t)),
    };
    let outcome = match exec::delete(shared, counters, req.key.bytes(), opts) {
        DeleteResult::Deleted | DeleteResult::Invalidated => DeleteOutcome::Deleted,
        DeleteResult::NotFound => DeleteOutcome::NotFound,
        DeleteResult::Exists => {
            // memcached counts a meta delete refused by its cas as a miss.
            bump(&counters.delete_misses, 1);
            DeleteOutcome::Exists
        }
    };
    meta::write_md_result(out, req, outcome);
}

fn arithmetic(
    req: &MetaRequest<'_>,
    incr: bool,
    delta: u64,
    initial: u64,
    shared: &Context,
    counters: &Counters,
    out: &mut Vec<u8>,
) {
    let f = &req.flags;
    let now = shared.clock.now();
    let touch = f.ttl.map(|t| expiry(shared, t));
    // memcached creates the item without expiry, then walks the flags: `N` (only for a
    // created item) and `T` set it, the later one winning.
    let created_exptime = f.order().iter().fold(0, |exp, &flag| match flag {
        b'T' => touch.unwrap_or(exp),
        b'N' => f.vivify_ttl.map_or(exp, |t| expiry(shared, t)),
        _ => exp,
    });
    let opts = ArithOptions {
        compare_cas: f.compare_cas,
        create: f.vivify_ttl.map(|_| (initial, created_exptime)),
        set_exptime: touch,
    };
    let outcome = match exec::arith(shared, counters, req.key.bytes(), incr, delta, opts) {
        Ok(done) => {
            let item = ItemMeta {
                ttl: if done.created {
                    -1
                } else {
                    ttl_left(done.exptime_before, now)
                },
                new_ttl: (touch.is_some() || done.created).then(|| ttl_left(done.exptime, now)),
                cas: done.cas,
                created: done.created,
                ..ItemMeta::default()
            };
            ArithOutcome::Done {
                value: done.value,
                item,
            }
        }
        Err(ArithError::NotFound) => ArithOutcome::NotFound,
        Err(ArithError::Exists) => ArithOutcome::Exists,
        Err(ArithError::NonNumeric) => return MetaError::NON_NUMERIC.write(out),
        Err(ArithError::OutOfMemory) => return MetaError::OUT_OF_MEMORY.write(out),
        Err(ArithError::CreateFailed) => return out.extend_from_slice(CREATE_OUT_OF_MEMORY),
    };
    meta::write_ma_result(out, req, outcome);
}

fn debug(req: &MetaRequest<'_>, shared: &Context, counters: &Counters, out: &mut Vec<u8>) {
    bump(&counters.cmd_meta, 1);
    let now = shared.clock.now();
    let peek = GetOptions {
        bump: false,
        vivify: false,
        counter: HitCounter::None,
    };
    let found = shared.cache.meta_get(req.key.bytes(), now, peek, |it| {
        let info = DebugInfo {
            ttl: ttl_left(it.exptime(), now),
            last_access: u64::from(now.saturating_sub(it.written_at())),
            cas: it.cas,
            fetched: it.fetched,
            class_id: it.class as u32,
            size: it.total_size() as u64,
            key_binary: it.key_binary(),
        };
        meta::write_me(out, it.key, &info);
    });
    if found.is_none() {
        meta::write_me_miss(out);
    }
}
