//! Corruptions: determinism, and damage growing with severity for every family.

use opa_datasets::image::psnr;
use opa_datasets::shipped::{self, Split};
use opa_datasets::{CorruptionKind, Image};

fn sample_images(n: usize) -> Vec<Image> {
    let eval = shipped::load_shipped_split(Split::Evaluation).unwrap();
    (0..n).map(|i| eval.image(i * 37)).collect()
}

fn colour(img: &Image) -> Image {
    // A colour image with different content per channel.
    let mut data = img.data.clone();
    data.extend(img.data.iter().map(|v| 255 - v));
    data.extend(img.data.iter().map(|v| v / 2 + 60));
    Image {
        channels: 3,
        data,
        ..img.clone()
    }
}

#[test]
fn corruptions_are_deterministic_per_seed() {
    let img = &sample_images(1)[0];
    for kind in CorruptionKind::ALL {
        let a = kind.apply(img, 3, 42);
        assert_eq!(a, kind.apply(img, 3, 42), "{kind}");
        assert_ne!(&a, img, "{kind} at severity 3 changed nothing");
        assert_eq!(
            kind.apply(img, 0, 42),
            *img,
            "{kind} at severity 0 must be the identity"
        );
    }
    // Random families differ across seeds.
    for kind in [
        CorruptionKind::GaussianNoise,
        CorruptionKind::ShotNoise,
        CorruptionKind::ImpulseNoise,
        CorruptionKind::Occlusion,
        CorruptionKind::Fog,
    ] {
        assert_ne!(kind.apply(img, 3, 1), kind.apply(img, 3, 2), "{kind}");
    }
}

#[test]
fn psnr_falls_as_severity_rises_for_every_family_grey_and_colour() {
    let grey = sample_images(24);
    let rgb: Vec<Image> = grey.iter().map(colour).collect();
    for images in [&grey, &rgb] {
        for kind in CorruptionKind::ALL {
            let mean_psnr: Vec<f64> = (1..=5)
                .map(|s| {
                    images
                        .iter()
                        .enumerate()
                        .map(|(i, img)| psnr(img, &kind.apply(img, s, i as u64)).min(99.0))
                        .sum::<f64>()
                        / images.len() as f64
                })
                .collect();
            for s in 1..5 {
                assert!(
                    mean_psnr[s] < mean_psnr[s - 1],
                    "{kind} ({} ch): PSNR by severity {mean_psnr:?}",
                    images[0].channels
                );
            }
        }
    }
}

#[test]
fn corruption_names_round_trip() {
    for kind in CorruptionKind::ALL {
        assert_eq!(kind.name().parse::<CorruptionKind>().unwrap(), kind);
    }
    assert!(
        "blurry"
            .parse::<CorruptionKind>()
            .unwrap_err()
            .contains("known: gaussian-noise")
    );
}
