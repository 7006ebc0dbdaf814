//! `oracle`: hindsight reference, not implementable. Knows each frame's true content
//! condition, label, load and arrival, and the measured tables of the profile it is given
//! (live, `opa run` gives it the profile with latency tables timed on the machine during the
//! run, not the calibration's: see the harness's `cmd_run`); serves, per
//! window of `window` frames, the candidate with the most expected frames correct within the
//! deadline, counting the queue its pick would build: each frame of the window waits for the
//! runs before it (the first for what the device still has to finish when the window starts,
//! which the engine tells), each taking the candidate's mean latency at its frame's load.
//! Where frames never queue (a run takes less than the time between frames), that is each
//! frame's chance of finishing within the deadline.
//! Like OPA, it drops a frame that waited as long as its deadline before anything ran on it
//! ([`Decision::Skip`]), and counts such drops in the queue it plans with. Costs nothing to
//! decide; used for regret only.

use crate::profile::{Profile, within};
use crate::{Context, Decision, Selector};

crate::selector_params! {
    /// `oracle`'s parameters.
    pub struct OracleParams {
        /// Frames per decision window.
        window: u32 = 10, "window", 1..=1_000_000;
        /// Plan with the latency tables timed on this machine in the run (live runs; the harness
        /// times them before the clock starts), not the profile's; false = the profile's.
        timed_latency: bool = true, "timed-latency", 0..=1;
    }
}

/// What the oracle knows about a frame.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FrameTruth {
    /// Content condition (index into the profile's contents).
    pub content: usize,
    /// True class.
    pub label: u16,
    /// Injected CPU load when the frame arrives.
    pub load: f64,
    /// Arrival, seconds from the stream start.
    pub arrival_s: f64,
}

/// The hindsight oracle.
pub struct Oracle {
    p: OracleParams,
    profile: std::sync::Arc<Profile>,
    truth: Vec<FrameTruth>,
    window: Option<(u64, usize)>,
}

impl Oracle {
    /// An oracle over the frames `truth` (one per frame of the stream).
    pub fn new(p: OracleParams, profile: std::sync::Arc<Profile>, truth: Vec<FrameTruth>) -> Self {
        Oracle {
            p,
            profile,
            truth,
            window: None,
        }
    }

    /// The pick for window `w` whose first frame waits `waited_ms` for the device.
    fn best(&self, w: u64, deadline_ms: f64, waited_ms: f64) -> usize {
        let len = self.p.window.max(1) as u64;
        let frames = (w * len) as usize..(((w + 1) * len) as usize).min(self.truth.len());
        let p = &self.profile;
        let score = |c: usize| -> f64 {
            // When the device frees (s): after the window's first frame waited, then after
            // each frame's run at the candidate's mean latency.
            let mut free_s = f64::NEG_INFINITY;
            let mut score = 0.0;
            for (i, t) in self.truth[frames.clone()].iter().enumerate() {
                let wait_ms = if i == 0 {
                    waited_ms.max(0.0)
                } else {
                    ((free_s - t.arrival_s) * 1e3).max(0.0)
                };
                if wait_ms >= deadline_ms {
                    // Dropped: no run, no answer.
                    continue;
                }
                let l = p.latency_at(c, t.load);
                free_s = t.arrival_s + (wait_ms + l.mean_ms) / 1e3;
                score += p.class_top1(c, t.content, t.label) * within(deadline_ms - wait_ms, &l);
            }
            score
        };
        (0..p.candidates.len())
            .map(|c| (c, score(c)))
            .fold(
                (0, f64::MIN),
                |b, (c, s)| if s > b.1 + 1e-12 { (c, s) } else { b },
            )
            .0
    }
}

impl Selector for Oracle {
    fn name(&self) -> &str {
        "oracle"
    }

    fn decide(&mut self, ctx: &Context) -> Decision {
        if ctx.past_deadline() {
            return Decision::Skip;
        }
        let w = ctx.frame / self.p.window.max(1) as u64;
        match self.window {
            Some((cw, c)) if cw == w => Decision::Serve(c),
            _ => {
                let c = self.best(w, ctx.deadline_ms, ctx.waited_ms);
                self.window = Some((w, c));
                Decision::Serve(c)
            }
        }
    }
}
