//! Feeds arbitrary bytes to the two authentication gates: the text login of `-Y`
//! (`text_auth::decode`, run as a connection would, step after step) and the binary
//! protocol's refusal of unauthenticated frames under `-S`. Checks that nothing panics, that
//! no step claims bytes it was not given or makes no progress, and that a refused frame
//! carries an opcode other than SASL's and Version.
#![no_main]
#![deny(unsafe_code)]

use libfuzzer_sys::fuzz_target;
use proto::binary;
use proto::text_auth::{self, AuthDecoded};

fuzz_target!(|data: &[u8]| {
    let mut buf = data;
    loop {
        let consumed = match text_auth::decode(buf) {
            AuthDecoded::Incomplete | AuthDecoded::Close => break,
            AuthDecoded::Refused { consumed, .. } => consumed,
            AuthDecoded::Credentials { user, password, consumed } => {
                assert!(!user.is_empty() && !password.is_empty());
                consumed
            }
        };
        assert!(consumed > 0 && consumed <= buf.len());
        buf = &buf[consumed..];
    }
    if let Some(refused) = binary::refuse_unauthenticated(data) {
        assert!(refused.close && refused.consumed <= data.len());
        assert!(!binary::allowed_before_auth(refused.opcode));
    }
});
