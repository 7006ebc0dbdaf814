//! Where OPA's recent runs fell in the latency distributions it predicted for them, and the
//! chances of finishing in time corrected by that ([`Tails`]).

use crate::profile::normal_cdf;
use std::collections::VecDeque;

/// Pseudo-runs the predicted distribution weighs as in a tail correction: with few runs
/// measured the prediction stands, with many the measured runs speak.
const TAIL_PRIOR: f64 = 16.0;
/// Runs pushed to a pool between two updates of the correction OPA's decisions read (the
/// per-frame chances are recomputed only when it changes).
const TAIL_BATCH: u32 = 16;

/// Tail pools: the probe's and the other candidates' runs, each right after a run of the
/// same candidate (warm) or of another one (cold), and runs of other candidates right after
/// the probe's on the same frame (always cold: only the second pool of [`AFTER_PROBE`] fills).
const POOLS: usize = 6;
/// The kind (warm pool's index) of runs right after the probe's on the same frame: on the
/// shipped profile's live runs, larger candidates run there landed past 2.5 x their idle
/// median on 10 % of runs (2 ms deadline, CPU load under 0.1), against 4 % when served on
/// a frame of their own; these pools shrink toward the other candidates' cold pool.
pub(super) const AFTER_PROBE: usize = 4;

/// Where recent runs fell in the latency distributions OPA predicted for them (their z-scores
/// in log latency at the estimated state), in [`POOLS`] pools. The calibrated distributions
/// are timed warm, one candidate in a loop; live, a sub-network that is served now and then
/// runs slower than that, the more right after another one (on the shipped profile's dynamic
/// runs, of OPA's runs of larger candidates 16 % landed past their predicted 95th percentile
/// right after another candidate's run, 13 % after their own; of the probe's, 7 % and 5 %).
/// A candidate's chance of finishing within a budget is the share of its pool's runs at or
/// below the budget's z-score, shrunk toward the normal distribution the prediction assumes.
pub(super) struct Tails {
    window: usize,
    /// Per pool: the z-scores in arrival order, the same sorted, and the ones the
    /// correction reads, sorted (kept in order run by run: sorting the window anew at every
    /// update cost more).
    recent: [VecDeque<f64>; POOLS],
    live: [Vec<f64>; POOLS],
    sorted: [Vec<f64>; POOLS],
    /// Runs pushed per pool since `sorted` was last updated.
    pending: [u32; POOLS],
    /// Changes whenever `sorted` does.
    pub(super) version: u64,
    /// The z grid, and the normal distribution function on it.
    z: Vec<f64>,
    phi: Vec<f64>,
    /// Per kind (probe, other, after the probe): [`Tails::exact`] on the z grid, computed
    /// when its pools change; empty before.
    grid: [Vec<[f64; 2]>; POOLS / 2],
    /// Per kind: its pools' [`Shrink`] at their latest change; None before any.
    shrink: [Option<Shrink>; POOLS / 2],
    /// What the [`AFTER_PROBE`] pools shrink toward: the other candidates' cold pool as it
    /// was at the after-probe pools' latest change (both of the other candidates' pools
    /// then, and their [`Shrink`]), None when those had no runs yet then.
    after_prior: Option<([Vec<f64>; 2], Shrink)>,
    /// Per kind: the highest z-score its pools (and those it shrinks toward) hold, and its
    /// chances past it and the grid (every run in time), updated with `sorted`.
    past: [(f64, [f64; 2]); POOLS / 2],
}

/// The z grid [`Tails::chances`] interpolates on: from `Z_LO` in steps of `Z_STEP`, `Z_N`
/// points (to +12: stalls land far out). Decisions read chances for many candidates on every
/// frame, and an exact one takes a normal distribution function and four searches; on the
/// grid it is a lookup.
const Z_LO: f64 = -6.0;
const Z_STEP: f64 = 0.05;
const Z_N: usize = 361;

impl Tails {
    pub(super) fn new(window: usize) -> Self {
        Tails {
            window,
            recent: Default::default(),
            live: Default::default(),
            sorted: Default::default(),
            pending: [0; POOLS],
            version: 0,
            z: (0..Z_N).map(|i| Z_LO + Z_STEP * i as f64).collect(),
            phi: (0..Z_N)
                .map(|i| normal_cdf(Z_LO + Z_STEP * i as f64))
                .collect(),
            grid: Default::default(),
            shrink: [None, None, None],
            after_prior: None,
            past: [(f64::NEG_INFINITY, [1.0; 2]); POOLS / 2],
        }
    }

    pub(super) fn push(&mut self, pool: usize, z: f64) {
        if self.window == 0 || z.is_nan() {
            return;
        }
        let (r, live) = (&mut self.recent[pool], &mut self.live[pool]);
        let place = |live: &[f64], x: f64| live.partition_point(|v| v.total_cmp(&x).is_lt());
        r.push_back(z);
        if r.len() > self.window {
            // The oldest run leaves as this one enters: the runs between their places move
            // by one (one shift, not two of half the window each).
            let old = r.pop_front().expect("over a window of at least 1");
            let (i, j) = (place(live, old), place(live, z));
            if j <= i {
                live.copy_within(j..i, j + 1);
                live[j] = z;
            } else {
                live.copy_within(i + 1..j, i);
                live[j - 1] = z;
            }
        } else {
            live.insert(place(live, z), z);
        }
        self.pending[pool] += 1;
        if self.pending[pool] >= TAIL_BATCH {
            self.pending[pool] = 0;
            self.sorted[pool].clone_from(live);
            self.version += 1;
            // (Runs after the probe shrink toward the other candidates' cold ones as they
            // were at the after-probe pools' latest update, so that an update of the others
            // does not rebuild their grid too.)
            let kind = pool - pool % 2;
            let n = |k: usize| self.sorted[k].len() as f64;
            let shrink = Shrink::new(n(kind), n(kind + 1));
            self.shrink[kind / 2] = Some(shrink);
            if kind == AFTER_PROBE {
                self.after_prior = self.shrink[1]
                    .as_ref()
                    .map(|&sh| ([self.sorted[2].clone(), self.sorted[3].clone()], sh));
            }
            self.grid[kind / 2] = (0..Z_N)
                .map(|i| self.grid_point(kind, i, &shrink))
                .collect();
            self.past = [0, 2, AFTER_PROBE].map(|kind| self.past_all(kind));
        }
    }

    /// [`Tails::past`] of `kind`.
    fn past_all(&self, kind: usize) -> (f64, [f64; 2]) {
        let top = |k: usize| self.sorted[k].last().map_or(f64::NEG_INFINITY, |&m| m);
        let all = |k: usize| (self.sorted[k].len() as f64, self.sorted[k].len() as f64);
        let (mut high, mut prior) = (top(kind).max(top(kind + 1)), 1.0);
        if kind == AFTER_PROBE {
            high = high.max(top(2)).max(top(3));
            prior = mix(all(2), all(3), 1.0)[1];
        }
        (high, mix(all(kind), all(kind + 1), prior))
    }

    /// [`Tails::exact`] at point `i` of the z grid for `kind`, whose pools have runs
    /// (`shrink`: theirs). A kind's pools shrink toward the normal distribution, or for
    /// [`AFTER_PROBE`], toward the other candidates' cold pool ([`Tails::after_prior`]).
    fn grid_point(&self, kind: usize, i: usize, shrink: &Shrink) -> [f64; 2] {
        let z = self.z[i];
        let below = |s: &[f64]| s.partition_point(|&v| v <= z) as f64;
        let phi = match &self.after_prior {
            Some(([s0, s1], sh)) if kind == AFTER_PROBE => {
                sh.mix(below(s0), below(s1), self.phi[i])[1]
            }
            _ => self.phi[i],
        };
        shrink.mix(
            below(&self.sorted[kind]),
            below(&self.sorted[kind + 1]),
            phi,
        )
    }

    /// The chance that a run of `pool` lands at or below z-score `z` (see [`Tails::chances`]).
    #[cfg(test)]
    fn chance(&self, pool: usize, z: f64) -> f64 {
        self.chances(pool - pool % 2, z)[pool % 2]
    }

    /// The chances that a run lands at or below z-score `z`, for both pools of `kind` (the
    /// even pool's index: warm, then cold): each pool's runs shrunk toward its kind's (probe
    /// or not, warm and cold together), shrunk in turn toward the predicted normal
    /// distribution, so that a pool with few runs (cold runs of the probe, say) borrows from
    /// its kind before falling back to the prediction.
    ///
    /// Interpolated on the z grid (exact outside it, and before any run of the kind).
    pub(super) fn chances(&self, kind: usize, z: f64) -> [f64; 2] {
        let t = (z - Z_LO) / Z_STEP;
        let (high, past) = self.past[kind / 2];
        if t >= (Z_N - 1) as f64 && z >= high {
            // Past the grid (the normal chance is 1 there) and every run the pools hold:
            // every run counts as in time, without searching the pools.
            return past;
        }
        if self.shrink[kind / 2].is_none() || !(t >= 0.0 && t < (Z_N - 1) as f64) {
            return self.exact(kind, z);
        }
        // (`t - i` is `t.fract()` for t >= 0, without the call to libm's trunc.)
        let i = t as usize;
        let f = t - i as f64;
        let (a, b) = (self.grid[kind / 2][i], self.grid[kind / 2][i + 1]);
        [a[0] + f * (b[0] - a[0]), a[1] + f * (b[1] - a[1])]
    }

    /// [`Tails::chances`] computed exactly.
    fn exact(&self, kind: usize, z: f64) -> [f64; 2] {
        let below = |s: &Vec<f64>| (s.partition_point(|&v| v <= z) as f64, s.len() as f64);
        let prior = if kind == AFTER_PROBE {
            self.exact(2, z)[1]
        } else {
            normal_cdf(z)
        };
        mix(
            below(&self.sorted[kind]),
            below(&self.sorted[kind + 1]),
            prior,
        )
    }
}

/// A kind's two pools' chances from (runs at or below z, runs) of each and the predicted
/// chance `phi`: each pool shrunk toward both together, those toward the prediction.
fn mix((b0, n0): (f64, f64), (b1, n1): (f64, f64), phi: f64) -> [f64; 2] {
    Shrink::new(n0, n1).mix(b0, b1, phi)
}

/// [`mix`] for pools of `n0` and `n1` runs, its divisions taken once (the tail grid's
/// points mix with the same pools until they change).
#[derive(Clone, Copy, Debug)]
struct Shrink {
    /// 1 / (n0 + n1 + prior), 1 / (n0 + prior), 1 / (n1 + prior).
    r: f64,
    r0: f64,
    r1: f64,
}

impl Shrink {
    fn new(n0: f64, n1: f64) -> Self {
        Shrink {
            r: 1.0 / (n0 + n1 + TAIL_PRIOR),
            r0: 1.0 / (n0 + TAIL_PRIOR),
            r1: 1.0 / (n1 + TAIL_PRIOR),
        }
    }

    fn mix(&self, b0: f64, b1: f64, phi: f64) -> [f64; 2] {
        let parent = (b0 + b1 + TAIL_PRIOR * phi) * self.r;
        [
            (b0 + TAIL_PRIOR * parent) * self.r0,
            (b1 + TAIL_PRIOR * parent) * self.r1,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tail grid as a sweep through the sorted pools: kind `kind`'s points, shrinking
    /// toward `prior` at each.
    fn swept_grid(t: &Tails, kind: usize, prior: &[f64]) -> Vec<[f64; 2]> {
        let (s0, s1) = (&t.sorted[kind], &t.sorted[kind + 1]);
        let shrink = Shrink::new(s0.len() as f64, s1.len() as f64);
        let (mut i0, mut i1) = (0, 0);
        (0..Z_N)
            .map(|i| {
                let z = Z_LO + Z_STEP * i as f64;
                while i0 < s0.len() && s0[i0] <= z {
                    i0 += 1;
                }
                while i1 < s1.len() && s1[i1] <= z {
                    i1 += 1;
                }
                shrink.mix(i0 as f64, i1 as f64, prior[i])
            })
            .collect()
    }

    #[test]
    fn tails_move_from_the_prediction_to_the_measured_runs() {
        // No runs, or no window: the normal distribution the prediction assumes.
        let mut t = Tails::new(64);
        assert!((t.chance(3, 1.645) - 0.95).abs() < 1e-3);
        let mut off = Tails::new(0);
        off.push(3, 3.0);
        assert!((off.chance(3, 1.645) - 0.95).abs() < 1e-3);
        // Cold runs of other candidates two standard deviations slower than predicted: a
        // budget at the predicted 95th percentile is missed by all of them. Their kind (other
        // candidates, warm and cold): 16 x 0.95 / 80 = 0.19; the pool: 16 x 0.19 / 80.
        for _ in 0..64 {
            t.push(3, 2.0);
        }
        let kind = 16.0 * 0.95 / 80.0;
        let got = t.chance(3, 1.645);
        assert!((got - 16.0 * kind / 80.0).abs() < 1e-3, "{got}");
        assert!(t.chance(3, 2.5) > 0.99);
        // Warm runs of other candidates, none measured yet, borrow from their kind; the
        // probe's pools are of another kind.
        assert!((t.chance(2, 1.645) - kind).abs() < 1e-3);
        assert!((t.chance(0, 1.645) - 0.95).abs() < 1e-3);
        assert!((t.chance(1, 1.645) - 0.95).abs() < 1e-3);
        // The window keeps the most recent runs.
        for _ in 0..64 {
            t.push(3, 0.0);
        }
        assert!(t.chance(3, 1.645) > 0.98);
        // Interpolated on the z grid, chances are within a hair of the exact ones.
        for z in [-7.0, -1.0, 0.0, 0.03, 1.645, 2.0, 4.4, 11.99, 13.0] {
            for kind in [0, 2] {
                let (a, b) = (t.chances(kind, z), t.exact(kind, z));
                assert!(
                    (a[0] - b[0]).abs() < 0.02 && (a[1] - b[1]).abs() < 0.02,
                    "{z}"
                );
            }
        }
        // A correction updates in batches: a run alone does not change what decisions read.
        let v = t.version;
        t.push(3, 9.0);
        assert_eq!(t.version, v);
    }

    #[test]
    fn tail_grid_points_equal_a_full_sweep_to_the_bit() {
        let mut t = Tails::new(64);
        let mut h = 7u64;
        let mut draw = || {
            h = h
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((h >> 11) as f64 / (1u64 << 53) as f64) * 16.0 - 7.0
        };
        let grid_of = |t: &Tails, kind: usize| -> Vec<[f64; 2]> { t.grid[kind / 2].clone() };
        // The other candidates' pools first, then the after-probe ones: these shrink toward
        // the other candidates' cold pool as it was then...
        for pool in [2, 3, 2, 0, 1, 3, AFTER_PROBE + 1, AFTER_PROBE] {
            for _ in 0..TAIL_BATCH * 3 {
                t.push(pool, draw());
            }
        }
        let other = swept_grid(&t, 2, &t.phi);
        let prior: Vec<f64> = other.iter().map(|g| g[1]).collect();
        let after = swept_grid(&t, AFTER_PROBE, &prior);
        assert_eq!(grid_of(&t, 0), swept_grid(&t, 0, &t.phi));
        assert_eq!(grid_of(&t, 2), other);
        assert_eq!(grid_of(&t, AFTER_PROBE), after);
        // ...and keep it while the other candidates' pools change, until their own do.
        for _ in 0..TAIL_BATCH {
            t.push(3, 5.0);
        }
        assert_ne!(grid_of(&t, 2), other);
        assert_eq!(grid_of(&t, AFTER_PROBE), after);
        for _ in 0..TAIL_BATCH {
            t.push(AFTER_PROBE + 1, draw());
        }
        let prior: Vec<f64> = swept_grid(&t, 2, &t.phi).iter().map(|g| g[1]).collect();
        assert_eq!(
            grid_of(&t, AFTER_PROBE),
            swept_grid(&t, AFTER_PROBE, &prior)
        );
        // The windows stay sorted as a sort of the most recent runs would have them.
        for pool in 0..POOLS {
            let mut want: Vec<f64> = t.recent[pool].iter().copied().collect();
            want.sort_by(f64::total_cmp);
            assert_eq!(t.live[pool], want, "pool {pool}");
        }
    }

    #[test]
    fn a_full_window_stays_sorted_as_runs_leave_and_enter() {
        // Runs entering before, after and at the place of the one leaving, repeats, and
        // infinities; after every push the window is a sort of the most recent runs.
        let mut t = Tails::new(5);
        let runs = [
            3.0,
            1.0,
            4.0,
            1.0,
            5.0,
            9.0,
            2.0,
            6.0,
            5.0,
            3.0,
            5.0,
            5.0,
            5.0,
            -1.0,
            8.0,
            9.0,
            f64::NEG_INFINITY,
            7.0,
            9.0,
            3.0,
            2.0,
            3.0,
            8.0,
            4.0,
            6.0,
            2.0,
            6.0,
            4.0,
            3.0,
        ];
        for (k, &z) in runs.iter().enumerate() {
            t.push(2, z);
            let mut want: Vec<f64> = t.recent[2].iter().copied().collect();
            want.sort_by(f64::total_cmp);
            assert_eq!(t.live[2], want, "after run {k}");
            assert_eq!(t.recent[2].len(), (k + 1).min(5));
        }
    }

    #[test]
    fn runs_after_the_probe_borrow_from_the_other_candidates_cold_runs() {
        let mut t = Tails::new(64);
        // Before any run: the prediction.
        assert!((t.chance(AFTER_PROBE + 1, 1.645) - 0.95).abs() < 1e-3);
        // Other candidates' cold runs all two standard deviations slow: runs after the probe,
        // none measured yet, take their pool's chance (16 x 0.19 / 80, see above).
        for _ in 0..64 {
            t.push(3, 2.0);
        }
        let cold = t.chance(3, 1.645);
        assert!((cold - 16.0 * (16.0 * 0.95 / 80.0) / 80.0).abs() < 1e-3);
        let after = t.chance(AFTER_PROBE + 1, 1.645);
        assert!((after - cold).abs() < 1e-3, "{after} vs {cold}");
        // Runs after the probe all on time: their own pool takes over.
        for _ in 0..64 {
            t.push(AFTER_PROBE + 1, 0.0);
        }
        assert!(t.chance(AFTER_PROBE + 1, 1.645) > 0.75);
        assert!(
            (t.chance(3, 1.645) - cold).abs() < 1e-9,
            "the other pools keep theirs"
        );
        for z in [-1.0, 0.5, 1.645, 3.0] {
            let (a, b) = (t.chances(AFTER_PROBE, z), t.exact(AFTER_PROBE, z));
            assert!((a[1] - b[1]).abs() < 0.02, "{z}: {a:?} vs {b:?}");
        }
    }
}
