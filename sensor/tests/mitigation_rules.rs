//! The mitigation rules of the labelled captures' incidents, checked against the generator's
//! own bookkeeping of which frame is attack and which is normal traffic: the rules the policy
//! derives from an incident's fingerprint cover the attack (95 % of its frames), and match
//! no normal frame to the target that a narrower rule of the same fields could leave out (a
//! legitimate pure ACK to port 443 looks like an ACK flood's to every router).

use std::collections::BTreeSet;
use std::sync::Arc;

use surgewatch_detect::baseline::BaselineParams;
use surgewatch_detect::{Detector, DetectorConfig, EventKind, GroupDetection, IncidentEvent};
use surgewatch_mitigate::{rules_for, Ladder, LevelAction, Rule};
use surgewatch_pcaps::{captures_dir, catalogue, generate};
use surgewatch_per_ip::{ClosedTick, GroupId, Monitor, NextTick, PrefixTable, TickLength};
use surgewatch_pipeline::{parse, Fragment, LinkType, PacketSummary};
use surgewatch_sensor::replay::{open_all, replay, ReplayConfig};
use surgewatch_sensor::tick::{TickInfo, TickObserver};

const TICK_NS: u64 = 1_000_000_000;

struct Watch {
    detector: Detector,
    events: Vec<IncidentEvent>,
}

impl TickObserver for Watch {
    fn on_tick(&mut self, tick: &ClosedTick<'_>, info: &TickInfo<'_>) -> NextTick {
        self.detector
            .on_tick(tick, info.idle_after, &mut self.events);
        self.detector.next_tick()
    }
}

/// The events of a replay with the quick threshold of the detection tests (1000 pps).
fn events(file: &str, monitor: &[String]) -> Vec<IncidentEvent> {
    let path = captures_dir().join(file);
    let table: Vec<_> = monitor
        .iter()
        .map(|m| (m.parse::<ipnet::IpNet>().expect("cidr"), GroupId(0)))
        .collect();
    let cfg = ReplayConfig {
        files: vec![path.clone()],
        monitor: Arc::new(Monitor::prefixes(PrefixTable::new(table).expect("table"))),
        tick: TickLength::from_nanos(TICK_NS).expect("tick"),
        workers: 1,
        parse: Default::default(),
        stop: None,
    };
    let baseline = BaselineParams {
        static_pps: 1000,
        floor_pps: 1000,
        static_bps: u64::MAX / 2,
        floor_bps: u64::MAX / 2,
        ..BaselineParams::default()
    };
    let group = GroupDetection {
        baseline,
        ..GroupDetection::default()
    };
    let mut obs = Watch {
        detector: Detector::new(DetectorConfig::single(group, TICK_NS)),
        events: Vec::new(),
    };
    let out = replay(&cfg, open_all(&[path]).expect("open"), &mut obs);
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    obs.detector.finish(&mut obs.events);
    obs.events
}

/// What a FlowSpec rule of the policy's fields can tell frames to one target apart by:
/// protocol, TCP flags and fragment or not, and the source and destination ports when the
/// attack's are few enough for a rule to list them (`ports`: whether they are).
fn signature(s: &PacketSummary, ports: (bool, bool)) -> (u8, u8, bool, u16, u16) {
    (
        s.protocol,
        s.tcp_flags,
        s.frag != Fragment::None,
        if ports.0 { s.src_port } else { 0 },
        if ports.1 { s.dst_port } else { 0 },
    )
}

/// Whether a FlowSpec rule matches a frame, as a router would.
fn matches(rule: &Rule, s: &PacketSummary) -> bool {
    let any_or = |list: &[u16], v: u16| list.is_empty() || (s.has_l4 && list.contains(&v));
    rule.destination.contains(&s.dst)
        && (rule.protocols.is_empty() || rule.protocols.contains(&s.protocol))
        && any_or(&rule.source_ports, s.src_port)
        && any_or(&rule.destination_ports, s.dst_port)
        && rule
            .tcp_flags
            .is_none_or(|f| s.tcp_flags & f.set == f.set && s.tcp_flags & f.unset == 0)
        && rule
            .packet_length
            .is_none_or(|(lo, hi)| (u32::from(lo)..=u32::from(hi)).contains(&s.ip_len))
        && (!rule.fragment || s.frag != Fragment::None)
}

#[test]
fn rules_from_the_labelled_attacks_match_no_normal_traffic_and_cover_the_attack() {
    let mut checked = 0;
    for spec in catalogue() {
        let generated = generate(&spec);
        let exp = &generated.expected;
        if exp.attacks.is_empty() {
            continue;
        }
        let evs = events(&spec.file_name, &exp.monitor);
        for (i, attack) in exp.attacks.iter().enumerate() {
            // The last event before the end: exact source analysis, the whole fingerprint.
            let Some(ev) = evs
                .iter()
                .rev()
                .find(|e| e.target == attack.target && e.kind != EventKind::End)
            else {
                panic!("{}: no incident on {}", spec.name, attack.target);
            };
            let rules = rules_for(ev, 2, LevelAction::FlowspecDiscard, &Ladder::default());
            assert!(!rules.is_empty(), "{}", spec.name);
            for r in &rules {
                let narrowed = !r.protocols.is_empty() || r.fragment;
                assert!(
                    narrowed,
                    "{}: a rule narrower than the destination: {r:?}",
                    spec.name
                );
            }
            let (mut attack_frames, mut covered, mut normal_hit) = (0u64, 0u64, 0u64);
            let mut normal_frames = 0u64;
            let frames: Vec<(PacketSummary, bool)> = generated
                .records
                .iter()
                .map(|rec| {
                    let s = parse(LinkType::Ethernet, &rec.data, rec.orig_len);
                    (s, rec.attack == Some(i))
                })
                .filter(|(s, _)| s.dst == attack.target)
                .collect();
            let distinct = |port: fn(&PacketSummary) -> u16| {
                frames
                    .iter()
                    .filter(|(_, a)| *a)
                    .map(|(s, _)| port(s))
                    .collect::<BTreeSet<u16>>()
                    .len()
            };
            let ports = (
                distinct(|s| s.src_port) <= surgewatch_mitigate::MAX_SOURCE_PORTS,
                distinct(|s| s.dst_port) <= surgewatch_mitigate::MAX_DESTINATION_PORTS,
            );
            let attack_sigs: BTreeSet<_> = frames
                .iter()
                .filter(|(_, a)| *a)
                .map(|(s, _)| signature(s, ports))
                .collect();
            let mut inseparable = 0u64;
            for (s, is_attack) in &frames {
                let hit = rules.iter().any(|r| matches(r, s));
                if *is_attack {
                    attack_frames += 1;
                    covered += u64::from(hit);
                } else {
                    normal_frames += 1;
                    if hit {
                        normal_hit += 1;
                        // No narrower rule of the same fields could leave it out.
                        inseparable += u64::from(attack_sigs.contains(&signature(s, ports)));
                    }
                }
            }
            eprintln!(
                "{}: attack {covered}/{attack_frames} covered, normal {normal_hit}/{normal_frames} matched",
                spec.name
            );
            assert_eq!(
                normal_hit, inseparable,
                "{}: the rules {rules:#?} match normal traffic to {} that a narrower rule would leave out",
                spec.name, attack.target
            );
            assert!(
                covered * 100 >= attack_frames * 95,
                "{}: the rules cover {covered} of {attack_frames} attack frames: {rules:#?}",
                spec.name
            );
            checked += 1;
        }
    }
    assert!(checked >= 10, "{checked} attacks checked");
}
