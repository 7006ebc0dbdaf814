//! The device's current state, estimated from the most recent runs of any candidate by
//! maximum likelihood against the profile's latency tables ([`LoadTracker`]).

#[cfg(test)]
use super::ln_ms;
use crate::profile::{LatencyStats, Profile, z_sigma};
use std::collections::VecDeque;

/// Grid points of the load estimate within the calibrated load range.
const LOAD_STEPS: usize = 41;
/// Beyond the calibrated range, the grid continues as the top load's latencies scaled up
/// to 16 times, in steps of this factor.
const SCALE_STEP: f64 = 1.1;
/// Largest squared z-score one run adds to the load estimate's misfit: a rare stall under
/// any load must not outvote a window of ordinary runs.
const Z2_CAP: f64 = 16.0;
/// How much less misfit (nats over the window) another state needs for the load estimate to
/// move there.
const MOVE_MISFIT: f64 = 0.25;
/// Stretch states: the idle distribution's median × k, k in steps of this factor...
const STRETCH_STEP: f64 = 1.15;
/// ...and its 95th percentile × k × r, r one of these.
const STRETCH_TAILS: [f64; 6] = [1.0, 1.4, 2.0, 2.8, 4.0, 5.6];

/// The device's current state, estimated by maximum likelihood from the most recent runs of
/// any candidates. Each grid point is a state with every candidate's latency distribution:
/// the profile's load levels, with median and 95th percentile interpolated in log between
/// them, and above them the top load's scaled up (a slower device, or heavier contention);
/// and (`idle_stretch`) the idle distributions stretched, median × k and 95th percentile ×
/// k × r, alike for every candidate. Live contention need not look like the calibration
/// run's: on the shipped profile, calibrated load slows the smallest candidates far more than
/// the large ones (the probe's median 0.23 ms idle, 0.54 ms at full load, with a 95th
/// percentile of 3.3 ms), while live under half load every candidate ran 1.7-2.0 x its idle
/// median and 3.2-3.5 x its idle 95th percentile; read through the load levels alone, the
/// probe's runs made the large candidates look two to three times as spread as they were.
/// Never below the idle level: small candidates' runs finishing faster than calibrated say
/// little about the large ones (fixed per-run costs weigh more in small ones). Latency is
/// taken log-normal, and the estimate is the state under which the window's compute times
/// are most likely. Unlike a slowdown ratio, this knows that contention adds stalls of
/// similar length to every candidate, so a stall of a small candidate does not make the
/// large ones look slower than they are.
pub(super) struct LoadTracker {
    /// (candidate, ln compute ms) of the most recent runs, each with its misfit at every
    /// grid point (what its leaving the window takes away).
    runs: VecDeque<((usize, f64), Vec<f64>)>,
    /// Per candidate: every grid point's median log latency, 1 / sigma and ln sigma.
    fit: Vec<[Vec<f64>; 3]>,
    /// Per candidate and grid point: the latency distribution, and its [`z_sigma`].
    stats: Vec<Vec<LatencyStats>>,
    sigma: Vec<Vec<f64>>,
    /// Per grid point: the window's misfit (negative log-likelihood up to a constant).
    misfit: Vec<f64>,
    /// Runs pushed since the misfit was last summed from scratch.
    pushed: u32,
    /// The estimate: the grid point of the least misfit, kept while none has
    /// [`MOVE_MISFIT`] less; None before any run.
    best: Option<usize>,
}

impl LoadTracker {
    pub(super) fn new(p: &Profile, idle_stretch: f64) -> Self {
        let (lo, hi) = (p.loads[0], *p.loads.last().expect("validated profile"));
        // (load, scale) of every grid point.
        let mut grid: Vec<(f64, f64)> = Vec::new();
        let steps = if hi > lo { LOAD_STEPS } else { 1 };
        for g in 0..steps {
            grid.push((lo + (hi - lo) * g as f64 / (steps - 1).max(1) as f64, 1.0));
        }
        let mut k = SCALE_STEP;
        while k <= 16.0 {
            grid.push((hi, k));
            k *= SCALE_STEP;
        }
        // (median factor, 95th percentile factor) of every stretch state.
        let mut stretches: Vec<(f64, f64)> = Vec::new();
        let mut k = 1.0;
        while idle_stretch > 0.0 && k <= idle_stretch.max(1.0) + 1e-9 {
            stretches.extend(STRETCH_TAILS.iter().map(|&r| (k, k * r)));
            k *= STRETCH_STEP;
        }
        // Log-linear interpolation of f between load levels.
        let at = |c: usize, x: f64, f: fn(&LatencyStats) -> f64| -> f64 {
            let l = &p.latency[c];
            if l.len() == 1 {
                return f(&l[0]).max(1e-9).ln();
            }
            let i = p.loads.partition_point(|&v| v <= x).clamp(1, l.len() - 1);
            let (x0, x1) = (p.loads[i - 1], p.loads[i]);
            let (y0, y1) = (f(&l[i - 1]).max(1e-9).ln(), f(&l[i]).max(1e-9).ln());
            let t = if x1 > x0 {
                ((x - x0) / (x1 - x0)).clamp(0.0, 1.0)
            } else {
                0.0
            };
            y0 + t * (y1 - y0)
        };
        let stats: Vec<Vec<LatencyStats>> = (0..p.candidates.len())
            .map(|c| {
                let mut row: Vec<LatencyStats> = grid
                    .iter()
                    .map(|&(x, k)| {
                        let p50 = at(c, x, |l| l.p50_ms).exp() * k;
                        LatencyStats {
                            mean_ms: at(c, x, |l| l.mean_ms).exp() * k,
                            p50_ms: p50,
                            p95_ms: (at(c, x, |l| l.p95_ms).exp() * k).max(p50),
                        }
                    })
                    .collect();
                let idle = p.latency[c][0];
                row.extend(stretches.iter().map(|&(k50, k95)| {
                    let p50 = idle.p50_ms * k50;
                    LatencyStats {
                        mean_ms: idle.mean_ms * k50,
                        p50_ms: p50,
                        p95_ms: (idle.p95_ms * k95).max(p50),
                    }
                }));
                row
            })
            .collect();
        let fit = stats
            .iter()
            .map(|row| {
                let sigma = |l: &LatencyStats| l.log_sigma().max(0.02);
                [
                    row.iter().map(|l| l.p50_ms.ln()).collect(),
                    row.iter().map(|l| 1.0 / sigma(l)).collect(),
                    row.iter().map(|l| sigma(l).ln()).collect(),
                ]
            })
            .collect();
        let sigma = stats
            .iter()
            .map(|row| row.iter().map(z_sigma).collect())
            .collect();
        let states = stats.first().map_or(0, Vec::len);
        LoadTracker {
            runs: VecDeque::new(),
            fit,
            stats,
            sigma,
            misfit: vec![0.0; states],
            pushed: 0,
            best: None,
        }
    }

    /// Records a run; keeps the most recent `window` (at least one).
    #[cfg(test)]
    fn push(&mut self, candidate: usize, compute_ms: f64, window: usize) {
        self.push_ln(candidate, ln_ms(compute_ms), window);
    }

    /// [`LoadTracker::push`] with the run's [`ln_ms`](super::ln_ms) (none when not finite: a run of no
    /// time, or of none measured).
    pub(super) fn push_ln(&mut self, candidate: usize, ln_ms: f64, window: usize) {
        if candidate >= self.fit.len() || !ln_ms.is_finite() {
            return;
        }
        let run = (candidate, ln_ms);
        // The leaving run's misfits are taken away as they were added.
        let oldest = if self.runs.len() >= window.max(1) {
            self.runs.pop_front().map(|(_, m)| m)
        } else {
            None
        };
        let [mu, inv, ls] = &self.fit[run.0];
        let fresh: Vec<f64> = (0..self.misfit.len())
            .map(|g| misfit(run.1, mu[g], inv[g], ls[g]))
            .collect();
        for (g, m) in self.misfit.iter_mut().enumerate() {
            *m += fresh[g] - oldest.as_ref().map_or(0.0, |o| o[g]);
        }
        self.runs.push_back((run, fresh));
        // Only when the window shrank (never while OPA runs: its window is fixed).
        while self.runs.len() > window.max(1) {
            let (_, oldest) = self.runs.pop_front().expect("over a window of at least 1");
            self.misfit
                .iter_mut()
                .zip(oldest.iter())
                .for_each(|(m, b)| *m -= b);
        }
        self.pushed += 1;
        if self.pushed >= 4096 {
            // Re-sum now and then so that rounding does not accumulate over long streams.
            self.pushed = 0;
            self.misfit.iter_mut().for_each(|m| *m = 0.0);
            for (_, m) in &self.runs {
                self.misfit
                    .iter_mut()
                    .zip(m.iter())
                    .for_each(|(s, m)| *s += m);
            }
        }
        let best = least(&self.misfit);
        // The estimate moves only to a state that explains the window clearly better
        // (neighbouring states fit about as well; every move makes OPA recompute chances).
        self.best = Some(match self.best {
            Some(cur) if self.misfit[best] > self.misfit[cur] - MOVE_MISFIT => cur,
            _ => best,
        });
    }

    /// The grid point that best explains the window, or None before any run.
    pub(super) fn estimate(&self) -> Option<usize> {
        self.best
    }

    /// Candidate `c`'s latency at grid point `g`.
    pub(super) fn latency(&self, c: usize, g: usize) -> LatencyStats {
        self.stats[c][g]
    }

    /// [`z_score`] of a time whose [`ln_ms`](super::ln_ms) is `ln` in candidate `c`'s latency at grid
    /// point `g`, from the kept median logarithm and sigma (decisions take the logarithm of
    /// a budget once, not once per candidate; a run's serves its z-score and the load
    /// estimate).
    pub(super) fn z_of_ln(&self, c: usize, g: usize, ln: f64) -> f64 {
        (ln - self.fit[c][0][g]) / self.sigma[c][g]
    }
}

/// One run's misfit (negative log-likelihood up to a constant) at a grid point: log latency
/// `t` against the point's median log latency `mu`, 1 / sigma `inv` and ln sigma `ls`, the
/// squared z-score capped at [`Z2_CAP`].
fn misfit(t: f64, mu: f64, inv: f64, ls: f64) -> f64 {
    let z = (t - mu) * inv;
    ls + 0.5 * (z * z).min(Z2_CAP)
}

/// The index of the least of `v`: the first of equals (NaN is never less); where nothing is
/// below infinity, the first infinity; 0 when there is none.
fn least(v: &[f64]) -> usize {
    let low = v
        .iter()
        .fold(f64::INFINITY, |a, &x| if x < a { x } else { a });
    v.iter().position(|&x| x == low).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::{synthetic, z_score};

    // Synthetic latency: mean (0.2 + 0.3 c)(1 + 2 load), median 0.9 × mean, p95 1.6 × mean.
    fn median(p: &Profile, c: usize, load: usize) -> f64 {
        p.latency[c][load].p50_ms
    }

    #[test]
    fn least_is_the_first_of_the_smallest() {
        assert_eq!(least(&[]), 0);
        assert_eq!(least(&[3.0]), 0);
        // On a lane, in the remainder, tied across lanes and with the remainder.
        assert_eq!(least(&[5.0, 4.0, 1.0, 7.0, 2.0, 1.5, 9.0, 8.0]), 2);
        assert_eq!(
            least(&[5.0, 4.0, 3.0, 7.0, 2.0, 1.5, 9.0, 8.0, 6.0, 0.5]),
            9
        );
        assert_eq!(least(&[2.0, 4.0, 3.0, 1.0, 1.0, 0.0, 9.0, 0.0, 0.0]), 5);
        let v: Vec<f64> = (0..190).map(|i| ((i * 37) % 101) as f64).collect();
        let first = (0..v.len()).fold(0, |b, g| if v[g] < v[b] { g } else { b });
        assert_eq!(least(&v), first);
    }

    #[test]
    fn load_is_estimated_from_runs_of_any_candidate() {
        let p = synthetic(6, 2, &[0.0, 0.5, 1.0]);
        let mut t = LoadTracker::new(&p, 0.0);
        assert_eq!(t.estimate(), None);
        // Small and large candidates at their medians under load 0.5.
        for i in 0..12 {
            let c = if i % 3 == 0 { 5 } else { 0 };
            t.push(c, median(&p, c, 1), 12);
        }
        let g = t.estimate().unwrap();
        let got = t.latency(3, g).p50_ms;
        assert!((got / median(&p, 3, 1) - 1.0).abs() < 0.05, "{got}");
        // The window forgets: idle runs replace them.
        for _ in 0..12 {
            t.push(0, median(&p, 0, 0), 12);
        }
        let got = t.latency(3, t.estimate().unwrap()).p50_ms;
        assert!((got / median(&p, 3, 0) - 1.0).abs() < 0.05, "{got}");
    }

    #[test]
    fn z_scores_from_a_logarithm_taken_once_match_the_plain_ones() {
        let p = synthetic(4, 2, &[0.0, 0.5, 1.0]);
        let t = LoadTracker::new(&p, 4.0);
        for c in 0..4 {
            for g in [0, 7, 40, 60, t.misfit.len() - 1] {
                for ms in [0.05, 0.4, 1.0, 3.3, 25.0] {
                    let want = z_score(ms, &t.latency(c, g));
                    let got = t.z_of_ln(c, g, ln_ms(ms));
                    assert!(
                        (got - want).abs() <= 1e-12 * want.abs().max(1.0),
                        "{got} {want}"
                    );
                }
                for ms in [0.0, -1.0] {
                    assert_eq!(t.z_of_ln(c, g, ln_ms(ms)), f64::NEG_INFINITY);
                    assert_eq!(z_score(ms, &t.latency(c, g)), f64::NEG_INFINITY);
                }
            }
        }
    }

    #[test]
    fn a_slowdown_the_calibrated_loads_do_not_show_is_read_as_a_stretch() {
        // Calibrated contention slows the smallest candidate 3x and 5x, the others 1.2x and
        // 1.5x; live, every candidate runs at twice its idle latency.
        let mut p = synthetic(6, 2, &[0.0, 0.5, 1.0]);
        for c in 0..6 {
            let idle = p.latency[c][0];
            for (g, f) in [(1, [3.0, 1.2]), (2, [5.0, 1.5])] {
                let f = f[usize::from(c > 0)];
                p.latency[c][g] = LatencyStats {
                    mean_ms: idle.mean_ms * f,
                    p50_ms: idle.p50_ms * f,
                    p95_ms: idle.p95_ms * f,
                };
            }
        }
        let predicted = |stretch: f64| {
            let mut t = LoadTracker::new(&p, stretch);
            for i in 0..12 {
                let c = if i % 2 == 0 { 0 } else { 5 };
                t.push(c, 2.0 * median(&p, c, 0), 12);
            }
            t.latency(3, t.estimate().unwrap()).p50_ms / median(&p, 3, 0)
        };
        let (with, without) = (predicted(16.0), predicted(0.0));
        assert!((with / 2.0 - 1.0).abs() < 0.06, "{with}");
        // The calibrated load levels alone cannot fit both and miss the others' slowdown.
        assert!(without < 1.6, "{without}");
    }

    #[test]
    fn one_stall_does_not_make_the_device_look_loaded() {
        let p = synthetic(6, 2, &[0.0, 0.5, 1.0]);
        let mut t = LoadTracker::new(&p, 0.0);
        for i in 0..12 {
            let stall = if i == 6 { 20.0 } else { 1.0 };
            t.push(0, median(&p, 0, 0) * stall, 12);
        }
        let got = t.latency(5, t.estimate().unwrap()).p50_ms;
        assert!(got < 1.15 * median(&p, 5, 0), "{got}");
    }

    #[test]
    fn beyond_the_calibrated_load_latencies_scale_up() {
        let p = synthetic(6, 2, &[0.0, 0.5, 1.0]);
        let mut t = LoadTracker::new(&p, 0.0);
        for _ in 0..12 {
            t.push(1, 3.0 * median(&p, 1, 2), 12);
        }
        let got = t.latency(4, t.estimate().unwrap()).p50_ms;
        assert!((got / (3.0 * median(&p, 4, 2)) - 1.0).abs() < 0.1, "{got}");
        // Faster than idle stays idle: small runs do not speak for large ones.
        let mut t = LoadTracker::new(&p, 0.0);
        for _ in 0..12 {
            t.push(0, 0.5 * median(&p, 0, 0), 12);
        }
        let got = t.latency(5, t.estimate().unwrap()).p50_ms;
        assert!((got / median(&p, 5, 0) - 1.0).abs() < 1e-9, "{got}");
        // Runs that are not timings are ignored.
        t.push(0, f64::NAN, 12);
        t.push(99, 1.0, 12);
        assert_eq!(t.runs.len(), 12);
    }
}
