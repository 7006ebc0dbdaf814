//! The background load over time: a trace file or phases, read into a [`Workload`].

use super::raw::RawWorkload;
use super::{Ctx, in_range, positive, resolve};
use crate::backend::Backend;
use serde::Serialize;
use std::path::Path;

/// How trace values between two points are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Interpolation {
    /// Hold each value until the next point.
    Step,
    /// Linear between points.
    Linear,
}

/// One point of a workload trace: from `time_s` on, these loads.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct LoadPoint {
    /// Seconds from the start of the stream.
    pub time_s: f64,
    /// Share of CPU cores kept busy, 0..=1.
    pub cpu_load: f64,
    /// GPU duty cycle, 0..=1.
    pub gpu_load: f64,
}

/// The background workload over time.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Workload {
    /// Points in time order, the first at 0 s.
    pub points: Vec<LoadPoint>,
    /// Between points.
    pub interpolation: Interpolation,
}

impl Workload {
    /// The load at `t_s` seconds.
    pub fn at(&self, t_s: f64) -> LoadPoint {
        let i = self
            .points
            .partition_point(|p| p.time_s <= t_s)
            .saturating_sub(1);
        self.in_segment(i, t_s)
    }

    /// [`Workload::at`] for callers that ask in time order: `hint` is the segment of the
    /// previous ask, tried first (and updated), the same point whatever it holds.
    pub fn at_from(&self, hint: &mut usize, t_s: f64) -> LoadPoint {
        let pts = &self.points;
        let i = *hint;
        // The segment `at` finds: the last point at or before `t_s` (else the first).
        let holds = i < pts.len()
            && (pts[i].time_s <= t_s || i == 0)
            && pts.get(i + 1).is_none_or(|q| q.time_s > t_s);
        if !holds {
            *hint = pts.partition_point(|p| p.time_s <= t_s).saturating_sub(1);
        }
        self.in_segment(*hint, t_s)
    }

    /// The load at `t_s` in the segment from point `i`.
    fn in_segment(&self, i: usize, t_s: f64) -> LoadPoint {
        let p = self.points[i];
        match (self.interpolation, self.points.get(i + 1)) {
            (Interpolation::Linear, Some(q)) if q.time_s > p.time_s => {
                let a = ((t_s - p.time_s) / (q.time_s - p.time_s)).clamp(0.0, 1.0);
                LoadPoint {
                    time_s: t_s,
                    cpu_load: p.cpu_load + a * (q.cpu_load - p.cpu_load),
                    gpu_load: p.gpu_load + a * (q.gpu_load - p.gpu_load),
                }
            }
            _ => LoadPoint { time_s: t_s, ..p },
        }
    }

    /// The trace along the load axis of a profile calibrated on `backend`: `opa calibrate`
    /// injects its load levels with a GPU co-runner on `tch-cuda` and a CPU one elsewhere, so
    /// for `tch-cuda` the returned trace carries `gpu_load` where replay from a profile and
    /// the oracle read a frame's load (`cpu_load`). Other backends get the trace unchanged.
    pub fn on_profile_axis(&self, backend: Backend) -> Workload {
        if backend != Backend::TchCuda {
            return self.clone();
        }
        Workload {
            points: self
                .points
                .iter()
                .map(|p| LoadPoint {
                    time_s: p.time_s,
                    cpu_load: p.gpu_load,
                    gpu_load: p.gpu_load,
                })
                .collect(),
            interpolation: self.interpolation,
        }
    }
}

pub(super) fn workload(ctx: &mut Ctx, raw: Option<&RawWorkload>, base: &Path) -> Workload {
    let mut interpolation = Interpolation::Step;
    let Some(w) = raw else {
        return Workload {
            points: vec![LoadPoint {
                time_s: 0.0,
                cpu_load: 0.0,
                gpu_load: 0.0,
            }],
            interpolation,
        };
    };
    if let Some(i) = &w.interpolation {
        interpolation = match i.get_ref().as_str() {
            "step" => Interpolation::Step,
            "linear" => Interpolation::Linear,
            other => {
                ctx.push(
                    i,
                    format!("workload.interpolation = {other:?}: must be \"step\" or \"linear\""),
                );
                Interpolation::Step
            }
        };
    }
    let mut points = Vec::new();
    match (&w.trace, w.phase.is_empty()) {
        (Some(t), true) => {
            let path = resolve(base, t.get_ref());
            match super::read_text(&path) {
                Ok(text) => match parse_trace(&text) {
                    Ok(p) => points = p,
                    Err(e) => ctx.push(
                        t,
                        format!(
                            "workload.trace = {:?}: {}: {e}",
                            t.get_ref(),
                            path.display()
                        ),
                    ),
                },
                Err(e) => ctx.push(
                    t,
                    format!(
                        "workload.trace = {:?}: {}: {e}",
                        t.get_ref(),
                        path.display()
                    ),
                ),
            }
        }
        (Some(t), false) => ctx.push(
            t,
            "workload: give either trace or [[workload.phase]] tables, not both".into(),
        ),
        (None, _) => {
            let mut t = 0.0;
            for (i, p) in w.phase.iter().enumerate() {
                let r = p.get_ref();
                let d = positive(
                    ctx,
                    &r.duration_s,
                    &format!("workload.phase[{i}].duration-s"),
                );
                let cpu = r.cpu_load.as_ref().map_or(0.0, |v| {
                    in_range(ctx, v, &format!("workload.phase[{i}].cpu-load"), 0.0, 1.0)
                });
                let gpu = r.gpu_load.as_ref().map_or(0.0, |v| {
                    in_range(ctx, v, &format!("workload.phase[{i}].gpu-load"), 0.0, 1.0)
                });
                points.push(LoadPoint {
                    time_s: t,
                    cpu_load: cpu,
                    gpu_load: gpu,
                });
                t += d;
            }
        }
    }
    if points.is_empty() {
        points.push(LoadPoint {
            time_s: 0.0,
            cpu_load: 0.0,
            gpu_load: 0.0,
        });
    }
    Workload {
        points,
        interpolation,
    }
}

/// Parses a workload trace CSV: header `time_s,cpu_load,gpu_load`, rows in increasing time
/// starting at 0, loads within 0..=1.
pub fn parse_trace(text: &str) -> Result<Vec<LoadPoint>, String> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .comment(Some(b'#'))
        .from_reader(text.as_bytes());
    let line = |r: &csv::StringRecord| r.position().map_or(0, csv::Position::line);
    let mut records = reader
        .records()
        .filter(|r| !r.as_ref().is_ok_and(|r| r.iter().all(str::is_empty)));
    match records.next() {
        Some(Ok(h)) if h.iter().eq(["time_s", "cpu_load", "gpu_load"]) => {}
        Some(Ok(h)) => {
            return Err(format!(
                "line {}: header is `{}`, expected `time_s,cpu_load,gpu_load`",
                line(&h),
                h.iter().collect::<Vec<_>>().join(",")
            ));
        }
        Some(Err(e)) => return Err(e.to_string()),
        None => return Err("empty trace".into()),
    }
    let mut points: Vec<LoadPoint> = Vec::new();
    for r in records {
        let r = r.map_err(|e| e.to_string())?;
        let i = line(&r);
        let num = |s: &str| {
            s.parse::<f64>()
                .map_err(|_| format!("line {i}: `{s}` is not a number"))
        };
        if r.len() != 3 {
            return Err(format!("line {i}: expected 3 columns, found {}", r.len()));
        }
        let p = LoadPoint {
            time_s: num(&r[0])?,
            cpu_load: num(&r[1])?,
            gpu_load: num(&r[2])?,
        };
        if !(0.0..=1.0).contains(&p.cpu_load) || !(0.0..=1.0).contains(&p.gpu_load) {
            return Err(format!("line {i}: loads must be within 0..=1"));
        }
        if !p.time_s.is_finite() {
            return Err(format!("line {i}: time `{}` is not a finite number", &r[0]));
        }
        if points.last().is_some_and(|q| p.time_s <= q.time_s)
            || (points.is_empty() && p.time_s != 0.0)
        {
            return Err(format!("line {i}: times must start at 0 and increase"));
        }
        points.push(p);
    }
    if points.is_empty() {
        return Err("no rows after the header".into());
    }
    Ok(points)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_load_from_a_hint_is_the_load_at_the_time_whatever_the_hint() {
        let points = [(2.0, 0.1), (5.0, 0.9), (6.0, 0.3), (9.0, 0.6)]
            .iter()
            .map(|&(time_s, cpu_load)| LoadPoint {
                time_s,
                cpu_load,
                gpu_load: cpu_load / 2.0,
            })
            .collect();
        for interpolation in [Interpolation::Step, Interpolation::Linear] {
            let w = Workload {
                points: Vec::clone(&points),
                interpolation,
            };
            // In time order, backwards, jumping, at the points, outside them, NaN.
            let mut times: Vec<f64> = (0..120).map(|k| k as f64 * 0.1).collect();
            times.extend((0..120).rev().map(|k| k as f64 * 0.1));
            times.extend([
                9.0,
                2.0,
                5.0,
                1.0,
                6.0,
                20.0,
                5.5,
                f64::NAN,
                0.0,
                6.0,
                5.999,
            ]);
            let mut hint = 0;
            for &t in &times {
                let (want, got) = (w.at(t), w.at_from(&mut hint, t));
                assert_eq!(want.cpu_load.to_bits(), got.cpu_load.to_bits(), "{t}");
                assert_eq!(want.gpu_load.to_bits(), got.gpu_load.to_bits(), "{t}");
            }
            // Whatever the hint holds.
            for bad in [0, 1, 3, 4, 100] {
                let mut hint = bad;
                assert_eq!(w.at_from(&mut hint, 5.5), w.at(5.5));
            }
        }
    }
}
