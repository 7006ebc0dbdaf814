//! One deadline of a run: every selector's lane (its selector, its target and its place in
//! the stream), the turns they take on blocks of frames, and their rows collected.

use super::{MIN_FRAMES, RunError, bad};
use crate::deployment::Deployment;
use crate::engine::{Replayer, Target};
use crate::frames::Stream;
use crate::live::{LiveTarget, RunCache};
use crate::load::{CpuInjector, GPU_MATRIX, GpuInjector};
use crate::profile_target::{FrameFacts, ProfileTarget};
use crate::scenario::{self, SelectorSpec};
use indicatif::{ProgressBar, ProgressStyle};
use opa_predictors::predict::Variant;
use opa_predictors::profile::Profile;
use opa_predictors::selectors::{FrameTruth, Inputs};
use opa_predictors::{Phase, Selector};
use opa_reports::{Event, Sample, SelectorSummary, SummaryInputs, summarize};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// The live network or the calibration profile, for one selector.
pub(super) enum AnyTarget<'a> {
    Live(LiveTarget<'a>),
    Profile(ProfileTarget<'a>),
}

impl AnyTarget<'_> {
    pub(super) fn as_dyn(&mut self) -> &mut dyn Target {
        match self {
            AnyTarget::Live(t) => t,
            AnyTarget::Profile(t) => t,
        }
    }

    pub(super) fn pause(&mut self) {
        if let AnyTarget::Live(t) = self {
            t.pause();
        }
    }

    pub(super) fn resume(&mut self) {
        if let AnyTarget::Live(t) = self {
            t.resume();
        }
    }
}

/// One selector's part of a deadline's interleaved replay.
pub(super) struct Lane<'a> {
    pub(super) si: usize,
    pub(super) selector: Box<dyn Selector>,
    pub(super) target: AnyTarget<'a>,
    pub(super) run: Replayer,
}

/// Everything a selector may be built from.
pub(super) struct SelectorInputs<'a> {
    pub(super) profile: Option<&'a Arc<Profile>>,
    /// Live, the profile with every candidate's latency timed on this machine at the start of
    /// the run: what an oracle with `timed-latency = 1` plans with.
    pub(super) timed: Option<&'a Arc<Profile>>,
    pub(super) truth: &'a [FrameTruth],
    pub(super) seed: u64,
}

pub(super) fn build_selector(
    spec: &SelectorSpec,
    index: usize,
    inp: &SelectorInputs,
) -> Result<Box<dyn Selector>, RunError> {
    let inputs = Inputs {
        profile: inp.profile,
        oracle_profile: inp.timed,
        truth: inp.truth,
        seed: inp.seed.wrapping_add(index as u64),
    };
    let variant = spec.predictor.unwrap_or(Variant::Linear);
    spec.kind
        .build(&spec.name, |k| Some(spec.get(k)), variant, &inputs)
        .map_err(bad)
}

/// The co-runners a live scenario's trace asks for: CPU spinners where it sets `cpu-load`,
/// the GPU co-runner where it sets `gpu-load` on `tch-cuda` (GPU load means something only
/// where inference runs on the GPU). Dropping them stops them.
pub(super) struct CoRunners {
    pub(super) cpu: Option<CpuInjector>,
    pub(super) gpu: Option<GpuInjector>,
}

impl CoRunners {
    pub(super) fn start(sc: &scenario::Scenario, device: &burn::tensor::Device) -> CoRunners {
        let points = &sc.workload.points;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        CoRunners {
            cpu: points
                .iter()
                .any(|p| p.cpu_load > 0.0)
                .then(|| CpuInjector::start(cores, sc.seed_load)),
            gpu: (sc.backend == crate::backend::Backend::TchCuda
                && points.iter().any(|p| p.gpu_load > 0.0))
            .then(|| GpuInjector::start(device.clone(), GPU_MATRIX)),
        }
    }

    /// A live target over the scenario's candidates and frames, under these co-runners.
    pub(super) fn target<'a>(
        &'a self,
        sc: &'a scenario::Scenario,
        dep: &'a Deployment,
        st: &'a Stream,
        device: &'a burn::tensor::Device,
    ) -> LiveTarget<'a> {
        LiveTarget::new(
            &dep.plans,
            &dep.cfg,
            &st.frames,
            device,
            self.cpu.as_ref(),
            &sc.workload,
            sc.slowdown,
        )
        .with_gpu(self.gpu.as_ref())
    }
}

/// Everything the selectors' turns on a deadline play in: the scenario, its candidates and
/// frames, the device (live) or the profile (replay), and how selectors are built.
pub(super) struct World<'a> {
    pub(super) sc: &'a scenario::Scenario,
    pub(super) dep: &'a Deployment,
    pub(super) st: &'a Stream,
    /// Live: the device inference runs on; None in a replay.
    pub(super) device: Option<&'a burn::tensor::Device>,
    pub(super) profile: Option<&'a Arc<Profile>>,
    pub(super) facts: &'a [FrameFacts],
    /// The trace on the profile's load axis.
    pub(super) profile_workload: &'a scenario::Workload,
    pub(super) inputs: SelectorInputs<'a>,
    pub(super) replay_seed: u64,
    /// Live: selectors share identical runs.
    pub(super) shared: bool,
    /// A progress bar on the terminal (live).
    pub(super) print: bool,
    pub(super) stop: &'a AtomicBool,
}

/// What the deadlines played so far produced.
pub(super) struct Played {
    pub(super) samples: Vec<Sample>,
    pub(super) events: Vec<Event>,
    pub(super) summaries: Vec<SelectorSummary>,
    /// Every selector played every frame so far.
    pub(super) complete: bool,
    /// Live runs timed, and runs handed from one selector to another.
    pub(super) runs_measured: u64,
    pub(super) runs_shared: u64,
}

impl Default for Played {
    fn default() -> Self {
        Played {
            samples: Vec::new(),
            events: Vec::new(),
            summaries: Vec::new(),
            complete: true,
            runs_measured: 0,
            runs_shared: 0,
        }
    }
}

impl World<'_> {
    /// The selectors `mine` (indices into the scenario's) at `deadline`, taking turns on
    /// blocks of `block` frames, into `played`; false when Ctrl-C stopped them.
    pub(super) fn play(
        &self,
        deadline: f64,
        mine: &[usize],
        block: usize,
        played: &mut Played,
    ) -> Result<bool, RunError> {
        let (sc, slots) = (self.sc, &self.st.slots);
        let live = self.device.is_some();
        let co = self.device.map(|dev| (dev, CoRunners::start(sc, dev)));
        let cache = RunCache::default();
        let mut lanes = Vec::with_capacity(mine.len());
        for &si in mine {
            let target = match (&co, self.profile) {
                (Some((dev, co)), _) => AnyTarget::Live(
                    co.target(sc, self.dep, self.st, dev)
                        .with_cache(self.shared.then_some(&cache)),
                ),
                (None, Some(p)) => AnyTarget::Profile(ProfileTarget::new(
                    p,
                    self.facts,
                    self.profile_workload,
                    self.replay_seed,
                    sc.slowdown,
                )),
                (None, None) => unreachable!("replay mode always has a profile"),
            };
            lanes.push(Lane {
                si,
                selector: build_selector(&sc.selectors[si], si, &self.inputs)?,
                target,
                run: Replayer::new(&sc.selectors[si].name, deadline),
            });
        }
        let bar = if live && self.print {
            ProgressBar::new(slots.len() as u64)
        } else {
            ProgressBar::hidden()
        };
        bar.set_style(
            ProgressStyle::with_template("{prefix:>28} [{bar:30}] {pos}/{len} frames {msg}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_prefix(match lanes.as_slice() {
            [one] => format!("{} @ {deadline} ms", sc.selectors[one.si].name),
            many => format!("{} selectors @ {deadline} ms", many.len()),
        });
        let (mut from, mut turn, mut misses) = (0, 0, 0usize);
        let mut stopped = false;
        while from < slots.len() && !stopped {
            let until = (from + block).min(slots.len());
            // Who goes first rotates, so no selector always follows the same one.
            let n = lanes.len();
            for j in 0..n {
                let lane = &mut lanes[(j + turn) % n];
                let name = &sc.selectors[lane.si].name;
                lane.target.resume();
                let done = lane
                    .run
                    .advance(
                        slots,
                        until,
                        &self.dep.infos,
                        lane.target.as_dyn(),
                        lane.selector.as_mut(),
                        self.stop,
                        &mut |r: &Sample| {
                            if r.phase != Phase::Probe {
                                misses += usize::from(!r.deadline_met);
                            }
                        },
                    )
                    .map_err(|e| RunError::Failed(format!("{name} @ {deadline} ms: {e}")))?;
                lane.target.pause();
                if !done {
                    stopped = true;
                    break;
                }
            }
            bar.set_position(until as u64);
            bar.set_message(format!("{misses} missed"));
            from = until;
            turn += 1;
        }
        bar.finish_and_clear();
        let gpu = co.as_ref().is_some_and(|(_, c)| c.gpu.is_some());
        for lane in &mut lanes {
            self.collect(lane, deadline, gpu, played);
        }
        Ok(!stopped)
    }

    /// One lane's rows at `deadline` into samples, events and its summary (`gpu`: a GPU
    /// co-runner ran, whose achieved load is checked).
    fn collect(&self, lane: &mut Lane, deadline: f64, gpu: bool, played: &mut Played) {
        let (sc, slots) = (self.sc, &self.st.slots);
        let spec = &sc.selectors[lane.si];
        let lane_complete = lane.run.next == slots.len();
        let (requested, achieved, gpu_achieved) = match &mut lane.target {
            AnyTarget::Live(t) => {
                played.runs_shared += t.shared_runs as u64;
                played.runs_measured += (t.requested.len() - t.shared_runs) as u64;
                let l = t.load_account();
                (l.requested, l.cpu_achieved, l.gpu_achieved)
            }
            AnyTarget::Profile(t) => {
                let mean = t.mean_load();
                (mean, mean, 0.0)
            }
        };
        let start = played.samples.len();
        let mut prev: Option<&str> = None;
        for r in &lane.run.rows {
            let event = |kind: &str, from: Option<&str>, to: Option<&str>| Event {
                selector: spec.name.clone(),
                deadline_ms: deadline,
                frame: r.frame,
                time_s: r.start_s,
                kind: kind.into(),
                from: from.map(str::to_string),
                to: to.map(str::to_string),
            };
            match r.phase {
                Phase::Probe => played.events.push(event("probe", Some(&r.candidate), None)),
                Phase::Skip => played.events.push(event("skip", None, None)),
                Phase::Serve => {
                    if prev.is_some_and(|p| p != r.candidate) {
                        played
                            .events
                            .push(event("switch", prev, Some(&r.candidate)));
                    }
                    prev = Some(&r.candidate);
                }
            }
        }
        played.samples.append(&mut lane.run.rows);
        let mut summary = summarize(
            &played.samples[start..],
            &SummaryInputs {
                selector: &spec.name,
                deadline_ms: deadline,
                emulated: sc.slowdown != 1.0,
                min_frames: MIN_FRAMES,
                load_requested: requested,
                load_achieved: achieved,
                complete: lane_complete,
            },
        );
        if gpu {
            // Requested GPU duty cycle over the replay's frames vs what the co-runner did.
            let wanted = slots
                .iter()
                .map(|s| sc.workload.at(s.arrival_s).gpu_load)
                .sum::<f64>()
                / slots.len().max(1) as f64;
            if (gpu_achieved - wanted).abs() > 0.15 {
                summary.verdict.verdict = "INVALID".into();
                summary.verdict.reasons.push(format!(
                    "GPU load injector missed its target: requested {wanted:.2} on average, achieved {gpu_achieved:.2}"
                ));
            }
        }
        played.summaries.push(summary);
        played.complete &= lane_complete;
    }
}
