//! Replay: captures → pipeline → per-ip, on one thread or on a reader plus worker threads.
//!
//! Time comes only from the captures' timestamps. Files are replayed in the order given; when a
//! file starts before the previous one ended, its timestamps are shifted forward by a whole
//! number of ticks so that time stays monotonic (and the shift is reported); so is the rest of
//! a file whose timestamps jump back by more than an hour.
//!
//! With one worker everything runs on the calling thread and frames are parsed straight out of
//! the reader's buffer. With `N > 1` workers the calling thread reads, copies frames into
//! recycled batches and deals them round-robin to the workers; at every tick boundary it sends
//! each worker a tick marker, collects every shard's delta, merges them and closes the tick.
//! Sums commute and admission is ordered, so the result does not depend on `N`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crossbeam_channel::{bounded, Receiver, Sender};
use surgewatch_per_ip::{
    Accounting, Monitor, Rearm, Shard, TickAdvance, TickClock, TickDelta, TickLength,
};
use surgewatch_pipeline::{parse_with, LinkType, PacketSummary, ParseOptions};

use crate::capture::pcap::{PcapFileSource, RecordAnomalies};
use crate::capture::{Capture, CaptureError, Frame, Poll};
use crate::tick::{TickDriver, TickInfo, TickObserver};

/// Frames lent per `poll` call.
const POLL_BUDGET: usize = 256;
/// Frames earlier than the current tick by more than this (an hour) mean the capture's
/// timestamps jumped back: the rest of the file is shifted forward. Frames a little out of
/// order stay late frames of the current tick.
const MAX_JUMP_BACK_NS: u64 = 3_600_000_000_000;
/// Frames per batch handed to a worker.
const BATCH_FRAMES: usize = 512;
/// Summaries accounted at once (see `Shard::account_batch`).
const ACCOUNT_BATCH: usize = 256;
/// Batches in flight per worker.
const BATCHES_PER_WORKER: usize = 8;

/// What a replay needs.
#[derive(Clone, Debug)]
pub struct ReplayConfig {
    /// Captures, replayed in this order.
    pub files: Vec<PathBuf>,
    /// What is monitored.
    pub monitor: Arc<Monitor>,
    /// Tick length.
    pub tick: TickLength,
    /// Worker threads (1 = everything on the calling thread).
    pub workers: usize,
    /// Frame parsing options (mirror decapsulation).
    pub parse: ParseOptions,
    /// When set (by SIGINT, SIGTERM or SIGQUIT), reading stops after the current poll and the
    /// replay finishes with what was read: the last tick closed, the outcome complete.
    pub stop: Option<&'static AtomicBool>,
}

/// The result of a replay: the merged accounting and what went wrong per file.
pub struct ReplayOutcome {
    /// The merger, with every tick closed.
    pub accounting: Accounting,
    /// Errors met while reading (frames before each error were replayed).
    pub errors: Vec<CaptureError>,
    /// Frames whose timestamp was older than the current tick (counted in it).
    pub late_frames: u64,
    /// Each input whose records lied (corrected or skipped by the reader), with the counts.
    pub anomalies: Vec<(PathBuf, RecordAnomalies)>,
    /// First and last (shifted) frame timestamps, ns since the epoch.
    pub time_span_ns: Option<(u64, u64)>,
    /// Reading was stopped by [`ReplayConfig::stop`] before the end of the captures.
    pub stopped: bool,
}

/// Opens every capture up front so that a missing or unreadable file stops the run before any
/// work is done.
pub fn open_all(files: &[PathBuf]) -> Result<Vec<PcapFileSource>, CaptureError> {
    files.iter().map(PcapFileSource::open).collect()
}

/// Total size in bytes of the captures (for progress display).
pub fn total_size(sources: &[PcapFileSource]) -> u64 {
    sources.iter().map(|s| s.progress().1.unwrap_or(0)).sum()
}

/// Replays already-opened sources (see [`open_all`]).
pub fn replay(
    cfg: &ReplayConfig,
    sources: Vec<PcapFileSource>,
    observer: &mut dyn TickObserver,
) -> ReplayOutcome {
    let driver = Driver {
        clock: TickClock::new(cfg.tick),
        ticks: TickDriver::new(Accounting::new(cfg.monitor.clone(), cfg.tick)),
        errors: Vec::new(),
        anomalies: Vec::new(),
        span: None,
        shift_ns: 0,
        shift_decided: false,
        bytes_before: 0,
    };
    if cfg.workers <= 1 {
        let shard = Shard::new(cfg.monitor.clone());
        let mut sink = InlineSink {
            shard,
            batch: Vec::with_capacity(ACCOUNT_BATCH),
            parse: cfg.parse,
        };
        run(cfg, sources, driver, &mut sink, observer)
    } else {
        std::thread::scope(|scope| {
            let mut sink = ThreadedSink::start(scope, cfg.monitor.clone(), cfg.workers, cfg.parse);
            let out = run(cfg, sources, driver, &mut sink, observer);
            sink.stop();
            out
        })
    }
}

/// Where frames go, and how a tick boundary is crossed.
trait FrameSink {
    fn frame(&mut self, frame: &Frame<'_>, ts: u64);
    /// Accounts whatever is buffered (called at the end of every poll).
    fn flush(&mut self) {}
    /// Crosses a tick boundary: every shard's delta to `ticks`, then the shards re-armed.
    fn end_tick(
        &mut self,
        ticks: &mut TickDriver,
        start_ns: u64,
        skipped: u64,
        obs: &mut dyn TickObserver,
    );
}

struct Driver {
    clock: TickClock,
    ticks: TickDriver,
    errors: Vec<CaptureError>,
    anomalies: Vec<(PathBuf, RecordAnomalies)>,
    span: Option<(u64, u64)>,
    shift_ns: u64,
    shift_decided: bool,
    bytes_before: u64,
}

fn run<S: FrameSink>(
    cfg: &ReplayConfig,
    sources: Vec<PcapFileSource>,
    mut d: Driver,
    sink: &mut S,
    obs: &mut dyn TickObserver,
) -> ReplayOutcome {
    let tick_ns = d.clock.tick_length().as_nanos();
    let stop_asked = || cfg.stop.is_some_and(|s| s.load(Ordering::SeqCst));
    let mut stopped = false;
    'files: for (path, mut src) in cfg.files.iter().zip(sources) {
        d.shift_decided = false;
        d.shift_ns = 0;
        loop {
            let polled = src.poll(POLL_BUDGET, |frame| {
                if !d.shift_decided {
                    d.shift_decided = true;
                    if let Some(cur) = d.clock.current_start_ns() {
                        let first = frame.ts_nanos - frame.ts_nanos % tick_ns;
                        if first < cur {
                            d.shift_ns = cur + tick_ns - first;
                            obs.on_time_shift(path, d.shift_ns);
                        }
                    }
                }
                let mut ts = frame.ts_nanos.saturating_add(d.shift_ns);
                // Far behind the current tick: the timestamps jumped back (a record dated far
                // ahead of the others, concatenated captures). Counting the rest as late
                // would pile it all into one tick (one fake record dated 2106 made a whole
                // capture one tick, and an incident); shift it forward instead.
                if let Some(cur) = d.clock.current_start_ns() {
                    if ts.saturating_add(MAX_JUMP_BACK_NS) < cur {
                        let first = ts - ts % tick_ns;
                        let extra = cur + tick_ns - first;
                        d.shift_ns = d.shift_ns.saturating_add(extra);
                        obs.on_time_jump(path, cur - ts, d.shift_ns);
                        ts = ts.saturating_add(extra);
                    }
                }
                if let TickAdvance::Advanced {
                    closed_start_ns,
                    skipped,
                    ..
                } = d.clock.observe(ts)
                {
                    sink.end_tick(&mut d.ticks, closed_start_ns, skipped, obs);
                }
                d.span = Some(match d.span {
                    None => (ts, ts),
                    Some((a, b)) => (a.min(ts), b.max(ts)),
                });
                sink.frame(frame, ts);
            });
            sink.flush();
            obs.on_progress(d.bytes_before + src.progress().0);
            match polled {
                Ok(Poll::Frames(_)) | Ok(Poll::Idle) => {}
                Ok(Poll::End) => break,
                Err(e) => {
                    d.errors.push(e);
                    break;
                }
            }
            if stop_asked() {
                stopped = true;
                break 'files;
            }
        }
        d.bytes_before += src.progress().1.unwrap_or(src.progress().0);
        if src.anomalies().total() > 0 {
            d.anomalies.push((path.clone(), src.anomalies()));
        }
    }
    if let Some(start) = d.clock.finish() {
        sink.end_tick(&mut d.ticks, start, 0, obs);
    }
    ReplayOutcome {
        late_frames: d.clock.late_frames(),
        accounting: d.ticks.into_accounting(),
        errors: d.errors,
        anomalies: d.anomalies,
        time_span_ns: d.span,
        stopped,
    }
}

/// The replay's tick information: idle ticks after the closed one, no queues.
fn idle(skipped: u64) -> TickInfo<'static> {
    TickInfo {
        idle_after: skipped,
        queues: &[],
        link: None,
    }
}

/// One worker, on the calling thread. Summaries are accounted in batches so that the shard
/// can overlap the cache misses of many packets.
struct InlineSink {
    shard: Shard,
    batch: Vec<PacketSummary>,
    parse: ParseOptions,
}

impl InlineSink {
    fn drain(&mut self) {
        self.shard.account_batch(&self.batch);
        self.batch.clear();
    }
}

impl FrameSink for InlineSink {
    #[inline]
    fn frame(&mut self, frame: &Frame<'_>, _ts: u64) {
        self.batch.push(parse_with(
            frame.link,
            frame.data,
            frame.wire_len,
            &self.parse,
        ));
        if self.batch.len() >= ACCOUNT_BATCH {
            self.drain();
        }
    }

    fn flush(&mut self) {
        self.drain();
    }

    fn end_tick(
        &mut self,
        ticks: &mut TickDriver,
        start_ns: u64,
        skipped: u64,
        obs: &mut dyn TickObserver,
    ) {
        // Frames of the closing tick still buffered belong to it.
        self.drain();
        let mut deltas = [self.shard.take_tick()];
        let rearm = ticks.close(start_ns, &mut deltas, idle(skipped), obs);
        let [d] = deltas;
        self.shard.rearm(d, &rearm);
    }
}

/// Frames copied out of the reader's buffer for a worker.
struct Batch {
    bytes: Vec<u8>,
    frames: Vec<BatchFrame>,
}

#[derive(Copy, Clone)]
struct BatchFrame {
    start: usize,
    end: usize,
    wire_len: u32,
    link: LinkType,
}

enum ToWorker {
    Batch(Batch),
    /// Hand over the tick's delta.
    Tick,
    /// The merger's answer to a tick: the worker's delta back, and what to re-arm with.
    Rearm(Box<TickDelta>, Rearm),
}

struct WorkerHandle {
    tx: Sender<ToWorker>,
    current: Batch,
}

/// A reader (the calling thread) dealing batches to worker threads.
struct ThreadedSink<'scope> {
    workers: Vec<WorkerHandle>,
    pool: Receiver<Batch>,
    deltas: Receiver<(usize, TickDelta)>,
    next: usize,
    joins: Vec<std::thread::ScopedJoinHandle<'scope, ()>>,
}

impl<'scope> ThreadedSink<'scope> {
    fn start<'env>(
        scope: &'scope std::thread::Scope<'scope, 'env>,
        monitor: Arc<Monitor>,
        n: usize,
        parse: ParseOptions,
    ) -> Self {
        let (pool_tx, pool) = bounded::<Batch>(n * BATCHES_PER_WORKER + n);
        for _ in 0..n * BATCHES_PER_WORKER {
            let _ = pool_tx.send(Batch::new());
        }
        let (delta_tx, deltas) = bounded::<(usize, TickDelta)>(n);
        let mut workers = Vec::with_capacity(n);
        let mut joins = Vec::with_capacity(n);
        for id in 0..n {
            let (tx, rx) = bounded::<ToWorker>(BATCHES_PER_WORKER + 2);
            let shard = Shard::new(monitor.clone());
            let pool_tx = pool_tx.clone();
            let delta_tx = delta_tx.clone();
            let join = std::thread::Builder::new()
                .name(format!("surgewatch-w{id}"))
                .spawn_scoped(scope, move || {
                    worker(id, shard, parse, rx, pool_tx, delta_tx)
                })
                .expect("spawning a worker thread");
            joins.push(join);
            workers.push(WorkerHandle {
                tx,
                current: Batch::new(),
            });
        }
        ThreadedSink {
            workers,
            pool,
            deltas,
            next: 0,
            joins,
        }
    }

    fn flush(&mut self, i: usize) {
        if self.workers[i].current.frames.is_empty() {
            return;
        }
        let fresh = self.pool.recv().unwrap_or_else(|_| Batch::new());
        let full = std::mem::replace(&mut self.workers[i].current, fresh);
        let _ = self.workers[i].tx.send(ToWorker::Batch(full));
    }

    fn stop(mut self) {
        for w in self.workers.drain(..) {
            drop(w.tx);
        }
        for j in self.joins.drain(..) {
            let _ = j.join();
        }
    }
}

impl Batch {
    fn new() -> Self {
        Batch {
            bytes: Vec::with_capacity(BATCH_FRAMES * 256),
            frames: Vec::with_capacity(BATCH_FRAMES),
        }
    }
}

impl FrameSink for ThreadedSink<'_> {
    fn frame(&mut self, frame: &Frame<'_>, _ts: u64) {
        let i = self.next;
        let b = &mut self.workers[i].current;
        let start = b.bytes.len();
        b.bytes.extend_from_slice(frame.data);
        b.frames.push(BatchFrame {
            start,
            end: b.bytes.len(),
            wire_len: frame.wire_len,
            link: frame.link,
        });
        if b.frames.len() >= BATCH_FRAMES {
            self.flush(i);
            self.next = (i + 1) % self.workers.len();
        }
    }

    fn end_tick(
        &mut self,
        ticks: &mut TickDriver,
        start_ns: u64,
        skipped: u64,
        obs: &mut dyn TickObserver,
    ) {
        let n = self.workers.len();
        for i in 0..n {
            self.flush(i);
            let _ = self.workers[i].tx.send(ToWorker::Tick);
        }
        let mut deltas: Vec<(usize, TickDelta)> = Vec::with_capacity(n);
        for _ in 0..n {
            match self.deltas.recv() {
                Ok(d) => deltas.push(d),
                Err(_) => break,
            }
        }
        deltas.sort_by_key(|(id, _)| *id);
        let mut only: Vec<TickDelta> = deltas.into_iter().map(|(_, d)| d).collect();
        let rearm = ticks.close(start_ns, &mut only, idle(skipped), obs);
        for (w, d) in self.workers.iter().zip(only) {
            let _ = w.tx.send(ToWorker::Rearm(Box::new(d), rearm.clone()));
        }
    }
}

fn worker(
    id: usize,
    mut shard: Shard,
    parse: ParseOptions,
    rx: Receiver<ToWorker>,
    pool: Sender<Batch>,
    deltas: Sender<(usize, TickDelta)>,
) {
    let mut summaries: Vec<PacketSummary> = Vec::with_capacity(BATCH_FRAMES);
    while let Ok(msg) = rx.recv() {
        match msg {
            ToWorker::Batch(mut b) => {
                summaries.clear();
                summaries.extend(b.frames.iter().filter_map(|f| {
                    b.bytes
                        .get(f.start..f.end)
                        .map(|d| parse_with(f.link, d, f.wire_len, &parse))
                }));
                shard.account_batch(&summaries);
                b.bytes.clear();
                b.frames.clear();
                let _ = pool.try_send(b);
            }
            ToWorker::Tick => {
                if deltas.send((id, shard.take_tick())).is_err() {
                    return;
                }
            }
            ToWorker::Rearm(d, rearm) => shard.rearm(*d, &rearm),
        }
    }
}
