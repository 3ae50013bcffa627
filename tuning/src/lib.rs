//! # surgewatch-tuning
//!
//! The surgewatch configuration: TOML schema, defaults, and one validation pass that reports
//! every problem at once, each with its location.
//!
//! ## Contract
//!
//! * **Pure.** [`from_str`] reads only the text it is given; [`load`] reads only the file it
//!   is given. No environment variables, no clock, no other files, no network. The same
//!   input always gives the same [`Config`] or the same [`ConfigErrors`].
//! * **Parse, don't validate.** Values decode straight into [`Duration`](std::time::Duration),
//!   [`IpNet`](ipnet::IpNet) and `NonZero*`; every struct uses `deny_unknown_fields`. A
//!   `Config` returned by this crate has passed [`Config::validate`], so downstream crates
//!   may rely on the limits documented on each field without re-checking them.
//! * **Every error at once.** A TOML syntax error is reported alone (nothing else can be
//!   trusted). Otherwise every section and every `[[group]]` is decoded separately, every
//!   offending key and array element is reported, then the semantic checks run over all
//!   that decoded. Display gives one line per error, in file order:
//!
//!   ```text
//!   surgewatch.toml:3:8: sensor.tick: "50ms" is out of range: expected a duration in 100ms..=1m
//!   surgewatch.toml:12:14: group[1].prefixes[2]: invalid CIDR "10.0.0.0/33": prefix length must be 0..=32 for an IPv4 address
//!   ```
//!
//!   Key paths use 0-based array indices. The location is omitted only for a problem
//!   with a key that is not in the file (an inherited default).
//!
//! ## Schema
//!
//! See `surgewatch.example.toml` at the repository root for an annotated example.
//!
//! * `[sensor]` ([`SensorConfig`]), `[detection]` ([`DetectionConfig`], the defaults for
//!   every group), `[baseline]` ([`BaselineConfig`]): every key is optional.
//! * `[[group]]` ([`GroupConfig`]): a unique `name`, one or more `prefixes`, and an
//!   optional `[group.detection]` table overriding any `[detection]` key
//!   ([`DetectionOverrides`]).
//! * `monitor = ["192.0.2.0/24", ...]`: shorthand for a group named
//!   [`DEFAULT_GROUP_NAME`] using the `[detection]` defaults. It may be combined with
//!   `[[group]]` tables.
//! * No `[[group]]` and no `monitor`: nothing is configured, and replay monitors every
//!   destination up to [`SensorConfig::auto_monitor_limit`].
//! * `[mitigation]` ([`MitigationConfig`]): the mitigation policy (mode, TTL, caps, the
//!   `never` list, hold-down, the ladder of `levels`, RTBH communities and next hops, the
//!   FlowSpec rate limit) and its `[[mitigation.speaker]]` tables ([`SpeakerConfig`]), each
//!   decoded by its `kind` (one of [`SPEAKER_KINDS`]) so that an unknown kind or a key of
//!   another kind is reported at its path. A group may override the ladder keys in
//!   `[group.mitigation]` ([`MitigationOverrides`]). Absent: no mitigation.
//!
//! Decisions an operator may trip over:
//!
//! * **Durations are strings with a unit**: `"100ms"`, `"1s"`, `"1.5s"`, `"5m"`, `"1h"`.
//!   A bare number (`tick = 1` or `tick = "1"`) is rejected with a hint, because a reader
//!   cannot tell seconds from milliseconds.
//! * **Prefixes are strict CIDR.** `"10.0.0.1/24"` (host bits set) is an error suggesting
//!   `"10.0.0.0/24"` or `"10.0.0.1/32"`; a bare address is an error suggesting `/32`
//!   (`/128`). Silently widening or narrowing what is monitored is worse than refusing.
//! * **A prefix belongs to one group.** The same prefix twice (in one group or two) is an
//!   error. Nested prefixes in different groups are allowed: an address belongs to the
//!   group with the longest matching prefix, so a `/32` DNS server can have its own
//!   thresholds inside a hosting `/24`.
//! * **`baseline_multiplier` must be greater than 1.0**: at 1.0 the threshold is the
//!   address's own p99, which normal traffic exceeds one tick in a hundred.
//! * **`baseline_window` must hold 1..=[`MAX_BASELINE_SAMPLES`] ticks**, and
//!   `baseline_recompute` must be at least one tick; `sensor.tick` must lie in
//!   [`MIN_TICK`]`..=`[`MAX_TICK`]. Floors and thresholds must be positive.
//! * **At most [`MAX_GROUPS`] (65535) groups**, the `monitor` shorthand included: the
//!   sensor numbers groups with a 16-bit id.
//! * **`baseline.path` must be absolute** (a daemon's working directory is not stable).
//!
//! ## Command-line overrides
//!
//! The options that replace config values for one run (`--tick`, `--top`, `--workers`,
//! `--baselines`, `--monitor`, `--threshold-pps`/`--threshold-mbps`, the capture and live
//! options) are checked by [`Overrides::apply`], with the limits of the keys they replace,
//! every refusal at once, as [`ConfigErrors`] keyed by the option
//! (`--tick "10ms": must lie between 100ms and 1m`). Its [`Effective`] is what a run is set
//! up from.
//!
//! Host and NIC tuning checks will live here too; they are not built yet.

#![warn(missing_docs)]

mod decode;
mod error;
mod mitigation;
mod overrides;
mod schema;
pub mod units;
mod validate;

use std::collections::BTreeSet;
use std::ops::Range;
use std::path::Path;

use toml_edit::{ImDocument, Item, Table, TableLike, Value};

use error::LineIndex;
pub use error::{ConfigError, ConfigErrorKind, ConfigErrors, Location};
pub use mitigation::{
    BirdSpeaker, Community, ExabgpSpeaker, FrrSpeaker, GobgpSpeaker, LevelConfig, MitigationAction,
    MitigationConfig, MitigationMode, MitigationOverrides, SpeakerConfig, SPEAKER_KINDS,
};
pub use overrides::{CaptureOverrides, Effective, LiveOverrides, Overrides, QuickThresholds};
pub use schema::{
    BaselineConfig, CaptureConfig, CaptureMethod, Config, DecapConfig, DetectionConfig,
    DetectionOverrides, GroupConfig, ResolvedGroup, SensorConfig, XdpFallback, DEFAULT_GROUP_NAME,
};
pub use validate::{
    MAX_BASELINE_SAMPLES, MAX_BUSY_POLL, MAX_GROUPS, MAX_HOLD_DOWN, MAX_LEVELS,
    MAX_MITIGATION_RULES, MAX_MITIGATION_TTL, MAX_TICK, MAX_VXLAN_PORTS, MIN_BUSY_POLL,
    MIN_MITIGATION_TTL, MIN_SAVE_INTERVAL, MIN_TICK,
};

use decode::Issue;
use validate::{GroupOrigin, Parts};

/// Reads and parses the config file at `path`.
///
/// Errors are labelled with `path` as given (`path.display()`). An unreadable or non-UTF-8
/// file is a single [`ConfigErrorKind::Io`] error.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let origin = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => from_str(&text, &origin),
        Err(source) => Err(ConfigErrors(vec![ConfigError {
            origin,
            location: None,
            key: String::new(),
            kind: ConfigErrorKind::Io { source },
        }])),
    }
}

/// Parses config `text`; `origin` (usually the file name) labels every error.
///
/// Returns a validated [`Config`] with the `monitor` shorthand folded into
/// [`Config::groups`], or every problem found.
pub fn from_str(text: &str, origin: &str) -> Result<Config, ConfigErrors> {
    let doc = match ImDocument::parse(text) {
        Ok(doc) => doc,
        Err(e) => {
            return Err(ConfigErrors(vec![ConfigError {
                origin: origin.to_owned(),
                location: e.span().map(|s| Location::of_offset(text, s.start)),
                key: String::new(),
                kind: ConfigErrorKind::Syntax {
                    message: decode::one_line(e.message()),
                },
            }]))
        }
    };

    let mut issues = Vec::new();
    let decoded = decode::decode(&doc, &mut issues);
    let mut groups: Vec<(GroupOrigin, &GroupConfig)> = decoded
        .groups
        .iter()
        .map(|(i, g)| (GroupOrigin::Table(*i), g))
        .collect();
    let monitor_group = decoded
        .monitor
        .clone()
        .map(|prefixes| GroupConfig::new(DEFAULT_GROUP_NAME, prefixes));
    if let Some(g) = &monitor_group {
        groups.push((GroupOrigin::Monitor, g));
    }
    // Validate what decoded, then drop the semantic issues about keys that already have a
    // decode error (they hold defaults standing in for the bad values).
    let decode_issues = issues.len();
    validate::validate(
        &Parts {
            sensor: decoded.sensor.as_ref(),
            tick_decoded: !issues.iter().any(|i| i.key == "sensor.tick"),
            detection: decoded.detection.as_ref(),
            baseline: decoded.baseline.as_ref(),
            capture: decoded.capture.as_ref(),
            groups,
            mitigation: decoded.mitigation.as_ref(),
        },
        &mut issues,
    );
    let semantic = issues.split_off(decode_issues);
    // A key is covered when a decode error is at it or under it (`key.…`, `key[…`); in a
    // sorted set those are the first keys at or after `key.` and `key[`: O(log n) a key.
    let decode_keys: BTreeSet<&str> = issues.iter().map(|d| d.key.as_str()).collect();
    let covered = |key: &str| {
        decode_keys.contains(key)
            || [".", "["].iter().any(|sep| {
                let under = format!("{key}{sep}");
                decode_keys
                    .range(under.as_str()..)
                    .next()
                    .is_some_and(|d| d.starts_with(&under))
            })
    };
    let semantic: Vec<Issue> = semantic.into_iter().filter(|i| !covered(&i.key)).collect();
    issues.extend(semantic);

    if !issues.is_empty() {
        return Err(located(issues, &doc, text, origin));
    }
    match decoded {
        decode::Decoded {
            sensor: Some(sensor),
            detection: Some(detection),
            baseline: Some(baseline),
            capture: Some(capture),
            groups,
            monitor: _,
            mitigation,
        } => Ok(Config {
            sensor,
            detection,
            baseline,
            capture,
            mitigation,
            groups: groups
                .into_iter()
                .map(|(_, g)| g)
                .chain(monitor_group)
                .collect(),
        }),
        // Unreachable: a section that failed to decode always leaves an issue.
        _ => Err(ConfigErrors(vec![ConfigError {
            origin: origin.to_owned(),
            location: None,
            key: String::new(),
            kind: ConfigErrorKind::InvalidValue {
                message: "config did not decode".into(),
            },
        }])),
    }
}

impl Config {
    /// Runs the semantic checks on a config built in code (a loaded config has already
    /// passed them). Key paths index [`Config::groups`] as `group[i]`; errors carry no
    /// origin or location.
    pub fn validate(&self) -> Result<(), ConfigErrors> {
        let mut issues = Vec::new();
        validate::validate(
            &Parts {
                sensor: Some(&self.sensor),
                tick_decoded: true,
                detection: Some(&self.detection),
                baseline: Some(&self.baseline),
                capture: Some(&self.capture),
                groups: self
                    .groups
                    .iter()
                    .enumerate()
                    .map(|(i, g)| (GroupOrigin::Table(i), g))
                    .collect(),
                mitigation: self.mitigation.as_ref(),
            },
            &mut issues,
        );
        if issues.is_empty() {
            return Ok(());
        }
        Err(ConfigErrors(
            issues
                .into_iter()
                .map(|i| ConfigError {
                    origin: String::new(),
                    location: None,
                    key: i.key,
                    kind: i.kind,
                })
                .collect(),
        ))
    }
}

/// Gives every issue its origin and location (its own span, else the span of its key path
/// in the document, else of the nearest enclosing key that is present) and sorts them
/// into file order, unlocated last. Linear in the text plus n log n in the issues: each
/// key path is looked up by reference, each offset through one [`LineIndex`].
fn located(issues: Vec<Issue>, doc: &ImDocument<&str>, text: &str, origin: &str) -> ConfigErrors {
    let lines = LineIndex::new(text);
    let mut errors: Vec<ConfigError> = issues
        .into_iter()
        .map(|issue| {
            let mut kind = issue.kind;
            let span = match issue.span {
                Some(span) => Some(span),
                None => {
                    let (span, exact) = find_key(doc, &issue.key);
                    if let (false, ConfigErrorKind::OutOfRange { value, .. }) = (exact, &mut kind) {
                        value.push_str(" (the default)");
                    }
                    span
                }
            };
            ConfigError {
                origin: origin.to_owned(),
                location: span.map(|s| lines.location(s.start)),
                key: issue.key,
                kind,
            }
        })
        .collect();
    errors.sort_by_key(|e| (e.location.is_none(), e.location));
    ConfigErrors(errors)
}

/// A node of the document on the way down a key path: an item under a key, a table of an
/// array of tables, or an element of an array value.
#[derive(Clone, Copy)]
enum Node<'a> {
    Item(&'a Item),
    Table(&'a Table),
    Value(&'a Value),
}

impl<'a> Node<'a> {
    fn table_like(self) -> Option<&'a dyn TableLike> {
        match self {
            Node::Item(item) => item.as_table_like(),
            Node::Table(table) => Some(table),
            Node::Value(value) => value.as_inline_table().map(|t| t as &dyn TableLike),
        }
    }

    fn index(self, index: usize) -> Option<Node<'a>> {
        match self {
            Node::Item(Item::ArrayOfTables(tables)) => tables.get(index).map(Node::Table),
            Node::Item(Item::Value(Value::Array(array))) | Node::Value(Value::Array(array)) => {
                array.get(index).map(Node::Value)
            }
            _ => None,
        }
    }

    fn span(self) -> Option<Range<usize>> {
        match self {
            Node::Item(item) => span_of(item),
            Node::Table(table) => table.span(),
            Node::Value(value) => value.span(),
        }
    }
}

/// The span of the value at `key_path` (`group[1].prefixes[2]`), or of the nearest
/// enclosing key present; and whether the path was found exactly. Walks the document by
/// reference (map lookups and array indexing), so its cost is that of the path, not of the
/// document.
fn find_key(doc: &ImDocument<&str>, key_path: &str) -> (Option<Range<usize>>, bool) {
    let mut current = Node::Item(doc.as_item());
    let mut best = None;
    for segment in key_path.split('.') {
        let (name, indices) = segment.split_once('[').unwrap_or((segment, ""));
        let Some((key, item)) = current.table_like().and_then(|t| t.get_key_value(name)) else {
            return (best, false);
        };
        current = Node::Item(item);
        best = current.span().or_else(|| key.span()).or(best);
        for index in indices.split('[').filter(|s| !s.is_empty()) {
            let Ok(index) = index.trim_end_matches(']').parse::<usize>() else {
                return (best, false);
            };
            let Some(next) = current.index(index) else {
                return (best, false);
            };
            best = next.span().or(best);
            current = next;
        }
    }
    (best, true)
}

/// An item's own span; for an array of tables, the first table's.
fn span_of(item: &Item) -> Option<Range<usize>> {
    match item {
        Item::ArrayOfTables(tables) => tables.get(0).and_then(|t| t.span()),
        _ => item.span(),
    }
}

#[cfg(test)]
mod tests;
