//! `[[selector]]` tables: a kind, a name, a predictor (OPA) and the kind's parameters, each
//! checked against the kind's parameter table ([`SelectorKind::params`]).

use super::raw::RawSelector;
use super::{Ctx, Problem, S, SelectorSpec};
use opa_predictors::predict::Variant;
use opa_predictors::selectors::{Param, SelectorKind};

/// `[[selector]]` table `i` (`before`: the ones validated so far, whose names it must not
/// repeat), with every parameter of its kind, defaults filled in; None when it names no kind.
pub(super) fn selector(
    ctx: &mut Ctx,
    i: usize,
    raw: &RawSelector,
    before: &[SelectorSpec],
) -> Option<SelectorSpec> {
    let kinds = || {
        SelectorKind::ALL
            .iter()
            .map(|k| k.name())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let Some(kind_value) = raw.0.get("kind") else {
        ctx.problems.push(Problem {
            location: ctx.at(0),
            message: format!("selector[{i}]: `kind` is missing: one of {}", kinds()),
        });
        return None;
    };
    let Some(kind) = kind_value.get_ref().as_str().and_then(SelectorKind::parse) else {
        let written = kind_value.get_ref();
        ctx.push(
            kind_value,
            format!("selector[{i}].kind = {written}: must be one of {}", kinds()),
        );
        return None;
    };
    let mut params: Vec<(String, f64)> = kind
        .params()
        .iter()
        .map(|p| (p.key.to_string(), p.default))
        .collect();
    let mut predictor = kind.takes_predictor().then_some(Variant::Linear);
    let mut name = kind.name().to_string();
    let mut name_at = kind_value.span().start;
    // In the order written, so that problems are reported in the file's order.
    let mut entries: Vec<(&S<String>, &S<toml::Value>)> = raw.0.iter().collect();
    entries.sort_by_key(|(k, _)| k.span().start);
    for (key, v) in entries {
        let key = key.get_ref().as_str();
        match key {
            "kind" => {}
            "name" => match v.get_ref().as_str() {
                Some(n) if n.trim().is_empty() || n.chars().count() > super::MAX_NAME => ctx.push(
                    v,
                    format!(
                        "selector[{i}].name: must be 1 to {} characters",
                        super::MAX_NAME
                    ),
                ),
                Some(n) => {
                    name = n.to_string();
                    name_at = v.span().start;
                }
                None => ctx.push(
                    v,
                    format!("selector[{i}].name = {}: must be a string", v.get_ref()),
                ),
            },
            "predictor" => {
                if !kind.takes_predictor() {
                    ctx.push(
                        v,
                        format!("selector[{i}].predictor applies to kind \"opa\" only"),
                    );
                    continue;
                }
                match v.get_ref().as_str().map(str::parse::<Variant>) {
                    Some(Ok(p)) if p.deployable() => predictor = Some(p),
                    Some(Ok(p)) => ctx.push(
                        v,
                        format!(
                            "selector[{i}].predictor = {:?}: sees the probe's labels, an upper bound for `opa predictors eval` only; choose ratio, linear, shared-mlp or knn",
                            p.name()
                        ),
                    ),
                    Some(Err(e)) => ctx.push(v, format!("selector[{i}].predictor: {e}")),
                    None => ctx.push(v, format!("selector[{i}].predictor = {}: must be a string", v.get_ref())),
                }
            }
            _ => {
                if let Some(x) = parameter(ctx, i, kind, key, v) {
                    let slot = params.iter_mut().find(|(k, _)| k == key);
                    slot.expect("a parameter of the kind").1 = x;
                }
            }
        }
    }
    if before.iter().any(|x| x.name == name) {
        ctx.problems.push(Problem {
            location: ctx.at(name_at),
            message: format!("selector[{i}]: name {name:?} is used twice; give one a `name`"),
        });
    }
    Some(SelectorSpec {
        kind,
        name,
        params,
        predictor,
    })
}

/// The value of parameter `key` of selector `i` of kind `kind`, as written `v`: in the
/// parameter's range (clamped, with a problem reported when outside it); None when the key
/// is not one of the kind's or the value not a number of the right kind.
fn parameter(
    ctx: &mut Ctx,
    i: usize,
    kind: SelectorKind,
    key: &str,
    v: &S<toml::Value>,
) -> Option<f64> {
    let Some(param) = kind.params().iter().find(|p| p.key == key) else {
        let owners: Vec<&str> = SelectorKind::ALL
            .into_iter()
            .filter(|k| k.params().iter().any(|p| p.key == key))
            .map(SelectorKind::name)
            .collect();
        let message = if owners.is_empty() {
            let keys: Vec<&str> = kind.params().iter().map(|p| p.key).collect();
            format!(
                "selector[{i}].{key}: unknown key; kind {:?} takes name, {}{}",
                kind.name(),
                if kind.takes_predictor() {
                    "predictor, "
                } else {
                    ""
                },
                if keys.is_empty() {
                    "no parameters".to_string()
                } else {
                    keys.join(", ")
                }
            )
        } else {
            format!(
                "selector[{i}].{key} does not apply to kind {:?} (only to {})",
                kind.name(),
                owners.join(", ")
            )
        };
        ctx.push(v, message);
        return None;
    };
    let Param {
        min: lo,
        max: hi,
        integer: int,
        ..
    } = *param;
    let x = match v.get_ref() {
        toml::Value::Integer(n) => *n as f64,
        toml::Value::Float(f) if !int => *f,
        other => {
            ctx.push(
                v,
                format!(
                    "selector[{i}].{key} = {other}: must be {}",
                    if int { "an integer" } else { "a number" }
                ),
            );
            return None;
        }
    };
    if !(lo..=hi).contains(&x) {
        ctx.push(
            v,
            format!("selector[{i}].{key} = {x}: must be within {lo}..={hi}"),
        );
    }
    Some(x.clamp(lo, hi))
}
