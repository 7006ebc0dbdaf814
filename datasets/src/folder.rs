//! Image folders: one sub-folder per class holding PNG or JPEG files.

use crate::error::{DatasetError, Result};
use crate::image::{Image, ImageSet};
use std::path::Path;

/// Decodes one PNG/JPEG file as grey (`channels = 1`) or RGB (`channels = 3`).
pub fn read_image(path: &Path, channels: u8) -> Result<Image> {
    let img = image::open(path)
        .map_err(|e| DatasetError::invalid(path, format!("cannot decode image: {e}")))?;
    let (w, h) = (img.width(), img.height());
    Ok(match channels {
        1 => Image {
            width: w,
            height: h,
            channels: 1,
            data: img.to_luma8().into_raw(),
        },
        _ => Image::from_interleaved(3, h, w, &img.to_rgb8().into_raw()),
    })
}

fn is_image(p: &Path) -> bool {
    matches!(
        p.extension()
            .and_then(|e| e.to_str())
            .map(|e| e.to_ascii_lowercase())
            .as_deref(),
        Some("png" | "jpg" | "jpeg")
    )
}

/// Sorted directory entries, with errors naming the directory.
pub(crate) fn sorted_entries(dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).map_err(|e| DatasetError::io(dir, e))? {
        out.push(e.map_err(|e| DatasetError::io(dir, e))?.path());
    }
    out.sort();
    Ok(out)
}

/// Loads `root/<class>/*.{png,jpg,jpeg}`; classes are the sub-folder names in sorted order.
/// Every image must have the same size; `channels` is 1 (grey) or 3 (RGB).
pub fn load_folder(root: &Path, channels: u8) -> Result<ImageSet> {
    if channels != 1 && channels != 3 {
        return Err(DatasetError::invalid(
            root,
            format!("channels must be 1 or 3, not {channels}"),
        ));
    }
    let class_dirs: Vec<_> = sorted_entries(root)?
        .into_iter()
        .filter(|p| p.is_dir())
        .collect();
    if class_dirs.is_empty() {
        return Err(DatasetError::invalid(
            root,
            "no class sub-folders (expected root/<class>/<image>.png)",
        ));
    }
    let mut set = ImageSet {
        width: 0,
        height: 0,
        channels,
        pixels: Vec::new(),
        labels: Vec::new(),
        classes: Vec::new(),
        source_index: Vec::new(),
    };
    for (label, dir) in class_dirs.iter().enumerate() {
        set.classes.push(
            dir.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned(),
        );
        for file in sorted_entries(dir)?
            .into_iter()
            .filter(|p| p.is_file() && is_image(p))
        {
            let img = read_image(&file, channels)?;
            if set.labels.is_empty() {
                set.width = img.width;
                set.height = img.height;
            } else if (img.width, img.height) != (set.width, set.height) {
                return Err(DatasetError::invalid(
                    &file,
                    format!(
                        "image is {}x{}, the folder's first image is {}x{}",
                        img.width, img.height, set.width, set.height
                    ),
                ));
            }
            set.source_index.push(set.labels.len() as u32);
            set.labels.push(label as u16);
            set.pixels.extend_from_slice(&img.data);
        }
    }
    if set.is_empty() {
        return Err(DatasetError::invalid(
            root,
            "class sub-folders hold no PNG or JPEG file",
        ));
    }
    Ok(set)
}
