//! The metrics (`docs/method.md`), computed from raw rows, and the run verdict.

use crate::format::Sample;
use opa_predictors::Phase;
pub use opa_predictors::stats::percentile;
use serde::{Deserialize, Serialize};

/// VALID, or INVALID with the reasons.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// `VALID` or `INVALID`.
    pub verdict: String,
    /// Why it is not valid (empty when valid).
    pub reasons: Vec<String>,
}

/// The metrics of one selector at one deadline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SelectorSummary {
    /// Selector name.
    pub selector: String,
    /// Deadline, ms.
    pub deadline_ms: f64,
    /// Frames: served, and dropped unanswered (`skipped`).
    pub frames: usize,
    /// Frames dropped unanswered ([`Decision::Skip`](opa_predictors::Decision::Skip)): each
    /// counts as a frame, not correct and missed.
    #[serde(default)]
    pub skipped: usize,
    /// Correct / frames.
    pub top1: f64,
    /// Correct and within the deadline / frames (the headline).
    pub top1_within_deadline: f64,
    /// Served late or dropped / frames.
    pub deadline_miss_rate: f64,
    /// End-to-end latency percentiles of served frames (a dropped frame has none), ms.
    pub latency_p50_ms: f64,
    /// 90th percentile, ms.
    pub latency_p90_ms: f64,
    /// 95th percentile, ms.
    pub latency_p95_ms: f64,
    /// 99th percentile, ms.
    pub latency_p99_ms: f64,
    /// Probe / search compute time over the timeline (first arrival to last finish); a probe
    /// run whose answer served its frame counts as serving, not as overhead.
    pub decision_overhead: f64,
    /// Probe runs.
    pub probes: usize,
    /// Changes of the serving candidate.
    pub switches: usize,
    /// CPU load requested, averaged over the replay's wall-clock time.
    pub cpu_load_requested: f64,
    /// CPU load the injector achieved.
    pub cpu_load_achieved: f64,
    /// Oracle's top-1 within deadline minus this selector's, at the same deadline (when the
    /// run has an oracle).
    #[serde(default)]
    pub regret: Option<f64>,
    /// Whether the numbers can be trusted.
    pub verdict: Verdict,
}

/// What the summary needs besides the rows.
pub struct SummaryInputs<'a> {
    /// Selector name.
    pub selector: &'a str,
    /// Deadline, ms.
    pub deadline_ms: f64,
    /// A slow-down factor emulated another device.
    pub emulated: bool,
    /// Fewer served frames than this makes the run INVALID.
    pub min_frames: usize,
    /// CPU load requested, averaged over the replay's wall-clock time.
    pub load_requested: f64,
    /// CPU load the injector achieved over the replay.
    pub load_achieved: f64,
    /// The replay ran to the end.
    pub complete: bool,
}

/// Computes the summary of one selector's rows at one deadline.
pub fn summarize(rows: &[Sample], inp: &SummaryInputs) -> SelectorSummary {
    let served: Vec<&Sample> = rows.iter().filter(|r| r.phase == Phase::Serve).collect();
    let skipped = rows.iter().filter(|r| r.phase == Phase::Skip).count();
    let n = served.len() + skipped;
    let nf = n.max(1) as f64;
    let lat: Vec<f64> = served.iter().map(|r| r.latency_ms).collect();
    // A probe run whose answer then served its frame (the engine reuses the run: same
    // frame, candidate and start; served when the frame's latest run finished, or at the
    // deadline when an escalation was late) cost nothing beyond serving; every other probe run
    // is overhead. Start from +0.0: an empty f64 sum is -0.0.
    let served_by_frame: std::collections::HashMap<u64, &Sample> =
        served.iter().map(|s| (s.frame, *s)).collect();
    let served_itself = |p: &Sample| {
        served_by_frame
            .get(&p.frame)
            .is_some_and(|s| (&s.candidate, s.start_s) == (&p.candidate, p.start_s))
    };
    let probe_ms: f64 = rows
        .iter()
        .filter(|r| r.phase == Phase::Probe && !served_itself(r))
        .map(|r| r.compute_ms)
        .fold(0.0, |a, b| a + b);
    let span_s = match (
        rows.iter().map(|r| r.arrival_s).reduce(f64::min),
        rows.iter().map(|r| r.finish_s).reduce(f64::max),
    ) {
        (Some(a), Some(b)) if b > a => b - a,
        _ => 0.0,
    };
    let switches = served
        .windows(2)
        .filter(|w| w[0].candidate != w[1].candidate)
        .count();
    let mut reasons = Vec::new();
    if !inp.complete {
        reasons.push("INCOMPLETE: the run was interrupted".to_string());
    }
    if inp.emulated {
        reasons.push(
            "emulated device: compute times were stretched by a slow-down factor".to_string(),
        );
    }
    if n < inp.min_frames {
        reasons.push(format!(
            "too few frames: {n}, at least {} needed",
            inp.min_frames
        ));
    }
    if inp.load_requested > 0.05 && (inp.load_achieved - inp.load_requested).abs() > 0.15 {
        reasons.push(format!(
            "load injector missed its target: requested {:.2} on average, achieved {:.2}",
            inp.load_requested, inp.load_achieved
        ));
    }
    SelectorSummary {
        selector: inp.selector.to_string(),
        deadline_ms: inp.deadline_ms,
        frames: n,
        skipped,
        top1: served.iter().filter(|r| r.correct).count() as f64 / nf,
        top1_within_deadline: served
            .iter()
            .filter(|r| r.correct && r.deadline_met)
            .count() as f64
            / nf,
        deadline_miss_rate: (served.iter().filter(|r| !r.deadline_met).count() + skipped) as f64
            / nf,
        latency_p50_ms: percentile(&lat, 50.0),
        latency_p90_ms: percentile(&lat, 90.0),
        latency_p95_ms: percentile(&lat, 95.0),
        latency_p99_ms: percentile(&lat, 99.0),
        decision_overhead: if span_s > 0.0 {
            probe_ms / 1000.0 / span_s
        } else {
            0.0
        },
        probes: rows.iter().filter(|r| r.phase == Phase::Probe).count(),
        switches,
        cpu_load_requested: inp.load_requested,
        cpu_load_achieved: inp.load_achieved,
        regret: None,
        verdict: Verdict {
            verdict: if reasons.is_empty() {
                "VALID"
            } else {
                "INVALID"
            }
            .to_string(),
            reasons,
        },
    }
}

/// Fills every summary's regret: the top-1 within deadline of the selector named `oracle` at
/// the same deadline minus its own. Summaries at deadlines without an oracle keep `None`.
pub fn fill_regret(summaries: &mut [SelectorSummary], oracle: &str) {
    let best: Vec<(f64, f64)> = summaries
        .iter()
        .filter(|s| s.selector == oracle)
        .map(|s| (s.deadline_ms, s.top1_within_deadline))
        .collect();
    for s in summaries.iter_mut() {
        s.regret = best
            .iter()
            .find(|(d, _)| *d == s.deadline_ms)
            .map(|(_, b)| b - s.top1_within_deadline);
    }
}
