//! Incremental reply parsers for the text and binary protocols.
//!
//! Each request in flight is a [`Pending`] that says which reply it expects. [`parse`] consumes
//! whole sub-replies (one `VALUE` block, one binary frame) from the front of the read buffer and
//! accumulates hits and errors in the `Pending`, so a large multi-get reply arriving in many
//! reads is parsed once, not again from its start on every read. Odd replies never panic: a
//! reply the request allows (a miss, `SERVER_ERROR`, a bad status) is counted; a reply that
//! breaks the framing (`Desync`) makes the caller drop and reopen the connection.

use crate::workload::{
    Workload, OP_GETK, OP_GETKQ, OP_NOOP, OP_SET, OP_SETQ, RES_MAGIC, STATUS_KEY_NOT_FOUND,
};
use std::time::Instant;

/// Longest text line accepted before the reply is declared broken.
const MAX_LINE: usize = 8 * 1024;
/// Largest single reply frame accepted (text value block or binary body).
pub const MAX_FRAME: usize = 128 << 20;

/// The reply a request waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Text get of `keys` keys: `VALUE` blocks then `END`. With `quiet`, error lines before the
    /// `END` are counted and skipped (they answer earlier `noreply` sets of the same batch).
    TextGet {
        /// Keys asked for.
        keys: u32,
        /// Tolerate stray error lines (noreply batch).
        quiet: bool,
    },
    /// Text storage command: `STORED` (anything else is an error).
    TextStore,
    /// Binary GetK with this opaque.
    BinGet {
        /// Opaque sent.
        opaque: u32,
    },
    /// Binary Set with this opaque.
    BinStore {
        /// Opaque sent.
        opaque: u32,
    },
    /// Quiet binary batch (GetKQ... or SetQ...) closed by a Noop with this opaque.
    BinBatch {
        /// Keys asked for by GetKQ (0 for a SetQ batch).
        keys: u32,
        /// Opaque of the closing Noop.
        noop_opaque: u32,
    },
}

/// What a request was, for the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A get or multi-get.
    Get,
    /// One set.
    Set,
    /// A preload batch of `n` noreply sets plus its closing sync.
    SetBatch(u32),
}

/// A request in flight.
#[derive(Debug, Clone)]
pub struct Pending {
    /// Reply expected.
    pub expect: Expect,
    /// What the request was.
    pub kind: Kind,
    /// When it was queued for sending.
    pub sent: Instant,
    /// Hits seen so far.
    pub hits: u32,
    /// Errors seen so far.
    pub errors: u32,
}

impl Pending {
    /// A new request in flight.
    pub fn new(expect: Expect, kind: Kind, sent: Instant) -> Self {
        Pending {
            expect,
            kind,
            sent,
            hits: 0,
            errors: 0,
        }
    }
}

/// Final tally of one reply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Keys found.
    pub hits: u32,
    /// Keys not found.
    pub misses: u32,
    /// Errors (error replies, bad keys, failed stores).
    pub errors: u32,
}

/// Result of one parse step.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// More bytes are needed.
    Incomplete,
    /// The reply is complete.
    Done(Tally),
    /// The byte stream no longer matches the requests: the connection must be reset.
    Desync(&'static str),
}

/// Parses as much of `p`'s reply as `buf` holds, adding the bytes consumed to `*consumed`.
pub fn parse(p: &mut Pending, buf: &[u8], consumed: &mut usize, wl: &Workload) -> Step {
    match p.expect {
        Expect::TextGet { keys, quiet } => text_get(p, keys, quiet, buf, consumed, wl),
        Expect::TextStore => text_store(buf, consumed),
        Expect::BinGet { .. } | Expect::BinStore { .. } | Expect::BinBatch { .. } => {
            binary(p, buf, consumed, wl)
        }
    }
}

/// Finds the next CRLF-terminated line: `Ok(Some((line, len_with_crlf)))`.
fn line(buf: &[u8]) -> Result<Option<(&[u8], usize)>, &'static str> {
    match buf.iter().position(|&b| b == b'\n') {
        Some(nl) if nl > 0 && buf[nl - 1] == b'\r' => Ok(Some((&buf[..nl - 1], nl + 1))),
        Some(_) => Err("text line not terminated by CRLF"),
        None if buf.len() > MAX_LINE => Err("text line too long"),
        None => Ok(None),
    }
}

fn is_error_line(l: &[u8]) -> bool {
    l == b"ERROR"
        || l.starts_with(b"ERROR ")
        || l.starts_with(b"CLIENT_ERROR")
        || l.starts_with(b"SERVER_ERROR")
}

fn parse_usize(t: &[u8]) -> Option<usize> {
    if t.is_empty() || t.len() > 19 || !t.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(t.iter().fold(0usize, |n, &d| n * 10 + usize::from(d - b'0')))
}

fn finish_get(p: &Pending, keys: u32) -> Step {
    let hits = p.hits.min(keys);
    Step::Done(Tally {
        hits,
        misses: keys - hits,
        errors: p.errors + (p.hits - hits),
    })
}

fn text_get(
    p: &mut Pending,
    keys: u32,
    quiet: bool,
    buf: &[u8],
    consumed: &mut usize,
    wl: &Workload,
) -> Step {
    loop {
        let rest = &buf[*consumed..];
        let (l, llen) = match line(rest) {
            Ok(Some(x)) => x,
            Ok(None) => return Step::Incomplete,
            Err(e) => return Step::Desync(e),
        };
        if let Some(tail) = l.strip_prefix(b"VALUE ") {
            let mut tok = tail.split(|&b| b == b' ');
            let key = tok.next().unwrap_or_default();
            let _flags = tok.next();
            let Some(n) = tok.next().and_then(parse_usize) else {
                return Step::Desync("malformed VALUE line");
            };
            if n > MAX_FRAME {
                return Step::Desync("VALUE larger than the frame limit");
            }
            let total = llen + n + 2;
            if rest.len() < total {
                return Step::Incomplete;
            }
            if &rest[llen + n..total] != b"\r\n" {
                return Step::Desync("value data not followed by CRLF");
            }
            if wl.valid_key(key) {
                p.hits += 1;
            } else {
                p.errors += 1;
            }
            *consumed += total;
        } else if l == b"END" {
            *consumed += llen;
            return finish_get(p, keys);
        } else if is_error_line(l) {
            *consumed += llen;
            p.errors += 1;
            if !quiet {
                return Step::Done(Tally {
                    errors: p.errors,
                    ..Tally::default()
                });
            }
        } else {
            return Step::Desync("unexpected line in get reply");
        }
    }
}

fn text_store(buf: &[u8], consumed: &mut usize) -> Step {
    let (l, llen) = match line(buf) {
        Ok(Some(x)) => x,
        Ok(None) => return Step::Incomplete,
        Err(e) => return Step::Desync(e),
    };
    let errors = if l == b"STORED" {
        0
    } else if l == b"NOT_STORED" || l == b"EXISTS" || l == b"NOT_FOUND" || is_error_line(l) {
        1
    } else {
        return Step::Desync("unexpected line in set reply");
    };
    *consumed += llen;
    Step::Done(Tally {
        errors,
        ..Tally::default()
    })
}

fn binary(p: &mut Pending, buf: &[u8], consumed: &mut usize, wl: &Workload) -> Step {
    loop {
        let rest = &buf[*consumed..];
        // Check the magic first: a server answering in text must not leave us waiting for 24
        // bytes that never come.
        if rest.first().is_some_and(|&m| m != RES_MAGIC) {
            return Step::Desync("bad binary response magic");
        }
        if rest.len() < 24 {
            return Step::Incomplete;
        }
        let opcode = rest[1];
        let klen = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
        let extlen = usize::from(rest[4]);
        let status = u16::from_be_bytes([rest[6], rest[7]]);
        let body = u32::from_be_bytes([rest[8], rest[9], rest[10], rest[11]]) as usize;
        let opaque = u32::from_be_bytes([rest[12], rest[13], rest[14], rest[15]]);
        if body > MAX_FRAME || klen + extlen > body {
            return Step::Desync("bad binary body length");
        }
        if rest.len() < 24 + body {
            return Step::Incomplete;
        }
        let key = &rest[24 + extlen..24 + extlen + klen];
        *consumed += 24 + body;
        match p.expect {
            Expect::BinGet { opaque: o } => {
                if opaque != o || opcode != OP_GETK {
                    return Step::Desync("binary get reply out of order");
                }
                let mut t = Tally::default();
                match status {
                    0 if wl.valid_key(key) => t.hits = 1,
                    0 => t.errors = 1,
                    STATUS_KEY_NOT_FOUND => t.misses = 1,
                    _ => t.errors = 1,
                }
                return Step::Done(t);
            }
            Expect::BinStore { opaque: o } => {
                if opaque != o || opcode != OP_SET {
                    return Step::Desync("binary set reply out of order");
                }
                return Step::Done(Tally {
                    errors: u32::from(status != 0),
                    ..Tally::default()
                });
            }
            Expect::BinBatch { keys, noop_opaque } => match opcode {
                OP_NOOP if opaque == noop_opaque => return finish_get(p, keys),
                OP_NOOP => return Step::Desync("binary noop reply out of order"),
                OP_GETKQ if status == 0 && wl.valid_key(key) => p.hits += 1,
                OP_GETKQ if status == STATUS_KEY_NOT_FOUND => {}
                OP_SETQ if status == 0 => {}
                _ => p.errors += 1,
            },
            Expect::TextGet { .. } | Expect::TextStore => unreachable!("text expectation"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use clap::Parser;

    fn wl() -> Workload {
        let mut cfg = Config::parse_from(["loadgen", "--keys", "100", "--key-prefix", "k"]);
        cfg.validate().unwrap();
        Workload::new(&cfg)
    }

    fn run(expect: Expect, input: &[u8]) -> (Step, usize) {
        let w = wl();
        let mut p = Pending::new(expect, Kind::Get, Instant::now());
        let mut consumed = 0;
        let step = parse(&mut p, input, &mut consumed, &w);
        (step, consumed)
    }

    #[test]
    fn text_multiget_counts_hits_and_misses() {
        let input = b"VALUE k01 0 3\r\nabc\r\nVALUE k02 5 2 99\r\nxy\r\nEND\r\nrest";
        let (s, c) = run(
            Expect::TextGet {
                keys: 3,
                quiet: false,
            },
            input,
        );
        assert_eq!(
            s,
            Step::Done(Tally {
                hits: 2,
                misses: 1,
                errors: 0
            })
        );
        assert_eq!(c, input.len() - 4);
    }

    #[test]
    fn text_get_incremental() {
        let w = wl();
        let mut p = Pending::new(
            Expect::TextGet {
                keys: 2,
                quiet: false,
            },
            Kind::Get,
            Instant::now(),
        );
        let full = b"VALUE k01 0 3\r\nabc\r\nVALUE k02 0 3\r\nabc\r\nEND\r\n";
        let mut consumed = 0;
        assert_eq!(parse(&mut p, &full[..25], &mut consumed, &w), Step::Incomplete);
        assert_eq!(consumed, 20);
        let mut c2 = 0;
        assert_eq!(
            parse(&mut p, &full[consumed..], &mut c2, &w),
            Step::Done(Tally {
                hits: 2,
                misses: 0,
                errors: 0
            })
        );
    }

    #[test]
    fn text_odd_replies() {
        assert_eq!(
            run(
                Expect::TextGet {
                    keys: 1,
                    quiet: false
                },
                b"VALUE k01 0 3\r\nab"
            )
            .0,
            Step::Incomplete
        );
        assert!(matches!(
            run(
                Expect::TextGet {
                    keys: 1,
                    quiet: false
                },
                b"HELLO\r\n"
            )
            .0,
            Step::Desync(_)
        ));
        assert!(matches!(
            run(
                Expect::TextGet {
                    keys: 1,
                    quiet: false
                },
                b"VALUE k01 0 x\r\n"
            )
            .0,
            Step::Desync(_)
        ));
        assert!(matches!(
            run(
                Expect::TextGet {
                    keys: 1,
                    quiet: false
                },
                b"VALUE k01 0 1\r\nabc\r\n"
            )
            .0,
            Step::Desync(_)
        ));
        assert!(matches!(
            run(
                Expect::TextGet {
                    keys: 1,
                    quiet: false
                },
                b"END\n"
            )
            .0,
            Step::Desync(_)
        ));
        assert_eq!(
            run(
                Expect::TextGet {
                    keys: 1,
                    quiet: false
                },
                b"SERVER_ERROR busy\r\n"
            )
            .0,
            Step::Done(Tally {
                hits: 0,
                misses: 0,
                errors: 1
            })
        );
        assert_eq!(
            run(
                Expect::TextGet { keys: 1, quiet: true },
                b"SERVER_ERROR oom\r\nEND\r\n"
            )
            .0,
            Step::Done(Tally {
                hits: 0,
                misses: 1,
                errors: 1
            })
        );
        // A key the workload never asks for is an error, not a hit.
        assert_eq!(
            run(
                Expect::TextGet {
                    keys: 1,
                    quiet: false
                },
                b"VALUE zz 0 1\r\na\r\nEND\r\n"
            )
            .0,
            Step::Done(Tally {
                hits: 0,
                misses: 1,
                errors: 1
            })
        );
        assert_eq!(
            run(Expect::TextStore, b"STORED\r\n").0,
            Step::Done(Tally::default())
        );
        assert_eq!(
            run(Expect::TextStore, b"NOT_STORED\r\n").0,
            Step::Done(Tally {
                errors: 1,
                ..Tally::default()
            })
        );
        assert!(matches!(run(Expect::TextStore, b"VALUE\r\n").0, Step::Desync(_)));
        assert!(matches!(
            run(Expect::TextStore, &[b'x'; MAX_LINE + 1]).0,
            Step::Desync(_)
        ));
    }

    fn frame(opcode: u8, status: u16, opaque: u32, extras: &[u8], key: &[u8], value: &[u8]) -> Vec<u8> {
        let mut b = vec![RES_MAGIC, opcode];
        b.extend_from_slice(&(key.len() as u16).to_be_bytes());
        b.push(extras.len() as u8);
        b.push(0);
        b.extend_from_slice(&status.to_be_bytes());
        b.extend_from_slice(&((extras.len() + key.len() + value.len()) as u32).to_be_bytes());
        b.extend_from_slice(&opaque.to_be_bytes());
        b.extend_from_slice(&[0; 8]);
        b.extend_from_slice(extras);
        b.extend_from_slice(key);
        b.extend_from_slice(value);
        b
    }

    #[test]
    fn binary_get_and_set() {
        let hit = frame(OP_GETK, 0, 7, &[0; 4], b"k05", b"val");
        assert_eq!(
            run(Expect::BinGet { opaque: 7 }, &hit).0,
            Step::Done(Tally {
                hits: 1,
                ..Tally::default()
            })
        );
        assert_eq!(run(Expect::BinGet { opaque: 7 }, &hit[..30]).0, Step::Incomplete);
        assert!(matches!(
            run(Expect::BinGet { opaque: 8 }, &hit).0,
            Step::Desync(_)
        ));
        let miss = frame(OP_GETK, 1, 7, &[], b"k05", b"Not found");
        assert_eq!(
            run(Expect::BinGet { opaque: 7 }, &miss).0,
            Step::Done(Tally {
                misses: 1,
                ..Tally::default()
            })
        );
        let stored = frame(OP_SET, 0, 3, &[], b"", b"");
        assert_eq!(
            run(Expect::BinStore { opaque: 3 }, &stored).0,
            Step::Done(Tally::default())
        );
        let oom = frame(OP_SET, 0x82, 3, &[], b"", b"Out of memory");
        assert_eq!(
            run(Expect::BinStore { opaque: 3 }, &oom).0,
            Step::Done(Tally {
                errors: 1,
                ..Tally::default()
            })
        );
        assert!(matches!(
            run(Expect::BinGet { opaque: 7 }, b"ERROR\r\n").0,
            Step::Desync(_)
        ));
        let mut bad = hit.clone();
        bad[8..12].copy_from_slice(&1u32.to_be_bytes()); // body shorter than key + extras
        assert!(matches!(
            run(Expect::BinGet { opaque: 7 }, &bad).0,
            Step::Desync(_)
        ));
    }

    #[test]
    fn binary_quiet_batch() {
        let mut input = frame(OP_GETKQ, 0, 1, &[0; 4], b"k01", b"a");
        input.extend(frame(OP_GETKQ, 0, 3, &[0; 4], b"k03", b"b"));
        input.extend(frame(OP_SETQ, 0x82, 9, &[], b"", b"oom"));
        input.extend(frame(OP_NOOP, 0, 4, &[], b"", b""));
        let (s, c) = run(
            Expect::BinBatch {
                keys: 3,
                noop_opaque: 4,
            },
            &input,
        );
        assert_eq!(
            s,
            Step::Done(Tally {
                hits: 2,
                misses: 1,
                errors: 1
            })
        );
        assert_eq!(c, input.len());
        assert_eq!(
            run(
                Expect::BinBatch {
                    keys: 3,
                    noop_opaque: 4
                },
                &input[..50]
            )
            .0,
            Step::Incomplete
        );
        assert!(matches!(
            run(
                Expect::BinBatch {
                    keys: 3,
                    noop_opaque: 5
                },
                &input
            )
            .0,
            Step::Desync(_)
        ));
    }
}
