//! Forward latency of the largest and smallest sub-networks (extracted, BN bound), batch 1
//! and 32, on the flex and ndarray backends.

use burn::tensor::Device;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use opa_supernet::arch::{SubnetArch, SupernetConfig};
use opa_supernet::model::{BnMode, BnStats, SupernetWeights, batch_tensor, pool_batch_stats};

#[allow(deprecated)]
fn devices() -> Vec<(&'static str, Device)> {
    vec![("flex", Device::flex()), ("ndarray", Device::ndarray())]
}

fn bench(c: &mut Criterion) {
    let cfg = SupernetConfig::fashion_mnist();
    let image: Vec<u8> = (0..784).map(|i| (i * 13 % 256) as u8).collect();
    let mut group = c.benchmark_group("supernet-forward");
    for (backend, device) in devices() {
        device.seed(1);
        let weights = SupernetWeights::init(&cfg, &device);
        for (name, arch) in [
            ("largest", SubnetArch::largest(&cfg)),
            ("smallest", SubnetArch::smallest(&cfg)),
        ] {
            let refs: Vec<&[u8]> = (0..32).map(|_| &image[..]).collect();
            let mut rec = Vec::new();
            let _ = weights.plan(&cfg, &arch).forward(
                batch_tensor(&cfg, &refs, &device),
                &mut BnMode::Batch {
                    record: Some(&mut rec),
                },
            );
            let plan = weights
                .plan(&cfg, &arch)
                .extract(&pool_batch_stats(&[rec]))
                .expect("statistics for every layer");
            for batch in [1usize, 32] {
                let refs: Vec<&[u8]> = (0..batch).map(|_| &image[..]).collect();
                group.throughput(Throughput::Elements(batch as u64));
                group.bench_function(
                    BenchmarkId::new(format!("{backend}/{name}"), format!("b{batch}")),
                    |b| {
                        b.iter(|| {
                            let x = batch_tensor(&cfg, &refs, &device);
                            plan.forward(x, &mut BnMode::Stored(&BnStats::default()))
                                .into_data()
                        })
                    },
                );
            }
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(3)).warm_up_time(std::time::Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
