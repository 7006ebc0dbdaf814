//! Load injection: CPU co-runner threads doing real arithmetic with a duty cycle.
//!
//! `load` is the share of the loaded cores kept busy. The injector runs
//! [`WORKERS_PER_CORE`] threads per core, each spinning on floating-point work for
//! `load / WORKERS_PER_CORE` of its time and sleeping the rest, in short periods whose lengths
//! are drawn at random around [`PERIOD`] (uniform in ½–1½ × `PERIOD`).
//!
//! Why this shape (measured with `opa load check` on a 2-core machine): with one worker per
//! core and fixed 5 ms periods the timed runs fitted into the idle gaps and mean latency
//! *fell* from load 0.5 to 0.75; the scheduler gives a short inference whole slices, so only
//! the tail moved. Random periods remove the beat, and several half-duty workers per core
//! interleave with the inference at a finer grain, so the mean and the 95th percentile rise
//! with load at every step.
//!
//! A worker keeps account of the busy time it owes since the load was last set and spins
//! for exactly that much each period, so sleep overshoot does not lower the achieved load.
//! The target is set by the replay clock from the trace. Workers stop when the injector is
//! dropped (end of run, error, Ctrl-C unwinding): the drop guard joins them, so no thread
//! outlives the run.

use rand::{Rng, SeedableRng};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Mean length of one duty-cycle period (each is drawn from ½–1½ × this).
pub const PERIOD: Duration = Duration::from_millis(1);

/// Idle time before each timed run in live replays, calibration and `opa load check`: the
/// longest duty-cycle period, so a run sees a new load, and the inference thread wakes up
/// for every run as it does between frames in a deployment. Measuring latency the same way
/// everywhere keeps the profile's tails equal to the live ones.
pub const RUN_GAP: Duration = Duration::from_nanos(PERIOD.as_nanos() as u64 * 3 / 2);

/// Worker threads per loaded core.
pub const WORKERS_PER_CORE: usize = 2;

struct Shared {
    stop: AtomicBool,
    /// Target duty cycle of each thread in millionths (0..=1_000_000).
    load_ppm: AtomicU32,
    /// Busy nanoseconds done, all workers together.
    busy_ns: AtomicU64,
}

impl Shared {
    /// (busy ns so far, now).
    fn mark(&self) -> (u64, Instant) {
        (self.busy_ns.load(Ordering::Relaxed), Instant::now())
    }

    /// Busy time since `mark` over wall time × `cores`.
    fn achieved_since(&self, mark: (u64, Instant), cores: usize) -> f64 {
        let busy = self.busy_ns.load(Ordering::Relaxed).saturating_sub(mark.0) as f64;
        busy / (mark.1.elapsed().as_nanos() as f64 * cores.max(1) as f64).max(1.0)
    }
}

/// A running CPU load injector; dropping it stops and joins every worker.
pub struct CpuInjector {
    shared: Arc<Shared>,
    cores: usize,
    workers: Vec<JoinHandle<()>>,
    started: Instant,
}

impl CpuInjector {
    /// Starts loading `cores` cores ([`WORKERS_PER_CORE`] threads each) at load 0. `seed`
    /// draws the threads' period lengths (each its own stream), so they do not beat in step
    /// with the measured inference.
    pub fn start(cores: usize, seed: u64) -> Self {
        let cores = cores.max(1);
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            load_ppm: AtomicU32::new(0),
            busy_ns: AtomicU64::new(0),
        });
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let workers = (0..cores * WORKERS_PER_CORE)
            .map(|w| {
                let s = shared.clone();
                let wrng = rand_chacha::ChaCha8Rng::seed_from_u64(rng.random());
                std::thread::Builder::new()
                    .name(format!("opa-load-{w}"))
                    .spawn(move || worker(&s, wrng))
                    .expect("spawning a load thread")
            })
            .collect();
        CpuInjector {
            shared,
            cores,
            workers,
            started: Instant::now(),
        }
    }

    /// Sets the target load (share of the loaded cores kept busy, clamped to 0..=1).
    pub fn set_load(&self, load: f64) {
        // Each thread's duty cycle: the cores' share spread over their threads.
        let duty = load.clamp(0.0, 1.0) / WORKERS_PER_CORE as f64;
        self.shared
            .load_ppm
            .store((duty * 1e6) as u32, Ordering::Relaxed);
    }

    /// Busy time done so far over wall time × cores (what the injector really achieved).
    pub fn achieved(&self) -> f64 {
        let wall = self.started.elapsed().as_nanos() as f64 * self.cores as f64;
        self.shared.busy_ns.load(Ordering::Relaxed) as f64 / wall.max(1.0)
    }

    /// A mark for [`CpuInjector::achieved_since`]: (busy ns so far, now).
    pub fn achieved_since_reset(&self) -> (u64, Instant) {
        self.shared.mark()
    }

    /// Load achieved since `mark`: busy time over wall time × cores.
    pub fn achieved_since(&self, mark: (u64, Instant)) -> f64 {
        self.shared.achieved_since(mark, self.cores)
    }

    /// Number of worker threads.
    pub fn workers(&self) -> usize {
        self.workers.len()
    }
}

fn worker(s: &Shared, mut rng: rand_chacha::ChaCha8Rng) {
    let mut x = 1.0001f64;
    // Busy time owed is counted from the moment the load last changed.
    let (mut load_ppm, mut since, mut busy_since) = (u32::MAX, Instant::now(), Duration::ZERO);
    while !s.stop.load(Ordering::Relaxed) {
        let ppm = s.load_ppm.load(Ordering::Relaxed);
        if ppm != load_ppm {
            (load_ppm, since, busy_since) = (ppm, Instant::now(), Duration::ZERO);
        }
        let load = ppm as f64 / 1e6;
        let period = PERIOD.mul_f64(rng.random_range(0.5..1.5));
        let period_start = Instant::now();
        // What keeps busy / elapsed at `load` by the end of this period, within 0..=period.
        let owed = (since.elapsed() + period).mul_f64(load);
        let busy = owed.saturating_sub(busy_since).min(period);
        while period_start.elapsed() < busy {
            for _ in 0..64 {
                x = (x * 1.000_000_1 + 1e-9).sqrt() + 0.5;
            }
            std::hint::black_box(x);
        }
        let spun = period_start.elapsed();
        busy_since += spun;
        s.busy_ns
            .fetch_add(spun.as_nanos() as u64, Ordering::Relaxed);
        if let Some(rest) = period.checked_sub(period_start.elapsed()) {
            std::thread::sleep(rest);
        }
    }
}

impl Drop for CpuInjector {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

/// Side of the square matrices the GPU co-runner multiplies.
pub const GPU_MATRIX: usize = 2048;
/// Length of one GPU duty-cycle period.
pub const GPU_PERIOD: Duration = Duration::from_millis(20);

/// A running GPU load injector: one thread multiplies `GPU_MATRIX`² matrices on the device
/// for `load × GPU_PERIOD` of each period (each product is waited for, so the busy time is
/// the device's), then sleeps. Meant for `tch-cuda`; on any other device it loads that
/// device (on a CPU backend, the CPU). Dropping it stops and joins the thread.
pub struct GpuInjector {
    shared: Arc<Shared>,
    worker: Option<JoinHandle<()>>,
}

impl GpuInjector {
    /// Starts the co-runner on `device` at load 0, multiplying `matrix`² matrices
    /// ([`GPU_MATRIX`] for a real GPU; small ones for tests on CPU devices).
    pub fn start(device: burn::tensor::Device, matrix: usize) -> Self {
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            load_ppm: AtomicU32::new(0),
            busy_ns: AtomicU64::new(0),
        });
        let s = shared.clone();
        let worker = std::thread::Builder::new()
            .name("opa-gpu-load".into())
            .spawn(move || gpu_worker(&s, &device, matrix.max(1)))
            .expect("spawning the GPU load thread");
        GpuInjector {
            shared,
            worker: Some(worker),
        }
    }

    /// Sets the target duty cycle (clamped to 0..=1).
    pub fn set_load(&self, load: f64) {
        self.shared
            .load_ppm
            .store((load.clamp(0.0, 1.0) * 1e6) as u32, Ordering::Relaxed);
    }

    /// A mark for [`GpuInjector::achieved_since`].
    pub fn mark(&self) -> (u64, Instant) {
        self.shared.mark()
    }

    /// Duty cycle achieved since `mark`.
    pub fn achieved_since(&self, mark: (u64, Instant)) -> f64 {
        self.shared.achieved_since(mark, 1)
    }
}

fn gpu_worker(s: &Shared, device: &burn::tensor::Device, n: usize) {
    use burn::tensor::{Distribution, Tensor};
    let a: Tensor<2> = Tensor::random([n, n], Distribution::Default, device);
    let b: Tensor<2> = Tensor::random([n, n], Distribution::Default, device);
    while !s.stop.load(Ordering::Relaxed) {
        let load = s.load_ppm.load(Ordering::Relaxed) as f64 / 1e6;
        let period_start = Instant::now();
        let busy = GPU_PERIOD.mul_f64(load);
        while period_start.elapsed() < busy && !s.stop.load(Ordering::Relaxed) {
            // Reading one value back waits for the product: the time is the device's.
            let _ = a.clone().matmul(b.clone()).slice([0..1, 0..1]).into_data();
        }
        s.busy_ns
            .fetch_add(period_start.elapsed().as_nanos() as u64, Ordering::Relaxed);
        if let Some(rest) = GPU_PERIOD.checked_sub(period_start.elapsed()) {
            std::thread::sleep(rest);
        }
    }
}

impl Drop for GpuInjector {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

/// Whichever co-runner injects a load: CPU spinners or the GPU matrix-multiply loop, behind
/// one interface for the commands that use one or the other (`opa calibrate`, `opa load
/// check`).
pub enum CoRunner {
    Cpu(CpuInjector),
    Gpu(GpuInjector),
}

impl CoRunner {
    /// CPU spinners on `cores` cores ([`CpuInjector::start`]).
    pub fn cpu(cores: usize, seed: u64) -> CoRunner {
        CoRunner::Cpu(CpuInjector::start(cores, seed))
    }

    /// The GPU co-runner on `device`, [`GPU_MATRIX`]² products ([`GpuInjector::start`]).
    pub fn gpu(device: &burn::tensor::Device) -> CoRunner {
        CoRunner::Gpu(GpuInjector::start(device.clone(), GPU_MATRIX))
    }

    /// Sets the target load (clamped to 0..=1).
    pub fn set_load(&self, load: f64) {
        match self {
            CoRunner::Cpu(c) => c.set_load(load),
            CoRunner::Gpu(g) => g.set_load(load),
        }
    }

    /// A mark for [`CoRunner::achieved_since`].
    pub fn mark(&self) -> (u64, Instant) {
        match self {
            CoRunner::Cpu(c) => c.achieved_since_reset(),
            CoRunner::Gpu(g) => g.mark(),
        }
    }

    /// Load achieved since `mark`.
    pub fn achieved_since(&self, mark: (u64, Instant)) -> f64 {
        match self {
            CoRunner::Cpu(c) => c.achieved_since(mark),
            CoRunner::Gpu(g) => g.achieved_since(mark),
        }
    }
}
