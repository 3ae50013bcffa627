//! A deterministic long scenario: minutes of benign background to a few hundred monitored
//! addresses, a warm-up longer than the sensor's baseline window, then one attack of each
//! family at known times and targets, and one benign rate rise that must not alert.
//!
//! The capture is streamed to disk one second at a time (little-endian µs pcap, snaplen 80),
//! so memory stays small whatever the duration. What was built is returned as
//! [`ScenarioExpected`] and written beside the capture as `NAME.expected.json`.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::gen::{dns_response, ntp_monlist, Gen, MS, MTU, S, T0, US};
use crate::packet::{tcp_flags::*, Net, Packet, Tcp, Transport};
use crate::writer::{CaptureWriter, Format, LINKTYPE_ETHERNET};

/// Snaplen of the scenario capture: every header up to L4 fits (IPv6 + TCP is 74 bytes).
pub const SCENARIO_SNAPLEN: u32 = 80;

/// Prefixes to monitor for the scenario.
pub const SCENARIO_MONITOR: [&str; 2] = ["203.0.113.0/24", "2001:db8:100::/48"];

/// Knobs of [`write_scenario`].
#[derive(Clone, Debug, PartialEq)]
pub struct ScenarioOptions {
    /// Seed of the RNG.
    pub seed: u64,
    /// Monitored IPv4 hosts with background traffic (203.0.113.1 ..), at most 250.
    pub hosts_v4: u32,
    /// Monitored IPv6 hosts with background traffic (2001:db8:100::1 ..), at most 250.
    pub hosts_v6: u32,
    /// Seconds of background only before the first attack (longer than the baseline window).
    pub warmup_secs: u64,
    /// Seconds between attack onsets.
    pub spacing_secs: u64,
    /// Duration of each attack, seconds.
    pub attack_secs: u64,
    /// Packets per second of each single-vector attack (of each vector for `multi_vector`).
    pub attack_pps: u64,
    /// Seconds of background after the last attack (lets incidents end).
    pub tail_secs: u64,
}

impl Default for ScenarioOptions {
    fn default() -> Self {
        ScenarioOptions {
            seed: 1,
            hosts_v4: 200,
            hosts_v6: 50,
            warmup_secs: 330,
            spacing_secs: 25,
            attack_secs: 5,
            attack_pps: 5000,
            tail_secs: 12,
        }
    }
}

/// One attack of the scenario.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioAttack {
    /// Attack family, as the sensor names it.
    pub family: String,
    /// Attacked address.
    pub target: String,
    /// Timestamp of the first attack frame, ns since the epoch.
    pub onset_ns: u64,
    /// Timestamp of the last attack frame, ns since the epoch.
    pub end_ns: u64,
}

/// The benign rise: one address at several times its usual rate, below every floor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BenignRise {
    /// The address.
    pub target: String,
    /// Start of the rise, ns since the epoch.
    pub start_ns: u64,
    /// End of the rise, ns since the epoch.
    pub end_ns: u64,
    /// Usual packet rate (inbound and outbound together).
    pub normal_pps: u64,
    /// Rate during the rise.
    pub rise_pps: u64,
}

/// What [`write_scenario`] built.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioExpected {
    /// The attacks, in time order.
    pub attacks: Vec<ScenarioAttack>,
    /// The benign rise.
    pub benign_rise: BenignRise,
    /// Prefixes to monitor.
    pub monitor: Vec<String>,
    /// Frames written.
    pub packets: u64,
    /// First and last frame timestamps, ns.
    pub first_ts_ns: u64,
    /// Last frame timestamp, ns.
    pub last_ts_ns: u64,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Kind {
    Syn,
    Ack,
    Udp,
    Icmp,
    Fragment,
    Dns,
    Ntp,
    Memcached,
    Ssdp,
    Multi,
}

/// The attacks in order: family, kind, target.
fn plan() -> Vec<(&'static str, Kind, IpAddr)> {
    let a4 = |d: u8| IpAddr::V4(Ipv4Addr::new(203, 0, 113, d));
    let a6 = |d: u16| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, d));
    vec![
        ("syn_flood", Kind::Syn, a6(0x10)),
        ("ack_flood", Kind::Ack, a4(11)),
        ("udp_flood", Kind::Udp, a4(12)),
        ("icmp_flood", Kind::Icmp, a6(0x11)),
        ("fragment_flood", Kind::Fragment, a4(13)),
        ("dns_amplification", Kind::Dns, a4(14)),
        ("ntp_amplification", Kind::Ntp, a4(15)),
        ("memcached_amplification", Kind::Memcached, a4(16)),
        ("ssdp_amplification", Kind::Ssdp, a4(17)),
        ("multi_vector", Kind::Multi, a4(18)),
    ]
}

struct Host {
    ip: IpAddr,
    pps: f64,
    next_ns: u64,
}

struct Run {
    kind: Kind,
    target: IpAddr,
    /// Scheduled datagram times (already sorted), with the vector for `multi_vector`.
    times: Vec<(u64, u8)>,
    reflectors: Vec<IpAddr>,
    first: u64,
    last: u64,
}

struct Frames {
    buf: Vec<(u64, u32, Vec<u8>)>,
    seq: u32,
}

impl Frames {
    fn push(&mut self, ts: u64, p: &Packet) -> (u64, u64) {
        let mut first = u64::MAX;
        let mut last = 0;
        for (i, f) in p.build(MTU).into_iter().enumerate() {
            let t = (ts + i as u64 * 3 * US) / US * US;
            first = first.min(t);
            last = last.max(t);
            self.buf.push((t, self.seq, f.bytes));
            self.seq += 1;
        }
        (first, last)
    }
}

fn exp_gap(g: &mut Gen, pps: f64) -> u64 {
    let u: f64 = g.rng.gen_range(f64::EPSILON..1.0);
    ((-u.ln() / pps) * S as f64) as u64 + 1
}

fn free_port(g: &mut Gen) -> u16 {
    // Above every well-known reflector port.
    g.rng.gen_range(40000..=60000)
}

fn rand_src(g: &mut Gen, like: IpAddr) -> IpAddr {
    if like.is_ipv4() {
        g.rand_v4()
    } else {
        g.rand_v6()
    }
}

/// One benign frame to or from `h`: TCP ACK (data or pure), UDP (QUIC-like) or ICMP echo.
fn background_packet(g: &mut Gen, h: IpAddr) -> Packet {
    let peer = g.peer(h);
    let inbound = g.rng.gen_bool(0.7);
    let (src, dst) = if inbound { (peer, h) } else { (h, peer) };
    match g.rng.gen_range(0u32..100) {
        0..=54 => {
            let (sp, dp) = if inbound {
                (g.eport(), 443)
            } else {
                (443, g.eport())
            };
            let mut t = Tcp::new(sp, dp, if g.rng.gen_bool(0.3) { PSH | ACK } else { ACK });
            t.seq = g.rng.gen();
            t.ack = g.rng.gen();
            let n = if g.rng.gen_bool(0.6) {
                0
            } else {
                g.rng.gen_range(1u32..1400) as usize
            };
            let payload = g.bytes(n);
            let mut p = g.pkt(src, dst, Transport::Tcp(t), payload);
            if let Net::V4(v) = &mut p.net {
                v.df = true;
            }
            p
        }
        55..=84 => {
            let (sp, dp) = if inbound {
                (443, g.eport())
            } else {
                (g.eport(), 443)
            };
            let n = g.rng.gen_range(30u32..1200) as usize;
            let payload = g.bytes(n);
            g.pkt(
                src,
                dst,
                Transport::Udp {
                    sport: sp,
                    dport: dp,
                },
                payload,
            )
        }
        _ => {
            let ty = match (h.is_ipv4(), g.rng.gen_bool(0.5)) {
                (true, true) => 8,
                (true, false) => 0,
                (false, true) => 128,
                (false, false) => 129,
            };
            let (id, seq) = (g.rng.gen(), g.rng.gen());
            let payload = g.bytes(56);
            g.pkt(src, dst, Transport::echo(ty, id, seq), payload)
        }
    }
}

fn syn_packet(g: &mut Gen, target: IpAddr) -> Packet {
    let src = rand_src(g, target);
    let mut t = Tcp::new(g.rng.gen_range(1024..=65535), 443, SYN);
    t.seq = g.rng.gen();
    t.window = [512, 1024, 8192, 29200, 64240][g.rng.gen_range(0u32..5) as usize];
    g.spoofed(src, target, Transport::Tcp(t), Vec::new())
}

fn icmp_packet(g: &mut Gen, target: IpAddr) -> Packet {
    let src = rand_src(g, target);
    let ty = if target.is_ipv4() { 8 } else { 128 };
    let (id, seq) = (g.rng.gen(), g.rng.gen());
    let payload = g.bytes(56);
    g.spoofed(src, target, Transport::echo(ty, id, seq), payload)
}

fn attack_packet(g: &mut Gen, run: &Run, vector: u8) -> Packet {
    let t = run.target;
    let refl = |g: &mut Gen| run.reflectors[g.pick(run.reflectors.len())];
    match run.kind {
        Kind::Syn => syn_packet(g, t),
        Kind::Ack => {
            let src = rand_src(g, t);
            let flags = if g.rng.gen_bool(0.2) { PSH | ACK } else { ACK };
            let mut tcp = Tcp::new(g.rng.gen_range(1024..=65535), 443, flags);
            tcp.seq = g.rng.gen();
            tcp.ack = g.rng.gen();
            g.spoofed(src, t, Transport::Tcp(tcp), Vec::new())
        }
        Kind::Udp => {
            let src = rand_src(g, t);
            let sport = free_port(g);
            let dport = g.rng.gen_range(1..=65535);
            let n = g.rng.gen_range(0u32..=64) as usize;
            let payload = g.bytes(n);
            g.spoofed(src, t, Transport::Udp { sport, dport }, payload)
        }
        Kind::Icmp => icmp_packet(g, t),
        Kind::Fragment => {
            let src = rand_src(g, t);
            let (sport, dport) = (free_port(g), g.rng.gen_range(1024..=65535));
            let n = g.rng.gen_range(2000u32..=4400) as usize;
            let payload = g.bytes(n);
            g.spoofed(src, t, Transport::Udp { sport, dport }, payload)
        }
        Kind::Dns => {
            let r = refl(g);
            let size = if g.rng.gen_bool(0.4) {
                g.rng.gen_range(500u32..1400) as usize
            } else {
                g.rng.gen_range(2800u32..4000) as usize
            };
            let body = dns_response(g.rng.gen(), "example.org", 255, size);
            let dport = g.rng.gen_range(1024..=65535);
            g.spoofed(r, t, Transport::Udp { sport: 53, dport }, body)
        }
        Kind::Ntp => {
            let r = refl(g);
            ntp_monlist(g, t, r)
        }
        Kind::Memcached => {
            let r = refl(g);
            let req: u16 = g.rng.gen();
            let seq: u16 = g.rng.gen_range(0..60);
            let mut payload = Vec::with_capacity(1400);
            payload.extend_from_slice(&req.to_be_bytes());
            payload.extend_from_slice(&seq.to_be_bytes());
            payload.extend_from_slice(&[0, 60, 0, 0]);
            let rest = 1400 - payload.len();
            let body = g.bytes(rest);
            payload.extend_from_slice(&body);
            let sport = 11211;
            g.spoofed(
                r,
                t,
                Transport::Udp {
                    sport,
                    dport: 11211,
                },
                payload,
            )
        }
        Kind::Ssdp => {
            let r = refl(g);
            let uuid: u64 = g.rng.gen();
            let body = format!(
                "HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=1800\r\nEXT:\r\n\
                 LOCATION: http://{r}:1900/rootDesc.xml\r\nSERVER: Linux UPnP/1.0 miniupnpd/2.0\r\n\
                 ST: upnp:rootdevice\r\nUSN: uuid:{uuid:016x}::upnp:rootdevice\r\n\r\n"
            );
            let dport = g.rng.gen_range(1024..=65535);
            g.spoofed(
                r,
                t,
                Transport::Udp { sport: 1900, dport },
                body.into_bytes(),
            )
        }
        Kind::Multi => match vector {
            0 => syn_packet(g, t),
            1 => {
                let r = refl(g);
                ntp_monlist(g, t, r)
            }
            _ => icmp_packet(g, t),
        },
    }
}

/// Datagram times of `rate` per second over `dur` from `start`, up to 1/4 interval of jitter.
fn schedule(g: &mut Gen, start: u64, dur: u64, rate: u64, vector: u8) -> Vec<(u64, u8)> {
    let n = rate * dur / S;
    let iv = S / rate;
    (0..n)
        .map(|i| (start + i * iv + g.rng.gen_range(0..iv / 4), vector))
        .collect()
}

/// Path of the expectations written beside `pcap`: `NAME.expected.json`.
pub fn expected_path(pcap: &Path) -> PathBuf {
    let stem = pcap
        .file_stem()
        .map_or_else(|| "scenario".into(), |s| s.to_string_lossy().into_owned());
    pcap.with_file_name(format!("{stem}.expected.json"))
}

/// Writes the scenario capture to `path` (and its expectations to [`expected_path`]).
pub fn write_scenario(path: &Path, opts: &ScenarioOptions) -> io::Result<ScenarioExpected> {
    if opts.hosts_v4 == 0 || opts.hosts_v4 > 250 || opts.hosts_v6 > 250 || opts.attack_pps < 8 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "hosts_v4 must be 1..=250, hosts_v6 at most 250, attack_pps at least 8",
        ));
    }
    let mut g = Gen::new(&format!("scenario-{}", opts.seed), US, SCENARIO_SNAPLEN);
    let plan = plan();
    let rise_ip = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 77));
    let (normal_pps, rise_pps) = (10u64, 60u64);
    // Background hosts; every attack target and the rise target are among them.
    let mut hosts: Vec<Host> = Vec::new();
    let mut ips: Vec<IpAddr> = (1..=opts.hosts_v4)
        .map(|d| IpAddr::V4(Ipv4Addr::new(203, 0, 113, d as u8)))
        .collect();
    ips.extend(
        (1..=opts.hosts_v6)
            .map(|d| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, d as u16))),
    );
    for (_, _, t) in &plan {
        if !ips.contains(t) {
            ips.push(*t);
        }
    }
    if !ips.contains(&rise_ip) {
        ips.push(rise_ip);
    }
    for ip in ips {
        let pps = if ip == rise_ip {
            normal_pps as f64
        } else if g.rng.gen_bool(0.02) {
            f64::from(g.rng.gen_range(10u32..=20))
        } else {
            f64::from(g.rng.gen_range(2u32..=3))
        };
        let first = T0 + g.rng.gen_range(0..S / 2);
        hosts.push(Host {
            ip,
            pps,
            next_ns: first,
        });
    }
    // Attack runs.
    let mut runs = Vec::new();
    for (k, (_, kind, target)) in plan.iter().enumerate() {
        let start = T0
            + (opts.warmup_secs + k as u64 * opts.spacing_secs) * S
            + g.rng.gen_range(10 * MS..40 * MS);
        let dur = opts.attack_secs * S;
        let rate = opts.attack_pps;
        let mut times = match kind {
            // Datagrams of 2-4.4 KB: about 2.6 frames each.
            Kind::Fragment => schedule(&mut g, start, dur, rate * 2 / 5, 0),
            // 60 % of the responses are fragmented into 3 frames.
            Kind::Dns => schedule(&mut g, start, dur, rate / 2, 0),
            Kind::Multi => {
                let mut v = Vec::new();
                for vector in 0..3u8 {
                    let off = u64::from(vector) * 137 * US;
                    v.extend(schedule(&mut g, start + off, dur, rate * 2 / 5, vector));
                }
                v.sort_by_key(|x| x.0);
                v
            }
            _ => schedule(&mut g, start, dur, rate, 0),
        };
        times.reverse(); // popped from the back in time order
        let reflectors = (0..300).map(|_| g.rand_v4()).collect();
        runs.push(Run {
            kind: *kind,
            target: *target,
            times,
            reflectors,
            first: u64::MAX,
            last: 0,
        });
    }
    let rise_start = T0 + (opts.warmup_secs + opts.spacing_secs / 2) * S + 500 * MS;
    let rise_end = rise_start + 20 * S;
    let end = T0
        + (opts.warmup_secs + (plan.len() as u64 - 1) * opts.spacing_secs + opts.attack_secs + 1)
            * S
        + opts.tail_secs * S;

    let file = File::create(path)?;
    let mut w = CaptureWriter::new(
        BufWriter::with_capacity(1 << 20, file),
        Format::PCAP_US,
        SCENARIO_SNAPLEN,
        LINKTYPE_ETHERNET,
    )?;
    let mut frames = Frames {
        buf: Vec::new(),
        seq: 0,
    };
    let (mut packets, mut first_ts, mut last_ts) = (0u64, u64::MAX, 0u64);
    let mut sec = T0;
    while sec < end {
        let next = sec + S;
        for h in &mut hosts {
            while h.next_ns < next {
                let p = background_packet(&mut g, h.ip);
                frames.push(h.next_ns, &p);
                let pps = if h.ip == rise_ip && (rise_start..rise_end).contains(&h.next_ns) {
                    rise_pps as f64
                } else {
                    h.pps
                };
                h.next_ns += exp_gap(&mut g, pps);
            }
        }
        for run in &mut runs {
            while let Some(&(ts, vector)) = run.times.last() {
                if ts >= next {
                    break;
                }
                run.times.pop();
                let p = attack_packet(&mut g, run, vector);
                let (f, l) = frames.push(ts, &p);
                run.first = run.first.min(f);
                run.last = run.last.max(l);
            }
        }
        // Fragments of a datagram sent just before `next` may spill over: keep them for later.
        frames.buf.sort_by_key(|x| (x.0, x.1));
        let cut = frames.buf.partition_point(|x| x.0 < next);
        for (ts, _, data) in frames.buf.drain(..cut) {
            w.write(ts, &data, data.len() as u32)?;
            packets += 1;
            first_ts = first_ts.min(ts);
            last_ts = last_ts.max(ts);
        }
        sec = next;
    }
    for (ts, _, data) in frames.buf.drain(..) {
        w.write(ts, &data, data.len() as u32)?;
        packets += 1;
        last_ts = last_ts.max(ts);
    }
    w.finish()?.flush()?;

    let expected = ScenarioExpected {
        attacks: plan
            .iter()
            .zip(&runs)
            .map(|((family, _, target), run)| ScenarioAttack {
                family: (*family).to_string(),
                target: target.to_string(),
                onset_ns: run.first,
                end_ns: run.last,
            })
            .collect(),
        benign_rise: BenignRise {
            target: rise_ip.to_string(),
            start_ns: rise_start,
            end_ns: rise_end,
            normal_pps,
            rise_pps,
        },
        monitor: SCENARIO_MONITOR.iter().map(|s| (*s).to_string()).collect(),
        packets,
        first_ts_ns: first_ts,
        last_ts_ns: last_ts,
    };
    let mut json = serde_json::to_vec_pretty(&expected).map_err(io::Error::other)?;
    json.push(b'\n');
    std::fs::write(expected_path(path), json)?;
    Ok(expected)
}
