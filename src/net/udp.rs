//! memcached's UDP transport (`-U <port>`): one datagram carries one request packet, and the
//! reply goes back in as many datagrams as it needs.
//!
//! Every datagram opens with memcached's 8-byte frame header: request id, sequence number,
//! datagram count, reserved (big-endian u16s). A request must fit one datagram (a count
//! other than 1 is dropped, as memcached drops multi-packet requests). Its payload is
//! decoded and executed by the same wire steps as a TCP connection's input (text or binary,
//! chosen by the first byte); the replies are cut into datagrams of at most 1,400 bytes,
//! header included, numbered 0..count under the request's id. A UDP socket is served by its
//! own thread with blocking reads (a short timeout lets it see a stop): datagrams need no
//! readiness bookkeeping, and memcached serves UDP on far fewer threads than TCP too.

use std::io;
use std::net::UdpSocket;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use crate::context::Context;
use crate::stats::{bump, Counters};
use crate::wire;

/// memcached's frame header.
const HEADER_LEN: usize = 8;
/// Largest datagram sent, header included (memcached's `UDP_MAX_PAYLOAD_SIZE`).
const MAX_DATAGRAM: usize = 1400;
/// Reply bytes per datagram.
const DATA_PER_DATAGRAM: usize = MAX_DATAGRAM - HEADER_LEN;
/// Largest datagram read (memcached's UDP read buffer).
const READ_BUFFER: usize = 64 * 1024;

/// Serve `socket` until the server stops.
pub fn serve(socket: UdpSocket, shared: Arc<Context>, counters: Arc<Counters>) -> io::Result<()> {
    socket.set_read_timeout(Some(Duration::from_millis(100)))?;
    let mut buf = vec![0u8; READ_BUFFER];
    let mut reply = Vec::new();
    let mut datagram = Vec::with_capacity(MAX_DATAGRAM);
    while !shared.stopping.load(Relaxed) {
        let (len, peer) = match socket.recv_from(&mut buf) {
            Ok(got) => got,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        bump(&counters.bytes_read, len as u64);
        let Some((request_id, payload)) = request(&buf[..len]) else {
            continue;
        };
        reply.clear();
        wire::run_all(payload, &shared, &counters, &mut reply);
        if reply.is_empty() {
            continue; // noreply, or a quiet binary request
        }
        let count = reply.len().div_ceil(DATA_PER_DATAGRAM).min(usize::from(u16::MAX));
        for (seq, piece) in reply.chunks(DATA_PER_DATAGRAM).take(count).enumerate() {
            datagram.clear();
            datagram.extend_from_slice(&request_id.to_be_bytes());
            datagram.extend_from_slice(&(seq as u16).to_be_bytes());
            datagram.extend_from_slice(&(count as u16).to_be_bytes());
            datagram.extend_from_slice(&[0, 0]);
            datagram.extend_from_slice(piece);
            if let Ok(n) = socket.send_to(&datagram, peer) {
                bump(&counters.bytes_written, n as u64);
            }
        }
    }
    Ok(())
}

/// The request id and payload of a datagram memcached would serve: longer than its header,
/// and the only datagram of its request.
fn request(datagram: &[u8]) -> Option<(u16, &[u8])> {
    if datagram.len() <= HEADER_LEN || datagram[4..6] != [0, 1] {
        return None;
    }
    Some((
        u16::from_be_bytes([datagram[0], datagram[1]]),
        &datagram[HEADER_LEN..],
    ))
}

#[cfg(test)]
mod tests {
    use super::request;

    #[test]
    fn only_single_datagram_requests_are_served() {
        assert_eq!(
            request(b"\x00\x07\x00\x00\x00\x01\x00\x00get a\r\n"),
            Some((7, &b"get a\r\n"[..]))
        );
        assert_eq!(request(b"\x00\x07\x00\x00\x00\x02\x00\x00get a\r\n"), None);
        assert_eq!(request(b"\x00\x07\x00\x00\x00\x01\x00\x00"), None);
    }
}
