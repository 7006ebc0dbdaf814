//! The architecture space: ids, encodings and cost counts.

use opa_supernet::arch::{SubnetArch, SupernetConfig, encoding_len};
use rand::SeedableRng;

#[test]
fn arch_ids_round_trip_and_bad_ids_are_explained() {
    let cfg = SupernetConfig::fashion_mnist();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    for _ in 0..500 {
        let a = SubnetArch::sample(&cfg, &mut rng);
        assert_eq!(SubnetArch::parse(&a.id(), &cfg).unwrap(), a);
        assert_eq!(a.encode(&cfg).len(), encoding_len(&cfg));
    }
    assert_eq!(
        SubnetArch::largest(&cfg).id(),
        "r28-k5e4.k5e4.k5e4-k5e4.k5e4.k5e4-k5e4.k5e4.k5e4"
    );
    assert_eq!(SubnetArch::smallest(&cfg).id(), "r16-k3e2-k3e2-k3e2");
    for (bad, why) in [
        ("28-k3e2-k3e2-k3e2", "must start with r"),
        ("r27-k3e2-k3e2-k3e2", "resolution 27"),
        ("r28-k7e2-k3e2-k3e2", "kernel 7"),
        ("r28-k3e5-k3e2-k3e2", "expand ratio 5"),
        ("r28-k3e2-k3e2", "has 2 stages"),
        ("r28-k3e2.k3e2.k3e2.k3e2-k3e2-k3e2", "depth 4"),
        ("r28-k3x2-k3e2-k3e2", "must look like k5e4"),
    ] {
        let err = SubnetArch::parse(bad, &cfg).unwrap_err().to_string();
        assert!(err.contains(why), "{bad}: {err}");
    }
}

#[test]
fn shipped_space_is_large_with_a_wide_cost_range() {
    let cfg = SupernetConfig::fashion_mnist();
    assert!(cfg.num_subnets() >= 10_000, "{}", cfg.num_subnets());
    let ratio =
        SubnetArch::largest(&cfg).macs(&cfg) as f64 / SubnetArch::smallest(&cfg).macs(&cfg) as f64;
    assert!(ratio >= 10.0, "largest / smallest multiply-adds = {ratio}");
    assert!(cfg.validate().is_ok() && SupernetConfig::cifar10().validate().is_ok());
}

#[test]
fn multiply_adds_and_parameters_match_hand_arithmetic() {
    // tiny(1, 16, 4): stem 8 ch stride 2; stage 1: 8 ch stride 1 ReLU; stage 2: 16 ch stride 2
    // h-swish + SE; head 24; smallest = r12, one k3e2 block per stage.
    let cfg = SupernetConfig::tiny(1, 16, 4);
    let a = SubnetArch::parse("r12-k3e2-k3e2", &cfg).unwrap();
    // stem at 6x6: 1*8*9 = 72 weights -> 72*36 = 2592 MACs; params 72 + 2*8 BN
    // s0b0 (8 -> ex 16 -> 8, 6x6): expand 128*36, depthwise 16*9*36, project 128*36
    // s1b0 (8 -> ex 16 -> 16, 6x6 -> 3x3): expand 128*36, depthwise 144*9, SE 64 + 64, project 256*9
    // head 16 -> 24 at 3x3: 384*9; classifier 24*4
    let macs = 2592 + (4608 + 5184 + 4608) + (4608 + 1296 + 64 + 64 + 2304) + 3456 + 96;
    assert_eq!(a.macs(&cfg), macs as u64);
    // params: stem 72+16; s0b0 (128+32)+(144+32)+(128+16); s1b0 (128+32)+(144+32)+(64+4)+(64+16)+(256+32);
    // head 384+48; classifier 96+4
    let params = 88 + (160 + 176 + 144) + (160 + 176 + 68 + 80 + 288) + 432 + 100;
    assert_eq!(a.params(&cfg), params as u64);
}

#[test]
fn encoding_is_one_hot_per_dimension() {
    let cfg = SupernetConfig::tiny(1, 16, 4);
    let a = SubnetArch::parse("r16-k5e3-k3e2.k5e3", &cfg).unwrap();
    // Per stage: 2 slots x (2 kernels + 2 expands) + 2 depths; then 2 resolutions.
    let e = a.encode(&cfg);
    let want: Vec<f32> = vec![
        0., 1., 0., 1., /* slot 2 empty */ 0., 0., 0., 0., /* depth 1 */ 1., 0., //
        1., 0., 1., 0., 0., 1., 0., 1., /* depth 2 */ 0., 1., //
        /* r16 */ 0., 1.,
    ];
    assert_eq!(e, want);
}
