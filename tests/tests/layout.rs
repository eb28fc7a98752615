//! The crates' module graphs have no two-file circles: no module uses a
//! module that uses it back. Read from the source: each file's `crate::…`
//! and `super::…` paths (in `use` items, grouped or not, and inline), outside
//! its `#[cfg(test)]` module, resolved to the file of the longest module
//! path that exists. Paths through the crate root (`lib.rs`'s re-exports)
//! are not followed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The crates whose module graphs are checked, by their `src/` folder.
const CRATES: &[&str] = &[
    "proto",
    "hook-client",
    "collector",
    "rollup",
    "signer",
    "vacuum",
    "tests",
];

/// A module path (`["db", "store"]`) for every `.rs` file under `src`.
fn modules(src: &Path) -> BTreeMap<Vec<String>, PathBuf> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().and_then(|e| e.to_str()) != Some("rs") {
                continue;
            }
            let rel = path.strip_prefix(src).unwrap().with_extension("");
            let mut parts: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if parts.first().map(String::as_str) == Some("bin") {
                continue; // binaries are crates of their own
            }
            if matches!(
                parts.last().map(String::as_str),
                Some("mod" | "lib" | "main")
            ) {
                parts.pop();
            }
            out.insert(parts, path);
        }
    }
    out
}

/// The code of a file without comments and without its test module.
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => &text[..at],
        None => &text,
    };
    text.lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn ident(s: &str) -> (&str, &str) {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    s.split_at(end)
}

/// The paths named at the start of `s` (just past `crate::` or `super::`),
/// each after `prefix`, expanding `{a, b::c}` groups. Returns the bytes read.
fn paths(prefix: Vec<String>, s: &str, out: &mut Vec<Vec<String>>) -> usize {
    let b = s.as_bytes();
    let skip_ws = |i: &mut usize| {
        while *i < b.len() && b[*i].is_ascii_whitespace() {
            *i += 1;
        }
    };
    let mut path = prefix;
    let mut i = 0;
    loop {
        skip_ws(&mut i);
        if b.get(i) == Some(&b'{') {
            i += 1;
            loop {
                skip_ws(&mut i);
                match b.get(i) {
                    None => return i,
                    Some(b'}') => return i + 1,
                    Some(b',') => i += 1,
                    Some(_) => i += paths(path.clone(), &s[i..], out).max(1),
                }
            }
        }
        let (name, after) = ident(&s[i..]);
        if name.is_empty() {
            if !path.is_empty() {
                out.push(path);
            }
            return i;
        }
        path.push(name.to_string());
        i += name.len();
        if !after.starts_with("::") {
            out.push(path);
            return i;
        }
        i += 2;
    }
}

/// The modules a file refers to, as module paths (not yet resolved).
fn references(module: &[String], code: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for (at, _) in code.match_indices("crate::") {
        let before = code[..at].chars().last();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        paths(Vec::new(), &code[at + "crate::".len()..], &mut out);
    }
    for (at, _) in code.match_indices("super::") {
        let before = code[..at].chars().last();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        // `super` of `a/b.rs` is `a`; of `a/b/mod.rs` it is `a` too.
        let mut parent = module.to_vec();
        parent.pop();
        paths(parent, &code[at + "super::".len()..], &mut out);
    }
    out
}

/// The file a path names: its longest prefix that is a module.
fn resolve<'m>(
    path: &[String],
    modules: &'m BTreeMap<Vec<String>, PathBuf>,
) -> Option<&'m Vec<String>> {
    (1..=path.len())
        .rev()
        .find_map(|n| modules.get_key_value(&path[..n]).map(|(k, _)| k))
}

/// Every pair of modules that use each other, in crate `dir`.
fn two_cycles(dir: &Path) -> Vec<(String, String)> {
    let modules = modules(&dir.join("src"));
    let mut edges: BTreeMap<&Vec<String>, BTreeSet<&Vec<String>>> = BTreeMap::new();
    for (module, path) in &modules {
        for reference in references(module, &code(path)) {
            if let Some(target) = resolve(&reference, &modules) {
                if target != module && !target.is_empty() {
                    edges.entry(module).or_default().insert(target);
                }
            }
        }
    }
    let mut out = Vec::new();
    for (from, targets) in &edges {
        for to in targets {
            if from < to && edges.get(to).is_some_and(|back| back.contains(from)) {
                out.push((from.join("::"), to.join("::")));
            }
        }
    }
    out
}

#[test]
fn no_two_modules_of_a_crate_use_each_other() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut found = Vec::new();
    for krate in CRATES {
        for (a, b) in two_cycles(&root.join(krate)) {
            found.push(format!("{krate}: {a} <-> {b}"));
        }
    }
    assert!(
        found.is_empty(),
        "modules that use each other (move what both need into a third, \
         or into the lower one):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_check_sees_grouped_inline_and_super_paths() {
    let mut out = Vec::new();
    paths(
        Vec::new(),
        "db::{store::{self, ChainedRow}, setup}, x",
        &mut out,
    );
    let joined: Vec<String> = out.iter().map(|p| p.join("::")).collect();
    assert_eq!(
        joined,
        ["db::store::self", "db::store::ChainedRow", "db::setup"]
    );
    let refs = references(
        &["chain".into(), "plan".into()],
        "use super::workers::Seen; fn f() { crate::db::store::copy_rows(); }",
    );
    let joined: Vec<String> = refs.iter().map(|p| p.join("::")).collect();
    assert_eq!(joined, ["db::store::copy_rows", "chain::workers::Seen"]);
}
