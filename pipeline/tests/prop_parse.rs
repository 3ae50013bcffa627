//! Property tests for `surgewatch_pipeline::parse` and `parse_with`: no input panics, mutated
//! and truncated frames give consistent summaries, and frames built from random fields (tunnel
//! encapsulations included) parse back exactly.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;
use surgewatch_pipeline::{
    parse, parse_with, proto, Decap, Encap, Fragment, LinkType, PacketSummary, ParseOptions,
    ParseStatus,
};

const LINKS: [LinkType; 8] = [
    LinkType::Ethernet,
    LinkType::RawIp,
    LinkType::RawIpv4,
    LinkType::RawIpv6,
    LinkType::LinuxSll,
    LinkType::LinuxSll2,
    LinkType::Null,
    LinkType::Loop,
];

/// Invariants that hold for the summary of any input parsed without decapsulation.
fn check_invariants(s: &PacketSummary, wire_len: u32) {
    assert_eq!(s.encap, Encap::None, "{s:?}");
    assert!(!is_tunnel_error(s.status), "{s:?}");
    check_invariants_with(s, wire_len);
}

/// Status values that come with valid IP fields.
const IP_STATUSES: [ParseStatus; 6] = [
    ParseStatus::Ok,
    ParseStatus::TruncatedL4,
    ParseStatus::BadTcpHeader,
    ParseStatus::TruncatedIpv6Ext,
    ParseStatus::TruncatedTunnel,
    ParseStatus::BadTunnelHeader,
];

fn is_tunnel_error(s: ParseStatus) -> bool {
    matches!(
        s,
        ParseStatus::TruncatedTunnel | ParseStatus::BadTunnelHeader
    )
}

/// Invariants that hold for the summary of any input, whatever the options.
fn check_invariants_with(s: &PacketSummary, wire_len: u32) {
    if s.encap == Encap::None {
        assert_eq!(s.wire_len, wire_len);
    } else {
        assert!(s.wire_len <= wire_len, "{s:?}");
    }
    assert!(s.vlan_depth <= 8, "{s:?}");
    assert!(s.vlan_id < 4096, "{s:?}");
    if s.vlan_depth == 0 {
        assert_eq!(s.vlan_id, 0, "{s:?}");
    }
    assert!(s.status.index() < ParseStatus::COUNT);
    assert!(s.encap.index() < Encap::COUNT);
    match s.ip_version {
        0 => {
            let blank = PacketSummary {
                status: s.status,
                vlan_depth: s.vlan_depth,
                vlan_id: s.vlan_id,
                encap: s.encap,
                ..PacketSummary::empty(s.wire_len)
            };
            assert_eq!(*s, blank, "fields set without an IP header");
            assert_ne!(s.status, ParseStatus::Ok);
            assert!(!IP_STATUSES.contains(&s.status), "{s:?}");
        }
        4 => {
            assert!(s.src.is_ipv4() && s.dst.is_ipv4(), "{s:?}");
            assert!(s.ip_len >= 20, "{s:?}");
        }
        6 => {
            assert!(s.src.is_ipv6() && s.dst.is_ipv6(), "{s:?}");
            assert!((40..=40 + 65535).contains(&s.ip_len), "{s:?}");
        }
        v => panic!("ip_version {v}"),
    }
    if s.ip_version != 0 {
        assert!(IP_STATUSES.contains(&s.status), "{s:?}");
    }
    if s.status == ParseStatus::TruncatedIpv6Ext {
        assert_eq!(s.ip_version, 6);
    }
    if is_tunnel_error(s.status) {
        // Only GRE and UDP (VXLAN) carry tunnels; the outer L4 header of VXLAN was read.
        assert!(matches!(s.protocol, proto::GRE | proto::UDP), "{s:?}");
        assert_eq!(s.has_l4, s.protocol == proto::UDP, "{s:?}");
        assert_ne!(s.frag, Fragment::Later);
    }
    if s.has_l4 {
        assert!(
            s.status == ParseStatus::Ok || (is_tunnel_error(s.status) && s.protocol == proto::UDP),
            "{s:?}"
        );
        assert!(matches!(
            s.protocol,
            proto::TCP | proto::UDP | proto::ICMP | proto::ICMPV6
        ));
        assert_ne!(s.frag, Fragment::Later);
    } else {
        assert_eq!(
            (
                s.src_port,
                s.dst_port,
                s.tcp_flags,
                s.icmp_type,
                s.icmp_code,
                s.udp_len
            ),
            (0, 0, 0, 0, 0, 0),
            "{s:?}"
        );
    }
    if s.protocol != proto::TCP {
        assert_eq!(s.tcp_flags, 0);
    }
    if s.protocol != proto::UDP {
        assert_eq!(s.udp_len, 0);
    }
    if !matches!(s.protocol, proto::TCP | proto::UDP) {
        assert_eq!((s.src_port, s.dst_port), (0, 0));
    }
}

// ---- frame builder ---------------------------------------------------------------------

#[derive(Debug, Clone)]
enum L4 {
    Tcp {
        sport: u16,
        dport: u16,
        flags: u8,
        doff: u8,
    },
    Udp {
        sport: u16,
        dport: u16,
    },
    Icmp {
        ty: u8,
        code: u8,
    },
    Other {
        proto: u8,
    },
}

#[derive(Debug, Clone)]
enum Ip {
    V4 {
        src: [u8; 4],
        dst: [u8; 4],
        ttl: u8,
        options_words: u8,
        first_frag: bool,
    },
    /// `exts`: (kind, length units) of hop-by-hop / routing / dest-opts / AH headers.
    V6 {
        src: [u8; 16],
        dst: [u8; 16],
        hop: u8,
        exts: Vec<(u8, u8)>,
        first_frag: bool,
    },
}

#[derive(Debug, Clone)]
struct Spec {
    link: LinkType,
    /// (tag EtherType, VLAN id) per tag, outermost first; only used on Ethernet/SLL/SLL2.
    vlans: Vec<(u16, u16)>,
    null_le: bool,
    ip: Ip,
    l4: L4,
    data: Vec<u8>,
}

fn l4_bytes(l4: &L4, data_len: usize) -> (u8, Vec<u8>) {
    match *l4 {
        L4::Tcp {
            sport,
            dport,
            flags,
            doff,
        } => {
            let mut h = vec![0u8; usize::from(doff) * 4];
            h[..4].copy_from_slice(&[sport.to_be_bytes(), dport.to_be_bytes()].concat());
            h[12] = doff << 4;
            h[13] = flags;
            (proto::TCP, h)
        }
        L4::Udp { sport, dport } => {
            let len = (8 + data_len) as u16;
            let h = [
                sport.to_be_bytes(),
                dport.to_be_bytes(),
                len.to_be_bytes(),
                [0, 0],
            ]
            .concat();
            (proto::UDP, h)
        }
        L4::Icmp { ty, code } => (0, vec![ty, code, 0, 0, 0, 0, 0, 0]),
        L4::Other { proto } => (proto, vec![0; 4]),
    }
}

/// Builds the frame and the summary that parsing it must give.
fn build(spec: &Spec) -> (Vec<u8>, PacketSummary) {
    let (mut l4_proto, l4) = l4_bytes(&spec.l4, spec.data.len());
    let upper = [l4.as_slice(), &spec.data].concat();
    let mut s = PacketSummary::empty(0);
    match &spec.l4 {
        L4::Tcp {
            sport,
            dport,
            flags,
            ..
        } => {
            (s.src_port, s.dst_port, s.tcp_flags) = (*sport, *dport, *flags);
        }
        L4::Udp { sport, dport } => {
            (s.src_port, s.dst_port) = (*sport, *dport);
            s.udp_len = (8 + spec.data.len()) as u16;
        }
        L4::Icmp { ty, code } => (s.icmp_type, s.icmp_code) = (*ty, *code),
        L4::Other { .. } => {}
    }
    s.has_l4 = !matches!(spec.l4, L4::Other { .. });

    let (ip_bytes, ethertype) = match &spec.ip {
        Ip::V4 {
            src,
            dst,
            ttl,
            options_words,
            first_frag,
        } => {
            if let L4::Icmp { .. } = spec.l4 {
                l4_proto = proto::ICMP;
            }
            let hl = 20 + usize::from(*options_words) * 4;
            let total = (hl + upper.len()) as u16;
            let mut h = vec![0u8; hl];
            h[0] = 0x40 | (hl / 4) as u8;
            h[2..4].copy_from_slice(&total.to_be_bytes());
            h[6] = if *first_frag { 0x20 } else { 0x40 };
            h[8] = *ttl;
            h[9] = l4_proto;
            h[12..16].copy_from_slice(src);
            h[16..20].copy_from_slice(dst);
            s.ip_version = 4;
            s.src = IpAddr::V4(Ipv4Addr::from(*src));
            s.dst = IpAddr::V4(Ipv4Addr::from(*dst));
            s.ttl = *ttl;
            s.ip_len = u32::from(total);
            s.frag = if *first_frag {
                Fragment::First
            } else {
                Fragment::None
            };
            ([h, upper].concat(), 0x0800u16)
        }
        Ip::V6 {
            src,
            dst,
            hop,
            exts,
            first_frag,
        } => {
            if let L4::Icmp { .. } = spec.l4 {
                l4_proto = proto::ICMPV6;
            }
            // Chain: exts..., then optionally a fragment header, then the upper layer.
            let mut kinds: Vec<u8> = exts.iter().map(|e| e.0).collect();
            if *first_frag {
                kinds.push(44);
            }
            kinds.push(l4_proto);
            let mut chain = Vec::new();
            for (i, &(kind, units)) in exts.iter().enumerate() {
                let len = if kind == 51 {
                    (usize::from(units) + 2) * 4
                } else {
                    (usize::from(units) + 1) * 8
                };
                let mut e = vec![0u8; len];
                e[0] = kinds[i + 1];
                e[1] = units;
                chain.extend_from_slice(&e);
            }
            if *first_frag {
                chain.extend_from_slice(&[l4_proto, 0, 0, 1, 1, 2, 3, 4]);
            }
            chain.extend_from_slice(&upper);
            let mut h = vec![0u8; 40];
            h[0] = 0x60;
            h[4..6].copy_from_slice(&(chain.len() as u16).to_be_bytes());
            h[6] = kinds[0];
            h[7] = *hop;
            h[8..24].copy_from_slice(src);
            h[24..40].copy_from_slice(dst);
            s.ip_version = 6;
            s.src = IpAddr::V6(Ipv6Addr::from(*src));
            s.dst = IpAddr::V6(Ipv6Addr::from(*dst));
            s.ttl = *hop;
            s.ip_len = 40 + chain.len() as u32;
            s.frag = if *first_frag {
                Fragment::First
            } else {
                Fragment::None
            };
            ([h, chain].concat(), 0x86ddu16)
        }
    };
    s.protocol = l4_proto;

    let mut tagged = Vec::new();
    let mut next_type = ethertype;
    let vlans: &[(u16, u16)] = match spec.link {
        LinkType::Ethernet | LinkType::LinuxSll | LinkType::LinuxSll2 => &spec.vlans,
        _ => &[],
    };
    if let Some(&(outer_type, _)) = vlans.first() {
        next_type = outer_type;
        for (i, &(_, vid)) in vlans.iter().enumerate() {
            let inner = vlans.get(i + 1).map_or(ethertype, |t| t.0);
            tagged.extend_from_slice(&vid.to_be_bytes());
            tagged.extend_from_slice(&inner.to_be_bytes());
        }
        s.vlan_depth = vlans.len() as u8;
        s.vlan_id = vlans[0].1 & 0x0fff;
    }
    let body = [tagged, ip_bytes].concat();

    let af: u32 = if ethertype == 0x0800 { 2 } else { 24 };
    let frame = match spec.link {
        LinkType::Ethernet => [
            &[2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2][..],
            &next_type.to_be_bytes(),
            &body,
        ]
        .concat(),
        LinkType::LinuxSll => {
            let hdr = [0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 2, 0, 0];
            [&hdr[..], &next_type.to_be_bytes(), &body].concat()
        }
        LinkType::LinuxSll2 => {
            let hdr = [0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 6, 2, 0, 0, 0, 0, 2, 0, 0];
            [&next_type.to_be_bytes()[..], &hdr[2..], &body].concat()
        }
        LinkType::Null if spec.null_le => [&af.to_le_bytes()[..], &body].concat(),
        LinkType::Null | LinkType::Loop => [&af.to_be_bytes()[..], &body].concat(),
        _ => body,
    };
    (frame, s)
}

fn arb_l4() -> impl Strategy<Value = L4> {
    prop_oneof![
        (any::<u16>(), any::<u16>(), any::<u8>(), 5u8..=15).prop_map(
            |(sport, dport, flags, doff)| L4::Tcp {
                sport,
                dport,
                flags,
                doff
            }
        ),
        (any::<u16>(), any::<u16>()).prop_map(|(sport, dport)| L4::Udp { sport, dport }),
        (any::<u8>(), any::<u8>()).prop_map(|(ty, code)| L4::Icmp { ty, code }),
        prop_oneof![Just(47u8), Just(50), Just(59), Just(132), Just(255)]
            .prop_map(|proto| L4::Other { proto }),
    ]
}

fn arb_ip() -> impl Strategy<Value = Ip> {
    let ext = (prop_oneof![Just(0u8), Just(43), Just(51), Just(60)], 0u8..4);
    prop_oneof![
        (
            any::<[u8; 4]>(),
            any::<[u8; 4]>(),
            any::<u8>(),
            0u8..=10,
            any::<bool>()
        )
            .prop_map(|(src, dst, ttl, options_words, first_frag)| Ip::V4 {
                src,
                dst,
                ttl,
                options_words,
                first_frag
            }),
        (
            any::<[u8; 16]>(),
            any::<[u8; 16]>(),
            any::<u8>(),
            proptest::collection::vec(ext, 0..4),
            any::<bool>()
        )
            .prop_map(|(src, dst, hop, exts, first_frag)| Ip::V6 {
                src,
                dst,
                hop,
                exts,
                first_frag
            }),
    ]
}

fn arb_spec() -> impl Strategy<Value = Spec> {
    let vlan = (
        prop_oneof![Just(0x8100u16), Just(0x88a8), Just(0x9100), Just(0x9200)],
        any::<u16>(),
    );
    (
        proptest::sample::select(&LINKS[..]),
        proptest::collection::vec(vlan, 0..4),
        any::<bool>(),
        arb_ip(),
        arb_l4(),
        proptest::collection::vec(any::<u8>(), 0..32),
    )
        .prop_map(|(link, vlans, null_le, ip, l4, data)| {
            // Raw link types must carry the matching IP version.
            let ip = match (link, ip) {
                (LinkType::RawIpv4, Ip::V6 { src, dst, hop, .. }) => Ip::V4 {
                    src: [src[0], src[1], src[2], src[3]],
                    dst: [dst[0], dst[1], dst[2], dst[3]],
                    ttl: hop,
                    options_words: 0,
                    first_frag: false,
                },
                (LinkType::RawIpv6, Ip::V4 { src, dst, ttl, .. }) => Ip::V6 {
                    src: [src, src, src, src].concat().try_into().unwrap(),
                    dst: [dst, dst, dst, dst].concat().try_into().unwrap(),
                    hop: ttl,
                    exts: vec![],
                    first_frag: false,
                },
                (_, ip) => ip,
            };
            Spec {
                link,
                vlans,
                null_le,
                ip,
                l4,
                data,
            }
        })
}

fn fixed_valid_frames() -> Vec<(LinkType, Vec<u8>)> {
    let specs = [
        Spec {
            link: LinkType::Ethernet,
            vlans: vec![(0x88a8, 10), (0x8100, 20)],
            null_le: false,
            ip: Ip::V4 {
                src: [10, 0, 0, 1],
                dst: [10, 0, 0, 2],
                ttl: 64,
                options_words: 2,
                first_frag: false,
            },
            l4: L4::Tcp {
                sport: 1234,
                dport: 80,
                flags: 0x02,
                doff: 6,
            },
            data: vec![1, 2, 3, 4],
        },
        Spec {
            link: LinkType::LinuxSll2,
            vlans: vec![],
            null_le: false,
            ip: Ip::V6 {
                src: [0x20; 16],
                dst: [0x30; 16],
                hop: 9,
                exts: vec![(0, 0), (51, 1), (60, 2)],
                first_frag: true,
            },
            l4: L4::Tcp {
                sport: 1,
                dport: 2,
                flags: 0x12,
                doff: 5,
            },
            data: vec![9; 8],
        },
    ];
    specs.iter().map(|s| (s.link, build(s).0)).collect()
}

// ---- properties --------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    /// (a) Random bytes under every link type: no panic, invariants hold.
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200), wire in any::<u32>()) {
        for link in LINKS {
            let s = parse(link, &bytes, wire);
            check_invariants(&s, wire);
        }
    }

    /// (b1) Byte flips and extensions of valid frames: no panic, invariants hold.
    #[test]
    fn mutated_frames_never_panic(
        spec in arb_spec(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        extra in proptest::collection::vec(any::<u8>(), 0..16),
    ) {
        let (mut frame, _) = build(&spec);
        for (at, byte) in flips {
            let i = at.index(frame.len());
            frame[i] ^= byte;
        }
        frame.extend_from_slice(&extra);
        for link in LINKS {
            check_invariants(&parse(link, &frame, 7), 7);
        }
    }

    /// (c) Frames built from random fields parse back to exactly those fields.
    #[test]
    fn round_trip(spec in arb_spec()) {
        let (frame, expected) = build(&spec);
        let s = parse(spec.link, &frame, 0);
        prop_assert_eq!(s, expected, "{:?} {:02x?}", spec, frame);
        check_invariants(&s, 0);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// (b2) Every prefix of a valid frame is Ok (with the same summary) or a truncation, and
    /// whatever was filled in agrees with the full frame.
    #[test]
    fn truncation_at_every_length(spec in arb_spec()) {
        let (frame, full) = build(&spec);
        for len in 0..=frame.len() {
            let s = parse(spec.link, &frame[..len], 0);
            check_invariants(&s, 0);
            prop_assert!(
                matches!(
                    s.status,
                    ParseStatus::Ok
                        | ParseStatus::TruncatedLink
                        | ParseStatus::TruncatedVlan
                        | ParseStatus::TruncatedIpv4
                        | ParseStatus::TruncatedIpv6
                        | ParseStatus::TruncatedIpv6Ext
                        | ParseStatus::TruncatedL4
                ),
                "len {} gave {:?}", len, s.status
            );
            if s.status == ParseStatus::Ok {
                prop_assert_eq!(s, full, "len {}", len);
            }
            if s.ip_version != 0 {
                prop_assert_eq!(
                    (s.ip_version, s.src, s.dst, s.ttl, s.ip_len),
                    (full.ip_version, full.src, full.dst, full.ttl, full.ip_len)
                );
                // A chain cut before its fragment header / upper layer reports where it broke.
                if s.status != ParseStatus::TruncatedIpv6Ext {
                    prop_assert_eq!((s.protocol, s.frag), (full.protocol, full.frag));
                }
            }
            prop_assert!(s.vlan_depth <= full.vlan_depth);
            if s.vlan_depth > 0 {
                prop_assert_eq!(s.vlan_id, full.vlan_id);
            }
        }
    }
}

/// (b) Deterministic sweep: every prefix and every single-byte corruption of two rich frames.
#[test]
fn exhaustive_single_byte_corruption() {
    for (link, frame) in fixed_valid_frames() {
        for len in 0..=frame.len() {
            for other in LINKS {
                check_invariants(&parse(other, &frame[..len], 1), 1);
            }
        }
        for i in 0..frame.len() {
            for v in [0x00u8, 0x01, 0x0f, 0x40, 0x45, 0x60, 0x80, 0xff] {
                let mut f = frame.clone();
                f[i] = v;
                check_invariants(&parse(link, &f, 1), 1);
            }
        }
    }
}

// ---- tunnels -----------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tun {
    /// GRE transparent Ethernet bridging.
    GreTeb,
    /// GRE carrying the inner IP packet directly.
    GreIp,
    ErspanII,
    /// ERSPAN III with frame type Ethernet (`ip == false`) or IP.
    ErspanIII {
        ip: bool,
        platform: bool,
    },
    Vxlan,
}

#[derive(Debug, Clone)]
struct TunSpec {
    tun: Tun,
    /// The carried frame; its link must be Ethernet, or RawIp for `GreIp` / ERSPAN III IP.
    inner: Spec,
    outer_v6: bool,
    outer_vlan: Option<u16>,
    /// GRE checksum and key words (ERSPAN II always has the sequence number; others maybe).
    gre_c: bool,
    gre_k: bool,
    gre_s: bool,
    /// Original VLAN in the ERSPAN header.
    erspan_vlan: u16,
    /// How much longer the frame was on the wire than captured.
    wire_extra: u16,
}

/// Builds the encapsulated frame (always Ethernet) and the summary it must give with
/// `ParseOptions::MIRROR`; also the wire length to pass.
fn build_tunnel(t: &TunSpec) -> (Vec<u8>, u32, PacketSummary) {
    let (inner, mut expected) = build(&t.inner);
    let (encap, l4_proto, l4) = match t.tun {
        Tun::Vxlan => {
            let vx = [&[0x08, 0, 0, 0, 0, 0, 0x2a, 0][..], &inner].concat();
            let len = (8 + vx.len()) as u16;
            let udp = [
                &[0x30, 0x39, 0x12, 0xb5][..],
                &len.to_be_bytes(),
                &[0, 0],
                &vx,
            ]
            .concat();
            (Encap::Vxlan, proto::UDP, udp)
        }
        tun => {
            let (encap, ptype, hdr): (Encap, u16, Vec<u8>) = match tun {
                Tun::GreTeb => (Encap::Gre, 0x6558, vec![]),
                Tun::GreIp => {
                    let p = if expected.ip_version == 4 {
                        0x0800
                    } else {
                        0x86dd
                    };
                    (Encap::Gre, p, vec![])
                }
                Tun::ErspanII => {
                    let w0 = 0x1000 | t.erspan_vlan;
                    let h = [&w0.to_be_bytes()[..], &[0x10, 0x01, 0, 0, 0, 1]].concat();
                    (Encap::ErspanII, 0x88be, h)
                }
                Tun::ErspanIII { ip, platform } => {
                    let w0 = 0x2000 | t.erspan_vlan;
                    let flags: u16 = 0x8000 | if ip { 2 << 10 } else { 0 } | u16::from(platform);
                    let mut h = [
                        &w0.to_be_bytes()[..],
                        &[0, 1, 1, 2, 3, 4, 0, 0],
                        &flags.to_be_bytes(),
                    ]
                    .concat();
                    if platform {
                        h.extend_from_slice(&[7; 8]);
                    }
                    (Encap::ErspanIII, 0x22eb, h)
                }
                Tun::Vxlan => unreachable!(),
            };
            let s = t.gre_s || tun == Tun::ErspanII;
            let flags: u16 =
                (u16::from(t.gre_c) << 15) | (u16::from(t.gre_k) << 13) | (u16::from(s) << 12);
            let mut g = [flags.to_be_bytes(), ptype.to_be_bytes()].concat();
            if t.gre_c {
                g.extend_from_slice(&[0xde, 0xad, 0, 0]);
            }
            if t.gre_k {
                g.extend_from_slice(&[0, 0, 0, 9]);
            }
            if s {
                g.extend_from_slice(&[0, 0, 1, 0]);
            }
            (encap, proto::GRE, [g, hdr, inner.clone()].concat())
        }
    };
    let ip = if t.outer_v6 {
        let mut h = vec![0u8; 40];
        h[0] = 0x60;
        h[4..6].copy_from_slice(&(l4.len() as u16).to_be_bytes());
        h[6] = l4_proto;
        h[7] = 64;
        h[8..24].copy_from_slice(&[0xfd; 16]);
        h[24..40].copy_from_slice(&[0xfe; 16]);
        h
    } else {
        let mut h = vec![0u8; 20];
        h[0] = 0x45;
        h[2..4].copy_from_slice(&((20 + l4.len()) as u16).to_be_bytes());
        h[8] = 64;
        h[9] = l4_proto;
        h[12..20].copy_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
        h
    };
    let (et, tag) = match t.outer_vlan {
        Some(v) => (0x8100u16, [&v.to_be_bytes()[..], &[0, 0]].concat()),
        None => (0, vec![]),
    };
    let ip_type: u16 = if t.outer_v6 { 0x86dd } else { 0x0800 };
    let mut head = vec![2, 0, 0, 0, 0, 9, 2, 0, 0, 0, 0, 8];
    if t.outer_vlan.is_some() {
        head.extend_from_slice(&et.to_be_bytes());
        head.extend_from_slice(&tag[..2]);
    }
    head.extend_from_slice(&ip_type.to_be_bytes());
    let frame = [head, ip, l4].concat();
    let wire = (frame.len() + usize::from(t.wire_extra)) as u32;
    expected.wire_len = wire - (frame.len() - inner.len()) as u32;
    expected.encap = encap;
    let has_erspan_vlan = matches!(t.tun, Tun::ErspanII | Tun::ErspanIII { .. });
    if has_erspan_vlan && t.erspan_vlan != 0 && expected.vlan_depth == 0 {
        expected.vlan_depth = 1;
        expected.vlan_id = t.erspan_vlan;
    }
    (frame, wire, expected)
}

fn arb_tun_spec() -> impl Strategy<Value = TunSpec> {
    let tun = prop_oneof![
        Just(Tun::GreTeb),
        Just(Tun::GreIp),
        Just(Tun::ErspanII),
        any::<(bool, bool)>().prop_map(|(ip, platform)| Tun::ErspanIII { ip, platform }),
        Just(Tun::Vxlan),
    ];
    (
        tun,
        arb_spec(),
        any::<bool>(),
        proptest::option::of(0u16..4096),
        any::<(bool, bool, bool)>(),
        prop_oneof![Just(0u16), 1u16..4096],
        0u16..2000,
    )
        .prop_map(
            |(
                tun,
                mut inner,
                outer_v6,
                outer_vlan,
                (gre_c, gre_k, gre_s),
                erspan_vlan,
                wire_extra,
            )| {
                inner.link = match tun {
                    Tun::GreIp | Tun::ErspanIII { ip: true, .. } => LinkType::RawIp,
                    _ => LinkType::Ethernet,
                };
                // Keep the inner frame from being a tunnel itself (that is the depth test's job).
                match &mut inner.l4 {
                    L4::Udp { dport, .. } if *dport == 4789 => *dport = 4790,
                    L4::Other { proto } if *proto == 47 => *proto = 50,
                    _ => {}
                }
                TunSpec {
                    tun,
                    inner,
                    outer_v6,
                    outer_vlan,
                    gre_c,
                    gre_k,
                    gre_s,
                    erspan_vlan,
                    wire_extra,
                }
            },
        )
}

/// Option sets worth running random input through.
fn option_sets() -> [ParseOptions; 5] {
    let mut depth1 = Decap::MIRROR;
    depth1.max_depth = 1;
    let mut gre_only = Decap::MIRROR;
    gre_only.erspan = false;
    gre_only.vxlan = false;
    let mut ports = Decap::MIRROR;
    ports.vxlan_ports = [4789, 8472, 0, 53];
    [
        ParseOptions::NONE,
        ParseOptions::MIRROR,
        ParseOptions::new(depth1),
        ParseOptions::new(gre_only),
        ParseOptions::new(ports),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    /// (t1) Random bytes with every option set: no panic, invariants hold.
    #[test]
    fn random_bytes_with_decap_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..200),
        wire in any::<u32>(),
    ) {
        for o in option_sets() {
            for link in LINKS {
                check_invariants_with(&parse_with(link, &bytes, wire, &o), wire);
            }
        }
    }

    /// (t2) Encapsulated frames built from random fields parse back to the inner frame's
    /// summary, with the encapsulation named and the overhead taken off the wire length.
    #[test]
    fn tunnel_round_trip(t in arb_tun_spec()) {
        let (frame, wire, expected) = build_tunnel(&t);
        let s = parse_with(LinkType::Ethernet, &frame, wire, &ParseOptions::MIRROR);
        prop_assert_eq!(s, expected, "{:?} {:02x?}", t, frame);
        check_invariants_with(&s, wire);
        // Without decapsulation: the outer packet, GRE or UDP.
        let plain = parse(LinkType::Ethernet, &frame, wire);
        check_invariants(&plain, wire);
        prop_assert_eq!(plain.status, ParseStatus::Ok);
        prop_assert!(matches!(plain.protocol, proto::GRE | proto::UDP));
    }

    /// (t3) Byte flips, cuts and extensions of encapsulated frames: no panic, invariants hold
    /// under every option set.
    #[test]
    fn mutated_tunnel_frames_never_panic(
        t in arb_tun_spec(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
        cut in any::<prop::sample::Index>(),
        extra in proptest::collection::vec(any::<u8>(), 0..16),
    ) {
        let (mut frame, wire, _) = build_tunnel(&t);
        for (at, byte) in flips {
            let i = at.index(frame.len());
            frame[i] ^= byte;
        }
        frame.truncate(cut.index(frame.len() + 1));
        frame.extend_from_slice(&extra);
        for o in option_sets() {
            for link in LINKS {
                check_invariants_with(&parse_with(link, &frame, wire, &o), wire);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// (t4) Every prefix of an encapsulated frame is the full summary or a truncation, never a
    /// "bad header" verdict.
    #[test]
    fn tunnel_truncation_at_every_length(t in arb_tun_spec()) {
        let (frame, wire, full) = build_tunnel(&t);
        for len in 0..=frame.len() {
            let s = parse_with(LinkType::Ethernet, &frame[..len], wire, &ParseOptions::MIRROR);
            check_invariants_with(&s, wire);
            prop_assert!(
                matches!(
                    s.status,
                    ParseStatus::Ok
                        | ParseStatus::TruncatedLink
                        | ParseStatus::TruncatedVlan
                        | ParseStatus::TruncatedIpv4
                        | ParseStatus::TruncatedIpv6
                        | ParseStatus::TruncatedIpv6Ext
                        | ParseStatus::TruncatedL4
                        | ParseStatus::TruncatedTunnel
                ),
                "len {} gave {:?}", len, s.status
            );
            if s.status == ParseStatus::Ok {
                prop_assert_eq!(s, full, "len {}", len);
            }
            if s.encap != Encap::None {
                prop_assert_eq!((s.encap, s.wire_len), (full.encap, full.wire_len));
            }
        }
    }
}

/// (t5) Nested tunnels up to and past the depth limit, built by hand: ERSPAN II around VXLAN
/// around GRE around VXLAN around IPv4/TCP; every prefix and every single-byte corruption.
#[test]
fn nested_tunnels_sweep() {
    fn ipv4(protocol: u8, body: &[u8]) -> Vec<u8> {
        let mut h = vec![
            0x45, 0, 0, 0, 0, 0, 0, 0, 64, protocol, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        h[2..4].copy_from_slice(&((20 + body.len()) as u16).to_be_bytes());
        [h, body.to_vec()].concat()
    }
    fn eth(body: &[u8]) -> Vec<u8> {
        [&[2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00][..], body].concat()
    }
    fn vxlan(body: &[u8]) -> Vec<u8> {
        let len = (16 + body.len()) as u16;
        let udp = [
            &[0, 1, 0x12, 0xb5][..],
            &len.to_be_bytes(),
            &[0, 0],
            &[8, 0, 0, 0, 0, 0, 1, 0],
            body,
        ]
        .concat();
        eth(&ipv4(proto::UDP, &udp))
    }
    fn gre_ip(body: &[u8]) -> Vec<u8> {
        eth(&ipv4(proto::GRE, &[&[0, 0, 0x08, 0x00][..], body].concat()))
    }
    let tcp = ipv4(
        proto::TCP,
        &[
            0, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0x50, 0x02, 0, 0, 0, 0, 0, 0,
        ],
    );
    let level4 = vxlan(&eth(&tcp));
    let level3 = gre_ip(&level4[14..]);
    let level2 = vxlan(&level3);
    let erspan = [
        &[0x10, 0, 0x88, 0xbe, 0, 0, 0, 1, 0x10, 0, 0, 1, 0, 0, 0, 0][..],
        &level2,
    ]
    .concat();
    let frame = eth(&ipv4(proto::GRE, &erspan));

    let s = parse_with(LinkType::Ethernet, &frame, 5000, &ParseOptions::MIRROR);
    check_invariants_with(&s, 5000);
    // Two levels removed: the GRE packet inside the first VXLAN.
    assert_eq!(
        (s.status, s.protocol, s.encap),
        (ParseStatus::Ok, proto::GRE, Encap::ErspanII)
    );
    assert_eq!(s.wire_len, 5000 - (frame.len() - level3.len()) as u32);

    for len in 0..=frame.len() {
        for o in option_sets() {
            check_invariants_with(&parse_with(LinkType::Ethernet, &frame[..len], 1, &o), 1);
        }
    }
    for i in 0..frame.len() {
        for v in [0x00u8, 0x01, 0x08, 0x10, 0x20, 0x45, 0x65, 0x88, 0xbe, 0xff] {
            let mut f = frame.clone();
            f[i] = v;
            for o in option_sets() {
                check_invariants_with(&parse_with(LinkType::Ethernet, &f, 1, &o), 1);
            }
        }
    }
}
