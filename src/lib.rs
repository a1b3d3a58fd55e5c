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
//!   |  Conn ...  |   |  Conn ...  |   |  Conn ...  |   read -> proto::decode -> exec -> write
//!   +-----+------+   +-----+------+   +-----+------+
//!         |                |                |
//!         +----------------+----------------+
//!                          v
//!               slabcache::Cache (shared, striped locks; see the slab crate docs)
//!                          ^
//!                          |  rebalance_step / crawl_step, in bounded slices
//!                 +--------+----------+
//!                 | maintenance thread|  page mover, automove, LRU crawler (maintain.rs)
//!                 +-------------------+
//! ```
//!
//! The server glues two crates: `proto` (pure wire decoding/encoding) and `slabcache`
//! (memory and items). It parses no bytes itself and does not reach into the engine.
#![deny(unsafe_code)]

pub mod clock;
pub mod cluster;
pub mod cmd;
pub mod config;
pub mod context;
pub mod maintain;
pub mod net;
pub mod stats;
pub mod sys;
pub mod wire;

pub use config::{Args, Config};
pub use net::listener::{RunningServer, Server};
