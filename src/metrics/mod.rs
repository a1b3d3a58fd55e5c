//! Figures memcached cannot give, gathered on the request path, and the Prometheus
//! endpoint that shows them with the `stats` figures ([`http`], [`render`]).
//!
//! Each worker thread owns a [`WorkerMetrics`] block (request latency per command, value
//! sizes, its hot-key sketch) and is its only writer: a histogram bump is a relaxed load
//! and store, no locked instruction. The block is reached through a thread-local
//! [`Probe`], attached by the worker when it starts ([`attach`]); threads without one (the
//! in-process executor tests) record nothing. Readers sum the blocks of [`Registry`].
//!
//! Costs per request: a store records its value size; one request in
//! [`LATENCY_SAMPLE_GAP`] reads the clock twice for its latency; about one keyed request
//! in [`hotkeys::SAMPLE_GAP`] takes its worker's uncontended sketch lock.

pub mod histogram;
pub mod http;
pub mod render;

use std::cell::{Cell, OnceCell};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::cmd::Command;
use crate::context::Context;
use crate::hotkeys::{self, HotKeys};
use histogram::LogHistogram;

/// One request in this many (per worker) has its latency measured.
pub const LATENCY_SAMPLE_GAP: u32 = 16;

/// The command label of the latency histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandKind {
    Get,
    Touch,
    Set,
    Add,
    Replace,
    Append,
    Prepend,
    Cas,
    Delete,
    Incr,
    Decr,
    Flush,
    Stats,
    Other,
}

impl CommandKind {
    pub const ALL: [CommandKind; 14] = [
        CommandKind::Get,
        CommandKind::Touch,
        CommandKind::Set,
        CommandKind::Add,
        CommandKind::Replace,
        CommandKind::Append,
        CommandKind::Prepend,
        CommandKind::Cas,
        CommandKind::Delete,
        CommandKind::Incr,
        CommandKind::Decr,
        CommandKind::Flush,
        CommandKind::Stats,
        CommandKind::Other,
    ];

    pub fn label(self) -> &'static str {
        match self {
            CommandKind::Get => "get",
            CommandKind::Touch => "touch",
            CommandKind::Set => "set",
            CommandKind::Add => "add",
            CommandKind::Replace => "replace",
            CommandKind::Append => "append",
            CommandKind::Prepend => "prepend",
            CommandKind::Cas => "cas",
            CommandKind::Delete => "delete",
            CommandKind::Incr => "incr",
            CommandKind::Decr => "decr",
            CommandKind::Flush => "flush",
            CommandKind::Stats => "stats",
            CommandKind::Other => "other",
        }
    }

    fn of(cmd: &Command<'_>) -> CommandKind {
        use slabcache::StoreMode;
        match cmd {
            Command::Get(g) if g.touch.is_some() => CommandKind::Touch,
            Command::Get(_) => CommandKind::Get,
            Command::Touch { .. } => CommandKind::Touch,
            Command::Store(s) => match s.mode {
                StoreMode::Set => CommandKind::Set,
                StoreMode::Add => CommandKind::Add,
                StoreMode::Replace => CommandKind::Replace,
                StoreMode::Append => CommandKind::Append,
                StoreMode::Prepend => CommandKind::Prepend,
                StoreMode::Cas(_) => CommandKind::Cas,
            },
            Command::Delete(_) => CommandKind::Delete,
            Command::Arith(a) if a.incr => CommandKind::Incr,
            Command::Arith(_) => CommandKind::Decr,
            Command::Flush(_) => CommandKind::Flush,
            Command::Stats(_) => CommandKind::Stats,
            _ => CommandKind::Other,
        }
    }
}

/// One worker's figures (single writer: its thread).
pub struct WorkerMetrics {
    /// Sampled request latency in nanoseconds, per [`CommandKind`].
    pub latency: [LogHistogram; CommandKind::ALL.len()],
    /// Value bytes of every store.
    pub value_size: LogHistogram,
    pub hot_keys: Mutex<HotKeys>,
}

/// Every worker's block, for the readers.
pub struct Registry {
    workers: Mutex<Vec<Arc<WorkerMetrics>>>,
    /// Hot keys are sampled (off with `-X`).
    pub hot_keys_enabled: bool,
}

impl Registry {
    pub fn new(hot_keys_enabled: bool) -> Registry {
        Registry {
            workers: Mutex::new(Vec::new()),
            hot_keys_enabled,
        }
    }

    pub fn workers(&self) -> Vec<Arc<WorkerMetrics>> {
        self.workers.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The hottest keys of all workers at cache time `now`, hottest first, with their
    /// estimated requests per second.
    pub fn hot_keys(&self, now: u32, limit: usize) -> Vec<(Vec<u8>, f64)> {
        let mut rates = HashMap::new();
        for w in self.workers() {
            w.hot_keys
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .add_rates(now, &mut rates);
        }
        hotkeys::hottest(rates, limit)
    }
}

/// A worker thread's handle on its block, with its sampling state.
struct Probe {
    block: Arc<WorkerMetrics>,
    hot_keys: bool,
    latency_countdown: Cell<u32>,
    key_countdown: Cell<u32>,
    rng: Cell<u32>,
}

thread_local! {
    static PROBE: OnceCell<Probe> = const { OnceCell::new() };
}

/// Give the calling (worker) thread its block in `ctx`'s registry. Once per thread.
pub fn attach(ctx: &Context) {
    let block = Arc::new(WorkerMetrics {
        latency: std::array::from_fn(|_| LogHistogram::default()),
        value_size: LogHistogram::default(),
        hot_keys: Mutex::new(HotKeys::new(ctx.clock.now())),
    });
    let mut workers = ctx.metrics.workers.lock().unwrap_or_else(|e| e.into_inner());
    let mut seed = (0x9e37_79b9_u32 ^ (workers.len() as u32).wrapping_mul(0x85eb_ca6b)) | 1;
    workers.push(Arc::clone(&block));
    drop(workers);
    // The first sample after a random gap too: a server's first requests are not special.
    let first_key_sample = hotkeys::next_gap(&mut seed);
    let probe = Probe {
        block,
        hot_keys: ctx.metrics.hot_keys_enabled,
        latency_countdown: Cell::new(LATENCY_SAMPLE_GAP),
        key_countdown: Cell::new(first_key_sample),
        rng: Cell::new(seed),
    };
    PROBE.with(|p| {
        let _ = p.set(probe);
    });
}

/// A request being measured: its latency is recorded when it is [`Timing::finish`]ed.
pub struct Timing(Option<(CommandKind, Instant)>);

/// Before `cmd` executes: record its value size and sampled keys, and start its latency
/// measurement if it is sampled.
#[inline]
pub fn begin(cmd: &Command<'_>, ctx: &Context) -> Timing {
    PROBE.with(|p| {
        let Some(p) = p.get() else {
            return Timing(None);
        };
        if let Command::Store(s) = cmd {
            p.block.value_size.record(s.value.len() as u64);
        }
        if p.hot_keys {
            let left = p.key_countdown.get();
            if left > 1 {
                p.key_countdown.set(left - 1);
            } else if sample_keys(p, cmd, ctx) {
                let mut state = p.rng.get();
                p.key_countdown.set(hotkeys::next_gap(&mut state));
                p.rng.set(state);
            }
        }
        let left = p.latency_countdown.get();
        if left > 1 {
            p.latency_countdown.set(left - 1);
            return Timing(None);
        }
        p.latency_countdown.set(LATENCY_SAMPLE_GAP);
        Timing(Some((CommandKind::of(cmd), Instant::now())))
    })
}

/// Record the keys of `cmd` in the worker's sketch; false when it has none (the sample
/// then goes to the next keyed request).
#[cold]
fn sample_keys(p: &Probe, cmd: &Command<'_>, ctx: &Context) -> bool {
    let one = |key: &[u8]| {
        let now = ctx.clock.now();
        p.block
            .hot_keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .record(key, now);
        true
    };
    match cmd {
        Command::Get(g) => {
            let now = ctx.clock.now();
            let mut sketch = p.block.hot_keys.lock().unwrap_or_else(|e| e.into_inner());
            let mut any = false;
            for key in g.keys.clone() {
                sketch.record(key, now);
                any = true;
            }
            any
        }
        Command::Touch { key, .. } | Command::Debug { key } => one(key),
        Command::Store(s) => one(s.key),
        Command::Delete(d) => one(d.key),
        Command::Arith(a) => one(a.key),
        _ => false,
    }
}

impl Timing {
    #[inline]
    pub fn finish(self) {
        let Some((kind, start)) = self.0 else {
            return;
        };
        let nanos = start.elapsed().as_nanos().min(u128::from(u64::MAX)) as u64;
        PROBE.with(|p| {
            if let Some(p) = p.get() {
                p.block.latency[kind as usize].record(nanos);
            }
        });
    }
}
