//! Fuzzes `surgewatch_pipeline::parse`: the first byte picks the link type, the rest is the
//! frame. Beyond "never panics", it checks cheap invariants of the summary.

#![no_main]

use libfuzzer_sys::fuzz_target;
use surgewatch_pipeline::{parse, proto, Fragment, LinkType, PacketSummary, ParseStatus};

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

fuzz_target!(|data: &[u8]| {
    let Some((&selector, frame)) = data.split_first() else {
        return;
    };
    let link = LINKS[usize::from(selector) % LINKS.len()];
    let wire_len = frame.len() as u32;
    let s = parse(link, frame, wire_len);
    check(&s, wire_len);
    // Determinism: the same bytes give the same summary.
    assert_eq!(s, parse(link, frame, wire_len));
});

fn check(s: &PacketSummary, wire_len: u32) {
    assert_eq!(s.wire_len, wire_len);
    assert!(s.vlan_depth <= 8 && s.vlan_id < 4096);
    assert!(s.vlan_depth > 0 || s.vlan_id == 0);
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
        ));
    }
    if s.has_l4 {
        assert_eq!(s.status, ParseStatus::Ok);
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
}
