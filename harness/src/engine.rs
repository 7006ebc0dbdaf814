//! The replay engine: frames arrive on a fixed schedule; every run's measured compute time is
//! placed on a virtual timeline (start = max(arrival, previous finish)); probes occupy the
//! same timeline as served runs, so their cost shows up as queueing and missed deadlines.
//! A frame served by a candidate that already ran on it as a probe reuses that run, at no
//! further cost (a deployed system would not run the same network on the same frame twice);
//! its answer is served once the selector has seen every run it asked for on the frame (at
//! the end of the frame's latest run, not earlier). An escalation ([`Decision::Escalate`])
//! runs a candidate with the answer of the frame's latest run in hand: late, it is a probe,
//! and the answer in hand serves at the deadline (a deployed system's timer). A frame the
//! selector drops ([`Decision::Skip`]) gets a row of its own, with no candidate, no run and
//! no answer: it counts as a frame, missed.
//!
//! The engine knows nothing about the network: it drives a [`Target`] (which runs a candidate
//! on a frame and reports what it measured) and a [`Selector`].

use opa_predictors::{CandidateInfo, Context, Decision, Outcome, Phase, Selector};
use opa_reports::{NO_ANSWER, Sample};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// What one run of a candidate on a frame produced.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Inference {
    /// Measured compute time, ms.
    pub compute_ms: f64,
    /// Predicted class.
    pub predicted: u16,
    /// Highest softmax probability.
    pub confidence: f32,
    /// Softmax entropy, nats.
    pub entropy: f32,
    /// Top-1 minus top-2 probability.
    pub margin: f32,
}

/// The system under test: runs candidate `candidate` on frame `frame`.
pub trait Target {
    /// Called with the virtual time the run starts at, so load injection can follow the
    /// trace; returns what was measured.
    fn run(&mut self, candidate: usize, frame: usize, start_s: f64) -> Result<Inference, String>;

    /// The CPU load (share of the cores) the target injects, or draws its outcomes at, at
    /// `t_s` on the timeline; a sample's `cpu_load`. A target without load: 0.
    fn cpu_load_at(&self, _t_s: f64) -> f64 {
        0.0
    }
}

/// A frame as the engine schedules it.
#[derive(Clone, Debug, PartialEq)]
pub struct FrameSlot {
    /// Arrival time, s.
    pub arrival_s: f64,
    /// True class.
    pub label: u16,
    /// Content condition, as text (`clean`, `fog@3`); shared by a segment's frames.
    pub condition: Arc<str>,
}

/// Why a replay stopped.
#[derive(Debug, PartialEq, Eq)]
pub enum EngineError {
    /// The target failed.
    Target(String),
    /// The selector asked for an unknown candidate or kept probing.
    Selector(String),
}

impl std::fmt::Display for EngineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EngineError::Target(e) => write!(f, "target: {e}"),
            EngineError::Selector(e) => write!(f, "selector: {e}"),
        }
    }
}

impl std::error::Error for EngineError {}

/// What a replay produced.
#[derive(Clone, Debug, PartialEq)]
pub struct Replay {
    /// Every run, in timeline order.
    pub rows: Vec<Sample>,
    /// False when `stop` was raised before the last frame.
    pub complete: bool,
}

/// Replays `frames` with `selector` on `target` (its rows named after
/// [`Selector::name`]); `on_row` sees every run as it happens.
/// At most `candidates.len()` probes per frame are allowed. When `stop` becomes true (Ctrl-C)
/// the replay ends after the current frame and reports itself incomplete.
pub fn replay(
    frames: &[FrameSlot],
    candidates: &[CandidateInfo],
    deadline_ms: f64,
    target: &mut dyn Target,
    selector: &mut dyn Selector,
    stop: &AtomicBool,
    on_row: &mut dyn FnMut(&Sample),
) -> Result<Replay, EngineError> {
    let mut r = Replayer::new(selector.name(), deadline_ms);
    let complete = r.advance(
        frames,
        frames.len(),
        candidates,
        target,
        selector,
        stop,
        on_row,
    )?;
    Ok(Replay {
        rows: r.rows,
        complete,
    })
}

/// One selector's replay, resumable: [`Replayer::advance`] plays frames up to a given one and
/// keeps the timeline (when the device is free, what is serving) for the next call. Several
/// selectors can so take turns on the same frames (`opa run` interleaves them in blocks, so
/// slow drifts of the machine reach them all alike); playing the frames in one call or in
/// many gives the same rows.
#[derive(Clone, Debug, PartialEq)]
pub struct Replayer {
    /// The selector's name in the rows.
    pub selector: String,
    /// Deadline, ms.
    pub deadline_ms: f64,
    /// Every run so far, in timeline order.
    pub rows: Vec<Sample>,
    /// The next frame to play.
    pub next: usize,
    free_at_s: f64,
    serving: Option<usize>,
}

impl Replayer {
    /// A replay at frame 0 with an idle device; its rows name the selector `selector`.
    pub fn new(selector: &str, deadline_ms: f64) -> Self {
        Replayer {
            selector: selector.to_string(),
            deadline_ms,
            rows: Vec::new(),
            next: 0,
            free_at_s: 0.0,
            serving: None,
        }
    }

    /// Plays frames `self.next..until` (clamped to `frames.len()`). Returns false when `stop`
    /// was raised before a frame (the replay is then incomplete and stays where it stopped).
    #[allow(clippy::too_many_arguments)]
    pub fn advance(
        &mut self,
        frames: &[FrameSlot],
        until: usize,
        candidates: &[CandidateInfo],
        target: &mut dyn Target,
        selector: &mut dyn Selector,
        stop: &AtomicBool,
        on_row: &mut dyn FnMut(&Sample),
    ) -> Result<bool, EngineError> {
        let deadline_ms = self.deadline_ms;
        let mut p = Parties {
            candidates,
            target,
            selector,
            on_row,
        };
        // Runs on the current frame so far.
        let mut ran: Vec<Ran> = Vec::new();
        let until = until.min(frames.len());
        // Room for three rows a frame (a probe, a late escalation and the answer in hand
        // served: per-frame OPA's most; its frames average about two): the rows of a long
        // replay then never move to a larger buffer (a copy, and the new buffer's pages
        // faulted in again), and room a selector never fills is never touched.
        self.rows.reserve(3 * until.saturating_sub(self.next));
        while self.next < until {
            if stop.load(Ordering::Relaxed) {
                return Ok(false);
            }
            let i = self.next;
            let f = &frames[i];
            let mut probes = 0;
            ran.clear();
            loop {
                let ctx = Context {
                    frame: i as u64,
                    arrival_s: f.arrival_s,
                    deadline_ms,
                    candidates,
                    serving: self.serving,
                    waited_ms: (self.free_at_s - f.arrival_s).max(0.0) * 1000.0,
                };
                let (candidate, phase, escalate) = match p.selector.decide(&ctx) {
                    Decision::Serve(c) => (c, Phase::Serve, false),
                    Decision::Probe(c) => (c, Phase::Probe, false),
                    Decision::Escalate(c) => (c, Phase::Serve, true),
                    Decision::Skip => {
                        self.skip(f, i, &mut p);
                        break;
                    }
                };
                if candidate >= candidates.len() {
                    return Err(EngineError::Selector(format!(
                        "{} chose candidate {candidate} of {}",
                        p.selector.name(),
                        candidates.len()
                    )));
                }
                if phase == Phase::Probe {
                    probes += 1;
                    if probes > candidates.len() {
                        return Err(EngineError::Selector(format!(
                            "{} probed more than {} times on frame {i}",
                            p.selector.name(),
                            candidates.len()
                        )));
                    }
                }
                let reused = (phase == Phase::Serve)
                    .then(|| ran.iter().find(|r| r.0 == candidate).copied())
                    .flatten();
                // An escalation's fallback: the answer of the frame's latest run.
                let in_hand = ran.last().copied().filter(|_| escalate && reused.is_none());
                let (inf, start_s, finish_s) = match reused {
                    Some((_, inf, start_s, finish_s)) => {
                        // Served once the selector has seen the frame's latest run.
                        let decided = ran.last().map_or(finish_s, |r| r.3);
                        (inf, start_s, finish_s.max(decided))
                    }
                    None => {
                        let start_s = f.arrival_s.max(self.free_at_s);
                        let inf = p
                            .target
                            .run(candidate, i, start_s)
                            .map_err(EngineError::Target)?;
                        let finish_s = start_s + inf.compute_ms / 1000.0;
                        self.free_at_s = finish_s;
                        ran.push((candidate, inf, start_s, finish_s));
                        (inf, start_s, finish_s)
                    }
                };
                let late = (finish_s - f.arrival_s) * 1000.0 > deadline_ms + 1e-9;
                match in_hand {
                    Some(fallback) if late => {
                        // The timer fires first: the escalation served nothing.
                        self.record(
                            f,
                            i,
                            Phase::Probe,
                            (candidate, inf, start_s, finish_s),
                            &mut p,
                        );
                        let at = fallback.3.max(f.arrival_s + deadline_ms / 1000.0);
                        self.record(
                            f,
                            i,
                            Phase::Serve,
                            (fallback.0, fallback.1, fallback.2, at),
                            &mut p,
                        );
                        self.serving = Some(fallback.0);
                        break;
                    }
                    _ => self.record(f, i, phase, (candidate, inf, start_s, finish_s), &mut p),
                }
                if phase == Phase::Serve {
                    self.serving = Some(candidate);
                    break;
                }
            }
            self.next += 1;
        }
        Ok(true)
    }
}

/// Those a replay's rows are made with: the candidates (their ids), the target (its load),
/// the selector (told of every run) and the caller's `on_row`.
struct Parties<'a> {
    candidates: &'a [CandidateInfo],
    target: &'a mut dyn Target,
    selector: &'a mut dyn Selector,
    on_row: &'a mut dyn FnMut(&Sample),
}

/// A run on the current frame: candidate, what it produced, start and finish (s).
type Ran = (usize, Inference, f64, f64);

impl Replayer {
    /// Reports one run (or the reuse of one) to the selector and to `on_row`, and keeps its
    /// row. The run's finish: when its answer was served (or, for a probe, when it finished).
    fn record(&mut self, f: &FrameSlot, i: usize, phase: Phase, run: Ran, p: &mut Parties) {
        let (candidate, inf, start_s, finish_s) = run;
        let latency_ms = (finish_s - f.arrival_s) * 1000.0;
        let row = Sample {
            selector: self.selector.clone(),
            deadline_ms: self.deadline_ms,
            frame: i as u64,
            phase,
            candidate: p.candidates[candidate].id.clone(),
            arrival_s: f.arrival_s,
            start_s,
            finish_s,
            compute_ms: inf.compute_ms,
            latency_ms,
            label: f.label,
            predicted: inf.predicted,
            confidence: inf.confidence,
            correct: inf.predicted == f.label,
            deadline_met: phase == Phase::Serve && latency_ms <= self.deadline_ms + 1e-9,
            cpu_load: p.target.cpu_load_at(start_s),
            condition: f.condition.to_string(),
        };
        p.selector.observe(&Outcome {
            frame: i as u64,
            candidate,
            phase,
            compute_ms: inf.compute_ms,
            latency_ms,
            confidence: inf.confidence,
            entropy: inf.entropy,
            margin: inf.margin,
            predicted: inf.predicted,
        });
        (p.on_row)(&row);
        self.rows.push(row);
    }

    /// Keeps the row of frame `i` dropped ([`Decision::Skip`]) and shows it to `on_row`: no
    /// candidate, no answer, no compute; it starts (and ends) when the frame was dropped, at
    /// its arrival or, if later, at the end of the device's latest run.
    fn skip(&mut self, f: &FrameSlot, i: usize, p: &mut Parties) {
        let at_s = f.arrival_s.max(self.free_at_s);
        let row = Sample {
            selector: self.selector.clone(),
            deadline_ms: self.deadline_ms,
            frame: i as u64,
            phase: Phase::Skip,
            candidate: String::new(),
            arrival_s: f.arrival_s,
            start_s: at_s,
            finish_s: at_s,
            compute_ms: 0.0,
            latency_ms: (at_s - f.arrival_s) * 1000.0,
            label: f.label,
            predicted: NO_ANSWER,
            confidence: 0.0,
            correct: false,
            deadline_met: false,
            cpu_load: p.target.cpu_load_at(at_s),
            condition: f.condition.to_string(),
        };
        (p.on_row)(&row);
        self.rows.push(row);
    }
}
