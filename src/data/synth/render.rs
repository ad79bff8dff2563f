//! Rendering a scene to pixels and labels: the detection photograph, the
//! segmentation scene, the classification close-up, and their boxes and masks.

use image::{GrayImage, RgbImage};
use rand::RngCore;
use rand_chacha::ChaCha8Rng;

use crate::data::augment::unit;
use crate::data::voc::{VocAnnotation, VocObject};
use super::{CLS_CLASSES, DET_CLASSES, SynthConfig};
use super::noise::{TASK_CLS, TASK_DET, TASK_SEG, hash_unit, image_rng, log_uniform, mixc, pick, scale, uniform};
use super::world::{Scene, THINGS, Thing};
use super::objects::Obj;

/// A rendered scene before encoding: colours, the object owning each pixel
/// (0 = background, `k + 1` = object `k`), the stuff label, outline pixels.
pub(super) struct Canvas {
    pub(super) w: usize,
    pub(super) h: usize,
    pub(super) rgb: Vec<[f32; 3]>,
    pub(super) inst: Vec<u16>,
    pub(super) stuff: Vec<u8>,
    pub(super) outline: Vec<bool>,
    pub(super) objects: Vec<Obj>,
    /// Pixels of each object's whole shape, counted past the image border too.
    pub(super) full_area: Vec<usize>,
    /// Pixels of each object's shape inside the image (before occlusion).
    pub(super) inside_area: Vec<usize>,
}

/// How many things a scene gets, and which classes, for each task.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Task {
    Det,
    Seg,
    /// A close-up of one thing of this classification class.
    Cls(usize),
}

pub(super) fn image_size(size: u32, rng: &mut ChaCha8Rng) -> (usize, usize) {
    let long = size as usize;
    let short = ((size as f32 * uniform(rng, 0.72, 1.0)).round() as usize).clamp(1, long);
    if unit(rng) < 0.75 {
        (long, short)
    } else {
        (short, long)
    }
}

pub(super) fn render(size: u32, task: Task, rng: &mut ChaCha8Rng) -> Canvas {
    let (w, h) = image_size(size, rng);
    let scene = Scene::new(w, h, rng);
    let mut canvas = Canvas {
        w,
        h,
        rgb: vec![[0.0; 3]; w * h],
        inst: vec![0; w * h],
        stuff: vec![0; w * h],
        outline: vec![false; w * h],
        objects: Vec::new(),
        full_area: Vec::new(),
        inside_area: Vec::new(),
    };
    for y in 0..h {
        for x in 0..w {
            let (stuff, style) = scene.stuff_at(x, y);
            canvas.rgb[y * w + x] = scene.colour(stuff, &style, x, y);
            canvas.stuff[y * w + x] = stuff.label();
        }
    }
    if task != Task::Seg {
        defocus(&mut canvas.rgb, w, h, (w.max(h) / 16).max(1));
    }
    // Things, drawn far to near: one or two close-ups in a detection photograph,
    // up to four smaller ones standing on the ground in a segmentation scene.
    let n = match task {
        Task::Det => 1 + pick(rng, &[0.6, 0.4]),
        Task::Seg => pick(rng, &[0.1, 0.3, 0.3, 0.2, 0.1]),
        Task::Cls(_) => 1,
    };
    // Weights over THINGS (person, car, chair, bottle, dog, bicycle).
    let weights: [f32; 6] = match (task, scene.outdoor) {
        (Task::Det, false) => [3.0, 0.3, 3.0, 3.0, 2.0, 0.7],
        (Task::Det, true) => [3.0, 3.0, 0.5, 0.5, 2.0, 2.5],
        (Task::Seg, false) => [3.0, 0.2, 4.0, 0.3, 0.3, 0.3],
        (Task::Seg, true) | (Task::Cls(_), _) => [3.0, 3.0, 0.5, 0.3, 0.3, 0.3],
    };
    let mean_horizon = scene.horizon.iter().sum::<f32>() / w as f32;
    let mut placed: Vec<(f32, Obj)> = (0..n)
        .map(|k| {
            let thing = match task {
                Task::Cls(class) => THINGS[class / 2],
                _ => THINGS[pick(rng, &weights)],
            };
            let aspect = thing.aspect(rng);
            let (oh, bottom, cx) = match task {
                // A close-up near the centre, as large as the frame allows; a second one smaller.
                Task::Det => {
                    let fill = if k == 0 { uniform(rng, 0.5, 0.9) } else { uniform(rng, 0.3, 0.6) };
                    let oh = (h as f32 * fill).min(0.95 * w as f32 / aspect);
                    let bottom = h as f32 * uniform(rng, 0.8, 1.05);
                    (oh, bottom, w as f32 * uniform(rng, 0.25, 0.75))
                }
                // Depth t: 0 at the horizon, 1 at the bottom edge; nearer things are larger.
                Task::Seg => {
                    let (lo, hi) = thing.height_range();
                    let t = uniform(rng, 0.1, 1.08);
                    let tiny = unit(rng) < 0.12;
                    let mut oh = h as f32 * log_uniform(rng, lo, hi) * (0.45 + 0.5 * t);
                    if tiny {
                        oh *= 0.3;
                    }
                    let ow = oh * aspect;
                    let bottom = mean_horizon + (h as f32 - mean_horizon) * t + 0.1 * oh;
                    (oh, bottom, uniform(rng, -0.15 * ow, w as f32 + 0.15 * ow))
                }
                // A crop around the thing: it fills most of the frame, whole.
                Task::Cls(_) => {
                    let oh = (h as f32 * uniform(rng, 0.6, 0.85)).min(0.9 * w as f32 / aspect);
                    let bottom = h as f32 * uniform(rng, 0.88, 0.97);
                    (oh, bottom, w as f32 * uniform(rng, 0.42, 0.58))
                }
            };
            let ow = oh * aspect;
            let mut obj = Obj::new(thing, cx - ow / 2.0, bottom - oh, ow, oh, rng);
            if let Task::Cls(class) = task {
                obj.set_kind(class % 2 == 1);
            }
            (bottom, obj)
        })
        .collect();
    placed.sort_by(|a, b| a.0.total_cmp(&b.0));
    for (k, (_, obj)) in placed.into_iter().enumerate() {
        let (mut full, mut inside) = (0, 0);
        let (xa, xb) = (obj.x0.floor() as i64, (obj.x0 + obj.w).ceil() as i64);
        let (ya, yb) = (obj.y0.floor() as i64, (obj.y0 + obj.h).ceil() as i64);
        for y in ya..yb {
            for x in xa..xb {
                let u = (x as f32 + 0.5 - obj.x0) / obj.w;
                let v = (y as f32 + 0.5 - obj.y0) / obj.h;
                if !(0.0..1.0).contains(&u) || !(0.0..1.0).contains(&v) {
                    continue;
                }
                let Some(part) = obj.part(u, v) else { continue };
                full += 1;
                if x < 0 || y < 0 || x >= w as i64 || y >= h as i64 {
                    continue;
                }
                inside += 1;
                let (x, y) = (x as usize, y as usize);
                canvas.rgb[y * w + x] = obj.colour(part, u, v, x, y);
                canvas.inst[y * w + x] = k as u16 + 1;
            }
        }
        canvas.objects.push(obj);
        canvas.full_area.push(full);
        canvas.inside_area.push(inside);
    }
    // One-pixel outlines around the larger things: darkened, unlabelled in masks.
    // Only where the part is at least 4 pixels thick, so thin parts (legs,
    // frames) keep their labels.
    let min_side = (6.0 * w.max(h) as f32 / 96.0).max(6.0);
    let same = |x: i64, y: i64, id: u16| {
        x >= 0 && y >= 0 && x < w as i64 && y < h as i64 && canvas.inst[y as usize * w + x as usize] == id
    };
    for y in 0..h {
        for x in 0..w {
            let id = canvas.inst[y * w + x];
            if id == 0 {
                continue;
            }
            let obj = &canvas.objects[id as usize - 1];
            if obj.w.min(obj.h) < min_side * 2.0 {
                continue;
            }
            let (xi, yi) = (x as i64, y as i64);
            // An edge towards (dx, dy) is outlined when the part goes on 3 pixels the other way.
            let outlined = [(-1, 0), (1, 0), (0, -1), (0, 1)].iter().any(|&(dx, dy)| {
                let inside = |d: i64| {
                    xi + dx * d >= 0 && yi + dy * d >= 0 && xi + dx * d < w as i64 && yi + dy * d < h as i64
                };
                inside(1)
                    && !same(xi + dx, yi + dy, id)
                    && (1..=3).all(|d| same(xi - dx * d, yi - dy * d, id))
            });
            if outlined {
                canvas.outline[y * w + x] = true;
            }
        }
    }
    for (c, &o) in canvas.rgb.iter_mut().zip(&canvas.outline) {
        if o {
            *c = scale(*c, 0.5);
        }
    }
    // Lighting (overall gain and a left-right gradient, a warm cast on the
    // photographs) and sensor noise.
    let cast = match task {
        Task::Det | Task::Cls(_) => [1.08, 1.0, 0.86],
        Task::Seg => [1.0; 3],
    };
    let gain = uniform(rng, 0.8, 1.12);
    let tilt = uniform(rng, -0.15, 0.15);
    let sigma = uniform(rng, 2.0, 6.0);
    let noise_seed = rng.next_u64();
    for y in 0..h {
        for x in 0..w {
            let g = gain * (1.0 + tilt * (x as f32 / w as f32 - 0.5));
            let c = &mut canvas.rgb[y * w + x];
            for (ch, v) in c.iter_mut().enumerate() {
                let n = hash_unit(noise_seed ^ ch as u64, x as i64, y as i64)
                    + hash_unit(noise_seed ^ (ch as u64 + 8), x as i64, y as i64)
                    - 1.0;
                *v = (*v * g * cast[ch] + n * sigma * 2.45).clamp(0.0, 255.0);
            }
        }
    }
    canvas
}

/// The background of a close-up photograph: out of focus (two passes of a box
/// blur of `radius` in each direction) and muted halfway towards its mean.
pub(super) fn defocus(rgb: &mut [[f32; 3]], w: usize, h: usize, radius: usize) {
    let blur_line = |line: &mut Vec<[f32; 3]>| {
        let src = line.clone();
        for (i, out) in line.iter_mut().enumerate() {
            let (a, b) = (i.saturating_sub(radius), (i + radius).min(src.len() - 1));
            let mut sum = [0.0f32; 3];
            for c in &src[a..=b] {
                for ch in 0..3 {
                    sum[ch] += c[ch];
                }
            }
            *out = sum.map(|v| v / (b - a + 1) as f32);
        }
    };
    for _ in 0..2 {
        for y in 0..h {
            let mut row = rgb[y * w..(y + 1) * w].to_vec();
            blur_line(&mut row);
            rgb[y * w..(y + 1) * w].copy_from_slice(&row);
        }
        for x in 0..w {
            let mut column: Vec<[f32; 3]> = (0..h).map(|y| rgb[y * w + x]).collect();
            blur_line(&mut column);
            for (y, c) in column.into_iter().enumerate() {
                rgb[y * w + x] = c;
            }
        }
    }
    let mut mean = [0.0f32; 3];
    for c in rgb.iter() {
        for ch in 0..3 {
            mean[ch] += c[ch] / rgb.len() as f32;
        }
    }
    for c in rgb.iter_mut() {
        *c = mixc(*c, mean, 0.5);
    }
}

impl Canvas {
    pub(super) fn rgb_image(&self) -> RgbImage {
        RgbImage::from_fn(self.w as u32, self.h as u32, |x, y| {
            let c = self.rgb[y as usize * self.w + x as usize];
            image::Rgb(c.map(|v| (v + 0.5) as u8))
        })
    }

    /// ADE-encoded mask: stuff label, or the thing's label, 0 on outlines and unnamed things.
    pub(super) fn seg_mask(&self) -> GrayImage {
        GrayImage::from_fn(self.w as u32, self.h as u32, |x, y| {
            let i = y as usize * self.w + x as usize;
            let label = match self.inst[i] {
                _ if self.outline[i] => 0,
                0 => self.stuff[i],
                id => self.objects[id as usize - 1].thing.seg_label(),
            };
            image::Luma([label])
        })
    }

    /// VOC objects from the pixels each thing shows.
    pub(super) fn det_objects(&self) -> Vec<VocObject> {
        let n = self.objects.len();
        let mut ext = vec![[usize::MAX, usize::MAX, 0, 0]; n];
        let mut count = vec![0usize; n];
        for y in 0..self.h {
            for x in 0..self.w {
                let id = self.inst[y * self.w + x];
                if id > 0 {
                    let k = id as usize - 1;
                    count[k] += 1;
                    let e = &mut ext[k];
                    *e = [e[0].min(x), e[1].min(y), e[2].max(x), e[3].max(y)];
                }
            }
        }
        let long = self.w.max(self.h) as f32;
        let mut objects = Vec::new();
        for (k, obj) in self.objects.iter().enumerate() {
            if count[k] < 4 {
                continue;
            }
            let e = ext[k];
            let (bw, bh) = ((e[2] - e[0] + 1) as f32, (e[3] - e[1] + 1) as f32);
            if bw < 2.0 || bh < 2.0 {
                // A one-pixel-wide sliver: too thin to annotate (readers reject xmin == xmax).
                continue;
            }
            let visible = count[k] as f32 / self.full_area[k].max(1) as f32;
            let difficult = bw.min(bh) < 0.05 * long || count[k] < 30 || visible < 0.3;
            let pose = match obj.thing {
                Thing::Car | Thing::Dog | Thing::Bicycle => {
                    if obj.mirrored {
                        "Left"
                    } else {
                        "Right"
                    }
                }
                Thing::Person => "Frontal",
                _ => "Unspecified",
            };
            objects.push(VocObject {
                name: DET_CLASSES[obj.thing.det_class()].to_string(),
                class: obj.thing.det_class(),
                pose: pose.to_string(),
                truncated: self.inside_area[k] < self.full_area[k],
                difficult,
                bbox: [(e[0] + 1) as f32, (e[1] + 1) as f32, (e[2] + 1) as f32, (e[3] + 1) as f32],
            });
        }
        objects
    }
}

/// Renders detection image `index`: the image and its VOC annotation.
pub fn render_det(config: &SynthConfig, index: usize) -> (RgbImage, VocAnnotation) {
    let canvas = render(config.size, Task::Det, &mut image_rng(config.seed, TASK_DET, index));
    let annotation = VocAnnotation {
        filename: format!("{}.jpg", voc_id(index)),
        width: canvas.w as u32,
        height: canvas.h as u32,
        depth: 3,
        objects: canvas.det_objects(),
    };
    (canvas.rgb_image(), annotation)
}

/// Renders classification image `index`: the crop and its class (`index mod 12`).
pub fn render_cls(config: &SynthConfig, index: usize) -> (RgbImage, usize) {
    let class = index % CLS_CLASSES.len();
    let canvas = render(config.size, Task::Cls(class), &mut image_rng(config.seed, TASK_CLS, index));
    (canvas.rgb_image(), class)
}

/// Renders segmentation image `index`: the image and its ADE-encoded mask.
pub fn render_seg(config: &SynthConfig, index: usize) -> (RgbImage, GrayImage) {
    let canvas = render(config.size, Task::Seg, &mut image_rng(config.seed, TASK_SEG, index));
    (canvas.rgb_image(), canvas.seg_mask())
}

/// The VOC-style id of the `i`-th synthetic image (`000001`, …).
pub(super) fn voc_id(i: usize) -> String {
    format!("{:06}", i + 1)
}
