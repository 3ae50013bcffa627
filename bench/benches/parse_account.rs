//! Per-packet kernels and the tick merge, on ~1 M generated frames held in memory.
//!
//! `cargo bench -p surgewatch-bench --bench parse_account` (see `bench/README.md`).
//!
//! The frames come from the benchmark-capture generator (`surgewatch_pcaps::big`): a mix of
//! every accounting class over 100,000 monitored addresses `10.0.0.1 ..`, about half of the
//! packets on the hottest 1 %, the other side random in 198.18.0.0/15. One benchmark iteration
//! processes every frame once (one tick's worth at 1 Mpps); throughput is in frames, so
//! criterion's `elem/s` reads directly as packets per second on one core.
//!
//! - `per_packet/parse`: [`parse`] only.
//! - `per_packet/account_only_one_prefix`: [`Shard::account`] of pre-parsed summaries (the
//!   accounting share of the next one).
//! - `per_packet/parse_account_one_prefix`: parse + account, monitor `10.0.0.0/8`.
//! - `per_packet/parse_account_batch_*`: the same set-ups, frames parsed 256 at a time into a
//!   buffer handed to [`Shard::account_batch`] (overlaps the cache misses of many packets).
//! - `per_packet/parse_account_one_prefix_1k_ips`: the same over 1,000 addresses only, whose
//!   counters stay in cache: the compute cost, without the memory stalls.
//! - `per_packet/parse_account_host_routes_100k`: parse + account, 100,000 /32 prefixes.
//! - `per_packet/parse_account_auto_limit_100k`: parse + account, auto-monitor mode with the
//!   CLI's default limit of 100,000 tracked addresses (the set admitted by a first tick is
//!   installed, as the replay engine does; destinations beyond it are overflow).
//! - `tick_merge/*`: [`Accounting::end_tick`] of one tick's deltas where every address is
//!   already tracked and known to the shards (the steady state); throughput is in active
//!   addresses.
//!
//! Each per-packet iteration ends with `take_tick` + `recycle` (a tick boundary without the
//! merge), so shards keep their steady-state capacity and size.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BatchSize, BenchmarkGroup, Criterion, SamplingMode, Throughput,
};
use surgewatch_bench::{monitor_auto, monitor_host_routes, monitor_one_prefix, BigOptions, Corpus};
use surgewatch_per_ip::{Accounting, Monitor, Shard, TickDelta, TickLength};
use surgewatch_pipeline::{parse, PacketSummary};

const FRAMES: u64 = 1_000_000;
const IPS: u32 = 100_000;
/// Monitored addresses of the cache-resident variant.
const HOT_IPS: u32 = 1_000;
const AUTO_LIMIT: usize = 100_000;
const TICK_NS: u64 = 1_000_000_000;
/// Summaries per [`Shard::account_batch`] call (the replay engine polls 256 frames at a time).
const BATCH: usize = 256;

fn corpus(ips: u32) -> Corpus {
    Corpus::generate(&BigOptions {
        packets: FRAMES,
        ips,
        pps: 1_000_000,
        seed: 1,
    })
}

fn tick() -> TickLength {
    TickLength::from_nanos(TICK_NS).expect("non-zero tick")
}

/// Parses and accounts every frame of `c` into `shard`.
#[inline]
fn parse_account_all(c: &Corpus, shard: &mut Shard) {
    let link = c.link;
    for (data, wire) in c.iter() {
        let s = parse(link, data, wire);
        shard.account(&s);
    }
}

/// Parses every frame of `c` in batches of [`BATCH`] summaries, each handed to
/// [`Shard::account_batch`] (what a capture loop that polls frames in batches can do).
#[inline]
fn parse_account_all_batched(c: &Corpus, shard: &mut Shard, buf: &mut Vec<PacketSummary>) {
    let link = c.link;
    for chunk in c.frames.chunks(BATCH) {
        buf.clear();
        buf.extend(chunk.iter().map(|f| parse(link, c.data(f), f.wire_len)));
        shard.account_batch(buf);
    }
}

/// Ends the shard's tick without merging, keeping its allocations.
fn tick_boundary(shard: &mut Shard) {
    let d = shard.take_tick();
    black_box(d.len());
    shard.recycle(d);
}

/// A shard in the steady state for `monitor`: a first tick merged, the re-arm applied,
/// both of its deltas grown to size.
fn warm_shard(c: &Corpus, monitor: &Arc<Monitor>) -> Shard {
    warm_shard_watching(c, monitor, 0)
}

fn configure(g: &mut BenchmarkGroup<'_, WallTime>) {
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .sampling_mode(SamplingMode::Flat);
}

fn per_packet(cr: &mut Criterion, c: &Corpus, hot: &Corpus) {
    let mut g = cr.benchmark_group("per_packet");
    configure(&mut g);
    g.throughput(Throughput::Elements(c.len() as u64));

    let link = c.link;
    g.bench_function("parse", |b| {
        b.iter(|| {
            for (data, wire) in c.iter() {
                black_box(&parse(link, data, wire));
            }
        })
    });

    // Setups are built on first use, so that a filtered run skips them.
    let mut summaries: Option<Vec<PacketSummary>> = None;
    let mut summaries = || -> Vec<PacketSummary> {
        summaries
            .get_or_insert_with(|| c.iter().map(|(d, w)| parse(link, d, w)).collect())
            .clone()
    };
    let mut setup: Option<(Vec<PacketSummary>, Shard)> = None;
    g.bench_function("account_only_one_prefix", |b| {
        let (summaries, shard) =
            setup.get_or_insert_with(|| (summaries(), warm_shard(c, &monitor_one_prefix())));
        b.iter(|| {
            for s in summaries.iter() {
                shard.account(s);
            }
            tick_boundary(shard);
        })
    });
    drop(setup);
    let mut setup: Option<(Vec<PacketSummary>, Shard)> = None;
    g.bench_function("account_batch_only_one_prefix", |b| {
        let (summaries, shard) =
            setup.get_or_insert_with(|| (summaries(), warm_shard(c, &monitor_one_prefix())));
        b.iter(|| {
            for chunk in summaries.chunks(BATCH) {
                shard.account_batch(chunk);
            }
            tick_boundary(shard);
        })
    });
    drop(setup);

    type Setup = fn() -> Arc<Monitor>;
    let setups: [(&str, &Corpus, Setup); 4] = [
        ("one_prefix", c, monitor_one_prefix),
        ("one_prefix_1k_ips", hot, monitor_one_prefix),
        ("host_routes_100k", c, || monitor_host_routes(IPS)),
        ("auto_limit_100k", c, || monitor_auto(AUTO_LIMIT)),
    ];
    for (name, corpus, monitor) in setups {
        let mut shard: Option<Shard> = None;
        g.bench_function(format!("parse_account_{name}"), |b| {
            let shard = shard.get_or_insert_with(|| warm_shard(corpus, &monitor()));
            b.iter(|| {
                parse_account_all(corpus, shard);
                tick_boundary(shard);
            })
        });
        let mut shard: Option<Shard> = None;
        let mut buf = Vec::with_capacity(BATCH);
        g.bench_function(format!("parse_account_batch_{name}"), |b| {
            let shard = shard.get_or_insert_with(|| warm_shard(corpus, &monitor()));
            b.iter(|| {
                parse_account_all_batched(corpus, shard, &mut buf);
                tick_boundary(shard);
            })
        });
    }

    // The worker's cost of detection: source analysis of watched targets. The watch set is the
    // detector's cap (the most targets it ever watches at once), taken from the busiest
    // addresses of the corpus, so this is the worst case.
    let mut shard: Option<Shard> = None;
    let mut buf = Vec::with_capacity(BATCH);
    g.bench_function("parse_account_batch_one_prefix_watching_max", |b| {
        let shard = shard.get_or_insert_with(|| {
            warm_shard_watching(c, &monitor_one_prefix(), surgewatch_detect::MAX_WATCHED)
        });
        b.iter(|| {
            parse_account_all_batched(c, shard, &mut buf);
            tick_boundary(shard);
        })
    });
    g.finish();
}

/// [`warm_shard`] with the `n` busiest addresses of `c` watched (none for `n == 0`).
fn warm_shard_watching(c: &Corpus, monitor: &Arc<Monitor>, n: usize) -> Shard {
    let mut shard = Shard::new(monitor.clone());
    let mut acct = Accounting::new(monitor.clone(), tick());
    parse_account_all(c, &mut shard);
    let mut deltas = [shard.take_tick()];
    acct.end_tick(0, &mut deltas);
    let [d] = deltas;
    if n > 0 {
        let busiest: Vec<std::net::IpAddr> = acct.report(n).top.iter().map(|r| r.ip).collect();
        acct.set_watch(busiest);
    }
    shard.rearm(d, &acct.rearm());
    parse_account_all(c, &mut shard);
    tick_boundary(&mut shard);
    shard
}

/// `shards` deltas of one tick in the steady state (frames dealt round-robin, as the replay
/// engine deals batches), with the merger that tracks their addresses: a first tick is merged
/// and recycled, so the shards know every address's id.
fn tick_deltas(c: &Corpus, monitor: &Arc<Monitor>, shards: usize) -> (Accounting, Vec<TickDelta>) {
    let mut ss: Vec<Shard> = (0..shards).map(|_| Shard::new(monitor.clone())).collect();
    let mut acct = Accounting::new(monitor.clone(), tick());
    let account = |ss: &mut [Shard]| {
        for (i, (data, wire)) in c.iter().enumerate() {
            ss[i % shards].account(&parse(c.link, data, wire));
        }
    };
    account(&mut ss);
    let mut first: Vec<TickDelta> = ss.iter_mut().map(Shard::take_tick).collect();
    acct.end_tick(0, &mut first);
    let rearm = acct.rearm();
    for (s, d) in ss.iter_mut().zip(first) {
        s.rearm(d, &rearm);
    }
    account(&mut ss);
    let deltas = ss.iter_mut().map(Shard::take_tick).collect();
    (acct, deltas)
}

fn tick_merge(cr: &mut Criterion, c: &Corpus) {
    let mut g = cr.benchmark_group("tick_merge");
    configure(&mut g);
    let monitor = monitor_one_prefix();
    for shards in [1usize, 2] {
        // Steady state: every address already tracked by a first tick, ids known to shards.
        let (mut acct, deltas) = tick_deltas(c, &monitor, shards);
        let active = acct.end_tick(TICK_NS, &mut deltas.clone()).len();
        g.throughput(Throughput::Elements(active as u64));
        let mut start = TICK_NS;
        g.bench_function(
            format!("end_tick_{}k_ips_{shards}_shard", active / 1000),
            |b| {
                b.iter_batched(
                    || deltas.clone(),
                    |mut ds| {
                        start += TICK_NS;
                        black_box(acct.end_tick(start, &mut ds).len());
                        ds
                    },
                    BatchSize::LargeInput,
                )
            },
        );
    }
    g.finish();
}

fn benches(cr: &mut Criterion) {
    let c = corpus(IPS);
    let hot = corpus(HOT_IPS);
    per_packet(cr, &c, &hot);
    tick_merge(cr, &c);
}

criterion_group!(parse_account, benches);
criterion_main!(parse_account);
