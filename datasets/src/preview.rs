//! Contact sheets: a grid of frames with captions, so a person can see what a stream or a
//! corruption looks like.

use crate::image::Image;

/// A 3×5 pixel font for captions: lowercase letters, digits and a few signs.
fn glyph(c: char) -> [&'static str; 5] {
    match c.to_ascii_lowercase() {
        'a' => [".#.", "#.#", "###", "#.#", "#.#"],
        'b' => ["##.", "#.#", "##.", "#.#", "##."],
        'c' => [".##", "#..", "#..", "#..", ".##"],
        'd' => ["##.", "#.#", "#.#", "#.#", "##."],
        'e' => ["###", "#..", "##.", "#..", "###"],
        'f' => ["###", "#..", "##.", "#..", "#.."],
        'g' => [".##", "#..", "#.#", "#.#", ".##"],
        'h' => ["#.#", "#.#", "###", "#.#", "#.#"],
        'i' => ["###", ".#.", ".#.", ".#.", "###"],
        'j' => ["..#", "..#", "..#", "#.#", ".#."],
        'k' => ["#.#", "#.#", "##.", "#.#", "#.#"],
        'l' => ["#..", "#..", "#..", "#..", "###"],
        'm' => ["#.#", "###", "###", "#.#", "#.#"],
        'n' => ["##.", "#.#", "#.#", "#.#", "#.#"],
        'o' => [".#.", "#.#", "#.#", "#.#", ".#."],
        'p' => ["##.", "#.#", "##.", "#..", "#.."],
        'q' => [".#.", "#.#", "#.#", "##.", ".##"],
        'r' => ["##.", "#.#", "##.", "#.#", "#.#"],
        's' => [".##", "#..", ".#.", "..#", "##."],
        't' => ["###", ".#.", ".#.", ".#.", ".#."],
        'u' => ["#.#", "#.#", "#.#", "#.#", "###"],
        'v' => ["#.#", "#.#", "#.#", "#.#", ".#."],
        'w' => ["#.#", "#.#", "###", "###", "#.#"],
        'x' => ["#.#", "#.#", ".#.", "#.#", "#.#"],
        'y' => ["#.#", "#.#", ".#.", ".#.", ".#."],
        'z' => ["###", "..#", ".#.", "#..", "###"],
        '0' => ["###", "#.#", "#.#", "#.#", "###"],
        '1' => [".#.", "##.", ".#.", ".#.", "###"],
        '2' => ["##.", "..#", ".#.", "#..", "###"],
        '3' => ["##.", "..#", ".#.", "..#", "##."],
        '4' => ["#.#", "#.#", "###", "..#", "..#"],
        '5' => ["###", "#..", "##.", "..#", "##."],
        '6' => [".##", "#..", "###", "#.#", "###"],
        '7' => ["###", "..#", ".#.", ".#.", ".#."],
        '8' => ["###", "#.#", "###", "#.#", "###"],
        '9' => ["###", "#.#", "###", "..#", "##."],
        '-' => ["...", "...", "###", "...", "..."],
        '.' => ["...", "...", "...", "...", ".#."],
        ':' => ["...", ".#.", "...", ".#.", "..."],
        '@' => [".#.", "#.#", "###", "#..", ".##"],
        '/' => ["..#", "..#", ".#.", "#..", "#.."],
        '=' => ["...", "###", "...", "###", "..."],
        '%' => ["#.#", "..#", ".#.", "#..", "#.#"],
        _ => ["...", "...", "...", "...", "..."],
    }
}

/// Width in pixels of `text` drawn at `scale`.
pub fn text_width(text: &str, scale: u32) -> u32 {
    text.chars().count() as u32 * 4 * scale
}

/// Draws `text` in white onto a grey image at (x, y), top-left, each font pixel `scale`² pixels.
pub fn draw_text(img: &mut Image, x: u32, y: u32, text: &str, scale: u32) {
    let w = img.width as usize;
    for (i, ch) in text.chars().enumerate() {
        for (row, bits) in glyph(ch).iter().enumerate() {
            for (col, b) in bits.bytes().enumerate() {
                if b != b'#' {
                    continue;
                }
                for sy in 0..scale {
                    for sx in 0..scale {
                        let px = x as usize + (i * 4 + col) * scale as usize + sx as usize;
                        let py = y as usize + row * scale as usize + sy as usize;
                        if px < w && py < img.height as usize {
                            for c in 0..img.channels as usize {
                                let n = img.plane_len();
                                img.data[c * n + py * w + px] = 255;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// One labelled row of a contact sheet.
pub struct SheetRow {
    /// Caption shown left of the row.
    pub caption: String,
    /// The frames, left to right.
    pub images: Vec<Image>,
}

/// Lays out rows of same-sized frames into one image: a caption column, then the frames
/// magnified `zoom` times with a 2-pixel gap; `header` captions the columns. Grey frames give
/// a grey sheet, colour frames (any row) an RGB one.
pub fn contact_sheet(header: &[String], rows: &[SheetRow], zoom: u32) -> Image {
    let first = rows.iter().flat_map(|r| r.images.first()).next();
    let (fw, fh) = first.map_or((28, 28), |i| (i.width * zoom, i.height * zoom));
    let channels = if rows.iter().flat_map(|r| &r.images).any(|i| i.channels == 3) {
        3
    } else {
        1
    };
    let gap = 2;
    let text_scale = 2;
    let caption_w = rows
        .iter()
        .map(|r| text_width(&r.caption, text_scale))
        .max()
        .unwrap_or(0)
        + 8;
    let header_h = if header.is_empty() {
        0
    } else {
        5 * text_scale + 8
    };
    let cols = rows.iter().map(|r| r.images.len()).max().unwrap_or(0) as u32;
    let width = caption_w + cols * (fw + gap) + gap;
    let height = header_h + rows.len() as u32 * (fh + gap) + gap;
    let mut sheet = Image::zeros(channels, height, width);
    sheet.data.iter_mut().for_each(|v| *v = 40);
    for (c, text) in header.iter().enumerate() {
        draw_text(
            &mut sheet,
            caption_w + c as u32 * (fw + gap) + gap,
            4,
            text,
            text_scale,
        );
    }
    let n = sheet.plane_len();
    for (r, row) in rows.iter().enumerate() {
        let y0 = header_h + r as u32 * (fh + gap) + gap;
        draw_text(&mut sheet, 4, y0 + fh / 2 - 5, &row.caption, text_scale);
        for (c, img) in row.images.iter().enumerate() {
            let x0 = caption_w + c as u32 * (fw + gap) + gap;
            for ch in 0..channels as usize {
                let src_ch = ch.min(img.channels as usize - 1);
                for y in 0..fh {
                    for x in 0..fw {
                        let v = img.get(src_ch, (y / zoom) as usize, (x / zoom) as usize);
                        sheet.data[ch * n + ((y0 + y) * width + x0 + x) as usize] = v;
                    }
                }
            }
        }
    }
    sheet
}

/// Encodes an image as PNG bytes.
pub fn encode_png(img: &Image) -> Vec<u8> {
    use image::ImageEncoder;
    let mut buf = Vec::new();
    let (color, bytes) = if img.channels == 1 {
        (image::ExtendedColorType::L8, img.data.clone())
    } else {
        (image::ExtendedColorType::Rgb8, img.to_interleaved())
    };
    image::codecs::png::PngEncoder::new(&mut buf)
        .write_image(&bytes, img.width, img.height, color)
        .expect("encoding a well-formed in-memory image as PNG cannot fail");
    buf
}
