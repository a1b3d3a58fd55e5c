//! The background maintenance thread and the settings it runs by.
//!
//! One thread does what memcached spreads over its slab rebalancer and LRU crawler
//! threads, in bounded slices of engine work:
//! - with slab reassignment on (`-o slab_reassign`, the default), [`Cache::rebalance_step`]
//!   advances a page move, or lets the automove balancer pick one; while a move is in
//!   progress it is called again at once (the thread yields between slices);
//! - while the LRU crawler is enabled, [`Cache::crawl_step`] looks at up to
//!   [`thread::CRAWL_BUDGET`] items, then the thread pauses `lru_crawler_sleep` microseconds
//!   before the next slice, as memcached's crawler does between batches.
//!
//! - with the LRU maintainer on (`-o lru_maintainer`, the default), [`Cache::lru_maintain`]
//!   moves COLD items read twice to WARM and keeps each class's HOT and WARM lists at their
//!   shares, every [`thread::LRU_BUSY`] while it finds work, backing off to
//!   [`thread::LRU_IDLE`] while it does not.
//!
//! When none has work it sleeps [`thread::IDLE`] (the engine starts periodic crawls and
//! automove decisions itself when called). Commands that give it work (`slabs reassign`,
//! `lru_crawler crawl|enable`) wake it at once through [`Maintenance::kick`], and
//! shutdown through [`Maintenance::stop`].
//!
//! [`Maintenance`] also holds the [`Tunables`]: the settings `slabs automove`,
//! `lru_crawler ...` and `lru ...` change at run time and `stats settings` shows.
//!
//! The thread itself is in [`thread`].
//!
//! [`Cache::rebalance_step`]: slabcache::Cache::rebalance_step
//! [`Cache::crawl_step`]: slabcache::Cache::crawl_step
//! [`Cache::lru_maintain`]: slabcache::Cache::lru_maintain

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use crate::config::Tunables;

pub mod thread;

/// The maintenance thread's controls and the run-time settings.
pub struct Maintenance {
    state: Mutex<State>,
    wake: Condvar,
}

struct State {
    tunables: Tunables,
    /// Work arrived: run both steps now.
    kicked: bool,
    stop: bool,
}

impl Maintenance {
    pub fn new(tunables: Tunables) -> Maintenance {
        Maintenance {
            state: Mutex::new(State {
                tunables,
                kicked: false,
                stop: false,
            }),
            wake: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The settings in force.
    pub fn tunables(&self) -> Tunables {
        self.lock().tunables.clone()
    }

    /// Change settings; the thread picks them up on its next round.
    pub fn update<R>(&self, change: impl FnOnce(&mut Tunables) -> R) -> R {
        change(&mut self.lock().tunables)
    }

    /// Wake the thread now: a page move or a crawl was requested.
    pub fn kick(&self) {
        self.lock().kicked = true;
        self.wake.notify_one();
    }

    /// Make the thread return; [`thread::spawn`]'s handle can then be joined.
    pub fn stop(&self) {
        self.lock().stop = true;
        self.wake.notify_one();
    }

    /// Sleep up to `pause`, less if kicked or stopped. Returns (kicked, stop).
    pub(crate) fn wait(&self, pause: Duration) -> (bool, bool) {
        let mut state = self.lock();
        if !state.kicked && !state.stop && !pause.is_zero() {
            state = self
                .wake
                .wait_timeout(state, pause)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        (std::mem::take(&mut state.kicked), state.stop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Instant;

    #[test]
    fn kick_and_stop_end_a_wait_early() {
        let m = Arc::new(Maintenance::new(Tunables::default()));
        let started = Instant::now();
        let waiter = {
            let m = Arc::clone(&m);
            std::thread::spawn(move || m.wait(Duration::from_secs(30)))
        };
        std::thread::sleep(Duration::from_millis(20));
        m.kick();
        assert_eq!(waiter.join().unwrap(), (true, false));
        m.stop();
        assert_eq!(m.wait(Duration::from_secs(30)), (false, true));
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn updates_are_seen() {
        let m = Maintenance::new(Tunables::default());
        m.update(|t| t.lru_crawler_sleep = 7);
        assert_eq!(m.tunables().lru_crawler_sleep, 7);
    }
}
