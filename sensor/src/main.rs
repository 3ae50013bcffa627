//! The `surgewatch` command line.

mod cli;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Parser;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use ipnet::IpNet;
use surgewatch_detect::baseline::BaselineParams;
use surgewatch_detect::{Detector, DetectorConfig, GroupDetection, IncidentEvent};
use surgewatch_export::events::EventJson;
use surgewatch_export::summary::{RunInfo, SummaryJson};
use surgewatch_per_ip::{ClosedTick, GroupId, Monitor, NextTick, PrefixTable, TickLength};
use surgewatch_sensor::replay::{self, ReplayConfig};
use surgewatch_sensor::tick::{TickInfo, TickObserver};
use surgewatch_tuning::Config;

use crate::cli::{
    AgentArgs, CaptureArg, Cli, Cmd, DetectArgs, Format, LiveArgs, ReplayArgs, RunArgs,
};

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

/// Parses `--monitor` values: a CIDR, or a bare address taken as a host prefix.
fn parse_monitor(s: &str) -> Result<IpNet> {
    let s = s.trim();
    if let Ok(net) = s.parse::<IpNet>() {
        if net.trunc() != net {
            bail!(
                "--monitor {s}: host bits set (did you mean {}?)",
                net.trunc()
            );
        }
        return Ok(net);
    }
    if let Ok(ip) = s.parse::<std::net::IpAddr>() {
        return Ok(IpNet::from(ip));
    }
    bail!("--monitor {s:?}: not a CIDR prefix or an IP address")
}

struct Setup {
    monitor: Arc<Monitor>,
    groups: Vec<String>,
    detection: Vec<surgewatch_tuning::DetectionConfig>,
    mode: &'static str,
}

/// Builds what is monitored from the config and `--monitor`.
fn monitor_setup(cfg: &Config, extra: &[String]) -> Result<Setup> {
    let mut groups: Vec<String> = Vec::new();
    let mut detection = Vec::new();
    let mut prefixes: Vec<(IpNet, GroupId)> = Vec::new();
    for g in cfg.resolved_groups() {
        let id = GroupId(u16::try_from(groups.len()).context("too many groups (at most 65535)")?);
        prefixes.extend(g.prefixes.iter().map(|p| (*p, id)));
        groups.push(g.name.clone());
        detection.push(g.detection.clone());
    }
    if !extra.is_empty() {
        let id = GroupId(u16::try_from(groups.len()).context("too many groups")?);
        groups.push("cli".to_string());
        detection.push(cfg.detection.clone());
        let mut errors = Vec::new();
        for s in extra {
            match parse_monitor(s) {
                Ok(net) if prefixes.iter().any(|(p, _)| *p == net) => {}
                Ok(net) => prefixes.push((net, id)),
                Err(e) => errors.push(e.to_string()),
            }
        }
        if !errors.is_empty() {
            bail!("{}", errors.join("; "));
        }
    }
    if prefixes.is_empty() {
        let limit = cfg.sensor.auto_monitor_limit.get() as usize;
        eprintln!(
            "surgewatch: no monitored prefixes given: monitoring every destination address (inbound only), up to {limit} addresses"
        );
        groups.push("auto".to_string());
        detection.push(cfg.detection.clone());
        let id = GroupId(u16::try_from(groups.len() - 1).unwrap_or(0));
        return Ok(Setup {
            monitor: Arc::new(Monitor::auto(limit, id)),
            groups,
            detection,
            mode: "auto",
        });
    }
    let table = PrefixTable::new(prefixes).context("building the monitored prefix table")?;
    Ok(Setup {
        monitor: Arc::new(Monitor::prefixes(table)),
        groups,
        detection,
        mode: "prefixes",
    })
}

struct Observer {
    bar: Option<ProgressBar>,
    detector: Detector,
    events: Vec<IncidentEvent>,
    format: Format,
    groups: Vec<String>,
    out: std::io::BufWriter<std::io::Stdout>,
    baseline_path: Option<PathBuf>,
    save_interval_ns: u64,
    last_save_ns: Option<u64>,
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

/// Everything a pipeline run needs from the config and the command line.
struct Prepared {
    cfg: Config,
    tick: TickLength,
    top_n: usize,
    baseline_path: Option<PathBuf>,
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

fn prepare(args: &DetectArgs) -> Result<Prepared> {
    let cfg = load_config(args.config.as_deref())?;
    let tick = match &args.tick {
        Some(t) => {
            let d = surgewatch_tuning::units::parse_duration(t)
                .map_err(|e| anyhow::anyhow!("--tick {t:?}: {e}"))?;
            if d < surgewatch_tuning::MIN_TICK || d > surgewatch_tuning::MAX_TICK {
                bail!("--tick {t:?}: must lie between 100ms and 1m");
            }
            d
        }
        None => cfg.sensor.tick,
    };
    let tick = TickLength::from_duration(tick).context("tick length must be positive")?;
    let top_n = args.top.unwrap_or(cfg.sensor.top_n as usize);
    let baseline_path = args.baselines.clone().or_else(|| cfg.baseline.path.clone());
    Ok(Prepared {
        cfg,
        tick,
        top_n,
        baseline_path,
    })
}

impl Observer {
    /// The observer of a run: a detector (with baselines loaded), events to stdout.
    fn new(
        p: &Prepared,
        setup: &Setup,
        args: &DetectArgs,
        bar: Option<ProgressBar>,
    ) -> Result<Self> {
        let mut detector = Detector::new(detector_config(setup, args, p.tick, p.top_n)?);
        if let Some(path) = &p.baseline_path {
            load_baselines(&mut detector, path);
        }
        Ok(Observer {
            bar,
            detector,
            events: Vec::new(),
            format: args.format,
            groups: setup.groups.clone(),
            out: std::io::BufWriter::new(std::io::stdout()),
            baseline_path: p.baseline_path.clone(),
            save_interval_ns: u64::try_from(p.cfg.baseline.save_interval.as_nanos())
                .unwrap_or(u64::MAX),
            last_save_ns: None,
        })
    }

    /// Saves baselines every `save_interval` of (capture or wall-clock) time.
    fn maybe_save(&mut self, acct: &surgewatch_per_ip::Accounting) {
        let Some(path) = self.baseline_path.clone() else {
            return;
        };
        let now = acct.ticks_closed().saturating_mul(acct.tick_ns());
        match self.last_save_ns {
            None => self.last_save_ns = Some(now),
            Some(last) if now.saturating_sub(last) >= self.save_interval_ns => {
                self.last_save_ns = Some(now);
                save_baselines(&mut self.detector, acct, &path);
            }
            Some(_) => {}
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
        if let Some(path) = self.baseline_path.clone() {
            save_baselines(&mut self.detector, acct, &path);
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
    let p = prepare(&args.detect)?;
    let (cfg, tick, top_n) = (&p.cfg, p.tick, p.top_n);
    let workers = match args.workers {
        Some(0) => bail!("--workers must be at least 1"),
        Some(n) => n,
        None if cfg.sensor.workers > 0 => cfg.sensor.workers as usize,
        None => 1,
    };
    for f in &args.files {
        if f.is_dir() {
            bail!("{}: is a directory, not a capture file", f.display());
        }
    }
    let sources = replay::open_all(&args.files)?;
    let setup = monitor_setup(cfg, &args.detect.monitor)?;
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
    let mut observer = Observer::new(&p, &setup, &args.detect, bar)?;
    let rcfg = ReplayConfig {
        files: args.files.clone(),
        monitor: setup.monitor.clone(),
        tick,
        workers,
        parse: parse_options(cfg),
    };
    let outcome = replay::replay(&rcfg, sources, &mut observer);
    let errors: Vec<String> = outcome.errors.iter().map(|e| e.to_string()).collect();
    let info = RunInfo {
        inputs: args.files.iter().map(|p| p.display().to_string()).collect(),
        groups: setup.groups,
        monitor_mode: setup.mode,
        tick_secs: tick.as_duration().as_secs_f64(),
        workers,
        time_span_ns: outcome.time_span_ns,
        late_frames: outcome.late_frames,
        errors: errors.clone(),
        incidents: Vec::new(),
        capture: None,
        queues: Vec::new(),
    };
    observer.finish(&outcome.accounting, info, top_n);
    for e in &errors {
        eprintln!("surgewatch: error: {e}");
    }
    Ok(if errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Detection settings per group, with the command line's quick-run overrides.
fn detector_config(
    setup: &Setup,
    args: &DetectArgs,
    tick: TickLength,
    top_n: usize,
) -> Result<DetectorConfig> {
    if let Some(p) = args.threshold_pps {
        if !(p.is_finite() && p > 0.0) {
            bail!("--threshold-pps {p}: must be a positive number");
        }
    }
    if let Some(m) = args.threshold_mbps {
        if !(m.is_finite() && m > 0.0) {
            bail!("--threshold-mbps {m}: must be a positive number");
        }
    }
    let tick_d = tick.as_duration();
    let groups = setup
        .detection
        .iter()
        .map(|d| {
            let ticks = |dur: Duration| -> u32 {
                let n = dur.as_nanos() / tick_d.as_nanos().max(1);
                u32::try_from(n).unwrap_or(u32::MAX).max(1)
            };
            let mut b = BaselineParams {
                window_samples: ticks(d.baseline_window),
                percentile: d.baseline_percentile,
                multiplier: d.baseline_multiplier,
                recompute_ticks: ticks(d.baseline_recompute),
                floor_pps: d.floor_pps.get(),
                floor_bps: (d.floor_mbps * 1e6) as u64,
                static_pps: d.static_pps.get(),
                static_bps: (d.static_mbps * 1e6) as u64,
                warmup_ticks: u32::try_from(d.warmup.as_nanos() / tick_d.as_nanos().max(1))
                    .unwrap_or(u32::MAX),
                ..BaselineParams::default()
            };
            if let Some(p) = args.threshold_pps {
                b.static_pps = p.ceil() as u64;
                b.floor_pps = p.ceil() as u64;
            }
            if let Some(m) = args.threshold_mbps {
                b.static_bps = (m * 1e6) as u64;
                b.floor_bps = (m * 1e6) as u64;
            }
            if args.threshold_pps.is_some() && args.threshold_mbps.is_none() {
                // A pps-only quick run: the bit-rate thresholds must not trigger on their own.
                b.static_bps = u64::MAX / 2;
                b.floor_bps = u64::MAX / 2;
            }
            if args.threshold_mbps.is_some() && args.threshold_pps.is_none() {
                b.static_pps = u64::MAX / 2;
                b.floor_pps = u64::MAX / 2;
            }
            let effective = b.policy().effective_percentile();
            if (effective - b.percentile).abs() > 1e-6 {
                eprintln!(
                    "surgewatch: warning: a baseline percentile of {} over {} samples keeps more samples than the baseline sketch holds; using p{effective:.2}",
                    b.percentile, b.window_samples
                );
            }
            GroupDetection {
                baseline: b,
                start_ticks: d.start_ticks.get(),
                end_ticks: d.end_ticks.get(),
            }
        })
        .collect();
    Ok(DetectorConfig {
        groups,
        tick_ns: tick.as_nanos(),
        update_interval_ns: 1_000_000_000u64.max(tick.as_nanos()),
        top_n: 10.min(top_n.max(1)),
    })
}

/// Loads baselines; a missing file is a fresh start, a corrupt or foreign one a warning.
fn load_baselines(detector: &mut Detector, path: &std::path::Path) {
    match std::fs::read(path) {
        Ok(bytes) => match detector.load_baselines(&bytes) {
            Ok(n) => eprintln!("surgewatch: loaded {n} baselines from {}", path.display()),
            Err(e) => eprintln!(
                "surgewatch: warning: {}: {e}; starting with fresh baselines",
                path.display()
            ),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => eprintln!(
            "surgewatch: warning: {}: {e}; starting with fresh baselines",
            path.display()
        ),
    }
}

/// Saves baselines atomically (temporary file, then rename); failure is a warning.
fn save_baselines(
    detector: &mut Detector,
    acct: &surgewatch_per_ip::Accounting,
    path: &std::path::Path,
) {
    let bytes = detector.encode_baselines(acct);
    let tmp = path.with_extension("tmp");
    let res = std::fs::write(&tmp, &bytes).and_then(|_| std::fs::rename(&tmp, path));
    if let Err(e) = res {
        eprintln!(
            "surgewatch: warning: cannot save baselines to {}: {e}",
            path.display()
        );
    }
}

fn parse_duration_arg(flag: &str, s: &str) -> Result<Duration> {
    surgewatch_tuning::units::parse_duration(s).map_err(|e| anyhow::anyhow!("{flag} {s:?}: {e}"))
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

/// The host agent's view of the host's addresses, re-read every few seconds.
struct AgentAddrs {
    cfg: Config,
    interfaces: Vec<String>,
    extra: Vec<String>,
    current: Vec<std::net::IpAddr>,
    last_check: std::time::Instant,
}

/// How often the agent re-reads the host's addresses.
const ADDRESS_REFRESH: Duration = Duration::from_secs(5);

impl AgentAddrs {
    /// A new monitor when the host's addresses changed since the last look.
    fn refresh(&mut self) -> Option<Arc<Monitor>> {
        if self.last_check.elapsed() < ADDRESS_REFRESH {
            return None;
        }
        self.last_check = std::time::Instant::now();
        let now = match surgewatch_sensor::hostaddr::host_addresses(&self.interfaces) {
            Ok(v) => v,
            Err(e) => {
                eprintln!("surgewatch: warning: cannot read the host's addresses: {e}");
                return None;
            }
        };
        if now == self.current || now.is_empty() {
            return None;
        }
        let mut monitor: Vec<String> = now.iter().map(|a| a.to_string()).collect();
        monitor.extend(self.extra.iter().cloned());
        match monitor_setup(&self.cfg, &monitor) {
            Ok(setup) => {
                eprintln!(
                    "surgewatch: host addresses changed: now watching {}",
                    now.iter()
                        .map(|a| a.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                self.current = now;
                Some(setup.monitor)
            }
            Err(e) => {
                eprintln!(
                    "surgewatch: warning: host addresses changed but cannot be monitored: {e}"
                );
                None
            }
        }
    }
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
fn run_workers(
    p: &Prepared,
    setup: Setup,
    detect: &DetectArgs,
    live: &LiveArgs,
    run: LiveRun,
) -> Result<ExitCode> {
    let LiveRun {
        workers,
        inputs,
        capture,
        agent,
    } = run;
    let status_every = parse_duration_arg("--status-interval", &live.status_interval)?;
    let duration = live
        .duration
        .as_deref()
        .map(|d| parse_duration_arg("--duration", d))
        .transpose()?;
    let stop = surgewatch_sensor::signals::install();
    if let Some(d) = duration {
        std::thread::spawn(move || {
            std::thread::sleep(d);
            stop.store(true, std::sync::atomic::Ordering::SeqCst);
        });
    }
    eprintln!("surgewatch: capturing {capture}");
    let n = workers.len();
    let mut obs = LiveObs {
        inner: Observer::new(p, &setup, detect, None)?,
        status_every_ns: u64::try_from(status_every.as_nanos()).unwrap_or(u64::MAX),
        last_status_ns: 0,
        warned_busy_spin: false,
        last_received: 0,
        agent,
    };
    let started = surgewatch_sensor::live::now_ns();
    let lcfg = surgewatch_sensor::live::LiveConfig {
        monitor: setup.monitor.clone(),
        tick: p.tick,
        parse: parse_options(&p.cfg),
    };
    let (acct, queues) = surgewatch_sensor::live::run_live(&lcfg, workers, stop, &mut obs);
    let info = RunInfo {
        inputs,
        groups: setup.groups,
        monitor_mode: setup.mode,
        tick_secs: p.tick.as_duration().as_secs_f64(),
        workers: n,
        time_span_ns: Some((started, surgewatch_sensor::live::now_ns())),
        late_frames: 0,
        errors: Vec::new(),
        incidents: Vec::new(),
        capture: Some(capture),
        queues: queues.iter().map(queue_json).collect(),
    };
    obs.inner.finish(&acct, info, p.top_n);
    Ok(ExitCode::SUCCESS)
}

fn cmd_run(args: RunArgs) -> Result<ExitCode> {
    let p = prepare(&args.detect)?;
    let setup = monitor_setup(&p.cfg, &args.detect.monitor)?;
    let c = &p.cfg.capture;
    let method = match args.capture {
        Some(CaptureArg::AfXdp) => surgewatch_sensor::livesrc::Method::AfXdp,
        Some(CaptureArg::AfPacket) => surgewatch_sensor::livesrc::Method::AfPacket,
        Some(CaptureArg::Auto) => surgewatch_sensor::livesrc::Method::Auto,
        None => match c.method {
            surgewatch_tuning::CaptureMethod::AfXdp => surgewatch_sensor::livesrc::Method::AfXdp,
            surgewatch_tuning::CaptureMethod::AfPacket => {
                surgewatch_sensor::livesrc::Method::AfPacket
            }
            _ => surgewatch_sensor::livesrc::Method::Auto,
        },
    };
    let opts = surgewatch_sensor::livesrc::LiveOptions {
        interface: args.interface.clone(),
        method,
        queues: if args.queues.is_empty() {
            c.queues.clone()
        } else {
            args.queues.clone()
        },
        cores: if args.cores.is_empty() {
            c.cores.clone()
        } else {
            args.cores.clone()
        },
        promiscuous: c.promiscuous && !args.no_promisc,
        xdp_fallback: match c.xdp_fallback {
            surgewatch_tuning::XdpFallback::Drop => {
                surgewatch_sensor::capture::xdp_prog::XdpFallback::Drop
            }
            _ => surgewatch_sensor::capture::xdp_prog::XdpFallback::Pass,
        },
        packet_ring: None,
        busy_poll: match &args.busy_poll {
            Some(s) => {
                let d = parse_duration_arg("--busy-poll", s)?;
                use surgewatch_tuning::{units::format_duration, MAX_BUSY_POLL, MIN_BUSY_POLL};
                if !(MIN_BUSY_POLL..=MAX_BUSY_POLL).contains(&d) {
                    anyhow::bail!(
                        "--busy-poll {s:?}: must be from {} to {}",
                        format_duration(MIN_BUSY_POLL),
                        format_duration(MAX_BUSY_POLL)
                    );
                }
                Some(d)
            }
            None => c.busy_poll,
        },
        xdp_frames: Some(c.xdp_frames),
    };
    let opened = surgewatch_sensor::livesrc::open(&opts, &mut |w| {
        eprintln!("surgewatch: {}: {w}", args.interface)
    })?;
    let _promisc = opened.promisc;
    run_workers(
        &p,
        setup,
        &args.detect,
        &args.live,
        LiveRun {
            workers: opened.workers,
            inputs: vec![args.interface.clone()],
            capture: opened.description,
            agent: None,
        },
    )
}

fn cmd_agent(args: AgentArgs) -> Result<ExitCode> {
    let p = prepare(&args.detect)?;
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
    let mut extra: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
    extra.extend(args.detect.monitor.iter().cloned());
    if extra.is_empty() {
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
    let setup = monitor_setup(&p.cfg, &extra)?;
    let mut workers = Vec::new();
    let mut descriptions = Vec::new();
    for ifname in &interfaces {
        let opts = surgewatch_sensor::livesrc::LiveOptions {
            interface: ifname.clone(),
            method: surgewatch_sensor::livesrc::Method::AfPacket,
            queues: vec![0],
            cores: Vec::new(),
            promiscuous: false,
            xdp_fallback: surgewatch_sensor::capture::xdp_prog::XdpFallback::Pass,
            // 4 MiB: about a second of 10 kpps of full-size frames, which keeps the agent's
            // footprint small (the ring is resident memory).
            packet_ring: Some((1 << 20, 4)),
            busy_poll: None,
            xdp_frames: None,
        };
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
    let agent = AgentAddrs {
        cfg: p.cfg.clone(),
        interfaces: interfaces.clone(),
        extra: args.detect.monitor.clone(),
        current: addrs,
        last_check: std::time::Instant::now(),
    };
    run_workers(
        &p,
        setup,
        &args.detect,
        &args.live,
        LiveRun {
            workers,
            inputs: interfaces,
            capture: descriptions.join("; "),
            agent: Some(agent),
        },
    )
}

/// Frame parsing options from `[capture.decap]`: the mirror's own wrapper only (one level).
fn parse_options(cfg: &Config) -> surgewatch_pipeline::ParseOptions {
    let d = &cfg.capture.decap;
    let mut decap = surgewatch_pipeline::Decap::MIRROR;
    decap.gre = d.gre;
    decap.erspan = d.erspan;
    decap.vxlan = d.vxlan;
    decap.vxlan_ports = [0; 4];
    for (slot, port) in decap.vxlan_ports.iter_mut().zip(&d.vxlan_ports) {
        *slot = *port;
    }
    decap.max_depth = 1;
    surgewatch_pipeline::ParseOptions::new(decap)
}
