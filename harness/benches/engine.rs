//! The engine's own overhead: frames scheduled per second with a null target (zero-cost
//! inference) and a fixed selector; and replay from a profile with OPA deciding (frame
//! decisions per second, target >= 1,000,000).

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use opa_harness::engine::{FrameSlot, Inference, Target, replay};
use opa_harness::profile_target::{FrameFacts, ProfileTarget};
use opa_harness::scenario::{Interpolation, LoadPoint, Workload};
use opa_predictors::CandidateInfo;
use opa_predictors::predict::{Variant, fit};
use opa_predictors::selectors::{Opa, OpaParams, RandomSelector};
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
    let frames: Vec<FrameSlot> = (0..FRAMES)
        .map(|i| FrameSlot {
            arrival_s: i as f64 / 30.0,
            label: (i % 10) as u16,
            condition: "clean".into(),
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
            replay(
                &frames,
                &cands,
                20.0,
                &mut Null,
                &mut sel,
                &stop,
                &mut |_| {},
            )
            .expect("replay")
            .rows
            .len()
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
        let model = || fit(variant, &profile, &profile.conditions()).expect("fit");
        g.bench_function(format!("{name}-100k-frames"), |b| {
            // The fit is set-up, not timed: what is measured is deciding and drawing.
            b.iter_batched(
                model,
                |m| {
                    let mut sel = Opa::new("opa", params.clone(), &profile, m).unwrap();
                    let mut t = ProfileTarget::new(&profile, &facts, &workload, 1, 1.0);
                    replay(&frames, &cands, 20.0, &mut t, &mut sel, &stop, &mut |_| {})
                        .expect("replay")
                        .rows
                        .len()
                },
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).measurement_time(std::time::Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
