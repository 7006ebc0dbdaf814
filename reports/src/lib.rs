//! The run directory: its format (one row per run in `samples.parquet`, events, summaries,
//! machine facts), the metrics of DESIGN.md computed from raw rows, and atomic writers.
//!
//! ```
//! use opa_reports::{Sample, summarize, SummaryInputs};
//! let rows = vec![Sample { selector: "fixed".into(), deadline_ms: 20.0, frame: 0,
//!     phase: opa_predictors::Phase::Serve,
//!     candidate: "r28-k3e2-k3e2-k3e2".into(), arrival_s: 0.0, start_s: 0.0, finish_s: 0.010,
//!     compute_ms: 10.0, latency_ms: 10.0, label: 1, predicted: 1, confidence: 0.9, correct: true,
//!     deadline_met: true, cpu_load: 0.0, condition: "clean".into() }];
//! let s = summarize(&rows, &SummaryInputs { selector: "fixed", deadline_ms: 20.0, emulated: false,
//!     min_frames: 1, load_requested: 0.0, load_achieved: 0.0, complete: true });
//! assert_eq!(s.top1_within_deadline, 1.0);
//! ```

pub mod compare;
pub mod figures;
mod format;
pub mod goals;
pub mod merge;
pub mod profile;
pub mod report;
mod summary;

pub use format::{
    Event, MachineInfo, NO_ANSWER, ORACLE_LATENCY_FILE, REPEATS_FILE, Repeat, Repeats, RunError,
    RunSummary, Sample, read_repeats, read_samples, write_atomic, write_json, write_jsonl,
    write_samples,
};
pub use summary::{SelectorSummary, SummaryInputs, Verdict, fill_regret, percentile, summarize};
