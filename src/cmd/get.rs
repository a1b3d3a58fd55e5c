//! Reads: get, gets, gat, gats, `mg`, binary Get/Gat/Touch, text `touch`, and `me`.
//!
//! Counted as memcached counts them: a get in `cmd_get`/`get_hits`/`get_misses`, a gat or
//! touch in `cmd_touch`/`touch_hits`/`touch_misses` only. `mg` counts a hit with `T` as a
//! touch and everything else (a vivified item included, and a miss even with `T`) as a
//! get. `me` counts in `cmd_meta` (the only meta command 1.6.18 counts there).
//!
//! Meta's `T`, `N` and `R` are applied in the order the flags were given, as memcached walks
//! them: `R` compares with the expiry a preceding `T` has just set.
//!
//! Differences from 1.6.18, both deliberate:
//! - `l` and `me`'s `la=` report the seconds since the item was last *written*: slabcached
//!   keeps no access time in its item header (see `slabcache`'s `marks` module). memcached
//!   refreshes its time only on an item's second fetch, so the two agree until then.
//! - `me`'s `cls=` and `size=` are slabcached's own class id and item size (its header is
//!   smaller than memcached's).

use proto::meta::{DebugInfo, ItemMeta, MetaFlags};
use proto::ProtoError;
use slabcache::{GetOptions, HitCounter, ItemView, Lookup};

use super::outcome::{expiry, ttl_left, Hit, Keys, Outcome, Reply};
use crate::context::Context;
use crate::stats::detail::PrefixOp;
use crate::stats::{bump, Counters};
use crate::watch::{self, GetStatus, WatchStreams};

/// The legacy auto-discovery key: `get AmazonElastiCache:cluster` answers the cluster
/// config as an ordinary value.
const LEGACY_CLUSTER_KEY: &[u8] = b"AmazonElastiCache:cluster";

pub struct Get<'a> {
    pub keys: Keys<'a>,
    /// gat, gats, binary Gat, `mg` with `T`: the new expiry, as sent.
    pub touch: Option<i64>,
    /// The line went on with a key too long (or, with `-o read_buf_mem_limit`, has more
    /// keys than replies can be held): memcached looks the keys up (and counts and touches
    /// them), drops their replies and answers this error instead.
    pub refused: Option<ProtoError>,
    /// `mg`'s flags.
    pub meta: Option<&'a MetaFlags<'a>>,
    /// Keys already answered by earlier turns of this request (a resumed multi-get).
    pub skip: usize,
}

/// An encoder that drops everything (the replies of a refused get line).
struct Discard;

impl Reply for Discard {
    fn send(&mut self, _: Outcome<'_>) {}
}

/// Run a get; `Some(n)`: the reply is full after `n` keys and the rest waits (the
/// encoder is asked between keys, so a reply ends up at most one value past its bound).
pub(super) fn get<R: Reply>(g: Get<'_>, ctx: &Context, counters: &Counters, reply: &mut R) -> Option<usize> {
    let touch = g.touch.map(|t| expiry(ctx, t));
    if let Some(error) = g.refused {
        for key in g.keys {
            one(key, touch, None, ctx, counters, &mut Discard);
        }
        reply.send(Outcome::Failed(error));
        return None;
    }
    let mut done = g.skip;
    let mut keys = g.keys.skip(g.skip).peekable();
    while let Some(key) = keys.next() {
        one(key, touch, g.meta, ctx, counters, reply);
        done += 1;
        // A value still being written in pieces pauses even the last key: `END` follows it.
        if reply.full() && (keys.peek().is_some() || reply.writing_value()) {
            return Some(done);
        }
    }
    reply.send(Outcome::GetEnd);
    None
}

fn one<R: Reply>(
    key: &[u8],
    touch: Option<u32>,
    meta: Option<&MetaFlags<'_>>,
    ctx: &Context,
    counters: &Counters,
    reply: &mut R,
) {
    let now = ctx.clock.now();
    let vivify = meta.and_then(|f| f.vivify_ttl).map(|t| expiry(ctx, t.into()));
    let opts = GetOptions {
        bump: !meta.is_some_and(|f| f.no_bump),
        vivify: vivify.is_some(),
        counter: if touch.is_some() {
            HitCounter::Touch
        } else {
            HitCounter::Get
        },
    };
    let lookup = ctx.cache.lookup(key, now, opts, |it| {
        let item = match meta {
            Some(f) => meta_item(it, f, touch, vivify, ctx, now),
            None => {
                if let Some(t) = touch {
                    it.set_exptime(t);
                }
                ItemMeta::default()
            }
        };
        reply.send(Outcome::Hit(&Hit {
            key: it.key,
            value: it.value,
            flags: it.flags,
            cas: it.cas,
            meta: item,
        }));
        (it.class, it.value.len())
    });
    // memcached counts text and binary gets (and gats) by prefix, not meta's.
    if meta.is_none() {
        let found = matches!(lookup, Lookup::Hit(_)) || (touch.is_none() && key == LEGACY_CLUSTER_KEY);
        ctx.detail.record(key, PrefixOp::Get { hit: found });
    }
    if ctx.watch.wants(WatchStreams::FETCHERS) {
        watch::events::item_get(ctx, key, GetStatus::of(&lookup));
    }
    if let Lookup::Hit(_) = lookup {
        if touch.is_some() {
            bump(&counters.cmd_touch, 1);
            bump(&counters.touch_hits, 1);
        } else {
            bump(&counters.cmd_get, 1);
            bump(&counters.get_hits, 1);
        }
        return;
    }
    if touch.is_none() && meta.is_none() && key == LEGACY_CLUSTER_KEY {
        bump(&counters.cmd_get, 1);
        bump(&counters.get_hits, 1);
        let body = ctx.cluster.body();
        reply.send(Outcome::Hit(&Hit {
            key,
            value: slabcache::Value::from_slice(&body),
            flags: 0,
            cas: 0,
            meta: ItemMeta::default(),
        }));
        return;
    }
    // A meta miss counts as a get even with `T`.
    if touch.is_some() && meta.is_none() {
        bump(&counters.cmd_touch, 1);
        bump(&counters.touch_misses, 1);
    } else {
        bump(&counters.cmd_get, 1);
        bump(&counters.get_misses, 1);
    }
    reply.send(Outcome::Miss { key });
}

/// Apply `mg`'s `T`, `N`, `R` in flag order and report what its return flags show.
fn meta_item(
    it: &ItemView<'_>,
    f: &MetaFlags<'_>,
    touch: Option<u32>,
    vivify: Option<u32>,
    ctx: &Context,
    now: u32,
) -> ItemMeta {
    let recache = f.recache_ttl.map(|t| expiry(ctx, t.into()));
    let before = it.exptime();
    let mut new_ttl = None;
    let mut won = false;
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
    ItemMeta {
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
    }
}

/// text `touch`, binary Touch: a new expiry, and the item marked fetched.
pub(super) fn touch<R: Reply>(key: &[u8], exptime: i64, ctx: &Context, counters: &Counters, reply: &mut R) {
    let exptime = expiry(ctx, exptime);
    let opts = GetOptions {
        bump: true,
        vivify: false,
        counter: HitCounter::Touch,
    };
    let mut item = None;
    let lookup = ctx.cache.lookup(key, ctx.clock.now(), opts, |it| {
        it.set_exptime(exptime);
        item = Some((it.cas, it.flags));
        (it.class, it.value.len())
    });
    if ctx.watch.wants(WatchStreams::FETCHERS) {
        watch::events::item_get(ctx, key, GetStatus::of(&lookup));
    }
    let found = item;
    bump(&counters.cmd_touch, 1);
    bump(
        if found.is_some() {
            &counters.touch_hits
        } else {
            &counters.touch_misses
        },
        1,
    );
    reply.send(Outcome::Touched(found));
}

/// `me`: a peek that changes nothing.
pub(super) fn debug<R: Reply>(key: &[u8], ctx: &Context, counters: &Counters, reply: &mut R) {
    bump(&counters.cmd_meta, 1);
    let now = ctx.clock.now();
    let peek = GetOptions {
        bump: false,
        vivify: false,
        counter: HitCounter::None,
    };
    let lookup = ctx.cache.lookup(key, now, peek, |it| {
        let info = DebugInfo {
            ttl: ttl_left(it.exptime(), now),
            last_access: u64::from(now.saturating_sub(it.written_at())),
            cas: it.cas,
            fetched: it.fetched,
            class_id: it.class as u32,
            size: it.total_size() as u64,
            key_binary: it.key_binary(),
        };
        reply.send(Outcome::Debug(Some((it.key, info))));
        (it.class, it.value.len())
    });
    if ctx.watch.wants(WatchStreams::FETCHERS) {
        watch::events::item_get(ctx, key, GetStatus::of(&lookup));
    }
    if !matches!(lookup, Lookup::Hit(_)) {
        reply.send(Outcome::Debug(None));
    }
}
