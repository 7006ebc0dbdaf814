//! `opa`: benchmark and profile sub-network selection on once-for-all super-networks.

mod assets;
mod cmd_calibrate;
mod cmd_datasets;
mod cmd_load;
mod cmd_model;
mod cmd_reports;
mod cmd_run;
mod cmd_stress;
mod cmd_validate;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Benchmark and profile sub-network selection (OPA and its rivals) on a once-for-all
/// super-network under changing content and load.
#[derive(Parser)]
#[command(name = "opa", version, about, long_about = None, propagate_version = true)]
struct Cli {
    /// Directory holding the shipped data, checkpoint, candidates, profile and scenarios,
    /// laid out like the source checkout; `embedded` uses the copies built into opa. Without
    /// it: $OPA_HOME, then share/opa beside the executable's directory, then the source
    /// checkout opa was built from, then the embedded copies (`opa datasets info` says which).
    #[arg(long, global = true, value_name = "DIR")]
    assets: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Inspect the data sets and preview synthetic streams.
    #[command(subcommand)]
    Datasets(cmd_datasets::DatasetsCmd),
    /// Train the super-network once (sandwich rule + in-place distillation).
    Train(cmd_model::TrainArgs),
    /// Evaluate sub-networks: top-1 (clean and corrupted), multiply-adds, parameters, latency.
    Eval(cmd_model::EvalArgs),
    /// Pick deployment candidates spanning the accuracy / multiply-adds Pareto front.
    Candidates(cmd_model::CandidatesArgs),
    /// Measure every candidate under a grid of content and load conditions (calibration half
    /// only) into profile.parquet, the table OPA's predictors and the baselines are fitted on.
    Calibrate(cmd_calibrate::CalibrateArgs),
    /// Evaluate the accuracy and latency predictors on a calibration profile.
    #[command(subcommand)]
    Predictors(cmd_calibrate::PredictorsCmd),
    /// Check that injected load slows inference down.
    #[command(subcommand)]
    Load(cmd_load::LoadCmd),
    /// Replay a scenario live: every selector on the same frames and load, into a run directory.
    Run(cmd_run::RunArgs),
    /// Replay a scenario from a calibration profile: outcomes drawn from measured tables, no
    /// network runs; deterministic, for fast what-if studies and CI.
    Replay(cmd_run::ReplayArgs),
    /// Replay many random scenarios (seeded) from a calibration profile at a sweep of
    /// deadlines, and compare OPA with every other selector scenario by scenario (and count
    /// the scenarios where it met its goals: 95 % of the oracle, 1/5 of exhaustive search's
    /// overhead, above every rival).
    Stress(cmd_stress::StressArgs),
    /// Write report.md, CSV tables and figures (PNG and SVG) for run directories.
    Report(cmd_reports::ReportArgs),
    /// Compare a run with a baseline: per selector and metric, the change with a bootstrap
    /// 95 % interval; exit code 1 on a regression, 0 otherwise, 2 on bad input.
    Compare(cmd_reports::CompareArgs),
    /// Keep named baselines for `opa compare`.
    #[command(subcommand)]
    Baseline(cmd_reports::BaselineCmd),
    /// Join run directories (the shards of an `opa run --shard I/N` sweep) into one.
    Merge(cmd_reports::MergeArgs),
    /// Check scenario files without running them; every problem is reported with file:line:column.
    Validate(cmd_validate::ValidateArgs),
}

/// An error caused by what the user gave us (bad file, missing path): exit code 2.
#[derive(Debug)]
pub struct BadInput(pub String);

impl std::fmt::Display for BadInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadInput {}

/// Wraps any error as bad input (exit code 2).
pub fn bad<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow::Error::new(BadInput(e.to_string()))
}

fn main() -> ExitCode {
    opa_harness::run::handle_signals();
    // The parquet decoder's worker threads can panic on a damaged file; the reader catches
    // it and reports the file as damaged (exit code 2), so its message is not shown.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !std::thread::current()
            .name()
            .is_some_and(|n| n.starts_with("polars"))
        {
            default_hook(info);
        }
    }));
    let cli = Cli::parse();
    if let Err(e) = assets::choose(cli.assets.as_deref()) {
        return failed(e);
    }
    let result = match cli.command {
        Command::Datasets(c) => cmd_datasets::run(c),
        Command::Train(a) => cmd_model::train(a),
        Command::Eval(a) => cmd_model::eval(a),
        Command::Candidates(a) => cmd_model::candidates(a),
        Command::Validate(a) => cmd_validate::validate(a),
        Command::Load(c) => cmd_load::run(c),
        Command::Run(a) => cmd_run::run(a),
        Command::Compare(a) => match cmd_reports::compare_cmd(a) {
            Ok(true) => return ExitCode::from(cmd_reports::REGRESSED),
            Ok(false) => Ok(()),
            Err(e) => Err(e),
        },
        Command::Baseline(c) => cmd_reports::baseline(c),
        Command::Merge(a) => cmd_reports::merge(a),
        Command::Report(a) => cmd_reports::report(a),
        Command::Calibrate(a) => cmd_calibrate::calibrate(a),
        Command::Predictors(c) => cmd_calibrate::predictors(c),
        Command::Replay(a) => cmd_run::replay_cmd(a),
        Command::Stress(a) => cmd_stress::stress(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => failed(e),
    }
}

/// Prints the error; exit code 2 for bad input, 130 for an interruption, 1 otherwise.
fn failed(e: anyhow::Error) -> ExitCode {
    eprintln!("error: {e:#}");
    // A run stopped by Ctrl-C or SIGTERM: 130, as a shell reports an interrupted command
    // (a second signal exits at once with the same code).
    if e.chain().any(|c| {
        matches!(
            c.downcast_ref::<opa_harness::run::RunError>(),
            Some(opa_harness::run::RunError::Interrupted(_))
        )
    }) {
        ExitCode::from(130)
    } else if e.chain().any(|c| c.downcast_ref::<BadInput>().is_some()) {
        ExitCode::from(2)
    } else {
        ExitCode::FAILURE
    }
}
