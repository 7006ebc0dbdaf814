//! `fixed-largest` and `fixed-smallest`: sanity baselines that never change their choice.

use super::{fewest_macs, most_macs};
use crate::{Context, Decision, Selector};

/// Always serves the candidate with the most multiply-adds.
#[derive(Clone, Debug, Default)]
pub struct FixedLargest;

impl Selector for FixedLargest {
    fn name(&self) -> &str {
        "fixed-largest"
    }

    fn decide(&mut self, ctx: &Context) -> Decision {
        Decision::Serve(most_macs(ctx.candidates))
    }
}

/// Always serves the candidate with the fewest multiply-adds.
#[derive(Clone, Debug, Default)]
pub struct FixedSmallest;

impl Selector for FixedSmallest {
    fn name(&self) -> &str {
        "fixed-smallest"
    }

    fn decide(&mut self, ctx: &Context) -> Decision {
        Decision::Serve(fewest_macs(ctx.candidates))
    }
}
