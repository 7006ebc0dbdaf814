//! Sub-network selection: the [`Selector`] trait the replay engine drives, and the selectors.
//! No burn here: selectors see plain numbers (candidate costs, measured latencies, the
//! label-free signals of the runs they asked for).
//!
//! ```
//! use opa_predictors::{CandidateInfo, Context, Decision, Selector, selectors::FixedLargest};
//! let cands = vec![
//!     CandidateInfo { id: "small".into(), macs: 1_000, calibration_top1: 0.85 },
//!     CandidateInfo { id: "large".into(), macs: 9_000, calibration_top1: 0.92 },
//! ];
//! let mut s = FixedLargest::default();
//! let ctx = Context { frame: 0, arrival_s: 0.0, deadline_ms: 20.0, candidates: &cands, serving: None, waited_ms: 0.0 };
//! assert_eq!(s.decide(&ctx), Decision::Serve(1));
//! ```

pub mod condition;
pub mod predict;
pub mod profile;
pub mod selectors;
pub mod stats;

use serde::{Deserialize, Serialize};

/// What a selector knows about a deployment candidate before the run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CandidateInfo {
    /// Architecture id.
    pub id: String,
    /// Multiply-adds per image.
    pub macs: u64,
    /// Clean top-1 (0..=1) on the calibration half.
    pub calibration_top1: f64,
}

/// The state of the stream when a decision is asked for.
#[derive(Clone, Copy, Debug)]
pub struct Context<'a> {
    /// Index of the frame to serve.
    pub frame: u64,
    /// Its arrival time, seconds from the stream start.
    pub arrival_s: f64,
    /// The end-to-end deadline, ms.
    pub deadline_ms: f64,
    /// The candidates, indexed as in decisions.
    pub candidates: &'a [CandidateInfo],
    /// The candidate that served the previous frame.
    pub serving: Option<usize>,
    /// How long the frame has waited for the device when the decision is asked for: from
    /// its arrival to the end of the device's latest run (an earlier frame's, or a probe's on
    /// this one), 0 when the device was idle at arrival; ms. A deployed system knows this
    /// (the frame's age in its queue); at high frame rates it eats into the deadline.
    pub waited_ms: f64,
}

impl Context<'_> {
    /// The frame has waited as long as its deadline: no run can serve it in time any more.
    pub fn past_deadline(&self) -> bool {
        self.waited_ms >= self.deadline_ms
    }
}

/// What the selector wants done with the current frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Serve the frame with this candidate.
    Serve(usize),
    /// First run this candidate on the frame as a probe (its time is charged to the
    /// timeline, its result is not served), report the outcome, then ask again.
    Probe(usize),
    /// Run this candidate on the frame with the answer of the frame's latest run in hand
    /// (an anytime cascade with a deadline timer): if it finishes within the deadline its
    /// answer serves the frame; if not, the run is reported as a probe and the answer in
    /// hand serves at the deadline (or when its own run finished, if that was later). The
    /// late run still occupies the device to its end. With no run on the frame yet, or when
    /// the candidate already ran on it, the same as [`Decision::Serve`].
    Escalate(usize),
    /// Drop the frame: run nothing more on it and serve nothing (it counts as a frame
    /// without an answer, so as missed). For a frame that can no longer be served within
    /// its deadline, whose runs would only delay the frames queued after it (a deployed
    /// system drops it from its queue). Runs already made on it stay, as probes.
    Skip,
}

/// Whether a run served the frame or probed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// The run whose answer was served.
    Serve,
    /// A probe or search run.
    Probe,
    /// A frame dropped ([`Decision::Skip`]): nothing ran for it and nothing served (a row
    /// of its own in the samples; never an [`Outcome`]'s).
    Skip,
}

impl Phase {
    /// Every phase, in the order of its name in `samples.parquet`.
    pub const ALL: [Phase; 3] = [Phase::Serve, Phase::Probe, Phase::Skip];

    /// Its name in `samples.parquet` and `events.jsonl` (`serve`, `probe`, `skip`).
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Serve => "serve",
            Phase::Probe => "probe",
            Phase::Skip => "skip",
        }
    }

    /// The phase named `name`, if any.
    pub fn parse(name: &str) -> Option<Phase> {
        Phase::ALL.into_iter().find(|p| p.as_str() == name)
    }
}

/// What a selector is told after each run. Labels are never included: selectors must work
/// from what a deployed system can see.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Outcome {
    /// Frame index.
    pub frame: u64,
    /// Candidate that ran.
    pub candidate: usize,
    /// Serve or probe.
    pub phase: Phase,
    /// Measured compute time of the run, ms.
    pub compute_ms: f64,
    /// For a served frame, arrival to result (queueing included), ms; for a probe, the same
    /// measured to the probe's end.
    pub latency_ms: f64,
    /// Highest softmax probability.
    pub confidence: f32,
    /// Softmax entropy, nats.
    pub entropy: f32,
    /// Top-1 minus top-2 probability.
    pub margin: f32,
    /// The class it answered (an answer, not a label: a deployed system sees it).
    pub predicted: u16,
}

/// A sub-network selector. One required method; `observe` is optional.
pub trait Selector {
    /// Name in tables and plots.
    fn name(&self) -> &str;

    /// Chooses what to do with the current frame.
    fn decide(&mut self, ctx: &Context) -> Decision;

    /// Learns what happened on the last run (serve or probe).
    fn observe(&mut self, _outcome: &Outcome) {}
}
