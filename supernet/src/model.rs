//! The elastic network in burn: shared weights, and a [`Plan`] (the active slices for one
//! sub-network) that runs forward passes.
//!
//! Elastic dimensions are cut by slicing the shared weights: a stage runs its first `d`
//! blocks, a block's expanded layer keeps its first `e · c_in` channels, a depthwise kernel
//! `k` is the centre `k×k` of the largest kernel, and the input is resized to the chosen
//! resolution before the stem.

use crate::arch::{SubnetArch, SupernetConfig, conv_out, se_mid};
use burn::module::{Module, Param};
use burn::tensor::activation::{hard_swish, relu};
use burn::tensor::module::{batch_norm, batch_norm_train, conv2d, interpolate, linear};
use burn::tensor::ops::{ConvOptions, InterpolateMode, InterpolateOptions};
use burn::tensor::{Device, Distribution, Tensor, TensorData};
use std::collections::BTreeMap;

/// Batch-norm epsilon used everywhere.
pub const BN_EPS: f64 = 1e-5;

/// A convolution followed by batch norm (scale and shift only; statistics live apart).
#[derive(Module, Debug)]
pub struct ConvBn {
    /// `[out, in / groups, k, k]`.
    pub weight: Param<Tensor<4>>,
    /// Batch-norm scale, `[out]`.
    pub gamma: Param<Tensor<1>>,
    /// Batch-norm shift, `[out]`.
    pub beta: Param<Tensor<1>>,
}

/// Squeeze-and-excite: pool, 1×1 reduce, ReLU, 1×1 expand, hard sigmoid, scale.
#[derive(Module, Debug)]
pub struct SqueezeExcite {
    /// `[mid, channels, 1, 1]`.
    pub reduce_w: Param<Tensor<4>>,
    /// `[mid]`.
    pub reduce_b: Param<Tensor<1>>,
    /// `[channels, mid, 1, 1]`.
    pub expand_w: Param<Tensor<4>>,
    /// `[channels]`.
    pub expand_b: Param<Tensor<1>>,
}

/// One inverted-residual block at its largest size.
#[derive(Module, Debug)]
pub struct Block {
    /// 1×1 expand convolution.
    pub expand: ConvBn,
    /// k×k depthwise convolution (largest kernel).
    pub depthwise: ConvBn,
    /// Squeeze-excite, where the stage has it.
    pub se: Option<SqueezeExcite>,
    /// 1×1 project convolution.
    pub project: ConvBn,
}

/// All shared weights of the super-network.
#[derive(Module, Debug)]
pub struct SupernetWeights {
    /// 3×3 stem convolution.
    pub stem: ConvBn,
    /// Block slots, stage-major: slot `s * max_depth + b`.
    pub blocks: Vec<Block>,
    /// Final 1×1 convolution.
    pub head: ConvBn,
    /// Classifier weight, `[head_channels, classes]`.
    pub classifier_w: Param<Tensor<2>>,
    /// Classifier bias, `[classes]`.
    pub classifier_b: Param<Tensor<1>>,
}

fn kaiming(shape: [usize; 4], fan_in: usize, device: &Device) -> Param<Tensor<4>> {
    let std = (2.0 / fan_in as f64).sqrt();
    Param::from_tensor(Tensor::random(
        shape,
        Distribution::Normal(0.0, std),
        device,
    ))
}

fn conv_bn(cin: usize, cout: usize, k: usize, groups: usize, device: &Device) -> ConvBn {
    ConvBn {
        weight: kaiming([cout, cin / groups, k, k], cin / groups * k * k, device),
        gamma: Param::from_tensor(Tensor::ones([cout], device)),
        beta: Param::from_tensor(Tensor::zeros([cout], device)),
    }
}

impl SupernetWeights {
    /// Fresh weights for `cfg` (Kaiming-normal convolutions, unit BN scales); seed the
    /// device first (`device.seed(s)`) for reproducible initialisation.
    pub fn init(cfg: &SupernetConfig, device: &Device) -> Self {
        let (ke, em) = (cfg.max_kernel(), cfg.max_expand());
        let mut blocks = Vec::new();
        for (s, stage) in cfg.stages.iter().enumerate() {
            for b in 0..cfg.max_depth() {
                let cin = cfg.block_in_channels(s, b);
                let ex = cin * em;
                let se = stage.se.then(|| {
                    let mid = se_mid(ex);
                    SqueezeExcite {
                        reduce_w: kaiming([mid, ex, 1, 1], ex, device),
                        reduce_b: Param::from_tensor(Tensor::zeros([mid], device)),
                        expand_w: kaiming([ex, mid, 1, 1], mid, device),
                        expand_b: Param::from_tensor(Tensor::zeros([ex], device)),
                    }
                });
                blocks.push(Block {
                    expand: conv_bn(cin, ex, 1, 1, device),
                    depthwise: conv_bn(ex, ex, ke, ex, device),
                    se,
                    project: conv_bn(ex, stage.out_channels, 1, 1, device),
                });
            }
        }
        let last = cfg
            .stages
            .last()
            .map_or(cfg.stem_channels, |s| s.out_channels);
        SupernetWeights {
            stem: conv_bn(cfg.in_channels, cfg.stem_channels, 3, 1, device),
            blocks,
            head: conv_bn(last, cfg.head_channels, 1, 1, device),
            classifier_w: Param::from_tensor(Tensor::random(
                [cfg.head_channels, cfg.classes],
                Distribution::Normal(0.0, 0.01),
                device,
            )),
            classifier_b: Param::from_tensor(Tensor::zeros([cfg.classes], device)),
        }
    }

    /// The active slices of the shared weights for `arch`: what a forward pass runs.
    /// On an autodiff device the slices stay connected to the shared parameters.
    pub fn plan(&self, cfg: &SupernetConfig, arch: &SubnetArch) -> Plan {
        let cut =
            |p: &ConvBn, cout: usize, cin: usize, k: usize| -> (Tensor<4>, Tensor<1>, Tensor<1>) {
                let w = p.weight.val();
                let [o, i, kh, _] = w.dims();
                let off = (kh - k) / 2;
                let w = if (o, i, kh) == (cout, cin, k) {
                    w
                } else {
                    w.slice([0..cout, 0..cin, off..off + k, off..off + k])
                };
                (w, narrow1(p.gamma.val(), cout), narrow1(p.beta.val(), cout))
            };
        let layer = |p: &ConvBn,
                     cout: usize,
                     cin: usize,
                     k: usize,
                     stride: usize,
                     groups: usize,
                     bn_id: usize| {
            let (w, gamma, beta) = cut(p, cout, cin / groups, k);
            PlanConv {
                w,
                stride,
                groups,
                pad: k / 2,
                bn_id,
                gamma,
                beta,
                stats: None,
            }
        };
        let stem = layer(
            &self.stem,
            cfg.stem_channels,
            cfg.in_channels,
            3,
            cfg.stem_stride,
            1,
            0,
        );
        let mut blocks = Vec::new();
        let mut c = cfg.stem_channels;
        for (s, (stage_cfg, stage)) in cfg.stages.iter().zip(&arch.stages).enumerate() {
            for (b, choice) in stage.iter().enumerate() {
                let slot = s * cfg.max_depth() + b;
                let weights = &self.blocks[slot];
                let stride = if b == 0 { stage_cfg.stride } else { 1 };
                let ex = c * choice.expand;
                let out = stage_cfg.out_channels;
                let se = weights.se.as_ref().map(|se| {
                    let mid = se_mid(ex);
                    PlanSe {
                        reduce_w: se.reduce_w.val().slice([0..mid, 0..ex, 0..1, 0..1]),
                        reduce_b: narrow1(se.reduce_b.val(), mid),
                        expand_w: se.expand_w.val().slice([0..ex, 0..mid, 0..1, 0..1]),
                        expand_b: narrow1(se.expand_b.val(), ex),
                    }
                });
                blocks.push(PlanBlock {
                    expand: layer(&weights.expand, ex, c, 1, 1, 1, 1 + 3 * slot),
                    depthwise: layer(
                        &weights.depthwise,
                        ex,
                        ex,
                        choice.kernel,
                        stride,
                        ex,
                        2 + 3 * slot,
                    ),
                    se,
                    project: layer(&weights.project, out, ex, 1, 1, 1, 3 + 3 * slot),
                    hswish: stage_cfg.hswish,
                    residual: stride == 1 && c == out,
                });
                c = out;
            }
        }
        let head = layer(&self.head, cfg.head_channels, c, 1, 1, 1, head_bn_id(cfg));
        Plan {
            resolution: arch.resolution,
            stem,
            blocks,
            head,
            classifier_w: self.classifier_w.val(),
            classifier_b: self.classifier_b.val(),
        }
    }
}

fn narrow1(t: Tensor<1>, n: usize) -> Tensor<1> {
    if t.dims()[0] == n {
        t
    } else {
        t.narrow(0, 0, n)
    }
}

/// Batch-norm layer id of the head in `cfg` (stem is 0, block slot `i` owns `1 + 3i ..= 3 + 3i`).
pub fn head_bn_id(cfg: &SupernetConfig) -> usize {
    1 + 3 * cfg.block_slots()
}

/// A convolution + batch norm, sliced for one sub-network.
#[derive(Clone, Debug)]
pub struct PlanConv {
    w: Tensor<4>,
    stride: usize,
    groups: usize,
    pad: usize,
    bn_id: usize,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    stats: Option<(Tensor<1>, Tensor<1>)>,
}

/// Squeeze-excite weights sliced for one sub-network.
#[derive(Clone, Debug)]
pub struct PlanSe {
    reduce_w: Tensor<4>,
    reduce_b: Tensor<1>,
    expand_w: Tensor<4>,
    expand_b: Tensor<1>,
}

/// One active block.
#[derive(Clone, Debug)]
pub struct PlanBlock {
    expand: PlanConv,
    depthwise: PlanConv,
    se: Option<PlanSe>,
    project: PlanConv,
    hswish: bool,
    residual: bool,
}

/// The layers one sub-network runs, with their weights already cut.
#[derive(Clone, Debug)]
pub struct Plan {
    resolution: usize,
    stem: PlanConv,
    blocks: Vec<PlanBlock>,
    head: PlanConv,
    classifier_w: Tensor<2>,
    classifier_b: Tensor<1>,
}

/// Where batch-norm statistics come from during a forward pass.
pub enum BnMode<'a> {
    /// Statistics of the current batch (training, and BN recalibration). When `record` is
    /// given, each layer's batch mean and variance are pushed to it, detached.
    Batch {
        /// Receives (layer id, mean, variance) per batch-norm layer.
        record: Option<&'a mut Vec<(usize, Tensor<1>, Tensor<1>)>>,
    },
    /// Stored statistics, one entry per layer the sub-network runs.
    Stored(&'a BnStats),
}

/// Batch-norm running statistics of one sub-network, per layer id (active channels only).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BnStats {
    /// Layer id → (mean, variance).
    pub layers: BTreeMap<usize, (Vec<f32>, Vec<f32>)>,
}

impl BnStats {
    /// Checks the statistics can normalise: per layer as many means as variances, all
    /// finite, variances not negative. The problem names the layer.
    pub fn check(&self) -> Result<(), String> {
        for (id, (m, v)) in &self.layers {
            if m.len() != v.len() || m.is_empty() {
                return Err(format!(
                    "batch-norm layer {id}: {} means against {} variances",
                    m.len(),
                    v.len()
                ));
            }
            if let Some(x) = m.iter().chain(v).find(|x| !x.is_finite()) {
                return Err(format!("batch-norm layer {id}: a statistic is {x}"));
            }
            if let Some(x) = v.iter().find(|x| **x < 0.0) {
                return Err(format!(
                    "batch-norm layer {id}: a variance is {x} (negative)"
                ));
            }
        }
        Ok(())
    }

    /// The statistics of the first `channels` channels of each layer that `plan` runs, cut from
    /// statistics that cover at least that many (e.g. the super-network's shared statistics).
    pub fn slice_for(&self, plan: &Plan) -> Option<BnStats> {
        let mut layers = BTreeMap::new();
        for conv in plan.convs() {
            let n = conv.gamma.dims()[0];
            let (m, v) = self.layers.get(&conv.bn_id)?;
            if m.len() < n {
                return None;
            }
            layers.insert(conv.bn_id, (m[..n].to_vec(), v[..n].to_vec()));
        }
        Some(BnStats { layers })
    }
}

fn tensor1(v: &[f32], device: &Device) -> Tensor<1> {
    Tensor::from_data(TensorData::new(v.to_vec(), [v.len()]), device)
}

fn hsigmoid<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    x.add_scalar(3.0).clamp(0.0, 6.0).div_scalar(6.0)
}

impl PlanConv {
    fn forward(&self, x: Tensor<4>, bn: &mut BnMode) -> Tensor<4> {
        let y = conv2d(
            x,
            self.w.clone(),
            None,
            ConvOptions::new([self.stride; 2], [self.pad; 2], [1, 1], self.groups),
        );
        if let Some((m, v)) = &self.stats {
            return batch_norm(
                y,
                self.gamma.clone(),
                self.beta.clone(),
                m.clone(),
                v.clone(),
                BN_EPS,
            );
        }
        match bn {
            BnMode::Batch { record } => {
                let out = batch_norm_train(y, self.gamma.clone(), self.beta.clone(), BN_EPS);
                if let Some(rec) = record {
                    rec.push((self.bn_id, out.mean.detach(), out.variance.detach()));
                }
                out.output
            }
            BnMode::Stored(stats) => {
                let (m, v) = stats
                    .layers
                    .get(&self.bn_id)
                    .unwrap_or_else(|| panic!("no batch-norm statistics for layer {}", self.bn_id));
                let device = y.device();
                batch_norm(
                    y,
                    self.gamma.clone(),
                    self.beta.clone(),
                    tensor1(m, &device),
                    tensor1(v, &device),
                    BN_EPS,
                )
            }
        }
    }
}

impl Plan {
    /// Every convolution with batch norm, in forward order.
    pub fn convs(&self) -> Vec<&PlanConv> {
        let mut v = vec![&self.stem];
        for b in &self.blocks {
            v.extend([&b.expand, &b.depthwise, &b.project]);
        }
        v.push(&self.head);
        v
    }

    /// Binds stored statistics into the plan, making it a standalone network that needs no
    /// [`BnStats`] at run time (see [`Plan::extract`]). Fails when a layer has none.
    pub fn bind_stats(mut self, stats: &BnStats) -> Result<Plan, String> {
        let device = self.classifier_w.device();
        let bind = |c: &mut PlanConv| -> Result<(), String> {
            let (m, v) = stats
                .layers
                .get(&c.bn_id)
                .ok_or_else(|| format!("no batch-norm statistics for layer {}", c.bn_id))?;
            if m.len() != c.gamma.dims()[0] {
                return Err(format!(
                    "layer {}: statistics for {} channels, layer has {}",
                    c.bn_id,
                    m.len(),
                    c.gamma.dims()[0]
                ));
            }
            c.stats = Some((tensor1(m, &device), tensor1(v, &device)));
            Ok(())
        };
        bind(&mut self.stem)?;
        for b in &mut self.blocks {
            bind(&mut b.expand)?;
            bind(&mut b.depthwise)?;
            bind(&mut b.project)?;
        }
        bind(&mut self.head)?;
        Ok(self)
    }

    /// A compact standalone copy of this sub-network: every active weight slice copied into
    /// its own tensor (no reference to the shared weights remains) and `stats` bound in, so
    /// serving it needs no slicing and no [`BnStats`] lookup.
    pub fn extract(&self, stats: &BnStats) -> Result<Plan, String> {
        fn own<const D: usize>(t: &Tensor<D>) -> Tensor<D> {
            Tensor::from_data(t.to_data(), &t.device())
        }
        let conv = |c: &PlanConv| PlanConv {
            w: own(&c.w),
            gamma: own(&c.gamma),
            beta: own(&c.beta),
            stats: None,
            ..c.clone()
        };
        let plan = Plan {
            resolution: self.resolution,
            stem: conv(&self.stem),
            blocks: self
                .blocks
                .iter()
                .map(|b| PlanBlock {
                    expand: conv(&b.expand),
                    depthwise: conv(&b.depthwise),
                    se: b.se.as_ref().map(|s| PlanSe {
                        reduce_w: own(&s.reduce_w),
                        reduce_b: own(&s.reduce_b),
                        expand_w: own(&s.expand_w),
                        expand_b: own(&s.expand_b),
                    }),
                    project: conv(&b.project),
                    ..b.clone()
                })
                .collect(),
            head: conv(&self.head),
            classifier_w: own(&self.classifier_w),
            classifier_b: own(&self.classifier_b),
        };
        plan.bind_stats(stats)
    }

    /// Input resolution of this sub-network.
    pub fn resolution(&self) -> usize {
        self.resolution
    }

    /// Logits for a batch of normalised images at the native input size.
    ///
    /// # Shapes
    /// - `x`: `[batch, in_channels, input_size, input_size]`
    /// - output: `[batch, classes]`
    pub fn forward(&self, x: Tensor<4>, bn: &mut BnMode) -> Tensor<2> {
        let [_, _, h, _] = x.dims();
        let mut x = if h == self.resolution {
            x
        } else {
            interpolate(
                x,
                InterpolateOptions::new(InterpolateMode::Bilinear)
                    .with_output_size([self.resolution, self.resolution]),
            )
        };
        x = hard_swish(self.stem.forward(x, bn)); // [B, stem, r/2, r/2]
        for b in &self.blocks {
            let act = |t: Tensor<4>| if b.hswish { hard_swish(t) } else { relu(t) };
            let input = x.clone();
            let mut y = act(b.expand.forward(x, bn)); // [B, ex, h, w]
            y = act(b.depthwise.forward(y, bn)); // [B, ex, h/s, w/s]
            if let Some(se) = &b.se {
                let pooled = y.clone().mean_dim(3).mean_dim(2); // [B, ex, 1, 1]
                let opts = || ConvOptions::new([1, 1], [0, 0], [1, 1], 1);
                let s = relu(conv2d(
                    pooled,
                    se.reduce_w.clone(),
                    Some(se.reduce_b.clone()),
                    opts(),
                ));
                let s = hsigmoid(conv2d(
                    s,
                    se.expand_w.clone(),
                    Some(se.expand_b.clone()),
                    opts(),
                ));
                y = y * s;
            }
            y = b.project.forward(y, bn); // [B, out, h/s, w/s]
            x = if b.residual { y + input } else { y };
        }
        x = hard_swish(self.head.forward(x, bn)); // [B, head, h, w]
        let [bsz, c, _, _] = x.dims();
        let pooled = x.mean_dim(3).mean_dim(2).reshape([bsz, c]); // [B, head]
        linear(
            pooled,
            self.classifier_w.clone(),
            Some(self.classifier_b.clone()),
        )
    }
}

/// Spatial size after the stem for a given input resolution.
pub fn stem_out(cfg: &SupernetConfig, resolution: usize) -> usize {
    conv_out(resolution, cfg.stem_stride)
}

/// Normalises `images` (each `channels × size × size` bytes, planar) into a batch tensor.
///
/// # Shapes
/// - output: `[images.len(), in_channels, input_size, input_size]`
pub fn batch_tensor(cfg: &SupernetConfig, images: &[&[u8]], device: &Device) -> Tensor<4> {
    let (c, s) = (cfg.in_channels, cfg.input_size);
    let plane = s * s;
    let mut data = Vec::with_capacity(images.len() * c * plane);
    for img in images {
        for ch in 0..c {
            let (m, sd) = (cfg.mean[ch], cfg.std[ch]);
            data.extend(
                img[ch * plane..(ch + 1) * plane]
                    .iter()
                    .map(|&v| (v as f32 / 255.0 - m) / sd),
            );
        }
    }
    Tensor::from_data(TensorData::new(data, [images.len(), c, s, s]), device)
}

/// Per-layer population statistics over several batches of recorded batch statistics
/// (equal batch sizes: the mean of means, and the mean of (variance + mean²) − mean²).
pub fn pool_batch_stats(batches: &[Vec<(usize, Tensor<1>, Tensor<1>)>]) -> BnStats {
    let mut acc: BTreeMap<usize, (Vec<f64>, Vec<f64>, usize)> = BTreeMap::new();
    for batch in batches {
        for (id, m, v) in batch {
            let m: Vec<f32> = m.to_data().try_to_vec::<f32>().unwrap_or_default();
            let v: Vec<f32> = v.to_data().try_to_vec::<f32>().unwrap_or_default();
            let e = acc
                .entry(*id)
                .or_insert_with(|| (vec![0.0; m.len()], vec![0.0; m.len()], 0));
            for i in 0..m.len() {
                e.0[i] += m[i] as f64;
                e.1[i] += v[i] as f64 + (m[i] as f64).powi(2);
            }
            e.2 += 1;
        }
    }
    BnStats {
        layers: acc
            .into_iter()
            .map(|(id, (sm, sq, n))| {
                let mean: Vec<f32> = sm.iter().map(|s| (s / n as f64) as f32).collect();
                let var = sq
                    .iter()
                    .zip(&mean)
                    .map(|(q, m)| ((q / n as f64) - (*m as f64).powi(2)).max(0.0) as f32)
                    .collect();
                (id, (mean, var))
            })
            .collect(),
    }
}
