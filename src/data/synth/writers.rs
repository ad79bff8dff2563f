//! Writing the synthetic sets to disk: the VOC, ADE20K and classification
//! layouts, split into training and validation, in parallel and cancellable.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use anyhow::{bail, Context, Result};
use image::RgbImage;
use rayon::prelude::*;

use crate::data::classes::ClassList;
use crate::data::voc::{annotation_xml, VocAnnotation, CLASS_LIST_FILE};
use super::{CLS_CLASSES, DET_CLASSES, SEG_CLASSES, SynthConfig};
use super::render::{render_cls, render_det, render_seg, voc_id};

/// Whether image `i` of `n` goes to validation: every `1 / val_fraction`-th, spread evenly.
pub(super) fn is_val(i: usize, val_fraction: f32) -> bool {
    let f = val_fraction as f64;
    ((i + 1) as f64 * f).floor() > (i as f64 * f).floor()
}

#[derive(Default)]
pub(super) struct DetStats {
    pub(super) train: usize,
    pub(super) val: usize,
    pub(super) objects: [usize; DET_CLASSES.len()],
    pub(super) difficult: usize,
    pub(super) truncated: usize,
}

#[derive(Default)]
pub(super) struct SegStats {
    pub(super) train: usize,
    pub(super) val: usize,
    pub(super) pixels: [u64; SEG_CLASSES.len() + 1],
    /// Images containing each label, per split.
    pub(super) train_images: [usize; SEG_CLASSES.len() + 1],
    pub(super) val_images: [usize; SEG_CLASSES.len() + 1],
}

pub(super) fn check_cancel(cancel: &AtomicBool) -> Result<()> {
    if cancel.load(Ordering::Relaxed) {
        bail!("cancelled");
    }
    Ok(())
}

pub(super) fn write_voc(
    root: &Path,
    config: &SynthConfig,
    tick: &(dyn Fn() + Sync),
    cancel: &AtomicBool,
) -> Result<DetStats> {
    for dir in ["Annotations", "JPEGImages", "ImageSets/Main"] {
        std::fs::create_dir_all(root.join(dir))
            .with_context(|| format!("{}: cannot create", root.join(dir).display()))?;
    }
    ClassList::new(DET_CLASSES.iter().map(|s| s.to_string()).collect())
        .write_plain(&root.join(CLASS_LIST_FILE))?;
    let annotations: Vec<VocAnnotation> = (0..config.det_images)
        .into_par_iter()
        .map(|i| -> Result<VocAnnotation> {
            check_cancel(cancel)?;
            let (img, ann) = render_det(config, i);
            let id = voc_id(i);
            write_jpeg(&root.join("JPEGImages").join(format!("{id}.jpg")), &img, config.jpeg_quality)?;
            let xml_path = root.join("Annotations").join(format!("{id}.xml"));
            std::fs::write(&xml_path, annotation_xml(&ann, "Twinhead synthetic"))
                .with_context(|| format!("{}: cannot write", xml_path.display()))?;
            tick();
            Ok(ann)
        })
        .collect::<Result<_>>()?;
    let mut stats = DetStats::default();
    let (mut train, mut val) = (String::new(), String::new());
    for (i, ann) in annotations.iter().enumerate() {
        let list = if is_val(i, config.val_fraction) { &mut val } else { &mut train };
        list.push_str(&voc_id(i));
        list.push('\n');
        for o in &ann.objects {
            stats.objects[o.class] += 1;
            stats.difficult += o.difficult as usize;
            stats.truncated += o.truncated as usize;
        }
    }
    stats.train = train.lines().count();
    stats.val = val.lines().count();
    let main = root.join("ImageSets").join("Main");
    let trainval: String = (0..config.det_images).map(|i| voc_id(i) + "\n").collect();
    for (name, text) in [("train", &train), ("val", &val), ("trainval", &trainval)] {
        let path = main.join(format!("{name}.txt"));
        std::fs::write(&path, text).with_context(|| format!("{}: cannot write", path.display()))?;
    }
    Ok(stats)
}

pub(super) fn write_ade(
    root: &Path,
    config: &SynthConfig,
    tick: &(dyn Fn() + Sync),
    cancel: &AtomicBool,
) -> Result<SegStats> {
    for split in ["training", "validation"] {
        for kind in ["images", "annotations"] {
            let dir = root.join(kind).join(split);
            std::fs::create_dir_all(&dir).with_context(|| format!("{}: cannot create", dir.display()))?;
        }
    }
    // File names follow ADE's `ADE_train_00000001` / `ADE_val_00000001`, numbered per split.
    let mut names = Vec::with_capacity(config.seg_images);
    let (mut n_train, mut n_val) = (0, 0);
    for i in 0..config.seg_images {
        if is_val(i, config.val_fraction) {
            n_val += 1;
            names.push(("validation", format!("ADE_val_{n_val:08}")));
        } else {
            n_train += 1;
            names.push(("training", format!("ADE_train_{n_train:08}")));
        }
    }
    let counts: Vec<[u64; SEG_CLASSES.len() + 1]> = names
        .par_iter()
        .enumerate()
        .map(|(i, (split, name))| -> Result<[u64; SEG_CLASSES.len() + 1]> {
            check_cancel(cancel)?;
            let (img, mask) = render_seg(config, i);
            write_jpeg(
                &root.join("images").join(split).join(format!("{name}.jpg")),
                &img,
                config.jpeg_quality,
            )?;
            let mask_path = root.join("annotations").join(split).join(format!("{name}.png"));
            mask.save_with_format(&mask_path, image::ImageFormat::Png)
                .with_context(|| format!("{}: cannot write", mask_path.display()))?;
            let mut counts = [0u64; SEG_CLASSES.len() + 1];
            for &v in mask.as_raw() {
                counts[v as usize] += 1;
            }
            tick();
            Ok(counts)
        })
        .collect::<Result<_>>()?;
    let mut stats = SegStats { train: n_train, val: n_val, ..Default::default() };
    for ((split, _), c) in names.iter().zip(&counts) {
        let images = if *split == "validation" { &mut stats.val_images } else { &mut stats.train_images };
        for (k, &n) in c.iter().enumerate() {
            stats.pixels[k] += n;
            images[k] += (n > 0) as usize;
        }
    }
    // objectInfo150.txt in the official tab-separated format, numbered 1..N.
    let labelled: u64 = stats.pixels[1..].iter().sum::<u64>().max(1);
    let mut text = String::from("Idx\tRatio\tTrain\tVal\tName\n");
    for (k, name) in SEG_CLASSES.iter().enumerate() {
        text.push_str(&format!(
            "{}\t{:.4}\t{}\t{}\t{}\n",
            k + 1,
            stats.pixels[k + 1] as f64 / labelled as f64,
            stats.train_images[k + 1],
            stats.val_images[k + 1],
            name
        ));
    }
    let path = root.join("objectInfo150.txt");
    std::fs::write(&path, text).with_context(|| format!("{}: cannot write", path.display()))?;
    Ok(stats)
}

/// The classification set: `images/<id>.jpg`, `train.txt` / `val.txt` lists and
/// `classes.txt`. Image `i` is of class `i mod 12`, so every class has its share
/// of both splits. Returns the split sizes.
pub(super) fn write_cls(root: &Path, config: &SynthConfig, tick: &(dyn Fn() + Sync), cancel: &AtomicBool) -> Result<(usize, usize)> {
    let images = root.join("images");
    std::fs::create_dir_all(&images).with_context(|| format!("{}: cannot create", images.display()))?;
    ClassList::new(CLS_CLASSES.iter().map(|s| s.to_string()).collect()).write_plain(&root.join("classes.txt"))?;
    (0..config.cls_images).into_par_iter().try_for_each(|i| -> Result<()> {
        check_cancel(cancel)?;
        let (img, _) = render_cls(config, i);
        write_jpeg(&images.join(format!("{}.jpg", voc_id(i))), &img, config.jpeg_quality)?;
        tick();
        Ok(())
    })?;
    let (mut train, mut val) = (String::new(), String::new());
    for i in 0..config.cls_images {
        let list = if is_val(i, config.val_fraction) { &mut val } else { &mut train };
        list.push_str(&format!("{}.jpg {}\n", voc_id(i), i % CLS_CLASSES.len()));
    }
    for (name, text) in [("train", &train), ("val", &val)] {
        let path = root.join(format!("{name}.txt"));
        std::fs::write(&path, text).with_context(|| format!("{}: cannot write", path.display()))?;
    }
    Ok((train.lines().count(), val.lines().count()))
}

pub(super) fn write_jpeg(path: &Path, img: &RgbImage, quality: u8) -> Result<()> {
    let file = std::fs::File::create(path).with_context(|| format!("{}: cannot create", path.display()))?;
    let mut writer = std::io::BufWriter::new(file);
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut writer, quality)
        .encode_image(img)
        .with_context(|| format!("{}: cannot encode JPEG", path.display()))?;
    use std::io::Write;
    writer.flush().with_context(|| format!("{}: cannot write", path.display()))
}
