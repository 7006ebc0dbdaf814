//! The engine's own overhead: frames scheduled per second with a null target (zero-cost
//! inference) and a fixed selector.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use opa_harness::engine::{FrameSlot, Inference, Target, replay};
use opa_predictors::CandidateInfo;
use opa_predictors::selectors::RandomSelector;
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
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).measurement_time(std::time::Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
