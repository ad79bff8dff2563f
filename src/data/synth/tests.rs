//! The synthetic sets' guarantees: boxes match the drawn pixels, masks the
//! scene, the classes their shares, and every image its seed.

use super::{DET_CLASSES, INCOMPLETE_FILE, SEG_CLASSES, SynthConfig, ensure_generated};
use super::writers::is_val;
use super::noise::{TASK_CLS, TASK_DET, image_rng, rotate_hue};
use super::render::{Task, render, render_cls, render_det, render_seg};

#[test]
fn boxes_are_the_extent_of_the_drawn_pixels() {
    let mut seen = [0usize; 6];
    let mut difficult = 0;
    for i in 0..60 {
        let canvas = render(80, Task::Det, &mut image_rng(5, TASK_DET, i));
        let objects = canvas.det_objects();
        let kept: Vec<usize> = (0..canvas.objects.len())
            .filter(|&k| {
                let xs: Vec<usize> =
                    (0..canvas.inst.len()).filter(|&p| canvas.inst[p] as usize == k + 1).collect();
                let distinct = |f: &dyn Fn(usize) -> usize| {
                    let mut v: Vec<usize> = xs.iter().map(|&p| f(p)).collect();
                    v.sort();
                    v.dedup();
                    v.len()
                };
                xs.len() >= 4 && distinct(&|p| p % canvas.w) >= 2 && distinct(&|p| p / canvas.w) >= 2
            })
            .collect();
        assert_eq!(kept.len(), objects.len());
        for (&k, o) in kept.iter().zip(&objects) {
            let mut e = [usize::MAX, usize::MAX, 0, 0];
            for (p, &id) in canvas.inst.iter().enumerate() {
                if id as usize == k + 1 {
                    let (x, y) = (p % canvas.w, p / canvas.w);
                    e = [e[0].min(x), e[1].min(y), e[2].max(x), e[3].max(y)];
                }
            }
            assert_eq!(o.bbox, e.map(|v| v as f32 + 1.0), "image {i} object {k}");
            assert!(o.bbox[0] >= 1.0 && o.bbox[2] <= canvas.w as f32 && o.bbox[3] <= canvas.h as f32);
            assert_eq!(o.name, DET_CLASSES[o.class]);
            seen[o.class] += 1;
            difficult += o.difficult as usize;
        }
    }
    assert!(seen.iter().all(|&n| n > 0), "every class appears: {seen:?}");
    let total: usize = seen.iter().sum();
    assert!(difficult > 0 && difficult * 4 < total, "a few difficult: {difficult} of {total}");
}

#[test]
fn masks_label_stuff_and_things_and_leave_few_pixels_unlabelled() {
    let mut counts = [0u64; SEG_CLASSES.len() + 1];
    for i in 0..40 {
        let (img, mask) = render_seg(&SynthConfig { size: 64, ..Default::default() }, i);
        assert_eq!(img.dimensions(), mask.dimensions());
        for &v in mask.as_raw() {
            counts[v as usize] += 1;
        }
    }
    let total: u64 = counts.iter().sum();
    assert!(counts[1..].iter().all(|&n| n > 0), "every label appears: {counts:?}");
    assert!(counts[0] > 0 && counts[0] * 20 < total, "few unlabelled pixels: {counts:?}");
}

#[test]
fn rendering_is_deterministic_and_depends_on_seed_and_index() {
    let config = SynthConfig { size: 48, ..Default::default() };
    assert_eq!(render_det(&config, 3), render_det(&config, 3));
    assert_ne!(render_det(&config, 3).0, render_det(&config, 4).0);
    let other = SynthConfig { seed: 1, ..config.clone() };
    assert_ne!(render_det(&config, 3).0, render_det(&other, 3).0);
    assert_eq!(render_seg(&config, 2), render_seg(&config, 2));
}

#[test]
fn classification_crops_are_balanced_deterministic_and_the_kinds_differ() {
    let config = SynthConfig { size: 48, ..Default::default() };
    assert_eq!(render_cls(&config, 5), render_cls(&config, 5));
    assert_eq!(render_cls(&config, 13).1, 1);
    // The two kinds of a thing drawn from the same generator state differ
    // only by their detail: the same crop, recoloured or reshaped.
    for class in [2, 4] {
        let a = render(48, Task::Cls(class), &mut image_rng(1, TASK_CLS, 0));
        let b = render(48, Task::Cls(class + 1), &mut image_rng(1, TASK_CLS, 0));
        let changed = a.rgb.iter().zip(&b.rgb).filter(|(x, y)| x != y).count();
        assert!(changed > 20 && changed * 2 < a.rgb.len(), "class {class}: {changed} pixels differ");
    }
    assert!((rotate_hue([200.0, 40.0, 40.0], 360.0)[0] - 200.0).abs() < 1e-2);
}

#[test]
fn classification_crops_are_added_to_a_twin_set_and_a_set_with_them_serves_one_without() {
    let dir = tempfile::tempdir().unwrap();
    let twins = SynthConfig { det_images: 5, seg_images: 5, size: 32, ..Default::default() };
    ensure_generated(dir.path(), &twins, |_, _| {}).unwrap();
    let voc_written = std::fs::metadata(dir.path().join("voc/JPEGImages/000001.jpg")).unwrap().modified().unwrap();
    let three = SynthConfig { cls_images: 24, ..twins.clone() };
    let summary = ensure_generated(dir.path(), &three, |_, _| {}).unwrap();
    assert_eq!((summary.cls_train, summary.cls_val), (20, 4));
    assert_eq!(std::fs::read_dir(dir.path().join("cls/images")).unwrap().count(), 24);
    // The twin sets were kept, not written again; the two-task configuration is served as it is.
    assert_eq!(std::fs::metadata(dir.path().join("voc/JPEGImages/000001.jpg")).unwrap().modified().unwrap(), voc_written);
    assert_eq!(ensure_generated(dir.path(), &twins, |_, _| panic!("nothing to write")).unwrap(), summary);
    assert!(!dir.path().join(INCOMPLETE_FILE).exists());
}

#[test]
fn validation_split_is_every_fifth() {
    let val: Vec<usize> = (0..12).filter(|&i| is_val(i, 0.2)).collect();
    assert_eq!(val, [4, 9]);
    assert!(!(0..10).any(|i| is_val(i, 0.0)));
}
