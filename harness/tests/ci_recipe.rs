//! The CI recipe users copy (examples/ci/github-actions.yml) runs examples/ci/gate.sh; this
//! runs the script the way the workflow does, so that the recipe cannot rot.

use std::path::Path;
use std::process::{Command, Output};

mod common;
use common::{checkout, text};

fn gate(mode: &str, work: &Path, scenario: &Path) -> Output {
    Command::new("bash")
        .arg(checkout().join("examples/ci/gate.sh"))
        .arg(mode)
        .current_dir(work)
        .env("OPA", env!("CARGO_BIN_EXE_opa"))
        .env("SCENARIOS", scenario)
        .env("DEADLINES", "1,2")
        .output()
        .expect("bash runs")
}

#[test]
fn the_gate_script_passes_an_unchanged_replay_and_fails_a_planted_regression() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path();
    let quickstart = checkout().join("scenarios/quickstart.toml");

    let o = gate("save", work, &quickstart);
    assert!(o.status.success(), "{}", text(&o));
    assert!(work.join("baselines/quickstart/summary.json").is_file());

    let o = gate("check", work, &quickstart);
    assert!(o.status.success(), "{}", text(&o));
    let table = std::fs::read_to_string(work.join("ci-gate/compare-quickstart.md")).unwrap();
    assert!(table.contains("paired"), "{table}");
    let bench = work.join("ci-gate/bench/quickstart/bigger-is-better.json");
    let entries: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&bench).unwrap()).unwrap();
    assert!(!entries.as_array().unwrap().is_empty());

    // The same scenario with the selector named `opa` serving the largest candidate only:
    // a regression the gate must fail the job on.
    let changed = work.join("changed");
    std::fs::create_dir(&changed).unwrap();
    let text_of = std::fs::read_to_string(&quickstart).unwrap();
    let planted = text_of.replacen(
        "kind = \"opa\"",
        "kind = \"fixed-largest\"\nname = \"opa\"",
        1,
    );
    assert_ne!(planted, text_of);
    let changed_file = changed.join("quickstart.toml");
    std::fs::write(&changed_file, planted).unwrap();
    let o = gate("check", work, &changed_file);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("quickstart regressed"), "{}", text(&o));

    // No baseline to compare with: bad input, not a pass.
    let o = gate("check", &changed, &quickstart);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}

#[test]
fn the_workflow_runs_the_gate_script_and_charts_what_it_writes() {
    let read = |p: &str| std::fs::read_to_string(checkout().join(p)).unwrap();
    let workflow = read("examples/ci/github-actions.yml");
    let script = read("examples/ci/gate.sh");
    for step in ["examples/ci/gate.sh save", "examples/ci/gate.sh check"] {
        assert!(
            workflow.contains(step),
            "the workflow does not run `{step}`"
        );
    }
    // The workflow charts the default scenario's file under the default work directory.
    assert!(script.contains("WORK:-ci-gate") && script.contains("scenarios/dynamic.toml"));
    assert!(workflow.contains("ci-gate/bench/dynamic/bigger-is-better.json"));
    assert!(workflow.contains("ci-gate/compare-"));
}
