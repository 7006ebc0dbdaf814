//! The predictor variants, each fitted on a profile's conditions behind [`Predictor`].

use super::{LAMBDA, Prediction, Predictor, Scaler, Variant, ridge, signal_row};
use crate::profile::{
    Cond, LatencyStats, PROBE_BINS, Profile, ProfileCandidate, Signals, probe_bin,
};
use nalgebra::{DMatrix, DVector};
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};

pub(super) struct RatioModel {
    ref_confidence: f64,
    ref_latency_ms: f64,
    /// Per candidate: (clean top-1, idle latency).
    base: Vec<(f64, LatencyStats)>,
}

impl RatioModel {
    pub(super) fn fit(p: &Profile, train: &[Cond]) -> RatioModel {
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

pub(super) struct LinearModel {
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

    pub(super) fn fit(
        p: &Profile,
        train: &[Cond],
        with_labels: bool,
    ) -> Result<LinearModel, String> {
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

pub(super) struct SharedMlp {
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

    pub(super) fn fit(p: &Profile, train: &[Cond]) -> Result<SharedMlp, String> {
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

pub(super) struct Knn {
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

    pub(super) fn fit(p: &Profile, train: &[Cond]) -> Knn {
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

/// `binned`: every candidate's top-1 per bin of the probe's confidence on the same image
/// (the profile's per-frame tables), pooled over the training conditions' images, read at the
/// probe's readings ([`Signals::bins`]; without them, at the bin of its mean confidence). A
/// bin no training image fell in takes the candidate's top-1 over all training images.
pub(super) struct Binned {
    /// `top1[candidate][bin]`.
    top1: Vec<[f64; PROBE_BINS]>,
    latency: LinearModel,
}

impl Binned {
    pub(super) fn fit(p: &Profile, train: &[Cond]) -> Result<Binned, String> {
        let mut contents: Vec<usize> = train.iter().map(|c| c.content).collect();
        contents.sort_unstable();
        contents.dedup();
        let top1 = (0..p.candidates.len())
            .map(|c| {
                let (mut hits, mut images) = ([0.0; PROBE_BINS], [0.0; PROBE_BINS]);
                for &k in &contents {
                    let s = &p.content[c][k];
                    for b in 0..PROBE_BINS.min(s.probe_bin_images.len()) {
                        let n = s.probe_bin_images[b] as f64;
                        if n > 0.0 && s.probe_bin_top1[b].is_finite() {
                            hits[b] += n * s.probe_bin_top1[b];
                            images[b] += n;
                        }
                    }
                }
                let overall = contents.iter().map(|&k| p.content[c][k].top1).sum::<f64>()
                    / contents.len().max(1) as f64;
                let (all_hits, all_images) = (hits.iter().sum::<f64>(), images.iter().sum::<f64>());
                let pooled = if all_images > 0.0 {
                    all_hits / all_images
                } else {
                    overall
                };
                std::array::from_fn(|b| {
                    if images[b] > 0.0 {
                        hits[b] / images[b]
                    } else {
                        pooled
                    }
                })
            })
            .collect();
        Ok(Binned {
            top1,
            latency: LinearModel::fit(p, train, false)?,
        })
    }
}

impl Predictor for Binned {
    fn variant(&self) -> Variant {
        Variant::Binned
    }

    fn predict(&self, s: &Signals, _probe_top1: Option<f64>) -> Vec<Prediction> {
        let readings: f64 = s.bins.iter().sum();
        let at = |row: &[f64; PROBE_BINS]| {
            if readings > 0.0 {
                row.iter().zip(&s.bins).map(|(t, w)| t * w).sum::<f64>() / readings
            } else {
                row[probe_bin(s.confidence)]
            }
        };
        self.latency
            .predict(s, None)
            .into_iter()
            .zip(&self.top1)
            .map(|(l, row)| Prediction { top1: at(row), ..l })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::predict::{evaluate, fit};
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
                // The synthetic profile's probe readings fall alike under every condition, so
                // its per-frame tables cannot tell the conditions apart (its own rule is
                // checked below).
                Variant::Binned => (20.0, 0.5),
            };
            assert!(s.accuracy_mae_points < mae, "{v:?}: {s:?}");
            assert!(s.latency_mape_percent < mape, "{v:?}: {s:?}");
            assert!(s.spearman_rho > 0.7, "{v:?}: {s:?}");
        }
    }

    #[test]
    fn binned_reads_the_pooled_per_frame_tables_at_the_probes_readings() {
        // Content 0: the probe mostly sure (bin 18), content 1 mostly unsure (bin 6), content
        // 2 half and half; in bin 18 every candidate is right on 95 %, in bin 6 on
        // 30 % + 10 % per candidate.
        let mut p = synthetic(3, 2, &[0.0, 1.0]);
        assert!(p.contents.len() >= 3);
        for (k, (sure, unsure)) in [(90, 10), (10, 90), (50, 50)].into_iter().enumerate() {
            for c in 0..3 {
                let s = &mut p.content[c][k];
                s.probe_bin_images = vec![0; PROBE_BINS];
                (s.probe_bin_images[18], s.probe_bin_images[6]) = (sure, unsure);
                s.probe_bin_top1[18] = 0.95;
                s.probe_bin_top1[6] = 0.3 + 0.1 * c as f64;
            }
        }
        let train: Vec<Cond> = p
            .conditions()
            .into_iter()
            .filter(|c| c.content < 2)
            .collect();
        let model = fit(Variant::Binned, &p, &train).unwrap();
        let held = p.signals(Cond {
            content: 2,
            load: 1,
        });
        for (c, pred) in model.predict(&held, None).iter().enumerate() {
            let want = 0.5 * 0.95 + 0.5 * (0.3 + 0.1 * c as f64);
            assert!((pred.top1 - want).abs() < 1e-12, "{c}: {}", pred.top1);
        }
        // Without readings, the bin of the mean confidence.
        let unsure = Signals {
            confidence: 0.32,
            bins: [0.0; PROBE_BINS],
            ..held
        };
        assert_eq!(probe_bin(0.32), 6);
        assert!((model.predict(&unsure, None)[2].top1 - 0.5).abs() < 1e-12);
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
}
