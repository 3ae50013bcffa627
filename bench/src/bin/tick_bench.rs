//! `surgewatch-tick-bench`: the per-tick work for many monitored addresses — merging shard
//! deltas ([`Accounting::end_tick`](surgewatch_per_ip::Accounting::end_tick)) and baselines +
//! detection ([`Detector::on_tick`](surgewatch_detect::Detector::on_tick)) — timed
//! separately, tick by tick (see `bench/README.md`).
//!
//! ```text
//! surgewatch-tick-bench [--ips N] [--ticks T] [--shards S] [--packets P] [--classes C]
//!                       [--window W] [--no-detect]
//! ```

use std::process::ExitCode;
use std::time::Duration;

use surgewatch_bench::peak_rss_kib;
use surgewatch_bench::ticks::{median, parse_tick_args, run_ticks, TickOptions};

const USAGE: &str =
    "usage: surgewatch-tick-bench [--ips N] [--ticks T] [--shards S] [--packets P] \
                     [--classes C] [--window W] [--floor-pps N] [--floor-bps N] [--no-detect]";

/// Parses the options shared with `surgewatch-mem-bench`.
fn parse_args(o: TickOptions) -> Result<TickOptions, String> {
    parse_tick_args(o, std::env::args().skip(1), true)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() -> ExitCode {
    let o = match parse_args(TickOptions::default()) {
        Ok(o) => o,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("surgewatch-tick-bench: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    println!(
        "{} IPs, {} packet(s) per IP per tick over {} class(es), {} shard(s), detection {}, \
         window {}",
        o.ips,
        o.packets,
        o.classes,
        o.shards,
        if o.detect { "on" } else { "off" },
        o.window
    );
    println!("tick  account ms  take ms  merge ms  detect ms  recycle ms  merge cpu  detect cpu");
    let run = run_ticks(&o, |t, x| {
        println!(
            "{t:>4}  {:>10.1}  {:>7.1}  {:>8.1}  {:>9.1}  {:>10.1}  {:>9.1}  {:>10.1}",
            ms(x.account),
            ms(x.take),
            ms(x.merge),
            ms(x.detect),
            ms(x.recycle),
            ms(x.merge_cpu),
            ms(x.detect_cpu),
        );
    });
    // Tick 0 admits every address and tick 1 is the first with learned ids: steady state after.
    let skip = 2.min(run.ticks.len().saturating_sub(1));
    let (m, d, r) = (
        median(&run.ticks, skip, |x| x.merge),
        median(&run.ticks, skip, |x| x.detect),
        median(&run.ticks, skip, |x| x.recycle),
    );
    println!(
        "median of ticks {skip}..: merge {:.1} ms, detect {:.1} ms, merge + detect {:.1} ms \
         ({:.0} ns per IP); recycle {:.1} ms; account {:.1} ns/packet",
        ms(m),
        ms(d),
        ms(m + d),
        (m + d).as_secs_f64() * 1e9 / f64::from(o.ips),
        ms(r),
        median(&run.ticks, skip, |x| x.account).as_secs_f64() * 1e9
            / (f64::from(o.ips) * f64::from(o.packets))
    );
    let (mc, dc) = (
        median(&run.ticks, skip, |x| x.merge_cpu),
        median(&run.ticks, skip, |x| x.detect_cpu),
    );
    println!(
        "median CPU time of ticks {skip}..: merge {:.1} ms, detect {:.1} ms, merge + detect \
         {:.1} ms ({:.0} ns per IP)",
        ms(mc),
        ms(dc),
        ms(mc + dc),
        (mc + dc).as_secs_f64() * 1e9 / f64::from(o.ips),
    );
    let min = |f: fn(&surgewatch_bench::ticks::TickTimes) -> Duration| {
        run.ticks.iter().skip(skip).map(f).min().unwrap_or_default()
    };
    println!(
        "min of ticks {skip}.. (least disturbed by other load): merge {:.1} ms, detect {:.1} ms, \
         merge + detect {:.1} ms",
        ms(min(|x| x.merge)),
        ms(min(|x| x.detect)),
        ms(min(|x| x.merge + x.detect)),
    );
    println!(
        "tracked {} IPs, {} baselines, {} events; peak RSS (VmHWM) {:.1} MiB",
        run.tracked,
        run.baselines,
        run.events,
        peak_rss_kib().unwrap_or(0) as f64 / 1024.0
    );
    ExitCode::SUCCESS
}
