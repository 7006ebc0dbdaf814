//! `opa stress`: the selectors on many random scenarios, not only the shipped ones. Each
//! scenario is drawn from a seeded space of streams (frame rate, content segments with
//! corruptions and class subsets) and CPU load phases, replayed from the calibration profile
//! at a sweep of deadlines; per deadline, a reference selector (OPA) is compared with every
//! other one scenario by scenario (paired: the same frames, load and deadline; the
//! comparison and OPA's goals over the scenarios are [`opa_reports::goals`]').
//!
//! The space (every draw independent, from the seed and the scenario's index):
//! - one frame rate for the stream, of a given list (default [`DEFAULT_FPS`]: 10, 15 or 30
//!   frames per second, where frames never queue; `opa stress --fps 60,120,300` for streams
//!   faster than the device at tight deadlines);
//! - 1 to 4 segments of 30, 60 or 90 s; each, with probability 0.7, one of the twelve
//!   corruption families at a severity of 1 to 5, and with probability 0.3 a subset of 2 to
//!   6 of the 10 classes;
//! - 1 to 3 load phases of 10, 30 or 60 s at a CPU load of 0, 0.1, 0.25, 0.5, 0.75 or 1.0
//!   (the last phase's load holds to the end of the stream);
//! - stream, load and selector seeds drawn from the same generator.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Frame rates a stream draws from when none are given.
pub const DEFAULT_FPS: [f64; 3] = [10.0, 15.0, 30.0];

/// Corruption families a segment may draw.
pub const CORRUPTIONS: [&str; 12] = [
    "gaussian-noise",
    "shot-noise",
    "impulse-noise",
    "defocus-blur",
    "gaussian-blur",
    "motion-blur",
    "brightness",
    "contrast",
    "fog",
    "pixelate",
    "jpeg",
    "occlusion",
];

/// The line-up when none is given: OPA (per frame, and in the paper's probing rounds), the
/// hindsight oracle and every implementable baseline, each with its defaults.
pub const DEFAULT_SELECTORS: &str = r#"[[selector]]
kind = "opa"

[[selector]]
kind = "opa"
name = "opa-rounds"
evidence-frames = 0

[[selector]]
kind = "exhaustive"

[[selector]]
kind = "oracle"

[[selector]]
kind = "ofa-static"

[[selector]]
kind = "dynamic-ofa"

[[selector]]
kind = "adaptivenet"

[[selector]]
kind = "fixed-largest"

[[selector]]
kind = "fixed-smallest"

[[selector]]
kind = "random"
"#;

/// The name of scenario `index` (from 0) of a stress sweep.
pub fn scenario_name(index: usize) -> String {
    format!("stress-{index:03}")
}

/// Scenario `index` of the sweep seeded `seed`, as scenario-file text, with `selectors`
/// (`[[selector]]` tables) appended; its frame rate one of `fps` (not empty, each in
/// [`crate::scenario::SEGMENT_FPS`]); its deadline is the least of `deadlines` (the
/// sweep's, named in a comment). The same seed, index and frame rates draw the same
/// scenario whatever the number of scenarios.
pub fn random_scenario(
    seed: u64,
    index: usize,
    fps: &[f64],
    deadlines: &[f64],
    selectors: &str,
) -> String {
    let mut r = ChaCha8Rng::seed_from_u64(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ index as u64);
    let fps = fps[r.random_range(0..fps.len())];
    let sweep: Vec<String> = deadlines.iter().map(f64::to_string).collect();
    let least = deadlines.iter().copied().fold(f64::INFINITY, f64::min);
    let mut t = format!(
        "# Drawn by `opa stress --seed {seed}` (scenario {index}), replayed at deadlines of {} ms\n\
         # (`opa replay FILE --deadline-ms {}`).\n\
         name = \"{}\"\n\n[requirement]\ndeadline-ms = {least:?}\n\n[seeds]\n",
        sweep.join(", "),
        sweep.join(","),
        scenario_name(index)
    );
    for key in ["stream", "load", "selector"] {
        t += &format!("{key} = {}\n", r.random_range(0..1_000_000u32));
    }
    for _ in 0..r.random_range(1..=4) {
        t += &format!(
            "\n[[stream.segment]]\nduration-s = {}\nfps = {fps}\n",
            [30, 60, 90][r.random_range(0..3)]
        );
        if r.random_bool(0.7) {
            t += &format!(
                "corruption = \"{}\"\nseverity = {}\n",
                CORRUPTIONS[r.random_range(0..CORRUPTIONS.len())],
                r.random_range(1..=5)
            );
        }
        if r.random_bool(0.3) {
            let mut classes: Vec<u32> = (0..10).collect();
            let k = r.random_range(2..=6);
            for i in 0..k {
                let j = r.random_range(i..10);
                classes.swap(i, j);
            }
            let mut subset = classes[..k].to_vec();
            subset.sort_unstable();
            t += &format!("class-mix = {{ subset = {subset:?} }}\n");
        }
    }
    for _ in 0..r.random_range(1..=3) {
        t += &format!(
            "\n[[workload.phase]]\nduration-s = {}\ncpu-load = {}\n",
            [10, 30, 60][r.random_range(0..3)],
            [0.0, 0.1, 0.25, 0.5, 0.75, 1.0][r.random_range(0..6)]
        );
    }
    t + "\n" + selectors
}

#[cfg(test)]
mod tests {
    use super::*;
    use opa_predictors::selectors::SelectorKind;
    use opa_reports::goals::Roles;

    #[test]
    fn the_same_seed_and_index_draw_the_same_scenario_and_others_differ() {
        let a = random_scenario(7, 3, &DEFAULT_FPS, &[1.0], DEFAULT_SELECTORS);
        assert_eq!(
            a,
            random_scenario(7, 3, &DEFAULT_FPS, &[1.0], DEFAULT_SELECTORS)
        );
        assert_ne!(
            a,
            random_scenario(7, 4, &DEFAULT_FPS, &[1.0], DEFAULT_SELECTORS)
        );
        assert_ne!(
            a,
            random_scenario(8, 3, &DEFAULT_FPS, &[1.0], DEFAULT_SELECTORS)
        );
        assert!(a.contains("name = \"stress-003\""));
    }

    #[test]
    fn drawn_scenarios_are_valid_and_long_enough_to_judge() {
        for i in 0..40 {
            let text = random_scenario(1, i, &DEFAULT_FPS, &[4.0, 0.5], DEFAULT_SELECTORS);
            let sc = crate::scenario::parse("drawn.toml", &text, std::path::Path::new("."))
                .unwrap_or_else(|e| panic!("{e}\n{text}"));
            assert_eq!(sc.selectors.len(), 10);
            assert_eq!(sc.deadline_ms, 0.5);
            let crate::scenario::StreamSource::Synthetic(spec) = &sc.stream else {
                panic!("a synthetic stream")
            };
            let segments = &spec.segments;
            let secs: f64 = segments.iter().map(|s| s.duration_s).sum();
            let fps = segments[0].fps;
            // At least 30 s at 10 frames per second: over the 100 frames a VALID run needs.
            assert!(
                (30.0..=360.0).contains(&secs) && secs * fps >= 300.0,
                "{text}"
            );
            assert!(segments.iter().all(|s| s.fps == fps));
            assert!(DEFAULT_FPS.contains(&fps), "{fps}");
        }
    }

    #[test]
    fn streams_draw_their_frame_rate_from_the_list_given_and_nothing_else_changes() {
        let mut seen = Vec::new();
        for i in 0..30 {
            let text = random_scenario(5, i, &[60.0, 7.5, 300.0], &[1.0], DEFAULT_SELECTORS);
            let sc = crate::scenario::parse("drawn.toml", &text, std::path::Path::new("."))
                .unwrap_or_else(|e| panic!("{e}\n{text}"));
            let crate::scenario::StreamSource::Synthetic(spec) = &sc.stream else {
                panic!("a synthetic stream")
            };
            let fps = spec.segments[0].fps;
            assert!([60.0, 7.5, 300.0].contains(&fps), "{fps}");
            assert!(spec.segments.iter().all(|s| s.fps == fps));
            seen.push(fps);
            // The same draws but the rate: one rate listed gives the same scenario at it.
            let one = random_scenario(5, i, &[fps], &[1.0], DEFAULT_SELECTORS);
            let fixed = |t: &str| t.replace(&format!("fps = {fps}\n"), "fps = ?\n");
            let d = random_scenario(5, i, &DEFAULT_FPS, &[1.0], DEFAULT_SELECTORS);
            let other = d
                .lines()
                .find_map(|l| l.strip_prefix("fps = "))
                .expect("a frame rate")
                .to_string();
            assert_eq!(
                fixed(&one),
                d.replace(&format!("fps = {other}\n"), "fps = ?\n")
            );
        }
        assert!([60.0, 7.5, 300.0].iter().all(|f| seen.contains(f)));
    }

    #[test]
    fn a_reference_is_held_against_the_oracle_exhaustive_search_and_other_kinds() {
        let text = random_scenario(1, 0, &DEFAULT_FPS, &[1.0], DEFAULT_SELECTORS);
        let sc = crate::scenario::parse("drawn.toml", &text, std::path::Path::new(".")).unwrap();
        let lineup: Vec<(&str, SelectorKind)> = sc
            .selectors
            .iter()
            .map(|s| (s.name.as_str(), s.kind))
            .collect();
        let r = Roles::of(&lineup, "opa").unwrap();
        assert_eq!(
            (r.oracle, r.exhaustive),
            (Some("oracle"), Some("exhaustive"))
        );
        // Not the oracle, nor OPA's own ablation (`opa-rounds`, of kind `opa`).
        assert_eq!(
            r.rivals,
            [
                "exhaustive",
                "ofa-static",
                "dynamic-ofa",
                "adaptivenet",
                "fixed-largest",
                "fixed-smallest",
                "random"
            ]
        );
        // Another reference's rivals are the kinds other than its own (OPA's included).
        let r = Roles::of(&lineup, "adaptivenet").unwrap();
        assert!(r.rivals.contains(&"opa") && r.rivals.contains(&"opa-rounds"));
        assert!(!r.rivals.contains(&"adaptivenet"));
        assert!(Roles::of(&lineup, "nobody").is_none());
    }
}
