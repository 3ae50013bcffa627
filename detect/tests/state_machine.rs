//! The incident state machine of [`Detector`], driven tick by tick with synthetic closed ticks.
//!
//! Every tick is made the way the sensor makes it, through per-ip's public API only: packets
//! ([`PacketSummary`]) are spread over [`Shard`]s, the shards' [`TickDelta`]s are merged by
//! [`Accounting::close_tick`], whose closed tick goes to [`Detector::on_tick`] (with the
//! idle ticks that follow it) and whose answer is the detector's watch list
//! ([`Detector::watch_list`]); the deltas go back to the shards with [`Shard::rearm`].
//!
//! Ticks are 100 ms long, so a target receiving `n` packets in a tick is at `10 · n` pps.
//! Thresholds are in pps only: every test puts the bps floor and static threshold at 1 Gbit/s,
//! far above its traffic (at most a few Mbit/s), so bit rates never decide anything.

use std::net::IpAddr;
use std::sync::Arc;

use surgewatch_detect::baseline::{BaselineParams, Rates};
use surgewatch_detect::{
    Detector, DetectorConfig, EventKind, GroupDetection, IncidentEvent, IncidentSummary,
};
use surgewatch_per_ip::{Accounting, GroupId, Monitor, PrefixTable, Shard, TickDelta, TickLength};
use surgewatch_pipeline::{proto, tcp_flags, PacketSummary};

/// Tick length: 100 ms.
const TICK_NS: u64 = 100_000_000;
/// Ticks per second.
const TICKS_PER_SEC: u64 = 1_000_000_000 / TICK_NS;
/// Start of the first tick (2026-01-01T00:00:00Z), a multiple of the tick.
const T0: u64 = 1_767_225_600_000_000_000;

/// The monitored prefix, group 0; every target below is in it.
const PREFIX: &str = "192.0.2.0/24";
/// Its upper half, group 1 (which only the determinism test configures apart).
const PREFIX_GROUP_1: &str = "192.0.2.128/25";
const A: &str = "192.0.2.1";
const B: &str = "192.0.2.2";
const C: &str = "192.0.2.3";
/// In group 1.
const D: &str = "192.0.2.130";
/// A monitored address with a little traffic, so that a tick without traffic to a target is
/// still a closed tick (not an idle one).
const BYSTANDER: &str = "192.0.2.100";
/// The bystander's rate: far under every threshold of the tests.
const BYSTANDER_PPS: u64 = 10;

/// Bit-rate floor and static threshold of every test (1 Gbit/s): never reached.
const UNREACHED_BPS: u64 = 1_000_000_000;

/// Start of tick `i` (counted from [`T0`]).
fn tick_start(i: u64) -> u64 {
    T0 + i * TICK_NS
}

/// End of tick `i`: when the events it causes are stamped.
fn tick_end(i: u64) -> u64 {
    tick_start(i + 1)
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Baseline settings under which the threshold is `static_pps` whatever is learned: warm-up
/// never ends, so `max(floor, static)` stays in force.
fn fixed_threshold(static_pps: u64) -> BaselineParams {
    BaselineParams {
        floor_pps: 10,
        static_pps,
        floor_bps: UNREACHED_BPS,
        static_bps: UNREACHED_BPS,
        warmup_ticks: u32::MAX,
        ..BaselineParams::default()
    }
}

/// Baseline settings whose learned threshold is easy to work out: the baseline is the
/// **largest** of the last 10 learned samples (window 10 in 2 sub-windows of 5, percentile 100
/// so `k = 1`), recomputed after every learned sample, times 2, never under 10 pps. During the
/// first `warmup_ticks` learned samples the threshold is `max(10, static_pps)`.
fn learned_threshold(warmup_ticks: u32, static_pps: u64) -> BaselineParams {
    BaselineParams {
        window_samples: 10,
        subwindows: 2,
        percentile: 100.0,
        multiplier: 2.0,
        recompute_ticks: 1,
        floor_pps: 10,
        floor_bps: UNREACHED_BPS,
        static_pps,
        static_bps: UNREACHED_BPS,
        warmup_ticks,
    }
}

fn group(baseline: BaselineParams, start_ticks: u32, end_ticks: u32) -> GroupDetection {
    GroupDetection {
        baseline,
        start_ticks,
        end_ticks,
    }
}

/// One UDP packet of 100 bytes to `dst`.
fn udp(dst: IpAddr, src: IpAddr, src_port: u16, dst_port: u16) -> PacketSummary {
    let mut s = PacketSummary::empty(100);
    s.ip_version = 4;
    s.src = src;
    s.dst = dst;
    s.protocol = proto::UDP;
    s.has_l4 = true;
    s.src_port = src_port;
    s.dst_port = dst_port;
    s.ttl = 64;
    s.ip_len = 86;
    s.udp_len = 66;
    s
}

/// One TCP SYN of 60 bytes to `dst`.
fn syn(dst: IpAddr, src: IpAddr, src_port: u16, dst_port: u16, ttl: u8) -> PacketSummary {
    let mut s = PacketSummary::empty(60);
    s.ip_version = 4;
    s.src = src;
    s.dst = dst;
    s.protocol = proto::TCP;
    s.has_l4 = true;
    s.src_port = src_port;
    s.dst_port = dst_port;
    s.tcp_flags = tcp_flags::SYN;
    s.ttl = ttl;
    s.ip_len = 46;
    s
}

/// Packets in one tick at `pps`.
fn per_tick(pps: u64) -> u64 {
    assert_eq!(
        pps % TICKS_PER_SEC,
        0,
        "{pps} pps is not a whole number of packets per tick"
    );
    pps / TICKS_PER_SEC
}

/// One tick of UDP at `pps` to `dst`, from a handful of sources (ephemeral ports to port 80,
/// so nothing looks like a reflector).
fn udp_to(dst: &str, pps: u64) -> Vec<PacketSummary> {
    let dst = ip(dst);
    (0..per_tick(pps))
        .map(|i| {
            let src = IpAddr::from([203, 0, 113, 1 + (i % 8) as u8]);
            udp(dst, src, 40_000 + (i % 1000) as u16, 80)
        })
        .collect()
}

/// One tick of traffic: UDP to each `(target, pps)`.
fn traffic(flows: &[(&str, u64)]) -> Vec<PacketSummary> {
    flows
        .iter()
        .flat_map(|&(dst, pps)| udp_to(dst, pps))
        .collect()
}

/// A sensor in miniature: shards, the accounting and the detector, driven one tick at a time.
struct Harness {
    shards: Vec<Shard>,
    acct: Accounting,
    det: Detector,
    /// Index of the next tick to close (from [`T0`]).
    next_tick: u64,
    /// Picks each packet's shard.
    rng: u64,
}

impl Harness {
    /// Every group with `g`, one shard, default update interval (1 s).
    fn new(g: GroupDetection) -> Self {
        Self::with_config(DetectorConfig::single(g, TICK_NS), 1)
    }

    fn with_config(cfg: DetectorConfig, n_shards: usize) -> Self {
        Self::with_monitor(cfg, n_shards, |m| m)
    }

    /// [`Harness::with_config`] with the monitor adjusted by `f` (e.g. a tracked-IP limit).
    fn with_monitor(
        cfg: DetectorConfig,
        n_shards: usize,
        f: impl FnOnce(Monitor) -> Monitor,
    ) -> Self {
        let table = PrefixTable::new([
            (PREFIX.parse().unwrap(), GroupId(0)),
            (PREFIX_GROUP_1.parse().unwrap(), GroupId(1)),
        ])
        .unwrap();
        let monitor = Arc::new(f(Monitor::prefixes(table)));
        Harness {
            shards: (0..n_shards).map(|_| Shard::new(monitor.clone())).collect(),
            acct: Accounting::new(monitor, TickLength::from_nanos(TICK_NS).unwrap()),
            det: Detector::new(cfg),
            next_tick: 0,
            rng: 0x9e37_79b9_7f4a_7c15,
        }
    }

    /// Index of the tick the next call closes.
    fn now(&self) -> u64 {
        self.next_tick
    }

    /// Closes a tick with `packets`; returns its events.
    fn tick(&mut self, packets: &[PacketSummary]) -> Vec<IncidentEvent> {
        self.tick_then_idle(packets, 0)
    }

    /// Closes a tick with `packets`, followed by `idle_after` ticks without any traffic (not
    /// closed: passed to the detector as `idle_after`, as the sensor passes skipped ticks);
    /// returns the events.
    fn tick_then_idle(&mut self, packets: &[PacketSummary], idle_after: u64) -> Vec<IncidentEvent> {
        // Each packet to a pseudo-random shard, each shard's packets in one batch.
        let n = self.shards.len() as u64;
        let mut batches: Vec<Vec<PacketSummary>> = vec![Vec::new(); self.shards.len()];
        for p in packets {
            self.rng ^= self.rng << 13;
            self.rng ^= self.rng >> 7;
            self.rng ^= self.rng << 17;
            batches[(self.rng % n) as usize].push(*p);
        }
        for (shard, batch) in self.shards.iter_mut().zip(&batches) {
            shard.account_batch(batch);
        }
        let mut deltas: Vec<TickDelta> = self.shards.iter_mut().map(Shard::take_tick).collect();
        let mut out = Vec::new();
        let det = &mut self.det;
        let rearm = self
            .acct
            .close_tick(tick_start(self.next_tick), &mut deltas, |closed| {
                det.on_tick(closed, idle_after, &mut out);
                det.next_tick()
            });
        for (shard, d) in self.shards.iter_mut().zip(deltas) {
            shard.rearm(d, &rearm);
        }
        self.next_tick += 1 + idle_after;
        out
    }

    /// `n` ticks of the same traffic; returns their events.
    fn ticks(&mut self, n: u64, packets: &[PacketSummary]) -> Vec<IncidentEvent> {
        (0..n).flat_map(|_| self.tick(packets)).collect()
    }

    /// Ends the input ([`Detector::finish`]); returns the events.
    fn finish(&mut self) -> Vec<IncidentEvent> {
        let mut out = Vec::new();
        self.det.finish(&mut out);
        out
    }

    /// The total thresholds in force for `target` under `params` (as the detector's store
    /// holds them: the last recomputation).
    fn threshold(&self, target: &str, params: &BaselineParams) -> Rates {
        let id = self.acct.id_of(ip(target)).expect("target not tracked");
        self.det
            .baselines()
            .get(id.0)
            .expect("target has no baseline")
            .thresholds(&params.policy())
            .total
    }
}

/// `(kind, target)` of each event, for compact assertions.
fn kinds(events: &[IncidentEvent]) -> Vec<(EventKind, IpAddr)> {
    events.iter().map(|e| (e.kind, e.target)).collect()
}

// ---------------------------------------------------------------------------------------------
// 1. An incident opens after `start_ticks` consecutive ticks over a threshold.

/// Threshold 100 pps; `start_ticks = 3`. Over = 200 pps (20 packets a tick), under = 50 pps.
const START_TICKS: u32 = 3;

#[test]
fn start_opens_on_the_start_ticks_th_consecutive_tick_over_with_onset_at_the_first() {
    let mut h = Harness::new(group(fixed_threshold(100), START_TICKS, 1));
    let over = traffic(&[(A, 200)]);
    for i in 0..u64::from(START_TICKS) - 1 {
        assert_eq!(h.tick(&over), [], "tick {i}: only {} over", i + 1);
        assert_eq!(h.det.open_incidents(), 0);
    }
    let ev = h.tick(&over);
    assert_eq!(kinds(&ev), [(EventKind::Start, ip(A))]);
    let start = &ev[0];
    assert_eq!(start.incident_id, 1);
    assert_eq!(
        start.onset_ns,
        tick_start(0),
        "onset: start of the first tick over"
    );
    assert_eq!(
        start.ts_ns,
        tick_end(2),
        "stamped at the end of the third tick over"
    );
    assert_eq!(start.threshold.pps, 100.0);
    assert_eq!(start.pps, 200);
    assert_eq!(h.det.open_incidents(), 1);
}

#[test]
fn start_count_is_reset_by_a_tick_under_the_threshold() {
    let mut h = Harness::new(group(fixed_threshold(100), START_TICKS, 1));
    let over = traffic(&[(A, 200)]);
    let under = traffic(&[(A, 50)]);
    // over, over, under, over, over: never three in a row.
    assert_eq!(h.ticks(2, &over), []);
    assert_eq!(h.tick(&under), []);
    assert_eq!(h.ticks(2, &over), []);
    assert_eq!(h.det.open_incidents(), 0);
    // The third in a row opens, with the onset after the break.
    let ev = h.tick(&over);
    assert_eq!(kinds(&ev), [(EventKind::Start, ip(A))]);
    assert_eq!(ev[0].onset_ns, tick_start(3));
    assert_eq!(ev[0].ts_ns, tick_end(5));
}

#[test]
fn start_count_is_reset_by_idle_ticks() {
    let mut h = Harness::new(group(fixed_threshold(100), START_TICKS, 1));
    let over = traffic(&[(A, 200)]);
    assert_eq!(h.tick(&over), []);
    // Tick 1 over, then ticks 2..=4 without any traffic at all.
    assert_eq!(h.tick_then_idle(&over, 3), []);
    assert_eq!(h.now(), 5);
    assert_eq!(h.ticks(2, &over), []);
    let ev = h.tick(&over);
    assert_eq!(kinds(&ev), [(EventKind::Start, ip(A))]);
    assert_eq!(ev[0].onset_ns, tick_start(5));
}

// ---------------------------------------------------------------------------------------------
// 2. An incident ends after `end_ticks` consecutive ticks under every threshold.

/// Threshold 100 pps; `start_ticks = 1`, `end_ticks = 4`. Over = 200 pps, under = 50 pps.
const END_TICKS: u32 = 4;

#[test]
fn end_comes_on_the_end_ticks_th_consecutive_tick_under() {
    let mut h = Harness::new(group(fixed_threshold(100), 1, END_TICKS));
    let over = traffic(&[(A, 200)]);
    let under = traffic(&[(A, 50)]);
    assert_eq!(kinds(&h.tick(&over)), [(EventKind::Start, ip(A))]);
    for i in 1..END_TICKS {
        assert_eq!(h.tick(&under), [], "{i} ticks under");
        assert_eq!(h.det.open_incidents(), 1);
        assert!(h.det.closed().is_empty());
    }
    let ev = h.tick(&under);
    assert_eq!(kinds(&ev), [(EventKind::End, ip(A))]);
    let end = &ev[0];
    assert_eq!(end.ts_ns, tick_end(4), "the fourth tick under");
    assert_eq!(end.onset_ns, tick_start(0));
    // 20 packets over, then 5 a tick for 4 ticks.
    assert_eq!(end.packets, 20 + 4 * 5);
    assert_eq!(end.timeline.len(), 5, "one point per tick of the incident");
    assert_eq!(h.det.open_incidents(), 0);
    let summary: &[IncidentSummary] = h.det.closed();
    assert_eq!(summary.len(), 1);
    let s = &summary[0];
    assert_eq!(s.incident_id, end.incident_id);
    assert_eq!(s.target, ip(A));
    assert_eq!((s.onset_ns, s.end_ns), (tick_start(0), tick_end(4)));
    assert_eq!((s.packets, s.bytes), (40, 40 * 100));
    assert_eq!(s.peak_pps, 200);
}

#[test]
fn end_count_is_reset_by_a_tick_over_the_threshold() {
    let mut h = Harness::new(group(fixed_threshold(100), 1, END_TICKS));
    let over = traffic(&[(A, 200)]);
    let under = traffic(&[(A, 50)]);
    assert_eq!(kinds(&h.tick(&over)), [(EventKind::Start, ip(A))]);
    assert_eq!(h.ticks(3, &under), []);
    assert_eq!(h.tick(&over), [], "over again after 3 ticks under");
    assert_eq!(
        h.ticks(3, &under),
        [],
        "the count restarted at the tick over"
    );
    assert_eq!(h.det.open_incidents(), 1);
    let ev = h.tick(&under);
    assert_eq!(kinds(&ev), [(EventKind::End, ip(A))]);
    assert_eq!(ev[0].ts_ns, tick_end(8));
}

#[test]
fn ticks_without_traffic_to_the_target_count_as_under() {
    let mut h = Harness::new(group(fixed_threshold(100), 1, END_TICKS));
    let over = traffic(&[(A, 200), (BYSTANDER, BYSTANDER_PPS)]);
    let silent = traffic(&[(BYSTANDER, BYSTANDER_PPS)]);
    assert_eq!(kinds(&h.tick(&over)), [(EventKind::Start, ip(A))]);
    assert_eq!(h.ticks(u64::from(END_TICKS) - 1, &silent), []);
    assert_eq!(h.det.open_incidents(), 1);
    let ev = h.tick(&silent);
    assert_eq!(kinds(&ev), [(EventKind::End, ip(A))]);
    assert_eq!(ev[0].ts_ns, tick_end(4));
    assert_eq!(ev[0].pps, 0, "the last tick had no traffic to the target");
}

#[test]
fn idle_ticks_count_as_under_and_end_within_the_gap() {
    // Over, then exactly END_TICKS - 1 idle ticks: still open; the next tick (without traffic
    // to the target) is the fourth under.
    let mut h = Harness::new(group(fixed_threshold(100), 1, END_TICKS));
    let over = traffic(&[(A, 200), (BYSTANDER, BYSTANDER_PPS)]);
    let silent = traffic(&[(BYSTANDER, BYSTANDER_PPS)]);
    let ev = h.tick_then_idle(&over, u64::from(END_TICKS) - 1);
    assert_eq!(kinds(&ev), [(EventKind::Start, ip(A))]);
    assert_eq!(h.det.open_incidents(), 1);
    assert_eq!(h.now(), 4);
    let ev = h.tick(&silent);
    assert_eq!(kinds(&ev), [(EventKind::End, ip(A))]);
    assert_eq!(ev[0].ts_ns, tick_end(4));

    // Over, one tick under, then a long gap: the incident ends in the gap, at the end of the
    // fourth tick under (the third idle one), not at the end of the gap.
    let mut h = Harness::new(group(fixed_threshold(100), 1, END_TICKS));
    assert_eq!(
        kinds(&h.tick(&traffic(&[(A, 200)]))),
        [(EventKind::Start, ip(A))]
    );
    let ev = h.tick_then_idle(&traffic(&[(A, 50)]), 100);
    assert_eq!(kinds(&ev), [(EventKind::End, ip(A))]);
    assert_eq!(ev[0].ts_ns, tick_end(4));
    assert_eq!(ev[0].timeline.len(), 5, "2 ticks with traffic + 3 idle");
    assert_eq!(h.det.open_incidents(), 0);
    assert_eq!(h.det.closed()[0].end_ns, tick_end(4));
}

// ---------------------------------------------------------------------------------------------
// 3. Update pacing: 100 ms ticks, `update_interval_ns` = 1 s.

#[test]
fn updates_come_once_per_update_interval_and_never_more_often() {
    // Threshold 100 pps, attack at 200 pps; `end_ticks` long enough for the idle gap below.
    let mut h = Harness::new(group(fixed_threshold(100), 1, 100));
    let over = traffic(&[(A, 200)]);
    const SEC: u64 = 1_000_000_000;

    // 35 ticks (3.5 s) over: the start at the end of tick 0, then an update exactly every
    // second of ticks (every 10th tick), each with the packets since the onset.
    let ev = h.ticks(35, &over);
    let mut all = ev.clone();
    let start_ts = tick_end(0);
    assert_eq!(
        ev.iter().map(|e| (e.kind, e.ts_ns)).collect::<Vec<_>>(),
        [
            (EventKind::Start, start_ts),
            (EventKind::Update, start_ts + SEC),
            (EventKind::Update, start_ts + 2 * SEC),
            (EventKind::Update, start_ts + 3 * SEC),
        ]
    );
    assert_eq!(
        ev[1].packets,
        11 * 20,
        "11 ticks of 20 packets at the first update"
    );
    assert!(ev.iter().all(|e| e.incident_id == 1 && e.pps == 200));

    // Tick 35 (0.5 s after the last update), then 25 idle ticks (2.5 s): no event in the gap;
    // the first tick after it (tick 61, 3.1 s after the last update) brings one update, not
    // three, and the next comes a full second later (tick 71).
    assert_eq!(h.tick_then_idle(&over, 25), []);
    assert_eq!(h.now(), 61);
    let ev = h.ticks(11, &over);
    all.extend(ev.iter().cloned());
    assert_eq!(
        ev.iter().map(|e| (e.kind, e.ts_ns)).collect::<Vec<_>>(),
        [
            (EventKind::Update, tick_end(61)),
            (EventKind::Update, tick_end(71)),
        ]
    );

    // Over the whole incident: consecutive start/update events at least 1 s apart.
    let ts: Vec<u64> = all.iter().map(|e| e.ts_ns).collect();
    assert!(ts.windows(2).all(|w| w[1] - w[0] >= SEC), "{ts:?}");
    // The end is not paced: `finish` ends the incident at once, 0 s after the last update.
    let ev = h.finish();
    assert_eq!(kinds(&ev), [(EventKind::End, ip(A))]);
    assert_eq!(ev[0].ts_ns, tick_end(71));
}

// ---------------------------------------------------------------------------------------------
// 4. Learning pauses during an incident.

#[test]
fn an_incident_is_not_learned_but_the_same_traffic_under_the_threshold_is() {
    // Baseline = largest of the last 10 learned samples, threshold = 2 × baseline; 10 ticks
    // of warm-up at static 1000 pps; `start_ticks = 1`, `end_ticks = 3`.
    let params = learned_threshold(10, 1000);
    let mut h = Harness::new(group(params, 1, 3));

    // Warm-up: A learns 20 pps (threshold 40), B learns 60 pps (threshold 120).
    assert_eq!(h.ticks(10, &traffic(&[(A, 20), (B, 60)])), []);
    assert_eq!(h.threshold(A, &params).pps, 40.0);
    assert_eq!(h.threshold(B, &params).pps, 120.0);

    // 30 ticks at 100 pps for both: over A's threshold (an incident), under B's (learned).
    let ev = h.ticks(30, &traffic(&[(A, 100), (B, 100)]));
    assert_eq!(ev[0].kind, EventKind::Start);
    assert_eq!(ev[0].threshold.pps, 40.0);
    assert!(ev.iter().all(|e| e.target == ip(A)), "B opened an incident");
    assert_eq!(h.threshold(A, &params).pps, 40.0, "the attack was learned");
    assert_eq!(
        h.threshold(B, &params).pps,
        200.0,
        "100 pps under threshold not learned"
    );

    // The attack fades to 30 pps, under A's threshold: the incident ends on the third tick;
    // those ticks are part of the incident, so they are not learned either (else 60 pps).
    let ev = h.ticks(2, &traffic(&[(A, 30), (B, 100)]));
    assert!(
        ev.iter().all(|e| e.kind == EventKind::Update),
        "{:?}",
        kinds(&ev)
    );
    let ev = h.tick(&traffic(&[(A, 30), (B, 100)]));
    assert_eq!(kinds(&ev), [(EventKind::End, ip(A))]);
    assert_eq!(
        h.threshold(A, &params).pps,
        40.0,
        "after the incident: the pre-attack one"
    );

    // Learning resumes once the incident is over.
    assert_eq!(h.tick(&traffic(&[(A, 30), (B, 100)])), []);
    assert_eq!(h.threshold(A, &params).pps, 60.0, "learning did not resume");
}

// ---------------------------------------------------------------------------------------------
// 5. Warm-up, then the learned baseline.

#[test]
fn static_thresholds_apply_during_warm_up_and_the_learned_ones_after() {
    // 10 ticks of warm-up at static 100 pps, then 2 × the largest of the last 10 learned
    // samples; every target learns 20 pps, so its learned threshold is 40 pps.
    let params = learned_threshold(10, 100);
    let mut h = Harness::new(group(params, 1, 1));
    let steady = [(A, 20), (B, 20), (C, 20)];
    assert_eq!(h.ticks(9, &traffic(&steady)), []);
    assert_eq!(h.threshold(C, &params).pps, 100.0, "static during warm-up");

    // Tick 9, the last of the warm-up (its sample is the 10th learned): A at 60 pps, over
    // the learned 40 but under the static 100, opens nothing; B at 150 pps, over the static,
    // opens an incident at the static threshold.
    let ev = h.tick(&traffic(&[(A, 60), (B, 150), (C, 20)]));
    assert_eq!(kinds(&ev), [(EventKind::Start, ip(B))]);
    assert_eq!(ev[0].threshold.pps, 100.0);
    assert_eq!(h.threshold(C, &params).pps, 40.0, "learned once warm");

    // Tick 10, the first after the warm-up: C at the same 60 pps, under the static 100 but
    // over the learned 40, opens an incident at the learned threshold.
    let ev = h.tick(&traffic(&[(A, 20), (B, 150), (C, 60)]));
    assert_eq!(kinds(&ev), [(EventKind::Start, ip(C))]);
    assert_eq!(ev[0].threshold.pps, 40.0);
}

// ---------------------------------------------------------------------------------------------
// 6. `finish` ends the incidents still open.

#[test]
fn finish_ends_every_open_incident_with_an_end_event() {
    // Threshold 100 pps; `end_ticks = 100`, so nothing ends on its own here.
    let mut h = Harness::new(group(fixed_threshold(100), 1, 100));
    let attack = traffic(&[(A, 200), (B, 300)]);
    let ev = h.tick(&attack);
    assert_eq!(
        kinds(&ev),
        [(EventKind::Start, ip(A)), (EventKind::Start, ip(B))]
    );
    assert_eq!(h.ticks(4, &attack), []);
    // Tick 5, then 2 idle ticks: the input ends with tick 7.
    assert_eq!(h.tick_then_idle(&attack, 2), []);
    assert_eq!(h.det.open_incidents(), 2);

    let ev = h.finish();
    assert_eq!(
        kinds(&ev),
        [(EventKind::End, ip(A)), (EventKind::End, ip(B))]
    );
    assert!(ev
        .iter()
        .all(|e| e.ts_ns == tick_end(7) && e.onset_ns == tick_start(0)));
    assert_eq!((ev[0].packets, ev[1].packets), (6 * 20, 6 * 30));
    assert_eq!(ev[0].timeline.len(), 8, "6 ticks with traffic + 2 idle");
    assert_eq!(h.det.open_incidents(), 0);
    let closed: Vec<(u64, IpAddr, u64)> = h
        .det
        .closed()
        .iter()
        .map(|s| (s.incident_id, s.target, s.end_ns))
        .collect();
    assert_eq!(closed, [(1, ip(A), tick_end(7)), (2, ip(B), tick_end(7))]);

    assert_eq!(h.finish(), [], "nothing left to end");
}

// ---------------------------------------------------------------------------------------------
// 7. Determinism over sharding.

/// A reproducible generator for the traffic (independent of the harness's shard picks).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Background traffic: UDP and TCP to A, B, C and the bystander from 40 sources.
fn background(rng: &mut Rng) -> Vec<PacketSummary> {
    let mut v = Vec::new();
    for (dst, pps) in [(A, 50), (B, 30), (C, 20), (BYSTANDER, BYSTANDER_PPS)] {
        for _ in 0..per_tick(pps) {
            let r = rng.next();
            let src = IpAddr::from([198, 51, 100, 1 + (r % 40) as u8]);
            let sport = 32_768 + (r >> 8) as u16 % 16_384;
            v.push(if r.is_multiple_of(3) {
                syn(ip(dst), src, sport, 443, 57)
            } else {
                udp(ip(dst), src, sport, 80)
            });
        }
    }
    v
}

/// A spoofed SYN flood: random sources, ports and TTLs.
fn syn_flood(rng: &mut Rng, dst: &str, pps: u64) -> Vec<PacketSummary> {
    (0..per_tick(pps))
        .map(|_| {
            let r = rng.next();
            let src = IpAddr::from(std::net::Ipv4Addr::from((r >> 32) as u32 | 0x0100_0000));
            syn(ip(dst), src, r as u16, 443, (r >> 16) as u8)
        })
        .collect()
}

/// DNS reflection: answers from 30 resolvers (source port 53), 1200 bytes each.
fn dns_reflection(rng: &mut Rng, dst: &str, pps: u64) -> Vec<PacketSummary> {
    (0..per_tick(pps))
        .map(|_| {
            let r = rng.next();
            let mut s = udp(
                ip(dst),
                IpAddr::from([192, 0, 2 + 1, 1 + (r % 30) as u8]),
                53,
                1024 + (r >> 8) as u16 % 60_000,
            );
            s.wire_len = 1200;
            s.ip_len = 1186;
            s.udp_len = 1166;
            s
        })
        .collect()
}

/// A scenario with learned baselines, two simultaneous attacks of different kinds (updates,
/// ends), an idle gap, a short burst, an attack that opens at its first tick on a target
/// nobody watched (its sources come from the onset sample, gathered from every shard) and
/// incidents still open at the end, on `n_shards` shards; returns every event.
fn sharded_scenario(n_shards: usize) -> Vec<IncidentEvent> {
    let baseline = learned_threshold(20, 1000);
    let mut cfg = DetectorConfig::single(group(baseline, 2, 5), TICK_NS);
    cfg.groups.push(group(baseline, 1, 3));
    let mut h = Harness::with_config(cfg, n_shards);
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut events = Vec::new();
    for t in 0..90u64 {
        let mut packets = background(&mut rng);
        if (30..60).contains(&t) {
            packets.extend(syn_flood(&mut rng, A, 800));
            packets.extend(dns_reflection(&mut rng, B, 500));
        }
        if (75..78).contains(&t) || t >= 85 {
            packets.extend(syn_flood(&mut rng, C, 300));
        }
        if (40..50).contains(&t) {
            // Over D's static 1000 pps: D has no traffic before, so it is in warm-up.
            packets.extend(syn_flood(&mut rng, D, 5000));
        }
        events.extend(h.tick_then_idle(&packets, if t == 65 { 5 } else { 0 }));
    }
    events.extend(h.finish());
    events
}

#[test]
fn events_do_not_depend_on_how_packets_are_spread_over_shards() {
    let one = sharded_scenario(1);
    // The scenario exercises what it should: starts, updates and ends of several incidents,
    // with source analysis.
    let count = |k: EventKind| one.iter().filter(|e| e.kind == k).count();
    assert!(count(EventKind::Start) >= 3, "{:?}", kinds(&one));
    assert!(count(EventKind::Update) >= 2, "{:?}", kinds(&one));
    assert_eq!(count(EventKind::End), count(EventKind::Start));
    assert!(one
        .iter()
        .any(|e| e.top_sources.len() > 1 && e.unique_sources > 1));
    let d_start = one
        .iter()
        .find(|e| e.target == ip(D) && e.kind == EventKind::Start)
        .expect("no incident on D");
    assert!(d_start.unique_sources > 0, "D's start has no onset sources");
    for n in [2, 3] {
        assert_eq!(sharded_scenario(n), one, "{n} shards");
    }
}

/// Two groups with different baseline windows (so different sketch shapes): the baselines of
/// both are saved, and a fresh detector loads both back with the same thresholds.
#[test]
fn baselines_of_groups_with_different_windows_are_saved_and_loaded() {
    let short = learned_threshold(5, 1000);
    let long = BaselineParams {
        window_samples: 20,
        subwindows: 4,
        multiplier: 3.0,
        ..short
    };
    assert_ne!(short.policy().fingerprint(), long.policy().fingerprint());
    let config = || {
        let mut cfg = DetectorConfig::single(group(short, 2, 5), TICK_NS);
        cfg.groups.push(group(long, 2, 5));
        cfg
    };
    let mut h = Harness::with_config(config(), 1);
    for t in 0..30u64 {
        h.tick(&traffic(&[
            (A, 100 + 10 * (t % 7)),
            (D, 200 + 10 * (t % 5)),
        ]));
    }
    let bytes = h.det.encode_baselines(&h.acct);
    let mut fresh = Harness::with_config(config(), 1);
    assert_eq!(
        fresh.det.load_baselines(&bytes).map(|l| l.loaded),
        Ok(2),
        "both groups' baselines"
    );
    // One more identical tick on each: the loaded baselines are the saved ones.
    let last = traffic(&[(A, 100), (D, 200)]);
    h.tick(&last);
    fresh.tick(&last);
    for (target, params) in [(A, &short), (D, &long)] {
        let (saved, loaded) = (h.threshold(target, params), fresh.threshold(target, params));
        assert_eq!(saved, loaded, "{target}");
        assert!(
            saved.pps < 1000.0,
            "{target}: learned, out of warm-up: {saved:?}"
        );
    }
    // Saved again, the file reads back unchanged.
    let again = fresh.det.encode_baselines(&fresh.acct);
    let mut third = Harness::with_config(config(), 1);
    assert_eq!(third.det.load_baselines(&again).map(|l| l.loaded), Ok(2));

    // The second group's window changes: its baselines are left out, the first group's load.
    let longer = BaselineParams {
        window_samples: 40,
        ..long
    };
    let mut cfg = DetectorConfig::single(group(short, 2, 5), TICK_NS);
    cfg.groups.push(group(longer, 2, 5));
    let mut changed = Harness::with_config(cfg, 1);
    assert_eq!(
        changed.det.load_baselines(&again),
        Ok(surgewatch_detect::LoadedBaselines {
            loaded: 1,
            dropped: 1
        })
    );
}

// ---------------------------------------------------------------------------------------------
// 8. The tracked-address budget: incidents keep their targets, evicted baselines come back.

/// A budget of three tracked addresses; untracked destinations at 50 pps or more are admitted
/// in place of quiet ones.
fn budget_of_three(m: Monitor) -> Monitor {
    m.with_ip_limit(3).with_untracked_admission(50)
}

#[test]
fn the_target_of_an_open_incident_stays_tracked_when_the_budget_is_full() {
    let cfg = DetectorConfig::single(group(fixed_threshold(100), 1, 3), TICK_NS);
    let mut h = Harness::with_monitor(cfg, 2, budget_of_three);
    h.tick(&traffic(&[(A, 20), (B, 20), (BYSTANDER, BYSTANDER_PPS)]));
    let ev = h.tick(&traffic(&[(A, 200), (B, 20), (BYSTANDER, BYSTANDER_PPS)]));
    assert_eq!(kinds(&ev), [(EventKind::Start, ip(A))]);
    // A goes quiet, its incident still open; C floods: B, quiet too, makes room, not A.
    assert_eq!(h.tick(&traffic(&[(C, 50), (BYSTANDER, BYSTANDER_PPS)])), []);
    assert!(h.acct.id_of(ip(A)).is_some());
    assert_eq!(h.acct.id_of(ip(B)), None);
    assert!(h.acct.id_of(ip(C)).is_some());
    // D floods too: nobody quiet may leave (A's incident is open), so the lightest busy
    // address, the bystander at 10 pps, gives way; A stays.
    assert_eq!(
        h.tick(&traffic(&[(C, 50), (D, 50), (BYSTANDER, BYSTANDER_PPS)])),
        []
    );
    assert!(h.acct.id_of(ip(A)).is_some());
    assert!(h.acct.id_of(ip(D)).is_some());
    assert_eq!(h.acct.id_of(ip(BYSTANDER)), None);
    let ev = h.tick(&traffic(&[(C, 50), (D, 50), (BYSTANDER, BYSTANDER_PPS)]));
    assert_eq!(kinds(&ev), [(EventKind::End, ip(A))]);
    assert_eq!(h.acct.tracked(), 3);
}

#[test]
fn an_evicted_address_keeps_its_learned_baseline_and_gets_it_back() {
    // Warm-up of 10 learned samples at static 100 pps; A learns 20 pps (threshold 40).
    let params = learned_threshold(10, 100);
    let cfg = || DetectorConfig::single(group(params, 1, 1), TICK_NS);
    let mut h = Harness::with_monitor(cfg(), 1, budget_of_three);
    let steady = [(A, 20), (B, 20), (BYSTANDER, BYSTANDER_PPS)];
    assert_eq!(h.ticks(12, &traffic(&steady)), []);
    assert_eq!(h.threshold(A, &params).pps, 40.0);
    // A goes quiet while C arrives at the admission rate: A leaves for C.
    let ev = h.tick(&traffic(&[(B, 20), (C, 50), (BYSTANDER, BYSTANDER_PPS)]));
    assert_eq!(ev, []);
    assert_eq!(h.acct.id_of(ip(A)), None);
    // Evicted, its baseline is still saved with the others.
    let bytes = h.det.encode_baselines(&h.acct);
    let mut fresh = Harness::new(group(params, 1, 1));
    assert_eq!(
        fresh.det.load_baselines(&bytes).map(|l| l.loaded),
        Ok(3),
        "A, B and the bystander"
    );
    // C is tracked from the next tick (under the static threshold: no incident), then quiet;
    // A comes back at 60 pps and takes C's place.
    assert_eq!(
        h.tick(&traffic(&[(B, 20), (C, 50), (BYSTANDER, BYSTANDER_PPS)])),
        []
    );
    assert_eq!(
        h.tick(&traffic(&[(A, 60), (B, 20), (BYSTANDER, BYSTANDER_PPS)])),
        []
    );
    assert!(h.acct.id_of(ip(A)).is_some());
    // 60 pps is under the static 100 of a new address but over A's own learned 40: only
    // the baseline it had before its eviction opens this incident.
    let ev = h.tick(&traffic(&[(A, 60), (B, 20), (BYSTANDER, BYSTANDER_PPS)]));
    assert_eq!(kinds(&ev), [(EventKind::Start, ip(A))]);
    assert!(ev[0].threshold.pps < 100.0, "{:?}", ev[0].threshold);
}

#[test]
fn an_attack_spread_over_untracked_addresses_opens_a_network_incident() {
    let cfg = DetectorConfig::single(group(fixed_threshold(100), 2, 2), TICK_NS);
    let mut h = Harness::with_monitor(cfg, 2, budget_of_three);
    let steady = [(A, 20), (B, 20), (BYSTANDER, BYSTANDER_PPS)];
    h.tick(&traffic(&steady));
    // 30 untracked addresses, one packet each per tick (10 pps each: far under every
    // threshold), 300 pps together.
    let carpet: Vec<PacketSummary> = (10..40u8)
        .map(|host| {
            udp(
                [192, 0, 2, host].into(),
                [198, 51, 100, 1].into(),
                40_000,
                80,
            )
        })
        .chain(traffic(&steady))
        .collect();
    assert_eq!(h.tick(&carpet), [], "one tick over: pending");
    let ev = h.tick(&carpet);
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(
        (ev[0].kind, ev[0].target, ev[0].prefix_len),
        (EventKind::Start, ip("192.0.2.0"), Some(24))
    );
    assert_eq!(ev[0].pps, 300);
    assert_eq!(h.det.open_incidents(), 1);
    // Back to normal: the network incident ends after two ticks under.
    assert_eq!(h.tick(&traffic(&steady)), []);
    let ev = h.tick(&traffic(&steady));
    assert_eq!(kinds(&ev), [(EventKind::End, ip("192.0.2.0"))]);
    assert_eq!(ev[0].prefix_len, Some(24));
    assert_eq!(h.det.closed().len(), 1);
    assert_eq!(h.det.closed()[0].prefix_len, Some(24));
}
