//! Authentication, as memcached 1.6 offers it: SASL over the binary protocol (`-S`, through
//! the system's Cyrus SASL, [`sasl`]) and the text protocol's authfile (`-Y`, [`authfile`]).
//! What a connection may do before it authenticates, and the replies, live in
//! [`crate::cmd::auth`]; this module holds the shared credentials ([`Auth`]), each
//! connection's state ([`Session`]) and the start-up check that warns when the cache is
//! reachable from the network with neither authentication nor TLS ([`is_private`]).

pub mod authfile;
pub mod sasl;

use std::fmt;
use std::sync::RwLock;

use crate::config::Config;
pub use authfile::{AuthFile, AuthFileError};

/// The credentials every connection checks against.
#[derive(Default)]
pub struct Auth {
    /// `-Y`'s entries; replaced when the file is re-read (SIGHUP).
    authfile: RwLock<AuthFile>,
}

/// Why authentication could not be set up; the server does not start.
#[derive(Debug)]
pub enum AuthError {
    Sasl(String),
    AuthFile(AuthFileError),
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthError::Sasl(msg) => f.write_str(msg),
            AuthError::AuthFile(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for AuthError {}

impl Auth {
    /// Initialise SASL (`-S`) and read the authfile (`-Y`), as `config` asks.
    pub fn load(config: &Config) -> Result<Auth, AuthError> {
        if config.sasl {
            sasl::init().map_err(AuthError::Sasl)?;
        }
        let authfile = match &config.auth_file {
            Some(path) => AuthFile::load(path).map_err(AuthError::AuthFile)?,
            None => AuthFile::default(),
        };
        Ok(Auth {
            authfile: RwLock::new(authfile),
        })
    }

    /// Re-read the authfile (SIGHUP); on error the entries in use are kept.
    pub fn reload(&self, config: &Config) {
        let Some(path) = &config.auth_file else {
            return;
        };
        match AuthFile::load(path) {
            Ok(file) => *self.authfile.write().unwrap_or_else(|e| e.into_inner()) = file,
            Err(e) => log::warn!("{e}; keeping the entries loaded before"),
        }
    }

    /// Whether `user` / `pass` is an authfile entry.
    pub fn check_authfile(&self, user: &[u8], pass: &[u8]) -> bool {
        self.authfile
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .check(user, pass)
    }
}

/// One connection's authentication state.
#[derive(Default)]
pub struct Session {
    /// The connection may run commands (only consulted while `-S` or `-Y` is on).
    pub authenticated: bool,
    /// The connection's SASL context, made at its first SASL command.
    pub(crate) sasl: Option<sasl::SaslConn>,
    /// A `SASL_AUTH` started a mechanism, so `SASL_STEP` may continue it.
    pub(crate) sasl_started: bool,
}

/// Whether traffic to this server is private: clients must authenticate, it is encrypted
/// (`-Z`), or it listens on loopback addresses or a UNIX socket only.
pub fn is_private(config: &Config) -> bool {
    config.sasl
        || config.tls.enabled
        || config.auth_file.is_some()
        || config.unix_socket.is_some()
        || config.port == 0
        || config.listen.iter().all(|addr| addr.ip().is_loopback())
}

/// Say loudly, at the default verbosity, that the cache is open to the network.
pub fn warn_if_public(config: &Config) {
    if is_private(config) {
        return;
    }
    log::warn!(
        "slabcached listens on {} with neither authentication nor TLS: anyone who can reach \
         this address can read and change every item. Restrict it with -l 127.0.0.1, or \
         require clients to authenticate with -S (SASL) or -Y <authfile>, or encrypt with -Z (TLS).",
        config.listen_text
    );
}

#[cfg(test)]
mod tests {
    use super::is_private;
    use crate::config::{Args, Config};
    use clap::Parser;

    fn config(args: &[&str]) -> Config {
        let mut argv = vec!["slabcached"];
        argv.extend_from_slice(args);
        Config::from_args(&Args::try_parse_from(argv).unwrap()).unwrap()
    }

    fn refused(args: &[&str]) -> String {
        let mut argv = vec!["slabcached"];
        argv.extend_from_slice(args);
        let err = Config::from_args(&Args::try_parse_from(argv).unwrap()).unwrap_err();
        assert_eq!(err.exit_code(), 64);
        err.to_string()
    }

    #[test]
    fn auth_picks_its_protocol_and_refuses_the_others() {
        use crate::config::Binding;
        assert_eq!(config(&["-S"]).binding, Binding::Binary);
        assert_eq!(config(&["-S", "-B", "binary"]).binding, Binding::Binary);
        assert_eq!(config(&["-Y", "/f"]).binding, Binding::Ascii);
        assert_eq!(config(&["-B", "auto"]).binding, Binding::Auto);
        for args in [
            &["-S", "-B", "auto"][..],
            &["-S", "-B", "ascii"],
            &["-S", "-B", "binary", "-B", "ascii"],
        ] {
            assert!(
                refused(args).contains("ASCII protocol while using SASL"),
                "{args:?}"
            );
        }
        assert!(refused(&["-S", "-U", "11211"]).contains("UDP"));
        assert!(refused(&["-Y", "/f", "-B", "binary"]).contains("BINARY protocol"));
        assert!(refused(&["-Y", "/f", "-U", "11211"]).contains("UDP"));
        // Both at once: as with memcached, the authfile's text protocol wins.
        assert_eq!(config(&["-S", "-Y", "/f"]).binding, Binding::Ascii);
    }

    #[test]
    fn public_only_without_auth_on_a_network_address() {
        assert!(is_private(&config(&[])));
        assert!(is_private(&config(&["-l", "127.0.0.1,::1"])));
        assert!(!is_private(&config(&["-l", "0.0.0.0"])));
        assert!(!is_private(&config(&["-l", "127.0.0.1", "-l", "0.0.0.0"])));
        assert!(is_private(&config(&["-l", "0.0.0.0", "-S"])));
        assert!(is_private(&config(&["-l", "0.0.0.0", "-s", "/tmp/x.sock"])));
    }
}
