//! The output contract, pinned: events and summaries built from synthetic domain values are
//! compared byte for byte with the copies in `tests/golden/`, which cover every event,
//! family, traffic-class and parse-error name (`names.json` lists every name of every enum
//! the contract maps). A difference is a change of surgewatch's public interface: make it on
//! purpose, then write the copies anew with `SURGEWATCH_BLESS=1 cargo test -p
//! surgewatch-export --test contract` and say so in the README.

use std::net::IpAddr;
use std::path::PathBuf;

use surgewatch_detect::baseline::Rates;
use surgewatch_detect::{EventKind, Family, IncidentEvent, IncidentSummary, TimelinePoint};
use surgewatch_export::contract::{
    class_name, direction_name, encap_name, event_name, family_name, monitor_mode_name,
    parse_status_name, MonitorMode,
};
use surgewatch_export::events::EventJson;
use surgewatch_export::mitigation::{
    kind_name, mode_name, op_name, refuse_reason_name, then_name, withdraw_reason_name,
    MitigationJson,
};
use surgewatch_export::summary::{
    InputAnomaliesJson, LinkJson, MitigationsJson, QueueJson, RunInfo, SummaryJson,
};
use surgewatch_mitigate::{
    Action, ActionId, Community, Kind, Mode, Op, Outcome, RefuseReason, Rule, TcpFlags, Then,
    WithdrawReason, BLACKHOLE,
};
use surgewatch_per_ip::{ClassReport, Direction, GroupId, IpReport, Report, ReportTotals};
use surgewatch_pipeline::{Encap, ParseStatus, TrafficClass};

/// 2026-01-01T00:00:00Z, ns.
const T0: u64 = 1_767_225_600_000_000_000;
const SEC: u64 = 1_000_000_000;

fn golden(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

/// Compares `got` with the golden copy `name` (or writes it, when blessing).
fn check(name: &str, got: &str) {
    let path = golden(name);
    if std::env::var_os("SURGEWATCH_BLESS").is_some() {
        std::fs::write(&path, got).expect("writing a golden copy");
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (bless to create it)", path.display()));
    assert!(
        got == want,
        "{name} differs from its golden copy:\n want {want}\n got  {got}"
    );
}

fn groups() -> Vec<String> {
    vec!["hosting".into(), "dns-servers".into(), "cli".into()]
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address")
}

fn event(kind: EventKind) -> IncidentEvent {
    IncidentEvent {
        kind,
        incident_id: 1,
        target: ip("203.0.113.10"),
        prefix_len: None,
        group: GroupId(0),
        family: Family::MultiVector,
        // Every family, to pin every name (no real incident has them all).
        vectors: Family::ALL.to_vec(),
        confidence: 86,
        ts_ns: T0 + 3 * SEC,
        onset_ns: T0 + 2 * SEC,
        pps: 2344,
        bps: 4_000_000,
        peak_pps: 2400,
        peak_bps: 4_100_000,
        packets: 2344,
        bytes: 500_000,
        over_classes: TrafficClass::ALL.to_vec(),
        threshold: Rates {
            pps: 1000.0,
            bps: f64::INFINITY,
        },
        unique_sources: 3,
        spoofed: false,
        top_sources: vec![(ip("198.18.0.7"), 120, 240), (ip("2001:db8::7"), 60, 120)],
        top_dst_ports: vec![(80, 900, 1800)],
        top_src_ports: vec![(123, 400, 800), (53, 20, 40)],
        lengths: vec![("0-63", 10), ("64-127", 5), ("1024-1518", 1)],
        mean_length: 213,
        distinct_ttls: 3,
        ttl_range: (52, 64),
        timeline: Vec::new(),
    }
}

fn events() -> Vec<IncidentEvent> {
    let start = event(EventKind::Start);
    let update = IncidentEvent {
        family: Family::DnsAmplification,
        vectors: vec![Family::DnsAmplification],
        over_classes: vec![TrafficClass::Udp, TrafficClass::Fragment],
        threshold: Rates {
            pps: 1000.0,
            bps: 10e6,
        },
        unique_sources: 9000,
        spoofed: true,
        ts_ns: T0 + 4 * SEC,
        ..event(EventKind::Update)
    };
    let end = IncidentEvent {
        group: GroupId(7), // beyond the named groups
        family: Family::SynFlood,
        vectors: vec![Family::SynFlood],
        over_classes: vec![TrafficClass::Syn],
        top_sources: Vec::new(),
        top_dst_ports: Vec::new(),
        top_src_ports: Vec::new(),
        unique_sources: 0,
        ts_ns: T0 + 9 * SEC + SEC / 2,
        timeline: (0..3)
            .map(|i| TimelinePoint {
                tick_start_ns: T0 + (2 + i) * SEC,
                packets: 1000 + i,
                bytes: 64_000 + i,
            })
            .collect(),
        ..event(EventKind::End)
    };
    vec![start, update, end]
}

fn totals() -> ReportTotals {
    let mut parse_status = [0; ParseStatus::COUNT];
    for (i, n) in parse_status.iter_mut().enumerate() {
        // A different count per reason: a name mapped to the wrong reason shows.
        *n = 10 + i as u64;
    }
    ReportTotals {
        packets: 123_456,
        bytes: 98_765_432,
        parse_status,
        ticks_closed: 6,
        monitored_ips_seen: 7,
        tracked_ips: 7,
        evicted_ips: 0,
        admitted_heavy_ips: 0,
        overflow_packets: 0,
        overflow_bytes: 0,
        ip_limit: None,
    }
}

fn ip_report(addr: &str, group: u16, scale: u64) -> IpReport {
    let classes = TrafficClass::ALL.map(|class| {
        let i = class.index() as u64 + 1;
        ClassReport {
            class,
            packets_in: scale * i,
            bytes_in: scale * i * 60,
            packets_out: i,
            bytes_out: i * 60,
        }
    });
    let packets_in: u64 = classes.iter().map(|c| c.packets_in).sum();
    let packets_out: u64 = classes.iter().map(|c| c.packets_out).sum();
    IpReport {
        ip: ip(addr),
        group: GroupId(group),
        packets_in,
        bytes_in: packets_in * 60,
        packets_out,
        bytes_out: packets_out * 60,
        peak_pps: scale * 100,
        peak_bps: scale * 48_000,
        peak_pps_in: scale * 99,
        peak_bps_in: scale * 47_000,
        peak_pps_out: 4,
        peak_bps_out: 2400,
        first_seen_ns: T0,
        last_seen_ns: T0 + 5 * SEC,
        active_ticks: 6,
        classes,
    }
}

fn report() -> Report {
    Report {
        totals: totals(),
        top: vec![
            ip_report("203.0.113.10", 0, 30),
            ip_report("2001:db8:100::53", 1, 2),
            ip_report("198.51.100.9", 9, 1), // an unnamed group
        ],
    }
}

/// One closed incident of every family.
fn incidents() -> Vec<IncidentSummary> {
    Family::ALL
        .iter()
        .enumerate()
        .map(|(i, &family)| IncidentSummary {
            incident_id: i as u64 + 1,
            // The second one is a network incident (untracked traffic of a /24).
            target: ip(if i == 1 {
                "203.0.113.0"
            } else {
                "203.0.113.10"
            }),
            prefix_len: (i == 1).then_some(24),
            family,
            vectors: if family == Family::MultiVector {
                vec![Family::SynFlood, Family::NtpAmplification]
            } else {
                vec![family]
            },
            confidence: 50 + i as u8,
            onset_ns: T0 + i as u64 * SEC,
            end_ns: T0 + (i as u64 + 10) * SEC,
            peak_pps: 1000 * (i as u64 + 1),
            peak_bps: 8_000_000 * (i as u64 + 1),
            packets: 5000,
            bytes: 300_000,
        })
        .collect()
}

fn replay_info() -> RunInfo {
    RunInfo {
        inputs: vec!["pcaps/captures/multi_vector.pcap".into()],
        groups: groups(),
        monitor_mode: MonitorMode::Prefixes,
        tick_secs: 1.0,
        workers: 2,
        time_span_ns: Some((T0, T0 + 5 * SEC + 900_000_000)),
        late_frames: 3,
        errors: vec!["b.pcap: truncated record at byte offset 4096".into()],
        input_anomalies: Default::default(),
        incidents: incidents(),
        capture: None,
        queues: Vec::new(),
        link: None,
        mitigations: None,
    }
}

fn live_info() -> RunInfo {
    RunInfo {
        inputs: vec!["eth0".into()],
        groups: vec!["auto".into()],
        monitor_mode: MonitorMode::Auto,
        tick_secs: 0.1,
        workers: 2,
        time_span_ns: Some((T0, T0 + 10 * SEC)),
        late_frames: 0,
        errors: Vec::new(),
        input_anomalies: Default::default(),
        incidents: Vec::new(),
        capture: Some("eth0: af_xdp, copy mode, XDP program in skb mode, queues [0, 1]".into()),
        queues: (0..2)
            .map(|q| QueueJson {
                name: format!("eth0/q{q}"),
                core: if q == 0 { Some(2) } else { None },
                received: 1000 + q,
                bytes: 64_000 + q,
                parse_errors: q,
                kernel_drops: 2 * q,
                rx_ring_full: 3 * q,
                fill_ring_empty: 4 * q,
                invalid_descs: 5 * q,
            })
            .collect(),
        link: Some(LinkJson {
            losses: 1,
            reattaches: 1,
        }),
        mitigations: Some(MitigationsJson {
            announced: 4,
            refreshed: 2,
            withdrawn: 4,
            refused: 1,
            errors: 0,
        }),
    }
}

fn lines(v: impl IntoIterator<Item = String>) -> String {
    v.into_iter().map(|l| l + "\n").collect()
}

#[test]
fn event_lines_are_the_contract() {
    let (groups, events) = (groups(), events());
    let json = events
        .iter()
        .map(|e| EventJson::new(e, &groups).to_json_line());
    check("events.json", &lines(json));
    let text = events.iter().map(|e| EventJson::new(e, &groups).to_text());
    check("events.txt", &lines(text));
}

#[test]
fn summaries_are_the_contract() {
    let replay = SummaryJson::new(&report(), &replay_info());
    check("summary_replay.json", &lines([replay.to_json_line()]));
    check("summary_replay.txt", &replay.to_text());
    let live = SummaryJson::new(&report(), &live_info());
    check("summary_live.json", &lines([live.to_json_line()]));
    check("summary_live.txt", &live.to_text());
    let nothing = RunInfo {
        inputs: vec!["empty.pcap".into()],
        groups: vec!["auto".into()],
        monitor_mode: MonitorMode::Auto,
        tick_secs: 1.0,
        workers: 1,
        ..RunInfo::default()
    };
    let empty = SummaryJson::new(&Report::default(), &nothing);
    check("summary_empty.json", &lines([empty.to_json_line()]));
    check("summary_empty.txt", &empty.to_text());
}

/// Every variant of `EventKind`: a new one fails to compile here.
fn event_kinds() -> [EventKind; 3] {
    let all = [EventKind::Start, EventKind::Update, EventKind::End];
    for k in all {
        match k {
            EventKind::Start | EventKind::Update | EventKind::End => {}
        }
    }
    all
}

/// Every variant of `MonitorMode`: a new one fails to compile here.
fn monitor_modes() -> [MonitorMode; 2] {
    let all = [MonitorMode::Prefixes, MonitorMode::Auto];
    for m in all {
        match m {
            MonitorMode::Prefixes | MonitorMode::Auto => {}
        }
    }
    all
}

/// One of each mitigation op: a new one fails to compile here.
fn mitigation_ops() -> [Op; 4] {
    let all = [
        Op::Announce,
        Op::Refresh,
        Op::Withdraw(WithdrawReason::Ended),
        Op::Refused(RefuseReason::GlobalCap),
    ];
    for o in all {
        match o {
            Op::Announce | Op::Refresh | Op::Withdraw(_) | Op::Refused(_) => {}
        }
    }
    all
}

fn withdraw_reasons() -> [WithdrawReason; 6] {
    use WithdrawReason::*;
    let all = [Ended, Deescalated, Escalated, Replaced, Expired, Shutdown];
    for r in all {
        match r {
            Ended | Deescalated | Escalated | Replaced | Expired | Shutdown => {}
        }
    }
    all
}

fn refuse_reasons() -> [RefuseReason; 5] {
    use RefuseReason::*;
    let all = [
        NetworkIncident,
        OutsideMonitored,
        NeverList,
        PerTargetCap,
        GlobalCap,
    ];
    for r in all {
        match r {
            NetworkIncident | OutsideMonitored | NeverList | PerTargetCap | GlobalCap => {}
        }
    }
    all
}

/// A FlowSpec rule for an NTP amplification on 203.0.113.10 and an RTBH route for it.
fn mitigation_actions() -> Vec<(Action, Option<&'static str>, Outcome)> {
    let flow = Rule {
        kind: Kind::Flowspec,
        destination: "203.0.113.10/32".parse().expect("net"),
        protocols: vec![17],
        source_ports: vec![123],
        destination_ports: vec![],
        tcp_flags: None,
        packet_length: Some((400, 500)),
        fragment: false,
        then: Then::RateLimit { bps: 50_000_000 },
        communities: vec![Community::Large(64_512, 1, 2)],
        next_hop: None,
        level: 1,
        expires_ns: T0 + 305 * SEC,
        incident_id: 3,
        group: GroupId(0),
    };
    let rtbh = Rule {
        kind: Kind::Rtbh,
        destination: "2001:db8::10/128".parse().expect("net"),
        protocols: vec![],
        source_ports: vec![],
        destination_ports: vec![],
        tcp_flags: None,
        packet_length: None,
        fragment: false,
        then: Then::Blackhole,
        communities: vec![BLACKHOLE, Community::Standard(64_512, 666)],
        next_hop: Some("192.0.2.1".parse().expect("ip")),
        level: 3,
        expires_ns: T0 + 310 * SEC,
        incident_id: 4,
        group: GroupId(0),
    };
    let syn = Rule {
        kind: Kind::Flowspec,
        destination: "203.0.113.20/32".parse().expect("net"),
        protocols: vec![6],
        source_ports: vec![],
        destination_ports: vec![80, 443],
        tcp_flags: Some(TcpFlags {
            set: TcpFlags::SYN,
            unset: TcpFlags::ACK,
        }),
        packet_length: None,
        fragment: false,
        then: Then::Discard,
        communities: vec![],
        next_hop: None,
        level: 2,
        expires_ns: 0,
        incident_id: 5,
        group: GroupId(0),
    };
    let action = |id, ts, op, rule: &Rule, mode| Action {
        id: ActionId(id),
        ts_ns: T0 + ts * SEC,
        op,
        rule: rule.clone(),
        mode,
    };
    vec![
        (
            action(1, 5, Op::Announce, &flow, Mode::DryRun),
            None,
            Outcome::DryRun,
        ),
        (
            action(2, 10, Op::Announce, &rtbh, Mode::Enforce),
            Some("gobgp"),
            Outcome::Ok,
        ),
        (
            action(3, 155, Op::Refresh, &flow, Mode::Enforce),
            Some("exabgp"),
            Outcome::Error("speaker down".into()),
        ),
        (
            action(
                4,
                160,
                Op::Withdraw(WithdrawReason::Ended),
                &rtbh,
                Mode::Enforce,
            ),
            Some("gobgp"),
            Outcome::Ok,
        ),
        (
            action(
                5,
                161,
                Op::Refused(RefuseReason::PerTargetCap),
                &syn,
                Mode::DryRun,
            ),
            None,
            Outcome::DryRun,
        ),
    ]
}

#[test]
fn mitigation_lines_are_the_contract() {
    let lines: String = mitigation_actions()
        .iter()
        .map(|(a, speaker, outcome)| MitigationJson::new(a, *speaker, outcome).to_json() + "\n")
        .collect();
    check("mitigation.jsonl", &lines);
}

#[test]
fn every_name_of_the_contract() {
    let kinds = [Kind::Flowspec, Kind::Rtbh, Kind::Scrubbing];
    let thens = [
        Then::RateLimit { bps: 1 },
        Then::Discard,
        Then::Blackhole,
        Then::Scrub,
    ];
    let modes = [Mode::DryRun, Mode::Enforce];
    let names = serde_json::json!({
        "event": event_kinds().map(event_name),
        "family": Family::ALL.map(family_name),
        "traffic_class": TrafficClass::ALL.map(class_name),
        "parse_status": ParseStatus::ALL.map(parse_status_name),
        "direction": Direction::ALL.map(direction_name),
        "encap": Encap::ALL.map(encap_name),
        "monitor_mode": monitor_modes().map(monitor_mode_name),
        "mitigation_action": mitigation_ops().map(|o| op_name(&o)),
        "mitigation_withdraw_reason": withdraw_reasons().map(withdraw_reason_name),
        "mitigation_refuse_reason": refuse_reasons().map(refuse_reason_name),
        "mitigation_kind": kinds.map(kind_name),
        "mitigation_then": thens.map(then_name),
        "mitigation_mode": modes.map(mode_name),
    });
    let text = serde_json::to_string_pretty(&names).expect("json") + "\n";
    check("names.json", &text);
    // No name twice within an enum.
    for (kind, list) in names.as_object().expect("object") {
        let list: Vec<&str> = list
            .as_array()
            .expect("array")
            .iter()
            .filter_map(|v| v.as_str())
            .collect();
        let unique: std::collections::BTreeSet<&str> = list.iter().copied().collect();
        assert_eq!(unique.len(), list.len(), "{kind}: a name twice");
    }
}

#[test]
fn input_anomalies_appear_only_when_some_record_lied() {
    let mut info = replay_info();
    let plain = SummaryJson::new(&report(), &info);
    assert!(!plain.to_json_line().contains("input_anomalies"));
    assert!(!plain.to_text().contains("impossible headers"));
    info.input_anomalies = InputAnomaliesJson {
        wire_len_below_captured: 1,
        wire_len_implausible: 20_000,
        subsecond_out_of_range: 3,
    };
    let s = SummaryJson::new(&report(), &info);
    let v: serde_json::Value = serde_json::from_str(&s.to_json_line()).expect("JSON");
    assert_eq!(
        v["input_anomalies"],
        serde_json::json!({
            "wire_len_below_captured": 1,
            "wire_len_implausible": 20_000,
            "subsecond_out_of_range": 3
        })
    );
    let text = s.to_text();
    assert!(
        text.contains(
            "records with impossible headers: 20004 (original length below captured 1, implausible 20000; sub-second out of range, skipped 3)"
        ),
        "{text}"
    );
}
