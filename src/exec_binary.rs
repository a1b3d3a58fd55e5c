//! Binary protocol execution: not implemented yet; a binary connection is closed.

use crate::exec::{Action, Step};
use crate::server::Shared;
use crate::stats::Counters;

pub fn step(_input: &[u8], _shared: &Shared, _counters: &Counters, _out: &mut Vec<u8>) -> Step {
    Step::done(0, Action::Close)
}
