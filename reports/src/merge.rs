//! Joining run directories: the shards of one sweep (`opa run --shard I/N`), run anywhere,
//! become one run directory equal to an unsharded run.

use crate::format::{
    Event, ORACLE_LATENCY_FILE, RunError, RunSummary, Sample, write_atomic, write_json,
    write_jsonl, write_samples,
};
use crate::summary::fill_regret;
use std::path::{Path, PathBuf};

fn err(path: &Path, message: String) -> RunError {
    RunError::Table {
        path: path.into(),
        message,
    }
}

fn read_events(path: &Path) -> Result<Vec<Event>, RunError> {
    let text = std::fs::read_to_string(path).map_err(|e| RunError::Io {
        path: path.into(),
        source: e,
    })?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).map_err(|e| err(path, format!("bad event line: {e}"))))
        .collect()
}

/// Merges the run directories `inputs` (shards of one scenario and sweep) into `out`.
/// Fails, writing nothing, when they replay different scenarios or overlap.
pub fn merge(inputs: &[PathBuf], out: &Path) -> Result<RunSummary, RunError> {
    let first = inputs
        .first()
        .ok_or_else(|| err(out, "nothing to merge".into()))?;
    let scenario_toml = std::fs::read(first.join("scenario.toml")).map_err(|e| RunError::Io {
        path: first.join("scenario.toml"),
        source: e,
    })?;
    let mut merged: Option<RunSummary> = None;
    let mut samples: Vec<Sample> = Vec::new();
    let mut events: Vec<Event> = Vec::new();
    let mut all_complete = true;
    for dir in inputs {
        let (summary, rows) = crate::compare::read_run(dir)?;
        let toml_path = dir.join("scenario.toml");
        let t = std::fs::read(&toml_path).map_err(|e| RunError::Io {
            path: toml_path.clone(),
            source: e,
        })?;
        if t != scenario_toml {
            return Err(err(
                &toml_path,
                format!(
                    "replays another scenario (or other settings) than {}",
                    first.join("scenario.toml").display()
                ),
            ));
        }
        all_complete &= summary.status == "COMPLETE";
        let m = merged.get_or_insert_with(|| RunSummary {
            selectors: Vec::new(),
            shard: None,
            runs_measured: 0,
            runs_shared: 0,
            ..summary.clone()
        });
        m.runs_measured += summary.runs_measured;
        m.runs_shared += summary.runs_shared;
        if summary.deadlines_ms != m.deadlines_ms
            || summary.selector_order != m.selector_order
            || summary.interleave_frames != m.interleave_frames
        {
            return Err(err(
                &dir.join("summary.json"),
                "swept other deadlines or selectors, or interleaved them otherwise, than the first run"
                    .into(),
            ));
        }
        for s in &summary.selectors {
            if m.selectors
                .iter()
                .any(|x| x.selector == s.selector && x.deadline_ms == s.deadline_ms)
            {
                return Err(err(
                    &dir.join("summary.json"),
                    format!(
                        "{} @ {} ms is in two of the runs to merge",
                        s.selector, s.deadline_ms
                    ),
                ));
            }
            m.selectors.push(s.clone());
        }
        samples.extend(rows);
        events.extend(read_events(&dir.join("events.jsonl"))?);
    }
    let mut m = merged.expect("at least one input");
    let order = |sel: &str, d: f64| -> (usize, usize) {
        (
            m.deadlines_ms
                .iter()
                .position(|x| *x == d)
                .unwrap_or(usize::MAX),
            m.selector_order
                .iter()
                .position(|x| x == sel)
                .unwrap_or(usize::MAX),
        )
    };
    let key_s: Vec<(usize, usize)> = m
        .selectors
        .iter()
        .map(|s| order(&s.selector, s.deadline_ms))
        .collect();
    let mut idx: Vec<usize> = (0..m.selectors.len()).collect();
    idx.sort_by_key(|&i| key_s[i]);
    m.selectors = idx.iter().map(|&i| m.selectors[i].clone()).collect();
    samples.sort_by_key(|r| order(&r.selector, r.deadline_ms));
    events.sort_by_key(|e| order(&e.selector, e.deadline_ms));
    let whole = m.selectors.len() == m.deadlines_ms.len() * m.selector_order.len();
    m.status = if all_complete && whole {
        "COMPLETE"
    } else {
        "INCOMPLETE"
    }
    .into();
    if let Some(o) = m.oracle.clone() {
        fill_regret(&mut m.selectors, &o);
    }
    std::fs::create_dir_all(out).map_err(|e| RunError::Io {
        path: out.into(),
        source: e,
    })?;
    write_atomic(&out.join("scenario.toml"), &scenario_toml)?;
    if let Ok(machine) = std::fs::read(first.join("machine.json")) {
        write_atomic(&out.join("machine.json"), &machine)?;
    }
    // Live, each shard that ran an oracle timed the candidates itself: the first one's tables.
    let _ = std::fs::remove_file(out.join(ORACLE_LATENCY_FILE));
    if let Some(timed) = inputs
        .iter()
        .find_map(|d| std::fs::read(d.join(ORACLE_LATENCY_FILE)).ok())
    {
        write_atomic(&out.join(ORACLE_LATENCY_FILE), &timed)?;
    }
    write_samples(&out.join("samples.parquet"), &samples)?;
    write_jsonl(&out.join("events.jsonl"), &events)?;
    write_json(&out.join("summary.json"), &m)?;
    Ok(m)
}
