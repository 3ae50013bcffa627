//! The policy driven tick by tick with synthetic incident events.

use std::net::IpAddr;

use surgewatch_detect::baseline::Rates;
use surgewatch_detect::{EventKind, Family, IncidentEvent};
use surgewatch_per_ip::GroupId;
use surgewatch_pipeline::TrafficClass;

use super::*;

const S: u64 = 1_000_000_000;
const MS: u64 = 1_000_000;
const MBPS: u64 = 1_000_000;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn cfg() -> PolicyConfig {
    PolicyConfig {
        monitored: vec![
            "203.0.113.0/24".parse().unwrap(),
            "2001:db8::/32".parse().unwrap(),
        ],
        ..PolicyConfig::default()
    }
}

/// A SYN flood on 203.0.113.10:80 at `mbps`.
fn ev(kind: EventKind, id: u64, target: &str, mbps: u64) -> IncidentEvent {
    IncidentEvent {
        kind,
        incident_id: id,
        target: ip(target),
        prefix_len: None,
        group: GroupId(0),
        family: Family::SynFlood,
        vectors: vec![Family::SynFlood],
        confidence: 90,
        ts_ns: 0,
        onset_ns: 0,
        pps: mbps * 2_000,
        bps: mbps * MBPS,
        peak_pps: 0,
        peak_bps: 0,
        packets: 0,
        bytes: 0,
        over_classes: vec![TrafficClass::Syn],
        threshold: Rates {
            pps: 1_000.0,
            bps: 20e6,
        },
        unique_sources: 1000,
        spoofed: true,
        top_sources: Vec::new(),
        top_dst_ports: vec![(80, 1000, 9_900), (443, 1, 100)],
        top_src_ports: Vec::new(),
        lengths: vec![
            ("0-63", 9_000),
            ("64-127", 1_000),
            ("128-255", 0),
            ("256-511", 0),
            ("512-1023", 0),
            ("1024-1499", 0),
            ("1500+", 0),
        ],
        mean_length: 60,
        distinct_ttls: 3,
        ttl_range: (50, 60),
        timeline: Vec::new(),
    }
}

fn start(id: u64, target: &str, mbps: u64) -> IncidentEvent {
    ev(EventKind::Start, id, target, mbps)
}
fn update(id: u64, target: &str, mbps: u64) -> IncidentEvent {
    ev(EventKind::Update, id, target, mbps)
}
fn end(id: u64, target: &str) -> IncidentEvent {
    ev(EventKind::End, id, target, 0)
}

fn drain(p: &mut Policy) -> Vec<Action> {
    std::iter::from_fn(|| p.poll_action()).collect()
}

/// Short description of each action: (op, kind, level).
fn ops(actions: &[Action]) -> Vec<(Op, Kind, u8)> {
    actions
        .iter()
        .map(|a| (a.op, a.rule.kind, a.rule.level))
        .collect()
}

/// Runs timeouts up to `until`, collecting the actions.
fn run_until(p: &mut Policy, until: u64) -> Vec<Action> {
    let mut out = Vec::new();
    while let Some(t) = p.poll_timeout() {
        if t > until {
            break;
        }
        p.handle_timeout(t);
        out.extend(drain(p));
    }
    p.handle_timeout(until);
    out.extend(drain(p));
    out
}

const T: &str = "203.0.113.10";

#[test]
fn escalation_is_immediate_and_announces_before_withdrawing() {
    let mut p = Policy::new(cfg());
    p.handle_event(0, &start(1, T, 50));
    assert!(drain(&mut p).is_empty(), "below level 1: nothing");
    p.handle_event(S, &update(1, T, 150));
    let a = drain(&mut p);
    assert_eq!(ops(&a), vec![(Op::Announce, Kind::Flowspec, 1)]);
    assert_eq!(a[0].rule.then, Then::RateLimit { bps: 20 * MBPS });
    p.handle_event(2 * S, &update(1, T, 600));
    let a = drain(&mut p);
    assert_eq!(ops(&a), vec![(Op::Announce, Kind::Flowspec, 2)]);
    assert_eq!(a[0].rule.then, Then::Discard);
    p.handle_event(3 * S, &update(1, T, 2_500));
    let a = drain(&mut p);
    assert_eq!(
        ops(&a),
        vec![
            (Op::Announce, Kind::Rtbh, 3),
            (Op::Withdraw(WithdrawReason::Escalated), Kind::Flowspec, 2)
        ]
    );
    assert_eq!(a[0].rule.communities, vec![BLACKHOLE]);
    assert_eq!(a[0].rule.destination, "203.0.113.10/32".parse().unwrap());
    p.handle_event(4 * S, &update(1, T, 6_000));
    let a = drain(&mut p);
    assert_eq!(
        ops(&a),
        vec![
            (Op::Announce, Kind::Scrubbing, 4),
            (Op::Withdraw(WithdrawReason::Escalated), Kind::Rtbh, 3)
        ]
    );
    // Straight from nothing to level 3 on the first event.
    let mut p = Policy::new(cfg());
    p.handle_event(0, &start(1, T, 3_000));
    assert_eq!(ops(&drain(&mut p)), vec![(Op::Announce, Kind::Rtbh, 3)]);
}

#[test]
fn deescalation_waits_for_the_hold_down() {
    let mut p = Policy::new(cfg());
    p.handle_event(0, &start(1, T, 600));
    assert_eq!(ops(&drain(&mut p)), vec![(Op::Announce, Kind::Flowspec, 2)]);
    // Below level 2 (but over level 1) for 59 s: stays at level 2.
    for t in 1..60 {
        p.handle_event(t * S, &update(1, T, 200));
        assert!(drain(&mut p).is_empty(), "t={t}");
    }
    // A spike back over level 2 restarts the hold-down.
    p.handle_event(60 * S, &update(1, T, 700));
    assert!(drain(&mut p).is_empty());
    for t in 61..120 {
        p.handle_event(t * S, &update(1, T, 200));
        assert!(drain(&mut p).is_empty(), "t={t}");
    }
    p.handle_event(121 * S, &update(1, T, 200));
    let a = drain(&mut p);
    // Same match, other action: one announce replaces it.
    assert_eq!(ops(&a), vec![(Op::Announce, Kind::Flowspec, 1)]);
    assert!(matches!(a[0].rule.then, Then::RateLimit { .. }));
    assert_eq!(p.rules().count(), 1);
}

#[test]
fn deescalation_by_timer_without_events() {
    let mut p = Policy::new(cfg());
    p.handle_event(0, &start(1, T, 3_000));
    drain(&mut p);
    p.handle_event(S, &update(1, T, 150));
    assert_eq!(p.poll_timeout(), Some(61 * S));
    let a = run_until(&mut p, 61 * S);
    assert_eq!(
        ops(&a),
        vec![
            (Op::Announce, Kind::Flowspec, 1),
            (Op::Withdraw(WithdrawReason::Deescalated), Kind::Rtbh, 3)
        ]
    );
}

#[test]
fn end_then_hold_down_withdraws() {
    let mut p = Policy::new(cfg());
    p.handle_event(0, &start(1, T, 600));
    drain(&mut p);
    p.handle_event(10 * S, &end(1, T));
    assert!(drain(&mut p).is_empty());
    assert_eq!(p.poll_timeout(), Some(70 * S));
    assert!(run_until(&mut p, 70 * S - 1).is_empty());
    let a = run_until(&mut p, 70 * S);
    assert_eq!(
        ops(&a),
        vec![(Op::Withdraw(WithdrawReason::Ended), Kind::Flowspec, 2)]
    );
    assert!(p.is_idle());
    assert_eq!(p.incidents(), 0);
    assert_eq!(p.poll_timeout(), None);
}

#[test]
fn ttl_is_refreshed_while_events_arrive() {
    let mut p = Policy::new(cfg());
    p.handle_event(0, &start(1, T, 600));
    let a = drain(&mut p);
    assert_eq!(a[0].rule.expires_ns, 300 * S);
    let mut refreshes = Vec::new();
    for t in 1..=400 {
        p.handle_event(t * S, &update(1, T, 600));
        refreshes.extend(drain(&mut p));
    }
    assert_eq!(ops(&refreshes), vec![(Op::Refresh, Kind::Flowspec, 2); 2]);
    assert_eq!(refreshes[0].ts_ns, 150 * S);
    assert_eq!(refreshes[0].rule.expires_ns, 450 * S);
    assert_eq!(refreshes[1].ts_ns, 300 * S);
    assert_eq!(p.stats().refreshed, 2);
}

#[test]
fn a_stuck_incident_expires_after_a_ttl_without_events() {
    let mut p = Policy::new(cfg());
    p.handle_event(0, &start(1, T, 600));
    drain(&mut p);
    p.handle_event(10 * S, &update(1, T, 600));
    // No end event ever comes: a refresh at half the TTL (an event came since the announce),
    // then the withdraw a TTL after the last event.
    let a = run_until(&mut p, 1_000 * S);
    assert_eq!(
        ops(&a),
        vec![
            (Op::Refresh, Kind::Flowspec, 2),
            (Op::Withdraw(WithdrawReason::Expired), Kind::Flowspec, 2)
        ]
    );
    assert_eq!(a[0].ts_ns, 150 * S);
    assert_eq!(a[1].ts_ns, 310 * S);
    assert_eq!(p.stats().expired_incidents, 1);
    assert!(p.is_idle());
}

#[test]
fn global_cap_refuses_and_counts() {
    let mut p = Policy::new(PolicyConfig {
        max_rules: 2,
        ..cfg()
    });
    for (i, t) in ["203.0.113.1", "203.0.113.2", "203.0.113.3"]
        .iter()
        .enumerate()
    {
        p.handle_event(0, &start(i as u64 + 1, t, 3_000));
    }
    let a = drain(&mut p);
    assert_eq!(
        ops(&a),
        vec![
            (Op::Announce, Kind::Rtbh, 3),
            (Op::Announce, Kind::Rtbh, 3),
            (Op::Refused(RefuseReason::GlobalCap), Kind::Rtbh, 3)
        ]
    );
    assert_eq!(a[2].rule.destination, "203.0.113.3/32".parse().unwrap());
    // Refused once, not again on every event.
    p.handle_event(S, &update(3, "203.0.113.3", 3_000));
    assert!(drain(&mut p).is_empty());
    assert_eq!(p.stats().refused_global_cap, 1);
    // Room frees: the still-wanted rule goes in.
    p.handle_event(2 * S, &end(1, "203.0.113.1"));
    let a = run_until(&mut p, 62 * S);
    assert_eq!(
        ops(&a),
        vec![
            (Op::Withdraw(WithdrawReason::Ended), Kind::Rtbh, 3),
            (Op::Announce, Kind::Rtbh, 3)
        ]
    );
    assert_eq!(a[1].rule.destination, "203.0.113.3/32".parse().unwrap());
}

#[test]
fn per_target_cap_refuses_extra_vectors() {
    let mut p = Policy::new(PolicyConfig {
        max_rules_per_target: 2,
        ..cfg()
    });
    let mut e = start(1, T, 600);
    e.family = Family::MultiVector;
    e.vectors = vec![
        Family::NtpAmplification,
        Family::DnsAmplification,
        Family::SynFlood,
    ];
    p.handle_event(0, &e);
    let a = drain(&mut p);
    assert_eq!(
        ops(&a),
        vec![
            (Op::Refused(RefuseReason::PerTargetCap), Kind::Flowspec, 2),
            (Op::Announce, Kind::Flowspec, 2),
            (Op::Announce, Kind::Flowspec, 2)
        ]
    );
    assert_eq!(a[0].rule.tcp_flags.map(|f| f.set), Some(TcpFlags::SYN));
    p.handle_event(S, &e);
    assert!(drain(&mut p).is_empty(), "refused once per incident");
    assert_eq!(p.stats().refused_per_target_cap, 1);
}

#[test]
fn never_list_outside_prefixes_and_network_incidents_are_refused() {
    let mut p = Policy::new(PolicyConfig {
        never: vec!["203.0.113.53/32".parse().unwrap()],
        ..cfg()
    });
    p.handle_event(0, &start(1, "203.0.113.53", 3_000));
    p.handle_event(0, &start(2, "198.51.100.7", 3_000));
    let mut net = start(3, "203.0.113.0", 3_000);
    net.prefix_len = Some(24);
    p.handle_event(0, &net);
    let a = drain(&mut p);
    assert_eq!(
        a.iter().map(|a| a.op).collect::<Vec<_>>(),
        vec![
            Op::Refused(RefuseReason::NeverList),
            Op::Refused(RefuseReason::OutsideMonitored),
            Op::Refused(RefuseReason::NetworkIncident)
        ]
    );
    assert_eq!(a[2].rule.destination, "203.0.113.0/24".parse().unwrap());
    for t in 1..5 {
        p.handle_event(t * S, &update(1, "203.0.113.53", 3_000));
        p.handle_event(t * S, &update(2, "198.51.100.7", 3_000));
        let mut n = update(3, "203.0.113.0", 3_000);
        n.prefix_len = Some(24);
        p.handle_event(t * S, &n);
    }
    assert!(drain(&mut p).is_empty(), "one refusal per incident");
    assert_eq!(p.rules().count(), 0);
    let s = p.stats();
    assert_eq!(
        (s.refused_never, s.refused_outside, s.refused_network),
        (1, 1, 1)
    );
    // Nothing is refused while no level is crossed.
    let mut p = Policy::new(cfg());
    p.handle_event(0, &start(1, "198.51.100.7", 50));
    assert!(drain(&mut p).is_empty());
}

#[test]
fn coalescing_holds_a_second_change_within_100ms_and_emits_the_net_change() {
    let mut p = Policy::new(cfg());
    p.handle_event(0, &start(1, T, 150));
    assert_eq!(ops(&drain(&mut p)), vec![(Op::Announce, Kind::Flowspec, 1)]);
    // Escalation 10 ms later: held.
    p.handle_event(10 * MS, &update(1, T, 600));
    assert!(drain(&mut p).is_empty());
    assert_eq!(p.poll_timeout(), Some(100 * MS));
    let a = run_until(&mut p, 100 * MS);
    assert_eq!(ops(&a), vec![(Op::Announce, Kind::Flowspec, 2)]);
    assert_eq!(a[0].ts_ns, 100 * MS);

    // A change and its reversal within the window: nothing at all.
    let mut p = Policy::new(cfg());
    p.handle_event(0, &start(1, T, 3_000));
    drain(&mut p);
    p.handle_event(20 * MS, &end(1, T));
    p.handle_event(30 * MS, &start(2, T, 3_000));
    assert!(drain(&mut p).is_empty());
    let a = run_until(&mut p, 200 * MS);
    assert_eq!(
        ops(&a),
        vec![(Op::Announce, Kind::Rtbh, 3)],
        "only the incident id changed"
    );
    assert_eq!(a[0].rule.incident_id, 2);
}

#[test]
fn shutdown_withdraws_everything() {
    let mut p = Policy::new(cfg());
    p.handle_event(0, &start(1, "203.0.113.1", 3_000));
    p.handle_event(0, &start(2, "203.0.113.2", 600));
    p.handle_event(0, &start(3, "2001:db8::1", 150));
    assert_eq!(drain(&mut p).len(), 3);
    p.shutdown(S);
    let a = drain(&mut p);
    assert_eq!(a.len(), 3);
    assert!(a
        .iter()
        .all(|a| a.op == Op::Withdraw(WithdrawReason::Shutdown)));
    assert!(p.is_idle());
    p.handle_event(2 * S, &start(4, "203.0.113.4", 3_000));
    assert!(
        drain(&mut p).is_empty(),
        "events after shutdown are ignored"
    );
    // A withdraw within the coalescing window waits for it.
    let mut p = Policy::new(cfg());
    p.handle_event(0, &start(1, T, 3_000));
    drain(&mut p);
    p.shutdown(50 * MS);
    assert!(drain(&mut p).is_empty());
    assert!(!p.is_idle());
    let a = run_until(&mut p, S);
    assert_eq!(
        ops(&a),
        vec![(Op::Withdraw(WithdrawReason::Shutdown), Kind::Rtbh, 3)]
    );
    assert!(p.is_idle());
}

#[test]
fn mode_is_carried_in_every_action() {
    let mut p = Policy::new(cfg());
    p.handle_event(0, &start(1, T, 3_000));
    assert_eq!(PolicyConfig::default().mode, Mode::DryRun);
    assert!(drain(&mut p).iter().all(|a| a.mode == Mode::DryRun));
    let mut p = Policy::new(PolicyConfig {
        mode: Mode::Enforce,
        ..cfg()
    });
    p.handle_event(0, &start(1, T, 3_000));
    p.handle_event(0, &start(2, "198.51.100.1", 3_000));
    p.shutdown(S);
    let a = drain(&mut p);
    assert_eq!(a.len(), 3);
    assert!(a.iter().all(|a| a.mode == Mode::Enforce));
}

#[test]
fn failed_actions_are_retried_with_backoff_then_given_up() {
    let mut p = Policy::new(PolicyConfig {
        mode: Mode::Enforce,
        ..cfg()
    });
    p.handle_event(0, &start(1, T, 3_000));
    let a = drain(&mut p);
    p.handle_outcome(10 * MS, a[0].id, Outcome::Error("speaker down".into()));
    assert_eq!(p.rules().count(), 0, "not in force");
    let mut now = 10 * MS;
    let mut delays = Vec::new();
    while let Some(t) = p.poll_timeout() {
        delays.push(t - now);
        p.handle_timeout(t);
        let a = drain(&mut p);
        assert_eq!(ops(&a), vec![(Op::Announce, Kind::Rtbh, 3)]);
        now = t + 10 * MS;
        p.handle_outcome(now, a[0].id, Outcome::Error("speaker down".into()));
        if p.stats().failed > 0 {
            break;
        }
    }
    assert_eq!(delays, vec![S, 2 * S, 4 * S, 8 * S]);
    let s = p.stats();
    assert_eq!((s.errors, s.retries, s.failed), (5, 4, 1));
    // Given up: no more timers for it, until something else is wanted.
    assert!(p.poll_timeout().unwrap_or(u64::MAX) >= 300 * S);

    // A withdraw that fails is retried; one that succeeds is forgotten.
    let mut p = Policy::new(PolicyConfig {
        mode: Mode::Enforce,
        ..cfg()
    });
    p.handle_event(0, &start(1, T, 3_000));
    let a = drain(&mut p);
    p.handle_outcome(0, a[0].id, Outcome::Ok);
    p.shutdown(S);
    let w = drain(&mut p);
    assert!(!p.is_idle(), "waiting for the withdraw's outcome");
    p.handle_outcome(S, w[0].id, Outcome::Ok);
    assert!(p.is_idle());
}

#[test]
fn a_failed_withdraw_is_retried() {
    let mut p = Policy::new(PolicyConfig {
        mode: Mode::Enforce,
        ..cfg()
    });
    p.handle_event(0, &start(1, T, 3_000));
    let a = drain(&mut p);
    p.handle_outcome(0, a[0].id, Outcome::Ok);
    p.handle_event(S, &end(1, T));
    let w = run_until(&mut p, 61 * S);
    assert_eq!(
        ops(&w),
        vec![(Op::Withdraw(WithdrawReason::Ended), Kind::Rtbh, 3)]
    );
    p.handle_outcome(61 * S, w[0].id, Outcome::Error("timeout".into()));
    assert_eq!(p.rules().count(), 1, "still in force");
    let again = run_until(&mut p, 62 * S);
    assert_eq!(
        ops(&again),
        vec![(Op::Withdraw(WithdrawReason::Ended), Kind::Rtbh, 3)]
    );
    p.handle_outcome(62 * S, again[0].id, Outcome::Ok);
    assert!(p.is_idle());
}

#[test]
fn same_inputs_same_actions() {
    let script = |p: &mut Policy| {
        let mut out = Vec::new();
        for t in 0..200u64 {
            for (i, target) in ["203.0.113.1", "203.0.113.2", "2001:db8::7"]
                .iter()
                .enumerate()
            {
                let mbps = (t * 37 + i as u64 * 1_000) % 7_000;
                let kind = if t == 0 {
                    EventKind::Start
                } else {
                    EventKind::Update
                };
                p.handle_event(t * S, &ev(kind, i as u64 + 1, target, mbps));
            }
            out.extend(drain(p));
            out.extend(run_until(p, t * S + S / 2));
        }
        p.shutdown(200 * S);
        out.extend(run_until(p, 201 * S));
        out
    };
    let a = script(&mut Policy::new(cfg()));
    let b = script(&mut Policy::new(cfg()));
    assert!(a.len() > 10);
    assert_eq!(a, b);
}

// ---------------------------------------------------------------------------------------
// Rules from the fingerprint: each family's rule carries its narrowing fields.

fn rule_of(family: Family, tweak: impl Fn(&mut IncidentEvent)) -> Vec<Rule> {
    let mut e = start(1, T, 600);
    e.family = family;
    e.vectors = vec![family];
    tweak(&mut e);
    rules_for(&e, 2, LevelAction::FlowspecDiscard, &Ladder::default())
}

fn one(rules: Vec<Rule>) -> Rule {
    assert_eq!(rules.len(), 1, "{rules:#?}");
    rules.into_iter().next().unwrap()
}

#[test]
fn tcp_floods_carry_protocol_flags_and_ports() {
    let syn = one(rule_of(Family::SynFlood, |_| {}));
    assert_eq!(syn.destination, "203.0.113.10/32".parse().unwrap());
    assert_eq!(syn.protocols, vec![6]);
    assert_eq!(
        syn.tcp_flags,
        Some(TcpFlags {
            set: TcpFlags::SYN,
            unset: TcpFlags::ACK
        })
    );
    assert_eq!(syn.destination_ports, vec![80], "99 % on port 80");
    assert_eq!(syn.packet_length, Some((0, 113)), "small segments only");
    assert_eq!(syn.then, Then::Discard);

    let ack = one(rule_of(Family::AckFlood, |_| {}));
    assert_eq!(ack.protocols, vec![6]);
    let f = ack.tcp_flags.unwrap();
    assert_eq!(f.set, TcpFlags::ACK);
    assert_eq!(f.unset & TcpFlags::SYN, TcpFlags::SYN);
    let rst = one(rule_of(Family::RstFlood, |_| {}));
    assert_eq!(rst.tcp_flags.map(|f| f.set), Some(TcpFlags::RST));
    let synack = one(rule_of(Family::SynackFlood, |_| {}));
    assert_eq!(
        synack.tcp_flags.map(|f| f.set),
        Some(TcpFlags::SYN | TcpFlags::ACK)
    );
    // Spread over many ports: no port list.
    let spread = one(rule_of(Family::SynFlood, |e| {
        e.top_dst_ports = (1..=10).map(|p| (p, 100, 1_000)).collect();
    }));
    assert!(spread.destination_ports.is_empty());
    assert!(spread.tcp_flags.is_some());
}

#[test]
fn udp_icmp_and_fragment_floods() {
    let udp = one(rule_of(Family::UdpFlood, |e| {
        e.top_dst_ports = vec![(27015, 10, 5_000), (27016, 10, 4_500)];
        e.lengths = vec![("512-1023", 9_500), ("1024-1499", 50)];
    }));
    assert_eq!(udp.protocols, vec![17]);
    assert_eq!(udp.destination_ports, vec![27015, 27016]);
    assert_eq!(udp.packet_length, Some((494, 1009)));
    assert!(udp.source_ports.is_empty());

    let icmp = one(rule_of(Family::IcmpFlood, |_| {}));
    assert_eq!(icmp.protocols, vec![1]);
    assert!(icmp.destination_ports.is_empty(), "ICMP has no ports");
    let icmp6 = one(rule_of(Family::IcmpFlood, |e| e.target = ip("2001:db8::1")));
    assert_eq!(icmp6.protocols, vec![58]);
    assert_eq!(icmp6.destination, "2001:db8::1/128".parse().unwrap());

    let frag = one(rule_of(Family::FragmentFlood, |e| {
        e.lengths = vec![("1500+", 10_000)];
    }));
    assert!(frag.fragment);
    assert!(frag.protocols.is_empty(), "fragments of any protocol");
    assert_eq!(frag.packet_length, Some((1482, 65535)));
}

#[test]
fn amplification_matches_the_reflector_source_port() {
    for (family, port) in [
        (Family::DnsAmplification, 53),
        (Family::NtpAmplification, 123),
        (Family::MemcachedAmplification, 11211),
        (Family::SsdpAmplification, 1900),
        (Family::CldapAmplification, 389),
        (Family::SnmpAmplification, 161),
        (Family::ChargenAmplification, 19),
    ] {
        let r = one(rule_of(family, |e| {
            // Reflected answers go to random ports: the destination ports never narrow.
            e.top_dst_ports = vec![(4444, 10, 10_000)];
        }));
        assert_eq!(r.protocols, vec![17], "{family:?}");
        assert_eq!(r.source_ports, vec![port], "{family:?}");
        assert!(r.destination_ports.is_empty(), "{family:?}");
        assert!(r.tcp_flags.is_none());
    }
    let generic = one(rule_of(Family::UdpAmplification, |e| {
        e.top_src_ports = vec![(3702, 10, 5_000), (40000, 1, 10), (427, 5, 3_000)];
    }));
    assert_eq!(generic.source_ports, vec![427, 3702]);
}

#[test]
fn fragmented_amplification_gets_a_companion_fragment_rule() {
    let rules = rule_of(Family::DnsAmplification, |e| {
        e.over_classes = vec![TrafficClass::Udp, TrafficClass::Fragment];
        e.lengths = vec![("1024-1499", 5_000), ("1500+", 5_000)];
    });
    assert_eq!(rules.len(), 2, "{rules:#?}");
    assert_eq!(rules[0].source_ports, vec![53]);
    assert!(!rules[0].fragment);
    assert_eq!(rules[0].packet_length, Some((1006, 65535)));
    assert_eq!(rules[1].protocols, vec![17]);
    assert!(rules[1].fragment && rules[1].source_ports.is_empty());
    assert_eq!(
        rules[1].packet_length, None,
        "the last fragment may be short"
    );
    // Unfragmented answers: the port rule alone.
    assert_eq!(rule_of(Family::NtpAmplification, |_| {}).len(), 1);
}

#[test]
fn multi_vector_gets_one_rule_per_vector() {
    let mut e = start(1, T, 600);
    e.family = Family::MultiVector;
    e.vectors = vec![
        Family::SynFlood,
        Family::IcmpFlood,
        Family::NtpAmplification,
    ];
    let rules = rules_for(&e, 1, LevelAction::FlowspecRateLimit, &Ladder::default());
    assert_eq!(rules.len(), 3);
    assert!(rules[0].tcp_flags.is_some());
    assert_eq!(rules[1].protocols, vec![1]);
    assert_eq!(rules[2].source_ports, vec![123]);
    assert!(rules
        .iter()
        .all(|r| r.then == Then::RateLimit { bps: 20 * MBPS }));
}

#[test]
fn rate_limit_is_a_multiple_of_the_normal_rate_with_a_floor() {
    let ladder = Ladder {
        rate_limit_multiple: 2.0,
        rate_limit_floor_bps: 50 * MBPS,
        ..Ladder::default()
    };
    let e = start(1, T, 600);
    let r = &rules_for(&e, 1, LevelAction::FlowspecRateLimit, &ladder)[0];
    assert_eq!(r.then, Then::RateLimit { bps: 50 * MBPS }, "floor");
    let mut e = start(1, T, 600);
    e.threshold.bps = 40e6;
    let r = &rules_for(&e, 1, LevelAction::FlowspecRateLimit, &ladder)[0];
    assert_eq!(r.then, Then::RateLimit { bps: 80 * MBPS });
}

#[test]
fn rtbh_carries_blackhole_communities_and_next_hop() {
    let ladder = Ladder {
        communities: vec![Community::Standard(64500, 1), BLACKHOLE],
        next_hop_v4: Some(ip("192.0.2.1")),
        next_hop_v6: Some(ip("100::1")),
        ..Ladder::default()
    };
    let r = &rules_for(&start(1, T, 3_000), 3, LevelAction::Rtbh, &ladder)[0];
    assert_eq!(
        r.communities,
        vec![BLACKHOLE, Community::Standard(64500, 1)]
    );
    assert_eq!(r.next_hop, Some(ip("192.0.2.1")));
    assert_eq!(r.then, Then::Blackhole);
    assert!(r.protocols.is_empty() && r.source_ports.is_empty());
    let r6 = &rules_for(
        &start(1, "2001:db8::5", 3_000),
        3,
        LevelAction::Rtbh,
        &ladder,
    )[0];
    assert_eq!(r6.next_hop, Some(ip("100::1")));
    assert_eq!(r6.destination, "2001:db8::5/128".parse().unwrap());
}

#[test]
fn per_group_ladders_and_pps_levels() {
    let mut c = cfg();
    c.groups.insert(
        GroupId(1),
        Ladder {
            levels: vec![Level {
                at_bps: None,
                at_pps: Some(100_000),
                action: LevelAction::Rtbh,
            }],
            ..Ladder::default()
        },
    );
    let mut p = Policy::new(c);
    let mut e = start(1, T, 60); // 120 kpps, 60 Mbit/s
    e.group = GroupId(1);
    p.handle_event(0, &e);
    assert_eq!(ops(&drain(&mut p)), vec![(Op::Announce, Kind::Rtbh, 1)]);
    // Group 0 uses the defaults: below level 1.
    p.handle_event(0, &start(2, "203.0.113.11", 60));
    assert!(drain(&mut p).is_empty());
}

#[test]
fn unknown_family_narrows_by_the_classes_over_threshold() {
    let r = one(rule_of(Family::Unknown, |e| {
        e.over_classes = vec![TrafficClass::Udp, TrafficClass::Icmp];
    }));
    assert_eq!(r.protocols, vec![1, 17]);
    let r = one(rule_of(Family::Unknown, |e| {
        e.over_classes = vec![TrafficClass::Other];
    }));
    assert!(r.protocols.is_empty(), "GRE/ESP...: the destination alone");
}

// ---------------------------------------------------------------------------------------
// Random scripts: the rails hold whatever comes in.

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Drives a policy with a random script; checks the rails after every call; returns every
/// action.
fn random_script(seed: u64, mode: Mode) -> Vec<Action> {
    let mut c = cfg();
    c.mode = mode;
    c.max_rules = 5;
    c.max_rules_per_target = 2;
    c.never = vec!["203.0.113.53/32".parse().unwrap()];
    c.ttl_ns = 20 * S;
    c.defaults.hold_down_ns = 3 * S;
    let mut p = Policy::new(c.clone());
    let mut rng = Rng(seed | 1);
    let targets = [
        "203.0.113.1",
        "203.0.113.2",
        "203.0.113.3",
        "203.0.113.4",
        "203.0.113.53",
        "198.51.100.9",
        "2001:db8::1",
        "2001:db8::2",
    ];
    let families = [
        Family::SynFlood,
        Family::UdpFlood,
        Family::DnsAmplification,
        Family::FragmentFlood,
        Family::Unknown,
    ];
    let mut ids = [0u64; 8];
    let mut next_id = 1;
    let mut now = 0u64;
    let mut all = Vec::new();
    let check = |p: &Policy, now: u64, after_timeout: bool| {
        assert!(p.rules().count() <= c.max_rules);
        let mut per: std::collections::BTreeMap<ipnet::IpNet, usize> = Default::default();
        for r in p.rules() {
            *per.entry(r.destination).or_default() += 1;
            assert!(c.monitored.iter().any(|m| m.contains(&r.destination)));
            assert!(!c.never.iter().any(|n| n.contains(&r.destination)));
            assert_eq!(
                r.destination.prefix_len(),
                r.destination.max_prefix_len(),
                "a host route"
            );
            assert!(r.expires_ns > 0);
        }
        assert!(per.values().all(|n| *n <= c.max_rules_per_target));
        if let (Some(t), true) = (p.poll_timeout(), after_timeout) {
            assert!(t > now, "a timeout in the past would spin the caller");
        }
    };
    for _ in 0..3_000 {
        now += rng.below(400) * MS;
        match rng.below(10) {
            0..=5 => {
                let i = rng.below(targets.len() as u64) as usize;
                let kind = match (ids[i], rng.below(10)) {
                    (0, _) => EventKind::Start,
                    (_, 0) => EventKind::End,
                    _ => EventKind::Update,
                };
                if kind == EventKind::Start {
                    ids[i] = next_id;
                    next_id += 1;
                }
                let mut e = ev(kind, ids[i], targets[i], rng.below(8_000));
                e.family = families[rng.below(families.len() as u64) as usize];
                e.vectors = if rng.below(3) == 0 {
                    vec![
                        Family::SynFlood,
                        Family::NtpAmplification,
                        Family::IcmpFlood,
                    ]
                } else {
                    vec![e.family]
                };
                if rng.below(20) == 0 {
                    e.prefix_len = Some(24);
                }
                if kind == EventKind::End {
                    ids[i] = 0;
                }
                p.handle_event(now, &e);
                check(&p, now, false);
            }
            6 | 7 => {
                if let Some(t) = p.poll_timeout() {
                    now = now.max(t);
                }
                p.handle_timeout(now);
                check(&p, now, true);
            }
            _ => {
                p.handle_timeout(now);
                check(&p, now, true);
            }
        }
        while let Some(a) = p.poll_action() {
            assert_eq!(a.mode, mode);
            // A failed withdraw leaves its rule in force (it is, on the routers), which may
            // hold the count over the cap; only the other actions fail here.
            let outcome = match rng.below(6) {
                0 if !matches!(a.op, Op::Withdraw(_)) => Outcome::Error("down".into()),
                1 => Outcome::DryRun,
                _ => Outcome::Ok,
            };
            let id = a.id;
            all.push(a);
            if rng.below(4) != 0 {
                p.handle_outcome(now, id, outcome);
                check(&p, now, false);
            }
        }
    }
    p.shutdown(now);
    for _ in 0..1_000 {
        while let Some(a) = p.poll_action() {
            let id = a.id;
            assert!(
                matches!(a.op, Op::Withdraw(WithdrawReason::Shutdown)),
                "{a:?}"
            );
            all.push(a);
            p.handle_outcome(now, id, Outcome::Ok);
        }
        if p.is_idle() {
            break;
        }
        match p.poll_timeout() {
            Some(t) => now = t,
            None => now += S,
        }
        p.handle_timeout(now);
    }
    assert!(p.is_idle(), "shutdown ends with nothing in force");
    assert_eq!(p.rules().count(), 0);
    all
}

#[test]
fn random_scripts_keep_the_rails_and_are_deterministic() {
    for seed in [1, 2, 3, 0xdead_beef, 42] {
        for mode in [Mode::DryRun, Mode::Enforce] {
            let a = random_script(seed, mode);
            assert!(a.iter().any(|a| a.op == Op::Announce), "seed {seed}");
            assert!(
                a.iter().any(|a| matches!(a.op, Op::Refused(_))),
                "seed {seed}"
            );
            assert_eq!(a, random_script(seed, mode), "seed {seed}");
        }
    }
}
