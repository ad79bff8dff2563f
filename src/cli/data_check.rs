//! `twinhead data check`: validate datasets and print their summary.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Result};

use super::{progress_bar, EXIT_PROBLEMS};
use crate::data::check::{check, CheckReport, CheckRequest, SizeSummary};
use crate::data::classify::ClsFormat;
use super::dataset_args::{DetFormatArgs, SegFormatArgs};
use crate::data::voc::VocClasses;
use crate::data::ClassList;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Detection dataset folder: VOC (VOC2007/ or its VOCdevkit/ parent), COCO or YOLO.
    #[arg(long)]
    voc: Option<PathBuf>,
    #[command(flatten)]
    det_format: DetFormatArgs,
    /// Detection split to check (VOC: a list in ImageSets/Main/); default: every split.
    #[arg(long, requires = "voc")]
    voc_split: Option<String>,
    /// Class list file (one name per line) for VOC-format data with other classes.
    #[arg(long, requires = "voc")]
    voc_classes: Option<PathBuf>,
    /// Segmentation dataset folder: ADE20K (ADEChallengeData2016/ or its parent) or mask folders.
    #[arg(long)]
    ade: Option<PathBuf>,
    #[command(flatten)]
    seg_format: SegFormatArgs,
    /// Segmentation split (ADE: training/validation, or train/val); default: every split.
    #[arg(long, requires = "ade")]
    ade_split: Option<String>,
    /// Classification dataset folder: an image list (<split>.txt) or class folders.
    #[arg(long)]
    cls: Option<PathBuf>,
    /// Its format (default: detected from the layout).
    #[arg(long, requires = "cls", value_enum)]
    cls_format: Option<ClsFormat>,
    /// Classification split; default: every split.
    #[arg(long, requires = "cls")]
    cls_split: Option<String>,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<ExitCode> {
    if args.voc.is_none() && args.ade.is_none() && args.cls.is_none() {
        bail!("data check: give --voc DIR, --ade DIR and/or --cls DIR");
    }
    let request = CheckRequest {
        det_classes: match &args.voc_classes {
            Some(path) => Some(VocClasses::List(ClassList::read_plain(path)?)),
            None => None,
        },
        det: args.voc.map(|dir| args.det_format.spec(dir)),
        det_split: args.voc_split,
        seg: args.ade.map(|dir| args.seg_format.spec(dir)),
        seg_split: args.ade_split,
        cls: args.cls.map(|dir| (dir, args.cls_format)),
        cls_split: args.cls_split,
    };
    let bar = progress_bar(None, "checking");
    let report = check(&request, &|| bar.inc(1))?;
    bar.finish_and_clear();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    Ok(if report.is_clean() { ExitCode::SUCCESS } else { ExitCode::from(EXIT_PROBLEMS) })
}

fn print_report(report: &CheckReport) {
    if let Some(voc) = &report.voc {
        println!("detection ({})  {}", voc.format.name(), voc.root.display());
        println!("  splits: {}", format_counts(voc.splits.iter().map(|(k, v)| (k.as_str(), *v))));
        println!("  checked split {:?}: {} images, {} objects ({} difficult)", voc.checked_split, voc.images, voc.objects, voc.difficult);
        println!("  {:<16} {:>8} {:>10}", "class", "objects", "difficult");
        for (class, count) in &voc.per_class {
            println!("  {:<16} {:>8} {:>10}", class, count.objects, count.difficult);
        }
        println!("  image sizes: {}", format_sizes(&voc.image_sizes));
    }
    if let Some(ade) = &report.ade {
        println!("segmentation ({}, {} encoding)  {}", ade.format.name(), ade.encoding.name(), ade.root.display());
        println!("  splits: {}", format_counts(ade.splits.iter().map(|(k, v)| (k.as_str(), *v))));
        println!("  checked split {:?}: {} images", ade.checked_split, ade.images);
        println!("  unlabelled pixels: {:.2}%", 100.0 * ade.unlabelled_fraction);
        println!("  {:<20} {:>8}", "class", "pixels");
        let mut classes = ade.class_pixel_fraction.clone();
        classes.sort_by(|a, b| b.1.total_cmp(&a.1));
        for (class, fraction) in &classes {
            println!("  {:<20} {:>7.2}%", class, 100.0 * fraction);
        }
        println!("  image sizes: {}", format_sizes(&ade.image_sizes));
    }
    if let Some(cls) = &report.cls {
        println!("classification ({})  {}", cls.format.name(), cls.root.display());
        println!("  splits: {}", format_counts(cls.splits.iter().map(|(k, v)| (k.as_str(), *v))));
        println!("  checked split {:?}: {} images, {} classes", cls.checked_split, cls.images, cls.per_class.len());
        println!("  {:<24} {:>8}", "class", "images");
        for (class, count) in &cls.per_class {
            println!("  {:<24} {:>8}", class, count);
        }
        println!("  image sizes: {}", format_sizes(&cls.image_sizes));
    }
    println!("duplicate images: {} group(s)", report.duplicates.len());
    for group in &report.duplicates {
        let paths: Vec<String> = group.iter().map(|p| p.display().to_string()).collect();
        println!("  {}", paths.join("  ="));
    }
    if report.problems.is_empty() {
        println!("problems: none");
    } else {
        println!("problems: {}", report.problems.len());
        for problem in &report.problems {
            println!("  {problem}");
        }
    }
}

fn format_counts<'a>(counts: impl Iterator<Item = (&'a str, usize)>) -> String {
    let parts: Vec<String> = counts.map(|(k, v)| format!("{k}={v}")).collect();
    if parts.is_empty() { "none".into() } else { parts.join(" ") }
}

fn format_sizes(s: &SizeSummary) -> String {
    if s.count == 0 {
        return "none".into();
    }
    format!(
        "{} images, width {}..{} (mean {:.0}), height {}..{} (mean {:.0})",
        s.count, s.min_width, s.max_width, s.mean_width, s.min_height, s.max_height, s.mean_height
    )
}
