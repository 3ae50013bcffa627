//! The end-of-run summary: `{"event":"summary", ...}` and its text rendering.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;
use surgewatch_per_ip::{IpReport, Report};
use surgewatch_pipeline::ParseStatus;

use crate::contract::{class_name, monitor_mode_name, parse_status_name, MonitorMode};

/// Facts about the run that the per-ip report does not know.
#[derive(Clone, Debug, Default)]
pub struct RunInfo {
    /// Input names (capture files or interfaces).
    pub inputs: Vec<String>,
    /// Names of the configured groups, indexed by group id.
    pub groups: Vec<String>,
    /// Configured prefixes, or every destination monitored.
    pub monitor_mode: MonitorMode,
    /// Tick length in seconds.
    pub tick_secs: f64,
    /// Worker threads used.
    pub workers: usize,
    /// First and last frame timestamps (ns since the epoch).
    pub time_span_ns: Option<(u64, u64)>,
    /// Frames whose timestamp went backwards (counted in the current tick).
    pub late_frames: u64,
    /// One line per input error (truncated/corrupt capture...).
    pub errors: Vec<String>,
    /// Records of the inputs whose headers lied, by reason, summed over the inputs.
    pub input_anomalies: InputAnomaliesJson,
    /// Closed incidents.
    pub incidents: Vec<surgewatch_detect::IncidentSummary>,
    /// How live capture ran (e.g. `eth0: af_xdp, copy mode, ...`); `None` for replay.
    pub capture: Option<String>,
    /// Per-queue statistics of a live run (empty for replay).
    pub queues: Vec<QueueJson>,
    /// A live run, which follows its interfaces: how often one was lost and re-attached
    /// (`None` for replay).
    pub link: Option<LinkJson>,
    /// With `[mitigation]`: what the policy did over the run.
    pub mitigations: Option<MitigationsJson>,
}

/// The summary's `mitigations`: actions of the run by kind.
#[derive(Serialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MitigationsJson {
    /// Rules announced.
    pub announced: u64,
    /// Announcements refreshed.
    pub refreshed: u64,
    /// Rules withdrawn.
    pub withdrawn: u64,
    /// Rules refused (outside the monitored prefixes, never list, caps, network incidents).
    pub refused: u64,
    /// Outcomes that were errors.
    pub errors: u64,
}

/// The summary's `link`: what happened to the captured interface during a live run.
#[derive(Serialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkJson {
    /// Times the interface disappeared (was deleted) while captured.
    pub losses: u64,
    /// Times capture was attached again to an interface of that name that came back.
    pub reattaches: u64,
}

/// Capture records whose headers lied, corrected or skipped by the reader, by reason (the
/// summary's `input_anomalies`, present only when one is non-zero).
#[derive(Serialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InputAnomaliesJson {
    /// Original length below the captured length: counted as the captured length.
    pub wire_len_below_captured: u64,
    /// Original length above the largest frame: counted as the captured length.
    pub wire_len_implausible: u64,
    /// Classic pcap sub-second field out of range: the record was skipped.
    pub subsecond_out_of_range: u64,
}

impl InputAnomaliesJson {
    /// Sum of every reason.
    pub fn total(&self) -> u64 {
        self.wire_len_below_captured + self.wire_len_implausible + self.subsecond_out_of_range
    }

    fn is_zero(&self) -> bool {
        self.total() == 0
    }
}

/// Statistics of one capture queue (worker) in a live run.
#[derive(Serialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct QueueJson {
    /// Source name, e.g. `eth0/q3`.
    pub name: String,
    /// Core the worker was pinned to.
    pub core: Option<usize>,
    /// Frames received.
    pub received: u64,
    /// Bytes received (wire length).
    pub bytes: u64,
    /// Frames with a parse error.
    pub parse_errors: u64,
    /// Frames the kernel dropped for this queue's socket.
    pub kernel_drops: u64,
    /// AF_XDP: drops because the RX ring was full.
    pub rx_ring_full: u64,
    /// AF_XDP: times the fill ring was empty.
    pub fill_ring_empty: u64,
    /// AF_XDP: invalid descriptors.
    pub invalid_descs: u64,
}

/// Per-class counters of one IP in the summary.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
pub struct ClassJson {
    /// Inbound packets.
    pub packets_in: u64,
    /// Inbound bytes.
    pub bytes_in: u64,
    /// Outbound packets.
    pub packets_out: u64,
    /// Outbound bytes.
    pub bytes_out: u64,
}

/// One entry of `top_ips`.
#[derive(Serialize, Clone, Debug)]
pub struct TopIpJson {
    /// Address.
    pub ip: String,
    /// Group name.
    pub group: String,
    /// Inbound packets.
    pub packets_in: u64,
    /// Inbound bytes (wire length).
    pub bytes_in: u64,
    /// Outbound packets.
    pub packets_out: u64,
    /// Outbound bytes.
    pub bytes_out: u64,
    /// Peak packets per second over one tick, both directions.
    pub peak_pps: u64,
    /// Peak bits per second over one tick, both directions.
    pub peak_bps: u64,
    /// Peak inbound pps.
    pub peak_pps_in: u64,
    /// Peak inbound bps.
    pub peak_bps_in: u64,
    /// Peak outbound pps.
    pub peak_pps_out: u64,
    /// Peak outbound bps.
    pub peak_bps_out: u64,
    /// Per-class split, every class present, keyed by class name.
    pub classes: BTreeMap<&'static str, ClassJson>,
}

/// The summary object, the last line of `--format json` output.
#[derive(Serialize, Clone, Debug)]
pub struct SummaryJson {
    /// Always `"summary"`.
    pub event: &'static str,
    /// Inputs replayed or captured.
    pub inputs: Vec<String>,
    /// Frames seen.
    pub packets: u64,
    /// Bytes seen (sum of wire lengths).
    pub bytes: u64,
    /// Frames per parse-error reason (every reason present, zero or not).
    pub parse_errors: BTreeMap<&'static str, u64>,
    /// Sum of `parse_errors`.
    pub parse_errors_total: u64,
    /// Well-formed frames that carry no IP (ARP, LLDP...).
    pub non_ip: u64,
    /// `"prefixes"` or `"auto"`.
    pub monitor_mode: &'static str,
    /// Monitored IPs that were tracked (had per-IP state) at some point of the run.
    pub monitored_ips_seen: u64,
    /// Per-direction packet accountings of monitored addresses left untracked because the
    /// tracked-address budget was full (`sensor.max_tracked_ips`, or
    /// `sensor.auto_monitor_limit` in auto mode).
    pub unmonitored_overflow_packets: u64,
    /// Their bytes.
    pub unmonitored_overflow_bytes: u64,
    /// The tracked-address budget, null when unlimited.
    pub tracked_ips_limit: Option<u64>,
    /// Addresses tracked at the end of the run.
    pub tracked_ips: u64,
    /// Quiet addresses that stopped being tracked (to make room, or idle).
    pub evicted_ips: u64,
    /// Untracked destinations tracked for their packet rate while the budget was full.
    pub admitted_busy_ips: u64,
    /// Tick length in seconds.
    pub tick_secs: f64,
    /// Ticks closed.
    pub ticks: u64,
    /// Worker threads (text output only: the JSON must not depend on it).
    #[serde(skip)]
    pub workers: usize,
    /// First frame timestamp (s since the epoch), null when no frame.
    pub first_ts: Option<f64>,
    /// Last frame timestamp.
    pub last_ts: Option<f64>,
    /// Frames with a timestamp before their tick (counted in the current tick).
    pub late_frames: u64,
    /// The monitored IPs with the highest peak pps, descending.
    pub top_ips: Vec<TopIpJson>,
    /// Every incident of the run, in order of ending.
    pub incidents: Vec<crate::events::IncidentJson>,
    /// Input errors, one line each (empty when every input was read to its end).
    pub errors: Vec<String>,
    /// Records whose headers lied, by reason; absent when there were none.
    #[serde(skip_serializing_if = "InputAnomaliesJson::is_zero")]
    pub input_anomalies: InputAnomaliesJson,
    /// Live runs: how capture ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capture: Option<String>,
    /// Live runs: per-queue statistics.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub queues: Vec<QueueJson>,
    /// Live runs: interface losses and re-attaches.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<LinkJson>,
    /// With `[mitigation]`: the policy's actions of the run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mitigations: Option<MitigationsJson>,
}

fn ns_to_secs(ns: u64) -> f64 {
    ns as f64 / 1e9
}

impl SummaryJson {
    /// Builds the summary from a report.
    pub fn new(report: &Report, info: &RunInfo) -> Self {
        let t = &report.totals;
        let parse_errors = ParseStatus::ALL
            .iter()
            .filter(|s| s.is_error())
            .map(|&s| (parse_status_name(s), t.parse_status(s)))
            .collect();
        SummaryJson {
            event: "summary",
            inputs: info.inputs.clone(),
            packets: t.packets,
            bytes: t.bytes,
            parse_errors,
            parse_errors_total: t.parse_errors(),
            non_ip: t.parse_status(ParseStatus::NonIp),
            monitor_mode: monitor_mode_name(info.monitor_mode),
            monitored_ips_seen: t.monitored_ips_seen,
            unmonitored_overflow_packets: t.overflow_packets,
            unmonitored_overflow_bytes: t.overflow_bytes,
            tracked_ips_limit: t.ip_limit,
            tracked_ips: t.tracked_ips,
            evicted_ips: t.evicted_ips,
            admitted_busy_ips: t.admitted_heavy_ips,
            tick_secs: info.tick_secs,
            ticks: t.ticks_closed,
            workers: info.workers,
            first_ts: info.time_span_ns.map(|(a, _)| ns_to_secs(a)),
            last_ts: info.time_span_ns.map(|(_, b)| ns_to_secs(b)),
            late_frames: info.late_frames,
            top_ips: report.top.iter().map(|ip| top_ip(ip, info)).collect(),
            incidents: info
                .incidents
                .iter()
                .map(crate::events::IncidentJson::new)
                .collect(),
            errors: info.errors.clone(),
            input_anomalies: info.input_anomalies,
            capture: info.capture.clone(),
            queues: info.queues.clone(),
            link: info.link,
            mitigations: info.mitigations,
        }
    }

    /// One JSON line (no trailing newline).
    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self)
            .unwrap_or_else(|e| format!("{{\"event\":\"error\",\"error\":\"{e}\"}}"))
    }

    /// Human-readable multi-line rendering.
    pub fn to_text(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(o, "surgewatch summary");
        let span = match (self.first_ts, self.last_ts) {
            (Some(a), Some(b)) => format!("{:.3} s of capture time", b - a),
            _ => "no frames".to_string(),
        };
        let _ = writeln!(
            o,
            "  {} packets, {} ({}), {} ticks of {} s, {} worker(s)",
            self.packets,
            human_bytes(self.bytes),
            span,
            self.ticks,
            self.tick_secs,
            self.workers
        );
        let mut errs: Vec<String> = self
            .parse_errors
            .iter()
            .filter(|(_, &n)| n > 0)
            .map(|(k, n)| format!("{k}={n}"))
            .collect();
        if errs.is_empty() {
            errs.push("none".into());
        }
        let _ = writeln!(
            o,
            "  parse errors: {} ({})",
            self.parse_errors_total,
            errs.join(", ")
        );
        let _ = writeln!(o, "  non-IP frames: {}", self.non_ip);
        let mode = if self.monitor_mode == monitor_mode_name(MonitorMode::Auto) {
            " (every destination monitored)"
        } else {
            ""
        };
        let _ = writeln!(
            o,
            "  monitored IPs seen: {}{}",
            self.monitored_ips_seen, mode
        );
        if self.unmonitored_overflow_packets > 0 {
            let limit = self
                .tracked_ips_limit
                .map_or_else(String::new, |l| format!(" (budget of {l} addresses full)"));
            let _ = writeln!(
                o,
                "  packets to untracked addresses{limit}: {} ({} bytes)",
                self.unmonitored_overflow_packets, self.unmonitored_overflow_bytes
            );
        }
        if self.evicted_ips > 0 || self.admitted_busy_ips > 0 {
            let _ = writeln!(
                o,
                "  tracked at the end: {}; quiet addresses evicted: {}; busy untracked addresses admitted: {}",
                self.tracked_ips, self.evicted_ips, self.admitted_busy_ips
            );
        }
        if let Some(m) = &self.mitigations {
            let _ = writeln!(
                o,
                "  mitigations: {} announced, {} refreshed, {} withdrawn, {} refused, {} errors",
                m.announced, m.refreshed, m.withdrawn, m.refused, m.errors
            );
        }
        if self.late_frames > 0 {
            let _ = writeln!(
                o,
                "  frames with out-of-order timestamps: {}",
                self.late_frames
            );
        }
        let a = &self.input_anomalies;
        if a.total() > 0 {
            let _ = writeln!(
                o,
                "  records with impossible headers: {} (original length below captured {}, implausible {}; sub-second out of range, skipped {})",
                a.total(),
                a.wire_len_below_captured,
                a.wire_len_implausible,
                a.subsecond_out_of_range
            );
        }
        if !self.top_ips.is_empty() {
            let _ = writeln!(o, "  top {} monitored IPs by peak pps:", self.top_ips.len());
            let _ = writeln!(
                o,
                "    {:<40} {:>10} {:>11} {:>12} {:>12}  split (in packets)",
                "ip", "peak pps", "peak Mbps", "pkts in", "pkts out"
            );
            for ip in &self.top_ips {
                let split: Vec<String> = ip
                    .classes
                    .iter()
                    .filter(|(_, c)| c.packets_in > 0)
                    .map(|(k, c)| {
                        format!(
                            "{k} {:.0}%",
                            100.0 * c.packets_in as f64 / ip.packets_in.max(1) as f64
                        )
                    })
                    .collect();
                let _ = writeln!(
                    o,
                    "    {:<40} {:>10} {:>11.2} {:>12} {:>12}  {}",
                    ip.ip,
                    ip.peak_pps,
                    ip.peak_bps as f64 / 1e6,
                    ip.packets_in,
                    ip.packets_out,
                    if split.is_empty() {
                        "-".to_string()
                    } else {
                        split.join(", ")
                    }
                );
            }
        }
        let _ = writeln!(o, "  incidents: {}", self.incidents.len());
        for i in &self.incidents {
            let _ = writeln!(
                o,
                "    #{} {} {} conf {}% from {:.3} to {:.3}, peak {} pps / {:.2} Mbps",
                i.incident_id,
                i.target,
                i.family,
                i.confidence,
                i.onset_ts,
                i.end_ts,
                i.peak_pps,
                i.peak_bps as f64 / 1e6
            );
        }
        if let Some(c) = &self.capture {
            let _ = writeln!(o, "  capture: {c}");
        }
        for q in &self.queues {
            let _ = writeln!(
                o,
                "    {}: {} frames, {} parse errors, {} kernel drops (ring full {}, fill ring empty {})",
                q.name, q.received, q.parse_errors, q.kernel_drops, q.rx_ring_full, q.fill_ring_empty
            );
        }
        if let Some(l) = &self.link {
            let _ = writeln!(
                o,
                "    interface lost {} time(s), capture re-attached {} time(s)",
                l.losses, l.reattaches
            );
        }
        for e in &self.errors {
            let _ = writeln!(o, "  input error: {e}");
        }
        o
    }
}

fn top_ip(ip: &IpReport, info: &RunInfo) -> TopIpJson {
    TopIpJson {
        ip: ip.ip.to_string(),
        group: info
            .groups
            .get(ip.group.index())
            .cloned()
            .unwrap_or_else(|| format!("group{}", ip.group.index())),
        packets_in: ip.packets_in,
        bytes_in: ip.bytes_in,
        packets_out: ip.packets_out,
        bytes_out: ip.bytes_out,
        peak_pps: ip.peak_pps,
        peak_bps: ip.peak_bps,
        peak_pps_in: ip.peak_pps_in,
        peak_bps_in: ip.peak_bps_in,
        peak_pps_out: ip.peak_pps_out,
        peak_bps_out: ip.peak_bps_out,
        classes: ip
            .classes
            .iter()
            .map(|c| {
                (
                    class_name(c.class),
                    ClassJson {
                        packets_in: c.packets_in,
                        bytes_in: c.bytes_in,
                        packets_out: c.packets_out,
                        bytes_out: c.bytes_out,
                    },
                )
            })
            .collect(),
    }
}

/// `1536` → `"1.5 KiB"`.
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
