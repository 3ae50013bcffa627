//! GRE headers (RFC 2784 with the RFC 2890 key and sequence-number extensions).

use super::{read_u16, read_u32, slice_from, view_common, Field, Result};
use crate::ParseStatus;

/// GRE protocol types the decapsulator gives meaning to.
pub mod gre_protocol {
    /// IPv4 payload.
    pub const IPV4: u16 = 0x0800;
    /// IPv6 payload.
    pub const IPV6: u16 = 0x86DD;
    /// Transparent Ethernet bridging: an Ethernet frame (also NVGRE).
    pub const TEB: u16 = 0x6558;
    /// ERSPAN type II (and type I, which has no GRE sequence number).
    pub const ERSPAN_II: u16 = 0x88BE;
    /// ERSPAN type III.
    pub const ERSPAN_III: u16 = 0x22EB;
}

mod field {
    use super::Field;
    pub const FLAGS_VERSION: Field = 0..2;
    pub const PROTOCOL: Field = 2..4;
    pub const BASE_LEN: usize = 4;
}

/// Checksum present.
const C: u16 = 0x8000;
/// Routing present (RFC 1701; deprecated by RFC 2784).
const R: u16 = 0x4000;
/// Key present.
const K: u16 = 0x2000;
/// Sequence number present.
const S: u16 = 0x1000;
/// Version bits.
const VERSION_MASK: u16 = 0x0007;

/// A view of a GRE header: flags and version, protocol type, then the optional checksum (with
/// its reserved word), key and sequence number, 4 bytes each, in that order.
///
/// `new_checked` guarantees only the 4-byte base header, so that the protocol type can be
/// read before deciding whether the rest matters; [`GreHeader::check_len`] then checks the
/// optional fields the flags announce (the RFC 2784/2890 layout: it does not account for
/// RFC 1701 routing entries or the version-1 acknowledgment number).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GreHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> GreHeader<T> {
    /// Length of the base header (flags, version, protocol type).
    pub const BASE_LEN: usize = field::BASE_LEN;

    /// Wraps `buffer`, which must hold 4 bytes ([`ParseStatus::TruncatedTunnel`] if not).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < Self::BASE_LEN {
            return Err(ParseStatus::TruncatedTunnel);
        }
        Ok(GreHeader { buffer })
    }

    /// [`ParseStatus::TruncatedTunnel`] unless the optional fields the flags announce are all
    /// present.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < self.header_len() {
            return Err(ParseStatus::TruncatedTunnel);
        }
        Ok(())
    }

    /// The 16-bit flags-and-version word.
    #[inline]
    pub fn flags_version(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::FLAGS_VERSION)
    }

    /// GRE version (0; 1 is PPTP's enhanced GRE).
    #[inline]
    pub fn version(&self) -> u8 {
        (self.flags_version() & VERSION_MASK) as u8
    }

    /// C: a checksum (and a reserved word) is present.
    #[inline]
    pub fn has_checksum(&self) -> bool {
        self.flags_version() & C != 0
    }

    /// R: RFC 1701 routing information is present.
    #[inline]
    pub fn has_routing(&self) -> bool {
        self.flags_version() & R != 0
    }

    /// K: a key is present.
    #[inline]
    pub fn has_key(&self) -> bool {
        self.flags_version() & K != 0
    }

    /// S: a sequence number is present.
    #[inline]
    pub fn has_seq(&self) -> bool {
        self.flags_version() & S != 0
    }

    /// Protocol type: the EtherType of the payload (see [`gre_protocol`]).
    #[inline]
    pub fn protocol(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::PROTOCOL)
    }

    /// Header length with the optional fields: 4, 8, 12 or 16 bytes. A set R bit counts the
    /// checksum/offset word that RFC 1701 puts with it.
    #[inline]
    pub fn header_len(&self) -> usize {
        let f = self.flags_version();
        let word = |present: bool| if present { 4 } else { 0 };
        Self::BASE_LEN + word(f & (C | R) != 0) + word(f & K != 0) + word(f & S != 0)
    }

    /// Offset of the key field, when present.
    #[inline]
    fn key_at(&self) -> usize {
        Self::BASE_LEN + if self.has_checksum() { 4 } else { 0 }
    }

    /// Key (0 when absent or not captured).
    #[inline]
    pub fn key(&self) -> u32 {
        if !self.has_key() {
            return 0;
        }
        let at = self.key_at();
        read_u32(self.buffer.as_ref(), at..at + 4)
    }

    /// Sequence number (0 when absent or not captured).
    #[inline]
    pub fn seq(&self) -> u32 {
        if !self.has_seq() {
            return 0;
        }
        let at = self.key_at() + if self.has_key() { 4 } else { 0 };
        read_u32(self.buffer.as_ref(), at..at + 4)
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> GreHeader<&'a T> {
    /// Everything after the header and its optional fields (empty when they are cut short).
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        slice_from(self.buffer.as_ref(), self.header_len())
    }
}

view_common!(GreHeader);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_header() {
        let b = [0x00, 0x00, 0x65, 0x58, 0xaa];
        let g = GreHeader::new_checked(&b[..]).unwrap();
        assert_eq!(g.protocol(), gre_protocol::TEB);
        assert_eq!((g.version(), g.header_len()), (0, 4));
        assert!(!g.has_checksum() && !g.has_key() && !g.has_seq() && !g.has_routing());
        assert_eq!((g.key(), g.seq()), (0, 0));
        assert_eq!(g.check_len(), Ok(()));
        assert_eq!(g.payload(), &[0xaa]);
        assert_eq!(
            GreHeader::new_checked(&b[..3]),
            Err(ParseStatus::TruncatedTunnel)
        );
    }

    #[test]
    fn optional_fields() {
        let b = [
            0xb0, 0x00, 0x88, 0xbe, // C K S, ERSPAN II
            0x12, 0x34, 0x00, 0x00, // checksum, reserved
            0x00, 0x00, 0x00, 0x2a, // key
            0x00, 0x00, 0x01, 0x00, // sequence
            0xee,
        ];
        let g = GreHeader::new_checked(&b[..]).unwrap();
        assert!(g.has_checksum() && g.has_key() && g.has_seq());
        assert_eq!((g.header_len(), g.key(), g.seq()), (16, 42, 256));
        assert_eq!(g.payload(), &[0xee]);
        let cut = GreHeader::new_checked(&b[..15]).unwrap();
        assert_eq!(cut.check_len(), Err(ParseStatus::TruncatedTunnel));
        assert!(cut.payload().is_empty());
        // Sequence only.
        let b = [0x10, 0x01, 0x88, 0xbe, 0, 0, 0, 7];
        let g = GreHeader::new_checked(&b[..]).unwrap();
        assert_eq!(
            (g.header_len(), g.seq(), g.key(), g.version()),
            (8, 7, 0, 1)
        );
        // Routing counts the checksum/offset word.
        let g = GreHeader::new_checked(&[0x40, 0x00, 0x08, 0x00][..]).unwrap();
        assert!(g.has_routing());
        assert_eq!(g.header_len(), 8);
        assert_eq!(g.into_inner().len(), 4);
    }
}
