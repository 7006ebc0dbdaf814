//! `opa load check`: latency of one fixed sub-network under injected CPU load.

use crate::bad;
use anyhow::Result;
use clap::{Args, Subcommand};
use opa_harness::backend::Backend;
use opa_harness::load::{CoRunner, GPU_MATRIX};
use opa_supernet::eval::latency;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum LoadCmd {
    /// Latency of one sub-network at injected loads 0, 0.25, 0.5, 0.75 and 1.0: it must rise
    /// with load for the contention scenarios to mean something.
    Check(CheckArgs),
}

#[derive(Args)]
pub struct CheckArgs {
    /// Architecture id, `largest` or `smallest`.
    #[arg(long, default_value = "largest")]
    arch: String,
    /// Super-network checkpoint (default: the shipped one).
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// Backend.
    #[arg(long, value_enum, default_value = "flex")]
    backend: Backend,
    /// Cores to load (default: all); the injector runs two threads per core.
    #[arg(long)]
    cores: Option<usize>,
    /// Seconds measured per load level.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Batch size of the timed forward passes.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Inject GPU load (a co-running matrix-multiply loop on the backend's device) instead of
    /// CPU load; meant for `--backend tch-cuda`.
    #[arg(long)]
    gpu: bool,
    /// Idle time before each timed run, ms (frames arriving, as in a live replay; 0 = runs
    /// back to back).
    #[arg(long, default_value_t = opa_harness::load::RUN_GAP.as_secs_f64() * 1e3)]
    gap_ms: f64,
}

pub fn run(c: LoadCmd) -> Result<()> {
    let LoadCmd::Check(a) = c;
    let device = a.backend.device().map_err(bad)?;
    let (ck_path, ck) = crate::cmd_model::load_checkpoint(a.checkpoint.as_deref(), &device)?;
    let cfg = ck.header.config.clone();
    let arch = crate::cmd_model::named_arch(&a.arch, &cfg)?;
    if a.seconds.is_nan() || a.seconds <= 0.0 || a.batch == 0 {
        return Err(bad("--seconds and --batch must be positive"));
    }
    if !(0.0..=1000.0).contains(&a.gap_ms) {
        return Err(bad("--gap-ms must be within 0..=1000"));
    }
    // Statistics do not change the cost of a forward pass: the shared ones serve here.
    let stats = ck
        .header
        .shared_bn
        .slice_for(&ck.weights.plan(&cfg, &arch))
        .ok_or_else(|| {
            bad(format!(
                "{}: no shared batch-norm statistics for {}",
                ck_path.display(),
                arch.id()
            ))
        })?;
    let plan = ck
        .weights
        .plan(&cfg, &arch)
        .extract(&stats)
        .map_err(|e| bad(format!("{}: {}: {e}", ck_path.display(), arch.id())))?;
    let cores = a
        .cores
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let img = vec![128u8; cfg.in_channels * cfg.input_size * cfg.input_size];
    if a.gpu && a.backend != Backend::TchCuda {
        eprintln!(
            "note: --gpu on {}: the co-runner loads the same CPU device",
            a.backend.name()
        );
    }
    let co = if a.gpu {
        CoRunner::gpu(&device)
    } else {
        CoRunner::cpu(cores, 1)
    };
    println!(
        "latency of {} (batch {}) on {} with {}, {} s per level",
        arch.id(),
        a.batch,
        a.backend.name(),
        if a.gpu {
            format!("a {GPU_MATRIX}x{GPU_MATRIX} matrix-multiply GPU co-runner")
        } else {
            format!(
                "CPU load on {cores} cores ({} threads)",
                cores * opa_harness::load::WORKERS_PER_CORE
            )
        },
        a.seconds
    );
    println!(
        "{:>6} {:>9} {:>9} {:>10} {:>9} {:>7} {:>12}",
        "load", "achieved", "mean ms", "median ms", "p95 ms", "runs", "mean x idle"
    );
    let mut idle = None;
    for load in [0.0, 0.25, 0.5, 0.75, 1.0] {
        co.set_load(load);
        std::thread::sleep(std::time::Duration::from_millis(200));
        let mark = co.mark();
        let l = latency(
            &plan,
            &cfg,
            &img,
            a.batch,
            &device,
            5,
            20,
            a.seconds,
            std::time::Duration::from_secs_f64(a.gap_ms / 1e3),
        );
        let achieved = co.achieved_since(mark);
        let base = *idle.get_or_insert(l.mean_ms);
        println!(
            "{load:>6.2} {achieved:>9.2} {:>9.3} {:>10.3} {:>9.3} {:>7} {:>12.2}",
            l.mean_ms,
            l.median_ms,
            l.p95_ms,
            l.runs,
            l.mean_ms / base
        );
    }
    Ok(())
}
