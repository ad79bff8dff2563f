//! What a trained run gives the CLI: `eval --run --json` with precision–recall
//! curves and both confusion matrices, `predict --format` in every standard
//! format, read back by `eval det` / `eval seg`, and `data export-coco`.

use std::path::{Path, PathBuf};

use serde_json::Value;
use twinhead::data::voc::{VocClasses, VocDataset};

use crate::common::{s, twinhead};
use crate::common;
use crate::common::{trained, RUN};

/// The trained run's folder.
fn run_dir() -> std::path::PathBuf {
    trained().join("runs").join(RUN)
}

fn json_of(args: &[&str]) -> Value {
    let out = twinhead(args);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn numbers(value: &Value) -> Vec<f64> {
    value.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect()
}

fn voc_val() -> VocDataset {
    let root = trained().join("synth/voc");
    VocDataset::open(&root, "val", VocClasses::for_root(&root).unwrap()).unwrap()
}

#[test]
fn eval_json_has_pr_curves_and_confusion_matrices_that_agree_with_the_metrics() {
    let report = json_of(&["eval", "--run", s(&run_dir()), "--json"]);
    let names: Vec<String> = voc_val().classes.names().to_vec();
    for name in &names {
        let ap = &report["det"]["per_class"][name];
        let curve = &report["pr"][name];
        if ap.is_null() {
            assert!(curve.is_null(), "{name}: no AP but a curve");
            continue;
        }
        // The area under the curve's precision envelope is the class's VOC area AP.
        let (recall, precision) = (numbers(&curve["recall"]), numbers(&curve["precision"]));
        assert_eq!(recall.len(), precision.len());
        let mut area = 0.0;
        let mut previous = 0.0;
        for i in 0..recall.len() {
            let best_after = precision[i..].iter().cloned().fold(0.0, f64::max);
            area += (recall[i] - previous) * best_after;
            previous = recall[i];
        }
        let ap = ap.as_f64().unwrap();
        assert!((area - ap).abs() < 1e-6, "{name}: area {area} vs AP {ap}");
    }

    // Detection matrix: each class's row holds every non-difficult object of that class once.
    let det = &report["confusion"]["det"];
    let counts: Vec<Vec<u64>> = serde_json::from_value(det["counts"].clone()).unwrap();
    assert_eq!(counts.len(), names.len() + 1);
    assert_eq!(det["labels"][names.len()], "background");
    let mut objects = vec![0u64; names.len()];
    for record in &voc_val().records {
        for object in record.annotation.objects.iter().filter(|o| !o.difficult) {
            objects[object.class] += 1;
        }
    }
    for (class, row) in counts.iter().take(names.len()).enumerate() {
        assert_eq!(row.iter().sum::<u64>(), objects[class], "row {}", names[class]);
    }
    assert_eq!(counts[names.len()][names.len()], 0, "background is never confused with background");

    // Pixel matrix: every pixel of the validation masks once.
    let seg = &report["confusion"]["seg"];
    let counts: Vec<Vec<u64>> = serde_json::from_value(seg["counts"].clone()).unwrap();
    assert_eq!(seg["labels"][0], "unlabelled");
    let masks = std::fs::read_dir(trained().join("synth/ade/annotations/validation")).unwrap();
    let pixels: u64 = masks
        .map(|m| {
            let (w, h) = image::image_dimensions(m.unwrap().path()).unwrap();
            u64::from(w * h)
        })
        .sum();
    assert_eq!(counts.iter().flatten().sum::<u64>(), pixels);
    // Its diagonal gives the reported IoU of a class present in the ground truth.
    let class = (1..counts.len()).find(|&c| counts[c].iter().sum::<u64>() > 0).unwrap();
    let column: u64 = counts[1..].iter().map(|row| row[class]).sum();
    let row: u64 = counts[class].iter().sum();
    let iou = counts[class][class] as f64 / (row + column - counts[class][class]) as f64;
    let name = seg["labels"][class].as_str().unwrap();
    assert!((report["seg"]["per_class"][name].as_f64().unwrap() - iou).abs() < 1e-9);
}

#[test]
fn predictions_in_every_format_score_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let val = voc_val();
    let run = run_dir();
    let images: Vec<PathBuf> = val.records.iter().map(|r| r.image_path.clone()).collect();
    let mut args = vec!["predict", "--run", s(&run), "--out", s(&out)];
    args.extend(["--format", "twinhead,coco,voc,png", "--voc-split", "val", "--score-threshold", "0.01"]);
    args.extend(images.iter().map(|p| s(p)));
    let predicted = twinhead(&args);
    assert!(predicted.status.success(), "{}", String::from_utf8_lossy(&predicted.stderr));

    let voc = trained().join("synth/voc");
    let score = |pred: &Path, metric: &str| {
        json_of(&["eval", "det", "--voc", s(&voc), "--split", "val", "--pred", s(pred), "--metric", metric, "--json"])
    };
    for metric in ["voc", "coco"] {
        let own = score(&out.join("predictions.json"), metric);
        assert!(own["map"].as_f64().is_some());
        assert_eq!(score(&out.join("predictions.coco.json"), metric), own, "COCO results, {metric}");
        assert_eq!(score(&out, metric), own, "comp4 files, {metric}");
    }
    let coco: Value = serde_json::from_slice(&std::fs::read(out.join("predictions.coco.json")).unwrap()).unwrap();
    let first = &coco[0];
    assert!(first["image_id"].is_u64() && first["category_id"].as_u64().unwrap() >= 1, "{first}");

    // The masks are what `eval seg` reads, named like the annotations.
    let ade_val: Vec<PathBuf> =
        std::fs::read_dir(trained().join("synth/ade/images/validation")).unwrap().map(|e| e.unwrap().path()).collect();
    let masks = dir.path().join("seg");
    let mut args = vec!["predict", "--run", s(&run), "--out", s(&masks), "--format", "png"];
    args.extend(ade_val.iter().map(|p| s(p)));
    assert!(twinhead(&args).status.success());
    let ade = trained().join("synth/ade");
    let seg = json_of(&["eval", "seg", "--ade", s(&ade), "--split", "validation", "--pred", s(&masks.join("masks")), "--json"]);
    assert!(seg["miou"].as_f64().is_some(), "{seg}");
}

#[test]
fn export_coco_writes_the_ground_truth_in_coco_form() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gt.json");
    let out = twinhead(&["data", "export-coco", "--voc", s(&trained().join("synth/voc")), "--split", "val", "--out", s(&file)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let gt: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let val = voc_val();
    assert_eq!(gt["images"].as_array().unwrap().len(), val.records.len());
    let record = &val.records[0];
    let object = &record.annotation.objects[0];
    let [x0, y0, x1, y1] = object.bbox.map(f64::from);
    let annotation = &gt["annotations"][0];
    assert_eq!(annotation["image_id"], record.id.parse::<u64>().unwrap());
    // The corners as Twinhead's COCO metric reads VOC boxes: [xmin, ymin, xmax − xmin, ymax − ymin].
    assert_eq!(numbers(&annotation["bbox"]), [x0, y0, x1 - x0, y1 - y0]);
    assert_eq!(annotation["category_id"], object.class + 1);
    assert_eq!(annotation["iscrowd"], u8::from(object.difficult));
    assert_eq!(gt["categories"][0]["name"], val.classes.names()[0].as_str());
}

#[test]
fn coco_results_carry_the_coco_files_own_ids_and_score_against_it() {
    // The validation split as a COCO dataset numbered as TT100K and converters
    // do: categories from 0 in another order, images by text ids.
    let dir = tempfile::tempdir().unwrap();
    let coco = dir.path().join("coco");
    let file = coco.join("annotations/instances_val.json");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    let voc = trained().join("synth/voc");
    let out = twinhead(&["data", "export-coco", "--voc", s(&voc), "--split", "val", "--out", s(&file)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut gt: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let count = gt["categories"].as_array().unwrap().len() as u64;
    let category = |v: &Value| Value::from(count - v.as_u64().unwrap());
    let image = |v: &Value| Value::from(format!("img-{v}"));
    for c in gt["categories"].as_array_mut().unwrap() {
        c["id"] = category(&c["id"]);
    }
    for a in gt["annotations"].as_array_mut().unwrap() {
        (a["category_id"], a["image_id"]) = (category(&a["category_id"]), image(&a["image_id"]));
    }
    for i in gt["images"].as_array_mut().unwrap() {
        i["id"] = image(&i["id"]);
    }
    std::fs::write(&file, serde_json::to_vec(&gt).unwrap()).unwrap();
    let images_dir = coco.join("images/val");
    std::fs::create_dir_all(&images_dir).unwrap();
    let val = voc_val();
    for record in &val.records {
        std::fs::copy(&record.image_path, images_dir.join(record.image_path.file_name().unwrap())).unwrap();
    }

    let out = dir.path().join("out");
    let run = run_dir();
    let mut args = vec!["predict", "--run", s(&run), "--out", s(&out), "--format", "twinhead,coco"];
    args.extend(["--score-threshold", "0.01", "--coco-ids", s(&file)]);
    args.extend(val.records.iter().map(|r| s(&r.image_path)));
    let predicted = twinhead(&args);
    assert!(predicted.status.success(), "{}", String::from_utf8_lossy(&predicted.stderr));
    let results: Value = serde_json::from_slice(&std::fs::read(out.join("predictions.coco.json")).unwrap()).unwrap();
    let first = &results[0];
    assert!(first["image_id"].as_str().unwrap().starts_with("img-"), "{first}");
    assert!(first["category_id"].as_u64().unwrap() < count, "{first}");
    // Scored against the COCO file, they score as Twinhead's own list against the VOC split.
    for metric in ["voc", "coco"] {
        let own = json_of(&["eval", "det", "--voc", s(&voc), "--split", "val", "--pred", s(&out.join("predictions.json")), "--metric", metric, "--json"]);
        let coco_scored = json_of(&["eval", "det", "--voc", s(&coco), "--split", "val", "--pred", s(&out.join("predictions.coco.json")), "--metric", metric, "--json"]);
        assert_eq!(coco_scored["map"], own["map"], "{metric}");
    }
    // The COCO dataset's ground truth goes back out with its own ids.
    let again = dir.path().join("again.json");
    let out = twinhead(&["data", "export-coco", "--voc", s(&coco), "--split", "val", "--out", s(&again)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let again: Value = serde_json::from_slice(&std::fs::read(&again).unwrap()).unwrap();
    for key in ["images", "categories"] {
        let ids = |v: &Value| v[key].as_array().unwrap().iter().map(|x| x["id"].clone()).collect::<Vec<_>>();
        assert_eq!(ids(&again), ids(&gt), "{key}");
    }
    // An image the file does not list is refused before predicting.
    let stray = dir.path().join("stray.png");
    image::RgbImage::new(8, 8).save(&stray).unwrap();
    let out = twinhead(&["predict", "--run", s(&run), "--out", s(&dir.path().join("x")), "--format", "coco", "--coco-ids", s(&file), s(&stray)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no image named \"stray\""), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn bad_formats_and_unwritable_outputs_exit_2() {
    let image = voc_val().records[0].image_path.clone();
    let run = run_dir();
    let out = twinhead(&["predict", "--run", s(&run), "--out", "x", "--format", "yolo", s(&image)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("yolo"));
    // A file where the masks folder would go: it cannot be written (as a
    // read-only folder cannot; tests may run as root, which ignores permissions).
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("masks"), "in the way").unwrap();
    let out = twinhead(&["predict", "--run", s(&run), "--out", s(dir.path()), "--format", "png", s(&image)]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("masks") && stderr.contains("cannot create"), "{stderr}");
    assert_eq!(std::fs::read_to_string(dir.path().join("masks")).unwrap(), "in the way");

    // A run that cannot start from its `model.pretrained` file: exit 2, the file named.
    let seg_checkpoint = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/yolov8/tiny_yolov8_seg.pt");
    let mut sets = common::data_overrides(&trained().join("synth"));
    sets.extend(["steps=2".to_string(), format!("model.pretrained={}", seg_checkpoint.display())]);
    let mut args = vec!["train", "--preset", "quick", "--out", s(dir.path())];
    for set in &sets {
        args.extend(["--set", set.as_str()]);
    }
    let out = twinhead(&args);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("tiny_yolov8_seg.pt") && stderr.contains("instance-segmentation"), "{stderr}");
}

/// `export onnx`: the file a reader gets back declares the documented input
/// and outputs, `--reference` writes Twinhead's outputs with the same shapes,
/// and a size the strides do not divide exits 2 without writing a file.
#[test]
fn export_onnx_writes_the_documented_graph_and_its_reference_outputs() {
    let run = run_dir();
    let dir = tempfile::tempdir().unwrap();
    let (file, reference) = (dir.path().join("tiny.onnx"), dir.path().join("reference"));
    let out = twinhead(&["export", "onnx", "--run", s(&run), "--out", s(&file), "--decode", "--batch", "dynamic", "--reference", s(&reference)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let model = twinhead::onnx::read(&file).unwrap();
    let graph = model.graph.unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains(&format!("{} nodes", graph.node.len())), "{printed}");
    let shapes: Vec<(String, Vec<String>)> =
        graph.input.iter().chain(&graph.output).map(|v| (v.name.clone().unwrap(), twinhead::onnx::dims_text(v))).collect();
    let names: Vec<&str> = shapes.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["images", "det_cls_logits", "det_box_raw", "seg_logits", "det_boxes", "det_scores", "seg_classes"]);
    assert_eq!(shapes[0].1, ["batch", "3", "64", "64"]);
    let metadata: std::collections::HashMap<_, _> = model.metadata_props.iter().map(|e| (e.key.clone().unwrap(), e.value.clone().unwrap())).collect();
    let state = twinhead::train::checkpoint::read_state(&run.join("checkpoints/last")).unwrap();
    assert_eq!(serde_json::from_str::<Vec<String>>(&metadata["det_classes"]).unwrap(), state.classes[twinhead::train::Task::Det]);
    assert_eq!(metadata["image_size"], "64");
    // The reference: every output, its shape the graph's with the probe batch of 2.
    let manifest: Value = serde_json::from_str(&std::fs::read_to_string(reference.join("reference.json")).unwrap()).unwrap();
    for (name, dims) in &shapes {
        let entry = &manifest[name.as_str()];
        let shape: Vec<String> = entry["shape"].as_array().unwrap().iter().map(|d| d.to_string()).collect();
        let mut want = dims.clone();
        want[0] = "2".into();
        assert_eq!(shape, want, "{name}");
        let bytes = std::fs::metadata(reference.join(entry["file"].as_str().unwrap())).unwrap().len();
        let element = if entry["dtype"] == "int64" { 8 } else { 4 };
        assert_eq!(bytes, want.iter().map(|d| d.parse::<u64>().unwrap()).product::<u64>() * element, "{name}");
    }

    let bad = dir.path().join("bad.onnx");
    let out = twinhead(&["export", "onnx", "--run", s(&run), "--out", s(&bad), "--size", "100"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("multiple of 32"), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!bad.exists());
}

#[test]
fn export_ultralytics_state_dict_writes_a_file_a_run_can_start_from() {
    let run = run_dir();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tiny.safetensors");
    let out = twinhead(&["export", "ultralytics-state-dict", "--run", s(&run), "--out", s(&file), "--images", "4"]);
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(printed.contains("BatchNorm statistics from 4 training images") && printed.contains("read back: neck outputs"), "{printed}");
    // The file starts the network the run was built as, through model.pretrained's reader.
    let state = twinhead::train::checkpoint::read_state(&run.join("checkpoints/last")).unwrap();
    let mut net = twinhead::model::TwinNet::<burn::backend::Flex>::new(&state.model, &Default::default());
    let report = twinhead::model::yolov8::import(&mut net, &file).unwrap();
    assert!(report.loaded.iter().any(|l| l == "backbone.sppf.cv2") && report.loaded.iter().any(|l| l == "det_head.levels.0.box1"));

    let out = twinhead(&["export", "ultralytics-state-dict", "--run", s(&dir.path().join("no-run")), "--out", s(&file)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-run"), "{}", String::from_utf8_lossy(&out.stderr));
}

/// `runs compare-images`: a checkpoint against itself scores the same on
/// every validation image; the CSV holds one row per image, each task's
/// detection and segmentation images, and a bad second run is named.
#[test]
fn compare_images_scores_every_validation_image_under_both_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("images.csv");
    let out = twinhead(&["runs", "compare-images", "--run", s(&run_dir()), "--against-checkpoint", "last", "--csv", s(&csv)]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("A better on 0, B better on 0"), "{stdout}");
    let text = std::fs::read_to_string(&csv).unwrap();
    let rows: Vec<&str> = text.lines().skip(1).collect();
    let images = voc_val().records.len();
    assert_eq!(rows.iter().filter(|r| r.starts_with("det,")).count(), images, "{text}");
    assert!(rows.iter().any(|r| r.starts_with("seg,")));
    assert!(rows.iter().all(|r| r.split(',').nth(5).is_none_or(|d| d.is_empty() || d == "0.000000")), "{text}");
    let out = twinhead(&["runs", "compare-images", "--run", s(&run_dir()), "--against", "/no/such/run"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/no/such/run"));
}
