//! `--tls`: connections speak TLS through rustls (the `ring` provider, as the server uses).
//!
//! [`Link`] is a connection's socket, plain or TLS, read and written as plaintext by the
//! worker. The TLS side keeps the rule the worker's reads rely on under edge-triggered
//! polling: a read returns fewer bytes than asked only once the socket was found empty, so
//! nothing decrypted or buffered is left behind waiting for an edge that will not come.
//! The server's certificate is not checked: this is a loopback benchmark of the server's
//! cost, and verification would only add client work.

use mio::net::TcpStream;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme};
use std::io::{self, Read, Write};
use std::sync::Arc;

/// Ciphertext read from the socket at once: a whole TLS record fits.
const CIPHER_READ: usize = 17 * 1024;

/// rustls 0.23.48 deprecates this only for lacking post-quantum key exchange.
#[allow(deprecated)]
fn provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// Accepts any server certificate (see the module docs).
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The client configuration every TLS connection shares.
pub fn client_config() -> io::Result<Arc<ClientConfig>> {
    let provider = Arc::new(provider());
    let config = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A connection's socket.
pub enum Link {
    Plain(TcpStream),
    Tls(Box<TlsLink>),
}

impl Link {
    /// `sock` as is, or under TLS when `tls` has a configuration (the handshake starts with
    /// the first flush).
    pub fn new(sock: TcpStream, tls: Option<&Arc<ClientConfig>>) -> io::Result<Link> {
        let Some(config) = tls else {
            return Ok(Link::Plain(sock));
        };
        let name = ServerName::try_from("localhost").map_err(io::Error::other)?;
        let tls = ClientConnection::new(Arc::clone(config), name).map_err(io::Error::other)?;
        Ok(Link::Tls(Box::new(TlsLink {
            tls,
            sock,
            cipher: vec![0; CIPHER_READ],
            cipher_pos: 0,
            cipher_end: 0,
            socket_empty: false,
            eof: false,
        })))
    }

    /// The socket, for the poller.
    pub fn socket(&mut self) -> &mut TcpStream {
        match self {
            Link::Plain(s) => s,
            Link::Tls(t) => &mut t.sock,
        }
    }
}

impl Read for Link {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Link::Plain(s) => s.read(buf),
            Link::Tls(t) => t.read(buf),
        }
    }
}

impl Write for Link {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Link::Plain(s) => s.write(buf),
            Link::Tls(t) => t.write(buf),
        }
    }

    /// TLS: send queued records as far as the socket takes them (never blocks).
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Link::Plain(_) => Ok(()),
            Link::Tls(t) => t.push(),
        }
    }
}

/// A TLS client connection over a non-blocking socket.
pub struct TlsLink {
    tls: ClientConnection,
    sock: TcpStream,
    cipher: Vec<u8>,
    cipher_pos: usize,
    cipher_end: usize,
    socket_empty: bool,
    eof: bool,
}

impl TlsLink {
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

    /// Feed rustls buffered ciphertext or read more. Ok(false): nothing more for now.
    fn pull(&mut self) -> io::Result<bool> {
        if self.cipher_pos == self.cipher_end {
            if self.eof || self.socket_empty {
                return Ok(false);
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
                let _ = self.tls.read_tls(&mut io::empty());
                return Ok(true);
            }
            self.socket_empty = n < self.cipher.len();
            self.cipher_pos = 0;
            self.cipher_end = n;
        }
        let mut input = &self.cipher[self.cipher_pos..self.cipher_end];
        self.cipher_pos += self.tls.read_tls(&mut input)?;
        self.tls
            .process_new_packets()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        self.push()?;
        Ok(true)
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut n = 0;
        self.socket_empty = false;
        loop {
            match self.tls.reader().read(&mut buf[n..]) {
                Ok(0) => return Ok(n),
                Ok(k) => {
                    n += k;
                    if n == buf.len() {
                        return Ok(n);
                    }
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
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

    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.push()?;
        if self.tls.wants_write() && !self.tls.is_handshaking() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = self.tls.writer().write(buf)?;
        self.push()?;
        if n == 0 && !buf.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    }
}
