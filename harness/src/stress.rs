//! `opa stress`: the selectors on many random scenarios, not only the shipped ones. Each
//! scenario is drawn from a seeded space of streams (frame rate, content segments with
//! corruptions and class subsets) and CPU load phases, replayed from the calibration profile
//! at a sweep of deadlines; per deadline, a reference selector (OPA) is compared with every
//! other one scenario by scenario (paired: the same frames, load and deadline).
//!
//! The space (every draw independent, from the seed and the scenario's index):
//! - one frame rate for the stream, of a given list (default [`DEFAULT_FPS`]: 10, 15 or 30
//!   frames per second, where frames never queue; `opa stress --fps 60,120,300` for streams
//!   faster than the device at tight deadlines);
//! - 1 to 4 segments of 30, 60 or 90 s; each, with probability 0.7, one of the twelve
//!   corruption families at a severity of 1 to 5, and with probability 0.3 a subset of 2 to
//!   6 of the 10 classes;
//! - 1 to 3 load phases of 10, 30 or 60 s at a CPU load of 0, 0.1, 0.25, 0.5, 0.75 or 1.0
//!   (the last phase's load holds to the end of the stream);
//! - stream, load and selector seeds drawn from the same generator.

use opa_predictors::stats::mean_se;
use opa_reports::goals::{Cell, Cells};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Frame rates a stream draws from when none are given.
pub const DEFAULT_FPS: [f64; 3] = [10.0, 15.0, 30.0];

/// Corruption families a segment may draw.
pub const CORRUPTIONS: [&str; 12] = [
    "gaussian-noise",
    "shot-noise",
    "impulse-noise",
    "defocus-blur",
    "gaussian-blur",
    "motion-blur",
    "brightness",
    "contrast",
    "fog",
    "pixelate",
    "jpeg",
    "occlusion",
];

/// The line-up when none is given: OPA (per frame, and in the paper's probing rounds), the
/// hindsight oracle and every implementable baseline, each with its defaults.
pub const DEFAULT_SELECTORS: &str = r#"[[selector]]
kind = "opa"

[[selector]]
kind = "opa"
name = "opa-rounds"
evidence-frames = 0

[[selector]]
kind = "exhaustive"

[[selector]]
kind = "oracle"

[[selector]]
kind = "ofa-static"

[[selector]]
kind = "dynamic-ofa"

[[selector]]
kind = "adaptivenet"

[[selector]]
kind = "fixed-largest"

[[selector]]
kind = "fixed-smallest"

[[selector]]
kind = "random"
"#;

/// The name of scenario `index` (from 0) of a stress sweep.
pub fn scenario_name(index: usize) -> String {
    format!("stress-{index:03}")
}

/// Scenario `index` of the sweep seeded `seed`, as scenario-file text, with `selectors`
/// (`[[selector]]` tables) appended; its frame rate one of `fps` (not empty, each in
/// [`crate::scenario::SEGMENT_FPS`]); its deadline is the least of `deadlines` (the
/// sweep's, named in a comment). The same seed, index and frame rates draw the same
/// scenario whatever the number of scenarios.
pub fn random_scenario(
    seed: u64,
    index: usize,
    fps: &[f64],
    deadlines: &[f64],
    selectors: &str,
) -> String {
    let mut r = ChaCha8Rng::seed_from_u64(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ index as u64);
    let fps = fps[r.random_range(0..fps.len())];
    let sweep: Vec<String> = deadlines.iter().map(f64::to_string).collect();
    let least = deadlines.iter().copied().fold(f64::INFINITY, f64::min);
    let mut t = format!(
        "# Drawn by `opa stress --seed {seed}` (scenario {index}), replayed at deadlines of {} ms\n\
         # (`opa replay FILE --deadline-ms {}`).\n\
         name = \"{}\"\n\n[requirement]\ndeadline-ms = {least:?}\n\n[seeds]\n",
        sweep.join(", "),
        sweep.join(","),
        scenario_name(index)
    );
    for key in ["stream", "load", "selector"] {
        t += &format!("{key} = {}\n", r.random_range(0..1_000_000u32));
    }
    for _ in 0..r.random_range(1..=4) {
        t += &format!(
            "\n[[stream.segment]]\nduration-s = {}\nfps = {fps}\n",
            [30, 60, 90][r.random_range(0..3)]
        );
        if r.random_bool(0.7) {
            t += &format!(
                "corruption = \"{}\"\nseverity = {}\n",
                CORRUPTIONS[r.random_range(0..CORRUPTIONS.len())],
                r.random_range(1..=5)
            );
        }
        if r.random_bool(0.3) {
            let mut classes: Vec<u32> = (0..10).collect();
            let k = r.random_range(2..=6);
            for i in 0..k {
                let j = r.random_range(i..10);
                classes.swap(i, j);
            }
            let mut subset = classes[..k].to_vec();
            subset.sort_unstable();
            t += &format!("class-mix = {{ subset = {subset:?} }}\n");
        }
    }
    for _ in 0..r.random_range(1..=3) {
        t += &format!(
            "\n[[workload.phase]]\nduration-s = {}\ncpu-load = {}\n",
            [10, 30, 60][r.random_range(0..3)],
            [0.0, 0.1, 0.25, 0.5, 0.75, 1.0][r.random_range(0..6)]
        );
    }
    t + "\n" + selectors
}

/// At one deadline, one selector against the reference over the scenarios where every
/// selector's run was VALID.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Versus {
    pub selector: String,
    /// Mean top-1 within the deadline, share of frames.
    pub mean_top1_within_deadline: f64,
    /// Mean of (reference − this selector) in top-1 within the deadline, percentage points,
    /// and its standard error over scenarios.
    pub reference_minus_pts: f64,
    pub reference_minus_se_pts: f64,
    /// Scenarios where the reference was more than 1 point below this selector.
    pub reference_below_1pt: usize,
    /// Mean decision overhead.
    pub mean_decision_overhead: f64,
}

/// One deadline's comparison.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AtDeadline {
    pub deadline_ms: f64,
    /// Scenarios compared (every selector VALID), and those left out.
    pub scenarios: usize,
    pub left_out: usize,
    pub selectors: Vec<Versus>,
}

/// Per deadline, `reference` against every selector of `order` (the reference's own row has
/// zero difference), from `cells`. Scenarios where any selector's run is not VALID at a
/// deadline are left out there. Errors when `order` has no selector named `reference`.
pub fn compare(
    cells: &[Cell],
    deadlines: &[f64],
    order: &[String],
    reference: &str,
) -> Result<Vec<AtDeadline>, String> {
    if !order.iter().any(|s| s == reference) {
        return Err(format!(
            "no selector named {reference:?} in the line-up ({})",
            order.join(", ")
        ));
    }
    let cells = Cells::new(cells);
    let mut out = Vec::new();
    for &d in deadlines {
        let kept = cells.kept(d, order);
        let cell = |sc: &str, s: &str| cells.get(sc, d, s);
        let selectors = order
            .iter()
            .map(|s| {
                let diffs: Vec<f64> = kept
                    .iter()
                    .map(|sc| {
                        100.0
                            * (cell(sc, reference).top1_within_deadline
                                - cell(sc, s).top1_within_deadline)
                    })
                    .collect();
                let (mean, se) = mean_se(&diffs);
                let avg = |f: fn(&Cell) -> f64| {
                    kept.iter().map(|sc| f(cell(sc, s))).sum::<f64>() / kept.len().max(1) as f64
                };
                Versus {
                    selector: s.clone(),
                    mean_top1_within_deadline: avg(|c| c.top1_within_deadline),
                    reference_minus_pts: mean,
                    reference_minus_se_pts: se,
                    reference_below_1pt: diffs.iter().filter(|&&x| x < -1.0).count(),
                    mean_decision_overhead: avg(|c| c.decision_overhead),
                }
            })
            .collect();
        out.push(AtDeadline {
            deadline_ms: d,
            scenarios: kept.len(),
            left_out: cells.scenarios.len() - kept.len(),
            selectors,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use opa_predictors::selectors::SelectorKind;
    use opa_reports::goals::Roles;

    fn cell(sc: &str, d: f64, s: &str, top1: f64, valid: bool) -> Cell {
        Cell {
            scenario: sc.into(),
            deadline_ms: d,
            selector: s.into(),
            top1_within_deadline: top1,
            deadline_miss_rate: 0.0,
            decision_overhead: 0.01,
            valid,
            reference_paired_ci_pts: None,
        }
    }

    #[test]
    fn the_same_seed_and_index_draw_the_same_scenario_and_others_differ() {
        let a = random_scenario(7, 3, &DEFAULT_FPS, &[1.0], DEFAULT_SELECTORS);
        assert_eq!(
            a,
            random_scenario(7, 3, &DEFAULT_FPS, &[1.0], DEFAULT_SELECTORS)
        );
        assert_ne!(
            a,
            random_scenario(7, 4, &DEFAULT_FPS, &[1.0], DEFAULT_SELECTORS)
        );
        assert_ne!(
            a,
            random_scenario(8, 3, &DEFAULT_FPS, &[1.0], DEFAULT_SELECTORS)
        );
        assert!(a.contains("name = \"stress-003\""));
    }

    #[test]
    fn drawn_scenarios_are_valid_and_long_enough_to_judge() {
        for i in 0..40 {
            let text = random_scenario(1, i, &DEFAULT_FPS, &[4.0, 0.5], DEFAULT_SELECTORS);
            let sc = crate::scenario::parse("drawn.toml", &text, std::path::Path::new("."))
                .unwrap_or_else(|e| panic!("{e}\n{text}"));
            assert_eq!(sc.selectors.len(), 10);
            assert_eq!(sc.deadline_ms, 0.5);
            let crate::scenario::StreamSource::Synthetic(spec) = &sc.stream else {
                panic!("a synthetic stream")
            };
            let segments = &spec.segments;
            let secs: f64 = segments.iter().map(|s| s.duration_s).sum();
            let fps = segments[0].fps;
            // At least 30 s at 10 frames per second: over the 100 frames a VALID run needs.
            assert!(
                (30.0..=360.0).contains(&secs) && secs * fps >= 300.0,
                "{text}"
            );
            assert!(segments.iter().all(|s| s.fps == fps));
            assert!(DEFAULT_FPS.contains(&fps), "{fps}");
        }
    }

    #[test]
    fn streams_draw_their_frame_rate_from_the_list_given_and_nothing_else_changes() {
        let mut seen = Vec::new();
        for i in 0..30 {
            let text = random_scenario(5, i, &[60.0, 7.5, 300.0], &[1.0], DEFAULT_SELECTORS);
            let sc = crate::scenario::parse("drawn.toml", &text, std::path::Path::new("."))
                .unwrap_or_else(|e| panic!("{e}\n{text}"));
            let crate::scenario::StreamSource::Synthetic(spec) = &sc.stream else {
                panic!("a synthetic stream")
            };
            let fps = spec.segments[0].fps;
            assert!([60.0, 7.5, 300.0].contains(&fps), "{fps}");
            assert!(spec.segments.iter().all(|s| s.fps == fps));
            seen.push(fps);
            // The same draws but the rate: one rate listed gives the same scenario at it.
            let one = random_scenario(5, i, &[fps], &[1.0], DEFAULT_SELECTORS);
            let fixed = |t: &str| t.replace(&format!("fps = {fps}\n"), "fps = ?\n");
            let d = random_scenario(5, i, &DEFAULT_FPS, &[1.0], DEFAULT_SELECTORS);
            let other = d
                .lines()
                .find_map(|l| l.strip_prefix("fps = "))
                .expect("a frame rate")
                .to_string();
            assert_eq!(
                fixed(&one),
                d.replace(&format!("fps = {other}\n"), "fps = ?\n")
            );
        }
        assert!([60.0, 7.5, 300.0].iter().all(|f| seen.contains(f)));
    }

    #[test]
    fn a_reference_is_held_against_the_oracle_exhaustive_search_and_other_kinds() {
        let text = random_scenario(1, 0, &DEFAULT_FPS, &[1.0], DEFAULT_SELECTORS);
        let sc = crate::scenario::parse("drawn.toml", &text, std::path::Path::new(".")).unwrap();
        let lineup: Vec<(&str, SelectorKind)> = sc
            .selectors
            .iter()
            .map(|s| (s.name.as_str(), s.kind))
            .collect();
        let r = Roles::of(&lineup, "opa").unwrap();
        assert_eq!(
            (r.oracle, r.exhaustive),
            (Some("oracle"), Some("exhaustive"))
        );
        // Not the oracle, nor OPA's own ablation (`opa-rounds`, of kind `opa`).
        assert_eq!(
            r.rivals,
            [
                "exhaustive",
                "ofa-static",
                "dynamic-ofa",
                "adaptivenet",
                "fixed-largest",
                "fixed-smallest",
                "random"
            ]
        );
        // Another reference's rivals are the kinds other than its own (OPA's included).
        let r = Roles::of(&lineup, "adaptivenet").unwrap();
        assert!(r.rivals.contains(&"opa") && r.rivals.contains(&"opa-rounds"));
        assert!(!r.rivals.contains(&"adaptivenet"));
        assert!(Roles::of(&lineup, "nobody").is_none());
    }

    #[test]
    fn the_comparison_is_paired_per_scenario_and_leaves_out_invalid_runs() {
        let order = vec!["opa".to_string(), "fixed".to_string()];
        let cells = vec![
            cell("a", 1.0, "opa", 0.80, true),
            cell("a", 1.0, "fixed", 0.70, true),
            cell("b", 1.0, "opa", 0.50, true),
            cell("b", 1.0, "fixed", 0.60, true),
            cell("c", 1.0, "opa", 0.90, true),
            cell("c", 1.0, "fixed", 0.10, false),
        ];
        let r = compare(&cells, &[1.0], &order, "opa").unwrap();
        assert_eq!((r[0].scenarios, r[0].left_out), (2, 1));
        let v = &r[0].selectors[1];
        // Differences +10 and -10 points: mean 0, s.e. sqrt(200 / 2) / sqrt(2) = 10.
        assert!(v.reference_minus_pts.abs() < 1e-9);
        assert!((v.reference_minus_se_pts - 10.0).abs() < 1e-9);
        assert_eq!(v.reference_below_1pt, 1);
        assert!((v.mean_top1_within_deadline - 0.65).abs() < 1e-12);
        assert_eq!(r[0].selectors[0].reference_minus_pts, 0.0);
        assert!(compare(&cells, &[1.0], &order, "oracle").is_err());
    }
}
