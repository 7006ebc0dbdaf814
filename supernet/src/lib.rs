//! The elastic once-for-all super-network: one set of weights, trained once, from which any
//! sub-network is cut by weight slicing.
//!
//! - [`arch`]: the architecture space as data (configs, ids, encodings, multiply-adds).
//! - [`model`]: the burn network, [`model::Plan`]s (sliced sub-networks) and batch norm.
//!
//! ```no_run
//! use opa_supernet::arch::{SubnetArch, SupernetConfig};
//! let cfg = SupernetConfig::fashion_mnist();
//! let small = SubnetArch::smallest(&cfg);
//! println!("{} needs {} multiply-adds", small.id(), small.macs(&cfg));
//! ```

pub mod arch;
pub mod candidates;
pub mod checkpoint;
pub mod eval;
pub mod model;
pub mod train;

/// Directory of the shipped Fashion-MNIST checkpoint and candidates
/// (`supernet/checkpoints/fashion-mnist` under the assets root, see [`opa_datasets::assets`]).
pub fn shipped_dir() -> std::path::PathBuf {
    opa_datasets::assets::root()
        .join("supernet")
        .join("checkpoints")
        .join("fashion-mnist")
}

/// The shipped super-network checkpoint (`supernet/checkpoints/fashion-mnist/supernet.opack`).
pub fn shipped_checkpoint() -> std::path::PathBuf {
    shipped_dir().join("supernet.opack")
}

/// The shipped candidates file (`supernet/checkpoints/fashion-mnist/candidates.json`).
pub fn shipped_candidates() -> std::path::PathBuf {
    shipped_dir().join("candidates.json")
}

/// The shipped calibration profile (`supernet/checkpoints/fashion-mnist/profile.parquet`).
pub fn shipped_profile() -> std::path::PathBuf {
    shipped_dir().join("profile.parquet")
}

/// The burn version this crate is built against (pinned in the workspace).
pub const BURN_VERSION: &str = "0.22.1";
