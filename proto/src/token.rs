//! Splitting a command line into tokens, and reading numbers out of tokens, the way
//! memcached 1.6 does.
//!
//! memcached's text protocol is defined less by its documentation than by two pieces of C:
//! a tokenizer that splits on the space byte only, and `strtol`-family number parsing with a
//! particular set of acceptance checks. Clients in the wild rely on the quirks of both
//! (tabs inside keys, `+5` as a number, 64-bit exptimes that wrap), so this module
//! reproduces them exactly rather than doing the "obvious" strict parse.
#![warn(missing_docs)]

/// memcached's token array size, including the empty terminal token it appends.
///
/// At most `MAX_TOKENS - 1` real tokens are split off a line; whatever follows is left
/// unsplit. Only the multi-key `get` family looks past that point; for every other command
/// a line with 23 or more words counts as 24 tokens, which is always "too many".
pub const MAX_TOKENS: usize = 24;

/// The words of one command line, split on single spaces (runs of spaces count as one
/// separator; no other byte separates), at most [`MAX_TOKENS`]` - 1` of them.
#[derive(Debug, Clone, Copy)]
pub struct Tokens<'a> {
    words: [&'a [u8]; MAX_TOKENS - 1],
    len: usize,
}

impl<'a> Tokens<'a> {
    /// Splits `line` (which holds neither its line ending nor a NUL byte).
    pub fn split(line: &'a [u8]) -> Self {
        let mut words: [&'a [u8]; MAX_TOKENS - 1] = [&[]; MAX_TOKENS - 1];
        let mut len = 0;
        for word in line.split(|&b| b == b' ').filter(|w| !w.is_empty()) {
            words[len] = word;
            len += 1;
            if len == words.len() {
                break;
            }
        }
        Tokens { words, len }
    }

    /// The number of words split off (at most 23).
    pub fn len(&self) -> usize {
        self.len
    }

    /// True for a line with no words at all (empty, or only spaces).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// memcached's `ntokens`: the words plus its terminal token. The per-command token
    /// count checks (and their `ERROR` replies) are written against this number, so the
    /// decoder uses it too, to keep them recognisably the same checks.
    pub fn ntokens(&self) -> usize {
        self.len + 1
    }

    /// Word `i`, or the empty slice past the end (memcached's terminal token).
    pub fn get(&self, i: usize) -> &'a [u8] {
        if i < self.len {
            self.words[i]
        } else {
            &[]
        }
    }

    /// The last word; empty for an empty line.
    pub fn last(&self) -> &'a [u8] {
        if self.len == 0 {
            &[]
        } else {
            self.words[self.len - 1]
        }
    }

    /// memcached's `set_noreply_maybe`: a command is in noreply mode when its *last* token
    /// (whatever its position) is exactly `noreply`. That is why `set k 0 0 noreply` is a
    /// noreply command with a bad length, and `set k 0 0 1 foo` a normal one.
    pub fn ends_with_noreply(&self) -> bool {
        self.last() == b"noreply"
    }
}

/// The index of the first `\n` or NUL byte in `buf`: the end of a command line, or the
/// point where memcached's `strlen` cuts it short.
///
/// Scans eight bytes at a time (the classic "word has a zero byte" test, applied to the
/// word and to the word xor `\n`s): buffers holding long multi-get lines or pipelines are
/// scanned on every read, and a byte-at-a-time loop with an early exit does not vectorise.
pub fn find_line_stop(buf: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    const NEWLINES: u64 = ONES * b'\n' as u64;
    let has_zero = |w: u64| w.wrapping_sub(ONES) & !w & HIGHS;
    let mut chunks = buf.chunks_exact(8);
    let mut offset = 0;
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_le_bytes(word);
        if has_zero(w) | has_zero(w ^ NEWLINES) != 0 {
            // The test can flag a byte after the real one, never miss one: find it exactly.
            if let Some(i) = chunk.iter().position(|&b| b == b'\n' || b == 0) {
                return Some(offset + i);
            }
        }
        offset += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| b == b'\n' || b == 0)
        .map(|i| offset + i)
}

/// C's `isspace` in the "C" locale. `strtol` skips these before a number, and memcached
/// accepts a number followed by one of them, so `5\tjunk` is a valid `5`.
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// The digits of a token as `strtoul`/`strtol` see them: leading C whitespace skipped, an
/// optional sign, then a run of ASCII digits. Returns `(negative, magnitude)` where
/// magnitude is `None` on overflow of `u64`, or `None` overall when there are no digits or
/// the digits are followed by something other than the end of the token or C whitespace
/// (memcached's `safe_strto*` end check).
fn c_digits(tok: &[u8]) -> Option<(bool, Option<u64>)> {
    let mut i = 0;
    while i < tok.len() && is_c_space(tok[i]) {
        i += 1;
    }
    let mut negative = false;
    if i < tok.len() && (tok[i] == b'+' || tok[i] == b'-') {
        negative = tok[i] == b'-';
        i += 1;
    }
    let start = i;
    let mut value: Option<u64> = Some(0);
    while i < tok.len() && tok[i].is_ascii_digit() {
        let d = u64::from(tok[i] - b'0');
        value = value
            .and_then(|v| v.checked_mul(10))
            .and_then(|v| v.checked_add(d));
        i += 1;
    }
    if i == start {
        return None;
    }
    if i < tok.len() && !is_c_space(tok[i]) {
        return None;
    }
    Some((negative, value))
}

/// memcached's `safe_strtoull`: a `u64`.
///
/// Like `strtoull`, a leading `-` negates modulo 2^64 (`-1` would be `u64::MAX`); memcached
/// then rejects a result whose top bit is set if the token holds a `-`, so `-1` fails while
/// `-0` is 0 and `-18446744073709551615` is 1.
pub fn parse_u64(tok: &[u8]) -> Option<u64> {
    let (negative, magnitude) = c_digits(tok)?;
    let magnitude = magnitude?; // ERANGE
    let value = if negative {
        magnitude.wrapping_neg()
    } else {
        magnitude
    };
    if (value as i64) < 0 && tok.contains(&b'-') {
        return None;
    }
    Some(value)
}

/// memcached's `safe_strtoul` into a `uint32_t` (flags, verbosity level, cache_memlimit,
/// cachedump arguments): parsed as a 64-bit `unsigned long`, then *truncated* to 32 bits.
/// So `4294967296` is accepted as 0 and `18446744073709551615` as `u32::MAX`.
pub fn parse_u32_truncating(tok: &[u8]) -> Option<u32> {
    parse_u64(tok).map(|v| v as u32)
}

/// C's `strtol` on a 64-bit platform: `None` when out of `i64` range (ERANGE) or malformed.
pub fn parse_i64(tok: &[u8]) -> Option<i64> {
    let (negative, magnitude) = c_digits(tok)?;
    let magnitude = magnitude?;
    if negative {
        if magnitude <= i64::MAX as u64 + 1 {
            Some((magnitude as i64).wrapping_neg())
        } else {
            None
        }
    } else {
        i64::try_from(magnitude).ok()
    }
}

/// memcached's `safe_strtol` into an `int32_t` (exptimes, value lengths): parsed as a
/// 64-bit `long`, then *truncated* to 32 bits. So `4294967296` is 0 and `2147483648` is
/// `-2147483648`; only values outside `i64` fail.
pub fn parse_i32_truncating(tok: &[u8]) -> Option<i32> {
    parse_i64(tok).map(|v| v as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_line_stop_matches_a_plain_scan() {
        let naive = |b: &[u8]| b.iter().position(|&c| c == b'\n' || c == 0);
        let mut buf = vec![b'a'; 40];
        assert_eq!(find_line_stop(&buf), None);
        for i in 0..40 {
            for stop in [b'\n', 0] {
                buf[i] = stop;
                // Bytes that trip the word test without being a stop: 0x80+ and 0x0b/0x01.
                if i + 1 < buf.len() {
                    buf[i + 1] = 0x8b;
                }
                for start in 0..buf.len() {
                    assert_eq!(find_line_stop(&buf[start..]), naive(&buf[start..]));
                }
                buf.fill(b'a');
            }
        }
        for b in 0..=255u8 {
            let v = [b; 17];
            assert_eq!(find_line_stop(&v), naive(&v), "{b}");
        }
    }

    proptest::proptest! {
        #[test]
        fn find_line_stop_on_any_bytes(buf in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..100)) {
            let naive = buf.iter().position(|&c| c == b'\n' || c == 0);
            proptest::prop_assert_eq!(find_line_stop(&buf), naive);
        }
    }

    #[test]
    fn split_collapses_spaces_and_keeps_other_bytes() {
        let t = Tokens::split(b"  set  a\tb 0   0 1 ");
        assert_eq!(t.len(), 5);
        assert_eq!(t.ntokens(), 6);
        assert_eq!(t.get(0), b"set");
        assert_eq!(t.get(1), b"a\tb");
        assert_eq!(t.get(4), b"1");
        assert_eq!(t.get(5), b"");
        assert_eq!(t.last(), b"1");
        assert!(Tokens::split(b"   ").is_empty());
        assert_eq!(Tokens::split(b"").ntokens(), 1);
    }

    #[test]
    fn split_stops_at_23_words() {
        let line = b"a b c d e f g h i j k l m n o p q r s t u v w x y z";
        let t = Tokens::split(line);
        assert_eq!(t.len(), 23);
        assert_eq!(t.ntokens(), MAX_TOKENS);
        assert_eq!(t.last(), b"w");
    }

    #[test]
    fn noreply_is_the_last_token() {
        assert!(Tokens::split(b"set k 0 0 noreply").ends_with_noreply());
        assert!(!Tokens::split(b"set k 0 0 1 foo").ends_with_noreply());
        assert!(!Tokens::split(b"set k 0 0 1 noreplyx").ends_with_noreply());
    }

    #[test]
    fn u64_like_strtoull() {
        let cases: &[(&[u8], Option<u64>)] = &[
            (b"0", Some(0)),
            (b"00001", Some(1)),
            (b"+5", Some(5)),
            (b"\t5", Some(5)),
            (b"5\t", Some(5)),
            (b"5\tjunk", Some(5)),
            (b"5\rjunk", Some(5)),
            (b"5x", None),
            (b"x5", None),
            (b"", None),
            (b"+", None),
            (b"-", None),
            (b"-0", Some(0)),
            (b"-1", None),
            (b"-18446744073709551615", Some(1)),
            (b"18446744073709551615", Some(u64::MAX)),
            (b"18446744073709551616", None),
            (b"9223372036854775808", Some(1 << 63)),
            (b"99999999999999999999999", None),
        ];
        for &(tok, want) in cases {
            assert_eq!(parse_u64(tok), want, "{:?}", String::from_utf8_lossy(tok));
        }
    }

    #[test]
    fn u32_truncates() {
        assert_eq!(parse_u32_truncating(b"4294967295"), Some(u32::MAX));
        assert_eq!(parse_u32_truncating(b"4294967296"), Some(0));
        assert_eq!(parse_u32_truncating(b"18446744073709551615"), Some(u32::MAX));
        assert_eq!(parse_u32_truncating(b"-1"), None);
    }

    #[test]
    fn i64_like_strtol() {
        let cases: &[(&[u8], Option<i64>)] = &[
            (b"0", Some(0)),
            (b"-1", Some(-1)),
            (b"+7", Some(7)),
            (b"9223372036854775807", Some(i64::MAX)),
            (b"9223372036854775808", None),
            (b"-9223372036854775808", Some(i64::MIN)),
            (b"-9223372036854775809", None),
            (b"1e3", None),
            (b"--1", None),
        ];
        for &(tok, want) in cases {
            assert_eq!(parse_i64(tok), want, "{:?}", String::from_utf8_lossy(tok));
        }
    }

    #[test]
    fn i32_truncates() {
        assert_eq!(parse_i32_truncating(b"2147483647"), Some(i32::MAX));
        assert_eq!(parse_i32_truncating(b"2147483648"), Some(i32::MIN));
        assert_eq!(parse_i32_truncating(b"4294967295"), Some(-1));
        assert_eq!(parse_i32_truncating(b"4294967296"), Some(0));
        assert_eq!(parse_i32_truncating(b"4294967297"), Some(1));
        assert_eq!(parse_i32_truncating(b"-9223372036854775808"), Some(0));
        assert_eq!(parse_i32_truncating(b"9223372036854775808"), None);
    }
}
