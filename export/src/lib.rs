//! # surgewatch-export
//!
//! Everything that leaves the process goes through here: the stable JSON-lines event stream,
//! the human-readable text output (later also Prometheus metrics, alerts and forensics), as
//! [`sink`]s on threads of their own behind bounded queues, and the sensor's diagnostics on
//! stderr ([`diag`]), each written and counted.
//!
//! Contract: output field names, and the names of the domain values in the output
//! ([`contract`]), are defined here and only here and are part of surgewatch's public
//! interface (documented in the README); changing one is a breaking change. Per-IP data
//! appears only for a bounded set (the top-N of a report).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod contract;
pub mod diag;
pub mod events;
pub mod mitigation;
pub mod sink;
pub mod summary;
pub mod terminal;

#[cfg(test)]
mod testing;
