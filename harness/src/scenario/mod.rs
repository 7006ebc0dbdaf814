//! Scenario files: what to replay (device, deadline, stream, workload, selectors, output).
//!
//! Read in two stages (as cargo-deny does): raw serde types that keep source spans and reject
//! unknown keys (every syntax error and every unknown key is reported, each where it is
//! written), then `validate`, which checks every value and reports *every* problem at
//! once, each as `file:line:column: key.path = value: what is wrong`. Every key is documented
//! in `scenarios/README.md`.

use crate::backend::Backend;
use opa_datasets::stream::StreamSpec;
use opa_predictors::predict::Variant;
use opa_predictors::selectors::SelectorKind;
use serde::{Deserialize as _, Serialize};
use std::path::{Path, PathBuf};
use toml::Spanned;

mod effective;
mod raw;
mod selectors;
mod stream;
mod workload;

pub use workload::{Interpolation, LoadPoint, Workload, parse_trace};

pub use raw::RawScenario;
use raw::RawStream;
use selectors::selector;
use stream::segment;
use workload::workload;

type S<T> = Spanned<T>;

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
    /// Kind.
    pub kind: SelectorKind,
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
        self.kind.needs_profile()
    }
}

/// The frame rates a synthetic stream segment accepts, per second.
pub const SEGMENT_FPS: std::ops::RangeInclusive<f64> = 0.01..=1000.0;

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
/// Most frames a synthetic stream may have (every frame is prepared before a run starts).
pub const MAX_FRAMES: usize = 1_000_000;
/// Most `[[selector]]` tables in a scenario.
pub const MAX_SELECTORS: usize = 64;
/// Most characters of a scenario's or a selector's name.
pub const MAX_NAME: usize = 100;
/// Largest scenario or trace file read, bytes.
pub const MAX_FILE_BYTES: u64 = 16 << 20;

/// The text of a regular file of at most [`MAX_FILE_BYTES`] (not a pipe or a device, which
/// could block or never end); invalid UTF-8 is reported with its byte offset.
pub fn read_text(path: &Path) -> Result<String, String> {
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(format!(
            "{} bytes; at most {MAX_FILE_BYTES} are read",
            meta.len()
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    String::from_utf8(bytes).map_err(|e| {
        format!(
            "not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        )
    })
}

pub fn load(path: &Path) -> Result<Scenario, ScenarioErrors> {
    let file = path.display().to_string();
    let src = read_text(path).map_err(|e| {
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
    // Every syntax error at once, then every unknown key: serde stops at the first unknown
    // key, so each is taken out of the parsed document and the rest read again.
    let (mut doc, syntax) = toml::de::DeTable::parse_recoverable(src);
    let problem = |ctx: &Ctx, e: &toml::de::Error| Problem {
        location: e.span().map_or(file.to_string(), |s| ctx.at(s.start)),
        message: e.message().trim().to_string(),
    };
    if !syntax.is_empty() {
        return Err(ScenarioErrors(
            syntax
                .iter()
                .take(MAX_PROBLEMS)
                .map(|e| problem(&ctx, e))
                .collect(),
        ));
    }
    let raw = loop {
        match RawScenario::deserialize(toml::de::Deserializer::from(doc.clone())) {
            Ok(r) => break r,
            Err(e) => {
                ctx.problems.push(problem(&ctx, &e));
                let unknown = e.message().starts_with("unknown field");
                let taken = match e.span() {
                    Some(span) if unknown && ctx.problems.len() < MAX_PROBLEMS => {
                        remove_key_at(doc.get_mut(), span.start)
                    }
                    _ => false,
                };
                if !taken {
                    return Err(ScenarioErrors(std::mem::take(&mut ctx.problems)));
                }
            }
        }
    };
    let scenario = validate(&mut ctx, raw, base);
    if ctx.problems.is_empty() {
        Ok(scenario)
    } else {
        Err(ScenarioErrors(ctx.problems))
    }
}

/// The most problems one file reports.
const MAX_PROBLEMS: usize = 100;

/// Takes the key written at byte `start` out of `table` or a table inside it; false when no
/// key starts there.
fn remove_key_at(table: &mut toml::de::DeTable<'_>, start: usize) -> bool {
    if let Some(key) = table.keys().find(|k| k.span().start == start).cloned() {
        table.remove(&key);
        return true;
    }
    table
        .iter_mut()
        .any(|(_, v)| remove_in_value(v.get_mut(), start))
}

fn remove_in_value(value: &mut toml::de::DeValue<'_>, start: usize) -> bool {
    match value {
        toml::de::DeValue::Table(t) => remove_key_at(t, start),
        toml::de::DeValue::Array(items) => items
            .iter_mut()
            .any(|item| remove_in_value(item.get_mut(), start)),
        _ => false,
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
    if name.trim().is_empty()
        || name.contains(['/', '\\'])
        || name == "."
        || name == ".."
        || name.chars().count() > MAX_NAME
    {
        ctx.push(
            &raw.name,
            format!(
                "name = {name:?}: must be 1 to {MAX_NAME} characters, not . or .., with no path separator (it names the run directory)"
            ),
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
            let segments: Vec<_> = raw_stream
                .segment
                .iter()
                .enumerate()
                .map(|(i, s)| segment(ctx, i, s))
                .collect();
            // Every frame is prepared before a run starts: the stream is bounded.
            let frames: f64 = segments
                .iter()
                .map(|g| (g.duration_s * g.fps).round())
                .sum();
            if frames > MAX_FRAMES as f64 {
                ctx.push(
                    &raw_stream.segment[0],
                    format!(
                        "stream: {frames:.0} frames in all; at most {MAX_FRAMES} (shorten the segments or lower their fps)"
                    ),
                );
            }
            StreamSource::Synthetic(StreamSpec { segments })
        }
    };
    let workload = workload(ctx, raw.workload.as_ref(), base);
    let path_or = |v: &Option<S<String>>, default: PathBuf| {
        v.as_ref().map_or(default, |p| resolve(base, p.get_ref()))
    };
    let checkpoint = path_or(&raw.checkpoint, opa_supernet::shipped_checkpoint());
    let candidates = path_or(&raw.candidates, opa_supernet::shipped_candidates());
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
    if raw.selector.len() > MAX_SELECTORS {
        let location = raw.selector[MAX_SELECTORS]
            .0
            .keys()
            .next()
            .map_or_else(|| ctx.at(0), |k| ctx.at(k.span().start));
        ctx.problems.push(Problem {
            location,
            message: format!(
                "selector: {} [[selector]] tables; at most {MAX_SELECTORS}",
                raw.selector.len()
            ),
        });
    }
    for (i, s) in raw.selector.iter().enumerate().take(MAX_SELECTORS) {
        if let Some(spec) = selector(ctx, i, s, &selectors) {
            selectors.push(spec);
        }
    }
    let profile = path_or(&raw.profile, opa_supernet::shipped_profile());
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
                spec.kind.name(),
                profile.display(),
                profile.display()
            ),
        );
    }
    if let Some(d) = raw
        .output
        .as_ref()
        .and_then(|o| o.dir.as_ref())
        .filter(|d| d.get_ref().trim().is_empty())
    {
        ctx.push(d, "output.dir = \"\": name a directory".into());
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

/// Checks that the calibration profile exists when a selector needs one.
pub fn check_profile(s: &Scenario) -> Result<(), String> {
    match s.selectors.iter().find(|x| x.needs_profile()) {
        Some(x) if !s.profile.is_file() => Err(format!(
            "selector {:?} needs a calibration profile, and {} does not exist: run `opa calibrate --out {}` or set `profile`",
            x.kind.name(),
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

    /// The seeds (stream, load, selector) of repeat `k` of this scenario (`--repeat N`):
    /// repeat 1 (and 0) its own; a later one each seed mixed with `k` (SplitMix64), so the
    /// repeats play other frames, load timings and selector draws, the same ones every time.
    pub fn repeat_seeds(&self, k: usize) -> [u64; 3] {
        let own = [self.seed_stream, self.seed_load, self.seed_selector];
        if k <= 1 {
            return own;
        }
        own.map(|s| {
            let mut z = s ^ (k as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        })
    }
}
