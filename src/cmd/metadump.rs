//! An `lru_crawler metadump` in progress, listed a class at a time (see [`super::admin`]).

use proto::text::{ClassIds, MetadumpItem};

use crate::context::Context;

/// An `lru_crawler metadump` in progress: the classes still to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metadump {
    pub(super) remaining: ClassIds,
}

impl Metadump {
    /// Hand the items of the next class to `item`. Returns false, having listed nothing,
    /// once every class has been listed.
    pub fn step(&mut self, ctx: &Context, mut item: impl FnMut(&MetadumpItem<'_>)) -> bool {
        let Some(class) = self.remaining.pop_first() else {
            return false;
        };
        let clock = &ctx.clock;
        ctx.cache.metadump(Some(&[class]), clock.now(), |entry| {
            item(&MetadumpItem {
                key: entry.key,
                exptime: (entry.exptime != 0).then(|| clock.to_unix(entry.exptime)),
                last_access: clock.started_unix() + u64::from(entry.last_access),
                cas: entry.cas,
                fetched: entry.fetched,
                class: entry.class,
                size: entry.total_size,
            });
        });
        true
    }
}
