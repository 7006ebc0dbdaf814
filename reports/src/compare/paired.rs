//! Two sets of answers on the same frames compared frame by frame: the difference in frames
//! right within the deadline, with a bootstrap 95 % interval over time windows of the
//! per-frame differences. One implementation for the goals line of `opa run` (two selectors
//! of one run), `opa stress` and `opa compare` (one selector in two runs that share frames).

use super::{CompareConfig, window_index};
use crate::format::Sample;
use opa_predictors::stats::interval95;
use rand::{Rng, SeedableRng};

/// `a`'s top-1 within the deadline less `b`'s on the frames both answered or dropped, with a
/// paired bootstrap 95 % interval.
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
    let mut w = PairedWindows::default();
    w.add(a, b, cfg.window_s);
    w.delta(cfg)
}

/// Per-frame differences of `a` and `b` summed by time window, over one or more pairs of
/// runs (repeats with the same seeds add their windows beside the first's).
#[derive(Clone, Debug, Default)]
pub struct PairedWindows {
    /// Per window: frames right for `a` only less for `b` only, and frames.
    windows: Vec<(i64, usize)>,
    frames: usize,
    only_a: usize,
    only_b: usize,
}

impl PairedWindows {
    /// Adds the frames `a` and `b` (each by frame index) share, in windows of `window_s` of
    /// their arrival (a repeat's windows are its own).
    pub fn add(&mut self, a: &[(u64, f64, bool)], b: &[(u64, f64, bool)], window_s: f64) {
        let mut w: Vec<(i64, usize)> = Vec::new();
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
            let k = window_index(arrival_s, window_s);
            if w.len() <= k {
                w.resize(k + 1, (0, 0));
            }
            w[k].0 += i64::from(x) - i64::from(y);
            w[k].1 += 1;
            self.frames += 1;
            self.only_a += usize::from(x && !y);
            self.only_b += usize::from(y && !x);
        }
        self.windows.extend(w.into_iter().filter(|x| x.1 > 0));
    }

    /// The difference and its bootstrap interval (`cfg.resamples` resamples of whole
    /// windows, seeded by `cfg.seed`); None without a shared frame.
    pub fn delta(&self, cfg: &CompareConfig) -> Option<PairedDelta> {
        let w = &self.windows;
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
            delta: 100.0 * (self.only_a as f64 - self.only_b as f64) / self.frames as f64,
            ci_low,
            ci_high,
            frames: self.frames,
            only_a: self.only_a,
            only_b: self.only_b,
        })
    }
}
