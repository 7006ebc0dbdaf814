//! Stream synthesis throughput: 28×28 frames rendered with jitter, flicker and a corruption.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use opa_datasets::shipped::{self, Split};
use opa_datasets::stream::{
    CorruptionSchedule, Segment, SeverityProfile, StreamSpec, SyntheticStream,
};
use opa_datasets::{CorruptionKind, FrameSource};
use std::sync::Arc;

fn bench(c: &mut Criterion) {
    let eval = Arc::new(shipped::load_shipped_split(Split::Evaluation).expect("shipped data"));
    let mut group = c.benchmark_group("stream-synthesis-28x28");
    const FRAMES: usize = 1000;
    group.throughput(Throughput::Elements(FRAMES as u64));
    let mut kinds: Vec<Option<CorruptionKind>> = vec![None];
    kinds.extend(CorruptionKind::ALL.map(Some));
    for kind in kinds {
        let seg = Segment {
            corruption: kind.map(|k| CorruptionSchedule {
                kind: k,
                severity: SeverityProfile::Constant(3),
            }),
            ..Segment::clean(FRAMES as f64 / 30.0, 30.0)
        };
        let stream = SyntheticStream::new(
            eval.clone(),
            &StreamSpec {
                segments: vec![seg],
            },
            1,
        )
        .expect("valid spec");
        let name = kind.map_or("clean".to_string(), |k| format!("{k}@3"));
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut sum = 0u64;
                for i in 0..FRAMES {
                    sum += stream.frame(i).expect("frame").image.data[400] as u64;
                }
                sum
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).measurement_time(std::time::Duration::from_secs(2)).warm_up_time(std::time::Duration::from_millis(500));
    targets = bench
}
criterion_main!(benches);
