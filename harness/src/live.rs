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
use std::time::Instant;

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
    /// Load × wall seconds requested so far, and the wall clock it is measured against.
    load_seconds: f64,
    last_mark: Instant,
    started: Instant,
}

impl<'a> LiveTarget<'a> {
    /// A live target over prepared plans and frames.
    pub fn new(
        plans: &'a [Plan],
        cfg: &'a SupernetConfig,
        frames: &'a [Frame],
        device: &'a Device,
        injector: Option<&'a CpuInjector>,
        workload: &'a Workload,
        slowdown: f64,
    ) -> Self {
        let now = Instant::now();
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
            current_load: 0.0,
            current_gpu_load: 0.0,
            load_seconds: 0.0,
            last_mark: now,
            started: now,
        }
    }

    /// Adds a GPU co-runner that follows the trace's `gpu_load`.
    pub fn with_gpu(mut self, gpu: Option<&'a GpuInjector>) -> Self {
        self.gpu = gpu;
        self
    }

    fn mark(&mut self) {
        let now = Instant::now();
        self.load_seconds += self.current_load * now.duration_since(self.last_mark).as_secs_f64();
        self.last_mark = now;
    }

    /// The CPU load requested on average over wall-clock time since the target was made:
    /// what the injector's achieved load is compared with.
    pub fn time_weighted_load(&mut self) -> f64 {
        self.mark();
        self.load_seconds / self.started.elapsed().as_secs_f64().max(1e-9)
    }
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
    fn run(&mut self, candidate: usize, frame: usize, start_s: f64) -> Result<Inference, String> {
        let point = self.workload.at(start_s);
        let load = point.cpu_load;
        self.requested.push(load);
        if let Some(g) = self.gpu
            && (point.gpu_load - self.current_gpu_load).abs() > 1e-9
        {
            g.set_load(point.gpu_load);
            self.current_gpu_load = point.gpu_load;
        }
        if let Some(inj) = self.injector
            && (load - self.current_load).abs() > 1e-9
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
        Ok(Inference {
            compute_ms,
            predicted,
            confidence,
            entropy,
            margin,
        })
    }
}
