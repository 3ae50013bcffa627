//! The `NAME.expected.json` schema ([`Expected`] and friends) and the bookkeeping that fills it
//! from the generator's own record of what each frame is ([`Record`], [`Acct`]).

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::packet::Class;

/// Monitored prefixes of every catalogue capture, in `expected.json` order.
pub const MONITOR: [&str; 3] = ["203.0.113.0/24", "2001:db8:100::/48", "198.51.100.0/24"];

/// Whether `ip` is inside one of the [`MONITOR`] prefixes.
pub fn is_monitored(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            (o[0], o[1], o[2]) == (203, 0, 113) || (o[0], o[1], o[2]) == (198, 51, 100)
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            (s[0], s[1], s[2]) == (0x2001, 0x0db8, 0x0100)
        }
    }
}

/// Parse-error reasons, with the same snake_case names as surgewatch's `ParseStatus::as_str`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// Frame shorter than the 14-byte Ethernet header.
    TruncatedLink,
    /// A VLAN tag is cut short.
    TruncatedVlan,
    /// Shorter than 20 bytes of IPv4, or than the IHL it announces.
    TruncatedIpv4,
    /// IPv4 version != 4 or IHL < 5.
    BadIpv4Header,
    /// IPv4 total length < header length.
    BadIpv4Length,
    /// Shorter than the 40-byte IPv6 header.
    TruncatedIpv6,
    /// An IPv6 extension header runs past the captured bytes.
    TruncatedIpv6Ext,
    /// TCP/UDP/ICMP header cut short.
    TruncatedL4,
    /// TCP data offset < 5.
    BadTcpHeader,
}

impl Reason {
    /// Every reason.
    pub const ALL: [Reason; 9] = [
        Reason::TruncatedLink,
        Reason::TruncatedVlan,
        Reason::TruncatedIpv4,
        Reason::BadIpv4Header,
        Reason::BadIpv4Length,
        Reason::TruncatedIpv6,
        Reason::TruncatedIpv6Ext,
        Reason::TruncatedL4,
        Reason::BadTcpHeader,
    ];

    /// Name used as a key of `parse_errors`.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::TruncatedLink => "truncated_link",
            Reason::TruncatedVlan => "truncated_vlan",
            Reason::TruncatedIpv4 => "truncated_ipv4",
            Reason::BadIpv4Header => "bad_ipv4_header",
            Reason::BadIpv4Length => "bad_ipv4_length",
            Reason::TruncatedIpv6 => "truncated_ipv6",
            Reason::TruncatedIpv6Ext => "truncated_ipv6_ext",
            Reason::TruncatedL4 => "truncated_l4",
            Reason::BadTcpHeader => "bad_tcp_header",
        }
    }
}

/// How one frame must be accounted, as the generator built it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Acct {
    /// A valid IP packet.
    Ip {
        /// Source address.
        src: IpAddr,
        /// Destination address.
        dst: IpAddr,
        /// Accounting class.
        class: Class,
    },
    /// IP header valid, L4 header truncated or bad: an error that is still accounted per IP.
    L4Error {
        /// Source address.
        src: IpAddr,
        /// Destination address.
        dst: IpAddr,
        /// Accounting class (tcp_other for TCP, udp for UDP, icmp for ICMP).
        class: Class,
        /// The parse error it must produce.
        reason: Reason,
    },
    /// Broken below or at the IP header: an error, not accounted per IP.
    Error(Reason),
    /// A well-formed non-IP frame (ARP, LLDP).
    NonIp,
}

/// One frame of a capture with its bookkeeping.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Timestamp in nanoseconds since the Unix epoch, already truncated to the file resolution.
    pub ts_ns: u64,
    /// Bytes to write (the writer may cut them further to the capture snaplen).
    pub data: Vec<u8>,
    /// Length on the wire.
    pub orig_len: u32,
    /// How it is accounted.
    pub acct: Acct,
    /// Index into the capture's attacks when the frame belongs to an attack.
    pub attack: Option<usize>,
}

/// An attack the generator put into a capture.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttackSpec {
    /// Attack family (`syn_flood`, `dns_amplification`, `multi_vector`, ...).
    pub family: &'static str,
    /// The attacked monitored IP.
    pub target: IpAddr,
    /// Vector families it is made of (one for single-vector attacks).
    pub vectors: Vec<&'static str>,
}

/// Packets and bytes of one class.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassCount {
    /// Packets.
    pub packets: u64,
    /// Sum of wire lengths.
    pub bytes: u64,
}

/// Expected counters of one monitored IP.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedIp {
    /// The monitored address.
    pub ip: IpAddr,
    /// Packets whose destination is this IP.
    pub packets_in: u64,
    /// Wire bytes of those packets.
    pub bytes_in: u64,
    /// Packets whose source is this IP.
    pub packets_out: u64,
    /// Wire bytes of those packets.
    pub bytes_out: u64,
    /// Inbound packets/bytes by class name; only non-zero classes.
    pub classes_in: BTreeMap<String, ClassCount>,
    /// Outbound packets/bytes by class name; only non-zero classes.
    pub classes_out: BTreeMap<String, ClassCount>,
    /// Maximum inbound packets in one whole-second tick (`floor(ts_ns / 1e9)`).
    pub peak_pps: u64,
}

/// One labelled attack.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedAttack {
    /// Attack family.
    pub family: String,
    /// Target IP.
    pub target: IpAddr,
    /// Timestamp of the first attack frame, seconds since the Unix epoch.
    pub onset_ts: f64,
    /// Timestamp of the last attack frame, seconds since the Unix epoch.
    pub end_ts: f64,
    /// `onset_ts` exactly, in nanoseconds.
    pub onset_ns: u64,
    /// `end_ts` exactly, in nanoseconds.
    pub end_ns: u64,
    /// Vectors the attack is made of.
    pub vectors: Vec<String>,
    /// Frames that belong to the attack.
    pub packets: u64,
}

/// Contents of `NAME.expected.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expected {
    /// File name of the capture, beside this file.
    pub capture: String,
    /// What the capture contains.
    pub description: String,
    /// `benign`, `malformed`, or the attack family.
    pub label: String,
    /// `pcap_us`, `pcap_ns`, `pcap_us_be`, `pcapng_us` or `pcapng_ns`.
    pub format: String,
    /// Link type (1 = Ethernet).
    pub link_type: u32,
    /// Snaplen of the file header / interface.
    pub snaplen: u32,
    /// Monitored prefixes to configure.
    pub monitor: Vec<String>,
    /// Frames in the capture.
    pub packets: u64,
    /// Sum of wire (original) lengths of all frames.
    pub bytes: u64,
    /// Timestamp of the first frame, ns since the Unix epoch.
    pub first_ts_ns: u64,
    /// Timestamp of the last frame, ns since the Unix epoch.
    pub last_ts_ns: u64,
    /// Parse errors by reason name; only non-zero reasons.
    pub parse_errors: BTreeMap<String, u64>,
    /// Well-formed non-IP frames.
    pub non_ip: u64,
    /// Number of entries in `ips`.
    pub monitored_ips_seen: u64,
    /// Every monitored IP with traffic in or out, sorted (IPv4 first, numerically).
    pub ips: Vec<ExpectedIp>,
    /// Labelled attacks; empty for benign and malformed captures.
    pub attacks: Vec<ExpectedAttack>,
}

/// Header fields of [`Expected`] that do not come from the records.
#[derive(Clone, Debug)]
pub struct Meta<'a> {
    /// Capture file name.
    pub capture: &'a str,
    /// Description.
    pub description: &'a str,
    /// Label.
    pub label: &'a str,
    /// Format name.
    pub format: &'a str,
    /// Snaplen.
    pub snaplen: u32,
}

#[derive(Default)]
struct IpTally {
    packets_in: u64,
    bytes_in: u64,
    packets_out: u64,
    bytes_out: u64,
    classes_in: BTreeMap<Class, ClassCount>,
    classes_out: BTreeMap<Class, ClassCount>,
    ticks_in: BTreeMap<u64, u64>,
}

fn class_map(m: &BTreeMap<Class, ClassCount>) -> BTreeMap<String, ClassCount> {
    m.iter()
        .filter(|(_, c)| c.packets > 0)
        .map(|(k, v)| (k.as_str().to_string(), *v))
        .collect()
}

/// Computes the expectations of a capture from its records (sorted by time) and attacks.
/// `snaplen` is applied to nothing here: bytes are always wire lengths.
pub fn tally(meta: &Meta<'_>, records: &[Record], attacks: &[AttackSpec]) -> Expected {
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    let mut non_ip = 0;
    let mut bytes = 0;
    let mut ips: BTreeMap<IpAddr, IpTally> = BTreeMap::new();
    let mut att: Vec<(u64, u64, u64)> = vec![(u64::MAX, 0, 0); attacks.len()];
    for r in records {
        let wire = u64::from(r.orig_len);
        bytes += wire;
        let acct = match r.acct {
            Acct::Ip { src, dst, class } => Some((src, dst, class)),
            Acct::L4Error {
                src,
                dst,
                class,
                reason,
            } => {
                *errors.entry(reason.as_str().to_string()).or_default() += 1;
                Some((src, dst, class))
            }
            Acct::Error(reason) => {
                *errors.entry(reason.as_str().to_string()).or_default() += 1;
                None
            }
            Acct::NonIp => {
                non_ip += 1;
                None
            }
        };
        if let Some((src, dst, class)) = acct {
            if is_monitored(dst) {
                let t = ips.entry(dst).or_default();
                t.packets_in += 1;
                t.bytes_in += wire;
                let c = t.classes_in.entry(class).or_default();
                c.packets += 1;
                c.bytes += wire;
                *t.ticks_in.entry(r.ts_ns / 1_000_000_000).or_default() += 1;
            }
            if is_monitored(src) {
                let t = ips.entry(src).or_default();
                t.packets_out += 1;
                t.bytes_out += wire;
                let c = t.classes_out.entry(class).or_default();
                c.packets += 1;
                c.bytes += wire;
            }
        }
        if let Some(a) = r.attack {
            let e = &mut att[a];
            e.0 = e.0.min(r.ts_ns);
            e.1 = e.1.max(r.ts_ns);
            e.2 += 1;
        }
    }
    let ips: Vec<ExpectedIp> = ips
        .into_iter()
        .map(|(ip, t)| ExpectedIp {
            ip,
            packets_in: t.packets_in,
            bytes_in: t.bytes_in,
            packets_out: t.packets_out,
            bytes_out: t.bytes_out,
            classes_in: class_map(&t.classes_in),
            classes_out: class_map(&t.classes_out),
            peak_pps: t.ticks_in.values().copied().max().unwrap_or(0),
        })
        .collect();
    let attacks = attacks
        .iter()
        .zip(att)
        .map(|(a, (on, end, n))| ExpectedAttack {
            family: a.family.to_string(),
            target: a.target,
            onset_ts: on as f64 / 1e9,
            end_ts: end as f64 / 1e9,
            onset_ns: on,
            end_ns: end,
            vectors: a.vectors.iter().map(|v| v.to_string()).collect(),
            packets: n,
        })
        .collect();
    Expected {
        capture: meta.capture.to_string(),
        description: meta.description.to_string(),
        label: meta.label.to_string(),
        format: meta.format.to_string(),
        link_type: crate::writer::LINKTYPE_ETHERNET,
        snaplen: meta.snaplen,
        monitor: MONITOR.iter().map(|s| s.to_string()).collect(),
        packets: records.len() as u64,
        bytes,
        first_ts_ns: records.first().map_or(0, |r| r.ts_ns),
        last_ts_ns: records.last().map_or(0, |r| r.ts_ns),
        parse_errors: errors,
        non_ip,
        monitored_ips_seen: ips.len() as u64,
        ips,
        attacks,
    }
}

/// Parses a monitor prefix such as `203.0.113.0/24` into address and length (for tests).
pub fn parse_prefix(s: &str) -> Option<(IpAddr, u8)> {
    let (a, l) = s.split_once('/')?;
    Some((a.parse().ok()?, l.parse().ok()?))
}

/// Whether `ip` is inside `prefix` (an address and a length), for tests.
pub fn in_prefix(ip: IpAddr, prefix: (IpAddr, u8)) -> bool {
    match (ip, prefix.0) {
        (IpAddr::V4(a), IpAddr::V4(p)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix.1)).unwrap_or(0);
            u32::from(a) & mask == u32::from(p) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(p)) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(prefix.1))
                .unwrap_or(0);
            u128::from(a) & mask == u128::from(p) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn monitor_membership_agrees_with_prefixes() {
        let prefixes: Vec<_> = MONITOR.iter().map(|s| parse_prefix(s).unwrap()).collect();
        let samples: [IpAddr; 8] = [
            Ipv4Addr::new(203, 0, 113, 0).into(),
            Ipv4Addr::new(203, 0, 114, 1).into(),
            Ipv4Addr::new(198, 51, 100, 255).into(),
            Ipv4Addr::new(192, 0, 2, 1).into(),
            "2001:db8:100::1".parse::<Ipv6Addr>().unwrap().into(),
            "2001:db8:100:ffff::1".parse::<Ipv6Addr>().unwrap().into(),
            "2001:db8:101::1".parse::<Ipv6Addr>().unwrap().into(),
            "2001:db8::1".parse::<Ipv6Addr>().unwrap().into(),
        ];
        for ip in samples {
            let by_prefix = prefixes.iter().any(|p| in_prefix(ip, *p));
            assert_eq!(is_monitored(ip), by_prefix, "{ip}");
        }
    }

    #[test]
    fn tally_counts_both_directions_and_peaks() {
        let a: IpAddr = Ipv4Addr::new(203, 0, 113, 1).into();
        let b: IpAddr = Ipv4Addr::new(198, 51, 100, 1).into();
        let o: IpAddr = Ipv4Addr::new(192, 0, 2, 1).into();
        let rec = |ts_ns, src, dst, class| Record {
            ts_ns,
            data: vec![],
            orig_len: 100,
            acct: Acct::Ip { src, dst, class },
            attack: None,
        };
        let recs = vec![
            rec(1_000_000_000, o, a, Class::Syn),
            rec(1_500_000_000, o, a, Class::Syn),
            rec(2_100_000_000, a, b, Class::Udp),
            Record {
                acct: Acct::NonIp,
                ..rec(3_000_000_000, o, a, Class::Syn)
            },
            Record {
                acct: Acct::Error(Reason::TruncatedIpv4),
                ..rec(3_000_000_000, o, a, Class::Syn)
            },
        ];
        let meta = Meta {
            capture: "x.pcap",
            description: "",
            label: "benign",
            format: "pcap_us",
            snaplen: 65535,
        };
        let e = tally(&meta, &recs, &[]);
        assert_eq!(e.packets, 5);
        assert_eq!(e.bytes, 500);
        assert_eq!(e.non_ip, 1);
        assert_eq!(e.parse_errors.get("truncated_ipv4"), Some(&1));
        assert_eq!(e.ips.len(), 2);
        let ia = e.ips.iter().find(|i| i.ip == a).unwrap();
        assert_eq!((ia.packets_in, ia.packets_out, ia.peak_pps), (2, 1, 2));
        let ib = e.ips.iter().find(|i| i.ip == b).unwrap();
        assert_eq!((ib.packets_in, ib.packets_out, ib.peak_pps), (1, 0, 1));
    }
}
