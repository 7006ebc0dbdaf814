//! The scenario file as written: serde types that keep source spans and reject unknown keys
//! (validation reads them into [`super::Scenario`]).

use super::S;
use serde::Deserialize;
use std::collections::BTreeMap;

/// The raw file, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawScenario {
    pub(super) name: S<String>,
    pub(super) description: Option<S<String>>,
    pub(super) seeds: Option<RawSeeds>,
    pub(super) device: Option<RawDevice>,
    pub(super) requirement: Option<RawRequirement>,
    pub(super) stream: Option<RawStream>,
    pub(super) workload: Option<RawWorkload>,
    pub(super) checkpoint: Option<S<String>>,
    pub(super) candidates: Option<S<String>>,
    pub(super) profile: Option<S<String>>,
    #[serde(default)]
    pub(super) selector: Vec<RawSelector>,
    pub(super) output: Option<RawOutput>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawSeeds {
    pub(super) stream: Option<S<i64>>,
    pub(super) load: Option<S<i64>>,
    pub(super) selector: Option<S<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawDevice {
    pub(super) backend: Option<S<String>>,
    pub(super) threads: Option<S<i64>>,
    pub(super) slowdown: Option<S<f64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawRequirement {
    pub(super) deadline_ms: S<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawStream {
    pub(super) frames_dir: Option<S<String>>,
    pub(super) fps: Option<S<f64>>,
    #[serde(default)]
    pub(super) segment: Vec<S<RawSegment>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawSegment {
    pub(super) duration_s: S<f64>,
    pub(super) fps: S<f64>,
    pub(super) class_mix: Option<S<RawClassMix>>,
    pub(super) scene_length: Option<S<i64>>,
    pub(super) jitter_px: Option<S<i64>>,
    pub(super) flicker: Option<S<f64>>,
    pub(super) corruption: Option<S<String>>,
    pub(super) severity: Option<S<RawSeverity>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawClassMix {
    Named(String),
    Table(RawClassMixTable),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawClassMixTable {
    pub(super) weights: Option<Vec<f64>>,
    pub(super) subset: Option<Vec<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawSeverity {
    Constant(i64),
    Steps(Vec<i64>),
    Ramp(RawRamp),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRamp {
    pub(super) from: i64,
    pub(super) to: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawWorkload {
    pub(super) trace: Option<S<String>>,
    pub(super) interpolation: Option<S<String>>,
    #[serde(default)]
    pub(super) phase: Vec<S<RawPhase>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawPhase {
    pub(super) duration_s: S<f64>,
    pub(super) cpu_load: Option<S<f64>>,
    pub(super) gpu_load: Option<S<f64>>,
}

/// A `[[selector]]` table as written: its keys (`kind`, `name`, `predictor` and the kind's
/// parameters, which [`SelectorKind::params`] lists) with their positions.
#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub(super) struct RawSelector(pub(super) BTreeMap<S<String>, S<toml::Value>>);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawOutput {
    pub(super) dir: Option<S<String>>,
}
