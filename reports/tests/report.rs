//! `opa report`'s outputs on a small synthetic run: the Markdown against a golden file, the
//! figures as files of the expected size.

use opa_reports::report::{Run, markdown, write_report};
use opa_reports::{RunSummary, Sample, SummaryInputs, summarize};
use std::path::PathBuf;

fn synthetic_run() -> Run {
    let mut samples = Vec::new();
    let mut summaries = Vec::new();
    for deadline in [1.0, 2.0] {
        for (k, sel) in ["opa", "fixed-largest"].iter().enumerate() {
            let start = samples.len();
            for f in 0..40u64 {
                let lat = 0.4 + 0.05 * ((f * 7 + k as u64 * 3) % 20) as f64;
                let correct = !(f + k as u64).is_multiple_of(5);
                samples.push(Sample {
                    selector: sel.to_string(),
                    deadline_ms: deadline,
                    frame: f,
                    phase: opa_predictors::Phase::Serve,
                    candidate: if k == 0 {
                        "small".into()
                    } else {
                        "large".into()
                    },
                    arrival_s: f as f64 * 0.1,
                    start_s: f as f64 * 0.1,
                    finish_s: f as f64 * 0.1 + lat / 1000.0,
                    compute_ms: lat,
                    latency_ms: lat,
                    label: (f % 10) as u16,
                    predicted: if correct { (f % 10) as u16 } else { 0 },
                    confidence: 0.9,
                    correct,
                    deadline_met: lat <= deadline,
                    cpu_load: if f < 20 { 0.0 } else { 0.5 },
                    condition: if f < 20 {
                        "clean".into()
                    } else {
                        "fog@3".into()
                    },
                });
            }
            summaries.push(summarize(
                &samples[start..],
                &SummaryInputs {
                    selector: sel,
                    deadline_ms: deadline,
                    emulated: false,
                    min_frames: 10,
                    load_requested: 0.25,
                    load_achieved: 0.25,
                    complete: true,
                },
            ));
        }
    }
    Run {
        dir: PathBuf::from("runs/synthetic"),
        summary: RunSummary {
            scenario: "synthetic".into(),
            status: "COMPLETE".into(),
            emulated: false,
            mode: "replay-from-profile".into(),
            deadlines_ms: vec![1.0, 2.0],
            selector_order: vec!["opa".into(), "fixed-largest".into()],
            oracle: None,
            shard: None,
            interleave_frames: 0,
            runs_measured: 0,
            runs_shared: 0,
            selectors: summaries,
        },
        samples,
    }
}

#[test]
fn report_markdown_matches_the_golden_file() {
    let (md, tables) = markdown(&[synthetic_run()], 1.0, false);
    let golden = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/report.md");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &md).unwrap();
    }
    let want = std::fs::read_to_string(&golden).expect("golden file (UPDATE_GOLDEN=1 writes it)");
    assert_eq!(
        md, want,
        "report.md changed; rerun with UPDATE_GOLDEN=1 if intended"
    );
    assert_eq!(tables.len(), 3);
    assert!(
        tables[0]
            .1
            .starts_with("selector,deadline_ms,frames,skipped,top1,")
    );
    assert_eq!(tables[0].1.lines().count(), 1 + 4);
}

fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert_eq!(&bytes[1..4], b"PNG");
    let w = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let h = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    (w, h)
}

#[test]
fn figures_are_written_as_png_and_svg_of_the_expected_size() {
    let dir = tempfile::tempdir().unwrap();
    let profile = opa_predictors::profile::synthetic(5, 3, &[0.0, 0.5, 1.0]);
    let folds = std::sync::atomic::AtomicUsize::new(0);
    let tick = || {
        folds.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    };
    let files = write_report(&[synthetic_run()], 2.0, Some(&profile), dir.path(), &tick).unwrap();
    assert_eq!(
        folds.into_inner(),
        opa_reports::report::cross_validation_folds(&profile),
        "every fold reports its end"
    );
    for (name, size) in [
        ("headline", (1000, 650)),
        ("latency-cdf", (1000, 650)),
        ("timeline", (1200, 170 * 3 + 60)),
        ("pareto", (1400, 330 * 2 + 50)),
        ("predictors", (1600, 700)),
    ] {
        let png = std::fs::read(dir.path().join(format!("{name}.png"))).unwrap();
        assert_eq!(png_size(&png), size, "{name}");
        assert!(
            png.len() > 10_000,
            "{name}: {} bytes, suspiciously empty",
            png.len()
        );
        let svg = std::fs::read_to_string(dir.path().join(format!("{name}.svg"))).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("</svg>"), "{name}");
        assert!(svg.len() > 2_000, "{name}");
    }
    assert_eq!(files.len(), 5 * 2 + 3 + 1);
    let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    assert!(md.contains("![pareto](pareto.png)"));
}
