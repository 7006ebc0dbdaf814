//! `random`: switches to a uniformly drawn candidate every `switch_every` frames (seeded).

use crate::{Context, Decision, Selector};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

crate::selector_params! {
    /// `random`'s parameters.
    pub struct RandomParams {
        /// Frames between two draws of the candidate to serve.
        switch_every: u32 = 30, "switch-every", 1..=1_000_000;
    }
}

/// Serves a random candidate, redrawn every `switch_every` frames.
#[derive(Clone, Debug)]
pub struct RandomSelector {
    rng: ChaCha8Rng,
    switch_every: u64,
    current: Option<usize>,
    since: u64,
}

impl RandomSelector {
    /// A random selector with its own seed.
    pub fn new(seed: u64, switch_every: u32) -> Self {
        RandomSelector {
            rng: ChaCha8Rng::seed_from_u64(seed),
            switch_every: switch_every.max(1) as u64,
            current: None,
            since: 0,
        }
    }
}

impl Selector for RandomSelector {
    fn name(&self) -> &str {
        "random"
    }

    fn decide(&mut self, ctx: &Context) -> Decision {
        if self.current.is_none() || self.since >= self.switch_every {
            self.current = Some(self.rng.random_range(0..ctx.candidates.len()));
            self.since = 0;
        }
        self.since += 1;
        Decision::Serve(self.current.expect("set above"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CandidateInfo;

    #[test]
    fn random_switches_on_schedule_and_is_seeded() {
        let cands: Vec<CandidateInfo> = (0..5)
            .map(|i| CandidateInfo {
                id: i.to_string(),
                macs: i,
                calibration_top1: 0.5,
            })
            .collect();
        let run = |seed| {
            let mut s = RandomSelector::new(seed, 3);
            (0..30u64)
                .map(|f| {
                    match s.decide(&Context {
                        frame: f,
                        arrival_s: 0.0,
                        deadline_ms: 1.0,
                        candidates: &cands,
                        serving: None,
                        waited_ms: 0.0,
                    }) {
                        Decision::Serve(c) => c,
                        d => panic!("random only serves: {d:?}"),
                    }
                })
                .collect::<Vec<_>>()
        };
        let a = run(7);
        assert_eq!(a, run(7));
        assert_ne!(a, run(8));
        assert!(a.chunks(3).all(|c| c.iter().all(|x| *x == c[0])));
        assert!(a.iter().any(|&x| x != a[0]));
    }
}
