//! Two selectors of one run compared frame by frame (`compare::paired_top1`).

use opa_predictors::Phase;
use opa_reports::Sample;
use opa_reports::compare::{CompareConfig, paired_top1};

/// Frame `frame` of `selector` at 1 ms, arriving at 10 frames a second, right within the
/// deadline or not (a served row; `skip`: dropped unanswered instead).
fn frame(selector: &str, frame: u64, right: bool, skip: bool) -> Sample {
    Sample {
        selector: selector.into(),
        deadline_ms: 1.0,
        frame,
        phase: if skip { Phase::Skip } else { Phase::Serve },
        candidate: if skip { "" } else { "c" }.into(),
        arrival_s: frame as f64 / 10.0,
        start_s: frame as f64 / 10.0,
        finish_s: frame as f64 / 10.0,
        compute_ms: 0.5,
        latency_ms: 0.5,
        label: 1,
        predicted: if right { 1 } else { 2 },
        confidence: 0.5,
        correct: right,
        deadline_met: !skip,
        cpu_load: 0.0,
        condition: "clean".into(),
    }
}

/// 600 frames (60 s: twelve 5 s windows) of `a` and `b`, right where `ra` and `rb` say, with
/// a probe row of `a` on every frame (not a frame's answer: never counted).
fn run(ra: impl Fn(u64) -> bool, rb: impl Fn(u64) -> bool) -> Vec<Sample> {
    let mut rows = Vec::new();
    for f in 0..600 {
        let mut probe = frame("a", f, !ra(f), false);
        probe.phase = Phase::Probe;
        rows.push(probe);
        rows.push(frame("a", f, ra(f), false));
        rows.push(frame("b", f, rb(f), false));
    }
    rows
}

#[test]
fn the_difference_is_paired_frame_by_frame_with_an_interval_around_it() {
    let cfg = CompareConfig::default();
    // a right on even frames, b on every third: a only on 200 frames (even, not a multiple
    // of 3), b only on 100 (odd multiples of 3).
    let rows = run(|f| f % 2 == 0, |f| f % 3 == 0);
    let p = paired_top1(&rows, "a", "b", 1.0, &cfg).unwrap();
    assert_eq!((p.frames, p.only_a, p.only_b), (600, 200, 100));
    assert!((p.delta - 100.0 * 100.0 / 600.0).abs() < 1e-9, "{p:?}");
    // Every window differs about alike (16 or 17 frames of 50 for a only, 8 or 9 for b only): the
    // interval is narrow around the difference.
    assert!(p.ci_low <= p.delta && p.delta <= p.ci_high, "{p:?}");
    assert!(p.ci_high - p.ci_low < 2.0, "{p:?}");
    assert_eq!(p.verdict(), "above");
    let q = paired_top1(&rows, "b", "a", 1.0, &cfg).unwrap();
    assert_eq!((q.only_a, q.only_b), (100, 200));
    assert_eq!(
        (q.delta, q.ci_low, q.ci_high),
        (-p.delta, -p.ci_high, -p.ci_low)
    );
    assert_eq!(q.verdict(), "below");
    // The same seed, the same interval; a wrong deadline or selector shares no frame.
    assert_eq!(paired_top1(&rows, "a", "b", 1.0, &cfg), Some(p));
    assert_eq!(paired_top1(&rows, "a", "b", 2.0, &cfg), None);
    assert_eq!(paired_top1(&rows, "a", "nobody", 1.0, &cfg), None);
}

#[test]
fn a_difference_in_a_few_windows_only_is_level_within_noise() {
    let cfg = CompareConfig::default();
    // a is right on every frame of the first window where b is wrong, b right on a few
    // frames of three other windows where a is wrong, otherwise both alike: +50 - 9 frames
    // overall, but carried by one window of twelve.
    let rows = run(
        |f| f < 50 || ![110, 111, 112, 310, 311, 312, 510, 511, 512].contains(&f),
        |f| f >= 50,
    );
    let p = paired_top1(&rows, "a", "b", 1.0, &cfg).unwrap();
    assert_eq!((p.only_a, p.only_b), (50, 9));
    assert!(p.delta > 6.0, "{p:?}");
    assert!(p.ci_low <= 0.0 && p.ci_high > p.delta, "{p:?}");
    assert_eq!(p.verdict(), "level within noise");
}

#[test]
fn the_same_frames_right_and_a_dropped_frame_counts_as_missed() {
    let cfg = CompareConfig::default();
    let rows = run(|f| f % 4 != 0, |f| f % 4 != 0);
    let p = paired_top1(&rows, "a", "b", 1.0, &cfg).unwrap();
    assert_eq!(
        (p.delta, p.ci_low, p.ci_high, p.only_a, p.only_b),
        (0.0, 0.0, 0.0, 0, 0)
    );
    assert_eq!(p.verdict(), "the same frames right");
    // b drops frame 1 (a is right on it): one frame for a only.
    let mut dropped = rows.clone();
    let i = dropped
        .iter()
        .position(|r| r.selector == "b" && r.frame == 1)
        .unwrap();
    dropped[i] = frame("b", 1, false, true);
    let p = paired_top1(&dropped, "a", "b", 1.0, &cfg).unwrap();
    assert_eq!((p.frames, p.only_a, p.only_b), (600, 1, 0));
}
