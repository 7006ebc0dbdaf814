//! The live target: candidates cut from the super-network, run for real on a burn backend
//! under the injected load that the trace asks for at each run's virtual start time.

use crate::engine::{Inference, Target};
use crate::load::{CpuInjector, GpuInjector, RUN_GAP};
use crate::scenario::Workload;
use burn::tensor::Device;
use burn::tensor::activation::softmax;
use opa_datasets::Frame;
use opa_supernet::arch::SupernetConfig;
use opa_supernet::model::{BnMode, BnStats, Plan, batch_tensor};
use std::cell::RefCell;
use std::collections::HashMap;
use std::time::Instant;

/// Measured runs that selectors share: key (frame, candidate, virtual start time's bits,
/// whether the asking selector's previous run was the same candidate). Within one deadline
/// of `opa run`, a selector that runs the candidate another one already ran on the same frame,
/// at the same moment of the trace and from the same warm or cold state, is handed that
/// measurement instead of a new one: its distribution is the same, and differences between
/// selectors then come from their decisions rather than from timing luck (common random
/// numbers; replays from a profile draw outcomes the same way).
pub type RunCache = RefCell<HashMap<(usize, usize, u64, bool), Inference>>;

/// Runs extracted candidate networks on pre-rendered frames.
pub struct LiveTarget<'a> {
    /// One standalone network per candidate.
    pub plans: &'a [Plan],
    /// The super-network configuration (input normalisation).
    pub cfg: &'a SupernetConfig,
    /// The frames, rendered before the clock starts.
    pub frames: &'a [Frame],
    /// Where the networks run.
    pub device: &'a Device,
    /// The CPU co-runner (absent when the workload never asks for CPU load).
    pub injector: Option<&'a CpuInjector>,
    /// The GPU co-runner (tch-cuda scenarios that ask for GPU load).
    pub gpu: Option<&'a GpuInjector>,
    /// The load over virtual time.
    pub workload: &'a Workload,
    /// Compute times are multiplied by this (1 = real device).
    pub slowdown: f64,
    /// CPU load requested at each run (one entry per run, for the samples table).
    pub requested: Vec<f64>,
    current_load: f64,
    current_gpu_load: f64,
    /// Load × wall seconds requested while active, and the active wall seconds.
    load_seconds: f64,
    active_seconds: f64,
    /// Load × wall seconds the CPU and GPU co-runners achieved while this target was active.
    cpu_achieved_seconds: f64,
    gpu_achieved_seconds: f64,
    /// Since when the target is active (None while paused), with the co-runners' marks.
    active: Option<Active>,
    /// Runs shared with other selectors, when sharing.
    cache: Option<&'a RunCache>,
    /// The candidate this target ran last (for the cache's warm or cold key).
    last: Option<usize>,
    /// Runs taken from the cache instead of measured.
    pub shared_runs: usize,
}

/// Where an active stretch of a [`LiveTarget`] began.
#[derive(Clone, Copy)]
struct Active {
    last_mark: Instant,
    since: Instant,
    cpu: Option<(u64, Instant)>,
    gpu: Option<(u64, Instant)>,
}

impl<'a> LiveTarget<'a> {
    /// A live target over prepared plans and frames, paused: [`LiveTarget::resume`] starts
    /// its load accounting before its first turn.
    pub fn new(
        plans: &'a [Plan],
        cfg: &'a SupernetConfig,
        frames: &'a [Frame],
        device: &'a Device,
        injector: Option<&'a CpuInjector>,
        workload: &'a Workload,
        slowdown: f64,
    ) -> Self {
        LiveTarget {
            plans,
            cfg,
            frames,
            device,
            injector,
            gpu: None,
            workload,
            slowdown,
            requested: Vec::new(),
            current_load: f64::NAN,
            current_gpu_load: f64::NAN,
            load_seconds: 0.0,
            active_seconds: 0.0,
            cpu_achieved_seconds: 0.0,
            gpu_achieved_seconds: 0.0,
            active: None,
            cache: None,
            last: None,
            shared_runs: 0,
        }
    }

    /// Adds a GPU co-runner that follows the trace's `gpu_load`.
    pub fn with_gpu(mut self, gpu: Option<&'a GpuInjector>) -> Self {
        self.gpu = gpu;
        self
    }

    /// Shares measured runs through `cache` (see [`RunCache`]).
    pub fn with_cache(mut self, cache: Option<&'a RunCache>) -> Self {
        self.cache = cache;
        self
    }

    fn mark(&mut self) {
        if let Some(a) = self.active.as_mut() {
            let now = Instant::now();
            self.load_seconds += self.current_load.max(0.0) * (now - a.last_mark).as_secs_f64();
            a.last_mark = now;
        }
    }

    /// Stops counting wall time against this target (another selector's turn on the shared
    /// co-runners begins); [`LiveTarget::resume`] starts again.
    pub fn pause(&mut self) {
        self.mark();
        if let Some(a) = self.active.take() {
            let wall = a.since.elapsed().as_secs_f64();
            self.active_seconds += wall;
            if let (Some(i), Some(m)) = (self.injector, a.cpu) {
                self.cpu_achieved_seconds += i.achieved_since(m) * wall;
            }
            if let (Some(g), Some(m)) = (self.gpu, a.gpu) {
                self.gpu_achieved_seconds += g.achieved_since(m) * wall;
            }
        }
    }

    /// Starts counting wall time again; the next run sets the co-runners' load afresh (another
    /// target may have moved it).
    pub fn resume(&mut self) {
        if self.active.is_some() {
            return;
        }
        let now = Instant::now();
        self.active = Some(Active {
            last_mark: now,
            since: now,
            cpu: self.injector.map(|i| i.achieved_since_reset()),
            gpu: self.gpu.map(|g| g.mark()),
        });
        self.current_load = f64::NAN;
        self.current_gpu_load = f64::NAN;
    }

    /// Pauses the target and averages over the wall-clock time it was active: the CPU load
    /// requested (what the injector's achieved load is compared with), the CPU load the
    /// injector achieved and the GPU duty cycle the co-runner achieved (0 without them).
    pub fn load_account(&mut self) -> LoadAccount {
        self.pause();
        let wall = self.active_seconds.max(1e-9);
        LoadAccount {
            requested: self.load_seconds / wall,
            cpu_achieved: self.cpu_achieved_seconds / wall,
            gpu_achieved: self.gpu_achieved_seconds / wall,
        }
    }
}

/// Loads averaged over a [`LiveTarget`]'s active wall-clock time.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LoadAccount {
    /// CPU load the trace asked for.
    pub requested: f64,
    /// CPU load the injector achieved.
    pub cpu_achieved: f64,
    /// GPU duty cycle the co-runner achieved.
    pub gpu_achieved: f64,
}

/// Confidence, entropy and margin of one probability row, with its argmax.
pub fn signals(probs: &[f32]) -> (u16, f32, f32, f32) {
    let mut best = (0usize, f32::MIN);
    let mut second = f32::MIN;
    let mut entropy = 0.0f32;
    for (i, &p) in probs.iter().enumerate() {
        if p > best.1 {
            second = best.1;
            best = (i, p);
        } else if p > second {
            second = p;
        }
        if p > 0.0 {
            entropy -= p * p.ln();
        }
    }
    (best.0 as u16, best.1, entropy, best.1 - second.max(0.0))
}

impl Target for LiveTarget<'_> {
    fn cpu_load_at(&self, t_s: f64) -> f64 {
        self.workload.at(t_s).cpu_load
    }

    fn run(&mut self, candidate: usize, frame: usize, start_s: f64) -> Result<Inference, String> {
        let point = self.workload.at(start_s);
        let load = point.cpu_load;
        self.requested.push(load);
        let key = (
            frame,
            candidate,
            start_s.to_bits(),
            self.last == Some(candidate),
        );
        self.last = Some(candidate);
        if let Some(inf) = self.cache.and_then(|c| c.borrow().get(&key).copied()) {
            self.shared_runs += 1;
            return Ok(inf);
        }
        if let Some(g) = self.gpu
            && (self.current_gpu_load.is_nan()
                || (point.gpu_load - self.current_gpu_load).abs() > 1e-9)
        {
            g.set_load(point.gpu_load);
            self.current_gpu_load = point.gpu_load;
        }
        if let Some(inj) = self.injector
            && (self.current_load.is_nan() || (load - self.current_load).abs() > 1e-9)
        {
            self.mark();
            inj.set_load(load);
            self.current_load = load;
        }
        // Idle before every run, as between frames (and as calibration measures latency).
        std::thread::sleep(RUN_GAP);
        let plan = self
            .plans
            .get(candidate)
            .ok_or_else(|| format!("no candidate {candidate}"))?;
        let f = self
            .frames
            .get(frame)
            .ok_or_else(|| format!("no frame {frame}"))?;
        let empty = BnStats::default();
        let t = Instant::now();
        let x = batch_tensor(self.cfg, &[&f.image.data], self.device);
        let probs: Vec<f32> = softmax(plan.forward(x, &mut BnMode::Stored(&empty)), 1)
            .into_data()
            .try_to_vec::<f32>()
            .map_err(|e| format!("{e:?}"))?;
        let compute_ms = t.elapsed().as_secs_f64() * 1000.0 * self.slowdown;
        let (predicted, confidence, entropy, margin) = signals(&probs);
        let inf = Inference {
            compute_ms,
            predicted,
            confidence,
            entropy,
            margin,
        };
        if let Some(c) = self.cache {
            c.borrow_mut().insert(key, inf);
        }
        Ok(inf)
    }
}
