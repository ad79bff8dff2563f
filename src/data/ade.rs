//! ADE20K / SceneParse150 reader: the `ADEChallengeData2016` layout
//! (`images/{training,validation}/*.jpg` + `annotations/{training,validation}/*.png`)
//! or a flat `images/` + `annotations/` pair. Mask encoding: 0 = unlabelled
//! (ignored), 1..=N = classes. [`AdeDataset`] holds the segmentation datasets of
//! every format (the `masks` layout of `super::masks` too): each record says how
//! its mask is encoded and reads it into this encoding.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use image::GrayImage;
use rayon::prelude::*;

use super::classes::ClassList;
use super::mask_encoding::{self, MaskEncoding};
use super::problem::{keep_passing, log_skipped, split_checked, Problem};

/// The split name a flat `images/` + `annotations/` pair is read as.
pub const FLAT_SPLIT: &str = "all";

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct AdeRecord {
    pub id: String,
    pub image_path: PathBuf,
    pub mask_path: PathBuf,
    pub encoding: MaskEncoding,
}

impl AdeRecord {
    /// The mask in ADE's encoding (0 = unlabelled, `k` = class `k − 1`), values checked.
    pub fn read_mask(&self, num_classes: usize) -> Result<GrayImage, Problem> {
        mask_encoding::read_mask(&self.mask_path, num_classes, self.encoding)
    }
}

/// Where a split's images and masks are: two folders, paired by file stem, or
/// the listed `ids` in them.
pub struct Pairing {
    pub image_dir: PathBuf,
    pub mask_dir: PathBuf,
    pub ids: Option<Vec<String>>,
}

/// Image files are these; masks are PNGs.
const IMAGE_EXTENSIONS: [&str; 3] = ["jpg", "jpeg", "png"];

impl Pairing {
    /// How many images the split holds, without opening any.
    pub fn image_count(&self) -> Result<usize> {
        Ok(match &self.ids {
            Some(ids) => ids.len(),
            None => files_by_stem(&self.image_dir, &IMAGE_EXTENSIONS)?.len(),
        })
    }
}

/// One split of an ADE-format dataset. Records with a problem are left out of
/// `records` and listed in `problems`.
#[derive(Debug, Clone)]
pub struct AdeDataset {
    pub root: PathBuf,
    pub split: String,
    pub classes: ClassList,
    pub records: Vec<AdeRecord>,
    pub problems: Vec<Problem>,
}

/// Finds the dataset root: `dir` when it holds `images/` and `annotations/`,
/// else `dir/ADEChallengeData2016`.
pub fn resolve_root(dir: &Path) -> Result<PathBuf> {
    if !dir.is_dir() {
        bail!("{}: ADE20K folder does not exist", dir.display());
    }
    for candidate in [dir.to_path_buf(), dir.join("ADEChallengeData2016")] {
        if candidate.join("images").is_dir() && candidate.join("annotations").is_dir() {
            return Ok(candidate);
        }
    }
    bail!(
        "{}: not an ADE20K dataset (expected images/ and annotations/ here or in \
         ADEChallengeData2016/ below it)",
        dir.display()
    )
}

/// The official folder name for a split, accepting the short aliases `train` and `val`.
pub fn canonical_split(split: &str) -> &str {
    match split {
        "train" => "training",
        "val" => "validation",
        other => other,
    }
}

/// Splits present under `root`: the sub-folders of `images/`, or [`FLAT_SPLIT`]
/// when the images lie directly in `images/`.
pub fn available_splits(root: &Path) -> Vec<String> {
    let mut splits = sub_folders(&root.join("images"));
    if splits.is_empty() {
        splits.push(FLAT_SPLIT.to_string());
    }
    splits
}

/// The names of the folders in `dir`, sorted.
pub fn sub_folders(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .collect();
    names.sort();
    names
}

/// The class list: `objectInfo150.txt` or `.csv` in the root when present, else the built-in 150.
pub fn read_classes(root: &Path) -> Result<ClassList> {
    for name in ["objectInfo150.txt", "objectInfo150.csv"] {
        let path = root.join(name);
        if path.is_file() {
            return ClassList::read_ade_object_info(&path);
        }
    }
    Ok(ClassList::ade())
}

/// The canonical name and the folders of split `split` of the ADE root `root`.
pub fn pairing(root: &Path, split: &str) -> Result<(String, Pairing)> {
    let available = available_splits(root);
    let split = canonical_split(split).to_string();
    let (image_dir, mask_dir) = if available == [FLAT_SPLIT] {
        if split != FLAT_SPLIT {
            bail!(
                "{}: flat layout (images/ and annotations/ without split folders) has only \
                 the split \"{FLAT_SPLIT}\", not {split:?}",
                root.display()
            );
        }
        (root.join("images"), root.join("annotations"))
    } else {
        if !available.contains(&split) {
            bail!(
                "{}: split {split:?} not found (available splits: {})",
                root.join("images").display(),
                available.join(", ")
            );
        }
        (root.join("images").join(&split), root.join("annotations").join(&split))
    };
    Ok((split, Pairing { image_dir, mask_dir, ids: None }))
}

impl AdeDataset {
    /// Opens one split: pairs images with masks by file stem and checks (from the
    /// file headers) that both exist and have the same size.
    pub fn open(dir: &Path, split: &str) -> Result<Self> {
        let root = resolve_root(dir)?;
        let classes = read_classes(&root)?;
        let (split, pairing) = pairing(&root, split)?;
        Self::pair(root, &split, classes, MaskEncoding::Offset, pairing)
    }


    /// Opens a split from its image and mask folders, checking (from the file
    /// headers) that every image has a mask of its size.
    pub fn pair(root: PathBuf, split: &str, classes: ClassList, encoding: MaskEncoding, pairing: Pairing) -> Result<Self> {
        let Pairing { image_dir, mask_dir, ids } = pairing;
        let mut problems = Vec::new();
        let (images, masks) = match ids {
            None => {
                let images = files_by_stem(&image_dir, &IMAGE_EXTENSIONS)?;
                let masks = files_by_stem(&mask_dir, &["png"])?;
                problems.extend(
                    masks
                        .iter()
                        .filter(|(stem, _)| !images.contains_key(*stem))
                        .map(|(_, path)| Problem::new(path, "mask has no matching image")),
                );
                (images, masks)
            }
            Some(ids) => {
                let mut images = BTreeMap::new();
                for id in ids {
                    let image = IMAGE_EXTENSIONS.iter().map(|e| image_dir.join(format!("{id}.{e}"))).find(|p| p.is_file());
                    match image {
                        Some(path) => {
                            images.insert(id, path);
                        }
                        None => problems.push(Problem::new(image_dir.join(format!("{id}.jpg")), "listed image is missing")),
                    }
                }
                let masks = images.keys().map(|id| (id.clone(), mask_dir.join(format!("{id}.png")))).filter(|(_, p)| p.is_file()).collect();
                (images, masks)
            }
        };
        let checked: Vec<Result<AdeRecord, Problem>> = images
            .into_par_iter()
            .map(|(id, image_path)| {
                let mask_path = masks
                    .get(&id)
                    .cloned()
                    .ok_or_else(|| Problem::new(&image_path, "image has no matching mask"))?;
                let image_size = header_size(&image_path)?;
                let mask_size = header_size(&mask_path)?;
                if image_size != mask_size {
                    return Err(Problem::new(
                        &mask_path,
                        format!(
                            "mask is {}x{} but its image is {}x{}",
                            mask_size.0, mask_size.1, image_size.0, image_size.1
                        ),
                    ));
                }
                Ok(AdeRecord { id, image_path, mask_path, encoding })
            })
            .collect();
        let records = split_checked(checked, &mut problems);
        log_skipped(&format!("segmentation {} split {split}", root.display()), &problems);
        Ok(Self { root, split: split.to_string(), classes, records, problems })
    }

    /// Decodes every image and mask, checks mask encoding and values, and returns
    /// the pixel count of each label (index 0 = unlabelled). Failing records move
    /// to `problems`.
    pub fn verify(&mut self, on_item: &(dyn Fn() + Sync)) -> Vec<u64> {
        let num_classes = self.classes.len();
        let results: Vec<Result<Vec<u64>, Problem>> = self
            .records
            .par_iter()
            .map(|r| {
                on_item();
                image::open(&r.image_path).map_err(|e| {
                    Problem::new(&r.image_path, format!("image does not decode: {e}"))
                })?;
                let mask = r.read_mask(num_classes)?;
                let mut counts = vec![0u64; num_classes + 1];
                for &v in mask.as_raw() {
                    counts[v as usize] += 1;
                }
                Ok(counts)
            })
            .collect();
        let mut totals = vec![0u64; num_classes + 1];
        let verdicts = results
            .into_iter()
            .map(|result| match result {
                Ok(counts) => {
                    totals.iter_mut().zip(counts).for_each(|(t, c)| *t += c);
                    None
                }
                Err(problem) => Some(problem),
            })
            .collect();
        self.records = keep_passing(std::mem::take(&mut self.records), verdicts, &mut self.problems);
        totals
    }
}

/// Reads an ADE-encoded mask (what Twinhead writes too): single-channel 8-bit,
/// values in `0..=num_classes`.
pub fn read_mask(path: &Path, num_classes: usize) -> Result<GrayImage, Problem> {
    mask_encoding::read_mask(path, num_classes, MaskEncoding::Offset)
}

fn header_size(path: &Path) -> Result<(u32, u32), Problem> {
    image::ImageReader::open(path)
        .and_then(|r| r.with_guessed_format())
        .map_err(|e| Problem::new(path, format!("cannot open: {e}")))?
        .into_dimensions()
        .map_err(|e| Problem::new(path, format!("does not decode: {e}")))
}

fn files_by_stem(dir: &Path, extensions: &[&str]) -> Result<BTreeMap<String, PathBuf>> {
    if !dir.is_dir() {
        bail!("{}: folder does not exist", dir.display());
    }
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
        if ext.is_some_and(|e| extensions.contains(&e.as_str())) {
            // Paired by the stem as text (U+FFFD where it is not UTF-8); the path stays the file's own.
            if let Some(stem) = path.file_stem() {
                files.insert(stem.to_string_lossy().into_owned(), path);
            }
        }
    }
    Ok(files)
}
