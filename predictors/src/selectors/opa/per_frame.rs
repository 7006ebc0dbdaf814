//! Per-frame OPA (`evidence_frames > 0`, the default): the probe reads each scene once, and
//! every frame is served on the candidates' top-1 in the bin of the probe's confidence.
//!
//! A video shows one object for several frames, and how sure the probe is of it says how
//! much a larger candidate would add on exactly those frames. So the probe runs on a scene's
//! first frame, again when a served answer changes class (a new object; at most once per
//! `min_gap` frames) and at the latest every `evidence_frames` frames. Each frame is served
//! by the candidate with the highest top-1 in the probe's confidence bin times its chance of
//! finishing in time:
//!
//! - on the frame the probe ran on, the same-image table (the probe's confidence on that very
//!   image); the probe's answer is in hand and competes with the others in the time left;
//! - on the scene's later frames, the other-view table (the probe's confidence on another
//!   frame of the scene), with a larger candidate's gain over the probe taken as its lower
//!   quartile across content conditions (`robust_gain`);
//! - when the answer changed but `min_gap` holds the probe back, every candidate's top-1
//!   over all calibration images (the reading is of the previous object).
//!
//! Where the probe is the pick it runs as a probe first (`cascade`), and with its answer in
//! hand a larger candidate runs as an escalation (`fallback`): if that is late, the probe's
//! answer serves at the deadline. Every table pools the profile's content conditions
//! weighed by the belief the probe's readings give ([`ContentBelief`]).

use super::{GAIN_QUANTILE, Opa, OpaParams, ln_ms, most_valued};
use crate::condition::{BinRows, ContentBelief, UnreadRows, total_variation};
use crate::profile::{LatencyStats, PROBE_BINS, Profile, probe_bin};
use crate::{Context, Decision, Outcome, Phase};

/// How far ([`total_variation`]) the belief in the content conditions must move from the one
/// the tables were pooled with before they are pooled again: readings of one bin each move a
/// diffuse belief a lot, and re-pooling on every one costs time without changing decisions.
const REWEIGH: f64 = 0.3;

/// What the probe showed on one frame.
#[derive(Clone, Copy, Debug)]
struct Reading {
    /// Bin of its confidence.
    bin: usize,
    /// Frame it ran on.
    frame: u64,
}

/// Which of the per-frame tables a frame is served on.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Row {
    /// Every candidate's top-1 over all calibration images (a new object not read yet).
    Unread,
    /// By the probe's confidence on the same image (the frame the probe ran on).
    SameImage(usize),
    /// By the probe's confidence on another frame of the scene.
    OtherView(usize),
}

/// Per-frame OPA's state.
pub(super) struct PerFrame {
    /// Every candidate's top-1 on a frame per bin of the probe's confidence on it, per content
    /// condition (the profile's per-frame tables).
    same_rows: BinRows,
    /// The same given the probe's confidence on another frame of the scene; None without the
    /// profile's other-view tables (or with `view_table` off): the same-image table serves
    /// every frame.
    view_rows: Option<BinRows>,
    /// Every candidate's top-1 over each condition's calibration images.
    unread_rows: UnreadRows,
    /// With `content_window`: the belief in the content conditions and the frame of the
    /// latest reading counted in it.
    belief: Option<ContentBelief>,
    counted: Option<u64>,
    /// The weights per condition the tables are pooled with (all 1 = every calibration
    /// image alike), their shares of the frames, and the pooling's generation.
    weights: Vec<f64>,
    shares: Vec<f64>,
    pooled_gen: u64,
    /// The same-image and other-view tables pooled with `weights`, per bin (`[bin][candidate]`;
    /// a bin is pooled when first needed in a generation: the generation per bin).
    same_table: Vec<Vec<f64>>,
    same_gen: Vec<u64>,
    view_table: Vec<Vec<f64>>,
    view_gen: Vec<u64>,
    /// Every candidate's top-1 over all calibration images, pooled with `weights`.
    unread: Vec<f64>,
    /// Per candidate: at least the probe's multiply-adds (no faster than the probe).
    not_smaller: Vec<bool>,
    /// The latest probe reading of the scene.
    reading: Option<Reading>,
    /// A served answer changed since the reading (a new scene).
    scene_changed: bool,
    /// The class served on the previous frame.
    pub(super) last_answer: Option<u16>,
    /// The frame of the latest probe run.
    last_probe: Option<u64>,
}

impl PerFrame {
    pub(super) fn new(p: &OpaParams, profile: &Profile) -> Result<Self, String> {
        let same_rows = BinRows::same_image(profile).ok_or(
            "per-frame OPA (evidence-frames > 0) needs a profile with per-frame tables \
             (probe_bin_top1): calibrate again with this version, or set evidence-frames = 0",
        )?;
        let view_rows = if p.view_table {
            BinRows::other_view(profile)
        } else {
            None
        };
        let belief = if p.content_window > 0 {
            ContentBelief::new(profile, p.content_window)
        } else {
            None
        };
        let weights = vec![1.0; profile.contents.len()];
        let shares = belief
            .as_ref()
            .map_or_else(Vec::new, |b| b.shares(&weights));
        let unread_rows = UnreadRows::new(profile);
        let unread = unread_rows.row(&weights);
        let n = profile.candidates.len();
        let probe_macs = profile.candidates[profile.probe].macs;
        Ok(PerFrame {
            same_rows,
            view_rows,
            unread_rows,
            belief,
            counted: None,
            weights,
            shares,
            pooled_gen: 0,
            same_table: vec![vec![0.0; n]; PROBE_BINS],
            same_gen: vec![u64::MAX; PROBE_BINS],
            view_table: vec![vec![0.0; n]; PROBE_BINS],
            view_gen: vec![u64::MAX; PROBE_BINS],
            unread,
            not_smaller: profile
                .candidates
                .iter()
                .map(|c| c.macs >= probe_macs)
                .collect(),
            reading: None,
            scene_changed: false,
            last_answer: None,
            last_probe: None,
        })
    }

    /// Pools the table row `row` with the current weights, unless it already is in this
    /// pooling generation.
    fn pool(&mut self, row: Row, robust_gain: bool) {
        let g = self.pooled_gen;
        match row {
            Row::Unread => {}
            Row::SameImage(bin) => {
                if self.same_gen[bin] != g {
                    self.same_table[bin] = self.same_rows.row(bin, &self.weights);
                    self.same_gen[bin] = g;
                }
            }
            Row::OtherView(bin) => {
                if self.view_gen[bin] != g {
                    let rows = self.view_rows.as_mut().expect("other-view rows");
                    self.view_table[bin] = if robust_gain {
                        rows.robust_row(bin, &self.weights, GAIN_QUANTILE)
                    } else {
                        rows.row(bin, &self.weights)
                    };
                    self.view_gen[bin] = g;
                }
            }
        }
    }

    /// The table row `row` as [`PerFrame::pool`] left it.
    fn row(&self, row: Row) -> &[f64] {
        match row {
            Row::Unread => &self.unread,
            Row::SameImage(bin) => &self.same_table[bin],
            Row::OtherView(bin) => &self.view_table[bin],
        }
    }

    /// Counts a probe reading of bin `bin` on frame `frame` in the belief in the content
    /// conditions (at most one per `min_gap` frames: the readings of one scene say the same),
    /// after re-pooling the tables with the belief so far when it moved by more than
    /// [`REWEIGH`] (the scene a reading is of is served on the readings before it: its own is
    /// the row's bin).
    fn count_reading(&mut self, bin: usize, frame: u64, min_gap: u32) {
        let Some(belief) = self.belief.as_mut() else {
            return;
        };
        let gap = u64::from(min_gap.max(1));
        if self.counted.is_some_and(|f| frame < f + gap) {
            return;
        }
        self.counted = Some(frame);
        let weights = belief.weights();
        let shares = belief.shares(&weights);
        belief.add(bin);
        if total_variation(&shares, &self.shares) > REWEIGH {
            self.unread = self.unread_rows.row(&weights);
            self.weights = weights;
            self.shares = shares;
            self.pooled_gen += 1;
        }
    }
}

impl Opa {
    /// Probe when the scene's reading is missing, stale or outdated by a changed answer; then
    /// serve the candidate with the most expected frames right within the deadline given the
    /// reading (the probe's own answer on the frame it ran on).
    pub(super) fn decide_per_frame(&mut self, ctx: &Context) -> Decision {
        let f = self.frame.as_ref().expect("per-frame mode");
        // A changed answer sends the probe at most once per `min_gap` frames (objects that
        // change every frame, or answers that flicker, must not make OPA probe every frame).
        let gap_over = f
            .last_probe
            .is_none_or(|l| ctx.frame >= l + self.p.min_gap as u64);
        let stale = f.reading.is_none_or(|r| {
            (f.scene_changed && gap_over) || ctx.frame >= r.frame + self.p.evidence_frames as u64
        });
        // A new object the probe may not read yet: the reading is of the previous one.
        let unread = f.scene_changed && !gap_over;
        let bin = f.reading.map_or(PROBE_BINS - 1, |r| r.bin);
        if stale && self.probed_frame != Some(ctx.frame) {
            return self.probe_now(ctx.frame);
        }
        let probed_now = self.probed_frame == Some(ctx.frame);
        // A late escalation keeps the device busy past the deadline: free only while no frame
        // waits behind it. Where this frame waited, frames are queuing, and a larger
        // candidate after the probe is weighed as without the fallback.
        let fallback = self.p.fallback && !self.queued;
        let budget = if probed_now && fallback {
            // A late larger candidate costs nothing on this frame: the probe's answer serves
            // at the deadline.
            ctx.deadline_ms - self.probe_done_ms
        } else if probed_now {
            // The same share of the deadline as on other frames, less what the probe took.
            self.p.margin * ctx.deadline_ms - self.probe_done_ms
        } else {
            // Time the frame spent queued behind earlier frames' runs is gone too.
            self.p.margin * ctx.deadline_ms - ctx.waited_ms
        };
        let state = self.load_state();
        // Latencies without a load estimate (before any run, or `load_window = 0`: the
        // predictor's reading of the probe's run), once for the whole decision.
        let unestimated = if state.is_none() {
            self.latencies(None)
        } else {
            Vec::new()
        };
        let row = if unread && !probed_now {
            Row::Unread
        } else if probed_now || f.view_rows.is_none() {
            Row::SameImage(bin)
        } else {
            // The reading is of another frame of the scene: it says less about this one.
            Row::OtherView(bin)
        };
        let robust_gain = self.p.robust_gain;
        let f = self.frame.as_mut().expect("per-frame mode");
        f.pool(row, robust_gain);
        let f = self.frame.as_ref().expect("per-frame mode");
        let (acc, not_smaller) = (f.row(row), &f.not_smaller);
        let (probe, min_gain) = (self.probe, self.p.min_gain);
        // On the probe's frame its answer is in hand (when it came in time).
        let in_hand = if self.probe_done_ms <= ctx.deadline_ms {
            acc[probe]
        } else {
            0.0
        };
        let ln_budget = ln_ms(budget);
        // Candidate c's value: its expected top-1 within the deadline.
        let value = |c: usize| -> f64 {
            if c != probe && not_smaller[c] && acc[c] < acc[probe] + min_gain {
                // No faster than the probe and not clearly more accurate: a predicted gain
                // could only come from noise in the calibrated latency tables.
                return 0.0;
            }
            if !probed_now {
                let z = self.z_within(c, budget, ln_budget, state, &unestimated);
                return acc[c] * self.chances(c, z, state, false)[self.cold(c)];
            }
            if c == probe {
                return in_hand;
            }
            if acc[c] < in_hand + min_gain {
                return 0.0;
            }
            let z = self.z_within(c, budget, ln_budget, state, &unestimated);
            let chance = self.chances(c, z, state, true)[self.cold(c)];
            if fallback && in_hand > 0.0 {
                // Late, it leaves the probe's answer to serve.
                if chance < self.p.escalate_chance {
                    0.0
                } else {
                    in_hand + (acc[c] - in_hand) * chance
                }
            } else {
                acc[c] * chance
            }
        };
        let probe_value = value(probe);
        let (best, best_value) = most_valued(acc.len(), value);
        // A larger candidate only for a clear predicted gain over the probe: the gains at
        // stake are often a point or two, less than what latency predictions miss by.
        let pick = if best_value < probe_value + min_gain {
            probe
        } else {
            best
        };
        let cascading = self.p.cascade && !probed_now;
        if cascading && (pick == probe || fallback) {
            // Probing first: the probe's run serves the frame (its answer at least), reads
            // this very frame, and a larger candidate can still run in the time it leaves
            // when the reading says. With a fallback, that beats serving a larger candidate
            // outright unless the outright one is clearly ahead of what an escalation after
            // the probe is expected to add (at most the best top-1 gain over the probe).
            let cascade_ahead = pick == probe || {
                let most_added = acc.iter().fold(0.0f64, |m, &a| m.max(a - acc[probe]));
                let left_ms = ctx.deadline_ms - ctx.waited_ms;
                let esc = self.escalation_gain(acc, left_ms, state, &unestimated);
                best_value < probe_value + most_added + min_gain
                    && best_value < probe_value + esc + min_gain
            };
            if cascade_ahead {
                return self.probe_now(ctx.frame);
            }
        }
        self.serving = Some(pick);
        if probed_now && pick != probe && fallback && in_hand > 0.0 {
            return Decision::Escalate(pick);
        }
        Decision::Serve(pick)
    }

    /// Sends the probe to frame `frame`.
    fn probe_now(&mut self, frame: u64) -> Decision {
        self.probed_frame = Some(frame);
        self.frame.as_mut().expect("per-frame mode").last_probe = Some(frame);
        Decision::Probe(self.probe)
    }

    /// On a frame the probe has not run on: the top-1 that probing first and escalating to
    /// the best larger candidate is expected to add over the probe's answer, on the scene's
    /// table `acc`, with each candidate's chance of finishing, right after the probe, in the
    /// time the probe's median latency now leaves of `left_ms` (the deadline less the time
    /// the frame has waited).
    fn escalation_gain(
        &self,
        acc: &[f64],
        left_ms: f64,
        state: Option<usize>,
        unestimated: &[LatencyStats],
    ) -> f64 {
        let probe_ms = match state {
            Some(g) => self.load.latency(self.probe, g),
            None => unestimated[self.probe],
        }
        .p50_ms;
        let budget = left_ms - probe_ms;
        let ln_budget = ln_ms(budget);
        let floor = acc[self.probe] + self.p.min_gain;
        let mut best = 0.0f64;
        for (c, &top1) in acc.iter().enumerate() {
            let most = top1 - acc[self.probe];
            if c == self.probe || top1 < floor || most < best {
                continue;
            }
            let z = self.z_within(c, budget, ln_budget, state, unestimated);
            let chance = self.chances(c, z, state, true)[1];
            if chance >= self.p.escalate_chance && most * chance >= self.p.min_gain {
                best = best.max(most * chance);
            }
        }
        best
    }

    /// A probe run (or a served run of the probe) is the scene's new reading; a served answer
    /// of another class than the previous frame's, on a frame the probe did not read, says
    /// the scene changed (or that two candidates disagree on it: worth a new reading too).
    pub(super) fn observe_per_frame(&mut self, o: &Outcome) {
        let min_gap = self.p.min_gap;
        if o.candidate == self.probe {
            if o.phase == Phase::Probe {
                self.probe_done_ms = o.latency_ms;
            }
            self.probe_ms = o.compute_ms;
        }
        let f = self.frame.as_mut().expect("per-frame mode");
        if o.candidate == self.probe {
            let bin = probe_bin(o.confidence as f64);
            f.count_reading(bin, o.frame, min_gap);
            f.reading = Some(Reading {
                bin,
                frame: o.frame,
            });
            f.scene_changed = false;
        } else if o.phase == Phase::Serve
            && f.last_answer.is_some_and(|k| k != o.predicted)
            && f.reading.is_none_or(|r| r.frame != o.frame)
        {
            // (On a frame the probe read, the reading is of whatever this frame shows.)
            f.scene_changed = true;
        }
        if o.phase == Phase::Serve {
            f.last_answer = Some(o.predicted);
        }
    }
}
