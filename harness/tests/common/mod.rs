//! What the tests of the `opa` binary share (each test file uses some of it).
#![allow(dead_code)]

use std::process::{Command, Output};

/// Runs the `opa` binary with `args`.
pub fn opa(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_opa"))
        .args(args)
        .output()
        .expect("opa runs")
}

/// Its stdout and stderr, as text.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The source checkout (the repository root).
pub fn checkout() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}
