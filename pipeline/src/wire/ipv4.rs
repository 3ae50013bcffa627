//! IPv4 packets (RFC 791), options included.

use std::net::Ipv4Addr;

use super::{read_array, read_u16, read_u8, slice_between, view_common, Field, Result};
use crate::ParseStatus;

mod field {
    use super::Field;
    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: Field = 2..4;
    pub const IDENT: Field = 4..6;
    pub const FLG_OFF: Field = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Field = 10..12;
    pub const SRC_ADDR: Field = 12..16;
    pub const DST_ADDR: Field = 16..20;
    pub const OPTIONS: usize = 20;
}

/// Don't-fragment flag in the flags/offset word.
const DF: u16 = 0x4000;
/// More-fragments flag in the flags/offset word.
const MF: u16 = 0x2000;
/// Fragment offset (in 8-byte units) in the flags/offset word.
const OFFSET_MASK: u16 = 0x1FFF;

/// A view of an IPv4 packet.
///
/// `new_checked` guarantees: at least 20 bytes, version 4, IHL ≥ 5, the whole header (options
/// included) present, and total length ≥ header length. The total length may exceed the buffer
/// (a capture cut by snaplen): [`Ipv4Packet::payload`] then returns what was captured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Length of a header without options.
    pub const MIN_HEADER_LEN: usize = field::OPTIONS;

    /// Wraps and validates `buffer`.
    ///
    /// Errors: [`ParseStatus::TruncatedIpv4`] when shorter than 20 bytes or than the announced
    /// header length; [`ParseStatus::BadIpv4Header`] when the version is not 4 or IHL < 5;
    /// [`ParseStatus::BadIpv4Length`] when the total length is below the header length.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        let buf = buffer.as_ref();
        let Some(&ver_ihl) = buf.get(field::VER_IHL) else {
            return Err(ParseStatus::TruncatedIpv4);
        };
        if buf.len() < Self::MIN_HEADER_LEN {
            return Err(ParseStatus::TruncatedIpv4);
        }
        let ihl = usize::from(ver_ihl & 0x0F) * 4;
        if ver_ihl >> 4 != 4 || ihl < Self::MIN_HEADER_LEN {
            return Err(ParseStatus::BadIpv4Header);
        }
        if buf.len() < ihl {
            return Err(ParseStatus::TruncatedIpv4);
        }
        if usize::from(read_u16(buf, field::LENGTH)) < ihl {
            return Err(ParseStatus::BadIpv4Length);
        }
        Ok(Ipv4Packet { buffer })
    }

    /// IP version (4 after `new_checked`).
    #[inline]
    pub fn version(&self) -> u8 {
        read_u8(self.buffer.as_ref(), field::VER_IHL) >> 4
    }

    /// Header length in bytes (IHL × 4), options included.
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(read_u8(self.buffer.as_ref(), field::VER_IHL) & 0x0F) * 4
    }

    /// DSCP (6 bits).
    #[inline]
    pub fn dscp(&self) -> u8 {
        read_u8(self.buffer.as_ref(), field::DSCP_ECN) >> 2
    }

    /// ECN (2 bits).
    #[inline]
    pub fn ecn(&self) -> u8 {
        read_u8(self.buffer.as_ref(), field::DSCP_ECN) & 0x03
    }

    /// Total length field: header plus payload, as announced.
    #[inline]
    pub fn total_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::LENGTH)
    }

    /// Identification.
    #[inline]
    pub fn ident(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::IDENT)
    }

    /// Don't-fragment flag.
    #[inline]
    pub fn dont_frag(&self) -> bool {
        read_u16(self.buffer.as_ref(), field::FLG_OFF) & DF != 0
    }

    /// More-fragments flag.
    #[inline]
    pub fn more_frags(&self) -> bool {
        read_u16(self.buffer.as_ref(), field::FLG_OFF) & MF != 0
    }

    /// Fragment offset in bytes (the header field × 8).
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        (read_u16(self.buffer.as_ref(), field::FLG_OFF) & OFFSET_MASK) << 3
    }

    /// Time to live.
    #[inline]
    pub fn ttl(&self) -> u8 {
        read_u8(self.buffer.as_ref(), field::TTL)
    }

    /// Protocol of the payload.
    #[inline]
    pub fn protocol(&self) -> u8 {
        read_u8(self.buffer.as_ref(), field::PROTOCOL)
    }

    /// Header checksum (not verified).
    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Source address.
    #[inline]
    pub fn src_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(read_array::<4>(self.buffer.as_ref(), field::SRC_ADDR))
    }

    /// Destination address.
    #[inline]
    pub fn dst_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(read_array::<4>(self.buffer.as_ref(), field::DST_ADDR))
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Ipv4Packet<&'a T> {
    /// The options, between the fixed 20 bytes and the header length.
    #[inline]
    pub fn options(&self) -> &'a [u8] {
        slice_between(self.buffer.as_ref(), field::OPTIONS, self.header_len())
    }

    /// The payload: from the header length to the total length, cut at the captured bytes.
    /// Ethernet padding beyond the total length is excluded.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        slice_between(
            self.buffer.as_ref(),
            self.header_len(),
            usize::from(self.total_len()),
        )
    }
}

view_common!(Ipv4Packet);

#[cfg(test)]
mod tests {
    use super::*;

    // 24-byte header (one 4-byte option), total length 28, MF set, offset 0, protocol UDP.
    const PACKET: [u8; 32] = [
        0x46, 0xb8, 0x00, 0x1c, // ver 4, IHL 6, DSCP 46 ECN 0, total 28
        0x12, 0x34, 0x60, 0x00, // ident, DF|MF, offset 0
        0x40, 0x11, 0xab, 0xcd, // TTL 64, UDP, checksum
        192, 0, 2, 1, // src
        198, 51, 100, 7, // dst
        0x94, 0x04, 0x00, 0x00, // router alert option
        0xaa, 0xbb, 0xcc, 0xdd, // payload
        0xee, 0xee, 0xee, 0xee, // padding beyond total length
    ];

    #[test]
    fn fields() {
        let p = Ipv4Packet::new_checked(&PACKET[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 24);
        assert_eq!(p.dscp(), 46);
        assert_eq!(p.ecn(), 0);
        assert_eq!(p.total_len(), 28);
        assert_eq!(p.ident(), 0x1234);
        assert!(p.dont_frag());
        assert!(p.more_frags());
        assert_eq!(p.frag_offset(), 0);
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.protocol(), 17);
        assert_eq!(p.checksum(), 0xabcd);
        assert_eq!(p.src_addr(), Ipv4Addr::new(192, 0, 2, 1));
        assert_eq!(p.dst_addr(), Ipv4Addr::new(198, 51, 100, 7));
        assert_eq!(p.options(), &[0x94, 0x04, 0x00, 0x00]);
        assert_eq!(p.payload(), &[0xaa, 0xbb, 0xcc, 0xdd]);
    }

    #[test]
    fn fragment_offset_in_bytes() {
        let mut b = PACKET;
        b[6] = 0x1f;
        b[7] = 0xff;
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.frag_offset(), 0x1fff * 8);
        assert!(!p.more_frags());
        assert!(!p.dont_frag());
    }

    #[test]
    fn payload_cut_at_capture() {
        let p = Ipv4Packet::new_checked(&PACKET[..26]).unwrap();
        assert_eq!(p.payload(), &[0xaa, 0xbb]);
    }

    #[test]
    fn errors() {
        assert_eq!(
            Ipv4Packet::new_checked(&[][..]),
            Err(ParseStatus::TruncatedIpv4)
        );
        assert_eq!(
            Ipv4Packet::new_checked(&PACKET[..19]),
            Err(ParseStatus::TruncatedIpv4)
        );
        // Options announced but cut off.
        assert_eq!(
            Ipv4Packet::new_checked(&PACKET[..22]),
            Err(ParseStatus::TruncatedIpv4)
        );
        let mut b = PACKET;
        b[0] = 0x56;
        assert_eq!(
            Ipv4Packet::new_checked(&b[..]),
            Err(ParseStatus::BadIpv4Header)
        );
        b[0] = 0x44;
        assert_eq!(
            Ipv4Packet::new_checked(&b[..]),
            Err(ParseStatus::BadIpv4Header)
        );
        let mut b = PACKET;
        b[3] = 23;
        assert_eq!(
            Ipv4Packet::new_checked(&b[..]),
            Err(ParseStatus::BadIpv4Length)
        );
    }
}
