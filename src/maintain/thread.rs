//! The maintenance thread's loop (see the [`crate::maintain`] docs).

use std::io;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::context::Context;

/// Items one crawl slice looks at (memcached's `crawls_persleep`).
pub const CRAWL_BUDGET: usize = 1000;

/// How long the thread sleeps when it has nothing to do.
pub const IDLE: Duration = Duration::from_secs(1);

/// The LRU maintainer's pause after a pass that moved items, and the most it backs off
/// to (doubling) while passes find nothing to move (memcached's 1 ms .. 1 s).
pub const LRU_BUSY: Duration = Duration::from_millis(1);
pub const LRU_IDLE: Duration = Duration::from_secs(1);

/// Start the maintenance thread; it runs until [`crate::maintain::Maintenance::stop`].
pub fn spawn(shared: Arc<Context>) -> io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("maintenance".into())
        .spawn(move || run(&shared))
}

fn run(shared: &Context) {
    let maintenance = &shared.maintenance;
    let mut next_crawl = Instant::now();
    let mut next_lru = Instant::now();
    let mut lru_pause = LRU_BUSY;
    loop {
        let tunables = maintenance.tunables();
        let now = shared.clock.now();
        let moving = shared.config.slab_reassign && shared.cache.rebalance_step(now);
        if tunables.lru_crawler && Instant::now() >= next_crawl {
            let crawling = shared
                .cache
                .crawl_step(now, CRAWL_BUDGET, tunables.lru_crawler_tocrawl);
            let pause = if crawling {
                Duration::from_micros(tunables.lru_crawler_sleep.into())
            } else {
                IDLE
            };
            next_crawl = Instant::now() + pause;
        }
        if shared.config.lru_maintainer && Instant::now() >= next_lru {
            lru_pause = if shared.cache.lru_maintain(now) > 0 {
                LRU_BUSY
            } else {
                (lru_pause * 2).min(LRU_IDLE)
            };
            next_lru = Instant::now() + lru_pause;
        }
        let pause = if moving {
            std::thread::yield_now();
            Duration::ZERO
        } else if tunables.lru_crawler {
            next_crawl.saturating_duration_since(Instant::now()).min(IDLE)
        } else {
            IDLE
        };
        let pause = if shared.config.lru_maintainer {
            pause.min(next_lru.saturating_duration_since(Instant::now()))
        } else {
            pause
        };
        let (kicked, stop) = maintenance.wait(pause);
        if stop {
            return;
        }
        if kicked {
            next_crawl = Instant::now();
        }
    }
}
