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

    /// The words from word `i` on.
    pub fn rest(&self, i: usize) -> &[&'a [u8]] {
        &self.words[i.min(self.len)..self.len]
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
    // memcached looks for a `-` only before the end of the number: that is the sign.
    if (value as i64) < 0 && negative {
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

/// C's `strtod` in the "C" locale on the front of `tok`: leading C whitespace, a sign, then
/// a decimal number (`1`, `1.`, `.5`, `2e-3`), a hexadecimal one (`0x1p-2`), `inf`,
/// `infinity` or `nan` (any case, `nan(chars)` too). Returns the value, the number of
/// bytes used and whether the value was out of range (C's `ERANGE`: it overflowed to an
/// infinity or underflowed to zero or a subnormal); `None` when no number was found.
pub fn strtod_prefix(tok: &[u8]) -> Option<(f64, usize, bool)> {
    let mut i = 0;
    while i < tok.len() && is_c_space(tok[i]) {
        i += 1;
    }
    let negative = tok.get(i) == Some(&b'-');
    if matches!(tok.get(i), Some(b'+' | b'-')) {
        i += 1;
    }
    let sign = |v: f64| if negative { -v } else { v };
    let rest = &tok[i..];
    let starts = |word: &[u8]| rest.len() >= word.len() && rest[..word.len()].eq_ignore_ascii_case(word);
    if starts(b"infinity") {
        return Some((sign(f64::INFINITY), i + 8, false));
    }
    if starts(b"inf") {
        return Some((sign(f64::INFINITY), i + 3, false));
    }
    if starts(b"nan") {
        let mut end = i + 3;
        if tok.get(end) == Some(&b'(') {
            let inner = tok[end + 1..]
                .iter()
                .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
                .count();
            if tok.get(end + 1 + inner) == Some(&b')') {
                end += inner + 2;
            }
        }
        return Some((sign(f64::NAN), end, false));
    }
    let is_hex = starts(b"0x")
        && (rest.get(2).is_some_and(u8::is_ascii_hexdigit)
            || (rest.get(2) == Some(&b'.') && rest.get(3).is_some_and(u8::is_ascii_hexdigit)));
    let (magnitude, used, nonzero) = if is_hex {
        hex_float(&rest[2..]).map(|(v, n, nz)| (v, n + 2, nz))?
    } else {
        decimal_float(rest)?
    };
    let range_error =
        (magnitude.is_infinite()) || (nonzero && (magnitude == 0.0 || magnitude.is_subnormal()));
    Some((sign(magnitude), i + used, range_error))
}

/// The longest decimal float at the front of `s`: (value, bytes, any non-zero digit).
fn decimal_float(s: &[u8]) -> Option<(f64, usize, bool)> {
    let digits = |from: usize| s[from..].iter().take_while(|b| b.is_ascii_digit()).count();
    let int = digits(0);
    let mut end = int;
    let mut frac = 0;
    if s.get(end) == Some(&b'.') {
        frac = digits(end + 1);
        end += 1 + frac;
    }
    if int + frac == 0 {
        return None;
    }
    let nonzero = s[..end].iter().any(|b| (b'1'..=b'9').contains(b));
    if matches!(s.get(end), Some(b'e' | b'E')) {
        let sign = usize::from(matches!(s.get(end + 1), Some(b'+' | b'-')));
        let exp = digits(end + 1 + sign);
        if exp > 0 {
            end += 1 + sign + exp;
        }
    }
    // The matched bytes are ASCII digits, '.', 'e', signs: valid UTF-8 and Rust float syntax.
    let text = std::str::from_utf8(&s[..end]).ok()?;
    Some((text.parse::<f64>().ok()?, end, nonzero))
}

/// A hexadecimal float after its `0x`: hex digits, an optional fraction, an optional
/// binary exponent `p[+-]digits`. Returns (value, bytes, any non-zero digit).
fn hex_float(s: &[u8]) -> Option<(f64, usize, bool)> {
    let mut mantissa: u64 = 0;
    let mut exp: i64 = 0;
    let mut end = 0;
    let mut seen = false;
    let mut nonzero = false;
    let mut in_fraction = false;
    while let Some(&b) = s.get(end) {
        if b == b'.' && !in_fraction {
            in_fraction = true;
            end += 1;
            continue;
        }
        let Some(d) = (b as char).to_digit(16) else {
            break;
        };
        seen = true;
        nonzero |= d != 0;
        if mantissa >> 56 == 0 {
            mantissa = mantissa * 16 + u64::from(d);
            if in_fraction {
                exp -= 4;
            }
        } else if !in_fraction {
            exp += 4; // digits beyond 64 bits of precision only scale the value
        }
        end += 1;
    }
    if !seen {
        return None;
    }
    if matches!(s.get(end), Some(b'p' | b'P')) {
        let sign_len = usize::from(matches!(s.get(end + 1), Some(b'+' | b'-')));
        let negative = s.get(end + 1) == Some(&b'-');
        let n = s[end + 1 + sign_len..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        if n > 0 {
            let digits = &s[end + 1 + sign_len..end + 1 + sign_len + n];
            let value = digits.iter().fold(0i64, |v, d| {
                v.saturating_mul(10).saturating_add(i64::from(d - b'0'))
            });
            exp = exp.saturating_add(if negative { -value } else { value });
            end += 1 + sign_len + n;
        }
    }
    let value = mantissa as f64 * 2f64.powi(exp.clamp(-2000, 2000) as i32);
    Some((value, end, nonzero))
}

/// memcached's `safe_strtod` (`slabs automove ratio`, `lru tune`): a whole token read by
/// [`strtod_prefix`], which may be followed only by C whitespace; out of range is refused.
pub fn parse_f64(tok: &[u8]) -> Option<f64> {
    let (value, end, range_error) = strtod_prefix(tok)?;
    if range_error || (end < tok.len() && !is_c_space(tok[end])) {
        return None;
    }
    Some(value)
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
    #[test]
    fn f64_like_strtod() {
        let cases: &[(&[u8], Option<f64>)] = &[
            (b"0.5", Some(0.5)),
            (b"1", Some(1.0)),
            (b"1.", Some(1.0)),
            (b".5", Some(0.5)),
            (b"+2e1", Some(20.0)),
            (b"-1.5E-1", Some(-0.15)),
            (b"\t3", Some(3.0)),
            (b"3\tjunk", Some(3.0)),
            (b"1e", None),
            (b"1e+", None),
            (b"2x", None),
            (b".", None),
            (b"", None),
            (b"-", None),
            (b"0x10", Some(16.0)),
            (b"0x1p-2", Some(0.25)),
            (b"0x.8", Some(0.5)),
            (b"0x", None),
            (b"INF", Some(f64::INFINITY)),
            (b"-infinity", Some(f64::NEG_INFINITY)),
            (b"infinit", None),
            (b"1e400", None),
            (b"1e-400", None),
            (b"0e-400", Some(0.0)),
        ];
        for &(tok, want) in cases {
            assert_eq!(parse_f64(tok), want, "{:?}", String::from_utf8_lossy(tok));
        }
        assert!(parse_f64(b"nan").is_some_and(f64::is_nan));
        assert!(parse_f64(b"-NaN(123)").is_some_and(|v| v.is_nan() && v.is_sign_negative()));
        assert_eq!(parse_f64(b"nan(x"), None);
        assert_eq!(strtod_prefix(b"12abc"), Some((12.0, 2, false)));
        assert_eq!(strtod_prefix(b"0x"), Some((0.0, 1, false)));
        assert_eq!(strtod_prefix(b"abc"), None);
    }
}
