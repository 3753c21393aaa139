//! The layout stays as docs/architecture.md describes it: every source file opens with a
//! line saying what lives there, no two files of a crate share a name, no module imports a
//! module that imports it back, and the event loop stays a dispatcher of bounded size.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    fs,
    path::{Path, PathBuf},
};

/// Longest the file holding the loop's `select!` may grow.
const MAX_EVENT_LOOP_LINES: usize = 500;

fn crate_src(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(name)
        .join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
        .expect("a source folder")
        .map(|e| e.expect("a folder entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a library file (`net/peer_manager.rs` -> `net::peer_manager`); none
/// for the crate roots and the binary's own modules.
fn module_of(src: &Path, file: &Path) -> Option<Vec<String>> {
    let relative = file.strip_prefix(src).ok()?;
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_owned())
        .collect();
    if matches!(parts.as_slice(), [one] if one == "lib" || one == "main" || one == "cli") {
        return None;
    }
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    Some(parts)
}

/// The code of a file before its tests, without comments.
fn code(file: &Path) -> String {
    let text = fs::read_to_string(file).expect("a readable source file");
    let text = text.split("#[cfg(test)]").next().unwrap_or_default();
    text.lines()
        .map(|l| l.split("//").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every path a `use` tree names: `a::{b, c::{d}}` gives `a::b` and `a::c::d`.
fn expand(tree: &str) -> Vec<String> {
    let tree = tree.trim();
    let Some(open) = tree.find('{') else {
        return vec![tree.split(" as ").next().unwrap_or_default().to_owned()];
    };
    let prefix = &tree[..open];
    let inner = tree[open + 1..]
        .strip_suffix('}')
        .unwrap_or(&tree[open + 1..]);
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    parts
        .into_iter()
        .filter(|p| !p.trim().is_empty())
        .flat_map(expand)
        .map(|p| format!("{prefix}{p}"))
        .collect()
}

/// The paths a file names: its `use` trees and every `crate::…`/`super::…` path.
fn named_paths(code: &str) -> Vec<String> {
    let mut paths = Vec::new();
    for statement in code.split("use ").skip(1) {
        if let Some(end) = statement.find(';') {
            let tree: String = statement[..end].split_whitespace().collect();
            if tree.starts_with("crate::") || tree.starts_with("super::") {
                paths.extend(expand(&tree));
            }
        }
    }
    for start in ["crate::", "super::"] {
        for (i, _) in code.match_indices(start) {
            let path: String = code[i..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            paths.push(path);
        }
    }
    paths
}

/// The module a path lands in: its longest prefix that is a module of the crate.
fn target(
    path: &str,
    from: &[String],
    modules: &BTreeSet<Vec<String>>,
    is_mod_rs: bool,
) -> Option<Vec<String>> {
    let mut segments: Vec<String> = Vec::new();
    let mut rest = path.split("::").peekable();
    match rest.peek().copied() {
        Some("crate") => {
            rest.next();
        }
        Some("super") => {
            segments = from.to_vec();
            if is_mod_rs || !segments.is_empty() {
                segments.pop();
            }
            rest.next();
            while rest.peek() == Some(&"super") {
                segments.pop();
                rest.next();
            }
        }
        _ => return None,
    }
    segments.extend(rest.filter(|s| !s.is_empty()).map(str::to_owned));
    (1..=segments.len())
        .rev()
        .map(|n| segments[..n].to_vec())
        .find(|m| modules.contains(m))
}

/// The import graph between modules; a module and its ancestors are not an import.
fn imports(src: &Path) -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let modules: HashMap<Vec<String>, PathBuf> = files
        .iter()
        .filter_map(|f| module_of(src, f).map(|m| (m, f.clone())))
        .collect();
    let names: BTreeSet<Vec<String>> = modules.keys().cloned().collect();
    let mut graph = BTreeMap::new();
    for (module, file) in &modules {
        let is_mod_rs = file.file_name().is_some_and(|n| n == "mod.rs");
        let edges: BTreeSet<Vec<String>> = named_paths(&code(file))
            .iter()
            .filter_map(|p| target(p, module, &names, is_mod_rs))
            .filter(|t| !t.starts_with(module) && !module.starts_with(t))
            .collect();
        graph.insert(module.clone(), edges);
    }
    graph
}

/// A cycle of the graph, if there is one.
fn find_cycle(graph: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>) -> Option<Vec<String>> {
    fn visit(
        node: &Vec<String>,
        graph: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        state: &mut HashMap<Vec<String>, bool>,
        stack: &mut Vec<Vec<String>>,
    ) -> Option<Vec<String>> {
        state.insert(node.clone(), false);
        stack.push(node.clone());
        for next in graph.get(node).into_iter().flatten() {
            match state.get(next) {
                Some(false) => {
                    let at = stack.iter().position(|m| m == next).unwrap_or(0);
                    let mut cycle: Vec<String> = stack[at..].iter().map(|m| m.join("::")).collect();
                    cycle.push(next.join("::"));
                    return Some(cycle);
                }
                Some(true) => {}
                None => {
                    if let Some(cycle) = visit(next, graph, state, stack) {
                        return Some(cycle);
                    }
                }
            }
        }
        stack.pop();
        state.insert(node.clone(), true);
        None
    }
    let mut state = HashMap::new();
    for node in graph.keys() {
        if !state.contains_key(node) {
            if let Some(cycle) = visit(node, graph, &mut state, &mut Vec::new()) {
                return Some(cycle);
            }
        }
    }
    None
}

/// The graph between the top-level modules (`logic`, `net`, `store`, ...).
fn top_level(
    graph: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
) -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    let mut top: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for (from, targets) in graph {
        let from = from[..1].to_vec();
        let entry = top.entry(from.clone()).or_default();
        entry.extend(
            targets
                .iter()
                .map(|t| t[..1].to_vec())
                .filter(|t| *t != from),
        );
    }
    top
}

#[test]
fn no_module_imports_a_module_that_imports_it_back() {
    for krate in ["node", "protocol"] {
        let graph = imports(&crate_src(krate));
        if let Some(cycle) = find_cycle(&top_level(&graph)) {
            panic!(
                "{krate}: import cycle between folders {}",
                cycle.join(" -> ")
            );
        }
        assert!(graph.len() > 10, "{krate}: too few modules found");
        assert!(
            graph.values().map(BTreeSet::len).sum::<usize>() > 10,
            "{krate}: too few imports found"
        );
        if let Some(cycle) = find_cycle(&graph) {
            panic!("{krate}: import cycle {}", cycle.join(" -> "));
        }
    }
}

#[test]
fn the_cycle_finder_finds_a_cycle() {
    let module = |name: &str| vec![name.to_owned()];
    let mut graph = BTreeMap::new();
    graph.insert(module("a"), BTreeSet::from([module("b")]));
    graph.insert(module("b"), BTreeSet::from([module("c")]));
    graph.insert(module("c"), BTreeSet::from([module("a")]));
    assert_eq!(
        find_cycle(&graph),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
    graph.insert(module("c"), BTreeSet::new());
    assert_eq!(find_cycle(&graph), None);
}

#[test]
fn every_source_file_says_what_lives_there_and_no_two_share_a_name() {
    for krate in ["node", "protocol", "bootstrap"] {
        let mut files = Vec::new();
        rust_files(&crate_src(krate), &mut files);
        let mut seen: HashMap<String, PathBuf> = HashMap::new();
        for file in files {
            let text = fs::read_to_string(&file).expect("a readable source file");
            assert!(
                text.starts_with("//!"),
                "{} does not open with a //! line",
                file.display()
            );
            let name = file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if name == "mod.rs" {
                continue;
            }
            if let Some(other) = seen.insert(name.clone(), file.clone()) {
                panic!("{} and {} share a name", other.display(), file.display());
            }
        }
    }
}

#[test]
fn the_event_loop_stays_a_dispatcher() {
    let file = crate_src("node").join("event_loop.rs");
    let lines = fs::read_to_string(&file)
        .expect("the event loop's file")
        .lines()
        .count();
    assert!(
        lines < MAX_EVENT_LOOP_LINES,
        "{} has {lines} lines (at most {MAX_EVENT_LOOP_LINES})",
        file.display()
    );
}
