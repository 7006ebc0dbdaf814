//! Deployment candidates: K sub-networks spanning the accuracy / multiply-adds Pareto front,
//! found by an OFA-style evolutionary search scored on the calibration half only.

use crate::arch::{BlockChoice, SubnetArch, SupernetConfig};
use crate::eval::{accuracy, recalibrate};
use crate::model::{BnStats, SupernetWeights};
use burn::tensor::Device;
use opa_datasets::ImageSet;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// One deployment candidate.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Candidate {
    /// Canonical architecture id.
    pub id: String,
    /// Multiply-adds per image.
    pub macs: u64,
    /// Parameters.
    pub params: u64,
    /// Top-1 (0..=1) on the calibration half, clean.
    pub calibration_top1: f64,
    /// Recalibrated batch-norm statistics.
    pub bn: BnStats,
}

/// The candidates file written by `opa candidates`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CandidatesFile {
    /// The super-network configuration the ids refer to.
    pub config: SupernetConfig,
    /// SHA-256 of the checkpoint the candidates were cut from.
    pub checkpoint_sha256: String,
    /// How they were found.
    pub search: SearchConfig,
    /// The candidates, by increasing multiply-adds.
    pub candidates: Vec<Candidate>,
}

/// Search settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SearchConfig {
    /// Candidates to keep.
    pub k: usize,
    /// Random architectures scored first.
    pub initial: usize,
    /// Evolution rounds.
    pub rounds: usize,
    /// Mutated children per round.
    pub children: usize,
    /// Training images used to recalibrate batch norm per architecture.
    pub bn_images: usize,
    /// Calibration-half images each architecture is scored on during the search (the kept
    /// candidates are then re-scored on the whole calibration half).
    pub score_images: usize,
    /// Seed of the search.
    pub seed: u64,
}

impl Default for SearchConfig {
    fn default() -> Self {
        SearchConfig {
            k: 24,
            initial: 80,
            rounds: 3,
            children: 30,
            bn_images: 2000,
            score_images: 2000,
            seed: 1,
        }
    }
}

/// Progress of the search, for a progress bar.
#[derive(Clone, Debug)]
pub struct SearchEvent {
    /// Architectures scored so far.
    pub scored: usize,
    /// Architectures to score in all.
    pub total: usize,
    /// Size of the current Pareto front.
    pub front: usize,
}

fn mutate(cfg: &SupernetConfig, arch: &SubnetArch, rng: &mut ChaCha8Rng) -> SubnetArch {
    let mut a = arch.clone();
    let p = 0.25;
    let pick = |rng: &mut ChaCha8Rng, v: &[usize]| v[rng.random_range(0..v.len())];
    if rng.random::<f64>() < p {
        a.resolution = pick(rng, &cfg.resolution_choices);
    }
    for stage in &mut a.stages {
        if rng.random::<f64>() < p {
            let d = pick(rng, &cfg.depth_choices);
            while stage.len() < d {
                stage.push(BlockChoice {
                    kernel: pick(rng, &cfg.kernel_choices),
                    expand: pick(rng, &cfg.expand_choices),
                });
            }
            stage.truncate(d);
        }
        for b in stage.iter_mut() {
            if rng.random::<f64>() < p {
                b.kernel = pick(rng, &cfg.kernel_choices);
            }
            if rng.random::<f64>() < p {
                b.expand = pick(rng, &cfg.expand_choices);
            }
        }
    }
    a
}

/// Indices of the points not dominated in (lower macs, higher accuracy).
pub fn pareto_front(points: &[(u64, f64)]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..points.len()).collect();
    idx.sort_by(|&a, &b| {
        points[a]
            .0
            .cmp(&points[b].0)
            .then(points[b].1.total_cmp(&points[a].1))
    });
    let mut best = f64::NEG_INFINITY;
    let mut front = Vec::new();
    for i in idx {
        if points[i].1 > best {
            best = points[i].1;
            front.push(i);
        }
    }
    front
}

/// Chooses `k` of `sorted` (indices into `points`, by increasing macs) spread evenly in
/// log multiply-adds, always keeping the first and last.
pub fn spread(points: &[(u64, f64)], sorted: &[usize], k: usize) -> Vec<usize> {
    if sorted.len() <= k {
        return sorted.to_vec();
    }
    let lo = (points[sorted[0]].0 as f64).ln();
    let hi = (points[*sorted.last().expect("non-empty")].0 as f64).ln();
    let mut chosen: Vec<usize> = Vec::new();
    for j in 0..k {
        let target = lo + (hi - lo) * j as f64 / (k - 1) as f64;
        let best = sorted
            .iter()
            .filter(|i| !chosen.contains(i))
            .min_by(|&&a, &&b| {
                ((points[a].0 as f64).ln() - target)
                    .abs()
                    .total_cmp(&((points[b].0 as f64).ln() - target).abs())
            })
            .copied();
        chosen.extend(best);
    }
    chosen.sort_by_key(|&i| points[i].0);
    chosen
}

/// Runs the search. `train` recalibrates batch norm; `calibration` (the calibration half,
/// never the evaluation half) scores accuracy.
pub fn search(
    weights: &SupernetWeights,
    cfg: &SupernetConfig,
    train: &ImageSet,
    calibration: &ImageSet,
    sc: &SearchConfig,
    device: &Device,
    on_event: &mut dyn FnMut(&SearchEvent),
) -> Vec<Candidate> {
    let mut rng = ChaCha8Rng::seed_from_u64(sc.seed);
    let score_idx: Vec<usize> = (0..calibration.len())
        .step_by((calibration.len() / sc.score_images.max(1)).max(1))
        .take(sc.score_images)
        .collect();
    let score_set = calibration.subset(&score_idx);
    let total = sc.initial + 2 + sc.rounds * sc.children;
    let mut archs: Vec<SubnetArch> = Vec::new();
    let mut points: Vec<(u64, f64)> = Vec::new();
    let mut stats: Vec<BnStats> = Vec::new();
    let score = |arch: SubnetArch,
                 archs: &mut Vec<SubnetArch>,
                 points: &mut Vec<(u64, f64)>,
                 stats: &mut Vec<BnStats>| {
        if archs.contains(&arch) {
            return;
        }
        let bn = recalibrate(weights, cfg, &arch, train, sc.bn_images, 200, device);
        let acc = accuracy(weights, cfg, &arch, &bn, &score_set, device);
        points.push((arch.macs(cfg), acc));
        archs.push(arch);
        stats.push(bn);
    };
    let mut initial = vec![SubnetArch::largest(cfg), SubnetArch::smallest(cfg)];
    initial.extend((0..sc.initial).map(|_| SubnetArch::sample(cfg, &mut rng)));
    for a in initial {
        score(a, &mut archs, &mut points, &mut stats);
        on_event(&SearchEvent {
            scored: archs.len(),
            total,
            front: pareto_front(&points).len(),
        });
    }
    for _ in 0..sc.rounds {
        let front = pareto_front(&points);
        for _ in 0..sc.children {
            let parent = &archs[front[rng.random_range(0..front.len())]];
            let child = mutate(cfg, parent, &mut rng);
            score(child, &mut archs, &mut points, &mut stats);
            on_event(&SearchEvent {
                scored: archs.len(),
                total,
                front: pareto_front(&points).len(),
            });
        }
    }
    // Keep the front; if it is short of k, add the best of the rest (second front, …).
    let mut pool = pareto_front(&points);
    let mut rest: Vec<usize> = (0..points.len()).filter(|i| !pool.contains(i)).collect();
    while pool.len() < sc.k && !rest.is_empty() {
        let sub: Vec<(u64, f64)> = rest.iter().map(|&i| points[i]).collect();
        let next: Vec<usize> = pareto_front(&sub).into_iter().map(|j| rest[j]).collect();
        pool.extend(next.iter().copied());
        rest.retain(|i| !next.contains(i));
    }
    pool.sort_by_key(|&i| points[i].0);
    let chosen = spread(&points, &pool, sc.k);
    chosen
        .into_iter()
        .map(|i| {
            let arch = &archs[i];
            Candidate {
                id: arch.id(),
                macs: arch.macs(cfg),
                params: arch.params(cfg),
                calibration_top1: accuracy(weights, cfg, arch, &stats[i], calibration, device),
                bn: stats[i].clone(),
            }
        })
        .collect()
}
