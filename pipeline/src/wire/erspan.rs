//! ERSPAN type II and type III headers (draft-foschiano-erspan), as they follow a GRE header
//! of protocol type 0x88BE / 0x22EB.

use super::{read_u16, read_u32, slice_from, view_common, Field, Result};
use crate::ParseStatus;

mod field {
    use super::Field;
    /// Version (4 bits) and VLAN (12 bits), both types.
    pub const VER_VLAN: Field = 0..2;
    /// COS (3), En / BSO (2), T (1), session id (10), both types.
    pub const COS_SESSION: Field = 2..4;
    /// Type II: reserved (12), index (20).
    pub const II_INDEX: Field = 4..8;
    pub const II_LEN: usize = 8;
    /// Type III: timestamp.
    pub const III_TIMESTAMP: Field = 4..8;
    /// Type III: SGT.
    pub const III_SGT: Field = 8..10;
    /// Type III: P (1), FT (5), hardware id (6), D (1), Gra (2), O (1).
    pub const III_FLAGS: Field = 10..12;
    pub const III_LEN: usize = 12;
    /// Type III: optional platform-specific subheader.
    pub const III_PLATFORM_LEN: usize = 8;
}

/// Version field of a type II header.
pub const ERSPAN_II_VERSION: u8 = 1;
/// Version field of a type III header.
pub const ERSPAN_III_VERSION: u8 = 2;

/// ERSPAN type III frame types (the FT field).
pub mod erspan_frame_type {
    /// An Ethernet frame.
    pub const ETHERNET: u8 = 0;
    /// An IP packet, without a link-layer header.
    pub const IP: u8 = 2;
}

#[inline(always)]
fn version(buf: &[u8]) -> u8 {
    (read_u16(buf, field::VER_VLAN) >> 12) as u8
}

// The first word is laid out alike in both types: Ver (4) VLAN (12) COS (3) En/BSO (2) T (1)
// Session ID (10).

fn vlan(buf: &[u8]) -> u16 {
    read_u16(buf, field::VER_VLAN) & 0x0FFF
}

fn cos(buf: &[u8]) -> u8 {
    (read_u16(buf, field::COS_SESSION) >> 13) as u8
}

/// The 2-bit field after COS: En in type II, BSO in type III.
fn en_or_bso(buf: &[u8]) -> u8 {
    ((read_u16(buf, field::COS_SESSION) >> 11) & 0x3) as u8
}

fn truncated(buf: &[u8]) -> bool {
    read_u16(buf, field::COS_SESSION) & 0x0400 != 0
}

fn session_id(buf: &[u8]) -> u16 {
    read_u16(buf, field::COS_SESSION) & 0x03FF
}

/// A view of an 8-byte ERSPAN type II header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErspanIIHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ErspanIIHeader<T> {
    /// Length of the header.
    pub const HEADER_LEN: usize = field::II_LEN;

    /// Wraps and validates `buffer`: [`ParseStatus::TruncatedTunnel`] when shorter than 8
    /// bytes, [`ParseStatus::BadTunnelHeader`] when the version is not 1.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        let buf = buffer.as_ref();
        if buf.len() < Self::HEADER_LEN {
            return Err(ParseStatus::TruncatedTunnel);
        }
        if version(buf) != ERSPAN_II_VERSION {
            return Err(ParseStatus::BadTunnelHeader);
        }
        Ok(ErspanIIHeader { buffer })
    }

    /// Version (1).
    #[inline]
    pub fn version(&self) -> u8 {
        version(self.buffer.as_ref())
    }

    /// VLAN of the original frame (12 bits; see [`Self::encap_type`]).
    #[inline]
    pub fn vlan(&self) -> u16 {
        vlan(self.buffer.as_ref())
    }

    /// Class of service of the original frame.
    #[inline]
    pub fn cos(&self) -> u8 {
        cos(self.buffer.as_ref())
    }

    /// En: 0 originally untagged, 1 ISL, 2 802.1Q (tag removed), 3 tag kept in the frame.
    #[inline]
    pub fn encap_type(&self) -> u8 {
        en_or_bso(self.buffer.as_ref())
    }

    /// T: the mirrored frame was truncated to fit.
    #[inline]
    pub fn truncated(&self) -> bool {
        truncated(self.buffer.as_ref())
    }

    /// Session id (10 bits).
    #[inline]
    pub fn session_id(&self) -> u16 {
        session_id(self.buffer.as_ref())
    }

    /// Index (20 bits): platform-dependent port index.
    #[inline]
    pub fn index(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::II_INDEX) & 0x000F_FFFF
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> ErspanIIHeader<&'a T> {
    /// The mirrored Ethernet frame.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        slice_from(self.buffer.as_ref(), field::II_LEN)
    }
}

view_common!(ErspanIIHeader);

/// A view of a 12-byte ERSPAN type III header and its optional 8-byte platform-specific
/// subheader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErspanIIIHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ErspanIIIHeader<T> {
    /// Length of the header without the platform-specific subheader.
    pub const MIN_HEADER_LEN: usize = field::III_LEN;

    /// Wraps and validates `buffer`: [`ParseStatus::TruncatedTunnel`] when shorter than 12
    /// bytes, or than 20 when the O bit announces the subheader;
    /// [`ParseStatus::BadTunnelHeader`] when the version is not 2.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        let buf = buffer.as_ref();
        if buf.len() < Self::MIN_HEADER_LEN {
            return Err(ParseStatus::TruncatedTunnel);
        }
        if version(buf) != ERSPAN_III_VERSION {
            return Err(ParseStatus::BadTunnelHeader);
        }
        let h = ErspanIIIHeader { buffer };
        if h.buffer.as_ref().len() < h.header_len() {
            return Err(ParseStatus::TruncatedTunnel);
        }
        Ok(h)
    }

    #[inline]
    fn flags(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::III_FLAGS)
    }

    /// Version (2).
    #[inline]
    pub fn version(&self) -> u8 {
        version(self.buffer.as_ref())
    }

    /// VLAN of the original frame (12 bits).
    #[inline]
    pub fn vlan(&self) -> u16 {
        vlan(self.buffer.as_ref())
    }

    /// Class of service of the original frame.
    #[inline]
    pub fn cos(&self) -> u8 {
        cos(self.buffer.as_ref())
    }

    /// BSO: 0 good frame, 1 short, 2 oversized, 3 CRC or alignment error.
    #[inline]
    pub fn bso(&self) -> u8 {
        en_or_bso(self.buffer.as_ref())
    }

    /// T: the mirrored frame was truncated to fit.
    #[inline]
    pub fn truncated(&self) -> bool {
        truncated(self.buffer.as_ref())
    }

    /// Session id (10 bits).
    #[inline]
    pub fn session_id(&self) -> u16 {
        session_id(self.buffer.as_ref())
    }

    /// Timestamp, in units given by [`Self::granularity`].
    #[inline]
    pub fn timestamp(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::III_TIMESTAMP)
    }

    /// Security group tag.
    #[inline]
    pub fn sgt(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::III_SGT)
    }

    /// P: the payload is an Ethernet protocol frame (PDU).
    #[inline]
    pub fn pdu(&self) -> bool {
        self.flags() & 0x8000 != 0
    }

    /// FT: frame type of the payload (see [`erspan_frame_type`]).
    #[inline]
    pub fn frame_type(&self) -> u8 {
        ((self.flags() >> 10) & 0x1F) as u8
    }

    /// Hardware id (6 bits).
    #[inline]
    pub fn hw_id(&self) -> u8 {
        ((self.flags() >> 4) & 0x3F) as u8
    }

    /// D: 0 ingress, 1 egress.
    #[inline]
    pub fn direction(&self) -> bool {
        self.flags() & 0x0008 != 0
    }

    /// Gra: timestamp granularity (0 100 µs, 1 100 ns, 2 IEEE 1588, 3 reserved).
    #[inline]
    pub fn granularity(&self) -> u8 {
        ((self.flags() >> 1) & 0x3) as u8
    }

    /// O: an 8-byte platform-specific subheader follows.
    #[inline]
    pub fn has_platform_subheader(&self) -> bool {
        self.flags() & 0x0001 != 0
    }

    /// Header length: 12, or 20 with the platform-specific subheader.
    #[inline]
    pub fn header_len(&self) -> usize {
        Self::MIN_HEADER_LEN
            + if self.has_platform_subheader() {
                field::III_PLATFORM_LEN
            } else {
                0
            }
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> ErspanIIIHeader<&'a T> {
    /// The mirrored frame or packet (see [`Self::frame_type`]).
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        slice_from(self.buffer.as_ref(), self.header_len())
    }
}

view_common!(ErspanIIIHeader);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_ii_fields() {
        let b = [0x10, 0x64, 0xb4, 0x2a, 0x00, 0x01, 0x23, 0x45, 0xee];
        let h = ErspanIIHeader::new_checked(&b[..]).unwrap();
        assert_eq!((h.version(), h.vlan(), h.cos()), (1, 100, 5));
        assert_eq!(
            (h.encap_type(), h.truncated(), h.session_id()),
            (2, true, 42)
        );
        assert_eq!(h.index(), 0x12345);
        assert_eq!(h.payload(), &[0xee]);
        assert_eq!(
            ErspanIIHeader::new_checked(&b[..7]),
            Err(ParseStatus::TruncatedTunnel)
        );
        let mut v2 = b;
        v2[0] = 0x20;
        assert_eq!(
            ErspanIIHeader::new_checked(&v2[..]),
            Err(ParseStatus::BadTunnelHeader)
        );
        assert_eq!(h.into_inner().len(), 9);
    }

    #[test]
    fn type_iii_fields() {
        let mut b = [0u8; 21];
        b[..12].copy_from_slice(&[
            0x20, 0x07, 0x08, 0x03, // ver 2, VLAN 7, BSO 1, session 3
            0x00, 0x00, 0x10, 0x00, // timestamp
            0xab, 0xcd, // SGT
            0x88, 0x3d, // P, FT 2, hw id 3, D, Gra 2, O
        ]);
        b[20] = 0xee;
        let h = ErspanIIIHeader::new_checked(&b[..]).unwrap();
        assert_eq!(
            (h.version(), h.vlan(), h.bso(), h.truncated()),
            (2, 7, 1, false)
        );
        assert_eq!((h.session_id(), h.timestamp(), h.sgt()), (3, 4096, 0xabcd));
        assert!(h.pdu() && h.direction() && h.has_platform_subheader());
        assert_eq!((h.frame_type(), h.hw_id(), h.granularity()), (2, 3, 2));
        assert_eq!((h.header_len(), h.payload()), (20, &[0xee][..]));
        assert_eq!(h.cos(), 0);
        assert_eq!(
            ErspanIIIHeader::new_checked(&b[..19]),
            Err(ParseStatus::TruncatedTunnel)
        );
        assert_eq!(
            ErspanIIIHeader::new_checked(&b[..11]),
            Err(ParseStatus::TruncatedTunnel)
        );
        // Without the subheader 12 bytes are enough.
        b[10..12].copy_from_slice(&[0x00, 0x00]);
        let h = ErspanIIIHeader::new_checked(&b[..12]).unwrap();
        assert_eq!((h.header_len(), h.frame_type()), (12, 0));
        assert_eq!(h.into_inner().len(), 12);
        b[0] = 0x10;
        assert_eq!(
            ErspanIIIHeader::new_checked(&b[..]),
            Err(ParseStatus::BadTunnelHeader)
        );
    }
}
