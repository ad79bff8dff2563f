//! The code's layering as docs/code.md states it: no two files of `src/`
//! import each other, directly or through others (a folder's `mod.rs`
//! re-exporting its own files aside).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`, with its module path (`train/strategy` for
/// `train/strategy/mod.rs`, `train/trainer` for `train/trainer.rs`).
fn modules(root: &Path, dir: &Path, out: &mut BTreeMap<Vec<String>, PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            modules(root, &path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let relative = path.strip_prefix(root).unwrap().with_extension("");
            let mut parts: Vec<String> = relative.iter().map(|p| p.to_string_lossy().into_owned()).collect();
            if matches!(parts.last().map(String::as_str), Some("mod" | "lib" | "main")) {
                parts.pop();
            }
            out.insert(parts, path);
        }
    }
}

/// The `crate::…` and `super::…` paths a file's `use` items name (its tests left out).
fn used_paths(text: &str, module: &[String]) -> Vec<Vec<String>> {
    let code = text.split("#[cfg(test)]\nmod tests {").next().unwrap_or(text);
    let mut paths = Vec::new();
    for item in code.split("use ").skip(1) {
        let item = &item[..item.find(';').unwrap_or(item.len())];
        let (head, group) = match item.find("::{") {
            Some(at) => (&item[..at], Some(&item[at + 3..])),
            None => (item, None),
        };
        let mut segments = head.split("::").map(str::trim);
        let mut path: Vec<String> = match segments.next() {
            Some("crate") => Vec::new(),
            Some("super") => module[..module.len().saturating_sub(1)].to_vec(),
            _ => continue,
        };
        for segment in segments {
            match segment {
                "super" => {
                    path.pop();
                }
                name => path.push(name.to_string()),
            }
        }
        paths.push(path.clone());
        for name in group.into_iter().flat_map(|g| g.split(',')) {
            let first = name.split("::").next().unwrap_or("").split_whitespace().next().unwrap_or("").trim_matches(|c| c == '{' || c == '}');
            if !first.is_empty() && first != "self" {
                paths.push([path.clone(), vec![first.to_string()]].concat());
            }
        }
    }
    paths
}

#[test]
fn no_two_files_import_each_other() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = BTreeMap::new();
    modules(&root, &root, &mut files);
    // Each file's imports, resolved to the file that holds them.
    let mut imports: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for (module, path) in &files {
        let text = std::fs::read_to_string(path).unwrap();
        let targets = imports.entry(module.clone()).or_default();
        for used in used_paths(&text, module) {
            let file = (1..=used.len()).rev().map(|k| used[..k].to_vec()).find(|prefix| files.contains_key(prefix));
            if let Some(file) = file.filter(|file| file != module) {
                targets.insert(file);
            }
        }
    }
    // A file that reaches itself through its imports is in a circle.
    let mut circles = Vec::new();
    for start in imports.keys() {
        let (mut seen, mut stack) = (BTreeSet::new(), vec![start.clone()]);
        while let Some(module) = stack.pop() {
            for next in &imports[&module] {
                if next == start {
                    circles.push(start.join("/"));
                }
                if seen.insert(next.clone()) {
                    stack.push(next.clone());
                }
            }
        }
    }
    circles.dedup();
    assert!(circles.is_empty(), "files in an import circle: {circles:?}");
    assert!(files.len() > 100 && imports.values().map(BTreeSet::len).sum::<usize>() > 300, "the scan found too little to trust");
}
