//! Scenario files: every shipped file parses; validation reports every problem with its line.

use opa_harness::backend::Backend;
use opa_harness::scenario::{self, Interpolation, StreamSource, parse, parse_trace};
use std::path::Path;

fn scenarios_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios")
}

#[test]
fn every_shipped_scenario_parses() {
    let mut n = 0;
    for e in std::fs::read_dir(scenarios_dir()).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            let s = scenario::load(&p).unwrap_or_else(|e| panic!("{}:\n{e}", p.display()));
            assert!(
                !s.selectors.is_empty() && s.deadline_ms > 0.0,
                "{}",
                p.display()
            );
            n += 1;
        }
    }
    assert!(n >= 5, "expected the five shipped scenarios, found {n}");
}

#[test]
fn quickstart_resolves_to_the_documented_defaults() {
    let s = scenario::load(&scenarios_dir().join("quickstart.toml")).unwrap();
    assert_eq!(
        (s.backend, s.threads, s.slowdown, s.deadline_ms),
        (Backend::Flex, 0, 1.0, 1.0)
    );
    assert_eq!((s.seed_stream, s.seed_load, s.seed_selector), (1, 2, 3));
    let StreamSource::Synthetic(spec) = &s.stream else {
        panic!("synthetic expected")
    };
    assert_eq!(spec.segments.iter().map(|g| g.frames()).sum::<usize>(), 300);
    assert_eq!(spec.segments[1].jitter_px, 1);
    assert_eq!(s.workload.at(14.9).cpu_load, 0.0);
    assert_eq!(s.workload.at(15.0).cpu_load, 0.5);
    assert_eq!(
        s.selectors
            .iter()
            .map(|x| x.name.as_str())
            .collect::<Vec<_>>(),
        [
            "opa",
            "exhaustive",
            "oracle",
            "ofa-static",
            "dynamic-ofa",
            "adaptivenet",
            "fixed-largest",
            "fixed-smallest",
            "random"
        ]
    );
    assert!(
        s.checkpoint
            .ends_with("supernet/checkpoints/fashion-mnist/supernet.opack")
    );
}

#[test]
fn validation_reports_every_problem_with_file_line_and_key() {
    let src = r#"name = "bad"

[requirement]
deadline-ms = 0

[[stream.segment]]
duration-s = 10
fps = 10
corruption = "fog"

[[workload.phase]]
duration-s = 5
cpu-load = 0.2

[[workload.phase]]
duration-s = 5
cpu-load = 1.7

[[selector]]
kind = "random"
switch-every = 0
"#;
    let errs = parse("quickstart.toml", src, Path::new(".")).unwrap_err();
    let lines: Vec<String> = errs.0.iter().map(|p| p.to_string()).collect();
    assert_eq!(
        lines,
        [
            "quickstart.toml:4:15: requirement.deadline-ms = 0: must be a positive number",
            "quickstart.toml:9:14: stream.segment[0].corruption: a corrupted segment needs stream.segment[0].severity",
            "quickstart.toml:17:12: workload.phase[1].cpu-load = 1.7: must be within 0..=1",
            "quickstart.toml:21:16: selector[0].switch-every = 0: must be within 1..=1000000",
        ]
    );
}

#[test]
fn unknown_keys_are_rejected_with_their_position() {
    let errs = parse(
        "x.toml",
        "name = \"x\"\n[requirement]\ndeadline-ms = 5\ndeadline = 3\n",
        Path::new("."),
    )
    .unwrap_err();
    let msg = errs.0[0].to_string();
    assert!(
        msg.starts_with("x.toml:4:1: unknown field `deadline`"),
        "{msg}"
    );
}

#[test]
fn every_unknown_key_and_every_syntax_error_is_reported_at_once() {
    let src = "name = \"x\"\nnmae = 1\n[requirement]\ndeadline-ms = 5\ndeadline = 3\n\
               [[stream.segment]]\nduration-s = 5\nfps = 10\nfsp = 3\n";
    let errs = parse("x.toml", src, Path::new(".")).unwrap_err();
    let msgs: Vec<String> = errs.0.iter().map(|p| p.to_string()).collect();
    // The three unknown keys, and what validation finds in the rest (no selector).
    assert_eq!(msgs.len(), 4, "{msgs:#?}");
    assert!(msgs[3].contains("at least one [[selector]]"), "{msgs:#?}");
    for (at, key) in [
        ("x.toml:2:1", "nmae"),
        ("x.toml:5:1", "deadline"),
        ("x.toml:9:1", "fsp"),
    ] {
        assert!(
            msgs.iter()
                .any(|m| m.starts_with(&format!("{at}: unknown field `{key}`"))),
            "{key} at {at}: {msgs:#?}"
        );
    }
    // Two syntax errors on two lines: both, each with its position.
    let errs = parse("y.toml", "name = \"x\"\na = = 1\nb = [1,\n", Path::new(".")).unwrap_err();
    let msgs: Vec<String> = errs.0.iter().map(|p| p.to_string()).collect();
    assert!(msgs.len() >= 2, "{msgs:#?}");
    assert!(msgs.iter().any(|m| m.starts_with("y.toml:2:")), "{msgs:#?}");
    assert!(msgs.iter().any(|m| m.starts_with("y.toml:3:")), "{msgs:#?}");
    // Deep nesting is a located error, not a crash.
    let deep = format!(
        "name = \"x\"\na = {}1{}\n",
        "[".repeat(5000),
        "]".repeat(5000)
    );
    let errs = parse("z.toml", &deep, Path::new(".")).unwrap_err();
    assert!(
        errs.0[0].to_string().starts_with("z.toml:2:"),
        "{}",
        errs.0[0]
    );
}

#[test]
fn traces_parse_and_interpolate() {
    let pts = parse_trace("time_s,cpu_load,gpu_load\n0,0,0\n10,1,0.5\n").unwrap();
    let w = scenario::Workload {
        points: pts.clone(),
        interpolation: Interpolation::Linear,
    };
    assert!((w.at(5.0).cpu_load - 0.5).abs() < 1e-12 && (w.at(5.0).gpu_load - 0.25).abs() < 1e-12);
    assert_eq!(w.at(50.0).cpu_load, 1.0);
    let w = scenario::Workload {
        points: pts,
        interpolation: Interpolation::Step,
    };
    assert_eq!(w.at(9.99).cpu_load, 0.0);
    assert!(
        parse_trace("time_s,cpu_load,gpu_load\n0,0,0\n5,1.5,0\n")
            .unwrap_err()
            .contains("line 3")
    );
    assert!(parse_trace("t,c\n").unwrap_err().contains("header"));
    assert!(
        parse_trace("time_s,cpu_load,gpu_load\n1,0,0\n")
            .unwrap_err()
            .contains("start at 0")
    );
}

/// A tch-cuda profile's load levels are GPU duty cycles (calibration's co-runner there), so
/// replay and the oracle read a tch-cuda trace's `gpu_load`; elsewhere its `cpu_load`.
#[test]
fn the_profile_load_axis_follows_the_backend() {
    let w = scenario::Workload {
        points: parse_trace("time_s,cpu_load,gpu_load\n0,0.2,0.9\n10,0.4,0.1\n").unwrap(),
        interpolation: Interpolation::Linear,
    };
    let gpu = w.on_profile_axis(Backend::TchCuda);
    assert!((gpu.at(5.0).cpu_load - 0.5).abs() < 1e-12);
    assert_eq!(gpu.at(0.0).cpu_load, 0.9);
    for b in [Backend::Flex, Backend::Ndarray, Backend::TchCpu] {
        assert_eq!(w.on_profile_axis(b), w);
    }
}

#[test]
fn gpu_scenario_without_a_gpu_build_fails_with_advice() {
    let s = scenario::load(&scenarios_dir().join("gpu-contention.toml")).unwrap();
    let r = scenario::check_backend(&s);
    if !cfg!(feature = "tch") {
        assert!(r.unwrap_err().contains("--features tch"));
    } else if !Path::new("/dev/nvidiactl").exists() {
        assert!(r.unwrap_err().contains("no NVIDIA GPU"));
    } else {
        assert!(r.is_ok());
    }
}

#[test]
fn effective_scenarios_round_trip_through_their_own_format() {
    for name in [
        "quickstart.toml",
        "content-drift.toml",
        "cpu-contention.toml",
        "dynamic.toml",
    ] {
        let s = scenario::load(&scenarios_dir().join(name)).unwrap();
        let text = s.to_toml();
        let back = parse("effective.toml", &text, Path::new("/"))
            .unwrap_or_else(|e| panic!("{name}:\n{e}\n{text}"));
        assert_eq!(back, s, "{name}");
    }
}

#[test]
fn same_scenario_and_seed_give_the_same_frames_and_load_schedule() {
    use opa_datasets::FrameSource;
    use opa_datasets::stream::SyntheticStream;
    let eval = std::sync::Arc::new(
        opa_datasets::shipped::load_shipped_split(opa_datasets::shipped::Split::Evaluation)
            .unwrap(),
    );
    let render = |s: &scenario::Scenario| {
        let StreamSource::Synthetic(spec) = &s.stream else {
            panic!("synthetic expected")
        };
        let stream = SyntheticStream::new(eval.clone(), spec, s.seed_stream).unwrap();
        let frames: Vec<_> = stream.frames().map(|f| f.unwrap()).collect();
        let loads: Vec<f64> = frames
            .iter()
            .map(|f| s.workload.at(f.timestamp_s).cpu_load)
            .collect();
        (frames, loads)
    };
    let a = scenario::load(&scenarios_dir().join("dynamic.toml")).unwrap();
    let b = scenario::load(&scenarios_dir().join("dynamic.toml")).unwrap();
    let (fa, la) = render(&a);
    assert_eq!((fa.clone(), la.clone()), render(&b));
    assert!(
        la.iter().any(|&l| l > 0.5) && la.iter().any(|&l| l < 0.1),
        "the diurnal trace rises and falls"
    );
    let mut c = a.clone();
    c.seed_stream += 1;
    assert_ne!(
        fa.iter().map(|f| &f.image).collect::<Vec<_>>(),
        render(&c).0.iter().map(|f| &f.image).collect::<Vec<_>>()
    );
}

/// A scenario's first six lines, up to its selectors (error positions below count them).
const PREAMBLE: &str = r#"name = "x"
[requirement]
deadline-ms = 5
[[stream.segment]]
duration-s = 10
fps = 10
"#;

/// Parsing `src` (as p.toml) fails with, among others, errors starting with each of `want`.
fn assert_errors(src: &str, want: &[&str]) {
    let errs = parse("p.toml", src, Path::new(".")).unwrap_err();
    let lines: Vec<String> = errs.0.iter().map(|p| p.to_string()).collect();
    for w in want {
        assert!(
            lines.iter().any(|l| l.starts_with(w)),
            "{w}\nnot in\n{lines:#?}"
        );
    }
}

#[test]
fn selector_parameters_are_checked_against_their_kind() {
    let src = &format!(
        r#"{PREAMBLE}[[selector]]
kind = "opa"
predictor = "probe-labels"
margin = 1.5
[[selector]]
kind = "dynamic-ofa"
probe-frames = 3
[[selector]]
kind = "exhaustive"
reprobe-every = 2.5
[[selector]]
kind = "random"
predictor = "linear"
"#
    );
    assert_errors(
        src,
        &[
            "p.toml:9:13: selector[0].predictor = \"probe-labels\": sees the probe's labels",
            "p.toml:10:10: selector[0].margin = 1.5: must be within 0.05..=1",
            "p.toml:13:16: selector[1].probe-frames does not apply to kind \"dynamic-ofa\" (only to opa, exhaustive)",
            "p.toml:16:17: selector[2].reprobe-every = 2.5: must be an integer",
            "p.toml:19:13: selector[3].predictor applies to kind \"opa\" only",
        ],
    );
}

#[test]
fn a_missing_profile_is_reported_with_the_fix() {
    let src = r#"name = "x"
profile = "nowhere/profile.parquet"
[requirement]
deadline-ms = 5
[[stream.segment]]
duration-s = 10
fps = 10
[[selector]]
kind = "oracle"
"#;
    let errs = parse("p.toml", src, Path::new(".")).unwrap_err();
    let t = errs.to_string();
    assert!(t.starts_with("p.toml:2:11: profile = \"nowhere/profile.parquet\": selector \"oracle\" needs a calibration profile"), "{t}");
    assert!(t.contains("opa calibrate"), "{t}");
}

#[test]
fn selector_defaults_are_written_into_the_effective_scenario() {
    let src = &format!(
        r#"{PREAMBLE}[[selector]]
kind = "random"
[[selector]]
kind = "fixed-largest"
"#
    );
    let s = parse("p.toml", src, Path::new(".")).unwrap();
    let t = s.to_toml();
    assert!(
        t.contains("kind = \"random\"\nname = \"random\"\nswitch-every = 30\n"),
        "{t}"
    );
    let back = parse("again.toml", &t, Path::new(".")).unwrap();
    assert_eq!(back.selectors, s.selectors);
}

#[test]
fn opas_own_parameters_apply_to_opa_only_and_within_range() {
    for (key, bad, range, ok) in [
        ("tail-window", "1001", "0..=1000", "0"),
        ("idle-stretch", "101", "0..=100", "2.5"),
        ("view-table", "2", "0..=1", "0"),
        ("fallback", "2", "0..=1", "0"),
        ("escalate-chance", "1.5", "0..=1", "0.6"),
        ("robust-gain", "-1", "0..=1", "0"),
    ] {
        let src = &format!(
            r#"{PREAMBLE}[[selector]]
kind = "opa"
{key} = {bad}
[[selector]]
kind = "adaptivenet"
{key} = 8
"#
        );
        let col = key.len() + 4;
        let range_err =
            format!("p.toml:9:{col}: selector[0].{key} = {bad}: must be within {range}");
        let kind_err = format!(
            "p.toml:12:{col}: selector[1].{key} does not apply to kind \"adaptivenet\" (only to opa)"
        );
        assert_errors(src, &[&range_err, &kind_err]);
        let ok = src.replace(&format!("{key} = {bad}"), &format!("{key} = {ok}"));
        let ok = ok.replace(
            &format!("kind = \"adaptivenet\"\n{key} = 8\n"),
            "kind = \"adaptivenet\"\n",
        );
        assert!(parse("p.toml", &ok, Path::new(".")).is_ok());
    }
}

#[test]
fn every_selector_parameter_is_documented_in_the_scenarios_readme() {
    use opa_predictors::selectors::SelectorKind;
    let readme = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/README.md"),
    )
    .unwrap();
    for kind in SelectorKind::ALL {
        assert!(
            readme.contains(&format!("`{}`", kind.name())),
            "kind {} is not in scenarios/README.md",
            kind.name()
        );
        for p in kind.params() {
            // A row of the parameter table: its key, then the kinds it applies to.
            let row = readme
                .lines()
                .find(|l| l.starts_with(&format!("| `{}` |", p.key)))
                .unwrap_or_else(|| panic!("{} is not in scenarios/README.md", p.key));
            assert!(
                row.contains(kind.name()),
                "{}'s row does not name kind {}",
                p.key,
                kind.name()
            );
        }
    }
}

/// The problems `parse` reports for `src`, as printed.
fn problems(src: &str) -> Vec<String> {
    parse("s.toml", src, Path::new("."))
        .err()
        .map(|e| e.0.iter().map(|p| p.to_string()).collect())
        .unwrap_or_default()
}

const REST: &str = "[requirement]\ndeadline-ms = 2\n[[selector]]\nkind = \"random\"\n";

#[test]
fn hostile_sizes_names_and_traces_are_bounded() {
    // A stream too long to prepare (1e300 s used to wrap the frame count; 1e7 s to abort
    // allocating).
    for d in ["1e300", "1e7"] {
        let p = problems(&format!(
            "name = \"x\"\n{REST}[[stream.segment]]\nduration-s = {d}\nfps = 10\n"
        ));
        assert!(
            p.iter()
                .any(|l| l.contains("frames in all; at most 1000000")),
            "{d}: {p:?}"
        );
    }
    // Names that would write into the working directory or its parent.
    for name in ["..", ".", ""] {
        let p = problems(&format!(
            "name = {name:?}\n{REST}[[stream.segment]]\nduration-s = 5\nfps = 10\n"
        ));
        assert!(
            p.iter().any(|l| l.contains("must be 1 to 100 characters")),
            "{name:?}: {p:?}"
        );
    }
    let p = problems(&format!(
        "name = \"x\"\n{REST}[[stream.segment]]\nduration-s = 5\nfps = 10\n[output]\ndir = \"\"\n"
    ));
    assert!(p.iter().any(|l| l.contains("output.dir = \"\"")), "{p:?}");
    // A selector name of 100 KB, and more selectors than a run could hold.
    let long = "n".repeat(100_000);
    let p = problems(&format!(
        "name = \"x\"\n{REST}name = \"{long}\"\n[[stream.segment]]\nduration-s = 5\nfps = 10\n"
    ));
    assert!(
        p.iter()
            .any(|l| l.contains("selector[0].name: must be 1 to 100")),
        "{}",
        p.len()
    );
    let many = "[[selector]]\nkind = \"random\"\n".repeat(65);
    let p = problems(&format!(
        "name = \"x\"\n[requirement]\ndeadline-ms = 2\n{many}[[stream.segment]]\nduration-s = 5\nfps = 10\n"
    ));
    assert!(
        p.iter()
            .any(|l| l.contains("65 [[selector]] tables; at most 64")),
        "{p:?}"
    );
}

#[test]
fn traces_must_be_small_regular_files_with_finite_times() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = |trace: &Path| {
        format!(
            "name = \"x\"\n{REST}[[stream.segment]]\nduration-s = 5\nfps = 10\n[workload]\ntrace = {:?}\n",
            trace.to_str().unwrap()
        )
    };
    let nan = dir.path().join("nan.csv");
    std::fs::write(
        &nan,
        "time_s,cpu_load,gpu_load\n0,0.5,0\nnan,0.2,0\n1,0.1,0\n",
    )
    .unwrap();
    let p = problems(&scenario(&nan));
    assert!(
        p.iter()
            .any(|l| l.contains("line 3: time `nan` is not a finite number")),
        "{p:?}"
    );
    // A device that never ends and a pipe that never opens are refused before reading.
    let p = problems(&scenario(Path::new("/dev/zero")));
    assert!(p.iter().any(|l| l.contains("not a regular file")), "{p:?}");
    let fifo = dir.path().join("fifo");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let p = problems(&scenario(&fifo));
    assert!(p.iter().any(|l| l.contains("not a regular file")), "{p:?}");
    // A scenario file that is not UTF-8 says where.
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, b"name = \"x\xff\"\n").unwrap();
    let e = opa_harness::scenario::load(&bad).unwrap_err().to_string();
    assert!(e.contains("invalid byte at offset 9"), "{e}");
}
