//! Hostile captures: traffic aimed at the sensor's own state rather than at a service.
//!
//! A capture is a few [`Stream`]s merged in time order, each sending packets at a constant
//! rate over its own window: a *sweep* sends TCP SYNs to a random destination of a space for
//! every packet (a scan, a carpet-bombing attack, a random-destination flood that would make
//! the sensor track every address), a *flood* sends UDP to one target. Every packet has a random
//! spoofed source of the destination's family (anywhere in the address space), random ports
//! and a random TTL. Frames are built once per kind with the packet builder and patched, like
//! [`crate::big`]'s: no allocation per packet, so millions of packets stream straight to disk.
//! Timestamps start at [`T0`] with nanosecond resolution; TCP/UDP checksums are not updated
//! after patching (parsers do not verify them), the IPv4 header checksum is.
//!
//! Used by the soak test (`sensor/tests/soak.rs`) and the issue-12 probes
//! (`bench/src/bin/hostile_pcap.rs`, `bench/probes.sh`).

use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::gen::{S, T0};
use crate::packet::{tcp_flags::SYN, Eth, Net, Packet, Tcp, Transport, V4, V6};
use crate::writer::{CaptureWriter, Format, LINKTYPE_ETHERNET};

/// Where a stream's packets go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dst {
    /// A uniformly random address of `base/len` for every packet.
    Random {
        /// Network address of the space (host bits are ignored).
        base: IpAddr,
        /// Prefix length (0..=32 for IPv4, 0..=128 for IPv6).
        len: u8,
    },
    /// Always this address.
    Fixed(IpAddr),
    /// `count` consecutive addresses from `base`, in turn: packet `k` of the stream goes to
    /// `base + k % count` (a set of addresses each kept busy at `pps / count`).
    Cycle {
        /// First address.
        base: IpAddr,
        /// Addresses in the cycle (> 0).
        count: u64,
    },
}

impl Dst {
    /// A random destination in `cidr` (`"2001:db8:7::/48"`); `None` when it does not parse.
    pub fn random_in(cidr: &str) -> Option<Dst> {
        let (addr, len) = cidr.split_once('/')?;
        let base: IpAddr = addr.parse().ok()?;
        let len: u8 = len.parse().ok()?;
        let max = if base.is_ipv4() { 32 } else { 128 };
        (len <= max).then_some(Dst::Random { base, len })
    }

    fn is_ipv4(&self) -> bool {
        match self {
            Dst::Random { base, .. } | Dst::Fixed(base) | Dst::Cycle { base, .. } => base.is_ipv4(),
        }
    }
}

/// What a stream sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// TCP SYN, 60 bytes on the wire over IPv4, 74 over IPv6.
    Syn,
    /// UDP with 64 bytes of payload (106 / 126 bytes on the wire).
    Udp,
}

/// Packets at a constant rate over `[start_ns, end_ns)` (offsets from [`T0`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stream {
    /// First packet's time, ns after [`T0`].
    pub start_ns: u64,
    /// No packet at or after this time, ns after [`T0`].
    pub end_ns: u64,
    /// Packets per second (> 0).
    pub pps: u64,
    /// Destinations.
    pub dst: Dst,
    /// Packet kind.
    pub kind: Kind,
}

impl Stream {
    /// A sweep: a SYN to a random destination of `dst` for each packet.
    pub fn sweep(dst: Dst, start_ns: u64, end_ns: u64, pps: u64) -> Stream {
        Stream {
            start_ns,
            end_ns,
            pps,
            dst,
            kind: Kind::Syn,
        }
    }

    /// A sweep that keeps `count` addresses from `base` busy: a SYN to each in turn.
    pub fn cycle(base: IpAddr, count: u64, start_ns: u64, end_ns: u64, pps: u64) -> Stream {
        Stream {
            start_ns,
            end_ns,
            pps,
            dst: Dst::Cycle { base, count },
            kind: Kind::Syn,
        }
    }

    /// A UDP flood to `target`.
    pub fn flood(target: IpAddr, start_ns: u64, end_ns: u64, pps: u64) -> Stream {
        Stream {
            start_ns,
            end_ns,
            pps,
            dst: Dst::Fixed(target),
            kind: Kind::Udp,
        }
    }

    /// Packets this stream sends: one every `S / pps` ns from `start_ns`, before `end_ns`.
    pub fn packets(&self) -> u64 {
        if self.pps == 0 || self.end_ns <= self.start_ns {
            return 0;
        }
        let span = u128::from(self.end_ns - self.start_ns);
        let n = (span * u128::from(self.pps)).div_ceil(u128::from(S));
        u64::try_from(n).unwrap_or(u64::MAX)
    }

    /// Time (ns after [`T0`]) of packet `k`.
    fn time_of(&self, k: u64) -> u64 {
        let off = u128::from(k) * u128::from(S) / u128::from(self.pps.max(1));
        self.start_ns + u64::try_from(off).unwrap_or(u64::MAX)
    }
}

/// What was written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostileSummary {
    /// Frames written.
    pub packets: u64,
    /// Sum of frame lengths.
    pub bytes: u64,
    /// Frames per stream, in the order given.
    pub per_stream: Vec<u64>,
}

/// A built frame and where to patch it.
struct Template {
    bytes: Vec<u8>,
    v4: bool,
}

// Offsets in an untagged Ethernet frame.
const V4_TTL: usize = 14 + 8;
const V4_CSUM: usize = 14 + 10;
const V4_SRC: usize = 14 + 12;
const V4_DST: usize = 14 + 16;
const V4_L4: usize = 14 + 20;
const V6_HOPS: usize = 14 + 7;
const V6_SRC: usize = 14 + 8;
const V6_DST: usize = 14 + 24;
const V6_L4: usize = 14 + 40;

fn template(v4: bool, kind: Kind) -> Template {
    let (src, dst) = if v4 {
        (
            IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1)),
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
        )
    } else {
        (
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0, 0, 0, 0, 1)),
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
        )
    };
    let net = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => Net::V4(V4::new(s, d)),
        (IpAddr::V6(s), IpAddr::V6(d)) => Net::V6(V6::new(s, d)),
        _ => unreachable!("same family"),
    };
    let (l4, payload) = match kind {
        Kind::Syn => (Transport::Tcp(Tcp::new(40000, 80, SYN)), Vec::new()),
        Kind::Udp => (
            Transport::Udp {
                sport: 40000,
                dport: 53,
            },
            vec![0x5a; 64],
        ),
    };
    let p = Packet {
        eth: Eth::new([0x02, 0, 0, 0, 0, 1], [0x02, 0, 0, 0, 0, 2]),
        net,
        l4,
        payload,
    };
    let mut frames = p.build(1500);
    let bytes = frames.swap_remove(0).bytes;
    // The patch offsets hold the addresses the template was built with.
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            debug_assert_eq!(bytes[V4_SRC..V4_SRC + 4], s.octets());
            debug_assert_eq!(bytes[V4_DST..V4_DST + 4], d.octets());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            debug_assert_eq!(bytes[V6_SRC..V6_SRC + 16], s.octets());
            debug_assert_eq!(bytes[V6_DST..V6_DST + 16], d.octets());
        }
        _ => {}
    }
    Template { bytes, v4 }
}

/// A random address of `base/len`.
fn random_in(rng: &mut ChaCha8Rng, base: IpAddr, len: u8) -> IpAddr {
    match base {
        IpAddr::V4(b) => {
            let host = if len >= 32 { 0 } else { u32::MAX >> len };
            let net = u32::from(b) & !host;
            IpAddr::V4(Ipv4Addr::from(net | (rng.next_u32() & host)))
        }
        IpAddr::V6(b) => {
            let host = if len >= 128 { 0 } else { u128::MAX >> len };
            let net = u128::from(b) & !host;
            let r = (u128::from(rng.next_u64()) << 64) | u128::from(rng.next_u64());
            IpAddr::V6(Ipv6Addr::from(net | (r & host)))
        }
    }
}

/// `base + n`, wrapping within the address family.
fn offset(base: IpAddr, n: u64) -> IpAddr {
    match base {
        IpAddr::V4(b) => IpAddr::V4(Ipv4Addr::from(u32::from(b).wrapping_add(n as u32))),
        IpAddr::V6(b) => IpAddr::V6(Ipv6Addr::from(u128::from(b).wrapping_add(u128::from(n)))),
    }
}

/// Writes the merged `streams` as a classic nanosecond pcap to `w`, random choices from
/// `seed`. Streams of the two families may be mixed; each stream's packets keep their own
/// spacing, ties go to the earlier stream.
pub fn write_hostile<W: Write>(w: W, streams: &[Stream], seed: u64) -> io::Result<HostileSummary> {
    if let Some(s) = streams
        .iter()
        .find(|s| s.pps == 0 || matches!(s.dst, Dst::Cycle { count: 0, .. }))
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("stream with 0 pps or an empty cycle: {s:?}"),
        ));
    }
    let templates: Vec<Template> = streams
        .iter()
        .map(|s| template(s.dst.is_ipv4(), s.kind))
        .collect();
    let totals: Vec<u64> = streams.iter().map(Stream::packets).collect();
    let mut next = vec![0u64; streams.len()];
    let mut writer = CaptureWriter::new(w, Format::PCAP_NS, 65535, LINKTYPE_ETHERNET)?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut scratch = [0u8; 256];
    let mut sum = HostileSummary {
        per_stream: vec![0; streams.len()],
        ..HostileSummary::default()
    };
    loop {
        // The stream with the earliest pending packet (few streams: a scan is enough).
        let mut best: Option<(u64, usize)> = None;
        for (i, s) in streams.iter().enumerate() {
            if next[i] < totals[i] {
                let t = s.time_of(next[i]);
                if best.is_none_or(|(bt, _)| t < bt) {
                    best = Some((t, i));
                }
            }
        }
        let Some((t, i)) = best else { break };
        let k = next[i];
        next[i] += 1;
        let (s, tpl) = (&streams[i], &templates[i]);
        let n = tpl.bytes.len();
        let buf = &mut scratch[..n];
        buf.copy_from_slice(&tpl.bytes);
        let dst = match s.dst {
            Dst::Fixed(a) => a,
            Dst::Random { base, len } => random_in(&mut rng, base, len),
            Dst::Cycle { base, count } => offset(base, k % count),
        };
        let src = random_in(
            &mut rng,
            if tpl.v4 {
                IpAddr::V4(Ipv4Addr::UNSPECIFIED)
            } else {
                IpAddr::V6(Ipv6Addr::UNSPECIFIED)
            },
            0,
        );
        let r = rng.next_u64();
        let sport = 1024 + (r as u16 % 64000);
        let dport = match s.kind {
            Kind::Syn => 1 + ((r >> 16) as u16 % 65535),
            Kind::Udp => 53,
        };
        let ttl = rng.gen_range(30..=250u8);
        let l4 = match (src, dst) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                buf[V4_SRC..V4_SRC + 4].copy_from_slice(&a.octets());
                buf[V4_DST..V4_DST + 4].copy_from_slice(&b.octets());
                buf[V4_TTL] = ttl;
                buf[V4_CSUM..V4_CSUM + 2].copy_from_slice(&[0, 0]);
                let c = crate::packet::checksum(&buf[14..V4_L4]);
                buf[V4_CSUM..V4_CSUM + 2].copy_from_slice(&c.to_be_bytes());
                V4_L4
            }
            (IpAddr::V6(a), IpAddr::V6(b)) => {
                buf[V6_SRC..V6_SRC + 16].copy_from_slice(&a.octets());
                buf[V6_DST..V6_DST + 16].copy_from_slice(&b.octets());
                buf[V6_HOPS] = ttl;
                V6_L4
            }
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("stream {i}: destination family differs from its template"),
                ))
            }
        };
        buf[l4..l4 + 2].copy_from_slice(&sport.to_be_bytes());
        buf[l4 + 2..l4 + 4].copy_from_slice(&dport.to_be_bytes());
        writer.write(T0 + t, buf, n as u32)?;
        sum.packets += 1;
        sum.bytes += n as u64;
        sum.per_stream[i] += 1;
    }
    writer.finish()?;
    Ok(sum)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_merged_in_time_order_with_their_counts() {
        let streams = [
            Stream::sweep(Dst::random_in("10.20.0.0/16").unwrap(), 0, S, 1000),
            Stream::sweep(Dst::random_in("2001:db8:7::/48").unwrap(), 0, S, 500),
            Stream::flood("10.20.3.4".parse().unwrap(), S / 2, S, 2000),
        ];
        let mut out = Vec::new();
        let sum = write_hostile(&mut out, &streams, 7).unwrap();
        assert_eq!(sum.per_stream, vec![1000, 500, 1000]);
        assert_eq!(sum.packets, 2500);
        // Walk the records: time never goes back, addresses are where promised, every IPv4
        // header checksum verifies.
        let (mut off, mut last) = (24, 0u64);
        let (mut v4, mut v6, mut flood) = (0, 0, 0);
        while off < out.len() {
            let rd = |at: usize| u32::from_le_bytes(out[at..at + 4].try_into().unwrap());
            let ts = u64::from(rd(off)) * S + u64::from(rd(off + 4));
            assert!(ts >= last);
            last = ts;
            let cap = rd(off + 8) as usize;
            let f = &out[off + 16..off + 16 + cap];
            match u16::from_be_bytes([f[12], f[13]]) {
                0x0800 => {
                    assert_eq!(crate::packet::checksum(&f[14..34]), 0);
                    assert_eq!(f[V4_DST..V4_DST + 2], [10, 20]);
                    if f[V4_DST..V4_DST + 4] == [10, 20, 3, 4] && f[23] == 17 {
                        flood += 1;
                    }
                    v4 += 1;
                }
                0x86dd => {
                    assert_eq!(f[V6_DST..V6_DST + 6], [0x20, 0x01, 0x0d, 0xb8, 0, 7]);
                    v6 += 1;
                }
                e => panic!("ethertype {e:#x}"),
            }
            off += 16 + cap;
        }
        assert_eq!((v4, v6, flood), (2000, 500, 1000));
        assert!((T0 + S / 2..T0 + S).contains(&last));
    }

    #[test]
    fn random_destinations_stay_in_their_space() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for _ in 0..1000 {
            let IpAddr::V4(a) = random_in(&mut rng, "10.20.255.255".parse().unwrap(), 16) else {
                panic!()
            };
            assert_eq!(a.octets()[..2], [10, 20]);
        }
        assert_eq!(Dst::random_in("10.0.0.0/33"), None);
    }

    #[test]
    fn a_cycle_visits_its_addresses_in_turn() {
        let base: IpAddr = "10.30.255.254".parse().unwrap();
        let mut out = Vec::new();
        let sum = write_hostile(&mut out, &[Stream::cycle(base, 3, 0, S, 6)], 1).unwrap();
        assert_eq!(sum.packets, 6);
        let mut dsts = Vec::new();
        let mut off = 24;
        while off < out.len() {
            let cap = u32::from_le_bytes(out[off + 8..off + 12].try_into().unwrap()) as usize;
            dsts.push(out[off + 16 + V4_DST..off + 16 + V4_DST + 4].to_vec());
            off += 16 + cap;
        }
        let want: Vec<Vec<u8>> = [[10, 30, 255, 254], [10, 30, 255, 255], [10, 31, 0, 0]]
            .iter()
            .cycle()
            .take(6)
            .map(|a| a.to_vec())
            .collect();
        assert_eq!(dsts, want);
        assert!(write_hostile(Vec::new(), &[Stream::cycle(base, 0, 0, S, 6)], 1).is_err());
    }
}
