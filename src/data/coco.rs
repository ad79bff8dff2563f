//! COCO detection JSON (`instances_<split>.json`): COCO itself, TT100K,
//! Objects365 and every annotation tool's export.
//!
//! The file is parsed as a stream into the few fields used (serde skips
//! `segmentation` polygons and everything else without building them), so
//! memory grows with the boxes kept, not with the file. Records come out as the
//! VOC reader's, so everything downstream is the same for both formats.
//!
//! Boxes keep their corners: `[x, y, w, h]` is the box `[x, y, x + w, y + h]`,
//! the convention `data export-coco` writes and Twinhead's COCO metric reads,
//! so `eval det --metric coco` on a COCO dataset scores the file's own boxes,
//! as pycocotools does. `iscrowd` boxes are kept as VOC's difficult ones:
//! neither a positive nor a false positive.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use rayon::prelude::*;
use serde::Deserialize;

use super::classes::ClassList;
use super::coco_ids::{read_file, CocoCategory};
pub use super::coco_ids::{CocoId, CocoIds};
use super::problem::{log_skipped, split_checked, Problem};
use super::voc::{check_image_header, VocAnnotation, VocDataset, VocObject, VocRecord};

#[derive(Deserialize)]
struct CocoFile {
    images: Vec<CocoImage>,
    #[serde(default)]
    annotations: Vec<CocoAnnotation>,
    categories: Vec<CocoCategory>,
}

#[derive(Deserialize)]
struct CocoImage {
    id: CocoId,
    file_name: String,
    width: u32,
    height: u32,
}

#[derive(Deserialize)]
struct CocoAnnotation {
    #[serde(default)]
    id: Option<CocoId>,
    image_id: CocoId,
    category_id: CocoId,
    bbox: [f64; 4],
    #[serde(default)]
    iscrowd: u8,
}

/// The annotation files of a COCO root: `annotations/*.json`, else
/// `instances_*.json` in the root itself, by split name
/// (`instances_train2017.json` is `train2017`).
pub fn annotation_files(root: &Path) -> BTreeMap<String, PathBuf> {
    let mut files = BTreeMap::new();
    for (dir, in_root) in [(root.join("annotations"), false), (root.to_path_buf(), true)] {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else { continue };
            let split = stem.strip_prefix("instances_");
            if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json")) && (split.is_some() || !in_root) {
                files.entry(split.unwrap_or(stem).to_string()).or_insert(path);
            }
        }
        if !files.is_empty() {
            break;
        }
    }
    files
}

/// The annotation file of `split`: its exact name, else the one split that
/// starts with it (`train` finds `train2017`).
pub fn split_file(root: &Path, split: &str) -> Result<(String, PathBuf)> {
    let files = annotation_files(root);
    if let Some(path) = files.get(split) {
        return Ok((split.to_string(), path.clone()));
    }
    let matching: Vec<(&String, &PathBuf)> = files.iter().filter(|(name, _)| name.starts_with(split)).collect();
    match matching.as_slice() {
        [(name, path)] => Ok(((*name).clone(), (*path).clone())),
        _ => bail!(
            "{}: no COCO annotation file for split {split:?} (found: {})",
            root.display(),
            if files.is_empty() { "none".to_string() } else { files.keys().cloned().collect::<Vec<_>>().join(", ") }
        ),
    }
}

/// Where a split's images are: `images/<split>/`, `<split>/` or `images/`.
fn image_folder(root: &Path, split: &str) -> PathBuf {
    [root.join("images").join(split), root.join(split), root.join("images")]
        .into_iter()
        .find(|p| p.is_dir())
        .unwrap_or_else(|| root.to_path_buf())
}

/// Opens one split of a COCO dataset rooted at `root`.
pub fn open(root: &Path, split: &str) -> Result<VocDataset> {
    let (split, path) = split_file(root, split)?;
    let file: CocoFile = read_file(&path)?;
    let images_dir = image_folder(root, &split);
    let listed = file.images.len();
    let (classes, records, problems, file_ids) = to_records(file, &path, &images_dir)?;
    log_skipped(&format!("COCO {} split {split}", path.display()), &problems);
    Ok(VocDataset { root: root.to_path_buf(), split, classes, records, problems, listed, file_ids: Some(file_ids) })
}

/// How many images a COCO file lists (a pass over it that keeps nothing).
pub fn count_images(path: &Path) -> Result<usize> {
    #[derive(Deserialize)]
    struct Images {
        images: Vec<serde::de::IgnoredAny>,
    }
    Ok(read_file::<Images>(path)?.images.len())
}

/// The records of `file`, each image checked and its boxes resolved; an image
/// with a bad annotation is left out whole (its truth would be incomplete).
fn to_records(file: CocoFile, path: &Path, images_dir: &Path) -> Result<(ClassList, Vec<VocRecord>, Vec<Problem>, CocoIds)> {
    let mut problems = Vec::new();
    let mut class_of: HashMap<CocoId, usize> = HashMap::new();
    let mut names = Vec::with_capacity(file.categories.len());
    let categories: Vec<CocoId> = file.categories.iter().map(|c| c.id.clone()).collect();
    for category in file.categories {
        if class_of.contains_key(&category.id) {
            bail!("{}: category id {} is listed twice", path.display(), category.id);
        }
        if names.contains(&category.name) {
            bail!("{}: category name {:?} is listed twice", path.display(), category.name);
        }
        class_of.insert(category.id, names.len());
        names.push(category.name);
    }
    if names.is_empty() {
        bail!("{}: no categories", path.display());
    }
    let classes = ClassList::new(names);
    let mut index_of: HashMap<CocoId, usize> = HashMap::with_capacity(file.images.len());
    let mut images: Vec<(CocoImage, Vec<VocObject>, Option<String>)> = Vec::with_capacity(file.images.len());
    for image in file.images {
        if index_of.contains_key(&image.id) {
            problems.push(Problem::new(path, format!("image id {} is listed twice ({})", image.id, image.file_name)));
            continue;
        }
        index_of.insert(image.id.clone(), images.len());
        images.push((image, Vec::new(), None));
    }
    for (n, a) in file.annotations.into_iter().enumerate() {
        let name = match &a.id {
            Some(id) => format!("annotation {id}"),
            None => format!("annotations[{n}]"),
        };
        let Some(&index) = index_of.get(&a.image_id) else {
            problems.push(Problem::new(path, format!("{name}: image id {} is not in images", a.image_id)));
            continue;
        };
        let (image, objects, bad) = &mut images[index];
        if bad.is_some() {
            continue;
        }
        match resolve(&a, image, &class_of, &classes) {
            Ok(object) => objects.push(object),
            Err(reason) => *bad = Some(format!("{name} of image {} ({}): {reason}", image.id, image.file_name)),
        }
    }
    let checked: Vec<Result<(VocRecord, CocoId), Problem>> = images
        .into_par_iter()
        .map(|(image, objects, bad)| {
            if let Some(reason) = bad {
                return Err(Problem::new(path, reason));
            }
            let image_path = images_dir.join(&image.file_name);
            check_image_header(&image_path, image.width, image.height)?;
            let id = Path::new(&image.file_name).with_extension("").to_string_lossy().into_owned();
            let annotation = VocAnnotation { filename: image.file_name, width: image.width, height: image.height, depth: 3, objects };
            Ok((VocRecord { id, image_path, annotation_path: path.to_path_buf(), annotation }, image.id))
        })
        .collect();
    let (records, image_ids): (Vec<VocRecord>, Vec<CocoId>) = split_checked(checked, &mut problems).into_iter().unzip();
    let images = records.iter().map(|r| r.id.clone()).zip(image_ids).collect();
    Ok((classes, records, problems, CocoIds::from_parts(images, categories)))
}

/// Boxes may reach past the image by this much (rounding in converters), and are clipped to it.
const EDGE_TOLERANCE: f64 = 1.0;

fn resolve(a: &CocoAnnotation, image: &CocoImage, class_of: &HashMap<CocoId, usize>, classes: &ClassList) -> Result<VocObject, String> {
    let class = *class_of.get(&a.category_id).ok_or_else(|| format!("category id {} is not in categories", a.category_id))?;
    let [x, y, w, h] = a.bbox;
    if !(w > 0.0 && h > 0.0) {
        return Err(format!("box {:?} has no area (w and h must be above 0)", a.bbox));
    }
    let (width, height) = (image.width as f64, image.height as f64);
    if x < -EDGE_TOLERANCE || y < -EDGE_TOLERANCE || x + w > width + EDGE_TOLERANCE || y + h > height + EDGE_TOLERANCE {
        return Err(format!("box {:?} lies outside the {}x{} image", a.bbox, image.width, image.height));
    }
    let bbox = [x.max(0.0), y.max(0.0), (x + w).min(width), (y + h).min(height)].map(|v| v as f32);
    Ok(VocObject {
        name: classes.name(class).to_string(),
        class,
        pose: "Unspecified".into(),
        truncated: false,
        difficult: a.iscrowd != 0,
        bbox,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_image(dir: &Path, name: &str, w: u32, h: u32) {
        std::fs::create_dir_all(dir).unwrap();
        image::RgbImage::new(w, h).save(dir.join(name)).unwrap();
    }

    #[test]
    fn reads_boxes_classes_and_crowds_and_names_every_bad_annotation() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for name in ["a.png", "b.png", "c.png", "d.png"] {
            write_image(&root.join("images").join("val"), name, 20, 10);
        }
        let json = r#"{"images": [
              {"id": 0, "file_name": "a.png", "width": 20, "height": 10},
              {"id": 1, "file_name": "b.png", "width": 20, "height": 10},
              {"id": 2, "file_name": "c.png", "width": 20, "height": 10},
              {"id": 3, "file_name": "d.png", "width": 20, "height": 10},
              {"id": 3, "file_name": "e.png", "width": 20, "height": 10}],
            "annotations": [
              {"id": 10, "image_id": 0, "category_id": 44, "bbox": [0, 1, 5, 4], "iscrowd": 0, "segmentation": [[1, 2, 3]]},
              {"id": 11, "image_id": 0, "category_id": 0, "bbox": [2, 2, 3, 3], "iscrowd": 1},
              {"id": 12, "image_id": 1, "category_id": 7, "bbox": [1, 1, 2, 2]},
              {"id": 13, "image_id": 2, "category_id": 0, "bbox": [1, 1, 0, 2]},
              {"id": 14, "image_id": 3, "category_id": 0, "bbox": [15, 1, 9, 2]},
              {"id": 15, "image_id": 99, "category_id": 0, "bbox": [1, 1, 2, 2]}],
            "categories": [{"id": 44, "name": "stop"}, {"id": 0, "name": "speed 30"}]}"#;
        std::fs::create_dir_all(root.join("annotations")).unwrap();
        std::fs::write(root.join("annotations").join("instances_val.json"), json).unwrap();
        let dataset = open(root, "val").unwrap();
        assert_eq!(dataset.classes.names(), ["stop", "speed 30"], "categories in file order, any ids");
        assert_eq!(dataset.records.len(), 1);
        let a = &dataset.records[0].annotation;
        assert_eq!(a.objects[0].bbox, [0.0, 1.0, 5.0, 5.0]);
        assert_eq!((a.objects[0].class, a.objects[1].class), (0, 1));
        assert!(a.objects[1].difficult && !a.objects[0].difficult, "iscrowd is difficult");
        let reasons: Vec<&str> = dataset.problems.iter().map(|p| p.reason.as_str()).collect();
        assert_eq!(dataset.problems.len(), 5, "{reasons:#?}");
        assert!(reasons.iter().any(|r| r.contains("image id 3 is listed twice")));
        assert!(reasons.iter().any(|r| r.contains("annotation 12") && r.contains("category id 7 is not in categories")));
        assert!(reasons.iter().any(|r| r.contains("annotation 13") && r.contains("no area")));
        assert!(reasons.iter().any(|r| r.contains("annotation 14") && r.contains("outside the 20x10 image")));
        assert!(reasons.iter().any(|r| r.contains("annotation 15") && r.contains("image id 99 is not in images")));
    }

    #[test]
    fn a_file_that_is_not_coco_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("instances_train.json"), r#"{"images": [{"id": 1}]}"#).unwrap();
        let err = open(dir.path(), "train").unwrap_err().to_string();
        assert!(err.contains("instances_train.json: not a COCO detection file") && err.contains("images[0]"), "{err}");
        let err = open(dir.path(), "val").unwrap_err().to_string();
        assert!(err.contains("no COCO annotation file for split \"val\" (found: train)"), "{err}");
    }
}
