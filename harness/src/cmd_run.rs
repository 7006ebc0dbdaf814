//! `opa run FILE`: replay a scenario live, every selector on the same frames and load, into a
//! run directory. `opa replay --profile P FILE`: the same with outcomes drawn from a
//! calibration profile instead of running the network.

use crate::bad;
use anyhow::{Context as _, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use opa_harness::deployment::{self, Deployment};
use opa_harness::engine::{Replayer, SampleRow, Target};
use opa_harness::frames::Stream;
use opa_harness::live::{LiveTarget, RunCache};
use opa_harness::load::{CpuInjector, GPU_MATRIX, GpuInjector};
use opa_harness::profile_target::{ProfileTarget, truth};
use opa_harness::scenario::{self, SelectorSpec};
use opa_harness::stress::{ORACLE_SHARE, OVERHEAD_SHARE, Roles};
use opa_predictors::predict::{Variant, fit};
use opa_predictors::profile::{LatencyStats, Profile};
use opa_predictors::selectors::*;
use opa_predictors::{Phase, Selector};
use opa_reports::compare::{CompareConfig, paired_top1};
use opa_reports::{
    Event, MachineInfo, NO_ANSWER, ORACLE_LATENCY_FILE, RunSummary, Sample, SelectorSummary,
    SummaryInputs, fill_regret, summarize, write_json, write_jsonl, write_samples,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Args)]
pub struct RunArgs {
    /// Scenario file.
    file: PathBuf,
    /// Deadlines to sweep, ms (comma-separated; default: the scenario's requirement.deadline-ms).
    #[arg(long, value_delimiter = ',')]
    deadline_ms: Vec<f64>,
    /// Run directory (default: the scenario's output.dir).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Replace a previous run in the run directory.
    #[arg(long)]
    force: bool,
    /// Run only shard I of N (`--shard 2/4`) of the (deadline x selector) grid: item k of the
    /// grid (deadlines ascending, selectors in file order) belongs to shard k mod N + 1. Join
    /// the shards' run directories with `opa merge`.
    #[arg(long, value_parser = parse_shard)]
    shard: Option<(usize, usize)>,
    /// Selectors take turns every N frames: each plays N frames on its own timeline, then
    /// the next plays the same N under the same injected load, so slow drifts of the machine
    /// reach all selectors alike (live runs; replays give the same result for any N). 0 plays
    /// each selector through the whole stream in turn. A shard interleaves its own selectors.
    #[arg(long, default_value_t = DEFAULT_INTERLEAVE, value_name = "N")]
    interleave: usize,
    /// Measure every run anew. By default (live runs), a selector that runs the candidate
    /// another selector already ran on the same frame, at the same moment of the trace and
    /// from the same warm or cold state, shares that measurement (same distribution, less
    /// noise in the differences between selectors; replays share draws the same way).
    #[arg(long)]
    independent_runs: bool,
}

/// Frames per selector turn in a run (`--interleave`).
const DEFAULT_INTERLEAVE: usize = 25;

impl RunArgs {
    /// A whole, unsharded run of `file` at `deadlines` into `out` (replacing a run there),
    /// interleaved as `opa run` does by default.
    pub fn whole(file: PathBuf, deadlines: Vec<f64>, out: PathBuf) -> Self {
        RunArgs {
            file,
            deadline_ms: deadlines,
            out: Some(out),
            force: true,
            shard: None,
            interleave: DEFAULT_INTERLEAVE,
            independent_runs: false,
        }
    }
}

fn parse_shard(s: &str) -> Result<(usize, usize), String> {
    let (i, n) = s
        .split_once('/')
        .ok_or_else(|| format!("{s:?}: expected I/N, e.g. 1/4"))?;
    let (i, n): (usize, usize) = (
        i.trim()
            .parse()
            .map_err(|_| format!("{s:?}: I is not a number"))?,
        n.trim()
            .parse()
            .map_err(|_| format!("{s:?}: N is not a number"))?,
    );
    if n == 0 || i == 0 || i > n {
        return Err(format!("{s:?}: need 1 <= I <= N"));
    }
    Ok((i, n))
}

#[derive(Args)]
pub struct ReplayArgs {
    /// Calibration profile to draw outcomes from (default: the scenario's `profile`).
    #[arg(long)]
    profile: Option<PathBuf>,
    #[command(flatten)]
    run: RunArgs,
}

/// Fewer served frames than this per selector make a run INVALID.
pub const MIN_FRAMES: usize = 100;

/// The live network or the calibration profile, for one selector.
enum AnyTarget<'a> {
    Live(LiveTarget<'a>),
    Profile(ProfileTarget<'a>),
}

impl AnyTarget<'_> {
    fn as_dyn(&mut self) -> &mut dyn Target {
        match self {
            AnyTarget::Live(t) => t,
            AnyTarget::Profile(t) => t,
        }
    }

    fn pause(&mut self) {
        if let AnyTarget::Live(t) = self {
            t.pause();
        }
    }

    fn resume(&mut self) {
        if let AnyTarget::Live(t) = self {
            t.resume();
        }
    }
}

/// One selector's part of a deadline's interleaved replay.
struct Lane<'a> {
    si: usize,
    selector: Box<dyn Selector>,
    target: AnyTarget<'a>,
    run: Replayer,
}

/// Everything a selector may be built from.
struct SelectorInputs<'a> {
    profile: Option<&'a Arc<Profile>>,
    /// Live, the profile with every candidate's latency timed on this machine at the start of
    /// the run: what an oracle with `timed-latency = 1` plans with.
    timed: Option<&'a Arc<Profile>>,
    truth: &'a [FrameTruth],
    seed: u64,
}

fn build_selector(
    spec: &SelectorSpec,
    index: usize,
    inp: &SelectorInputs,
) -> Result<Box<dyn Selector>> {
    let u = |k: &str| spec.get(k) as u32;
    let profile = || {
        inp.profile.ok_or_else(|| {
            bad(format!(
                "selector {} needs a calibration profile",
                spec.name
            ))
        })
    };
    Ok(match spec.kind.as_str() {
        "fixed-largest" => Box::new(FixedLargest),
        "fixed-smallest" => Box::new(FixedSmallest),
        "random" => Box::new(RandomSelector::new(
            inp.seed.wrapping_add(index as u64),
            u("switch-every"),
        )),
        "opa" => {
            let p = profile()?;
            let variant = spec.predictor.unwrap_or(Variant::Linear);
            let model = fit(variant, p, &p.conditions()).map_err(bad)?;
            let params = OpaParams {
                probe_frames: u("probe-frames"),
                reprobe_every: u("reprobe-every"),
                margin: spec.get("margin"),
                latency_drift: spec.get("latency-drift"),
                confidence_drift: spec.get("confidence-drift"),
                min_gap: u("min-gap"),
                load_window: u("load-window"),
                min_gain: spec.get("min-gain"),
                replan_every: u("replan-every"),
                evidence_frames: u("evidence-frames"),
                tail_window: u("tail-window"),
                idle_stretch: spec.get("idle-stretch"),
                view_table: u("view-table") == 1,
                cascade: u("cascade") == 1,
                fallback: u("fallback") == 1,
                escalate_chance: spec.get("escalate-chance"),
                robust_gain: u("robust-gain") == 1,
                skip_late: u("skip-late") == 1,
                content_window: u("content-window"),
            };
            Box::new(
                Opa::new(&spec.name, params, p, model)
                    .map_err(|e| bad(format!("selector {}: {e}", spec.name)))?,
            )
        }
        "exhaustive" => Box::new(Exhaustive::new(
            ExhaustiveParams {
                probe_frames: u("probe-frames"),
                reprobe_every: u("reprobe-every"),
                margin: spec.get("margin"),
            },
            profile()?,
        )),
        "oracle" => Box::new(Oracle::new(
            OracleParams {
                window: u("window"),
            },
            match inp.timed {
                Some(t) if u("timed-latency") == 1 => t.clone(),
                _ => profile()?.clone(),
            },
            inp.truth.to_vec(),
        )),
        "ofa-static" => Box::new(
            OfaStatic::new(
                OfaStaticParams {
                    margin: spec.get("margin"),
                },
                profile()?,
            )
            .map_err(bad)?,
        ),
        "dynamic-ofa" => Box::new(DynamicOfa::new(
            DynamicOfaParams {
                window: u("window"),
                slack: spec.get("slack"),
                margin: spec.get("margin"),
            },
            profile()?,
        )),
        "adaptivenet" => Box::new(AdaptiveNet::new(
            AdaptiveNetParams {
                margin: spec.get("margin"),
                revalidate_every: u("revalidate-every"),
                trial_frames: u("trial-frames"),
            },
            profile()?,
        )),
        other => return Err(bad(format!("unknown selector kind {other:?}"))),
    })
}

/// The co-runners a live scenario's trace asks for: CPU spinners where it sets `cpu-load`,
/// the GPU co-runner where it sets `gpu-load` on `tch-cuda` (GPU load means something only
/// where inference runs on the GPU). Dropping them stops them.
struct CoRunners {
    cpu: Option<CpuInjector>,
    gpu: Option<GpuInjector>,
}

impl CoRunners {
    fn start(sc: &scenario::Scenario, device: &burn::tensor::Device) -> CoRunners {
        let points = &sc.workload.points;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        CoRunners {
            cpu: points
                .iter()
                .any(|p| p.cpu_load > 0.0)
                .then(|| CpuInjector::start(cores, sc.seed_load)),
            gpu: (sc.backend == opa_harness::backend::Backend::TchCuda
                && points.iter().any(|p| p.gpu_load > 0.0))
            .then(|| GpuInjector::start(device.clone(), GPU_MATRIX)),
        }
    }

    /// A live target over the scenario's candidates and frames, under these co-runners.
    fn target<'a>(
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

/// Whether item `item` (from 0, deadlines ascending, selectors in file order) of the
/// (deadline x selector) grid is this shard's (`--shard I/N`: item k is shard k mod N + 1's).
fn in_shard(shard: Option<(usize, usize)>, item: usize) -> bool {
    shard.is_none_or(|(i, n)| item % n == i - 1)
}

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
fn time_for_oracle(
    sc: &scenario::Scenario,
    dep: &Deployment,
    st: &Stream,
    profile: &Profile,
    device: &burn::tensor::Device,
    profile_workload: &scenario::Workload,
) -> Result<(Profile, Vec<Vec<usize>>)> {
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
    let bar = crate::cmd_calibrate::bar((cands * frames.len()) as u64, "oracle");
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
struct TimedLatency {
    /// The profile's load levels.
    loads: Vec<f64>,
    /// The emulated slow-down the timed latencies include (1 = none).
    slowdown: f64,
    /// Per load level, the median over the candidates of timed over profiled median latency.
    median_p50_ratio: Vec<f64>,
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
    fn of(profile: &Profile, timed: &Profile, runs: &[Vec<usize>], slowdown: f64) -> TimedLatency {
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

/// Reads a profile and checks it was calibrated on exactly these candidates.
pub fn load_profile(path: &Path, d: &Deployment) -> Result<Profile> {
    let p = opa_reports::profile::read_profile(path).map_err(bad)?;
    let ids: Vec<&str> = p.candidates.iter().map(|c| c.id.as_str()).collect();
    let want: Vec<&str> = d.infos.iter().map(|c| c.id.as_str()).collect();
    if ids != want {
        return Err(bad(format!(
            "{} was calibrated on other candidates than the candidates file holds; rerun `opa calibrate`",
            path.display()
        )));
    }
    Ok(p)
}

fn machine(backend: &str) -> MachineInfo {
    let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let git_commit = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    MachineInfo {
        cpu_model,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        backend: backend.to_string(),
        burn_version: opa_supernet::BURN_VERSION.to_string(),
        git_commit,
        opa_version: env!("CARGO_PKG_VERSION").to_string(),
    }
}

pub fn run(a: RunArgs) -> Result<()> {
    execute(a, None, true).map(|_| ())
}

pub fn replay_cmd(a: ReplayArgs) -> Result<()> {
    let sc = scenario::load(&a.run.file).map_err(bad)?;
    let profile = a.profile.clone().unwrap_or(sc.profile);
    if !profile.is_file() {
        return Err(bad(format!(
            "{}: no such profile; run `opa calibrate --out {}` first",
            profile.display(),
            profile.display()
        )));
    }
    execute(a.run, Some(profile), true).map(|_| ())
}

/// The deadlines of `--deadline-ms` ascending, each once; bad input unless all are positive.
pub fn sweep(deadlines: &[f64]) -> Result<Vec<f64>> {
    if let Some(d) = deadlines.iter().find(|d| !(**d > 0.0 && d.is_finite())) {
        return Err(bad(format!(
            "--deadline-ms {d}: deadlines must be positive"
        )));
    }
    let mut v = deadlines.to_vec();
    v.sort_by(f64::total_cmp);
    v.dedup();
    Ok(v)
}

/// Set by Ctrl-C (the handler is installed once per process): a run stops at the next
/// frame and is written INCOMPLETE.
static STOP: AtomicBool = AtomicBool::new(false);

/// Replays scenario `a.file` live, or from `profile_replay`, into its run directory, and
/// returns what it wrote to summary.json and samples.parquet; `print`: the progress, notes
/// and the summary table on the terminal (`opa stress` replays many scenarios quietly).
pub fn execute(
    a: RunArgs,
    profile_replay: Option<PathBuf>,
    print: bool,
) -> Result<(RunSummary, Vec<Sample>)> {
    let live = profile_replay.is_none();
    let sc = scenario::load(&a.file).map_err(bad)?;
    let backend = sc.backend;
    let device = if live {
        scenario::check_backend(&sc)
            .and_then(|()| scenario::check_profile(&sc))
            .map_err(|e| bad(format!("{}: {e}", a.file.display())))?;
        if sc.threads > 0 {
            let _ = rayon::ThreadPoolBuilder::new()
                .num_threads(sc.threads)
                .build_global();
        }
        Some(backend.device().map_err(bad)?)
    } else {
        None
    };
    let deadlines = sweep(if a.deadline_ms.is_empty() {
        std::slice::from_ref(&sc.deadline_ms)
    } else {
        &a.deadline_ms
    })?;
    let out = a.out.clone().unwrap_or_else(|| sc.output_dir.clone());
    if out.join("summary.json").exists() && !a.force {
        return Err(bad(format!(
            "{} already holds a run; pass --force to replace it or --out another directory",
            out.display()
        )));
    }

    // Everything is prepared before the clock starts: model, candidates, frames, schedule.
    let dep = match &device {
        Some(dev) => deployment::load(&sc.checkpoint, &sc.candidates, dev).map_err(bad)?,
        None => {
            deployment::read_candidates(&sc.checkpoint, &sc.candidates)
                .map_err(bad)?
                .1
        }
    };
    let profile_path = profile_replay.clone().unwrap_or(sc.profile.clone());
    let profile: Option<Arc<Profile>> = if !live || sc.selectors.iter().any(|s| s.needs_profile()) {
        Some(Arc::new(load_profile(&profile_path, &dep)?))
    } else {
        None
    };
    let st = Stream::of(&sc, &a.file, live, dep.cfg.in_channels as u8).map_err(bad)?;
    let slots = &st.slots;
    if let Some(f) = st.frames.iter().find(|f| {
        f.image.width as usize != dep.cfg.input_size
            || f.image.height as usize != dep.cfg.input_size
            || f.image.channels as usize != dep.cfg.in_channels
    }) {
        return Err(bad(format!(
            "frame {} is {}x{}x{}, the super-network takes {}x{}x{}",
            f.index,
            f.image.channels,
            f.image.height,
            f.image.width,
            dep.cfg.in_channels,
            dep.cfg.input_size,
            dep.cfg.input_size
        )));
    }
    let facts = st.facts(profile.as_deref());
    let arrivals: Vec<f64> = slots.iter().map(|s| s.arrival_s).collect();
    // The profile's load levels are the co-runner calibration used on this backend: GPU duty
    // cycle on tch-cuda, CPU share elsewhere.
    let profile_workload = sc.workload.on_profile_axis(backend);
    let oracle_truth = truth(&facts, &arrivals, &profile_workload);

    // Every selector is built once before anything is written: one that cannot run (say, on
    // a profile without the tables it reads) is an error that leaves no run directory.
    let check = SelectorInputs {
        profile: profile.as_ref(),
        timed: None,
        truth: &oracle_truth,
        seed: sc.seed_selector,
    };
    for (si, spec) in sc.selectors.iter().enumerate() {
        build_selector(spec, si, &check)?;
    }
    // Live, the oracle is a reference only if it knows this machine's latencies: the profile
    // may have been timed on another (or on this one in another state). So every candidate is
    // timed here, at the profile's load levels, before the clock starts.
    // (Only where this shard runs such an oracle.)
    let nsel = sc.selectors.len();
    let timed_oracle = sc.selectors.iter().enumerate().any(|(si, s)| {
        s.kind == "oracle"
            && s.get("timed-latency") == 1.0
            && (0..deadlines.len()).any(|di| in_shard(a.shard, di * nsel + si))
    });
    let timed = match (&device, &profile) {
        (Some(dev), Some(p)) if timed_oracle => {
            let started = std::time::Instant::now();
            let (t, runs) = time_for_oracle(&sc, &dep, &st, p, dev, &profile_workload)?;
            let report = TimedLatency::of(p, &t, &runs, sc.slowdown);
            if print {
                println!(
                    "oracle: candidates timed on this machine in {:.1} s; median latency against the profile's: {}",
                    started.elapsed().as_secs_f64(),
                    report
                        .loads
                        .iter()
                        .zip(&report.median_p50_ratio)
                        .map(|(l, r)| format!("x{r:.2} at load {l}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                if report
                    .median_p50_ratio
                    .iter()
                    .any(|r| !(0.67..=1.5).contains(r))
                {
                    println!(
                        "note: the profile's latencies are off for this machine, and the other selectors plan with them (`opa calibrate --latency-only PROFILE --out NEW` re-times them)"
                    );
                }
            }
            Some((Arc::new(t), report))
        }
        _ => None,
    };

    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    for stale in [
        "summary.json",
        "samples.parquet",
        "events.jsonl",
        ORACLE_LATENCY_FILE,
    ] {
        let _ = std::fs::remove_file(out.join(stale));
    }
    let effective = sc.to_toml();
    opa_reports::write_atomic(
        &out.join("scenario.toml"),
        format!(
            "# effective scenario (defaults filled in) of {}\n{effective}",
            a.file.display()
        )
        .as_bytes(),
    )?;
    let mode = match &profile_replay {
        None => "live".to_string(),
        Some(_) => "replay-from-profile".to_string(),
    };
    write_json(
        &out.join("machine.json"),
        &machine(if live {
            backend.name()
        } else {
            "none (replay from profile)"
        }),
    )?;

    static HANDLER: std::sync::Once = std::sync::Once::new();
    HANDLER.call_once(|| {
        let _ = ctrlc::set_handler(|| STOP.store(true, Ordering::Relaxed));
    });
    let stop = &STOP;
    let emulated = sc.slowdown != 1.0;
    if print {
        println!(
            "{}: {} frames, {} candidates, {} selector(s) x {} deadline(s), {}{}",
            sc.name,
            slots.len(),
            dep.infos.len(),
            sc.selectors.len(),
            deadlines.len(),
            match &profile_replay {
                None => format!("backend {}", backend.name()),
                Some(p) => format!("replay from profile {}", p.display()),
            },
            if emulated {
                format!(", EMULATED slow-down x{}", sc.slowdown)
            } else {
                String::new()
            }
        );
    }
    if let Some((_, report)) = &timed {
        write_json(&out.join(ORACLE_LATENCY_FILE), report)?;
    }
    let inputs = SelectorInputs {
        profile: profile.as_ref(),
        timed: timed.as_ref().map(|(t, _)| t),
        truth: &oracle_truth,
        seed: sc.seed_selector,
    };
    let replay_seed = sc.replay_seed();

    let mut samples: Vec<Sample> = Vec::new();
    let mut events: Vec<Event> = Vec::new();
    let mut summaries: Vec<SelectorSummary> = Vec::new();
    let mut complete = true;
    let (mut runs_measured, mut runs_shared) = (0u64, 0u64);
    // Per deadline, the selectors take turns on blocks of frames (`--interleave`): each
    // plays a block on its own timeline, then the next one plays the same block under the
    // same co-runners, so slow drifts of the machine (clock, cache, scheduler states that
    // last seconds) reach every selector alike instead of favouring whoever ran first.
    let block = match a.interleave {
        0 => slots.len().max(1),
        n => n,
    };
    'outer: for (di, &deadline) in deadlines.iter().enumerate() {
        let mine: Vec<usize> = (0..nsel)
            .filter(|&si| in_shard(a.shard, di * nsel + si))
            .collect();
        if mine.is_empty() {
            continue;
        }
        let co = device.as_ref().map(|dev| (dev, CoRunners::start(&sc, dev)));
        let cache = RunCache::default();
        let mut lanes = Vec::with_capacity(mine.len());
        for &si in &mine {
            let target = match (&co, &profile) {
                (Some((dev, co)), _) => AnyTarget::Live(
                    co.target(&sc, &dep, &st, dev)
                        .with_cache((!a.independent_runs).then_some(&cache)),
                ),
                (None, Some(p)) => AnyTarget::Profile(ProfileTarget::new(
                    p,
                    &facts,
                    &profile_workload,
                    replay_seed,
                    sc.slowdown,
                )),
                (None, None) => unreachable!("replay mode always has a profile"),
            };
            lanes.push(Lane {
                si,
                selector: build_selector(&sc.selectors[si], si, &inputs)?,
                target,
                run: Replayer::new(deadline),
            });
        }
        let bar = if live && print {
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
                        &dep.infos,
                        lane.target.as_dyn(),
                        lane.selector.as_mut(),
                        stop,
                        &mut |r: &SampleRow| {
                            if r.phase != Phase::Probe {
                                misses += usize::from(!r.deadline_met);
                            }
                        },
                    )
                    .map_err(|e| anyhow::anyhow!("{name} @ {deadline} ms: {e}"))?;
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
        for lane in &mut lanes {
            let spec = &sc.selectors[lane.si];
            let lane_complete = lane.run.next == slots.len();
            // (A row's load is the trace's when it started: rows are not runs one for one,
            // as a served row may reuse a probe's run and a skipped frame has none.)
            let (requested, achieved, gpu_achieved, workload) = match &mut lane.target {
                AnyTarget::Live(t) => {
                    runs_shared += t.shared_runs as u64;
                    runs_measured += (t.requested.len() - t.shared_runs) as u64;
                    let l = t.load_account();
                    (l.requested, l.cpu_achieved, l.gpu_achieved, t.workload)
                }
                AnyTarget::Profile(t) => {
                    let mean = t.mean_load();
                    (mean, mean, 0.0, t.workload())
                }
            };
            let start = samples.len();
            let mut prev: Option<usize> = None;
            let id = |c: Option<usize>| c.map(|c| dep.infos[c].id.clone());
            for r in &lane.run.rows {
                let event = |kind: &str, from, to| Event {
                    selector: spec.name.clone(),
                    deadline_ms: deadline,
                    frame: r.frame,
                    time_s: r.start_s,
                    kind: kind.into(),
                    from,
                    to,
                };
                match r.phase {
                    Phase::Probe => events.push(event("probe", id(r.candidate), None)),
                    Phase::Skip => events.push(event("skip", None, None)),
                    Phase::Serve => {
                        if prev.is_some() && prev != r.candidate {
                            events.push(event("switch", id(prev), id(r.candidate)));
                        }
                        prev = r.candidate;
                    }
                }
                samples.push(Sample {
                    selector: spec.name.clone(),
                    deadline_ms: deadline,
                    frame: r.frame,
                    phase: match r.phase {
                        Phase::Serve => "serve",
                        Phase::Probe => "probe",
                        Phase::Skip => "skip",
                    }
                    .into(),
                    candidate: id(r.candidate).unwrap_or_default(),
                    arrival_s: r.arrival_s,
                    start_s: r.start_s,
                    finish_s: r.finish_s,
                    compute_ms: r.compute_ms,
                    latency_ms: r.latency_ms,
                    label: r.label,
                    predicted: r.predicted.unwrap_or(NO_ANSWER),
                    confidence: r.confidence,
                    correct: r.correct,
                    deadline_met: r.deadline_met,
                    cpu_load: workload.at(r.start_s).cpu_load,
                    condition: slots[r.frame as usize].condition.to_string(),
                });
            }
            let mut summary = summarize(
                &samples[start..],
                &SummaryInputs {
                    selector: &spec.name,
                    deadline_ms: deadline,
                    emulated,
                    min_frames: MIN_FRAMES,
                    load_requested: requested,
                    load_achieved: achieved,
                    complete: lane_complete,
                },
            );
            if co.as_ref().is_some_and(|(_, c)| c.gpu.is_some()) {
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
            summaries.push(summary);
            complete &= lane_complete;
        }
        drop(lanes);
        if stopped {
            break 'outer;
        }
    }
    let oracle = sc
        .selectors
        .iter()
        .find(|s| s.kind == "oracle")
        .map(|s| s.name.clone());
    if let Some(o) = &oracle {
        fill_regret(&mut summaries, o);
    }
    let status = if complete { "COMPLETE" } else { "INCOMPLETE" };
    write_samples(&out.join("samples.parquet"), &samples)?;
    write_jsonl(&out.join("events.jsonl"), &events)?;
    let summary = RunSummary {
        scenario: sc.name.clone(),
        status: status.into(),
        emulated,
        mode,
        deadlines_ms: deadlines.clone(),
        selector_order: sc.selectors.iter().map(|s| s.name.clone()).collect(),
        oracle,
        shard: a.shard.map(|(i, n)| format!("{i}/{n}")),
        interleave_frames: if block >= slots.len() { 0 } else { block },
        runs_measured,
        runs_shared,
        selectors: summaries,
    };
    write_json(&out.join("summary.json"), &summary)?;
    if print {
        print_run_end(
            &summary,
            &samples,
            &sc.selectors,
            live,
            a.independent_runs,
            &out,
        );
    }
    if !complete {
        anyhow::bail!(
            "interrupted: {} holds a readable partial run marked INCOMPLETE",
            out.display()
        );
    }
    Ok((summary, samples))
}

/// The summary table, OPA's goals, the live runs' sharing and where the run is.
fn print_run_end(
    summary: &RunSummary,
    samples: &[Sample],
    specs: &[SelectorSpec],
    live: bool,
    independent_runs: bool,
    out: &Path,
) {
    let (runs_measured, runs_shared) = (summary.runs_measured, summary.runs_shared);
    print_table(&summary.selectors);
    print_goals(summary, samples, specs);
    if live {
        println!(
            "live runs: {runs_measured} measured, {runs_shared} shared between selectors{}",
            if independent_runs {
                " (--independent-runs)"
            } else {
                " (same frame, candidate, trace moment and warm state; --independent-runs measures each)"
            }
        );
    }
    println!("run directory: {} ({})", out.display(), summary.status);
}

/// Per deadline, where the line-up's first `opa` selector stands against OPA's goals: its
/// share of the oracle's top-1 within the deadline (the goal: at least [`ORACLE_SHARE`]), its
/// difference to the best rival's (above every rival; with the frames only one of the two
/// got right in time and a paired 95 % interval from `samples`, [`paired_top1`]) and its
/// decision overhead as a fraction of exhaustive search's (at most [`OVERHEAD_SHARE`]); the
/// selectors' roles are [`Roles::of`]'s, as in `opa stress`. Nothing without an `opa`
/// selector; a goal without its selector in the line-up is left out.
fn print_goals(summary: &RunSummary, samples: &[Sample], specs: &[SelectorSpec]) {
    let Some(roles) = specs
        .iter()
        .find(|s| s.kind == "opa")
        .and_then(|s| Roles::of(specs, &s.name))
    else {
        return;
    };
    if roles.oracle.is_none() && roles.exhaustive.is_none() && roles.rivals.is_empty() {
        return;
    }
    let rows = &summary.selectors;
    println!();
    println!(
        "{} against OPA's goals (>= {} % of the oracle's top-1 within the deadline, above every rival, overhead <= 1/{} of exhaustive's):",
        roles.reference,
        100.0 * ORACLE_SHARE,
        1.0 / OVERHEAD_SHARE
    );
    for &d in &summary.deadlines_ms {
        let row = |name: &str| {
            rows.iter()
                .find(|r| r.selector == name && r.deadline_ms == d)
        };
        let Some(me) = row(roles.reference) else {
            continue;
        };
        let mut parts = Vec::new();
        if let Some(o) = roles
            .oracle
            .and_then(row)
            .filter(|o| o.top1_within_deadline > 0.0)
        {
            parts.push(format!(
                "{:.1} % of the oracle",
                100.0 * me.top1_within_deadline / o.top1_within_deadline
            ));
        }
        let best = roles
            .rivals
            .iter()
            .filter_map(|&n| row(n))
            .max_by(|x, y| x.top1_within_deadline.total_cmp(&y.top1_within_deadline));
        if let Some(b) = best {
            let mut part = format!(
                "{:+.2} pts against the best rival ({}",
                100.0 * (me.top1_within_deadline - b.top1_within_deadline),
                b.selector
            );
            let cfg = CompareConfig::default();
            if let Some(p) = paired_top1(samples, roles.reference, &b.selector, d, &cfg) {
                part.push_str(&format!(
                    "; {} frame{} right in time for {} only, {} for it only; paired 95 % interval {:+.2} to {:+.2}: {}",
                    p.only_a,
                    if p.only_a == 1 { "" } else { "s" },
                    roles.reference,
                    p.only_b,
                    p.ci_low,
                    p.ci_high,
                    p.verdict()
                ));
            }
            part.push(')');
            parts.push(part);
        }
        if let Some(e) = roles.exhaustive.and_then(row) {
            parts.push(if me.decision_overhead <= 0.0 {
                "no overhead".to_string()
            } else if e.decision_overhead <= 0.0 {
                "overhead where exhaustive search has none".to_string()
            } else {
                format!(
                    "overhead 1/{:.1} of exhaustive's",
                    e.decision_overhead / me.decision_overhead
                )
            });
        }
        println!("  {d} ms: {}", parts.join("; "));
    }
}

fn print_table(rows: &[SelectorSummary]) {
    println!();
    println!(
        "{:<16} {:>9} {:>8} {:>12} {:>9} {:>8} {:>9} {:>9} {:>8} {:>8}",
        "selector",
        "deadline",
        "top-1",
        "top-1 in dl",
        "miss",
        "skipped",
        "p95 ms",
        "overhead",
        "switches",
        "verdict"
    );
    for r in rows {
        println!(
            "{:<16} {:>7} ms {:>7.2}% {:>11.2}% {:>8.2}% {:>8} {:>9.2} {:>8.2}% {:>8} {:>8}",
            r.selector,
            r.deadline_ms,
            100.0 * r.top1,
            100.0 * r.top1_within_deadline,
            100.0 * r.deadline_miss_rate,
            r.skipped,
            r.latency_p95_ms,
            100.0 * r.decision_overhead,
            r.switches,
            r.verdict.verdict
        );
        for reason in &r.verdict.reasons {
            println!("    {reason}");
        }
    }
}
