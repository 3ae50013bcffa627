//! Every replay's output is pinned: the cases of `tests/golden/cases.tsv` (bundled captures,
//! and the public captures of `../shared/pcaps` when that folder exists) were run once with
//! the binary before a refactor and their stdout, exit status and saved baselines kept in
//! `tests/golden/out/`. This test runs them again and compares byte for byte, so a change of
//! structure cannot change the output contract unnoticed. `tests/golden/bless.sh BIN` writes
//! them anew, for an intended change of the contract only.

use std::path::{Path, PathBuf};
use std::process::Command;

fn sensor_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

struct Case {
    name: String,
    args: Vec<String>,
    shared: bool,
    baselines: bool,
}

fn cases(tmp: &Path) -> Vec<Case> {
    let text = std::fs::read_to_string(sensor_dir().join("tests/golden/cases.tsv"))
        .expect("reading tests/golden/cases.tsv");
    let baselines = tmp.join("baselines");
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (name, args) = l.split_once('\t').expect("NAME<TAB>ARGS");
            Case {
                name: name.to_string(),
                shared: args.contains("$S/"),
                baselines: args.contains("$BASELINES"),
                args: args
                    .split_whitespace()
                    .map(|a| {
                        a.replace("$BASELINES", baselines.to_str().expect("utf-8 temp path"))
                            .replace("$B/", "../pcaps/captures/")
                            .replace("$S/", "../../shared/pcaps/")
                            .replace("$G/", "tests/golden/")
                    })
                    .collect(),
            }
        })
        .collect()
}

fn first_difference(want: &[u8], got: &[u8]) -> String {
    let want = String::from_utf8_lossy(want);
    let got = String::from_utf8_lossy(got);
    for (i, (w, g)) in want.lines().zip(got.lines()).enumerate() {
        if w != g {
            return format!("line {}:\n  want {w}\n  got  {g}", i + 1);
        }
    }
    format!(
        "{} lines wanted, {} lines got",
        want.lines().count(),
        got.lines().count()
    )
}

#[test]
fn replay_output_is_byte_identical_to_the_golden_copies() {
    let dir = sensor_dir();
    let out = dir.join("tests/golden/out");
    let shared = dir.join("../../shared/pcaps").is_dir();
    if !shared {
        println!("skipped the cases over ../shared/pcaps: folder absent beside the checkout");
    }
    let tmp = std::env::temp_dir().join(format!("surgewatch-golden-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).expect("temp dir");
    let mut failures = Vec::new();
    let mut ran = 0;
    for case in cases(&tmp) {
        if case.shared && !shared {
            continue;
        }
        let _ = std::fs::remove_file(tmp.join("baselines"));
        let run = Command::new(env!("CARGO_BIN_EXE_surgewatch"))
            .current_dir(&dir)
            .arg("replay")
            .args(&case.args)
            .output()
            .expect("running surgewatch");
        ran += 1;
        let want_stdout = std::fs::read(out.join(format!("{}.stdout", case.name)))
            .unwrap_or_else(|e| panic!("{}: golden stdout: {e}", case.name));
        let want_rc = std::fs::read_to_string(out.join(format!("{}.rc", case.name)))
            .unwrap_or_else(|e| panic!("{}: golden rc: {e}", case.name));
        let rc = run
            .status
            .code()
            .map_or("signal".to_string(), |c| c.to_string());
        if rc != want_rc.trim() {
            failures.push(format!(
                "{}: exit status {rc}, golden {}; stderr: {}",
                case.name,
                want_rc.trim(),
                String::from_utf8_lossy(&run.stderr)
            ));
        }
        if run.stdout != want_stdout {
            failures.push(format!(
                "{}: stdout differs, {}",
                case.name,
                first_difference(&want_stdout, &run.stdout)
            ));
        }
        if case.baselines {
            let want = std::fs::read(out.join(format!("{}.baselines", case.name)))
                .unwrap_or_else(|e| panic!("{}: golden baselines: {e}", case.name));
            match std::fs::read(tmp.join("baselines")) {
                Ok(got) if got == want => {}
                Ok(got) => failures.push(format!(
                    "{}: saved baselines differ ({} bytes, golden {})",
                    case.name,
                    got.len(),
                    want.len()
                )),
                Err(e) => failures.push(format!("{}: no baselines saved: {e}", case.name)),
            }
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
    assert!(ran > 0, "no golden case ran");
    assert!(
        failures.is_empty(),
        "{} of {ran} golden cases differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
