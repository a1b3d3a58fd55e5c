//! The three wire protocols around the one executor: each module decodes a request with
//! the `proto` crate, maps it onto a [`crate::cmd::Command`], runs it, and encodes the
//! outcomes with its own [`crate::cmd::Reply`] encoder, which is the one place that
//! protocol's quiet, noreply and opaque rules live. Each encoder writes a stored value
//! into a reply in one function, `push_value`.
//!
//! - [`text`]: the classic text protocol (and the line-level dispatch to meta);
//! - [`meta`]: `mg ms md ma me` (`mn` is decoded with the text commands);
//! - [`binary`]: the binary protocol.

pub mod binary;
pub mod meta;
mod step;
#[cfg(test)]
mod tests;
pub mod text;

pub use step::Step;
