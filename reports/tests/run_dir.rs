//! Metrics from hand-made rows, and the samples table round trip.

use opa_predictors::Phase;
use opa_reports::{Sample, SummaryInputs, percentile, read_samples, summarize, write_samples};

#[allow(clippy::too_many_arguments)]
fn row(
    frame: u64,
    phase: &str,
    cand: &str,
    arrival: f64,
    compute_ms: f64,
    latency_ms: f64,
    correct: bool,
    met: bool,
) -> Sample {
    Sample {
        selector: "s".into(),
        deadline_ms: 20.0,
        frame,
        phase: Phase::parse(phase).expect("a phase name"),
        candidate: cand.into(),
        arrival_s: arrival,
        start_s: arrival,
        finish_s: arrival + latency_ms / 1000.0,
        compute_ms,
        latency_ms,
        label: 1,
        predicted: if correct { 1 } else { 2 },
        confidence: 0.5,
        correct,
        deadline_met: met,
        cpu_load: 0.25,
        condition: "clean".into(),
    }
}

fn inputs(min_frames: usize) -> SummaryInputs<'static> {
    SummaryInputs {
        selector: "s",
        deadline_ms: 20.0,
        emulated: false,
        min_frames,
        load_requested: 0.0,
        load_achieved: 0.0,
        complete: true,
    }
}

#[test]
fn metrics_follow_the_design_definitions() {
    // Frame 1: a probe run of b, then a run of b of its own (it starts when the probe ends).
    let mut own_run = row(1, "serve", "b", 0.1, 10.0, 25.0, true, false);
    own_run.start_s = 0.105;
    let rows = vec![
        row(0, "serve", "a", 0.0, 10.0, 10.0, true, true),
        row(1, "probe", "b", 0.1, 5.0, 5.0, true, false),
        own_run,
        row(2, "serve", "b", 0.2, 10.0, 10.0, false, true),
        row(3, "serve", "a", 0.3, 10.0, 15.0, true, true),
    ];
    let s = summarize(&rows, &inputs(1));
    assert_eq!(s.frames, 4);
    assert_eq!(s.top1, 0.75);
    assert_eq!(s.top1_within_deadline, 0.5); // frames 0 and 3
    assert_eq!(s.deadline_miss_rate, 0.25);
    assert_eq!((s.probes, s.switches), (1, 2));
    assert_eq!(s.latency_p50_ms, 10.0);
    assert_eq!(s.latency_p99_ms, 25.0);
    // 5 ms of probing over a timeline from 0 s to 0.315 s.
    assert!(
        (s.decision_overhead - 0.005 / 0.315).abs() < 1e-12,
        "{}",
        s.decision_overhead
    );
    assert_eq!(s.verdict.verdict, "VALID");
    // A probe run whose answer then served the frame (the same run) is serving, not overhead.
    let mut reused = rows.clone();
    reused.push(row(4, "probe", "a", 0.4, 3.0, 3.0, true, false));
    reused.push(row(4, "serve", "a", 0.4, 3.0, 3.0, true, true));
    let t = summarize(&reused, &inputs(1));
    assert_eq!(t.probes, 2);
    assert!(
        (t.decision_overhead - 0.005 / 0.403).abs() < 1e-12,
        "{}",
        t.decision_overhead
    );
    // A late escalation (probe c, 4 ms after the probe a's 3 ms run) whose fallback, a's run,
    // served at the deadline (20 ms, later than its own finish): a's run is serving, c's
    // is overhead.
    let mut escalated = reused.clone();
    escalated.push(row(5, "probe", "a", 0.5, 3.0, 3.0, true, false));
    let mut late = row(5, "probe", "c", 0.5, 30.0, 33.0, true, false);
    late.start_s = 0.503;
    escalated.push(late);
    escalated.push(row(5, "serve", "a", 0.5, 3.0, 20.0, true, true));
    let e = summarize(&escalated, &inputs(1));
    assert_eq!(e.probes, 4);
    assert!(
        (e.decision_overhead - 0.035 / 0.533).abs() < 1e-12,
        "{}",
        e.decision_overhead
    );
}

#[test]
fn a_frame_dropped_unanswered_is_a_frame_missed_without_a_latency() {
    // Frames 0 and 2 served in time (one right), frame 1 dropped after waiting 30 ms.
    let mut skip = row(1, "skip", "", 0.1, 0.0, 30.0, false, false);
    skip.predicted = opa_reports::NO_ANSWER;
    let rows = vec![
        row(0, "serve", "a", 0.0, 10.0, 10.0, true, true),
        skip,
        row(2, "serve", "a", 0.2, 10.0, 12.0, false, true),
    ];
    let s = summarize(&rows, &inputs(1));
    assert_eq!((s.frames, s.skipped, s.probes, s.switches), (3, 1, 0, 0));
    assert_eq!(s.top1, 1.0 / 3.0);
    assert_eq!(s.top1_within_deadline, 1.0 / 3.0);
    assert_eq!(s.deadline_miss_rate, 1.0 / 3.0);
    // Latencies of the answered frames only.
    assert_eq!((s.latency_p50_ms, s.latency_p99_ms), (10.0, 12.0));
    assert_eq!(s.decision_overhead, 0.0);
}

#[test]
fn verdict_lists_every_reason() {
    let rows = vec![row(0, "serve", "a", 0.0, 1.0, 1.0, true, true)];
    let s = summarize(
        &rows,
        &SummaryInputs {
            emulated: true,
            load_requested: 0.5,
            load_achieved: 0.1,
            complete: false,
            ..inputs(100)
        },
    );
    assert_eq!(s.verdict.verdict, "INVALID");
    let r = s.verdict.reasons.join(" | ");
    for needle in [
        "INCOMPLETE",
        "emulated",
        "too few frames: 1, at least 100",
        "load injector missed its target",
    ] {
        assert!(r.contains(needle), "{r}");
    }
}

#[test]
fn percentiles_are_nearest_rank() {
    let v: Vec<f64> = (1..=100).map(f64::from).collect();
    assert_eq!(
        (
            percentile(&v, 50.0),
            percentile(&v, 95.0),
            percentile(&v, 100.0)
        ),
        (50.0, 95.0, 100.0)
    );
    assert!(percentile(&[], 50.0).is_nan());
}

#[test]
fn samples_round_trip_through_parquet() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("samples.parquet");
    let rows = vec![
        row(0, "serve", "r28-k5e4", 0.0, 1.5, 2.5, true, true),
        row(1, "probe", "r16-k3e2", 0.1, 0.5, 0.7, false, false),
    ];
    write_samples(&path, &rows).unwrap();
    assert_eq!(read_samples(&path).unwrap(), rows);
    assert!(!dir.path().join(".samples.parquet.tmp").exists());
    // Strings that repeat, alternate and come back after others, and an empty one (a skip's
    // candidate), over several selectors and conditions: read back row for row.
    let names = [
        "r16-k3e2",
        "r28-k5e4.k5e4.k5e4-k5e4.k5e4.k5e4",
        "",
        "r16-k3e2",
    ];
    let rows: Vec<Sample> = (0..40u64)
        .map(|i| {
            let mut r = row(
                i,
                ["probe", "serve", "skip"][(i % 3) as usize],
                names[(i % 4) as usize],
                i as f64,
                1.0,
                2.0,
                i % 2 == 0,
                true,
            );
            r.selector = ["opa", "oracle"][(i / 20) as usize].into();
            r.condition = ["clean", "fog@3", "clean", "shot-noise@5"][(i / 7 % 4) as usize].into();
            r
        })
        .collect();
    write_samples(&path, &rows).unwrap();
    assert_eq!(read_samples(&path).unwrap(), rows);
    // A parquet file of another kind is named as such.
    let other = dir.path().join("other.parquet");
    opa_reports::profile::write_profile(&other, &opa_predictors::profile::synthetic(2, 1, &[0.0]))
        .unwrap();
    let err = read_samples(&other).unwrap_err().to_string();
    assert!(
        err.contains("other.parquet") && err.contains("not a run's samples table"),
        "{err}"
    );
    std::fs::write(&path, b"not parquet").unwrap();
    assert!(
        read_samples(&path)
            .unwrap_err()
            .to_string()
            .contains("samples.parquet")
    );
}
