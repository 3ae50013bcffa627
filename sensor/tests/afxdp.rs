//! AF_XDP capture on a veth pair between two network namespaces (root only).
//!
//! Frames are injected from namespace B with an AF_PACKET socket and captured in namespace A by
//! an [`AfXdpSource`]; counts are checked exactly, per address and per class, through
//! `surgewatch_pipeline::parse` and `surgewatch_per_ip::Shard`. IPv6 is disabled in both
//! namespaces so that the kernel sends no ND/MLD frames of its own.
//!
//! The tests run one at a time (a static mutex): rebinding a queue right after a socket closed
//! can fail with EBUSY for a moment.

mod support;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use support::{VethOptions, VethPair};

use surgewatch_per_ip::{Direction, GroupId, Monitor, PrefixTable, Shard};
use surgewatch_pipeline::{parse, LinkType, TrafficClass};
use surgewatch_sensor::capture::afxdp::{rx_queues, AfXdpConfig, AfXdpSource, XdpMode};
use surgewatch_sensor::capture::xdp_prog::{XdpAttachMode, XdpFallback, XdpProgram};
use surgewatch_sensor::capture::{Capture, CaptureError, Poll};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// `Some(guard)` when the test can run, after printing why not otherwise.
fn root_or_skip(test: &str) -> Option<MutexGuard<'static, ()>> {
    support::skip_unless_root(test).then(serial)
}

// ---------------------------------------------------------------------------------------------
// What the shared harness does not have.

mod net {
    use std::os::fd::AsRawFd;
    use std::process::Command;

    /// `ip -d link show dev IF` inside `ns`.
    pub fn link_details(ns: &str, ifname: &str) -> String {
        let out = Command::new("ip")
            .args(["-n", ns, "-d", "link", "show", "dev", ifname])
            .output()
            .expect("ip link show");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Pins the calling thread to one CPU; best effort (nothing happens where that CPU is not
    /// available to the tests).
    pub fn pin_to_cpu(cpu: usize) {
        // SAFETY: cpu_set_t is plain data; CPU_SET writes within it; sched_setaffinity reads it.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut set);
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
        }
    }

    /// Sends `frame` `n` times out of `ifname` (caller's namespace) with sendmmsg(2), 64 per
    /// call, bypassing the qdisc: a faster generator than one sendto per frame.
    pub fn send_many(ifname: &str, frame: &[u8], n: usize) {
        use std::os::fd::FromRawFd;
        const BATCH: usize = 64;
        let name = std::ffi::CString::new(ifname).expect("name");
        // SAFETY: valid C string.
        let idx = unsafe { libc::if_nametoindex(name.as_ptr()) };
        assert_ne!(idx, 0, "no interface {ifname}");
        // SAFETY: socket(2) with constant arguments.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        // SAFETY: fd is fresh and owned by nobody else.
        let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
        let bypass: libc::c_int = 1;
        // SAFETY: setsockopt with a valid int option value.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_QDISC_BYPASS,
                (&bypass as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
        // SAFETY: sockaddr_ll is plain data.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_ifindex = idx as i32;
        addr.sll_halen = 6;
        let mut iov = libc::iovec {
            iov_base: frame.as_ptr() as *mut libc::c_void,
            iov_len: frame.len(),
        };
        // SAFETY: mmsghdr is plain data; every pointer set below outlives the calls.
        let mut msgs: Vec<libc::mmsghdr> =
            (0..BATCH).map(|_| unsafe { std::mem::zeroed() }).collect();
        for m in &mut msgs {
            m.msg_hdr.msg_name = (&addr as *const libc::sockaddr_ll).cast_mut().cast();
            m.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_ll>() as u32;
            m.msg_hdr.msg_iov = &mut iov;
            m.msg_hdr.msg_iovlen = 1;
        }
        let mut left = n;
        while left > 0 {
            let k = left.min(BATCH);
            // SAFETY: `msgs` holds `k` valid headers pointing at live buffers.
            let r = unsafe { libc::sendmmsg(fd.as_raw_fd(), msgs.as_mut_ptr(), k as u32, 0) };
            if r > 0 {
                left -= r as usize;
            } else {
                std::thread::yield_now();
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Frames.

mod frames {
    use std::net::{Ipv4Addr, Ipv6Addr};

    pub const SYN: u8 = 0x02;
    pub const ACK: u8 = 0x10;
    pub const RST: u8 = 0x04;
    pub const FIN: u8 = 0x01;

    fn eth(vlan: Option<u16>, ethertype: u16, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02];
        if let Some(v) = vlan {
            f.extend_from_slice(&0x8100u16.to_be_bytes());
            f.extend_from_slice(&v.to_be_bytes());
        }
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    fn checksum(b: &[u8]) -> u16 {
        let mut s: u32 = b
            .chunks(2)
            .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
            .sum();
        while s >> 16 != 0 {
            s = (s & 0xffff) + (s >> 16);
        }
        !(s as u16)
    }

    /// IPv4 packet; `frag` = (more fragments, offset in 8-byte units).
    fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, frag: (bool, u16), l4: &[u8]) -> Vec<u8> {
        let total = (20 + l4.len()) as u16;
        let fl = (u16::from(frag.0) << 13) | frag.1;
        let mut h = vec![0x45, 0];
        h.extend_from_slice(&total.to_be_bytes());
        h.extend_from_slice(&0x1234u16.to_be_bytes());
        h.extend_from_slice(&fl.to_be_bytes());
        h.extend_from_slice(&[64, proto, 0, 0]);
        h.extend_from_slice(&src.octets());
        h.extend_from_slice(&dst.octets());
        let c = checksum(&h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        h.extend_from_slice(l4);
        h
    }

    fn ipv6(src: Ipv6Addr, dst: Ipv6Addr, nh: u8, l4: &[u8]) -> Vec<u8> {
        let mut h = vec![0x60, 0, 0, 0];
        h.extend_from_slice(&(l4.len() as u16).to_be_bytes());
        h.extend_from_slice(&[nh, 64]);
        h.extend_from_slice(&src.octets());
        h.extend_from_slice(&dst.octets());
        h.extend_from_slice(l4);
        h
    }

    fn tcp(sport: u16, flags: u8) -> Vec<u8> {
        let mut t = Vec::with_capacity(20);
        t.extend_from_slice(&sport.to_be_bytes());
        t.extend_from_slice(&80u16.to_be_bytes());
        t.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
        t
    }

    fn udp(sport: u16, payload: usize) -> Vec<u8> {
        let mut u = Vec::with_capacity(8 + payload);
        u.extend_from_slice(&sport.to_be_bytes());
        u.extend_from_slice(&53u16.to_be_bytes());
        u.extend_from_slice(&((8 + payload) as u16).to_be_bytes());
        u.extend_from_slice(&[0, 0]);
        u.resize(8 + payload, 0xab);
        u
    }

    fn icmp_echo() -> Vec<u8> {
        vec![8, 0, 0, 0, 0, 1, 0, 1]
    }

    pub fn v4_tcp(
        src: Ipv4Addr,
        dst: Ipv4Addr,
        sport: u16,
        flags: u8,
        vlan: Option<u16>,
    ) -> Vec<u8> {
        eth(
            vlan,
            0x0800,
            &ipv4(src, dst, 6, (false, 0), &tcp(sport, flags)),
        )
    }

    pub fn v4_udp(
        src: Ipv4Addr,
        dst: Ipv4Addr,
        sport: u16,
        payload: usize,
        vlan: Option<u16>,
    ) -> Vec<u8> {
        eth(
            vlan,
            0x0800,
            &ipv4(src, dst, 17, (false, 0), &udp(sport, payload)),
        )
    }

    pub fn v4_icmp(src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
        eth(None, 0x0800, &ipv4(src, dst, 1, (false, 0), &icmp_echo()))
    }

    /// Two fragments of one UDP datagram.
    pub fn v4_fragments(src: Ipv4Addr, dst: Ipv4Addr) -> [Vec<u8>; 2] {
        let first = eth(None, 0x0800, &ipv4(src, dst, 17, (true, 0), &udp(1000, 24)));
        let second = eth(None, 0x0800, &ipv4(src, dst, 17, (false, 4), &[0xcd; 40]));
        [first, second]
    }

    pub fn v4_gre(src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
        eth(
            None,
            0x0800,
            &ipv4(src, dst, 47, (false, 0), &[0, 0, 0x08, 0x00]),
        )
    }

    pub fn v6_udp(src: Ipv6Addr, dst: Ipv6Addr, sport: u16) -> Vec<u8> {
        eth(None, 0x86dd, &ipv6(src, dst, 17, &udp(sport, 16)))
    }

    pub fn v6_tcp(src: Ipv6Addr, dst: Ipv6Addr, flags: u8) -> Vec<u8> {
        eth(None, 0x86dd, &ipv6(src, dst, 6, &tcp(4000, flags)))
    }

    pub fn v6_icmp(src: Ipv6Addr, dst: Ipv6Addr) -> Vec<u8> {
        eth(
            None,
            0x86dd,
            &ipv6(src, dst, 58, &[128, 0, 0, 0, 0, 1, 0, 1]),
        )
    }

    /// A first fragment of a UDP datagram (IPv6 fragment extension header).
    pub fn v6_fragment(src: Ipv6Addr, dst: Ipv6Addr) -> Vec<u8> {
        let mut fh = vec![17, 0, 0, 1, 0, 0, 0, 7]; // next header UDP, offset 0, M=1, id 7
        fh.extend_from_slice(&udp(1000, 32));
        eth(None, 0x86dd, &ipv6(src, dst, 44, &fh))
    }
}

// ---------------------------------------------------------------------------------------------
// Capture and accounting helpers.

/// Opens AF_XDP on end A of `pair` (inside its namespace; the sockets and the program stay
/// there whatever thread polls them).
fn open_a(pair: &VethPair) -> AfXdpSource {
    let ifname = pair.if_a.clone();
    support::run_in_netns(&pair.ns_a, move || {
        AfXdpSource::open(&ifname, &AfXdpConfig::default())
    })
    .expect("open AF_XDP")
}

/// What a source delivered.
struct Captured {
    frames: Vec<(Vec<u8>, u32)>,
    per_queue: Vec<(u32, u64)>,
    kernel_drops: u64,
}

/// Polls every part until `expect` frames arrived and then `quiet` passed without any (to catch
/// extra frames), or 30 s passed: a generous deadline, never reached when the frames arrive.
fn drain(parts: &mut [AfXdpSource], expect: usize, quiet: Duration) -> Captured {
    let mut frames = Vec::new();
    let mut counts = vec![0u64; parts.len()];
    let start = Instant::now();
    let mut last = Instant::now();
    loop {
        let mut got = 0;
        for (i, p) in parts.iter_mut().enumerate() {
            let r = p
                .poll(64, |f| {
                    assert_eq!(f.data.len() as u32, f.wire_len);
                    assert_eq!(f.link, LinkType::Ethernet);
                    frames.push((f.data.to_vec(), f.wire_len));
                })
                .expect("poll");
            if let Poll::Frames(n) = r {
                counts[i] += n as u64;
                got += n;
            }
        }
        if got > 0 {
            last = Instant::now();
            continue;
        }
        let done = frames.len() >= expect && last.elapsed() >= quiet;
        if done || start.elapsed() > Duration::from_secs(30) {
            break;
        }
        let _ = parts[0].wait(Duration::from_millis(10));
    }
    let mut kernel_drops = 0;
    let mut per_queue = Vec::new();
    for (p, c) in parts.iter_mut().zip(&counts) {
        let s = p.stats();
        kernel_drops += s.kernel_drops;
        assert_eq!(s.received, *c);
        per_queue.push((p.queues()[0], *c));
    }
    Captured {
        frames,
        per_queue,
        kernel_drops,
    }
}

/// Inbound packets per (address, class) through parse + Shard, for 10.1.0.0/16 and
/// 2001:db8::/32.
fn account<'a>(
    frames: impl IntoIterator<Item = (&'a [u8], u32)>,
) -> BTreeMap<(IpAddr, TrafficClass), u64> {
    let table = PrefixTable::new([
        ("10.1.0.0/16".parse().expect("net"), GroupId(0)),
        ("2001:db8::/32".parse().expect("net"), GroupId(0)),
    ])
    .expect("table");
    let mut shard = Shard::new(Arc::new(Monitor::prefixes(table)));
    for (data, wire) in frames {
        shard.account(&parse(LinkType::Ethernet, data, wire));
    }
    let delta = shard.take_tick();
    let mut out = BTreeMap::new();
    for (key, c) in delta.ips() {
        for class in TrafficClass::ALL {
            assert_eq!(
                c.get(Direction::Out, class).packets,
                0,
                "nothing was sent outbound"
            );
            let p = c.get(Direction::In, class).packets;
            if p > 0 {
                out.insert((key.ip(), class), p);
            }
        }
    }
    out
}

fn v4(s: &str) -> Ipv4Addr {
    s.parse().expect("ipv4")
}

fn v6(s: &str) -> Ipv6Addr {
    s.parse().expect("ipv6")
}

// ---------------------------------------------------------------------------------------------
// Tests.

#[test]
fn captures_every_class_exactly() {
    let Some(_g) = root_or_skip("captures_every_class_exactly") else {
        return;
    };
    use frames::*;
    let pair = VethPair::new();
    let (s4, s6) = (v4("198.51.100.7"), v6("2001:db9::7"));
    let (a, b, c, d, e) = (
        v4("10.1.0.1"),
        v4("10.1.0.2"),
        v4("10.1.0.3"),
        v4("10.1.0.4"),
        v4("10.1.0.5"),
    );
    let d6 = v6("2001:db8::1");

    let mut frames: Vec<Vec<u8>> = Vec::new();
    let mut expected: BTreeMap<(IpAddr, TrafficClass), u64> = BTreeMap::new();
    let mut add = |f: Vec<u8>, ip: IpAddr, class: TrafficClass, n: u64| {
        for _ in 0..n {
            frames.push(f.clone());
        }
        *expected.entry((ip, class)).or_default() += n;
    };
    add(
        v4_tcp(s4, a, 1111, SYN, None),
        a.into(),
        TrafficClass::Syn,
        5,
    );
    add(
        v4_tcp(s4, a, 1112, SYN | ACK, None),
        a.into(),
        TrafficClass::SynAck,
        3,
    );
    add(
        v4_tcp(s4, a, 1113, ACK, None),
        a.into(),
        TrafficClass::Ack,
        2,
    );
    add(
        v4_tcp(s4, a, 1114, RST, None),
        a.into(),
        TrafficClass::Rst,
        1,
    );
    add(
        v4_tcp(s4, a, 1115, FIN, None),
        a.into(),
        TrafficClass::TcpOther,
        1,
    );
    add(
        v4_udp(s4, b, 2000, 32, None),
        b.into(),
        TrafficClass::Udp,
        4,
    );
    add(v4_icmp(s4, b), b.into(), TrafficClass::Icmp, 2);
    for f in v4_fragments(s4, b) {
        add(f, b.into(), TrafficClass::Fragment, 1);
    }
    add(
        v4_udp(s4, c, 2001, 64, Some(100)),
        c.into(),
        TrafficClass::Udp,
        3,
    );
    add(
        v4_tcp(s4, c, 1116, SYN, Some(200)),
        c.into(),
        TrafficClass::Syn,
        2,
    );
    add(v4_gre(s4, d), d.into(), TrafficClass::Other, 1);
    // A full-size frame (1514 bytes on the wire) fits in a copy-mode chunk.
    add(
        v4_udp(s4, e, 2002, 1514 - 42, None),
        e.into(),
        TrafficClass::Udp,
        2,
    );
    add(v6_udp(s6, d6, 3000), d6.into(), TrafficClass::Udp, 3);
    add(v6_tcp(s6, d6, SYN), d6.into(), TrafficClass::Syn, 2);
    add(v6_icmp(s6, d6), d6.into(), TrafficClass::Icmp, 1);
    add(v6_fragment(s6, d6), d6.into(), TrafficClass::Fragment, 1);
    let total = frames.len();
    // The expectation is also what the parser makes of the frames as sent.
    assert_eq!(
        account(frames.iter().map(|f| (&f[..], f.len() as u32))),
        expected
    );

    let src = open_a(&pair);
    eprintln!(
        "mode {:?}, program in {} mode, max frame {} bytes",
        src.mode(),
        src.attach_mode().as_str(),
        src.max_frame_len()
    );
    assert_eq!(src.mode(), XdpMode::Copy, "veth has no zero-copy");
    assert_eq!(
        src.attach_mode(),
        XdpAttachMode::Driver,
        "veth has native XDP"
    );
    assert_eq!(src.max_frame_len(), 1792);
    let details = net::link_details(&pair.ns_a, &pair.if_a);
    assert!(details.contains("prog/xdp"), "program attached: {details}");

    // The rings hold every frame: inject first, then drain.
    support::inject(&pair.ns_b, &pair.if_b, &frames);
    let mut parts = [src];
    let got = drain(&mut parts, total, Duration::from_millis(300));
    assert_eq!(got.frames.len(), total, "exact count");
    assert_eq!(got.kernel_drops, 0);
    assert_eq!(
        account(got.frames.iter().map(|(d, w)| (&d[..], *w))),
        expected
    );

    // Source and program gone: nothing left on the interface.
    drop(parts);
    let details = net::link_details(&pair.ns_a, &pair.if_a);
    assert!(!details.contains("xdp"), "program left behind: {details}");
}

#[test]
fn two_queues_together_receive_everything() {
    let Some(_g) = root_or_skip("two_queues_together_receive_everything") else {
        return;
    };
    let pair = VethPair::with_options(&VethOptions {
        queues: 2,
        ..VethOptions::default()
    });
    let ifname = pair.if_a.clone();
    let queues = support::run_in_netns(&pair.ns_a, move || rx_queues(&ifname)).expect("queues");
    assert_eq!(queues, vec![0, 1]);

    let src = open_a(&pair);
    assert_eq!(src.queues(), vec![0, 1]);
    let mut parts = src.split();
    assert_eq!(parts.len(), 2);

    // Which RX queue a frame lands on is the kernel's choice (veth: the peer's TX queue, from
    // the flow hash or, where XPS is set up, the sending CPU), not something the product
    // promises. What it does promise: each queue's socket receives what arrives on its queue,
    // so together they receive every frame exactly once, and every queue is served. 2,000
    // distinct flows (1,000 source ports to each of two addresses) from two senders, one per
    // CPU where there are two, land on both queues under either policy. They fit in the rings,
    // so injection and capture need not overlap.
    const PER_DST: usize = 1000;
    let flows = |d: u8| -> Vec<Vec<u8>> {
        let dst = Ipv4Addr::new(10, 1, 1, d + 1);
        (0..PER_DST)
            .map(|i| frames::v4_udp(v4("198.51.100.9"), dst, 1000 + i as u16, 18, None))
            .collect()
    };
    for d in 0..2u8 {
        let ifb = pair.if_b.clone();
        let frames = flows(d);
        support::run_in_netns(&pair.ns_b, move || {
            net::pin_to_cpu(usize::from(d));
            support::inject_here(&ifb, &frames);
        });
    }
    let got = drain(&mut parts, 2 * PER_DST, Duration::from_millis(300));
    eprintln!("per queue: {:?}", got.per_queue);
    // Every frame exactly once: the frames differ from each other, so the captured multiset
    // must be the sent set.
    let mut sent: Vec<Vec<u8>> = (0..2u8).flat_map(flows).collect();
    let mut have: Vec<Vec<u8>> = got.frames.iter().map(|(d, _)| d.clone()).collect();
    sent.sort();
    have.sort();
    assert_eq!(have.len(), sent.len(), "frames received in all");
    assert!(have == sent, "the frames received are not the frames sent");
    assert_eq!(got.kernel_drops, 0);
    let acct = account(got.frames.iter().map(|(d, w)| (&d[..], *w)));
    for d in 0..2u8 {
        let ip: IpAddr = Ipv4Addr::new(10, 1, 1, d + 1).into();
        assert_eq!(acct.get(&(ip, TrafficClass::Udp)), Some(&(PER_DST as u64)));
    }
    // Both queues served, however the kernel split the flows; per-queue counts (each checked
    // against its socket's own statistics in `drain`) add up to the total.
    let queues: Vec<u32> = got.per_queue.iter().map(|&(q, _)| q).collect();
    assert_eq!(queues, vec![0, 1]);
    assert!(
        got.per_queue.iter().all(|&(_, n)| n > 0),
        "a queue's worker received nothing: {:?}",
        got.per_queue
    );
    assert_eq!(
        got.per_queue.iter().map(|&(_, n)| n).sum::<u64>(),
        2 * PER_DST as u64
    );
    drop(parts);
    assert!(!net::link_details(&pair.ns_a, &pair.if_a).contains("xdp"));
}

#[test]
fn busy_polling_receives_everything() {
    let Some(_g) = root_or_skip("busy_polling_receives_everything") else {
        return;
    };
    let pair = VethPair::new();
    let ifname = pair.if_a.clone();
    let mut src = support::run_in_netns(&pair.ns_a, move || {
        let cfg = AfXdpConfig {
            busy_poll_us: 50,
            ..AfXdpConfig::default()
        };
        AfXdpSource::open(&ifname, &cfg)
    })
    .expect("open AF_XDP with busy polling");
    assert!(src.busy_poll());
    const N: usize = 3000;
    let dst = v4("10.1.2.3");
    let ifb = pair.if_b.clone();
    support::run_in_netns(&pair.ns_b, move || {
        let frames: Vec<Vec<u8>> = (0..N)
            .map(|i| frames::v4_udp(v4("198.51.100.9"), dst, 1000 + i as u16, 18, None))
            .collect();
        support::inject_here(&ifb, &frames);
    });
    let got = drain(
        std::slice::from_mut(&mut src),
        N,
        Duration::from_millis(300),
    );
    assert_eq!(got.frames.len(), N);
    assert_eq!(got.kernel_drops, 0);
    let acct = account(got.frames.iter().map(|(d, w)| (&d[..], *w)));
    assert_eq!(
        acct.get(&(IpAddr::from(dst), TrafficClass::Udp)),
        Some(&(N as u64))
    );
    // veth has copy mode only: since Linux 6.13 such a socket has no NAPI context to
    // busy-poll (before, it took the queue's with its first frame), and the source says so.
    assert_eq!(
        src.stats().busy_poll_without_napi,
        support::kernel_at_least(6, 13)
    );
    // The trait's idle wait spins instead of sleeping: it returns at once, not after its
    // timeout (long enough that no scheduling delay on a loaded machine comes near it).
    let t = Instant::now();
    Capture::wait(&mut src, Duration::from_secs(10));
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    drop(src);
    assert!(!net::link_details(&pair.ns_a, &pair.if_a).contains("xdp"));
}

#[test]
fn a_queue_already_bound_is_reported_busy() {
    let Some(_g) = root_or_skip("a_queue_already_bound_is_reported_busy") else {
        return;
    };
    let pair = VethPair::new();
    let first = open_a(&pair);
    let program = Arc::clone(first.program());
    // A second socket on the same queue, through the same program: EBUSY, retried for a
    // moment, then a typed error naming the queue.
    let err = support::run_in_netns(&pair.ns_a, move || {
        AfXdpSource::with_program(program, &[0], &AfXdpConfig::default())
    })
    .expect_err("queue 0 is taken");
    assert!(
        matches!(err, CaptureError::QueueBusy { queue: 0, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("queue 0"), "{err}");
    drop(first);
}

#[test]
fn oversized_frames_are_counted_as_kernel_drops() {
    let Some(_g) = root_or_skip("oversized_frames_are_counted_as_kernel_drops") else {
        return;
    };
    let pair = VethPair::with_options(&VethOptions {
        mtu: 2000,
        ..VethOptions::default()
    });
    let src = open_a(&pair);
    let (s, d) = (v4("198.51.100.1"), v4("10.1.0.9"));
    let frames = vec![
        frames::v4_udp(s, d, 1, 1792 - 42, None), // fits exactly
        frames::v4_udp(s, d, 2, 1900, None),      // does not
    ];
    support::inject(&pair.ns_b, &pair.if_b, &frames);
    let mut parts = [src];
    let got = drain(&mut parts, 1, Duration::from_millis(300));
    assert_eq!(got.frames.len(), 1);
    assert_eq!(got.frames[0].1, 1792);
    // The drop is counted when the kernel handles the second frame, which may come after the
    // first was received: wait for it (generous deadline), then check it is exactly one.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut drops = got.kernel_drops;
    while drops == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
        drops = parts[0].stats().kernel_drops;
    }
    assert_eq!(drops, 1);
}

#[test]
fn dropping_the_program_detaches_it() {
    let Some(_g) = root_or_skip("dropping_the_program_detaches_it") else {
        return;
    };
    let pair = VethPair::new();
    let ifname = pair.if_a.clone();
    let p = support::run_in_netns(&pair.ns_a, move || {
        XdpProgram::attach(&ifname, 1, XdpFallback::Drop)
    })
    .expect("attach");
    assert_eq!(p.mode(), XdpAttachMode::Driver);
    let d = net::link_details(&pair.ns_a, &pair.if_a);
    assert!(d.contains("prog/xdp"), "attached: {d}");
    // Only the bpf_link's fd keeps the program on the interface: closing it detaches.
    drop(p);
    let d = net::link_details(&pair.ns_a, &pair.if_a);
    assert!(!d.contains("xdp"), "detached: {d}");

    // A second program can be attached right away; a third one finds the interface busy.
    let ifname = pair.if_a.clone();
    let r = support::run_in_netns(&pair.ns_a, move || {
        let p = XdpProgram::attach(&ifname, 1, XdpFallback::Pass).expect("attach again");
        XdpProgram::attach(&ifname, 1, XdpFallback::Pass).map(|_| drop(p))
    });
    let e = r.expect_err("busy");
    eprintln!("{e}");
    assert!(matches!(e, CaptureError::XdpProgramPresent { .. }), "{e:?}");
}

#[test]
fn errors_unknown_and_down_interface() {
    let Some(_g) = root_or_skip("errors_unknown_and_down_interface") else {
        return;
    };
    let e = AfXdpSource::open("swx-nosuch0", &AfXdpConfig::default()).expect_err("no interface");
    eprintln!("{e}");
    assert!(matches!(e, CaptureError::NoSuchInterface { .. }), "{e:?}");
    assert_eq!(e.to_string().lines().count(), 1);
    let e = XdpProgram::attach("swx-nosuch0", 1, XdpFallback::Pass).expect_err("no interface");
    assert!(matches!(e, CaptureError::NoSuchInterface { .. }), "{e:?}");

    let pair = VethPair::new();
    pair.set_a_up(false);
    let ifname = pair.if_a.clone();
    let e = support::run_in_netns(&pair.ns_a, move || {
        AfXdpSource::open(&ifname, &AfXdpConfig::default()).map(drop)
    })
    .expect_err("down");
    eprintln!("{e}");
    assert!(matches!(e, CaptureError::InterfaceDown { .. }), "{e:?}");
    // Nothing was attached on the way.
    assert!(!net::link_details(&pair.ns_a, &pair.if_a).contains("xdp"));
}

#[test]
fn rebinding_right_away_works() {
    let Some(_g) = root_or_skip("rebinding_right_away_works") else {
        return;
    };
    let pair = VethPair::new();
    for _ in 0..5 {
        drop(open_a(&pair));
    }
}

/// Receive rate: `cargo test --release --test afxdp -- --ignored --nocapture rate`.
#[test]
#[ignore = "benchmark, run by hand"]
fn rate() {
    let Some(_g) = root_or_skip("rate") else {
        return;
    };
    let pair = VethPair::new();
    const N: usize = 3_000_000;
    let mut src = open_a(&pair);
    let cap = std::thread::spawn(move || {
        net::pin_to_cpu(1);
        let (mut n, mut first, mut last) = (0usize, None, Instant::now());
        while first.is_none() || last.elapsed() < Duration::from_secs(1) {
            match src.poll(256, |_| {}).expect("poll") {
                Poll::Frames(k) => {
                    first.get_or_insert_with(Instant::now);
                    n += k;
                    last = Instant::now();
                }
                Poll::Idle | Poll::End => {
                    src.wait(Duration::from_millis(10)).expect("wait");
                }
            }
        }
        let secs = last.duration_since(first.expect("frames")).as_secs_f64();
        // SAFETY: clock_gettime writes into the valid `ts`.
        let cpu = unsafe {
            let mut ts: libc::timespec = std::mem::zeroed();
            libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts);
            ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
        };
        (n, secs, cpu, src.stats())
    });
    let t0 = Instant::now();
    let ifb = pair.if_b.clone();
    support::run_in_netns(&pair.ns_b, move || {
        net::pin_to_cpu(0);
        let f = frames::v4_udp(v4("198.51.100.1"), v4("10.1.0.1"), 1, 18, None);
        net::send_many(&ifb, &f, N);
    });
    let send_secs = t0.elapsed().as_secs_f64();
    let (n, secs, cpu, stats) = cap.join().expect("capture");
    eprintln!(
        "sent {N} in {send_secs:.2}s ({:.2} Mpps); received {n} in {secs:.2}s ({:.2} Mpps); \
         receiver thread CPU {cpu:.2}s; {stats:?}",
        N as f64 / send_secs / 1e6,
        n as f64 / secs / 1e6
    );
}

#[test]
fn multi_buffer_frames_are_lent_whole_even_one_descriptor_per_poll() {
    let Some(_g) = root_or_skip("multi_buffer_frames_are_lent_whole_even_one_descriptor_per_poll")
    else {
        return;
    };
    let pair = VethPair::with_options(&VethOptions {
        mtu: 9000,
        ..VethOptions::default()
    });
    let ifname = pair.if_a.clone();
    // A small UMEM: 128 chunks, fewer than the rounds below use, so a chunk not given back
    // shows up as drops.
    let mut src = support::run_in_netns(&pair.ns_a, move || {
        let cfg = AfXdpConfig {
            frame_size: 4096,
            frames_per_queue: 128,
            ring_size: 64,
            multi_buffer: true,
            ..AfXdpConfig::default()
        };
        AfXdpSource::open(&ifname, &cfg)
    })
    .expect("open multi-buffer AF_XDP");
    let (s, d) = (v4("198.51.100.1"), v4("10.1.0.9"));
    // 1 buffer, 2 buffers, 3 buffers (3,840 bytes each in copy mode), 1 buffer.
    let sizes = [100usize, 6000, 9014, 60];
    let frames: Vec<Vec<u8>> = sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| frames::v4_udp(s, d, 1000 + i as u16, n - 42, None))
        .collect();
    assert_eq!(
        frames.iter().map(Vec::len).collect::<Vec<_>>(),
        sizes.to_vec()
    );
    const ROUNDS: usize = 100; // 7 chunks a round, 3 of them continuations: 700 in all
    let mut got: Vec<(Vec<u8>, u32)> = Vec::new();
    for round in 1..=ROUNDS {
        support::inject(&pair.ns_b, &pair.if_b, &frames);
        // One descriptor per poll: a frame's buffers are split over several polls.
        let start = Instant::now();
        while got.len() < round * sizes.len() && start.elapsed() < Duration::from_secs(30) {
            let r = src
                .poll(1, |f| got.push((f.data.to_vec(), f.wire_len)))
                .expect("poll");
            if r == Poll::Idle {
                Capture::wait(&mut src, Duration::from_millis(2));
            }
        }
    }
    let st = src.stats();
    assert_eq!(st.kernel_drops, 0, "{st:?}");
    assert_eq!(st.received, (ROUNDS * sizes.len()) as u64);
    assert_eq!(st.bytes, (ROUNDS * sizes.iter().sum::<usize>()) as u64);
    for (i, ((data, wire_len), sent)) in got.iter().zip(frames.iter().cycle()).enumerate() {
        assert_eq!(*wire_len as usize, sent.len(), "frame {i}");
        // The first buffer's bytes: all of a short frame, the first 3,840 of a long one.
        let keep = sent.len().min(4096 - 256);
        assert_eq!(&data[..], &sent[..keep], "frame {i}");
    }
    let acct = account(got.iter().map(|(d, w)| (&d[..], *w)));
    assert_eq!(
        acct.get(&(IpAddr::from(d), TrafficClass::Udp)),
        Some(&((ROUNDS * sizes.len()) as u64))
    );
}
