//! `opa run FILE`: replay a scenario live, every selector on the same frames and load, into a
//! run directory.

use crate::bad;
use anyhow::{Context as _, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use opa_datasets::shipped::{self, Split};
use opa_datasets::stream::{FrameDir, SyntheticStream};
use opa_datasets::{Frame, FrameSource};
use opa_harness::engine::{FrameSlot, SampleRow, replay};
use opa_harness::live::LiveTarget;
use opa_harness::load::CpuInjector;
use opa_harness::scenario::{self, SelectorSpec, StreamSource};
use opa_predictors::selectors::{FixedLargest, FixedSmallest, RandomSelector};
use opa_predictors::{CandidateInfo, Phase, Selector};
use opa_reports::{
    Event, MachineInfo, RunSummary, Sample, SelectorSummary, SummaryInputs, summarize, write_json,
    write_jsonl, write_samples,
};
use opa_supernet::arch::SubnetArch;
use opa_supernet::candidates::CandidatesFile;
use opa_supernet::checkpoint;
use std::path::PathBuf;
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
}

/// Fewer served frames than this per selector make a run INVALID.
pub const MIN_FRAMES: usize = 100;

fn build_selector(spec: &SelectorSpec, seed: u64, index: usize) -> Box<dyn Selector> {
    match spec.kind.as_str() {
        "fixed-largest" => Box::new(FixedLargest),
        "fixed-smallest" => Box::new(FixedSmallest),
        _ => Box::new(RandomSelector::new(
            seed.wrapping_add(index as u64),
            spec.switch_every,
        )),
    }
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
    let sc = scenario::load(&a.file).map_err(bad)?;
    scenario::check_backend(&sc).map_err(|e| bad(format!("{}: {e}", a.file.display())))?;
    let backend = sc.backend;
    let device = backend.device().map_err(bad)?;
    if sc.threads > 0 {
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(sc.threads)
            .build_global();
    }
    let deadlines = if a.deadline_ms.is_empty() {
        vec![sc.deadline_ms]
    } else {
        a.deadline_ms.clone()
    };
    if let Some(d) = deadlines.iter().find(|d| !(**d > 0.0 && d.is_finite())) {
        return Err(bad(format!(
            "--deadline-ms {d}: deadlines must be positive"
        )));
    }
    let out = a.out.clone().unwrap_or_else(|| sc.output_dir.clone());
    if out.join("summary.json").exists() && !a.force {
        return Err(bad(format!(
            "{} already holds a run; pass --force to replace it or --out another directory",
            out.display()
        )));
    }

    // Everything is prepared before the clock starts: model, candidates, frames, schedule.
    let ck = checkpoint::load(&sc.checkpoint, &device).map_err(bad)?;
    let cfg = ck.header.config.clone();
    let cands_text = std::fs::read_to_string(&sc.candidates)
        .map_err(|e| bad(format!("{}: {e}", sc.candidates.display())))?;
    let cands: CandidatesFile = serde_json::from_str(&cands_text).map_err(|e| {
        bad(format!(
            "{}: not a candidates file: {e}",
            sc.candidates.display()
        ))
    })?;
    if cands.config != cfg {
        return Err(bad(format!(
            "{} was made for another super-network than {}",
            sc.candidates.display(),
            sc.checkpoint.display()
        )));
    }
    let ck_sum = shipped::sha256_file(&sc.checkpoint).map_err(bad)?;
    if cands.checkpoint_sha256 != ck_sum {
        return Err(bad(format!(
            "{} was cut from another checkpoint than {} (sha256 differs); rerun `opa candidates`",
            sc.candidates.display(),
            sc.checkpoint.display()
        )));
    }
    let mut plans = Vec::new();
    let mut infos = Vec::new();
    for c in &cands.candidates {
        let arch = SubnetArch::parse(&c.id, &cfg)
            .map_err(|e| bad(format!("{}: {e}", sc.candidates.display())))?;
        plans.push(
            ck.weights
                .plan(&cfg, &arch)
                .extract(&c.bn)
                .map_err(|e| bad(format!("{}: {}: {e}", sc.candidates.display(), c.id)))?,
        );
        infos.push(CandidateInfo {
            id: c.id.clone(),
            macs: c.macs,
            calibration_top1: c.calibration_top1,
        });
    }
    let frames: Vec<Frame> = match &sc.stream {
        StreamSource::Synthetic(spec) => {
            let eval = Arc::new(shipped::load_shipped_split(Split::Evaluation).map_err(bad)?);
            let s = SyntheticStream::new(eval, spec, sc.seed_stream)
                .map_err(|e| bad(format!("{}: {e}", a.file.display())))?;
            s.frames().collect::<Result<_, _>>().map_err(bad)?
        }
        StreamSource::Frames { dir, fps } => {
            let s = FrameDir::open(dir, *fps, cfg.in_channels as u8).map_err(bad)?;
            s.frames().collect::<Result<_, _>>().map_err(bad)?
        }
    };
    if let Some(f) = frames.iter().find(|f| {
        f.image.width as usize != cfg.input_size
            || f.image.height as usize != cfg.input_size
            || f.image.channels as usize != cfg.in_channels
    }) {
        return Err(bad(format!(
            "frame {} is {}x{}x{}, the super-network takes {}x{}x{}",
            f.index,
            f.image.channels,
            f.image.height,
            f.image.width,
            cfg.in_channels,
            cfg.input_size,
            cfg.input_size
        )));
    }
    let slots: Vec<FrameSlot> = frames
        .iter()
        .map(|f| FrameSlot {
            arrival_s: f.timestamp_s,
            label: f.label,
            condition: f.condition.to_string(),
        })
        .collect();

    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    for stale in ["summary.json", "samples.parquet", "events.jsonl"] {
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
    write_json(&out.join("machine.json"), &machine(backend.name()))?;

    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        let _ = ctrlc::set_handler(move || stop.store(true, Ordering::Relaxed));
    }
    let needs_cpu_load = sc.workload.points.iter().any(|p| p.cpu_load > 0.0);
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let emulated = sc.slowdown != 1.0;
    println!(
        "{}: {} frames, {} candidates, {} selector(s) x {} deadline(s), backend {}{}",
        sc.name,
        frames.len(),
        infos.len(),
        sc.selectors.len(),
        deadlines.len(),
        backend.name(),
        if emulated {
            format!(", EMULATED slow-down x{}", sc.slowdown)
        } else {
            String::new()
        }
    );

    let mut samples: Vec<Sample> = Vec::new();
    let mut events: Vec<Event> = Vec::new();
    let mut summaries: Vec<SelectorSummary> = Vec::new();
    let mut complete = true;
    'outer: for &deadline in &deadlines {
        for (si, spec) in sc.selectors.iter().enumerate() {
            let injector = needs_cpu_load.then(|| CpuInjector::start(workers, sc.seed_load));
            let mut selector = build_selector(spec, sc.seed_selector, si);
            let mark = injector.as_ref().map(|i| i.achieved_since_reset());
            let mut target = LiveTarget::new(
                &plans,
                &cfg,
                &frames,
                &device,
                injector.as_ref(),
                &sc.workload,
                sc.slowdown,
            );
            let bar = ProgressBar::new(slots.len() as u64);
            bar.set_style(
                ProgressStyle::with_template("{prefix:>24} [{bar:30}] {pos}/{len} frames {msg}")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            bar.set_prefix(format!("{} @ {deadline} ms", spec.name));
            let mut misses = 0usize;
            let result = replay(
                &slots,
                &infos,
                deadline,
                &mut target,
                selector.as_mut(),
                &stop,
                &mut |r: &SampleRow| {
                    if r.phase == Phase::Serve {
                        misses += usize::from(!r.deadline_met);
                        bar.inc(1);
                        bar.set_message(format!("serving #{} | {misses} missed", r.candidate));
                    }
                },
            );
            bar.finish_and_clear();
            let replayed =
                result.map_err(|e| anyhow::anyhow!("{} @ {deadline} ms: {e}", spec.name))?;
            let achieved = match (&injector, mark) {
                (Some(i), Some(m)) => i.achieved_since(m),
                _ => 0.0,
            };
            let requested = if injector.is_some() {
                target.time_weighted_load()
            } else {
                0.0
            };
            let loads = std::mem::take(&mut target.requested);
            drop(target);
            drop(injector);
            let start = samples.len();
            let mut prev: Option<usize> = None;
            for r in &replayed.rows {
                if r.phase == Phase::Probe {
                    events.push(Event {
                        selector: spec.name.clone(),
                        deadline_ms: deadline,
                        frame: r.frame,
                        time_s: r.start_s,
                        kind: "probe".into(),
                        from: Some(infos[r.candidate].id.clone()),
                        to: None,
                    });
                } else {
                    if prev.is_some_and(|p| p != r.candidate) {
                        events.push(Event {
                            selector: spec.name.clone(),
                            deadline_ms: deadline,
                            frame: r.frame,
                            time_s: r.start_s,
                            kind: "switch".into(),
                            from: prev.map(|p| infos[p].id.clone()),
                            to: Some(infos[r.candidate].id.clone()),
                        });
                    }
                    prev = Some(r.candidate);
                }
                samples.push(Sample {
                    selector: spec.name.clone(),
                    deadline_ms: deadline,
                    frame: r.frame,
                    phase: if r.phase == Phase::Serve {
                        "serve"
                    } else {
                        "probe"
                    }
                    .into(),
                    candidate: infos[r.candidate].id.clone(),
                    arrival_s: r.arrival_s,
                    start_s: r.start_s,
                    finish_s: r.finish_s,
                    compute_ms: r.compute_ms,
                    latency_ms: r.latency_ms,
                    label: r.label,
                    predicted: r.predicted,
                    confidence: r.confidence,
                    correct: r.correct,
                    deadline_met: r.deadline_met,
                    cpu_load: loads.get(samples.len() - start).copied().unwrap_or(0.0),
                    condition: r.condition.clone(),
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
                    complete: replayed.complete,
                },
            );
            if sc.workload.points.iter().any(|p| p.gpu_load > 0.0) {
                summary.verdict.verdict = "INVALID".into();
                summary
                    .verdict
                    .reasons
                    .push("GPU load requested, but this build has no GPU load injector yet".into());
            }
            summaries.push(summary);
            if !replayed.complete {
                complete = false;
                break 'outer;
            }
        }
    }
    let status = if complete { "COMPLETE" } else { "INCOMPLETE" };
    write_samples(&out.join("samples.parquet"), &samples)?;
    write_jsonl(&out.join("events.jsonl"), &events)?;
    write_json(
        &out.join("summary.json"),
        &RunSummary {
            scenario: sc.name.clone(),
            status: status.into(),
            emulated,
            selectors: summaries.clone(),
        },
    )?;
    print_table(&summaries);
    println!("run directory: {} ({status})", out.display());
    if !complete {
        anyhow::bail!(
            "interrupted: {} holds a readable partial run marked INCOMPLETE",
            out.display()
        );
    }
    Ok(())
}

fn print_table(rows: &[SelectorSummary]) {
    println!();
    println!(
        "{:<16} {:>9} {:>8} {:>12} {:>9} {:>9} {:>9} {:>8} {:>8}",
        "selector",
        "deadline",
        "top-1",
        "top-1 in dl",
        "miss",
        "p95 ms",
        "overhead",
        "switches",
        "verdict"
    );
    for r in rows {
        println!(
            "{:<16} {:>7} ms {:>7.2}% {:>11.2}% {:>8.2}% {:>9.2} {:>8.2}% {:>8} {:>8}",
            r.selector,
            r.deadline_ms,
            100.0 * r.top1,
            100.0 * r.top1_within_deadline,
            100.0 * r.deadline_miss_rate,
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
