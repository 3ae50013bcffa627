use crate::{LinkType, PacketSummary, ParseStatus};

/// Parses one frame of the given link type. `wire_len` is the frame's length on the wire.
pub fn parse(link: LinkType, frame: &[u8], wire_len: u32) -> PacketSummary {
    let _ = (link, frame);
    let mut s = PacketSummary::empty(wire_len);
    s.status = ParseStatus::UnsupportedLinkType;
    s
}
