//! Rules and how they are derived from an incident's fingerprint.

use std::net::IpAddr;

use ipnet::IpNet;
use surgewatch_detect::{Family, IncidentEvent};
use surgewatch_per_ip::reflector::{AmpBucket, REFLECTORS};
use surgewatch_per_ip::GroupId;
use surgewatch_pipeline::TrafficClass;

use crate::config::{Ladder, LevelAction};

/// A BGP community.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Community {
    /// RFC 1997 `ASN:VALUE`.
    Standard(u16, u16),
    /// RFC 8092 `GLOBAL:LOCAL1:LOCAL2`.
    Large(u32, u32, u32),
}

/// The well-known BLACKHOLE community (RFC 7999), on every RTBH route.
pub const BLACKHOLE: Community = Community::Standard(65535, 666);

/// What kind of rule.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// A BGP FlowSpec rule (RFC 8955/8956).
    Flowspec,
    /// A remotely triggered black-hole route.
    Rtbh,
    /// A scrubbing hand-off.
    Scrubbing,
}

/// What the rule does with the traffic it matches.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Then {
    /// FlowSpec traffic-rate, bits per second.
    RateLimit {
        /// The limit.
        bps: u64,
    },
    /// FlowSpec traffic-rate 0.
    Discard,
    /// Black-holed by the routers (RTBH).
    Blackhole,
    /// Diverted to the scrubbing provider.
    Scrub,
}

/// A TCP flags match (FlowSpec bitmask operator): every bit of `set` set and every bit
/// of `unset` clear. Bits as in the TCP header: FIN 0x01, SYN 0x02, RST 0x04, PSH 0x08,
/// ACK 0x10.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TcpFlags {
    /// Bits that must be set.
    pub set: u8,
    /// Bits that must be clear.
    pub unset: u8,
}

impl TcpFlags {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// RST.
    pub const RST: u8 = 0x04;
    /// ACK.
    pub const ACK: u8 = 0x10;
}

/// One rule: what it matches, what it does, and why.
///
/// Its identity for coalescing and caps ([`Rule::same_rule`]) is the destination, kind and
/// match fields; `then`, communities, next hop, level and expiry are what an announce of
/// the same rule may change.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Rule {
    /// FlowSpec, RTBH or scrubbing.
    pub kind: Kind,
    /// The target's /32 or /128 (of a refused network incident: its network).
    pub destination: IpNet,
    /// IP protocols (FlowSpec); empty: any.
    pub protocols: Vec<u8>,
    /// Source ports; empty: any.
    pub source_ports: Vec<u16>,
    /// Destination ports; empty: any.
    pub destination_ports: Vec<u16>,
    /// TCP flags; `None`: any.
    pub tcp_flags: Option<TcpFlags>,
    /// IP total length range, inclusive; `None`: any.
    pub packet_length: Option<(u16, u16)>,
    /// Match fragments only.
    pub fragment: bool,
    /// What the matched traffic gets.
    pub then: Then,
    /// BGP communities (RTBH: [`BLACKHOLE`] first, then the configured ones).
    pub communities: Vec<Community>,
    /// RTBH next hop; `None`: the speaker's.
    pub next_hop: Option<IpAddr>,
    /// Ladder level, from 1.
    pub level: u8,
    /// When the rule lapses unless refreshed, ns (0 in a refused action).
    pub expires_ns: u64,
    /// The incident it is for.
    pub incident_id: u64,
    /// The incident's group.
    pub group: GroupId,
}

/// Identity of a rule: destination, kind and match.
pub(crate) type RuleKey = (
    IpNet,
    Kind,
    Vec<u8>,
    Vec<u16>,
    Vec<u16>,
    Option<TcpFlags>,
    Option<(u16, u16)>,
    bool,
);

impl Rule {
    pub(crate) fn key(&self) -> RuleKey {
        (
            self.destination,
            self.kind,
            self.protocols.clone(),
            self.source_ports.clone(),
            self.destination_ports.clone(),
            self.tcp_flags,
            self.packet_length,
            self.fragment,
        )
    }

    /// Whether `other` is the same rule (destination, kind, match), whatever it does.
    pub fn same_rule(&self, other: &Rule) -> bool {
        self.key() == other.key()
    }

    /// Whether `other` would put the same thing in force: everything but the expiry equal.
    pub(crate) fn same_effect(&self, other: &Rule) -> bool {
        Rule {
            expires_ns: other.expires_ns,
            ..self.clone()
        } == *other
    }

    /// A rule matching everything to `destination`, doing `then`.
    pub(crate) fn bare(
        kind: Kind,
        destination: IpNet,
        then: Then,
        level: u8,
        ev: &IncidentEvent,
    ) -> Rule {
        Rule {
            kind,
            destination,
            protocols: Vec::new(),
            source_ports: Vec::new(),
            destination_ports: Vec::new(),
            tcp_flags: None,
            packet_length: None,
            fragment: false,
            then,
            communities: Vec::new(),
            next_hop: None,
            level,
            expires_ns: 0,
            incident_id: ev.incident_id,
            group: ev.group,
        }
    }
}

/// Most destination ports a rule lists; more and the attack is not "concentrated".
pub const MAX_DESTINATION_PORTS: usize = 4;
/// Most source ports of a generic `udp_amplification` rule.
pub const MAX_SOURCE_PORTS: usize = 8;
/// Share of the watched packets (per mille) the listed destination ports must carry.
const CONCENTRATED_PERMILLE: u64 = 900;
/// Length buckets carrying less than this share (per mille) at either end are left out of
/// the packet-length range.
const LENGTH_TAIL_PERMILLE: u64 = 10;

const TCP: u8 = 6;
const UDP: u8 = 17;
const ICMP: u8 = 1;
const ICMPV6: u8 = 58;

/// The target's host prefix (/32 or /128).
pub(crate) fn host(ip: IpAddr) -> IpNet {
    IpNet::from(ip)
}

/// The rules of level `level` (doing `action`) for the incident of `ev`, in a stable order.
///
/// - RTBH: one route for the target's /32 or /128 with [`BLACKHOLE`] and the ladder's
///   communities and next hop.
/// - Scrubbing: one hand-off for the target.
/// - FlowSpec: one rule per vector of the event (`vectors`, or the family), in the event's
///   order (largest first), duplicates merged; the caller bounds how many are used. Each
///   carries the destination /32 or /128 and
///   - SYN, SYN-ACK, ACK, RST floods: TCP with the flags of the class (SYN without ACK;
///     SYN and ACK; ACK without SYN, RST and FIN; RST), other TCP floods: TCP;
///   - UDP floods: UDP; ICMP floods: ICMP (IPv4) or ICMPv6;
///   - TCP and UDP floods: the destination ports when at most [`MAX_DESTINATION_PORTS`]
///     of them carry 90 % of the watched packets;
///   - amplification: UDP from the family's reflector port (`udp_amplification`: the top
///     source ports that are generic reflector ports, at most [`MAX_SOURCE_PORTS`], else
///     every generic reflector port); when fragments went over their threshold too, a
///     second rule for UDP fragments to the target (later fragments carry no ports), of
///     any length;
///   - fragment floods: the fragment flag (any protocol);
///   - `unknown`: the protocols of the classes that went over their threshold, the
///     destination alone when none narrows it;
///   - every rule: the packet-length range of the watched length distribution (buckets
///     with under 1 % of the packets at either end left out), turned from frame lengths
///     into IP lengths by taking off 14 to 18 bytes of Ethernet header (so it still covers
///     VLAN-tagged frames); omitted when it would cover every length.
pub fn rules_for(ev: &IncidentEvent, level: u8, action: LevelAction, ladder: &Ladder) -> Vec<Rule> {
    let dest = host(ev.target);
    match action {
        LevelAction::Rtbh => {
            let mut r = Rule::bare(Kind::Rtbh, dest, Then::Blackhole, level, ev);
            r.communities.push(BLACKHOLE);
            for c in &ladder.communities {
                if !r.communities.contains(c) {
                    r.communities.push(*c);
                }
            }
            r.next_hop = if ev.target.is_ipv4() {
                ladder.next_hop_v4
            } else {
                ladder.next_hop_v6
            };
            vec![r]
        }
        LevelAction::Scrubbing => vec![Rule::bare(Kind::Scrubbing, dest, Then::Scrub, level, ev)],
        LevelAction::FlowspecRateLimit | LevelAction::FlowspecDiscard => {
            let then = if action == LevelAction::FlowspecDiscard {
                Then::Discard
            } else {
                Then::RateLimit {
                    bps: rate_limit(ev, ladder),
                }
            };
            flowspec(ev, level, then)
        }
    }
}

fn rate_limit(ev: &IncidentEvent, ladder: &Ladder) -> u64 {
    let normal = ev.threshold.bps * ladder.rate_limit_multiple;
    // `as` saturates and maps NaN to 0.
    (normal as u64).max(ladder.rate_limit_floor_bps)
}

fn flowspec(ev: &IncidentEvent, level: u8, then: Then) -> Vec<Rule> {
    let watched: u64 = ev
        .lengths
        .iter()
        .map(|(_, n)| *n)
        .fold(0, u64::saturating_add);
    let lengths = length_range(&ev.lengths, watched);
    let dports = concentrated_ports(&ev.top_dst_ports, watched);
    let vectors: Vec<Family> = if ev.vectors.is_empty() {
        vec![ev.family]
    } else {
        ev.vectors.clone()
    };
    let mut out: Vec<Rule> = Vec::new();
    for family in vectors {
        let mut r = Rule::bare(Kind::Flowspec, host(ev.target), then, level, ev);
        let flags = |set, unset| Some(TcpFlags { set, unset });
        let mut ports_apply = false;
        match family {
            Family::SynFlood => {
                r.protocols = vec![TCP];
                r.tcp_flags = flags(TcpFlags::SYN, TcpFlags::ACK);
                ports_apply = true;
            }
            Family::SynackFlood => {
                r.protocols = vec![TCP];
                r.tcp_flags = flags(TcpFlags::SYN | TcpFlags::ACK, 0);
            }
            Family::AckFlood => {
                r.protocols = vec![TCP];
                r.tcp_flags = flags(TcpFlags::ACK, TcpFlags::SYN | TcpFlags::RST | TcpFlags::FIN);
                ports_apply = true;
            }
            Family::RstFlood => {
                r.protocols = vec![TCP];
                r.tcp_flags = flags(TcpFlags::RST, 0);
                ports_apply = true;
            }
            Family::TcpFlood => {
                r.protocols = vec![TCP];
                ports_apply = true;
            }
            Family::UdpFlood => {
                r.protocols = vec![UDP];
                ports_apply = true;
            }
            Family::IcmpFlood => r.protocols = vec![icmp(ev.target)],
            Family::FragmentFlood => r.fragment = true,
            Family::DnsAmplification
            | Family::NtpAmplification
            | Family::MemcachedAmplification
            | Family::SsdpAmplification
            | Family::CldapAmplification
            | Family::SnmpAmplification
            | Family::ChargenAmplification => {
                r.protocols = vec![UDP];
                r.source_ports = REFLECTORS
                    .iter()
                    .filter(|x| surgewatch_detect::classify::family_of(x.bucket) == family)
                    .map(|x| x.port)
                    .collect();
            }
            Family::UdpAmplification => {
                r.protocols = vec![UDP];
                let generic = |p: u16| {
                    REFLECTORS
                        .iter()
                        .any(|x| x.port == p && x.bucket == AmpBucket::Other)
                };
                let mut ports: Vec<u16> = ev
                    .top_src_ports
                    .iter()
                    .map(|(p, _, _)| *p)
                    .filter(|p| generic(*p))
                    .take(MAX_SOURCE_PORTS)
                    .collect();
                if ports.is_empty() {
                    ports = REFLECTORS
                        .iter()
                        .filter(|x| x.bucket == AmpBucket::Other)
                        .map(|x| x.port)
                        .collect();
                }
                ports.sort_unstable();
                r.source_ports = ports;
            }
            Family::MultiVector | Family::Unknown => {
                let mut protocols = Vec::new();
                let mut fragment_only = !ev.over_classes.is_empty();
                for class in &ev.over_classes {
                    let p = match class {
                        TrafficClass::Syn
                        | TrafficClass::SynAck
                        | TrafficClass::Ack
                        | TrafficClass::Rst
                        | TrafficClass::TcpOther => Some(TCP),
                        TrafficClass::Udp => Some(UDP),
                        TrafficClass::Icmp => Some(icmp(ev.target)),
                        TrafficClass::Fragment => None,
                        TrafficClass::Other => {
                            // Another protocol: nothing narrower than the destination.
                            protocols.clear();
                            fragment_only = false;
                            break;
                        }
                    };
                    if let Some(p) = p {
                        fragment_only = false;
                        if !protocols.contains(&p) {
                            protocols.push(p);
                        }
                    }
                }
                protocols.sort_unstable();
                r.protocols = protocols;
                r.fragment = fragment_only;
            }
        }
        if ports_apply {
            r.destination_ports = dports.clone();
        }
        r.packet_length = lengths;
        // Later fragments of reflected answers carry no ports: a companion rule takes the
        // fragments of UDP to the target (any length: the last fragment is short).
        let companion = (is_amplification(family)
            && ev.over_classes.contains(&TrafficClass::Fragment))
        .then(|| Rule {
            source_ports: Vec::new(),
            packet_length: None,
            fragment: true,
            ..r.clone()
        });
        for rule in std::iter::once(r).chain(companion) {
            if !out.iter().any(|o| o.same_rule(&rule)) {
                out.push(rule);
            }
        }
    }
    out
}

fn is_amplification(f: Family) -> bool {
    matches!(
        f,
        Family::DnsAmplification
            | Family::NtpAmplification
            | Family::MemcachedAmplification
            | Family::SsdpAmplification
            | Family::CldapAmplification
            | Family::SnmpAmplification
            | Family::ChargenAmplification
            | Family::UdpAmplification
    )
}

fn icmp(target: IpAddr) -> u8 {
    if target.is_ipv4() {
        ICMP
    } else {
        ICMPV6
    }
}

/// The destination ports carrying ≥ 90 % of `watched` packets, when at most
/// [`MAX_DESTINATION_PORTS`] do; sorted. Empty otherwise.
fn concentrated_ports(top: &[(u16, u64, u64)], watched: u64) -> Vec<u16> {
    if watched == 0 {
        return Vec::new();
    }
    let mut sorted: Vec<(u16, u64)> = top.iter().map(|(p, _, n)| (*p, *n)).collect();
    sorted.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut covered = 0u64;
    let mut ports = Vec::new();
    for (port, n) in sorted.into_iter().take(MAX_DESTINATION_PORTS) {
        covered = covered.saturating_add(n);
        ports.push(port);
        if u128::from(covered) * 1000 >= u128::from(watched) * u128::from(CONCENTRATED_PERMILLE) {
            ports.sort_unstable();
            return ports;
        }
    }
    Vec::new()
}

/// Frame-length bounds of a bucket label ("64-127", "1500+").
fn bucket_bounds(label: &str) -> Option<(u32, u32)> {
    if let Some(lo) = label.strip_suffix('+') {
        return Some((lo.parse().ok()?, u32::from(u16::MAX)));
    }
    let (lo, hi) = label.split_once('-')?;
    Some((lo.parse().ok()?, hi.parse().ok()?))
}

/// The IP-length range of the watched packets, `None` when unknown or everything.
fn length_range(lengths: &[(&'static str, u64)], watched: u64) -> Option<(u16, u16)> {
    if watched == 0 {
        return None;
    }
    let tail =
        |n: u64| u128::from(n) * 1000 < u128::from(watched) * u128::from(LENGTH_TAIL_PERMILLE);
    let buckets: Vec<(u32, u32, u64)> = lengths
        .iter()
        .filter_map(|(l, n)| bucket_bounds(l).map(|(lo, hi)| (lo, hi, *n)))
        .collect();
    let first = buckets.iter().position(|b| b.2 > 0 && !tail(b.2))?;
    let last = buckets.iter().rposition(|b| b.2 > 0 && !tail(b.2))?;
    let lo = buckets.get(first)?.0;
    let hi = buckets.get(last)?.1;
    // Frame → IP length: minus 18 (VLAN-tagged Ethernet) at the bottom, minus 14 at the top;
    // the open top bucket stays open.
    let ip_lo = lo.saturating_sub(18);
    let ip_hi = if hi >= u32::from(u16::MAX) {
        u32::from(u16::MAX)
    } else {
        hi.saturating_sub(14)
    };
    if ip_lo == 0 && ip_hi >= u32::from(u16::MAX) {
        return None;
    }
    Some((
        u16::try_from(ip_lo).unwrap_or(u16::MAX),
        u16::try_from(ip_hi).unwrap_or(u16::MAX),
    ))
}
