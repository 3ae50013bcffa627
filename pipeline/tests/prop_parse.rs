//! Property tests for `surgewatch_pipeline::parse`: no input panics, mutated and truncated
//! frames give consistent summaries, and frames built from random fields parse back exactly.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;
use surgewatch_pipeline::{parse, proto, Fragment, LinkType, PacketSummary, ParseStatus};

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

/// Invariants that hold for the summary of any input.
fn check_invariants(s: &PacketSummary, wire_len: u32) {
    assert_eq!(s.wire_len, wire_len);
    assert!(s.vlan_depth <= 8, "{s:?}");
    assert!(s.vlan_id < 4096, "{s:?}");
    if s.vlan_depth == 0 {
        assert_eq!(s.vlan_id, 0, "{s:?}");
    }
    match s.ip_version {
        0 => {
            let blank = PacketSummary {
                status: s.status,
                vlan_depth: s.vlan_depth,
                vlan_id: s.vlan_id,
                ..PacketSummary::empty(wire_len)
            };
            assert_eq!(*s, blank, "fields set without an IP header");
            assert_ne!(s.status, ParseStatus::Ok);
            assert!(!matches!(
                s.status,
                ParseStatus::TruncatedL4
                    | ParseStatus::BadTcpHeader
                    | ParseStatus::TruncatedIpv6Ext
            ));
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
        assert!(matches!(
            s.status,
            ParseStatus::Ok
                | ParseStatus::TruncatedL4
                | ParseStatus::BadTcpHeader
                | ParseStatus::TruncatedIpv6Ext
        ));
    }
    if s.status == ParseStatus::TruncatedIpv6Ext {
        assert_eq!(s.ip_version, 6);
    }
    if s.has_l4 {
        assert_eq!(s.status, ParseStatus::Ok);
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
