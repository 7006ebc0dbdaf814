//! A scenario's frames as the engine, the targets and the oracle see them: their slots on
//! the timeline, their pixels (live runs only), what each shows, and its facts against a
//! calibration profile. `opa run`, `opa replay` and the replay benches build them here.

use crate::engine::FrameSlot;
use crate::profile_target::{FrameFacts, content_index};
use crate::scenario::{Scenario, StreamSource};
use opa_datasets::shipped::{self, Split};
use opa_datasets::stream::{FrameDir, SyntheticStream};
use opa_datasets::{Frame, FrameSource};
use opa_predictors::profile::Profile;
use std::path::Path;
use std::sync::Arc;

/// A scenario's frames.
pub struct Stream {
    /// Arrival, class and condition of every frame.
    pub slots: Vec<FrameSlot>,
    /// The frames' pixels: rendered when asked for (live runs), and always for a stream read
    /// from a directory; empty otherwise.
    pub frames: Vec<Frame>,
    /// Per frame, what it shows (the image of a synthetic stream; each real frame its own).
    pub objects: Vec<u64>,
}

impl Stream {
    /// The frames of scenario `sc` (read from `file`, which errors name), with pixels when
    /// `render`; a directory's frames are read with `channels` channels. Errors (unreadable
    /// shipped data, a bad stream specification, unreadable frames) as text.
    pub fn of(sc: &Scenario, file: &Path, render: bool, channels: u8) -> Result<Stream, String> {
        let mut slots = Vec::new();
        let mut frames = Vec::new();
        let objects;
        match &sc.stream {
            StreamSource::Synthetic(spec) => {
                let eval = Arc::new(
                    shipped::load_shipped_split(Split::Evaluation).map_err(|e| e.to_string())?,
                );
                let s = SyntheticStream::new(eval, spec, sc.seed_stream)
                    .map_err(|e| format!("{}: {e}", file.display()))?;
                objects = (0..s.len()).map(|i| s.object(i)).collect();
                if render {
                    frames = s
                        .frames()
                        .collect::<Result<_, _>>()
                        .map_err(|e| e.to_string())?;
                } else {
                    for i in 0..s.len() {
                        let (label, condition, t) = s.meta(i);
                        slots.push(FrameSlot {
                            arrival_s: t,
                            label,
                            condition: condition.to_string().into(),
                        });
                    }
                }
            }
            StreamSource::Frames { dir, fps } => {
                let s = FrameDir::open(dir, *fps, channels).map_err(|e| e.to_string())?;
                frames = s
                    .frames()
                    .collect::<Result<_, _>>()
                    .map_err(|e| e.to_string())?;
                objects = (0..frames.len() as u64).collect();
            }
        }
        if slots.is_empty() {
            slots = frames
                .iter()
                .map(|f| FrameSlot {
                    arrival_s: f.timestamp_s,
                    label: f.label,
                    condition: f.condition.to_string().into(),
                })
                .collect();
        }
        Ok(Stream {
            slots,
            frames,
            objects,
        })
    }

    /// Every frame's facts (class, object, and content condition in `profile`; condition 0
    /// without one).
    pub fn facts(&self, profile: Option<&Profile>) -> Vec<FrameFacts> {
        self.slots
            .iter()
            .zip(&self.objects)
            .map(|(s, &object)| FrameFacts {
                label: s.label,
                object,
                content: profile.map_or(0, |p| content_index(p, &s.condition)),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendered_and_unrendered_streams_agree_frame_by_frame() {
        // Live runs render the frames, replay reads only their metadata: both must see the
        // same arrivals, classes and conditions.
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/quickstart.toml");
        let sc = crate::scenario::load(&file).expect("the quickstart scenario");
        let meta = Stream::of(&sc, &file, false, 1).expect("metadata");
        let live = Stream::of(&sc, &file, true, 1).expect("rendered");
        assert!(meta.frames.is_empty());
        assert_eq!(live.frames.len(), live.slots.len());
        assert_eq!(meta.slots, live.slots);
        assert_eq!(meta.objects, live.objects);
        assert_eq!(meta.slots.len(), 300);
        assert!(
            meta.slots
                .windows(2)
                .all(|w| w[0].arrival_s < w[1].arrival_s)
        );
        let facts = meta.facts(None);
        assert_eq!(facts.len(), 300);
        assert!(
            facts
                .iter()
                .zip(&meta.slots)
                .all(|(f, s)| f.label == s.label && f.content == 0)
        );
    }
}
