//! Running sub-networks over image sets: batch-norm recalibration and accuracy.

use crate::arch::{SubnetArch, SupernetConfig};
use crate::model::{BnMode, BnStats, Plan, SupernetWeights, batch_tensor, pool_batch_stats};
use burn::tensor::Device;
use burn::tensor::activation::softmax;
use opa_datasets::ImageSet;
use opa_predictors::stats::percentile_sorted;
use serde::Serialize;

/// Re-estimates batch-norm statistics for `arch` on the first `n` images of `set` (OFA's
/// BN recalibration), in batches of `batch` images. Pick `set` from training data.
pub fn recalibrate(
    weights: &SupernetWeights,
    cfg: &SupernetConfig,
    arch: &SubnetArch,
    set: &ImageSet,
    n: usize,
    batch: usize,
    device: &Device,
) -> BnStats {
    let plan = weights.plan(cfg, arch);
    let n = n.min(set.len());
    let mut batches = Vec::new();
    for start in (0..n).step_by(batch) {
        // Equal-sized batches keep the pooled statistics exact; drop a short tail.
        if start + batch > n && start > 0 {
            break;
        }
        let imgs: Vec<&[u8]> = (start..(start + batch).min(n))
            .map(|i| set.image_bytes(i))
            .collect();
        let x = batch_tensor(cfg, &imgs, device);
        let mut rec = Vec::new();
        let _ = plan.forward(
            x,
            &mut BnMode::Batch {
                record: Some(&mut rec),
            },
        );
        batches.push(rec);
    }
    pool_batch_stats(&batches)
}

/// Per-image outputs of a sub-network on a set.
#[derive(Clone, Debug, Default)]
pub struct Predictions {
    /// Predicted class per image.
    pub predicted: Vec<u16>,
    /// Softmax probabilities per image (`classes` values each, flattened).
    pub probs: Vec<f32>,
    /// Number of classes.
    pub classes: usize,
}

impl Predictions {
    /// Share of images whose prediction equals `labels` (0..=1).
    pub fn top1(&self, labels: &[u16]) -> f64 {
        let hits = self
            .predicted
            .iter()
            .zip(labels)
            .filter(|(p, l)| p == l)
            .count();
        hits as f64 / self.predicted.len().max(1) as f64
    }
}

/// Runs `plan` (with `stats`, or statistics bound into the plan) on images of `set`.
pub fn predict(
    plan: &Plan,
    stats: Option<&BnStats>,
    cfg: &SupernetConfig,
    images: &[&[u8]],
    batch: usize,
    device: &Device,
) -> Predictions {
    let empty = BnStats::default();
    let stats = stats.unwrap_or(&empty);
    let mut out = Predictions {
        classes: cfg.classes,
        ..Default::default()
    };
    for chunk in images.chunks(batch.max(1)) {
        let x = batch_tensor(cfg, chunk, device);
        let logits = plan.forward(x, &mut BnMode::Stored(stats));
        let probs: Vec<f32> = softmax(logits, 1)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap_or_default();
        for row in probs.chunks(cfg.classes) {
            let (best, _) =
                row.iter().enumerate().fold(
                    (0, f32::MIN),
                    |acc, (i, &p)| if p > acc.1 { (i, p) } else { acc },
                );
            out.predicted.push(best as u16);
        }
        out.probs.extend(probs);
    }
    out
}

/// Top-1 accuracy (0..=1) of `arch` with `stats` on the whole of `set`.
pub fn accuracy(
    weights: &SupernetWeights,
    cfg: &SupernetConfig,
    arch: &SubnetArch,
    stats: &BnStats,
    set: &ImageSet,
    device: &Device,
) -> f64 {
    let plan = weights.plan(cfg, arch);
    let imgs: Vec<&[u8]> = (0..set.len()).map(|i| set.image_bytes(i)).collect();
    predict(&plan, Some(stats), cfg, &imgs, 250, device).top1(&set.labels)
}

/// Wall-clock latency of one forward pass (input upload to output download), milliseconds.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Latency {
    /// Mean over the timed runs: under a time-sliced co-runner most runs go unhindered and
    /// some wait a whole slice, so the mean (and the tail) carry the contention.
    pub mean_ms: f64,
    /// Median over the timed runs.
    pub median_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// Timed runs (after warm-up).
    pub runs: usize,
}

/// Times `plan` (statistics bound in) on batches of `batch` copies of `image`: `warmup`
/// untimed runs, then runs until `min_runs` are done and `min_time_s` has passed.
///
/// The thread idles for `gap` before each timed run, as it does between frames in a
/// deployment (and in a live replay); `Duration::ZERO` times runs back to back. Under
/// contention this matters: a thread that wakes up finds the cores taken more often than one
/// that never sleeps.
#[allow(clippy::too_many_arguments)] // each is a measurement knob; a struct would only rename them
pub fn latency(
    plan: &Plan,
    cfg: &SupernetConfig,
    image: &[u8],
    batch: usize,
    device: &Device,
    warmup: usize,
    min_runs: usize,
    min_time_s: f64,
    gap: std::time::Duration,
) -> Latency {
    let refs: Vec<&[u8]> = (0..batch).map(|_| image).collect();
    let empty = BnStats::default();
    let run = || {
        let x = batch_tensor(cfg, &refs, device);
        let _ = plan.forward(x, &mut BnMode::Stored(&empty)).into_data();
    };
    for _ in 0..warmup {
        run();
    }
    let mut times = Vec::new();
    let start = std::time::Instant::now();
    while times.len() < min_runs || start.elapsed().as_secs_f64() < min_time_s {
        if !gap.is_zero() {
            std::thread::sleep(gap);
        }
        let t = std::time::Instant::now();
        run();
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    latency_of(&mut times)
}

/// Mean, median and 95th percentile ([`opa_predictors::stats`]' rule) of timed runs
/// `times` (ms; sorted in place; not empty).
pub fn latency_of(times: &mut [f64]) -> Latency {
    times.sort_by(f64::total_cmp);
    Latency {
        mean_ms: times.iter().sum::<f64>() / times.len() as f64,
        median_ms: percentile_sorted(times, 50.0),
        p95_ms: percentile_sorted(times, 95.0),
        runs: times.len(),
    }
}
