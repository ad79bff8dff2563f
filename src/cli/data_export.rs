//! `twinhead data export-coco`: a detection split's ground truth (any format) as a COCO JSON file,
//! matching what `predict --format coco` writes, so pycocotools can score it.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Result};

use super::dataset_args::DetFormatArgs;
use crate::export::coco;
use crate::train::run_dir::write_atomic;

#[derive(Debug, clap::Args)]
pub struct ExportCocoArgs {
    /// Detection dataset: VOC (the VOC2007 folder, or one holding VOC2007/ or VOCdevkit/VOC2007/), COCO or YOLO.
    #[arg(long)]
    voc: PathBuf,
    #[command(flatten)]
    format: DetFormatArgs,
    /// Split (VOC: a list in ImageSets/Main, e.g. test).
    #[arg(long)]
    split: String,
    /// The COCO JSON file to write.
    #[arg(long)]
    out: PathBuf,
}

pub fn run(args: ExportCocoArgs) -> Result<ExitCode> {
    let dataset = args.format.spec(args.voc.clone()).open(&args.split, None)?;
    if let Some(first) = dataset.problems.first() {
        // A left-out record would make the scores incomparable; see `data check`.
        bail!("{} split {}: {} record(s) with problems, first: {first}", dataset.root.display(), args.split, dataset.problems.len());
    }
    let json = coco::ground_truth(&dataset.records, &dataset.classes, &dataset.coco_ids())?;
    write_atomic(&args.out, serde_json::to_string(&json)?.as_bytes())?;
    let objects: usize = dataset.records.iter().map(|r| r.annotation.objects.len()).sum();
    println!("{}: {} images, {} objects, {} categories", args.out.display(), dataset.records.len(), objects, dataset.classes.len());
    Ok(ExitCode::SUCCESS)
}
