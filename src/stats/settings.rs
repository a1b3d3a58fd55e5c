//! `stats settings`: the configuration and the run-time settings of
//! [`crate::maintain`], in memcached 1.6.18's order. Settings of features slabcached
//! does not have (external storage, NAPI ids) show what memcached shows with them off.

use std::sync::atomic::Ordering::Relaxed;

use super::{write_stat, CFixed, Rows};
use crate::context::Context;

/// memcached's external-storage settings as it lists them with no `ext_path` (slabcached
/// has no external storage), in its order.
const EXTSTORE_OFF: [(&str, &str); 11] = [
    ("ext_item_size", "512"),
    ("ext_item_age", "4294967295"),
    ("ext_low_ttl", "0"),
    ("ext_recache_rate", "2000"),
    ("ext_wbuf_size", "4194304"),
    ("ext_compact_under", "0"),
    ("ext_drop_under", "0"),
    ("ext_max_sleep", "1000000"),
    ("ext_max_frag", "0.80"),
    ("slab_automove_freeratio", "0.010"),
    ("ext_drop_unread", "no"),
];

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
        ("detail_enabled", yes_no(shared.detail.enabled()).into()),
        ("reqs_per_event", cfg.reqs_per_event.to_string()),
        ("cas_enabled", yes_no(cfg.use_cas).into()),
        ("tcp_backlog", cfg.backlog.to_string()),
        ("binding_protocol", cfg.binding.stats_name().into()),
        ("auth_enabled_sasl", yes_no(cfg.sasl).into()),
        (
            "auth_enabled_ascii",
            cfg.auth_file
                .as_ref()
                .map_or_else(|| "no".into(), |p| p.display().to_string()),
        ),
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
    ];
    for (name, value) in list {
        write_stat(out, name, value);
    }
    write_stat(out, "watcher_logbuf_size", cfg.watcher_logbuf_size);
    write_stat(out, "worker_logbuf_size", cfg.worker_logbuf_size);
    write_stat(out, "read_buf_mem_limit", cfg.read_buf_mem_limit);
    write_stat(
        out,
        "track_sizes",
        yes_no(shared.cache.size_histogram().is_some()),
    );
    // A dead setting in memcached, which can only be "no".
    write_stat(out, "inline_ascii_response", "no");
    for (name, value) in EXTSTORE_OFF {
        write_stat(out, name, value);
    }
    tls_settings(cfg, out);
    write_stat(out, "num_napi_ids", "(null)");
    write_stat(
        out,
        "memory_file",
        cfg.memory_file
            .as_ref()
            .map_or_else(|| "(null)".to_string(), |p| p.display().to_string()),
    );
    // slabcached's own settings, after memcached's.
    write_stat(out, "item_header_size", slabcache::ITEM_HEADER_SIZE);
    rows
}

/// A path setting as memcached prints it, `unset` when there is none.
fn c_string(path: &Option<std::path::PathBuf>, unset: &str) -> String {
    path.as_ref()
        .map_or_else(|| unset.to_string(), |p| p.display().to_string())
}

/// `stats settings`' TLS rows, in memcached's order, with its spellings.
fn tls_settings(cfg: &crate::config::Config, out: &mut Rows) {
    use crate::config::TlsOptions;
    let tls = &cfg.tls;
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    for (name, value) in [
        ("ssl_enabled", yes_no(tls.enabled).to_string()),
        // memcached prints these two with `%s` whether set or not: "(null)" when not.
        ("ssl_chain_cert", c_string(&tls.chain_cert, "(null)")),
        ("ssl_key", c_string(&tls.key, "(null)")),
        ("ssl_verify_mode", tls.verify_flags().to_string()),
        ("ssl_keyformat", tls.keyformat.to_string()),
        (
            "ssl_ciphers",
            tls.ciphers.clone().unwrap_or_else(|| "NULL".into()),
        ),
        ("ssl_ca_cert", c_string(&tls.ca_cert, "NULL")),
        ("ssl_wbuf_size", tls.wbuf_size.to_string()),
        ("ssl_session_cache", yes_no(tls.session_cache).to_string()),
        // rustls has no kernel offload: never in force.
        ("ssl_kernel_tls", "no".to_string()),
        (
            "ssl_min_version",
            TlsOptions::version_name(tls.effective_min_version()).to_string(),
        ),
    ] {
        write_stat(out, name, value);
    }
}
