//! Files of a run directory, written atomically (temporary file, then rename).

use crate::summary::SelectorSummary;
use opa_predictors::Phase;
use polars::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// One run of a candidate on a frame (a row of `samples.parquet`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Selector name.
    pub selector: String,
    /// Deadline of this replay, ms.
    pub deadline_ms: f64,
    /// Frame index.
    pub frame: u64,
    /// Serve, probe, or skip (a frame dropped unanswered: nothing ran for it).
    pub phase: Phase,
    /// Architecture id of the candidate that ran (empty for a skip).
    pub candidate: String,
    /// Arrival, s.
    pub arrival_s: f64,
    /// Start on the virtual timeline, s.
    pub start_s: f64,
    /// Finish on the virtual timeline, s; of a served row, when its answer was served (a
    /// reused probe run's answer is served after the frame's latest run, or at the deadline
    /// when an escalation was late).
    pub finish_s: f64,
    /// Measured compute time, ms.
    pub compute_ms: f64,
    /// Finish − arrival, ms.
    pub latency_ms: f64,
    /// True class.
    pub label: u16,
    /// Predicted class ([`NO_ANSWER`] for a skip).
    pub predicted: u16,
    /// Highest softmax probability.
    pub confidence: f32,
    /// Prediction correct.
    pub correct: bool,
    /// Served within the deadline.
    pub deadline_met: bool,
    /// Injected CPU load when the run started (share of cores).
    pub cpu_load: f64,
    /// Content condition (`clean`, `fog@3`).
    pub condition: String,
}

impl Sample {
    /// One row per frame: its served row, or the row of a frame dropped unanswered (not
    /// its probe runs).
    pub fn is_frame(&self) -> bool {
        matches!(self.phase, Phase::Serve | Phase::Skip)
    }
}

/// [`Sample::predicted`] of a frame dropped unanswered.
pub const NO_ANSWER: u16 = u16::MAX;

/// The file in a live run directory with the latencies the oracle planned with (timed on the
/// machine during the run), beside the profile's.
pub const ORACLE_LATENCY_FILE: &str = "oracle-latency.json";

/// A probe, a switch or a frame dropped, for `events.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Selector name.
    pub selector: String,
    /// Deadline of the replay, ms.
    pub deadline_ms: f64,
    /// Frame index.
    pub frame: u64,
    /// Virtual time, s.
    pub time_s: f64,
    /// `probe`, `switch` or `skip`.
    pub kind: String,
    /// Candidate before (switch) or probed (probe).
    pub from: Option<String>,
    /// Candidate after a switch.
    pub to: Option<String>,
}

/// The file of a repeats directory (`opa run --repeat N`) listing its runs.
pub const REPEATS_FILE: &str = "repeats.json";

/// A repeats directory: one scenario run N times with N seed triples, each run a run
/// directory of its own below it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Repeats {
    /// Scenario name.
    pub scenario: String,
    /// The runs, in repeat order.
    pub runs: Vec<Repeat>,
}

/// One run of a [`Repeats`] directory.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Repeat {
    /// Its run directory, relative to the repeats directory.
    pub dir: String,
    /// Its seeds: stream, load, selector.
    pub seeds: [u64; 3],
}

/// Reads a JSON file of the run directory holding `what` (named in the error).
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path, what: &str) -> Result<T, RunError> {
    let text = std::fs::read(path).map_err(|e| RunError::Io {
        path: path.into(),
        source: e,
    })?;
    serde_json::from_slice(&text).map_err(|e| RunError::Table {
        path: path.into(),
        message: format!("not {what}: {e}"),
    })
}

/// The repeats `dir` holds, or None when it is not a repeats directory.
pub fn read_repeats(dir: &Path) -> Result<Option<Repeats>, RunError> {
    let path = dir.join(REPEATS_FILE);
    if !path.is_file() {
        return Ok(None);
    }
    let r: Repeats = read_json(&path, "a repeats list")?;
    if let Some(k) = r.runs.iter().find(|k| {
        let p = Path::new(&k.dir);
        p.is_absolute() || p.components().count() != 1 || k.dir == ".." || k.dir == "."
    }) {
        return Err(RunError::Table {
            path,
            message: format!("run {:?}: must be a directory name inside it", k.dir),
        });
    }
    if r.runs.is_empty() {
        return Err(RunError::Table {
            path,
            message: "lists no run".into(),
        });
    }
    Ok(Some(r))
}

/// Facts about the machine and build (`machine.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MachineInfo {
    /// CPU model name.
    pub cpu_model: String,
    /// Logical cores.
    pub cores: usize,
    /// Backend the run used.
    pub backend: String,
    /// burn version.
    pub burn_version: String,
    /// git commit of the working tree, if known.
    pub git_commit: Option<String>,
    /// opa version.
    pub opa_version: String,
}

/// `summary.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    /// Scenario name.
    pub scenario: String,
    /// `COMPLETE`, or `INCOMPLETE` when the run was interrupted.
    pub status: String,
    /// True when a slow-down factor emulated another device.
    pub emulated: bool,
    /// `live` (networks run on the backend under injected load) or `replay-from-profile`
    /// (outcomes drawn from a calibration profile).
    #[serde(default)]
    pub mode: String,
    /// Every deadline of the sweep, ascending (a shard replays part of the grid).
    #[serde(default)]
    pub deadlines_ms: Vec<f64>,
    /// The scenario's selector names, in replay order.
    #[serde(default)]
    pub selector_order: Vec<String>,
    /// Name of the oracle selector, when the scenario has one (for regret).
    #[serde(default)]
    pub oracle: Option<String>,
    /// `I/N` when this run is shard I of N of the (deadline × selector) grid.
    #[serde(default)]
    pub shard: Option<String>,
    /// Frames per turn when the selectors took turns on the stream (`opa run --interleave`);
    /// 0 when each played the whole stream in turn (and in runs written before the option).
    #[serde(default)]
    pub interleave_frames: usize,
    /// Live runs measured on the device, and runs a selector was handed from another
    /// selector's identical run (same frame, candidate, trace moment and warm state) instead
    /// of measuring anew; both 0 in replays.
    #[serde(default)]
    pub runs_measured: u64,
    #[serde(default)]
    pub runs_shared: u64,
    /// One entry per (selector, deadline).
    pub selectors: Vec<SelectorSummary>,
}

/// A run-directory file could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// I/O on a file.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A table could not be built, written or read.
    #[error("{}: {message}", path.display())]
    Table {
        /// The file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
}

/// Writes `bytes` to `path` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), RunError> {
    let tmp = path.with_file_name(format!(
        ".{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("out")
    ));
    std::fs::write(&tmp, bytes)
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| RunError::Io {
            path: path.into(),
            source: e,
        })
}

/// Writes a value as pretty JSON, atomically.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), RunError> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| RunError::Table {
        path: path.into(),
        message: e.to_string(),
    })?;
    write_atomic(path, &bytes)
}

/// Writes values as JSON lines, atomically.
pub fn write_jsonl<T: Serialize>(path: &Path, values: &[T]) -> Result<(), RunError> {
    let mut out = Vec::new();
    for v in values {
        out.extend(serde_json::to_vec(v).map_err(|e| RunError::Table {
            path: path.into(),
            message: e.to_string(),
        })?);
        out.push(b'\n');
    }
    write_atomic(path, &out)
}

pub(crate) fn table_err(path: &Path) -> impl Fn(PolarsError) -> RunError + '_ {
    move |e| RunError::Table {
        path: path.into(),
        message: e.to_string(),
    }
}

/// Column `name` of the table read from `path`; where it lacks one, the file is named as not
/// `what` (a parquet file of another kind: a profile where a run's samples belong, say).
pub(crate) fn column<'a>(
    df: &'a DataFrame,
    path: &Path,
    name: &str,
    what: &str,
) -> Result<&'a Column, RunError> {
    df.column(name).map_err(|_| RunError::Table {
        path: path.into(),
        message: format!("not {what}: no column `{name}`"),
    })
}

/// Writes samples as Parquet, atomically.
pub fn write_samples(path: &Path, rows: &[Sample]) -> Result<(), RunError> {
    let col = |name: &str, s: Series| -> Column { s.with_name(name.into()).into() };
    let mut df = DataFrame::new_infer_height(vec![
        col(
            "selector",
            Series::new(
                "".into(),
                rows.iter().map(|r| r.selector.as_str()).collect::<Vec<_>>(),
            ),
        ),
        col(
            "deadline_ms",
            Series::new(
                "".into(),
                rows.iter().map(|r| r.deadline_ms).collect::<Vec<_>>(),
            ),
        ),
        col(
            "frame",
            Series::new("".into(), rows.iter().map(|r| r.frame).collect::<Vec<_>>()),
        ),
        col(
            "phase",
            Series::new(
                "".into(),
                rows.iter().map(|r| r.phase.as_str()).collect::<Vec<_>>(),
            ),
        ),
        col(
            "candidate",
            Series::new(
                "".into(),
                rows.iter()
                    .map(|r| r.candidate.as_str())
                    .collect::<Vec<_>>(),
            ),
        ),
        col(
            "arrival_s",
            Series::new(
                "".into(),
                rows.iter().map(|r| r.arrival_s).collect::<Vec<_>>(),
            ),
        ),
        col(
            "start_s",
            Series::new(
                "".into(),
                rows.iter().map(|r| r.start_s).collect::<Vec<_>>(),
            ),
        ),
        col(
            "finish_s",
            Series::new(
                "".into(),
                rows.iter().map(|r| r.finish_s).collect::<Vec<_>>(),
            ),
        ),
        col(
            "compute_ms",
            Series::new(
                "".into(),
                rows.iter().map(|r| r.compute_ms).collect::<Vec<_>>(),
            ),
        ),
        col(
            "latency_ms",
            Series::new(
                "".into(),
                rows.iter().map(|r| r.latency_ms).collect::<Vec<_>>(),
            ),
        ),
        col(
            "label",
            Series::new(
                "".into(),
                rows.iter().map(|r| r.label as u32).collect::<Vec<_>>(),
            ),
        ),
        col(
            "predicted",
            Series::new(
                "".into(),
                rows.iter().map(|r| r.predicted as u32).collect::<Vec<_>>(),
            ),
        ),
        col(
            "confidence",
            Series::new(
                "".into(),
                rows.iter().map(|r| r.confidence).collect::<Vec<_>>(),
            ),
        ),
        col(
            "correct",
            Series::new(
                "".into(),
                rows.iter().map(|r| r.correct).collect::<Vec<_>>(),
            ),
        ),
        col(
            "deadline_met",
            Series::new(
                "".into(),
                rows.iter().map(|r| r.deadline_met).collect::<Vec<_>>(),
            ),
        ),
        col(
            "cpu_load",
            Series::new(
                "".into(),
                rows.iter().map(|r| r.cpu_load).collect::<Vec<_>>(),
            ),
        ),
        col(
            "condition",
            Series::new(
                "".into(),
                rows.iter()
                    .map(|r| r.condition.as_str())
                    .collect::<Vec<_>>(),
            ),
        ),
    ])
    .map_err(table_err(path))?;
    let tmp = path.with_file_name(format!(
        ".{}.tmp",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("samples")
    ));
    let file = std::fs::File::create(&tmp).map_err(|e| RunError::Io {
        path: tmp.clone(),
        source: e,
    })?;
    ParquetWriter::new(file)
        .finish(&mut df)
        .map_err(table_err(path))?;
    std::fs::rename(&tmp, path).map_err(|e| RunError::Io {
        path: path.into(),
        source: e,
    })
}

/// Runs `read` on a parquet reader of `file` (at `path`). A damaged file can make the
/// parquet decoder panic (in its worker threads) instead of failing: that is caught here
/// and reported as damage of the file, like any other decoding error.
pub(crate) fn read_parquet<T>(
    path: &Path,
    file: std::fs::File,
    read: impl FnOnce(ParquetReader<std::fs::File>) -> PolarsResult<T>,
) -> Result<T, RunError> {
    let reader = ParquetReader::new(file);
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| read(reader))) {
        Ok(r) => r.map_err(table_err(path)),
        Err(_) => Err(RunError::Table {
            path: path.into(),
            message: "damaged: its parquet data cannot be decoded".into(),
        }),
    }
}

/// Reads `samples.parquet` back.
pub fn read_samples(path: &Path) -> Result<Vec<Sample>, RunError> {
    let file = std::fs::File::open(path).map_err(|e| RunError::Io {
        path: path.into(),
        source: e,
    })?;
    let df = read_parquet(path, file, |r| r.finish())?;
    let e = table_err(path);
    let s = |n: &str| column(&df, path, n, "a run's samples table");
    let (sel, dl, fr, ph, ca) = (
        s("selector")?.str().map_err(&e)?,
        s("deadline_ms")?.f64().map_err(&e)?,
        s("frame")?.u64().map_err(&e)?,
        s("phase")?.str().map_err(&e)?,
        s("candidate")?.str().map_err(&e)?,
    );
    let (ar, st, fi, co, la) = (
        s("arrival_s")?.f64().map_err(&e)?,
        s("start_s")?.f64().map_err(&e)?,
        s("finish_s")?.f64().map_err(&e)?,
        s("compute_ms")?.f64().map_err(&e)?,
        s("latency_ms")?.f64().map_err(&e)?,
    );
    let (lb, pr, cf, cr, dm) = (
        s("label")?.u32().map_err(&e)?,
        s("predicted")?.u32().map_err(&e)?,
        s("confidence")?.f32().map_err(&e)?,
        s("correct")?.bool().map_err(&e)?,
        s("deadline_met")?.bool().map_err(&e)?,
    );
    let (cl, cd) = (
        s("cpu_load")?.f64().map_err(&e)?,
        s("condition")?.str().map_err(&e)?,
    );
    let missing = || RunError::Table {
        path: path.into(),
        message: "null value in samples".into(),
    };
    (0..df.height())
        .map(|i| {
            Ok(Sample {
                selector: sel.get(i).ok_or_else(missing)?.to_string(),
                deadline_ms: dl.get(i).ok_or_else(missing)?,
                frame: fr.get(i).ok_or_else(missing)?,
                phase: {
                    let name = ph.get(i).ok_or_else(missing)?;
                    Phase::parse(name).ok_or_else(|| RunError::Table {
                        path: path.into(),
                        message: format!("row {i}: unknown phase {name:?}"),
                    })?
                },
                candidate: ca.get(i).ok_or_else(missing)?.to_string(),
                arrival_s: ar.get(i).ok_or_else(missing)?,
                start_s: st.get(i).ok_or_else(missing)?,
                finish_s: fi.get(i).ok_or_else(missing)?,
                compute_ms: co.get(i).ok_or_else(missing)?,
                latency_ms: la.get(i).ok_or_else(missing)?,
                label: lb.get(i).ok_or_else(missing)? as u16,
                predicted: pr.get(i).ok_or_else(missing)? as u16,
                confidence: cf.get(i).ok_or_else(missing)?,
                correct: cr.get(i).ok_or_else(missing)?,
                deadline_met: dm.get(i).ok_or_else(missing)?,
                cpu_load: cl.get(i).ok_or_else(missing)?,
                condition: cd.get(i).ok_or_else(missing)?.to_string(),
            })
        })
        .collect()
}
