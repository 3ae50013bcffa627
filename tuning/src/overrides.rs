//! Command-line overrides of a config (`--tick`, `--top`, `--threshold-pps`, `--monitor`,
//! `--workers`, capture options...): checked here, once, with the same limits as the config
//! keys they replace, and reported like config errors (every one at once).

use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;

use crate::error::{ConfigError, ConfigErrorKind, ConfigErrors};
use crate::schema::{CaptureMethod, Config};
use crate::units::{format_duration, parse_duration};
use crate::validate::{MAX_BUSY_POLL, MAX_GROUPS, MAX_TICK, MIN_BUSY_POLL, MIN_TICK};

/// What the command line says on top of the config, as the operator typed it. Every field
/// is optional (`None`, empty, `false`: the config's value stands).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides {
    /// `--tick`: replaces `sensor.tick` (a duration, `100ms..=1m`).
    pub tick: Option<String>,
    /// `--top`: replaces `sensor.top_n`.
    pub top: Option<usize>,
    /// `--threshold-pps`: static threshold and floor in packets per second for every group
    /// and class (> 0).
    pub threshold_pps: Option<f64>,
    /// `--threshold-mbps`: static threshold and floor in Mbit/s for every group and class
    /// (> 0).
    pub threshold_mbps: Option<f64>,
    /// `--monitor` (repeatable): a CIDR prefix without host bits, or a bare address (a host
    /// prefix).
    pub monitor: Vec<String>,
    /// `--baselines`: replaces `baseline.path` (any path: relative to the working directory
    /// of the command).
    pub baselines: Option<PathBuf>,
    /// `--workers`: replaces `sensor.workers` (at least 1).
    pub workers: Option<usize>,
    /// The options of live capture.
    pub capture: CaptureOverrides,
    /// The options of live runs.
    pub live: LiveOverrides,
}

/// `run`'s capture options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaptureOverrides {
    /// `--capture`: replaces `capture.method`.
    pub method: Option<CaptureMethod>,
    /// `--queues`: replaces `capture.queues` when not empty.
    pub queues: Vec<u32>,
    /// `--cores`: replaces `capture.cores` when not empty.
    pub cores: Vec<usize>,
    /// `--no-promisc`: turns `capture.promiscuous` off.
    pub no_promisc: bool,
    /// `--busy-poll`: replaces `capture.busy_poll` (a duration, `1us..=10ms`).
    pub busy_poll: Option<String>,
}

/// The timing options of live runs (`run`, `agent`); they have no config key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveOverrides {
    /// `--duration`: stop after this long.
    pub duration: Option<String>,
    /// `--status-interval`: a status line this often (`0s`: never).
    pub status_interval: Option<String>,
}

/// `--threshold-pps` / `--threshold-mbps`: quick-run thresholds, each positive and finite.
/// With only one given, the other rate never triggers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QuickThresholds {
    /// Packets per second.
    pub pps: Option<f64>,
    /// Megabits per second.
    pub mbps: Option<f64>,
}

/// A config with the command line applied: everything a run is set up from.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Effective {
    /// The config, with the overrides that replace a key applied (`sensor.tick`,
    /// `sensor.top_n`, `sensor.workers`, `baseline.path`, `capture.*`).
    pub config: Config,
    /// `--monitor`'s prefixes, in the order given (monitored in a group of their own with
    /// the `[detection]` defaults).
    pub monitor: Vec<IpNet>,
    /// The quick-run thresholds, when either was given.
    pub thresholds: Option<QuickThresholds>,
    /// `--duration`.
    pub duration: Option<Duration>,
    /// `--status-interval`.
    pub status_interval: Option<Duration>,
}

impl Overrides {
    /// Applies the overrides to `config`, or returns every one that is refused. Errors carry
    /// the option as their key (`--tick`) and display as `--tick "10ms": must lie between
    /// 100ms and 1m`.
    pub fn apply(&self, mut config: Config) -> Result<Effective, ConfigErrors> {
        let mut r = Refusals(Vec::new());
        if let Some(t) = &self.tick {
            if let Some(d) = r.duration("--tick", t) {
                if (MIN_TICK..=MAX_TICK).contains(&d) {
                    config.sensor.tick = d;
                } else {
                    r.refuse(
                        "--tick",
                        Some(format!("{t:?}")),
                        format!(
                            "must lie between {} and {}",
                            format_duration(MIN_TICK),
                            format_duration(MAX_TICK)
                        ),
                    );
                }
            }
        }
        if let Some(n) = self.top {
            config.sensor.top_n = u32::try_from(n).unwrap_or(u32::MAX);
        }
        match self.workers {
            Some(0) => r.refuse("--workers", None, "must be at least 1".into()),
            Some(n) => match u32::try_from(n) {
                Ok(n) => config.sensor.workers = n,
                Err(_) => r.refuse("--workers", Some(n.to_string()), "too many".into()),
            },
            None => {}
        }
        let mut monitor = Vec::new();
        for s in &self.monitor {
            match parse_monitor(s) {
                Ok(net) => monitor.push(net),
                Err((value, reason)) => r.refuse("--monitor", Some(value), reason),
            }
        }
        // `--monitor`'s prefixes are a group of their own, which must fit the limit too.
        if !self.monitor.is_empty() && config.groups.len() >= MAX_GROUPS {
            r.refuse(
                "--monitor",
                None,
                format!(
                    "needs a group of its own, but the config already has {} (at most {MAX_GROUPS} groups)",
                    config.groups.len()
                ),
            );
        }
        for (option, value) in [
            ("--threshold-pps", self.threshold_pps),
            ("--threshold-mbps", self.threshold_mbps),
        ] {
            if let Some(v) = value {
                if !(v.is_finite() && v > 0.0) {
                    r.refuse(
                        option,
                        Some(v.to_string()),
                        "must be a positive number".into(),
                    );
                }
            }
        }
        let quick = QuickThresholds {
            pps: self.threshold_pps,
            mbps: self.threshold_mbps,
        };
        let thresholds = (quick.pps.is_some() || quick.mbps.is_some()).then_some(quick);
        if let Some(path) = &self.baselines {
            config.baseline.path = Some(path.clone());
        }

        let c = &self.capture;
        if let Some(m) = c.method {
            config.capture.method = m;
        }
        if !c.queues.is_empty() {
            config.capture.queues.clone_from(&c.queues);
        }
        if !c.cores.is_empty() {
            config.capture.cores.clone_from(&c.cores);
        }
        if c.no_promisc {
            config.capture.promiscuous = false;
        }
        if let Some(s) = &c.busy_poll {
            if let Some(d) = r.duration("--busy-poll", s) {
                if (MIN_BUSY_POLL..=MAX_BUSY_POLL).contains(&d) {
                    config.capture.busy_poll = Some(d);
                } else {
                    r.refuse(
                        "--busy-poll",
                        Some(format!("{s:?}")),
                        format!(
                            "must be from {} to {}",
                            format_duration(MIN_BUSY_POLL),
                            format_duration(MAX_BUSY_POLL)
                        ),
                    );
                }
            }
        }

        let status_interval = self
            .live
            .status_interval
            .as_deref()
            .and_then(|s| r.duration("--status-interval", s));
        let run_for = self
            .live
            .duration
            .as_deref()
            .and_then(|s| r.duration("--duration", s));

        if !r.0.is_empty() {
            return Err(ConfigErrors(r.0));
        }
        Ok(Effective {
            config,
            monitor,
            thresholds,
            duration: run_for,
            status_interval,
        })
    }
}

/// The refusals of one [`Overrides::apply`].
struct Refusals(Vec<ConfigError>);

impl Refusals {
    fn refuse(&mut self, option: &str, value: Option<String>, reason: String) {
        self.0.push(ConfigError {
            origin: String::new(),
            location: None,
            key: option.to_owned(),
            kind: ConfigErrorKind::BadOption { value, reason },
        });
    }

    /// `text` as a duration, or a refusal of `option`.
    fn duration(&mut self, option: &str, text: &str) -> Option<Duration> {
        match parse_duration(text) {
            Ok(d) => Some(d),
            Err(e) => {
                self.refuse(option, Some(format!("{text:?}")), e);
                None
            }
        }
    }
}

/// `--monitor`: a CIDR prefix without host bits, or a bare address as a host prefix; the
/// error as (value as shown, reason).
fn parse_monitor(s: &str) -> Result<IpNet, (String, String)> {
    let s = s.trim();
    if let Ok(net) = s.parse::<IpNet>() {
        if net.trunc() != net {
            return Err((
                s.to_owned(),
                format!("host bits set (did you mean {}?)", net.trunc()),
            ));
        }
        return Ok(net);
    }
    if let Ok(ip) = s.parse::<std::net::IpAddr>() {
        return Ok(IpNet::from(ip));
    }
    Err((
        format!("{s:?}"),
        "not a CIDR prefix or an IP address".into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(o: &Overrides) -> Vec<String> {
        match o.apply(Config::default()) {
            Ok(e) => panic!("expected errors, got {e:?}"),
            Err(e) => e.errors().iter().map(|e| e.to_string()).collect(),
        }
    }

    fn applied(o: &Overrides) -> Effective {
        match o.apply(Config::default()) {
            Ok(e) => e,
            Err(e) => panic!("expected no error, got {e}"),
        }
    }

    #[test]
    fn no_overrides_leave_the_config_as_it_is() {
        let e = applied(&Overrides::default());
        assert_eq!(e.config, Config::default());
        assert!(e.monitor.is_empty());
        assert_eq!(
            (e.thresholds, e.duration, e.status_interval),
            (None, None, None)
        );
    }

    #[test]
    fn overrides_replace_their_keys() {
        let o = Overrides {
            tick: Some("100ms".into()),
            top: Some(100_000),
            workers: Some(3),
            baselines: Some("b.bin".into()),
            capture: CaptureOverrides {
                method: Some(CaptureMethod::AfPacket),
                queues: vec![2, 3],
                cores: vec![4],
                no_promisc: true,
                busy_poll: Some("50us".into()),
            },
            live: LiveOverrides {
                duration: Some("2s".into()),
                status_interval: Some("0s".into()),
            },
            ..Overrides::default()
        };
        let e = applied(&o);
        let c = &e.config;
        assert_eq!(c.sensor.tick, Duration::from_millis(100));
        assert_eq!((c.sensor.top_n, c.sensor.workers), (100_000, 3));
        assert_eq!(c.baseline.path, Some(PathBuf::from("b.bin")));
        assert_eq!(c.capture.method, CaptureMethod::AfPacket);
        assert_eq!(
            (&c.capture.queues[..], &c.capture.cores[..]),
            (&[2, 3][..], &[4][..])
        );
        assert!(!c.capture.promiscuous);
        assert_eq!(c.capture.busy_poll, Some(Duration::from_micros(50)));
        assert_eq!(e.duration, Some(Duration::from_secs(2)));
        assert_eq!(e.status_interval, Some(Duration::ZERO));
        // What was not overridden keeps its value.
        assert_eq!(c.detection, Config::default().detection);
        assert_eq!(c.capture.xdp_frames, Config::default().capture.xdp_frames);
    }

    #[test]
    fn a_huge_top_saturates() {
        let e = applied(&Overrides {
            top: Some(usize::MAX),
            ..Overrides::default()
        });
        assert_eq!(e.config.sensor.top_n, u32::MAX);
    }

    #[test]
    fn monitor_takes_prefixes_and_bare_addresses() {
        let e = applied(&Overrides {
            monitor: vec![
                "203.0.113.0/24".into(),
                " 192.0.2.7 ".into(),
                "2001:db8::1".into(),
            ],
            ..Overrides::default()
        });
        let want: Vec<IpNet> = ["203.0.113.0/24", "192.0.2.7/32", "2001:db8::1/128"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(e.monitor, want);
    }

    #[test]
    fn monitor_needs_a_group_left() {
        let o = Overrides {
            monitor: vec!["203.0.113.0/24".into()],
            ..Overrides::default()
        };
        let mut config = Config::default();
        let groups = |n: usize| {
            (0..n)
                .map(|i| {
                    let net = format!("10.{}.{}.0/24", i / 256, i % 256);
                    crate::GroupConfig::new(format!("g{i}"), vec![net.parse().unwrap()])
                })
                .collect::<Vec<_>>()
        };
        config.groups = groups(MAX_GROUPS - 1);
        assert!(o.apply(config.clone()).is_ok());
        config.groups = groups(MAX_GROUPS);
        let e = o.apply(config.clone()).unwrap_err().to_string();
        assert_eq!(
            e,
            "--monitor needs a group of its own, but the config already has 65535 (at most 65535 groups)"
        );
        // Without `--monitor` the same config is fine.
        assert!(Overrides::default().apply(config).is_ok());
    }

    #[test]
    fn quick_thresholds_keep_which_rates_were_given() {
        let e = applied(&Overrides {
            threshold_pps: Some(1000.5),
            ..Overrides::default()
        });
        assert_eq!(
            e.thresholds,
            Some(QuickThresholds {
                pps: Some(1000.5),
                mbps: None
            })
        );
    }

    #[test]
    fn refusals_read_as_before_one_per_bad_option_in_order() {
        let o = Overrides {
            tick: Some("10ms".into()),
            workers: Some(0),
            monitor: vec!["10.0.0.1/24".into(), "bogus".into(), "10.1.0.0/16".into()],
            threshold_pps: Some(0.0),
            threshold_mbps: Some(f64::NAN),
            capture: CaptureOverrides {
                busy_poll: Some("20ms".into()),
                ..CaptureOverrides::default()
            },
            live: LiveOverrides {
                duration: Some("5".into()),
                status_interval: Some("1s".into()),
            },
            ..Overrides::default()
        };
        assert_eq!(
            refused(&o),
            [
                "--tick \"10ms\": must lie between 100ms and 1m",
                "--workers must be at least 1",
                "--monitor 10.0.0.1/24: host bits set (did you mean 10.0.0.0/24?)",
                "--monitor \"bogus\": not a CIDR prefix or an IP address",
                "--threshold-pps 0: must be a positive number",
                "--threshold-mbps NaN: must be a positive number",
                "--busy-poll \"20ms\": must be from 1us to 10ms",
                "--duration \"5\": invalid duration \"5\": missing unit; write e.g. \"5s\" or \"5ms\"",
            ]
        );
    }

    #[test]
    fn a_bad_duration_says_why_and_the_key_is_the_option() {
        let o = Overrides {
            tick: Some("1x".into()),
            ..Overrides::default()
        };
        let Err(e) = o.apply(Config::default()) else {
            panic!("accepted")
        };
        assert_eq!(e.len(), 1);
        let err = &e.errors()[0];
        assert_eq!(err.key, "--tick");
        assert!(err
            .to_string()
            .starts_with("--tick \"1x\": invalid duration \"1x\""));
    }
}
