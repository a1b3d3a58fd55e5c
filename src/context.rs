//! What every thread shares: the configuration, the cache, the clock, the counters, the
//! cluster state, the connection table and the run-time settings. Built once by
//! [`crate::net::listener::Server::bind`] and handed to each thread in an `Arc`.
//!
//! This module depends only on leaf modules (config, clock, cluster, stats counters,
//! maintenance settings); everything that serves requests depends on it, never the reverse.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use crate::clock::Clock;
use crate::cluster::Cluster;
use crate::config::Config;
use crate::maintain::Maintenance;
use crate::stats::counters::{Counters, StatsRegistry};

/// What `stats conns` shows of one connection.
pub struct ConnEntry {
    pub addr: String,
    pub listen_addr: String,
    /// Cache time of the last command.
    pub last_cmd: Arc<AtomicU32>,
}

/// State every thread shares.
pub struct Context {
    pub config: Config,
    pub cache: slabcache::Cache,
    pub clock: Clock,
    pub stats: StatsRegistry,
    pub limits: proto::Limits,
    pub cluster: Cluster,
    pub curr_connections: AtomicUsize,
    pub conns: Mutex<BTreeMap<i32, ConnEntry>>,
    pub verbosity: AtomicU8,
    pub stopping: AtomicBool,
    /// The maintenance thread's controls and the settings commands change at run time.
    pub maintenance: Maintenance,
    /// Listening sockets for `stats conns`: (fd, "tcp:addr:port").
    pub listeners: Vec<(i32, String)>,
    /// Memory partial requests may hold beyond each connection's allowance.
    pub read_budget: Arc<crate::net::budget::ReadBudget>,
}

impl Context {
    /// Ask every thread to stop (the `shutdown` command).
    pub fn request_stop(&self) {
        self.stopping.store(true, Relaxed);
    }
}

/// The cache `config` asks for.
pub fn build_cache(config: &Config) -> Result<slabcache::Cache, slabcache::CacheError> {
    let cache = slabcache::Cache::new(slabcache::CacheConfig {
        memory_limit: config.memory_limit,
        page_size: crate::config::SLAB_PAGE_SIZE,
        slab_chunk_max: config.slab_chunk_max,
        item_size_max: config.item_size_max,
        min_chunk: config.min_chunk,
        growth_factor: config.growth_factor,
        use_cas: config.use_cas,
        evict: config.evictions,
    })?;
    cache.set_size_tracking(config.track_sizes);
    cache.set_automove(config.tunables.slab_automove);
    cache.set_lru_segmented(config.tunables.lru_segmented);
    cache.set_warm_pct(config.tunables.warm_lru_pct.clamp(0, 80) as u8);
    cache.set_automove_tuning(
        config.tunables.slab_automove_ratio,
        config.slab_automove_window as usize,
    );
    Ok(cache)
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
        Context {
            read_budget: Arc::new(crate::net::budget::ReadBudget::new(config.read_buf_mem_limit)),
            verbosity: AtomicU8::new(config.verbosity),
            maintenance: Maintenance::new(config.tunables.clone()),
            config,
            cache,
            clock: Clock::new(),
            stats: StatsRegistry::new(counters),
            limits,
            cluster,
            curr_connections: AtomicUsize::new(0),
            conns: Mutex::new(BTreeMap::new()),
            stopping: AtomicBool::new(false),
            listeners,
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
