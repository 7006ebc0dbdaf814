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

use crate::scenario::SelectorSpec;
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

/// One selector's result on one scenario at one deadline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    pub scenario: String,
    pub deadline_ms: f64,
    pub selector: String,
    pub top1_within_deadline: f64,
    pub deadline_miss_rate: f64,
    pub decision_overhead: f64,
    /// The run's verdict was VALID.
    pub valid: bool,
    /// The reference's top-1 within the deadline less this selector's on the scenario's
    /// frames, paired frame by frame: the 95 % interval, points, from resamples of 5 s
    /// windows (`opa_reports::compare::paired_top1`); None for the reference itself.
    #[serde(default)]
    pub reference_paired_ci_pts: Option<(f64, f64)>,
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

/// At one deadline, in how many scenarios the reference met each of OPA's goals, over the
/// scenarios [`compare`] kept (every selector VALID).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Goals {
    pub deadline_ms: f64,
    pub scenarios: usize,
    /// At least 95 % of the oracle's top-1 within the deadline (None: no oracle in the
    /// line-up).
    pub oracle_95pct: Option<usize>,
    /// A decision overhead of at most 1/5 of exhaustive search's (None: no exhaustive search
    /// in the line-up).
    pub overhead_fifth_of_exhaustive: Option<usize>,
    /// Top-1 within the deadline above every rival's (None: no rival in the line-up).
    pub above_every_rival: Option<usize>,
    /// More than a point below some rival's (None: no rival).
    pub below_a_rival_1pt: Option<usize>,
    /// Below some rival's by the whole paired 95 % interval of the scenario's frames
    /// ([`Cell::reference_paired_ci_pts`]; None: no rival).
    #[serde(default)]
    pub below_a_rival_paired: Option<usize>,
}

/// OPA's goals: at least this share of the oracle's top-1 within the deadline...
pub const ORACLE_SHARE: f64 = 0.95;
/// ...and a decision overhead of at most this share of exhaustive search's (besides being
/// above every rival).
pub const OVERHEAD_SHARE: f64 = 0.2;

/// What each selector of a line-up is to a reference selector: the (first) oracle and
/// exhaustive search it is held against, and its rivals, the implementable selectors of
/// another kind than its own (not the oracle, nor the reference's own ablations).
#[derive(Clone, Debug, PartialEq)]
pub struct Roles<'a> {
    pub reference: &'a str,
    pub oracle: Option<&'a str>,
    pub exhaustive: Option<&'a str>,
    pub rivals: Vec<&'a str>,
}

impl<'a> Roles<'a> {
    /// The roles in `selectors` for the one named `reference`; None when none is.
    pub fn of(selectors: &'a [SelectorSpec], reference: &'a str) -> Option<Self> {
        let own = &selectors.iter().find(|s| s.name == reference)?.kind;
        let first = |kind: &str| {
            selectors
                .iter()
                .find(|s| s.kind == kind)
                .map(|s| s.name.as_str())
        };
        Some(Roles {
            reference,
            oracle: first("oracle"),
            exhaustive: first("exhaustive"),
            rivals: selectors
                .iter()
                .filter(|s| s.kind != "oracle" && &s.kind != own)
                .map(|s| s.name.as_str())
                .collect(),
        })
    }
}

/// Per deadline, the reference's [`Goals`] from `cells`: against its oracle and exhaustive
/// search (when the line-up has them) and the best of its rivals per scenario, on the
/// scenarios where every selector of `order` is VALID (those [`compare`] keeps).
pub fn goals(cells: &[Cell], deadlines: &[f64], order: &[String], roles: &Roles) -> Vec<Goals> {
    let Roles {
        reference,
        oracle,
        exhaustive,
        rivals,
    } = roles;
    let cells = Cells::new(cells);
    deadlines
        .iter()
        .map(|&d| {
            let kept = cells.kept(d, order);
            let count = |met: &dyn Fn(&str) -> bool| kept.iter().filter(|sc| met(sc)).count();
            let cell = |sc: &str, sel: &str| cells.get(sc, d, sel);
            let top1 = |sc: &str, sel: &str| cell(sc, sel).top1_within_deadline;
            let best_rival = |sc: &str| {
                rivals
                    .iter()
                    .map(|r| top1(sc, r))
                    .fold(f64::NEG_INFINITY, f64::max)
            };
            Goals {
                deadline_ms: d,
                scenarios: kept.len(),
                oracle_95pct: oracle.map(|o| {
                    count(&|sc| top1(sc, reference) >= ORACLE_SHARE * top1(sc, o) - 1e-12)
                }),
                overhead_fifth_of_exhaustive: exhaustive.map(|e| {
                    count(&|sc| {
                        cell(sc, reference).decision_overhead
                            <= OVERHEAD_SHARE * cell(sc, e).decision_overhead + 1e-12
                    })
                }),
                above_every_rival: (!rivals.is_empty())
                    .then(|| count(&|sc| top1(sc, reference) > best_rival(sc) + 1e-12)),
                below_a_rival_1pt: (!rivals.is_empty())
                    .then(|| count(&|sc| top1(sc, reference) < best_rival(sc) - 0.01)),
                below_a_rival_paired: (!rivals.is_empty()).then(|| {
                    count(&|sc| {
                        rivals.iter().any(|r| {
                            cell(sc, r)
                                .reference_paired_ci_pts
                                .is_some_and(|(_, hi)| hi < 0.0)
                        })
                    })
                }),
            }
        })
        .collect()
}

/// Cells by (scenario, deadline, selector), the first where one repeats, and the scenarios
/// in the order their first cell comes (one index, not a search of every cell per lookup:
/// the lookups grow with scenarios x selectors x deadlines, as do the cells).
struct Cells<'a> {
    scenarios: Vec<&'a str>,
    index: std::collections::HashMap<(&'a str, u64, &'a str), &'a Cell>,
}

impl<'a> Cells<'a> {
    fn new(cells: &'a [Cell]) -> Self {
        let mut scenarios = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut index = std::collections::HashMap::new();
        for c in cells {
            if seen.insert(c.scenario.as_str()) {
                scenarios.push(c.scenario.as_str());
            }
            index
                .entry((
                    c.scenario.as_str(),
                    c.deadline_ms.to_bits(),
                    c.selector.as_str(),
                ))
                .or_insert(c);
        }
        Cells { scenarios, index }
    }

    fn find(&self, scenario: &str, deadline_ms: f64, selector: &str) -> Option<&'a Cell> {
        self.index
            .get(&(scenario, deadline_ms.to_bits(), selector))
            .copied()
    }

    /// The cell of a scenario [`Cells::kept`] returned.
    fn get(&self, scenario: &str, deadline_ms: f64, selector: &str) -> &'a Cell {
        self.find(scenario, deadline_ms, selector)
            .expect("kept scenarios have every cell")
    }

    /// The scenarios where every selector of `order` has a VALID cell at `deadline_ms`.
    fn kept(&self, deadline_ms: f64, order: &[String]) -> Vec<&'a str> {
        self.scenarios
            .iter()
            .copied()
            .filter(|sc| {
                order
                    .iter()
                    .all(|s| self.find(sc, deadline_ms, s).is_some_and(|c| c.valid))
            })
            .collect()
    }
}

/// Mean and standard error of the mean (0 for fewer than two values).
fn mean_se(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    if v.is_empty() {
        return (0.0, 0.0);
    }
    let mean = v.iter().sum::<f64>() / n;
    if v.len() < 2 {
        return (mean, 0.0);
    }
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, (var / n).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let r = Roles::of(&sc.selectors, "opa").unwrap();
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
        let r = Roles::of(&sc.selectors, "adaptivenet").unwrap();
        assert!(r.rivals.contains(&"opa") && r.rivals.contains(&"opa-rounds"));
        assert!(!r.rivals.contains(&"adaptivenet"));
        assert!(Roles::of(&sc.selectors, "nobody").is_none());
    }

    #[test]
    fn goals_are_counted_per_scenario_against_the_oracle_exhaustive_and_the_best_rival() {
        let order: Vec<String> = ["opa", "oracle", "exhaustive", "small", "large"]
            .map(String::from)
            .into();
        let with = |sc: &str, s: &str, top1: f64, overhead: f64, valid: bool| Cell {
            decision_overhead: overhead,
            ..cell(sc, 2.0, s, top1, valid)
        };
        let cells = vec![
            // a: 0.80 against the oracle's 0.84 (95.2 %), overhead 1/5 of exhaustive's,
            // above both rivals.
            with("a", "opa", 0.80, 0.002, true),
            with("a", "oracle", 0.84, 0.0, true),
            with("a", "exhaustive", 0.60, 0.010, true),
            with("a", "small", 0.70, 0.0, true),
            with("a", "large", 0.79, 0.0, true),
            // b: 0.70 against 0.75 (93.3 %), overhead 1/4, level with the small one, 1.5
            // points below the large one, and below it by the paired interval of the
            // scenario's frames.
            with("b", "opa", 0.70, 0.0025, true),
            with("b", "oracle", 0.75, 0.0, true),
            with("b", "exhaustive", 0.60, 0.010, true),
            with("b", "small", 0.70, 0.0, true),
            Cell {
                reference_paired_ci_pts: Some((-2.5, -0.5)),
                ..with("b", "large", 0.715, 0.0, true)
            },
            // c: a run not VALID leaves it out (a paired interval below too).
            with("c", "opa", 0.99, 0.0, true),
            with("c", "oracle", 0.50, 0.0, true),
            with("c", "exhaustive", 0.50, 0.010, true),
            with("c", "small", 0.10, 0.0, false),
            Cell {
                reference_paired_ci_pts: Some((-9.0, -1.0)),
                ..with("c", "large", 0.10, 0.0, true)
            },
        ];
        let rivals = ["exhaustive", "small", "large"];
        let roles = |rivals: &[&'static str], oracle, exhaustive| Roles {
            reference: "opa",
            oracle,
            exhaustive,
            rivals: rivals.to_vec(),
        };
        let all = roles(&rivals, Some("oracle"), Some("exhaustive"));
        let g = goals(&cells, &[2.0], &order, &all);
        assert_eq!(
            g,
            vec![Goals {
                deadline_ms: 2.0,
                scenarios: 2,
                oracle_95pct: Some(1),
                overhead_fifth_of_exhaustive: Some(1),
                above_every_rival: Some(1),
                below_a_rival_1pt: Some(1),
                below_a_rival_paired: Some(1),
            }]
        );
        // Without an oracle or exhaustive search in the line-up, those goals are not counted.
        let g = goals(&cells, &[2.0], &order, &roles(&["small"], None, None));
        assert_eq!(
            (g[0].oracle_95pct, g[0].overhead_fifth_of_exhaustive),
            (None, None)
        );
        assert_eq!(
            (
                g[0].above_every_rival,
                g[0].below_a_rival_1pt,
                g[0].below_a_rival_paired
            ),
            (Some(1), Some(0), Some(0))
        );
        // Nor the rivals' without a rival.
        let g = goals(&cells, &[2.0], &order, &roles(&[], None, None));
        assert_eq!(
            (
                g[0].above_every_rival,
                g[0].below_a_rival_1pt,
                g[0].below_a_rival_paired
            ),
            (None, None, None)
        );
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
