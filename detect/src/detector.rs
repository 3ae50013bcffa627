//! Detection: per-IP thresholds from learned baselines, the incident state machine, and the
//! incident events it emits.
//!
//! Fed one closed tick at a time ([`Detector::on_tick`]), after [`Accounting`] merged the
//! shards. For each monitored IP with traffic in the tick:
//!
//! 1. its inbound sample is checked against the thresholds in force (static during warm-up,
//!    then `max(floor, p99 × multiplier)` per class and for the total, in pps and bps);
//! 2. the sample is learned, unless the IP is over a threshold or in an incident (learning
//!    pauses, so an attack never poisons its own baseline);
//! 3. `start_ticks` consecutive ticks over a threshold open an incident whose `onset` is the
//!    start of the first of them; `end_ticks` consecutive ticks back under close it. Idle
//!    ticks count as under.
//!
//! An incident is classified from the inbound traffic of its *attack classes*: the classes
//! that went over their own threshold at least once during the incident (all classes when
//! only the total did). So a SYN flood against a busy web server is a `syn_flood`, not the
//! server's normal ACK traffic. Source analysis comes from the targets the detector asks to
//! watch ([`Detector::watch_list`]): open incidents, IPs over a threshold, and IPs over half
//! of one. Everything is ordered by [`IpId`], so the events are deterministic.

use std::collections::{BTreeMap, VecDeque};
use std::net::IpAddr;

use ipnet::IpNet;

use hashbrown::HashMap;
use surgewatch_pipeline::TrafficClass;

use surgewatch_per_ip::reflector::{reflector_index, AMP_BUCKETS, N_REFLECTORS};
use surgewatch_per_ip::sources::{SourceStats, LENGTH_BUCKETS, WATCH_SOURCE_CAP};
use surgewatch_per_ip::{
    Accounting, AmpCounters, ClosedTick, Direction, GroupId, IpCounters, IpId, IpKey, NextTick,
    PerSec, ONSET_SAMPLE_RATE,
};

use crate::baseline::{
    exceeded, BaselineFileError, BaselineParams, BaselinePolicy, BaselineStore, Exceeded,
    IpBaseline, Rates, Thresholds, TickSample,
};
use crate::classify::{classify, AttackProfile, Classification, Family};

/// Detection settings of one group.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct GroupDetection {
    /// Baseline and threshold settings.
    pub baseline: BaselineParams,
    /// Consecutive ticks over a threshold that open an incident (≥ 1).
    pub start_ticks: u32,
    /// Consecutive ticks under every threshold that close it (≥ 1).
    pub end_ticks: u32,
}

impl Default for GroupDetection {
    fn default() -> Self {
        GroupDetection {
            baseline: BaselineParams::default(),
            start_ticks: 1,
            end_ticks: 10,
        }
    }
}

/// Detection settings for every group, indexed by [`GroupId`].
#[derive(Clone, Debug)]
pub struct DetectorConfig {
    /// Per group, indexed by [`GroupId::index`]; groups beyond the end use the last entry
    /// (or the defaults when empty).
    pub groups: Vec<GroupDetection>,
    /// Tick length in nanoseconds.
    pub tick_ns: u64,
    /// Least time between two update events of one incident (default 1 s).
    pub update_interval_ns: u64,
    /// Top sources and destination ports listed per event.
    pub top_n: usize,
    /// Most baselines kept for addresses the accounting evicted (quiet ones): restored if the
    /// address is tracked again, saved with the others; beyond this the oldest are dropped.
    pub max_parked_baselines: usize,
}

/// What [`Detector::load_baselines`] took from a file.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct LoadedBaselines {
    /// Baselines loaded.
    pub loaded: usize,
    /// Well-formed baselines of a sketch shape no group has any more (a group's baseline
    /// window changed), left out; the other groups' are loaded.
    pub dropped: u64,
}

/// Default of [`DetectorConfig::max_parked_baselines`].
pub const DEFAULT_MAX_PARKED_BASELINES: usize = 250_000;

impl DetectorConfig {
    /// One group of `g`, ticks of `tick_ns`.
    pub fn single(g: GroupDetection, tick_ns: u64) -> Self {
        DetectorConfig {
            groups: vec![g],
            tick_ns,
            update_interval_ns: 1_000_000_000,
            top_n: 10,
            max_parked_baselines: DEFAULT_MAX_PARKED_BASELINES,
        }
    }
}

/// What kind of event.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// An incident opened.
    Start,
    /// An incident goes on (at most one per update interval).
    Update,
    /// An incident closed.
    End,
}

/// Packets and bytes of one tick of an incident.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct TimelinePoint {
    /// Start of the tick, ns since the epoch.
    pub tick_start_ns: u64,
    /// Inbound packets to the target in the tick.
    pub packets: u64,
    /// Inbound bytes.
    pub bytes: u64,
}

/// One incident event: plain data, mapped to JSON by `export`.
#[derive(Clone, Debug, PartialEq)]
pub struct IncidentEvent {
    /// Start, update or end.
    pub kind: EventKind,
    /// Incident number, from 1, in order of opening.
    pub incident_id: u64,
    /// The attacked address (of a network incident: the network's address).
    pub target: IpAddr,
    /// A network incident (untracked traffic of a /24, /64 or configured prefix): the
    /// prefix length of `target`'s network; `None` for an address.
    pub prefix_len: Option<u8>,
    /// Its group.
    pub group: GroupId,
    /// The attack family.
    pub family: Family,
    /// Its vectors (the family itself for a single-vector attack).
    pub vectors: Vec<Family>,
    /// 0..=100.
    pub confidence: u8,
    /// When the event is emitted (end of the tick that caused it), ns.
    pub ts_ns: u64,
    /// Start of the first tick over the threshold, ns.
    pub onset_ns: u64,
    /// Inbound packet rate of the target in the last tick.
    pub pps: u64,
    /// Inbound bit rate of the target in the last tick.
    pub bps: u64,
    /// Highest `pps` of the incident so far.
    pub peak_pps: u64,
    /// Highest `bps` of the incident so far.
    pub peak_bps: u64,
    /// Inbound packets since the onset.
    pub packets: u64,
    /// Inbound bytes since the onset.
    pub bytes: u64,
    /// The traffic classes that went over their threshold.
    pub over_classes: Vec<TrafficClass>,
    /// The thresholds that were in force at the onset (total pps, total bps).
    pub threshold: Rates,
    /// Distinct sources seen while watched.
    pub unique_sources: u64,
    /// The source-spoofing verdict.
    pub spoofed: bool,
    /// Top sources: (address, average packet rate while watched, packets while watched).
    pub top_sources: Vec<(IpAddr, u64, u64)>,
    /// Top destination ports: (port, average packet rate, packets) while watched.
    pub top_dst_ports: Vec<(u16, u64, u64)>,
    /// Top source ports: (port, average packet rate, packets) while watched.
    pub top_src_ports: Vec<(u16, u64, u64)>,
    /// Packet length distribution while watched: (bucket label, packets).
    pub lengths: Vec<(&'static str, u64)>,
    /// Mean packet length while watched.
    pub mean_length: u64,
    /// Distinct TTL values while watched.
    pub distinct_ttls: u32,
    /// (min, max) TTL while watched; (0, 0) without packets.
    pub ttl_range: (u8, u8),
    /// Per-tick packets and bytes for the incident's whole life (end events only).
    pub timeline: Vec<TimelinePoint>,
}

/// A closed incident, for the summary.
#[derive(Clone, Debug, PartialEq)]
pub struct IncidentSummary {
    /// Incident number.
    pub incident_id: u64,
    /// The attacked address (of a network incident: the network's address).
    pub target: IpAddr,
    /// A network incident: the prefix length of its network.
    pub prefix_len: Option<u8>,
    /// The family at the end.
    pub family: Family,
    /// Its vectors.
    pub vectors: Vec<Family>,
    /// Confidence at the end.
    pub confidence: u8,
    /// Onset, ns.
    pub onset_ns: u64,
    /// End, ns.
    pub end_ns: u64,
    /// Peak inbound pps.
    pub peak_pps: u64,
    /// Peak inbound bps.
    pub peak_bps: u64,
    /// Inbound packets.
    pub packets: u64,
    /// Inbound bytes.
    pub bytes: u64,
}

#[derive(Clone, Debug)]
struct Incident {
    id: u64,
    target: IpAddr,
    /// A network incident: the prefix length of `target`'s network.
    prefix_len: Option<u8>,
    group: GroupId,
    onset_ns: u64,
    last_event_ns: u64,
    under_ticks: u32,
    /// Union of the classes (bits by index) over their threshold; bit 9 = total.
    over_mask: u16,
    threshold: Rates,
    profile: AttackProfile,
    sources: SourceStats,
    watched_ns: u64,
    /// Source analysis of the onset tick's sample (see [`ClosedTick::onset_samples`]), for an
    /// incident that started on a target nobody watched; dropped once watched sources arrive.
    onset: Option<SourceStats>,
    timeline: Vec<TimelinePoint>,
    last_pps: u64,
    last_bps: u64,
    peak_pps: u64,
    peak_bps: u64,
    packets: u64,
    bytes: u64,
}

#[derive(Copy, Clone, Debug)]
struct Pending {
    over_ticks: u32,
    first_over_ns: u64,
}

/// Most network incidents open at once (more are refused and counted: see
/// [`Detector::refused_net_incidents`]).
pub const MAX_NET_INCIDENTS: usize = 256;

/// The ticks one call of [`Detector::on_tick`] covers.
#[derive(Copy, Clone, Debug)]
struct TickSpan {
    start: u64,
    end: u64,
    tick_ns: u64,
    idle_after: u64,
}

/// The detection settings of group `g` (groups beyond the list: the last one).
fn group_cfg(cfg: &DetectorConfig, g: GroupId) -> GroupDetection {
    cfg.groups
        .get(g.index())
        .or(cfg.groups.last())
        .copied()
        .unwrap_or_default()
}

/// Closes `inc` with its end event `ev`.
fn close_incident(
    inc: Incident,
    ev: IncidentEvent,
    closed: &mut Vec<IncidentSummary>,
    out: &mut Vec<IncidentEvent>,
) {
    closed.push(IncidentSummary {
        incident_id: inc.id,
        target: inc.target,
        prefix_len: inc.prefix_len,
        family: ev.family,
        vectors: ev.vectors.clone(),
        confidence: ev.confidence,
        onset_ns: inc.onset_ns,
        end_ns: ev.ts_ns,
        peak_pps: inc.peak_pps,
        peak_bps: inc.peak_bps,
        packets: inc.packets,
        bytes: inc.bytes,
    });
    out.push(ev);
}

/// Takes the open incidents of `open` past a tick: those not in `seen` had no traffic in
/// it (an idle tick under every threshold); each ends after its group's `end_ticks` ticks
/// under (within the idle ticks that follow, if so), else gets an update event once per
/// update interval.
fn advance_open<K: Ord + Copy>(
    open: &mut BTreeMap<K, Incident>,
    seen: &[K],
    cfg: &DetectorConfig,
    span: TickSpan,
    closed: &mut Vec<IncidentSummary>,
    out: &mut Vec<IncidentEvent>,
) {
    let TickSpan {
        start,
        end,
        tick_ns,
        idle_after,
    } = span;
    let keys: Vec<K> = open.keys().copied().collect();
    for id in keys {
        let Some(inc) = open.get_mut(&id) else {
            continue;
        };
        let gcfg = group_cfg(cfg, inc.group);
        if !seen.contains(&id) {
            inc.under_ticks += 1;
            inc.last_pps = 0;
            inc.last_bps = 0;
            inc.push_timeline(TimelinePoint {
                tick_start_ns: start,
                packets: 0,
                bytes: 0,
            });
        }
        inc.peak_pps = inc.peak_pps.max(inc.last_pps);
        inc.peak_bps = inc.peak_bps.max(inc.last_bps);
        // Idle ticks after this one.
        let needed = gcfg.end_ticks.max(1);
        if inc.under_ticks >= needed {
            let ev = inc.event(EventKind::End, end, cfg.top_n, tick_ns);
            if let Some(inc) = open.remove(&id) {
                close_incident(inc, ev, closed, out);
            }
            continue;
        }
        let remaining = u64::from(needed - inc.under_ticks);
        if idle_after >= remaining {
            let end_ts = end.saturating_add(remaining.saturating_mul(tick_ns));
            for k in 0..remaining {
                inc.push_timeline(TimelinePoint {
                    tick_start_ns: end.saturating_add(k.saturating_mul(tick_ns)),
                    packets: 0,
                    bytes: 0,
                });
            }
            inc.last_pps = 0;
            inc.last_bps = 0;
            let ev = inc.event(EventKind::End, end_ts, cfg.top_n, tick_ns);
            if let Some(inc) = open.remove(&id) {
                close_incident(inc, ev, closed, out);
            }
            continue;
        }
        if idle_after > 0 {
            inc.under_ticks += idle_after as u32;
            for k in 0..idle_after.min(MAX_TIMELINE as u64) {
                inc.push_timeline(TimelinePoint {
                    tick_start_ns: end.saturating_add(k.saturating_mul(tick_ns)),
                    packets: 0,
                    bytes: 0,
                });
            }
        }
        if end.saturating_sub(inc.last_event_ns) >= cfg.update_interval_ns
            && inc.last_event_ns != end
        {
            inc.last_event_ns = end;
            out.push(inc.event(EventKind::Update, end, cfg.top_n, tick_ns));
        }
    }
}

/// Most targets whose sources are analysed at once (see [`Detector::watch_list`]).
pub const MAX_WATCHED: usize = 128;

/// Most timeline points kept per incident (a day of 1 s ticks); older ones are dropped.
const MAX_TIMELINE: usize = 86_400;

/// The detector: baselines of every monitored IP plus the open incidents.
#[derive(Debug)]
pub struct Detector {
    cfg: DetectorConfig,
    policies: Vec<BaselinePolicy>,
    baselines: BaselineStore,
    pending: HashMap<IpId, Pending>,
    open: BTreeMap<IpId, Incident>,
    /// Incidents on the untracked traffic of a network, and networks over a threshold.
    open_nets: BTreeMap<IpNet, Incident>,
    pending_nets: HashMap<IpNet, Pending>,
    refused_net_incidents: u64,
    /// IPs over or near a threshold this tick, with their inbound packets in it.
    near: Vec<(u64, IpAddr)>,
    next_id: u64,
    closed: Vec<IncidentSummary>,
    preload: HashMap<IpKey, IpBaseline>,
    /// Baselines of addresses the accounting evicted, with the sequence number of their
    /// parking, and the parkings oldest first (an entry whose number no longer matches was
    /// restored or parked again since).
    parked: HashMap<IpKey, (u64, IpBaseline)>,
    parked_order: VecDeque<(IpKey, u64)>,
    parked_seq: u64,
    last_tick_end_ns: Option<u64>,
}

fn rate(count: u64, ns: u64) -> u64 {
    PerSec::new(ns).of(count)
}

/// The total of `sample` against `th` scaled by `f`: over a fraction of a threshold?
fn near_threshold(th: &Thresholds, sample: &TickSample, f: f64) -> bool {
    let scale = |r: Rates| Rates {
        pps: r.pps * f,
        bps: r.bps * f,
    };
    let half = Thresholds {
        classes: th.classes.map(scale),
        total: scale(th.total),
    };
    exceeded(&half, sample).any()
}

/// The AttackProfile of one tick of one IP's inbound traffic.
fn profile_of(counters: &IpCounters, amp: Option<&AmpCounters>) -> AttackProfile {
    let mut p = AttackProfile::default();
    for c in TrafficClass::ALL {
        let pb = counters.get(Direction::In, c);
        p.classes[c.index()] = pb.packets;
        p.class_bytes[c.index()] = pb.bytes;
    }
    if let Some(amp) = amp {
        for b in 0..AMP_BUCKETS {
            let Some(i) = bucket_reflector(b) else {
                continue;
            };
            p.reflector_packets[i] += amp.packets[b];
            p.reflector_bytes[i] += amp.bytes[b];
            p.reflector_first_fragments[i] += amp.first_frags[b];
            // First-fragment bytes are not split out per bucket; attribute proportionally.
            let ffb = if amp.packets[b] == 0 {
                0
            } else {
                u64::try_from(
                    u128::from(amp.bytes[b]) * u128::from(amp.first_frags[b])
                        / u128::from(amp.packets[b]),
                )
                .unwrap_or(0)
            };
            p.reflector_first_fragment_bytes[i] += ffb;
            p.first_fragments += amp.first_frags[b];
            p.first_fragment_bytes += ffb;
        }
    }
    // The per-tick counters know the first fragments of reflector flows but not those of
    // other datagrams. Reflected answers split into at most `MAX_LATER_PER_FIRST` later
    // fragments each; fragment traffic beyond that is other datagrams, taken to be split in
    // two (a first and a later fragment), so it is not attributed to the reflectors.
    let frag = counters.get(Direction::In, TrafficClass::Fragment);
    let attributable = p.first_fragments.saturating_mul(1 + MAX_LATER_PER_FIRST);
    let other = frag.packets.saturating_sub(attributable);
    if other > 0 {
        let other_first = other / 2;
        let mean = frag.bytes.checked_div(frag.packets).unwrap_or(0);
        p.first_fragments += other_first;
        p.first_fragment_bytes += other_first.saturating_mul(mean);
    }
    p
}

/// Later fragments one reflected answer is assumed to have at most (answers of up to ~6 kB at
/// a 1500-byte MTU).
const MAX_LATER_PER_FIRST: u64 = 3;

/// The reflector-table index standing for amplification bucket `b`.
fn bucket_reflector(b: usize) -> Option<usize> {
    const PORTS: [u16; AMP_BUCKETS] = [53, 123, 11211, 1900, 389, 161, 19, 17];
    PORTS
        .get(b)
        .and_then(|&p| reflector_index(p))
        .map(usize::from)
}

/// Keeps only the attack classes of `p` (bits of `mask` by class index).
fn restrict(p: &AttackProfile, mask: u16) -> AttackProfile {
    let class_mask = mask & ((1 << TrafficClass::COUNT) - 1);
    if class_mask == 0 {
        return p.clone();
    }
    let mut q = p.clone();
    let has = |c: TrafficClass| class_mask & (1 << c.index()) != 0;
    for c in TrafficClass::ALL {
        if !has(c) {
            q.classes[c.index()] = 0;
            q.class_bytes[c.index()] = 0;
        }
    }
    if !has(TrafficClass::Udp) {
        // Only the first fragments remain of the reflector counts.
        q.reflector_packets = q.reflector_first_fragments;
        q.reflector_bytes = q.reflector_first_fragment_bytes;
    }
    if !has(TrafficClass::Fragment) {
        for i in 0..q.reflector_packets.len() {
            q.reflector_packets[i] =
                q.reflector_packets[i].saturating_sub(q.reflector_first_fragments[i]);
            q.reflector_bytes[i] =
                q.reflector_bytes[i].saturating_sub(q.reflector_first_fragment_bytes[i]);
        }
        q.reflector_first_fragments = [0; N_REFLECTORS];
        q.reflector_first_fragment_bytes = [0; N_REFLECTORS];
        q.first_fragments = 0;
        q.first_fragment_bytes = 0;
    }
    q
}

/// Per-target source statistics of the tick, for the watched targets.
fn watched_of<'a>(tick: &ClosedTick<'a>) -> HashMap<IpAddr, &'a SourceStats> {
    tick.watched().map(|(_, ip, s)| (ip, s)).collect()
}

fn mask_of(ex: Exceeded) -> u16 {
    ex.pps | ex.bps
}

impl Detector {
    /// A detector with fresh baselines.
    pub fn new(cfg: DetectorConfig) -> Self {
        let policies = if cfg.groups.is_empty() {
            vec![BaselineParams::default().policy()]
        } else {
            cfg.groups.iter().map(|g| g.baseline.policy()).collect()
        };
        Detector {
            cfg,
            policies,
            baselines: BaselineStore::new(),
            pending: HashMap::new(),
            open: BTreeMap::new(),
            near: Vec::new(),
            next_id: 1,
            closed: Vec::new(),
            open_nets: BTreeMap::new(),
            pending_nets: HashMap::new(),
            refused_net_incidents: 0,
            preload: HashMap::new(),
            parked: HashMap::new(),
            parked_order: VecDeque::new(),
            parked_seq: 0,
            last_tick_end_ns: None,
        }
    }

    /// Incidents currently open.
    pub fn open_incidents(&self) -> usize {
        self.open.len() + self.open_nets.len()
    }

    /// Closed incidents, in order of closing.
    pub fn closed(&self) -> &[IncidentSummary] {
        &self.closed
    }

    /// Baselines in the store.
    pub fn baselines(&self) -> &BaselineStore {
        &self.baselines
    }

    /// The targets whose source analysis is wanted in the next tick: open incidents, IPs over
    /// a threshold (pending) and IPs over half of one, in ascending order.
    ///
    /// At most [`MAX_WATCHED`] targets, so that the per-packet source analysis stays bounded
    /// in time and memory even when hundreds of addresses are attacked at once: open incidents
    /// first, then the others, each by their last tick's packet rate (ties by address).
    pub fn watch_list(&self) -> Vec<IpAddr> {
        let mut v: Vec<(bool, u64, IpAddr)> = self
            .open
            .values()
            .map(|i| (false, i.last_pps, i.target))
            .chain(self.near.iter().map(|&(packets, ip)| (true, packets, ip)))
            .collect();
        v.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)).then(a.2.cmp(&b.2)));
        let mut ips: Vec<IpAddr> = Vec::with_capacity(v.len().min(MAX_WATCHED));
        for (_, _, ip) in v {
            if ips.len() >= MAX_WATCHED {
                break;
            }
            if !ips.contains(&ip) {
                ips.push(ip);
            }
        }
        ips.sort_unstable();
        ips
    }

    /// Processes one closed tick; `idle_after` empty ticks follow it. Events are appended to
    /// `out` in a deterministic order.
    pub fn on_tick(
        &mut self,
        tick: &ClosedTick<'_>,
        idle_after: u64,
        out: &mut Vec<IncidentEvent>,
    ) {
        let tick_ns = self.cfg.tick_ns.max(1);
        let start = tick.tick_start_ns;
        let end = start.saturating_add(tick_ns);
        self.baselines.set_now_tick(start / tick_ns);
        self.near.clear();
        self.park_evicted(tick);
        let watched: HashMap<IpAddr, &SourceStats> = watched_of(tick);
        let mut seen_open: Vec<IpId> = Vec::new();
        #[allow(clippy::type_complexity)]
        let mut to_open: Vec<(
            IpId,
            IpAddr,
            GroupId,
            Pending,
            Exceeded,
            Rates,
            IpCounters,
            Option<&AmpCounters>,
        )> = Vec::new();
        // Incidents open and close only after the loop.
        let any_open = !self.open.is_empty();
        let per_sec = 1e9 / tick_ns as f64;

        let floors: Vec<Rates> = self.policies.iter().map(|p| p.floor()).collect();
        // Counts per tick at or above which an address may be near a threshold: thresholds
        // are never below the floors and a class's rate never above the total's, so under
        // half of the floors (with a margin for quantization) nothing is near.
        let near_counts: Vec<(u64, u64)> = floors
            .iter()
            .map(|f| {
                let per_tick = |r: f64| ((0.49 * r - 0.125) / per_sec).max(0.0).floor() as u64;
                (per_tick(f.pps), per_tick(f.bps / 8.0))
            })
            .collect();
        // Per-tick counts under which a sample is quiet (cannot raise a threshold).
        let quiet: Vec<(u64, u64)> = self
            .policies
            .iter()
            .map(|p| p.quiet_counts(tick_ns))
            .collect();
        let mut sample = TickSample::new(tick_ns);
        tick.for_each_cells(|ipc| {
            let (id, group) = (ipc.id, ipc.group);
            // The sketches are heap blocks: fetch one a few ids ahead (ids come in order).
            self.baselines.prefetch(id.0 + 16);
            let gi = group.index().min(self.policies.len().saturating_sub(1));
            let policy = self.policies.get(gi).copied().unwrap_or_default();
            let (near_packets, near_bytes) = near_counts.get(gi).copied().unwrap_or_default();
            let record = || tick.record(id);
            if (!self.preload.is_empty() || !self.parked.is_empty())
                && self.baselines.get(id.0).is_none()
            {
                let found = record().map(|r| r.ip).and_then(|k| {
                    let parked = self.parked.remove(&k).map(|(_, b)| b);
                    parked.or_else(|| self.preload.remove(&k))
                });
                if let Some(mut b) = found {
                    // Loaded with the first policy of its shape: its group's may differ in
                    // multiplier and floors (another shape is reset by the first sample).
                    if b.shape == policy.shape {
                        b.recompute(&policy);
                    }
                    self.baselines.restore(id.0, b);
                }
            }
            ipc.inbound_into(&mut sample.classes);
            let total = sample.total();
            let maybe_near = total.packets >= near_packets || total.bytes >= near_bytes;
            let in_incident = any_open && self.open.contains_key(&id);
            // A quiet sample of a known IP outside an incident is under every threshold,
            // near none, and learned exactly like an idle tick: the store applies it lazily
            // with the IP's next loud sample (or when settling). Most IPs, most ticks.
            let (quiet_packets, quiet_bytes) = quiet.get(gi).copied().unwrap_or_default();
            if !maybe_near
                && !in_incident
                && total.packets < quiet_packets
                && total.bytes < quiet_bytes
                && self.baselines.contains(id.0)
            {
                if !self.pending.is_empty() {
                    self.pending.remove(&id);
                }
                return;
            }
            // The thresholds in force before this sample is learned, only when needed.
            let mut th: Option<Thresholds> = None;
            let ex = self
                .baselines
                .check_and_observe_with(id.0, &policy, &sample, |b, ex| {
                    if ex.any() || (maybe_near && !in_incident) {
                        th = Some(b.thresholds(&policy));
                    }
                    !in_incident && !ex.any()
                });
            if in_incident {
                let ip = record().map_or(IpAddr::from([0, 0, 0, 0]), |r| r.ip.ip());
                if let Some(inc) = self.open.get_mut(&id) {
                    seen_open.push(id);
                    let counters = ipc.counters();
                    inc.absorb(
                        start,
                        tick_ns,
                        &counters,
                        ipc.amp(),
                        watched.get(&ip).copied(),
                    );
                    inc.last_pps = rate(total.packets, tick_ns);
                    inc.last_bps = rate(total.bytes.saturating_mul(8), tick_ns);
                    if ex.any() {
                        inc.under_ticks = 0;
                        inc.over_mask |= mask_of(ex);
                    } else {
                        inc.under_ticks += 1;
                    }
                }
                return;
            }
            if ex.any() {
                let start_ticks = self
                    .cfg
                    .groups
                    .get(group.index())
                    .or(self.cfg.groups.last())
                    .map_or(GroupDetection::default().start_ticks, |g| g.start_ticks);
                let ip = record().map_or(IpAddr::from([0, 0, 0, 0]), |r| r.ip.ip());
                let p = self.pending.entry(id).or_insert(Pending {
                    over_ticks: 0,
                    first_over_ns: start,
                });
                p.over_ticks += 1;
                let p = *p;
                if p.over_ticks >= start_ticks.max(1) {
                    self.pending.remove(&id);
                    let threshold = th.map_or_else(Rates::default, |t| t.total);
                    let counters = ipc.counters();
                    to_open.push((id, ip, group, p, ex, threshold, counters, ipc.amp()));
                } else {
                    self.near.push((total.packets, ip));
                }
            } else {
                if !self.pending.is_empty() {
                    self.pending.remove(&id);
                }
                if th.is_some_and(|th| near_threshold(&th, &sample, 0.5)) {
                    if let Some(r) = record() {
                        self.near.push((total.packets, r.ip.ip()));
                    }
                }
            }
        });

        // Targets of new incidents that nobody watched: their sources come from the onset
        // sample (one pass over it, only when there is such a target).
        let mut onset: HashMap<IpAddr, SourceStats> = to_open
            .iter()
            .filter(|t| !watched.contains_key(&t.1))
            .map(|t| (t.1, SourceStats::with_cap(WATCH_SOURCE_CAP)))
            .collect();
        if !onset.is_empty() {
            for s in tick.onset_samples() {
                if let Some(st) = onset.get_mut(&s.dst) {
                    st.record(s);
                }
            }
        }

        // Open new incidents (ascending IpId: `iter_with_amp` yields in id order).
        for (id, ip, group, p, ex, threshold, counters, amp) in to_open {
            let mut inc = Incident {
                id: self.next_id,
                target: ip,
                prefix_len: None,
                group,
                onset_ns: p.first_over_ns,
                last_event_ns: end,
                under_ticks: 0,
                over_mask: mask_of(ex),
                threshold,
                profile: AttackProfile::default(),
                sources: SourceStats::with_cap(WATCH_SOURCE_CAP),
                watched_ns: 0,
                onset: onset.remove(&ip).filter(|s| s.packets() > 0),
                timeline: Vec::new(),
                last_pps: 0,
                last_bps: 0,
                peak_pps: 0,
                peak_bps: 0,
                packets: 0,
                bytes: 0,
            };
            self.next_id += 1;
            inc.absorb(start, tick_ns, &counters, amp, watched.get(&ip).copied());
            let t = counters.total(Direction::In);
            inc.last_pps = rate(t.packets, tick_ns);
            inc.last_bps = rate(t.bytes.saturating_mul(8), tick_ns);
            inc.peak_pps = inc.peak_pps.max(inc.last_pps);
            inc.peak_bps = inc.peak_bps.max(inc.last_bps);
            out.push(inc.event(EventKind::Start, end, self.cfg.top_n, tick_ns));
            seen_open.push(id);
            self.open.insert(id, inc);
        }

        // Open incidents without traffic this tick: an idle tick under every threshold.
        let span = TickSpan {
            start,
            end,
            tick_ns,
            idle_after,
        };
        advance_open(
            &mut self.open,
            &seen_open,
            &self.cfg,
            span,
            &mut self.closed,
            out,
        );
        self.on_untracked(tick, span, out);
        if idle_after > 0 {
            self.pending.clear();
            self.pending_nets.clear();
            self.near.clear();
        }
        self.baselines.end_tick();
        self.last_tick_end_ns = Some(end.saturating_add(idle_after.saturating_mul(tick_ns)));
    }

    fn close(&mut self, id: IpId, ev: IncidentEvent, out: &mut Vec<IncidentEvent>) {
        if let Some(inc) = self.open.remove(&id) {
            close_incident(inc, ev, &mut self.closed, out);
        }
    }

    /// Incidents on the untracked traffic of networks (see [`ClosedTick::untracked`]): an
    /// aggregate over its group's static thresholds for `start_ticks` ticks opens one (at
    /// most [`MAX_NET_INCIDENTS`] at once), under them for `end_ticks` ends it. The sources
    /// come from the onset tick's sample.
    fn on_untracked(
        &mut self,
        tick: &ClosedTick<'_>,
        span: TickSpan,
        out: &mut Vec<IncidentEvent>,
    ) {
        let TickSpan {
            start,
            end,
            tick_ns,
            ..
        } = span;
        let mut seen: Vec<IpNet> = Vec::new();
        let mut over_now: Vec<IpNet> = Vec::new();
        let mut to_open: Vec<(IpNet, GroupId, Pending, Rates, IpCounters)> = Vec::new();
        for agg in tick.untracked() {
            let gcfg = group_cfg(&self.cfg, agg.group);
            let th = gcfg.baseline.policy().warmup_thresholds();
            let mut c = IpCounters::ZERO;
            for (into, from) in c.by_dir[Direction::In.index()].iter_mut().zip(&agg.classes) {
                *into = *from;
            }
            let t = agg.total();
            let (pps, bps) = (
                rate(t.packets, tick_ns),
                rate(t.bytes.saturating_mul(8), tick_ns),
            );
            let over = pps as f64 >= th.pps || bps as f64 >= th.bps;
            if let Some(inc) = self.open_nets.get_mut(&agg.net) {
                seen.push(agg.net);
                inc.absorb(start, tick_ns, &c, None, None);
                inc.last_pps = pps;
                inc.last_bps = bps;
                if over {
                    inc.under_ticks = 0;
                    inc.over_mask |= 1 << 9;
                } else {
                    inc.under_ticks += 1;
                }
                continue;
            }
            if !over {
                continue;
            }
            over_now.push(agg.net);
            let p = self.pending_nets.entry(agg.net).or_insert(Pending {
                over_ticks: 0,
                first_over_ns: start,
            });
            p.over_ticks += 1;
            let p = *p;
            if p.over_ticks >= gcfg.start_ticks.max(1) {
                to_open.push((agg.net, agg.group, p, th, c));
            }
        }
        // A network under its thresholds (or without untracked traffic) starts over.
        self.pending_nets.retain(|n, _| over_now.contains(n));
        let mut onset: HashMap<IpNet, SourceStats> = HashMap::new();
        for (net, ..) in &to_open {
            onset.insert(*net, SourceStats::with_cap(WATCH_SOURCE_CAP));
        }
        if !onset.is_empty() {
            for smp in tick.onset_samples() {
                for (net, st) in onset.iter_mut() {
                    if net.contains(&smp.dst) {
                        st.record(smp);
                    }
                }
            }
        }
        for (net, group, p, threshold, c) in to_open {
            self.pending_nets.remove(&net);
            if self.open_nets.len() >= MAX_NET_INCIDENTS {
                self.refused_net_incidents += 1;
                continue;
            }
            let t = c.total(Direction::In);
            let mut inc = Incident {
                id: self.next_id,
                target: net.network(),
                prefix_len: Some(net.prefix_len()),
                group,
                onset_ns: p.first_over_ns,
                last_event_ns: end,
                under_ticks: 0,
                over_mask: 1 << 9,
                threshold,
                profile: AttackProfile::default(),
                sources: SourceStats::with_cap(WATCH_SOURCE_CAP),
                watched_ns: 0,
                onset: onset.remove(&net).filter(|s| s.packets() > 0),
                timeline: Vec::new(),
                last_pps: rate(t.packets, tick_ns),
                last_bps: rate(t.bytes.saturating_mul(8), tick_ns),
                peak_pps: 0,
                peak_bps: 0,
                packets: 0,
                bytes: 0,
            };
            self.next_id += 1;
            inc.absorb(start, tick_ns, &c, None, None);
            inc.peak_pps = inc.last_pps;
            inc.peak_bps = inc.last_bps;
            out.push(inc.event(EventKind::Start, end, self.cfg.top_n, tick_ns));
            seen.push(net);
            self.open_nets.insert(net, inc);
        }
        advance_open(
            &mut self.open_nets,
            &seen,
            &self.cfg,
            span,
            &mut self.closed,
            out,
        );
    }

    /// Network incidents refused because [`MAX_NET_INCIDENTS`] were open.
    pub fn refused_net_incidents(&self) -> u64 {
        self.refused_net_incidents
    }

    /// Ends every open incident at the end of the input (`now_ns`: the end of the last tick).
    pub fn finish(&mut self, out: &mut Vec<IncidentEvent>) {
        let now = self.last_tick_end_ns.unwrap_or(0);
        let tick_ns = self.cfg.tick_ns.max(1);
        let nets: Vec<IpNet> = self.open_nets.keys().copied().collect();
        for net in nets {
            if let Some(inc) = self.open_nets.remove(&net) {
                let ev = inc.event(EventKind::End, now, self.cfg.top_n, tick_ns);
                close_incident(inc, ev, &mut self.closed, out);
            }
        }
        let ids: Vec<IpId> = self.open.keys().copied().collect();
        for id in ids {
            if let Some(inc) = self.open.get(&id) {
                let ev = inc.event(EventKind::End, now, self.cfg.top_n, tick_ns);
                self.close(id, ev, out);
            }
        }
    }

    /// The addresses the accounting must keep tracking (see `NextTick::keep`): the targets
    /// of open and pending incidents.
    pub fn keep_list(&self) -> Vec<IpId> {
        let mut v: Vec<IpId> = self
            .open
            .keys()
            .chain(self.pending.keys())
            .copied()
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// What the accounting needs for the next tick: the watch list and the keep list.
    pub fn next_tick(&self) -> NextTick {
        NextTick {
            watch: Some(self.watch_list()),
            keep: Some(self.keep_list()),
            monitor: None,
        }
    }

    /// Moves the baselines of the addresses evicted at this tick's boundary out of their ids
    /// (which other addresses may take) into the preload map, where a re-admitted address
    /// finds its own again; at most `max_parked_baselines` of them, the oldest dropped first.
    fn park_evicted(&mut self, tick: &ClosedTick<'_>) {
        for &(id, key, group) in tick.evicted() {
            self.pending.remove(&id);
            let gi = group.index().min(self.policies.len().saturating_sub(1));
            let Some(policy) = self.policies.get(gi).copied() else {
                continue;
            };
            self.baselines.settle(id.0, &policy);
            let Some(b) = self.baselines.remove(id.0) else {
                continue;
            };
            if self.cfg.max_parked_baselines == 0 {
                continue;
            }
            self.parked_seq += 1;
            self.parked.insert(key, (self.parked_seq, b));
            self.parked_order.push_back((key, self.parked_seq));
            while self.parked.len() > self.cfg.max_parked_baselines
                || self.parked_order.len() > 2 * self.cfg.max_parked_baselines
            {
                let Some((old, seq)) = self.parked_order.pop_front() else {
                    break;
                };
                if self.parked.get(&old).is_some_and(|e| e.0 == seq) {
                    self.parked.remove(&old);
                }
            }
        }
    }

    /// Adds baselines loaded from a file; each is attached to its IP when the IP is first seen.
    pub fn preload(&mut self, entries: impl IntoIterator<Item = (IpAddr, IpBaseline)>) {
        for (ip, b) in entries {
            self.preload.insert(IpKey::from(ip), b);
        }
    }

    /// Serialises every baseline (after applying pending idle ticks), with the addresses of
    /// `acct`, plus those preloaded but not yet seen.
    pub fn encode_baselines(&mut self, acct: &Accounting) -> Vec<u8> {
        let policies = self.policies.clone();
        self.baselines.settle_all(|id| {
            let g = acct.record(IpId(id)).map(|r| r.group.index()).unwrap_or(0);
            policies.get(g).or(policies.last()).unwrap_or(&policies[0])
        });
        let mut entries: Vec<(IpAddr, &IpBaseline)> = acct
            .records()
            .filter_map(|(id, r)| self.baselines.get(id.0).map(|b| (r.ip.ip(), b)))
            .collect();
        entries.extend(self.preload.iter().map(|(k, b)| (k.ip(), b)));
        entries.extend(
            self.parked
                .iter()
                .filter(|(k, _)| !self.preload.contains_key(*k))
                .map(|(k, (_, b))| (k.ip(), b)),
        );
        entries.sort_by_key(|e| e.0);
        // Every group's baselines, whatever its sketch shape (version 2 when they differ).
        crate::baseline::encode_baselines_for(
            entries.iter().copied(),
            &self.policies,
            self.baselines.now_tick(),
        )
    }

    /// Loads baselines from bytes written by [`Self::encode_baselines`]: how many, and how
    /// many were left out for a sketch shape no group has any more.
    pub fn load_baselines(&mut self, bytes: &[u8]) -> Result<LoadedBaselines, BaselineFileError> {
        let file = crate::baseline::decode_baselines_for(bytes, &self.policies)?;
        let loaded = LoadedBaselines {
            loaded: file.entries.len(),
            dropped: file.dropped,
        };
        self.preload(file.entries);
        Ok(loaded)
    }
}

impl Incident {
    fn push_timeline(&mut self, p: TimelinePoint) {
        if self.timeline.len() >= MAX_TIMELINE {
            self.timeline.remove(0);
        }
        self.timeline.push(p);
    }

    fn absorb(
        &mut self,
        start: u64,
        tick_ns: u64,
        c: &IpCounters,
        amp: Option<&AmpCounters>,
        src: Option<&SourceStats>,
    ) {
        self.profile.add(&profile_of(c, amp));
        let t = c.total(Direction::In);
        self.packets += t.packets;
        self.bytes += t.bytes;
        self.push_timeline(TimelinePoint {
            tick_start_ns: start,
            packets: t.packets,
            bytes: t.bytes,
        });
        if let Some(s) = src {
            self.sources.merge(s);
            self.watched_ns += tick_ns;
            self.onset = None;
        }
    }

    fn classification(&self) -> Classification {
        classify(&restrict(&self.profile, self.over_mask))
    }

    fn event(&self, kind: EventKind, ts_ns: u64, top_n: usize, tick_ns: u64) -> IncidentEvent {
        let cls = self.classification();
        // Watched sources when there are any; else the onset tick's sample, its counts scaled
        // up by the sampling rate.
        let (sources, scale, over_ns) = match &self.onset {
            Some(o) if self.watched_ns == 0 => (o, ONSET_SAMPLE_RATE, tick_ns),
            _ => (&self.sources, 1, self.watched_ns),
        };
        let est = |n: u64| n.saturating_mul(scale);
        let per_sec = |n: u64| rate(est(n), over_ns);
        let lengths = sources.lengths();
        let ttl = sources.ttl_histogram();
        let min_ttl = ttl.iter().position(|&n| n > 0).unwrap_or(0) as u8;
        let max_ttl = ttl.iter().rposition(|&n| n > 0).unwrap_or(0) as u8;
        let over_classes = TrafficClass::ALL
            .into_iter()
            .filter(|c| self.over_mask & (1 << c.index()) != 0)
            .collect();
        IncidentEvent {
            kind,
            incident_id: self.id,
            target: self.target,
            prefix_len: self.prefix_len,
            group: self.group,
            family: cls.family,
            vectors: cls.vectors,
            confidence: cls.confidence,
            ts_ns,
            onset_ns: self.onset_ns,
            pps: self.last_pps,
            bps: self.last_bps,
            peak_pps: self.peak_pps.max(self.last_pps),
            peak_bps: self.peak_bps.max(self.last_bps),
            packets: self.packets,
            bytes: self.bytes,
            over_classes,
            threshold: self.threshold,
            unique_sources: sources.unique_sources(),
            spoofed: sources.spoofed_verdict().spoofed,
            top_sources: sources
                .top_sources(top_n)
                .into_iter()
                .map(|(ip, n)| (ip, per_sec(n), est(n)))
                .collect(),
            top_dst_ports: sources
                .top_dst_ports(top_n)
                .into_iter()
                .map(|(p, n)| (p, per_sec(n), est(n)))
                .collect(),
            top_src_ports: sources
                .top_src_ports(top_n)
                .into_iter()
                .map(|(p, n)| (p, per_sec(n), est(n)))
                .collect(),
            lengths: LENGTH_BUCKETS
                .iter()
                .copied()
                .zip(lengths.buckets.iter().map(|&n| est(n)))
                .collect(),
            mean_length: lengths.mean() as u64,
            distinct_ttls: sources.distinct_ttls(),
            ttl_range: (min_ttl, max_ttl),
            timeline: if kind == EventKind::End {
                self.timeline.clone()
            } else {
                Vec::new()
            },
        }
    }
}
