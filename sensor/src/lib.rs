//! # surgewatch-sensor
//!
//! The only crate that touches the outside world on the input side: capture sources, worker
//! threads, wiring of pipeline → per-ip → export, and the `surgewatch` CLI.

#![warn(missing_docs)]
// System calls live in `sys`, which alone allows `unsafe` (STYLE.md rule 20).
#![deny(unsafe_code)]
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod capture;
pub mod hostaddr;
pub mod live;
pub mod livesrc;
pub mod replay;
pub mod signals;
pub mod sys;
pub mod tick;
