//! The executor in process: requests as bytes go through decode → execute → encode against
//! a small cache, for all three protocols, with no sockets. Each table row is one exchange
//! on a fresh server; the Python suites remain the end-to-end check.

use std::sync::Arc;

use super::step::{Lent, Step, Turn};
use super::value_rest::{continue_value, Torn, PIECE};
use super::{binary, text};
use crate::cmd::Action;
use crate::context::Context;
use crate::stats::Counters;

struct Server {
    ctx: Context,
    counters: Arc<Counters>,
}

fn server(args: &[&str]) -> Server {
    let (ctx, counters) = crate::context::for_tests(args);
    Server { ctx, counters }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Wire {
    Text,
    Binary,
}

/// A turn without bounds.
const TURN: Turn<'static> = Turn {
    resume: 0,
    room: usize::MAX,
    replies: usize::MAX,
    intake: None,
    pause_per_key: false,
};

impl Server {
    /// Feed `input` as one connection would receive it; returns the replies and whether the
    /// connection was told to close.
    fn exchange(&self, wire: Wire, input: &[u8]) -> (Vec<u8>, bool) {
        self.exchange_with_room(wire, input, usize::MAX)
    }

    /// [`Server::exchange`] with `room` bytes of output allowed per turn (0: a client that
    /// reads slowly); the value pieces and paused gets are continued as the connection does.
    fn exchange_with_room(&self, wire: Wire, input: &[u8], room: usize) -> (Vec<u8>, bool) {
        let mut out = Vec::new();
        let mut pos = 0;
        let mut stacked = false;
        let mut session = crate::auth::Session::default();
        let mut resume = 0;
        let mut value_rest = None;
        while pos < input.len() {
            let rest = &input[pos..];
            let turn = Turn { resume, room, ..TURN };
            let lent = Lent {
                out: &mut out,
                session: &mut session,
                rest: &mut value_rest,
                stacked: &mut stacked,
            };
            let step = match wire {
                Wire::Text => text::step(rest, &self.ctx, &self.counters, lent, turn),
                Wire::Binary => binary::step(rest, &self.ctx, &self.counters, lent, turn),
            };
            if let Step::Paused(done) = step {
                // As the connection does: the value's pieces, then the request again.
                while value_rest.is_some() {
                    continue_value(&mut value_rest, &self.ctx, &mut out, room).unwrap();
                }
                resume = done;
                continue;
            }
            resume = 0;
            let Step::Done {
                consumed,
                swallow,
                after_swallow,
                action,
            } = step
            else {
                break;
            };
            pos += consumed + swallow.min(input.len() - pos - consumed);
            out.extend_from_slice(after_swallow);
            if action != Action::Continue {
                return (out, true);
            }
        }
        (out, false)
    }

    fn text(&self, input: &str) -> String {
        String::from_utf8(self.exchange(Wire::Text, input.as_bytes()).0).unwrap()
    }
}

#[test]
fn text_and_meta_requests_through_the_executor() {
    // (requests, replies) on a fresh server each
    let table: &[(&str, &str)] = &[
        (
            "set a 5 0 1\r\nx\r\nget a b\r\n",
            "STORED\r\nVALUE a 5 1\r\nx\r\nEND\r\n",
        ),
        (
            "add a 0 0 1\r\nx\r\nadd a 0 0 1\r\ny\r\nget a\r\n",
            "STORED\r\nNOT_STORED\r\nVALUE a 0 1\r\nx\r\nEND\r\n",
        ),
        ("replace a 0 0 1\r\nx\r\n", "NOT_STORED\r\n"),
        (
            "set a 0 0 2\r\nbc\r\nappend a 0 0 1\r\nd\r\nprepend a 0 0 1\r\na\r\nget a\r\n",
            "STORED\r\nSTORED\r\nSTORED\r\nVALUE a 0 4\r\nabcd\r\nEND\r\n",
        ),
        ("cas a 0 0 1 5\r\nx\r\n", "NOT_FOUND\r\n"),
        (
            "set n 0 0 2\r\n10\r\nincr n 5\r\ndecr n 100\r\nincr x 1\r\n",
            "STORED\r\n15\r\n0\r\nNOT_FOUND\r\n",
        ),
        (
            "set t 0 0 1\r\nx\r\nincr t 1\r\n",
            "STORED\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\n",
        ),
        (
            "set a 0 0 1\r\nx\r\ndelete a\r\ndelete a\r\n",
            "STORED\r\nDELETED\r\nNOT_FOUND\r\n",
        ),
        (
            "set a 0 0 1\r\nx\r\ntouch a 100\r\ntouch b 100\r\n",
            "STORED\r\nTOUCHED\r\nNOT_FOUND\r\n",
        ),
        (
            "set a 0 0 1\r\nx\r\ngat 100 a b\r\n",
            "STORED\r\nVALUE a 0 1\r\nx\r\nEND\r\n",
        ),
        // noreply silences every outcome, errors included
        (
            "set a 0 0 1 noreply\r\nx\r\ndelete b noreply\r\nincr a 1 noreply\r\nget a\r\n",
            "VALUE a 0 1\r\nx\r\nEND\r\n",
        ),
        (
            "set a 0 0 1\r\nx\r\nflush_all\r\nget a\r\n",
            "STORED\r\nOK\r\nEND\r\n",
        ),
        ("version\r\n", "VERSION 1.6.18\r\n"),
        (
            "verbosity 1\r\nverbosity invalid\r\n",
            "OK\r\nCLIENT_ERROR bad command line format\r\n",
        ),
        ("mn\r\n", "MN\r\n"),
        ("bogus\r\n", "ERROR\r\n"),
        ("stats detail on\r\nstats detail dump\r\n", "OK\r\nEND\r\n"),
        // meta: return flags in request order, q hiding what memcached hides
        (
            "ms m 2 F3 T0\r\nhi\r\nmg m s v f\r\n",
            "HD\r\nVA 2 s2 f3\r\nhi\r\n",
        ),
        (
            "mg nope v q\r\nmg nope v k Oab\r\nmn\r\n",
            "EN knope Oab\r\nMN\r\n",
        ),
        ("ms m 1 q\r\nx\r\nmd m q\r\nmd m q\r\nmn\r\n", "NF\r\nMN\r\n"),
        (
            "ma c N0 J7 v\r\nma c v\r\nma c MD D9 v\r\n",
            "VA 1\r\n7\r\nVA 1\r\n8\r\nVA 1\r\n0\r\n",
        ),
        ("ma nope\r\nma nope q\r\n", "NF\r\nNF\r\n"),
        (
            "ms b64 1 b\r\nx\r\nmn\r\n",
            "CLIENT_ERROR error decoding key\r\nMN\r\n",
        ),
        (
            "ms Zm9v 1 b\r\nx\r\nmg Zm9v b k v\r\nget foo\r\n",
            "HD\r\nVA 1 kZm9v b\r\nx\r\nVALUE foo 0 1\r\nx\r\nEND\r\n",
        ),
        ("mg k E5\r\n", "CLIENT_ERROR invalid flag\r\n"),
        ("me nope\r\n", "EN\r\n"),
    ];
    for (input, expected) in table {
        let s = server(&[]);
        assert_eq!(s.text(input), *expected, "{input:?}");
    }
    // a get refused for a long key still looks up (and counts) the keys before it
    let s = server(&[]);
    let long = format!("set a 0 0 1\r\nx\r\nget a {}\r\n", "k".repeat(251));
    assert_eq!(
        s.text(&long),
        "STORED\r\nCLIENT_ERROR bad command line format\r\n"
    );
    assert_eq!(s.ctx.stats.totals().get_hits, 1);
}

#[test]
fn counters_follow_memcached() {
    let s = server(&[]);
    s.text("set a 0 0 1\r\nx\r\nget a b\r\ngat 0 a b\r\nmg a T0\r\nmg b T0\r\ntouch a 0\r\nincr a 1\r\ndecr b 1\r\ndelete b\r\n");
    let t = s.ctx.stats.totals();
    assert_eq!((t.cmd_set, t.cmd_get, t.get_hits, t.get_misses), (1, 3, 1, 2));
    assert_eq!((t.cmd_touch, t.touch_hits, t.touch_misses), (4, 3, 1));
    assert_eq!((t.incr_misses, t.decr_misses, t.delete_misses), (0, 1, 1));
    // a refused flush is counted on text, not on binary
    let s = server(&["-F"]);
    assert_eq!(s.text("flush_all\r\n"), "CLIENT_ERROR flush_all not allowed\r\n");
    let (out, _) = s.exchange(Wire::Binary, &frame(0x08, b"", &[], b"", 1));
    assert_eq!(
        packets(&out),
        vec![(0x08, 0x20, 1, vec![], vec![], b"Auth failure.".to_vec())]
    );
    assert_eq!(s.ctx.stats.totals().cmd_flush, 1);
}

/// A binary request frame.
fn frame(op: u8, key: &[u8], extras: &[u8], value: &[u8], opaque: u32) -> Vec<u8> {
    let mut v = vec![0x80, op];
    v.extend_from_slice(&(key.len() as u16).to_be_bytes());
    v.push(extras.len() as u8);
    v.extend_from_slice(&[0, 0, 0]);
    v.extend_from_slice(&((extras.len() + key.len() + value.len()) as u32).to_be_bytes());
    v.extend_from_slice(&opaque.to_be_bytes());
    v.extend_from_slice(&0u64.to_be_bytes());
    v.extend_from_slice(extras);
    v.extend_from_slice(key);
    v.extend_from_slice(value);
    v
}

type Packet = (u8, u16, u32, Vec<u8>, Vec<u8>, Vec<u8>);

/// Response packets as (opcode, status, opaque, extras, key, value); cas left out.
fn packets(mut buf: &[u8]) -> Vec<Packet> {
    let mut out = Vec::new();
    while buf.len() >= 24 {
        assert_eq!(buf[0], 0x81);
        let key_len = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
        let extras_len = usize::from(buf[4]);
        let status = u16::from_be_bytes([buf[6], buf[7]]);
        let body = u32::from_be_bytes(buf[8..12].try_into().unwrap()) as usize;
        let opaque = u32::from_be_bytes(buf[12..16].try_into().unwrap());
        let b = &buf[24..24 + body];
        out.push((
            buf[1],
            status,
            opaque,
            b[..extras_len].to_vec(),
            b[extras_len..extras_len + key_len].to_vec(),
            b[extras_len + key_len..].to_vec(),
        ));
        buf = &buf[24 + body..];
    }
    assert!(buf.is_empty());
    out
}

#[test]
fn binary_requests_through_the_executor() {
    let set_extras = [0, 0, 0, 7, 0, 0, 0, 0];
    let arith = |delta: u64, initial: u64, exptime: u32| {
        let mut e = delta.to_be_bytes().to_vec();
        e.extend_from_slice(&initial.to_be_bytes());
        e.extend_from_slice(&exptime.to_be_bytes());
        e
    };
    let ok = |op, opaque, extras: &[u8], key: &[u8], value: &[u8]| -> Packet {
        (op, 0, opaque, extras.to_vec(), key.to_vec(), value.to_vec())
    };
    let err =
        |op, status, opaque, text: &[u8]| -> Packet { (op, status, opaque, vec![], vec![], text.to_vec()) };
    let noop = frame(0x0a, b"", &[], b"", 99);
    let table: Vec<(Vec<u8>, Vec<Packet>)> = vec![
        (
            [
                frame(0x01, b"k", &set_extras, b"v", 1),
                frame(0x00, b"k", &[], b"", 2),
                frame(0x0c, b"k", &[], b"", 3),
            ]
            .concat(),
            vec![
                ok(0x01, 1, &[], b"", b""),
                ok(0x00, 2, &[0, 0, 0, 7], b"", b"v"),
                ok(0x0c, 3, &[0, 0, 0, 7], b"k", b"v"),
            ],
        ),
        // quiet: a GetQ miss and a SetQ success say nothing
        (
            [
                frame(0x09, b"nope", &[], b"", 1),
                frame(0x11, b"k", &set_extras, b"v", 2),
                noop.clone(),
            ]
            .concat(),
            vec![ok(0x0a, 99, &[], b"", b"")],
        ),
        (
            [
                frame(0x00, b"nope", &[], b"", 1),
                frame(0x0c, b"nope", &[], b"", 2),
            ]
            .concat(),
            vec![
                err(0x00, 1, 1, b"Not found"),
                (0x0c, 1, 2, vec![], b"nope".to_vec(), vec![]),
            ],
        ),
        (
            [
                frame(0x02, b"k", &set_extras, b"v", 1),
                frame(0x02, b"k", &set_extras, b"w", 2),
                frame(0x03, b"x", &set_extras, b"w", 3),
            ]
            .concat(),
            vec![
                ok(0x02, 1, &[], b"", b""),
                err(0x02, 2, 2, b"Data exists for key."),
                err(0x03, 1, 3, b"Not found"),
            ],
        ),
        (
            [
                frame(0x05, b"n", &arith(1, 40, 0), b"", 1),
                frame(0x05, b"n", &arith(2, 0, 0), b"", 2),
                frame(0x06, b"n", &arith(50, 0, 0), b"", 3),
                frame(0x05, b"m", &arith(1, 0, u32::MAX), b"", 4),
            ]
            .concat(),
            vec![
                ok(0x05, 1, &[], b"", &40u64.to_be_bytes()),
                ok(0x05, 2, &[], b"", &42u64.to_be_bytes()),
                ok(0x06, 3, &[], b"", &0u64.to_be_bytes()),
                err(0x05, 1, 4, b"Not found"),
            ],
        ),
        (
            [
                frame(0x01, b"k", &set_extras, b"v", 1),
                frame(0x04, b"k", &[], b"", 2),
                frame(0x04, b"k", &[], b"", 3),
            ]
            .concat(),
            vec![
                ok(0x01, 1, &[], b"", b""),
                ok(0x04, 2, &[], b"", b""),
                err(0x04, 1, 3, b"Not found"),
            ],
        ),
        (
            [
                frame(0x01, b"k", &set_extras, b"v", 1),
                frame(0x1c, b"k", &[0, 0, 0, 9], b"", 2),
                frame(0x1d, b"k", &[0, 0, 0, 9], b"", 3),
            ]
            .concat(),
            vec![
                ok(0x01, 1, &[], b"", b""),
                ok(0x1c, 2, &[0, 0, 0, 7], b"", b""),
                ok(0x1d, 3, &[0, 0, 0, 7], b"", b"v"),
            ],
        ),
        (
            frame(0x0b, b"", &[], b"", 5),
            vec![ok(0x0b, 5, &[], b"", b"1.6.18")],
        ),
        (
            [frame(0x1b, b"", &[], b"", 6), noop.clone()].concat(),
            vec![
                err(0x1b, 0x81, 6, b"Unknown command"),
                ok(0x0a, 99, &[], b"", b""),
            ],
        ),
        (
            [
                frame(0x10, b"sizes_disable", &[], b"", 7),
                frame(0x10, b"reset", &[], b"", 8),
                frame(0x10, b"conns", &[], b"", 9),
            ]
            .concat(),
            vec![
                ok(0x10, 7, &[], b"sizes_status", b"disabled"),
                ok(0x10, 8, &[], b"", b""),
                err(0x10, 1, 9, b"Not found"),
            ],
        ),
        (
            [frame(0x08, b"", &[], b"", 1), frame(0x18, b"", &[], b"", 2)].concat(),
            vec![ok(0x08, 1, &[], b"", b"")],
        ),
    ];
    for (i, (input, expected)) in table.into_iter().enumerate() {
        let s = server(&[]);
        let (out, _) = s.exchange(Wire::Binary, &input);
        assert_eq!(packets(&out), expected, "case {i}");
    }
}

#[test]
fn binary_quit_closes_and_stats_are_rows() {
    let s = server(&[]);
    let (out, closed) = s.exchange(Wire::Binary, &frame(0x07, b"", &[], b"", 3));
    assert!(closed);
    assert_eq!(packets(&out), vec![(0x07, 0, 3, vec![], vec![], vec![])]);
    // the general stats: the same names as the text listing, in order, then the empty packet
    let (out, _) = s.exchange(Wire::Binary, &frame(0x10, b"", &[], b"", 4));
    let names: Vec<Vec<u8>> = packets(&out).into_iter().map(|p| p.4).collect();
    let text = s.text("stats\r\n");
    let mut text_names: Vec<Vec<u8>> = text
        .lines()
        .filter_map(|l| l.strip_prefix("STAT "))
        .map(|l| l.split(' ').next().unwrap().as_bytes().to_vec())
        .collect();
    text_names.push(Vec::new());
    assert_eq!(names, text_names);
}

#[test]
fn items_are_shared_between_protocols() {
    let s = server(&[]);
    let (out, _) = s.exchange(
        Wire::Binary,
        &frame(0x01, b"shared", &[0, 0, 0, 3, 0, 0, 0, 0], b"from-binary", 1),
    );
    assert_eq!(packets(&out)[0].1, 0);
    assert_eq!(
        s.text("mg shared v f\r\nms shared 9 F4\r\nfrom-meta\r\n"),
        "VA 11 f3\r\nfrom-binary\r\nHD\r\n"
    );
    let (out, _) = s.exchange(Wire::Binary, &frame(0x0c, b"shared", &[], b"", 2));
    assert_eq!(
        packets(&out),
        vec![(
            0x0c,
            0,
            2,
            vec![0, 0, 0, 4],
            b"shared".to_vec(),
            b"from-meta".to_vec()
        )]
    );
}

/// A multi-get given no room pauses after each key and, decoded again with the count of
/// keys answered, resumes with the next: the pieces add up to the unpaused reply.
#[test]
fn a_paused_multiget_resumes_where_it_stopped() {
    let s = server(&[]);
    s.text("set a 0 0 1\r\nA\r\nset b 0 0 2\r\nBB\r\nset c 0 0 3\r\nCCC\r\n");
    let request = b"get a missing b c\r\n";
    let whole = s.text("get a missing b c\r\n");
    let mut out = Vec::new();
    let mut stacked = false;
    let mut resume = 0;
    let mut turns = 0;
    loop {
        turns += 1;
        let lent = Lent {
            out: &mut out,
            session: &mut crate::auth::Session::default(),
            rest: &mut None,
            stacked: &mut stacked,
        };
        match text::step(
            request,
            &s.ctx,
            &s.counters,
            lent,
            Turn {
                resume,
                room: 0,
                ..TURN
            },
        ) {
            Step::Paused(done) => {
                assert!(done > resume);
                resume = done;
            }
            Step::Done { consumed, .. } => {
                assert_eq!(consumed, request.len());
                break;
            }
            Step::Incomplete => panic!("complete request"),
        }
    }
    assert_eq!(String::from_utf8(out).unwrap(), whole);
    // Paused after a and after b; a miss writes nothing, so it never fills the reply.
    assert_eq!(turns, 3);
}

/// A value larger than a piece goes out a piece per turn (text, meta and binary), and the
/// replies are byte for byte those of an unbounded copy; a value replaced between two
/// pieces stops the reply (`Torn`).
#[test]
fn a_large_value_is_written_in_pieces() {
    let s = server(&["-m", "16", "-I", "2m"]);
    let value: Vec<u8> = (0..PIECE * 3 + 17).map(|i| (i % 251) as u8).collect();
    let set = [
        format!("set big 3 0 {}\r\n", value.len()).as_bytes(),
        &value,
        b"\r\n",
    ]
    .concat();
    assert_eq!(s.exchange(Wire::Text, &set).0, b"STORED\r\n");
    let head = format!("VALUE big 3 {}\r\n", value.len());
    // With unbounded room a value is copied whole; the pieces need a backed-up output.
    let (out, _) = s.exchange_with_room(Wire::Text, b"get big big\r\n", 0);
    let one = [head.as_bytes(), &value, b"\r\n"].concat();
    assert_eq!(out, [&one[..], &one, b"END\r\n"].concat());
    let (out, _) = s.exchange_with_room(Wire::Text, b"mg big v\r\n", 0);
    let head_end = out.windows(2).position(|w| w == b"\r\n").unwrap() + 2;
    assert!(out.starts_with(format!("VA {}", value.len()).as_bytes()));
    assert_eq!(&out[head_end..], [&value[..], b"\r\n"].concat().as_slice());
    let mut get = vec![0x80, 0x00, 0, 3, 0, 0, 0, 0, 0, 0, 0, 3];
    get.resize(24, 0);
    get.extend_from_slice(b"big");
    let (out, _) = s.exchange_with_room(Wire::Binary, &get, 0);
    assert_eq!(out.len(), 24 + 4 + value.len());
    assert_eq!(&out[28..], &value[..]);

    // Torn: the item is replaced after the first piece.
    let mut out = Vec::new();
    let mut rest = None;
    let lent = Lent {
        out: &mut out,
        session: &mut crate::auth::Session::default(),
        rest: &mut rest,
        stacked: &mut false,
    };
    let step = text::step(
        b"get big\r\n",
        &s.ctx,
        &s.counters,
        lent,
        Turn { room: 0, ..TURN },
    );
    assert!(matches!(step, Step::Paused(1)));
    assert!(rest.is_some());
    s.text("set big 0 0 1\r\nx\r\n");
    assert_eq!(continue_value(&mut rest, &s.ctx, &mut out, usize::MAX), Err(Torn));
    assert!(rest.is_none());
}
