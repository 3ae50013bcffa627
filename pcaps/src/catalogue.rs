//! The catalogue of labelled captures and how each one is generated.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::net::IpAddr;
use std::path::Path;

use rand::Rng;

use crate::expected::{tally, Acct, Expected, Meta, Reason, Record};
use crate::gen::{dns_response, ntp_monlist, v4, v6, Gen, MS, S, T0, US};
use crate::packet::{
    self, proto, tcp_flags::*, write_ipv4_header, Class, Eth, Ext, Net, Packet, Tcp, Transport,
    Vlan,
};
use crate::writer::{CaptureWriter, Format, LINKTYPE_ETHERNET};

/// One capture of the catalogue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaptureSpec {
    /// Name, e.g. `syn_flood_v4`.
    pub name: &'static str,
    /// File name of the capture, e.g. `syn_flood_v4.pcap`.
    pub file_name: String,
    /// File name of the expectations, e.g. `syn_flood_v4.expected.json`.
    pub expected_file_name: String,
    /// `benign`, `malformed`, or the attack family.
    pub label: &'static str,
    /// One-line description.
    pub description: &'static str,
    /// File format.
    pub format: Format,
    /// Snaplen of the file: frames longer than this are captured cut (headers always intact).
    pub snaplen: u32,
}

/// A capture generated in memory: its records (sorted by time) and its expectations.
#[derive(Clone, Debug)]
pub struct Generated {
    /// The catalogue entry.
    pub spec: CaptureSpec,
    /// Frames, sorted by time.
    pub records: Vec<Record>,
    /// Expectations computed from the records.
    pub expected: Expected,
}

struct Def {
    name: &'static str,
    label: &'static str,
    description: &'static str,
    format: Format,
    snaplen: u32,
    build: fn(&mut Gen),
}

const FULL: u32 = 65535;

const DEFS: &[Def] = &[
    Def {
        name: "syn_flood_v4",
        label: "syn_flood",
        description: "Spoofed TCP SYN flood at 2.5 kpps for 1.1 s to 203.0.113.10:80 after 2 s of benign background",
        format: Format::PCAP_US,
        snaplen: FULL,
        build: syn_flood_v4,
    },
    Def {
        name: "syn_flood_v6",
        label: "syn_flood",
        description: "Spoofed IPv6 TCP SYN flood at 2 kpps for 1.1 s to [2001:db8:100::10]:443 (pcapng, microseconds)",
        format: Format::PCAPNG_US,
        snaplen: FULL,
        build: syn_flood_v6,
    },
    Def {
        name: "ack_flood",
        label: "ack_flood",
        description: "Spoofed TCP ACK / PSH-ACK flood at 2 kpps for 1.1 s to 203.0.113.10:443",
        format: Format::PCAP_US,
        snaplen: FULL,
        build: ack_flood,
    },
    Def {
        name: "udp_flood",
        label: "udp_flood",
        description: "Spoofed UDP flood to random ports at 2 kpps for 1.1 s to 198.51.100.5",
        format: Format::PCAP_US,
        snaplen: FULL,
        build: udp_flood,
    },
    Def {
        name: "icmp_flood",
        label: "icmp_flood",
        description: "Spoofed ICMP echo-request flood at 2 kpps for 1.1 s to 203.0.113.10 (big-endian pcap)",
        format: Format::PCAP_US_BE,
        snaplen: FULL,
        build: icmp_flood,
    },
    Def {
        name: "fragment_flood",
        label: "fragment_flood",
        description: "Flood of IPv4 fragments (big UDP datagrams to random ports, GRE and protocol 253) to 203.0.113.10, snaplen 96",
        format: Format::PCAP_US,
        snaplen: 96,
        build: fragment_flood,
    },
    Def {
        name: "dns_amplification",
        label: "dns_amplification",
        description: "DNS amplification from 300 reflectors (sport 53, 500-4000 byte responses, big ones IPv4-fragmented) to 203.0.113.10, nanosecond pcap, snaplen 96",
        format: Format::PCAP_NS,
        snaplen: 96,
        build: dns_amplification,
    },
    Def {
        name: "ntp_amplification",
        label: "ntp_amplification",
        description: "NTP monlist amplification (sport 123, 440-byte mode-7 payloads, 468-byte IP datagrams) to 203.0.113.10, snaplen 96",
        format: Format::PCAP_US,
        snaplen: 96,
        build: ntp_amplification,
    },
    Def {
        name: "memcached_amplification",
        label: "memcached_amplification",
        description: "memcached amplification (sport 11211, 1400-byte UDP datagrams) to 198.51.100.7, snaplen 96",
        format: Format::PCAP_US,
        snaplen: 96,
        build: memcached_amplification,
    },
    Def {
        name: "ssdp_amplification",
        label: "ssdp_amplification",
        description: "SSDP amplification (sport 1900, ~300-byte HTTP-over-UDP responses) to 203.0.113.10, snaplen 96",
        format: Format::PCAP_US,
        snaplen: 96,
        build: ssdp_amplification,
    },
    Def {
        name: "multi_vector",
        label: "multi_vector",
        description: "SYN flood + NTP amplification + ICMP flood at 0.8 kpps each, together for 1.1 s, on 203.0.113.10 (nanosecond pcap, snaplen 96)",
        format: Format::PCAP_NS,
        snaplen: 96,
        build: multi_vector,
    },
    Def {
        name: "vlan_qinq_udp_flood",
        label: "udp_flood",
        description: "UDP flood to 203.0.113.20, half 802.1Q (vid 100), half QinQ (802.1ad vid 200 + 802.1Q vid 100); tagged background",
        format: Format::PCAP_US,
        snaplen: FULL,
        build: vlan_qinq_udp_flood,
    },
    Def {
        name: "ipv6_ext_headers",
        label: "fragment_flood",
        description: "IPv6 traffic with hop-by-hop, routing (SRH), destination-options and fragment headers; IPv6 fragment flood to 2001:db8:100::10 (pcapng, nanoseconds, snaplen 128)",
        format: Format::PCAPNG_NS,
        snaplen: 128,
        build: ipv6_ext_headers,
    },
    Def {
        name: "benign_web_mix",
        label: "benign",
        description: "10 s of benign IPv4 traffic: TCP sessions in and out, DNS, ICMP echo, NTP, rejected SYNs, host-to-host",
        format: Format::PCAP_US,
        snaplen: FULL,
        build: benign_web_mix,
    },
    Def {
        name: "benign_v6_mix",
        label: "benign",
        description: "10 s of benign IPv6 traffic: TCP sessions, DNS, ICMPv6 echo, neighbour discovery, MLD with hop-by-hop (pcapng)",
        format: Format::PCAPNG_US,
        snaplen: FULL,
        build: benign_v6_mix,
    },
    Def {
        name: "malformed_mix",
        label: "malformed",
        description: "Mostly valid traffic plus a known number of malformed frames of each parse-error reason, ARP/LLDP, and snaplen-cut frames",
        format: Format::PCAP_US,
        snaplen: FULL,
        build: malformed_mix,
    },
];

fn spec_of(d: &Def) -> CaptureSpec {
    CaptureSpec {
        name: d.name,
        file_name: format!("{}.{}", d.name, d.format.extension()),
        expected_file_name: format!("{}.expected.json", d.name),
        label: d.label,
        description: d.description,
        format: d.format,
        snaplen: d.snaplen,
    }
}

/// Every capture of the catalogue, in a fixed order.
pub fn catalogue() -> Vec<CaptureSpec> {
    DEFS.iter().map(spec_of).collect()
}

/// Generates one capture in memory.
///
/// # Panics
/// If `spec` is not a catalogue entry.
pub fn generate(spec: &CaptureSpec) -> Generated {
    let def = DEFS
        .iter()
        .find(|d| d.name == spec.name)
        .unwrap_or_else(|| panic!("{} is not in the catalogue", spec.name));
    let mut g = Gen::new(def.name, def.format.resolution_ns(), def.snaplen);
    (def.build)(&mut g);
    let (records, attacks) = g.finish();
    let meta = Meta {
        capture: &spec.file_name,
        description: def.description,
        label: def.label,
        format: def.format.name(),
        snaplen: def.snaplen,
    };
    let expected = tally(&meta, &records, &attacks);
    Generated {
        spec: spec.clone(),
        records,
        expected,
    }
}

/// Serializes the capture of `g` into bytes.
pub fn capture_bytes(g: &Generated) -> io::Result<Vec<u8>> {
    let mut w = CaptureWriter::new(Vec::new(), g.spec.format, g.spec.snaplen, LINKTYPE_ETHERNET)?;
    for r in &g.records {
        w.write(r.ts_ns, &r.data, r.orig_len)?;
    }
    w.finish()
}

/// Serializes the expectations of `g` (pretty JSON with a trailing newline).
pub fn expected_bytes(g: &Generated) -> Vec<u8> {
    let mut s = serde_json::to_vec_pretty(&g.expected).unwrap_or_default();
    s.push(b'\n');
    s
}

/// Writes every capture and its `.expected.json` into `dir` (created if missing).
pub fn write_catalogue(dir: &Path) -> io::Result<Vec<Generated>> {
    fs::create_dir_all(dir)?;
    let mut out = Vec::new();
    for spec in catalogue() {
        let g = generate(&spec);
        let mut f = BufWriter::new(File::create(dir.join(&spec.file_name))?);
        f.write_all(&capture_bytes(&g)?)?;
        f.flush()?;
        fs::write(dir.join(&spec.expected_file_name), expected_bytes(&g))?;
        out.push(g);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Hosts and shared scenario pieces.

fn victim_v4() -> IpAddr {
    v4(203, 0, 113, 10)
}

fn victim_v6() -> IpAddr {
    v6("2001:db8:100::10")
}

fn hosts_v4() -> Vec<IpAddr> {
    vec![
        v4(203, 0, 113, 10),
        v4(203, 0, 113, 20),
        v4(203, 0, 113, 30),
        v4(198, 51, 100, 5),
        v4(198, 51, 100, 7),
    ]
}

fn hosts_v6() -> Vec<IpAddr> {
    vec![
        v6("2001:db8:100::10"),
        v6("2001:db8:100::20"),
        v6("2001:db8:100:1::5"),
    ]
}

/// Start of the attack window: 2 s (+ 10-40 ms) of quiet background first.
fn attack_start(g: &mut Gen) -> u64 {
    T0 + 2 * S + g.rng.gen_range(10 * MS..40 * MS)
}

const ATTACK_DUR: u64 = 1100 * MS;
/// Background spans the quiet period, the attack and a little after it.
const BG_END: u64 = T0 + 4 * S;

/// Background + one single-vector flood; `mk(g, target)` makes one attack datagram, which is
/// scheduled `rate` times per second (its fragments follow it 3 µs apart).
fn single_flood(
    g: &mut Gen,
    family: &'static str,
    target: IpAddr,
    rate: u64,
    hosts: &[IpAddr],
    mut mk: impl FnMut(&mut Gen, IpAddr) -> Packet,
) {
    g.background(T0 + 10 * MS, BG_END, hosts, 25);
    let a = g.attack(family, target, &[family]);
    let start = attack_start(g);
    for ts in g.schedule(start, ATTACK_DUR, rate) {
        let p = mk(g, target);
        g.push(ts, &p, Some(a));
    }
}

fn syn_packet(g: &mut Gen, src: IpAddr, target: IpAddr, dport: u16) -> Packet {
    let mut t = Tcp::new(g.rng.gen_range(1024..=65535), dport, SYN);
    t.seq = g.rng.gen();
    t.window = [512, 1024, 8192, 29200, 64240][g.rng.gen_range(0u32..5) as usize];
    g.spoofed(src, target, Transport::Tcp(t), Vec::new())
}

fn icmp_echo_flood_packet(g: &mut Gen, target: IpAddr) -> Packet {
    let src = g.rand_v4();
    let (id, seq) = (g.rng.gen(), g.rng.gen());
    let payload = g.bytes(56);
    g.spoofed(src, target, Transport::echo(8, id, seq), payload)
}

fn reflectors(g: &mut Gen, n: usize) -> Vec<IpAddr> {
    (0..n).map(|_| g.rand_v4()).collect()
}

// ---------------------------------------------------------------------------------------------
// Attacks.

fn syn_flood_v4(g: &mut Gen) {
    single_flood(g, "syn_flood", victim_v4(), 2500, &hosts_v4(), |g, t| {
        let src = g.rand_v4();
        syn_packet(g, src, t, 80)
    });
}

fn syn_flood_v6(g: &mut Gen) {
    let mut hosts = hosts_v6();
    hosts.push(v4(203, 0, 113, 20));
    single_flood(g, "syn_flood", victim_v6(), 2000, &hosts, |g, t| {
        let src = g.rand_v6();
        syn_packet(g, src, t, 443)
    });
}

fn ack_flood(g: &mut Gen) {
    single_flood(g, "ack_flood", victim_v4(), 2000, &hosts_v4(), |g, t| {
        let src = g.rand_v4();
        let flags = if g.rng.gen_bool(0.2) { PSH | ACK } else { ACK };
        let mut tcp = Tcp::new(g.rng.gen_range(1024..=65535), 443, flags);
        tcp.seq = g.rng.gen();
        tcp.ack = g.rng.gen();
        g.spoofed(src, t, Transport::Tcp(tcp), Vec::new())
    });
}

fn random_udp_flood_packet(g: &mut Gen, target: IpAddr) -> Packet {
    let src = g.rand_v4();
    let sport = loop {
        let p = g.rng.gen_range(1024..=65535);
        if p != 1900 && p != 11211 {
            break p;
        }
    };
    let dport = g.rng.gen_range(1..=65535);
    let n = g.rng.gen_range(0u32..=64) as usize;
    let payload = g.bytes(n);
    g.spoofed(src, target, Transport::Udp { sport, dport }, payload)
}

fn udp_flood(g: &mut Gen) {
    single_flood(
        g,
        "udp_flood",
        v4(198, 51, 100, 5),
        2000,
        &hosts_v4(),
        random_udp_flood_packet,
    );
}

fn icmp_flood(g: &mut Gen) {
    single_flood(
        g,
        "icmp_flood",
        victim_v4(),
        2000,
        &hosts_v4(),
        icmp_echo_flood_packet,
    );
}

fn fragment_flood(g: &mut Gen) {
    // ~2.6 fragments per datagram: ~2.1 kpps of fragments.
    single_flood(
        g,
        "fragment_flood",
        victim_v4(),
        800,
        &hosts_v4(),
        |g, t| {
            let src = g.rand_v4();
            if g.rng.gen_bool(0.8) {
                let sport = g.rng.gen_range(1024..=65535);
                let dport = g.rng.gen_range(1024..=65535);
                let n = g.rng.gen_range(2000u32..=4400) as usize;
                let payload = g.bytes(n);
                g.spoofed(src, t, Transport::Udp { sport, dport }, payload)
            } else {
                let proto = if g.rng.gen_bool(0.5) { proto::GRE } else { 253 };
                let n = g.rng.gen_range(1600u32..=2900) as usize;
                let payload = g.bytes(n);
                g.spoofed(src, t, Transport::Raw { proto }, payload)
            }
        },
    );
}

fn dns_amplification(g: &mut Gen) {
    let refl = reflectors(g, 300);
    single_flood(
        g,
        "dns_amplification",
        victim_v4(),
        900,
        &hosts_v4(),
        |g, t| {
            let r = refl[g.pick(refl.len())];
            let size = if g.rng.gen_bool(0.4) {
                g.rng.gen_range(500u32..1400) as usize
            } else {
                g.rng.gen_range(2800u32..4000) as usize
            };
            let body = dns_response(g.rng.gen(), "example.org", 255, size);
            let dport = g.rng.gen_range(1024..=65535);
            g.spoofed(r, t, Transport::Udp { sport: 53, dport }, body)
        },
    );
}

fn ntp_amplification(g: &mut Gen) {
    let refl = reflectors(g, 200);
    single_flood(
        g,
        "ntp_amplification",
        victim_v4(),
        2000,
        &hosts_v4(),
        |g, t| {
            let r = refl[g.pick(refl.len())];
            ntp_monlist(g, t, r)
        },
    );
}

fn memcached_amplification(g: &mut Gen) {
    let refl = reflectors(g, 100);
    single_flood(
        g,
        "memcached_amplification",
        v4(198, 51, 100, 7),
        2000,
        &hosts_v4(),
        |g, t| {
            let r = refl[g.pick(refl.len())];
            // memcached UDP frame header (request id, sequence, total, reserved) + VALUE chunk.
            let req: u16 = g.rng.gen();
            let seq: u16 = g.rng.gen_range(0..60);
            let mut payload = Vec::with_capacity(1400);
            payload.extend_from_slice(&req.to_be_bytes());
            payload.extend_from_slice(&seq.to_be_bytes());
            payload.extend_from_slice(&[0, 60, 0, 0]);
            if seq == 0 {
                payload.extend_from_slice(b"VALUE a 0 1000000\r\n");
            }
            let n = if seq == 59 {
                g.rng.gen_range(200u32..1400) as usize
            } else {
                1400
            };
            let rest = n - payload.len();
            let body = g.bytes(rest);
            payload.extend_from_slice(&body);
            g.spoofed(
                r,
                t,
                Transport::Udp {
                    sport: 11211,
                    dport: 11211,
                },
                payload,
            )
        },
    );
}

fn ssdp_amplification(g: &mut Gen) {
    let refl = reflectors(g, 250);
    single_flood(
        g,
        "ssdp_amplification",
        victim_v4(),
        2000,
        &hosts_v4(),
        |g, t| {
            let r = refl[g.pick(refl.len())];
            let uuid: u64 = g.rng.gen();
            let st = [
                "upnp:rootdevice",
                "urn:schemas-upnp-org:device:InternetGatewayDevice:1",
                "urn:schemas-upnp-org:service:WANIPConnection:1",
            ][g.rng.gen_range(0u32..3) as usize];
            let body = format!(
                "HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=1800\r\nDATE: Thu, 01 Jan 2026 00:00:03 GMT\r\n\
                 EXT:\r\nLOCATION: http://{r}:1900/rootDesc.xml\r\nSERVER: Linux/3.14 UPnP/1.0 miniupnpd/2.0\r\n\
                 ST: {st}\r\nUSN: uuid:{uuid:016x}-0000-1000-8000-000000000000::{st}\r\n\r\n"
            );
            let dport = g.rng.gen_range(1024..=65535);
            g.spoofed(
                r,
                t,
                Transport::Udp { sport: 1900, dport },
                body.into_bytes(),
            )
        },
    );
}

fn multi_vector(g: &mut Gen) {
    let target = victim_v4();
    g.background(T0 + 10 * MS, BG_END, &hosts_v4(), 20);
    let a = g.attack(
        "multi_vector",
        target,
        &["syn_flood", "ntp_amplification", "icmp_flood"],
    );
    let refl = reflectors(g, 150);
    let start = attack_start(g);
    for vector in 0..3 {
        let offset = vector * 137 * US;
        for ts in g.schedule(start + offset, ATTACK_DUR, 800) {
            let p = match vector {
                0 => {
                    let src = g.rand_v4();
                    syn_packet(g, src, target, 443)
                }
                1 => {
                    let r = refl[g.pick(refl.len())];
                    ntp_monlist(g, target, r)
                }
                _ => icmp_echo_flood_packet(g, target),
            };
            g.push(ts, &p, Some(a));
        }
    }
}

fn vlan_qinq_udp_flood(g: &mut Gen) {
    let target = v4(203, 0, 113, 20);
    g.vlans = vec![Vlan::dot1q(100)];
    g.background(T0 + 10 * MS, BG_END, &hosts_v4()[..3], 20);
    g.vlans = vec![Vlan::dot1q(300)];
    g.background(T0 + 10 * MS, BG_END, &hosts_v4()[3..], 12);
    g.vlans = vec![Vlan::dot1q(100)];
    let a = g.attack("udp_flood", target, &["udp_flood"]);
    let start = attack_start(g);
    for (i, ts) in g.schedule(start, ATTACK_DUR, 2000).into_iter().enumerate() {
        let mut p = random_udp_flood_packet(g, target);
        p.eth.vlans = if i % 2 == 0 {
            vec![Vlan::dot1q(100)]
        } else {
            vec![Vlan::qinq(200), Vlan::dot1q(100)]
        };
        g.push(ts, &p, Some(a));
    }
}

fn random_exts(g: &mut Gen) -> Vec<Ext> {
    match g.rng.gen_range(0..5) {
        0 => Vec::new(),
        1 => vec![Ext::hop_by_hop_router_alert()],
        2 => vec![Ext::dest_opts(1)],
        3 => vec![Ext::hop_by_hop_router_alert(), Ext::dest_opts(2)],
        _ => vec![Ext::srh(&[
            std::net::Ipv6Addr::new(0x2001, 0xdb8, 0xf00, 0, 0, 0, 0, 0xa),
            std::net::Ipv6Addr::new(0x2001, 0xdb8, 0xf00, 0, 0, 0, 0, 0xb),
        ])],
    }
}

fn with_exts(p: &mut Packet, ext: Vec<Ext>) {
    if let Net::V6(h) = &mut p.net {
        h.ext = ext;
    }
}

fn ipv6_ext_headers(g: &mut Gen) {
    let hosts = hosts_v6();
    // Benign flows, a fraction of them re-sent with extension headers.
    g.background(T0 + 10 * MS, BG_END, &hosts, 20);
    for _ in 0..60 {
        let t = g.rng.gen_range(T0 + 10 * MS..BG_END);
        let h = hosts[g.pick(hosts.len())];
        let peer = g.peer(h);
        let ext = random_exts(g);
        let (src, dst) = if g.rng.gen_bool(0.5) {
            (peer, h)
        } else {
            (h, peer)
        };
        let mut p = match g.rng.gen_range(0..4) {
            0 => {
                let mut t = Tcp::new(g.eport(), 443, ACK | PSH);
                t.seq = g.rng.gen();
                t.ack = g.rng.gen();
                let n = g.rng.gen_range(0u32..900) as usize;
                let payload = g.bytes(n);
                g.pkt(src, dst, Transport::Tcp(t), payload)
            }
            1 => {
                let sport = g.eport();
                let n = g.rng.gen_range(20u32..500) as usize;
                let payload = g.bytes(n);
                g.pkt(src, dst, Transport::Udp { sport, dport: 4500 }, payload)
            }
            2 => {
                let payload = g.bytes(56);
                g.pkt(src, dst, Transport::echo(128, 1, 1), payload)
            }
            _ => {
                // Big DNS response over IPv6: fragmented with a fragment extension header.
                let size = g.rng.gen_range(1500u32..3000) as usize;
                let body = dns_response(g.rng.gen(), "big.example", 255, size);
                let res = Gen::resolver(h);
                let dport = g.eport();
                g.pkt(res, h, Transport::Udp { sport: 53, dport }, body)
            }
        };
        with_exts(&mut p, ext);
        g.push(t, &p, None);
    }
    // MLD reports from monitored hosts to ff02::16 with a hop-by-hop router alert.
    for h in &hosts {
        let t = g.rng.gen_range(T0..T0 + 500 * MS);
        // MLDv2 report: one record (change to exclude) for the solicited-node group.
        let mut body = vec![4, 0, 0, 0];
        body.extend_from_slice(&[
            0xff,
            0x02,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            1,
            0xff,
            0,
            0,
            h_tail(*h),
        ]);
        let mut p = g.pkt(
            *h,
            v6("ff02::16"),
            Transport::Icmp {
                ty: 143,
                code: 0,
                rest: [0, 0, 0, 1],
            },
            body,
        );
        with_exts(&mut p, vec![Ext::hop_by_hop_router_alert()]);
        if let Net::V6(n) = &mut p.net {
            n.hop_limit = 1;
        }
        g.push(t, &p, None);
    }
    // Attack: fragmented UDP datagrams, some with extension headers before the fragment header.
    let target = victim_v6();
    let a = g.attack("fragment_flood", target, &["fragment_flood"]);
    let start = attack_start(g);
    for ts in g.schedule(start, ATTACK_DUR, 800) {
        let src = g.rand_v6();
        let ext = match g.rng.gen_range(0..3) {
            0 => Vec::new(),
            1 => vec![Ext::hop_by_hop_router_alert()],
            _ => vec![Ext::dest_opts(1)],
        };
        let (sport, dport) = (g.rng.gen_range(1024..=65535), g.rng.gen_range(1..=65535));
        let n = g.rng.gen_range(1500u32..=2800) as usize;
        let payload = g.bytes(n);
        let mut p = g.spoofed(src, target, Transport::Udp { sport, dport }, payload);
        with_exts(&mut p, ext);
        g.push(ts, &p, Some(a));
    }
}

fn h_tail(ip: IpAddr) -> u8 {
    match ip {
        IpAddr::V6(a) => a.octets()[15],
        IpAddr::V4(a) => a.octets()[3],
    }
}

// ---------------------------------------------------------------------------------------------
// Benign.

fn benign_web_mix(g: &mut Gen) {
    g.background(T0 + 10 * MS, T0 + 10 * S, &hosts_v4(), 110);
}

fn benign_v6_mix(g: &mut Gen) {
    let hosts = hosts_v6();
    g.background(T0 + 10 * MS, T0 + 10 * S, &hosts, 90);
    // Neighbour solicitation / advertisement between hosts and the router.
    let router = v6("2001:db8:100::1");
    for _ in 0..12 {
        let t = g.rng.gen_range(T0..T0 + 10 * S);
        let h = hosts[g.pick(hosts.len())];
        let mut body = Vec::new();
        if let IpAddr::V6(r) = router {
            body.extend_from_slice(&r.octets());
        }
        let mut p = g.pkt(
            h,
            router,
            Transport::Icmp {
                ty: 135,
                code: 0,
                rest: [0; 4],
            },
            body,
        );
        if let Net::V6(n) = &mut p.net {
            n.hop_limit = 255;
        }
        g.push(t, &p, None);
        let mut rest = [0u8; 4];
        rest[0] = 0x60; // solicited + override
        let mut body = Vec::new();
        if let IpAddr::V6(r) = router {
            body.extend_from_slice(&r.octets());
        }
        let mut p = g.pkt(
            router,
            h,
            Transport::Icmp {
                ty: 136,
                code: 0,
                rest,
            },
            body,
        );
        if let Net::V6(n) = &mut p.net {
            n.hop_limit = 255;
        }
        g.push(t + 200 * US, &p, None);
    }
}

// ---------------------------------------------------------------------------------------------
// Malformed.

/// Where IP-level errors point: monitored addresses that see no other traffic, so a sensor that
/// wrongly accounts broken IP headers shows them in its per-IP results.
fn error_sink_v4() -> IpAddr {
    v4(203, 0, 113, 250)
}

fn error_sink_v6() -> IpAddr {
    v6("2001:db8:100::250")
}

/// Bytes of a valid, unpadded frame `p` (single fragment).
fn raw_frame(p: &Packet) -> Vec<u8> {
    let f = p.build(usize::MAX);
    let mut b = f.into_iter().next().map(|f| f.bytes).unwrap_or_default();
    // Strip Ethernet padding: recompute the true length from the IP header.
    let l2 = p.eth.len();
    let ip_len = match p.net {
        Net::V4(_) => usize::from(u16::from_be_bytes([b[l2 + 2], b[l2 + 3]])),
        Net::V6(_) => 40 + usize::from(u16::from_be_bytes([b[l2 + 4], b[l2 + 5]])),
    };
    b.truncate(l2 + ip_len);
    b
}

fn set_u16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

fn refresh_ipv4_checksum(b: &mut [u8], l2: usize, hlen: usize) {
    b[l2 + 10] = 0;
    b[l2 + 11] = 0;
    let end = (l2 + hlen.max(20)).min(b.len());
    let c = packet::checksum(&b[l2..end]);
    set_u16(b, l2 + 10, c);
}

fn malformed_mix(g: &mut Gen) {
    let mut hosts = hosts_v4();
    hosts.extend(hosts_v6());
    g.background(T0 + 10 * MS, T0 + 5 * S, &hosts, 60);
    for i in 0..4u8 {
        let t = g.rng.gen_range(T0..T0 + 5 * S);
        let h = hosts[usize::from(i)];
        let peer = g.peer(h);
        g.ping(t, peer, h);
    }

    let outside4 = v4(192, 0, 2, 66);
    let outside6 = v6("2001:db8:f00::66");
    let sink4 = error_sink_v4();
    let sink6 = error_sink_v6();
    let l4_v4 = v4(203, 0, 113, 30);
    let l4_v6 = v6("2001:db8:100::20");

    let mut frames: Vec<(Vec<u8>, u32, Acct)> = Vec::new();
    let mut push = |data: Vec<u8>, orig: Option<u32>, acct: Acct| {
        let o = orig.unwrap_or(data.len() as u32);
        frames.push((data, o, acct));
    };

    let syn4 = |g: &mut Gen, dst: IpAddr| -> Packet {
        let mut t = Tcp::new(40000, 80, SYN);
        t.seq = 1;
        g.pkt(outside4, dst, Transport::Tcp(t), Vec::new())
    };
    let syn6 = |g: &mut Gen, dst: IpAddr| -> Packet {
        let mut t = Tcp::new(40000, 80, SYN);
        t.seq = 1;
        g.pkt(outside6, dst, Transport::Tcp(t), Vec::new())
    };

    // truncated_link: fewer than 14 bytes.
    let base = raw_frame(&syn4(g, sink4));
    for n in [6usize, 10, 13] {
        push(base[..n].to_vec(), None, Acct::Error(Reason::TruncatedLink));
    }

    // truncated_vlan: the 802.1Q tag (TCI + inner ethertype) or an inner QinQ tag cut short.
    let mut tagged = syn4(g, sink4);
    tagged.eth.vlans = vec![Vlan::dot1q(100)];
    let tagged = raw_frame(&tagged);
    for n in [15usize, 16, 17] {
        push(
            tagged[..n].to_vec(),
            None,
            Acct::Error(Reason::TruncatedVlan),
        );
    }
    let mut qinq = syn4(g, sink4);
    qinq.eth.vlans = vec![Vlan::qinq(200), Vlan::dot1q(100)];
    let qinq = raw_frame(&qinq);
    push(
        qinq[..20].to_vec(),
        None,
        Acct::Error(Reason::TruncatedVlan),
    );

    // truncated_ipv4: shorter than 20 bytes, or than the IHL, after the link header.
    push(
        base[..14 + 12].to_vec(),
        None,
        Acct::Error(Reason::TruncatedIpv4),
    );
    push(
        base[..14 + 19].to_vec(),
        None,
        Acct::Error(Reason::TruncatedIpv4),
    );
    push(
        tagged[..18 + 10].to_vec(),
        None,
        Acct::Error(Reason::TruncatedIpv4),
    );
    {
        // IHL 8 (12 bytes of options), cut by the snaplen inside the options.
        let mut p = syn4(g, sink4);
        if let Net::V4(h) = &mut p.net {
            h.options = vec![1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0]; // NOPs + EOL
        }
        let full = raw_frame(&p);
        let orig = full.len() as u32;
        push(
            full[..14 + 24].to_vec(),
            Some(orig),
            Acct::Error(Reason::TruncatedIpv4),
        );
    }

    // bad_ipv4_header: version != 4, or IHL < 5 (complete bytes, sane total length).
    for (ver, ihl) in [(5u8, 5u8), (4, 3), (4, 0)] {
        let mut b = base.clone();
        b[14] = (ver << 4) | ihl;
        refresh_ipv4_checksum(&mut b, 14, 20);
        push(b, None, Acct::Error(Reason::BadIpv4Header));
    }

    // bad_ipv4_length: total length below the header length (complete bytes). Not 0, which
    // Linux TSO captures show for valid packets and a parser may treat specially.
    for total in [8u16, 12, 19] {
        let mut b = base.clone();
        set_u16(&mut b, 16, total);
        refresh_ipv4_checksum(&mut b, 14, 20);
        push(b, None, Acct::Error(Reason::BadIpv4Length));
    }
    {
        let mut p = syn4(g, sink4);
        if let Net::V4(h) = &mut p.net {
            h.options = vec![1, 1, 1, 0]; // IHL 6
        }
        let mut b = raw_frame(&p);
        set_u16(&mut b, 16, 22);
        refresh_ipv4_checksum(&mut b, 14, 24);
        push(b, None, Acct::Error(Reason::BadIpv4Length));
    }

    // truncated_ipv6: fewer than 40 bytes after the link header.
    let base6 = raw_frame(&syn6(g, sink6));
    for n in [1usize, 20, 39] {
        push(
            base6[..14 + n].to_vec(),
            None,
            Acct::Error(Reason::TruncatedIpv6),
        );
    }

    // truncated_ipv6_ext: an extension header runs past the captured bytes (payload length
    // agrees with what is captured, so it is truncated either way). The fixed IPv6 header is
    // valid, so the frame is still accounted to its addresses, as class `other` (no L4 header
    // was reached).
    {
        let ip6 = |g: &mut Gen, next: u8, tail: &[u8]| -> (Vec<u8>, Acct) {
            let p = syn6(g, sink6);
            let acct = Acct::L4Error {
                src: p.net.src(),
                dst: p.net.dst(),
                class: Class::Other,
                reason: Reason::TruncatedIpv6Ext,
            };
            let mut b = raw_frame(&p);
            b.truncate(14 + 40);
            b[14 + 6] = next;
            set_u16(&mut b, 14 + 4, tail.len() as u16);
            b.extend_from_slice(tail);
            (b, acct)
        };
        let (b, a) = ip6(g, proto::HOPOPT, &[proto::TCP, 0, 1, 0]);
        push(b, None, a);
        let mut hbh = vec![proto::TCP, 2, 1, 20];
        hbh.resize(16, 0);
        let (b, a) = ip6(g, proto::HOPOPT, &hbh);
        push(b, None, a);
        let mut two = vec![proto::ROUTING, 0, 1, 4, 0, 0, 0, 0];
        two.extend_from_slice(&[proto::TCP, 2, 4, 0, 0, 0]);
        let (b, a) = ip6(g, proto::HOPOPT, &two);
        push(b, None, a);
        let (b, a) = ip6(g, proto::FRAGMENT, &[proto::UDP, 0, 0, 1]);
        push(b, None, a);
    }

    // truncated_l4: IP valid (and accounted), transport header cut short. The IP length agrees
    // with the captured bytes, except for the snaplen-cut one.
    {
        let l4err = |src, dst, class| Acct::L4Error {
            src,
            dst,
            class,
            reason: Reason::TruncatedL4,
        };
        let v4_with = |g: &mut Gen, proto: u8, l4: &[u8]| -> Vec<u8> {
            let eth = g.eth(outside4, l4_v4);
            let net = g.net(outside4, l4_v4, 64);
            let mut b = Vec::new();
            eth.write(packet::ETHERTYPE_IPV4, &mut b);
            if let Net::V4(h) = net {
                write_ipv4_header(&h, proto, (20 + l4.len()) as u16, false, 0, &mut b);
            }
            b.extend_from_slice(l4);
            b
        };
        let tcp10 = [0x9c, 0x40, 0x00, 0x50, 0, 0, 0, 1, 0, 0];
        let b = v4_with(g, proto::TCP, &tcp10);
        push(b, None, l4err(outside4, l4_v4, Class::TcpOther));
        let b = v4_with(g, proto::UDP, &[0x9c, 0x40, 0x00, 0x35]);
        push(b, None, l4err(outside4, l4_v4, Class::Udp));
        let b = v4_with(g, proto::ICMP, &[8, 0]);
        push(b, None, l4err(outside4, l4_v4, Class::Icmp));
        // Snaplen cut through the TCP header of a full-size segment.
        let mut t = Tcp::new(443, 40001, ACK);
        t.seq = 7;
        t.ack = 9;
        let payload = g.bytes(1460);
        let mut p = g.pkt(outside4, l4_v4, Transport::Tcp(t), payload);
        if let Net::V4(h) = &mut p.net {
            h.df = true;
        }
        let full = raw_frame(&p);
        let orig = full.len() as u32;
        push(
            full[..14 + 20 + 16].to_vec(),
            Some(orig),
            l4err(outside4, l4_v4, Class::TcpOther),
        );
        // IPv6 TCP with 12 bytes of header.
        let p = g.pkt(
            outside6,
            l4_v6,
            Transport::Tcp(Tcp::new(40000, 22, SYN)),
            Vec::new(),
        );
        let mut b = raw_frame(&p);
        b.truncate(14 + 40 + 12);
        set_u16(&mut b, 14 + 4, 12);
        push(b, None, l4err(outside6, l4_v6, Class::TcpOther));
        // IPv6 UDP after a complete destination-options header, 6 bytes of UDP header.
        let mut p = g.pkt(
            outside6,
            l4_v6,
            Transport::Udp {
                sport: 5353,
                dport: 5353,
            },
            Vec::new(),
        );
        with_exts(&mut p, vec![Ext::dest_opts(1)]);
        let mut b = raw_frame(&p);
        b.truncate(14 + 40 + 8 + 6);
        set_u16(&mut b, 14 + 4, 14);
        push(b, None, l4err(outside6, l4_v6, Class::Udp));
    }

    // bad_tcp_header: complete 20-byte TCP header with data offset < 5. Flags chosen so the class
    // is tcp_other whether or not a parser reads them.
    let bad_offsets = [
        (4u8, 0u8, false),
        (0, FIN, false),
        (2, FIN | PSH | URG, false),
        (3, 0, true),
    ];
    for (off, flags, is_v6) in bad_offsets {
        let (src, dst) = if is_v6 {
            (outside6, l4_v6)
        } else {
            (outside4, l4_v4)
        };
        let mut t = Tcp::new(40002, 8080, flags);
        t.seq = 3;
        let p = g.pkt(src, dst, Transport::Tcp(t), Vec::new());
        let mut b = raw_frame(&p);
        let at = b.len() - 20;
        b[at + 12] = off << 4;
        push(
            b,
            None,
            Acct::L4Error {
                src,
                dst,
                class: Class::TcpOther,
                reason: Reason::BadTcpHeader,
            },
        );
    }

    // Non-IP: ARP requests and replies (one VLAN-tagged), LLDP.
    let hv4 = [
        v4(203, 0, 113, 10),
        v4(203, 0, 113, 20),
        v4(198, 51, 100, 5),
    ];
    let gw = std::net::Ipv4Addr::new(203, 0, 113, 1);
    for (i, h) in hv4.iter().enumerate() {
        if let IpAddr::V4(a) = h {
            let eth_req = Eth::new(crate::gen::mac_of(*h), [0xff; 6]);
            push(packet::arp(&eth_req, false, *a, gw), None, Acct::NonIp);
            let eth_rep = Eth::new(crate::gen::ROUTER_MAC, crate::gen::mac_of(*h));
            let mut f = packet::arp(&eth_rep, true, gw, *a);
            if i == 2 {
                let tagged = eth_rep.clone().with_vlans(&[Vlan::dot1q(300)]);
                f = packet::arp(&tagged, true, gw, *a);
            }
            push(f, None, Acct::NonIp);
        }
    }
    push(packet::lldp(crate::gen::ROUTER_MAC), None, Acct::NonIp);
    push(packet::lldp([0x02, 0, 0x5e, 0, 0, 2]), None, Acct::NonIp);

    // Snaplen-cut frames with every header intact: valid, accounted normally.
    {
        let ip = |src, dst, class| Acct::Ip { src, dst, class };
        let cut = |b: Vec<u8>, n: usize| -> (Vec<u8>, u32) {
            let orig = b.len() as u32;
            (b[..n].to_vec(), orig)
        };
        let h = v4(203, 0, 113, 10);
        let mut t = Tcp::new(443, 50000, ACK);
        t.seq = 1000;
        t.ack = 2000;
        let payload = g.bytes(1460);
        let p = g.pkt(outside4, h, Transport::Tcp(t), payload);
        let (b, o) = cut(raw_frame(&p), 96);
        push(b, Some(o), ip(outside4, h, Class::Ack));

        let body = dns_response(9, "www.example.com", 1, 700);
        let p = g.pkt(
            Gen::resolver(h),
            h,
            Transport::Udp {
                sport: 53,
                dport: 40053,
            },
            body,
        );
        let (b, o) = cut(raw_frame(&p), 64);
        push(b, Some(o), ip(Gen::resolver(h), h, Class::Udp));

        let h6 = v6("2001:db8:100::10");
        let mut t = Tcp::new(50001, 443, PSH | ACK);
        t.seq = 5;
        t.ack = 6;
        let payload = g.bytes(1220);
        let p = g.pkt(h6, outside6, Transport::Tcp(t), payload);
        let (b, o) = cut(raw_frame(&p), 80);
        push(b, Some(o), ip(h6, outside6, Class::Ack));

        let h2 = v4(198, 51, 100, 7);
        let payload = g.bytes(958);
        let mut p = g.pkt(
            outside4,
            h2,
            Transport::Udp {
                sport: 4000,
                dport: 4001,
            },
            payload,
        );
        p.eth.vlans = vec![Vlan::dot1q(300)];
        let (b, o) = cut(raw_frame(&p), 60);
        push(b, Some(o), ip(outside4, h2, Class::Udp));

        // A fragmented datagram: first fragment cut after its UDP header, later after the IP
        // header.
        let payload = g.bytes(2500);
        let p = g.pkt(
            outside4,
            h,
            Transport::Udp {
                sport: 7000,
                dport: 7001,
            },
            payload,
        );
        let fr = p.build(crate::gen::MTU);
        let (b, o) = cut(fr[0].bytes.clone(), 48);
        push(b, Some(o), ip(outside4, h, Class::Fragment));
        let (b, o) = cut(fr[1].bytes.clone(), 40);
        push(b, Some(o), ip(outside4, h, Class::Fragment));
    }

    for (data, orig, acct) in frames {
        let t = g.rng.gen_range(T0 + 200 * MS..T0 + 4800 * MS);
        g.push_raw(t, data, orig, acct);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_names_are_unique() {
        let c = catalogue();
        let mut names: Vec<_> = c.iter().map(|s| s.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), c.len());
    }

    #[test]
    fn generation_is_deterministic() {
        let spec = &catalogue()[0];
        let a = generate(spec);
        let b = generate(spec);
        assert_eq!(a.records, b.records);
        assert_eq!(a.expected, b.expected);
    }
}
