//! `opa compare`, `opa baseline`, `opa merge` (and, with figures, `opa report`).

use crate::bad;
use anyhow::Result;
use clap::{Args, Subcommand};
use opa_harness::output::{Claim, Kind};
use opa_reports::compare::{
    Change, CompareConfig, Thresholds, benchmark_json, compare, markdown, read_runs,
};
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct CompareArgs {
    /// Baseline run directory (or a saved baseline: `baselines/NAME`; or a repeats directory
    /// of `opa run --repeat N`, compared repeat by repeat).
    baseline: PathBuf,
    /// Current run directory (or repeats directory).
    current: PathBuf,
    /// Largest tolerated drop of top-1 within deadline, points [default: 1, or the
    /// thresholds file's].
    #[arg(long)]
    max_accuracy_drop: Option<f64>,
    /// Largest tolerated rise of p95 latency, percent [default: 10, or the thresholds
    /// file's].
    #[arg(long)]
    max_latency_increase: Option<f64>,
    /// Thresholds per selector and deadline from a TOML file (defaults, `[[rule]]` tables
    /// with `selector`, `deadline-ms`, `top1-drop-pts`, `p95-rise-pct`, `informational`;
    /// see docs/ci.md).
    #[arg(long, value_name = "FILE")]
    thresholds: Option<PathBuf>,
    /// Width of the time windows the bootstrap resamples, seconds.
    #[arg(long, default_value_t = 5.0)]
    window_s: f64,
    /// Bootstrap resamples.
    #[arg(long, default_value_t = 1000)]
    resamples: usize,
    /// Write the Markdown table here (it is always printed).
    #[arg(long)]
    markdown: Option<PathBuf>,
    /// Write JSON here: `<DIR>/compare.json` (every row: values, interval, verdict,
    /// detectable change, pairing) and github-action-benchmark's `<DIR>/bigger-is-better.json`
    /// (customBiggerIsBetter: top-1 within deadline) and `<DIR>/smaller-is-better.json`
    /// (customSmallerIsBetter: p95 latency).
    #[arg(long)]
    json_dir: Option<PathBuf>,
}

/// Exit code of `opa compare` when a metric regressed.
pub const REGRESSED: u8 = 1;

/// The thresholds of a compare: the file's, with the command line's defaults.
fn thresholds(a: &CompareArgs) -> Result<Thresholds> {
    let mut t = match &a.thresholds {
        Some(p) => Thresholds::read(p).map_err(bad)?,
        None => Thresholds::default(),
    };
    let given = |flag: &str| {
        bad(format!(
            "{flag} and the top-level key of {} both set a default; keep one",
            a.thresholds.as_deref().unwrap_or(Path::new("")).display()
        ))
    };
    let default = Thresholds::default();
    if let Some(v) = a.max_accuracy_drop {
        if a.thresholds.is_some() && t.top1_drop_pts != default.top1_drop_pts {
            return Err(given("--max-accuracy-drop"));
        }
        t.top1_drop_pts = v;
    }
    if let Some(v) = a.max_latency_increase {
        if a.thresholds.is_some() && t.p95_rise_pct != default.p95_rise_pct {
            return Err(given("--max-latency-increase"));
        }
        t.p95_rise_pct = v;
    }
    if !(t.top1_drop_pts >= 0.0 && t.p95_rise_pct >= 0.0 && a.window_s > 0.0) {
        return Err(bad(
            "--max-accuracy-drop and --max-latency-increase must be >= 0, --window-s > 0",
        ));
    }
    Ok(t)
}

pub fn compare_cmd(a: CompareArgs) -> Result<bool> {
    let cfg = CompareConfig {
        thresholds: thresholds(&a)?,
        window_s: a.window_s,
        resamples: a.resamples.max(10),
        seed: 1,
    };
    let base = read_runs(&a.baseline).map_err(bad)?;
    let cur = read_runs(&a.current).map_err(bad)?;
    let deltas = compare(&base, &cur, &cfg).map_err(|e| {
        bad(format!(
            "{} vs {}: {e}",
            a.baseline.display(),
            a.current.display()
        ))
    })?;
    let md = markdown(&deltas, &cfg);
    print!("{md}");
    if let Some(p) = &a.markdown {
        opa_reports::write_atomic(p, md.as_bytes())?;
    }
    if let Some(d) = &a.json_dir {
        std::fs::create_dir_all(d).map_err(|e| bad(format!("{}: {e}", d.display())))?;
        let (bigger, smaller) = benchmark_json(&deltas);
        opa_reports::write_json(&d.join("compare.json"), &deltas)?;
        opa_reports::write_json(&d.join("bigger-is-better.json"), &bigger)?;
        opa_reports::write_json(&d.join("smaller-is-better.json"), &smaller)?;
    }
    let regressed = deltas
        .iter()
        .filter(|d| d.change == Change::Regressed && !d.informational)
        .count();
    if regressed > 0 {
        eprintln!("{regressed} metric(s) regressed");
    }
    Ok(regressed > 0)
}

#[derive(Subcommand)]
pub enum BaselineCmd {
    /// Keep a run as a named baseline (never overwrites one without --force).
    Save(BaselineSaveArgs),
    /// List the saved baselines.
    List(BaselineListArgs),
}

#[derive(Args)]
pub struct BaselineSaveArgs {
    /// Baseline name (letters, digits, `-`, `_`, `.`).
    name: String,
    /// Run directory to keep.
    #[arg(long, default_value = "runs/quickstart")]
    run: PathBuf,
    /// Where baselines live.
    #[arg(long, default_value = "baselines")]
    dir: PathBuf,
    /// Replace an existing baseline of that name.
    #[arg(long)]
    force: bool,
}

#[derive(Args)]
pub struct BaselineListArgs {
    /// Where baselines live.
    #[arg(long, default_value = "baselines")]
    dir: PathBuf,
}

const RUN_FILES: [&str; 5] = [
    "summary.json",
    "samples.parquet",
    "events.jsonl",
    "scenario.toml",
    "machine.json",
];

pub fn baseline(c: BaselineCmd) -> Result<()> {
    match c {
        BaselineCmd::Save(a) => {
            if a.name.is_empty()
                || !a
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
                || a.name.starts_with('.')
            {
                return Err(bad(format!(
                    "baseline name {:?}: use letters, digits, -, _ and . only",
                    a.name
                )));
            }
            // Check the run (or every repeat) is readable before keeping it.
            read_runs(&a.run).map_err(bad)?;
            let repeats = opa_reports::read_repeats(&a.run).map_err(bad)?;
            let claim = Claim::take(&a.dir.join(&a.name), Kind::Baseline, a.force).map_err(bad)?;
            let tmp = claim.path().to_path_buf();
            match &repeats {
                Some(r) => {
                    copy_file(&a.run, &tmp, opa_reports::REPEATS_FILE)?;
                    for k in &r.runs {
                        let to = tmp.join(&k.dir);
                        std::fs::create_dir_all(&to)
                            .map_err(|e| bad(format!("{}: {e}", to.display())))?;
                        for f in RUN_FILES {
                            copy_file(&a.run.join(&k.dir), &to, f)?;
                        }
                    }
                }
                None => {
                    for f in RUN_FILES {
                        copy_file(&a.run, &tmp, f)?;
                    }
                }
            }
            let dest = claim
                .commit()
                .map_err(|e| bad(format!("{}: {e}", a.dir.display())))?;
            println!("baseline {} saved: {}", a.name, dest.display());
        }
        BaselineCmd::List(a) => {
            let mut names: Vec<String> = std::fs::read_dir(&a.dir)
                .map(|d| {
                    d.flatten()
                        .filter(|e| {
                            e.path().join("summary.json").is_file()
                                || e.path().join(opa_reports::REPEATS_FILE).is_file()
                        })
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            names.sort();
            if names.is_empty() {
                println!("no baseline in {}", a.dir.display());
            }
            for n in names {
                println!("{n}\t{}", a.dir.join(&n).display());
            }
        }
    }
    Ok(())
}

/// Copies `from/name` into `to`, if it is there.
fn copy_file(from: &Path, to: &Path, name: &str) -> Result<()> {
    let src = from.join(name);
    if src.is_file() {
        std::fs::copy(&src, to.join(name)).map_err(|e| bad(format!("{}: {e}", src.display())))?;
    }
    Ok(())
}

#[derive(Args)]
pub struct MergeArgs {
    /// Merged run directory to write.
    #[arg(long)]
    out: PathBuf,
    /// Run directories to join (the shards of one `opa run --shard I/N` sweep).
    #[arg(required = true)]
    runs: Vec<PathBuf>,
    /// Replace a run already in --out.
    #[arg(long)]
    force: bool,
}

pub fn merge(a: MergeArgs) -> Result<()> {
    let claim = Claim::take(&a.out, Kind::Run, a.force).map_err(bad)?;
    let m = opa_reports::merge::merge(&a.runs, claim.path()).map_err(bad)?;
    claim
        .commit()
        .map_err(|e| bad(format!("{}: {e}", a.out.display())))?;
    println!(
        "merged {} run(s): {} (selector, deadline) results, {} -> {}",
        a.runs.len(),
        m.selectors.len(),
        m.status,
        a.out.display()
    );
    Ok(())
}

#[derive(Args)]
pub struct ReportArgs {
    /// Run directories (e.g. one deadline sweep, or several runs of the same scenario).
    #[arg(required = true)]
    runs: Vec<PathBuf>,
    /// Where to write report.md, the CSV tables and the figures (default: the first run
    /// directory).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Deadline of the timeline, CDF and breakdown tables (default: the middle one of the sweep).
    #[arg(long)]
    deadline_ms: Option<f64>,
    /// Calibration profile for the candidate and predictor figures (default: the one the
    /// run's scenario names, when it exists).
    #[arg(long)]
    profile: Option<PathBuf>,
}

/// The `profile = "..."` of a run's effective scenario.
fn scenario_profile(run: &std::path::Path) -> Option<PathBuf> {
    let text = std::fs::read_to_string(run.join("scenario.toml")).ok()?;
    let v: toml::Table = toml::from_str(&text).ok()?;
    v.get("profile")?.as_str().map(PathBuf::from)
}

pub fn report(a: ReportArgs) -> Result<()> {
    let runs = opa_reports::report::read_runs(&a.runs).map_err(bad)?;
    let mut deadlines: Vec<f64> = runs
        .iter()
        .flat_map(|r| r.summary.selectors.iter().map(|s| s.deadline_ms))
        .collect();
    deadlines.sort_by(f64::total_cmp);
    deadlines.dedup();
    if deadlines.is_empty() {
        return Err(bad("the runs hold no selector results"));
    }
    let deadline = match a.deadline_ms {
        Some(d) if deadlines.contains(&d) => d,
        Some(d) => {
            return Err(bad(format!(
                "--deadline-ms {d}: the runs were replayed at {deadlines:?} ms"
            )));
        }
        None => deadlines[(deadlines.len() - 1) / 2],
    };
    let profile_path = a
        .profile
        .clone()
        .or_else(|| scenario_profile(&a.runs[0]).filter(|p| p.is_file()));
    let profile = match &profile_path {
        Some(p) => Some(opa_reports::profile::read_profile(p).map_err(bad)?),
        None => None,
    };
    let out = a.out.clone().unwrap_or_else(|| a.runs[0].clone());
    // With a profile, the predictors' cross-validation is most of the time (about 26 s on
    // two cores for the shipped one).
    let progress = match &profile {
        Some(p) => crate::cmd_calibrate::bar(
            opa_reports::report::cross_validation_folds(p) as u64,
            "folds",
        ),
        None => indicatif::ProgressBar::hidden(),
    };
    progress.set_message("cross-validating the predictors for the figures");
    let files = opa_reports::report::write_report(&runs, deadline, profile.as_ref(), &out, &|| {
        progress.inc(1)
    })
    .map_err(bad)?;
    progress.finish_and_clear();
    println!(
        "report: {} ({} files{})",
        out.join("report.md").display(),
        files.len(),
        profile_path.map_or(
            ", no profile: candidate and predictor figures left out".into(),
            |p| { format!(", profile {}", p.display()) }
        )
    );
    Ok(())
}
