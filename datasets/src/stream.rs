//! Video streams: synthetic ones built from a labelled split and a segment spec, and real
//! frame sequences read from a directory.
//!
//! A synthetic stream is planned in full when it is built (which image each frame shows, its
//! condition, its timestamp), and each frame is rendered from its own random stream derived
//! from (seed, frame index). So the same spec and seed give the same frames byte for byte,
//! frames can be rendered in any order, and selectors can replay exactly the same stream.

use crate::corrupt::{CorruptionKind, MAX_SEVERITY};
use crate::error::{DatasetError, Result};
use crate::folder::read_image;
use crate::image::{Image, ImageSet};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One frame of a stream.
#[derive(Clone, Debug, PartialEq)]
pub struct Frame {
    /// Position in the stream, from 0.
    pub index: u64,
    /// Arrival time from the start of the stream, seconds.
    pub timestamp_s: f64,
    /// The pixels.
    pub image: Image,
    /// The true class.
    pub label: u16,
    /// What the content looks like (segment, corruption, severity).
    pub condition: Condition,
}

/// The content condition of a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Condition {
    /// Index of the segment the frame belongs to.
    pub segment: u32,
    /// The corruption applied, if any.
    pub corruption: Option<CorruptionKind>,
    /// Its severity, 0 (clean) to 5.
    pub severity: u8,
}

impl Condition {
    /// A clean frame of segment 0 (also used for real frames, whose condition is unknown).
    pub const CLEAN: Condition = Condition {
        segment: 0,
        corruption: None,
        severity: 0,
    };
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.corruption, self.severity) {
            (Some(k), s) if s > 0 => write!(f, "{k}@{s}"),
            _ => f.write_str("clean"),
        }
    }
}

/// Anything that yields a finite, replayable sequence of frames.
pub trait FrameSource: Send + Sync {
    /// Number of frames.
    fn len(&self) -> usize;

    /// Frame `index` (0-based, `< len()`); the same index always gives the same frame.
    fn frame(&self, index: usize) -> Result<Frame>;

    /// True when the source holds no frame.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The frames in order.
    fn frames(&self) -> Box<dyn Iterator<Item = Result<Frame>> + '_> {
        Box::new((0..self.len()).map(move |i| self.frame(i)))
    }
}

/// Which classes a segment shows, and how often.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClassMix {
    /// Every class equally often.
    Uniform,
    /// One non-negative weight per class (normalised).
    Weights(Vec<f64>),
    /// Only these classes, equally often.
    Subset(Vec<u16>),
}

impl ClassMix {
    /// The normalised share of each of `classes` classes.
    pub fn shares(&self, classes: usize) -> Result<Vec<f64>> {
        let raw = match self {
            ClassMix::Uniform => vec![1.0; classes],
            ClassMix::Weights(w) => {
                if w.len() != classes {
                    return Err(DatasetError::Spec(format!(
                        "class-mix has {} weights but the data set has {classes} classes",
                        w.len()
                    )));
                }
                if let Some(bad) = w.iter().find(|v| !v.is_finite() || **v < 0.0) {
                    return Err(DatasetError::Spec(format!(
                        "class-mix weight {bad} must be finite and >= 0"
                    )));
                }
                w.clone()
            }
            ClassMix::Subset(s) => {
                let mut v = vec![0.0; classes];
                for &c in s {
                    *v.get_mut(c as usize).ok_or_else(|| {
                        DatasetError::Spec(format!("class {c} is outside the {classes} classes"))
                    })? = 1.0;
                }
                v
            }
        };
        let total: f64 = raw.iter().sum();
        if total <= 0.0 {
            return Err(DatasetError::Spec("class-mix selects no class".into()));
        }
        Ok(raw.iter().map(|v| v / total).collect())
    }
}

/// How a segment's corruption severity evolves over the segment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SeverityProfile {
    /// The same severity throughout.
    Constant(u8),
    /// Linear from `from` at the start to `to` at the end, rounded to whole severities.
    Ramp {
        /// Severity at the start.
        from: u8,
        /// Severity at the end.
        to: u8,
    },
    /// Equal-length steps through these severities.
    Steps(Vec<u8>),
}

impl SeverityProfile {
    /// The severity at fraction `t` (0 ≤ t < 1) of the segment.
    pub fn at(&self, t: f64) -> u8 {
        match self {
            SeverityProfile::Constant(s) => *s,
            SeverityProfile::Ramp { from, to } => {
                (*from as f64 + (*to as f64 - *from as f64) * t).round() as u8
            }
            SeverityProfile::Steps(v) => v[((t * v.len() as f64) as usize).min(v.len() - 1)],
        }
    }

    fn check(&self) -> Result<()> {
        let all: Vec<u8> = match self {
            SeverityProfile::Constant(s) => vec![*s],
            SeverityProfile::Ramp { from, to } => vec![*from, *to],
            SeverityProfile::Steps(v) if v.is_empty() => {
                return Err(DatasetError::Spec(
                    "severity steps must not be empty".into(),
                ));
            }
            SeverityProfile::Steps(v) => v.clone(),
        };
        match all.iter().find(|s| **s > MAX_SEVERITY) {
            Some(s) => Err(DatasetError::Spec(format!(
                "severity {s} is outside 0..={MAX_SEVERITY}"
            ))),
            None => Ok(()),
        }
    }
}

/// A corruption applied over a segment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CorruptionSchedule {
    /// The family.
    pub kind: CorruptionKind,
    /// Its severity over the segment.
    pub severity: SeverityProfile,
}

/// One stretch of a synthetic stream with uniform settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    /// Length, seconds.
    pub duration_s: f64,
    /// Frames per second.
    pub fps: f64,
    /// Which classes appear.
    pub class_mix: ClassMix,
    /// Consecutive frames showing the same object (1 = a new object every frame).
    pub scene_length: u32,
    /// Largest camera shift per frame, pixels (0 = none).
    pub jitter_px: u8,
    /// Largest relative brightness flicker per frame (0.03 = ±3 %).
    pub flicker: f32,
    /// The corruption over this segment (`None` = clean).
    pub corruption: Option<CorruptionSchedule>,
}

impl Segment {
    /// A clean segment with uniform classes, 10-frame scenes, ±1 px jitter, ±3 % flicker.
    pub fn clean(duration_s: f64, fps: f64) -> Self {
        Segment {
            duration_s,
            fps,
            class_mix: ClassMix::Uniform,
            scene_length: 10,
            jitter_px: 1,
            flicker: 0.03,
            corruption: None,
        }
    }

    /// Number of frames in this segment.
    pub fn frames(&self) -> usize {
        (self.duration_s * self.fps).round() as usize
    }
}

/// The spec of a synthetic stream: segments played one after the other.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StreamSpec {
    /// The segments, in order.
    pub segments: Vec<Segment>,
}

/// The planned content of one frame.
#[derive(Clone, Copy, Debug)]
struct Planned {
    image: u32,
    timestamp_s: f64,
    condition: Condition,
    jitter_px: u8,
    flicker: f32,
}

/// How many scenes share one shuffled deck of classes: within each deck the class counts
/// follow the mix to the nearest scene, so long streams honour the mix tightly.
const DECK: usize = 100;

/// A seeded synthetic stream over a labelled image set.
#[derive(Clone, Debug)]
pub struct SyntheticStream {
    set: Arc<ImageSet>,
    plan: Vec<Planned>,
    seed: u64,
}

impl SyntheticStream {
    /// Plans the stream. Fails when the spec is unusable for this set (a class with weight
    /// but no image, a bad severity, an empty segment).
    pub fn new(set: Arc<ImageSet>, spec: &StreamSpec, seed: u64) -> Result<Self> {
        if spec.segments.is_empty() {
            return Err(DatasetError::Spec(
                "a stream needs at least one segment".into(),
            ));
        }
        let by_class = set.indices_by_class();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut plan = Vec::new();
        let mut t0 = 0.0;
        for (si, seg) in spec.segments.iter().enumerate() {
            if !(seg.fps > 0.0
                && seg.fps.is_finite()
                && seg.duration_s > 0.0
                && seg.duration_s.is_finite())
            {
                return Err(DatasetError::Spec(format!(
                    "segment {si}: fps and duration must be positive"
                )));
            }
            if seg.scene_length == 0 {
                return Err(DatasetError::Spec(format!(
                    "segment {si}: scene-length must be at least 1"
                )));
            }
            if let Some(c) = &seg.corruption {
                c.severity
                    .check()
                    .map_err(|e| DatasetError::Spec(format!("segment {si}: {e}")))?;
            }
            let shares = seg
                .class_mix
                .shares(set.num_classes())
                .map_err(|e| DatasetError::Spec(format!("segment {si}: {e}")))?;
            if let Some(c) = shares
                .iter()
                .enumerate()
                .find(|(c, s)| **s > 0.0 && by_class[*c].is_empty())
                .map(|(c, _)| c)
            {
                return Err(DatasetError::Spec(format!(
                    "segment {si}: class {c} has weight but no image in the data set"
                )));
            }
            let n = seg.frames();
            let scenes = n.div_ceil(seg.scene_length as usize);
            let mut deck: Vec<usize> = Vec::new();
            let mut current = 0u32;
            for f in 0..n {
                let scene = f / seg.scene_length as usize;
                if f % seg.scene_length as usize == 0 {
                    if deck.is_empty() {
                        deck = deal(&shares, DECK.min(scenes - scene).max(1), &mut rng);
                    }
                    let class = deck.pop().expect("a dealt deck is never empty");
                    let pool = &by_class[class];
                    current = pool[rng.random_range(0..pool.len())] as u32;
                }
                let t = f as f64 / n as f64;
                let condition = match &seg.corruption {
                    Some(c) => Condition {
                        segment: si as u32,
                        corruption: Some(c.kind),
                        severity: c.severity.at(t),
                    },
                    None => Condition {
                        segment: si as u32,
                        corruption: None,
                        severity: 0,
                    },
                };
                plan.push(Planned {
                    image: current,
                    timestamp_s: t0 + f as f64 / seg.fps,
                    condition,
                    jitter_px: seg.jitter_px,
                    flicker: seg.flicker,
                });
            }
            t0 += n as f64 / seg.fps;
        }
        Ok(SyntheticStream { set, plan, seed })
    }

    /// The image set frames are drawn from.
    pub fn set(&self) -> &ImageSet {
        &self.set
    }

    /// Duration of the whole stream, seconds.
    pub fn duration_s(&self) -> f64 {
        self.plan.last().map_or(0.0, |p| p.timestamp_s)
    }

    /// Which image of the set frame `index` shows: the frames of one scene share it.
    pub fn object(&self, index: usize) -> u64 {
        self.plan[index].image as u64
    }

    /// The label and condition of frame `index` without rendering it (cheap).
    pub fn meta(&self, index: usize) -> (u16, Condition, f64) {
        let p = &self.plan[index];
        (
            self.set.labels[p.image as usize],
            p.condition,
            p.timestamp_s,
        )
    }
}

/// Deals `n` class draws whose counts follow `shares` by largest remainder, shuffled.
fn deal(shares: &[f64], n: usize, rng: &mut ChaCha8Rng) -> Vec<usize> {
    let exact: Vec<f64> = shares.iter().map(|s| s * n as f64).collect();
    let mut counts: Vec<usize> = exact.iter().map(|e| e.floor() as usize).collect();
    let mut rest: Vec<usize> = (0..shares.len()).collect();
    rest.sort_by(|&a, &b| {
        (exact[b] - exact[b].floor())
            .total_cmp(&(exact[a] - exact[a].floor()))
            .then(a.cmp(&b))
    });
    let short = n - counts.iter().sum::<usize>();
    for &c in rest.iter().take(short) {
        counts[c] += 1;
    }
    let mut deck: Vec<usize> = counts
        .iter()
        .enumerate()
        .flat_map(|(c, &k)| std::iter::repeat_n(c, k))
        .collect();
    deck.shuffle(rng);
    deck
}

/// Shifts an image by (dx, dy) pixels, repeating the edge pixels into the gap.
pub fn shift(img: &Image, dx: i32, dy: i32) -> Image {
    let (w, h) = (img.width as i32, img.height as i32);
    let mut out = img.clone();
    let n = img.plane_len();
    for c in 0..img.channels as usize {
        for y in 0..h {
            let sy = (y - dy).clamp(0, h - 1);
            for x in 0..w {
                let sx = (x - dx).clamp(0, w - 1);
                out.data[c * n + (y * w + x) as usize] = img.data[c * n + (sy * w + sx) as usize];
            }
        }
    }
    out
}

/// What the camera adds to one frame of a scene: a shift of up to `jitter_px` pixels each way
/// and a brightness gain within ±`flicker`, drawn from `rng` (in that order; none drawn where
/// a setting is 0). Calibration renders a second view of its images with it, so that the
/// per-frame tables also say how a reading of one frame carries to the scene's other frames.
pub fn camera(img: &Image, jitter_px: u8, flicker: f32, rng: &mut ChaCha8Rng) -> Image {
    let mut image = if jitter_px > 0 {
        let j = jitter_px as i32;
        shift(img, rng.random_range(-j..=j), rng.random_range(-j..=j))
    } else {
        img.clone()
    };
    if flicker > 0.0 {
        let gain = 1.0 + flicker * rng.random_range(-1.0f32..=1.0);
        image
            .data
            .iter_mut()
            .for_each(|v| *v = (*v as f32 * gain).round().clamp(0.0, 255.0) as u8);
    }
    image
}

impl FrameSource for SyntheticStream {
    fn len(&self) -> usize {
        self.plan.len()
    }

    fn frame(&self, index: usize) -> Result<Frame> {
        let p = *self.plan.get(index).ok_or_else(|| {
            DatasetError::Spec(format!(
                "frame {index} is past the end ({} frames)",
                self.plan.len()
            ))
        })?;
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(index as u64 + 1);
        let mut image = camera(
            &self.set.image(p.image as usize),
            p.jitter_px,
            p.flicker,
            &mut rng,
        );
        if let Some(kind) = p.condition.corruption {
            image = kind.apply_with(&image, p.condition.severity, &mut rng);
        }
        Ok(Frame {
            index: index as u64,
            timestamp_s: p.timestamp_s,
            image,
            label: self.set.labels[p.image as usize],
            condition: p.condition,
        })
    }
}

/// Real frames: a directory of PNG (or JPEG) files plus `labels.csv` with a header line
/// `frame,label` and one row per frame (file name relative to the directory, class index),
/// in playing order.
#[derive(Clone, Debug)]
pub struct FrameDir {
    dir: PathBuf,
    rows: Vec<(PathBuf, u16)>,
    fps: f64,
    channels: u8,
}

impl FrameDir {
    /// Reads `labels.csv` and checks every listed frame exists; frames play at `fps` and are
    /// decoded as grey (`channels = 1`) or RGB (3).
    pub fn open(dir: &Path, fps: f64, channels: u8) -> Result<Self> {
        let csv = dir.join("labels.csv");
        let text = std::fs::read_to_string(&csv).map_err(|e| DatasetError::io(&csv, e))?;
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .trim(csv::Trim::All)
            .from_reader(text.as_bytes());
        let bad =
            |line: u64, what: String| DatasetError::invalid(&csv, format!("line {line}: {what}"));
        let mut records = reader
            .records()
            .filter(|r| !r.as_ref().is_ok_and(|r| r.iter().all(str::is_empty)));
        let line = |r: &csv::StringRecord| r.position().map_or(0, csv::Position::line);
        match records.next() {
            Some(Ok(h)) if h.iter().eq(["frame", "label"]) => {}
            Some(Ok(h)) => {
                let header = h.iter().collect::<Vec<_>>().join(",");
                return Err(bad(
                    line(&h),
                    format!("header is `{header}`, expected `frame,label`"),
                ));
            }
            Some(Err(e)) => return Err(DatasetError::invalid(&csv, e.to_string())),
            None => {
                return Err(DatasetError::invalid(
                    &csv,
                    "empty file, expected a `frame,label` header and one row per frame",
                ));
            }
        }
        let mut rows = Vec::new();
        for r in records {
            let r = r.map_err(|e| DatasetError::invalid(&csv, e.to_string()))?;
            let i = line(&r);
            let [name, label] = [0, 1].map(|k| r.get(k));
            let (Some(name), Some(label), 2) = (name, label, r.len()) else {
                let found = r.iter().collect::<Vec<_>>().join(",");
                return Err(bad(i, format!("expected `frame,label`, found `{found}`")));
            };
            let label: u16 = label
                .parse()
                .map_err(|_| bad(i, format!("label `{label}` is not a class index")))?;
            let path = dir.join(name);
            if !path.is_file() {
                return Err(bad(
                    i,
                    format!("frame file {} does not exist", path.display()),
                ));
            }
            rows.push((path, label));
        }
        if rows.is_empty() {
            return Err(DatasetError::invalid(&csv, "lists no frame"));
        }
        if !(fps > 0.0 && fps.is_finite()) {
            return Err(DatasetError::Spec(format!(
                "fps must be positive, not {fps}"
            )));
        }
        Ok(FrameDir {
            dir: dir.to_path_buf(),
            rows,
            fps,
            channels,
        })
    }

    /// The directory read.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl FrameSource for FrameDir {
    fn len(&self) -> usize {
        self.rows.len()
    }

    fn frame(&self, index: usize) -> Result<Frame> {
        let (path, label) = self.rows.get(index).ok_or_else(|| {
            DatasetError::Spec(format!(
                "frame {index} is past the end ({} frames)",
                self.rows.len()
            ))
        })?;
        Ok(Frame {
            index: index as u64,
            timestamp_s: index as f64 / self.fps,
            image: read_image(path, self.channels)?,
            label: *label,
            condition: Condition::CLEAN,
        })
    }
}
