//! The three wire protocols around the one executor: each module decodes a request with
//! the `proto` crate, maps it onto a [`crate::cmd::Command`], runs it, and encodes the
//! outcomes with its own [`crate::cmd::Reply`] encoder, which is the one place that
//! protocol's quiet, noreply and opaque rules live. A stored value goes into a reply with
//! `slabcache::Value::append_to`, piece by piece for a chained item.
//!
//! - [`text`]: the classic text protocol (and the line-level dispatch to meta);
//! - [`meta`]: `mg ms md ma me` (`mn` is decoded with the text commands);
//! - [`binary`]: the binary protocol.

pub mod binary;
pub mod meta;
pub mod partial;
mod step;
#[cfg(test)]
mod tests;
pub mod text;
pub mod value_rest;

pub use step::{Step, Turn};
