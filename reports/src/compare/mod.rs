//! Regression tracking: two runs of the same scenario (or two sets of repeats) compared per
//! selector, deadline and metric, with a bootstrap 95 % interval of the change. A change is
//! called a regression (or an improvement) when it is real and material: its estimate past
//! the threshold and its whole interval on that side of no change.
//!
//! Runs that share their frames (the same stream, seeds and drawn outcomes: a replay of the
//! same scenario, or a live run of it) are compared frame by frame ([`paired`]): what varies
//! between resamples is only which time windows of the per-frame differences are drawn, so
//! a one-point change on shared frames is seen. Runs on other frames are compared unpaired:
//! each run's windows resampled on its own. Repeats (`--repeat N`) are paired by repeat;
//! their windows are pooled, so the interval covers the spread from seed to seed. Every
//! row says which was used, and the smallest regression it would have flagged.

mod paired;
mod thresholds;

pub use paired::{
    FrameOutcomes, PairedDelta, PairedWindows, frame_outcome, frame_outcomes, paired, paired_top1,
};
pub use thresholds::{Limits, Rule, Thresholds};

use crate::format::{RunError, RunSummary, Sample};
use opa_predictors::Phase;
use opa_predictors::stats::{interval95, percentile};
use rand::{Rng, SeedableRng};
use serde::Serialize;

/// Thresholds and bootstrap settings.
#[derive(Clone, Debug, PartialEq)]
pub struct CompareConfig {
    /// How far each metric may move, per selector and deadline.
    pub thresholds: Thresholds,
    /// Width of the time windows frames are resampled in, seconds.
    pub window_s: f64,
    /// Bootstrap resamples.
    pub resamples: usize,
    /// Seed of the bootstrap.
    pub seed: u64,
}

impl Default for CompareConfig {
    fn default() -> Self {
        CompareConfig {
            thresholds: Thresholds::default(),
            window_s: 5.0,
            resamples: 1000,
            seed: 1,
        }
    }
}

/// The verdict on one metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Change {
    /// The whole interval is past the threshold, the good way.
    Improved,
    /// The whole interval is past the threshold, the bad way.
    Regressed,
    /// Anything else.
    NoChange,
}

impl Change {
    /// As printed.
    pub fn label(self) -> &'static str {
        match self {
            Change::Improved => "improved",
            Change::Regressed => "REGRESSED",
            Change::NoChange => "no change",
        }
    }
}

/// One compared metric of one selector at one deadline.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MetricDelta {
    /// Selector name.
    pub selector: String,
    /// Deadline, ms.
    pub deadline_ms: f64,
    /// `top1_within_deadline` (points) or `latency_p95` (percent change).
    pub metric: String,
    /// Unit of `baseline`, `current`: `%` or `ms`.
    pub unit: String,
    /// Baseline value.
    pub baseline: f64,
    /// Current value.
    pub current: f64,
    /// Change: points for accuracy, percent for latency.
    pub delta: f64,
    /// Bootstrap 95 % interval of `delta`.
    pub ci_low: f64,
    /// Upper end.
    pub ci_high: f64,
    /// Verdict against the threshold.
    pub change: Change,
    /// The threshold the verdict is against (points, or percent for latency).
    pub threshold: f64,
    /// The smallest regression this comparison would have flagged (same unit as `delta`,
    /// positive): the threshold, or the interval's reach from `delta` toward no change where
    /// that is larger (for a regression spread over the run like its frames; one in a few
    /// windows widens the interval and needs more).
    pub detectable: f64,
    /// Compared frame by frame (the runs share their frames), or unpaired.
    pub paired: bool,
    /// Why paired or not, as printed.
    pub pairing: String,
    /// Pairs of runs compared (repeats).
    pub runs: usize,
    /// Reported only: never fails the compare.
    pub informational: bool,
}

impl Change {
    /// The verdict on a change `w` with 95 % interval `(lo, hi)`, all signed so that
    /// positive is worse, against the threshold `t`: regressed when the change is past the
    /// threshold and the whole interval is on the bad side of none (the change is real, and
    /// its best estimate is material); improved alike on the good side.
    fn of(w: f64, (lo, hi): (f64, f64), t: f64) -> Change {
        if w > t && lo > 0.0 {
            Change::Regressed
        } else if -w > t && hi < 0.0 {
            Change::Improved
        } else {
            Change::NoChange
        }
    }
}

/// A run as compared: its summary and its rows.
pub type Run = (RunSummary, Vec<Sample>);

/// The time window of `window_s` seconds a frame arriving at `arrival_s` falls in.
fn window_index(arrival_s: f64, window_s: f64) -> usize {
    (arrival_s / window_s.max(1e-9)).floor().max(0.0) as usize
}

/// The frames (served, and dropped unanswered) of `selector` at `deadline_ms`, by index.
fn frames<'a>(rows: &'a [Sample], selector: &str, deadline_ms: f64) -> Vec<&'a Sample> {
    let mut v: Vec<&Sample> = rows
        .iter()
        .filter(|r| r.selector == selector && r.deadline_ms == deadline_ms && r.is_frame())
        .collect();
    v.sort_by_key(|r| r.frame);
    v
}

/// Why two runs' frames are not the same frames, if they are not: the same indices, each
/// arriving at the same time with the same label and content condition.
fn not_shared(base: &[&Sample], cur: &[&Sample]) -> Option<String> {
    if base.len() != cur.len() {
        return Some(format!("{} frames against {}", base.len(), cur.len()));
    }
    base.iter().zip(cur).find_map(|(b, c)| {
        (b.frame != c.frame
            || b.arrival_s != c.arrival_s
            || b.label != c.label
            || b.condition != c.condition)
            .then(|| {
                format!(
                    "frame {} differs (label {}, {}, {:.3} s against label {}, {}, {:.3} s): another stream or seeds",
                    b.frame, b.label, b.condition, b.arrival_s, c.label, c.condition, c.arrival_s
                )
            })
    })
}

/// Frames grouped by time window, one list per window that has frames (a repeat's windows
/// after the previous repeat's).
fn windows<'a>(runs: &[Vec<&'a Sample>], window_s: f64) -> Vec<Vec<&'a Sample>> {
    let mut out = Vec::new();
    for run in runs {
        let mut w: Vec<Vec<&Sample>> = Vec::new();
        for r in run {
            let i = window_index(r.arrival_s, window_s);
            if w.len() <= i {
                w.resize(i + 1, Vec::new());
            }
            w[i].push(r);
        }
        out.extend(w.into_iter().filter(|x| !x.is_empty()));
    }
    out
}

fn top1_in_deadline<'a>(rows: impl IntoIterator<Item = &'a Sample>) -> f64 {
    let (mut right, mut n) = (0usize, 0usize);
    for r in rows {
        right += usize::from(r.correct && r.deadline_met);
        n += 1;
    }
    100.0 * right as f64 / n.max(1) as f64
}

/// The 95th percentile latency of the served frames (a dropped frame has none).
fn p95<'a>(rows: impl IntoIterator<Item = &'a Sample>) -> f64 {
    let lat: Vec<f64> = rows
        .into_iter()
        .filter(|r| r.phase == Phase::Serve)
        .map(|r| r.latency_ms)
        .collect();
    percentile(&lat, 95.0)
}

/// `metric`'s change (current against baseline) over `cfg.resamples` bootstrap resamples of
/// whole windows: paired (`base` and `cur` are the same windows of the same frames, drawn
/// together), or each side's windows drawn on their own.
fn bootstrap(
    base: &[Vec<&Sample>],
    cur: &[Vec<&Sample>],
    paired: bool,
    cfg: &CompareConfig,
    change: impl Fn(&[&Sample], &[&Sample]) -> f64,
) -> (f64, f64) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(cfg.seed);
    let (mut b, mut c) = (Vec::new(), Vec::new());
    let deltas: Vec<f64> = (0..cfg.resamples.max(10))
        .map(|_| {
            b.clear();
            c.clear();
            for _ in 0..base.len() {
                let i = rng.random_range(0..base.len());
                b.extend_from_slice(&base[i]);
                if paired {
                    c.extend_from_slice(&cur[i]);
                }
            }
            if !paired {
                for _ in 0..cur.len() {
                    c.extend_from_slice(&cur[rng.random_range(0..cur.len())]);
                }
            }
            change(&b, &c)
        })
        .collect();
    interval95(deltas)
}

/// How `base` and `cur` (each a run's frames, repeat by repeat) are compared: paired when
/// every pair of repeats shares its frames, and why (not).
fn pairing(base: &[Vec<&Sample>], cur: &[Vec<&Sample>]) -> (bool, String) {
    if base.len() != cur.len() {
        return (
            false,
            format!(
                "unpaired: {} baseline runs against {} current runs",
                base.len(),
                cur.len()
            ),
        );
    }
    let why = base
        .iter()
        .zip(cur)
        .enumerate()
        .find_map(|(k, (b, c))| not_shared(b, c).map(|why| (k, why)));
    match why {
        None if base.len() == 1 => (true, "paired: the runs share their frames".into()),
        None => (
            true,
            format!(
                "paired: each of the {} repeats shares its frames",
                base.len()
            ),
        ),
        Some((_, why)) if base.len() == 1 => (
            false,
            format!(
                "unpaired: {why}; with one run each, the interval covers time windows, not what other seeds change (the stream's draws, a segment's severity): compare runs with the same seeds, or repeats (--repeat N) made alike"
            ),
        ),
        Some((k, why)) => (false, format!("unpaired: repeat {}: {why}", k + 1)),
    }
}

/// Compares every (selector, deadline) present in both the baseline runs and the current
/// runs (one each, or repeats paired in order).
pub fn compare(base: &[Run], cur: &[Run], cfg: &CompareConfig) -> Result<Vec<MetricDelta>, String> {
    let (Some(b0), Some(c0)) = (base.first(), cur.first()) else {
        return Err("nothing to compare: no run".into());
    };
    if let Some(r) = base
        .iter()
        .chain(cur)
        .find(|r| r.0.scenario != b0.0.scenario)
    {
        return Err(format!(
            "the runs replay different scenarios ({} and {})",
            b0.0.scenario, r.0.scenario
        ));
    }
    let mut out = Vec::new();
    for s in &b0.0.selectors {
        let (name, dl) = (s.selector.as_str(), s.deadline_ms);
        if !c0
            .0
            .selectors
            .iter()
            .any(|c| c.selector == name && c.deadline_ms == dl)
        {
            continue;
        }
        let fb: Vec<Vec<&Sample>> = base.iter().map(|r| frames(&r.1, name, dl)).collect();
        let fc: Vec<Vec<&Sample>> = cur.iter().map(|r| frames(&r.1, name, dl)).collect();
        if fb.iter().chain(&fc).any(Vec::is_empty) {
            continue;
        }
        let (paired, how) = pairing(&fb, &fc);
        let (wb, wc) = (windows(&fb, cfg.window_s), windows(&fc, cfg.window_s));
        let limits = cfg.thresholds.limits(name, dl);
        let row = |metric: &str, unit: &str, values: (f64, f64, f64), ci: (f64, f64)| {
            let (baseline, current, delta) = values;
            // Signed so that positive is worse: the change, its interval and the threshold.
            let (t, w, ci_w) = if unit == "%" {
                (limits.top1_drop_pts, -delta, (-ci.1, -ci.0))
            } else {
                (limits.p95_rise_pct, delta, ci)
            };
            MetricDelta {
                selector: name.to_string(),
                deadline_ms: dl,
                metric: metric.into(),
                unit: unit.into(),
                baseline,
                current,
                delta,
                ci_low: ci.0,
                ci_high: ci.1,
                change: Change::of(w, ci_w, t),
                threshold: t,
                // A regression is flagged once past both the threshold and the interval's
                // reach below its estimate.
                detectable: t.max(w - ci_w.0),
                paired,
                pairing: how.clone(),
                runs: fb.len().min(fc.len()),
                informational: limits.informational,
            }
        };
        // Accuracy: change in points; paired, through the per-frame differences.
        let (vb, vc) = (
            top1_in_deadline(fb.iter().flatten().copied()),
            top1_in_deadline(fc.iter().flatten().copied()),
        );
        let ci = if paired {
            let mut w = PairedWindows::default();
            for (b, c) in fb.iter().zip(&fc) {
                let outcomes = |v: &Vec<&Sample>| -> FrameOutcomes {
                    v.iter().map(|r| frame_outcome(r)).collect()
                };
                w.add(&outcomes(c), &outcomes(b), cfg.window_s);
            }
            let d = w.delta(cfg).expect("shared frames");
            (d.ci_low, d.ci_high)
        } else {
            bootstrap(&wb, &wc, false, cfg, |b, c| {
                top1_in_deadline(c.iter().copied()) - top1_in_deadline(b.iter().copied())
            })
        };
        out.push(row("top1_within_deadline", "%", (vb, vc, vc - vb), ci));
        // Latency: change of p95 in percent.
        let (lb, lc) = (
            p95(fb.iter().flatten().copied()),
            p95(fc.iter().flatten().copied()),
        );
        let ci = bootstrap(&wb, &wc, paired, cfg, |b, c| {
            let (x, y) = (p95(b.iter().copied()), p95(c.iter().copied()));
            100.0 * (y - x) / x.max(1e-12)
        });
        let delta = 100.0 * (lc - lb) / lb.max(1e-12);
        out.push(row("latency_p95", "ms", (lb, lc, delta), ci));
    }
    if out.is_empty() {
        return Err("the runs share no (selector, deadline) with served frames".into());
    }
    Ok(out)
}

/// The comparison as a Markdown table, for a pull-request comment.
pub fn markdown(deltas: &[MetricDelta], cfg: &CompareConfig) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| selector | deadline | metric | baseline | current | change | 95 % CI | detectable | verdict |\n|---|---|---|---|---|---|---|---|---|"
    );
    for d in deltas {
        // Name, unit and decimals of the values, of the change, and the bad direction.
        let (metric, unit, vp, du, dp, bad) = if d.metric == "top1_within_deadline" {
            ("top-1 within deadline", "%", 2, "pts", 2, '-')
        } else {
            ("p95 latency", "ms", 3, "%", 1, '+')
        };
        let base = format!("{:.vp$} {unit}", d.baseline);
        let cur = format!("{:.vp$} {unit}", d.current);
        let change = format!("{:+.dp$} {du}", d.delta);
        let ci = format!("[{:+.dp$}, {:+.dp$}] {du}", d.ci_low, d.ci_high);
        let detectable = format!("{bad}{:.dp$} {du}", d.detectable);
        let verdict = match (d.change, d.informational) {
            (Change::NoChange, _) | (_, false) => d.change.label().to_string(),
            (c, true) => format!("{} (informational)", c.label().to_lowercase()),
        };
        let _ = writeln!(
            s,
            "| {} | {} ms | {metric} | {base} | {cur} | {change} | {ci} | {detectable} | {verdict} |",
            d.selector, d.deadline_ms,
        );
    }
    let mut how: Vec<&str> = deltas.iter().map(|d| d.pairing.as_str()).collect();
    how.dedup();
    let _ = writeln!(s);
    if let [one] = how.as_slice() {
        let _ = writeln!(s, "Comparison: {one}.");
    } else {
        for d in deltas.iter().filter(|d| d.metric == "top1_within_deadline") {
            let _ = writeln!(s, "- {} @ {} ms: {}", d.selector, d.deadline_ms, d.pairing);
        }
    }
    let t = &cfg.thresholds;
    let _ = writeln!(
        s,
        "Thresholds: top-1 within deadline may drop {} points, p95 latency may rise {} %{}; a verdict needs the change past its threshold and its whole 95 % interval on that side of no change (bootstrap over {} s windows, {} resamples). Detectable: the smallest regression this comparison would have flagged.",
        t.top1_drop_pts,
        t.p95_rise_pct,
        if t.rules.is_empty() {
            String::new()
        } else {
            format!(" ({} per-selector rules)", t.rules.len())
        },
        cfg.window_s,
        cfg.resamples
    );
    s
}

/// One entry of github-action-benchmark's custom formats.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BenchEntry {
    /// Series name.
    pub name: String,
    /// Unit.
    pub unit: String,
    /// Value.
    pub value: f64,
    /// The 95 % interval, as text.
    pub range: String,
}

/// The current run's values in github-action-benchmark's `customBiggerIsBetter` (top-1 within
/// deadline) and `customSmallerIsBetter` (p95 latency) formats.
pub fn benchmark_json(deltas: &[MetricDelta]) -> (Vec<BenchEntry>, Vec<BenchEntry>) {
    let (mut bigger, mut smaller) = (Vec::new(), Vec::new());
    for d in deltas {
        let e = BenchEntry {
            name: format!("{} @ {} ms: {}", d.selector, d.deadline_ms, d.metric),
            unit: d.unit.clone(),
            value: d.current,
            range: format!(
                "change 95% CI [{:.3}, {:.3}], detectable {:.3}",
                d.ci_low, d.ci_high, d.detectable
            ),
        };
        if d.metric == "top1_within_deadline" {
            bigger.push(e);
        } else {
            smaller.push(e);
        }
    }
    (bigger, smaller)
}

/// Reads the runs of a run directory: the repeats `repeats.json` lists
/// ([`crate::format::Repeats`], `opa run --repeat N`), or the run itself.
pub fn read_runs(dir: &std::path::Path) -> Result<Vec<Run>, RunError> {
    match crate::format::read_repeats(dir)? {
        Some(r) => r.runs.iter().map(|k| read_run(&dir.join(&k.dir))).collect(),
        None => Ok(vec![read_run(dir)?]),
    }
}

/// Reads a run directory's summary and samples.
pub fn read_run(dir: &std::path::Path) -> Result<(RunSummary, Vec<Sample>), RunError> {
    let summary: RunSummary = crate::format::read_json(&dir.join("summary.json"), "a run summary")?;
    let samples = crate::format::read_samples(&dir.join("samples.parquet"))?;
    Ok((summary, samples))
}
