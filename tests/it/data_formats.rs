//! Every dataset format on the same content: `data synth` writes its set as
//! VOC, COCO and YOLO, and as ADE and mask folders; training reads each copy
//! to the same losses, and the real VOC samples go through COCO and back with
//! the same records and scores.

use std::path::{Path, PathBuf};

use twinhead::backend::device::DeviceSpec;
use twinhead::data::format::{DetFormat, DetSpec, SegFormat};
use twinhead::train::events::Event;
use twinhead::train::{start, TrainConfig};

use crate::common::{every_layout, twinhead_text as twinhead};

/// A synthetic set in every layout, written once.
fn shared_data() -> &'static Path {
    static DATA: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    DATA.get_or_init(|| every_layout(40, 64, &[]))
}

/// The step losses of a short run on `det` and `seg` (`data` holds more data keys).
fn losses(det: &Path, seg: &Path, data: &str, run: &Path) -> Vec<(Option<f32>, Option<f32>)> {
    let text = format!(
        "name = \"formats\"\nseed = 1\nsteps = 4\n[data]\nvoc = {:?}\nade = {:?}\n{data}\nimage_size = 64\nbatch_size = 4\nthreads = 1\n\
         [model]\nsize = \"n\"\nwidth = 0.25\n[strategy]\nkind = \"joint\"\n[eval]\nevery = 100\ndet_images = 4\nseg_images = 4\n",
        det.display().to_string(),
        seg.display().to_string()
    );
    let config = TrainConfig::from_toml(&text, &[]).unwrap();
    let handle = start(Some(config), run, false, DeviceSpec::Cpu).unwrap();
    let steps = handle
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Step { losses, .. } => Some((losses[twinhead::train::Task::Det], losses[twinhead::train::Task::Seg])),
            Event::Error { message, .. } => panic!("training failed: {message}"),
            _ => None,
        })
        .collect();
    handle.join().unwrap();
    steps
}

#[test]
fn every_layout_of_one_set_trains_to_the_same_losses() {
    let data = shared_data();
    let runs = tempfile::tempdir().unwrap();
    let (voc, ade) = (data.join("voc"), data.join("ade"));
    assert_eq!(DetFormat::detect(&data.join("coco")).unwrap(), DetFormat::Coco);
    assert_eq!(DetFormat::detect(&data.join("yolo")).unwrap(), DetFormat::Yolo);
    assert_eq!(SegFormat::detect(&data.join("masks")).unwrap(), SegFormat::Masks);
    let reference = losses(&voc, &ade, "", &runs.path().join("voc"));
    assert_eq!(reference.len(), 4);
    // COCO keeps VOC's corners exactly; the masks copy holds the same classes as train ids.
    let coco = losses(&data.join("coco"), &data.join("masks"), "seg_encoding = \"ignore255\"", &runs.path().join("coco"));
    assert_eq!(coco, reference);
    // YOLO's six decimals of normalised coordinates move a box by under 1e-4 px at 64 px.
    let yolo = losses(&data.join("yolo"), &ade, "", &runs.path().join("yolo"));
    // Joint steps share the backbone, so from the second step on the segmentation loss moves too.
    for ((det, seg), (want_det, want_seg)) in yolo.iter().zip(&reference) {
        for (got, want) in [(det.unwrap(), want_det.unwrap()), (seg.unwrap(), want_seg.unwrap())] {
            assert!((got - want).abs() <= 1e-3 * want.abs(), "YOLO copy: loss {got} against {want}");
        }
    }
    assert_eq!(yolo[0].1, reference[0].1, "the first step's segmentation loss is the same batch on the same weights");
}

#[test]
fn data_check_reads_every_layout_and_says_which_it_found() {
    let data = shared_data();
    for (dir, format) in [("voc", "voc"), ("coco", "coco"), ("yolo", "yolo")] {
        let (code, stdout, stderr) = twinhead(&["data", "check", "--voc", data.join(dir).to_str().unwrap(), "--voc-split", "train", "--json"]);
        assert_eq!(code, 0, "{dir}: {stdout}{stderr}");
        let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(report["voc"]["format"], format);
        assert_eq!(report["voc"]["images"], 32, "{dir}");
    }
    // Ultralytics resolves a `path:` against its working folder: without one, against the file's.
    let yaml = std::fs::read_to_string(data.join("yolo/data.yaml")).unwrap();
    assert!(!yaml.contains("path:") && yaml.contains("train: images/train"), "{yaml}");
    let masks = data.join("masks");
    let (code, stdout, stderr) = twinhead(&["data", "check", "--ade", masks.to_str().unwrap(), "--seg-encoding", "ignore255", "--json"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!((report["ade"]["format"].as_str(), report["ade"]["encoding"].as_str()), (Some("masks"), Some("ignore255")));
    assert_eq!(report["ade"]["images"], 40);
    // Without a flag the encoding is told from the masks: the 255s are the ignored value.
    let (code, stdout, stderr) = twinhead(&["data", "check", "--ade", masks.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("ignore255 encoding"), "{stdout}");
    // Read in the offset encoding, the ignored 255s are past the 9 classes.
    let (code, stdout, _) = twinhead(&["data", "check", "--ade", masks.to_str().unwrap(), "--seg-encoding", "offset"]);
    assert_eq!(code, 3, "problems found: {stdout}");
    assert!(stdout.contains("mask has label 255, above the 9 classes"), "{stdout}");
    let (code, stdout, stderr) = twinhead(&["data", "check", "--voc", data.to_str().unwrap()]);
    assert_eq!(code, 2, "{stdout}");
    assert!(stderr.contains("not a detection dataset") && stderr.contains("yolo: images/<split>/"), "{stderr}");
}

fn real_voc() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/realdata/VOC2007");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("../shared/realdata/VOC2007 absent: the COCO round trip on real data is skipped");
        None
    }
}

#[test]
fn the_real_voc_samples_go_through_coco_and_back_unchanged() {
    let Some(voc) = real_voc() else { return };
    let dir = tempfile::tempdir().unwrap();
    let coco = dir.path().join("coco");
    let original = DetSpec::new(&voc, None).open("test", None).unwrap();
    twinhead::export::dataset::write_coco(&[&original], &coco).unwrap();
    let read_back = DetSpec::new(&coco, None).open("test", None).unwrap();
    assert!(read_back.problems.is_empty(), "{:?}", read_back.problems);
    assert_eq!(read_back.classes, original.classes);
    assert_eq!(read_back.records.len(), original.records.len());
    for (a, b) in read_back.records.iter().zip(&original.records) {
        assert_eq!(a.id, b.id);
        assert_eq!((a.annotation.width, a.annotation.height), (b.annotation.width, b.annotation.height));
        let boxes = |r: &twinhead::data::voc::VocRecord| r.annotation.objects.iter().map(|o| (o.class, o.difficult, o.bbox)).collect::<Vec<_>>();
        assert_eq!(boxes(a), boxes(b), "{}", a.id);
    }
    // The same predictions score the same against either copy.
    let pred = dir.path().join("pred.json");
    let detections: Vec<serde_json::Value> = original
        .records
        .iter()
        .flat_map(|r| r.annotation.objects.iter().map(move |o| (r, o)))
        .enumerate()
        .map(|(i, (r, o))| {
            let shift = (i % 5) as f32;
            let b = o.bbox;
            serde_json::json!({"image_id": r.id, "category": o.name, "bbox": [b[0] + shift, b[1], b[2] + shift, b[3]], "score": 1.0 - i as f64 / 1000.0})
        })
        .collect();
    std::fs::write(&pred, serde_json::to_string(&detections).unwrap()).unwrap();
    for metric in ["voc07", "coco"] {
        let score = |root: &Path| {
            let (code, stdout, stderr) =
                twinhead(&["eval", "det", "--voc", root.to_str().unwrap(), "--split", "test", "--pred", pred.to_str().unwrap(), "--metric", metric, "--json"]);
            assert_eq!(code, 0, "{stdout}{stderr}");
            stdout
        };
        assert_eq!(score(&coco), score(&voc), "{metric}");
    }
}
