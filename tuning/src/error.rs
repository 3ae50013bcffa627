//! Config errors: one [`ConfigError`] per problem, all of them in [`ConfigErrors`].

use std::fmt;

use ipnet::IpNet;

/// A 1-based line and column (in characters) in the config text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Location {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub column: usize,
}

impl Location {
    /// The location of byte `offset` in `text` (clamped to the text), by scanning it.
    /// Fine for one lookup; for many, build a [`LineIndex`] once.
    pub(crate) fn of_offset(text: &str, offset: usize) -> Self {
        LineIndex::new(text).location(offset)
    }
}

/// Line starts and character counts of a text, computed once, so that each byte offset is
/// turned into a [`Location`] in O(log n) plus a scan of at most [`LineIndex::STRIDE`]
/// bytes, however long the text or its lines: locating every error of a config with
/// hundreds of thousands of them stays linear in the text plus n log n in the errors.
#[derive(Debug)]
pub(crate) struct LineIndex<'a> {
    text: &'a str,
    /// Byte offset of the start of each line; the first is 0.
    line_starts: Vec<usize>,
    /// `(byte offset, characters before it)` at char boundaries about every `STRIDE` bytes,
    /// the first at 0.
    marks: Vec<(usize, usize)>,
}

impl<'a> LineIndex<'a> {
    /// Most bytes a lookup scans (plus up to 3 to reach a char boundary).
    pub(crate) const STRIDE: usize = 256;

    /// Indexes `text` in one pass.
    pub(crate) fn new(text: &'a str) -> Self {
        let mut line_starts = vec![0];
        let mut marks = vec![(0, 0)];
        let mut next_mark = Self::STRIDE;
        for (chars, (i, c)) in text.char_indices().enumerate() {
            if i >= next_mark {
                marks.push((i, chars));
                next_mark = i + Self::STRIDE;
            }
            if c == '\n' {
                line_starts.push(i + 1);
            }
        }
        LineIndex {
            text,
            line_starts,
            marks,
        }
    }

    /// How many lines the text has (a final newline starts an empty last line).
    #[cfg(test)]
    pub(crate) fn lines(&self) -> usize {
        self.line_starts.len()
    }

    /// The location of byte `offset` (clamped to the text, and back to a char boundary).
    pub(crate) fn location(&self, offset: usize) -> Location {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        // The line holding `offset`: the last line start at or before it.
        let line = self.line_starts.partition_point(|&s| s <= offset);
        let start = self
            .line_starts
            .get(line.wrapping_sub(1))
            .copied()
            .unwrap_or(0);
        Location {
            line: line.max(1),
            column: self.chars_before(offset) - self.chars_before(start) + 1,
        }
    }

    /// Characters before byte `offset` (a char boundary).
    fn chars_before(&self, offset: usize) -> usize {
        let m = self.marks.partition_point(|&(b, _)| b <= offset);
        let (byte, chars) = self.marks.get(m.wrapping_sub(1)).copied().unwrap_or((0, 0));
        chars + self.text.get(byte..offset).map_or(0, |s| s.chars().count())
    }
}

/// One problem in a config, with where it is.
///
/// Displays as the single line an operator should see:
/// `ORIGIN:LINE:COL: KEY.PATH: message`, e.g.
/// `surgewatch.toml:12:14: group[1].prefixes[2]: invalid CIDR "10.0.0.0/33": ...`.
/// The location is left out when the key is not in the file (an inherited default);
/// the key path is left out for syntax and I/O errors. Array indices are 0-based.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub struct ConfigError {
    /// The file name or label the text came from; empty for programmatic validation.
    pub origin: String,
    /// Where in the text, when known.
    pub location: Option<Location>,
    /// Dotted key path (`detection.floor_pps`, `group[1].prefixes[2]`); empty when the
    /// error is not about one key (syntax, I/O).
    pub key: String,
    /// What is wrong.
    pub kind: ConfigErrorKind,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut prefix = self.origin.clone();
        if let Some(Location { line, column }) = self.location {
            prefix = format!("{prefix}:{line}:{column}");
        }
        if !prefix.is_empty() {
            write!(f, "{prefix}: ")?;
        }
        match (&self.kind, self.key.is_empty()) {
            // A command-line option reads as typed: `--tick "10ms": ...`.
            (ConfigErrorKind::BadOption { .. }, false) => write!(f, "{} ", self.key)?,
            (_, false) => write!(f, "{}: ", self.key)?,
            (_, true) => {}
        }
        write!(f, "{}", self.kind)
    }
}

/// What is wrong; see [`ConfigError`] for where.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigErrorKind {
    /// The file could not be read (or is not UTF-8).
    #[error("cannot read config: {source}")]
    Io {
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// The text is not valid TOML; nothing else is checked.
    #[error("TOML syntax error: {message}")]
    Syntax {
        /// The parser's message, on one line.
        message: String,
    },

    /// A key the schema does not know (typo, wrong section, removed option).
    #[error("unknown key{}", unknown_key_hint(.suggestion, .expected))]
    UnknownKey {
        /// A known key with a similar spelling, if any.
        suggestion: Option<&'static str>,
        /// The keys valid at this place.
        expected: &'static [&'static str],
    },

    /// The value could not be decoded: wrong type, bad duration or CIDR, zero where a
    /// positive integer is needed.
    #[error("{message}")]
    InvalidValue {
        /// What the decoder said, e.g. `invalid type: integer `5`, expected a string`.
        message: String,
    },

    /// The value decoded but is outside what surgewatch accepts.
    #[error("{value} is out of range: expected {expected}")]
    OutOfRange {
        /// The offending value, as the operator would write it.
        value: String,
        /// The accepted range, with a reason or hint where useful.
        expected: String,
    },

    /// A group without a `name` (or with an empty one).
    #[error("every group needs a non-empty `name`")]
    MissingGroupName,

    /// A group without prefixes.
    #[error("no prefixes; list at least one CIDR, e.g. \"192.0.2.0/24\"")]
    NoPrefixes {
        /// The group's name.
        group: String,
    },

    /// Two groups with the same name.
    #[error("duplicate group name {name:?} (first used by {first})")]
    DuplicateGroupName {
        /// The repeated name.
        name: String,
        /// Key path of the first group with that name.
        first: String,
    },

    /// The same prefix listed twice, in one group or in two.
    #[error(
        "prefix {prefix} is already listed at {first} (group {first_group:?}); each prefix \
         belongs to exactly one group (nested prefixes are fine: the longest match wins)"
    )]
    DuplicatePrefix {
        /// The repeated prefix.
        prefix: IpNet,
        /// Key path of its first occurrence.
        first: String,
        /// Name of the group of its first occurrence.
        first_group: String,
    },

    /// More groups than the sensor can number ([`crate::MAX_GROUPS`]).
    #[error("at most {max} groups (found {found})")]
    TooManyGroups {
        /// How many groups the config defines.
        found: usize,
        /// The limit.
        max: usize,
    },

    /// A command-line override is refused (see [`crate::Overrides`]); the error's key is
    /// the option (`--tick`).
    #[error("{}", option_value(.value, .reason))]
    BadOption {
        /// The value as typed (quoted where it is a string), when it matters.
        value: Option<String>,
        /// What is wrong with it.
        reason: String,
    },
}

fn option_value(value: &Option<String>, reason: &str) -> String {
    match value {
        Some(v) => format!("{v}: {reason}"),
        None => reason.to_owned(),
    }
}

fn unknown_key_hint(suggestion: &Option<&'static str>, expected: &[&str]) -> String {
    match suggestion {
        Some(s) => format!("; did you mean `{s}`?"),
        None => format!("; expected one of: {}", expected.join(", ")),
    }
}

/// Every problem found in one config, in file order. Never empty.
///
/// Displays one [`ConfigError`] per line (no trailing newline), ready to print as-is for
/// `surgewatch check-config`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// The individual errors.
    pub fn errors(&self) -> &[ConfigError] {
        &self.0
    }

    /// How many errors there are (at least 1).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always `false` for errors returned by this crate; here for API completeness.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl IntoIterator for ConfigErrors {
    type Item = ConfigError;
    type IntoIter = std::vec::IntoIter<ConfigError>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a ConfigErrors {
    type Item = &'a ConfigError;
    type IntoIter = std::slice::Iter<'a, ConfigError>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_are_one_based_and_count_chars() {
        let text = "a = 1\nb = \"é\" x\n";
        assert_eq!(
            Location::of_offset(text, 0),
            Location { line: 1, column: 1 }
        );
        assert_eq!(
            Location::of_offset(text, 6),
            Location { line: 2, column: 1 }
        );
        let x = text.find('x').unwrap();
        assert_eq!(
            Location::of_offset(text, x),
            Location { line: 2, column: 9 }
        );
        assert_eq!(Location::of_offset(text, 999).line, 3);
    }

    /// The naive lookup the index replaces: scan everything before the offset.
    fn scanned(text: &str, offset: usize) -> Location {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &text[..offset];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Location {
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
        }
    }

    #[test]
    fn the_line_index_agrees_with_scanning_at_every_offset() {
        // Short and long lines, multi-byte characters on both sides of the marks, a line
        // longer than several strides, an empty line, no final newline.
        let long: String = "é-x".repeat(3 * LineIndex::STRIDE);
        let text = format!("a = 1\n\nb = \"é\" x\n{long}\n  ü = [\"10.0.0.0/24\"]");
        let index = LineIndex::new(&text);
        assert_eq!(index.lines(), text.matches('\n').count() + 1);
        assert!(index.marks.len() > 3, "a mark about every STRIDE bytes");
        for offset in 0..=text.len() + 2 {
            assert_eq!(
                index.location(offset),
                scanned(&text, offset),
                "offset {offset}"
            );
        }
        let empty = LineIndex::new("");
        assert_eq!(empty.location(5), Location { line: 1, column: 1 });
    }

    #[test]
    fn display_is_one_line_per_error() {
        let e = |location, key: &str| ConfigError {
            origin: "surgewatch.toml".into(),
            location,
            key: key.into(),
            kind: ConfigErrorKind::InvalidValue {
                message: "bad".into(),
            },
        };
        let errors = ConfigErrors(vec![
            e(
                Some(Location {
                    line: 12,
                    column: 14,
                }),
                "group[1].prefixes[2]",
            ),
            e(None, "detection.warmup"),
            e(Some(Location { line: 1, column: 2 }), ""),
        ]);
        assert_eq!(
            errors.to_string(),
            "surgewatch.toml:12:14: group[1].prefixes[2]: bad\n\
             surgewatch.toml: detection.warmup: bad\n\
             surgewatch.toml:1:2: bad"
        );
    }
}
