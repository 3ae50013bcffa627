//! TCP headers (RFC 9293).

use super::{read_u16, read_u32, read_u8, slice_between, slice_from, view_common, Field, Result};
use crate::ParseStatus;

mod field {
    use super::Field;
    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const SEQ_NUM: Field = 4..8;
    pub const ACK_NUM: Field = 8..12;
    pub const DATA_OFF: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WIN_SIZE: Field = 14..16;
    pub const CHECKSUM: Field = 16..18;
    pub const URGENT: Field = 18..20;
    pub const OPTIONS: usize = 20;
}

/// A view of a TCP header.
///
/// `new_checked` guarantees the fixed 20 bytes and a data offset of at least 5 words. Options
/// may be cut off by the capture; [`TcpHeader::options`] returns what is there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpHeader<T> {
    /// Length of a header without options.
    pub const MIN_HEADER_LEN: usize = field::OPTIONS;

    /// Wraps and validates `buffer`: [`ParseStatus::TruncatedL4`] when shorter than 20 bytes,
    /// [`ParseStatus::BadTcpHeader`] when the data offset is below 5.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        let buf = buffer.as_ref();
        if buf.len() < Self::MIN_HEADER_LEN {
            return Err(ParseStatus::TruncatedL4);
        }
        if read_u8(buf, field::DATA_OFF) >> 4 < 5 {
            return Err(ParseStatus::BadTcpHeader);
        }
        Ok(TcpHeader { buffer })
    }

    /// Source port.
    #[inline]
    pub fn src_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::SRC_PORT)
    }

    /// Destination port.
    #[inline]
    pub fn dst_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::DST_PORT)
    }

    /// Sequence number.
    #[inline]
    pub fn seq_number(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::SEQ_NUM)
    }

    /// Acknowledgment number.
    #[inline]
    pub fn ack_number(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::ACK_NUM)
    }

    /// Header length in bytes (data offset × 4), options included.
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(read_u8(self.buffer.as_ref(), field::DATA_OFF) >> 4) * 4
    }

    /// The flags byte (CWR ECE URG ACK PSH RST SYN FIN; see [`crate::tcp_flags`]).
    #[inline]
    pub fn flags(&self) -> u8 {
        read_u8(self.buffer.as_ref(), field::FLAGS)
    }

    /// Window size.
    #[inline]
    pub fn window_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::WIN_SIZE)
    }

    /// Checksum (not verified).
    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Urgent pointer.
    #[inline]
    pub fn urgent_at(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::URGENT)
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> TcpHeader<&'a T> {
    /// Options as captured (possibly cut short by the capture).
    #[inline]
    pub fn options(&self) -> &'a [u8] {
        slice_between(self.buffer.as_ref(), field::OPTIONS, self.header_len())
    }

    /// Segment data after the options, as captured.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        slice_from(self.buffer.as_ref(), self.header_len())
    }
}

view_common!(TcpHeader);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tcp_flags::{ACK, SYN};

    const SYN_ACK: [u8; 26] = [
        0x01, 0xbb, 0xc3, 0x50, // 443 -> 50000
        0x00, 0x00, 0x00, 0x01, // seq
        0x00, 0x00, 0x00, 0x02, // ack
        0x60, 0x12, 0xff, 0xff, // offset 6, SYN|ACK, window
        0x12, 0x34, 0x00, 0x00, // checksum, urgent
        0x02, 0x04, 0x05, 0xb4, // MSS option
        0xde, 0xad, // data
    ];

    #[test]
    fn fields() {
        let t = TcpHeader::new_checked(&SYN_ACK[..]).unwrap();
        assert_eq!(t.src_port(), 443);
        assert_eq!(t.dst_port(), 50000);
        assert_eq!(t.seq_number(), 1);
        assert_eq!(t.ack_number(), 2);
        assert_eq!(t.header_len(), 24);
        assert_eq!(t.flags(), SYN | ACK);
        assert_eq!(t.window_len(), 0xffff);
        assert_eq!(t.checksum(), 0x1234);
        assert_eq!(t.urgent_at(), 0);
        assert_eq!(t.options(), &[0x02, 0x04, 0x05, 0xb4]);
        assert_eq!(t.payload(), &[0xde, 0xad]);
    }

    #[test]
    fn options_cut_by_capture() {
        let t = TcpHeader::new_checked(&SYN_ACK[..22]).unwrap();
        assert_eq!(t.options(), &[0x02, 0x04]);
        assert!(t.payload().is_empty());
    }

    #[test]
    fn errors() {
        assert_eq!(
            TcpHeader::new_checked(&SYN_ACK[..19]),
            Err(ParseStatus::TruncatedL4)
        );
        let mut b = SYN_ACK;
        b[12] = 0x40;
        assert_eq!(
            TcpHeader::new_checked(&b[..]),
            Err(ParseStatus::BadTcpHeader)
        );
    }
}
