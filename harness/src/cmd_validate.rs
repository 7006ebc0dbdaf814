//! `opa validate FILE...`: check scenario files without running them.

use crate::bad;
use anyhow::Result;
use clap::Args;
use opa_harness::scenario::{self, StreamSource};
use std::path::PathBuf;

#[derive(Args)]
pub struct ValidateArgs {
    /// Scenario files to check.
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

pub fn validate(a: ValidateArgs) -> Result<()> {
    let mut failed = 0;
    for f in &a.files {
        match scenario::load(f) {
            Ok(s) => match scenario::check_backend(&s).and_then(|()| scenario::check_profile(&s)) {
                Ok(()) => {
                    let frames = match &s.stream {
                        StreamSource::Synthetic(spec) => format!(
                            "{} synthetic frames",
                            spec.segments.iter().map(|g| g.frames()).sum::<usize>()
                        ),
                        StreamSource::Frames { dir, .. } => {
                            format!("frames from {}", dir.display())
                        }
                    };
                    println!(
                        "{}: OK ({}: {frames}, deadline {} ms, {} load points, {} selectors, backend {}{})",
                        f.display(),
                        s.name,
                        s.deadline_ms,
                        s.workload.points.len(),
                        s.selectors.len(),
                        s.backend.name(),
                        if s.slowdown != 1.0 {
                            format!(", EMULATED slow-down x{}", s.slowdown)
                        } else {
                            String::new()
                        }
                    );
                }
                Err(e) => {
                    failed += 1;
                    eprintln!("{}: {e}", f.display());
                }
            },
            Err(errors) => {
                failed += 1;
                eprintln!("{errors}");
                eprintln!(
                    "{}: {} problem{}",
                    f.display(),
                    errors.0.len(),
                    if errors.0.len() == 1 { "" } else { "s" }
                );
            }
        }
    }
    if failed > 0 {
        return Err(bad(format!(
            "{failed} of {} scenario files are invalid",
            a.files.len()
        )));
    }
    Ok(())
}
