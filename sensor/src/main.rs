//! The `surgewatch` command line.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use ipnet::IpNet;
use surgewatch_export::summary::{RunInfo, SummaryJson};
use surgewatch_per_ip::{GroupId, Monitor, PrefixTable, TickLength};
use surgewatch_sensor::replay::{self, ReplayConfig, ReplayObserver};
use surgewatch_tuning::Config;

/// DDoS sensor: which monitored IP is under attack, by what, within a second.
#[derive(Parser, Debug)]
#[command(name = "surgewatch", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Replay pcap/pcapng captures through the pipeline and report per-IP traffic.
    Replay(ReplayArgs),
    /// Validate a configuration file, reporting every error with its location.
    CheckConfig {
        /// The TOML file to check.
        file: PathBuf,
    },
}

#[derive(clap::Args, Debug)]
struct ReplayArgs {
    /// Capture files (pcap or pcapng), replayed in the order given.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Configuration file (TOML).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Monitor this prefix (repeatable; a bare address means /32 or /128). Adds to the config's groups.
    #[arg(long = "monitor", value_name = "CIDR")]
    monitor: Vec<String>,
    /// Worker threads (default: the config's `sensor.workers`, else 1).
    #[arg(long, value_name = "N")]
    workers: Option<usize>,
    /// Output format on stdout.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Tick length, e.g. "1s" or "100ms" (default: the config's `sensor.tick`).
    #[arg(long, value_name = "DURATION")]
    tick: Option<String>,
    /// Number of monitored IPs listed in the summary (default: the config's `sensor.top_n`).
    #[arg(long, value_name = "N")]
    top: Option<usize>,
    /// Never draw a progress bar.
    #[arg(long)]
    no_progress: bool,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum Format {
    Text,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Replay(args) => cmd_replay(args),
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
            println!("{}: ok ({} group(s), {} prefix(es))", file.display(), groups.len(), prefixes);
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
            bail!("--monitor {s}: host bits set (did you mean {}?)", net.trunc());
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
    mode: &'static str,
}

/// Builds what is monitored from the config and `--monitor`.
fn monitor_setup(cfg: &Config, extra: &[String]) -> Result<Setup> {
    let mut groups: Vec<String> = Vec::new();
    let mut prefixes: Vec<(IpNet, GroupId)> = Vec::new();
    for g in cfg.resolved_groups() {
        let id = GroupId(u16::try_from(groups.len()).context("too many groups (at most 65535)")?);
        prefixes.extend(g.prefixes.iter().map(|p| (*p, id)));
        groups.push(g.name.clone());
    }
    if !extra.is_empty() {
        let id = GroupId(u16::try_from(groups.len()).context("too many groups")?);
        groups.push("cli".to_string());
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
        let id = GroupId(u16::try_from(groups.len() - 1).unwrap_or(0));
        return Ok(Setup { monitor: Arc::new(Monitor::auto(limit, id)), groups, mode: "auto" });
    }
    let table = PrefixTable::new(prefixes).context("building the monitored prefix table")?;
    Ok(Setup { monitor: Arc::new(Monitor::prefixes(table)), groups, mode: "prefixes" })
}

struct Observer {
    bar: Option<ProgressBar>,
}

impl ReplayObserver for Observer {
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

fn cmd_replay(args: ReplayArgs) -> Result<ExitCode> {
    let cfg = match &args.config {
        Some(path) => surgewatch_tuning::load(path).map_err(|e| {
            let text = e.to_string();
            let lines: Vec<&str> = text.lines().collect();
            anyhow::anyhow!("invalid configuration ({} error(s)): {}", lines.len(), lines.join("; "))
        })?,
        None => Config::default(),
    };
    let tick = match &args.tick {
        Some(t) => {
            let d = surgewatch_tuning::units::parse_duration(t).map_err(|e| anyhow::anyhow!("--tick {t:?}: {e}"))?;
            if d < surgewatch_tuning::MIN_TICK || d > surgewatch_tuning::MAX_TICK {
                bail!("--tick {t:?}: must lie between 100ms and 1m");
            }
            d
        }
        None => cfg.sensor.tick,
    };
    let tick = TickLength::from_duration(tick).context("tick length must be positive")?;
    let workers = match args.workers {
        Some(0) => bail!("--workers must be at least 1"),
        Some(n) => n,
        None if cfg.sensor.workers > 0 => cfg.sensor.workers as usize,
        None => 1,
    };
    let top_n = args.top.unwrap_or(cfg.sensor.top_n as usize);
    for f in &args.files {
        if f.is_dir() {
            bail!("{}: is a directory, not a capture file", f.display());
        }
    }
    let sources = replay::open_all(&args.files)?;
    let setup = monitor_setup(&cfg, &args.monitor)?;
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
    let mut observer = Observer { bar };
    let rcfg = ReplayConfig { files: args.files.clone(), monitor: setup.monitor.clone(), tick, workers };
    let outcome = replay::replay(&rcfg, sources, &mut observer);
    if let Some(b) = &observer.bar {
        b.finish_and_clear();
    }

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
    };
    let report = outcome.accounting.report(top_n);
    let summary = SummaryJson::new(&report, &info);
    let mut out = std::io::stdout().lock();
    let written = match args.format {
        Format::Json => writeln!(out, "{}", summary.to_json_line()),
        Format::Text => write!(out, "{}", summary.to_text()),
    };
    // A closed stdout (e.g. `| head`) is not an error worth a message.
    let _ = written.and_then(|_| out.flush());
    for e in &errors {
        eprintln!("surgewatch: error: {e}");
    }
    Ok(if errors.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
