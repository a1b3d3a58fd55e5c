//! Command-line configuration of the load generator (clap derive) and its validation.
//!
//! The whole [`Config`] is echoed into the JSON result, so every run records exactly what load
//! it applied.

use clap::{Parser, ValueEnum};
use serde::Serialize;
use std::fmt;
use std::str::FromStr;

/// Wire protocol spoken to the server.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// memcached's ASCII protocol: `get k1 k2 ...`, `set k 0 0 n`.
    Text,
    /// memcached's binary protocol: GetK, Set, and GetKQ... + Noop for multi-get.
    Binary,
}

/// Size of the values written by sets: fixed (`100`) or uniform in `min..max` inclusive.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ValueSize {
    /// Smallest value size in bytes.
    pub min: usize,
    /// Largest value size in bytes (equal to `min` when fixed).
    pub max: usize,
}

impl FromStr for ValueSize {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let parse = |t: &str| parse_size(t).ok_or_else(|| format!("bad size {t:?}"));
        let (min, max) = match s.split_once("..") {
            Some((a, b)) => (parse(a)?, parse(b)?),
            None => {
                let v = parse(s)?;
                (v, v)
            }
        };
        if min > max {
            return Err(format!("value size range {s:?} has min > max"));
        }
        if max > 64 << 20 {
            return Err("value size above 64 MiB".into());
        }
        Ok(ValueSize { min, max })
    }
}

impl fmt::Display for ValueSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.min == self.max {
            write!(f, "{}", self.min)
        } else {
            write!(f, "{}..{}", self.min, self.max)
        }
    }
}

/// Parses `100`, `1k`/`1K` (1024), `2m`/`2M` (MiB).
fn parse_size(s: &str) -> Option<usize> {
    let s = s.trim();
    let (digits, mult) = match s.as_bytes().last()? {
        b'k' | b'K' => (&s[..s.len() - 1], 1024),
        b'm' | b'M' => (&s[..s.len() - 1], 1024 * 1024),
        _ => (s, 1),
    };
    digits.parse::<usize>().ok()?.checked_mul(mult)
}

/// Load generator for memcached-compatible servers.
///
/// Drives N connections from T threads (mio event loops) in a closed loop: each connection keeps
/// `--pipeline` requests in flight and sends a new one as soon as one completes. Prints a
/// progress line on stderr every second and a JSON result on stdout.
#[derive(Parser, Debug, Clone, Serialize)]
#[command(name = "loadgen", version, about, long_about = None)]
pub struct Config {
    /// Server address (loopback only: 127.0.0.0/8 or ::1).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Server TCP port.
    #[arg(short = 'p', long, default_value_t = 11211)]
    pub port: u16,
    /// Number of connections in total.
    #[arg(short = 'c', long, default_value_t = 50)]
    pub connections: usize,
    /// Number of client threads (each runs one event loop over its share of the connections).
    #[arg(short = 't', long, default_value_t = 2)]
    pub threads: usize,
    /// Requests kept in flight per connection (1 = no pipelining).
    #[arg(short = 'd', long, default_value_t = 1)]
    pub pipeline: usize,
    /// Fraction of requests that are gets (the rest are sets), 0.0..=1.0.
    #[arg(short = 'r', long, default_value_t = 0.9)]
    pub get_ratio: f64,
    /// Size of the key space: keys are <prefix><index zero-padded>, index uniform in 0..keys.
    #[arg(short = 'k', long, default_value_t = 100_000)]
    pub keys: u64,
    /// Key prefix.
    #[arg(long, default_value = "key:")]
    pub key_prefix: String,
    /// Value size of sets: `100`, `1k`, or a uniform range `10..1000`.
    #[arg(short = 's', long, default_value = "100")]
    pub value_size: ValueSize,
    /// Keys per get request (K > 1: text `get k1 .. kK`, binary K x GetKQ + Noop).
    #[arg(short = 'm', long, default_value_t = 1)]
    pub multiget: usize,
    /// Protocol.
    #[arg(short = 'P', long, value_enum, default_value_t = Protocol::Text)]
    pub protocol: Protocol,
    /// Measured duration in seconds (0: preload only).
    #[arg(short = 'D', long, default_value_t = 5.0)]
    pub duration: f64,
    /// Warm-up seconds of the same load before the measured window (not counted).
    #[arg(short = 'w', long, default_value_t = 1.0)]
    pub warmup: f64,
    /// Before the load, set every key of the key space once.
    #[arg(long)]
    pub preload: bool,
    /// Preload with `noreply` text sets (binary: SetQ), each batch closed by a get (binary: Noop).
    #[arg(long)]
    pub preload_noreply: bool,
    /// Preload pipelining: sets in flight per connection (noreply: sets per batch).
    #[arg(long, default_value_t = 64)]
    pub preload_depth: usize,
    /// Give up the preload after this many seconds.
    #[arg(long, default_value_t = 300.0)]
    pub preload_timeout: f64,
    /// PID of the server: its CPU time (utime+stime from /proc/PID/stat) over the measured
    /// window is reported, total and per op.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Seed of the key/size/op choices (each thread derives its own stream).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Exit with status 1 when errors / requests exceeds this.
    #[arg(long, default_value_t = 0.01)]
    pub max_error_ratio: f64,
    /// A request unanswered for this many seconds counts as an error and its connection is
    /// reopened.
    #[arg(long, default_value_t = 5.0)]
    pub request_timeout: f64,
    /// Diagnostic, off by default: a client thread busy for this many microseconds without
    /// its poll coming back empty yields the CPU once (as slabcached's workers do). Shows how
    /// much of a tail comes from the client's own threads waiting for a shared core.
    #[arg(long, default_value_t = 0)]
    pub yield_after_us: u64,
    /// Paced load: requests per second in total, spread evenly over the connections (each
    /// sends its next request on its own schedule, at most `--pipeline` in flight). 0: closed
    /// loop, as fast as replies come back. A paced load puts both servers at the same
    /// utilisation, so CPU per op compares them at equal load rather than at saturation.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Speak TLS (rustls); the server's certificate is not verified (a loopback benchmark).
    #[arg(long)]
    pub tls: bool,
    /// TCP connect timeout in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub connect_timeout_ms: u64,
    /// No progress line on stderr.
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

impl Config {
    /// Checks option ranges; clamps `threads` to `connections`.
    pub fn validate(&mut self) -> Result<(), String> {
        if self.connections == 0 {
            return Err("--connections must be at least 1".into());
        }
        if self.threads == 0 {
            return Err("--threads must be at least 1".into());
        }
        self.threads = self.threads.min(self.connections);
        if self.pipeline == 0 || self.pipeline > 4096 {
            return Err("--pipeline must be in 1..=4096".into());
        }
        if self.multiget == 0 || self.multiget > 10_000 {
            return Err("--multiget must be in 1..=10000".into());
        }
        if !(0.0..=1.0).contains(&self.get_ratio) {
            return Err("--get-ratio must be in 0.0..=1.0".into());
        }
        if self.keys == 0 {
            return Err("--keys must be at least 1".into());
        }
        let width = key_width(self.keys);
        if self.key_prefix.len() + width > 250 {
            return Err("key prefix too long: keys must stay within 250 bytes".into());
        }
        if self.key_prefix.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err("key prefix must not contain spaces or control characters".into());
        }
        if !(self.duration >= 0.0 && self.warmup >= 0.0 && self.preload_timeout > 0.0) {
            return Err("durations must be non-negative".into());
        }
        if self.duration > 24.0 * 3600.0 || self.warmup > 3600.0 {
            return Err("duration bounded to 24 h, warm-up to 1 h".into());
        }
        if !(self.request_timeout > 0.0 && self.request_timeout <= 3600.0) {
            return Err("--request-timeout must be in (0, 3600] seconds".into());
        }
        if self.preload_depth == 0 || self.preload_depth > 100_000 {
            return Err("--preload-depth must be in 1..=100000".into());
        }
        if self.duration == 0.0 && !self.preload {
            return Err("nothing to do: --duration 0 without --preload".into());
        }
        Ok(())
    }
}

/// Decimal digits of the largest key index, so every key has the same length.
pub fn key_width(keys: u64) -> usize {
    let mut n = keys.saturating_sub(1);
    let mut w = 1;
    while n >= 10 {
        n /= 10;
        w += 1;
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_sizes() {
        assert_eq!(
            "100".parse::<ValueSize>().unwrap(),
            ValueSize { min: 100, max: 100 }
        );
        assert_eq!(
            "1k".parse::<ValueSize>().unwrap(),
            ValueSize { min: 1024, max: 1024 }
        );
        assert_eq!(
            "10..2K".parse::<ValueSize>().unwrap(),
            ValueSize { min: 10, max: 2048 }
        );
        assert!("5..4".parse::<ValueSize>().is_err());
        assert!("x".parse::<ValueSize>().is_err());
    }

    #[test]
    fn widths() {
        assert_eq!(key_width(1), 1);
        assert_eq!(key_width(10), 1);
        assert_eq!(key_width(11), 2);
        assert_eq!(key_width(100_000), 5);
    }
}
