//! A value to put in a reply: one slice, or pieces written one after another (a large item
//! stored as a chain of chunks is sent without being joined first).

/// Bytes of a value, contiguous or in pieces.
pub trait ValueBytes {
    /// Total length in bytes.
    fn len(&self) -> usize;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Append every byte to `out`, in order.
    fn append_to(&self, out: &mut Vec<u8>);
}

impl ValueBytes for [u8] {
    fn len(&self) -> usize {
        <[u8]>::len(self)
    }

    fn append_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self);
    }
}

impl<const N: usize> ValueBytes for [u8; N] {
    fn len(&self) -> usize {
        N
    }

    fn append_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self);
    }
}

impl ValueBytes for Vec<u8> {
    fn len(&self) -> usize {
        Vec::len(self)
    }

    fn append_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self);
    }
}

/// Pieces, in order.
impl ValueBytes for [&[u8]] {
    fn len(&self) -> usize {
        self.iter().map(|p| p.len()).sum()
    }

    fn append_to(&self, out: &mut Vec<u8>) {
        out.reserve(ValueBytes::len(self));
        for p in self {
            out.extend_from_slice(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ValueBytes;

    #[test]
    fn pieces_are_written_in_order() {
        let pieces: [&[u8]; 3] = [b"ab", b"", b"cde"];
        let mut out = Vec::new();
        pieces[..].append_to(&mut out);
        assert_eq!(out, b"abcde");
        assert_eq!(ValueBytes::len(&pieces[..]), 5);
        assert!(ValueBytes::is_empty(&b""[..]));
    }
}
