//! Large benchmark captures, streamed to disk without per-packet allocation.
//!
//! A handful of template frames (every accounting class, inbound and outbound) are built once
//! with the packet builder; each output frame copies one into a scratch buffer, patches its
//! addresses and ports, recomputes the IPv4 header checksum and is written out. Destinations
//! (inbound) and sources (outbound) are monitored IPs `10.0.0.1 ..= 10.0.0.M` (monitor
//! [`BIG_MONITOR`]); the other side is random in 198.18.0.0/15 (RFC 2544 benchmarking). About
//! half the packets go to the hottest 1 % of IPs. TCP/UDP checksums are not updated after
//! patching (parsers do not verify them).

use std::io::{self, Write};
use std::net::Ipv4Addr;

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::gen::{Gen, S, T0};
use crate::packet::{proto, tcp_flags::*, Class, Packet, Tcp, Transport};
use crate::writer::{CaptureWriter, Format, LINKTYPE_ETHERNET};

/// The monitor prefix to configure when replaying a big capture.
pub const BIG_MONITOR: &str = "10.0.0.0/8";

/// Largest `--ips` value (10.0.0.1 ..= 10.255.255.254).
pub const BIG_MAX_IPS: u32 = (1 << 24) - 2;

/// Parameters of a big capture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BigOptions {
    /// Frames to write.
    pub packets: u64,
    /// Monitored IPs to spread them over (1 ..= [`BIG_MAX_IPS`]).
    pub ips: u32,
    /// Virtual packet rate that spaces the timestamps.
    pub pps: u64,
    /// RNG seed.
    pub seed: u64,
}

impl Default for BigOptions {
    fn default() -> Self {
        BigOptions {
            packets: 10_000_000,
            ips: 100_000,
            pps: 1_000_000,
            seed: 1,
        }
    }
}

/// What a big capture contains.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BigSummary {
    /// Frames written.
    pub packets: u64,
    /// Sum of frame lengths.
    pub bytes: u64,
    /// Packets by class, indexed like [`Class::ALL`].
    pub classes: [u64; 9],
    /// Inbound packets (monitored destination).
    pub inbound: u64,
    /// Outbound packets (monitored source).
    pub outbound: u64,
}

struct Template {
    bytes: Vec<u8>,
    class: Class,
    inbound: bool,
    /// Offset of the L4 source port to randomize, if any.
    port_at: Option<usize>,
}

fn templates() -> Vec<(Template, u32)> {
    let mut g = Gen::new("big", 1, u32::MAX);
    let out = std::net::IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1));
    let mon = std::net::IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    let mut list = Vec::new();
    let mut add = |p: Packet, inbound: bool, weight: u32| {
        let has_ports = matches!(p.l4, Transport::Tcp(_) | Transport::Udp { .. });
        for (i, f) in p.build(576).into_iter().enumerate() {
            let port_at = (has_ports && i == 0).then_some(34);
            let t = Template {
                bytes: f.bytes,
                class: f.class,
                inbound,
                port_at,
            };
            list.push((t, weight));
        }
    };
    let tcp = |flags: u8| {
        let mut t = Tcp::new(40000, 443, flags);
        t.seq = 12345;
        t.ack = 67890;
        Transport::Tcp(t)
    };
    let p = g.pkt(out, mon, tcp(SYN), Vec::new());
    add(p, true, 20);
    let p = g.pkt(mon, out, tcp(SYN | ACK), Vec::new());
    add(p, false, 5);
    let p = g.pkt(out, mon, tcp(ACK), Vec::new());
    add(p, true, 15);
    let payload = g.bytes(200);
    let p = g.pkt(mon, out, tcp(PSH | ACK), payload);
    add(p, false, 10);
    let p = g.pkt(out, mon, tcp(RST | ACK), Vec::new());
    add(p, true, 5);
    let p = g.pkt(out, mon, tcp(FIN | ACK), Vec::new());
    add(p, true, 5);
    let payload = g.bytes(64);
    let p = g.pkt(
        out,
        mon,
        Transport::Udp {
            sport: 5000,
            dport: 53,
        },
        payload,
    );
    add(p, true, 15);
    let payload = g.bytes(480);
    let p = g.pkt(
        out,
        mon,
        Transport::Udp {
            sport: 123,
            dport: 40000,
        },
        payload,
    );
    add(p, true, 5);
    let payload = g.bytes(56);
    let p = g.pkt(out, mon, Transport::echo(8, 1, 1), payload);
    add(p, true, 10);
    // A 700-byte datagram at MTU 576: a first and a later fragment.
    let payload = g.bytes(700);
    let p = g.pkt(
        out,
        mon,
        Transport::Udp {
            sport: 53,
            dport: 40000,
        },
        payload,
    );
    add(p, true, 3);
    let payload = g.bytes(40);
    let p = g.pkt(out, mon, Transport::Raw { proto: proto::GRE }, payload);
    add(p, true, 2);
    list
}

/// Writes a big little-endian microsecond pcap to `w`.
pub fn write_big<W: Write>(w: W, opts: &BigOptions) -> io::Result<BigSummary> {
    if opts.ips == 0 || opts.ips > BIG_MAX_IPS || opts.pps == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("--ips must be 1..={BIG_MAX_IPS} and --pps > 0"),
        ));
    }
    let templates = templates();
    // 256-entry weighted lookup table.
    let total: u32 = templates.iter().map(|t| t.1).sum();
    let mut table = [0u8; 256];
    let mut acc = 0u32;
    let mut k = 0usize;
    for (i, (_, w)) in templates.iter().enumerate() {
        acc += w;
        let upto = (acc * 256 / total) as usize;
        while k < upto.min(256) {
            table[k] = i as u8;
            k += 1;
        }
    }
    for slot in table.iter_mut().skip(k) {
        *slot = (templates.len() - 1) as u8;
    }

    let mut writer = CaptureWriter::new(w, Format::PCAP_US, 65535, LINKTYPE_ETHERNET)?;
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let mut scratch = [0u8; 2048];
    let mut sum = BigSummary::default();
    let hot = (opts.ips / 100).max(1);
    let base = u32::from(Ipv4Addr::new(10, 0, 0, 1));
    let bench = u32::from(Ipv4Addr::new(198, 18, 0, 0));
    for i in 0..opts.packets {
        let r1 = rng.next_u64();
        let r2 = rng.next_u64();
        let (t, _) = &templates[usize::from(table[(r1 & 0xff) as usize])];
        let n = t.bytes.len();
        let buf = &mut scratch[..n];
        buf.copy_from_slice(&t.bytes);
        let idx = if r1 >> 8 & 1 == 0 {
            (r2 as u32) % hot
        } else {
            (r2 as u32) % opts.ips
        };
        let monitored = (base + idx).to_be_bytes();
        let other = (bench | ((r2 >> 32) as u32 & 0x1_ffff)).to_be_bytes();
        let (src, dst) = if t.inbound {
            (other, monitored)
        } else {
            (monitored, other)
        };
        buf[26..30].copy_from_slice(&src);
        buf[30..34].copy_from_slice(&dst);
        if let Some(at) = t.port_at {
            let port = 1024 + ((r1 >> 16) as u16 % 64000);
            buf[at..at + 2].copy_from_slice(&port.to_be_bytes());
        }
        buf[24] = 0;
        buf[25] = 0;
        let c = crate::packet::checksum(&buf[14..34]);
        buf[24..26].copy_from_slice(&c.to_be_bytes());
        let ts = T0 + i * S / opts.pps;
        writer.write(ts, buf, n as u32)?;
        sum.packets += 1;
        sum.bytes += n as u64;
        sum.classes[t.class as usize] += 1;
        if t.inbound {
            sum.inbound += 1;
        } else {
            sum.outbound += 1;
        }
    }
    writer.finish()?;
    Ok(sum)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn big_capture_is_well_formed() {
        let opts = BigOptions {
            packets: 5000,
            ips: 1000,
            ..BigOptions::default()
        };
        let mut out = Vec::new();
        let sum = write_big(&mut out, &opts).unwrap();
        assert_eq!(sum.packets, 5000);
        assert_eq!(sum.classes.iter().sum::<u64>(), 5000);
        assert!(sum.classes.iter().all(|&c| c > 0), "{:?}", sum.classes);
        assert_eq!(out.len() as u64, 24 + 16 * 5000 + sum.bytes);
        // Walk the records: every IPv4 header checksum verifies, addresses are where promised.
        let mut off = 24;
        while off < out.len() {
            let cap = u32::from_le_bytes(out[off + 8..off + 12].try_into().unwrap()) as usize;
            let f = &out[off + 16..off + 16 + cap];
            assert_eq!(crate::packet::checksum(&f[14..34]), 0);
            let (s, d) = (f[26], f[30]);
            assert!((s == 10 && d == 198) || (s == 198 && d == 10));
            off += 16 + cap;
        }
    }
}
