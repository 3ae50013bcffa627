//! Licences of the whole dependency tree, checked with the Rust toolchain alone: `cargo
//! metadata --locked` lists every package of the workspace's lock file (all platforms; normal,
//! build and dev dependencies), and each package's `license` expression must be satisfied by
//! the allow-list `licences-allowed.txt` at the workspace root. Workspace members must be
//! Apache-2.0. `.ci/run` runs this file as its "== licences" step
//! (`cargo test -p surgewatch-sensor --locked --test licences`).
//!
//! SPDX expressions are parsed, not matched as strings: `A OR B` is satisfied when either is,
//! `A AND B` when both are, `A WITH E` when A or the pair "A WITH E" is listed (an exception only
//! adds permissions), parentheses group, and `A/B` (cargo's old syntax) means `A OR B`.
//! `WITH` binds tighter than `AND`, which binds tighter than `OR`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// The allow-list's file name, at the workspace root.
const ALLOW_FILE: &str = "licences-allowed.txt";

/// The licence every workspace member must have.
const OWN_LICENCE: &str = "Apache-2.0";

// ---------------------------------------------------------------------------------------------
// SPDX licence expressions.

/// A parsed SPDX licence expression.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Expr {
    /// A licence identifier (`MIT`, `GPL-2.0-or-later`, `LicenseRef-foo`, …).
    Id(String),
    /// A licence with an exception (`Apache-2.0 WITH LLVM-exception`).
    With(String, String),
    /// Both apply.
    And(Box<Expr>, Box<Expr>),
    /// Either may be chosen.
    Or(Box<Expr>, Box<Expr>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Open,
    Close,
    /// `/`: cargo's old way of writing `OR`.
    Slash,
    And,
    Or,
    With,
    Word(String),
}

fn tokens(s: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut Vec<Token>| {
        if word.is_empty() {
            return;
        }
        let w = std::mem::take(word);
        out.push(match w.to_ascii_uppercase().as_str() {
            "AND" => Token::And,
            "OR" => Token::Or,
            "WITH" => Token::With,
            _ => Token::Word(w),
        });
    };
    for c in s.chars() {
        let t = match c {
            '(' => Some(Token::Open),
            ')' => Some(Token::Close),
            '/' => Some(Token::Slash),
            c if c.is_whitespace() => None,
            c => {
                word.push(c);
                continue;
            }
        };
        flush(&mut word, &mut out);
        out.extend(t);
    }
    flush(&mut word, &mut out);
    out
}

/// Recursive descent over the tokens: `or := and (("OR" | "/") and)*`,
/// `and := with ("AND" with)*`, `with := primary ("WITH" word)?`,
/// `primary := "(" or ")" | word`.
struct Parser {
    toks: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.toks.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn or(&mut self) -> Result<Expr, String> {
        let mut e = self.and()?;
        while matches!(self.peek(), Some(Token::Or | Token::Slash)) {
            self.pos += 1;
            e = Expr::Or(Box::new(e), Box::new(self.and()?));
        }
        Ok(e)
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut e = self.with()?;
        while self.peek() == Some(&Token::And) {
            self.pos += 1;
            e = Expr::And(Box::new(e), Box::new(self.with()?));
        }
        Ok(e)
    }

    fn with(&mut self) -> Result<Expr, String> {
        let e = self.primary()?;
        if self.peek() != Some(&Token::With) {
            return Ok(e);
        }
        self.pos += 1;
        let Expr::Id(id) = e else {
            return Err("WITH must follow a licence identifier".to_owned());
        };
        match self.next() {
            Some(Token::Word(exception)) => Ok(Expr::With(id, exception)),
            other => Err(format!("expected an exception after WITH, found {other:?}")),
        }
    }

    fn primary(&mut self) -> Result<Expr, String> {
        match self.next() {
            Some(Token::Word(id)) => Ok(Expr::Id(id)),
            Some(Token::Open) => {
                let e = self.or()?;
                match self.next() {
                    Some(Token::Close) => Ok(e),
                    other => Err(format!("expected ')', found {other:?}")),
                }
            }
            None => Err("expression ends where a licence was expected".to_owned()),
            Some(t) => Err(format!("expected a licence, found {t:?}")),
        }
    }
}

/// Parses an SPDX licence expression (and cargo's old `A/B`).
fn parse_expr(s: &str) -> Result<Expr, String> {
    let mut p = Parser {
        toks: tokens(s),
        pos: 0,
    };
    let e = p.or()?;
    match p.peek() {
        None => Ok(e),
        Some(t) => Err(format!("unexpected {t:?} after a complete expression")),
    }
}

// ---------------------------------------------------------------------------------------------
// The allow-list.

/// Allowed licences (identifier, or "IDENTIFIER WITH EXCEPTION") and why.
#[derive(Debug)]
struct AllowList {
    reasons: BTreeMap<String, String>,
}

impl AllowList {
    /// Parses the file's text: `#` comments, blank lines, and `ENTRY: reason` lines. Returns
    /// every problem at once, as `LINE: message`.
    fn parse(text: &str) -> Result<AllowList, Vec<String>> {
        let mut reasons = BTreeMap::new();
        let mut errors = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let n = i + 1;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((entry, reason)) = line.split_once(':') else {
                errors.push(format!("{n}: expected `LICENCE: reason`, found {line:?}"));
                continue;
            };
            let (entry, reason) = (entry.trim(), reason.trim());
            let canonical = match parse_expr(entry) {
                Ok(Expr::Id(id)) => id,
                Ok(Expr::With(id, exception)) => format!("{id} WITH {exception}"),
                Ok(_) => {
                    errors.push(format!(
                        "{n}: {entry:?}: one licence (or licence WITH exception) an entry, \
                         not an expression"
                    ));
                    continue;
                }
                Err(e) => {
                    errors.push(format!("{n}: {entry:?}: {e}"));
                    continue;
                }
            };
            if reason.is_empty() {
                errors.push(format!("{n}: {entry}: no reason given"));
                continue;
            }
            if reasons.insert(canonical, reason.to_owned()).is_some() {
                errors.push(format!("{n}: {entry}: listed twice"));
            }
        }
        if errors.is_empty() {
            Ok(AllowList { reasons })
        } else {
            Err(errors)
        }
    }

    fn has(&self, entry: &str) -> bool {
        self.reasons.contains_key(entry)
    }

    /// Whether `e` is satisfied by the allowed licences.
    fn allows(&self, e: &Expr) -> bool {
        match e {
            Expr::Id(id) => self.has(id),
            Expr::With(id, exception) => {
                self.has(id) || self.has(&format!("{id} WITH {exception}"))
            }
            Expr::And(a, b) => self.allows(a) && self.allows(b),
            Expr::Or(a, b) => self.allows(a) || self.allows(b),
        }
    }

    /// The licences of `e` that are not allowed (what a failure message names).
    fn missing(&self, e: &Expr, out: &mut BTreeSet<String>) {
        match e {
            Expr::Id(id) if !self.has(id) => {
                out.insert(id.clone());
            }
            Expr::With(id, exception) if !self.allows(e) => {
                out.insert(format!("{id} WITH {exception}"));
            }
            Expr::And(a, b) | Expr::Or(a, b) => {
                self.missing(a, out);
                self.missing(b, out);
            }
            _ => {}
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Packages.

/// Why a package's licence is refused (`None`: it is fine).
fn refusal(
    name: &str,
    version: &str,
    license: Option<&str>,
    license_file: Option<&str>,
    workspace_member: bool,
    allow: &AllowList,
) -> Option<String> {
    let who = format!("{name} {version}");
    let Some(license) = license else {
        return Some(match license_file {
            Some(file) => format!(
                "{who}: no SPDX `license` in its manifest, only license-file {file:?}: read \
                 that licence and add it to {ALLOW_FILE} as a LicenseRef- entry, or replace \
                 the package"
            ),
            None => format!("{who}: declares no licence at all"),
        });
    };
    if workspace_member {
        return (license != OWN_LICENCE).then(|| {
            format!("{who}: workspace member with licence {license:?}; must be {OWN_LICENCE}")
        });
    }
    let expr = match parse_expr(license) {
        Ok(e) => e,
        Err(e) => return Some(format!("{who}: licence {license:?} does not parse: {e}")),
    };
    if allow.allows(&expr) {
        return None;
    }
    let mut missing = BTreeSet::new();
    allow.missing(&expr, &mut missing);
    Some(format!(
        "{who}: licence {license:?} is not allowed by {ALLOW_FILE} (not listed: {})",
        missing.into_iter().collect::<Vec<_>>().join(", ")
    ))
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the sensor crate is inside the workspace")
        .to_path_buf()
}

/// `cargo metadata --format-version 1 --locked` of the workspace, with the cargo running the
/// tests.
fn metadata(root: &Path) -> Value {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
    let out = Command::new(&cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--locked",
            "--manifest-path",
        ])
        .arg(root.join("Cargo.toml"))
        .output()
        .unwrap_or_else(|e| panic!("running {cargo:?} metadata: {e}"));
    assert!(
        out.status.success(),
        "cargo metadata failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON")
}

#[test]
fn every_package_in_the_dependency_tree_has_an_allowed_licence() {
    let root = workspace_root();
    let path = root.join(ALLOW_FILE);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let allow = AllowList::parse(&text)
        .unwrap_or_else(|errors| panic!("{}:\n  {}", path.display(), errors.join("\n  ")));

    let meta = metadata(&root);
    let members: BTreeSet<&str> = meta["workspace_members"]
        .as_array()
        .expect("workspace_members")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let packages = meta["packages"].as_array().expect("packages");
    let mut problems = Vec::new();
    for p in packages {
        let id = p["id"].as_str().expect("package id");
        if let Some(why) = refusal(
            p["name"].as_str().unwrap_or("?"),
            p["version"].as_str().unwrap_or("?"),
            p["license"].as_str(),
            p["license_file"].as_str(),
            members.contains(id),
            &allow,
        ) {
            problems.push(why);
        }
    }
    // The metadata was read right: this crate is among the members it lists.
    assert!(
        packages.iter().any(|p| p["name"] == "surgewatch-sensor"
            && p["id"].as_str().is_some_and(|id| members.contains(id))),
        "surgewatch-sensor is not among the workspace members {members:?}"
    );
    assert!(
        problems.is_empty(),
        "{} of {} packages have a licence problem:\n  {}",
        problems.len(),
        packages.len(),
        problems.join("\n  ")
    );
    eprintln!(
        "{} packages, {} workspace members: every licence allowed by {}",
        packages.len(),
        members.len(),
        path.display()
    );
}

// ---------------------------------------------------------------------------------------------
// The evaluator and the allow-list parser.

fn list(entries: &[&str]) -> AllowList {
    let text: String = entries.iter().map(|e| format!("{e}: test\n")).collect();
    AllowList::parse(&text).expect("test list")
}

fn allowed(entries: &[&str], expr: &str) -> bool {
    list(entries).allows(&parse_expr(expr).unwrap_or_else(|e| panic!("{expr}: {e}")))
}

#[test]
fn a_single_licence_is_allowed_only_when_listed() {
    assert!(allowed(&["MIT"], "MIT"));
    assert!(!allowed(&["MIT"], "Apache-2.0"));
    // Identifiers are compared exactly: `-only` and `-or-later` are different licences.
    assert!(!allowed(&["GPL-2.0-only"], "GPL-2.0-or-later"));
}

#[test]
fn a_disallowed_licence_fails() {
    let allow = list(&["MIT", "Apache-2.0"]);
    assert!(!allow.allows(&parse_expr("GPL-3.0-only").expect("parses")));
    let why = refusal("foo", "1.2.3", Some("GPL-3.0-only"), None, false, &allow)
        .expect("GPL-3.0-only is refused");
    assert!(why.starts_with("foo 1.2.3: "), "{why}");
    assert!(why.contains("\"GPL-3.0-only\""), "{why}");
    assert!(why.contains("not listed: GPL-3.0-only"), "{why}");
}

#[test]
fn or_needs_one_alternative_and_needs_all() {
    assert!(allowed(&["MIT"], "MIT OR Apache-2.0"));
    assert!(allowed(&["Apache-2.0"], "MIT OR Apache-2.0"));
    assert!(!allowed(&["BSD-3-Clause"], "MIT OR Apache-2.0"));
    assert!(allowed(&["MIT", "Unicode-3.0"], "MIT AND Unicode-3.0"));
    assert!(!allowed(&["MIT"], "MIT AND Unicode-3.0"));
    assert!(!allowed(&["Unicode-3.0"], "MIT AND Unicode-3.0"));
    // Three alternatives, the last allowed.
    assert!(allowed(
        &["MIT"],
        "Apache-2.0 WITH LLVM-exception OR Apache-2.0 OR MIT"
    ));
}

#[test]
fn parentheses_group_and_and_binds_tighter_than_or() {
    // unicode-ident's licence.
    let e = "(MIT OR Apache-2.0) AND Unicode-3.0";
    assert!(allowed(&["Apache-2.0", "Unicode-3.0"], e));
    assert!(!allowed(&["Apache-2.0"], e));
    // Without parentheses: MIT OR (GPL-3.0-only AND Apache-2.0).
    let e = "MIT OR GPL-3.0-only AND Apache-2.0";
    assert_eq!(
        parse_expr(e),
        parse_expr("MIT OR (GPL-3.0-only AND Apache-2.0)")
    );
    assert!(allowed(&["MIT"], e));
    assert!(!allowed(&["Apache-2.0"], e));
    // Nested.
    assert!(allowed(&["Zlib"], "((MIT AND BSD-2-Clause) OR (Zlib))"));
}

#[test]
fn slash_is_the_old_cargo_spelling_of_or() {
    for e in ["MIT/Apache-2.0", "Apache-2.0 / MIT", "Unlicense/MIT"] {
        assert!(allowed(&["MIT"], e), "{e}");
        assert!(!allowed(&["BSD-3-Clause"], e), "{e}");
    }
    assert_eq!(
        parse_expr("MIT/Apache-2.0"),
        parse_expr("MIT OR Apache-2.0")
    );
}

#[test]
fn with_an_exception_needs_its_licence_or_the_pair() {
    let e = "Apache-2.0 WITH LLVM-exception";
    assert_eq!(
        parse_expr(e),
        Ok(Expr::With("Apache-2.0".into(), "LLVM-exception".into()))
    );
    assert!(allowed(&["Apache-2.0"], e));
    assert!(allowed(&["Apache-2.0 WITH LLVM-exception"], e));
    // Neither the licence nor the pair listed: the other alternative decides.
    assert!(allowed(&["MIT"], "GPL-2.0-only WITH Foo-exception OR MIT"));
    assert!(!allowed(
        &["Zlib"],
        "GPL-2.0-only WITH Foo-exception OR MIT"
    ));
    assert!(!allowed(
        &["MIT"],
        "GPL-2.0-only WITH Classpath-exception-2.0"
    ));
    // The pair does not allow the licence without the exception.
    assert!(!allowed(&["Apache-2.0 WITH LLVM-exception"], "Apache-2.0"));
    // WITH binds tighter than AND and OR.
    assert_eq!(
        parse_expr("MIT OR Apache-2.0 WITH LLVM-exception AND Zlib"),
        parse_expr("MIT OR ((Apache-2.0 WITH LLVM-exception) AND Zlib)")
    );
}

#[test]
fn malformed_expressions_are_errors() {
    for e in [
        "",
        "MIT OR",
        "AND MIT",
        "(MIT",
        "MIT)",
        "MIT Apache-2.0",
        "MIT WITH",
        "(MIT OR Zlib) WITH LLVM-exception",
        "MIT //",
    ] {
        assert!(
            parse_expr(e).is_err(),
            "{e:?} parsed as {:?}",
            parse_expr(e)
        );
    }
    let why =
        refusal("bar", "0.1.0", Some("MIT OR"), None, false, &list(&["MIT"])).expect("refused");
    assert!(
        why.contains("bar 0.1.0") && why.contains("does not parse"),
        "{why}"
    );
}

#[test]
fn a_package_without_an_spdx_licence_is_refused_by_name() {
    let allow = list(&["MIT"]);
    let why = refusal("baz", "2.0.0", None, Some("LICENSE.txt"), false, &allow).expect("refused");
    assert!(why.starts_with("baz 2.0.0: "), "{why}");
    assert!(why.contains("license-file \"LICENSE.txt\""), "{why}");
    let why = refusal("qux", "0.0.1", None, None, false, &allow).expect("refused");
    assert!(
        why.contains("qux 0.0.1") && why.contains("no licence"),
        "{why}"
    );
    // An unknown identifier is just one that is not listed.
    let why =
        refusal("quux", "1.0.0", Some("Frobnicate-1.0"), None, false, &allow).expect("refused");
    assert!(why.contains("not listed: Frobnicate-1.0"), "{why}");
}

#[test]
fn workspace_members_must_be_apache_2_0() {
    let allow = list(&["MIT", "Apache-2.0"]);
    assert_eq!(
        refusal(
            "surgewatch-x",
            "0.1.0",
            Some("Apache-2.0"),
            None,
            true,
            &allow
        ),
        None
    );
    // Allowed for a dependency, not for our own crates.
    let why = refusal("surgewatch-x", "0.1.0", Some("MIT"), None, true, &allow).expect("refused");
    assert!(why.contains("must be Apache-2.0"), "{why}");
    assert!(refusal(
        "surgewatch-x",
        "0.1.0",
        Some("MIT OR Apache-2.0"),
        None,
        true,
        &allow
    )
    .is_some());
}

#[test]
fn the_allow_list_file_format() {
    let ok = AllowList::parse("# comment\n\nMIT: permissive\nApache-2.0 WITH LLVM-exception: x\n")
        .expect("parses");
    assert!(ok.has("MIT") && ok.has("Apache-2.0 WITH LLVM-exception"));
    let errors =
        AllowList::parse("MIT\nZlib:\nMIT OR Zlib: no\nBSD-2-Clause: a\nBSD-2-Clause: b\n")
            .expect_err("every line is wrong");
    assert_eq!(errors.len(), 4, "{errors:?}");
    assert!(errors[0].starts_with("1: "), "{errors:?}");
    assert!(errors[1].starts_with("2: ") && errors[1].contains("no reason"));
    assert!(errors[2].starts_with("3: ") && errors[2].contains("not an expression"));
    assert!(errors[3].starts_with("5: ") && errors[3].contains("twice"));
}

#[test]
fn the_allow_list_gives_a_reason_for_xdpilone_s_eupl() {
    let text = std::fs::read_to_string(workspace_root().join(ALLOW_FILE)).expect("allow-list");
    let allow = AllowList::parse(&text).expect("allow-list parses");
    let why = allow.reasons.get("EUPL-1.2").expect("EUPL-1.2 is listed");
    assert!(
        why.contains("xdpilone") && why.contains("Apache-2.0"),
        "{why}"
    );
    assert!(allow.has(OWN_LICENCE));
}
