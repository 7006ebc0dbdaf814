//! Regression tracking: two runs of the same scenario compared per selector, deadline and
//! metric, with a bootstrap 95 % confidence interval of the change over time windows. A
//! change is called a regression (or an improvement) only when the whole interval is past
//! the threshold, as criterion and hyperfine do.

use crate::format::{RunError, RunSummary, Sample};
use crate::summary::SelectorSummary;
use opa_predictors::Phase;
use opa_predictors::stats::{interval95, percentile};
use rand::{Rng, SeedableRng};
use serde::Serialize;

/// Thresholds and bootstrap settings.
#[derive(Clone, Debug, PartialEq)]
pub struct CompareConfig {
    /// Largest tolerated drop of top-1 within deadline, points.
    pub max_accuracy_drop_points: f64,
    /// Largest tolerated rise of p95 latency, percent.
    pub max_latency_increase_percent: f64,
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
            max_accuracy_drop_points: 1.0,
            max_latency_increase_percent: 10.0,
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
}

impl MetricDelta {
    /// `b`'s (selector, deadline) with (baseline, current, change) `values`, the change's
    /// interval `ci` and verdict `change` (metric and unit left empty).
    fn of(b: &SelectorSummary, values: (f64, f64, f64), ci: (f64, f64), change: Change) -> Self {
        let (baseline, current, delta) = values;
        MetricDelta {
            selector: b.selector.clone(),
            deadline_ms: b.deadline_ms,
            metric: String::new(),
            unit: String::new(),
            baseline,
            current,
            delta,
            ci_low: ci.0,
            ci_high: ci.1,
            change,
        }
    }
}

impl Change {
    /// Regressed when the whole interval is past the threshold `t` on the bad side (`worse`:
    /// the interval's nearest end, signed so that positive is worse), improved when it is on
    /// the good side (`better`: its other end, signed so that positive is better).
    fn past(worse: f64, better: f64, t: f64) -> Change {
        if worse > t {
            Change::Regressed
        } else if better > t {
            Change::Improved
        } else {
            Change::NoChange
        }
    }
}

/// Frames of `selector` at `deadline_ms` (served, and dropped unanswered), grouped by time
/// window of arrival.
fn windows<'a>(
    rows: &'a [Sample],
    selector: &str,
    deadline_ms: f64,
    window_s: f64,
) -> Vec<Vec<&'a Sample>> {
    let mut w: Vec<Vec<&Sample>> = Vec::new();
    for r in rows
        .iter()
        .filter(|r| r.selector == selector && r.deadline_ms == deadline_ms && r.is_frame())
    {
        let i = window_index(r.arrival_s, window_s);
        if w.len() <= i {
            w.resize(i + 1, Vec::new());
        }
        w[i].push(r);
    }
    w.retain(|x| !x.is_empty());
    w
}

/// The time window of `window_s` seconds a frame arriving at `arrival_s` falls in.
fn window_index(arrival_s: f64, window_s: f64) -> usize {
    (arrival_s / window_s.max(1e-9)).floor().max(0.0) as usize
}

fn top1_in_deadline(rows: &[&Sample]) -> f64 {
    100.0 * rows.iter().filter(|r| r.correct && r.deadline_met).count() as f64
        / rows.len().max(1) as f64
}

/// The 95th percentile latency of the served frames (a dropped frame has none).
fn p95(rows: &[&Sample]) -> f64 {
    let lat: Vec<f64> = rows
        .iter()
        .filter(|r| r.phase == Phase::Serve)
        .map(|r| r.latency_ms)
        .collect();
    percentile(&lat, 95.0)
}

/// Resamples whole windows with replacement and evaluates `metric` on the frames drawn.
fn resample<'a>(w: &[Vec<&'a Sample>], rng: &mut impl Rng) -> Vec<&'a Sample> {
    (0..w.len())
        .flat_map(|_| w[rng.random_range(0..w.len())].iter().copied())
        .collect()
}

/// Two selectors of one run on the same frames: `a`'s top-1 within the deadline less `b`'s,
/// with a paired bootstrap 95 % interval ([`paired_top1`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PairedDelta {
    /// `a` − `b`, points.
    pub delta: f64,
    /// Bootstrap 95 % interval of `delta`, points.
    pub ci_low: f64,
    /// Upper end.
    pub ci_high: f64,
    /// Frames both answered or dropped.
    pub frames: usize,
    /// Frames right within the deadline for `a` only, and for `b` only.
    pub only_a: usize,
    pub only_b: usize,
}

impl PairedDelta {
    /// As printed: `a` above or below `b` only when the whole interval is.
    pub fn verdict(&self) -> &'static str {
        if self.only_a == 0 && self.only_b == 0 {
            "the same frames right"
        } else if self.ci_low > 0.0 {
            "above"
        } else if self.ci_high < 0.0 {
            "below"
        } else {
            "level within noise"
        }
    }
}

/// One selector's frames at one deadline, by frame index: (frame, arrival s, right within
/// the deadline), what [`paired`] pairs.
pub type FrameOutcomes = Vec<(u64, f64, bool)>;

/// The frames (answered or dropped) of `selector` at `deadline_ms` in `rows`.
pub fn frame_outcomes(rows: &[Sample], selector: &str, deadline_ms: f64) -> FrameOutcomes {
    let mut v: FrameOutcomes = rows
        .iter()
        .filter(|r| r.selector == selector && r.deadline_ms == deadline_ms && r.is_frame())
        .map(frame_outcome)
        .collect();
    v.sort_by_key(|f| f.0);
    v
}

/// A frame's row as [`FrameOutcomes`] holds it.
pub fn frame_outcome(r: &Sample) -> (u64, f64, bool) {
    (r.frame, r.arrival_s, r.correct && r.deadline_met)
}

/// `a`'s top-1 within the deadline against `b`'s on the frames of one run both answered or
/// dropped at `deadline_ms`, paired frame by frame: the difference in points, and its 95 %
/// interval from `cfg.resamples` resamples of whole time windows of `cfg.window_s` (frames
/// of one scene, one load phase and one stretch of the machine's speed are alike for both,
/// so windows, not frames, are what vary independently). Deterministic (`cfg.seed`). None
/// when the two share no frame at that deadline.
pub fn paired_top1(
    rows: &[Sample],
    a: &str,
    b: &str,
    deadline_ms: f64,
    cfg: &CompareConfig,
) -> Option<PairedDelta> {
    paired(
        &frame_outcomes(rows, a, deadline_ms),
        &frame_outcomes(rows, b, deadline_ms),
        cfg,
    )
}

/// [`paired_top1`] of two selectors' [`FrameOutcomes`] (each by frame index).
pub fn paired(
    a: &[(u64, f64, bool)],
    b: &[(u64, f64, bool)],
    cfg: &CompareConfig,
) -> Option<PairedDelta> {
    // Per window: (frames right for a only less for b only, frames).
    let mut w: Vec<(i64, usize)> = Vec::new();
    let (mut n, mut only_a, mut only_b) = (0, 0, 0);
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        let ((fa, arrival_s, x), (fb, _, y)) = (a[i], b[j]);
        if fa < fb {
            i += 1;
            continue;
        }
        if fb < fa {
            j += 1;
            continue;
        }
        (i, j) = (i + 1, j + 1);
        let k = window_index(arrival_s, cfg.window_s);
        if w.len() <= k {
            w.resize(k + 1, (0, 0));
        }
        w[k].0 += i64::from(x) - i64::from(y);
        w[k].1 += 1;
        n += 1;
        only_a += usize::from(x && !y);
        only_b += usize::from(y && !x);
    }
    w.retain(|x| x.1 > 0);
    if w.is_empty() {
        return None;
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(cfg.seed);
    let deltas: Vec<f64> = (0..cfg.resamples.max(10))
        .map(|_| {
            let (mut d, mut m) = (0i64, 0usize);
            for _ in 0..w.len() {
                let (x, k) = w[rng.random_range(0..w.len())];
                d += x;
                m += k;
            }
            100.0 * d as f64 / m as f64
        })
        .collect();
    let (ci_low, ci_high) = interval95(deltas);
    Some(PairedDelta {
        delta: 100.0 * (only_a as f64 - only_b as f64) / n as f64,
        ci_low,
        ci_high,
        frames: n,
        only_a,
        only_b,
    })
}

/// Compares every (selector, deadline) present in both runs.
pub fn compare(
    base: (&RunSummary, &[Sample]),
    cur: (&RunSummary, &[Sample]),
    cfg: &CompareConfig,
) -> Result<Vec<MetricDelta>, String> {
    if base.0.scenario != cur.0.scenario {
        return Err(format!(
            "the runs replay different scenarios ({} and {})",
            base.0.scenario, cur.0.scenario
        ));
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut out = Vec::new();
    for b in &base.0.selectors {
        let Some(c) = cur
            .0
            .selectors
            .iter()
            .find(|c| c.selector == b.selector && c.deadline_ms == b.deadline_ms)
        else {
            continue;
        };
        let wb = windows(base.1, &b.selector, b.deadline_ms, cfg.window_s);
        let wc = windows(cur.1, &c.selector, c.deadline_ms, cfg.window_s);
        if wb.is_empty() || wc.is_empty() {
            continue;
        }
        let ab: Vec<&Sample> = wb.iter().flatten().copied().collect();
        let ac: Vec<&Sample> = wc.iter().flatten().copied().collect();
        // Accuracy: change in points.
        let (vb, vc) = (top1_in_deadline(&ab), top1_in_deadline(&ac));
        let deltas: Vec<f64> = (0..cfg.resamples.max(10))
            .map(|_| {
                top1_in_deadline(&resample(&wc, &mut rng))
                    - top1_in_deadline(&resample(&wb, &mut rng))
            })
            .collect();
        // Higher is better: a drop past the threshold regresses.
        let (lo, hi) = interval95(deltas);
        let t = cfg.max_accuracy_drop_points;
        out.push(MetricDelta {
            metric: "top1_within_deadline".into(),
            unit: "%".into(),
            ..MetricDelta::of(b, (vb, vc, vc - vb), (lo, hi), Change::past(-hi, lo, t))
        });
        // Latency: change of p95 in percent.
        let (lb, lc) = (p95(&ab), p95(&ac));
        let deltas: Vec<f64> = (0..cfg.resamples.max(10))
            .map(|_| {
                let (x, y) = (p95(&resample(&wb, &mut rng)), p95(&resample(&wc, &mut rng)));
                100.0 * (y - x) / x.max(1e-12)
            })
            .collect();
        // Lower is better: an increase past the threshold regresses.
        let (lo, hi) = interval95(deltas);
        let t = cfg.max_latency_increase_percent;
        let delta = 100.0 * (lc - lb) / lb.max(1e-12);
        out.push(MetricDelta {
            metric: "latency_p95".into(),
            unit: "ms".into(),
            ..MetricDelta::of(b, (lb, lc, delta), (lo, hi), Change::past(lo, -hi, t))
        });
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
        "| selector | deadline | metric | baseline | current | change | 95 % CI | verdict |\n|---|---|---|---|---|---|---|---|"
    );
    for d in deltas {
        let (metric, base, cur, change, ci) = if d.metric == "top1_within_deadline" {
            (
                "top-1 within deadline",
                format!("{:.2} %", d.baseline),
                format!("{:.2} %", d.current),
                format!("{:+.2} pts", d.delta),
                format!("[{:+.2}, {:+.2}] pts", d.ci_low, d.ci_high),
            )
        } else {
            (
                "p95 latency",
                format!("{:.3} ms", d.baseline),
                format!("{:.3} ms", d.current),
                format!("{:+.1} %", d.delta),
                format!("[{:+.1}, {:+.1}] %", d.ci_low, d.ci_high),
            )
        };
        let _ = writeln!(
            s,
            "| {} | {} ms | {metric} | {base} | {cur} | {change} | {ci} | {} |",
            d.selector,
            d.deadline_ms,
            d.change.label()
        );
    }
    let _ = writeln!(
        s,
        "\nThresholds: top-1 within deadline may drop {} points, p95 latency may rise {} %; a verdict needs the whole interval past the threshold (bootstrap over {} s windows, {} resamples).",
        cfg.max_accuracy_drop_points, cfg.max_latency_increase_percent, cfg.window_s, cfg.resamples
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
            range: format!("change 95% CI [{:.3}, {:.3}]", d.ci_low, d.ci_high),
        };
        if d.metric == "top1_within_deadline" {
            bigger.push(e);
        } else {
            smaller.push(e);
        }
    }
    (bigger, smaller)
}

/// Reads a run directory's summary and samples.
pub fn read_run(dir: &std::path::Path) -> Result<(RunSummary, Vec<Sample>), RunError> {
    let path = dir.join("summary.json");
    let text = std::fs::read(&path).map_err(|e| RunError::Io {
        path: path.clone(),
        source: e,
    })?;
    let summary: RunSummary = serde_json::from_slice(&text).map_err(|e| RunError::Table {
        path: path.clone(),
        message: format!("not a run summary: {e}"),
    })?;
    let samples = crate::format::read_samples(&dir.join("samples.parquet"))?;
    Ok((summary, samples))
}
