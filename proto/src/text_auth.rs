//! The text protocol's authentication request under memcached's `-Y`: before a connection
//! authenticates, every request must be a `set` whose data block is `user password`
//! (memcached 1.6's ASCII authentication; key, flags and exptime are ignored).
//!
//! memcached's rules, which [`decode`] follows:
//! - the first line must be `set` with at least five tokens and a number (the data length)
//!   as the fifth; anything else is answered `CLIENT_ERROR unauthenticated` and only that
//!   line is consumed;
//! - then `length + 2` bytes are awaited; they must end in `\r\n`, else `CLIENT_ERROR bad
//!   command line termination`;
//! - the data must hold two space-separated tokens (more are ignored), else `CLIENT_ERROR
//!   bad authentication token format`;
//! - more than 2048 bytes without a newline close the connection.

/// Replies of the authentication exchange.
pub const UNAUTHENTICATED: &[u8] = b"CLIENT_ERROR unauthenticated\r\n";
pub const BAD_TERMINATION: &[u8] = b"CLIENT_ERROR bad command line termination\r\n";
pub const BAD_FORMAT: &[u8] = b"CLIENT_ERROR bad authentication token format\r\n";
pub const AUTH_FAILURE: &[u8] = b"CLIENT_ERROR authentication failure\r\n";
pub const AUTHENTICATED: &[u8] = b"STORED\r\n";

/// Longest first line memcached waits for.
const MAX_LINE: usize = 2048;

/// What the front of the buffer holds.
#[derive(Debug, PartialEq, Eq)]
pub enum AuthDecoded<'a> {
    /// Wait for more bytes.
    Incomplete,
    /// No newline within 2048 bytes: close the connection.
    Close,
    /// Refused with `reply`; `consumed` bytes are used.
    Refused { reply: &'static [u8], consumed: usize },
    /// A user and password to check.
    Credentials {
        user: &'a [u8],
        password: &'a [u8],
        consumed: usize,
    },
}

/// Decode one authentication request from the front of `buf`.
pub fn decode(buf: &[u8]) -> AuthDecoded<'_> {
    if buf.len() < 2 {
        return AuthDecoded::Incomplete;
    }
    let Some(newline) = buf.iter().position(|&b| b == b'\n') else {
        return if buf.len() > MAX_LINE {
            AuthDecoded::Close
        } else {
            AuthDecoded::Incomplete
        };
    };
    let line_end = newline + 1;
    let mut line = tokens(&buf[..newline]);
    let length = match (line.next(), line.nth(3)) {
        (Some(b"set"), Some(n)) => data_length(n),
        _ => None,
    };
    let Some(length) = length else {
        return AuthDecoded::Refused {
            reply: UNAUTHENTICATED,
            consumed: line_end,
        };
    };
    let consumed = line_end + length + 2;
    if buf.len() < consumed {
        return AuthDecoded::Incomplete;
    }
    let block = &buf[line_end..consumed];
    if !block.ends_with(b"\r\n") {
        return AuthDecoded::Refused {
            reply: BAD_TERMINATION,
            consumed,
        };
    }
    let data = &block[..length];
    // memcached reads the data as a C string.
    let data = &data[..data.iter().position(|&b| b == 0).unwrap_or(data.len())];
    let mut words = tokens(data);
    match (words.next(), words.next()) {
        (Some(user), Some(password)) => AuthDecoded::Credentials {
            user,
            password,
            consumed,
        },
        _ => AuthDecoded::Refused {
            reply: BAD_FORMAT,
            consumed,
        },
    }
}

/// memcached's tokenizer: space-separated, empty tokens skipped (`\r` stays in a token).
fn tokens(line: &[u8]) -> impl Iterator<Item = &[u8]> {
    line.split(|&b| b == b' ').filter(|t| !t.is_empty())
}

/// The data length as memcached's `safe_strtoul` reads it into 32 bits: digits, then
/// only white space; no sign.
fn data_length(token: &[u8]) -> Option<usize> {
    let digits = token.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || !token[digits..].iter().all(|b| b" \t\n\x0b\x0c\r".contains(b)) {
        return None;
    }
    let mut n: u64 = 0;
    for &d in &token[..digits] {
        n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    Some(n as u32 as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_and_refusals() {
        assert_eq!(
            decode(b"set foo 0 0 7\r\nfoo bar\r\nget x\r\n"),
            AuthDecoded::Credentials {
                user: b"foo",
                password: b"bar",
                consumed: 24
            }
        );
        assert_eq!(
            decode(b"set k 1 2 11 noreply\r\n a  b extra\r\n"),
            AuthDecoded::Credentials {
                user: b"a",
                password: b"b",
                consumed: 35
            }
        );
        assert_eq!(
            decode(b"get foo\r\n"),
            AuthDecoded::Refused {
                reply: UNAUTHENTICATED,
                consumed: 9
            }
        );
        assert_eq!(
            decode(b"set foo 0 0 x\r\nab\r\n"),
            AuthDecoded::Refused {
                reply: UNAUTHENTICATED,
                consumed: 15
            }
        );
        assert_eq!(
            decode(b"set foo 0 0 2\r\nhi\r\n"),
            AuthDecoded::Refused {
                reply: BAD_FORMAT,
                consumed: 19
            }
        );
        assert_eq!(
            decode(b"set foo 0 0 2\r\nhixx"),
            AuthDecoded::Refused {
                reply: BAD_TERMINATION,
                consumed: 19
            }
        );
        assert_eq!(decode(b"set foo 0 0 7\r\nfoo b"), AuthDecoded::Incomplete);
        assert_eq!(decode(b"s"), AuthDecoded::Incomplete);
        assert_eq!(decode(&[b'a'; 2049]), AuthDecoded::Close);
        assert_eq!(decode(&[b'a'; 2048]), AuthDecoded::Incomplete);
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_and_stay_in_bounds(
            buf in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)
        ) {
            match decode(&buf) {
                AuthDecoded::Refused { consumed, .. } | AuthDecoded::Credentials { consumed, .. } => {
                    proptest::prop_assert!(consumed > 0 && consumed <= buf.len());
                }
                AuthDecoded::Incomplete | AuthDecoded::Close => {}
            }
        }

        #[test]
        fn a_login_decodes_whatever_the_key_and_flags(
            key in "[a-z]{1,20}", flags in 0u32..1000, user in "[a-z]{1,10}", pass in "[!-~]{1,10}"
        ) {
            let data = format!("{user} {pass}");
            let req = format!("set {key} {flags} 0 {}\r\n{data}\r\n", data.len());
            proptest::prop_assert_eq!(
                decode(req.as_bytes()),
                AuthDecoded::Credentials { user: user.as_bytes(), password: pass.as_bytes(), consumed: req.len() }
            );
        }
    }
}
