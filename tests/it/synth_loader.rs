//! The synthetic twin datasets, read back by the real readers, through the loader.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use twinhead::data::ade::AdeDataset;
use twinhead::data::augment::AugmentConfig;
use twinhead::data::preprocess::IGNORE;
use twinhead::data::batch::{DetBatch, DetSource, SegBatch, SegSource};
use twinhead::data::loader::{load_batch, Loader, LoaderConfig, Position};
use twinhead::data::synth::{self, SynthConfig, SynthSummary, DET_CLASSES, SEG_CLASSES};
use twinhead::data::voc::{VocClasses, VocDataset};

fn tiny(seed: u64) -> SynthConfig {
    SynthConfig { seed, det_images: 12, seg_images: 10, size: 48, ..SynthConfig::default() }
}

fn generate(dir: &Path, config: &SynthConfig) -> SynthSummary {
    synth::generate(dir, config, |_, _| {}).unwrap()
}

/// Every file under `dir` (relative path → bytes), except the marker, which holds absolute paths.
fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else if path.file_name().unwrap() != synth::MARKER_FILE {
                out.insert(path.strip_prefix(root).unwrap().to_path_buf(), std::fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn voc(summary: &SynthSummary, split: &str) -> VocDataset {
    VocDataset::open(&summary.voc_root, split, VocClasses::for_root(&summary.voc_root).unwrap()).unwrap()
}

#[test]
fn synth_is_deterministic_by_seed() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (dir.path().join("a"), dir.path().join("b"), dir.path().join("c"));
    generate(&a, &tiny(1));
    generate(&b, &tiny(1));
    generate(&c, &tiny(2));
    let (fa, fb, fc) = (files(&a), files(&b), files(&c));
    assert_eq!(fa.len(), 12 * 2 + 10 * 2 + 5, "images, annotations, 3 split lists, 2 class files");
    assert!(fa == fb, "same seed, same bytes");
    assert_eq!(fa.keys().collect::<Vec<_>>(), fc.keys().collect::<Vec<_>>());
    let differing = fa.iter().filter(|(k, v)| fc[*k] != **v).count();
    assert!(differing > 30, "another seed draws other images ({differing} files differ)");
}

#[test]
fn readers_open_the_generated_sets_without_problems() {
    let dir = tempfile::tempdir().unwrap();
    let summary = generate(dir.path(), &tiny(0));
    assert_eq!((summary.det_train, summary.det_val, summary.seg_train, summary.seg_val), (10, 2, 8, 2));

    for (split, n) in [("train", 10), ("val", 2), ("trainval", 12)] {
        let mut set = voc(&summary, split);
        assert_eq!(set.classes.names(), DET_CLASSES);
        assert!(set.problems.is_empty(), "{:?}", set.problems);
        set.verify_images(&|| {});
        assert!(set.problems.is_empty(), "{:?}", set.problems);
        assert_eq!(set.records.len(), n, "{split}");
    }
    // The written boxes are the rendered ones.
    let set = voc(&summary, "trainval");
    let objects: usize = set.records.iter().map(|r| r.annotation.objects.len()).sum();
    assert_eq!(objects, summary.det_objects.iter().sum::<usize>());
    for (i, record) in set.records.iter().enumerate() {
        assert_eq!(record.annotation, synth::render_det(&tiny(0), i).1);
    }

    let mut labels = vec![0u64; SEG_CLASSES.len() + 1];
    for (split, n) in [("training", 8), ("validation", 2)] {
        let mut set = AdeDataset::open(&summary.ade_root, split).unwrap();
        assert_eq!(set.classes.names(), SEG_CLASSES);
        assert!(set.problems.is_empty(), "{:?}", set.problems);
        let counts = set.verify(&|| {});
        assert!(set.problems.is_empty(), "{:?}", set.problems);
        assert_eq!(set.records.len(), n);
        labels.iter_mut().zip(counts).for_each(|(t, c)| *t += c);
    }
    assert_eq!(labels, summary.seg_pixels);
}

#[test]
fn ensure_generated_reuses_a_complete_set_and_foreign_folders_are_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let first = synth::ensure_generated(dir.path(), &tiny(0), |_, _| {}).unwrap();
    let stamp = std::fs::metadata(first.voc_root.join("classes.txt")).unwrap().modified().unwrap();
    let calls = std::sync::atomic::AtomicUsize::new(0);
    let again = synth::ensure_generated(dir.path(), &tiny(0), |_, _| {
        calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    })
    .unwrap();
    assert_eq!(first, again);
    assert_eq!(calls.into_inner(), 0, "nothing rendered the second time");
    assert_eq!(std::fs::metadata(first.voc_root.join("classes.txt")).unwrap().modified().unwrap(), stamp);
    // Another config regenerates in place.
    let bigger = SynthConfig { det_images: 15, ..tiny(0) };
    assert_eq!(synth::ensure_generated(dir.path(), &bigger, |_, _| {}).unwrap().det_train, 12);
    assert_eq!(synth::existing(dir.path()).unwrap().0, bigger);

    let foreign = tempfile::tempdir().unwrap();
    std::fs::create_dir(foreign.path().join("voc")).unwrap();
    let err = synth::generate(foreign.path(), &tiny(0), |_, _| {}).unwrap_err().to_string();
    assert!(err.contains("not written by"), "{err}");
    assert!(foreign.path().join("voc").is_dir());
}

fn det_config(threads: usize, prefetch: usize) -> LoaderConfig {
    LoaderConfig { threads, prefetch, epochs: Some(3), ..LoaderConfig::train(40, 3, 11) }
}

/// Everything a detection batch holds that must be reproducible (image bits, boxes, labels, ids, position).
type DetKey = (Vec<u32>, Vec<Vec<[f32; 4]>>, Vec<Vec<usize>>, Vec<String>, Position);

fn det_key(b: &DetBatch) -> DetKey {
    (
        b.images.iter().map(|v| v.to_bits()).collect(),
        b.boxes.clone(),
        b.labels.clone(),
        b.ids.clone(),
        b.position,
    )
}

fn seg_key(b: &SegBatch) -> (Vec<u32>, Vec<u8>, Vec<String>, Position) {
    (b.images.iter().map(|v| v.to_bits()).collect(), b.masks.clone(), b.ids.clone(), b.position)
}

#[test]
fn loader_batches_are_identical_for_any_thread_count() {
    let dir = tempfile::tempdir().unwrap();
    let summary = generate(dir.path(), &tiny(0));
    let source = std::sync::Arc::new(DetSource::new(&voc(&summary, "trainval")));
    let runs: Vec<Vec<_>> = [(0, 1), (1, 1), (3, 5), (2, 2)]
        .into_iter()
        .map(|(threads, prefetch)| {
            Loader::new(source.clone(), det_config(threads, prefetch)).unwrap().map(|b| det_key(&b)).collect()
        })
        .collect();
    assert_eq!(runs[0].len(), 12, "3 epochs of 4 batches");
    for run in &runs[1..] {
        assert!(*run == runs[0], "same batches whatever the threads");
    }
    // Epochs differ (new order, new augmentation); boxes stay inside the input.
    assert_ne!(runs[0][0].3, runs[0][4].3);
    for (_, boxes, labels, ..) in &runs[0] {
        for (b, l) in boxes.iter().flatten().zip(labels.iter().flatten()) {
            assert!(b[0] >= 0.0 && b[1] >= 0.0 && b[2] <= 40.0 && b[3] <= 40.0 && b[0] < b[2] && b[1] < b[3]);
            assert!(*l < DET_CLASSES.len());
        }
    }

    let seg = std::sync::Arc::new(SegSource::new(&AdeDataset::open(&summary.ade_root, "training").unwrap()));
    let seg_runs: Vec<Vec<_>> = [0, 2]
        .into_iter()
        .map(|threads| {
            let config = LoaderConfig { threads, epochs: Some(2), ..LoaderConfig::train(32, 4, 5) };
            Loader::new(seg.clone(), config).unwrap().map(|b| seg_key(&b)).collect()
        })
        .collect();
    assert_eq!(seg_runs[0].len(), 4);
    assert!(seg_runs[0] == seg_runs[1]);
}

#[test]
fn loader_resumes_at_any_position() {
    let dir = tempfile::tempdir().unwrap();
    let summary = generate(dir.path(), &tiny(0));
    let source = std::sync::Arc::new(DetSource::new(&voc(&summary, "trainval")));
    let config = det_config(2, 2);
    let mut full = Loader::new(source.clone(), config.clone()).unwrap();
    let mut all = Vec::new();
    let mut positions = Vec::new();
    while let Some(batch) = {
        positions.push(full.position());
        full.next()
    } {
        all.push(det_key(&batch));
    }
    assert_eq!(positions.last(), Some(&Position { epoch: 3, batch: 0 }));
    for k in [0, 3, 4, 6, 11] {
        let start = positions[k];
        assert_eq!(all[k].4, start);
        let resumed: Vec<_> = Loader::starting_at(source.clone(), config.clone(), start)
            .unwrap()
            .map(|b| det_key(&b))
            .collect();
        assert!(resumed == all[k..], "resume at {start:?}");
        // A single batch can also be built directly.
        assert!(det_key(&load_batch(&*source, &config, start).0) == all[k]);
    }
    let mut endless =
        Loader::starting_at(source, LoaderConfig { epochs: None, ..config }, Position { epoch: 1, batch: 2 })
            .unwrap();
    endless.next();
    assert_eq!(endless.position(), Position { epoch: 1, batch: 3 });
    endless.next();
    assert_eq!(endless.position(), Position { epoch: 2, batch: 0 });
}

#[test]
fn a_corrupt_jpeg_is_skipped_counted_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let summary = generate(dir.path(), &tiny(0));
    let set = voc(&summary, "trainval");
    let broken = set.records[5].image_path.clone();
    std::fs::write(&broken, b"\xFF\xD8\xFF\xE0 this is not a JPEG").unwrap();
    for threads in [0, 2] {
        let config = LoaderConfig { threads, ..LoaderConfig::eval(32, 4) };
        let mut loader = Loader::new(DetSource::new(&set), config).unwrap();
        let batches: Vec<DetBatch> = loader.by_ref().collect();
        assert_eq!(batches.iter().map(|b| b.len()).collect::<Vec<_>>(), [4, 3, 4]);
        assert_eq!(batches[1].skipped.len(), 1);
        assert!(!batches[1].ids.contains(&set.records[5].id));
        assert_eq!(loader.skipped(), 1);
        let problem = &loader.problems()[0];
        assert_eq!(problem.path, broken);
        assert!(problem.reason.contains("does not decode"), "{problem}");
    }
}

#[test]
fn eval_batches_letterbox_with_ignored_padding_and_convert_to_tensors() {
    use burn::backend::Flex;
    let dir = tempfile::tempdir().unwrap();
    let summary = generate(dir.path(), &tiny(0));
    let seg = AdeDataset::open(&summary.ade_root, "training").unwrap();
    let mut loader =
        Loader::new(SegSource::new(&seg), LoaderConfig { threads: 1, ..LoaderConfig::eval(24, 8) }).unwrap();
    let batch = loader.next().unwrap();
    assert_eq!(batch.len(), 8);
    let plane = 24 * 24;
    for (i, lb) in batch.letterboxes.iter().enumerate() {
        let mask = &batch.masks[i * plane..(i + 1) * plane];
        let [x0, y0, x1, y1] = lb.content_rect();
        assert!((x1 - x0).max(y1 - y0) == 24 && (x1 - x0).min(y1 - y0) < 24, "images are not square: {lb:?}");
        for (p, &m) in mask.iter().enumerate() {
            let (x, y) = ((p % 24) as u32, (p / 24) as u32);
            if x < x0 || x >= x1 || y < y0 || y >= y1 {
                assert_eq!(m, IGNORE);
            } else {
                assert!(m == IGNORE || (m as usize) < SEG_CLASSES.len());
            }
        }
    }
    let device = Default::default();
    let images = batch.images::<Flex>(&device);
    assert_eq!(images.dims(), [8, 3, 24, 24]);
    let masks = batch.masks::<Flex>(&device);
    assert_eq!(masks.dims(), [8, 24, 24]);
    let back: Vec<i64> = masks.into_data().convert::<i64>().to_vec().unwrap();
    assert_eq!(back, batch.masks.iter().map(|&m| m as i64).collect::<Vec<_>>());

    let det = voc(&summary, "val");
    let batch = load_batch(&DetSource::new(&det), &LoaderConfig::eval(24, 8), Position::default()).0;
    assert_eq!(batch.images::<Flex>(&device).dims(), [2, 3, 24, 24]);
    // Boxes map back to the annotation (up to the letterbox rounding).
    for (i, record) in det.records.iter().enumerate() {
        assert_eq!(batch.ids[i], record.id);
        for (b, o) in batch.boxes[i].iter().zip(&record.annotation.objects) {
            let back = batch.letterboxes[i].box_to_original_voc(*b);
            for k in 0..4 {
                assert!((back[k] - o.bbox[k]).abs() < 0.01, "{back:?} vs {:?}", o.bbox);
            }
        }
    }
    let _ = AugmentConfig::eval(24);
}
