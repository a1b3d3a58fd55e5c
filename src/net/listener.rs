//! The listener thread: binds every socket before any thread starts, accepts connections,
//! enforces `-c`, hands sockets to workers round-robin, ticks the clock, and runs the
//! shutdown sequence on SIGINT/SIGTERM or the `shutdown` command (workers, then the
//! maintenance thread of [`crate::maintain`], are stopped and joined); on SIGUSR1 or
//! `shutdown graceful` the same, then with `-e` the cache is saved ([`crate::restart`]).

use std::io::{self, Write};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use mio::net::{TcpListener, UnixListener};
use mio::{Events, Interest, Poll, Token};

use crate::cluster::Cluster;
use crate::config::Config;
use crate::context::Context;
use crate::maintain;
use crate::net::stream::Stream;
use crate::net::tls::TlsContext;
use crate::net::worker::{Worker, WorkerHandle};
use crate::stats::{bump, Counters};
use crate::sys;

/// How a server failed to start.
#[derive(Debug)]
pub enum ServerError {
    Cache(slabcache::CacheError),
    /// `-e`: the memory file cannot be used.
    Restart(crate::restart::OpenError),
    Bind {
        addr: String,
        source: io::Error,
    },
    Tls(crate::net::tls::TlsError),
    Io(io::Error),
}

impl std::fmt::Display for ServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServerError::Cache(e) => write!(f, "{e}"),
            ServerError::Restart(e) => write!(f, "{e}"),
            ServerError::Bind { addr, source } => write!(f, "failed to listen on {addr}: {source}"),
            ServerError::Tls(e) => write!(f, "{e}"),
            ServerError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ServerError {}

impl From<io::Error> for ServerError {
    fn from(e: io::Error) -> Self {
        ServerError::Io(e)
    }
}

enum Listener {
    Tcp(TcpListener, String),
    /// TCP under `-Z`: accepted sockets speak TLS.
    Tls(TcpListener, String),
    Unix(UnixListener, String),
}

impl Listener {
    /// The TCP socket (plain or TLS), None for a UNIX one.
    fn tcp(&self) -> Option<&TcpListener> {
        match self {
            Listener::Tcp(l, _) | Listener::Tls(l, _) => Some(l),
            Listener::Unix(..) => None,
        }
    }
}

/// A bound, not yet running server.
pub struct Server {
    shared: Arc<Context>,
    listeners: Vec<Listener>,
    poll: Poll,
    accept_counters: Arc<Counters>,
    worker_counters: Vec<Arc<Counters>>,
    /// The `--metrics-listen` socket, served by [`crate::metrics::http`].
    metrics: Option<std::net::TcpListener>,
    /// `-U`: one UDP socket per listen address, each served by its own thread.
    udp: Vec<std::net::UdpSocket>,
    /// What the UDP threads count.
    udp_counters: Arc<Counters>,
}

/// A running server's handle for tests: its address and a way to stop it.
pub struct RunningServer {
    pub addrs: Vec<SocketAddr>,
    shared: Arc<Context>,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl RunningServer {
    pub fn shutdown(mut self) -> io::Result<()> {
        self.shared.request_stop();
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(io::Error::other("server thread panicked")),
            None => Ok(()),
        }
    }
}

fn bind_tcp(addr: SocketAddr, backlog: i32) -> Result<TcpListener, ServerError> {
    let std_listener = std::net::TcpListener::bind(addr).map_err(|source| ServerError::Bind {
        addr: addr.to_string(),
        source,
    })?;
    sys::set_backlog(std_listener.as_raw_fd(), backlog);
    std_listener.set_nonblocking(true)?;
    Ok(TcpListener::from_std(std_listener))
}

/// memcached's port file (the environment's `MEMCACHED_PORT_FILENAME`): a `TCP INET: 11211`
/// line per bound socket (`INET6` for v6, `UDP` for datagram ones), so a test can find the
/// ports the kernel picked for `-p -1`. Written beside as `.lck` and renamed into place, so
/// a reader never sees half of it.
fn write_port_file(path: &Path, listeners: &[Listener], udp: &[std::net::UdpSocket]) -> io::Result<()> {
    let line = |kind: &str, addr: SocketAddr| {
        let family = if addr.is_ipv4() { "INET" } else { "INET6" };
        format!("{kind} {family}: {}\n", addr.port())
    };
    let mut text = String::new();
    for l in listeners.iter().filter_map(Listener::tcp) {
        text.push_str(&line("TCP", l.local_addr()?));
    }
    for socket in udp {
        text.push_str(&line("UDP", socket.local_addr()?));
    }
    let mut temp = path.as_os_str().to_owned();
    temp.push(".lck");
    std::fs::write(&temp, text)?;
    std::fs::rename(&temp, path)
}

impl Server {
    /// Bind every listening socket and build the cache: everything that can fail does so
    /// here, before any thread exists.
    pub fn bind(config: Config) -> Result<Server, ServerError> {
        // With `-e` the cache is built once the sockets are bound (below): opening the
        // memory file consumes its metadata, which a failed bind must not waste.
        let anonymous = match config.memory_file {
            None => Some(crate::context::build_cache(&config).map_err(ServerError::Cache)?),
            Some(_) => None,
        };
        let auth = crate::auth::Auth::load(&config).map_err(|e| ServerError::Io(io::Error::other(e)))?;
        crate::auth::warn_if_public(&config);
        let tls = if config.tls.enabled {
            let ctx = TlsContext::new(&config.tls).map_err(ServerError::Tls)?;
            Some(Arc::new(ctx))
        } else {
            None
        };

        let poll = Poll::new()?;
        let mut listeners = Vec::new();
        if let Some(path) = &config.unix_socket {
            let _ = std::fs::remove_file(path);
            let l = UnixListener::bind(path).map_err(|source| ServerError::Bind {
                addr: path.display().to_string(),
                source,
            })?;
            sys::set_backlog(l.as_raw_fd(), config.backlog);
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(!config.unix_mask & 0o777))?;
            listeners.push(Listener::Unix(l, format!("unix:{}", path.display())));
        } else if config.port != 0 {
            for addr in &config.listen {
                let l = bind_tcp(*addr, config.backlog)?;
                let local = l.local_addr()?;
                let name = format!("tcp:{local}");
                if tls.is_some() && !config.notls_listen.contains(addr) {
                    listeners.push(Listener::Tls(l, name));
                } else {
                    listeners.push(Listener::Tcp(l, name));
                }
            }
        }
        // UDP beside TCP, on the same addresses (memcached serves none with -s).
        let mut udp = Vec::new();
        if config.udp_port != 0 && config.unix_socket.is_none() {
            // One socket per address: `-l` may name one address with several TCP ports.
            let mut ips: Vec<_> = config.listen.iter().map(|a| a.ip()).collect();
            ips.sort();
            ips.dedup();
            for ip in ips {
                let at = SocketAddr::new(ip, crate::config::bind_port(config.udp_port));
                let socket = std::net::UdpSocket::bind(at).map_err(|source| ServerError::Bind {
                    addr: format!("udp {at}"),
                    source,
                })?;
                udp.push(socket);
            }
        }
        if config.sock_cookie_id != 0 {
            let tcp = listeners.iter().filter_map(Listener::tcp).map(|l| l.as_raw_fd());
            for fd in tcp.chain(udp.iter().map(|s| s.as_raw_fd())) {
                // memcached reports the failure (no CAP_NET_ADMIN) and serves anyway.
                if let Err(e) = sys::set_mark(fd, config.sock_cookie_id) {
                    log::warn!("setsockopt: {e}");
                }
            }
        }
        if config.unix_socket.is_none() {
            if let Some(path) = std::env::var_os("MEMCACHED_PORT_FILENAME") {
                write_port_file(Path::new(&path), &listeners, &udp)?;
            }
        }
        let mut listener_info = Vec::new();
        for (i, l) in listeners.iter_mut().enumerate() {
            let (fd, name) = match l {
                Listener::Tcp(l, name) | Listener::Tls(l, name) => {
                    poll.registry().register(l, Token(i), Interest::READABLE)?;
                    (l.as_raw_fd(), name.clone())
                }
                Listener::Unix(l, name) => {
                    poll.registry().register(l, Token(i), Interest::READABLE)?;
                    (l.as_raw_fd(), name.clone())
                }
            };
            listener_info.push((fd, name));
        }
        for socket in &udp {
            listener_info.push((socket.as_raw_fd(), format!("udp:{}", socket.local_addr()?)));
        }

        let first_port = listeners
            .iter()
            .find_map(|l| l.tcp()?.local_addr().ok())
            .map(|a| a.port())
            .unwrap_or(crate::config::bind_port(config.port));
        let cluster =
            Cluster::from_config(&config, first_port).map_err(|e| ServerError::Io(io::Error::other(e)))?;

        let metrics = match config.metrics_listen {
            Some(addr) => Some(
                crate::metrics::http::bind(addr).map_err(|source| ServerError::Bind {
                    addr: format!("metrics {addr}"),
                    source,
                })?,
            ),
            None => None,
        };
        let accept_counters = Arc::new(Counters::default());
        let worker_counters: Vec<_> = (0..config.threads)
            .map(|_| Arc::new(Counters::default()))
            .collect();
        let udp_counters = Arc::new(Counters::default());
        let mut blocks = vec![Arc::clone(&accept_counters), Arc::clone(&udp_counters)];
        blocks.extend(worker_counters.iter().cloned());
        let (cache, clock) = match anonymous {
            Some(cache) => (cache, crate::clock::Clock::new()),
            None => crate::restart::open(&config).map_err(ServerError::Restart)?,
        };
        let mut context = Context::new(config, cache, cluster, blocks, listener_info);
        context.clock = clock;
        context.auth = auth;
        context.tls = tls;
        let shared = Arc::new(context);
        Ok(Server {
            shared,
            listeners,
            poll,
            accept_counters,
            worker_counters,
            metrics,
            udp,
            udp_counters,
        })
    }

    /// Addresses of the TCP listeners (useful with port 0).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter_map(|l| l.tcp()?.local_addr().ok())
            .collect()
    }

    /// Run on a background thread (for tests); stop with [`RunningServer::shutdown`].
    pub fn spawn(self) -> io::Result<RunningServer> {
        let addrs = self.local_addrs();
        let shared = Arc::clone(&self.shared);
        let thread = std::thread::Builder::new()
            .name("listener".into())
            .spawn(move || self.run())?;
        Ok(RunningServer {
            addrs,
            shared,
            thread: Some(thread),
        })
    }

    /// Start the workers and the maintenance thread, and serve until a stop is requested.
    pub fn run(mut self) -> io::Result<()> {
        let maintenance = maintain::thread::spawn(Arc::clone(&self.shared))?;
        let metrics = match self.metrics.take() {
            Some(l) => Some(crate::metrics::http::spawn(l, Arc::clone(&self.shared))?),
            None => None,
        };
        let mut workers: Vec<WorkerHandle> = Vec::new();
        let mut joins = Vec::new();
        for (i, socket) in std::mem::take(&mut self.udp).into_iter().enumerate() {
            let shared = Arc::clone(&self.shared);
            let counters = Arc::clone(&self.udp_counters);
            joins.push(
                std::thread::Builder::new()
                    .name(format!("udp-{i}"))
                    .spawn(move || {
                        if let Err(e) = crate::net::udp::serve(socket, shared, counters) {
                            log::error!("UDP listener failed: {e}");
                        }
                    })?,
            );
        }
        for (i, counters) in self.worker_counters.iter().enumerate() {
            let (worker, handle) = Worker::new(Arc::clone(&self.shared), Arc::clone(counters))?;
            workers.push(handle);
            joins.push(
                std::thread::Builder::new()
                    .name(format!("worker-{i}"))
                    .spawn(move || worker.run())?,
            );
        }
        let mut events = Events::with_capacity(64);
        let mut next_worker = 0usize;
        let mut paused_until: Option<std::time::Instant> = None;
        loop {
            let timeout = Duration::from_millis(100);
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
            self.shared.clock.tick();
            if sys::GRACEFUL_REQUESTED.load(Relaxed) {
                self.shared.graceful.store(true, Relaxed);
            }
            if self.shared.graceful.load(Relaxed)
                || sys::STOP_REQUESTED.load(Relaxed)
                || self.shared.stopping.load(Relaxed)
            {
                break;
            }
            if sys::RELOAD_REQUESTED.swap(false, Relaxed) {
                log::info!("SIGHUP received: reloading the cluster config and the authfile");
                self.shared.cluster.reload();
                self.shared.auth.reload(&self.shared.config);
            }
            if let Some(t) = paused_until {
                if std::time::Instant::now() < t {
                    continue;
                }
                paused_until = None;
            }
            // Accept on every listener each round: after an EMFILE pause there may be
            // no new readiness edge for connections already queued.
            for i in 0..self.listeners.len() {
                if let Err(e) = self.accept_all(i, &workers, &mut next_worker) {
                    log::warn!("accept failed: {e}; pausing accepts for 100ms");
                    paused_until = Some(std::time::Instant::now() + Duration::from_millis(100));
                }
            }
        }
        log::info!("shutting down");
        self.shared.request_stop();
        for w in &workers {
            w.wake();
        }
        for j in joins {
            let _ = j.join();
        }
        self.shared.maintenance.stop();
        let _ = maintenance.join();
        if self.shared.graceful.load(Relaxed) {
            log::warn!("Gracefully stopping");
            // Every thread that touches the cache has stopped: its state is final.
            if let Err(e) = crate::restart::save(&self.shared) {
                log::error!("[restart] could not save the cache for a warm restart: {e}");
            }
        }
        if let Some(m) = metrics {
            let _ = m.join();
        }
        if let Some(path) = &self.shared.config.unix_socket {
            let _ = std::fs::remove_file(path);
        }
        Ok(())
    }

    fn accept_all(&mut self, i: usize, workers: &[WorkerHandle], next: &mut usize) -> io::Result<()> {
        loop {
            let (stream, peer, listen) = match &self.listeners[i] {
                Listener::Tcp(l, name) => match l.accept() {
                    Ok((s, peer)) => {
                        let _ = s.set_nodelay(true);
                        (Stream::Tcp(s), format!("tcp:{peer}"), name.clone())
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => continue,
                    Err(e) => return Err(e),
                },
                Listener::Tls(l, name) => match l.accept() {
                    Ok((s, peer)) => {
                        let _ = s.set_nodelay(true);
                        let Some(tls) = &self.shared.tls else { continue };
                        match tls.accept(s) {
                            Ok(t) => (Stream::Tls(Box::new(t)), format!("tcp:{peer}"), name.clone()),
                            Err(e) => {
                                log::warn!("cannot start TLS for {peer}: {e}");
                                continue;
                            }
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => continue,
                    Err(e) => return Err(e),
                },
                Listener::Unix(l, name) => match l.accept() {
                    Ok((s, _)) => (Stream::Unix(s), "unix:".to_string(), name.clone()),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                },
            };
            bump(&self.accept_counters.total_connections, 1);
            let curr = self.shared.curr_connections.load(Relaxed);
            if curr >= self.shared.config.max_connections {
                // memcached's answer when over -c: say why, then hang up. It writes to the
                // socket itself, before any TLS handshake, and so do we.
                bump(&self.accept_counters.rejected_connections, 1);
                let mut stream = stream;
                let refusal = b"ERROR Too many open connections\r\n";
                let _ = match &mut stream {
                    Stream::Tls(tls) => tls.socket().write_all(refusal),
                    plain => plain.write_all(refusal),
                };
                continue;
            }
            self.shared.curr_connections.fetch_add(1, Relaxed);
            workers[*next % workers.len()].send(stream, peer, listen);
            *next = next.wrapping_add(1);
        }
    }
}
