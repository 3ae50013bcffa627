//! # surgewatch-per-ip
//!
//! Pure per-monitored-IP accounting: which addresses are monitored ([`PrefixTable`],
//! [`Monitor`]), per-worker counting ([`Shard`]), merging at tick boundaries ([`Accounting`]),
//! tick boundaries from packet timestamps ([`TickClock`]) and a plain [`Report`].
//!
//! Per tick ([`ClosedTick`]) it also yields the detection engine's inputs: per-address
//! counters by direction and class, inbound amplification counters by reflector source port
//! ([`AmpCounters`], [`ClosedTick::ips`]), and for the few *watched* targets the engine picks
//! at each tick boundary ([`Accounting::set_watch`]) a per-target source analysis
//! ([`sources::SourceStats`], [`ClosedTick::watched`]). Detection itself (baselines, incidents,
//! classification) is the `surgewatch-detect` crate, which reads only this closed-tick interface.
//!
//! ## Contract
//! - **Pure, sans-IO**: no threads, clocks, environment or I/O. Time arrives as `u64`
//!   nanoseconds since the epoch, in arguments.
//! - **No locks or atomics on the per-packet path**: each worker owns a [`Shard`] and calls
//!   [`Shard::account_batch`] per batch of packets (or [`Shard::account`] per packet, same
//!   results); the only sharing is read-only `Arc`s ([`Monitor`], [`WatchSet`], the
//!   [`Rearm`] lists).
//! - **Merge at tick boundaries**: each shard hands its [`TickDelta`] to the single
//!   [`Accounting`], which sums them in place and closes the tick ([`Accounting::end_tick`]);
//!   deltas go back to shards through [`Shard::rearm`] so vectors keep their capacity, with a
//!   [`Rearm`]: the addresses admitted and evicted at the boundary (every shard learns every
//!   tracked address's [`IpId`]), the room left under the limit and the [`WatchSet`] for the
//!   next tick. Shards count tracked addresses straight into vectors indexed by `IpId`, so the
//!   merge walks dense vectors in id order, without hashing or sorting per address.
//! - **Deterministic**: the same packets give the same [`Report`] and the same
//!   [`ClosedTick`] sequence however they are spread over shards. Sums commute; new addresses
//!   are admitted in ascending address order; evictions pick the address quiet for longest
//!   (ties: lowest id); every output is sorted, never in hash order. Under a tracked-IP limit
//!   this needs every shard re-armed between ticks (see [`Shard`]); which untracked
//!   destinations are admitted for their rate can depend on the spread only for those near
//!   the admission rate.
//! - **Bounded memory**: with a tracked-IP limit (always in auto-monitor mode; the sensor
//!   sets one in prefix mode too) per-tick maps and per-IP state hold at most the limit's
//!   worth of addresses, also under a random-destination flood or a scan of a monitored /48;
//!   what does not fit is counted as overflow, and the busiest untracked destinations are
//!   admitted in place of quiet tracked ones ([`Accounting::end_tick`]).
//!
//! ## Tick loop
//! ```
//! use std::sync::Arc;
//! use surgewatch_per_ip::*;
//! use surgewatch_pipeline::PacketSummary;
//!
//! let table = PrefixTable::new([("192.0.2.0/24".parse().unwrap(), GroupId(0))]).unwrap();
//! let monitor = Arc::new(Monitor::prefixes(table));
//! let tick = TickLength::from_nanos(1_000_000_000).unwrap();
//! let mut shards = vec![Shard::new(monitor.clone()), Shard::new(monitor.clone())];
//! let mut acct = Accounting::new(monitor, tick);
//! let mut clock = TickClock::new(tick);
//!
//! let mut s = PacketSummary::empty(60);
//! s.ip_version = 4;
//! s.dst = "192.0.2.1".parse().unwrap();
//! s.protocol = surgewatch_pipeline::proto::UDP;
//! for (i, ts) in [10u64, 500_000_000, 1_200_000_000].into_iter().enumerate() {
//!     if let TickAdvance::Advanced { closed_start_ns, .. } = clock.observe(ts) {
//!         let mut deltas: Vec<TickDelta> = shards.iter_mut().map(Shard::take_tick).collect();
//!         let closed = acct.end_tick(closed_start_ns, &mut deltas);
//!         assert_eq!(closed.iter().count(), 1);
//!         // The detection engine picks the targets to analyse in the next tick.
//!         acct.set_watch(["192.0.2.1".parse().unwrap()]);
//!         let rearm = acct.rearm();
//!         for (shard, d) in shards.iter_mut().zip(deltas) {
//!             shard.rearm(d, &rearm);
//!         }
//!     }
//!     shards[i % 2].account_batch(std::slice::from_ref(&s));
//! }
//! if let Some(start) = clock.finish() {
//!     let mut deltas: Vec<TickDelta> = shards.iter_mut().map(Shard::take_tick).collect();
//!     let closed = acct.end_tick(start, &mut deltas);
//!     let (_, ip, sources) = closed.watched().next().unwrap();
//!     assert_eq!((ip.to_string(), sources.packets()), ("192.0.2.1".into(), 1));
//! }
//! let report = acct.report(10);
//! assert_eq!(report.totals.packets, 3);
//! assert_eq!(report.top[0].packets_in, 3);
//! assert_eq!(report.top[0].peak_pps, 2);
//! ```

// The only `unsafe`: the cache prefetch hint and the zeroed allocation of the shard's large
// tables (`mem`), and the `Zeroed` marker of the shard's index entries.
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod accounting;
mod bits;
mod clock;
mod counters;
mod heavy;
mod key;
pub mod mem;
mod prefix;
pub mod reflector;
mod shard;
pub mod sources;
mod untracked;

pub use accounting::{
    Accounting, ClassReport, ClosedTick, IpRecord, IpReport, IpTotals, NextTick, Report,
    ReportTotals, TickCounters, TickIp, TickIpCells, MAX_HEAVY_ADMISSIONS,
};
pub use clock::{PerSec, TickAdvance, TickClock, TickLength};
pub use counters::{amp_bucket, AmpCounters, IpCounters, PacketsBytes, TrafficStats};
pub use key::{Direction, GroupId, IpId, IpKey};
pub use prefix::{PrefixError, PrefixTable};
pub use reflector::{AmpBucket, AMP_BUCKETS};
pub use shard::{
    Monitor, Rearm, Shard, TickDelta, WatchSet, DEFAULT_ADMIT_UNTRACKED_PPS, DEFAULT_IDLE_EVICT_NS,
    ONSET_SAMPLE_RATE,
};
pub use untracked::{ClassCounts, UntrackedAggregate, MAX_NETS_PER_SHARD, MAX_NETS_PER_TICK};
