//! Capture-specific link headers: Linux "cooked" SLL / SLL2 and BSD loopback (Null / Loop).

use super::{read_array, read_u16, read_u32, read_u8, slice_from, view_common, Field, Result};
use crate::ParseStatus;

mod field {
    use super::Field;
    // LINKTYPE_LINUX_SLL
    pub const SLL_PACKET_TYPE: Field = 0..2;
    pub const SLL_ARPHRD: Field = 2..4;
    pub const SLL_ADDR_LEN: Field = 4..6;
    pub const SLL_ADDR: Field = 6..14;
    pub const SLL_PROTOCOL: Field = 14..16;
    pub const SLL_PAYLOAD: usize = 16;
    // LINKTYPE_LINUX_SLL2
    pub const SLL2_PROTOCOL: Field = 0..2;
    pub const SLL2_IFINDEX: Field = 4..8;
    pub const SLL2_ARPHRD: Field = 8..10;
    pub const SLL2_PACKET_TYPE: usize = 10;
    pub const SLL2_ADDR_LEN: usize = 11;
    pub const SLL2_ADDR: Field = 12..20;
    pub const SLL2_PAYLOAD: usize = 20;
    // LINKTYPE_NULL / LINKTYPE_LOOP
    pub const FAMILY: Field = 0..4;
    pub const LOOPBACK_PAYLOAD: usize = 4;
}

/// A view of a Linux cooked-capture v1 header (`LINKTYPE_LINUX_SLL`, 16 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SllHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> SllHeader<T> {
    /// Length of the SLL header.
    pub const HEADER_LEN: usize = field::SLL_PAYLOAD;

    /// Wraps `buffer`, which must hold 16 bytes ([`ParseStatus::TruncatedLink`] if not).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < Self::HEADER_LEN {
            return Err(ParseStatus::TruncatedLink);
        }
        Ok(SllHeader { buffer })
    }

    /// Packet type (0 = to us, 1 = broadcast, 2 = multicast, 3 = other host, 4 = outgoing).
    #[inline]
    pub fn packet_type(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::SLL_PACKET_TYPE)
    }

    /// `ARPHRD_*` device type.
    #[inline]
    pub fn arphrd_type(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::SLL_ARPHRD)
    }

    /// Number of meaningful bytes in [`Self::ll_addr`].
    #[inline]
    pub fn ll_addr_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::SLL_ADDR_LEN)
    }

    /// Link-layer source address, zero-padded to 8 bytes.
    #[inline]
    pub fn ll_addr(&self) -> [u8; 8] {
        read_array(self.buffer.as_ref(), field::SLL_ADDR)
    }

    /// Protocol: an EtherType (possibly a VLAN one) for Ethernet-like devices.
    #[inline]
    pub fn protocol(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::SLL_PROTOCOL)
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> SllHeader<&'a T> {
    /// Everything after the 16-byte header.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        slice_from(self.buffer.as_ref(), field::SLL_PAYLOAD)
    }
}

view_common!(SllHeader);

/// A view of a Linux cooked-capture v2 header (`LINKTYPE_LINUX_SLL2`, 20 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sll2Header<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Sll2Header<T> {
    /// Length of the SLL2 header.
    pub const HEADER_LEN: usize = field::SLL2_PAYLOAD;

    /// Wraps `buffer`, which must hold 20 bytes ([`ParseStatus::TruncatedLink`] if not).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < Self::HEADER_LEN {
            return Err(ParseStatus::TruncatedLink);
        }
        Ok(Sll2Header { buffer })
    }

    /// Protocol: an EtherType (possibly a VLAN one) for Ethernet-like devices.
    #[inline]
    pub fn protocol(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::SLL2_PROTOCOL)
    }

    /// Interface index of the capturing interface.
    #[inline]
    pub fn interface_index(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::SLL2_IFINDEX)
    }

    /// `ARPHRD_*` device type.
    #[inline]
    pub fn arphrd_type(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::SLL2_ARPHRD)
    }

    /// Packet type (0 = to us, 1 = broadcast, 2 = multicast, 3 = other host, 4 = outgoing).
    #[inline]
    pub fn packet_type(&self) -> u8 {
        read_u8(self.buffer.as_ref(), field::SLL2_PACKET_TYPE)
    }

    /// Number of meaningful bytes in [`Self::ll_addr`].
    #[inline]
    pub fn ll_addr_len(&self) -> u8 {
        read_u8(self.buffer.as_ref(), field::SLL2_ADDR_LEN)
    }

    /// Link-layer source address, zero-padded to 8 bytes.
    #[inline]
    pub fn ll_addr(&self) -> [u8; 8] {
        read_array(self.buffer.as_ref(), field::SLL2_ADDR)
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Sll2Header<&'a T> {
    /// Everything after the 20-byte header.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        slice_from(self.buffer.as_ref(), field::SLL2_PAYLOAD)
    }
}

view_common!(Sll2Header);

/// BSD address-family values that denote IP on loopback captures.
pub mod address_family {
    /// `AF_INET` on every BSD and on Linux.
    pub const INET: u32 = 2;
    /// `AF_INET6` on Linux.
    pub const INET6_LINUX: u32 = 10;
    /// `AF_INET6` on NetBSD, OpenBSD and BSD/OS.
    pub const INET6_BSD: u32 = 24;
    /// `AF_INET6` on FreeBSD and DragonFly.
    pub const INET6_FREEBSD: u32 = 28;
    /// `AF_INET6` on macOS / Darwin.
    pub const INET6_DARWIN: u32 = 30;

    /// The IP version (4 or 6) an address family denotes, 0 for anything else.
    #[inline(always)]
    pub const fn ip_version(af: u32) -> u8 {
        match af {
            INET => 4,
            INET6_LINUX | INET6_BSD | INET6_FREEBSD | INET6_DARWIN => 6,
            _ => 0,
        }
    }
}

/// Byte order of the 4-byte address family in a loopback header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoopbackOrder {
    /// `LINKTYPE_NULL`: host order of the capturing machine, unknown to the reader, so both
    /// little- and big-endian are accepted.
    Either,
    /// `LINKTYPE_LOOP`: network (big-endian) order.
    Network,
}

/// A view of a BSD loopback header (`LINKTYPE_NULL` / `LINKTYPE_LOOP`): a 4-byte address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoopbackHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> LoopbackHeader<T> {
    /// Length of the loopback header.
    pub const HEADER_LEN: usize = field::LOOPBACK_PAYLOAD;

    /// Wraps `buffer`, which must hold 4 bytes ([`ParseStatus::TruncatedLink`] if not).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < Self::HEADER_LEN {
            return Err(ParseStatus::TruncatedLink);
        }
        Ok(LoopbackHeader { buffer })
    }

    /// The raw family bytes.
    #[inline]
    pub fn family_bytes(&self) -> [u8; 4] {
        read_array(self.buffer.as_ref(), field::FAMILY)
    }

    /// The IP version the family denotes (4 or 6), or 0 when it is not IP.
    #[inline]
    pub fn ip_version(&self, order: LoopbackOrder) -> u8 {
        let bytes = self.family_bytes();
        let be = address_family::ip_version(u32::from_be_bytes(bytes));
        match order {
            LoopbackOrder::Network => be,
            LoopbackOrder::Either if be != 0 => be,
            LoopbackOrder::Either => address_family::ip_version(u32::from_le_bytes(bytes)),
        }
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> LoopbackHeader<&'a T> {
    /// Everything after the 4-byte header.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        slice_from(self.buffer.as_ref(), field::LOOPBACK_PAYLOAD)
    }
}

view_common!(LoopbackHeader);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sll_fields() {
        let b: [u8; 17] = [
            0x00, 0x04, // outgoing
            0x00, 0x01, // ARPHRD_ETHER
            0x00, 0x06, // addr len
            1, 2, 3, 4, 5, 6, 0, 0, // addr
            0x86, 0xdd, // IPv6
            0x60,
        ];
        let h = SllHeader::new_checked(&b[..]).unwrap();
        assert_eq!(h.packet_type(), 4);
        assert_eq!(h.arphrd_type(), 1);
        assert_eq!(h.ll_addr_len(), 6);
        assert_eq!(h.ll_addr(), [1, 2, 3, 4, 5, 6, 0, 0]);
        assert_eq!(h.protocol(), 0x86dd);
        assert_eq!(h.payload(), &[0x60]);
        assert_eq!(
            SllHeader::new_checked(&b[..15]),
            Err(ParseStatus::TruncatedLink)
        );
    }

    #[test]
    fn sll2_fields() {
        let b: [u8; 20] = [
            0x08, 0x00, // IPv4
            0, 0, // reserved
            0, 0, 0, 7, // ifindex
            0x00, 0x01, // ARPHRD_ETHER
            0x00, // to us
            6,    // addr len
            1, 2, 3, 4, 5, 6, 0, 0,
        ];
        let h = Sll2Header::new_checked(&b[..]).unwrap();
        assert_eq!(h.protocol(), 0x0800);
        assert_eq!(h.interface_index(), 7);
        assert_eq!(h.arphrd_type(), 1);
        assert_eq!(h.packet_type(), 0);
        assert_eq!(h.ll_addr_len(), 6);
        assert_eq!(h.ll_addr(), [1, 2, 3, 4, 5, 6, 0, 0]);
        assert!(h.payload().is_empty());
        assert_eq!(
            Sll2Header::new_checked(&b[..19]),
            Err(ParseStatus::TruncatedLink)
        );
    }

    #[test]
    fn loopback_family_in_either_order() {
        let cases: [([u8; 4], u8, u8); 8] = [
            ([2, 0, 0, 0], 4, 0),
            ([0, 0, 0, 2], 4, 4),
            ([10, 0, 0, 0], 6, 0),
            ([0, 0, 0, 24], 6, 6),
            ([28, 0, 0, 0], 6, 0),
            ([0, 0, 0, 30], 6, 6),
            ([0, 0, 0, 7], 0, 0),
            ([2, 0, 0, 2], 0, 0),
        ];
        for (bytes, either, network) in cases {
            let h = LoopbackHeader::new_checked(&bytes[..]).unwrap();
            assert_eq!(h.ip_version(LoopbackOrder::Either), either, "{bytes:?}");
            assert_eq!(h.ip_version(LoopbackOrder::Network), network, "{bytes:?}");
            assert_eq!(h.family_bytes(), bytes);
        }
        assert_eq!(
            LoopbackHeader::new_checked(&[2u8, 0, 0][..]),
            Err(ParseStatus::TruncatedLink)
        );
    }
}
