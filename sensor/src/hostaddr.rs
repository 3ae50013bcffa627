//! The host's own addresses (for the host-agent mode), from `getifaddrs(3)` (through
//! [`crate::sys::netdev::interface_addresses`]).

use std::collections::BTreeSet;
use std::net::IpAddr;

/// Addresses configured on the host's interfaces (in the caller's network namespace),
/// excluding loopback and IPv6 link-local ones; with `only`, just those interfaces'.
/// Sorted, without duplicates.
pub fn host_addresses(only: &[String]) -> std::io::Result<Vec<IpAddr>> {
    let mut out = BTreeSet::new();
    for (name, ip) in crate::sys::netdev::interface_addresses()? {
        if !only.is_empty() && !only.contains(&name) {
            continue;
        }
        let link_local_v6 = matches!(ip, IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80);
        if ip.is_loopback() || ip.is_unspecified() || link_local_v6 {
            continue;
        }
        out.insert(ip);
    }
    Ok(out.into_iter().collect())
}

/// Non-loopback interfaces that are up (for the agent's default capture set), sorted.
pub fn up_interfaces() -> std::io::Result<Vec<String>> {
    let mut v = Vec::new();
    for entry in std::fs::read_dir("/sys/class/net")? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == "lo" {
            continue;
        }
        let flags = std::fs::read_to_string(entry.path().join("flags")).unwrap_or_default();
        let flags = u32::from_str_radix(flags.trim().trim_start_matches("0x"), 16).unwrap_or(0);
        if flags & (libc::IFF_UP as u32) != 0 {
            v.push(name);
        }
    }
    v.sort();
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_addresses_are_sorted_unique_and_not_loopback() {
        let all = host_addresses(&[]).expect("getifaddrs");
        assert!(all.windows(2).all(|w| w[0] < w[1]));
        assert!(all.iter().all(|ip| !ip.is_loopback()));
        let none = host_addresses(&["no-such-interface-xyz".to_owned()]).expect("getifaddrs");
        assert!(none.is_empty());
    }
}
