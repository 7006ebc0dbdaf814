//! CIFAR-10 and CIFAR-100 binary batches.
//!
//! CIFAR-10 records are 1 label byte + 3072 pixel bytes (1024 red, 1024 green, 1024 blue,
//! each 32×32 row-major); CIFAR-100 records carry 2 label bytes (coarse, fine) first.

use crate::error::{DatasetError, Result};
use crate::image::ImageSet;
use std::path::Path;

/// Which CIFAR flavour a batch file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CifarKind {
    /// 10 classes, one label byte per record.
    Cifar10,
    /// 100 fine classes, two label bytes (coarse, fine) per record; the fine label is used.
    Cifar100,
}

const PIXELS: usize = 3 * 32 * 32;

/// The CIFAR-10 class names.
pub const CIFAR10_CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

impl CifarKind {
    fn label_bytes(self) -> usize {
        match self {
            CifarKind::Cifar10 => 1,
            CifarKind::Cifar100 => 2,
        }
    }

    fn classes(self) -> Vec<String> {
        match self {
            CifarKind::Cifar10 => CIFAR10_CLASSES.iter().map(|s| s.to_string()).collect(),
            CifarKind::Cifar100 => (0..100).map(|i| format!("class-{i}")).collect(),
        }
    }
}

/// Reads one or more binary batch files into one RGB image set.
pub fn load_batches(paths: &[&Path], kind: CifarKind) -> Result<ImageSet> {
    let classes = kind.classes();
    let record = kind.label_bytes() + PIXELS;
    let mut set = ImageSet {
        width: 32,
        height: 32,
        channels: 3,
        pixels: Vec::new(),
        labels: Vec::new(),
        classes,
        source_index: Vec::new(),
    };
    for path in paths {
        let bytes = std::fs::read(path).map_err(|e| DatasetError::io(*path, e))?;
        if bytes.is_empty() || bytes.len() % record != 0 {
            return Err(DatasetError::invalid(
                *path,
                format!(
                    "{} bytes is not a whole number of {record}-byte {kind:?} records ({} whole, {} left over)",
                    bytes.len(),
                    bytes.len() / record,
                    bytes.len() % record
                ),
            ));
        }
        for (i, rec) in bytes.chunks_exact(record).enumerate() {
            let label = rec[kind.label_bytes() - 1] as usize;
            if label >= set.classes.len() {
                return Err(DatasetError::invalid(
                    *path,
                    format!(
                        "record {i}: label {label} is outside the {} classes",
                        set.classes.len()
                    ),
                ));
            }
            set.labels.push(label as u16);
            set.pixels.extend_from_slice(&rec[kind.label_bytes()..]);
            set.source_index.push(i as u32);
        }
    }
    Ok(set)
}
