//! set, add, replace, append, prepend, cas, `ms`, and the binary stores.
//!
//! Counted as memcached counts them: `cmd_set` for every attempt (refused ones too),
//! `cas_hits`/`cas_badval`/`cas_misses` for compare-and-swaps, `store_too_large` and
//! `store_no_memory` for failures.
//!
//! A large value may have arrived straight into an item the connection reserved for it
//! ([`Intake`], see `crate::net::conn`): the store then links that item
//! ([`slabcache::Reservation::commit`]) instead of copying the value, with the same
//! decisions, counters and replies.

use std::cell::Cell;

use slabcache::{Reservation, StoreError, StoreOptions};

pub use slabcache::StoreMode;

use super::outcome::{expiry, Outcome, Reply};
use super::Command;
use crate::context::Context;
use crate::stats::detail::PrefixOp;
use crate::stats::{bump, Counters};
use crate::watch::{self, WatchStreams};

pub struct Store<'a> {
    /// The mode after each protocol's cas rule: a compare cas turns text's `cas`, meta's
    /// set and replace, and binary's set, add and replace into [`StoreMode::Cas`].
    pub mode: StoreMode,
    pub key: &'a [u8],
    pub flags: u32,
    /// As sent (relative seconds, a Unix time, or negative).
    pub exptime: i64,
    pub value: &'a [u8],
    /// Append/prepend's compare cas, meta's `I` and `b`.
    pub opts: StoreOptions,
    /// Counted under its key's prefix by `stats detail` (memcached counts text and binary
    /// stores there, not meta's).
    pub detail: bool,
    /// The item the value arrived in, when it did not come in `value` (which is empty then).
    pub intake: Option<&'a Intake>,
}

impl Store<'_> {
    /// Bytes of value stored.
    pub fn value_len(&self) -> usize {
        self.intake.map_or(self.value.len(), Intake::len)
    }
}

/// An item reserved for a store whose value the connection wrote into it as it arrived,
/// lent to the store's request (decoded from the store's header alone) through the wire
/// step ([`crate::wire::Turn`]). The store takes it; one left untaken is freed with the
/// `Intake`.
pub struct Intake {
    reservation: Cell<Option<Reservation>>,
    len: usize,
    /// Cache time the header arrived: a relative expiry counts from it, as in memcached.
    started: u32,
}

impl Intake {
    pub fn new(reservation: Reservation, started: u32) -> Intake {
        Intake {
            len: reservation.len(),
            reservation: Cell::new(Some(reservation)),
            started,
        }
    }

    /// Bytes of the value.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Value bytes still to come.
    pub fn remaining(&self) -> usize {
        self.with(|r| r.remaining())
    }

    /// Copy the next bytes of the value in; returns how many were taken.
    pub fn write(&self, bytes: &[u8]) -> usize {
        self.with(|r| r.write(bytes))
    }

    /// Read the next value bytes straight into the item with `read` (given the memory
    /// they go to, up to the end of a chunk); returns what `read` returned.
    pub fn read_into(
        &self,
        read: impl FnOnce(&mut [u8]) -> std::io::Result<usize>,
    ) -> std::io::Result<usize> {
        let Some(mut r) = self.reservation.take() else {
            return Ok(0);
        };
        let got = read(r.unfilled_mut());
        if let Ok(n) = got {
            r.advance(n);
        }
        self.reservation.set(Some(r));
        got
    }

    fn with<R: Default>(&self, f: impl FnOnce(&mut Reservation) -> R) -> R {
        let Some(mut r) = self.reservation.take() else {
            return R::default();
        };
        let out = f(&mut r);
        self.reservation.set(Some(r));
        out
    }
}

/// Lend `intake` to `cmd` if it is a store (the command decoded from a header whose value
/// went into the reserved item).
pub fn with_intake<'a>(mut cmd: Command<'a>, intake: Option<&'a Intake>) -> Command<'a> {
    if let (Command::Store(s), Some(_)) = (&mut cmd, intake) {
        s.intake = intake;
    }
    cmd
}

/// The engine's mode for a decoded store. `compare` is the cas that makes a set, add or
/// replace a compare-and-swap (each protocol decides when its cas does: text's `cas` verb,
/// meta's `C` on set and replace, binary's header cas on set, add and replace); append and
/// prepend compare it themselves ([`StoreOptions::compare_cas`]).
pub fn engine_mode(mode: proto::StoreMode, compare: Option<u64>) -> StoreMode {
    use proto::StoreMode as Wire;
    match (mode, compare) {
        (Wire::Cas, cas) => StoreMode::Cas(cas.unwrap_or(0)),
        (Wire::Set | Wire::Add | Wire::Replace, Some(cas)) => StoreMode::Cas(cas),
        (Wire::Set, None) => StoreMode::Set,
        (Wire::Add, None) => StoreMode::Add,
        (Wire::Replace, None) => StoreMode::Replace,
        (Wire::Append, _) => StoreMode::Append,
        (Wire::Prepend, _) => StoreMode::Prepend,
    }
}

pub(super) fn store<R: Reply>(s: Store<'_>, ctx: &Context, counters: &Counters, reply: &mut R) {
    bump(&counters.cmd_set, 1);
    if s.detail {
        ctx.detail.record(s.key, PrefixOp::Set);
    }
    let now = ctx.clock.now();
    let exptime = match s.intake {
        Some(intake) => ctx.clock.expiry_at(s.exptime, intake.started),
        None => expiry(ctx, s.exptime),
    };
    let watching = ctx.watch.streams();
    if watching & WatchStreams::FETCHERS != 0 {
        watch::events::peeked_get(ctx, s.key);
    }
    let reserved = s.intake.and_then(|i| i.reservation.take());
    let result = match reserved {
        Some(r) => r.commit(s.mode, s.flags, exptime, now, s.opts),
        None => ctx
            .cache
            .store_with(s.mode, s.key, s.flags, exptime, s.value, now, s.opts),
    };
    if watching & WatchStreams::MUTATIONS != 0 {
        watch::events::item_store(ctx, s.key, s.mode, result, exptime, s.value_len());
    }
    match result {
        Err(StoreError::TooLarge) => bump(&counters.store_too_large, 1),
        Err(StoreError::OutOfMemory) => bump(&counters.store_no_memory, 1),
        _ => {}
    }
    if let StoreMode::Cas(_) = s.mode {
        match result {
            Ok(_) => bump(&counters.cas_hits, 1),
            Err(StoreError::Exists) => bump(&counters.cas_badval, 1),
            Err(StoreError::NotFound) => bump(&counters.cas_misses, 1),
            Err(_) => {}
        }
    }
    reply.send(Outcome::Stored(s.mode, result));
}

/// Why a decoder refused a request, as far as the counters care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The item would not fit (`store_too_large`).
    TooLarge,
    /// The data block did not end in `\r\n` (memcached counts the set before it checks).
    BadDataChunk,
    /// Anything else, and every binary refusal (memcached's binary side counts none).
    Uncounted,
}

/// A request the decoder refused: counted as memcached counts it, and the old item under
/// `unlink` dropped (memcached unlinks it when a set is refused as too large, so it cannot
/// be read stale).
pub fn refused(ctx: &Context, counters: &Counters, refusal: Refusal, unlink: Option<&[u8]>) {
    match refusal {
        Refusal::TooLarge => bump(&counters.store_too_large, 1),
        Refusal::BadDataChunk => bump(&counters.cmd_set, 1),
        Refusal::Uncounted => {}
    }
    if let Some(key) = unlink {
        ctx.cache.delete_with(key, ctx.clock.now(), Default::default());
    }
}
