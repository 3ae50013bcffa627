//! pcap and pcapng file source.
//!
//! [`PcapFileSource`] streams a capture file through one reusable read buffer and lends each
//! frame as a slice of that buffer: no per-frame allocation, no per-frame system call, and memory
//! bounded by the largest record rather than by the file size (and by twice the bytes read when
//! a length field claims more than the input holds).
//!
//! Both formats are parsed by hand rather than with the `pcap-file` crate: its pcapng parser
//! allocates a `Vec` of options for every packet block, reads Enhanced Packet Block timestamps as
//! nanoseconds whatever the interface's `if_tsresol` says, and does not expose the byte offsets
//! that [`CaptureError::Truncated`] and [`CaptureError::Corrupt`] report. The formats are small:
//! a fixed header per record (classic pcap) or a length-prefixed, length-suffixed block (pcapng).
//!
//! Supported:
//! - classic pcap in both byte orders, with microsecond (`0xa1b2c3d4`) or nanosecond
//!   (`0xa1b23c4d`) timestamps, and the Kuznetzov "modified" variant (`0xa1b2cd34`, 24-byte
//!   record headers);
//! - pcapng: any number of sections of either byte order, any number of Interface Description
//!   Blocks each with its own link type, `if_tsresol` (powers of ten and of two) and
//!   `if_tsoffset`; Enhanced, Simple and obsolete Packet Blocks. Every other block (name
//!   resolution, interface statistics, decryption secrets, custom, journal...) is skipped.
//!
//! Policy on bad input, never a panic:
//! - a record whose length is impossible → [`CaptureError::Corrupt`] at the record's offset;
//! - a file ending inside a record → [`CaptureError::Truncated`] at the record's offset;
//! - a pcapng section declaring more than [`MAX_INTERFACES`] interfaces →
//!   [`CaptureError::Corrupt`] at the offset of the first Interface Description Block beyond
//!   the limit (the interface table is the reader's only state that grows with the input, so it
//!   is bounded like the read buffer);
//! - a pcapng interface with a link type that [`LinkType::from_linktype`] does not know →
//!   [`CaptureError::UnsupportedLinkType`] when its Interface Description Block is read. The
//!   blocks that precede the first packet are read by [`PcapFileSource::open`], so a file whose
//!   interfaces are all declared up front (the usual case) fails at open time.
//!
//! Record fields that lie, one rule for every record type (counted per reason in
//! [`RecordAnomalies`], see [`PcapFileSource::anomalies`]):
//! - an original (wire) length below the captured length → the captured length is used (the
//!   bytes are there);
//! - an original length above [`MAX_WIRE_LEN`] (no link delivers such a frame: jumbo frames and
//!   64 KiB GRO/TSO aggregates are far below it) → the captured length is used, so a 60-byte
//!   frame claiming 4 GiB counts as 60 bytes, not as a terabit flood;
//! - a classic pcap sub-second field out of range (≥ 10⁶ microseconds, ≥ 10⁹ nanoseconds) →
//!   the record is skipped: its time is unknown, and a guessed time would move tick boundaries.
//!
//! Frames lent before an error stay valid and counted; after an error, `poll` returns
//! [`Poll::End`].

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::ops::Range;
use std::path::{Path, PathBuf};

use surgewatch_pipeline::LinkType;

use super::{Capture, CaptureError, Frame, Poll};

/// Largest captured length accepted for one frame (libpcap's and Wireshark's maximum snaplen).
/// A record claiming more is reported as [`CaptureError::Corrupt`].
pub const MAX_CAPLEN: u32 = 256 * 1024;

/// Largest original (wire) length believed, the same as the largest captured length; a record
/// claiming more is given its captured length (see the module docs).
pub const MAX_WIRE_LEN: u32 = MAX_CAPLEN;

/// Records whose fields lied, corrected or skipped by the reader (see the module docs).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecordAnomalies {
    /// Original length below the captured length: the captured length was used.
    pub wire_len_below_captured: u64,
    /// Original length above [`MAX_WIRE_LEN`]: the captured length was used.
    pub wire_len_implausible: u64,
    /// Classic pcap sub-second field out of range: the record was skipped.
    pub subsecond_out_of_range: u64,
}

impl RecordAnomalies {
    /// Sum of every reason.
    pub fn total(&self) -> u64 {
        self.wire_len_below_captured + self.wire_len_implausible + self.subsecond_out_of_range
    }

    fn count(&mut self, a: Anomaly) {
        match a {
            Anomaly::WireLenBelowCaptured => self.wire_len_below_captured += 1,
            Anomaly::WireLenImplausible => self.wire_len_implausible += 1,
            Anomaly::SubsecondOutOfRange => self.subsecond_out_of_range += 1,
        }
    }
}

/// One reason of [`RecordAnomalies`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Anomaly {
    WireLenBelowCaptured,
    WireLenImplausible,
    SubsecondOutOfRange,
}

/// The original length believed for a record of `caplen` captured bytes (at most
/// [`MAX_CAPLEN`]) claiming `wire_len`, and the anomaly if it was not `wire_len`.
fn believed_wire_len(caplen: u32, wire_len: u32) -> (u32, Option<Anomaly>) {
    if wire_len < caplen {
        (caplen, Some(Anomaly::WireLenBelowCaptured))
    } else if wire_len > MAX_WIRE_LEN {
        (caplen, Some(Anomaly::WireLenImplausible))
    } else {
        (wire_len, None)
    }
}

/// Default size of the read buffer.
pub const DEFAULT_BUFFER_BYTES: usize = 4 * 1024 * 1024;

/// Largest the read buffer may grow to hold one record (a pcapng block of any type); a block
/// claiming more is reported as [`CaptureError::Corrupt`].
pub const MAX_BUFFER_BYTES: usize = 256 * 1024 * 1024;

/// Most Interface Description Blocks accepted in one pcapng section (each costs a table entry
/// for the rest of the section); one more is reported as [`CaptureError::Corrupt`].
pub const MAX_INTERFACES: usize = 65_536;

/// Smallest read buffer; smaller requests are rounded up to this.
const MIN_BUFFER_BYTES: usize = 64;

/// pcapng Section Header Block type, the same in both byte orders.
const SHB_TYPE: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];
/// pcapng byte-order magic as written by a big-endian writer.
const BOM_BE: [u8; 4] = [0x1a, 0x2b, 0x3c, 0x4d];
/// pcapng byte-order magic as written by a little-endian writer.
const BOM_LE: [u8; 4] = [0x4d, 0x3c, 0x2b, 0x1a];

/// pcapng block types this reader interprets.
const BT_IDB: u32 = 0x0000_0001;
const BT_PB: u32 = 0x0000_0002;
const BT_SPB: u32 = 0x0000_0003;
const BT_EPB: u32 = 0x0000_0006;

/// Length of the classic pcap file header.
const PCAP_FILE_HEADER: usize = 24;

/// A pcap or pcapng capture read from a file (or any byte stream), lending frames zero-copy.
///
/// ```no_run
/// use surgewatch_sensor::capture::{pcap::PcapFileSource, Capture, Poll};
///
/// let mut src = PcapFileSource::open("trace.pcapng")?;
/// let mut bytes = 0u64;
/// while let Poll::Frames(_) = src.poll(1024, |f| bytes += u64::from(f.wire_len))? {}
/// # Ok::<(), surgewatch_sensor::capture::CaptureError>(())
/// ```
pub struct PcapFileSource {
    path: PathBuf,
    reader: Box<dyn Read + Send>,
    /// Total size of the input when known (regular files).
    size: Option<u64>,
    /// Read buffer; `buf[start..end]` holds bytes read but not yet consumed.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Input offset of `buf[0]`.
    base: u64,
    /// The reader returned end of file.
    eof: bool,
    anomalies: RecordAnomalies,
    state: State,
    format: Format,
}

/// Where the source stands between polls.
enum State {
    Running,
    /// Frames were lent in the poll that met this error: report it on the next poll.
    Failed(CaptureError),
    /// End of input or error reported: every further poll returns `End`.
    Done,
}

enum Format {
    Pcap(PcapFormat),
    PcapNg(NgFormat),
}

/// Classic pcap parameters from the file header.
struct PcapFormat {
    big_endian: bool,
    /// Multiplier from the sub-second field to nanoseconds (1000 or 1).
    frac_to_ns: u64,
    /// Sub-second fields must be below this (10⁶ or 10⁹).
    frac_limit: u64,
    /// Record header length: 16, or 24 for the modified format.
    record_header: usize,
    link: LinkType,
}

/// pcapng state: the current section's byte order and interfaces.
struct NgFormat {
    big_endian: bool,
    interfaces: Vec<Interface>,
    /// Timestamp of the last Enhanced or obsolete Packet Block, given to Simple Packet Blocks.
    last_ts_nanos: u64,
}

#[derive(Copy, Clone, Debug)]
struct Interface {
    link: LinkType,
    /// 0 means unlimited.
    snaplen: u32,
    scale: TsScale,
    /// `if_tsoffset` in nanoseconds.
    offset_nanos: i128,
}

/// Conversion from an interface's timestamp units to nanoseconds.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum TsScale {
    /// Units of 10^-k s with k <= 9.
    Mul(u64),
    /// Units of 10^-k s with 9 < k <= 28.
    Div(u64),
    /// Units of 2^-k s.
    Pow2(u32),
    /// Units so small that every representable timestamp is below one nanosecond.
    Zero,
}

impl TsScale {
    /// Decodes the `if_tsresol` option byte.
    fn from_tsresol(v: u8) -> Self {
        if v & 0x80 != 0 {
            return TsScale::Pow2(u32::from(v & 0x7f));
        }
        let k = u32::from(v);
        if k <= 9 {
            TsScale::Mul(10u64.pow(9 - k))
        } else if k - 9 <= 19 {
            TsScale::Div(10u64.pow(k - 9))
        } else {
            TsScale::Zero
        }
    }

    fn to_nanos(self, ts: u64) -> u64 {
        match self {
            TsScale::Mul(m) => ts.saturating_mul(m),
            TsScale::Div(d) => ts / d,
            // ts * 1e9 < 2^94, and k <= 127: no overflow, then saturate to u64.
            TsScale::Pow2(k) => {
                u64::try_from((u128::from(ts) * 1_000_000_000) >> k).unwrap_or(u64::MAX)
            }
            TsScale::Zero => 0,
        }
    }
}

impl Interface {
    fn ts_nanos(&self, ts: u64) -> u64 {
        let ns = self.scale.to_nanos(ts);
        if self.offset_nanos == 0 {
            return ns;
        }
        let t = (i128::from(ns) + self.offset_nanos).clamp(0, i128::from(u64::MAX));
        u64::try_from(t).unwrap_or(0)
    }
}

/// A frame found in the buffer; `data` is relative to the record start.
struct Packet {
    len: usize,
    data: Range<usize>,
    ts_nanos: u64,
    wire_len: u32,
    link: LinkType,
    /// Set when `wire_len` is not what the record claimed.
    anomaly: Option<Anomaly>,
}

/// What the parser made of the bytes at the current position.
enum Step {
    /// This many bytes, counted from the record start, are needed to go on.
    Need(usize),
    /// A block that lends no frame, of this length, was processed.
    Skip(usize),
    /// A packet record of this length was skipped for this reason.
    Reject(usize, Anomaly),
    Packet(Packet),
    Corrupt(String),
    UnsupportedLinkType(u32),
}

#[inline]
fn u16_at(b: &[u8], at: usize, big: bool) -> u16 {
    let mut a = [0u8; 2];
    if let Some(s) = b.get(at..at + 2) {
        a.copy_from_slice(s);
    }
    if big {
        u16::from_be_bytes(a)
    } else {
        u16::from_le_bytes(a)
    }
}

#[inline]
fn u32_at(b: &[u8], at: usize, big: bool) -> u32 {
    let mut a = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        a.copy_from_slice(s);
    }
    if big {
        u32::from_be_bytes(a)
    } else {
        u32::from_le_bytes(a)
    }
}

#[inline]
fn u64_at(b: &[u8], at: usize, big: bool) -> u64 {
    let mut a = [0u8; 8];
    if let Some(s) = b.get(at..at + 8) {
        a.copy_from_slice(s);
    }
    if big {
        u64::from_be_bytes(a)
    } else {
        u64::from_le_bytes(a)
    }
}

impl PcapFormat {
    /// Parses the record at the start of `b`.
    #[inline]
    fn step(&self, b: &[u8]) -> Step {
        let h = self.record_header;
        if b.len() < h {
            return Step::Need(h);
        }
        let big = self.big_endian;
        let caplen = u32_at(b, 8, big);
        if caplen > MAX_CAPLEN {
            return Step::Corrupt(format!(
                "record captured length {caplen} exceeds the maximum {MAX_CAPLEN}"
            ));
        }
        let len = h + caplen as usize;
        if b.len() < len {
            return Step::Need(len);
        }
        let secs = u64::from(u32_at(b, 0, big));
        let frac = u64::from(u32_at(b, 4, big));
        if frac >= self.frac_limit {
            return Step::Reject(len, Anomaly::SubsecondOutOfRange);
        }
        let (wire_len, anomaly) = believed_wire_len(caplen, u32_at(b, 12, big));
        Step::Packet(Packet {
            len,
            data: h..len,
            ts_nanos: secs
                .saturating_mul(1_000_000_000)
                .saturating_add(frac.saturating_mul(self.frac_to_ns)),
            wire_len,
            link: self.link,
            anomaly,
        })
    }
}

impl NgFormat {
    /// Parses the block at the start of `b`, updating the section state for SHBs and IDBs.
    fn step(&mut self, b: &[u8]) -> Step {
        if b.len() < 8 {
            return Step::Need(8);
        }
        let is_shb = b.get(0..4) == Some(&SHB_TYPE[..]);
        let big = if is_shb {
            if b.len() < 12 {
                return Step::Need(12);
            }
            match b.get(8..12) {
                Some(m) if m == BOM_BE => true,
                Some(m) if m == BOM_LE => false,
                _ => return Step::Corrupt("section header with a bad byte-order magic".into()),
            }
        } else {
            self.big_endian
        };
        let block_type = u32_at(b, 0, big);
        let total = u32_at(b, 4, big);
        if total < 12 || total & 3 != 0 {
            return Step::Corrupt(format!(
                "block type {block_type:#x}: total length {total} is not a multiple of 4 of at least 12"
            ));
        }
        let min = if is_shb {
            28
        } else {
            match block_type {
                BT_IDB => 20,
                BT_PB | BT_EPB => 32,
                BT_SPB => 16,
                _ => 12,
            }
        };
        if total < min {
            return Step::Corrupt(format!(
                "block type {block_type:#x}: total length {total} below the minimum {min}"
            ));
        }
        let total = total as usize;
        if total > MAX_BUFFER_BYTES {
            return Step::Corrupt(format!(
                "block type {block_type:#x}: total length {total} exceeds the maximum {MAX_BUFFER_BYTES}"
            ));
        }
        if b.len() < total {
            return Step::Need(total);
        }
        let trailer = u32_at(b, total - 4, big);
        if trailer as usize != total {
            return Step::Corrupt(format!(
                "block type {block_type:#x}: trailing length {trailer} differs from leading length {total}"
            ));
        }
        // Block body and options end here.
        let body_end = total - 4;

        if is_shb {
            let major = u16_at(b, 12, big);
            if major != 1 {
                return Step::Corrupt(format!("unsupported pcapng major version {major}"));
            }
            self.big_endian = big;
            self.interfaces.clear();
            return Step::Skip(total);
        }

        match block_type {
            BT_IDB => self.interface(b, body_end, total),
            BT_EPB | BT_PB => {
                let (iface, hdr) = if block_type == BT_EPB {
                    (u32_at(b, 8, big), "enhanced")
                } else {
                    (u32::from(u16_at(b, 8, big)), "obsolete")
                };
                let ts = (u64::from(u32_at(b, 12, big)) << 32) | u64::from(u32_at(b, 16, big));
                let caplen = u32_at(b, 20, big);
                let wire_len = u32_at(b, 24, big);
                if caplen > MAX_CAPLEN {
                    return Step::Corrupt(format!(
                        "{hdr} packet block: captured length {caplen} exceeds the maximum {MAX_CAPLEN}"
                    ));
                }
                let data_end = 28 + caplen as usize;
                if data_end > body_end {
                    return Step::Corrupt(format!(
                        "{hdr} packet block: captured length {caplen} exceeds block length {total}"
                    ));
                }
                let Some(i) = self.interfaces.get(iface as usize) else {
                    return Step::Corrupt(format!(
                        "{hdr} packet block: interface {iface} is not defined in this section"
                    ));
                };
                let ts_nanos = i.ts_nanos(ts);
                self.last_ts_nanos = ts_nanos;
                let (wire_len, anomaly) = believed_wire_len(caplen, wire_len);
                Step::Packet(Packet {
                    len: total,
                    data: 28..data_end,
                    ts_nanos,
                    wire_len,
                    link: i.link,
                    anomaly,
                })
            }
            BT_SPB => {
                let Some(i) = self.interfaces.first() else {
                    return Step::Corrupt(
                        "simple packet block with no interface defined in this section".into(),
                    );
                };
                let wire_len = u32_at(b, 8, big);
                let caplen = if i.snaplen != 0 {
                    wire_len.min(i.snaplen)
                } else {
                    wire_len
                };
                if caplen > MAX_CAPLEN {
                    return Step::Corrupt(format!(
                        "simple packet block: captured length {caplen} exceeds the maximum {MAX_CAPLEN}"
                    ));
                }
                let data_end = 12 + caplen as usize;
                if data_end > body_end {
                    return Step::Corrupt(format!(
                        "simple packet block: captured length {caplen} exceeds block length {total}"
                    ));
                }
                // caplen <= wire_len here, so only an implausible claim is corrected.
                let (wire_len, anomaly) = believed_wire_len(caplen, wire_len);
                Step::Packet(Packet {
                    len: total,
                    data: 12..data_end,
                    ts_nanos: self.last_ts_nanos,
                    wire_len,
                    link: i.link,
                    anomaly,
                })
            }
            _ => Step::Skip(total),
        }
    }

    /// Interface Description Block: link type, snaplen, `if_tsresol`, `if_tsoffset`.
    fn interface(&mut self, b: &[u8], body_end: usize, total: usize) -> Step {
        let big = self.big_endian;
        let linktype = u16_at(b, 8, big);
        let snaplen = u32_at(b, 12, big);
        let mut scale = TsScale::Mul(1_000);
        let mut offset_nanos = 0i128;
        let mut at = 16;
        while at + 4 <= body_end {
            let code = u16_at(b, at, big);
            let len = usize::from(u16_at(b, at + 2, big));
            let value = at + 4;
            if value + len > body_end {
                return Step::Corrupt(format!(
                    "interface description block: option {code} of length {len} overruns the block"
                ));
            }
            match (code, len) {
                (0, _) => break,
                (9, 1) => scale = TsScale::from_tsresol(b.get(value).copied().unwrap_or(6)),
                (14, 8) => {
                    // Signed seconds (pcapng spec, section 4.2).
                    offset_nanos = i128::from(u64_at(b, value, big) as i64) * 1_000_000_000;
                }
                _ => {}
            }
            at = value + len.next_multiple_of(4);
        }
        let Some(link) = LinkType::from_linktype(u32::from(linktype)) else {
            return Step::UnsupportedLinkType(u32::from(linktype));
        };
        if self.interfaces.len() >= MAX_INTERFACES {
            return Step::Corrupt(format!(
                "interface description block: more than {MAX_INTERFACES} interfaces in this section"
            ));
        }
        self.interfaces.push(Interface {
            link,
            snaplen,
            scale,
            offset_nanos,
        });
        Step::Skip(total)
    }

    /// Whether the block at the start of `b` (at least 8 bytes) lends a frame.
    fn is_packet_block(&self, b: &[u8]) -> bool {
        b.get(0..4) != Some(&SHB_TYPE[..])
            && matches!(u32_at(b, 0, self.big_endian), BT_PB | BT_SPB | BT_EPB)
    }
}

impl PcapFileSource {
    /// Opens a pcap or pcapng file, detected by its magic number (not its name).
    ///
    /// Reads the file header and, for pcapng, every block before the first packet, so an
    /// unsupported link type or a damaged header is reported here.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, CaptureError> {
        Self::open_with_buffer(path, DEFAULT_BUFFER_BYTES)
    }

    /// Like [`open`](Self::open), with a read buffer of `buffer_bytes` (rounded to at least
    /// 64 bytes and at most the file size; it still grows to hold a larger record).
    pub fn open_with_buffer(
        path: impl AsRef<Path>,
        buffer_bytes: usize,
    ) -> Result<Self, CaptureError> {
        let path = path.as_ref();
        let io_err = |source| CaptureError::Io {
            path: path.to_path_buf(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(io_err)?;
        if meta.is_dir() {
            return Err(io_err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "is a directory, not a capture file",
            )));
        }
        let file = File::open(path).map_err(io_err)?;
        let size = meta.is_file().then_some(meta.len());
        let buffer_bytes = match size {
            Some(s) => buffer_bytes.min(usize::try_from(s).unwrap_or(usize::MAX)),
            None => buffer_bytes,
        };
        Self::start(path.to_path_buf(), Box::new(file), size, buffer_bytes)
    }

    /// Reads a capture from any byte stream (a pipe, standard input, memory); `name` is only
    /// used in error messages. [`progress`](Capture::progress) reports no total size.
    pub fn from_reader(
        name: impl Into<PathBuf>,
        reader: impl Read + Send + 'static,
        buffer_bytes: usize,
    ) -> Result<Self, CaptureError> {
        Self::start(name.into(), Box::new(reader), None, buffer_bytes)
    }

    /// Records read so far whose fields lied, by reason (see the module docs).
    pub fn anomalies(&self) -> RecordAnomalies {
        self.anomalies
    }

    /// Current size of the read buffer: the larger of the requested size and the largest
    /// record met, never above [`MAX_BUFFER_BYTES`].
    pub fn buffer_bytes(&self) -> usize {
        self.buf.len()
    }

    /// The file (or stream name) being read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn start(
        path: PathBuf,
        reader: Box<dyn Read + Send>,
        size: Option<u64>,
        buffer_bytes: usize,
    ) -> Result<Self, CaptureError> {
        let mut src = PcapFileSource {
            path,
            reader,
            size,
            buf: vec![0; buffer_bytes.clamp(MIN_BUFFER_BYTES, MAX_BUFFER_BYTES)],
            start: 0,
            end: 0,
            base: 0,
            eof: false,
            anomalies: RecordAnomalies::default(),
            state: State::Running,
            // Replaced below once the magic is known.
            format: Format::PcapNg(NgFormat {
                big_endian: false,
                interfaces: Vec::new(),
                last_ts_nanos: 0,
            }),
        };
        src.fill(PCAP_FILE_HEADER)?;
        let head = &src.buf[..src.end];
        let not_a_capture = |reason: String| CaptureError::NotACapture {
            path: src.path.clone(),
            reason,
        };
        let Some(magic) = head.get(0..4) else {
            return Err(not_a_capture(if head.is_empty() {
                "empty file".into()
            } else {
                format!("only {} bytes long", head.len())
            }));
        };
        if magic == SHB_TYPE {
            match head.get(8..12) {
                Some(m) if m == BOM_BE || m == BOM_LE => {}
                // Cut before the magic: the file is short, not of another kind.
                None => {
                    return Err(CaptureError::Truncated {
                        path: src.path.clone(),
                        offset: 0,
                        reason: "pcapng section header".into(),
                    })
                }
                Some(_) => {
                    return Err(not_a_capture(
                        "pcapng section header without a byte-order magic".into(),
                    ))
                }
            }
            // The first block is the SHB; process it and the blocks up to the first packet.
            src.advance(true)?;
            return Ok(src);
        }
        let (big_endian, frac_to_ns, record_header) = match magic {
            [0xd4, 0xc3, 0xb2, 0xa1] => (false, 1_000, 16),
            [0xa1, 0xb2, 0xc3, 0xd4] => (true, 1_000, 16),
            [0x4d, 0x3c, 0xb2, 0xa1] => (false, 1, 16),
            [0xa1, 0xb2, 0x3c, 0x4d] => (true, 1, 16),
            [0x34, 0xcd, 0xb2, 0xa1] => (false, 1_000, 24),
            [0xa1, 0xb2, 0xcd, 0x34] => (true, 1_000, 24),
            _ => return Err(not_a_capture(format!("unknown magic number {magic:02x?}"))),
        };
        if head.len() < PCAP_FILE_HEADER {
            return Err(CaptureError::Truncated {
                path: src.path,
                offset: 0,
                reason: "pcap file header".into(),
            });
        }
        // Low 26 bits: link type; high bits: FCS information (libpcap's LT_LINKTYPE).
        let linktype = u32_at(head, 20, big_endian) & 0x03ff_ffff;
        let Some(link) = LinkType::from_linktype(linktype) else {
            return Err(CaptureError::UnsupportedLinkType {
                path: src.path,
                linktype,
            });
        };
        src.format = Format::Pcap(PcapFormat {
            big_endian,
            frac_to_ns,
            frac_limit: 1_000_000_000 / frac_to_ns,
            record_header,
            link,
        });
        src.start = PCAP_FILE_HEADER;
        Ok(src)
    }

    /// Input offset of the next unconsumed byte.
    fn offset(&self) -> u64 {
        self.base + self.start as u64
    }

    /// Makes at least `need` unconsumed bytes available if the input has them; returns whether
    /// it does. Compacts the buffer, reads until it is full or the input ends, and grows the
    /// buffer only when a full buffer still holds less than `need`.
    fn fill(&mut self, need: usize) -> Result<bool, CaptureError> {
        if self.end - self.start >= need {
            return Ok(true);
        }
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.base += self.start as u64;
            self.end -= self.start;
            self.start = 0;
        }
        loop {
            while self.end < self.buf.len() && !self.eof {
                match self.reader.read(&mut self.buf[self.end..]) {
                    Ok(0) => self.eof = true,
                    Ok(n) => self.end += n.min(self.buf.len() - self.end),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(source) => {
                        return Err(CaptureError::Io {
                            path: self.path.clone(),
                            source,
                        })
                    }
                }
            }
            if self.end >= need {
                return Ok(true);
            }
            if self.eof {
                return Ok(false);
            }
            // The buffer is full yet too small for this record: grow it, at most doubling, so
            // that a length field claiming more than the input holds costs at most twice the
            // bytes actually read, not the claim (callers never ask for more than
            // MAX_BUFFER_BYTES).
            let new_len = need.min(self.buf.len().saturating_mul(2).max(MIN_BUFFER_BYTES));
            self.buf.resize(new_len.max(self.buf.len() + 1), 0);
        }
    }

    /// Parses up to the next frame, processing non-frame blocks on the way. Returns `None` at
    /// a clean end of input, or, with `stop_before_packet`, when the next record is a frame
    /// (left unconsumed).
    fn advance(&mut self, stop_before_packet: bool) -> Result<Option<Packet>, CaptureError> {
        loop {
            let avail = &self.buf[self.start..self.end];
            let step = match &mut self.format {
                Format::Pcap(p) => {
                    if stop_before_packet {
                        return Ok(None);
                    }
                    p.step(avail)
                }
                Format::PcapNg(ng) => {
                    if stop_before_packet && avail.len() >= 8 && ng.is_packet_block(avail) {
                        return Ok(None);
                    }
                    ng.step(avail)
                }
            };
            match step {
                Step::Packet(mut p) => {
                    if let Some(a) = p.anomaly {
                        self.anomalies.count(a);
                    }
                    p.data = self.start + p.data.start..self.start + p.data.end;
                    self.start += p.len;
                    return Ok(Some(p));
                }
                Step::Skip(len) => self.start += len,
                Step::Reject(len, a) => {
                    self.anomalies.count(a);
                    self.start += len;
                }
                Step::Need(need) => {
                    if !self.fill(need)? {
                        if self.start == self.end {
                            return Ok(None);
                        }
                        return Err(CaptureError::Truncated {
                            path: self.path.clone(),
                            offset: self.offset(),
                            reason: format!(
                                "{} bytes left, the record needs {need}",
                                self.end - self.start
                            ),
                        });
                    }
                }
                Step::Corrupt(reason) => {
                    return Err(CaptureError::Corrupt {
                        path: self.path.clone(),
                        offset: self.offset(),
                        reason,
                    })
                }
                Step::UnsupportedLinkType(linktype) => {
                    return Err(CaptureError::UnsupportedLinkType {
                        path: self.path.clone(),
                        linktype,
                    })
                }
            }
        }
    }
}

impl Capture for PcapFileSource {
    /// Lends up to `budget` frames. A `budget` of 0 lends nothing and returns [`Poll::Idle`].
    /// An error met after some frames were lent is returned by the next call.
    fn poll<F: FnMut(&Frame<'_>)>(
        &mut self,
        budget: usize,
        mut f: F,
    ) -> Result<Poll, CaptureError> {
        match std::mem::replace(&mut self.state, State::Done) {
            State::Running => self.state = State::Running,
            State::Failed(e) => return Err(e),
            State::Done => return Ok(Poll::End),
        }
        if budget == 0 {
            return Ok(Poll::Idle);
        }
        let mut n = 0;
        while n < budget {
            match self.advance(false) {
                Ok(Some(p)) => {
                    let Some(data) = self.buf.get(p.data) else {
                        // Unreachable: the parser checked the record lies in the buffer.
                        self.state = State::Done;
                        return Err(CaptureError::Corrupt {
                            path: self.path.clone(),
                            offset: self.offset(),
                            reason: "internal error: frame outside the read buffer".into(),
                        });
                    };
                    f(&Frame {
                        data,
                        ts_nanos: p.ts_nanos,
                        wire_len: p.wire_len,
                        link: p.link,
                    });
                    n += 1;
                }
                Ok(None) => {
                    self.state = State::Done;
                    break;
                }
                Err(e) => {
                    self.state = State::Done;
                    if n == 0 {
                        return Err(e);
                    }
                    self.state = State::Failed(e);
                    break;
                }
            }
        }
        Ok(if n == 0 { Poll::End } else { Poll::Frames(n) })
    }

    /// Bytes consumed so far and, for regular files, the file size.
    fn progress(&self) -> (u64, Option<u64>) {
        (self.offset(), self.size)
    }
}

impl fmt::Debug for PcapFileSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PcapFileSource")
            .field("path", &self.path)
            .field("offset", &self.offset())
            .field("size", &self.size)
            .field("buffer_bytes", &self.buf.len())
            .field(
                "format",
                &match self.format {
                    Format::Pcap(_) => "pcap",
                    Format::PcapNg(_) => "pcapng",
                },
            )
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tsresol_decimal() {
        assert_eq!(TsScale::from_tsresol(6), TsScale::Mul(1_000));
        assert_eq!(TsScale::from_tsresol(9), TsScale::Mul(1));
        assert_eq!(TsScale::from_tsresol(0), TsScale::Mul(1_000_000_000));
        assert_eq!(TsScale::from_tsresol(12), TsScale::Div(1_000));
        assert_eq!(TsScale::from_tsresol(28), TsScale::Div(10u64.pow(19)));
        assert_eq!(TsScale::from_tsresol(29), TsScale::Zero);
        assert_eq!(TsScale::from_tsresol(127), TsScale::Zero);
        assert_eq!(TsScale::from_tsresol(6).to_nanos(1_500_000), 1_500_000_000);
        assert_eq!(TsScale::from_tsresol(12).to_nanos(1_500_000), 1_500);
        assert_eq!(TsScale::from_tsresol(0).to_nanos(u64::MAX), u64::MAX);
    }

    #[test]
    fn tsresol_binary() {
        assert_eq!(TsScale::from_tsresol(0x80), TsScale::Pow2(0));
        assert_eq!(
            TsScale::from_tsresol(0x80 | 10).to_nanos(1024 * 3),
            3_000_000_000
        );
        assert_eq!(
            TsScale::from_tsresol(0x80 | 20).to_nanos(1 << 19),
            500_000_000
        );
        assert_eq!(TsScale::from_tsresol(0x80).to_nanos(u64::MAX), u64::MAX);
        assert_eq!(TsScale::from_tsresol(0xff).to_nanos(u64::MAX), 0);
    }

    #[test]
    fn tsoffset_saturates() {
        let mut i = Interface {
            link: LinkType::Ethernet,
            snaplen: 0,
            scale: TsScale::Mul(1),
            offset_nanos: -5_000_000_000,
        };
        assert_eq!(i.ts_nanos(1_000), 0);
        assert_eq!(i.ts_nanos(6_000_000_000), 1_000_000_000);
        i.offset_nanos = i128::from(i64::MAX) * 1_000_000_000;
        assert_eq!(i.ts_nanos(1), u64::MAX);
    }
}
