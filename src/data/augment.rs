//! Training augmentation: random scale + crop, horizontal flip and colour
//! jitter, each box- and mask-consistent.
//!
//! Every geometric transform is an axis-aligned map recorded as a
//! [`Letterbox`] (see [`super::preprocess`], which also holds the plain
//! letterbox of evaluation and inference): the image, its mask and its boxes
//! go through the same map in one resampling pass. Boxes are mapped, clipped
//! to the output, and dropped when a side is shorter than
//! [`AugmentConfig::min_box_side`] or less than [`AugmentConfig::min_visible`]
//! of their area is left.

use image::{GrayImage, RgbImage};
use rand::RngCore;

use super::preprocess::{normalisation_tables, warp_image, warp_mask, Letterbox, XyxyBox, IGNORE};

/// One annotated object.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Target {
    pub bbox: XyxyBox,
    /// Index into the dataset's class list.
    pub class: usize,
    pub difficult: bool,
}

/// A decoded sample before augmentation. The mask, when present, is already in
/// training encoding (class index, [`IGNORE`] for unlabelled; see [`ade_to_class_mask`]).
#[derive(Debug, Clone)]
pub struct Sample {
    pub image: RgbImage,
    pub targets: Vec<Target>,
    pub mask: Option<GrayImage>,
}

/// A sample after augmentation, `size`×`size`.
#[derive(Debug, Clone)]
pub struct Augmented {
    pub image: RgbImage,
    pub targets: Vec<Target>,
    pub mask: Option<GrayImage>,
    pub letterbox: Letterbox,
    /// Colour jitter still to apply to `image` ([`Jitter::NONE`] when applied or
    /// none): [`augment_deferred`] leaves it to [`normalize_jittered_into`], which
    /// does both in one pass.
    pub jitter: Jitter,
}

/// Augmentation settings. `train: false` means letterbox only (evaluation).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AugmentConfig {
    /// Side of the square network input, in pixels.
    pub size: u32,
    pub train: bool,
    /// Random scale range, relative to the letterbox scale (log-uniform).
    pub scale: (f32, f32),
    pub flip_prob: f32,
    /// Colour jitter strengths: factors are drawn uniformly from `[1 - x, 1 + x]`.
    pub brightness: f32,
    pub contrast: f32,
    pub saturation: f32,
    /// Boxes with a side shorter than this (output pixels) are dropped.
    pub min_box_side: f32,
    /// Boxes keeping less than this fraction of their area after clipping are dropped.
    pub min_visible: f32,
}

impl AugmentConfig {
    pub fn train(size: u32) -> Self {
        Self {
            size,
            train: true,
            scale: (0.5, 1.5),
            flip_prob: 0.5,
            brightness: 0.4,
            contrast: 0.4,
            saturation: 0.4,
            min_box_side: 2.0,
            min_visible: 0.25,
        }
    }

    pub fn eval(size: u32) -> Self {
        Self { train: false, ..Self::train(size) }
    }
}

/// Colour jitter factors (1.0 = unchanged).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Jitter {
    pub brightness: f32,
    pub contrast: f32,
    pub saturation: f32,
}

impl Jitter {
    pub const NONE: Jitter = Jitter { brightness: 1.0, contrast: 1.0, saturation: 1.0 };

    pub fn random(cfg: &AugmentConfig, rng: &mut impl RngCore) -> Self {
        let mut factor = |x: f32| 1.0 + x * (2.0 * unit(rng) - 1.0);
        Self {
            brightness: factor(cfg.brightness),
            contrast: factor(cfg.contrast),
            saturation: factor(cfg.saturation),
        }
    }
}

/// A uniform draw in `[0, 1)` from the top 24 bits of one `u32` (stable across `rand` versions).
pub fn unit(rng: &mut impl RngCore) -> f32 {
    (rng.next_u32() >> 8) as f32 / (1u32 << 24) as f32
}

/// A random scale (log-uniform in `scale_range`, relative to the letterbox scale)
/// and a random placement in the `size`×`size` output: an image larger than the
/// output is cropped at a random offset, a smaller one is placed at a random offset.
pub fn random_scale_crop(
    w: u32,
    h: u32,
    size: u32,
    scale_range: (f32, f32),
    rng: &mut impl RngCore,
) -> Letterbox {
    let base = size as f32 / w.max(h) as f32;
    let (lo, hi) = (scale_range.0.ln(), scale_range.1.max(scale_range.0).ln());
    let scale = base * (lo + (hi - lo) * unit(rng)).exp();
    let place = |len: u32, u: f32| {
        let extent = len as f32 * scale;
        let slack = size as f32 - extent;
        (slack * u).round()
    };
    let (ux, uy) = (unit(rng), unit(rng));
    Letterbox {
        scale,
        pad_x: place(w, ux),
        pad_y: place(h, uy),
        orig_w: w,
        orig_h: h,
        out_w: size,
        out_h: size,
        flipped: false,
    }
}

/// Letterbox only (evaluation), or random scale + crop, flip and colour jitter (training).
/// The draws from `rng` are the same in number whatever they decide, so a sample's
/// augmentation depends only on its own generator.
pub fn augment(sample: &Sample, cfg: &AugmentConfig, rng: &mut impl RngCore) -> Augmented {
    let mut out = augment_deferred(sample, cfg, rng);
    color_jitter(&mut out.image, out.letterbox.content_rect(), out.jitter);
    out.jitter = Jitter::NONE;
    out
}

/// [`augment`] without applying the colour jitter: it is left in `jitter`, for
/// [`normalize_jittered_into`] (the loader's path: one pass less over the image).
pub fn augment_deferred(sample: &Sample, cfg: &AugmentConfig, rng: &mut impl RngCore) -> Augmented {
    let (w, h) = sample.image.dimensions();
    if !cfg.train {
        return apply_geometry(sample, &Letterbox::fit(w, h, cfg.size), cfg);
    }
    let geo = random_scale_crop(w, h, cfg.size, cfg.scale, rng);
    let geo = if unit(rng) < cfg.flip_prob { geo.hflip() } else { geo };
    let jitter = Jitter::random(cfg, rng);
    Augmented { jitter, ..apply_geometry(sample, &geo, cfg) }
}

/// Warps the image (triangle filter), mask (nearest) and boxes (clip and drop) with `geo`.
pub fn apply_geometry(sample: &Sample, geo: &Letterbox, cfg: &AugmentConfig) -> Augmented {
    assert_eq!(
        sample.image.dimensions(),
        (geo.orig_w, geo.orig_h),
        "letterbox was made for another image size"
    );
    Augmented {
        image: warp_image(&sample.image, geo),
        mask: sample.mask.as_ref().map(|m| warp_mask(m, geo)),
        targets: transform_targets(&sample.targets, geo, cfg.min_box_side, cfg.min_visible),
        letterbox: *geo,
        jitter: Jitter::NONE,
    }
}

/// Maps boxes with `geo`, clips them to the output, and drops the ones with a side
/// under `min_side` or keeping under `min_visible` of their mapped area.
pub fn transform_targets(
    targets: &[Target],
    geo: &Letterbox,
    min_side: f32,
    min_visible: f32,
) -> Vec<Target> {
    let (w, h) = (geo.out_w as f32, geo.out_h as f32);
    targets
        .iter()
        .filter_map(|t| {
            let b = geo.box_to_output(t.bbox);
            let full = (b[2] - b[0]) * (b[3] - b[1]);
            let c = [b[0].clamp(0.0, w), b[1].clamp(0.0, h), b[2].clamp(0.0, w), b[3].clamp(0.0, h)];
            let (cw, ch) = (c[2] - c[0], c[3] - c[1]);
            if cw < min_side || ch < min_side || cw * ch < min_visible * full {
                return None;
            }
            Some(Target { bbox: c, ..*t })
        })
        .collect()
}

/// A colour jitter prepared for one image: brightness and contrast as one table
/// over values, saturation in 8-bit fixed point, and the region it applies to.
struct JitterPlan {
    lut: [u8; 256],
    saturation: i32,
    rect: [usize; 4],
}

impl JitterPlan {
    /// `None` when there is nothing to do.
    fn new(img: &RgbImage, rect: [u32; 4], j: Jitter) -> Option<Self> {
        if j == Jitter::NONE {
            return None;
        }
        let [x0, y0, x1, y1] = rect;
        let (x1, y1) = (x1.min(img.width()), y1.min(img.height()));
        if x0 >= x1 || y0 >= y1 {
            return None;
        }
        let [x0, y0, x1, y1] = [x0, y0, x1, y1].map(|v| v as usize);
        let w = img.width() as usize;
        let raw = img.as_raw();
        // Mean grey of the region (weights 299/587/114 per mille), after brightness.
        let mut sum = 0u64;
        for y in y0..y1 {
            for p in raw[(y * w + x0) * 3..(y * w + x1) * 3].chunks_exact(3) {
                sum += 299 * p[0] as u64 + 587 * p[1] as u64 + 114 * p[2] as u64;
            }
        }
        let n = ((x1 - x0) * (y1 - y0)) as f64;
        let mean = ((sum as f64 / n / 1000.0) as f32 * j.brightness).clamp(0.0, 255.0);
        let lut = std::array::from_fn(|v| {
            let v = (v as f32 * j.brightness).min(255.0);
            (((v - mean) * j.contrast + mean).clamp(0.0, 255.0) + 0.5) as u8
        });
        let saturation = (j.saturation.max(0.0) * 256.0).round() as i32;
        Some(Self { lut, saturation, rect: [x0, y0, x1, y1] })
    }

    /// One pixel: brightness and contrast (table), then saturation towards its grey
    /// (weights 77/150/29 of 256).
    #[inline]
    fn pixel(&self, p: &[u8]) -> [u8; 3] {
        let c =
            [self.lut[p[0] as usize] as i32, self.lut[p[1] as usize] as i32, self.lut[p[2] as usize] as i32];
        let grey = (77 * c[0] + 150 * c[1] + 29 * c[2] + 128) >> 8;
        c.map(|v| (grey + (((v - grey) * self.saturation + 128) >> 8)).clamp(0, 255) as u8)
    }
}

/// Brightness, then contrast (around the mean grey of `rect`), then saturation
/// (towards each pixel's grey), as torchvision's `ColorJitter` does in that order;
/// applied inside `rect` `[x0, y0, x1, y1)` only, so padding keeps its value.
pub fn color_jitter(img: &mut RgbImage, rect: [u32; 4], j: Jitter) {
    let Some(plan) = JitterPlan::new(img, rect, j) else { return };
    let [x0, y0, x1, y1] = plan.rect;
    let w = img.width() as usize;
    let raw: &mut [u8] = img;
    for y in y0..y1 {
        for p in raw[(y * w + x0) * 3..(y * w + x1) * 3].chunks_exact_mut(3) {
            p.copy_from_slice(&plan.pixel(p));
        }
    }
}

/// [`color_jitter`] then [`normalize_into`], in one pass, leaving `img` as it is.
pub fn normalize_jittered_into(img: &RgbImage, rect: [u32; 4], j: Jitter, out: &mut [f32]) {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let plane = w * h;
    assert_eq!(out.len(), 3 * plane, "output buffer is not 3 x width x height");
    let luts = normalisation_tables();
    let plan = JitterPlan::new(img, rect, j);
    let [x0, y0, x1, y1] = plan.as_ref().map_or([0; 4], |p| p.rect);
    let (r, rest) = out.split_at_mut(plane);
    let (g, b) = rest.split_at_mut(plane);
    let mut put = |i: usize, p: [u8; 3]| {
        r[i] = luts[0][p[0] as usize];
        g[i] = luts[1][p[1] as usize];
        b[i] = luts[2][p[2] as usize];
    };
    for (y, row) in img.as_raw().chunks_exact(w * 3).enumerate() {
        let base = y * w;
        match &plan {
            Some(plan) if y >= y0 && y < y1 => {
                for (x, p) in row.chunks_exact(3).enumerate().take(x0) {
                    put(base + x, [p[0], p[1], p[2]]);
                }
                for (x, p) in row[x0 * 3..x1 * 3].chunks_exact(3).enumerate() {
                    put(base + x0 + x, plan.pixel(p));
                }
                for (x, p) in row[x1 * 3..].chunks_exact(3).enumerate() {
                    put(base + x1 + x, [p[0], p[1], p[2]]);
                }
            }
            _ => {
                for (x, p) in row.chunks_exact(3).enumerate() {
                    put(base + x, [p[0], p[1], p[2]]);
                }
            }
        }
    }
}

/// ADE encoding to training encoding, in place: label `k` (1..=N) becomes class
/// index `k - 1`; 0 (unlabelled) and anything above `num_classes` become [`IGNORE`].
pub fn ade_to_class_mask(mask: &mut GrayImage, num_classes: usize) {
    let lut: [u8; 256] = std::array::from_fn(|v| {
        if v == 0 || v > num_classes || v > IGNORE as usize {
            IGNORE
        } else {
            (v - 1) as u8
        }
    });
    for v in mask.iter_mut() {
        *v = lut[*v as usize];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::preprocess::{denormalize, normalize_into, PAD_IMAGE};
    use image::Rgb;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// A sample with a filled box of class 1 in its mask (0 elsewhere) and a gradient image.
    fn boxed_sample(w: u32, h: u32, b: [u32; 4]) -> Sample {
        let image = RgbImage::from_fn(w, h, |x, y| Rgb([(x * 255 / w) as u8, (y * 255 / h) as u8, 77]));
        let mask = GrayImage::from_fn(w, h, |x, y| {
            image::Luma([u8::from(x >= b[0] && x < b[2] && y >= b[1] && y < b[3])])
        });
        let target = Target { bbox: b.map(|v| v as f32), class: 1, difficult: false };
        Sample { image, targets: vec![target], mask: Some(mask) }
    }

    /// The extent `[x0, y0, x1)` of mask pixels equal to 1, or `None`.
    fn extent(mask: &GrayImage) -> Option<[f32; 4]> {
        let mut e = [u32::MAX, u32::MAX, 0, 0];
        for (x, y, p) in mask.enumerate_pixels() {
            if p[0] == 1 {
                e = [e[0].min(x), e[1].min(y), e[2].max(x + 1), e[3].max(y + 1)];
            }
        }
        (e[0] != u32::MAX).then(|| e.map(|v| v as f32))
    }

    fn assert_consistent(sample: &Sample, out: &Augmented) {
        let mask = out.mask.as_ref().unwrap();
        match (extent(mask), out.targets.first()) {
            (Some(e), Some(t)) => {
                for k in 0..4 {
                    assert!((e[k] - t.bbox[k]).abs() <= 1.0, "mask extent {e:?} vs box {:?}", t.bbox);
                }
            }
            (None, None) => {}
            (Some(e), None) => {
                // The box was dropped: what is left of it must be thin or mostly cropped.
                let full = out.letterbox.box_to_output(sample.targets[0].bbox);
                let full_area = (full[2] - full[0]) * (full[3] - full[1]);
                let (w, h) = (e[2] - e[0], e[3] - e[1]);
                let slack = 2.0 * (w + h) + 4.0;
                assert!(
                    w <= 3.0 || h <= 3.0 || w * h <= 0.25 * full_area + slack,
                    "dropped {e:?} of {full:?}"
                );
            }
            (None, Some(t)) => panic!("box {:?} kept but no mask pixels left", t.bbox),
        }
        // Padding is ignore in the mask and grey in the image.
        let [x0, y0, x1, y1] = out.letterbox.content_rect();
        for (x, y, p) in mask.enumerate_pixels() {
            let inside = x >= x0 && x < x1 && y >= y0 && y < y1;
            assert_eq!(p[0] == IGNORE, !inside, "pixel {x},{y}");
            if !inside {
                assert_eq!(out.image.get_pixel(x, y).0, [PAD_IMAGE; 3]);
            }
        }
    }

    #[test]
    fn letterbox_keeps_aspect_and_pads_centred() {
        let lb = Letterbox::fit(200, 100, 64);
        assert_eq!((lb.scale, lb.pad_x, lb.pad_y), (64.0 / 200.0, 0.0, 16.0));
        assert_eq!(lb.content_rect(), [0, 16, 64, 48]);
        let s = boxed_sample(200, 100, [50, 20, 120, 90]);
        let out = apply_geometry(&s, &lb, &AugmentConfig::eval(64));
        for (a, b) in out.targets[0].bbox.iter().zip([16.0, 22.4, 38.4, 44.8]) {
            assert!((a - b).abs() < 1e-4, "{:?}", out.targets[0].bbox);
        }
        assert_consistent(&s, &out);
        // Mapping the box back gives the original box.
        let back = lb.box_to_original(out.targets[0].bbox);
        for (a, b) in back.iter().zip([50.0, 20.0, 120.0, 90.0]) {
            assert!((a - b).abs() < 1e-3, "{back:?}");
        }
        assert!((lb.box_to_original_voc(out.targets[0].bbox)[0] - 51.0).abs() < 1e-3);
    }

    #[test]
    fn mask_maps_back_to_the_original_size() {
        let s = boxed_sample(90, 60, [10, 10, 40, 30]);
        for geo in [Letterbox::fit(90, 60, 45), Letterbox::fit(90, 60, 180).hflip()] {
            let out = apply_geometry(&s, &geo, &AugmentConfig::eval(geo.out_w));
            let back = geo.mask_to_original(out.mask.as_ref().unwrap());
            assert_eq!(back.dimensions(), (90, 60));
            let diff = back.pixels().zip(s.mask.as_ref().unwrap().pixels()).filter(|(a, b)| a != b).count();
            // Only pixels along the box border may change when halving the resolution.
            assert!(diff <= 2 * (30 + 20) + 4, "{diff} pixels differ");
        }
    }

    #[test]
    fn hflip_mirrors_boxes_masks_and_pixels() {
        let s = boxed_sample(40, 40, [5, 10, 15, 30]);
        let geo = Letterbox::fit(40, 40, 40).hflip();
        let out = apply_geometry(&s, &geo, &AugmentConfig::eval(40));
        assert_eq!(out.targets[0].bbox, [25.0, 10.0, 35.0, 30.0]);
        assert_consistent(&s, &out);
        assert_eq!(out.image.get_pixel(39, 7), s.image.get_pixel(0, 7));
        assert_eq!(geo.inverse(39.5, 0.5), (0.5, 0.5));
    }

    #[test]
    fn random_scale_crop_keeps_boxes_and_masks_consistent() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let cfg = AugmentConfig::train(48);
        let mut kept = 0;
        for i in 0..200 {
            let (w, h) = (60 + i % 37, 50 + (i * 7) % 41);
            let b = [i % 20, i % 13, 30 + i % 25, 35 + i % 11];
            let s = boxed_sample(w, h, b);
            let mut geo = random_scale_crop(w, h, 48, cfg.scale, &mut rng);
            if i % 2 == 0 {
                geo = geo.hflip();
            }
            let out = apply_geometry(&s, &geo, &cfg);
            assert_consistent(&s, &out);
            kept += out.targets.len();
            for t in &out.targets {
                assert!(t.bbox[0] >= 0.0 && t.bbox[2] <= 48.0 && t.bbox[1] >= 0.0 && t.bbox[3] <= 48.0);
            }
        }
        assert!(kept > 100, "only {kept} boxes kept");
    }

    #[test]
    fn boxes_cropped_away_or_too_small_are_dropped() {
        let geo = Letterbox {
            scale: 1.0,
            pad_x: -50.0,
            pad_y: 0.0,
            orig_w: 100,
            orig_h: 100,
            out_w: 50,
            out_h: 50,
            flipped: false,
        };
        let t = |b: [f32; 4]| Target { bbox: b, class: 0, difficult: true };
        let kept = transform_targets(
            &[
                t([0.0, 0.0, 10.0, 10.0]),
                t([40.0, 0.0, 60.0, 10.0]),
                t([45.0, 0.0, 80.0, 10.0]),
                t([60.0, 5.0, 70.0, 6.5]),
            ],
            &geo,
            2.0,
            0.25,
        );
        // Outside; 50% visible (kept, clipped); 86% visible; 1.5 px tall.
        assert_eq!(
            kept.iter().map(|t| t.bbox).collect::<Vec<_>>(),
            [[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 30.0, 10.0]]
        );
        assert!(kept[0].difficult);
        let kept = transform_targets(&[t([40.0, 0.0, 60.0, 10.0])], &geo, 2.0, 0.6);
        assert!(kept.is_empty());
    }

    #[test]
    fn color_jitter_is_identity_at_one_and_spares_padding() {
        let s = boxed_sample(30, 20, [0, 0, 5, 5]);
        let out = apply_geometry(&s, &Letterbox::fit(30, 20, 30), &AugmentConfig::eval(30));
        let mut img = out.image.clone();
        color_jitter(&mut img, out.letterbox.content_rect(), Jitter::NONE);
        assert_eq!(img, out.image);
        color_jitter(
            &mut img,
            out.letterbox.content_rect(),
            Jitter { brightness: 1.0, contrast: 1.0, saturation: 1.0 + 1e-6 },
        );
        let same = img
            .pixels()
            .zip(out.image.pixels())
            .all(|(a, b)| a.0.iter().zip(b.0).all(|(x, y)| x.abs_diff(y) <= 1));
        assert!(same);
        color_jitter(
            &mut img,
            out.letterbox.content_rect(),
            Jitter { brightness: 1.4, contrast: 0.6, saturation: 0.0 },
        );
        assert_eq!(img.get_pixel(0, 0).0, [PAD_IMAGE; 3], "padding row untouched");
        let p = img.get_pixel(10, 10);
        assert!(p[0] == p[1] && p[1] == p[2], "saturation 0 gives grey: {p:?}");
    }

    #[test]
    fn train_augment_is_deterministic_per_generator() {
        let s = boxed_sample(64, 48, [10, 10, 40, 40]);
        let cfg = AugmentConfig::train(32);
        let a = augment(&s, &cfg, &mut ChaCha8Rng::seed_from_u64(3));
        let b = augment(&s, &cfg, &mut ChaCha8Rng::seed_from_u64(3));
        assert_eq!((a.image, a.mask, a.targets, a.letterbox), (b.image, b.mask, b.targets, b.letterbox));
    }

    #[test]
    fn upscaling_interpolates_and_shrinking_averages() {
        let img = RgbImage::from_fn(4, 1, |x, _| Rgb([if x < 2 { 0 } else { 200 }; 3]));
        let up = warp_image(
            &img,
            &Letterbox {
                scale: 2.0,
                pad_x: 0.0,
                pad_y: 0.0,
                orig_w: 4,
                orig_h: 1,
                out_w: 8,
                out_h: 2,
                flipped: false,
            },
        );
        let row: Vec<u8> = (0..8).map(|x| up.get_pixel(x, 0)[0]).collect();
        assert_eq!(row, [0, 0, 0, 50, 150, 200, 200, 200]);
        let stripes = RgbImage::from_fn(8, 8, |x, _| Rgb([if x % 2 == 0 { 0 } else { 200 }; 3]));
        let down = warp_image(&stripes, &Letterbox::fit(8, 8, 2));
        assert!(down.pixels().all(|p| p[0].abs_diff(100) <= 30), "{down:?}");
    }

    #[test]
    fn fused_jitter_and_normalisation_equal_the_two_steps() {
        let s = boxed_sample(37, 23, [3, 4, 20, 15]);
        let geo = Letterbox::fit(37, 23, 40);
        let cfg = AugmentConfig::train(40);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for _ in 0..5 {
            let deferred =
                Augmented { jitter: Jitter::random(&cfg, &mut rng), ..apply_geometry(&s, &geo, &cfg) };
            let mut fused = vec![0.0; 3 * 40 * 40];
            normalize_jittered_into(&deferred.image, geo.content_rect(), deferred.jitter, &mut fused);
            let mut img = deferred.image.clone();
            color_jitter(&mut img, geo.content_rect(), deferred.jitter);
            let mut separate = vec![0.0; 3 * 40 * 40];
            normalize_into(&img, &mut separate);
            assert_eq!(fused, separate);
            assert_ne!(img, deferred.image);
        }
    }

    #[test]
    fn normalise_round_trips_and_ade_masks_convert() {
        let img = RgbImage::from_fn(5, 3, |x, y| Rgb([x as u8 * 40, y as u8 * 90, 255]));
        let mut chw = vec![0.0; 45];
        normalize_into(&img, &mut chw);
        assert!((chw[0] - (-0.485 / 0.229)).abs() < 1e-6);
        assert_eq!(denormalize(&chw, 5, 3), img);
        let mut mask = GrayImage::from_raw(4, 1, vec![0, 1, 150, 151]).unwrap();
        ade_to_class_mask(&mut mask, 150);
        assert_eq!(mask.as_raw(), &[IGNORE, 0, 149, IGNORE]);
    }
}
