//! The calibration profile: every candidate measured under a grid of conditions.
//!
//! Accuracy and the label-free signals depend on the content (the images), latency on the
//! load (the device): calibration measures the two factors apart, so a profile holds
//! `contents × loads` conditions from `candidates × (contents + loads)` measurements.
//! `opa calibrate` fills one on the calibration half of the shipped split (never on the
//! evaluation half that streams are cut from); `opa_reports::profile` stores it as parquet.

use crate::condition::BinRows;
use serde::{Deserialize, Serialize};

/// A candidate as the profile knows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProfileCandidate {
    /// Architecture id.
    pub id: String,
    /// Multiply-adds per image.
    pub macs: u64,
    /// Architecture encoding (one-hot choices), the input of architecture-level predictors.
    pub encoding: Vec<f64>,
}

impl ProfileCandidate {
    /// Architecture features for architecture-level predictors: the encoding and log MACs.
    pub fn features(&self) -> Vec<f64> {
        let mut e = self.encoding.clone();
        e.push((self.macs.max(1) as f64).ln());
        e
    }
}

/// What one candidate did on the images of one content condition.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ContentStats {
    /// Top-1 over the images, 0..=1.
    pub top1: f64,
    /// Mean max-softmax probability.
    pub confidence: f64,
    /// Mean softmax entropy, nats.
    pub entropy: f64,
    /// Mean top-1 minus top-2 probability.
    pub margin: f64,
    /// Top-1 per true class (NaN where the condition holds no image of the class).
    pub class_top1: Vec<f64>,
    /// Images measured.
    pub images: usize,
    /// Top-1 on the images on which the probe's confidence (max-softmax probability) fell in
    /// each of [`PROBE_BINS`] equal-width bins of 0..=1 (NaN where a bin holds no image): how
    /// this candidate fares on one frame given what the probe showed on it. Empty in profiles
    /// written before these tables.
    #[serde(default)]
    pub probe_bin_top1: Vec<f64>,
    /// Images per probe-confidence bin (the same for every candidate under a condition).
    #[serde(default)]
    pub probe_bin_images: Vec<usize>,
    /// Like `probe_bin_top1`, but binned by the probe's confidence on *another view* of the
    /// same image (shifted up to a pixel, brightness within ±3 %, the corruption drawn
    /// afresh): how this candidate fares on the other frames of a scene the probe read once.
    /// A reading carries less to them than to its own frame (on the shipped profile's live
    /// runs, larger candidates served after the probe's frame gained about half of what the
    /// same-image table promised). Empty in profiles written before these tables.
    #[serde(default)]
    pub view_bin_top1: Vec<f64>,
    /// Images per bin of the probe's confidence on the other view.
    #[serde(default)]
    pub view_bin_images: Vec<usize>,
}

/// Which per-frame table of a [`ContentStats`]: binned by the probe's confidence on the
/// same image, or on another view of it.
#[derive(Clone, Copy)]
pub(crate) enum BinTable {
    SameImage,
    OtherView,
}

impl BinTable {
    pub(crate) fn of(self, s: &ContentStats) -> (&[f64], &[usize]) {
        match self {
            BinTable::SameImage => (&s.probe_bin_top1, &s.probe_bin_images),
            BinTable::OtherView => (&s.view_bin_top1, &s.view_bin_images),
        }
    }

    /// The profile's column prefix.
    fn name(self) -> &'static str {
        match self {
            BinTable::SameImage => "probe_bin",
            BinTable::OtherView => "view_bin",
        }
    }
}

/// Bins of the probe's per-frame confidence in [`ContentStats::probe_bin_top1`].
pub const PROBE_BINS: usize = 20;

pub use crate::condition::GAIN_SHRINK;

/// The bin of a probe confidence (clamped into 0..=1).
pub fn probe_bin(confidence: f64) -> usize {
    if !confidence.is_finite() {
        return 0;
    }
    ((confidence.clamp(0.0, 1.0) * PROBE_BINS as f64) as usize).min(PROBE_BINS - 1)
}

/// One candidate's latency (batch 1) at one injected load.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LatencyStats {
    /// Mean over the timed runs, ms.
    pub mean_ms: f64,
    /// Median, ms.
    pub p50_ms: f64,
    /// 95th percentile, ms.
    pub p95_ms: f64,
}

impl LatencyStats {
    /// The spread (sigma of the log) of the log-normal through the median and the 95th
    /// percentile; 0 when the 95th percentile is not above the median.
    pub fn log_sigma(&self) -> f64 {
        (self.p95_ms / self.p50_ms).max(1.0).ln() / Z95
    }
}

/// The standard normal's 95th percentile.
const Z95: f64 = 1.644_853_6;

/// Every candidate under every content condition and every load level.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// The candidates, in the candidates file's order.
    pub candidates: Vec<ProfileCandidate>,
    /// Index of the probe sub-network among `candidates`.
    pub probe: usize,
    /// Content conditions (`clean`, `fog@3`, `classes=0,2,4,6`).
    pub contents: Vec<String>,
    /// Injected CPU loads, ascending.
    pub loads: Vec<f64>,
    /// `content[candidate][content]`.
    pub content: Vec<Vec<ContentStats>>,
    /// `latency[candidate][load]`.
    pub latency: Vec<Vec<LatencyStats>>,
}

/// A condition of the grid: content index and load index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cond {
    /// Index into [`Profile::contents`].
    pub content: usize,
    /// Index into [`Profile::loads`].
    pub load: usize,
}

/// What the probe sub-network shows at run time, without labels.
#[derive(Clone, Copy, Debug, PartialEq, Default, Serialize, Deserialize)]
pub struct Signals {
    /// Mean max-softmax probability.
    pub confidence: f64,
    /// Mean softmax entropy, nats.
    pub entropy: f64,
    /// Mean top-1 minus top-2 probability.
    pub margin: f64,
    /// Mean compute time of the probe, ms.
    pub latency_ms: f64,
    /// Share of the probe's readings per bin of its confidence ([`probe_bin`]); all 0 when
    /// not known.
    pub bins: [f64; PROBE_BINS],
}

impl Profile {
    /// Checks shapes and values; the message says what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        let n = self.candidates.len();
        if n == 0 || self.contents.is_empty() || self.loads.is_empty() {
            return Err("the profile holds no candidate, content condition or load level".into());
        }
        if self.probe >= n {
            return Err(format!("probe index {} of {n} candidates", self.probe));
        }
        if self.content.len() != n || self.latency.len() != n {
            return Err("tables do not have one row per candidate".into());
        }
        for (c, (a, l)) in self.content.iter().zip(&self.latency).enumerate() {
            if a.len() != self.contents.len() || l.len() != self.loads.len() {
                return Err(format!(
                    "candidate {}: not measured under every condition",
                    self.candidates[c].id
                ));
            }
            if a.iter().any(|s| !(0.0..=1.0).contains(&s.top1))
                || l.iter()
                    .any(|s| !(s.mean_ms > 0.0 && s.mean_ms.is_finite()))
            {
                return Err(format!(
                    "candidate {}: top-1 outside 0..=1 or a non-positive latency",
                    self.candidates[c].id
                ));
            }
        }
        for table in [BinTable::SameImage, BinTable::OtherView] {
            let binned = |s: &ContentStats| {
                let (t, k) = table.of(s);
                t.len() == PROBE_BINS && k.len() == PROBE_BINS
            };
            let any = self.content.iter().flatten().any(binned);
            let name = table.name();
            if any && !self.content.iter().flatten().all(binned) {
                return Err(format!(
                    "per-frame tables ({name}_top1, {name}_images) must hold {PROBE_BINS} bins under every condition, or be absent everywhere"
                ));
            }
            if self
                .content
                .iter()
                .flatten()
                .flat_map(|s| table.of(s).0)
                .any(|v| !(v.is_nan() || (0.0..=1.0).contains(v)))
            {
                return Err(format!("a per-frame top-1 ({name}_top1) outside 0..=1"));
            }
        }
        if self.loads.windows(2).any(|w| w[0] >= w[1]) {
            return Err("load levels must be strictly ascending".into());
        }
        let e = self.candidates[0].encoding.len();
        if self.candidates.iter().any(|c| c.encoding.len() != e) {
            return Err("architecture encodings differ in length".into());
        }
        Ok(())
    }

    /// Every condition of the grid, content-major.
    pub fn conditions(&self) -> Vec<Cond> {
        (0..self.contents.len())
            .flat_map(|content| (0..self.loads.len()).map(move |load| Cond { content, load }))
            .collect()
    }

    /// The probe's signals under a condition, as calibration measured them.
    pub fn signals(&self, c: Cond) -> Signals {
        let a = &self.content[self.probe][c.content];
        let images: usize = a.probe_bin_images.iter().sum();
        let mut bins = [0.0; PROBE_BINS];
        for (b, &n) in bins.iter_mut().zip(&a.probe_bin_images) {
            *b = n as f64 / images.max(1) as f64;
        }
        Signals {
            confidence: a.confidence,
            entropy: a.entropy,
            margin: a.margin,
            latency_ms: self.latency[self.probe][c.load].mean_ms,
            bins,
        }
    }

    /// Index of a content condition by name.
    pub fn content_index(&self, name: &str) -> Option<usize> {
        self.contents.iter().position(|c| c == name)
    }

    /// Latency of `candidate` at `load`, linearly interpolated between measured levels
    /// (clamped at the ends).
    pub fn latency_at(&self, candidate: usize, load: f64) -> LatencyStats {
        let l = &self.latency[candidate];
        let loads = &self.loads;
        if load <= loads[0] {
            return l[0];
        }
        for i in 1..loads.len() {
            if load <= loads[i] {
                let t = (load - loads[i - 1]) / (loads[i] - loads[i - 1]);
                let mix = |a: f64, b: f64| a + (b - a) * t;
                return LatencyStats {
                    mean_ms: mix(l[i - 1].mean_ms, l[i].mean_ms),
                    p50_ms: mix(l[i - 1].p50_ms, l[i].p50_ms),
                    p95_ms: mix(l[i - 1].p95_ms, l[i].p95_ms),
                };
            }
        }
        l[loads.len() - 1]
    }

    /// Top-1 of `candidate` under `content` on images of class `label`, falling back to the
    /// condition's overall top-1 where the class was not measured.
    pub fn class_top1(&self, candidate: usize, content: usize, label: u16) -> f64 {
        let s = &self.content[candidate][content];
        s.class_top1
            .get(label as usize)
            .copied()
            .filter(|v| v.is_finite())
            .unwrap_or(s.top1)
    }

    /// Whether the profile holds per-frame tables ([`Profile::frame_table`] is Some), without
    /// pooling them.
    pub fn has_frame_table(&self) -> bool {
        BinRows::new(self, BinTable::SameImage).is_some()
    }

    /// Every candidate's top-1 on one frame given the probe's confidence on it, per
    /// confidence bin: `table[bin][candidate]`, pooled over the content conditions (each
    /// bin's images weighted alike). A bin no condition filled takes the nearest filled
    /// bin's values. None when the profile holds no per-frame tables.
    pub fn frame_table(&self) -> Option<Vec<Vec<f64>>> {
        self.binned_table(BinTable::SameImage)
    }

    /// Like [`Profile::frame_table`], given the probe's confidence on another frame of the
    /// same scene ([`ContentStats::view_bin_top1`]). None when the profile predates these
    /// tables.
    pub fn view_table(&self) -> Option<Vec<Vec<f64>>> {
        self.binned_table(BinTable::OtherView)
    }

    /// Like [`Profile::frame_table`], but a candidate's top-1 is the probe's pooled top-1 plus
    /// a low `quantile` of its gain over the probe across the content conditions: a gain
    /// OPA acts on should hold under most conditions the profile measured, not only on
    /// their average (on live streams, gains that only some conditions show were not
    /// delivered). Each condition's gain in a bin is shrunk toward the pooled gain by its
    /// images n as n / (n + [`GAIN_SHRINK`]) (a condition with a few images in a bin says
    /// little); conditions are weighed by their images in the bin.
    pub fn robust_frame_table(&self, quantile: f64) -> Option<Vec<Vec<f64>>> {
        self.robust_table(BinTable::SameImage, quantile)
    }

    /// [`Profile::robust_frame_table`] for the other-view tables ([`Profile::view_table`]).
    pub fn robust_view_table(&self, quantile: f64) -> Option<Vec<Vec<f64>>> {
        self.robust_table(BinTable::OtherView, quantile)
    }

    fn robust_table(&self, table: BinTable, quantile: f64) -> Option<Vec<Vec<f64>>> {
        let mut rows = BinRows::new(self, table)?;
        let uniform = vec![1.0; self.contents.len()];
        Some(
            (0..PROBE_BINS)
                .map(|b| rows.robust_row(b, &uniform, quantile))
                .collect(),
        )
    }

    fn binned_table(&self, table: BinTable) -> Option<Vec<Vec<f64>>> {
        let rows = BinRows::new(self, table)?;
        let uniform = vec![1.0; self.contents.len()];
        Some((0..PROBE_BINS).map(|b| rows.row(b, &uniform)).collect())
    }

    /// The candidates on the idle, clean Pareto front (no other candidate is both faster at
    /// the lowest load and at least as accurate on `clean`), fastest first.
    pub fn idle_ladder(&self) -> Vec<usize> {
        let clean = self.content_index("clean").unwrap_or(0);
        let acc = |c: usize| self.content[c][clean].top1;
        let lat = |c: usize| self.latency[c][0].mean_ms;
        let mut order: Vec<usize> = (0..self.candidates.len()).collect();
        order.sort_by(|&a, &b| lat(a).total_cmp(&lat(b)).then(acc(b).total_cmp(&acc(a))));
        let mut ladder: Vec<usize> = Vec::new();
        for c in order {
            if ladder.last().is_none_or(|&l| acc(c) > acc(l)) {
                ladder.push(c);
            }
        }
        ladder
    }
}

/// Probability that a run whose latency is log-normal with median `p50` and 95th percentile
/// `p95` finishes within `budget_ms`.
pub fn within(budget_ms: f64, l: &LatencyStats) -> f64 {
    normal_cdf(z_score(budget_ms, l))
}

/// Where `ms` lies in the log-normal latency distribution `l`, in standard deviations of
/// log latency from the median (negative infinity for `ms <= 0`): a run of `ms` is on
/// time for any budget of `z_score(budget)` or more.
pub fn z_score(ms: f64, l: &LatencyStats) -> f64 {
    z_score_with(ms, l.p50_ms, z_sigma(l))
}

/// [`z_score`] with `l`'s median `p50_ms` and [`z_sigma`] taken apart (for callers that
/// read many z-scores of the same distributions and keep the sigmas).
#[inline]
pub fn z_score_with(ms: f64, p50_ms: f64, sigma: f64) -> f64 {
    if ms <= 0.0 {
        return f64::NEG_INFINITY;
    }
    (ms / p50_ms).ln() / sigma
}

/// The log-latency spread [`z_score`] divides by: `l`'s, at least a hair above zero.
pub fn z_sigma(l: &LatencyStats) -> f64 {
    l.log_sigma().max((1.0f64 + 1e-9).ln() / Z95)
}

/// The standard normal distribution function.
pub fn normal_cdf(z: f64) -> f64 {
    if z == f64::NEG_INFINITY {
        return 0.0;
    }
    0.5 * (1.0 + erf(z / std::f64::consts::SQRT_2))
}

/// The error function (Abramowitz–Stegun 7.1.26, |error| < 1.5e-7).
fn erf(x: f64) -> f64 {
    let t = 1.0 / (1.0 + 0.327_591_1 * x.abs());
    let y = 1.0
        - (((((1.061_405_429 * t - 1.453_152_027) * t) + 1.421_413_741) * t - 0.284_496_736) * t
            + 0.254_829_592)
            * t
            * (-x * x).exp();
    if x >= 0.0 { y } else { -y }
}

/// A small synthetic profile with known structure, for tests and examples: accuracy falls
/// with severity, more for cheaper candidates; latency grows with MACs and load.
pub fn synthetic(candidates: usize, severities: u8, loads: &[f64]) -> Profile {
    let cands: Vec<ProfileCandidate> = (0..candidates)
        .map(|i| ProfileCandidate {
            id: format!("c{i}"),
            macs: 1_000 * (i as u64 + 1),
            encoding: (0..candidates)
                .map(|j| if i == j { 1.0 } else { 0.0 })
                .collect(),
        })
        .collect();
    let mut contents = vec!["clean".to_string()];
    contents.extend((1..=severities).map(|s| format!("noise@{s}")));
    let content = (0..candidates)
        .map(|i| {
            let size = (i + 1) as f64 / candidates as f64; // 0..=1
            contents
                .iter()
                .enumerate()
                .map(|(s, _)| {
                    let sev = s as f64 / severities.max(1) as f64;
                    let top1 = (0.80 + 0.12 * size) - sev * (0.45 - 0.3 * size);
                    // The probe (candidate 0) grows less confident as content worsens.
                    let confidence = 0.95 - 0.5 * sev;
                    // Per frame: sure probe answers are right for everyone; where the probe
                    // is unsure, cheaper candidates fall further.
                    let probe_bin_top1: Vec<f64> = (0..PROBE_BINS)
                        .map(|b| {
                            let sure = (b as f64 + 0.5) / PROBE_BINS as f64;
                            (1.0 - (1.0 - sure) * (1.3 - 0.8 * size)).clamp(0.0, 1.0)
                        })
                        .collect();
                    ContentStats {
                        top1,
                        confidence,
                        entropy: 0.2 + 1.2 * sev,
                        margin: 0.9 - 0.6 * sev,
                        class_top1: vec![top1; 10],
                        images: 100,
                        view_bin_top1: probe_bin_top1.clone(),
                        view_bin_images: vec![5; PROBE_BINS],
                        probe_bin_top1,
                        probe_bin_images: vec![5; PROBE_BINS],
                    }
                })
                .collect()
        })
        .collect();
    let latency = (0..candidates)
        .map(|i| {
            loads
                .iter()
                .map(|&l| {
                    let mean = (0.2 + 0.3 * i as f64) * (1.0 + 2.0 * l);
                    LatencyStats {
                        mean_ms: mean,
                        p50_ms: mean * 0.9,
                        p95_ms: mean * 1.6,
                    }
                })
                .collect()
        })
        .collect();
    Profile {
        candidates: cands,
        probe: 0,
        contents,
        loads: loads.to_vec(),
        content,
        latency,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_profile_is_valid_and_interpolates() {
        let p = synthetic(4, 3, &[0.0, 0.5, 1.0]);
        p.validate().unwrap();
        assert_eq!(p.conditions().len(), 4 * 3);
        let mid = p.latency_at(2, 0.25).mean_ms;
        let expect = (0.2 + 0.6) * 1.5;
        assert!((mid - expect).abs() < 1e-12, "{mid} vs {expect}");
        assert_eq!(p.latency_at(2, 2.0), p.latency[2][2]);
        assert_eq!(p.idle_ladder(), vec![0, 1, 2, 3]);
    }

    #[test]
    fn frame_table_pools_conditions_by_images() {
        let mut p = synthetic(2, 1, &[0.0]);
        assert_eq!(probe_bin(0.0), 0);
        assert_eq!(probe_bin(0.999), PROBE_BINS - 1);
        assert_eq!(probe_bin(1.0), PROBE_BINS - 1);
        assert_eq!(probe_bin(0.52), PROBE_BINS / 2);
        // Bin 3: candidate 1 right on 1 of 1 image under clean, 0 of 3 under noise.
        p.content[1][0].probe_bin_top1[3] = 1.0;
        p.content[1][0].probe_bin_images[3] = 1;
        p.content[1][1].probe_bin_top1[3] = 0.0;
        p.content[1][1].probe_bin_images[3] = 3;
        assert!(p.has_frame_table());
        let t = p.frame_table().unwrap();
        assert!((t[3][1] - 0.25).abs() < 1e-12, "{}", t[3][1]);
        // An empty bin takes its nearest filled neighbour's values.
        for row in &mut p.content {
            for s in row {
                s.probe_bin_images[0] = 0;
            }
        }
        let t = p.frame_table().unwrap();
        assert_eq!(t[0], t[1]);
        p.validate().unwrap();
        // Old profiles without the tables: none, and still valid.
        for row in &mut p.content {
            for s in row {
                s.probe_bin_top1.clear();
                s.probe_bin_images.clear();
                s.view_bin_top1.clear();
                s.view_bin_images.clear();
            }
        }
        assert!(p.frame_table().is_none() && !p.has_frame_table());
        p.validate().unwrap();
        p.content[0][0].probe_bin_top1 = vec![0.5; PROBE_BINS];
        p.content[0][0].probe_bin_images = vec![1; PROBE_BINS];
        assert!(p.validate().unwrap_err().contains("probe_bin_top1"));
    }

    #[test]
    fn robust_table_counts_on_a_gain_only_where_most_conditions_show_it() {
        // Six conditions of 100 images each in bin 10. The probe: 50 % right in all.
        // Candidate 1: +30 points under noise@1 only (pooled gain +5); candidate 2: +10
        // under every condition.
        let mut p = synthetic(3, 5, &[0.0]);
        assert_eq!(p.contents.len(), 6);
        for (c, row) in p.content.iter_mut().enumerate() {
            for (k, s) in row.iter_mut().enumerate() {
                s.probe_bin_images[10] = 100;
                s.probe_bin_top1[10] = match (c, k) {
                    (0, _) => 0.5,
                    (1, 1) => 0.8,
                    (1, _) => 0.5,
                    _ => 0.6,
                };
            }
        }
        let pooled = p.frame_table().unwrap();
        let robust = p.robust_frame_table(0.25).unwrap();
        assert!((pooled[10][1] - 0.55).abs() < 1e-12);
        // Each condition's gain shrunk toward the pooled +5 by 20 pseudo-images: noise@1
        // (100 x 0.30 + 20 x 0.05) / 120, the others 20 x 0.05 / 120; the lower quartile of
        // six equal weights is the second smallest.
        assert!(
            (robust[10][1] - (0.5 + 1.0 / 120.0)).abs() < 1e-12,
            "{}",
            robust[10][1]
        );
        assert!((robust[10][2] - 0.6).abs() < 1e-12);
        assert!((robust[10][0] - 0.5).abs() < 1e-12);
        // Where every condition agrees (the synthetic profile's other bins), it is the pooled
        // table; the other-view table likewise.
        for b in (0..PROBE_BINS).filter(|&b| b != 10) {
            for c in 0..3 {
                assert!(
                    (robust[b][c] - pooled[b][c]).abs() < 1e-12,
                    "bin {b} candidate {c}"
                );
            }
        }
        let (view, robust_view) = (p.view_table().unwrap(), p.robust_view_table(0.25).unwrap());
        for b in 0..PROBE_BINS {
            for c in 0..3 {
                assert!((robust_view[b][c] - view[b][c]).abs() < 1e-12);
            }
        }
        // The upper end of the quantiles reaches the one condition's gain.
        let top = p.robust_frame_table(1.0).unwrap();
        assert!(
            (top[10][1] - (0.5 + 31.0 / 120.0)).abs() < 1e-12,
            "{}",
            top[10][1]
        );
    }

    #[test]
    fn view_table_is_binned_by_the_other_view() {
        let mut p = synthetic(2, 1, &[0.0]);
        // Bin 3 of the other view: candidate 1 right on 2 of 4 images; the same-image table
        // stays as it was.
        for row in &mut p.content {
            for s in row {
                s.view_bin_images = vec![0; PROBE_BINS];
                s.view_bin_images[3] = 2;
            }
        }
        p.content[1][0].view_bin_top1[3] = 1.0;
        p.content[1][1].view_bin_top1[3] = 0.0;
        let (same, view) = (p.frame_table().unwrap(), p.view_table().unwrap());
        assert_eq!(view[3][1], 0.5);
        assert_eq!(
            view[0], view[3],
            "every empty bin takes the only filled one"
        );
        assert_ne!(same[3][1], 0.5);
        p.validate().unwrap();
        // Profiles written before the view tables: none, the same-image table still there.
        for row in &mut p.content {
            for s in row {
                s.view_bin_top1.clear();
                s.view_bin_images.clear();
            }
        }
        assert!(p.view_table().is_none());
        assert_eq!(p.frame_table().unwrap(), same);
        p.validate().unwrap();
        p.content[1][0].view_bin_top1 = vec![1.5; PROBE_BINS];
        p.content[1][0].view_bin_images = vec![1; PROBE_BINS];
        assert!(p.validate().unwrap_err().contains("view_bin"));
    }

    #[test]
    fn within_is_a_distribution_function() {
        let l = LatencyStats {
            mean_ms: 1.0,
            p50_ms: 1.0,
            p95_ms: 2.0,
        };
        assert!((within(1.0, &l) - 0.5).abs() < 1e-6);
        assert!((within(2.0, &l) - 0.95).abs() < 1e-4);
        assert!(within(0.5, &l) < within(1.5, &l));
        assert_eq!(within(0.0, &l), 0.0);
    }

    #[test]
    fn validate_names_the_problem() {
        let mut p = synthetic(3, 2, &[0.0, 1.0]);
        p.content[1][0].top1 = 1.5;
        assert!(p.validate().unwrap_err().contains("c1"));
        let mut p = synthetic(3, 2, &[0.0, 1.0]);
        p.loads = vec![1.0, 0.0];
        assert!(p.validate().unwrap_err().contains("ascending"));
    }
}
