//! `surgewatch-mem-bench`: peak memory of all per-IP state (shard index and counters, merger
//! records and id map, baselines) for traffic to N monitored addresses, run for enough ticks
//! that every address has its classes' baselines (see `bench/README.md`).
//!
//! ```text
//! surgewatch-mem-bench --ips N [--ticks T] [--shards S] [--packets P] [--classes C] [--window W] [--floor-pps N] [--floor-bps N]
//! ```
//!
//! Prints the resident set before the run, the peak (`VmHWM`) after it, and the growth per
//! address. Traffic is generated 256 summaries at a time, so the driver adds nothing per
//! address.

use std::process::ExitCode;

use surgewatch_bench::ticks::{parse_tick_args, run_ticks, TickOptions};
use surgewatch_bench::{peak_rss_kib, rss_kib};

const USAGE: &str = "usage: surgewatch-mem-bench --ips N [--ticks T] [--shards S] [--packets P] \
                     [--classes C] [--window W] [--floor-pps N] [--floor-bps N]";

fn parse_args() -> Result<TickOptions, String> {
    let defaults = TickOptions {
        ips: 100_000,
        ticks: 30,
        ..TickOptions::default()
    };
    parse_tick_args(defaults, std::env::args().skip(1), false)
}

fn main() -> ExitCode {
    let o = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("surgewatch-mem-bench: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let before = rss_kib().unwrap_or(0);
    // Resident set after each tick, with everything still alive.
    let mut per_tick: Vec<u64> = Vec::with_capacity(o.ticks as usize);
    let run = run_ticks(&o, |_, _| per_tick.push(rss_kib().unwrap_or(0)));
    let last = per_tick.last().copied().unwrap_or(0);
    let peak = peak_rss_kib().unwrap_or(0);

    let per_ip = |kib: u64| kib as f64 * 1024.0 / f64::from(o.ips);
    println!(
        "{} IPs, {} ticks, {} class(es), {} packet(s)/IP/tick, {} shard(s), window {}: \
         tracked {}, baselines {}",
        o.ips, o.ticks, o.classes, o.packets, o.shards, o.window, run.tracked, run.baselines
    );
    println!(
        "RSS after each tick (MiB): {}",
        per_tick
            .iter()
            .map(|k| format!("{:.0}", *k as f64 / 1024.0))
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "RSS before {:.1} MiB; peak (VmHWM) {:.1} MiB; after the last tick {:.1} MiB; \
         peak - before = {:.0} B/IP; after the last tick - before = {:.0} B/IP",
        before as f64 / 1024.0,
        peak as f64 / 1024.0,
        last as f64 / 1024.0,
        per_ip(peak.saturating_sub(before)),
        per_ip(last.saturating_sub(before)),
    );
    ExitCode::SUCCESS
}
