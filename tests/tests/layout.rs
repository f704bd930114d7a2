//! Every backend crate has the layout CONTRIBUTING.md's backend-contract table lists:
//! the same files under `src/`, one error entry point with the same name, and no
//! import cycle between its modules. A backend crate is a `crates/extdata-*` whose
//! `src/lib.rs` declares `pub const SPEC: BackendSpec`, so a new backend is checked
//! without being listed here.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The files every backend crate has under `src/`.
const REQUIRED: &[&str] = &[
    "lib.rs",
    "connect.rs",
    "types.rs",
    "error.rs",
    "pool.rs",
    "stream.rs",
];

/// The error entry point: `error::map_error` (driver error → `extdata_core::Error`).
const ERROR_ENTRY: &str = "pub(crate) fn map_error(";

/// Backends that do not follow the layout yet, with what they lack and why. Remove a
/// line once its backend is brought in line.
const EXCEPTIONS: &[(&str, &str, &str)] = &[];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the conformance package sits in the workspace")
        .to_owned()
}

/// The backend crates: name and `src/` directory.
fn backends() -> Vec<(String, PathBuf)> {
    let mut found = Vec::new();
    for entry in fs::read_dir(workspace().join("crates")).expect("crates/") {
        let dir = entry.expect("a crates/ entry").path();
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let lib = dir.join("src/lib.rs");
        if name.starts_with("extdata-")
            && fs::read_to_string(&lib)
                .is_ok_and(|text| text.contains("pub const SPEC: BackendSpec"))
        {
            found.push((name, dir.join("src")));
        }
    }
    found.sort();
    found
}

fn excepted(krate: &str, rule: &str) -> bool {
    EXCEPTIONS
        .iter()
        .any(|(name, what, _)| *name == krate && (*what == rule || *what == "layout"))
}

/// The source before its unit tests (`#[cfg(test)]`), comments dropped.
fn code(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let text = text.split("#[cfg(test)]").next().unwrap_or_default();
    text.lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level modules a source file names through `crate::…` (`use crate::{a, b::c}`
/// counts `a` and `b`).
fn crate_references(code: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let ident = |text: &str| -> String {
        text.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        names.insert(ident(item.trim()));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                item.push(c);
            }
            names.insert(ident(item.trim()));
        } else {
            names.insert(ident(rest));
        }
    }
    names.remove("");
    names
}

/// A cycle in `edges`, if any, as the modules along it.
fn find_cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|n| n == node) {
            let mut cycle = path[start..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    edges
        .keys()
        .find_map(|node| visit(node, edges, &mut Vec::new(), &mut done))
}

/// Asserts that `check` finds no problem in any backend's `src/` (the backends
/// excepted from `rule` left out).
fn assert_every_backend(rule: &str, check: impl Fn(&str, &Path) -> Vec<String>) {
    let problems: Vec<String> = backends()
        .iter()
        .filter(|(krate, _)| !excepted(krate, rule))
        .flat_map(|(krate, src)| check(krate, src))
        .collect();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_backend_has_the_contract_files() {
    let backends = backends();
    assert!(
        backends.len() >= 7,
        "found only {backends:?}: is the SPEC detection broken?"
    );
    assert_every_backend("files", |krate, src| {
        REQUIRED
            .iter()
            .filter(|file| !src.join(file).is_file())
            .map(|file| format!("{krate}: src/{file} is missing"))
            .collect()
    });
}

#[test]
fn every_backend_has_one_error_entry_point() {
    assert_every_backend("error entry point", |krate, src| {
        let error = code(&src.join("error.rs"));
        if error.matches(ERROR_ENTRY).count() == 1 {
            return Vec::new();
        }
        vec![format!(
            "{krate}: src/error.rs does not define `{ERROR_ENTRY}…`"
        )]
    });
}

#[test]
fn no_backend_has_an_import_cycle_between_its_modules() {
    assert_every_backend("import cycles", |krate, src| {
        let modules: BTreeSet<String> = fs::read_dir(src)
            .expect("src/")
            .filter_map(|e| {
                let path = e.ok()?.path();
                let stem = path.file_stem()?.to_string_lossy().into_owned();
                (path.extension()? == "rs" && stem != "lib").then_some(stem)
            })
            .collect();
        let edges: BTreeMap<String, BTreeSet<String>> = modules
            .iter()
            .map(|module| {
                let uses = crate_references(&code(&src.join(format!("{module}.rs"))))
                    .into_iter()
                    .filter(|name| name != module && modules.contains(name))
                    .collect();
                (module.clone(), uses)
            })
            .collect();
        find_cycle(&edges)
            .map(|cycle| format!("{krate}: {}", cycle.join(" → ")))
            .into_iter()
            .collect()
    });
}

#[test]
fn references_and_cycles_are_found() {
    let code = "use crate::error::{Stage, map_error};\nuse crate::{pool::{Inner, Lease}, types};\n\
                let x = crate::connect::endpoint_text(c);";
    assert_eq!(
        crate_references(code),
        ["connect", "error", "pool", "types"]
            .map(str::to_owned)
            .into()
    );
    let edges: BTreeMap<String, BTreeSet<String>> = [
        ("connect", vec!["error"]),
        ("error", vec!["connect"]),
        ("pool", vec!["connect"]),
    ]
    .into_iter()
    .map(|(m, to)| (m.to_owned(), to.into_iter().map(str::to_owned).collect()))
    .collect();
    let cycle = find_cycle(&edges).expect("a cycle");
    assert_eq!(cycle.first(), cycle.last());
    assert!(cycle.contains(&"error".to_owned()) && cycle.contains(&"connect".to_owned()));
    let mut acyclic = edges.clone();
    acyclic.remove("error");
    assert_eq!(find_cycle(&acyclic), None);
}
