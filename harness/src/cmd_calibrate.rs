//! `opa calibrate`: measure every candidate on the calibration half under a grid of content
//! and load conditions, into `profile.parquet`; `opa predictors eval`: how well each
//! predictor variant predicts conditions it never saw.

use crate::bad;
use anyhow::Result;
use clap::{Args, Subcommand};
use opa_datasets::shipped::{self, Split};
use opa_datasets::stream::{Segment, camera};
use opa_datasets::{CorruptionKind, ImageSet};
use opa_harness::backend::Backend;
use opa_harness::deployment;
use opa_harness::live::signals;
use opa_harness::load::CoRunner;
use opa_predictors::predict::{Variant, VariantScore, evaluate_with};
use opa_predictors::profile::{ContentStats, LatencyStats, PROBE_BINS, Profile, probe_bin};
use opa_supernet::eval::{latency, predict};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use std::path::PathBuf;

#[derive(Args)]
pub struct CalibrateArgs {
    /// Where to write the profile (parquet).
    #[arg(long, default_value = "runs/calibrate/profile.parquet")]
    out: PathBuf,
    /// Replace an existing profile at --out.
    #[arg(long)]
    force: bool,
    /// Super-network checkpoint (default: the shipped one).
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// Candidates file (default: the shipped one).
    #[arg(long)]
    candidates: Option<PathBuf>,
    /// Backend to measure latency on (use the one your scenarios use).
    #[arg(long, value_enum, default_value = "flex")]
    backend: Backend,
    /// Inference threads (0 = all cores; use the scenarios' device.threads).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Calibration-half images per content condition (drawn at random, seeded).
    #[arg(long, default_value_t = 1000)]
    images: usize,
    /// Injected loads to measure latency at (comma-separated, each within 0..=1): the share of
    /// the cores a CPU co-runner keeps busy, or on `tch-cuda` the duty cycle of a GPU
    /// co-runner (2048² matrix products on the same GPU), as the scenarios' `cpu-load` and
    /// `gpu-load` inject them.
    #[arg(long, value_delimiter = ',', default_value = "0,0.25,0.5,0.75,1")]
    loads: Vec<f64>,
    /// Seconds of timed batch-1 runs per candidate and load.
    #[arg(long, default_value_t = 1.0)]
    seconds: f64,
    /// Probe sub-network: a candidate id (default: the candidate with the fewest MACs).
    #[arg(long)]
    probe: Option<String>,
    /// Seed of image choice and corruption draws.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Smoke test: 100 images, 3 corruption families at severity 3, loads 0 and 1, short
    /// timings. Finishes in seconds; not for real use.
    #[arg(long)]
    quick: bool,
    /// Re-measure latency only: keep the content tables (accuracy and probe signals) of this
    /// profile, made for the same candidates, and time every candidate again at --loads.
    /// For when the device or its state changed since calibration.
    #[arg(long, value_name = "PROFILE", conflicts_with = "content_only")]
    latency_only: Option<PathBuf>,
    /// Re-measure content only: keep the latency tables (and load levels) of this profile,
    /// made for the same candidates, and measure accuracy and probe signals again. For when
    /// the content grid or what it records changed, but the device did not.
    #[arg(long, value_name = "PROFILE")]
    content_only: Option<PathBuf>,
}

/// The profile at `path`, checked to be made for these candidates and this probe.
fn same_deployment(
    path: &std::path::Path,
    flag: &str,
    dep: &deployment::Deployment,
    probe: usize,
    cands: &std::path::Path,
) -> Result<Profile> {
    let old = opa_reports::profile::read_profile(path).map_err(bad)?;
    let ids: Vec<&str> = old.candidates.iter().map(|c| c.id.as_str()).collect();
    let want: Vec<&str> = dep.infos.iter().map(|c| c.id.as_str()).collect();
    if ids != want || old.probe != probe {
        return Err(bad(format!(
            "{flag} {}: made for other candidates or another probe than {}",
            path.display(),
            cands.display()
        )));
    }
    Ok(old)
}

#[derive(Subcommand)]
pub enum PredictorsCmd {
    /// Cross-validate every predictor variant on a profile, holding out whole conditions.
    Eval(PredictorsEvalArgs),
}

#[derive(Args)]
pub struct PredictorsEvalArgs {
    /// Calibration profile (default: the shipped one).
    #[arg(long)]
    profile: Option<PathBuf>,
    /// Also write the scores as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// Content conditions of the grid: clean, every family at every severity, and two class
/// subsets (clean images of upper-body garments only, of everything else only).
/// A content condition: name, corruption and severity, class subset.
type ContentCondition = (String, Option<(CorruptionKind, u8)>, Option<Vec<u16>>);

fn content_grid(quick: bool) -> Vec<ContentCondition> {
    let mut g = vec![("clean".to_string(), None, None)];
    let families: Vec<CorruptionKind> = if quick {
        vec![
            CorruptionKind::GaussianNoise,
            CorruptionKind::Fog,
            CorruptionKind::MotionBlur,
        ]
    } else {
        CorruptionKind::ALL.to_vec()
    };
    let severities: Vec<u8> = if quick { vec![3] } else { (1..=5).collect() };
    for k in families {
        for &s in &severities {
            g.push((format!("{k}@{s}"), Some((k, s)), None));
        }
    }
    if !quick {
        g.push(("classes=0,2,4,6".into(), None, Some(vec![0, 2, 4, 6])));
        g.push((
            "classes=1,3,5,7,8,9".into(),
            None,
            Some(vec![1, 3, 5, 7, 8, 9]),
        ));
    }
    g
}

pub(crate) use opa_harness::progress::bar;

pub fn calibrate(a: CalibrateArgs) -> Result<()> {
    let (images, loads, seconds) = if a.quick {
        (100, vec![0.0, 1.0], 0.1)
    } else {
        (a.images, a.loads.clone(), a.seconds)
    };
    if images == 0 || !(seconds > 0.0 && seconds.is_finite()) {
        return Err(bad("--images and --seconds must be positive"));
    }
    let mut loads = loads;
    if loads.iter().any(|l| !(0.0..=1.0).contains(l)) || loads.is_empty() {
        return Err(bad("--loads: each load must be within 0..=1"));
    }
    loads.sort_by(f64::total_cmp);
    loads.dedup();
    if a.out.exists() && !a.force {
        return Err(bad(format!(
            "{} exists; pass --force to replace it or choose another --out",
            a.out.display()
        )));
    }
    let device = a.backend.device().map_err(bad)?;
    if a.threads > 0 {
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(a.threads)
            .build_global();
    }
    let ck = a
        .checkpoint
        .clone()
        .unwrap_or_else(opa_supernet::shipped_checkpoint);
    let cands = a
        .candidates
        .clone()
        .unwrap_or_else(opa_supernet::shipped_candidates);
    let dep = deployment::load(&ck, &cands, &device).map_err(bad)?;
    let probe = match &a.probe {
        Some(id) => dep.infos.iter().position(|c| &c.id == id).ok_or_else(|| {
            bad(format!(
                "--probe {id}: not among the candidates of {}",
                cands.display()
            ))
        })?,
        None => opa_predictors::selectors::fewest_macs(&dep.infos),
    };

    // Calibration half only: never the evaluation half that streams are cut from.
    let cal = shipped::load_shipped_split(Split::Calibration).map_err(bad)?;
    let n = dep.plans.len();
    let keep_latency = match &a.content_only {
        Some(path) => Some(same_deployment(
            path,
            "--content-only",
            &dep,
            probe,
            &cands,
        )?),
        None => None,
    };
    if let Some(old) = &keep_latency {
        loads = old.loads.clone();
    }
    let (contents, content) = match &a.latency_only {
        Some(path) => {
            let old = same_deployment(path, "--latency-only", &dep, probe, &cands)?;
            println!(
                "re-timing {n} candidates at {} load levels on {}; content tables kept from {}",
                loads.len(),
                a.backend.name(),
                path.display()
            );
            (old.contents, old.content)
        }
        None => measure_content(&a, &dep, &cal, images, probe, loads.len(), &device)?,
    };
    // Latency kept from --content-only's profile, or timed now under each injected load.
    let (latency, achieved) = match keep_latency {
        Some(old) => (old.latency, None),
        None => {
            let img = cal.image_bytes(0).to_vec();
            let (lat, achieved) = time_latency(&a, &dep, &img, &loads, seconds, &device);
            (lat, Some(achieved))
        }
    };
    let profile = Profile {
        candidates: dep.arch.clone(),
        probe,
        contents,
        loads: loads.clone(),
        content,
        latency,
    };
    if let Some(dir) = a.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| bad(format!("{}: {e}", dir.display())))?;
    }
    opa_reports::profile::write_profile(&a.out, &profile)?;
    match achieved {
        None => println!("latency tables kept; profile: {}", a.out.display()),
        Some(achieved) => {
            let co = if a.backend == Backend::TchCuda {
                "GPU"
            } else {
                "CPU"
            };
            println!("load levels requested / achieved by the {co} co-runner:");
            let largest = opa_predictors::selectors::most_macs(&dep.infos);
            for (i, (l, got)) in loads.iter().zip(&achieved).enumerate() {
                println!(
                    "  {l:.2} / {got:.2}   probe mean {:.3} ms, largest mean {:.3} ms",
                    profile.latency[probe][i].mean_ms, profile.latency[largest][i].mean_ms
                );
            }
            println!("profile: {}", a.out.display());
        }
    }
    Ok(())
}

/// Every candidate's batch-1 latency on `img` at each of `loads` (a co-runner injecting it,
/// [`CoRunner`]): `latency[candidate][load]`, and the load the injector achieved at each level.
fn time_latency(
    a: &CalibrateArgs,
    dep: &deployment::Deployment,
    img: &[u8],
    loads: &[f64],
    seconds: f64,
    device: &burn::tensor::Device,
) -> (Vec<Vec<LatencyStats>>, Vec<f64>) {
    let n = dep.plans.len();
    // On tch-cuda, where inference runs on the GPU, the load is a GPU co-runner's (what
    // `gpu-load` injects in a scenario); elsewhere a CPU one's (what `cpu-load` injects).
    let injector = if a.backend == Backend::TchCuda {
        CoRunner::gpu(device)
    } else {
        CoRunner::cpu(
            std::thread::available_parallelism().map_or(1, |n| n.get()),
            a.seed,
        )
    };
    let mut lat: Vec<Vec<LatencyStats>> = vec![Vec::new(); n];
    let b = bar((loads.len() * n) as u64, "latency");
    let mut achieved = Vec::new();
    for &l in loads {
        injector.set_load(l);
        std::thread::sleep(std::time::Duration::from_millis(200));
        let mark = injector.mark();
        for (c, plan) in dep.plans.iter().enumerate() {
            b.set_message(format!("load {l}, candidate {}/{n}", c + 1));
            let t = latency(
                plan,
                &dep.cfg,
                img,
                1,
                device,
                3,
                20,
                seconds,
                opa_harness::load::RUN_GAP,
            );
            lat[c].push(LatencyStats {
                mean_ms: t.mean_ms,
                p50_ms: t.median_ms,
                p95_ms: t.p95_ms,
            });
            b.inc(1);
        }
        achieved.push(injector.achieved_since(mark));
    }
    drop(injector);
    b.finish_and_clear();
    (lat, achieved)
}

/// The random streams of the second views' draws (past any image index).
const VIEW_STREAM: u64 = 1 << 32;

/// Every candidate on the calibration images of every content condition of the grid:
/// top-1 (overall, per class, per bin of the probe's confidence on the same image, and per bin
/// of its confidence on another view of the image) and the mean label-free signals.
fn measure_content(
    a: &CalibrateArgs,
    dep: &deployment::Deployment,
    cal: &ImageSet,
    images: usize,
    probe: usize,
    load_levels: usize,
    device: &burn::tensor::Device,
) -> Result<(Vec<String>, Vec<Vec<ContentStats>>)> {
    let n = dep.plans.len();
    let classes = dep.cfg.classes;
    let grid = content_grid(a.quick);
    println!(
        "calibrating {n} candidates (probe {}) on the calibration half: {} content conditions x {images} images, {} load levels on {}",
        dep.infos[probe].id,
        grid.len(),
        load_levels,
        a.backend.name()
    );
    let mut content: Vec<Vec<ContentStats>> = vec![Vec::new(); n];
    let b = bar((grid.len() * n) as u64, "accuracy");
    for (gi, (name, corruption, subset)) in grid.iter().enumerate() {
        let pool: Vec<usize> = (0..cal.len())
            .filter(|&i| subset.as_ref().is_none_or(|s| s.contains(&cal.labels[i])))
            .collect();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(a.seed ^ (gi as u64) << 20);
        let mut pick = pool.clone();
        pick.shuffle(&mut rng);
        pick.truncate(images);
        let set: ImageSet = cal.subset(&pick);
        let imgs: Vec<Vec<u8>> = (0..set.len())
            .map(|i| match corruption {
                Some((k, s)) => {
                    k.apply(&set.image(i), *s, a.seed.wrapping_add(i as u64 * 7919))
                        .data
                }
                None => set.image_bytes(i).to_vec(),
            })
            .collect();
        let refs: Vec<&[u8]> = imgs.iter().map(|v| v.as_slice()).collect();
        // The probe's view of another frame of each image's scene (camera shift and flicker
        // as a stream's default segment, the corruption drawn afresh): the second per-frame
        // table is binned by its confidence there.
        let stream = Segment::clean(1.0, 1.0);
        let views: Vec<Vec<u8>> = (0..set.len())
            .map(|i| {
                let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(a.seed ^ (gi as u64) << 20);
                rng.set_stream(VIEW_STREAM + i as u64);
                let moved = camera(&set.image(i), stream.jitter_px, stream.flicker, &mut rng);
                match corruption {
                    Some((k, s)) => k.apply_with(&moved, *s, &mut rng).data,
                    None => moved.data,
                }
            })
            .collect();
        let view_refs: Vec<&[u8]> = views.iter().map(|v| v.as_slice()).collect();
        let view_bin_of: Vec<usize> = {
            let pr = predict(&dep.plans[probe], None, &dep.cfg, &view_refs, 250, device);
            pr.probs
                .chunks(classes)
                .map(|row| probe_bin(signals(row).1 as f64))
                .collect()
        };
        // The probe first: every candidate's per-frame table is binned by the probe's
        // confidence on the same image.
        let order = std::iter::once(probe).chain((0..n).filter(|&c| c != probe));
        let mut bin_of: Vec<usize> = Vec::new();
        let mut done: Vec<Option<ContentStats>> = vec![None; n];
        for (step, c) in order.enumerate() {
            let plan = &dep.plans[c];
            b.set_message(format!("{name}, candidate {}/{n}", step + 1));
            let pr = predict(plan, None, &dep.cfg, &refs, 250, device);
            let (mut conf, mut ent, mut mar) = (0.0, 0.0, 0.0);
            let mut hits = vec![0usize; classes];
            let mut count = vec![0usize; classes];
            let mut bin_hits = [0usize; PROBE_BINS];
            let mut bin_count = vec![0usize; PROBE_BINS];
            let mut view_hits = [0usize; PROBE_BINS];
            let mut view_count = vec![0usize; PROBE_BINS];
            for (i, row) in pr.probs.chunks(classes).enumerate() {
                let (_, c1, e, m) = signals(row);
                conf += c1 as f64;
                ent += e as f64;
                mar += m as f64;
                let l = set.labels[i] as usize;
                count[l] += 1;
                let right = pr.predicted[i] as usize == l;
                hits[l] += usize::from(right);
                if c == probe {
                    bin_of.push(probe_bin(c1 as f64));
                }
                bin_count[bin_of[i]] += 1;
                bin_hits[bin_of[i]] += usize::from(right);
                view_count[view_bin_of[i]] += 1;
                view_hits[view_bin_of[i]] += usize::from(right);
            }
            let k = set.len().max(1) as f64;
            done[c] = Some(ContentStats {
                top1: pr.top1(&set.labels),
                confidence: conf / k,
                entropy: ent / k,
                margin: mar / k,
                class_top1: hit_rates(&hits, &count),
                images: set.len(),
                probe_bin_top1: hit_rates(&bin_hits, &bin_count),
                probe_bin_images: bin_count,
                view_bin_top1: hit_rates(&view_hits, &view_count),
                view_bin_images: view_count,
            });
            b.inc(1);
        }
        for (c, stats) in done.into_iter().enumerate() {
            content[c].push(stats.expect("every candidate measured"));
        }
    }
    b.finish_and_clear();

    Ok((grid.into_iter().map(|g| g.0).collect(), content))
}

/// Hits over images per group (class, confidence bin); NaN where a group holds no image.
fn hit_rates(hits: &[usize], count: &[usize]) -> Vec<f64> {
    hits.iter()
        .zip(count)
        .map(|(&h, &k)| {
            if k == 0 {
                f64::NAN
            } else {
                h as f64 / k as f64
            }
        })
        .collect()
}

pub fn predictors(c: PredictorsCmd) -> Result<()> {
    let PredictorsCmd::Eval(a) = c;
    let path = a.profile.unwrap_or_else(opa_supernet::shipped_profile);
    let p = opa_reports::profile::read_profile(&path).map_err(bad)?;
    println!(
        "{}: {} candidates, {} content conditions x {} load levels; leave-condition-out (content and load level held out together)",
        path.display(),
        p.candidates.len(),
        p.contents.len(),
        p.loads.len()
    );
    println!(
        "{:<28} {:>16} {:>16} {:>12} {:>7}",
        "variant", "top-1 MAE (pts)", "latency MAPE %", "Spearman ρ", "folds"
    );
    let mut scores: Vec<VariantScore> = Vec::new();
    let progress = bar((Variant::ALL.len() * p.conditions().len()) as u64, "folds");
    for v in Variant::ALL {
        progress.set_message(v.name());
        let s = evaluate_with(v, &p, &|| progress.inc(1)).map_err(bad)?;
        let name = if v.deployable() {
            v.name().to_string()
        } else {
            format!("{} (upper bound)", v.name())
        };
        progress.suspend(|| {
            println!(
                "{name:<28} {:>16.2} {:>16.1} {:>12.3} {:>7}",
                s.accuracy_mae_points, s.latency_mape_percent, s.spearman_rho, s.folds
            )
        });
        scores.push(s);
    }
    progress.finish_and_clear();
    if let Some(j) = a.json {
        opa_reports::write_json(&j, &scores)?;
        println!("scores: {}", j.display());
    }
    Ok(())
}
