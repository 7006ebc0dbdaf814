//! `ofa-static` (Once-for-All, Cai et al. 2020): chooses once, offline. Accuracy comes from a
//! ridge regression on the architecture encoding fitted on every candidate's clean
//! calibration top-1; latency from a lookup table measured on the idle device. Never adapts.

use super::best_feasible;
use crate::profile::{Profile, ProfileCandidate};
use crate::{Context, Decision, Selector};
use nalgebra::{DMatrix, DVector};

crate::selector_params! {
    /// `ofa-static`'s parameters.
    pub struct OfaStaticParams {
        /// Share of the deadline the looked-up idle latency may use.
        margin: f64 = 0.8, "margin", 0.05..=1.0;
    }
}

/// The static OFA selector.
pub struct OfaStatic {
    p: OfaStaticParams,
    /// Per candidate: (predicted clean top-1, idle latency ms).
    table: Vec<(f64, f64)>,
    choice: Option<usize>,
}

impl OfaStatic {
    /// Fits the architecture-level accuracy predictor on `profile`'s clean condition.
    pub fn new(p: OfaStaticParams, profile: &Profile) -> Result<Self, String> {
        let clean = profile
            .content_index("clean")
            .ok_or("ofa-static needs the profile's clean condition")?;
        let n = profile.candidates.len();
        let feats: Vec<Vec<f64>> = profile
            .candidates
            .iter()
            .map(ProfileCandidate::features)
            .collect();
        let d = feats[0].len();
        let x = DMatrix::from_fn(n, d + 1, |i, j| if j == d { 1.0 } else { feats[i][j] });
        let y = DVector::from_fn(n, |i, _| profile.content[i][clean].top1);
        // Ridge (the intercept column is penalised too, lightly: it has few rows to fit).
        let mut a = x.transpose() * &x;
        for i in 0..a.nrows() {
            a[(i, i)] += 0.1;
        }
        let w = a
            .cholesky()
            .ok_or("ofa-static: accuracy regression is singular")?
            .solve(&(x.transpose() * y));
        let pred = &x * w;
        Ok(OfaStatic {
            p,
            table: (0..n)
                .map(|c| (pred[c], profile.latency[c][0].mean_ms))
                .collect(),
            choice: None,
        })
    }
}

impl Selector for OfaStatic {
    fn name(&self) -> &str {
        "ofa-static"
    }

    fn decide(&mut self, ctx: &Context) -> Decision {
        let budget = self.p.margin * ctx.deadline_ms;
        Decision::Serve(
            *self
                .choice
                .get_or_insert_with(|| best_feasible(self.table.iter().copied(), budget)),
        )
    }
}
