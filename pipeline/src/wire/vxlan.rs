//! VXLAN headers (RFC 7348).

use super::{read_u32, read_u8, slice_from, view_common, Result};
use crate::ParseStatus;

/// IANA-assigned VXLAN UDP port.
pub const VXLAN_PORT: u16 = 4789;

mod field {
    pub const FLAGS: usize = 0;
    pub const VNI: core::ops::Range<usize> = 4..8;
    pub const LEN: usize = 8;
}

/// I flag: the VNI is valid.
const I: u8 = 0x08;

/// A view of an 8-byte VXLAN header: flags (I = valid VNI), 24 reserved bits, 24-bit VNI,
/// 8 reserved bits. Reserved bits are ignored, as RFC 7348 asks of receivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VxlanHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> VxlanHeader<T> {
    /// Length of the header.
    pub const HEADER_LEN: usize = field::LEN;

    /// Wraps and validates `buffer`: [`ParseStatus::TruncatedTunnel`] when shorter than 8
    /// bytes, [`ParseStatus::BadTunnelHeader`] when the I flag is clear.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        let buf = buffer.as_ref();
        if buf.len() < Self::HEADER_LEN {
            return Err(ParseStatus::TruncatedTunnel);
        }
        if read_u8(buf, field::FLAGS) & I == 0 {
            return Err(ParseStatus::BadTunnelHeader);
        }
        Ok(VxlanHeader { buffer })
    }

    /// Flags byte.
    #[inline]
    pub fn flags(&self) -> u8 {
        read_u8(self.buffer.as_ref(), field::FLAGS)
    }

    /// VXLAN network identifier (24 bits).
    #[inline]
    pub fn vni(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::VNI) >> 8
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> VxlanHeader<&'a T> {
    /// The inner Ethernet frame.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        slice_from(self.buffer.as_ref(), field::LEN)
    }
}

view_common!(VxlanHeader);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields() {
        let b = [0x08, 0, 0, 0, 0x12, 0x34, 0x56, 0xff, 0xee];
        let h = VxlanHeader::new_checked(&b[..]).unwrap();
        assert_eq!((h.flags(), h.vni()), (0x08, 0x123456));
        assert_eq!(h.payload(), &[0xee]);
        assert_eq!(
            VxlanHeader::new_checked(&b[..7]),
            Err(ParseStatus::TruncatedTunnel)
        );
        assert_eq!(
            VxlanHeader::new_checked(&[0xf7, 0, 0, 0, 0, 0, 1, 0][..]),
            Err(ParseStatus::BadTunnelHeader)
        );
        assert_eq!(h.into_inner().len(), 9);
    }
}
