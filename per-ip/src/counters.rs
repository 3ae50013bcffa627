//! Plain counter structs shared by shards, the merger and the report.

use surgewatch_pipeline::{ParseStatus, TrafficClass};

use crate::key::Direction;

/// Packets and bytes (bytes are frame lengths on the wire).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct PacketsBytes {
    /// Packets.
    pub packets: u64,
    /// Bytes on the wire.
    pub bytes: u64,
}

impl PacketsBytes {
    /// Adds one packet of `bytes`.
    #[inline]
    pub fn add_packet(&mut self, bytes: u64) {
        self.packets += 1;
        self.bytes += bytes;
    }

    /// Adds another counter.
    #[inline]
    pub fn add(&mut self, o: &PacketsBytes) {
        self.packets += o.packets;
        self.bytes += o.bytes;
    }
}

/// Packets and bytes of one address, per [`Direction`] and per [`TrafficClass`]
/// (2 × 9 × 16 B = 288 B). Packets and bytes of a class sit side by side, so accounting a
/// packet touches one 16-byte slot.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct IpCounters {
    /// `by_dir[dir.index()][class.index()]`.
    pub by_dir: [[PacketsBytes; TrafficClass::COUNT]; 2],
}

impl IpCounters {
    /// All zero.
    pub const ZERO: IpCounters = IpCounters {
        by_dir: [[PacketsBytes {
            packets: 0,
            bytes: 0,
        }; TrafficClass::COUNT]; 2],
    };

    /// Adds one packet of class index `class` (`TrafficClass::index`, < 9).
    #[inline]
    pub(crate) fn add_packet(&mut self, dir: Direction, class: usize, bytes: u64) {
        if let Some(c) = self.by_dir[dir.index()].get_mut(class) {
            c.add_packet(bytes);
        }
    }

    /// Adds every counter of `o`.
    pub fn add(&mut self, o: &IpCounters) {
        for (a, b) in self.by_dir.iter_mut().zip(&o.by_dir) {
            for (x, y) in a.iter_mut().zip(b) {
                x.add(y);
            }
        }
    }

    /// Counter of one direction and class.
    #[inline]
    pub fn get(&self, dir: Direction, class: TrafficClass) -> PacketsBytes {
        self.by_dir[dir.index()][class.index()]
    }

    /// Sum over classes for one direction.
    pub fn total(&self, dir: Direction) -> PacketsBytes {
        let mut t = PacketsBytes::default();
        for c in &self.by_dir[dir.index()] {
            t.add(c);
        }
        t
    }

    /// Sum over both directions and all classes.
    pub fn grand_total(&self) -> PacketsBytes {
        let mut t = self.total(Direction::In);
        t.add(&self.total(Direction::Out));
        t
    }
}

/// Whole-traffic counters, kept per shard per tick and summed by the merger.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct TrafficStats {
    /// Every frame handed to `account`, and its wire bytes.
    pub total: PacketsBytes,
    /// Frames per parse outcome, indexed by [`ParseStatus::index`].
    pub parse_status: [u64; ParseStatus::COUNT],
    /// Per-direction accountings dropped because of the tracked-IP limit: a packet whose
    /// source and destination were both dropped counts twice. Includes packets of addresses a
    /// shard kept but the merger did not admit, so the sum is independent of sharding.
    pub overflow: PacketsBytes,
}

impl TrafficStats {
    /// Adds another set of stats.
    pub fn add(&mut self, o: &TrafficStats) {
        self.total.add(&o.total);
        for (a, b) in self.parse_status.iter_mut().zip(&o.parse_status) {
            *a += b;
        }
        self.overflow.add(&o.overflow);
    }

    /// Frames with parse outcome `s`.
    pub fn status(&self, s: ParseStatus) -> u64 {
        self.parse_status[s.index()]
    }
}
