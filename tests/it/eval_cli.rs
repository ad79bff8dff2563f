//! `twinhead eval det|seg` end to end: tiny VOC and ADE trees in a temp folder,
//! the built binary, its JSON output, tables and error exits.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};
use twinhead::data::voc::{annotation_xml, VocAnnotation, VocObject};

struct Output {
    code: i32,
    stdout: String,
    stderr: String,
}

fn twinhead(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_twinhead")).args(args).output().expect("binary runs");
    Output {
        code: out.status.code().expect("exit code"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn json_of(out: &Output) -> Value {
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stdout))
}

fn close(v: &Value, expected: f64) -> bool {
    v.as_f64().is_some_and(|v| (v - expected).abs() < 1e-9)
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

// ------------------------------------------------------------------ VOC tree

/// (id, width, height, objects as (class, box, difficult))
type Image = (&'static str, u32, u32, Vec<(&'static str, [f32; 4], bool)>);

fn voc_images() -> Vec<Image> {
    vec![
        ("000001", 64, 48, vec![("dog", [5.0, 5.0, 30.0, 40.0], false), ("chair", [35.0, 10.0, 60.0, 45.0], false)]),
        ("000002", 80, 60, vec![("dog", [10.0, 10.0, 50.0, 50.0], false), ("person", [2.0, 2.0, 20.0, 20.0], true)]),
        ("000003", 50, 50, vec![("cat", [5.0, 5.0, 45.0, 45.0], false)]),
    ]
}

fn write_voc(root: &Path, images: &[Image]) {
    for sub in ["Annotations", "JPEGImages", "ImageSets/Main"] {
        std::fs::create_dir_all(root.join(sub)).unwrap();
    }
    for (id, width, height, objects) in images {
        let annotation = VocAnnotation {
            filename: format!("{id}.jpg"),
            width: *width,
            height: *height,
            depth: 3,
            objects: objects
                .iter()
                .map(|(name, bbox, difficult)| VocObject {
                    name: name.to_string(),
                    class: 0,
                    pose: "Unspecified".into(),
                    truncated: false,
                    difficult: *difficult,
                    bbox: *bbox,
                })
                .collect(),
        };
        std::fs::write(root.join("Annotations").join(format!("{id}.xml")), annotation_xml(&annotation, "test"))
            .unwrap();
        image::RgbImage::new(*width, *height).save(root.join("JPEGImages").join(format!("{id}.jpg"))).unwrap();
    }
    let ids: Vec<&str> = images.iter().map(|(id, ..)| *id).collect();
    std::fs::write(root.join("ImageSets/Main/test.txt"), ids.join("\n") + "\n").unwrap();
}

/// Every object (difficult ones too) as a detection with score 1.
fn ground_truth_as_json(images: &[Image]) -> Value {
    let list: Vec<Value> = images
        .iter()
        .flat_map(|(id, _, _, objects)| {
            objects
                .iter()
                .map(move |(name, bbox, _)| json!({"image_id": id, "category": name, "bbox": bbox, "score": 1.0}))
        })
        .collect();
    Value::Array(list)
}

fn det(voc: &Path, pred: &Path, metric: &str, extra: &[&str]) -> Output {
    let mut args =
        vec!["eval", "det", "--voc", path_str(voc), "--split", "test", "--pred", path_str(pred), "--metric", metric];
    args.extend(extra);
    twinhead(&args)
}

#[test]
fn perfect_json_predictions_score_one_with_every_metric() {
    let dir = tempfile::tempdir().unwrap();
    let voc = dir.path().join("voc");
    write_voc(&voc, &voc_images());
    let pred = dir.path().join("pred.json");
    std::fs::write(&pred, ground_truth_as_json(&voc_images()).to_string()).unwrap();
    for metric in ["voc07", "voc", "coco"] {
        let out = json_of(&det(&voc, &pred, metric, &["--json"]));
        assert_eq!(out["metric"], metric);
        assert!(close(&out["map"], 1.0), "{metric}: {out}");
        let per_class = out["per_class"].as_object().unwrap();
        assert_eq!(per_class.len(), 20);
        for class in ["dog", "chair", "cat"] {
            assert!(close(&per_class[class], 1.0), "{metric} {class}: {out}");
        }
        // Only difficult objects, or none: left out of the mean.
        assert!(per_class["person"].is_null() && per_class["aeroplane"].is_null(), "{out}");
        if metric == "coco" {
            assert!(close(&out["ap50"], 1.0) && close(&out["ap75"], 1.0), "{out}");
            assert!(close(&out["per_class_ap50"]["dog"], 1.0), "{out}");
        } else {
            assert!(out.get("ap50").is_none(), "{out}");
        }
    }
}

/// comp4 files: perfect except a dog false positive on 000003 that outscores both dogs.
fn write_comp4(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let files = [
        ("dog", "000003 0.99 5 5 45 45\n000001 0.9 5 5 30 40\n000002 0.8 10 10 50 50\n"),
        ("chair", "000001 0.7 35 10 60 45\n"),
        ("cat", "000003 0.6 5 5 45 45\n"),
    ];
    for (class, lines) in files {
        std::fs::write(dir.join(format!("comp4_det_test_{class}.txt")), lines).unwrap();
    }
}

#[test]
fn comp4_folder_with_a_false_positive_scores_as_by_hand() {
    let dir = tempfile::tempdir().unwrap();
    let voc = dir.path().join("voc");
    write_voc(&voc, &voc_images());
    let pred = dir.path().join("results");
    write_comp4(&pred);
    // Dog: FP, TP, TP over 2 positives: (rec 0, prec 0), (1/2, 1/2), (1, 2/3).
    // 11-point: every step reaches 2/3. Area: envelope 2/3 over [0, 1]. Both 2/3.
    // mAP over dog, chair, cat = (2/3 + 1 + 1) / 3 = 8/9.
    for metric in ["voc07", "voc"] {
        let out = json_of(&det(&voc, &pred, metric, &["--json"]));
        assert!(close(&out["per_class"]["dog"], 2.0 / 3.0), "{metric}: {out}");
        assert!(close(&out["map"], 8.0 / 9.0), "{metric}: {out}");
    }
    // The table: aligned rows, the mean, and what was left out.
    let out = det(&voc, &pred, "voc07", &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("3 images, 5 objects, 5 detections"), "{}", out.stdout);
    let dog = out.stdout.lines().find(|l| l.starts_with("dog ")).unwrap();
    assert!(dog.ends_with("0.6667"), "{dog}");
    let mean = out.stdout.lines().find(|l| l.starts_with("mean ")).unwrap();
    assert!(mean.ends_with("0.8889"), "{mean}");
    assert_eq!(dog.len(), mean.len(), "columns aligned:\n{}", out.stdout);
    assert!(out.stdout.contains("(mean over 3 of 20 classes)"), "{}", out.stdout);
    let left_out = out.stdout.lines().find(|l| l.starts_with("Left out of the mean")).unwrap();
    assert!(left_out.contains("aeroplane") && left_out.contains("person") && !left_out.contains("dog"), "{left_out}");
}

#[test]
fn custom_class_list_is_used() {
    let dir = tempfile::tempdir().unwrap();
    let voc = dir.path().join("voc");
    write_voc(&voc, &voc_images());
    let classes = dir.path().join("classes.txt");
    std::fs::write(&classes, "cat\nchair\ndog\nperson\n").unwrap();
    let pred = dir.path().join("pred.json");
    std::fs::write(&pred, ground_truth_as_json(&voc_images()).to_string()).unwrap();
    let out = json_of(&det(&voc, &pred, "voc07", &["--json", "--classes", path_str(&classes)]));
    let names: Vec<&String> = out["per_class"].as_object().unwrap().keys().collect();
    assert_eq!(names, ["cat", "chair", "dog", "person"]);
}

fn assert_bad_input(out: &Output, file: &str, problem: &str) {
    assert_eq!(out.code, 2, "stdout: {}\nstderr: {}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains(file) && out.stderr.contains(problem),
        "expected {file:?} and {problem:?} in: {}",
        out.stderr
    );
}

#[test]
fn bad_detection_input_exits_2_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let voc = dir.path().join("voc");
    write_voc(&voc, &voc_images());
    let pred = dir.path().join("pred.json");
    let entry =
        |id: &str, class: &str| json!({"image_id": id, "category": class, "bbox": [1, 1, 10, 10], "score": 0.5});
    let cases = [
        ("[{\"image_id\": \"000001\"".to_string(), "not a JSON list"),
        (json!([entry("000001", "dog"), entry("000001", "unicorn")]).to_string(), "entry 2: unknown class \"unicorn\""),
        (json!([entry("000004", "dog")]).to_string(), "entry 1: unknown image id \"000004\""),
    ];
    for (text, problem) in cases {
        std::fs::write(&pred, text).unwrap();
        assert_bad_input(&det(&voc, &pred, "voc07", &[]), "pred.json", problem);
    }
    assert_bad_input(&det(&voc, &dir.path().join("missing.json"), "coco", &[]), "missing.json", "cannot read");

    let folder = dir.path().join("results");
    write_comp4(&folder);
    std::fs::write(folder.join("comp4_det_test_cat.txt"), "000003 0.6 5 5 45\n").unwrap();
    assert_bad_input(&det(&voc, &folder, "voc", &[]), "comp4_det_test_cat.txt:1", "expected 6 fields");
    std::fs::write(folder.join("comp4_det_test_cat.txt"), "").unwrap();
    std::fs::write(folder.join("comp4_det_test_unicorn.txt"), "").unwrap();
    assert_bad_input(&det(&voc, &folder, "voc", &[]), "comp4_det_test_unicorn.txt", "unknown class");

    let bad_metric = det(&voc, &pred, "map50", &[]);
    assert_eq!(bad_metric.code, 2, "{}", bad_metric.stderr);
}

#[test]
fn broken_ground_truth_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let voc = dir.path().join("voc");
    write_voc(&voc, &voc_images());
    std::fs::remove_file(voc.join("JPEGImages/000002.jpg")).unwrap();
    let pred = dir.path().join("pred.json");
    std::fs::write(&pred, "[]").unwrap();
    let out = det(&voc, &pred, "voc07", &[]);
    assert_bad_input(&out, "000002.jpg", "image file is missing");
    assert!(out.stderr.contains("1 record(s) have problems"), "{}", out.stderr);
}

// ------------------------------------------------------------------ ADE tree

const ADE_CLASSES: &str = "Idx\tRatio\tTrain\tVal\tName\n1\t0.1\t1\t1\twall\n2\t0.1\t1\t1\tsky\n3\t0.1\t1\t1\tfloor\n";

/// Writes an ADE tree with 3 classes and the given validation masks (id, width, labels).
fn write_ade(root: &Path, masks: &[(&str, u32, &[u8])]) -> PathBuf {
    let images = root.join("images/validation");
    let annotations = root.join("annotations/validation");
    std::fs::create_dir_all(&images).unwrap();
    std::fs::create_dir_all(&annotations).unwrap();
    std::fs::write(root.join("objectInfo150.txt"), ADE_CLASSES).unwrap();
    for (id, width, labels) in masks {
        let height = labels.len() as u32 / width;
        image::RgbImage::new(*width, height).save(images.join(format!("{id}.jpg"))).unwrap();
        save_mask(&annotations.join(format!("{id}.png")), *width, labels);
    }
    annotations
}

fn save_mask(path: &Path, width: u32, labels: &[u8]) {
    image::GrayImage::from_raw(width, labels.len() as u32 / width, labels.to_vec()).unwrap().save(path).unwrap();
}

// The 4x4 case checked by hand in src/eval/seg.rs: IoU 4/7, 4/6, 0; 8 of 12 pixels right.
const GT_4X4: [u8; 16] = [1, 1, 2, 2, 1, 1, 2, 2, 0, 0, 2, 2, 0, 0, 1, 1];
const PRED_4X4: [u8; 16] = [1, 1, 2, 1, 1, 3, 2, 2, 3, 3, 0, 2, 2, 2, 1, 0];
const GT_3X2: [u8; 6] = [1, 1, 1, 0, 2, 2];

fn seg(ade: &Path, pred: &Path, json: bool) -> Output {
    let mut args = vec!["eval", "seg", "--ade", path_str(ade), "--split", "val", "--pred", path_str(pred)];
    if json {
        args.push("--json");
    }
    twinhead(&args)
}

#[test]
fn perfect_masks_score_one() {
    let dir = tempfile::tempdir().unwrap();
    let ade = dir.path().join("ade");
    let annotations = write_ade(&ade, &[("ADE_val_1", 4, &GT_4X4), ("ADE_val_2", 3, &GT_3X2)]);
    let out = json_of(&seg(&ade, &annotations, true));
    for key in ["miou", "pixel_acc", "mean_acc"] {
        assert!(close(&out[key], 1.0), "{key}: {out}");
    }
    // Floor (3) is in neither ground truth nor prediction: left out.
    assert_eq!(out["per_class"], json!({"wall": 1.0, "sky": 1.0, "floor": null}));
}

#[test]
fn masks_score_as_by_hand() {
    let dir = tempfile::tempdir().unwrap();
    let ade = dir.path().join("ade");
    write_ade(&ade, &[("ADE_val_1", 4, &GT_4X4)]);
    let pred = dir.path().join("pred");
    std::fs::create_dir_all(&pred).unwrap();
    save_mask(&pred.join("ADE_val_1.png"), 4, &PRED_4X4);
    let out = json_of(&seg(&ade, &pred, true));
    assert!(close(&out["miou"], (4.0 / 7.0 + 4.0 / 6.0) / 3.0), "{out}");
    assert!(close(&out["pixel_acc"], 8.0 / 12.0) && close(&out["mean_acc"], 4.0 / 6.0), "{out}");
    assert!(close(&out["per_class"]["wall"], 4.0 / 7.0) && close(&out["per_class"]["floor"], 0.0), "{out}");
    assert!(out["per_class_acc"]["floor"].is_null(), "{out}");

    let table = seg(&ade, &pred, false);
    assert_eq!(table.code, 0, "{}", table.stderr);
    let floor = table.stdout.lines().find(|l| l.starts_with("floor")).unwrap();
    assert!(floor.contains("0.0000") && floor.trim_end().ends_with('-'), "{floor}");
    assert!(table.stdout.contains("(mean over 3 of 3 classes)"), "{}", table.stdout);
}

#[test]
fn bad_masks_exit_2_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let ade = dir.path().join("ade");
    let annotations = write_ade(&ade, &[("ADE_val_1", 4, &GT_4X4), ("ADE_val_2", 3, &GT_3X2)]);
    let pred = dir.path().join("pred");
    std::fs::create_dir_all(&pred).unwrap();
    std::fs::copy(annotations.join("ADE_val_1.png"), pred.join("ADE_val_1.png")).unwrap();

    assert_bad_input(&seg(&ade, &pred, true), "ADE_val_2.png", "prediction mask is missing");
    save_mask(&pred.join("ADE_val_2.png"), 2, &[1, 1, 1, 1]);
    assert_bad_input(&seg(&ade, &pred, true), "ADE_val_2.png", "prediction is 2x2 but the annotation is 3x2");
    image::RgbImage::new(3, 2).save(pred.join("ADE_val_2.png")).unwrap();
    assert_bad_input(&seg(&ade, &pred, true), "ADE_val_2.png", "colour image");
    save_mask(&pred.join("ADE_val_2.png"), 3, &[1, 1, 4, 0, 2, 2]);
    assert_bad_input(&seg(&ade, &pred, true), "ADE_val_2.png", "label 4, above the 3 classes");
    // Both files bad: both listed.
    save_mask(&pred.join("ADE_val_1.png"), 2, &[1, 1]);
    let out = seg(&ade, &pred, true);
    assert_bad_input(&out, "2 bad prediction file(s)", "ADE_val_1.png");
    assert_bad_input(&seg(&ade, &dir.path().join("nowhere"), true), "nowhere", "does not exist");
}

// ------------------------------------------------------------------ real data

fn real_data(name: &str) -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/realdata").join(name);
    if path.is_dir() {
        Some(path)
    } else {
        println!("skipped: {} is absent", path.display());
        None
    }
}

#[test]
fn real_voc2007_ground_truth_as_predictions_scores_one() {
    let Some(voc) = real_data("VOC2007") else { return };
    let dir = tempfile::tempdir().unwrap();
    for split in ["test", "trainval"] {
        let dataset =
            twinhead::data::voc::VocDataset::open(&voc, split, twinhead::data::voc::VocClasses::Pascal).unwrap();
        assert!(dataset.problems.is_empty(), "{:?}", dataset.problems);
        let list: Vec<Value> = dataset
            .records
            .iter()
            .flat_map(|r| {
                r.annotation
                    .objects
                    .iter()
                    .map(|o| json!({"image_id": r.id, "category": o.name, "bbox": o.bbox, "score": 1.0}))
            })
            .collect();
        let pred = dir.path().join(format!("{split}.json"));
        std::fs::write(&pred, Value::Array(list).to_string()).unwrap();
        for metric in ["voc07", "voc", "coco"] {
            let args = [
                "eval",
                "det",
                "--voc",
                path_str(&voc),
                "--split",
                split,
                "--pred",
                path_str(&pred),
                "--metric",
                metric,
                "--json",
            ];
            let out = json_of(&twinhead(&args));
            assert!(close(&out["map"], 1.0), "{split} {metric}: {out}");
        }
    }
}

#[test]
fn real_ade20k_ground_truth_as_predictions_scores_one() {
    let Some(ade) = real_data("ADE20K") else { return };
    let pred = ade.join("annotations/validation");
    let out = json_of(&twinhead(&[
        "eval",
        "seg",
        "--ade",
        path_str(&ade),
        "--split",
        "validation",
        "--pred",
        path_str(&pred),
        "--json",
    ]));
    assert!(close(&out["miou"], 1.0) && close(&out["pixel_acc"], 1.0), "{out}");
}

#[test]
fn predict_refuses_a_score_threshold_or_opacity_outside_0_1() {
    for (option, value) in [("--score-threshold", "7"), ("--opacity", "-0.5"), ("--opacity", "half")] {
        let out = twinhead(&["predict", "--run", "runs/none", "--out", "out", option, value, "image.jpg"]);
        assert_eq!(out.code, 2, "{option} {value}: stdout {} stderr {}", out.stdout, out.stderr);
        assert!(out.stderr.contains(option), "{option} {value}: {}", out.stderr);
        let expected = if value == "half" { "not a number" } else { "outside [0, 1]" };
        assert!(out.stderr.contains(expected), "{option} {value}: {}", out.stderr);
    }
}
