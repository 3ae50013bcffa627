//! `surgewatch-replay-bench`: replays a capture through the same library path as
//! `surgewatch replay` (`surgewatch_sensor::replay::{open_all, replay}`) and prints packets,
//! wall time, Mpps, ns/packet, wall time per tick and peak RSS.
//!
//! ```text
//! surgewatch-replay-bench [--generate N [--ips M] [--pps R] [--seed S] [--out PATH]]
//!                         [--workers N] [--monitor CIDR]... [--auto [LIMIT]]
//!                         [--tick SECS] [--runs K] [--detect [PPS]] [FILE...]
//! ```
//!
//! `--detect` runs the detector at every tick as `surgewatch replay` does (baselines,
//! thresholds, incidents, and its watch list installed into the shards for source analysis);
//! with `PPS`, the static and floor packet thresholds are set to it (as `--threshold-pps`
//! does), so that busy addresses are watched and the watch path of the shards is exercised.
//!
//! With `--generate N` a benchmark capture of N packets over M monitored IPs (default 100,000)
//! is written first (to `--out PATH`, kept, or to a temporary file that is deleted at the end)
//! and replayed. The monitor defaults to `10.0.0.0/8`, the prefix of generated captures.
//! Times exclude opening the files and building the report; "ns/packet" is wall time per
//! packet, whatever the number of workers.

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use surgewatch_bench::{monitor_auto, peak_rss_kib, rss_kib, write_big, BigOptions, BIG_MONITOR};
use surgewatch_detect::{Detector, DetectorConfig, GroupDetection, IncidentEvent};
use surgewatch_per_ip::{ClosedTick, GroupId, Monitor, NextTick, PrefixTable, TickLength};
use surgewatch_sensor::replay::{open_all, replay, ReplayConfig};
use surgewatch_sensor::tick::{TickInfo, TickObserver};

const USAGE: &str =
    "usage: surgewatch-replay-bench [--generate N [--ips M] [--pps R] [--seed S] [--out PATH]]
                              [--workers N] [--monitor CIDR]... [--auto [LIMIT]]
                              [--tick SECS] [--runs K] [--detect [PPS]] [FILE...]";

struct Args {
    generate: Option<BigOptions>,
    out: Option<PathBuf>,
    workers: usize,
    monitors: Vec<IpNet>,
    auto: Option<usize>,
    tick_secs: f64,
    runs: usize,
    files: Vec<PathBuf>,
    detect: Option<Option<u64>>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        generate: None,
        out: None,
        workers: 1,
        monitors: Vec::new(),
        auto: None,
        tick_secs: 1.0,
        runs: 1,
        files: Vec::new(),
        detect: None,
    };
    let mut big = BigOptions::default();
    let mut it = std::env::args().skip(1).peekable();
    use surgewatch_bench::ticks::num_arg as num;
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--generate" => {
                big.packets = num("--generate", it.next())?;
                a.generate = Some(big);
            }
            "--ips" => big.ips = num("--ips", it.next())?,
            "--pps" => big.pps = num("--pps", it.next())?,
            "--seed" => big.seed = num("--seed", it.next())?,
            "--out" => a.out = Some(PathBuf::from(it.next().ok_or("--out needs a path")?)),
            "--workers" => a.workers = num("--workers", it.next())?,
            "--monitor" => {
                let v = it.next().ok_or("--monitor needs a CIDR")?;
                let net = v
                    .parse::<IpNet>()
                    .or_else(|_| v.parse::<std::net::IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("--monitor: bad CIDR {v:?}"))?;
                a.monitors.push(net);
            }
            "--auto" => {
                let limit = match it.peek() {
                    Some(v) if !v.starts_with('-') && v.parse::<usize>().is_ok() => {
                        num("--auto", it.next())?
                    }
                    _ => 100_000,
                };
                a.auto = Some(limit);
            }
            "--tick" => a.tick_secs = num("--tick", it.next())?,
            "--runs" => a.runs = num("--runs", it.next())?,
            "--detect" => {
                let pps = match it.peek() {
                    Some(v) if v.parse::<u64>().is_ok() => Some(num("--detect", it.next())?),
                    _ => None,
                };
                a.detect = Some(pps);
            }
            "-h" | "--help" => return Err(String::new()),
            f if f.starts_with('-') => return Err(format!("unknown option {f}")),
            f => a.files.push(PathBuf::from(f)),
        }
    }
    if let Some(g) = &mut a.generate {
        // --ips/--pps/--seed may come after --generate.
        *g = BigOptions {
            packets: g.packets,
            ..big
        };
    }
    if a.workers == 0 || a.runs == 0 {
        return Err("--workers and --runs must be at least 1".into());
    }
    if a.generate.is_none() && a.files.is_empty() {
        return Err("nothing to replay: give FILE or --generate N".into());
    }
    if a.auto.is_some() && !a.monitors.is_empty() {
        return Err("--auto and --monitor are exclusive".into());
    }
    Ok(a)
}

/// Records the wall-clock time between closed ticks.
struct TickTimer {
    last: Instant,
    gaps: Vec<Duration>,
    detector: Option<Detector>,
    events: Vec<IncidentEvent>,
    n_events: usize,
    max_watched: usize,
}

impl TickObserver for TickTimer {
    fn on_tick(&mut self, tick: &ClosedTick<'_>, info: &TickInfo<'_>) -> NextTick {
        let next = self.detector.as_mut().map(|d| {
            d.on_tick(tick, info.idle_after, &mut self.events);
            self.n_events += self.events.len();
            self.events.clear();
            d.next_tick()
        });
        if let Some(w) = next.as_ref().and_then(|n| n.watch.as_ref()) {
            self.max_watched = self.max_watched.max(w.len());
        }
        let now = Instant::now();
        self.gaps.push(now - self.last);
        self.last = now;
        next.unwrap_or_default()
    }
}

/// The detector `--detect` runs, with the static and floor pps set to `pps` if given.
fn detector(tick: TickLength, pps: Option<u64>) -> Detector {
    let mut g = GroupDetection::default();
    if let Some(p) = pps {
        g.baseline.static_pps = p;
        g.baseline.floor_pps = p;
    }
    Detector::new(DetectorConfig::single(g, tick.as_nanos()))
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Deletes the generated temporary capture when dropped.
struct TempCapture(Option<PathBuf>);

impl Drop for TempCapture {
    fn drop(&mut self) {
        if let Some(p) = &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn run(a: Args) -> Result<(), String> {
    let mut files = a.files.clone();
    let mut _temp = TempCapture(None);
    if let Some(opts) = a.generate {
        let path = match &a.out {
            Some(p) => p.clone(),
            None => {
                let p = std::env::temp_dir().join(format!(
                    "surgewatch-replay-bench-{}.pcap",
                    std::process::id()
                ));
                _temp.0 = Some(p.clone());
                p
            }
        };
        let t = Instant::now();
        let file = std::fs::File::create(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut w = BufWriter::with_capacity(1 << 20, file);
        let sum = write_big(&mut w, &opts).map_err(|e| format!("generating: {e}"))?;
        w.flush().map_err(|e| format!("{}: {e}", path.display()))?;
        println!(
            "generated: {} ({} packets over {} IPs, {:.1} MB) in {:.1} s",
            path.display(),
            sum.packets,
            opts.ips,
            (24 + 16 * sum.packets + sum.bytes) as f64 / 1e6,
            t.elapsed().as_secs_f64()
        );
        files.insert(0, path);
    }

    let (monitor, desc) = match (a.auto, a.monitors.is_empty()) {
        (Some(limit), _) => (monitor_auto(limit), format!("auto, limit {limit}")),
        (None, true) => {
            let net: IpNet = BIG_MONITOR.parse().map_err(|e| format!("{e}"))?;
            (prefixes(vec![net])?, format!("prefixes [{net}]"))
        }
        (None, false) => {
            let desc = if a.monitors.len() > 4 {
                format!("{} prefixes", a.monitors.len())
            } else {
                format!("prefixes {:?}", a.monitors)
            };
            (prefixes(a.monitors.clone())?, desc)
        }
    };
    let tick = TickLength::from_nanos((a.tick_secs * 1e9) as u64).ok_or("--tick must be > 0")?;
    println!(
        "monitor: {desc}; workers: {}; tick: {} s; inputs: {}",
        a.workers,
        a.tick_secs,
        files
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let cfg = ReplayConfig {
        files: files.clone(),
        monitor,
        tick,
        workers: a.workers,
        parse: Default::default(),
        stop: None,
    };
    println!("rss before replay: {:.1} MiB", rss_kib().map_or(0.0, mib));

    let mut best: Option<f64> = None;
    for run in 1..=a.runs {
        let sources = open_all(&files).map_err(|e| e.to_string())?;
        let mut timer = TickTimer {
            last: Instant::now(),
            gaps: Vec::new(),
            detector: a.detect.map(|pps| detector(tick, pps)),
            events: Vec::new(),
            n_events: 0,
            max_watched: 0,
        };
        let t = Instant::now();
        timer.last = t;
        let outcome = replay(&cfg, sources, &mut timer);
        let wall = t.elapsed().as_secs_f64();
        let stats = outcome.accounting.stats();
        let packets = stats.total.packets;
        let mpps = packets as f64 / wall / 1e6;
        let mut gaps = timer.gaps;
        gaps.sort_unstable();
        let pct = |q: f64| {
            gaps.get(((gaps.len() as f64 - 1.0) * q).round() as usize)
                .map_or(0.0, |d| d.as_secs_f64() * 1e3)
        };
        println!(
            "run {run}: {packets} packets ({} tracked IPs, {} ticks) in {wall:.3} s: \
             {mpps:.2} Mpps, {:.1} ns/packet; wall per tick p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            outcome.accounting.tracked(),
            outcome.accounting.ticks_closed(),
            wall * 1e9 / packets.max(1) as f64,
            pct(0.5),
            pct(0.99),
            pct(1.0),
        );
        if timer.detector.is_some() {
            println!(
                "  detection: {} events, up to {} watched targets per tick",
                timer.n_events, timer.max_watched
            );
        }
        for e in &outcome.errors {
            println!("  error: {e}");
        }
        best = Some(best.map_or(mpps, |b: f64| b.max(mpps)));
    }
    if a.runs > 1 {
        println!("best: {:.2} Mpps", best.unwrap_or(0.0));
    }
    match peak_rss_kib() {
        Some(k) => println!("peak RSS (VmHWM): {:.1} MiB", mib(k)),
        None => println!("peak RSS: unavailable (no /proc/self/status)"),
    }
    Ok(())
}

fn prefixes(nets: Vec<IpNet>) -> Result<Arc<Monitor>, String> {
    let table = PrefixTable::new(nets.into_iter().map(|n| (n, GroupId(0))))
        .map_err(|e| format!("monitor: {e}"))?;
    Ok(Arc::new(Monitor::prefixes(table)))
}

fn main() -> ExitCode {
    match parse_args().and_then(run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("surgewatch-replay-bench: {e}");
            }
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}
