//! Live capture: one pinned worker thread per capture source (one per NIC RX queue), each with
//! its own per-IP shard; a coordinator on the calling thread closes ticks on the wall clock,
//! merges the shards, runs detection and emits events.
//!
//! The per-packet path is the worker's: `poll` → `parse` → `Shard::account_batch`, with no lock
//! or atomic per packet. Between polls (at most every `POLL_BUDGET` frames or `IDLE_WAIT`) the
//! worker checks its control channel: a tick request makes it hand over its tick delta and the
//! source's statistics; the coordinator answers with the recycled delta and the re-arm (the
//! addresses admitted and evicted at the boundary, the watch set; a full resync for a worker
//! that was late).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender, TryRecvError};
use surgewatch_export::diag::{self, Diag};
use surgewatch_per_ip::{Accounting, Monitor, Rearm, Shard, TickDelta, TickLength};
use surgewatch_pipeline::PacketSummary;

use crate::capture::{Capture, CaptureError, CaptureStats, Poll};
use crate::tick::{TickDriver, TickInfo, TickObserver};

/// Frames taken from a source per poll.
const POLL_BUDGET: usize = 256;
/// How long an idle worker waits on its source before checking its control channel again.
const IDLE_WAIT: Duration = Duration::from_millis(20);
/// How long the coordinator waits for a worker's delta before going on without it.
const DELTA_TIMEOUT: Duration = Duration::from_secs(2);

/// How long the coordinator waits for a worker to take or give back a source.
const SOURCE_TIMEOUT: Duration = Duration::from_secs(2);
/// How often, at most, the coordinator asks its [`Follower`] what changed.
const FOLLOW_EVERY: Duration = Duration::from_millis(50);

/// Messages to a worker.
enum Ctl<C> {
    /// Hand over the tick's delta and the source's statistics.
    Tick,
    /// The coordinator's answer: the worker's delta back, and what to re-arm with (the
    /// admitted and watch sets, a new monitor when what is monitored changed).
    Rearm(Box<TickDelta>, Rearm),
    /// Give the source back (its counters are kept) and wait for another.
    Detach,
    /// Capture from this source from now on.
    Attach(C),
}

/// Counters of the interface a live run captures, as its [`Follower`] saw it.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Times the interface disappeared (deleted) while captured.
    pub losses: u64,
    /// Times capture was attached again to an interface that came back.
    pub reattaches: u64,
}

/// What a [`Follower`] asks the coordinator to do with the workers' sources.
pub enum Follow<C> {
    /// These workers give their sources back, and the coordinator drops them all before it
    /// asks the follower again (so that new sockets and a new XDP program can take their
    /// place).
    Detach(std::ops::Range<usize>),
    /// New sources for the workers from `first` on, in worker order (`None`: that worker stays
    /// without one).
    Attach {
        /// The first worker.
        first: usize,
        /// One per worker.
        sources: Vec<Option<C>>,
    },
}

/// Follows what the workers' sources depend on (the interface) between ticks.
pub trait Follower<C> {
    /// What changed since the last call, if the sources must change. Called by the
    /// coordinator about every 50 ms, and again at once after each change it returned.
    fn poll(&mut self) -> Option<Follow<C>>;
    /// Its counters, for the status line and the summary.
    fn stats(&self) -> LinkStats;
}

/// A worker's answer to [`Ctl::Tick`].
struct Handover {
    worker: usize,
    delta: TickDelta,
    stats: CaptureStats,
    parse_errors: u64,
}

/// Per-source statistics of a live run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Name of the source (e.g. `eth0/q3 (af_xdp, copy)`).
    pub name: String,
    /// CPU core the worker was pinned to, if pinning succeeded.
    pub core: Option<usize>,
    /// The source's counters.
    pub capture: CaptureStats,
    /// Frames with a parse error.
    pub parse_errors: u64,
}

/// A capture source with the name and core of its worker.
pub struct WorkerSpec<C> {
    /// The source (one per queue).
    pub source: C,
    /// Name for statistics.
    pub name: String,
    /// Core to pin the worker to (none: not pinned).
    pub core: Option<usize>,
}

/// Settings of a live run.
#[derive(Clone, Debug)]
pub struct LiveConfig {
    /// What is monitored.
    pub monitor: Arc<Monitor>,
    /// Tick length (wall clock).
    pub tick: TickLength,
    /// Frame parsing options (mirror decapsulation).
    pub parse: surgewatch_pipeline::ParseOptions,
}

/// Nanoseconds since the epoch, now.
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Runs workers on `specs` until `stop` is set, closing a tick every tick length of wall-clock
/// time. Returns the merger with every tick closed and the final per-queue statistics.
pub fn run_live<C: Capture + Send>(
    cfg: &LiveConfig,
    specs: Vec<WorkerSpec<C>>,
    stop: &AtomicBool,
    obs: &mut dyn TickObserver,
) -> (Accounting, Vec<QueueStats>) {
    run_live_following(cfg, specs, stop, obs, None)
}

/// [`run_live`], with `follower` changing the workers' sources as the interface comes and
/// goes (see the module docs).
pub fn run_live_following<C: Capture + Send>(
    cfg: &LiveConfig,
    specs: Vec<WorkerSpec<C>>,
    stop: &AtomicBool,
    obs: &mut dyn TickObserver,
    mut follower: Option<&mut dyn Follower<C>>,
) -> (Accounting, Vec<QueueStats>) {
    let n = specs.len();
    let mut ticks = TickDriver::new(Accounting::new(cfg.monitor.clone(), cfg.tick));
    let mut queues: Vec<QueueStats> = specs
        .iter()
        .map(|s| QueueStats {
            name: s.name.clone(),
            core: s.core,
            ..QueueStats::default()
        })
        .collect();
    let tick_ns = cfg.tick.as_nanos();
    // A followed interface's comings and goings are the follower's to say, once, not every
    // worker's.
    let quiet_link_errors = follower.is_some();
    let worker_cores: Vec<usize> = specs.iter().filter_map(|s| s.core).collect();
    std::thread::scope(|scope| {
        let (hand_tx, hand_rx) = bounded::<Handover>(n.max(1));
        let (back_tx, back_rx) = bounded::<Option<C>>(n.max(1));
        let worker_stop = Arc::new(AtomicBool::new(false));
        let mut ctls = Vec::with_capacity(n);
        for (i, spec) in specs.into_iter().enumerate() {
            let (tx, rx) = bounded::<Ctl<C>>(4);
            ctls.push(tx);
            let shard = Shard::new(cfg.monitor.clone());
            let hand_tx = hand_tx.clone();
            let back_tx = back_tx.clone();
            let wstop = worker_stop.clone();
            let parse = cfg.parse;
            let spawned = std::thread::Builder::new()
                .name(format!("surgewatch-q{i}"))
                .spawn_scoped(scope, move || {
                    if let Some(core) = spec.core {
                        let _ = crate::sys::sched::pin_to_core(core);
                    }
                    let chans = WorkerChannels {
                        ctl: rx,
                        hand: hand_tx,
                        back: back_tx,
                        quiet_link_errors,
                    };
                    worker(i, spec.source, shard, parse, chans, &wstop);
                });
            if let Err(e) = spawned {
                diag::emit(Diag::WorkerNotStarted {
                    worker: i,
                    error: e.to_string(),
                });
            }
        }
        drop(hand_tx);
        drop(back_tx);
        keep_off_worker_cores(&worker_cores);

        let mut tick_start = cfg.tick.align(now_ns());
        // Workers whose delta missed a tick boundary: they missed its re-arm too.
        let mut behind = vec![false; ctls.len()];
        loop {
            let tick_end = tick_start.saturating_add(tick_ns);
            // Sleep until the tick ends (or a stop is asked for), following the interface.
            loop {
                if let Some(f) = follower.as_deref_mut() {
                    follow(f, &ctls, &back_rx);
                }
                let now = now_ns();
                if now >= tick_end || stop.load(Ordering::Relaxed) {
                    break;
                }
                let step = u64::try_from(FOLLOW_EVERY.as_nanos()).unwrap_or(u64::MAX);
                std::thread::sleep(Duration::from_nanos((tick_end - now).min(step)));
            }
            let stopping = stop.load(Ordering::Relaxed);
            let link = follower.as_deref().map(|f| f.stats());
            close_tick(
                &mut ticks,
                &ctls,
                &hand_rx,
                tick_start,
                &mut queues,
                link,
                &mut behind,
                obs,
            );
            if stopping {
                break;
            }
            // A long stall (suspend, debugger) skips whole ticks rather than replaying them.
            tick_start = cfg.tick.align(now_ns()).max(tick_end);
        }
        worker_stop.store(true, Ordering::Relaxed);
        drop(ctls);
    });
    (ticks.into_accounting(), queues)
}

/// Carries out what `f` asks for until it has nothing more (at most a few changes at once).
fn follow<C>(f: &mut dyn Follower<C>, ctls: &[Sender<Ctl<C>>], back_rx: &Receiver<Option<C>>) {
    // Sources a late worker gave back after the wait for them ended: dropped now, so that
    // nothing of theirs (an XDP program, a bound queue) stands in the way of new ones.
    while back_rx.try_recv().is_ok() {}
    for _ in 0..4 {
        match f.poll() {
            None => return,
            Some(Follow::Detach(workers)) => {
                let asked = ctls
                    .get(workers)
                    .unwrap_or_default()
                    .iter()
                    .filter(|c| c.send_timeout(Ctl::Detach, SOURCE_TIMEOUT).is_ok())
                    .count();
                // Each worker answers with its source, or with nothing when it has none: wait
                // for every answer (or the timeout), dropping the sources here.
                for _ in 0..asked {
                    if back_rx.recv_timeout(SOURCE_TIMEOUT).is_err() {
                        break;
                    }
                }
            }
            Some(Follow::Attach { first, sources }) => {
                for (c, s) in ctls.iter().skip(first).zip(sources) {
                    if let Some(s) = s {
                        let _ = c.send_timeout(Ctl::Attach(s), SOURCE_TIMEOUT);
                    }
                }
            }
        }
    }
}

/// Closes one tick: asks every worker for its delta, merges what came in time, and re-arms
/// the workers it came from. A worker that was late missed a boundary's re-arm (the addresses
/// admitted and evicted there): it gets a full resync with its next one, and until then the
/// merger checks its counts address by address.
#[allow(clippy::too_many_arguments)]
fn close_tick<C>(
    ticks: &mut TickDriver,
    ctls: &[Sender<Ctl<C>>],
    hand_rx: &Receiver<Handover>,
    tick_start: u64,
    queues: &mut [QueueStats],
    link: Option<LinkStats>,
    behind: &mut [bool],
    obs: &mut dyn TickObserver,
) {
    let mut asked = 0;
    for c in ctls {
        if c.send(Ctl::Tick).is_ok() {
            asked += 1;
        }
    }
    let mut got: Vec<Handover> = Vec::with_capacity(asked);
    while got.len() < asked {
        match hand_rx.recv_timeout(DELTA_TIMEOUT) {
            Ok(h) => got.push(h),
            Err(RecvTimeoutError::Timeout) => {
                diag::emit(Diag::WorkersLate {
                    missing: asked - got.len(),
                });
                break;
            }
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    got.sort_by_key(|h| h.worker);
    for h in &got {
        if let Some(q) = queues.get_mut(h.worker) {
            q.capture = h.stats;
            q.parse_errors = h.parse_errors;
        }
    }
    let workers: Vec<usize> = got.iter().map(|h| h.worker).collect();
    let mut deltas: Vec<TickDelta> = got.into_iter().map(|h| h.delta).collect();
    let info = TickInfo {
        idle_after: 0,
        queues,
        link,
    };
    let rearm = ticks.close(tick_start, &mut deltas, info, obs);
    let mut resync = None;
    for (w, d) in workers.iter().zip(deltas) {
        let late = behind.get_mut(*w).is_some_and(std::mem::take);
        let r = if late {
            let full = resync.get_or_insert_with(|| ticks.accounting().resync());
            Rearm {
                monitor: rearm.monitor.clone(),
                ..full.clone()
            }
        } else {
            rearm.clone()
        };
        if let Some(c) = ctls.get(*w) {
            let _ = c.send(Ctl::Rearm(Box::new(d), r));
        }
    }
    for (w, b) in behind.iter_mut().enumerate() {
        if !workers.contains(&w) {
            *b = true;
        }
    }
}

/// A worker's ends of its channels.
struct WorkerChannels<C> {
    ctl: Receiver<Ctl<C>>,
    hand: Sender<Handover>,
    /// Sources given back after [`Ctl::Detach`] (`None` from a worker without one).
    back: Sender<Option<C>>,
    /// The interface is followed: its being down or gone is not reported by the worker.
    quiet_link_errors: bool,
}

fn worker<C: Capture>(
    id: usize,
    src: C,
    mut shard: Shard,
    parse: surgewatch_pipeline::ParseOptions,
    chans: WorkerChannels<C>,
    stop: &AtomicBool,
) {
    let WorkerChannels {
        ctl,
        hand,
        back,
        quiet_link_errors,
    } = chans;
    let mut src = Some(src);
    // Counters of the sources given back, so that the worker's stay monotonic.
    let mut before = CaptureStats::default();
    let mut batch: Vec<PacketSummary> = Vec::with_capacity(POLL_BUDGET);
    let mut parse_errors = 0u64;
    loop {
        // Without a source there is nothing to poll: wait for the coordinator instead.
        let msg = match &src {
            Some(_) => ctl.try_recv(),
            None => ctl.recv_timeout(IDLE_WAIT).map_err(|e| match e {
                RecvTimeoutError::Timeout => TryRecvError::Empty,
                RecvTimeoutError::Disconnected => TryRecvError::Disconnected,
            }),
        };
        match msg {
            Ok(Ctl::Tick) => {
                let stats = match src.as_mut() {
                    Some(s) => before.plus(&s.stats()),
                    None => before,
                };
                let h = Handover {
                    worker: id,
                    delta: shard.take_tick(),
                    stats,
                    parse_errors,
                };
                if hand.send(h).is_err() {
                    return;
                }
            }
            Ok(Ctl::Rearm(d, rearm)) => shard.rearm(*d, &rearm),
            Ok(Ctl::Detach) => {
                let mut old = src.take();
                if let Some(s) = old.as_mut() {
                    before = before.plus(&s.stats());
                }
                // The coordinator drops it (and waits for it); if it is gone, so is the run.
                let _ = back.send(old);
            }
            Ok(Ctl::Attach(s)) => src = Some(s),
            Err(TryRecvError::Disconnected) => return,
            Err(TryRecvError::Empty) => {}
        }
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let Some(src) = src.as_mut() else {
            continue;
        };
        batch.clear();
        let polled = src.poll(POLL_BUDGET, |f| {
            let s = surgewatch_pipeline::parse_with(f.link, f.data, f.wire_len, &parse);
            parse_errors += u64::from(s.status.is_error());
            batch.push(s);
        });
        if !batch.is_empty() {
            shard.account_batch(&batch);
        }
        match polled {
            Ok(Poll::Frames(_)) => {}
            Ok(Poll::Idle) => src.wait(IDLE_WAIT),
            Ok(Poll::End) => src.wait(IDLE_WAIT),
            Err(e) => {
                let link = matches!(
                    e,
                    CaptureError::InterfaceDown { .. } | CaptureError::NoSuchInterface { .. }
                );
                if !(quiet_link_errors && link) {
                    diag::emit(Diag::WorkerCaptureFailed {
                        worker: id,
                        error: e.to_string(),
                    });
                }
                src.wait(IDLE_WAIT);
            }
        }
    }
}

/// Keeps the calling (control) thread from taking a pinned worker's core at a tick boundary,
/// when a worker's rings hold only milliseconds of traffic: pinned to the cores it may run on
/// (its affinity mask, e.g. from `taskset`) that no worker uses, if there are any, else at a
/// lower priority (nice +5: it still gets a quarter of a busy core, ample for the per-tick
/// work). Best effort; failures change nothing.
fn keep_off_worker_cores(worker_cores: &[usize]) {
    if worker_cores.is_empty() {
        return;
    }
    let Some(allowed) = allowed_cores() else {
        return;
    };
    let free = control_cores(&allowed, worker_cores);
    if !free.is_empty() {
        let _ = crate::sys::sched::set_affinity(&free);
    } else {
        // Lowering the priority needs no privilege.
        let _ = crate::sys::sched::set_thread_nice(5);
    }
}

/// The cores the calling thread may run on (its affinity mask, e.g. narrowed by `taskset` or
/// a cgroup's cpuset), in ascending order; `None` if the kernel does not say.
pub fn allowed_cores() -> Option<Vec<usize>> {
    crate::sys::sched::allowed_cores()
        .ok()
        .filter(|cores| !cores.is_empty())
}

/// The cores the control thread keeps to: those it may run on that no worker is pinned to
/// (empty: it shares the workers' cores).
fn control_cores(allowed: &[usize], worker_cores: &[usize]) -> Vec<usize> {
    allowed
        .iter()
        .copied()
        .filter(|c| !worker_cores.contains(c))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::control_cores;

    #[test]
    fn control_thread_stays_inside_its_affinity_mask() {
        // All cores allowed: the ones without a worker.
        assert_eq!(control_cores(&[0, 1, 2, 3], &[1, 2]), vec![0, 3]);
        // Confined to the worker's core (`taskset -c 1`): nowhere else to go, so it shares
        // (never core 0, which the operator excluded).
        assert_eq!(control_cores(&[1], &[1]), Vec::<usize>::new());
        // Confined to cores 2-5 with workers on 2 and 3.
        assert_eq!(control_cores(&[2, 3, 4, 5], &[2, 3]), vec![4, 5]);
    }
}
