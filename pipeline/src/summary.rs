//! The `Copy` packet summary that parsing produces and everything downstream consumes.

use std::net::{IpAddr, Ipv4Addr};

/// Link-layer framing of a capture, from the pcap/pcapng `LINKTYPE_*` registry.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LinkType {
    /// `LINKTYPE_ETHERNET` (1): Ethernet II, possibly VLAN/QinQ-tagged.
    Ethernet,
    /// `LINKTYPE_RAW` (101, also DLT 12/14 on some systems): raw IPv4 or IPv6, version nibble decides.
    RawIp,
    /// `LINKTYPE_IPV4` (228): raw IPv4 only.
    RawIpv4,
    /// `LINKTYPE_IPV6` (229): raw IPv6 only.
    RawIpv6,
    /// `LINKTYPE_LINUX_SLL` (113): Linux "cooked" capture v1, 16-byte header.
    LinuxSll,
    /// `LINKTYPE_LINUX_SLL2` (276): Linux "cooked" capture v2, 20-byte header.
    LinuxSll2,
    /// `LINKTYPE_NULL` (0): BSD loopback, 4-byte address family in host byte order of the capturer.
    Null,
    /// `LINKTYPE_LOOP` (108): OpenBSD loopback, 4-byte address family in network byte order.
    Loop,
}

impl LinkType {
    /// Maps a pcap/pcapng link-type number to a supported link type.
    pub fn from_linktype(code: u32) -> Option<Self> {
        Some(match code {
            0 => LinkType::Null,
            1 => LinkType::Ethernet,
            12 | 14 | 101 => LinkType::RawIp,
            108 => LinkType::Loop,
            113 => LinkType::LinuxSll,
            228 => LinkType::RawIpv4,
            229 => LinkType::RawIpv6,
            276 => LinkType::LinuxSll2,
            _ => return None,
        })
    }

    /// The canonical `LINKTYPE_*` number (used when writing captures).
    pub fn linktype(self) -> u32 {
        match self {
            LinkType::Null => 0,
            LinkType::Ethernet => 1,
            LinkType::RawIp => 101,
            LinkType::Loop => 108,
            LinkType::LinuxSll => 113,
            LinkType::RawIpv4 => 228,
            LinkType::RawIpv6 => 229,
            LinkType::LinuxSll2 => 276,
        }
    }
}

/// Outcome of parsing one frame. Everything but [`ParseStatus::Ok`] and
/// [`ParseStatus::NonIp`] is a parse error that is counted by reason.
///
/// When the status is an L4 problem (`TruncatedL4`, `BadTcpHeader`), a broken IPv6
/// extension-header chain (`TruncatedIpv6Ext`) or a tunnel header that could not be
/// decapsulated (`TruncatedTunnel`, `BadTunnelHeader`), the IP fields of the summary are still
/// valid (`ip_version` is set) and the packet is still accounted to its addresses: for a
/// tunnel problem, those of the packet carrying the tunnel. For every other status
/// `ip_version` is 0.
///
/// Indices are stable: new reasons are appended.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum ParseStatus {
    /// Fully parsed as far as the summary needs.
    Ok = 0,
    /// A well-formed frame that carries no IP (ARP, LLDP, STP...). Not an error.
    NonIp,
    /// The capture's link type is not one surgewatch can parse.
    UnsupportedLinkType,
    /// Frame shorter than its link-layer header (Ethernet, SLL, SLL2, loopback).
    TruncatedLink,
    /// A VLAN tag is cut short.
    TruncatedVlan,
    /// More stacked VLAN tags than the parser follows (a malformed or hostile frame).
    TooManyVlans,
    /// Shorter than a minimal IPv4 header, or than the header length it announces.
    TruncatedIpv4,
    /// IPv4 header with version != 4 or IHL < 5.
    BadIpv4Header,
    /// IPv4 total length smaller than its header length.
    BadIpv4Length,
    /// Shorter than the 40-byte IPv6 header.
    TruncatedIpv6,
    /// An IPv6 extension header runs past the end of the captured bytes.
    TruncatedIpv6Ext,
    /// Raw-IP frame whose version nibble is neither 4 nor 6 (or not what the link type says).
    BadIpVersion,
    /// TCP/UDP/ICMP header cut short by the capture (snaplen) or by a lying length.
    TruncatedL4,
    /// TCP data offset below 5 words.
    BadTcpHeader,
    /// A GRE, ERSPAN or VXLAN header that decapsulation is enabled for is cut short (by the
    /// capture or by the enclosing IP length), including its optional fields and subheaders.
    TruncatedTunnel,
    /// A GRE, ERSPAN or VXLAN header that decapsulation is enabled for is malformed: GRE
    /// version ≠ 0 or routing present, ERSPAN II without a GRE sequence number or with
    /// version ≠ 1, ERSPAN III with version ≠ 2 or an unknown frame type, VXLAN without the
    /// I (valid VNI) flag.
    BadTunnelHeader,
}

impl ParseStatus {
    /// Number of variants; valid indices for [`ParseStatus::index`] are `0..COUNT`.
    pub const COUNT: usize = 16;

    /// Every variant, in index order.
    pub const ALL: [ParseStatus; Self::COUNT] = [
        ParseStatus::Ok,
        ParseStatus::NonIp,
        ParseStatus::UnsupportedLinkType,
        ParseStatus::TruncatedLink,
        ParseStatus::TruncatedVlan,
        ParseStatus::TooManyVlans,
        ParseStatus::TruncatedIpv4,
        ParseStatus::BadIpv4Header,
        ParseStatus::BadIpv4Length,
        ParseStatus::TruncatedIpv6,
        ParseStatus::TruncatedIpv6Ext,
        ParseStatus::BadIpVersion,
        ParseStatus::TruncatedL4,
        ParseStatus::BadTcpHeader,
        ParseStatus::TruncatedTunnel,
        ParseStatus::BadTunnelHeader,
    ];

    /// Dense index for counter arrays.
    #[inline]
    pub fn index(self) -> usize {
        self as usize
    }

    /// Whether this status counts as a parse error.
    #[inline]
    pub fn is_error(self) -> bool {
        !matches!(self, ParseStatus::Ok | ParseStatus::NonIp)
    }
}

/// The encapsulation a summary was taken out of (see [`crate::Decap`]).
///
/// With nested tunnels it names the outermost one, the mirror transport.
///
/// Exhaustive on purpose: `export` names every variant in one `match`, so a new
/// encapsulation cannot reach the output unnamed.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[repr(u8)]
pub enum Encap {
    /// Not decapsulated: the summary describes the frame as captured.
    #[default]
    None = 0,
    /// GRE (RFC 2784/2890) carrying Ethernet (transparent Ethernet bridging, 0x6558), IPv4 or
    /// IPv6.
    Gre,
    /// ERSPAN type II: GRE protocol 0x88BE with a sequence number, 8-byte ERSPAN header.
    ErspanII,
    /// ERSPAN type III: GRE protocol 0x22EB, 12-byte ERSPAN header (+ 8-byte platform
    /// subheader).
    ErspanIII,
    /// VXLAN (RFC 7348) over UDP.
    Vxlan,
}

impl Encap {
    /// Number of variants; valid indices for [`Encap::index`] are `0..COUNT`.
    pub const COUNT: usize = 5;

    /// Every variant, in index order.
    pub const ALL: [Encap; Self::COUNT] = [
        Encap::None,
        Encap::Gre,
        Encap::ErspanII,
        Encap::ErspanIII,
        Encap::Vxlan,
    ];

    /// Dense index for counter arrays.
    #[inline]
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Where a packet sits in IP fragmentation.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Default)]
pub enum Fragment {
    /// Not a fragment.
    #[default]
    None,
    /// Offset 0 with more fragments to come: carries the L4 header.
    First,
    /// Offset > 0: no L4 header; ports and flags are zero.
    Later,
}

/// TCP flag bits as they appear in the header's flags byte.
pub mod tcp_flags {
    /// FIN
    pub const FIN: u8 = 0x01;
    /// SYN
    pub const SYN: u8 = 0x02;
    /// RST
    pub const RST: u8 = 0x04;
    /// PSH
    pub const PSH: u8 = 0x08;
    /// ACK
    pub const ACK: u8 = 0x10;
    /// URG
    pub const URG: u8 = 0x20;
    /// ECE
    pub const ECE: u8 = 0x40;
    /// CWR
    pub const CWR: u8 = 0x80;
}

/// IP protocol numbers the summary gives meaning to.
pub mod proto {
    /// ICMP
    pub const ICMP: u8 = 1;
    /// TCP
    pub const TCP: u8 = 6;
    /// UDP
    pub const UDP: u8 = 17;
    /// GRE
    pub const GRE: u8 = 47;
    /// ICMPv6
    pub const ICMPV6: u8 = 58;
}

/// What one frame says, in a few dozen bytes. Produced by [`crate::parse()`] and
/// [`crate::parse_with()`], never allocates.
///
/// Field validity: addresses, `protocol`, `ttl`, `ip_len` and `frag` are meaningful when
/// `ip_version` is 4 or 6. Ports are meaningful for TCP/UDP when `has_l4`; `tcp_flags` for TCP;
/// `icmp_type`/`icmp_code` for ICMP/ICMPv6. Meaningless fields are zero.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct PacketSummary {
    /// Parse outcome (see [`ParseStatus`]).
    pub status: ParseStatus,
    /// 4, 6, or 0 when no IP header was parsed.
    pub ip_version: u8,
    /// Source address (unspecified when `ip_version == 0`).
    pub src: IpAddr,
    /// Destination address (unspecified when `ip_version == 0`).
    pub dst: IpAddr,
    /// IPv4 protocol or the IPv6 upper-layer next header (after extension headers).
    pub protocol: u8,
    /// TCP/UDP source port.
    pub src_port: u16,
    /// TCP/UDP destination port.
    pub dst_port: u16,
    /// TCP flags byte.
    pub tcp_flags: u8,
    /// ICMP / ICMPv6 type.
    pub icmp_type: u8,
    /// ICMP / ICMPv6 code.
    pub icmp_code: u8,
    /// IPv4 TTL or IPv6 hop limit.
    pub ttl: u8,
    /// IP length from the header: IPv4 total length, IPv6 40 + payload length.
    pub ip_len: u32,
    /// UDP length field (0 when not UDP).
    pub udp_len: u16,
    /// Frame length on the wire (the capture's original length, not the captured length).
    ///
    /// After decapsulation ([`Self::encap`] is not `None`), the inner frame's length: the
    /// outer wire length minus every byte in front of the inner frame (outer link, IP,
    /// GRE/UDP and tunnel headers), saturating at 0. That is the customer traffic's volume,
    /// not the mirror's.
    pub wire_len: u32,
    /// Fragmentation state.
    pub frag: Fragment,
    /// Whether a TCP/UDP/ICMP header was fully read.
    pub has_l4: bool,
    /// Number of VLAN tags seen (802.1Q / 802.1ad). After ERSPAN decapsulation of an untagged
    /// inner frame whose ERSPAN header names the original VLAN, 1 (that VLAN).
    pub vlan_depth: u8,
    /// Outermost VLAN id (0 when untagged).
    pub vlan_id: u16,
    /// The encapsulation the summary was taken out of; `None` when the fields describe the
    /// captured frame itself. Once decapsulated, every other field describes the inner frame.
    pub encap: Encap,
}

impl PacketSummary {
    /// A summary with nothing parsed yet.
    pub const fn empty(wire_len: u32) -> Self {
        PacketSummary {
            status: ParseStatus::Ok,
            ip_version: 0,
            src: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            dst: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            protocol: 0,
            src_port: 0,
            dst_port: 0,
            tcp_flags: 0,
            icmp_type: 0,
            icmp_code: 0,
            ttl: 0,
            ip_len: 0,
            udp_len: 0,
            wire_len,
            frag: Fragment::None,
            has_l4: false,
            vlan_depth: 0,
            vlan_id: 0,
            encap: Encap::None,
        }
    }

    /// Whether the IP layer was parsed, so the packet can be accounted to its addresses.
    #[inline]
    pub fn has_ip(&self) -> bool {
        self.ip_version != 0
    }

    /// The accounting class of this packet (meaningful only when [`Self::has_ip`]).
    #[inline]
    pub fn class(&self) -> TrafficClass {
        TrafficClass::of(self)
    }
}

/// The accounting classes: a partition of IP packets, each packet in exactly one.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum TrafficClass {
    /// TCP with SYN and without ACK.
    Syn = 0,
    /// TCP with SYN and ACK.
    SynAck,
    /// TCP with ACK, without SYN/RST/FIN (PSH/URG/ECN allowed).
    Ack,
    /// TCP with RST (any other flags).
    Rst,
    /// Any other TCP (FIN, null, xmas, truncated header...).
    TcpOther,
    /// UDP (not fragmented).
    Udp,
    /// ICMP and ICMPv6 (not fragmented).
    Icmp,
    /// Any IP fragment, first or later, of any protocol.
    Fragment,
    /// Any other IP protocol (GRE, ESP, SCTP...).
    Other,
}

impl TrafficClass {
    /// Number of classes.
    pub const COUNT: usize = 9;
    /// Every class in index order.
    pub const ALL: [TrafficClass; Self::COUNT] = [
        TrafficClass::Syn,
        TrafficClass::SynAck,
        TrafficClass::Ack,
        TrafficClass::Rst,
        TrafficClass::TcpOther,
        TrafficClass::Udp,
        TrafficClass::Icmp,
        TrafficClass::Fragment,
        TrafficClass::Other,
    ];

    /// Dense index for counter arrays.
    #[inline]
    pub fn index(self) -> usize {
        self as usize
    }

    /// Classifies a parsed packet.
    #[inline]
    pub fn of(s: &PacketSummary) -> TrafficClass {
        use tcp_flags::*;
        if s.frag != Fragment::None {
            return TrafficClass::Fragment;
        }
        match s.protocol {
            proto::TCP => {
                if !s.has_l4 {
                    return TrafficClass::TcpOther;
                }
                let f = s.tcp_flags;
                if f & RST != 0 {
                    TrafficClass::Rst
                } else if f & SYN != 0 {
                    if f & ACK != 0 {
                        TrafficClass::SynAck
                    } else {
                        TrafficClass::Syn
                    }
                } else if f & ACK != 0 && f & FIN == 0 {
                    TrafficClass::Ack
                } else {
                    TrafficClass::TcpOther
                }
            }
            proto::UDP => TrafficClass::Udp,
            proto::ICMP | proto::ICMPV6 => TrafficClass::Icmp,
            _ => TrafficClass::Other,
        }
    }
}
