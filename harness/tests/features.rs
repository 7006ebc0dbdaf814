//! The README's two commands build every dependency alike: `cargo run -p opa-harness` (the
//! main command) and `cargo test --workspace` (the tests) must resolve each dependency with
//! the same features, or the test command recompiles burn and polars (ten minutes here)
//! after the main command. Where a test-only dependency turns on a feature, harness's
//! Cargo.toml names it too.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

/// `cargo tree` with `args`: every package (name and version) with its features.
fn features(args: &[&str]) -> BTreeMap<String, BTreeSet<String>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .arg("tree")
        .args(args)
        .args(["--offline", "--prefix", "none", "--format", "{p} {f}"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut map: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.len() < 2 || words[1].starts_with('(') {
            continue;
        }
        let entry = map.entry(format!("{} {}", words[0], words[1])).or_default();
        if let Some(f) = words.get(2).filter(|f| !f.starts_with('(')) {
            entry.extend(f.split(',').map(str::to_string));
        }
    }
    map
}

#[test]
fn the_main_command_and_the_tests_build_dependencies_with_the_same_features() {
    let run = features(&["-p", "opa-harness", "-e", "normal,build"]);
    let test = features(&["--workspace", "-e", "all"]);
    let differ: Vec<String> = run
        .iter()
        .filter_map(|(pkg, f)| {
            let extra: Vec<&String> = test.get(pkg)?.difference(f).collect();
            (!extra.is_empty()).then(|| format!("{pkg}: the tests add {extra:?}"))
        })
        .collect();
    assert!(
        differ.is_empty(),
        "name these in harness/Cargo.toml's [dependencies] with those features:\n{}",
        differ.join("\n")
    );
}
