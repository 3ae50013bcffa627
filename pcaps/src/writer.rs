//! Hand-written capture writers: classic pcap (little- or big-endian, micro- or nanosecond
//! magic) and pcapng (SHB + IDB + EPB, optional `if_tsresol` of nanoseconds).

use std::io::{self, Write};

/// `LINKTYPE_ETHERNET`.
pub const LINKTYPE_ETHERNET: u32 = 1;

/// File format of a capture.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// Classic pcap.
    Pcap {
        /// Nanosecond magic (`0xa1b23c4d`) instead of microseconds (`0xa1b2c3d4`).
        nanos: bool,
        /// Written in big-endian byte order.
        big_endian: bool,
    },
    /// pcapng with one section and one Ethernet interface.
    Pcapng {
        /// Timestamps in nanoseconds (`if_tsresol` = 9) instead of the default microseconds.
        nanos: bool,
    },
}

impl Format {
    /// Little-endian microsecond pcap, the most common format.
    pub const PCAP_US: Format = Format::Pcap {
        nanos: false,
        big_endian: false,
    };
    /// Little-endian nanosecond pcap.
    pub const PCAP_NS: Format = Format::Pcap {
        nanos: true,
        big_endian: false,
    };
    /// Big-endian microsecond pcap.
    pub const PCAP_US_BE: Format = Format::Pcap {
        nanos: false,
        big_endian: true,
    };
    /// pcapng with microsecond timestamps.
    pub const PCAPNG_US: Format = Format::Pcapng { nanos: false };
    /// pcapng with nanosecond timestamps.
    pub const PCAPNG_NS: Format = Format::Pcapng { nanos: true };

    /// File extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Pcap { .. } => "pcap",
            Format::Pcapng { .. } => "pcapng",
        }
    }

    /// Timestamp resolution in nanoseconds (1000 or 1).
    pub fn resolution_ns(self) -> u64 {
        match self {
            Format::Pcap { nanos: true, .. } | Format::Pcapng { nanos: true } => 1,
            _ => 1000,
        }
    }

    /// Short name for `expected.json`: `pcap_us`, `pcap_ns`, `pcap_us_be`, `pcapng_us`, ...
    pub fn name(self) -> &'static str {
        match self {
            Format::Pcap {
                nanos: false,
                big_endian: false,
            } => "pcap_us",
            Format::Pcap {
                nanos: true,
                big_endian: false,
            } => "pcap_ns",
            Format::Pcap {
                nanos: false,
                big_endian: true,
            } => "pcap_us_be",
            Format::Pcap {
                nanos: true,
                big_endian: true,
            } => "pcap_ns_be",
            Format::Pcapng { nanos: false } => "pcapng_us",
            Format::Pcapng { nanos: true } => "pcapng_ns",
        }
    }
}

/// Streams frames into a pcap or pcapng file.
#[derive(Debug)]
pub struct CaptureWriter<W: Write> {
    w: W,
    format: Format,
    snaplen: u32,
}

impl<W: Write> CaptureWriter<W> {
    /// Writes the file header(s). Frames longer than `snaplen` are cut to it.
    pub fn new(mut w: W, format: Format, snaplen: u32, linktype: u32) -> io::Result<Self> {
        match format {
            Format::Pcap { nanos, big_endian } => {
                let magic: u32 = if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 };
                let mut h = Vec::with_capacity(24);
                let put32 = |h: &mut Vec<u8>, v: u32| {
                    h.extend_from_slice(&if big_endian {
                        v.to_be_bytes()
                    } else {
                        v.to_le_bytes()
                    })
                };
                put32(&mut h, magic);
                let (major, minor) = (2u16, 4u16);
                for v in [major, minor] {
                    h.extend_from_slice(&if big_endian {
                        v.to_be_bytes()
                    } else {
                        v.to_le_bytes()
                    });
                }
                put32(&mut h, 0); // thiszone
                put32(&mut h, 0); // sigfigs
                put32(&mut h, snaplen);
                put32(&mut h, linktype);
                w.write_all(&h)?;
            }
            Format::Pcapng { nanos } => {
                // Section Header Block with shb_userappl.
                let mut opts = Vec::new();
                push_option(&mut opts, 4, b"surgewatch-pcaps");
                push_option(&mut opts, 0, b"");
                let mut body = Vec::new();
                body.extend_from_slice(&0x1a2b_3c4du32.to_le_bytes());
                body.extend_from_slice(&1u16.to_le_bytes());
                body.extend_from_slice(&0u16.to_le_bytes());
                body.extend_from_slice(&u64::MAX.to_le_bytes()); // section length unknown
                body.extend_from_slice(&opts);
                write_block(&mut w, 0x0a0d_0d0a, &body)?;
                // Interface Description Block.
                let mut body = Vec::new();
                body.extend_from_slice(&(linktype as u16).to_le_bytes());
                body.extend_from_slice(&0u16.to_le_bytes());
                body.extend_from_slice(&snaplen.to_le_bytes());
                if nanos {
                    push_option(&mut body, 9, &[9]); // if_tsresol = 10^-9
                    push_option(&mut body, 0, b"");
                }
                write_block(&mut w, 1, &body)?;
            }
        }
        Ok(CaptureWriter { w, format, snaplen })
    }

    /// The format being written.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Writes one frame. `data` is what was captured (cut to the snaplen here if longer);
    /// `orig_len` is the frame's length on the wire. `ts_ns` is truncated to the resolution.
    pub fn write(&mut self, ts_ns: u64, data: &[u8], orig_len: u32) -> io::Result<()> {
        let cap = data.len().min(self.snaplen as usize);
        let data = &data[..cap];
        let orig_len = orig_len.max(cap as u32);
        match self.format {
            Format::Pcap { nanos, big_endian } => {
                let secs = (ts_ns / 1_000_000_000) as u32;
                let frac = if nanos {
                    (ts_ns % 1_000_000_000) as u32
                } else {
                    (ts_ns % 1_000_000_000 / 1000) as u32
                };
                let mut h = [0u8; 16];
                for (i, v) in [secs, frac, cap as u32, orig_len].into_iter().enumerate() {
                    let b = if big_endian {
                        v.to_be_bytes()
                    } else {
                        v.to_le_bytes()
                    };
                    h[i * 4..i * 4 + 4].copy_from_slice(&b);
                }
                self.w.write_all(&h)?;
                self.w.write_all(data)
            }
            Format::Pcapng { nanos } => {
                let ts = if nanos { ts_ns } else { ts_ns / 1000 };
                let padded = cap.div_ceil(4) * 4;
                let total = (32 + padded) as u32;
                let mut h = [0u8; 28];
                let fields = [
                    6,
                    total,
                    0, // interface id
                    (ts >> 32) as u32,
                    ts as u32,
                    cap as u32,
                    orig_len,
                ];
                for (i, v) in fields.into_iter().enumerate() {
                    h[i * 4..i * 4 + 4].copy_from_slice(&v.to_le_bytes());
                }
                self.w.write_all(&h)?;
                self.w.write_all(data)?;
                self.w.write_all(&[0u8; 3][..padded - cap])?;
                self.w.write_all(&total.to_le_bytes())
            }
        }
    }

    /// Flushes and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.w.flush()?;
        Ok(self.w)
    }
}

fn push_option(out: &mut Vec<u8>, code: u16, value: &[u8]) {
    out.extend_from_slice(&code.to_le_bytes());
    out.extend_from_slice(&(value.len() as u16).to_le_bytes());
    out.extend_from_slice(value);
    out.resize(out.len() + (4 - value.len() % 4) % 4, 0);
}

fn write_block<W: Write>(w: &mut W, block_type: u32, body: &[u8]) -> io::Result<()> {
    debug_assert_eq!(body.len() % 4, 0);
    let total = (12 + body.len()) as u32;
    w.write_all(&block_type.to_le_bytes())?;
    w.write_all(&total.to_le_bytes())?;
    w.write_all(body)?;
    w.write_all(&total.to_le_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcap_header_and_record() {
        let mut cw = CaptureWriter::new(Vec::new(), Format::PCAP_US, 4, 1).unwrap();
        cw.write(1_767_225_600_123_456_789, &[1, 2, 3, 4, 5, 6], 6)
            .unwrap();
        let b = cw.finish().unwrap();
        assert_eq!(&b[..4], &[0xd4, 0xc3, 0xb2, 0xa1]);
        assert_eq!(&b[16..20], &4u32.to_le_bytes());
        assert_eq!(&b[24..28], &1_767_225_600u32.to_le_bytes());
        assert_eq!(&b[28..32], &123_456u32.to_le_bytes());
        assert_eq!(&b[32..36], &4u32.to_le_bytes()); // caplen cut to snaplen
        assert_eq!(&b[36..40], &6u32.to_le_bytes()); // orig_len
        assert_eq!(&b[40..], &[1, 2, 3, 4]);
    }

    #[test]
    fn pcap_ns_big_endian_magic() {
        let b = CaptureWriter::new(Vec::new(), Format::PCAP_NS, 65535, 1)
            .unwrap()
            .finish()
            .unwrap();
        assert_eq!(&b[..4], &[0x4d, 0x3c, 0xb2, 0xa1]);
        let b = CaptureWriter::new(Vec::new(), Format::PCAP_US_BE, 65535, 1)
            .unwrap()
            .finish()
            .unwrap();
        assert_eq!(&b[..4], &[0xa1, 0xb2, 0xc3, 0xd4]);
    }

    #[test]
    fn pcapng_blocks_are_well_formed() {
        let mut cw = CaptureWriter::new(Vec::new(), Format::PCAPNG_NS, 65535, 1).unwrap();
        cw.write(5_000_000_001, &[9; 5], 7).unwrap();
        let b = cw.finish().unwrap();
        // Walk the blocks: each starts and ends with the same total length.
        let mut off = 0;
        let mut types = Vec::new();
        while off < b.len() {
            let ty = u32::from_le_bytes(b[off..off + 4].try_into().unwrap());
            let len = u32::from_le_bytes(b[off + 4..off + 8].try_into().unwrap()) as usize;
            assert_eq!(len % 4, 0);
            let trailer = u32::from_le_bytes(b[off + len - 4..off + len].try_into().unwrap());
            assert_eq!(trailer as usize, len);
            types.push(ty);
            if ty == 6 {
                let hi = u32::from_le_bytes(b[off + 12..off + 16].try_into().unwrap());
                let lo = u32::from_le_bytes(b[off + 16..off + 20].try_into().unwrap());
                assert_eq!((u64::from(hi) << 32) | u64::from(lo), 5_000_000_001);
                assert_eq!(&b[off + 20..off + 28], &[5, 0, 0, 0, 7, 0, 0, 0]);
            }
            off += len;
        }
        assert_eq!(types, vec![0x0a0d_0d0a, 1, 6]);
    }
}
