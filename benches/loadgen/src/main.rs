//! `loadgen`: a closed-loop load generator for memcached-compatible servers.
//!
//! Phases: an optional preload (every key set once), a warm-up, then the measured window. The
//! main thread only keeps time, flips the shared phase, prints the progress line on stderr once
//! a second and, at the end, merges the workers' counters and histograms into the JSON result
//! printed on stdout. Exit status: 0 on success, 1 when the run completed but failed its checks
//! (error ratio above `--max-error-ratio`, no reply in the measured window, preload timeout),
//! 2 when it could not start (bad options, server unreachable).

#![deny(unsafe_code)]

mod config;
mod parse;
// One `sysconf` call for the clock tick rate.
#[allow(unsafe_code)]
mod procstat;
mod rng;
mod tls;
mod worker;
mod workload;

use clap::Parser;
use config::Config;
use hdrhistogram::Histogram;
use serde::Serialize;
use std::io::{IsTerminal, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};
use worker::{Counts, Mode, Shared, Worker, WorkerResult, PHASE_MEASURE, PHASE_STOP};
use workload::Workload;

#[derive(Serialize)]
struct PreloadReport {
    keys: u64,
    sets: u64,
    errors: u64,
    seconds: f64,
    sets_per_s: f64,
    completed: bool,
}

#[derive(Serialize)]
struct LatencyReport {
    samples: u64,
    min: f64,
    mean: f64,
    p50: f64,
    p90: f64,
    p99: f64,
    p99_9: f64,
    max: f64,
}

#[derive(Serialize)]
struct ServerCpu {
    pid: u32,
    seconds: f64,
    us_per_op: Option<f64>,
}

#[derive(Serialize)]
struct Report<'a> {
    tool: &'static str,
    version: &'static str,
    status: &'static str,
    failures: Vec<String>,
    target: String,
    config: &'a Config,
    preload: Option<PreloadReport>,
    measured_s: f64,
    requests: u64,
    ops_per_s: f64,
    gets: u64,
    sets: u64,
    hits: u64,
    misses: u64,
    hit_ratio: Option<f64>,
    keys_per_s: f64,
    errors: u64,
    latency_us: Option<LatencyReport>,
    server_cpu: Option<ServerCpu>,
    client_cpu_s: Option<f64>,
    reconnects: u64,
    connect_failures: u64,
}

impl<'a> Report<'a> {
    fn new(cfg: &'a Config, target: String) -> Self {
        Report {
            tool: "loadgen",
            version: env!("CARGO_PKG_VERSION"),
            status: "ok",
            failures: Vec::new(),
            target,
            config: cfg,
            preload: None,
            measured_s: 0.0,
            requests: 0,
            ops_per_s: 0.0,
            gets: 0,
            sets: 0,
            hits: 0,
            misses: 0,
            hit_ratio: None,
            keys_per_s: 0.0,
            errors: 0,
            latency_us: None,
            server_cpu: None,
            client_cpu_s: None,
            reconnects: 0,
            connect_failures: 0,
        }
    }

    fn fail(&mut self, why: String) {
        eprintln!("loadgen: {why}");
        self.status = "failed";
        self.failures.push(why);
    }

    fn print(&self) {
        match serde_json::to_string_pretty(self) {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("loadgen: cannot encode the result: {e}"),
        }
    }
}

/// The address to load, refused unless it is on the loopback interface.
fn target(cfg: &Config) -> Result<SocketAddr, String> {
    let addrs: Vec<SocketAddr> = (cfg.host.as_str(), cfg.port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {}: {e}", cfg.host))?
        .collect();
    addrs
        .iter()
        .copied()
        .find(|a| a.ip().is_loopback())
        .ok_or_else(|| {
            format!(
                "{} is not a loopback address: loadgen only targets this machine",
                cfg.host
            )
        })
}

/// Prints the progress line once a second from the workers' published totals.
struct Printer {
    quiet: bool,
    tty: bool,
    connections: usize,
    start: Instant,
    next: Instant,
    last_t: Instant,
    last: Counts,
}

impl Printer {
    fn new(cfg: &Config) -> Self {
        let now = Instant::now();
        Printer {
            quiet: cfg.quiet,
            tty: std::io::stderr().is_terminal(),
            connections: cfg.connections,
            start: now,
            next: now + Duration::from_secs(1),
            last_t: now,
            last: Counts::default(),
        }
    }

    /// Sleeps until `until`, printing a line at each whole second on the way.
    fn wait(&mut self, shared: &Shared, label: &str, until: Instant, done: impl Fn() -> bool) {
        loop {
            let now = Instant::now();
            if now >= until || done() {
                return;
            }
            if now >= self.next {
                self.line(shared, label, now);
                self.next += Duration::from_secs(1);
                continue;
            }
            thread::sleep(until.min(self.next).min(now + Duration::from_millis(50)) - now);
        }
    }

    fn line(&mut self, shared: &Shared, label: &str, now: Instant) {
        let mut c = Counts::default();
        let mut live = 0;
        for p in &shared.progress {
            c.requests += p.requests.load(Ordering::Relaxed);
            c.sets += p.sets.load(Ordering::Relaxed);
            c.hits += p.hits.load(Ordering::Relaxed);
            c.misses += p.misses.load(Ordering::Relaxed);
            c.errors += p.errors.load(Ordering::Relaxed);
            c.latency_ns += p.latency_ns.load(Ordering::Relaxed);
            live += p.live.load(Ordering::Relaxed);
        }
        let dt = now.duration_since(self.last_t).as_secs_f64().max(1e-9);
        let dreq = c.requests.saturating_sub(self.last.requests);
        let dsets = c.sets.saturating_sub(self.last.sets);
        let dhits = c.hits.saturating_sub(self.last.hits);
        let dkeys = dhits + c.misses.saturating_sub(self.last.misses);
        let dlat = c.latency_ns.saturating_sub(self.last.latency_ns);
        self.last = c;
        self.last_t = now;
        if self.quiet {
            return;
        }
        let avg_us = if dreq > 0 {
            dlat as f64 / dreq as f64 / 1e3
        } else {
            0.0
        };
        let hit = if dkeys > 0 {
            format!("{:5.1}%", 100.0 * dhits as f64 / dkeys as f64)
        } else {
            "    -".into()
        };
        let text = format!(
            "[{label:<7} {:5.0}s] {:>10.0} req/s {:>10.0} sets/s  hits {hit}  avg {avg_us:8.1} us  errors {}  conns {live}/{}",
            now.duration_since(self.start).as_secs_f64(),
            dreq as f64 / dt,
            dsets as f64 / dt,
            c.errors,
            self.connections,
        );
        let mut err = std::io::stderr().lock();
        let _ = if self.tty {
            write!(err, "\r{text}\x1b[K")
        } else {
            writeln!(err, "{text}")
        };
    }

    fn finish(&self) {
        if self.tty && !self.quiet {
            eprintln!();
        }
    }
}

type Handle = JoinHandle<Result<WorkerResult, String>>;

fn spawn(
    cfg: &Arc<Config>,
    wl: &Arc<Workload>,
    shared: &Arc<Shared>,
    addr: SocketAddr,
    mode: Mode,
) -> Result<Vec<Handle>, String> {
    (0..cfg.threads)
        .map(|id| {
            let (cfg, wl, shared) = (Arc::clone(cfg), Arc::clone(wl), Arc::clone(shared));
            thread::Builder::new()
                .name(format!("loadgen-{id}"))
                .spawn(move || {
                    Worker::new(&cfg, &wl, &shared, id, addr, mode)
                        .map(Worker::run)
                        .map_err(|e| format!("worker setup: {e}"))
                })
                .map_err(|e| format!("cannot spawn a thread: {e}"))
        })
        .collect()
}

/// Joins the workers; a worker that failed or panicked is reported, not propagated.
fn join(handles: Vec<Handle>, report: &mut Report) -> Vec<WorkerResult> {
    let mut out = Vec::new();
    for h in handles {
        match h.join() {
            Ok(Ok(r)) => out.push(r),
            Ok(Err(e)) => report.fail(e),
            Err(_) => report.fail("a worker thread panicked".into()),
        }
    }
    out
}

fn preload(cfg: &Arc<Config>, wl: &Arc<Workload>, addr: SocketAddr, report: &mut Report) {
    let shared = Arc::new(Shared::new(cfg.threads));
    let start = Instant::now();
    let handles = match spawn(cfg, wl, &shared, addr, Mode::Preload) {
        Ok(h) => h,
        Err(e) => return report.fail(e),
    };
    let mut printer = Printer::new(cfg);
    let deadline = start + Duration::from_secs_f64(cfg.preload_timeout);
    // Abort early when the errors already exceed what the run may have: a server that cannot
    // take these sets would otherwise keep the preload going through reset after reset.
    let allowed = (cfg.max_error_ratio * cfg.keys as f64) as u64;
    let too_many_errors = || {
        let errors: u64 = shared
            .progress
            .iter()
            .map(|p| p.errors.load(Ordering::Relaxed))
            .sum();
        errors > allowed
    };
    printer.wait(&shared, "preload", deadline, || {
        handles.iter().all(|h| h.is_finished()) || too_many_errors()
    });
    shared.phase.store(PHASE_STOP, Ordering::Release);
    let results = join(handles, report);
    printer.finish();
    let seconds = start.elapsed().as_secs_f64();
    let sets: u64 = results.iter().map(|r| r.preload_sets).sum();
    let errors: u64 = results.iter().map(|r| r.preload_errors).sum();
    let completed = results.len() == cfg.threads && results.iter().all(|r| r.finished);
    report.reconnects += results.iter().map(|r| r.reconnects).sum::<u64>();
    report.connect_failures += results.iter().map(|r| r.connect_failures).sum::<u64>();
    if errors > allowed {
        report.fail(format!(
            "preload: {errors} errors for {} keys (stopped after {seconds:.1} s)",
            cfg.keys
        ));
    } else if !completed {
        report.fail(format!("preload did not finish within {} s", cfg.preload_timeout));
    }
    report.preload = Some(PreloadReport {
        keys: cfg.keys,
        sets,
        errors,
        seconds,
        sets_per_s: sets as f64 / seconds.max(1e-9),
        completed,
    });
}

fn load(cfg: &Arc<Config>, wl: &Arc<Workload>, addr: SocketAddr, report: &mut Report) {
    let shared = Arc::new(Shared::new(cfg.threads));
    let handles = match spawn(cfg, wl, &shared, addr, Mode::Load) {
        Ok(h) => h,
        Err(e) => return report.fail(e),
    };
    let mut printer = Printer::new(cfg);
    let all_done = || handles.iter().all(|h| h.is_finished());
    let warm_end = Instant::now() + Duration::from_secs_f64(cfg.warmup);
    printer.wait(&shared, "warmup", warm_end, all_done);

    let server0 = cfg.server_pid.and_then(|p| procstat::cpu_seconds(Some(p)));
    let client0 = procstat::cpu_seconds(None);
    let t0 = Instant::now();
    shared.phase.store(PHASE_MEASURE, Ordering::Release);
    printer.wait(
        &shared,
        "measure",
        t0 + Duration::from_secs_f64(cfg.duration),
        all_done,
    );
    shared.phase.store(PHASE_STOP, Ordering::Release);
    let measured_s = t0.elapsed().as_secs_f64();
    let server1 = cfg.server_pid.and_then(|p| procstat::cpu_seconds(Some(p)));
    let client1 = procstat::cpu_seconds(None);

    let results = join(handles, report);
    printer.finish();
    let mut c = Counts::default();
    let mut hist: Option<Histogram<u64>> = None;
    for r in &results {
        c.add(&r.measured);
        report.reconnects += r.reconnects;
        report.connect_failures += r.connect_failures;
        match hist.as_mut() {
            None => hist = Some(r.hist.clone()),
            Some(h) => {
                if let Err(e) = h.add(&r.hist) {
                    report.fail(format!("histogram merge: {e}"));
                }
            }
        }
    }
    report.measured_s = measured_s;
    report.requests = c.requests;
    report.ops_per_s = c.requests as f64 / measured_s.max(1e-9);
    report.gets = c.gets;
    report.sets = c.sets;
    report.hits = c.hits;
    report.misses = c.misses;
    report.errors = c.errors;
    let keys = c.hits + c.misses;
    report.hit_ratio = (keys > 0).then(|| c.hits as f64 / keys as f64);
    report.keys_per_s = keys as f64 / measured_s.max(1e-9);
    if let Some(h) = hist.filter(|h| !h.is_empty()) {
        let us = |ns: u64| ns as f64 / 1e3;
        report.latency_us = Some(LatencyReport {
            samples: h.len(),
            min: us(h.min()),
            mean: h.mean() / 1e3,
            p50: us(h.value_at_quantile(0.50)),
            p90: us(h.value_at_quantile(0.90)),
            p99: us(h.value_at_quantile(0.99)),
            p99_9: us(h.value_at_quantile(0.999)),
            max: us(h.max()),
        });
    }
    if let (Some(pid), Some(a), Some(b)) = (cfg.server_pid, server0, server1) {
        let seconds = b - a;
        report.server_cpu = Some(ServerCpu {
            pid,
            seconds,
            us_per_op: (c.requests > 0).then(|| seconds * 1e6 / c.requests as f64),
        });
    } else if let Some(pid) = cfg.server_pid {
        report.fail(format!("cannot read the CPU time of server PID {pid} from /proc"));
    }
    if let (Some(a), Some(b)) = (client0, client1) {
        report.client_cpu_s = Some(b - a);
    }
    if c.requests == 0 {
        report.fail("no reply completed in the measured window".into());
    } else if c.errors as f64 > cfg.max_error_ratio * c.requests as f64 {
        report.fail(format!(
            "{} errors for {} requests (above --max-error-ratio {})",
            c.errors, c.requests, cfg.max_error_ratio
        ));
    }
}

fn main() -> ExitCode {
    let mut cfg = Config::parse();
    if let Err(e) = cfg.validate() {
        eprintln!("loadgen: {e}");
        return ExitCode::from(2);
    }
    let addr = match target(&cfg) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("loadgen: {e}");
            return ExitCode::from(2);
        }
    };
    let cfg = Arc::new(cfg);
    let mut report = Report::new(&cfg, addr.to_string());
    let timeout = Duration::from_millis(cfg.connect_timeout_ms.max(1));
    if let Err(e) = TcpStream::connect_timeout(&addr, timeout) {
        report.fail(format!("cannot connect to {addr}: {e}"));
        report.print();
        return ExitCode::from(2);
    }
    let wl = Arc::new(Workload::new(&cfg));
    if cfg.preload {
        preload(&cfg, &wl, addr, &mut report);
    }
    if cfg.duration > 0.0 && report.status == "ok" {
        load(&cfg, &wl, addr, &mut report);
    }
    report.print();
    if report.status == "ok" {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
