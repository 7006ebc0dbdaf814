//! The architecture space as data: the super-network's configuration, sub-network
//! architectures with canonical text ids, sampling, encodings, multiply-adds and parameters.

use rand::Rng;
use serde::{Deserialize, Serialize};
use std::fmt;

/// One stage of inverted-residual blocks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageConfig {
    /// Output channels of every block of the stage.
    pub out_channels: usize,
    /// Stride of the stage's first block (1 or 2).
    pub stride: usize,
    /// h-swish (true) or ReLU (false) after the expand and depthwise convolutions.
    pub hswish: bool,
    /// Squeeze-and-excite after the depthwise convolution.
    pub se: bool,
}

/// The super-network: input, layer widths and the elastic choices.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupernetConfig {
    /// Input channels (1 grey, 3 RGB).
    pub in_channels: usize,
    /// Native input size in pixels (square).
    pub input_size: usize,
    /// Number of classes.
    pub classes: usize,
    /// Per-channel mean subtracted from pixels in [0, 1].
    pub mean: Vec<f32>,
    /// Per-channel standard deviation pixels are divided by.
    pub std: Vec<f32>,
    /// Output channels of the 3×3 stem convolution.
    pub stem_channels: usize,
    /// Stride of the stem.
    pub stem_stride: usize,
    /// The stages, in order.
    pub stages: Vec<StageConfig>,
    /// Elastic depth: blocks per stage that may run (each ≥ 1).
    pub depth_choices: Vec<usize>,
    /// Elastic width: expand ratios of the inverted-residual blocks.
    pub expand_choices: Vec<usize>,
    /// Elastic kernel: depthwise kernel sizes (odd); smaller ones are centre crops of the largest.
    pub kernel_choices: Vec<usize>,
    /// Elastic resolution: input sizes frames are resized to before the stem.
    pub resolution_choices: Vec<usize>,
    /// Channels of the final 1×1 convolution before pooling.
    pub head_channels: usize,
}

impl SupernetConfig {
    /// The shipped Fashion-MNIST configuration (1×28×28, 10 classes).
    pub fn fashion_mnist() -> Self {
        SupernetConfig {
            in_channels: 1,
            input_size: 28,
            classes: 10,
            mean: vec![0.2860],
            std: vec![0.3530],
            stem_channels: 16,
            stem_stride: 2,
            stages: vec![
                StageConfig {
                    out_channels: 16,
                    stride: 1,
                    hswish: false,
                    se: false,
                },
                StageConfig {
                    out_channels: 32,
                    stride: 2,
                    hswish: true,
                    se: true,
                },
                StageConfig {
                    out_channels: 48,
                    stride: 2,
                    hswish: true,
                    se: true,
                },
            ],
            depth_choices: vec![1, 2, 3],
            expand_choices: vec![2, 3, 4],
            kernel_choices: vec![3, 5],
            resolution_choices: vec![16, 20, 24, 28],
            head_channels: 128,
        }
    }

    /// The same network for CIFAR-sized input (3×32×32, 10 classes).
    pub fn cifar10() -> Self {
        SupernetConfig {
            in_channels: 3,
            input_size: 32,
            mean: vec![0.4914, 0.4822, 0.4465],
            std: vec![0.2470, 0.2435, 0.2616],
            resolution_choices: vec![20, 24, 28, 32],
            ..Self::fashion_mnist()
        }
    }

    /// A tiny configuration for fast tests.
    pub fn tiny(in_channels: usize, input_size: usize, classes: usize) -> Self {
        SupernetConfig {
            in_channels,
            input_size,
            classes,
            mean: vec![0.5; in_channels],
            std: vec![0.25; in_channels],
            stem_channels: 8,
            stem_stride: 2,
            stages: vec![
                StageConfig {
                    out_channels: 8,
                    stride: 1,
                    hswish: false,
                    se: false,
                },
                StageConfig {
                    out_channels: 16,
                    stride: 2,
                    hswish: true,
                    se: true,
                },
            ],
            depth_choices: vec![1, 2],
            expand_choices: vec![2, 3],
            kernel_choices: vec![3, 5],
            resolution_choices: vec![input_size - 4, input_size],
            head_channels: 24,
        }
    }

    /// Largest number of blocks a stage can hold.
    pub fn max_depth(&self) -> usize {
        self.depth_choices.iter().copied().max().unwrap_or(1)
    }

    /// Largest expand ratio.
    pub fn max_expand(&self) -> usize {
        self.expand_choices.iter().copied().max().unwrap_or(1)
    }

    /// Largest kernel.
    pub fn max_kernel(&self) -> usize {
        self.kernel_choices.iter().copied().max().unwrap_or(3)
    }

    /// Total block slots (stages × max depth).
    pub fn block_slots(&self) -> usize {
        self.stages.len() * self.max_depth()
    }

    /// Input channels of block `b` of stage `s`.
    pub fn block_in_channels(&self, s: usize, b: usize) -> usize {
        if b > 0 {
            self.stages[s].out_channels
        } else if s == 0 {
            self.stem_channels
        } else {
            self.stages[s - 1].out_channels
        }
    }

    /// Checks the configuration is internally consistent; returns every problem found.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut e = Vec::new();
        if self.in_channels == 0 || self.classes < 2 || self.input_size == 0 {
            e.push("in_channels, classes (≥ 2) and input_size must be positive".to_string());
        }
        if self.mean.len() != self.in_channels || self.std.len() != self.in_channels {
            e.push(format!(
                "mean and std need one value per input channel ({})",
                self.in_channels
            ));
        }
        if self.stages.is_empty() {
            e.push("at least one stage is needed".into());
        }
        for (name, v) in [
            ("depth_choices", &self.depth_choices),
            ("expand_choices", &self.expand_choices),
            ("kernel_choices", &self.kernel_choices),
            ("resolution_choices", &self.resolution_choices),
        ] {
            if v.is_empty() || v.contains(&0) {
                e.push(format!("{name} must be non-empty and positive"));
            }
            if v.windows(2).any(|w| w[0] >= w[1]) {
                e.push(format!("{name} must be strictly increasing"));
            }
        }
        if self.kernel_choices.iter().any(|k| k % 2 == 0) {
            e.push("kernel_choices must be odd".into());
        }
        if self
            .resolution_choices
            .iter()
            .any(|&r| r > self.input_size * 2)
        {
            e.push("resolution_choices must be at most twice input_size".into());
        }
        // Upper bounds far above any network this harness trains, checked before anything is
        // allocated from the configuration (a damaged file must not ask for terabytes).
        for (name, v, most) in [
            ("in_channels", self.in_channels, 64),
            ("input_size", self.input_size, 4096),
            ("classes", self.classes, 100_000),
            ("stem_channels", self.stem_channels, 4096),
            ("stem_stride", self.stem_stride, 8),
            ("head_channels", self.head_channels, 16_384),
            ("stages", self.stages.len(), 64),
        ] {
            if v > most {
                e.push(format!("{name} = {v}: at most {most}"));
            }
        }
        for (i, st) in self.stages.iter().enumerate() {
            if st.out_channels == 0 || st.out_channels > 4096 || !(1..=2).contains(&st.stride) {
                e.push(format!(
                    "stage {i}: out_channels {} (1..=4096) and stride {} (1 or 2)",
                    st.out_channels, st.stride
                ));
            }
        }
        for (name, v, most) in [
            ("depth_choices", &self.depth_choices, 32),
            ("expand_choices", &self.expand_choices, 16),
            ("kernel_choices", &self.kernel_choices, 15),
            ("resolution_choices", &self.resolution_choices, 8192),
        ] {
            if v.len() > 16 || v.iter().any(|&x| x > most) {
                e.push(format!("{name}: at most 16 choices, each at most {most}"));
            }
        }
        if self.mean.iter().chain(&self.std).any(|x| !x.is_finite()) || self.std.contains(&0.0) {
            e.push("mean and std must be finite, std non-zero".into());
        }
        if e.is_empty() { Ok(()) } else { Err(e) }
    }

    /// Number of distinct sub-networks.
    pub fn num_subnets(&self) -> u128 {
        let per_block = (self.expand_choices.len() * self.kernel_choices.len()) as u128;
        let per_stage: u128 = self
            .depth_choices
            .iter()
            .map(|&d| per_block.pow(d as u32))
            .sum();
        per_stage.pow(self.stages.len() as u32) * self.resolution_choices.len() as u128
    }
}

/// One block's elastic choices.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BlockChoice {
    /// Depthwise kernel size.
    pub kernel: usize,
    /// Expand ratio.
    pub expand: usize,
}

/// A sub-network: input resolution and, per stage, the choices of its active blocks.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SubnetArch {
    /// Input size in pixels.
    pub resolution: usize,
    /// Per stage, one entry per active block (the stage's depth is the length).
    pub stages: Vec<Vec<BlockChoice>>,
}

/// Why an architecture id or architecture does not fit a configuration.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("architecture `{id}`: {reason}")]
pub struct ArchError {
    /// The id or description that was rejected.
    pub id: String,
    /// What is wrong.
    pub reason: String,
}

/// Output size of a convolution with padding k/2 and the given stride.
pub fn conv_out(size: usize, stride: usize) -> usize {
    size.div_ceil(stride)
}

impl SubnetArch {
    /// The largest sub-network: every dimension at its maximum.
    pub fn largest(cfg: &SupernetConfig) -> Self {
        let b = BlockChoice {
            kernel: cfg.max_kernel(),
            expand: cfg.max_expand(),
        };
        SubnetArch {
            resolution: *cfg.resolution_choices.last().unwrap_or(&cfg.input_size),
            stages: vec![vec![b; cfg.max_depth()]; cfg.stages.len()],
        }
    }

    /// The smallest sub-network: every dimension at its minimum.
    pub fn smallest(cfg: &SupernetConfig) -> Self {
        let b = BlockChoice {
            kernel: cfg.kernel_choices[0],
            expand: cfg.expand_choices[0],
        };
        SubnetArch {
            resolution: cfg.resolution_choices[0],
            stages: vec![vec![b; cfg.depth_choices[0]]; cfg.stages.len()],
        }
    }

    /// A uniformly random sub-network (each dimension drawn independently).
    pub fn sample<R: Rng + ?Sized>(cfg: &SupernetConfig, rng: &mut R) -> Self {
        let pick = |rng: &mut R, v: &[usize]| v[rng.random_range(0..v.len())];
        let resolution = pick(rng, &cfg.resolution_choices);
        let stages = (0..cfg.stages.len())
            .map(|_| {
                let d = pick(rng, &cfg.depth_choices);
                (0..d)
                    .map(|_| BlockChoice {
                        kernel: pick(rng, &cfg.kernel_choices),
                        expand: pick(rng, &cfg.expand_choices),
                    })
                    .collect()
            })
            .collect();
        SubnetArch { resolution, stages }
    }

    /// The canonical id: `r28-k5e4.k3e2-k5e4-k3e3.k5e4` (resolution, then one group per
    /// stage, one `k<kernel>e<expand>` per active block). Round-trips through [`SubnetArch::parse`].
    pub fn id(&self) -> String {
        let mut s = format!("r{}", self.resolution);
        for stage in &self.stages {
            s.push('-');
            let blocks: Vec<String> = stage
                .iter()
                .map(|b| format!("k{}e{}", b.kernel, b.expand))
                .collect();
            s.push_str(&blocks.join("."));
        }
        s
    }

    /// Parses an id made by [`SubnetArch::id`] and checks it against `cfg`.
    pub fn parse(id: &str, cfg: &SupernetConfig) -> Result<Self, ArchError> {
        let err = |reason: String| ArchError {
            id: id.to_string(),
            reason,
        };
        let mut parts = id.trim().split('-');
        let res = parts
            .next()
            .and_then(|r| r.strip_prefix('r'))
            .and_then(|r| r.parse().ok())
            .ok_or_else(|| err("must start with r<resolution>, e.g. r28".into()))?;
        let mut stages = Vec::new();
        for part in parts {
            let mut blocks = Vec::new();
            for b in part.split('.') {
                let (k, e) = b
                    .strip_prefix('k')
                    .and_then(|r| r.split_once('e'))
                    .ok_or_else(|| err(format!("block `{b}` must look like k5e4")))?;
                let kernel = k
                    .parse()
                    .map_err(|_| err(format!("block `{b}`: kernel `{k}` is not a number")))?;
                let expand = e
                    .parse()
                    .map_err(|_| err(format!("block `{b}`: expand `{e}` is not a number")))?;
                blocks.push(BlockChoice { kernel, expand });
            }
            stages.push(blocks);
        }
        let arch = SubnetArch {
            resolution: res,
            stages,
        };
        arch.check(cfg).map_err(err)?;
        Ok(arch)
    }

    /// Checks every choice is one the configuration allows.
    pub fn check(&self, cfg: &SupernetConfig) -> Result<(), String> {
        if !cfg.resolution_choices.contains(&self.resolution) {
            return Err(format!(
                "resolution {} is not one of {:?}",
                self.resolution, cfg.resolution_choices
            ));
        }
        if self.stages.len() != cfg.stages.len() {
            return Err(format!(
                "has {} stages, the super-network has {}",
                self.stages.len(),
                cfg.stages.len()
            ));
        }
        for (s, stage) in self.stages.iter().enumerate() {
            if !cfg.depth_choices.contains(&stage.len()) {
                return Err(format!(
                    "stage {} has depth {}, allowed {:?}",
                    s + 1,
                    stage.len(),
                    cfg.depth_choices
                ));
            }
            for b in stage {
                if !cfg.kernel_choices.contains(&b.kernel) {
                    return Err(format!(
                        "kernel {} is not one of {:?}",
                        b.kernel, cfg.kernel_choices
                    ));
                }
                if !cfg.expand_choices.contains(&b.expand) {
                    return Err(format!(
                        "expand ratio {} is not one of {:?}",
                        b.expand, cfg.expand_choices
                    ));
                }
            }
        }
        Ok(())
    }

    /// Stage depths.
    pub fn depths(&self) -> Vec<usize> {
        self.stages.iter().map(Vec::len).collect()
    }

    /// OFA-style fixed-length encoding: per block slot a one-hot kernel and a one-hot expand
    /// ratio (all zero for a skipped block), per stage a one-hot depth, then a one-hot resolution.
    pub fn encode(&self, cfg: &SupernetConfig) -> Vec<f32> {
        let one_hot = |choices: &[usize], v: usize| {
            choices
                .iter()
                .map(|&c| if c == v { 1.0 } else { 0.0 })
                .collect::<Vec<f32>>()
        };
        let mut out = Vec::with_capacity(encoding_len(cfg));
        for stage in &self.stages {
            for slot in 0..cfg.max_depth() {
                match stage.get(slot) {
                    Some(b) => {
                        out.extend(one_hot(&cfg.kernel_choices, b.kernel));
                        out.extend(one_hot(&cfg.expand_choices, b.expand));
                    }
                    None => out.extend(std::iter::repeat_n(
                        0.0,
                        cfg.kernel_choices.len() + cfg.expand_choices.len(),
                    )),
                }
            }
            out.extend(one_hot(&cfg.depth_choices, stage.len()));
        }
        out.extend(one_hot(&cfg.resolution_choices, self.resolution));
        out
    }

    /// Multiply-adds of one forward pass on one image (convolutions, SE and the classifier;
    /// batch norm, activations, pooling and the input resize are not counted).
    pub fn macs(&self, cfg: &SupernetConfig) -> u64 {
        self.walk(cfg).iter().map(|l| l.macs).sum()
    }

    /// Parameters the sub-network uses: weights, biases and batch-norm scale and shift
    /// (running statistics are not counted).
    pub fn params(&self, cfg: &SupernetConfig) -> u64 {
        self.walk(cfg).iter().map(|l| l.params).sum()
    }

    /// Every layer the sub-network runs, with its cost, in forward order.
    pub fn walk(&self, cfg: &SupernetConfig) -> Vec<LayerCost> {
        let mut out = Vec::new();
        let mut hw = conv_out(self.resolution, cfg.stem_stride);
        let mut c = cfg.stem_channels;
        let conv = |name: String,
                    cin: usize,
                    cout: usize,
                    k: usize,
                    groups: usize,
                    hw_out: usize,
                    bn: bool,
                    bias: bool| {
            let w = (cin / groups) * cout * k * k;
            LayerCost {
                name,
                macs: (w * hw_out * hw_out) as u64,
                params: (w + if bn { 2 * cout } else { 0 } + if bias { cout } else { 0 }) as u64,
            }
        };
        out.push(conv(
            "stem".into(),
            cfg.in_channels,
            c,
            3,
            1,
            hw,
            true,
            false,
        ));
        for (s, (stage_cfg, stage)) in cfg.stages.iter().zip(&self.stages).enumerate() {
            for (b, choice) in stage.iter().enumerate() {
                let stride = if b == 0 { stage_cfg.stride } else { 1 };
                let ex = c * choice.expand;
                let hw_out = conv_out(hw, stride);
                out.push(conv(
                    format!("s{s}b{b}.expand"),
                    c,
                    ex,
                    1,
                    1,
                    hw,
                    true,
                    false,
                ));
                out.push(conv(
                    format!("s{s}b{b}.depthwise"),
                    ex,
                    ex,
                    choice.kernel,
                    ex,
                    hw_out,
                    true,
                    false,
                ));
                if stage_cfg.se {
                    let mid = se_mid(ex);
                    out.push(conv(
                        format!("s{s}b{b}.se-reduce"),
                        ex,
                        mid,
                        1,
                        1,
                        1,
                        false,
                        true,
                    ));
                    out.push(conv(
                        format!("s{s}b{b}.se-expand"),
                        mid,
                        ex,
                        1,
                        1,
                        1,
                        false,
                        true,
                    ));
                }
                out.push(conv(
                    format!("s{s}b{b}.project"),
                    ex,
                    stage_cfg.out_channels,
                    1,
                    1,
                    hw_out,
                    true,
                    false,
                ));
                c = stage_cfg.out_channels;
                hw = hw_out;
            }
        }
        out.push(conv(
            "head".into(),
            c,
            cfg.head_channels,
            1,
            1,
            hw,
            true,
            false,
        ));
        out.push(conv(
            "classifier".into(),
            cfg.head_channels,
            cfg.classes,
            1,
            1,
            1,
            false,
            true,
        ));
        out
    }
}

impl fmt::Display for SubnetArch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id())
    }
}

/// One layer's cost, from [`SubnetArch::walk`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerCost {
    /// Layer name.
    pub name: String,
    /// Multiply-adds per image.
    pub macs: u64,
    /// Parameters.
    pub params: u64,
}

/// Squeeze-excite bottleneck width for `channels` active expanded channels.
pub fn se_mid(channels: usize) -> usize {
    channels.div_ceil(4)
}

/// Length of [`SubnetArch::encode`]'s output for a configuration.
pub fn encoding_len(cfg: &SupernetConfig) -> usize {
    cfg.stages.len()
        * (cfg.max_depth() * (cfg.kernel_choices.len() + cfg.expand_choices.len())
            + cfg.depth_choices.len())
        + cfg.resolution_choices.len()
}
