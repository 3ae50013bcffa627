//! Incident events: `{"event":"start"|"update"|"end", ...}` JSON lines and their text lines.

use std::fmt::Write as _;

use serde::Serialize;
use surgewatch_detect::{EventKind, IncidentEvent, IncidentSummary};

use crate::contract::{class_name, event_name, family_name};

fn secs(ns: u64) -> f64 {
    ns as f64 / 1e9
}

/// A threshold as an integer rate; thresholds set beyond any real rate (a rate that is not
/// checked, e.g. bits/s in a `--threshold-pps`-only run) become `None`.
fn finite_threshold(v: f64) -> Option<u64> {
    (v.is_finite() && v < 1e15).then_some(v as u64)
}

/// `{"ip", "pps", "packets"}`.
#[derive(Serialize, Clone, Debug)]
pub struct SourceJson {
    /// Source address.
    pub ip: String,
    /// Its average packet rate while the target was watched.
    pub pps: u64,
    /// Its packets while the target was watched.
    pub packets: u64,
}

/// `{"port", "pps", "packets"}`.
#[derive(Serialize, Clone, Debug)]
pub struct PortJson {
    /// Port.
    pub port: u16,
    /// Its average packet rate while the target was watched.
    pub pps: u64,
    /// Its packets while the target was watched.
    pub packets: u64,
}

/// `[ts, packets, bytes]` of one tick.
pub type TimelineJson = (f64, u64, u64);

/// One incident event line.
#[derive(Serialize, Clone, Debug)]
pub struct EventJson {
    /// The kind, for the text line (the JSON has its name, `event`).
    #[serde(skip)]
    pub kind: EventKind,
    /// `"start"`, `"update"` or `"end"`.
    pub event: &'static str,
    /// Incident number, from 1.
    pub incident_id: u64,
    /// Attacked address, or network (`"203.0.113.0/24"`) for a network incident.
    pub target: String,
    /// `"network"` for an incident on a network's untracked traffic; absent for an address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<&'static str>,
    /// Its group name.
    pub group: String,
    /// Attack family.
    pub family: &'static str,
    /// Vectors (the family itself for a single-vector attack).
    pub vectors: Vec<&'static str>,
    /// 0..=100.
    pub confidence: u8,
    /// When the event was emitted, capture time in seconds.
    pub ts: f64,
    /// Start of the first tick over the threshold, seconds.
    pub onset_ts: f64,
    /// Inbound packets per second in the last tick.
    pub pps: u64,
    /// Inbound bits per second in the last tick.
    pub bps: u64,
    /// Highest pps so far.
    pub peak_pps: u64,
    /// Highest bps so far.
    pub peak_bps: u64,
    /// Inbound packets since the onset.
    pub packets: u64,
    /// Inbound bytes since the onset.
    pub bytes: u64,
    /// Classes over their thresholds.
    pub over_classes: Vec<&'static str>,
    /// Total packet-rate threshold in force at the onset (null when that rate is not checked).
    pub threshold_pps: Option<u64>,
    /// Total bit-rate threshold in force at the onset (null when that rate is not checked).
    pub threshold_bps: Option<u64>,
    /// Distinct sources.
    pub unique_sources: u64,
    /// Spoofing verdict.
    pub spoofed: bool,
    /// Top sources.
    pub top_sources: Vec<SourceJson>,
    /// Top destination ports.
    pub top_dst_ports: Vec<PortJson>,
    /// Top source ports.
    pub top_src_ports: Vec<PortJson>,
    /// Packet length distribution: `[[bucket, packets], ...]`.
    pub packet_lengths: Vec<(&'static str, u64)>,
    /// Mean packet length (bytes on the wire).
    pub mean_packet_length: u64,
    /// Distinct TTL values.
    pub distinct_ttls: u32,
    /// `[min, max]` TTL.
    pub ttl_range: (u8, u8),
    /// End events only: `[[tick_start_ts, packets, bytes], ...]` for the incident's life.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub timeline: Vec<TimelineJson>,
}

/// The `scope` of a network incident.
pub const NETWORK_SCOPE: &str = "network";

/// An incident's target as text: the address, or the network `address/len`.
fn target_name(target: std::net::IpAddr, prefix_len: Option<u8>) -> String {
    match prefix_len {
        Some(len) => format!("{target}/{len}"),
        None => target.to_string(),
    }
}

impl EventJson {
    /// Maps an event; `groups` names the group ids.
    pub fn new(e: &IncidentEvent, groups: &[String]) -> Self {
        EventJson {
            kind: e.kind,
            event: event_name(e.kind),
            incident_id: e.incident_id,
            target: target_name(e.target, e.prefix_len),
            scope: e.prefix_len.map(|_| NETWORK_SCOPE),
            group: groups.get(e.group.index()).cloned().unwrap_or_default(),
            family: family_name(e.family),
            vectors: e.vectors.iter().map(|&f| family_name(f)).collect(),
            confidence: e.confidence,
            ts: secs(e.ts_ns),
            onset_ts: secs(e.onset_ns),
            pps: e.pps,
            bps: e.bps,
            peak_pps: e.peak_pps,
            peak_bps: e.peak_bps,
            packets: e.packets,
            bytes: e.bytes,
            over_classes: e.over_classes.iter().map(|&c| class_name(c)).collect(),
            threshold_pps: finite_threshold(e.threshold.pps),
            threshold_bps: finite_threshold(e.threshold.bps),
            unique_sources: e.unique_sources,
            spoofed: e.spoofed,
            top_sources: e
                .top_sources
                .iter()
                .map(|&(ip, pps, packets)| SourceJson {
                    ip: ip.to_string(),
                    pps,
                    packets,
                })
                .collect(),
            top_dst_ports: e
                .top_dst_ports
                .iter()
                .map(|&(port, pps, packets)| PortJson { port, pps, packets })
                .collect(),
            top_src_ports: e
                .top_src_ports
                .iter()
                .map(|&(port, pps, packets)| PortJson { port, pps, packets })
                .collect(),
            packet_lengths: e.lengths.clone(),
            mean_packet_length: e.mean_length,
            distinct_ttls: e.distinct_ttls,
            ttl_range: e.ttl_range,
            timeline: e
                .timeline
                .iter()
                .map(|p| (secs(p.tick_start_ns), p.packets, p.bytes))
                .collect(),
        }
    }

    /// One JSON line.
    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self)
            .unwrap_or_else(|e| format!("{{\"event\":\"error\",\"error\":\"{e}\"}}"))
    }

    /// One readable line.
    pub fn to_text(&self) -> String {
        let mut o = String::new();
        let kind = match self.kind {
            EventKind::Start => "ATTACK START",
            EventKind::Update => "attack update",
            EventKind::End => "ATTACK END",
        };
        let _ = write!(
            o,
            "[{:.3}] {kind} #{} {} ({}) {} conf {}%: {} pps, {:.2} Mbps (peak {} pps, {:.2} Mbps)",
            self.ts,
            self.incident_id,
            self.target,
            self.group,
            if self.vectors.len() > 1 {
                format!("{} [{}]", self.family, self.vectors.join("+"))
            } else {
                self.family.to_string()
            },
            self.confidence,
            self.pps,
            self.bps as f64 / 1e6,
            self.peak_pps,
            self.peak_bps as f64 / 1e6,
        );
        if self.unique_sources > 0 {
            let _ = write!(
                o,
                ", {} sources{}",
                self.unique_sources,
                if self.spoofed { " (spoofed)" } else { "" }
            );
        }
        if let Some(s) = self.top_sources.first() {
            let _ = write!(o, ", top source {} ({} pps)", s.ip, s.pps);
        }
        if let Some(p) = self.top_dst_ports.first() {
            let _ = write!(o, ", top dst port {}", p.port);
        }
        if self.kind == EventKind::End {
            let _ = write!(o, ", lasted {:.1} s", self.ts - self.onset_ts);
        }
        o
    }
}

/// An incident in the summary's `incidents` list.
#[derive(Serialize, Clone, Debug)]
pub struct IncidentJson {
    /// Incident number.
    pub incident_id: u64,
    /// Attacked address, or network for a network incident.
    pub target: String,
    /// `"network"` for a network incident; absent for an address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<&'static str>,
    /// Family.
    pub family: &'static str,
    /// Vectors.
    pub vectors: Vec<&'static str>,
    /// Confidence.
    pub confidence: u8,
    /// Onset, seconds.
    pub onset_ts: f64,
    /// End, seconds.
    pub end_ts: f64,
    /// Peak inbound pps.
    pub peak_pps: u64,
    /// Peak inbound bps.
    pub peak_bps: u64,
    /// Inbound packets.
    pub packets: u64,
    /// Inbound bytes.
    pub bytes: u64,
}

impl IncidentJson {
    /// Maps a closed incident.
    pub fn new(s: &IncidentSummary) -> Self {
        IncidentJson {
            incident_id: s.incident_id,
            target: target_name(s.target, s.prefix_len),
            scope: s.prefix_len.map(|_| NETWORK_SCOPE),
            family: family_name(s.family),
            vectors: s.vectors.iter().map(|&f| family_name(f)).collect(),
            confidence: s.confidence,
            onset_ts: secs(s.onset_ns),
            end_ts: secs(s.end_ns),
            peak_pps: s.peak_pps,
            peak_bps: s.peak_bps,
            packets: s.packets,
            bytes: s.bytes,
        }
    }
}
