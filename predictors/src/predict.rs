//! Accuracy and latency predictors: from what the probe shows (its [`Signals`]), the top-1
//! and mean latency of every candidate. Fitted on a [`Profile`]'s conditions, in named
//! variants users can compare (`opa predictors eval`).
//!
//! Linear algebra and the least-squares fits are nalgebra's (Cholesky of the ridge normal
//! equations); nothing here is a hand-written solver.

use crate::profile::{Cond, LatencyStats, Profile, ProfileCandidate, Signals};
use nalgebra::{DMatrix, DVector};
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

/// The predictor variants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Variant {
    /// Latency = idle latency × the probe's slowdown; accuracy = clean accuracy × the
    /// probe's confidence drop.
    Ratio,
    /// Ridge regression per candidate on the probe's signals.
    Linear,
    /// One model over architecture encoding ⊕ probe signals that predicts every candidate,
    /// calibrated or not: a one-hidden-layer network with a fixed random hidden layer
    /// (random features, seeded) and a ridge-fitted output layer.
    SharedMlp,
    /// Average of the nearest calibrated conditions in probe-signal space.
    Knn,
    /// Upper bound, not deployable: `linear` that also sees the probe's true top-1.
    ProbeLabels,
}

impl Variant {
    /// Every variant, in table order.
    pub const ALL: [Variant; 5] = [
        Variant::Ratio,
        Variant::Linear,
        Variant::SharedMlp,
        Variant::Knn,
        Variant::ProbeLabels,
    ];

    /// Name in scenario files and tables.
    pub fn name(self) -> &'static str {
        match self {
            Variant::Ratio => "ratio",
            Variant::Linear => "linear",
            Variant::SharedMlp => "shared-mlp",
            Variant::Knn => "knn",
            Variant::ProbeLabels => "probe-labels",
        }
    }

    /// True when the variant only needs what a deployed system sees.
    pub fn deployable(self) -> bool {
        self != Variant::ProbeLabels
    }
}

impl std::str::FromStr for Variant {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Variant::ALL
            .into_iter()
            .find(|v| v.name() == s)
            .ok_or_else(|| {
                format!("unknown predictor {s:?}: expected ratio, linear, shared-mlp, knn or probe-labels")
            })
    }
}

/// What a predictor says about one candidate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Prediction {
    /// Top-1, 0..=1.
    pub top1: f64,
    /// Mean batch-1 latency, ms.
    pub latency_ms: f64,
    /// Median latency, ms.
    pub p50_ms: f64,
    /// 95th-percentile latency, ms (the tail that decides deadline misses under contention).
    pub p95_ms: f64,
}

impl Prediction {
    /// The predicted latency distribution.
    pub fn latency(&self) -> LatencyStats {
        LatencyStats {
            mean_ms: self.latency_ms,
            p50_ms: self.p50_ms.min(self.p95_ms),
            p95_ms: self.p95_ms.max(self.p50_ms),
        }
    }
}

/// A fitted predictor.
pub trait Predictor: Send {
    /// The variant.
    fn variant(&self) -> Variant;
    /// Every candidate's predicted top-1 and latency. `probe_top1` is the probe's measured
    /// top-1: only [`Variant::ProbeLabels`] reads it.
    fn predict(&self, s: &Signals, probe_top1: Option<f64>) -> Vec<Prediction>;
}

/// Ridge penalty on standardised features (× rows): leave-condition-out accuracy MAE of
/// `linear` on the shipped profile 1.88 points (1.96 at 1e-3, where fits swing more
/// between sparse calibration conditions), still recovering exact synthetic relations.
const LAMBDA: f64 = 1e-2;

/// Fits `variant` on the conditions `train` of `profile`.
pub fn fit(
    variant: Variant,
    profile: &Profile,
    train: &[Cond],
) -> Result<Box<dyn Predictor>, String> {
    if train.is_empty() {
        return Err("no condition to fit on".into());
    }
    Ok(match variant {
        Variant::Ratio => Box::new(RatioModel::fit(profile, train)),
        Variant::Linear => Box::new(LinearModel::fit(profile, train, false)?),
        Variant::ProbeLabels => Box::new(LinearModel::fit(profile, train, true)?),
        Variant::SharedMlp => Box::new(SharedMlp::fit(profile, train)?),
        Variant::Knn => Box::new(Knn::fit(profile, train)),
    })
}

/// Per-column mean and standard deviation, to standardise features.
#[derive(Clone, Debug)]
struct Scaler {
    mean: Vec<f64>,
    std: Vec<f64>,
}

impl Scaler {
    fn fit(rows: &[Vec<f64>]) -> Scaler {
        let d = rows[0].len();
        let n = rows.len() as f64;
        let mean: Vec<f64> = (0..d)
            .map(|j| rows.iter().map(|r| r[j]).sum::<f64>() / n)
            .collect();
        let std = (0..d)
            .map(|j| {
                let v = rows.iter().map(|r| (r[j] - mean[j]).powi(2)).sum::<f64>() / n;
                if v > 1e-18 { v.sqrt() } else { 1.0 }
            })
            .collect();
        Scaler { mean, std }
    }

    fn apply(&self, row: &[f64]) -> Vec<f64> {
        row.iter()
            .zip(self.mean.iter().zip(&self.std))
            .map(|(x, (m, s))| (x - m) / s)
            .collect()
    }
}

/// Ridge regression with an unpenalised intercept: returns (weights, intercept) per target
/// column. `x` is n×d (already standardised), `y` is n×t.
fn ridge(
    x: &DMatrix<f64>,
    y: &DMatrix<f64>,
    lambda: f64,
) -> Result<(DMatrix<f64>, DVector<f64>), String> {
    let n = x.nrows() as f64;
    let xm = DVector::from_iterator(x.ncols(), x.column_iter().map(|c| c.sum() / n));
    let ym = DVector::from_iterator(y.ncols(), y.column_iter().map(|c| c.sum() / n));
    let mut xc = x.clone();
    for (j, mut col) in xc.column_iter_mut().enumerate() {
        col.add_scalar_mut(-xm[j]);
    }
    let mut yc = y.clone();
    for (j, mut col) in yc.column_iter_mut().enumerate() {
        col.add_scalar_mut(-ym[j]);
    }
    let mut a = xc.transpose() * &xc;
    for i in 0..a.nrows() {
        a[(i, i)] += lambda * n;
    }
    let chol = a
        .cholesky()
        .ok_or("ridge normal equations are not positive definite")?;
    let w = chol.solve(&(xc.transpose() * yc));
    let b = ym - w.transpose() * xm;
    Ok((w, b))
}

/// Accuracy features of the probe's signals: the three means and their second-order terms
/// (accuracy is not linear in confidence: it falls off faster once the probe is unsure).
fn signal_row(s: &Signals) -> Vec<f64> {
    let (c, e, m) = (s.confidence, s.entropy, s.margin);
    vec![c, e, m, c * c, e * e, m * m, c * e]
}

// ---------------------------------------------------------------- ratio

struct RatioModel {
    ref_confidence: f64,
    ref_latency_ms: f64,
    /// Per candidate: (clean top-1, idle latency).
    base: Vec<(f64, LatencyStats)>,
}

impl RatioModel {
    fn fit(p: &Profile, train: &[Cond]) -> RatioModel {
        // The reference is the clean content and the lowest load among the training
        // conditions; without clean content, the condition the probe is most confident on.
        let clean = p.content_index("clean");
        let acc_ref = *train
            .iter()
            .filter(|c| Some(c.content) == clean)
            .min_by_key(|c| c.load)
            .or_else(|| {
                train.iter().max_by(|a, b| {
                    p.signals(**a)
                        .confidence
                        .total_cmp(&p.signals(**b).confidence)
                })
            })
            .expect("train is not empty");
        let lat_ref = *train
            .iter()
            .min_by(|a, b| {
                p.loads[a.load].total_cmp(&p.loads[b.load]).then(
                    p.signals(**a)
                        .latency_ms
                        .total_cmp(&p.signals(**b).latency_ms),
                )
            })
            .expect("train is not empty");
        RatioModel {
            ref_confidence: p.signals(acc_ref).confidence,
            ref_latency_ms: p.signals(lat_ref).latency_ms,
            base: (0..p.candidates.len())
                .map(|c| {
                    (
                        p.content[c][acc_ref.content].top1,
                        p.latency[c][lat_ref.load],
                    )
                })
                .collect(),
        }
    }
}

impl Predictor for RatioModel {
    fn variant(&self) -> Variant {
        Variant::Ratio
    }
    fn predict(&self, s: &Signals, _: Option<f64>) -> Vec<Prediction> {
        let a = s.confidence / self.ref_confidence.max(1e-9);
        let l = s.latency_ms / self.ref_latency_ms.max(1e-9);
        self.base
            .iter()
            .map(|&(acc, lat)| Prediction {
                top1: (acc * a).clamp(0.0, 1.0),
                latency_ms: lat.mean_ms * l,
                p50_ms: lat.p50_ms * l,
                p95_ms: lat.p95_ms * l,
            })
            .collect()
    }
}

// ---------------------------------------------------------------- linear / probe-labels

struct LinearModel {
    with_labels: bool,
    acc_scaler: Scaler,
    /// d×candidates weights and intercepts of the accuracy fit.
    acc: (DMatrix<f64>, DVector<f64>),
    /// Per candidate: mean, median and p95 latency = a + b × probe latency.
    lat: Vec<[(f64, f64); 3]>,
}

impl LinearModel {
    fn features(s: &Signals, probe_top1: Option<f64>, with_labels: bool) -> Vec<f64> {
        let mut r = signal_row(s);
        if with_labels {
            r.push(probe_top1.unwrap_or(f64::NAN));
        }
        r
    }

    fn fit(p: &Profile, train: &[Cond], with_labels: bool) -> Result<LinearModel, String> {
        let rows: Vec<Vec<f64>> = train
            .iter()
            .map(|&c| {
                Self::features(
                    &p.signals(c),
                    Some(p.content[p.probe][c.content].top1),
                    with_labels,
                )
            })
            .collect();
        let scaler = Scaler::fit(&rows);
        let x = DMatrix::from_fn(rows.len(), rows[0].len(), |i, j| scaler.apply(&rows[i])[j]);
        let y = DMatrix::from_fn(train.len(), p.candidates.len(), |i, c| {
            p.content[c][train[i].content].top1
        });
        let acc = ridge(&x, &y, LAMBDA)?;
        let pl: Vec<f64> = train.iter().map(|&c| p.signals(c).latency_ms).collect();
        let lat = (0..p.candidates.len())
            .map(|c| {
                let fit = |f: fn(&LatencyStats) -> f64| {
                    let yl: Vec<f64> = train.iter().map(|t| f(&p.latency[c][t.load])).collect();
                    simple_regression(&pl, &yl)
                };
                [fit(|l| l.mean_ms), fit(|l| l.p50_ms), fit(|l| l.p95_ms)]
            })
            .collect();
        Ok(LinearModel {
            with_labels,
            acc_scaler: scaler,
            acc,
            lat,
        })
    }
}

/// Least squares y = a + b x; b = 0 when x does not vary.
pub(crate) fn simple_regression(x: &[f64], y: &[f64]) -> (f64, f64) {
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let sxx: f64 = x.iter().map(|v| (v - mx).powi(2)).sum();
    let sxy: f64 = x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum();
    let b = if sxx > 1e-18 { sxy / sxx } else { 0.0 };
    (my - b * mx, b)
}

impl Predictor for LinearModel {
    fn variant(&self) -> Variant {
        if self.with_labels {
            Variant::ProbeLabels
        } else {
            Variant::Linear
        }
    }
    fn predict(&self, s: &Signals, probe_top1: Option<f64>) -> Vec<Prediction> {
        let f = self
            .acc_scaler
            .apply(&Self::features(s, probe_top1, self.with_labels));
        let x = DVector::from_vec(f);
        let acc = self.acc.0.transpose() * x + &self.acc.1;
        acc.iter()
            .zip(&self.lat)
            .map(|(&a, l)| {
                let at = |(l0, l1): (f64, f64)| (l0 + l1 * s.latency_ms).max(1e-6);
                Prediction {
                    top1: a.clamp(0.0, 1.0),
                    latency_ms: at(l[0]),
                    p50_ms: at(l[1]),
                    p95_ms: at(l[2]),
                }
            })
            .collect()
    }
}

// ---------------------------------------------------------------- shared-mlp

/// Hidden units of the shared model.
const HIDDEN: usize = 256;

struct SharedMlp {
    /// Per candidate: encoding ⊕ log MACs.
    arch: Vec<Vec<f64>>,
    scaler: Scaler,
    /// HIDDEN × d input weights and HIDDEN biases, fixed at random (seed 0).
    w_in: DMatrix<f64>,
    b_in: DVector<f64>,
    /// Output layer: HIDDEN × 4 (top-1, log mean / median / p95 latency) and intercepts.
    out: (DMatrix<f64>, DVector<f64>),
    /// For prediction: per candidate, the hidden pre-activation of its architecture part
    /// (with the bias); the input weights of the signal part; the output weights transposed.
    /// The architecture part does not change at run time, so a round costs HIDDEN × 4 per
    /// candidate instead of HIDDEN × (encoding + 4).
    base: Vec<DVector<f64>>,
    w_sig: DMatrix<f64>,
    out_t: DMatrix<f64>,
}

/// Signal features at the end of the shared model's input.
const SIGNAL_FEATURES: usize = 4;

impl SharedMlp {
    fn input(arch: &[f64], s: &Signals) -> Vec<f64> {
        let mut r = arch.to_vec();
        r.extend([
            s.confidence,
            s.entropy,
            s.margin,
            s.latency_ms.max(1e-6).ln(),
        ]);
        r
    }

    fn hidden(&self, x: &[f64]) -> DVector<f64> {
        let x = DVector::from_vec(self.scaler.apply(x));
        (&self.w_in * x + &self.b_in).map(f64::tanh)
    }

    fn fit(p: &Profile, train: &[Cond]) -> Result<SharedMlp, String> {
        let arch: Vec<Vec<f64>> = p
            .candidates
            .iter()
            .map(ProfileCandidate::features)
            .collect();
        let mut rows = Vec::new();
        let mut ys = Vec::new();
        for &t in train {
            let s = p.signals(t);
            for (c, a) in arch.iter().enumerate() {
                rows.push(Self::input(a, &s));
                let l = &p.latency[c][t.load];
                ys.push([
                    p.content[c][t.content].top1,
                    l.mean_ms.ln(),
                    l.p50_ms.max(1e-6).ln(),
                    l.p95_ms.max(1e-6).ln(),
                ]);
            }
        }
        let scaler = Scaler::fit(&rows);
        let d = rows[0].len();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let scale = 1.0 / (d as f64).sqrt();
        let mut normal = || -> f64 { StandardNormal.sample(&mut rng) };
        let w_in = DMatrix::from_fn(HIDDEN, d, |_, _| normal() * scale * 1.5);
        let b_in = DVector::from_fn(HIDDEN, |_, _| normal() * 0.5);
        let mut m = SharedMlp {
            arch,
            scaler,
            w_in,
            b_in,
            out: (DMatrix::zeros(HIDDEN, 4), DVector::zeros(4)),
            base: Vec::new(),
            w_sig: DMatrix::zeros(HIDDEN, SIGNAL_FEATURES),
            out_t: DMatrix::zeros(4, HIDDEN),
        };
        let h = DMatrix::from_fn(rows.len(), HIDDEN, |_, _| 0.0);
        let mut h = h;
        for (i, r) in rows.iter().enumerate() {
            h.set_row(i, &m.hidden(r).transpose());
        }
        let y = DMatrix::from_fn(ys.len(), 4, |i, j| ys[i][j]);
        m.out = ridge(&h, &y, 1e-4)?;
        m.out_t = m.out.0.transpose();
        let split = d - SIGNAL_FEATURES;
        m.w_sig = m.w_in.columns(split, SIGNAL_FEATURES).into_owned();
        let w_arch = m.w_in.columns(0, split).into_owned();
        m.base = m
            .arch
            .iter()
            .map(|a| {
                let z = m.scaler.apply(&Self::input(a, &Signals::default()));
                &w_arch * DVector::from_column_slice(&z[..split]) + &m.b_in
            })
            .collect();
        Ok(m)
    }
}

impl Predictor for SharedMlp {
    fn variant(&self) -> Variant {
        Variant::SharedMlp
    }
    fn predict(&self, s: &Signals, _: Option<f64>) -> Vec<Prediction> {
        // The signal part of the standardised input is the same for every candidate.
        let Some(a0) = self.arch.first() else {
            return Vec::new();
        };
        let z = self.scaler.apply(&Self::input(a0, s));
        let z_sig = DVector::from_column_slice(&z[z.len() - SIGNAL_FEATURES..]);
        let sig = &self.w_sig * z_sig;
        self.base
            .iter()
            .map(|base| {
                let h = (base + &sig).map(f64::tanh);
                let o = &self.out_t * h + &self.out.1;
                Prediction {
                    top1: o[0].clamp(0.0, 1.0),
                    latency_ms: o[1].exp(),
                    p50_ms: o[2].exp(),
                    p95_ms: o[3].exp(),
                }
            })
            .collect()
    }
}

// ---------------------------------------------------------------- knn

/// Neighbours averaged.
const K: usize = 3;

struct Knn {
    scaler: Scaler,
    /// Standardised signals of each training condition, with every candidate's (top-1, latency).
    points: Vec<(Vec<f64>, Vec<Prediction>)>,
}

impl Knn {
    fn key(s: &Signals) -> Vec<f64> {
        vec![
            s.confidence,
            s.entropy,
            s.margin,
            s.latency_ms.max(1e-6).ln(),
        ]
    }

    fn fit(p: &Profile, train: &[Cond]) -> Knn {
        let keys: Vec<Vec<f64>> = train.iter().map(|&c| Self::key(&p.signals(c))).collect();
        let scaler = Scaler::fit(&keys);
        let points = train
            .iter()
            .zip(&keys)
            .map(|(&t, k)| {
                (
                    scaler.apply(k),
                    (0..p.candidates.len())
                        .map(|c| {
                            let l = &p.latency[c][t.load];
                            Prediction {
                                top1: p.content[c][t.content].top1,
                                latency_ms: l.mean_ms,
                                p50_ms: l.p50_ms,
                                p95_ms: l.p95_ms,
                            }
                        })
                        .collect(),
                )
            })
            .collect();
        Knn { scaler, points }
    }
}

impl Predictor for Knn {
    fn variant(&self) -> Variant {
        Variant::Knn
    }
    fn predict(&self, s: &Signals, _: Option<f64>) -> Vec<Prediction> {
        let q = self.scaler.apply(&Self::key(s));
        let mut d: Vec<(f64, usize)> = self
            .points
            .iter()
            .enumerate()
            .map(|(i, (k, _))| (k.iter().zip(&q).map(|(a, b)| (a - b).powi(2)).sum(), i))
            .collect();
        d.sort_by(|a, b| a.0.total_cmp(&b.0));
        let near = &d[..K.min(d.len())];
        let wsum: f64 = near
            .iter()
            .map(|(dist, _)| 1.0 / (dist.sqrt() + 1e-6))
            .sum();
        let n = self.points[0].1.len();
        (0..n)
            .map(|c| {
                let mut out = Prediction {
                    top1: 0.0,
                    latency_ms: 0.0,
                    p50_ms: 0.0,
                    p95_ms: 0.0,
                };
                for &(dist, i) in near {
                    let w = 1.0 / (dist.sqrt() + 1e-6) / wsum;
                    let q = &self.points[i].1[c];
                    out.top1 += w * q.top1;
                    out.latency_ms += w * q.latency_ms;
                    out.p50_ms += w * q.p50_ms;
                    out.p95_ms += w * q.p95_ms;
                }
                out
            })
            .collect()
    }
}

// ---------------------------------------------------------------- evaluation

/// How well a variant predicts conditions it never saw.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VariantScore {
    /// Variant name.
    pub variant: String,
    /// False for upper bounds that see labels.
    pub deployable: bool,
    /// Mean absolute top-1 error, points.
    pub accuracy_mae_points: f64,
    /// Mean absolute percentage error of the mean latency, %.
    pub latency_mape_percent: f64,
    /// Mean over held-out conditions of Spearman's ρ between predicted and measured top-1
    /// ranking of the candidates.
    pub spearman_rho: f64,
    /// Held-out folds.
    pub folds: usize,
}

/// One held-out prediction of leave-condition-out cross-validation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HeldOut {
    /// Candidate index.
    pub candidate: usize,
    /// The held-out condition.
    pub cond: Cond,
    /// What the variant predicted, fitted without the condition.
    pub predicted: Prediction,
    /// Measured top-1.
    pub top1: f64,
    /// Measured mean latency, ms.
    pub latency_ms: f64,
}

/// Leave-condition-out cross-validation: each fold holds out one content condition and one
/// load level, fits on the conditions that share neither, and predicts the held-out one.
pub fn cross_validate(variant: Variant, p: &Profile) -> Result<Vec<HeldOut>, String> {
    cross_validate_with(variant, p, &|| {})
}

/// [`cross_validate`] with `on_fold` called as each fold ends (one per condition of the
/// profile; for a progress bar). The folds are fitted in parallel, on every core (each fit
/// is seeded: the result is the same on any number of cores).
pub fn cross_validate_with(
    variant: Variant,
    p: &Profile,
    on_fold: &(dyn Fn() + Sync),
) -> Result<Vec<HeldOut>, String> {
    use rayon::prelude::*;
    p.validate()?;
    let conditions = p.conditions();
    let fold = |held: Cond| -> Result<Vec<HeldOut>, String> {
        let train: Vec<Cond> = conditions
            .iter()
            .copied()
            .filter(|c| c.content != held.content && (c.load != held.load || p.loads.len() == 1))
            .collect();
        if train.is_empty() {
            return Ok(Vec::new());
        }
        let model = fit(variant, p, &train)?;
        let pred = model.predict(
            &p.signals(held),
            Some(p.content[p.probe][held.content].top1),
        );
        Ok(pred
            .into_iter()
            .enumerate()
            .map(|(c, pr)| HeldOut {
                candidate: c,
                cond: held,
                predicted: pr,
                top1: p.content[c][held.content].top1,
                latency_ms: p.latency[c][held.load].mean_ms,
            })
            .collect())
    };
    let folds: Vec<Result<Vec<HeldOut>, String>> = conditions
        .par_iter()
        .map(|&held| {
            let f = fold(held);
            on_fold();
            f
        })
        .collect();
    let mut out = Vec::new();
    for f in folds {
        out.extend(f?);
    }
    if out.is_empty() {
        return Err("the profile needs at least two content conditions to hold one out".into());
    }
    Ok(out)
}

/// Scores a variant from its cross-validated predictions (see [`cross_validate`]).
pub fn evaluate(variant: Variant, p: &Profile) -> Result<VariantScore, String> {
    evaluate_with(variant, p, &|| {})
}

/// [`evaluate`] with `on_fold` called as each cross-validation fold ends (see
/// [`cross_validate_with`]).
pub fn evaluate_with(
    variant: Variant,
    p: &Profile,
    on_fold: &(dyn Fn() + Sync),
) -> Result<VariantScore, String> {
    let held = cross_validate_with(variant, p, on_fold)?;
    let n = held.len() as f64;
    let mae = held
        .iter()
        .map(|h| (h.predicted.top1 - h.top1).abs())
        .sum::<f64>()
        / n;
    let mape = held
        .iter()
        .map(|h| ((h.predicted.latency_ms - h.latency_ms) / h.latency_ms).abs())
        .sum::<f64>()
        / n;
    let k = p.candidates.len();
    let folds = held.len() / k;
    let rho = held
        .chunks(k)
        .map(|f| {
            let a: Vec<f64> = f.iter().map(|h| h.predicted.top1).collect();
            let b: Vec<f64> = f.iter().map(|h| h.top1).collect();
            spearman(&a, &b)
        })
        .sum::<f64>()
        / folds as f64;
    Ok(VariantScore {
        variant: variant.name().into(),
        deployable: variant.deployable(),
        accuracy_mae_points: 100.0 * mae,
        latency_mape_percent: 100.0 * mape,
        spearman_rho: rho,
        folds,
    })
}

/// Ranks with ties sharing their mean rank.
fn ranks(v: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut r = vec![0.0; v.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
            j += 1;
        }
        for k in i..=j {
            r[idx[k]] = (i + j) as f64 / 2.0;
        }
        i = j + 1;
    }
    r
}

/// Spearman's rank correlation (0 when either side is constant).
pub fn spearman(a: &[f64], b: &[f64]) -> f64 {
    let (ra, rb) = (ranks(a), ranks(b));
    let n = ra.len() as f64;
    let (ma, mb) = (ra.iter().sum::<f64>() / n, rb.iter().sum::<f64>() / n);
    let cov: f64 = ra.iter().zip(&rb).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = ra.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = rb.iter().map(|y| (y - mb).powi(2)).sum();
    if va <= 0.0 || vb <= 0.0 {
        0.0
    } else {
        cov / (va * vb).sqrt()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::synthetic;

    #[test]
    fn shared_mlp_precomputed_architecture_part_equals_the_full_forward_pass() {
        let p = synthetic(6, 5, &[0.0, 0.5, 1.0]);
        let m = SharedMlp::fit(&p, &p.conditions()).unwrap();
        for cond in p.conditions() {
            let s = p.signals(cond);
            let fast = m.predict(&s, None);
            for (c, a) in m.arch.iter().enumerate() {
                let o = m.out.0.transpose() * m.hidden(&SharedMlp::input(a, &s)) + &m.out.1;
                assert!((fast[c].top1 - o[0].clamp(0.0, 1.0)).abs() < 1e-9);
                assert!((fast[c].latency_ms.ln() - o[1]).abs() < 1e-9);
                assert!((fast[c].p95_ms.ln() - o[3]).abs() < 1e-9);
            }
        }
    }

    #[test]
    fn spearman_of_known_orders() {
        assert!((spearman(&[1.0, 2.0, 3.0], &[10.0, 20.0, 30.0]) - 1.0).abs() < 1e-12);
        assert!((spearman(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]) + 1.0).abs() < 1e-12);
        assert_eq!(spearman(&[1.0, 1.0], &[1.0, 2.0]), 0.0);
    }

    #[test]
    fn ridge_recovers_a_known_linear_relation() {
        // y = 2 + 3 x0 - x1, no noise, tiny penalty.
        let x = DMatrix::from_fn(50, 2, |i, j| ((i * (j + 3)) % 11) as f64 - 5.0);
        let y = DMatrix::from_fn(50, 1, |i, _| 2.0 + 3.0 * x[(i, 0)] - x[(i, 1)]);
        let (w, b) = ridge(&x, &y, 1e-9).unwrap();
        assert!((w[(0, 0)] - 3.0).abs() < 1e-5 && (w[(1, 0)] + 1.0).abs() < 1e-5);
        assert!((b[0] - 2.0).abs() < 1e-5);
    }

    #[test]
    fn every_variant_predicts_held_out_synthetic_conditions() {
        // In the synthetic profile accuracy is linear in the probe's signals and latency
        // proportional to the probe's: linear recovers both, the others come close.
        let p = synthetic(6, 5, &[0.0, 0.25, 0.5, 0.75, 1.0]);
        for v in Variant::ALL {
            let s = evaluate(v, &p).unwrap();
            assert_eq!(s.folds, 6 * 5);
            let (mae, mape) = match v {
                Variant::Linear | Variant::ProbeLabels => (0.5, 0.5),
                Variant::Ratio => (12.0, 0.5),
                Variant::SharedMlp => (3.0, 10.0),
                Variant::Knn => (10.0, 40.0),
            };
            assert!(s.accuracy_mae_points < mae, "{v:?}: {s:?}");
            assert!(s.latency_mape_percent < mape, "{v:?}: {s:?}");
            assert!(s.spearman_rho > 0.7, "{v:?}: {s:?}");
        }
    }

    #[test]
    fn linear_extrapolates_a_harder_condition() {
        let p = synthetic(4, 4, &[0.0, 1.0]);
        let train: Vec<Cond> = p
            .conditions()
            .into_iter()
            .filter(|c| c.content < 4)
            .collect();
        let m = fit(Variant::Linear, &p, &train).unwrap();
        let held = Cond {
            content: 4,
            load: 1,
        };
        for (c, pr) in m.predict(&p.signals(held), None).iter().enumerate() {
            assert!((pr.top1 - p.content[c][4].top1).abs() < 5e-3, "{c}: {pr:?}");
            assert!((pr.latency_ms - p.latency[c][1].mean_ms).abs() < 1e-6);
        }
    }

    #[test]
    fn variant_names_round_trip() {
        for v in Variant::ALL {
            assert_eq!(v.name().parse::<Variant>().unwrap(), v);
        }
        assert!("mlp".parse::<Variant>().unwrap_err().contains("shared-mlp"));
    }
}
