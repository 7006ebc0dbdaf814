//! `opa`: One-Predict-All. One shallow probe sub-network shows what the current frames are
//! like; from that, without labels, OPA predicts every candidate's top-1 and latency and
//! serves the candidate with the most frames predicted right within the deadline: predicted
//! top-1 × the predicted chance of finishing in time (log-normal latency through the
//! predicted median and 95th percentile, so contention tails count).
//!
//! **Per frame** (default, `evidence_frames > 0`): a video shows one object for several
//! frames, and how sure the probe is of it says how much a larger candidate would add on
//! exactly those frames (shipped profile: where the probe is over 80 % sure every candidate
//! is right on 90–99 % of images, within 2 points of each other; where it is 40–60 % sure
//! the largest gets 13–22 points more than the smallest). So the probe runs once per scene: on the first frame, again when a served answer
//! changes class (a new object) and at the latest every `evidence_frames` frames; each
//! frame is then served by the candidate with the highest top-1 in the probe's confidence
//! bin (the profile's per-frame tables, pooled over its content conditions) times its
//! chance of finishing in time: on the frame the probe ran on, the table binned by the
//! probe's confidence on the same image; on the scene's later frames, the one binned by its
//! confidence on another view of the image (what a reading says about the frames after it:
//! on live frames, about half the gain the same-image table promises). On the frame the
//! probe ran on, its own answer is in hand and competes with the others in the time left. Runs of the probe itself read the scene for
//! free. When the answer changed but `min_gap` holds the probe back, the reading is of the
//! previous object, and the frame is served on every candidate's top-1 over all calibration
//! images. A candidate no smaller than the probe is served only for the top-1 it adds (its
//! latency cannot really be lower than the probe's, whatever its calibrated table says).
//! On those later frames a larger candidate's top-1 in a bin is the probe's plus a low
//! quantile of its gain across the profile's content conditions (`robust_gain`): a gain
//! only some conditions show is not counted on there. Where the probe is the pick, it runs
//! as a probe (`cascade`); with its answer in hand a larger candidate then runs as an
//! escalation (`fallback`, on frames that did not wait for the device): if that is late, the
//! probe's answer serves at the deadline, so probing first and escalating also competes with
//! serving a larger candidate outright on the scene's later frames.
//!
//! Every one of those tables pools the profile's content conditions, weighed by how likely
//! the probe's recent confidence readings are under each (`content_window`,
//! [`ContentBelief`]: each condition's calibrated histogram of the probe's confidence is the
//! likelihood; about `content_window` readings remembered, older ones fading, at most one
//! per `min_gap` frames). Under a persistent condition the readings point to it, and a bin's
//! row becomes that condition's rather than the pool of all 63 (under fog at severity 5 a
//! mid-size candidate adds more over the probe in a bin than the pool says). With no
//! readings, or `content_window = 0`, every calibration image counts alike, as before.
//!
//! **Rounds** (`evidence_frames = 0`, the paper's scheme): the probe runs on `probe_frames`
//! frames every `reprobe_every` frames (and early when the serving candidate's latency or
//! confidence drifts past a threshold); the predictor reads the round's mean signals. On a
//! probe frame OPA serves the probe's own answer when running the serving candidate in the
//! time left is predicted to get fewer frames right.
//!
//! In both, content is seen only by the probe, but latency is seen on every run: OPA
//! estimates the device's current state (a load level of the calibration profile's latency
//! tables, or its idle distributions stretched alike for every candidate, `idle_stretch`)
//! from the `load_window` most recent runs of any candidate and takes every candidate's
//! latency distribution at that state (in rounds it re-plans every
//! `replan_every` served frames with the latest round's content signals, without probing).
//! With `load_window = 0` it reads latency as in the paper: the predictor's latency model on
//! the probe's own timed runs. Where recent runs fell in their predicted distributions
//! corrects every chance of finishing in time (`tail_window`, [`Tails`]). Per frame, the
//! time a frame waited for the device ([`Context::waited_ms`]: frames queued behind earlier
//! frames' runs, at high frame rates) comes off its budget. In both, a frame that waited as
//! long as its deadline before anything ran on it is dropped ([`Decision::Skip`],
//! `skip_late`): no run can serve it in time, and any would delay the frames behind it.

use super::best_feasible;
use crate::condition::{BinRows, ContentBelief, UnreadRows, total_variation};
use crate::predict::Prediction;
use crate::predict::Predictor;
use crate::profile::{
    LatencyStats, PROBE_BINS, Profile, Signals, normal_cdf, probe_bin, z_score, z_sigma,
};
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
    /// is left for queueing and the tails; per frame, on a frame the probe ran on, a larger
    /// candidate is held against this share less the probe's time).
    pub margin: f64,
    /// Re-probe early when the serving candidate's measured latency (moving average) is off
    /// its prediction by more than this share (0.5 = 50 %).
    pub latency_drift: f64,
    /// Re-probe early when the serving candidate's mean confidence moves by more than this
    /// from its value after the switch.
    pub confidence_drift: f64,
    /// Fewest frames between two probing rounds (rounds), or between two probe runs sent by
    /// a changed answer (per frame).
    pub min_gap: u32,
    /// Most recent runs (probe and served) the device's load is estimated from; 0 = read
    /// latency from the probe's own runs with the predictor's latency model instead.
    pub load_window: u32,
    /// Serve another candidate than the probe (per frame), or switch away from the serving
    /// candidate (rounds), only when it is predicted to get at least this share more frames
    /// right within the deadline (0.02 = 2 points): predictions err by a point or two, and
    /// chasing the noisy maximum serves worse candidates.
    pub min_gain: f64,
    /// Re-plan every this many served frames with the latest round's content signals and
    /// the current load estimate, without probing (latency is seen on every run, content only
    /// by the probe); 0 = plan only after probing rounds.
    pub replan_every: u32,
    /// Per-frame mode: the most frames one probe reading of a scene is trusted for; the probe
    /// runs again sooner when the served answers say the scene changed. 0 = probing rounds
    /// as in the paper (`probe_frames` frames every `reprobe_every`, their mean signals read
    /// by the predictor).
    pub evidence_frames: u32,
    /// Runs per pool (the probe's, every other candidate's; each right after a run of the
    /// same candidate or of another) whose place in their predicted latency distribution
    /// corrects the predicted chances of finishing in time: the calibrated tables are timed
    /// warm, in a loop, and a sub-network served now and then runs slower than that, the more
    /// right after another one. 0 = take the predicted distributions as they are.
    pub tail_window: u32,
    /// Besides the profile's load levels, the load estimate considers the idle latency
    /// distributions stretched: every candidate's median × k for k from 1 up to this factor,
    /// its 95th percentile × k × 1 to 5 (contention on a device unlike the calibration run's
    /// slows every sub-network alike and widens its tail). 0 = the profile's load levels only.
    pub idle_stretch: f64,
    /// Per-frame mode: serve the frames after the probe's on the profile's other-view tables
    /// (the probe's confidence on another frame of the scene; [`Profile::view_table`]) when
    /// the profile has them; false = the same-image tables on every frame.
    pub view_table: bool,
    /// Per-frame mode: where the probe is the pick, run it as a probe first (its answer serves
    /// the frame at no extra cost), and serve a larger candidate in the time left when its
    /// answer on this very frame says one would add `min_gain`; false = serve the probe
    /// outright on the scene's reading.
    pub cascade: bool,
    /// On a frame the probe ran on, a larger candidate runs with the probe's answer in hand
    /// ([`Decision::Escalate`]): if it is late, the probe's answer serves at the deadline. A
    /// larger candidate there is then weighed by its expected gain over the probe's answer
    /// in the whole time left, and on the scene's other frames, probing first and escalating
    /// competes with serving a larger candidate outright. Only on frames that did not wait
    /// for the device: a late escalation keeps it busy past the deadline, which costs the
    /// frames queued behind it. false = a larger candidate after the probe serves whatever
    /// its latency (held against `margin` x the deadline less the probe's time).
    pub fallback: bool,
    /// With `fallback`: the least predicted chance of finishing in time a larger candidate
    /// needs to run after the probe (a late one serves nothing, and its run is decision
    /// overhead).
    pub escalate_chance: f64,
    /// Per-frame mode, on the scene's frames after the one the probe read (the other-view
    /// tables): a larger candidate's top-1 in a confidence bin is the probe's plus the lower
    /// quartile ([`GAIN_QUANTILE`]) of its gain over the probe across the profile's content
    /// conditions ([`Profile::robust_view_table`]), not the pooled gain: where a reading is
    /// carried over to other frames, a gain that only some conditions show is not counted
    /// on. On the probe's own frame the pooled same-image table stands. false = the pooled
    /// tables on every frame.
    pub robust_gain: bool,
    /// Drop a frame ([`Decision::Skip`]) that has waited for the device as long as its
    /// deadline or longer before anything ran on it: no run can serve it in time any more,
    /// and any run would delay the frames queued after it. Frames wait only where the
    /// device cannot keep up with the stream (at 10 frames per second never). false = run
    /// every frame however late.
    pub skip_late: bool,
    /// Per-frame mode: weigh the profile's content conditions, in every per-frame table, by
    /// how likely the probe's recent confidence readings are under each
    /// ([`ContentBelief`]: about this many readings remembered, at most one per `min_gap`
    /// frames), so that under a persistent condition (fog at severity 5 throughout) a bin's
    /// row is that condition's, not the pool of all. 0 = pool every condition alike.
    pub content_window: u32,
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
            load_window: 12,
            min_gain: 0.02,
            replan_every: 5,
            evidence_frames: 20,
            tail_window: 64,
            idle_stretch: 16.0,
            view_table: true,
            cascade: true,
            fallback: true,
            escalate_chance: 0.8,
            robust_gain: true,
            skip_late: true,
            content_window: 8,
        }
    }
}

/// The quantile of a candidate's gain over the probe across content conditions that
/// `robust_gain` counts on.
pub const GAIN_QUANTILE: f64 = 0.25;

/// Smoothing of the confidence drift detector's moving average.
const EMA: f64 = 0.15;
/// Served compute times whose median the latency drift detector compares with the predicted
/// median (a median, because contention makes latency heavy-tailed).
const LAT_WINDOW: usize = 9;
/// Served frames after a switch that set the confidence reference.
const SETTLE: u32 = 5;
/// How far ([`total_variation`]) the belief in the content conditions must move from the one
/// the per-frame tables were pooled with before they are pooled again. Readings of one
/// bin each move a diffuse belief a lot (at 0.05, nine counted readings in ten re-pooled);
/// at 0.3 one in 13 to 15 on the shipped 300 and 1,000 frames-per-second scenarios, and
/// `opa stress` came out the same within 0.1 points (seeds 1 and 3, 80 scenarios each).
const REWEIGH: f64 = 0.3;

/// The OPA selector.
pub struct Opa {
    name: String,
    p: OpaParams,
    predictor: Box<dyn Predictor>,
    probe: usize,
    /// The device's current load, estimated from the most recent runs.
    load: LoadTracker,
    /// The probe's mean signals over the latest round (its latency is the probe's own mean,
    /// which the plans read only with `load_window = 0`).
    content: Option<Signals>,
    /// The predictor's output at the latest round, and its candidates by top-1, highest
    /// first.
    round_preds: Vec<Prediction>,
    round_order: Vec<usize>,
    /// Served frames since the last plan.
    since_plan: u32,
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
    /// Per-frame mode: every candidate's top-1 on a frame per bin of the probe's confidence
    /// on it, per content condition (the profile's per-frame tables); None in round mode.
    same_rows: Option<BinRows>,
    /// The same given the probe's confidence on another frame of the scene (the profile's
    /// other-view tables), for the frames after the reading's; None without them (or with
    /// `view_table` off): the same-image table serves every frame.
    view_rows: Option<BinRows>,
    /// Every candidate's top-1 over each condition's calibration images.
    unread_rows: UnreadRows,
    /// Per-frame mode with `content_window`: the belief in the content conditions, the
    /// frame of the latest reading counted in it, the weights per condition the tables are
    /// pooled with (all 1 = every calibration image alike) and their shares of the frames,
    /// and the pooling's generation.
    belief: Option<ContentBelief>,
    counted: Option<u64>,
    weights: Vec<f64>,
    shares: Vec<f64>,
    pooled_gen: u64,
    /// Every candidate's top-1 on a frame per bin of the probe's confidence on it, pooled
    /// with `weights` (`frame_table[bin][candidate]`; a bin is pooled when first needed in
    /// a generation: the generation per bin), and the same of the other-view tables.
    frame_table: Vec<Vec<f64>>,
    frame_gen: Vec<u64>,
    view_table: Vec<Vec<f64>>,
    view_gen: Vec<u64>,
    /// Per bin of `frame_table`, of `view_table` and of `unread`: the candidates by top-1,
    /// highest first (so that a decision can stop at the first that cannot win).
    frame_order: Vec<Vec<usize>>,
    view_order: Vec<Vec<usize>>,
    unread_order: Vec<usize>,
    /// A buffer of the per-frame decision's candidate values.
    found: Vec<f64>,
    /// Per-frame mode: every candidate's top-1 on an object the probe has not read (over
    /// all calibration images), served on when the scene changed and `min_gap` holds the
    /// probe back.
    unread: Vec<f64>,
    /// Per candidate: at least the probe's MACs (no faster than the probe).
    not_smaller: Vec<bool>,
    /// Per-frame mode: the latest probe reading of the scene.
    reading: Option<Reading>,
    /// Per-frame mode: a served answer changed since the reading (a new scene).
    scene_changed: bool,
    /// Per-frame mode: the class served on the previous frame.
    last_answer: Option<u16>,
    /// The probe's latest compute time, ms.
    probe_ms: f64,
    /// Per-frame mode: the frame of the latest probe run.
    last_probe: Option<u64>,
    /// Per-frame mode, for most frames' budget: every candidate's chance of finishing in
    /// time (right after a run of its own, and of another candidate), and the (load grid
    /// point, budget, tails version) it is for.
    chance: Lazy<[f64; 2]>,
    chance_key: Option<(Option<usize>, f64, u64)>,
    /// [`ln_ms`] of `chance_key`'s budget.
    chance_ln: f64,
    /// Per-frame mode with `fallback`: every candidate's chance of finishing in the time a
    /// probe run would leave on the frame (run right after it), and the (load grid point,
    /// budget, tails version) it is for.
    chance_esc: Lazy<f64>,
    esc_key: Option<(Option<usize>, f64, u64)>,
    /// [`ln_ms`] of `esc_key`'s budget.
    esc_ln: f64,
    /// The latest (table row, `chance_esc` generation) a frame the probe had not run on
    /// was weighed on, and the most top-1 a candidate adds over the probe's there and
    /// [`Opa::escalation_gain`].
    esc_memo: std::cell::Cell<Option<EscMemo>>,
    /// Where recent runs fell in their predicted latency distributions.
    tails: Tails,
    /// The candidate of the latest run (probe or served).
    last_run: Option<usize>,
    /// The frame being decided waited for the device before its first run (the device is
    /// not keeping up with the stream; read per frame).
    queued: bool,
}

/// What a per-frame decision weighs the candidates with ([`Weigh::value`]; a method that
/// is inlined, not a closure the compiler kept apart).
struct Weigh<'a> {
    opa: &'a Opa,
    /// The scene's table row.
    acc: &'a [f64],
    probed_now: bool,
    fallback: bool,
    /// The probe's answer's top-1 on this frame, when it ran on it in time.
    in_hand: f64,
    /// A run's time budget, and its [`ln_ms`] (after the probe).
    budget: f64,
    ln_budget: f64,
    state: Option<usize>,
    unestimated: &'a [LatencyStats],
}

impl Weigh<'_> {
    /// Candidate `c`'s value: its expected top-1 within the deadline.
    #[inline(always)]
    fn value(&self, c: usize) -> f64 {
        let (o, acc) = (self.opa, self.acc);
        let (probe, min_gain, in_hand) = (o.probe, o.p.min_gain, self.in_hand);
        if c != probe && o.not_smaller[c] && acc[c] < acc[probe] + min_gain {
            // No faster than the probe and not clearly more accurate: a predicted gain
            // could only come from noise in the calibrated latency tables.
            0.0
        } else if self.probed_now && c == probe {
            in_hand
        } else if self.probed_now {
            if acc[c] < in_hand + min_gain {
                0.0
            } else {
                let chance = o.chance_after_probe(
                    c,
                    self.budget,
                    self.ln_budget,
                    self.state,
                    self.unestimated,
                );
                if self.fallback && in_hand > 0.0 {
                    // Late, it leaves the probe's answer to serve.
                    if chance < o.p.escalate_chance {
                        0.0
                    } else {
                        in_hand + (acc[c] - in_hand) * chance
                    }
                } else {
                    acc[c] * chance
                }
            }
        } else {
            acc[c] * o.chance_now(c)
        }
    }
}

/// See `Opa::esc_memo`: ((table, bin), generation, pooling generation) and (most added,
/// escalation gain).
type EscMemo = (((u8, usize), u64, u64), (f64, f64));

/// The candidate of the highest `value` among `n` (the first of near-ties), and its value.
fn most_valued(n: usize, value: impl Fn(usize) -> f64) -> (usize, f64) {
    (0..n).map(|c| (c, value(c))).fold(
        (0, f64::MIN),
        |b, (c, v)| if v > b.1 + 1e-12 { (c, v) } else { b },
    )
}

/// [`most_valued`] of `value` over the candidates of the bits set in `seen` (the rest of
/// `value` at f64::MIN: none of them could be picked), visiting only those.
fn most_valued_of(mut seen: u64, value: &[f64]) -> (usize, f64) {
    let mut b = (0, f64::MIN);
    while seen != 0 {
        let c = seen.trailing_zeros() as usize;
        seen &= seen - 1;
        if value[c] > b.1 + 1e-12 {
            b = (c, value[c]);
        }
    }
    b
}

/// The candidate of the highest value (the first of near-ties, as [`most_valued`] picks),
/// and its value, weighing as few as can decide it: in `order`, highest `bound` first (no
/// candidate's value above its bound), stopping once the rest are bounded below the best
/// value found, or below `bar` while the best is (where a caller's decision cannot change
/// below the bar; `f64::MIN` for none). `known`: a candidate whose value is known, weighed
/// besides. `found`: a buffer for the values. A skipped candidate could neither be picked
/// nor change which one is (it is more than 1e-9 below the best, and the first of
/// near-ties is decided 1e-12 apart), so the pick is the one a fold over every candidate
/// finds.
fn weigh_in_order(
    order: &[usize],
    bound: impl Fn(usize) -> f64,
    bar: f64,
    value: impl Fn(usize) -> f64,
    known: Option<(usize, f64)>,
    found: &mut Vec<f64>,
) -> (usize, f64) {
    found.clear();
    found.resize(order.len(), f64::MIN);
    let mut top = f64::MIN;
    // (Bit c: candidate c's value was found; the pick is folded over those alone, in
    // candidate order, which is what a fold over every candidate finds when the others
    // stand at f64::MIN.)
    let mut seen = 0u64;
    for &c in order {
        if bound(c).max(0.0) < top.max(bar) - 1e-9 {
            break;
        }
        found[c] = value(c);
        top = top.max(found[c]);
        seen |= 1u64.checked_shl(c as u32).unwrap_or(0);
    }
    if let Some((c, v)) = known {
        found[c] = v;
        seen |= 1u64.checked_shl(c as u32).unwrap_or(0);
    }
    if order.len() <= 64 {
        most_valued_of(seen, found)
    } else {
        most_valued(order.len(), |c| found[c])
    }
}

/// The natural logarithm of a time `ms`, minus infinity for no time or less (a z-score of
/// minus infinity: no chance of finishing in it).
#[inline]
fn ln_ms(ms: f64) -> f64 {
    if ms <= 0.0 {
        f64::NEG_INFINITY
    } else {
        ms.ln()
    }
}

/// The indices of `row` by value, highest first.
fn by_value(row: &[f64]) -> Vec<usize> {
    let mut o: Vec<usize> = (0..row.len()).collect();
    o.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
    o
}

/// Per candidate, a value computed when first asked for since the last
/// [`clear`](Lazy::clear): chances that hold while the load estimate, the budget and the
/// tails stay the same, of which most decisions read a few candidates' only.
#[derive(Default)]
struct Lazy<T: Copy + Default> {
    /// The value and the generation it was computed in.
    cells: Vec<std::cell::Cell<(T, u64)>>,
    generation: u64,
}

impl<T: Copy + Default> Lazy<T> {
    /// Forgets every value; `n` candidates.
    fn clear(&mut self, n: usize) {
        self.generation += 1;
        self.cells
            .resize_with(n, || std::cell::Cell::new((T::default(), 0)));
    }

    /// Candidate `c`'s value, from `compute` unless known. (Inlined, the computing apart:
    /// decisions read a dozen values a frame, most of them known.)
    #[inline]
    fn get(&self, c: usize, compute: impl FnOnce() -> T) -> T {
        let (v, g) = self.cells[c].get();
        if g == self.generation {
            return v;
        }
        self.fill(c, compute)
    }

    /// [`Lazy::get`] of a value not known yet.
    #[cold]
    #[inline(never)]
    fn fill(&self, c: usize, compute: impl FnOnce() -> T) -> T {
        let v = compute();
        self.cells[c].set((v, self.generation));
        v
    }
}

/// What the probe showed on one frame.
#[derive(Clone, Copy, Debug)]
struct Reading {
    /// Bin of its confidence.
    bin: usize,
    /// Frame it ran on.
    frame: u64,
}

impl Opa {
    /// OPA over `profile`'s candidates with a fitted `predictor`; the probe is the profile's.
    /// Per-frame mode (`evidence_frames > 0`) needs the profile's per-frame tables; the
    /// error says so when a profile predates them.
    pub fn new(
        name: &str,
        p: OpaParams,
        profile: &Profile,
        predictor: Box<dyn Predictor>,
    ) -> Result<Self, String> {
        let clean = profile.content_index("clean").unwrap_or(0);
        let same_rows = if p.evidence_frames > 0 {
            Some(BinRows::same_image(profile).ok_or(
                "per-frame OPA (evidence-frames > 0) needs a profile with per-frame tables \
                 (probe_bin_top1): calibrate again with this version, or set evidence-frames = 0",
            )?)
        } else {
            None
        };
        let view_rows = same_rows
            .as_ref()
            .filter(|_| p.view_table)
            .and_then(|_| BinRows::other_view(profile));
        let belief = same_rows
            .as_ref()
            .filter(|_| p.content_window > 0)
            .and_then(|_| ContentBelief::new(profile, p.content_window));
        let weights = vec![1.0; profile.contents.len()];
        let shares = belief
            .as_ref()
            .map_or_else(Vec::new, |b| b.shares(&weights));
        let tails = Tails::new(p.tail_window as usize);
        let unread_rows = UnreadRows::new(profile);
        let unread = unread_rows.row(&weights);
        let n = profile.candidates.len();
        let probe_macs = profile.candidates[profile.probe].macs;
        let not_smaller = profile
            .candidates
            .iter()
            .map(|c| c.macs >= probe_macs)
            .collect();
        Ok(Opa {
            name: name.into(),
            probe: profile.probe,
            load: LoadTracker::new(profile, p.idle_stretch),
            content: None,
            round_preds: Vec::new(),
            round_order: Vec::new(),
            since_plan: 0,
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
            frame_table: vec![vec![0.0; n]; PROBE_BINS],
            frame_gen: vec![u64::MAX; PROBE_BINS],
            view_table: vec![vec![0.0; n]; PROBE_BINS],
            view_gen: vec![u64::MAX; PROBE_BINS],
            frame_order: vec![Vec::new(); PROBE_BINS],
            view_order: vec![Vec::new(); PROBE_BINS],
            unread_order: by_value(&unread),
            found: Vec::new(),
            same_rows,
            view_rows,
            unread_rows,
            belief,
            counted: None,
            weights,
            shares,
            pooled_gen: 0,
            unread,
            not_smaller,
            reading: None,
            scene_changed: false,
            last_answer: None,
            probe_ms: 0.0,
            last_probe: None,
            chance: Lazy::default(),
            chance_key: None,
            chance_ln: 0.0,
            chance_esc: Lazy::default(),
            esc_key: None,
            esc_ln: 0.0,
            esc_memo: std::cell::Cell::new(None),
            tails,
            last_run: None,
            queued: false,
        })
    }

    /// The device's estimated state (load grid point), when OPA estimates it and has runs.
    fn load_state(&self) -> Option<usize> {
        (self.p.load_window > 0)
            .then(|| self.load.estimate())
            .flatten()
    }

    /// Every candidate's latency distribution now: at the device's estimated state `state`
    /// (from [`Opa::load_state`]), or with `load_window = 0` the predictor's reading of the
    /// probe's latest run.
    fn latencies(&self, state: Option<usize>) -> Vec<LatencyStats> {
        if let Some(g) = state {
            return (0..self.preds.len())
                .map(|c| self.load.latency(c, g))
                .collect();
        }
        if self.p.load_window == 0 && self.probe_ms > 0.0 {
            let s = Signals {
                latency_ms: self.probe_ms,
                ..self.content.unwrap_or_default()
            };
            return self
                .predictor
                .predict(&s, None)
                .iter()
                .map(|p| p.latency())
                .collect();
        }
        self.preds.iter().map(|p| p.latency()).collect()
    }

    /// Every candidate's chance of finishing within `budget` ms now, in `chance`: kept while
    /// the load estimate, the budget and the tails stay the same (most frames), and with a
    /// load estimate computed when first asked for.
    fn refresh_chances(&mut self, budget: f64) {
        let state = self.load_state();
        let key = (state, budget, self.tails.version);
        if state.is_some() && self.chance_key == Some(key) {
            return;
        }
        self.chance_key = Some(key);
        self.chance_ln = ln_ms(budget);
        self.chance.clear(self.preds.len());
        if state.is_none() {
            for (c, l) in self.latencies(None).iter().enumerate() {
                let v = self.chances(c, budget, l, None, false);
                self.chance.get(c, || v);
            }
        }
    }

    /// Candidate `c`'s chance of finishing in time from [`Opa::refresh_chances`], for a run
    /// now.
    fn chance_now(&self, c: usize) -> f64 {
        let v = self.chance.get(c, || {
            let (state, _, _) = self.chance_key.expect("chances refreshed");
            let g = state.expect("without a load estimate, chances are computed at refresh");
            self.tails
                .chances(self.kind(c, false), self.load.z_of_ln(c, g, self.chance_ln))
        });
        v[self.cold(c)]
    }

    /// Candidate `c`'s chance of finishing within `budget` ms when run right after the
    /// probe's run on this frame (computed when asked: the budget differs on every probe
    /// frame, and most candidates are ruled out before their chance matters; `ln_budget`:
    /// [`ln_ms`] of `budget`, taken once per decision). Without a load estimate (`state`
    /// None), `unestimated` holds every candidate's [`Opa::latencies`].
    fn chance_after_probe(
        &self,
        c: usize,
        budget: f64,
        ln_budget: f64,
        state: Option<usize>,
        unestimated: &[LatencyStats],
    ) -> f64 {
        match state {
            // (The hot path: the z-score from the load grid's kept medians and sigmas.)
            Some(g) => {
                let z = self.load.z_of_ln(c, g, ln_budget);
                self.tails.chances(self.kind(c, true), z)[self.cold(c)]
            }
            None => self.chance_of(c, budget, &unestimated[c], None, true),
        }
    }

    /// Candidate `c`'s latency distribution at the estimated state `state`, or without an
    /// estimate its entry of `unestimated` (every candidate's [`Opa::latencies`]).
    fn latency_at(
        &self,
        c: usize,
        state: Option<usize>,
        unestimated: &[LatencyStats],
    ) -> LatencyStats {
        match state {
            Some(g) => self.load.latency(c, g),
            None => unestimated[c],
        }
    }

    /// Candidate `c`'s chance of finishing within `budget` ms now, when its latency is `l` at
    /// the estimated state `state` (`after_probe`: right after the probe's run on this frame).
    fn chance_of(
        &self,
        c: usize,
        budget: f64,
        l: &LatencyStats,
        state: Option<usize>,
        after_probe: bool,
    ) -> f64 {
        self.chances(c, budget, l, state, after_probe)[self.cold(c)]
    }

    /// Candidate `c`'s chances of finishing within `budget` ms right after a run of its own
    /// and right after one of another candidate, when its latency is `l` at the estimated
    /// state `state`: the predicted distribution, corrected by where recent runs fell in
    /// theirs (only against the load estimate's distributions, whose runs are the ones
    /// measured).
    fn chances(
        &self,
        c: usize,
        budget: f64,
        l: &LatencyStats,
        state: Option<usize>,
        after_probe: bool,
    ) -> [f64; 2] {
        let z = z_score(budget, l);
        if state.is_some() {
            self.tails.chances(self.kind(c, after_probe), z)
        } else {
            [normal_cdf(z); 2]
        }
    }

    /// The tail kind of candidate `c` (its warm pool's index): the probe runs on most
    /// frames, the others now and then, and a run of another candidate right after the
    /// probe's on the same frame (`after_probe`) is a kind of its own.
    #[inline]
    fn kind(&self, c: usize, after_probe: bool) -> usize {
        if c == self.probe {
            0
        } else if after_probe {
            AFTER_PROBE
        } else {
            2
        }
    }

    /// 1 when a run of candidate `c` now would come right after a run of another candidate
    /// (and find less of it in cache), 0 right after its own.
    #[inline]
    fn cold(&self, c: usize) -> usize {
        usize::from(self.last_run != Some(c))
    }

    /// The tail pool of a run of candidate `c` now (`after_probe`: see [`Opa::kind`]).
    fn pool(&self, c: usize, after_probe: bool) -> usize {
        self.kind(c, after_probe) + self.cold(c)
    }

    /// Per-frame mode: probe when the scene's reading is missing, stale or outdated by a
    /// changed answer; then serve the candidate with the highest chance of a right answer
    /// in time given the reading (the probe's own answer on the frame it ran on).
    fn decide_per_frame(&mut self, ctx: &Context) -> Decision {
        // A changed answer sends the probe at most once per `min_gap` frames (objects that
        // change every frame, or answers that flicker, must not make OPA probe every frame).
        let gap_over = self
            .last_probe
            .is_none_or(|f| ctx.frame >= f + self.p.min_gap as u64);
        let stale = self.reading.is_none_or(|r| {
            (self.scene_changed && gap_over) || ctx.frame >= r.frame + self.p.evidence_frames as u64
        });
        // A new object the probe may not read yet: the reading is of the previous one.
        let unread = self.scene_changed && !gap_over;
        if stale && self.probed_frame != Some(ctx.frame) {
            self.probed_frame = Some(ctx.frame);
            self.last_probe = Some(ctx.frame);
            return Decision::Probe(self.probe);
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
        if !probed_now {
            self.refresh_chances(budget);
        }
        // Latencies read without a load estimate (before any run, or `load_window = 0`: the
        // predictor's reading of the probe's run), once for the whole decision.
        let unestimated = if state.is_none() && (probed_now || fallback) {
            self.latencies(None)
        } else {
            Vec::new()
        };
        if self.p.cascade && !probed_now && fallback {
            self.refresh_escalation(ctx.deadline_ms - ctx.waited_ms, state, &unestimated);
        }
        let bin = self.reading.map_or(PROBE_BINS - 1, |r| r.bin);
        // (Which table row: 0 the unread, 1 the same-image, 2 the other-view one.)
        let row = if unread && !probed_now {
            (0, 0)
        } else if probed_now || self.view_rows.is_none() {
            (1, bin)
        } else {
            // The reading is of another frame of the scene: it says less about this one.
            (2, bin)
        };
        self.pool_row(row);
        let (acc, order) = match row.0 {
            0 => (&self.unread, &self.unread_order),
            1 => (&self.frame_table[bin], &self.frame_order[bin]),
            _ => (&self.view_table[bin], &self.view_order[bin]),
        };
        let mut found = std::mem::take(&mut self.found);
        let (probe, min_gain) = (self.probe, self.p.min_gain);
        // On the probe's frame its answer is in hand; another candidate must beat it by
        // `min_gain` even if sure to finish in time, or its chance need not be computed.
        let in_hand = if self.probe_done_ms <= ctx.deadline_ms {
            acc[probe]
        } else {
            0.0
        };
        // (After the probe, every candidate's chance is for the same budget: its logarithm
        // once.)
        let ln_budget = if probed_now { ln_ms(budget) } else { 0.0 };
        let weigh = Weigh {
            opa: self,
            acc,
            probed_now,
            fallback,
            in_hand,
            budget,
            ln_budget,
            state,
            unestimated: &unestimated,
        };
        let value = |c: usize| weigh.value(c);
        let probe_value = value(probe);
        let cascading = self.p.cascade && !probed_now;
        // Where the probe is run first unless another candidate is clearly ahead (with a
        // fallback: by what an escalation after the probe is expected to add; an escalation
        // adds at most the best top-1 gain over the probe).
        let (most_added, esc) = if cascading && fallback {
            // (The same row with the same escalation chances gives the same: kept from the
            // previous frame while neither changed, most frames.)
            let key = (row, self.chance_esc.generation, self.pooled_gen);
            match self.esc_memo.get() {
                Some((k, kept)) if k == key => kept,
                _ => {
                    let kept = (
                        acc.iter().fold(0.0f64, |m, &a| m.max(a - acc[self.probe])),
                        self.escalation_gain(acc, order),
                    );
                    self.esc_memo.set(Some((key, kept)));
                    kept
                }
            }
        } else {
            (0.0, 0.0)
        };
        // The bar a candidate's value must reach to change the decision from the probe's:
        // after the probe, to be served instead of its answer; on other frames when probing
        // first, to be served outright. Only when the probe's own value is below it (else
        // the pick among the others decides).
        let bar = if probed_now {
            probe_value + min_gain
        } else if cascading && fallback {
            (probe_value + most_added + min_gain).min(probe_value + esc + min_gain)
        } else if cascading {
            probe_value + min_gain
        } else {
            f64::MIN
        };
        let bar = if probe_value < bar { bar } else { f64::MIN };
        // No candidate is worth more than its top-1 (its chance is at most 1): the rest
        // cannot win once their top-1 is below the best value found, nor change the decision
        // while it is below the bar (most decisions need a few chances, not every one).
        let (best, best_value) = weigh_in_order(
            order,
            |c| acc[c],
            bar,
            value,
            Some((probe, probe_value)),
            &mut found,
        );
        self.found = found;
        // A larger candidate only for a clear predicted gain over the probe: the gains at
        // stake are often a point or two, less than what latency predictions miss by.
        let pick = if best_value < probe_value + self.p.min_gain {
            self.probe
        } else {
            best
        };
        if cascading && (pick == self.probe || fallback) {
            // Probing first: the probe's run serves the frame (its answer at least), reads
            // this very frame, and a larger candidate can still run in the time it leaves
            // when the reading says. With a fallback, that beats serving a larger candidate
            // outright unless the outright one is clearly ahead.
            let cascade_ahead = pick == self.probe
                || best_value < probe_value + most_added + self.p.min_gain
                    && best_value < probe_value + esc + self.p.min_gain;
            if cascade_ahead {
                self.probed_frame = Some(ctx.frame);
                self.last_probe = Some(ctx.frame);
                return Decision::Probe(self.probe);
            }
        }
        if probed_now && pick != self.probe && fallback && in_hand > 0.0 {
            self.serving = Some(pick);
            return Decision::Escalate(pick);
        }
        self.serving = Some(pick);
        Decision::Serve(pick)
    }

    /// Per-frame mode with `fallback`, on a frame the probe has not run on: the chances
    /// [`Opa::escalation_gain`] reads, for the time the probe's median latency now leaves
    /// of `left_ms` (the deadline less the time the frame has waited; kept while the load
    /// estimate, that time and the tails stay the same; without a load estimate,
    /// `unestimated` holds every candidate's [`Opa::latencies`]).
    fn refresh_escalation(
        &mut self,
        left_ms: f64,
        state: Option<usize>,
        unestimated: &[LatencyStats],
    ) {
        let probe_ms = self.latency_at(self.probe, state, unestimated).p50_ms;
        let budget = left_ms - probe_ms;
        let key = (state, budget, self.tails.version);
        if state.is_some() && self.esc_key == Some(key) {
            return;
        }
        self.esc_key = Some(key);
        self.esc_ln = ln_ms(budget);
        self.chance_esc.clear(self.preds.len());
        if state.is_none() {
            for (c, l) in unestimated.iter().enumerate() {
                let v = self.chances(c, budget, l, None, true)[1];
                self.chance_esc.get(c, || v);
            }
        }
    }

    /// Per-frame mode with `fallback`, on a frame the probe has not run on: the top-1 that
    /// probing first and escalating to the best larger candidate in the time the probe leaves
    /// is expected to add over the probe's answer, on the scene's table `acc` (`order`: its
    /// candidates by top-1, highest first), with each candidate's chance of finishing in time
    /// right after the probe, at the probe's median latency now
    /// ([`Opa::refresh_escalation`]).
    fn escalation_gain(&self, acc: &[f64], order: &[usize]) -> f64 {
        let floor = acc[self.probe] + self.p.min_gain;
        let mut best = 0.0f64;
        for &c in order {
            let most = acc[c] - acc[self.probe];
            if acc[c] < floor || most < best {
                // (Nor can any after it: none adds more than its top-1 over the probe's.)
                break;
            }
            if c == self.probe {
                continue;
            }
            let chance = self.chance_esc.get(c, || {
                let (state, _, _) = self.esc_key.expect("escalation refreshed");
                let g = state.expect("without a load estimate, chances are computed at refresh");
                self.tails
                    .chances(self.kind(c, true), self.load.z_of_ln(c, g, self.esc_ln))[1]
            });
            if chance >= self.p.escalate_chance && most * chance >= self.p.min_gain {
                best = best.max(most * chance);
            }
        }
        best
    }

    /// Per-frame mode: pools the table row `row` ((0, 0) the unread, (1, bin) the
    /// same-image, (2, bin) the other-view one) with the current weights, unless it already
    /// is in this pooling generation.
    fn pool_row(&mut self, (table, bin): (u8, usize)) {
        let g = self.pooled_gen;
        match table {
            1 if self.frame_gen[bin] != g => {
                let rows = self.same_rows.as_ref().expect("per-frame mode");
                self.frame_table[bin] = rows.row(bin, &self.weights);
                self.frame_order[bin] = by_value(&self.frame_table[bin]);
                self.frame_gen[bin] = g;
            }
            2 if self.view_gen[bin] != g => {
                let rows = self.view_rows.as_mut().expect("other-view rows");
                self.view_table[bin] = if self.p.robust_gain {
                    rows.robust_row(bin, &self.weights, GAIN_QUANTILE)
                } else {
                    rows.row(bin, &self.weights)
                };
                self.view_order[bin] = by_value(&self.view_table[bin]);
                self.view_gen[bin] = g;
            }
            _ => {}
        }
    }

    /// Per-frame mode with `content_window`: counts a probe reading of bin `bin` on frame
    /// `frame` in the belief in the content conditions (at most one per `min_gap` frames: the
    /// readings of one scene say the same), after re-pooling the tables with the belief so
    /// far when it moved by more than [`REWEIGH`] (the scene a reading is of is served on
    /// the readings before it: its own is the row's bin).
    fn count_reading(&mut self, bin: usize, frame: u64) {
        let Some(belief) = self.belief.as_mut() else {
            return;
        };
        let gap = u64::from(self.p.min_gap.max(1));
        if self.counted.is_some_and(|f| frame < f + gap) {
            return;
        }
        self.counted = Some(frame);
        let weights = belief.weights();
        let shares = belief.shares(&weights);
        belief.add(bin);
        if total_variation(&shares, &self.shares) > REWEIGH {
            self.unread = self.unread_rows.row(&weights);
            self.unread_order = by_value(&self.unread);
            self.weights = weights;
            self.shares = shares;
            self.pooled_gen += 1;
        }
    }

    /// Per-frame mode: a probe run (or a served run of the probe) is the scene's new
    /// reading; a served answer of another class than the previous frame's, on a frame the
    /// probe did not read, says the scene changed (or that two candidates disagree on it:
    /// worth a new reading too).
    fn observe_per_frame(&mut self, o: &Outcome) {
        if o.candidate == self.probe {
            if o.phase == Phase::Probe {
                self.probe_done_ms = o.latency_ms;
            }
            self.probe_ms = o.compute_ms;
            let bin = probe_bin(o.confidence as f64);
            self.count_reading(bin, o.frame);
            self.reading = Some(Reading {
                bin,
                frame: o.frame,
            });
            self.scene_changed = false;
        } else if o.phase == Phase::Serve
            && self.last_answer.is_some_and(|k| k != o.predicted)
            && self.reading.is_none_or(|r| r.frame != o.frame)
        {
            // (On a frame the probe read, the reading is of whatever this frame shows.)
            self.scene_changed = true;
        }
        if o.phase == Phase::Serve {
            self.last_answer = Some(o.predicted);
        }
    }

    fn start_round(&mut self, frame: u64) {
        self.probing_left = self.p.probe_frames.max(1);
        self.acc = Signals::default();
        self.acc_n = 0;
        self.round_start = frame;
    }

    /// A probing round ended: its content signals are the new basis of the plans.
    fn round_done(&mut self) {
        let n = self.acc_n.max(1) as f64;
        self.content = Some(Signals {
            confidence: self.acc.confidence / n,
            entropy: self.acc.entropy / n,
            margin: self.acc.margin / n,
            latency_ms: self.acc.latency_ms / n,
        });
        self.plan(true);
    }

    /// Predicts every candidate from the latest round's content signals and the device's
    /// current load, and picks what to serve. `round`: right after a probing round (the
    /// drift references restart even without a switch).
    fn plan(&mut self, round: bool) {
        let Some(mut s) = self.content else { return };
        let state = self.load_state();
        if round || self.round_preds.is_empty() {
            // Content changes only at rounds: the predictor runs once per round, and re-plans
            // in between take its accuracies with the latest latencies.
            if let Some(g) = state {
                s.latency_ms = self.load.latency(self.probe, g).mean_ms;
            }
            self.round_preds = self.predictor.predict(&s, None);
            let top1: Vec<f64> = self.round_preds.iter().map(|p| p.top1).collect();
            self.round_order = by_value(&top1);
        }
        // (Into the previous plan's buffer.)
        let mut preds = std::mem::take(&mut self.preds);
        preds.clone_from(&self.round_preds);
        if let Some(g) = state {
            for (c, p) in preds.iter_mut().enumerate() {
                let l = self.load.latency(c, g);
                (p.latency_ms, p.p50_ms, p.p95_ms) = (l.mean_ms, l.p50_ms, l.p95_ms);
            }
        }
        let budget = self.p.margin * self.deadline_ms;
        let ln_budget = ln_ms(budget);
        let mut found = std::mem::take(&mut self.found);
        let value = |c: usize| {
            let chance = match state {
                // (The latency is the load grid's: its kept median logarithm and sigma, and
                // the budget's logarithm once.)
                Some(g) => {
                    let z = self.load.z_of_ln(c, g, ln_budget);
                    self.tails.chances(self.kind(c, false), z)[self.cold(c)]
                }
                None => self.chance_of(c, budget, &preds[c].latency(), None, false),
            };
            preds[c].top1 * chance
        };
        // A value is at most its predicted top-1.
        let (best, best_value) = weigh_in_order(
            &self.round_order,
            |c| preds[c].top1,
            f64::MIN,
            value,
            None,
            &mut found,
        );
        let pick = match self.serving {
            Some(cur) if best_value < value(cur) + self.p.min_gain => cur,
            _ => best,
        };
        self.found = found;
        self.predicted_ms = preds[pick].latency().p50_ms;
        self.preds = preds;
        self.since_plan = 0;
        if round || self.serving != Some(pick) {
            self.conf_ref = None;
            self.conf_sum = 0.0;
            self.conf_n = 0;
            self.recent_ms.clear();
        }
        self.serving = Some(pick);
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
            // frames' runs.
            if self.p.skip_late && ctx.past_deadline() {
                return Decision::Skip;
            }
            self.queued = ctx.waited_ms > 0.0;
        }
        if self.same_rows.is_some() {
            return self.decide_per_frame(ctx);
        }
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
            let chance = self.chance_of(serving, left_ms, &cand.latency(), self.load_state(), true);
            if probe_value >= cand.top1 * chance {
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
            if self.same_rows.is_some() {
                self.last_answer = Some(o.predicted);
            }
            return;
        }
        // (One logarithm for the tails' z-score and the load estimate.)
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
        if self.same_rows.is_some() {
            self.observe_per_frame(o);
            return;
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
                    self.round_done();
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
                if self.probing_left > 0 {
                    return;
                }
                if o.frame >= self.round_start + self.p.min_gap as u64 {
                    let lat_off = self.recent_ms.len() == LAT_WINDOW && {
                        let mut v = [0.0; LAT_WINDOW];
                        v.iter_mut()
                            .zip(&self.recent_ms)
                            .for_each(|(v, &ms)| *v = ms);
                        v.sort_by(f64::total_cmp);
                        (v[LAT_WINDOW / 2] / self.predicted_ms.max(1e-9) - 1.0).abs()
                            > self.p.latency_drift
                    };
                    let conf_off = self
                        .conf_ref
                        .is_some_and(|r| (self.conf_ema - r).abs() > self.p.confidence_drift);
                    if lat_off || conf_off {
                        self.start_round(o.frame + 1);
                        return;
                    }
                }
                if self.p.replan_every > 0 && self.p.load_window > 0 {
                    self.since_plan += 1;
                    if self.since_plan >= self.p.replan_every {
                        self.plan(false);
                    }
                }
            }
            // (Never an outcome's: nothing runs on a skipped frame.)
            Phase::Skip => {}
        }
    }
}

/// Pseudo-runs the predicted distribution weighs as in a tail correction: with few runs
/// measured the prediction stands, with many the measured runs speak.
const TAIL_PRIOR: f64 = 16.0;
/// Runs pushed to a pool between two updates of the correction OPA's decisions read (the
/// per-frame chances are recomputed only when it changes).
const TAIL_BATCH: u32 = 16;

/// Tail pools: the probe's and the other candidates' runs, each right after a run of the
/// same candidate (warm) or of another one (cold), and runs of other candidates right after
/// the probe's on the same frame (always cold: only the second pool of [`AFTER_PROBE`] fills).
const POOLS: usize = 6;
/// The kind (warm pool's index) of runs right after the probe's on the same frame: on the
/// shipped profile's live runs, larger candidates run there landed past 2.5 x their idle
/// median on 10 % of runs (2 ms deadline, CPU load under 0.1), against 4 % when served on
/// a frame of their own; these pools shrink toward the other candidates' cold pool.
const AFTER_PROBE: usize = 4;

/// Where recent runs fell in the latency distributions OPA predicted for them (their z-scores
/// in log latency at the estimated state), in [`POOLS`] pools. The calibrated distributions
/// are timed warm, one candidate in a loop; live, a sub-network that is served now and then
/// runs slower than that, the more right after another one (on the shipped profile's dynamic
/// runs, of OPA's runs of larger candidates 16 % landed past their predicted 95th percentile
/// right after another candidate's run, 13 % after their own; of the probe's, 7 % and 5 %).
/// A candidate's chance of finishing within a budget is the share of its pool's runs at or
/// below the budget's z-score, shrunk toward the normal distribution the prediction assumes.
struct Tails {
    window: usize,
    /// Per pool: the z-scores in arrival order, the same sorted, and the ones the
    /// correction reads, sorted (kept in order run by run: sorting the window anew at every
    /// update cost more).
    recent: [std::collections::VecDeque<f64>; POOLS],
    live: [Vec<f64>; POOLS],
    sorted: [Vec<f64>; POOLS],
    /// Runs pushed per pool since `sorted` was last updated.
    pending: [u32; POOLS],
    /// Changes whenever `sorted` does.
    version: u64,
    /// The z grid, and the normal distribution function on it.
    z: Vec<f64>,
    phi: Vec<f64>,
    /// Per kind (probe, other, after the probe): [`Tails::exact`] on the z grid, each point
    /// computed when first read after its pools last changed (decisions read a few points;
    /// rebuilding the whole grid at every change took a tenth of a replay's time).
    grid: [Lazy<[f64; 2]>; POOLS / 2],
    /// Per kind: its pools' [`Shrink`] at their latest change; None before any.
    shrink: [Option<Shrink>; POOLS / 2],
    /// What the [`AFTER_PROBE`] pools shrink toward: the other candidates' cold pool as it
    /// was at the after-probe pools' latest change (both of the other candidates' pools
    /// then, and their [`Shrink`]), None when those had no runs yet then.
    after_prior: Option<([Vec<f64>; 2], Shrink)>,
    /// Per kind: the highest z-score its pools (and those it shrinks toward) hold, and its
    /// chances past it and the grid (every run in time), updated with `sorted`.
    past: [(f64, [f64; 2]); POOLS / 2],
}

/// The z grid [`Tails::chances`] interpolates on: from `Z_LO` in steps of `Z_STEP`, `Z_N`
/// points (to +12: stalls land far out). Decisions read chances every few frames for every
/// candidate; exact ones (a normal distribution function and four searches each) took 40 %
/// of a replay's time.
const Z_LO: f64 = -6.0;
const Z_STEP: f64 = 0.05;
const Z_N: usize = 361;

impl Tails {
    fn new(window: usize) -> Self {
        Tails {
            window,
            recent: Default::default(),
            live: Default::default(),
            sorted: Default::default(),
            pending: [0; POOLS],
            version: 0,
            z: (0..Z_N).map(|i| Z_LO + Z_STEP * i as f64).collect(),
            phi: (0..Z_N)
                .map(|i| normal_cdf(Z_LO + Z_STEP * i as f64))
                .collect(),
            grid: Default::default(),
            shrink: [None, None, None],
            after_prior: None,
            past: [(f64::NEG_INFINITY, [1.0; 2]); POOLS / 2],
        }
    }

    fn push(&mut self, pool: usize, z: f64) {
        if self.window == 0 || z.is_nan() {
            return;
        }
        let (r, live) = (&mut self.recent[pool], &mut self.live[pool]);
        let place = |live: &[f64], x: f64| live.partition_point(|v| v.total_cmp(&x).is_lt());
        r.push_back(z);
        if r.len() > self.window {
            // The oldest run leaves as this one enters: the runs between their places move
            // by one (one shift, not two of half the window each).
            let old = r.pop_front().expect("over a window of at least 1");
            let (i, j) = (place(live, old), place(live, z));
            if j <= i {
                live.copy_within(j..i, j + 1);
                live[j] = z;
            } else {
                live.copy_within(i + 1..j, i);
                live[j - 1] = z;
            }
        } else {
            live.insert(place(live, z), z);
        }
        self.pending[pool] += 1;
        if self.pending[pool] >= TAIL_BATCH {
            self.pending[pool] = 0;
            self.sorted[pool].clone_from(live);
            self.version += 1;
            // (Runs after the probe shrink toward the other candidates' cold ones as they
            // were at the after-probe pools' latest update: rebuilding those on every update
            // of the others cost a fifth of a replay's time.)
            let kind = pool - pool % 2;
            let n = |k: usize| self.sorted[k].len() as f64;
            self.shrink[kind / 2] = Some(Shrink::new(n(kind), n(kind + 1)));
            self.grid[kind / 2].clear(Z_N);
            if kind == AFTER_PROBE {
                self.after_prior = self.shrink[1]
                    .as_ref()
                    .map(|&sh| ([self.sorted[2].clone(), self.sorted[3].clone()], sh));
            }
            self.past = [0, 2, AFTER_PROBE].map(|kind| self.past_all(kind));
        }
    }

    /// [`Tails::past`] of `kind`.
    fn past_all(&self, kind: usize) -> (f64, [f64; 2]) {
        let top = |k: usize| self.sorted[k].last().map_or(f64::NEG_INFINITY, |&m| m);
        let all = |k: usize| (self.sorted[k].len() as f64, self.sorted[k].len() as f64);
        let (mut high, mut prior) = (top(kind).max(top(kind + 1)), 1.0);
        if kind == AFTER_PROBE {
            high = high.max(top(2)).max(top(3));
            prior = mix(all(2), all(3), 1.0)[1];
        }
        (high, mix(all(kind), all(kind + 1), prior))
    }

    /// [`Tails::exact`] at point `i` of the z grid for `kind`, whose pools have runs
    /// (`shrink`: theirs). A kind's pools shrink toward the normal distribution, or for
    /// [`AFTER_PROBE`], toward the other candidates' cold pool ([`Tails::after_prior`]).
    fn grid_point(&self, kind: usize, i: usize, shrink: &Shrink) -> [f64; 2] {
        let z = self.z[i];
        let below = |s: &[f64]| s.partition_point(|&v| v <= z) as f64;
        let phi = match &self.after_prior {
            Some(([s0, s1], sh)) if kind == AFTER_PROBE => {
                sh.mix(below(s0), below(s1), self.phi[i])[1]
            }
            _ => self.phi[i],
        };
        shrink.mix(
            below(&self.sorted[kind]),
            below(&self.sorted[kind + 1]),
            phi,
        )
    }

    /// The chance that a run of `pool` lands at or below z-score `z` (see [`Tails::chances`]).
    #[cfg(test)]
    fn chance(&self, pool: usize, z: f64) -> f64 {
        self.chances(pool - pool % 2, z)[pool % 2]
    }

    /// The chances that a run lands at or below z-score `z`, for both pools of `kind` (the
    /// even pool's index: warm, then cold): each pool's runs shrunk toward its kind's (probe
    /// or not, warm and cold together), shrunk in turn toward the predicted normal
    /// distribution, so that a pool with few runs (cold runs of the probe, say) borrows from
    /// its kind before falling back to the prediction.
    ///
    /// Interpolated on the z grid (exact outside it, and before any run of the kind).
    fn chances(&self, kind: usize, z: f64) -> [f64; 2] {
        let t = (z - Z_LO) / Z_STEP;
        let (high, past) = self.past[kind / 2];
        if t >= (Z_N - 1) as f64 && z >= high {
            // Past the grid (the normal chance is 1 there) and every run the pools hold:
            // every run counts as in time, without searching the pools.
            return past;
        }
        let Some(shrink) = &self.shrink[kind / 2] else {
            return self.exact(kind, z);
        };
        if !(t >= 0.0 && t < (Z_N - 1) as f64) {
            return self.exact(kind, z);
        }
        // (`t - i` is `t.fract()` for t >= 0, without the call to libm's trunc.)
        let i = t as usize;
        let f = t - i as f64;
        let point = |i: usize| self.grid[kind / 2].get(i, || self.grid_point(kind, i, shrink));
        let (a, b) = (point(i), point(i + 1));
        [a[0] + f * (b[0] - a[0]), a[1] + f * (b[1] - a[1])]
    }

    /// [`Tails::chances`] computed exactly.
    fn exact(&self, kind: usize, z: f64) -> [f64; 2] {
        let below = |s: &Vec<f64>| (s.partition_point(|&v| v <= z) as f64, s.len() as f64);
        let prior = if kind == AFTER_PROBE {
            self.exact(2, z)[1]
        } else {
            normal_cdf(z)
        };
        mix(
            below(&self.sorted[kind]),
            below(&self.sorted[kind + 1]),
            prior,
        )
    }
}

/// A kind's two pools' chances from (runs at or below z, runs) of each and the predicted
/// chance `phi`: each pool shrunk toward both together, those toward the prediction.
fn mix((b0, n0): (f64, f64), (b1, n1): (f64, f64), phi: f64) -> [f64; 2] {
    Shrink::new(n0, n1).mix(b0, b1, phi)
}

/// [`mix`] for pools of `n0` and `n1` runs, its divisions taken once (the tail grid's
/// points mix with the same pools until they change).
#[derive(Clone, Copy, Debug)]
struct Shrink {
    /// 1 / (n0 + n1 + prior), 1 / (n0 + prior), 1 / (n1 + prior).
    r: f64,
    r0: f64,
    r1: f64,
}

impl Shrink {
    fn new(n0: f64, n1: f64) -> Self {
        Shrink {
            r: 1.0 / (n0 + n1 + TAIL_PRIOR),
            r0: 1.0 / (n0 + TAIL_PRIOR),
            r1: 1.0 / (n1 + TAIL_PRIOR),
        }
    }

    fn mix(&self, b0: f64, b1: f64, phi: f64) -> [f64; 2] {
        let parent = (b0 + b1 + TAIL_PRIOR * phi) * self.r;
        [
            (b0 + TAIL_PRIOR * parent) * self.r0,
            (b1 + TAIL_PRIOR * parent) * self.r1,
        ]
    }
}

/// The index of the least of `v` (the first of equals; 0 when empty): the least value found
/// on four independent lanes, then its first position (one compare-and-branch chain over
/// every value took about a third of OPA's `observe` in a profile of the replay bench).
fn least(v: &[f64]) -> usize {
    let mut lanes = [f64::INFINITY; 4];
    let chunks = v.chunks_exact(4);
    let rest = chunks.remainder();
    for c in chunks {
        for k in 0..4 {
            lanes[k] = if c[k] < lanes[k] { c[k] } else { lanes[k] };
        }
    }
    let low = rest
        .iter()
        .chain(&lanes)
        .fold(f64::INFINITY, |a, &x| if x < a { x } else { a });
    first_at(v, low)
}

/// How many lanes a [`sweep`] runs on.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Lanes {
    /// One grid point at a time (what the compiler makes of it: SSE2's two lanes at most).
    Scalar,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

impl Lanes {
    /// Every width this CPU has, narrowest first.
    fn available() -> Vec<Lanes> {
        let mut v = vec![Lanes::Scalar];
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2") {
                v.push(Lanes::Avx2);
            }
            if std::arch::is_x86_feature_detected!("avx512f") {
                v.push(Lanes::Avx512);
            }
        }
        v
    }

    /// The widest this CPU has (a load tracker asks once, not per run).
    fn widest() -> Lanes {
        *Lanes::available()
            .last()
            .expect("one at a time is always there")
    }
}

/// The load tracker's per-run sweep over its grid: run `t`'s misfit at every grid point
/// into `fresh` (from `fit`: median log latency, 1 / sigma and ln sigma per grid point), and
/// the window's misfit `m` moved by it less `take`; returns where the least of the new `m`
/// first is (what [`least`] finds), found in the same pass: each lane keeps its least and
/// the step it first was at. With AVX-512 or AVX2 where the CPU has it: eight or four lanes
/// instead of two, the same arithmetic in the same order (no fused multiply-add), so the
/// same numbers to the bit; on `lanes`, one of [`Lanes::available`]. (Misfits, sums and the
/// search for the least took about a quarter of the replay bench's time, a second pass for
/// the least's place a twentieth.)
fn sweep<F: AsRef<[f64]>>(
    lanes: Lanes,
    fit: &[F; 3],
    t: f64,
    take: &[f64],
    fresh: &mut [f64],
    m: &mut [f64],
) -> usize {
    let n = m.len();
    let [mu, inv, ls] = fit;
    let g = Grid {
        mu: &mu.as_ref()[..n],
        inv: &inv.as_ref()[..n],
        ls: &ls.as_ref()[..n],
        take: &take[..n],
    };
    let fresh = &mut fresh[..n];
    match lanes {
        Lanes::Scalar => {
            let (low, at) = sweep_from(&g, t, fresh, m, 0, f64::INFINITY, 0);
            found(m, low, at)
        }
        // SAFETY: the CPU has AVX2 / AVX-512F (the caller's promise), all these ask of it;
        // the slices are of one length.
        #[cfg(target_arch = "x86_64")]
        Lanes::Avx2 => unsafe { simd::sweep_avx2(&g, t, fresh, m) },
        #[cfg(target_arch = "x86_64")]
        Lanes::Avx512 => unsafe { simd::sweep_avx512(&g, t, fresh, m) },
    }
}

/// A sweep's inputs per grid point, all of one length.
struct Grid<'a> {
    mu: &'a [f64],
    inv: &'a [f64],
    ls: &'a [f64],
    take: &'a [f64],
}

/// [`sweep`] one grid point at a time from `start`, with the least found so far (`low`,
/// first at `at`); returns the least and its first place.
#[inline(always)]
fn sweep_from(
    g: &Grid,
    t: f64,
    fresh: &mut [f64],
    m: &mut [f64],
    start: usize,
    mut low: f64,
    mut at: usize,
) -> (f64, usize) {
    for i in start..m.len() {
        fresh[i] = misfit(t, g.mu[i], g.inv[i], g.ls[i]);
        m[i] += fresh[i] - g.take[i];
        if m[i] < low {
            low = m[i];
            at = i;
        }
    }
    (low, at)
}

/// The first place of the least of `m` from a sweep that found `low` first at `at`: where
/// nothing was below infinity, the first infinity (else 0), as [`least`] has it.
fn found(m: &[f64], low: f64, at: usize) -> usize {
    if low == f64::INFINITY {
        first_at(m, low)
    } else {
        at
    }
}

#[cfg(target_arch = "x86_64")]
mod simd {
    //! [`super::sweep`] on four or eight lanes: per lane, its least so far (NaN never less)
    //! and the step of its first place; then the earliest place of the least of the lanes.
    use super::{Grid, Z2_CAP, found, sweep_from};
    use std::arch::x86_64::*;

    /// The least of `lanes` (starting from the remainder's `low`, first at `at`) and its
    /// first place, `step[k] * W + k` in lane k.
    fn merge<const W: usize>(lanes: [f64; W], step: [i64; W], low: f64, at: usize) -> (f64, usize) {
        let least = lanes.iter().fold(low, |a, &x| if x < a { x } else { a });
        let first = (0..W)
            .filter(|&k| lanes[k] == least)
            .map(|k| step[k] as usize * W + k)
            .min();
        // (Lanes come before the remainder.)
        (least, first.unwrap_or(at))
    }

    #[target_feature(enable = "avx2")]
    pub(super) fn sweep_avx2(g: &Grid, t: f64, fresh: &mut [f64], m: &mut [f64]) -> usize {
        const W: usize = 4;
        let n = m.len();
        let whole = n - n % W;
        let (tv, cap, half) = (
            _mm256_set1_pd(t),
            _mm256_set1_pd(Z2_CAP),
            _mm256_set1_pd(0.5),
        );
        let mut lanes = _mm256_set1_pd(f64::INFINITY);
        let mut step = _mm256_setzero_si256();
        let mut j = _mm256_setzero_si256();
        let one = _mm256_set1_epi64x(1);
        for i in (0..whole).step_by(W) {
            // SAFETY: i + W <= whole <= the length of every slice (one length: `Grid`).
            unsafe {
                let z = _mm256_mul_pd(
                    _mm256_sub_pd(tv, _mm256_loadu_pd(g.mu.as_ptr().add(i))),
                    _mm256_loadu_pd(g.inv.as_ptr().add(i)),
                );
                let f = _mm256_add_pd(
                    _mm256_loadu_pd(g.ls.as_ptr().add(i)),
                    _mm256_mul_pd(half, _mm256_min_pd(_mm256_mul_pd(z, z), cap)),
                );
                _mm256_storeu_pd(fresh.as_mut_ptr().add(i), f);
                let mp = m.as_mut_ptr().add(i);
                let mv = _mm256_add_pd(
                    _mm256_loadu_pd(mp),
                    _mm256_sub_pd(f, _mm256_loadu_pd(g.take.as_ptr().add(i))),
                );
                _mm256_storeu_pd(mp, mv);
                let less = _mm256_cmp_pd::<_CMP_LT_OQ>(mv, lanes);
                lanes = _mm256_min_pd(mv, lanes);
                step = _mm256_castpd_si256(_mm256_blendv_pd(
                    _mm256_castsi256_pd(step),
                    _mm256_castsi256_pd(j),
                    less,
                ));
                j = _mm256_add_epi64(j, one);
            }
        }
        let (mut l, mut s) = ([0.0; W], [0i64; W]);
        // SAFETY: both arrays hold W = 4 lanes of 64 bits.
        unsafe {
            _mm256_storeu_pd(l.as_mut_ptr(), lanes);
            _mm256_storeu_si256(s.as_mut_ptr().cast(), step);
        }
        let (low, at) = sweep_from(g, t, fresh, m, whole, f64::INFINITY, 0);
        let (low, at) = merge(l, s, low, at);
        found(m, low, at)
    }

    #[target_feature(enable = "avx512f")]
    pub(super) fn sweep_avx512(g: &Grid, t: f64, fresh: &mut [f64], m: &mut [f64]) -> usize {
        const W: usize = 8;
        let n = m.len();
        let whole = n - n % W;
        let (tv, cap, half) = (
            _mm512_set1_pd(t),
            _mm512_set1_pd(Z2_CAP),
            _mm512_set1_pd(0.5),
        );
        let mut lanes = _mm512_set1_pd(f64::INFINITY);
        let mut step = _mm512_setzero_si512();
        let mut j = _mm512_setzero_si512();
        let one = _mm512_set1_epi64(1);
        for i in (0..whole).step_by(W) {
            // SAFETY: i + W <= whole <= the length of every slice (one length: `Grid`).
            unsafe {
                let z = _mm512_mul_pd(
                    _mm512_sub_pd(tv, _mm512_loadu_pd(g.mu.as_ptr().add(i))),
                    _mm512_loadu_pd(g.inv.as_ptr().add(i)),
                );
                let f = _mm512_add_pd(
                    _mm512_loadu_pd(g.ls.as_ptr().add(i)),
                    _mm512_mul_pd(half, _mm512_min_pd(_mm512_mul_pd(z, z), cap)),
                );
                _mm512_storeu_pd(fresh.as_mut_ptr().add(i), f);
                let mp = m.as_mut_ptr().add(i);
                let mv = _mm512_add_pd(
                    _mm512_loadu_pd(mp),
                    _mm512_sub_pd(f, _mm512_loadu_pd(g.take.as_ptr().add(i))),
                );
                _mm512_storeu_pd(mp, mv);
                let less = _mm512_cmp_pd_mask::<_CMP_LT_OQ>(mv, lanes);
                lanes = _mm512_min_pd(mv, lanes);
                step = _mm512_mask_mov_epi64(step, less, j);
                j = _mm512_add_epi64(j, one);
            }
        }
        let (mut l, mut s) = ([0.0; W], [0i64; W]);
        // SAFETY: both arrays hold W = 8 lanes of 64 bits.
        unsafe {
            _mm512_storeu_pd(l.as_mut_ptr(), lanes);
            _mm512_storeu_si512(s.as_mut_ptr().cast(), step);
        }
        let (low, at) = sweep_from(g, t, fresh, m, whole, f64::INFINITY, 0);
        let (low, at) = merge(l, s, low, at);
        found(m, low, at)
    }
}

/// One run's misfit (negative log-likelihood up to a constant) at a grid point: log latency
/// `t` against the point's median log latency `mu`, 1 / sigma `inv` and ln sigma `ls`, the
/// squared z-score capped at [`Z2_CAP`].
#[inline(always)]
fn misfit(t: f64, mu: f64, inv: f64, ls: f64) -> f64 {
    let z = (t - mu) * inv;
    ls + 0.5 * (z * z).min(Z2_CAP)
}

/// The index of the first of `v` equal to `low` (0 when none): with the least of `v`, what
/// [`least`] finds.
fn first_at(v: &[f64], low: f64) -> usize {
    v.iter().position(|&x| x == low).unwrap_or(0)
}

/// Numbers in 64-byte-aligned blocks of eight, a cache line each (as a slice of its
/// length): the load sweep's wide loads and stores then never straddle two lines (on a
/// replay bench's grid, unaligned ones took a third longer).
#[derive(Clone, Debug, Default)]
struct Aligned {
    blocks: Vec<Block>,
    len: usize,
}

#[derive(Clone, Copy, Debug, Default)]
#[repr(C, align(64))]
struct Block([f64; 8]);

impl Aligned {
    /// `len` zeros.
    fn new(len: usize) -> Self {
        Aligned {
            blocks: vec![Block::default(); len.div_ceil(8)],
            len,
        }
    }
}

impl FromIterator<f64> for Aligned {
    fn from_iter<I: IntoIterator<Item = f64>>(it: I) -> Self {
        let v: Vec<f64> = it.into_iter().collect();
        let mut a = Aligned::new(v.len());
        a.copy_from_slice(&v);
        a
    }
}

impl std::ops::Deref for Aligned {
    type Target = [f64];
    fn deref(&self) -> &[f64] {
        // SAFETY: a `Block` is eight f64s and nothing else (repr(C), size 64), so the blocks
        // are `8 * blocks.len() >= len` initialised f64s in a row, borrowed with `self`.
        unsafe { std::slice::from_raw_parts(self.blocks.as_ptr().cast::<f64>(), self.len) }
    }
}

impl std::ops::DerefMut for Aligned {
    fn deref_mut(&mut self) -> &mut [f64] {
        // SAFETY: as in `deref`, borrowed mutably with `self`.
        unsafe { std::slice::from_raw_parts_mut(self.blocks.as_mut_ptr().cast::<f64>(), self.len) }
    }
}

impl AsRef<[f64]> for Aligned {
    fn as_ref(&self) -> &[f64] {
        self
    }
}

/// Grid points of the load estimate within the calibrated load range.
const LOAD_STEPS: usize = 41;
/// Beyond the calibrated range, the grid continues as the top load's latencies scaled up
/// to 16 times, in steps of this factor.
const SCALE_STEP: f64 = 1.1;
/// Largest squared z-score one run adds to the load estimate's misfit: a rare stall under
/// any load must not outvote a window of ordinary runs.
const Z2_CAP: f64 = 16.0;
/// How much less misfit (nats over the window) another state needs for the load estimate to
/// move there.
const MOVE_MISFIT: f64 = 0.25;
/// Stretch states: the idle distribution's median × k, k in steps of this factor...
const STRETCH_STEP: f64 = 1.15;
/// ...and its 95th percentile × k × r, r one of these.
const STRETCH_TAILS: [f64; 6] = [1.0, 1.4, 2.0, 2.8, 4.0, 5.6];

/// The device's current state, estimated by maximum likelihood from the most recent runs of
/// any candidates. Each grid point is a state with every candidate's latency distribution:
/// the profile's load levels, with median and 95th percentile interpolated in log between
/// them, and above them the top load's scaled up (a slower device, or heavier contention);
/// and (`idle_stretch`) the idle distributions stretched, median × k and 95th percentile ×
/// k × r, alike for every candidate. Live contention need not look like the calibration
/// run's: on the shipped profile, calibrated load slows the smallest candidates far more than
/// the large ones (the probe's median 0.23 ms idle, 0.54 ms at full load, with a 95th
/// percentile of 3.3 ms), while live under half load every candidate ran 1.7-2.0 x its idle
/// median and 3.2-3.5 x its idle 95th percentile; read through the load levels alone, the
/// probe's runs made the large candidates look two to three times as spread as they were.
/// Never below the idle level: small candidates' runs finishing faster than calibrated say
/// little about the large ones (fixed per-run costs weigh more in small ones). Latency is
/// taken log-normal, and the estimate is the state under which the window's compute times
/// are most likely. Unlike a slowdown ratio, this knows that contention adds stalls of
/// similar length to every candidate, so a stall of a small candidate does not make the
/// large ones look slower than they are.
struct LoadTracker {
    /// (candidate, ln compute ms) of the most recent runs, each with its misfit at every
    /// grid point (what its leaving the window takes away).
    runs: std::collections::VecDeque<((usize, f64), Aligned)>,
    /// The buffer of the latest run to leave the window (the next run's misfits go there).
    spare: Option<Aligned>,
    /// Per candidate: every grid point's median log latency, 1 / sigma and ln sigma (apart,
    /// so that the per-run sweep over the grid vectorises).
    fit: Vec<[Aligned; 3]>,
    /// Per candidate and grid point: the latency distribution, and its [`z_sigma`].
    stats: Vec<Vec<LatencyStats>>,
    sigma: Vec<Vec<f64>>,
    /// Per grid point: the window's misfit (negative log-likelihood up to a constant).
    misfit: Aligned,
    /// A run's misfits before any run left the window: zero at every grid point.
    zeros: Aligned,
    /// Runs pushed since the misfit was last summed from scratch.
    pushed: u32,
    /// The widest lanes this CPU sweeps on.
    lanes: Lanes,
    /// The estimate: the grid point of the least misfit, kept while none has
    /// [`MOVE_MISFIT`] less; None before any run.
    best: Option<usize>,
}

impl LoadTracker {
    fn new(p: &Profile, idle_stretch: f64) -> Self {
        let (lo, hi) = (p.loads[0], *p.loads.last().expect("validated profile"));
        // (load, scale) of every grid point.
        let mut grid: Vec<(f64, f64)> = Vec::new();
        let steps = if hi > lo { LOAD_STEPS } else { 1 };
        for g in 0..steps {
            grid.push((lo + (hi - lo) * g as f64 / (steps - 1).max(1) as f64, 1.0));
        }
        let mut k = SCALE_STEP;
        while k <= 16.0 {
            grid.push((hi, k));
            k *= SCALE_STEP;
        }
        // (median factor, 95th percentile factor) of every stretch state.
        let mut stretches: Vec<(f64, f64)> = Vec::new();
        let mut k = 1.0;
        while idle_stretch > 0.0 && k <= idle_stretch.max(1.0) + 1e-9 {
            stretches.extend(STRETCH_TAILS.iter().map(|&r| (k, k * r)));
            k *= STRETCH_STEP;
        }
        // Log-linear interpolation of f between load levels.
        let at = |c: usize, x: f64, f: fn(&LatencyStats) -> f64| -> f64 {
            let l = &p.latency[c];
            if l.len() == 1 {
                return f(&l[0]).max(1e-9).ln();
            }
            let i = p.loads.partition_point(|&v| v <= x).clamp(1, l.len() - 1);
            let (x0, x1) = (p.loads[i - 1], p.loads[i]);
            let (y0, y1) = (f(&l[i - 1]).max(1e-9).ln(), f(&l[i]).max(1e-9).ln());
            let t = if x1 > x0 {
                ((x - x0) / (x1 - x0)).clamp(0.0, 1.0)
            } else {
                0.0
            };
            y0 + t * (y1 - y0)
        };
        let stats: Vec<Vec<LatencyStats>> = (0..p.candidates.len())
            .map(|c| {
                let mut row: Vec<LatencyStats> = grid
                    .iter()
                    .map(|&(x, k)| {
                        let p50 = at(c, x, |l| l.p50_ms).exp() * k;
                        LatencyStats {
                            mean_ms: at(c, x, |l| l.mean_ms).exp() * k,
                            p50_ms: p50,
                            p95_ms: (at(c, x, |l| l.p95_ms).exp() * k).max(p50),
                        }
                    })
                    .collect();
                let idle = p.latency[c][0];
                row.extend(stretches.iter().map(|&(k50, k95)| {
                    let p50 = idle.p50_ms * k50;
                    LatencyStats {
                        mean_ms: idle.mean_ms * k50,
                        p50_ms: p50,
                        p95_ms: (idle.p95_ms * k95).max(p50),
                    }
                }));
                row
            })
            .collect();
        let fit = stats
            .iter()
            .map(|row| {
                let sigma = |l: &LatencyStats| l.log_sigma().max(0.02);
                [
                    row.iter().map(|l| l.p50_ms.ln()).collect(),
                    row.iter().map(|l| 1.0 / sigma(l)).collect(),
                    row.iter().map(|l| sigma(l).ln()).collect(),
                ]
            })
            .collect();
        let sigma = stats
            .iter()
            .map(|row| row.iter().map(z_sigma).collect())
            .collect();
        let states = stats.first().map_or(0, Vec::len);
        LoadTracker {
            runs: std::collections::VecDeque::new(),
            spare: None,
            fit,
            stats,
            sigma,
            misfit: Aligned::new(states),
            zeros: Aligned::new(states),
            pushed: 0,
            lanes: Lanes::widest(),
            best: None,
        }
    }

    /// Records a run; keeps the most recent `window` (at least one).
    #[cfg(test)]
    fn push(&mut self, candidate: usize, compute_ms: f64, window: usize) {
        self.push_ln(candidate, ln_ms(compute_ms), window);
    }

    /// [`LoadTracker::push`] with the run's [`ln_ms`] (none when not finite: a run of no
    /// time, or of none measured).
    fn push_ln(&mut self, candidate: usize, ln_ms: f64, window: usize) {
        if candidate >= self.fit.len() || !ln_ms.is_finite() {
            return;
        }
        let run = (candidate, ln_ms);
        // The leaving run's misfits are taken away as they were added (and its buffer
        // holds the new run's).
        let oldest = if self.runs.len() >= window.max(1) {
            self.runs.pop_front().map(|(_, m)| m)
        } else {
            None
        };
        let mut fresh = self
            .spare
            .take()
            .unwrap_or_else(|| Aligned::new(self.misfit.len()));
        let take = oldest.as_deref().unwrap_or(&self.zeros);
        let mut best = sweep(
            self.lanes,
            &self.fit[run.0],
            run.1,
            take,
            &mut fresh,
            &mut self.misfit,
        );
        self.spare = oldest;
        self.runs.push_back((run, fresh));
        // Only when the window shrank (never while OPA runs: its window is fixed).
        while self.runs.len() > window.max(1) {
            let (_, oldest) = self.runs.pop_front().expect("over a window of at least 1");
            self.misfit
                .iter_mut()
                .zip(oldest.iter())
                .for_each(|(m, b)| *m -= b);
            best = least(&self.misfit);
        }
        self.pushed += 1;
        if self.pushed >= 4096 {
            // Re-sum now and then so that rounding does not accumulate over long streams.
            self.pushed = 0;
            self.misfit.iter_mut().for_each(|m| *m = 0.0);
            for (_, m) in &self.runs {
                self.misfit
                    .iter_mut()
                    .zip(m.iter())
                    .for_each(|(s, m)| *s += m);
            }
            best = least(&self.misfit);
        }
        // The estimate moves only to a state that explains the window clearly better
        // (neighbouring states fit about as well; every move makes OPA recompute chances).
        self.best = Some(match self.best {
            Some(cur) if self.misfit[best] > self.misfit[cur] - MOVE_MISFIT => cur,
            _ => best,
        });
    }

    /// The grid point that best explains the window, or None before any run.
    fn estimate(&self) -> Option<usize> {
        self.best
    }

    /// Candidate `c`'s latency at grid point `g`.
    fn latency(&self, c: usize, g: usize) -> LatencyStats {
        self.stats[c][g]
    }

    /// [`z_score`] of a time whose [`ln_ms`] is `ln` in candidate `c`'s latency at grid
    /// point `g`, from the kept median logarithm and sigma (decisions take the logarithm of
    /// a budget once, not once per candidate; a run's serves its z-score and the load
    /// estimate).
    #[inline]
    fn z_of_ln(&self, c: usize, g: usize, ln: f64) -> f64 {
        (ln - self.fit[c][0][g]) / self.sigma[c][g]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::synthetic;

    // Synthetic latency: mean (0.2 + 0.3 c)(1 + 2 load), median 0.9 × mean, p95 1.6 × mean.
    fn median(p: &Profile, c: usize, load: usize) -> f64 {
        p.latency[c][load].p50_ms
    }

    #[test]
    fn least_is_the_first_of_the_smallest() {
        assert_eq!(least(&[]), 0);
        assert_eq!(least(&[3.0]), 0);
        // On a lane, in the remainder, tied across lanes and with the remainder.
        assert_eq!(least(&[5.0, 4.0, 1.0, 7.0, 2.0, 1.5, 9.0, 8.0]), 2);
        assert_eq!(
            least(&[5.0, 4.0, 3.0, 7.0, 2.0, 1.5, 9.0, 8.0, 6.0, 0.5]),
            9
        );
        assert_eq!(least(&[2.0, 4.0, 3.0, 1.0, 1.0, 0.0, 9.0, 0.0, 0.0]), 5);
        let v: Vec<f64> = (0..190).map(|i| ((i * 37) % 101) as f64).collect();
        let first = (0..v.len()).fold(0, |b, g| if v[g] < v[b] { g } else { b });
        assert_eq!(least(&v), first);
    }

    #[test]
    fn load_is_estimated_from_runs_of_any_candidate() {
        let p = synthetic(6, 2, &[0.0, 0.5, 1.0]);
        let mut t = LoadTracker::new(&p, 0.0);
        assert_eq!(t.estimate(), None);
        // Small and large candidates at their medians under load 0.5.
        for i in 0..12 {
            let c = if i % 3 == 0 { 5 } else { 0 };
            t.push(c, median(&p, c, 1), 12);
        }
        let g = t.estimate().unwrap();
        let got = t.latency(3, g).p50_ms;
        assert!((got / median(&p, 3, 1) - 1.0).abs() < 0.05, "{got}");
        // The window forgets: idle runs replace them.
        for _ in 0..12 {
            t.push(0, median(&p, 0, 0), 12);
        }
        let got = t.latency(3, t.estimate().unwrap()).p50_ms;
        assert!((got / median(&p, 3, 0) - 1.0).abs() < 0.05, "{got}");
    }

    #[test]
    fn tails_move_from_the_prediction_to_the_measured_runs() {
        // No runs, or no window: the normal distribution the prediction assumes.
        let mut t = Tails::new(64);
        assert!((t.chance(3, 1.645) - 0.95).abs() < 1e-3);
        let mut off = Tails::new(0);
        off.push(3, 3.0);
        assert!((off.chance(3, 1.645) - 0.95).abs() < 1e-3);
        // Cold runs of other candidates two standard deviations slower than predicted: a
        // budget at the predicted 95th percentile is missed by all of them. Their kind (other
        // candidates, warm and cold): 16 x 0.95 / 80 = 0.19; the pool: 16 x 0.19 / 80.
        for _ in 0..64 {
            t.push(3, 2.0);
        }
        let kind = 16.0 * 0.95 / 80.0;
        let got = t.chance(3, 1.645);
        assert!((got - 16.0 * kind / 80.0).abs() < 1e-3, "{got}");
        assert!(t.chance(3, 2.5) > 0.99);
        // Warm runs of other candidates, none measured yet, borrow from their kind; the
        // probe's pools are of another kind.
        assert!((t.chance(2, 1.645) - kind).abs() < 1e-3);
        assert!((t.chance(0, 1.645) - 0.95).abs() < 1e-3);
        assert!((t.chance(1, 1.645) - 0.95).abs() < 1e-3);
        // The window keeps the most recent runs.
        for _ in 0..64 {
            t.push(3, 0.0);
        }
        assert!(t.chance(3, 1.645) > 0.98);
        // Interpolated on the z grid, chances are within a hair of the exact ones.
        for z in [-7.0, -1.0, 0.0, 0.03, 1.645, 2.0, 4.4, 11.99, 13.0] {
            for kind in [0, 2] {
                let (a, b) = (t.chances(kind, z), t.exact(kind, z));
                assert!(
                    (a[0] - b[0]).abs() < 0.02 && (a[1] - b[1]).abs() < 0.02,
                    "{z}"
                );
            }
        }
        // A correction updates in batches: a run alone does not change what decisions read.
        let v = t.version;
        t.push(3, 9.0);
        assert_eq!(t.version, v);
    }

    #[test]
    fn a_run_pools_by_probe_or_not_and_by_what_ran_before() {
        let p = synthetic(6, 2, &[0.0, 0.5, 1.0]);
        let model = crate::predict::fit(crate::predict::Variant::Linear, &p, &p.conditions());
        let mut o = Opa::new("opa", OpaParams::default(), &p, model.unwrap()).unwrap();
        // Nothing ran yet: every run would be cold.
        assert_eq!((o.pool(0, false), o.pool(3, false)), (1, 3));
        o.last_run = Some(3);
        assert_eq!(
            (o.pool(0, false), o.pool(3, false), o.pool(4, false)),
            (1, 2, 3)
        );
        o.last_run = Some(0);
        assert_eq!((o.pool(0, false), o.pool(3, false)), (0, 3));
        // Right after the probe's run on the same frame: a pool of its own (the probe itself
        // is never run twice on a frame).
        assert_eq!(o.pool(3, true), AFTER_PROBE + 1);
        assert_eq!(o.pool(0, true), 0);
    }

    /// The tail grid as a full sweep through the sorted pools computed it before the grid
    /// was lazy: kind `kind`'s points, shrinking toward `prior` at each.
    fn swept_grid(t: &Tails, kind: usize, prior: &[f64]) -> Vec<[f64; 2]> {
        let (s0, s1) = (&t.sorted[kind], &t.sorted[kind + 1]);
        let shrink = Shrink::new(s0.len() as f64, s1.len() as f64);
        let (mut i0, mut i1) = (0, 0);
        (0..Z_N)
            .map(|i| {
                let z = Z_LO + Z_STEP * i as f64;
                while i0 < s0.len() && s0[i0] <= z {
                    i0 += 1;
                }
                while i1 < s1.len() && s1[i1] <= z {
                    i1 += 1;
                }
                shrink.mix(i0 as f64, i1 as f64, prior[i])
            })
            .collect()
    }

    #[test]
    fn lazy_tail_grid_points_equal_a_full_sweep_to_the_bit() {
        let mut t = Tails::new(64);
        let mut h = 7u64;
        let mut draw = || {
            h = h
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((h >> 11) as f64 / (1u64 << 53) as f64) * 16.0 - 7.0
        };
        let grid_of = |t: &Tails, kind: usize| -> Vec<[f64; 2]> {
            let sh = t.shrink[kind / 2].expect("pools updated");
            (0..Z_N)
                .map(|i| t.grid[kind / 2].get(i, || t.grid_point(kind, i, &sh)))
                .collect()
        };
        // The other candidates' pools first, then the after-probe ones: these shrink toward
        // the other candidates' cold pool as it was then...
        for pool in [2, 3, 2, 0, 1, 3, AFTER_PROBE + 1, AFTER_PROBE] {
            for _ in 0..TAIL_BATCH * 3 {
                t.push(pool, draw());
            }
        }
        let other = swept_grid(&t, 2, &t.phi);
        let prior: Vec<f64> = other.iter().map(|g| g[1]).collect();
        let after = swept_grid(&t, AFTER_PROBE, &prior);
        assert_eq!(grid_of(&t, 0), swept_grid(&t, 0, &t.phi));
        assert_eq!(grid_of(&t, 2), other);
        assert_eq!(grid_of(&t, AFTER_PROBE), after);
        // ...and keep it while the other candidates' pools change, until their own do.
        for _ in 0..TAIL_BATCH {
            t.push(3, 5.0);
        }
        assert_ne!(grid_of(&t, 2), other);
        assert_eq!(grid_of(&t, AFTER_PROBE), after);
        for _ in 0..TAIL_BATCH {
            t.push(AFTER_PROBE + 1, draw());
        }
        let prior: Vec<f64> = swept_grid(&t, 2, &t.phi).iter().map(|g| g[1]).collect();
        assert_eq!(
            grid_of(&t, AFTER_PROBE),
            swept_grid(&t, AFTER_PROBE, &prior)
        );
        // The windows stay sorted as a sort of the most recent runs would have them.
        for pool in 0..POOLS {
            let mut want: Vec<f64> = t.recent[pool].iter().copied().collect();
            want.sort_by(f64::total_cmp);
            assert_eq!(t.live[pool], want, "pool {pool}");
        }
    }

    #[test]
    fn the_load_sweep_matches_plain_arithmetic_to_the_bit() {
        let n = 190;
        let v = |k: u64| -> Vec<f64> {
            (0..n as u64)
                .map(|g| ((g * 7919 + k * 104_729) % 1000) as f64 / 137.0 - 2.0)
                .collect()
        };
        let fit = [v(1), v(2).iter().map(|x| x.abs() + 0.5).collect(), v(3)];
        let take = v(4);
        let t = 0.37;
        // Every width this CPU has, on the grid and on shorter ones (remainders of 0-7).
        for lanes in Lanes::available() {
            for len in [190, 184, 17, 7, 1] {
                let mut m = v(5)[..len].to_vec();
                let mut want = m.clone();
                let mut fresh = vec![0.0; len];
                let at = sweep(lanes, &fit, t, &take, &mut fresh, &mut m);
                for g in 0..len {
                    let z = (t - fit[0][g]) * fit[1][g];
                    let f = fit[2][g] + 0.5 * (z * z).min(Z2_CAP);
                    assert_eq!(fresh[g].to_bits(), f.to_bits(), "{lanes:?} {len} {g}");
                    want[g] += f - take[g];
                }
                assert_eq!(m, want, "{lanes:?} {len}");
                assert_eq!(at, least(&m), "{lanes:?} {len}");
            }
        }
    }

    #[test]
    fn aligned_numbers_are_a_slice_of_their_length_on_cache_lines() {
        for len in [0, 1, 7, 8, 9, 190] {
            let mut a: Aligned = (0..len).map(|i| i as f64 * 0.5).collect();
            assert_eq!(a.len(), len);
            assert_eq!(a.as_ptr() as usize % 64, 0);
            assert!(a.iter().enumerate().all(|(i, &x)| x == i as f64 * 0.5));
            a.iter_mut().for_each(|x| *x += 1.0);
            assert_eq!(
                a.last().copied(),
                len.checked_sub(1).map(|i| i as f64 * 0.5 + 1.0)
            );
            assert!(Aligned::new(len).iter().all(|&x| x == 0.0));
        }
    }

    #[test]
    fn a_full_window_stays_sorted_as_runs_leave_and_enter() {
        // Runs entering before, after and at the place of the one leaving, repeats, and
        // infinities; after every push the window is a sort of the most recent runs.
        let mut t = Tails::new(5);
        let runs = [
            3.0,
            1.0,
            4.0,
            1.0,
            5.0,
            9.0,
            2.0,
            6.0,
            5.0,
            3.0,
            5.0,
            5.0,
            5.0,
            -1.0,
            8.0,
            9.0,
            f64::NEG_INFINITY,
            7.0,
            9.0,
            3.0,
            2.0,
            3.0,
            8.0,
            4.0,
            6.0,
            2.0,
            6.0,
            4.0,
            3.0,
        ];
        for (k, &z) in runs.iter().enumerate() {
            t.push(2, z);
            let mut want: Vec<f64> = t.recent[2].iter().copied().collect();
            want.sort_by(f64::total_cmp);
            assert_eq!(t.live[2], want, "after run {k}");
            assert_eq!(t.recent[2].len(), (k + 1).min(5));
        }
    }

    #[test]
    fn the_load_sweep_finds_the_first_least_as_least_does() {
        // A sweep that adds nothing (every misfit 0: zero medians, 1 / sigma and ln sigma)
        // leaves the misfits as given, so that ties, NaN and infinities can be set up.
        let check = |m: Vec<f64>| {
            let n = m.len();
            let fit = [vec![0.0; n], vec![0.0; n], vec![0.0; n]];
            for lanes in Lanes::available() {
                let (mut swept, mut fresh) = (m.clone(), vec![0.0; n]);
                let at = sweep(lanes, &fit, 0.3, &vec![0.0; n], &mut fresh, &mut swept);
                assert_eq!(at, least(&swept), "{lanes:?} {m:?}");
            }
        };
        let (inf, nan) = (f64::INFINITY, f64::NAN);
        check(vec![3.0, 1.0, 1.0, 2.0]);
        check(vec![5.0, 2.0, 7.0, 2.0, 2.0, 9.0, 1.0, 1.0, 1.0]);
        check(vec![4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0]);
        check(vec![9.0, 8.0, 7.0, 6.0, 1.0, 6.0, 7.0, 1.0, 1.0, 0.5]);
        check(vec![nan, 2.0, nan, 1.0, nan, 1.0]);
        check(vec![inf, inf, inf, inf, inf]);
        check(vec![nan, inf, nan, inf]);
        check(vec![nan, nan, nan, nan, nan]);
        check(vec![f64::NEG_INFINITY, 3.0, f64::NEG_INFINITY, 1.0]);
        check(vec![2.0]);
        check(vec![]);
        check(vec![1.0, 0.0, -0.0, 0.0, -0.0, 2.0, 0.0, 0.0, -0.0, 3.0]);
        check(vec![5.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0, 4.0, 6.0, 4.0]);
        check(vec![nan, nan, nan, nan, nan, nan, nan, nan, nan, 1.0]);
        // Every length up to three whole lanes (of eight) and a remainder, with the least
        // repeated in several lanes and the remainder.
        for n in 1..=31 {
            for first in 0..n {
                let m: Vec<f64> = (0..n)
                    .map(|g| {
                        if g >= first && (g - first) % 3 == 0 {
                            -1.0
                        } else {
                            g as f64
                        }
                    })
                    .collect();
                check(m);
            }
        }
    }

    #[test]
    fn z_scores_from_a_logarithm_taken_once_match_the_plain_ones() {
        let p = synthetic(4, 2, &[0.0, 0.5, 1.0]);
        let t = LoadTracker::new(&p, 4.0);
        for c in 0..4 {
            for g in [0, 7, 40, 60, t.misfit.len() - 1] {
                for ms in [0.05, 0.4, 1.0, 3.3, 25.0] {
                    let want = z_score(ms, &t.latency(c, g));
                    let got = t.z_of_ln(c, g, ln_ms(ms));
                    assert!(
                        (got - want).abs() <= 1e-12 * want.abs().max(1.0),
                        "{got} {want}"
                    );
                }
                for ms in [0.0, -1.0] {
                    assert_eq!(t.z_of_ln(c, g, ln_ms(ms)), f64::NEG_INFINITY);
                    assert_eq!(z_score(ms, &t.latency(c, g)), f64::NEG_INFINITY);
                }
            }
        }
    }

    #[test]
    fn the_pick_over_the_candidates_found_is_the_pick_over_all() {
        // Near-ties (within 1e-12) go to the first: a fold in candidate order, which the
        // bits of the candidates found must keep.
        let value = [
            f64::MIN,
            0.5,
            0.5 + 0.8e-12,
            f64::MIN,
            0.5 + 1.6e-12,
            0.2,
            f64::MIN,
            0.5 + 1.6e-12,
        ];
        let seen = (0..value.len())
            .filter(|&c| value[c] > f64::MIN)
            .fold(0u64, |b, c| b | 1 << c);
        assert_eq!(most_valued_of(seen, &value), (4, 0.5 + 1.6e-12));
        assert_eq!(
            most_valued_of(seen, &value),
            most_valued(value.len(), |c| value[c])
        );
        assert_eq!(most_valued_of(1 << 5, &value), (5, 0.2));
    }

    #[test]
    fn lazy_values_are_computed_once_per_clear() {
        let mut l: Lazy<f64> = Lazy::default();
        l.clear(3);
        let calls = std::cell::Cell::new(0);
        let f = |v: f64| {
            calls.set(calls.get() + 1);
            v
        };
        assert_eq!(l.get(1, || f(2.5)), 2.5);
        assert_eq!(l.get(1, || f(9.0)), 2.5);
        assert_eq!(calls.get(), 1);
        l.clear(3);
        assert_eq!(l.get(1, || f(9.0)), 9.0);
        assert_eq!(calls.get(), 2);
    }

    #[test]
    fn runs_after_the_probe_borrow_from_the_other_candidates_cold_runs() {
        let mut t = Tails::new(64);
        // Before any run: the prediction.
        assert!((t.chance(AFTER_PROBE + 1, 1.645) - 0.95).abs() < 1e-3);
        // Other candidates' cold runs all two standard deviations slow: runs after the probe,
        // none measured yet, take their pool's chance (16 x 0.19 / 80, see above).
        for _ in 0..64 {
            t.push(3, 2.0);
        }
        let cold = t.chance(3, 1.645);
        assert!((cold - 16.0 * (16.0 * 0.95 / 80.0) / 80.0).abs() < 1e-3);
        let after = t.chance(AFTER_PROBE + 1, 1.645);
        assert!((after - cold).abs() < 1e-3, "{after} vs {cold}");
        // Runs after the probe all on time: their own pool takes over.
        for _ in 0..64 {
            t.push(AFTER_PROBE + 1, 0.0);
        }
        assert!(t.chance(AFTER_PROBE + 1, 1.645) > 0.75);
        assert!(
            (t.chance(3, 1.645) - cold).abs() < 1e-9,
            "the other pools keep theirs"
        );
        for z in [-1.0, 0.5, 1.645, 3.0] {
            let (a, b) = (t.chances(AFTER_PROBE, z), t.exact(AFTER_PROBE, z));
            assert!((a[1] - b[1]).abs() < 0.02, "{z}: {a:?} vs {b:?}");
        }
    }

    #[test]
    fn a_slowdown_the_calibrated_loads_do_not_show_is_read_as_a_stretch() {
        // Calibrated contention slows the smallest candidate 3x and 5x, the others 1.2x and
        // 1.5x; live, every candidate runs at twice its idle latency.
        let mut p = synthetic(6, 2, &[0.0, 0.5, 1.0]);
        for c in 0..6 {
            let idle = p.latency[c][0];
            for (g, f) in [(1, [3.0, 1.2]), (2, [5.0, 1.5])] {
                let f = f[usize::from(c > 0)];
                p.latency[c][g] = LatencyStats {
                    mean_ms: idle.mean_ms * f,
                    p50_ms: idle.p50_ms * f,
                    p95_ms: idle.p95_ms * f,
                };
            }
        }
        let predicted = |stretch: f64| {
            let mut t = LoadTracker::new(&p, stretch);
            for i in 0..12 {
                let c = if i % 2 == 0 { 0 } else { 5 };
                t.push(c, 2.0 * median(&p, c, 0), 12);
            }
            t.latency(3, t.estimate().unwrap()).p50_ms / median(&p, 3, 0)
        };
        let (with, without) = (predicted(16.0), predicted(0.0));
        assert!((with / 2.0 - 1.0).abs() < 0.06, "{with}");
        // The calibrated load levels alone cannot fit both and miss the others' slowdown.
        assert!(without < 1.6, "{without}");
    }

    #[test]
    fn one_stall_does_not_make_the_device_look_loaded() {
        let p = synthetic(6, 2, &[0.0, 0.5, 1.0]);
        let mut t = LoadTracker::new(&p, 0.0);
        for i in 0..12 {
            let stall = if i == 6 { 20.0 } else { 1.0 };
            t.push(0, median(&p, 0, 0) * stall, 12);
        }
        let got = t.latency(5, t.estimate().unwrap()).p50_ms;
        assert!(got < 1.15 * median(&p, 5, 0), "{got}");
    }

    #[test]
    fn beyond_the_calibrated_load_latencies_scale_up() {
        let p = synthetic(6, 2, &[0.0, 0.5, 1.0]);
        let mut t = LoadTracker::new(&p, 0.0);
        for _ in 0..12 {
            t.push(1, 3.0 * median(&p, 1, 2), 12);
        }
        let got = t.latency(4, t.estimate().unwrap()).p50_ms;
        assert!((got / (3.0 * median(&p, 4, 2)) - 1.0).abs() < 0.1, "{got}");
        // Faster than idle stays idle: small runs do not speak for large ones.
        let mut t = LoadTracker::new(&p, 0.0);
        for _ in 0..12 {
            t.push(0, 0.5 * median(&p, 0, 0), 12);
        }
        let got = t.latency(5, t.estimate().unwrap()).p50_ms;
        assert!((got / median(&p, 5, 0) - 1.0).abs() < 1e-9, "{got}");
        // Runs that are not timings are ignored.
        t.push(0, f64::NAN, 12);
        t.push(99, 1.0, 12);
        assert_eq!(t.runs.len(), 12);
    }
}
