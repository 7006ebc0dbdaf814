//! `dynamic-ofa` (Dynamic-OFA, Lou et al. 2021): a ladder of Pareto-optimal candidates from
//! the idle, clean profile. Steps down a rung when the mean of the last `window` served
//! latencies exceeds the deadline, up when that mean leaves slack (below `slack × deadline`,
//! and the next rung, scaled by the current slowdown, still fits). Content-blind.

use crate::profile::Profile;
use crate::{Context, Decision, Outcome, Phase, Selector};
use std::collections::VecDeque;

crate::selector_params! {
    /// `dynamic-ofa`'s parameters.
    pub struct DynamicOfaParams {
        /// Served latencies in the rolling mean.
        window: u32 = 20, "window", 1..=1_000_000;
        /// Step up only while the rolling mean is below this share of the deadline.
        slack: f64 = 0.6, "slack", 0.05..=1.0;
        /// Share of the deadline the first rung's idle latency may use.
        margin: f64 = 0.8, "margin", 0.05..=1.0;
    }
}

/// The Dynamic-OFA selector.
pub struct DynamicOfa {
    p: DynamicOfaParams,
    /// Candidate indices, fastest first, and their idle latencies.
    ladder: Vec<(usize, f64)>,
    rung: Option<usize>,
    recent: VecDeque<f64>,
}

impl DynamicOfa {
    /// A ladder over `profile`'s idle, clean Pareto front.
    pub fn new(p: DynamicOfaParams, profile: &Profile) -> Self {
        DynamicOfa {
            ladder: profile
                .idle_ladder()
                .into_iter()
                .map(|c| (c, profile.latency[c][0].mean_ms))
                .collect(),
            p,
            rung: None,
            recent: VecDeque::new(),
        }
    }
}

/// Highest rung whose idle latency fits `budget_ms` (the lowest rung when none does).
pub(crate) fn highest_fitting(ladder: &[(usize, f64)], budget_ms: f64) -> usize {
    ladder
        .iter()
        .rposition(|&(_, l)| l <= budget_ms)
        .unwrap_or(0)
}

impl Selector for DynamicOfa {
    fn name(&self) -> &str {
        "dynamic-ofa"
    }

    fn decide(&mut self, ctx: &Context) -> Decision {
        let rung = *self
            .rung
            .get_or_insert_with(|| highest_fitting(&self.ladder, self.p.margin * ctx.deadline_ms));
        if self.recent.len() >= self.p.window.max(1) as usize {
            let mean = self.recent.iter().sum::<f64>() / self.recent.len() as f64;
            let slowdown = mean / self.ladder[rung].1.max(1e-9);
            let next = if mean > ctx.deadline_ms && rung > 0 {
                rung - 1
            } else if mean < self.p.slack * ctx.deadline_ms
                && rung + 1 < self.ladder.len()
                && self.ladder[rung + 1].1 * slowdown <= self.p.margin * ctx.deadline_ms
            {
                rung + 1
            } else {
                rung
            };
            if next != rung {
                self.rung = Some(next);
                self.recent.clear();
            }
        }
        Decision::Serve(self.ladder[self.rung.expect("set above")].0)
    }

    fn observe(&mut self, o: &Outcome) {
        if o.phase == Phase::Serve {
            self.recent.push_back(o.latency_ms);
            while self.recent.len() > self.p.window.max(1) as usize {
                self.recent.pop_front();
            }
        }
    }
}
