//! slabcached: a memcached-compatible cache server.
//!
//! ```text
//!                 +-------------------+
//!  clients ---->  | listener thread   |  accept, -c limit, clock tick, signals
//!                 +---------+---------+
//!                           | sockets, round-robin (crossbeam channel + mio Waker)
//!          +----------------+----------------+
//!          v                v                v
//!   +------------+   +------------+   +------------+
//!   | worker 0   |   | worker 1   |   | worker t-1 |   one mio Poll each (-t)
//!   |  Conn ...  |   |  Conn ...  |   |  Conn ...  |   read -> wire -> cmd -> wire -> write
//!   +-----+------+   +-----+------+   +-----+------+
//!         |                |                |
//!         +----------------+----------------+
//!                          v
//!               slabcache::Cache (shared, striped locks; see the slab crate docs)
//!                          ^
//!                          |  rebalance_step / crawl_step, in bounded slices
//!                 +--------+----------+
//!                 | maintenance thread|  page mover, automove, LRU crawler (maintain/)
//!                 +-------------------+
//! ```
//!
//! Inside a worker, a request takes one path whatever its protocol:
//!
//! ```text
//!   net::conn ──bytes──> wire::{text,meta,binary}::step ──proto decode──> cmd::Command
//!                                                                            │
//!                          cmd::execute (one file per command family) <──────┘
//!                                 │ cache calls, counters
//!                                 v
//!   net::conn <──bytes── the protocol's Reply encoder <── cmd::Outcome
//! ```
//!
//! - [`net`]: the listener, the worker event loops and the connections (buffers, back-pressure);
//!   they know nothing of a protocol beyond the first byte that picks one.
//! - [`wire`]: per protocol, the mapping of `proto`'s decoded request onto a [`cmd::Command`]
//!   and the encoder that owns its quiet, noreply and opaque rules.
//! - [`cmd`]: the request model and the executor; the only code that calls the cache for a
//!   request and counts it.
//! - [`stats`]: the counters, and the `stats` figures as rows every protocol encodes.
//! - [`context`]: what every thread shares (config, cache, clock, counters, cluster state).
//! - [`maintain`]: the background thread (page mover, automove, LRU crawler) and its settings.
//! - [`auth`]: SASL (`-S`, through libsasl2) and the text authfile (`-Y`): the shared
//!   credentials, each connection's session, and the warning when the cache is open to the
//!   network.
//! - [`restart`]: `-e`, the warm restart: the metadata file a graceful stop writes and the
//!   checks a start makes before the engine restores the memory file's items.
//! - [`metrics`]: latency and value-size histograms, the `--metrics-listen` Prometheus
//!   endpoint; [`hotkeys`]: the sampled most-requested keys (`stats hotkeys`).
//! - [`watch`]: memcached's log streams (`watch`): event lines, per-thread buffers and the
//!   logger thread that writes them to watchers.
//!
//! Bytes are parsed by the `proto` crate and memory is managed by the `slabcache` crate; the
//! server does not reach into the engine. `unsafe` is denied here and allowed only in
//! [`sys`] (signals, setuid, daemon, rusage) and [`auth::sasl`] (the libsasl2 bindings).
#![deny(unsafe_code)]

pub mod auth;
pub mod clock;
pub mod cluster;
pub mod cmd;
pub mod conffile;
pub mod config;
pub mod context;
#[doc(hidden)]
pub mod fuzzing;
pub mod hotkeys;
pub mod maintain;
pub mod metrics;
pub mod net;
pub mod restart;
pub mod stats;
pub mod sys;
pub mod watch;
pub mod wire;

pub use config::{Args, Config};
pub use net::listener::{RunningServer, Server};
