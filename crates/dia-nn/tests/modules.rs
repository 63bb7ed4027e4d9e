//! The modules of dia-nn form no cycle (issue #15): each module's `crate::…` references are
//! read from its source, and the graph must be acyclic. A new import that closes a loop fails
//! here with the loop named.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Module name (top level: `conv`, `winograd`, …) of a source file under `src/`.
fn module_of(rel: &Path) -> String {
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy()
        .into_owned();
    first.trim_end_matches(".rs").to_string()
}

fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// `crate::NAME` references of a file, comments and tests left out.
fn references(text: &str) -> BTreeSet<String> {
    let code = text.split("#[cfg(test)]").next().unwrap_or_default();
    let mut out = BTreeSet::new();
    // Comments out; lines joined, so that a `use crate::{…}` group may span lines.
    let stripped: Vec<&str> = code
        .lines()
        .map(|l| l.split("//").next().unwrap_or_default())
        .collect();
    let stripped = stripped.join("\n");
    {
        let mut rest = stripped.as_str();
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + 7..];
            // `crate::{a, b::c}` names several; `crate::Foo` a re-export at the root, not a
            // module.
            let (group, several) = match rest.strip_prefix('{') {
                Some(g) => (g.split('}').next().unwrap_or_default(), true),
                None => (rest, false),
            };
            for item in group.split(',') {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if name.chars().next().is_some_and(|c| c.is_lowercase()) {
                    out.insert(name);
                }
                if !several {
                    break;
                }
            }
        }
    }
    out
}

#[test]
fn the_modules_form_no_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in &files {
        let m = module_of(f.strip_prefix(&src).unwrap());
        if m == "lib" {
            continue;
        }
        let refs = references(&std::fs::read_to_string(f).unwrap());
        graph
            .entry(m.clone())
            .or_default()
            .extend(refs.into_iter().filter(|r| *r != m));
    }
    assert!(graph.len() > 10, "read only {:?}", graph.keys());
    // Depth-first search; a back edge is a cycle.
    fn visit(
        m: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) {
        if done.contains(m) {
            return;
        }
        if let Some(i) = path.iter().position(|p| p == m) {
            panic!("module cycle: {} -> {m}", path[i..].join(" -> "));
        }
        path.push(m.to_string());
        for n in graph.get(m).into_iter().flatten() {
            visit(n, graph, path, done);
        }
        path.pop();
        done.insert(m.to_string());
    }
    let mut done = BTreeSet::new();
    for m in graph.keys() {
        visit(m, &graph, &mut Vec::new(), &mut done);
    }
}
