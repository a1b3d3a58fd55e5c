//! `stats` and its groups (text), and binary Stat: the figures come from [`crate::stats`]
//! as rows; the encoders write them.

use proto::text::{StatsDetail, StatsRequest};
use proto::{ClientError, ProtoError};

use crate::context::Context;
use crate::stats::{self, Rows};

/// What a `stats` request answers.
pub enum StatsReply {
    /// A listing; `end`: followed by its terminator (`stats sizes_enable|disable` have none).
    Rows { rows: Rows, end: bool },
    /// `stats reset` (text `RESET`).
    Reset,
    /// `stats detail on|off` (text `OK`).
    DetailToggled,
    /// `stats detail dump`: the `PREFIX ...` lines and `END`, as text sends them (binary
    /// sends them as the value of one `detailed` stat).
    DetailDump(Vec<u8>),
    /// A group `-X` turns off (`stats detail dump`): text gets the error, binary an empty
    /// listing.
    Refused(ProtoError),
    /// `stats cachedump` (text only): each item's key, value size and Unix expiry time, or
    /// why not.
    Cachedump(Result<Vec<(Vec<u8>, usize, u64)>, ProtoError>),
}

pub(super) fn stats(which: StatsRequest, ctx: &Context) -> StatsReply {
    let listing = |rows| StatsReply::Rows { rows, end: true };
    match which {
        StatsRequest::General => listing(stats::general(ctx)),
        StatsRequest::Settings => listing(stats::settings(ctx)),
        StatsRequest::Items => listing(stats::items(ctx)),
        StatsRequest::Slabs => listing(stats::slabs(ctx)),
        StatsRequest::Conns => listing(stats::conns(ctx)),
        StatsRequest::Extstore => listing(Rows::new()),
        StatsRequest::Sizes => listing(match ctx.cache.size_histogram() {
            Some(rows) => rows
                .into_iter()
                .map(|(size, count)| (size.to_string(), count.to_string()))
                .collect(),
            None => vec![("sizes_status".into(), "disabled".into())],
        }),
        StatsRequest::SizesEnable | StatsRequest::SizesDisable => {
            let on = which == StatsRequest::SizesEnable;
            ctx.cache.set_size_tracking(on);
            let status = if on { "enabled" } else { "disabled" };
            StatsReply::Rows {
                rows: vec![("sizes_status".into(), status.into())],
                end: false,
            }
        }
        StatsRequest::Hotkeys => listing(hot_keys(ctx)),
        StatsRequest::Reset => {
            ctx.stats.reset();
            ctx.cache.reset_stats();
            ctx.detail.clear();
            ctx.metrics.reset();
            if let Some(tls) = &ctx.tls {
                tls.reset_counters();
            }
            StatsReply::Reset
        }
        StatsRequest::Detail(StatsDetail::On) => {
            ctx.detail.set_enabled(true);
            StatsReply::DetailToggled
        }
        StatsRequest::Detail(StatsDetail::Off) => {
            ctx.detail.set_enabled(false);
            StatsReply::DetailToggled
        }
        StatsRequest::Detail(StatsDetail::Dump) if !ctx.config.dump_enabled => {
            StatsReply::Refused(ClientError::DetailDumpNotAllowed.into())
        }
        StatsRequest::Detail(StatsDetail::Dump) => StatsReply::DetailDump(ctx.detail.dump()),
        StatsRequest::Cachedump { class, limit } => {
            if !ctx.config.dump_enabled {
                return StatsReply::Cachedump(Err(ClientError::CachedumpNotAllowed.into()));
            }
            let mut items = Vec::new();
            let clock = &ctx.clock;
            ctx.cache
                .dump(class as usize, limit as usize, |key, nbytes, exptime| {
                    items.push((key.to_vec(), nbytes, clock.to_unix(exptime)));
                });
            StatsReply::Cachedump(Ok(items))
        }
    }
}

/// `stats hotkeys`: `<key> <estimated requests/s>`, hottest first; with `-X` one
/// `hotkeys_status disabled` row (keys are data).
fn hot_keys(ctx: &Context) -> Rows {
    if !ctx.metrics.hot_keys_enabled {
        return vec![("hotkeys_status".into(), "disabled".into())];
    }
    ctx.metrics
        .hot_keys(ctx.clock.now(), crate::hotkeys::LISTED)
        .into_iter()
        .map(|(key, rate)| (crate::hotkeys::printable_key(&key), format!("{rate:.1}")))
        .collect()
}
