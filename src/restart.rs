//! `-e <file>`: the warm restart (memcached's restartable cache, 1.5.18+).
//!
//! The arena is the memory file's map (the engine's `Cache::open_file`). A graceful stop
//! (SIGUSR1, or `shutdown graceful` with `-A`) stops every thread, then [`save`] writes
//! `<file>.meta`: the engine's [`Snapshot`] (settings, page owners, CAS counter, page
//! checksum) and the server's clock, with a checksum of the whole text as its last line.
//! Any other end (SIGTERM, `shutdown`, a crash, kill -9) writes nothing.
//!
//! At start, [`open`] reads and then deletes the metadata file *before* the memory file is
//! used, so a process that dies later leaves no metadata behind and the next start is
//! empty: a file is only ever trusted together with the metadata of the stop that wrote
//! it. A missing, damaged or mismatched metadata file (or memory file) starts the cache
//! empty and logs why; a metadata file that is empty refuses to start, as memcached does
//! (we never write one: it is an operator's or another tool's).
//!
//! Cache time continues across the restart: the new clock keeps the old process's
//! epoch, so the time the server was down passes for the items (see `Clock::resume`).

use std::fmt::Write as _;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use slabcache::{Cache, Restored, Snapshot, LAYOUT_VERSION};

use crate::clock::Clock;
use crate::config::Config;
use crate::context::{apply_tunables, cache_config, Context};

/// First word of a metadata file.
const MAGIC: &str = "slabcached-memory-file";

/// Why the server cannot start with its memory file.
#[derive(Debug)]
pub enum OpenError {
    /// The metadata file exists but is empty (memcached refuses it too).
    EmptyMeta(PathBuf),
    /// The memory file could not be opened, sized, locked or mapped.
    Cache(slabcache::CacheError),
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::EmptyMeta(p) => write!(
                f,
                "[restart] metadata file {} is empty; remove it to start with an empty cache",
                p.display()
            ),
            OpenError::Cache(e) => write!(f, "[restart] {e}"),
        }
    }
}

impl std::error::Error for OpenError {}

/// The metadata file next to a memory file.
pub fn meta_path(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".meta");
    PathBuf::from(name)
}

/// What a clean stop left for the next start.
#[derive(Debug)]
struct Saved {
    snapshot: Snapshot,
    /// The stopped process's clock: unix time of its cache time 0, and its cache time.
    epoch: u64,
    stopped_at: u32,
    stop_unix_ms: u64,
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The checksum line's value for `body` (every byte before that line).
fn text_checksum(body: &str) -> String {
    format!("{:016x}", slabcache::checksum(body.as_bytes()))
}

/// Read a metadata file's text; the error is the reason it cannot be used.
fn parse_meta(text: &str) -> Result<Saved, String> {
    let body_end = text
        .trim_end_matches('\n')
        .rfind('\n')
        .map(|i| i + 1)
        .ok_or("metadata file has a single line (truncated?)")?;
    let (body, last) = text.split_at(body_end);
    let first = body.lines().next().unwrap_or("");
    let Some(version) = first.strip_prefix(MAGIC).map(str::trim) else {
        return Err("not a slabcached metadata file".into());
    };
    if version != LAYOUT_VERSION.to_string() {
        return Err(format!(
            "metadata file layout version {version} is not this build's ({LAYOUT_VERSION})"
        ));
    }
    match last.trim_end().strip_prefix("checksum ") {
        Some(sum) if sum == text_checksum(body) => {}
        Some(_) => return Err("metadata file checksum mismatch (damaged)".into()),
        None => return Err("metadata file has no checksum line (truncated?)".into()),
    }
    let field = |key: &str| -> Result<u64, String> {
        body.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(' '))
            .ok_or_else(|| format!("metadata has no `{key}` line"))?
            .parse()
            .map_err(|_| format!("metadata line `{key}` is malformed"))
    };
    let snapshot = Snapshot::parse(body).map_err(|e| e.to_string())?;
    Ok(Saved {
        snapshot,
        epoch: field("epoch")?,
        stopped_at: u32::try_from(field("stopped_at")?).map_err(|_| "stopped_at out of range")?,
        stop_unix_ms: field("stop_unix_ms")?,
    })
}

/// Build the cache over `config`'s memory file, restoring the items a graceful stop left
/// when everything checks out, and the clock that goes with it.
pub fn open(config: &Config) -> Result<(Cache, Clock), OpenError> {
    let Some(file) = config.memory_file.as_deref() else {
        let cache = crate::context::build_cache(config).map_err(OpenError::Cache)?;
        return Ok((cache, Clock::new()));
    };
    let started = Instant::now();
    let meta = meta_path(file);
    let saved = match std::fs::read(&meta) {
        Ok(bytes) if bytes.is_empty() => return Err(OpenError::EmptyMeta(meta)),
        Ok(bytes) => {
            let parsed = String::from_utf8(bytes)
                .map_err(|_| "metadata file is not text".to_string())
                .and_then(|text| parse_meta(&text));
            // Deleted before the memory file is touched: should this process die, the
            // next start finds no metadata and starts empty.
            match (parsed, std::fs::remove_file(&meta)) {
                (Ok(saved), Ok(())) => Ok(saved),
                (Ok(_), Err(e)) => Err(format!("cannot remove {}: {e}", meta.display())),
                (Err(why), _) => Err(why),
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            Err("no metadata file (first start, or the last stop was not a graceful one)".to_string())
        }
        Err(e) => Err(format!("cannot read {}: {e}", meta.display())),
    };
    let clock = match &saved {
        Ok(s) => Clock::resume(s.epoch, s.stopped_at),
        Err(_) => Clock::new(),
    };
    let snapshot = saved.as_ref().ok().map(|s| &s.snapshot);
    let (cache, restored) =
        Cache::open_file(cache_config(config), file, snapshot, clock.now()).map_err(OpenError::Cache)?;
    apply_tunables(&cache, config);
    let took = started.elapsed().as_secs_f64() * 1000.0;
    match (restored, saved) {
        (Restored::Warm { items, dropped }, saved) => {
            let down_ms = saved.map_or(0, |s| unix_ms().saturating_sub(s.stop_unix_ms));
            log::warn!(
                "[restart] restored {items} items from {} in {took:.0} ms ({dropped} expired or \
                 flushed while down for {:.3} s)",
                file.display(),
                down_ms as f64 / 1000.0
            );
        }
        (Restored::Empty(Some(why)), _) => {
            log::warn!("[restart] starting with an empty cache: {why}");
        }
        (Restored::Empty(None), Err(why)) => {
            log::warn!("[restart] starting with an empty cache: {why}");
        }
        (Restored::Empty(None), Ok(_)) => log::warn!("[restart] starting with an empty cache"),
    }
    Ok((cache, clock))
}

/// Write `<file>.meta` for the next start. Call after every worker and the maintenance
/// thread stopped. Returns the items saved.
pub fn save(shared: &Context) -> Result<usize, Box<dyn std::error::Error>> {
    let Some(file) = shared.config.memory_file.as_deref() else {
        return Ok(0);
    };
    let started = Instant::now();
    shared.clock.tick();
    let now = shared.clock.now();
    let snapshot = shared.cache.snapshot(now)?;
    let mut text = String::new();
    let _ = writeln!(text, "{MAGIC} {LAYOUT_VERSION}");
    let _ = writeln!(text, "server_version {}", env!("CARGO_PKG_VERSION"));
    let _ = writeln!(text, "stop_unix_ms {}", unix_ms());
    let _ = writeln!(text, "epoch {}", shared.clock.started_unix());
    let _ = writeln!(text, "stopped_at {now}");
    snapshot.write_to(&mut text);
    let sum = text_checksum(&text);
    let _ = writeln!(text, "checksum {sum}");

    let meta = meta_path(file);
    let mut tmp = meta.clone().into_os_string();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
    }
    // The rename is atomic: the next start sees the whole file or none.
    std::fs::rename(&tmp, &meta)?;
    log::warn!(
        "[restart] saved {} items: {} in {:.0} ms",
        snapshot.items,
        meta.display(),
        started.elapsed().as_secs_f64() * 1000.0
    );
    Ok(snapshot.items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_path_appends_the_extension() {
        assert_eq!(
            meta_path(Path::new("/dev/shm/x")),
            PathBuf::from("/dev/shm/x.meta")
        );
    }

    #[test]
    fn damaged_or_foreign_metadata_is_refused_with_a_reason() {
        assert!(parse_meta("Tmain\nKmaxbytes 1\n")
            .unwrap_err()
            .contains("not a slabcached"));
        let body = format!("{MAGIC} {LAYOUT_VERSION}\nepoch 5\n");
        let bad_sum = format!("{body}checksum 0000000000000000\n");
        assert!(parse_meta(&bad_sum).unwrap_err().contains("checksum"));
        let no_sum = format!("{body}epoch 6\n");
        assert!(parse_meta(&no_sum).unwrap_err().contains("checksum"));
        let other = format!("{MAGIC} 999\nx\n");
        assert!(parse_meta(&other).unwrap_err().contains("layout version"));
    }
}
