//! ICMP (RFC 792) and ICMPv6 (RFC 4443) headers: the common type/code/checksum prefix.

use super::{read_u16, read_u8, slice_from, view_common, Field, Result};
use crate::ParseStatus;

mod field {
    use super::Field;
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Field = 2..4;
    pub const REST: usize = 4;
}

/// A view of the 4-byte prefix shared by ICMP and ICMPv6 messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IcmpHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> IcmpHeader<T> {
    /// Length of the type/code/checksum prefix.
    pub const HEADER_LEN: usize = field::REST;

    /// Wraps `buffer`, which must hold 4 bytes ([`ParseStatus::TruncatedL4`] if not).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < Self::HEADER_LEN {
            return Err(ParseStatus::TruncatedL4);
        }
        Ok(IcmpHeader { buffer })
    }

    /// Message type.
    #[inline]
    pub fn msg_type(&self) -> u8 {
        read_u8(self.buffer.as_ref(), field::TYPE)
    }

    /// Message code.
    #[inline]
    pub fn msg_code(&self) -> u8 {
        read_u8(self.buffer.as_ref(), field::CODE)
    }

    /// Checksum (not verified).
    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> IcmpHeader<&'a T> {
    /// The message body after the first 4 bytes (identifier/sequence, MTU, quoted packet...).
    #[inline]
    pub fn rest(&self) -> &'a [u8] {
        slice_from(self.buffer.as_ref(), field::REST)
    }
}

view_common!(IcmpHeader);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields() {
        let b: [u8; 8] = [3, 4, 0xab, 0xcd, 0, 0, 0x05, 0xdc];
        let h = IcmpHeader::new_checked(&b[..]).unwrap();
        assert_eq!(h.msg_type(), 3);
        assert_eq!(h.msg_code(), 4);
        assert_eq!(h.checksum(), 0xabcd);
        assert_eq!(h.rest(), &[0, 0, 0x05, 0xdc]);
        assert_eq!(
            IcmpHeader::new_checked(&b[..3]),
            Err(ParseStatus::TruncatedL4)
        );
    }
}
