//! Small identifiers: the per-IP key, the monitored group and the traffic direction.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Index of a monitored group in the configuration's list of groups.
///
/// `u16::MAX` is reserved ([`GroupId::MAX`] is the largest usable id) so that the IPv4 prefix
/// table can pack "no group" into its first-level array.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupId(pub u16);

impl GroupId {
    /// The largest usable group id.
    pub const MAX: GroupId = GroupId(u16::MAX - 1);

    /// Dense index for per-group arrays.
    #[inline]
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

/// Which side of a packet a monitored address is on.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Direction {
    /// The monitored address is the destination.
    In = 0,
    /// The monitored address is the source.
    Out = 1,
}

impl Direction {
    /// Both directions in index order.
    pub const ALL: [Direction; 2] = [Direction::In, Direction::Out];

    /// Dense index for counter arrays.
    #[inline]
    pub fn index(self) -> usize {
        self as usize
    }
}

/// A compact, cheaply hashed key for one IPv4 or IPv6 address (24 bytes, 8-byte aligned).
///
/// IPv4 and IPv6 never collide: `1.2.3.4` and the IPv4-mapped `::ffff:1.2.3.4` are different
/// keys. The order is all IPv4 addresses ascending, then all IPv6 addresses ascending; it is the
/// order used for deterministic admission and tie-breaking.
#[derive(Copy, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct IpKey {
    // Field order matters for the derived `Ord`: family first, then the address.
    pub(crate) v6: bool,
    pub(crate) hi: u64,
    pub(crate) lo: u64,
}

impl IpKey {
    /// Key of an IPv4 address given as a host-order `u32`.
    #[inline]
    pub const fn v4(addr: u32) -> Self {
        IpKey {
            v6: false,
            hi: 0,
            lo: addr as u64,
        }
    }

    /// Key of an IPv6 address given as a host-order `u128`.
    #[inline]
    pub const fn v6(addr: u128) -> Self {
        IpKey {
            v6: true,
            hi: (addr >> 64) as u64,
            lo: addr as u64,
        }
    }

    /// The family (IPv6?) and the address as a `u128` (an IPv4 address in the low bits).
    #[inline]
    pub(crate) fn parts(self) -> (bool, u128) {
        (self.v6, (u128::from(self.hi) << 64) | u128::from(self.lo))
    }

    /// Whether this is an IPv6 key.
    #[inline]
    pub fn is_v6(self) -> bool {
        self.v6
    }

    /// The address back.
    pub fn ip(self) -> IpAddr {
        if self.v6 {
            IpAddr::V6(Ipv6Addr::from(
                (u128::from(self.hi) << 64) | u128::from(self.lo),
            ))
        } else {
            // `lo` of an IPv4 key always fits in 32 bits.
            IpAddr::V4(Ipv4Addr::from(self.lo as u32))
        }
    }
}

impl From<IpAddr> for IpKey {
    #[inline]
    fn from(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(a) => IpKey::v4(u32::from(a)),
            IpAddr::V6(a) => IpKey::v6(u128::from(a)),
        }
    }
}

impl Hash for IpKey {
    // One `write_u64` for IPv4 (the common case), two for IPv6. Keys of different families may
    // hash alike; `Eq` tells them apart.
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        if self.v6 {
            state.write_u64(self.hi);
        }
        state.write_u64(self.lo);
    }
}

impl fmt::Debug for IpKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.ip(), f)
    }
}

impl fmt::Display for IpKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.ip(), f)
    }
}

/// Dense id of a tracked address, assigned at admission in a deterministic order (ticks in
/// order, ascending [`IpKey`] within a tick). Stable for the life of the [`Accounting`](crate::Accounting); the
/// index into per-IP side tables (baselines, detection state).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IpId(pub u32);

impl IpId {
    /// Dense index.
    #[inline]
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_family_separation() {
        let v4: IpAddr = "1.2.3.4".parse().unwrap();
        let mapped: IpAddr = "::ffff:1.2.3.4".parse().unwrap();
        assert_eq!(IpKey::from(v4).ip(), v4);
        assert_eq!(IpKey::from(mapped).ip(), mapped);
        assert_ne!(IpKey::from(v4), IpKey::from(mapped));
        assert!(!IpKey::from(v4).is_v6());
        assert!(IpKey::from(mapped).is_v6());
    }

    #[test]
    fn order_is_v4_then_v6_numeric() {
        let mut keys: Vec<IpKey> = [
            "::1",
            "255.255.255.255",
            "0.0.0.0",
            "::",
            "10.0.0.1",
            "ffff::",
        ]
        .iter()
        .map(|s| IpKey::from(s.parse::<IpAddr>().unwrap()))
        .collect();
        keys.sort();
        let shown: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        assert_eq!(
            shown,
            [
                "0.0.0.0",
                "10.0.0.1",
                "255.255.255.255",
                "::",
                "::1",
                "ffff::"
            ]
        );
    }

    #[test]
    fn key_is_compact() {
        assert_eq!(std::mem::size_of::<IpKey>(), 24);
    }
}
