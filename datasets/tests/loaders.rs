//! Loader tests on tiny generated fixtures: IDX raw/gz, CIFAR batches, image folders.

use opa_datasets::cifar::{CifarKind, load_batches};
use opa_datasets::folder::load_folder;
use opa_datasets::idx;
use opa_datasets::{DatasetError, Image};
use std::path::Path;

fn classes(n: usize) -> Vec<String> {
    (0..n).map(|i| i.to_string()).collect()
}

fn fixture(
    dir: &Path,
    n: usize,
    gz: bool,
) -> (std::path::PathBuf, std::path::PathBuf, Vec<u8>, Vec<u8>) {
    let pixels: Vec<u8> = (0..n * 4 * 5).map(|i| (i * 7 % 256) as u8).collect();
    let labels: Vec<u8> = (0..n).map(|i| (i % 3) as u8).collect();
    let ext = if gz { ".gz" } else { "" };
    let ip = dir.join(format!("img-idx3-ubyte{ext}"));
    let lp = dir.join(format!("lab-idx1-ubyte{ext}"));
    idx::write(&ip, &[n, 4, 5], &pixels, gz).unwrap();
    idx::write(&lp, &[n], &labels, gz).unwrap();
    (ip, lp, pixels, labels)
}

#[test]
fn idx_round_trip_raw_and_gz() {
    for gz in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let (ip, lp, pixels, labels) = fixture(dir.path(), 6, gz);
        let set = idx::load_pair(&ip, &lp, classes(3)).unwrap();
        assert_eq!(
            (set.len(), set.height, set.width, set.channels),
            (6, 4, 5, 1)
        );
        assert_eq!(set.pixels, pixels);
        assert_eq!(
            set.labels,
            labels.iter().map(|&l| l as u16).collect::<Vec<_>>()
        );
        assert_eq!(set.image(1).data, pixels[20..40].to_vec());
    }
}

#[test]
fn idx_wrong_magic_is_reported_with_the_file_name() {
    let dir = tempfile::tempdir().unwrap();
    let (ip, lp, ..) = fixture(dir.path(), 3, false);
    // A label file where an image file is expected.
    let err = idx::read_images(&lp).unwrap_err();
    assert!(
        matches!(err, DatasetError::BadMagic { found: 0x801, .. }),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("lab-idx1-ubyte") && msg.contains("wrong magic number 0x00000801"),
        "{msg}"
    );
    // Garbage bytes.
    std::fs::write(&ip, b"hello world, not idx").unwrap();
    assert!(matches!(
        idx::read_images(&ip).unwrap_err(),
        DatasetError::BadMagic { .. }
    ));
}

#[test]
fn idx_truncated_raw_file_counts_what_it_holds() {
    let dir = tempfile::tempdir().unwrap();
    let (ip, ..) = fixture(dir.path(), 10, false);
    let bytes = std::fs::read(&ip).unwrap();
    // Header (16 bytes) + 7 whole images + half of the 8th.
    std::fs::write(&ip, &bytes[..16 + 7 * 20 + 10]).unwrap();
    let err = idx::read_images(&ip).unwrap_err();
    assert!(
        matches!(
            err,
            DatasetError::Truncated {
                declared: 10,
                found: 7,
                what: "images",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .ends_with("truncated, header says 10 images, file holds 7"),
        "{err}"
    );
    // A header cut short.
    std::fs::write(&ip, &bytes[..10]).unwrap();
    assert!(matches!(
        idx::read_images(&ip).unwrap_err(),
        DatasetError::Truncated {
            what: "header bytes",
            ..
        }
    ));
}

#[test]
fn idx_truncated_gz_file_counts_what_it_holds() {
    let dir = tempfile::tempdir().unwrap();
    // Incompressible-ish pixels so the gz file is long enough to cut in the middle.
    let n = 200;
    let mut state = 12345u32;
    let pixels: Vec<u8> = (0..n * 28 * 28)
        .map(|_| {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (state >> 16) as u8
        })
        .collect();
    let ip = dir.path().join("t10k-images-idx3-ubyte.gz");
    idx::write(&ip, &[n, 28, 28], &pixels, true).unwrap();
    let bytes = std::fs::read(&ip).unwrap();
    std::fs::write(&ip, &bytes[..bytes.len() / 2]).unwrap();
    let err = idx::read_images(&ip).unwrap_err();
    match &err {
        DatasetError::Truncated {
            declared: 200,
            found,
            what: "images",
            ..
        } => assert!(*found > 50 && *found < 150, "{found}"),
        other => panic!("expected truncated, got {other:?}"),
    }
    assert!(
        err.to_string().starts_with(&format!(
            "{}: truncated, header says 200 images, file holds",
            ip.display()
        )),
        "{err}"
    );
}

#[test]
fn idx_trailing_bytes_and_count_mismatch_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (ip, lp, ..) = fixture(dir.path(), 4, false);
    let mut bytes = std::fs::read(&lp).unwrap();
    bytes.push(1);
    std::fs::write(&lp, &bytes).unwrap();
    assert!(matches!(
        idx::read_labels(&lp).unwrap_err(),
        DatasetError::TrailingBytes { extra: 1, .. }
    ));
    idx::write(&lp, &[5], &[0, 1, 2, 0, 1], false).unwrap();
    let err = idx::load_pair(&ip, &lp, classes(3)).unwrap_err();
    assert!(
        matches!(
            err,
            DatasetError::CountMismatch {
                images: 4,
                labels: 5,
                ..
            }
        ),
        "{err:?}"
    );
    idx::write(&lp, &[4], &[0, 1, 9, 0], false).unwrap();
    assert!(
        idx::load_pair(&ip, &lp, classes(3))
            .unwrap_err()
            .to_string()
            .contains("label 9 at index 2")
    );
}

#[test]
fn missing_file_names_the_path() {
    let err = idx::read_labels(Path::new("/nonexistent/labels-idx1-ubyte")).unwrap_err();
    assert!(matches!(err, DatasetError::Io { .. }));
    assert!(err.to_string().contains("/nonexistent/labels-idx1-ubyte"));
}

fn cifar_record(label_bytes: &[u8], seed: u8) -> Vec<u8> {
    let mut r = label_bytes.to_vec();
    r.extend((0..3072).map(|i| (i as u8).wrapping_mul(seed)));
    r
}

#[test]
fn cifar10_and_cifar100_batches_parse() {
    let dir = tempfile::tempdir().unwrap();
    let p10 = dir.path().join("data_batch_1.bin");
    let mut bytes = cifar_record(&[3], 1);
    bytes.extend(cifar_record(&[9], 2));
    std::fs::write(&p10, &bytes).unwrap();
    let set = load_batches(&[&p10], CifarKind::Cifar10).unwrap();
    assert_eq!(
        (set.len(), set.channels, set.width, set.height),
        (2, 3, 32, 32)
    );
    assert_eq!(set.labels, vec![3, 9]);
    assert_eq!(set.classes[3], "cat");
    // Planar: the second image's red plane starts with 0, 2, 4, … and its blue plane at 2048.
    let img = set.image(1);
    assert_eq!(&img.data[..3], &[0, 2, 4]);
    assert_eq!(img.get(2, 0, 0), (2048u32 * 2 % 256) as u8);

    let p100 = dir.path().join("test.bin");
    std::fs::write(&p100, cifar_record(&[4, 77], 3)).unwrap();
    let set = load_batches(&[&p100], CifarKind::Cifar100).unwrap();
    assert_eq!((set.len(), set.labels[0], set.num_classes()), (1, 77, 100));

    // A partial record is an error naming the file.
    std::fs::write(&p10, &bytes[..3073 + 100]).unwrap();
    let err = load_batches(&[&p10], CifarKind::Cifar10).unwrap_err();
    assert!(
        err.to_string().contains("data_batch_1.bin") && err.to_string().contains("100 left over"),
        "{err}"
    );
}

#[test]
fn image_folder_loads_classes_in_sorted_order() {
    let dir = tempfile::tempdir().unwrap();
    for (class, shade) in [("cat", 10u8), ("ant", 200u8)] {
        std::fs::create_dir(dir.path().join(class)).unwrap();
        for k in 0..2u8 {
            let img =
                image::RgbImage::from_fn(6, 4, |x, y| image::Rgb([shade + k, x as u8, y as u8]));
            img.save(dir.path().join(class).join(format!("{k}.png")))
                .unwrap();
        }
    }
    std::fs::write(dir.path().join("cat").join("notes.txt"), "not an image").unwrap();
    let set = load_folder(dir.path(), 3).unwrap();
    assert_eq!(set.classes, vec!["ant", "cat"]);
    assert_eq!(set.labels, vec![0, 0, 1, 1]);
    assert_eq!((set.width, set.height, set.channels), (6, 4, 3));
    let img: Image = set.image(3);
    assert_eq!(
        (img.get(0, 0, 0), img.get(1, 2, 5), img.get(2, 3, 1)),
        (11, 5, 3)
    );
    let grey = load_folder(dir.path(), 1).unwrap();
    assert_eq!(grey.channels, 1);

    // A differently sized image is named in the error.
    image::GrayImage::new(3, 3)
        .save(dir.path().join("cat").join("odd.png"))
        .unwrap();
    let err = load_folder(dir.path(), 1).unwrap_err();
    assert!(
        err.to_string().contains("odd.png") && err.to_string().contains("3x3"),
        "{err}"
    );
}
