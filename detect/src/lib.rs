//! # surgewatch-detect
//!
//! Pure detection over the closed ticks of [`surgewatch_per_ip`]: learned per-IP baselines
//! ([`baseline`]), the incident state machine ([`Detector`]: closed ticks in, incident events
//! out) and attack classification ([`classify`]: families, vectors, confidence).
//!
//! ## Contract
//! - **Pure, sans-IO**: no threads, clocks, environment or I/O; time arrives in the closed
//!   ticks (capture or wall-clock nanoseconds, the caller decides).
//! - **Reads only the public closed-tick interface of `per-ip`** ([`surgewatch_per_ip::ClosedTick`],
//!   [`surgewatch_per_ip::TickIpCells`], the source statistics of watched targets): it never
//!   sees shards, deltas or packed cells.
//! - **Deterministic**: addresses are visited by ascending [`surgewatch_per_ip::IpId`]; the same
//!   ticks give the same events, byte for byte once formatted.
//! - **Bounded**: per-IP state is one baseline per tracked address (the accounting bounds the
//!   tracked set) plus the open incidents; source analysis is kept for at most
//!   [`MAX_WATCHED`] targets per tick.
//!
//! ## Driving a [`Detector`]
//! Call [`Detector::on_tick`] once per closed tick, in order, with the number of idle ticks
//! that follow it; it appends the tick's events. Before the next tick, hand
//! [`Detector::watch_list`] to the accounting ([`surgewatch_per_ip::Accounting::set_watch`]).
//! At the end of the input call [`Detector::finish`] to end the incidents still open.

#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod baseline;
pub mod classify;
mod detector;

pub use classify::{Classification, Family};
pub use detector::*;
