//! The `/metrics` page: Prometheus text exposition format (version 0.0.4).
//!
//! The memcached figures come from the rows `stats`, `stats settings`, `stats slabs` and
//! `stats items` answer ([`crate::stats`]), under the metric names, types and labels of
//! prometheus/memcached_exporter, so dashboards and alerts written for the exporter work
//! unchanged; a row the server does not list is left out, as the exporter leaves it out.
//! Then slabcached's own: latency and value-size histograms ([`super::WorkerMetrics`])
//! and the hot keys.

use std::collections::{BTreeMap, HashMap};
use std::fmt::{Display, Write};

use super::histogram::{Snapshot, BUCKETS};
use super::{CommandKind, LATENCY_SAMPLE_GAP};
use crate::context::Context;
use crate::hotkeys;
use crate::stats::{self, Rows};

/// The exposition being written.
struct Page {
    out: String,
}

/// Whether a figure only grows (counter) or goes up and down (gauge).
#[derive(Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        }
    }
}

/// A label value with `\`, `"` and newlines escaped, as the format requires.
fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Page {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Display) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape_label(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }

    /// One unlabelled figure from a row, if the row is there and numeric.
    fn row(&mut self, rows: &Lookup<'_>, stat: &str, name: &str, kind: Kind, help: &str) {
        if let Some(v) = rows.number(stat) {
            self.family(name, kind.name(), help);
            self.sample(name, &[], v);
        }
    }
}

/// Rows by name.
struct Lookup<'a>(HashMap<&'a str, &'a str>);

impl<'a> Lookup<'a> {
    fn new(rows: &'a Rows) -> Lookup<'a> {
        Lookup(rows.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect())
    }

    fn number(&self, stat: &str) -> Option<f64> {
        self.0.get(stat).and_then(|v| v.parse::<f64>().ok())
    }

    fn yes_no(&self, stat: &str) -> Option<u8> {
        match *self.0.get(stat)? {
            "yes" => Some(1),
            "no" => Some(0),
            _ => None,
        }
    }
}

/// Rows named `<prefix><class>:<field>`, by class then field.
fn per_class<'a>(rows: &'a Rows, prefix: &str) -> BTreeMap<u32, HashMap<&'a str, f64>> {
    let mut classes: BTreeMap<u32, HashMap<&str, f64>> = BTreeMap::new();
    for (name, value) in rows {
        let Some(rest) = name.strip_prefix(prefix) else {
            continue;
        };
        let Some((class, field)) = rest.split_once(':') else {
            continue;
        };
        if let (Ok(class), Ok(value)) = (class.parse::<u32>(), value.parse::<f64>()) {
            classes.entry(class).or_default().insert(field, value);
        }
    }
    classes
}

/// `stats` rows: (stat, metric, kind, help).
#[rustfmt::skip]
const GENERAL: &[(&str, &str, Kind, &str)] = &[
    ("uptime", "memcached_uptime_seconds", Kind::Counter, "Seconds since the server started."),
    ("time", "memcached_time_seconds", Kind::Gauge, "The server's clock, as a Unix time."),
    ("rusage_user", "memcached_process_user_cpu_seconds_total", Kind::Counter, "CPU seconds spent in user mode."),
    ("rusage_system", "memcached_process_system_cpu_seconds_total", Kind::Counter, "CPU seconds spent in the kernel."),
    ("bytes", "memcached_current_bytes", Kind::Gauge, "Bytes the stored items take."),
    ("limit_maxbytes", "memcached_limit_bytes", Kind::Gauge, "Bytes the server may use for items (-m)."),
    ("curr_items", "memcached_current_items", Kind::Gauge, "Items stored now."),
    ("total_items", "memcached_items_total", Kind::Counter, "Items stored since the start."),
    ("bytes_read", "memcached_read_bytes_total", Kind::Counter, "Bytes read from clients."),
    ("bytes_written", "memcached_written_bytes_total", Kind::Counter, "Bytes written to clients."),
    ("curr_connections", "memcached_current_connections", Kind::Gauge, "Client connections open now."),
    ("total_connections", "memcached_connections_total", Kind::Counter, "Connections accepted since the start."),
    ("rejected_connections", "memcached_connections_rejected_total", Kind::Counter, "Connections refused because -c was reached."),
    ("conn_yields", "memcached_connections_yielded_total", Kind::Counter, "Times a connection gave way to others after -R requests in one event."),
    ("listen_disabled_num", "memcached_connections_listener_disabled_total", Kind::Counter, "Times accepting stopped because of the connection limit."),
    ("evictions", "memcached_items_evicted_total", Kind::Counter, "Unexpired items removed to make room for new ones."),
    ("reclaimed", "memcached_items_reclaimed_total", Kind::Counter, "Stores that reused the memory of an expired item."),
    ("store_too_large", "memcached_item_too_large_total", Kind::Counter, "Stores refused because the item exceeds the size limit (-I)."),
    ("store_no_memory", "memcached_item_no_memory_total", Kind::Counter, "Stores refused for lack of memory (-M, or nothing evictable)."),
    ("lru_crawler_starts", "memcached_lru_crawler_starts_total", Kind::Counter, "LRU crawls started."),
    ("direct_reclaims", "memcached_direct_reclaims_total", Kind::Counter, "Times a worker had to free memory itself to store an item."),
    ("crawler_items_checked", "memcached_lru_crawler_items_checked_total", Kind::Counter, "Items the LRU crawler looked at."),
    ("crawler_reclaimed", "memcached_lru_crawler_reclaimed_total", Kind::Counter, "Expired items the LRU crawler freed."),
    ("moves_to_cold", "memcached_lru_crawler_moves_to_cold_total", Kind::Counter, "Items moved to the COLD LRU."),
    ("moves_to_warm", "memcached_lru_crawler_moves_to_warm_total", Kind::Counter, "Items moved from COLD to WARM."),
    ("moves_within_lru", "memcached_lru_crawler_moves_within_lru_total", Kind::Counter, "Active items bumped within HOT or WARM."),
    ("accepting_conns", "memcached_accepting_connections", Kind::Gauge, "1 while the server accepts new connections."),
];

/// `stats settings` rows shown while the LRU crawler is on: (stat, metric, help).
#[rustfmt::skip]
const CRAWLER_SETTINGS: &[(&str, &str, &str)] = &[
    ("lru_crawler_sleep", "memcached_lru_crawler_sleep", "Microseconds the LRU crawler sleeps between slices."),
    ("lru_crawler_tocrawl", "memcached_lru_crawler_to_crawl", "Items per class one crawl looks at (0: all)."),
    ("hot_lru_pct", "memcached_lru_crawler_hot_percent", "Percent of a class's memory kept for the HOT LRU."),
    ("warm_lru_pct", "memcached_lru_crawler_warm_percent", "Percent of a class's memory kept for the WARM LRU."),
    ("hot_max_factor", "memcached_lru_crawler_hot_max_factor", "HOT items older than COLD's age times this move on."),
    ("warm_max_factor", "memcached_lru_crawler_warm_max_factor", "WARM items older than COLD's age times this move on."),
];

/// `stats slabs` fields: (field, metric, kind, help).
#[rustfmt::skip]
const SLABS: &[(&str, &str, Kind, &str)] = &[
    ("chunk_size", "memcached_slab_chunk_size_bytes", Kind::Gauge, "Bytes in each chunk of the class."),
    ("chunks_per_page", "memcached_slab_chunks_per_page", Kind::Gauge, "Chunks in one page of the class."),
    ("total_pages", "memcached_slab_current_pages", Kind::Gauge, "Pages the class holds."),
    ("total_chunks", "memcached_slab_current_chunks", Kind::Gauge, "Chunks the class holds."),
    ("used_chunks", "memcached_slab_chunks_used", Kind::Gauge, "Chunks holding an item."),
    ("free_chunks", "memcached_slab_chunks_free", Kind::Gauge, "Chunks free for an item."),
    ("free_chunks_end", "memcached_slab_chunks_free_end", Kind::Gauge, "Free chunks at the end of the last page."),
];

/// `stats items` fields: (field, metric, kind, help).
#[rustfmt::skip]
const ITEMS: &[(&str, &str, Kind, &str)] = &[
    // memcached 1.6 lists it under `stats items`; the exporter types it a counter.
    ("mem_requested", "memcached_slab_mem_requested_bytes", Kind::Counter, "Bytes the class's items take inside their chunks."),
    ("number", "memcached_slab_current_items", Kind::Gauge, "Items stored in the class."),
    ("number_hot", "memcached_slab_hot_items", Kind::Gauge, "Items in the class's HOT LRU."),
    ("number_warm", "memcached_slab_warm_items", Kind::Gauge, "Items in the class's WARM LRU."),
    ("number_cold", "memcached_slab_cold_items", Kind::Gauge, "Items in the class's COLD LRU."),
    ("number_temp", "memcached_slab_temporary_items", Kind::Gauge, "Items in the class's TEMP LRU."),
    ("age", "memcached_slab_items_age_seconds", Kind::Gauge, "Age of the class's oldest item, seconds."),
    ("age_hot", "memcached_slab_hot_age_seconds", Kind::Gauge, "Age of the oldest item in HOT, seconds."),
    ("age_warm", "memcached_slab_warm_age_seconds", Kind::Gauge, "Age of the oldest item in WARM, seconds."),
    ("crawler_reclaimed", "memcached_slab_items_crawler_reclaimed_total", Kind::Counter, "Expired items of the class the LRU crawler freed."),
    ("evicted", "memcached_slab_items_evicted_total", Kind::Counter, "Unexpired items of the class evicted."),
    ("evicted_nonzero", "memcached_slab_items_evicted_nonzero_total", Kind::Counter, "Evicted items that had an expiry time set."),
    ("evicted_time", "memcached_slab_items_evicted_time_seconds", Kind::Counter, "Seconds since the last access of the last evicted item."),
    ("evicted_unfetched", "memcached_slab_items_evicted_unfetched_total", Kind::Counter, "Evicted items never read."),
    ("expired_unfetched", "memcached_slab_items_expired_unfetched_total", Kind::Counter, "Expired items never read."),
    ("outofmemory", "memcached_slab_items_outofmemory_total", Kind::Counter, "Stores in the class that failed for lack of memory."),
    ("reclaimed", "memcached_slab_items_reclaimed_total", Kind::Counter, "Stores that reused an expired item's chunk."),
    ("tailrepairs", "memcached_slab_items_tailrepairs_total", Kind::Counter, "Items freed because a reference was leaked."),
    ("moves_to_cold", "memcached_slab_items_moves_to_cold", Kind::Counter, "Items of the class moved to COLD."),
    ("moves_to_warm", "memcached_slab_items_moves_to_warm", Kind::Counter, "Items of the class moved from COLD to WARM."),
    ("moves_within_lru", "memcached_slab_items_moves_within_lru", Kind::Counter, "Active items of the class bumped within HOT or WARM."),
];

/// Hits and misses per command, as the exporter splits them.
const COMMAND_OPS: [&str; 6] = ["get", "delete", "incr", "decr", "cas", "touch"];

fn general(page: &mut Page, ctx: &Context) {
    let rows = stats::general(ctx);
    let s = Lookup::new(&rows);
    page.family("memcached_up", "gauge", "1: the server answered this scrape.");
    page.sample("memcached_up", &[], 1);
    if let Some(version) = s.0.get("version") {
        page.family(
            "memcached_version",
            "gauge",
            "The memcached protocol version served, as a label.",
        );
        page.sample("memcached_version", &[("version", version)], 1);
    }
    for &(stat, name, kind, help) in GENERAL {
        page.row(&s, stat, name, kind, help);
    }
    let name = "memcached_commands_total";
    page.family(
        name,
        "counter",
        "Requests by command and result (hit, miss, badval).",
    );
    for op in COMMAND_OPS {
        for (suffix, status) in [("hits", "hit"), ("misses", "miss")] {
            if let Some(v) = s.number(&format!("{op}_{suffix}")) {
                page.sample(name, &[("command", op), ("status", status)], v);
            }
        }
    }
    if let Some(v) = s.number("cas_badval") {
        page.sample(name, &[("command", "cas"), ("status", "badval")], v);
    }
    if let Some(v) = s.number("cmd_flush") {
        page.sample(name, &[("command", "flush"), ("status", "hit")], v);
    }
    // Every store counts in cmd_set; the exporter reports the ones that were not a cas.
    if let (Some(set), Some(h), Some(m), Some(b)) = (
        s.number("cmd_set"),
        s.number("cas_hits"),
        s.number("cas_misses"),
        s.number("cas_badval"),
    ) {
        page.sample(name, &[("command", "set"), ("status", "hit")], set - h - m - b);
    }
}

fn settings(page: &mut Page, ctx: &Context) {
    let rows = stats::settings(ctx);
    let s = Lookup::new(&rows);
    page.row(
        &s,
        "maxconns",
        "memcached_max_connections",
        Kind::Gauge,
        "Most client connections allowed (-c).",
    );
    if s.yes_no("lru_crawler") != Some(1) {
        return;
    }
    page.family(
        "memcached_lru_crawler_enabled",
        "gauge",
        "1 while the LRU crawler is on.",
    );
    page.sample("memcached_lru_crawler_enabled", &[], 1);
    if let Some(v) = s.yes_no("lru_maintainer_thread") {
        let name = "memcached_lru_crawler_maintainer_thread";
        page.family(
            name,
            "gauge",
            "1 when the segmented LRU and its maintainer are on.",
        );
        page.sample(name, &[], v);
    }
    for &(stat, name, help) in CRAWLER_SETTINGS {
        page.row(&s, stat, name, Kind::Gauge, help);
    }
}

/// One family with a `slab` label from per-class values.
fn slab_family(
    page: &mut Page,
    classes: &BTreeMap<u32, HashMap<&str, f64>>,
    (field, name, kind, help): (&str, &str, Kind, &str),
) {
    if !classes.values().any(|c| c.contains_key(field)) {
        return;
    }
    page.family(name, kind.name(), help);
    for (class, values) in classes {
        if let Some(v) = values.get(field) {
            page.sample(name, &[("slab", &class.to_string())], v);
        }
    }
}

fn slabs(page: &mut Page, ctx: &Context) {
    let slab_rows = stats::slabs(ctx);
    // memcached 1.6 prints total_malloced in `stats slabs`, not in `stats`.
    page.row(
        &Lookup::new(&slab_rows),
        "total_malloced",
        "memcached_malloced_bytes",
        Kind::Gauge,
        "Bytes of slab pages allocated.",
    );
    let slabs = per_class(&slab_rows, "");
    for &entry in SLABS {
        slab_family(page, &slabs, entry);
    }
    let name = "memcached_slab_commands_total";
    page.family(name, "counter", "Requests per slab class by command and result.");
    for (class, v) in &slabs {
        let class = class.to_string();
        for op in COMMAND_OPS {
            if let Some(n) = v.get(format!("{op}_hits").as_str()) {
                page.sample(name, &[("slab", &class), ("command", op), ("status", "hit")], n);
            }
        }
        if let Some(n) = v.get("cas_badval") {
            page.sample(
                name,
                &[("slab", &class), ("command", "cas"), ("status", "badval")],
                n,
            );
        }
        if let (Some(set), Some(h), Some(b)) = (v.get("cmd_set"), v.get("cas_hits"), v.get("cas_badval")) {
            page.sample(
                name,
                &[("slab", &class), ("command", "set"), ("status", "hit")],
                set - h - b,
            );
        }
    }
    let item_rows = stats::items(ctx);
    let items = per_class(&item_rows, "items:");
    for &entry in ITEMS {
        slab_family(page, &items, entry);
    }
    let name = "memcached_slab_lru_hits_total";
    page.family(name, "counter", "Hits per slab class by the LRU the item was in.");
    for (class, v) in &items {
        let class = class.to_string();
        for (field, lru) in [
            ("hits_to_hot", "hot"),
            ("hits_to_warm", "warm"),
            ("hits_to_cold", "cold"),
            ("hits_to_temp", "temporary"),
        ] {
            if let Some(n) = v.get(field) {
                page.sample(name, &[("slab", &class), ("lru", lru)], n);
            }
        }
    }
}

/// A histogram family's samples for one label set; `le` of bucket `b` is `bound(b)`.
fn histogram(
    page: &mut Page,
    name: &str,
    labels: &[(&str, &str)],
    snap: &Snapshot,
    buckets: std::ops::RangeInclusive<usize>,
    bound: impl Fn(usize) -> String,
    sum: f64,
) {
    let bucket_name = format!("{name}_bucket");
    let mut cumulative: u64 = snap.buckets[..*buckets.start()].iter().sum();
    for b in buckets {
        cumulative += snap.buckets[b];
        let le = bound(b);
        let mut with_le = labels.to_vec();
        with_le.push(("le", &le));
        page.sample(&bucket_name, &with_le, cumulative);
    }
    let mut with_le = labels.to_vec();
    with_le.push(("le", "+Inf"));
    page.sample(&bucket_name, &with_le, snap.count());
    page.sample(&format!("{name}_sum"), labels, sum);
    page.sample(&format!("{name}_count"), labels, snap.count());
}

fn own(page: &mut Page, ctx: &Context) {
    let totals = ctx.metrics.totals();
    let name = "slabcached_request_duration_seconds";
    page.family(
        name,
        "histogram",
        &format!(
            "Time to execute a request and encode its reply (network waits excluded), by command; sampled: about one request in {LATENCY_SAMPLE_GAP} per worker, at random gaps, is timed, so counts are about 1/{LATENCY_SAMPLE_GAP} of the requests."
        ),
    );
    for kind in CommandKind::ALL {
        let snap = &totals.latency[kind as usize];
        if snap.count() == 0 {
            continue;
        }
        // 128 ns to about 1 s.
        let bound = |b: usize| ((1u64 << b) as f64 / 1e9).to_string();
        histogram(
            page,
            name,
            &[("command", kind.label())],
            snap,
            7..=30,
            bound,
            snap.sum as f64 / 1e9,
        );
    }
    let name = "slabcached_value_size_bytes";
    page.family(
        name,
        "histogram",
        "Value bytes of every store request (set, add, replace, append, prepend, cas).",
    );
    let snap = &totals.value_size;
    let bound = |b: usize| (1u64 << b).to_string();
    histogram(page, name, &[], snap, 0..=(BUCKETS - 2), bound, snap.sum as f64);

    if ctx.metrics.hot_keys_enabled {
        let name = "slabcached_hot_key_requests_per_second";
        page.family(
            name,
            "gauge",
            "Estimated requests per second of the most requested keys over the last 30 to 60 s (sampled; as `stats hotkeys`).",
        );
        for (key, rate) in ctx.metrics.hot_keys(ctx.clock.now(), hotkeys::LISTED) {
            page.sample(
                name,
                &[("key", &hotkeys::printable_key(&key))],
                format_args!("{rate:.1}"),
            );
        }
    }
}

/// The whole `/metrics` page.
pub fn page(ctx: &Context) -> String {
    let mut page = Page {
        out: String::with_capacity(64 * 1024),
    };
    general(&mut page, ctx);
    settings(&mut page, ctx);
    slabs(&mut page, ctx);
    own(&mut page, ctx);
    page.out
}
