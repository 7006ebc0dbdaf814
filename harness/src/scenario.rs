//! Scenario files: what to replay (device, deadline, stream, workload, selectors, output).
//!
//! Read in two stages (as cargo-deny does): raw serde types that keep source spans and reject
//! unknown keys, then `validate`, which checks every value and reports *every* problem at
//! once, each as `file:line:column: key.path = value: what is wrong`. Every key is documented
//! in `scenarios/README.md`.

use crate::backend::Backend;
use opa_datasets::CorruptionKind;
use opa_datasets::stream::{ClassMix, CorruptionSchedule, Segment, SeverityProfile, StreamSpec};
use opa_predictors::predict::Variant;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use toml::Spanned;

type S<T> = Spanned<T>;

/// The raw file, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawScenario {
    name: S<String>,
    description: Option<S<String>>,
    seeds: Option<RawSeeds>,
    device: Option<RawDevice>,
    requirement: Option<RawRequirement>,
    stream: Option<RawStream>,
    workload: Option<RawWorkload>,
    checkpoint: Option<S<String>>,
    candidates: Option<S<String>>,
    profile: Option<S<String>>,
    #[serde(default)]
    selector: Vec<RawSelector>,
    output: Option<RawOutput>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawSeeds {
    stream: Option<S<i64>>,
    load: Option<S<i64>>,
    selector: Option<S<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawDevice {
    backend: Option<S<String>>,
    threads: Option<S<i64>>,
    slowdown: Option<S<f64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawRequirement {
    deadline_ms: S<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawStream {
    frames_dir: Option<S<String>>,
    fps: Option<S<f64>>,
    #[serde(default)]
    segment: Vec<S<RawSegment>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawSegment {
    duration_s: S<f64>,
    fps: S<f64>,
    class_mix: Option<S<RawClassMix>>,
    scene_length: Option<S<i64>>,
    jitter_px: Option<S<i64>>,
    flicker: Option<S<f64>>,
    corruption: Option<S<String>>,
    severity: Option<S<RawSeverity>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawClassMix {
    Named(String),
    Table(RawClassMixTable),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClassMixTable {
    weights: Option<Vec<f64>>,
    subset: Option<Vec<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawSeverity {
    Constant(i64),
    Steps(Vec<i64>),
    Ramp(RawRamp),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRamp {
    from: i64,
    to: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawWorkload {
    trace: Option<S<String>>,
    interpolation: Option<S<String>>,
    #[serde(default)]
    phase: Vec<S<RawPhase>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawPhase {
    duration_s: S<f64>,
    cpu_load: Option<S<f64>>,
    gpu_load: Option<S<f64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawSelector {
    kind: S<String>,
    name: Option<S<String>>,
    switch_every: Option<S<toml::Value>>,
    predictor: Option<S<String>>,
    probe_frames: Option<S<toml::Value>>,
    reprobe_every: Option<S<toml::Value>>,
    margin: Option<S<toml::Value>>,
    latency_drift: Option<S<toml::Value>>,
    confidence_drift: Option<S<toml::Value>>,
    min_gap: Option<S<toml::Value>>,
    load_window: Option<S<toml::Value>>,
    min_gain: Option<S<toml::Value>>,
    replan_every: Option<S<toml::Value>>,
    evidence_frames: Option<S<toml::Value>>,
    tail_window: Option<S<toml::Value>>,
    idle_stretch: Option<S<toml::Value>>,
    view_table: Option<S<toml::Value>>,
    cascade: Option<S<toml::Value>>,
    fallback: Option<S<toml::Value>>,
    escalate_chance: Option<S<toml::Value>>,
    robust_gain: Option<S<toml::Value>>,
    skip_late: Option<S<toml::Value>>,
    content_window: Option<S<toml::Value>>,
    window: Option<S<toml::Value>>,
    timed_latency: Option<S<toml::Value>>,
    slack: Option<S<toml::Value>>,
    revalidate_every: Option<S<toml::Value>>,
    trial_frames: Option<S<toml::Value>>,
}

impl RawSelector {
    /// The numeric parameters as written, by key.
    fn numeric(&self) -> [(&'static str, &Option<S<toml::Value>>); 25] {
        [
            ("switch-every", &self.switch_every),
            ("probe-frames", &self.probe_frames),
            ("reprobe-every", &self.reprobe_every),
            ("margin", &self.margin),
            ("latency-drift", &self.latency_drift),
            ("confidence-drift", &self.confidence_drift),
            ("min-gap", &self.min_gap),
            ("load-window", &self.load_window),
            ("min-gain", &self.min_gain),
            ("replan-every", &self.replan_every),
            ("evidence-frames", &self.evidence_frames),
            ("tail-window", &self.tail_window),
            ("idle-stretch", &self.idle_stretch),
            ("view-table", &self.view_table),
            ("cascade", &self.cascade),
            ("fallback", &self.fallback),
            ("escalate-chance", &self.escalate_chance),
            ("robust-gain", &self.robust_gain),
            ("skip-late", &self.skip_late),
            ("content-window", &self.content_window),
            ("window", &self.window),
            ("timed-latency", &self.timed_latency),
            ("slack", &self.slack),
            ("revalidate-every", &self.revalidate_every),
            ("trial-frames", &self.trial_frames),
        ]
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawOutput {
    dir: Option<S<String>>,
}

/// How trace values between two points are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Interpolation {
    /// Hold each value until the next point.
    Step,
    /// Linear between points.
    Linear,
}

/// One point of a workload trace: from `time_s` on, these loads.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct LoadPoint {
    /// Seconds from the start of the stream.
    pub time_s: f64,
    /// Share of CPU cores kept busy, 0..=1.
    pub cpu_load: f64,
    /// GPU duty cycle, 0..=1.
    pub gpu_load: f64,
}

/// The background workload over time.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Workload {
    /// Points in time order, the first at 0 s.
    pub points: Vec<LoadPoint>,
    /// Between points.
    pub interpolation: Interpolation,
}

impl Workload {
    /// The load at `t_s` seconds.
    pub fn at(&self, t_s: f64) -> LoadPoint {
        let i = self
            .points
            .partition_point(|p| p.time_s <= t_s)
            .saturating_sub(1);
        self.in_segment(i, t_s)
    }

    /// [`Workload::at`] for callers that ask in time order: `hint` is the segment of the
    /// previous ask, tried first (and updated), the same point whatever it holds.
    pub fn at_from(&self, hint: &mut usize, t_s: f64) -> LoadPoint {
        let pts = &self.points;
        let i = *hint;
        // The segment `at` finds: the last point at or before `t_s` (else the first).
        let holds = i < pts.len()
            && (pts[i].time_s <= t_s || i == 0)
            && pts.get(i + 1).is_none_or(|q| q.time_s > t_s);
        if !holds {
            *hint = pts.partition_point(|p| p.time_s <= t_s).saturating_sub(1);
        }
        self.in_segment(*hint, t_s)
    }

    /// The load at `t_s` in the segment from point `i`.
    fn in_segment(&self, i: usize, t_s: f64) -> LoadPoint {
        let p = self.points[i];
        match (self.interpolation, self.points.get(i + 1)) {
            (Interpolation::Linear, Some(q)) if q.time_s > p.time_s => {
                let a = ((t_s - p.time_s) / (q.time_s - p.time_s)).clamp(0.0, 1.0);
                LoadPoint {
                    time_s: t_s,
                    cpu_load: p.cpu_load + a * (q.cpu_load - p.cpu_load),
                    gpu_load: p.gpu_load + a * (q.gpu_load - p.gpu_load),
                }
            }
            _ => LoadPoint { time_s: t_s, ..p },
        }
    }

    /// The trace along the load axis of a profile calibrated on `backend`: `opa calibrate`
    /// injects its load levels with a GPU co-runner on `tch-cuda` and a CPU one elsewhere, so
    /// for `tch-cuda` the returned trace carries `gpu_load` where replay from a profile and
    /// the oracle read a frame's load (`cpu_load`). Other backends get the trace unchanged.
    pub fn on_profile_axis(&self, backend: Backend) -> Workload {
        if backend != Backend::TchCuda {
            return self.clone();
        }
        Workload {
            points: self
                .points
                .iter()
                .map(|p| LoadPoint {
                    time_s: p.time_s,
                    cpu_load: p.gpu_load,
                    gpu_load: p.gpu_load,
                })
                .collect(),
            interpolation: self.interpolation,
        }
    }
}

/// Where frames come from.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum StreamSource {
    /// A synthetic stream over the evaluation half.
    Synthetic(StreamSpec),
    /// Real frames: a directory with `labels.csv`, played at `fps`.
    Frames {
        /// The directory.
        dir: PathBuf,
        /// Frames per second.
        fps: f64,
    },
}

/// A selector to compare, with its parameters.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SelectorSpec {
    /// Kind (one of [`SELECTOR_KINDS`]).
    pub kind: String,
    /// Display name (defaults to the kind).
    pub name: String,
    /// Every numeric parameter of the kind, defaults filled in, in documentation order.
    pub params: Vec<(String, f64)>,
    /// `opa`: the predictor variant.
    pub predictor: Option<Variant>,
}

impl SelectorSpec {
    /// A parameter's effective value (every parameter of the kind is present after
    /// validation; a missing one reads as 0).
    pub fn get(&self, key: &str) -> f64 {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .map_or(0.0, |(_, v)| *v)
    }

    /// True when the kind needs a calibration profile.
    pub fn needs_profile(&self) -> bool {
        !["fixed-largest", "fixed-smallest", "random"].contains(&self.kind.as_str())
    }
}

/// The frame rates a synthetic stream segment accepts, per second.
pub const SEGMENT_FPS: std::ops::RangeInclusive<f64> = 0.01..=1000.0;

/// Every selector kind.
pub const SELECTOR_KINDS: [&str; 9] = [
    "opa",
    "exhaustive",
    "oracle",
    "ofa-static",
    "dynamic-ofa",
    "adaptivenet",
    "fixed-largest",
    "fixed-smallest",
    "random",
];

/// A kind's numeric parameters with their defaults (taken from the selectors' own
/// `Default`s), in documentation order.
pub fn selector_defaults(kind: &str) -> Vec<(&'static str, f64)> {
    use opa_predictors::selectors::*;
    match kind {
        "opa" => {
            let d = OpaParams::default();
            vec![
                ("probe-frames", d.probe_frames as f64),
                ("reprobe-every", d.reprobe_every as f64),
                ("margin", d.margin),
                ("latency-drift", d.latency_drift),
                ("confidence-drift", d.confidence_drift),
                ("min-gap", d.min_gap as f64),
                ("load-window", d.load_window as f64),
                ("min-gain", d.min_gain),
                ("replan-every", d.replan_every as f64),
                ("evidence-frames", d.evidence_frames as f64),
                ("tail-window", d.tail_window as f64),
                ("idle-stretch", d.idle_stretch),
                ("view-table", f64::from(u8::from(d.view_table))),
                ("cascade", f64::from(u8::from(d.cascade))),
                ("fallback", f64::from(u8::from(d.fallback))),
                ("escalate-chance", d.escalate_chance),
                ("robust-gain", f64::from(u8::from(d.robust_gain))),
                ("skip-late", f64::from(u8::from(d.skip_late))),
                ("content-window", d.content_window as f64),
            ]
        }
        "exhaustive" => {
            let d = ExhaustiveParams::default();
            vec![
                ("probe-frames", d.probe_frames as f64),
                ("reprobe-every", d.reprobe_every as f64),
                ("margin", d.margin),
            ]
        }
        // (`timed-latency` is the harness's: what the oracle's latency tables are.)
        "oracle" => vec![
            ("window", OracleParams::default().window as f64),
            ("timed-latency", 1.0),
        ],
        "ofa-static" => vec![("margin", OfaStaticParams::default().margin)],
        "dynamic-ofa" => {
            let d = DynamicOfaParams::default();
            vec![
                ("window", d.window as f64),
                ("slack", d.slack),
                ("margin", d.margin),
            ]
        }
        "adaptivenet" => {
            let d = AdaptiveNetParams::default();
            vec![
                ("margin", d.margin),
                ("revalidate-every", d.revalidate_every as f64),
                ("trial-frames", d.trial_frames as f64),
            ]
        }
        "random" => vec![("switch-every", 30.0)],
        _ => vec![],
    }
}

/// Range of a numeric selector parameter, and whether it is an integer.
fn param_range(key: &str) -> (f64, f64, bool) {
    match key {
        "margin" | "slack" => (0.05, 1.0, false),
        "latency-drift" => (0.01, 10.0, false),
        "confidence-drift" => (0.001, 1.0, false),
        "probe-frames" | "trial-frames" => (1.0, 1000.0, true),
        "load-window" | "tail-window" | "content-window" => (0.0, 1000.0, true),
        "min-gain" | "escalate-chance" => (0.0, 1.0, false),
        "idle-stretch" => (0.0, 100.0, false),
        "view-table" | "cascade" | "fallback" | "robust-gain" | "skip-late" | "timed-latency" => {
            (0.0, 1.0, true)
        }
        "replan-every" | "evidence-frames" => (0.0, 1_000_000.0, true),
        _ => (1.0, 1_000_000.0, true),
    }
}

/// A validated scenario, with every default filled in (what runs, and what is written to
/// the run directory as the effective scenario).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Scenario {
    /// Name.
    pub name: String,
    /// What it exercises.
    pub description: String,
    /// Seed of the stream's content.
    pub seed_stream: u64,
    /// Seed of the load injector's timing.
    pub seed_load: u64,
    /// Seed of randomised selectors.
    pub seed_selector: u64,
    /// Backend.
    pub backend: Backend,
    /// Inference threads (0 = all cores).
    pub threads: usize,
    /// Emulated slow-down factor (1 = none; any other value marks runs as emulated).
    pub slowdown: f64,
    /// Deadline per frame, ms.
    pub deadline_ms: f64,
    /// Frames.
    pub stream: StreamSource,
    /// Background load.
    pub workload: Workload,
    /// Super-network checkpoint.
    pub checkpoint: PathBuf,
    /// Candidates file.
    pub candidates: PathBuf,
    /// Calibration profile (`opa calibrate`), read by every selector but the fixed and
    /// random ones.
    pub profile: PathBuf,
    /// Selectors, in the order they replay.
    pub selectors: Vec<SelectorSpec>,
    /// Run directory.
    pub output_dir: PathBuf,
}

/// One problem found in a scenario file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// `file:line:column` (1-based).
    pub location: String,
    /// What is wrong, with the key path.
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}

/// Every problem of one file.
#[derive(Debug)]
pub struct ScenarioErrors(pub Vec<Problem>);

impl std::fmt::Display for ScenarioErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let lines: Vec<String> = self.0.iter().map(|p| p.to_string()).collect();
        write!(f, "{}", lines.join("\n"))
    }
}

impl std::error::Error for ScenarioErrors {}

/// Where the shipped data lives, for relative-path defaults.
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

struct Ctx<'a> {
    file: &'a str,
    src: &'a str,
    problems: Vec<Problem>,
}

impl Ctx<'_> {
    fn at(&self, offset: usize) -> String {
        let before = &self.src[..offset.min(self.src.len())];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        format!("{}:{line}:{col}", self.file)
    }

    fn push<T>(&mut self, v: &S<T>, message: String) {
        let location = self.at(v.span().start);
        self.problems.push(Problem { location, message });
    }
}

/// Parses and validates a scenario file; relative paths inside it are resolved against the
/// file's directory.
pub fn load(path: &Path) -> Result<Scenario, ScenarioErrors> {
    let file = path.display().to_string();
    let src = std::fs::read_to_string(path).map_err(|e| {
        ScenarioErrors(vec![Problem {
            location: file.clone(),
            message: format!("cannot read: {e}"),
        }])
    })?;
    parse(&file, &src, path.parent().unwrap_or(Path::new(".")))
}

/// Parses and validates scenario text; `file` names it in messages, `base` resolves relative paths.
pub fn parse(file: &str, src: &str, base: &Path) -> Result<Scenario, ScenarioErrors> {
    let mut ctx = Ctx {
        file,
        src,
        problems: Vec::new(),
    };
    let raw: RawScenario = match toml::from_str(src) {
        Ok(r) => r,
        Err(e) => {
            let location = e.span().map_or(file.to_string(), |s| ctx.at(s.start));
            return Err(ScenarioErrors(vec![Problem {
                location,
                message: e.message().trim().to_string(),
            }]));
        }
    };
    let scenario = validate(&mut ctx, raw, base);
    if ctx.problems.is_empty() {
        Ok(scenario)
    } else {
        Err(ScenarioErrors(ctx.problems))
    }
}

fn in_range(ctx: &mut Ctx, v: &S<f64>, key: &str, lo: f64, hi: f64) -> f64 {
    let x = *v.get_ref();
    if !(lo..=hi).contains(&x) {
        ctx.push(v, format!("{key} = {x}: must be within {lo}..={hi}"));
    }
    x
}

fn positive(ctx: &mut Ctx, v: &S<f64>, key: &str) -> f64 {
    let x = *v.get_ref();
    if !(x > 0.0 && x.is_finite()) {
        ctx.push(v, format!("{key} = {x}: must be a positive number"));
    }
    x
}

fn int_range(ctx: &mut Ctx, v: &S<i64>, key: &str, lo: i64, hi: i64) -> i64 {
    let x = *v.get_ref();
    if !(lo..=hi).contains(&x) {
        ctx.push(v, format!("{key} = {x}: must be within {lo}..={hi}"));
    }
    x.clamp(lo, hi)
}

fn resolve(base: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

fn validate(ctx: &mut Ctx, raw: RawScenario, base: &Path) -> Scenario {
    let name = raw.name.get_ref().clone();
    if name.trim().is_empty() || name.contains(['/', '\\']) {
        ctx.push(
            &raw.name,
            format!("name = {name:?}: must be non-empty and hold no path separator"),
        );
    }
    let seed = |ctx: &mut Ctx, v: &Option<S<i64>>, key: &str, default: u64| {
        v.as_ref()
            .map_or(default, |s| int_range(ctx, s, key, 0, i64::MAX) as u64)
    };
    let seeds = raw.seeds.as_ref();
    let seed_stream = seed(
        ctx,
        &seeds.and_then(|s| s.stream.clone()),
        "seeds.stream",
        1,
    );
    let seed_load = seed(ctx, &seeds.and_then(|s| s.load.clone()), "seeds.load", 2);
    let seed_selector = seed(
        ctx,
        &seeds.and_then(|s| s.selector.clone()),
        "seeds.selector",
        3,
    );

    let mut backend = Backend::Flex;
    let (mut threads, mut slowdown) = (0usize, 1.0f64);
    if let Some(d) = &raw.device {
        if let Some(b) = &d.backend {
            backend = Backend::from_name(b.get_ref()).unwrap_or_else(|| {
                ctx.push(
                    b,
                    format!(
                        "device.backend = {:?}: must be one of flex, ndarray, tch-cpu, tch-cuda",
                        b.get_ref()
                    ),
                );
                Backend::Flex
            });
        }
        if let Some(t) = &d.threads {
            threads = int_range(ctx, t, "device.threads", 0, 1024) as usize;
        }
        if let Some(s) = &d.slowdown {
            slowdown = in_range(ctx, s, "device.slowdown", 1.0, 100.0);
        }
    }
    let deadline_ms = match &raw.requirement {
        Some(r) => positive(ctx, &r.deadline_ms, "requirement.deadline-ms"),
        None => {
            ctx.problems.push(Problem { location: ctx.at(0), message: "requirement.deadline-ms is required (a [requirement] table with deadline-ms = <ms>)".into() });
            1.0
        }
    };

    let empty = RawStream {
        frames_dir: None,
        fps: None,
        segment: Vec::new(),
    };
    let raw_stream = raw.stream.as_ref().unwrap_or(&empty);
    let stream = match (&raw_stream.frames_dir, raw_stream.segment.is_empty()) {
        (Some(dir), true) => {
            let fps = match &raw_stream.fps {
                Some(f) => positive(ctx, f, "stream.fps"),
                None => {
                    ctx.push(dir, "stream.frames-dir needs stream.fps".into());
                    1.0
                }
            };
            let d = resolve(base, dir.get_ref());
            if !d.join("labels.csv").is_file() {
                ctx.push(
                    dir,
                    format!(
                        "stream.frames-dir = {:?}: {} does not exist",
                        dir.get_ref(),
                        d.join("labels.csv").display()
                    ),
                );
            }
            StreamSource::Frames { dir: d, fps }
        }
        (Some(dir), false) => {
            ctx.push(
                dir,
                "stream: give either frames-dir or [[stream.segment]] tables, not both".into(),
            );
            StreamSource::Frames {
                dir: PathBuf::new(),
                fps: 1.0,
            }
        }
        (None, true) => {
            ctx.problems.push(Problem {
                location: ctx.at(0),
                message: "stream: needs [[stream.segment]] tables or a frames-dir".into(),
            });
            StreamSource::Synthetic(StreamSpec { segments: vec![] })
        }
        (None, false) => {
            if let Some(f) = &raw_stream.fps {
                ctx.push(
                    f,
                    "stream.fps applies to frames-dir only; synthetic segments set their own fps"
                        .into(),
                );
            }
            let segments = raw_stream
                .segment
                .iter()
                .enumerate()
                .map(|(i, s)| segment(ctx, i, s))
                .collect();
            StreamSource::Synthetic(StreamSpec { segments })
        }
    };
    let workload = workload(ctx, raw.workload.as_ref(), base);
    let path_or = |v: &Option<S<String>>, default: PathBuf| {
        v.as_ref().map_or(default, |p| resolve(base, p.get_ref()))
    };
    let checkpoint = path_or(
        &raw.checkpoint,
        workspace_root().join("supernet/checkpoints/fashion-mnist/supernet.opack"),
    );
    let candidates = path_or(
        &raw.candidates,
        workspace_root().join("supernet/checkpoints/fashion-mnist/candidates.json"),
    );
    for (key, v, p) in [
        ("checkpoint", &raw.checkpoint, &checkpoint),
        ("candidates", &raw.candidates, &candidates),
    ] {
        if let Some(v) = v.as_ref().filter(|_| !p.is_file()) {
            ctx.push(
                v,
                format!("{key} = {:?}: {} does not exist", v.get_ref(), p.display()),
            );
        }
    }

    let mut selectors = Vec::new();
    if raw.selector.is_empty() {
        ctx.problems.push(Problem {
            location: ctx.at(0),
            message: "selector: at least one [[selector]] table is needed".into(),
        });
    }
    for (i, s) in raw.selector.iter().enumerate() {
        let kind = s.kind.get_ref().clone();
        if !SELECTOR_KINDS.contains(&kind.as_str()) {
            ctx.push(
                &s.kind,
                format!(
                    "selector[{i}].kind = {kind:?}: must be one of {}",
                    SELECTOR_KINDS.join(", ")
                ),
            );
        }
        let mut params: Vec<(String, f64)> = selector_defaults(&kind)
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect();
        for (key, v) in s.numeric() {
            let Some(v) = v else { continue };
            let Some(slot) = params.iter_mut().find(|(k, _)| k == key) else {
                let kinds: Vec<&str> = SELECTOR_KINDS
                    .into_iter()
                    .filter(|k| selector_defaults(k).iter().any(|(d, _)| *d == key))
                    .collect();
                ctx.push(
                    v,
                    format!(
                        "selector[{i}].{key} does not apply to kind {kind:?} (only to {})",
                        kinds.join(", ")
                    ),
                );
                continue;
            };
            let (lo, hi, int) = param_range(key);
            let x = match v.get_ref() {
                toml::Value::Integer(n) => *n as f64,
                toml::Value::Float(f) if !int => *f,
                other => {
                    ctx.push(
                        v,
                        format!(
                            "selector[{i}].{key} = {other}: must be {}",
                            if int { "an integer" } else { "a number" }
                        ),
                    );
                    continue;
                }
            };
            if !(lo..=hi).contains(&x) {
                ctx.push(
                    v,
                    format!("selector[{i}].{key} = {x}: must be within {lo}..={hi}"),
                );
            }
            slot.1 = x.clamp(lo, hi);
        }
        let mut predictor = (kind == "opa").then_some(Variant::Linear);
        if let Some(p) = &s.predictor {
            if kind != "opa" {
                ctx.push(
                    p,
                    format!("selector[{i}].predictor applies to kind \"opa\" only"),
                );
            } else {
                match p.get_ref().parse::<Variant>() {
                    Ok(v) if v.deployable() => predictor = Some(v),
                    Ok(v) => ctx.push(
                        p,
                        format!(
                            "selector[{i}].predictor = {:?}: sees the probe's labels, an upper bound for `opa predictors eval` only; choose ratio, linear, shared-mlp or knn",
                            v.name()
                        ),
                    ),
                    Err(e) => ctx.push(p, format!("selector[{i}].predictor: {e}")),
                }
            }
        }
        let name = s
            .name
            .as_ref()
            .map_or(kind.clone(), |n| n.get_ref().clone());
        if selectors.iter().any(|x: &SelectorSpec| x.name == name) {
            let at = s
                .name
                .as_ref()
                .map_or(s.kind.span().start, |n| n.span().start);
            ctx.problems.push(Problem {
                location: ctx.at(at),
                message: format!("selector[{i}]: name {name:?} is used twice; give one a `name`"),
            });
        }
        selectors.push(SelectorSpec {
            kind,
            name,
            params,
            predictor,
        });
    }
    let profile = path_or(
        &raw.profile,
        workspace_root().join("supernet/checkpoints/fashion-mnist/profile.parquet"),
    );
    // A default profile that is missing is reported by `check_profile` (at run and
    // validate time): `opa replay --profile` does not need it.
    if let Some(p) = raw.profile.as_ref().filter(|_| !profile.is_file())
        && let Some(spec) = selectors.iter().find(|s| s.needs_profile())
    {
        ctx.push(
            p,
            format!(
                "profile = {:?}: selector {:?} needs a calibration profile, and {} does not exist: run `opa calibrate --out {}`",
                p.get_ref(),
                spec.kind,
                profile.display(),
                profile.display()
            ),
        );
    }
    let output_dir = raw
        .output
        .as_ref()
        .and_then(|o| o.dir.as_ref())
        .map_or_else(
            || PathBuf::from("runs").join(&name),
            |d| PathBuf::from(d.get_ref()),
        );

    Scenario {
        name,
        description: raw
            .description
            .as_ref()
            .map_or(String::new(), |d| d.get_ref().clone()),
        seed_stream,
        seed_load,
        seed_selector,
        backend,
        threads,
        slowdown,
        deadline_ms,
        stream,
        workload,
        checkpoint,
        candidates,
        profile,
        selectors,
        output_dir,
    }
}

fn segment(ctx: &mut Ctx, i: usize, s: &S<RawSegment>) -> Segment {
    let r = s.get_ref();
    let key = |k: &str| format!("stream.segment[{i}].{k}");
    let duration_s = positive(ctx, &r.duration_s, &key("duration-s"));
    let fps = in_range(
        ctx,
        &r.fps,
        &key("fps"),
        *SEGMENT_FPS.start(),
        *SEGMENT_FPS.end(),
    );
    let mut seg = Segment::clean(duration_s, fps);
    if let Some(v) = &r.scene_length {
        seg.scene_length = int_range(ctx, v, &key("scene-length"), 1, 100_000) as u32;
    }
    if let Some(v) = &r.jitter_px {
        seg.jitter_px = int_range(ctx, v, &key("jitter-px"), 0, 8) as u8;
    }
    if let Some(v) = &r.flicker {
        seg.flicker = in_range(ctx, v, &key("flicker"), 0.0, 0.5) as f32;
    }
    if let Some(m) = &r.class_mix {
        seg.class_mix = match m.get_ref() {
            RawClassMix::Named(n) if n == "uniform" => ClassMix::Uniform,
            RawClassMix::Named(n) => {
                ctx.push(m, format!("{} = {n:?}: must be \"uniform\", {{ weights = [...] }} or {{ subset = [...] }}", key("class-mix")));
                ClassMix::Uniform
            }
            RawClassMix::Table(t) => match (&t.weights, &t.subset) {
                (Some(w), None)
                    if w.len() == 10
                        && w.iter().all(|x| *x >= 0.0 && x.is_finite())
                        && w.iter().sum::<f64>() > 0.0 =>
                {
                    ClassMix::Weights(w.clone())
                }
                (Some(w), None) => {
                    ctx.push(m, format!("{}.weights: need 10 non-negative weights (one per class) with a positive sum, got {w:?}", key("class-mix")));
                    ClassMix::Uniform
                }
                (None, Some(sub)) if !sub.is_empty() && sub.iter().all(|c| (0..10).contains(c)) => {
                    ClassMix::Subset(sub.iter().map(|&c| c as u16).collect())
                }
                (None, Some(sub)) => {
                    ctx.push(
                        m,
                        format!(
                            "{}.subset: need class indices within 0..=9, got {sub:?}",
                            key("class-mix")
                        ),
                    );
                    ClassMix::Uniform
                }
                _ => {
                    ctx.push(
                        m,
                        format!(
                            "{}: give exactly one of weights or subset",
                            key("class-mix")
                        ),
                    );
                    ClassMix::Uniform
                }
            },
        };
    }
    match (&r.corruption, &r.severity) {
        (Some(c), sev) => {
            let kind = match c.get_ref().parse::<CorruptionKind>() {
                Ok(k) => Some(k),
                Err(e) => {
                    ctx.push(c, format!("{} = {:?}: {e}", key("corruption"), c.get_ref()));
                    None
                }
            };
            let check = |ctx: &mut Ctx, v: i64| -> u8 {
                if !(0..=5).contains(&v) {
                    let sv = sev.as_ref().expect("checked only when given");
                    ctx.push(
                        sv,
                        format!("{} = {v}: must be within 0..=5", key("severity")),
                    );
                }
                v.clamp(0, 5) as u8
            };
            let severity = match sev.as_ref().map(|s| s.get_ref()) {
                None => {
                    ctx.push(
                        c,
                        format!(
                            "{}: a corrupted segment needs {}",
                            key("corruption"),
                            key("severity")
                        ),
                    );
                    SeverityProfile::Constant(0)
                }
                Some(RawSeverity::Constant(v)) => SeverityProfile::Constant(check(ctx, *v)),
                Some(RawSeverity::Ramp(RawRamp { from, to })) => SeverityProfile::Ramp {
                    from: check(ctx, *from),
                    to: check(ctx, *to),
                },
                Some(RawSeverity::Steps(v)) if v.is_empty() => {
                    ctx.push(
                        sev.as_ref().expect("given"),
                        format!("{}: steps must not be empty", key("severity")),
                    );
                    SeverityProfile::Constant(0)
                }
                Some(RawSeverity::Steps(v)) => {
                    SeverityProfile::Steps(v.iter().map(|x| check(ctx, *x)).collect())
                }
            };
            seg.corruption = kind.map(|kind| CorruptionSchedule { kind, severity });
        }
        (None, Some(sev)) => ctx.push(
            sev,
            format!("{} needs {}", key("severity"), key("corruption")),
        ),
        (None, None) => {}
    }
    seg
}

fn workload(ctx: &mut Ctx, raw: Option<&RawWorkload>, base: &Path) -> Workload {
    let mut interpolation = Interpolation::Step;
    let Some(w) = raw else {
        return Workload {
            points: vec![LoadPoint {
                time_s: 0.0,
                cpu_load: 0.0,
                gpu_load: 0.0,
            }],
            interpolation,
        };
    };
    if let Some(i) = &w.interpolation {
        interpolation = match i.get_ref().as_str() {
            "step" => Interpolation::Step,
            "linear" => Interpolation::Linear,
            other => {
                ctx.push(
                    i,
                    format!("workload.interpolation = {other:?}: must be \"step\" or \"linear\""),
                );
                Interpolation::Step
            }
        };
    }
    let mut points = Vec::new();
    match (&w.trace, w.phase.is_empty()) {
        (Some(t), true) => {
            let path = resolve(base, t.get_ref());
            match std::fs::read_to_string(&path) {
                Ok(text) => match parse_trace(&text) {
                    Ok(p) => points = p,
                    Err(e) => ctx.push(
                        t,
                        format!(
                            "workload.trace = {:?}: {}: {e}",
                            t.get_ref(),
                            path.display()
                        ),
                    ),
                },
                Err(e) => ctx.push(
                    t,
                    format!(
                        "workload.trace = {:?}: {}: {e}",
                        t.get_ref(),
                        path.display()
                    ),
                ),
            }
        }
        (Some(t), false) => ctx.push(
            t,
            "workload: give either trace or [[workload.phase]] tables, not both".into(),
        ),
        (None, _) => {
            let mut t = 0.0;
            for (i, p) in w.phase.iter().enumerate() {
                let r = p.get_ref();
                let d = positive(
                    ctx,
                    &r.duration_s,
                    &format!("workload.phase[{i}].duration-s"),
                );
                let cpu = r.cpu_load.as_ref().map_or(0.0, |v| {
                    in_range(ctx, v, &format!("workload.phase[{i}].cpu-load"), 0.0, 1.0)
                });
                let gpu = r.gpu_load.as_ref().map_or(0.0, |v| {
                    in_range(ctx, v, &format!("workload.phase[{i}].gpu-load"), 0.0, 1.0)
                });
                points.push(LoadPoint {
                    time_s: t,
                    cpu_load: cpu,
                    gpu_load: gpu,
                });
                t += d;
            }
        }
    }
    if points.is_empty() {
        points.push(LoadPoint {
            time_s: 0.0,
            cpu_load: 0.0,
            gpu_load: 0.0,
        });
    }
    Workload {
        points,
        interpolation,
    }
}

/// Parses a workload trace CSV: header `time_s,cpu_load,gpu_load`, rows in increasing time
/// starting at 0, loads within 0..=1.
pub fn parse_trace(text: &str) -> Result<Vec<LoadPoint>, String> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
    match lines.next() {
        Some((_, h)) if h.replace(' ', "") == "time_s,cpu_load,gpu_load" => {}
        Some((i, h)) => {
            return Err(format!(
                "line {}: header is `{h}`, expected `time_s,cpu_load,gpu_load`",
                i + 1
            ));
        }
        None => return Err("empty trace".into()),
    }
    let mut points: Vec<LoadPoint> = Vec::new();
    for (i, line) in lines {
        let v: Vec<&str> = line.split(',').map(str::trim).collect();
        let num = |s: &str| {
            s.parse::<f64>()
                .map_err(|_| format!("line {}: `{s}` is not a number", i + 1))
        };
        if v.len() != 3 {
            return Err(format!(
                "line {}: expected 3 columns, found {}",
                i + 1,
                v.len()
            ));
        }
        let p = LoadPoint {
            time_s: num(v[0])?,
            cpu_load: num(v[1])?,
            gpu_load: num(v[2])?,
        };
        if !(0.0..=1.0).contains(&p.cpu_load) || !(0.0..=1.0).contains(&p.gpu_load) {
            return Err(format!("line {}: loads must be within 0..=1", i + 1));
        }
        if points.last().is_some_and(|q| p.time_s <= q.time_s)
            || (points.is_empty() && p.time_s != 0.0)
        {
            return Err(format!(
                "line {}: times must start at 0 and increase",
                i + 1
            ));
        }
        points.push(p);
    }
    if points.is_empty() {
        return Err("no rows after the header".into());
    }
    Ok(points)
}

/// Checks that the calibration profile exists when a selector needs one.
pub fn check_profile(s: &Scenario) -> Result<(), String> {
    match s.selectors.iter().find(|x| x.needs_profile()) {
        Some(x) if !s.profile.is_file() => Err(format!(
            "selector {:?} needs a calibration profile, and {} does not exist: run `opa calibrate --out {}` or set `profile`",
            x.kind,
            s.profile.display(),
            s.profile.display()
        )),
        _ => Ok(()),
    }
}

/// Checks that the scenario's backend can run in this build and on this machine.
pub fn check_backend(s: &Scenario) -> Result<(), String> {
    s.backend
        .device()
        .map_err(|e| format!("device.backend = \"{}\": {e}", s.backend.name()))?;
    if s.backend == Backend::TchCuda && !Path::new("/dev/nvidiactl").exists() {
        return Err("device.backend = \"tch-cuda\": no NVIDIA GPU on this machine (/dev/nvidiactl is missing); run it on a GPU machine or choose tch-cpu / flex".into());
    }
    Ok(())
}

impl Scenario {
    /// The seed of replay's draws from a profile (`opa replay`; [`crate::profile_target`]):
    /// from the stream's and the load's seeds, so that every selector of a replay draws
    /// the same outcomes.
    pub fn replay_seed(&self) -> u64 {
        self.seed_stream.wrapping_mul(0x9e37_79b9) ^ self.seed_load
    }

    /// The scenario in its own file format with every default written out: loading the
    /// result gives this scenario back (paths become absolute where they were resolved).
    pub fn to_toml(&self) -> String {
        use std::fmt::Write;
        let q = |s: &str| toml::Value::String(s.to_string()).to_string();
        let backend = self.backend.name();
        let mut o = String::new();
        let _ = writeln!(
            o,
            "name = {}\ndescription = {}",
            q(&self.name),
            q(&self.description)
        );
        let _ = writeln!(
            o,
            "checkpoint = {}\ncandidates = {}\nprofile = {}",
            q(&self.checkpoint.to_string_lossy()),
            q(&self.candidates.to_string_lossy()),
            q(&self.profile.to_string_lossy())
        );
        let _ = writeln!(
            o,
            "\n[seeds]\nstream = {}\nload = {}\nselector = {}",
            self.seed_stream, self.seed_load, self.seed_selector
        );
        let _ = writeln!(
            o,
            "\n[device]\nbackend = {}\nthreads = {}\nslowdown = {:?}",
            q(backend),
            self.threads,
            self.slowdown
        );
        let _ = writeln!(o, "\n[requirement]\ndeadline-ms = {:?}", self.deadline_ms);
        match &self.stream {
            StreamSource::Frames { dir, fps } => {
                let _ = writeln!(
                    o,
                    "\n[stream]\nframes-dir = {}\nfps = {fps:?}",
                    q(&dir.to_string_lossy())
                );
            }
            StreamSource::Synthetic(spec) => {
                for s in &spec.segments {
                    let _ = writeln!(
                        o,
                        "\n[[stream.segment]]\nduration-s = {:?}\nfps = {:?}",
                        s.duration_s, s.fps
                    );
                    let mix = match &s.class_mix {
                        ClassMix::Uniform => q("uniform"),
                        ClassMix::Weights(w) => format!("{{ weights = {w:?} }}"),
                        ClassMix::Subset(c) => format!("{{ subset = {c:?} }}"),
                    };
                    let _ = writeln!(
                        o,
                        "class-mix = {mix}\nscene-length = {}\njitter-px = {}\nflicker = {:?}",
                        s.scene_length, s.jitter_px, s.flicker as f64
                    );
                    if let Some(c) = &s.corruption {
                        let sev = match &c.severity {
                            SeverityProfile::Constant(v) => v.to_string(),
                            SeverityProfile::Ramp { from, to } => {
                                format!("{{ from = {from}, to = {to} }}")
                            }
                            SeverityProfile::Steps(v) => format!("{v:?}"),
                        };
                        let _ = writeln!(o, "corruption = {}\nseverity = {sev}", q(c.kind.name()));
                    }
                }
            }
        }
        let _ = writeln!(
            o,
            "\n[workload]\ninterpolation = {}",
            q(if self.workload.interpolation == Interpolation::Step {
                "step"
            } else {
                "linear"
            })
        );
        // Points become phases; the last one holds to the end.
        for (i, p) in self.workload.points.iter().enumerate() {
            let d = self
                .workload
                .points
                .get(i + 1)
                .map_or(1.0, |n| n.time_s - p.time_s);
            let _ = writeln!(
                o,
                "\n[[workload.phase]]\nduration-s = {d:?}\ncpu-load = {:?}\ngpu-load = {:?}",
                p.cpu_load, p.gpu_load
            );
        }
        for s in &self.selectors {
            let _ = writeln!(
                o,
                "\n[[selector]]\nkind = {}\nname = {}",
                q(&s.kind),
                q(&s.name)
            );
            if let Some(p) = s.predictor {
                let _ = writeln!(o, "predictor = {}", q(p.name()));
            }
            for (k, v) in &s.params {
                let v = if param_range(k).2 {
                    toml::Value::from(*v as i64)
                } else {
                    toml::Value::from(*v)
                };
                let _ = writeln!(o, "{k} = {v}");
            }
        }
        let _ = writeln!(
            o,
            "\n[output]\ndir = {}",
            q(&self.output_dir.to_string_lossy())
        );
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_load_from_a_hint_is_the_load_at_the_time_whatever_the_hint() {
        let points = [(2.0, 0.1), (5.0, 0.9), (6.0, 0.3), (9.0, 0.6)]
            .iter()
            .map(|&(time_s, cpu_load)| LoadPoint {
                time_s,
                cpu_load,
                gpu_load: cpu_load / 2.0,
            })
            .collect();
        for interpolation in [Interpolation::Step, Interpolation::Linear] {
            let w = Workload {
                points: Vec::clone(&points),
                interpolation,
            };
            // In time order, backwards, jumping, at the points, outside them, NaN.
            let mut times: Vec<f64> = (0..120).map(|k| k as f64 * 0.1).collect();
            times.extend((0..120).rev().map(|k| k as f64 * 0.1));
            times.extend([
                9.0,
                2.0,
                5.0,
                1.0,
                6.0,
                20.0,
                5.5,
                f64::NAN,
                0.0,
                6.0,
                5.999,
            ]);
            let mut hint = 0;
            for &t in &times {
                let (want, got) = (w.at(t), w.at_from(&mut hint, t));
                assert_eq!(want.cpu_load.to_bits(), got.cpu_load.to_bits(), "{t}");
                assert_eq!(want.gpu_load.to_bits(), got.gpu_load.to_bits(), "{t}");
            }
            // Whatever the hint holds.
            for bad in [0, 1, 3, 4, 100] {
                let mut hint = bad;
                assert_eq!(w.at_from(&mut hint, 5.5), w.at(5.5));
            }
        }
    }
}
