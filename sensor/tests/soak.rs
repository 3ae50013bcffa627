//! Soak test of the tracked-address budget (issue 12, §1): hostile traffic that attacks the
//! sensor's own state — random destinations in monitored space from random spoofed sources, a
//! destination sweep followed by a flood — goes through the real pipeline, and the product's
//! promises must hold:
//!
//! * the flood that follows the sweep is detected: one address incident per flood, on its
//!   target, from the flood's first or second tick, and no address incident elsewhere; network
//!   incidents (untracked traffic) only on a flood target's /24 or /64 or a configured prefix;
//! * tracked state never exceeds the configured budget, at the end and at every tick;
//! * the output does not depend on how packets were spread over workers.
//!
//! Each scenario is a capture written to a temporary directory by the seeded hostile generator
//! (`surgewatch_pcaps::hostile`) and a tuning TOML beside it. It is replayed twice: by the real
//! `surgewatch replay --config` (the summary JSON: incidents and tracked-address counts, with 1
//! and 2 workers), and through the library's `replay` with the monitor built from the same
//! parsed config as `settings.rs` builds it and the real detector in a `TickObserver` that
//! checks `ClosedTick::tracked` at every tick. Nothing here depends on timing: time comes from
//! the capture.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use ipnet::IpNet;
use serde_json::Value;
use surgewatch_detect::{Detector, DetectorConfig, EventKind, GroupDetection, IncidentEvent};
use surgewatch_pcaps::gen::S;
use surgewatch_pcaps::hostile::{write_hostile, Dst, HostileSummary, Stream};
use surgewatch_per_ip::{ClosedTick, GroupId, Monitor, NextTick, PrefixTable, TickLength};
use surgewatch_sensor::replay::{open_all, replay, ReplayConfig};
use surgewatch_sensor::tick::{TickInfo, TickObserver};
use surgewatch_tuning::Config;

/// Seed of every capture.
const SEED: u64 = 0x5eed_0012;
/// The tracked-address budget of every scenario.
const BUDGET: usize = 20_000;
/// Flood rate per target: three times the static threshold (10,000 pps before warm-up).
const FLOOD_PPS: u64 = 30_000;
/// Seconds of flood after the first second's sweep.
const FLOOD_SECS: u64 = 5;
/// The sweep's rate while the flood goes on.
const SWEEP_AFTER_PPS: u64 = 5_000;

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn temp_dir(tag: &str) -> TempDir {
    let dir = std::env::temp_dir().join(format!("surgewatch-soak-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    TempDir(dir)
}

/// A scenario written to disk: the capture, its config, what the generator wrote.
struct Scenario {
    _dir: TempDir,
    pcap: PathBuf,
    config: PathBuf,
    written: HostileSummary,
}

fn scenario(tag: &str, streams: &[Stream], config: &str) -> Scenario {
    let dir = temp_dir(tag);
    let pcap = dir.0.join("hostile.pcap");
    let file = std::fs::File::create(&pcap).expect("create capture");
    let written =
        write_hostile(std::io::BufWriter::new(file), streams, SEED).expect("write capture");
    let cfg = dir.0.join("surgewatch.toml");
    std::fs::write(&cfg, config).expect("write config");
    Scenario {
        _dir: dir,
        pcap,
        config: cfg,
        written,
    }
}

/// `surgewatch replay --config CFG --format json` on the capture: its stdout and summary.
fn replay_cli(s: &Scenario, workers: usize) -> (String, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_surgewatch"))
        .arg("replay")
        .arg(&s.pcap)
        .arg("--config")
        .arg(&s.config)
        .args(["--format", "json", "--no-progress", "--workers"])
        .arg(workers.to_string())
        .output()
        .expect("running surgewatch");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let last = stdout.lines().last().expect("a summary line");
    let summary: Value = serde_json::from_str(last).expect("summary JSON");
    assert_eq!(summary["event"], "summary", "{last}");
    (stdout, summary)
}

/// The monitor of `cfg`, built as `settings.rs` `monitor_setup` builds it: the groups'
/// prefixes with `sensor.max_tracked_ips`, or every destination up to
/// `sensor.auto_monitor_limit`; admission and idle eviction from `[sensor]`.
fn monitor_of(cfg: &Config) -> Monitor {
    let mut prefixes: Vec<(IpNet, GroupId)> = Vec::new();
    for (i, g) in cfg.resolved_groups().iter().enumerate() {
        let id = GroupId(u16::try_from(i).expect("group id"));
        prefixes.extend(g.prefixes.iter().map(|p| (*p, id)));
    }
    let m = if prefixes.is_empty() {
        Monitor::auto(cfg.sensor.auto_monitor_limit.get() as usize, GroupId(0))
    } else {
        Monitor::prefixes(PrefixTable::new(prefixes).expect("prefix table"))
            .with_ip_limit(cfg.sensor.max_tracked_ips.get() as usize)
    };
    let idle = u64::try_from(cfg.sensor.idle_evict.as_nanos()).unwrap_or(u64::MAX);
    m.with_untracked_admission(cfg.sensor.admit_untracked_pps)
        .with_idle_eviction(idle)
}

/// The detector in a tick observer that records the tracked-address count of every tick.
struct BudgetWatch {
    detector: Detector,
    events: Vec<IncidentEvent>,
    ticks: u64,
    /// Ticks whose tracked count went over the limit: (tick start, tracked, limit).
    over: Vec<(u64, usize, Option<usize>)>,
    /// Limits the ticks reported (all must be the configured one).
    limits: BTreeSet<Option<usize>>,
    peak: usize,
    overflow_packets: u64,
}

impl TickObserver for BudgetWatch {
    fn on_tick(&mut self, tick: &ClosedTick<'_>, info: &TickInfo<'_>) -> NextTick {
        self.ticks += 1;
        self.limits.insert(tick.ip_limit);
        if tick.ip_limit.is_none_or(|l| tick.tracked > l) {
            self.over
                .push((tick.tick_start_ns, tick.tracked, tick.ip_limit));
        }
        self.peak = self.peak.max(tick.tracked);
        self.overflow_packets += tick.stats.overflow.packets;
        self.detector
            .on_tick(tick, info.idle_after, &mut self.events);
        self.detector.next_tick()
    }
}

/// Replays the capture through the library with the config's monitor and the default
/// detection (the scenarios' configs have no `[detection]`).
fn replay_lib(s: &Scenario, workers: usize) -> BudgetWatch {
    let text = std::fs::read_to_string(&s.config).expect("read config");
    let cfg = surgewatch_tuning::from_str(&text, &s.config.display().to_string())
        .unwrap_or_else(|e| panic!("config: {e}"));
    let tick_ns = u64::try_from(cfg.sensor.tick.as_nanos()).expect("tick");
    let rc = ReplayConfig {
        files: vec![s.pcap.clone()],
        monitor: Arc::new(monitor_of(&cfg)),
        tick: TickLength::from_nanos(tick_ns).expect("tick length"),
        workers,
        parse: Default::default(),
        stop: None,
    };
    let mut obs = BudgetWatch {
        detector: Detector::new(DetectorConfig::single(GroupDetection::default(), tick_ns)),
        events: Vec::new(),
        ticks: 0,
        over: Vec::new(),
        limits: BTreeSet::new(),
        peak: 0,
        overflow_packets: 0,
    };
    let out = replay(&rc, open_all(&rc.files).expect("open"), &mut obs);
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(
        out.accounting.report(10).totals.packets,
        s.written.packets,
        "every frame counted"
    );
    obs
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap_or_else(|e| panic!("address {s:?}: {e}"))
}

/// The targets of the summary's network incidents.
fn network_incidents(sum: &Value) -> BTreeSet<String> {
    sum["incidents"]
        .as_array()
        .expect("incidents")
        .iter()
        .filter(|i| i["scope"] == "network")
        .map(|i| i["target"].as_str().expect("target").to_string())
        .collect()
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

/// What a scenario must give.
struct Expect<'a> {
    /// `monitor_mode` of the summary.
    mode: &'a str,
    /// The floods' targets with the time each flood starts (ns into the capture).
    floods: &'a [(IpAddr, u64)],
    /// How many flood targets are outside what the sweep could reach first (another space,
    /// or one address of a /48): only admission for their rate can have tracked them.
    unswept: u64,
    /// The configured prefixes: networks whose untracked traffic (the sweep's) may raise a
    /// network incident besides the /24 or /64 of a flood target.
    prefixes: &'a [&'a str],
}

/// The network of a network incident (`prefix_len` set), or `None` for an address.
fn network(target: IpAddr, prefix_len: Option<u8>) -> Option<IpNet> {
    prefix_len.map(|l| IpNet::new(target, l).expect("prefix length"))
}

/// Networks that may have a network incident: each flood target's /24 or /64 (its traffic
/// is untracked until it is admitted), and the configured prefixes.
fn allowed_networks(x: &Expect<'_>) -> BTreeSet<IpNet> {
    let mut v: BTreeSet<IpNet> = x
        .prefixes
        .iter()
        .map(|p| p.parse().expect("prefix"))
        .collect();
    for &(t, _) in x.floods {
        let len = if t.is_ipv4() { 24 } else { 64 };
        v.insert(IpNet::new(t, len).expect("length").trunc());
    }
    v
}

/// Checks a scenario's summary (1 and 2 workers) and per-tick budget against its promises.
fn check(s: &Scenario, x: &Expect<'_>) -> Value {
    let floods = x.floods;
    let want: BTreeSet<IpAddr> = floods.iter().map(|f| f.0).collect();
    let networks = allowed_networks(x);
    let (out1, sum) = replay_cli(s, 1);
    let (out2, _) = replay_cli(s, 2);
    if out1 != out2 {
        let first = out1
            .lines()
            .zip(out2.lines())
            .find(|(a, b)| a != b)
            .map(|(a, b)| format!("1 worker:  {a}\n2 workers: {b}"));
        panic!(
            "the output depends on the number of workers; first difference:\n{}",
            first.unwrap_or_else(|| "(one output is longer)".into())
        );
    }

    assert_eq!(u(&sum["packets"]), s.written.packets, "every frame read");
    assert_eq!(u(&sum["parse_errors_total"]), 0);
    assert_eq!(sum["monitor_mode"], x.mode);
    assert_eq!(u(&sum["tracked_ips_limit"]), BUDGET as u64);
    let tracked = u(&sum["tracked_ips"]);
    assert!(tracked <= BUDGET as u64, "tracked_ips {tracked} > {BUDGET}");
    // The sweep outgrew the budget: without overflow the test would prove nothing.
    assert!(
        u(&sum["unmonitored_overflow_packets"]) > 0,
        "the sweep never filled the budget: {sum}"
    );
    assert!(
        u(&sum["admitted_busy_ips"]) >= x.unswept,
        "the flood targets the sweep did not reach were admitted for their rate: {sum}"
    );
    let incidents = sum["incidents"].as_array().expect("incidents");
    let (nets, addrs): (Vec<&Value>, Vec<&Value>) =
        incidents.iter().partition(|i| i["scope"] == "network");
    let hit: BTreeSet<IpAddr> = addrs
        .iter()
        .map(|i| ip(i["target"].as_str().expect("target")))
        .collect();
    assert_eq!(
        hit, want,
        "address incidents on exactly the flood targets: {incidents:?}"
    );
    assert_eq!(addrs.len(), floods.len(), "one per flood: {incidents:?}");
    for n in &nets {
        let net: IpNet = n["target"].as_str().expect("target").parse().expect("net");
        assert!(
            networks.contains(&net),
            "network incident on {net}, not a flood's network nor a configured prefix"
        );
    }

    for workers in [1, 2] {
        let w = replay_lib(s, workers);
        assert_eq!(
            w.ticks,
            u(&sum["ticks"]),
            "workers {workers}: the ticks the CLI closed"
        );
        assert_eq!(
            w.limits,
            BTreeSet::from([Some(BUDGET)]),
            "workers {workers}: every tick knows the limit"
        );
        assert!(
            w.over.is_empty(),
            "workers {workers}: tracked over the budget at ticks {:?}",
            w.over
        );
        // Untracked traffic means the budget was full when it came.
        assert!(w.overflow_packets > 0);
        assert_eq!(
            w.peak, BUDGET,
            "workers {workers}: the budget was used in full"
        );
        let starts: Vec<&IncidentEvent> = w
            .events
            .iter()
            .filter(|e| e.kind == EventKind::Start && e.prefix_len.is_none())
            .collect();
        let started: BTreeSet<IpAddr> = starts.iter().map(|e| e.target).collect();
        assert_eq!(started, want, "workers {workers}: incidents");
        assert_eq!(
            starts.len(),
            floods.len(),
            "workers {workers}: one per flood"
        );
        // Detected from the flood's first or second tick (an untracked target is admitted at
        // the end of its first), never before it.
        for e in &starts {
            let onset = e.onset_ns - surgewatch_pcaps::gen::T0;
            assert!(
                floods
                    .iter()
                    .any(|f| f.0 == e.target && (f.1..=f.1 + S).contains(&onset)),
                "{}: onset {onset} ns into the capture, floods {floods:?}",
                e.target
            );
        }
        let net_starts = w
            .events
            .iter()
            .filter(|e| e.kind == EventKind::Start)
            .filter_map(|e| network(e.target, e.prefix_len));
        for net in net_starts {
            assert!(
                networks.contains(&net),
                "workers {workers}: network incident on {net}"
            );
        }
    }
    sum
}

/// Auto-monitor mode (no prefixes), budget 20,000: 100,000 random destinations in the first
/// second from random spoofed sources fill it five times over; then a 30 kpps flood to one
/// address while the sweep goes on at 5 kpps. The flood must be tracked and detected.
#[test]
fn auto_monitor_sweep_then_flood_is_detected_within_the_budget() {
    let target = ip("203.0.113.7");
    let sweep = Dst::random_in("100.64.0.0/10").expect("space");
    let end = (1 + FLOOD_SECS) * S;
    let streams = [
        Stream::sweep(sweep, 0, S, 5 * BUDGET as u64),
        Stream::sweep(sweep, S, end, SWEEP_AFTER_PPS),
        Stream::flood(target, S, end, FLOOD_PPS),
    ];
    let config = format!("[sensor]\nauto_monitor_limit = {BUDGET}\n");
    let s = scenario("auto", &streams, &config);
    let x = Expect {
        mode: "auto",
        floods: &[(target, S)],
        unswept: 1,
        prefixes: &[],
    };
    let sum = check(&s, &x);
    // The flood's first tick, before its target was admitted, was seen on its /24.
    assert!(
        network_incidents(&sum).contains("203.0.113.0/24"),
        "untracked flood visible: {sum}"
    );
}

/// The prefix-mode scenario: 2001:db8:7::/48 and 10.20.0.0/16 monitored, `max_tracked_ips`
/// 20,000; random destinations in both (50,000 each in the first second, random spoofed
/// sources, random ports), then a 30 kpps flood to one IPv4 and one IPv6 address while both
/// sweeps go on. Returns the scenario and the two targets.
fn prefix_scenario(tag: &str) -> (Scenario, IpAddr, IpAddr) {
    let (t4, t6) = (ip("10.20.3.4"), ip("2001:db8:7::1:2"));
    let v6 = Dst::random_in("2001:db8:7::/48").expect("space");
    let v4 = Dst::random_in("10.20.0.0/16").expect("space");
    let end = (1 + FLOOD_SECS) * S;
    let first = 5 * BUDGET as u64 / 2;
    let streams = [
        Stream::sweep(v6, 0, S, first),
        Stream::sweep(v4, 0, S, first),
        Stream::sweep(v6, S, end, SWEEP_AFTER_PPS),
        Stream::sweep(v4, S, end, SWEEP_AFTER_PPS),
        Stream::flood(t4, S, end, FLOOD_PPS),
        Stream::flood(t6, S, end, FLOOD_PPS),
    ];
    let config = format!(
        "[sensor]\nmax_tracked_ips = {BUDGET}\n\n[[group]]\nname = \"hostile\"\n\
         prefixes = [\"2001:db8:7::/48\", \"10.20.0.0/16\"]\n"
    );
    (scenario(tag, &streams, &config), t4, t6)
}

/// Prefix mode (see [`prefix_scenario`]): both floods must be detected and tracked state
/// must stay within the budget at every tick.
#[test]
fn prefix_mode_random_destinations_then_floods_are_detected_within_the_budget() {
    let (s, t4, t6) = prefix_scenario("prefix");
    // The v4 target may have been swept (and tracked) before its flood; the v6 one was not.
    let x = Expect {
        mode: "prefixes",
        floods: &[(t4, S), (t6, S)],
        unswept: 1,
        prefixes: &["2001:db8:7::/48", "10.20.0.0/16"],
    };
    check(&s, &x);
}

/// The README promises output byte-identical whatever `--workers` is, network incidents
/// (untracked aggregates) included, also while a sweep overflows the budget.
#[test]
fn prefix_mode_network_incidents_do_not_depend_on_the_workers() {
    let (s, _, _) = prefix_scenario("prefix-workers");
    let (out1, _) = replay_cli(&s, 1);
    let (out2, _) = replay_cli(&s, 2);
    let brief = |l: &str| {
        let j: Value = serde_json::from_str(l).expect("JSON line");
        format!(
            "{} {} pps {} packets {}",
            j["event"], j["target"], j["pps"], j["packets"]
        )
    };
    let differ: Vec<(String, String)> = out1
        .lines()
        .zip(out2.lines())
        .filter(|(a, b)| a != b)
        .map(|(a, b)| (brief(a), brief(b)))
        .collect();
    assert!(
        differ.is_empty() && out1.lines().count() == out2.lines().count(),
        "{} lines differ (1 worker, 2 workers): {differ:?}",
        differ.len()
    );
}

/// Churn: prefix mode over 2001:db8:7::/48 with `idle_evict` 3 s, so that the budget turns
/// over for two minutes (idle addresses leave past 7/8 of it, their ids are reused): a sweep
/// of five budgets in the first second, then 10,000 new random destinations a second for
/// 119 s, and three floods: one at 10 s, one at 22 s, and the first target again at 80 s,
/// long after its first incident ended and it went quiet. Each flood gets its incident,
/// tracked state stays within the budget at every tick, and addresses were evicted.
#[test]
fn prefix_mode_churning_sweep_with_idle_eviction_keeps_the_budget_and_detects_late_floods() {
    let (a, b) = (ip("2001:db8:7::a"), ip("2001:db8:7:ffff::b"));
    let v6 = Dst::random_in("2001:db8:7::/48").expect("space");
    let streams = [
        Stream::sweep(v6, 0, S, 5 * BUDGET as u64),
        Stream::sweep(v6, S, 120 * S, 10_000),
        Stream::flood(a, 10 * S, 15 * S, FLOOD_PPS),
        Stream::flood(b, 22 * S, 27 * S, FLOOD_PPS),
        Stream::flood(a, 80 * S, 85 * S, FLOOD_PPS),
    ];
    let config = format!(
        "[sensor]\nmax_tracked_ips = {BUDGET}\nidle_evict = \"3s\"\n\n[[group]]\n\
         name = \"hostile\"\nprefixes = [\"2001:db8:7::/48\"]\n"
    );
    let s = scenario("churn", &streams, &config);
    // Idle eviction may have made room when a flood starts: it may be admitted as a newcomer
    // rather than for its rate, so no count of busy admissions is promised.
    let x = Expect {
        mode: "prefixes",
        floods: &[(a, 10 * S), (b, 22 * S), (a, 80 * S)],
        unswept: 0,
        prefixes: &["2001:db8:7::/48"],
    };
    let sum = check(&s, &x);
    assert!(u(&sum["evicted_ips"]) > 0, "idle addresses left: {sum}");
}

/// A budget full of addresses that are all active: auto-monitor mode, budget 20,000, the
/// 20,000 addresses of 100.64.0.0 + 0..20,000 each receiving one SYN every second (20 kpps:
/// they fill the budget in the first tick and keep every tracked address busy), then a 30
/// kpps flood to 203.0.113.7 from second 1. The README promises that a destination above
/// `admit_untracked_pps` takes the place of the tracked address quiet for longest, so the
/// flood must be detected, as after a sweep.
#[test]
fn auto_monitor_budget_kept_busy_at_one_pps_per_address_cannot_hide_a_flood() {
    let target = ip("203.0.113.7");
    let end = (1 + FLOOD_SECS) * S;
    let streams = [
        Stream::cycle(ip("100.64.0.0"), BUDGET as u64, 0, end, BUDGET as u64),
        Stream::flood(target, S, end, FLOOD_PPS),
    ];
    let config = format!("[sensor]\nauto_monitor_limit = {BUDGET}\n");
    let s = scenario("busy", &streams, &config);
    let x = Expect {
        mode: "auto",
        floods: &[(target, S)],
        unswept: 1,
        prefixes: &[],
    };
    let sum = check(&s, &x);
    // The flood's first tick, before its target was admitted, was seen on its /24.
    assert!(
        network_incidents(&sum).contains("203.0.113.0/24"),
        "untracked flood visible: {sum}"
    );
}

/// The same in prefix mode with a sweep any attacker can send: every address of the monitored
/// 10.20.0.0/16 once a second (65,536 pps, about 31 Mbit/s of SYNs), so every tracked address
/// has traffic in every tick; then a 30 kpps flood to an address the budget left untracked.
#[test]
fn prefix_mode_whole_prefix_swept_every_second_cannot_hide_a_flood() {
    // Newcomers are admitted in address order: the budget takes 10.20.0.0 ..= 10.20.78.31.
    let target = ip("10.20.200.1");
    let end = (1 + FLOOD_SECS) * S;
    let streams = [
        Stream::cycle(ip("10.20.0.0"), 1 << 16, 0, end, 1 << 16),
        Stream::flood(target, S, end, FLOOD_PPS),
    ];
    let config = format!(
        "[sensor]\nmax_tracked_ips = {BUDGET}\n\n[[group]]\nname = \"hostile\"\n\
         prefixes = [\"10.20.0.0/16\"]\n"
    );
    let s = scenario("busy-prefix", &streams, &config);
    let x = Expect {
        mode: "prefixes",
        floods: &[(target, S)],
        unswept: 1,
        prefixes: &["10.20.0.0/16"],
    };
    check(&s, &x);
}
