//! `twinhead submit track1`: the CVPR23 Track1 submission of a three-task run
//! (see `src/export/track1.rs` for the file it writes).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use rayon::prelude::*;

use super::predict::image_ids;
use super::progress_bar;
use crate::data::batch::decode_rgb;
use crate::data::coco::{self, CocoId, CocoIds};
use crate::data::format::DetFormat;
use crate::eval::cls::ranking;
use crate::export::coco::results;
use crate::export::track1::{class_polygons, test_list, SegEntry, Submission};
use crate::export::{write_file, ImagePrediction};
use crate::model::postprocess::PostprocessConfig;
use crate::model::{Task, TaskSet};
use crate::predictor::{Prediction, Predictor};
use super::run_args::{DeviceArg, RunCheckpoint};
use crate::train::run_dir;

#[derive(Debug, clap::Args)]
pub struct Track1Args {
    /// A run with all three tasks, and its checkpoint.
    #[command(flatten)]
    run: RunCheckpoint,
    #[command(flatten)]
    device: DeviceArg,
    /// The Track1 data folder: cls/, dec/ and seg/, each with a test.txt listing
    /// its test images (relative to the task folder, its images/, or absolute).
    #[arg(long)]
    data: PathBuf,
    /// A COCO file whose categories (matched by name) give the detection
    /// category ids; default: the run's detection dataset's own when it is a
    /// COCO dataset, else numbered from 1 as `data export-coco` numbers them.
    #[arg(long)]
    det_categories: Option<PathBuf>,
    /// The submission file to write (JSON).
    #[arg(long)]
    out: PathBuf,
}

/// Images decoded and predicted per chunk, so memory stays bounded on big test sets.
const CHUNK: usize = 64;

pub fn run_track1(args: Track1Args) -> Result<ExitCode> {
    let predictor = Predictor::load_on(&args.run.run, &args.run.checkpoint.checkpoint, args.device.device)?;
    if predictor.tasks() != TaskSet::ALL {
        bail!("{}: the network has heads for {} only; Track1 needs all three tasks", args.run.run.display(), String::from(predictor.tasks()));
    }
    let [cls_images, dec_images, seg_images] = ["cls", "dec", "seg"].map(|task| test_list(&args.data, task));
    let (cls_images, dec_images, seg_images) = (cls_images?, dec_images?, seg_images?);
    let categories = detection_categories(&args, predictor.classes(Task::Det))?;
    // Test image ids follow Track1's convention: the 1-based line of dec/test.txt.
    let stems = image_ids(&dec_images)?;
    let ids = CocoIds::from_parts(stems.iter().enumerate().map(|(i, s)| (s.clone(), CocoId::Number(i as i64 + 1))).collect(), categories);
    let seg_names = image_ids(&seg_images)?;

    let bar = progress_bar(Some((cls_images.len() + dec_images.len() + seg_images.len()) as u64), "predicting");
    let mut cls = Vec::with_capacity(cls_images.len());
    for chunk in cls_images.chunks(CHUNK) {
        let images = decode_all(chunk)?;
        for (path, scores) in chunk.iter().zip(predictor.classify_images(&images)?) {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            cls.push([(name, ranking(&scores)[0])].into_iter().collect());
        }
        bar.inc(chunk.len() as u64);
    }
    // The mAP settings of `eval --run` (scores down to 0.001): AP needs the low-scored boxes too.
    let postprocess = PostprocessConfig::default();
    let mut dec = Vec::new();
    for (chunk, stems) in dec_images.chunks(CHUNK).zip(stems.chunks(CHUNK)) {
        let predictions = predictor.predict_images(&decode_all(chunk)?, &postprocess);
        let images: Vec<ImagePrediction> = stems.iter().zip(&predictions).map(|(id, prediction)| ImagePrediction { id, prediction }).collect();
        dec.extend(results(&images, &ids)?);
        bar.inc(chunk.len() as u64);
    }
    let seg_classes = predictor.classes(Task::Seg).len();
    let mut seg = Vec::with_capacity(seg_images.len());
    for (chunk, names) in seg_images.chunks(CHUNK).zip(seg_names.chunks(CHUNK)) {
        let predictions: Vec<Prediction> = predictor.predict_images(&decode_all(chunk)?, &postprocess);
        let entries: Vec<SegEntry> = names
            .par_iter()
            .zip(&predictions)
            .map(|(name, p)| {
                let mask = p.mask.as_ref().expect("a network with a segmentation head predicts masks");
                SegEntry { name: format!("{name}.png"), classes: class_polygons(mask, seg_classes) }
            })
            .collect();
        seg.extend(entries);
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    let submission = Submission { cls, dec, seg };
    write_file(&args.out, serde_json::to_string(&submission)?.as_bytes())?;
    println!(
        "{}: {} classification, {} detection ({} boxes) and {} segmentation images",
        args.out.display(),
        submission.cls.len(),
        dec_images.len(),
        submission.dec.len(),
        submission.seg.len()
    );
    Ok(ExitCode::SUCCESS)
}

/// The detection category ids: `--det-categories`, else the run's COCO dataset's own, else 1, 2, ….
fn detection_categories(args: &Track1Args, classes: &[String]) -> Result<Vec<CocoId>> {
    let file = match &args.det_categories {
        Some(file) => Some(file.clone()),
        None => {
            let config = run_dir::read_config(&args.run.run)?;
            match config.data.det_spec() {
                Some(spec) if matches!(spec.format(), Ok(DetFormat::Coco)) => Some(coco::split_file(&spec.root()?, &config.data.voc_train_split)?.1),
                _ => None,
            }
        }
    };
    Ok(match file {
        Some(file) => CocoIds::read(&file, classes).with_context(|| format!("detection categories from {}", file.display()))?.categories().to_vec(),
        None => CocoIds::numbered(std::iter::empty(), classes.len()).categories().to_vec(),
    })
}

fn decode_all(paths: &[PathBuf]) -> Result<Vec<image::RgbImage>> {
    paths.par_iter().map(|p| decode_rgb(p).map_err(|problem| anyhow::anyhow!("{problem}"))).collect()
}
