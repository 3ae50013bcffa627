//! Diagnostics: every message the sensor writes on stderr is a typed [`Diag`] that is both
//! written (one line, the same text as ever: tests and operators grep for it) and counted
//! per kind ([`DiagStats`], a plain struct the sensor can publish as metrics).
//!
//! ```
//! use surgewatch_export::diag::{self, Diag, DiagKind};
//! diag::emit(Diag::WorkersLate { missing: 1 });
//! assert!(diag::stats().get(DiagKind::WorkersLate) >= 1);
//! ```
//!
//! The process has one [`Diagnostics`] (behind [`emit`], [`stats`], [`set_terminal`]), so
//! any thread can report without a handle; its counters are atomics, touched only when a
//! diagnostic is emitted, never on the per-packet path.

use std::fmt;
use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use crate::terminal::Terminal;

/// One diagnostic. `Display` gives its stderr line (without the newline).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Diag {
    /// A command failed; the process exits with status 2.
    CommandFailed {
        /// The error chain on one line.
        message: String,
    },
    /// `check-config` found errors.
    ConfigInvalid {
        /// Every error, one per line (`FILE:LINE:COL: key.path: message`).
        errors: String,
    },
    /// Nothing is configured to be monitored: every destination address is.
    AutoMonitor {
        /// How many addresses at most.
        limit: u32,
    },
    /// A capture starts before the previous one ended; its timestamps are shifted forward.
    TimeShifted {
        /// The capture.
        file: PathBuf,
        /// By how much, ns.
        shift_ns: u64,
    },
    /// `[mitigation] mode = "enforce"` with no speaker adapter to execute actions yet.
    MitigationDryRunOnly,
    /// Replay: within a capture, timestamps jumped back by more than an hour (a record with a
    /// timestamp far ahead of the others, or a capture concatenated from several): the rest
    /// of the file is shifted forward, so that it is not all counted in one tick.
    TimeJumpedBack {
        /// The capture.
        file: PathBuf,
        /// How far back the timestamps jumped, ns.
        back_ns: u64,
        /// The file's shift from there on, ns.
        shift_ns: u64,
    },
    /// A baseline percentile needs more samples than the sketch keeps; a lower one is used.
    PercentileClamped {
        /// The configured percentile.
        percentile: f64,
        /// Samples in the window.
        samples: u32,
        /// The percentile used.
        effective: f64,
    },
    /// Baselines were loaded at start.
    BaselinesLoaded {
        /// How many addresses' baselines.
        count: usize,
        /// Left out: of a baseline shape no group has any more (a changed baseline window).
        dropped: u64,
        /// From this file.
        path: PathBuf,
    },
    /// The baselines file could not be read or decoded: fresh baselines.
    BaselinesUnusable {
        /// The file.
        path: PathBuf,
        /// Why.
        error: String,
        /// Where the file is moved at the first save (a regular file is never lost to a save).
        kept_as: Option<PathBuf>,
    },
    /// Baselines could not be saved.
    BaselinesNotSaved {
        /// The file.
        path: PathBuf,
        /// Why.
        error: String,
    },
    /// An input could not be read to its end (what came before was replayed).
    InputFailed {
        /// The input and the error, with the byte offset.
        error: String,
    },
    /// An input had records whose headers lied, corrected or skipped by the reader (once per
    /// input, at the end of the run).
    InputAnomalies {
        /// The input.
        input: String,
        /// Records whose original length was below the captured length.
        wire_len_below_captured: u64,
        /// Records whose original length was implausible (above the largest frame).
        wire_len_implausible: u64,
        /// Records skipped for a sub-second field out of range.
        subsecond_out_of_range: u64,
    },
    /// Live capture started.
    Capturing {
        /// How (e.g. `eth0: af_xdp, copy mode, ...`).
        description: String,
    },
    /// Something about opening live capture on an interface worth knowing (a fallback, a
    /// setting that does not apply).
    CaptureWarning {
        /// The interface.
        interface: String,
        /// What.
        message: String,
    },
    /// The host agent's addresses at start.
    AgentWatching {
        /// The host's addresses.
        addresses: Vec<IpAddr>,
    },
    /// The host agent could not re-read the host's addresses.
    HostAddressesUnreadable {
        /// Why.
        error: String,
    },
    /// The host's addresses changed; the agent watches the new ones from the next tick.
    HostAddressesChanged {
        /// The new addresses.
        addresses: Vec<IpAddr>,
    },
    /// The host's addresses changed but the new set cannot be monitored.
    HostAddressesUnmonitorable {
        /// Why.
        error: String,
    },
    /// Busy polling was asked for but the kernel gave the sockets no NAPI context.
    BusyPollWithoutNapi,
    /// The periodic status line of a live run.
    Status {
        /// Frames per second since the last status line.
        pps: f64,
        /// Incidents open.
        open_incidents: usize,
        /// Addresses tracked now.
        tracked: usize,
        /// Per-direction packets per second to untracked addresses since the last line.
        untracked_pps: f64,
        /// Per capture queue.
        queues: Vec<QueueStatus>,
        /// Times the captured interface disappeared so far (shown when not zero).
        link_losses: u64,
        /// Times capture was attached again to the interface (shown when not zero).
        reattaches: u64,
    },
    /// The tracked-address budget is full and traffic goes to untracked addresses (given when
    /// it starts, then at most once a minute while it lasts).
    Untracked {
        /// Packets per second (per direction) to untracked addresses in the tick.
        pps: u64,
        /// The budget.
        limit: u64,
    },
    /// A live worker thread could not be started.
    WorkerNotStarted {
        /// Worker index.
        worker: usize,
        /// Why.
        error: String,
    },
    /// Live workers did not hand over their tick in time (the tick closed without them).
    WorkersLate {
        /// How many.
        missing: usize,
    },
    /// A live worker's capture source returned an error (the worker goes on).
    WorkerCaptureFailed {
        /// Worker index.
        worker: usize,
        /// The error.
        error: String,
    },
    /// An output failed (other than its reader going away, which is not worth a message).
    OutputFailed {
        /// The sink and its error.
        error: String,
    },
    /// SIGHUP was received: it does not end the run, and there is no reload yet.
    ReloadUnsupported,
    /// The captured interface was deleted: capture stopped until one of that name comes back.
    InterfaceLost {
        /// The interface.
        interface: String,
        /// Its index, gone.
        ifindex: u32,
    },
    /// An interface of the captured name came back and capture was attached to it again.
    InterfaceBack {
        /// The interface.
        interface: String,
        /// Its new index.
        ifindex: u32,
        /// How it is captured now (as in [`Diag::Capturing`]).
        description: String,
    },
}

/// One queue in a [`Diag::Status`] line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueStatus {
    /// Source name, e.g. `eth0/q3`.
    pub name: String,
    /// Frames received so far.
    pub received: u64,
    /// Frames lost so far (kernel drops and full RX ring).
    pub drops: u64,
    /// Frames with a parse error so far.
    pub parse_errors: u64,
}

/// The kind of a [`Diag`], without its data: what is counted.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum DiagKind {
    /// [`Diag::CommandFailed`].
    CommandFailed,
    /// [`Diag::ConfigInvalid`].
    ConfigInvalid,
    /// [`Diag::AutoMonitor`].
    AutoMonitor,
    /// [`Diag::TimeShifted`].
    TimeShifted,
    /// [`Diag::PercentileClamped`].
    PercentileClamped,
    /// [`Diag::BaselinesLoaded`].
    BaselinesLoaded,
    /// [`Diag::BaselinesUnusable`].
    BaselinesUnusable,
    /// [`Diag::BaselinesNotSaved`].
    BaselinesNotSaved,
    /// [`Diag::InputFailed`].
    InputFailed,
    /// [`Diag::InputAnomalies`].
    InputAnomalies,
    /// [`Diag::Capturing`].
    Capturing,
    /// [`Diag::CaptureWarning`].
    CaptureWarning,
    /// [`Diag::AgentWatching`].
    AgentWatching,
    /// [`Diag::HostAddressesUnreadable`].
    HostAddressesUnreadable,
    /// [`Diag::HostAddressesChanged`].
    HostAddressesChanged,
    /// [`Diag::HostAddressesUnmonitorable`].
    HostAddressesUnmonitorable,
    /// [`Diag::BusyPollWithoutNapi`].
    BusyPollWithoutNapi,
    /// [`Diag::Status`].
    Status,
    /// [`Diag::WorkerNotStarted`].
    WorkerNotStarted,
    /// [`Diag::WorkersLate`].
    WorkersLate,
    /// [`Diag::WorkerCaptureFailed`].
    WorkerCaptureFailed,
    /// [`Diag::OutputFailed`].
    OutputFailed,
    /// [`Diag::ReloadUnsupported`].
    ReloadUnsupported,
    /// [`Diag::Untracked`].
    Untracked,
    /// [`Diag::InterfaceLost`].
    InterfaceLost,
    /// [`Diag::InterfaceBack`].
    InterfaceBack,
    /// [`Diag::TimeJumpedBack`].
    TimeJumpedBack,
    /// [`Diag::MitigationDryRunOnly`].
    MitigationDryRunOnly,
}

impl DiagKind {
    /// Number of kinds.
    pub const COUNT: usize = 28;

    /// Every kind, in index order.
    pub const ALL: [DiagKind; Self::COUNT] = [
        DiagKind::CommandFailed,
        DiagKind::ConfigInvalid,
        DiagKind::AutoMonitor,
        DiagKind::TimeShifted,
        DiagKind::PercentileClamped,
        DiagKind::BaselinesLoaded,
        DiagKind::BaselinesUnusable,
        DiagKind::BaselinesNotSaved,
        DiagKind::InputFailed,
        DiagKind::InputAnomalies,
        DiagKind::Capturing,
        DiagKind::CaptureWarning,
        DiagKind::AgentWatching,
        DiagKind::HostAddressesUnreadable,
        DiagKind::HostAddressesChanged,
        DiagKind::HostAddressesUnmonitorable,
        DiagKind::BusyPollWithoutNapi,
        DiagKind::Status,
        DiagKind::WorkerNotStarted,
        DiagKind::WorkersLate,
        DiagKind::WorkerCaptureFailed,
        DiagKind::OutputFailed,
        DiagKind::ReloadUnsupported,
        DiagKind::Untracked,
        DiagKind::InterfaceLost,
        DiagKind::InterfaceBack,
        DiagKind::TimeJumpedBack,
        DiagKind::MitigationDryRunOnly,
    ];

    /// Dense index, `0..COUNT`.
    pub fn index(self) -> usize {
        self as usize
    }
}

impl Diag {
    /// What is counted.
    pub fn kind(&self) -> DiagKind {
        match self {
            Diag::CommandFailed { .. } => DiagKind::CommandFailed,
            Diag::ConfigInvalid { .. } => DiagKind::ConfigInvalid,
            Diag::AutoMonitor { .. } => DiagKind::AutoMonitor,
            Diag::TimeShifted { .. } => DiagKind::TimeShifted,
            Diag::PercentileClamped { .. } => DiagKind::PercentileClamped,
            Diag::BaselinesLoaded { .. } => DiagKind::BaselinesLoaded,
            Diag::BaselinesUnusable { .. } => DiagKind::BaselinesUnusable,
            Diag::BaselinesNotSaved { .. } => DiagKind::BaselinesNotSaved,
            Diag::InputFailed { .. } => DiagKind::InputFailed,
            Diag::InputAnomalies { .. } => DiagKind::InputAnomalies,
            Diag::Capturing { .. } => DiagKind::Capturing,
            Diag::CaptureWarning { .. } => DiagKind::CaptureWarning,
            Diag::AgentWatching { .. } => DiagKind::AgentWatching,
            Diag::HostAddressesUnreadable { .. } => DiagKind::HostAddressesUnreadable,
            Diag::HostAddressesChanged { .. } => DiagKind::HostAddressesChanged,
            Diag::HostAddressesUnmonitorable { .. } => DiagKind::HostAddressesUnmonitorable,
            Diag::BusyPollWithoutNapi => DiagKind::BusyPollWithoutNapi,
            Diag::Status { .. } => DiagKind::Status,
            Diag::WorkerNotStarted { .. } => DiagKind::WorkerNotStarted,
            Diag::WorkersLate { .. } => DiagKind::WorkersLate,
            Diag::WorkerCaptureFailed { .. } => DiagKind::WorkerCaptureFailed,
            Diag::OutputFailed { .. } => DiagKind::OutputFailed,
            Diag::ReloadUnsupported => DiagKind::ReloadUnsupported,
            Diag::Untracked { .. } => DiagKind::Untracked,
            Diag::InterfaceLost { .. } => DiagKind::InterfaceLost,
            Diag::InterfaceBack { .. } => DiagKind::InterfaceBack,
            Diag::TimeJumpedBack { .. } => DiagKind::TimeJumpedBack,
            Diag::MitigationDryRunOnly => DiagKind::MitigationDryRunOnly,
        }
    }
}

fn addresses(list: &[IpAddr]) -> String {
    list.iter()
        .map(IpAddr::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

impl fmt::Display for Diag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Diag::CommandFailed { message } => write!(f, "surgewatch: error: {message}"),
            Diag::ConfigInvalid { errors } => f.write_str(errors.trim_end_matches('\n')),
            Diag::AutoMonitor { limit } => write!(
                f,
                "surgewatch: no monitored prefixes given: monitoring every destination address \
                 (inbound only), up to {limit} addresses"
            ),
            Diag::TimeShifted { file, shift_ns } => write!(
                f,
                "surgewatch: note: {} starts before the previous capture ended; its timestamps \
                 are shifted by +{:.3} s",
                file.display(),
                *shift_ns as f64 / 1e9
            ),
            Diag::MitigationDryRunOnly => f.write_str(
                "surgewatch: warning: mitigation mode \"enforce\": this version has no speaker \
                 adapter to execute actions yet; they are computed and reported as dry-run",
            ),
            Diag::TimeJumpedBack {
                file,
                back_ns,
                shift_ns,
            } => write!(
                f,
                "surgewatch: warning: {}: timestamps jump back by {:.3} s; the rest of the \
                 capture is shifted by +{:.3} s (a record dated far ahead of the others?)",
                file.display(),
                *back_ns as f64 / 1e9,
                *shift_ns as f64 / 1e9
            ),
            Diag::PercentileClamped {
                percentile,
                samples,
                effective,
            } => write!(
                f,
                "surgewatch: warning: a baseline percentile of {percentile} over {samples} \
                 samples keeps more samples than the baseline sketch holds; using p{effective:.2}"
            ),
            Diag::BaselinesLoaded {
                count,
                dropped,
                path,
            } => {
                write!(f, "surgewatch: loaded {count} baselines from {}", path.display())?;
                if *dropped > 0 {
                    write!(
                        f,
                        "; {dropped} left out (their group's baseline window or sketch changed)"
                    )?;
                }
                Ok(())
            }
            Diag::BaselinesUnusable {
                path,
                error,
                kept_as,
            } => {
                write!(
                    f,
                    "surgewatch: warning: {}: {error}; starting with fresh baselines",
                    path.display()
                )?;
                match kept_as {
                    Some(k) => write!(f, " (the file is kept as {})", k.display()),
                    None => Ok(()),
                }
            }
            Diag::BaselinesNotSaved { path, error } => write!(
                f,
                "surgewatch: warning: cannot save baselines to {}: {error}",
                path.display()
            ),
            Diag::InputFailed { error } => write!(f, "surgewatch: error: {error}"),
            Diag::InputAnomalies {
                input,
                wire_len_below_captured,
                wire_len_implausible,
                subsecond_out_of_range,
            } => write!(
                f,
                "surgewatch: warning: {input}: records with impossible headers: \
                 {wire_len_below_captured} original length below the captured length and \
                 {wire_len_implausible} original length implausible (counted as captured), \
                 {subsecond_out_of_range} sub-second field out of range (skipped)"
            ),
            Diag::Capturing { description } => write!(f, "surgewatch: capturing {description}"),
            Diag::CaptureWarning { interface, message } => {
                write!(f, "surgewatch: {interface}: {message}")
            }
            Diag::AgentWatching { addresses: list } => write!(
                f,
                "surgewatch: agent watching {} address(es): {}",
                list.len(),
                addresses(list)
            ),
            Diag::HostAddressesUnreadable { error } => write!(
                f,
                "surgewatch: warning: cannot read the host's addresses: {error}"
            ),
            Diag::HostAddressesChanged { addresses: list } => write!(
                f,
                "surgewatch: host addresses changed: now watching {}",
                addresses(list)
            ),
            Diag::HostAddressesUnmonitorable { error } => write!(
                f,
                "surgewatch: warning: host addresses changed but cannot be monitored: {error}"
            ),
            Diag::BusyPollWithoutNapi => f.write_str(
                "surgewatch: warning: busy polling: the kernel gave the AF_XDP sockets no NAPI \
                 context to poll (copy mode on Linux 6.13+): the workers spin on their rings instead",
            ),
            Diag::Untracked { pps, limit } => write!(
                f,
                "surgewatch: warning: the tracked-address budget ({limit} addresses) is full: \
                 {pps} packets/s go to untracked addresses (counted in the totals only; \
                 destinations above the admission rate replace quiet tracked ones)"
            ),
            Diag::Status {
                pps,
                open_incidents,
                tracked,
                untracked_pps,
                queues,
                link_losses,
                reattaches,
            } => {
                let per_queue: Vec<String> = queues
                    .iter()
                    .map(|q| {
                        format!(
                            "{} rx={} drops={} err={}",
                            q.name, q.received, q.drops, q.parse_errors
                        )
                    })
                    .collect();
                let link = if *link_losses > 0 || *reattaches > 0 {
                    format!(", interface lost {link_losses} time(s), re-attached {reattaches}")
                } else {
                    String::new()
                };
                write!(
                    f,
                    "surgewatch: status: {pps:.0} pps, {open_incidents} incident(s) open, \
                     {tracked} addresses tracked, {untracked_pps:.0} pps untracked{link}; {}",
                    per_queue.join("; ")
                )
            }
            Diag::WorkerNotStarted { worker, error } => write!(
                f,
                "surgewatch: error: cannot start worker {worker}: {error}"
            ),
            Diag::WorkersLate { missing } => write!(
                f,
                "surgewatch: warning: {missing} worker(s) did not hand over their tick in time"
            ),
            Diag::WorkerCaptureFailed { worker, error } => {
                write!(f, "surgewatch: error: worker {worker}: {error}")
            }
            Diag::OutputFailed { error } => write!(f, "surgewatch: warning: {error}"),
            Diag::ReloadUnsupported => {
                f.write_str("surgewatch: note: SIGHUP: reload is not supported yet; state kept")
            }
            Diag::InterfaceLost { interface, ifindex } => write!(
                f,
                "surgewatch: warning: {interface} disappeared (interface {ifindex} deleted): \
                 capture stopped; it resumes when an interface named {interface} comes back"
            ),
            Diag::InterfaceBack {
                interface,
                ifindex,
                description,
            } => write!(
                f,
                "surgewatch: {interface} is back (interface {ifindex}): capture re-attached: \
                 {description}"
            ),
        }
    }
}

/// How many diagnostics of each kind were emitted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DiagStats {
    counts: [u64; DiagKind::COUNT],
}

impl DiagStats {
    /// Diagnostics of `kind` so far.
    pub fn get(&self, kind: DiagKind) -> u64 {
        self.counts.get(kind.index()).copied().unwrap_or(0)
    }

    /// Every kind with its count, in index order.
    pub fn iter(&self) -> impl Iterator<Item = (DiagKind, u64)> + '_ {
        DiagKind::ALL.iter().map(|&k| (k, self.get(k)))
    }
}

/// Writes and counts diagnostics; see the module docs.
pub struct Diagnostics {
    counts: [AtomicU64; DiagKind::COUNT],
    terminal: RwLock<Option<Arc<dyn Terminal>>>,
}

impl Default for Diagnostics {
    fn default() -> Self {
        Self::new()
    }
}

impl Diagnostics {
    /// No diagnostic yet, no terminal to share.
    pub const fn new() -> Self {
        Diagnostics {
            counts: [const { AtomicU64::new(0) }; DiagKind::COUNT],
            terminal: RwLock::new(None),
        }
    }

    /// Counts `d` and writes its line to `out`; a failed write is ignored (a closed stderr
    /// must not stop the sensor).
    pub fn emit_to(&self, d: &Diag, out: &mut dyn Write) {
        if let Some(c) = self.counts.get(d.kind().index()) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        let _ = writeln!(out, "{d}");
    }

    /// Counts `d` and writes its line on stderr, with the terminal's bar (if any) suspended.
    pub fn emit(&self, d: &Diag) {
        self.emit_with(d, || std::io::stderr().lock());
    }

    /// [`Self::emit`] to the writer `out` gives. The writer is taken inside the suspension:
    /// the bar draws on stderr from its own thread, and holding stderr's lock while waiting
    /// for the bar's would deadlock with it.
    fn emit_with<W: Write>(&self, d: &Diag, mut out: impl FnMut() -> W) {
        let terminal = self.terminal.read().ok().and_then(|t| t.clone());
        let mut write = || self.emit_to(d, &mut out());
        match terminal {
            Some(t) => t.suspend(&mut write),
            None => write(),
        }
    }

    /// The counts so far.
    pub fn stats(&self) -> DiagStats {
        let mut s = DiagStats::default();
        for (n, c) in s.counts.iter_mut().zip(&self.counts) {
            *n = c.load(Ordering::Relaxed);
        }
        s
    }

    /// Shares stderr with a progress bar from now on (`None`: no longer).
    pub fn set_terminal(&self, terminal: Option<Arc<dyn Terminal>>) {
        if let Ok(mut t) = self.terminal.write() {
            *t = terminal;
        }
    }
}

static GLOBAL: Diagnostics = Diagnostics::new();

/// Counts and writes `d` (the process's [`Diagnostics`]).
pub fn emit(d: Diag) {
    GLOBAL.emit(&d);
}

/// The process's counts so far.
pub fn stats() -> DiagStats {
    GLOBAL.stats()
}

/// Shares stderr with a progress bar from now on (`None`: no longer).
pub fn set_terminal(terminal: Option<Arc<dyn Terminal>>) {
    GLOBAL.set_terminal(terminal);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_of_each() -> Vec<Diag> {
        let path = PathBuf::from("/var/lib/b.bin");
        let ip: IpAddr = [192, 0, 2, 10].into();
        vec![
            Diag::CommandFailed {
                message: "x".into(),
            },
            Diag::ConfigInvalid {
                errors: "a\nb".into(),
            },
            Diag::AutoMonitor { limit: 100_000 },
            Diag::TimeShifted {
                file: "b.pcap".into(),
                shift_ns: 1_500_000_000,
            },
            Diag::PercentileClamped {
                percentile: 99.99,
                samples: 3600,
                effective: 99.5,
            },
            Diag::BaselinesLoaded {
                count: 3,
                dropped: 2,
                path: path.clone(),
            },
            Diag::BaselinesUnusable {
                path: path.clone(),
                error: "bad magic".into(),
                kept_as: Some("/var/lib/b.bin.unusable".into()),
            },
            Diag::BaselinesNotSaved {
                path,
                error: "read-only".into(),
            },
            Diag::InputFailed {
                error: "cut.pcap: truncated at offset 77".into(),
            },
            Diag::InputAnomalies {
                input: "x.pcap".into(),
                wire_len_below_captured: 1,
                wire_len_implausible: 2,
                subsecond_out_of_range: 3,
            },
            Diag::Capturing {
                description: "eth0: af_packet".into(),
            },
            Diag::CaptureWarning {
                interface: "eth0".into(),
                message: "w".into(),
            },
            Diag::AgentWatching {
                addresses: vec![ip],
            },
            Diag::HostAddressesUnreadable { error: "e".into() },
            Diag::HostAddressesChanged {
                addresses: vec![ip, [192, 0, 2, 11].into()],
            },
            Diag::HostAddressesUnmonitorable { error: "e".into() },
            Diag::BusyPollWithoutNapi,
            Diag::Status {
                pps: 1234.4,
                open_incidents: 1,
                tracked: 3,
                untracked_pps: 0.0,
                queues: vec![QueueStatus {
                    name: "eth0/q0".into(),
                    received: 5,
                    drops: 1,
                    parse_errors: 0,
                }],
                link_losses: 0,
                reattaches: 0,
            },
            Diag::WorkerNotStarted {
                worker: 2,
                error: "e".into(),
            },
            Diag::WorkersLate { missing: 1 },
            Diag::WorkerCaptureFailed {
                worker: 0,
                error: "e".into(),
            },
            Diag::OutputFailed {
                error: "output stdout: disk full".into(),
            },
            Diag::ReloadUnsupported,
            Diag::Untracked {
                pps: 5000,
                limit: 100,
            },
            Diag::InterfaceLost {
                interface: "eth0".into(),
                ifindex: 5,
            },
            Diag::InterfaceBack {
                interface: "eth0".into(),
                ifindex: 7,
                description: "eth0: af_packet".into(),
            },
            Diag::TimeJumpedBack {
                file: "x.pcap".into(),
                back_ns: 7_200_000_000_000,
                shift_ns: 7_201_000_000_000,
            },
            Diag::MitigationDryRunOnly,
        ]
    }

    #[test]
    fn every_kind_is_listed_once_and_indexes_densely() {
        for (i, k) in DiagKind::ALL.iter().enumerate() {
            assert_eq!(k.index(), i);
        }
        let kinds: Vec<DiagKind> = one_of_each().iter().map(Diag::kind).collect();
        assert_eq!(kinds, DiagKind::ALL.to_vec());
    }

    #[test]
    fn lines_keep_the_texts_that_operators_and_tests_grep_for() {
        let lines: Vec<String> = one_of_each().iter().map(|d| d.to_string()).collect();
        let want = [
            "surgewatch: error: x",
            "a\nb",
            "surgewatch: no monitored prefixes given: monitoring every destination address (inbound only), up to 100000 addresses",
            "surgewatch: note: b.pcap starts before the previous capture ended; its timestamps are shifted by +1.500 s",
            "surgewatch: warning: a baseline percentile of 99.99 over 3600 samples keeps more samples than the baseline sketch holds; using p99.50",
            "surgewatch: loaded 3 baselines from /var/lib/b.bin; 2 left out (their group's baseline window or sketch changed)",
            "surgewatch: warning: /var/lib/b.bin: bad magic; starting with fresh baselines (the file is kept as /var/lib/b.bin.unusable)",
            "surgewatch: warning: cannot save baselines to /var/lib/b.bin: read-only",
            "surgewatch: error: cut.pcap: truncated at offset 77",
            "surgewatch: warning: x.pcap: records with impossible headers: 1 original length below the captured length and 2 original length implausible (counted as captured), 3 sub-second field out of range (skipped)",
            "surgewatch: capturing eth0: af_packet",
            "surgewatch: eth0: w",
            "surgewatch: agent watching 1 address(es): 192.0.2.10",
            "surgewatch: warning: cannot read the host's addresses: e",
            "surgewatch: host addresses changed: now watching 192.0.2.10, 192.0.2.11",
            "surgewatch: warning: host addresses changed but cannot be monitored: e",
            "surgewatch: warning: busy polling: the kernel gave the AF_XDP sockets no NAPI context to poll (copy mode on Linux 6.13+): the workers spin on their rings instead",
            "surgewatch: status: 1234 pps, 1 incident(s) open, 3 addresses tracked, 0 pps untracked; eth0/q0 rx=5 drops=1 err=0",
            "surgewatch: error: cannot start worker 2: e",
            "surgewatch: warning: 1 worker(s) did not hand over their tick in time",
            "surgewatch: error: worker 0: e",
            "surgewatch: warning: output stdout: disk full",
            "surgewatch: note: SIGHUP: reload is not supported yet; state kept",
            "surgewatch: warning: the tracked-address budget (100 addresses) is full: 5000 packets/s go to untracked addresses (counted in the totals only; destinations above the admission rate replace quiet tracked ones)",
            "surgewatch: warning: eth0 disappeared (interface 5 deleted): capture stopped; it resumes when an interface named eth0 comes back",
            "surgewatch: eth0 is back (interface 7): capture re-attached: eth0: af_packet",
            "surgewatch: warning: x.pcap: timestamps jump back by 7200.000 s; the rest of the capture is shifted by +7201.000 s (a record dated far ahead of the others?)",
            "surgewatch: warning: mitigation mode \"enforce\": this version has no speaker adapter to execute actions yet; they are computed and reported as dry-run",
        ];
        assert_eq!(lines, want);
    }

    #[test]
    fn the_status_line_says_when_the_interface_was_lost() {
        let d = Diag::Status {
            pps: 0.0,
            open_incidents: 0,
            tracked: 1,
            untracked_pps: 0.0,
            queues: vec![QueueStatus {
                name: "eth0/q0".into(),
                received: 5,
                drops: 0,
                parse_errors: 0,
            }],
            link_losses: 1,
            reattaches: 1,
        };
        assert_eq!(
            d.to_string(),
            "surgewatch: status: 0 pps, 0 incident(s) open, 1 addresses tracked, 0 pps untracked, interface lost 1 time(s), re-attached 1; eth0/q0 rx=5 drops=0 err=0"
        );
    }

    #[test]
    fn emitting_writes_one_line_and_counts_its_kind() {
        let d = Diagnostics::new();
        let mut out = Vec::new();
        d.emit_to(&Diag::WorkersLate { missing: 2 }, &mut out);
        d.emit_to(&Diag::WorkersLate { missing: 1 }, &mut out);
        d.emit_to(&Diag::BusyPollWithoutNapi, &mut out);
        let text = String::from_utf8(out).unwrap_or_default();
        assert_eq!(text.lines().count(), 3);
        assert!(text.ends_with('\n'));
        let s = d.stats();
        assert_eq!(s.get(DiagKind::WorkersLate), 2);
        assert_eq!(s.get(DiagKind::BusyPollWithoutNapi), 1);
        assert_eq!(s.iter().map(|(_, n)| n).sum::<u64>(), 3);
    }

    #[test]
    fn a_terminal_is_suspended_around_the_line() {
        struct Counting(AtomicU64);
        impl Terminal for Counting {
            fn suspend(&self, write: &mut dyn FnMut()) {
                self.0.fetch_add(1, Ordering::Relaxed);
                write();
            }
        }
        let d = Diagnostics::new();
        let t = Arc::new(Counting(AtomicU64::new(0)));
        let out = crate::testing::SharedBuf::default();
        d.set_terminal(Some(t.clone()));
        d.emit_with(&Diag::WorkersLate { missing: 1 }, || out.clone());
        d.set_terminal(None);
        d.emit_with(&Diag::WorkersLate { missing: 1 }, || out.clone());
        assert_eq!(t.0.load(Ordering::Relaxed), 1);
        assert_eq!(d.stats().get(DiagKind::WorkersLate), 2);
        assert_eq!(out.text().lines().count(), 2);
    }
}
