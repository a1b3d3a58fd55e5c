//! ElastiCache auto-discovery: the cluster's node list and its version, as answered to
//! `config get cluster` (and the legacy `get AmazonElastiCache:cluster`).
//!
//! The body is `<version>\n<host>|<ip>|<port>[ <host>|<ip>|<port>...]\n`: nodes sorted by
//! hostname (then port), the ip a dotted IPv4 address, the version 1 or more. Clients apply a
//! list only when its version is strictly higher than the one they hold, so the version here
//! never goes down and every change of the list raises it.
//!
//! Where the list comes from, in order of precedence:
//! - `--cluster-config PATH`: a file with one `host|ip|port` or `host:port` per line, `#`
//!   comments, blank lines, and at most one `version N` line. SIGHUP re-reads it; an invalid
//!   file is refused with a logged error and the old list stays.
//! - `--cluster-node NODE`, repeated: a fixed list.
//! - Neither: this node alone.
//!
//! With `--enable-config-set`, clients may replace the list with `config set cluster` and
//! revert to the configured one with `config delete cluster`; other keys are kept verbatim in
//! this module's own small keyspace, apart from the cache (see `docs/cluster.md`).
//!
//! Reads happen on every `config get`, writes on SIGHUP or `config set`: readers clone an
//! `Arc` of a prebuilt snapshot under a read lock held for a few instructions; writers build the
//! next snapshot aside, serialised by their own mutex, and swap it in.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use crate::config::Config;

/// The `config get` key of the node list.
pub const CLUSTER_KEY: &[u8] = b"cluster";

/// Highest version served: the AWS Java client parses the version as a signed 64-bit `long`.
pub const MAX_VERSION: u64 = i64::MAX as u64;

/// Other `config set` keys: how many may exist at once, and how large each value may be.
/// They are not cache items and never expire, so they are bounded here.
pub const MAX_OTHER_KEYS: usize = 64;
pub const MAX_OTHER_VALUE: usize = 64 * 1024;

/// Longest hostname accepted (a DNS name is at most 253 characters).
const MAX_HOST_LEN: usize = 253;

/// One node as listed to clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub host: String,
    pub ip: Ipv4Addr,
    pub port: u16,
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}|{}|{}", self.host, self.ip, self.port)
    }
}

/// The node list and its version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    pub version: u64,
    pub nodes: Vec<Node>,
}

impl ClusterConfig {
    /// The `config get cluster` body: `<version>\n<node> <node>...\n`.
    pub fn body(&self) -> Vec<u8> {
        format!("{}\n{}\n", self.version, join_nodes(&self.nodes)).into_bytes()
    }
}

fn join_nodes(nodes: &[Node]) -> String {
    nodes.iter().map(Node::to_string).collect::<Vec<_>>().join(" ")
}

/// Why one node entry was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeError {
    /// Neither `host|ip|port` nor `host:port`.
    Syntax,
    /// The host is empty, too long, or has characters no hostname or IPv4 literal has.
    Host,
    /// The ip field is not a dotted IPv4 address.
    Ip,
    /// The port is not a number from 1 to 65535.
    Port,
    /// The entry needs a name lookup, which is not done here (`config set`).
    IpRequired,
    /// The host has no IPv4 address.
    Resolve(String),
}

impl fmt::Display for NodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NodeError::Syntax => f.write_str("expected host|ip|port or host:port"),
            NodeError::Host => f.write_str("bad hostname"),
            NodeError::Ip => f.write_str("the ip field is not a dotted IPv4 address"),
            NodeError::Port => f.write_str("the port is not a number from 1 to 65535"),
            NodeError::IpRequired => f.write_str("give the ip (host|ip|port or an IPv4 host)"),
            NodeError::Resolve(detail) => write!(f, "cannot resolve the host to an IPv4 address: {detail}"),
        }
    }
}

/// Why a node list (file, `--cluster-node`, SIGHUP re-read) was refused.
#[derive(Debug)]
pub enum ClusterError {
    /// The cluster file could not be read.
    Read { path: PathBuf, error: io::Error },
    /// One entry is invalid; `origin` is `file:line` or `--cluster-node`.
    Entry {
        origin: String,
        entry: String,
        error: NodeError,
    },
    /// A `version` line whose value is not a number from 1 to [`MAX_VERSION`].
    BadVersion { origin: String, text: String },
    /// More than one `version` line.
    VersionTwice { origin: String },
    /// Two entries name the same host and port, or the same ip and port.
    Duplicate { first: Node, second: Node },
    /// No node at all.
    Empty { origin: String },
    /// Both `--cluster-config` and `--cluster-node` were given.
    BothSources,
    /// The file's list changed but its `version` line is not above the version served.
    VersionNotRaised { file: u64, current: u64 },
    /// The version cannot grow any further.
    VersionExhausted,
}

impl fmt::Display for ClusterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClusterError::Read { path, error } => {
                write!(f, "cannot read cluster file {}: {error}", path.display())
            }
            ClusterError::Entry { origin, entry, error } => {
                write!(f, "{origin}: invalid cluster node {entry:?}: {error}")
            }
            ClusterError::BadVersion { origin, text } => {
                write!(
                    f,
                    "{origin}: invalid version {text:?}: expected a number from 1 to {MAX_VERSION}"
                )
            }
            ClusterError::VersionTwice { origin } => write!(f, "{origin}: a second version line"),
            ClusterError::Duplicate { first, second } => {
                write!(f, "cluster nodes {first} and {second} are the same server")
            }
            ClusterError::Empty { origin } => write!(f, "{origin}: no cluster node listed"),
            ClusterError::BothSources => {
                f.write_str("give either --cluster-config or --cluster-node, not both")
            }
            ClusterError::VersionNotRaised { file, current } => write!(
                f,
                "the node list changed but the file's version {file} is not above the current version \
                 {current}; raise the version line"
            ),
            ClusterError::VersionExhausted => {
                write!(f, "the cluster config version cannot grow past {MAX_VERSION}")
            }
        }
    }
}

impl std::error::Error for ClusterError {}

/// Why `config set` / `config delete` did nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigChangeError {
    /// The server was not started with config changes enabled.
    Disabled,
    /// config delete of a key that is not set.
    NotFound,
    /// The value is not a valid node list (or, for another key, exceeds the limits).
    Invalid,
}

/// A parsed node list, before it gets a version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeList {
    /// The file's `version N` line, if any.
    pub version: Option<u64>,
    /// Sorted, without duplicates, never empty.
    pub nodes: Vec<Node>,
}

/// Parse one node entry. `host:port` (or `host||port`) with a host that is not an IPv4 literal
/// is resolved only when `resolve` is true: a lookup may block, which a worker must not do.
pub fn parse_node(entry: &str, resolve: bool) -> Result<Node, NodeError> {
    let (host, ip, port) = if entry.contains('|') {
        let mut parts = entry.split('|');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(host), Some(ip), Some(port), None) => (host, Some(ip), port),
            _ => return Err(NodeError::Syntax),
        }
    } else if let Some((host, port)) = entry.rsplit_once(':') {
        (host, None, port)
    } else {
        return Err(NodeError::Syntax);
    };
    check_host(host)?;
    let port = parse_port(port)?;
    let ip = match ip {
        Some("") | None => match host.parse::<Ipv4Addr>() {
            Ok(ip) => ip,
            Err(_) if resolve => resolve_ipv4(host, port)?,
            Err(_) => return Err(NodeError::IpRequired),
        },
        Some(ip) => ip.parse::<Ipv4Addr>().map_err(|_| NodeError::Ip)?,
    };
    Ok(Node {
        host: host.to_string(),
        ip,
        port,
    })
}

/// Hostnames and IPv4 literals only: letters, digits, `-`, `.`, `_`. This keeps `|`, `:`,
/// spaces and control characters, which would break the reply's format, out.
fn check_host(host: &str) -> Result<(), NodeError> {
    let ok = !host.is_empty()
        && host.len() <= MAX_HOST_LEN
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
    if ok {
        Ok(())
    } else {
        Err(NodeError::Host)
    }
}

fn parse_port(text: &str) -> Result<u16, NodeError> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(NodeError::Port);
    }
    match text.parse::<u16>() {
        Ok(port) if port > 0 => Ok(port),
        _ => Err(NodeError::Port),
    }
}

fn resolve_ipv4(host: &str, port: u16) -> Result<Ipv4Addr, NodeError> {
    let addrs = (host, port)
        .to_socket_addrs()
        .map_err(|e| NodeError::Resolve(e.to_string()))?;
    addrs
        .into_iter()
        .find_map(|a| match a.ip() {
            IpAddr::V4(ip) => Some(ip),
            IpAddr::V6(_) => None,
        })
        .ok_or_else(|| NodeError::Resolve("no IPv4 address".to_string()))
}

fn parse_version(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<u64>().ok().filter(|v| (1..=MAX_VERSION).contains(v))
}

/// Sort by hostname (then port, then ip, so that the order is total) and refuse duplicates:
/// the same host and port twice, or the same ip and port twice, is one server listed twice, and
/// would get twice its share of keys.
fn finish_list(mut nodes: Vec<Node>, origin: &str) -> Result<Vec<Node>, ClusterError> {
    if nodes.is_empty() {
        return Err(ClusterError::Empty {
            origin: origin.to_string(),
        });
    }
    nodes.sort_by(|a, b| (&a.host, a.port, a.ip).cmp(&(&b.host, b.port, b.ip)));
    for (i, a) in nodes.iter().enumerate() {
        if let Some(b) = nodes[i + 1..]
            .iter()
            .find(|b| (a.host == b.host || a.ip == b.ip) && a.port == b.port)
        {
            return Err(ClusterError::Duplicate {
                first: a.clone(),
                second: b.clone(),
            });
        }
    }
    Ok(nodes)
}

/// Parse the text of a cluster file; `origin` (the path) prefixes error messages.
///
/// One entry per line; `#` starts a comment; blank lines are skipped; `version N` (once) pins
/// the version, so that nodes sharing the file agree on it whenever they were started.
pub fn parse_file_text(text: &str, origin: &str) -> Result<NodeList, ClusterError> {
    let mut version = None;
    let mut nodes = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let at = || format!("{origin}:{}", index + 1);
        let mut words = line.split_whitespace();
        let first = words.next().unwrap_or("");
        if first == "version" {
            let text: Vec<&str> = words.collect();
            let value = match text.as_slice() {
                [one] => parse_version(one),
                _ => None,
            };
            let Some(value) = value else {
                return Err(ClusterError::BadVersion {
                    origin: at(),
                    text: text.join(" "),
                });
            };
            if version.replace(value).is_some() {
                return Err(ClusterError::VersionTwice { origin: at() });
            }
            continue;
        }
        let node = if words.next().is_some() {
            Err(NodeError::Syntax)
        } else {
            parse_node(first, true)
        };
        nodes.push(node.map_err(|error| ClusterError::Entry {
            origin: at(),
            entry: line.to_string(),
            error,
        })?);
    }
    Ok(NodeList {
        version,
        nodes: finish_list(nodes, origin)?,
    })
}

/// Read and parse a cluster file.
pub fn read_file(path: &Path) -> Result<NodeList, ClusterError> {
    let text = std::fs::read_to_string(path).map_err(|error| ClusterError::Read {
        path: path.to_path_buf(),
        error,
    })?;
    parse_file_text(&text, &path.display().to_string())
}

/// Parse a `config set cluster` body: the `config get cluster` format, `<version>\n<node>
/// <node>...\n`, the final newline optional and CRLF accepted. Nodes must carry their ip (or be
/// IPv4 literals): no name is looked up on a worker thread.
pub fn parse_body(value: &[u8]) -> Option<ClusterConfig> {
    let text = std::str::from_utf8(value).ok()?;
    let text = text.strip_suffix('\n').unwrap_or(text);
    let text = text.strip_suffix('\r').unwrap_or(text);
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let (Some(version), Some(nodes), None) = (lines.next(), lines.next(), lines.next()) else {
        return None;
    };
    let version = parse_version(version)?;
    let nodes = nodes
        .split(' ')
        .filter(|e| !e.is_empty())
        .map(|e| parse_node(e, false))
        .collect::<Result<Vec<_>, _>>()
        .ok()?;
    let nodes = finish_list(nodes, "config set cluster").ok()?;
    Some(ClusterConfig { version, nodes })
}

/// What a SIGHUP did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadOutcome {
    /// The list does not come from a file: nothing to re-read.
    NoFile,
    /// The file lists what is served already.
    Unchanged { version: u64 },
    /// The new list (or version) is served.
    Updated { from: u64, to: u64 },
}

/// Keys other than `cluster`: key -> (flags, value).
type OtherKeys = BTreeMap<Vec<u8>, (u32, Vec<u8>)>;

/// A published config with its reply body prebuilt.
struct Snapshot {
    config: ClusterConfig,
    body: Vec<u8>,
}

impl Snapshot {
    fn new(config: ClusterConfig) -> Arc<Snapshot> {
        let body = config.body();
        Arc::new(Snapshot { config, body })
    }
}

/// What changes the list keeps besides the list itself.
struct ChangeState {
    /// The list from the configured source (the file at its last good read, `--cluster-node`,
    /// or this node), which `config delete cluster` reverts to.
    configured: Vec<Node>,
    /// The served list came from `config set cluster`.
    overridden: bool,
}

/// The live cluster config, shared by all workers.
pub struct Cluster {
    /// The cluster file, when the list comes from one.
    file: Option<PathBuf>,
    config_set_enabled: bool,
    current: RwLock<Arc<Snapshot>>,
    /// Held by every change for its whole read-modify-publish.
    changes: Mutex<ChangeState>,
    /// Keys other than `cluster` set with `config set`: (flags, value).
    others: RwLock<OtherKeys>,
}

impl Cluster {
    /// The cluster described by the command line (`--cluster-config`, `--cluster-node`);
    /// by default this node alone, reachable at `port`.
    pub fn from_config(config: &Config, port: u16) -> Result<Cluster, ClusterError> {
        let (file, list) = match (&config.cluster_config, config.cluster_nodes.as_slice()) {
            (Some(_), [_, ..]) => return Err(ClusterError::BothSources),
            (Some(path), []) => (Some(path.clone()), read_file(path)?),
            (None, []) => (None, Self::this_node(config, port)),
            (None, entries) => {
                let nodes = entries
                    .iter()
                    .map(|entry| {
                        parse_node(entry.trim(), true).map_err(|error| ClusterError::Entry {
                            origin: "--cluster-node".to_string(),
                            entry: entry.clone(),
                            error,
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let nodes = finish_list(nodes, "--cluster-node")?;
                (None, NodeList { version: None, nodes })
            }
        };
        let cluster = Cluster::new(file, list, config.enable_config_set);
        let served = cluster.config();
        log::info!(
            "cluster config version {}: {}",
            served.version,
            join_nodes(&served.nodes)
        );
        Ok(cluster)
    }

    /// This node alone: its first specific IPv4 listen address, else 127.0.0.1 (listed as
    /// `localhost`). Behind `-l 0.0.0.0` the address clients should use is unknown here:
    /// `--cluster-node` says it.
    fn this_node(config: &Config, port: u16) -> NodeList {
        let ip = config
            .listen
            .iter()
            .find_map(|a| match a.ip() {
                IpAddr::V4(ip) if !ip.is_unspecified() => Some(ip),
                _ => None,
            })
            .unwrap_or(Ipv4Addr::LOCALHOST);
        let host = if ip == Ipv4Addr::LOCALHOST {
            "localhost".to_string()
        } else {
            ip.to_string()
        };
        NodeList {
            version: None,
            nodes: vec![Node { host, ip, port }],
        }
    }

    /// A cluster serving `list` (at its version, else 1); `file` is re-read on SIGHUP.
    pub fn new(file: Option<PathBuf>, list: NodeList, config_set_enabled: bool) -> Cluster {
        let config = ClusterConfig {
            version: list.version.unwrap_or(1),
            nodes: list.nodes.clone(),
        };
        Cluster {
            file,
            config_set_enabled,
            current: RwLock::new(Snapshot::new(config)),
            changes: Mutex::new(ChangeState {
                configured: list.nodes,
                overridden: false,
            }),
            others: RwLock::new(BTreeMap::new()),
        }
    }

    /// This node alone, at version 1.
    pub fn single(host: &str, ip: Ipv4Addr, port: u16) -> Cluster {
        let node = Node {
            host: host.to_string(),
            ip,
            port,
        };
        Cluster::new(
            None,
            NodeList {
                version: None,
                nodes: vec![node],
            },
            false,
        )
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner()))
    }

    fn publish(&self, config: ClusterConfig) {
        let next = Snapshot::new(config);
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = next;
    }

    fn lock_changes(&self) -> MutexGuard<'_, ChangeState> {
        self.changes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The served node list and version.
    pub fn config(&self) -> ClusterConfig {
        self.snapshot().config.clone()
    }

    /// The served version.
    pub fn version(&self) -> u64 {
        self.snapshot().config.version
    }

    /// The `config get cluster` body.
    pub fn body(&self) -> Vec<u8> {
        self.snapshot().body.clone()
    }

    /// `config get <key>`: the value and flags for a known key.
    pub fn config_get(&self, key: &[u8]) -> Option<(u32, Vec<u8>)> {
        if key == CLUSTER_KEY {
            return Some((0, self.body()));
        }
        let others = self.others.read().unwrap_or_else(|e| e.into_inner());
        others.get(key).cloned()
    }

    /// `config set <key> <flags> <bytes>`, when enabled. For `cluster`: flags 0 and a body in
    /// the `config get cluster` format whose version is above the served one (re-sending the
    /// served body is accepted and changes nothing). Other keys are stored verbatim, within
    /// [`MAX_OTHER_KEYS`] and [`MAX_OTHER_VALUE`].
    pub fn config_set(&self, key: &[u8], flags: u32, value: &[u8]) -> Result<(), ConfigChangeError> {
        if !self.config_set_enabled {
            return Err(ConfigChangeError::Disabled);
        }
        if key != CLUSTER_KEY {
            if value.len() > MAX_OTHER_VALUE {
                return Err(ConfigChangeError::Invalid);
            }
            let mut others = self.others.write().unwrap_or_else(|e| e.into_inner());
            if !others.contains_key(key) && others.len() >= MAX_OTHER_KEYS {
                return Err(ConfigChangeError::Invalid);
            }
            others.insert(key.to_vec(), (flags, value.to_vec()));
            return Ok(());
        }
        if flags != 0 {
            return Err(ConfigChangeError::Invalid);
        }
        let next = parse_body(value).ok_or(ConfigChangeError::Invalid)?;
        let mut changes = self.lock_changes();
        let current = self.snapshot();
        if next == current.config {
            return Ok(());
        }
        if next.version <= current.config.version {
            return Err(ConfigChangeError::Invalid);
        }
        log::info!(
            "config set cluster: version {} -> {}: {}",
            current.config.version,
            next.version,
            join_nodes(&next.nodes)
        );
        self.publish(next);
        changes.overridden = true;
        Ok(())
    }

    /// `config delete <key>`, when enabled. For `cluster`: drop the list a `config set` put
    /// in place and serve the configured one again, at a higher version; `NotFound` when no
    /// `config set` list is in place.
    pub fn config_delete(&self, key: &[u8]) -> Result<(), ConfigChangeError> {
        if !self.config_set_enabled {
            return Err(ConfigChangeError::Disabled);
        }
        if key != CLUSTER_KEY {
            let mut others = self.others.write().unwrap_or_else(|e| e.into_inner());
            return others.remove(key).map(|_| ()).ok_or(ConfigChangeError::NotFound);
        }
        let mut changes = self.lock_changes();
        if !changes.overridden {
            return Err(ConfigChangeError::NotFound);
        }
        let current = self.snapshot();
        if current.config.nodes != changes.configured {
            // Only the version limit can stop a revert; then the set list simply stays.
            let version = next_version(current.config.version).map_err(|_| ConfigChangeError::Invalid)?;
            log::info!(
                "config delete cluster: back to the configured list at version {version}: {}",
                join_nodes(&changes.configured)
            );
            self.publish(ClusterConfig {
                version,
                nodes: changes.configured.clone(),
            });
        }
        changes.overridden = false;
        Ok(())
    }

    /// SIGHUP: re-read the cluster file, if there is one, and log what happened. An invalid
    /// file leaves the served list as it was.
    pub fn reload(&self) {
        match self.try_reload() {
            Ok(ReloadOutcome::NoFile) => log::info!("SIGHUP: no cluster file to re-read"),
            Ok(ReloadOutcome::Unchanged { version }) => {
                log::info!("SIGHUP: cluster file unchanged, still version {version}")
            }
            Ok(ReloadOutcome::Updated { from, to }) => {
                log::info!(
                    "SIGHUP: cluster config version {from} -> {to}: {}",
                    join_nodes(&self.config().nodes)
                )
            }
            Err(e) => log::error!("SIGHUP: cluster file refused, keeping the current list: {e}"),
        }
    }

    /// Re-read the cluster file. A changed list is served at the file's `version` line, which
    /// must then be above the served version, or else at the served version plus one. The
    /// file's list replaces one put in place by `config set`.
    pub fn try_reload(&self) -> Result<ReloadOutcome, ClusterError> {
        let Some(path) = &self.file else {
            return Ok(ReloadOutcome::NoFile);
        };
        let mut changes = self.lock_changes();
        let list = read_file(path)?;
        let current = self.snapshot();
        let from = current.config.version;
        let same = list.nodes == current.config.nodes;
        let to = match list.version {
            // A version line above the served one is taken even for the same list, so that
            // nodes started at different times converge on the file's version.
            Some(v) if v > from => Some(v),
            Some(_) if same => None,
            Some(file) => return Err(ClusterError::VersionNotRaised { file, current: from }),
            None if same => None,
            None => Some(next_version(from)?),
        };
        changes.configured = list.nodes.clone();
        changes.overridden = false;
        match to {
            None => Ok(ReloadOutcome::Unchanged { version: from }),
            Some(to) => {
                self.publish(ClusterConfig {
                    version: to,
                    nodes: list.nodes,
                });
                Ok(ReloadOutcome::Updated { from, to })
            }
        }
    }
}

fn next_version(version: u64) -> Result<u64, ClusterError> {
    version
        .checked_add(1)
        .filter(|v| *v <= MAX_VERSION)
        .ok_or(ClusterError::VersionExhausted)
}

#[cfg(test)]
mod tests;
