//! The selectors, one file each.

mod adaptivenet;
mod dynamic_ofa;
mod exhaustive;
mod fixed;
pub mod kind;
mod ofa_static;
mod opa;
mod oracle;
mod random;

pub use adaptivenet::{AdaptiveNet, AdaptiveNetParams};
pub use dynamic_ofa::{DynamicOfa, DynamicOfaParams};
pub use exhaustive::{Exhaustive, ExhaustiveParams};
pub use fixed::{FixedLargest, FixedSmallest};
pub use kind::{Inputs, Param, Params, SelectorKind};
pub use ofa_static::{OfaStatic, OfaStaticParams};
pub use opa::{GAIN_QUANTILE, Opa, OpaParams};
pub use oracle::{FrameTruth, Oracle, OracleParams};
pub use random::{RandomParams, RandomSelector};

use crate::CandidateInfo;

/// Index of the candidate with the most multiply-adds (first on ties).
pub fn most_macs(c: &[CandidateInfo]) -> usize {
    (0..c.len()).fold(0, |best, i| if c[i].macs > c[best].macs { i } else { best })
}

/// Index of the candidate with the fewest multiply-adds (first on ties).
pub fn fewest_macs(c: &[CandidateInfo]) -> usize {
    (0..c.len()).fold(0, |best, i| if c[i].macs < c[best].macs { i } else { best })
}

/// Among `(top-1, latency ms)` estimates, the most accurate one whose latency is within
/// `budget_ms`; when none is, the fastest.
pub fn best_feasible(est: impl Iterator<Item = (f64, f64)>, budget_ms: f64) -> usize {
    let est: Vec<(f64, f64)> = est.collect();
    let feasible = (0..est.len()).filter(|&i| est[i].1 <= budget_ms).fold(
        None,
        |b: Option<usize>, i| match b {
            Some(j) if est[j].0 >= est[i].0 => Some(j),
            _ => Some(i),
        },
    );
    feasible
        .unwrap_or_else(|| (0..est.len()).fold(0, |b, i| if est[i].1 < est[b].1 { i } else { b }))
}
