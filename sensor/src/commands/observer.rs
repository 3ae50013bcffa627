//! What a run does at each closed tick: detection (its events go to the outputs), baseline
//! saving and, live, the status line and the agent's address changes. With `settings` (which
//! builds the detector's config), the only module of the binary that names `surgewatch_detect`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use indicatif::ProgressBar;
use surgewatch_detect::{Detector, IncidentEvent};
use surgewatch_export::diag::{self, Diag, QueueStatus};
use surgewatch_export::mitigation::MitigationJson;
use surgewatch_export::sink::{self, Delivery, Message, Outputs, RunContext, RunSummary};
use surgewatch_export::summary::{MitigationsJson, RunInfo};
use surgewatch_export::terminal::Terminal;
use surgewatch_mitigate::{Mode, Outcome, Policy};
use surgewatch_per_ip::{Accounting, ClosedTick, NextTick};
use surgewatch_sensor::tick::{TickInfo, TickObserver};

use crate::agent_addrs::AgentAddrs;
use crate::baseline_file::BaselineFile;
use crate::settings::Settings;

/// The progress bar, as the terminal the text output and the diagnostics write around.
struct Bar(ProgressBar);

impl Terminal for Bar {
    fn suspend(&self, write: &mut dyn FnMut()) {
        self.0.suspend(write);
    }
}

/// The detector of a run, its outputs and its baselines file.
pub struct Observer {
    bar: Option<ProgressBar>,
    detector: Detector,
    events: Vec<IncidentEvent>,
    outputs: Outputs,
    baselines: Option<BaselineFile>,
    tick_ns: u64,
    /// When the last "untracked traffic" warning was given, and whether the last tick had
    /// untracked traffic.
    untracked_warned_ns: Option<u64>,
    untracked_before: bool,
    /// The mitigation policy (`[mitigation]`), run in dry-run.
    mitigation: Option<Policy>,
    /// End of the last tick closed.
    last_tick_end_ns: u64,
}

/// Takes every action the policy has queued: records it as a dry run (no speaker executes
/// one yet) and sends its line.
fn drain_actions(p: &mut Policy, now_ns: u64, outputs: &Outputs, blocking: bool) {
    while let Some(a) = p.poll_action() {
        p.handle_outcome(now_ns, a.id, Outcome::DryRun);
        let m = Message::Mitigation(MitigationJson::new(&a, None, &Outcome::DryRun));
        if blocking {
            outputs.send_blocking(m);
        } else {
            outputs.send(m);
        }
    }
}

impl Observer {
    /// A detector (with baselines loaded) and the run's outputs, started with `delivery`;
    /// `bar` is the replay's progress bar, which the outputs write around.
    pub fn start(s: &Settings, delivery: Delivery, bar: Option<ProgressBar>) -> Result<Self> {
        let terminal = bar.clone().map(|b| Arc::new(Bar(b)) as Arc<dyn Terminal>);
        diag::set_terminal(terminal.clone());
        let ctx = RunContext {
            groups: s.monitor.groups.clone().into(),
            terminal,
        };
        let sinks = s.outputs.iter().map(|c| sink::build(c, &ctx)).collect();
        let outputs = Outputs::start(sinks, delivery, sink::DEFAULT_QUEUE)?;
        let mut detector = Detector::new(s.detector.clone());
        // Locked for the run: a second sensor on the same file stops here.
        let baselines = s
            .baselines
            .as_ref()
            .map(|(path, every)| BaselineFile::open(path.clone(), *every))
            .transpose()?;
        if let Some(f) = &baselines {
            if let Some(bytes) = f.read() {
                f.loaded(detector.load_baselines(&bytes));
            }
        }
        Ok(Observer {
            bar,
            detector,
            events: Vec::new(),
            outputs,
            baselines,
            tick_ns: s.tick.as_nanos(),
            untracked_warned_ns: None,
            untracked_before: false,
            mitigation: s.mitigation.clone().map(|mut cfg| {
                if cfg.mode == Mode::Enforce {
                    diag::emit(Diag::MitigationDryRunOnly);
                }
                // No speaker adapter executes an action yet: every one is a dry run.
                cfg.mode = Mode::DryRun;
                Policy::new(cfg)
            }),
            last_tick_end_ns: 0,
        })
    }

    /// Sends the tick's events, each followed by the mitigation actions it caused; then the
    /// actions that fell due by `now_ns` (TTL refreshes, hold-downs).
    fn emit(&mut self, now_ns: u64, blocking: bool) {
        let send = |o: &Outputs, m: Message| {
            if blocking {
                o.send_blocking(m)
            } else {
                o.send(m)
            }
        };
        for e in self.events.drain(..) {
            let ts = e.ts_ns;
            if let Some(p) = &mut self.mitigation {
                p.handle_event(ts, &e);
            }
            send(&self.outputs, Message::Incident(e));
            if let Some(p) = &mut self.mitigation {
                drain_actions(p, ts, &self.outputs, blocking);
            }
        }
        if let Some(p) = &mut self.mitigation {
            p.handle_timeout(now_ns);
            drain_actions(p, now_ns, &self.outputs, blocking);
        }
    }

    /// Saves baselines every `save_interval` of (capture or wall-clock) time.
    fn maybe_save(&mut self, acct: &Accounting) {
        if let Some(f) = &mut self.baselines {
            if f.due(acct.ticks_closed().saturating_mul(acct.tick_ns())) {
                f.save(&self.detector.encode_baselines(acct));
            }
        }
    }

    /// Ends open incidents, saves baselines, sends the summary last and closes the outputs
    /// (a closed stdout is not worth a message; other output errors are warnings).
    pub fn finish(mut self, acct: &Accounting, mut info: RunInfo, top_n: usize) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
            diag::set_terminal(None);
        }
        self.detector.finish(&mut self.events);
        // The run is over: nothing is left to stall, nothing may be dropped.
        let end = self
            .events
            .iter()
            .map(|e| e.ts_ns)
            .max()
            .unwrap_or(self.last_tick_end_ns);
        self.emit(end, true);
        if let Some(p) = &mut self.mitigation {
            // Everything announced is withdrawn at the end.
            p.shutdown(end);
            drain_actions(p, end, &self.outputs, true);
            let s = p.stats();
            info.mitigations = Some(MitigationsJson {
                announced: s.announced,
                refreshed: s.refreshed,
                withdrawn: s.withdrawn,
                refused: s.refused_network
                    + s.refused_outside
                    + s.refused_never
                    + s.refused_per_target_cap
                    + s.refused_global_cap,
                errors: s.errors,
            });
        }
        if let Some(f) = &self.baselines {
            f.save(&self.detector.encode_baselines(acct));
        }
        info.incidents = self.detector.closed().to_vec();
        self.outputs.send_blocking(Message::Summary(RunSummary {
            report: acct.report(top_n),
            info,
        }));
        for e in self.outputs.finish().errors {
            if !e.is_broken_pipe() {
                diag::emit(Diag::OutputFailed {
                    error: e.to_string(),
                });
            }
        }
    }
}

impl Observer {
    /// Says when traffic starts going to untracked addresses, and at most once a minute
    /// (of capture or wall-clock time) while it lasts.
    fn note_untracked(&mut self, tick: &ClosedTick<'_>) {
        let packets = tick.stats.overflow.packets;
        let now = tick.tick_start_ns;
        let due = !self.untracked_before
            || self
                .untracked_warned_ns
                .is_none_or(|t| now.saturating_sub(t) >= UNTRACKED_WARN_EVERY_NS);
        self.untracked_before = packets > 0;
        if packets == 0 || !due {
            return;
        }
        self.untracked_warned_ns = Some(now);
        let tick_ns = self.tick_ns.max(1);
        diag::emit(Diag::Untracked {
            pps: u64::try_from(u128::from(packets) * 1_000_000_000 / u128::from(tick_ns))
                .unwrap_or(u64::MAX),
            limit: tick.ip_limit.unwrap_or(usize::MAX) as u64,
        });
    }
}

/// Least time between two "untracked traffic" warnings while it lasts.
const UNTRACKED_WARN_EVERY_NS: u64 = 60_000_000_000;

impl TickObserver for Observer {
    fn on_tick(&mut self, tick: &ClosedTick<'_>, info: &TickInfo<'_>) -> NextTick {
        self.detector
            .on_tick(tick, info.idle_after, &mut self.events);
        let end = tick.tick_start_ns.saturating_add(self.tick_ns);
        self.last_tick_end_ns = end;
        self.emit(end, false);
        self.note_untracked(tick);
        self.detector.next_tick()
    }

    fn after_tick(&mut self, acct: &Accounting) {
        self.maybe_save(acct);
    }

    fn on_progress(&mut self, bytes_done: u64) {
        if let Some(b) = &self.bar {
            b.set_position(bytes_done);
        }
    }

    fn on_time_shift(&mut self, file: &std::path::Path, shift_ns: u64) {
        diag::emit(Diag::TimeShifted {
            file: file.to_owned(),
            shift_ns,
        });
    }

    fn on_time_jump(&mut self, file: &std::path::Path, back_ns: u64, shift_ns: u64) {
        diag::emit(Diag::TimeJumpedBack {
            file: file.to_owned(),
            back_ns,
            shift_ns,
        });
    }
}

/// The live-run observer: detection and outputs (as in replay), a periodic status line, the
/// busy-polling warning and, for the host agent, the host's addresses.
pub struct LiveObs {
    inner: Observer,
    status_every_ns: u64,
    last_status_ns: u64,
    last_received: u64,
    /// Untracked packets since the last status line.
    untracked: u64,
    /// The "busy polling without a NAPI context" warning was given.
    warned_busy_spin: bool,
    agent: Option<AgentAddrs>,
}

impl LiveObs {
    /// `inner` with a status line every `status_interval` (zero: only when asked by SIGUSR1).
    pub fn new(inner: Observer, status_interval: Duration, agent: Option<AgentAddrs>) -> Self {
        LiveObs {
            inner,
            status_every_ns: u64::try_from(status_interval.as_nanos()).unwrap_or(u64::MAX),
            last_status_ns: 0,
            last_received: 0,
            untracked: 0,
            warned_busy_spin: false,
            agent,
        }
    }

    /// See [`Observer::finish`].
    pub fn finish(self, acct: &Accounting, info: RunInfo, top_n: usize) {
        self.inner.finish(acct, info, top_n);
    }
}

impl TickObserver for LiveObs {
    fn on_tick(&mut self, tick: &ClosedTick<'_>, info: &TickInfo<'_>) -> NextTick {
        let queues = info.queues;
        let mut next = self.inner.on_tick(tick, info);
        next.monitor = self.agent.as_mut().and_then(AgentAddrs::refresh);
        if !self.warned_busy_spin && queues.iter().any(|q| q.capture.busy_poll_without_napi) {
            self.warned_busy_spin = true;
            diag::emit(Diag::BusyPollWithoutNapi);
        }
        if surgewatch_sensor::signals::take_hangup() {
            diag::emit(Diag::ReloadUnsupported);
        }
        let now = tick.tick_start_ns;
        self.untracked += tick.stats.overflow.packets;
        // SIGUSR1: this tick's status line, whatever the interval.
        let asked = surgewatch_sensor::signals::take_status_request();
        if asked
            || self.status_every_ns > 0
                && now.saturating_sub(self.last_status_ns) >= self.status_every_ns
        {
            let received: u64 = queues.iter().map(|q| q.capture.received).sum();
            let secs = (now.saturating_sub(self.last_status_ns)) as f64 / 1e9;
            let pps = if self.last_status_ns == 0 || secs <= 0.0 {
                0.0
            } else {
                (received - self.last_received.min(received)) as f64 / secs
            };
            let per_sec = |n: u64| {
                if self.last_status_ns == 0 || secs <= 0.0 {
                    0.0
                } else {
                    n as f64 / secs
                }
            };
            diag::emit(Diag::Status {
                pps,
                open_incidents: self.inner.detector.open_incidents(),
                tracked: tick.tracked,
                untracked_pps: per_sec(self.untracked),
                queues: queues
                    .iter()
                    .map(|q| QueueStatus {
                        name: q.name.clone(),
                        received: q.capture.received,
                        drops: q.capture.kernel_drops + q.capture.rx_ring_full,
                        parse_errors: q.parse_errors,
                    })
                    .collect(),
                link_losses: info.link.map_or(0, |l| l.losses),
                reattaches: info.link.map_or(0, |l| l.reattaches),
            });
            self.last_status_ns = now;
            self.last_received = received;
            self.untracked = 0;
        }
        next
    }

    fn after_tick(&mut self, acct: &Accounting) {
        self.inner.maybe_save(acct);
    }
}
