//! Command line: memcached's flags (short and long forms) parsed by clap, then validated
//! into a [`Config`] before anything is bound or spawned.
//!
//! Defaults are memcached 1.6's, except `-l`: slabcached listens on 127.0.0.1 unless told
//! otherwise, so a fresh install is not an open cache on every interface. The TLS options
//! are in `tls.rs`; the tests against memcached's parsing and messages in `tests.rs`.

use clap::{ArgAction, Parser};
use std::fmt;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

mod tls;
pub use tls::TlsOptions;

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
    /// TCP port to listen on (0 = off, -1 = any free port; default 11211, or -U's port)
    #[arg(short = 'p', long = "port", allow_negative_numbers = true)]
    pub port: Option<i32>,
    /// UDP port to listen on (0 = off, -1 = any free port)
    #[arg(
        short = 'U',
        long = "udp-port",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    pub udp_port: i32,
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
    /// Try to use large memory pages (transparent huge pages for the cache memory)
    #[arg(short = 'L', long = "enable-largepages")]
    pub large_pages: bool,
    /// Delimiter between key prefixes and ids for detailed stats (turns them on, as
    /// `stats detail on` does; ':' when not given)
    #[arg(short = 'D')]
    pub prefix_delimiter: Option<String>,
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
    /// Protocol: ascii, binary or auto (default auto; binary with -S, ascii with -Y)
    #[arg(short = 'B', long = "protocol")]
    pub protocol: Option<String>,
    /// Largest item: bytes, or with a k/m suffix (1m default, 1k..1024m)
    #[arg(short = 'I', long = "max-item-size", default_value = "1m")]
    pub max_item_size: String,
    /// Turn on SASL authentication (binary protocol; Cyrus SASL's SASL_CONF_PATH
    /// memcached.conf, or the MEMCACHED_SASL_PWDB user:password file)
    #[arg(short = 'S', long = "enable-sasl")]
    pub enable_sasl: bool,
    /// Disable the flush_all command
    #[arg(short = 'F', long = "disable-flush-all")]
    pub disable_flush_all: bool,
    /// Disable stats cachedump, stats detail dump and lru_crawler metadump
    #[arg(short = 'X', long = "disable-dumping")]
    pub disable_dumping: bool,
    /// Disable watch commands (accepted)
    #[arg(short = 'W', long = "disable-watch")]
    pub disable_watch: bool,
    /// Enable ASCII protocol authentication: a file of user:password lines (re-read on SIGHUP)
    #[arg(short = 'Y', long = "auth-file")]
    pub auth_file: Option<PathBuf>,
    /// Memory file for a restartable cache (stop with SIGUSR1 or `shutdown graceful` to
    /// keep the items for the next start; use a RAM disk such as /dev/shm)
    #[arg(short = 'e', long = "memory-file")]
    pub memory_file: Option<PathBuf>,
    /// enable TLS/SSL on the TCP listeners (`-l notls:<ip>:<port>` keeps one plain); the
    /// certificate and key come from `-o ssl_chain_cert=...,ssl_key=...`
    #[arg(short = 'Z', long = "enable-ssl")]
    pub enable_ssl: bool,
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
    /// Serve Prometheus metrics at http://ADDR:PORT/metrics (off by default)
    #[arg(long = "metrics-listen", value_name = "ADDR:PORT")]
    pub metrics_listen: Option<String>,
    /// Read flags from this file first, memcached.conf style: one or more flags per line,
    /// `#` comments (flags given on the command line win)
    #[arg(long = "config-file", value_name = "PATH")]
    pub config_file: Option<PathBuf>,
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

/// memcached's slab page size, which `slab_chunk_max` must divide (memcached 1.6 keeps
/// 1 MB pages whatever `-I` says).
pub const SLAB_PAGE_SIZE: usize = 1 << 20;

/// The settings that commands can change while the server runs (`slabs automove`,
/// `lru_crawler ...`, `lru ...`); `-o` gives their initial values and `stats settings`
/// shows the ones in force. Types are memcached's, so values print as memcached's do.
#[derive(Debug, Clone, PartialEq)]
pub struct Tunables {
    /// 0 off, 1 the balancer, 2 aggressive (`-o slab_automove`, `slabs automove`).
    pub slab_automove: u8,
    /// `-o slab_automove_ratio`, `slabs automove ratio`.
    pub slab_automove_ratio: f64,
    /// Whether the LRU crawler runs (`-o lru_crawler|no_lru_crawler`, `lru_crawler
    /// enable|disable`).
    pub lru_crawler: bool,
    /// Microseconds between crawl slices (`-o lru_crawler_sleep`, `lru_crawler sleep`).
    pub lru_crawler_sleep: u32,
    /// Items per class a crawl looks at, 0 = all (`lru_crawler tocrawl`).
    pub lru_crawler_tocrawl: u32,
    /// `lru mode segmented|flat` (the engine has one LRU per class either way).
    pub lru_segmented: bool,
    /// `lru tune` and `-o hot_lru_pct`: a C `int`, as memcached keeps it.
    pub hot_lru_pct: i32,
    /// `lru tune` and `-o warm_lru_pct`.
    pub warm_lru_pct: i32,
    /// `lru tune` and `-o hot_max_factor`.
    pub hot_max_factor: f64,
    /// `lru tune` and `-o warm_max_factor`.
    pub warm_max_factor: f64,
    /// `lru temp_ttl` (a non-negative ttl turns it on) and `-o temporary_ttl`.
    pub temp_lru: bool,
    /// `lru temp_ttl` and `-o temporary_ttl`.
    pub temporary_ttl: u32,
}

impl Default for Tunables {
    /// memcached 1.6.18's defaults.
    fn default() -> Self {
        Tunables {
            slab_automove: 1,
            slab_automove_ratio: 0.8,
            lru_crawler: true,
            lru_crawler_sleep: 100,
            lru_crawler_tocrawl: 0,
            lru_segmented: true,
            hot_lru_pct: 20,
            warm_lru_pct: 40,
            hot_max_factor: 0.2,
            warm_max_factor: 2.0,
            temp_lru: false,
            temporary_ttl: 61,
        }
    }
}

/// memcached's TCP port when neither `-p` nor `-U` names one.
const DEFAULT_PORT: i32 = 11211;

/// The port to bind for a `-p`/`-U` value that is not 0: -1 asks the kernel for a free one.
pub fn bind_port(port: i32) -> u16 {
    u16::try_from(port).unwrap_or(0)
}

/// Validated settings the server runs with.
#[derive(Debug, Clone)]
pub struct Config {
    /// memcached's meaning: 0 = no TCP, -1 = a port the kernel picks ([`bind_port`]).
    pub port: i32,
    /// As `port`, for UDP.
    pub udp_port: i32,
    pub listen: Vec<SocketAddr>,
    pub listen_text: String,
    pub unix_socket: Option<PathBuf>,
    pub unix_mask: u32,
    pub enable_shutdown: bool,
    pub daemon: bool,
    pub user: Option<String>,
    pub memory_limit: usize,
    pub evictions: bool,
    /// `-L`: transparent huge pages for the cache memory.
    pub large_pages: bool,
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
    /// `watch` allowed (`-W` turns it off).
    pub watch_enabled: bool,
    /// Bytes of log lines a thread buffers for the logger (`-o worker_logbuf_size`, KB).
    pub worker_logbuf_size: usize,
    /// Bytes a watcher buffers before it skips lines (`-o watcher_logbuf_size`, KB).
    pub watcher_logbuf_size: usize,
    pub prefix_delimiter: char,
    /// Per-prefix counting (`stats detail`) on from the start: `-D` was given.
    pub detail_enabled: bool,
    pub idle_timeout: u32,
    /// `-o read_buf_mem_limit` (given in megabytes) in bytes; 0: none (see `net::budget`).
    pub read_buf_mem_limit: usize,
    pub track_sizes: bool,
    /// `slabs reassign` and the page mover (`-o slab_reassign|no_slab_reassign`).
    pub slab_reassign: bool,
    /// `-o slab_automove_window` (memcached keeps `atoi`'s result in an unsigned int).
    pub slab_automove_window: u32,
    /// Largest chunk of a slab class, bytes (`-o slab_chunk_max`; memcached's default is
    /// half a page): larger items are stored as chains of chunks.
    pub slab_chunk_max: usize,
    /// `-o slab_chunk_max` was given (then `-I` above 1 MB does not change it).
    pub slab_chunk_max_set: bool,
    /// `-o slab_sizes=A-B-C`: the classes' chunk sizes instead of `-n` and `-f`'s ladder
    /// (checked once every option is read, as memcached does; see [`Config::slab_sizes`]).
    pub slab_sizes_text: Option<String>,
    /// The checked `slab_sizes`, ascending.
    pub slab_sizes: Option<Vec<usize>>,
    /// `-o sock_cookie_id`: the mark put on the listening sockets (0: none).
    pub sock_cookie_id: u32,
    /// memcached's LRU maintainer thread (`-o lru_maintainer|no_lru_maintainer`); `lru
    /// mode` and `lru temp_ttl` need it.
    pub lru_maintainer: bool,
    /// Initial values of the settings commands can change.
    pub tunables: Tunables,
    pub cluster_config: Option<PathBuf>,
    pub cluster_nodes: Vec<String>,
    pub enable_config_set: bool,
    /// `-S`: binary connections authenticate with SASL before anything else.
    pub sasl: bool,
    /// `-Y`: text connections authenticate with a `user:password` line of this file.
    pub auth_file: Option<PathBuf>,
    /// `-e`: the arena is this file's map, and a graceful stop saves what a warm restart
    /// needs next to it (see [`crate::restart`]).
    pub memory_file: Option<PathBuf>,
    /// Where the Prometheus endpoint listens (`--metrics-listen`); None: no endpoint.
    pub metrics_listen: Option<SocketAddr>,
    /// Listen addresses given with memcached's `notls:` prefix: plain TCP even under `-Z`.
    pub notls_listen: Vec<SocketAddr>,
    /// `-Z` and the `ssl_*` options.
    pub tls: TlsOptions,
}

/// The protocol binding authentication imposes, with memcached's rules and messages: SASL
/// exists only in the binary protocol and the authfile only in the text one, so each
/// forces its protocol when `-B` is not given and refuses any other `-B`.
fn auth_binding(args: &Args, binding: Binding) -> Result<Binding, ConfigError> {
    let protocol_given = args.protocol.is_some();
    let mut binding = binding;
    if args.enable_sasl {
        if !protocol_given {
            binding = Binding::Binary;
        } else if binding != Binding::Binary {
            return Err(usage(
                "ERROR: You cannot allow the ASCII protocol while using SASL.",
            ));
        }
        if args.udp_port != 0 {
            return Err(usage(
                "ERROR: Cannot enable UDP while using binary SASL authentication.",
            ));
        }
    }
    if args.auth_file.is_some() {
        if !protocol_given {
            binding = Binding::Ascii;
        } else if binding != Binding::Ascii {
            return Err(usage(
                "ERROR: You cannot allow the BINARY protocol while using ascii authentication tokens.",
            ));
        }
        if args.udp_port != 0 {
            return Err(usage(
                "Cannot use UDP with ascii authentication enabled (-U 0 to disable)",
            ));
        }
    }
    Ok(binding)
}

/// Why the command line was refused; printed and the process exits with
/// [`ConfigError::exit_code`].
#[derive(Debug, Clone, PartialEq)]
pub enum ConfigError {
    /// A bad flag or option value (memcached exits 1).
    Invalid(String),
    /// Values that are each valid but do not go together, found after all flags were read
    /// (memcached exits with `EX_USAGE`, 64).
    Usage(String),
}

impl ConfigError {
    /// The exit status memcached uses for this kind of error.
    pub fn exit_code(&self) -> i32 {
        match self {
            ConfigError::Invalid(_) => 1,
            ConfigError::Usage(_) => 64,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Invalid(msg) | ConfigError::Usage(msg) => f.write_str(msg),
        }
    }
}

impl std::error::Error for ConfigError {}

/// `-o slab_sizes`: sizes joined by `-`, each within `-n`..=`slab_chunk_max`, each more
/// than 8 bytes above the one before, at most 62 of them; memcached's checks and words.
fn parse_slab_sizes(text: &str, min: usize, max: usize) -> Result<Vec<usize>, ConfigError> {
    let mut sizes: Vec<usize> = Vec::new();
    for word in text.split('-').filter(|w| !w.is_empty()) {
        // memcached's safe_strtoul: digits only, as an unsigned 32-bit number.
        let parsed = word.parse::<u32>().ok();
        let size = parsed.map_or(0, |v| v as usize);
        if parsed.is_none() || size < min || size > max {
            return Err(usage(format!("slab size {size} is out of valid range")));
        }
        let last = sizes.last().copied().unwrap_or(0);
        if last >= size {
            return Err(usage(format!(
                "slab size {size} cannot be lower than or equal to a previous class size"
            )));
        }
        if size <= last + 8 {
            return Err(usage(format!(
                "slab size {size} must be at least 8 bytes larger than previous class"
            )));
        }
        sizes.push(size);
        if sizes.len() >= slabcache::MAX_CLASSES - 1 {
            return Err(usage("too many slab classes specified"));
        }
    }
    if sizes.is_empty() {
        return Err(usage("Missing slab_sizes argument"));
    }
    Ok(sizes)
}

fn invalid(msg: impl Into<String>) -> ConfigError {
    ConfigError::Invalid(msg.into())
}

fn usage(msg: impl Into<String>) -> ConfigError {
    ConfigError::Usage(msg.into())
}

/// C's `atoi` (as glibc does it: `strtol` cut to an `int`): the number at the front of
/// `text`, 0 if there is none; what follows is ignored.
fn c_atoi(text: &str) -> i32 {
    let t = text.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (negative, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let mut value: i64 = 0;
    for d in digits.bytes().take_while(u8::is_ascii_digit) {
        value = value.saturating_mul(10).saturating_add(i64::from(d - b'0'));
    }
    (if negative { value.saturating_neg() } else { value }) as i32
}

/// C's `atof`: `strtod` on the front of `text`, 0 if there is no number.
fn c_atof(text: &str) -> f64 {
    proto::token::strtod_prefix(text.as_bytes()).map_or(0.0, |(v, _, _)| v)
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

/// The addresses of `-l`, and those of them marked `notls:` (plain TCP under `-Z`).
fn resolve_listen(items: &[String], port: u16) -> Result<(Vec<SocketAddr>, Vec<SocketAddr>), ConfigError> {
    let mut out = Vec::new();
    let mut notls = Vec::new();
    for item in items
        .iter()
        .flat_map(|s| s.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        if let Some(plain) = item.strip_prefix("notls:") {
            let (addrs, _) = resolve_listen(&[plain.to_string()], port)?;
            notls.extend(addrs.iter().copied());
            out.extend(addrs);
            continue;
        }
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
    Ok((out, notls))
}

/// `--metrics-listen`: `ADDR:PORT`, `[V6]:PORT` or `HOST:PORT`, the first address it names.
fn resolve_metrics_listen(text: &str) -> Result<SocketAddr, ConfigError> {
    let bad = |why: String| invalid(format!("Invalid --metrics-listen {text}: {why}"));
    text.to_socket_addrs()
        .map_err(|e| bad(e.to_string()))?
        .next()
        .ok_or_else(|| bad("no address".into()))
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
        // memcached: `-U N` without `-p` moves TCP to N as well.
        let port = match args.port {
            Some(p) => p,
            None if args.udp_port != 0 => args.udp_port,
            None => DEFAULT_PORT,
        };
        if !(-1..=65535).contains(&port) {
            return Err(invalid(format!("ERROR: Invalid port number {port}.")));
        }
        if !(-1..=65535).contains(&args.udp_port) {
            return Err(invalid(format!(
                "ERROR: Invalid UDP port number {}.",
                args.udp_port
            )));
        }
        if args.backlog <= 0 {
            return Err(invalid("Listen backlog must be greater than 0"));
        }
        let binding = match args.protocol.as_deref().unwrap_or("auto") {
            "auto" => Binding::Auto,
            "binary" => Binding::Binary,
            "ascii" => Binding::Ascii,
            other => {
                return Err(invalid(format!(
                    "Invalid value for binding protocol: {other}\n -- should be one of auto, binary, or ascii"
                )))
            }
        };
        let binding = auth_binding(args, binding)?;
        let item_size_max = parse_size(&args.max_item_size)
            .ok_or_else(|| invalid(format!("Invalid -I value: {}", args.max_item_size)))?;
        let memory_limit = usize::try_from(args.memory_limit)
            .ok()
            .and_then(|m| m.checked_mul(1024 * 1024))
            .ok_or_else(|| invalid("Memory limit too large"))?;
        // The engine's own cap (its chunk indices are 32-bit), so what passes here binds.
        if memory_limit > slabcache::MAX_MEMORY_LIMIT {
            return Err(invalid(format!(
                "Memory limit too large: at most {} megabytes",
                slabcache::MAX_MEMORY_LIMIT >> 20
            )));
        }
        let unix_mask = u32::from_str_radix(&args.unix_mask, 8)
            .map_err(|_| invalid(format!("Invalid -a umask: {}", args.unix_mask)))?;
        let prefix_delimiter = match args.prefix_delimiter.as_deref() {
            None => ':',
            Some(d) => match d.chars().collect::<Vec<_>>()[..] {
                [c] => c,
                _ => return Err(invalid("-D takes a single character")),
            },
        };
        let (listen, notls_listen) = if args.unix_socket.is_some() {
            (Vec::new(), Vec::new())
        } else {
            resolve_listen(&args.listen, bind_port(port))?
        };
        if !notls_listen.is_empty() && !args.enable_ssl {
            return Err(invalid("'notls' option is valid only when SSL is enabled"));
        }

        let mut config = Config {
            port,
            udp_port: args.udp_port,
            listen,
            listen_text: args.listen.join(","),
            unix_socket: args.unix_socket.clone(),
            unix_mask,
            enable_shutdown: args.enable_shutdown,
            daemon: args.daemon,
            user: args.user.clone(),
            memory_limit,
            evictions: !args.disable_evictions,
            large_pages: args.large_pages,
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
            watch_enabled: !args.disable_watch,
            worker_logbuf_size: crate::watch::WORKER_LOGBUF_SIZE,
            watcher_logbuf_size: crate::watch::WATCHER_LOGBUF_SIZE,
            prefix_delimiter,
            detail_enabled: args.prefix_delimiter.is_some(),
            idle_timeout: 0,
            read_buf_mem_limit: 0,
            track_sizes: false,
            slab_reassign: true,
            slab_automove_window: 30,
            slab_chunk_max: SLAB_PAGE_SIZE / 2,
            slab_chunk_max_set: false,
            slab_sizes_text: None,
            slab_sizes: None,
            sock_cookie_id: 0,
            lru_maintainer: true,
            tunables: Tunables::default(),
            cluster_config: args.cluster_config.clone(),
            cluster_nodes: args.cluster_node.clone(),
            enable_config_set: args.enable_config_set,
            sasl: args.enable_sasl,
            auth_file: args.auth_file.clone(),
            memory_file: args.memory_file.clone(),
            metrics_listen: args
                .metrics_listen
                .as_deref()
                .map(resolve_metrics_listen)
                .transpose()?,
            notls_listen,
            tls: TlsOptions {
                enabled: args.enable_ssl,
                ..TlsOptions::default()
            },
        };
        for opt in &args.extended {
            config.apply_extended(opt)?;
        }
        config.check_combinations()?;
        config.check_tls()?;
        Ok(config)
    }

    /// memcached's checks once every flag is read, in its order and with its messages.
    fn check_combinations(&mut self) -> Result<(), ConfigError> {
        // `-I` and `-o item_size_max` set the same value; memcached checks it once, here.
        if self.item_size_max < 1024 {
            return Err(usage("Item max size cannot be less than 1024 bytes."));
        }
        if self.item_size_max > self.memory_limit / 2 {
            return Err(usage("Cannot set item size limit higher than 1/2 of memory max."));
        }
        if self.item_size_max > 1024 * 1024 * 1024 {
            return Err(usage("Cannot set item size limit higher than a gigabyte."));
        }
        if self.item_size_max > 1024 * 1024 && !self.slab_chunk_max_set {
            self.slab_chunk_max = SLAB_PAGE_SIZE / 2;
        }
        if self.slab_chunk_max > self.item_size_max {
            return Err(usage(format!(
                "slab_chunk_max (bytes: {}) cannot be larger than -I (item_size_max {})",
                self.slab_chunk_max, self.item_size_max
            )));
        }
        if !self.item_size_max.is_multiple_of(self.slab_chunk_max) {
            return Err(usage(format!(
                "-I (item_size_max: {}) must be evenly divisible by slab_chunk_max (bytes: {})",
                self.item_size_max, self.slab_chunk_max
            )));
        }
        if !SLAB_PAGE_SIZE.is_multiple_of(self.slab_chunk_max) {
            return Err(usage(format!(
                "slab_chunk_max (bytes: {}) must divide evenly into {SLAB_PAGE_SIZE} (slab_page_size)",
                self.slab_chunk_max
            )));
        }
        if let Some(text) = &self.slab_sizes_text {
            self.slab_sizes = Some(parse_slab_sizes(text, self.min_chunk, self.slab_chunk_max)?);
        }
        let t = &self.tunables;
        if t.hot_lru_pct.wrapping_add(t.warm_lru_pct) > 80 {
            return Err(usage(
                "hot_lru_pct + warm_lru_pct cannot be more than 80% combined",
            ));
        }
        if t.temp_lru && !self.lru_maintainer {
            return Err(usage("temporary_ttl requires lru_maintainer to be enabled"));
        }
        Ok(())
    }

    /// The slab and LRU `-o` options: memcached's parsing (`atoi`/`atof` where it uses
    /// them), checks and messages. `Ok(false)`: not one of them.
    fn apply_slab_lru_option(&mut self, name: &str, value: Option<&str>) -> Result<bool, ConfigError> {
        let need = |what: &str| value.ok_or_else(|| invalid(format!("Missing {what}")));
        let t = &mut self.tunables;
        match name {
            "slab_reassign" => self.slab_reassign = true,
            "no_slab_reassign" => self.slab_reassign = false,
            "slab_automove" => {
                let level = value.map_or(1, c_atoi);
                if !(0..=2).contains(&level) {
                    return Err(invalid("slab_automove must be between 0 and 2"));
                }
                t.slab_automove = level as u8;
            }
            "no_slab_automove" => t.slab_automove = 0,
            "slab_automove_ratio" => {
                let ratio = c_atof(need("slab_automove_ratio argument")?);
                if ratio <= 0.0 || ratio > 1.0 {
                    return Err(invalid("slab_automove_ratio must be > 0 and < 1"));
                }
                t.slab_automove_ratio = ratio;
            }
            "slab_automove_window" => {
                // An unsigned int in memcached: a negative atoi wraps and passes the check.
                let window = c_atoi(need("slab_automove_window argument")?) as u32;
                if window < 3 {
                    return Err(invalid("slab_automove_window must be > 2"));
                }
                self.slab_automove_window = window;
            }
            "slab_chunk_max" => {
                // memcached goes on after these two messages and then crashes (a NULL
                // dereference, a division by zero); refusing is the useful equivalent.
                let v = need("slab_chunk_max argument")?;
                match proto::token::parse_i32_truncating(v.as_bytes()) {
                    Some(bytes) if bytes > 0 => self.slab_chunk_max = bytes as usize,
                    _ => return Err(invalid("could not parse argument to slab_chunk_max")),
                }
                self.slab_chunk_max_set = true;
            }
            "no_chunked_items" => self.slab_chunk_max = SLAB_PAGE_SIZE,
            "slab_sizes" => self.slab_sizes_text = Some(need("slab_sizes argument")?.to_string()),
            "lru_crawler" => t.lru_crawler = true,
            "no_lru_crawler" => t.lru_crawler = false,
            "lru_crawler_sleep" => {
                let sleep = c_atoi(need("lru_crawler_sleep value")?);
                if !(0..=1_000_000).contains(&sleep) {
                    return Err(invalid("LRU crawler sleep must be between 0 and 1 second"));
                }
                t.lru_crawler_sleep = sleep as u32;
            }
            "lru_crawler_tocrawl" => {
                let v = need("lru_crawler_tocrawl value")?;
                t.lru_crawler_tocrawl = proto::token::parse_u32_truncating(v.as_bytes())
                    .ok_or_else(|| invalid("lru_crawler_tocrawl takes a numeric 32bit value"))?;
            }
            "lru_maintainer" => {
                self.lru_maintainer = true;
                t.lru_segmented = true;
            }
            "no_lru_maintainer" => {
                self.lru_maintainer = false;
                t.lru_segmented = false;
            }
            "hot_lru_pct" | "warm_lru_pct" => {
                let pct = c_atoi(need(&format!("{name} argument"))?);
                if !(1..80).contains(&pct) {
                    return Err(invalid(format!("{name} must be > 1 and < 80")));
                }
                if name == "hot_lru_pct" {
                    t.hot_lru_pct = pct;
                } else {
                    t.warm_lru_pct = pct;
                }
            }
            "hot_max_factor" | "warm_max_factor" => {
                let factor = c_atof(need(&format!("{name} argument"))?);
                // `<= 0` as memcached writes it: NaN passes.
                if factor <= 0.0 {
                    return Err(invalid(format!("{name} must be > 0")));
                }
                if name == "hot_max_factor" {
                    t.hot_max_factor = factor;
                } else {
                    t.warm_max_factor = factor;
                }
            }
            "temporary_ttl" => {
                t.temporary_ttl = c_atoi(need("temporary_ttl argument")?) as u32;
                t.temp_lru = true;
            }
            "modern" => {}
            "no_modern" => {
                if !self.slab_chunk_max_set {
                    self.slab_chunk_max = SLAB_PAGE_SIZE;
                }
                self.slab_reassign = false;
                t.slab_automove = 0;
                t.lru_segmented = false;
                t.lru_crawler = false;
                self.lru_maintainer = false;
            }
            _ => return Ok(false),
        }
        Ok(true)
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
        if self.apply_slab_lru_option(name, value)? || self.apply_tls_option(name, value)? {
            return Ok(());
        }
        match name {
            // memcached's safe_strtoul: a value that does not parse leaves it off.
            "sock_cookie_id" => self.sock_cookie_id = value.and_then(|v| v.parse().ok()).unwrap_or(0),
            "item_size_max" => {
                let v = need(value)?;
                self.item_size_max =
                    parse_size(v).ok_or_else(|| invalid(format!("Invalid item_size_max: {v}")))?;
            }
            "watcher_logbuf_size" | "worker_logbuf_size" => {
                let v = need(value)?;
                let kb: u32 = v
                    .parse()
                    .map_err(|_| invalid(format!("could not parse argument to {name}")))?;
                let bytes = kb as usize * 1024;
                if name == "watcher_logbuf_size" {
                    self.watcher_logbuf_size = bytes;
                } else {
                    self.worker_logbuf_size = bytes;
                }
            }
            "idle_timeout" => {
                let v = need(value)?;
                self.idle_timeout = v
                    .parse()
                    .map_err(|_| invalid(format!("Invalid idle_timeout: {v}")))?;
            }
            "read_buf_mem_limit" => {
                let v = value.ok_or_else(|| invalid("Missing read_buf_mem_limit argument"))?;
                let mb: usize = v
                    .parse()
                    .map_err(|_| invalid("could not parse argument to read_buf_mem_limit"))?;
                self.read_buf_mem_limit = mb.saturating_mul(1 << 20);
            }
            "track_sizes" => self.track_sizes = true,
            "no_flush" | "no_flush_all" => self.flush_enabled = false,
            "no_cas" => self.use_cas = false,
            "no_dump" | "no_lru_crawler_metadump" => self.dump_enabled = false,
            "maxconns_fast"
            | "no_maxconns_fast"
            | "hashpower"
            | "tail_repair_time"
            | "hash_algorithm"
            | "inline_ascii_resp"
            | "no_inline_ascii_resp"
            | "no_hashexpand"
            | "drop_privileges"
            | "no_drop_privileges"
            | "relaxed_privileges"
            | "meta_response_old"
            | "resp_obj_mem_limit"
            | "napi_ids"
            | "proxy_config"
            | "large_memory_pages"
            | "slab_automove_freeratio" => {
                log::info!("-o {opt}: accepted, not applicable to slabcached's engine");
            }
            // memcached's extstore options: a command line written for a memcached with
            // flash storage still starts, every item kept in memory.
            "ext_path" | "ext_page_size" | "ext_wbuf_size" | "ext_threads" | "ext_io_depth"
            | "ext_item_size" | "ext_item_age" | "ext_low_ttl" | "ext_recache_rate" | "ext_compact_under"
            | "ext_drop_under" | "ext_max_sleep" | "ext_max_frag" | "ext_drop_unread" => {
                log::warn!("-o {opt}: slabcached has no external storage; items stay in memory");
            }
            _ => return Err(invalid(format!("Illegal suboption \"{opt}\""))),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
