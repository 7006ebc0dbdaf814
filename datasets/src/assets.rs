//! Where opa finds what it ships: the Fashion-MNIST test split, the trained checkpoint, its
//! candidates and calibration profile, and the example scenarios. They live in one directory
//! laid out like the source checkout (`datasets/fashion-mnist/`,
//! `supernet/checkpoints/fashion-mnist/`, `scenarios/`), the *assets root*.
//!
//! The `opa` binary picks the root once at start ([`locate`], then [`set`]), in this order:
//! `--assets DIR`, the `OPA_HOME` environment variable, `share/opa` next to the executable's
//! directory (`<prefix>/bin/opa` reads `<prefix>/share/opa`), the source checkout the binary
//! was built from, and last the copies embedded in the binary (written once under the user's
//! cache directory). Library users and tests that set nothing read the source checkout.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Files every assets root holds; a directory without them is not one.
pub const REQUIRED: [&str; 4] = [
    "datasets/fashion-mnist/t10k-images-idx3-ubyte.gz",
    "datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz",
    "supernet/checkpoints/fashion-mnist/supernet.opack",
    "supernet/checkpoints/fashion-mnist/candidates.json",
];

/// The environment variable naming an assets root.
pub const ENV: &str = "OPA_HOME";

/// How the assets root was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// `--assets DIR` on the command line.
    Flag,
    /// The `OPA_HOME` environment variable.
    Env,
    /// `share/opa` beside the executable's directory.
    NextToExecutable,
    /// The source checkout the binary was built from.
    Checkout,
    /// The binary's embedded copies, written under the cache directory.
    Embedded,
}

impl Source {
    /// A few words for `opa datasets info`.
    pub fn describe(self) -> &'static str {
        match self {
            Source::Flag => "--assets",
            Source::Env => "the OPA_HOME environment variable",
            Source::NextToExecutable => "share/opa next to the executable",
            Source::Checkout => "the source checkout opa was built from",
            Source::Embedded => "the copies embedded in the opa binary",
        }
    }
}

/// An assets root and how it was found.
#[derive(Clone, Debug)]
pub struct Assets {
    /// The directory.
    pub root: PathBuf,
    /// How it was found.
    pub source: Source,
}

static CHOSEN: OnceLock<Assets> = OnceLock::new();

/// Fixes the assets root for this process; false when one was already in use.
pub fn set(assets: Assets) -> bool {
    CHOSEN.set(assets).is_ok()
}

/// The assets root in use: the one [`set`], else the source checkout.
pub fn get() -> &'static Assets {
    CHOSEN.get_or_init(|| Assets {
        root: checkout_root(),
        source: Source::Checkout,
    })
}

/// The assets root's directory.
pub fn root() -> &'static Path {
    &get().root
}

/// The source checkout this crate was compiled in (it may have moved or gone since).
pub fn checkout_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// The first of [`REQUIRED`] that `dir` lacks, or `None` when it is an assets root.
pub fn missing_in(dir: &Path) -> Option<&'static str> {
    REQUIRED.iter().copied().find(|f| !dir.join(f).is_file())
}

/// Looks for an assets root in the documented order, stopping before the embedded copies:
/// `Ok(None)` means none of the directories holds the assets. A directory named by `flag` or
/// by `OPA_HOME` must hold them; otherwise the error names it and the missing file.
pub fn locate(flag: Option<&Path>) -> Result<Option<Assets>, String> {
    let named = flag
        .map(|d| (d.to_path_buf(), Source::Flag, "--assets"))
        .or_else(|| {
            std::env::var_os(ENV)
                .filter(|v| !v.is_empty())
                .map(|v| (PathBuf::from(v), Source::Env, ENV))
        });
    if let Some((root, source, what)) = named {
        return match missing_in(&root) {
            None => Ok(Some(Assets { root, source })),
            Some(f) => Err(format!(
                "{what} names {}, which is not an opa assets directory: {} is missing",
                root.display(),
                root.join(f).display()
            )),
        };
    }
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join("share").join("opa")));
    for (root, source) in [
        (beside, Source::NextToExecutable),
        (Some(checkout_root()), Source::Checkout),
    ] {
        if let Some(root) = root.filter(|r| missing_in(r).is_none()) {
            return Ok(Some(Assets { root, source }));
        }
    }
    Ok(None)
}

/// The user's cache directory for opa: `$XDG_CACHE_HOME/opa`, else `$HOME/.cache/opa`.
pub fn cache_dir() -> Option<PathBuf> {
    let nonempty = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    nonempty("XDG_CACHE_HOME")
        .or_else(|| nonempty("HOME").map(|h| h.join(".cache")))
        .map(|c| c.join("opa"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checkout_is_an_assets_root() {
        assert_eq!(missing_in(&checkout_root()), None);
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(missing_in(empty.path()), Some(REQUIRED[0]));
    }

    #[test]
    fn a_named_directory_without_the_assets_is_refused_with_the_missing_file() {
        let empty = tempfile::tempdir().unwrap();
        let err = locate(Some(empty.path())).unwrap_err();
        assert!(
            err.contains("--assets") && err.contains("t10k-images"),
            "{err}"
        );
        let found = locate(Some(&checkout_root())).unwrap().unwrap();
        assert_eq!(found.source, Source::Flag);
    }
}
