//! What the network sees of an image, in training, evaluation and inference
//! alike: the letterbox into a square input, its resampling, and the
//! normalisation.
//!
//! A [`Letterbox`] is an axis-aligned map `x_out = x_orig * scale + pad`
//! (then mirrored when flipped): the plain centred letterbox here, random
//! crops and flips in [`super::augment`]. Resampling:
//!
//! - images: separable triangle ("bilinear", antialiased when shrinking) filter,
//!   padding grey [`PAD_IMAGE`];
//! - masks: nearest neighbour, padding [`IGNORE`] (255).
//!
//! Coordinates are continuous pixel coordinates: pixel `i` covers `[i, i + 1)`,
//! so a box `[x0, y0, x1, y1]` (0-based, exclusive end) holds the pixels whose
//! centres lie inside it. VOC boxes (1-based, inclusive) convert with
//! [`voc_to_xyxy`] and back with [`xyxy_to_voc`].

use image::{GrayImage, RgbImage};

use super::voc::VocBox;

/// Grey used to pad images (as YOLO letterboxing does).
pub const PAD_IMAGE: u8 = 114;
/// Mask value for "ignore": padding, ADE's unlabelled pixels.
pub const IGNORE: u8 = 255;
/// ImageNet normalisation, applied by [`normalize_into`].
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// A box in 0-based continuous pixel coordinates `[x0, y0, x1, y1]`.
pub type XyxyBox = [f32; 4];

/// VOC (1-based, inclusive) to continuous 0-based coordinates: `x0 = xmin - 1`, `x1 = xmax`.
pub fn voc_to_xyxy(b: VocBox) -> XyxyBox {
    [b[0] - 1.0, b[1] - 1.0, b[2], b[3]]
}

/// Continuous 0-based coordinates to VOC (1-based, inclusive).
pub fn xyxy_to_voc(b: XyxyBox) -> VocBox {
    [b[0] + 1.0, b[1] + 1.0, b[2], b[3]]
}

/// The geometric map from an original image to the network input:
/// `x_out = x * scale + pad_x`, `y_out = y * scale + pad_y`, then, when `flipped`,
/// `x_out = out_w - x_out`. A plain letterbox has non-negative pads; a random crop
/// has negative ones.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Letterbox {
    pub scale: f32,
    pub pad_x: f32,
    pub pad_y: f32,
    pub orig_w: u32,
    pub orig_h: u32,
    pub out_w: u32,
    pub out_h: u32,
    pub flipped: bool,
}

impl Letterbox {
    /// The centred letterbox of a `w`×`h` image into a `size`×`size` square: the
    /// long side fills the square, the short side is padded equally on both
    /// sides (whole pixels).
    pub fn fit(w: u32, h: u32, size: u32) -> Self {
        let scale = size as f32 / w.max(h) as f32;
        let new_w = ((w as f32 * scale).round() as u32).min(size);
        let new_h = ((h as f32 * scale).round() as u32).min(size);
        Self {
            scale,
            pad_x: ((size - new_w) / 2) as f32,
            pad_y: ((size - new_h) / 2) as f32,
            orig_w: w,
            orig_h: h,
            out_w: size,
            out_h: size,
            flipped: false,
        }
    }

    /// The same map followed by a horizontal flip of the output.
    pub fn hflip(self) -> Self {
        Self { flipped: !self.flipped, ..self }
    }

    /// Maps a point from original to output coordinates.
    pub fn forward(&self, x: f32, y: f32) -> (f32, f32) {
        let xo = x * self.scale + self.pad_x;
        let xo = if self.flipped { self.out_w as f32 - xo } else { xo };
        (xo, y * self.scale + self.pad_y)
    }

    /// Maps a point from output to original coordinates.
    pub fn inverse(&self, x: f32, y: f32) -> (f32, f32) {
        let x = if self.flipped { self.out_w as f32 - x } else { x };
        ((x - self.pad_x) / self.scale, (y - self.pad_y) / self.scale)
    }

    /// Maps a box to output coordinates (not clipped).
    pub fn box_to_output(&self, b: XyxyBox) -> XyxyBox {
        let (ax, ay) = self.forward(b[0], b[1]);
        let (bx, by) = self.forward(b[2], b[3]);
        [ax.min(bx), ay.min(by), ax.max(bx), ay.max(by)]
    }

    /// Maps a box predicted on the output back to the original image, clipped to it.
    pub fn box_to_original(&self, b: XyxyBox) -> XyxyBox {
        let (ax, ay) = self.inverse(b[0], b[1]);
        let (bx, by) = self.inverse(b[2], b[3]);
        let (w, h) = (self.orig_w as f32, self.orig_h as f32);
        [
            ax.min(bx).clamp(0.0, w),
            ay.min(by).clamp(0.0, h),
            ax.max(bx).clamp(0.0, w),
            ay.max(by).clamp(0.0, h),
        ]
    }

    /// [`Letterbox::box_to_original`] in VOC coordinates (1-based, inclusive).
    pub fn box_to_original_voc(&self, b: XyxyBox) -> VocBox {
        xyxy_to_voc(self.box_to_original(b))
    }

    /// The output pixels `[x0, y0, x1, y1)` that show the original image (the rest is padding).
    pub fn content_rect(&self) -> [u32; 4] {
        let (x0, x1) = valid_range(self.out_w, self.orig_w, self.scale, self.pad_x, self.flipped);
        let (y0, y1) = valid_range(self.out_h, self.orig_h, self.scale, self.pad_y, false);
        [x0, y0, x1, y1]
    }

    /// Maps a per-pixel prediction on the output (`out_w`×`out_h`) back to the
    /// original size, nearest neighbour; pixels that fell outside the output are [`IGNORE`].
    pub fn mask_to_original(&self, mask: &GrayImage) -> GrayImage {
        assert_eq!(mask.dimensions(), (self.out_w, self.out_h), "mask is not the output size");
        let cols: Vec<Option<u32>> = (0..self.orig_w)
            .map(|x| {
                let xo = (x as f32 + 0.5) * self.scale + self.pad_x;
                let xo = if self.flipped { self.out_w as f32 - xo } else { xo };
                (xo >= 0.0 && xo < self.out_w as f32).then_some(xo as u32)
            })
            .collect();
        let mut out = GrayImage::new(self.orig_w, self.orig_h);
        for y in 0..self.orig_h {
            let yo = (y as f32 + 0.5) * self.scale + self.pad_y;
            let row = (yo >= 0.0 && yo < self.out_h as f32).then_some(yo as u32);
            for (x, col) in cols.iter().enumerate() {
                let v = match (row, col) {
                    (Some(r), Some(c)) => mask.get_pixel(*c, r)[0],
                    _ => IGNORE,
                };
                out.put_pixel(x as u32, y, image::Luma([v]));
            }
        }
        out
    }
}

/// The output coordinates whose pixel centres map inside the source: `[lo, hi)`.
fn valid_range(out_len: u32, src_len: u32, scale: f32, pad: f32, flipped: bool) -> (u32, u32) {
    let inside = |o: u32| {
        let c = source_coord(o, out_len, scale, pad, flipped);
        c >= 0.0 && c < src_len as f64
    };
    let lo = (0..out_len).find(|&o| inside(o));
    match lo {
        None => (0, 0),
        Some(lo) => {
            let hi = (lo..out_len).rev().find(|&o| inside(o)).map_or(lo, |o| o + 1);
            (lo, hi)
        }
    }
}

/// The source coordinate of output pixel `o`'s centre.
fn source_coord(o: u32, out_len: u32, scale: f32, pad: f32, flipped: bool) -> f64 {
    let mut xo = o as f64 + 0.5;
    if flipped {
        xo = out_len as f64 - xo;
    }
    (xo - pad as f64) / scale as f64
}

/// The normalised letterboxed input of one image (planar CHW, `size`×`size`) and its letterbox.
pub fn letterbox_input(image: &RgbImage, size: u32) -> (Vec<f32>, Letterbox) {
    let geo = Letterbox::fit(image.width(), image.height(), size);
    let mut pixels = vec![0.0; 3 * (size * size) as usize];
    normalize_into(&warp_image(image, &geo), &mut pixels);
    (pixels, geo)
}

/// For each output coordinate, the source taps and their weights (`count == 0`: padding).
struct AxisMap {
    start: Vec<u32>,
    count: Vec<u32>,
    weights: Vec<f32>,
    stride: usize,
}

impl AxisMap {
    fn new(out_len: u32, src_len: u32, scale: f32, pad: f32, flipped: bool) -> Self {
        let support = (1.0 / scale as f64).max(1.0);
        let stride = 2 * support.ceil() as usize + 2;
        let mut map = Self {
            start: vec![0; out_len as usize],
            count: vec![0; out_len as usize],
            weights: vec![0.0; out_len as usize * stride],
            stride,
        };
        let mut taps = Vec::with_capacity(stride);
        for o in 0..out_len {
            let c = source_coord(o, out_len, scale, pad, flipped);
            if !(c >= 0.0 && c < src_len as f64) {
                continue;
            }
            let lo = ((c - support - 0.5).floor() as i64).max(0);
            let hi = ((c + support - 0.5).ceil() as i64).min(src_len as i64 - 1);
            taps.clear();
            for j in lo..=hi {
                let w = 1.0 - ((j as f64 + 0.5 - c) / support).abs();
                if w > 0.0 {
                    taps.push((j as u32, w));
                }
            }
            if taps.is_empty() {
                // Cannot happen for c inside the source, kept for safety: nearest pixel.
                taps.push(((c as u32).min(src_len - 1), 1.0));
            }
            let total: f64 = taps.iter().map(|t| t.1).sum();
            let o = o as usize;
            map.start[o] = taps[0].0;
            map.count[o] = taps.len() as u32;
            for (k, (_, w)) in taps.iter().enumerate() {
                map.weights[o * stride + k] = (w / total) as f32;
            }
        }
        map
    }

    fn taps(&self, o: usize) -> (usize, &[f32]) {
        let n = self.count[o] as usize;
        (self.start[o] as usize, &self.weights[o * self.stride..o * self.stride + n])
    }

    /// The source range touched by any output coordinate (empty when all is padding).
    fn source_range(&self) -> std::ops::Range<usize> {
        let mut lo = usize::MAX;
        let mut hi = 0;
        for o in 0..self.count.len() {
            if self.count[o] > 0 {
                lo = lo.min(self.start[o] as usize);
                hi = hi.max((self.start[o] + self.count[o]) as usize);
            }
        }
        if lo >= hi {
            0..0
        } else {
            lo..hi
        }
    }
}

/// Resamples an image with `geo` (separable triangle filter, widened when
/// shrinking so it averages rather than aliases); padding is [`PAD_IMAGE`].
pub fn warp_image(src: &RgbImage, geo: &Letterbox) -> RgbImage {
    let (sw, sh) = src.dimensions();
    let (ow, oh) = (geo.out_w as usize, geo.out_h as usize);
    let xmap = AxisMap::new(geo.out_w, sw, geo.scale, geo.pad_x, geo.flipped);
    let ymap = AxisMap::new(geo.out_h, sh, geo.scale, geo.pad_y, false);
    let rows = ymap.source_range();
    // Output columns showing the source form one contiguous range; the rest is padding.
    let (x0, x1) = valid_range(geo.out_w, sw, geo.scale, geo.pad_x, geo.flipped);
    let (x0, cols) = (x0 as usize, (x1 - x0) as usize);
    let raw = src.as_raw();
    let sw = sw as usize;
    // Horizontal pass over the needed source rows (converted to floats once per row).
    let mut tmp = vec![0f32; rows.len() * cols * 3];
    let mut src_row = vec![0f32; sw * 3];
    for (r, sy) in rows.clone().enumerate() {
        src_row.iter_mut().zip(&raw[sy * sw * 3..(sy + 1) * sw * 3]).for_each(|(f, &v)| *f = v as f32);
        let out_row = &mut tmp[r * cols * 3..(r + 1) * cols * 3];
        for (x, out) in (x0..x0 + cols).zip(out_row.chunks_exact_mut(3)) {
            let (start, weights) = xmap.taps(x);
            let pixels = &src_row[start * 3..(start + weights.len()) * 3];
            let (mut a, mut b, mut c) = (0f32, 0f32, 0f32);
            for (&w, p) in weights.iter().zip(pixels.chunks_exact(3)) {
                a += w * p[0];
                b += w * p[1];
                c += w * p[2];
            }
            out[0] = a;
            out[1] = b;
            out[2] = c;
        }
    }
    // Vertical pass, a whole row at a time.
    let mut out = vec![PAD_IMAGE; ow * oh * 3];
    let mut acc = vec![0f32; cols * 3];
    for y in 0..oh {
        let (start, weights) = ymap.taps(y);
        if weights.is_empty() {
            continue;
        }
        acc.iter_mut().for_each(|v| *v = 0.0);
        for (k, &w) in weights.iter().enumerate() {
            let r = start + k - rows.start;
            let row = &tmp[r * cols * 3..(r + 1) * cols * 3];
            acc.iter_mut().zip(row).for_each(|(a, &v)| *a += w * v);
        }
        let out_row = &mut out[(y * ow + x0) * 3..(y * ow + x0 + cols) * 3];
        out_row.iter_mut().zip(&acc).for_each(|(o, &a)| *o = (a + 0.5).clamp(0.0, 255.0) as u8);
    }
    RgbImage::from_raw(geo.out_w, geo.out_h, out).expect("buffer has the image size")
}

/// Resamples a mask with `geo`, nearest neighbour; padding is [`IGNORE`].
pub fn warp_mask(src: &GrayImage, geo: &Letterbox) -> GrayImage {
    let (sw, sh) = src.dimensions();
    let nearest = |out_len: u32, src_len: u32, pad: f32, flipped: bool| -> Vec<Option<usize>> {
        (0..out_len)
            .map(|o| {
                let c = source_coord(o, out_len, geo.scale, pad, flipped);
                (c >= 0.0 && c < src_len as f64).then_some(c as usize)
            })
            .collect()
    };
    let cols = nearest(geo.out_w, sw, geo.pad_x, geo.flipped);
    let rows = nearest(geo.out_h, sh, geo.pad_y, false);
    let raw = src.as_raw();
    let mut out = vec![IGNORE; (geo.out_w * geo.out_h) as usize];
    for (y, row) in rows.iter().enumerate() {
        let Some(sy) = row else { continue };
        let src_row = &raw[sy * sw as usize..(sy + 1) * sw as usize];
        let out_row = &mut out[y * geo.out_w as usize..(y + 1) * geo.out_w as usize];
        for (o, col) in out_row.iter_mut().zip(&cols) {
            if let Some(sx) = col {
                *o = src_row[*sx];
            }
        }
    }
    GrayImage::from_raw(geo.out_w, geo.out_h, out).expect("buffer has the mask size")
}

/// `(v / 255 - mean) / std` of every 8-bit value, per channel.
pub(crate) fn normalisation_tables() -> [[f32; 256]; 3] {
    std::array::from_fn(|c| std::array::from_fn(|v| (v as f32 / 255.0 - IMAGENET_MEAN[c]) / IMAGENET_STD[c]))
}


/// Writes `img` into `out` (length 3·w·h) as planar CHW, `(v / 255 - mean) / std`.
pub fn normalize_into(img: &RgbImage, out: &mut [f32]) {
    let plane = (img.width() * img.height()) as usize;
    assert_eq!(out.len(), 3 * plane, "output buffer is not 3 x width x height");
    let luts = normalisation_tables();
    let (r, rest) = out.split_at_mut(plane);
    let (g, b) = rest.split_at_mut(plane);
    for (i, p) in img.as_raw().chunks_exact(3).enumerate() {
        r[i] = luts[0][p[0] as usize];
        g[i] = luts[1][p[1] as usize];
        b[i] = luts[2][p[2] as usize];
    }
}

/// The inverse of [`normalize_into`], for previews: planar CHW floats to an image.
pub fn denormalize(chw: &[f32], width: u32, height: u32) -> RgbImage {
    let plane = (width * height) as usize;
    assert_eq!(chw.len(), 3 * plane, "input is not 3 x width x height");
    let mut img = RgbImage::new(width, height);
    for (i, p) in img.pixels_mut().enumerate() {
        for c in 0..3 {
            let v = (chw[c * plane + i] * IMAGENET_STD[c] + IMAGENET_MEAN[c]) * 255.0;
            p[c] = (v + 0.5).clamp(0.0, 255.0) as u8;
        }
    }
    img
}
