//! Selector kinds: the name a scenario gives each (`kind = "opa"`), what each needs, its
//! parameters, and building one.
//!
//! Each kind's parameters are one struct declared with [`selector_params!`]: the struct, its
//! `Default`, serde (kebab-case keys) and the [`Param`] table (key, default, range, doc) that
//! scenario validation, the effective scenario and the documentation test read all come from
//! that one declaration.

use super::{
    AdaptiveNet, AdaptiveNetParams, DynamicOfa, DynamicOfaParams, Exhaustive, ExhaustiveParams,
    FixedLargest, FixedSmallest, FrameTruth, OfaStatic, OfaStaticParams, Opa, OpaParams, Oracle,
    OracleParams, RandomParams, RandomSelector,
};
use crate::Selector;
use crate::predict::{Variant, fit};
use crate::profile::Profile;
use serde::Serialize;
use std::sync::Arc;

/// One numeric parameter of a selector kind, as a scenario writes it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Param {
    /// The scenario key (kebab-case).
    pub key: &'static str,
    /// The default (booleans as 0 or 1).
    pub default: f64,
    /// The accepted range, inclusive.
    pub min: f64,
    pub max: f64,
    /// Written as an integer (counts, and booleans as 0 or 1), else any number.
    pub integer: bool,
    /// What it means.
    pub doc: &'static str,
}

/// A selector's parameter struct: its [`Param`] table, and its values set by key.
pub trait Params: Default {
    /// Every parameter, in documentation order.
    const PARAMS: &'static [Param];
    /// Sets `key` to `value` (an integer or boolean parameter takes `value as u32`, true
    /// for 1); false for a key of another kind.
    fn set(&mut self, key: &str, value: f64) -> bool;

    /// The defaults with every key `value` returns a number for set to it.
    fn from_values(value: impl Fn(&str) -> Option<f64>) -> Self {
        let mut p = Self::default();
        for param in Self::PARAMS {
            if let Some(v) = value(param.key) {
                p.set(param.key, v);
            }
        }
        p
    }
}

/// Declares a selector's parameter struct: each field with its doc, type (`u32`, `f64` or
/// `bool`), default, scenario key and range; see the module doc.
#[macro_export]
macro_rules! selector_params {
    (
        $(#[doc = $sdoc:literal])*
        pub struct $name:ident {
            $(
                $(#[doc = $doc:literal])*
                $field:ident: $ty:ident = $default:expr, $key:literal, $min:literal..=$max:literal;
            )*
        }
    ) => {
        $(#[doc = $sdoc])*
        #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
        #[serde(rename_all = "kebab-case", default, deny_unknown_fields)]
        pub struct $name {
            $( $(#[doc = $doc])* pub $field: $ty, )*
        }

        impl Default for $name {
            fn default() -> Self {
                $name { $( $field: $default, )* }
            }
        }

        impl $crate::selectors::kind::Params for $name {
            const PARAMS: &'static [$crate::selectors::kind::Param] = &[
                $( $crate::selectors::kind::Param {
                    key: $key,
                    default: $crate::selector_params!(@f64 $ty, $default),
                    min: $min as f64,
                    max: $max as f64,
                    integer: $crate::selector_params!(@integer $ty),
                    doc: concat!($($doc),*),
                }, )*
            ];

            fn set(&mut self, key: &str, value: f64) -> bool {
                match key {
                    $( $key => {
                        self.$field = $crate::selector_params!(@from $ty, value);
                        true
                    } )*
                    _ => false,
                }
            }
        }
    };
    (@f64 u32, $v:expr) => { $v as f64 };
    (@f64 f64, $v:expr) => { $v };
    (@f64 bool, $v:expr) => { if $v { 1.0 } else { 0.0 } };
    (@integer f64) => { false };
    (@integer $ty:ident) => { true };
    (@from u32, $v:expr) => { $v as u32 };
    (@from f64, $v:expr) => { $v };
    (@from bool, $v:expr) => { $v as u32 == 1 };
}

/// Every kind of selector a scenario can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SelectorKind {
    /// One-Predict-All ([`Opa`]).
    Opa,
    /// Every candidate measured on the current frames ([`Exhaustive`]).
    Exhaustive,
    /// The condition oracle: knows each frame's content condition and load ([`Oracle`]).
    Oracle,
    /// Once-for-All's offline choice ([`OfaStatic`]).
    OfaStatic,
    /// Dynamic-OFA's latency-driven ladder ([`DynamicOfa`]).
    DynamicOfa,
    /// AdaptiveNet-style budget walk ([`AdaptiveNet`]).
    Adaptivenet,
    /// Always the candidate with the most multiply-adds.
    FixedLargest,
    /// Always the candidate with the fewest multiply-adds.
    FixedSmallest,
    /// A random candidate now and then ([`RandomSelector`]).
    Random,
}

/// What building a selector may need besides its parameters.
pub struct Inputs<'a> {
    /// The calibration profile (every kind but the fixed ones and `random` needs one).
    pub profile: Option<&'a Arc<Profile>>,
    /// The profile the oracle plans with instead, where it differs (live: latencies timed
    /// in the run).
    pub oracle_profile: Option<&'a Arc<Profile>>,
    /// Each frame's truth (the oracle's knowledge).
    pub truth: &'a [FrameTruth],
    /// The seed of a randomised selector.
    pub seed: u64,
}

impl SelectorKind {
    /// Every kind, in documentation order.
    pub const ALL: [SelectorKind; 9] = [
        SelectorKind::Opa,
        SelectorKind::Exhaustive,
        SelectorKind::Oracle,
        SelectorKind::OfaStatic,
        SelectorKind::DynamicOfa,
        SelectorKind::Adaptivenet,
        SelectorKind::FixedLargest,
        SelectorKind::FixedSmallest,
        SelectorKind::Random,
    ];

    /// The name a scenario gives this kind.
    pub fn name(self) -> &'static str {
        match self {
            SelectorKind::Opa => "opa",
            SelectorKind::Exhaustive => "exhaustive",
            SelectorKind::Oracle => "oracle",
            SelectorKind::OfaStatic => "ofa-static",
            SelectorKind::DynamicOfa => "dynamic-ofa",
            SelectorKind::Adaptivenet => "adaptivenet",
            SelectorKind::FixedLargest => "fixed-largest",
            SelectorKind::FixedSmallest => "fixed-smallest",
            SelectorKind::Random => "random",
        }
    }

    /// The kind a scenario names `name`.
    pub fn parse(name: &str) -> Option<SelectorKind> {
        SelectorKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Its parameters, in documentation order.
    pub fn params(self) -> &'static [Param] {
        match self {
            SelectorKind::Opa => OpaParams::PARAMS,
            SelectorKind::Exhaustive => ExhaustiveParams::PARAMS,
            SelectorKind::Oracle => OracleParams::PARAMS,
            SelectorKind::OfaStatic => OfaStaticParams::PARAMS,
            SelectorKind::DynamicOfa => DynamicOfaParams::PARAMS,
            SelectorKind::Adaptivenet => AdaptiveNetParams::PARAMS,
            SelectorKind::FixedLargest | SelectorKind::FixedSmallest => &[],
            SelectorKind::Random => RandomParams::PARAMS,
        }
    }

    /// Whether it plans with a calibration profile.
    pub fn needs_profile(self) -> bool {
        !matches!(
            self,
            SelectorKind::FixedLargest | SelectorKind::FixedSmallest | SelectorKind::Random
        )
    }

    /// Whether it knows what a deployed selector cannot (each frame's condition and load): a
    /// reference, not a rival.
    pub fn knows_truth(self) -> bool {
        self == SelectorKind::Oracle
    }

    /// Whether a predictor variant applies (`predictor = ...` in a scenario).
    pub fn takes_predictor(self) -> bool {
        self == SelectorKind::Opa
    }

    /// A selector of this kind named `name`, with each parameter `value` gives (the default
    /// for the others) and, for `opa`, the predictor `variant` fitted on the profile.
    pub fn build(
        self,
        name: &str,
        value: impl Fn(&str) -> Option<f64>,
        variant: Variant,
        inputs: &Inputs,
    ) -> Result<Box<dyn Selector>, String> {
        let profile = || {
            inputs
                .profile
                .ok_or_else(|| format!("selector {name} needs a calibration profile"))
        };
        Ok(match self {
            SelectorKind::FixedLargest => Box::new(FixedLargest),
            SelectorKind::FixedSmallest => Box::new(FixedSmallest),
            SelectorKind::Random => {
                let p = RandomParams::from_values(value);
                Box::new(RandomSelector::new(inputs.seed, p.switch_every))
            }
            SelectorKind::Opa => {
                let p = profile()?;
                let model = fit(variant, p, &p.conditions())?;
                Box::new(
                    Opa::new(name, OpaParams::from_values(value), p, model)
                        .map_err(|e| format!("selector {name}: {e}"))?,
                )
            }
            SelectorKind::Exhaustive => Box::new(Exhaustive::new(
                ExhaustiveParams::from_values(value),
                profile()?,
            )),
            SelectorKind::Oracle => {
                let p = OracleParams::from_values(value);
                let planned = match inputs.oracle_profile {
                    Some(t) if p.timed_latency => t.clone(),
                    _ => profile()?.clone(),
                };
                Box::new(Oracle::new(p, planned, inputs.truth.to_vec()))
            }
            SelectorKind::OfaStatic => Box::new(OfaStatic::new(
                OfaStaticParams::from_values(value),
                profile()?,
            )?),
            SelectorKind::DynamicOfa => Box::new(DynamicOfa::new(
                DynamicOfaParams::from_values(value),
                profile()?,
            )),
            SelectorKind::Adaptivenet => Box::new(AdaptiveNet::new(
                AdaptiveNetParams::from_values(value),
                profile()?,
            )),
        })
    }
}

impl std::fmt::Display for SelectorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_names_round_trip() {
        for k in SelectorKind::ALL {
            assert_eq!(SelectorKind::parse(k.name()), Some(k));
            // serde's name is the scenario's.
            assert_eq!(serde_json::to_value(k).unwrap(), k.name());
        }
        assert_eq!(SelectorKind::parse("Opa"), None);
    }

    /// `P`'s parameter table against serde's view of its defaults: the same keys, each default
    /// in its range, each documented.
    fn check<P: Params + Serialize>() {
        let json = serde_json::to_value(P::default()).unwrap();
        let fields = json.as_object().unwrap();
        let mut keys: Vec<&str> = P::PARAMS.iter().map(|p| p.key).collect();
        keys.sort();
        let names: Vec<&str> = fields.keys().map(String::as_str).collect();
        assert_eq!(keys, names, "keys and serde's field names");
        for p in P::PARAMS {
            assert!((p.min..=p.max).contains(&p.default), "{}", p.key);
            assert!(!p.doc.trim().is_empty(), "{} has no doc", p.key);
            let v = &fields[p.key];
            let as_f64 = v.as_f64().or(v.as_bool().map(|b| f64::from(u8::from(b))));
            assert_eq!(as_f64, Some(p.default), "{}", p.key);
        }
    }

    #[test]
    fn every_key_is_its_fields_kebab_case_name_with_its_default_in_range() {
        check::<OpaParams>();
        check::<ExhaustiveParams>();
        check::<OracleParams>();
        check::<OfaStaticParams>();
        check::<DynamicOfaParams>();
        check::<AdaptiveNetParams>();
        check::<RandomParams>();
    }

    #[test]
    fn values_set_by_key_read_back() {
        let mut p = OpaParams::default();
        assert!(p.set("min-gap", 7.0) && p.set("cascade", 0.0) && p.set("margin", 0.55));
        assert!(!p.set("window", 3.0));
        assert_eq!((p.min_gap, p.cascade, p.margin), (7, false, 0.55));
        let q = OpaParams::from_values(|k| (k == "evidence-frames").then_some(0.0));
        assert_eq!(q.evidence_frames, 0);
        assert_eq!(q.min_gap, OpaParams::default().min_gap);
    }
}
