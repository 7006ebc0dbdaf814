//! `[[stream.segment]]` tables: a synthetic stream's segments (duration, frame rate, class
//! mix, scenes, corruption schedule).

use super::raw::{RawClassMix, RawRamp, RawSegment, RawSeverity};
use super::{Ctx, S, SEGMENT_FPS, in_range, int_range, positive};
use opa_datasets::CorruptionKind;
use opa_datasets::stream::{ClassMix, CorruptionSchedule, Segment, SeverityProfile};

pub(super) fn segment(ctx: &mut Ctx, i: usize, s: &S<RawSegment>) -> Segment {
    let r = s.get_ref();
    let key = |k: &str| format!("stream.segment[{i}].{k}");
    let duration_s = positive(ctx, &r.duration_s, &key("duration-s"));
    let fps = in_range(
        ctx,
        &r.fps,
        &key("fps"),
        *SEGMENT_FPS.start(),
        *SEGMENT_FPS.end(),
    );
    let mut seg = Segment::clean(duration_s, fps);
    if let Some(v) = &r.scene_length {
        seg.scene_length = int_range(ctx, v, &key("scene-length"), 1, 100_000) as u32;
    }
    if let Some(v) = &r.jitter_px {
        seg.jitter_px = int_range(ctx, v, &key("jitter-px"), 0, 8) as u8;
    }
    if let Some(v) = &r.flicker {
        seg.flicker = in_range(ctx, v, &key("flicker"), 0.0, 0.5) as f32;
    }
    if let Some(m) = &r.class_mix {
        seg.class_mix = match m.get_ref() {
            RawClassMix::Named(n) if n == "uniform" => ClassMix::Uniform,
            RawClassMix::Named(n) => {
                ctx.push(m, format!("{} = {n:?}: must be \"uniform\", {{ weights = [...] }} or {{ subset = [...] }}", key("class-mix")));
                ClassMix::Uniform
            }
            RawClassMix::Table(t) => match (&t.weights, &t.subset) {
                (Some(w), None)
                    if w.len() == 10
                        && w.iter().all(|x| *x >= 0.0 && x.is_finite())
                        && w.iter().sum::<f64>() > 0.0 =>
                {
                    ClassMix::Weights(w.clone())
                }
                (Some(w), None) => {
                    ctx.push(m, format!("{}.weights: need 10 non-negative weights (one per class) with a positive sum, got {w:?}", key("class-mix")));
                    ClassMix::Uniform
                }
                (None, Some(sub)) if !sub.is_empty() && sub.iter().all(|c| (0..10).contains(c)) => {
                    ClassMix::Subset(sub.iter().map(|&c| c as u16).collect())
                }
                (None, Some(sub)) => {
                    ctx.push(
                        m,
                        format!(
                            "{}.subset: need class indices within 0..=9, got {sub:?}",
                            key("class-mix")
                        ),
                    );
                    ClassMix::Uniform
                }
                _ => {
                    ctx.push(
                        m,
                        format!(
                            "{}: give exactly one of weights or subset",
                            key("class-mix")
                        ),
                    );
                    ClassMix::Uniform
                }
            },
        };
    }
    match (&r.corruption, &r.severity) {
        (Some(c), sev) => {
            let kind = match c.get_ref().parse::<CorruptionKind>() {
                Ok(k) => Some(k),
                Err(e) => {
                    ctx.push(c, format!("{} = {:?}: {e}", key("corruption"), c.get_ref()));
                    None
                }
            };
            let check = |ctx: &mut Ctx, v: i64| -> u8 {
                if !(0..=5).contains(&v) {
                    let sv = sev.as_ref().expect("checked only when given");
                    ctx.push(
                        sv,
                        format!("{} = {v}: must be within 0..=5", key("severity")),
                    );
                }
                v.clamp(0, 5) as u8
            };
            let severity = match sev.as_ref().map(|s| s.get_ref()) {
                None => {
                    ctx.push(
                        c,
                        format!(
                            "{}: a corrupted segment needs {}",
                            key("corruption"),
                            key("severity")
                        ),
                    );
                    SeverityProfile::Constant(0)
                }
                Some(RawSeverity::Constant(v)) => SeverityProfile::Constant(check(ctx, *v)),
                Some(RawSeverity::Ramp(RawRamp { from, to })) => SeverityProfile::Ramp {
                    from: check(ctx, *from),
                    to: check(ctx, *to),
                },
                Some(RawSeverity::Steps(v)) if v.is_empty() => {
                    ctx.push(
                        sev.as_ref().expect("given"),
                        format!("{}: steps must not be empty", key("severity")),
                    );
                    SeverityProfile::Constant(0)
                }
                Some(RawSeverity::Steps(v)) => {
                    SeverityProfile::Steps(v.iter().map(|x| check(ctx, *x)).collect())
                }
            };
            seg.corruption = kind.map(|kind| CorruptionSchedule { kind, severity });
        }
        (None, Some(sev)) => ctx.push(
            sev,
            format!("{} needs {}", key("severity"), key("corruption")),
        ),
        (None, None) => {}
    }
    seg
}
