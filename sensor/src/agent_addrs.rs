//! The host agent follows the host's addresses: re-read every few seconds, and when they
//! change, a new monitor for the next tick.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use surgewatch_export::diag::{self, Diag};
use surgewatch_per_ip::Monitor;
use surgewatch_tuning::Config;

use crate::settings::monitor_setup;

/// How often the agent re-reads the host's addresses.
const ADDRESS_REFRESH: Duration = Duration::from_secs(5);

/// The host agent's view of the host's addresses.
pub struct AgentAddrs {
    cfg: Config,
    interfaces: Vec<String>,
    extra: Vec<IpNet>,
    current: Vec<IpAddr>,
    last_check: Instant,
}

impl AgentAddrs {
    /// Follows the addresses of `interfaces`, `current` now; `extra` (`--monitor`) is
    /// monitored with them, as the run's monitor was built (see [`monitor_setup`]).
    pub fn new(
        cfg: Config,
        interfaces: Vec<String>,
        extra: Vec<IpNet>,
        current: Vec<IpAddr>,
    ) -> Self {
        AgentAddrs {
            cfg,
            interfaces,
            extra,
            current,
            last_check: Instant::now(),
        }
    }

    /// A new monitor when the host's addresses changed since the last look (at most every
    /// few seconds).
    pub fn refresh(&mut self) -> Option<Arc<Monitor>> {
        if self.last_check.elapsed() < ADDRESS_REFRESH {
            return None;
        }
        self.last_check = Instant::now();
        match surgewatch_sensor::hostaddr::host_addresses(&self.interfaces) {
            Ok(now) => self.changed(now),
            Err(e) => {
                diag::emit(Diag::HostAddressesUnreadable {
                    error: e.to_string(),
                });
                None
            }
        }
    }

    /// A new monitor when `now` differs from the addresses followed so far (and is not
    /// empty: an interface that lost its addresses for a moment keeps the old ones).
    fn changed(&mut self, now: Vec<IpAddr>) -> Option<Arc<Monitor>> {
        if now == self.current || now.is_empty() {
            return None;
        }
        let mut monitor: Vec<IpNet> = now.iter().map(|&a| IpNet::from(a)).collect();
        monitor.extend(self.extra.iter().copied());
        match monitor_setup(&self.cfg, &monitor) {
            Ok(setup) => {
                diag::emit(Diag::HostAddressesChanged {
                    addresses: now.clone(),
                });
                self.current = now;
                Some(setup.monitor)
            }
            Err(e) => {
                diag::emit(Diag::HostAddressesUnmonitorable {
                    error: e.to_string(),
                });
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_of_addresses_is_a_new_monitor_of_them_and_the_extra_prefixes() {
        let a: IpAddr = [192, 0, 2, 10].into();
        let b: IpAddr = [192, 0, 2, 11].into();
        let extra: IpNet = "198.51.100.0/24".parse().unwrap();
        let mut f = AgentAddrs::new(Config::default(), vec!["eth0".into()], vec![extra], vec![a]);
        assert!(f.changed(vec![a]).is_none(), "unchanged");
        assert!(f.changed(Vec::new()).is_none(), "none for a moment");
        let m = f.changed(vec![b]).expect("a new monitor");
        assert!(m.table().lookup(b).is_some());
        assert!(m.table().lookup(a).is_none());
        assert!(m.table().lookup([198, 51, 100, 7].into()).is_some());
        assert!(f.changed(vec![b]).is_none(), "now followed");
    }
}
