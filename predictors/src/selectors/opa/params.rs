//! OPA's parameters: the scenario keys of a selector of kind `opa` (kebab-case), their
//! defaults, ranges and what each means.

crate::selector_params! {
    /// `opa`'s parameters (scenario keys in kebab-case).
    pub struct OpaParams {
        /// Frames the probe runs on per probing round.
        probe_frames: u32 = 3, "probe-frames", 1..=1000;
        /// Frames between periodic probing rounds.
        reprobe_every: u32 = 50, "reprobe-every", 1..=1_000_000;
        /// Share of the deadline the predicted latency distribution is held against (the rest
        /// is left for queueing and the tails; per frame, on a frame the probe ran on, a larger
        /// candidate is held against this share less the probe's time).
        margin: f64 = 0.9, "margin", 0.05..=1.0;
        /// Re-probe early when the serving candidate's measured latency (moving average) is off
        /// its prediction by more than this share (0.5 = 50 %).
        latency_drift: f64 = 0.5, "latency-drift", 0.01..=10.0;
        /// Re-probe early when the serving candidate's mean confidence moves by more than this
        /// from its value after the switch.
        confidence_drift: f64 = 0.1, "confidence-drift", 0.001..=1.0;
        /// Fewest frames between two probing rounds (rounds), or between two probe runs sent by
        /// a changed answer (per frame).
        min_gap: u32 = 10, "min-gap", 1..=1_000_000;
        /// Most recent runs (probe and served) the device's load is estimated from; 0 = read
        /// latency from the probe's own runs with the predictor's latency model instead.
        load_window: u32 = 12, "load-window", 0..=1000;
        /// Serve another candidate than the probe (per frame), or switch away from the serving
        /// candidate (rounds), only when it is predicted to get at least this share more frames
        /// right within the deadline (0.02 = 2 points): predictions err by a point or two, and
        /// chasing the noisy maximum serves worse candidates.
        min_gain: f64 = 0.02, "min-gain", 0.0..=1.0;
        /// Re-plan every this many served frames with the latest round's content signals and
        /// the current load estimate, without probing (latency is seen on every run, content only
        /// by the probe); 0 = plan only after probing rounds.
        replan_every: u32 = 5, "replan-every", 0..=1_000_000;
        /// Per-frame mode: the most frames one probe reading of a scene is trusted for; the probe
        /// runs again sooner when the served answers say the scene changed. 0 = probing rounds
        /// as in the paper (`probe_frames` frames every `reprobe_every`, their mean signals read
        /// by the predictor).
        evidence_frames: u32 = 20, "evidence-frames", 0..=1_000_000;
        /// Runs per pool (the probe's, every other candidate's; each right after a run of the
        /// same candidate or of another) whose place in their predicted latency distribution
        /// corrects the predicted chances of finishing in time: the calibrated tables are timed
        /// warm, in a loop, and a sub-network served now and then runs slower than that, the more
        /// right after another one. 0 = take the predicted distributions as they are.
        tail_window: u32 = 64, "tail-window", 0..=1000;
        /// Besides the profile's load levels, the load estimate considers the idle latency
        /// distributions stretched: every candidate's median × k for k from 1 up to this factor,
        /// its 95th percentile × k × 1 to 5 (contention on a device unlike the calibration run's
        /// slows every sub-network alike and widens its tail). 0 = the profile's load levels only.
        idle_stretch: f64 = 16.0, "idle-stretch", 0.0..=100.0;
        /// Per-frame mode: serve the frames after the probe's on the profile's other-view tables
        /// (the probe's confidence on another frame of the scene; [`Profile::view_table`](crate::profile::Profile::view_table)) when
        /// the profile has them; false = the same-image tables on every frame.
        view_table: bool = true, "view-table", 0..=1;
        /// Per-frame mode: where the probe is the pick, run it as a probe first (its answer serves
        /// the frame at no extra cost), and serve a larger candidate in the time left when its
        /// answer on this very frame says one would add `min_gain`; false = serve the probe
        /// outright on the scene's reading.
        cascade: bool = true, "cascade", 0..=1;
        /// On a frame the probe ran on, a larger candidate runs with the probe's answer in hand
        /// ([`Decision::Escalate`](crate::Decision::Escalate)): if it is late, the probe's answer serves at the deadline. A
        /// larger candidate there is then weighed by its expected gain over the probe's answer
        /// in the whole time left, and on the scene's other frames, probing first and escalating
        /// competes with serving a larger candidate outright. Only on frames that did not wait
        /// for the device: a late escalation keeps it busy past the deadline, which costs the
        /// frames queued behind it. false = a larger candidate after the probe serves whatever
        /// its latency (held against `margin` x the deadline less the probe's time).
        fallback: bool = true, "fallback", 0..=1;
        /// With `fallback`: the least predicted chance of finishing in time a larger candidate
        /// needs to run after the probe (a late one serves nothing, and its run is decision
        /// overhead).
        escalate_chance: f64 = 0.8, "escalate-chance", 0.0..=1.0;
        /// Per-frame mode, on the scene's frames after the one the probe read (the other-view
        /// tables): a larger candidate's top-1 in a confidence bin is the probe's plus the lower
        /// quartile ([`GAIN_QUANTILE`]) of its gain over the probe across the profile's content
        /// conditions ([`Profile::robust_view_table`](crate::profile::Profile::robust_view_table)), not the pooled gain: where a reading is
        /// carried over to other frames, a gain that only some conditions show is not counted
        /// on. On the probe's own frame the pooled same-image table stands. false = the pooled
        /// tables on every frame.
        robust_gain: bool = true, "robust-gain", 0..=1;
        /// Drop a frame ([`Decision::Skip`](crate::Decision::Skip)) that has waited for the device as long as its
        /// deadline or longer before anything ran on it: no run can serve it in time any more,
        /// and any run would delay the frames queued after it. Frames wait only where the
        /// device cannot keep up with the stream (at 10 frames per second never). false = run
        /// every frame however late.
        skip_late: bool = true, "skip-late", 0..=1;
        /// Per-frame mode: weigh the profile's content conditions, in every per-frame table, by
        /// how likely the probe's recent confidence readings are under each
        /// ([`ContentBelief`](crate::condition::ContentBelief): about this many readings remembered, at most one per `min_gap`
        /// frames), so that under a persistent condition (fog at severity 5 throughout) a bin's
        /// row is that condition's, not the pool of all. 0 = pool every condition alike.
        content_window: u32 = 8, "content-window", 0..=1000;
    }
}

/// The quantile of a candidate's gain over the probe across content conditions that
/// `robust_gain` counts on.
pub const GAIN_QUANTILE: f64 = 0.25;
