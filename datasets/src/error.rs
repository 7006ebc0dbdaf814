//! The one error type of this crate: every variant names the file it is about.

use std::path::PathBuf;

/// What went wrong while reading or checking a data file.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// The file could not be opened or read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file does not start with the magic number its format requires.
    #[error("{}: wrong magic number {found:#010x}, expected {expected}", path.display())]
    BadMagic {
        /// The file.
        path: PathBuf,
        /// The four bytes found, big-endian.
        found: u32,
        /// What the format expects, in words.
        expected: &'static str,
    },
    /// The file holds fewer (or more) bytes than its header or format promises.
    #[error("{}: truncated, header says {declared} {what}, file holds {found}", path.display())]
    Truncated {
        /// The file.
        path: PathBuf,
        /// What is counted ("images", "labels", "bytes").
        what: &'static str,
        /// What the header or format declares.
        declared: usize,
        /// What the file really holds.
        found: usize,
    },
    /// The file is longer than its header declares.
    #[error("{}: {extra} trailing bytes after the {declared} {what} its header declares", path.display())]
    TrailingBytes {
        /// The file.
        path: PathBuf,
        /// What is counted.
        what: &'static str,
        /// What the header declares.
        declared: usize,
        /// How many bytes are left over.
        extra: usize,
    },
    /// Image and label files disagree.
    #[error("{} holds {images} images but {} holds {labels} labels", images_path.display(), labels_path.display())]
    CountMismatch {
        /// The image file.
        images_path: PathBuf,
        /// Its image count.
        images: usize,
        /// The label file.
        labels_path: PathBuf,
        /// Its label count.
        labels: usize,
    },
    /// The file's SHA-256 is not the recorded one.
    #[error("{}: checksum mismatch, expected sha256 {expected}, file has {actual}; the file is damaged or not the original", path.display())]
    Checksum {
        /// The file.
        path: PathBuf,
        /// The recorded sum.
        expected: String,
        /// The sum computed now.
        actual: String,
    },
    /// The content is malformed in a way the other variants do not describe.
    #[error("{}: {message}", path.display())]
    Invalid {
        /// The file or directory.
        path: PathBuf,
        /// What is wrong, in words.
        message: String,
    },
    /// A data set split is not installed; `hint` says how to install it.
    #[error("{what} not found (looked in {}); {hint}", looked.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))]
    Missing {
        /// Which split.
        what: String,
        /// The places searched.
        looked: Vec<PathBuf>,
        /// How to get it.
        hint: String,
    },
    /// A stream or corruption specification is not usable.
    #[error("invalid stream spec: {0}")]
    Spec(String),
}

impl DatasetError {
    /// Wraps an I/O error with the file it happened on.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DatasetError::Io {
            path: path.into(),
            source,
        }
    }

    /// A malformed-content error for `path`.
    pub fn invalid(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        DatasetError::Invalid {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// Result with [`DatasetError`].
pub type Result<T> = std::result::Result<T, DatasetError>;
