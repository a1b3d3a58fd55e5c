//! Command line: memcached's flags (short and long forms) parsed by clap, then validated
//! into a [`Config`] before anything is bound or spawned.
//!
//! Defaults are memcached 1.6's, except `-l`: slabcached listens on 127.0.0.1 unless told
//! otherwise, so a fresh install is not an open cache on every interface.

use clap::{ArgAction, Parser};
use std::fmt;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

/// The memcached protocol version slabcached answers `version` with. Clients and
/// auto-discovery libraries parse it as a number (ElastiCache discovery needs >= 1.4.14).
pub const PROTOCOL_VERSION: &str = "1.6.18";

#[derive(Parser, Debug, Clone)]
#[command(
    name = "slabcached",
    version = concat!(env!("CARGO_PKG_VERSION"), " (memcached 1.6.18 protocol)"),
    about = "A memcached-compatible cache server with a slab allocator",
    disable_help_subcommand = true,
    // memcached's getopt keeps the last of a repeated flag (-l accumulates, see below).
    args_override_self = true
)]
pub struct Args {
    /// TCP port to listen on (0 = off)
    #[arg(short = 'p', long = "port", default_value_t = 11211)]
    pub port: u32,
    /// UDP port (0 = off; UDP is not served, a non-zero value is logged and ignored)
    #[arg(short = 'U', long = "udp-port", default_value_t = 0)]
    pub udp_port: u32,
    /// UNIX socket to listen on (disables TCP)
    #[arg(short = 's', long = "unix-socket")]
    pub unix_socket: Option<PathBuf>,
    /// Access mask for the UNIX socket, in octal
    #[arg(short = 'a', long = "unix-mask", default_value = "700")]
    pub unix_mask: String,
    /// Enable the `shutdown` command
    #[arg(short = 'A', long = "enable-shutdown")]
    pub enable_shutdown: bool,
    /// Interfaces to listen on, comma separated or repeated (default 127.0.0.1)
    #[arg(short = 'l', long = "listen", default_value = "127.0.0.1", action = ArgAction::Append)]
    pub listen: Vec<String>,
    /// Run as a daemon
    #[arg(short = 'd', long = "daemon")]
    pub daemon: bool,
    /// Maximize core file limit
    #[arg(short = 'r', long = "enable-coredumps")]
    pub enable_coredumps: bool,
    /// Assume the identity of this user (only when run as root)
    #[arg(short = 'u', long = "user")]
    pub user: Option<String>,
    /// Item memory in megabytes
    #[arg(short = 'm', long = "memory-limit", default_value_t = 64)]
    pub memory_limit: u64,
    /// Return an error when memory is exhausted instead of evicting
    #[arg(short = 'M', long = "disable-evictions")]
    pub disable_evictions: bool,
    /// Maximum simultaneous connections
    #[arg(short = 'c', long = "conn-limit", default_value_t = 1024)]
    pub conn_limit: u32,
    /// Lock down all paged memory (accepted; logged)
    #[arg(short = 'k', long = "lock-memory")]
    pub lock_memory: bool,
    /// Verbose (-v), more verbose (-vv), protocol trace (-vvv)
    #[arg(short = 'v', long = "verbose", action = ArgAction::Count)]
    pub verbose: u8,
    /// Print the license and exit
    #[arg(short = 'i', long = "license")]
    pub license: bool,
    /// Save the process id in this file
    #[arg(short = 'P', long = "pidfile")]
    pub pidfile: Option<PathBuf>,
    /// Chunk size growth factor between slab classes
    #[arg(short = 'f', long = "slab-growth-factor", default_value_t = 1.25)]
    pub growth_factor: f64,
    /// Minimum space for key + value + flags in the smallest chunk, in bytes
    #[arg(short = 'n', long = "slab-min-size", default_value_t = 48)]
    pub min_chunk: u32,
    /// Try to use large memory pages (accepted; logged)
    #[arg(short = 'L', long = "enable-largepages")]
    pub large_pages: bool,
    /// Delimiter between key prefixes and ids for detailed stats
    #[arg(short = 'D', default_value = ":")]
    pub prefix_delimiter: String,
    /// Worker threads
    #[arg(short = 't', long = "threads", default_value_t = 4)]
    pub threads: u32,
    /// Maximum requests handled per event before serving other connections
    #[arg(short = 'R', long = "max-reqs-per-event", default_value_t = 20)]
    pub reqs_per_event: u32,
    /// Disable CAS uniques
    #[arg(short = 'C', long = "disable-cas")]
    pub disable_cas: bool,
    /// Listen backlog
    #[arg(short = 'b', long = "listen-backlog", default_value_t = 1024)]
    pub backlog: i32,
    /// Protocol: ascii, binary or auto
    #[arg(short = 'B', long = "protocol", default_value = "auto")]
    pub protocol: String,
    /// Largest item: bytes, or with a k/m suffix (1m default, 1k..1024m)
    #[arg(short = 'I', long = "max-item-size", default_value = "1m")]
    pub max_item_size: String,
    /// Turn on SASL authentication (not supported: refused)
    #[arg(short = 'S', long = "enable-sasl")]
    pub enable_sasl: bool,
    /// Disable the flush_all command
    #[arg(short = 'F', long = "disable-flush-all")]
    pub disable_flush_all: bool,
    /// Disable stats cachedump and lru_crawler metadump
    #[arg(short = 'X', long = "disable-dumping")]
    pub disable_dumping: bool,
    /// Disable watch commands (accepted)
    #[arg(short = 'W', long = "disable-watch")]
    pub disable_watch: bool,
    /// Extended options, comma separated (memcached's names)
    #[arg(short = 'o', long = "extended", value_delimiter = ',', action = ArgAction::Append)]
    pub extended: Vec<String>,
    /// ElastiCache auto-discovery: file listing the cluster's nodes (host|ip|port or host:port
    /// per line, # comments, optional `version N` line); re-read on SIGHUP
    #[arg(long = "cluster-config")]
    pub cluster_config: Option<PathBuf>,
    /// ElastiCache auto-discovery: a cluster node (host|ip|port or host:port); repeatable
    #[arg(long = "cluster-node")]
    pub cluster_node: Vec<String>,
    /// Allow clients to change the cluster config with `config set` / `config delete`
    #[arg(long = "enable-config-set")]
    pub enable_config_set: bool,
}

/// Which protocols a connection may speak (`-B`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binding {
    Ascii,
    Binary,
    Auto,
}

impl Binding {
    pub fn stats_name(self) -> &'static str {
        match self {
            Binding::Ascii => "ascii",
            Binding::Binary => "binary",
            Binding::Auto => "auto-negotiate",
        }
    }
}

/// Validated settings the server runs with.
#[derive(Debug, Clone)]
pub struct Config {
    pub port: u16,
    pub udp_port: u16,
    pub listen: Vec<SocketAddr>,
    pub listen_text: String,
    pub unix_socket: Option<PathBuf>,
    pub unix_mask: u32,
    pub enable_shutdown: bool,
    pub daemon: bool,
    pub user: Option<String>,
    pub memory_limit: usize,
    pub evictions: bool,
    pub max_connections: usize,
    pub verbosity: u8,
    pub pidfile: Option<PathBuf>,
    pub growth_factor: f64,
    pub min_chunk: usize,
    pub threads: usize,
    pub reqs_per_event: usize,
    pub use_cas: bool,
    pub backlog: i32,
    pub binding: Binding,
    pub item_size_max: usize,
    pub flush_enabled: bool,
    pub dump_enabled: bool,
    pub prefix_delimiter: char,
    pub idle_timeout: u32,
    pub track_sizes: bool,
    pub cluster_config: Option<PathBuf>,
    pub cluster_nodes: Vec<String>,
    pub enable_config_set: bool,
}

/// Why the command line was refused; printed and the process exits with status 1.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfigError {
    Invalid(String),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Invalid(msg) => f.write_str(msg),
        }
    }
}

impl std::error::Error for ConfigError {}

fn invalid(msg: impl Into<String>) -> ConfigError {
    ConfigError::Invalid(msg.into())
}

/// memcached's size syntax: bytes, or a number with a k/K or m/M suffix.
pub fn parse_size(text: &str) -> Option<usize> {
    let text = text.trim();
    let (digits, unit) = match text.as_bytes().last()? {
        b'k' | b'K' => (&text[..text.len() - 1], 1024),
        b'm' | b'M' => (&text[..text.len() - 1], 1024 * 1024),
        b'g' | b'G' => (&text[..text.len() - 1], 1024 * 1024 * 1024),
        _ => (text, 1),
    };
    digits.parse::<usize>().ok()?.checked_mul(unit)
}

fn resolve_listen(items: &[String], port: u16) -> Result<Vec<SocketAddr>, ConfigError> {
    let mut out = Vec::new();
    for item in items
        .iter()
        .flat_map(|s| s.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        // Accept "addr", "addr:port" and "[v6]:port" as memcached does.
        if let Ok(ip) = item.parse::<IpAddr>() {
            out.push(SocketAddr::new(ip, port));
            continue;
        }
        if let Ok(sa) = item.parse::<SocketAddr>() {
            out.push(sa);
            continue;
        }
        let host = item.trim_start_matches('[').trim_end_matches(']');
        let addrs = (host, port)
            .to_socket_addrs()
            .map_err(|e| invalid(format!("failed to listen on interface {item}: {e}")))?;
        let before = out.len();
        out.extend(addrs);
        if out.len() == before {
            return Err(invalid(format!(
                "failed to listen on interface {item}: no address"
            )));
        }
    }
    if out.is_empty() {
        return Err(invalid("no interface to listen on (-l)"));
    }
    out.dedup();
    Ok(out)
}

impl Config {
    /// Check every value as memcached does, with its messages where it has one.
    pub fn from_args(args: &Args) -> Result<Config, ConfigError> {
        if args.conn_limit == 0 {
            return Err(invalid("Maximum connections must be greater than 0"));
        }
        if args.threads == 0 {
            return Err(invalid("Number of threads must be greater than 0"));
        }
        if args.threads > 256 {
            return Err(invalid("Number of threads must be at most 256"));
        }
        if args.reqs_per_event == 0 {
            return Err(invalid("Number of requests per event must be greater than 0"));
        }
        if !(args.growth_factor > 1.0 && args.growth_factor.is_finite()) {
            return Err(invalid("Factor must be greater than 1"));
        }
        if args.min_chunk == 0 {
            return Err(invalid("Chunk size must be greater than 0"));
        }
        if args.port > 65535 {
            return Err(invalid(format!("ERROR: Invalid port number {}.", args.port)));
        }
        if args.udp_port > 65535 {
            return Err(invalid(format!(
                "ERROR: Invalid UDP port number {}.",
                args.udp_port
            )));
        }
        if args.backlog <= 0 {
            return Err(invalid("Listen backlog must be greater than 0"));
        }
        if args.enable_sasl {
            return Err(invalid("This server is not built with SASL support."));
        }
        let binding = match args.protocol.as_str() {
            "auto" => Binding::Auto,
            "binary" => Binding::Binary,
            "ascii" => Binding::Ascii,
            other => {
                return Err(invalid(format!(
                    "Invalid value for binding protocol: {other}\n -- should be one of auto, binary, or ascii"
                )))
            }
        };
        let item_size_max = parse_size(&args.max_item_size)
            .ok_or_else(|| invalid(format!("Invalid -I value: {}", args.max_item_size)))?;
        if item_size_max < 1024 {
            return Err(invalid("Item max size cannot be less than 1024 bytes."));
        }
        if item_size_max > 1024 * 1024 * 1024 {
            return Err(invalid("Cannot set item size limit higher than 1 gigabyte."));
        }
        let memory_limit = usize::try_from(args.memory_limit)
            .ok()
            .and_then(|m| m.checked_mul(1024 * 1024))
            .ok_or_else(|| invalid("Memory limit too large"))?;
        if item_size_max > memory_limit / 2 {
            return Err(invalid(
                "Cannot set item size limit higher than 1/2 of memory max.",
            ));
        }
        if memory_limit > slabcache_max_memory() {
            return Err(invalid(format!(
                "Memory limit too large: at most {} megabytes",
                slabcache_max_memory() >> 20
            )));
        }
        let unix_mask = u32::from_str_radix(&args.unix_mask, 8)
            .map_err(|_| invalid(format!("Invalid -a umask: {}", args.unix_mask)))?;
        let prefix_delimiter = match args.prefix_delimiter.chars().collect::<Vec<_>>()[..] {
            [c] => c,
            _ => return Err(invalid("-D takes a single character")),
        };
        let port = args.port as u16;
        let listen = if args.unix_socket.is_some() {
            Vec::new()
        } else {
            resolve_listen(&args.listen, port)?
        };

        let mut config = Config {
            port,
            udp_port: args.udp_port as u16,
            listen,
            listen_text: args.listen.join(","),
            unix_socket: args.unix_socket.clone(),
            unix_mask,
            enable_shutdown: args.enable_shutdown,
            daemon: args.daemon,
            user: args.user.clone(),
            memory_limit,
            evictions: !args.disable_evictions,
            max_connections: args.conn_limit as usize,
            verbosity: args.verbose,
            pidfile: args.pidfile.clone(),
            growth_factor: args.growth_factor,
            min_chunk: args.min_chunk as usize,
            threads: args.threads as usize,
            reqs_per_event: args.reqs_per_event as usize,
            use_cas: !args.disable_cas,
            backlog: args.backlog,
            binding,
            item_size_max,
            flush_enabled: !args.disable_flush_all,
            dump_enabled: !args.disable_dumping,
            prefix_delimiter,
            idle_timeout: 0,
            track_sizes: false,
            cluster_config: args.cluster_config.clone(),
            cluster_nodes: args.cluster_node.clone(),
            enable_config_set: args.enable_config_set,
        };
        for opt in &args.extended {
            config.apply_extended(opt)?;
        }
        Ok(config)
    }

    /// One `-o name[=value]` sub-option. Those that change behaviour here are applied;
    /// memcached's tuning knobs that have no counterpart are accepted and logged.
    fn apply_extended<'a>(&mut self, opt: &'a str) -> Result<(), ConfigError> {
        let opt = opt.trim();
        if opt.is_empty() {
            return Ok(());
        }
        let (name, value) = match opt.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (opt, None),
        };
        let need = |v: Option<&'a str>| v.ok_or_else(|| invalid(format!("Missing value for -o {name}")));
        match name {
            "item_size_max" => {
                let v = need(value)?;
                self.item_size_max =
                    parse_size(v).ok_or_else(|| invalid(format!("Invalid item_size_max: {v}")))?;
                if self.item_size_max < 1024 {
                    return Err(invalid("Item max size cannot be less than 1024 bytes."));
                }
            }
            "idle_timeout" => {
                let v = need(value)?;
                self.idle_timeout = v
                    .parse()
                    .map_err(|_| invalid(format!("Invalid idle_timeout: {v}")))?;
            }
            "track_sizes" => self.track_sizes = true,
            "no_flush" | "no_flush_all" => self.flush_enabled = false,
            "no_cas" => self.use_cas = false,
            "no_dump" | "no_lru_crawler_metadump" => self.dump_enabled = false,
            "maxconns_fast"
            | "no_maxconns_fast"
            | "hashpower"
            | "tail_repair_time"
            | "slab_reassign"
            | "no_slab_reassign"
            | "slab_automove"
            | "slab_automove_ratio"
            | "slab_automove_window"
            | "slab_chunk_max"
            | "lru_crawler"
            | "no_lru_crawler"
            | "lru_crawler_sleep"
            | "lru_crawler_tocrawl"
            | "lru_maintainer"
            | "no_lru_maintainer"
            | "hot_lru_pct"
            | "warm_lru_pct"
            | "hot_max_factor"
            | "warm_max_factor"
            | "temporary_ttl"
            | "modern"
            | "no_modern"
            | "hash_algorithm"
            | "watcher_logbuf_size"
            | "worker_logbuf_size"
            | "read_buf_mem_limit"
            | "inline_ascii_resp"
            | "no_inline_ascii_resp"
            | "no_hashexpand"
            | "drop_privileges"
            | "no_drop_privileges"
            | "meta_response_old"
            | "resp_obj_mem_limit"
            | "ext_path"
            | "ssl_chain_cert"
            | "ssl_key"
            | "ssl_verify_mode"
            | "ssl_keyformat"
            | "ssl_ciphers"
            | "ssl_ca_cert"
            | "ssl_wbuf_size"
            | "ssl_session_cache"
            | "ssl_kernel_tls"
            | "ssl_min_version"
            | "napi_ids"
            | "proxy_config"
            | "large_memory_pages"
            | "lru_segmented"
            | "temp_lru"
            | "expirezero_does_not_evict"
            | "slab_automove_freeratio" => {
                log::info!("-o {opt}: accepted, not applicable to slabcached's engine");
            }
            _ => return Err(invalid(format!("Illegal suboption \"{opt}\""))),
        }
        Ok(())
    }
}

/// The largest `-m` the engine can address (its chunk indices are 32-bit).
fn slabcache_max_memory() -> usize {
    32 << 30
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, ConfigError> {
        let mut v = vec!["slabcached"];
        v.extend_from_slice(args);
        Config::from_args(&Args::try_parse_from(v).expect("clap accepts"))
    }

    #[test]
    fn defaults_are_memcacheds() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.port, 11211);
        assert_eq!(c.memory_limit, 64 << 20);
        assert_eq!(c.max_connections, 1024);
        assert_eq!(c.threads, 4);
        assert_eq!(c.item_size_max, 1 << 20);
        assert_eq!(c.listen, vec!["127.0.0.1:11211".parse().unwrap()]);
    }

    #[test]
    fn sizes_take_suffixes() {
        assert_eq!(parse(&["-I", "512k"]).unwrap().item_size_max, 512 * 1024);
        assert_eq!(parse(&["-I", "2m"]).unwrap().item_size_max, 2 << 20);
        assert_eq!(parse(&["-I", "1024"]).unwrap().item_size_max, 1024);
    }

    #[test]
    fn invalid_values_are_refused() {
        for bad in [
            &["-c", "0"][..],
            &["-t", "0"],
            &["-I", "1000"],
            &["-B", "http"],
            &["-l", "fooble.invalid."],
            &["-f", "1"],
            &["-n", "0"],
            &["-R", "0"],
            &["-o", "nonsense"],
            &["-p", "70000"],
            &["-m", "2", "-I", "2m"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn repeated_flags_keep_the_last_and_listen_accumulates() {
        let c = parse(&["-m", "32", "-m", "48", "-l", "127.0.0.1", "-l", "::1"]).unwrap();
        assert_eq!(c.memory_limit, 48 << 20);
        assert_eq!(c.listen.len(), 2);
    }

    #[test]
    fn listen_lists_and_extended_options() {
        let c = parse(&["-l", "127.0.0.1,::1", "-p", "5000", "-o", "modern,idle_timeout=5"]).unwrap();
        assert_eq!(c.listen.len(), 2);
        assert_eq!(c.idle_timeout, 5);
        assert!(parse(&["-U", "0"]).is_ok());
    }
}
