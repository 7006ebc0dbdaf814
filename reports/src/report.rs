//! `opa report`: `report.md`, CSV tables and the five figures (PNG and SVG) from run
//! directories (and, for the candidate and predictor figures, a calibration profile).

use crate::figures::{self, Figure, ParetoPanel, Series, TimelinePanel};
use crate::format::{RunError, RunSummary, Sample, write_atomic};
use crate::summary::SelectorSummary;
use opa_predictors::Phase;
use opa_predictors::predict::{Variant, cross_validate_with};
use opa_predictors::profile::Profile;
use serde::Serialize;
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// A run directory, read.
pub struct Run {
    /// Where it was read from.
    pub dir: PathBuf,
    /// Its `summary.json`.
    pub summary: RunSummary,
    /// Its samples.
    pub samples: Vec<Sample>,
}

/// One row of a breakdown table.
#[derive(Clone, Debug, PartialEq)]
pub struct BreakdownRow {
    /// Selector.
    pub selector: String,
    /// The group (load level or content family).
    pub group: String,
    /// Frames (served, and dropped unanswered: not correct, missed).
    pub frames: usize,
    /// Top-1, %.
    pub top1: f64,
    /// Top-1 within deadline, %.
    pub top1_within_deadline: f64,
    /// Deadline misses, %.
    pub miss_rate: f64,
    /// p95 latency of the served frames, ms.
    pub p95_ms: f64,
}

/// Frames of one deadline (served, and dropped unanswered) grouped by `key`, per selector
/// (in first-seen order).
pub fn breakdown(
    samples: &[Sample],
    deadline_ms: f64,
    key: impl Fn(&Sample) -> String,
) -> Vec<BreakdownRow> {
    let mut groups: Vec<((String, String), Vec<&Sample>)> = Vec::new();
    for r in samples
        .iter()
        .filter(|r| r.is_frame() && r.deadline_ms == deadline_ms)
    {
        let k = (r.selector.clone(), key(r));
        match groups.iter_mut().find(|(g, _)| *g == k) {
            Some((_, v)) => v.push(r),
            None => groups.push((k, vec![r])),
        }
    }
    let selectors: Vec<String> = {
        let mut s: Vec<String> = Vec::new();
        for ((sel, _), _) in &groups {
            if !s.contains(sel) {
                s.push(sel.clone());
            }
        }
        s
    };
    groups.sort_by(|a, b| {
        let pa = selectors.iter().position(|s| *s == a.0.0);
        let pb = selectors.iter().position(|s| *s == b.0.0);
        pa.cmp(&pb).then(a.0.1.cmp(&b.0.1))
    });
    groups
        .into_iter()
        .map(|((selector, group), rows)| {
            let n = rows.len().max(1) as f64;
            let lat: Vec<f64> = rows
                .iter()
                .filter(|r| r.phase == Phase::Serve)
                .map(|r| r.latency_ms)
                .collect();
            BreakdownRow {
                selector,
                group,
                frames: rows.len(),
                top1: 100.0 * rows.iter().filter(|r| r.correct).count() as f64 / n,
                top1_within_deadline: 100.0
                    * rows.iter().filter(|r| r.correct && r.deadline_met).count() as f64
                    / n,
                miss_rate: 100.0 * rows.iter().filter(|r| !r.deadline_met).count() as f64 / n,
                p95_ms: crate::summary::percentile(&lat, 95.0),
            }
        })
        .collect()
}

/// The load phase of a frame: the requested CPU load rounded to a quarter.
pub fn load_group(r: &Sample) -> String {
    format!("load {:.2}", (r.cpu_load * 4.0).round() / 4.0)
}

/// The content family of a frame (`clean`, `fog`, ...).
pub fn content_group(r: &Sample) -> String {
    r.condition
        .split_once('@')
        .map_or(r.condition.clone(), |(f, _)| f.to_string())
}

fn summary_table(rows: &[&SelectorSummary]) -> (String, String) {
    let mut md = String::from(
        "| selector | deadline (ms) | frames | skipped | top-1 | top-1 within deadline | miss rate | p50 ms | p95 ms | p99 ms | decision overhead | probes | switches | regret (pts) | verdict |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let mut csv = csv::Writer::from_writer(Vec::new());
    for s in rows {
        let regret = s
            .regret
            .map_or("–".to_string(), |r| format!("{:.2}", 100.0 * r));
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {:.2} % | {:.2} % | {:.2} % | {:.3} | {:.3} | {:.3} | {:.3} % | {} | {} | {} | {} |",
            s.selector,
            s.deadline_ms,
            s.frames,
            s.skipped,
            100.0 * s.top1,
            100.0 * s.top1_within_deadline,
            100.0 * s.deadline_miss_rate,
            s.latency_p50_ms,
            s.latency_p95_ms,
            s.latency_p99_ms,
            100.0 * s.decision_overhead,
            s.probes,
            s.switches,
            regret,
            s.verdict.verdict
        );
        csv.serialize(SummaryCsv {
            selector: &s.selector,
            deadline_ms: s.deadline_ms,
            frames: s.frames,
            skipped: s.skipped,
            top1: s.top1,
            top1_within_deadline: s.top1_within_deadline,
            deadline_miss_rate: s.deadline_miss_rate,
            latency_p50_ms: s.latency_p50_ms,
            latency_p95_ms: s.latency_p95_ms,
            latency_p99_ms: s.latency_p99_ms,
            decision_overhead: s.decision_overhead,
            probes: s.probes,
            switches: s.switches,
            regret: s.regret,
            verdict: &s.verdict.verdict,
        })
        .expect("a CSV row in memory");
    }
    (md, csv_text(csv))
}

/// A row of `summary.csv`.
#[derive(Serialize)]
struct SummaryCsv<'a> {
    selector: &'a str,
    deadline_ms: f64,
    frames: usize,
    skipped: usize,
    top1: f64,
    top1_within_deadline: f64,
    deadline_miss_rate: f64,
    latency_p50_ms: f64,
    latency_p95_ms: f64,
    latency_p99_ms: f64,
    decision_overhead: f64,
    probes: usize,
    switches: usize,
    regret: Option<f64>,
    verdict: &'a str,
}

/// The text a CSV writer over memory holds.
fn csv_text(w: csv::Writer<Vec<u8>>) -> String {
    let bytes = w.into_inner().expect("a CSV writer over memory flushes");
    String::from_utf8(bytes).expect("CSV of UTF-8 fields")
}

fn breakdown_table(rows: &[BreakdownRow], what: &str) -> (String, String) {
    let mut md = format!(
        "| selector | {what} | frames | top-1 | top-1 within deadline | miss rate | p95 ms |\n|---|---|---|---|---|---|---|\n"
    );
    let mut csv = csv::Writer::from_writer(Vec::new());
    csv.write_record([
        "selector",
        &what.replace(' ', "_"),
        "frames",
        "top1_percent",
        "top1_within_deadline_percent",
        "miss_rate_percent",
        "latency_p95_ms",
    ])
    .expect("a CSV row in memory");
    for r in rows {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:.2} % | {:.2} % | {:.2} % | {:.3} |",
            r.selector, r.group, r.frames, r.top1, r.top1_within_deadline, r.miss_rate, r.p95_ms
        );
        csv.write_record([
            r.selector.clone(),
            r.group.clone(),
            r.frames.to_string(),
            r.top1.to_string(),
            r.top1_within_deadline.to_string(),
            r.miss_rate.to_string(),
            r.p95_ms.to_string(),
        ])
        .expect("a CSV row in memory");
    }
    (md, csv_text(csv))
}

/// The Markdown of a report (figures referenced by file name), and its CSV tables by file
/// name. Pure: the same runs give the same text.
pub fn markdown(
    runs: &[Run],
    deadline_ms: f64,
    with_profile: bool,
) -> (String, Vec<(String, String)>) {
    let mut md = String::new();
    let first = &runs[0].summary;
    let _ = writeln!(md, "# opa report: {}\n", first.scenario);
    for r in runs {
        let _ = writeln!(
            md,
            "- `{}`: {} run, {}, deadlines {:?} ms{}",
            r.dir.display(),
            if r.summary.mode.is_empty() {
                "live"
            } else {
                &r.summary.mode
            },
            r.summary.status,
            r.summary.deadlines_ms,
            if r.summary.emulated {
                ", EMULATED device"
            } else {
                ""
            }
        );
    }
    let _ = writeln!(
        md,
        "\n## Top-1 within deadline against the deadline\n\n![top-1 within deadline vs deadline](headline.png)\n\n\
         Each line is a selector; a point is one replay of the whole stream at that deadline. The \
         y value counts frames that were both correct and answered within the deadline, over all \
         frames: a late answer, or none (a frame dropped: `skipped`), is a miss. Higher is \
         better. The oracle (a condition oracle at zero cost: it knows each frame's content and \
         load and picks by the profile's top-1 tables and, live, latencies timed on this \
         machine in the run) is the reference, and the gap to it is the regret; it is not a \
         bound (it picks by expected values).\n"
    );
    let mut all: Vec<&SelectorSummary> = runs.iter().flat_map(|r| &r.summary.selectors).collect();
    all.sort_by(|a, b| a.deadline_ms.total_cmp(&b.deadline_ms));
    let (sm, sc) = summary_table(&all);
    let _ = writeln!(md, "## Per-selector summary\n\n{sm}");
    let samples: Vec<Sample> = runs.iter().flat_map(|r| r.samples.clone()).collect();
    let (lm, lc) = breakdown_table(&breakdown(&samples, deadline_ms, load_group), "load phase");
    let _ = writeln!(
        md,
        "## By load phase (deadline {deadline_ms} ms)\n\nFrames grouped by the CPU load requested when they ran, rounded to a quarter.\n\n{lm}"
    );
    let (cm, cc) = breakdown_table(&breakdown(&samples, deadline_ms, content_group), "content");
    let _ = writeln!(
        md,
        "## By content (deadline {deadline_ms} ms)\n\nFrames grouped by corruption family (all severities together).\n\n{cm}"
    );
    let _ = writeln!(
        md,
        "## Figures\n\n\
         - `timeline.png`: at {deadline_ms} ms, the injected CPU load and content severity over time, then one panel per selector: end-to-end latency of each frame (grey) against the deadline (black), the serving candidate's rank by multiply-adds (blue, 0 = cheapest, 1 = largest) and top-1 over the last 30 frames (green).\n\
         - `latency-cdf.png`: at {deadline_ms} ms, the share of frames answered within x ms per selector; the dashed line is the deadline.\n"
    );
    if with_profile {
        let _ = writeln!(
            md,
            "- `pareto.png`: every candidate's top-1 against its mean latency under a few calibration conditions (clean and severity-3 corruptions, idle and fully loaded); the red line joins the Pareto front.\n\
             - `predictors.png`: each predictor variant's held-out predictions against the measurements (leave-condition-out): top row top-1, bottom row latency; points on the red diagonal are exact.\n"
        );
    }
    for name in ["timeline", "latency-cdf"] {
        let _ = writeln!(md, "![{name}]({name}.png)\n");
    }
    if with_profile {
        for name in ["pareto", "predictors"] {
            let _ = writeln!(md, "![{name}]({name}.png)\n");
        }
    }
    (
        md,
        vec![
            ("summary.csv".into(), sc),
            ("by-load.csv".into(), lc),
            ("by-content.csv".into(), cc),
        ],
    )
}

/// A figure to write: file stem, data, size in pixels.
pub type FigureSpec = (&'static str, Figure, (u32, u32));

/// Cross-validation folds the figures of `profile` fit (every predictor variant's; see
/// [`figure_data`]'s `on_fold`).
pub fn cross_validation_folds(profile: &Profile) -> usize {
    Variant::ALL.len() * profile.conditions().len()
}

/// The figures' data; `on_fold` is called as each of the predictors' cross-validation folds
/// ends (with a profile: [`cross_validation_folds`] calls, the long part of a report).
pub fn figure_data(
    runs: &[Run],
    deadline_ms: f64,
    profile: Option<&Profile>,
    on_fold: &(dyn Fn() + Sync),
) -> Result<Vec<FigureSpec>, String> {
    let mut figs = Vec::new();
    // 1. Headline.
    let mut names: Vec<String> = Vec::new();
    for r in runs {
        for s in &r.summary.selectors {
            if !names.contains(&s.selector) {
                names.push(s.selector.clone());
            }
        }
    }
    let headline: Vec<Series> = names
        .iter()
        .map(|n| {
            let mut pts: Vec<(f64, f64)> = runs
                .iter()
                .flat_map(|r| &r.summary.selectors)
                .filter(|s| &s.selector == n)
                .map(|s| (s.deadline_ms, 100.0 * s.top1_within_deadline))
                .collect();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            Series {
                name: n.clone(),
                points: pts,
            }
        })
        .collect();
    figs.push(("headline", Figure::Headline(headline), (1000, 650)));

    // 3. Timeline and 4. CDF, from the frames at `deadline_ms`.
    let at: Vec<&Sample> = runs
        .iter()
        .flat_map(|r| &r.samples)
        .filter(|r| r.deadline_ms == deadline_ms && r.phase == Phase::Serve)
        .collect();
    let rank = |id: &str| -> f64 {
        match profile {
            Some(p) => {
                let mut macs: Vec<u64> = p.candidates.iter().map(|c| c.macs).collect();
                macs.sort_unstable();
                let m = p
                    .candidates
                    .iter()
                    .find(|c| c.id == id)
                    .map_or(0, |c| c.macs);
                macs.iter().position(|x| *x == m).unwrap_or(0) as f64
                    / (macs.len().max(2) - 1) as f64
            }
            None => 0.0,
        }
    };
    let first_sel = names.first().cloned().unwrap_or_default();
    let cond_rows: Vec<&&Sample> = at.iter().filter(|r| r.selector == first_sel).collect();
    let load: Vec<(f64, f64)> = cond_rows
        .iter()
        .map(|r| (r.arrival_s, r.cpu_load))
        .collect();
    let severity: Vec<(f64, f64)> = cond_rows
        .iter()
        .map(|r| {
            let s = r
                .condition
                .split_once('@')
                .and_then(|(_, s)| s.parse::<f64>().ok())
                .unwrap_or(0.0);
            (r.arrival_s, s / 5.0)
        })
        .collect();
    let mut panels = Vec::new();
    let mut cdfs = Vec::new();
    for n in &names {
        let rows: Vec<&&Sample> = at.iter().filter(|r| &r.selector == n).collect();
        if rows.is_empty() {
            continue;
        }
        let mut rolling = Vec::new();
        let mut window: std::collections::VecDeque<bool> = Default::default();
        for r in &rows {
            window.push_back(r.correct);
            if window.len() > 30 {
                window.pop_front();
            }
            rolling.push((
                r.arrival_s,
                window.iter().filter(|c| **c).count() as f64 / window.len() as f64,
            ));
        }
        panels.push(TimelinePanel {
            selector: n.clone(),
            latency: rows.iter().map(|r| (r.arrival_s, r.latency_ms)).collect(),
            serving: rows
                .iter()
                .map(|r| (r.arrival_s, rank(&r.candidate)))
                .collect(),
            rolling_top1: rolling,
        });
        let mut lat: Vec<f64> = rows.iter().map(|r| r.latency_ms).collect();
        lat.sort_by(f64::total_cmp);
        let k = lat.len() as f64;
        cdfs.push(Series {
            name: n.clone(),
            points: lat
                .iter()
                .enumerate()
                .map(|(i, &l)| (l, (i + 1) as f64 / k))
                .collect(),
        });
    }
    let rows_px = 170 * (panels.len() as u32 + 1) + 60;
    figs.push((
        "timeline",
        Figure::Timeline {
            deadline_ms,
            load,
            severity,
            panels,
        },
        (1200, rows_px),
    ));
    figs.push((
        "latency-cdf",
        Figure::Cdf {
            deadline_ms,
            series: cdfs,
        },
        (1000, 650),
    ));

    if let Some(p) = profile {
        // 2. Candidates per condition.
        let wanted = ["clean", "gaussian-noise@3", "fog@3", "motion-blur@3"];
        let mut contents: Vec<usize> = wanted.iter().filter_map(|w| p.content_index(w)).collect();
        for i in 0..p.contents.len() {
            if contents.len() >= 4 {
                break;
            }
            if !contents.contains(&i) {
                contents.push(i);
            }
        }
        let loads = [0, p.loads.len() - 1];
        let mut panels = Vec::new();
        for &l in loads.iter().take(if p.loads.len() > 1 { 2 } else { 1 }) {
            for &c in &contents {
                panels.push(ParetoPanel {
                    title: format!("{}, load {}", p.contents[c], p.loads[l]),
                    points: (0..p.candidates.len())
                        .map(|k| (p.latency[k][l].mean_ms, 100.0 * p.content[k][c].top1))
                        .collect(),
                });
            }
        }
        let rows = panels.len().div_ceil(4) as u32;
        figs.push(("pareto", Figure::Pareto(panels), (1400, 330 * rows + 50)));
        // 5. Predicted vs measured.
        let (mut acc, mut lat) = (Vec::new(), Vec::new());
        for v in Variant::ALL {
            let held = cross_validate_with(v, p, on_fold)?;
            let name = if v.deployable() {
                v.name().to_string()
            } else {
                format!("{} (upper bound)", v.name())
            };
            acc.push(Series {
                name: name.clone(),
                points: held
                    .iter()
                    .map(|h| (100.0 * h.top1, 100.0 * h.predicted.top1))
                    .collect(),
            });
            lat.push(Series {
                name,
                points: held
                    .iter()
                    .map(|h| (h.latency_ms, h.predicted.latency_ms))
                    .collect(),
            });
        }
        figs.push((
            "predictors",
            Figure::Predicted {
                accuracy: acc,
                latency: lat,
            },
            (1600, 700),
        ));
    }
    Ok(figs)
}

/// Reads run directories.
pub fn read_runs(dirs: &[PathBuf]) -> Result<Vec<Run>, RunError> {
    dirs.iter()
        .map(|d| {
            let (summary, samples) = crate::compare::read_run(d)?;
            Ok(Run {
                dir: d.clone(),
                summary,
                samples,
            })
        })
        .collect()
}

/// Writes `report.md`, the CSV tables and every figure (PNG and SVG) into `out`; returns
/// the files written. `on_fold`: see [`figure_data`].
pub fn write_report(
    runs: &[Run],
    deadline_ms: f64,
    profile: Option<&Profile>,
    out: &Path,
    on_fold: &(dyn Fn() + Sync),
) -> Result<Vec<PathBuf>, RunError> {
    let bad = |m: String| RunError::Table {
        path: out.into(),
        message: m,
    };
    std::fs::create_dir_all(out).map_err(|e| RunError::Io {
        path: out.into(),
        source: e,
    })?;
    let mut written = Vec::new();
    for (name, fig, size) in figure_data(runs, deadline_ms, profile, on_fold).map_err(bad)? {
        let r = figures::render(&fig, size).map_err(|m| bad(format!("figure {name}: {m}")))?;
        let png = out.join(format!("{name}.png"));
        let svg = out.join(format!("{name}.svg"));
        write_atomic(&png, &r.png)?;
        write_atomic(&svg, r.svg.as_bytes())?;
        written.extend([png, svg]);
    }
    let (md, tables) = markdown(runs, deadline_ms, profile.is_some());
    for (name, csv) in tables {
        let p = out.join(name);
        write_atomic(&p, csv.as_bytes())?;
        written.push(p);
    }
    let p = out.join("report.md");
    write_atomic(&p, md.as_bytes())?;
    written.push(p);
    Ok(written)
}
