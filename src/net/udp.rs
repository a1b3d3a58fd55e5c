//! memcached's UDP transport (`-U <port>`): one datagram carries one request packet, and the
//! reply goes back in as many datagrams as it needs.
//!
//! Every datagram opens with memcached's 8-byte frame header: request id, sequence number,
//! datagram count, reserved (big-endian u16s). A request must fit one datagram (a count
//! other than 1 is dropped, as memcached drops multi-packet requests). Its payload is
//! decoded and executed by the same wire steps as a TCP connection's input (text or binary,
//! chosen by the first byte). Each response goes out as its own message, as memcached's
//! do: one per command, and one per key a multi-get found, the last with `END`. A message
//! is cut into datagrams of at most 1,400 bytes, header included, numbered 0..count under
//! the request's id. Only one response is held at a time, so a datagram asking for the
//! same large value thousands of times costs one value's memory, not thousands.
//!
//! A UDP socket is served by its own thread with blocking reads (a short timeout lets it
//! see a stop): datagrams need no readiness bookkeeping, and memcached serves UDP on far
//! fewer threads than TCP too.

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
/// Capacity the response buffer keeps between responses: one large value may grow it to
/// the item size limit, which is given back rather than held while the socket idles.
const KEPT_CAPACITY: usize = 64 * 1024;

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
        // noreply and quiet binary requests have no response, so no message.
        wire::run_all(payload, &shared, &counters, &mut reply, |response| {
            send_message(&socket, peer, request_id, response, &mut datagram, &counters);
        });
        reply.shrink_to(KEPT_CAPACITY);
    }
    Ok(())
}

/// Send one response as datagrams numbered 0..count (at most 65,535 of them: the count is
/// a u16 and memcached clamps it there too). An empty response is one bare header with a
/// count of 0, as memcached sends a multi-get's missed key.
fn send_message(
    socket: &UdpSocket,
    peer: std::net::SocketAddr,
    request_id: u16,
    response: &[u8],
    datagram: &mut Vec<u8>,
    counters: &Counters,
) {
    let count = response
        .len()
        .div_ceil(DATA_PER_DATAGRAM)
        .min(usize::from(u16::MAX));
    let pieces = response.chunks(DATA_PER_DATAGRAM).take(count);
    let empty = response.is_empty().then_some(response);
    for (seq, piece) in pieces.chain(empty).enumerate() {
        datagram.clear();
        datagram.extend_from_slice(&request_id.to_be_bytes());
        datagram.extend_from_slice(&(seq as u16).to_be_bytes());
        datagram.extend_from_slice(&(count as u16).to_be_bytes());
        datagram.extend_from_slice(&[0, 0]);
        datagram.extend_from_slice(piece);
        if let Ok(n) = socket.send_to(datagram, peer) {
            bump(&counters.bytes_written, n as u64);
        }
    }
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
