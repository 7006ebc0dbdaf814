//! The engine's own overhead: frames scheduled per second with a null target (zero-cost
//! inference) and a fixed selector; and replay from a profile with OPA deciding (frames
//! decided per second, target >= 1,000,000): on a synthetic profile and stream where OPA
//! probes and decides twice on every frame, and on the shipped profile with the shipped
//! `dynamic.toml` and `high-fps.toml` scenarios' streams, load traces and deadlines.

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use opa_harness::engine::{FrameSlot, Inference, Target, replay};
use opa_harness::frames::Stream;
use opa_harness::profile_target::{FrameFacts, ProfileTarget};
use opa_harness::scenario::{self, Interpolation, LoadPoint, Workload};
use opa_predictors::predict::{Variant, fit};
use opa_predictors::profile::Profile;
use opa_predictors::selectors::{Opa, OpaParams, RandomSelector};
use opa_predictors::{CandidateInfo, Selector};
use std::path::Path;
use std::sync::atomic::AtomicBool;

struct Null;

impl Target for Null {
    fn run(
        &mut self,
        _candidate: usize,
        _frame: usize,
        _start_s: f64,
    ) -> Result<Inference, String> {
        Ok(Inference {
            compute_ms: 0.0,
            predicted: 0,
            confidence: 1.0,
            entropy: 0.0,
            margin: 1.0,
        })
    }
}

fn bench(c: &mut Criterion) {
    const FRAMES: usize = 100_000;
    // (One condition text shared by every frame, as a stream's segment shares it.)
    let clean: std::sync::Arc<str> = "clean".into();
    let frames: Vec<FrameSlot> = (0..FRAMES)
        .map(|i| FrameSlot {
            arrival_s: i as f64 / 30.0,
            label: (i % 10) as u16,
            condition: clean.clone(),
        })
        .collect();
    let cands: Vec<CandidateInfo> = (0..24)
        .map(|i| CandidateInfo {
            id: format!("c{i}"),
            macs: i,
            calibration_top1: 0.9,
        })
        .collect();
    let stop = AtomicBool::new(false);
    let mut g = c.benchmark_group("engine");
    g.throughput(Throughput::Elements(FRAMES as u64));
    g.bench_function("null-target-100k-frames", |b| {
        b.iter(|| {
            let mut sel = RandomSelector::new(1, 30);
            rows(&frames, &cands, 20.0, &mut Null, &mut sel, &stop)
        })
    });
    g.finish();

    // Replay from a profile: outcomes drawn from measured tables, OPA deciding. The
    // profile is synthetic (24 candidates, 6 content conditions, 5 loads): the cost per
    // decision does not depend on the numbers in it.
    let profile = opa_predictors::profile::synthetic(24, 5, &[0.0, 0.25, 0.5, 0.75, 1.0]);
    let facts: Vec<FrameFacts> = (0..FRAMES)
        .map(|i| FrameFacts {
            label: (i % 10) as u16,
            object: (i / 10) as u64,
            content: (i / 5_000) % 6,
        })
        .collect();
    let workload = Workload {
        points: (0..10)
            .map(|k| LoadPoint {
                time_s: k as f64 * 300.0,
                cpu_load: (k % 5) as f64 / 4.0,
                gpu_load: 0.0,
            })
            .collect(),
        interpolation: Interpolation::Linear,
    };
    let mut g = c.benchmark_group("replay-from-profile");
    g.throughput(Throughput::Elements(FRAMES as u64));
    // Per-frame OPA (the default; its predictor only serves the first frame), then rounds
    // OPA with each predictor (the predictor runs once per round).
    let rounds = OpaParams {
        evidence_frames: 0,
        ..OpaParams::default()
    };
    let runs = [
        ("opa-per-frame", Variant::Linear, OpaParams::default()),
        ("opa-rounds-linear", Variant::Linear, rounds.clone()),
        ("opa-rounds-shared-mlp", Variant::SharedMlp, rounds),
    ];
    for (name, variant, params) in runs {
        // The fit and the selector's and target's tables are set-up, not timed: what is
        // measured is deciding and drawing.
        let setup = || {
            let m = fit(variant, &profile, &profile.conditions()).expect("fit");
            let sel = Opa::new("opa", params.clone(), &profile, m).unwrap();
            (sel, ProfileTarget::new(&profile, &facts, &workload, 1, 1.0))
        };
        g.bench_function(format!("{name}-100k-frames"), |b| {
            b.iter_batched(
                setup,
                |(mut sel, mut t)| rows(&frames, &cands, 20.0, &mut t, &mut sel, &stop),
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();

    // The shipped profile and scenarios: per-frame OPA as `opa replay` runs it (its
    // default selector: default parameters, the linear predictor).
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let profile = opa_reports::profile::read_profile(
        &root.join("supernet/checkpoints/fashion-mnist/profile.parquet"),
    )
    .expect("the shipped profile");
    let mut g = c.benchmark_group("replay-shipped-profile");
    for file in ["dynamic", "high-fps"] {
        let w = World::of(&root.join(format!("scenarios/{file}.toml")), &profile);
        g.throughput(Throughput::Elements(w.slots.len() as u64));
        let setup = || {
            let m = fit(Variant::Linear, &profile, &profile.conditions()).expect("fit");
            let sel = Opa::new("opa", OpaParams::default(), &profile, m).unwrap();
            let t = ProfileTarget::new(&profile, &w.facts, &w.workload, w.seed, w.slowdown);
            (sel, t)
        };
        let name = format!("opa-per-frame-{file}-{}-frames", w.slots.len());
        g.bench_function(name, |b| {
            b.iter_batched(
                setup,
                |(mut sel, mut t)| rows(&w.slots, &w.cands, w.deadline_ms, &mut t, &mut sel, &stop),
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

/// Replays `frames` and returns how many rows it gave (what the benches time).
fn rows(
    frames: &[FrameSlot],
    cands: &[CandidateInfo],
    deadline_ms: f64,
    target: &mut dyn Target,
    selector: &mut dyn Selector,
    stop: &AtomicBool,
) -> usize {
    replay(
        frames,
        cands,
        deadline_ms,
        target,
        selector,
        stop,
        &mut |_| {},
    )
    .expect("replay")
    .rows
    .len()
}

/// A shipped scenario's stream, load trace and deadline, as `opa replay` sees them.
struct World {
    slots: Vec<FrameSlot>,
    facts: Vec<FrameFacts>,
    cands: Vec<CandidateInfo>,
    workload: Workload,
    deadline_ms: f64,
    seed: u64,
    slowdown: f64,
}

impl World {
    fn of(file: &Path, profile: &Profile) -> World {
        let sc = scenario::load(file).expect("a shipped scenario");
        let st = Stream::of(&sc, file, false, 1).expect("the stream");
        let facts = st.facts(Some(profile));
        let slots = st.slots;
        World {
            slots,
            facts,
            cands: profile
                .candidates
                .iter()
                .map(|c| CandidateInfo {
                    id: c.id.clone(),
                    macs: c.macs,
                    calibration_top1: 0.0,
                })
                .collect(),
            workload: sc.workload.on_profile_axis(sc.backend),
            deadline_ms: sc.deadline_ms,
            seed: sc.replay_seed(),
            slowdown: sc.slowdown,
        }
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).measurement_time(std::time::Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
