//! `twinhead data synth`: write the synthetic twin datasets.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};

use super::progress_bar;
use crate::data::format::{DetFormat, DetSpec, SegFormat, SegSpec};
use crate::data::masks::MaskEncoding;
use crate::data::synth::{self, SynthConfig, SynthSummary, DET_CLASSES, SEG_CLASSES};
use crate::export::dataset::{write_coco, write_masks, write_yolo};

/// Writes a detection set in the VOC layout (`OUT/voc/`), a segmentation set
/// in the ADE20K layout (`OUT/ade/`) and, with `--cls-images`, a classification
/// set in the image-list layout (`OUT/cls/`), drawn from one shared synthetic world.
/// Deterministic by seed. Interrupting it (Ctrl-C) leaves a set marked
/// incomplete, which the next run replaces.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Output folder; gets voc/, ade/ (and cls/) and synth.json.
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Number of detection images (VOC layout).
    #[arg(long, default_value_t = 600)]
    det_images: usize,
    /// Number of segmentation images (ADE20K layout).
    #[arg(long, default_value_t = 600)]
    seg_images: usize,
    /// Number of classification crops (image-list layout, 12 fine-grained classes); 0: none.
    #[arg(long, default_value_t = 0)]
    cls_images: usize,
    /// Long side of the images, in pixels.
    #[arg(long, default_value_t = 96)]
    size: u32,
    /// Fraction of each set put in the validation split.
    #[arg(long, default_value_t = 0.2)]
    val_fraction: f32,
    /// Also write the detection set in this layout (OUT/coco/ or OUT/yolo/), from the same content.
    #[arg(long, value_enum)]
    det_format: Vec<DetFormat>,
    /// Also write the segmentation set as mask folders (OUT/masks/, ignore255 encoding), from the same content.
    #[arg(long, value_enum)]
    seg_format: Vec<SegFormat>,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let config = SynthConfig {
        seed: args.seed,
        det_images: args.det_images,
        seg_images: args.seg_images,
        cls_images: args.cls_images,
        size: args.size,
        val_fraction: args.val_fraction,
        ..SynthConfig::default()
    };
    let images = config.det_images + config.seg_images + config.cls_images;
    let bar = progress_bar(Some(images as u64), "rendering");
    let start = std::time::Instant::now();
    let summary = synth::generate(&args.out, &config, |done, _| bar.set_position(done as u64));
    bar.finish_and_clear();
    let summary = summary?;
    write_other_formats(&args.out, &summary, &args.det_format, &args.seg_format)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
        return Ok(ExitCode::SUCCESS);
    }
    let secs = start.elapsed().as_secs_f64();
    if config.det_images > 0 {
        let objects: usize = summary.det_objects.iter().sum();
        let per_class: Vec<String> =
            DET_CLASSES.iter().zip(&summary.det_objects).map(|(name, n)| format!("{name} {n}")).collect();
        println!(
            "detection:    {} (VOC layout): {} train + {} val images, {objects} objects ({}), {} difficult, {} truncated",
            summary.voc_root.display(),
            summary.det_train,
            summary.det_val,
            per_class.join(", "),
            summary.det_difficult,
            summary.det_truncated
        );
    }
    if config.seg_images > 0 {
        let total: u64 = summary.seg_pixels.iter().sum::<u64>().max(1);
        let shares: Vec<String> = std::iter::once("unlabelled")
            .chain(SEG_CLASSES)
            .zip(&summary.seg_pixels)
            .map(|(name, &n)| format!("{name} {:.1}%", 100.0 * n as f64 / total as f64))
            .collect();
        println!(
            "segmentation: {} (ADE20K layout): {} training + {} validation images; pixels: {}",
            summary.ade_root.display(),
            summary.seg_train,
            summary.seg_val,
            shares.join(", ")
        );
    }
    if config.cls_images > 0 {
        println!(
            "classification: {} (image list): {} train + {} val crops of {} classes ({}, …)",
            summary.cls_root.display(),
            summary.cls_train,
            summary.cls_val,
            synth::CLS_CLASSES.len(),
            synth::CLS_CLASSES[..4].join(", ")
        );
    }
    println!(
        "{images} images at {} px, seed {}, in {secs:.1} s",
        config.size,
        config.seed
    );
    Ok(ExitCode::SUCCESS)
}

/// The layouts asked for besides VOC and ADE, each in `out/<format>/` (replaced when there).
fn write_other_formats(out: &Path, summary: &SynthSummary, det: &[DetFormat], seg: &[SegFormat]) -> Result<()> {
    let fresh = |name: &str| -> Result<PathBuf> {
        let dir = out.join(name);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).with_context(|| format!("{}: cannot remove", dir.display()))?;
        }
        Ok(dir)
    };
    if det.iter().any(|&f| f != DetFormat::Voc) {
        let spec = DetSpec::new(&summary.voc_root, Some(DetFormat::Voc));
        let (train, val) = (spec.open("train", None)?, spec.open("val", None)?);
        for format in det {
            match format {
                DetFormat::Voc => {}
                DetFormat::Coco => write_coco(&[&train, &val], &fresh("coco")?)?,
                DetFormat::Yolo => write_yolo(&[&train, &val], &fresh("yolo")?)?,
            }
        }
    }
    if seg.contains(&SegFormat::Masks) {
        let spec = SegSpec::new(&summary.ade_root, Some(SegFormat::Ade), Default::default());
        let (train, val) = (spec.open("training")?, spec.open("validation")?);
        write_masks(&[&train, &val], &fresh("masks")?, MaskEncoding::Ignore255)?;
    }
    Ok(())
}
