//! The frame parser: link layer → VLAN tags → IPv4/IPv6 (+ extension headers) → TCP/UDP/ICMP,
//! and, when [`Decap`] enables it, GRE / ERSPAN / VXLAN → the inner frame, once more.
//!
//! Straight-line code over the [`crate::wire`] views. Each layer is a small function that fills
//! the summary as far as it got and returns `Err(status)` to stop; the first `Err` becomes the
//! summary's status. Fields are written only after their header passed `new_checked`, so an
//! error leaves exactly the layers above it filled in.
//!
//! Tunnels: [`parse_l4`] does not recurse. When it meets an enabled tunnel whose header checks
//! out, it stores the inner frame in the [`Cx`] and stops; [`parse_with`] then parses that
//! inner frame into a fresh summary, in a loop bounded by [`Decap::depth_limit`]. A tunnel
//! header that is cut short or malformed stops the parse with the summary of the packet that
//! carries it, so that packet is still accounted to its addresses.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::wire::{
    erspan_frame_type, ethertype, ext_header, gre_protocol, is_vlan_ethertype, ErspanIIHeader,
    ErspanIIIHeader, EthernetFrame, GreHeader, IcmpHeader, Ipv4Packet, Ipv6ExtHeader,
    Ipv6FragmentHeader, LoopbackHeader, LoopbackOrder, Sll2Header, SllHeader, TcpHeader, UdpHeader,
    VlanHeader, VxlanHeader,
};
use crate::{proto, Decap, Encap, Fragment, LinkType, PacketSummary, ParseOptions, ParseStatus};

/// Most stacked VLAN tags followed; one more gives [`ParseStatus::TooManyVlans`].
pub(crate) const MAX_VLAN_TAGS: u8 = 8;

/// Most IPv6 extension headers walked. A chain still going after that is reported with the
/// extension header it stopped at as `protocol` (status `Ok`, so class `Other`).
pub(crate) const MAX_IPV6_EXT_HEADERS: usize = 8;

/// Internal layer result: `Err` carries the final status (which may be the non-error `NonIp`).
type Step = Result<(), ParseStatus>;

/// What a tunnel carries.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Inner {
    Ethernet,
    Ipv4,
    Ipv6,
    /// IPv4 or IPv6, the version nibble decides (ERSPAN III frame type IP).
    Ip,
}

/// A tunnel whose header checked out: the frame it carries, still to be parsed.
#[derive(Copy, Clone, Debug)]
struct Tunnel<'a> {
    encap: Encap,
    inner: Inner,
    bytes: &'a [u8],
    /// Original VLAN from an ERSPAN header (0: none).
    vlan: u16,
}

/// Parsing context: the decapsulation settings and the tunnel found at this level.
struct Cx<'a, const D: bool> {
    decap: Decap,
    /// Tunnel levels that may still be decapsulated.
    levels_left: u8,
    tunnel: Option<Tunnel<'a>>,
}

impl<const D: bool> Cx<'_, D> {
    /// `D` is false on the no-tunnel fast path: every decapsulation check folds away there.
    #[inline(always)]
    fn may_decap(&self) -> bool {
        D && self.levels_left > 0
    }
}

/// Parses one captured frame of the given link type into a [`PacketSummary`], without tunnel
/// decapsulation: `parse_with(link, frame, wire_len, &ParseOptions::NONE)`.
///
/// `wire_len` is the frame's length on the wire (pcap `orig_len`) and is copied as is. Never
/// panics and never allocates, whatever `frame` holds. See [`ParseStatus`] for the outcomes;
/// an empty frame on [`LinkType::RawIp`] (no version nibble to read) is `TruncatedLink`, and an
/// IPv6 extension chain longer than 8 headers stops there with status `Ok` and the ninth
/// header's number as `protocol`.
///
/// Decapsulation is off here because on an ordinary link a tunnel is the traffic (see
/// [`Decap`]); a mirror-port sensor calls [`parse_with`] with its configured options.
#[inline]
pub fn parse(link: LinkType, frame: &[u8], wire_len: u32) -> PacketSummary {
    parse_with(link, frame, wire_len, &ParseOptions::NONE)
}

/// [`parse()`] with options: with [`Decap`] enabled, a frame carrying GRE, ERSPAN II/III or
/// VXLAN is summarised as the frame inside (at most [`Decap::depth_limit`] levels).
///
/// After decapsulation every field describes the inner frame (addresses, ports, flags, TTL,
/// fragment state, its own VLAN tags, or the original VLAN an ERSPAN header names when the
/// inner frame is untagged); [`PacketSummary::encap`] names the outermost encapsulation and
/// `wire_len` becomes `wire_len` minus every byte in front of the inner frame (saturating).
/// A problem inside the inner frame gives that problem's status for the inner frame.
///
/// Not decapsulated, so summarised as the packet carrying them: GRE of other protocol types or
/// of version 1 (PPTP), UDP to other ports, non-first IP fragments (the tunnel header is in
/// the first one), and tunnels beyond the depth limit. An enabled tunnel whose header is cut
/// short or malformed gives [`ParseStatus::TruncatedTunnel`] / [`ParseStatus::BadTunnelHeader`]
/// with the carrying packet's fields.
#[inline]
pub fn parse_with(
    link: LinkType,
    frame: &[u8],
    wire_len: u32,
    options: &ParseOptions,
) -> PacketSummary {
    let decap = options.decap;
    if !decap.any() {
        return parse_plain(link, frame, wire_len);
    }
    parse_decap(link, frame, wire_len, decap)
}

/// No decapsulation: the common case (untagged Ethernet, IPv4, whole L4 header) in registers,
/// anything else through the general path.
#[inline(always)]
fn parse_plain(link: LinkType, frame: &[u8], wire_len: u32) -> PacketSummary {
    if link == LinkType::Ethernet {
        if let Some(s) = ethernet_ipv4_fast(frame, wire_len) {
            return s;
        }
    }
    parse_plain_general(link, frame, wire_len)
}

/// Untagged Ethernet carrying an IPv4 packet that parses with status `Ok`, as [`parse_link`]
/// would parse it (the same checks, the same fields), built in locals and written once; `None`
/// for any other frame, which [`parse_plain_general`] then parses from the start.
///
/// Few instructions and few stores per frame keep many frames in flight: parsing a capture
/// in memory is bound by the cache miss on each frame's first bytes.
#[inline(always)]
fn ethernet_ipv4_fast(frame: &[u8], wire_len: u32) -> Option<PacketSummary> {
    let (eth, bytes) = frame.split_first_chunk::<{ EthernetFrame::<&[u8]>::HEADER_LEN }>()?;
    if be16(eth[12], eth[13]) != ethertype::IPV4 {
        return None;
    }
    let h = bytes.first_chunk::<{ Ipv4Packet::<&[u8]>::MIN_HEADER_LEN }>()?;
    let ver_ihl = h[0];
    let ihl = usize::from(ver_ihl & 0x0F) * 4;
    let total_len = be16(h[2], h[3]);
    if ver_ihl >> 4 != 4
        || ihl < Ipv4Packet::<&[u8]>::MIN_HEADER_LEN
        || bytes.len() < ihl
        || usize::from(total_len) < ihl
    {
        return None;
    }
    let protocol = h[9];
    let flags_offset = be16(h[6], h[7]);
    let later = flags_offset & IPV4_OFFSET_MASK != 0;
    let frag = if later {
        Fragment::Later
    } else if flags_offset & IPV4_MF != 0 {
        Fragment::First
    } else {
        Fragment::None
    };
    let end = usize::from(total_len).min(bytes.len());
    let payload = bytes.get(ihl..end).unwrap_or_default();
    // A later fragment has no L4 header.
    let l4 = if later { NO_L4 } else { protocol };
    let need = l4_header_len(l4);
    if payload.len() < need {
        return None;
    }
    // Every L4 field the summary takes is in the first 14 bytes; a shorter payload (rare)
    // takes the general path.
    let w = payload.first_chunk::<14>()?;
    let is_tcp = l4 == proto::TCP;
    let is_udp = l4 == proto::UDP;
    let is_icmp = l4 == proto::ICMP || l4 == proto::ICMPV6;
    if is_tcp && w[12] >> 4 < 5 {
        return None;
    }
    let has_ports = is_tcp || is_udp;
    Some(PacketSummary {
        status: ParseStatus::Ok,
        ip_version: 4,
        src: IpAddr::V4(Ipv4Addr::new(h[12], h[13], h[14], h[15])),
        dst: IpAddr::V4(Ipv4Addr::new(h[16], h[17], h[18], h[19])),
        protocol,
        src_port: if has_ports { be16(w[0], w[1]) } else { 0 },
        dst_port: if has_ports { be16(w[2], w[3]) } else { 0 },
        tcp_flags: if is_tcp { w[13] } else { 0 },
        icmp_type: if is_icmp { w[0] } else { 0 },
        icmp_code: if is_icmp { w[1] } else { 0 },
        ttl: h[8],
        ip_len: u32::from(total_len),
        udp_len: if is_udp { be16(w[4], w[5]) } else { 0 },
        wire_len,
        frag,
        has_l4: need != 0,
        vlan_depth: 0,
        vlan_id: 0,
        encap: Encap::None,
    })
}

/// [`parse_plain`] of any frame.
#[inline(never)]
fn parse_plain_general(link: LinkType, frame: &[u8], wire_len: u32) -> PacketSummary {
    let mut cx = Cx::<false> {
        decap: Decap::NONE,
        levels_left: 0,
        tunnel: None,
    };
    let mut s = PacketSummary::empty(wire_len);
    if let Err(status) = parse_link(link, frame, &mut s, &mut cx) {
        s.status = status;
    }
    s
}

/// With decapsulation enabled (`decap.any()`).
#[inline(never)]
fn parse_decap(link: LinkType, frame: &[u8], wire_len: u32, decap: Decap) -> PacketSummary {
    let mut cx = Cx::<true> {
        decap,
        levels_left: decap.depth_limit(),
        tunnel: None,
    };
    let mut s = PacketSummary::empty(wire_len);
    let mut step = parse_link(link, frame, &mut s, &mut cx);
    // Each pass consumes one level (`levels_left` was decremented when the tunnel was
    // recorded), so this runs at most `MAX_DECAP_DEPTH` times.
    while let Some(t) = cx.tunnel.take() {
        let overhead = u32::try_from(offset_in(frame, t.bytes)).unwrap_or(u32::MAX);
        let mut inner = PacketSummary::empty(wire_len.saturating_sub(overhead));
        inner.encap = if s.encap == Encap::None {
            t.encap
        } else {
            s.encap
        };
        step = match t.inner {
            Inner::Ethernet => parse_ethernet(t.bytes, &mut inner, &mut cx),
            Inner::Ipv4 => parse_ipv4(t.bytes, &mut inner, &mut cx),
            Inner::Ipv6 => parse_ipv6(t.bytes, &mut inner, &mut cx),
            Inner::Ip => parse_raw_ip(t.bytes, &mut inner, &mut cx),
        };
        if t.vlan != 0 && inner.vlan_depth == 0 {
            inner.vlan_depth = 1;
            inner.vlan_id = t.vlan & 0x0FFF;
        }
        s = inner;
    }
    if let Err(status) = step {
        s.status = status;
    }
    s
}

/// Where `inner` starts within `outer`, or `outer.len()` if it is not a part of it (it always
/// is: inner frames are sub-slices of the captured frame).
#[inline(always)]
fn offset_in(outer: &[u8], inner: &[u8]) -> usize {
    let start = outer.as_ptr() as usize;
    let at = inner.as_ptr() as usize;
    match at.checked_sub(start) {
        Some(off) if off <= outer.len() => off,
        _ => outer.len(),
    }
}

#[inline(always)]
fn parse_link<'a, const D: bool>(
    link: LinkType,
    frame: &'a [u8],
    s: &mut PacketSummary,
    cx: &mut Cx<'a, D>,
) -> Step {
    match link {
        LinkType::Ethernet => parse_ethernet(frame, s, cx),
        LinkType::RawIp => parse_raw_ip(frame, s, cx),
        LinkType::RawIpv4 => match frame.first().map(|b| b >> 4) {
            Some(4) => parse_ipv4(frame, s, cx),
            Some(_) => Err(ParseStatus::BadIpVersion),
            None => Err(ParseStatus::TruncatedIpv4),
        },
        LinkType::RawIpv6 => match frame.first().map(|b| b >> 4) {
            Some(6) => parse_ipv6(frame, s, cx),
            Some(_) => Err(ParseStatus::BadIpVersion),
            None => Err(ParseStatus::TruncatedIpv6),
        },
        LinkType::LinuxSll => {
            let h = SllHeader::new_checked(frame)?;
            parse_ethertype(h.protocol(), h.payload(), s, cx)
        }
        LinkType::LinuxSll2 => {
            let h = Sll2Header::new_checked(frame)?;
            parse_ethertype(h.protocol(), h.payload(), s, cx)
        }
        LinkType::Null => parse_loopback(frame, LoopbackOrder::Either, s, cx),
        LinkType::Loop => parse_loopback(frame, LoopbackOrder::Network, s, cx),
    }
}

/// Raw IP, the version nibble decides; empty is `TruncatedLink`.
#[inline]
fn parse_raw_ip<'a, const D: bool>(
    bytes: &'a [u8],
    s: &mut PacketSummary,
    cx: &mut Cx<'a, D>,
) -> Step {
    match bytes.first().map(|b| b >> 4) {
        Some(4) => parse_ipv4(bytes, s, cx),
        Some(6) => parse_ipv6(bytes, s, cx),
        Some(_) => Err(ParseStatus::BadIpVersion),
        None => Err(ParseStatus::TruncatedLink),
    }
}

#[inline(always)]
fn parse_loopback<'a, const D: bool>(
    frame: &'a [u8],
    order: LoopbackOrder,
    s: &mut PacketSummary,
    cx: &mut Cx<'a, D>,
) -> Step {
    let h = LoopbackHeader::new_checked(frame)?;
    match h.ip_version(order) {
        4 => parse_ipv4(h.payload(), s, cx),
        6 => parse_ipv6(h.payload(), s, cx),
        _ => Err(ParseStatus::NonIp),
    }
}

/// Ethernet II. Also the entry point for an encapsulated inner Ethernet frame.
#[inline(always)]
fn parse_ethernet<'a, const D: bool>(
    frame: &'a [u8],
    s: &mut PacketSummary,
    cx: &mut Cx<'a, D>,
) -> Step {
    // The fixed header read once: one length check, then constant indices into an array.
    let Some((h, payload)) = frame.split_first_chunk::<{ EthernetFrame::<&[u8]>::HEADER_LEN }>()
    else {
        return Err(ParseStatus::TruncatedLink);
    };
    parse_ethertype(be16(h[12], h[13]), payload, s, cx)
}

/// Follows up to [`MAX_VLAN_TAGS`] VLAN tags, then dispatches on the EtherType.
#[inline(always)]
fn parse_ethertype<'a, const D: bool>(
    mut ethertype: u16,
    mut payload: &'a [u8],
    s: &mut PacketSummary,
    cx: &mut Cx<'a, D>,
) -> Step {
    let mut tags = 0u8;
    while is_vlan_ethertype(ethertype) {
        if tags == MAX_VLAN_TAGS {
            return Err(ParseStatus::TooManyVlans);
        }
        let Some((tag, rest)) = payload.split_first_chunk::<{ VlanHeader::<&[u8]>::HEADER_LEN }>()
        else {
            return Err(ParseStatus::TruncatedVlan);
        };
        if s.vlan_depth == 0 {
            s.vlan_id = be16(tag[0], tag[1]) & 0x0FFF;
        }
        s.vlan_depth = s.vlan_depth.saturating_add(1);
        tags += 1;
        ethertype = be16(tag[2], tag[3]);
        payload = rest;
    }
    match ethertype {
        ethertype::IPV4 => parse_ipv4(payload, s, cx),
        ethertype::IPV6 => parse_ipv6(payload, s, cx),
        _ => Err(ParseStatus::NonIp),
    }
}

#[inline(always)]
fn parse_ipv4<'a, const D: bool>(
    bytes: &'a [u8],
    s: &mut PacketSummary,
    cx: &mut Cx<'a, D>,
) -> Step {
    // The checks of `Ipv4Packet::new_checked`, in its order, over the fixed header read once.
    let Some(h) = bytes.first_chunk::<{ Ipv4Packet::<&[u8]>::MIN_HEADER_LEN }>() else {
        return Err(ParseStatus::TruncatedIpv4);
    };
    let ver_ihl = h[0];
    let ihl = usize::from(ver_ihl & 0x0F) * 4;
    if ver_ihl >> 4 != 4 || ihl < Ipv4Packet::<&[u8]>::MIN_HEADER_LEN {
        return Err(ParseStatus::BadIpv4Header);
    }
    if bytes.len() < ihl {
        return Err(ParseStatus::TruncatedIpv4);
    }
    let total_len = be16(h[2], h[3]);
    if usize::from(total_len) < ihl {
        return Err(ParseStatus::BadIpv4Length);
    }
    let protocol = h[9];
    s.ip_version = 4;
    s.src = IpAddr::V4(Ipv4Addr::new(h[12], h[13], h[14], h[15]));
    s.dst = IpAddr::V4(Ipv4Addr::new(h[16], h[17], h[18], h[19]));
    s.protocol = protocol;
    s.ttl = h[8];
    s.ip_len = u32::from(total_len);
    let flags_offset = be16(h[6], h[7]);
    let later = flags_offset & IPV4_OFFSET_MASK != 0;
    // The payload ends at the total length or at the capture, whichever comes first.
    let end = usize::from(total_len).min(bytes.len());
    let payload = bytes.get(ihl..end).unwrap_or_default();
    if !D {
        // Fragment state without a branch: a traffic mix has fragments at random.
        s.frag = if later {
            Fragment::Later
        } else if flags_offset & IPV4_MF != 0 {
            Fragment::First
        } else {
            Fragment::None
        };
        // A later fragment has no L4 header: parsed as a protocol without one.
        return parse_l4_plain(if later { NO_L4 } else { protocol }, payload, s);
    }
    if later {
        s.frag = Fragment::Later;
        return Ok(());
    }
    if flags_offset & IPV4_MF != 0 {
        s.frag = Fragment::First;
    }
    parse_l4(protocol, payload, s, cx)
}

#[inline]
fn parse_ipv6<'a, const D: bool>(
    bytes: &'a [u8],
    s: &mut PacketSummary,
    cx: &mut Cx<'a, D>,
) -> Step {
    // The checks of `Ipv6Packet::new_checked` over the fixed header read once.
    let Some((h, after)) = bytes.split_first_chunk::<8>() else {
        return Err(ParseStatus::TruncatedIpv6);
    };
    let Some((src, after)) = after.split_first_chunk::<16>() else {
        return Err(ParseStatus::TruncatedIpv6);
    };
    let Some((dst, after)) = after.split_first_chunk::<16>() else {
        return Err(ParseStatus::TruncatedIpv6);
    };
    if h[0] >> 4 != 6 {
        return Err(ParseStatus::BadIpVersion);
    }
    let payload_len = be16(h[4], h[5]);
    let mut next = h[6];
    s.ip_version = 6;
    s.src = IpAddr::V6(Ipv6Addr::from(*src));
    s.dst = IpAddr::V6(Ipv6Addr::from(*dst));
    s.ttl = h[7];
    s.ip_len = 40 + u32::from(payload_len);

    // A zero payload length with a hop-by-hop header may be a jumbogram: up to the capture.
    let mut rest = if payload_len == 0 && next == ext_header::HOP_BY_HOP {
        after
    } else {
        after.get(..usize::from(payload_len)).unwrap_or(after)
    };
    for _ in 0..MAX_IPV6_EXT_HEADERS {
        // Kept current so that a truncated chain reports the header it broke in.
        s.protocol = next;
        match next {
            ext_header::HOP_BY_HOP
            | ext_header::ROUTING
            | ext_header::DEST_OPTS
            | ext_header::AUTH => {
                let ext = Ipv6ExtHeader::new_checked(rest, next)?;
                next = ext.next_header();
                rest = ext.payload();
            }
            ext_header::FRAGMENT => {
                let frag = Ipv6FragmentHeader::new_checked(rest)?;
                next = frag.next_header();
                rest = frag.payload();
                if frag.frag_offset() != 0 {
                    s.protocol = next;
                    s.frag = Fragment::Later;
                    return Ok(());
                }
                if frag.more_frags() {
                    s.frag = Fragment::First;
                }
            }
            _ => break,
        }
    }
    s.protocol = next;
    if !D {
        return parse_l4_plain(next, rest, s);
    }
    parse_l4(next, rest, s, cx)
}

/// An IP protocol number [`parse_l4_plain`] reads no header of.
const NO_L4: u8 = 0;

/// The L4 header length [`parse_l4_plain`] requires, by IP protocol (0: no header read).
#[inline(always)]
const fn l4_header_len(protocol: u8) -> usize {
    match protocol {
        proto::TCP => 20,
        proto::UDP => 8,
        proto::ICMP | proto::ICMPV6 => 4,
        _ => 0,
    }
}

/// [`parse_l4`] without tunnels, with selects instead of a branch on the protocol (which a
/// traffic mix makes unpredictable): the first 20 bytes are read once, zero-padded, and each
/// field takes its value or stays 0. Same results: a field is only written where `parse_l4`
/// writes it (the others are still 0 in a fresh summary), after the same checks.
#[inline(always)]
fn parse_l4_plain(protocol: u8, bytes: &[u8], s: &mut PacketSummary) -> Step {
    let need = l4_header_len(protocol);
    if bytes.len() < need {
        return Err(ParseStatus::TruncatedL4);
    }
    let mut h = [0u8; 20];
    match bytes.first_chunk::<20>() {
        Some(full) => h = *full,
        None => {
            for (d, b) in h.iter_mut().zip(bytes) {
                *d = *b;
            }
        }
    }
    let is_tcp = protocol == proto::TCP;
    let is_udp = protocol == proto::UDP;
    let is_icmp = protocol == proto::ICMP || protocol == proto::ICMPV6;
    if is_tcp && h[12] >> 4 < 5 {
        return Err(ParseStatus::BadTcpHeader);
    }
    let has_ports = is_tcp || is_udp;
    s.src_port = if has_ports { be16(h[0], h[1]) } else { 0 };
    s.dst_port = if has_ports { be16(h[2], h[3]) } else { 0 };
    s.tcp_flags = if is_tcp { h[13] } else { 0 };
    s.udp_len = if is_udp { be16(h[4], h[5]) } else { 0 };
    s.icmp_type = if is_icmp { h[0] } else { 0 };
    s.icmp_code = if is_icmp { h[1] } else { 0 };
    s.has_l4 = need != 0;
    Ok(())
}

/// TCP, UDP and ICMP/ICMPv6 headers, and the enabled tunnels; any other protocol is left as
/// is (status `Ok`).
#[inline(always)]
fn parse_l4<'a, const D: bool>(
    protocol: u8,
    bytes: &'a [u8],
    s: &mut PacketSummary,
    cx: &mut Cx<'a, D>,
) -> Step {
    match protocol {
        proto::TCP => {
            let Some(h) = bytes.first_chunk::<{ TcpHeader::<&[u8]>::MIN_HEADER_LEN }>() else {
                return Err(ParseStatus::TruncatedL4);
            };
            if h[12] >> 4 < 5 {
                return Err(ParseStatus::BadTcpHeader);
            }
            s.src_port = be16(h[0], h[1]);
            s.dst_port = be16(h[2], h[3]);
            s.tcp_flags = h[13];
            s.has_l4 = true;
        }
        proto::UDP => {
            let Some((h, payload)) =
                bytes.split_first_chunk::<{ UdpHeader::<&[u8]>::HEADER_LEN }>()
            else {
                return Err(ParseStatus::TruncatedL4);
            };
            let dst_port = be16(h[2], h[3]);
            s.src_port = be16(h[0], h[1]);
            s.dst_port = dst_port;
            s.udp_len = be16(h[4], h[5]);
            s.has_l4 = true;
            if cx.may_decap() && cx.decap.is_vxlan_port(dst_port) {
                let vxlan = VxlanHeader::new_checked(payload)?;
                found(cx, Encap::Vxlan, Inner::Ethernet, vxlan.payload(), 0);
            }
        }
        proto::ICMP | proto::ICMPV6 => {
            let Some(h) = bytes.first_chunk::<{ IcmpHeader::<&[u8]>::HEADER_LEN }>() else {
                return Err(ParseStatus::TruncatedL4);
            };
            s.icmp_type = h[0];
            s.icmp_code = h[1];
            s.has_l4 = true;
        }
        proto::GRE if cx.may_decap() && (cx.decap.gre || cx.decap.erspan) => {
            parse_gre(bytes, cx)?;
        }
        _ => {}
    }
    Ok(())
}

/// A big-endian `u16` from two header bytes.
#[inline(always)]
fn be16(hi: u8, lo: u8) -> u16 {
    u16::from_be_bytes([hi, lo])
}

/// IPv4 more-fragments flag and fragment-offset mask, in the flags/offset word.
const IPV4_MF: u16 = 0x2000;
const IPV4_OFFSET_MASK: u16 = 0x1FFF;

/// Records a tunnel to decapsulate and uses up one level.
#[inline(always)]
fn found<'a, const D: bool>(
    cx: &mut Cx<'a, D>,
    encap: Encap,
    inner: Inner,
    bytes: &'a [u8],
    vlan: u16,
) {
    cx.levels_left = cx.levels_left.saturating_sub(1);
    cx.tunnel = Some(Tunnel {
        encap,
        inner,
        bytes,
        vlan,
    });
}

/// GRE and the ERSPAN headers inside it. Protocol types that are not enabled, and GRE of
/// any protocol type but the ones decapsulated, are left alone.
#[inline(never)]
fn parse_gre<'a, const D: bool>(bytes: &'a [u8], cx: &mut Cx<'a, D>) -> Step {
    let gre = GreHeader::new_checked(bytes)?;
    let (encap, inner) = match gre.protocol() {
        gre_protocol::TEB if cx.decap.gre => (Encap::Gre, Inner::Ethernet),
        gre_protocol::IPV4 if cx.decap.gre => (Encap::Gre, Inner::Ipv4),
        gre_protocol::IPV6 if cx.decap.gre => (Encap::Gre, Inner::Ipv6),
        gre_protocol::ERSPAN_II if cx.decap.erspan => (Encap::ErspanII, Inner::Ethernet),
        gre_protocol::ERSPAN_III if cx.decap.erspan => (Encap::ErspanIII, Inner::Ethernet),
        _ => return Ok(()),
    };
    // RFC 2784: version 0 only; RFC 1701 routing is not followed.
    if gre.version() != 0 || gre.has_routing() {
        return Err(ParseStatus::BadTunnelHeader);
    }
    gre.check_len()?;
    let payload = gre.payload();
    match encap {
        Encap::ErspanII => {
            // Type II always carries a sequence number; without one it would be type I.
            if !gre.has_seq() {
                return Err(ParseStatus::BadTunnelHeader);
            }
            let h = ErspanIIHeader::new_checked(payload)?;
            found(cx, encap, inner, h.payload(), h.vlan());
        }
        Encap::ErspanIII => {
            let h = ErspanIIIHeader::new_checked(payload)?;
            let inner = match h.frame_type() {
                erspan_frame_type::ETHERNET => Inner::Ethernet,
                erspan_frame_type::IP => Inner::Ip,
                _ => return Err(ParseStatus::BadTunnelHeader),
            };
            found(cx, encap, inner, h.payload(), h.vlan());
        }
        _ => found(cx, encap, inner, payload, 0),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tcp_flags::{ACK, FIN, PSH, RST, SYN, URG};
    use crate::TrafficClass;
    use std::net::{Ipv4Addr, Ipv6Addr};

    // ---- byte-array fixtures -------------------------------------------------------------

    const MACS: [u8; 12] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, // dst
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, // src
    ];
    const SRC4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
    const DST4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);

    /// TCP 12345 -> 80, data offset 5, flags `SYN`.
    const TCP_SYN: [u8; 20] = [
        0x30, 0x39, 0x00, 0x50, // ports
        0x00, 0x00, 0x00, 0x01, // seq
        0x00, 0x00, 0x00, 0x00, // ack
        0x50, 0x02, 0xff, 0xff, // offset 5, SYN, window
        0x00, 0x00, 0x00, 0x00, // checksum, urgent
    ];
    /// UDP 54321 -> 53, length 12, then 4 data bytes.
    const UDP_DNS: [u8; 12] = [
        0xd4, 0x31, 0x00, 0x35, 0x00, 0x0c, 0x00, 0x00, // header
        0xde, 0xad, 0xbe, 0xef, // data
    ];
    /// ICMP echo request (type 8 code 0).
    const ICMP_ECHO: [u8; 8] = [8, 0, 0xf7, 0xff, 0, 1, 0, 1];
    /// ICMPv6 echo request (type 128 code 0).
    const ICMP6_ECHO: [u8; 8] = [128, 0, 0x12, 0x34, 0, 1, 0, 1];

    /// A 20-byte IPv4 header, TTL 64.
    fn ipv4(protocol: u8, total_len: u16, flags_off: u16) -> [u8; 20] {
        let [l0, l1] = total_len.to_be_bytes();
        let [f0, f1] = flags_off.to_be_bytes();
        [
            0x45, 0x00, l0, l1, 0xbe, 0xef, f0, f1, 64, protocol, 0, 0, 192, 0, 2, 1, 198, 51, 100,
            2,
        ]
    }

    /// A 40-byte IPv6 header 2001:db8::1 -> 2001:db8::2, hop limit 57.
    fn ipv6(next: u8, payload_len: u16) -> [u8; 40] {
        let [l0, l1] = payload_len.to_be_bytes();
        let mut h = [0u8; 40];
        h[..8].copy_from_slice(&[0x60, 0, 0, 0, l0, l1, next, 57]);
        h[8..12].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        h[23] = 1;
        h[24..28].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        h[39] = 2;
        h
    }

    fn src6() -> IpAddr {
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1))
    }
    fn dst6() -> IpAddr {
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2))
    }

    fn cat(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    fn eth(ethertype: u16, rest: &[u8]) -> Vec<u8> {
        cat(&[&MACS, &ethertype.to_be_bytes(), rest])
    }

    fn tcp_with_flags(flags: u8) -> [u8; 20] {
        let mut t = TCP_SYN;
        t[13] = flags;
        t
    }

    fn ipv4_tcp(flags: u8) -> Vec<u8> {
        cat(&[&ipv4(proto::TCP, 40, 0), &tcp_with_flags(flags)])
    }

    fn ipv4_udp() -> Vec<u8> {
        cat(&[&ipv4(proto::UDP, 32, 0), &UDP_DNS])
    }

    fn ipv6_tcp() -> Vec<u8> {
        cat(&[&ipv6(proto::TCP, 20), &TCP_SYN])
    }

    fn eth_parse(ethertype: u16, rest: &[u8]) -> PacketSummary {
        parse(LinkType::Ethernet, &eth(ethertype, rest), 1000)
    }

    /// The summary of the IPv4 TCP SYN fixture.
    fn expected_v4_syn() -> PacketSummary {
        PacketSummary {
            status: ParseStatus::Ok,
            ip_version: 4,
            src: IpAddr::V4(SRC4),
            dst: IpAddr::V4(DST4),
            protocol: proto::TCP,
            src_port: 12345,
            dst_port: 80,
            tcp_flags: SYN,
            ttl: 64,
            ip_len: 40,
            has_l4: true,
            ..PacketSummary::empty(1000)
        }
    }

    fn assert_v4_syn(s: &PacketSummary) {
        assert_eq!(s.status, ParseStatus::Ok);
        assert_eq!(s.ip_version, 4);
        assert_eq!((s.src, s.dst), (IpAddr::V4(SRC4), IpAddr::V4(DST4)));
        assert_eq!(
            (s.protocol, s.src_port, s.dst_port),
            (proto::TCP, 12345, 80)
        );
        assert_eq!(s.tcp_flags, SYN);
        assert!(s.has_l4);
    }

    fn assert_v6_syn(s: &PacketSummary) {
        assert_eq!(s.status, ParseStatus::Ok);
        assert_eq!(s.ip_version, 6);
        assert_eq!((s.src, s.dst), (src6(), dst6()));
        assert_eq!(
            (s.protocol, s.src_port, s.dst_port),
            (proto::TCP, 12345, 80)
        );
        assert_eq!(s.tcp_flags, SYN);
        assert_eq!(s.ttl, 57);
        assert!(s.has_l4);
    }

    /// Nothing from the IP layer on.
    fn assert_no_ip(s: &PacketSummary) {
        let e = PacketSummary::empty(s.wire_len);
        assert_eq!(
            PacketSummary {
                status: e.status,
                vlan_depth: 0,
                vlan_id: 0,
                ..*s
            },
            e
        );
    }

    // ---- Ethernet and VLANs --------------------------------------------------------------

    #[test]
    fn ethernet_ipv4_tcp_syn() {
        let s = eth_parse(ethertype::IPV4, &ipv4_tcp(SYN));
        assert_eq!(s, expected_v4_syn());
        assert_eq!(s.class(), TrafficClass::Syn);
    }

    #[test]
    fn wire_len_is_passed_through() {
        let s = parse(
            LinkType::Ethernet,
            &eth(ethertype::IPV4, &ipv4_tcp(SYN)),
            9000,
        );
        assert_eq!(s.wire_len, 9000);
    }

    #[test]
    fn ethernet_padding_is_not_payload() {
        // 14 + 20 + 8 = 42 bytes padded to 60: the UDP header is read, ip_len stays 28.
        let mut f = eth(
            ethertype::IPV4,
            &cat(&[&ipv4(proto::UDP, 28, 0), &UDP_DNS[..8]]),
        );
        f.resize(60, 0xee);
        let s = parse(LinkType::Ethernet, &f, 64);
        assert_eq!(s.status, ParseStatus::Ok);
        assert_eq!((s.src_port, s.dst_port, s.udp_len), (54321, 53, 12));
        assert_eq!(s.ip_len, 28);
    }

    #[test]
    fn single_vlan_tag() {
        let s = eth_parse(
            ethertype::VLAN,
            &cat(&[&[0x20, 0x64, 0x08, 0x00], &ipv4_tcp(SYN)]),
        );
        assert_v4_syn(&s);
        assert_eq!((s.vlan_depth, s.vlan_id), (1, 100));
    }

    #[test]
    fn qinq_records_outer_id() {
        for outer in [ethertype::QINQ, ethertype::QINQ_9100, ethertype::QINQ_9200] {
            let tags = [0xe0, 0x0a, 0x81, 0x00, 0x00, 0x14, 0x86, 0xdd];
            let s = eth_parse(outer, &cat(&[&tags, &ipv6_tcp()]));
            assert_v6_syn(&s);
            assert_eq!((s.vlan_depth, s.vlan_id), (2, 10), "{outer:#06x}");
        }
    }

    #[test]
    fn vlan_id_is_twelve_bits() {
        let s = eth_parse(
            ethertype::VLAN,
            &cat(&[&[0xff, 0xff, 0x08, 0x00], &ipv4_tcp(SYN)]),
        );
        assert_eq!(s.vlan_id, 0x0fff);
    }

    fn stacked_tags(n: usize) -> Vec<u8> {
        let mut v = Vec::new();
        for i in 0..n {
            let next = if i + 1 == n { 0x0800u16 } else { 0x8100 };
            v.extend_from_slice(&[0x00, i as u8 + 1]);
            v.extend_from_slice(&next.to_be_bytes());
        }
        v
    }

    #[test]
    fn eight_tags_are_followed() {
        let s = eth_parse(ethertype::VLAN, &cat(&[&stacked_tags(8), &ipv4_tcp(SYN)]));
        assert_v4_syn(&s);
        assert_eq!((s.vlan_depth, s.vlan_id), (8, 1));
    }

    #[test]
    fn nine_tags_are_too_many() {
        let s = eth_parse(ethertype::VLAN, &cat(&[&stacked_tags(9), &ipv4_tcp(SYN)]));
        assert_eq!(s.status, ParseStatus::TooManyVlans);
        assert_eq!(s.vlan_depth, 8);
        assert_no_ip(&s);
    }

    #[test]
    fn truncated_vlan() {
        let s = eth_parse(ethertype::VLAN, &[0x00, 0x64, 0x08]);
        assert_eq!(s.status, ParseStatus::TruncatedVlan);
        assert_eq!(s.vlan_depth, 0);
        let s = eth_parse(ethertype::QINQ, &[0x00, 0x64, 0x81, 0x00, 0x00]);
        assert_eq!(s.status, ParseStatus::TruncatedVlan);
        assert_eq!((s.vlan_depth, s.vlan_id), (1, 100));
        assert_no_ip(&s);
    }

    #[test]
    fn non_ip_ethertypes() {
        let arp = [0u8; 28];
        for et in [ethertype::ARP, ethertype::LLDP, 0x88e5, 0x8847, 0x0026] {
            let s = eth_parse(et, &arp);
            assert_eq!(s.status, ParseStatus::NonIp, "{et:#06x}");
            assert!(!s.status.is_error());
            assert_eq!(s.ip_version, 0);
            assert_no_ip(&s);
        }
        let s = eth_parse(ethertype::VLAN, &cat(&[&[0x00, 0x05, 0x08, 0x06], &arp]));
        assert_eq!(s.status, ParseStatus::NonIp);
        assert_eq!((s.vlan_depth, s.vlan_id), (1, 5));
    }

    #[test]
    fn truncated_ethernet() {
        for len in 0..14 {
            let s = parse(LinkType::Ethernet, &eth(0x0800, &[])[..len], 60);
            assert_eq!(s.status, ParseStatus::TruncatedLink);
            assert_no_ip(&s);
        }
        let s = parse(LinkType::Ethernet, &eth(0x0800, &[]), 60);
        assert_eq!(s.status, ParseStatus::TruncatedIpv4);
    }

    // ---- other link types ----------------------------------------------------------------

    fn sll(protocol: u16, rest: &[u8]) -> Vec<u8> {
        let hdr = [0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 2, 0, 0];
        cat(&[&hdr, &protocol.to_be_bytes(), rest])
    }

    fn sll2(protocol: u16, rest: &[u8]) -> Vec<u8> {
        let hdr = [0, 0, 0, 0, 0, 0, 0, 3, 0, 1, 0, 6, 2, 0, 0, 0, 0, 2, 0, 0];
        let mut v = cat(&[&hdr, rest]);
        v[..2].copy_from_slice(&protocol.to_be_bytes());
        v
    }

    #[test]
    fn linux_sll() {
        assert_v4_syn(&parse(LinkType::LinuxSll, &sll(0x0800, &ipv4_tcp(SYN)), 60));
        assert_v6_syn(&parse(LinkType::LinuxSll, &sll(0x86dd, &ipv6_tcp()), 60));
        let s = parse(
            LinkType::LinuxSll,
            &sll(0x8100, &cat(&[&[0x00, 0x07, 0x08, 0x00], &ipv4_tcp(SYN)])),
            60,
        );
        assert_v4_syn(&s);
        assert_eq!((s.vlan_depth, s.vlan_id), (1, 7));
        assert_eq!(
            parse(LinkType::LinuxSll, &sll(0x0806, &[0; 28]), 60).status,
            ParseStatus::NonIp
        );
        // Non-EtherType protocol (802.2 LLC frames).
        assert_eq!(
            parse(LinkType::LinuxSll, &sll(0x0004, &[0; 28]), 60).status,
            ParseStatus::NonIp
        );
        let s = parse(LinkType::LinuxSll, &sll(0x0800, &[])[..15], 60);
        assert_eq!(s.status, ParseStatus::TruncatedLink);
    }

    #[test]
    fn linux_sll2() {
        assert_v4_syn(&parse(
            LinkType::LinuxSll2,
            &sll2(0x0800, &ipv4_tcp(SYN)),
            60,
        ));
        assert_v6_syn(&parse(LinkType::LinuxSll2, &sll2(0x86dd, &ipv6_tcp()), 60));
        let s = parse(
            LinkType::LinuxSll2,
            &sll2(0x88a8, &cat(&[&[0x00, 0x09, 0x86, 0xdd], &ipv6_tcp()])),
            60,
        );
        assert_v6_syn(&s);
        assert_eq!((s.vlan_depth, s.vlan_id), (1, 9));
        assert_eq!(
            parse(LinkType::LinuxSll2, &sll2(0x88cc, &[0; 8]), 60).status,
            ParseStatus::NonIp
        );
        let s = parse(LinkType::LinuxSll2, &sll2(0x0800, &[])[..19], 60);
        assert_eq!(s.status, ParseStatus::TruncatedLink);
    }

    #[test]
    fn bsd_null_either_byte_order() {
        let v4 = ipv4_tcp(SYN);
        let v6 = ipv6_tcp();
        assert_v4_syn(&parse(LinkType::Null, &cat(&[&[2, 0, 0, 0], &v4]), 0));
        assert_v4_syn(&parse(LinkType::Null, &cat(&[&[0, 0, 0, 2], &v4]), 0));
        for af in [10u32, 24, 28, 30] {
            assert_v6_syn(&parse(LinkType::Null, &cat(&[&af.to_le_bytes(), &v6]), 0));
            assert_v6_syn(&parse(LinkType::Null, &cat(&[&af.to_be_bytes(), &v6]), 0));
        }
        let s = parse(LinkType::Null, &cat(&[&[7, 0, 0, 0], &v4]), 0);
        assert_eq!(s.status, ParseStatus::NonIp);
        assert_no_ip(&s);
        assert_eq!(
            parse(LinkType::Null, &[2, 0, 0], 0).status,
            ParseStatus::TruncatedLink
        );
        // Family says IPv4, bytes say IPv6.
        let s = parse(LinkType::Null, &cat(&[&[2, 0, 0, 0], &v6]), 0);
        assert_eq!(s.status, ParseStatus::BadIpv4Header);
    }

    #[test]
    fn openbsd_loop_network_order() {
        assert_v4_syn(&parse(
            LinkType::Loop,
            &cat(&[&[0, 0, 0, 2], &ipv4_tcp(SYN)]),
            0,
        ));
        assert_v6_syn(&parse(
            LinkType::Loop,
            &cat(&[&[0, 0, 0, 24], &ipv6_tcp()]),
            0,
        ));
        let s = parse(LinkType::Loop, &cat(&[&[2, 0, 0, 0], &ipv4_tcp(SYN)]), 0);
        assert_eq!(s.status, ParseStatus::NonIp);
        assert_eq!(
            parse(LinkType::Loop, &[], 0).status,
            ParseStatus::TruncatedLink
        );
    }

    #[test]
    fn raw_ip() {
        assert_v4_syn(&parse(LinkType::RawIp, &ipv4_tcp(SYN), 40));
        assert_v6_syn(&parse(LinkType::RawIp, &ipv6_tcp(), 60));
        assert_v4_syn(&parse(LinkType::RawIpv4, &ipv4_tcp(SYN), 40));
        assert_v6_syn(&parse(LinkType::RawIpv6, &ipv6_tcp(), 60));

        let mut v5 = ipv4_tcp(SYN);
        v5[0] = 0x55;
        assert_eq!(
            parse(LinkType::RawIp, &v5, 40).status,
            ParseStatus::BadIpVersion
        );
        assert_eq!(
            parse(LinkType::RawIp, &[], 0).status,
            ParseStatus::TruncatedLink
        );
        assert_eq!(
            parse(LinkType::RawIpv4, &ipv6_tcp(), 60).status,
            ParseStatus::BadIpVersion
        );
        assert_eq!(
            parse(LinkType::RawIpv4, &[], 0).status,
            ParseStatus::TruncatedIpv4
        );
        assert_eq!(
            parse(LinkType::RawIpv6, &ipv4_tcp(SYN), 40).status,
            ParseStatus::BadIpVersion
        );
        assert_eq!(
            parse(LinkType::RawIpv6, &[], 0).status,
            ParseStatus::TruncatedIpv6
        );
        let s = parse(LinkType::RawIpv6, &ipv6_tcp()[..39], 60);
        assert_eq!(s.status, ParseStatus::TruncatedIpv6);
        assert_no_ip(&s);
    }

    #[test]
    fn every_link_type_round_trips_its_code() {
        for link in [
            LinkType::Ethernet,
            LinkType::RawIp,
            LinkType::RawIpv4,
            LinkType::RawIpv6,
            LinkType::LinuxSll,
            LinkType::LinuxSll2,
            LinkType::Null,
            LinkType::Loop,
        ] {
            assert_eq!(LinkType::from_linktype(link.linktype()), Some(link));
        }
        // UnsupportedLinkType is the capture layer's verdict: every LinkType parses.
        assert_eq!(LinkType::from_linktype(147), None);
        assert!(ParseStatus::UnsupportedLinkType.is_error());
    }

    // ---- IPv4 ----------------------------------------------------------------------------

    #[test]
    fn ipv4_options_are_skipped() {
        let mut h = ipv4(proto::TCP, 48, 0).to_vec();
        h[0] = 0x47; // IHL 7: 8 bytes of options
        h.extend_from_slice(&[0x94, 0x04, 0x00, 0x00, 0x01, 0x01, 0x01, 0x00]);
        let s = eth_parse(ethertype::IPV4, &cat(&[&h, &TCP_SYN]));
        assert_v4_syn(&s);
        assert_eq!(s.ip_len, 48);
    }

    #[test]
    fn bad_ipv4_header() {
        let mut f = ipv4_tcp(SYN);
        f[0] = 0x44;
        let s = eth_parse(ethertype::IPV4, &f);
        assert_eq!(s.status, ParseStatus::BadIpv4Header);
        assert_no_ip(&s);
        // EtherType says IPv4, version nibble says 6.
        let s = eth_parse(ethertype::IPV4, &ipv6_tcp());
        assert_eq!(s.status, ParseStatus::BadIpv4Header);
    }

    #[test]
    fn bad_ipv4_length() {
        let s = eth_parse(ethertype::IPV4, &cat(&[&ipv4(proto::TCP, 19, 0), &TCP_SYN]));
        assert_eq!(s.status, ParseStatus::BadIpv4Length);
        assert_no_ip(&s);
    }

    #[test]
    fn truncated_ipv4() {
        let f = ipv4_tcp(SYN);
        let s = eth_parse(ethertype::IPV4, &f[..19]);
        assert_eq!(s.status, ParseStatus::TruncatedIpv4);
        assert_no_ip(&s);
        let mut f = f;
        f[0] = 0x4f; // 60-byte header in a 40-byte packet
        assert_eq!(
            eth_parse(ethertype::IPV4, &f).status,
            ParseStatus::TruncatedIpv4
        );
    }

    #[test]
    fn snaplen_cut_is_fine() {
        // Total length 1500, only the headers captured.
        let s = eth_parse(
            ethertype::IPV4,
            &cat(&[&ipv4(proto::TCP, 1500, 0), &TCP_SYN]),
        );
        assert_v4_syn(&s);
        assert_eq!(s.ip_len, 1500);
    }

    #[test]
    fn lying_total_length_bounds_l4() {
        // Total length 30 leaves 10 bytes for a 20-byte TCP header.
        let s = eth_parse(ethertype::IPV4, &cat(&[&ipv4(proto::TCP, 30, 0), &TCP_SYN]));
        assert_eq!(s.status, ParseStatus::TruncatedL4);
        assert_eq!(
            (s.ip_version, s.src, s.protocol, s.ip_len),
            (4, IpAddr::V4(SRC4), 6, 30)
        );
        assert_eq!((s.src_port, s.dst_port, s.tcp_flags), (0, 0, 0));
        assert!(!s.has_l4);
        assert_eq!(s.class(), TrafficClass::TcpOther);
    }

    #[test]
    fn ipv4_fragments() {
        // MF, offset 0: first fragment, L4 parsed.
        let s = eth_parse(
            ethertype::IPV4,
            &cat(&[&ipv4(proto::UDP, 32, 0x2000), &UDP_DNS]),
        );
        assert_eq!((s.status, s.frag), (ParseStatus::Ok, Fragment::First));
        assert_eq!((s.src_port, s.dst_port, s.udp_len), (54321, 53, 12));
        assert!(s.has_l4);
        assert_eq!(s.class(), TrafficClass::Fragment);
        // MF, offset 185 * 8: later fragment, bytes that look like UDP are not read.
        let s = eth_parse(
            ethertype::IPV4,
            &cat(&[&ipv4(proto::UDP, 32, 0x20b9), &UDP_DNS]),
        );
        assert_eq!(
            (s.status, s.frag, s.protocol),
            (ParseStatus::Ok, Fragment::Later, 17)
        );
        assert_eq!(
            (s.src_port, s.dst_port, s.udp_len, s.has_l4),
            (0, 0, 0, false)
        );
        assert_eq!(s.class(), TrafficClass::Fragment);
        // Last fragment: no MF, offset > 0.
        let s = eth_parse(
            ethertype::IPV4,
            &cat(&[&ipv4(proto::UDP, 32, 0x00b9), &UDP_DNS]),
        );
        assert_eq!(s.frag, Fragment::Later);
        assert!(!s.has_l4);
        // DF only: not a fragment.
        let s = eth_parse(
            ethertype::IPV4,
            &cat(&[&ipv4(proto::UDP, 32, 0x4000), &UDP_DNS]),
        );
        assert_eq!((s.frag, s.class()), (Fragment::None, TrafficClass::Udp));
        // Tiny first fragment: the TCP header does not fit.
        let s = eth_parse(
            ethertype::IPV4,
            &cat(&[&ipv4(proto::TCP, 28, 0x2000), &TCP_SYN]),
        );
        assert_eq!(
            (s.status, s.frag),
            (ParseStatus::TruncatedL4, Fragment::First)
        );
    }

    #[test]
    fn other_protocol_is_ok_without_l4() {
        let s = eth_parse(ethertype::IPV4, &cat(&[&ipv4(proto::GRE, 28, 0), &[0; 8]]));
        assert_eq!(
            (s.status, s.protocol, s.has_l4),
            (ParseStatus::Ok, proto::GRE, false)
        );
        assert_eq!(s.class(), TrafficClass::Other);
    }

    // ---- IPv6 ----------------------------------------------------------------------------

    fn ext(next: u8, len_units: u8, total: usize) -> Vec<u8> {
        let mut v = vec![0u8; total];
        v[0] = next;
        v[1] = len_units;
        v
    }

    fn frag6(next: u8, offset_bytes: u16, more: bool) -> [u8; 8] {
        let [o0, o1] = (offset_bytes | u16::from(more)).to_be_bytes();
        [next, 0, o0, o1, 0xca, 0xfe, 0xba, 0xbe]
    }

    fn v6_parse(next: u8, after_fixed: &[u8]) -> PacketSummary {
        let plen = after_fixed.len() as u16;
        eth_parse(ethertype::IPV6, &cat(&[&ipv6(next, plen), after_fixed]))
    }

    #[test]
    fn ipv6_plain() {
        let s = eth_parse(ethertype::IPV6, &ipv6_tcp());
        assert_v6_syn(&s);
        assert_eq!((s.ip_len, s.frag), (60, Fragment::None));
    }

    #[test]
    fn ipv6_hop_by_hop_then_udp() {
        let s = v6_parse(
            ext_header::HOP_BY_HOP,
            &cat(&[&ext(proto::UDP, 0, 8), &UDP_DNS]),
        );
        assert_eq!((s.status, s.protocol), (ParseStatus::Ok, proto::UDP));
        assert_eq!((s.src_port, s.dst_port, s.udp_len), (54321, 53, 12));
        assert_eq!(s.ip_len, 40 + 20);
    }

    #[test]
    fn ipv6_routing_then_tcp() {
        let s = v6_parse(
            ext_header::ROUTING,
            &cat(&[&ext(proto::TCP, 2, 24), &TCP_SYN]),
        );
        assert_v6_syn(&s);
    }

    #[test]
    fn ipv6_dest_opts_then_icmpv6() {
        let s = v6_parse(
            ext_header::DEST_OPTS,
            &cat(&[&ext(proto::ICMPV6, 1, 16), &ICMP6_ECHO]),
        );
        assert_eq!(
            (s.status, s.protocol, s.has_l4),
            (ParseStatus::Ok, proto::ICMPV6, true)
        );
        assert_eq!((s.icmp_type, s.icmp_code), (128, 0));
        assert_eq!(s.class(), TrafficClass::Icmp);
    }

    #[test]
    fn ipv6_auth_header_length_in_four_byte_units() {
        // AH payload length 4 => (4 + 2) * 4 = 24 bytes.
        let s = v6_parse(ext_header::AUTH, &cat(&[&ext(proto::TCP, 4, 24), &TCP_SYN]));
        assert_v6_syn(&s);
    }

    #[test]
    fn ipv6_long_chain() {
        let chain = cat(&[
            &ext(ext_header::DEST_OPTS, 0, 8),
            &ext(ext_header::ROUTING, 0, 8),
            &ext(ext_header::FRAGMENT, 0, 8),
            &frag6(ext_header::AUTH, 0, true),
            &ext(ext_header::DEST_OPTS, 1, 12),
            &ext(proto::TCP, 0, 8),
            &TCP_SYN,
        ]);
        let s = v6_parse(ext_header::HOP_BY_HOP, &chain);
        assert_v6_syn(&s);
        assert_eq!(s.frag, Fragment::First);
    }

    #[test]
    fn ipv6_fragments() {
        let s = v6_parse(
            ext_header::FRAGMENT,
            &cat(&[&frag6(proto::UDP, 0, true), &UDP_DNS]),
        );
        assert_eq!(
            (s.status, s.frag, s.protocol),
            (ParseStatus::Ok, Fragment::First, proto::UDP)
        );
        assert_eq!((s.src_port, s.dst_port, s.has_l4), (54321, 53, true));
        assert_eq!(s.class(), TrafficClass::Fragment);

        let s = v6_parse(
            ext_header::FRAGMENT,
            &cat(&[&frag6(proto::UDP, 1448, true), &UDP_DNS]),
        );
        assert_eq!(
            (s.status, s.frag, s.protocol),
            (ParseStatus::Ok, Fragment::Later, proto::UDP)
        );
        assert_eq!((s.src_port, s.dst_port, s.has_l4), (0, 0, false));

        let s = v6_parse(
            ext_header::FRAGMENT,
            &cat(&[&frag6(proto::UDP, 1448, false), &UDP_DNS]),
        );
        assert_eq!(s.frag, Fragment::Later);

        // Atomic fragment (offset 0, no M): not a fragment.
        let s = v6_parse(
            ext_header::FRAGMENT,
            &cat(&[&frag6(proto::UDP, 0, false), &UDP_DNS]),
        );
        assert_eq!(
            (s.frag, s.class(), s.has_l4),
            (Fragment::None, TrafficClass::Udp, true)
        );
    }

    #[test]
    fn ipv6_unknown_and_opaque_next_headers() {
        for next in [132u8, ext_header::ESP, ext_header::NO_NEXT, 253] {
            let s = v6_parse(next, &[0; 16]);
            assert_eq!(
                (s.status, s.protocol, s.has_l4),
                (ParseStatus::Ok, next, false)
            );
            assert_eq!(s.class(), TrafficClass::Other);
        }
        // Unknown after an extension header.
        let s = v6_parse(ext_header::DEST_OPTS, &cat(&[&ext(132, 0, 8), &[0; 12]]));
        assert_eq!((s.status, s.protocol), (ParseStatus::Ok, 132));
    }

    #[test]
    fn ipv6_ext_walk_is_bounded() {
        let mut chain = Vec::new();
        for _ in 0..MAX_IPV6_EXT_HEADERS + 1 {
            chain.extend_from_slice(&ext(ext_header::DEST_OPTS, 0, 8));
        }
        chain.extend_from_slice(&ext(proto::TCP, 0, 8));
        chain.extend_from_slice(&TCP_SYN);
        let s = v6_parse(ext_header::DEST_OPTS, &chain);
        assert_eq!(
            (s.status, s.protocol, s.has_l4),
            (ParseStatus::Ok, ext_header::DEST_OPTS, false)
        );
    }

    #[test]
    fn truncated_ipv6_ext() {
        // Hop-by-hop announcing 16 bytes, 8 captured.
        let s = v6_parse(ext_header::HOP_BY_HOP, &ext(proto::TCP, 1, 8));
        assert_eq!(s.status, ParseStatus::TruncatedIpv6Ext);
        assert_eq!(
            (s.ip_version, s.src, s.protocol),
            (6, src6(), ext_header::HOP_BY_HOP)
        );
        assert!(!s.has_l4);
        // Fragment header cut short.
        let s = v6_parse(ext_header::FRAGMENT, &frag6(proto::UDP, 0, true)[..6]);
        assert_eq!(
            (s.status, s.protocol),
            (ParseStatus::TruncatedIpv6Ext, ext_header::FRAGMENT)
        );
        // Captured, but beyond the payload length.
        let body = cat(&[&ext(proto::TCP, 0, 8), &TCP_SYN]);
        let f = cat(&[&ipv6(ext_header::DEST_OPTS, 4), &body]);
        let s = eth_parse(ethertype::IPV6, &f);
        assert_eq!(s.status, ParseStatus::TruncatedIpv6Ext);
    }

    #[test]
    fn truncated_ipv6_and_version_mismatch() {
        let s = eth_parse(ethertype::IPV6, &ipv6_tcp()[..39]);
        assert_eq!(s.status, ParseStatus::TruncatedIpv6);
        assert_no_ip(&s);
        let mut f = ipv6_tcp();
        f[0] = 0x40;
        let s = eth_parse(ethertype::IPV6, &f);
        assert_eq!(s.status, ParseStatus::BadIpVersion);
        assert_no_ip(&s);
    }

    #[test]
    fn ipv6_payload_length_bounds_l4() {
        // Payload length 10 but a full TCP header captured.
        let s = eth_parse(ethertype::IPV6, &cat(&[&ipv6(proto::TCP, 10), &TCP_SYN]));
        assert_eq!(
            (s.status, s.ip_version, s.ip_len),
            (ParseStatus::TruncatedL4, 6, 50)
        );
    }

    // ---- L4 ------------------------------------------------------------------------------

    #[test]
    fn tcp_flags_and_classes() {
        let cases = [
            (SYN, TrafficClass::Syn),
            (SYN | ACK, TrafficClass::SynAck),
            (ACK, TrafficClass::Ack),
            (ACK | PSH, TrafficClass::Ack),
            (ACK | URG | 0xc0, TrafficClass::Ack),
            (RST, TrafficClass::Rst),
            (RST | ACK, TrafficClass::Rst),
            (SYN | RST, TrafficClass::Rst),
            (FIN | ACK, TrafficClass::TcpOther),
            (0, TrafficClass::TcpOther),
            (FIN | PSH | URG, TrafficClass::TcpOther),
        ];
        for (flags, class) in cases {
            let s = eth_parse(ethertype::IPV4, &ipv4_tcp(flags));
            assert_eq!(s.tcp_flags, flags);
            assert_eq!(s.class(), class, "flags {flags:#04x}");
            assert_eq!(TrafficClass::of(&s), class);
        }
    }

    #[test]
    fn bad_tcp_header() {
        let mut t = TCP_SYN;
        t[12] = 0x40;
        let s = eth_parse(ethertype::IPV4, &cat(&[&ipv4(proto::TCP, 40, 0), &t]));
        assert_eq!(s.status, ParseStatus::BadTcpHeader);
        assert_eq!((s.ip_version, s.protocol, s.has_l4), (4, proto::TCP, false));
        assert_eq!((s.src_port, s.tcp_flags), (0, 0));
        assert_eq!(s.class(), TrafficClass::TcpOther);
    }

    #[test]
    fn truncated_l4_each_protocol() {
        let cases: [(u8, &[u8]); 4] = [
            (proto::TCP, &TCP_SYN[..19]),
            (proto::UDP, &UDP_DNS[..7]),
            (proto::ICMP, &ICMP_ECHO[..3]),
            (proto::ICMPV6, &ICMP6_ECHO[..3]),
        ];
        for (p, l4) in cases {
            let s = eth_parse(
                ethertype::IPV4,
                &cat(&[&ipv4(p, 20 + l4.len() as u16, 0), l4]),
            );
            assert_eq!(s.status, ParseStatus::TruncatedL4, "proto {p}");
            assert_eq!((s.ip_version, s.protocol, s.has_l4), (4, p, false));
            assert_eq!(
                (s.src_port, s.dst_port, s.icmp_type, s.udp_len),
                (0, 0, 0, 0)
            );
        }
    }

    #[test]
    fn udp() {
        let s = eth_parse(ethertype::IPV4, &ipv4_udp());
        assert_eq!(
            s,
            PacketSummary {
                protocol: proto::UDP,
                src_port: 54321,
                dst_port: 53,
                tcp_flags: 0,
                ip_len: 32,
                udp_len: 12,
                ..expected_v4_syn()
            }
        );
        assert_eq!(s.class(), TrafficClass::Udp);
    }

    #[test]
    fn icmp() {
        let s = eth_parse(
            ethertype::IPV4,
            &cat(&[&ipv4(proto::ICMP, 28, 0), &ICMP_ECHO]),
        );
        assert_eq!(
            (s.status, s.protocol, s.has_l4),
            (ParseStatus::Ok, proto::ICMP, true)
        );
        assert_eq!((s.icmp_type, s.icmp_code, s.src_port), (8, 0, 0));
        assert_eq!(s.class(), TrafficClass::Icmp);
        // Exactly four bytes are enough.
        let s = eth_parse(
            ethertype::IPV4,
            &cat(&[&ipv4(proto::ICMP, 24, 0), &[3, 3, 0, 0]]),
        );
        assert_eq!(
            (s.status, s.icmp_type, s.icmp_code),
            (ParseStatus::Ok, 3, 3)
        );
    }

    #[test]
    fn icmpv6() {
        let s = v6_parse(proto::ICMPV6, &ICMP6_ECHO);
        assert_eq!(
            (s.status, s.protocol, s.has_l4),
            (ParseStatus::Ok, proto::ICMPV6, true)
        );
        assert_eq!((s.icmp_type, s.icmp_code), (128, 0));
        assert_eq!(s.class(), TrafficClass::Icmp);
    }

    // ---- tunnels -------------------------------------------------------------------------

    const OSRC4: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 1);
    const ODST4: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 2);
    const MIRROR: ParseOptions = ParseOptions::MIRROR;

    /// Outer IPv4 10.9.0.1 -> 10.9.0.2, TTL 255, total length covering `body`.
    fn outer4(protocol: u8, body: &[u8]) -> Vec<u8> {
        let mut h = ipv4(protocol, 20 + body.len() as u16, 0);
        h[8] = 255;
        h[12..16].copy_from_slice(&OSRC4.octets());
        h[16..20].copy_from_slice(&ODST4.octets());
        cat(&[&h, body])
    }

    /// Outer IPv6 fd00::a -> fd00::b, hop limit 200.
    fn outer6(next: u8, body: &[u8]) -> Vec<u8> {
        let mut h = ipv6(next, body.len() as u16);
        h[7] = 200;
        h[8..24].copy_from_slice(&Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0xa).octets());
        h[24..40].copy_from_slice(&Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0xb).octets());
        cat(&[&h, body])
    }

    fn udp_to(dport: u16, body: &[u8]) -> Vec<u8> {
        let len = 8 + body.len() as u16;
        cat(&[
            &[0xc0, 0x01],
            &dport.to_be_bytes(),
            &len.to_be_bytes(),
            &[0, 0],
            body,
        ])
    }

    /// GRE base header with the given flags/version word, then `opts` (checksum, key, seq).
    fn gre(flags: u16, protocol: u16, opts: &[u8], body: &[u8]) -> Vec<u8> {
        cat(&[&flags.to_be_bytes(), &protocol.to_be_bytes(), opts, body])
    }

    /// GRE with S and a sequence number, ERSPAN II (session 5, index 9), then `body`.
    fn erspan2(vlan: u16, en: u8, body: &[u8]) -> Vec<u8> {
        let w0 = 0x1000 | (vlan & 0x0fff);
        let w1 = (u16::from(en) << 11) | 5;
        let hdr = cat(&[&w0.to_be_bytes(), &w1.to_be_bytes(), &[0, 0, 0, 9]]);
        gre(0x1000, 0x88be, &[0, 0, 0, 1], &cat(&[&hdr, body]))
    }

    /// GRE (no options), ERSPAN III with frame type `ft`, and the platform subheader if `o`.
    fn erspan3(vlan: u16, ft: u8, o: bool, body: &[u8]) -> Vec<u8> {
        let w0 = 0x2000 | (vlan & 0x0fff);
        let flags = 0x8000 | (u16::from(ft) << 10) | u16::from(o);
        let mut hdr = cat(&[
            &w0.to_be_bytes(),
            &[0x00, 0x05, 0, 0, 0x12, 0x34, 0, 0],
            &flags.to_be_bytes(),
        ]);
        if o {
            hdr.extend_from_slice(&[0x0c, 0, 0, 1, 0, 0, 0, 2]);
        }
        gre(0, 0x22eb, &[], &cat(&[&hdr, body]))
    }

    fn vxlan(vni: u32, body: &[u8]) -> Vec<u8> {
        cat(&[&[0x08, 0, 0, 0], &(vni << 8).to_be_bytes(), body])
    }

    /// The inner frame of the tunnel tests: Ethernet / IPv4 / TCP SYN.
    fn inner_syn() -> Vec<u8> {
        eth(ethertype::IPV4, &ipv4_tcp(SYN))
    }

    fn mirror(frame: &[u8], wire_len: u32) -> PacketSummary {
        parse_with(LinkType::Ethernet, frame, wire_len, &MIRROR)
    }

    fn options(f: impl FnOnce(&mut Decap)) -> ParseOptions {
        let mut d = Decap::MIRROR;
        f(&mut d);
        ParseOptions::new(d)
    }

    /// The outer IPv4 packet's fields are what the summary shows.
    fn assert_outer4(s: &PacketSummary, protocol: u8) {
        assert_eq!(
            (s.ip_version, s.src, s.dst, s.protocol, s.ttl),
            (4, IpAddr::V4(OSRC4), IpAddr::V4(ODST4), protocol, 255),
            "{s:?}"
        );
        assert_eq!(s.encap, Encap::None);
    }

    #[test]
    fn gre_teb_ipv4_outer() {
        let inner = inner_syn();
        let f = eth(
            ethertype::IPV4,
            &outer4(proto::GRE, &gre(0, 0x6558, &[], &inner)),
        );
        let s = mirror(&f, 2000);
        assert_eq!(
            s,
            PacketSummary {
                encap: Encap::Gre,
                wire_len: 2000 - (14 + 20 + 4),
                ..expected_v4_syn()
            }
        );
        assert_eq!(s.class(), TrafficClass::Syn);
        // The inner frame's own VLAN tag, not the outer one.
        let tagged = eth(
            ethertype::VLAN,
            &cat(&[&[0x00, 0x2a, 0x08, 0x00], &ipv4_tcp(SYN)]),
        );
        let f = eth(
            ethertype::VLAN,
            &cat(&[
                &[0x00, 0x07, 0x08, 0x00],
                &outer4(proto::GRE, &gre(0, 0x6558, &[], &tagged)),
            ]),
        );
        let s = mirror(&f, 0);
        assert_v4_syn(&s);
        assert_eq!((s.vlan_depth, s.vlan_id, s.encap), (1, 42, Encap::Gre));
    }

    #[test]
    fn gre_with_checksum_and_key() {
        // NVGRE-style key, plus a checksum: 12-byte GRE header.
        let body = gre(
            0xa000,
            0x6558,
            &[0xab, 0xcd, 0, 0, 0, 0, 0x10, 0],
            &inner_syn(),
        );
        let f = eth(ethertype::IPV4, &outer4(proto::GRE, &body));
        let s = mirror(&f, 1000);
        assert_v4_syn(&s);
        assert_eq!((s.encap, s.wire_len), (Encap::Gre, 1000 - (14 + 20 + 12)));
    }

    #[test]
    fn gre_ip_payloads() {
        // IPv4 outer, IPv4 inner (no inner Ethernet).
        let f = outer4(proto::GRE, &gre(0, 0x0800, &[], &ipv4_tcp(SYN)));
        let s = parse_with(LinkType::RawIp, &f, f.len() as u32, &MIRROR);
        assert_eq!(
            s,
            PacketSummary {
                encap: Encap::Gre,
                wire_len: 40,
                ..expected_v4_syn()
            }
        );
        // IPv6 outer, IPv6 inner.
        let f = eth(
            ethertype::IPV6,
            &outer6(proto::GRE, &gre(0, 0x86dd, &[], &ipv6_tcp())),
        );
        let s = mirror(&f, f.len() as u32);
        assert_v6_syn(&s);
        assert_eq!((s.encap, s.wire_len, s.ip_len), (Encap::Gre, 60, 60));
        // IPv6 outer, Ethernet inner.
        let f = eth(
            ethertype::IPV6,
            &outer6(proto::GRE, &gre(0, 0x6558, &[], &inner_syn())),
        );
        let s = mirror(&f, 1514);
        assert_v4_syn(&s);
        assert_eq!((s.encap, s.wire_len), (Encap::Gre, 1514 - (14 + 40 + 4)));
        // Protocol type IPv4 with IPv6 inside: the inner IPv4 header is bad.
        let f = outer4(proto::GRE, &gre(0, 0x0800, &[], &ipv6_tcp()));
        let s = parse_with(LinkType::RawIpv4, &f, 0, &MIRROR);
        assert_eq!(
            (s.status, s.ip_version, s.encap),
            (ParseStatus::BadIpv4Header, 0, Encap::Gre)
        );
    }

    #[test]
    fn erspan_ii() {
        let f = eth(
            ethertype::IPV4,
            &outer4(proto::GRE, &erspan2(0, 0, &inner_syn())),
        );
        let s = mirror(&f, 1000);
        assert_eq!(
            s,
            PacketSummary {
                encap: Encap::ErspanII,
                wire_len: 1000 - (14 + 20 + 8 + 8),
                ..expected_v4_syn()
            }
        );
        // Tag removed from the frame (En = 802.1Q): the header's VLAN is the frame's.
        let f = eth(
            ethertype::IPV4,
            &outer4(proto::GRE, &erspan2(100, 2, &inner_syn())),
        );
        let s = mirror(&f, 1000);
        assert_v4_syn(&s);
        assert_eq!((s.vlan_depth, s.vlan_id), (1, 100));
        // Tag kept in the frame: the frame's tags win.
        let tagged = eth(
            ethertype::QINQ,
            &cat(&[
                &[0x00, 0x0b, 0x81, 0x00, 0x00, 0x0c, 0x08, 0x00],
                &ipv4_tcp(SYN),
            ]),
        );
        let f = eth(
            ethertype::IPV4,
            &outer4(proto::GRE, &erspan2(11, 3, &tagged)),
        );
        let s = mirror(&f, 1000);
        assert_v4_syn(&s);
        assert_eq!((s.vlan_depth, s.vlan_id, s.encap), (2, 11, Encap::ErspanII));
        // Over IPv6.
        let f = eth(
            ethertype::IPV6,
            &outer6(proto::GRE, &erspan2(0, 0, &inner_syn())),
        );
        let s = mirror(&f, 1000);
        assert_v4_syn(&s);
        assert_eq!(
            (s.encap, s.wire_len),
            (Encap::ErspanII, 1000 - (14 + 40 + 16))
        );
    }

    #[test]
    fn erspan_iii() {
        let f = eth(
            ethertype::IPV4,
            &outer4(proto::GRE, &erspan3(0, 0, false, &inner_syn())),
        );
        let s = mirror(&f, 1000);
        assert_eq!(
            s,
            PacketSummary {
                encap: Encap::ErspanIII,
                wire_len: 1000 - (14 + 20 + 4 + 12),
                ..expected_v4_syn()
            }
        );
        // Platform-specific subheader, original VLAN.
        let f = eth(
            ethertype::IPV4,
            &outer4(proto::GRE, &erspan3(300, 0, true, &inner_syn())),
        );
        let s = mirror(&f, 1000);
        assert_v4_syn(&s);
        assert_eq!(s.wire_len, 1000 - (14 + 20 + 4 + 20));
        assert_eq!((s.vlan_depth, s.vlan_id), (1, 300));
        // Frame type IP: an IPv6 packet without a link header.
        let f = eth(
            ethertype::IPV4,
            &outer4(proto::GRE, &erspan3(0, 2, false, &ipv6_tcp())),
        );
        let s = mirror(&f, 1000);
        assert_v6_syn(&s);
        assert_eq!(s.encap, Encap::ErspanIII);
        // Frame type IP, empty.
        let f = eth(
            ethertype::IPV4,
            &outer4(proto::GRE, &erspan3(0, 2, false, &[])),
        );
        assert_eq!(mirror(&f, 0).status, ParseStatus::TruncatedLink);
    }

    #[test]
    fn vxlan_ipv4_and_ipv6_outer() {
        let body = udp_to(4789, &vxlan(0x123456, &inner_syn()));
        let f = eth(ethertype::IPV4, &outer4(proto::UDP, &body));
        let s = mirror(&f, 1000);
        assert_eq!(
            s,
            PacketSummary {
                encap: Encap::Vxlan,
                wire_len: 1000 - (14 + 20 + 8 + 8),
                ..expected_v4_syn()
            }
        );
        let f = eth(ethertype::IPV6, &outer6(proto::UDP, &body));
        let s = mirror(&f, 1000);
        assert_v4_syn(&s);
        assert_eq!((s.encap, s.wire_len), (Encap::Vxlan, 1000 - (14 + 40 + 16)));
        // Inner IPv6 over IPv6.
        let body = udp_to(4789, &vxlan(1, &eth(ethertype::IPV6, &ipv6_tcp())));
        let s = mirror(&eth(ethertype::IPV6, &outer6(proto::UDP, &body)), 0);
        assert_v6_syn(&s);
        assert_eq!((s.encap, s.wire_len), (Encap::Vxlan, 0));
    }

    #[test]
    fn vxlan_ports_are_configurable() {
        let body = udp_to(8472, &vxlan(7, &inner_syn()));
        let f = eth(ethertype::IPV4, &outer4(proto::UDP, &body));
        let s = mirror(&f, 0);
        assert_eq!(
            (s.status, s.encap, s.dst_port),
            (ParseStatus::Ok, Encap::None, 8472)
        );
        let o = options(|d| d.vxlan_ports = [4789, 8472, 0, 0]);
        let s = parse_with(LinkType::Ethernet, &f, 0, &o);
        assert_v4_syn(&s);
        assert_eq!(s.encap, Encap::Vxlan);
        // A zero slot never matches port 0.
        let f = eth(
            ethertype::IPV4,
            &outer4(proto::UDP, &udp_to(0, &vxlan(7, &inner_syn()))),
        );
        assert_eq!(parse_with(LinkType::Ethernet, &f, 0, &o).encap, Encap::None);
        assert!(!Decap::MIRROR.is_vxlan_port(0));
    }

    #[test]
    fn wire_len_saturates() {
        let f = eth(
            ethertype::IPV4,
            &outer4(proto::GRE, &gre(0, 0x6558, &[], &inner_syn())),
        );
        assert_eq!(mirror(&f, 10).wire_len, 0);
        assert_eq!(mirror(&f, 38).wire_len, 0);
        assert_eq!(mirror(&f, 39).wire_len, 1);
    }

    #[test]
    fn decap_disabled_summarises_the_outer_packet() {
        let gre_f = eth(
            ethertype::IPV4,
            &outer4(proto::GRE, &gre(0, 0x6558, &[], &inner_syn())),
        );
        let vxlan_f = eth(
            ethertype::IPV4,
            &outer4(proto::UDP, &udp_to(4789, &vxlan(1, &inner_syn()))),
        );
        let erspan_f = eth(
            ethertype::IPV4,
            &outer4(proto::GRE, &erspan2(0, 0, &inner_syn())),
        );
        for o in [
            ParseOptions::NONE,
            ParseOptions::default(),
            options(|d| d.max_depth = 0),
        ] {
            for f in [&gre_f, &erspan_f] {
                let s = parse_with(LinkType::Ethernet, f, 500, &o);
                assert_eq!(s, parse(LinkType::Ethernet, f, 500));
                assert_eq!((s.status, s.wire_len), (ParseStatus::Ok, 500));
                assert_outer4(&s, proto::GRE);
                assert_eq!(s.class(), TrafficClass::Other);
            }
            let s = parse_with(LinkType::Ethernet, &vxlan_f, 500, &o);
            assert_eq!(s, parse(LinkType::Ethernet, &vxlan_f, 500));
            assert_outer4(&s, proto::UDP);
            assert_eq!(
                (s.status, s.dst_port, s.has_l4),
                (ParseStatus::Ok, 4789, true)
            );
            assert_eq!(s.class(), TrafficClass::Udp);
        }
        // Each switch alone.
        let no_gre = options(|d| d.gre = false);
        assert_eq!(
            parse_with(LinkType::Ethernet, &gre_f, 0, &no_gre).encap,
            Encap::None
        );
        assert_eq!(
            parse_with(LinkType::Ethernet, &erspan_f, 0, &no_gre).encap,
            Encap::ErspanII
        );
        let no_erspan = options(|d| d.erspan = false);
        assert_eq!(
            parse_with(LinkType::Ethernet, &gre_f, 0, &no_erspan).encap,
            Encap::Gre
        );
        assert_eq!(
            parse_with(LinkType::Ethernet, &erspan_f, 0, &no_erspan).encap,
            Encap::None
        );
        let no_vxlan = options(|d| d.vxlan = false);
        assert_eq!(
            parse_with(LinkType::Ethernet, &vxlan_f, 0, &no_vxlan).encap,
            Encap::None
        );
        assert_eq!(ParseOptions::default(), ParseOptions::NONE);
        assert!(!Decap::default().any() && Decap::MIRROR.any());
    }

    #[test]
    fn gre_not_decapsulated_is_left_alone() {
        // PPTP: GRE version 1, PPP payload, key and sequence.
        let pptp = gre(
            0x3001,
            0x880b,
            &[0, 8, 0, 1, 0, 0, 0, 1],
            &[0xff, 0x03, 0, 0x21],
        );
        // Other protocol types: MPLS, and a bare 0x88be with no room even for a sequence.
        let mpls = gre(0, 0x8847, &[], &[0; 8]);
        for body in [pptp, mpls] {
            let s = mirror(&eth(ethertype::IPV4, &outer4(proto::GRE, &body)), 0);
            assert_eq!(s.status, ParseStatus::Ok);
            assert_outer4(&s, proto::GRE);
        }
    }

    #[test]
    fn fragments_of_the_outer_packet() {
        // First fragment: decapsulated from what it holds.
        let body = gre(0, 0x6558, &[], &inner_syn());
        let mut ip = outer4(proto::GRE, &body);
        ip[6] = 0x20; // MF
        let s = mirror(&eth(ethertype::IPV4, &ip), 0);
        assert_v4_syn(&s);
        assert_eq!((s.frag, s.encap), (Fragment::None, Encap::Gre));
        // Later fragment: the outer fragment.
        ip[7] = 0x10;
        let s = mirror(&eth(ethertype::IPV4, &ip), 0);
        assert_eq!((s.status, s.frag), (ParseStatus::Ok, Fragment::Later));
        assert_outer4(&s, proto::GRE);
    }

    #[test]
    fn decapsulation_depth_is_bounded() {
        // ERSPAN II → VXLAN → GRE(IPv4) → IPv4 TCP SYN: three tunnels.
        let level3 = outer4(proto::GRE, &gre(0, 0x0800, &[], &ipv4_tcp(SYN)));
        let level2 = eth(
            ethertype::IPV4,
            &outer4(
                proto::UDP,
                &udp_to(4789, &vxlan(3, &eth(ethertype::IPV4, &level3))),
            ),
        );
        let f = eth(
            ethertype::IPV4,
            &outer4(proto::GRE, &erspan2(0, 0, &level2)),
        );
        let s = mirror(&f, 1000);
        // Two levels removed: the GRE packet inside the VXLAN, as is.
        assert_eq!(s.status, ParseStatus::Ok);
        assert_outer4(
            &PacketSummary {
                encap: Encap::None,
                ..s
            },
            proto::GRE,
        );
        assert_eq!(s.encap, Encap::ErspanII, "the outermost encapsulation");
        let overhead = (14 + 20 + 8 + 8) + (14 + 20 + 8 + 8);
        assert_eq!(s.wire_len, 1000 - overhead);
        // One level only: the VXLAN packet.
        let s = parse_with(LinkType::Ethernet, &f, 1000, &options(|d| d.max_depth = 1));
        assert_outer4(
            &PacketSummary {
                encap: Encap::None,
                ..s
            },
            proto::UDP,
        );
        assert_eq!(
            (s.dst_port, s.encap, s.status),
            (4789, Encap::ErspanII, ParseStatus::Ok)
        );
        // A larger max_depth is capped.
        let s3 = parse_with(
            LinkType::Ethernet,
            &f,
            1000,
            &options(|d| d.max_depth = 200),
        );
        assert_eq!(s3, mirror(&f, 1000));
        // Two tunnels: both removed.
        let s = mirror(
            &eth(
                ethertype::IPV4,
                &outer4(proto::GRE, &erspan2(0, 0, &eth(ethertype::IPV4, &level3))),
            ),
            0,
        );
        assert_v4_syn(&s);
        assert_eq!(s.encap, Encap::ErspanII);
    }

    #[test]
    fn truncated_tunnel_headers() {
        let inner = inner_syn();
        let cases: Vec<(u8, Vec<u8>)> = vec![
            // GRE base header cut.
            (proto::GRE, vec![0x00, 0x00, 0x65]),
            // Key announced, not there.
            (proto::GRE, gre(0x2000, 0x6558, &[0, 0], &[])),
            // ERSPAN II sequence number cut.
            (proto::GRE, erspan2(0, 0, &[])[..6].to_vec()),
            // ERSPAN II header cut.
            (proto::GRE, erspan2(0, 0, &[])[..15].to_vec()),
            // ERSPAN III header cut.
            (proto::GRE, erspan3(0, 0, false, &[])[..15].to_vec()),
            // ERSPAN III platform subheader cut.
            (proto::GRE, erspan3(0, 0, true, &[])[..23].to_vec()),
            // VXLAN header cut.
            (proto::UDP, udp_to(4789, &vxlan(1, &[])[..7])),
        ];
        for (p, body) in cases {
            let s = mirror(&eth(ethertype::IPV4, &outer4(p, &body)), 777);
            assert_eq!(s.status, ParseStatus::TruncatedTunnel, "{body:02x?}");
            assert!(s.status.is_error());
            assert_outer4(&s, p);
            assert_eq!(s.wire_len, 777);
        }
        // Captured, but beyond the IPv4 total length.
        let mut ip = outer4(proto::GRE, &erspan2(0, 0, &inner));
        ip[2..4].copy_from_slice(&30u16.to_be_bytes());
        let s = mirror(&eth(ethertype::IPV4, &ip), 0);
        assert_eq!(s.status, ParseStatus::TruncatedTunnel);
        // VXLAN keeps the outer UDP header it read.
        let s = mirror(
            &eth(ethertype::IPV4, &outer4(proto::UDP, &udp_to(4789, &[8, 0]))),
            0,
        );
        assert_eq!(
            (s.status, s.has_l4, s.dst_port, s.udp_len),
            (ParseStatus::TruncatedTunnel, true, 4789, 10)
        );
        assert_eq!(s.class(), TrafficClass::Udp);
        // An IPv6 outer packet too.
        let s = mirror(&eth(ethertype::IPV6, &outer6(proto::GRE, &[0x10, 0x00])), 0);
        assert_eq!(
            (s.status, s.ip_version, s.protocol),
            (ParseStatus::TruncatedTunnel, 6, proto::GRE)
        );
    }

    #[test]
    fn bad_tunnel_headers() {
        let inner = inner_syn();
        let mut no_i = vxlan(1, &inner);
        no_i[0] = 0x00;
        let mut erspan2_v2 = erspan2(0, 0, &inner);
        erspan2_v2[8] = 0x20;
        let mut erspan3_v1 = erspan3(0, 0, false, &inner);
        erspan3_v1[4] = 0x10;
        let cases: Vec<(u8, Vec<u8>)> = vec![
            // GRE version 1 with a decapsulated protocol type.
            (proto::GRE, gre(0x0001, 0x6558, &[], &inner)),
            // RFC 1701 routing present.
            (proto::GRE, gre(0x4000, 0x0800, &[0; 4], &ipv4_tcp(SYN))),
            // ERSPAN II without a GRE sequence number (type I is not decapsulated).
            (proto::GRE, gre(0, 0x88be, &[], &inner)),
            (proto::GRE, erspan2_v2),
            (proto::GRE, erspan3_v1),
            // ERSPAN III frame type 1 (reserved).
            (proto::GRE, erspan3(0, 1, false, &inner)),
            (proto::UDP, udp_to(4789, &no_i)),
        ];
        for (p, body) in cases {
            let s = mirror(&eth(ethertype::IPV4, &outer4(p, &body)), 0);
            assert_eq!(s.status, ParseStatus::BadTunnelHeader, "{body:02x?}");
            assert_outer4(&s, p);
            // Decapsulation off: just the outer packet.
            let s = parse(
                LinkType::Ethernet,
                &eth(ethertype::IPV4, &outer4(p, &body)),
                0,
            );
            assert_eq!(s.status, ParseStatus::Ok);
        }
    }

    #[test]
    fn problems_inside_the_tunnel() {
        // Inner IPv4 cut: the inner frame's status, no IP, still counted as encapsulated.
        let inner = inner_syn();
        let body = udp_to(4789, &vxlan(1, &inner[..30]));
        let s = mirror(&eth(ethertype::IPV4, &outer4(proto::UDP, &body)), 100);
        assert_eq!(
            (s.status, s.ip_version, s.encap),
            (ParseStatus::TruncatedIpv4, 0, Encap::Vxlan)
        );
        assert_no_ip(&PacketSummary {
            encap: Encap::None,
            ..s
        });
        assert_eq!(s.wire_len, 100 - 50);
        // Mirrored ARP: not IP, not an error.
        let arp = eth(ethertype::ARP, &[0; 28]);
        let s = mirror(
            &eth(ethertype::IPV4, &outer4(proto::GRE, &erspan2(5, 2, &arp))),
            0,
        );
        assert_eq!(
            (s.status, s.encap, s.vlan_id),
            (ParseStatus::NonIp, Encap::ErspanII, 5)
        );
        // Empty inner Ethernet.
        let s = mirror(
            &eth(
                ethertype::IPV4,
                &outer4(proto::GRE, &gre(0, 0x6558, &[], &[])),
            ),
            0,
        );
        assert_eq!(
            (s.status, s.encap),
            (ParseStatus::TruncatedLink, Encap::Gre)
        );
        // Inner TCP cut: inner IP fields kept.
        let s = mirror(
            &eth(
                ethertype::IPV4,
                &outer4(proto::GRE, &gre(0, 0x0800, &[], &ipv4_tcp(SYN)[..30])),
            ),
            0,
        );
        assert_eq!(
            (s.status, s.src, s.encap),
            (ParseStatus::TruncatedL4, IpAddr::V4(SRC4), Encap::Gre)
        );
        // A second-level tunnel header cut: the first level's inner packet, with the error.
        let level2 = outer4(proto::GRE, &[0x00, 0x00, 0x08]);
        let s = mirror(
            &eth(
                ethertype::IPV4,
                &outer4(proto::GRE, &gre(0, 0x0800, &[], &level2)),
            ),
            0,
        );
        assert_eq!(s.status, ParseStatus::TruncatedTunnel);
        assert_outer4(
            &PacketSummary {
                encap: Encap::None,
                ..s
            },
            proto::GRE,
        );
        assert_eq!(s.encap, Encap::Gre);
    }

    #[test]
    fn every_tunnel_on_every_link_type() {
        let ip = outer4(proto::GRE, &erspan3(0, 0, false, &inner_syn()));
        for (link, f) in [
            (LinkType::RawIp, ip.clone()),
            (LinkType::RawIpv4, ip.clone()),
            (LinkType::LinuxSll, sll(0x0800, &ip)),
            (LinkType::LinuxSll2, sll2(0x0800, &ip)),
            (LinkType::Null, cat(&[&[2, 0, 0, 0], &ip])),
            (LinkType::Loop, cat(&[&[0, 0, 0, 2], &ip])),
        ] {
            let s = parse_with(link, &f, 1000, &MIRROR);
            assert_v4_syn(&s);
            let link_len = f.len() - ip.len();
            assert_eq!(
                s.wire_len as usize,
                1000 - link_len - 20 - 4 - 12,
                "{link:?}"
            );
        }
    }

    #[test]
    fn summary_stays_small() {
        assert!(std::mem::size_of::<PacketSummary>() <= 64);
        assert_eq!(std::mem::size_of::<Encap>(), 1);
        for (i, e) in Encap::ALL.iter().enumerate() {
            assert_eq!(e.index(), i);
        }
    }

    // ---- coverage of the contract --------------------------------------------------------

    #[test]
    fn every_traffic_class_is_produced() {
        let frames: [(Vec<u8>, TrafficClass); 9] = [
            (ipv4_tcp(SYN), TrafficClass::Syn),
            (ipv4_tcp(SYN | ACK), TrafficClass::SynAck),
            (ipv4_tcp(ACK), TrafficClass::Ack),
            (ipv4_tcp(RST), TrafficClass::Rst),
            (ipv4_tcp(FIN), TrafficClass::TcpOther),
            (ipv4_udp(), TrafficClass::Udp),
            (
                cat(&[&ipv4(proto::ICMP, 28, 0), &ICMP_ECHO]),
                TrafficClass::Icmp,
            ),
            (
                cat(&[&ipv4(proto::TCP, 40, 0x0010), &TCP_SYN]),
                TrafficClass::Fragment,
            ),
            (
                cat(&[&ipv4(proto::GRE, 24, 0), &[0; 4]]),
                TrafficClass::Other,
            ),
        ];
        let mut seen = [false; TrafficClass::COUNT];
        for (f, class) in frames {
            let s = parse(LinkType::RawIpv4, &f, f.len() as u32);
            assert!(s.has_ip());
            assert_eq!(TrafficClass::of(&s), class);
            seen[class.index()] = true;
        }
        assert!(seen.iter().all(|&b| b));
    }

    #[test]
    fn every_status_is_produced() {
        let mut bad_tcp = ipv4_tcp(SYN);
        bad_tcp[32] = 0x30;
        let cases: Vec<(LinkType, Vec<u8>, ParseStatus)> = vec![
            (
                LinkType::Ethernet,
                eth(0x0800, &ipv4_tcp(SYN)),
                ParseStatus::Ok,
            ),
            (
                LinkType::Ethernet,
                eth(0x0806, &[0; 28]),
                ParseStatus::NonIp,
            ),
            (
                LinkType::Ethernet,
                MACS.to_vec(),
                ParseStatus::TruncatedLink,
            ),
            (
                LinkType::Ethernet,
                eth(0x8100, &[0, 1]),
                ParseStatus::TruncatedVlan,
            ),
            (
                LinkType::Ethernet,
                eth(0x8100, &stacked_tags(9)),
                ParseStatus::TooManyVlans,
            ),
            (
                LinkType::RawIpv4,
                ipv4_tcp(SYN)[..10].to_vec(),
                ParseStatus::TruncatedIpv4,
            ),
            (
                LinkType::RawIpv4,
                vec![0x43; 40],
                ParseStatus::BadIpv4Header,
            ),
            (
                LinkType::RawIpv4,
                ipv4(6, 10, 0).to_vec(),
                ParseStatus::BadIpv4Length,
            ),
            (
                LinkType::RawIpv6,
                ipv6_tcp()[..30].to_vec(),
                ParseStatus::TruncatedIpv6,
            ),
            (
                LinkType::RawIpv6,
                cat(&[&ipv6(ext_header::ROUTING, 8), &[6, 4, 0, 0, 0, 0, 0, 0]]),
                ParseStatus::TruncatedIpv6Ext,
            ),
            (LinkType::RawIp, vec![0x75; 40], ParseStatus::BadIpVersion),
            (
                LinkType::RawIp,
                ipv4_tcp(SYN)[..30].to_vec(),
                ParseStatus::TruncatedL4,
            ),
            (LinkType::RawIp, bad_tcp, ParseStatus::BadTcpHeader),
            (
                LinkType::RawIp,
                outer4(proto::GRE, &gre(0x2000, 0x6558, &[], &[])),
                ParseStatus::TruncatedTunnel,
            ),
            (
                LinkType::RawIp,
                outer4(proto::GRE, &gre(0, 0x88be, &[], &inner_syn())),
                ParseStatus::BadTunnelHeader,
            ),
        ];
        let mut seen = [false; ParseStatus::COUNT];
        for (link, frame, status) in cases {
            let s = parse_with(link, &frame, frame.len() as u32, &MIRROR);
            assert_eq!(s.status, status, "{link:?} {frame:02x?}");
            seen[status.index()] = true;
        }
        // UnsupportedLinkType comes from the capture layer (see every_link_type_round_trips_its_code).
        seen[ParseStatus::UnsupportedLinkType.index()] = true;
        assert!(seen.iter().all(|&b| b), "{seen:?}");
    }
}
