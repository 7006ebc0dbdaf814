//! What OPA reads latency from: the device's estimated state, every candidate's latency
//! distribution in it, and a run's chance of finishing within a budget, corrected by the
//! tails of recent runs (which pool a run belongs to).

use super::Opa;
use super::tails::AFTER_PROBE;
use crate::predict::Prediction;
use crate::profile::{LatencyStats, Profile, Signals, normal_cdf, z_score};

impl Opa {
    /// Before any reading: every candidate's clean top-1 and idle latency.
    pub(super) fn clean_idle(profile: &Profile) -> Vec<Prediction> {
        let clean = profile.content_index("clean").unwrap_or(0);
        (0..profile.candidates.len())
            .map(|c| {
                let l = profile.latency[c][0];
                Prediction {
                    top1: profile.content[c][clean].top1,
                    latency_ms: l.mean_ms,
                    p50_ms: l.p50_ms,
                    p95_ms: l.p95_ms,
                }
            })
            .collect()
    }

    /// The device's estimated state (load grid point), when OPA estimates it and has runs.
    pub(super) fn load_state(&self) -> Option<usize> {
        (self.p.load_window > 0)
            .then(|| self.load.estimate())
            .flatten()
    }

    /// Every candidate's latency distribution now: at the device's estimated state `state`
    /// (from [`Opa::load_state`]), or with `load_window = 0` the predictor's reading of the
    /// probe's latest run.
    pub(super) fn latencies(&self, state: Option<usize>) -> Vec<LatencyStats> {
        if let Some(g) = state {
            return (0..self.preds.len())
                .map(|c| self.load.latency(c, g))
                .collect();
        }
        if self.p.load_window == 0 && self.probe_ms > 0.0 {
            let s = Signals {
                latency_ms: self.probe_ms,
                ..self.rounds.content.unwrap_or_default()
            };
            return self
                .predictor
                .predict(&s, None)
                .iter()
                .map(|p| p.latency())
                .collect();
        }
        self.preds.iter().map(|p| p.latency()).collect()
    }

    /// The z-score of `budget` ms (`ln_budget`: its [`ln_ms`]) in candidate `c`'s latency
    /// distribution now: at the estimated state `state` (the load grid's, from the logarithm
    /// taken once per decision), or without one in `unestimated[c]`.
    pub(super) fn z_within(
        &self,
        c: usize,
        budget: f64,
        ln_budget: f64,
        state: Option<usize>,
        unestimated: &[LatencyStats],
    ) -> f64 {
        match state {
            Some(g) => self.load.z_of_ln(c, g, ln_budget),
            None => z_score(budget, &unestimated[c]),
        }
    }

    /// Candidate `c`'s chances of a run landing at or below z-score `z`, right after a run of
    /// its own and right after one of another candidate: the predicted normal distribution,
    /// corrected by where recent runs fell in theirs (only at an estimated state, whose runs
    /// are the ones measured).
    pub(super) fn chances(
        &self,
        c: usize,
        z: f64,
        state: Option<usize>,
        after_probe: bool,
    ) -> [f64; 2] {
        if state.is_some() {
            self.tails.chances(self.kind(c, after_probe), z)
        } else {
            [normal_cdf(z); 2]
        }
    }

    /// The tail kind of candidate `c` (its warm pool's index): the probe runs on most
    /// frames, the others now and then, and a run of another candidate right after the
    /// probe's on the same frame (`after_probe`) is a kind of its own.
    pub(super) fn kind(&self, c: usize, after_probe: bool) -> usize {
        if c == self.probe {
            0
        } else if after_probe {
            AFTER_PROBE
        } else {
            2
        }
    }

    /// 1 when a run of candidate `c` now would come right after a run of another candidate
    /// (and find less of it in cache), 0 right after its own.
    pub(super) fn cold(&self, c: usize) -> usize {
        usize::from(self.last_run != Some(c))
    }

    /// The tail pool of a run of candidate `c` now (`after_probe`: see [`Opa::kind`]).
    pub(super) fn pool(&self, c: usize, after_probe: bool) -> usize {
        self.kind(c, after_probe) + self.cold(c)
    }
}

/// The natural logarithm of a time `ms`, minus infinity for no time or less (a z-score of
/// minus infinity: no chance of finishing in it).
pub(super) fn ln_ms(ms: f64) -> f64 {
    if ms <= 0.0 {
        f64::NEG_INFINITY
    } else {
        ms.ln()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::synthetic;
    use crate::selectors::OpaParams;

    #[test]
    fn a_run_pools_by_probe_or_not_and_by_what_ran_before() {
        let p = synthetic(6, 2, &[0.0, 0.5, 1.0]);
        let model = crate::predict::fit(crate::predict::Variant::Linear, &p, &p.conditions());
        let mut o = Opa::new("opa", OpaParams::default(), &p, model.unwrap()).unwrap();
        // Nothing ran yet: every run would be cold.
        assert_eq!((o.pool(0, false), o.pool(3, false)), (1, 3));
        o.last_run = Some(3);
        assert_eq!(
            (o.pool(0, false), o.pool(3, false), o.pool(4, false)),
            (1, 2, 3)
        );
        o.last_run = Some(0);
        assert_eq!((o.pool(0, false), o.pool(3, false)), (0, 3));
        // Right after the probe's run on the same frame: a pool of its own (the probe itself
        // is never run twice on a frame).
        assert_eq!(o.pool(3, true), AFTER_PROBE + 1);
        assert_eq!(o.pool(0, true), 0);
    }
}
