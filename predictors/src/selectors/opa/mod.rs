//! `opa`: One-Predict-All. One shallow probe sub-network shows what the current frames are
//! like; from that, without labels, OPA predicts every candidate's top-1 and latency
//! distribution and serves the candidate with the most frames predicted right within the
//! deadline: predicted top-1 × the predicted chance of finishing in time.
//!
//! - [`per_frame`] (default, `evidence_frames > 0`): the probe reads each scene once; every
//!   frame is served on the candidates' top-1 in the bin of the probe's confidence (the
//!   profile's per-frame tables, weighed by the content conditions the readings point to),
//!   with the probe's own answer competing on the frame it ran on.
//! - [`rounds`] (`evidence_frames = 0`, the paper's scheme): probing rounds every
//!   `reprobe_every` frames; a [`Predictor`] reads the round's mean signals.
//! - [`load_estimate`]: the device's state from the most recent runs of any candidate, and
//!   every candidate's latency distribution in it.
//! - [`tails`]: where recent runs fell in their predicted distributions, correcting every
//!   chance of finishing in time.
//!
//! The method, with the reasons for each rule, is in `docs/method.md`.

mod load_estimate;
mod params;
mod per_frame;
mod rounds;
mod tails;

pub use params::{GAIN_QUANTILE, OpaParams};

use crate::predict::{Prediction, Predictor};
use crate::profile::{LatencyStats, Profile, Signals, normal_cdf, z_score};
use crate::{Context, Decision, Outcome, Phase, Selector};
use load_estimate::LoadTracker;
use tails::{AFTER_PROBE, Tails};

/// The OPA selector.
pub struct Opa {
    name: String,
    p: OpaParams,
    predictor: Box<dyn Predictor>,
    probe: usize,
    /// The device's current state, estimated from the most recent runs.
    load: LoadTracker,
    /// Where recent runs fell in their predicted latency distributions.
    tails: Tails,
    /// The latest predictions for every candidate; before the first reading, the clean top-1
    /// and idle latency.
    preds: Vec<Prediction>,
    /// Per-frame state; None in rounds.
    frame: Option<per_frame::PerFrame>,
    /// Rounds state (unused per frame).
    rounds: rounds::Rounds,
    /// Arrival to the end of this frame's probe run, ms.
    probe_done_ms: f64,
    /// The probe's latest compute time, ms.
    probe_ms: f64,
    /// The frame the probe last ran on (or was sent to).
    probed_frame: Option<u64>,
    serving: Option<usize>,
    deadline_ms: f64,
    /// The candidate of the latest run (probe or served).
    last_run: Option<usize>,
    /// The frame being decided waited for the device before its first run.
    queued: bool,
}

impl Opa {
    /// OPA over `profile`'s candidates with a fitted `predictor`; the probe is the profile's.
    /// Per-frame mode (`evidence_frames > 0`) needs the profile's per-frame tables; the
    /// error says so when a profile predates them.
    pub fn new(
        name: &str,
        p: OpaParams,
        profile: &Profile,
        predictor: Box<dyn Predictor>,
    ) -> Result<Self, String> {
        let clean = profile.content_index("clean").unwrap_or(0);
        let frame = if p.evidence_frames > 0 {
            Some(per_frame::PerFrame::new(&p, profile)?)
        } else {
            None
        };
        let preds = (0..profile.candidates.len())
            .map(|c| {
                let l = profile.latency[c][0];
                Prediction {
                    top1: profile.content[c][clean].top1,
                    latency_ms: l.mean_ms,
                    p50_ms: l.p50_ms,
                    p95_ms: l.p95_ms,
                }
            })
            .collect();
        Ok(Opa {
            name: name.into(),
            probe: profile.probe,
            load: LoadTracker::new(profile, p.idle_stretch),
            tails: Tails::new(p.tail_window as usize),
            preds,
            frame,
            rounds: rounds::Rounds::default(),
            p,
            predictor,
            probe_done_ms: 0.0,
            probe_ms: 0.0,
            probed_frame: None,
            serving: None,
            deadline_ms: 0.0,
            last_run: None,
            queued: false,
        })
    }

    /// The device's estimated state (load grid point), when OPA estimates it and has runs.
    fn load_state(&self) -> Option<usize> {
        (self.p.load_window > 0)
            .then(|| self.load.estimate())
            .flatten()
    }

    /// Every candidate's latency distribution now: at the device's estimated state `state`
    /// (from [`Opa::load_state`]), or with `load_window = 0` the predictor's reading of the
    /// probe's latest run.
    fn latencies(&self, state: Option<usize>) -> Vec<LatencyStats> {
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
    fn z_within(
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
    fn chances(&self, c: usize, z: f64, state: Option<usize>, after_probe: bool) -> [f64; 2] {
        if state.is_some() {
            self.tails.chances(self.kind(c, after_probe), z)
        } else {
            [normal_cdf(z); 2]
        }
    }

    /// The tail kind of candidate `c` (its warm pool's index): the probe runs on most
    /// frames, the others now and then, and a run of another candidate right after the
    /// probe's on the same frame (`after_probe`) is a kind of its own.
    fn kind(&self, c: usize, after_probe: bool) -> usize {
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
    fn cold(&self, c: usize) -> usize {
        usize::from(self.last_run != Some(c))
    }

    /// The tail pool of a run of candidate `c` now (`after_probe`: see [`Opa::kind`]).
    fn pool(&self, c: usize, after_probe: bool) -> usize {
        self.kind(c, after_probe) + self.cold(c)
    }
}

impl Selector for Opa {
    fn name(&self) -> &str {
        &self.name
    }

    fn decide(&mut self, ctx: &Context) -> Decision {
        self.deadline_ms = ctx.deadline_ms;
        if self.probed_frame != Some(ctx.frame) {
            // The frame's first decision: nothing ran on it yet, so its wait is for earlier
            // frames' runs; no run can serve it in time any more once it waited its deadline.
            if self.p.skip_late && ctx.past_deadline() {
                return Decision::Skip;
            }
            self.queued = ctx.waited_ms > 0.0;
        }
        if self.frame.is_some() {
            self.decide_per_frame(ctx)
        } else {
            self.decide_rounds(ctx)
        }
    }

    fn observe(&mut self, o: &Outcome) {
        if o.phase == Phase::Serve
            && self.probed_frame == Some(o.frame)
            && o.candidate == self.probe
        {
            // The probe's own run served the frame: already seen as a probe.
            if let Some(f) = self.frame.as_mut() {
                f.last_answer = Some(o.predicted);
            }
            return;
        }
        // Latency is seen on every run: it moves the load estimate and the tails.
        let ln = ln_ms(o.compute_ms);
        if let Some(g) = self.load_state().filter(|_| o.candidate < self.preds.len()) {
            let z = self.load.z_of_ln(o.candidate, g, ln);
            // Any run on the frame the probe ran on came right after it (a late escalation
            // reports as a probe; in rounds only the probe itself probes).
            let after_probe = self.probed_frame == Some(o.frame);
            self.tails.push(self.pool(o.candidate, after_probe), z);
        }
        self.last_run = Some(o.candidate);
        self.load
            .push_ln(o.candidate, ln, self.p.load_window as usize);
        if self.frame.is_some() {
            self.observe_per_frame(o);
        } else {
            self.observe_rounds(o);
        }
    }
}

/// The candidate of the highest `value` among `n` (the first of near-ties), and its value.
fn most_valued(n: usize, value: impl Fn(usize) -> f64) -> (usize, f64) {
    (0..n).map(|c| (c, value(c))).fold(
        (0, f64::MIN),
        |b, (c, v)| if v > b.1 + 1e-12 { (c, v) } else { b },
    )
}

/// The natural logarithm of a time `ms`, minus infinity for no time or less (a z-score of
/// minus infinity: no chance of finishing in it).
fn ln_ms(ms: f64) -> f64 {
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
