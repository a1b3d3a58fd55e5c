//! Request encoding: keys, values, and the text and binary protocol frames the generator sends.
//!
//! Keys are `<prefix><index>` with the index zero-padded to the width of the largest index, so
//! every key of a run has the same length. Values are slices of one pre-filled pattern buffer.
//! Binary frames follow memcached's binary protocol: a 24-byte header (magic 0x80, opcode,
//! key length, extras length, data type, vbucket, total body length, opaque, CAS), then extras,
//! key and value.

use crate::config::{key_width, Config, Protocol, ValueSize};
use crate::rng::Rng;

/// Binary protocol request magic.
pub const REQ_MAGIC: u8 = 0x80;
/// Binary protocol response magic.
pub const RES_MAGIC: u8 = 0x81;
/// Binary opcode Set.
pub const OP_SET: u8 = 0x01;
/// Binary opcode Noop.
pub const OP_NOOP: u8 = 0x0a;
/// Binary opcode GetK (get, response carries the key).
pub const OP_GETK: u8 = 0x0c;
/// Binary opcode GetKQ (quiet GetK: no response on a miss).
pub const OP_GETKQ: u8 = 0x0d;
/// Binary opcode SetQ (quiet Set: response only on error).
pub const OP_SETQ: u8 = 0x11;
/// Binary status: key not found.
pub const STATUS_KEY_NOT_FOUND: u16 = 0x0001;

/// Everything needed to build requests and check keys in replies; shared by all threads.
#[derive(Debug)]
pub struct Workload {
    prefix: Vec<u8>,
    width: usize,
    /// Size of the key space.
    pub keys: u64,
    value: Vec<u8>,
    vsize: ValueSize,
    /// Protocol spoken.
    pub protocol: Protocol,
    /// Keys per get.
    pub multiget: usize,
    /// Fraction of gets.
    pub get_ratio: f64,
}

impl Workload {
    /// Builds the workload from a validated configuration.
    pub fn new(cfg: &Config) -> Self {
        // A printable pattern, so a text-protocol capture stays readable.
        let value = (0..cfg.value_size.max).map(|i| b'a' + (i % 26) as u8).collect();
        Workload {
            prefix: cfg.key_prefix.as_bytes().to_vec(),
            width: key_width(cfg.keys),
            keys: cfg.keys,
            value,
            vsize: cfg.value_size,
            protocol: cfg.protocol,
            multiget: cfg.multiget,
            get_ratio: cfg.get_ratio,
        }
    }

    /// Length of every key.
    pub fn key_len(&self) -> usize {
        self.prefix.len() + self.width
    }

    /// Appends key number `idx` to `buf`.
    pub fn push_key(&self, buf: &mut Vec<u8>, idx: u64) {
        buf.extend_from_slice(&self.prefix);
        let mut digits = [b'0'; 20];
        let mut n = idx;
        let mut i = digits.len();
        while n > 0 {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
        }
        let start = (digits.len() - self.width).min(i);
        buf.extend_from_slice(&digits[start..]);
    }

    /// True when `key` is one this workload could have asked for.
    pub fn valid_key(&self, key: &[u8]) -> bool {
        let Some(digits) = key.strip_prefix(self.prefix.as_slice()) else {
            return false;
        };
        if digits.len() != self.width || !digits.iter().all(u8::is_ascii_digit) {
            return false;
        }
        let n = digits
            .iter()
            .fold(0u64, |n, &d| n.wrapping_mul(10).wrapping_add(u64::from(d - b'0')));
        n < self.keys
    }

    /// Draws a value size.
    pub fn value_len(&self, rng: &mut Rng) -> usize {
        if self.vsize.min == self.vsize.max {
            self.vsize.min
        } else {
            self.vsize.min + rng.below((self.vsize.max - self.vsize.min + 1) as u64) as usize
        }
    }

    /// Text `get k1 k2 ...\r\n`.
    pub fn text_get(&self, buf: &mut Vec<u8>, keys: impl Iterator<Item = u64>) {
        buf.extend_from_slice(b"get");
        for k in keys {
            buf.push(b' ');
            self.push_key(buf, k);
        }
        buf.extend_from_slice(b"\r\n");
    }

    /// Text `set k 0 0 n [noreply]\r\n<value>\r\n`.
    pub fn text_set(&self, buf: &mut Vec<u8>, idx: u64, vlen: usize, noreply: bool) {
        buf.extend_from_slice(b"set ");
        self.push_key(buf, idx);
        buf.extend_from_slice(b" 0 0 ");
        push_decimal(buf, vlen as u64);
        if noreply {
            buf.extend_from_slice(b" noreply");
        }
        buf.extend_from_slice(b"\r\n");
        buf.extend_from_slice(&self.value[..vlen]);
        buf.extend_from_slice(b"\r\n");
    }

    /// Binary get-family request (GetK or GetKQ) for key `idx`.
    pub fn bin_get(&self, buf: &mut Vec<u8>, opcode: u8, idx: u64, opaque: u32) {
        let klen = self.key_len();
        push_bin_header(buf, opcode, klen as u16, 0, klen as u32, opaque);
        self.push_key(buf, idx);
    }

    /// Binary set-family request (Set or SetQ): extras = flags 0, expiry 0.
    pub fn bin_set(&self, buf: &mut Vec<u8>, opcode: u8, idx: u64, vlen: usize, opaque: u32) {
        let klen = self.key_len();
        push_bin_header(buf, opcode, klen as u16, 8, (8 + klen + vlen) as u32, opaque);
        buf.extend_from_slice(&[0u8; 8]);
        self.push_key(buf, idx);
        buf.extend_from_slice(&self.value[..vlen]);
    }

    /// Binary Noop.
    pub fn bin_noop(&self, buf: &mut Vec<u8>, opaque: u32) {
        push_bin_header(buf, OP_NOOP, 0, 0, 0, opaque);
    }
}

/// Appends a 24-byte binary request header.
fn push_bin_header(buf: &mut Vec<u8>, opcode: u8, klen: u16, extlen: u8, body: u32, opaque: u32) {
    buf.push(REQ_MAGIC);
    buf.push(opcode);
    buf.extend_from_slice(&klen.to_be_bytes());
    buf.push(extlen);
    buf.push(0); // data type: raw bytes
    buf.extend_from_slice(&0u16.to_be_bytes()); // vbucket
    buf.extend_from_slice(&body.to_be_bytes());
    buf.extend_from_slice(&opaque.to_be_bytes());
    buf.extend_from_slice(&0u64.to_be_bytes()); // CAS
}

/// Appends `n` in decimal.
fn push_decimal(buf: &mut Vec<u8>, n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(&digits[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn wl(args: &[&str]) -> Workload {
        let mut cfg = Config::parse_from(std::iter::once("loadgen").chain(args.iter().copied()));
        cfg.validate().unwrap();
        Workload::new(&cfg)
    }

    #[test]
    fn keys_are_padded_and_validated() {
        let w = wl(&["--keys", "1000", "--key-prefix", "k:"]);
        let mut b = Vec::new();
        w.push_key(&mut b, 7);
        assert_eq!(b, b"k:007");
        assert!(w.valid_key(b"k:999"));
        assert!(!w.valid_key(b"k:1000"));
        assert!(!w.valid_key(b"k:99"));
        assert!(!w.valid_key(b"x:007"));
        assert!(!w.valid_key(b"k:0a7"));
    }

    #[test]
    fn text_frames() {
        let w = wl(&["--keys", "100", "--value-size", "3"]);
        let mut b = Vec::new();
        w.text_get(&mut b, [1, 22].into_iter());
        w.text_set(&mut b, 5, 3, false);
        w.text_set(&mut b, 6, 3, true);
        assert_eq!(
            b,
            b"get key:01 key:22\r\nset key:05 0 0 3\r\nabc\r\nset key:06 0 0 3 noreply\r\nabc\r\n"
        );
    }

    #[test]
    fn binary_frames() {
        let w = wl(&["--keys", "10", "--value-size", "2", "--key-prefix", "k"]);
        let mut b = Vec::new();
        w.bin_set(&mut b, OP_SET, 3, 2, 0x01020304);
        assert_eq!(b.len(), 24 + 8 + 2 + 2);
        assert_eq!(&b[..8], &[0x80, OP_SET, 0, 2, 8, 0, 0, 0]);
        assert_eq!(&b[8..12], &12u32.to_be_bytes());
        assert_eq!(&b[12..16], &[1, 2, 3, 4]);
        assert_eq!(&b[32..], b"k3ab");
        b.clear();
        w.bin_get(&mut b, OP_GETKQ, 9, 5);
        assert_eq!(&b[..2], &[0x80, OP_GETKQ]);
        assert_eq!(&b[24..], b"k9");
        b.clear();
        w.bin_noop(&mut b, 9);
        assert_eq!(b.len(), 24);
        assert_eq!(b[1], OP_NOOP);
    }
}
