//! TLS for client connections (`-Z`), with rustls and its `ring` crypto provider.
//!
//! [`TlsContext`] is the server's side: the rustls configuration built from memcached's
//! `ssl_*` options (certificates, client-certificate modes, minimum version, ciphers,
//! session cache), swapped whole by `refresh_certs` (connections keep the configuration they
//! were accepted with), and the `ssl_*` counters of `stats`.
//!
//! [`TlsStream`] is one connection: a non-blocking socket under a rustls
//! `ServerConnection`, read and written as plaintext by [`crate::net::conn`], which does not
//! know it is encrypted. Two promises that connection code relies on are kept:
//! - a read returns fewer bytes than asked only when the socket has nothing more to give
//!   (an edge-triggered poll would not wake the connection again otherwise), so plaintext
//!   and ciphertext buffered in here are always handed out before a short read;
//! - ciphertext that the socket did not take stays queued (at most `ssl_wbuf_size` bytes
//!   of it: a write takes no more plaintext while that much waits), and
//!   [`TlsStream::wants_write`] says so, so the worker keeps write interest until it is sent.

use std::fmt;
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use mio::net::TcpStream;
use rustls::crypto::CryptoProvider;
use rustls::server::ProducesTickets;
use rustls::server::{NoServerSessionStorage, ServerSessionMemoryCache, WebPkiClientVerifier};
use rustls::{HandshakeKind, RootCertStore, ServerConfig, ServerConnection, SupportedCipherSuite};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::TlsOptions;

/// Sessions the server-side cache keeps with `ssl_session_cache` (OpenSSL's default size).
const SESSION_CACHE_SIZE: usize = 20 * 1024;
/// Ciphertext read from the socket at once: a whole TLS record and its header fit. A
/// connection starts with [`CIPHER_READ_SMALL`] (small requests fit) and grows to this the
/// first time a read fills its buffer, so idle connections of small requests stay small.
const CIPHER_READ: usize = 17 * 1024;
const CIPHER_READ_SMALL: usize = 4 * 1024;

/// Why the certificates or the TLS settings could not be loaded. The texts are memcached's,
/// for its startup error and the `refresh_certs` reply.
#[derive(Debug)]
pub enum TlsError {
    /// `refresh_certs` on a server without `-Z`.
    NotEnabled,
    ChainCert {
        path: String,
        reason: String,
    },
    Key {
        path: String,
        reason: String,
    },
    /// The key does not go with the certificate, or rustls refused the pair.
    Mismatch(String),
    CaCert {
        path: String,
        reason: String,
    },
    Ciphers(String),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::NotEnabled => f.write_str("Error TLS not enabled"),
            TlsError::ChainCert { path, reason } => {
                write!(f, "Error loading the certificate chain: {path} : {reason}")
            }
            TlsError::Key { path, reason } => write!(f, "Error loading the key: {path} : {reason}"),
            TlsError::Mismatch(reason) => write!(f, "Error validating the certificate: {reason}"),
            TlsError::CaCert { path, reason } => {
                write!(f, "Error loading the CA certificate: {path} : {reason}")
            }
            TlsError::Ciphers(list) => write!(f, "Error setting the provided cipher(s): {list}"),
        }
    }
}

impl std::error::Error for TlsError {}

/// The server's TLS state, shared by the listener (which wraps accepted sockets), the
/// workers (counters) and `refresh_certs`.
pub struct TlsContext {
    options: TlsOptions,
    ticketer: Arc<dyn ProducesTickets>,
    /// The configuration new connections get; replaced by `refresh_certs`.
    config: Mutex<Arc<ServerConfig>>,
    refreshed_at: Mutex<Instant>,
    /// Handshakes that failed (bad client hello, refused client certificate, ...).
    pub handshake_errors: AtomicU64,
    /// TLS errors after the handshake (corrupt records, unexpected messages).
    pub proto_errors: AtomicU64,
    /// Full handshakes (not resumptions) while the session cache is on.
    pub new_sessions: AtomicU64,
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| e.to_string())?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    if certs.is_empty() {
        return Err("no certificate found".into());
    }
    Ok(certs)
}

fn read_key(path: &Path, keyformat: i32) -> Result<PrivateKeyDer<'static>, String> {
    match keyformat {
        // OpenSSL's SSL_FILETYPE_PEM.
        1 => PrivateKeyDer::from_pem_file(path).map_err(|e| e.to_string()),
        // SSL_FILETYPE_ASN1: a DER file.
        2 => {
            let der = std::fs::read(path).map_err(|e| e.to_string())?;
            PrivateKeyDer::try_from(der).map_err(str::to_string)
        }
        other => Err(format!("key format {other} is not supported (1: PEM, 2: DER)")),
    }
}

/// OpenSSL's name for a TLS 1.2 suite rustls has, so `ssl_ciphers` lists work unchanged.
fn openssl_name(suite: SupportedCipherSuite) -> Option<&'static str> {
    use rustls::CipherSuite as C;
    Some(match suite.suite() {
        C::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 => "ECDHE-ECDSA-AES128-GCM-SHA256",
        C::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 => "ECDHE-ECDSA-AES256-GCM-SHA384",
        C::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 => "ECDHE-ECDSA-CHACHA20-POLY1305",
        C::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => "ECDHE-RSA-AES128-GCM-SHA256",
        C::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 => "ECDHE-RSA-AES256-GCM-SHA384",
        C::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 => "ECDHE-RSA-CHACHA20-POLY1305",
        _ => return None,
    })
}

/// The suites an OpenSSL cipher list (`ssl_ciphers`) leaves. As in OpenSSL, the list
/// governs TLS 1.2 only (TLS 1.3 suites stay); names are OpenSSL's or the IANA ones, and the
/// catch-all words (`ALL`, `DEFAULT`, `HIGH`) keep every TLS 1.2 suite. Words naming
/// nothing rustls has are skipped; a list naming nothing at all is refused, as OpenSSL
/// refuses it.
fn select_suites(all: &[SupportedCipherSuite], list: &str) -> Result<Vec<SupportedCipherSuite>, TlsError> {
    let mut keep: Vec<SupportedCipherSuite> = all.iter().copied().filter(|s| s.tls13().is_some()).collect();
    let mut matched = false;
    for word in list
        .split([':', ',', ' '])
        .map(str::trim)
        .filter(|w| !w.is_empty())
    {
        if word.starts_with(['!', '-', '+']) || word.starts_with('@') {
            continue; // exclusions and ordering rules: nothing to add
        }
        let every = matches!(word, "ALL" | "DEFAULT" | "HIGH" | "ECDHE" | "EECDH" | "AESGCM");
        let before = keep.len();
        for suite in all.iter().copied().filter(|s| s.tls13().is_none()) {
            let iana = format!("{:?}", suite.suite());
            if (every || openssl_name(suite) == Some(word) || iana == word)
                && !keep.iter().any(|k| k.suite() == suite.suite())
            {
                keep.push(suite);
            }
        }
        if keep.len() > before || every {
            matched = true;
        } else {
            log::warn!("ssl_ciphers: '{word}' names no cipher suite rustls has; skipped");
        }
    }
    if !matched {
        return Err(TlsError::Ciphers(list.to_string()));
    }
    Ok(keep)
}

/// The `ring` provider: it builds with a C compiler alone (aws-lc needs more), and its
/// suites and key exchanges are those memcached's OpenSSL offers. rustls 0.23.48 marks it
/// deprecated only for lacking post-quantum key exchange, which memcached lacks too.
#[allow(deprecated)]
fn ring_provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// Build the rustls configuration `options` describe, reading the files now. `ticketer`
/// makes session tickets: memcached's OpenSSL issues them whatever `ssl_session_cache`
/// says (that option adds a server-side cache of sessions by id), and one ticketer serves
/// every configuration, so tickets outlive a `refresh_certs`.
fn build_config(options: &TlsOptions, ticketer: &Arc<dyn ProducesTickets>) -> Result<ServerConfig, TlsError> {
    let mut provider = ring_provider();
    if let Some(list) = &options.ciphers {
        provider.cipher_suites = select_suites(&provider.cipher_suites, list)?;
    }
    let provider = Arc::new(provider);
    let chain_path = options.chain_cert.as_deref().ok_or_else(|| TlsError::ChainCert {
        path: "(null)".into(),
        reason: "no ssl_chain_cert given".into(),
    })?;
    let chain = read_certs(chain_path).map_err(|reason| TlsError::ChainCert {
        path: chain_path.display().to_string(),
        reason,
    })?;
    // As in memcached, the key may sit in the chain file.
    let key_path = options.key.as_deref().unwrap_or(chain_path);
    let key = read_key(key_path, options.keyformat).map_err(|reason| TlsError::Key {
        path: key_path.display().to_string(),
        reason,
    })?;
    let versions: &[&rustls::SupportedProtocolVersion] = if options.min_version >= 3 {
        &[&rustls::version::TLS13]
    } else {
        &[&rustls::version::TLS12, &rustls::version::TLS13]
    };
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(versions)
        .map_err(|e| TlsError::Ciphers(format!("{}: {e}", options.ciphers.as_deref().unwrap_or(""))))?;
    let builder = match (&options.ca_cert, options.verify_mode) {
        (_, 0) => builder.with_no_client_auth(),
        (None, mode) => {
            return Err(TlsError::CaCert {
                path: "(null)".into(),
                reason: format!("ssl_verify_mode={mode} needs ssl_ca_cert to verify client certificates"),
            })
        }
        (Some(ca_path), mode) => {
            let ca_error = |reason: String| TlsError::CaCert {
                path: ca_path.display().to_string(),
                reason,
            };
            let mut roots = RootCertStore::empty();
            let (added, _) = roots.add_parsable_certificates(read_certs(ca_path).map_err(ca_error)?);
            if added == 0 {
                return Err(ca_error("no usable CA certificate".into()));
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            // 1 requests a certificate (and checks one that is sent); 2 and 3 require one.
            // rustls never renegotiates, so "once" (3) is 2.
            let verifier = if mode == 1 {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            let verifier = verifier.build().map_err(|e| ca_error(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Mismatch(e.to_string()))?;
    config.ticketer = Arc::clone(ticketer);
    config.session_storage = if options.session_cache {
        ServerSessionMemoryCache::new(SESSION_CACHE_SIZE)
    } else {
        Arc::new(NoServerSessionStorage {})
    };
    Ok(config)
}

impl TlsContext {
    /// Load the certificates and settings `options` name (at startup: a failure stops the
    /// server, as it stops memcached).
    pub fn new(options: &TlsOptions) -> Result<TlsContext, TlsError> {
        if options.min_version < 2 {
            log::warn!(
                "ssl_min_version {}: rustls serves TLS 1.2 and newer only; serving TLS 1.2 and up",
                TlsOptions::version_name(options.min_version)
            );
        }
        if options.keyformat != 1 {
            log::info!("ssl_keyformat {}: key read as DER", options.keyformat);
        }
        let ticketer = rustls::crypto::ring::Ticketer::new()
            .map_err(|e| TlsError::Mismatch(format!("cannot make session tickets: {e}")))?;
        let config = build_config(options, &ticketer)?;
        Ok(TlsContext {
            options: options.clone(),
            ticketer,
            config: Mutex::new(Arc::new(config)),
            refreshed_at: Mutex::new(Instant::now()),
            handshake_errors: AtomicU64::new(0),
            proto_errors: AtomicU64::new(0),
            new_sessions: AtomicU64::new(0),
        })
    }

    /// `refresh_certs`: read the certificate, key and CA files again; new connections get
    /// them, open ones keep theirs. On failure the old ones stay in force.
    pub fn refresh(&self) -> Result<(), TlsError> {
        let config = build_config(&self.options, &self.ticketer)?;
        *self.config.lock().unwrap_or_else(|e| e.into_inner()) = Arc::new(config);
        *self.refreshed_at.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        Ok(())
    }

    /// `stats reset`: memcached zeroes its TLS counters with the others.
    pub fn reset_counters(&self) {
        for counter in [&self.handshake_errors, &self.proto_errors, &self.new_sessions] {
            counter.store(0, Relaxed);
        }
    }

    /// `time_since_server_cert_refresh`, in seconds.
    pub fn seconds_since_refresh(&self) -> u64 {
        self.refreshed_at
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .elapsed()
            .as_secs()
    }

    /// The options the server was started with.
    pub fn options(&self) -> &TlsOptions {
        &self.options
    }

    /// Wrap an accepted socket: the handshake happens as the connection is read.
    pub fn accept(self: &Arc<Self>, sock: TcpStream) -> io::Result<TlsStream> {
        let config = Arc::clone(&self.config.lock().unwrap_or_else(|e| e.into_inner()));
        let mut tls = ServerConnection::new(config).map_err(io::Error::other)?;
        tls.set_buffer_limit(Some(self.options.wbuf_size.max(1024) as usize));
        Ok(TlsStream {
            tls,
            sock,
            ctx: Arc::clone(self),
            cipher: Vec::new(),
            cipher_pos: 0,
            cipher_end: 0,
            socket_empty: false,
            eof: false,
            handshake_counted: false,
        })
    }
}

/// One TLS connection (see the module docs for the promises it keeps).
pub struct TlsStream {
    tls: ServerConnection,
    sock: TcpStream,
    ctx: Arc<TlsContext>,
    /// Ciphertext read from the socket, `cipher_pos..cipher_end` not yet given to rustls.
    cipher: Vec<u8>,
    cipher_pos: usize,
    cipher_end: usize,
    /// The last socket read returned less than asked: the socket was empty then.
    socket_empty: bool,
    /// The peer closed its side.
    eof: bool,
    handshake_counted: bool,
}

impl TlsStream {
    /// The socket, for registering with the poller.
    pub fn socket(&mut self) -> &mut TcpStream {
        &mut self.sock
    }

    /// The socket, for its file descriptor.
    pub fn socket_ref(&self) -> &TcpStream {
        &self.sock
    }

    /// Ciphertext (a reply, a handshake message, an alert) waits for the socket.
    pub fn wants_write(&self) -> bool {
        self.tls.wants_write()
    }

    /// Send queued ciphertext until the socket is full (not an error: the rest waits for
    /// the next writable event).
    fn push(&mut self) -> io::Result<()> {
        while self.tls.wants_write() {
            match self.tls.write_tls(&mut self.sock) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Give rustls the buffered ciphertext, or read more from the socket. Ok(false): the
    /// socket has nothing now.
    fn pull(&mut self) -> io::Result<bool> {
        if self.cipher_pos == self.cipher_end {
            if self.eof || self.socket_empty {
                return Ok(false);
            }
            if self.cipher.is_empty() {
                self.cipher.resize(CIPHER_READ_SMALL, 0);
            }
            let n = loop {
                match self.sock.read(&mut self.cipher) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        self.socket_empty = true;
                        return Ok(false);
                    }
                    Err(e) => return Err(e),
                }
            };
            if n == 0 {
                self.eof = true;
                // Tell rustls, so a close without close_notify reads as such.
                let _ = self.tls.read_tls(&mut io::empty());
                return Ok(true);
            }
            self.socket_empty = n < self.cipher.len();
            self.cipher_pos = 0;
            self.cipher_end = n;
            if !self.socket_empty && self.cipher.len() < CIPHER_READ {
                self.cipher.resize(CIPHER_READ, 0); // bursts: read whole records at once
            }
        }
        let mut input = &self.cipher[self.cipher_pos..self.cipher_end];
        let taken = self.tls.read_tls(&mut input)?;
        self.cipher_pos += taken;
        let handshaking = self.tls.is_handshaking();
        if let Err(e) = self.tls.process_new_packets() {
            let counter = if handshaking {
                &self.ctx.handshake_errors
            } else {
                &self.ctx.proto_errors
            };
            counter.fetch_add(1, Relaxed);
            log::debug!("TLS connection failed: {e}");
            let _ = self.push(); // the alert saying why
            return Err(io::Error::new(io::ErrorKind::InvalidData, e));
        }
        if !self.handshake_counted && !self.tls.is_handshaking() {
            self.handshake_counted = true;
            if self.ctx.options.session_cache && self.tls.handshake_kind() != Some(HandshakeKind::Resumed) {
                self.ctx.new_sessions.fetch_add(1, Relaxed);
            }
        }
        self.push()?;
        Ok(true)
    }
}

impl Read for TlsStream {
    /// Plaintext, as much as fits: short only once the socket is found empty (see the
    /// module docs). Ok(0): the peer closed.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut n = 0;
        // Called again after a readiness event or a full read: the socket may have more.
        self.socket_empty = false;
        loop {
            match self.tls.reader().read(&mut buf[n..]) {
                Ok(0) if n < buf.len() => return Ok(n), // close_notify, after what came before
                Ok(k) => {
                    n += k;
                    if n == buf.len() {
                        return Ok(n);
                    }
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // Closed without close_notify: an end of stream all the same.
                Err(_) if self.eof => return Ok(n),
                Err(e) => return Err(e),
            }
            if !self.pull()? {
                return if n > 0 {
                    Ok(n)
                } else {
                    Err(io::ErrorKind::WouldBlock.into())
                };
            }
        }
    }
}

impl Write for TlsStream {
    /// Encrypt what fits under `ssl_wbuf_size` of queued ciphertext and send it; WouldBlock
    /// while the socket has not taken what is queued.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.push()?;
        if self.tls.wants_write() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = self.tls.writer().write(buf)?;
        self.push()?;
        if n == 0 && !buf.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.push()
    }
}

impl Drop for TlsStream {
    /// Say goodbye properly when the socket will take it now (never waits).
    fn drop(&mut self) {
        if !self.tls.is_handshaking() && !self.eof {
            self.tls.send_close_notify();
            let _ = self.push();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cipher_lists_take_openssl_and_iana_names() {
        let all = ring_provider().cipher_suites;
        let tls13 = all.iter().filter(|s| s.tls13().is_some()).count();
        let one = select_suites(&all, "ECDHE-RSA-AES128-GCM-SHA256").unwrap();
        assert_eq!(one.len(), tls13 + 1);
        let two = select_suites(
            &all,
            "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384:ECDHE-RSA-AES128-GCM-SHA256:!aNULL",
        )
        .unwrap();
        assert_eq!(two.len(), tls13 + 2);
        assert_eq!(select_suites(&all, "HIGH").unwrap().len(), all.len());
        assert!(select_suites(&all, "NOSUCHCIPHER").is_err());
    }

    #[test]
    fn missing_files_say_which_and_why() {
        let options = TlsOptions {
            enabled: true,
            chain_cert: Some("/nonexistent/chain.pem".into()),
            ..TlsOptions::default()
        };
        let e = TlsContext::new(&options).err().unwrap().to_string();
        assert!(
            e.starts_with("Error loading the certificate chain: /nonexistent/chain.pem : "),
            "{e}"
        );
        assert_eq!(TlsError::NotEnabled.to_string(), "Error TLS not enabled");
    }
}
