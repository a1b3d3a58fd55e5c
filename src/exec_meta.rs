//! Meta protocol execution (mg ms md ma mn me): not implemented yet; every meta command is
//! answered `ERROR`, as a server without meta support would.

use proto::meta::MetaDecoded;

use crate::exec::{Action, Step};
use crate::server::Shared;
use crate::stats::Counters;

pub fn step(decoded: MetaDecoded<'_>, _shared: &Shared, _counters: &Counters, out: &mut Vec<u8>) -> Step {
    match decoded {
        MetaDecoded::Incomplete => Step::Incomplete,
        MetaDecoded::Request { consumed, .. } => {
            out.extend_from_slice(b"ERROR\r\n");
            Step::done(consumed, Action::Continue)
        }
        MetaDecoded::Error {
            error,
            consumed,
            swallow,
            close,
            ..
        } => {
            let action = if close { Action::Close } else { Action::Continue };
            if swallow > 0 {
                Step::Done {
                    consumed,
                    swallow,
                    after_swallow: error.line(),
                    action,
                }
            } else {
                out.extend_from_slice(error.line());
                Step::done(consumed, action)
            }
        }
    }
}
