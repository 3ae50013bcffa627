//! The public captures of `../shared/pcaps/` and their `MANIFEST.tsv`, for the tests that
//! check surgewatch against traffic nobody on the project generated.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// One capture listed in the manifest: its path and every column by header name.
pub struct Entry {
    /// Path of the capture.
    pub path: PathBuf,
    fields: HashMap<String, String>,
}

impl Entry {
    /// A column's value (panics on a column the manifest does not have: a test bug).
    pub fn get(&self, column: &str) -> &str {
        self.fields
            .get(column)
            .unwrap_or_else(|| panic!("MANIFEST.tsv has no column {column}"))
    }

    /// The file name.
    pub fn name(&self) -> &str {
        self.get("file")
    }

    /// The `packets` column.
    pub fn packets(&self) -> u64 {
        self.get("packets").parse().expect("packet count")
    }
}

/// Every capture of `../shared/pcaps/MANIFEST.tsv` beside the checkout, or `None` (after
/// printing that `test` was skipped) when the folder is absent.
pub fn entries(test: &str) -> Option<Vec<Entry>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/pcaps");
    let Ok(text) = std::fs::read_to_string(dir.join("MANIFEST.tsv")) else {
        eprintln!("skipped: {test}: ../shared/pcaps/MANIFEST.tsv not found beside the checkout");
        return None;
    };
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("manifest header").split('\t').collect();
    let entries: Vec<Entry> = lines
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let fields: HashMap<String, String> = header
                .iter()
                .zip(line.split('\t'))
                .map(|(h, v)| ((*h).to_owned(), v.to_owned()))
                .collect();
            let path = dir.join(fields.get("file").expect("file column"));
            Entry { path, fields }
        })
        .collect();
    assert!(
        entries.len() >= 10,
        "the manifest lists the public captures"
    );
    Some(entries)
}
