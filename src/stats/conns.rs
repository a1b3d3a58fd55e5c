//! `stats conns`: the listening sockets, then every client connection, by descriptor,
//! with memcached's state names.
//!
//! A connection's worker records where it is in its cycle ([`ConnState`]) when it starts
//! serving an event and when it goes back to waiting; `stats conns` reads those bytes. The
//! connection asking is being served, so it shows `conn_parse_cmd`, as in memcached.

use std::sync::atomic::Ordering::Relaxed;

use super::{write_stat, Rows};
use crate::context::Context;

/// memcached's connection states, as far as slabcached's cycle has them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ConnState {
    /// Accepted, nothing read yet.
    NewCmd = 0,
    /// Waiting for (the rest of) a command line.
    Read = 1,
    /// Serving requests.
    ParseCmd = 2,
    /// A command line was read; waiting for its data.
    Nread = 3,
    /// Discarding the data block of a refused store.
    Swallow = 4,
    /// Replies are waiting for the client to read them.
    Mwrite = 5,
}

impl ConnState {
    pub fn from_u8(byte: u8) -> ConnState {
        match byte {
            0 => ConnState::NewCmd,
            1 => ConnState::Read,
            2 => ConnState::ParseCmd,
            3 => ConnState::Nread,
            4 => ConnState::Swallow,
            _ => ConnState::Mwrite,
        }
    }

    /// memcached's name for the state.
    pub fn name(self) -> &'static str {
        match self {
            ConnState::NewCmd => "conn_new_cmd",
            ConnState::Read => "conn_read",
            ConnState::ParseCmd => "conn_parse_cmd",
            ConnState::Nread => "conn_nread",
            ConnState::Swallow => "conn_swallow",
            ConnState::Mwrite => "conn_mwrite",
        }
    }
}

pub fn conns(shared: &Context) -> Rows {
    let mut rows = Rows::new();
    let out = &mut rows;
    let now = shared.clock.now();
    for (fd, name) in &shared.listeners {
        write_stat(out, format_args!("{fd}:addr"), name);
        // A UDP socket is a connection that only ever reads, as memcached shows it.
        let state = if name.starts_with("udp:") {
            "conn_read"
        } else {
            "conn_listening"
        };
        write_stat(out, format_args!("{fd}:state"), state);
        write_stat(
            out,
            format_args!("{fd}:secs_since_last_cmd"),
            shared.clock.uptime(),
        );
    }
    let conns = shared.conns.lock().unwrap_or_else(|e| e.into_inner());
    for (fd, entry) in conns.iter() {
        write_stat(out, format_args!("{fd}:addr"), &entry.addr);
        write_stat(out, format_args!("{fd}:listen_addr"), &entry.listen_addr);
        let state = if entry.watching {
            "conn_watch"
        } else {
            entry.state().name()
        };
        write_stat(out, format_args!("{fd}:state"), state);
        write_stat(
            out,
            format_args!("{fd}:secs_since_last_cmd"),
            now.saturating_sub(entry.last_cmd.load(Relaxed)),
        );
    }
    rows
}
