//! Dataset check: validates every record (decoding images and masks) and
//! summarises what is there. Shared by `twinhead data check` and the workbench's
//! Setup panel.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::classify::{self, ClsDataset, ClsFormat};
use super::format::{DetFormat, DetSpec, SegFormat, SegSpec};
use super::masks::MaskEncoding;
use super::problem::Problem;
use super::voc::{VocClasses, VocDataset};
use super::path_text;

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct CheckReport {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voc: Option<VocSummary>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ade: Option<AdeSummary>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cls: Option<ClsSummary>,
    /// Groups of image files with identical content.
    #[serde(serialize_with = "path_text::groups")]
    pub duplicates: Vec<Vec<PathBuf>>,
    pub problems: Vec<Problem>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct VocSummary {
    #[serde(serialize_with = "path_text::one")]
    pub root: PathBuf,
    pub format: DetFormat,
    /// Image count of every split (VOC: every list in `ImageSets/Main/`).
    pub splits: BTreeMap<String, usize>,
    /// The split that was checked (`all` = every listed image).
    pub checked_split: String,
    /// Images listed in the checked split.
    pub images: usize,
    /// Objects in the images that passed the check, difficult ones included.
    pub objects: usize,
    pub difficult: usize,
    pub per_class: BTreeMap<String, ClassCount>,
    /// Every object's box as `[width, height]` in pixels (VOC-inclusive), for the size scatter.
    pub box_sizes: Vec<[f32; 2]>,
    pub image_sizes: SizeSummary,
}

#[derive(Debug, Default, Clone, Copy, Serialize, Deserialize)]
pub struct ClassCount {
    pub objects: usize,
    pub difficult: usize,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct AdeSummary {
    #[serde(serialize_with = "path_text::one")]
    pub root: PathBuf,
    pub format: SegFormat,
    pub encoding: MaskEncoding,
    /// Image count of every split folder.
    pub splits: BTreeMap<String, usize>,
    pub checked_split: String,
    /// Images in the checked split(s).
    pub images: usize,
    /// Fraction of all mask pixels per class (only classes present), in label order.
    pub class_pixel_fraction: Vec<(String, f64)>,
    /// Fraction of mask pixels labelled 0 (unlabelled, ignored).
    pub unlabelled_fraction: f64,
    pub image_sizes: SizeSummary,
}

/// A classification dataset's summary.
#[derive(Debug, Serialize, Deserialize)]
pub struct ClsSummary {
    #[serde(serialize_with = "path_text::one")]
    pub root: PathBuf,
    pub format: ClsFormat,
    pub splits: BTreeMap<String, usize>,
    pub checked_split: String,
    /// Images listed in the checked split(s).
    pub images: usize,
    /// Images per class that passed the check, in class order.
    pub per_class: Vec<(String, usize)>,
    pub image_sizes: SizeSummary,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct SizeSummary {
    pub count: usize,
    pub min_width: u32,
    pub max_width: u32,
    pub mean_width: f64,
    pub min_height: u32,
    pub max_height: u32,
    pub mean_height: f64,
    /// Every image's `[width, height]`.
    pub sizes: Vec<[u32; 2]>,
}

impl SizeSummary {
    fn from_sizes(sizes: impl IntoIterator<Item = (u32, u32)>) -> Self {
        let sizes: Vec<(u32, u32)> = sizes.into_iter().collect();
        if sizes.is_empty() {
            return Self::default();
        }
        let n = sizes.len() as f64;
        Self {
            count: sizes.len(),
            min_width: sizes.iter().map(|s| s.0).min().unwrap_or(0),
            max_width: sizes.iter().map(|s| s.0).max().unwrap_or(0),
            mean_width: sizes.iter().map(|s| s.0 as f64).sum::<f64>() / n,
            min_height: sizes.iter().map(|s| s.1).min().unwrap_or(0),
            max_height: sizes.iter().map(|s| s.1).max().unwrap_or(0),
            mean_height: sizes.iter().map(|s| s.1 as f64).sum::<f64>() / n,
            sizes: sizes.iter().map(|&(w, h)| [w, h]).collect(),
        }
    }
}

/// What to check; a `None` split means every split.
#[derive(Debug, Clone, Default)]
pub struct CheckRequest {
    pub det: Option<DetSpec>,
    pub det_split: Option<String>,
    /// A class list for VOC-format data (COCO and YOLO name their own).
    pub det_classes: Option<VocClasses>,
    pub seg: Option<SegSpec>,
    pub seg_split: Option<String>,
    /// A classification dataset and its format (detected when `None`).
    pub cls: Option<(PathBuf, Option<ClsFormat>)>,
    pub cls_split: Option<String>,
}

impl CheckReport {
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Runs the check. `on_item` is called once per decoded file, for progress.
/// Errors are for unusable inputs (a missing folder or split); problems with
/// single records go into the report.
pub fn check(request: &CheckRequest, on_item: &(dyn Fn() + Sync)) -> Result<CheckReport> {
    let mut report = CheckReport::default();
    let mut images: Vec<PathBuf> = Vec::new();
    if let Some(spec) = &request.det {
        let spec = spec.resolved()?;
        let mut dataset = match &request.det_split {
            Some(split) => spec.open(split, request.det_classes.clone())?,
            None => spec.open_all(request.det_classes.clone())?,
        };
        dataset.verify_images(on_item);
        images.extend(dataset.records.iter().map(|r| r.image_path.clone()));
        report.voc = Some(summarise_voc(&dataset, spec.format()?, spec.splits(&dataset)?));
        report.problems.append(&mut dataset.problems);
    }
    if let Some(spec) = &request.seg {
        let spec = spec.resolved()?;
        let root = spec.root()?;
        let available = spec.available_splits()?;
        let splits = match &request.seg_split {
            Some(split) => vec![split.clone()],
            None => available.clone(),
        };
        let mut split_counts = BTreeMap::new();
        let mut label_pixels: Vec<u64> = Vec::new();
        let mut sizes = Vec::new();
        let mut checked = 0;
        let mut classes = None;
        let mut encoding = MaskEncoding::Offset;
        for split in &splits {
            let mut dataset = spec.open(split)?;
            let count = spec.image_count(split)?;
            checked += count;
            split_counts.insert(split.clone(), count);
            let counts = dataset.verify(on_item);
            if label_pixels.is_empty() {
                label_pixels = counts;
            } else {
                label_pixels.iter_mut().zip(counts).for_each(|(t, c)| *t += c);
            }
            sizes.extend(dataset.records.par_iter().filter_map(|r| header_size(&r.image_path)).collect::<Vec<_>>());
            images.extend(dataset.records.iter().map(|r| r.image_path.clone()));
            report.problems.append(&mut dataset.problems);
            encoding = dataset.records.first().map_or(encoding, |r| r.encoding);
            classes = Some(dataset.classes);
        }
        for split in &available {
            if !split_counts.contains_key(split) {
                split_counts.insert(split.clone(), spec.image_count(split)?);
            }
        }
        let classes = classes.unwrap_or_else(super::ClassList::ade);
        let total: u64 = label_pixels.iter().sum::<u64>().max(1);
        report.ade = Some(AdeSummary {
            root,
            format: spec.format()?,
            encoding,
            splits: split_counts,
            checked_split: request.seg_split.clone().unwrap_or_else(|| "all".into()),
            images: checked,
            class_pixel_fraction: label_pixels
                .iter()
                .enumerate()
                .skip(1)
                .filter(|(_, &c)| c > 0)
                .map(|(label, &c)| (classes.name(label - 1).to_string(), c as f64 / total as f64))
                .collect(),
            unlabelled_fraction: label_pixels.first().copied().unwrap_or(0) as f64 / total as f64,
            image_sizes: SizeSummary::from_sizes(sizes),
        });
    }
    if let Some((root, format)) = &request.cls {
        let format = match format {
            Some(f) => *f,
            None => classify::detect(root)?,
        };
        let available = classify::available_splits(root, format);
        let splits = match &request.cls_split {
            Some(split) if !available.contains(split) => {
                ClsDataset::open(root, format, split)?;
                bail!("{}: split {split:?} not found (available splits: {})", root.display(), available.join(", "))
            }
            Some(split) => vec![split.clone()],
            None => available.clone(),
        };
        let mut per_class: Vec<(String, usize)> = Vec::new();
        let (mut listed, mut sizes, mut split_counts) = (0, Vec::new(), BTreeMap::new());
        for split in &available {
            let mut dataset = ClsDataset::open(root, format, split)?;
            split_counts.insert(split.clone(), dataset.records.len() + dataset.problems.len());
            if !splits.contains(split) {
                continue;
            }
            listed += dataset.records.len() + dataset.problems.len();
            dataset.verify_images(on_item);
            for (class, count) in dataset.per_class().into_iter().enumerate() {
                let name = dataset.classes.name(class);
                match per_class.iter_mut().find(|(n, _)| n == name) {
                    Some(entry) => entry.1 += count,
                    None => per_class.push((name.to_string(), count)),
                }
            }
            sizes.extend(dataset.records.par_iter().filter_map(|r| header_size(&r.image_path)).collect::<Vec<_>>());
            images.extend(dataset.records.iter().map(|r| r.image_path.clone()));
            report.problems.append(&mut dataset.problems);
        }
        report.cls = Some(ClsSummary {
            root: root.clone(),
            format,
            splits: split_counts,
            checked_split: request.cls_split.clone().unwrap_or_else(|| "all".into()),
            images: listed,
            per_class,
            image_sizes: SizeSummary::from_sizes(sizes),
        });
    }
    report.duplicates = find_duplicates(&images);
    Ok(report)
}

fn summarise_voc(dataset: &VocDataset, format: DetFormat, splits: BTreeMap<String, usize>) -> VocSummary {
    let mut per_class: BTreeMap<String, ClassCount> = BTreeMap::new();
    let (mut objects, mut difficult) = (0, 0);
    for object in dataset.records.iter().flat_map(|r| &r.annotation.objects) {
        let count = per_class.entry(object.name.clone()).or_default();
        count.objects += 1;
        objects += 1;
        if object.difficult {
            count.difficult += 1;
            difficult += 1;
        }
    }
    VocSummary {
        root: dataset.root.clone(),
        format,
        splits,
        checked_split: dataset.split.clone(),
        images: dataset.listed,
        objects,
        difficult,
        per_class,
        box_sizes: dataset
            .records
            .iter()
            .flat_map(|r| &r.annotation.objects)
            .map(|o| [o.bbox[2] - o.bbox[0] + 1.0, o.bbox[3] - o.bbox[1] + 1.0])
            .collect(),
        image_sizes: SizeSummary::from_sizes(
            dataset.records.iter().map(|r| (r.annotation.width, r.annotation.height)),
        ),
    }
}

fn header_size(path: &Path) -> Option<(u32, u32)> {
    image::image_dimensions(path).ok()
}

/// Groups files by the BLAKE3 hash of their bytes; returns groups of two or more.
fn find_duplicates(paths: &[PathBuf]) -> Vec<Vec<PathBuf>> {
    let hashes: Vec<Option<blake3::Hash>> = paths
        .par_iter()
        .map(|p| std::fs::read(p).ok().map(|bytes| blake3::hash(&bytes)))
        .collect();
    let mut groups: BTreeMap<[u8; 32], Vec<PathBuf>> = BTreeMap::new();
    for (path, hash) in paths.iter().zip(hashes) {
        if let Some(hash) = hash {
            groups.entry(*hash.as_bytes()).or_default().push(path.clone());
        }
    }
    let mut duplicates: Vec<Vec<PathBuf>> = groups.into_values().filter(|g| g.len() > 1).collect();
    duplicates.iter_mut().for_each(|g| g.sort());
    duplicates.sort();
    duplicates
}
