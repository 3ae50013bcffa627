//! Ethernet II frames and 802.1Q / 802.1ad VLAN tags.

use super::{read_array, read_u16, slice_from, view_common, Field, Result};
use crate::ParseStatus;

/// EtherType values the parser gives meaning to.
pub mod ethertype {
    /// IPv4.
    pub const IPV4: u16 = 0x0800;
    /// ARP.
    pub const ARP: u16 = 0x0806;
    /// 802.1Q customer VLAN tag.
    pub const VLAN: u16 = 0x8100;
    /// IPv6.
    pub const IPV6: u16 = 0x86DD;
    /// 802.1ad service VLAN tag (QinQ outer tag).
    pub const QINQ: u16 = 0x88A8;
    /// LLDP.
    pub const LLDP: u16 = 0x88CC;
    /// Pre-standard QinQ outer tag.
    pub const QINQ_9100: u16 = 0x9100;
    /// Pre-standard QinQ outer tag.
    pub const QINQ_9200: u16 = 0x9200;
}

/// Whether an EtherType announces a VLAN tag (802.1Q, 802.1ad or legacy QinQ 0x9100/0x9200).
#[inline(always)]
pub const fn is_vlan_ethertype(value: u16) -> bool {
    matches!(
        value,
        ethertype::VLAN | ethertype::QINQ | ethertype::QINQ_9100 | ethertype::QINQ_9200
    )
}

mod field {
    use super::Field;
    pub const DST: Field = 0..6;
    pub const SRC: Field = 6..12;
    pub const ETHERTYPE: Field = 12..14;
    pub const PAYLOAD: usize = 14;

    pub const TCI: Field = 0..2;
    pub const VLAN_ETHERTYPE: Field = 2..4;
    pub const VLAN_PAYLOAD: usize = 4;
}

/// A view of an Ethernet II frame: destination, source, EtherType, payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Length of the Ethernet II header (no VLAN tag).
    pub const HEADER_LEN: usize = field::PAYLOAD;

    /// Wraps `buffer`, which must hold the 14-byte header ([`ParseStatus::TruncatedLink`] if not).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < Self::HEADER_LEN {
            return Err(ParseStatus::TruncatedLink);
        }
        Ok(EthernetFrame { buffer })
    }

    /// Destination MAC address.
    #[inline]
    pub fn dst_addr(&self) -> [u8; 6] {
        read_array(self.buffer.as_ref(), field::DST)
    }

    /// Source MAC address.
    #[inline]
    pub fn src_addr(&self) -> [u8; 6] {
        read_array(self.buffer.as_ref(), field::SRC)
    }

    /// EtherType (or, below 0x0600, an 802.3 length).
    #[inline]
    pub fn ethertype(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::ETHERTYPE)
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> EthernetFrame<&'a T> {
    /// Everything after the 14-byte header.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        slice_from(self.buffer.as_ref(), field::PAYLOAD)
    }
}

view_common!(EthernetFrame);

/// A view of one 4-byte VLAN tag as it follows a VLAN EtherType: TCI, then the next EtherType.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VlanHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> VlanHeader<T> {
    /// Length of a VLAN tag after its EtherType.
    pub const HEADER_LEN: usize = field::VLAN_PAYLOAD;

    /// Wraps `buffer`, which must hold 4 bytes ([`ParseStatus::TruncatedVlan`] if not).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < Self::HEADER_LEN {
            return Err(ParseStatus::TruncatedVlan);
        }
        Ok(VlanHeader { buffer })
    }

    /// Tag control information: PCP (3 bits), DEI (1 bit), VLAN id (12 bits).
    #[inline]
    pub fn tci(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::TCI)
    }

    /// Priority code point.
    #[inline]
    pub fn pcp(&self) -> u8 {
        (self.tci() >> 13) as u8
    }

    /// Drop eligible indicator.
    #[inline]
    pub fn dei(&self) -> bool {
        self.tci() & 0x1000 != 0
    }

    /// VLAN identifier (12 bits).
    #[inline]
    pub fn vlan_id(&self) -> u16 {
        self.tci() & 0x0FFF
    }

    /// EtherType of what follows the tag.
    #[inline]
    pub fn ethertype(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::VLAN_ETHERTYPE)
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> VlanHeader<&'a T> {
    /// Everything after the tag.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        slice_from(self.buffer.as_ref(), field::VLAN_PAYLOAD)
    }
}

view_common!(VlanHeader);

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: [u8; 18] = [
        0x00, 0x11, 0x22, 0x33, 0x44, 0x55, // dst
        0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, // src
        0x81, 0x00, // 802.1Q
        0xb0, 0x64, // PCP 5, DEI 1, VID 100
        0x08, 0x00, // IPv4
    ];

    #[test]
    fn ethernet_fields() {
        let f = EthernetFrame::new_checked(&FRAME[..]).unwrap();
        assert_eq!(f.dst_addr(), [0x00, 0x11, 0x22, 0x33, 0x44, 0x55]);
        assert_eq!(f.src_addr(), [0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb]);
        assert_eq!(f.ethertype(), ethertype::VLAN);
        assert!(is_vlan_ethertype(f.ethertype()));
        let tag = VlanHeader::new_checked(f.payload()).unwrap();
        assert_eq!(tag.pcp(), 5);
        assert!(tag.dei());
        assert_eq!(tag.vlan_id(), 100);
        assert_eq!(tag.ethertype(), ethertype::IPV4);
        assert!(tag.payload().is_empty());
        assert_eq!(f.into_inner().len(), 18);
    }

    #[test]
    fn short_buffers_are_rejected() {
        assert_eq!(
            EthernetFrame::new_checked(&FRAME[..13]),
            Err(ParseStatus::TruncatedLink)
        );
        assert_eq!(
            VlanHeader::new_checked(&FRAME[14..17]),
            Err(ParseStatus::TruncatedVlan)
        );
    }
}
