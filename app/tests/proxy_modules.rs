//! The proxy's modules depend on each other one way: a host test that reads the sources of
//! `app/src/proxy`, builds the graph of their `use super::...` and `use crate::proxy::...`
//! imports, and fails on a cycle (so that a phase never reaches back into the connection
//! loop that calls it).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

/// The modules a `use` line names, from what follows `use super::` or `use crate::proxy::`:
/// `health::HealthBoard` names `health`, `{pace::Pace, stream}` names `pace` and `stream`.
fn named_modules(rest: &str, modules: &BTreeSet<String>) -> Vec<String> {
    let rest = rest.trim_end_matches(';').trim();
    let parts: Vec<&str> = match rest.strip_prefix('{') {
        Some(inner) => inner.trim_end_matches('}').split(',').collect(),
        None => vec![rest],
    };
    parts
        .into_iter()
        .filter_map(|part| {
            let first = part.trim().split("::").next()?.trim();
            modules.contains(first).then(|| first.to_string())
        })
        .collect()
}

/// Whether `line` begins a `use` declaration (`use`, `pub use`, `pub(crate) use`, ...).
fn is_use(line: &str) -> bool {
    let rest = match line.strip_prefix("pub") {
        Some(rest) if rest.starts_with('(') => rest.split_once(')').map_or("", |(_, rest)| rest),
        Some(rest) => rest,
        None => line,
    };
    rest.trim_start().starts_with("use ")
}

/// Each module of `app/src/proxy` and the modules it imports (a test module's `use super::*`
/// is its own file, and does not count).
fn import_graph() -> BTreeMap<String, BTreeSet<String>> {
    let directory = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/proxy");
    let mut sources = BTreeMap::new();
    for entry in fs::read_dir(&directory).expect("app/src/proxy is readable") {
        let path = entry.expect("a directory entry").path();
        let Some(name) = path.file_stem().and_then(|stem| stem.to_str()) else {
            continue;
        };
        if path.extension().is_some_and(|extension| extension == "rs") && name != "mod" {
            let source = fs::read_to_string(&path).expect("a proxy source file is readable");
            sources.insert(name.to_string(), source);
        }
    }
    let modules: BTreeSet<String> = sources.keys().cloned().collect();
    let mut graph = BTreeMap::new();
    for (name, source) in &sources {
        let mut imports = BTreeSet::new();
        // A multi-line `use` is joined first.
        let mut statement = String::new();
        for line in source.lines() {
            let line = line.trim();
            if statement.is_empty() && !is_use(line) {
                continue;
            }
            statement.push_str(line);
            if !line.ends_with(';') {
                continue;
            }
            let text = core::mem::take(&mut statement);
            let text = text.split_once("use ").map_or("", |(_, rest)| rest);
            let rest = text
                .strip_prefix("super::")
                .or_else(|| text.strip_prefix("crate::proxy::"));
            if let Some(rest) = rest {
                for module in named_modules(rest, &modules) {
                    if &module != name {
                        imports.insert(module);
                    }
                }
            }
        }
        graph.insert(name.clone(), imports);
    }
    graph
}

/// A cycle in `graph` as the modules along it, if there is one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Unvisited,
        OnPath,
        Done,
    }
    fn visit(
        module: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        marks: &mut BTreeMap<String, Mark>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        marks.insert(module.to_string(), Mark::OnPath);
        path.push(module.to_string());
        for next in graph.get(module).into_iter().flatten() {
            match marks.get(next).copied().unwrap_or(Mark::Unvisited) {
                Mark::OnPath => {
                    let start = path.iter().position(|m| m == next).unwrap_or(0);
                    let mut cycle = path[start..].to_vec();
                    cycle.push(next.clone());
                    return Some(cycle);
                }
                Mark::Unvisited => {
                    if let Some(cycle) = visit(next, graph, marks, path) {
                        return Some(cycle);
                    }
                }
                Mark::Done => {}
            }
        }
        path.pop();
        marks.insert(module.to_string(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for module in graph.keys() {
        if marks.get(module).copied().unwrap_or(Mark::Unvisited) == Mark::Unvisited
            && let Some(cycle) = visit(module, graph, &mut marks, &mut Vec::new())
        {
            return Some(cycle);
        }
    }
    None
}

#[test]
fn the_cycle_finder_finds_a_cycle() {
    let mut graph = BTreeMap::new();
    graph.insert("a".to_string(), BTreeSet::from(["b".to_string()]));
    graph.insert("b".to_string(), BTreeSet::from(["c".to_string()]));
    graph.insert("c".to_string(), BTreeSet::from(["a".to_string()]));
    assert_eq!(
        find_cycle(&graph),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
    graph.insert("c".to_string(), BTreeSet::new());
    assert_eq!(find_cycle(&graph), None);
}

#[test]
fn the_import_reader_sees_grouped_imports() {
    let modules = BTreeSet::from(["pace".to_string(), "stream".to_string()]);
    assert_eq!(
        named_modules("{pace::Pace, stream::{self, READ_CHUNK}};", &modules),
        vec!["pace".to_string(), "stream".to_string()]
    );
}

#[test]
fn the_import_reader_sees_every_kind_of_use() {
    assert!(is_use("use super::pace::Pace;"));
    assert!(is_use("pub use super::pace::Pace;"));
    assert!(is_use("pub(crate) use super::pace::Pace;"));
    assert!(is_use("pub(super) use super::pace::Pace;"));
    assert!(!is_use("let user = 1;"));
    assert!(!is_use("// use super::pace::Pace;"));
}

#[test]
fn proxy_modules_import_each_other_one_way() {
    let graph = import_graph();
    for (module, imports) in &graph {
        println!("{module} -> {imports:?}");
    }
    assert!(graph.len() > 5, "the proxy's modules were found");
    assert_eq!(
        find_cycle(&graph),
        None,
        "a cycle of imports in app/src/proxy"
    );
}
