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
//! - [`load_estimate`] (the device's state from recent runs), [`tails`] (where recent runs fell
//!   in their predicted distributions) and [`chances`] (a run's chance of finishing in time
//!   from both). The method, with the reasons for each rule: `docs/method.md`.

mod chances;
mod load_estimate;
mod params;
mod per_frame;
mod rounds;
mod tails;

pub use params::{GAIN_QUANTILE, OpaParams};

use crate::predict::{Prediction, Predictor};
use crate::profile::Profile;
use crate::{Context, Decision, Outcome, Phase, Selector};
use chances::ln_ms;
use load_estimate::LoadTracker;
use tails::Tails;

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
    /// The latest predictions for every candidate (at first, clean top-1 and idle latency).
    preds: Vec<Prediction>,
    /// Per-frame state (None in rounds), and the rounds' state (unused per frame).
    frame: Option<per_frame::PerFrame>,
    rounds: rounds::Rounds,
    /// Arrival to the end of this frame's probe run, the probe's latest compute time (ms), and
    /// the frame it last ran on (or was sent to).
    probe_done_ms: f64,
    probe_ms: f64,
    probed_frame: Option<u64>,
    serving: Option<usize>,
    deadline_ms: f64,
    /// The candidate of the latest run, and whether the frame being decided waited for the
    /// device before its first run.
    last_run: Option<usize>,
    queued: bool,
}

impl Opa {
    /// OPA over `profile`'s candidates with a fitted `predictor` and the profile's probe; an
    /// error when per-frame mode (`evidence_frames > 0`) finds no per-frame tables.
    pub fn new(
        name: &str,
        p: OpaParams,
        profile: &Profile,
        predictor: Box<dyn Predictor>,
    ) -> Result<Self, String> {
        let frame = (p.evidence_frames > 0).then(|| per_frame::PerFrame::new(&p, profile));
        Ok(Opa {
            name: name.into(),
            probe: profile.probe,
            load: LoadTracker::new(profile, p.idle_stretch),
            tails: Tails::new(p.tail_window as usize),
            preds: Opa::clean_idle(profile),
            frame: frame.transpose()?,
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
