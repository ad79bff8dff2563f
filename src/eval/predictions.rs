//! Reading prediction files and checking them against the split they claim to
//! predict: detections as a JSON list or a folder of VOC devkit result files,
//! segmentation as label PNGs. Every error names the file and the entry.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, ensure, Context, Result};
use image::GrayImage;

use super::det::Detection;
use crate::data::ade::read_mask;
use crate::data::coco::{CocoId, CocoIds};
use crate::data::voc::VocBox;
use crate::data::ClassList;

/// What a detection must refer to: the split's images (id to `Detection::image`),
/// the dataset's classes, and the ids COCO results give both.
pub struct DetTarget<'a> {
    pub split: &'a str,
    pub image_ids: &'a HashMap<String, usize>,
    pub classes: &'a ClassList,
    pub coco_ids: &'a CocoIds,
}

/// Reads detections from `path`: a folder is read as VOC devkit result files,
/// anything else as a JSON list.
pub fn read_detections(path: &Path, target: &DetTarget) -> Result<Vec<Detection>> {
    if path.is_dir() {
        read_comp4_folder(path, target)
    } else {
        read_json(path, target)
    }
}

/// One entry of the JSON list, as written.
#[derive(serde::Deserialize)]
struct JsonDetection {
    image_id: String,
    category: String,
    bbox: [f64; 4],
    score: f64,
}

/// One entry of a COCO results list: `bbox` is `[x, y, w, h]` made from VOC
/// corners as `[xmin, ymin, xmax − xmin, ymax − ymin]` (what `predict --format
/// coco` writes), the ids those of [`DetTarget::coco_ids`].
#[derive(serde::Deserialize)]
struct CocoDetection {
    image_id: CocoId,
    category_id: CocoId,
    bbox: [f64; 4],
    score: f64,
}

/// `[{"image_id": "000005", "category": "chair", "bbox": [xmin, ymin, xmax, ymax], "score": 0.87}, ...]`,
/// or COCO results (entries with `category_id`, see [`CocoDetection`]).
fn read_json(path: &Path, target: &DetTarget) -> Result<Vec<Detection>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("{}: cannot read prediction file", path.display()))?;
    // Parse the list first, then each entry, so an error can say which entry.
    let not_a_list = || format!("{}: not a JSON list of detections", path.display());
    let entries: Vec<serde_json::Value> = match serde_json::from_str(&text).with_context(not_a_list)? {
        serde_json::Value::Array(entries) => entries,
        // `twinhead predict`'s predictions.json: {"det": [...], "seg": {...}}.
        serde_json::Value::Object(mut object) if object.contains_key("det") => {
            serde_json::from_value(object.remove("det").unwrap_or_default()).with_context(not_a_list)?
        }
        _ => bail!("{}", not_a_list()),
    };
    let is_coco = entries.first().is_some_and(|e| e.get("category_id").is_some());
    let coco_images: HashMap<&CocoId, usize> = if is_coco {
        target.image_ids.iter().filter_map(|(id, &i)| Some((target.coco_ids.image(id)?, i))).collect()
    } else {
        HashMap::new()
    };
    entries
        .into_iter()
        .enumerate()
        .map(|(i, value)| {
            let where_ = || format!("{}: entry {}", path.display(), i + 1);
            if is_coco {
                let entry: CocoDetection = serde_json::from_value(value).with_context(where_)?;
                let class = target.class_by_coco_id(&entry.category_id).with_context(where_)?;
                let image = coco_images
                    .get(&entry.image_id)
                    .copied()
                    .ok_or_else(|| anyhow!("unknown image_id {} (not in split {:?})", entry.image_id, target.split))
                    .with_context(where_)?;
                let [x, y, w, h] = entry.bbox;
                let (bbox, score) = check_box([x, y, x + w, y + h], entry.score).with_context(where_)?;
                Ok(Detection { image, class, bbox, score })
            } else {
                let entry: JsonDetection = serde_json::from_value(value).with_context(where_)?;
                let class = target.class(&entry.category).with_context(where_)?;
                let image = target.image(&entry.image_id).with_context(where_)?;
                let (bbox, score) = check_box(entry.bbox, entry.score).with_context(where_)?;
                Ok(Detection { image, class, bbox, score })
            }
        })
        .collect()
}

/// A folder of `comp4_det_<split>_<class>.txt` files, lines `image_id score xmin ymin xmax ymax`.
/// A class without a file has no detections; other files are not looked at.
fn read_comp4_folder(dir: &Path, target: &DetTarget) -> Result<Vec<Detection>> {
    let prefix = format!("comp4_det_{}_", target.split);
    let mut files: Vec<(PathBuf, String)> = std::fs::read_dir(dir)
        .with_context(|| format!("{}: cannot read prediction folder", dir.display()))?
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            let name = path.file_name()?.to_str()?;
            let class = name.strip_prefix(&prefix)?.strip_suffix(".txt")?.to_string();
            Some((path, class))
        })
        .collect();
    files.sort();
    ensure!(
        !files.is_empty(),
        "{}: no detection files for split {:?} (expected {prefix}<class>.txt)",
        dir.display(),
        target.split
    );
    let mut detections = Vec::new();
    for (path, class_name) in files {
        let class = target.class(&class_name).with_context(|| format!("{}: file name", path.display()))?;
        let text = std::fs::read_to_string(&path).with_context(|| format!("{}: cannot read", path.display()))?;
        for (line_no, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let detection =
                parse_comp4_line(line, class, target).with_context(|| format!("{}:{}", path.display(), line_no + 1))?;
            detections.push(detection);
        }
    }
    Ok(detections)
}

fn parse_comp4_line(line: &str, class: usize, target: &DetTarget) -> Result<Detection> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let [image_id, numbers @ ..] = fields.as_slice() else { bail!("empty line") };
    ensure!(numbers.len() == 5, "expected 6 fields `image_id score xmin ymin xmax ymax`, found {}", fields.len());
    let mut values = [0.0f64; 5];
    for (value, text) in values.iter_mut().zip(numbers) {
        *value = text.parse().map_err(|_| anyhow!("{text:?} is not a number"))?;
    }
    let image = target.image(image_id)?;
    let (bbox, score) = check_box([values[1], values[2], values[3], values[4]], values[0])?;
    Ok(Detection { image, class, bbox, score })
}

impl DetTarget<'_> {
    fn class(&self, name: &str) -> Result<usize> {
        self.classes
            .index_of(name)
            .ok_or_else(|| anyhow!("unknown class {name:?} (classes: {})", self.classes.names().join(", ")))
    }

    fn class_by_coco_id(&self, id: &CocoId) -> Result<usize> {
        self.coco_ids.class_of(id).ok_or_else(|| {
            let known: Vec<String> = self.coco_ids.categories().iter().map(CocoId::to_string).collect();
            anyhow!("unknown category_id {id} (the dataset's categories: {})", known.join(", "))
        })
    }

    fn image(&self, id: &str) -> Result<usize> {
        self.image_ids
            .get(id)
            .copied()
            .ok_or_else(|| anyhow!("unknown image id {id:?} (not in split {:?})", self.split))
    }
}

/// Rejects non-finite numbers and inverted boxes (a likely `[x, y, w, h]` mix-up).
/// VOC boxes are pixel-inclusive (width `xmax − xmin + 1`), so a box under one
/// pixel tall, as a detector may predict, has `ymax` up to 1 below `ymin`.
fn check_box(bbox: [f64; 4], score: f64) -> Result<(VocBox, f32)> {
    ensure!(bbox.iter().all(|v| v.is_finite()), "box {bbox:?} has a non-finite coordinate");
    ensure!(score.is_finite(), "score {score} is not finite");
    let [x0, y0, x1, y1] = bbox;
    ensure!(
        x1 - x0 + 1.0 >= 0.0 && y1 - y0 + 1.0 >= 0.0,
        "box {bbox:?} is not [xmin, ymin, xmax, ymax] (max more than a pixel below min)"
    );
    Ok((bbox.map(|v| v as f32), score as f32))
}

/// Reads the prediction mask for the ground-truth mask `gt_path` from `pred_dir`
/// (same file name) and checks it has the ground truth's `size` and valid labels.
pub fn read_prediction_mask(
    pred_dir: &Path,
    gt_path: &Path,
    size: (u32, u32),
    num_classes: usize,
) -> Result<GrayImage> {
    let name = gt_path.file_name().ok_or_else(|| anyhow!("{}: mask path has no file name", gt_path.display()))?;
    let path = pred_dir.join(name);
    if !path.is_file() {
        bail!("{}: prediction mask is missing (one PNG per annotation, named like it)", path.display());
    }
    let mask = read_mask(&path, num_classes).map_err(|problem| anyhow!("{problem}"))?;
    if mask.dimensions() != size {
        bail!(
            "{}: prediction is {}x{} but the annotation is {}x{}",
            path.display(),
            mask.width(),
            mask.height(),
            size.0,
            size.1
        );
    }
    Ok(mask)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target_parts() -> (HashMap<String, usize>, ClassList) {
        let ids = HashMap::from([("000005".to_string(), 0), ("000007".to_string(), 1)]);
        (ids, ClassList::new(vec!["cat".into(), "chair".into()]))
    }

    fn read(path: &Path) -> Result<Vec<Detection>> {
        let (ids, classes) = target_parts();
        let coco_ids = CocoIds::numbered(ids.keys().map(String::as_str), classes.len());
        read_detections(path, &DetTarget { split: "test", image_ids: &ids, classes: &classes, coco_ids: &coco_ids })
    }

    fn error(path: &Path) -> String {
        format!("{:#}", read(path).unwrap_err())
    }

    #[test]
    fn json_list_reads_and_names_bad_entries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pred.json");
        let entry = |id: &str, cat: &str, bbox: &str| {
            format!(r#"{{"image_id": "{id}", "category": "{cat}", "bbox": {bbox}, "score": 0.5}}"#)
        };
        let good = entry("000007", "chair", "[1, 2, 30.5, 40]");
        std::fs::write(&path, format!("[{good}]")).unwrap();
        assert_eq!(
            read(&path).unwrap(),
            vec![Detection { image: 1, class: 1, bbox: [1.0, 2.0, 30.5, 40.0], score: 0.5 }]
        );

        let cases = [
            (format!("[{good},"), "not a JSON list"),
            (r#"{"image_id": "000005"}"#.to_string(), "not a JSON list"),
            (format!("[{good}, {}]", entry("000005", "dog", "[1, 2, 3, 4]")), "entry 2: unknown class \"dog\""),
            (format!("[{}]", entry("999999", "cat", "[1, 2, 3, 4]")), "entry 1: unknown image id \"999999\""),
            (format!("[{}]", entry("000005", "cat", "[10, 2, 3, 4]")), "entry 1: box [10.0, 2.0, 3.0, 4.0] is not"),
            (format!("[{}]", entry("000005", "cat", "[1, 2, 3]")), "entry 1: "),
            (
                r#"[{"image_id": "000005", "category": "cat", "bbox": [1, 2, 3, 4]}]"#.to_string(),
                "missing field `score`",
            ),
        ];
        for (text, expected) in cases {
            std::fs::write(&path, &text).unwrap();
            let err = error(&path);
            assert!(err.contains("pred.json") && err.contains(expected), "{text} -> {err}");
        }
    }

    #[test]
    fn coco_results_and_predict_output_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("coco.json");
        // COCO [x, y, w, h]: VOC [x, y, x + w, y + h]; "000007" is image_id 7.
        std::fs::write(&path, r#"[{"image_id": 7, "category_id": 2, "bbox": [1, 2, 29.5, 38], "score": 0.5}]"#).unwrap();
        assert_eq!(read(&path).unwrap(), vec![Detection { image: 1, class: 1, bbox: [1.0, 2.0, 30.5, 40.0], score: 0.5 }]);
        for (text, expected) in [
            (r#"[{"image_id": 8, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 1}]"#, "unknown image_id 8"),
            (r#"[{"image_id": 7, "category_id": 0, "bbox": [0, 0, 1, 1], "score": 1}]"#, "unknown category_id 0 (the dataset's categories: 1, 2)"),
            (r#"[{"image_id": 7, "category_id": 1, "bbox": [5, 0, -3, 1], "score": 1}]"#, "is not [xmin, ymin, xmax, ymax]"),
        ] {
            std::fs::write(&path, text).unwrap();
            let err = error(&path);
            assert!(err.contains("coco.json: entry 1") && err.contains(expected), "{text} -> {err}");
        }
        assert_eq!(CocoId::of_image("000005"), CocoId::Number(5));
        assert_eq!(CocoId::of_image("2008_000123"), CocoId::Text("2008_000123".into()));
        // `predict`'s predictions.json: its "det" list.
        let det = r#"{"det": [{"image_id": "000005", "category": "cat", "bbox": [1, 2, 3, 4], "score": 0.5}], "seg": {}}"#;
        std::fs::write(&path, det).unwrap();
        assert_eq!(read(&path).unwrap().len(), 1);
    }

    #[test]
    fn coco_results_are_read_with_the_dataset_files_own_ids() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("instances_test.json");
        let listed = r#"{"images": [{"id": 40, "file_name": "000005.jpg"}, {"id": "b7", "file_name": "sub/000007.png"}],
            "categories": [{"id": 0, "name": "chair"}, {"id": 9, "name": "cat"}]}"#;
        std::fs::write(&file, listed).unwrap();
        let (ids, classes) = target_parts();
        let coco_ids = CocoIds::read(&file, classes.names()).unwrap();
        assert_eq!(coco_ids.categories(), [CocoId::Number(9), CocoId::Number(0)], "matched by name, in the class list's order");
        let path = dir.path().join("coco.json");
        std::fs::write(&path, r#"[{"image_id": "b7", "category_id": 0, "bbox": [1, 2, 29.5, 38], "score": 0.5}]"#).unwrap();
        let target = DetTarget { split: "test", image_ids: &ids, classes: &classes, coco_ids: &coco_ids };
        assert_eq!(read_detections(&path, &target).unwrap(), vec![Detection { image: 1, class: 1, bbox: [1.0, 2.0, 30.5, 40.0], score: 0.5 }]);
        // The numbering of other formats is not this file's.
        std::fs::write(&path, r#"[{"image_id": 7, "category_id": 2, "bbox": [1, 2, 3, 4], "score": 0.5}]"#).unwrap();
        let err = format!("{:#}", read_detections(&path, &target).unwrap_err());
        assert!(err.contains("unknown category_id 2 (the dataset's categories: 9, 0)"), "{err}");
        let err = CocoIds::read(&file, &["dog".to_string()]).unwrap_err().to_string();
        assert!(err.contains("instances_test.json: no category named \"dog\" (categories: chair, cat)"), "{err}");
    }

    #[test]
    fn comp4_folder_reads_and_names_bad_lines() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("comp4_det_test_cat.txt");
        std::fs::write(&file, "000005 0.9 1 2 3 4\n\n000007 0.25 5 6 7 8\n").unwrap();
        // Another split's file and unrelated files are not read.
        std::fs::write(dir.path().join("comp4_det_val_dog.txt"), "garbage").unwrap();
        std::fs::write(dir.path().join("notes.md"), "hello").unwrap();
        let dets = read(dir.path()).unwrap();
        assert_eq!(dets.len(), 2);
        assert_eq!(dets[1], Detection { image: 1, class: 0, bbox: [5.0, 6.0, 7.0, 8.0], score: 0.25 });

        std::fs::write(&file, "000005 0.9 1 2 3\n").unwrap();
        assert!(error(dir.path()).contains("comp4_det_test_cat.txt:1: expected 6 fields"));
        std::fs::write(&file, "000005 0.9 1 2 3 4\n000006 0.9 1 2 3 4\n").unwrap();
        assert!(error(dir.path()).contains("comp4_det_test_cat.txt:2: unknown image id \"000006\""));
        std::fs::write(&file, "000005 high 1 2 3 4\n").unwrap();
        assert!(error(dir.path()).contains("\"high\" is not a number"));
        std::fs::write(&file, "").unwrap();
        std::fs::write(dir.path().join("comp4_det_test_dog.txt"), "").unwrap();
        let err = error(dir.path());
        assert!(err.contains("comp4_det_test_dog.txt") && err.contains("unknown class \"dog\""), "{err}");

        let empty = tempfile::tempdir().unwrap();
        assert!(error(empty.path()).contains("no detection files for split \"test\""));
    }
}
