//! The IDX format of MNIST and Fashion-MNIST, raw or gzip-compressed.
//!
//! Layout: two zero bytes, a type byte (`0x08` = unsigned byte, the only type image sets
//! use), the number of dimensions, then one big-endian `u32` per dimension, then the data.
//! Label files are 1-dimensional (magic `0x00000801`), image files 3-dimensional
//! (`0x00000803`: count, rows, columns).

use crate::error::{DatasetError, Result};
use crate::image::ImageSet;
use flate2::read::GzDecoder;
use std::io::{Read, Write};
use std::path::Path;

/// Magic number of an IDX file of unsigned bytes with one dimension (labels).
pub const LABELS_MAGIC: u32 = 0x0000_0801;
/// Magic number of an IDX file of unsigned bytes with three dimensions (images).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;

/// Reads a whole file, decompressing it when it starts with the gzip magic bytes.
///
/// A gzip stream that ends early is not an error here: the bytes decoded so far are
/// returned, so the caller's length check can say how much is missing.
pub fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(|e| DatasetError::io(path, e))?;
    if raw.len() >= 2 && raw[0] == 0x1f && raw[1] == 0x8b {
        let mut out = Vec::with_capacity(raw.len() * 4);
        match GzDecoder::new(&raw[..]).read_to_end(&mut out) {
            Ok(_) => Ok(out),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(out),
            Err(e) => Err(DatasetError::invalid(
                path,
                format!("corrupt gzip stream: {e}"),
            )),
        }
    } else {
        Ok(raw)
    }
}

fn be_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Parses an IDX header and checks the magic; returns the dimensions and the data bytes.
fn parse<'a>(
    path: &Path,
    bytes: &'a [u8],
    magic: u32,
    expected: &'static str,
) -> Result<(Vec<usize>, &'a [u8])> {
    if bytes.len() < 4 {
        return Err(DatasetError::Truncated {
            path: path.into(),
            what: "header bytes",
            declared: 4,
            found: bytes.len(),
        });
    }
    let found = be_u32(bytes);
    if found != magic {
        return Err(DatasetError::BadMagic {
            path: path.into(),
            found,
            expected,
        });
    }
    let ndim = (magic & 0xff) as usize;
    let header = 4 + 4 * ndim;
    if bytes.len() < header {
        return Err(DatasetError::Truncated {
            path: path.into(),
            what: "header bytes",
            declared: header,
            found: bytes.len(),
        });
    }
    let dims = (0..ndim)
        .map(|d| be_u32(&bytes[4 + 4 * d..]) as usize)
        .collect();
    Ok((dims, &bytes[header..]))
}

/// Reads an IDX label file (raw or gz).
pub fn read_labels(path: &Path) -> Result<Vec<u8>> {
    let bytes = read_maybe_gz(path)?;
    let (dims, data) = parse(
        path,
        &bytes,
        LABELS_MAGIC,
        "0x00000801 (IDX labels, unsigned bytes, 1 dimension)",
    )?;
    let n = dims[0];
    check_len(path, "labels", n, 1, data.len())?;
    Ok(data.to_vec())
}

/// Reads an IDX image file (raw or gz): returns (count, rows, columns, pixels).
pub fn read_images(path: &Path) -> Result<(usize, usize, usize, Vec<u8>)> {
    let bytes = read_maybe_gz(path)?;
    let (dims, data) = parse(
        path,
        &bytes,
        IMAGES_MAGIC,
        "0x00000803 (IDX images, unsigned bytes, 3 dimensions)",
    )?;
    let (n, rows, cols) = (dims[0], dims[1], dims[2]);
    if rows == 0 || cols == 0 {
        return Err(DatasetError::invalid(
            path,
            format!("image size {rows}x{cols} is empty"),
        ));
    }
    check_len(path, "images", n, rows * cols, data.len())?;
    Ok((n, rows, cols, data.to_vec()))
}

fn check_len(
    path: &Path,
    what: &'static str,
    declared: usize,
    item: usize,
    len: usize,
) -> Result<()> {
    let want = declared * item;
    if len < want {
        return Err(DatasetError::Truncated {
            path: path.into(),
            what,
            declared,
            found: len / item,
        });
    }
    if len > want {
        return Err(DatasetError::TrailingBytes {
            path: path.into(),
            what,
            declared,
            extra: len - want,
        });
    }
    Ok(())
}

/// Loads a grey image set from an IDX image file and its label file, checking they agree.
pub fn load_pair(images: &Path, labels: &Path, classes: Vec<String>) -> Result<ImageSet> {
    let (n, rows, cols, pixels) = read_images(images)?;
    let lab = read_labels(labels)?;
    if lab.len() != n {
        return Err(DatasetError::CountMismatch {
            images_path: images.into(),
            images: n,
            labels_path: labels.into(),
            labels: lab.len(),
        });
    }
    if let Some((i, &l)) = lab
        .iter()
        .enumerate()
        .find(|(_, l)| **l as usize >= classes.len())
    {
        return Err(DatasetError::invalid(
            labels,
            format!(
                "label {l} at index {i} is outside the {} classes",
                classes.len()
            ),
        ));
    }
    Ok(ImageSet {
        width: cols as u32,
        height: rows as u32,
        channels: 1,
        pixels,
        labels: lab.into_iter().map(u16::from).collect(),
        classes,
        source_index: (0..n as u32).collect(),
    })
}

/// Encodes an IDX file of unsigned bytes with the given dimensions.
pub fn encode(dims: &[usize], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, dims.len() as u8];
    for &d in dims {
        out.extend_from_slice(&(d as u32).to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

/// Writes an IDX file, gzip-compressed when `gz` is true.
pub fn write(path: &Path, dims: &[usize], data: &[u8], gz: bool) -> Result<()> {
    let bytes = encode(dims, data);
    let out = if gz {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(&bytes)
            .and_then(|_| enc.finish())
            .map_err(|e| DatasetError::io(path, e))?
    } else {
        bytes
    };
    std::fs::write(path, out).map_err(|e| DatasetError::io(path, e))
}
