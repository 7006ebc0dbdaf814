//! How much each metric may move before `opa compare` calls it a regression, per selector
//! and deadline, from a small TOML file (`opa compare --thresholds FILE`):
//!
//! ```toml
//! top1-drop-pts = 1.0      # every selector and deadline: top-1 within the deadline may drop 1 point
//! p95-rise-pct = 10.0      # and p95 latency rise 10 %
//!
//! [[rule]]
//! selector = "opa"         # a name, or a prefix ending in `*` ("fixed-*")
//! deadline-ms = 2.0        # optional: only at this deadline
//! top1-drop-pts = 0.5
//!
//! [[rule]]
//! selector = "fixed-*"
//! informational = true     # reported, never fails the compare
//! ```
//!
//! Rules apply in file order, each setting only the keys it names, so a later rule refines
//! an earlier one.

use serde::Deserialize;
use std::path::Path;

/// What one metric pair of one selector at one deadline is held to.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Limits {
    /// Largest tolerated drop of top-1 within the deadline, points.
    pub top1_drop_pts: f64,
    /// Largest tolerated rise of p95 latency, percent.
    pub p95_rise_pct: f64,
    /// Reported, never a reason for a failing exit code.
    pub informational: bool,
}

/// The limits of every selector and deadline: defaults and rules.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Thresholds {
    /// Default largest drop of top-1 within the deadline, points.
    #[serde(default = "default_top1")]
    pub top1_drop_pts: f64,
    /// Default largest rise of p95 latency, percent.
    #[serde(default = "default_p95")]
    pub p95_rise_pct: f64,
    /// Overrides, in order.
    #[serde(default, rename = "rule")]
    pub rules: Vec<Rule>,
}

/// Limits for the selectors a rule names (at one deadline, or every one).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Rule {
    /// A selector name, or a prefix ending in `*`.
    pub selector: String,
    /// Only at this deadline, ms.
    pub deadline_ms: Option<f64>,
    pub top1_drop_pts: Option<f64>,
    pub p95_rise_pct: Option<f64>,
    pub informational: Option<bool>,
}

fn default_top1() -> f64 {
    1.0
}

fn default_p95() -> f64 {
    10.0
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            top1_drop_pts: default_top1(),
            p95_rise_pct: default_p95(),
            rules: Vec::new(),
        }
    }
}

impl Rule {
    fn matches(&self, selector: &str, deadline_ms: f64) -> bool {
        let name = match self.selector.strip_suffix('*') {
            Some(prefix) => selector.starts_with(prefix),
            None => selector == self.selector,
        };
        name && self.deadline_ms.is_none_or(|d| d == deadline_ms)
    }
}

impl Thresholds {
    /// Reads and checks a thresholds file; the error names the file and the problem.
    pub fn read(path: &Path) -> Result<Thresholds, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Thresholds::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// [`Thresholds::read`] of a file's text.
    pub fn parse(text: &str) -> Result<Thresholds, String> {
        let t: Thresholds = toml::from_str(text).map_err(|e| e.to_string().trim().to_string())?;
        let mut problems = Vec::new();
        let check = |problems: &mut Vec<String>, key: String, v: Option<f64>, least: f64| {
            if let Some(v) = v.filter(|v| !(*v >= least && v.is_finite())) {
                let want = if least > 0.0 { "> 0" } else { ">= 0" };
                problems.push(format!("{key} = {v}: must be a number {want}"));
            }
        };
        check(
            &mut problems,
            "top1-drop-pts".into(),
            Some(t.top1_drop_pts),
            0.0,
        );
        check(
            &mut problems,
            "p95-rise-pct".into(),
            Some(t.p95_rise_pct),
            0.0,
        );
        for (i, r) in t.rules.iter().enumerate() {
            let p = &mut problems;
            check(p, format!("rule[{i}].top1-drop-pts"), r.top1_drop_pts, 0.0);
            check(p, format!("rule[{i}].p95-rise-pct"), r.p95_rise_pct, 0.0);
            check(
                p,
                format!("rule[{i}].deadline-ms"),
                r.deadline_ms,
                f64::MIN_POSITIVE,
            );
            if r.selector.is_empty() {
                p.push(format!(
                    "rule[{i}].selector is empty: name a selector or a prefix*"
                ));
            }
        }
        if problems.is_empty() {
            Ok(t)
        } else {
            Err(problems.join("; "))
        }
    }

    /// The limits of `selector` at `deadline_ms`: the defaults, then every matching rule in
    /// order.
    pub fn limits(&self, selector: &str, deadline_ms: f64) -> Limits {
        let mut l = Limits {
            top1_drop_pts: self.top1_drop_pts,
            p95_rise_pct: self.p95_rise_pct,
            informational: false,
        };
        for r in self
            .rules
            .iter()
            .filter(|r| r.matches(selector, deadline_ms))
        {
            l.top1_drop_pts = r.top1_drop_pts.unwrap_or(l.top1_drop_pts);
            l.p95_rise_pct = r.p95_rise_pct.unwrap_or(l.p95_rise_pct);
            l.informational = r.informational.unwrap_or(l.informational);
        }
        l
    }
}
