//! The ElastiCache cluster configuration: text `config get|set|delete` and the binary
//! Config opcodes, served from [`crate::cluster`].

use super::outcome::{Outcome, Reply};
use crate::context::Context;

pub(super) fn get<R: Reply>(key: &[u8], ctx: &Context, reply: &mut R) {
    reply.send(Outcome::Config(key, ctx.cluster.config_get(key)));
}

pub(super) fn set<R: Reply>(key: &[u8], flags: u32, value: &[u8], ctx: &Context, reply: &mut R) {
    reply.send(Outcome::ConfigChanged(
        true,
        ctx.cluster.config_set(key, flags, value),
    ));
}

pub(super) fn delete<R: Reply>(key: &[u8], ctx: &Context, reply: &mut R) {
    reply.send(Outcome::ConfigChanged(false, ctx.cluster.config_delete(key)));
}
