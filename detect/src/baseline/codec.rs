//! Persistence of baselines: a pure, versioned byte format (the sensor does the file I/O).
//!
//! ```text
//! header (40 bytes, little-endian)
//!   magic        4  "SWBL"
//!   version      u16  = 1 or 2
//!   reserved     u16  = 0
//!   fingerprint  u64  version 1: BaselinePolicy::fingerprint of the one sketch shape of
//!                     every entry; version 2: the sketch version (entries of any shapes)
//!   now_tick     u64  the writer's tick when saving
//!   count        u64  number of entries
//!   body_len     u64  bytes of entries
//! entries (count times)
//!   family       u8   4 or 6, then the address: 4 or 16 bytes
//!   age u32, learned u32, since u16, fill u16, cur u8, mask u16,
//!   slots u8, k u8, sub_len u16,
//!   codes        u16 × ns·(1 + slots·k), ns = series of `mask`: cached thresholds, then
//!                the ring as [slot][j < k][series]
//! checksum       u64  FNV-1a 64 of header and entries
//! ```
//! Decoding checks, in order: magic, version, length, checksum, fingerprint, then every
//! entry's structure; in version 2 a well-formed entry of a shape the reader is not configured
//! with (a group whose baseline window changed) is left out and counted, the others load. No
//! count is trusted for an allocation beyond what the remaining bytes can hold.
//!
//! Version 2 exists for groups with their own sketch shape (`[group.detection]
//! baseline_window` and the like): each entry already names its shape, so the file holds
//! every group's baselines. The writer ([`encode_baselines_for`]) still writes version 1
//! whenever every entry has the first policy's shape, so single-shape files do not change.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::ip::{buffer_len, series_for_classes, IpBaseline};
use super::quant::MAX_CODE;
use super::{BaselinePolicy, Shape};

const MAGIC: [u8; 4] = *b"SWBL";
/// The single-shape format version, read and written.
const VERSION: u16 = 1;
/// The per-entry-shape format version, read and written.
const VERSION_SHAPES: u16 = 2;
const HEADER_LEN: usize = 40;
const CHECKSUM_LEN: usize = 8;
/// Smallest encoded entry: IPv4, no series.
const MIN_ENTRY_LEN: usize = 1 + 4 + 4 + 4 + 2 + 2 + 1 + 2 + 1 + 1 + 2;
/// Bumped whenever the quantization or the sketch semantics change.
const SKETCH_VERSION: u8 = 1;

/// Why a baseline file could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BaselineFileError {
    /// The file does not start with the `SWBL` magic: not a baseline file.
    #[error("not a baseline file (bad magic)")]
    BadMagic,
    /// A format version this build cannot read.
    #[error(
        "unsupported baseline file version {found} (this build reads versions 1 to {supported})"
    )]
    UnsupportedVersion {
        /// Version in the file.
        found: u16,
        /// Newest version this build reads.
        supported: u16,
    },
    /// The file is shorter than its header says.
    #[error("truncated baseline file: {needed} bytes needed, {available} present")]
    Truncated {
        /// Bytes the header announces (or the header's own length).
        needed: u64,
        /// Bytes present.
        available: u64,
    },
    /// The checksum does not match the contents.
    #[error("baseline file checksum mismatch (stored {stored:#018x}, computed {computed:#018x})")]
    ChecksumMismatch {
        /// Checksum in the file.
        stored: u64,
        /// Checksum of the contents.
        computed: u64,
    },
    /// The file was written with a different sketch shape (window, sub-windows, percentile).
    #[error(
        "baseline file written with other baseline parameters \
         (fingerprint {found:#018x}, expected {expected:#018x})"
    )]
    IncompatibleParams {
        /// Fingerprint in the file.
        found: u64,
        /// Fingerprint of the current parameters.
        expected: u64,
    },
    /// The checksum matched but the contents are inconsistent.
    #[error("corrupt baseline file at byte {offset}: {reason}")]
    Corrupt {
        /// Byte offset of the problem.
        offset: u64,
        /// What is wrong.
        reason: &'static str,
    },
}

/// A decoded baseline file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BaselineFile {
    /// The writer's tick when it saved the file.
    pub now_tick: u64,
    /// Addresses and their baselines, in file order.
    pub entries: Vec<(IpAddr, IpBaseline)>,
    /// Version 2: well-formed entries of a sketch shape no configured group has (a group's
    /// baseline window changed since the save), left out; the others are kept.
    pub dropped: u64,
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv1a(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

pub(crate) fn shape_fingerprint(shape: Shape) -> u64 {
    let [a, b] = shape.sub_len.to_le_bytes();
    fnv1a(
        FNV_OFFSET,
        &[
            b'S',
            b'W',
            b'B',
            b'L',
            SKETCH_VERSION,
            shape.slots,
            shape.k,
            a,
            b,
        ],
    )
}

/// Encodes baselines built with `policy`'s sketch shape, with the writer's tick (version 1).
///
/// Entries with another shape (never observed, or of a group with other parameters) are
/// skipped: [`encode_baselines_for`] keeps them. Settle the store first
/// ([`BaselineStore::settle_all`](super::BaselineStore::settle_all)) so idle ticks are
/// included.
pub fn encode_baselines<'a>(
    entries: impl IntoIterator<Item = (IpAddr, &'a IpBaseline)>,
    policy: &BaselinePolicy,
    now_tick: u64,
) -> Vec<u8> {
    let shape = policy.shape;
    encode_with(
        entries,
        VERSION,
        policy.fingerprint(),
        |s| s == shape,
        now_tick,
    )
}

/// Encodes the baselines of every group, whatever their sketch shapes (`policies`, one per
/// group, the first the default group's), with the writer's tick.
///
/// When every observed entry has the first policy's shape this is exactly
/// [`encode_baselines`] (version 1); otherwise the file is version 2, in which each entry
/// carries its own shape. Entries never observed are skipped, as there.
pub fn encode_baselines_for<'a>(
    entries: impl IntoIterator<Item = (IpAddr, &'a IpBaseline)> + Clone,
    policies: &[BaselinePolicy],
    now_tick: u64,
) -> Vec<u8> {
    let first = policies.first().copied().unwrap_or_default();
    let single = entries
        .clone()
        .into_iter()
        .filter(|(_, b)| encodable(b, |s| s.is_valid()))
        .all(|(_, b)| b.shape == first.shape);
    if single {
        encode_baselines(entries, &first, now_tick)
    } else {
        encode_with(
            entries,
            VERSION_SHAPES,
            u64::from(SKETCH_VERSION),
            Shape::is_valid,
            now_tick,
        )
    }
}

/// Whether `b` has a sketch of an accepted shape with the buffer that shape needs.
fn encodable(b: &IpBaseline, accept: impl Fn(Shape) -> bool) -> bool {
    let ns = series_for_classes(b.mask.count_ones());
    let buf = b.buf.as_deref().unwrap_or(&[]);
    accept(b.shape) && buf.len() == buffer_len(b.shape, ns)
}

fn encode_with<'a>(
    entries: impl IntoIterator<Item = (IpAddr, &'a IpBaseline)>,
    version: u16,
    fingerprint: u64,
    accept: impl Fn(Shape) -> bool,
    now_tick: u64,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + CHECKSUM_LEN);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&fingerprint.to_le_bytes());
    out.extend_from_slice(&now_tick.to_le_bytes());
    out.extend_from_slice(&[0; 16]); // count and body length, patched below
    let mut count = 0u64;
    for (addr, b) in entries {
        if !encodable(b, &accept) {
            continue;
        }
        let buf = b.buf.as_deref().unwrap_or(&[]);
        match addr {
            IpAddr::V4(a) => {
                out.push(4);
                out.extend_from_slice(&a.octets());
            }
            IpAddr::V6(a) => {
                out.push(6);
                out.extend_from_slice(&a.octets());
            }
        }
        out.extend_from_slice(&b.age.to_le_bytes());
        out.extend_from_slice(&b.learned.to_le_bytes());
        out.extend_from_slice(&b.since.to_le_bytes());
        out.extend_from_slice(&b.fill.to_le_bytes());
        out.push(b.cur);
        out.extend_from_slice(&b.mask.to_le_bytes());
        out.push(b.shape.slots);
        out.push(b.shape.k);
        out.extend_from_slice(&b.shape.sub_len.to_le_bytes());
        for c in buf {
            out.extend_from_slice(&c.to_le_bytes());
        }
        count += 1;
    }
    let body_len = (out.len() - HEADER_LEN) as u64;
    out[24..32].copy_from_slice(&count.to_le_bytes());
    out[32..40].copy_from_slice(&body_len.to_le_bytes());
    let sum = fnv1a(FNV_OFFSET, &out);
    out.extend_from_slice(&sum.to_le_bytes());
    out
}

/// A bounds-checked little-endian reader.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], BaselineFileError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        match end {
            Some(end) => {
                let s = &self.bytes[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            None => Err(self.corrupt("entry runs past the end of the entries")),
        }
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], BaselineFileError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, BaselineFileError> {
        Ok(self.array::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16, BaselineFileError> {
        self.array().map(u16::from_le_bytes)
    }
    fn u32(&mut self) -> Result<u32, BaselineFileError> {
        self.array().map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Result<u64, BaselineFileError> {
        self.array().map(u64::from_le_bytes)
    }
    fn corrupt(&self, reason: &'static str) -> BaselineFileError {
        BaselineFileError::Corrupt {
            offset: self.pos as u64,
            reason,
        }
    }
}

/// Decodes a file written by [`encode_baselines`] for sketches of `policy`'s shape. The
/// cached thresholds are recomputed with `policy` (its multiplier and floors may differ from
/// the writer's).
///
/// Never panics; corrupt, truncated, foreign, other-version and other-shape input gives a
/// [`BaselineFileError`], and allocation is bounded by the input's length.
pub fn decode_baselines(
    bytes: &[u8],
    policy: &BaselinePolicy,
) -> Result<BaselineFile, BaselineFileError> {
    decode_baselines_for(bytes, std::slice::from_ref(policy))
}

/// Decodes a file written by [`encode_baselines_for`] (or [`encode_baselines`]) for the
/// groups' `policies` (the first the default group's). Each entry's cached thresholds are
/// recomputed with the first policy of its shape; the detector recomputes them with its
/// group's policy when the address is seen.
///
/// A version 1 file must have the shape of one of `policies`; in a version 2 file every
/// entry must (otherwise [`BaselineFileError::IncompatibleParams`], as for version 1: a
/// changed window starts the file afresh rather than mixing sketches).
pub fn decode_baselines_for(
    bytes: &[u8],
    policies: &[BaselinePolicy],
) -> Result<BaselineFile, BaselineFileError> {
    let first = policies.first().copied().unwrap_or_default();
    let of_shape = |shape: Shape| policies.iter().find(|p| p.shape == shape).copied();
    let available = bytes.len() as u64;
    let magic_len = bytes.len().min(MAGIC.len());
    if bytes[..magic_len] != MAGIC[..magic_len] {
        return Err(BaselineFileError::BadMagic);
    }
    if bytes.len() < 6 {
        return Err(BaselineFileError::Truncated {
            needed: HEADER_LEN as u64,
            available,
        });
    }
    let version = u16::from_le_bytes([bytes[4], bytes[5]]);
    if version != VERSION && version != VERSION_SHAPES {
        return Err(BaselineFileError::UnsupportedVersion {
            found: version,
            supported: VERSION_SHAPES,
        });
    }
    if bytes.len() < HEADER_LEN + CHECKSUM_LEN {
        return Err(BaselineFileError::Truncated {
            needed: (HEADER_LEN + CHECKSUM_LEN) as u64,
            available,
        });
    }
    let mut header = Reader {
        bytes: &bytes[..HEADER_LEN],
        pos: 6,
    };
    let reserved = header.u16()?;
    let fingerprint = header.u64()?;
    let now_tick = header.u64()?;
    let count = header.u64()?;
    let body_len = header.u64()?;
    let needed = body_len.saturating_add((HEADER_LEN + CHECKSUM_LEN) as u64);
    if available < needed {
        return Err(BaselineFileError::Truncated { needed, available });
    }
    let body_end = HEADER_LEN + body_len as usize; // <= len, so it fits
    if available > needed {
        return Err(BaselineFileError::Corrupt {
            offset: needed,
            reason: "trailing bytes after the checksum",
        });
    }
    let mut stored = [0u8; 8];
    stored.copy_from_slice(&bytes[body_end..]);
    let stored = u64::from_le_bytes(stored);
    let computed = fnv1a(FNV_OFFSET, &bytes[..body_end]);
    if stored != computed {
        return Err(BaselineFileError::ChecksumMismatch { stored, computed });
    }
    if reserved != 0 {
        return Err(BaselineFileError::Corrupt {
            offset: 6,
            reason: "reserved header field is not zero",
        });
    }
    // Version 1: the one policy of the file's shape; version 2: each entry's.
    let file_policy = if version == VERSION {
        let found = policies.iter().find(|p| p.fingerprint() == fingerprint);
        let Some(&p) = found else {
            return Err(BaselineFileError::IncompatibleParams {
                found: fingerprint,
                expected: first.fingerprint(),
            });
        };
        Some(p)
    } else {
        let expected = u64::from(SKETCH_VERSION);
        if fingerprint != expected {
            return Err(BaselineFileError::IncompatibleParams {
                found: fingerprint,
                expected,
            });
        }
        None
    };
    if count > body_len / MIN_ENTRY_LEN as u64 {
        return Err(BaselineFileError::Corrupt {
            offset: 24,
            reason: "entry count larger than the entries can hold",
        });
    }
    let mut r = Reader {
        bytes: &bytes[..body_end],
        pos: HEADER_LEN,
    };
    let mut entries = Vec::with_capacity(count as usize);
    let mut dropped = 0;
    for _ in 0..count {
        let entry = decode_entry(&mut r, |shape| match file_policy {
            Some(p) if shape == p.shape => Ok(Shaped::Known(p)),
            Some(_) => Err(()),
            None => Ok(of_shape(shape).map_or(Shaped::Unknown, Shaped::Known)),
        })?;
        match entry {
            Some(e) => entries.push(e),
            None => dropped += 1,
        }
    }
    if r.pos != body_end {
        return Err(r.corrupt("bytes left after the last entry"));
    }
    Ok(BaselineFile {
        now_tick,
        entries,
        dropped,
    })
}

/// What an entry's shape is to the reader.
enum Shaped {
    /// The policy of that shape.
    Known(BaselinePolicy),
    /// A valid shape no configured group has (version 2): the entry is checked and left out.
    Unknown,
}

/// One entry; `policy_of` says what its shape is (an error: not the file's shape, in version
/// 1). `None`: a well-formed entry of a shape the reader does not have.
fn decode_entry(
    r: &mut Reader<'_>,
    policy_of: impl FnOnce(Shape) -> Result<Shaped, ()>,
) -> Result<Option<(IpAddr, IpBaseline)>, BaselineFileError> {
    let addr = match r.u8()? {
        4 => IpAddr::V4(Ipv4Addr::from(r.array::<4>()?)),
        6 => IpAddr::V6(Ipv6Addr::from(r.array::<16>()?)),
        _ => return Err(r.corrupt("address family is neither 4 nor 6")),
    };
    let age = r.u32()?;
    let learned = r.u32()?;
    let since = r.u16()?;
    let fill = r.u16()?;
    let cur = r.u8()?;
    let mask = r.u16()?;
    let shape = Shape {
        slots: r.u8()?,
        k: r.u8()?,
        sub_len: r.u16()?,
    };
    if !shape.is_valid() {
        return Err(r.corrupt("invalid entry sketch shape"));
    }
    let policy = match policy_of(shape) {
        Ok(Shaped::Known(p)) => Some(p),
        Ok(Shaped::Unknown) => None,
        Err(()) => return Err(r.corrupt("entry sketch shape differs from the file's")),
    };
    if mask >> surgewatch_pipeline::TrafficClass::COUNT != 0 {
        return Err(r.corrupt("unknown traffic class in mask"));
    }
    if cur >= shape.slots || fill >= shape.sub_len {
        return Err(r.corrupt("sub-window position out of range"));
    }
    let ns = series_for_classes(mask.count_ones());
    let len = buffer_len(shape, ns);
    let raw = r.take(len * 2)?;
    let codes: Vec<u16> = raw
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    if codes.iter().any(|&c| c > MAX_CODE) {
        return Err(r.corrupt("rate code out of range"));
    }
    let k = usize::from(shape.k);
    if ns > 0 {
        // Each slot is k rows of ns codes; every column must be non-increasing.
        let descending = codes[ns..].chunks_exact(ns * k).all(|slot| {
            slot.chunks_exact(ns)
                .zip(slot.chunks_exact(ns).skip(1))
                .all(|(a, b)| a.iter().zip(b).all(|(x, y)| x >= y))
        });
        if !descending {
            return Err(r.corrupt("sub-window top values not in descending order"));
        }
    }
    let mut base = IpBaseline {
        buf: (ns > 0).then(|| codes.into_boxed_slice()),
        age,
        learned,
        since,
        fill,
        mask,
        shape,
        cur,
        ns: ns as u8,
    };
    let Some(policy) = policy else {
        return Ok(None);
    };
    // Thresholds follow the decoding policy's multiplier and floors right away.
    base.recompute(&policy);
    Ok(Some((addr, base)))
}

#[cfg(test)]
mod tests {
    use super::super::{BaselineParams, TickSample};
    use super::*;
    use surgewatch_pipeline::TrafficClass;

    fn sample_set(policy: &BaselinePolicy) -> Vec<(IpAddr, IpBaseline)> {
        let mut out = Vec::new();
        for i in 0..12u32 {
            let mut b = IpBaseline::with_phase(policy, i);
            for t in 0..(50 + 37 * i) {
                let mut s = TickSample::new(1_000_000_000);
                let c = TrafficClass::ALL[(i as usize + t as usize % 3) % 9];
                s.add(c, u64::from(t * 13 % 97 + i), u64::from(t * 1500 + i));
                if i % 4 == 3 {
                    s.add(TrafficClass::Syn, 5, 300);
                }
                b.observe(policy, &s, t % 17 != 0);
                if t % 29 == 0 {
                    b.observe_idle(policy, u64::from(t));
                }
            }
            let addr = if i % 2 == 0 {
                IpAddr::V4(Ipv4Addr::new(192, 0, 2, i as u8))
            } else {
                IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, i as u16))
            };
            out.push((addr, b));
        }
        // A monitored IP that has only been idle: no series.
        let mut idle = IpBaseline::new();
        idle.observe_idle(policy, 5);
        out.push((IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1)), idle));
        out
    }

    fn recomputed(set: &[(IpAddr, IpBaseline)], p: &BaselinePolicy) -> Vec<(IpAddr, IpBaseline)> {
        let mut v = set.to_vec();
        for (_, b) in &mut v {
            b.recompute(p);
        }
        v
    }

    fn encoded() -> (BaselinePolicy, Vec<(IpAddr, IpBaseline)>, Vec<u8>) {
        let policy = BaselinePolicy::default();
        let set = sample_set(&policy);
        let bytes = encode_baselines(set.iter().map(|(a, b)| (*a, b)), &policy, 123_456);
        (policy, set, bytes)
    }

    #[test]
    fn round_trip() {
        let (policy, set, bytes) = encoded();
        let file = decode_baselines(&bytes, &policy).unwrap();
        assert_eq!(file.now_tick, 123_456);
        assert_eq!(file.entries, recomputed(&set, &policy));
        // The restored baselines keep working identically.
        let (mut a, mut b) = (set[5].1.clone(), file.entries[5].1.clone());
        let mut s = TickSample::new(1_000_000_000);
        s.add(TrafficClass::Icmp, 40, 4000);
        for _ in 0..100 {
            a.observe(&policy, &s, true);
            b.observe(&policy, &s, true);
        }
        assert_eq!(a, b);
        assert_eq!(a.thresholds(&policy), b.thresholds(&policy));
    }

    #[test]
    fn empty_file_and_skipped_shapes() {
        let policy = BaselinePolicy::default();
        let bytes = encode_baselines(std::iter::empty(), &policy, 0);
        assert_eq!(bytes.len(), HEADER_LEN + CHECKSUM_LEN);
        assert!(decode_baselines(&bytes, &policy)
            .unwrap()
            .entries
            .is_empty());
        // A baseline of another shape is not written.
        let other = BaselineParams {
            window_samples: 120,
            ..Default::default()
        }
        .policy();
        let mut b = IpBaseline::new();
        b.observe(&other, &TickSample::new(1), true);
        let addr = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let bytes = encode_baselines([(addr, &b)], &policy, 0);
        assert!(decode_baselines(&bytes, &policy)
            .unwrap()
            .entries
            .is_empty());
    }

    #[test]
    fn several_shapes_round_trip_in_version_2_and_one_shape_stays_version_1() {
        let (policy, set, v1) = encoded();
        let other = BaselineParams {
            window_samples: 600,
            ..Default::default()
        }
        .policy();
        assert_ne!(policy.fingerprint(), other.fingerprint());
        let policies = [policy, other];
        // One shape: exactly the version 1 file, which the multi-policy reader reads too.
        let only = encode_baselines_for(set.iter().map(|(a, b)| (*a, b)), &policies, 123_456);
        assert_eq!(only, v1);
        assert_eq!(
            decode_baselines_for(&v1, &policies).unwrap().entries,
            recomputed(&set, &policy)
        );
        // A version 1 file of the second policy's shape is read with it.
        let set2 = sample_set(&other);
        let v1_other = encode_baselines(set2.iter().map(|(a, b)| (*a, b)), &other, 7);
        assert_eq!(
            decode_baselines_for(&v1_other, &policies).unwrap().entries,
            recomputed(&set2, &other)
        );
        // Both shapes: version 2, every entry kept, each recomputed with its shape's policy.
        let renamed: Vec<(IpAddr, IpBaseline)> = set2
            .iter()
            .map(|(a, b)| match a {
                IpAddr::V4(v4) => (
                    IpAddr::V4(Ipv4Addr::from(u32::from(*v4) ^ 0x00ff_0000)),
                    b.clone(),
                ),
                IpAddr::V6(v6) => (
                    IpAddr::V6(Ipv6Addr::from(u128::from(*v6) ^ 1 << 64)),
                    b.clone(),
                ),
            })
            .collect();
        let mut both: Vec<(IpAddr, IpBaseline)> = set.iter().cloned().chain(renamed).collect();
        let bytes = encode_baselines_for(both.iter().map(|(a, b)| (*a, b)), &policies, 99);
        assert_eq!(u16::from_le_bytes([bytes[4], bytes[5]]), VERSION_SHAPES);
        let file = decode_baselines_for(&bytes, &policies).unwrap();
        assert_eq!(file.now_tick, 99);
        for (_, b) in &mut both {
            let p = if b.shape == other.shape {
                other
            } else {
                policy
            };
            b.recompute(&p);
        }
        assert_eq!(file.entries, both);
        // A reader without the second shape keeps the first shape's entries and counts the
        // others as dropped.
        let partial = decode_baselines_for(&bytes, &[policy]).unwrap();
        let first_shape = both.iter().filter(|(_, b)| b.shape == policy.shape).count();
        assert_eq!(partial.entries.len(), first_shape);
        assert_eq!(partial.dropped as usize, both.len() - first_shape);
        assert!(partial.dropped > 0);
        // Truncations of a version 2 file never panic.
        for n in 0..bytes.len() {
            assert!(decode_baselines_for(&bytes[..n], &policies).is_err());
        }
    }

    #[test]
    fn typed_errors() {
        let (policy, set, bytes) = encoded();
        assert_eq!(
            decode_baselines(b"PK\x03\x04 not ours", &policy),
            Err(BaselineFileError::BadMagic)
        );
        assert!(matches!(
            decode_baselines(b"", &policy),
            Err(BaselineFileError::Truncated { .. })
        ));
        let mut v2 = bytes.clone();
        v2[4] = 3;
        assert_eq!(
            decode_baselines(&v2, &policy),
            Err(BaselineFileError::UnsupportedVersion {
                found: 3,
                supported: 2
            })
        );
        let other = BaselineParams {
            subwindows: 6,
            ..Default::default()
        }
        .policy();
        assert!(matches!(
            decode_baselines(&bytes, &other),
            Err(BaselineFileError::IncompatibleParams { .. })
        ));
        // A different percentile changes k, hence the shape.
        let p95 = BaselineParams {
            percentile: 98.0,
            ..Default::default()
        }
        .policy();
        assert_ne!(p95.fingerprint(), policy.fingerprint());
        // Multiplier, floors and warm-up do not shape the sketch.
        let loud = BaselineParams {
            multiplier: 9.0,
            floor_pps: 1,
            warmup_ticks: 0,
            ..Default::default()
        }
        .policy();
        let restored = decode_baselines(&bytes, &loud).unwrap();
        assert_eq!(restored.entries, recomputed(&set, &loud));
        assert_ne!(restored.entries, recomputed(&set, &policy));
        let mut long = bytes.clone();
        long.push(0);
        assert!(matches!(
            decode_baselines(&long, &policy),
            Err(BaselineFileError::Corrupt { .. })
        ));
        let mut flipped = bytes.clone();
        flipped[HEADER_LEN + 3] ^= 0x10;
        assert!(matches!(
            decode_baselines(&flipped, &policy),
            Err(BaselineFileError::ChecksumMismatch { .. })
        ));
    }

    /// Rewrites the checksum so structural checks behind it are reached.
    fn reseal(bytes: &mut [u8]) {
        let end = bytes.len() - CHECKSUM_LEN;
        let sum = fnv1a(FNV_OFFSET, &bytes[..end]);
        bytes[end..].copy_from_slice(&sum.to_le_bytes());
    }

    #[test]
    fn lying_count_does_not_allocate() {
        let (policy, _, mut bytes) = encoded();
        bytes[24..32].copy_from_slice(&u64::MAX.to_le_bytes());
        reseal(&mut bytes);
        assert!(matches!(
            decode_baselines(&bytes, &policy),
            Err(BaselineFileError::Corrupt { offset: 24, .. })
        ));
        // A lying body length reads as truncation, not as an allocation.
        let (_, _, mut bytes) = encoded();
        bytes[32..40].copy_from_slice(&(u64::MAX - 3).to_le_bytes());
        assert!(matches!(
            decode_baselines(&bytes, &policy),
            Err(BaselineFileError::Truncated { .. })
        ));
        // A count one too high runs out of entries.
        let (_, set, mut bytes) = encoded();
        bytes[24..32].copy_from_slice(&(set.len() as u64 + 1).to_le_bytes());
        reseal(&mut bytes);
        assert!(matches!(
            decode_baselines(&bytes, &policy),
            Err(BaselineFileError::Corrupt { .. })
        ));
    }

    #[test]
    fn truncation_at_every_length_never_panics() {
        let (policy, _, bytes) = encoded();
        for n in 0..bytes.len() {
            let r = decode_baselines(&bytes[..n], &policy);
            assert!(r.is_err(), "prefix of {n} bytes accepted");
        }
    }

    #[test]
    fn byte_flips_never_panic() {
        let (policy, set, bytes) = encoded();
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut accepted = 0;
        for i in 0..bytes.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut b = bytes.clone();
                b[i] ^= flip;
                // Plain flips hit the checksum; resealed flips reach the structure checks.
                let _ = decode_baselines(&b, &policy);
                if i < b.len() - CHECKSUM_LEN {
                    reseal(&mut b);
                    if let Ok(f) = decode_baselines(&b, &policy) {
                        accepted += 1;
                        // Whatever was accepted must be usable without panicking.
                        for (_, mut base) in f.entries {
                            state ^= state << 13;
                            state ^= state >> 7;
                            state ^= state << 17;
                            let mut s = TickSample::new(1_000_000_000);
                            s.add(
                                TrafficClass::ALL[(state % 9) as usize],
                                state % 1000,
                                state % 9999,
                            );
                            base.observe(&policy, &s, true);
                            base.observe_idle(&policy, state % 500);
                            base.recompute(&policy);
                            let _ = base.thresholds(&policy);
                            let _ = base.check(&policy, &s);
                        }
                    }
                }
            }
        }
        // Flips of counters and codes are structurally valid; most others are rejected.
        assert!(accepted > 0 && accepted < bytes.len() * 3, "{accepted}");
        assert_eq!(
            decode_baselines(&bytes, &policy).unwrap().entries,
            recomputed(&set, &policy)
        );
    }
}
