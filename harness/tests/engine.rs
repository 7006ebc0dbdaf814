//! The replay engine on a fake target with known compute times, and the load injector.

use opa_harness::engine::{EngineError, FrameSlot, Inference, Replayer, Target, replay};
use opa_harness::load::CpuInjector;
use opa_predictors::{CandidateInfo, Context, Decision, Phase, Selector};
use opa_reports::{NO_ANSWER, Sample};
use std::sync::atomic::AtomicBool;

/// Compute time = 10 ms × (candidate + 1); predicts class 1 always.
struct Fake;

impl Target for Fake {
    fn run(&mut self, candidate: usize, _frame: usize, _start_s: f64) -> Result<Inference, String> {
        Ok(Inference {
            compute_ms: 10.0 * (candidate as f64 + 1.0),
            predicted: 1,
            confidence: 0.9,
            entropy: 0.1,
            margin: 0.8,
        })
    }
}

/// Probes candidate 0 on frame 1, then serves candidate 2 on frames 0..=1 and candidate 0 after.
struct Scripted;

impl Selector for Scripted {
    fn name(&self) -> &str {
        "scripted"
    }
    fn decide(&mut self, ctx: &Context) -> Decision {
        match (ctx.frame, ctx.serving) {
            (1, Some(2)) => Decision::Probe(0),
            (0, _) => Decision::Serve(2),
            (1, Some(0)) => Decision::Serve(2),
            _ => Decision::Serve(0),
        }
    }
}

/// The index of candidate `id` of [`cands`] (`c2` → 2).
fn index(id: &str) -> usize {
    id.strip_prefix('c')
        .and_then(|i| i.parse().ok())
        .unwrap_or_else(|| panic!("not a candidate of cands: {id:?}"))
}

fn cands(n: usize) -> Vec<CandidateInfo> {
    (0..n)
        .map(|i| CandidateInfo {
            id: format!("c{i}"),
            macs: i as u64 + 1,
            calibration_top1: 0.9,
        })
        .collect()
}

#[test]
fn timeline_matches_hand_computed_latencies_queueing_and_misses() {
    // Frames every 25 ms; deadline 35 ms.
    let frames: Vec<FrameSlot> = (0..4)
        .map(|i| FrameSlot {
            arrival_s: 0.025 * i as f64,
            label: if i == 3 { 0 } else { 1 },
            condition: "clean".into(),
        })
        .collect();
    struct Once(bool);
    impl Selector for Once {
        fn name(&self) -> &str {
            "once"
        }
        fn decide(&mut self, ctx: &Context) -> Decision {
            // frame 0: serve c2 (30 ms); frame 1: probe c0 (10 ms) then serve c2; frames 2, 3: serve c0.
            if ctx.frame == 1 && !self.0 {
                self.0 = true;
                return Decision::Probe(0);
            }
            Decision::Serve(if ctx.frame < 2 { 2 } else { 0 })
        }
    }
    let rows = replay(
        &frames,
        &cands(3),
        35.0,
        &mut Fake,
        &mut Once(false),
        &AtomicBool::new(false),
        &mut |_| {},
    )
    .unwrap()
    .rows;
    // frame 0: arrives 0, runs 0-30 ms: latency 30, met.
    // frame 1: arrives 25, probe starts 30 (queued) ends 40; serve 40-70: latency 45, missed.
    // frame 2: arrives 50, starts 70, ends 80: latency 30, met.
    // frame 3: arrives 75, starts 80, ends 90: latency 15, met, but wrong (label 0).
    let got: Vec<(Phase, usize, f64, f64, bool, bool)> = rows
        .iter()
        .map(|r| {
            (
                r.phase,
                index(&r.candidate),
                (r.start_s * 1e3).round(),
                (r.latency_ms * 1e3).round() / 1e3,
                r.deadline_met,
                r.correct,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (Phase::Serve, 2, 0.0, 30.0, true, true),
            (Phase::Probe, 0, 30.0, 15.0, false, true),
            (Phase::Serve, 2, 40.0, 45.0, false, true),
            (Phase::Serve, 0, 70.0, 30.0, true, true),
            (Phase::Serve, 0, 80.0, 15.0, true, false),
        ]
    );
}

#[test]
fn serving_the_candidate_that_just_probed_the_frame_reuses_its_run() {
    // Frame 0: probe c1 (20 ms), then serve c1: the probe's run serves, nothing runs again.
    // Frame 1 (arrives 50 ms): serve c1, a run of its own.
    struct ProbeThenServe(bool);
    impl Selector for ProbeThenServe {
        fn name(&self) -> &str {
            "probe-then-serve"
        }
        fn decide(&mut self, _: &Context) -> Decision {
            if std::mem::replace(&mut self.0, true) {
                Decision::Serve(1)
            } else {
                Decision::Probe(1)
            }
        }
    }
    struct Counting(usize);
    impl Target for Counting {
        fn run(&mut self, c: usize, f: usize, s: f64) -> Result<Inference, String> {
            self.0 += 1;
            Fake.run(c, f, s)
        }
    }
    let frames: Vec<FrameSlot> = (0..2)
        .map(|i| FrameSlot {
            arrival_s: 0.05 * i as f64,
            label: 1,
            condition: "clean".into(),
        })
        .collect();
    let mut target = Counting(0);
    let mut sel = ProbeThenServe(false);
    let rows = replay(
        &frames,
        &cands(2),
        25.0,
        &mut target,
        &mut sel,
        &AtomicBool::new(false),
        &mut |_| {},
    )
    .unwrap()
    .rows;
    assert_eq!(
        target.0, 2,
        "two runs: the probe (which served frame 0) and frame 1's"
    );
    let got: Vec<(Phase, f64, f64, bool)> = rows
        .iter()
        .map(|r| {
            (
                r.phase,
                (r.start_s * 1e3).round(),
                (r.latency_ms * 1e3).round() / 1e3,
                r.deadline_met,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (Phase::Probe, 0.0, 20.0, false),
            (Phase::Serve, 0.0, 20.0, true),
            (Phase::Serve, 50.0, 20.0, true),
        ]
    );
}

#[test]
fn a_raised_stop_flag_ends_the_replay_incomplete() {
    let frames: Vec<FrameSlot> = (0..3)
        .map(|i| FrameSlot {
            arrival_s: i as f64,
            label: 1,
            condition: "clean".into(),
        })
        .collect();
    let stop = AtomicBool::new(false);
    let mut seen = 0;
    let r = replay(
        &frames,
        &cands(1),
        50.0,
        &mut Fake,
        &mut opa_predictors::selectors::FixedLargest,
        &stop,
        &mut |_| {
            seen += 1;
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
        },
    )
    .unwrap();
    assert!(!r.complete);
    assert_eq!((r.rows.len(), seen), (1, 1));
}

/// Serves the slowest candidate until a latency goes past the deadline, then the fastest
/// for 3 frames, probing candidate 1 every 5th frame: its choices depend on what it saw.
struct Reactive {
    cool: u32,
    probed: Option<u64>,
}

impl Selector for Reactive {
    fn name(&self) -> &str {
        "reactive"
    }
    fn decide(&mut self, ctx: &Context) -> Decision {
        if ctx.frame % 5 == 4 && self.probed != Some(ctx.frame) {
            self.probed = Some(ctx.frame);
            return Decision::Probe(1);
        }
        if self.cool > 0 {
            self.cool -= 1;
            return Decision::Serve(0);
        }
        Decision::Serve(2)
    }
    fn observe(&mut self, o: &opa_predictors::Outcome) {
        if o.phase == Phase::Serve && o.latency_ms > 35.0 {
            self.cool = 3;
        }
    }
}

#[test]
fn a_replay_played_in_blocks_equals_one_played_whole() {
    // Frames every 25 ms, runs of 10-30 ms: the queue carries over block ends.
    let frames: Vec<FrameSlot> = (0..40)
        .map(|i| FrameSlot {
            arrival_s: 0.025 * i as f64,
            label: (i % 2) as u16,
            condition: "clean".into(),
        })
        .collect();
    let stop = AtomicBool::new(false);
    let whole = replay(
        &frames,
        &cands(3),
        35.0,
        &mut Fake,
        &mut Reactive {
            cool: 0,
            probed: None,
        },
        &stop,
        &mut |_| {},
    )
    .unwrap();
    assert!(whole.complete);
    assert!(
        whole.rows.iter().any(|r| r.start_s > r.arrival_s),
        "queueing"
    );
    assert!(whole.rows.iter().any(|r| r.phase == Phase::Probe));
    for block in [1, 3, 7, 40, 100] {
        let mut r = Replayer::new("reactive", 35.0);
        let mut sel = Reactive {
            cool: 0,
            probed: None,
        };
        let mut seen = 0;
        let mut until = 0;
        while r.next < frames.len() {
            until += block;
            let done = r
                .advance(
                    &frames,
                    until,
                    &cands(3),
                    &mut Fake,
                    &mut sel,
                    &stop,
                    &mut |_| seen += 1,
                )
                .unwrap();
            assert!(done);
            assert_eq!(r.next, until.min(frames.len()));
        }
        assert_eq!(r.rows, whole.rows, "blocks of {block}");
        assert_eq!(seen, whole.rows.len());
    }
}

#[test]
fn selectors_that_misbehave_are_stopped() {
    struct Greedy;
    impl Selector for Greedy {
        fn name(&self) -> &str {
            "greedy"
        }
        fn decide(&mut self, _: &Context) -> Decision {
            Decision::Probe(0)
        }
    }
    let frames = vec![FrameSlot {
        arrival_s: 0.0,
        label: 1,
        condition: "clean".into(),
    }];
    assert!(matches!(
        replay(
            &frames,
            &cands(2),
            10.0,
            &mut Fake,
            &mut Greedy,
            &AtomicBool::new(false),
            &mut |_| {}
        ),
        Err(EngineError::Selector(_))
    ));
    let mut s = Scripted;
    assert!(
        replay(
            &frames,
            &cands(2),
            10.0,
            &mut Fake,
            &mut s,
            &AtomicBool::new(false),
            &mut |_| {}
        )
        .is_err(),
        "candidate 2 of 2 is out of range"
    );
}

fn load_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter(|t| {
            std::fs::read_to_string(t.as_ref().unwrap().path().join("comm"))
                .is_ok_and(|c| c.starts_with("opa-load"))
        })
        .count()
}

#[test]
fn injector_threads_stop_on_drop_and_on_panic() {
    {
        let inj = CpuInjector::start(2, 1);
        inj.set_load(0.5);
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert_eq!(load_threads(), 2 * opa_harness::load::WORKERS_PER_CORE);
        let a = inj.achieved();
        assert!(a > 0.2 && a < 0.8, "achieved {a}");
    }
    assert_eq!(load_threads(), 0);
    let r = std::panic::catch_unwind(|| {
        let _inj = CpuInjector::start(1, 2);
        panic!("a run failing mid-way");
    });
    assert!(r.is_err());
    assert_eq!(load_threads(), 0, "a load thread outlived the run");
}

#[test]
fn injector_tracks_each_target_it_is_set_to() {
    let inj = CpuInjector::start(1, 7);
    for target in [0.25, 0.75, 0.0, 1.0] {
        inj.set_load(target);
        std::thread::sleep(std::time::Duration::from_millis(20));
        let mark = inj.achieved_since_reset();
        std::thread::sleep(std::time::Duration::from_millis(300));
        let a = inj.achieved_since(mark);
        assert!((a - target).abs() < 0.12, "target {target}, achieved {a}");
    }
}

#[test]
fn gpu_injector_thread_stops_on_drop_and_follows_its_duty_cycle() {
    let threads = || {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter(|t| {
                std::fs::read_to_string(t.as_ref().unwrap().path().join("comm"))
                    .is_ok_and(|c| c.starts_with("opa-gpu-load"))
            })
            .count()
    };
    {
        // On a CPU device with small matrices: the same loop a GPU runs.
        let inj = opa_harness::load::GpuInjector::start(burn::tensor::Device::flex(), 32);
        inj.set_load(0.5);
        std::thread::sleep(std::time::Duration::from_millis(50));
        let mark = inj.mark();
        std::thread::sleep(std::time::Duration::from_millis(400));
        let a = inj.achieved_since(mark);
        assert!(a > 0.3 && a < 0.7, "achieved {a}");
        assert_eq!(threads(), 1);
    }
    assert_eq!(threads(), 0, "the GPU load thread outlived its injector");
}

/// Plays a per-frame script of decisions (the last entry of a frame's list repeats), and
/// records what it was told.
struct Script {
    steps: Vec<Vec<Decision>>,
    at: (u64, usize),
    seen: Vec<opa_predictors::Outcome>,
}

impl Script {
    fn new(steps: Vec<Vec<Decision>>) -> Self {
        Script {
            steps,
            at: (u64::MAX, 0),
            seen: Vec::new(),
        }
    }
}

impl Selector for Script {
    fn name(&self) -> &str {
        "script"
    }
    fn decide(&mut self, ctx: &Context) -> Decision {
        if self.at.0 != ctx.frame {
            self.at = (ctx.frame, 0);
        }
        let s = &self.steps[ctx.frame as usize];
        let d = s[self.at.1.min(s.len() - 1)];
        self.at.1 += 1;
        d
    }
    fn observe(&mut self, o: &opa_predictors::Outcome) {
        self.seen.push(*o);
    }
}

/// (phase, candidate, start ms, finish ms, latency ms, deadline met) of every row.
fn timeline(rows: &[Sample]) -> Vec<(Phase, usize, f64, f64, f64, bool)> {
    let ms = |s: f64| (s * 1e6).round() / 1e3;
    rows.iter()
        .map(|r| {
            (
                r.phase,
                index(&r.candidate),
                ms(r.start_s),
                ms(r.finish_s),
                (r.latency_ms * 1e3).round() / 1e3,
                r.deadline_met,
            )
        })
        .collect()
}

fn frames_every(step_s: f64, n: usize) -> Vec<FrameSlot> {
    (0..n)
        .map(|i| FrameSlot {
            arrival_s: step_s * i as f64,
            label: 1,
            condition: "clean".into(),
        })
        .collect()
}

/// The rows of `sel` played over `frames` on `n` [`Fake`] candidates.
fn play(frames: &[FrameSlot], n: usize, deadline_ms: f64, sel: &mut Script) -> Vec<Sample> {
    replay(
        frames,
        &cands(n),
        deadline_ms,
        &mut Fake,
        sel,
        &AtomicBool::new(false),
        &mut |_| {},
    )
    .unwrap()
    .rows
}

#[test]
fn a_skipped_frame_runs_nothing_and_is_missed() {
    // Frames every 10 ms, deadline 15 ms. Frame 0: c1 (20 ms) runs 0-20. Frame 1 waits 10
    // ms, c0 runs 20-30 (late). Frame 2 (arrives 20, the device busy until 30) is dropped:
    // no run, no answer. Frame 3 arrives at 30 to an idle device: c0 runs 30-40, on time.
    let frames = frames_every(0.01, 4);
    let mut sel = Script::new(vec![
        vec![Decision::Serve(1)],
        vec![Decision::Serve(0)],
        vec![Decision::Skip],
        vec![Decision::Serve(0)],
    ]);
    let rows = play(&frames, 2, 15.0, &mut sel);
    let ms = |s: f64| (s * 1e6).round() / 1e3;
    let got: Vec<_> = rows
        .iter()
        .map(|r| {
            (
                r.frame,
                r.phase,
                r.candidate.as_str(),
                ms(r.start_s),
                ms(r.finish_s),
                r.compute_ms,
                r.predicted,
                r.correct,
                r.deadline_met,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (0, Phase::Serve, "c1", 0.0, 20.0, 20.0, 1, true, false),
            (1, Phase::Serve, "c0", 20.0, 30.0, 10.0, 1, true, false),
            (2, Phase::Skip, "", 30.0, 30.0, 0.0, NO_ANSWER, false, false),
            (3, Phase::Serve, "c0", 30.0, 40.0, 10.0, 1, true, true),
        ]
    );
    assert!((rows[2].latency_ms - 10.0).abs() < 1e-9);
    // The selector is told of runs only: nothing of frame 2.
    let told: Vec<u64> = sel.seen.iter().map(|o| o.frame).collect();
    assert_eq!(told, vec![0, 1, 3]);
}

#[test]
fn an_escalation_serves_when_on_time_and_falls_back_at_the_deadline_when_late() {
    // Deadline 35 ms, frames every 100 ms. Frame 0: probe c0 (10 ms), escalate to c1 (20 ms,
    // done at 30: on time, it serves). Frame 1: probe c0, escalate to c2 (30 ms, done at 40:
    // late): c2's run is a probe, c0's answer serves at the deadline (35 ms), and the device
    // stays busy until c2 ends. Frame 2: escalate with nothing in hand = serve.
    let frames = frames_every(0.1, 3);
    let mut sel = Script::new(vec![
        vec![Decision::Probe(0), Decision::Escalate(1)],
        vec![Decision::Probe(0), Decision::Escalate(2)],
        vec![Decision::Escalate(1)],
    ]);
    let rows = play(&frames, 3, 35.0, &mut sel);
    assert_eq!(
        timeline(&rows),
        vec![
            (Phase::Probe, 0, 0.0, 10.0, 10.0, false),
            (Phase::Serve, 1, 10.0, 30.0, 30.0, true),
            (Phase::Probe, 0, 100.0, 110.0, 10.0, false),
            (Phase::Probe, 2, 110.0, 140.0, 40.0, false),
            (Phase::Serve, 0, 100.0, 135.0, 35.0, true),
            (Phase::Serve, 1, 200.0, 220.0, 20.0, true),
        ]
    );
    // The selector is told the late run as a probe, then the fallback's serve.
    let told: Vec<(Phase, usize)> = sel.seen.iter().map(|o| (o.phase, o.candidate)).collect();
    assert_eq!(
        told,
        vec![
            (Phase::Probe, 0),
            (Phase::Serve, 1),
            (Phase::Probe, 0),
            (Phase::Probe, 2),
            (Phase::Serve, 0),
            (Phase::Serve, 1),
        ]
    );
}

#[test]
fn a_late_escalation_keeps_the_device_busy_and_a_late_fallback_serves_when_it_finished() {
    // Frames every 35 ms, deadline 15 ms. Frame 0: probe c0 (10 ms), escalate to c2 (30 ms,
    // 10-40: late): c0's answer at 15 ms. Frame 1 arrives at 35 but starts at 40: probe c0
    // ends at 50 (latency 15, just on time), escalate to c1 (20 ms, to 70: late): c0's
    // answer at the deadline, 50 ms. Frame 2 (70): probe c0 from 70 to 80... its own answer
    // at 10 ms. The fallback is never served before its own run finished.
    let frames = frames_every(0.035, 3);
    let mut sel = Script::new(vec![
        vec![Decision::Probe(0), Decision::Escalate(2)],
        vec![Decision::Probe(0), Decision::Escalate(1)],
        vec![Decision::Probe(0), Decision::Serve(0)],
    ]);
    let rows = play(&frames, 3, 15.0, &mut sel);
    assert_eq!(
        timeline(&rows),
        vec![
            (Phase::Probe, 0, 0.0, 10.0, 10.0, false),
            (Phase::Probe, 2, 10.0, 40.0, 40.0, false),
            (Phase::Serve, 0, 0.0, 15.0, 15.0, true),
            (Phase::Probe, 0, 40.0, 50.0, 15.0, false),
            (Phase::Probe, 1, 50.0, 70.0, 35.0, false),
            (Phase::Serve, 0, 40.0, 50.0, 15.0, true),
            (Phase::Probe, 0, 70.0, 80.0, 10.0, false),
            (Phase::Serve, 0, 70.0, 80.0, 10.0, true),
        ]
    );
    // A fallback whose own run was late is served when it finished.
    let frames = frames_every(0.1, 1);
    let mut sel = Script::new(vec![vec![Decision::Probe(1), Decision::Escalate(2)]]);
    let rows = play(&frames, 3, 15.0, &mut sel);
    assert_eq!(
        timeline(&rows)[2],
        (Phase::Serve, 1, 0.0, 20.0, 20.0, false)
    );
}

#[test]
fn a_probe_run_served_after_later_runs_is_served_when_the_last_one_finished() {
    // Exhaustive-style: probe c0 (10 ms) and c1 (20 ms), then serve c0: its answer is
    // chosen only after c1's run, at 30 ms (deadline 25: late), not at 10.
    let frames = frames_every(0.1, 1);
    let mut sel = Script::new(vec![vec![
        Decision::Probe(0),
        Decision::Probe(1),
        Decision::Serve(0),
    ]]);
    let rows = play(&frames, 2, 25.0, &mut sel);
    assert_eq!(
        timeline(&rows),
        vec![
            (Phase::Probe, 0, 0.0, 10.0, 10.0, false),
            (Phase::Probe, 1, 10.0, 30.0, 30.0, false),
            (Phase::Serve, 0, 0.0, 30.0, 30.0, false),
        ]
    );
}

#[test]
fn a_frame_is_told_how_long_it_waited_for_the_device() {
    // Frames every 1 ms, each run 2.5 ms: frame 0 finds the device idle, every later one
    // waits for the runs before it; on frame 2's second decision (after its probe) the wait
    // runs to the probe's end, and serving the probe's run takes no more device time.
    struct Waits(Vec<(u64, f64)>);
    impl Selector for Waits {
        fn name(&self) -> &str {
            "waits"
        }
        fn decide(&mut self, ctx: &Context) -> Decision {
            self.0.push((ctx.frame, ctx.waited_ms));
            if ctx.frame == 2 && self.0.iter().filter(|w| w.0 == 2).count() == 1 {
                Decision::Probe(0)
            } else {
                Decision::Serve(0)
            }
        }
    }
    struct Slow;
    impl Target for Slow {
        fn run(&mut self, _: usize, _: usize, _: f64) -> Result<Inference, String> {
            Ok(Inference {
                compute_ms: 2.5,
                predicted: 0,
                confidence: 1.0,
                entropy: 0.0,
                margin: 1.0,
            })
        }
    }
    let frames = frames_every(0.001, 4);
    let mut s = Waits(Vec::new());
    let stop = AtomicBool::new(false);
    replay(
        &frames,
        &cands(1),
        100.0,
        &mut Slow,
        &mut s,
        &stop,
        &mut |_| {},
    )
    .unwrap();
    let expect = [(0, 0.0), (1, 1.5), (2, 3.0), (2, 5.5), (3, 4.5)];
    assert_eq!(s.0.len(), expect.len(), "{:?}", s.0);
    for ((f, w), (ef, ew)) in s.0.iter().zip(expect) {
        assert_eq!(*f, ef);
        assert!((w - ew).abs() < 1e-9, "frame {f} waited {w} ms, not {ew}");
    }
}
