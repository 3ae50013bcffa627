//! AF_PACKET (`TPACKET_V3`) capture against real kernel traffic: frames injected from one end
//! of a veth pair between two throw-away network namespaces are captured on the other end.
//! Every test needs root and prints why it is skipped otherwise.

mod support;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use support::packet::{self, tcp_flags, Class, Eth, Net, Packet, Tcp, Transport, Vlan, V4, V6};
use support::VethPair;
use surgewatch_per_ip::{Direction, GroupId, Monitor, PrefixTable, Shard};
use surgewatch_pipeline::{parse, TrafficClass};
use surgewatch_sensor::capture::afpacket::{AfPacketConfig, AfPacketSource, Fanout};
use surgewatch_sensor::capture::{Capture, CaptureError, Poll};

/// A MAC nobody owns: the receiving stack ignores these frames (PACKET_OTHERHOST) while the
/// packet socket still sees them.
const FOREIGN_MAC: [u8; 6] = [0x02, 0x00, 0x5e, 0x00, 0x00, 0xaa];
const SRC_MAC: [u8; 6] = [0x02, 0x00, 0x5e, 0x00, 0x00, 0xbb];

/// How long a test waits for something that should happen: far longer than it takes even on a
/// loaded machine (the tests return as soon as it happened).
const DEADLINE: Duration = Duration::from_secs(30);

/// A small ring for tests: 8 blocks of 256 KiB.
fn config(pair: &VethPair) -> AfPacketConfig {
    AfPacketConfig {
        block_size: 256 << 10,
        block_count: 8,
        ignore_outgoing: true,
        ..AfPacketConfig::new(pair.if_a.clone())
    }
}

fn open_a(pair: &VethPair, cfg: &AfPacketConfig) -> AfPacketSource {
    support::run_in_netns(&pair.ns_a, || AfPacketSource::open(cfg))
        .unwrap_or_else(|e| panic!("open {}: {e}", cfg.interface))
}

/// One captured frame, copied out of the ring.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Got {
    data: Vec<u8>,
    wire_len: u32,
    ts_nanos: u64,
}

/// Polls `srcs` (round robin) until `want` frames in total arrived or `timeout` passed, then
/// keeps polling for `settle` to catch extra frames. Returns the frames of each source.
///
/// `timeout` is a deadline for frames that should come, never reached when they do: keep it
/// generous ([`DEADLINE`]) so that a loaded machine is not mistaken for a broken one.
fn collect(
    srcs: &mut [&mut AfPacketSource],
    want: usize,
    timeout: Duration,
    settle: Duration,
) -> Vec<Vec<Got>> {
    let mut got: Vec<Vec<Got>> = vec![Vec::new(); srcs.len()];
    let deadline = Instant::now() + timeout;
    let mut settle_until: Option<Instant> = None;
    loop {
        let mut any = false;
        for (i, s) in srcs.iter_mut().enumerate() {
            let r = s
                .poll(64, |f| {
                    got[i].push(Got {
                        data: f.data.to_vec(),
                        wire_len: f.wire_len,
                        ts_nanos: f.ts_nanos,
                    })
                })
                .expect("poll");
            any |= matches!(r, Poll::Frames(_));
        }
        let total: usize = got.iter().map(Vec::len).sum();
        let now = Instant::now();
        if total >= want && settle_until.is_none() {
            settle_until = Some(now + settle);
        }
        if settle_until.is_some_and(|t| now >= t) || now >= deadline {
            return got;
        }
        if !any {
            if let Some(first) = srcs.first_mut() {
                first.wait_ready(Duration::from_millis(5)).expect("wait");
            }
        }
    }
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn v4(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(203, 0, 113, last)
}

fn udp(eth: &Eth, src: IpAddr, dst: IpAddr, sport: u16, payload: usize) -> Packet {
    Packet {
        eth: eth.clone(),
        net: net(src, dst),
        l4: Transport::Udp { sport, dport: 53 },
        payload: vec![0x5a; payload],
    }
}

fn net(src: IpAddr, dst: IpAddr) -> Net {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => Net::V4(V4::new(s, d)),
        (IpAddr::V6(s), IpAddr::V6(d)) => Net::V6(V6::new(s, d)),
        _ => panic!("mixed families"),
    }
}

/// The labelled frame set: several destinations, every traffic class, IPv4 and IPv6 fragments,
/// 802.1Q and QinQ tags, and one non-IP frame. Returns the frames with their classes
/// (`None` for non-IP).
fn frame_set() -> Vec<(Vec<u8>, Option<Class>)> {
    let plain = Eth::new(SRC_MAC, FOREIGN_MAC);
    let dot1q = plain.clone().with_vlans(&[Vlan::dot1q(100)]);
    let mut qinq_tags = [Vlan::qinq(200), Vlan::dot1q(300)];
    qinq_tags[0].pcp = 5;
    let qinq = plain.clone().with_vlans(&qinq_tags);
    let attacker: IpAddr = Ipv4Addr::new(198, 51, 100, 7).into();
    let attacker6: IpAddr = "2001:db8:f00::1".parse::<Ipv6Addr>().expect("v6").into();
    let v6dst: IpAddr = "2001:db8:100::10".parse::<Ipv6Addr>().expect("v6").into();
    let mut packets: Vec<Packet> = Vec::new();
    for (i, eth) in [&plain, &dot1q, &qinq].into_iter().enumerate() {
        let dst: IpAddr = v4(10 + i as u8).into();
        for flags in [
            tcp_flags::SYN,
            tcp_flags::SYN | tcp_flags::ACK,
            tcp_flags::ACK,
            tcp_flags::RST | tcp_flags::ACK,
            tcp_flags::FIN | tcp_flags::ACK,
        ] {
            packets.push(Packet {
                eth: eth.clone(),
                net: net(attacker, dst),
                l4: Transport::Tcp(Tcp::new(40000 + u16::from(flags), 80, flags)),
                payload: Vec::new(),
            });
        }
        packets.push(udp(eth, attacker, dst, 123, 200));
        packets.push(Packet {
            eth: eth.clone(),
            net: net(attacker, dst),
            l4: Transport::echo(8, 1, i as u16),
            payload: vec![1; 56],
        });
        packets.push(Packet {
            eth: eth.clone(),
            net: net(attacker, dst),
            l4: Transport::Raw {
                proto: packet::proto::GRE,
            },
            payload: vec![0; 24],
        });
        // Fragmented (3 fragments at MTU 1400; VLAN frames stay within the veth's limits).
        packets.push(udp(eth, attacker, dst, 53, 3000));
        // IPv6: UDP, ICMPv6 echo, a fragmented datagram.
        packets.push(udp(eth, attacker6, v6dst, 5353, 100));
        packets.push(Packet {
            eth: eth.clone(),
            net: net(attacker6, v6dst),
            l4: Transport::echo(128, 2, i as u16),
            payload: vec![2; 32],
        });
        packets.push(udp(eth, attacker6, v6dst, 443, 2500));
    }
    let mut frames: Vec<(Vec<u8>, Option<Class>)> = packets
        .iter()
        .flat_map(|p| p.build(1400))
        .map(|f| (f.bytes, Some(f.class)))
        .collect();
    frames.push((
        packet::arp(&plain, false, Ipv4Addr::new(198, 51, 100, 7), v4(10)),
        None,
    ));
    frames
}

fn monitor() -> Arc<Monitor> {
    let table = PrefixTable::new([
        ("203.0.113.0/24".parse().expect("cidr"), GroupId(0)),
        ("2001:db8:100::/48".parse().expect("cidr"), GroupId(0)),
    ])
    .expect("table");
    Arc::new(Monitor::prefixes(table))
}

fn traffic_class(c: Class) -> TrafficClass {
    TrafficClass::ALL
        .into_iter()
        .find(|&t| surgewatch_export::contract::class_name(t) == c.as_str())
        .expect("same class names")
}

#[test]
fn lends_exactly_the_injected_frames_with_vlan_tags_restored() {
    if !support::skip_unless_root("lends_exactly_the_injected_frames_with_vlan_tags_restored") {
        return;
    }
    let pair = VethPair::new();
    let mut src = open_a(&pair, &config(&pair));
    let frames = frame_set();
    let bytes: Vec<Vec<u8>> = frames.iter().map(|f| f.0.clone()).collect();
    let before = now_ns();
    support::inject(&pair.ns_b, &pair.if_b, &bytes);
    let got = collect(
        &mut [&mut src],
        frames.len(),
        DEADLINE,
        Duration::from_millis(100),
    )
    .remove(0);
    let after = now_ns();

    // Exactly the injected frames, byte for byte (tags re-inserted), as a multiset: the
    // kernel may reorder across CPUs.
    let mut want: Vec<&Vec<u8>> = bytes.iter().collect();
    let mut have: Vec<&Vec<u8>> = got.iter().map(|g| &g.data).collect();
    want.sort();
    have.sort();
    assert_eq!(have.len(), want.len(), "frame count");
    assert!(
        have == want,
        "captured frames differ from the injected ones"
    );
    for g in &got {
        assert_eq!(g.wire_len as usize, g.data.len(), "wire length");
        assert!(
            (before..=after).contains(&g.ts_nanos),
            "timestamp {} outside [{before}, {after}]",
            g.ts_nanos
        );
    }

    // VLAN-aware parsing sees the tags.
    let mut depth_count = BTreeMap::new();
    for g in &got {
        let s = parse(src.link_type(), &g.data, g.wire_len);
        assert!(!s.status.is_error(), "{:?}", s.status);
        *depth_count.entry((s.vlan_depth, s.vlan_id)).or_insert(0) += 1;
    }
    let per_set = (frames.len() - 1) / 3;
    assert_eq!(
        depth_count.get(&(0, 0)),
        Some(&(per_set + 1)),
        "{depth_count:?}"
    );
    assert_eq!(
        depth_count.get(&(1, 100)),
        Some(&per_set),
        "{depth_count:?}"
    );
    assert_eq!(
        depth_count.get(&(2, 200)),
        Some(&per_set),
        "{depth_count:?}"
    );

    // Per-IP per-class counts through a shard equal the generator's labels.
    let mut shard = Shard::new(monitor());
    for g in &got {
        shard.account(&parse(src.link_type(), &g.data, g.wire_len));
    }
    let delta = shard.take_tick();
    let mut expected: BTreeMap<(IpAddr, TrafficClass), (u64, u64)> = BTreeMap::new();
    for (bytes, class) in &frames {
        let Some(class) = class else { continue };
        let s = parse(src.link_type(), bytes, bytes.len() as u32);
        let e = expected.entry((s.dst, traffic_class(*class))).or_default();
        e.0 += 1;
        e.1 += bytes.len() as u64;
    }
    let mut actual: BTreeMap<(IpAddr, TrafficClass), (u64, u64)> = BTreeMap::new();
    for (ip, c) in delta.ips() {
        for class in TrafficClass::ALL {
            let pb = c.get(Direction::In, class);
            if pb.packets > 0 {
                actual.insert((ip.ip(), class), (pb.packets, pb.bytes));
            }
            assert_eq!(c.get(Direction::Out, class).packets, 0);
        }
    }
    assert_eq!(actual, expected);
    assert_eq!(
        expected.len(),
        3 * 9 + 3,
        "every class for every destination"
    );
}

#[test]
fn fanout_hash_splits_frames_disjointly() {
    if !support::skip_unless_root("fanout_hash_splits_frames_disjointly") {
        return;
    }
    let pair = VethPair::new();
    let cfg = AfPacketConfig {
        fanout: Some(Fanout::hash(4242)),
        ..config(&pair)
    };
    let mut a = open_a(&pair, &cfg);
    let mut b = open_a(&pair, &cfg);
    let eth = Eth::new(SRC_MAC, FOREIGN_MAC);
    let frames: Vec<Vec<u8>> = (0..256u16)
        .map(|i| {
            let src = Ipv4Addr::new(198, 51, 100, (i % 250) as u8 + 1);
            let mut p = udp(&eth, src.into(), v4((i % 7) as u8).into(), 1024 + i, 40);
            p.payload[0] = (i >> 8) as u8;
            p.payload[1] = i as u8;
            p.build(1500).remove(0).bytes
        })
        .collect();
    support::inject(&pair.ns_b, &pair.if_b, &frames);
    let got = collect(
        &mut [&mut a, &mut b],
        frames.len(),
        DEADLINE,
        Duration::from_millis(100),
    );
    let (ga, gb) = (&got[0], &got[1]);
    assert!(
        !ga.is_empty() && !gb.is_empty(),
        "{} / {}",
        ga.len(),
        gb.len()
    );
    let mut all: Vec<&Vec<u8>> = ga.iter().chain(gb).map(|g| &g.data).collect();
    all.sort();
    let before_dedup = all.len();
    all.dedup();
    assert_eq!(before_dedup, all.len(), "a frame reached both sockets");
    let mut want: Vec<&Vec<u8>> = frames.iter().collect();
    want.sort();
    assert!(all == want, "union differs from the injected frames");
    eprintln!("fanout split: {} + {}", ga.len(), gb.len());
}

#[test]
fn fanout_defrag_would_hide_incomplete_fragments() {
    if !support::skip_unless_root("fanout_defrag_would_hide_incomplete_fragments") {
        return;
    }
    // Why `Fanout::defrag` is off by default: with PACKET_FANOUT_FLAG_DEFRAG the kernel holds
    // fragments for reassembly, so a fragment flood never reaches the sensor.
    let pair = VethPair::new();
    let mut plain = open_a(&pair, &config(&pair));
    let mut defrag = open_a(
        &pair,
        &AfPacketConfig {
            fanout: Some(Fanout {
                defrag: true,
                ..Fanout::hash(77)
            }),
            ..config(&pair)
        },
    );
    let eth = Eth::new(SRC_MAC, FOREIGN_MAC);
    let mut frags = udp(
        &eth,
        Ipv4Addr::new(198, 51, 100, 9).into(),
        v4(10).into(),
        53,
        3000,
    )
    .build(1500);
    assert_eq!(frags.len(), 3);
    let first_only = frags.remove(0).bytes;
    let whole = udp(
        &eth,
        Ipv4Addr::new(198, 51, 100, 9).into(),
        v4(11).into(),
        53,
        10,
    )
    .build(1500)
    .remove(0)
    .bytes;
    support::inject(&pair.ns_b, &pair.if_b, &[first_only, whole]);
    // Three frames should arrive (two on the plain socket, the whole datagram on the other);
    // then a while longer to see a withheld fragment delivered after all.
    let got = collect(
        &mut [&mut plain, &mut defrag],
        3,
        DEADLINE,
        Duration::from_millis(200),
    );
    assert_eq!(got[0].len(), 2, "without defrag both frames arrive");
    assert_eq!(got[1].len(), 1, "with defrag the lone fragment is withheld");
}

#[test]
fn unknown_interface_is_a_clear_error() {
    if !support::skip_unless_root("unknown_interface_is_a_clear_error") {
        return;
    }
    let pair = VethPair::new();
    let e = support::run_in_netns(&pair.ns_a, || {
        AfPacketSource::open(&AfPacketConfig::new("nosuch0"))
    })
    .expect_err("unknown interface");
    assert!(matches!(e, CaptureError::NoSuchInterface { .. }), "{e:?}");
    assert_eq!(e.to_string(), "nosuch0: no such network interface");
    // The veth end of the other namespace is not visible from this one either.
    let e = support::run_in_netns(&pair.ns_a, || {
        AfPacketSource::open(&AfPacketConfig::new(pair.if_b.clone()))
    })
    .expect_err("peer is in another namespace");
    assert!(matches!(e, CaptureError::NoSuchInterface { .. }), "{e:?}");
}

#[test]
fn interface_down_is_a_clear_error() {
    if !support::skip_unless_root("interface_down_is_a_clear_error") {
        return;
    }
    let pair = VethPair::new();
    pair.set_a_up(false);
    let e = support::run_in_netns(&pair.ns_a, || AfPacketSource::open(&config(&pair)))
        .expect_err("interface down");
    assert!(matches!(e, CaptureError::InterfaceDown { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        "swv0: interface is down (bring it up: ip link set swv0 up)"
    );
}

#[test]
fn non_ethernet_interface_is_a_clear_error() {
    if !support::skip_unless_root("non_ethernet_interface_is_a_clear_error") {
        return;
    }
    let pair = VethPair::new();
    support::ip(&["-n", &pair.ns_a, "tuntap", "add", "mode", "tun", "swtun0"]);
    support::ip(&["-n", &pair.ns_a, "link", "set", "swtun0", "up"]);
    let e = support::run_in_netns(&pair.ns_a, || {
        AfPacketSource::open(&AfPacketConfig::new("swtun0"))
    })
    .expect_err("tun is not Ethernet");
    assert!(
        matches!(e, CaptureError::UnsupportedHardware { hw_type: 65534, .. }),
        "{e:?}"
    );
    assert!(e.to_string().contains("only Ethernet"), "{e}");
}

#[test]
fn interface_going_down_is_reported_then_capture_resumes() {
    if !support::skip_unless_root("interface_going_down_is_reported_then_capture_resumes") {
        return;
    }
    let pair = VethPair::new();
    let mut src = open_a(&pair, &config(&pair));
    pair.set_a_up(false);
    let e = src.wait_ready(DEADLINE).expect_err("went down");
    assert!(matches!(e, CaptureError::InterfaceDown { .. }), "{e:?}");
    // Reported once.
    assert!(matches!(
        src.wait_ready(Duration::from_millis(20)),
        Ok(false)
    ));
    pair.set_a_up(true);
    let eth = Eth::new(SRC_MAC, FOREIGN_MAC);
    let f = udp(
        &eth,
        Ipv4Addr::new(198, 51, 100, 1).into(),
        v4(1).into(),
        9,
        10,
    )
    .build(1500)
    .remove(0)
    .bytes;
    support::inject(&pair.ns_b, &pair.if_b, &[f]);
    let got = collect(&mut [&mut src], 1, DEADLINE, Duration::ZERO);
    assert_eq!(got[0].len(), 1);
}

#[test]
fn trait_wait_keeps_the_error_for_the_next_poll() {
    if !support::skip_unless_root("trait_wait_keeps_the_error_for_the_next_poll") {
        return;
    }
    let pair = VethPair::new();
    let mut src = open_a(&pair, &config(&pair));
    pair.set_a_up(false);
    // The kernel reports the interface down to the socket before `ip` returns: the wait
    // returns at once with the error pending (the deadline only bounds a broken build).
    Capture::wait(&mut src, DEADLINE);
    let e = src.poll(16, |_| {}).expect_err("pending error");
    assert!(matches!(e, CaptureError::InterfaceDown { .. }), "{e:?}");
    assert_eq!(src.poll(16, |_| {}).ok(), Some(Poll::Idle));
}

#[test]
fn stats_count_frames_and_drops_and_accumulate() {
    if !support::skip_unless_root("stats_count_frames_and_drops_and_accumulate") {
        return;
    }
    let pair = VethPair::new();
    let eth = Eth::new(SRC_MAC, FOREIGN_MAC);
    let frame = |i: u16, len: usize| {
        let mut p = udp(
            &eth,
            Ipv4Addr::new(198, 51, 100, 1).into(),
            v4(1).into(),
            i,
            len,
        );
        p.payload[0] = i as u8;
        p.build(1500).remove(0).bytes
    };

    // Ring large enough: every frame is received, no drop.
    let mut src = open_a(&pair, &config(&pair));
    let frames: Vec<Vec<u8>> = (0..100).map(|i| frame(i, 100)).collect();
    support::inject(&pair.ns_b, &pair.if_b, &frames);
    let got = collect(&mut [&mut src], 100, DEADLINE, Duration::from_millis(50));
    assert_eq!(got[0].len(), 100);
    let s = src.stats();
    assert_eq!(s.received, 100);
    assert_eq!(s.bytes, frames.iter().map(|f| f.len() as u64).sum::<u64>());
    assert_eq!(s.kernel_drops, 0);
    // PACKET_STATISTICS resets the kernel counters at each read: totals must not.
    assert_eq!(src.stats(), s);
    let k = src.kernel_stats();
    assert_eq!((k.packets, k.drops), (100, 0));
    drop(src);

    // A one-block ring that is not drained: the kernel drops, and every frame is either
    // received or dropped.
    let tiny = AfPacketConfig {
        block_size: 4096,
        block_count: 1,
        frame_size: 2048,
        block_timeout: Duration::from_secs(5),
        ..config(&pair)
    };
    let mut src = open_a(&pair, &tiny);
    let frames: Vec<Vec<u8>> = (0..50).map(|i| frame(i, 1000)).collect();
    support::inject(&pair.ns_b, &pair.if_b, &frames);
    // Poll until every frame is accounted for, received or dropped (a partly filled block is
    // handed over after its 5 s timeout), or the deadline passes.
    let deadline = Instant::now() + DEADLINE;
    let mut received = 0;
    let s = loop {
        let got = collect(
            &mut [&mut src],
            50,
            Duration::from_millis(50),
            Duration::ZERO,
        );
        received += got[0].len() as u64;
        let s = src.stats();
        if s.received + s.kernel_drops >= 50 || Instant::now() >= deadline {
            break s;
        }
    };
    let k = src.kernel_stats();
    assert!(s.kernel_drops > 0, "{s:?}");
    assert_eq!(s.received, received);
    assert_eq!(s.received + s.kernel_drops, 50, "{s:?} {k:?}");
    assert_eq!(k.packets, 50, "tp_packets counts dropped frames too");
}

#[test]
fn promiscuous_membership_ends_with_the_socket() {
    if !support::skip_unless_root("promiscuous_membership_ends_with_the_socket") {
        return;
    }
    let pair = VethPair::new();
    assert!(!pair.a_is_promiscuous());
    let src = open_a(&pair, &config(&pair));
    assert!(pair.a_is_promiscuous());
    drop(src);
    assert!(!pair.a_is_promiscuous());
    let src = open_a(
        &pair,
        &AfPacketConfig {
            promiscuous: false,
            ..config(&pair)
        },
    );
    assert!(!pair.a_is_promiscuous());
    drop(src);
}

#[test]
fn idle_wait_returns_within_its_timeout() {
    if !support::skip_unless_root("idle_wait_returns_within_its_timeout") {
        return;
    }
    let pair = VethPair::new();
    let mut src = open_a(&pair, &config(&pair));
    assert_eq!(src.poll(64, |_| {}).ok(), Some(Poll::Idle));
    let t = Instant::now();
    assert!(matches!(
        src.wait_ready(Duration::from_millis(50)),
        Ok(false)
    ));
    let took = t.elapsed();
    // It waits (does not return early) and returns once its timeout passed, not much later:
    // the upper bound leaves room for a loaded machine's scheduling delays.
    assert!(
        took >= Duration::from_millis(45) && took < Duration::from_secs(5),
        "{took:?}"
    );
}

#[test]
fn budget_splits_a_block_across_polls() {
    if !support::skip_unless_root("budget_splits_a_block_across_polls") {
        return;
    }
    let pair = VethPair::new();
    let mut src = open_a(&pair, &config(&pair));
    let eth = Eth::new(SRC_MAC, FOREIGN_MAC);
    let frames: Vec<Vec<u8>> = (0..10u16)
        .map(|i| {
            udp(
                &eth,
                Ipv4Addr::new(198, 51, 100, 1).into(),
                v4(1).into(),
                i,
                10,
            )
            .build(1500)
            .remove(0)
            .bytes
        })
        .collect();
    support::inject(&pair.ns_b, &pair.if_b, &frames);
    // Wait for the block to be handed over (its 10 ms timeout): it holds the ten frames, or
    // those the kernel had handled by then, and is then read three frames at a time.
    assert!(
        src.wait_ready(DEADLINE).expect("wait"),
        "no block handed over"
    );
    let mut sizes = Vec::new();
    let mut n = 0;
    let deadline = Instant::now() + DEADLINE;
    while n < 10 && Instant::now() < deadline {
        if let Poll::Frames(k) = src.poll(3, |_| {}).expect("poll") {
            sizes.push(k);
            n += k;
        } else {
            src.wait_ready(Duration::from_millis(10)).expect("wait");
        }
    }
    assert_eq!(n, 10);
    assert!(sizes.iter().all(|&k| k <= 3), "{sizes:?}");
    assert_eq!(src.poll(3, |_| {}).ok(), Some(Poll::Idle));
}

#[test]
fn harness_runs_processes_in_a_namespace_and_signals_them() {
    if !support::skip_unless_root("harness_runs_processes_in_a_namespace_and_signals_them") {
        return;
    }
    let pair = VethPair::new();
    // The process sees the namespace's interfaces, not the host's.
    let p = support::Spawned::in_netns(&pair.ns_a, "ip", &["-o", "link", "show"]);
    let mut p = p;
    let out = p.wait_timeout(DEADLINE).expect("ip exits");
    assert!(out.status.success());
    assert!(out.stdout.contains(&pair.if_a), "{}", out.stdout);
    assert!(!out.stdout.contains(&pair.if_b), "{}", out.stdout);

    let sleeper = support::Spawned::in_netns(&pair.ns_a, "sleep", &["30"]);
    // Well before its 30 s are up (`stop` panics when the deadline passes).
    let out = sleeper.stop(libc::SIGTERM, Duration::from_secs(20));
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&out.status),
        Some(libc::SIGTERM)
    );

    let mut sw = support::Spawned::surgewatch(&pair.ns_a, &["--version"]);
    let out = sw.wait_timeout(DEADLINE).expect("surgewatch exits");
    assert!(out.status.success(), "{out:?}");
    assert!(out.stdout.starts_with("surgewatch"), "{out:?}");
}
