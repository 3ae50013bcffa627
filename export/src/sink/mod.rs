//! Sinks: every output of a run (today the JSON-lines and text outputs on stdout; later
//! Prometheus metrics, alerts, forensics, BGP adapters) is a [`Sink`] built from its config,
//! fed [`Message`]s by [`Outputs`] and run on a thread of its own behind a bounded queue.
//!
//! How a full queue is handled is the run's [`Delivery`]:
//!
//! * **Live capture** ([`Delivery::DropWhenFull`]): [`Outputs::send`] never waits. A message
//!   that finds a sink's queue full is dropped for that sink and counted
//!   ([`SinkStats::dropped`]), so a slow or stuck sink can never stall the tick.
//! * **Replay** ([`Delivery::Block`]): [`Outputs::send`] waits for room (backpressure): nothing
//!   is dropped and the output stays a deterministic function of the captures.
//!
//! Each sink sees the messages in the order they were sent. A sink that fails (e.g. stdout
//! closed: `EPIPE`) stops writing but keeps draining its queue, so that senders never block
//! on it; its error is reported by [`Outputs::finish`], which also flushes and joins every
//! sink.
//!
//! Call order: [`Outputs::start`]; [`Outputs::send`] from the tick (events as they happen);
//! [`Outputs::send_blocking`] for what is sent once the run is over (the last events and the
//! summary, which nothing may drop); [`Outputs::finish`].

pub mod stdout;

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};
use surgewatch_detect::IncidentEvent;
use surgewatch_per_ip::Report;

use crate::summary::RunInfo;
use crate::terminal::Terminal;

/// Messages a sink queue holds by default.
pub const DEFAULT_QUEUE: usize = 1024;

/// The config of one output; new outputs are new variants.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SinkConfig {
    /// Events and the summary on stdout.
    Stdout(stdout::StdoutConfig),
}

/// What every sink of a run is built with, besides its own config.
#[derive(Clone, Default)]
pub struct RunContext {
    /// Names of the groups, indexed by group id.
    pub groups: Arc<[String]>,
    /// The terminal's progress bar, when one is drawn on stderr.
    pub terminal: Option<Arc<dyn Terminal>>,
}

/// Builds the sink `cfg` describes.
pub fn build(cfg: &SinkConfig, ctx: &RunContext) -> Box<dyn Sink> {
    match cfg {
        SinkConfig::Stdout(c) => {
            let out = io::BufWriter::new(io::stdout());
            match c.format {
                stdout::Format::Json => Box::new(stdout::JsonLinesSink::new(
                    "stdout",
                    out,
                    ctx.groups.clone(),
                )),
                stdout::Format::Text => Box::new(stdout::TextSink::new(
                    "stdout",
                    out,
                    ctx.groups.clone(),
                    ctx.terminal.clone(),
                )),
            }
        }
    }
}

/// What sinks receive. New kinds of output are new variants (mitigation actions, per-tick
/// metrics snapshots); a sink ignores the variants it has no use for.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Message {
    /// An incident started, went on or ended; sent in capture-time order.
    Incident(IncidentEvent),
    /// A mitigation action and its outcome, after the event that caused it.
    Mitigation(crate::mitigation::MitigationJson),
    /// The end-of-run summary: the last message of a run.
    Summary(RunSummary),
}

/// What the summary is made of.
#[derive(Clone, Debug)]
pub struct RunSummary {
    /// The per-IP report (totals and the top IPs).
    pub report: Report,
    /// Facts about the run the report does not know.
    pub info: RunInfo,
}

/// One output. It runs on its own thread, so it may block on its writer or socket.
pub trait Sink: Send {
    /// Name for statistics and errors (`stdout`).
    fn name(&self) -> &str;

    /// Handles one message. After an error the sink gets no more messages.
    fn handle(&mut self, msg: &Message) -> io::Result<()>;

    /// Pushes out what is buffered. Called whenever its queue runs empty and at the end.
    fn flush(&mut self) -> io::Result<()>;
}

/// What [`Outputs::send`] does when a sink's queue is full.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Drop the message for that sink and count it (live capture: never stall the tick).
    DropWhenFull,
    /// Wait for room (replay: backpressure, nothing lost, deterministic output).
    Block,
}

/// Counters of one sink.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SinkStats {
    /// The sink's name.
    pub name: String,
    /// Messages put in its queue.
    pub queued: u64,
    /// Messages dropped because its queue was full (or its thread had ended).
    pub dropped: u64,
    /// Messages it handled.
    pub handled: u64,
    /// Messages taken off its queue after it had failed, unhandled.
    pub discarded: u64,
}

/// A sink's failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SinkError {
    /// Writing failed; the sink stopped at the first error.
    #[error("output {sink}: {source}")]
    Io {
        /// The sink's name.
        sink: String,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// Its thread could not be started.
    #[error("output {sink}: cannot start its thread: {source}")]
    Spawn {
        /// The sink's name.
        sink: String,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// Its thread panicked.
    #[error("output {sink}: its thread panicked")]
    Panicked {
        /// The sink's name.
        sink: String,
    },
}

impl SinkError {
    /// Whether the reader went away (`EPIPE`, e.g. `surgewatch ... | head`): not worth a
    /// message.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, SinkError::Io { source, .. } if source.kind() == io::ErrorKind::BrokenPipe)
    }
}

/// What [`Outputs::finish`] reports.
#[derive(Debug, Default)]
pub struct Finished {
    /// Every sink's final counters, in the order they were given.
    pub stats: Vec<SinkStats>,
    /// Every sink's error.
    pub errors: Vec<SinkError>,
}

#[derive(Default)]
struct Counters {
    queued: AtomicU64,
    dropped: AtomicU64,
    handled: AtomicU64,
    discarded: AtomicU64,
}

struct Running {
    name: String,
    tx: Sender<Arc<Message>>,
    counters: Arc<Counters>,
    join: JoinHandle<io::Result<()>>,
}

/// The running sinks of a run; see the module docs.
pub struct Outputs {
    delivery: Delivery,
    sinks: Vec<Running>,
}

impl Outputs {
    /// Starts every sink on its own thread, each behind a queue of `capacity` messages (at
    /// least 1).
    pub fn start(
        sinks: Vec<Box<dyn Sink>>,
        delivery: Delivery,
        capacity: usize,
    ) -> Result<Self, SinkError> {
        let mut running = Vec::with_capacity(sinks.len());
        for sink in sinks {
            let name = sink.name().to_owned();
            let (tx, rx) = bounded::<Arc<Message>>(capacity.max(1));
            let counters = Arc::new(Counters::default());
            let c = counters.clone();
            let join = std::thread::Builder::new()
                .name(format!("surgewatch-sink-{name}"))
                .spawn(move || drive(sink, &rx, &c))
                .map_err(|source| SinkError::Spawn {
                    sink: name.clone(),
                    source,
                })?;
            running.push(Running {
                name,
                tx,
                counters,
                join,
            });
        }
        Ok(Outputs {
            delivery,
            sinks: running,
        })
    }

    /// Sends `msg` to every sink, as the run's [`Delivery`] says.
    pub fn send(&self, msg: Message) {
        self.deliver(msg, self.delivery);
    }

    /// Sends `msg` to every sink, waiting for room whatever the delivery: for messages sent
    /// when no tick can be stalled any more (the last events of a run, the summary).
    pub fn send_blocking(&self, msg: Message) {
        self.deliver(msg, Delivery::Block);
    }

    fn deliver(&self, msg: Message, delivery: Delivery) {
        let msg = Arc::new(msg);
        for s in &self.sinks {
            let sent = match delivery {
                Delivery::Block => s.tx.send(msg.clone()).is_ok(),
                Delivery::DropWhenFull => match s.tx.try_send(msg.clone()) {
                    Ok(()) => true,
                    Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => false,
                },
            };
            let counter = if sent {
                &s.counters.queued
            } else {
                &s.counters.dropped
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Every sink's counters so far.
    pub fn stats(&self) -> Vec<SinkStats> {
        self.sinks
            .iter()
            .map(|s| stats_of(&s.name, &s.counters))
            .collect()
    }

    /// Closes the queues, lets every sink handle what is queued and flush, joins their
    /// threads and reports their counters and errors.
    pub fn finish(self) -> Finished {
        let mut done = Finished::default();
        for s in self.sinks {
            drop(s.tx);
            match s.join.join() {
                Ok(Ok(())) => {}
                Ok(Err(source)) => done.errors.push(SinkError::Io {
                    sink: s.name.clone(),
                    source,
                }),
                Err(_) => done.errors.push(SinkError::Panicked {
                    sink: s.name.clone(),
                }),
            }
            done.stats.push(stats_of(&s.name, &s.counters));
        }
        done
    }
}

fn stats_of(name: &str, c: &Counters) -> SinkStats {
    SinkStats {
        name: name.to_owned(),
        queued: c.queued.load(Ordering::Relaxed),
        dropped: c.dropped.load(Ordering::Relaxed),
        handled: c.handled.load(Ordering::Relaxed),
        discarded: c.discarded.load(Ordering::Relaxed),
    }
}

/// A sink's thread: handles messages until every sender is gone, flushing whenever the
/// queue runs empty; after the first error it only drains the queue.
fn drive(
    mut sink: Box<dyn Sink>,
    rx: &Receiver<Arc<Message>>,
    counters: &Counters,
) -> io::Result<()> {
    let mut failed: Option<io::Error> = None;
    for msg in rx.iter() {
        if failed.is_some() {
            counters.discarded.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let mut res = sink.handle(&msg);
        counters.handled.fetch_add(1, Ordering::Relaxed);
        if res.is_ok() && rx.is_empty() {
            res = sink.flush();
        }
        failed = res.err();
    }
    match failed {
        Some(e) => Err(e),
        None => sink.flush(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossbeam_channel::unbounded;

    /// A message that tells its number.
    fn numbered(i: u64) -> Message {
        Message::Summary(RunSummary {
            report: surgewatch_per_ip::Report::default(),
            info: RunInfo {
                late_frames: i,
                ..RunInfo::default()
            },
        })
    }

    fn number(msg: &Message) -> u64 {
        match msg {
            Message::Summary(s) => s.info.late_frames,
            Message::Incident(e) => e.incident_id,
            Message::Mitigation(m) => m.incident_id,
        }
    }

    /// Records the numbers it handles; optionally waits for a go before each message and
    /// says when it took one.
    struct Recorder {
        seen: Sender<u64>,
        took: Option<Sender<()>>,
        go: Option<Receiver<()>>,
        flushes: Arc<AtomicU64>,
    }

    impl Sink for Recorder {
        fn name(&self) -> &str {
            "recorder"
        }
        fn handle(&mut self, msg: &Message) -> io::Result<()> {
            if let Some(t) = &self.took {
                let _ = t.send(());
            }
            if let Some(g) = &self.go {
                let _ = g.recv();
            }
            let _ = self.seen.send(number(msg));
            Ok(())
        }
        fn flush(&mut self) -> io::Result<()> {
            self.flushes.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
    }

    fn recorder() -> (Recorder, Receiver<u64>) {
        let (seen, rx) = unbounded();
        (
            Recorder {
                seen,
                took: None,
                go: None,
                flushes: Arc::default(),
            },
            rx,
        )
    }

    #[test]
    fn live_delivery_drops_and_counts_when_a_queue_is_full() {
        let (mut sink, seen) = recorder();
        let (took_tx, took) = unbounded();
        let (go, go_rx) = unbounded();
        sink.took = Some(took_tx);
        sink.go = Some(go_rx);
        let out = Outputs::start(vec![Box::new(sink)], Delivery::DropWhenFull, 4).unwrap();
        out.send(numbered(0));
        // The sink holds message 0 (and waits); the queue has room for 4 more.
        took.recv().unwrap();
        for i in 1..=10 {
            out.send(numbered(i));
        }
        let s = &out.stats()[0];
        assert_eq!((s.queued, s.dropped), (5, 6), "{s:?}");
        for _ in 0..5 {
            go.send(()).unwrap();
        }
        let done = out.finish();
        assert!(done.errors.is_empty());
        let got: Vec<u64> = seen.try_iter().collect();
        assert_eq!(got, vec![0, 1, 2, 3, 4], "the first ones, in order");
        assert_eq!(done.stats[0].handled, 5);
        assert_eq!(done.stats[0].dropped, 6);
    }

    #[test]
    fn replay_delivery_waits_and_loses_nothing_in_order() {
        let (mut sink, seen) = recorder();
        // A slow sink behind a queue of 2: the sender must wait for it again and again.
        let (go, go_rx) = bounded(0);
        sink.go = Some(go_rx);
        let out = Outputs::start(vec![Box::new(sink)], Delivery::Block, 2).unwrap();
        let pacer = std::thread::spawn(move || while go.send(()).is_ok() {});
        for i in 0..500 {
            out.send(numbered(i));
        }
        let done = out.finish();
        let _ = pacer.join();
        let got: Vec<u64> = seen.try_iter().collect();
        assert_eq!(got, (0..500).collect::<Vec<_>>());
        assert_eq!(
            (
                done.stats[0].queued,
                done.stats[0].dropped,
                done.stats[0].handled
            ),
            (500, 0, 500)
        );
    }

    #[test]
    fn every_sink_gets_every_message_in_order() {
        let (a, seen_a) = recorder();
        let (b, seen_b) = recorder();
        let out = Outputs::start(vec![Box::new(a), Box::new(b)], Delivery::Block, 8).unwrap();
        for i in 0..100 {
            out.send(numbered(i));
        }
        let done = out.finish();
        assert_eq!(done.stats.len(), 2);
        for seen in [seen_a, seen_b] {
            assert_eq!(
                seen.try_iter().collect::<Vec<_>>(),
                (0..100).collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn send_blocking_waits_even_in_live_delivery() {
        let (mut sink, seen) = recorder();
        let (go, go_rx) = bounded(0);
        sink.go = Some(go_rx);
        let out = Outputs::start(vec![Box::new(sink)], Delivery::DropWhenFull, 1).unwrap();
        let pacer = std::thread::spawn(move || while go.send(()).is_ok() {});
        for i in 0..50 {
            out.send_blocking(numbered(i));
        }
        let done = out.finish();
        let _ = pacer.join();
        assert_eq!(seen.try_iter().count(), 50);
        assert_eq!(done.stats[0].dropped, 0);
    }

    #[test]
    fn finish_flushes_and_a_sink_flushes_when_its_queue_runs_empty() {
        let (sink, seen) = recorder();
        let flushes = sink.flushes.clone();
        let out = Outputs::start(vec![Box::new(sink)], Delivery::Block, 8).unwrap();
        out.send(numbered(1));
        // Handled alone: the queue ran empty after it, so it was flushed at once.
        assert_eq!(seen.recv().unwrap(), 1);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while flushes.load(Ordering::Relaxed) == 0 && std::time::Instant::now() < deadline {
            std::thread::yield_now();
        }
        assert_eq!(flushes.load(Ordering::Relaxed), 1);
        let _ = out.finish();
        assert_eq!(
            flushes.load(Ordering::Relaxed),
            2,
            "and once more at the end"
        );
    }

    /// Fails like a closed stdout.
    struct Closed;
    impl Sink for Closed {
        fn name(&self) -> &str {
            "closed"
        }
        fn handle(&mut self, _: &Message) -> io::Result<()> {
            Err(io::Error::from(io::ErrorKind::BrokenPipe))
        }
        fn flush(&mut self) -> io::Result<()> {
            Err(io::Error::from(io::ErrorKind::BrokenPipe))
        }
    }

    #[test]
    fn a_failed_sink_keeps_draining_and_reports_its_error() {
        let (ok, seen) = recorder();
        let out = Outputs::start(vec![Box::new(Closed), Box::new(ok)], Delivery::Block, 1).unwrap();
        for i in 0..20 {
            out.send(numbered(i));
        }
        let done = out.finish();
        assert_eq!(
            seen.try_iter().count(),
            20,
            "the other sink is not disturbed"
        );
        assert_eq!(done.errors.len(), 1);
        assert!(done.errors[0].is_broken_pipe());
        assert_eq!((done.stats[0].handled, done.stats[0].discarded), (1, 19));
    }

    struct Panics;
    impl Sink for Panics {
        fn name(&self) -> &str {
            "panics"
        }
        fn handle(&mut self, _: &Message) -> io::Result<()> {
            panic!("sink bug")
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_panicking_sink_is_reported_and_blocks_nobody() {
        let out = Outputs::start(vec![Box::new(Panics)], Delivery::Block, 1).unwrap();
        for i in 0..10 {
            out.send(numbered(i));
        }
        let done = out.finish();
        assert!(matches!(done.errors[..], [SinkError::Panicked { .. }]));
        assert_eq!(done.stats[0].queued + done.stats[0].dropped, 10);
    }
}
