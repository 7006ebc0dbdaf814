//! `opa`: One-Predict-All. Runs one shallow probe sub-network on `probe_frames` current
//! frames, predicts every candidate's top-1 and latency from what the probe showed (no
//! labels), and serves the candidate with the most frames predicted correct within
//! `margin × deadline`: predicted top-1 × the predicted chance of finishing in time (a
//! log-normal latency from the predicted median and 95th percentile, so contention tails
//! count). Re-probes every `reprobe_every` frames, and early when the serving
//! candidate's latency or confidence drifts past a threshold.
//!
//! On a frame the probe ran on, OPA serves the probe's own answer (already paid for, known to
//! be in time) when running the serving candidate in the time left is predicted to get fewer
//! frames right; otherwise it serves the serving candidate after the probe.
//!
//! The probe's latency signal is the device's current slowdown: its few timed runs are
//! pooled with the most recent served runs (each run's compute time over its own
//! candidate's idle mean), so one unlucky probe run under contention does not decide alone.

use super::best_feasible;
use crate::predict::Prediction;
use crate::predict::Predictor;
use crate::profile::within;
use crate::profile::{Profile, Signals};
use crate::{Context, Decision, Outcome, Phase, Selector};
use serde::{Deserialize, Serialize};

/// `opa`'s parameters (scenario keys in kebab-case).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OpaParams {
    /// Frames the probe runs on per probing round.
    pub probe_frames: u32,
    /// Frames between periodic probing rounds.
    pub reprobe_every: u32,
    /// Share of the deadline the predicted latency distribution is held against (the rest
    /// is left for the probe's own run and queueing).
    pub margin: f64,
    /// Re-probe early when the serving candidate's measured latency (moving average) is off
    /// its prediction by more than this share (0.5 = 50 %).
    pub latency_drift: f64,
    /// Re-probe early when the serving candidate's mean confidence moves by more than this
    /// from its value after the switch.
    pub confidence_drift: f64,
    /// Fewest frames between two probing rounds.
    pub min_gap: u32,
    /// Most recent runs (probe and served) whose slowdown over idle is pooled into the
    /// probe's latency signal; 0 = the probe's own runs only.
    pub slowdown_window: u32,
    /// Switch away from the serving candidate only when another is predicted to get at
    /// least this share more frames right within the deadline (0.02 = 2 points): predictions
    /// err by a point or two, and chasing the noisy maximum serves worse candidates.
    pub min_gain: f64,
}

impl Default for OpaParams {
    fn default() -> Self {
        OpaParams {
            probe_frames: 3,
            reprobe_every: 50,
            margin: 0.9,
            latency_drift: 0.5,
            confidence_drift: 0.1,
            min_gap: 10,
            slowdown_window: 12,
            min_gain: 0.02,
        }
    }
}

/// Smoothing of the confidence drift detector's moving average.
const EMA: f64 = 0.15;
/// Served compute times whose median the latency drift detector compares with the predicted
/// median (a median, because contention makes latency heavy-tailed).
const LAT_WINDOW: usize = 9;
/// Served frames after a switch that set the confidence reference.
const SETTLE: u32 = 5;

/// The OPA selector.
pub struct Opa {
    name: String,
    p: OpaParams,
    predictor: Box<dyn Predictor>,
    probe: usize,
    /// Per candidate: idle mean latency (the reference of the slowdown).
    idle_mean: Vec<f64>,
    /// Slowdown over idle of the most recent runs.
    slowdowns: std::collections::VecDeque<f64>,
    /// The latest predictions for every candidate; before the first round, the clean top-1
    /// and idle latency, which make the first choice.
    preds: Vec<Prediction>,
    /// Arrival to the end of this frame's probe run, ms.
    probe_done_ms: f64,
    serving: Option<usize>,
    probing_left: u32,
    probed_frame: Option<u64>,
    acc: Signals,
    acc_n: u32,
    round_start: u64,
    deadline_ms: f64,
    /// Predicted median latency of the serving candidate.
    predicted_ms: f64,
    recent_ms: std::collections::VecDeque<f64>,
    conf_ref: Option<f64>,
    conf_sum: f64,
    conf_n: u32,
    conf_ema: f64,
}

impl Opa {
    /// OPA over `profile`'s candidates with a fitted `predictor`; the probe is the profile's.
    pub fn new(name: &str, p: OpaParams, profile: &Profile, predictor: Box<dyn Predictor>) -> Self {
        let clean = profile.content_index("clean").unwrap_or(0);
        Opa {
            name: name.into(),
            probe: profile.probe,
            idle_mean: (0..profile.candidates.len())
                .map(|c| profile.latency[c][0].mean_ms.max(1e-9))
                .collect(),
            slowdowns: std::collections::VecDeque::new(),
            preds: (0..profile.candidates.len())
                .map(|c| {
                    let l = profile.latency[c][0];
                    Prediction {
                        top1: profile.content[c][clean].top1,
                        latency_ms: l.mean_ms,
                        p50_ms: l.p50_ms,
                        p95_ms: l.p95_ms,
                    }
                })
                .collect(),
            probe_done_ms: 0.0,
            p,
            predictor,
            serving: None,
            probing_left: 0,
            probed_frame: None,
            acc: Signals::default(),
            acc_n: 0,
            round_start: 0,
            deadline_ms: 0.0,
            predicted_ms: 0.0,
            recent_ms: std::collections::VecDeque::new(),
            conf_ref: None,
            conf_sum: 0.0,
            conf_n: 0,
            conf_ema: 0.0,
        }
    }

    fn start_round(&mut self, frame: u64) {
        self.probing_left = self.p.probe_frames.max(1);
        self.acc = Signals::default();
        self.acc_n = 0;
        self.round_start = frame;
    }

    fn choose(&mut self) {
        let n = self.acc_n.max(1) as f64;
        let latency_ms = if self.p.slowdown_window == 0 || self.slowdowns.is_empty() {
            self.acc.latency_ms / n
        } else {
            let mean = self.slowdowns.iter().sum::<f64>() / self.slowdowns.len() as f64;
            self.idle_mean[self.probe] * mean
        };
        let s = Signals {
            confidence: self.acc.confidence / n,
            entropy: self.acc.entropy / n,
            margin: self.acc.margin / n,
            latency_ms,
        };
        let preds = self.predictor.predict(&s, None);
        let budget = self.p.margin * self.deadline_ms;
        let value = |c: usize| preds[c].top1 * within(budget, &preds[c].latency());
        let (best, best_value) =
            (0..preds.len())
                .map(|c| (c, value(c)))
                .fold(
                    (0, f64::MIN),
                    |b, (c, v)| if v > b.1 + 1e-12 { (c, v) } else { b },
                );
        let pick = match self.serving {
            Some(cur) if best_value < value(cur) + self.p.min_gain => cur,
            _ => best,
        };
        self.predicted_ms = preds[pick].latency().p50_ms;
        self.preds = preds;
        // The drift references restart after every round, switch or not.
        self.conf_ref = None;
        self.conf_sum = 0.0;
        self.conf_n = 0;
        self.recent_ms.clear();
        self.serving = Some(pick);
    }
}

impl Selector for Opa {
    fn name(&self) -> &str {
        &self.name
    }

    fn decide(&mut self, ctx: &Context) -> Decision {
        self.deadline_ms = ctx.deadline_ms;
        if self.serving.is_none() {
            let budget = self.p.margin * ctx.deadline_ms;
            let pick = best_feasible(self.preds.iter().map(|p| (p.top1, p.p50_ms)), budget);
            self.predicted_ms = self.preds[pick].p50_ms;
            self.serving = Some(pick);
            self.start_round(ctx.frame);
        } else if self.probing_left == 0
            && ctx.frame >= self.round_start + self.p.reprobe_every as u64
        {
            self.start_round(ctx.frame);
        }
        if self.probing_left > 0 && self.probed_frame != Some(ctx.frame) {
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
            if probe_value >= cand.top1 * within(left_ms, &cand.latency()) {
                return Decision::Serve(self.probe);
            }
        }
        Decision::Serve(serving)
    }

    fn observe(&mut self, o: &Outcome) {
        if o.phase == Phase::Serve
            && self.probed_frame == Some(o.frame)
            && o.candidate == self.probe
        {
            // The probe's own run served the frame: already seen as a probe.
            return;
        }
        if let Some(&idle) = self.idle_mean.get(o.candidate) {
            self.slowdowns.push_back(o.compute_ms / idle);
            if self.slowdowns.len() > self.p.slowdown_window.max(1) as usize {
                self.slowdowns.pop_front();
            }
        }
        match o.phase {
            Phase::Probe => {
                self.probe_done_ms = o.latency_ms;
                self.acc.confidence += o.confidence as f64;
                self.acc.entropy += o.entropy as f64;
                self.acc.margin += o.margin as f64;
                self.acc.latency_ms += o.compute_ms;
                self.acc_n += 1;
                self.probing_left = self.probing_left.saturating_sub(1);
                if self.probing_left == 0 {
                    self.choose();
                }
            }
            Phase::Serve => {
                self.recent_ms.push_back(o.compute_ms);
                if self.recent_ms.len() > LAT_WINDOW {
                    self.recent_ms.pop_front();
                }
                let conf = o.confidence as f64;
                match self.conf_ref {
                    None => {
                        self.conf_sum += conf;
                        self.conf_n += 1;
                        if self.conf_n >= SETTLE {
                            let r = self.conf_sum / self.conf_n as f64;
                            self.conf_ref = Some(r);
                            self.conf_ema = r;
                        }
                    }
                    Some(_) => self.conf_ema += EMA * (conf - self.conf_ema),
                }
                if self.probing_left > 0 || o.frame < self.round_start + self.p.min_gap as u64 {
                    return;
                }
                let lat_off = self.recent_ms.len() == LAT_WINDOW && {
                    let mut v: Vec<f64> = self.recent_ms.iter().copied().collect();
                    v.sort_by(f64::total_cmp);
                    (v[LAT_WINDOW / 2] / self.predicted_ms.max(1e-9) - 1.0).abs()
                        > self.p.latency_drift
                };
                let conf_off = self
                    .conf_ref
                    .is_some_and(|r| (self.conf_ema - r).abs() > self.p.confidence_drift);
                if lat_off || conf_off {
                    self.start_round(o.frame + 1);
                }
            }
        }
    }
}
