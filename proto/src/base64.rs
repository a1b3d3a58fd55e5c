//! Standard base64 (RFC 4648 alphabet, `=` padding), as memcached's meta commands use it
//! for binary keys (`b`): decoding with memcached's own leniency, encoding plainly.

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// The 6-bit value of an alphabet byte; `=` counts as 0.
fn value(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        b'=' => Some(0),
        _ => None,
    }
}

/// Decodes `input` into `out` with memcached's decoder's rules (checked on the wire):
/// bytes outside the alphabet are skipped, the count of alphabet bytes (with `=`) must be
/// a non-zero multiple of 4, decoding stops after the first group with padding, and a
/// group with more than two `=`, a result that does not fit `out`, or an empty result is
/// a failure (`None`). Returns the decoded length.
pub fn decode(input: &[u8], out: &mut [u8]) -> Option<usize> {
    let count = input.iter().filter(|&&c| value(c).is_some()).count();
    if count == 0 || count % 4 != 0 {
        return None;
    }
    let mut len = 0usize;
    let mut group = [0u8; 4];
    let mut n = 0;
    let mut pad = 0;
    for &c in input {
        let Some(v) = value(c) else { continue };
        if c == b'=' {
            pad += 1;
        }
        group[n] = v;
        n += 1;
        if n < 4 {
            continue;
        }
        n = 0;
        if len + 3 > out.len() {
            return None;
        }
        out[len] = (group[0] << 2) | (group[1] >> 4);
        out[len + 1] = (group[1] << 4) | (group[2] >> 2);
        out[len + 2] = (group[2] << 6) | group[3];
        len += 3;
        if pad > 0 {
            match pad {
                1 => len -= 1,
                2 => len -= 2,
                _ => return None,
            }
            break;
        }
    }
    (len > 0).then_some(len)
}

/// Appends `data` as padded base64 with no line breaks (how memcached echoes binary keys).
pub fn encode(out: &mut Vec<u8>, data: &[u8]) {
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        out.push(ALPHABET[usize::from(b[0] >> 2)]);
        out.push(ALPHABET[usize::from(((b[0] & 0x03) << 4) | (b[1] >> 4))]);
        if chunk.len() > 1 {
            out.push(ALPHABET[usize::from(((b[1] & 0x0f) << 2) | (b[2] >> 6))]);
        } else {
            out.push(b'=');
        }
        if chunk.len() > 2 {
            out.push(ALPHABET[usize::from(b[2] & 0x3f)]);
        } else {
            out.push(b'=');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_what_memcached_refuses() {
        for data in [&b"a"[..], b"ab", b"abc", b"\x00\xff\x10key"] {
            let mut enc = Vec::new();
            encode(&mut enc, data);
            let mut out = [0u8; 16];
            let n = decode(&enc, &mut out).unwrap();
            assert_eq!(&out[..n], data);
        }
        let mut out = [0u8; 16];
        assert_eq!(decode(b"Zm9v", &mut out), Some(3));
        assert_eq!(decode(b"Zm9", &mut out), None); // not a multiple of 4
        assert_eq!(decode(b"Z===", &mut out), None); // three pads
        assert_eq!(decode(b"", &mut out), None);
        assert_eq!(decode(b"Zm9vYmFy", &mut [0u8; 4]), None); // does not fit
    }
}
