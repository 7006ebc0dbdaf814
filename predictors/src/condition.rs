//! Which content condition the stream is under, as the probe's recent confidence readings
//! say, and the per-frame tables weighed by it.
//!
//! A profile's per-frame tables give every candidate's top-1 per bin of the probe's
//! confidence under each content condition. Pooled over all conditions, a bin mixes frames
//! of clean scenes the probe happened to be unsure of with frames of fog at severity 5 it is
//! always unsure of, and under a persistent severe condition the pooled row understates what
//! a larger candidate adds. Each condition also says how often the probe lands in each bin
//! under it ([`ContentStats::probe_bin_images`]), so the bins of the probe's recent readings
//! are evidence of the condition, without labels: [`ContentBelief`] keeps it, and
//! [`BinRows`] weighs each condition's rows by it. Uniform weights give the pooled tables
//! to the bit ([`Profile::frame_table`]).

use crate::profile::{BinTable, ContentStats, PROBE_BINS, Profile};

/// Pseudo-images of the pooled gain each condition's gain in a bin is shrunk toward, in
/// [`BinRows::robust_row`] ([`Profile::robust_frame_table`]).
pub const GAIN_SHRINK: f64 = 20.0;

/// Pseudo-images added to every bin of a condition's confidence histogram when reading a
/// bin's likelihood under it (a bin no calibration image fell in is unlikely, not
/// impossible).
const BIN_PRIOR: f64 = 0.5;

/// A condition whose weight is under this share of the likeliest one's is left out of
/// [`BinRows::robust_row`]'s quantile (its images count for less than a millionth of one
/// of the likeliest's).
const NEGLIGIBLE: f64 = 1e-6;

/// A condition whose likelihood falls this far below the best one's keeps this floor as its
/// weight (so that every bin some condition filled stays filled).
const WEIGHT_FLOOR: f64 = 1e-12;

/// One per-frame table of a profile (same image or other view) kept per condition, to be
/// pooled with any weights per condition.
#[derive(Clone, Debug)]
pub struct BinRows {
    candidates: usize,
    probe: usize,
    conditions: usize,
    /// Images per condition and bin (the images on which the probe's confidence fell in the
    /// bin and every candidate's top-1 is known): `images[bin * conditions + condition]`.
    images: Vec<f64>,
    /// `top1[(bin * conditions + condition) * candidates + candidate]` (0 where the
    /// condition holds no image in the bin).
    top1: Vec<f64>,
    /// Per bin, the filled bin whose row it takes (itself where some condition filled it:
    /// a bin no condition filled takes the nearest filled bin's row).
    source: [usize; PROBE_BINS],
    /// Per bin, candidate and condition, the condition's images times the candidate's
    /// top-1 gain over the probe: `scaled[(bin * candidates + candidate) * conditions +
    /// condition]` (what [`BinRows::robust_row`] shrinks, one candidate's in a row; filled
    /// for a bin at its first robust row).
    scaled: Vec<f64>,
    /// Per bin and candidate (`bin * candidates + candidate`), the conditions with images in
    /// the bin in ascending order of the candidate's shrunk gain at the last
    /// [`BinRows::robust_row`] (sorted again from there, stably, so that conditions of equal
    /// gain keep their order from call to call; the probe's stays empty: its row is its
    /// pooled top-1).
    order: Vec<Vec<u32>>,
    /// Per bin, whether `scaled` and `order` hold it.
    ready: [bool; PROBE_BINS],
}

impl BinRows {
    /// The profile's tables binned by the probe's confidence on the same image; None when
    /// it holds none.
    pub fn same_image(profile: &Profile) -> Option<Self> {
        BinRows::new(profile, BinTable::SameImage)
    }

    /// The profile's tables binned by the probe's confidence on another view of the image
    /// ([`ContentStats::view_bin_top1`]); None when it holds none.
    pub fn other_view(profile: &Profile) -> Option<Self> {
        BinRows::new(profile, BinTable::OtherView)
    }

    /// `table` of `profile`, per condition; None when the profile holds no such tables or
    /// no bin holds an image.
    pub(crate) fn new(profile: &Profile, table: BinTable) -> Option<Self> {
        let candidates = profile.candidates.len();
        let conditions = profile.contents.len();
        if profile
            .content
            .iter()
            .flatten()
            .any(|s| table.of(s).0.len() != PROBE_BINS)
        {
            return None;
        }
        let mut images = vec![0.0; PROBE_BINS * conditions];
        let mut top1 = vec![0.0; PROBE_BINS * conditions * candidates];
        for b in 0..PROBE_BINS {
            for k in 0..conditions {
                // Binned by the probe's confidence: every candidate has the same images in a
                // bin; a candidate without a top-1 there leaves the bin empty for all.
                let n = (0..candidates)
                    .map(|c| {
                        let (t, n) = table.of(&profile.content[c][k]);
                        if t[b].is_finite() { n[b] } else { 0 }
                    })
                    .min()
                    .unwrap_or(0) as f64;
                images[b * conditions + k] = n;
                if n > 0.0 {
                    for c in 0..candidates {
                        top1[(b * conditions + k) * candidates + c] =
                            table.of(&profile.content[c][k]).0[b];
                    }
                }
            }
        }
        let filled: Vec<usize> = (0..PROBE_BINS)
            .filter(|&b| {
                images[b * conditions..(b + 1) * conditions]
                    .iter()
                    .any(|&n| n > 0.0)
            })
            .collect();
        if filled.is_empty() {
            return None;
        }
        let mut source = [0; PROBE_BINS];
        for (b, s) in source.iter_mut().enumerate() {
            *s = *filled
                .iter()
                .min_by_key(|&&f| f.abs_diff(b))
                .expect("non-empty");
        }
        Some(BinRows {
            candidates,
            probe: profile.probe,
            conditions,
            images,
            top1,
            source,
            // (Filled per bin at its first robust row: zeroed memory costs nothing until then.)
            scaled: vec![0.0; PROBE_BINS * candidates * conditions],
            order: vec![Vec::new(); PROBE_BINS * candidates],
            ready: [false; PROBE_BINS],
        })
    }

    /// Every candidate's top-1 in `bin`, each condition's images weighed by `weights[k]`
    /// (one per content condition; all 1 = pooled, each image alike).
    pub fn row(&self, bin: usize, weights: &[f64]) -> Vec<f64> {
        let b = self.source[bin];
        let n = self.candidates;
        let mut hits = vec![0.0; n];
        let mut count = 0.0;
        for (k, &w) in weights.iter().enumerate().take(self.conditions) {
            let images = self.images[b * self.conditions + k];
            if images > 0.0 {
                let ww = w * images;
                let t = &self.top1[(b * self.conditions + k) * n..][..n];
                for (h, &t) in hits.iter_mut().zip(t) {
                    *h += t * ww;
                }
                count += ww;
            }
        }
        hits.iter().map(|h| h / count).collect()
    }

    /// Like [`BinRows::row`], but a candidate's top-1 is the probe's plus the `quantile` of
    /// its gain over the probe across the conditions (each condition's gain shrunk toward the
    /// weighed mean gain by its images n as n / (n + [`GAIN_SHRINK`]), and counted by its
    /// weighed images): the least shrunk gain at which the weighed images, summed in
    /// ascending order of gain, reach `quantile` of them all. (Mutable: each candidate's
    /// conditions are kept in the order of its gains at the last call.)
    pub fn robust_row(&mut self, bin: usize, weights: &[f64], quantile: f64) -> Vec<f64> {
        let mut out = self.row(bin, weights);
        let b = self.source[bin];
        let (n, probe, conditions) = (self.candidates, self.probe, self.conditions);
        let probe_top1 = out[probe];
        // Each condition's weighed images (the same for every candidate: binned by the
        // probe's confidence, every candidate has the same images in a bin); 0 for those
        // without images in the bin or that the weights all but rule out (under
        // [`NEGLIGIBLE`] of the likeliest's weight: they would not move a quantile).
        let images = &self.images[b * conditions..(b + 1) * conditions];
        let most = images
            .iter()
            .zip(weights)
            .filter(|(n, _)| **n > 0.0)
            .fold(0.0f64, |m, (_, &w)| m.max(w));
        let weighed: Vec<f64> = (0..conditions)
            .map(|k| match weights.get(k) {
                Some(&w) if images[k] > 0.0 && w >= NEGLIGIBLE * most => w * images[k],
                _ => 0.0,
            })
            .collect();
        let counted = || (0..conditions).filter(|&k| weighed[k] > 0.0);
        let total: f64 = counted().map(|k| weighed[k]).sum();
        if total <= 0.0 {
            return out;
        }
        // Per candidate, the weighed mean gain over the probe (all candidates at once, each
        // summed over the conditions in order).
        let mut mean = vec![0.0; n];
        for k in counted() {
            let t = &self.top1[(b * conditions + k) * n..][..n];
            for (m, &tc) in mean.iter_mut().zip(t) {
                *m += (tc - t[probe]) * weighed[k];
            }
        }
        mean.iter_mut().for_each(|m| *m /= total);
        // The bin's first robust row: its gains scaled, its conditions with images listed.
        let first = !self.ready[b];
        if first {
            self.ready[b] = true;
            // (One candidate's run of conditions at a time: written in order.)
            let top1 = &self.top1[b * conditions * n..][..conditions * n];
            let scaled = &mut self.scaled[b * n * conditions..][..n * conditions];
            for (c, row) in scaled.chunks_exact_mut(conditions).enumerate() {
                for ((s, &i), t) in row.iter_mut().zip(images).zip(top1.chunks_exact(n)) {
                    *s = i * (t[c] - t[probe]);
                }
            }
            for c in (0..n).filter(|&c| c != probe) {
                self.order[b * n + c] = (0..conditions as u32)
                    .filter(|&k| images[k as usize] > 0.0)
                    .collect();
            }
        }
        let target = quantile * total;
        let mut shrunk = vec![0.0; conditions];
        for (c, slot) in out.iter_mut().enumerate().filter(|&(c, _)| c != probe) {
            let scaled = &self.scaled[(b * n + c) * conditions..][..conditions];
            for ((s, &x), &i) in shrunk.iter_mut().zip(scaled).zip(images) {
                *s = (x + GAIN_SHRINK * mean[c]) / (i + GAIN_SHRINK);
            }
            // (Sorted from the order of the previous call, stable: ties keep their places.)
            let order = &mut self.order[b * n + c];
            order.sort_by(|&a, &b| shrunk[a as usize].total_cmp(&shrunk[b as usize]));
            let mut sum = 0.0;
            let q = order
                .iter()
                .map(|&k| k as usize)
                .filter(|&k| weighed[k] > 0.0)
                .find(|&k| {
                    sum += weighed[k];
                    sum >= target
                })
                .map_or(mean[c], |k| shrunk[k]);
            *slot = probe_top1 + q;
        }
        out
    }
}

/// Every candidate's top-1 over all of each condition's images: pooled, what a candidate
/// gets on an object the probe has not read.
#[derive(Clone, Debug)]
pub struct UnreadRows {
    /// `top1[candidate][condition]`.
    top1: Vec<Vec<f64>>,
    /// Images per condition.
    images: Vec<f64>,
}

impl UnreadRows {
    /// `profile`'s overall top-1 per candidate and condition.
    pub fn new(profile: &Profile) -> Self {
        UnreadRows {
            top1: profile
                .content
                .iter()
                .map(|row| row.iter().map(|s| s.top1).collect())
                .collect(),
            images: profile.content[profile.probe]
                .iter()
                .map(|s| s.images as f64)
                .collect(),
        }
    }

    /// Every candidate's top-1, each condition's images weighed by `weights[k]` (all 1 =
    /// every calibration image alike).
    pub fn row(&self, weights: &[f64]) -> Vec<f64> {
        let n: f64 = self.images.iter().zip(weights).map(|(k, w)| w * k).sum();
        self.top1
            .iter()
            .map(|t| {
                t.iter()
                    .zip(&self.images)
                    .zip(weights)
                    .map(|((t, k), w)| t * (w * k))
                    .sum::<f64>()
                    / n.max(f64::MIN_POSITIVE)
            })
            .collect()
    }
}

/// What the probe's recent confidence readings say about the content condition: per
/// condition, the log-likelihood of the readings under its calibrated confidence histogram,
/// older readings fading (each reading's weight falls by `1 - 1 / window` per later one,
/// so about the last `window` readings count).
#[derive(Clone, Debug)]
pub struct ContentBelief {
    /// `ln P(bin | condition)`: `ln_p[condition * PROBE_BINS + bin]`.
    ln_p: Vec<f64>,
    /// Images per condition (the prior: every calibration image alike).
    images: Vec<f64>,
    /// The readings' faded log-likelihood per condition.
    log_lik: Vec<f64>,
    keep: f64,
}

impl ContentBelief {
    /// A belief over `profile`'s content conditions from the probe's same-image histograms,
    /// remembering about `window` readings (at least 1); None without per-frame tables.
    pub fn new(profile: &Profile, window: u32) -> Option<Self> {
        let probe: &[ContentStats] = &profile.content[profile.probe];
        if probe.iter().any(|s| s.probe_bin_images.len() != PROBE_BINS) {
            return None;
        }
        let ln_p = probe
            .iter()
            .flat_map(|s| {
                let total: f64 = s.probe_bin_images.iter().sum::<usize>() as f64;
                let denominator = total + BIN_PRIOR * PROBE_BINS as f64;
                s.probe_bin_images
                    .iter()
                    .map(move |&n| ((n as f64 + BIN_PRIOR) / denominator).ln())
            })
            .collect();
        Some(ContentBelief {
            ln_p,
            images: probe.iter().map(|s| s.images as f64).collect(),
            log_lik: vec![0.0; probe.len()],
            keep: 1.0 - 1.0 / window.max(1) as f64,
        })
    }

    /// Counts one reading of the probe's confidence (its bin).
    pub fn add(&mut self, bin: usize) {
        for (k, l) in self.log_lik.iter_mut().enumerate() {
            *l = self.keep * *l + self.ln_p[k * PROBE_BINS + bin];
        }
    }

    /// Per condition, its likelihood relative to the most likely one's (1 for it): the
    /// weights [`BinRows::row`] pools the conditions' images with.
    pub fn weights(&self) -> Vec<f64> {
        let best = self.log_lik.iter().fold(f64::MIN, |m, &l| m.max(l));
        self.log_lik
            .iter()
            .map(|&l| (l - best).exp().max(WEIGHT_FLOOR))
            .collect()
    }

    /// The share of the stream's frames each condition is believed to hold, from `weights`
    /// ([`ContentBelief::weights`]) and the conditions' images.
    pub fn shares(&self, weights: &[f64]) -> Vec<f64> {
        let mass: Vec<f64> = weights
            .iter()
            .zip(&self.images)
            .map(|(w, n)| w * n)
            .collect();
        let total: f64 = mass.iter().sum();
        mass.iter()
            .map(|m| m / total.max(f64::MIN_POSITIVE))
            .collect()
    }
}

/// Half the summed absolute difference of two share vectors (0 = the same, 1 = disjoint).
pub fn total_variation(a: &[f64], b: &[f64]) -> f64 {
    0.5 * a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f64>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::synthetic;

    /// Two conditions: under `clean` the probe is sure (bin 18) and every candidate right;
    /// under `fog@5` it is unsure (bin 18 rarely, bin 6 mostly), and in bin 6 the larger
    /// candidate adds far more than under `clean`.
    fn two_conditions() -> Profile {
        let mut p = synthetic(2, 1, &[0.0]);
        p.contents = vec!["clean".into(), "fog@5".into()];
        for (c, row) in p.content.iter_mut().enumerate() {
            for (k, s) in row.iter_mut().enumerate() {
                s.probe_bin_images = vec![0; PROBE_BINS];
                s.probe_bin_top1 = vec![f64::NAN; PROBE_BINS];
                let (sure, unsure) = if k == 0 { (90, 10) } else { (10, 90) };
                s.probe_bin_images[18] = sure;
                s.probe_bin_images[6] = unsure;
                s.probe_bin_top1[18] = 0.95;
                s.probe_bin_top1[6] = match (k, c) {
                    (0, 0) => 0.60,
                    (0, _) => 0.64,
                    (_, 0) => 0.30,
                    _ => 0.60,
                };
                s.images = 100;
            }
        }
        p
    }

    #[test]
    fn uniform_weights_pool_every_image_alike() {
        let p = two_conditions();
        let mut rows = BinRows::new(&p, BinTable::SameImage).unwrap();
        // Bin 6: 10 clean images (0.60, 0.64) and 90 foggy ones (0.30, 0.60).
        let r = rows.row(6, &[1.0, 1.0]);
        assert!((r[0] - (10.0 * 0.60 + 90.0 * 0.30) / 100.0).abs() < 1e-12);
        assert!((r[1] - (10.0 * 0.64 + 90.0 * 0.60) / 100.0).abs() < 1e-12);
        // An empty bin takes the nearest filled one's row (bin 9 is nearer 6 than 18).
        assert_eq!(rows.row(9, &[1.0, 1.0]), r);
        assert_eq!(rows.row(19, &[1.0, 1.0]), rows.row(18, &[1.0, 1.0]));
        // The lowest gain quantile is the clean gain shrunk toward the mean gain.
        let mean = (10.0 * 0.04 + 90.0 * 0.30) / 100.0;
        let low = (10.0 * 0.04 + GAIN_SHRINK * mean) / (10.0 + GAIN_SHRINK);
        let robust = rows.robust_row(6, &[1.0, 1.0], 0.05);
        assert!((robust[1] - (r[0] + low)).abs() < 1e-12, "{robust:?}");
    }

    #[test]
    fn readings_of_an_unsure_probe_point_to_the_condition_that_makes_it_unsure() {
        let p = two_conditions();
        let rows = BinRows::new(&p, BinTable::SameImage).unwrap();
        let mut belief = ContentBelief::new(&p, 8).unwrap();
        let pooled_gain = {
            let r = rows.row(6, &belief.weights());
            r[1] - r[0]
        };
        // Pooled: 10 clean images gaining 4 points, 90 foggy ones gaining 30.
        assert!((pooled_gain - (10.0 * 0.04 + 90.0 * 0.30) / 100.0).abs() < 1e-12);
        for _ in 0..6 {
            belief.add(6);
        }
        let w = belief.weights();
        assert!(belief.shares(&w)[1] > 0.99, "{w:?}");
        let r = rows.row(6, &w);
        assert!(r[1] - r[0] > pooled_gain && r[1] - r[0] > 0.299, "{r:?}");
        // Sure readings bring it back to clean.
        for _ in 0..12 {
            belief.add(18);
        }
        let w = belief.weights();
        assert!(belief.shares(&w)[0] > 0.99, "{w:?}");
        let r = rows.row(6, &w);
        assert!((r[1] - r[0] - 0.04).abs() < 0.01, "{r:?}");
        let unread = UnreadRows::new(&p).row(&w);
        assert!((unread[0] - p.content[0][0].top1).abs() < 0.01);
    }

    #[test]
    fn robust_rows_are_the_first_gain_a_sorted_scan_reaches_whatever_came_before() {
        let mut seed = 7u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 11) as f64 / (1u64 << 53) as f64
        };
        // 5 candidates under 12 conditions: top-1 on a coarse grid (tied gains), whole
        // images (exact sums), some conditions without images in a bin.
        let mut p = synthetic(5, 11, &[0.0]);
        for k in 0..p.contents.len() {
            let images: Vec<usize> = (0..PROBE_BINS)
                .map(|_| {
                    if next() < 0.2 {
                        0
                    } else {
                        1 + (next() * 40.0) as usize
                    }
                })
                .collect();
            for c in 0..p.candidates.len() {
                let s = &mut p.content[c][k];
                s.view_bin_images = images.clone();
                s.view_bin_top1 = (0..PROBE_BINS)
                    .map(|_| (next() * 8.0).floor() / 8.0)
                    .collect();
            }
        }
        let mut rows = BinRows::other_view(&p).unwrap();
        let (n, conditions) = (p.candidates.len(), p.contents.len());
        for round in 0..300 {
            let bin = round % PROBE_BINS;
            // Whole weights (exact sums), now and then one all but ruled out.
            let weights: Vec<f64> = (0..conditions)
                .map(|_| {
                    if next() < 0.1 {
                        1e-9
                    } else {
                        (next() * 5.0).floor() + 1.0
                    }
                })
                .collect();
            let q = [0.0, 0.25, 0.5, 1.0][round % 4];
            let got = rows.robust_row(bin, &weights, q);
            let pooled = rows.row(bin, &weights);
            let b = rows.source[bin];
            let images = &rows.images[b * conditions..][..conditions];
            let most = (0..conditions)
                .filter(|&k| images[k] > 0.0)
                .fold(0.0f64, |m, k| m.max(weights[k]));
            for c in (0..n).filter(|&c| c != p.probe) {
                // (gain, weighed images) per counted condition, shrunk, sorted, scanned.
                let mut gains: Vec<(f64, f64, f64)> = (0..conditions)
                    .filter(|&k| images[k] > 0.0 && weights[k] >= NEGLIGIBLE * most)
                    .map(|k| {
                        let t = &rows.top1[(b * conditions + k) * n..][..n];
                        (t[c] - t[p.probe], weights[k] * images[k], images[k])
                    })
                    .collect();
                let total: f64 = gains.iter().map(|g| g.1).sum();
                let mean = gains.iter().map(|g| g.0 * g.1).sum::<f64>() / total;
                for g in &mut gains {
                    g.0 = (g.2 * g.0 + GAIN_SHRINK * mean) / (g.2 + GAIN_SHRINK);
                }
                gains.sort_by(|a, b| a.0.total_cmp(&b.0));
                let mut cum = 0.0;
                let scan = gains
                    .iter()
                    .find(|g| {
                        cum += g.1;
                        cum >= q * total
                    })
                    .map_or(mean, |g| g.0);
                assert_eq!(
                    got[c],
                    pooled[p.probe] + scan,
                    "round {round} candidate {c}"
                );
            }
            assert_eq!(got[p.probe], pooled[p.probe]);
        }
    }

    #[test]
    fn older_readings_fade() {
        let p = two_conditions();
        let mut slow = ContentBelief::new(&p, 50).unwrap();
        let mut fast = ContentBelief::new(&p, 2).unwrap();
        for b in [6, 6, 6, 6, 6, 6, 18, 18] {
            slow.add(b);
            fast.add(b);
        }
        assert!(slow.shares(&slow.weights())[1] > 0.9);
        assert!(fast.shares(&fast.weights())[0] > 0.8);
        assert_eq!(total_variation(&[0.25, 0.75], &[0.75, 0.25]), 0.5);
    }
}
