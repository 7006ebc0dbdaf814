//! Synthetic and real-frame streams.

use opa_datasets::shipped::{self, Split};
use opa_datasets::stream::{
    ClassMix, CorruptionSchedule, FrameDir, Segment, SeverityProfile, StreamSpec, SyntheticStream,
};
use opa_datasets::{CorruptionKind, FrameSource, ImageSet};
use std::sync::{Arc, OnceLock};

fn eval() -> Arc<ImageSet> {
    static SET: OnceLock<Arc<ImageSet>> = OnceLock::new();
    SET.get_or_init(|| Arc::new(shipped::load_shipped_split(Split::Evaluation).unwrap()))
        .clone()
}

fn spec() -> StreamSpec {
    StreamSpec {
        segments: vec![
            Segment::clean(2.0, 30.0),
            Segment {
                corruption: Some(CorruptionSchedule {
                    kind: CorruptionKind::GaussianNoise,
                    severity: SeverityProfile::Ramp { from: 1, to: 5 },
                }),
                ..Segment::clean(3.0, 20.0)
            },
        ],
    }
}

#[test]
fn same_seed_same_frames_other_seed_different() {
    let a = SyntheticStream::new(eval(), &spec(), 11).unwrap();
    let b = SyntheticStream::new(eval(), &spec(), 11).unwrap();
    let c = SyntheticStream::new(eval(), &spec(), 12).unwrap();
    assert_eq!(a.len(), 60 + 60);
    let fa: Vec<_> = a.frames().map(|f| f.unwrap()).collect();
    let fb: Vec<_> = b.frames().map(|f| f.unwrap()).collect();
    let fc: Vec<_> = c.frames().map(|f| f.unwrap()).collect();
    assert_eq!(fa, fb);
    assert_ne!(
        fa.iter().map(|f| &f.image).collect::<Vec<_>>(),
        fc.iter().map(|f| &f.image).collect::<Vec<_>>()
    );
    // Random access gives the same frame as sequential iteration.
    assert_eq!(a.frame(77).unwrap(), fa[77]);
}

#[test]
fn timestamps_conditions_and_ramps_follow_the_spec() {
    let s = SyntheticStream::new(eval(), &spec(), 3).unwrap();
    let f0 = s.frame(0).unwrap();
    let f59 = s.frame(59).unwrap();
    let f60 = s.frame(60).unwrap();
    let last = s.frame(119).unwrap();
    assert_eq!(f0.condition.to_string(), "clean");
    assert!((f59.timestamp_s - 59.0 / 30.0).abs() < 1e-9);
    assert!((f60.timestamp_s - 2.0).abs() < 1e-9);
    assert_eq!((f60.condition.segment, f60.condition.severity), (1, 1));
    assert_eq!(last.condition.to_string(), "gaussian-noise@5");
    assert!((last.timestamp_s - (2.0 + 59.0 / 20.0)).abs() < 1e-9);
}

#[test]
fn scenes_hold_the_same_object_for_scene_length_frames() {
    let spec = StreamSpec {
        segments: vec![Segment {
            scene_length: 5,
            jitter_px: 0,
            flicker: 0.0,
            ..Segment::clean(1.0, 20.0)
        }],
    };
    let s = SyntheticStream::new(eval(), &spec, 9).unwrap();
    let frames: Vec<_> = s.frames().map(|f| f.unwrap()).collect();
    for scene in frames.chunks(5) {
        assert!(
            scene
                .iter()
                .all(|f| f.image == scene[0].image && f.label == scene[0].label)
        );
    }
    // With jitter, frames of a scene differ slightly but keep their label.
    let jittery = StreamSpec {
        segments: vec![Segment {
            scene_length: 5,
            jitter_px: 2,
            flicker: 0.05,
            ..Segment::clean(1.0, 20.0)
        }],
    };
    let s = SyntheticStream::new(eval(), &jittery, 9).unwrap();
    let frames: Vec<_> = s.frames().map(|f| f.unwrap()).collect();
    assert!(
        frames
            .chunks(5)
            .all(|c| c.iter().all(|f| f.label == c[0].label))
    );
    assert!(
        frames
            .chunks(5)
            .any(|c| c.iter().any(|f| f.image != c[0].image))
    );
}

#[test]
fn class_mix_is_honoured_within_two_points_over_10000_frames() {
    let weights = vec![0.30, 0.0, 0.05, 0.10, 0.0, 0.20, 0.05, 0.15, 0.10, 0.05];
    for scene_length in [1, 10] {
        let spec = StreamSpec {
            segments: vec![Segment {
                class_mix: ClassMix::Weights(weights.clone()),
                scene_length,
                ..Segment::clean(500.0, 20.0)
            }],
        };
        let s = SyntheticStream::new(eval(), &spec, 5).unwrap();
        assert_eq!(s.len(), 10_000);
        let mut counts = [0usize; 10];
        for i in 0..s.len() {
            counts[s.meta(i).0 as usize] += 1;
        }
        for (c, w) in weights.iter().enumerate() {
            let share = counts[c] as f64 / s.len() as f64;
            assert!(
                (share - w).abs() <= 0.02,
                "scene length {scene_length}: class {c}: {share} vs {w}"
            );
        }
    }
    let subset = StreamSpec {
        segments: vec![Segment {
            class_mix: ClassMix::Subset(vec![2, 7]),
            ..Segment::clean(10.0, 10.0)
        }],
    };
    let s = SyntheticStream::new(eval(), &subset, 1).unwrap();
    assert!((0..s.len()).all(|i| matches!(s.meta(i).0, 2 | 7)));
}

#[test]
fn bad_specs_are_rejected_with_reasons() {
    let bad_weights = StreamSpec {
        segments: vec![Segment {
            class_mix: ClassMix::Weights(vec![1.0; 3]),
            ..Segment::clean(1.0, 10.0)
        }],
    };
    assert!(
        SyntheticStream::new(eval(), &bad_weights, 0)
            .unwrap_err()
            .to_string()
            .contains("3 weights but the data set has 10 classes")
    );
    let bad_sev = StreamSpec {
        segments: vec![Segment {
            corruption: Some(CorruptionSchedule {
                kind: CorruptionKind::Fog,
                severity: SeverityProfile::Constant(7),
            }),
            ..Segment::clean(1.0, 10.0)
        }],
    };
    assert!(
        SyntheticStream::new(eval(), &bad_sev, 0)
            .unwrap_err()
            .to_string()
            .contains("severity 7")
    );
    assert!(SyntheticStream::new(eval(), &StreamSpec { segments: vec![] }, 0).is_err());
}

#[test]
fn frame_directory_source_reads_pngs_and_labels() {
    let dir = tempfile::tempdir().unwrap();
    let set = eval();
    let mut csv = String::from("frame,label\n");
    for i in 0..4 {
        let img = set.image(i);
        image::GrayImage::from_raw(28, 28, img.data.clone())
            .unwrap()
            .save(dir.path().join(format!("{i:04}.png")))
            .unwrap();
        csv.push_str(&format!("{i:04}.png,{}\n", set.labels[i]));
    }
    std::fs::write(dir.path().join("labels.csv"), &csv).unwrap();
    let src = FrameDir::open(dir.path(), 10.0, 1).unwrap();
    assert_eq!(src.len(), 4);
    let f = src.frame(2).unwrap();
    assert_eq!(
        (f.label, &f.image.data),
        (set.labels[2], &set.image(2).data)
    );
    assert!((f.timestamp_s - 0.2).abs() < 1e-9);

    // The error of `labels.csv` holding `text`.
    let error_of = |text: &str| {
        std::fs::write(dir.path().join("labels.csv"), text).unwrap();
        FrameDir::open(dir.path(), 10.0, 1).unwrap_err().to_string()
    };
    assert!(error_of("frame,label\n0000.png,x\n").contains("line 2: label `x`"));
    assert!(error_of("frame,label\nmissing.png,1\n").contains("missing.png does not exist"));
    assert!(
        error_of("frame,label\n0000.png\n")
            .contains("line 2: expected `frame,label`, found `0000.png`")
    );
    // A name with a comma, quoted as CSV quotes it.
    std::fs::copy(dir.path().join("0001.png"), dir.path().join("a,b.png")).unwrap();
    std::fs::write(
        dir.path().join("labels.csv"),
        "frame,label\n\"a,b.png\",3\n",
    )
    .unwrap();
    let src = FrameDir::open(dir.path(), 10.0, 1).unwrap();
    assert_eq!(src.frame(0).unwrap().label, 3);
}
