//! The effective scenario: every default written out, in the scenario file format (what a
//! run directory's `scenario.toml` holds), serialised with serde.

use super::{Interpolation, Scenario, StreamSource};
use opa_datasets::stream::{ClassMix, Segment, SeverityProfile};
use serde::Serialize;
use serde::ser::SerializeMap;

/// The scenario file's tables, as [`Scenario::to_toml`] writes them.
#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct File<'a> {
    name: &'a str,
    description: &'a str,
    checkpoint: String,
    candidates: String,
    profile: String,
    seeds: Seeds,
    device: Device<'a>,
    requirement: Requirement,
    stream: Stream,
    workload: Workload<'a>,
    selector: Vec<Selector<'a>>,
    output: Output,
}

#[derive(Serialize)]
struct Seeds {
    stream: u64,
    load: u64,
    selector: u64,
}

#[derive(Serialize)]
struct Device<'a> {
    backend: &'a str,
    threads: usize,
    slowdown: f64,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct Requirement {
    deadline_ms: f64,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct Stream {
    #[serde(skip_serializing_if = "Option::is_none")]
    frames_dir: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fps: Option<f64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    segment: Vec<StreamSegment>,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct StreamSegment {
    duration_s: f64,
    fps: f64,
    class_mix: Mix,
    scene_length: u32,
    jitter_px: u8,
    flicker: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    corruption: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    severity: Option<Severity>,
}

/// `class-mix` as a file writes it.
#[derive(Serialize)]
#[serde(untagged)]
enum Mix {
    Uniform(&'static str),
    Weights { weights: Vec<f64> },
    Subset { subset: Vec<u16> },
}

/// `severity` as a file writes it.
#[derive(Serialize)]
#[serde(untagged)]
enum Severity {
    Constant(u8),
    Ramp { from: u8, to: u8 },
    Steps(Vec<u8>),
}

#[derive(Serialize)]
struct Workload<'a> {
    interpolation: &'a str,
    phase: Vec<Phase>,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct Phase {
    duration_s: f64,
    cpu_load: f64,
    gpu_load: f64,
}

/// A `[[selector]]` table: kind, name, predictor, then every parameter of the kind.
struct Selector<'a> {
    spec: &'a super::SelectorSpec,
}

impl Serialize for Selector<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let s = self.spec;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("kind", s.kind.name())?;
        map.serialize_entry("name", &s.name)?;
        if let Some(p) = s.predictor {
            map.serialize_entry("predictor", p.name())?;
        }
        for (key, value) in &s.params {
            // Counts and switches as integers, the rest as numbers (as validation reads them).
            if s.kind.params().iter().any(|p| p.key == key && p.integer) {
                map.serialize_entry(key, &(*value as i64))?;
            } else {
                map.serialize_entry(key, value)?;
            }
        }
        map.end()
    }
}

#[derive(Serialize)]
struct Output {
    dir: String,
}

impl StreamSegment {
    fn of(s: &Segment) -> Self {
        StreamSegment {
            duration_s: s.duration_s,
            fps: s.fps,
            class_mix: match &s.class_mix {
                ClassMix::Uniform => Mix::Uniform("uniform"),
                ClassMix::Weights(w) => Mix::Weights { weights: w.clone() },
                ClassMix::Subset(c) => Mix::Subset { subset: c.clone() },
            },
            scene_length: s.scene_length,
            jitter_px: s.jitter_px,
            flicker: s.flicker as f64,
            corruption: s.corruption.as_ref().map(|c| c.kind.name()),
            severity: s.corruption.as_ref().map(|c| match &c.severity {
                SeverityProfile::Constant(v) => Severity::Constant(*v),
                SeverityProfile::Ramp { from, to } => Severity::Ramp {
                    from: *from,
                    to: *to,
                },
                SeverityProfile::Steps(v) => Severity::Steps(v.clone()),
            }),
        }
    }
}

impl Scenario {
    /// The scenario in its own file format with every default written out: loading the
    /// result gives this scenario back (paths become absolute where they were resolved; the
    /// workload's points become phases, the last one holding to the end).
    pub fn to_toml(&self) -> String {
        let path = |p: &std::path::Path| p.to_string_lossy().into_owned();
        let stream = match &self.stream {
            StreamSource::Frames { dir, fps } => Stream {
                frames_dir: Some(path(dir)),
                fps: Some(*fps),
                segment: Vec::new(),
            },
            StreamSource::Synthetic(spec) => Stream {
                frames_dir: None,
                fps: None,
                segment: spec.segments.iter().map(StreamSegment::of).collect(),
            },
        };
        let points = &self.workload.points;
        let phase = points
            .iter()
            .enumerate()
            .map(|(i, p)| Phase {
                duration_s: points.get(i + 1).map_or(1.0, |n| n.time_s - p.time_s),
                cpu_load: p.cpu_load,
                gpu_load: p.gpu_load,
            })
            .collect();
        let file = File {
            name: &self.name,
            description: &self.description,
            checkpoint: path(&self.checkpoint),
            candidates: path(&self.candidates),
            profile: path(&self.profile),
            seeds: Seeds {
                stream: self.seed_stream,
                load: self.seed_load,
                selector: self.seed_selector,
            },
            device: Device {
                backend: self.backend.name(),
                threads: self.threads,
                slowdown: self.slowdown,
            },
            requirement: Requirement {
                deadline_ms: self.deadline_ms,
            },
            stream,
            workload: Workload {
                interpolation: match self.workload.interpolation {
                    Interpolation::Step => "step",
                    Interpolation::Linear => "linear",
                },
                phase,
            },
            selector: self
                .selectors
                .iter()
                .map(|spec| Selector { spec })
                .collect(),
            output: Output {
                dir: path(&self.output_dir),
            },
        };
        toml::to_string(&file).expect("a scenario serialises to TOML")
    }
}
