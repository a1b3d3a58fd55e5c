//! What every thread shares: the configuration, the cache, the clock, the counters, the
//! cluster state, the connection table and the run-time settings. Built once by
//! [`crate::net::listener::Server::bind`] and handed to each thread in an `Arc`.
//!
//! This module depends only on leaf modules (config, clock, cluster, stats counters,
//! maintenance settings); everything that serves requests depends on it, never the reverse.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use crate::auth::Auth;
use crate::clock::Clock;
use crate::cluster::Cluster;
use crate::config::Config;
use crate::maintain::Maintenance;
use crate::stats::counters::{Counters, StatsRegistry};
use crate::stats::detail::PrefixStats;
use crate::stats::ConnState;

/// What `stats conns` shows of one connection.
pub struct ConnEntry {
    pub addr: String,
    pub listen_addr: String,
    /// Cache time of the last command.
    pub last_cmd: Arc<AtomicU32>,
    /// Where the connection is in its cycle ([`ConnState`] as a byte), set by its worker.
    pub state: Arc<AtomicU8>,
    /// The connection became a log watcher (`stats conns` says `conn_watch`).
    pub watching: bool,
}

impl ConnEntry {
    pub fn state(&self) -> ConnState {
        ConnState::from_u8(self.state.load(Relaxed))
    }
}

/// State every thread shares.
pub struct Context {
    pub config: Config,
    /// Shared with the items reserved for values still arriving ([`slabcache::Reservation`]).
    pub cache: Arc<slabcache::Cache>,
    pub clock: Clock,
    pub stats: StatsRegistry,
    pub limits: proto::Limits,
    pub cluster: Cluster,
    pub curr_connections: AtomicUsize,
    pub conns: Mutex<BTreeMap<i32, ConnEntry>>,
    pub verbosity: AtomicU8,
    pub stopping: AtomicBool,
    /// The stop is a graceful one (`shutdown graceful`; SIGUSR1 sets the `sys` flag):
    /// with `-e` the cache is saved for a warm restart.
    pub graceful: AtomicBool,
    /// The maintenance thread's controls and the settings commands change at run time.
    pub maintenance: Maintenance,
    /// Listening sockets for `stats conns`: (fd, "tcp:addr:port").
    pub listeners: Vec<(i32, String)>,
    /// `stats detail`'s per-prefix counters.
    pub detail: PrefixStats,
    /// Credentials for `-S` / `-Y` (set by `Server::bind` once loaded; none in tests).
    pub auth: Auth,
    /// Every worker's histograms and hot-key sketch ([`crate::metrics`]).
    pub metrics: crate::metrics::Registry,
    /// The log streams of `watch`.
    pub watch: crate::watch::Watch,
    /// TLS certificates, settings and counters under `-Z` (set by the listener at bind).
    pub tls: Option<Arc<crate::net::tls::TlsContext>>,
    /// Memory partial requests may hold beyond each connection's allowance.
    pub read_budget: Arc<crate::net::budget::ReadBudget>,
}

impl Context {
    /// Ask every thread to stop (the `shutdown` command).
    pub fn request_stop(&self) {
        self.stopping.store(true, Relaxed);
    }

    /// Ask every thread to stop, gracefully (`shutdown graceful`).
    pub fn request_graceful_stop(&self) {
        self.graceful.store(true, Relaxed);
        self.stopping.store(true, Relaxed);
    }
}

/// The engine settings `config` asks for.
pub fn cache_config(config: &Config) -> slabcache::CacheConfig {
    slabcache::CacheConfig {
        memory_limit: config.memory_limit,
        page_size: crate::config::SLAB_PAGE_SIZE,
        slab_chunk_max: config.slab_chunk_max,
        item_size_max: config.item_size_max,
        min_chunk: config.min_chunk,
        growth_factor: config.growth_factor,
        slab_sizes: config.slab_sizes.clone(),
        use_cas: config.use_cas,
        evict: config.evictions,
        preaccounted: initial_malloc_hook(),
        huge_pages: config.large_pages,
    }
}

/// The cache `config` asks for, over anonymous memory.
pub fn build_cache(config: &Config) -> Result<slabcache::Cache, slabcache::CacheError> {
    let cache = slabcache::Cache::new(cache_config(config))?;
    apply_tunables(&cache, config);
    Ok(cache)
}

/// The run-time settings `config` gives a new cache (anonymous or restored).
pub fn apply_tunables(cache: &slabcache::Cache, config: &Config) {
    cache.set_size_tracking(config.track_sizes);
    cache.set_automove(config.tunables.slab_automove);
    cache.set_lru_segmented(config.tunables.lru_segmented);
    cache.set_warm_pct(config.tunables.warm_lru_pct.clamp(0, 80) as u8);
    cache.set_hot_pct(config.tunables.hot_lru_pct.clamp(0, 80) as u8);
    cache.set_hot_max_factor(config.tunables.hot_max_factor);
    cache.set_temp_ttl(config.tunables.temp_lru.then_some(config.tunables.temporary_ttl));
    cache.set_automove_tuning(
        config.tunables.slab_automove_ratio,
        config.slab_automove_window as usize,
    );
}

impl Context {
    /// The shared state of a server: `counters` are the blocks `stats` sums (one per
    /// writer thread), `listeners` what `stats conns` lists of the listening sockets.
    pub fn new(
        config: Config,
        cache: slabcache::Cache,
        cluster: Cluster,
        counters: Vec<Arc<Counters>>,
        listeners: Vec<(i32, String)>,
    ) -> Context {
        let limits = proto::Limits {
            item_size_max: config.item_size_max,
            ..proto::Limits::default()
        };
        // Keys are data: -X (no dumping) keeps them out of `stats hotkeys` and /metrics.
        let hot_keys = config.dump_enabled;
        let watch = crate::watch::Watch::new(config.worker_logbuf_size, config.watcher_logbuf_size);
        watch.observe_cache(&cache);
        Context {
            watch,
            read_budget: Arc::new(crate::net::budget::ReadBudget::new(config.read_buf_mem_limit)),
            verbosity: AtomicU8::new(config.verbosity),
            detail: PrefixStats::new(config.prefix_delimiter, config.detail_enabled),
            maintenance: Maintenance::new(config.tunables.clone()),
            config,
            cache: Arc::new(cache),
            clock: Clock::new(),
            stats: StatsRegistry::new(counters),
            limits,
            cluster,
            curr_connections: AtomicUsize::new(0),
            conns: Mutex::new(BTreeMap::new()),
            stopping: AtomicBool::new(false),
            graceful: AtomicBool::new(false),
            listeners,
            auth: Auth::default(),
            metrics: crate::metrics::Registry::new(hot_keys),
            tls: None,
        }
    }
}

/// A context with no sockets for in-process tests: `args` are slabcached's flags on top of
/// `-m 8`; the one counters block is returned for the test to drive requests with.
#[cfg(test)]
pub(crate) fn for_tests(args: &[&str]) -> (Context, Arc<Counters>) {
    use clap::Parser;
    let mut argv = vec!["slabcached", "-m", "8"];
    argv.extend_from_slice(args);
    let config = Config::from_args(&crate::config::Args::try_parse_from(argv).unwrap()).unwrap();
    let cache = build_cache(&config).unwrap();
    let cluster = Cluster::from_config(&config, 11211).unwrap();
    let counters = Arc::new(Counters::default());
    let ctx = Context::new(config, cache, cluster, vec![Arc::clone(&counters)], Vec::new());
    (ctx, counters)
}

/// memcached's `T_MEMD_INITIAL_MALLOC` test hook: bytes the engine counts as allocated
/// from the start, so a test of a multi-GB `-m` reaches the limit without filling it
/// (memcached's own t/64bit.t sets it). Unset or unparsable: 0.
fn initial_malloc_hook() -> usize {
    std::env::var("T_MEMD_INITIAL_MALLOC")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}
