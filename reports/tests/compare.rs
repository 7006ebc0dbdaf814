//! `opa compare` on generated runs (no timing): paired when the runs share their frames,
//! unpaired (and why) when not, repeats paired by repeat, the smallest detectable regression,
//! thresholds per selector from TOML.

use opa_predictors::Phase;
use opa_reports::compare::{Change, CompareConfig, MetricDelta, Run, Thresholds, compare};
use opa_reports::{RunSummary, Sample, SummaryInputs, summarize};
use rand::{Rng, SeedableRng};

const SELECTORS: [&str; 2] = ["opa", "fixed"];
const DEADLINES: [f64; 3] = [1.0, 2.0, 4.0];

/// A run of 900 frames at 10 a second (90 s: 18 windows of 5 s), every selector and deadline,
/// drawn from `seed` (the stream: labels, conditions; each frame right within the deadline
/// with probability 0.8, latency 0.5–1.5 ms).
fn run(seed: u64) -> Run {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let frames: Vec<(u16, bool, f64)> = (0..900)
        .map(|_| {
            (
                rng.random_range(0..10u16),
                rng.random_bool(0.8),
                rng.random_range(0.5..1.5),
            )
        })
        .collect();
    let mut samples = Vec::new();
    for d in DEADLINES {
        for s in SELECTORS {
            for (f, &(label, right, lat)) in frames.iter().enumerate() {
                let t = f as f64 / 10.0;
                samples.push(Sample {
                    selector: s.into(),
                    deadline_ms: d,
                    frame: f as u64,
                    phase: Phase::Serve,
                    candidate: "c".into(),
                    arrival_s: t,
                    start_s: t,
                    finish_s: t + lat / 1000.0,
                    compute_ms: lat,
                    latency_ms: lat,
                    label,
                    predicted: if right { label } else { label + 1 },
                    confidence: 0.5,
                    correct: right,
                    deadline_met: true,
                    cpu_load: 0.0,
                    condition: if f < 450 { "clean" } else { "fog@3" }.into(),
                });
            }
        }
    }
    summarized(samples)
}

/// The run's summary recomputed from its rows (after a test changed them).
fn summarized(samples: Vec<Sample>) -> Run {
    let selectors = DEADLINES
        .iter()
        .flat_map(|&d| SELECTORS.map(|s| (s, d)))
        .map(|(s, d)| {
            let rows: Vec<Sample> = samples
                .iter()
                .filter(|r| r.selector == s && r.deadline_ms == d)
                .cloned()
                .collect();
            summarize(
                &rows,
                &SummaryInputs {
                    selector: s,
                    deadline_ms: d,
                    emulated: false,
                    min_frames: 10,
                    load_requested: 0.0,
                    load_achieved: 0.0,
                    complete: true,
                },
            )
        })
        .collect();
    (
        RunSummary {
            scenario: "generated".into(),
            status: "COMPLETE".into(),
            emulated: false,
            mode: "replay-from-profile".into(),
            deadlines_ms: DEADLINES.to_vec(),
            selector_order: SELECTORS.map(String::from).to_vec(),
            oracle: None,
            shard: None,
            interleave_frames: 0,
            runs_measured: 0,
            runs_shared: 0,
            selectors,
        },
        samples,
    )
}

/// `run` with `pts` points of `selector`'s frames (at every deadline) made wrong: that many
/// of its right frames, drawn with `seed`.
fn planted(r: &Run, selector: &str, pts: f64, seed: u64) -> Run {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut rows = r.1.clone();
    for d in DEADLINES {
        let mut right: Vec<usize> = (0..rows.len())
            .filter(|&i| {
                rows[i].selector == selector && rows[i].deadline_ms == d && rows[i].correct
            })
            .collect();
        for _ in 0..(pts * 9.0).round() as usize {
            let i = right.swap_remove(rng.random_range(0..right.len()));
            rows[i].correct = false;
            rows[i].predicted += 1;
        }
    }
    summarized(rows)
}

/// The top-1 rows of `selector`, by deadline.
fn top1<'a>(d: &'a [MetricDelta], selector: &str) -> Vec<&'a MetricDelta> {
    d.iter()
        .filter(|x| x.selector == selector && x.metric == "top1_within_deadline")
        .collect()
}

#[test]
fn identical_runs_are_paired_unchanged_and_see_a_one_point_change() {
    let a = run(1);
    let d = compare(
        std::slice::from_ref(&a),
        std::slice::from_ref(&a),
        &CompareConfig::default(),
    )
    .unwrap();
    assert_eq!(d.len(), SELECTORS.len() * DEADLINES.len() * 2);
    for x in &d {
        assert!(x.paired, "{}", x.pairing);
        assert_eq!(x.pairing, "paired: the runs share their frames");
        assert_eq!((x.delta, x.ci_low, x.ci_high), (0.0, 0.0, 0.0));
        assert_eq!(x.change, Change::NoChange);
        // Nothing varies: the threshold is what could be detected.
        assert_eq!(x.detectable, x.threshold);
    }
}

#[test]
fn a_planted_two_point_regression_is_flagged_at_every_deadline() {
    let a = run(2);
    for seed in 0..10 {
        let b = planted(&a, "opa", 2.0, seed);
        let d = compare(std::slice::from_ref(&a), &[b], &CompareConfig::default()).unwrap();
        for x in top1(&d, "opa") {
            assert!((x.delta + 2.0).abs() < 1e-9, "{x:?}");
            assert!(x.paired);
            assert_eq!(x.change, Change::Regressed, "plant {seed}: {x:?}");
            assert!(x.detectable <= 1.5, "plant {seed}: {x:?}");
        }
        // The other selector is untouched, its latency too.
        assert!(
            top1(&d, "fixed")
                .iter()
                .all(|x| x.change == Change::NoChange)
        );
        assert!(
            d.iter()
                .filter(|x| x.metric == "latency_p95")
                .all(|x| x.change == Change::NoChange && x.delta == 0.0)
        );
    }
    // Half a point is below the default threshold: not flagged.
    let d = compare(
        std::slice::from_ref(&a),
        &[planted(&a, "opa", 0.5, 3)],
        &CompareConfig::default(),
    )
    .unwrap();
    assert!(top1(&d, "opa").iter().all(|x| x.change == Change::NoChange));
}

#[test]
fn runs_on_other_frames_are_unpaired_say_why_and_rarely_alarm() {
    let (mut alarms, mut detectable) = (0, f64::INFINITY);
    for seed in 0..50 {
        let d = compare(
            &[run(100 + seed)],
            &[run(200 + seed)],
            &CompareConfig::default(),
        )
        .unwrap();
        for x in &d {
            assert!(!x.paired);
            assert!(x.pairing.starts_with("unpaired: frame "), "{}", x.pairing);
            detectable = detectable.min(x.detectable);
        }
        alarms += usize::from(d.iter().any(|x| x.change == Change::Regressed));
    }
    // 50 pairs of unchanged runs on other frames: at most 2 would fail a CI job (exit 1).
    assert!(alarms <= 2, "{alarms} of 50");
    // And such a comparison cannot see a point or two.
    assert!(detectable > 2.0, "{detectable}");
}

#[test]
fn repeats_pair_by_repeat_and_pool_their_windows() {
    let base = [run(10), run(11), run(12)];
    let cur: Vec<Run> = base
        .iter()
        .enumerate()
        .map(|(k, r)| planted(r, "opa", 2.0, k as u64))
        .collect();
    let d = compare(&base, &cur, &CompareConfig::default()).unwrap();
    for x in top1(&d, "opa") {
        assert_eq!(x.pairing, "paired: each of the 3 repeats shares its frames");
        assert_eq!(x.runs, 3);
        assert!((x.delta + 2.0).abs() < 1e-9, "{x:?}");
        assert_eq!(x.change, Change::Regressed);
    }
    // Three runs each pool 54 windows: a tighter interval than one run's 18.
    let one = compare(&base[..1], &cur[..1], &CompareConfig::default()).unwrap();
    let width = |d: &[MetricDelta]| {
        top1(d, "opa")
            .iter()
            .map(|x| x.ci_high - x.ci_low)
            .sum::<f64>()
    };
    assert!(width(&d) < width(&one), "{} vs {}", width(&d), width(&one));
    // Repeats in another order do not share frames: unpaired, and said so.
    let shuffled = [cur[1].clone(), cur[0].clone(), cur[2].clone()];
    let d = compare(&base, &shuffled, &CompareConfig::default()).unwrap();
    assert!(
        d[0].pairing.starts_with("unpaired: repeat 1: frame "),
        "{}",
        d[0].pairing
    );
    // Counts that differ are unpaired.
    let d = compare(&base, &cur[..2], &CompareConfig::default()).unwrap();
    assert_eq!(
        d[0].pairing,
        "unpaired: 3 baseline runs against 2 current runs"
    );
}

#[test]
fn thresholds_per_selector_and_deadline_from_toml() {
    let t = Thresholds::parse(
        "top1-drop-pts = 3.0\n\
         [[rule]]\nselector = \"op*\"\ntop1-drop-pts = 1.0\n\
         [[rule]]\nselector = \"opa\"\ndeadline-ms = 4\ninformational = true\n",
    )
    .unwrap();
    assert_eq!(t.limits("fixed", 1.0).top1_drop_pts, 3.0);
    assert_eq!(t.limits("opa", 1.0).top1_drop_pts, 1.0);
    assert!(!t.limits("opa", 1.0).informational);
    let at4 = t.limits("opa", 4.0);
    assert_eq!((at4.top1_drop_pts, at4.informational), (1.0, true));
    assert_eq!(t.limits("opa", 4.0).p95_rise_pct, 10.0);

    let a = run(3);
    let cfg = CompareConfig {
        thresholds: t,
        ..CompareConfig::default()
    };
    let d = compare(
        std::slice::from_ref(&a),
        &[planted(&a, "opa", 2.0, 1)],
        &cfg,
    )
    .unwrap();
    let opa = top1(&d, "opa");
    assert!(opa.iter().all(|x| x.change == Change::Regressed));
    assert_eq!(
        opa.iter().map(|x| x.informational).collect::<Vec<_>>(),
        [false, false, true]
    );
    // Held to 3 points, 2 points is no change.
    let d = compare(
        std::slice::from_ref(&a),
        &[planted(&a, "fixed", 2.0, 1)],
        &cfg,
    )
    .unwrap();
    assert!(
        top1(&d, "fixed")
            .iter()
            .all(|x| x.change == Change::NoChange && x.threshold == 3.0)
    );

    for (bad, says) in [
        (
            "top1-drop-pts = -1",
            "top1-drop-pts = -1: must be a number >= 0",
        ),
        ("[[rule]]\nselector = \"\"", "rule[0].selector is empty"),
        (
            "[[rule]]\nselector = \"a\"\ndeadline-ms = 0",
            "rule[0].deadline-ms = 0",
        ),
        ("top1-drop = 1", "unknown field `top1-drop`"),
    ] {
        let e = Thresholds::parse(bad).unwrap_err();
        assert!(e.contains(says), "{bad:?}: {e}");
    }
}

#[test]
fn the_example_thresholds_file_reads() {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/ci/thresholds.toml");
    let t = Thresholds::read(&p).unwrap();
    assert_eq!(t.limits("opa", 2.0).top1_drop_pts, 0.5);
    assert!(t.limits("fixed-smallest", 1.0).informational);
    assert!(!t.limits("opa", 1.0).informational);
}
