//! The effective scenario: every default written out, in the scenario file format (what a
//! run directory's `scenario.toml` holds).

use super::{Interpolation, Scenario, StreamSource};
use opa_datasets::stream::{ClassMix, SeverityProfile};

impl Scenario {
    /// The scenario in its own file format with every default written out: loading the
    /// result gives this scenario back (paths become absolute where they were resolved).
    pub fn to_toml(&self) -> String {
        use std::fmt::Write;
        let q = |s: &str| toml::Value::String(s.to_string()).to_string();
        let backend = self.backend.name();
        let mut o = String::new();
        let _ = writeln!(
            o,
            "name = {}\ndescription = {}",
            q(&self.name),
            q(&self.description)
        );
        let _ = writeln!(
            o,
            "checkpoint = {}\ncandidates = {}\nprofile = {}",
            q(&self.checkpoint.to_string_lossy()),
            q(&self.candidates.to_string_lossy()),
            q(&self.profile.to_string_lossy())
        );
        let _ = writeln!(
            o,
            "\n[seeds]\nstream = {}\nload = {}\nselector = {}",
            self.seed_stream, self.seed_load, self.seed_selector
        );
        let _ = writeln!(
            o,
            "\n[device]\nbackend = {}\nthreads = {}\nslowdown = {:?}",
            q(backend),
            self.threads,
            self.slowdown
        );
        let _ = writeln!(o, "\n[requirement]\ndeadline-ms = {:?}", self.deadline_ms);
        match &self.stream {
            StreamSource::Frames { dir, fps } => {
                let _ = writeln!(
                    o,
                    "\n[stream]\nframes-dir = {}\nfps = {fps:?}",
                    q(&dir.to_string_lossy())
                );
            }
            StreamSource::Synthetic(spec) => {
                for s in &spec.segments {
                    let _ = writeln!(
                        o,
                        "\n[[stream.segment]]\nduration-s = {:?}\nfps = {:?}",
                        s.duration_s, s.fps
                    );
                    let mix = match &s.class_mix {
                        ClassMix::Uniform => q("uniform"),
                        ClassMix::Weights(w) => format!("{{ weights = {w:?} }}"),
                        ClassMix::Subset(c) => format!("{{ subset = {c:?} }}"),
                    };
                    let _ = writeln!(
                        o,
                        "class-mix = {mix}\nscene-length = {}\njitter-px = {}\nflicker = {:?}",
                        s.scene_length, s.jitter_px, s.flicker as f64
                    );
                    if let Some(c) = &s.corruption {
                        let sev = match &c.severity {
                            SeverityProfile::Constant(v) => v.to_string(),
                            SeverityProfile::Ramp { from, to } => {
                                format!("{{ from = {from}, to = {to} }}")
                            }
                            SeverityProfile::Steps(v) => format!("{v:?}"),
                        };
                        let _ = writeln!(o, "corruption = {}\nseverity = {sev}", q(c.kind.name()));
                    }
                }
            }
        }
        let _ = writeln!(
            o,
            "\n[workload]\ninterpolation = {}",
            q(if self.workload.interpolation == Interpolation::Step {
                "step"
            } else {
                "linear"
            })
        );
        // Points become phases; the last one holds to the end.
        for (i, p) in self.workload.points.iter().enumerate() {
            let d = self
                .workload
                .points
                .get(i + 1)
                .map_or(1.0, |n| n.time_s - p.time_s);
            let _ = writeln!(
                o,
                "\n[[workload.phase]]\nduration-s = {d:?}\ncpu-load = {:?}\ngpu-load = {:?}",
                p.cpu_load, p.gpu_load
            );
        }
        for s in &self.selectors {
            let _ = writeln!(
                o,
                "\n[[selector]]\nkind = {}\nname = {}",
                q(s.kind.name()),
                q(&s.name)
            );
            if let Some(p) = s.predictor {
                let _ = writeln!(o, "predictor = {}", q(p.name()));
            }
            for (k, v) in &s.params {
                let integer = s.kind.params().iter().any(|p| p.key == k && p.integer);
                let v = if integer {
                    toml::Value::from(*v as i64)
                } else {
                    toml::Value::from(*v)
                };
                let _ = writeln!(o, "{k} = {v}");
            }
        }
        let _ = writeln!(
            o,
            "\n[output]\ndir = {}",
            q(&self.output_dir.to_string_lossy())
        );
        o
    }
}
