//! Zero-copy header views over untrusted bytes, in the style of smoltcp's `wire` module.
//!
//! Every view is a thin wrapper `struct View<T: AsRef<[u8]>> { buffer: T }` with:
//! - a `new_checked(buffer)` constructor that validates the length (and, where a header
//!   announces its own length, that field) and returns the [`ParseStatus`] reason code on
//!   failure;
//! - accessors that read fixed, `const` field ranges. They go through checked slice access
//!   (`get`) and fall back to zero, so even a view whose invariants were somehow broken
//!   cannot panic; after a successful `new_checked` the fallback is never taken and the
//!   optimiser removes it.
//!
//! On views over a borrowed buffer (`View<&'a [u8]>`) `payload()` returns a slice with the
//! buffer's lifetime `'a`, so layers can be peeled without copying.

use crate::ParseStatus;

mod erspan;
mod ethernet;
mod gre;
mod icmp;
mod ipv4;
mod ipv6;
mod link;
mod tcp;
mod udp;
mod vxlan;

pub use erspan::{
    erspan_frame_type, ErspanIIHeader, ErspanIIIHeader, ERSPAN_III_VERSION, ERSPAN_II_VERSION,
};
pub use ethernet::{ethertype, is_vlan_ethertype, EthernetFrame, VlanHeader};
pub use gre::{gre_protocol, GreHeader};
pub use icmp::IcmpHeader;
pub use ipv4::Ipv4Packet;
pub use ipv6::{ext_header, Ipv6ExtHeader, Ipv6FragmentHeader, Ipv6Packet};
pub use link::{address_family, LoopbackHeader, LoopbackOrder, Sll2Header, SllHeader};
pub use tcp::TcpHeader;
pub use udp::UdpHeader;
pub use vxlan::{VxlanHeader, VXLAN_PORT};

/// Result of a checked constructor: the error is the reason code that gets counted.
pub type Result<T> = core::result::Result<T, ParseStatus>;

/// A field's byte range within its header.
pub(crate) type Field = core::ops::Range<usize>;

/// Reads one byte, or 0 when out of range.
#[inline(always)]
pub(crate) fn read_u8(buf: &[u8], at: usize) -> u8 {
    match buf.get(at) {
        Some(b) => *b,
        None => 0,
    }
}

/// Reads a fixed-size array from a range, or zeros when out of range.
#[inline(always)]
pub(crate) fn read_array<const N: usize>(buf: &[u8], field: Field) -> [u8; N] {
    match buf.get(field).and_then(|s| <[u8; N]>::try_from(s).ok()) {
        Some(a) => a,
        None => [0; N],
    }
}

/// Reads a big-endian `u16` from a 2-byte range, or 0 when out of range.
#[inline(always)]
pub(crate) fn read_u16(buf: &[u8], field: Field) -> u16 {
    u16::from_be_bytes(read_array(buf, field))
}

/// Reads a big-endian `u32` from a 4-byte range, or 0 when out of range.
#[inline(always)]
pub(crate) fn read_u32(buf: &[u8], field: Field) -> u32 {
    u32::from_be_bytes(read_array(buf, field))
}

/// The bytes from `start` to `end` (clamped to the buffer), or an empty slice.
#[inline(always)]
pub(crate) fn slice_between(buf: &[u8], start: usize, end: usize) -> &[u8] {
    let end = if end < buf.len() { end } else { buf.len() };
    match buf.get(start..end) {
        Some(s) => s,
        None => &[],
    }
}

/// The bytes from `start` on, or an empty slice.
#[inline(always)]
pub(crate) fn slice_from(buf: &[u8], start: usize) -> &[u8] {
    match buf.get(start..) {
        Some(s) => s,
        None => &[],
    }
}

/// Implements `into_inner`, shared by every view.
macro_rules! view_common {
    ($view:ident) => {
        impl<T: AsRef<[u8]>> $view<T> {
            /// Gives back the underlying buffer.
            #[inline]
            pub fn into_inner(self) -> T {
                self.buffer
            }
        }
    };
}
pub(crate) use view_common;
