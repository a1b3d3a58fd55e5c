//! memcached's administrative text commands: `slabs reassign|automove`, `lru_crawler ...`,
//! `lru tune|mode|temp_ttl` and `watch`, decoded into [`AdminRequest`]s.
//!
//! What memcached 1.6.18 does with their shapes, as observed on it:
//! - `slabs reassign <src> <dst>` needs exactly those two arguments (anything else, a
//!   trailing `noreply` included, is `ERROR`) and takes no `noreply`. Whether slab
//!   reassignment is enabled is checked before the numbers, which are C `strtol`s
//!   truncated to 32 bits (`4294967297` is 1).
//! - `slabs automove <0|1|2>` and `slabs automove ratio <float>` take `noreply`; extra
//!   words are ignored; a level other than 0, 1, 2 is `ERROR`, a non-number (or a
//!   negative one) `CLIENT_ERROR bad command line format`; a bad ratio `ERROR`.
//! - `lru_crawler` takes no `noreply`: `crawl`, `metadump`, `tocrawl`, `sleep` need exactly
//!   one argument, `enable` and `disable` none; any other shape is `ERROR`. A class list
//!   is `all`, `hash` (metadump only) or ids 1..=63 separated by commas, empty items
//!   skipped (`1,,2,` is 1 and 2; `,` names no class: `NOTSTARTED`). The checks run in
//!   memcached's order: crawler enabled, then (metadump) dumping allowed and no replies
//!   queued, then the class list; so a bad list is carried in the request as an error
//!   for the server to report after its own checks.
//! - `refresh_certs` takes `noreply` (which silences its `OK` only) and ignores other words.
//! - `lru tune <hot pct> <warm pct> <hot factor> <warm factor>`, `lru mode flat|segmented`
//!   and `lru temp_ttl <secs>` take `noreply`; their failures are `ERROR` lines. `mode`
//!   and `temp_ttl` exist only while the LRU maintainer runs (otherwise `ERROR`).
//! - `watch [stream ...]` names log streams (`fetchers` alone when none is named). The
//!   server checks, in this order: watching enabled (`-W`), no replies queued, then the
//!   names, so an unknown name is carried in the request for the server to report (`ERROR`)
//!   after its own checks. A trailing `noreply` silences the error replies only.

use super::{Decoded, Gate, Line, Request, MAX_SLAB_CLASSES};
use crate::error::{AdminError, ClientError, ProtoError};
use crate::token::{parse_f64, parse_i32_truncating, parse_u32_truncating, Tokens};

/// The longest `lru_crawler sleep`, in microseconds.
pub const MAX_CRAWLER_SLEEP_US: u32 = 1_000_000;

/// A decoded administrative command (see the module docs for what each one answers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminRequest {
    /// `slabs reassign <src> <dst>`: move a page from class `src` (-1: any) to class `dst`
    /// (0: the global page pool). On a server without slab reassignment reply
    /// [`ClientError::SlabReassignDisabled`]; otherwise `OK` or an [`AdminError`]
    /// `Reassign*` line.
    SlabsReassign {
        /// The source class, as sent (truncated to 32 bits).
        src: i32,
        /// The destination class, as sent.
        dst: i32,
    },
    /// `slabs automove 0|1|2`: reply `OK`.
    SlabsAutomove {
        /// 0, 1 or 2.
        mode: u8,
    },
    /// `slabs automove ratio <float>`: reply `OK` (any value is taken).
    SlabsAutomoveRatio {
        /// The new `slab_automove_ratio`.
        ratio: Double,
    },
    /// `lru_crawler crawl <classes>`: reply `OK`, or [`ClientError::LruCrawlerDisabled`],
    /// or the class list's error, or an [`AdminError`] `Crawler*` line.
    CrawlerCrawl {
        /// The classes, or why the list is invalid.
        classes: Result<ClassSelection, AdminError>,
    },
    /// `lru_crawler metadump <classes>`: one line per live item then `END`, or (in this
    /// order) [`ClientError::LruCrawlerDisabled`], [`AdminError::MetadumpNotAllowed`],
    /// [`AdminError::MetadumpPipelined`], the class list's error, `Crawler*` lines.
    CrawlerMetadump {
        /// The classes, or why the list is invalid.
        classes: Result<ClassSelection, AdminError>,
    },
    /// `lru_crawler tocrawl <n>`: items per class a crawl looks at (0 = all); reply `OK`.
    CrawlerTocrawl {
        /// The new limit.
        items: u32,
    },
    /// `lru_crawler sleep <us>`: pause between crawl slices, already at most
    /// [`MAX_CRAWLER_SLEEP_US`]; reply `OK`.
    CrawlerSleep {
        /// Microseconds.
        micros: u32,
    },
    /// `lru_crawler enable`: `OK`, or [`AdminError::CrawlerStartFailed`] if enabled already.
    CrawlerEnable,
    /// `lru_crawler disable`: always `OK`.
    CrawlerDisable,
    /// `lru tune ...`, already checked (percentages sum to at most 80, factors > 0 or NaN,
    /// as memcached's comparisons let NaN through); reply `OK`.
    LruTune(LruTuning),
    /// `lru mode flat|segmented`: `OK`, or `ERROR` when the LRU maintainer is off.
    LruMode {
        /// `segmented` (true) or `flat`.
        segmented: bool,
    },
    /// `lru temp_ttl <secs>`: a negative ttl turns the temporary LRU off, others turn it on
    /// with that ttl; `OK`, or `ERROR` when the LRU maintainer is off.
    LruTempTtl {
        /// The ttl as sent (truncated to 32 bits).
        ttl: i32,
    },
    /// `watch [streams]`: the connection becomes a log watcher. `None`: a word that names
    /// no stream (`ERROR`, after the server's own checks).
    Watch {
        /// The streams asked for.
        streams: Option<WatchStreams>,
    },
    /// `refresh_certs [noreply]`: reload the TLS certificates; reply `OK`, or the reason
    /// they could not be loaded (memcached sends that line even under `noreply`).
    RefreshCerts,
}

/// A set of memcached's log streams, as the bits memcached 1.6.18 gives them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct WatchStreams(pub u16);

impl WatchStreams {
    /// `sysevents`: background threads' events (memcached: crawler runs and slab moves;
    /// slabcached: slab moves).
    pub const SYSEVENTS: u16 = 1 << 1;
    /// `fetchers`: every item lookup.
    pub const FETCHERS: u16 = 1 << 2;
    /// `mutations`: every store.
    pub const MUTATIONS: u16 = 1 << 3;
    /// `connevents`: connections opened and closed.
    pub const CONNEVENTS: u16 = 1 << 5;
    /// `evictions`: items evicted to make room.
    pub const EVICTIONS: u16 = 1 << 6;
    /// `rawcmds`: raw text commands (memcached 1.6.18 never emits one).
    pub const RAWCMDS: u16 = 1 << 9;
    /// `proxyreqs`: proxy requests (no proxy here: nothing is emitted).
    pub const PROXYREQS: u16 = 1 << 10;
    /// `proxyevents`: proxy errors (nothing is emitted).
    pub const PROXYEVENTS: u16 = 1 << 11;
    /// `proxyuser`: proxy user logs (nothing is emitted).
    pub const PROXYUSER: u16 = 1 << 12;

    /// The stream a `watch` argument names.
    pub fn by_name(name: &[u8]) -> Option<u16> {
        Some(match name {
            b"rawcmds" => Self::RAWCMDS,
            b"evictions" => Self::EVICTIONS,
            b"fetchers" => Self::FETCHERS,
            b"mutations" => Self::MUTATIONS,
            b"sysevents" => Self::SYSEVENTS,
            b"connevents" => Self::CONNEVENTS,
            b"proxyreqs" => Self::PROXYREQS,
            b"proxyevents" => Self::PROXYEVENTS,
            b"proxyuser" => Self::PROXYUSER,
            _ => return None,
        })
    }

    /// Whether any of `streams` is in the set.
    pub fn has(self, streams: u16) -> bool {
        self.0 & streams != 0
    }
}

/// The four values of `lru tune`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LruTuning {
    /// `hot_lru_pct` as memcached stores it: the 32-bit value in a C `int`.
    pub hot_pct: i32,
    /// `warm_lru_pct`, likewise.
    pub warm_pct: i32,
    /// `hot_max_factor`.
    pub hot_factor: Double,
    /// `warm_max_factor`.
    pub warm_factor: Double,
}

/// An `f64` compared by its bits, so requests holding one can be `Eq` (NaN included).
#[derive(Debug, Clone, Copy)]
pub struct Double(pub f64);

impl PartialEq for Double {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

impl Eq for Double {}

/// Which classes an `lru_crawler crawl|metadump` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClassSelection {
    /// `all`.
    All,
    /// `hash`: memcached 1.6.18 walks the hash table instead of the LRUs (metadump only;
    /// `crawl hash` is refused with [`AdminError::CrawlerUnknownError`]).
    Hash,
    /// A list of class ids (possibly empty).
    Ids(ClassIds),
}

/// A set of slab class ids in 1..=63, held as a bit mask (decoding allocates nothing).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClassIds(u64);

impl ClassIds {
    /// No class named.
    pub fn is_empty(&self) -> bool {
        self.0 == 0
    }

    /// Whether `class` is in the set.
    pub fn contains(&self, class: usize) -> bool {
        class < 64 && self.0 & (1 << class) != 0
    }

    /// The ids in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        (1..64).filter(|&c| self.contains(c))
    }

    /// Classes 1..=`n` (at most 63 of them).
    pub fn first(n: usize) -> ClassIds {
        ClassIds((1..=n.min(63)).fold(0, |m, c| m | 1 << c))
    }

    /// The ids that are also in `other`.
    pub fn intersection(&self, other: ClassIds) -> ClassIds {
        ClassIds(self.0 & other.0)
    }

    /// Remove and return the smallest id.
    pub fn pop_first(&mut self) -> Option<usize> {
        let first = self.iter().next()?;
        self.0 &= !(1 << first);
        Some(first)
    }
}

/// memcached's class list: `all`, `hash`, or comma-separated ids, each a `strtoul`
/// truncated to 32 bits that must lie in 1..=63; empty items are skipped.
pub fn parse_class_list(tok: &[u8]) -> Result<ClassSelection, AdminError> {
    match tok {
        b"all" => Ok(ClassSelection::All),
        b"hash" => Ok(ClassSelection::Hash),
        _ => {
            let mut ids = 0u64;
            for item in tok.split(|&b| b == b',').filter(|i| !i.is_empty()) {
                match parse_u32_truncating(item) {
                    Some(id) if (1..MAX_SLAB_CLASSES).contains(&id) => ids |= 1 << id,
                    _ => return Err(AdminError::CrawlerBadClass),
                }
            }
            Ok(ClassSelection::Ids(ClassIds(ids)))
        }
    }
}

impl<'a> Line<'a, '_> {
    fn admin(&self, request: AdminRequest, noreply: bool) -> Decoded<'a> {
        self.ok(Request::Admin { request, noreply })
    }

    /// `slabs reassign|automove ...`.
    pub(super) fn slabs(&self, t: &Tokens<'a>) -> Decoded<'a> {
        if t.ntokens() == 5 && t.get(1) == b"reassign" {
            let (Some(src), Some(dst)) = (parse_i32_truncating(t.get(2)), parse_i32_truncating(t.get(3)))
            else {
                return self.ok(Request::Refused {
                    gate: Gate::SlabReassign,
                    error: ClientError::BadCommandLineFormat.into(),
                    noreply: false,
                });
            };
            return self.admin(AdminRequest::SlabsReassign { src, dst }, false);
        }
        if t.ntokens() < 4 || t.get(1) != b"automove" {
            return self.err(ProtoError::Error, false);
        }
        let noreply = t.ends_with_noreply();
        if t.get(2) == b"ratio" {
            return match parse_f64(t.get(3)) {
                Some(ratio) if t.ntokens() >= 5 => {
                    self.admin(AdminRequest::SlabsAutomoveRatio { ratio: Double(ratio) }, noreply)
                }
                _ => self.err(ProtoError::Error, noreply),
            };
        }
        match parse_u32_truncating(t.get(2)) {
            None => self.bad_format(noreply),
            Some(mode @ 0..=2) => self.admin(AdminRequest::SlabsAutomove { mode: mode as u8 }, noreply),
            Some(_) => self.err(ProtoError::Error, noreply),
        }
    }

    /// `refresh_certs`, any words after it ignored but a final `noreply`.
    pub(super) fn refresh_certs(&self, t: &Tokens<'a>) -> Decoded<'a> {
        self.admin(AdminRequest::RefreshCerts, t.ends_with_noreply())
    }

    /// `lru_crawler ...` (never `noreply`).
    pub(super) fn lru_crawler(&self, t: &Tokens<'a>) -> Decoded<'a> {
        let request = match (t.ntokens(), t.get(1)) {
            (4, b"crawl") => AdminRequest::CrawlerCrawl {
                classes: parse_class_list(t.get(2)),
            },
            (4, b"metadump") => AdminRequest::CrawlerMetadump {
                classes: parse_class_list(t.get(2)),
            },
            (4, b"tocrawl") => match parse_u32_truncating(t.get(2)) {
                Some(items) => AdminRequest::CrawlerTocrawl { items },
                None => return self.bad_format(false),
            },
            (4, b"sleep") => match parse_u32_truncating(t.get(2)) {
                Some(micros) if micros <= MAX_CRAWLER_SLEEP_US => AdminRequest::CrawlerSleep { micros },
                Some(_) => return self.err(ClientError::CrawlerSleepTooLong, false),
                None => return self.bad_format(false),
            },
            (3, b"enable") => AdminRequest::CrawlerEnable,
            (3, b"disable") => AdminRequest::CrawlerDisable,
            _ => return self.err(ProtoError::Error, false),
        };
        self.admin(request, false)
    }

    /// `watch [streams]` (see the module docs).
    pub(super) fn watch(&self, t: &Tokens<'a>) -> Decoded<'a> {
        let noreply = t.ends_with_noreply();
        let streams = if t.len() < 2 {
            Some(WatchStreams(WatchStreams::FETCHERS))
        } else {
            t.rest(1)
                .iter()
                .try_fold(0, |set, word| Some(set | WatchStreams::by_name(word)?))
                .map(WatchStreams)
        };
        self.admin(AdminRequest::Watch { streams }, noreply)
    }

    /// `lru tune|mode|temp_ttl ...`.
    pub(super) fn lru(&self, t: &Tokens<'a>) -> Decoded<'a> {
        if t.ntokens() < 3 {
            return self.err(ProtoError::Error, false);
        }
        let noreply = t.ends_with_noreply();
        let error = |e: ProtoError| self.err(e, noreply);
        match t.get(1) {
            b"tune" if t.ntokens() >= 7 => {
                let (Some(hot), Some(warm), Some(hot_factor), Some(warm_factor)) = (
                    parse_u32_truncating(t.get(2)),
                    parse_u32_truncating(t.get(3)),
                    parse_f64(t.get(4)),
                    parse_f64(t.get(5)),
                ) else {
                    return error(ProtoError::Error);
                };
                if hot.wrapping_add(warm) > 80 {
                    return error(AdminError::LruPercentsTooHigh.into());
                }
                // `<= 0` as memcached writes it: NaN passes.
                if warm_factor <= 0.0 || hot_factor <= 0.0 {
                    return error(AdminError::LruFactorsNotPositive.into());
                }
                let tuning = LruTuning {
                    hot_pct: hot as i32,
                    warm_pct: warm as i32,
                    hot_factor: Double(hot_factor),
                    warm_factor: Double(warm_factor),
                };
                self.admin(AdminRequest::LruTune(tuning), noreply)
            }
            b"mode" if t.ntokens() >= 4 => match t.get(2) {
                b"flat" => self.admin(AdminRequest::LruMode { segmented: false }, noreply),
                b"segmented" => self.admin(AdminRequest::LruMode { segmented: true }, noreply),
                _ => error(ProtoError::Error),
            },
            b"temp_ttl" if t.ntokens() >= 4 => match parse_i32_truncating(t.get(2)) {
                Some(ttl) => self.admin(AdminRequest::LruTempTtl { ttl }, noreply),
                None => error(ProtoError::Error),
            },
            _ => error(ProtoError::Error),
        }
    }
}

#[cfg(test)]
mod tests {
    //! Every reply here was checked against memcached 1.6.18.
    use super::*;
    use crate::text::decode;
    use crate::Limits;

    fn dec(line: &[u8]) -> Decoded<'_> {
        decode(line, &Limits::default())
    }

    /// The request a whole line decodes to, with its noreply flag.
    fn admin(line: &[u8]) -> (AdminRequest, bool) {
        match dec(line) {
            Decoded::Request {
                request: Request::Admin { request, noreply },
                consumed,
            } => {
                assert_eq!(consumed, line.len(), "{:?}", String::from_utf8_lossy(line));
                (request, noreply)
            }
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(line)),
        }
    }

    #[test]
    fn refresh_certs_takes_noreply() {
        assert_eq!(admin(b"refresh_certs\r\n"), (AdminRequest::RefreshCerts, false));
        assert_eq!(
            admin(b"refresh_certs noreply\r\n"),
            (AdminRequest::RefreshCerts, true)
        );
        assert_eq!(
            admin(b"refresh_certs x y\r\n"),
            (AdminRequest::RefreshCerts, false)
        );
    }

    /// The error reply a line decodes to ("" when noreply suppresses it).
    fn reply(line: &[u8]) -> &'static [u8] {
        match dec(line) {
            d @ Decoded::Error { .. } => d.error_reply(),
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(line)),
        }
    }

    fn ids(list: &[usize]) -> ClassSelection {
        ClassSelection::Ids(ClassIds(list.iter().fold(0, |m, &c| m | 1 << c)))
    }

    #[test]
    fn slabs_reassign() {
        assert_eq!(
            admin(b"slabs reassign 1 2\r\n"),
            (AdminRequest::SlabsReassign { src: 1, dst: 2 }, false)
        );
        assert_eq!(
            admin(b"slabs reassign -1 0\r\n").0,
            AdminRequest::SlabsReassign { src: -1, dst: 0 }
        );
        // strtol truncated to 32 bits.
        assert_eq!(
            admin(b"slabs reassign 4294967297 2\r\n").0,
            AdminRequest::SlabsReassign { src: 1, dst: 2 }
        );
        for bad in [&b"slabs reassign x 2\r\n"[..], b"slabs reassign 1 y\r\n"] {
            assert_eq!(
                dec(bad),
                Decoded::Request {
                    request: Request::Refused {
                        gate: Gate::SlabReassign,
                        error: ClientError::BadCommandLineFormat.into(),
                        noreply: false,
                    },
                    consumed: bad.len(),
                }
            );
        }
        for shape in [
            &b"slabs\r\n"[..],
            b"slabs foo\r\n",
            b"slabs reassign 1\r\n",
            b"slabs reassign 1 2 3\r\n",
            b"slabs reassign 1 2 noreply\r\n",
            b"slabs automove\r\n",
        ] {
            assert_eq!(reply(shape), b"ERROR\r\n", "{:?}", String::from_utf8_lossy(shape));
        }
    }

    #[test]
    fn slabs_automove() {
        for (line, mode) in [
            (&b"slabs automove 0\r\n"[..], 0),
            (b"slabs automove 1\r\n", 1),
            (b"slabs automove 2\r\n", 2),
            (b"slabs automove 4294967296\r\n", 0),
            (b"slabs automove 1 extra junk\r\n", 1),
            (b"slabs automove 1 2\r\n", 1),
        ] {
            assert_eq!(admin(line), (AdminRequest::SlabsAutomove { mode }, false));
        }
        assert_eq!(
            admin(b"slabs automove 1 noreply\r\n"),
            (AdminRequest::SlabsAutomove { mode: 1 }, true)
        );
        assert_eq!(reply(b"slabs automove 3\r\n"), b"ERROR\r\n");
        assert_eq!(
            reply(b"slabs automove x\r\n"),
            b"CLIENT_ERROR bad command line format\r\n"
        );
        assert_eq!(
            reply(b"slabs automove -1\r\n"),
            b"CLIENT_ERROR bad command line format\r\n"
        );
        assert_eq!(reply(b"slabs automove x noreply\r\n"), b"");
        assert_eq!(reply(b"slabs automove 3 noreply\r\n"), b"");
        assert_eq!(
            admin(b"slabs automove ratio 0.5\r\n").0,
            AdminRequest::SlabsAutomoveRatio { ratio: Double(0.5) }
        );
        assert!(admin(b"slabs automove ratio 0.5 noreply\r\n").1);
        assert_eq!(reply(b"slabs automove ratio\r\n"), b"ERROR\r\n");
        assert_eq!(reply(b"slabs automove ratio x\r\n"), b"ERROR\r\n");
        assert_eq!(reply(b"slabs automove ratio noreply\r\n"), b"");
    }

    #[test]
    fn class_lists() {
        assert_eq!(parse_class_list(b"all"), Ok(ClassSelection::All));
        assert_eq!(parse_class_list(b"hash"), Ok(ClassSelection::Hash));
        assert_eq!(parse_class_list(b"1"), Ok(ids(&[1])));
        assert_eq!(parse_class_list(b"3,1,2,1"), Ok(ids(&[1, 2, 3])));
        assert_eq!(parse_class_list(b"1,"), Ok(ids(&[1])));
        assert_eq!(parse_class_list(b",1,,2"), Ok(ids(&[1, 2])));
        assert_eq!(parse_class_list(b"63"), Ok(ids(&[63])));
        assert_eq!(parse_class_list(b"+5"), Ok(ids(&[5])));
        assert_eq!(parse_class_list(b"4294967297"), Ok(ids(&[1])));
        assert_eq!(parse_class_list(b","), Ok(ids(&[])));
        for bad in [&b"0"[..], b"64", b"x", b"1,x", b"-1", b"ALL", b"1;2"] {
            assert_eq!(parse_class_list(bad), Err(AdminError::CrawlerBadClass));
        }
        let set = match parse_class_list(b"5,2,63") {
            Ok(ClassSelection::Ids(set)) => set,
            other => panic!("{other:?}"),
        };
        assert_eq!(set.iter().collect::<Vec<_>>(), vec![2, 5, 63]);
        assert!(!set.is_empty() && set.contains(5) && !set.contains(64));
        assert_eq!(
            set.intersection(ClassIds::first(5)).iter().collect::<Vec<_>>(),
            vec![2, 5]
        );
        assert_eq!(ClassIds::first(100).iter().count(), 63);
        let mut rest = set;
        assert_eq!(
            (rest.pop_first(), rest.pop_first(), rest.pop_first()),
            (Some(2), Some(5), Some(63))
        );
        assert!(rest.pop_first().is_none() && rest.is_empty());
    }

    #[test]
    fn lru_crawler() {
        assert_eq!(
            admin(b"lru_crawler crawl all\r\n"),
            (
                AdminRequest::CrawlerCrawl {
                    classes: Ok(ClassSelection::All)
                },
                false
            )
        );
        assert_eq!(
            admin(b"lru_crawler metadump 1,2\r\n").0,
            AdminRequest::CrawlerMetadump {
                classes: Ok(ids(&[1, 2]))
            }
        );
        assert_eq!(
            admin(b"lru_crawler metadump 0\r\n").0,
            AdminRequest::CrawlerMetadump {
                classes: Err(AdminError::CrawlerBadClass)
            }
        );
        assert_eq!(
            admin(b"lru_crawler tocrawl 4294967296\r\n").0,
            AdminRequest::CrawlerTocrawl { items: 0 }
        );
        assert_eq!(
            admin(b"lru_crawler sleep 1000000\r\n").0,
            AdminRequest::CrawlerSleep { micros: 1_000_000 }
        );
        assert_eq!(
            admin(b"lru_crawler sleep 4294967296\r\n").0,
            AdminRequest::CrawlerSleep { micros: 0 }
        );
        assert_eq!(admin(b"lru_crawler enable\r\n").0, AdminRequest::CrawlerEnable);
        assert_eq!(admin(b"lru_crawler disable\r\n").0, AdminRequest::CrawlerDisable);
        let sleep_err = b"CLIENT_ERROR sleep must be one second or less\r\n";
        assert_eq!(reply(b"lru_crawler sleep 1000001\r\n"), sleep_err);
        assert_eq!(reply(b"lru_crawler sleep 4295967297\r\n"), sleep_err);
        let format = b"CLIENT_ERROR bad command line format\r\n";
        for line in [
            &b"lru_crawler sleep x\r\n"[..],
            b"lru_crawler tocrawl x\r\n",
            b"lru_crawler tocrawl -1\r\n",
        ] {
            assert_eq!(reply(line), format);
        }
        for shape in [
            &b"lru_crawler\r\n"[..],
            b"lru_crawler crawl\r\n",
            b"lru_crawler metadump\r\n",
            b"lru_crawler tocrawl\r\n",
            b"lru_crawler crawl all noreply\r\n",
            b"lru_crawler metadump 1 extra\r\n",
            b"lru_crawler enable x\r\n",
            b"lru_crawler disable noreply\r\n",
            b"lru_crawler foo\r\n",
            b"lru_crawler foo bar\r\n",
        ] {
            assert_eq!(reply(shape), b"ERROR\r\n", "{:?}", String::from_utf8_lossy(shape));
        }
    }

    #[test]
    fn watch() {
        let streams = |bits| AdminRequest::Watch {
            streams: Some(WatchStreams(bits)),
        };
        assert_eq!(admin(b"watch\r\n"), (streams(WatchStreams::FETCHERS), false));
        assert_eq!(admin(b"watch\n"), (streams(WatchStreams::FETCHERS), false));
        assert_eq!(
            admin(b"watch mutations evictions\r\n").0,
            streams(WatchStreams::MUTATIONS | WatchStreams::EVICTIONS)
        );
        assert_eq!(
            admin(b"watch connevents  fetchers sysevents rawcmds proxyreqs proxyevents proxyuser\r\n").0,
            streams(
                WatchStreams::CONNEVENTS
                    | WatchStreams::FETCHERS
                    | WatchStreams::SYSEVENTS
                    | WatchStreams::RAWCMDS
                    | WatchStreams::PROXYREQS
                    | WatchStreams::PROXYEVENTS
                    | WatchStreams::PROXYUSER
            )
        );
        // 1.6.18 has no `deletions` stream; names are case-sensitive.
        for bad in [
            &b"watch deletions\r\n"[..],
            b"watch Fetchers\r\n",
            b"watch fetchers x\r\n",
        ] {
            assert_eq!(admin(bad), (AdminRequest::Watch { streams: None }, false));
        }
        assert_eq!(
            admin(b"watch fetchers noreply\r\n"),
            (AdminRequest::Watch { streams: None }, true)
        );
    }

    #[test]
    fn lru() {
        let tuning = |hot_pct, warm_pct, hot, warm| {
            AdminRequest::LruTune(LruTuning {
                hot_pct,
                warm_pct,
                hot_factor: Double(hot),
                warm_factor: Double(warm),
            })
        };
        assert_eq!(
            admin(b"lru tune 10 20 0.1 2\r\n"),
            (tuning(10, 20, 0.1, 2.0), false)
        );
        assert_eq!(
            admin(b"lru tune 10 20 0.1 2 noreply\r\n"),
            (tuning(10, 20, 0.1, 2.0), true)
        );
        assert_eq!(
            admin(b"lru tune 10 20 0.1 2 extra more\r\n").0,
            tuning(10, 20, 0.1, 2.0)
        );
        assert_eq!(
            admin(b"lru tune 4294967296 20 0.1 2\r\n").0,
            tuning(0, 20, 0.1, 2.0)
        );
        assert_eq!(
            admin(b"lru tune 4294967295 2 0x10 1\r\n").0,
            tuning(-1, 2, 16.0, 1.0)
        );
        assert!(matches!(
            admin(b"lru tune 10 20 inf nan\r\n").0,
            AdminRequest::LruTune(LruTuning { hot_factor: Double(h), warm_factor: Double(w), .. })
                if h.is_infinite() && w.is_nan()
        ));
        assert_eq!(
            reply(b"lru tune 50 40 0.1 2\r\n"),
            b"ERROR hot and warm pcts must not exceed 80\r\n"
        );
        let factors = b"ERROR hot/warm age factors must be greater than 0\r\n";
        assert_eq!(reply(b"lru tune 10 20 0 2\r\n"), factors);
        assert_eq!(reply(b"lru tune 10 20 0.1 -1\r\n"), factors);
        assert_eq!(reply(b"lru tune 90 0 0.1 2 noreply\r\n"), b"");
        assert_eq!(
            admin(b"lru mode flat\r\n").0,
            AdminRequest::LruMode { segmented: false }
        );
        assert_eq!(
            admin(b"lru mode segmented noreply\r\n"),
            (AdminRequest::LruMode { segmented: true }, true)
        );
        assert_eq!(
            admin(b"lru temp_ttl -1\r\n").0,
            AdminRequest::LruTempTtl { ttl: -1 }
        );
        assert_eq!(
            admin(b"lru temp_ttl 4294967296\r\n").0,
            AdminRequest::LruTempTtl { ttl: 0 }
        );
        for shape in [
            &b"lru\r\n"[..],
            b"lru tune\r\n",
            b"lru tune 10 20 0.1\r\n",
            b"lru tune x 20 0.1 2\r\n",
            b"lru tune 10 20 x 2\r\n",
            b"lru tune 10 20 0.1 2x\r\n",
            b"lru tune 10 20 1e400 1\r\n",
            b"lru mode\r\n",
            b"lru mode bogus\r\n",
            b"lru temp_ttl\r\n",
            b"lru temp_ttl x\r\n",
            b"lru bogus\r\n",
            b"lru bogus x\r\n",
        ] {
            assert_eq!(reply(shape), b"ERROR\r\n", "{:?}", String::from_utf8_lossy(shape));
        }
        for quiet in [
            &b"lru noreply\r\n"[..],
            b"lru mode bogus noreply\r\n",
            b"lru tune 1 noreply\r\n",
        ] {
            assert_eq!(reply(quiet), b"", "{:?}", String::from_utf8_lossy(quiet));
        }
    }
}
