//! `-Z` and the `-o ssl_*` options: memcached's names, defaults, parsing and checks. The
//! rustls side is [`crate::net::tls`].

use std::path::PathBuf;

use super::{invalid, usage, Config, ConfigError};

/// What `-Z` and `-o ssl_*` asked for, as memcached names and shows them (`stats settings`);
/// [`crate::net::tls`] turns it into a rustls server configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsOptions {
    pub enabled: bool,
    pub chain_cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub ca_cert: Option<PathBuf>,
    /// memcached's 0 (none), 1 (request), 2 (require), 3 (require, once).
    pub verify_mode: u8,
    /// OpenSSL's file types: 1 PEM, 2 DER (ASN.1).
    pub keyformat: i32,
    pub ciphers: Option<String>,
    /// Bytes of ciphertext a connection may queue (`ssl_wbuf_size` is given in kilobytes).
    pub wbuf_size: u32,
    pub session_cache: bool,
    /// Asked for with `ssl_kernel_tls`; rustls has no kernel offload, so it stays off.
    pub kernel_tls_requested: bool,
    /// memcached's 0..3 (TLS 1.0, 1.1, 1.2, 1.3); rustls serves 1.2 and 1.3 only.
    pub min_version: u8,
}

impl Default for TlsOptions {
    /// memcached 1.6.18's defaults.
    fn default() -> Self {
        TlsOptions {
            enabled: false,
            chain_cert: None,
            key: None,
            ca_cert: None,
            verify_mode: 0,
            keyformat: 1,
            ciphers: None,
            wbuf_size: 16 * 1024,
            session_cache: false,
            kernel_tls_requested: false,
            min_version: 2,
        }
    }
}

impl TlsOptions {
    /// The version memcached's `stats settings` names for a `ssl_min_version` value.
    pub fn version_name(version: u8) -> &'static str {
        match version {
            0 => "tlsv1.0",
            1 => "tlsv1.1",
            2 => "tlsv1.2",
            3 => "tlsv1.3",
            _ => "unknown",
        }
    }

    /// The lowest version actually served: rustls knows nothing older than TLS 1.2.
    pub fn effective_min_version(&self) -> u8 {
        self.min_version.max(2)
    }

    /// The value OpenSSL's verify flags have for a mode, which memcached shows.
    pub fn verify_flags(&self) -> u8 {
        match self.verify_mode {
            0 => 0,
            1 => 1,
            2 => 3,
            _ => 7,
        }
    }
}

impl Config {
    /// memcached's TLS checks once every flag is read.
    pub(super) fn check_tls(&self) -> Result<(), ConfigError> {
        if !self.tls.enabled {
            return Ok(());
        }
        if self.port == 0 || self.unix_socket.is_some() {
            return Err(usage("ERROR: You cannot enable SSL without a TCP port."));
        }
        if self.tls.chain_cert.is_none() {
            return Err(usage(
                "Error loading the certificate chain: (null) : ssl_chain_cert is required with -Z",
            ));
        }
        Ok(())
    }

    /// The `ssl_*` options, memcached's names, parsing and messages. `Ok(false)`: not one
    /// of them.
    pub(super) fn apply_tls_option(&mut self, name: &str, value: Option<&str>) -> Result<bool, ConfigError> {
        let need = |what: &str| value.ok_or_else(|| invalid(format!("Missing {what} argument")));
        let tls = &mut self.tls;
        match name {
            "ssl_chain_cert" => tls.chain_cert = Some(need(name)?.into()),
            "ssl_key" => tls.key = Some(need(name)?.into()),
            "ssl_ca_cert" => tls.ca_cert = Some(need(name)?.into()),
            "ssl_ciphers" => tls.ciphers = Some(need(name)?.to_string()),
            "ssl_verify_mode" => {
                let v = need(name)?;
                let mode: i64 = v
                    .trim()
                    .parse()
                    .map_err(|_| invalid("could not parse argument to ssl_verify_mode"))?;
                if !(0..=3).contains(&mode) {
                    return Err(invalid("Invalid ssl_verify_mode. Use help to see valid options."));
                }
                tls.verify_mode = mode as u8;
            }
            "ssl_keyformat" => {
                let v = need(name)?;
                tls.keyformat = v
                    .trim()
                    .parse()
                    .map_err(|_| invalid("could not parse argument to ssl_keyformat"))?;
            }
            "ssl_wbuf_size" => {
                let v = need(name)?;
                let kb: u32 = v
                    .trim()
                    .parse()
                    .map_err(|_| invalid("could not parse argument to ssl_wbuf_size"))?;
                tls.wbuf_size = kb.wrapping_mul(1024);
            }
            "ssl_session_cache" => tls.session_cache = true,
            "ssl_kernel_tls" => {
                log::warn!("-o ssl_kernel_tls: rustls has no kernel TLS offload; TLS stays in user space");
                tls.kernel_tls_requested = true;
            }
            "ssl_min_version" => {
                let v = need(name)?.trim();
                // memcached takes 0..3; its own names are taken too.
                let version = match v {
                    "0" | "tlsv1" | "tlsv1.0" => 0,
                    "1" | "tlsv1.1" => 1,
                    "2" | "tlsv1.2" => 2,
                    "3" | "tlsv1.3" => 3,
                    _ if v.parse::<i64>().is_ok() => {
                        return Err(invalid("Invalid ssl_min_version. Use help to see valid options."))
                    }
                    _ => return Err(invalid("could not parse argument to ssl_min_version")),
                };
                if version < 2 {
                    log::warn!(
                        "-o ssl_min_version={v}: rustls serves TLS 1.2 and newer only; the minimum is TLS 1.2"
                    );
                }
                tls.min_version = version;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}
