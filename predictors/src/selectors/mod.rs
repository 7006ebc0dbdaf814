//! The selectors, one file each.

mod fixed;
mod random;

pub use fixed::{FixedLargest, FixedSmallest};
pub use random::RandomSelector;

use crate::CandidateInfo;

/// Index of the candidate with the most multiply-adds (first on ties).
pub fn most_macs(c: &[CandidateInfo]) -> usize {
    (0..c.len()).fold(0, |best, i| if c[i].macs > c[best].macs { i } else { best })
}

/// Index of the candidate with the fewest multiply-adds (first on ties).
pub fn fewest_macs(c: &[CandidateInfo]) -> usize {
    (0..c.len()).fold(0, |best, i| if c[i].macs < c[best].macs { i } else { best })
}
