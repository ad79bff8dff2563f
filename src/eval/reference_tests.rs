//! Agreement with the reference implementations, through the fixtures that
//! `tools/reference_eval.py` writes (a MATLAB-devkit port for VOC, pycocotools
//! for COCO, numpy for segmentation). Python is not needed to run these.

use std::path::PathBuf;

use serde::Deserialize;

use super::*;

const TOLERANCE: f64 = 1e-4;

fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/eval").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[derive(Deserialize)]
struct DetCases {
    cases: Vec<DetCase>,
}

#[derive(Deserialize)]
struct DetCase {
    seed: u64,
    classes: Vec<String>,
    ground_truth: Vec<FixtureObject>,
    detections: Vec<FixtureDetection>,
    reference: DetReference,
}

#[derive(Deserialize)]
struct FixtureObject {
    image: usize,
    class: usize,
    bbox: [f32; 4],
    difficult: bool,
}

#[derive(Deserialize)]
struct FixtureDetection {
    image: usize,
    class: usize,
    bbox: [f32; 4],
    score: f32,
}

#[derive(Deserialize)]
struct DetReference {
    voc07: FixtureAp,
    voc: FixtureAp,
    coco: FixtureCoco,
}

#[derive(Deserialize)]
struct FixtureCoco {
    ap: FixtureAp,
    ap50: FixtureAp,
    ap75: FixtureAp,
}

#[derive(Deserialize)]
struct FixtureAp {
    per_class: Vec<Option<f64>>,
    map: f64,
}

/// Largest difference between ours and the reference; panics on a class that one
/// side leaves out and the other does not.
fn max_difference(what: &str, ours: &ClassAp, reference: &FixtureAp) -> f64 {
    assert_eq!(ours.per_class.len(), reference.per_class.len(), "{what}: class count");
    let mut max = (ours.mean().expect("some class has an AP") - reference.map).abs();
    for (class, (a, b)) in ours.per_class.iter().zip(&reference.per_class).enumerate() {
        match (a, b) {
            (Some(a), Some(b)) => max = max.max((a - b).abs()),
            (None, None) => {}
            _ => panic!("{what}: class {class}: ours {a:?}, reference {b:?}"),
        }
    }
    max
}

#[test]
fn detection_ap_agrees_with_the_references() {
    let cases: DetCases = serde_json::from_str(&fixture("det_cases.json")).unwrap();
    assert_eq!(cases.cases.len(), 3);
    let mut worst = 0.0f64;
    for case in &cases.cases {
        let gts: Vec<GroundTruth> = case
            .ground_truth
            .iter()
            .map(|g| GroundTruth { image: g.image, class: g.class, bbox: g.bbox, difficult: g.difficult })
            .collect();
        let dets: Vec<Detection> = case
            .detections
            .iter()
            .map(|d| Detection { image: d.image, class: d.class, bbox: d.bbox, score: d.score })
            .collect();
        let n = case.classes.len();
        let r = &case.reference;
        let coco = evaluate_coco(&gts, &dets, n);
        let results = [
            ("voc07", evaluate_voc(&gts, &dets, n, VocMetric::Voc07), &r.voc07),
            ("voc", evaluate_voc(&gts, &dets, n, VocMetric::Area), &r.voc),
            ("coco ap", coco.ap, &r.coco.ap),
            ("coco ap50", coco.ap50, &r.coco.ap50),
            ("coco ap75", coco.ap75, &r.coco.ap75),
        ];
        for (what, ours, reference) in &results {
            let what = format!("seed {} {what}", case.seed);
            let difference = max_difference(&what, ours, reference);
            assert!(difference <= TOLERANCE, "{what}: ours {:?}, reference {:?}", ours.per_class, reference.per_class);
            worst = worst.max(difference);
        }
    }
    println!("detection: max |ours - reference| = {worst:e}");
}

#[derive(Deserialize)]
struct SegCase {
    num_classes: usize,
    images: Vec<SegImage>,
    reference: SegReference,
}

#[derive(Deserialize)]
struct SegImage {
    gt: Vec<u8>,
    pred: Vec<u8>,
}

#[derive(Deserialize)]
struct SegReference {
    per_class_iou: Vec<Option<f64>>,
    miou: f64,
    pixel_acc: f64,
    mean_acc: f64,
}

#[test]
fn segmentation_agrees_with_numpy() {
    let case: SegCase = serde_json::from_str(&fixture("seg_case.json")).unwrap();
    let mut matrix = ConfusionMatrix::new(case.num_classes);
    for image in &case.images {
        matrix.accumulate(&image.gt, &image.pred);
    }
    let r = &case.reference;
    let iou = matrix.per_class_iou();
    // Class 6 is absent (left out), class 7 only predicted (IoU 0, in the mean).
    assert_eq!((iou[5], iou[6]), (None, Some(0.0)));
    let mut worst = 0.0f64;
    for (class, (a, b)) in iou.iter().zip(&r.per_class_iou).enumerate() {
        match (a, b) {
            (Some(a), Some(b)) => worst = worst.max((a - b).abs()),
            (None, None) => {}
            _ => panic!("class {}: ours {a:?}, numpy {b:?}", class + 1),
        }
    }
    for (ours, reference) in
        [(matrix.miou(), r.miou), (matrix.pixel_accuracy(), r.pixel_acc), (matrix.mean_accuracy(), r.mean_acc)]
    {
        worst = worst.max((ours.unwrap() - reference).abs());
    }
    assert!(worst <= TOLERANCE, "max difference {worst}");
    println!("segmentation: max |ours - numpy| = {worst:e}");
}
