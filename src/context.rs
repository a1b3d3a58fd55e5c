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
use crate::stats::counters::StatsRegistry;

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
}

impl Context {
    /// Ask every thread to stop (the `shutdown` command).
    pub fn request_stop(&self) {
        self.stopping.store(true, Relaxed);
    }
}
