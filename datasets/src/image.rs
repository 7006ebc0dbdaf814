//! Images as planar `u8` channels, and labelled sets of them.

/// One image: `channels` planes of `height` × `width` bytes (CHW order, row-major).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// 1 (grey) or 3 (RGB).
    pub channels: u8,
    /// `channels * height * width` bytes, plane after plane.
    pub data: Vec<u8>,
}

impl Image {
    /// A black image of the given shape.
    pub fn zeros(channels: u8, height: u32, width: u32) -> Self {
        Image {
            width,
            height,
            channels,
            data: vec![0; channels as usize * (height * width) as usize],
        }
    }

    /// Pixels per plane.
    pub fn plane_len(&self) -> usize {
        (self.width * self.height) as usize
    }

    /// The byte at channel `c`, row `y`, column `x`.
    pub fn get(&self, c: usize, y: usize, x: usize) -> u8 {
        self.data[c * self.plane_len() + y * self.width as usize + x]
    }

    /// Pixels in [0, 1] as `f32`, same layout as `data`.
    pub fn to_f32(&self) -> Vec<f32> {
        self.data.iter().map(|&v| v as f32 / 255.0).collect()
    }

    /// Builds an image from values in [0, 1] (clipped, rounded).
    pub fn from_f32(channels: u8, height: u32, width: u32, values: &[f32]) -> Self {
        let data = values
            .iter()
            .map(|&v| (v.clamp(0.0, 1.0) * 255.0).round() as u8)
            .collect();
        Image {
            width,
            height,
            channels,
            data,
        }
    }

    /// Interleaved (HWC) bytes, as image encoders want them.
    pub fn to_interleaved(&self) -> Vec<u8> {
        let n = self.plane_len();
        let c = self.channels as usize;
        let mut out = vec![0u8; n * c];
        for ch in 0..c {
            for i in 0..n {
                out[i * c + ch] = self.data[ch * n + i];
            }
        }
        out
    }

    /// Builds a planar image from interleaved (HWC) bytes.
    pub fn from_interleaved(channels: u8, height: u32, width: u32, bytes: &[u8]) -> Self {
        let n = (width * height) as usize;
        let c = channels as usize;
        let mut data = vec![0u8; n * c];
        for ch in 0..c {
            for i in 0..n {
                data[ch * n + i] = bytes[i * c + ch];
            }
        }
        Image {
            width,
            height,
            channels,
            data,
        }
    }
}

/// Peak signal-to-noise ratio in dB between two images of the same shape
/// (infinite when they are equal).
pub fn psnr(a: &Image, b: &Image) -> f64 {
    assert_eq!(a.data.len(), b.data.len(), "psnr needs images of one shape");
    let mse: f64 = a
        .data
        .iter()
        .zip(&b.data)
        .map(|(&x, &y)| {
            let d = x as f64 - y as f64;
            d * d
        })
        .sum::<f64>()
        / a.data.len() as f64;
    if mse == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (255.0f64 * 255.0 / mse).log10()
    }
}

/// A labelled set of images of one shape, stored contiguously.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageSet {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// 1 (grey) or 3 (RGB).
    pub channels: u8,
    /// All images, each `channels * height * width` bytes, planar.
    pub pixels: Vec<u8>,
    /// One label per image.
    pub labels: Vec<u16>,
    /// Class names, indexed by label.
    pub classes: Vec<String>,
    /// For each image, its index in the file it came from (so splits can be audited).
    pub source_index: Vec<u32>,
}

impl ImageSet {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when the set holds no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Bytes per image.
    pub fn image_len(&self) -> usize {
        self.channels as usize * (self.width * self.height) as usize
    }

    /// The raw bytes of image `i`.
    pub fn image_bytes(&self, i: usize) -> &[u8] {
        let n = self.image_len();
        &self.pixels[i * n..(i + 1) * n]
    }

    /// Image `i` as an owned [`Image`].
    pub fn image(&self, i: usize) -> Image {
        Image {
            width: self.width,
            height: self.height,
            channels: self.channels,
            data: self.image_bytes(i).to_vec(),
        }
    }

    /// Number of classes.
    pub fn num_classes(&self) -> usize {
        self.classes.len()
    }

    /// How many images each class has.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes.len()];
        for &l in &self.labels {
            if let Some(c) = counts.get_mut(l as usize) {
                *c += 1;
            }
        }
        counts
    }

    /// A new set holding the images at `indices`, in that order.
    pub fn subset(&self, indices: &[usize]) -> ImageSet {
        let n = self.image_len();
        let mut pixels = Vec::with_capacity(indices.len() * n);
        for &i in indices {
            pixels.extend_from_slice(self.image_bytes(i));
        }
        ImageSet {
            width: self.width,
            height: self.height,
            channels: self.channels,
            pixels,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            classes: self.classes.clone(),
            source_index: indices.iter().map(|&i| self.source_index[i]).collect(),
        }
    }

    /// Indices of the images of each class, in order.
    pub fn indices_by_class(&self) -> Vec<Vec<usize>> {
        let mut by = vec![Vec::new(); self.classes.len()];
        for (i, &l) in self.labels.iter().enumerate() {
            if let Some(v) = by.get_mut(l as usize) {
                v.push(i);
            }
        }
        by
    }
}
