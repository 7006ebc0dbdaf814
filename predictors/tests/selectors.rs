//! Every selector on small synthetic profiles with a known right answer. Outcomes are the
//! profile's means (no noise), so each selector's choice can be worked out by hand.

use opa_predictors::predict::{Variant, fit};
use opa_predictors::profile::{Cond, Profile, synthetic};
use opa_predictors::selectors::*;
use opa_predictors::{CandidateInfo, Context, Decision, Outcome, Phase, Selector};
use std::sync::Arc;

fn cands(p: &Profile) -> Vec<CandidateInfo> {
    p.candidates
        .iter()
        .map(|c| CandidateInfo {
            id: c.id.clone(),
            macs: c.macs,
            calibration_top1: 0.9,
        })
        .collect()
}

/// What a drive produced: served candidate per frame, probe runs and the frames they ran on.
struct Drive {
    served: Vec<usize>,
    probes: usize,
    probed: Vec<u64>,
    /// Frames a candidate escalated to after a run on them (served, or late and fallen back).
    escalations: usize,
    /// Escalations that were late (the answer in hand served at the deadline).
    fell_back: usize,
    /// Served frames whose answer came after the deadline.
    late: usize,
}

/// What one run of candidate `c` on frame `f` shows the selector.
#[derive(Clone, Copy)]
struct Run {
    compute_ms: f64,
    confidence: f64,
    entropy: f64,
    margin: f64,
    predicted: u16,
}

/// Drives `s` through `frames` frames at 10 fps; `run(f, c)` says what a run shows.
fn drive_with(
    s: &mut dyn Selector,
    p: &Profile,
    frames: u64,
    deadline_ms: f64,
    mut run: impl FnMut(u64, usize) -> Run,
) -> Drive {
    let cands = cands(p);
    let (mut served, mut probes, mut probed) = (Vec::new(), 0, Vec::new());
    let (mut escalations, mut fell_back, mut late) = (0, 0, 0);
    for f in 0..frames {
        let mut spent_ms = 0.0;
        // The frame's latest run: an escalation's fallback.
        let mut in_hand: Option<(usize, Run)> = None;
        loop {
            let ctx = Context {
                frame: f,
                arrival_s: f as f64 * 0.1,
                deadline_ms,
                candidates: &cands,
                serving: served.last().copied(),
                waited_ms: spent_ms,
            };
            let (c, phase, escalate) = match s.decide(&ctx) {
                Decision::Serve(c) => (c, Phase::Serve, false),
                Decision::Probe(c) => (c, Phase::Probe, false),
                Decision::Escalate(c) => (c, Phase::Serve, true),
                // (Frames never wait for earlier ones here: at 10 fps every run is short.)
                Decision::Skip => panic!("{} skipped frame {f}, which did not wait", s.name()),
            };
            let r = run(f, c);
            spent_ms += r.compute_ms;
            // A late escalation is a probe; the answer in hand serves at the deadline.
            let fallback = in_hand.filter(|_| escalate && spent_ms > deadline_ms + 1e-9);
            let outcome = |c: usize, phase: Phase, r: &Run, latency_ms: f64| Outcome {
                frame: f,
                candidate: c,
                phase,
                compute_ms: r.compute_ms,
                latency_ms,
                confidence: r.confidence as f32,
                entropy: r.entropy as f32,
                margin: r.margin as f32,
                predicted: r.predicted,
            };
            if let Some((fc, fr)) = fallback {
                s.observe(&outcome(c, Phase::Probe, &r, spent_ms));
                s.observe(&outcome(fc, Phase::Serve, &fr, deadline_ms));
                served.push(fc);
                escalations += 1;
                fell_back += 1;
                break;
            }
            s.observe(&outcome(c, phase, &r, spent_ms));
            if phase == Phase::Serve {
                escalations += usize::from(escalate && in_hand.is_some());
                late += usize::from(spent_ms > deadline_ms + 1e-9);
                served.push(c);
                break;
            }
            probes += 1;
            probed.push(f);
            in_hand = Some((c, r));
        }
    }
    Drive {
        served,
        probes,
        probed,
        escalations,
        fell_back,
        late,
    }
}

/// Drives `s` through `frames` frames at 10 fps; frame f is under condition `cond(f)`;
/// each run takes the profile's mean latency and shows the profile's mean signals.
fn drive(
    s: &mut dyn Selector,
    p: &Profile,
    frames: u64,
    deadline_ms: f64,
    cond: impl Fn(u64) -> Cond,
) -> Drive {
    drive_noisy(s, p, frames, deadline_ms, cond, &mut || 1.0)
}

/// As [`drive`], each run's latency multiplied by `noise()`.
fn drive_noisy(
    s: &mut dyn Selector,
    p: &Profile,
    frames: u64,
    deadline_ms: f64,
    cond: impl Fn(u64) -> Cond,
    noise: &mut dyn FnMut() -> f64,
) -> Drive {
    drive_with(s, p, frames, deadline_ms, |f, c| {
        let k = cond(f);
        let a = &p.content[c][k.content];
        Run {
            compute_ms: p.latency[c][k.load].mean_ms * noise(),
            confidence: a.confidence,
            entropy: a.entropy,
            margin: a.margin,
            predicted: 0,
        }
    })
}

/// OPA's parameters in round mode (the paper's: probing rounds read by the predictor).
/// Runs in these drives take exactly the profile's median or mean latency, from which the
/// tail correction would (rightly) learn that every candidate finishes at its median; the
/// hand-worked choices take the predicted distributions as they are (`tail_window = 0`;
/// the correction has its own test).
fn rounds() -> OpaParams {
    OpaParams {
        evidence_frames: 0,
        tail_window: 0,
        ..OpaParams::default()
    }
}

/// OPA's parameters per frame (the default), with the predicted distributions as they are
/// (see [`rounds`]), serving the probe outright where it is the pick and a larger candidate
/// after the probe whatever its latency (the cascade and the fallback have their own tests).
fn per_frame() -> OpaParams {
    OpaParams {
        tail_window: 0,
        cascade: false,
        fallback: false,
        ..OpaParams::default()
    }
}

/// OPA with `params` and the linear predictor fitted on all of `p`'s conditions.
fn new_opa(p: &Profile, params: OpaParams) -> Opa {
    let model = fit(Variant::Linear, p, &p.conditions()).unwrap();
    Opa::new("opa", params, p, model).unwrap()
}

const IDLE: Cond = Cond {
    content: 0,
    load: 0,
};

/// Idle for 100 frames, then the full load level (latency ×3 in the synthetic profile).
fn load_step(f: u64) -> Cond {
    Cond {
        content: 0,
        load: if f < 100 { 0 } else { 2 },
    }
}

// The synthetic profile: 6 candidates, latency (0.2 + 0.3 i)(1 + 2 load) ms: idle
// 0.2, 0.5, 0.8, 1.1, 1.4, 1.7; at load 1: 0.6, 1.5, 2.4, ... With a 2 ms deadline and margin
// 0.8 (budget 1.6 ms) the right choice is candidate 4 idle and candidate 1 at full load.
/// Frame `frame` (one per ms) with a 2 ms deadline, after waiting `waited_ms` for the device.
fn at_2ms(cands: &[CandidateInfo], frame: u64, waited_ms: f64) -> Context<'_> {
    Context {
        frame,
        arrival_s: frame as f64 * 0.001,
        deadline_ms: 2.0,
        candidates: cands,
        serving: None,
        waited_ms,
    }
}

fn profile() -> Profile {
    synthetic(6, 5, &[0.0, 0.5, 1.0])
}

#[test]
fn opa_follows_a_load_step_to_the_right_candidate() {
    // OPA maximises predicted top-1 × P(latency within 0.9 × 2 ms) with log-normal tails
    // (p50 = 0.9 × mean, p95 = 1.6 × mean). Idle: candidate 2 (0.86 × 0.995) beats 3
    // (0.88 × 0.956) and 4 (0.90 × 0.846). At full load (latency × 3): candidate 0
    // (0.82 × 1.0) beats 1 (0.84 × 0.79).
    let p = profile();
    let mut s = new_opa(&p, rounds());
    let d = drive(&mut s, &p, 200, 2.0, load_step);
    assert_eq!(d.served[50], 2, "idle choice");
    assert_eq!(d.served[199], 0, "under full load");
    // The step is noticed early (latency drift), not only at the next periodic round.
    let switched = (100..200).find(|&f| d.served[f as usize] == 0).unwrap();
    assert!(switched < 115, "switched at frame {switched}");
    assert!(d.probes <= 3 * 20, "{} probes", d.probes);
}

/// Contention noise with mean 1: most runs at 0.6 × the mean, one in six at 3 × (a run
/// that waited for a co-runner's slice). Seeded, so both drives see the same sequence.
fn spiky(seed: u64) -> impl FnMut() -> f64 {
    let mut x = seed;
    move || {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        if (x >> 33).is_multiple_of(6) {
            3.0
        } else {
            0.6
        }
    }
}

#[test]
fn opa_pooling_recent_runs_steadies_its_choice_under_spiky_latency() {
    // Idle, 2 ms deadline: candidate 2 is right (see the load-step test). The probe's three
    // runs alone swing between 0.6× (pick bigger) and 1.4× (pick smaller); pooled with the
    // served runs the slowdown estimate is steadier, so OPA serves candidate 2 more often.
    let p = profile();
    let share = |window: u32| {
        let params = OpaParams {
            reprobe_every: 20,
            load_window: window,
            ..rounds()
        };
        let mut s = new_opa(&p, params);
        let d = drive_noisy(&mut s, &p, 2000, 2.0, |_| IDLE, &mut spiky(3));
        d.served.iter().filter(|&&c| c == 2).count() as f64 / 2000.0
    };
    let (alone, pooled) = (share(0), share(12));
    assert!(
        pooled > alone + 0.1,
        "right candidate served: probe alone {alone:.2}, pooled {pooled:.2}"
    );
}

#[test]
fn opa_serves_the_probes_answer_when_the_probe_left_too_little_time() {
    // Idle, 1 ms deadline: OPA serves candidate 1 (0.5 ms mean; candidate 2's 0.8 ms is
    // likely to overrun 0.9 ms). On a probe frame the probe has used 0.2 ms: candidate 1 in
    // the 0.8 ms left would be in time with p = 0.95, 0.84 × 0.95 < 0.82, so the probe's own
    // answer is served. With a 2 ms deadline the time left is ample and candidate 2 serves.
    // Runs take the median (0.9 × mean), so OPA's load estimate is the idle level.
    let p = profile();
    let mut s = new_opa(&p, rounds());
    let d = drive_noisy(&mut s, &p, 60, 1.0, |_| IDLE, &mut || 0.9);
    assert_eq!(
        &d.served[50..54],
        &[0, 0, 0, 1],
        "probe frames 50-52, then 53"
    );
    let mut s = new_opa(&p, rounds());
    let d = drive_noisy(&mut s, &p, 60, 2.0, |_| IDLE, &mut || 0.9);
    assert_eq!(&d.served[50..54], &[2, 2, 2, 2]);
}

#[test]
fn opa_follows_content_to_a_different_candidate() {
    // Content where small candidates lose most: with a generous deadline every candidate
    // fits, so OPA keeps the largest; the point is that a content change triggers a round.
    let p = profile();
    let params = OpaParams {
        reprobe_every: 1000,
        ..rounds()
    };
    let mut s = new_opa(&p, params);
    let cond = |f: u64| Cond {
        content: if f < 60 { 0 } else { 5 },
        load: 0,
    };
    let d = drive(&mut s, &p, 120, 100.0, cond);
    assert_eq!(d.served[100], 5);
    // One round at the start, one on the confidence drift after frame 60.
    assert_eq!(d.probes, 6, "{} probes", d.probes);
}

#[test]
fn opa_follows_load_from_served_runs_without_probing() {
    // Full load for 100 frames, then idle; 2 ms deadline: candidate 0 under full load,
    // candidate 2 idle (see the load-step test). With drift re-probing and periodic rounds
    // off, only the first round probes: the step down is seen in the served runs alone.
    let p = profile();
    let step_down = |f: u64| Cond {
        content: 0,
        load: if f < 100 { 2 } else { 0 },
    };
    let params = |replan_every| OpaParams {
        reprobe_every: 100_000,
        latency_drift: 10.0,
        replan_every,
        ..rounds()
    };
    let mut s = new_opa(&p, params(5));
    let d = drive_noisy(&mut s, &p, 200, 2.0, step_down, &mut || 0.9);
    assert_eq!(d.served[90], 0, "under full load");
    let back = (100..200)
        .find(|&f| d.served[f] == 2)
        .expect("back to candidate 2");
    assert!(back < 120, "back at frame {back}");
    assert_eq!(d.probes, 3, "one round");
    // Planning only after rounds, it stays where the first round put it.
    let mut s = new_opa(&p, params(0));
    let d = drive_noisy(&mut s, &p, 200, 2.0, step_down, &mut || 0.9);
    assert_eq!(d.served[199], 0);
}

#[test]
fn opa_probes_on_schedule_one_probe_per_frame() {
    let p = synthetic(4, 2, &[0.0]);
    let params = OpaParams {
        probe_frames: 2,
        reprobe_every: 20,
        ..rounds()
    };
    let mut s = new_opa(&p, params);
    let d = drive(&mut s, &p, 100, 100.0, |_| IDLE);
    assert_eq!(d.probes, 2 * 5, "rounds at frames 0, 20, 40, 60, 80");
}

#[test]
fn exhaustive_measures_everything_and_picks_the_best_fitting() {
    let p = profile();
    let mut s = Exhaustive::new(ExhaustiveParams::default(), &p);
    let d = drive(&mut s, &p, 200, 2.0, load_step);
    assert_eq!(d.served[50], 4);
    assert_eq!(d.served[199], 1);
    // Searches at 0, 50, 100, 150: 3 frames × 6 candidates each.
    assert_eq!(d.probes, 4 * 3 * 6);
}

#[test]
fn oracle_knows_the_future_and_costs_nothing() {
    let p = Arc::new(profile());
    let truth: Vec<FrameTruth> = (0..200)
        .map(|f| FrameTruth {
            content: 0,
            label: 0,
            load: if f < 100 { 0.0 } else { 1.0 },
            arrival_s: f as f64 * 0.1,
        })
        .collect();
    let mut s = Oracle::new(
        OracleParams {
            window: 10,
            ..Default::default()
        },
        p.clone(),
        truth,
    );
    let d = drive(&mut s, &p, 200, 2.0, load_step);
    assert_eq!(d.probes, 0);
    // Expected frames correct within 2 ms, with log-normal tails (p50 = 0.9 × mean,
    // p95 = 1.6 × mean): idle, candidate 3 (top-1 0.88 × P(within) 0.977 = 0.86) beats
    // 4 (0.90 × 0.907) and 5 (0.92 × 0.78); at full load candidate 0 (0.82 × 1.0) beats
    // 1 (0.84 × 0.87).
    assert_eq!(d.served[50], 3);
    assert_eq!(d.served[150], 0);
    assert_eq!(d.served[100], 0, "the switch happens exactly at the step");
}

#[test]
fn the_oracle_counts_the_queue_its_pick_would_build() {
    // Idle, 2 ms deadline. At 10 fps nothing queues and candidate 3 is the pick (see
    // above). At 2,000 fps (0.5 ms between frames) a candidate slower than that builds a
    // queue: candidate 2 (mean 0.8 ms) makes the window's later frames wait 0.3, 0.6, ...
    // ms and miss; candidate 1 (mean 0.5 ms) keeps up and serves 0.84 of them in time.
    let p = Arc::new(profile());
    let cands = cands(&p);
    let pick = |period_s: f64, waited_ms: f64, window: u32| {
        let truth: Vec<FrameTruth> = (0..20)
            .map(|f| FrameTruth {
                content: 0,
                label: 0,
                load: 0.0,
                arrival_s: f as f64 * period_s,
            })
            .collect();
        let mut s = Oracle::new(
            OracleParams {
                window,
                ..Default::default()
            },
            p.clone(),
            truth,
        );
        s.decide(&at_2ms(&cands, 0, waited_ms))
    };
    assert_eq!(pick(0.1, 0.0, 10), Decision::Serve(3));
    assert_eq!(pick(0.0005, 0.0, 10), Decision::Serve(1));
    // The window's first frame waited 1.8 ms for earlier runs: 0.2 ms left, which only
    // the smallest (median 0.18 ms) is likely to make. Waited 2 ms: nothing can make it.
    assert_eq!(pick(0.1, 1.8, 1), Decision::Serve(0));
    assert_eq!(pick(0.1, 2.0, 1), Decision::Skip);
}

#[test]
fn opa_drops_a_frame_that_waited_past_its_deadline_before_any_run() {
    let p = profile();
    let cands = cands(&p);
    let ctx = |frame: u64, waited_ms: f64| at_2ms(&cands, frame, waited_ms);
    for params in [OpaParams::default(), rounds()] {
        let mut s = new_opa(&p, params.clone());
        assert_eq!(
            s.decide(&ctx(0, 2.0)),
            Decision::Skip,
            "waited the whole deadline"
        );
        assert_eq!(s.decide(&ctx(1, 5.0)), Decision::Skip);
        // Any time left: the frame runs (the probe first, on a first frame).
        assert_eq!(s.decide(&ctx(2, 1.9)), Decision::Probe(p.probe));
        // Once a run was made on the frame, its answer is in hand: never dropped.
        s.observe(&Outcome {
            frame: 2,
            candidate: p.probe,
            phase: Phase::Probe,
            compute_ms: 0.3,
            latency_ms: 2.2,
            confidence: 0.9,
            entropy: 0.3,
            margin: 0.8,
            predicted: 1,
        });
        assert_ne!(s.decide(&ctx(2, 2.2)), Decision::Skip);
        // `skip-late = 0`: every frame runs.
        let mut s = new_opa(
            &p,
            OpaParams {
                skip_late: false,
                ..params
            },
        );
        assert_ne!(s.decide(&ctx(0, 5.0)), Decision::Skip);
    }
}

#[test]
fn ofa_static_chooses_once_from_the_idle_table() {
    let p = profile();
    let mut s = OfaStatic::new(OfaStaticParams::default(), &p).unwrap();
    let d = drive(&mut s, &p, 200, 2.0, load_step);
    assert!(d.served.iter().all(|&c| c == 4), "{:?}", &d.served[..5]);
    assert_eq!(d.probes, 0);
}

#[test]
fn dynamic_ofa_steps_down_under_load_and_back_up() {
    let p = profile();
    let mut s = DynamicOfa::new(DynamicOfaParams::default(), &p);
    let cond = |f: u64| Cond {
        content: 0,
        load: if (100..200).contains(&f) { 2 } else { 0 },
    };
    let d = drive(&mut s, &p, 300, 2.0, cond);
    assert_eq!(d.served[99], 4);
    // Candidate 4 at load 1 takes 4.2 ms: after 20 frames it steps down, rung by rung,
    // until the rolling mean fits: candidate 1 (1.5 ms).
    assert_eq!(d.served[199], 1);
    assert!(d.served[120..140].contains(&3), "steps one rung at a time");
    assert_eq!(d.served[299], 4, "climbs back when the load is gone");
}

#[test]
fn adaptivenet_walks_within_the_budget() {
    let p = profile();
    let mut s = AdaptiveNet::new(AdaptiveNetParams::default(), &p);
    let d = drive(&mut s, &p, 400, 2.0, load_step);
    assert_eq!(d.served[99], 4);
    // Under load the budget (1.6 ms) holds candidate 1 only; trials of candidate 2 fail
    // and are reverted.
    let tail = &d.served[300..];
    assert!(tail.iter().filter(|&&c| c == 1).count() >= 80, "{tail:?}");
    assert!(tail.iter().all(|&c| c <= 2));
}

#[test]
fn fixed_and_random_ignore_conditions() {
    let p = profile();
    let d = drive(&mut FixedLargest, &p, 50, 2.0, load_step);
    assert!(d.served.iter().all(|&c| c == 5));
    let d = drive(&mut FixedSmallest, &p, 50, 2.0, load_step);
    assert!(d.served.iter().all(|&c| c == 0));
    let d = drive(&mut RandomSelector::new(1, 10), &p, 50, 2.0, IDLE_FN);
    assert!(d.served.windows(2).filter(|w| w[0] != w[1]).count() <= 4);
}

const IDLE_FN: fn(u64) -> Cond = |_| IDLE;

#[test]
fn best_feasible_falls_back_to_the_fastest() {
    let est = [(0.9, 3.0), (0.8, 1.0), (0.95, 5.0)];
    assert_eq!(best_feasible(est.into_iter(), 3.0), 0);
    assert_eq!(best_feasible(est.into_iter(), 0.5), 1);
}

/// Drives `s` idle through scenes: frame f shows an object the probe is `conf(f)` sure of,
/// and every candidate answers `class(f)`; runs take the profile's idle median latency (so
/// OPA's load estimate is the idle level).
fn drive_scenes(
    s: &mut dyn Selector,
    p: &Profile,
    frames: u64,
    deadline_ms: f64,
    scene: impl Fn(u64) -> (f32, u16),
) -> Drive {
    drive_with(s, p, frames, deadline_ms, |f, c| {
        let (conf, class) = scene(f);
        Run {
            compute_ms: p.latency[c][0].p50_ms,
            confidence: conf as f64,
            entropy: 0.5,
            margin: 0.5,
            predicted: class,
        }
    })
}

#[test]
fn opa_per_frame_serves_what_the_probe_saw_on_each_scene() {
    // Scenes of 10 frames, alternately easy (probe 97 % sure) and hard (30 %), each a new
    // class. The synthetic per-frame table: top-1 = 1 - (1 - sure)(1.3 - 0.8 size). Idle,
    // 2 ms deadline (budget 1.8 ms; means 0.2, 0.5, ..., 1.7 ms, p95 1.6 x mean): on easy
    // scenes everyone is right and no candidate gains the 2 points `min-gain` asks over the
    // probe (candidate 1: 0.974 against 0.971), so the probe serves; on hard scenes
    // candidate 4 (0.5725 x 0.846) beats 5 (0.6625 x 0.68), 3 (0.4825 x 0.956) and the
    // probe (0.2125).
    let p = profile();
    let mut s = new_opa(&p, per_frame());
    let scene = |f: u64| {
        let k = f / 10;
        (if k.is_multiple_of(2) { 0.97 } else { 0.3 }, k as u16)
    };
    let d = drive_scenes(&mut s, &p, 100, 2.0, scene);
    for k in 0..10u64 {
        let want = if k.is_multiple_of(2) { 0 } else { 4 };
        // A scene's first frame is served on the previous reading; from the second on, the
        // new reading decides.
        for f in (10 * k + 1)..(10 * k + 10) {
            assert_eq!(d.served[f as usize], want, "frame {f}");
        }
    }
    // The probe serving reads every frame for free (a hard scene is seen on its first
    // frame); a probe run is needed when candidate 4's answer changes (the second frame of
    // each easy scene after a hard one) and on the very first frame.
    assert_eq!(d.probed, vec![0, 21, 41, 61, 81]);
    assert_eq!(d.probes, 5);
}

#[test]
fn opa_per_frame_trusts_a_reading_for_evidence_frames_at_most() {
    let p = profile();
    let mut s = new_opa(&p, per_frame());
    let d = drive_scenes(&mut s, &p, 100, 2.0, |_| (0.5, 3));
    assert_eq!(d.probed, vec![0, 20, 40, 60, 80]);
    // 52.5 % sure: candidate 3 (0.636 x 0.956) serves.
    assert!(d.served[1..].iter().all(|&c| c == 3), "{:?}", d.served);
    // A new object every frame: a changed answer sends the probe at most every `min-gap`.
    let mut s = new_opa(&p, per_frame());
    let d = drive_scenes(&mut s, &p, 100, 2.0, |f| (0.5, f as u16));
    assert_eq!(d.probed, (0..10).map(|k| 10 * k).collect::<Vec<u64>>());
    // Serving the probe itself reads every frame: no separate probe after the first.
    let mut s = new_opa(&p, per_frame());
    let d = drive_scenes(&mut s, &p, 100, 0.3, |_| (0.5, 3));
    assert!(d.served[1..].iter().all(|&c| c == 0), "{:?}", d.served);
    assert_eq!(d.probed, vec![0]);
}

#[test]
fn opa_per_frame_needs_the_profiles_per_frame_tables() {
    let mut p = profile();
    for row in &mut p.content {
        for s in row {
            s.probe_bin_top1.clear();
            s.probe_bin_images.clear();
            s.view_bin_top1.clear();
            s.view_bin_images.clear();
        }
    }
    let model = || fit(Variant::Linear, &p, &p.conditions()).unwrap();
    let e = Opa::new("opa", OpaParams::default(), &p, model())
        .err()
        .expect("refused");
    assert!(e.contains("evidence-frames"), "{e}");
    assert!(Opa::new("opa", rounds(), &p, model()).is_ok());
}

#[test]
fn opa_learns_where_served_runs_fall_in_their_predicted_latency() {
    // A hard scene (probe 30 % sure) idle at 2 ms (budget 0.9 x 2 ms). Live, every
    // candidate but the probe takes 1.7 x its calibrated median (the probe's runs are as
    // calibrated): candidate 4 takes 2.14 ms (late), 3 1.68 ms and 2 1.22 ms (in time), so
    // 3 is the right choice (the most accurate in time). The load estimate reads the slow
    // runs as load, under which 3 looks too slow: without the tail correction OPA settles
    // on 2; with it OPA learns that runs land lower in the loaded distributions than they
    // predict and settles on 3. (The load estimate's stretch states are left out: they would
    // read the slowdown of all but the probe as a stretch of the idle distributions, which
    // is another test's; so is the fallback, under which a late escalation costs nothing
    // and 3 is worth running in the whole time the probe leaves either way.)
    let p = profile();
    let run = |_: u64, c: usize| Run {
        compute_ms: p.latency[c][0].p50_ms * if c == 0 { 1.0 } else { 1.7 },
        confidence: 0.3,
        entropy: 0.5,
        margin: 0.5,
        predicted: 3,
    };
    let opa = |tail_window: u32| {
        let params = OpaParams {
            tail_window,
            idle_stretch: 0.0,
            fallback: false,
            ..OpaParams::default()
        };
        new_opa(&p, params)
    };
    let d = drive_with(&mut opa(0), &p, 100, 2.0, run);
    assert!(d.served[10..].iter().all(|&c| c == 2), "{:?}", d.served);
    let d = drive_with(&mut opa(64), &p, 100, 2.0, run);
    assert!(d.served[90..].iter().all(|&c| c == 3), "{:?}", d.served);
}

#[test]
fn opa_per_frame_reads_a_new_object_as_unread_while_min_gap_holds_the_probe() {
    // A hard object (probe 30 % sure: candidate 4 serves, see above) for 10 frames, then an
    // easy one of another class; `min-gap` 50 holds the probe back until frame 50. From the
    // frame after the changed answer, the hard reading is of the previous object: OPA serves
    // on every candidate's top-1 over all calibration images (0.575 + 0.27 x size: candidate
    // 3, 0.755 x 0.956, beats 2, 0.71 x 0.996, and 4, 0.80 x 0.846), until the probe reads
    // the easy object at frame 50 and serves it itself.
    let p = profile();
    let params = OpaParams {
        min_gap: 50,
        evidence_frames: 100,
        ..per_frame()
    };
    let mut s = new_opa(&p, params);
    let d = drive_scenes(&mut s, &p, 80, 2.0, |f| {
        if f < 10 { (0.3, 1) } else { (0.97, 2) }
    });
    // (Frame 0, the probe's: candidate 3 in the time the probe left, see the cascade's test.)
    assert_eq!(d.served[0], 3);
    assert!(d.served[1..11].iter().all(|&c| c == 4), "{:?}", d.served);
    assert!(d.served[11..50].iter().all(|&c| c == 3), "{:?}", d.served);
    assert!(d.served[50..].iter().all(|&c| c == 0), "{:?}", d.served);
    assert_eq!(d.probed, vec![0, 50]);
}

#[test]
fn opa_per_frame_reads_a_scenes_later_frames_on_the_other_view_table() {
    // A hard object (probe 30 % sure) for 40 frames. On the same image the larger candidates
    // gain (candidate 4 serves, see above); on another view of it, say the other-view
    // tables, none gains over the probe. OPA serves a larger candidate on the frame the probe
    // read (its answer in hand; candidate 3 in the 1.62 ms left, see the cascade's test), and
    // the probe on the later frames, each read from the one before.
    let mut p = profile();
    for k in 0..p.contents.len() {
        let probe = p.content[0][k].view_bin_top1.clone();
        for c in 0..p.candidates.len() {
            p.content[c][k].view_bin_top1 = probe.clone();
        }
    }
    let hard = |_| (0.3, 1);
    let mut s = new_opa(&p, per_frame());
    let d = drive_scenes(&mut s, &p, 40, 2.0, hard);
    assert_eq!(d.served[0], 3);
    assert!(d.served[1..].iter().all(|&c| c == 0), "{:?}", d.served);
    assert_eq!(d.probed, vec![0]);
    // `view-table = 0`, or a profile without the other-view tables: the same-image table
    // serves every frame.
    let same = OpaParams {
        view_table: false,
        ..per_frame()
    };
    let mut s = new_opa(&p, same);
    let d = drive_scenes(&mut s, &p, 40, 2.0, hard);
    // (The probe's frames, the first and every 20th: candidate 3 in the time it left.)
    for (f, &c) in d.served.iter().enumerate() {
        assert_eq!(c, if f % 20 == 0 { 3 } else { 4 }, "frame {f}");
    }
    for row in &mut p.content {
        for s in row {
            s.view_bin_top1.clear();
            s.view_bin_images.clear();
        }
    }
    let mut s = new_opa(&p, per_frame());
    assert_eq!(drive_scenes(&mut s, &p, 40, 2.0, hard).served, d.served);
}

#[test]
fn opa_per_frame_cascades_from_the_probe_to_a_larger_candidate_on_a_hard_frame() {
    // Easy objects (probe 97 % sure) alternate with hard ones (30 %) every 10 frames, each a
    // new class. Without the cascade, a hard object's first frame is served by the probe on
    // the easy reading of the object before; with it, the probe runs as a probe wherever it
    // is the pick, reads the hard frame, and candidate 3 serves it in the 1.62 ms left
    // (0.9 x 2 ms less the probe's 0.18: candidate 4 is likelier to be late there).
    let p = profile();
    let scene = |f: u64| {
        let k = f / 10;
        (if k.is_multiple_of(2) { 0.97 } else { 0.3 }, k as u16)
    };
    let plain = drive_scenes(&mut new_opa(&p, per_frame()), &p, 60, 2.0, scene);
    let cascade = OpaParams {
        cascade: true,
        ..per_frame()
    };
    let d = drive_scenes(&mut new_opa(&p, cascade), &p, 60, 2.0, scene);
    for k in [1u64, 3, 5] {
        let first = 10 * k as usize;
        assert_eq!(plain.served[first], 0, "frame {first} without the cascade");
        assert_eq!(d.served[first], 3, "frame {first} with it");
        assert!(d.probed.contains(&(first as u64)));
    }
    // Elsewhere the same choices: the probe on easy frames (each now read as a probe run,
    // whose answer serves), candidate 4 on the rest of a hard scene and on the first frame
    // of the easy one after it (read as hard).
    for f in (0..60).filter(|f| f % 20 != 10) {
        assert_eq!(d.served[f], plain.served[f], "frame {f}");
    }
    let easy: Vec<u64> = (1..60)
        .filter(|f| (f / 10) % 2 == 0 && f % 20 != 0)
        .collect();
    assert!(easy.iter().all(|f| d.probed.contains(f)), "{:?}", d.probed);
}

#[test]
fn opa_per_frame_serves_no_twin_of_the_probe_for_its_latency_table() {
    // Candidate 1 made a twin of the probe: one point more accurate in every bin, but
    // calibrated at 0.6 x the probe's latency (as noise in timing tables can have it; it has
    // more MACs, so it cannot really be faster). At a 0.25 ms deadline (budget 0.225 ms) on a
    // 50 %-sure object the probe finishes in time with p = 0.74 (median 0.18 ms), the twin
    // with p = 0.98: 0.36 x 0.98 against 0.35 x 0.74 would serve the twin, but a candidate
    // no smaller than the probe is served only for the top-1 it adds.
    let mut p = profile();
    for k in 0..p.contents.len() {
        let probe = p.content[0][k].probe_bin_top1.clone();
        p.content[1][k].probe_bin_top1 = probe.iter().map(|t| t + 0.01).collect();
        p.content[1][k].view_bin_top1 = probe.iter().map(|t| t + 0.01).collect();
    }
    for l in 0..p.loads.len() {
        let probe = p.latency[0][l];
        p.latency[1][l] = opa_predictors::profile::LatencyStats {
            mean_ms: 0.6 * probe.mean_ms,
            p50_ms: 0.6 * probe.p50_ms,
            p95_ms: 0.6 * probe.p95_ms,
        };
    }
    let mut s = new_opa(&p, per_frame());
    let d = drive_scenes(&mut s, &p, 40, 0.25, |_| (0.5, 3));
    assert!(d.served.iter().all(|&c| c == 0), "{:?}", d.served);
}

#[test]
fn opa_per_frame_escalates_from_the_probe_with_its_answer_in_hand() {
    // Easy (97 % sure) and hard (30 %) objects alternate every 10 frames, 2 ms deadline. With
    // the fallback a late larger candidate leaves the probe's answer to serve, so after the
    // probe (0.18 ms) candidates are weighed in the whole 1.82 ms left, by the top-1 they add
    // times their chance: candidate 4 (0.36 x 0.85) over 3 (0.27 x 0.96); 5 (p = 0.69) is
    // under `escalate-chance`. On a hard scene's later frames probing first and escalating
    // (0.2125 + 0.306) beats serving candidate 4 outright (0.5725 x 0.846): every hard frame
    // is read by the probe and escalated to candidate 4.
    let p = profile();
    let scene = |f: u64| {
        let k = f / 10;
        (if k.is_multiple_of(2) { 0.97 } else { 0.3 }, k as u16)
    };
    let fallback = OpaParams {
        cascade: true,
        fallback: true,
        ..per_frame()
    };
    let hard: Vec<u64> = (0..60).filter(|f| (f / 10) % 2 == 1).collect();
    let d = drive_scenes(&mut new_opa(&p, fallback.clone()), &p, 60, 2.0, scene);
    for &f in &hard {
        assert_eq!(d.served[f as usize], 4, "frame {f}");
        assert!(d.probed.contains(&f), "frame {f}");
    }
    assert_eq!((d.escalations, d.fell_back, d.late), (hard.len(), 0, 0));
    // The probe serves the easy frames (nothing gains 2 points there).
    for f in (0..60u64).filter(|f| (f / 10) % 2 == 0 && f % 20 != 0) {
        assert_eq!(d.served[f as usize], 0, "frame {f}");
    }
    // Larger candidates run 2.5 x slower than calibrated: escalations come late, and the
    // probe's answer serves those frames at the deadline; no frame is served late.
    let slow = |f: u64, c: usize| {
        let (conf, class) = scene(f);
        Run {
            compute_ms: p.latency[c][0].p50_ms * if c == 0 { 1.0 } else { 2.5 },
            confidence: conf as f64,
            entropy: 0.5,
            margin: 0.5,
            predicted: class,
        }
    };
    let d = drive_with(&mut new_opa(&p, fallback), &p, 60, 2.0, slow);
    assert!(d.fell_back > 0, "{} escalations", d.escalations);
    assert_eq!(d.late, 0);
    // Without the fallback the same slow runs serve late frames.
    let plain = OpaParams {
        cascade: true,
        ..per_frame()
    };
    let d = drive_with(&mut new_opa(&p, plain), &p, 60, 2.0, slow);
    assert!(d.late > 0);
}

#[test]
fn opa_per_frame_escalates_with_the_fallback_only_where_frames_do_not_queue() {
    // A hard scene (see above): after the probe on a frame that did not wait, candidate 4
    // runs as an escalation, weighed in the whole time left (a late one leaves the probe's
    // answer). On a frame that waited for the device, frames are queuing and a late run would
    // delay them: a larger candidate is then held against 0.9 x the deadline less the time
    // gone, and serves outright.
    let p = profile();
    let fallback = OpaParams {
        cascade: true,
        fallback: true,
        ..per_frame()
    };
    let cands = cands(&p);
    let after_probe = |waited_ms: f64| {
        let mut s = new_opa(&p, fallback.clone());
        let ctx = |waited_ms| at_2ms(&cands, 0, waited_ms);
        assert_eq!(s.decide(&ctx(waited_ms)), Decision::Probe(p.probe));
        let probe_ms = p.latency[p.probe][0].p50_ms;
        s.observe(&Outcome {
            frame: 0,
            candidate: p.probe,
            phase: Phase::Probe,
            compute_ms: probe_ms,
            latency_ms: waited_ms + probe_ms,
            confidence: 0.3,
            entropy: 0.5,
            margin: 0.5,
            predicted: 1,
        });
        s.decide(&ctx(waited_ms + probe_ms))
    };
    assert_eq!(after_probe(0.0), Decision::Escalate(4));
    let queued = after_probe(0.3);
    assert!(matches!(queued, Decision::Serve(c) if c != 4), "{queued:?}");
}

#[test]
fn opa_per_frame_counts_the_time_a_frame_waited_in_the_queue() {
    // A hard object read on the same-image table (see the other-view test): candidate 4
    // (1.4 ms idle mean) serves the frames after the probe's at a 2 ms deadline (budget 0.9
    // x 2 = 1.8 ms). A frame that waited 1.2 ms for the device behind earlier frames' runs
    // (frames coming faster than they are served) has 0.6 ms left: candidate 4 would be
    // late, so a smaller one serves it; the same frame without the wait gets candidate 4.
    let p = profile();
    let same = OpaParams {
        view_table: false,
        ..per_frame()
    };
    let cands = cands(&p);
    let decide_after = |waited_ms: f64| {
        let mut s = new_opa(&p, same.clone());
        let d = drive_scenes(&mut s, &p, 5, 2.0, |_| (0.3, 1));
        assert_eq!(d.served[1..], [4, 4, 4, 4]);
        let ctx = Context {
            frame: 5,
            arrival_s: 0.5,
            deadline_ms: 2.0,
            candidates: &cands,
            serving: Some(4),
            waited_ms,
        };
        match s.decide(&ctx) {
            Decision::Serve(c) => c,
            d => panic!("a frame after the probe's is served outright: {d:?}"),
        }
    };
    assert_eq!(decide_after(0.0), 4);
    let queued = decide_after(1.2);
    assert!(queued < 3, "served candidate {queued} with 0.6 ms left");
    // Waiting past the budget leaves the probe, the fastest.
    assert_eq!(decide_after(1.9), 0);
}

/// Two content conditions of the synthetic profile with unlike probe readings: under
/// `clean` half the images are easy (the probe 92.5 % sure, bin 18) and half hard (32.5 %,
/// bin 6), and on its hard ones no candidate beats the probe; under `noise@1` every image
/// is hard, and there every larger candidate gets 10 points more than the probe (0.60
/// against 0.50). Pooled, bin 6 holds 500 clean images and 100 noisy ones: a larger
/// candidate adds 10 x 100 / 600 = 1.7 points, under `min-gain`.
fn unlike_conditions() -> Profile {
    let mut p = synthetic(6, 1, &[0.0, 0.5, 1.0]);
    for (c, row) in p.content.iter_mut().enumerate() {
        for (k, s) in row.iter_mut().enumerate() {
            let mut images = vec![0; 20];
            let mut top1 = vec![f64::NAN; 20];
            let (easy, hard) = if k == 0 { (500, 500) } else { (0, 100) };
            images[18] = easy;
            images[6] = hard;
            top1[18] = 0.95;
            top1[6] = if k == 1 && c > 0 { 0.60 } else { 0.50 };
            s.images = easy + hard;
            s.probe_bin_images = images.clone();
            s.probe_bin_top1 = top1.clone();
            s.view_bin_images = images;
            s.view_bin_top1 = top1;
        }
    }
    p
}

#[test]
fn opa_per_frame_reads_a_persistent_condition_from_the_probes_readings() {
    // Hard objects (the probe 30 % sure) of a new class every 10 frames, at a 20 ms deadline
    // (everything fits): readings that all land in bin 6 are likelier under `noise@1` than
    // under `clean` (1 against 0.5 each), and after a few scenes OPA weighs the noisy
    // condition's tables and serves a larger candidate; pooling every condition alike
    // (`content-window = 0`) it serves the probe throughout. (A bin-6 reading is 1.84 times
    // likelier under `noise@1`; on a scene's later frames the lower quartile of the gain
    // over the weighed conditions counts, which takes three quarters of bin 6's weighed
    // images to be noisy: 100 R against 500 with R = 1.84^x at least 15, x = 4.4 readings'
    // worth, which seven readings of a window of 8 give, by frame 70; the tables are pooled
    // anew when the belief has moved far enough since they last were: by frame 90.)
    let p = unlike_conditions();
    let hard = |f: u64| (0.3, (f / 10) as u16);
    let opa = |content_window: u32| {
        new_opa(
            &p,
            OpaParams {
                content_window,
                ..per_frame()
            },
        )
    };
    let d = drive_scenes(&mut opa(8), &p, 200, 20.0, hard);
    assert!(d.served[..50].iter().all(|&c| c == 0), "{:?}", d.served);
    assert!(d.served[100..].iter().all(|&c| c > 0), "{:?}", d.served);
    let pooled = drive_scenes(&mut opa(0), &p, 200, 20.0, hard);
    assert!(pooled.served.iter().all(|&c| c == 0), "{:?}", pooled.served);
    // The same hard objects between easy ones (92 % sure) read as `clean`: the probe serves
    // the hard ones too.
    let mixed = |f: u64| {
        let k = f / 10;
        (if k.is_multiple_of(2) { 0.92 } else { 0.3 }, k as u16)
    };
    let d = drive_scenes(&mut opa(8), &p, 200, 20.0, mixed);
    assert!(d.served.iter().all(|&c| c == 0), "{:?}", d.served);
}
