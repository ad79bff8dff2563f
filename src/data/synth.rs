//! The synthetic twin datasets: a detection set in the VOC layout and a
//! segmentation set in the ADE20K layout, drawn from one visual world so that
//! features transfer between the tasks (as real VOC and ADE20K share "person",
//! "car", "chair").
//!
//! The world: a scene with a top region (sky outdoors, wall indoors) above an
//! irregular horizon and one or two ground regions (grass, road, water; floor
//! indoors), each with its own colour family and texture, and 1–4 objects
//! ("things") standing on the ground, drawn far to near so that nearer ones
//! occlude farther ones; some are small, some cut by the image border. Every
//! class has a distinctive shape, colour family (varied per instance) and
//! texture: person = head + striped shirt + legs, car = wide red body + cabin
//! with windows + wheels, chair = wooden legs + back + checked cushion, bottle =
//! green glass with neck, cap and label, dog = furry four-legged body (sometimes
//! spotted) with head and tail, bicycle = two wheels + thin frame.
//!
//! The two sets differ the way VOC and ADE20K do: a detection image is an
//! object-centred photograph (one or two large things near the centre, the
//! background out of focus and muted, a warm colour cast), a segmentation image
//! a full scene (up to four smaller things standing in it, everything sharp).
//! The classes are partly shared: person, car and chair are in both sets,
//! bottle, dog and bicycle only in detection, the six kinds of stuff only in
//! segmentation.
//!
//! Detection images get boxes computed from the pixels each object shows (VOC
//! 1-based inclusive coordinates, inside the image); objects that are tiny or
//! mostly hidden are marked `difficult`, ones cut by the border `truncated`.
//! Segmentation images get a label mask in ADE encoding (0 = unlabelled: the
//! one-pixel outline of each larger object and the few objects of classes the
//! segmentation set does not label).
//!
//! A third set, for classification (written when `cls_images > 0`), holds
//! close-up crops of one thing each in the image-list layout (`cls/images/`,
//! `cls/train.txt` and `cls/val.txt` of `name.jpg class` lines, `cls/classes.txt`).
//! Its twelve classes are fine-grained: two kinds of each thing, told apart by
//! a colour detail (the shirt, the car body, the glass, the fur, the frame) or,
//! for chairs, by the shape (front view or side view).
//!
//! Everything is deterministic by seed: image `i` of a task is drawn from a
//! ChaCha8 generator seeded from `(seed, task, i)` and rendered independently
//! (in parallel with rayon).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use anyhow::{bail, ensure, Context, Result};
use image::{GrayImage, RgbImage};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::augment::unit;
use super::classes::ClassList;
use super::voc::{annotation_xml, VocAnnotation, VocObject, CLASS_LIST_FILE};

/// Detection classes (VOC names), in class-list order.
pub const DET_CLASSES: [&str; 6] = ["person", "car", "chair", "bottle", "dog", "bicycle"];
/// Segmentation classes (ADE names): label `i + 1` is `SEG_CLASSES[i]`, 0 is unlabelled.
pub const SEG_CLASSES: [&str; 9] =
    ["wall", "sky", "floor", "grass", "road", "water", "person", "car", "chair"];
/// Classification classes: two kinds of each thing (class `2t` and `2t + 1` for `THINGS[t]`).
pub const CLS_CLASSES: [&str; 12] = [
    "person magenta",
    "person green",
    "car red",
    "car green",
    "chair front",
    "chair side",
    "bottle green",
    "bottle violet",
    "dog light",
    "dog dark",
    "bicycle cyan",
    "bicycle pink",
];
/// Bumped whenever the generator's output changes, so stale sets are regenerated.
pub const SYNTH_VERSION: u32 = 2;
/// Written last into the output folder: the config and summary of a complete set.
pub const MARKER_FILE: &str = "synth.json";
/// Present while a set is being written (a cancelled or failed run leaves it behind).
const INCOMPLETE_FILE: &str = ".synth-incomplete";

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SynthConfig {
    pub seed: u64,
    pub det_images: usize,
    pub seg_images: usize,
    /// Classification crops (0: no classification set).
    #[serde(default)]
    pub cls_images: usize,
    /// Long side of every image, in pixels (the short side is 72–100% of it).
    pub size: u32,
    /// Fraction of each set that goes to the validation split (spread evenly).
    pub val_fraction: f32,
    pub jpeg_quality: u8,
}

impl Default for SynthConfig {
    fn default() -> Self {
        Self { seed: 0, det_images: 600, seg_images: 600, cls_images: 0, size: 96, val_fraction: 0.2, jpeg_quality: 90 }
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SynthSummary {
    /// `DIR/voc`: open with `VocDataset::open(root, "train", VocClasses::for_root(root)?)`.
    /// The roots are written as text for people ([`read_marker`] takes them from `DIR`).
    #[serde(serialize_with = "super::path_text::one")]
    pub voc_root: PathBuf,
    /// `DIR/ade`: open with `AdeDataset::open(root, "training")`.
    #[serde(serialize_with = "super::path_text::one")]
    pub ade_root: PathBuf,
    pub det_train: usize,
    pub det_val: usize,
    pub seg_train: usize,
    pub seg_val: usize,
    /// Annotated objects per detection class (order of [`DET_CLASSES`]).
    pub det_objects: Vec<usize>,
    pub det_difficult: usize,
    pub det_truncated: usize,
    /// Pixels per segmentation label over both splits (index 0 = unlabelled).
    pub seg_pixels: Vec<u64>,
    /// `DIR/cls`: the classification crops in the list layout.
    #[serde(default, serialize_with = "super::path_text::one")]
    pub cls_root: PathBuf,
    #[serde(default)]
    pub cls_train: usize,
    #[serde(default)]
    pub cls_val: usize,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Marker {
    version: u32,
    config: SynthConfig,
    summary: SynthSummary,
}

/// Writes both sets under `out` (see the module docs), calling `progress(done, total)`
/// after each image. Replaces an earlier synthetic set in `out`; refuses to touch
/// `out/voc` or `out/ade` when they were not written by this generator.
pub fn generate(
    out: &Path,
    config: &SynthConfig,
    progress: impl Fn(usize, usize) + Sync,
) -> Result<SynthSummary> {
    generate_with_cancel(out, config, progress, &AtomicBool::new(false))
}

/// Returns the set already in `out` when it is complete and was made with the
/// same `config` by this generator version; generates it otherwise ("generated
/// on first use"). The classification crops are a set of their own: a set that
/// has them serves a configuration without them, and a set without them gets
/// them added, so a two-task and a three-task preset share one folder.
pub fn ensure_generated(
    out: &Path,
    config: &SynthConfig,
    progress: impl Fn(usize, usize) + Sync,
) -> Result<SynthSummary> {
    ensure_generated_with_cancel(out, config, progress, &AtomicBool::new(false))
}

/// [`ensure_generated`], stopping early with an error when `cancel` is set
/// (the workbench's first-launch job).
pub fn ensure_generated_with_cancel(
    out: &Path,
    config: &SynthConfig,
    progress: impl Fn(usize, usize) + Sync,
    cancel: &AtomicBool,
) -> Result<SynthSummary> {
    if let Some(marker) = read_marker(out) {
        // A set of 0 images is one the caller does not need (a dataset of its own stands in for it).
        let serves = |wanted: usize, made: usize, root: &Path| wanted == 0 || (wanted == made && root.is_dir());
        let world = |c: &SynthConfig| SynthConfig { det_images: 0, seg_images: 0, cls_images: 0, ..c.clone() };
        let (made, summary) = (&marker.config, &marker.summary);
        if marker.version == SYNTH_VERSION
            && world(made) == world(config)
            && !out.join(INCOMPLETE_FILE).exists()
            && serves(config.det_images, made.det_images, &summary.voc_root)
            && serves(config.seg_images, made.seg_images, &summary.ade_root)
        {
            if serves(config.cls_images, made.cls_images, &summary.cls_root) {
                return Ok(marker.summary);
            }
            return add_cls(out, marker, config, progress, cancel);
        }
    }
    generate_with_cancel(out, config, progress, cancel)
}

/// Writes (or rewrites) the classification set beside a complete twin set.
fn add_cls(out: &Path, marker: Marker, config: &SynthConfig, progress: impl Fn(usize, usize) + Sync, cancel: &AtomicBool) -> Result<SynthSummary> {
    let cls_root = out.join("cls");
    if cls_root.exists() {
        std::fs::remove_dir_all(&cls_root).with_context(|| format!("{}: cannot remove", cls_root.display()))?;
    }
    std::fs::write(out.join(INCOMPLETE_FILE), "a synthetic set is being written here\n")
        .with_context(|| format!("{}: cannot write", out.join(INCOMPLETE_FILE).display()))?;
    let done = AtomicUsize::new(0);
    let tick = || progress(done.fetch_add(1, Ordering::Relaxed) + 1, config.cls_images);
    let (cls_train, cls_val) = write_cls(&cls_root, config, &tick, cancel)?;
    let summary = SynthSummary { cls_root, cls_train, cls_val, ..marker.summary };
    // The twins stay as they were made, whatever counts the caller needed of them.
    let made = SynthConfig { cls_images: config.cls_images, ..marker.config };
    write_marker(out, &Marker { version: SYNTH_VERSION, config: made, summary: summary.clone() })?;
    Ok(summary)
}

/// Writes the marker of a complete set and clears the incomplete flag.
fn write_marker(out: &Path, marker: &Marker) -> Result<()> {
    let path = out.join(MARKER_FILE);
    std::fs::write(&path, serde_json::to_string_pretty(marker)? + "\n").with_context(|| format!("{}: cannot write", path.display()))?;
    std::fs::remove_file(out.join(INCOMPLETE_FILE)).with_context(|| format!("{}: cannot remove", out.join(INCOMPLETE_FILE).display()))
}

/// The summary of the complete synthetic set in `out`, if there is one.
pub fn existing(out: &Path) -> Option<(SynthConfig, SynthSummary)> {
    read_marker(out).filter(|_| !out.join(INCOMPLETE_FILE).exists()).map(|m| (m.config, m.summary))
}

/// Whether `out` holds a set this generator wrote (or began to write).
pub fn is_generator_folder(out: &Path) -> bool {
    out.join(MARKER_FILE).is_file() || out.join(INCOMPLETE_FILE).is_file()
}

/// The marker in `out`, its roots taken from `out` itself: the folder may have
/// moved since, and a name that is not UTF-8 is written lossily.
fn read_marker(out: &Path) -> Option<Marker> {
    let text = std::fs::read_to_string(out.join(MARKER_FILE)).ok()?;
    let mut marker: Marker = serde_json::from_str(&text).ok()?;
    marker.summary.voc_root = out.join("voc");
    marker.summary.ade_root = out.join("ade");
    marker.summary.cls_root = out.join("cls");
    Some(marker)
}

/// [`generate`], stopping early with an error when `cancel` is set (the partial
/// set is marked incomplete and replaced by the next run).
pub fn generate_with_cancel(
    out: &Path,
    config: &SynthConfig,
    progress: impl Fn(usize, usize) + Sync,
    cancel: &AtomicBool,
) -> Result<SynthSummary> {
    ensure!((16..=4096).contains(&config.size), "image size {} must be between 16 and 4096", config.size);
    ensure!(
        (0.0..1.0).contains(&config.val_fraction),
        "validation fraction {} must be in [0, 1)",
        config.val_fraction
    );
    ensure!((1..=100).contains(&config.jpeg_quality), "JPEG quality must be 1..=100");
    ensure!(
        config.det_images + config.seg_images + config.cls_images > 0,
        "nothing to generate: 0 detection, 0 segmentation and 0 classification images"
    );
    let voc_root = out.join("voc");
    let ade_root = out.join("ade");
    let cls_root = out.join("cls");
    prepare_out(out, &[&voc_root, &ade_root, &cls_root])?;

    let total = config.det_images + config.seg_images + config.cls_images;
    let done = AtomicUsize::new(0);
    let tick = || progress(done.fetch_add(1, Ordering::Relaxed) + 1, total);

    let det = if config.det_images > 0 { Some(write_voc(&voc_root, config, &tick, cancel)?) } else { None };
    let seg = if config.seg_images > 0 { Some(write_ade(&ade_root, config, &tick, cancel)?) } else { None };
    let (cls_train, cls_val) = if config.cls_images > 0 { write_cls(&cls_root, config, &tick, cancel)? } else { (0, 0) };

    let det = det.unwrap_or_default();
    let seg = seg.unwrap_or_default();
    let summary = SynthSummary {
        voc_root,
        ade_root,
        det_train: det.train,
        det_val: det.val,
        seg_train: seg.train,
        seg_val: seg.val,
        det_objects: det.objects.to_vec(),
        det_difficult: det.difficult,
        det_truncated: det.truncated,
        seg_pixels: seg.pixels.to_vec(),
        cls_root,
        cls_train,
        cls_val,
    };
    write_marker(out, &Marker { version: SYNTH_VERSION, config: config.clone(), summary: summary.clone() })?;
    Ok(summary)
}

/// Creates `out`, and removes an earlier synthetic set there (only `voc/`, `ade/`
/// and `cls/`, and only when a marker says this generator wrote them).
fn prepare_out(out: &Path, roots: &[&Path]) -> Result<()> {
    let ours = is_generator_folder(out);
    for &root in roots {
        if root.exists() {
            if !ours {
                bail!(
                    "{}: already exists and was not written by `twinhead data synth` \
                     (no {MARKER_FILE} next to it); choose another output folder or remove it",
                    root.display()
                );
            }
            std::fs::remove_dir_all(root).with_context(|| format!("{}: cannot remove", root.display()))?;
        }
    }
    std::fs::create_dir_all(out).with_context(|| format!("{}: cannot create", out.display()))?;
    let _ = std::fs::remove_file(out.join(MARKER_FILE));
    std::fs::write(out.join(INCOMPLETE_FILE), "a synthetic set is being written here\n")
        .with_context(|| format!("{}: cannot write", out.join(INCOMPLETE_FILE).display()))?;
    Ok(())
}

/// Whether image `i` of `n` goes to validation: every `1 / val_fraction`-th, spread evenly.
fn is_val(i: usize, val_fraction: f32) -> bool {
    let f = val_fraction as f64;
    ((i + 1) as f64 * f).floor() > (i as f64 * f).floor()
}

#[derive(Default)]
struct DetStats {
    train: usize,
    val: usize,
    objects: [usize; DET_CLASSES.len()],
    difficult: usize,
    truncated: usize,
}

#[derive(Default)]
struct SegStats {
    train: usize,
    val: usize,
    pixels: [u64; SEG_CLASSES.len() + 1],
    /// Images containing each label, per split.
    train_images: [usize; SEG_CLASSES.len() + 1],
    val_images: [usize; SEG_CLASSES.len() + 1],
}

fn check_cancel(cancel: &AtomicBool) -> Result<()> {
    if cancel.load(Ordering::Relaxed) {
        bail!("cancelled");
    }
    Ok(())
}

fn write_voc(
    root: &Path,
    config: &SynthConfig,
    tick: &(dyn Fn() + Sync),
    cancel: &AtomicBool,
) -> Result<DetStats> {
    for dir in ["Annotations", "JPEGImages", "ImageSets/Main"] {
        std::fs::create_dir_all(root.join(dir))
            .with_context(|| format!("{}: cannot create", root.join(dir).display()))?;
    }
    ClassList::new(DET_CLASSES.iter().map(|s| s.to_string()).collect())
        .write_plain(&root.join(CLASS_LIST_FILE))?;
    let annotations: Vec<VocAnnotation> = (0..config.det_images)
        .into_par_iter()
        .map(|i| -> Result<VocAnnotation> {
            check_cancel(cancel)?;
            let (img, ann) = render_det(config, i);
            let id = voc_id(i);
            write_jpeg(&root.join("JPEGImages").join(format!("{id}.jpg")), &img, config.jpeg_quality)?;
            let xml_path = root.join("Annotations").join(format!("{id}.xml"));
            std::fs::write(&xml_path, annotation_xml(&ann, "Twinhead synthetic"))
                .with_context(|| format!("{}: cannot write", xml_path.display()))?;
            tick();
            Ok(ann)
        })
        .collect::<Result<_>>()?;
    let mut stats = DetStats::default();
    let (mut train, mut val) = (String::new(), String::new());
    for (i, ann) in annotations.iter().enumerate() {
        let list = if is_val(i, config.val_fraction) { &mut val } else { &mut train };
        list.push_str(&voc_id(i));
        list.push('\n');
        for o in &ann.objects {
            stats.objects[o.class] += 1;
            stats.difficult += o.difficult as usize;
            stats.truncated += o.truncated as usize;
        }
    }
    stats.train = train.lines().count();
    stats.val = val.lines().count();
    let main = root.join("ImageSets").join("Main");
    let trainval: String = (0..config.det_images).map(|i| voc_id(i) + "\n").collect();
    for (name, text) in [("train", &train), ("val", &val), ("trainval", &trainval)] {
        let path = main.join(format!("{name}.txt"));
        std::fs::write(&path, text).with_context(|| format!("{}: cannot write", path.display()))?;
    }
    Ok(stats)
}

fn voc_id(i: usize) -> String {
    format!("{:06}", i + 1)
}

fn write_ade(
    root: &Path,
    config: &SynthConfig,
    tick: &(dyn Fn() + Sync),
    cancel: &AtomicBool,
) -> Result<SegStats> {
    for split in ["training", "validation"] {
        for kind in ["images", "annotations"] {
            let dir = root.join(kind).join(split);
            std::fs::create_dir_all(&dir).with_context(|| format!("{}: cannot create", dir.display()))?;
        }
    }
    // File names follow ADE's `ADE_train_00000001` / `ADE_val_00000001`, numbered per split.
    let mut names = Vec::with_capacity(config.seg_images);
    let (mut n_train, mut n_val) = (0, 0);
    for i in 0..config.seg_images {
        if is_val(i, config.val_fraction) {
            n_val += 1;
            names.push(("validation", format!("ADE_val_{n_val:08}")));
        } else {
            n_train += 1;
            names.push(("training", format!("ADE_train_{n_train:08}")));
        }
    }
    let counts: Vec<[u64; SEG_CLASSES.len() + 1]> = names
        .par_iter()
        .enumerate()
        .map(|(i, (split, name))| -> Result<[u64; SEG_CLASSES.len() + 1]> {
            check_cancel(cancel)?;
            let (img, mask) = render_seg(config, i);
            write_jpeg(
                &root.join("images").join(split).join(format!("{name}.jpg")),
                &img,
                config.jpeg_quality,
            )?;
            let mask_path = root.join("annotations").join(split).join(format!("{name}.png"));
            mask.save_with_format(&mask_path, image::ImageFormat::Png)
                .with_context(|| format!("{}: cannot write", mask_path.display()))?;
            let mut counts = [0u64; SEG_CLASSES.len() + 1];
            for &v in mask.as_raw() {
                counts[v as usize] += 1;
            }
            tick();
            Ok(counts)
        })
        .collect::<Result<_>>()?;
    let mut stats = SegStats { train: n_train, val: n_val, ..Default::default() };
    for ((split, _), c) in names.iter().zip(&counts) {
        let images = if *split == "validation" { &mut stats.val_images } else { &mut stats.train_images };
        for (k, &n) in c.iter().enumerate() {
            stats.pixels[k] += n;
            images[k] += (n > 0) as usize;
        }
    }
    // objectInfo150.txt in the official tab-separated format, numbered 1..N.
    let labelled: u64 = stats.pixels[1..].iter().sum::<u64>().max(1);
    let mut text = String::from("Idx\tRatio\tTrain\tVal\tName\n");
    for (k, name) in SEG_CLASSES.iter().enumerate() {
        text.push_str(&format!(
            "{}\t{:.4}\t{}\t{}\t{}\n",
            k + 1,
            stats.pixels[k + 1] as f64 / labelled as f64,
            stats.train_images[k + 1],
            stats.val_images[k + 1],
            name
        ));
    }
    let path = root.join("objectInfo150.txt");
    std::fs::write(&path, text).with_context(|| format!("{}: cannot write", path.display()))?;
    Ok(stats)
}

/// The classification set: `images/<id>.jpg`, `train.txt` / `val.txt` lists and
/// `classes.txt`. Image `i` is of class `i mod 12`, so every class has its share
/// of both splits. Returns the split sizes.
fn write_cls(root: &Path, config: &SynthConfig, tick: &(dyn Fn() + Sync), cancel: &AtomicBool) -> Result<(usize, usize)> {
    let images = root.join("images");
    std::fs::create_dir_all(&images).with_context(|| format!("{}: cannot create", images.display()))?;
    ClassList::new(CLS_CLASSES.iter().map(|s| s.to_string()).collect()).write_plain(&root.join("classes.txt"))?;
    (0..config.cls_images).into_par_iter().try_for_each(|i| -> Result<()> {
        check_cancel(cancel)?;
        let (img, _) = render_cls(config, i);
        write_jpeg(&images.join(format!("{}.jpg", voc_id(i))), &img, config.jpeg_quality)?;
        tick();
        Ok(())
    })?;
    let (mut train, mut val) = (String::new(), String::new());
    for i in 0..config.cls_images {
        let list = if is_val(i, config.val_fraction) { &mut val } else { &mut train };
        list.push_str(&format!("{}.jpg {}\n", voc_id(i), i % CLS_CLASSES.len()));
    }
    for (name, text) in [("train", &train), ("val", &val)] {
        let path = root.join(format!("{name}.txt"));
        std::fs::write(&path, text).with_context(|| format!("{}: cannot write", path.display()))?;
    }
    Ok((train.lines().count(), val.lines().count()))
}

fn write_jpeg(path: &Path, img: &RgbImage, quality: u8) -> Result<()> {
    let file = std::fs::File::create(path).with_context(|| format!("{}: cannot create", path.display()))?;
    let mut writer = std::io::BufWriter::new(file);
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut writer, quality)
        .encode_image(img)
        .with_context(|| format!("{}: cannot encode JPEG", path.display()))?;
    use std::io::Write;
    writer.flush().with_context(|| format!("{}: cannot write", path.display()))
}

// ---------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------

const TASK_DET: u64 = 0x0de7;
const TASK_SEG: u64 = 0x05e6;
const TASK_CLS: u64 = 0x0c15;

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A well-mixed 64-bit value from several inputs (order matters).
pub(crate) fn mix(parts: &[u64]) -> u64 {
    parts.iter().fold(0x2545_F491_4F6C_DD1D, |h, &p| splitmix64(h ^ splitmix64(p)))
}

fn image_rng(seed: u64, task: u64, index: usize) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(mix(&[seed, task, index as u64]))
}

/// A hash of a lattice point to `[0, 1)`.
fn hash_unit(seed: u64, x: i64, y: i64) -> f32 {
    (splitmix64(seed ^ splitmix64((x as u64) << 32 ^ (y as u64 & 0xFFFF_FFFF))) >> 40) as f32
        / (1u64 << 24) as f32
}

/// Smooth value noise in `[0, 1)` with lattice spacing 1.
fn value_noise(seed: u64, x: f32, y: f32) -> f32 {
    let (xf, yf) = (x.floor(), y.floor());
    let (xi, yi) = (xf as i64, yf as i64);
    let s = |t: f32| t * t * (3.0 - 2.0 * t);
    let (sx, sy) = (s(x - xf), s(y - yf));
    let at = |dx: i64, dy: i64| hash_unit(seed, xi + dx, yi + dy);
    let top = at(0, 0) + (at(1, 0) - at(0, 0)) * sx;
    let bottom = at(0, 1) + (at(1, 1) - at(0, 1)) * sx;
    top + (bottom - top) * sy
}

fn uniform(rng: &mut ChaCha8Rng, lo: f32, hi: f32) -> f32 {
    lo + (hi - lo) * unit(rng)
}

fn log_uniform(rng: &mut ChaCha8Rng, lo: f32, hi: f32) -> f32 {
    uniform(rng, lo.ln(), hi.ln()).exp()
}

/// Picks an index with probability proportional to its weight.
fn pick(rng: &mut ChaCha8Rng, weights: &[f32]) -> usize {
    let total: f32 = weights.iter().sum();
    let mut r = unit(rng) * total;
    for (i, &w) in weights.iter().enumerate() {
        if r < w {
            return i;
        }
        r -= w;
    }
    weights.len() - 1
}

/// HSV (hue in degrees, saturation and value in 0..1) to RGB in 0..255.
fn hsv(h: f32, s: f32, v: f32) -> [f32; 3] {
    let h = h.rem_euclid(360.0) / 60.0;
    let c = v * s;
    let x = c * (1.0 - (h % 2.0 - 1.0).abs());
    let (r, g, b) = match h as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let m = v - c;
    [(r + m) * 255.0, (g + m) * 255.0, (b + m) * 255.0]
}

fn scale(c: [f32; 3], f: f32) -> [f32; 3] {
    c.map(|v| v * f)
}

/// `c` with its hue turned by `degrees` (a rotation about the grey axis).
fn rotate_hue(c: [f32; 3], degrees: f32) -> [f32; 3] {
    let (sin, cos) = degrees.to_radians().sin_cos();
    let k = (1.0 - cos) / 3.0;
    let r = 3f32.sqrt().recip() * sin;
    let row = |a: f32, b: f32, d: f32| (a * c[0] + b * c[1] + d * c[2]).clamp(0.0, 255.0);
    [row(cos + k, k - r, k + r), row(k + r, cos + k, k - r), row(k - r, k + r, cos + k)]
}

fn mixc(a: [f32; 3], b: [f32; 3], t: f32) -> [f32; 3] {
    [a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t, a[2] + (b[2] - a[2]) * t]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stuff {
    Wall,
    Sky,
    Floor,
    Grass,
    Road,
    Water,
}

impl Stuff {
    /// ADE label (1-based index into [`SEG_CLASSES`]).
    fn label(self) -> u8 {
        self as u8 + 1
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Thing {
    Person,
    Car,
    Chair,
    Bottle,
    Dog,
    Bicycle,
}

const THINGS: [Thing; 6] =
    [Thing::Person, Thing::Car, Thing::Chair, Thing::Bottle, Thing::Dog, Thing::Bicycle];

impl Thing {
    fn det_class(self) -> usize {
        self as usize
    }

    /// ADE label, or 0 (unlabelled) for things the segmentation set does not name.
    fn seg_label(self) -> u8 {
        SEG_CLASSES.iter().position(|&n| n == DET_CLASSES[self as usize]).map_or(0, |i| i as u8 + 1)
    }

    /// Width / height of the full shape.
    fn aspect(self, rng: &mut ChaCha8Rng) -> f32 {
        match self {
            Thing::Person => uniform(rng, 0.36, 0.46),
            Thing::Car => uniform(rng, 1.8, 2.5),
            Thing::Chair => uniform(rng, 0.55, 0.85),
            Thing::Bottle => uniform(rng, 0.28, 0.4),
            Thing::Dog => uniform(rng, 1.2, 1.6),
            Thing::Bicycle => uniform(rng, 1.5, 1.8),
        }
    }

    /// Range of the shape's height as a fraction of the image height (before perspective).
    fn height_range(self) -> (f32, f32) {
        match self {
            Thing::Person => (0.3, 0.85),
            Thing::Car => (0.15, 0.4),
            Thing::Chair => (0.25, 0.65),
            Thing::Bottle => (0.2, 0.5),
            Thing::Dog => (0.15, 0.4),
            Thing::Bicycle => (0.2, 0.5),
        }
    }
}

/// Per-image parameters of a stuff region's look.
#[derive(Debug, Clone, Copy)]
struct StuffStyle {
    base: [f32; 3],
    alt: [f32; 3],
    period: f32,
    phase: f32,
    seed: u64,
}

fn stuff_style(stuff: Stuff, rng: &mut ChaCha8Rng, k: f32) -> StuffStyle {
    let seed = rng.next_u64();
    let phase = uniform(rng, 0.0, std::f32::consts::TAU);
    let (base, alt, period) = match stuff {
        Stuff::Sky => {
            let hue = uniform(rng, 195.0, 222.0);
            (
                hsv(hue, uniform(rng, 0.4, 0.7), uniform(rng, 0.8, 1.0)),
                hsv(hue, 0.05, 1.0),
                uniform(rng, 14.0, 30.0) * k,
            )
        }
        Stuff::Wall => {
            let hue = uniform(rng, 20.0, 60.0);
            let (s, v) = (uniform(rng, 0.08, 0.3), uniform(rng, 0.72, 0.92));
            (hsv(hue, s, v), hsv(hue, s * 1.3, v * 0.88), uniform(rng, 5.0, 12.0) * k)
        }
        Stuff::Floor => {
            let hue = uniform(rng, 15.0, 40.0);
            let (s, v) = (uniform(rng, 0.25, 0.55), uniform(rng, 0.4, 0.65));
            (hsv(hue, s, v), hsv(hue, s, v * 0.7), uniform(rng, 6.0, 12.0) * k)
        }
        Stuff::Grass => {
            let hue = uniform(rng, 85.0, 130.0);
            let (s, v) = (uniform(rng, 0.5, 0.8), uniform(rng, 0.35, 0.6));
            (hsv(hue, s, v), hsv(hue + 10.0, s, v * 0.6), uniform(rng, 1.5, 3.0) * k)
        }
        Stuff::Road => {
            let v = uniform(rng, 0.22, 0.4);
            let line = if unit(rng) < 0.5 { hsv(50.0, 0.8, 0.9) } else { hsv(0.0, 0.0, 0.92) };
            (hsv(uniform(rng, 0.0, 360.0), 0.05, v), line, uniform(rng, 6.0, 10.0) * k)
        }
        Stuff::Water => {
            let hue = uniform(rng, 180.0, 205.0);
            let (s, v) = (uniform(rng, 0.5, 0.8), uniform(rng, 0.4, 0.65));
            (hsv(hue, s, v), hsv(hue, s * 0.4, (v * 1.5).min(1.0)), uniform(rng, 3.5, 6.0) * k)
        }
    };
    StuffStyle { base, alt, period, phase, seed }
}

/// The background: top region above `horizon[x]`, far ground down to `split[x]`, near ground below.
struct Scene {
    w: usize,
    h: usize,
    outdoor: bool,
    horizon: Vec<f32>,
    split: Vec<f32>,
    lane: Vec<f32>,
    top: (Stuff, StuffStyle),
    far: (Stuff, StuffStyle),
    near: (Stuff, StuffStyle),
}

impl Scene {
    fn new(w: usize, h: usize, rng: &mut ChaCha8Rng) -> Self {
        let k = w.max(h) as f32 / 96.0;
        let outdoor = unit(rng) < 0.6;
        let (hf, wf) = (h as f32, w as f32);
        let h0 = hf * uniform(rng, 0.3, 0.58);
        let (a1, f1, p1) = (hf * uniform(rng, 0.01, 0.07), uniform(rng, 0.5, 2.0), uniform(rng, 0.0, 6.3));
        let (a2, f2, p2) = (hf * uniform(rng, 0.0, 0.025), uniform(rng, 2.0, 5.0), uniform(rng, 0.0, 6.3));
        let slope = uniform(rng, -0.15, 0.15);
        let tau = std::f32::consts::TAU;
        let horizon: Vec<f32> = (0..w)
            .map(|x| {
                let t = x as f32 / wf;
                if outdoor {
                    h0 + a1 * (tau * f1 * t + p1).sin() + a2 * (tau * f2 * t + p2).sin()
                } else {
                    h0 + slope * (x as f32 - wf / 2.0)
                }
            })
            .collect();
        let depth = uniform(rng, 0.3, 0.7);
        let (a3, f3, p3) = (hf * uniform(rng, 0.0, 0.05), uniform(rng, 0.5, 2.5), uniform(rng, 0.0, 6.3));
        let split: Vec<f32> = horizon
            .iter()
            .enumerate()
            .map(|(x, &hz)| hz + (hf - hz) * depth + a3 * (tau * f3 * x as f32 / wf + p3).sin())
            .collect();
        let lane_t = uniform(rng, 0.35, 0.65);
        let (top, far, near) = if outdoor {
            let grounds = [Stuff::Grass, Stuff::Road, Stuff::Water];
            let far = grounds[pick(rng, &[1.0, 1.0, 0.8])];
            let near = if unit(rng) < 0.5 { far } else { grounds[pick(rng, &[1.0, 1.0, 0.5])] };
            (Stuff::Sky, far, near)
        } else {
            (Stuff::Wall, Stuff::Floor, Stuff::Floor)
        };
        let top = (top, stuff_style(top, rng, k));
        let far = (far, stuff_style(far, rng, k));
        let near = if near == far.0 { far } else { (near, stuff_style(near, rng, k)) };
        // The lane marking runs through the middle of the road band it lies in.
        let lane: Vec<f32> = (0..w)
            .map(|x| {
                let (lo, hi) = if far.0 == Stuff::Road { (horizon[x], split[x]) } else { (split[x], hf) };
                lo + (hi - lo) * lane_t
            })
            .collect();
        Self { w, h, outdoor, horizon, split, lane, top, far, near }
    }

    fn stuff_at(&self, x: usize, y: usize) -> (Stuff, StuffStyle) {
        let yc = y as f32 + 0.5;
        if yc < self.horizon[x] {
            self.top
        } else if yc < self.split[x] {
            self.far
        } else {
            self.near
        }
    }

    fn colour(&self, stuff: Stuff, st: &StuffStyle, x: usize, y: usize) -> [f32; 3] {
        let (xf, yf) = (x as f32 + 0.5, y as f32 + 0.5);
        let k = self.w.max(self.h) as f32 / 96.0;
        match stuff {
            Stuff::Sky => {
                // Lighter towards the horizon, with soft clouds.
                let t = (yf / self.horizon[x].max(1.0)).clamp(0.0, 1.0);
                let c = mixc(st.base, st.alt, 0.45 * t);
                let cloud = value_noise(st.seed, xf / st.period, yf / (st.period * 0.5));
                mixc(c, [245.0; 3], ((cloud - 0.62) * 3.0).clamp(0.0, 0.85))
            }
            Stuff::Wall => {
                // Wallpaper: faint vertical stripes.
                let s = ((xf / st.period + st.phase).fract() < 0.5) as u8 as f32;
                mixc(st.base, st.alt, 0.5 * s)
            }
            Stuff::Floor => {
                // Tiles: checks, larger towards the viewer.
                let depth =
                    ((yf - self.horizon[x]) / (self.h as f32 - self.horizon[x]).max(1.0)).clamp(0.0, 1.0);
                let p = st.period * (0.5 + depth);
                let check = ((xf / p).floor() as i64 + (yf / (p * 0.6)).floor() as i64).rem_euclid(2) as f32;
                mixc(st.base, st.alt, check)
            }
            Stuff::Grass => {
                // Blades: strong noise, stretched vertically.
                let n = value_noise(st.seed, xf / st.period, yf / (st.period * 3.0));
                let fine = hash_unit(st.seed ^ 1, x as i64, y as i64);
                mixc(st.base, st.alt, (0.7 * n + 0.3 * fine).clamp(0.0, 1.0))
            }
            Stuff::Road => {
                let grain = 0.9 + 0.2 * hash_unit(st.seed, x as i64, y as i64);
                let on_lane = (yf - self.lane[x]).abs() < 0.8 * k.max(1.0)
                    && ((xf / st.period + st.phase).fract() < 0.55);
                if on_lane {
                    st.alt
                } else {
                    scale(st.base, grain)
                }
            }
            Stuff::Water => {
                // Ripples: horizontal wavy bands.
                let wave = (yf / st.period * std::f32::consts::TAU
                    + 1.5 * (xf / (st.period * 4.0) + st.phase).sin())
                .sin();
                mixc(st.base, st.alt, ((wave - 0.3) * 0.6).clamp(0.0, 0.6))
            }
        }
    }
}

/// One thing in the scene: its full shape box (may extend past the image) and its look.
#[derive(Debug, Clone)]
struct Obj {
    thing: Thing,
    x0: f32,
    y0: f32,
    w: f32,
    h: f32,
    mirrored: bool,
    variant: u8,
    colours: [[f32; 3]; 4],
    textured: bool,
    period: f32,
    seed: u64,
}

// Parts of a shape, indexing `Obj::colours`.
const P0: u8 = 0;
const P1: u8 = 1;
const P2: u8 = 2;
const P3: u8 = 3;

fn in_rect(u: f32, v: f32, u0: f32, v0: f32, u1: f32, v1: f32) -> bool {
    u >= u0 && u < u1 && v >= v0 && v < v1
}

fn in_super(u: f32, v: f32, cu: f32, cv: f32, ru: f32, rv: f32, p: i32) -> bool {
    ((u - cu) / ru).abs().powi(p) + ((v - cv) / rv).abs().powi(p) <= 1.0
}

/// Distance from point `p` to the segment `a`–`b`.
fn seg_dist(p: (f32, f32), a: (f32, f32), b: (f32, f32)) -> f32 {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let t = (((p.0 - a.0) * dx + (p.1 - a.1) * dy) / (dx * dx + dy * dy).max(1e-6)).clamp(0.0, 1.0);
    ((p.0 - a.0 - t * dx).powi(2) + (p.1 - a.1 - t * dy).powi(2)).sqrt()
}

impl Obj {
    fn new(thing: Thing, x0: f32, y0: f32, w: f32, h: f32, rng: &mut ChaCha8Rng) -> Self {
        let mirrored = unit(rng) < 0.5;
        let variant = (rng.next_u32() % 2) as u8;
        let textured = unit(rng) < 0.7;
        let seed = rng.next_u64();
        let mut u = |lo: f32, hi: f32| uniform(rng, lo, hi);
        let (colours, period) = match thing {
            // Skin, shirt (magenta-purple, striped), trousers (dark blue), hair and shoes.
            Thing::Person => (
                [
                    hsv(u(18.0, 35.0), u(0.3, 0.55), u(0.6, 0.95)),
                    hsv(u(280.0, 340.0), u(0.5, 0.85), u(0.5, 0.9)),
                    hsv(u(210.0, 240.0), u(0.3, 0.6), u(0.15, 0.4)),
                    hsv(u(20.0, 40.0), u(0.3, 0.6), u(0.05, 0.3)),
                ],
                u(0.05, 0.09),
            ),
            // Body (red), windows, tyres, hubs and lights.
            Thing::Car => (
                [
                    hsv(u(-20.0, 15.0), u(0.65, 0.95), u(0.55, 0.95)),
                    hsv(u(190.0, 210.0), u(0.15, 0.35), u(0.75, 0.95)),
                    hsv(0.0, 0.0, u(0.05, 0.15)),
                    hsv(u(45.0, 60.0), u(0.2, 0.5), u(0.75, 0.95)),
                ],
                0.0,
            ),
            // Wood (brown, grain), cushion (checked), dark wood.
            Thing::Chair => {
                let hue = u(18.0, 35.0);
                let (s, v) = (u(0.55, 0.8), u(0.3, 0.6));
                (
                    [
                        hsv(hue, s, v),
                        hsv(hue + u(-10.0, 10.0), s * 0.7, (v * 1.4).min(1.0)),
                        hsv(hue, s, v * 0.6),
                        hsv(hue, s, v * 0.4),
                    ],
                    u(0.12, 0.2),
                )
            }
            // Glass (green), label (light), cap.
            Thing::Bottle => (
                [
                    hsv(u(95.0, 160.0), u(0.5, 0.9), u(0.3, 0.65)),
                    hsv(u(0.0, 360.0), u(0.05, 0.3), u(0.85, 1.0)),
                    hsv(u(0.0, 360.0), u(0.6, 0.9), u(0.5, 0.8)),
                    [240.0; 3],
                ],
                0.0,
            ),
            // Fur (tan to black), ears and nose, spots.
            Thing::Dog => {
                let hue = u(20.0, 40.0);
                let v = if u(0.0, 1.0) < 0.2 { u(0.1, 0.2) } else { u(0.35, 0.75) };
                let spot_v = if v < 0.3 { 0.85 } else { v * 0.35 };
                (
                    [hsv(hue, u(0.3, 0.7), v), hsv(hue, 0.5, v * 0.45), hsv(hue, 0.2, spot_v), [20.0; 3]],
                    u(2.5, 4.0),
                )
            }
            // Frame (cyan to yellow-green), tyres, saddle and bars.
            Thing::Bicycle => (
                [
                    hsv(u(160.0, 195.0), u(0.6, 0.95), u(0.6, 0.95)),
                    hsv(0.0, 0.0, u(0.05, 0.12)),
                    hsv(0.0, 0.0, u(0.15, 0.3)),
                    [0.0; 3],
                ],
                0.0,
            ),
        };
        Self { thing, x0, y0, w, h, mirrored, variant, colours, textured, period, seed }
    }

    /// Makes the thing the first (`second = false`) or second kind of its
    /// classification classes: chairs differ in shape (front or side view),
    /// the rest in the colour of one part (hue turned 150°; the dog's fur darkened).
    fn set_kind(&mut self, second: bool) {
        if self.thing == Thing::Chair {
            self.variant = second as u8;
            return;
        }
        if !second {
            return;
        }
        let part = if self.thing == Thing::Person { P1 } else { P0 } as usize;
        self.colours[part] = match self.thing {
            Thing::Dog => scale(self.colours[part], 0.3),
            _ => rotate_hue(self.colours[part], 150.0),
        };
    }

    /// The part at normalised shape coordinates `(u, v)` in `[0, 1)`, or `None` outside the shape.
    fn part(&self, u: f32, v: f32) -> Option<u8> {
        let u = if self.mirrored { 1.0 - u } else { u };
        let (w, h) = (self.w, self.h);
        // Distance in pixels from (u, v) to (cu, cv).
        let dist = |cu: f32, cv: f32| (((u - cu) * w).powi(2) + ((v - cv) * h).powi(2)).sqrt();
        let px = (u * w, v * h);
        let pt = |a: f32, b: f32| (a * w, b * h);
        match self.thing {
            Thing::Person => {
                if dist(0.5, 0.1) <= 0.095 * h {
                    return Some(if v < 0.06 { P3 } else { P0 });
                }
                if in_rect(u, v, 0.43, 0.18, 0.57, 0.23) {
                    return Some(P0);
                }
                if in_super(u, v, 0.5, 0.4, 0.3, 0.19, 4) {
                    return Some(P1);
                }
                let arm = in_rect(u, v, 0.06, 0.24, 0.19, 0.52) || in_rect(u, v, 0.81, 0.24, 0.94, 0.52);
                if arm {
                    return Some(P1);
                }
                if in_rect(u, v, 0.07, 0.52, 0.18, 0.58) || in_rect(u, v, 0.82, 0.52, 0.93, 0.58) {
                    return Some(P0);
                }
                if in_rect(u, v, 0.24, 0.58, 0.47, 0.95) || in_rect(u, v, 0.53, 0.58, 0.76, 0.95) {
                    return Some(P2);
                }
                if in_rect(u, v, 0.21, 0.95, 0.47, 1.0) || in_rect(u, v, 0.53, 0.95, 0.79, 1.0) {
                    return Some(P3);
                }
                None
            }
            Thing::Car => {
                for cu in [0.2, 0.8] {
                    let d = dist(cu, 0.8);
                    if d <= 0.19 * h {
                        return Some(if d <= 0.08 * h { P3 } else { P2 });
                    }
                }
                if in_super(u, v, 0.5, 0.6, 0.5, 0.2, 6) {
                    return Some(if u > 0.95 && (0.47..0.56).contains(&v) { P3 } else { P0 });
                }
                if (0.08..0.42).contains(&v) {
                    let t = (0.42 - v) / 0.34;
                    let (ul, ur) = (0.16 + 0.14 * t, 0.74 - 0.12 * t);
                    if u >= ul && u < ur {
                        let window = v > 0.14
                            && v < 0.37
                            && u > ul + 0.035
                            && u < ur - 0.035
                            && (u - 0.46).abs() > 0.02;
                        return Some(if window { P1 } else { P0 });
                    }
                }
                None
            }
            Thing::Chair => {
                let leg = if self.variant == 0 {
                    in_rect(u, v, 0.08, 0.6, 0.22, 1.0) || in_rect(u, v, 0.78, 0.6, 0.92, 1.0)
                } else {
                    in_rect(u, v, 0.08, 0.6, 0.22, 1.0) || in_rect(u, v, 0.8, 0.6, 0.94, 1.0)
                };
                if leg {
                    return Some(P2);
                }
                if in_rect(u, v, 0.04, 0.48, 0.96, 0.61) {
                    return Some(P1);
                }
                if self.variant == 0 {
                    // Front view: an upholstered back in a wooden frame.
                    if in_rect(u, v, 0.22, 0.1, 0.78, 0.42) {
                        return Some(P1);
                    }
                    in_rect(u, v, 0.1, 0.0, 0.9, 0.5).then_some(P0)
                } else {
                    // Side view: a slanted back post.
                    let shift = 0.08 * (0.5 - v);
                    in_rect(u + shift, v, 0.06, 0.0, 0.3, 0.5).then_some(P0)
                }
            }
            Thing::Bottle => {
                if in_rect(u, v, 0.33, 0.0, 0.67, 0.07) {
                    return Some(P2);
                }
                if in_rect(u, v, 0.37, 0.07, 0.63, 0.22) {
                    return Some(P0);
                }
                if (0.22..0.38).contains(&v) {
                    let half = 0.13 + (0.42 - 0.13) * (v - 0.22) / 0.16;
                    return ((u - 0.5).abs() <= half).then_some(P0);
                }
                if in_super(u, v, 0.5, 0.69, 0.42, 0.31, 8) {
                    return Some(if (0.55..0.78).contains(&v) { P1 } else { P0 });
                }
                None
            }
            Thing::Dog => {
                if dist(0.97, 0.27) <= 0.03 * h.max(w) {
                    return Some(P3);
                }
                if in_super(u, v, 0.75, 0.15, 0.045, 0.11, 2) {
                    return Some(P1);
                }
                if in_super(u, v, 0.8, 0.25, 0.13, 0.17, 2) || in_super(u, v, 0.9, 0.3, 0.08, 0.07, 2) {
                    return Some(P0);
                }
                if in_super(u, v, 0.45, 0.45, 0.33, 0.2, 2) {
                    return Some(P0);
                }
                let leg = [0.18, 0.3, 0.56, 0.66].iter().any(|&l| in_rect(u, v, l, 0.5, l + 0.07, 0.97));
                if leg {
                    return Some(P0);
                }
                if [0.18, 0.3, 0.56, 0.66].iter().any(|&l| in_rect(u, v, l, 0.97, l + 0.07, 1.0)) {
                    return Some(P1);
                }
                if seg_dist(px, pt(0.15, 0.4), pt(0.03, 0.12)) <= (0.035 * h).max(0.6) {
                    return Some(P0);
                }
                None
            }
            Thing::Bicycle => {
                let thick = (0.045 * h).max(0.6);
                let (rear, crank, seat, head, front) =
                    (pt(0.22, 0.68), pt(0.47, 0.7), pt(0.4, 0.3), pt(0.72, 0.28), pt(0.78, 0.68));
                if in_rect(u, v, 0.32, 0.22, 0.47, 0.28) {
                    return Some(P2);
                }
                let bar = pt(0.68, 0.16);
                if seg_dist(px, head, bar) <= thick || seg_dist(px, bar, pt(0.76, 0.16)) <= thick {
                    return Some(P2);
                }
                let frame =
                    [(rear, crank), (rear, seat), (seat, crank), (seat, head), (head, crank), (head, front)];
                if frame.iter().any(|&(a, b)| seg_dist(px, a, b) <= thick) {
                    return Some(P0);
                }
                for c in [rear, front] {
                    let d = ((px.0 - c.0).powi(2) + (px.1 - c.1).powi(2)).sqrt();
                    let r = 0.31 * h;
                    if d <= r && d >= r - (0.07 * h).max(1.0) {
                        return Some(P1);
                    }
                    if d <= (0.04 * h).max(0.6) {
                        return Some(P0);
                    }
                }
                None
            }
        }
    }

    /// The colour of a part at shape coordinates `(u, v)`, image pixel `(x, y)`.
    fn colour(&self, part: u8, u: f32, v: f32, x: usize, y: usize) -> [f32; 3] {
        let c = self.colours[part as usize];
        match (self.thing, part) {
            (Thing::Person, P1) if self.textured => {
                // Horizontal stripes on the shirt.
                if (v / self.period).fract() < 0.5 {
                    c
                } else {
                    scale(c, 0.6)
                }
            }
            (Thing::Car, P0) => {
                // Glossy: lighter at the top, a highlight line along the body.
                let mut c = scale(c, 1.2 - 0.5 * v);
                if (0.5..0.53).contains(&v) {
                    c = mixc(c, [255.0; 3], 0.4);
                }
                c
            }
            (Thing::Chair, P0) | (Thing::Chair, P2) => {
                // Wood grain along the legs and posts.
                let g = value_noise(self.seed, u * self.w * 0.7, v * self.h * 0.06);
                scale(c, 0.8 + 0.4 * g)
            }
            (Thing::Chair, P1) => {
                // Checked cushion.
                let check = ((u / self.period).floor() as i64 + (v / (self.period * 0.6)).floor() as i64)
                    .rem_euclid(2);
                if check == 0 {
                    c
                } else {
                    scale(c, 0.7)
                }
            }
            (Thing::Bottle, P0) => {
                // Glass: a bright vertical highlight, darker edges.
                let uu = if self.mirrored { 1.0 - u } else { u };
                if (0.22..0.32).contains(&uu) && v > 0.1 {
                    mixc(c, [255.0; 3], 0.55)
                } else {
                    scale(c, 0.75 + 0.5 * (1.0 - (uu - 0.5).abs() * 2.0))
                }
            }
            (Thing::Dog, P0) => {
                // Fur noise, and spots on some dogs.
                let fur = 0.7 + 0.6 * hash_unit(self.seed, x as i64, y as i64);
                let spot = self.textured
                    && value_noise(self.seed ^ 7, u * self.w / self.period, v * self.h / self.period) > 0.68;
                scale(if spot { self.colours[P2 as usize] } else { c }, fur)
            }
            _ => c,
        }
    }
}

/// A rendered scene before encoding: colours, the object owning each pixel
/// (0 = background, `k + 1` = object `k`), the stuff label, outline pixels.
struct Canvas {
    w: usize,
    h: usize,
    rgb: Vec<[f32; 3]>,
    inst: Vec<u16>,
    stuff: Vec<u8>,
    outline: Vec<bool>,
    objects: Vec<Obj>,
    /// Pixels of each object's whole shape, counted past the image border too.
    full_area: Vec<usize>,
    /// Pixels of each object's shape inside the image (before occlusion).
    inside_area: Vec<usize>,
}

/// How many things a scene gets, and which classes, for each task.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Task {
    Det,
    Seg,
    /// A close-up of one thing of this classification class.
    Cls(usize),
}

fn image_size(size: u32, rng: &mut ChaCha8Rng) -> (usize, usize) {
    let long = size as usize;
    let short = ((size as f32 * uniform(rng, 0.72, 1.0)).round() as usize).clamp(1, long);
    if unit(rng) < 0.75 {
        (long, short)
    } else {
        (short, long)
    }
}

fn render(size: u32, task: Task, rng: &mut ChaCha8Rng) -> Canvas {
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
fn defocus(rgb: &mut [[f32; 3]], w: usize, h: usize, radius: usize) {
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
    fn rgb_image(&self) -> RgbImage {
        RgbImage::from_fn(self.w as u32, self.h as u32, |x, y| {
            let c = self.rgb[y as usize * self.w + x as usize];
            image::Rgb(c.map(|v| (v + 0.5) as u8))
        })
    }

    /// ADE-encoded mask: stuff label, or the thing's label, 0 on outlines and unnamed things.
    fn seg_mask(&self) -> GrayImage {
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
    fn det_objects(&self) -> Vec<VocObject> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boxes_are_the_extent_of_the_drawn_pixels() {
        let mut seen = [0usize; 6];
        let mut difficult = 0;
        for i in 0..60 {
            let canvas = render(80, Task::Det, &mut image_rng(5, TASK_DET, i));
            let objects = canvas.det_objects();
            let kept: Vec<usize> = (0..canvas.objects.len())
                .filter(|&k| {
                    let xs: Vec<usize> =
                        (0..canvas.inst.len()).filter(|&p| canvas.inst[p] as usize == k + 1).collect();
                    let distinct = |f: &dyn Fn(usize) -> usize| {
                        let mut v: Vec<usize> = xs.iter().map(|&p| f(p)).collect();
                        v.sort();
                        v.dedup();
                        v.len()
                    };
                    xs.len() >= 4 && distinct(&|p| p % canvas.w) >= 2 && distinct(&|p| p / canvas.w) >= 2
                })
                .collect();
            assert_eq!(kept.len(), objects.len());
            for (&k, o) in kept.iter().zip(&objects) {
                let mut e = [usize::MAX, usize::MAX, 0, 0];
                for (p, &id) in canvas.inst.iter().enumerate() {
                    if id as usize == k + 1 {
                        let (x, y) = (p % canvas.w, p / canvas.w);
                        e = [e[0].min(x), e[1].min(y), e[2].max(x), e[3].max(y)];
                    }
                }
                assert_eq!(o.bbox, e.map(|v| v as f32 + 1.0), "image {i} object {k}");
                assert!(o.bbox[0] >= 1.0 && o.bbox[2] <= canvas.w as f32 && o.bbox[3] <= canvas.h as f32);
                assert_eq!(o.name, DET_CLASSES[o.class]);
                seen[o.class] += 1;
                difficult += o.difficult as usize;
            }
        }
        assert!(seen.iter().all(|&n| n > 0), "every class appears: {seen:?}");
        let total: usize = seen.iter().sum();
        assert!(difficult > 0 && difficult * 4 < total, "a few difficult: {difficult} of {total}");
    }

    #[test]
    fn masks_label_stuff_and_things_and_leave_few_pixels_unlabelled() {
        let mut counts = [0u64; SEG_CLASSES.len() + 1];
        for i in 0..40 {
            let (img, mask) = render_seg(&SynthConfig { size: 64, ..Default::default() }, i);
            assert_eq!(img.dimensions(), mask.dimensions());
            for &v in mask.as_raw() {
                counts[v as usize] += 1;
            }
        }
        let total: u64 = counts.iter().sum();
        assert!(counts[1..].iter().all(|&n| n > 0), "every label appears: {counts:?}");
        assert!(counts[0] > 0 && counts[0] * 20 < total, "few unlabelled pixels: {counts:?}");
    }

    #[test]
    fn rendering_is_deterministic_and_depends_on_seed_and_index() {
        let config = SynthConfig { size: 48, ..Default::default() };
        assert_eq!(render_det(&config, 3), render_det(&config, 3));
        assert_ne!(render_det(&config, 3).0, render_det(&config, 4).0);
        let other = SynthConfig { seed: 1, ..config.clone() };
        assert_ne!(render_det(&config, 3).0, render_det(&other, 3).0);
        assert_eq!(render_seg(&config, 2), render_seg(&config, 2));
    }

    #[test]
    fn classification_crops_are_balanced_deterministic_and_the_kinds_differ() {
        let config = SynthConfig { size: 48, ..Default::default() };
        assert_eq!(render_cls(&config, 5), render_cls(&config, 5));
        assert_eq!(render_cls(&config, 13).1, 1);
        // The two kinds of a thing drawn from the same generator state differ
        // only by their detail: the same crop, recoloured or reshaped.
        for class in [2, 4] {
            let a = render(48, Task::Cls(class), &mut image_rng(1, TASK_CLS, 0));
            let b = render(48, Task::Cls(class + 1), &mut image_rng(1, TASK_CLS, 0));
            let changed = a.rgb.iter().zip(&b.rgb).filter(|(x, y)| x != y).count();
            assert!(changed > 20 && changed * 2 < a.rgb.len(), "class {class}: {changed} pixels differ");
        }
        assert!((rotate_hue([200.0, 40.0, 40.0], 360.0)[0] - 200.0).abs() < 1e-2);
    }

    #[test]
    fn classification_crops_are_added_to_a_twin_set_and_a_set_with_them_serves_one_without() {
        let dir = tempfile::tempdir().unwrap();
        let twins = SynthConfig { det_images: 5, seg_images: 5, size: 32, ..Default::default() };
        ensure_generated(dir.path(), &twins, |_, _| {}).unwrap();
        let voc_written = std::fs::metadata(dir.path().join("voc/JPEGImages/000001.jpg")).unwrap().modified().unwrap();
        let three = SynthConfig { cls_images: 24, ..twins.clone() };
        let summary = ensure_generated(dir.path(), &three, |_, _| {}).unwrap();
        assert_eq!((summary.cls_train, summary.cls_val), (20, 4));
        assert_eq!(std::fs::read_dir(dir.path().join("cls/images")).unwrap().count(), 24);
        // The twin sets were kept, not written again; the two-task configuration is served as it is.
        assert_eq!(std::fs::metadata(dir.path().join("voc/JPEGImages/000001.jpg")).unwrap().modified().unwrap(), voc_written);
        assert_eq!(ensure_generated(dir.path(), &twins, |_, _| panic!("nothing to write")).unwrap(), summary);
        assert!(!dir.path().join(INCOMPLETE_FILE).exists());
    }

    #[test]
    fn validation_split_is_every_fifth() {
        let val: Vec<usize> = (0..12).filter(|&i| is_val(i, 0.2)).collect();
        assert_eq!(val, [4, 9]);
        assert!(!(0..10).any(|i| is_val(i, 0.0)));
    }
}
