//! Fuzzes `surgewatch_pipeline::parse_with`: the first byte picks the link type and the parse
//! options, the rest is the frame. Beyond "never panics", it checks cheap invariants of the
//! summary.

#![no_main]

use libfuzzer_sys::fuzz_target;
use surgewatch_pipeline::{
    parse, parse_with, proto, Decap, Encap, Fragment, LinkType, PacketSummary, ParseOptions,
    ParseStatus,
};

/// Selector byte (mod 8) → link type. Must match `pipeline/examples/extract_corpus.rs`.
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

/// Selector bits 3..8 → options. A clear bit keeps the `Decap::MIRROR` default, so selectors
/// 0..8 (the seed corpus) fuzz with every tunnel decapsulated. Bit 3: no GRE; bit 4: no
/// ERSPAN; bit 5: no VXLAN; bit 6: one level only; bit 7: VXLAN also on 8472 and 53.
fn options(selector: u8) -> ParseOptions {
    let mut d = Decap::MIRROR;
    d.gre = selector & 0x08 == 0;
    d.erspan = selector & 0x10 == 0;
    d.vxlan = selector & 0x20 == 0;
    if selector & 0x40 != 0 {
        d.max_depth = 1;
    }
    if selector & 0x80 != 0 {
        d.vxlan_ports = [4789, 8472, 53, 0];
    }
    ParseOptions::new(d)
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, frame)) = data.split_first() else {
        return;
    };
    let link = LINKS[usize::from(selector) % LINKS.len()];
    let opts = options(selector);
    let wire_len = frame.len() as u32;
    let s = parse_with(link, frame, wire_len, &opts);
    check(&s, wire_len);
    // Determinism: the same bytes give the same summary.
    assert_eq!(s, parse_with(link, frame, wire_len, &opts));
    // Without decapsulation: never a tunnel verdict, and what decapsulation starts from.
    let plain = parse(link, frame, wire_len);
    check(&plain, wire_len);
    assert_eq!(plain.encap, Encap::None);
    assert!(!is_tunnel_error(plain.status));
    if s.encap == Encap::None && !is_tunnel_error(s.status) {
        assert_eq!(s, plain);
    }
});

fn is_tunnel_error(s: ParseStatus) -> bool {
    matches!(
        s,
        ParseStatus::TruncatedTunnel | ParseStatus::BadTunnelHeader
    )
}

fn check(s: &PacketSummary, wire_len: u32) {
    if s.encap == Encap::None {
        assert_eq!(s.wire_len, wire_len);
    } else {
        assert!(s.wire_len <= wire_len);
    }
    assert!(s.vlan_depth <= 8 && s.vlan_id < 4096);
    assert!(s.vlan_depth > 0 || s.vlan_id == 0);
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
        }
        4 => assert!(s.src.is_ipv4() && s.dst.is_ipv4() && s.ip_len >= 20),
        6 => assert!(s.src.is_ipv6() && s.dst.is_ipv6() && s.ip_len >= 40),
        v => panic!("ip_version {v}"),
    }
    if s.ip_version != 0 {
        assert!(matches!(
            s.status,
            ParseStatus::Ok
                | ParseStatus::TruncatedL4
                | ParseStatus::BadTcpHeader
                | ParseStatus::TruncatedIpv6Ext
                | ParseStatus::TruncatedTunnel
                | ParseStatus::BadTunnelHeader
        ));
    }
    if is_tunnel_error(s.status) {
        assert!(s.ip_version != 0);
        assert!(matches!(s.protocol, proto::GRE | proto::UDP));
        assert_eq!(s.has_l4, s.protocol == proto::UDP);
    }
    if s.has_l4 {
        assert!(
            s.status == ParseStatus::Ok || (is_tunnel_error(s.status) && s.protocol == proto::UDP)
        );
        assert_ne!(s.frag, Fragment::Later);
        assert!(matches!(
            s.protocol,
            proto::TCP | proto::UDP | proto::ICMP | proto::ICMPV6
        ));
    } else {
        assert_eq!((s.src_port, s.dst_port, s.tcp_flags), (0, 0, 0));
        assert_eq!((s.icmp_type, s.icmp_code, s.udp_len), (0, 0, 0));
    }
    // The class is total: every summary maps to one index in range.
    assert!(s.class().index() < surgewatch_pipeline::TrafficClass::COUNT);
    assert!(s.status.index() < ParseStatus::COUNT);
    assert!(s.encap.index() < Encap::COUNT);
}
