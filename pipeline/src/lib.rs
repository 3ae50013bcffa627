//! # surgewatch-pipeline
//!
//! Pure, zero-copy frame parsing. One captured frame in, one small [`PacketSummary`] out.
//!
//! Contract:
//! - [`parse()`] never panics and never allocates, whatever the bytes: every problem becomes a
//!   [`ParseStatus`] reason code that callers count.
//! - No I/O, no clocks, no threads, no global state: the same bytes always give the same summary.
//! - Header views in [`wire`] are built with checked constructors over `&[u8]`; after a
//!   successful `new_checked`, no accessor can panic.
//!
//! Coverage: Ethernet II, Linux SLL / SLL2, BSD Null / Loop and raw IP framings; up to 8
//! stacked 802.1Q / 802.1ad / 0x9100 / 0x9200 VLAN tags; IPv4 with options and fragments;
//! IPv6 with up to 8 extension headers (hop-by-hop, routing, fragment, destination options,
//! AH); TCP, UDP, ICMP and ICMPv6 headers. Tunnels (GRE, VXLAN, ERSPAN) are not decapsulated:
//! they are reported by their outer IP protocol.

#![forbid(unsafe_code)]
// Attacker-controlled bytes: no panicking access outside tests (STYLE.md, rule 7).
#![cfg_attr(
    not(test),
    deny(
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::unreachable
    )
)]
#![warn(missing_docs)]

mod parse;
mod summary;
pub mod wire;

pub use parse::parse;
pub use summary::{proto, tcp_flags, Fragment, LinkType, PacketSummary, ParseStatus, TrafficClass};
