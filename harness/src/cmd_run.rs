//! `opa run FILE`: a scenario live, every selector on the same frames and load, into a run
//! directory. `opa replay --profile P FILE`: the same with outcomes drawn from a calibration
//! profile instead of running the network. The work is [`opa_harness::run`]'s; this parses
//! the arguments and prints.

use crate::bad;
use anyhow::Result;
use clap::Args;
use opa_harness::output::{Claim, Kind};
use opa_harness::run::{DEFAULT_INTERLEAVE, Finished, RunError, RunOptions, execute};
use opa_harness::scenario::{self, SelectorSpec};
use opa_predictors::selectors::SelectorKind;
use opa_predictors::stats::{mean_se, t95};
use opa_reports::goals::{ORACLE_SHARE, OVERHEAD_SHARE, Overhead, Roles, run_goals};
use opa_reports::{REPEATS_FILE, Repeat, Repeats, RunSummary, Sample, SelectorSummary};
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct RunArgs {
    /// Scenario file.
    file: PathBuf,
    /// Deadlines to sweep, ms (comma-separated; default: the scenario's requirement.deadline-ms).
    #[arg(long, value_delimiter = ',')]
    deadline_ms: Vec<f64>,
    /// Run directory (default: the scenario's output.dir).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Replace a previous run in the run directory.
    #[arg(long)]
    force: bool,
    /// Run only shard I of N (`--shard 2/4`) of the (deadline x selector) grid: item k of the
    /// grid (deadlines ascending, selectors in file order) belongs to shard k mod N + 1. Join
    /// the shards' run directories with `opa merge`.
    #[arg(long, value_parser = parse_shard)]
    shard: Option<(usize, usize)>,
    /// Selectors take turns every N frames: each plays N frames on its own timeline, then
    /// the next plays the same N under the same injected load, so slow drifts of the machine
    /// reach all selectors alike (live runs; replays give the same result for any N). 0 plays
    /// each selector through the whole stream in turn. A shard interleaves its own selectors.
    #[arg(long, default_value_t = DEFAULT_INTERLEAVE, value_name = "N")]
    interleave: usize,
    /// Measure every run anew. By default (live runs), a selector that runs the candidate
    /// another selector already ran on the same frame, at the same moment of the trace and
    /// from the same warm or cold state, shares that measurement (same distribution, less
    /// noise in the differences between selectors; replays share draws the same way).
    #[arg(long)]
    independent_runs: bool,
    /// Run the scenario N times: repeat 1 with the scenario's seeds, the others with seeds
    /// derived from them (other frames, load timing and selector draws), each into
    /// `OUT/repeat-K`, listed in `OUT/repeats.json`. Prints every selector's mean over the
    /// repeats with a 95 % interval; `opa compare` pairs two such directories repeat by
    /// repeat.
    #[arg(long, default_value_t = 1, value_name = "N")]
    repeat: usize,
}

impl RunArgs {
    fn options(self) -> RunOptions {
        RunOptions {
            file: self.file,
            deadline_ms: self.deadline_ms,
            out: self.out,
            force: self.force,
            shard: self.shard,
            interleave: self.interleave,
            independent_runs: self.independent_runs,
            repeat: 1,
        }
    }
}

fn parse_shard(s: &str) -> Result<(usize, usize), String> {
    let (i, n) = s
        .split_once('/')
        .ok_or_else(|| format!("{s:?}: expected I/N, e.g. 1/4"))?;
    let (i, n): (usize, usize) = (
        i.trim()
            .parse()
            .map_err(|_| format!("{s:?}: I is not a number"))?,
        n.trim()
            .parse()
            .map_err(|_| format!("{s:?}: N is not a number"))?,
    );
    if n == 0 || i == 0 || i > n {
        return Err(format!("{s:?}: need 1 <= I <= N"));
    }
    Ok((i, n))
}

#[derive(Args)]
pub struct ReplayArgs {
    /// Calibration profile to draw outcomes from (default: the scenario's `profile`).
    #[arg(long)]
    profile: Option<PathBuf>,
    #[command(flatten)]
    run: RunArgs,
}

/// A library run error as the binary reports it: bad input exits with code 2, an
/// interruption with 130.
pub fn run_error(e: RunError) -> anyhow::Error {
    match e {
        RunError::BadInput(m) => bad(m),
        RunError::Failed(m) => anyhow::Error::msg(m),
        e @ RunError::Interrupted(_) => anyhow::Error::new(e),
    }
}

pub fn run(a: RunArgs) -> Result<()> {
    play(a, None)
}

pub fn replay_cmd(a: ReplayArgs) -> Result<()> {
    let sc = scenario::load(&a.run.file).map_err(bad)?;
    let profile = a.profile.clone().unwrap_or(sc.profile);
    if !profile.is_file() {
        return Err(bad(format!(
            "{}: no such profile; run `opa calibrate --out {}` first",
            profile.display(),
            profile.display()
        )));
    }
    play(a.run, Some(profile))
}

/// Runs (live, or replayed from `profile`) once, or `--repeat N` times.
fn play(a: RunArgs, profile: Option<PathBuf>) -> Result<()> {
    let (independent_runs, n) = (a.independent_runs, a.repeat);
    if n == 0 {
        return Err(bad("--repeat 0: give at least 1"));
    }
    if n == 1 {
        let done = execute(&a.options(), profile, true).map_err(run_error)?;
        return finish(&done, independent_runs);
    }
    if a.shard.is_some() {
        return Err(bad(
            "--repeat with --shard: shard each repeat's run instead",
        ));
    }
    let sc = scenario::load(&a.file).map_err(bad)?;
    let target = a.out.clone().unwrap_or_else(|| sc.output_dir.clone());
    // The repeats are written beside the directory and put in place once all are done.
    let claim = Claim::take(&target, Kind::Repeats, a.force).map_err(bad)?;
    let out = claim.path().to_path_buf();
    let base = a.options();
    let mut runs = Vec::new();
    let mut repeats = Repeats {
        scenario: sc.name.clone(),
        runs: Vec::new(),
    };
    for k in 1..=n {
        let dir = format!("repeat-{k}");
        let seeds = sc.repeat_seeds(k);
        println!(
            "\nrepeat {k}/{n}: seeds stream {}, load {}, selector {}",
            seeds[0], seeds[1], seeds[2]
        );
        let opts = RunOptions {
            out: Some(out.join(&dir)),
            repeat: k,
            ..base.clone()
        };
        let mut done = execute(&opts, profile.clone(), true).map_err(run_error)?;
        done.out = target.join(&dir);
        finish(&done, independent_runs)?;
        repeats.runs.push(Repeat { dir, seeds });
        runs.push(done.summary);
    }
    opa_reports::write_json(&out.join(REPEATS_FILE), &repeats)?;
    let out = claim
        .commit()
        .map_err(|e| anyhow::anyhow!("{}: {e}", target.display()))?;
    print_repeats(&runs);
    println!("repeats directory: {} ({n} runs)", out.display());
    Ok(())
}

/// Every selector's top-1 within the deadline over the repeats: mean, 95 % interval (Student's
/// t over the runs' values) and range.
fn print_repeats(runs: &[RunSummary]) {
    println!(
        "\ntop-1 within the deadline over {} repeats (mean, 95 % interval, range):",
        runs.len()
    );
    for s in &runs[0].selectors {
        let v: Vec<f64> = runs
            .iter()
            .filter_map(|r| {
                r.selectors
                    .iter()
                    .find(|x| x.selector == s.selector && x.deadline_ms == s.deadline_ms)
            })
            .map(|x| 100.0 * x.top1_within_deadline)
            .collect();
        let (mean, se) = mean_se(&v);
        let h = t95(v.len().saturating_sub(1)) * se;
        let (lo, hi) = v
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
                (a.min(*x), b.max(*x))
            });
        println!(
            "{:<16} {:>7} ms {:>7.2} % [{:.2}, {:.2}]  ({:.2}..{:.2})",
            s.selector,
            s.deadline_ms,
            mean,
            mean - h,
            mean + h,
            lo,
            hi
        );
    }
}

/// Prints the end of a run; an error when it was interrupted.
fn finish(done: &Finished, independent_runs: bool) -> Result<()> {
    print_run_end(
        &done.summary,
        &done.samples,
        &done.selectors,
        done.live,
        independent_runs,
        &done.out,
    );
    if done.kept_previous {
        return Err(run_error(RunError::Interrupted(format!(
            "interrupted: the previous run in {} is kept as it was; this one is discarded",
            done.out.display()
        ))));
    }
    if !done.complete() {
        return Err(run_error(RunError::Interrupted(format!(
            "interrupted: {} holds a readable partial run marked INCOMPLETE",
            done.out.display()
        ))));
    }
    Ok(())
}

/// The summary table, OPA's goals, the live runs' sharing and where the run is.
fn print_run_end(
    summary: &RunSummary,
    samples: &[Sample],
    specs: &[SelectorSpec],
    live: bool,
    independent_runs: bool,
    out: &Path,
) {
    let (runs_measured, runs_shared) = (summary.runs_measured, summary.runs_shared);
    print_table(&summary.selectors);
    print_goals(summary, samples, specs);
    if live {
        println!(
            "live runs: {runs_measured} measured, {runs_shared} shared between selectors{}",
            if independent_runs {
                " (--independent-runs)"
            } else {
                " (same frame, candidate, trace moment and warm state; --independent-runs measures each)"
            }
        );
    }
    println!("run directory: {} ({})", out.display(), summary.status);
}

/// Per deadline, where the line-up's first `opa` selector stands against OPA's goals: its
/// share of the oracle's top-1 within the deadline (the goal: at least [`ORACLE_SHARE`]), its
/// difference to the best rival's (above every rival; with the frames only one of the two
/// got right in time and a paired 95 % interval from `samples`, [`paired_top1`]) and its
/// decision overhead as a fraction of exhaustive search's (at most [`OVERHEAD_SHARE`]); the
/// selectors' roles are [`Roles::of`]'s, as in `opa stress`. Nothing without an `opa`
/// selector; a goal without its selector in the line-up is left out.
fn print_goals(summary: &RunSummary, samples: &[Sample], specs: &[SelectorSpec]) {
    let lineup: Vec<(&str, SelectorKind)> =
        specs.iter().map(|s| (s.name.as_str(), s.kind)).collect();
    let Some(roles) = specs
        .iter()
        .find(|s| s.kind == SelectorKind::Opa)
        .and_then(|s| Roles::of(&lineup, &s.name))
    else {
        return;
    };
    if roles.oracle.is_none() && roles.exhaustive.is_none() && roles.rivals.is_empty() {
        return;
    }
    println!();
    println!(
        "{} against OPA's goals (>= {} % of the oracle's top-1 within the deadline, above every rival, overhead <= 1/{} of exhaustive's):",
        roles.reference,
        100.0 * ORACLE_SHARE,
        1.0 / OVERHEAD_SHARE
    );
    for g in run_goals(summary, samples, &roles) {
        let mut parts = Vec::new();
        if let Some(share) = g.oracle_share {
            parts.push(format!("{:.1} % of the oracle", 100.0 * share));
        }
        if let Some((rival, delta, paired)) = &g.best_rival {
            let mut part = format!("{delta:+.2} pts against the best rival ({rival}");
            if let Some(p) = paired {
                part.push_str(&format!(
                    "; {} frame{} right in time for {} only, {} for it only; paired 95 % interval {:+.2} to {:+.2}: {}",
                    p.only_a,
                    if p.only_a == 1 { "" } else { "s" },
                    roles.reference,
                    p.only_b,
                    p.ci_low,
                    p.ci_high,
                    p.verdict()
                ));
            }
            part.push(')');
            parts.push(part);
        }
        if let Some(o) = g.overhead {
            parts.push(match o {
                Overhead::None => "no overhead".to_string(),
                Overhead::WhereExhaustiveHasNone => {
                    "overhead where exhaustive search has none".to_string()
                }
                Overhead::Fraction(f) => format!("overhead 1/{f:.1} of exhaustive's"),
            });
        }
        println!("  {} ms: {}", g.deadline_ms, parts.join("; "));
    }
}

fn print_table(rows: &[SelectorSummary]) {
    println!();
    println!(
        "{:<16} {:>9} {:>8} {:>12} {:>9} {:>8} {:>9} {:>9} {:>8} {:>8}",
        "selector",
        "deadline",
        "top-1",
        "top-1 in dl",
        "miss",
        "skipped",
        "p95 ms",
        "overhead",
        "switches",
        "verdict"
    );
    for r in rows {
        println!(
            "{:<16} {:>7} ms {:>7.2}% {:>11.2}% {:>8.2}% {:>8} {:>9.2} {:>8.2}% {:>8} {:>8}",
            r.selector,
            r.deadline_ms,
            100.0 * r.top1,
            100.0 * r.top1_within_deadline,
            100.0 * r.deadline_miss_rate,
            r.skipped,
            r.latency_p95_ms,
            100.0 * r.decision_overhead,
            r.switches,
            r.verdict.verdict
        );
        for reason in &r.verdict.reasons {
            println!("    {reason}");
        }
    }
}
