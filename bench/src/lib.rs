//! # surgewatch-bench
//!
//! Speed is measured here, never asserted in tests (`docs/ARCHITECTURE.md`). This crate holds:
//!
//! - `benches/parse_account.rs`: criterion benchmarks of the per-packet kernels (parse, parse +
//!   [`Shard::account`](surgewatch_per_ip::Shard::account) under several monitor set-ups) and
//!   of the tick merge ([`Accounting::end_tick`](surgewatch_per_ip::Accounting::end_tick)).
//! - `src/bin/replay_bench.rs`: the `surgewatch-replay-bench` harness, which replays a capture
//!   through the same library path as `surgewatch replay` and prints Mpps, ns/packet, per-tick
//!   wall time and peak RSS.
//!
//! This library holds what both share: an in-memory capture ([`Corpus`]) built with the
//! benchmark-capture generator, the monitor set-ups ([`monitor_one_prefix`],
//! [`monitor_host_routes`], [`monitor_auto`]) and [`peak_rss_kib`]. See `bench/README.md` for
//! how to run everything and the recorded figures.

#![warn(missing_docs)]

pub mod sender;
pub mod ticks;

use std::net::Ipv4Addr;
use std::sync::Arc;

use ipnet::{IpNet, Ipv4Net};
use surgewatch_per_ip::{GroupId, Monitor, PrefixTable};
use surgewatch_pipeline::LinkType;

pub use surgewatch_pcaps::big::{write_big, BigOptions, BIG_MONITOR};

/// Length of a classic pcap global header.
const PCAP_GLOBAL_HEADER: usize = 24;
/// Length of a classic pcap record header.
const PCAP_RECORD_HEADER: usize = 16;
/// Classic pcap magic, microsecond timestamps, as read little-endian.
const PCAP_MAGIC_US: u32 = 0xa1b2_c3d4;
/// Classic pcap magic, nanosecond timestamps, as read little-endian.
const PCAP_MAGIC_NS: u32 = 0xa1b2_3c4d;

/// First monitored address of a big capture (`10.0.0.1`), see [`surgewatch_pcaps::big`].
pub const FIRST_MONITORED: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

/// One frame of a [`Corpus`]: where its captured bytes lie in the buffer, and its wire length.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct FrameRef {
    /// Offset of the first captured byte in [`Corpus::bytes`].
    pub start: usize,
    /// Captured length.
    pub len: u32,
    /// Original (wire) length.
    pub wire_len: u32,
    /// Timestamp, nanoseconds since the epoch.
    pub ts_nanos: u64,
}

/// A whole classic little-endian pcap held in memory, with its records indexed.
pub struct Corpus {
    /// The capture file, global header included.
    pub bytes: Vec<u8>,
    /// Every record, in file order.
    pub frames: Vec<FrameRef>,
    /// Link type of the capture.
    pub link: LinkType,
}

/// Why a buffer is not a capture [`Corpus::from_pcap`] can index.
#[derive(Debug, PartialEq, Eq)]
pub enum CorpusError {
    /// Not a little-endian classic pcap (or shorter than its global header).
    NotLittleEndianPcap,
    /// A link type the pipeline does not parse.
    UnsupportedLinkType(u32),
    /// A record header or body runs past the end of the buffer at this offset.
    Truncated(usize),
}

impl std::fmt::Display for CorpusError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CorpusError::NotLittleEndianPcap => f.write_str("not a little-endian classic pcap"),
            CorpusError::UnsupportedLinkType(l) => write!(f, "unsupported link type {l}"),
            CorpusError::Truncated(o) => write!(f, "record truncated at byte {o}"),
        }
    }
}

impl std::error::Error for CorpusError {}

fn le_u32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 4)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

impl Corpus {
    /// Generates a big capture into memory (see [`write_big`]) and indexes it.
    pub fn generate(opts: &BigOptions) -> Self {
        let mut bytes = Vec::new();
        // Writing into a Vec cannot fail, and the options are ours.
        write_big(&mut bytes, opts).expect("generating a big capture in memory");
        Corpus::from_pcap(bytes).expect("the generator writes little-endian classic pcap")
    }

    /// Indexes a little-endian classic pcap (24-byte global header, then 16-byte record
    /// headers: ts_sec, ts_frac, incl_len, orig_len).
    pub fn from_pcap(bytes: Vec<u8>) -> Result<Self, CorpusError> {
        let magic = le_u32(&bytes, 0).ok_or(CorpusError::NotLittleEndianPcap)?;
        let frac_to_ns = match magic {
            PCAP_MAGIC_US => 1_000,
            PCAP_MAGIC_NS => 1,
            _ => return Err(CorpusError::NotLittleEndianPcap),
        };
        let linktype = le_u32(&bytes, 20).ok_or(CorpusError::NotLittleEndianPcap)?;
        let link = LinkType::from_linktype(linktype & 0x0fff_ffff)
            .ok_or(CorpusError::UnsupportedLinkType(linktype))?;
        let mut frames = Vec::new();
        let mut off = PCAP_GLOBAL_HEADER;
        while off < bytes.len() {
            let field = |i: usize| le_u32(&bytes, off + 4 * i).ok_or(CorpusError::Truncated(off));
            let (sec, frac, len, wire_len) = (field(0)?, field(1)?, field(2)?, field(3)?);
            let start = off + PCAP_RECORD_HEADER;
            let end = start + len as usize;
            if end > bytes.len() {
                return Err(CorpusError::Truncated(off));
            }
            frames.push(FrameRef {
                start,
                len,
                wire_len,
                ts_nanos: u64::from(sec) * 1_000_000_000 + u64::from(frac) * frac_to_ns,
            });
            off = end;
        }
        Ok(Corpus {
            bytes,
            frames,
            link,
        })
    }

    /// Captured bytes of one frame.
    #[inline]
    pub fn data(&self, f: &FrameRef) -> &[u8] {
        &self.bytes[f.start..f.start + f.len as usize]
    }

    /// Iterates `(captured bytes, wire length)` over every frame.
    #[inline]
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], u32)> + '_ {
        self.frames.iter().map(|f| (self.data(f), f.wire_len))
    }

    /// Number of frames.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// Whether there is no frame.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }
}

/// Prefix mode with the single prefix of the big captures ([`BIG_MONITOR`], `10.0.0.0/8`).
pub fn monitor_one_prefix() -> Arc<Monitor> {
    let net: IpNet = BIG_MONITOR.parse().expect("BIG_MONITOR is a CIDR");
    let table = PrefixTable::new([(net, GroupId(0))]).expect("one prefix");
    Arc::new(Monitor::prefixes(table))
}

/// Prefix mode with one /32 per monitored address of a big capture over `ips` addresses
/// (`10.0.0.1 ..= 10.0.0.ips`): a big table, where every monitored lookup probes the /32 level.
pub fn monitor_host_routes(ips: u32) -> Arc<Monitor> {
    let first = u32::from(FIRST_MONITORED);
    let table = PrefixTable::new((0..ips).map(|i| {
        let host = Ipv4Net::new(Ipv4Addr::from(first + i), 32).expect("/32 is a valid length");
        (IpNet::V4(host), GroupId(0))
    }))
    .expect("distinct host routes");
    Arc::new(Monitor::prefixes(table))
}

/// Auto-monitor mode with a tracked-IP `limit` (the CLI default is 100,000).
pub fn monitor_auto(limit: usize) -> Arc<Monitor> {
    Arc::new(Monitor::auto(limit, GroupId(0)))
}

/// Peak resident set size of this process in KiB (`VmHWM` of `/proc/self/status`), `None` where
/// that file does not exist.
pub fn peak_rss_kib() -> Option<u64> {
    // The kernel updates VmHWM lazily, so it can lag behind the current VmRSS.
    let hwm = proc_status_kib("VmHWM:")?;
    Some(hwm.max(rss_kib().unwrap_or(0)))
}

/// Current resident set size of this process in KiB (`VmRSS`).
pub fn rss_kib() -> Option<u64> {
    proc_status_kib("VmRSS:")
}

fn proc_status_kib(field: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = text.lines().find(|l| l.starts_with(field))?;
    line[field.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// The Ethernet frames of a capture, at most `max` (for the traffic generators). Frames of other
/// link types, or shorter than an Ethernet header, are skipped and counted. A capture that is cut
/// short yields the frames before the damage and the error.
pub fn load_ethernet_frames(
    path: &std::path::Path,
    max: usize,
) -> Result<LoadedFrames, surgewatch_sensor::capture::CaptureError> {
    use surgewatch_sensor::capture::{pcap::PcapFileSource, Capture, Poll};
    let mut src = PcapFileSource::open(path)?;
    let mut out = LoadedFrames::default();
    while out.frames.len() < max {
        let polled = src.poll(4096, |f| {
            if f.link != LinkType::Ethernet || f.data.len() < 14 {
                out.skipped += 1;
            } else if out.frames.len() < max {
                out.frames.push(f.data.to_vec());
            }
        });
        match polled {
            Ok(Poll::Frames(_)) => {}
            Ok(_) => break,
            Err(e) => {
                out.error = Some(e);
                break;
            }
        }
    }
    Ok(out)
}

/// What [`load_ethernet_frames`] read.
#[derive(Debug, Default)]
pub struct LoadedFrames {
    /// The frames, in capture order.
    pub frames: Vec<Vec<u8>>,
    /// Frames skipped (not Ethernet, or too short).
    pub skipped: u64,
    /// The read error that ended the capture early, if any.
    pub error: Option<surgewatch_sensor::capture::CaptureError>,
}

/// SYN, ACK, UDP from port 53 (with `udp_payload` bytes) and ICMP echo to each of `n`
/// destinations counted up from `first_dst`, from varying sources in 100.64.0.0/10.
pub fn synthetic_frames(n: u32, first_dst: Ipv4Addr, udp_payload: usize) -> Vec<Vec<u8>> {
    use surgewatch_pcaps::packet::{tcp_flags, Eth, Net, Packet, Tcp, Transport, V4};
    let eth = Eth::new([0x02, 0, 0x5e, 0, 0, 0xbb], [0x02, 0, 0x5e, 0, 0, 0xaa]);
    let base = u32::from(first_dst);
    let mut frames = Vec::with_capacity(n as usize * 4);
    for i in 0..n {
        let dst = Ipv4Addr::from(base.wrapping_add(i));
        let src = Ipv4Addr::from(
            u32::from(Ipv4Addr::new(100, 64, 0, 0)) | (i.wrapping_mul(7919) & 0x3f_ffff),
        );
        let sport = 1024 + (i % 60000) as u16;
        let l4s = [
            Transport::Tcp(Tcp::new(sport, 80, tcp_flags::SYN)),
            Transport::Tcp(Tcp::new(sport, 443, tcp_flags::ACK)),
            Transport::Udp {
                sport: 53,
                dport: sport,
            },
            Transport::echo(8, i as u16, 1),
        ];
        for (k, l4) in l4s.into_iter().enumerate() {
            let p = Packet {
                eth: eth.clone(),
                net: Net::V4(V4::new(src, dst)),
                payload: vec![0; if k == 2 { udp_payload } else { 0 }],
                l4,
            };
            frames.extend(p.build(1500).into_iter().map(|f| f.bytes));
        }
    }
    frames
}

#[cfg(test)]
mod tests {
    use super::*;
    use surgewatch_pipeline::{parse, ParseStatus};

    fn small() -> Corpus {
        Corpus::generate(&BigOptions {
            packets: 2_000,
            ips: 100,
            pps: 1_000,
            seed: 7,
        })
    }

    #[test]
    fn corpus_indexes_every_record() {
        let c = small();
        assert_eq!(c.len(), 2_000);
        assert_eq!(c.link, LinkType::Ethernet);
        let last = c.frames.last().unwrap();
        assert_eq!(last.start + last.len as usize, c.bytes.len());
        // Timestamps are 1 ms apart at 1,000 pps.
        assert_eq!(c.frames[1].ts_nanos - c.frames[0].ts_nanos, 1_000_000);
        // Every frame parses (the generator writes only well-formed frames).
        for (data, wire) in c.iter() {
            let s = parse(c.link, data, wire);
            assert_eq!(s.status, ParseStatus::Ok);
        }
    }

    #[test]
    fn truncated_and_foreign_buffers_are_rejected() {
        let mut c = small().bytes;
        c.truncate(c.len() - 1);
        assert!(matches!(
            Corpus::from_pcap(c),
            Err(CorpusError::Truncated(_))
        ));
        assert_eq!(
            Corpus::from_pcap(vec![0; 10]).err(),
            Some(CorpusError::NotLittleEndianPcap)
        );
    }

    #[test]
    fn monitors_cover_the_big_capture_addresses() {
        let ip = u32::from(FIRST_MONITORED);
        assert!(monitor_one_prefix().table().lookup_v4(ip).is_some());
        let hosts = monitor_host_routes(1_000);
        assert_eq!(hosts.table().len(), 1_000);
        assert!(hosts.table().lookup_v4(ip + 999).is_some());
        assert!(hosts.table().lookup_v4(ip + 1_000).is_none());
        assert!(monitor_auto(10).auto_group().is_some());
    }

    #[test]
    fn synthetic_frames_cover_four_classes_per_destination() {
        let frames = synthetic_frames(3, Ipv4Addr::new(10, 0, 0, 1), 512);
        assert_eq!(frames.len(), 12);
        let s: Vec<_> = frames
            .iter()
            .map(|f| parse(LinkType::Ethernet, f, f.len() as u32))
            .collect();
        assert!(s.iter().all(|s| s.status == ParseStatus::Ok));
        assert_eq!(s[8].dst, std::net::IpAddr::V4(Ipv4Addr::new(10, 0, 0, 3)));
        assert_eq!((s[2].src_port, s[2].udp_len), (53, 8 + 512));
    }

    #[test]
    fn rss_is_readable_on_linux() {
        if cfg!(target_os = "linux") {
            // Both readable and non-zero. (No order between them is asserted: other test
            // threads allocate and free concurrently and the kernel updates VmHWM lazily.)
            let now = rss_kib().unwrap();
            let peak = peak_rss_kib().unwrap();
            assert!(now > 0 && peak > 0, "rss {now} KiB, peak {peak} KiB");
        }
    }
}
