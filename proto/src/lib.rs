//! slabcached's wire protocols: pure decoders and encoders for memcached's text protocol
//! (and, in their own modules, its meta and binary protocols).
//!
//! "Pure" is the point of this crate: no sockets, no clocks, no storage, and no buffer
//! sized from a number that came off the wire. A decoder looks at the bytes a connection
//! has buffered and says what they mean (a request borrowing from the buffer, "need more",
//! or an error with memcached's exact reply); an encoder appends a reply to a `Vec<u8>`.
//! The server owns all I/O and state, which keeps these modules testable byte for byte
//! against memcached itself.
//!
//! Shared by the three protocols, once each: [`token`] (memcached's tokenizer and its
//! `strtol`-family number parsing; the meta decoder works on the tokens the text decoder
//! split), [`format`](mod@format) (decimal numbers), [`base64`] (meta's binary keys), [`StoreMode`],
//! [`Limits`] and the error lines of [`error`]. [`text_auth`] is the text protocol's login
//! under memcached's `-Y`.
#![forbid(unsafe_code)]

pub mod base64;
pub mod binary;
pub mod error;
pub mod format;
pub mod meta;
pub mod text;
pub mod text_auth;
pub mod token;

pub use error::{AdminError, ClientError, ProtoError, ServerError};

/// The key of the first request in `buf`, if one is visible already, without decoding or
/// validating the request: a hint for prefetching the key's index entry before the request
/// is executed. Binary requests start with the magic byte 0x80; anything else is read as a
/// text line `<command> <key> ...`. A wrong guess only costs a useless prefetch.
pub fn peek_key(buf: &[u8]) -> Option<&[u8]> {
    if buf.first() == Some(&binary::MAGIC_REQUEST) {
        let header = binary::Header::parse(buf)?;
        let start = binary::HEADER_LEN + usize::from(header.extras_len);
        return buf
            .get(start..start + usize::from(header.key_len))
            .filter(|k| !k.is_empty());
    }
    // Look at most one maximal key past a short command name.
    let window = &buf[..buf.len().min(16 + 250 + 1)];
    let command_end = window.iter().position(|&b| b == b' ')?;
    let rest = &window[command_end + 1..];
    let key_len = rest.iter().position(|&b| matches!(b, b' ' | b'\r' | b'\n'))?;
    Some(&rest[..key_len]).filter(|k| !k.is_empty())
}

/// The storage commands, whichever protocol sent them (text's verbs, meta's `M` modes,
/// binary's opcodes; only text has a `cas` verb, the others compare a cas given alongside).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StoreMode {
    /// `set`, meta `MS`, binary Set: store unconditionally.
    Set,
    /// `add`, `ME`, Add: store only if the key is absent.
    Add,
    /// `replace`, `MR`, Replace: store only if the key is present.
    Replace,
    /// `append`, `MA`, Append: add the data after the existing value (flags and exptime are ignored).
    Append,
    /// `prepend`, `MP`, Prepend: add the data before the existing value.
    Prepend,
    /// text `cas`: store only if the item's CAS unique is still the one given.
    Cas,
}

/// Size limits the decoders enforce, from the server's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Longest key accepted, in bytes. memcached's is fixed at 250.
    pub max_key_len: usize,
    /// memcached's `-I`: the largest item, header and key included (default 1 MiB).
    pub item_size_max: usize,
    /// Bytes each item takes besides its key, key terminator, flags and value. memcached
    /// 1.6 spends 56 (a 48-byte header and an 8-byte CAS; 48 when started with `-C`); set
    /// this to the storage engine's own figure to refuse exactly what it cannot store.
    pub item_overhead: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_key_len: 250,
            item_size_max: 1024 * 1024,
            item_overhead: 56,
        }
    }
}

impl Limits {
    /// Whether an item with this key length, flags and value length fits in
    /// `item_size_max`, by memcached's sum: overhead, key plus its NUL terminator, 4 bytes
    /// of flags unless they are 0, and the value plus its `\r\n`. A `set` that does not
    /// fit is answered `SERVER_ERROR object too large for cache`.
    pub fn item_fits(&self, key_len: usize, flags: u32, value_len: usize) -> bool {
        let flags_len = if flags == 0 { 0 } else { 4 };
        self.item_overhead
            .saturating_add(key_len + 1)
            .saturating_add(flags_len)
            .saturating_add(value_len)
            .saturating_add(2)
            <= self.item_size_max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_fits_matches_memcached_boundaries() {
        // Measured on memcached 1.6.18 with the default -I 1m: key "b1", flags 0 stores
        // 1048515 bytes but not 1048516; with flags 1, 1048511 but not 1048512; key
        // "b12345", flags 0, 1048511 but not 1048512.
        let l = Limits::default();
        assert!(l.item_fits(2, 0, 1_048_515));
        assert!(!l.item_fits(2, 0, 1_048_516));
        assert!(l.item_fits(2, 1, 1_048_511));
        assert!(!l.item_fits(2, 1, 1_048_512));
        assert!(l.item_fits(6, 0, 1_048_511));
        assert!(!l.item_fits(6, 0, 1_048_512));
        assert!(!l.item_fits(1, 0, usize::MAX));
    }

    #[test]
    fn peek_key_finds_the_first_key_of_text_and_binary_requests() {
        assert_eq!(peek_key(b"get key:1\r\n"), Some(&b"key:1"[..]));
        assert_eq!(peek_key(b"get a b c\r\n"), Some(&b"a"[..]));
        assert_eq!(peek_key(b"set k 0 0 1\r\nx\r\n"), Some(&b"k"[..]));
        assert_eq!(peek_key(b"mg k v\r\n"), Some(&b"k"[..]));
        // No key visible yet, or none at all: no hint.
        assert_eq!(peek_key(b"get key:1"), None);
        assert_eq!(peek_key(b"version\r\n"), None);
        assert_eq!(peek_key(b"get  k\r\n"), None);
        assert_eq!(peek_key(b""), None);
        // Binary GetK with key "ab": 24-byte header, no extras.
        let mut getk = vec![0x80, 0x0c, 0, 2, 0, 0, 0, 0, 0, 0, 0, 2];
        getk.resize(24, 0);
        getk.extend_from_slice(b"ab");
        assert_eq!(peek_key(&getk), Some(&b"ab"[..]));
        assert_eq!(peek_key(&getk[..25]), None);
        // Binary Set: the key follows 8 bytes of extras.
        let mut set = vec![0x80, 0x01, 0, 1, 8, 0, 0, 0, 0, 0, 0, 10];
        set.resize(32, 0);
        set.extend_from_slice(b"zv");
        assert_eq!(peek_key(&set), Some(&b"z"[..]));
    }

    proptest::proptest! {
        #[test]
        fn peek_key_returns_a_slice_of_its_input(buf in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
            if let Some(key) = peek_key(&buf) {
                let start = key.as_ptr() as usize - buf.as_ptr() as usize;
                proptest::prop_assert!(!key.is_empty() && start + key.len() <= buf.len());
            }
        }
    }
}
