//! Training the super-network once, with the sandwich rule and in-place distillation
//! (BigNAS / "Universally Slimmable Networks"): every step trains the largest sub-network on
//! the labels, then the smallest and `random_subnets` random ones on the largest's soft
//! predictions, and applies one update for the sum of the losses.

use crate::arch::{SubnetArch, SupernetConfig};
use crate::checkpoint::{self, CheckpointError};
use crate::model::{BnMode, BnStats, SupernetWeights, batch_tensor};
use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::{Bytes, Device, Tensor, TensorData};
use opa_datasets::ImageSet;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Training settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Passes over the training images.
    pub epochs: usize,
    /// Images per step.
    pub batch_size: usize,
    /// Peak learning rate (AdamW), reached after `warmup_steps`, then cosine decay to 0.
    pub lr: f64,
    /// Linear warm-up steps.
    pub warmup_steps: usize,
    /// AdamW decoupled weight decay.
    pub weight_decay: f32,
    /// Random sub-networks per step besides the largest and smallest.
    pub random_subnets: usize,
    /// Label smoothing of the label loss.
    pub label_smoothing: f32,
    /// Weight of distillation in the other sub-networks' loss (the rest is the label loss):
    /// 1 = pure in-place distillation; lower values learn faster early, while the largest
    /// sub-network's predictions are still poor.
    pub distill_weight: f32,
    /// Random crop (±2 px) and horizontal flip.
    pub augment: bool,
    /// Share of training images (after crop and flip) given one corruption: a family drawn
    /// uniformly from the 12, a severity uniformly from 1..=`corrupt_max_severity`. Without it
    /// photometric corruptions (brightness, contrast, fog) leave every sub-network near chance.
    #[serde(default)]
    pub corrupt_prob: f32,
    /// When set, the corruption share moves linearly from `corrupt_prob` at the first step to
    /// this value at the last: robustness is learned early at a high learning rate, and the
    /// last, low-rate steps see mostly clean images (clean accuracy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corrupt_prob_final: Option<f32>,
    /// Highest severity drawn for corruption augmentation.
    #[serde(default = "default_corrupt_max_severity")]
    pub corrupt_max_severity: u8,
    /// Train on only the first N (shuffled) images (`--quick`); `None` = all.
    pub max_images: Option<usize>,
    /// Seed for initialisation, shuffling, augmentation and sub-network sampling.
    pub seed: u64,
    /// Start from this checkpoint's weights and shared BN statistics instead of random
    /// initialisation (fine-tuning with a fresh schedule and optimizer).
    #[serde(default)]
    pub init_from: Option<PathBuf>,
}

fn default_corrupt_max_severity() -> u8 {
    4
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 6,
            batch_size: 128,
            lr: 4e-3,
            warmup_steps: 200,
            weight_decay: 1e-4,
            random_subnets: 2,
            label_smoothing: 0.1,
            distill_weight: 0.5,
            augment: true,
            corrupt_prob: 0.5,
            corrupt_prob_final: None,
            corrupt_max_severity: 4,
            max_images: None,
            seed: 1,
            init_from: None,
        }
    }
}

impl TrainConfig {
    /// Corruption share at step `step` (1-based) of `total`: `corrupt_prob`, or the linear
    /// schedule to `corrupt_prob_final`.
    pub fn corrupt_prob_at(&self, step: usize, total: usize) -> f32 {
        match self.corrupt_prob_final {
            None => self.corrupt_prob,
            Some(end) => {
                let t = if total > 1 {
                    (step.saturating_sub(1) as f32 / (total - 1) as f32).min(1.0)
                } else {
                    1.0
                };
                self.corrupt_prob + (end - self.corrupt_prob) * t
            }
        }
    }

    /// A few hundred images and two epochs: seconds, for tests and smoke runs.
    pub fn quick() -> Self {
        TrainConfig {
            epochs: 2,
            batch_size: 32,
            lr: 3e-3,
            warmup_steps: 5,
            max_images: Some(320),
            ..Self::default()
        }
    }
}

/// What training reports as it goes.
#[derive(Clone, Debug, Serialize)]
pub struct TrainEvent {
    /// Epoch being trained, from 1.
    pub epoch: usize,
    /// Total epochs.
    pub epochs: usize,
    /// Step within the epoch, from 1.
    pub step: usize,
    /// Steps per epoch.
    pub steps_per_epoch: usize,
    /// Mean loss of the largest sub-network over the epoch so far.
    pub loss_largest: f64,
    /// Mean distillation loss of the other sub-networks over the epoch so far.
    pub loss_students: f64,
    /// Training images per second over the epoch so far.
    pub images_per_s: f64,
    /// Learning rate of the last step.
    pub lr: f64,
    /// Seconds since training (this invocation) started.
    pub elapsed_s: f64,
    /// True on the last step of an epoch (a checkpoint was just written).
    pub epoch_done: bool,
}

/// Why training stopped early.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// Writing the run directory failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A checkpoint could not be written or read.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The settings are unusable.
    #[error("{0}")]
    Invalid(String),
}

/// The run directory's `config.json`: written first, read back by `--resume`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunConfig {
    /// The super-network.
    pub supernet: SupernetConfig,
    /// The training settings.
    pub train: TrainConfig,
    /// Where the training images came from.
    pub data: String,
}

/// Name of epoch `e`'s checkpoint in a run directory.
pub fn epoch_checkpoint(dir: &Path, epoch: usize) -> PathBuf {
    dir.join(format!("checkpoint-epoch-{epoch:03}.opack"))
}

/// The last epoch checkpoint in `dir`, if any.
pub fn latest_checkpoint(dir: &Path) -> Option<(usize, PathBuf)> {
    let mut best = None;
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(n) = name
            .strip_prefix("checkpoint-epoch-")
            .and_then(|r| r.strip_suffix(".opack"))
            .and_then(|n| n.parse::<usize>().ok())
            && best.as_ref().is_none_or(|(b, _)| n > *b)
        {
            best = Some((n, e.path()));
        }
    }
    best
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TrainError + '_ {
    move |e| TrainError::Io {
        path: path.into(),
        source: e,
    }
}

/// Random ±2 px crop (zero padding) and horizontal flip of a planar image, in place.
fn augment(img: &mut [u8], channels: usize, size: usize, rng: &mut ChaCha8Rng) {
    let (dx, dy) = (rng.random_range(-2i32..=2), rng.random_range(-2i32..=2));
    let flip = rng.random::<bool>();
    let src = img.to_vec();
    let plane = size * size;
    for c in 0..channels {
        for y in 0..size as i32 {
            for x in 0..size as i32 {
                let sx = if flip { size as i32 - 1 - x } else { x } + dx;
                let sy = y + dy;
                let v = if sx >= 0 && sy >= 0 && (sx as usize) < size && (sy as usize) < size {
                    src[c * plane + sy as usize * size + sx as usize]
                } else {
                    0
                };
                img[c * plane + y as usize * size + x as usize] = v;
            }
        }
    }
}

/// With probability `prob`, one random corruption of a planar image, in place.
fn corrupt(
    img: &mut Vec<u8>,
    net: &SupernetConfig,
    tcfg: &TrainConfig,
    prob: f32,
    rng: &mut ChaCha8Rng,
) {
    use opa_datasets::corrupt::CorruptionKind;
    if rng.random::<f32>() >= prob {
        return;
    }
    let kind = CorruptionKind::ALL[rng.random_range(0..CorruptionKind::ALL.len())];
    let severity = rng.random_range(1..=tcfg.corrupt_max_severity);
    let side = net.input_size as u32;
    let src = opa_datasets::Image {
        width: side,
        height: side,
        channels: net.in_channels as u8,
        data: std::mem::take(img),
    };
    *img = kind.apply_with(&src, severity, rng).data;
}

/// Trains (or resumes training of) a super-network on `data`, writing the run directory
/// `out`: `config.json` first, then `train-log.jsonl` (one line per epoch) and one
/// checkpoint per epoch; `supernet.opack` (weights and shared BN statistics, no optimizer
/// state) at the end. Returns the final weights and shared statistics.
#[allow(clippy::too_many_arguments)] // the run's inputs; grouping them would hide which is which
pub fn train(
    supernet: &SupernetConfig,
    tcfg: &TrainConfig,
    data: &ImageSet,
    data_name: &str,
    out: &Path,
    resume: bool,
    device: &Device,
    on_event: &mut dyn FnMut(&TrainEvent),
) -> Result<(SupernetWeights, BnStats), TrainError> {
    supernet
        .validate()
        .map_err(|e| TrainError::Invalid(e.join("; ")))?;
    if data.channels as usize != supernet.in_channels
        || data.width as usize != supernet.input_size
        || data.height as usize != supernet.input_size
    {
        return Err(TrainError::Invalid(format!(
            "training images are {}x{}x{}, the super-network expects {}x{}x{}",
            data.channels,
            data.height,
            data.width,
            supernet.in_channels,
            supernet.input_size,
            supernet.input_size
        )));
    }
    if tcfg.batch_size == 0 || tcfg.epochs == 0 {
        return Err(TrainError::Invalid(
            "batch size and epochs must be positive".into(),
        ));
    }
    if !(0.0..=1.0).contains(&tcfg.corrupt_prob)
        || tcfg
            .corrupt_prob_final
            .is_some_and(|p| !(0.0..=1.0).contains(&p))
        || !(1..=opa_datasets::corrupt::MAX_SEVERITY).contains(&tcfg.corrupt_max_severity)
    {
        return Err(TrainError::Invalid(format!(
            "corrupt_prob must be within 0..=1 and corrupt_max_severity within 1..={}",
            opa_datasets::corrupt::MAX_SEVERITY
        )));
    }
    std::fs::create_dir_all(out).map_err(io(out))?;
    let ad = device.clone().autodiff();
    ad.seed(tcfg.seed);
    let mut weights = SupernetWeights::init(supernet, &ad);
    let mut optim = AdamWConfig::new()
        .with_weight_decay(tcfg.weight_decay)
        .init();
    let mut shared = BnStats::default();
    let mut start_epoch = 1;
    let mut step_global = 0;
    let config_path = out.join("config.json");
    if resume {
        let (epoch, path) = latest_checkpoint(out).ok_or_else(|| {
            TrainError::Invalid(format!(
                "--resume: {} holds no checkpoint-epoch-*.opack",
                out.display()
            ))
        })?;
        let ck = checkpoint::load(&path, &ad)?;
        if ck.header.config != *supernet {
            return Err(TrainError::Invalid(format!(
                "--resume: {} was trained with another super-network configuration",
                path.display()
            )));
        }
        weights = ck.weights;
        if let Some(bytes) = ck.optimizer {
            optim = optim
                .from_bytes(Bytes::from_bytes_vec(bytes))
                .map_err(|e| {
                    TrainError::Invalid(format!(
                        "{}: unreadable optimizer state: {e:?}",
                        path.display()
                    ))
                })?;
        }
        shared = ck.header.shared_bn;
        start_epoch = epoch + 1;
        step_global = ck.header.step;
    } else {
        if let Some(init) = &tcfg.init_from {
            let ck = checkpoint::load(init, &ad)?;
            if ck.header.config != *supernet {
                return Err(TrainError::Invalid(format!(
                    "--init-from: {} holds another super-network configuration",
                    init.display()
                )));
            }
            weights = ck.weights;
            shared = ck.header.shared_bn;
        }
        let run = RunConfig {
            supernet: supernet.clone(),
            train: tcfg.clone(),
            data: data_name.to_string(),
        };
        let json =
            serde_json::to_vec_pretty(&run).map_err(|e| TrainError::Invalid(e.to_string()))?;
        checkpoint::write_atomic(&config_path, &json).map_err(io(&config_path))?;
        let _ = std::fs::remove_file(out.join("train-log.jsonl"));
    }

    let mut order_rng = ChaCha8Rng::seed_from_u64(tcfg.seed ^ 0x5eed);
    let mut all: Vec<usize> = (0..data.len()).collect();
    all.shuffle(&mut order_rng);
    let used = tcfg.max_images.unwrap_or(data.len()).min(data.len());
    let steps_per_epoch = used.div_ceil(tcfg.batch_size);
    let total_steps = steps_per_epoch * tcfg.epochs;
    let largest = SubnetArch::largest(supernet);
    let smallest = SubnetArch::smallest(supernet);
    let started = Instant::now();
    let log_path = out.join("train-log.jsonl");
    let img_len = data.image_len();

    for epoch in start_epoch..=tcfg.epochs {
        let mut rng = ChaCha8Rng::seed_from_u64(tcfg.seed.wrapping_add(epoch as u64 * 1_000_003));
        let mut order = all[..used].to_vec();
        order.shuffle(&mut rng);
        let (mut sum_l, mut sum_s, mut seen) = (0.0, 0.0, 0usize);
        let epoch_start = Instant::now();
        for (i, chunk) in order.chunks(tcfg.batch_size).enumerate() {
            step_global += 1;
            let lr = if step_global <= tcfg.warmup_steps {
                tcfg.lr * step_global as f64 / tcfg.warmup_steps.max(1) as f64
            } else {
                let t = (step_global - tcfg.warmup_steps) as f64
                    / (total_steps - tcfg.warmup_steps.min(total_steps - 1)) as f64;
                0.5 * tcfg.lr * (1.0 + (std::f64::consts::PI * t.min(1.0)).cos())
            };
            let mut bufs: Vec<Vec<u8>> = chunk
                .iter()
                .map(|&j| data.image_bytes(j).to_vec())
                .collect();
            if tcfg.augment {
                for b in &mut bufs {
                    augment(b, supernet.in_channels, supernet.input_size, &mut rng);
                }
            }
            let prob = tcfg.corrupt_prob_at(step_global, total_steps);
            if prob > 0.0 {
                for b in &mut bufs {
                    corrupt(b, supernet, tcfg, prob, &mut rng);
                }
            }
            let refs: Vec<&[u8]> = bufs.iter().map(|b| &b[..img_len]).collect();
            let x = batch_tensor(supernet, &refs, &ad);
            let n = chunk.len();
            let k = supernet.classes;
            let eps = tcfg.label_smoothing;
            let mut target = vec![eps / k as f32; n * k];
            for (r, &j) in chunk.iter().enumerate() {
                target[r * k + data.labels[j] as usize] += 1.0 - eps;
            }
            let target: Tensor<2> = Tensor::from_data(TensorData::new(target, [n, k]), &ad);

            let mut rec = Vec::new();
            let logits = weights.plan(supernet, &largest).forward(
                x.clone(),
                &mut BnMode::Batch {
                    record: Some(&mut rec),
                },
            );
            let teacher = softmax(logits.clone().detach(), 1);
            let loss_l = (log_softmax(logits, 1) * target.clone())
                .sum_dim(1)
                .mean()
                .neg();
            let a = tcfg.distill_weight as f64;
            let student_target = teacher.mul_scalar(a) + target.mul_scalar(1.0 - a);
            let mut students: Vec<SubnetArch> = vec![smallest.clone()];
            students
                .extend((0..tcfg.random_subnets).map(|_| SubnetArch::sample(supernet, &mut rng)));
            let mut loss = loss_l.clone();
            let mut loss_s_total = 0.0;
            for arch in &students {
                let out = weights
                    .plan(supernet, arch)
                    .forward(x.clone(), &mut BnMode::Batch { record: None });
                let ls = (log_softmax(out, 1) * student_target.clone())
                    .sum_dim(1)
                    .mean()
                    .neg();
                loss = loss + ls.clone();
                loss_s_total += ls.into_scalar::<f64>();
            }
            sum_l += loss_l.into_scalar::<f64>() * n as f64;
            sum_s += loss_s_total / students.len() as f64 * n as f64;
            seen += n;
            let grads = GradientsParams::from_grads(loss.backward(), &weights);
            weights = optim.step(lr, weights, grads);
            update_shared(&mut shared, &rec, 0.1);

            let done = i + 1 == steps_per_epoch;
            let ev = TrainEvent {
                epoch,
                epochs: tcfg.epochs,
                step: i + 1,
                steps_per_epoch,
                loss_largest: sum_l / seen as f64,
                loss_students: sum_s / seen as f64,
                images_per_s: seen as f64 / epoch_start.elapsed().as_secs_f64().max(1e-9),
                lr,
                elapsed_s: started.elapsed().as_secs_f64(),
                epoch_done: done,
            };
            if done {
                let opt_bytes = optim.into_bytes().map_err(|e| {
                    TrainError::Invalid(format!("cannot serialise optimizer state: {e:?}"))
                })?;
                checkpoint::save(
                    &epoch_checkpoint(out, epoch),
                    supernet,
                    &weights,
                    &shared,
                    (epoch, step_global),
                    Some(&opt_bytes),
                )?;
                let mut line =
                    serde_json::to_string(&ev).map_err(|e| TrainError::Invalid(e.to_string()))?;
                line.push('\n');
                use std::io::Write;
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&log_path)
                    .and_then(|mut f| f.write_all(line.as_bytes()))
                    .map_err(io(&log_path))?;
            }
            on_event(&ev);
        }
    }
    let inference = weights.valid();
    checkpoint::save(
        &out.join("supernet.opack"),
        supernet,
        &inference,
        &shared,
        (tcfg.epochs, step_global),
        None,
    )?;
    Ok((inference, shared))
}

/// Exponential moving average of the recorded batch statistics into `shared`.
fn update_shared(shared: &mut BnStats, rec: &[(usize, Tensor<1>, Tensor<1>)], momentum: f32) {
    for (id, m, v) in rec {
        let m: Vec<f32> = m.to_data().try_to_vec::<f32>().unwrap_or_default();
        let v: Vec<f32> = v.to_data().try_to_vec::<f32>().unwrap_or_default();
        let e = shared
            .layers
            .entry(*id)
            .or_insert_with(|| (vec![0.0; m.len()], vec![1.0; m.len()]));
        for i in 0..m.len().min(e.0.len()) {
            e.0[i] = e.0[i] * (1.0 - momentum) + m[i] * momentum;
            e.1[i] = e.1[i] * (1.0 - momentum) + v[i] * momentum;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::TrainConfig;

    #[test]
    fn corruption_share_moves_linearly_from_first_to_last_step() {
        let mut t = TrainConfig {
            corrupt_prob: 0.5,
            ..TrainConfig::default()
        };
        assert_eq!(t.corrupt_prob_at(1, 101), 0.5);
        assert_eq!(t.corrupt_prob_at(101, 101), 0.5);
        t.corrupt_prob_final = Some(0.1);
        assert!((t.corrupt_prob_at(1, 101) - 0.5).abs() < 1e-6);
        assert!((t.corrupt_prob_at(51, 101) - 0.3).abs() < 1e-6);
        assert!((t.corrupt_prob_at(101, 101) - 0.1).abs() < 1e-6);
        assert!((t.corrupt_prob_at(1, 1) - 0.1).abs() < 1e-6);
    }
}
