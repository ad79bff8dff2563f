//! `twinhead eval det` and `twinhead eval seg`: score prediction files against a
//! dataset split and print a per-class table (or JSON).
//!
//! Ground truth with problems (unreadable annotations, missing images, ...) is
//! refused rather than skipped: leaving records out would silently change the
//! positives and the pixel counts, so no score would be comparable. Run
//! `twinhead data check` to see and fix them.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, bail, Result};
use rayon::prelude::*;
use serde::ser::{Serialize, Serializer};

use super::dataset_args::{DetFormatArgs, SegFormatArgs};
use crate::data::voc::VocClasses;
use crate::data::{ClassList, Problem};
use crate::eval::predictions::{read_detections, read_prediction_mask, DetTarget};
use crate::eval::{evaluate_coco, evaluate_voc, ground_truth_from_voc, ClassAp, ConfusionMatrix, VocMetric};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Metric {
    /// VOC2007 devkit: 11-point interpolated AP at IoU 0.5.
    Voc07,
    /// VOC2010+ devkit: area under the precision envelope at IoU 0.5.
    Voc,
    /// pycocotools: AP@[.50:.95], AP50, AP75 (difficult objects as crowd regions).
    Coco,
}

#[derive(Debug, clap::Args)]
pub struct DetArgs {
    /// Detection dataset: VOC (the VOC2007 folder, or one holding VOC2007/ or VOCdevkit/VOC2007/), COCO or YOLO.
    #[arg(long)]
    voc: PathBuf,
    #[command(flatten)]
    format: DetFormatArgs,
    /// Split to score against (VOC: a list in ImageSets/Main, e.g. test).
    #[arg(long)]
    split: String,
    /// Predictions: a JSON list of {"image_id", "category", "bbox": [xmin, ymin, xmax, ymax],
    /// "score"} in VOC pixel coordinates, or a folder of comp4_det_<split>_<class>.txt files.
    #[arg(long)]
    pred: PathBuf,
    #[arg(long, value_enum, default_value_t = Metric::Voc07)]
    metric: Metric,
    /// Class list (one name per line) instead of <root>/classes.txt or the 20 VOC classes.
    #[arg(long)]
    classes: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
pub struct SegArgs {
    /// Segmentation dataset: ADE20K (ADEChallengeData2016 or the folder holding it) or mask folders.
    #[arg(long)]
    ade: PathBuf,
    #[command(flatten)]
    format: SegFormatArgs,
    /// Split: training/validation (or train/val).
    #[arg(long)]
    split: String,
    /// Folder of predicted label PNGs, named like the annotations (0 = unlabelled, 1..=N).
    #[arg(long)]
    pred: PathBuf,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn run_det(args: DetArgs) -> Result<ExitCode> {
    let classes = match &args.classes {
        Some(path) => Some(VocClasses::List(ClassList::read_plain(path)?)),
        None => None,
    };
    let dataset = args.format.spec(args.voc.clone()).open(&args.split, classes)?;
    let root = dataset.root.clone();
    refuse_problems(&dataset.problems, &format!("detection {} split {}", dataset.root.display(), dataset.split))?;
    let mut image_ids: HashMap<String, usize> = HashMap::with_capacity(dataset.records.len());
    for (i, record) in dataset.records.iter().enumerate() {
        // A repeated id would count its objects twice, with only one copy reachable.
        if image_ids.insert(record.id.clone(), i).is_some() {
            bail!("{}: split {} lists image {:?} twice", dataset.root.display(), dataset.split, record.id);
        }
    }
    let coco_ids = dataset.coco_ids();
    let target = DetTarget { split: &dataset.split, image_ids: &image_ids, classes: &dataset.classes, coco_ids: &coco_ids };
    let detections = read_detections(&args.pred, &target)?;
    let gts = ground_truth_from_voc(&dataset.records);
    let names = dataset.classes.names();
    let n = names.len();

    let (title, columns): (&str, Vec<(&str, ClassAp)>) = match args.metric {
        Metric::Voc07 => ("VOC07 11-point AP", vec![("AP", evaluate_voc(&gts, &detections, n, VocMetric::Voc07))]),
        Metric::Voc => ("VOC area AP", vec![("AP", evaluate_voc(&gts, &detections, n, VocMetric::Area))]),
        Metric::Coco => {
            let r = evaluate_coco(&gts, &detections, n);
            ("COCO AP@[.50:.95]", vec![("AP", r.ap), ("AP50", r.ap50), ("AP75", r.ap75)])
        }
    };
    // Every column leaves out the same classes: those without non-difficult objects.
    let Some(map) = columns[0].1.mean() else {
        bail!("{}: split {} has no non-difficult object of any class: nothing to score", root.display(), dataset.split);
    };
    if args.json {
        let column = |i: usize| PerClass { names, values: &columns[i].1.per_class };
        let json = DetJson {
            metric: metric_name(args.metric),
            map,
            ap50: columns.get(1).and_then(|c| c.1.mean()),
            ap75: columns.get(2).and_then(|c| c.1.mean()),
            per_class: column(0),
            per_class_ap50: (columns.len() > 1).then(|| column(1)),
            per_class_ap75: (columns.len() > 2).then(|| column(2)),
        };
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        println!(
            "{title} on {} split {}: {} images, {} objects, {} detections",
            dataset.root.display(),
            dataset.split,
            dataset.records.len(),
            gts.len(),
            detections.len()
        );
        let table: Vec<(&str, &[Option<f64>])> = columns.iter().map(|(h, c)| (*h, c.per_class.as_slice())).collect();
        print_table(names, &table, "mean", "no non-difficult objects");
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run_seg(args: SegArgs) -> Result<ExitCode> {
    let dataset = args.format.spec(args.ade.clone()).open(&args.split)?;
    refuse_problems(&dataset.problems, &format!("segmentation {} split {}", dataset.root.display(), dataset.split))?;
    if !args.pred.is_dir() {
        bail!("{}: prediction folder does not exist", args.pred.display());
    }
    let n = dataset.classes.len();
    // Per-thread matrices, merged; every bad file is collected (then reported in
    // split order) rather than stopping at whichever thread fails first.
    let (matrix, mut errors) = dataset
        .records
        .par_iter()
        .enumerate()
        .fold(
            || (ConfusionMatrix::new(n), Vec::new()),
            |(mut matrix, mut errors), (i, record)| {
                let pair = record.read_mask(n).map_err(|p| anyhow!("{p}")).and_then(|gt| {
                    let pred = read_prediction_mask(&args.pred, &record.mask_path, gt.dimensions(), n)?;
                    Ok((gt, pred))
                });
                match pair {
                    Ok((gt, pred)) => matrix.accumulate(gt.as_raw(), pred.as_raw()),
                    Err(e) => errors.push((i, e)),
                }
                (matrix, errors)
            },
        )
        .reduce(
            || (ConfusionMatrix::new(n), Vec::new()),
            |(mut a, mut errors_a), (b, errors_b)| {
                a.merge(&b);
                errors_a.extend(errors_b);
                (a, errors_a)
            },
        );
    if !errors.is_empty() {
        errors.sort_by_key(|(i, _)| *i);
        let listed: Vec<String> = errors.iter().take(MAX_LISTED).map(|(_, e)| format!("  {e:#}")).collect();
        bail!("{} bad prediction file(s):\n{}{}", errors.len(), listed.join("\n"), more(errors.len()));
    }
    let (Some(miou), Some(pixel_acc), Some(mean_acc)) =
        (matrix.miou(), matrix.pixel_accuracy(), matrix.mean_accuracy())
    else {
        bail!("{}: split {} has no labelled pixel: nothing to score", dataset.root.display(), dataset.split);
    };
    let names = dataset.classes.names();
    let iou = matrix.per_class_iou();
    let accuracy = matrix.per_class_accuracy();
    if args.json {
        let json = SegJson {
            miou,
            pixel_acc,
            mean_acc,
            per_class: PerClass { names, values: &iou },
            per_class_acc: PerClass { names, values: &accuracy },
        };
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        println!(
            "Segmentation on {} split {}: {} images; pixel accuracy {pixel_acc:.4}",
            dataset.root.display(),
            dataset.split,
            dataset.records.len()
        );
        print_table(names, &[("IoU", &iou), ("Acc", &accuracy)], "mean", "in neither ground truth nor predictions");
    }
    Ok(ExitCode::SUCCESS)
}

/// How many problems or bad files an error message lists.
const MAX_LISTED: usize = 10;

fn more(count: usize) -> String {
    if count > MAX_LISTED {
        format!("\n  ... and {} more", count - MAX_LISTED)
    } else {
        String::new()
    }
}

fn refuse_problems(problems: &[Problem], what: &str) -> Result<()> {
    if problems.is_empty() {
        return Ok(());
    }
    let listed: Vec<String> = problems.iter().take(MAX_LISTED).map(|p| format!("  {p}")).collect();
    bail!(
        "{what}: {} record(s) have problems, so the ground truth is incomplete and cannot be scored \
         against (`twinhead data check` lists them):\n{}{}",
        problems.len(),
        listed.join("\n"),
        more(problems.len())
    )
}

fn metric_name(metric: Metric) -> &'static str {
    match metric {
        Metric::Voc07 => "voc07",
        Metric::Voc => "voc",
        Metric::Coco => "coco",
    }
}

/// Prints `names` with one column per metric, then the means, then the classes
/// left out (those without a value in the first column).
fn print_table(names: &[String], columns: &[(&str, &[Option<f64>])], mean_label: &str, left_out_reason: &str) {
    let width = names.iter().map(String::len).chain([mean_label.len(), "class".len()]).max().unwrap_or(0);
    let row = |label: &str, values: Vec<String>| {
        println!("{label:<width$}{}", values.iter().map(|v| format!("  {v:>7}")).collect::<String>());
    };
    let cell = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.4}"));
    row("class", columns.iter().map(|(h, _)| h.to_string()).collect());
    for (i, name) in names.iter().enumerate() {
        row(name, columns.iter().map(|(_, values)| cell(values[i])).collect());
    }
    row(mean_label, columns.iter().map(|(_, values)| cell(crate::eval::mean_of_defined(values))).collect());
    let left_out: Vec<&str> =
        names.iter().zip(columns[0].1).filter(|(_, v)| v.is_none()).map(|(n, _)| n.as_str()).collect();
    let counted = names.len() - left_out.len();
    println!("(mean over {counted} of {} classes)", names.len());
    if !left_out.is_empty() {
        println!("Left out of the mean ({left_out_reason}): {}", left_out.join(", "));
    }
}

/// Class name to value, in class order (serde_json's own map would sort by name).
struct PerClass<'a> {
    names: &'a [String],
    values: &'a [Option<f64>],
}

impl Serialize for PerClass<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.names.iter().zip(self.values))
    }
}

#[derive(serde::Serialize)]
struct DetJson<'a> {
    metric: &'static str,
    map: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    ap50: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ap75: Option<f64>,
    per_class: PerClass<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    per_class_ap50: Option<PerClass<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    per_class_ap75: Option<PerClass<'a>>,
}

#[derive(serde::Serialize)]
struct SegJson<'a> {
    miou: f64,
    pixel_acc: f64,
    mean_acc: f64,
    per_class: PerClass<'a>,
    per_class_acc: PerClass<'a>,
}
