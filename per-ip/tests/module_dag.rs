//! The crate's modules depend on each other in one direction only: the `crate::` paths of
//! each module (outside comments and its tests) form a graph without cycles. A cycle would
//! mean two modules that can only be understood, and changed, together. Modules name the
//! module they use (`crate::shard::Rearm`), never a re-export of `lib.rs` (`crate::Rearm`),
//! which would hide the edge.

use std::collections::{BTreeMap, BTreeSet};

type Graph = BTreeMap<String, BTreeSet<String>>;

/// The module graph, and every `crate::Item` path that goes through `lib.rs`'s re-exports.
fn module_deps() -> (Graph, Vec<String>) {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph = BTreeMap::new();
    let mut via_lib = Vec::new();
    for entry in std::fs::read_dir(&src).expect("reading src/") {
        let path = entry.expect("dir entry").path();
        let Some(name) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        if path.extension().and_then(|e| e.to_str()) != Some("rs") || name == "lib" {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("reading a module");
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        let mut deps = BTreeSet::new();
        for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
            let mut rest = line;
            while let Some(i) = rest.find("crate::") {
                rest = &rest[i + "crate::".len()..];
                let m: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                if rest.starts_with(|c: char| c.is_ascii_uppercase()) {
                    via_lib.push(format!("{name}: {}", line.trim()));
                }
                if !m.is_empty() && m != name {
                    deps.insert(m);
                }
            }
        }
        graph.insert(name.to_string(), deps);
    }
    (graph, via_lib)
}

fn cycle_through(
    graph: &Graph,
    node: &str,
    path: &mut Vec<String>,
    done: &mut BTreeSet<String>,
) -> Option<Vec<String>> {
    if let Some(i) = path.iter().position(|p| p == node) {
        let mut cycle = path[i..].to_vec();
        cycle.push(node.to_string());
        return Some(cycle);
    }
    if done.contains(node) {
        return None;
    }
    path.push(node.to_string());
    for dep in graph.get(node).into_iter().flatten() {
        if graph.contains_key(dep) {
            if let Some(c) = cycle_through(graph, dep, path, done) {
                return Some(c);
            }
        }
    }
    path.pop();
    done.insert(node.to_string());
    None
}

#[test]
fn modules_form_a_dag() {
    let (graph, via_lib) = module_deps();
    assert!(graph.len() >= 8, "modules found: {graph:?}");
    assert!(
        via_lib.is_empty(),
        "name the module, not a re-export of lib.rs:\n{}",
        via_lib.join("\n")
    );
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        if let Some(cycle) = cycle_through(&graph, node, &mut Vec::new(), &mut done) {
            panic!("import cycle: {}", cycle.join(" -> "));
        }
    }
}

#[test]
fn the_check_sees_a_cycle() {
    let mut graph = BTreeMap::new();
    graph.insert("a".to_string(), BTreeSet::from(["b".to_string()]));
    graph.insert("b".to_string(), BTreeSet::from(["a".to_string()]));
    let cycle = cycle_through(&graph, "a", &mut Vec::new(), &mut BTreeSet::new());
    assert_eq!(cycle, Some(vec!["a".into(), "b".into(), "a".into()]));
}
