//! Packet builder: Ethernet II (+ 802.1Q / QinQ tags), IPv4 (options, fragmentation), IPv6
//! (extension headers, fragmentation), TCP, UDP, ICMP, ICMPv6, with correct checksums.
//!
//! A [`Packet`] describes one L4 datagram; [`Packet::build`] turns it into one frame, or into
//! several when the IP datagram exceeds the MTU and is fragmented. Each [`Frame`] carries the
//! accounting class the generator *constructed* it to have (see [`Class`]), so expectations never
//! come from re-parsing.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Ethertype of IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// Ethertype of IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
/// Ethertype of ARP.
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// Ethertype of LLDP.
pub const ETHERTYPE_LLDP: u16 = 0x88cc;
/// TPID of an 802.1Q (customer) VLAN tag.
pub const TPID_8021Q: u16 = 0x8100;
/// TPID of an 802.1ad (QinQ service) VLAN tag.
pub const TPID_QINQ: u16 = 0x88a8;
/// Minimum Ethernet frame length without FCS; shorter valid frames are zero-padded to it.
pub const ETH_MIN_FRAME: usize = 60;

/// IP protocol numbers used by the builder.
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
    /// IPv6 hop-by-hop options
    pub const HOPOPT: u8 = 0;
    /// IPv6 routing header
    pub const ROUTING: u8 = 43;
    /// IPv6 fragment header
    pub const FRAGMENT: u8 = 44;
    /// IPv6 destination options
    pub const DSTOPTS: u8 = 60;
}

/// TCP flag bits.
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
}

/// The accounting classes, with the same names and rules as surgewatch's `TrafficClass`
/// (re-implemented here from the specification, not imported).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Class {
    /// TCP with SYN and without ACK (and without RST).
    Syn,
    /// TCP with SYN and ACK (and without RST).
    SynAck,
    /// TCP with ACK, without SYN/RST/FIN.
    Ack,
    /// TCP with RST.
    Rst,
    /// Any other TCP, including TCP whose header is truncated or bad.
    TcpOther,
    /// Unfragmented UDP (including UDP with a truncated header).
    Udp,
    /// Unfragmented ICMP / ICMPv6 (including a truncated header).
    Icmp,
    /// Any IP fragment, first or later.
    Fragment,
    /// Any other IP protocol.
    Other,
}

impl Class {
    /// Every class.
    pub const ALL: [Class; 9] = [
        Class::Syn,
        Class::SynAck,
        Class::Ack,
        Class::Rst,
        Class::TcpOther,
        Class::Udp,
        Class::Icmp,
        Class::Fragment,
        Class::Other,
    ];

    /// The snake_case name used in `expected.json`.
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Syn => "syn",
            Class::SynAck => "synack",
            Class::Ack => "ack",
            Class::Rst => "rst",
            Class::TcpOther => "tcp_other",
            Class::Udp => "udp",
            Class::Icmp => "icmp",
            Class::Fragment => "fragment",
            Class::Other => "other",
        }
    }

    /// Class of a complete TCP header with these flags.
    pub fn of_tcp_flags(flags: u8) -> Class {
        use tcp_flags::*;
        if flags & RST != 0 {
            Class::Rst
        } else if flags & SYN != 0 {
            if flags & ACK != 0 {
                Class::SynAck
            } else {
                Class::Syn
            }
        } else if flags & ACK != 0 && flags & FIN == 0 {
            Class::Ack
        } else {
            Class::TcpOther
        }
    }
}

/// One VLAN tag.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Vlan {
    /// Tag protocol identifier: [`TPID_8021Q`] or [`TPID_QINQ`].
    pub tpid: u16,
    /// VLAN id (12 bits).
    pub vid: u16,
    /// Priority code point (3 bits).
    pub pcp: u8,
}

impl Vlan {
    /// An 802.1Q tag.
    pub fn dot1q(vid: u16) -> Self {
        Vlan {
            tpid: TPID_8021Q,
            vid,
            pcp: 0,
        }
    }

    /// An 802.1ad (QinQ outer) tag.
    pub fn qinq(vid: u16) -> Self {
        Vlan {
            tpid: TPID_QINQ,
            vid,
            pcp: 0,
        }
    }
}

/// Ethernet II header with up to any number of VLAN tags (outermost first).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Eth {
    /// Destination MAC.
    pub dst: [u8; 6],
    /// Source MAC.
    pub src: [u8; 6],
    /// VLAN tags, outermost first.
    pub vlans: Vec<Vlan>,
}

impl Eth {
    /// Untagged Ethernet between two locally administered MACs.
    pub fn new(src: [u8; 6], dst: [u8; 6]) -> Self {
        Eth {
            dst,
            src,
            vlans: Vec::new(),
        }
    }

    /// Same header with these VLAN tags.
    pub fn with_vlans(mut self, vlans: &[Vlan]) -> Self {
        self.vlans = vlans.to_vec();
        self
    }

    /// Length of the header including tags.
    pub fn len(&self) -> usize {
        14 + 4 * self.vlans.len()
    }

    /// Always false: an Ethernet header is never empty.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Appends the header with the given inner ethertype.
    pub fn write(&self, ethertype: u16, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.dst);
        out.extend_from_slice(&self.src);
        for v in &self.vlans {
            out.extend_from_slice(&v.tpid.to_be_bytes());
            let tci = (u16::from(v.pcp & 7) << 13) | (v.vid & 0x0fff);
            out.extend_from_slice(&tci.to_be_bytes());
        }
        out.extend_from_slice(&ethertype.to_be_bytes());
    }
}

/// IPv4 header fields (the builder fills length, fragmentation and checksum).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct V4 {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Time to live.
    pub ttl: u8,
    /// Identification.
    pub id: u16,
    /// Don't-fragment bit.
    pub df: bool,
    /// Type of service / DSCP+ECN byte.
    pub tos: u8,
    /// Options; padded with EOL (0) to a multiple of 4 bytes, at most 40.
    pub options: Vec<u8>,
}

impl V4 {
    /// Plain header: TTL 64, no options.
    pub fn new(src: Ipv4Addr, dst: Ipv4Addr) -> Self {
        V4 {
            src,
            dst,
            ttl: 64,
            id: 0,
            df: false,
            tos: 0,
            options: Vec::new(),
        }
    }

    /// Header length in bytes (20 + padded options).
    pub fn header_len(&self) -> usize {
        20 + self.options.len().div_ceil(4) * 4
    }
}

/// An IPv6 extension header placed before the upper layer (and before a fragment header).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ext {
    /// Header kind: [`proto::HOPOPT`], [`proto::ROUTING`] or [`proto::DSTOPTS`].
    pub kind: u8,
    /// Body after the two next-header / length bytes; padded to make the header a multiple of 8.
    pub body: Vec<u8>,
}

impl Ext {
    /// Hop-by-hop header carrying a Router Alert option (MLD style).
    pub fn hop_by_hop_router_alert() -> Self {
        // Router alert: type 5, len 2, value 0 (MLD); then PadN to 6 bytes.
        Ext {
            kind: proto::HOPOPT,
            body: vec![5, 2, 0, 0, 1, 0],
        }
    }

    /// Destination-options header padded with PadN to `8 * units` bytes in total.
    pub fn dest_opts(units: usize) -> Self {
        let units = units.max(1);
        let body_len = units * 8 - 2;
        let mut body = vec![1, (body_len - 2) as u8];
        body.resize(body_len, 0);
        Ext {
            kind: proto::DSTOPTS,
            body,
        }
    }

    /// Segment-routing header (routing type 4) with `segments`, segments-left 0.
    pub fn srh(segments: &[Ipv6Addr]) -> Self {
        let n = segments.len();
        let mut body = vec![
            4,                         // routing type: SRH
            0,                         // segments left
            n.saturating_sub(1) as u8, // last entry
            0,                         // flags
            0,                         // tag
            0,
        ];
        for s in segments {
            body.extend_from_slice(&s.octets());
        }
        Ext {
            kind: proto::ROUTING,
            body,
        }
    }

    /// Encoded length in bytes (a multiple of 8).
    pub fn len(&self) -> usize {
        (self.body.len() + 2).div_ceil(8) * 8
    }

    /// Always false.
    pub fn is_empty(&self) -> bool {
        false
    }

    fn write(&self, next: u8, out: &mut Vec<u8>) {
        let len = self.len();
        out.push(next);
        out.push((len / 8 - 1) as u8);
        out.extend_from_slice(&self.body);
        let pad = len - 2 - self.body.len();
        match pad {
            0 => {}
            1 => out.push(0), // Pad1
            n => {
                out.push(1); // PadN
                out.push((n - 2) as u8);
                out.resize(out.len() + n - 2, 0);
            }
        }
    }
}

/// IPv6 header fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct V6 {
    /// Source address.
    pub src: Ipv6Addr,
    /// Destination address.
    pub dst: Ipv6Addr,
    /// Hop limit.
    pub hop_limit: u8,
    /// Flow label (20 bits).
    pub flow: u32,
    /// Extension headers before the upper layer (all in the unfragmentable part).
    pub ext: Vec<Ext>,
    /// Fragment identification used if the datagram must be fragmented.
    pub frag_id: u32,
}

impl V6 {
    /// Plain header: hop limit 64, no extension headers.
    pub fn new(src: Ipv6Addr, dst: Ipv6Addr) -> Self {
        V6 {
            src,
            dst,
            hop_limit: 64,
            flow: 0,
            ext: Vec::new(),
            frag_id: 0,
        }
    }
}

/// The network layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Net {
    /// IPv4.
    V4(V4),
    /// IPv6.
    V6(V6),
}

impl Net {
    /// Source address.
    pub fn src(&self) -> IpAddr {
        match self {
            Net::V4(v) => IpAddr::V4(v.src),
            Net::V6(v) => IpAddr::V6(v.src),
        }
    }

    /// Destination address.
    pub fn dst(&self) -> IpAddr {
        match self {
            Net::V4(v) => IpAddr::V4(v.dst),
            Net::V6(v) => IpAddr::V6(v.dst),
        }
    }
}

/// TCP header fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tcp {
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgement number.
    pub ack: u32,
    /// Flags byte.
    pub flags: u8,
    /// Window.
    pub window: u16,
    /// Options; padded with NOP/EOL to a multiple of 4 bytes.
    pub options: Vec<u8>,
}

impl Tcp {
    /// A header with these ports and flags, window 64240, no options.
    pub fn new(sport: u16, dport: u16, flags: u8) -> Self {
        Tcp {
            sport,
            dport,
            seq: 0,
            ack: 0,
            flags,
            window: 64240,
            options: Vec::new(),
        }
    }

    /// Typical SYN options: MSS 1460, SACK permitted, timestamps, window scale 7.
    pub fn syn_options(tsval: u32) -> Vec<u8> {
        let mut o = vec![2, 4, 0x05, 0xb4, 4, 2, 8, 10];
        o.extend_from_slice(&tsval.to_be_bytes());
        o.extend_from_slice(&[0, 0, 0, 0, 1, 3, 3, 7]);
        o
    }

    fn header_len(&self) -> usize {
        20 + self.options.len().div_ceil(4) * 4
    }
}

/// The transport layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transport {
    /// TCP.
    Tcp(Tcp),
    /// UDP with ports.
    Udp {
        /// Source port.
        sport: u16,
        /// Destination port.
        dport: u16,
    },
    /// ICMP (over IPv4) or ICMPv6 (over IPv6): type, code, and the 4 "rest of header" bytes.
    Icmp {
        /// Type.
        ty: u8,
        /// Code.
        code: u8,
        /// Rest of header (identifier + sequence for echo).
        rest: [u8; 4],
    },
    /// Any other protocol: the payload follows the IP header directly.
    Raw {
        /// IP protocol number.
        proto: u8,
    },
}

impl Transport {
    /// ICMP/ICMPv6 echo with identifier and sequence number.
    pub fn echo(ty: u8, id: u16, seq: u16) -> Self {
        let mut rest = [0; 4];
        rest[..2].copy_from_slice(&id.to_be_bytes());
        rest[2..].copy_from_slice(&seq.to_be_bytes());
        Transport::Icmp { ty, code: 0, rest }
    }

    fn header_len(&self) -> usize {
        match self {
            Transport::Tcp(t) => t.header_len(),
            Transport::Udp { .. } | Transport::Icmp { .. } => 8,
            Transport::Raw { .. } => 0,
        }
    }
}

/// One L4 datagram to be built into one or more frames.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    /// Link layer.
    pub eth: Eth,
    /// Network layer.
    pub net: Net,
    /// Transport layer.
    pub l4: Transport,
    /// Application payload.
    pub payload: Vec<u8>,
}

/// One frame produced by [`Packet::build`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// The frame bytes (Ethernet padded to 60 bytes).
    pub bytes: Vec<u8>,
    /// Accounting class the frame was built to have.
    pub class: Class,
    /// Length of every header the parser needs (link, IP, extension, L4 when present): a snaplen
    /// at least this long keeps the frame fully parseable.
    pub header_len: usize,
}

/// Internet checksum accumulator (RFC 1071).
#[derive(Copy, Clone, Debug, Default)]
pub struct Checksum(u64);

impl Checksum {
    /// Adds bytes (odd trailing byte padded with zero). Call with even-length chunks except last.
    pub fn add(&mut self, data: &[u8]) {
        let mut chunks = data.chunks_exact(2);
        for c in &mut chunks {
            self.0 += u64::from(u16::from_be_bytes([c[0], c[1]]));
        }
        if let [last] = chunks.remainder() {
            self.0 += u64::from(*last) << 8;
        }
    }

    /// The folded one's-complement checksum.
    pub fn finish(self) -> u16 {
        let mut s = self.0;
        while s >> 16 != 0 {
            s = (s & 0xffff) + (s >> 16);
        }
        !(s as u16)
    }
}

/// Checksum of a byte slice.
pub fn checksum(data: &[u8]) -> u16 {
    let mut c = Checksum::default();
    c.add(data);
    c.finish()
}

/// Writes a 20+ byte IPv4 header at the end of `out`, checksum included.
#[allow(clippy::too_many_arguments)]
pub fn write_ipv4_header(
    v4: &V4,
    protocol: u8,
    total_len: u16,
    mf: bool,
    frag_off_units: u16,
    out: &mut Vec<u8>,
) {
    let start = out.len();
    let hlen = v4.header_len();
    out.push(0x40 | (hlen / 4) as u8);
    out.push(v4.tos);
    out.extend_from_slice(&total_len.to_be_bytes());
    out.extend_from_slice(&v4.id.to_be_bytes());
    let flags_off = (u16::from(v4.df) << 14) | (u16::from(mf) << 13) | (frag_off_units & 0x1fff);
    out.extend_from_slice(&flags_off.to_be_bytes());
    out.push(v4.ttl);
    out.push(protocol);
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&v4.src.octets());
    out.extend_from_slice(&v4.dst.octets());
    out.extend_from_slice(&v4.options);
    out.resize(start + hlen, 0);
    let c = checksum(&out[start..start + hlen]);
    out[start + 10..start + 12].copy_from_slice(&c.to_be_bytes());
}

fn protocol_of(l4: &Transport, v6: bool) -> u8 {
    match l4 {
        Transport::Tcp(_) => proto::TCP,
        Transport::Udp { .. } => proto::UDP,
        Transport::Icmp { .. } if v6 => proto::ICMPV6,
        Transport::Icmp { .. } => proto::ICMP,
        Transport::Raw { proto } => *proto,
    }
}

impl Packet {
    /// IP protocol (upper-layer next header for IPv6).
    pub fn protocol(&self) -> u8 {
        protocol_of(&self.l4, matches!(self.net, Net::V6(_)))
    }

    /// Class of the packet if sent unfragmented.
    pub fn unfragmented_class(&self) -> Class {
        match &self.l4 {
            Transport::Tcp(t) => Class::of_tcp_flags(t.flags),
            Transport::Udp { .. } => Class::Udp,
            Transport::Icmp { .. } => Class::Icmp,
            Transport::Raw { proto } => match *proto {
                proto::TCP => Class::TcpOther,
                proto::UDP => Class::Udp,
                proto::ICMP | proto::ICMPV6 => Class::Icmp,
                _ => Class::Other,
            },
        }
    }

    /// The L4 segment (header + payload) with its checksum filled in.
    pub fn l4_bytes(&self) -> Vec<u8> {
        let mut seg = Vec::with_capacity(self.l4.header_len() + self.payload.len());
        let ck_at = match &self.l4 {
            Transport::Tcp(t) => {
                seg.extend_from_slice(&t.sport.to_be_bytes());
                seg.extend_from_slice(&t.dport.to_be_bytes());
                seg.extend_from_slice(&t.seq.to_be_bytes());
                seg.extend_from_slice(&t.ack.to_be_bytes());
                let hl = t.header_len();
                seg.push(((hl / 4) as u8) << 4);
                seg.push(t.flags);
                seg.extend_from_slice(&t.window.to_be_bytes());
                seg.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent pointer
                seg.extend_from_slice(&t.options);
                seg.resize(hl, 0);
                Some(16)
            }
            Transport::Udp { sport, dport } => {
                seg.extend_from_slice(&sport.to_be_bytes());
                seg.extend_from_slice(&dport.to_be_bytes());
                let len = (8 + self.payload.len()) as u16;
                seg.extend_from_slice(&len.to_be_bytes());
                seg.extend_from_slice(&[0, 0]);
                Some(6)
            }
            Transport::Icmp { ty, code, rest } => {
                seg.extend_from_slice(&[*ty, *code, 0, 0]);
                seg.extend_from_slice(rest);
                Some(2)
            }
            Transport::Raw { .. } => None,
        };
        seg.extend_from_slice(&self.payload);
        if let Some(at) = ck_at {
            let mut c = Checksum::default();
            // ICMPv4 has no pseudo header; TCP, UDP and ICMPv6 do.
            let pseudo = !matches!((&self.net, &self.l4), (Net::V4(_), Transport::Icmp { .. }));
            if pseudo {
                let p = self.protocol();
                match &self.net {
                    Net::V4(v) => {
                        c.add(&v.src.octets());
                        c.add(&v.dst.octets());
                        c.add(&[0, p]);
                        c.add(&(seg.len() as u16).to_be_bytes());
                    }
                    Net::V6(v) => {
                        c.add(&v.src.octets());
                        c.add(&v.dst.octets());
                        c.add(&(seg.len() as u32).to_be_bytes());
                        c.add(&[0, 0, 0, p]);
                    }
                }
            }
            c.add(&seg);
            let mut ck = c.finish();
            if ck == 0 && matches!(self.l4, Transport::Udp { .. }) {
                ck = 0xffff;
            }
            seg[at..at + 2].copy_from_slice(&ck.to_be_bytes());
        }
        seg
    }

    /// Builds the frame(s): one if the IP datagram fits in `mtu` bytes, otherwise IP fragments
    /// (IPv4 fragments, or IPv6 fragment extension headers) each at most `mtu` bytes of IP.
    pub fn build(&self, mtu: usize) -> Vec<Frame> {
        let seg = self.l4_bytes();
        let l4_hdr = self.l4.header_len();
        let p = self.protocol();
        let mut frames = Vec::new();
        match &self.net {
            Net::V4(v4) => {
                let hl = v4.header_len();
                if hl + seg.len() <= mtu || v4.df {
                    let mut out = Vec::with_capacity(self.eth.len() + hl + seg.len());
                    self.eth.write(ETHERTYPE_IPV4, &mut out);
                    write_ipv4_header(v4, p, (hl + seg.len()) as u16, false, 0, &mut out);
                    let header_len = out.len() + l4_hdr;
                    out.extend_from_slice(&seg);
                    pad(&mut out);
                    frames.push(Frame {
                        bytes: out,
                        class: self.unfragmented_class(),
                        header_len,
                    });
                } else {
                    let chunk = (mtu - hl) / 8 * 8;
                    let mut off = 0;
                    while off < seg.len() {
                        let end = (off + chunk).min(seg.len());
                        let mf = end < seg.len();
                        let mut out = Vec::with_capacity(self.eth.len() + hl + end - off);
                        self.eth.write(ETHERTYPE_IPV4, &mut out);
                        write_ipv4_header(
                            v4,
                            p,
                            (hl + end - off) as u16,
                            mf,
                            (off / 8) as u16,
                            &mut out,
                        );
                        let header_len = out.len() + if off == 0 { l4_hdr } else { 0 };
                        out.extend_from_slice(&seg[off..end]);
                        pad(&mut out);
                        frames.push(Frame {
                            bytes: out,
                            class: Class::Fragment,
                            header_len,
                        });
                        off = end;
                    }
                }
            }
            Net::V6(v6) => {
                let ext_len: usize = v6.ext.iter().map(Ext::len).sum();
                let write_fixed = |out: &mut Vec<u8>, payload_len: usize, first_next: u8| {
                    // Version 6, traffic class 0, 20-bit flow label.
                    let first = (6u32 << 28) | (v6.flow & 0x000f_ffff);
                    out.extend_from_slice(&first.to_be_bytes());
                    out.extend_from_slice(&(payload_len as u16).to_be_bytes());
                    out.push(first_next);
                    out.push(v6.hop_limit);
                    out.extend_from_slice(&v6.src.octets());
                    out.extend_from_slice(&v6.dst.octets());
                };
                let write_exts = |out: &mut Vec<u8>, last_next: u8| {
                    for (i, e) in v6.ext.iter().enumerate() {
                        let next = v6.ext.get(i + 1).map_or(last_next, |n| n.kind);
                        e.write(next, out);
                    }
                };
                let first_kind = |last: u8| v6.ext.first().map_or(last, |e| e.kind);
                if 40 + ext_len + seg.len() <= mtu {
                    let mut out = Vec::with_capacity(self.eth.len() + 40 + ext_len + seg.len());
                    self.eth.write(ETHERTYPE_IPV6, &mut out);
                    write_fixed(&mut out, ext_len + seg.len(), first_kind(p));
                    write_exts(&mut out, p);
                    let header_len = out.len() + l4_hdr;
                    out.extend_from_slice(&seg);
                    pad(&mut out);
                    frames.push(Frame {
                        bytes: out,
                        class: self.unfragmented_class(),
                        header_len,
                    });
                } else {
                    let chunk = (mtu - 40 - ext_len - 8) / 8 * 8;
                    let mut off = 0;
                    while off < seg.len() {
                        let end = (off + chunk).min(seg.len());
                        let mf = end < seg.len();
                        let mut out = Vec::with_capacity(self.eth.len() + mtu);
                        self.eth.write(ETHERTYPE_IPV6, &mut out);
                        write_fixed(
                            &mut out,
                            ext_len + 8 + end - off,
                            first_kind(proto::FRAGMENT),
                        );
                        write_exts(&mut out, proto::FRAGMENT);
                        out.push(p);
                        out.push(0);
                        let offm = ((off / 8) as u16) << 3 | u16::from(mf);
                        out.extend_from_slice(&offm.to_be_bytes());
                        out.extend_from_slice(&v6.frag_id.to_be_bytes());
                        let header_len = out.len() + if off == 0 { l4_hdr } else { 0 };
                        out.extend_from_slice(&seg[off..end]);
                        pad(&mut out);
                        frames.push(Frame {
                            bytes: out,
                            class: Class::Fragment,
                            header_len,
                        });
                        off = end;
                    }
                }
            }
        }
        frames
    }
}

/// Zero-pads an Ethernet frame to the 60-byte minimum.
pub fn pad(out: &mut Vec<u8>) {
    if out.len() < ETH_MIN_FRAME {
        out.resize(ETH_MIN_FRAME, 0);
    }
}

/// An ARP request or reply frame (non-IP), optionally VLAN-tagged.
pub fn arp(eth: &Eth, reply: bool, sender: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    let mut out = Vec::with_capacity(60);
    eth.write(ETHERTYPE_ARP, &mut out);
    out.extend_from_slice(&[0, 1, 0x08, 0x00, 6, 4, 0, if reply { 2 } else { 1 }]);
    out.extend_from_slice(&eth.src);
    out.extend_from_slice(&sender.octets());
    out.extend_from_slice(if reply { &eth.dst } else { &[0; 6] });
    out.extend_from_slice(&target.octets());
    pad(&mut out);
    out
}

/// A minimal LLDP frame (non-IP): chassis id, port id, TTL, end TLVs.
pub fn lldp(src: [u8; 6]) -> Vec<u8> {
    let eth = Eth::new(src, [0x01, 0x80, 0xc2, 0, 0, 0x0e]);
    let mut out = Vec::with_capacity(60);
    eth.write(ETHERTYPE_LLDP, &mut out);
    // Chassis ID (type 1, len 7, subtype 4 = MAC).
    out.extend_from_slice(&[0x02, 0x07, 0x04]);
    out.extend_from_slice(&src);
    // Port ID (type 2, len 4, subtype 7 = local) "p1".
    out.extend_from_slice(&[0x04, 0x03, 0x07, b'p', b'1']);
    // TTL (type 3, len 2) 120 s.
    out.extend_from_slice(&[0x06, 0x02, 0x00, 0x78]);
    out.extend_from_slice(&[0, 0]);
    pad(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eth() -> Eth {
        Eth::new([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
    }

    #[test]
    fn ipv4_header_checksum_known_vector() {
        // Classic example header (Wikipedia "IPv4 header checksum").
        let v4 = V4 {
            src: Ipv4Addr::new(192, 168, 0, 1),
            dst: Ipv4Addr::new(192, 168, 0, 199),
            ttl: 64,
            id: 0,
            df: true,
            tos: 0,
            options: Vec::new(),
        };
        let mut out = Vec::new();
        write_ipv4_header(&v4, 17, 0x73, false, 0, &mut out);
        assert_eq!(&out[10..12], &[0xb8, 0x61]);
        assert_eq!(checksum(&out), 0);
    }

    #[test]
    fn tcp_syn_frame_layout() {
        let p = Packet {
            eth: eth(),
            net: Net::V4(V4::new(
                Ipv4Addr::new(192, 0, 2, 1),
                Ipv4Addr::new(203, 0, 113, 10),
            )),
            l4: Transport::Tcp(Tcp::new(40000, 80, tcp_flags::SYN)),
            payload: Vec::new(),
        };
        let f = p.build(1500);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].bytes.len(), 60);
        assert_eq!(f[0].class, Class::Syn);
        assert_eq!(f[0].header_len, 54);
        assert_eq!(&f[0].bytes[12..14], &[0x08, 0x00]);
        assert_eq!(f[0].bytes[14], 0x45);
        assert_eq!(&f[0].bytes[16..18], &40u16.to_be_bytes());
        assert_eq!(f[0].bytes[47], tcp_flags::SYN);
        // TCP checksum over pseudo header + segment verifies to zero.
        let mut c = Checksum::default();
        c.add(&f[0].bytes[26..34]);
        c.add(&[0, 6, 0, 20]);
        c.add(&f[0].bytes[34..54]);
        assert_eq!(c.finish(), 0);
    }

    #[test]
    fn ipv4_fragmentation_offsets() {
        let p = Packet {
            eth: eth().with_vlans(&[Vlan::qinq(200), Vlan::dot1q(100)]),
            net: Net::V4(V4::new(
                Ipv4Addr::new(192, 0, 2, 53),
                Ipv4Addr::new(203, 0, 113, 10),
            )),
            l4: Transport::Udp {
                sport: 53,
                dport: 4444,
            },
            payload: vec![0xab; 3000],
        };
        let f = p.build(1500);
        assert_eq!(f.len(), 3);
        assert!(f.iter().all(|x| x.class == Class::Fragment));
        assert_eq!(f[0].bytes.len(), 22 + 1500);
        // first: MF, offset 0; second: MF, offset 185; third: no MF, offset 370.
        let fo = |b: &[u8]| u16::from_be_bytes([b[22 + 6], b[22 + 7]]);
        assert_eq!(fo(&f[0].bytes), 0x2000);
        assert_eq!(fo(&f[1].bytes), 0x2000 | 185);
        assert_eq!(fo(&f[2].bytes), 370);
        assert_eq!(f[0].header_len, 22 + 20 + 8);
        assert_eq!(f[1].header_len, 22 + 20);
    }

    #[test]
    fn ipv6_ext_and_fragments() {
        let mut v6 = V6::new(
            "2001:db8:f00::1".parse().unwrap(),
            "2001:db8:100::10".parse().unwrap(),
        );
        v6.ext = vec![Ext::hop_by_hop_router_alert(), Ext::dest_opts(1)];
        v6.frag_id = 7;
        let p = Packet {
            eth: eth(),
            net: Net::V6(v6),
            l4: Transport::Udp {
                sport: 5000,
                dport: 6000,
            },
            payload: vec![1; 2000],
        };
        let f = p.build(1500);
        assert_eq!(f.len(), 2);
        let b = &f[0].bytes;
        assert_eq!(b[14 + 6], proto::HOPOPT);
        assert_eq!(b[54], proto::DSTOPTS);
        assert_eq!(b[62], proto::FRAGMENT);
        assert_eq!(b[70], proto::UDP);
        assert_eq!(&b[72..74], &[0, 1]); // offset 0, M
        assert_eq!(f[0].header_len, 14 + 40 + 16 + 8 + 8);
        let single = Packet {
            payload: vec![1; 100],
            ..p
        }
        .build(1500);
        assert_eq!(single.len(), 1);
        assert_eq!(single[0].class, Class::Udp);
    }

    #[test]
    fn tcp_flag_classes() {
        use tcp_flags::*;
        assert_eq!(Class::of_tcp_flags(SYN), Class::Syn);
        assert_eq!(Class::of_tcp_flags(SYN | ACK), Class::SynAck);
        assert_eq!(Class::of_tcp_flags(ACK | PSH), Class::Ack);
        assert_eq!(Class::of_tcp_flags(RST | ACK), Class::Rst);
        assert_eq!(Class::of_tcp_flags(FIN | ACK), Class::TcpOther);
        assert_eq!(Class::of_tcp_flags(0), Class::TcpOther);
    }
}
