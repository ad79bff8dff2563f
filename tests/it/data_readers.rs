//! VOC and ADE20K readers and `twinhead data check`: on small trees written
//! here (clean and with every kind of broken record), and on the real samples
//! in `../shared/realdata/` when present.

use std::path::{Path, PathBuf};

use image::{GrayImage, Luma, Rgb, RgbImage};
use twinhead::data::ade::AdeDataset;
use twinhead::data::voc::{annotation_xml, VocAnnotation, VocClasses, VocDataset, VocObject};

fn realdata() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/realdata");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("note: ../shared/realdata absent, real-data checks skipped");
        None
    }
}

fn object(name: &str, bbox: [f32; 4], difficult: bool) -> VocObject {
    VocObject { name: name.into(), class: 0, pose: "Unspecified".into(), truncated: false, difficult, bbox }
}

/// Writes a VOC2007 tree inside `VOCdevkit/` with three clean images.
fn write_voc(root: &Path) -> PathBuf {
    let voc = root.join("VOCdevkit/VOC2007");
    for sub in ["Annotations", "JPEGImages", "ImageSets/Main"] {
        std::fs::create_dir_all(voc.join(sub)).unwrap();
    }
    let images = [
        ("000001", 40, 30, vec![object("dog", [2.0, 3.0, 20.0, 25.0], false), object("cat", [21.0, 5.0, 40.0, 30.0], true)]),
        ("000002", 32, 32, vec![object("person", [1.0, 1.0, 32.0, 32.0], false)]),
        ("000003", 50, 20, vec![object("dog", [10.0, 2.0, 30.0, 19.0], false)]),
    ];
    for (id, w, h, objects) in images {
        let annotation = VocAnnotation { filename: format!("{id}.jpg"), width: w, height: h, depth: 3, objects };
        std::fs::write(voc.join(format!("Annotations/{id}.xml")), annotation_xml(&annotation, "test")).unwrap();
        RgbImage::from_pixel(w, h, Rgb([id.len() as u8 * 20, 100, 50]))
            .save(voc.join(format!("JPEGImages/{id}.jpg")))
            .unwrap();
    }
    std::fs::write(voc.join("ImageSets/Main/train.txt"), "000001\n000002\n").unwrap();
    std::fs::write(voc.join("ImageSets/Main/val.txt"), "000003\n").unwrap();
    std::fs::write(voc.join("ImageSets/Main/dog_train.txt"), "000001  1\n000002 -1\n").unwrap();
    voc
}

/// Writes an ADEChallengeData2016 tree with two training and one validation pair.
fn write_ade(root: &Path) -> PathBuf {
    let ade = root.join("ADEChallengeData2016");
    for (split, id, w, h) in [("training", "ADE_train_1", 16, 12), ("training", "ADE_train_2", 8, 8), ("validation", "ADE_val_1", 10, 10)] {
        std::fs::create_dir_all(ade.join("images").join(split)).unwrap();
        std::fs::create_dir_all(ade.join("annotations").join(split)).unwrap();
        RgbImage::from_pixel(w, h, Rgb([10, 200, 30])).save(ade.join(format!("images/{split}/{id}.jpg"))).unwrap();
        let mask = GrayImage::from_fn(w, h, |x, _| Luma([if x < 2 { 0 } else if x < w / 2 { 3 } else { 150 }]));
        mask.save(ade.join(format!("annotations/{split}/{id}.png"))).unwrap();
    }
    ade
}

use crate::common::twinhead_text as twinhead;

#[test]
fn voc_reader_parses_every_field_and_finds_the_devkit_folder() {
    let dir = tempfile::tempdir().unwrap();
    write_voc(dir.path());
    // The VOCdevkit parent is accepted and VOC2007 picked.
    let train = VocDataset::open(&dir.path().join("VOCdevkit"), "train", VocClasses::Pascal).unwrap();
    assert!(train.problems.is_empty(), "{:?}", train.problems);
    assert_eq!(train.records.len(), 2);
    let first = &train.records[0];
    assert_eq!(first.id, "000001");
    assert_eq!((first.annotation.width, first.annotation.height), (40, 30));
    let cat = &first.annotation.objects[1];
    assert_eq!((cat.name.as_str(), cat.class, cat.difficult), ("cat", 7, true));
    assert_eq!(cat.bbox, [21.0, 5.0, 40.0, 30.0]);
    // Every listed image, per-class lists excluded.
    let all = VocDataset::open_all(dir.path(), VocClasses::Pascal).unwrap();
    assert_eq!(all.records.len(), 3);
    // Discovered classes are the sorted object names.
    let discovered = VocDataset::open(dir.path(), "train", VocClasses::Discover).unwrap();
    assert_eq!(discovered.classes.names(), ["cat", "dog", "person"]);
    let err = VocDataset::open(dir.path(), "test", VocClasses::Pascal).unwrap_err().to_string();
    assert!(err.contains("test.txt") && err.contains("available splits: train, val"), "{err}");
}

#[test]
fn voc_reader_reports_each_broken_record_and_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let voc = write_voc(dir.path());
    // 000001: malformed XML; 000002: image missing; 000003: size mismatch;
    // 000004: corrupt JPEG (header fine for nothing); 000005: unknown class.
    std::fs::write(voc.join("Annotations/000001.xml"), "<annotation><size>").unwrap();
    std::fs::remove_file(voc.join("JPEGImages/000002.jpg")).unwrap();
    RgbImage::new(51, 20).save(voc.join("JPEGImages/000003.jpg")).unwrap();
    let a = VocAnnotation { filename: "000004.jpg".into(), width: 8, height: 8, depth: 3, objects: vec![object("dog", [1.0, 1.0, 4.0, 4.0], false)] };
    std::fs::write(voc.join("Annotations/000004.xml"), annotation_xml(&a, "t")).unwrap();
    std::fs::write(voc.join("JPEGImages/000004.jpg"), b"\xff\xd8\xff\xe0 not really a jpeg").unwrap();
    let b = VocAnnotation { filename: "000005.jpg".into(), width: 8, height: 8, depth: 3, objects: vec![object("unicorn", [1.0, 1.0, 4.0, 4.0], false)] };
    std::fs::write(voc.join("Annotations/000005.xml"), annotation_xml(&b, "t")).unwrap();
    RgbImage::new(8, 8).save(voc.join("JPEGImages/000005.jpg")).unwrap();
    std::fs::write(voc.join("ImageSets/Main/train.txt"), "000001\n000002\n000003\n000004\n000005\n000006\n").unwrap();

    let mut dataset = VocDataset::open(&voc, "train", VocClasses::Pascal).unwrap();
    dataset.verify_images(&|| {});
    assert!(dataset.records.is_empty());
    let reasons: Vec<String> = dataset.problems.iter().map(|p| p.to_string()).collect();
    let expect = [
        ("000001.xml", "malformed XML"),
        ("000002.jpg", "image file is missing"),
        ("000003.jpg", "image is 51x20 but the annotation says 50x20"),
        ("000004.jpg", "decode"),
        ("000005.xml", "unknown class \"unicorn\""),
        ("000006.xml", "cannot read annotation"),
    ];
    for (file, reason) in expect {
        assert!(
            reasons.iter().any(|r| r.contains(file) && r.contains(reason)),
            "no problem naming {file} with {reason:?} in {reasons:#?}"
        );
    }
    assert_eq!(reasons.len(), expect.len());
}

#[test]
fn ade_reader_pairs_images_and_masks_and_validates_masks() {
    let dir = tempfile::tempdir().unwrap();
    let ade = write_ade(dir.path());
    let mut train = AdeDataset::open(dir.path(), "train").unwrap();
    assert_eq!(train.split, "training");
    assert_eq!(train.records.len(), 2);
    assert_eq!(train.classes.len(), 150);
    let counts = train.verify(&|| {});
    assert!(train.problems.is_empty(), "{:?}", train.problems);
    // 16x12: x<2 unlabelled (24 px), 2..8 label 3 (72 px), 8.. label 150 (96 px); 8x8: 16 / 16 / 32.
    assert_eq!((counts[0], counts[3], counts[150]), (24 + 16, 72 + 16, 96 + 32));

    // Break things: label above 150, an RGB mask, a size mismatch, an orphan image and mask.
    let t = ade.join("annotations/training");
    GrayImage::from_pixel(16, 12, Luma([151])).save(t.join("ADE_train_1.png")).unwrap();
    RgbImage::new(8, 8).save(t.join("ADE_train_2.png")).unwrap();
    RgbImage::new(4, 4).save(ade.join("images/training/ADE_train_3.jpg")).unwrap();
    GrayImage::new(5, 4).save(t.join("ADE_train_3.png")).unwrap();
    RgbImage::new(4, 4).save(ade.join("images/training/ADE_train_4.jpg")).unwrap();
    GrayImage::new(4, 4).save(t.join("ADE_train_5.png")).unwrap();
    let mut broken = AdeDataset::open(&ade, "training").unwrap();
    broken.verify(&|| {});
    assert!(broken.records.is_empty());
    let reasons: Vec<String> = broken.problems.iter().map(|p| p.to_string()).collect();
    for (file, reason) in [
        ("ADE_train_1.png", "label 151"),
        ("ADE_train_2.png", "colour image"),
        ("ADE_train_3.png", "mask is 5x4 but its image is 4x4"),
        ("ADE_train_4.jpg", "no matching mask"),
        ("ADE_train_5.png", "no matching image"),
    ] {
        assert!(reasons.iter().any(|r| r.contains(file) && r.contains(reason)), "{file}: {reasons:#?}");
    }
    assert_eq!(reasons.len(), 5);
}

#[test]
fn ade_reader_accepts_a_flat_pair_and_reads_class_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("images")).unwrap();
    std::fs::create_dir_all(dir.path().join("annotations")).unwrap();
    RgbImage::new(6, 6).save(dir.path().join("images/a.jpg")).unwrap();
    GrayImage::from_pixel(6, 6, Luma([2])).save(dir.path().join("annotations/a.png")).unwrap();
    std::fs::write(dir.path().join("objectInfo150.txt"), "Idx\tRatio\tTrain\tVal\tName\n1\t0.5\t1\t1\tsky\n2\t0.5\t1\t1\tgrass, lawn\n").unwrap();
    let mut flat = AdeDataset::open(dir.path(), "all").unwrap();
    assert_eq!(flat.records.len(), 1);
    assert_eq!(flat.classes.names(), ["sky", "grass"]);
    assert_eq!(flat.verify(&|| {})[2], 36);
    let err = AdeDataset::open(dir.path(), "training").unwrap_err().to_string();
    assert!(err.contains("flat layout"), "{err}");
    let err = AdeDataset::open(&dir.path().join("nope"), "all").unwrap_err().to_string();
    assert!(err.contains("nope") && err.contains("does not exist"), "{err}");
}

#[test]
fn data_check_json_reports_counts_duplicates_and_problems() {
    let dir = tempfile::tempdir().unwrap();
    let voc = write_voc(dir.path());
    let ade = write_ade(dir.path());
    let (code, stdout, stderr) = twinhead(&["data", "check", "--voc", voc.to_str().unwrap(), "--ade", ade.to_str().unwrap(), "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["voc"]["images"], 3);
    assert_eq!(report["voc"]["objects"], 4);
    assert_eq!(report["voc"]["difficult"], 1);
    assert_eq!(report["voc"]["per_class"]["dog"]["objects"], 2);
    assert_eq!(report["voc"]["splits"]["train"], 2);
    // Box sizes (pixel-inclusive) and image sizes for the charts, in record order.
    assert_eq!(report["voc"]["box_sizes"], serde_json::json!([[19.0, 23.0], [20.0, 26.0], [32.0, 32.0], [21.0, 18.0]]));
    assert_eq!(report["voc"]["image_sizes"]["sizes"], serde_json::json!([[40, 30], [32, 32], [50, 20]]));
    assert_eq!(report["ade"]["images"], 3);
    assert_eq!(report["ade"]["image_sizes"]["sizes"].as_array().unwrap().len(), 3);
    assert_eq!(report["ade"]["splits"]["validation"], 1);
    // The two ADE training images are identical pixels but 16x12 vs 8x8; the VOC 000001 and 000003 JPEGs
    // are the same colour but different sizes: no duplicates yet.
    assert_eq!(report["duplicates"].as_array().unwrap().len(), 0);
    assert_eq!(report["problems"].as_array().unwrap().len(), 0);

    // A byte-identical copy is a duplicate; a mask with label 200 is a problem: exit 3.
    std::fs::copy(ade.join("images/training/ADE_train_1.jpg"), ade.join("images/validation/ADE_val_2.jpg")).unwrap();
    GrayImage::from_pixel(16, 12, Luma([200])).save(ade.join("annotations/validation/ADE_val_2.png")).unwrap();
    std::fs::copy(ade.join("images/training/ADE_train_1.jpg"), ade.join("images/validation/ADE_val_3.jpg")).unwrap();
    GrayImage::from_pixel(16, 12, Luma([1])).save(ade.join("annotations/validation/ADE_val_3.png")).unwrap();
    let (code, stdout, _) = twinhead(&["data", "check", "--ade", ade.to_str().unwrap(), "--json"]);
    assert_eq!(code, 3);
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let groups = report["duplicates"].as_array().unwrap();
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].as_array().unwrap().len(), 2);
    let problems = report["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1);
    assert!(problems[0]["path"].as_str().unwrap().ends_with("ADE_val_2.png"));
    assert!(problems[0]["reason"].as_str().unwrap().contains("label 200"));

    // Human output names the problem too.
    let (code, stdout, _) = twinhead(&["data", "check", "--ade", ade.to_str().unwrap()]);
    assert_eq!(code, 3);
    assert!(stdout.contains("ADE_val_2.png: mask has label 200"), "{stdout}");
}

#[test]
fn data_check_usage_errors_exit_2_naming_the_input() {
    let (code, _, stderr) = twinhead(&["data", "check"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("--voc"), "{stderr}");
    let (code, _, stderr) = twinhead(&["data", "check", "--voc", "/no/such/voc"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("/no/such/voc"), "{stderr}");
    let (code, _, stderr) = twinhead(&["data", "check", "--vocc", "x"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("--vocc"), "{stderr}");
    let dir = tempfile::tempdir().unwrap();
    let voc = write_voc(dir.path());
    let (code, _, stderr) = twinhead(&["data", "check", "--voc", voc.to_str().unwrap(), "--voc-split", "trainval"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("trainval.txt: split list not found"), "{stderr}");
}

#[test]
fn real_samples_read_with_the_manifest_counts() {
    let Some(real) = realdata() else { return };
    let test = VocDataset::open(&real.join("VOC2007"), "test", VocClasses::Pascal).unwrap();
    assert_eq!((test.records.len(), test.problems.len()), (220, 0));
    let trainval = VocDataset::open(&real.join("VOC2007"), "trainval", VocClasses::Pascal).unwrap();
    assert_eq!(trainval.records.len(), 36);
    let r5 = trainval.records.iter().find(|r| r.id == "000005").unwrap();
    assert_eq!((r5.annotation.width, r5.annotation.height, r5.annotation.objects.len()), (500, 375, 5));
    assert_eq!(r5.annotation.objects.iter().filter(|o| o.difficult).count(), 2);
    assert_eq!(r5.annotation.objects[0].bbox, [263.0, 211.0, 324.0, 339.0]);

    let mut val = AdeDataset::open(&real.join("ADE20K"), "validation").unwrap();
    assert_eq!(val.records.len(), 3);
    assert_eq!(val.classes.name(1), "building");
    val.verify(&|| {});
    assert!(val.problems.is_empty(), "{:?}", val.problems);

    let (code, stdout, stderr) = twinhead(&[
        "data", "check", "--voc", real.join("VOC2007").to_str().unwrap(), "--ade", real.join("ADE20K").to_str().unwrap(), "--json",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["voc"]["images"], 256);
    assert_eq!(report["voc"]["objects"], 326);
    assert_eq!(report["voc"]["difficult"], 9);
    assert_eq!(report["voc"]["splits"]["test"], 220);
    assert_eq!(report["voc"]["splits"]["trainval"], 36);
    assert_eq!(report["ade"]["images"], 4);
    assert_eq!(report["ade"]["splits"]["training"], 1);
    assert_eq!(report["duplicates"].as_array().unwrap().len(), 0);
}
