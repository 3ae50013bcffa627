//! IPv6 packets (RFC 8200) and the extension headers the parser walks.

use std::net::Ipv6Addr;

use super::{read_array, read_u16, read_u32, read_u8, slice_between, slice_from, view_common};
use super::{Field, Result};
use crate::ParseStatus;

/// IPv6 next-header values with a meaning for the extension-header walk.
pub mod ext_header {
    /// Hop-by-hop options (length in 8-byte units, excluding the first 8).
    pub const HOP_BY_HOP: u8 = 0;
    /// Routing header (length in 8-byte units, excluding the first 8).
    pub const ROUTING: u8 = 43;
    /// Fragment header (fixed 8 bytes).
    pub const FRAGMENT: u8 = 44;
    /// Encapsulating security payload: opaque, an upper-layer protocol for the parser.
    pub const ESP: u8 = 50;
    /// Authentication header (length in 4-byte units, minus 2).
    pub const AUTH: u8 = 51;
    /// No next header: an upper-layer "protocol" for the parser.
    pub const NO_NEXT: u8 = 59;
    /// Destination options (length in 8-byte units, excluding the first 8).
    pub const DEST_OPTS: u8 = 60;
}

mod field {
    use super::Field;
    pub const VER_TC_FLOW: Field = 0..4;
    pub const LENGTH: Field = 4..6;
    pub const NXT_HDR: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC_ADDR: Field = 8..24;
    pub const DST_ADDR: Field = 24..40;
    pub const PAYLOAD: usize = 40;

    // Generic extension header.
    pub const EXT_NXT_HDR: usize = 0;
    pub const EXT_LEN: usize = 1;
    pub const EXT_MIN_LEN: usize = 8;

    // Fragment header.
    pub const FRAG_OFF_M: Field = 2..4;
    pub const FRAG_IDENT: Field = 4..8;
    pub const FRAG_LEN: usize = 8;
}

/// A view of an IPv6 packet.
///
/// `new_checked` guarantees at least the 40-byte fixed header and version 6. The payload
/// length may exceed the buffer (snaplen): [`Ipv6Packet::payload`] returns what was captured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// Length of the fixed header.
    pub const HEADER_LEN: usize = field::PAYLOAD;

    /// Wraps and validates `buffer`: [`ParseStatus::TruncatedIpv6`] when shorter than 40 bytes,
    /// [`ParseStatus::BadIpVersion`] when the version nibble is not 6.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        let buf = buffer.as_ref();
        if buf.len() < Self::HEADER_LEN {
            return Err(ParseStatus::TruncatedIpv6);
        }
        if read_u8(buf, 0) >> 4 != 6 {
            return Err(ParseStatus::BadIpVersion);
        }
        Ok(Ipv6Packet { buffer })
    }

    /// IP version (6 after `new_checked`).
    #[inline]
    pub fn version(&self) -> u8 {
        read_u8(self.buffer.as_ref(), 0) >> 4
    }

    /// Traffic class.
    #[inline]
    pub fn traffic_class(&self) -> u8 {
        (read_u32(self.buffer.as_ref(), field::VER_TC_FLOW) >> 20) as u8
    }

    /// Flow label (20 bits).
    #[inline]
    pub fn flow_label(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::VER_TC_FLOW) & 0x000F_FFFF
    }

    /// Payload length field (extension headers included).
    #[inline]
    pub fn payload_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::LENGTH)
    }

    /// Next header after the fixed header.
    #[inline]
    pub fn next_header(&self) -> u8 {
        read_u8(self.buffer.as_ref(), field::NXT_HDR)
    }

    /// Hop limit.
    #[inline]
    pub fn hop_limit(&self) -> u8 {
        read_u8(self.buffer.as_ref(), field::HOP_LIMIT)
    }

    /// Source address.
    #[inline]
    pub fn src_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(read_array::<16>(self.buffer.as_ref(), field::SRC_ADDR))
    }

    /// Destination address.
    #[inline]
    pub fn dst_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(read_array::<16>(self.buffer.as_ref(), field::DST_ADDR))
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Ipv6Packet<&'a T> {
    /// The payload (extension headers included): up to 40 + payload length, cut at the
    /// captured bytes. A payload length of 0 with a hop-by-hop header may be a jumbogram
    /// (RFC 2675), so then everything captured is returned.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        let plen = self.payload_len();
        let end = if plen == 0 && self.next_header() == ext_header::HOP_BY_HOP {
            usize::MAX
        } else {
            field::PAYLOAD + usize::from(plen)
        };
        slice_between(self.buffer.as_ref(), field::PAYLOAD, end)
    }
}

view_common!(Ipv6Packet);

/// A view of a length-carrying IPv6 extension header: hop-by-hop, routing, destination
/// options (length in 8-byte units) or the authentication header (length in 4-byte units).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6ExtHeader<T: AsRef<[u8]>> {
    buffer: T,
    len: usize,
}

impl<T: AsRef<[u8]>> Ipv6ExtHeader<T> {
    /// Wraps `buffer` as the extension header of type `kind` (the next-header value that
    /// announced it; only [`ext_header::AUTH`] changes the length unit).
    /// [`ParseStatus::TruncatedIpv6Ext`] when the header runs past the buffer.
    #[inline]
    pub fn new_checked(buffer: T, kind: u8) -> Result<Self> {
        let buf = buffer.as_ref();
        if buf.len() < field::EXT_MIN_LEN {
            return Err(ParseStatus::TruncatedIpv6Ext);
        }
        let units = usize::from(read_u8(buf, field::EXT_LEN));
        let len = if kind == ext_header::AUTH {
            (units + 2) * 4
        } else {
            (units + 1) * 8
        };
        if buf.len() < len {
            return Err(ParseStatus::TruncatedIpv6Ext);
        }
        Ok(Ipv6ExtHeader { buffer, len })
    }

    /// Next header after this one.
    #[inline]
    pub fn next_header(&self) -> u8 {
        read_u8(self.buffer.as_ref(), field::EXT_NXT_HDR)
    }

    /// This header's length in bytes.
    #[inline]
    pub fn header_len(&self) -> usize {
        self.len
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Ipv6ExtHeader<&'a T> {
    /// The header's body after its first two bytes (options, routing data, ICV...).
    #[inline]
    pub fn data(&self) -> &'a [u8] {
        slice_between(self.buffer.as_ref(), 2, self.len)
    }

    /// Everything after this header.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        slice_from(self.buffer.as_ref(), self.len)
    }
}

impl<T: AsRef<[u8]>> Ipv6ExtHeader<T> {
    /// Gives back the underlying buffer.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }
}

/// A view of an IPv6 fragment header (8 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6FragmentHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6FragmentHeader<T> {
    /// Length of the fragment header.
    pub const HEADER_LEN: usize = field::FRAG_LEN;

    /// Wraps `buffer`, which must hold 8 bytes ([`ParseStatus::TruncatedIpv6Ext`] if not).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < Self::HEADER_LEN {
            return Err(ParseStatus::TruncatedIpv6Ext);
        }
        Ok(Ipv6FragmentHeader { buffer })
    }

    /// Next header of the fragmentable part.
    #[inline]
    pub fn next_header(&self) -> u8 {
        read_u8(self.buffer.as_ref(), field::EXT_NXT_HDR)
    }

    /// Fragment offset in bytes.
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::FRAG_OFF_M) & 0xFFF8
    }

    /// More-fragments flag.
    #[inline]
    pub fn more_frags(&self) -> bool {
        read_u16(self.buffer.as_ref(), field::FRAG_OFF_M) & 0x0001 != 0
    }

    /// Identification.
    #[inline]
    pub fn ident(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::FRAG_IDENT)
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Ipv6FragmentHeader<&'a T> {
    /// Everything after the fragment header.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        slice_from(self.buffer.as_ref(), field::FRAG_LEN)
    }
}

view_common!(Ipv6FragmentHeader);

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: [u8; 40] = [
        0x6b, 0x81, 0x23, 0x45, // ver 6, TC 0xb8, flow 0x12345
        0x00, 0x10, 0x2c, 0x39, // payload 16, fragment, hop limit 57
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, // 2001:db8::1
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, // 2001:db8::2
    ];

    #[test]
    fn fixed_header_fields() {
        let mut b = HEADER.to_vec();
        b.extend_from_slice(&[0u8; 20]);
        let p = Ipv6Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.version(), 6);
        assert_eq!(p.traffic_class(), 0xb8);
        assert_eq!(p.flow_label(), 0x12345);
        assert_eq!(p.payload_len(), 16);
        assert_eq!(p.next_header(), ext_header::FRAGMENT);
        assert_eq!(p.hop_limit(), 57);
        assert_eq!(p.src_addr(), "2001:db8::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(p.dst_addr(), "2001:db8::2".parse::<Ipv6Addr>().unwrap());
        assert_eq!(p.payload().len(), 16);
    }

    #[test]
    fn jumbo_payload_takes_the_capture() {
        let mut b = HEADER;
        b[4] = 0;
        b[5] = 0;
        b[6] = ext_header::HOP_BY_HOP;
        let mut v = b.to_vec();
        v.extend_from_slice(&[0u8; 24]);
        assert_eq!(Ipv6Packet::new_checked(&v[..]).unwrap().payload().len(), 24);
        v[6] = 17;
        assert_eq!(Ipv6Packet::new_checked(&v[..]).unwrap().payload().len(), 0);
    }

    #[test]
    fn errors() {
        assert_eq!(
            Ipv6Packet::new_checked(&HEADER[..39]),
            Err(ParseStatus::TruncatedIpv6)
        );
        let mut b = HEADER;
        b[0] = 0x45;
        assert_eq!(
            Ipv6Packet::new_checked(&b[..]),
            Err(ParseStatus::BadIpVersion)
        );
    }

    #[test]
    fn ext_header_lengths() {
        // Destination options, 16 bytes (len 1), then 4 payload bytes.
        let mut d = [0u8; 20];
        d[0] = 17;
        d[1] = 1;
        let h = Ipv6ExtHeader::new_checked(&d[..], ext_header::DEST_OPTS).unwrap();
        assert_eq!(h.next_header(), 17);
        assert_eq!(h.header_len(), 16);
        assert_eq!(h.data().len(), 14);
        assert_eq!(h.payload().len(), 4);
        // The same bytes as an AH: (1 + 2) * 4 = 12 bytes.
        let h = Ipv6ExtHeader::new_checked(&d[..], ext_header::AUTH).unwrap();
        assert_eq!(h.header_len(), 12);
        assert_eq!(h.payload().len(), 8);
        assert_eq!(
            Ipv6ExtHeader::new_checked(&d[..15], ext_header::DEST_OPTS),
            Err(ParseStatus::TruncatedIpv6Ext)
        );
        assert_eq!(
            Ipv6ExtHeader::new_checked(&d[..7], ext_header::AUTH),
            Err(ParseStatus::TruncatedIpv6Ext)
        );
        d[1] = 255;
        assert_eq!(
            Ipv6ExtHeader::new_checked(&d[..], ext_header::ROUTING),
            Err(ParseStatus::TruncatedIpv6Ext)
        );
    }

    #[test]
    fn fragment_header() {
        let f: [u8; 9] = [6, 0, 0x05, 0xa9, 0xde, 0xad, 0xbe, 0xef, 0xff];
        let h = Ipv6FragmentHeader::new_checked(&f[..]).unwrap();
        assert_eq!(h.next_header(), 6);
        assert_eq!(h.frag_offset(), 0x05a8);
        assert!(h.more_frags());
        assert_eq!(h.ident(), 0xdeadbeef);
        assert_eq!(h.payload(), &[0xff]);
        assert_eq!(
            Ipv6FragmentHeader::new_checked(&f[..7]),
            Err(ParseStatus::TruncatedIpv6Ext)
        );
    }
}
