//! Tests of the pcap/pcapng file source against hand-built captures, damaged captures and, when
//! present, the public captures in `../shared/pcaps/`.

mod manifest;

use std::io::Cursor;
use std::path::{Path, PathBuf};

use surgewatch_pipeline::LinkType;
use surgewatch_sensor::capture::pcap::{PcapFileSource, MAX_CAPLEN};
use surgewatch_sensor::capture::{Capture, CaptureError, Poll};

// ---------------------------------------------------------------------------------------------
// Fixtures

/// A directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!(
            "surgewatch-pcap-{name}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Byte writer in a chosen byte order.
struct W {
    big: bool,
    out: Vec<u8>,
}

impl W {
    fn new(big: bool) -> Self {
        W {
            big,
            out: Vec::new(),
        }
    }
    fn u16(&mut self, v: u16) -> &mut Self {
        let b = if self.big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        };
        self.out.extend_from_slice(&b);
        self
    }
    fn u32(&mut self, v: u32) -> &mut Self {
        let b = if self.big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        };
        self.out.extend_from_slice(&b);
        self
    }
    fn u64(&mut self, v: u64) -> &mut Self {
        let b = if self.big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        };
        self.out.extend_from_slice(&b);
        self
    }
    fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.out.extend_from_slice(b);
        self
    }
    fn pad4(&mut self) -> &mut Self {
        while self.out.len() & 3 != 0 {
            self.out.push(0);
        }
        self
    }
}

/// Deterministic frame payload: `len` bytes derived from `seed`.
fn payload(seed: u32, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (seed as usize * 31 + i * 7) as u8)
        .collect()
}

struct Rec {
    sec: u32,
    frac: u32,
    data: Vec<u8>,
    orig: u32,
}

fn rec(sec: u32, frac: u32, data: Vec<u8>) -> Rec {
    let orig = data.len() as u32;
    Rec {
        sec,
        frac,
        data,
        orig,
    }
}

/// A classic pcap file.
fn pcap(big: bool, nanos: bool, link: u32, snaplen: u32, recs: &[Rec]) -> Vec<u8> {
    let mut w = W::new(big);
    w.u32(if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 })
        .u16(2)
        .u16(4)
        .u32(0)
        .u32(0)
        .u32(snaplen)
        .u32(link);
    for r in recs {
        w.u32(r.sec)
            .u32(r.frac)
            .u32(r.data.len() as u32)
            .u32(r.orig)
            .bytes(&r.data);
    }
    w.out
}

/// One pcapng block with `body` (padded here).
fn block(big: bool, typ: u32, body: &[u8]) -> Vec<u8> {
    let padded = body.len().next_multiple_of(4);
    let total = (12 + padded) as u32;
    let mut w = W::new(big);
    w.u32(typ).u32(total).bytes(body).pad4().u32(total);
    w.out
}

fn shb(big: bool) -> Vec<u8> {
    let mut w = W::new(big);
    w.u32(0x1a2b_3c4d).u16(1).u16(0).u64(u64::MAX);
    // An shb_comment option, then opt_endofopt.
    w.u16(1).u16(5).bytes(b"hello").pad4().u16(0).u16(0);
    block(big, 0x0a0d_0d0a, &w.out)
}

/// An IDB; `tsresol` and `tsoffset` become options when given.
fn idb(big: bool, link: u16, snaplen: u32, tsresol: Option<u8>, tsoffset: Option<i64>) -> Vec<u8> {
    let mut w = W::new(big);
    w.u16(link).u16(0).u32(snaplen);
    // if_name first, to check options are walked.
    w.u16(2).u16(3).bytes(b"et0").pad4();
    if let Some(r) = tsresol {
        w.u16(9).u16(1).bytes(&[r]).pad4();
    }
    if let Some(o) = tsoffset {
        w.u16(14).u16(8).u64(o as u64);
    }
    w.u16(0).u16(0);
    block(big, 1, &w.out)
}

fn epb(big: bool, iface: u32, ts: u64, data: &[u8], orig: u32) -> Vec<u8> {
    let mut w = W::new(big);
    w.u32(iface)
        .u32((ts >> 32) as u32)
        .u32(ts as u32)
        .u32(data.len() as u32)
        .u32(orig)
        .bytes(data)
        .pad4();
    // epb_flags option.
    w.u16(2).u16(4).u32(1).u16(0).u16(0);
    block(big, 6, &w.out)
}

fn pb(big: bool, iface: u16, ts: u64, data: &[u8], orig: u32) -> Vec<u8> {
    let mut w = W::new(big);
    w.u16(iface)
        .u16(0)
        .u32((ts >> 32) as u32)
        .u32(ts as u32)
        .u32(data.len() as u32)
        .u32(orig)
        .bytes(data);
    block(big, 2, &w.out)
}

fn spb(big: bool, data: &[u8], orig: u32) -> Vec<u8> {
    let mut w = W::new(big);
    w.u32(orig).bytes(data);
    block(big, 3, &w.out)
}

/// Name resolution, interface statistics, custom and decryption-secrets blocks.
fn noise(big: bool) -> Vec<u8> {
    let mut v = Vec::new();
    let mut nrb = W::new(big);
    nrb.u16(1)
        .u16(8)
        .bytes(&[10, 0, 0, 1])
        .bytes(b"a\0\0\0")
        .u16(0)
        .u16(0);
    v.extend(block(big, 4, &nrb.out));
    let mut isb = W::new(big);
    isb.u32(0).u32(0).u32(0).u16(0).u16(0);
    v.extend(block(big, 5, &isb.out));
    v.extend(block(big, 0x0000_0bad, b"\0\0\x7f\xffcustom"));
    v.extend(block(big, 0x4000_0bad, b"\0\0\x7f\xff"));
    v.extend(block(big, 0x0000_000a, b"TLSK\0\0\0\0"));
    v
}

/// An owned copy of a lent frame.
#[derive(Clone, Debug, PartialEq, Eq)]
struct F {
    data: Vec<u8>,
    ts: u64,
    wire: u32,
    link: LinkType,
}

/// Drains a source with the given budget; returns the frames and the error, if any. Checks that
/// polls after the end or the error return `End`.
fn drain(mut src: PcapFileSource, budget: usize) -> (Vec<F>, Option<CaptureError>) {
    let mut frames = Vec::new();
    let mut err = None;
    for _ in 0..10_000_000 {
        let r = src.poll(budget, |f| {
            frames.push(F {
                data: f.data.to_vec(),
                ts: f.ts_nanos,
                wire: f.wire_len,
                link: f.link,
            })
        });
        match r {
            Ok(Poll::Frames(n)) => assert!(n >= 1 && n <= budget),
            Ok(Poll::Idle) => panic!("a file source is never idle"),
            Ok(Poll::End) => break,
            Err(e) => {
                err = Some(e);
                break;
            }
        }
    }
    assert!(matches!(src.poll(budget, |_| {}), Ok(Poll::End)));
    assert!(matches!(src.poll(budget, |_| {}), Ok(Poll::End)));
    (frames, err)
}

fn read_file(path: &Path) -> (Vec<F>, Option<CaptureError>) {
    drain(PcapFileSource::open(path).unwrap(), 7)
}

fn read_bytes(bytes: &[u8], buffer: usize) -> Result<(Vec<F>, Option<CaptureError>), CaptureError> {
    let src = PcapFileSource::from_reader("mem", Cursor::new(bytes.to_vec()), buffer)?;
    Ok(drain(src, 3))
}

// ---------------------------------------------------------------------------------------------
// Classic pcap

fn classic_records() -> Vec<Rec> {
    vec![
        rec(1_700_000_000, 1, payload(1, 60)),
        rec(1_700_000_001, 999_999, payload(2, 1514)),
        rec(0, 0, Vec::new()),
        // The latest time: the largest sub-second field valid in both units.
        rec(u32::MAX, 999_999, payload(4, 3)),
    ]
}

fn check_classic(big: bool, nanos: bool) {
    let dir = TempDir::new("classic");
    let recs = classic_records();
    let path = dir.write("c.pcap", &pcap(big, nanos, 1, 65535, &recs));
    let (frames, err) = read_file(&path);
    assert!(err.is_none(), "{err:?}");
    assert_eq!(frames.len(), recs.len());
    let mult = if nanos { 1 } else { 1_000 };
    for (f, r) in frames.iter().zip(&recs) {
        assert_eq!(f.data, r.data);
        assert_eq!(f.wire, r.orig);
        assert_eq!(f.link, LinkType::Ethernet);
        assert_eq!(
            f.ts,
            u64::from(r.sec) * 1_000_000_000 + u64::from(r.frac) * mult
        );
    }
}

#[test]
fn classic_le_micro() {
    check_classic(false, false);
}

#[test]
fn classic_be_micro() {
    check_classic(true, false);
}

#[test]
fn classic_le_nano() {
    check_classic(false, true);
}

#[test]
fn classic_be_nano() {
    check_classic(true, true);
}

#[test]
fn classic_snaplen_shorter_than_orig_len() {
    let dir = TempDir::new("snaplen");
    let recs = vec![
        Rec {
            sec: 5,
            frac: 6,
            data: payload(9, 96),
            orig: 1500,
        },
        rec(5, 7, payload(10, 40)),
    ];
    let path = dir.write("s.pcap", &pcap(false, false, 101, 96, &recs));
    let (frames, err) = read_file(&path);
    assert!(err.is_none());
    assert_eq!(frames.len(), 2);
    assert_eq!(frames[0].data, payload(9, 96));
    assert_eq!(frames[0].wire, 1500);
    assert_eq!(frames[0].link, LinkType::RawIp);
    assert_eq!(frames[1].wire, 40);
}

#[test]
fn classic_modified_format_and_fcs_bits() {
    // Kuznetzov's modified pcap: 24-byte record headers. Link type with FCS bits set.
    let mut w = W::new(false);
    w.u32(0xa1b2_cd34)
        .u16(2)
        .u16(4)
        .u32(0)
        .u32(0)
        .u32(65535)
        .u32(113 | 0x1000_0000 | 0x0400_0000);
    for i in 0..3u32 {
        let d = payload(i, 20 + i as usize);
        w.u32(i)
            .u32(i)
            .u32(d.len() as u32)
            .u32(d.len() as u32)
            .u32(7)
            .u16(0x0800)
            .bytes(&[0, 0])
            .bytes(&d);
    }
    let (frames, err) = read_bytes(&w.out, 1 << 20).unwrap();
    assert!(err.is_none());
    assert_eq!(frames.len(), 3);
    assert_eq!(frames[2].data, payload(2, 22));
    assert_eq!(frames[2].ts, 2_000_002_000);
    assert_eq!(frames[0].link, LinkType::LinuxSll);
}

#[test]
fn classic_unsupported_link_type_at_open() {
    let dir = TempDir::new("linktype");
    let path = dir.write(
        "u.pcap",
        &pcap(false, false, 147, 65535, &classic_records()),
    );
    match PcapFileSource::open(&path) {
        Err(CaptureError::UnsupportedLinkType { linktype: 147, .. }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn budget_and_progress() {
    let dir = TempDir::new("budget");
    let recs: Vec<Rec> = (0..5).map(|i| rec(i, 0, payload(i, 10))).collect();
    let bytes = pcap(false, false, 1, 65535, &recs);
    let path = dir.write("b.pcap", &bytes);
    let mut src = PcapFileSource::open(&path).unwrap();
    let size = bytes.len() as u64;
    assert_eq!(src.progress(), (24, Some(size)));
    assert_eq!(src.poll(0, |_| {}).unwrap(), Poll::Idle);
    let mut seen = Vec::new();
    let mut poll = |src: &mut PcapFileSource| src.poll(2, |f| seen.push(f.ts_nanos)).unwrap();
    assert_eq!(poll(&mut src), Poll::Frames(2));
    assert_eq!(src.progress(), (24 + 2 * 26, Some(size)));
    assert_eq!(poll(&mut src), Poll::Frames(2));
    assert_eq!(poll(&mut src), Poll::Frames(1));
    assert_eq!(poll(&mut src), Poll::End);
    assert_eq!(poll(&mut src), Poll::End);
    assert_eq!(src.progress(), (size, Some(size)));
    assert_eq!(seen, (0..5).map(|i| i * 1_000_000_000).collect::<Vec<_>>());
}

#[test]
fn streaming_across_buffer_boundaries() {
    // Many records of varying size through tiny and odd-sized buffers: every record straddles
    // a refill at some point, and the first buffer must grow.
    let recs: Vec<Rec> = (0..3000u32)
        .map(|i| rec(i, i, payload(i, (i as usize * 37) % 1600)))
        .collect();
    let bytes = pcap(false, true, 1, 65535, &recs);
    let dir = TempDir::new("stream");
    let path = dir.write("big.pcap", &bytes);
    for buffer in [1, 64, 1000, 4096, 1 << 20] {
        let src = PcapFileSource::open_with_buffer(&path, buffer).unwrap();
        let (frames, err) = drain(src, 64);
        assert!(err.is_none(), "{err:?}");
        assert_eq!(frames.len(), recs.len());
        for (f, r) in frames.iter().zip(&recs) {
            assert_eq!(f.data, r.data);
        }
    }
}

#[test]
fn caplen_limit() {
    let ok = pcap(
        false,
        false,
        1,
        MAX_CAPLEN,
        &[rec(1, 1, vec![0xab; MAX_CAPLEN as usize])],
    );
    let (frames, err) = read_bytes(&ok, 4096).unwrap();
    assert!(err.is_none());
    assert_eq!(frames[0].data.len(), MAX_CAPLEN as usize);

    let recs = [
        rec(1, 1, payload(1, 10)),
        rec(1, 2, vec![0; MAX_CAPLEN as usize + 1]),
    ];
    let bad = pcap(false, false, 1, 65535, &recs);
    let (frames, err) = read_bytes(&bad, 4096).unwrap();
    assert_eq!(frames.len(), 1);
    match err {
        Some(CaptureError::Corrupt { offset, .. }) => assert_eq!(offset, 24 + 16 + 10),
        other => panic!("{other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// pcapng

#[test]
fn pcapng_interfaces_tsresol_and_skipped_blocks() {
    let big = false;
    let mut f = shb(big);
    // 0: Ethernet, default resolution (µs).
    f.extend(idb(big, 1, 0, None, None));
    f.extend(noise(big));
    // 1: raw IP, nanoseconds, 100 s offset.
    f.extend(idb(big, 101, 0, Some(9), Some(100)));
    // 2: Linux SLL, 2^-20 s.
    f.extend(idb(big, 113, 0, Some(0x80 | 20), None));
    f.extend(epb(big, 0, 1_700_000_000_123_456, &payload(1, 61), 61));
    f.extend(noise(big));
    f.extend(epb(
        big,
        1,
        1_700_000_000_000_000_007,
        &payload(2, 40),
        1400,
    ));
    f.extend(epb(big, 2, 3 << 20, &payload(3, 1), 1));
    f.extend(pb(big, 1, 42, &payload(4, 5), 5));
    let dir = TempDir::new("ng");
    let path = dir.write("x.pcapng", &f);
    let (frames, err) = read_file(&path);
    assert!(err.is_none(), "{err:?}");
    let want = vec![
        F {
            data: payload(1, 61),
            ts: 1_700_000_000_123_456_000,
            wire: 61,
            link: LinkType::Ethernet,
        },
        F {
            data: payload(2, 40),
            ts: 1_700_000_100_000_000_007,
            wire: 1400,
            link: LinkType::RawIp,
        },
        F {
            data: payload(3, 1),
            ts: 3_000_000_000,
            wire: 1,
            link: LinkType::LinuxSll,
        },
        F {
            data: payload(4, 5),
            ts: 100_000_000_042,
            wire: 5,
            link: LinkType::RawIp,
        },
    ];
    assert_eq!(frames, want);
}

#[test]
fn pcapng_big_endian_and_several_sections() {
    let mut f = shb(true);
    f.extend(idb(true, 1, 0, Some(3), None));
    f.extend(epb(true, 0, 5, &payload(1, 30), 30));
    // Second section, little-endian: interface numbering restarts.
    f.extend(shb(false));
    f.extend(idb(false, 229, 0, None, None));
    f.extend(epb(false, 0, 7, &payload(2, 31), 31));
    // Third section, big-endian again.
    f.extend(shb(true));
    f.extend(idb(true, 228, 0, Some(9), None));
    f.extend(idb(true, 0, 0, Some(9), None));
    f.extend(epb(true, 1, u64::MAX, &payload(3, 32), 32));
    let (frames, err) = read_bytes(&f, 64).unwrap();
    assert!(err.is_none(), "{err:?}");
    assert_eq!(frames.len(), 3);
    assert_eq!(
        (frames[0].ts, frames[0].link),
        (5_000_000, LinkType::Ethernet)
    );
    assert_eq!((frames[1].ts, frames[1].link), (7_000, LinkType::RawIpv6));
    assert_eq!((frames[2].ts, frames[2].link), (u64::MAX, LinkType::Null));
    assert_eq!(frames[2].data, payload(3, 32));

    // An EPB naming an interface of a previous section is corrupt.
    let mut g = shb(false);
    g.extend(idb(false, 1, 0, None, None));
    g.extend(idb(false, 1, 0, None, None));
    g.extend(shb(true));
    g.extend(idb(true, 1, 0, None, None));
    let at = g.len() as u64;
    g.extend(epb(true, 1, 0, &[1, 2, 3], 3));
    let (frames, err) = read_bytes(&g, 4096).unwrap();
    assert!(frames.is_empty());
    match err {
        Some(CaptureError::Corrupt { offset, .. }) => assert_eq!(offset, at),
        other => panic!("{other:?}"),
    }
}

#[test]
fn pcapng_simple_packet_blocks() {
    let big = false;
    let mut f = shb(big);
    f.extend(idb(big, 1, 64, None, None));
    f.extend(spb(big, &payload(1, 20), 20));
    f.extend(epb(big, 0, 1_000_000, &payload(2, 20), 20));
    // Cut by the interface's snaplen: 64 bytes captured of 1500.
    f.extend(spb(big, &payload(3, 64), 1500));
    let (frames, err) = read_bytes(&f, 1 << 16).unwrap();
    assert!(err.is_none(), "{err:?}");
    assert_eq!(frames.len(), 3);
    assert_eq!(frames[0].ts, 0);
    assert_eq!(frames[0].data, payload(1, 20));
    assert_eq!(frames[2].ts, 1_000_000_000);
    assert_eq!(frames[2].data, payload(3, 64));
    assert_eq!(frames[2].wire, 1500);

    // An SPB claiming more captured bytes than its block holds is corrupt.
    let mut g = shb(big);
    g.extend(idb(big, 1, 0, None, None));
    let at = g.len() as u64;
    g.extend(spb(big, &payload(1, 20), 100));
    let (_, err) = read_bytes(&g, 1 << 16).unwrap();
    match err {
        Some(CaptureError::Corrupt { offset, .. }) => assert_eq!(offset, at),
        other => panic!("{other:?}"),
    }
}

#[test]
fn pcapng_unsupported_link_type() {
    // Declared before the first packet: reported by open.
    let mut f = shb(false);
    f.extend(idb(false, 1, 0, None, None));
    f.extend(idb(false, 189, 0, None, None));
    f.extend(epb(false, 0, 0, &[0; 14], 14));
    let dir = TempDir::new("nglink");
    let path = dir.write("u.pcapng", &f);
    match PcapFileSource::open(&path) {
        Err(CaptureError::UnsupportedLinkType { linktype: 189, .. }) => {}
        other => panic!("{other:?}"),
    }
    // Declared after packets: reported by poll after those packets.
    let mut g = shb(false);
    g.extend(idb(false, 1, 0, None, None));
    g.extend(epb(false, 0, 0, &[0; 14], 14));
    g.extend(epb(false, 0, 0, &[0; 14], 14));
    g.extend(idb(false, 189, 0, None, None));
    g.extend(epb(false, 0, 0, &[0; 14], 14));
    let (frames, err) = read_bytes(&g, 4096).unwrap();
    assert_eq!(frames.len(), 2);
    assert!(matches!(
        err,
        Some(CaptureError::UnsupportedLinkType { linktype: 189, .. })
    ));
}

#[test]
fn pcapng_block_larger_than_buffer() {
    let mut f = shb(false);
    f.extend(idb(false, 1, 0, None, None));
    f.extend(epb(false, 0, 1, &payload(1, 100), 100));
    f.extend(block(false, 0x0000_0bad, &vec![7; 3 << 20]));
    f.extend(epb(false, 0, 2, &payload(2, 100), 100));
    let dir = TempDir::new("ngbig");
    let path = dir.write("b.pcapng", &f);
    let (frames, err) = drain(PcapFileSource::open_with_buffer(&path, 4096).unwrap(), 1);
    assert!(err.is_none(), "{err:?}");
    assert_eq!(frames.len(), 2);
    assert_eq!(frames[1].data, payload(2, 100));
}

// ---------------------------------------------------------------------------------------------
// Damaged files

fn expect_truncated(err: Option<CaptureError>, at: u64) {
    match err {
        Some(CaptureError::Truncated { offset, .. }) => assert_eq!(offset, at),
        other => panic!("expected Truncated at {at}, got {other:?}"),
    }
}

fn expect_corrupt(err: Option<CaptureError>, at: u64) {
    match err {
        Some(CaptureError::Corrupt { offset, .. }) => assert_eq!(offset, at),
        other => panic!("expected Corrupt at {at}, got {other:?}"),
    }
}

#[test]
fn classic_truncated_mid_record() {
    let recs = classic_records();
    let full = pcap(false, false, 1, 65535, &recs);
    // Start of the third record: header + two records.
    let third = 24 + 16 + 60 + 16 + 1514;
    let dir = TempDir::new("trunc");
    // Mid-data of the second record, then mid-header of the third.
    let path = dir.write("t.pcap", &full[..24 + 16 + 60 + 16 + 100]);
    let (frames, err) = read_file(&path);
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].data, recs[0].data);
    expect_truncated(err, 24 + 16 + 60);

    let path = dir.write("h.pcap", &full[..third + 9]);
    let (frames, err) = read_file(&path);
    assert_eq!(frames.len(), 2);
    assert_eq!(frames[1].data, recs[1].data);
    expect_truncated(err, third as u64);

    // Cut at a record boundary: a clean end.
    let path = dir.write("b.pcap", &full[..third]);
    let (frames, err) = read_file(&path);
    assert_eq!(frames.len(), 2);
    assert!(err.is_none());

    // Inside the file header.
    let path = dir.write("f.pcap", &full[..10]);
    match PcapFileSource::open(&path) {
        Err(CaptureError::Truncated { offset: 0, .. }) => {}
        other => panic!("{other:?}"),
    }
}

/// A pcapng file cut inside its section header's first 12 bytes (its block type is there,
/// its byte-order magic not yet) is truncated, not "without a byte-order magic"; the same
/// as a classic pcap cut inside its file header.
#[test]
fn pcapng_cut_before_the_byte_order_magic_is_truncated() {
    let dir = TempDir::new("ng-short");
    for big in [false, true] {
        let full = shb(big);
        for cut in 4..12 {
            let path = dir.write("s.pcapng", &full[..cut]);
            match PcapFileSource::open(&path) {
                Err(CaptureError::Truncated { offset: 0, .. }) => {}
                other => panic!("big {big}, {cut} bytes: {other:?}"),
            }
        }
    }
    // A whole header with a wrong magic is still not a capture.
    let mut bad = shb(false);
    bad[8..12].copy_from_slice(&[1, 2, 3, 4]);
    let path = dir.write("m.pcapng", &bad);
    match PcapFileSource::open(&path) {
        Err(CaptureError::NotACapture { reason, .. }) => {
            assert!(reason.contains("byte-order magic"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn pcapng_truncated_and_corrupt_blocks() {
    let mut f = shb(false);
    f.extend(idb(false, 1, 0, None, None));
    f.extend(epb(false, 0, 1, &payload(1, 50), 50));
    let at = f.len();
    f.extend(epb(false, 0, 2, &payload(2, 50), 50));
    let len2 = f.len() - at;

    for cut in [at + 3, at + 8, at + 30, f.len() - 1] {
        let (frames, err) = read_bytes(&f[..cut], 4096).unwrap();
        assert_eq!(frames.len(), 1, "cut at {cut}");
        expect_truncated(err, at as u64);
    }

    let set32 = |g: &mut Vec<u8>, pos: usize, v: u32| {
        g[pos..pos + 4].copy_from_slice(&v.to_le_bytes());
    };
    // Total length not a multiple of 4.
    let mut g = f.clone();
    set32(&mut g, at + 4, len2 as u32 + 1);
    let (frames, err) = read_bytes(&g, 4096).unwrap();
    assert_eq!(frames.len(), 1);
    expect_corrupt(err, at as u64);
    // Total length below 12, and 0.
    for bad in [8, 0] {
        let mut g = f.clone();
        set32(&mut g, at + 4, bad);
        expect_corrupt(read_bytes(&g, 4096).unwrap().1, at as u64);
    }
    // Trailing length mismatch.
    let mut g = f.clone();
    let end = g.len();
    set32(&mut g, end - 4, len2 as u32 + 4);
    expect_corrupt(read_bytes(&g, 4096).unwrap().1, at as u64);
    // Captured length beyond the block.
    let mut g = f.clone();
    set32(&mut g, at + 20, 100);
    expect_corrupt(read_bytes(&g, 4096).unwrap().1, at as u64);
    // Captured length beyond the maximum.
    let mut g = f.clone();
    set32(&mut g, at + 20, MAX_CAPLEN + 1);
    expect_corrupt(read_bytes(&g, 4096).unwrap().1, at as u64);
    // Undefined interface.
    let mut g = f.clone();
    set32(&mut g, at + 8, 1);
    expect_corrupt(read_bytes(&g, 4096).unwrap().1, at as u64);
    // Huge total length: corrupt, without trying to allocate it.
    let mut g = f.clone();
    set32(&mut g, at + 4, 0xffff_fff0);
    expect_corrupt(read_bytes(&g, 4096).unwrap().1, at as u64);
    // A plausible total length larger than the rest of the file: truncated.
    let mut g = f.clone();
    set32(&mut g, at + 4, 1 << 20);
    expect_truncated(read_bytes(&g, 4096).unwrap().1, at as u64);
}

#[test]
fn not_a_capture() {
    let dir = TempDir::new("nac");
    let empty = dir.write("empty.pcap", b"");
    match PcapFileSource::open(&empty) {
        Err(e @ CaptureError::NotACapture { .. }) => assert!(e.to_string().contains("empty")),
        other => panic!("{other:?}"),
    }
    for (name, bytes) in [
        ("short", &b"\xd4\xc3"[..]),
        ("text", &b"GET / HTTP/1.1\r\nHost: example\r\n\r\n"[..]),
        ("garbage", &[0x5a; 4096][..]),
        (
            "ng-without-bom",
            &b"\x0a\x0d\x0d\x0a\x1c\x00\x00\x00\x00\x00\x00\x00"[..],
        ),
    ] {
        let path = dir.write(name, bytes);
        assert!(
            matches!(
                PcapFileSource::open(&path),
                Err(CaptureError::NotACapture { .. })
            ),
            "{name}"
        );
    }
}

#[test]
fn directory_and_missing_file() {
    let dir = TempDir::new("dir");
    match PcapFileSource::open(&dir.0) {
        Err(e @ CaptureError::Io { .. }) => assert!(e.to_string().contains("directory"), "{e}"),
        other => panic!("{other:?}"),
    }
    match PcapFileSource::open(dir.0.join("missing.pcap")) {
        Err(e @ CaptureError::Io { .. }) => {
            assert_eq!(
                std::error::Error::source(&e)
                    .and_then(|s| s.downcast_ref::<std::io::Error>())
                    .map(|s| s.kind()),
                Some(std::io::ErrorKind::NotFound)
            );
            assert!(e.to_string().contains("missing.pcap"), "{e}");
        }
        other => panic!("{other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Fuzz-ish: prefixes and bit flips of valid files never panic.

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn fuzz_corpus() -> Vec<Vec<u8>> {
    let recs: Vec<Rec> = (0..6u32)
        .map(|i| rec(i, i, payload(i, 10 + 9 * i as usize)))
        .collect();
    let mut ng = shb(false);
    ng.extend(idb(false, 1, 32, Some(0x80 | 16), Some(-3)));
    ng.extend(noise(false));
    ng.extend(epb(false, 0, 77, &payload(1, 33), 33));
    ng.extend(spb(false, &payload(2, 32), 90));
    ng.extend(pb(false, 0, 78, &payload(3, 3), 3));
    ng.extend(shb(true));
    ng.extend(idb(true, 101, 0, Some(9), None));
    ng.extend(epb(true, 0, 79, &payload(4, 17), 17));
    vec![
        pcap(false, false, 1, 65535, &recs),
        pcap(true, true, 228, 65535, &recs),
        ng,
    ]
}

#[test]
fn every_prefix_is_truncated_or_clean() {
    for file in fuzz_corpus() {
        let (all, err) = read_bytes(&file, 4096).unwrap();
        assert!(err.is_none());
        for cut in 0..file.len() {
            for buffer in [64, 4096] {
                match read_bytes(&file[..cut], buffer) {
                    Ok((frames, err)) => {
                        assert!(frames.len() <= all.len());
                        assert_eq!(frames[..], all[..frames.len()]);
                        assert!(
                            matches!(err, None | Some(CaptureError::Truncated { .. })),
                            "cut {cut}: {err:?}"
                        );
                    }
                    Err(CaptureError::NotACapture { .. } | CaptureError::Truncated { .. }) => {}
                    Err(e) => panic!("cut {cut}: {e:?}"),
                }
            }
        }
    }
}

#[test]
fn random_byte_flips_never_panic() {
    let mut rng = XorShift(0x5eed_1234_abcd_0001);
    let corpus = fuzz_corpus();
    let dir = TempDir::new("fuzz");
    for round in 0..6000 {
        let mut file = corpus[round % corpus.len()].clone();
        for _ in 0..1 + rng.below(4) {
            let i = rng.below(file.len());
            file[i] ^= 1 << rng.below(8);
            if rng.below(4) == 0 {
                file[i] = rng.next() as u8;
            }
        }
        if rng.below(3) == 0 {
            let cut = rng.below(file.len());
            file.truncate(cut);
        }
        let _ = read_bytes(&file, [64, 100, 4096][round % 3]);
        if round % 500 == 0 {
            // Same through a real file.
            let path = dir.write("f.bin", &file);
            if let Ok(src) = PcapFileSource::open(&path) {
                let _ = drain(src, 5);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Public captures

#[test]
fn shared_captures_frame_counts() {
    let Some(entries) = manifest::entries("shared_captures_frame_counts") else {
        return;
    };
    for e in &entries {
        let name = e.name();
        let src = PcapFileSource::open(&e.path).unwrap_or_else(|err| panic!("{err}"));
        let (frames, err) = drain(src, 256);
        assert!(err.is_none(), "{name}: {err:?}");
        assert_eq!(frames.len() as u64, e.packets(), "{name}");
        assert!(frames
            .iter()
            .all(|f| f.data.len() as u64 <= u64::from(f.wire)));
    }
}

// ---------------------------------------------------------------------------------------------
// Inputs that lie: a bounded interface table

/// The smallest Interface Description Block: Ethernet, no snaplen, no options.
fn bare_idb(big: bool) -> Vec<u8> {
    let mut w = W::new(big);
    w.u16(1).u16(0).u32(0);
    block(big, 1, &w.out)
}

#[test]
fn a_section_with_too_many_interfaces_is_corrupt_after_its_frames() {
    use surgewatch_sensor::capture::pcap::MAX_INTERFACES;
    for big in [false, true] {
        let frame = payload(1, 60);
        let mut f = shb(big);
        f.extend(bare_idb(big));
        f.extend(epb(big, 0, 1_000_000, &frame, 60));
        for _ in 1..MAX_INTERFACES {
            f.extend(bare_idb(big));
        }
        // A frame on the last interface the table holds is still read.
        f.extend(epb(big, (MAX_INTERFACES - 1) as u32, 2_000_000, &frame, 60));
        let at = f.len() as u64;
        f.extend(bare_idb(big));
        f.extend(epb(big, 0, 3_000_000, &frame, 60));
        let (frames, err) = read_bytes(&f, 4096).unwrap();
        assert_eq!(frames.len(), 2, "the frames before the limit are delivered");
        match err {
            Some(CaptureError::Corrupt { offset, reason, .. }) => {
                assert_eq!(offset, at);
                assert!(reason.contains("interfaces"), "{reason}");
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }
}

#[test]
fn the_interface_limit_is_per_section() {
    use surgewatch_sensor::capture::pcap::MAX_INTERFACES;
    let frame = payload(2, 60);
    let mut f = Vec::new();
    for section in 0..2u64 {
        f.extend(shb(false));
        for _ in 0..MAX_INTERFACES {
            f.extend(bare_idb(false));
        }
        f.extend(epb(false, 7, section, &frame, 60));
    }
    let (frames, err) = read_bytes(&f, 4096).unwrap();
    assert!(err.is_none(), "{err:?}");
    assert_eq!(frames.len(), 2);
}

// ---------------------------------------------------------------------------------------------
// Inputs that lie: lengths and sub-second fields

/// Reads every frame of `bytes` and the anomalies the reader counted.
fn read_with_anomalies(
    bytes: &[u8],
) -> (
    Vec<F>,
    surgewatch_sensor::capture::pcap::RecordAnomalies,
    Option<CaptureError>,
) {
    let mut src = PcapFileSource::from_reader("mem", Cursor::new(bytes.to_vec()), 4096).unwrap();
    let mut frames = Vec::new();
    let err = loop {
        match src.poll(5, |f| {
            frames.push(F {
                data: f.data.to_vec(),
                ts: f.ts_nanos,
                wire: f.wire_len,
                link: f.link,
            })
        }) {
            Ok(Poll::Frames(_)) => {}
            Ok(_) => break None,
            Err(e) => break Some(e),
        }
    };
    (frames, src.anomalies(), err)
}

#[test]
fn classic_lying_lengths_are_the_captured_length_and_counted() {
    use surgewatch_sensor::capture::pcap::MAX_WIRE_LEN;
    for big in [false, true] {
        let with_orig = |seed: u32, orig: u32| Rec {
            orig,
            ..rec(seed, 0, payload(seed, 60))
        };
        let recs = [
            with_orig(1, 1514),             // honest: snaplen 60
            with_orig(2, 20),               // below the captured length
            with_orig(3, u32::MAX),         // a 4 GiB claim
            with_orig(4, MAX_WIRE_LEN),     // the largest believed
            with_orig(5, MAX_WIRE_LEN + 1), // one more
        ];
        let (frames, a, err) = read_with_anomalies(&pcap(big, false, 1, 65535, &recs));
        assert!(err.is_none(), "{err:?}");
        let wire: Vec<u32> = frames.iter().map(|f| f.wire).collect();
        assert_eq!(wire, [1514, 60, 60, MAX_WIRE_LEN, 60]);
        assert_eq!(frames[2].data, payload(3, 60), "the bytes are untouched");
        assert_eq!(
            (
                a.wire_len_below_captured,
                a.wire_len_implausible,
                a.subsecond_out_of_range
            ),
            (1, 2, 0)
        );
        assert_eq!(a.total(), 3);
    }
}

#[test]
fn classic_subsecond_out_of_range_skips_the_record_and_counts_it() {
    for (nanos, limit) in [(false, 1_000_000u32), (true, 1_000_000_000)] {
        let recs = [
            rec(10, limit - 1, payload(1, 40)),
            rec(11, limit, payload(2, 40)),
            rec(12, u32::MAX, payload(3, 40)),
            rec(13, 0, payload(4, 40)),
        ];
        let (frames, a, err) = read_with_anomalies(&pcap(false, nanos, 1, 65535, &recs));
        assert!(err.is_none(), "{err:?}");
        let secs: Vec<u64> = frames.iter().map(|f| f.ts / 1_000_000_000).collect();
        assert_eq!(secs, [10, 13], "nanos={nanos}");
        assert_eq!(frames[1].data, payload(4, 40));
        assert_eq!(a.subsecond_out_of_range, 2);
        assert_eq!(a.total(), 2);
    }
}

#[test]
fn pcapng_lying_lengths_are_the_captured_length_and_counted() {
    let big = true;
    let data = payload(9, 60);
    let mut f = shb(big);
    f.extend(idb(big, 1, 0, None, None));
    f.extend(epb(big, 0, 1, &data, 60));
    f.extend(epb(big, 0, 2, &data, u32::MAX));
    f.extend(epb(big, 0, 3, &data, 59));
    f.extend(pb(big, 0, 4, &data, 4_000_000_000));
    f.extend(spb(big, &data, 60));
    let (frames, a, err) = read_with_anomalies(&f);
    assert!(err.is_none(), "{err:?}");
    let wire: Vec<u32> = frames.iter().map(|f| f.wire).collect();
    assert_eq!(wire, [60, 60, 60, 60, 60]);
    assert_eq!((a.wire_len_below_captured, a.wire_len_implausible), (1, 2));
}

#[test]
fn well_formed_captures_have_no_anomalies() {
    let (frames, a, err) = read_with_anomalies(&pcap(false, true, 1, 65535, &classic_records()));
    assert!(err.is_none() && !frames.is_empty());
    assert_eq!(a.total(), 0);
}

// ---------------------------------------------------------------------------------------------
// Mutated captures (property tests): no panic, bounded memory, the undamaged prefix delivered

/// Valid captures of each format to mutate.
fn valid_captures() -> Vec<Vec<u8>> {
    let mut ng = shb(false);
    ng.extend(idb(false, 1, 0, Some(9), None));
    ng.extend(noise(false));
    for i in 0..6u32 {
        ng.extend(epb(
            false,
            0,
            u64::from(i) * 1_000,
            &payload(i, 40 + i as usize),
            1514,
        ));
    }
    ng.extend(spb(false, &payload(7, 60), 60));
    ng.extend(shb(true));
    ng.extend(idb(true, 101, 0, None, Some(-3)));
    ng.extend(pb(true, 0, 5, &payload(8, 33), 33));
    let recs: Vec<Rec> = (0..8)
        .map(|i| {
            rec(
                1_700_000_000 + i,
                i * 1000,
                payload(i, 20 + 30 * i as usize),
            )
        })
        .collect();
    vec![
        pcap(false, false, 1, 65535, &recs),
        pcap(true, true, 101, 65535, &recs),
        ng,
    ]
}

/// Every frame of `bytes` with the input offset just after its record, read one frame a
/// poll with a `buffer`-byte buffer; also the largest the read buffer became.
fn frames_with_ends(bytes: &[u8], buffer: usize) -> (Vec<(F, u64)>, usize) {
    let Ok(mut src) = PcapFileSource::from_reader("mut", Cursor::new(bytes.to_vec()), buffer)
    else {
        return (Vec::new(), 0);
    };
    let mut out = Vec::new();
    let mut max_buf = src.buffer_bytes();
    for _ in 0..=bytes.len() {
        let mut got = None;
        let r = src.poll(1, |f| {
            got = Some(F {
                data: f.data.to_vec(),
                ts: f.ts_nanos,
                wire: f.wire_len,
                link: f.link,
            })
        });
        max_buf = max_buf.max(src.buffer_bytes());
        match (r, got) {
            (Ok(Poll::Frames(1)), Some(f)) => out.push((f, src.progress().0)),
            (Ok(Poll::End) | Err(_), None) => break,
            (r, got) => panic!("poll(1) gave {r:?} with {got:?}"),
        }
    }
    assert!(matches!(src.poll(1, |_| {}), Ok(Poll::End)));
    (out, max_buf)
}

mod mutated {
    use super::*;
    use proptest::prelude::*;
    use proptest::sample::Index;

    /// A damage: flip a bit, set a byte, or write a length-like u32 at a position.
    #[derive(Clone, Debug)]
    enum Edit {
        Flip(Index, u8),
        Set(Index, u8),
        Len(Index, u32),
    }

    fn edit() -> impl Strategy<Value = Edit> {
        prop_oneof![
            (any::<Index>(), 0u8..8).prop_map(|(i, b)| Edit::Flip(i, b)),
            (any::<Index>(), any::<u8>()).prop_map(|(i, v)| Edit::Set(i, v)),
            (
                any::<Index>(),
                prop_oneof![
                    Just(0u32),
                    Just(12),
                    Just(u32::MAX),
                    Just(0x7fff_fffc),
                    Just(64 * 1024 * 1024),
                    any::<u32>()
                ]
            )
                .prop_map(|(i, v)| Edit::Len(i, v)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn mutated_captures_never_panic_stay_bounded_and_keep_the_undamaged_prefix(
            which in 0usize..3,
            edits in proptest::collection::vec(edit(), 0..4),
            cut in any::<Index>(),
            buffer_log2 in 6u32..14,
        ) {
            let original = &valid_captures()[which];
            let buffer = 1usize << buffer_log2;
            let mut bytes = original.clone();
            // The first damaged byte: the cut, or the earliest edit.
            let cut_at = cut.index(bytes.len() + 1);
            bytes.truncate(cut_at);
            let mut damage = cut_at;
            for e in &edits {
                if bytes.is_empty() {
                    break;
                }
                let n = bytes.len();
                match *e {
                    Edit::Flip(i, b) => {
                        let at = i.index(n);
                        bytes[at] ^= 1 << b;
                        damage = damage.min(at);
                    }
                    Edit::Set(i, v) => {
                        let at = i.index(n);
                        bytes[at] = v;
                        damage = damage.min(at);
                    }
                    Edit::Len(i, v) => {
                        let at = i.index(n);
                        for (k, b) in v.to_le_bytes().into_iter().enumerate() {
                            if let Some(x) = bytes.get_mut(at + k) {
                                *x = b;
                            }
                        }
                        damage = damage.min(at);
                    }
                }
            }
            let (want, _) = frames_with_ends(original, buffer);
            let (got, max_buf) = frames_with_ends(&bytes, buffer);
            // Memory: the buffer grows beyond what was asked only to hold bytes actually read.
            prop_assert!(
                max_buf <= buffer.max(2 * bytes.len()).max(64),
                "buffer {max_buf} for {} bytes", bytes.len()
            );
            // Every frame whose record lies wholly before the damage is delivered, unchanged.
            let intact: Vec<&F> = want
                .iter()
                .filter(|(_, end)| *end <= damage as u64)
                .map(|(f, _)| f)
                .collect();
            prop_assert!(got.len() >= intact.len(), "{} of {} intact frames", got.len(), intact.len());
            for (g, w) in got.iter().zip(&intact) {
                prop_assert_eq!(&g.0, *w);
            }
        }
    }
}
