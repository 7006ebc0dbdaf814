//! OPA's goals, computed in one place: at least [`ORACLE_SHARE`] of the oracle's top-1 within
//! the deadline, a decision overhead of at most [`OVERHEAD_SHARE`] of exhaustive search's,
//! and above every rival. [`run_goals`] reads one run (`opa run`, `opa replay`); over the
//! scenarios of `opa stress`, [`compare`] sets the reference against every selector and
//! [`goals`] counts the scenarios where each goal was met.

use crate::compare::{CompareConfig, PairedDelta, paired_top1};
use crate::format::{RunSummary, Sample};
use opa_predictors::selectors::SelectorKind;
use opa_predictors::stats::mean_se;
use serde::{Deserialize, Serialize};

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
    /// windows ([`crate::compare::paired_top1`]); None for the reference itself.
    #[serde(default)]
    pub reference_paired_ci_pts: Option<(f64, f64)>,
}

/// At one deadline, in how many scenarios the reference met each of OPA's goals, over the
/// scenarios where every selector is VALID ([`Cells::kept`]).
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
    /// The roles in `lineup` (each selector's name and kind, in file order) for the one
    /// named `reference`; None when none is.
    pub fn of(lineup: &[(&'a str, SelectorKind)], reference: &'a str) -> Option<Self> {
        let own = lineup.iter().find(|(n, _)| *n == reference)?.1;
        let first = |kind: SelectorKind| lineup.iter().find(|(_, k)| *k == kind).map(|(n, _)| *n);
        Some(Roles {
            reference,
            oracle: first(SelectorKind::Oracle),
            exhaustive: first(SelectorKind::Exhaustive),
            rivals: lineup
                .iter()
                .filter(|(_, k)| !k.knows_truth() && *k != own)
                .map(|(n, _)| *n)
                .collect(),
        })
    }
}

/// Per deadline, the reference's [`Goals`] from `cells`: against its oracle and exhaustive
/// search (when the line-up has them) and the best of its rivals per scenario, on the
/// scenarios where every selector of `order` is VALID ([`Cells::kept`]).
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
pub struct Cells<'a> {
    /// The scenarios, in the order their first cell comes.
    pub scenarios: Vec<&'a str>,
    index: std::collections::HashMap<(&'a str, u64, &'a str), &'a Cell>,
}

impl<'a> Cells<'a> {
    /// The index of `cells`.
    pub fn new(cells: &'a [Cell]) -> Self {
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

    /// The cell of `selector` on `scenario` at `deadline_ms`.
    pub fn find(&self, scenario: &str, deadline_ms: f64, selector: &str) -> Option<&'a Cell> {
        self.index
            .get(&(scenario, deadline_ms.to_bits(), selector))
            .copied()
    }

    /// The cell of a scenario [`Cells::kept`] returned.
    pub fn get(&self, scenario: &str, deadline_ms: f64, selector: &str) -> &'a Cell {
        self.find(scenario, deadline_ms, selector)
            .expect("kept scenarios have every cell")
    }

    /// The scenarios where every selector of `order` has a VALID cell at `deadline_ms`.
    pub fn kept(&self, deadline_ms: f64, order: &[String]) -> Vec<&'a str> {
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

/// Where the reference stands against OPA's goals at one deadline of a run (what `opa run`
/// and `opa replay` print under their table).
#[derive(Clone, Debug, PartialEq)]
pub struct RunGoal {
    pub deadline_ms: f64,
    /// Its top-1 within the deadline over the oracle's (None: no oracle, or the oracle got
    /// none right in time).
    pub oracle_share: Option<f64>,
    /// The best rival by top-1 within the deadline, the reference's difference to it
    /// (points), and the paired comparison on the run's frames.
    pub best_rival: Option<(String, f64, Option<PairedDelta>)>,
    /// Its decision overhead against exhaustive search's (None: no exhaustive search).
    pub overhead: Option<Overhead>,
}

/// The reference's decision overhead against exhaustive search's.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Overhead {
    /// The reference has none.
    None,
    /// The reference has some and exhaustive search none.
    WhereExhaustiveHasNone,
    /// Exhaustive search's is this many times the reference's.
    Fraction(f64),
}

/// Per deadline of `summary`, the reference's [`RunGoal`]: its rows against the oracle's,
/// the best rival's (paired on `samples`) and exhaustive search's.
pub fn run_goals(summary: &RunSummary, samples: &[Sample], roles: &Roles) -> Vec<RunGoal> {
    let rows = &summary.selectors;
    let mut out = Vec::new();
    for &d in &summary.deadlines_ms {
        let row = |name: &str| {
            rows.iter()
                .find(|r| r.selector == name && r.deadline_ms == d)
        };
        let Some(me) = row(roles.reference) else {
            continue;
        };
        let oracle_share = roles
            .oracle
            .and_then(row)
            .filter(|o| o.top1_within_deadline > 0.0)
            .map(|o| me.top1_within_deadline / o.top1_within_deadline);
        let best_rival = roles
            .rivals
            .iter()
            .filter_map(|&n| row(n))
            .max_by(|x, y| x.top1_within_deadline.total_cmp(&y.top1_within_deadline))
            .map(|b| {
                let paired = paired_top1(
                    samples,
                    roles.reference,
                    &b.selector,
                    d,
                    &CompareConfig::default(),
                );
                (
                    b.selector.clone(),
                    100.0 * (me.top1_within_deadline - b.top1_within_deadline),
                    paired,
                )
            });
        let overhead = roles.exhaustive.and_then(row).map(|e| {
            if me.decision_overhead <= 0.0 {
                Overhead::None
            } else if e.decision_overhead <= 0.0 {
                Overhead::WhereExhaustiveHasNone
            } else {
                Overhead::Fraction(e.decision_overhead / me.decision_overhead)
            }
        });
        out.push(RunGoal {
            deadline_ms: d,
            oracle_share,
            best_rival,
            overhead,
        });
    }
    out
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
