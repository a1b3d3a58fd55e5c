//! The administrative text commands (`slabs reassign|automove`,
//! `lru_crawler ...`, `lru ...`, `watch`, `refresh_certs`): the engine's page mover and
//! crawler, the run-time settings kept by [`crate::maintain::Maintenance`], and log watchers
//! ([`crate::watch`]). Replies and the order of memcached
//! 1.6.18's checks are described on [`proto::text::AdminRequest`].
//!
//! `lru_crawler metadump` is listed a class at a time ([`Metadump`]): the connection asks
//! for the next class only once its write buffer has drained below its high-water mark,
//! so a dump takes at most one class's lines of memory beyond that.

use proto::text::{AdminRequest, ClassIds, ClassSelection, WatchStreams};
use proto::{AdminError, ClientError, ProtoError};
use slabcache::{CrawlError, ReassignError};

use super::metadump::Metadump;
use super::outcome::{Action, Outcome, Reply};
use crate::context::Context;

/// Execute one administrative command. `stacked`: replies of earlier commands are still
/// queued in this batch (memcached refuses a metadump after them).
pub(super) fn execute<R: Reply>(
    request: AdminRequest,
    stacked: bool,
    shared: &Context,
    reply: &mut R,
) -> Action {
    let settings = &shared.maintenance;
    let result: Result<(), ProtoError> = match request {
        AdminRequest::Watch { streams } => match watch(streams, stacked, shared) {
            Ok(streams) => return Action::Watch(streams),
            Err(e) => Err(e),
        },
        AdminRequest::SlabsReassign { src, dst } => reassign(src, dst, shared),
        AdminRequest::SlabsAutomove { mode } => {
            settings.update(|t| t.slab_automove = mode);
            shared.cache.set_automove(mode);
            Ok(())
        }
        AdminRequest::SlabsAutomoveRatio { ratio } => {
            settings.update(|t| t.slab_automove_ratio = ratio.0);
            shared
                .cache
                .set_automove_tuning(ratio.0, shared.config.slab_automove_window as usize);
            Ok(())
        }
        AdminRequest::CrawlerCrawl { classes } => crawl(classes, shared),
        AdminRequest::CrawlerMetadump { classes } => match metadump_start(classes, stacked, shared) {
            Ok(dump) => return Action::Metadump(dump),
            Err(e) => Err(e),
        },
        AdminRequest::CrawlerTocrawl { items } => {
            settings.update(|t| t.lru_crawler_tocrawl = items);
            Ok(())
        }
        AdminRequest::CrawlerSleep { micros } => {
            settings.update(|t| t.lru_crawler_sleep = micros);
            Ok(())
        }
        AdminRequest::CrawlerEnable => {
            if settings.update(|t| std::mem::replace(&mut t.lru_crawler, true)) {
                Err(AdminError::CrawlerStartFailed.into())
            } else {
                settings.kick();
                Ok(())
            }
        }
        AdminRequest::CrawlerDisable => {
            settings.update(|t| t.lru_crawler = false);
            Ok(())
        }
        AdminRequest::LruTune(tuning) => {
            settings.update(|t| {
                t.hot_lru_pct = tuning.hot_pct;
                t.warm_lru_pct = tuning.warm_pct;
                t.hot_max_factor = tuning.hot_factor.0;
                t.warm_max_factor = tuning.warm_factor.0;
            });
            shared.cache.set_warm_pct(tuning.warm_pct.clamp(0, 80) as u8);
            shared.cache.set_hot_pct(tuning.hot_pct.clamp(0, 80) as u8);
            shared.cache.set_hot_max_factor(tuning.hot_factor.0);
            Ok(())
        }
        // memcached has these two only while its LRU maintainer runs.
        AdminRequest::LruMode { .. } | AdminRequest::LruTempTtl { .. } if !shared.config.lru_maintainer => {
            Err(ProtoError::Error)
        }
        AdminRequest::LruMode { segmented } => {
            settings.update(|t| t.lru_segmented = segmented);
            shared.cache.set_lru_segmented(segmented);
            Ok(())
        }
        AdminRequest::RefreshCerts => {
            let result = match &shared.tls {
                Some(tls) => tls.refresh(),
                None => Err(crate::net::tls::TlsError::NotEnabled),
            };
            match result {
                Ok(()) => Ok(()),
                Err(e) => {
                    log::warn!("refresh_certs: {e}");
                    reply.send(Outcome::Message(format!("{e}\r\n")));
                    return Action::Continue;
                }
            }
        }
        AdminRequest::LruTempTtl { ttl } => {
            let ttl = u32::try_from(ttl).ok();
            settings.update(|t| match ttl {
                Some(ttl) => {
                    t.temp_lru = true;
                    t.temporary_ttl = ttl;
                }
                None => t.temp_lru = false,
            });
            shared.cache.set_temp_ttl(ttl);
            Ok(())
        }
    };
    reply.send(match result {
        Ok(()) => Outcome::Ok,
        Err(e) => Outcome::Failed(e),
    });
    Action::Continue
}

/// `watch`: memcached's checks in its order, then a watcher slot. Log lines carry keys,
/// which are data: `-X` (no dumping) refuses watchers as `-W` does.
fn watch(streams: Option<WatchStreams>, stacked: bool, shared: &Context) -> Result<WatchStreams, ProtoError> {
    if !shared.config.watch_enabled || !shared.config.dump_enabled {
        return Err(ClientError::WatchNotAllowed.into());
    }
    if stacked {
        return Err(AdminError::WatchPipelined.into());
    }
    let streams = streams.ok_or(ProtoError::Error)?;
    shared
        .watch
        .reserve()
        .map_err(|crate::watch::WatchError::TooMany| AdminError::WatcherTooMany)?;
    Ok(streams)
}

fn reassign(src: i32, dst: i32, shared: &Context) -> Result<(), ProtoError> {
    if !shared.config.slab_reassign {
        return Err(ClientError::SlabReassignDisabled.into());
    }
    match shared.cache.reassign(src, dst) {
        Ok(()) => {
            shared.maintenance.kick();
            Ok(())
        }
        Err(e) => Err(match e {
            ReassignError::Busy => AdminError::ReassignBusy,
            ReassignError::BadClass => AdminError::ReassignBadClass,
            ReassignError::NoSpare => AdminError::ReassignNoSpare,
            ReassignError::Same => AdminError::ReassignSame,
        }
        .into()),
    }
}

/// memcached's answers that do not depend on the engine, after the crawler-enabled check:
/// the class list's error, `BUSY` while a crawl runs, `NOTSTARTED` for a list naming no
/// class. `Ok` holds the classes this engine has (`None` = all), possibly none.
fn crawl_classes(
    classes: Result<ClassSelection, AdminError>,
    shared: &Context,
) -> Result<Option<ClassIds>, AdminError> {
    let selection = classes?;
    let busy = shared.cache.crawler_stats().lru_crawler_running;
    match selection {
        ClassSelection::All | ClassSelection::Hash => {}
        ClassSelection::Ids(_) if busy => {}
        ClassSelection::Ids(ids) if ids.is_empty() => return Err(AdminError::CrawlerNotStarted),
        ClassSelection::Ids(ids) => {
            // memcached starts a crawler on any id below 64, class or not; ids past this
            // engine's last class have nothing to crawl here.
            return Ok(Some(
                ids.intersection(ClassIds::first(shared.cache.class_count())),
            ));
        }
    }
    if busy {
        return Err(AdminError::CrawlerBusy);
    }
    Ok(None)
}

fn crawl(classes: Result<ClassSelection, AdminError>, shared: &Context) -> Result<(), ProtoError> {
    if !shared.maintenance.tunables().lru_crawler {
        return Err(ClientError::LruCrawlerDisabled.into());
    }
    // memcached walks the hash table for metadump only.
    if classes == Ok(ClassSelection::Hash) {
        crawl_classes(classes, shared)?;
        return Err(AdminError::CrawlerUnknownError.into());
    }
    let ids: Option<Vec<usize>> = crawl_classes(classes, shared)?.map(|ids| ids.iter().collect());
    if ids.as_ref().is_some_and(Vec::is_empty) {
        return Ok(()); // memcached says OK for ids that name no class it has
    }
    match shared.cache.crawl_start(ids.as_deref()) {
        Ok(()) => {
            shared.maintenance.kick();
            Ok(())
        }
        Err(e) => Err(match e {
            CrawlError::Busy => AdminError::CrawlerBusy,
            CrawlError::BadClass => AdminError::CrawlerBadClass,
            CrawlError::NotStarted => AdminError::CrawlerNotStarted,
        }
        .into()),
    }
}

fn metadump_start(
    classes: Result<ClassSelection, AdminError>,
    stacked: bool,
    shared: &Context,
) -> Result<Metadump, ProtoError> {
    if !shared.maintenance.tunables().lru_crawler {
        return Err(ClientError::LruCrawlerDisabled.into());
    }
    if !shared.config.dump_enabled {
        return Err(AdminError::MetadumpNotAllowed.into());
    }
    if stacked {
        return Err(AdminError::MetadumpPipelined.into());
    }
    let all = ClassIds::first(shared.cache.class_count());
    let remaining = crawl_classes(classes, shared)?.unwrap_or(all);
    Ok(Metadump { remaining })
}
