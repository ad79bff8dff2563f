//! YOLO text labels, the Ultralytics layout (Roboflow's exports too):
//! `images/<split>/*.jpg` with `labels/<split>/*.txt`, one `class cx cy w h`
//! line per box, normalised to 0–1; class names from `data.yaml`'s `names:`
//! (a list, or a map from index to name) or a `classes.txt`.
//!
//! An image without a label file is a background image (no boxes), as in
//! Ultralytics; how many there were is logged. Boxes become VOC corners
//! through the continuous-to-VOC conversion the loader inverts, so a box
//! round-trips to the rounding of its six written decimals.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use rayon::prelude::*;
use serde::Deserialize;

use super::ade::sub_folders;
use super::preprocess::xyxy_to_voc;
use super::classes::ClassList;
use super::problem::{log_skipped, split_checked, Problem};
use super::voc::{VocAnnotation, VocBox, VocDataset, VocObject, VocRecord};

/// Image extensions an Ultralytics dataset holds.
const IMAGE_EXTENSIONS: [&str; 4] = ["jpg", "jpeg", "png", "bmp"];

/// The files naming the classes, in the order they are looked for.
pub const CLASS_FILES: [&str; 3] = ["data.yaml", "dataset.yaml", "classes.txt"];

#[derive(Deserialize)]
struct DataYaml {
    names: Names,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Names {
    List(Vec<String>),
    Map(BTreeMap<usize, String>),
}

/// The class list of a YOLO root.
pub fn read_classes(root: &Path) -> Result<ClassList> {
    let Some(path) = CLASS_FILES.iter().map(|f| root.join(f)).find(|p| p.is_file()) else {
        bail!("{}: a YOLO dataset names its classes in {}: none found", root.display(), CLASS_FILES.join(" or "));
    };
    if path.extension().is_some_and(|e| e == "txt") {
        return ClassList::read_plain(&path);
    }
    let text = std::fs::read_to_string(&path).with_context(|| format!("{}: cannot read", path.display()))?;
    let yaml: DataYaml = serde_saphyr::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{}: no usable `names:` list: {e}", path.display()))?;
    let names = match yaml.names {
        Names::List(names) => names,
        Names::Map(map) => {
            for (expected, &index) in map.keys().enumerate() {
                if index != expected {
                    bail!("{}: `names:` must number classes 0, 1, 2, … without gaps; {expected} is missing", path.display());
                }
            }
            map.into_values().collect()
        }
    };
    if names.is_empty() {
        bail!("{}: `names:` is empty", path.display());
    }
    Ok(ClassList::new(names))
}

/// The splits of a YOLO root: the sub-folders of `images/`.
pub fn available_splits(root: &Path) -> Vec<String> {
    sub_folders(&root.join("images"))
}

/// Opens one split of a YOLO dataset rooted at `root`.
/// The images of a split folder, sorted.
pub fn image_files(image_dir: &Path) -> Result<Vec<PathBuf>> {
    let mut images: Vec<PathBuf> = std::fs::read_dir(image_dir)
        .with_context(|| format!("{}: cannot list", image_dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().and_then(|e| e.to_str()).is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str())))
        .collect();
    images.sort();
    Ok(images)
}

pub fn open(root: &Path, split: &str) -> Result<VocDataset> {
    let classes = read_classes(root)?;
    let split = [split, super::ade::canonical_split(split), short_split(split)]
        .into_iter()
        .find(|s| root.join("images").join(s).is_dir())
        .with_context(|| {
            format!("{}: split {split:?} not found (available splits: {})", root.join("images").display(), available_splits(root).join(", "))
        })?
        .to_string();
    let image_dir = root.join("images").join(&split);
    let label_dir = root.join("labels").join(&split);
    let images = image_files(&image_dir)?;
    let checked: Vec<Result<(VocRecord, bool), Problem>> = images
        .par_iter()
        .map(|image_path| {
            // The label file is found by the image's own name, UTF-8 or not;
            // the id only shows it.
            let stem = image_path.file_stem().unwrap_or_default();
            let id = stem.to_string_lossy().into_owned();
            let mut label_name = stem.to_os_string();
            label_name.push(".txt");
            let label_path = label_dir.join(label_name);
            let labelled = label_path.is_file();
            let annotation = if labelled { read_label_file(&label_path, image_path, &classes)? } else { blank_annotation(image_path)? };
            Ok((VocRecord { id, image_path: image_path.clone(), annotation_path: label_path, annotation }, labelled))
        })
        .collect();
    let mut problems = Vec::new();
    let (records, labelled): (Vec<VocRecord>, Vec<bool>) = split_checked(checked, &mut problems).into_iter().unzip();
    let background = labelled.iter().filter(|&&l| !l).count();
    if background > 0 {
        tracing::info!("YOLO {} split {split}: {background} image(s) without a label file, read as background", root.display());
    }
    log_skipped(&format!("YOLO {} split {split}", root.display()), &problems);
    Ok(VocDataset { root: root.to_path_buf(), split, classes, records, problems, listed: images.len(), file_ids: None })
}

/// `training` → `train`, `validation` → `val` (Ultralytics' names).
fn short_split(split: &str) -> &str {
    match split {
        "training" => "train",
        "validation" => "val",
        other => other,
    }
}

/// An annotation of `image` (read for its size) without boxes: a background image.
fn blank_annotation(image: &Path) -> Result<VocAnnotation, Problem> {
    let (width, height) = image::image_dimensions(image).map_err(|e| Problem::new(image, format!("image does not decode: {e}")))?;
    let filename = image.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    Ok(VocAnnotation { filename, width, height, depth: 3, objects: Vec::new() })
}

/// The boxes of the label file at `path` for `image`.
pub fn read_label_file(path: &Path, image: &Path, classes: &ClassList) -> Result<VocAnnotation, Problem> {
    let mut annotation = blank_annotation(image)?;
    let text = std::fs::read_to_string(path).map_err(|e| Problem::new(path, format!("cannot read labels: {e}")))?;
    annotation.objects = parse_labels(&text, classes, annotation.width, annotation.height).map_err(|reason| Problem::new(path, reason))?;
    Ok(annotation)
}

/// The boxes of one label file; the first bad line fails the file, named by its number.
fn parse_labels(text: &str, classes: &ClassList, width: u32, height: u32) -> Result<Vec<VocObject>, String> {
    let mut objects = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.is_empty() {
            continue;
        }
        let at = |reason: String| format!("line {}: {reason}", n + 1);
        if fields.len() != 5 {
            return Err(at(format!("expected 5 fields (class cx cy w h), found {}", fields.len())));
        }
        let class: usize = fields[0].parse().map_err(|_| at(format!("class {:?} is not an index", fields[0])))?;
        if class >= classes.len() {
            return Err(at(format!("class {class} is past the {} names (0..{})", classes.len(), classes.len() - 1)));
        }
        let mut v = [0f64; 4];
        for (slot, field) in v.iter_mut().zip(&fields[1..]) {
            *slot = field.parse().map_err(|_| at(format!("{field:?} is not a number")))?;
            if !(0.0..=1.0).contains(slot) {
                return Err(at(format!("coordinate {field} is outside 0-1 (YOLO labels are normalised)")));
            }
        }
        let [cx, cy, w, h] = v;
        if w <= 0.0 || h <= 0.0 {
            return Err(at(format!("box {w} x {h} has no area")));
        }
        let (fw, fh) = (width as f64, height as f64);
        let xyxy = [(cx - w / 2.0).max(0.0) * fw, (cy - h / 2.0).max(0.0) * fh, (cx + w / 2.0).min(1.0) * fw, (cy + h / 2.0).min(1.0) * fh];
        let bbox: VocBox = xyxy_to_voc(xyxy.map(|c| c as f32));
        objects.push(VocObject {
            name: classes.name(class).to_string(),
            class,
            pose: "Unspecified".into(),
            truncated: false,
            difficult: false,
            bbox,
        });
    }
    Ok(objects)
}

/// One YOLO label line for a VOC box in a `width`×`height` image (what `data synth --det-format yolo` writes).
pub fn label_line(class: usize, bbox: VocBox, width: u32, height: u32) -> String {
    let [x0, y0, x1, y1] = super::preprocess::voc_to_xyxy(bbox).map(f64::from);
    let (fw, fh) = (width as f64, height as f64);
    format!("{class} {:.6} {:.6} {:.6} {:.6}", (x0 + x1) / 2.0 / fw, (y0 + y1) / 2.0 / fh, (x1 - x0) / fw, (y1 - y0) / fh)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_round_trip_and_bad_lines_are_named() {
        let classes = ClassList::new(vec!["car".into(), "sign".into()]);
        let line = label_line(1, [11.0, 21.0, 40.0, 60.0], 64, 80);
        let objects = parse_labels(&format!("{line}\n\n"), &classes, 64, 80).unwrap();
        assert_eq!(objects[0].class, 1);
        for (got, want) in objects[0].bbox.iter().zip([11.0, 21.0, 40.0, 60.0]) {
            assert!((got - want).abs() < 1e-3, "{:?}", objects[0].bbox);
        }
        let err = |text: &str| parse_labels(text, &classes, 64, 80).unwrap_err();
        assert!(err("0 0.5 0.5 0.1 0.1\n2 0.5 0.5 0.1 0.1").contains("line 2: class 2 is past the 2 names"));
        assert!(err("0 1.5 0.5 0.1 0.1").contains("outside 0-1"));
        assert!(err("0 0.5 0.5 0.1").contains("expected 5 fields"));
        assert!(err("0 0.5 0.5 0.1 0.1 0.3 0.3").contains("found 7"));
    }

    #[test]
    fn names_come_from_a_list_or_a_map() {
        let dir = tempfile::tempdir().unwrap();
        let yaml = dir.path().join("data.yaml");
        std::fs::write(&yaml, "path: .\ntrain: images/train\nnames:\n  0: person\n  1: bicycle\n").unwrap();
        assert_eq!(read_classes(dir.path()).unwrap().names(), ["person", "bicycle"]);
        std::fs::write(&yaml, "names: [person, bicycle, car]\nnc: 3\n").unwrap();
        assert_eq!(read_classes(dir.path()).unwrap().len(), 3);
        std::fs::write(&yaml, "names:\n  0: person\n  2: car\n").unwrap();
        assert!(read_classes(dir.path()).unwrap_err().to_string().contains("1 is missing"));
        std::fs::write(&yaml, "nc: 3\n").unwrap();
        assert!(read_classes(dir.path()).unwrap_err().to_string().contains("data.yaml: no usable `names:`"));
    }
}
