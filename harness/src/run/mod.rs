//! Running a scenario: every selector on the same frames and load, live or replayed from a
//! calibration profile, into a run directory.
//!
//! [`execute`] plans (scenario, candidates, profile, frames and their facts), prepares
//! (every selector built once, the live oracle's latency tables timed), then per deadline
//! lets the selectors take turns on blocks of frames ([`lanes`]), collects their rows into
//! samples, events and a summary per selector, and writes the run directory
//! (`docs/run-directory.md`). The `opa run` and `opa replay` commands parse arguments and
//! print around it.

mod lanes;
mod oracle_timing;

use crate::deployment::{self, Deployment};
use crate::frames::Stream;
use crate::output::{Claim, Kind};
use crate::profile_target::truth;
use crate::scenario::{self, SelectorSpec};
use lanes::{SelectorInputs, build_selector};
use opa_predictors::profile::Profile;
use opa_predictors::selectors::{OracleParams, Params, SelectorKind};
use opa_reports::{
    MachineInfo, ORACLE_LATENCY_FILE, RunSummary, Sample, fill_regret, write_json, write_jsonl,
    write_samples,
};
use oracle_timing::{TimedLatency, time_for_oracle};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Fewer served frames than this per selector make a run INVALID.
pub const MIN_FRAMES: usize = 100;

/// Frames per selector turn in a run (`--interleave`).
pub const DEFAULT_INTERLEAVE: usize = 25;

/// What to run and where (`opa run`'s options).
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// The scenario file.
    pub file: PathBuf,
    /// Deadlines to sweep, ms; empty: the scenario's own.
    pub deadline_ms: Vec<f64>,
    /// The run directory; None: the scenario's `output.dir`.
    pub out: Option<PathBuf>,
    /// Replace a previous run in the run directory.
    pub force: bool,
    /// Only shard I of N of the (deadline × selector) grid.
    pub shard: Option<(usize, usize)>,
    /// Frames per selector turn; 0 plays each selector through the whole stream in turn.
    pub interleave: usize,
    /// Measure every live run anew instead of sharing identical runs between selectors.
    pub independent_runs: bool,
    /// Which repeat this run is (`--repeat N`): 1 plays the scenario's seeds, a later one
    /// seeds derived from them ([`crate::scenario::Scenario::repeat_seeds`]).
    pub repeat: usize,
}

impl RunOptions {
    /// A whole, unsharded run of `file` at `deadlines` into `out` (replacing a run there),
    /// interleaved as `opa run` does by default.
    pub fn whole(file: PathBuf, deadlines: Vec<f64>, out: PathBuf) -> Self {
        RunOptions {
            file,
            deadline_ms: deadlines,
            out: Some(out),
            force: true,
            shard: None,
            interleave: DEFAULT_INTERLEAVE,
            independent_runs: false,
            repeat: 1,
        }
    }
}

/// Why a run did not happen or did not finish.
#[derive(Debug)]
pub enum RunError {
    /// What the user gave is wrong: a bad scenario, a missing or damaged file (exit code 2).
    BadInput(String),
    /// The run failed: writing its files, or an inference.
    Failed(String),
    /// A signal (Ctrl-C, SIGTERM) stopped it (exit code 130).
    Interrupted(String),
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::BadInput(m) | RunError::Failed(m) | RunError::Interrupted(m) => {
                f.write_str(m)
            }
        }
    }
}

impl std::error::Error for RunError {}

impl From<opa_reports::RunError> for RunError {
    fn from(e: opa_reports::RunError) -> Self {
        RunError::Failed(e.to_string())
    }
}

/// A [`RunError::BadInput`] saying `e`.
pub(crate) fn bad(e: impl std::fmt::Display) -> RunError {
    RunError::BadInput(e.to_string())
}

/// What a run wrote.
pub struct Finished {
    /// `summary.json`'s content (`status` INCOMPLETE when Ctrl-C stopped it).
    pub summary: RunSummary,
    /// `samples.parquet`'s rows.
    pub samples: Vec<Sample>,
    /// The scenario's selectors, in file order.
    pub selectors: Vec<SelectorSpec>,
    /// The run directory.
    pub out: PathBuf,
    /// Interrupted over a previous run: that run is kept, this one discarded.
    pub kept_previous: bool,
    /// Live (not replayed from a profile).
    pub live: bool,
}

impl Finished {
    /// Whether every selector played every frame.
    pub fn complete(&self) -> bool {
        self.summary.status == "COMPLETE"
    }
}

/// The deadlines of `--deadline-ms` ascending, each once; bad input unless all are positive.
pub fn sweep(deadlines: &[f64]) -> Result<Vec<f64>, RunError> {
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

/// Whether item `item` (from 0, deadlines ascending, selectors in file order) of the
/// (deadline x selector) grid is this shard's (`--shard I/N`: item k is shard k mod N + 1's).
fn in_shard(shard: Option<(usize, usize)>, item: usize) -> bool {
    shard.is_none_or(|(i, n)| item % n == i - 1)
}

/// Reads a profile and checks it was calibrated on exactly these candidates.
pub fn load_profile(path: &Path, d: &Deployment) -> Result<Profile, RunError> {
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

/// This machine, as `machine.json` records it.
pub fn machine(backend: &str) -> MachineInfo {
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

/// Set by SIGINT or SIGTERM ([`handle_signals`]): a run stops at the next frame.
static STOP: AtomicBool = AtomicBool::new(false);

/// From now on, SIGINT (Ctrl-C) and SIGTERM (what `kill` and a CI timeout send) ask a run
/// to stop at the next frame and end cleanly (a second one ends the process at once). The
/// binary calls it first thing; calling it again does nothing.
pub fn handle_signals() {
    static HANDLER: std::sync::Once = std::sync::Once::new();
    HANDLER.call_once(|| {
        let _ = ctrlc::set_handler(|| {
            if STOP.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
        });
    });
}

/// Whether a signal asked to stop.
pub fn stopping() -> bool {
    STOP.load(Ordering::Relaxed)
}

/// The error of a run stopped by a signal before it played a frame.
fn interrupted(out: &Path) -> RunError {
    RunError::Interrupted(format!(
        "interrupted before the run started; {} is as it was",
        out.display()
    ))
}

/// Runs scenario `opts.file` live, or replayed from the profile `replay`, into its run
/// directory; `print`: progress, notes and a header on the terminal (`opa stress` runs many
/// scenarios quietly).
pub fn execute(
    opts: &RunOptions,
    replay: Option<PathBuf>,
    print: bool,
) -> Result<Finished, RunError> {
    let live = replay.is_none();
    let mut sc = scenario::load(&opts.file).map_err(bad)?;
    [sc.seed_stream, sc.seed_load, sc.seed_selector] = sc.repeat_seeds(opts.repeat);
    let backend = sc.backend;
    let device = if live {
        scenario::check_backend(&sc)
            .and_then(|()| scenario::check_profile(&sc))
            .map_err(|e| bad(format!("{}: {e}", opts.file.display())))?;
        if sc.threads > 0 {
            let _ = rayon::ThreadPoolBuilder::new()
                .num_threads(sc.threads)
                .build_global();
        }
        Some(backend.device().map_err(bad)?)
    } else {
        None
    };
    let deadlines = sweep(if opts.deadline_ms.is_empty() {
        std::slice::from_ref(&sc.deadline_ms)
    } else {
        &opts.deadline_ms
    })?;
    let target = opts.out.clone().unwrap_or_else(|| sc.output_dir.clone());
    // Nothing is written outside the claimed directory's hidden sibling until the end.
    let claim = Claim::take(&target, Kind::Run, opts.force).map_err(bad)?;
    let out = claim.path().to_path_buf();

    // Everything is prepared before the clock starts: model, candidates, frames, schedule.
    let dep = match &device {
        Some(dev) => deployment::load(&sc.checkpoint, &sc.candidates, dev).map_err(bad)?,
        None => {
            deployment::read_candidates(&sc.checkpoint, &sc.candidates)
                .map_err(bad)?
                .1
        }
    };
    let profile_path = replay.clone().unwrap_or(sc.profile.clone());
    let profile: Option<Arc<Profile>> = if !live || sc.selectors.iter().any(|s| s.needs_profile()) {
        Some(Arc::new(load_profile(&profile_path, &dep)?))
    } else {
        None
    };
    let st = Stream::of(&sc, &opts.file, live, dep.cfg.in_channels as u8).map_err(bad)?;
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
    let arrivals: Vec<f64> = st.slots.iter().map(|s| s.arrival_s).collect();
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
        s.kind == SelectorKind::Oracle
            && OracleParams::from_values(|k| Some(s.get(k))).timed_latency
            && (0..deadlines.len()).any(|di| in_shard(opts.shard, di * nsel + si))
    });
    let timed = match (&device, &profile) {
        (Some(dev), Some(p)) if timed_oracle => {
            let started = std::time::Instant::now();
            let (t, runs) = time_for_oracle(&sc, &dep, &st, p, dev, &profile_workload)?;
            let report = TimedLatency::of(p, &t, &runs, sc.slowdown);
            if print {
                report.print(started.elapsed().as_secs_f64());
            }
            Some((Arc::new(t), report))
        }
        _ => None,
    };

    if stopping() {
        return Err(interrupted(&target));
    }
    let effective = sc.to_toml();
    opa_reports::write_atomic(
        &out.join("scenario.toml"),
        format!(
            "# effective scenario (defaults filled in) of {}\n{effective}",
            opts.file.display()
        )
        .as_bytes(),
    )?;
    write_json(
        &out.join("machine.json"),
        &machine(if live {
            backend.name()
        } else {
            "none (replay from profile)"
        }),
    )?;

    handle_signals();
    let emulated = sc.slowdown != 1.0;
    if print {
        println!(
            "{}: {} frames, {} candidates, {} selector(s) x {} deadline(s), {}{}",
            sc.name,
            st.slots.len(),
            dep.infos.len(),
            sc.selectors.len(),
            deadlines.len(),
            match &replay {
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
    let world = lanes::World {
        sc: &sc,
        dep: &dep,
        st: &st,
        device: device.as_ref(),
        profile: profile.as_ref(),
        facts: &facts,
        profile_workload: &profile_workload,
        inputs: SelectorInputs {
            profile: profile.as_ref(),
            timed: timed.as_ref().map(|(t, _)| t),
            truth: &oracle_truth,
            seed: sc.seed_selector,
        },
        replay_seed: sc.replay_seed(),
        shared: !opts.independent_runs,
        print,
        stop: &STOP,
    };
    // Per deadline, the selectors take turns on blocks of frames (`--interleave`): each
    // plays a block on its own timeline, then the next one plays the same block under the
    // same co-runners, so slow drifts of the machine (clock, cache, scheduler states that
    // last seconds) reach every selector alike instead of favouring whoever ran first.
    let block = match opts.interleave {
        0 => st.slots.len().max(1),
        n => n,
    };
    let mut played = lanes::Played::default();
    for (di, &deadline) in deadlines.iter().enumerate() {
        let mine: Vec<usize> = (0..nsel)
            .filter(|&si| in_shard(opts.shard, di * nsel + si))
            .collect();
        if mine.is_empty() {
            continue;
        }
        if !world.play(deadline, &mine, block, &mut played)? {
            break;
        }
    }
    let oracle = sc
        .selectors
        .iter()
        .find(|s| s.kind == SelectorKind::Oracle)
        .map(|s| s.name.clone());
    if let Some(o) = &oracle {
        fill_regret(&mut played.summaries, o);
    }
    let status = if played.complete {
        "COMPLETE"
    } else {
        "INCOMPLETE"
    };
    write_samples(&out.join("samples.parquet"), &played.samples)?;
    write_jsonl(&out.join("events.jsonl"), &played.events)?;
    let summary = RunSummary {
        scenario: sc.name.clone(),
        status: status.into(),
        emulated,
        mode: if live { "live" } else { "replay-from-profile" }.to_string(),
        deadlines_ms: deadlines.clone(),
        selector_order: sc.selectors.iter().map(|s| s.name.clone()).collect(),
        oracle,
        shard: opts.shard.map(|(i, n)| format!("{i}/{n}")),
        interleave_frames: if block >= st.slots.len() { 0 } else { block },
        runs_measured: played.runs_measured,
        runs_shared: played.runs_shared,
        selectors: played.summaries,
    };
    write_json(&out.join("summary.json"), &summary)?;
    // A complete run replaces the previous one; an interrupted one only takes an empty place.
    let kept_previous = !played.complete && claim.replaces();
    let out = if kept_previous {
        drop(claim);
        target
    } else {
        claim
            .commit()
            .map_err(|e| RunError::Failed(format!("{}: {e}", target.display())))?
    };
    Ok(Finished {
        summary,
        samples: played.samples,
        selectors: sc.selectors,
        out,
        kept_previous,
        live,
    })
}
