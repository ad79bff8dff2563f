//! The VOC devkit's detection result files: one `comp4_det_<split>_<class>.txt`
//! per class (empty when nothing was found), lines `image_id score xmin ymin xmax ymax`
//! in VOC coordinates (1-based, inclusive).

use std::fmt::Write;
use std::path::{Path, PathBuf};

use anyhow::Result;

use super::{write_file, ImagePrediction};
use crate::data::preprocess::xyxy_to_voc;

pub fn write_comp4(out: &Path, split: &str, classes: &[String], images: &[ImagePrediction]) -> Result<Vec<PathBuf>> {
    let mut files = vec![String::new(); classes.len()];
    for image in images {
        for d in image.detections() {
            let [x0, y0, x1, y1] = xyxy_to_voc(d.bbox);
            // Shortest round-trip decimals: reading the files back gives the same numbers.
            let _ = writeln!(files[d.class], "{} {} {x0} {y0} {x1} {y1}", image.id, d.score);
        }
    }
    classes
        .iter()
        .zip(files)
        .map(|(class, text)| {
            let path = out.join(format!("comp4_det_{split}_{class}.txt"));
            write_file(&path, text.as_bytes())?;
            Ok(path)
        })
        .collect()
}
