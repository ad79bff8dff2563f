//! Predictions in the formats other tools read: COCO results JSON (with the
//! matching ground truth from `data export-coco`), the VOC devkit's
//! `comp4_det_<split>_<class>.txt` files, and ADE-encoded mask PNGs named like
//! the annotations. Used by `twinhead predict --format` and Inspect's export.
//! `track1` writes the CVPR23 Track1 submission of a three-task run.

pub mod coco;
pub mod csv;
pub mod dataset;
pub mod track1;
pub mod voc;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::ValueEnum;

use crate::data::coco::CocoIds;
use crate::model::{Task, TaskSet};
use crate::model::postprocess::Detection;
use crate::predictor::Prediction;

/// One output format of `predict` and the workbench's export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// Twinhead's own: per image `<id>.json`, `<id>_mask.png`, `<id>_overlay.png`, and `predictions.json`.
    Twinhead,
    /// `predictions.coco.json`: COCO results (image_id, category_id, bbox [x, y, w, h], score).
    Coco,
    /// `comp4_det_<split>_<class>.txt` per class, as the VOC devkit reads them.
    Voc,
    /// `masks/<id>.png`: ADE20K encoding (0 = unlabelled, class index + 1), what `eval seg --pred` reads.
    Png,
}

impl ExportFormat {
    /// The task whose predictions the format holds (`None`: whatever the network gives).
    pub fn task(self) -> Option<Task> {
        match self {
            Self::Twinhead => None,
            Self::Coco | Self::Voc => Some(Task::Det),
            Self::Png => Some(Task::Seg),
        }
    }
}

/// Refuses a format of a task the network has no head for (`tasks`), before anything is predicted.
pub fn check_formats(formats: &[ExportFormat], tasks: TaskSet) -> Result<()> {
    if let Some((format, task)) = formats.iter().find_map(|f| f.task().filter(|&t| !tasks.contains(t)).map(|t| (f, t))) {
        let name = format.to_possible_value().map_or_else(String::new, |v| v.get_name().to_string());
        bail!("format {name}: writes {task} results, and the network has no {task} head (its tasks: {})", String::from(tasks));
    }
    Ok(())
}

/// The predictions of one image, named by its id (the file stem).
pub struct ImagePrediction<'a> {
    pub id: &'a str,
    pub prediction: &'a Prediction,
}

impl ImagePrediction<'_> {
    pub fn detections(&self) -> &[Detection] {
        &self.prediction.detections
    }
}

/// How the standard formats name what they hold.
pub struct Naming<'a> {
    pub det_classes: &'a [String],
    /// The split in the VOC result files' names.
    pub voc_split: &'a str,
    /// The images' and classes' ids in COCO results.
    pub coco_ids: &'a CocoIds,
}

/// Writes the standard formats among `formats` (not `Twinhead`, which needs
/// the images for its overlays) into `out`; returns the paths written.
pub fn write_standard(formats: &[ExportFormat], out: &Path, images: &[ImagePrediction], naming: &Naming) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for format in formats {
        match format {
            ExportFormat::Twinhead => {}
            ExportFormat::Coco => {
                let path = out.join("predictions.coco.json");
                write_file(&path, serde_json::to_string(&coco::results(images, naming.coco_ids)?)?.as_bytes())?;
                written.push(path);
            }
            ExportFormat::Voc => written.extend(voc::write_comp4(out, naming.voc_split, naming.det_classes, images)?),
            ExportFormat::Png => {
                let dir = out.join("masks");
                std::fs::create_dir_all(&dir).with_context(|| format!("{}: cannot create", dir.display()))?;
                for image in images {
                    let path = dir.join(format!("{}.png", image.id));
                    let mask = image.prediction.mask.as_ref().with_context(|| format!("{}: no mask predicted", image.id))?;
                    mask.save(&path).with_context(|| format!("{}: cannot write", path.display()))?;
                    written.push(path);
                }
            }
        }
    }
    Ok(written)
}

pub(crate) fn write_file(path: &Path, contents: &[u8]) -> Result<()> {
    std::fs::write(path, contents).with_context(|| format!("{}: cannot write", path.display()))
}
