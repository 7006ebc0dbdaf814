//! OPA in probing rounds (`evidence_frames = 0`, the paper's scheme): the probe runs on
//! `probe_frames` frames every `reprobe_every` frames, and early when the serving
//! candidate's latency or confidence drifts past a threshold; the predictor reads the round's
//! mean signals and predicts every candidate's top-1. Between rounds OPA re-plans every
//! `replan_every` served frames with the latest load estimate, without probing. On a probe
//! frame it serves the probe's own answer when running the serving candidate in the time
//! left is predicted to get fewer frames right.

use super::{Opa, ln_ms, most_valued};
use crate::predict::Prediction;
use crate::profile::{LatencyStats, Signals, probe_bin, z_score};
use crate::selectors::best_feasible;
use crate::{Context, Decision, Outcome, Phase};
use std::collections::VecDeque;

/// Smoothing of the confidence drift detector's moving average.
const EMA: f64 = 0.15;
/// Served compute times whose median the latency drift detector compares with the predicted
/// median (a median, because contention makes latency heavy-tailed).
const LAT_WINDOW: usize = 9;
/// Served frames after a switch that set the confidence reference.
const SETTLE: u32 = 5;

/// The state of OPA in rounds.
#[derive(Default)]
pub(super) struct Rounds {
    /// The probe's mean signals over the latest round (its latency is the probe's own mean,
    /// which the plans read only with `load_window = 0`).
    pub(super) content: Option<Signals>,
    /// The predictor's output at the latest round.
    round_preds: Vec<Prediction>,
    /// Served frames since the last plan.
    since_plan: u32,
    /// Probe runs left in the current round.
    probing_left: u32,
    /// The sum of the current round's probe signals, and their number.
    sum: Signals,
    runs: u32,
    /// The frame the current round started on.
    round_start: u64,
    /// Predicted median latency of the serving candidate.
    predicted_ms: f64,
    /// The serving candidate's latest compute times, ms.
    recent_ms: VecDeque<f64>,
    /// The serving candidate's confidence: its reference after a switch (mean of the first
    /// [`SETTLE`] served frames), their sum and number, and its moving average since.
    conf_ref: Option<f64>,
    conf_sum: f64,
    conf_n: u32,
    conf_ema: f64,
}

impl Opa {
    /// Probe on a round's frames; otherwise serve the planned candidate (or the probe's own
    /// answer on a probe frame, when that is expected to get more frames right).
    pub(super) fn decide_rounds(&mut self, ctx: &Context) -> Decision {
        if self.serving.is_none() {
            let budget = self.p.margin * ctx.deadline_ms;
            let pick = best_feasible(self.preds.iter().map(|p| (p.top1, p.p50_ms)), budget);
            self.rounds.predicted_ms = self.preds[pick].p50_ms;
            self.serving = Some(pick);
            self.start_round(ctx.frame);
        } else if self.rounds.probing_left == 0
            && ctx.frame >= self.rounds.round_start + self.p.reprobe_every as u64
        {
            self.start_round(ctx.frame);
        }
        if self.rounds.probing_left > 0 && self.probed_frame != Some(ctx.frame) {
            self.probed_frame = Some(ctx.frame);
            return Decision::Probe(self.probe);
        }
        let serving = self.serving.expect("set above");
        if self.probed_frame == Some(ctx.frame) && serving != self.probe {
            // Expected frames right: the probe's answer (in time or not, already known) or
            // the serving candidate's in the time the probe left.
            let (probe, cand) = (&self.preds[self.probe], &self.preds[serving]);
            let probe_value = if self.probe_done_ms <= ctx.deadline_ms {
                probe.top1
            } else {
                0.0
            };
            let left_ms = ctx.deadline_ms - self.probe_done_ms;
            let z = z_score(left_ms, &cand.latency());
            let chance = self.chances(serving, z, self.load_state(), true)[self.cold(serving)];
            if probe_value >= cand.top1 * chance {
                return Decision::Serve(self.probe);
            }
        }
        Decision::Serve(serving)
    }

    /// Probe runs add to the round's signals; served runs feed the drift detectors, which
    /// start a round early, and the periodic re-plans.
    pub(super) fn observe_rounds(&mut self, o: &Outcome) {
        let r = &mut self.rounds;
        match o.phase {
            Phase::Probe => {
                self.probe_done_ms = o.latency_ms;
                r.sum.confidence += o.confidence as f64;
                r.sum.entropy += o.entropy as f64;
                r.sum.margin += o.margin as f64;
                r.sum.latency_ms += o.compute_ms;
                r.sum.bins[probe_bin(o.confidence as f64)] += 1.0;
                r.runs += 1;
                r.probing_left = r.probing_left.saturating_sub(1);
                if r.probing_left == 0 {
                    self.round_done();
                }
            }
            Phase::Serve => {
                r.recent_ms.push_back(o.compute_ms);
                if r.recent_ms.len() > LAT_WINDOW {
                    r.recent_ms.pop_front();
                }
                let conf = o.confidence as f64;
                match r.conf_ref {
                    None => {
                        r.conf_sum += conf;
                        r.conf_n += 1;
                        if r.conf_n >= SETTLE {
                            let m = r.conf_sum / r.conf_n as f64;
                            r.conf_ref = Some(m);
                            r.conf_ema = m;
                        }
                    }
                    Some(_) => r.conf_ema += EMA * (conf - r.conf_ema),
                }
                if r.probing_left > 0 {
                    return;
                }
                if o.frame >= r.round_start + self.p.min_gap as u64 {
                    let lat_off = r.recent_ms.len() == LAT_WINDOW && {
                        let mut v: Vec<f64> = r.recent_ms.iter().copied().collect();
                        v.sort_by(f64::total_cmp);
                        (v[LAT_WINDOW / 2] / r.predicted_ms.max(1e-9) - 1.0).abs()
                            > self.p.latency_drift
                    };
                    let conf_off = r
                        .conf_ref
                        .is_some_and(|m| (r.conf_ema - m).abs() > self.p.confidence_drift);
                    if lat_off || conf_off {
                        self.start_round(o.frame + 1);
                        return;
                    }
                }
                if self.p.replan_every > 0 && self.p.load_window > 0 {
                    r.since_plan += 1;
                    if r.since_plan >= self.p.replan_every {
                        self.plan(false);
                    }
                }
            }
            // (Never an outcome's: nothing runs on a skipped frame.)
            Phase::Skip => {}
        }
    }

    fn start_round(&mut self, frame: u64) {
        let r = &mut self.rounds;
        r.probing_left = self.p.probe_frames.max(1);
        r.sum = Signals::default();
        r.runs = 0;
        r.round_start = frame;
    }

    /// A probing round ended: its content signals are the new basis of the plans.
    fn round_done(&mut self) {
        let r = &mut self.rounds;
        let n = r.runs.max(1) as f64;
        r.content = Some(Signals {
            confidence: r.sum.confidence / n,
            entropy: r.sum.entropy / n,
            margin: r.sum.margin / n,
            latency_ms: r.sum.latency_ms / n,
            bins: r.sum.bins.map(|k| k / n),
        });
        self.plan(true);
    }

    /// Predicts every candidate from the latest round's content signals and the device's
    /// current load, and picks what to serve. `round`: right after a probing round (the
    /// drift references restart even without a switch).
    fn plan(&mut self, round: bool) {
        let Some(mut s) = self.rounds.content else {
            return;
        };
        let state = self.load_state();
        if round || self.rounds.round_preds.is_empty() {
            // Content changes only at rounds: the predictor runs once per round, and re-plans
            // in between take its accuracies with the latest latencies.
            if let Some(g) = state {
                s.latency_ms = self.load.latency(self.probe, g).mean_ms;
            }
            self.rounds.round_preds = self.predictor.predict(&s, None);
        }
        let mut preds = self.rounds.round_preds.clone();
        if let Some(g) = state {
            for (c, p) in preds.iter_mut().enumerate() {
                let l = self.load.latency(c, g);
                (p.latency_ms, p.p50_ms, p.p95_ms) = (l.mean_ms, l.p50_ms, l.p95_ms);
            }
        }
        let budget = self.p.margin * self.deadline_ms;
        let ln_budget = ln_ms(budget);
        // (Read only without a load estimate: the predictor's latencies.)
        let latencies: Vec<LatencyStats> = if state.is_none() {
            preds.iter().map(|p| p.latency()).collect()
        } else {
            Vec::new()
        };
        let value = |c: usize| {
            let z = self.z_within(c, budget, ln_budget, state, &latencies);
            preds[c].top1 * self.chances(c, z, state, false)[self.cold(c)]
        };
        let (best, best_value) = most_valued(preds.len(), value);
        let pick = match self.serving {
            Some(cur) if best_value < value(cur) + self.p.min_gain => cur,
            _ => best,
        };
        let r = &mut self.rounds;
        r.predicted_ms = preds[pick].latency().p50_ms;
        r.since_plan = 0;
        if round || self.serving != Some(pick) {
            r.conf_ref = None;
            r.conf_sum = 0.0;
            r.conf_n = 0;
            r.recent_ms.clear();
        }
        self.preds = preds;
        self.serving = Some(pick);
    }
}
