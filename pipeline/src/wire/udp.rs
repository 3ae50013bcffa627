//! UDP headers (RFC 768).

use super::{read_u16, slice_from, view_common, Field, Result};
use crate::ParseStatus;

mod field {
    use super::Field;
    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const LENGTH: Field = 4..6;
    pub const CHECKSUM: Field = 6..8;
    pub const PAYLOAD: usize = 8;
}

/// A view of a UDP header. `new_checked` guarantees the 8 header bytes; the length field is
/// reported as announced, not trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpHeader<T> {
    /// Length of the UDP header.
    pub const HEADER_LEN: usize = field::PAYLOAD;

    /// Wraps `buffer`, which must hold 8 bytes ([`ParseStatus::TruncatedL4`] if not).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < Self::HEADER_LEN {
            return Err(ParseStatus::TruncatedL4);
        }
        Ok(UdpHeader { buffer })
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

    /// Length field: header plus data, as announced.
    #[inline]
    pub fn len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::LENGTH)
    }

    /// Whether the length field announces no data (8 or less).
    #[inline]
    pub fn is_empty(&self) -> bool {
        usize::from(self.len()) <= Self::HEADER_LEN
    }

    /// Checksum (not verified; 0 means none over IPv4).
    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> UdpHeader<&'a T> {
    /// Data after the header, as captured (not cut to the length field).
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        slice_from(self.buffer.as_ref(), field::PAYLOAD)
    }
}

view_common!(UdpHeader);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields() {
        let b: [u8; 10] = [0x00, 0x35, 0xd4, 0x31, 0x00, 0x0a, 0xbe, 0xef, 0x01, 0x02];
        let u = UdpHeader::new_checked(&b[..]).unwrap();
        assert_eq!(u.src_port(), 53);
        assert_eq!(u.dst_port(), 54321);
        assert_eq!(u.len(), 10);
        assert!(!u.is_empty());
        assert_eq!(u.checksum(), 0xbeef);
        assert_eq!(u.payload(), &[1, 2]);
        assert_eq!(
            UdpHeader::new_checked(&b[..7]),
            Err(ParseStatus::TruncatedL4)
        );
    }
}
