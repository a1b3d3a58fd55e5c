//! slabcached's wire protocols: pure decoders and encoders for memcached's text protocol
//! (and, in their own modules, its meta and binary protocols).
//!
//! "Pure" is the point of this crate: no sockets, no clocks, no storage, and no buffer
//! sized from a number that came off the wire. A decoder looks at the bytes a connection
//! has buffered and says what they mean (a request borrowing from the buffer, "need more",
//! or an error with memcached's exact reply); an encoder appends a reply to a `Vec<u8>`.
//! The server owns all I/O and state, which keeps these modules testable byte for byte
//! against memcached itself.
#![forbid(unsafe_code)]

pub mod binary;
pub mod error;
pub mod meta;
pub mod text;
pub mod token;

pub use error::{ClientError, ProtoError, ServerError};

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
}
