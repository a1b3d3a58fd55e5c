//! The `--metrics-listen` endpoint: a small blocking HTTP/1.1 responder on its own thread.
//!
//! `GET /metrics` (or `HEAD`) answers the Prometheus page ([`super::render`]); `/` a line
//! pointing there; other paths 404, other methods 405. One request per connection
//! (`Connection: close`), served one at a time: a scraper asks every few seconds, so
//! there is nothing to gain from concurrency, and a slow or silent client is cut off by
//! the socket timeouts. The listener is polled so the thread sees a shutdown within
//! [`POLL`].

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::context::Context;

/// How often the idle listener checks for a shutdown.
const POLL: Duration = Duration::from_millis(50);
/// A client has this long to send its request and take the reply.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest request head read.
const MAX_HEAD: usize = 8 * 1024;

/// Bind the endpoint (before any thread starts, so a bad address fails the start).
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let listener = TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Serve `listener` on a new thread until the server stops.
pub fn spawn(listener: TcpListener, ctx: Arc<Context>) -> io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || serve(listener, &ctx))
}

fn serve(listener: TcpListener, ctx: &Context) {
    while !ctx.stopping.load(Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => {
                if let Err(e) = answer(stream, ctx) {
                    log::debug!("metrics request failed: {e}");
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(POLL),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                log::warn!("metrics listener: accept failed: {e}");
                std::thread::sleep(POLL);
            }
        }
    }
}

/// The parts of a request line the responder looks at.
#[derive(Debug, PartialEq, Eq)]
struct RequestLine<'a> {
    method: &'a str,
    path: &'a str,
}

/// The request line of a request head, if it is one.
fn request_line(head: &[u8]) -> Option<RequestLine<'_>> {
    let line = head.split(|&b| b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?.trim_end_matches('\r');
    let mut parts = line.split(' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || !version.starts_with("HTTP/1.") {
        return None;
    }
    let path = target.split(['?', '#']).next().unwrap_or(target);
    Some(RequestLine { method, path })
}

/// Read a request head (up to the blank line), at most [`MAX_HEAD`] bytes.
fn read_head(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
        if head.len() >= MAX_HEAD {
            break;
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&chunk[..n]);
    }
    Ok(head)
}

fn answer(mut stream: TcpStream, ctx: &Context) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let head = read_head(&mut stream)?;
    let (status, content_type, body, head_only) = match request_line(&head) {
        None => (
            "400 Bad Request",
            "text/plain",
            "bad request\n".to_string(),
            false,
        ),
        Some(r) if r.method != "GET" && r.method != "HEAD" => (
            "405 Method Not Allowed",
            "text/plain",
            "only GET\n".to_string(),
            false,
        ),
        Some(r) => {
            let head_only = r.method == "HEAD";
            match r.path {
                "/metrics" => (
                    "200 OK",
                    "text/plain; version=0.0.4; charset=utf-8",
                    super::render::page(ctx),
                    head_only,
                ),
                "/" => (
                    "200 OK",
                    "text/plain",
                    "slabcached: metrics at /metrics\n".to_string(),
                    head_only,
                ),
                _ => (
                    "404 Not Found",
                    "text/plain",
                    "not found\n".to_string(),
                    head_only,
                ),
            }
        }
    };
    let mut reply = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if status.starts_with("405") {
        reply.push_str("Allow: GET, HEAD\r\n");
    }
    reply.push_str("\r\n");
    if !head_only {
        reply.push_str(&body);
    }
    stream.write_all(reply.as_bytes())?;
    stream.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines() {
        assert_eq!(
            request_line(b"GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\n\r\n"),
            Some(RequestLine {
                method: "GET",
                path: "/metrics"
            })
        );
        assert_eq!(request_line(b"HEAD / HTTP/1.0\n\n").map(|r| r.path), Some("/"));
        assert_eq!(request_line(b"GET /metrics\r\n\r\n"), None);
        assert_eq!(request_line(b"\xff\xfe"), None);
    }
}
