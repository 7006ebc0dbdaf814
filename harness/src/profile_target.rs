//! Replay from a profile (`opa replay --profile`): outcomes drawn from the calibration
//! profile's measured tables instead of running the network. For fast what-if studies and CI;
//! deterministic (a run's draws depend only on the seed, the frame and the candidate).
//!
//! Per run: latency is log-normal with the profile's median and 95th percentile for the
//! candidate at the load the trace asks for (interpolated between measured levels); the
//! answer is correct with the candidate's measured top-1 on the frame's class under the
//! frame's content condition; confidence, entropy and margin are the condition's means.
//! Answers are correlated across candidates as live ones are (see [`SHARED_ANSWER`]): a
//! hard frame is hard for every sub-network.
//!
//! With the profile's per-frame tables, what a frame shows has a difficulty: each object
//! (the image a scene shows) under a condition draws the bin of the probe's confidence on
//! it from the condition's measured spread (tilted per class so that the probe's top-1 on
//! the class is the profiled one), the probe reports that confidence, and every candidate
//! is right with its measured top-1 in that bin under that condition. Answers are drawn per
//! object, not per frame: one scene's frames get the same answers, as live ones nearly do.

use crate::engine::{Inference, Target};
use crate::scenario::Workload;
use opa_predictors::profile::{PROBE_BINS, Profile};
use opa_predictors::selectors::FrameTruth;

/// The profile content condition that stands for a frame's condition (`clean`,
/// `fog@3`): the same name, else the same family at the nearest measured severity, else
/// `clean`, else the first.
pub fn content_index(profile: &Profile, condition: &str) -> usize {
    if let Some(i) = profile.content_index(condition) {
        return i;
    }
    if let Some((family, sev)) = condition.split_once('@') {
        let sev: i64 = sev.parse().unwrap_or(0);
        let near = profile
            .contents
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                let (f, s) = c.split_once('@')?;
                (f == family).then(|| (i, (s.parse::<i64>().unwrap_or(0) - sev).abs()))
            })
            .min_by_key(|&(_, d)| d);
        if let Some((i, _)) = near {
            return i;
        }
    }
    profile.content_index("clean").unwrap_or(0)
}

/// A frame as replay from a profile sees it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FrameFacts {
    /// True class.
    pub label: u16,
    /// What it shows (the frames of one scene share it).
    pub object: u64,
    /// Profile content condition.
    pub content: usize,
}

/// The oracle's knowledge of a stream: each frame's content, label, arrival and load on
/// arrival.
pub fn truth(facts: &[FrameFacts], arrivals_s: &[f64], workload: &Workload) -> Vec<FrameTruth> {
    facts
        .iter()
        .zip(arrivals_s)
        .map(|(f, &t)| FrameTruth {
            content: f.content,
            label: f.label,
            load: workload.at(t).cpu_load,
            arrival_s: t,
        })
        .collect()
}

/// SplitMix64: a fast, well-mixed hash of the draw's coordinates.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn unit(bits: u64) -> f64 {
    ((bits >> 11) as f64 + 0.5) / (1u64 << 53) as f64
}

/// Share of frames on which every candidate's answer comes from one common uniform draw
/// (on the rest each candidate draws its own), so that sub-networks of one super-network
/// tend to fail on the same frames. Measured on a live `opa run scenarios/dynamic.toml` (216 frames on which
/// exhaustive search ran all 24 candidates): two candidates were both wrong on 8.9 % of
/// frames on average, against 1.8 % were their errors independent and 11.8 % were they
/// nested; 0.7 of the way from independent to nested. Each candidate's top-1 is unchanged.
pub const SHARED_ANSWER: f64 = 0.7;

/// [`SHARED_ANSWER`] once the probe's confidence bin is drawn (the bin carries part of what
/// makes a frame hard for everyone). Measured on five live dynamic runs (1,080 frames on
/// which exhaustive search ran all 24 candidates): two candidates both wrong on 12.9 % of
/// frames; 8.4 % were they independent given the bin, 15.4 % were they nested given it.
pub const SHARED_GIVEN_BIN: f64 = 0.64;

/// Per content condition and true class: the cumulative shares of the probe-confidence
/// bins objects of that class are drawn from.
struct Bins {
    cdf: Vec<Vec<f64>>,
}

/// The condition's bin shares `n`, tilted (exponentially in the probe's per-bin top-1 `t`,
/// the least change that does it) so that the probe's mean top-1 over them is `target`: a
/// class the probe gets less often right shows more unsure frames. Cumulative.
fn tilted_cdf(n: &[usize], t: &[f64], target: f64) -> Vec<f64> {
    let weights = |theta: f64| -> Vec<f64> {
        n.iter()
            .zip(t)
            .map(|(&k, &v)| {
                if k == 0 || !v.is_finite() {
                    0.0
                } else {
                    k as f64 * (theta * v).exp()
                }
            })
            .collect()
    };
    let mean = |w: &[f64]| {
        let total: f64 = w.iter().sum();
        w.iter()
            .zip(t)
            .filter(|(w, _)| **w > 0.0)
            .map(|(w, v)| w * v)
            .sum::<f64>()
            / total.max(1e-300)
    };
    // The mean rises with theta: bisect (out of reach, the nearest end).
    let (mut lo, mut hi) = (-60.0f64, 60.0f64);
    for _ in 0..60 {
        let mid = 0.5 * (lo + hi);
        if mean(&weights(mid)) < target {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let w = weights(0.5 * (lo + hi));
    let total: f64 = w.iter().sum::<f64>().max(1e-300);
    let mut acc = 0.0;
    w.iter()
        .map(|x| {
            acc += x / total;
            acc
        })
        .collect()
}

/// Outcomes drawn from a profile.
pub struct ProfileTarget<'a> {
    profile: &'a Profile,
    facts: &'a [FrameFacts],
    workload: &'a Workload,
    seed: u64,
    slowdown: f64,
    classes: u16,
    /// Per content condition, with the profile's per-frame tables.
    bins: Option<Vec<Bins>>,
    /// The CPU load requested at the runs so far, summed in run order, and the runs.
    load_sum: f64,
    runs: usize,
    /// The load trace's segment of the latest run ([`Workload::at_from`]).
    segment: usize,
}

impl<'a> ProfileTarget<'a> {
    /// The load trace it draws latencies under.
    pub fn workload(&self) -> &'a Workload {
        self.workload
    }

    /// The mean CPU load requested at the runs so far (0 before any).
    pub fn mean_load(&self) -> f64 {
        self.load_sum / self.runs.max(1) as f64
    }

    /// A target over `facts` (one per frame); `seed` fixes every draw.
    pub fn new(
        profile: &'a Profile,
        facts: &'a [FrameFacts],
        workload: &'a Workload,
        seed: u64,
        slowdown: f64,
    ) -> Self {
        let classes = profile
            .content
            .first()
            .and_then(|c| c.first())
            .map_or(10, |s| s.class_top1.len().max(2)) as u16;
        let bins = profile.has_frame_table().then(|| {
            let probe = profile.probe;
            (0..profile.contents.len())
                .map(|k| {
                    let s = &profile.content[probe][k];
                    Bins {
                        cdf: (0..classes)
                            .map(|l| {
                                let target = profile.class_top1(probe, k, l);
                                tilted_cdf(&s.probe_bin_images, &s.probe_bin_top1, target)
                            })
                            .collect(),
                    }
                })
                .collect()
        });
        ProfileTarget {
            profile,
            facts,
            workload,
            seed,
            slowdown,
            classes,
            bins,
            load_sum: 0.0,
            runs: 0,
            segment: 0,
        }
    }
}

impl Target for ProfileTarget<'_> {
    fn cpu_load_at(&self, t_s: f64) -> f64 {
        self.workload.at(t_s).cpu_load
    }

    fn run(&mut self, candidate: usize, frame: usize, start_s: f64) -> Result<Inference, String> {
        let f = self
            .facts
            .get(frame)
            .ok_or_else(|| format!("no frame {frame}"))?;
        if candidate >= self.profile.candidates.len() {
            return Err(format!("no candidate {candidate}"));
        }
        let load = self.workload.at_from(&mut self.segment, start_s).cpu_load;
        self.load_sum += load;
        self.runs += 1;
        let l = self.profile.latency_at(candidate, load);
        let h = mix(self.seed ^ mix(frame as u64 ^ mix(candidate as u64)));
        let (u1, u2) = (unit(h), unit(mix(h)));
        // Box–Muller normal, then the log-normal with the profile's p50 and p95.
        let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        let sigma = l.log_sigma();
        let compute_ms = l.p50_ms * (sigma * z).exp() * self.slowdown;
        let a = &self.profile.content[candidate][f.content];
        let class_top1 = self.profile.class_top1(candidate, f.content, f.label);
        let (correct, confidence) = match &self.bins {
            None => {
                // On a share of frames every candidate's answer comes from one common draw
                // (errors nested: a candidate is wrong on such a frame whenever a more
                // accurate one is); on the others each candidate draws its own.
                let common = mix(self.seed ^ mix(frame as u64 ^ 0x5a5a_5a5a_5a5a_5a5a));
                let u = if unit(common) < SHARED_ANSWER {
                    unit(mix(common))
                } else {
                    unit(mix(h ^ 1))
                };
                (u < class_top1, a.confidence)
            }
            Some(bins) => {
                // The object's difficulty under this condition and class: its
                // probe-confidence bin.
                let cdf = &bins[f.content].cdf[(f.label % self.classes) as usize];
                let seen = mix(self.seed ^ mix(f.object ^ mix(f.content as u64 ^ 0x0b1e)));
                let u = unit(seen);
                let bin = cdf.iter().position(|&x| u < x).unwrap_or(PROBE_BINS - 1);
                let t = a.probe_bin_top1[bin];
                let top1 = if t.is_finite() { t } else { class_top1 };
                let common = mix(seen ^ 0x5a5a);
                let u = if unit(common) < SHARED_GIVEN_BIN {
                    unit(mix(common))
                } else {
                    unit(mix(seen ^ mix(candidate as u64 ^ 0xc0de)))
                };
                let confidence = if candidate == self.profile.probe {
                    (bin as f64 + 0.5) / PROBE_BINS as f64
                } else {
                    a.confidence
                };
                (u < top1, confidence)
            }
        };
        Ok(Inference {
            compute_ms,
            predicted: if correct {
                f.label
            } else {
                (f.label + 1) % self.classes
            },
            confidence: confidence as f32,
            entropy: a.entropy as f32,
            margin: a.margin as f32,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::{Interpolation, LoadPoint};
    use opa_predictors::profile::synthetic;

    fn idle() -> Workload {
        Workload {
            points: vec![LoadPoint {
                time_s: 0.0,
                cpu_load: 0.0,
                gpu_load: 0.0,
            }],
            interpolation: Interpolation::Step,
        }
    }

    /// `n` frames of the synthetic profile's content 2, labels cycling through ten classes,
    /// each its own object.
    fn frames(n: usize) -> Vec<FrameFacts> {
        (0..n)
            .map(|i| FrameFacts {
                label: (i % 10) as u16,
                object: i as u64,
                content: 2,
            })
            .collect()
    }

    /// The synthetic profile without its per-frame tables.
    fn without_bins(mut p: Profile) -> Profile {
        for row in &mut p.content {
            for s in row {
                s.probe_bin_top1.clear();
                s.probe_bin_images.clear();
                s.view_bin_top1.clear();
                s.view_bin_images.clear();
            }
        }
        p
    }

    #[test]
    fn conditions_map_to_the_nearest_measured_one() {
        let p = synthetic(2, 3, &[0.0]);
        assert_eq!(content_index(&p, "noise@2"), 2);
        assert_eq!(content_index(&p, "noise@5"), 3);
        assert_eq!(content_index(&p, "fog@2"), 0);
        assert_eq!(content_index(&p, "clean"), 0);
    }

    #[test]
    fn draws_follow_the_profile_and_are_deterministic() {
        let p = synthetic(3, 2, &[0.0, 1.0]);
        let facts = frames(20_000);
        let w = idle();
        let mut t = ProfileTarget::new(&p, &facts, &w, 7, 1.0);
        let runs: Vec<Inference> = (0..facts.len())
            .map(|f| t.run(1, f, 0.0).unwrap())
            .collect();
        let top1 = runs
            .iter()
            .zip(&facts)
            .filter(|(r, f)| r.predicted == f.label)
            .count() as f64
            / runs.len() as f64;
        assert!((top1 - p.content[1][2].top1).abs() < 0.015, "{top1}");
        let mut lat: Vec<f64> = runs.iter().map(|r| r.compute_ms).collect();
        lat.sort_by(f64::total_cmp);
        let (p50, p95) = (lat[lat.len() / 2], lat[lat.len() * 95 / 100]);
        assert!((p50 / p.latency[1][0].p50_ms - 1.0).abs() < 0.03, "{p50}");
        assert!((p95 / p.latency[1][0].p95_ms - 1.0).abs() < 0.05, "{p95}");
        let mut again = ProfileTarget::new(&p, &facts, &w, 7, 1.0);
        assert_eq!(again.run(1, 5, 0.0).unwrap(), runs[5]);
        let mut other = ProfileTarget::new(&p, &facts, &w, 8, 1.0);
        assert_ne!(other.run(1, 5, 0.0).unwrap().compute_ms, runs[5].compute_ms);
    }

    #[test]
    fn answers_are_correlated_across_candidates_as_measured() {
        let p = without_bins(synthetic(3, 2, &[0.0]));
        let facts = frames(40_000);
        let w = idle();
        let mut t = ProfileTarget::new(&p, &facts, &w, 3, 1.0);
        let wrong = |t: &mut ProfileTarget, c: usize| -> Vec<bool> {
            (0..facts.len())
                .map(|f| t.run(c, f, 0.0).unwrap().predicted != facts[f].label)
                .collect()
        };
        let (a, b) = (wrong(&mut t, 0), wrong(&mut t, 2));
        let n = facts.len() as f64;
        let share = |v: &[bool]| v.iter().filter(|&&x| x).count() as f64 / n;
        let (wa, wb) = (share(&a), share(&b));
        let both = a.iter().zip(&b).filter(|(x, y)| **x && **y).count() as f64 / n;
        // Marginals as profiled, joint between independent and nested as SHARED_ANSWER says.
        assert!((wa - (1.0 - p.content[0][2].top1)).abs() < 0.01, "{wa}");
        assert!((wb - (1.0 - p.content[2][2].top1)).abs() < 0.01, "{wb}");
        let expect = SHARED_ANSWER * wa.min(wb) + (1.0 - SHARED_ANSWER) * wa * wb;
        assert!(
            (both - expect).abs() < 0.01,
            "both wrong {both}, expected {expect}"
        );
    }

    #[test]
    fn per_frame_draws_follow_the_bins_per_object() {
        // Probe-confidence bins under content 2: 60 % of images in bin 18, 40 % in bin 6;
        // candidate 2 right on 95 % and 50 % of them (top-1 0.77 overall).
        let mut p = synthetic(3, 2, &[0.0]);
        for c in 0..3 {
            let s = &mut p.content[c][2];
            s.probe_bin_images = vec![0; PROBE_BINS];
            s.probe_bin_images[18] = 60;
            s.probe_bin_images[6] = 40;
            s.probe_bin_top1 = vec![f64::NAN; PROBE_BINS];
            s.probe_bin_top1[18] = if c == 0 { 0.9 } else { 0.95 };
            s.probe_bin_top1[6] = if c == 0 { 0.3 } else { 0.5 };
            s.top1 = 0.6 * s.probe_bin_top1[18] + 0.4 * s.probe_bin_top1[6];
            s.class_top1 = vec![s.top1; 10];
        }
        // Scenes of 5 frames: objects i / 5.
        let facts: Vec<FrameFacts> = (0..50_000)
            .map(|i| FrameFacts {
                label: ((i / 5) % 10) as u16,
                object: (i / 5) as u64,
                content: 2,
            })
            .collect();
        let w = idle();
        let mut t = ProfileTarget::new(&p, &facts, &w, 11, 1.0);
        let probe: Vec<Inference> = (0..facts.len())
            .map(|f| t.run(0, f, 0.0).unwrap())
            .collect();
        let big: Vec<Inference> = (0..facts.len())
            .map(|f| t.run(2, f, 0.0).unwrap())
            .collect();
        let right = |r: &Inference, f: usize| r.predicted == facts[f].label;
        // The probe reports the object's bin; the candidate's top-1 in it is the table's.
        let sure: Vec<usize> = (0..facts.len())
            .filter(|&f| probe[f].confidence > 0.9)
            .collect();
        let unsure: Vec<usize> = (0..facts.len())
            .filter(|&f| probe[f].confidence < 0.4)
            .collect();
        assert_eq!(sure.len() + unsure.len(), facts.len());
        assert!((sure.len() as f64 / facts.len() as f64 - 0.6).abs() < 0.02);
        let rate =
            |v: &[usize]| v.iter().filter(|&&f| right(&big[f], f)).count() as f64 / v.len() as f64;
        assert!((rate(&sure) - 0.95).abs() < 0.02, "{}", rate(&sure));
        assert!((rate(&unsure) - 0.5).abs() < 0.03, "{}", rate(&unsure));
        // One scene's frames get one answer; other candidates report the condition's mean.
        for f in (0..facts.len()).step_by(5) {
            assert!((f..f + 5).all(|g| right(&big[g], g) == right(&big[f], f)));
            assert_eq!(probe[f + 4].confidence, probe[f].confidence);
        }
        assert_eq!(big[0].confidence, p.content[2][2].confidence as f32);
        // A class the probe gets right less often shows more unsure frames: at 50 % on
        // class 0 (bins at 90 % and 30 %), two thirds of its objects fall in the low bin.
        p.content[0][2].class_top1[0] = 0.5;
        let mut t = ProfileTarget::new(&p, &facts, &w, 11, 1.0);
        let class0: Vec<usize> = (0..facts.len()).filter(|&f| facts[f].label == 0).collect();
        let probe: Vec<Inference> = class0.iter().map(|&f| t.run(0, f, 0.0).unwrap()).collect();
        let low = probe.iter().filter(|r| r.confidence < 0.4).count() as f64 / probe.len() as f64;
        assert!((low - 2.0 / 3.0).abs() < 0.05, "{low}");
        let top1 = class0
            .iter()
            .zip(&probe)
            .filter(|(f, r)| r.predicted == facts[**f].label)
            .count() as f64
            / class0.len() as f64;
        assert!((top1 - 0.5).abs() < 0.05, "{top1}");
    }
}
