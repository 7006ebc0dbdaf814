//! `exhaustive`: every `reprobe_every` frames, runs every candidate on `probe_frames`
//! current frames, then serves the most accurate one whose measured latency fits within
//! `margin × deadline`. Accuracy is estimated label-free from each candidate's own measured
//! confidence, through a per-candidate confidence → top-1 line fitted on the profile: the
//! right choice as far as measurement allows, at a large decision overhead.

use super::best_feasible;
use crate::predict::simple_regression;
use crate::profile::Profile;
use crate::{Context, Decision, Outcome, Phase, Selector};

crate::selector_params! {
    /// `exhaustive`'s parameters.
    pub struct ExhaustiveParams {
        /// Frames every candidate runs on per search.
        probe_frames: u32 = 3, "probe-frames", 1..=1000;
        /// Frames between searches.
        reprobe_every: u32 = 50, "reprobe-every", 1..=1_000_000;
        /// Share of the deadline a candidate's measured latency may use.
        margin: f64 = 0.8, "margin", 0.05..=1.0;
    }
}

/// The exhaustive-search selector.
pub struct Exhaustive {
    p: ExhaustiveParams,
    /// Per candidate: top-1 = a + b × mean confidence.
    conf_to_top1: Vec<(f64, f64)>,
    serving: usize,
    frames_left: u32,
    next_on_frame: usize,
    frame: u64,
    round_start: u64,
    /// Per candidate: (sum of compute ms, sum of confidence, runs).
    sums: Vec<(f64, f64, u32)>,
    started: bool,
}

impl Exhaustive {
    /// Exhaustive search over `profile`'s candidates.
    pub fn new(p: ExhaustiveParams, profile: &Profile) -> Self {
        let n = profile.candidates.len();
        Exhaustive {
            p,
            conf_to_top1: (0..n)
                .map(|c| {
                    let (x, y): (Vec<f64>, Vec<f64>) = profile.content[c]
                        .iter()
                        .map(|s| (s.confidence, s.top1))
                        .unzip();
                    simple_regression(&x, &y)
                })
                .collect(),
            serving: 0,
            frames_left: 0,
            next_on_frame: 0,
            frame: u64::MAX,
            round_start: 0,
            sums: vec![(0.0, 0.0, 0); n],
            started: false,
        }
    }
}

impl Selector for Exhaustive {
    fn name(&self) -> &str {
        "exhaustive"
    }

    fn decide(&mut self, ctx: &Context) -> Decision {
        let n = ctx.candidates.len();
        if ctx.frame != self.frame {
            self.frame = ctx.frame;
            self.next_on_frame = 0;
            if !self.started
                || (self.frames_left == 0
                    && ctx.frame >= self.round_start + self.p.reprobe_every as u64)
            {
                self.started = true;
                self.round_start = ctx.frame;
                self.frames_left = self.p.probe_frames.max(1);
                self.sums = vec![(0.0, 0.0, 0); n];
            }
        }
        if self.frames_left > 0 && self.next_on_frame < n {
            self.next_on_frame += 1;
            return Decision::Probe(self.next_on_frame - 1);
        }
        if self.frames_left > 0 {
            self.frames_left -= 1;
            if self.frames_left == 0 {
                let budget = self.p.margin * ctx.deadline_ms;
                let est =
                    self.sums
                        .iter()
                        .zip(&self.conf_to_top1)
                        .map(|(&(ms, conf, k), &(a, b))| {
                            let k = k.max(1) as f64;
                            (a + b * conf / k, ms / k)
                        });
                self.serving = best_feasible(est, budget);
            }
        }
        Decision::Serve(self.serving)
    }

    fn observe(&mut self, o: &Outcome) {
        if o.phase == Phase::Probe
            && let Some(s) = self.sums.get_mut(o.candidate)
        {
            s.0 += o.compute_ms;
            s.1 += o.confidence as f64;
            s.2 += 1;
        }
    }
}
