//! The tick boundary, written once for replay and live capture.
//!
//! A run owns one [`TickDriver`] (the merger) and one [`TickObserver`] (detection and output).
//! At every tick boundary, whatever drives the workers — the replay reader's inline shard or
//! its worker threads, the live coordinator's pinned queue workers — does the same three steps:
//!
//! 1. every shard hands over its delta ([`Shard::take_tick`](surgewatch_per_ip::Shard::take_tick)),
//!    in worker order;
//! 2. [`TickDriver::close`] merges them and closes the tick, gives the closed tick to the
//!    observer ([`TickObserver::on_tick`], which answers with the next tick's watch list and,
//!    for the host agent, a new monitor), then calls [`TickObserver::after_tick`] with the
//!    merged accounting (periodic baseline saves);
//! 3. every shard is re-armed with its own delta and the returned [`Rearm`]
//!    ([`Shard::rearm`](surgewatch_per_ip::Shard::rearm)) before it counts a packet of the
//!    new tick.

use std::path::Path;

use surgewatch_per_ip::{Accounting, ClosedTick, NextTick, Rearm, TickDelta};

use crate::live::{LinkStats, QueueStats};

/// What a run's driver knows about a tick beyond the tick itself.
#[derive(Copy, Clone, Debug, Default)]
pub struct TickInfo<'a> {
    /// Empty ticks that follow the closed one (replay: a gap in the capture's timestamps).
    pub idle_after: u64,
    /// Live capture: per-queue statistics as of the tick's end (empty in replay).
    pub queues: &'a [QueueStats],
    /// Live capture of an interface that is followed: its link counters (`None` in replay).
    pub link: Option<LinkStats>,
}

/// What hears about a run as it goes: the one observer of replay and live capture.
pub trait TickObserver {
    /// A tick was closed (every shard merged). Returns what the next tick needs: the targets
    /// whose sources the shards should analyse, a new monitor.
    fn on_tick(&mut self, tick: &ClosedTick<'_>, info: &TickInfo<'_>) -> NextTick;
    /// After each tick, with the merged accounting (e.g. to persist baselines).
    fn after_tick(&mut self, acct: &Accounting) {
        let _ = acct;
    }
    /// Replay progress: bytes of all captures consumed so far.
    fn on_progress(&mut self, bytes_done: u64) {
        let _ = bytes_done;
    }
    /// Replay: a file's timestamps were shifted forward by `shift_ns` to keep time monotonic.
    fn on_time_shift(&mut self, file: &Path, shift_ns: u64) {
        let _ = (file, shift_ns);
    }
    /// Replay: within `file`, timestamps jumped back by `back_ns`; the rest of it is shifted
    /// by `shift_ns` (see [`crate::replay`]).
    fn on_time_jump(&mut self, file: &Path, back_ns: u64, shift_ns: u64) {
        let _ = (file, back_ns, shift_ns);
    }
}

/// The merger of a run and the one place where a tick boundary is crossed (see the module
/// docs for the call order).
#[derive(Debug)]
pub struct TickDriver {
    acct: Accounting,
}

impl TickDriver {
    /// A driver over a fresh merger.
    pub fn new(acct: Accounting) -> Self {
        TickDriver { acct }
    }

    /// Step 2 of a tick boundary: merges `deltas` (in worker order), closes the tick that
    /// started at `start_ns`, lets `obs` see it, and returns what to re-arm every shard with.
    pub fn close(
        &mut self,
        start_ns: u64,
        deltas: &mut [TickDelta],
        info: TickInfo<'_>,
        obs: &mut dyn TickObserver,
    ) -> Rearm {
        let rearm = self
            .acct
            .close_tick(start_ns, deltas, |tick| obs.on_tick(tick, &info));
        obs.after_tick(&self.acct);
        rearm
    }

    /// The merger.
    pub fn accounting(&self) -> &Accounting {
        &self.acct
    }

    /// The merger, once the run is over.
    pub fn into_accounting(self) -> Accounting {
        self.acct
    }
}
