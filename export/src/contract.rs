//! The names of surgewatch's public output contract, defined here and only here.
//!
//! Every domain value that appears in the output by name — event kinds, attack families,
//! traffic classes, parse-error reasons, directions, encapsulations, monitor modes — is
//! mapped to its name by one exhaustive `match` below, so a new variant cannot reach the
//! output without a name chosen for it here. The domain crates carry no names of their own:
//! they know nothing of their wire format. The names are part of surgewatch's interface
//! (documented in the README, pinned by `tests/contract.rs`); renaming one is a breaking
//! change.

use surgewatch_detect::{EventKind, Family};
use surgewatch_per_ip::Direction;
use surgewatch_pipeline::{Encap, ParseStatus, TrafficClass};

/// How what is monitored was chosen.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum MonitorMode {
    /// Configured prefixes (config groups, `--monitor`, the agent's addresses).
    #[default]
    Prefixes,
    /// Nothing configured: every destination address, up to a limit.
    Auto,
}

/// `"start"`, `"update"`, `"end"`: the `event` of an incident line.
pub fn event_name(k: EventKind) -> &'static str {
    match k {
        EventKind::Start => "start",
        EventKind::Update => "update",
        EventKind::End => "end",
    }
}

/// An attack family: `family` and `vectors` of events and incidents.
pub fn family_name(f: Family) -> &'static str {
    match f {
        Family::SynFlood => "syn_flood",
        Family::SynackFlood => "synack_flood",
        Family::AckFlood => "ack_flood",
        Family::RstFlood => "rst_flood",
        Family::TcpFlood => "tcp_flood",
        Family::UdpFlood => "udp_flood",
        Family::IcmpFlood => "icmp_flood",
        Family::FragmentFlood => "fragment_flood",
        Family::DnsAmplification => "dns_amplification",
        Family::NtpAmplification => "ntp_amplification",
        Family::MemcachedAmplification => "memcached_amplification",
        Family::SsdpAmplification => "ssdp_amplification",
        Family::CldapAmplification => "cldap_amplification",
        Family::SnmpAmplification => "snmp_amplification",
        Family::ChargenAmplification => "chargen_amplification",
        Family::UdpAmplification => "udp_amplification",
        Family::MultiVector => "multi_vector",
        Family::Unknown => "unknown",
    }
}

/// A traffic class: the keys of `classes`, the values of `over_classes`.
pub fn class_name(c: TrafficClass) -> &'static str {
    match c {
        TrafficClass::Syn => "syn",
        TrafficClass::SynAck => "synack",
        TrafficClass::Ack => "ack",
        TrafficClass::Rst => "rst",
        TrafficClass::TcpOther => "tcp_other",
        TrafficClass::Udp => "udp",
        TrafficClass::Icmp => "icmp",
        TrafficClass::Fragment => "fragment",
        TrafficClass::Other => "other",
    }
}

/// A parse outcome: the keys of `parse_errors` (the error reasons), `non_ip`.
pub fn parse_status_name(s: ParseStatus) -> &'static str {
    match s {
        ParseStatus::Ok => "ok",
        ParseStatus::NonIp => "non_ip",
        ParseStatus::UnsupportedLinkType => "unsupported_link_type",
        ParseStatus::TruncatedLink => "truncated_link",
        ParseStatus::TruncatedVlan => "truncated_vlan",
        ParseStatus::TooManyVlans => "too_many_vlans",
        ParseStatus::TruncatedIpv4 => "truncated_ipv4",
        ParseStatus::BadIpv4Header => "bad_ipv4_header",
        ParseStatus::BadIpv4Length => "bad_ipv4_length",
        ParseStatus::TruncatedIpv6 => "truncated_ipv6",
        ParseStatus::TruncatedIpv6Ext => "truncated_ipv6_ext",
        ParseStatus::BadIpVersion => "bad_ip_version",
        ParseStatus::TruncatedL4 => "truncated_l4",
        ParseStatus::BadTcpHeader => "bad_tcp_header",
        ParseStatus::TruncatedTunnel => "truncated_tunnel",
        ParseStatus::BadTunnelHeader => "bad_tunnel_header",
    }
}

/// `"in"` or `"out"` (the `_in`/`_out` of per-IP fields; metric labels later).
pub fn direction_name(d: Direction) -> &'static str {
    match d {
        Direction::In => "in",
        Direction::Out => "out",
    }
}

/// The encapsulation a packet was taken out of (metric labels later).
pub fn encap_name(e: Encap) -> &'static str {
    match e {
        Encap::None => "none",
        Encap::Gre => "gre",
        Encap::ErspanII => "erspan_ii",
        Encap::ErspanIII => "erspan_iii",
        Encap::Vxlan => "vxlan",
    }
}

/// The summary's `monitor_mode`.
pub fn monitor_mode_name(m: MonitorMode) -> &'static str {
    match m {
        MonitorMode::Prefixes => "prefixes",
        MonitorMode::Auto => "auto",
    }
}
