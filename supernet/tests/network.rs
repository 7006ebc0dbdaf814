//! The burn network: slicing, extraction, batch norm, checkpoints, training.

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use opa_datasets::shipped::{self, Split};
use opa_supernet::arch::{SubnetArch, SupernetConfig};
use opa_supernet::checkpoint::{self, CheckpointError};
use opa_supernet::eval::{accuracy, recalibrate};
use opa_supernet::model::{BnMode, BnStats, SupernetWeights, batch_tensor};
use opa_supernet::train::{TrainConfig, latest_checkpoint, train};
use rand::{Rng, SeedableRng};

fn random_images(cfg: &SupernetConfig, n: usize, seed: u64) -> Vec<Vec<u8>> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let len = cfg.in_channels * cfg.input_size * cfg.input_size;
    (0..n)
        .map(|_| (0..len).map(|_| rng.random()).collect())
        .collect()
}

fn max_abs_diff(a: Tensor<2>, b: Tensor<2>) -> f32 {
    (a - b).abs().max().into_scalar::<f32>()
}

fn stats_for(
    weights: &SupernetWeights,
    cfg: &SupernetConfig,
    arch: &SubnetArch,
    device: &Device,
) -> BnStats {
    let imgs = random_images(cfg, 64, 9);
    let refs: Vec<&[u8]> = imgs.iter().map(|v| &v[..]).collect();
    let mut rec = Vec::new();
    let _ = weights.plan(cfg, arch).forward(
        batch_tensor(cfg, &refs, device),
        &mut BnMode::Batch {
            record: Some(&mut rec),
        },
    );
    opa_supernet::model::pool_batch_stats(&[rec])
}

#[test]
fn extracted_subnetworks_equal_the_sliced_forward() {
    let device = Device::flex();
    for cfg in [
        SupernetConfig::fashion_mnist(),
        SupernetConfig::tiny(3, 20, 5),
    ] {
        device.seed(7);
        let weights = SupernetWeights::init(&cfg, &device);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let mut archs = vec![SubnetArch::largest(&cfg), SubnetArch::smallest(&cfg)];
        archs.extend((0..4).map(|_| SubnetArch::sample(&cfg, &mut rng)));
        let imgs = random_images(&cfg, 5, 2);
        let refs: Vec<&[u8]> = imgs.iter().map(|v| &v[..]).collect();
        for arch in &archs {
            let stats = stats_for(&weights, &cfg, arch, &device);
            let x = batch_tensor(&cfg, &refs, &device);
            let sliced = weights
                .plan(&cfg, arch)
                .forward(x.clone(), &mut BnMode::Stored(&stats));
            let standalone = weights.plan(&cfg, arch).extract(&stats).unwrap();
            let out = standalone.forward(x, &mut BnMode::Stored(&BnStats::default()));
            assert_eq!(out.dims(), [5, cfg.classes]);
            let d = max_abs_diff(sliced, out);
            assert!(d <= 1e-4, "{}: max abs diff {d}", arch.id());
        }
    }
}

#[test]
fn largest_uses_every_parameter_of_the_supernet() {
    let cfg = SupernetConfig::fashion_mnist();
    let weights = SupernetWeights::init(&cfg, &Device::flex());
    assert_eq!(
        weights.num_params() as u64,
        SubnetArch::largest(&cfg).params(&cfg)
    );
}

#[test]
fn missing_statistics_fail_extraction_with_a_reason() {
    let cfg = SupernetConfig::tiny(1, 16, 4);
    let device = Device::flex();
    let weights = SupernetWeights::init(&cfg, &device);
    let err = weights
        .plan(&cfg, &SubnetArch::largest(&cfg))
        .extract(&BnStats::default())
        .unwrap_err();
    assert!(
        err.contains("no batch-norm statistics for layer 0"),
        "{err}"
    );
}

#[test]
fn checkpoints_round_trip_and_damage_is_reported() {
    let cfg = SupernetConfig::tiny(1, 16, 4);
    let device = Device::flex();
    device.seed(3);
    let weights = SupernetWeights::init(&cfg, &device);
    let arch = SubnetArch::largest(&cfg);
    let stats = stats_for(&weights, &cfg, &arch, &device);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("net.opack");
    checkpoint::save(&path, &cfg, &weights, &stats, (3, 99), None).unwrap();
    let loaded = checkpoint::load(&path, &device).unwrap();
    assert_eq!((loaded.header.epoch, loaded.header.step), (3, 99));
    assert_eq!(loaded.header.shared_bn, stats);
    let imgs = random_images(&cfg, 3, 4);
    let refs: Vec<&[u8]> = imgs.iter().map(|v| &v[..]).collect();
    let x = batch_tensor(&cfg, &refs, &device);
    let a = weights
        .plan(&cfg, &arch)
        .forward(x.clone(), &mut BnMode::Stored(&stats));
    let b = loaded
        .weights
        .plan(&cfg, &arch)
        .forward(x, &mut BnMode::Stored(&stats));
    assert_eq!(max_abs_diff(a, b), 0.0);

    let good = std::fs::read(&path).unwrap();
    let expect = |bytes: &[u8], want: &str| {
        std::fs::write(&path, bytes).unwrap();
        let err = match checkpoint::load(&path, &device) {
            Err(e) => e,
            Ok(_) => panic!("damaged checkpoint loaded"),
        };
        assert!(matches!(err, CheckpointError::Corrupt { .. }));
        let msg = err.to_string();
        assert!(msg.contains("net.opack") && msg.contains(want), "{msg}");
    };
    let mut flipped = good.clone();
    let last = flipped.len() - 10;
    flipped[last] ^= 0x55;
    expect(&flipped, "checksum mismatch");
    expect(
        &good[..good.len() - 100],
        "truncated or damaged: header says",
    );
    // The checksum covers the header too: a flipped header value is damage.
    let mut header = good.clone();
    header[20] ^= 0x01;
    expect(&header, "");
    expect(
        b"PK\x03\x04 definitely not a checkpoint",
        "not an opa checkpoint",
    );
    expect(&good[..20], "truncated");
    let missing = checkpoint::load(&dir.path().join("nope.opack"), &device)
        .err()
        .expect("missing file fails");
    assert!(matches!(missing, CheckpointError::Io { .. }));
}

#[test]
fn quick_training_lowers_the_loss_and_resumes() {
    let cal = shipped::load_shipped_split(Split::Calibration).unwrap();
    let cfg = SupernetConfig::fashion_mnist();
    let dir = tempfile::tempdir().unwrap();
    let t = TrainConfig {
        epochs: 3,
        ..TrainConfig::quick()
    };
    let mut losses = Vec::new();
    train(
        &cfg,
        &TrainConfig {
            epochs: 2,
            ..t.clone()
        },
        &cal,
        "calibration half (test)",
        dir.path(),
        false,
        &Device::flex(),
        &mut |e| {
            if e.epoch_done {
                losses.push(e.loss_largest)
            }
        },
    )
    .unwrap();
    // Resume the same run directory for a third epoch (the saved config says 2; resuming with 3
    // continues from the last checkpoint).
    train(
        &cfg,
        &t,
        &cal,
        "calibration half (test)",
        dir.path(),
        true,
        &Device::flex(),
        &mut |e| {
            if e.epoch_done {
                losses.push(e.loss_largest)
            }
        },
    )
    .unwrap();
    assert_eq!(losses.len(), 3, "{losses:?}");
    assert!(losses[2] < losses[0], "loss did not fall: {losses:?}");
    assert_eq!(latest_checkpoint(dir.path()).unwrap().0, 3);
    for f in [
        "config.json",
        "train-log.jsonl",
        "supernet.opack",
        "checkpoint-epoch-001.opack",
    ] {
        assert!(dir.path().join(f).is_file(), "{f} missing");
    }
    assert_eq!(
        std::fs::read_to_string(dir.path().join("train-log.jsonl"))
            .unwrap()
            .lines()
            .count(),
        3
    );
}

#[test]
fn recalibrated_smallest_beats_uncalibrated_on_the_shipped_checkpoint() {
    let device = Device::flex();
    let ck = checkpoint::load(&opa_supernet::shipped_checkpoint(), &device)
        .expect("the shipped checkpoint loads");
    let cfg = ck.header.config.clone();
    let small = SubnetArch::smallest(&cfg);
    // Statistics from the calibration half, accuracy on the evaluation half: no image in both.
    let bn_set = shipped::load_shipped_split(Split::Calibration).unwrap();
    let eval = shipped::load_shipped_split(Split::Evaluation).unwrap();
    let recal = recalibrate(&ck.weights, &cfg, &small, &bn_set, 2000, 200, &device);
    let uncal = ck
        .header
        .shared_bn
        .slice_for(&ck.weights.plan(&cfg, &small))
        .expect("shared statistics cover the smallest");
    let (a_recal, a_uncal) = (
        accuracy(&ck.weights, &cfg, &small, &recal, &eval, &device),
        accuracy(&ck.weights, &cfg, &small, &uncal, &eval, &device),
    );
    assert!(
        a_recal > a_uncal,
        "recalibrated {a_recal} vs uncalibrated {a_uncal}"
    );
}

/// Largest |flex - other| logit over the shipped checkpoint's largest and smallest candidates
/// on the same images, and whether every image's predicted class agrees.
#[cfg(feature = "tch")]
fn shipped_checkpoint_against_flex(other: &Device) -> (f32, bool) {
    let path = opa_supernet::shipped_checkpoint();
    let flex = Device::flex();
    let a = checkpoint::load(&path, &flex).unwrap();
    let b = checkpoint::load(&path, other).unwrap();
    let cfg = a.header.config.clone();
    let imgs = random_images(&cfg, 8, 3);
    let refs: Vec<&[u8]> = imgs.iter().map(|v| &v[..]).collect();
    let (mut worst, mut same_class) = (0.0f32, true);
    for arch in [SubnetArch::largest(&cfg), SubnetArch::smallest(&cfg)] {
        let stats = a
            .header
            .shared_bn
            .slice_for(&a.weights.plan(&cfg, &arch))
            .unwrap();
        let pa = a.weights.plan(&cfg, &arch).extract(&stats).unwrap();
        let pb = b.weights.plan(&cfg, &arch).extract(&stats).unwrap();
        let empty = BnStats::default();
        let run = |p: &opa_supernet::model::Plan, d: &Device| -> Vec<f32> {
            p.forward(batch_tensor(&cfg, &refs, d), &mut BnMode::Stored(&empty))
                .into_data()
                .try_to_vec()
                .unwrap()
        };
        let (ya, yb) = (run(&pa, &flex), run(&pb, other));
        let diff = ya
            .iter()
            .zip(&yb)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max);
        let argmax = |v: &[f32]| -> Vec<usize> {
            v.chunks(cfg.classes)
                .map(|r| (0..r.len()).fold(0, |m, i| if r[i] > r[m] { i } else { m }))
                .collect()
        };
        same_class &= argmax(&ya) == argmax(&yb);
        eprintln!("{}: max |flex - {other:?}| = {diff}", arch.id());
        worst = worst.max(diff);
    }
    (worst, same_class)
}

/// LibTorch (CPU) computes what flex computes: the shipped checkpoint loaded on both,
/// the same extracted candidates, the same images.
#[cfg(feature = "tch")]
#[test]
#[allow(deprecated)]
fn libtorch_cpu_matches_flex_on_the_shipped_checkpoint() {
    let (diff, same_class) = shipped_checkpoint_against_flex(&Device::libtorch());
    assert!(diff < 1e-3, "max |flex - libtorch| = {diff}");
    assert!(same_class);
}

/// LibTorch on CUDA computes what flex computes, within TF32 rounding (cuDNN convolutions
/// may use TF32: 10 mantissa bits). Needs an NVIDIA GPU, so it runs only when asked for:
/// `cargo test --release -p opa-supernet --features tch --test network -- --ignored`.
#[cfg(feature = "tch")]
#[test]
#[ignore = "needs an NVIDIA GPU (run with --ignored on a GPU machine)"]
#[allow(deprecated)]
fn libtorch_cuda_matches_flex_on_the_shipped_checkpoint() {
    let (diff, same_class) = shipped_checkpoint_against_flex(&Device::libtorch_cuda(0));
    assert!(diff < 2e-2, "max |flex - libtorch cuda| = {diff}");
    assert!(
        same_class,
        "a predicted class differs between flex and CUDA"
    );
}
