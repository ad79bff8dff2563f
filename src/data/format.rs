//! Which format a dataset folder is in, and one way to open a split of any of
//! them: detection datasets (VOC, COCO, YOLO) open as a [`VocDataset`],
//! segmentation datasets (ADE20K, mask folders) as an [`AdeDataset`], so the
//! loader, the checks, the metrics and the exports are the same for all.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use super::ade::{self, AdeDataset};
use super::masks::{self, MaskSpec};
use super::voc::{self, VocClasses, VocDataset};
use super::{coco, yolo};

/// The layouts a detection dataset can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum DetFormat {
    Voc,
    Coco,
    Yolo,
}

/// The layouts a segmentation dataset can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum SegFormat {
    Ade,
    Masks,
}

impl DetFormat {
    pub const ALL: [Self; 3] = [Self::Voc, Self::Coco, Self::Yolo];

    pub fn name(self) -> &'static str {
        match self {
            Self::Voc => "voc",
            Self::Coco => "coco",
            Self::Yolo => "yolo",
        }
    }

    /// What a folder of this format holds.
    pub fn expects(self) -> &'static str {
        match self {
            Self::Voc => "voc: Annotations/*.xml, JPEGImages/ and ImageSets/Main/<split>.txt (here or in VOC2007/ or VOCdevkit/VOC2007/)",
            Self::Coco => "coco: annotations/instances_<split>.json (or instances_<split>.json here) and the images in images/<split>/, <split>/ or images/",
            Self::Yolo => "yolo: images/<split>/ and labels/<split>/*.txt, with data.yaml (names:) or classes.txt",
        }
    }

    fn matches(self, dir: &Path) -> bool {
        match self {
            Self::Voc => voc::resolve_root(dir).is_ok(),
            Self::Coco => !coco::annotation_files(dir).is_empty(),
            Self::Yolo => dir.join("images").is_dir() && dir.join("labels").is_dir(),
        }
    }

    /// The format of the dataset in `dir`, from its layout.
    pub fn detect(dir: &Path) -> Result<Self> {
        detect(dir, "detection", &Self::ALL, Self::matches, Self::name, Self::expects, "data.det_format")
    }
}

impl SegFormat {
    pub const ALL: [Self; 2] = [Self::Ade, Self::Masks];

    pub fn name(self) -> &'static str {
        match self {
            Self::Ade => "ade",
            Self::Masks => "masks",
        }
    }

    pub fn expects(self) -> &'static str {
        match self {
            Self::Ade => "ade: images/<split>/ and annotations/<split>/*.png (here or in ADEChallengeData2016/)",
            Self::Masks => "masks: images/ (or JPEGImages/) and masks/, labels/ or SegmentationClass/, split folders or ImageSets/Segmentation/<split>.txt optional, and classes.txt",
        }
    }

    fn matches(self, dir: &Path) -> bool {
        match self {
            Self::Ade => ade::resolve_root(dir).is_ok(),
            // images/ + annotations/ is ADE's layout; a mask folder of another name is this one.
            Self::Masks => masks::folders(dir).is_some_and(|(_, m)| m.file_name().is_some_and(|n| n != "annotations")),
        }
    }

    pub fn detect(dir: &Path) -> Result<Self> {
        detect(dir, "segmentation", &Self::ALL, Self::matches, Self::name, Self::expects, "data.seg_format")
    }
}

fn detect<F: Copy>(
    dir: &Path,
    task: &str,
    all: &[F],
    matches: fn(F, &Path) -> bool,
    name: fn(F) -> &'static str,
    expects: fn(F) -> &'static str,
    key: &str,
) -> Result<F> {
    if !dir.is_dir() {
        bail!("{}: {task} dataset folder does not exist", dir.display());
    }
    let found: Vec<F> = all.iter().copied().filter(|&f| matches(f, dir)).collect();
    match found.as_slice() {
        [one] => Ok(*one),
        [] => {
            let mut entries: Vec<String> = std::fs::read_dir(dir)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned() + if e.path().is_dir() { "/" } else { "" })
                .collect();
            entries.sort();
            entries.truncate(12);
            bail!(
                "{}: not a {task} dataset of any format Twinhead reads. Found: {}. Expected one of:\n  {}",
                dir.display(),
                if entries.is_empty() { "nothing".to_string() } else { entries.join(" ") },
                all.iter().map(|&f| expects(f)).collect::<Vec<_>>().join("\n  ")
            )
        }
        many => bail!(
            "{}: the layout fits several {task} formats ({}); say which with {key}",
            dir.display(),
            many.iter().map(|&f| name(f)).collect::<Vec<_>>().join(", ")
        ),
    }
}

/// A detection dataset: its folder and, when given, its format.
#[derive(Debug, Clone, PartialEq)]
pub struct DetSpec {
    pub dir: PathBuf,
    pub format: Option<DetFormat>,
}

impl DetSpec {
    pub fn new(dir: impl Into<PathBuf>, format: Option<DetFormat>) -> Self {
        Self { dir: dir.into(), format }
    }

    /// The given format, else the detected one.
    pub fn format(&self) -> Result<DetFormat> {
        self.format.map_or_else(|| DetFormat::detect(&self.dir), Ok)
    }

    /// This spec with its format detected once, for the many calls that follow.
    pub fn resolved(&self) -> Result<Self> {
        Ok(Self { dir: self.dir.clone(), format: Some(self.format()?) })
    }

    /// The dataset root: VOC's may sit below the folder given.
    pub fn root(&self) -> Result<PathBuf> {
        match self.format()? {
            DetFormat::Voc => voc::resolve_root(&self.dir),
            DetFormat::Coco | DetFormat::Yolo => Ok(self.dir.clone()),
        }
    }

    /// Opens one split. `classes` overrides VOC's class list (`None`: the
    /// dataset's `classes.txt`, else the 20 PASCAL classes); COCO and YOLO
    /// datasets name their classes themselves.
    pub fn open(&self, split: &str, classes: Option<VocClasses>) -> Result<VocDataset> {
        let root = self.root()?;
        match self.format()? {
            DetFormat::Voc => {
                let classes = match classes {
                    Some(c) => c,
                    None => VocClasses::for_root(&root)?,
                };
                VocDataset::open(&root, split, classes)
            }
            format => {
                if matches!(classes, Some(VocClasses::List(_))) {
                    bail!("{}: a class list applies to VOC-format data; {} datasets name their classes themselves", root.display(), format.name());
                }
                if format == DetFormat::Coco { coco::open(&root, split) } else { yolo::open(&root, split) }
            }
        }
    }

    /// Image count of every split; `opened`'s is taken from it, not counted again.
    pub fn splits(&self, opened: &VocDataset) -> Result<BTreeMap<String, usize>> {
        let root = self.root()?;
        let mut counts = BTreeMap::new();
        if opened.split != voc::ALL_SPLITS {
            counts.insert(opened.split.clone(), opened.listed);
        }
        match self.format()? {
            DetFormat::Voc => {
                for split in voc::available_splits(&root) {
                    counts.insert(split.clone(), voc::read_split(&root, &split)?.len());
                }
            }
            DetFormat::Coco => {
                for (split, path) in coco::annotation_files(&root) {
                    if !counts.contains_key(&split) {
                        counts.insert(split, coco::count_images(&path)?);
                    }
                }
            }
            DetFormat::Yolo => {
                for split in yolo::available_splits(&root) {
                    counts.insert(split.clone(), yolo::image_files(&root.join("images").join(&split))?.len());
                }
            }
        }
        Ok(counts)
    }

    /// Every image of every split, under the split name [`voc::ALL_SPLITS`].
    pub fn open_all(&self, classes: Option<VocClasses>) -> Result<VocDataset> {
        let root = self.root()?;
        let splits: Vec<String> = match self.format()? {
            DetFormat::Voc => {
                let classes = match classes {
                    Some(c) => c,
                    None => VocClasses::for_root(&root)?,
                };
                return VocDataset::open_all(&root, classes);
            }
            DetFormat::Coco => coco::annotation_files(&root).into_keys().collect(),
            DetFormat::Yolo => yolo::available_splits(&root),
        };
        let mut all: Option<VocDataset> = None;
        for split in splits {
            let mut part = self.open(&split, classes.clone())?;
            match &mut all {
                None => all = Some(part),
                Some(all) => {
                    if all.classes != part.classes {
                        bail!("{}: split {split} names other classes than split {}", root.display(), all.split);
                    }
                    all.records.append(&mut part.records);
                    all.problems.append(&mut part.problems);
                    all.listed += part.listed;
                }
            }
        }
        let mut all = all.ok_or_else(|| anyhow::anyhow!("{}: no splits found", root.display()))?;
        all.split = voc::ALL_SPLITS.to_string();
        // Each file numbers its own images: ids from two files may collide.
        all.file_ids = None;
        Ok(all)
    }
}

/// A segmentation dataset: its folder, format and how its masks read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SegSpec {
    pub dir: PathBuf,
    pub format: Option<SegFormat>,
    pub masks: MaskSpec,
}

impl SegSpec {
    pub fn new(dir: impl Into<PathBuf>, format: Option<SegFormat>, masks: MaskSpec) -> Self {
        Self { dir: dir.into(), format, masks }
    }

    /// The given format; else `masks` when a preset, encoding or class list is
    /// given (those describe mask folders); else the detected one.
    pub fn format(&self) -> Result<SegFormat> {
        match self.format {
            Some(format) => Ok(format),
            None if self.masks != MaskSpec::default() => Ok(SegFormat::Masks),
            None => SegFormat::detect(&self.dir),
        }
    }

    /// This spec with its format detected once, for the many calls that follow.
    pub fn resolved(&self) -> Result<Self> {
        Ok(Self { format: Some(self.format()?), ..self.clone() })
    }

    pub fn root(&self) -> Result<PathBuf> {
        match self.format()? {
            SegFormat::Ade => ade::resolve_root(&self.dir),
            SegFormat::Masks => {
                if !self.dir.is_dir() {
                    bail!("{}: segmentation dataset folder does not exist", self.dir.display());
                }
                Ok(self.dir.clone())
            }
        }
    }

    pub fn open(&self, split: &str) -> Result<AdeDataset> {
        match self.format()? {
            SegFormat::Ade => AdeDataset::open(&self.dir, split),
            SegFormat::Masks => masks::open(&self.root()?, split, &self.masks),
        }
    }

    /// How many images split `split` holds, without opening it.
    pub fn image_count(&self, split: &str) -> Result<usize> {
        let root = self.root()?;
        let (_, pairing) = match self.format()? {
            SegFormat::Ade => ade::pairing(&root, split)?,
            SegFormat::Masks => masks::pairing(&root, split)?,
        };
        pairing.image_count()
    }

    pub fn available_splits(&self) -> Result<Vec<String>> {
        let root = self.root()?;
        Ok(match self.format()? {
            SegFormat::Ade => ade::available_splits(&root),
            SegFormat::Masks => masks::available_splits(&root),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_are_recognised_and_an_unknown_one_lists_what_each_format_expects() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let err = DetFormat::detect(root).unwrap_err().to_string();
        assert!(err.contains("Found: nothing") && err.contains("coco: annotations/instances_<split>.json"), "{err}");
        std::fs::create_dir_all(root.join("images/train")).unwrap();
        std::fs::create_dir_all(root.join("labels/train")).unwrap();
        assert_eq!(DetFormat::detect(root).unwrap(), DetFormat::Yolo);
        std::fs::write(root.join("instances_train.json"), "{}").unwrap();
        let err = DetFormat::detect(root).unwrap_err().to_string();
        assert!(err.contains("several detection formats (coco, yolo); say which with data.det_format"), "{err}");
        assert_eq!(SegFormat::detect(root).unwrap(), SegFormat::Masks, "images/ + labels/");
        std::fs::create_dir_all(root.join("annotations")).unwrap();
        assert!(SegFormat::detect(root).unwrap_err().to_string().contains("several segmentation formats (ade, masks)"));
    }
}
