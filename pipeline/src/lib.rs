//! # surgewatch-pipeline
//!
//! Pure, zero-copy frame parsing. One captured frame in, one small [`PacketSummary`] out.
//!
//! Contract:
//! - [`parse()`] and [`parse_with()`] never panic and never allocate, whatever the bytes: every
//!   problem becomes a [`ParseStatus`] reason code that callers count.
//! - No I/O, no clocks, no threads, no global state: the same bytes always give the same summary.
//! - Header views in [`wire`] are built with checked constructors over `&[u8]`; after a
//!   successful `new_checked`, no accessor can panic.
//!
//! Coverage: Ethernet II, Linux SLL / SLL2, BSD Null / Loop and raw IP framings; up to 8
//! stacked 802.1Q / 802.1ad / 0x9100 / 0x9200 VLAN tags; IPv4 with options and fragments;
//! IPv6 with up to 8 extension headers (hop-by-hop, routing, fragment, destination options,
//! AH); TCP, UDP, ICMP and ICMPv6 headers.
//!
//! Tunnels: [`parse()`] reports GRE, ERSPAN and VXLAN by their outer IP protocol (GRE → class
//! `other`, VXLAN → UDP). [`parse_with()`] and a [`ParseOptions`] with [`Decap`] enabled
//! decapsulate GRE (Ethernet, IPv4, IPv6 payloads), ERSPAN type II / III and VXLAN, up to two
//! levels, and summarise the inner frame: what a switch's mirror session delivers is the
//! customer's traffic, wrapped. Decapsulation is off by default because on an ordinary link
//! the tunnel *is* the traffic, and its inner addresses are whatever the sender wrote (see
//! [`Decap`]); the sensor turns it on from its configuration.

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

mod options;
mod parse;
mod summary;
pub mod wire;

pub use options::{Decap, ParseOptions, MAX_DECAP_DEPTH};
pub use parse::{parse, parse_with};
pub use summary::{
    proto, tcp_flags, Encap, Fragment, LinkType, PacketSummary, ParseStatus, TrafficClass,
};
