//! The few operating-system calls std does not wrap: signal flags, dropping root,
//! daemonizing, resource usage, the file-descriptor limit and socket buffer sizes. This is
//! the only module of the server crate allowed `unsafe`; each call is small and documented.
#![allow(unsafe_code)]

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set by SIGINT/SIGTERM: the server should stop.
pub static STOP_REQUESTED: AtomicBool = AtomicBool::new(false);
/// Set by SIGHUP: the cluster file should be re-read.
pub static RELOAD_REQUESTED: AtomicBool = AtomicBool::new(false);
/// Set by SIGUSR1: stop gracefully (saving the cache for a warm restart with `-e`).
pub static GRACEFUL_REQUESTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop(_: libc::c_int) {
    STOP_REQUESTED.store(true, Ordering::SeqCst);
}

extern "C" fn on_reload(_: libc::c_int) {
    RELOAD_REQUESTED.store(true, Ordering::SeqCst);
}

extern "C" fn on_graceful(_: libc::c_int) {
    GRACEFUL_REQUESTED.store(true, Ordering::SeqCst);
}

fn set_handler(signal: libc::c_int, handler: extern "C" fn(libc::c_int)) -> io::Result<()> {
    // SAFETY: sigaction is given a zeroed, then filled, struct that lives across the call.
    // The handlers only store to an AtomicBool, which is async-signal-safe.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = handler as usize;
        action.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut action.sa_mask);
        if libc::sigaction(signal, &action, std::ptr::null_mut()) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Route SIGINT/SIGTERM to [`STOP_REQUESTED`], SIGHUP to [`RELOAD_REQUESTED`] and SIGUSR1
/// to [`GRACEFUL_REQUESTED`].
pub fn install_signal_handlers() -> io::Result<()> {
    set_handler(libc::SIGINT, on_stop)?;
    set_handler(libc::SIGTERM, on_stop)?;
    set_handler(libc::SIGUSR1, on_graceful)?;
    set_handler(libc::SIGHUP, on_reload)
}

/// User and system CPU time of this process, in seconds.
pub fn rusage() -> (f64, f64) {
    // SAFETY: getrusage fills the zeroed struct we own; RUSAGE_SELF is always valid.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let secs = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    (secs(usage.ru_utime), secs(usage.ru_stime))
}

/// Raise the open-file limit to at least `wanted` if the hard limit allows.
pub fn raise_fd_limit(wanted: u64) {
    // SAFETY: getrlimit/setrlimit read and write a struct we own.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < wanted {
            lim.rlim_cur = wanted.min(lim.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// Whether the process runs as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Switch to `user`'s uid and gid (memcached's -u).
pub fn drop_privileges(user: &str) -> io::Result<()> {
    let name = std::ffi::CString::new(user).map_err(|_| io::Error::other("user name has a NUL byte"))?;
    // SAFETY: getpwnam gets a valid C string; the returned record is read immediately,
    // before any other call could overwrite its static storage (startup is single-threaded).
    unsafe {
        let pw = libc::getpwnam(name.as_ptr());
        if pw.is_null() {
            return Err(io::Error::other(format!(
                "can't find the user {user} to switch to"
            )));
        }
        let (uid, gid) = ((*pw).pw_uid, (*pw).pw_gid);
        if libc::setgroups(0, std::ptr::null()) != 0 && libc::geteuid() == 0 {
            return Err(io::Error::last_os_error());
        }
        if libc::setgid(gid) != 0 || libc::setuid(uid) != 0 {
            return Err(io::Error::other(format!(
                "failed to assume identity of user {user}"
            )));
        }
    }
    Ok(())
}

/// Detach into the background (memcached's -d): fork, let the parent exit, start a new
/// session, and point stdio at /dev/null. Must run before any thread is spawned.
pub fn daemonize() -> io::Result<()> {
    // SAFETY: called while the process is single-threaded, so fork is safe; the parent
    // exits at once with _exit (no destructors run twice), the child continues.
    unsafe {
        match libc::fork() {
            -1 => return Err(io::Error::last_os_error()),
            0 => {}
            _ => libc::_exit(0),
        }
        if libc::setsid() == -1 {
            return Err(io::Error::last_os_error());
        }
        let devnull = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if devnull >= 0 {
            libc::dup2(devnull, 0);
            libc::dup2(devnull, 1);
            libc::dup2(devnull, 2);
            if devnull > 2 {
                libc::close(devnull);
            }
        }
    }
    Ok(())
}

/// Re-`listen` an already listening socket to apply `-b` (std always uses 128; Linux
/// updates the backlog of a listening socket in place).
pub fn set_backlog(fd: std::os::fd::RawFd, backlog: i32) {
    // SAFETY: listen on a descriptor we own; a failure only leaves the old backlog.
    unsafe {
        libc::listen(fd, backlog);
    }
}

/// Ask for a socket send buffer of `bytes` (`SO_SNDBUF`; the kernel doubles it and keeps
/// its own minimum). The fuzz harness makes its socket pairs small so that replies and
/// requests back up after a few kilobytes, as on a slow network.
/// `-o sock_cookie_id`: mark the socket (Linux `SO_MARK`, what memcached sets) so that
/// firewall and routing rules can tell its traffic; accepted sockets inherit the mark.
/// Needs CAP_NET_ADMIN.
pub fn set_mark(fd: std::os::fd::RawFd, mark: u32) -> io::Result<()> {
    // SAFETY: setsockopt on a descriptor the caller owns, reading one u32 that lives for
    // the call; the length passed is that integer's size.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_MARK,
            (&mark as *const u32).cast(),
            std::mem::size_of::<u32>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

pub fn set_send_buffer(fd: std::os::fd::RawFd, bytes: i32) -> io::Result<()> {
    let value: libc::c_int = bytes;
    // SAFETY: setsockopt on a descriptor the caller owns, reading one c_int that lives for
    // the call; the length passed is that int's size.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
