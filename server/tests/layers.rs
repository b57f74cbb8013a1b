//! The server's layers point one way. Each module has a rank; a module may refer only to
//! modules of a lower rank (`crate::...` and `super::...` paths, in `use` lines or inline), so
//! there is no import cycle and no upward edge. A new module must be given a rank here, and an
//! upward reference fails this test with the file and line. ARCHITECTURE.md explains the
//! layers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Every module and its rank. Tens are the layers of ARCHITECTURE.md; the units order modules
/// within a layer (a module may use one of the same layer with a lower unit).
const RANKS: &[(&str, u32)] = &[
    // Layer 1: leaves.
    ("config", 10),
    ("ids", 10),
    ("wire", 10),
    ("inbound", 10),
    ("sanitize", 10),
    ("metrics", 11),
    ("auth", 12),
    ("limits", 13),
    ("lttb", 10),
    ("windows", 10),
    // Layer 2.
    ("history", 20),
    ("session", 21),
    // Layer 3: the broker seam and the hub.
    ("broker::documents", 29),
    ("broker", 30),
    ("broker::bus", 31),
    ("broker::topics", 31),
    ("broker::scripts", 31),
    ("broker::cluster_scripts", 32),
    ("broker::interest", 31),
    ("broker::relay", 31),
    ("hub", 32),
    // Layer 4: brokers.
    ("broker::memory_docs", 39),
    ("broker::memory", 40),
    ("broker::redis_docs", 40),
    ("broker::redis_streams", 40),
    ("broker::sentinel", 40),
    ("broker::redis", 41),
    ("broker::redis_cluster", 42),
    // Layer 5.
    ("node", 50),
    // Layer 6: capabilities, admission, transports, HTTP, the demo.
    ("capability", 60),
    ("capability::rooms", 61),
    ("capability::notify", 61),
    ("capability::signaling", 61),
    ("capability::documents", 61),
    ("capability::streams", 61),
    ("admission", 60),
    ("demo", 60),
    ("transport", 60),
    ("transport::coalesce", 61),
    ("transport::woken", 61),
    ("transport::sse", 62),
    ("transport::polling", 62),
    ("transport::websocket", 62),
    ("http", 63),
    ("http::streams", 64),
    // Layer 7: the composition root.
    ("lib", 70),
    ("main", 71),
];

fn rank(module: &str) -> Option<u32> {
    RANKS.iter().find(|(m, _)| *m == module).map(|(_, r)| *r)
}

/// The module a source file is, from its path under `src/`.
fn module_of(relative: &Path) -> String {
    let mut parts: Vec<String> = relative
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts.join("::")
}

/// The longest known module that `path` (segments after `crate::`) starts with.
fn resolve(segments: &[&str]) -> Option<String> {
    (1..=segments.len().min(3))
        .rev()
        .map(|n| segments[..n].join("::"))
        .find(|m| rank(m).is_some())
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("reading src") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Code of a line without its `//` comment (doc comments included; string literals holding
/// `//` are rare enough in this crate not to matter, and would only hide a reference).
fn code(line: &str) -> &str {
    match line.find("//") {
        Some(i) => &line[..i],
        None => line,
    }
}

/// The paths a line refers to, as segments after `crate::` (or, for `super::`, after the
/// parent module), expanding one level of braces: `use super::{bus, Command}`.
fn references(line: &str, parent: &str) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    for (prefix, base) in [("crate::", ""), ("super::", parent)] {
        let mut rest = line;
        while let Some(i) = rest.find(prefix) {
            // `super::` inside `crate::...::super::` does not occur; skip identifiers that merely
            // end with the prefix (`my_crate::`).
            let before = rest[..i].chars().last();
            rest = &rest[i + prefix.len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let base: Vec<String> = base
                .split("::")
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
            if let Some(inner) = rest.strip_prefix('{') {
                let inner = &inner[..inner.find('}').unwrap_or(inner.len())];
                for item in inner.split(',') {
                    let mut segments = base.clone();
                    segments.extend(path_segments(item.trim()));
                    found.push(segments);
                }
            } else {
                let mut segments = base.clone();
                segments.extend(path_segments(rest));
                found.push(segments);
            }
        }
    }
    found
}

fn path_segments(text: &str) -> Vec<String> {
    let end = text
        .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(text.len());
    text[..end]
        .split("::")
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_module_refers_only_to_lower_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    assert!(files.len() > 20, "found the sources");
    let mut problems = Vec::new();
    let mut edges: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for file in &files {
        let relative = file.strip_prefix(&src).unwrap();
        let module = module_of(relative);
        let Some(own) = rank(&module) else {
            problems.push(format!(
                "{}: module `{module}` has no rank in tests/layers.rs",
                relative.display()
            ));
            continue;
        };
        let parent = module.rsplit_once("::").map(|(p, _)| p).unwrap_or("");
        let text = std::fs::read_to_string(file).unwrap();
        for (number, line) in text.lines().enumerate() {
            for segments in references(code(line), parent) {
                let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
                let Some(target) = resolve(&segments) else {
                    continue;
                };
                if target == module {
                    continue;
                }
                let theirs = rank(&target).unwrap();
                edges
                    .entry(module.clone())
                    .or_default()
                    .push(target.clone());
                if theirs >= own {
                    problems.push(format!(
                        "{}:{}: `{module}` (rank {own}) refers to `{target}` (rank {theirs}): \
                         only lower layers may be used",
                        relative.display(),
                        number + 1
                    ));
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "upward or sideways references:\n{}",
        problems.join("\n")
    );
    // The check must have seen the edges it guards (a parser that finds nothing passes
    // vacuously).
    for (from, to) in [
        ("node", "hub"),
        ("hub", "session"),
        ("broker::redis", "broker::memory"),
    ] {
        assert!(
            edges.get(from).is_some_and(|t| t.iter().any(|x| x == to)),
            "expected `{from}` to use `{to}`"
        );
    }
}

#[test]
fn references_are_read_from_use_lines_and_paths() {
    let refs = references(
        "use super::{bus, Command}; let x = crate::node::Node::new();",
        "broker",
    );
    assert_eq!(
        refs,
        vec![
            vec!["node".to_owned(), "Node".into(), "new".into()],
            vec!["broker".to_owned(), "bus".into()],
            vec!["broker".to_owned(), "Command".into()],
        ]
    );
    assert_eq!(
        resolve(&["broker", "memory", "Memory"]).as_deref(),
        Some("broker::memory")
    );
    assert_eq!(resolve(&["broker", "Command"]).as_deref(), Some("broker"));
    assert_eq!(resolve(&["serde"]), None);
    assert_eq!(code("use a; // crate::node"), "use a; ");
}
