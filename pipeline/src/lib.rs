//! # surgewatch-pipeline
//!
//! Pure, zero-copy frame parsing. One captured frame in, one small [`PacketSummary`] out.
//!
//! Contract:
//! - [`parse`] never panics and never allocates, whatever the bytes: every problem becomes a
//!   [`ParseStatus`] reason code that callers count.
//! - No I/O, no clocks, no threads, no global state: the same bytes always give the same summary.
//! - Header views in [`wire`] are built with checked constructors over `&[u8]`; after a
//!   successful `new_checked`, no accessor can panic.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod parse;
mod summary;
pub mod wire;

pub use parse::parse;
pub use summary::{proto, tcp_flags, Fragment, LinkType, PacketSummary, ParseStatus, TrafficClass};
