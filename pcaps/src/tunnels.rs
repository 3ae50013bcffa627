//! Mirror-port encapsulations: wrap a frame in the GRE / ERSPAN / VXLAN packet a switch's
//! mirror session (or a VXLAN fabric) would deliver, for tests that inject wrapped frames.
//!
//! [`encapsulate`] puts `inner` behind an outer Ethernet header ([`Eth`], VLAN tags included),
//! an outer IPv4 or IPv6 header ([`Net`]; IPv4 options and IPv6 extension headers are written,
//! with checksums and lengths filled in) and the [`Tunnel`]'s headers. The inner bytes are
//! copied unchanged at the end of the frame, so the encapsulation overhead is
//! `frame.len() - inner.len()` (see [`overhead`]): a decapsulating parser reports the inner
//! frame's wire length as the outer one minus that.
//!
//! ```
//! use std::net::Ipv4Addr;
//! use surgewatch_pcaps::packet::{Eth, Net, V4};
//! use surgewatch_pcaps::tunnels::{encapsulate, ErspanII, Tunnel};
//!
//! let inner = vec![0u8; 60]; // some Ethernet frame
//! let outer_eth = Eth::new([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
//! let outer_ip = Net::V4(V4::new(Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2)));
//! let tunnel = Tunnel::ErspanII { seq: 1, header: ErspanII::session(7) };
//! let frame = encapsulate(&outer_eth, &outer_ip, &tunnel, &inner);
//! assert_eq!(frame.len() - inner.len(), 14 + 20 + 8 + 8);
//! ```

use crate::packet::{proto, write_ipv4_header, Checksum, Eth, Net, ETHERTYPE_IPV4, ETHERTYPE_IPV6};

/// GRE protocol type: transparent Ethernet bridging.
pub const GRE_TEB: u16 = 0x6558;
/// GRE protocol type: ERSPAN type II.
pub const GRE_ERSPAN_II: u16 = 0x88be;
/// GRE protocol type: ERSPAN type III.
pub const GRE_ERSPAN_III: u16 = 0x22eb;
/// IANA VXLAN UDP port.
pub const VXLAN_PORT: u16 = 4789;

/// ERSPAN type II header fields (version 1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErspanII {
    /// Original VLAN (12 bits).
    pub vlan: u16,
    /// Class of service (3 bits).
    pub cos: u8,
    /// En (2 bits): 0 originally untagged, 1 ISL, 2 802.1Q (tag removed), 3 tag kept in frame.
    pub en: u8,
    /// T: the mirrored frame was truncated.
    pub truncated: bool,
    /// Session id (10 bits).
    pub session_id: u16,
    /// Port index (20 bits).
    pub index: u32,
}

impl ErspanII {
    /// Session `id`, everything else zero.
    pub fn session(id: u16) -> Self {
        ErspanII {
            vlan: 0,
            cos: 0,
            en: 0,
            truncated: false,
            session_id: id,
            index: 0,
        }
    }

    fn write(&self, out: &mut Vec<u8>) {
        let w0 = 0x1000 | (self.vlan & 0x0fff);
        let w1 = (u16::from(self.cos & 7) << 13)
            | (u16::from(self.en & 3) << 11)
            | (u16::from(self.truncated) << 10)
            | (self.session_id & 0x03ff);
        out.extend_from_slice(&w0.to_be_bytes());
        out.extend_from_slice(&w1.to_be_bytes());
        out.extend_from_slice(&(self.index & 0x000f_ffff).to_be_bytes());
    }
}

/// ERSPAN type III header fields (version 2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErspanIII {
    /// Original VLAN (12 bits).
    pub vlan: u16,
    /// Class of service (3 bits).
    pub cos: u8,
    /// BSO (2 bits): 0 good, 1 short, 2 oversized, 3 bad frame.
    pub bso: u8,
    /// T: the mirrored frame was truncated.
    pub truncated: bool,
    /// Session id (10 bits).
    pub session_id: u16,
    /// Timestamp.
    pub timestamp: u32,
    /// Security group tag.
    pub sgt: u16,
    /// FT: the payload is an IP packet (frame type 2) rather than an Ethernet frame (0).
    pub ip_payload: bool,
    /// Hardware id (6 bits).
    pub hw_id: u8,
    /// D: egress (true) or ingress.
    pub egress: bool,
    /// Timestamp granularity (2 bits).
    pub granularity: u8,
    /// Platform-specific subheader; present sets the O bit.
    pub platform: Option<[u8; 8]>,
}

impl ErspanIII {
    /// Session `id` carrying an Ethernet frame, everything else zero.
    pub fn session(id: u16) -> Self {
        ErspanIII {
            vlan: 0,
            cos: 0,
            bso: 0,
            truncated: false,
            session_id: id,
            timestamp: 0,
            sgt: 0,
            ip_payload: false,
            hw_id: 0,
            egress: false,
            granularity: 0,
            platform: None,
        }
    }

    /// Header length: 12, or 20 with the platform-specific subheader.
    pub fn len(&self) -> usize {
        if self.platform.is_some() {
            20
        } else {
            12
        }
    }

    /// Always false.
    pub fn is_empty(&self) -> bool {
        false
    }

    fn write(&self, out: &mut Vec<u8>) {
        let w0 = 0x2000 | (self.vlan & 0x0fff);
        let w1 = (u16::from(self.cos & 7) << 13)
            | (u16::from(self.bso & 3) << 11)
            | (u16::from(self.truncated) << 10)
            | (self.session_id & 0x03ff);
        let ft: u16 = if self.ip_payload { 2 } else { 0 };
        let flags = 0x8000 // P: a PDU frame
            | (ft << 10)
            | (u16::from(self.hw_id & 0x3f) << 4)
            | (u16::from(self.egress) << 3)
            | (u16::from(self.granularity & 3) << 1)
            | u16::from(self.platform.is_some());
        out.extend_from_slice(&w0.to_be_bytes());
        out.extend_from_slice(&w1.to_be_bytes());
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.sgt.to_be_bytes());
        out.extend_from_slice(&flags.to_be_bytes());
        if let Some(p) = &self.platform {
            out.extend_from_slice(p);
        }
    }
}

/// An encapsulation and its header fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tunnel {
    /// GRE transparent Ethernet bridging (0x6558): `inner` is an Ethernet frame. With a key,
    /// this is also NVGRE's layout.
    GreTeb {
        /// GRE key (K bit).
        key: Option<u32>,
    },
    /// GRE carrying an IP packet: protocol type 0x0800 or 0x86DD from `inner`'s version
    /// nibble.
    GreIp,
    /// ERSPAN type II: GRE with a sequence number, protocol 0x88BE, 8-byte header.
    ErspanII {
        /// GRE sequence number.
        seq: u32,
        /// ERSPAN header.
        header: ErspanII,
    },
    /// ERSPAN type III: GRE protocol 0x22EB, 12-byte header (+ 8-byte platform subheader).
    ErspanIII {
        /// GRE sequence number, if any.
        seq: Option<u32>,
        /// ERSPAN header.
        header: ErspanIII,
    },
    /// VXLAN over UDP: `inner` is an Ethernet frame.
    Vxlan {
        /// UDP source port (usually a hash of the inner flow).
        src_port: u16,
        /// UDP destination port, normally [`VXLAN_PORT`].
        dst_port: u16,
        /// VXLAN network identifier (24 bits).
        vni: u32,
    },
}

impl Tunnel {
    /// Plain GRE-TEB without a key.
    pub fn gre_teb() -> Self {
        Tunnel::GreTeb { key: None }
    }

    /// VXLAN to port 4789.
    pub fn vxlan(vni: u32) -> Self {
        Tunnel::Vxlan {
            src_port: 49152,
            dst_port: VXLAN_PORT,
            vni,
        }
    }

    /// Writes the GRE (+ ERSPAN) or UDP + VXLAN headers; returns the IP protocol.
    fn write(&self, inner: &[u8], out: &mut Vec<u8>) -> u8 {
        let gre =
            |flags: u16, ptype: u16, key: Option<u32>, seq: Option<u32>, out: &mut Vec<u8>| {
                let flags = flags
                    | if key.is_some() { 0x2000 } else { 0 }
                    | if seq.is_some() { 0x1000 } else { 0 };
                out.extend_from_slice(&flags.to_be_bytes());
                out.extend_from_slice(&ptype.to_be_bytes());
                for v in [key, seq].into_iter().flatten() {
                    out.extend_from_slice(&v.to_be_bytes());
                }
            };
        match self {
            Tunnel::GreTeb { key } => {
                gre(0, GRE_TEB, *key, None, out);
                proto::GRE
            }
            Tunnel::GreIp => {
                let ptype = match inner.first().map(|b| b >> 4) {
                    Some(6) => ETHERTYPE_IPV6,
                    _ => ETHERTYPE_IPV4,
                };
                gre(0, ptype, None, None, out);
                proto::GRE
            }
            Tunnel::ErspanII { seq, header } => {
                gre(0, GRE_ERSPAN_II, None, Some(*seq), out);
                header.write(out);
                proto::GRE
            }
            Tunnel::ErspanIII { seq, header } => {
                gre(0, GRE_ERSPAN_III, None, *seq, out);
                header.write(out);
                proto::GRE
            }
            Tunnel::Vxlan {
                src_port,
                dst_port,
                vni,
            } => {
                let len = (8 + 8 + inner.len()) as u16;
                out.extend_from_slice(&src_port.to_be_bytes());
                out.extend_from_slice(&dst_port.to_be_bytes());
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(&[0, 0]); // checksum, filled in by `encapsulate`
                out.extend_from_slice(&[0x08, 0, 0, 0]);
                out.extend_from_slice(&((vni & 0x00ff_ffff) << 8).to_be_bytes());
                proto::UDP
            }
        }
    }
}

/// Bytes in front of `inner` in [`encapsulate`]'s frame: outer Ethernet (+ tags), outer IP
/// (+ options / extension headers) and tunnel headers.
pub fn overhead(outer_eth: &Eth, outer_net: &Net, tunnel: &Tunnel) -> usize {
    let ip = match outer_net {
        Net::V4(v4) => v4.header_len(),
        Net::V6(v6) => 40 + v6.ext.iter().map(|e| e.len()).sum::<usize>(),
    };
    let tun = match tunnel {
        Tunnel::GreTeb { key } => 4 + if key.is_some() { 4 } else { 0 },
        Tunnel::GreIp => 4,
        Tunnel::ErspanII { .. } => 8 + 8,
        Tunnel::ErspanIII { seq, header } => 4 + if seq.is_some() { 4 } else { 0 } + header.len(),
        Tunnel::Vxlan { .. } => 8 + 8,
    };
    outer_eth.len() + ip + tun
}

/// `inner` wrapped in `tunnel` behind `outer_eth` and `outer_net`: a complete Ethernet frame
/// with valid IPv4 header and UDP checksums (UDP over IPv4 gets a real checksum too). The
/// outer IPv4 packet is never fragmented, whatever its size.
pub fn encapsulate(outer_eth: &Eth, outer_net: &Net, tunnel: &Tunnel, inner: &[u8]) -> Vec<u8> {
    let mut l4 = Vec::with_capacity(36 + inner.len());
    let protocol = tunnel.write(inner, &mut l4);
    l4.extend_from_slice(inner);

    let mut out = Vec::with_capacity(overhead(outer_eth, outer_net, tunnel) + inner.len());
    let mut pseudo = Checksum::default();
    match outer_net {
        Net::V4(v4) => {
            outer_eth.write(ETHERTYPE_IPV4, &mut out);
            let total = (v4.header_len() + l4.len()) as u16;
            write_ipv4_header(v4, protocol, total, false, 0, &mut out);
            pseudo.add(&v4.src.octets());
            pseudo.add(&v4.dst.octets());
        }
        Net::V6(v6) => {
            outer_eth.write(ETHERTYPE_IPV6, &mut out);
            let ext_len: usize = v6.ext.iter().map(|e| e.len()).sum();
            let first = v6.ext.first().map_or(protocol, |e| e.kind);
            let vtf = (6u32 << 28) | (v6.flow & 0x000f_ffff);
            out.extend_from_slice(&vtf.to_be_bytes());
            out.extend_from_slice(&((ext_len + l4.len()) as u16).to_be_bytes());
            out.push(first);
            out.push(v6.hop_limit);
            out.extend_from_slice(&v6.src.octets());
            out.extend_from_slice(&v6.dst.octets());
            for (i, e) in v6.ext.iter().enumerate() {
                let next = v6.ext.get(i + 1).map_or(protocol, |n| n.kind);
                let len = e.len();
                out.push(next);
                out.push((len / 8 - 1) as u8);
                out.extend_from_slice(&e.body);
                match len - 2 - e.body.len() {
                    0 => {}
                    1 => out.push(0),
                    n => {
                        out.push(1);
                        out.push((n - 2) as u8);
                        out.resize(out.len() + n - 2, 0);
                    }
                }
            }
            pseudo.add(&v6.src.octets());
            pseudo.add(&v6.dst.octets());
        }
    }
    if protocol == proto::UDP {
        // Pseudo header: addresses (above), protocol, upper-layer length (32 bits for IPv6;
        // the same one's-complement sum as IPv4's 16 bits when it fits).
        pseudo.add(&[0, proto::UDP]);
        pseudo.add(&(l4.len() as u32).to_be_bytes());
        pseudo.add(&l4);
        let c = match pseudo.finish() {
            0 => 0xffff,
            c => c,
        };
        l4[6..8].copy_from_slice(&c.to_be_bytes());
    }
    out.extend_from_slice(&l4);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::{checksum, Ext, Vlan, V4, V6};
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn inner() -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 0xa, 2, 0, 0, 0, 0, 0xb, 0x08, 0x06];
        f.resize(60, 0x5a);
        f
    }

    fn eth() -> Eth {
        Eth::new([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
    }

    fn v4() -> Net {
        Net::V4(V4::new(
            Ipv4Addr::new(10, 0, 0, 1),
            Ipv4Addr::new(10, 0, 0, 2),
        ))
    }

    fn v6() -> Net {
        Net::V6(V6::new(
            Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1),
            Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2),
        ))
    }

    fn all_tunnels() -> Vec<Tunnel> {
        let mut e3 = ErspanIII::session(3);
        e3.platform = Some([1; 8]);
        e3.vlan = 100;
        vec![
            Tunnel::gre_teb(),
            Tunnel::GreTeb { key: Some(77) },
            Tunnel::GreIp,
            Tunnel::ErspanII {
                seq: 9,
                header: ErspanII {
                    vlan: 42,
                    en: 2,
                    ..ErspanII::session(5)
                },
            },
            Tunnel::ErspanIII {
                seq: None,
                header: ErspanIII::session(3),
            },
            Tunnel::ErspanIII {
                seq: Some(1),
                header: e3,
            },
            Tunnel::vxlan(0x123456),
        ]
    }

    #[test]
    fn inner_frame_is_at_the_end_after_the_overhead() {
        for net in [v4(), v6()] {
            for t in all_tunnels() {
                let inner = inner();
                let f = encapsulate(&eth(), &net, &t, &inner);
                let oh = overhead(&eth(), &net, &t);
                assert_eq!(f.len(), oh + inner.len(), "{t:?}");
                assert_eq!(&f[oh..], &inner[..]);
            }
        }
    }

    #[test]
    fn ipv4_outer_header_is_valid() {
        for t in all_tunnels() {
            let f = encapsulate(&eth(), &v4(), &t, &inner());
            assert_eq!(&f[12..14], &[0x08, 0x00]);
            let ip = &f[14..34];
            assert_eq!(checksum(ip), 0);
            assert_eq!(
                usize::from(u16::from_be_bytes([ip[2], ip[3]])),
                f.len() - 14
            );
            let expect = if matches!(t, Tunnel::Vxlan { .. }) {
                17
            } else {
                47
            };
            assert_eq!(ip[9], expect);
        }
    }

    #[test]
    fn gre_and_erspan_bytes() {
        let body = |t: &Tunnel| encapsulate(&eth(), &v4(), t, &inner())[34..].to_vec();
        assert_eq!(&body(&Tunnel::gre_teb())[..4], &[0, 0, 0x65, 0x58]);
        assert_eq!(
            &body(&Tunnel::GreTeb { key: Some(77) })[..8],
            &[0x20, 0, 0x65, 0x58, 0, 0, 0, 77]
        );
        let ip_inner = [0x45u8, 0, 0, 20];
        let f = encapsulate(&eth(), &v4(), &Tunnel::GreIp, &ip_inner);
        assert_eq!(&f[34..38], &[0, 0, 0x08, 0x00]);
        let f = encapsulate(&eth(), &v4(), &Tunnel::GreIp, &[0x60, 0, 0, 0]);
        assert_eq!(&f[34..38], &[0, 0, 0x86, 0xdd]);
        let t = &all_tunnels()[3];
        assert_eq!(
            &body(t)[..16],
            &[0x10, 0, 0x88, 0xbe, 0, 0, 0, 9, 0x10, 42, 0x10, 5, 0, 0, 0, 0]
        );
        let t = &all_tunnels()[5];
        let b = body(t);
        assert_eq!(&b[..8], &[0x10, 0, 0x22, 0xeb, 0, 0, 0, 1]);
        assert_eq!(&b[8..12], &[0x20, 100, 0, 3]);
        assert_eq!(&b[18..20], &[0x80, 0x01]); // P, FT Ethernet, O
        assert_eq!(&b[20..28], &[1; 8]);
    }

    #[test]
    fn vxlan_udp_checksum_verifies() {
        for net in [v4(), v6()] {
            let f = encapsulate(&eth(), &net, &Tunnel::vxlan(0xabcdef), &inner());
            let (ip_len, src_dst) = match net {
                Net::V4(_) => (20, 26..34),
                Net::V6(_) => (40, 22..54),
            };
            let udp = &f[14 + ip_len..];
            assert_eq!(&udp[2..4], &VXLAN_PORT.to_be_bytes());
            assert_eq!(usize::from(u16::from_be_bytes([udp[4], udp[5]])), udp.len());
            assert_eq!(&udp[8..16], &[0x08, 0, 0, 0, 0xab, 0xcd, 0xef, 0]);
            let mut c = Checksum::default();
            c.add(&f[src_dst]);
            c.add(&[0, 17]);
            c.add(&(udp.len() as u16).to_be_bytes());
            c.add(udp);
            assert_eq!(c.finish(), 0);
        }
    }

    #[test]
    fn outer_vlans_options_and_extension_headers() {
        let tagged = eth().with_vlans(&[Vlan::dot1q(10)]);
        let mut v4o = V4::new(Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
        v4o.options = vec![1, 1, 1, 1];
        let t = Tunnel::gre_teb();
        let f = encapsulate(&tagged, &Net::V4(v4o.clone()), &t, &inner());
        assert_eq!(&f[12..18], &[0x81, 0x00, 0x00, 0x0a, 0x08, 0x00]);
        assert_eq!(f[18], 0x46);
        assert_eq!(overhead(&tagged, &Net::V4(v4o), &t), 18 + 24 + 4);
        let mut v6o = V6::new(Ipv6Addr::LOCALHOST, Ipv6Addr::LOCALHOST);
        v6o.ext = vec![Ext::dest_opts(1), Ext::hop_by_hop_router_alert()];
        let f = encapsulate(&eth(), &Net::V6(v6o.clone()), &t, &inner());
        assert_eq!(f[14 + 6], 60); // first next header: destination options
        assert_eq!(f[54], 0); // -> hop-by-hop
        assert_eq!(f[62], 47); // -> GRE
        assert_eq!(overhead(&eth(), &Net::V6(v6o), &t), 14 + 56 + 4);
    }
}
