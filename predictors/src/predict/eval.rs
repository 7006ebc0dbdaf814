//! How well a predictor variant predicts conditions it never saw: leave-condition-out
//! cross-validation and its scores (`opa predictors eval`).

use super::{Prediction, Variant, fit};
use crate::profile::{Cond, Profile};
use crate::stats::spearman;
use serde::{Deserialize, Serialize};

/// How well a variant predicts conditions it never saw.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VariantScore {
    /// Variant name.
    pub variant: String,
    /// False for upper bounds that see labels.
    pub deployable: bool,
    /// Mean absolute top-1 error, points.
    pub accuracy_mae_points: f64,
    /// Mean absolute percentage error of the mean latency, %.
    pub latency_mape_percent: f64,
    /// Mean over held-out conditions of Spearman's ρ between predicted and measured top-1
    /// ranking of the candidates.
    pub spearman_rho: f64,
    /// Held-out folds.
    pub folds: usize,
}

/// One held-out prediction of leave-condition-out cross-validation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HeldOut {
    /// Candidate index.
    pub candidate: usize,
    /// The held-out condition.
    pub cond: Cond,
    /// What the variant predicted, fitted without the condition.
    pub predicted: Prediction,
    /// Measured top-1.
    pub top1: f64,
    /// Measured mean latency, ms.
    pub latency_ms: f64,
}

/// Leave-condition-out cross-validation: each fold holds out one content condition and one
/// load level, fits on the conditions that share neither, and predicts the held-out one.
pub fn cross_validate(variant: Variant, p: &Profile) -> Result<Vec<HeldOut>, String> {
    cross_validate_with(variant, p, &|| {})
}

/// [`cross_validate`] with `on_fold` called as each fold ends (one per condition of the
/// profile; for a progress bar). The folds are fitted in parallel, on every core (each fit
/// is seeded: the result is the same on any number of cores).
pub fn cross_validate_with(
    variant: Variant,
    p: &Profile,
    on_fold: &(dyn Fn() + Sync),
) -> Result<Vec<HeldOut>, String> {
    use rayon::prelude::*;
    p.validate()?;
    let conditions = p.conditions();
    let fold = |held: Cond| -> Result<Vec<HeldOut>, String> {
        let train: Vec<Cond> = conditions
            .iter()
            .copied()
            .filter(|c| c.content != held.content && (c.load != held.load || p.loads.len() == 1))
            .collect();
        if train.is_empty() {
            return Ok(Vec::new());
        }
        let model = fit(variant, p, &train)?;
        let pred = model.predict(
            &p.signals(held),
            Some(p.content[p.probe][held.content].top1),
        );
        Ok(pred
            .into_iter()
            .enumerate()
            .map(|(c, pr)| HeldOut {
                candidate: c,
                cond: held,
                predicted: pr,
                top1: p.content[c][held.content].top1,
                latency_ms: p.latency[c][held.load].mean_ms,
            })
            .collect())
    };
    let folds: Vec<Result<Vec<HeldOut>, String>> = conditions
        .par_iter()
        .map(|&held| {
            let f = fold(held);
            on_fold();
            f
        })
        .collect();
    let mut out = Vec::new();
    for f in folds {
        out.extend(f?);
    }
    if out.is_empty() {
        return Err("the profile needs at least two content conditions to hold one out".into());
    }
    Ok(out)
}

/// Scores a variant from its cross-validated predictions (see [`cross_validate`]).
pub fn evaluate(variant: Variant, p: &Profile) -> Result<VariantScore, String> {
    evaluate_with(variant, p, &|| {})
}

/// [`evaluate`] with `on_fold` called as each cross-validation fold ends (see
/// [`cross_validate_with`]).
pub fn evaluate_with(
    variant: Variant,
    p: &Profile,
    on_fold: &(dyn Fn() + Sync),
) -> Result<VariantScore, String> {
    let held = cross_validate_with(variant, p, on_fold)?;
    let n = held.len() as f64;
    let mae = held
        .iter()
        .map(|h| (h.predicted.top1 - h.top1).abs())
        .sum::<f64>()
        / n;
    let mape = held
        .iter()
        .map(|h| ((h.predicted.latency_ms - h.latency_ms) / h.latency_ms).abs())
        .sum::<f64>()
        / n;
    let k = p.candidates.len();
    let folds = held.len() / k;
    let rho = held
        .chunks(k)
        .map(|f| {
            let a: Vec<f64> = f.iter().map(|h| h.predicted.top1).collect();
            let b: Vec<f64> = f.iter().map(|h| h.top1).collect();
            spearman(&a, &b)
        })
        .sum::<f64>()
        / folds as f64;
    Ok(VariantScore {
        variant: variant.name().into(),
        deployable: variant.deployable(),
        accuracy_mae_points: 100.0 * mae,
        latency_mape_percent: 100.0 * mape,
        spearman_rho: rho,
        folds,
    })
}
