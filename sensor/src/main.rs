//! The `surgewatch` command line.

mod agent_addrs;
mod baseline_file;
mod cli;
mod settings;

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Parser;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use surgewatch_detect::{Detector, IncidentEvent};
use surgewatch_export::diag;
use surgewatch_export::events::EventJson;
use surgewatch_export::summary::{RunInfo, SummaryJson};
use surgewatch_per_ip::{ClosedTick, NextTick};
use surgewatch_sensor::replay::{self, ReplayConfig};
use surgewatch_sensor::tick::{TickInfo, TickObserver};
use surgewatch_tuning::{Config, Overrides};

use crate::agent_addrs::AgentAddrs;
use crate::baseline_file::BaselineFile;
use crate::cli::{AgentArgs, Cli, Cmd, Format, ReplayArgs, RunArgs};
use crate::settings::Settings;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Replay(args) => cmd_replay(args),
        Cmd::Run(args) => cmd_run(args),
        Cmd::Agent(args) => cmd_agent(args),
        Cmd::CheckConfig { file } => cmd_check_config(&file),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("surgewatch: error: {}", one_line(&e));
            ExitCode::from(2)
        }
    }
}

/// An error chain on one line: "outer: inner: root".
fn one_line(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let s = cause.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
    }
    parts.join(": ").replace('\n', "; ")
}

fn cmd_check_config(file: &std::path::Path) -> Result<ExitCode> {
    match surgewatch_tuning::load(file) {
        Ok(cfg) => {
            let groups = cfg.resolved_groups();
            let prefixes: usize = groups.iter().map(|g| g.prefixes.len()).sum();
            println!(
                "{}: ok ({} group(s), {} prefix(es))",
                file.display(),
                groups.len(),
                prefixes
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(errs) => {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "{errs}");
            if !errs.to_string().ends_with('\n') {
                let _ = writeln!(err);
            }
            Ok(ExitCode::from(1))
        }
    }
}

struct Observer {
    bar: Option<ProgressBar>,
    detector: Detector,
    events: Vec<IncidentEvent>,
    format: Format,
    groups: Vec<String>,
    out: std::io::BufWriter<std::io::Stdout>,
    baselines: Option<BaselineFile>,
}

impl Observer {
    fn emit(&mut self) {
        for e in self.events.drain(..) {
            let j = EventJson::new(&e, &self.groups);
            let line = match self.format {
                Format::Json => j.to_json_line(),
                Format::Text => j.to_text(),
            };
            match &self.bar {
                Some(b) if self.format == Format::Text => b.suspend(|| {
                    let _ = writeln!(self.out, "{line}");
                    let _ = self.out.flush();
                }),
                _ => {
                    let _ = writeln!(self.out, "{line}");
                    let _ = self.out.flush();
                }
            }
        }
    }
}

impl TickObserver for Observer {
    fn on_tick(&mut self, tick: &ClosedTick<'_>, info: &TickInfo<'_>) -> NextTick {
        self.detector
            .on_tick(tick, info.idle_after, &mut self.events);
        self.emit();
        NextTick {
            watch: Some(self.detector.watch_list()),
            monitor: None,
        }
    }

    fn after_tick(&mut self, acct: &surgewatch_per_ip::Accounting) {
        self.maybe_save(acct);
    }

    fn on_progress(&mut self, bytes_done: u64) {
        if let Some(b) = &self.bar {
            b.set_position(bytes_done);
        }
    }

    fn on_time_shift(&mut self, file: &std::path::Path, shift_ns: u64) {
        let msg = format!(
            "surgewatch: note: {} starts before the previous capture ended; its timestamps are shifted by +{:.3} s",
            file.display(),
            shift_ns as f64 / 1e9
        );
        match &self.bar {
            Some(b) => b.println(msg),
            None => eprintln!("{msg}"),
        }
    }
}

fn load_config(path: Option<&std::path::Path>) -> Result<Config> {
    Ok(match path {
        Some(path) => surgewatch_tuning::load(path).map_err(|e| {
            let text = e.to_string();
            let lines: Vec<&str> = text.lines().collect();
            anyhow::anyhow!(
                "invalid configuration ({} error(s)): {}",
                lines.len(),
                lines.join("; ")
            )
        })?,
        None => Config::default(),
    })
}

/// The settings of a run: the config (if any) with the command line's overrides applied.
fn prepare(config: Option<&std::path::Path>, overrides: &Overrides) -> Result<Settings> {
    let effective = overrides.apply(load_config(config)?)?;
    Settings::new(effective, &[])
}

impl Observer {
    /// The observer of a run: a detector (with baselines loaded), events to stdout.
    fn new(s: &Settings, format: Format, bar: Option<ProgressBar>) -> Self {
        let mut detector = Detector::new(s.detector.clone());
        let baselines = s
            .baselines
            .as_ref()
            .map(|(path, every)| BaselineFile::new(path.clone(), *every));
        if let Some(f) = &baselines {
            if let Some(bytes) = f.read() {
                f.loaded(detector.load_baselines(&bytes));
            }
        }
        Observer {
            bar,
            detector,
            events: Vec::new(),
            format,
            groups: s.monitor.groups.clone(),
            out: std::io::BufWriter::new(std::io::stdout()),
            baselines,
        }
    }

    /// Saves baselines every `save_interval` of (capture or wall-clock) time.
    fn maybe_save(&mut self, acct: &surgewatch_per_ip::Accounting) {
        if let Some(f) = &mut self.baselines {
            if f.due(acct.ticks_closed().saturating_mul(acct.tick_ns())) {
                f.save(&self.detector.encode_baselines(acct));
            }
        }
    }

    /// Ends open incidents, saves baselines and writes the summary; returns the summary's
    /// stdout error (ignored by callers: a closed stdout is not worth a message).
    fn finish(mut self, acct: &surgewatch_per_ip::Accounting, mut info: RunInfo, top_n: usize) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
        self.detector.finish(&mut self.events);
        self.emit();
        if let Some(f) = &self.baselines {
            f.save(&self.detector.encode_baselines(acct));
        }
        info.incidents = self.detector.closed().to_vec();
        let summary = SummaryJson::new(&acct.report(top_n), &info);
        let written = match self.format {
            Format::Json => writeln!(self.out, "{}", summary.to_json_line()),
            Format::Text => write!(self.out, "{}", summary.to_text()),
        };
        let _ = written.and_then(|_| self.out.flush());
    }
}

fn cmd_replay(args: ReplayArgs) -> Result<ExitCode> {
    let overrides = args.overrides();
    let effective = overrides.apply(load_config(args.detect.config.as_deref())?)?;
    for f in &args.files {
        if f.is_dir() {
            bail!("{}: is a directory, not a capture file", f.display());
        }
    }
    let sources = replay::open_all(&args.files)?;
    let settings = Settings::new(effective, &[])?;
    for note in &settings.notes {
        diag::emit(note.clone());
    }
    let total = replay::total_size(&sources);
    let bar = (!args.no_progress && std::io::stderr().is_terminal()).then(|| {
        let b = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr_with_hz(5));
        b.set_style(
            ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta})")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b.enable_steady_tick(Duration::from_millis(200));
        b
    });
    let mut observer = Observer::new(&settings, args.detect.format, bar);
    let rcfg = ReplayConfig {
        files: args.files.clone(),
        monitor: settings.monitor.monitor.clone(),
        tick: settings.tick,
        workers: settings.workers,
        parse: settings.parse,
    };
    let outcome = replay::replay(&rcfg, sources, &mut observer);
    let errors: Vec<String> = outcome.errors.iter().map(|e| e.to_string()).collect();
    let info = RunInfo {
        inputs: args.files.iter().map(|p| p.display().to_string()).collect(),
        groups: settings.monitor.groups.clone(),
        monitor_mode: settings.monitor.mode,
        tick_secs: settings.tick.as_duration().as_secs_f64(),
        workers: settings.workers,
        time_span_ns: outcome.time_span_ns,
        late_frames: outcome.late_frames,
        errors: errors.clone(),
        incidents: Vec::new(),
        capture: None,
        queues: Vec::new(),
    };
    observer.finish(&outcome.accounting, info, settings.top_n);
    for e in &errors {
        eprintln!("surgewatch: error: {e}");
    }
    Ok(if errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The live-run observer: detection and events (as in replay), plus a periodic status line.
struct LiveObs {
    inner: Observer,
    status_every_ns: u64,
    last_status_ns: u64,
    last_received: u64,
    /// The "busy polling without a NAPI context" warning was printed.
    warned_busy_spin: bool,
    /// Host agent: follows the host's addresses.
    agent: Option<AgentAddrs>,
}

impl TickObserver for LiveObs {
    fn on_tick(&mut self, tick: &ClosedTick<'_>, info: &TickInfo<'_>) -> NextTick {
        let queues = info.queues;
        let mut next = self.inner.on_tick(tick, info);
        next.monitor = self.agent.as_mut().and_then(AgentAddrs::refresh);
        if !self.warned_busy_spin && queues.iter().any(|q| q.capture.busy_poll_without_napi) {
            self.warned_busy_spin = true;
            eprintln!(
                "surgewatch: warning: busy polling: the kernel gave the AF_XDP sockets no NAPI \
                 context to poll (copy mode on Linux 6.13+): the workers spin on their rings instead"
            );
        }
        let now = tick.tick_start_ns;
        if self.status_every_ns > 0
            && now.saturating_sub(self.last_status_ns) >= self.status_every_ns
        {
            let received: u64 = queues.iter().map(|q| q.capture.received).sum();
            let secs = (now.saturating_sub(self.last_status_ns)) as f64 / 1e9;
            let rate = if self.last_status_ns == 0 {
                0.0
            } else {
                (received - self.last_received.min(received)) as f64 / secs
            };
            let per_queue: Vec<String> = queues
                .iter()
                .map(|q| {
                    format!(
                        "{} rx={} drops={} err={}",
                        q.name,
                        q.capture.received,
                        q.capture.kernel_drops + q.capture.rx_ring_full,
                        q.parse_errors
                    )
                })
                .collect();
            eprintln!(
                "surgewatch: status: {:.0} pps, {} incident(s) open; {}",
                rate,
                self.inner.detector.open_incidents(),
                per_queue.join("; ")
            );
            self.last_status_ns = now;
            self.last_received = received;
        }
        next
    }

    fn after_tick(&mut self, acct: &surgewatch_per_ip::Accounting) {
        self.inner.maybe_save(acct);
    }
}

fn queue_json(q: &surgewatch_sensor::live::QueueStats) -> surgewatch_export::summary::QueueJson {
    surgewatch_export::summary::QueueJson {
        name: q.name.clone(),
        core: q.core,
        received: q.capture.received,
        bytes: q.capture.bytes,
        parse_errors: q.parse_errors,
        kernel_drops: q.capture.kernel_drops,
        rx_ring_full: q.capture.rx_ring_full,
        fill_ring_empty: q.capture.fill_ring_empty,
        invalid_descs: q.capture.invalid_descs,
    }
}

/// What a live run captures: the opened workers, their description and, for the host agent,
/// the addresses to follow.
struct LiveRun {
    workers: Vec<surgewatch_sensor::live::WorkerSpec<surgewatch_sensor::livesrc::LiveSource>>,
    inputs: Vec<String>,
    capture: String,
    agent: Option<AgentAddrs>,
}

/// Runs opened workers until a signal or `--duration`, then drains and reports.
fn run_workers(settings: Settings, format: Format, run: LiveRun) -> Result<ExitCode> {
    let LiveRun {
        workers,
        inputs,
        capture,
        agent,
    } = run;
    let stop = surgewatch_sensor::signals::install();
    if let Some(d) = settings.duration {
        std::thread::spawn(move || {
            std::thread::sleep(d);
            stop.store(true, std::sync::atomic::Ordering::SeqCst);
        });
    }
    eprintln!("surgewatch: capturing {capture}");
    let n = workers.len();
    let mut obs = LiveObs {
        inner: Observer::new(&settings, format, None),
        status_every_ns: u64::try_from(settings.status_interval.as_nanos()).unwrap_or(u64::MAX),
        last_status_ns: 0,
        warned_busy_spin: false,
        last_received: 0,
        agent,
    };
    let started = surgewatch_sensor::live::now_ns();
    let lcfg = surgewatch_sensor::live::LiveConfig {
        monitor: settings.monitor.monitor.clone(),
        tick: settings.tick,
        parse: settings.parse,
    };
    let (acct, queues) = surgewatch_sensor::live::run_live(&lcfg, workers, stop, &mut obs);
    let info = RunInfo {
        inputs,
        groups: settings.monitor.groups.clone(),
        monitor_mode: settings.monitor.mode,
        tick_secs: settings.tick.as_duration().as_secs_f64(),
        workers: n,
        time_span_ns: Some((started, surgewatch_sensor::live::now_ns())),
        late_frames: 0,
        errors: Vec::new(),
        incidents: Vec::new(),
        capture: Some(capture),
        queues: queues.iter().map(queue_json).collect(),
    };
    obs.inner.finish(&acct, info, settings.top_n);
    Ok(ExitCode::SUCCESS)
}

fn cmd_run(args: RunArgs) -> Result<ExitCode> {
    let settings = prepare(args.detect.config.as_deref(), &args.overrides())?;
    for note in &settings.notes {
        diag::emit(note.clone());
    }
    let opts = settings::live_options(&settings.config, &args.interface);
    let opened = surgewatch_sensor::livesrc::open(&opts, &mut |w| {
        eprintln!("surgewatch: {}: {w}", args.interface)
    })?;
    let _promisc = opened.promisc;
    run_workers(
        settings,
        args.detect.format,
        LiveRun {
            workers: opened.workers,
            inputs: vec![args.interface.clone()],
            capture: opened.description,
            agent: None,
        },
    )
}

fn cmd_agent(args: AgentArgs) -> Result<ExitCode> {
    let overrides = args.overrides();
    let effective = overrides.apply(load_config(args.detect.config.as_deref())?)?;
    let interfaces = if args.interfaces.is_empty() {
        surgewatch_sensor::hostaddr::up_interfaces().context("listing interfaces")?
    } else {
        args.interfaces.clone()
    };
    if interfaces.is_empty() {
        bail!("no interface to watch (none is up besides loopback)");
    }
    let addrs = surgewatch_sensor::hostaddr::host_addresses(&interfaces)
        .context("reading the host's addresses")?;
    if addrs.is_empty() && effective.monitor.is_empty() {
        bail!("no address to watch on {}", interfaces.join(", "));
    }
    eprintln!(
        "surgewatch: agent watching {} address(es): {}",
        addrs.len(),
        addrs
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let settings = Settings::new(effective, &addrs)?;
    for note in &settings.notes {
        diag::emit(note.clone());
    }
    let mut workers = Vec::new();
    let mut descriptions = Vec::new();
    for ifname in &interfaces {
        let opts = settings::agent_live_options(ifname);
        let mut opened = surgewatch_sensor::livesrc::open(&opts, &mut |w| {
            eprintln!("surgewatch: {ifname}: {w}")
        })?;
        for w in &mut opened.workers {
            // One light worker per interface; let the scheduler place them.
            w.core = None;
        }
        workers.extend(opened.workers);
        descriptions.push(opened.description);
    }
    let agent = AgentAddrs::new(
        settings.config.clone(),
        interfaces.clone(),
        settings.extra_monitor.clone(),
        addrs,
    );
    run_workers(
        settings,
        args.detect.format,
        LiveRun {
            workers,
            inputs: interfaces,
            capture: descriptions.join("; "),
            agent: Some(agent),
        },
    )
}
