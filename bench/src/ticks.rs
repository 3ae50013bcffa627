//! The per-tick driver behind `surgewatch-tick-bench` and `surgewatch-mem-bench`: synthetic
//! traffic to many monitored addresses, run tick by tick through
//! [`Shard`] → [`Accounting::end_tick`] → [`Detector::on_tick`], each step timed.
//!
//! Every tick, each of `ips` addresses `10.0.0.0 + i` (monitor `10.0.0.0/8`) receives
//! `packets` inbound packets from an unmonitored source in 198.18.0.0/15. The class of an
//! address's packets rotates over `classes` classes (UDP, ACK, SYN, ICMP, …) from tick to tick,
//! so after `classes` ticks every address has that many classes in its baseline. Packets are
//! dealt round-robin over the shards, so with `packets ≥ shards` every address is in every
//! shard's delta (the worst case for the merge). Summaries are built 256 at a time into one
//! reused buffer, so the driver itself holds no per-address memory.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use surgewatch_detect::baseline::BaselineParams;
use surgewatch_detect::{Detector, DetectorConfig, GroupDetection, IncidentEvent};
use surgewatch_per_ip::{Accounting, Monitor, Shard, TickDelta, TickLength};
use surgewatch_pipeline::{proto, tcp_flags, PacketSummary, ParseStatus};

use crate::monitor_one_prefix;

/// First monitored address of the driver (`10.0.0.0`).
pub const FIRST_ADDR: u32 = 0x0a00_0000;
const TICK_NS: u64 = 1_000_000_000;
/// Summaries per [`Shard::account_batch`] call.
const BATCH: usize = 256;

/// What to drive.
#[derive(Copy, Clone, Debug)]
pub struct TickOptions {
    /// Monitored addresses with traffic every tick.
    pub ips: u32,
    /// Ticks to run.
    pub ticks: u32,
    /// Shards the packets are dealt over.
    pub shards: usize,
    /// Inbound packets per address per tick.
    pub packets: u32,
    /// Classes each address's traffic rotates over (1..=4).
    pub classes: u32,
    /// Detection on (baselines, thresholds, incidents).
    pub detect: bool,
    /// Baseline window in samples (default 300).
    pub window: u32,
    /// Floors (pps, bps); `None`: the defaults (1,000 pps, 10 Mbit/s). Floors of 0 make every
    /// sample loud and near a threshold: the detector's worst case.
    pub floors: Option<(u64, u64)>,
}

impl Default for TickOptions {
    fn default() -> Self {
        TickOptions {
            ips: 1_000_000,
            ticks: 8,
            shards: 1,
            packets: 1,
            classes: 3,
            detect: true,
            window: 300,
            floors: None,
        }
    }
}

/// Wall time of each step of one tick.
#[derive(Copy, Clone, Debug, Default)]
pub struct TickTimes {
    /// Building summaries and `account_batch` over every shard.
    pub account: Duration,
    /// `take_tick` of every shard.
    pub take: Duration,
    /// `Accounting::end_tick` (merge, admission, records).
    pub merge: Duration,
    /// `Detector::on_tick`, `watch_list` and `set_watch`.
    pub detect: Duration,
    /// `recycle` + `install_*` of every shard.
    pub recycle: Duration,
    /// CPU time of the thread during `merge` (from `/proc/thread-self/schedstat`: excludes
    /// time spent waiting for a core, so less disturbed by other load; zero where
    /// unavailable).
    pub merge_cpu: Duration,
    /// CPU time of the thread during `detect`.
    pub detect_cpu: Duration,
}

/// CPU time of the calling thread so far, `None` where `/proc/thread-self/schedstat` is
/// unavailable.
pub fn thread_cpu() -> Option<Duration> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = s.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// The result of [`run_ticks`].
#[derive(Clone, Debug, Default)]
pub struct TickRun {
    /// Per tick, in order.
    pub ticks: Vec<TickTimes>,
    /// Addresses tracked at the end.
    pub tracked: usize,
    /// Addresses with a baseline at the end.
    pub baselines: usize,
    /// Incident events emitted.
    pub events: usize,
    /// Packets accounted.
    pub packets: u64,
}

fn summary(dst: u32, src: u32, class: u32, len: u32) -> PacketSummary {
    let mut s = PacketSummary::empty(len);
    s.status = ParseStatus::Ok;
    s.ip_version = 4;
    s.dst = IpAddr::V4(Ipv4Addr::from(dst));
    s.src = IpAddr::V4(Ipv4Addr::from(src));
    s.has_l4 = true;
    s.ttl = 57;
    s.src_port = 40_000 + (src & 0xfff) as u16;
    s.dst_port = 443;
    match class {
        0 => s.protocol = proto::UDP,
        1 => {
            s.protocol = proto::TCP;
            s.tcp_flags = tcp_flags::ACK;
        }
        2 => {
            s.protocol = proto::TCP;
            s.tcp_flags = tcp_flags::SYN;
        }
        _ => s.protocol = proto::ICMP,
    }
    s
}

/// Runs `o.ticks` ticks; `on_tick` is called after each with the tick's times.
pub fn run_ticks(o: &TickOptions, mut on_tick: impl FnMut(u32, &TickTimes)) -> TickRun {
    let monitor: Arc<Monitor> = monitor_one_prefix();
    let tick = TickLength::from_nanos(TICK_NS).expect("non-zero tick");
    let shards_n = o.shards.max(1);
    let mut shards: Vec<Shard> = (0..shards_n).map(|_| Shard::new(monitor.clone())).collect();
    let mut acct = Accounting::new(monitor, tick);
    let group = GroupDetection {
        baseline: {
            let mut b = BaselineParams {
                window_samples: o.window.max(1),
                ..BaselineParams::default()
            };
            if let Some((pps, bps)) = o.floors {
                (b.floor_pps, b.floor_bps) = (pps, bps);
            }
            b
        },
        ..GroupDetection::default()
    };
    let mut det = Detector::new(DetectorConfig::single(group, TICK_NS));
    let mut events: Vec<IncidentEvent> = Vec::new();
    let mut buf: Vec<PacketSummary> = Vec::with_capacity(BATCH);
    let mut run = TickRun::default();
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let classes = o.classes.clamp(1, 4);
    for t in 0..o.ticks {
        let mut times = TickTimes::default();
        let start = Instant::now();
        // Packet p of address i goes to shard (i * packets + p) % shards.
        let mut next = 0usize;
        let flush = |buf: &mut Vec<PacketSummary>, shard: usize, shards: &mut [Shard]| {
            shards[shard].account_batch(buf);
            buf.clear();
        };
        for s in 0..shards_n {
            for i in 0..o.ips {
                for p in 0..o.packets {
                    if (next + p as usize) % shards_n != s {
                        continue;
                    }
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    let src = 0xc612_0000 | (rng as u32 & 0x1_ffff);
                    let class = (i + t) % classes;
                    let len = 64 + (rng >> 40) as u32 % 1200;
                    buf.push(summary(FIRST_ADDR + i, src, class, len));
                    if buf.len() == BATCH {
                        flush(&mut buf, s, &mut shards);
                    }
                }
                next += o.packets as usize;
            }
            if !buf.is_empty() {
                flush(&mut buf, s, &mut shards);
            }
            next = 0;
        }
        run.packets += u64::from(o.ips) * u64::from(o.packets);
        times.account = start.elapsed();

        let t0 = Instant::now();
        let mut deltas: Vec<TickDelta> = shards.iter_mut().map(Shard::take_tick).collect();
        times.take = t0.elapsed();
        let c1 = thread_cpu();
        let t1 = Instant::now();
        let tick_start = u64::from(t) * TICK_NS;
        let closed = acct.end_tick(tick_start, &mut deltas);
        let t2 = Instant::now();
        let c2 = thread_cpu();
        times.merge = t2 - t1;
        let watch = if o.detect {
            det.on_tick(&closed, 0, &mut events);
            Some(det.watch_list())
        } else {
            std::hint::black_box(closed.stats);
            None
        };
        if let Some(w) = watch {
            acct.set_watch(w);
        }
        times.detect = t2.elapsed();
        let c3 = thread_cpu();
        if let (Some(c1), Some(c2), Some(c3)) = (c1, c2, c3) {
            times.merge_cpu = c2.saturating_sub(c1);
            times.detect_cpu = c3.saturating_sub(c2);
        }
        let t3 = Instant::now();
        // Merge and detection are timed apart, so the tick is closed with `end_tick` and
        // `set_watch` here rather than `close_tick`; the shards are re-armed the same way.
        let rearm = acct.rearm();
        for (s, d) in shards.iter_mut().zip(deltas) {
            s.rearm(d, &rearm);
        }
        times.recycle = t3.elapsed();
        on_tick(t, &times);
        run.ticks.push(times);
        run.events += events.len();
        events.clear();
    }
    run.tracked = acct.tracked();
    run.baselines = det.baselines().len();
    run
}

/// Median of `f` over ticks `skip..` (the steady state).
pub fn median(ticks: &[TickTimes], skip: usize, f: impl Fn(&TickTimes) -> Duration) -> Duration {
    let mut v: Vec<Duration> = ticks.iter().skip(skip).map(f).collect();
    if v.is_empty() {
        return Duration::ZERO;
    }
    v.sort_unstable();
    v[v.len() / 2]
}

/// Parses a numeric option value (`_` allowed as a digit separator).
pub fn num_arg<T: std::str::FromStr>(flag: &str, v: Option<String>) -> Result<T, String> {
    let v = v.ok_or_else(|| format!("{flag} needs a value"))?;
    v.replace('_', "")
        .parse()
        .map_err(|_| format!("{flag}: bad value {v:?}"))
}

/// Parses the options of the tick-driving benches into `o` (its values are the defaults);
/// `--no-detect` is accepted only with `allow_no_detect`. `Err("")` asks for the usage.
pub fn parse_tick_args(
    mut o: TickOptions,
    args: impl IntoIterator<Item = String>,
    allow_no_detect: bool,
) -> Result<TickOptions, String> {
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--ips" => o.ips = num_arg("--ips", it.next())?,
            "--ticks" => o.ticks = num_arg("--ticks", it.next())?,
            "--shards" => o.shards = num_arg("--shards", it.next())?,
            "--packets" => o.packets = num_arg("--packets", it.next())?,
            "--classes" => o.classes = num_arg("--classes", it.next())?,
            "--window" => o.window = num_arg("--window", it.next())?,
            "--floor-pps" => {
                let bps = o
                    .floors
                    .map_or(BaselineParams::default().floor_bps, |f| f.1);
                o.floors = Some((num_arg("--floor-pps", it.next())?, bps));
            }
            "--floor-bps" => {
                let pps = o
                    .floors
                    .map_or(BaselineParams::default().floor_pps, |f| f.0);
                o.floors = Some((pps, num_arg("--floor-bps", it.next())?));
            }
            "--no-detect" if allow_no_detect => o.detect = false,
            "-h" | "--help" => return Err(String::new()),
            f => return Err(format!("unknown option {f}")),
        }
    }
    if o.ips == 0 || o.ticks == 0 || o.shards == 0 || o.packets == 0 {
        return Err("--ips, --ticks, --shards and --packets must be at least 1".into());
    }
    if o.ips > 1 << 24 {
        return Err("--ips: at most 16,777,216 (10.0.0.0/8)".into());
    }
    Ok(o)
}
