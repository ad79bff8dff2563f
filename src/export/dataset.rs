//! Datasets written in other layouts: a detection dataset as COCO JSON or YOLO
//! text labels, a segmentation dataset as mask folders in the `ignore255`
//! encoding. `data synth --det-format/--seg-format` writes its sets this way,
//! so every reader is tested on the same content as the VOC and ADE readers.
//!
//! Images are hard-linked where the file system allows (copied otherwise).

use std::path::Path;

use anyhow::{Context, Result};

use crate::data::ade::AdeDataset;
use crate::data::masks::{MaskEncoding, CLASS_LIST_FILE};
use crate::data::voc::VocDataset;
use crate::data::{ade, yolo, Problem};
use crate::train::run_dir::write_atomic;

fn create_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create", dir.display()))
}

/// Links `from` to `to` (same bytes, no copy), or copies it.
fn link_or_copy(from: &Path, to: &Path) -> Result<()> {
    if std::fs::hard_link(from, to).is_err() {
        std::fs::copy(from, to).with_context(|| format!("{}: cannot copy to {}", from.display(), to.display()))?;
    }
    Ok(())
}

fn refuse_problems(what: &str, problems: &[Problem]) -> Result<()> {
    if let Some(first) = problems.first() {
        anyhow::bail!("{what}: {} record(s) with problems, first: {first}; fix them (see `data check`) before converting", problems.len());
    }
    Ok(())
}

/// Writes `splits` as a COCO dataset under `out`: `annotations/instances_<split>.json`
/// and `images/<split>/`, the boxes as `data export-coco` writes them.
pub fn write_coco(splits: &[&VocDataset], out: &Path) -> Result<()> {
    for dataset in splits {
        refuse_problems(&format!("{} split {}", dataset.root.display(), dataset.split), &dataset.problems)?;
        let images = out.join("images").join(&dataset.split);
        create_dir(&images)?;
        create_dir(&out.join("annotations"))?;
        for record in &dataset.records {
            let name = record.image_path.file_name().context("image without a file name")?;
            link_or_copy(&record.image_path, &images.join(name))?;
        }
        let json = super::coco::ground_truth(&dataset.records, &dataset.classes, &dataset.coco_ids())?;
        let path = out.join("annotations").join(format!("instances_{}.json", dataset.split));
        write_atomic(&path, serde_json::to_string(&json)?.as_bytes())?;
    }
    Ok(())
}

/// Writes `splits` as a YOLO dataset under `out`: `images/<split>/`,
/// `labels/<split>/<id>.txt` and `data.yaml`. YOLO labels have no difficult
/// flag: difficult boxes are left out, as training leaves them out (so a run
/// trains on the same targets; evaluation then counts them as background).
pub fn write_yolo(splits: &[&VocDataset], out: &Path) -> Result<()> {
    let Some(first) = splits.first() else { return Ok(()) };
    for dataset in splits {
        refuse_problems(&format!("{} split {}", dataset.root.display(), dataset.split), &dataset.problems)?;
        let (images, labels) = (out.join("images").join(&dataset.split), out.join("labels").join(&dataset.split));
        create_dir(&images)?;
        create_dir(&labels)?;
        for record in &dataset.records {
            let name = record.image_path.file_name().context("image without a file name")?;
            link_or_copy(&record.image_path, &images.join(name))?;
            let a = &record.annotation;
            let text: String = a.objects.iter().filter(|o| !o.difficult).map(|o| yolo::label_line(o.class, o.bbox, a.width, a.height) + "\n").collect();
            let stem = record.image_path.file_stem().context("image without a file name")?.to_string_lossy();
            write_atomic(&labels.join(format!("{stem}.txt")), text.as_bytes())?;
        }
    }
    let names: Vec<String> = first.classes.names().iter().map(|n| serde_json::to_string(n).expect("a string")).collect();
    let splits_yaml: String = splits.iter().map(|d| format!("{}: images/{}\n", yolo_key(&d.split), d.split)).collect();
    // No `path:`: Ultralytics then resolves the split folders against this file's folder,
    // from any working folder (it resolves `path: .` against its own).
    write_atomic(&out.join("data.yaml"), format!("{splits_yaml}names: [{}]\n", names.join(", ")).as_bytes())
}

/// Ultralytics' key for a split.
fn yolo_key(split: &str) -> &str {
    match split {
        "training" => "train",
        "validation" => "val",
        other => other,
    }
}

/// Writes `splits` as a `masks` dataset under `out`: `images/<split>/`,
/// `masks/<split>/<id>.png` in `encoding`, and `classes.txt`.
pub fn write_masks(splits: &[&AdeDataset], out: &Path, encoding: MaskEncoding) -> Result<()> {
    let Some(first) = splits.first() else { return Ok(()) };
    anyhow::ensure!(encoding != MaskEncoding::Palette, "masks are written as gray values (offset or ignore255)");
    for dataset in splits {
        refuse_problems(&format!("{} split {}", dataset.root.display(), dataset.split), &dataset.problems)?;
        let split = if dataset.split == ade::FLAT_SPLIT { String::new() } else { dataset.split.clone() };
        let (images, masks) = (out.join("images").join(&split), out.join("masks").join(&split));
        create_dir(&images)?;
        create_dir(&masks)?;
        let n = dataset.classes.len();
        for record in &dataset.records {
            let name = record.image_path.file_name().context("image without a file name")?;
            link_or_copy(&record.image_path, &images.join(name))?;
            let mut mask = record.read_mask(n).map_err(|p| anyhow::anyhow!("{p}"))?;
            for v in mask.iter_mut() {
                *v = match v.checked_sub(1) {
                    None => encoding.ignored(),
                    Some(class) => encoding.encode_class(class),
                };
            }
            let path = masks.join(format!("{}.png", record.id));
            mask.save_with_format(&path, image::ImageFormat::Png).with_context(|| format!("{}: cannot write", path.display()))?;
        }
    }
    first.classes.write_plain(&out.join(CLASS_LIST_FILE))
}
