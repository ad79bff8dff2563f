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

mod noise;
mod objects;
mod render;
#[cfg(test)]
mod tests;
mod world;
mod writers;

pub(crate) use noise::mix;
pub use render::{render_cls, render_det, render_seg};
use writers::{write_ade, write_cls, write_voc};

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
