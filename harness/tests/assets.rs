//! Where `opa` finds its shipped files (datasets/src/assets.rs): the documented order, and the
//! embedded copies an installed binary falls back to.

use std::path::Path;
use std::process::{Command, Output};

mod common;
use common::{checkout, text};

fn opa_with(exe: &Path, args: &[&str], env: &[(&str, &Path)], cwd: &Path) -> Output {
    let mut c = Command::new(exe);
    c.args(args).current_dir(cwd).env_remove("OPA_HOME");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("opa runs")
}

#[test]
fn embedded_copies_are_written_once_and_serve_a_replay_from_an_empty_directory() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let exe = Path::new(env!("CARGO_BIN_EXE_opa"));
    let env = [("XDG_CACHE_HOME", cache.as_path())];
    let o = opa_with(
        exe,
        &["--assets", "embedded", "datasets", "info"],
        &env,
        &empty,
    );
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(
        t.contains("embedded in the opa binary") && t.contains("OK"),
        "{t}"
    );
    let roots: Vec<_> = std::fs::read_dir(cache.join("opa")).unwrap().collect();
    assert_eq!(roots.len(), 1, "one directory of copies, no leftovers");
    let root = roots[0].as_ref().unwrap().path();
    // The copies are the checkout's files.
    for f in [
        "supernet/checkpoints/fashion-mnist/supernet.opack",
        "scenarios/quickstart.toml",
    ] {
        assert_eq!(
            std::fs::read(root.join(f)).unwrap(),
            std::fs::read(checkout().join(f)).unwrap(),
            "{f}"
        );
    }
    let scenario = root.join("scenarios/quickstart.toml");
    let profile = root.join("supernet/checkpoints/fashion-mnist/profile.parquet");
    let o = opa_with(
        exe,
        &[
            "--assets",
            "embedded",
            "replay",
            scenario.to_str().unwrap(),
            "--profile",
            profile.to_str().unwrap(),
            "--out",
            "q",
        ],
        &env,
        &empty,
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(empty.join("q/summary.json").is_file());
}

#[test]
fn a_named_directory_without_the_files_is_bad_input_naming_the_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let exe = Path::new(env!("CARGO_BIN_EXE_opa"));
    let o = opa_with(
        exe,
        &["--assets", dir.path().to_str().unwrap(), "datasets", "info"],
        &[],
        dir.path(),
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("t10k-images-idx3-ubyte.gz"),
        "{}",
        text(&o)
    );
    let o = opa_with(
        exe,
        &["datasets", "info"],
        &[("OPA_HOME", dir.path())],
        dir.path(),
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("OPA_HOME"), "{}", text(&o));
    // OPA_HOME naming a real assets directory is used.
    let o = opa_with(
        exe,
        &["datasets", "info"],
        &[("OPA_HOME", &checkout())],
        dir.path(),
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("OPA_HOME"), "{}", text(&o));
}

#[test]
fn an_installed_layout_reads_share_opa_beside_the_executables_directory() {
    let prefix = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(prefix.path().join("bin")).unwrap();
    std::fs::create_dir_all(prefix.path().join("share")).unwrap();
    let exe = prefix.path().join("bin/opa");
    std::fs::copy(env!("CARGO_BIN_EXE_opa"), &exe).unwrap();
    std::os::unix::fs::symlink(checkout(), prefix.path().join("share/opa")).unwrap();
    let o = opa_with(&exe, &["datasets", "info"], &[], prefix.path());
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("share/opa next to the executable"),
        "{}",
        text(&o)
    );
}
