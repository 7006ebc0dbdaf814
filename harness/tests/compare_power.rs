//! `opa compare`'s power on `scenarios/dynamic.toml` replayed from the shipped profile: a
//! planted regression of one selector, identical runs, and unchanged runs with other seeds.
//! A measurement, not a check of the suite (about a minute):
//! `cargo test --release -p opa-harness --test compare_power -- --ignored --nocapture`.

use opa_reports::compare::{Change, CompareConfig, Run, compare, read_runs};
use rand::{Rng, SeedableRng};
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `opa COMMAND scenario` at 1, 2 and 4 ms into `out` (replaced), with `extra` arguments.
fn play(command: &str, scenario: &Path, out: &Path, extra: &[&str]) -> Vec<Run> {
    let st = Command::new(env!("CARGO_BIN_EXE_opa"))
        .arg(command)
        .arg(scenario)
        .args(["--deadline-ms", "1,2,4", "--force", "--out"])
        .arg(out)
        .args(extra)
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    read_runs(out).unwrap()
}

/// A replay from the shipped profile.
fn replay(scenario: &Path, out: &Path, extra: &[&str]) -> Vec<Run> {
    let profile = root().join("supernet/checkpoints/fashion-mnist/profile.parquet");
    let profile = profile.to_str().unwrap();
    play(
        "replay",
        scenario,
        out,
        &[&["--profile", profile], extra].concat(),
    )
}

/// Takes `pts` points of `selector`'s frames right within the deadline away at every
/// deadline: that many frames, drawn at random (seeded) among its right ones, made wrong.
fn plant(runs: &mut [Run], selector: &str, pts: f64, seed: u64) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    for (_, rows) in runs.iter_mut() {
        let mut deadlines: Vec<f64> = rows.iter().map(|r| r.deadline_ms).collect();
        deadlines.sort_by(f64::total_cmp);
        deadlines.dedup();
        for d in deadlines {
            let frames: Vec<usize> = (0..rows.len())
                .filter(|&i| {
                    rows[i].selector == selector && rows[i].deadline_ms == d && rows[i].is_frame()
                })
                .collect();
            let mut right: Vec<usize> = frames
                .iter()
                .copied()
                .filter(|&i| rows[i].correct && rows[i].deadline_met)
                .collect();
            let k = (pts / 100.0 * frames.len() as f64).round() as usize;
            for _ in 0..k {
                let j = rng.random_range(0..right.len());
                let i = right.swap_remove(j);
                rows[i].correct = false;
            }
        }
    }
}

fn verdicts(base: &[Run], cur: &[Run], selector: &str) -> Vec<(f64, f64, f64, f64, f64, Change)> {
    compare(base, cur, &CompareConfig::default())
        .unwrap()
        .into_iter()
        .filter(|d| d.selector == selector && d.metric == "top1_within_deadline")
        .map(|d| {
            (
                d.deadline_ms,
                d.delta,
                d.ci_low,
                d.ci_high,
                d.detectable,
                d.change,
            )
        })
        .collect()
}

#[test]
#[ignore = "a measurement: about a minute of replays"]
fn power_on_dynamic() {
    let dir = tempfile::tempdir().unwrap();
    let sc = root().join("scenarios/dynamic.toml");
    let base = replay(&sc, &dir.path().join("a"), &[]);
    let same = replay(&sc, &dir.path().join("b"), &[]);
    println!("identical: {:?}", verdicts(&base, &same, "opa"));
    let (mut regressed, mut detectable) = (0, 0.0f64);
    for seed in 0..20 {
        let mut cur = same.clone();
        plant(&mut cur, "opa", 2.0, seed);
        let v = verdicts(&base, &cur, "opa");
        regressed += v.iter().filter(|x| x.5 == Change::Regressed).count();
        detectable = v.iter().fold(detectable, |m, x| m.max(x.4));
        if seed == 0 {
            println!("planted 2 pts (seed 0): {v:?}");
        }
    }
    println!(
        "planted 2 pts: {regressed} of 60 (20 plants x 3 deadlines) regressed; largest detectable {detectable:.2} pts"
    );
    // Unchanged runs with other seeds: 50 pairs of repeats, each against the next.
    let rep = replay(&sc, &dir.path().join("r"), &["--repeat", "51"]);
    let (mut flagged, mut failing) = (0, 0);
    for k in 0..50 {
        let v = verdicts(&rep[k..k + 1], &rep[k + 1..k + 2], "opa");
        flagged += v.iter().filter(|x| x.5 != Change::NoChange).count();
        failing += usize::from(v.iter().any(|x| x.5 == Change::Regressed));
    }
    println!(
        "unchanged, other seeds (unpaired): {flagged} of 150 verdicts not 'no change'; {failing} of 50 pairs would fail a job (opa regressed at some deadline)"
    );
}

/// How many of 10 plants × 3 deadlines of a 3-point drop of OPA in `cur` compare as
/// regressed against `base` (the first plant's verdicts printed).
fn planted_regressions(base: &[Run], cur: &[Run]) -> usize {
    let mut regressed = 0;
    for seed in 0..10 {
        let mut planted = cur.to_vec();
        plant(&mut planted, "opa", 3.0, seed);
        let v = verdicts(base, &planted, "opa");
        regressed += v.iter().filter(|x| x.5 == Change::Regressed).count();
        if seed == 0 {
            println!("planted 3 pts (seed 0): {v:?}");
        }
    }
    regressed
}

/// `opa run` of `scenario` live at 1, 2 and 4 ms, `--repeat 3`, into `out`.
fn live(scenario: &Path, out: &Path) -> Vec<Run> {
    play("run", scenario, out, &["--repeat", "3"])
}

#[test]
#[ignore = "a measurement: two live --repeat 3 runs of dynamic.toml, many minutes"]
fn live_power_on_dynamic() {
    let dir = tempfile::tempdir().unwrap();
    let sc = root().join("scenarios/dynamic.toml");
    let started = std::time::Instant::now();
    let base = live(&sc, &dir.path().join("a"));
    let cur = live(&sc, &dir.path().join("b"));
    println!("two live runs: {:.0} s", started.elapsed().as_secs_f64());
    let all = compare(&base, &cur, &CompareConfig::default()).unwrap();
    let flagged: Vec<String> = all
        .iter()
        .filter(|d| d.change != Change::NoChange)
        .map(|d| {
            format!(
                "{} @ {} ms {} {:?} {:+.2}",
                d.selector, d.deadline_ms, d.metric, d.change, d.delta
            )
        })
        .collect();
    println!(
        "unchanged (live, same seeds, {}): {} of {} verdicts not 'no change': {flagged:?}",
        all[0].pairing,
        flagged.len(),
        all.len()
    );
    println!("unchanged, opa: {:?}", verdicts(&base, &cur, "opa"));
    let regressed = planted_regressions(&base, &cur);
    println!("planted 3 pts (live): {regressed} of 30 (10 plants x 3 deadlines) regressed");
}

/// `runs` with only `from`'s rows and summary rows, named `to`.
fn only(runs: &[Run], from: &str, to: &str) -> Vec<Run> {
    runs.iter()
        .map(|(summary, rows)| {
            let mut s = summary.clone();
            s.selectors.retain(|r| r.selector == from);
            for r in &mut s.selectors {
                r.selector = to.to_string();
            }
            let rows = rows
                .iter()
                .filter(|r| r.selector == from)
                .map(|r| {
                    let mut r = r.clone();
                    r.selector = to.to_string();
                    r
                })
                .collect();
            (s, rows)
        })
        .collect()
}

#[test]
#[ignore = "a measurement: one live --repeat 3 run of dynamic.toml with OPA twice, minutes"]
fn live_side_by_side_power_on_dynamic() {
    // dynamic.toml's stream and load with two copies of OPA taking turns every 25 frames in
    // the same live run: a baseline and a change measured side by side, so that the
    // machine's drift between hours falls on both alike.
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(root().join("scenarios/dynamic.toml")).unwrap();
    let head = &text[..text.find("[[selector]]").unwrap()];
    let trace = root().join("scenarios/traces/diurnal.csv");
    let sc = dir.path().join("dynamic.toml");
    std::fs::write(
        &sc,
        format!(
            "{}[[selector]]\nkind = \"opa\"\n\n[[selector]]\nkind = \"opa\"\nname = \"opa-b\"\n",
            head.replace(
                "\"traces/diurnal.csv\"",
                &format!("{:?}", trace.to_str().unwrap())
            )
        ),
    )
    .unwrap();
    let started = std::time::Instant::now();
    // Each copy measures its own runs (no sharing of identical ones): the change's noise.
    let runs = play(
        "run",
        &sc,
        &dir.path().join("ab"),
        &["--repeat", "3", "--independent-runs"],
    );
    println!(
        "one live run, --repeat 3: {:.0} s",
        started.elapsed().as_secs_f64()
    );
    let (base, cur) = (only(&runs, "opa", "opa"), only(&runs, "opa-b", "opa"));
    println!(
        "unchanged, side by side: {:?}",
        verdicts(&base, &cur, "opa")
    );
    let regressed = planted_regressions(&base, &cur);
    println!(
        "planted 3 pts (live, side by side): {regressed} of 30 (10 plants x 3 deadlines) regressed"
    );
}
