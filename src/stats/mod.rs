//! The `stats` family of replies (with the engine's own counters, its page mover's and
//! crawler's, and the run-time settings of [`crate::maintain`]). The counters themselves
//! are in [`counters`].

pub mod counters;

use std::sync::atomic::Ordering::Relaxed;

pub use counters::{bump, Counters, StatsRegistry, Totals};

use std::fmt::Display;

use crate::config::PROTOCOL_VERSION;
use crate::context::Context;

/// Named values, in the order `stats` lists them; every protocol encodes them its own way
/// (text `STAT <name> <value>` lines, binary Stat packets).
pub type Rows = Vec<(String, String)>;

fn write_stat(rows: &mut Rows, name: impl Display, value: impl Display) {
    rows.push((name.to_string(), value.to_string()));
}

pub fn general(shared: &Context) -> Rows {
    let mut rows = Rows::new();
    let out = &mut rows;
    let t = shared.stats.totals();
    let c = shared.cache.stats();
    let (user, system) = crate::sys::rusage();
    let clock = &shared.clock;
    let curr = shared.curr_connections.load(Relaxed) as u64;
    let s = |out: &mut Rows, name: &str, value: &dyn Display| write_stat(out, name, value);
    s(out, "pid", &std::process::id());
    s(out, "uptime", &clock.uptime());
    s(out, "time", &clock.unix());
    s(out, "version", &PROTOCOL_VERSION);
    s(out, "libevent", &"none");
    s(out, "pointer_size", &(usize::BITS));
    s(out, "rusage_user", &format_args!("{user:.6}"));
    s(out, "rusage_system", &format_args!("{system:.6}"));
    s(out, "max_connections", &shared.config.max_connections);
    s(out, "curr_connections", &curr);
    s(
        out,
        "total_connections",
        &(t.total_connections + shared.listeners.len() as u64),
    );
    s(out, "rejected_connections", &t.rejected_connections);
    s(
        out,
        "connection_structures",
        &(curr + shared.listeners.len() as u64),
    );
    let raw = shared.stats.raw();
    let pooled = raw.buf_allocs.saturating_sub(raw.buf_frees);
    let in_use = raw.buf_takes.saturating_sub(raw.buf_gives);
    let writing = raw.wbuf_takes.saturating_sub(raw.wbuf_gives);
    const BUF: u64 = crate::net::bufpool::BUF_SIZE as u64;
    s(out, "response_obj_oom", &t.response_obj_oom);
    s(out, "response_obj_count", &t.response_obj_count);
    s(out, "response_obj_bytes", &(writing * BUF));
    s(out, "read_buf_count", &pooled);
    s(
        out,
        "read_buf_bytes",
        &(pooled * BUF + shared.read_budget.used() as u64),
    );
    s(out, "read_buf_bytes_free", &(pooled.saturating_sub(in_use) * BUF));
    s(out, "read_buf_oom", &t.read_buf_oom);
    s(out, "reserved_fds", &20);
    for (name, value) in [
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
    ] {
        write_stat(out, name, value);
    }
    // memcached lists it only with an idle timeout.
    if shared.config.idle_timeout > 0 {
        write_stat(out, "idle_kicks", t.idle_kicks);
    }
    for (name, value) in [
        ("bytes_read", t.bytes_read),
        ("bytes_written", t.bytes_written),
        ("limit_maxbytes", c.limit_maxbytes),
        ("accepting_conns", 1),
        ("listen_disabled_num", 0),
        ("time_in_listen_disabled_us", 0),
        ("threads", shared.config.threads as u64),
        ("conn_yields", t.conn_yields),
        ("hash_power_level", c.hash_bytes.max(4).ilog2() as u64 - 2),
        ("hash_bytes", c.hash_bytes),
        ("hash_is_expanding", 0),
    ] {
        write_stat(out, name, value);
    }
    // memcached lists these only while the feature is on.
    if shared.config.slab_reassign {
        let m = shared.cache.mover_stats();
        for (name, value) in [
            ("slab_reassign_rescues", m.slab_reassign_rescues),
            ("slab_reassign_chunk_rescues", m.slab_reassign_chunk_rescues),
            ("slab_reassign_evictions_nomem", m.slab_reassign_evictions_nomem),
            ("slab_reassign_inline_reclaim", m.slab_reassign_inline_reclaim),
            ("slab_reassign_busy_items", m.slab_reassign_busy_items),
            ("slab_reassign_busy_deletes", m.slab_reassign_busy_deletes),
            ("slab_reassign_running", u64::from(m.slab_reassign_running)),
            ("slabs_moved", m.slabs_moved),
        ] {
            write_stat(out, name, value);
        }
    }
    let crawler = shared.cache.crawler_stats();
    if shared.maintenance.tunables().lru_crawler {
        write_stat(out, "lru_crawler_running", u8::from(crawler.lru_crawler_running));
        write_stat(out, "lru_crawler_starts", crawler.lru_crawler_starts);
    }
    let maintainer = shared.config.lru_maintainer;
    if maintainer {
        write_stat(out, "lru_maintainer_juggles", 0);
    }
    for (name, value) in [
        ("bytes", c.bytes),
        ("curr_items", c.curr_items),
        ("total_items", c.total_items),
        ("slab_global_page_pool", c.slab_global_page_pool),
        ("expired_unfetched", c.expired_unfetched),
        ("evicted_unfetched", c.evicted_unfetched),
    ] {
        write_stat(out, name, value);
    }
    if maintainer {
        write_stat(out, "evicted_active", 0);
    }
    for (name, value) in [
        ("evictions", c.evictions),
        ("reclaimed", c.reclaimed),
        ("crawler_reclaimed", crawler.crawler_reclaimed),
        ("crawler_items_checked", crawler.crawler_items_checked),
        ("total_malloced", c.total_malloced),
    ] {
        write_stat(out, name, value);
    }
    rows
}

/// A float as C's `printf("%.<precision>f")` writes it: Rust's rounding of the exact
/// binary value is the same, but C spells the non-numbers `nan`, `-nan`, `inf`, `-inf`.
struct CFixed(f64, usize);

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

pub fn settings(shared: &Context) -> Rows {
    let mut rows = Rows::new();
    let out = &mut rows;
    let cfg = &shared.config;
    let t = shared.maintenance.tunables();
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    let inter = if cfg.unix_socket.is_some() {
        "NULL".to_string()
    } else {
        cfg.listen_text.clone()
    };
    let domain = cfg
        .unix_socket
        .as_ref()
        .map_or_else(|| "NULL".to_string(), |p| p.display().to_string());
    let list: Vec<(&str, String)> = vec![
        ("maxbytes", shared.cache.memory_limit().to_string()),
        ("maxconns", cfg.max_connections.to_string()),
        ("tcpport", cfg.port.to_string()),
        ("udpport", cfg.udp_port.to_string()),
        ("inter", inter),
        ("verbosity", shared.verbosity.load(Relaxed).to_string()),
        ("oldest", "0".into()),
        ("evictions", if cfg.evictions { "on" } else { "off" }.into()),
        ("domain_socket", domain),
        ("umask", format!("{:o}", cfg.unix_mask)),
        ("shutdown_command", yes_no(cfg.enable_shutdown).into()),
        ("growth_factor", format!("{:.2}", cfg.growth_factor)),
        ("chunk_size", cfg.min_chunk.to_string()),
        ("num_threads", cfg.threads.to_string()),
        ("num_threads_per_udp", cfg.threads.to_string()),
        ("stat_key_prefix", cfg.prefix_delimiter.to_string()),
        ("detail_enabled", "no".into()),
        ("reqs_per_event", cfg.reqs_per_event.to_string()),
        ("cas_enabled", yes_no(cfg.use_cas).into()),
        ("tcp_backlog", cfg.backlog.to_string()),
        ("binding_protocol", cfg.binding.stats_name().into()),
        ("auth_enabled_sasl", "no".into()),
        ("auth_enabled_ascii", "no".into()),
        ("item_size_max", cfg.item_size_max.to_string()),
        ("maxconns_fast", "yes".into()),
        ("hashpower_init", "0".into()),
        ("slab_reassign", yes_no(cfg.slab_reassign).into()),
        ("slab_automove", t.slab_automove.to_string()),
        (
            "slab_automove_ratio",
            CFixed(t.slab_automove_ratio, 2).to_string(),
        ),
        ("slab_automove_window", cfg.slab_automove_window.to_string()),
        ("slab_chunk_max", cfg.slab_chunk_max.to_string()),
        ("lru_crawler", yes_no(t.lru_crawler).into()),
        ("lru_crawler_sleep", t.lru_crawler_sleep.to_string()),
        ("lru_crawler_tocrawl", t.lru_crawler_tocrawl.to_string()),
        ("tail_repair_time", "0".into()),
        ("flush_enabled", yes_no(cfg.flush_enabled).into()),
        ("dump_enabled", yes_no(cfg.dump_enabled).into()),
        ("hash_algorithm", "ahash".into()),
        ("lru_maintainer_thread", yes_no(cfg.lru_maintainer).into()),
        ("lru_segmented", yes_no(t.lru_segmented).into()),
        ("hot_lru_pct", t.hot_lru_pct.to_string()),
        ("warm_lru_pct", t.warm_lru_pct.to_string()),
        ("hot_max_factor", CFixed(t.hot_max_factor, 2).to_string()),
        ("warm_max_factor", CFixed(t.warm_max_factor, 2).to_string()),
        ("temp_lru", yes_no(t.temp_lru).into()),
        ("temporary_ttl", t.temporary_ttl.to_string()),
        ("idle_timeout", cfg.idle_timeout.to_string()),
        ("read_buf_mem_limit", cfg.read_buf_mem_limit.to_string()),
        (
            "track_sizes",
            yes_no(shared.cache.size_histogram().is_some()).into(),
        ),
        ("item_header_size", slabcache::ITEM_HEADER_SIZE.to_string()),
    ];
    for (name, value) in list {
        write_stat(out, name, value);
    }
    rows
}

pub fn slabs(shared: &Context) -> Rows {
    let mut rows = Rows::new();
    let out = &mut rows;
    let classes = shared.cache.class_stats();
    for c in &classes {
        let id = c.id;
        for (name, value) in [
            ("chunk_size", c.chunk_size),
            ("chunks_per_page", c.chunks_per_page),
            ("total_pages", c.total_pages),
            ("total_chunks", c.total_chunks),
            ("used_chunks", c.used_chunks),
            ("free_chunks", c.free_chunks),
            ("free_chunks_end", c.free_chunks_end),
            ("get_hits", c.get_hits),
            ("cmd_set", c.cmd_set),
            ("delete_hits", c.delete_hits),
            ("incr_hits", c.incr_hits),
            ("decr_hits", c.decr_hits),
            ("cas_hits", c.cas_hits),
            ("cas_badval", c.cas_badval),
            ("touch_hits", c.touch_hits),
        ] {
            write_stat(out, format_args!("{id}:{name}"), value);
        }
    }
    write_stat(out, "active_slabs", classes.len());
    write_stat(out, "total_malloced", shared.cache.stats().total_malloced);
    rows
}

pub fn items(shared: &Context) -> Rows {
    let mut rows = Rows::new();
    let out = &mut rows;
    for c in shared.cache.class_stats().iter().filter(|c| c.items > 0) {
        let id = c.id;
        for (name, value) in [
            ("number", c.items),
            ("number_hot", 0),
            ("number_warm", c.warm_items),
            ("number_cold", c.items - c.warm_items),
            ("age_hot", 0),
            ("age_warm", 0),
            ("age", 0),
            ("mem_requested", c.mem_requested),
            ("evicted", c.evicted),
            ("evicted_nonzero", c.evicted_nonzero),
            ("evicted_time", 0),
            ("outofmemory", c.outofmemory),
            ("tailrepairs", 0),
            ("reclaimed", c.reclaimed),
            ("expired_unfetched", c.expired_unfetched),
            ("evicted_unfetched", c.evicted_unfetched),
            ("evicted_active", 0),
            ("crawler_reclaimed", c.crawler_reclaimed),
            ("crawler_items_checked", c.crawler_items_checked),
            ("lrutail_reflocked", 0),
            ("moves_to_cold", c.moves_to_cold),
            ("moves_to_warm", c.moves_to_warm),
            ("moves_within_lru", 0),
            ("direct_reclaims", 0),
            ("hits_to_hot", 0),
            ("hits_to_warm", 0),
            ("hits_to_cold", c.get_hits),
            ("hits_to_temp", 0),
        ] {
            write_stat(out, format_args!("items:{id}:{name}"), value);
        }
    }
    rows
}

pub fn conns(shared: &Context) -> Rows {
    let mut rows = Rows::new();
    let out = &mut rows;
    let now = shared.clock.now();
    for (fd, name) in &shared.listeners {
        write_stat(out, format_args!("{fd}:addr"), name);
        write_stat(out, format_args!("{fd}:state"), "conn_listening");
        write_stat(
            out,
            format_args!("{fd}:secs_since_last_cmd"),
            shared.clock.uptime(),
        );
    }
    let conns = shared.conns.lock().unwrap_or_else(|e| e.into_inner());
    for (fd, entry) in conns.iter() {
        write_stat(out, format_args!("{fd}:addr"), &entry.addr);
        write_stat(out, format_args!("{fd}:listen_addr"), &entry.listen_addr);
        write_stat(out, format_args!("{fd}:state"), "conn_parse_cmd");
        write_stat(
            out,
            format_args!("{fd}:secs_since_last_cmd"),
            now.saturating_sub(entry.last_cmd.load(Relaxed)),
        );
    }
    rows
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
