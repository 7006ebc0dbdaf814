//! `opa stress`: draw random scenarios, replay each from the calibration profile at a sweep of
//! deadlines, and compare a reference selector (OPA) with every other one, scenario by
//! scenario. The space and the comparison: [`opa_harness::stress`].

use crate::bad;
use crate::cmd_run::run_error;
use anyhow::{Context as _, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use opa_harness::output::{Claim, Kind};
use opa_harness::run::{RunError, RunOptions, execute, sweep};
use opa_harness::scenario::{self, SEGMENT_FPS};
use opa_harness::stress::{DEFAULT_FPS, DEFAULT_SELECTORS, random_scenario, scenario_name};
use opa_predictors::selectors::SelectorKind;
use opa_reports::compare::{CompareConfig, FrameOutcomes, frame_outcome, paired};
use opa_reports::goals::{
    AtDeadline, Cell, Goals, ORACLE_SHARE, OVERHEAD_SHARE, Roles, compare, goals,
};
use rayon::prelude::*;
use serde::Serialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct StressArgs {
    /// Random scenarios to draw and replay (each 30 s to 6 min of stream at one of --fps,
    /// 1 to 4 content segments, 1 to 3 CPU load phases).
    #[arg(long, default_value_t = 50)]
    scenarios: usize,
    /// Frame rates a stream draws from, per second (comma-separated; each 0.01 to 1000). The
    /// default never makes frames queue; rates faster than the device (`60,120,300`) test the
    /// selectors where frames wait and late ones are dropped (at 300 per second a scenario
    /// has up to 108,000 frames: 50 scenarios replay in a minute or two, not seconds).
    #[arg(long, value_delimiter = ',', default_values_t = DEFAULT_FPS)]
    fps: Vec<f64>,
    /// Seed of the draws: the same seed draws the same scenarios (scenario k is the same
    /// whatever --scenarios says). Recorded in stress.json.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Deadlines to sweep, ms (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "0.5,1,2,4,8")]
    deadline_ms: Vec<f64>,
    /// Compare the `[[selector]]` tables of this scenario file (their parameters as written)
    /// instead of the default line-up: opa, opa-rounds (evidence-frames = 0), exhaustive,
    /// oracle, ofa-static, dynamic-ofa, adaptivenet, fixed-largest, fixed-smallest, random,
    /// each with its defaults.
    #[arg(long, value_name = "FILE")]
    selectors: Option<PathBuf>,
    /// The selector (by name) every other one is compared with.
    #[arg(long, default_value = "opa")]
    reference: String,
    /// Calibration profile to draw outcomes from (default: the scenarios' default profile,
    /// the shipped one).
    #[arg(long)]
    profile: Option<PathBuf>,
    /// Output directory: scenarios/ (the drawn scenario files, each replayable on its own
    /// with `opa replay` or live with `opa run`), runs/ (one run directory per scenario) and
    /// stress.json (every cell and the comparison).
    #[arg(long, default_value = "runs/stress")]
    out: PathBuf,
    /// Replace a previous stress sweep in the output directory.
    #[arg(long)]
    force: bool,
    /// Scenarios replayed at once (default: one per core). The result is the same for any
    /// number.
    #[arg(long, default_value_t = default_jobs())]
    jobs: usize,
}

fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// What `opa stress` writes to stress.json.
#[derive(Serialize)]
struct StressFile<'a> {
    seed: u64,
    scenarios: usize,
    fps: &'a [f64],
    profile: String,
    reference: &'a str,
    deadlines_ms: &'a [f64],
    selector_order: &'a [String],
    /// Per deadline: every selector against the reference.
    comparison: &'a [AtDeadline],
    /// Per deadline: in how many scenarios the reference met each of OPA's goals.
    goals: &'a [Goals],
    /// Every scenario, deadline and selector.
    cells: &'a [Cell],
}

pub fn stress(a: StressArgs) -> Result<()> {
    if a.scenarios == 0 {
        return Err(bad("--scenarios 0: draw at least one scenario"));
    }
    if a.jobs == 0 {
        return Err(bad("--jobs 0: replay at least one scenario at a time"));
    }
    if let Some(f) = a.fps.iter().find(|f| !SEGMENT_FPS.contains(*f)) {
        return Err(bad(format!(
            "--fps {f}: a frame rate must be {} to {} per second",
            SEGMENT_FPS.start(),
            SEGMENT_FPS.end()
        )));
    }
    let deadlines = sweep(&a.deadline_ms).map_err(run_error)?;
    let lineup = match &a.selectors {
        None => DEFAULT_SELECTORS.to_string(),
        Some(f) => selector_tables(f).map_err(bad)?,
    };
    // The first scenario as drawn: its selectors and profile are every scenario's.
    let first = random_scenario(a.seed, 0, &a.fps, &deadlines, &lineup);
    let sc = scenario::parse("(drawn scenario)", &first, Path::new(".")).map_err(|e| {
        bad(match &a.selectors {
            Some(f) => format!("{}: the selectors do not check out:\n{e}", f.display()),
            None => e.to_string(),
        })
    })?;
    let order: Vec<String> = sc.selectors.iter().map(|s| s.name.clone()).collect();
    if !order.contains(&a.reference) {
        return Err(bad(format!(
            "--reference {}: no selector of that name in the line-up ({})",
            a.reference,
            order.join(", ")
        )));
    }
    // The profile is read once before anything is written: a missing or damaged one is an
    // error that leaves no output.
    let profile = a.profile.clone().unwrap_or(sc.profile.clone());
    if !profile.is_file() {
        return Err(bad(format!("{}: no such profile", profile.display())));
    }
    opa_reports::profile::read_profile(&profile).map_err(bad)?;
    // The sweep is written beside --out and put in place when it is done.
    let claim = Claim::take(&a.out, Kind::Stress, a.force).map_err(bad)?;
    let file = claim.path().join("stress.json");
    let (dir_sc, dir_runs) = (claim.path().join("scenarios"), claim.path().join("runs"));
    for d in [&dir_sc, &dir_runs] {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    println!(
        "stress: {} random scenarios (seed {}, {} frames per second), {} selectors x {} deadlines, replayed from profile {}",
        a.scenarios,
        a.seed,
        a.fps
            .iter()
            .map(f64::to_string)
            .collect::<Vec<_>>()
            .join(" / "),
        order.len(),
        deadlines.len(),
        profile.display()
    );
    let bar = ProgressBar::new(a.scenarios as u64);
    bar.set_style(
        ProgressStyle::with_template("{prefix:>12} [{bar:30}] {pos}/{len} scenarios")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix("replaying");
    // Scenarios replay in parallel (`--jobs`); each is deterministic on its own, and the
    // cells are kept in scenario order, so the result does not depend on the threads.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(a.jobs)
        .build()
        .context("starting the replay threads")?;
    let replay_one = |k: usize| -> Result<Vec<Cell>> {
        let name = scenario_name(k);
        let path = dir_sc.join(format!("{name}.toml"));
        opa_reports::write_atomic(
            &path,
            random_scenario(a.seed, k, &a.fps, &deadlines, &lineup).as_bytes(),
        )?;
        let args = RunOptions::whole(path, deadlines.clone(), dir_runs.join(&name));
        let done = execute(&args, Some(profile.clone()), false)
            .map_err(run_error)
            .with_context(|| format!("replaying {name}"))?;
        if !done.complete() {
            return Err(run_error(RunError::Interrupted(format!(
                "replaying {name}: interrupted"
            ))));
        }
        let (summary, samples) = (done.summary, done.samples);
        bar.inc(1);
        // Each selector's frames at each deadline, by frame (one pass over the rows), for
        // the reference's paired interval against every other selector.
        let mut frames: HashMap<(&str, u64), FrameOutcomes> = HashMap::new();
        for r in samples.iter().filter(|r| r.is_frame()) {
            frames
                .entry((r.selector.as_str(), r.deadline_ms.to_bits()))
                .or_default()
                .push(frame_outcome(r));
        }
        frames.values_mut().for_each(|v| v.sort_by_key(|f| f.0));
        let cfg = CompareConfig::default();
        Ok(summary
            .selectors
            .iter()
            .map(|s| Cell {
                scenario: name.clone(),
                deadline_ms: s.deadline_ms,
                selector: s.selector.clone(),
                top1_within_deadline: s.top1_within_deadline,
                deadline_miss_rate: s.deadline_miss_rate,
                decision_overhead: s.decision_overhead,
                valid: s.verdict.verdict == "VALID",
                reference_paired_ci_pts: (s.selector != a.reference)
                    .then(|| {
                        let d = s.deadline_ms.to_bits();
                        let mine = frames.get(&(a.reference.as_str(), d))?;
                        paired(mine, frames.get(&(s.selector.as_str(), d))?, &cfg)
                    })
                    .flatten()
                    .map(|p| (p.ci_low, p.ci_high)),
            })
            .collect())
    };
    let per_scenario: Vec<Vec<Cell>> = pool.install(|| {
        (0..a.scenarios)
            .into_par_iter()
            .map(replay_one)
            .collect::<Result<_>>()
    })?;
    let cells: Vec<Cell> = per_scenario.into_iter().flatten().collect();
    bar.finish_and_clear();
    let comparison = compare(&cells, &deadlines, &order, &a.reference).map_err(bad)?;
    let lineup: Vec<(&str, SelectorKind)> = sc
        .selectors
        .iter()
        .map(|s| (s.name.as_str(), s.kind))
        .collect();
    let roles = Roles::of(&lineup, &a.reference).expect("the reference is in the line-up");
    let goals = goals(&cells, &deadlines, &order, &roles);
    print_comparison(&comparison, &goals, &a.reference, &roles.rivals);
    opa_reports::write_json(
        &file,
        &StressFile {
            seed: a.seed,
            scenarios: a.scenarios,
            fps: &a.fps,
            profile: profile.display().to_string(),
            reference: &a.reference,
            deadlines_ms: &deadlines,
            selector_order: &order,
            comparison: &comparison,
            goals: &goals,
            cells: &cells,
        },
    )?;
    let out = claim
        .commit()
        .with_context(|| format!("putting the sweep in {}", a.out.display()))?;
    println!(
        "stress directory: {} (stress.json; scenarios/ replay on their own with `opa replay`)",
        out.display()
    );
    Ok(())
}

/// The `[[selector]]` tables of scenario file `f`, as scenario-file text.
fn selector_tables(f: &Path) -> Result<String, String> {
    let text =
        std::fs::read_to_string(f).map_err(|e| format!("{}: cannot read: {e}", f.display()))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e| format!("{}: not a TOML file: {e}", f.display()))?;
    match table.get("selector") {
        Some(toml::Value::Array(a)) if !a.is_empty() => {
            let mut only = toml::Table::new();
            only.insert("selector".into(), toml::Value::Array(a.clone()));
            toml::to_string(&only).map_err(|e| format!("{}: {e}", f.display()))
        }
        _ => Err(format!("{}: no [[selector]] tables", f.display())),
    }
}

/// Per deadline: each selector's mean top-1 within the deadline, the reference's paired
/// difference to it, and in how many scenarios the reference is over a point below it; then
/// whether the reference is above its closest rival (of `rivals`) on average, and in how many
/// scenarios it met each of `goals`.
fn print_comparison(c: &[AtDeadline], goals: &[Goals], reference: &str, rivals: &[&str]) {
    for (d, g) in c.iter().zip(goals) {
        println!();
        println!(
            "deadline {} ms: {} scenarios{}",
            d.deadline_ms,
            d.scenarios,
            if d.left_out > 0 {
                format!(" ({} left out: a run not VALID)", d.left_out)
            } else {
                String::new()
            }
        );
        println!(
            "  {:<18} {:>12} {:>22} {:>16} {:>9}",
            "selector",
            "top-1 in dl",
            format!("{reference} - it, pts"),
            format!("{reference} >1 pt below"),
            "overhead"
        );
        for v in &d.selectors {
            let diff = if v.selector == reference {
                "-".to_string()
            } else {
                format!(
                    "{:+.2} ± {:.2}",
                    v.reference_minus_pts, v.reference_minus_se_pts
                )
            };
            println!(
                "  {:<18} {:>11.2}% {:>22} {:>16} {:>8.2}%",
                v.selector,
                100.0 * v.mean_top1_within_deadline,
                diff,
                v.reference_below_1pt,
                100.0 * v.mean_decision_overhead
            );
        }
        let near: Vec<_> = d
            .selectors
            .iter()
            .filter(|v| rivals.contains(&v.selector.as_str()))
            .collect();
        if let Some(closest) = near
            .iter()
            .min_by(|x, y| x.reference_minus_pts.total_cmp(&y.reference_minus_pts))
        {
            let (m, se) = (closest.reference_minus_pts, closest.reference_minus_se_pts);
            println!(
                "  closest rival (implementable, of another kind): {} ({reference} {m:+.2} ± {se:.2} pts: {})",
                closest.selector,
                if m > 2.0 * se {
                    format!("{reference} above every rival")
                } else if m >= -2.0 * se {
                    "level, within 2 standard errors".to_string()
                } else {
                    format!("{reference} below it")
                }
            );
        }
        let of = |n: usize| format!("{n}/{}", g.scenarios);
        let mut met = Vec::new();
        if let Some(n) = g.oracle_95pct {
            met.push(format!(
                ">= {} % of the oracle in {}",
                100.0 * ORACLE_SHARE,
                of(n)
            ));
        }
        if let Some(n) = g.overhead_fifth_of_exhaustive {
            met.push(format!(
                "overhead <= 1/{} of exhaustive's in {}",
                1.0 / OVERHEAD_SHARE,
                of(n)
            ));
        }
        if let (Some(above), Some(below)) = (g.above_every_rival, g.below_a_rival_1pt) {
            met.push(format!(
                "above every rival in {} (over a point below one in {below}; below one by the paired interval of the scenario's frames in {})",
                of(above),
                g.below_a_rival_paired.unwrap_or(0)
            ));
        }
        if !met.is_empty() {
            println!(
                "  {reference}'s goals, scenario by scenario: {}",
                met.join("; ")
            );
        }
    }
}
