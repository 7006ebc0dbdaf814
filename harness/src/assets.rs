//! The shipped assets embedded in the `opa` binary, so that an installed `opa` works after the
//! checkout it was built from has moved: when no assets directory is found
//! ([`opa_datasets::assets::locate`]), these copies are written once under the user's cache
//! directory, in a directory named by their content hash, and used from there.

use anyhow::{Context, Result};
use opa_datasets::assets::{Assets, Source};
use sha2::{Digest, Sha256};
use std::path::Path;

macro_rules! embed {
    ($path:literal) => {
        (
            $path,
            include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../", $path)).as_slice(),
        )
    };
}

/// Every shipped file, by its path under the assets root. A test compares this list with
/// the checkout's files, so a new scenario cannot be left out.
const EMBEDDED: &[(&str, &[u8])] = &[
    embed!("datasets/fashion-mnist/LICENSE"),
    embed!("datasets/fashion-mnist/README.md"),
    embed!("datasets/fashion-mnist/SHA256SUMS"),
    embed!("datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"),
    embed!("datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz"),
    embed!("scenarios/README.md"),
    embed!("scenarios/ablations.toml"),
    embed!("scenarios/check-60fps.toml"),
    embed!("scenarios/content-drift.toml"),
    embed!("scenarios/cpu-contention.toml"),
    embed!("scenarios/dynamic.toml"),
    embed!("scenarios/gpu-contention.toml"),
    embed!("scenarios/high-fps.toml"),
    embed!("scenarios/quickstart.toml"),
    embed!("scenarios/saturated.toml"),
    embed!("scenarios/steady-load.toml"),
    embed!("scenarios/traces/diurnal.csv"),
    embed!("scenarios/traces/step-contention.csv"),
    embed!("supernet/checkpoints/fashion-mnist/candidates.json"),
    embed!("supernet/checkpoints/fashion-mnist/config.json"),
    embed!("supernet/checkpoints/fashion-mnist/profile.parquet"),
    embed!("supernet/checkpoints/fashion-mnist/supernet.opack"),
];

/// Picks the assets root for this process (see [`opa_datasets::assets`]) and fixes it.
pub fn choose(flag: Option<&Path>) -> Result<()> {
    let chosen = if flag.is_some_and(|f| f.as_os_str() == "embedded") {
        written()?
    } else {
        match opa_datasets::assets::locate(flag).map_err(crate::bad)? {
            Some(found) => found,
            None => written()?,
        }
    };
    opa_datasets::assets::set(chosen);
    Ok(())
}

/// The embedded copies' directory under the cache directory, written on first use.
fn written() -> Result<Assets> {
    let mut hash = Sha256::new();
    for (name, bytes) in EMBEDDED {
        hash.update(name.as_bytes());
        hash.update((bytes.len() as u64).to_le_bytes());
        hash.update(bytes);
    }
    let digest = format!("{:x}", hash.finalize());
    let cache = opa_datasets::assets::cache_dir().context(
        "no assets directory found and no cache directory to write the embedded copies to          (set HOME or XDG_CACHE_HOME, or name the assets with --assets DIR or OPA_HOME)",
    )?;
    let root = cache.join(format!("assets-{}", &digest[..16]));
    if opa_datasets::assets::missing_in(&root).is_none() {
        return Ok(Assets {
            root,
            source: Source::Embedded,
        });
    }
    // Written into a private sibling and renamed into place whole, so that a reader never
    // sees half the files and two processes starting at once both end with the same copies.
    let work = cache.join(format!(".assets-{}.{}", &digest[..16], std::process::id()));
    let write = || -> std::io::Result<()> {
        for (name, bytes) in EMBEDDED {
            let path = work.join(name);
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::write(&path, bytes)?;
        }
        Ok(())
    };
    let result = write().and_then(|()| match std::fs::rename(&work, &root) {
        Err(_) if opa_datasets::assets::missing_in(&root).is_none() => Ok(()),
        other => other,
    });
    if work.exists() {
        let _ = std::fs::remove_dir_all(&work);
    }
    result.with_context(|| format!("writing the embedded assets to {}", root.display()))?;
    Ok(Assets {
        root,
        source: Source::Embedded,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, root, out);
            } else {
                out.push(
                    path.strip_prefix(root)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }

    #[test]
    fn every_shipped_scenario_and_data_file_is_embedded_as_it_is_in_the_checkout() {
        let root = opa_datasets::assets::checkout_root();
        let mut want = Vec::new();
        for dir in ["scenarios", "datasets/fashion-mnist"] {
            walk(&root.join(dir), &root, &mut want);
        }
        want.extend(opa_datasets::assets::REQUIRED.iter().map(|s| s.to_string()));
        want.push("supernet/checkpoints/fashion-mnist/profile.parquet".into());
        for name in &want {
            let (_, bytes) = EMBEDDED.iter().find(|(n, _)| n == name).unwrap_or_else(|| {
                panic!("{name} is shipped but not embedded (harness/src/assets.rs)")
            });
            assert_eq!(*bytes, std::fs::read(root.join(name)).unwrap(), "{name}");
        }
    }
}
