//! The `masks` layout: an image folder and a mask folder paired by file stem,
//! with a class list, its well-known presets, and the encoding told from the
//! masks themselves (the encodings are in `mask_encoding`).

use std::io::BufReader;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use super::ade::{self, AdeDataset};
pub use super::mask_encoding::{read_mask, MaskEncoding, IGNORE_VALUE};
use super::classes::ClassList;

/// Well-known mask datasets: their encoding and classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum MaskPreset {
    /// ADE20K / SceneParse150: offset encoding, 150 classes.
    Ade20k,
    /// BDD100K (and Cityscapes train ids): 19 classes, 255 ignored.
    Bdd100k,
    /// VOC2012 `SegmentationClass`: palette PNGs, 21 classes (background included), 255 ignored.
    Voc2012,
}

const CITYSCAPES_LIST: &str = include_str!("../../assets/classes/cityscapes19.txt");
const VOC2012_SEG_LIST: &str = include_str!("../../assets/classes/voc2012seg21.txt");

impl MaskPreset {
    pub fn encoding(self) -> MaskEncoding {
        match self {
            Self::Ade20k => MaskEncoding::Offset,
            Self::Bdd100k => MaskEncoding::Ignore255,
            Self::Voc2012 => MaskEncoding::Palette,
        }
    }

    pub fn classes(self) -> ClassList {
        match self {
            Self::Ade20k => ClassList::ade(),
            Self::Bdd100k => ClassList::from_text(CITYSCAPES_LIST),
            Self::Voc2012 => ClassList::from_text(VOC2012_SEG_LIST),
        }
    }
}

/// How to read a `masks` dataset; unset fields come from the preset, then from
/// the dataset (`classes.txt` in its root) and the `offset` encoding.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MaskSpec {
    pub preset: Option<MaskPreset>,
    pub encoding: Option<MaskEncoding>,
    /// A class list file (one name per line).
    pub classes: Option<PathBuf>,
}

/// The class list file a `masks` dataset carries in its root (as VOC-format data may).
pub use super::voc::CLASS_LIST_FILE;

/// Mask folder names accepted beside `images/`, in the order they are looked for.
pub const MASK_FOLDERS: [&str; 4] = ["masks", "labels", "annotations", "SegmentationClass"];

/// Image folder names accepted, in the order they are looked for.
pub const IMAGE_FOLDERS: [&str; 2] = ["images", "JPEGImages"];

/// The image and mask folders of a `masks` dataset root, when it has them.
pub fn folders(root: &Path) -> Option<(PathBuf, PathBuf)> {
    let images = IMAGE_FOLDERS.iter().map(|f| root.join(f)).find(|p| p.is_dir())?;
    let masks = MASK_FOLDERS.iter().map(|f| root.join(f)).find(|p| p.is_dir())?;
    Some((images, masks))
}

/// Split lists of a VOC2012-style root (`ImageSets/Segmentation/<split>.txt`).
fn split_list(root: &Path, split: &str) -> Option<PathBuf> {
    let path = root.join("ImageSets").join("Segmentation").join(format!("{split}.txt"));
    path.is_file().then_some(path)
}

/// The splits of a `masks` root: sub-folders of the image folder, VOC2012's
/// split lists, or [`ade::FLAT_SPLIT`] for a flat pair of folders.
pub fn available_splits(root: &Path) -> Vec<String> {
    let Some((images, _)) = folders(root) else { return Vec::new() };
    let lists: Vec<String> = std::fs::read_dir(root.join("ImageSets").join("Segmentation"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(".txt").map(str::to_string))
        .collect();
    let mut splits = if lists.is_empty() { ade::sub_folders(&images) } else { lists };
    splits.sort();
    if splits.is_empty() {
        splits.push(ade::FLAT_SPLIT.to_string());
    }
    splits
}

impl MaskSpec {
    /// The class list and encoding for the dataset at `root`.
    pub fn resolve(&self, root: &Path) -> Result<(ClassList, MaskEncoding)> {
        let in_root = root.join(CLASS_LIST_FILE);
        let classes = match (&self.classes, self.preset) {
            (Some(path), _) => ClassList::read_plain(path)?,
            (None, Some(preset)) => preset.classes(),
            (None, None) if in_root.is_file() => ClassList::read_plain(&in_root)?,
            (None, None) => bail!(
                "{}: a masks dataset needs its class list: a {CLASS_LIST_FILE} in its root, \
                 data.seg_classes, or a preset (data.seg_preset = ade20k, bdd100k or voc2012)",
                root.display()
            ),
        };
        if classes.len() > 254 {
            bail!("{}: {} classes, but masks hold at most 254 (values 0-253, 255 ignored)", root.display(), classes.len());
        }
        let encoding = match self.encoding.or(self.preset.map(MaskPreset::encoding)) {
            Some(encoding) => encoding,
            None => folders(root).map_or(MaskEncoding::default(), |(_, masks)| detect_encoding(&masks, classes.len())),
        };
        Ok((classes, encoding))
    }
}

/// Masks looked at to tell a dataset's encoding.
const ENCODING_SAMPLES: usize = 16;

/// The encoding of the masks under `mask_dir` (split folders included), told
/// from the first few: palette PNGs are `palette`; a value of 255 with fewer
/// than 255 classes is the ignored value of `ignore255`; a value equal to the
/// class count exists only in `offset`, which is also what is left when the
/// values cannot tell.
pub fn detect_encoding(mask_dir: &Path, num_classes: usize) -> MaskEncoding {
    let mut files = Vec::new();
    let mut dirs = vec![mask_dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir).into_iter().flatten().flatten().map(|e| e.path()).collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("png")) && files.len() < ENCODING_SAMPLES {
                files.push(path);
            }
        }
        if files.len() >= ENCODING_SAMPLES {
            break;
        }
    }
    for path in files {
        let Ok(file) = std::fs::File::open(&path) else { continue };
        let Ok(reader) = png::Decoder::new(BufReader::new(file)).read_info() else { continue };
        if reader.info().color_type == png::ColorType::Indexed {
            return MaskEncoding::Palette;
        }
        let Ok(image::DynamicImage::ImageLuma8(values)) = image::open(&path) else { continue };
        let max = values.iter().copied().filter(|&v| v != IGNORE_VALUE).max().unwrap_or(0) as usize;
        if num_classes < IGNORE_VALUE as usize && values.iter().any(|&v| v == IGNORE_VALUE) {
            return MaskEncoding::Ignore255;
        }
        if max == num_classes {
            return MaskEncoding::Offset;
        }
    }
    MaskEncoding::Offset
}

/// Opens one split of a `masks` dataset.
pub fn open(root: &Path, split: &str, spec: &MaskSpec) -> Result<AdeDataset> {
    let (split, pairing) = pairing(root, split)?;
    let (classes, encoding) = spec.resolve(root)?;
    AdeDataset::pair(root.to_path_buf(), &split, classes, encoding, pairing)
}

/// The name and the folders (or list) of split `split` of the `masks` root `root`.
pub fn pairing(root: &Path, split: &str) -> Result<(String, ade::Pairing)> {
    let Some((images, masks)) = folders(root) else {
        bail!("{}: not a masks dataset (expected {} and {} here)", root.display(), IMAGE_FOLDERS.join("/"), MASK_FOLDERS.join("/"));
    };
    let available = available_splits(root);
    let split = if available.contains(&split.to_string()) {
        split.to_string()
    } else {
        ade::canonical_split(split).to_string()
    };
    if !available.contains(&split) {
        bail!("{}: split {split:?} not found (available splits: {})", root.display(), available.join(", "));
    }
    let pairing = if let Some(list) = split_list(root, &split) {
        let text = std::fs::read_to_string(&list).map_err(|e| anyhow::anyhow!("{}: cannot read: {e}", list.display()))?;
        let ids: Vec<String> = text.lines().filter_map(|l| l.split_whitespace().next()).map(str::to_string).collect();
        ade::Pairing { image_dir: images, mask_dir: masks, ids: Some(ids) }
    } else if split == ade::FLAT_SPLIT {
        ade::Pairing { image_dir: images, mask_dir: masks, ids: None }
    } else {
        ade::Pairing { image_dir: images.join(&split), mask_dir: masks.join(&split), ids: None }
    };
    Ok((split, pairing))
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::GrayImage;

    fn gray(values: &[u8]) -> GrayImage {
        GrayImage::from_raw(values.len() as u32, 1, values.to_vec()).unwrap()
    }

    #[test]
    fn the_encoding_is_told_from_the_masks() {
        let dir = tempfile::tempdir().unwrap();
        let save = |name: &str, values: &[u8]| {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            gray(values).save(&path).unwrap();
        };
        // Values 0..3 fit both encodings: offset is assumed.
        save("a/training/1.png", &[0, 1, 2]);
        assert_eq!(detect_encoding(&dir.path().join("a"), 3), MaskEncoding::Offset);
        // The class count itself exists only in offset.
        save("b/1.png", &[0, 3]);
        assert_eq!(detect_encoding(&dir.path().join("b"), 3), MaskEncoding::Offset);
        // 255 beside class values is the ignored value of train ids, found in a split folder.
        save("c/training/1.png", &[0, 1]);
        save("c/validation/1.png", &[255, 0, 2]);
        assert_eq!(detect_encoding(&dir.path().join("c"), 3), MaskEncoding::Ignore255);
        let mut encoder = png::Encoder::new(std::fs::File::create(dir.path().join("p.png")).unwrap(), 1, 1);
        encoder.set_color(png::ColorType::Indexed);
        encoder.set_palette(vec![0u8; 3]);
        encoder.write_header().unwrap().write_image_data(&[0]).unwrap();
        std::fs::create_dir_all(dir.path().join("d")).unwrap();
        std::fs::rename(dir.path().join("p.png"), dir.path().join("d/p.png")).unwrap();
        assert_eq!(detect_encoding(&dir.path().join("d"), 21), MaskEncoding::Palette);
    }

    #[test]
    fn presets_have_their_sizes() {
        assert_eq!(MaskPreset::Bdd100k.classes().len(), 19);
        assert_eq!(MaskPreset::Voc2012.classes().len(), 21);
        assert_eq!(MaskPreset::Voc2012.classes().name(0), "background");
        assert_eq!(MaskPreset::Ade20k.classes().len(), 150);
    }
}
