//! The harness library behind the `opa` binary: scenario files, a scenario's frames, the
//! replay engine, its targets (live runs and replay from a profile), load injection and
//! deployment of the candidates. The binary (`src/main.rs`) is a thin clap shell over this and the
//! other `opa-*` crates.
//!
//! ```no_run
//! let s = opa_harness::scenario::load(std::path::Path::new("scenarios/quickstart.toml"))?;
//! println!("{} frames at a {} ms deadline", s.name, s.deadline_ms);
//! # Ok::<(), opa_harness::scenario::ScenarioErrors>(())
//! ```

pub mod backend;
pub mod deployment;
pub mod engine;
pub mod frames;
pub mod live;
pub mod load;
pub mod output;
pub mod profile_target;
pub mod progress;
pub mod run;
pub mod scenario;
pub mod stress;
