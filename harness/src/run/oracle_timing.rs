//! The live oracle's latency tables, timed on this machine in the run's own conditions
//! before the clock starts ([`time_for_oracle`]), and the record of them a run directory
//! keeps ([`TimedLatency`], `oracle-latency.json`).

use super::lanes::CoRunners;
use super::{RunError, bad};
use crate::deployment::Deployment;
use crate::engine::Target;
use crate::frames::Stream;
use crate::scenario;
use opa_predictors::profile::{LatencyStats, Profile};

/// About how many runs the live oracle's latency tables are timed from.
const ORACLE_TIMED_RUNS: usize = 6_000;

/// Fewest timed runs a (candidate, load level) table cell is estimated from; a cell with
/// fewer takes the nearest level's.
const ORACLE_MIN_CELL: usize = 8;

/// `profile` with every candidate's latency tables timed on this machine in the run's own
/// conditions: a [`LiveTarget`] under the scenario's injected load plays each candidate on
/// every k-th frame of the stream at the frame's moment of the trace (k such that about
/// [`ORACLE_TIMED_RUNS`] runs are timed in all; one candidate after another, so each run
/// after the first is warm, as the oracle's are within a window). Each run counts at the
/// profile's load level nearest the trace's load then; a level the trace does not visit takes
/// the nearest visited level's figures. Returns the timed profile and the runs per cell.
pub(super) fn time_for_oracle(
    sc: &scenario::Scenario,
    dep: &Deployment,
    st: &Stream,
    profile: &Profile,
    device: &burn::tensor::Device,
    profile_workload: &scenario::Workload,
) -> Result<(Profile, Vec<Vec<usize>>), RunError> {
    let (n, cands) = (st.slots.len(), dep.plans.len());
    let first = st
        .slots
        .first()
        .ok_or_else(|| bad("the stream has no frames to time the candidates on"))?;
    let every = (n * cands).div_ceil(ORACLE_TIMED_RUNS).max(1);
    let co = CoRunners::start(sc, device);
    let mut target = co.target(sc, dep, st, device);
    target.resume();
    let frames: Vec<usize> = (0..n).step_by(every).collect();
    let bar = crate::progress::bar((cands * frames.len()) as u64, "oracle");
    bar.set_message(format!(
        "timing every candidate on 1 frame in {every} (the oracle plans with this machine's latencies)"
    ));
    let levels = &profile.loads;
    // The level nearest `to` among those `ok` accepts (the lower one on a tie).
    let nearest = |to: f64, ok: &dyn Fn(usize) -> bool| {
        (0..levels.len())
            .filter(|&j| ok(j))
            .min_by(|&a, &b| (levels[a] - to).abs().total_cmp(&(levels[b] - to).abs()))
    };
    let mut latency = Vec::with_capacity(cands);
    let mut counts = Vec::with_capacity(cands);
    for c in 0..cands {
        // One untimed run first: every timed run then follows a run of the same candidate.
        target.run(c, 0, first.arrival_s).map_err(bad)?;
        let mut times: Vec<Vec<f64>> = vec![Vec::new(); levels.len()];
        for &f in &frames {
            let at = st.slots[f].arrival_s;
            let r = target.run(c, f, at).map_err(bad)?;
            let level = nearest(profile_workload.at(at).cpu_load, &|_| true).unwrap_or(0);
            times[level].push(r.compute_ms);
            bar.inc(1);
        }
        counts.push(times.iter().map(Vec::len).collect::<Vec<_>>());
        let cells: Vec<Option<LatencyStats>> = times
            .iter_mut()
            .map(|t| (t.len() >= ORACLE_MIN_CELL).then(|| latency_stats(t)))
            .collect();
        let row = (0..levels.len())
            .map(|i| {
                // The nearest level with enough runs, else the profile's own figure.
                nearest(levels[i], &|j| cells[j].is_some())
                    .and_then(|j| cells[j])
                    .unwrap_or(profile.latency[c][i])
            })
            .collect();
        latency.push(row);
    }
    target.pause();
    bar.finish_and_clear();
    Ok((
        Profile {
            latency,
            ..profile.clone()
        },
        counts,
    ))
}

/// Mean, median and 95th percentile of `times` (sorted in place; not empty), by the rule
/// calibration uses.
fn latency_stats(times: &mut [f64]) -> LatencyStats {
    let l = opa_supernet::eval::latency_of(times);
    LatencyStats {
        mean_ms: l.mean_ms,
        p50_ms: l.median_ms,
        p95_ms: l.p95_ms,
    }
}

/// What the live oracle planned with ([`ORACLE_LATENCY_FILE`]): per candidate and load
/// level, its latency timed on this machine and the profile's.
#[derive(serde::Serialize)]
pub(super) struct TimedLatency {
    /// The profile's load levels.
    pub(super) loads: Vec<f64>,
    /// The emulated slow-down the timed latencies include (1 = none).
    slowdown: f64,
    /// Per load level, the median over the candidates of timed over profiled median latency.
    pub(super) median_p50_ratio: Vec<f64>,
    candidates: Vec<TimedCandidate>,
}

#[derive(serde::Serialize)]
struct TimedCandidate {
    id: String,
    /// Per load level: timed on this machine during the run.
    timed: Vec<LatencyStats>,
    /// Per load level: the runs timed there (fewer than [`ORACLE_MIN_CELL`]: the nearest
    /// level's figures stand in).
    timed_runs: Vec<usize>,
    /// Per load level: the profile's.
    profile: Vec<LatencyStats>,
}

impl TimedLatency {
    pub(super) fn of(
        profile: &Profile,
        timed: &Profile,
        runs: &[Vec<usize>],
        slowdown: f64,
    ) -> TimedLatency {
        let median_p50_ratio = (0..profile.loads.len())
            .map(|i| {
                let mut r: Vec<f64> = (0..profile.candidates.len())
                    .map(|c| timed.latency[c][i].p50_ms / profile.latency[c][i].p50_ms)
                    .collect();
                r.sort_by(f64::total_cmp);
                r[r.len() / 2]
            })
            .collect();
        TimedLatency {
            loads: profile.loads.clone(),
            slowdown,
            median_p50_ratio,
            candidates: profile
                .candidates
                .iter()
                .enumerate()
                .map(|(c, a)| TimedCandidate {
                    id: a.id.clone(),
                    timed: timed.latency[c].clone(),
                    timed_runs: runs[c].clone(),
                    profile: profile.latency[c].clone(),
                })
                .collect(),
        }
    }
}

impl TimedLatency {
    /// One line on how far the timed latencies are from the profile's, and a note when the
    /// other selectors plan with latencies this far off (`secs`: how long the timing took).
    pub(super) fn print(&self, secs: f64) {
        println!(
            "oracle: candidates timed on this machine in {secs:.1} s; median latency against the profile's: {}",
            self.loads
                .iter()
                .zip(&self.median_p50_ratio)
                .map(|(l, r)| format!("x{r:.2} at load {l}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        if self
            .median_p50_ratio
            .iter()
            .any(|r| !(0.67..=1.5).contains(r))
        {
            println!(
                "note: the profile's latencies are off for this machine, and the other selectors plan with them (`opa calibrate --latency-only PROFILE --out NEW` re-times them)"
            );
        }
    }
}
