//! The `stats` family of replies, as rows every protocol encodes: general `stats` here,
//! [`settings`], the per-class groups in [`classes`] (`stats slabs`, `stats items`),
//! [`conns`] (`stats conns`) and [`detail`] (`stats detail`, per key prefix). The worker
//! counters they sum are in [`counters`].
//!
//! Each group lists every field memcached 1.6.18 lists, in its order, under the same
//! conditions (a feature's fields only while it is on); a field of a feature slabcached
//! lacks shows the value memcached shows with that feature off. Fields only slabcached has
//! come after memcached's. Comments mark where rows of features built elsewhere go.

pub mod classes;
pub mod conns;
pub mod counters;
pub mod detail;
pub mod settings;

use std::fmt::Display;
use std::sync::atomic::Ordering::Relaxed;

pub use classes::{items, slabs};
pub use conns::{conns, ConnState};
pub use counters::{bump, Counters, StatsRegistry, Totals};
pub use settings::settings;

use crate::config::PROTOCOL_VERSION;
use crate::context::Context;

/// Named values, in the order `stats` lists them; every protocol encodes them its own way
/// (text `STAT <name> <value>` lines, binary Stat packets).
pub type Rows = Vec<(String, String)>;

fn write_stat(rows: &mut Rows, name: impl Display, value: impl Display) {
    rows.push((name.to_string(), value.to_string()));
}

fn write_all<V: Display>(rows: &mut Rows, list: impl IntoIterator<Item = (&'static str, V)>) {
    for (name, value) in list {
        write_stat(rows, name, value);
    }
}

/// General `stats`.
pub fn general(shared: &Context) -> Rows {
    let mut rows = Rows::new();
    let out = &mut rows;
    let cfg = &shared.config;
    let t = shared.stats.totals();
    let c = shared.cache.stats();
    let (user, system) = crate::sys::rusage();
    let clock = &shared.clock;
    let curr = shared.curr_connections.load(Relaxed) as u64;
    let listeners = shared.listeners.len() as u64;
    write_stat(out, "pid", std::process::id());
    write_stat(out, "uptime", clock.uptime());
    write_stat(out, "time", clock.unix());
    write_stat(out, "version", PROTOCOL_VERSION);
    write_stat(out, "libevent", "none");
    write_stat(out, "pointer_size", usize::BITS);
    write_stat(out, "rusage_user", format_args!("{user:.6}"));
    write_stat(out, "rusage_system", format_args!("{system:.6}"));
    write_all(
        out,
        [
            ("max_connections", cfg.max_connections as u64),
            ("curr_connections", curr),
            ("total_connections", t.total_connections + listeners),
            // memcached lists it only with maxconns_fast, which slabcached always has.
            ("rejected_connections", t.rejected_connections),
            ("connection_structures", curr + listeners),
        ],
    );
    // Buffer accounting: the workers' pooled buffers (gauges as differences of counters
    // that are never reset) and the partial requests' global budget.
    let raw = shared.stats.raw();
    let pooled = raw.buf_allocs.saturating_sub(raw.buf_frees);
    let in_use = raw.buf_takes.saturating_sub(raw.buf_gives);
    let writing = raw.wbuf_takes.saturating_sub(raw.wbuf_gives);
    const BUF: u64 = crate::net::bufpool::BUF_SIZE as u64;
    write_stat(out, "response_obj_oom", t.response_obj_oom);
    write_stat(out, "response_obj_count", t.response_obj_count);
    write_stat(out, "response_obj_bytes", writing * BUF);
    write_stat(out, "read_buf_count", pooled);
    write_stat(
        out,
        "read_buf_bytes",
        pooled * BUF + shared.read_budget.used() as u64,
    );
    write_stat(out, "read_buf_bytes_free", pooled.saturating_sub(in_use) * BUF);
    write_stat(out, "read_buf_oom", t.read_buf_oom);
    write_stat(out, "reserved_fds", 20);
    write_all(
        out,
        [
            ("cmd_get", t.cmd_get),
            ("cmd_set", t.cmd_set),
            ("cmd_flush", t.cmd_flush),
            ("cmd_touch", t.cmd_touch),
            ("cmd_meta", t.cmd_meta),
            ("get_hits", t.get_hits),
            ("get_misses", t.get_misses),
            ("get_expired", c.get_expired),
            ("get_flushed", c.get_flushed),
            ("delete_misses", t.delete_misses),
            ("delete_hits", t.delete_hits),
            ("incr_misses", t.incr_misses),
            ("incr_hits", t.incr_hits),
            ("decr_misses", t.decr_misses),
            ("decr_hits", t.decr_hits),
            ("cas_misses", t.cas_misses),
            ("cas_hits", t.cas_hits),
            ("cas_badval", t.cas_badval),
            ("touch_hits", t.touch_hits),
            ("touch_misses", t.touch_misses),
            ("store_too_large", t.store_too_large),
            ("store_no_memory", t.store_no_memory),
            ("auth_cmds", t.auth_cmds),
            ("auth_errors", t.auth_errors),
        ],
    );
    if cfg.idle_timeout != 0 {
        write_stat(out, "idle_kicks", t.idle_kicks);
    }
    write_all(
        out,
        [
            ("bytes_read", t.bytes_read),
            ("bytes_written", t.bytes_written),
            ("limit_maxbytes", c.limit_maxbytes),
            ("accepting_conns", 1),
            ("listen_disabled_num", 0),
            ("time_in_listen_disabled_us", 0),
            ("threads", cfg.threads as u64),
            ("conn_yields", t.conn_yields),
            ("hash_power_level", c.hash_bytes.max(4).ilog2() as u64 - 2),
            ("hash_bytes", c.hash_bytes),
            ("hash_is_expanding", 0),
        ],
    );
    if cfg.slab_reassign {
        let m = shared.cache.mover_stats();
        write_all(
            out,
            [
                ("slab_reassign_rescues", m.slab_reassign_rescues),
                ("slab_reassign_chunk_rescues", m.slab_reassign_chunk_rescues),
                ("slab_reassign_evictions_nomem", m.slab_reassign_evictions_nomem),
                ("slab_reassign_inline_reclaim", m.slab_reassign_inline_reclaim),
                ("slab_reassign_busy_items", m.slab_reassign_busy_items),
                ("slab_reassign_busy_deletes", m.slab_reassign_busy_deletes),
                ("slab_reassign_running", u64::from(m.slab_reassign_running)),
                ("slabs_moved", m.slabs_moved),
            ],
        );
    }
    let crawler = shared.cache.crawler_stats();
    if shared.maintenance.tunables().lru_crawler {
        write_stat(out, "lru_crawler_running", u8::from(crawler.lru_crawler_running));
        write_stat(out, "lru_crawler_starts", crawler.lru_crawler_starts);
    }
    let maintainer = cfg.lru_maintainer;
    if maintainer {
        write_stat(out, "lru_maintainer_juggles", shared.cache.lru_stats().juggles);
    }
    // The arena is mapped once at start: no allocation on the request path can fail.
    write_stat(out, "malloc_fails", 0);
    for (name, value) in shared.watch.stats_rows() {
        write_stat(out, name, value);
    }
    tls_rows(shared, out);
    // memcached's NAPI-id thread selection and its round-robin fallback: not used.
    write_stat(out, "unexpected_napi_ids", 0);
    write_stat(out, "round_robin_fallback", 0);
    write_all(
        out,
        [
            ("bytes", c.bytes),
            ("curr_items", c.curr_items),
            ("total_items", c.total_items),
            ("slab_global_page_pool", c.slab_global_page_pool),
            ("expired_unfetched", c.expired_unfetched),
            ("evicted_unfetched", c.evicted_unfetched),
        ],
    );
    if maintainer {
        let active: u64 = shared.cache.class_stats().iter().map(|k| k.evicted_active).sum();
        write_stat(out, "evicted_active", active);
    }
    write_all(
        out,
        [
            ("evictions", c.evictions),
            ("reclaimed", c.reclaimed),
            ("crawler_reclaimed", crawler.crawler_reclaimed),
            ("crawler_items_checked", crawler.crawler_items_checked),
            // An LRU walk never finds an item it cannot lock: items are not refcounted.
            ("lrutail_reflocked", 0),
        ],
    );
    if maintainer {
        let (to_cold, to_warm, within, reclaims) =
            shared
                .cache
                .class_stats()
                .iter()
                .fold((0, 0, 0, 0), |(cold, warm, within, reclaims), k| {
                    (
                        cold + k.moves_to_cold,
                        warm + k.moves_to_warm,
                        within + k.moves_within_lru,
                        reclaims + k.direct_reclaims,
                    )
                });
        write_all(
            out,
            [
                ("moves_to_cold", to_cold),
                ("moves_to_warm", to_warm),
                ("moves_within_lru", within),
                ("direct_reclaims", reclaims),
                ("lru_bumps_dropped", shared.cache.lru_stats().bumps_dropped),
            ],
        );
    }
    rows
}

/// The TLS counters, where memcached lists them (only under `-Z`; `ssl_new_sessions` only
/// with the session cache). `ssl_proto_errors` (newer memcached's) shows once it counted
/// something, so 1.6.18's stats stay as many as its suite expects.
fn tls_rows(shared: &Context, out: &mut Rows) {
    let Some(tls) = &shared.tls else { return };
    if tls.options().session_cache {
        write_stat(out, "ssl_new_sessions", tls.new_sessions.load(Relaxed));
    }
    write_stat(out, "ssl_handshake_errors", tls.handshake_errors.load(Relaxed));
    let proto_errors = tls.proto_errors.load(Relaxed);
    if proto_errors > 0 {
        write_stat(out, "ssl_proto_errors", proto_errors);
    }
    write_stat(out, "time_since_server_cert_refresh", tls.seconds_since_refresh());
}

/// A float as C's `printf("%.<precision>f")` writes it: Rust's rounding of the exact
/// binary value is the same, but C spells the non-numbers `nan`, `-nan`, `inf`, `-inf`.
pub(crate) struct CFixed(pub f64, pub usize);

impl std::fmt::Display for CFixed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let CFixed(v, precision) = *self;
        let sign = if v.is_sign_negative() { "-" } else { "" };
        if v.is_nan() {
            write!(f, "{sign}nan")
        } else if v.is_infinite() {
            write!(f, "{sign}inf")
        } else {
            write!(f, "{v:.precision$}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::CFixed;

    #[test]
    fn floats_print_like_c() {
        assert_eq!(CFixed(0.8, 2).to_string(), "0.80");
        assert_eq!(CFixed(0.125, 2).to_string(), "0.12");
        assert_eq!(CFixed(f64::NAN, 2).to_string(), "nan");
        assert_eq!(CFixed(-f64::NAN, 2).to_string(), "-nan");
        assert_eq!(CFixed(f64::NEG_INFINITY, 2).to_string(), "-inf");
    }
}
