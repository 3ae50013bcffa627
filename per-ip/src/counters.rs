//! Plain counter structs shared by shards, the merger and the report.

use surgewatch_pipeline::{ParseStatus, TrafficClass};

use crate::key::Direction;
use crate::reflector::{AMP_BUCKETS, REFLECTORS};

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
/// (2 × 9 × 16 B = 288 B): the merged, long-lived form (shards count a tick in a packed form
/// half this size).
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

/// Inbound UDP traffic of one address in one tick, by the amplification bucket of its source
/// port (see [`amp_bucket`]): the per-tick signal of reflection/amplification attacks.
///
/// Only UDP packets whose header was read are counted (`has_l4`), which includes first
/// fragments (class `fragment`); later fragments carry no port and are not. Per tick only:
/// [`IpRecord`](crate::IpRecord) totals do not include it. Counts are `u64` because the
/// struct exists only for addresses that received such traffic in the tick.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct AmpCounters {
    /// Packets per bucket (`[bucket]`, buckets in [`AmpCounters::NAMES`] order).
    pub packets: [u64; AMP_BUCKETS],
    /// Wire bytes per bucket.
    pub bytes: [u64; AMP_BUCKETS],
    /// First fragments per bucket (included in `packets`): large reflected answers.
    pub first_frags: [u64; AMP_BUCKETS],
}

impl AmpCounters {
    /// All zero.
    pub const ZERO: AmpCounters = AmpCounters {
        packets: [0; AMP_BUCKETS],
        bytes: [0; AMP_BUCKETS],
        first_frags: [0; AMP_BUCKETS],
    };

    /// Bucket names, in index order: DNS (53), NTP (123), memcached (11211), SSDP (1900),
    /// CLDAP (389), SNMP (161), chargen (19), then every other port of the reflector table
    /// ([`REFLECTORS`](crate::reflector::REFLECTORS), bucket
    /// [`AmpBucket::Other`](crate::reflector::AmpBucket::Other)).
    pub const NAMES: [&'static str; AMP_BUCKETS] = [
        "dns",
        "ntp",
        "memcached",
        "ssdp",
        "cldap",
        "snmp",
        "chargen",
        "other_reflector",
    ];

    /// Adds one packet of `bytes` in `bucket` (< [`AMP_BUCKETS`]).
    #[inline]
    pub(crate) fn add_packet(&mut self, bucket: usize, bytes: u64, first_frag: bool) {
        if let (Some(p), Some(b), Some(f)) = (
            self.packets.get_mut(bucket),
            self.bytes.get_mut(bucket),
            self.first_frags.get_mut(bucket),
        ) {
            *p += 1;
            *b += bytes;
            *f += u64::from(first_frag);
        }
    }

    /// Adds every counter of `o`.
    pub fn add(&mut self, o: &AmpCounters) {
        for i in 0..AMP_BUCKETS {
            self.packets[i] += o.packets[i];
            self.bytes[i] += o.bytes[i];
            self.first_frags[i] += o.first_frags[i];
        }
    }

    /// Packets over all buckets.
    pub fn total_packets(&self) -> u64 {
        self.packets.iter().sum()
    }

    /// Whether nothing was counted.
    pub fn is_zero(&self) -> bool {
        *self == AmpCounters::ZERO
    }
}

/// "Not a reflector port" in [`AMP_TABLE`].
pub(crate) const NO_AMP: u8 = u8::MAX;

/// Every port of the [`REFLECTORS`] table mapped to its bucket.
const fn build_amp_table() -> [u8; 1 << 16] {
    let mut t = [NO_AMP; 1 << 16];
    let mut i = 0;
    while i < REFLECTORS.len() {
        t[REFLECTORS[i].port as usize] = REFLECTORS[i].bucket as u8;
        i += 1;
    }
    t
}

/// Source port → amplification bucket, or [`NO_AMP`]: one byte load per packet (64 KiB,
/// built at compile time).
pub(crate) static AMP_TABLE: [u8; 1 << 16] = build_amp_table();

/// The amplification bucket (index into [`AmpCounters`] arrays, see [`AmpCounters::NAMES`])
/// of a UDP source port, `None` for a port that is not a known reflector.
#[inline]
pub fn amp_bucket(src_port: u16) -> Option<usize> {
    let b = AMP_TABLE[usize::from(src_port)];
    (b != NO_AMP).then_some(usize::from(b))
}

/// Per-tick counters of one address in a shard: one packed `u64` cell per (direction,
/// class), index `dir * 9 + class`, packets in the top 24 bits and bytes in the low 40 bits.
/// A packet touches one 8-byte cell, so one cache line; the 144 bytes of an address are
/// half the size of an [`IpCounters`]. A cell spills (see [`cell_add`]) long before either
/// field can overflow.
pub(crate) type TickCells = [u64; 2 * TrafficClass::COUNT];

/// The zero cells.
pub(crate) const ZERO_CELLS: TickCells = [0; 2 * TrafficClass::COUNT];

const PKT_SHIFT: u32 = 40;
const ONE_PKT: u64 = 1 << PKT_SHIFT;
const BYTES_MASK: u64 = ONE_PKT - 1;
/// Set once a cell holds 2^23 packets or 2^39 bytes: adding one more packet of < 2^32 bytes to
/// a cell below both bounds cannot carry out of either field.
const SPILL_MASK: u64 = (1 << 63) | (1 << 39);

/// Adds one packet of `bytes` (a `u32` wire length) to a cell. Returns the cell's whole
/// content when it must spill (the cell is then zeroed): the caller keeps it aside.
#[inline(always)]
pub(crate) fn cell_add(cell: &mut u64, bytes: u32) -> Option<PacketsBytes> {
    let v = *cell + ONE_PKT + u64::from(bytes);
    if v & SPILL_MASK == 0 {
        *cell = v;
        None
    } else {
        *cell = 0;
        Some(cell_unpack(v))
    }
}

/// Packets and bytes of a cell.
#[inline]
pub(crate) fn cell_unpack(v: u64) -> PacketsBytes {
    PacketsBytes {
        packets: v >> PKT_SHIFT,
        bytes: v & BYTES_MASK,
    }
}

/// Packs a count into a cell if it stays below the spill bounds of [`cell_add`].
#[inline]
pub(crate) fn cell_pack(c: PacketsBytes) -> Option<u64> {
    (c.packets < 1 << 23 && c.bytes < 1 << 39).then_some((c.packets << PKT_SHIFT) | c.bytes)
}

/// Adds packed cells into packed cells; a cell whose sum would reach the spill bounds moves
/// to `spill` as `(id, cell, count)` instead.
#[inline]
pub(crate) fn add_cells_packed(
    into: &mut TickCells,
    from: &TickCells,
    id: u32,
    spill: &mut Vec<(u32, u8, PacketsBytes)>,
) {
    // Both operands are below the spill bounds (2^23 packets, 2^39 bytes per cell), so their
    // packed sums cannot carry from the byte field into the packet field: add all cells at
    // once, and take the slow path only if a sum reached a bound.
    let mut sum = *into;
    let mut over = 0u64;
    for (a, &b) in sum.iter_mut().zip(from) {
        *a += b;
        over |= *a & SPILL_MASK;
    }
    if over == 0 {
        *into = sum;
        return;
    }
    for (i, (a, &b)) in into.iter_mut().zip(from).enumerate() {
        if b == 0 {
            continue;
        }
        let (x, y) = (cell_unpack(*a), cell_unpack(b));
        let sum = PacketsBytes {
            packets: x.packets + y.packets,
            bytes: x.bytes + y.bytes,
        };
        match cell_pack(sum) {
            Some(v) => *a = v,
            None => {
                *a = 0;
                spill.push((id, i as u8, sum));
            }
        }
    }
}

impl IpCounters {
    /// Adds packed per-tick cells.
    pub(crate) fn add_cells(&mut self, cells: &TickCells) {
        for (i, &v) in cells.iter().enumerate() {
            if v != 0 {
                self.add_cell(i, cell_unpack(v));
            }
        }
    }

    /// Adds to cell index `dir * 9 + class`.
    #[inline]
    pub(crate) fn add_cell(&mut self, cell: usize, c: PacketsBytes) {
        let (d, k) = (cell / TrafficClass::COUNT, cell % TrafficClass::COUNT);
        if let Some(x) = self.by_dir.get_mut(d).and_then(|a| a.get_mut(k)) {
            x.add(&c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amp_buckets() {
        let named = [53u16, 123, 11211, 1900, 389, 161, 19];
        for (b, &p) in named.iter().enumerate() {
            assert_eq!(amp_bucket(p), Some(b), "port {p}");
        }
        for p in [17u16, 69, 111, 137, 520, 1434, 3702, 11211 + 1] {
            let want = crate::reflector::reflector_index(p).map(|_| 7);
            assert_eq!(amp_bucket(p), want, "port {p}");
        }
        // Exactly the reflector table's ports, each in its bucket.
        for p in 0..=u16::MAX {
            let want = crate::reflector::reflector_index(p)
                .and_then(|i| REFLECTORS.get(usize::from(i)))
                .map(|r| r.bucket.index());
            assert_eq!(amp_bucket(p), want, "port {p}");
        }
        for p in [0u16, 80, 443, 1024, 54, 65535] {
            assert_eq!(amp_bucket(p), None);
        }
    }

    #[test]
    fn cells_pack_and_spill() {
        let mut c = 0u64;
        assert_eq!(cell_add(&mut c, 1500), None);
        assert_eq!(cell_add(&mut c, u32::MAX), None);
        assert_eq!(
            cell_unpack(c),
            PacketsBytes {
                packets: 2,
                bytes: 1500 + u64::from(u32::MAX)
            }
        );
        // Bytes bound: spills once 2^39 bytes are held, never wraps.
        let mut spilled = PacketsBytes::default();
        let mut total = PacketsBytes::default();
        for _ in 0..200 {
            total.add_packet(u64::from(u32::MAX));
            if let Some(s) = cell_add(&mut c, u32::MAX) {
                spilled.add(&s);
            }
        }
        assert!(spilled.packets > 0);
        spilled.add(&cell_unpack(c));
        total.add(&PacketsBytes {
            packets: 2,
            bytes: 1500 + u64::from(u32::MAX),
        });
        assert_eq!(spilled, total);
        // Packets bound: 2^23 packets spill.
        let mut c = 0u64;
        let mut n = 0u64;
        for _ in 0..(1u64 << 23) - 1 {
            assert_eq!(cell_add(&mut c, 0), None);
            n += 1;
        }
        let s = cell_add(&mut c, 7).unwrap();
        assert_eq!((s.packets, s.bytes, c), (n + 1, 7, 0));
    }
}
