//! # surgewatch-pcaps
//!
//! A deterministic generator of small labelled captures, each written beside the results a
//! correct sensor must report for it (`NAME.expected.json`), plus a generator of large
//! benchmark captures.
//!
//! * [`packet`] builds frames: Ethernet II with 802.1Q / QinQ tags, IPv4 (options, fragments,
//!   checksums), IPv6 (hop-by-hop, routing, destination-options and fragment headers), TCP,
//!   UDP, ICMP and ICMPv6. Each frame carries the accounting class it was *built* to have.
//! * [`writer`] writes classic pcap (micro/nanosecond magic, either byte order) and pcapng.
//! * [`mod@catalogue`] lists the captures ([`catalogue()`]) and generates them from a ChaCha RNG
//!   seeded with the capture's name; [`expected`] turns the generator's own bookkeeping of each
//!   frame into the [`Expected`] results, never by parsing the frames back.
//! * [`big`] streams multi-million-packet captures for benchmarks; [`hostile`] streams
//!   random-destination sweeps and floods aimed at the sensor's own state (soak test, probes).
//!
//! The committed captures live in [`captures_dir()`]; a test checks they are byte-identical to
//! what the generator writes. The schema and counting rules are documented in `pcaps/README.md`.
//!
//! ```no_run
//! for spec in surgewatch_pcaps::catalogue() {
//!     let path = surgewatch_pcaps::captures_dir().join(&spec.expected_file_name);
//!     let text = std::fs::read_to_string(path).unwrap();
//!     let expected: surgewatch_pcaps::Expected = serde_json::from_str(&text).unwrap();
//!     println!("{} {} packets", spec.file_name, expected.packets);
//! }
//! ```

#![warn(missing_docs)]

use std::path::PathBuf;

pub mod big;
pub mod catalogue;
pub mod expected;
pub mod gen;
pub mod hostile;
pub mod packet;
pub mod scenario;
pub mod tunnels;
pub mod writer;

pub use catalogue::{catalogue, generate, write_catalogue, CaptureSpec, Generated};
pub use expected::{
    is_monitored, Acct, ClassCount, Expected, ExpectedAttack, ExpectedIp, Reason, Record, MONITOR,
};
pub use packet::Class;
pub use writer::{CaptureWriter, Format};

/// Directory of the committed captures: `pcaps/captures` in the source tree.
pub fn captures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("captures")
}

/// Reads and decodes the expectations of one catalogue capture from [`captures_dir()`].
pub fn load_expected(spec: &CaptureSpec) -> std::io::Result<Expected> {
    let text = std::fs::read_to_string(captures_dir().join(&spec.expected_file_name))?;
    serde_json::from_str(&text).map_err(std::io::Error::other)
}
