//! Mitigation actions as JSON lines: `{"event":"mitigation", "action", "incident_id",
//! "target", "level", "kind", "rule", "ts", "expires_ts", "mode", "speaker", "outcome"}`
//! (issue 13's output contract), from the policy's [`Action`] and the outcome of executing it.
//! The names of every value are here, pinned by `tests/contract.rs`.

use serde::Serialize;
use surgewatch_mitigate::{Action, Community, Kind, Mode, Op, Outcome, RefuseReason, Then};
use surgewatch_mitigate::{Rule, WithdrawReason};

fn secs(ns: u64) -> f64 {
    ns as f64 / 1e9
}

/// `"announce"`, `"refresh"`, `"withdraw"` or `"refused"`.
pub fn op_name(op: &Op) -> &'static str {
    match op {
        Op::Announce => "announce",
        Op::Refresh => "refresh",
        Op::Withdraw(_) => "withdraw",
        Op::Refused(_) => "refused",
    }
}

/// Why a rule is withdrawn.
pub fn withdraw_reason_name(r: WithdrawReason) -> &'static str {
    match r {
        WithdrawReason::Ended => "ended",
        WithdrawReason::Deescalated => "deescalated",
        WithdrawReason::Escalated => "escalated",
        WithdrawReason::Replaced => "replaced",
        WithdrawReason::Expired => "expired",
        WithdrawReason::Shutdown => "shutdown",
    }
}

/// Why a rule is refused.
pub fn refuse_reason_name(r: RefuseReason) -> &'static str {
    match r {
        RefuseReason::NetworkIncident => "network_incident",
        RefuseReason::OutsideMonitored => "outside_monitored",
        RefuseReason::NeverList => "never_list",
        RefuseReason::PerTargetCap => "per_target_cap",
        RefuseReason::GlobalCap => "global_cap",
    }
}

/// `"flowspec"`, `"rtbh"` or `"scrubbing"`.
pub fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::Flowspec => "flowspec",
        Kind::Rtbh => "rtbh",
        Kind::Scrubbing => "scrubbing",
    }
}

/// `"rate-limit"`, `"discard"`, `"blackhole"` or `"scrub"`.
pub fn then_name(t: Then) -> &'static str {
    match t {
        Then::RateLimit { .. } => "rate-limit",
        Then::Discard => "discard",
        Then::Blackhole => "blackhole",
        Then::Scrub => "scrub",
    }
}

/// `"dry-run"` or `"enforce"`.
pub fn mode_name(m: Mode) -> &'static str {
    match m {
        Mode::DryRun => "dry-run",
        Mode::Enforce => "enforce",
    }
}

/// `"ok"`, `"dry-run"` or `"error: …"`.
pub fn outcome_text(o: &Outcome) -> String {
    match o {
        Outcome::Ok => "ok".into(),
        Outcome::DryRun => "dry-run".into(),
        Outcome::Error(e) => format!("error: {e}"),
    }
}

/// A community as operators write it: `65535:666`, or `1:2:3` for a large one.
pub fn community_text(c: Community) -> String {
    match c {
        Community::Standard(a, v) => format!("{a}:{v}"),
        Community::Large(g, a, b) => format!("{g}:{a}:{b}"),
    }
}

/// The rule of a mitigation line.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct RuleJson {
    /// The target's /32 or /128.
    pub destination: String,
    /// IP protocol numbers; empty: any.
    pub protocol: Vec<u8>,
    /// Source ports; empty: any.
    pub source_ports: Vec<u16>,
    /// Destination ports; empty: any.
    pub destination_ports: Vec<u16>,
    /// TCP flags `{"set", "unset"}` (bit masks); null: any.
    pub tcp_flags: Option<TcpFlagsJson>,
    /// IP total length `[min, max]`; null: any.
    pub packet_length: Option<(u16, u16)>,
    /// Fragments only.
    pub fragment: bool,
    /// `"rate-limit"`, `"discard"`, `"blackhole"` or `"scrub"`.
    pub then: &'static str,
    /// The rate limit, bits per second (rate-limit only).
    pub rate_bps: Option<u64>,
    /// BGP communities.
    pub communities: Vec<String>,
    /// RTBH next hop; null: the speaker's.
    pub next_hop: Option<String>,
}

/// TCP flag bit masks of a rule.
#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpFlagsJson {
    /// Bits that must be set.
    pub set: u8,
    /// Bits that must be clear.
    pub unset: u8,
}

impl RuleJson {
    /// Maps a rule.
    pub fn new(r: &Rule) -> Self {
        RuleJson {
            destination: r.destination.to_string(),
            protocol: r.protocols.clone(),
            source_ports: r.source_ports.clone(),
            destination_ports: r.destination_ports.clone(),
            tcp_flags: r.tcp_flags.map(|f| TcpFlagsJson {
                set: f.set,
                unset: f.unset,
            }),
            packet_length: r.packet_length,
            fragment: r.fragment,
            then: then_name(r.then),
            rate_bps: match r.then {
                Then::RateLimit { bps } => Some(bps),
                _ => None,
            },
            communities: r.communities.iter().map(|&c| community_text(c)).collect(),
            next_hop: r.next_hop.map(|h| h.to_string()),
        }
    }
}

/// One mitigation line.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct MitigationJson {
    /// Always `"mitigation"`.
    pub event: &'static str,
    /// `"announce"`, `"refresh"`, `"withdraw"` or `"refused"`.
    pub action: &'static str,
    /// Why a rule is withdrawn or refused; absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    /// The incident the rule is for.
    pub incident_id: u64,
    /// The attacked address (of a refused network incident: its network).
    pub target: String,
    /// Ladder level, from 1.
    pub level: u8,
    /// `"flowspec"`, `"rtbh"` or `"scrubbing"`.
    pub kind: &'static str,
    /// What the rule matches and does.
    pub rule: RuleJson,
    /// When the action was decided, s.
    pub ts: f64,
    /// When the rule lapses unless refreshed, s (null for a withdrawal or refusal).
    pub expires_ts: Option<f64>,
    /// `"dry-run"` or `"enforce"`.
    pub mode: &'static str,
    /// The speaker that executed it (null in dry-run or when refused).
    pub speaker: Option<String>,
    /// `"ok"`, `"dry-run"` or `"error: …"`.
    pub outcome: String,
}

impl MitigationJson {
    /// Maps an action, executed by `speaker` with `outcome`.
    pub fn new(a: &Action, speaker: Option<&str>, outcome: &Outcome) -> Self {
        let r = &a.rule;
        let reason = match a.op {
            Op::Withdraw(w) => Some(withdraw_reason_name(w)),
            Op::Refused(f) => Some(refuse_reason_name(f)),
            Op::Announce | Op::Refresh => None,
        };
        let target = if r.destination.prefix_len() == r.destination.max_prefix_len() {
            r.destination.addr().to_string()
        } else {
            r.destination.to_string()
        };
        MitigationJson {
            event: "mitigation",
            action: op_name(&a.op),
            reason,
            incident_id: r.incident_id,
            target,
            level: r.level,
            kind: kind_name(r.kind),
            rule: RuleJson::new(r),
            ts: secs(a.ts_ns),
            expires_ts: matches!(a.op, Op::Announce | Op::Refresh).then(|| secs(r.expires_ns)),
            mode: mode_name(a.mode),
            speaker: speaker.map(str::to_owned),
            outcome: outcome_text(outcome),
        }
    }

    /// The JSON line.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The text line: `[ts] MITIGATION announce #3 flowspec 203.0.113.10/32 proto 17 sport
    /// 123 -> rate-limit 50.00 Mbps (dry-run: dry-run)`.
    pub fn to_text(&self) -> String {
        let r = &self.rule;
        let mut m = String::new();
        let list = |v: &[u16]| v.iter().map(u16::to_string).collect::<Vec<_>>().join(",");
        if !r.protocol.is_empty() {
            let p: Vec<String> = r.protocol.iter().map(u8::to_string).collect();
            m.push_str(&format!(" proto {}", p.join(",")));
        }
        if !r.source_ports.is_empty() {
            m.push_str(&format!(" sport {}", list(&r.source_ports)));
        }
        if !r.destination_ports.is_empty() {
            m.push_str(&format!(" dport {}", list(&r.destination_ports)));
        }
        if let Some(f) = r.tcp_flags {
            m.push_str(&format!(" flags {:#04x}/{:#04x}", f.set, f.unset));
        }
        if let Some((a, b)) = r.packet_length {
            m.push_str(&format!(" len {a}-{b}"));
        }
        if r.fragment {
            m.push_str(" fragments");
        }
        let then = match r.rate_bps {
            Some(bps) => format!("rate-limit {:.2} Mbps", bps as f64 / 1e6),
            None => r.then.to_string(),
        };
        let reason = self.reason.map_or_else(String::new, |x| format!(" ({x})"));
        format!(
            "[{:.3}] MITIGATION {}{reason} #{} level {} {} {}{m} -> {then} [{}: {}]",
            self.ts,
            self.action,
            self.incident_id,
            self.level,
            self.kind,
            r.destination,
            self.mode,
            self.outcome
        )
    }
}
