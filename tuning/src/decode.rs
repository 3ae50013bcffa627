//! Spanned decoding: the TOML document is parsed once, keeping byte spans, then each
//! section and each `[[group]]` is decoded on its own so that one bad value does not hide
//! the others. When a section fails, each of its keys (and each element of an array value)
//! is decoded alone to find every culprit.

use std::ops::Range;

use ipnet::IpNet;
use serde::de::{DeserializeOwned, IntoDeserializer};
use toml_edit::{Array, ImDocument, Item, Table, Value};

use crate::error::ConfigErrorKind;
use crate::mitigation::{
    BirdSpeaker, ExabgpSpeaker, FrrSpeaker, GobgpSpeaker, MitigationConfig, MitigationOverrides,
    SpeakerConfig, SPEAKER_KINDS,
};
use crate::schema::{
    BaselineConfig, CaptureConfig, DetectionConfig, DetectionOverrides, GroupConfig, SensorConfig,
};
use crate::units::serde_with;

/// Keys allowed at the top level of the document.
pub(crate) const TOP_LEVEL_KEYS: &[&str] = &[
    "sensor",
    "detection",
    "baseline",
    "capture",
    "group",
    "monitor",
    "mitigation",
];

/// A problem found while decoding or validating, before it gets its origin and location.
#[derive(Debug)]
pub(crate) struct Issue {
    pub key: String,
    pub span: Option<Range<usize>>,
    pub kind: ConfigErrorKind,
}

/// Everything that decoded, possibly partially (see [`decode_table`]). A section that is
/// present but not a table is `None`; an absent section is its default.
#[derive(Debug)]
pub(crate) struct Decoded {
    pub sensor: Option<SensorConfig>,
    pub detection: Option<DetectionConfig>,
    pub baseline: Option<BaselineConfig>,
    pub capture: Option<CaptureConfig>,
    /// `(index in the file, group)` for every `[[group]]` that is a table.
    pub groups: Vec<(usize, GroupConfig)>,
    /// The `monitor` shorthand, when present and decoded.
    pub monitor: Option<Vec<IpNet>>,
    /// `[mitigation]`, when present and decoded (a failure leaves an issue).
    pub mitigation: Option<MitigationConfig>,
}

pub(crate) fn decode(doc: &ImDocument<&str>, issues: &mut Vec<Issue>) -> Decoded {
    let mut out = Decoded {
        sensor: Some(SensorConfig::default()),
        detection: Some(DetectionConfig::default()),
        baseline: Some(BaselineConfig::default()),
        capture: Some(CaptureConfig::default()),
        groups: Vec::new(),
        monitor: None,
        mitigation: None,
    };
    let root = doc.as_table();
    for (key, item) in root.iter() {
        match key {
            "sensor" => out.sensor = decode_table(item, "sensor", &[], issues),
            "detection" => out.detection = decode_table(item, "detection", &[], issues),
            "baseline" => out.baseline = decode_table(item, "baseline", &[], issues),
            "capture" => out.capture = decode_table(item, "capture", &[], issues),
            "group" => out.groups = decode_groups(item, issues),
            "monitor" => out.monitor = decode_monitor(item, issues),
            "mitigation" => out.mitigation = decode_mitigation(item, issues),
            _ => issues.push(unknown_key(
                root.key(key).and_then(|k| k.span()),
                "",
                key,
                TOP_LEVEL_KEYS,
            )),
        }
    }
    out
}

fn decode_groups(item: &Item, issues: &mut Vec<Issue>) -> Vec<(usize, GroupConfig)> {
    let mut groups = Vec::new();
    let mut one = |i: usize, group: Item, issues: &mut Vec<Issue>| {
        if let Some(g) = decode_group(&group, i, issues) {
            groups.push((i, g));
        }
    };
    match item {
        Item::ArrayOfTables(tables) => {
            for (i, table) in tables.iter().enumerate() {
                one(i, Item::Table(table.clone()), issues);
            }
        }
        Item::Value(Value::Array(array)) => {
            for (i, value) in array.iter().enumerate() {
                one(i, Item::Value(value.clone()), issues);
            }
        }
        Item::Table(_) => issues.push(Issue {
            key: "group".into(),
            span: item.span(),
            kind: invalid("expected an array of tables: write `[[group]]`, not `[group]`"),
        }),
        _ => issues.push(Issue {
            key: "group".into(),
            span: item.span(),
            kind: invalid(format!(
                "expected `[[group]]` tables, found {}",
                item.type_name()
            )),
        }),
    }
    groups
}

fn decode_group(item: &Item, index: usize, issues: &mut Vec<Issue>) -> Option<GroupConfig> {
    let path = format!("group[{index}]");
    let overrides = match item.as_table_like().and_then(|t| t.get("detection")) {
        Some(d) => decode_table::<DetectionOverrides>(d, &format!("{path}.detection"), &[], issues),
        None => Some(DetectionOverrides::default()),
    };
    let mitigation = match item.as_table_like().and_then(|t| t.get("mitigation")) {
        Some(m) => {
            decode_table::<MitigationOverrides>(m, &format!("{path}.mitigation"), &[], issues)
        }
        None => Some(MitigationOverrides::default()),
    };
    let group = decode_table::<GroupConfig>(item, &path, &["detection", "mitigation"], issues);
    let (mut group, overrides, mitigation) = (group?, overrides?, mitigation?);
    group.detection = overrides;
    group.mitigation = mitigation;
    Some(group)
}

/// `[mitigation]` with its `[[mitigation.speaker]]` tables, each decoded by its `kind`.
fn decode_mitigation(item: &Item, issues: &mut Vec<Issue>) -> Option<MitigationConfig> {
    let mut config = decode_table::<MitigationConfig>(item, "mitigation", &["speaker"], issues);
    let Some(speakers) = item.as_table_like().and_then(|t| t.get("speaker")) else {
        return config;
    };
    let mut decoded = Vec::new();
    let mut ok = true;
    let mut one = |i: usize, speaker: Item, issues: &mut Vec<Issue>| {
        let path = format!("mitigation.speaker[{i}]");
        match decode_speaker(&speaker, &path, issues) {
            Some(s) => decoded.push(s),
            None => ok = false,
        }
    };
    match speakers {
        Item::ArrayOfTables(tables) => {
            for (i, table) in tables.iter().enumerate() {
                one(i, Item::Table(table.clone()), issues);
            }
        }
        Item::Value(Value::Array(array)) => {
            for (i, value) in array.iter().enumerate() {
                one(i, Item::Value(value.clone()), issues);
            }
        }
        _ => {
            ok = false;
            issues.push(Issue {
                key: "mitigation.speaker".into(),
                span: speakers.span(),
                kind: invalid(
                    "expected an array of tables: write `[[mitigation.speaker]]` with a `kind`",
                ),
            });
        }
    }
    // With a speaker that failed, the rest of the section still goes through the semantic
    // checks (the failure's issue makes the load fail); the speakers' own checks are then
    // skipped, since their indices no longer match the file's.
    if let Some(c) = &mut config {
        c.speakers = if ok { decoded } else { Vec::new() };
    }
    config
}

fn decode_speaker(item: &Item, path: &str, issues: &mut Vec<Issue>) -> Option<SpeakerConfig> {
    let Some(table) = item.as_table_like() else {
        issues.push(Issue {
            key: path.to_owned(),
            span: item.span(),
            kind: invalid(format!("expected a table, found {}", item.type_name())),
        });
        return None;
    };
    let kind_path = format!("{path}.kind");
    let Some(kind_item) = table.get("kind") else {
        issues.push(Issue {
            key: path.to_owned(),
            span: item.span(),
            kind: invalid(format!(
                "missing `kind`: one of {}",
                SPEAKER_KINDS.join(", ")
            )),
        });
        return None;
    };
    let Some(kind) = kind_item.as_str() else {
        issues.push(Issue {
            key: kind_path,
            span: kind_item.span(),
            kind: invalid(format!(
                "expected a string, one of {}, found {}",
                SPEAKER_KINDS.join(", "),
                kind_item.type_name()
            )),
        });
        return None;
    };
    let skip = &["kind"];
    match kind {
        "gobgp" => decode_table::<GobgpSpeaker>(item, path, skip, issues).map(SpeakerConfig::Gobgp),
        "exabgp" => {
            decode_table::<ExabgpSpeaker>(item, path, skip, issues).map(SpeakerConfig::Exabgp)
        }
        "bird" => decode_table::<BirdSpeaker>(item, path, skip, issues).map(SpeakerConfig::Bird),
        "frr" => decode_table::<FrrSpeaker>(item, path, skip, issues).map(SpeakerConfig::Frr),
        other => {
            let hint = suggest(other, SPEAKER_KINDS)
                .map(|s| format!(" (did you mean {s:?}?)"))
                .unwrap_or_default();
            issues.push(Issue {
                key: kind_path,
                span: kind_item.span(),
                kind: invalid(format!(
                    "unknown speaker kind {other:?}{hint}: expected one of {}",
                    SPEAKER_KINDS.join(", ")
                )),
            });
            None
        }
    }
}

fn decode_monitor(item: &Item, issues: &mut Vec<Issue>) -> Option<Vec<IpNet>> {
    let Some(array) = item.as_array() else {
        issues.push(Issue {
            key: "monitor".into(),
            span: item.span(),
            kind: invalid(format!(
                "expected an array of CIDR strings, e.g. [\"192.0.2.0/24\"], found {}",
                item.type_name()
            )),
        });
        return None;
    };
    let mut prefixes = Vec::with_capacity(array.len());
    let mut ok = true;
    for (i, value) in array.iter().enumerate() {
        match serde_with::cidr(value.clone().into_deserializer()) {
            Ok(net) => prefixes.push(net),
            Err(e) => {
                ok = false;
                issues.push(Issue {
                    key: format!("monitor[{i}]"),
                    span: e.span().or_else(|| value.span()),
                    kind: invalid(one_line(e.message())),
                });
            }
        }
    }
    ok.then_some(prefixes)
}

/// Decodes the table `item` at key path `path` into `T`, reporting unknown keys (with a
/// suggestion) and every key whose value does not decode. Keys in `skip` are left to the
/// caller and decode as their default.
///
/// When keys fail, returns the value decoded from the other keys (the failed ones at
/// their defaults) so that validation can still check them; such a partial value never
/// leaves the crate because its issues make the load fail.
fn decode_table<T: DeserializeOwned>(
    item: &Item,
    path: &str,
    skip: &[&str],
    issues: &mut Vec<Issue>,
) -> Option<T> {
    let Some(table) = item.as_table_like() else {
        issues.push(Issue {
            key: path.to_owned(),
            span: item.span(),
            kind: invalid(format!("expected a table, found {}", item.type_name())),
        });
        return None;
    };
    let fields = struct_fields::<T>();
    let mut known = Table::new();
    for (key, value) in table.iter() {
        if skip.contains(&key) {
            continue;
        }
        let Some((key_repr, _)) = table.get_key_value(key) else {
            continue;
        };
        if !fields.contains(&key) {
            issues.push(unknown_key(key_repr.span(), path, key, fields));
            continue;
        }
        known.insert_formatted(key_repr, value.clone());
    }
    let whole = match deserialize::<T>(known.clone()) {
        Ok(value) => return Some(value),
        Err(e) => e,
    };
    // Find every culprit: each key alone, and each element of an array value alone.
    let mut failed = Vec::new();
    for (key, value) in known.iter() {
        let Some((key_repr, _)) = known.get_key_value(key) else {
            continue;
        };
        let alone = |value: Item| {
            let mut t = Table::new();
            t.insert_formatted(key_repr, value);
            deserialize::<T>(t)
        };
        let Err(e) = alone(value.clone()) else {
            continue;
        };
        failed.push(key.to_owned());
        let key_path = join(path, key);
        let mut found = false;
        if let Some(array) = value.as_array() {
            for (i, element) in array.iter().enumerate() {
                let mut single = Array::new();
                single.push_formatted(element.clone());
                if let Err(e) = alone(Item::Value(Value::Array(single))) {
                    found = true;
                    issues.push(Issue {
                        key: format!("{key_path}[{i}]"),
                        span: e.span().or_else(|| element.span()),
                        kind: invalid(one_line(e.message())),
                    });
                }
            }
        }
        if !found {
            issues.push(Issue {
                key: key_path,
                span: e.span().or_else(|| value.span()),
                kind: invalid(one_line(e.message())),
            });
        }
    }
    if failed.is_empty() {
        issues.push(Issue {
            key: path.to_owned(),
            span: whole.span().or_else(|| item.span()),
            kind: invalid(one_line(whole.message())),
        });
        return None;
    }
    // What is left, with the failed keys at their defaults, still goes through the
    // semantic checks so that their errors are reported in the same run.
    for key in &failed {
        known.remove(key);
    }
    deserialize::<T>(known).ok()
}

fn deserialize<T: DeserializeOwned>(table: Table) -> Result<T, toml_edit::de::Error> {
    // The document wrapper keeps the items' spans (only parsing a `DocumentMut` drops them).
    toml_edit::de::from_document(toml_edit::DocumentMut::from(table))
}

fn invalid(message: impl Into<String>) -> ConfigErrorKind {
    ConfigErrorKind::InvalidValue {
        message: message.into(),
    }
}

/// Parser and serde messages may span lines; an operator gets one line per error.
pub(crate) fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// `path.key`, quoting `key` when it is not a bare TOML key.
pub(crate) fn join(path: &str, key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    let key = if bare {
        key.to_owned()
    } else {
        format!("{key:?}")
    };
    if path.is_empty() {
        key
    } else {
        format!("{path}.{key}")
    }
}

fn unknown_key(
    span: Option<Range<usize>>,
    path: &str,
    key: &str,
    expected: &'static [&'static str],
) -> Issue {
    Issue {
        key: join(path, key),
        span,
        kind: ConfigErrorKind::UnknownKey {
            suggestion: suggest(key, expected),
            expected,
        },
    }
}

/// The known key an unknown one was most likely meant to be: within a small edit
/// distance, or the only known key containing it.
fn suggest(key: &str, known: &'static [&'static str]) -> Option<&'static str> {
    let limit = (key.chars().count() / 3).max(1);
    let close = known
        .iter()
        .map(|k| (edit_distance(key, k), *k))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k);
    close.or_else(|| {
        let mut containing = known.iter().filter(|k| key.len() >= 4 && k.contains(key));
        match (containing.next(), containing.next()) {
            (Some(k), None) => Some(*k),
            _ => None,
        }
    })
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

/// The field names serde expects for struct `T`, taken from its `Deserialize` impl so
/// that the unknown-key check can never drift from the schema.
pub(crate) fn struct_fields<T: DeserializeOwned>() -> &'static [&'static str] {
    use serde::de::{Deserializer, Error, Visitor};
    use serde::forward_to_deserialize_any;

    struct Probe<'a>(&'a mut &'static [&'static str]);
    impl<'de> Deserializer<'de> for Probe<'_> {
        type Error = serde::de::value::Error;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(Error::custom("not a struct"))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(Error::custom("probe"))
        }
        forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Probe(&mut fields));
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn struct_fields_come_from_serde() {
        assert_eq!(
            struct_fields::<GroupConfig>(),
            &["name", "prefixes", "detection", "mitigation"]
        );
        assert!(struct_fields::<DetectionConfig>().contains(&"baseline_multiplier"));
        assert_eq!(
            struct_fields::<DetectionConfig>(),
            struct_fields::<DetectionOverrides>(),
            "every [detection] key can be overridden per group"
        );
    }

    #[test]
    fn suggestions() {
        let known = struct_fields::<DetectionConfig>();
        assert_eq!(suggest("flor_pps", known), Some("floor_pps"));
        assert_eq!(suggest("window", known), Some("baseline_window"));
        assert_eq!(
            suggest("floor", known),
            None,
            "ambiguous: floor_pps or floor_mbps"
        );
        assert_eq!(suggest("groups", TOP_LEVEL_KEYS), Some("group"));
        assert_eq!(suggest("colour", TOP_LEVEL_KEYS), None);
    }

    #[test]
    fn joins_quote_odd_keys() {
        assert_eq!(join("", "sensor"), "sensor");
        assert_eq!(join("group[0]", "name"), "group[0].name");
        assert_eq!(join("sensor", "a b"), "sensor.\"a b\"");
    }
}
