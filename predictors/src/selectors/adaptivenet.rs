//! `adaptivenet` (AdaptiveNet-style, MobiCom 2023): a budget-driven walk along the idle
//! trade-off curve. The latency budget is `margin × deadline`. Every `revalidate_every`
//! frames it tries the next, more accurate rung for `trial_frames` frames and keeps it only
//! if the trial's median latency fits the budget; it steps down at once when the median of
//! the last `trial_frames` served latencies exceeds the budget. Content-blind.

use super::dynamic_ofa::highest_fitting;
use crate::profile::Profile;
use crate::{Context, Decision, Outcome, Phase, Selector};
use std::collections::VecDeque;

crate::selector_params! {
    /// `adaptivenet`'s parameters.
    pub struct AdaptiveNetParams {
        /// Share of the deadline that is the latency budget.
        margin: f64 = 0.8, "margin", 0.05..=1.0;
        /// Frames between re-validations (trials of the next rung).
        revalidate_every: u32 = 50, "revalidate-every", 1..=1_000_000;
        /// Frames per trial, and served latencies in the step-down median.
        trial_frames: u32 = 5, "trial-frames", 1..=1000;
    }
}

/// The AdaptiveNet-style selector.
pub struct AdaptiveNet {
    p: AdaptiveNetParams,
    ladder: Vec<(usize, f64)>,
    rung: Option<usize>,
    /// Rung to return to if the running trial fails.
    trial_from: Option<usize>,
    since_change: u32,
    recent: VecDeque<f64>,
}

impl AdaptiveNet {
    /// A walk over `profile`'s idle, clean Pareto front.
    pub fn new(p: AdaptiveNetParams, profile: &Profile) -> Self {
        AdaptiveNet {
            ladder: profile
                .idle_ladder()
                .into_iter()
                .map(|c| (c, profile.latency[c][0].mean_ms))
                .collect(),
            p,
            rung: None,
            trial_from: None,
            since_change: 0,
            recent: VecDeque::new(),
        }
    }

    fn median(&self) -> f64 {
        let mut v: Vec<f64> = self.recent.iter().copied().collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    }

    fn go(&mut self, rung: usize) {
        self.rung = Some(rung);
        self.since_change = 0;
        self.recent.clear();
    }
}

impl Selector for AdaptiveNet {
    fn name(&self) -> &str {
        "adaptivenet"
    }

    fn decide(&mut self, ctx: &Context) -> Decision {
        let budget = self.p.margin * ctx.deadline_ms;
        let rung = *self
            .rung
            .get_or_insert_with(|| highest_fitting(&self.ladder, budget));
        let k = self.p.trial_frames.max(1) as usize;
        if self.recent.len() >= k {
            let over = self.median() > budget;
            if let Some(from) = self.trial_from.take() {
                if over {
                    self.go(from);
                } else {
                    self.since_change = 0;
                    self.recent.clear();
                }
            } else if over && rung > 0 {
                self.go(rung - 1);
            }
        }
        let rung = self.rung.expect("set above");
        if self.trial_from.is_none()
            && self.since_change >= self.p.revalidate_every
            && rung + 1 < self.ladder.len()
        {
            self.trial_from = Some(rung);
            self.go(rung + 1);
        }
        self.since_change += 1;
        Decision::Serve(self.ladder[self.rung.expect("set above")].0)
    }

    fn observe(&mut self, o: &Outcome) {
        if o.phase == Phase::Serve {
            self.recent.push_back(o.latency_ms);
            while self.recent.len() > self.p.trial_frames.max(1) as usize {
                self.recent.pop_front();
            }
        }
    }
}
