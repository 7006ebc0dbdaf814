//! ImageNet-C style corruptions with five severities, for grey and colour images.
//!
//! Every corruption is deterministic for a given seed, and draws its random numbers the same
//! way at every severity (common random numbers), so a higher severity is the same damage,
//! only stronger. Parameters per severity 1..=5 (images in [0, 1]):
//!
//! | kind | parameter | 1 | 2 | 3 | 4 | 5 |
//! |---|---|---|---|---|---|---|
//! | `gaussian-noise` | σ of added N(0, σ²) | 0.08 | 0.12 | 0.18 | 0.26 | 0.38 |
//! | `shot-noise` | photons per unit c: Poisson(x·c)/c | 60 | 25 | 12 | 5 | 3 |
//! | `impulse-noise` | share of pixels set to 0 or 1 | 0.03 | 0.06 | 0.09 | 0.17 | 0.27 |
//! | `defocus-blur` | disk radius, px (anti-aliased) | 0.8 | 1.1 | 1.5 | 2.0 | 2.5 |
//! | `gaussian-blur` | σ, px | 0.4 | 0.6 | 0.8 | 1.1 | 1.5 |
//! | `motion-blur` | streak length, px (random angle) | 2 | 3 | 4 | 5 | 7 |
//! | `brightness` | added to every pixel | 0.1 | 0.2 | 0.3 | 0.4 | 0.5 |
//! | `contrast` | factor towards the mean | 0.4 | 0.3 | 0.2 | 0.1 | 0.05 |
//! | `fog` | haze weight a: x(1−a) + a·(0.6 + 0.4·haze) | 0.25 | 0.4 | 0.5 | 0.6 | 0.7 |
//! | `pixelate` | downscale factor (box down, nearest up) | 0.75 | 0.6 | 0.5 | 0.4 | 0.3 |
//! | `jpeg` | JPEG quality | 30 | 20 | 15 | 10 | 7 |
//! | `occlusion` | random grey squares of side ¼ image | 1 | 2 | 3 | 4 | 6 |
//!
//! The scales are those of ImageNet-C (Hendrycks & Dietterich, ICLR 2019), with spatial
//! parameters (blur radii, streak lengths) scaled down for 28–32 px images.

use crate::image::Image;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Poisson, StandardNormal};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A corruption family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CorruptionKind {
    /// Additive Gaussian noise.
    GaussianNoise,
    /// Poisson (photon) noise.
    ShotNoise,
    /// Salt-and-pepper noise.
    ImpulseNoise,
    /// Out-of-focus disk blur.
    DefocusBlur,
    /// Gaussian blur.
    GaussianBlur,
    /// Linear motion streak at a random angle.
    MotionBlur,
    /// Brighter image, clipped.
    Brightness,
    /// Reduced contrast.
    Contrast,
    /// Smooth haze blended over the image.
    Fog,
    /// Low resolution, blocky.
    Pixelate,
    /// JPEG compression artefacts.
    Jpeg,
    /// Random grey patches hiding parts of the object.
    Occlusion,
}

/// The highest severity.
pub const MAX_SEVERITY: u8 = 5;

impl CorruptionKind {
    /// Every family, in a fixed order.
    pub const ALL: [CorruptionKind; 12] = [
        CorruptionKind::GaussianNoise,
        CorruptionKind::ShotNoise,
        CorruptionKind::ImpulseNoise,
        CorruptionKind::DefocusBlur,
        CorruptionKind::GaussianBlur,
        CorruptionKind::MotionBlur,
        CorruptionKind::Brightness,
        CorruptionKind::Contrast,
        CorruptionKind::Fog,
        CorruptionKind::Pixelate,
        CorruptionKind::Jpeg,
        CorruptionKind::Occlusion,
    ];

    /// The kebab-case name used in scenario files and tables.
    pub fn name(self) -> &'static str {
        match self {
            CorruptionKind::GaussianNoise => "gaussian-noise",
            CorruptionKind::ShotNoise => "shot-noise",
            CorruptionKind::ImpulseNoise => "impulse-noise",
            CorruptionKind::DefocusBlur => "defocus-blur",
            CorruptionKind::GaussianBlur => "gaussian-blur",
            CorruptionKind::MotionBlur => "motion-blur",
            CorruptionKind::Brightness => "brightness",
            CorruptionKind::Contrast => "contrast",
            CorruptionKind::Fog => "fog",
            CorruptionKind::Pixelate => "pixelate",
            CorruptionKind::Jpeg => "jpeg",
            CorruptionKind::Occlusion => "occlusion",
        }
    }

    /// The parameter of this family at `severity` (1..=5), as in the table of the module doc.
    pub fn parameter(self, severity: u8) -> f32 {
        let s = (severity.clamp(1, MAX_SEVERITY) - 1) as usize;
        let table: [f32; 5] = match self {
            CorruptionKind::GaussianNoise => [0.08, 0.12, 0.18, 0.26, 0.38],
            CorruptionKind::ShotNoise => [60.0, 25.0, 12.0, 5.0, 3.0],
            CorruptionKind::ImpulseNoise => [0.03, 0.06, 0.09, 0.17, 0.27],
            CorruptionKind::DefocusBlur => [0.8, 1.1, 1.5, 2.0, 2.5],
            CorruptionKind::GaussianBlur => [0.4, 0.6, 0.8, 1.1, 1.5],
            CorruptionKind::MotionBlur => [2.0, 3.0, 4.0, 5.0, 7.0],
            CorruptionKind::Brightness => [0.1, 0.2, 0.3, 0.4, 0.5],
            CorruptionKind::Contrast => [0.4, 0.3, 0.2, 0.1, 0.05],
            CorruptionKind::Fog => [0.25, 0.4, 0.5, 0.6, 0.7],
            CorruptionKind::Pixelate => [0.75, 0.6, 0.5, 0.4, 0.3],
            CorruptionKind::Jpeg => [30.0, 20.0, 15.0, 10.0, 7.0],
            CorruptionKind::Occlusion => [1.0, 2.0, 3.0, 4.0, 6.0],
        };
        table[s]
    }

    /// Applies this corruption at `severity` (0 = unchanged, 1..=5) with the given seed.
    pub fn apply(self, img: &Image, severity: u8, seed: u64) -> Image {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        self.apply_with(img, severity, &mut rng)
    }

    /// Like [`CorruptionKind::apply`], drawing random numbers from `rng`.
    pub fn apply_with(self, img: &Image, severity: u8, rng: &mut ChaCha8Rng) -> Image {
        if severity == 0 {
            return img.clone();
        }
        let p = self.parameter(severity);
        let (w, h, c) = (img.width as usize, img.height as usize, img.channels);
        if self == CorruptionKind::Jpeg {
            return jpeg(img, p as u8);
        }
        let mut x = img.to_f32();
        let n = w * h;
        match self {
            CorruptionKind::GaussianNoise => {
                for v in x.iter_mut() {
                    let z: f32 = StandardNormal.sample(rng);
                    *v += p * z;
                }
            }
            CorruptionKind::ShotNoise => {
                for v in x.iter_mut() {
                    let lambda = (*v * p) as f64;
                    *v = poisson(lambda, rng) as f32 / p;
                }
            }
            CorruptionKind::ImpulseNoise => {
                for i in 0..n {
                    let (u, salt): (f32, bool) = (rng.random(), rng.random());
                    if u < p {
                        for ch in 0..c as usize {
                            x[ch * n + i] = if salt { 1.0 } else { 0.0 };
                        }
                    }
                }
            }
            CorruptionKind::DefocusBlur => {
                let r = p;
                let ri = r.ceil() as i32;
                let mut k = Vec::new();
                for dy in -ri..=ri {
                    for dx in -ri..=ri {
                        let d = ((dx * dx + dy * dy) as f32).sqrt();
                        let wgt = (r + 0.5 - d).clamp(0.0, 1.0);
                        if wgt > 0.0 {
                            k.push((dx as f32, dy as f32, wgt));
                        }
                    }
                }
                x = convolve(&x, w, h, &k);
            }
            CorruptionKind::GaussianBlur => {
                let ri = (3.0 * p).ceil() as i32;
                let g: Vec<(f32, f32, f32)> = (-ri..=ri)
                    .map(|d| (d as f32, 0.0, (-(d * d) as f32 / (2.0 * p * p)).exp()))
                    .collect();
                x = convolve(&x, w, h, &g);
                let gt: Vec<_> = g.iter().map(|&(dx, dy, k)| (dy, dx, k)).collect();
                x = convolve(&x, w, h, &gt);
            }
            CorruptionKind::MotionBlur => {
                let angle: f32 = rng.random::<f32>() * std::f32::consts::PI;
                let steps = (2.0 * p).round() as i32;
                let k: Vec<_> = (0..=steps)
                    .map(|t| {
                        let s = t as f32 / steps as f32 * p - p / 2.0;
                        (s * angle.cos(), s * angle.sin(), 1.0)
                    })
                    .collect();
                x = convolve(&x, w, h, &k);
            }
            CorruptionKind::Brightness => x.iter_mut().for_each(|v| *v += p),
            CorruptionKind::Contrast => {
                for ch in 0..c as usize {
                    let plane = &mut x[ch * n..(ch + 1) * n];
                    let mean = plane.iter().sum::<f32>() / n as f32;
                    plane.iter_mut().for_each(|v| *v = (*v - mean) * p + mean);
                }
            }
            CorruptionKind::Fog => {
                let haze = smooth_noise(w, h, 4, rng);
                for ch in 0..c as usize {
                    for i in 0..n {
                        let v = &mut x[ch * n + i];
                        *v = *v * (1.0 - p) + p * (0.6 + 0.4 * haze[i]);
                    }
                }
            }
            CorruptionKind::Pixelate => {
                let (sw, sh) = (
                    ((w as f32 * p).round() as usize).max(1),
                    ((h as f32 * p).round() as usize).max(1),
                );
                for ch in 0..c as usize {
                    let plane = x[ch * n..(ch + 1) * n].to_vec();
                    let mut small = vec![0f32; sw * sh];
                    let mut cnt = vec![0f32; sw * sh];
                    for y in 0..h {
                        for xx in 0..w {
                            let j = (y * sh / h) * sw + xx * sw / w;
                            small[j] += plane[y * w + xx];
                            cnt[j] += 1.0;
                        }
                    }
                    for y in 0..h {
                        for xx in 0..w {
                            let j = (y * sh / h) * sw + xx * sw / w;
                            x[ch * n + y * w + xx] = small[j] / cnt[j];
                        }
                    }
                }
            }
            CorruptionKind::Occlusion => {
                let side = (w.min(h) / 4).max(1);
                for _ in 0..p as usize {
                    let (x0, y0) = (
                        rng.random_range(0..=w - side),
                        rng.random_range(0..=h - side),
                    );
                    let fill: f32 = rng.random_range(0.2..0.8);
                    for ch in 0..c as usize {
                        for y in y0..y0 + side {
                            for xx in x0..x0 + side {
                                x[ch * n + y * w + xx] = fill;
                            }
                        }
                    }
                }
            }
            CorruptionKind::Jpeg => unreachable!("handled above"),
        }
        Image::from_f32(c, img.height, img.width, &x)
    }
}

impl fmt::Display for CorruptionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for CorruptionKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        CorruptionKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                format!(
                    "unknown corruption `{s}`; known: {}",
                    CorruptionKind::ALL.map(|k| k.name()).join(", ")
                )
            })
    }
}

/// Bilinear sample of one plane with edge clamping.
fn sample(plane: &[f32], w: usize, h: usize, fx: f32, fy: f32) -> f32 {
    let fx = fx.clamp(0.0, (w - 1) as f32);
    let fy = fy.clamp(0.0, (h - 1) as f32);
    let (x0, y0) = (fx.floor() as usize, fy.floor() as usize);
    let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
    let (ax, ay) = (fx - x0 as f32, fy - y0 as f32);
    let top = plane[y0 * w + x0] * (1.0 - ax) + plane[y0 * w + x1] * ax;
    let bot = plane[y1 * w + x0] * (1.0 - ax) + plane[y1 * w + x1] * ax;
    top * (1.0 - ay) + bot * ay
}

/// Convolves every plane with a kernel of (dx, dy, weight) taps (normalised here), clamping at
/// edges. Fractional offsets are split into their four bilinear neighbours first, so the inner
/// loop only ever reads whole pixels.
fn convolve(x: &[f32], w: usize, h: usize, taps: &[(f32, f32, f32)]) -> Vec<f32> {
    let total: f32 = taps.iter().map(|t| t.2).sum();
    let mut merged: Vec<(i32, i32, f32)> = Vec::new();
    let mut add =
        |dx: i32, dy: i32, k: f32| match merged.iter_mut().find(|t| t.0 == dx && t.1 == dy) {
            Some(t) => t.2 += k,
            None => merged.push((dx, dy, k)),
        };
    for &(dx, dy, k) in taps {
        let (fx, fy) = (dx.floor(), dy.floor());
        let (ax, ay) = (dx - fx, dy - fy);
        let (ix, iy) = (fx as i32, fy as i32);
        for (ox, oy, wgt) in [
            (0, 0, (1.0 - ax) * (1.0 - ay)),
            (1, 0, ax * (1.0 - ay)),
            (0, 1, (1.0 - ax) * ay),
            (1, 1, ax * ay),
        ] {
            if wgt > 0.0 {
                add(ix + ox, iy + oy, k * wgt / total);
            }
        }
    }
    let n = w * h;
    let mut out = vec![0f32; x.len()];
    let mut cols = vec![0usize; w];
    for &(dx, dy, k) in &merged {
        for (xx, c) in cols.iter_mut().enumerate() {
            *c = (xx as i32 + dx).clamp(0, w as i32 - 1) as usize;
        }
        for (plane, dst) in x.chunks_exact(n).zip(out.chunks_exact_mut(n)) {
            for y in 0..h {
                let src = &plane[(y as i32 + dy).clamp(0, h as i32 - 1) as usize * w..][..w];
                for (d, &c) in dst[y * w..(y + 1) * w].iter_mut().zip(&cols) {
                    *d += k * src[c];
                }
            }
        }
    }
    out
}

/// A Poisson draw: Knuth's product method for small means, rand_distr's sampler above 30.
fn poisson(lambda: f64, rng: &mut ChaCha8Rng) -> u32 {
    if lambda <= 0.0 {
        return 0;
    }
    if lambda > 30.0 {
        return Poisson::new(lambda).map_or(lambda.round() as u32, |d| d.sample(rng) as u32);
    }
    let limit = (-lambda).exp();
    let mut k = 0;
    let mut prod: f64 = rng.random();
    while prod > limit {
        k += 1;
        prod *= rng.random::<f64>();
    }
    k
}

/// A smooth random field in [0, 1]: a `grid`×`grid` lattice of uniform values, bilinearly upsampled.
fn smooth_noise(w: usize, h: usize, grid: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let lattice: Vec<f32> = (0..(grid + 1) * (grid + 1)).map(|_| rng.random()).collect();
    let mut out = vec![0f32; w * h];
    for y in 0..h {
        for x in 0..w {
            let fx = x as f32 / (w - 1).max(1) as f32 * grid as f32;
            let fy = y as f32 / (h - 1).max(1) as f32 * grid as f32;
            out[y * w + x] = sample(&lattice, grid + 1, grid + 1, fx, fy);
        }
    }
    out
}

/// JPEG round trip at `quality` (1..=100) through the `image` crate's encoder and decoder.
fn jpeg(img: &Image, quality: u8) -> Image {
    use image::ImageEncoder;
    let mut buf = Vec::new();
    let color = if img.channels == 1 {
        image::ExtendedColorType::L8
    } else {
        image::ExtendedColorType::Rgb8
    };
    let bytes = if img.channels == 1 {
        img.data.clone()
    } else {
        img.to_interleaved()
    };
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut buf, quality)
        .write_image(&bytes, img.width, img.height, color)
        .expect("encoding a well-formed in-memory image as JPEG cannot fail");
    let decoded = image::load_from_memory_with_format(&buf, image::ImageFormat::Jpeg)
        .expect("decoding a JPEG this function just encoded cannot fail");
    if img.channels == 1 {
        Image {
            width: img.width,
            height: img.height,
            channels: 1,
            data: decoded.to_luma8().into_raw(),
        }
    } else {
        Image::from_interleaved(3, img.height, img.width, &decoded.to_rgb8().into_raw())
    }
}
