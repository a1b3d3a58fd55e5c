//! Figures memcached cannot give, gathered on the request path, and the Prometheus
//! endpoint that shows them with the `stats` figures ([`http`], [`render`]).
//!
//! Each worker thread owns a [`WorkerMetrics`] block (request latency per command, value
//! sizes, its hot-key sketch) and is its only writer: a histogram bump is a relaxed load
//! and store, no locked instruction. The block is reached through a thread-local
//! [`Probe`], attached by the worker when it starts ([`attach`]); threads without one (the
//! in-process executor tests) record nothing. Readers sum the blocks of [`Registry`].
//!
//! `stats reset` clears the histograms as it clears memcached's counters (they count
//! requests, as `cmd_get` does; Prometheus takes the drop as a counter reset): the
//! registry keeps the sums at the reset as a baseline that readers subtract, so the reset
//! never writes a worker's single-writer block. The hot keys are rates, not counts, and
//! are kept.
//!
//! Costs per request: a store records its value size; every request decrements one
//! countdown; about one request in [`LATENCY_SAMPLE_GAP`] (at random gaps) reads the clock
//! twice for its latency, and about one in [`hotkeys::SAMPLE_GAP`] takes its worker's
//! uncontended sketch lock to count its keys. Measured in docs/performance.md.

pub mod histogram;
pub mod http;
pub mod render;

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use crate::cmd::Command;
use crate::context::Context;
use crate::hotkeys::{self, HotKeys};
use histogram::{LogHistogram, Snapshot};

/// About one request in this many (per worker, at random gaps) has its latency measured.
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

/// The histograms of every worker, summed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    /// Per [`CommandKind`], in nanoseconds.
    pub latency: [Snapshot; CommandKind::ALL.len()],
    pub value_size: Snapshot,
}

/// Every worker's block, for the readers.
pub struct Registry {
    workers: Mutex<Vec<&'static WorkerMetrics>>,
    /// The sums at the last `stats reset` (see the module docs).
    baseline: Mutex<Totals>,
    /// Hot keys are sampled (off with `-X`).
    pub hot_keys_enabled: bool,
}

impl Registry {
    pub fn new(hot_keys_enabled: bool) -> Registry {
        Registry {
            workers: Mutex::new(Vec::new()),
            baseline: Mutex::new(Totals::default()),
            hot_keys_enabled,
        }
    }

    pub fn workers(&self) -> Vec<&'static WorkerMetrics> {
        self.workers.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Every block's histograms summed, since the process started.
    fn sums(&self) -> Totals {
        let mut t = Totals::default();
        for w in self.workers() {
            for (snap, h) in t.latency.iter_mut().zip(&w.latency) {
                h.add_to(snap);
            }
            w.value_size.add_to(&mut t.value_size);
        }
        t
    }

    /// The histograms since the last `stats reset` (or the start).
    pub fn totals(&self) -> Totals {
        let base = self.baseline.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut t = self.sums();
        for (snap, b) in t.latency.iter_mut().zip(&base.latency) {
            snap.subtract(b);
        }
        t.value_size.subtract(&base.value_size);
        t
    }

    /// `stats reset`: the histograms count from zero again.
    pub fn reset(&self) {
        let sums = self.sums();
        *self.baseline.lock().unwrap_or_else(|e| e.into_inner()) = sums;
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

/// A worker thread's handle on its block, with its sampling state. Nothing in it needs
/// dropping, so the thread-local is a plain per-thread slot: reaching it on every request
/// costs no lazy-initialisation or destructor check.
///
/// One countdown serves both samplings, so an unsampled request costs one decrement: when
/// it runs out (every [`LATENCY_SAMPLE_GAP`] requests on average, at random gaps) the
/// request is timed, and every [`KEY_SAMPLE_TICKS`]th such request on average also has its
/// keys sampled.
struct Probe {
    block: Cell<Option<&'static WorkerMetrics>>,
    hot_keys: Cell<bool>,
    countdown: Cell<u32>,
    key_ticks: Cell<u32>,
    rng: Cell<u32>,
}

/// Timed requests between two key samples, on average.
const KEY_SAMPLE_TICKS: u32 = hotkeys::SAMPLE_GAP / LATENCY_SAMPLE_GAP;

thread_local! {
    static PROBE: Probe = const {
        Probe {
            block: Cell::new(None),
            hot_keys: Cell::new(false),
            countdown: Cell::new(0),
            key_ticks: Cell::new(0),
            rng: Cell::new(1),
        }
    };
}

impl Probe {
    /// A random gap averaging `mean`.
    fn gap(&self, mean: u32) -> u32 {
        let mut state = self.rng.get();
        let gap = hotkeys::next_gap(&mut state, mean);
        self.rng.set(state);
        gap
    }
}

/// Give the calling (worker) thread its block in `ctx`'s registry. Once per thread: the
/// block lives as long as the process (a few kilobytes per worker thread ever started),
/// so the thread-local holds a plain reference.
pub fn attach(ctx: &Context) {
    let block: &'static WorkerMetrics = Box::leak(Box::new(WorkerMetrics {
        latency: std::array::from_fn(|_| LogHistogram::default()),
        value_size: LogHistogram::default(),
        hot_keys: Mutex::new(HotKeys::new(ctx.clock.now())),
    }));
    let mut workers = ctx.metrics.workers.lock().unwrap_or_else(|e| e.into_inner());
    let seed = (0x9e37_79b9_u32 ^ (workers.len() as u32).wrapping_mul(0x85eb_ca6b)) | 1;
    workers.push(block);
    drop(workers);
    PROBE.with(|p| {
        p.rng.set(seed);
        p.hot_keys.set(ctx.metrics.hot_keys_enabled);
        // The first samples after random gaps too: a server's first requests are not special.
        p.countdown.set(p.gap(LATENCY_SAMPLE_GAP));
        p.key_ticks.set(p.gap(KEY_SAMPLE_TICKS));
        p.block.set(Some(block));
    });
}

/// A request being measured: its latency is recorded when it is [`Timing::finish`]ed.
pub struct Timing(Option<(&'static WorkerMetrics, CommandKind, Instant)>);

/// Before `cmd` executes: record its value size, and when it is sampled, its keys and the
/// start of its latency measurement.
#[inline]
pub fn begin(cmd: &Command<'_>, ctx: &Context) -> Timing {
    PROBE.with(|p| {
        let Some(block) = p.block.get() else {
            return Timing(None);
        };
        if let Command::Store(s) = cmd {
            block.value_size.record(s.value_len() as u64);
        }
        let left = p.countdown.get();
        if left > 1 {
            p.countdown.set(left - 1);
            return Timing(None);
        }
        sampled(p, block, cmd, ctx)
    })
}

/// The slow path of [`begin`], for a sampled request.
#[inline(never)]
fn sampled(p: &Probe, block: &'static WorkerMetrics, cmd: &Command<'_>, ctx: &Context) -> Timing {
    p.countdown.set(p.gap(LATENCY_SAMPLE_GAP));
    if p.hot_keys.get() {
        let ticks = p.key_ticks.get();
        if ticks > 1 {
            p.key_ticks.set(ticks - 1);
        } else if sample_keys(block, cmd, ctx) {
            p.key_ticks.set(p.gap(KEY_SAMPLE_TICKS));
        }
        // else: a request with no key; the next sampled request takes its turn.
    }
    Timing(Some((block, CommandKind::of(cmd), Instant::now())))
}

/// Record the keys of `cmd` in the worker's sketch; false when it has none (the sample
/// then goes to the next keyed request).
fn sample_keys(block: &WorkerMetrics, cmd: &Command<'_>, ctx: &Context) -> bool {
    let one = |key: &[u8]| {
        let now = ctx.clock.now();
        block
            .hot_keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .record(key, now);
        true
    };
    match cmd {
        Command::Get(g) => {
            let now = ctx.clock.now();
            let mut sketch = block.hot_keys.lock().unwrap_or_else(|e| e.into_inner());
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
        if let Some((block, kind, start)) = self.0 {
            let nanos = start.elapsed().as_nanos().min(u128::from(u64::MAX)) as u64;
            block.latency[kind as usize].record(nanos);
        }
    }
}

#[cfg(test)]
mod reset_tests {
    use super::*;

    #[test]
    fn a_reset_starts_the_histograms_from_zero() {
        let registry = Registry::new(false);
        let block: &'static WorkerMetrics = Box::leak(Box::new(WorkerMetrics {
            latency: std::array::from_fn(|_| LogHistogram::default()),
            value_size: LogHistogram::default(),
            hot_keys: Mutex::new(HotKeys::new(0)),
        }));
        registry.workers.lock().unwrap().push(block);
        block.value_size.record(100);
        block.latency[CommandKind::Get as usize].record(5000);
        assert_eq!(registry.totals().value_size.count(), 1);
        registry.reset();
        assert_eq!(registry.totals(), Totals::default());
        block.value_size.record(3);
        let t = registry.totals();
        assert_eq!((t.value_size.count(), t.value_size.sum), (1, 3));
        assert_eq!(t.value_size.buckets[2], 1);
        assert_eq!(t.latency[CommandKind::Get as usize].count(), 0);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use crate::context::{for_tests, Context};
    use crate::stats::Counters;

    /// Nanoseconds per request of a 90/10 get/set text load run in process on this thread
    /// (with `PROBE_LOAD=mget`: the 100 items set, then 100-key gets).
    fn ns_per_request(ctx: &Context, counters: &Counters, n: usize) -> f64 {
        let mget = std::env::var("PROBE_LOAD").is_ok_and(|v| v == "mget");
        let mut input = Vec::new();
        for i in 0..100 {
            if mget {
                let keys: Vec<String> = (0..100).map(|k| format!("key:{k}")).collect();
                input.extend_from_slice(format!("get {}\r\n", keys.join(" ")).as_bytes());
            } else if i % 10 == 0 {
                input.extend_from_slice(format!("set key:{i} 0 0 100\r\n{}\r\n", "v".repeat(100)).as_bytes());
            } else {
                input.extend_from_slice(format!("get key:{i}\r\n").as_bytes());
            }
        }
        let mut out = Vec::with_capacity(64 * 1024);
        if mget {
            for k in 0..100 {
                let set = format!("set key:{k} 0 0 100\r\n{}\r\n", "v".repeat(100));
                crate::wire::run_all(set.as_bytes(), ctx, counters, &mut out, |_| {});
            }
        }
        let start = Instant::now();
        for _ in 0..n / 100 {
            crate::wire::run_all(&input, ctx, counters, &mut out, |_| {});
        }
        start.elapsed().as_nanos() as f64 / n as f64
    }

    /// What the probe (value sizes, sampled latency, sampled hot keys) costs per request:
    /// the same in-process load on a thread without a probe and on one with, alternated.
    /// `cargo test --release -p slabcached --lib probe_cost -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn probe_cost() {
        let n = 1_000_000;
        let mut best = [f64::MAX; 3];
        let setups: Vec<_> = [&[][..], &["-X"][..], &[][..]]
            .iter()
            .map(|args| {
                let (ctx, counters) = for_tests(args);
                (std::sync::Arc::new(ctx), counters)
            })
            .collect();
        for _ in 0..20 {
            for (i, (ctx, counters)) in setups.iter().enumerate() {
                let (c, k) = (ctx.clone(), counters.clone());
                let ns = std::thread::spawn(move || {
                    if i > 0 {
                        super::attach(&c);
                    }
                    ns_per_request(&c, &k, n)
                })
                .join()
                .unwrap();
                best[i] = best[i].min(ns);
            }
        }
        println!(
            "ns/request: no probe {:.1}, probe without hot keys (-X) {:.1}, full probe {:.1}",
            best[0], best[1], best[2]
        );
    }

    /// One configuration of [`probe_cost`] (`PROBE_MODE` = none, x or full; `PROBE_N`
    /// requests) for an instruction count, e.g. under `valgrind --tool=callgrind`: machines
    /// shared with other work time too noisily for a 2 % difference.
    #[test]
    #[ignore]
    fn probe_cost_one() {
        let mode = std::env::var("PROBE_MODE").unwrap_or_else(|_| "full".into());
        let n = std::env::var("PROBE_N").map_or(200_000, |v| v.parse().unwrap());
        let (ctx, counters) = for_tests(if mode == "x" { &["-X"] } else { &[] });
        if mode != "none" {
            super::attach(&ctx);
        }
        println!("{mode}: {:.1} ns/request", ns_per_request(&ctx, &counters, n));
    }
}
