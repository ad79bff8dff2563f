//! Segmentation masks of any encoding, and the `masks` layout: an image folder
//! and a mask folder paired by file stem, with a class list.
//!
//! Every mask is read into the one encoding the rest of Twinhead uses, ADE's
//! (0 = ignored, `k` = class `k − 1`), so the loader, the metrics and every
//! export work the same on every dataset.

use std::io::BufReader;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use image::GrayImage;
use serde::{Deserialize, Serialize};

use super::ade::{self, AdeDataset};
use super::classes::ClassList;
use super::problem::Problem;

/// How a mask PNG's values name classes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum MaskEncoding {
    /// ADE20K: value `k` is class `k − 1`, 0 is ignored.
    #[default]
    Offset,
    /// Train ids (Cityscapes, BDD100K): values `0..N` are classes, 255 is ignored.
    Ignore255,
    /// VOC2012 `SegmentationClass`: palette indices are classes, 255 (the border) is ignored.
    Palette,
}

/// The ignored value of [`MaskEncoding::Ignore255`] and [`MaskEncoding::Palette`].
pub const IGNORE_VALUE: u8 = 255;

impl MaskEncoding {
    pub fn name(self) -> &'static str {
        match self {
            Self::Offset => "offset",
            Self::Ignore255 => "ignore255",
            Self::Palette => "palette",
        }
    }

    /// The ADE-encoded value of class `class`.
    pub fn encode_class(self, class: u8) -> u8 {
        match self {
            Self::Offset => class + 1,
            Self::Ignore255 | Self::Palette => class,
        }
    }

    /// The value of an ignored pixel.
    pub fn ignored(self) -> u8 {
        match self {
            Self::Offset => 0,
            Self::Ignore255 | Self::Palette => IGNORE_VALUE,
        }
    }
}

/// Reads the mask at `path`, written in `encoding`, into ADE's encoding
/// (0 = ignored, `k` = class `k − 1`), checking every value against the
/// `num_classes` classes.
pub fn read_mask(path: &Path, num_classes: usize, encoding: MaskEncoding) -> Result<GrayImage, Problem> {
    let values = match encoding {
        MaskEncoding::Palette => read_palette_indices(path)?,
        MaskEncoding::Offset | MaskEncoding::Ignore255 => read_gray(path)?,
    };
    to_ade(values, num_classes, encoding).map_err(|reason| Problem::new(path, reason))
}

/// ADE's encoding of a mask's raw `values`.
fn to_ade(mut values: GrayImage, num_classes: usize, encoding: MaskEncoding) -> Result<GrayImage, String> {
    let classes = num_classes.min(254);
    let lut: [Option<u8>; 256] = std::array::from_fn(|v| match encoding {
        MaskEncoding::Offset => (v <= classes).then_some(v as u8),
        MaskEncoding::Ignore255 | MaskEncoding::Palette if v == IGNORE_VALUE as usize => Some(0),
        MaskEncoding::Ignore255 | MaskEncoding::Palette => (v < classes).then(|| v as u8 + 1),
    });
    let mut bad: Option<u8> = None;
    for v in values.iter_mut() {
        match lut[*v as usize] {
            Some(ade) => *v = ade,
            None => bad = Some(bad.map_or(*v, |b| b.max(*v))),
        }
    }
    match (bad, encoding) {
        (None, _) => Ok(values),
        (Some(v), MaskEncoding::Offset) => {
            Err(format!("mask has label {v}, above the {num_classes} classes (0 = unlabelled)"))
        }
        (Some(v), _) => Err(format!(
            "mask has value {v}, outside the {num_classes} classes (0..{}) and not the ignored value 255",
            num_classes.saturating_sub(1)
        )),
    }
}

/// A single-channel 8-bit mask, or a clear refusal of a colour-coded one.
fn read_gray(path: &Path) -> Result<GrayImage, Problem> {
    let img = image::open(path).map_err(|e| Problem::new(path, format!("mask does not decode: {e}")))?;
    match img {
        image::DynamicImage::ImageLuma8(mask) => Ok(mask),
        other if other.color().has_color() => Err(colour_mask(path, &format!("{:?}", other.color()))),
        other => Err(Problem::new(path, format!("mask must be single-channel 8-bit, found {:?}", other.color()))),
    }
}

fn colour_mask(path: &Path, found: &str) -> Problem {
    Problem::new(
        path,
        format!(
            "mask is a colour image ({found}): Twinhead reads masks of class ids, not colour codes; \
             use the label-id files (Cityscapes' *_labelTrainIds.png, BDD100K's label PNGs), \
             not *_color.png, or the palette encoding for VOC2012's SegmentationClass"
        ),
    )
}

/// The palette indices of an indexed-colour PNG, unexpanded (what `image`
/// would turn into RGB); a grayscale PNG's values are taken as the indices.
fn read_palette_indices(path: &Path) -> Result<GrayImage, Problem> {
    let problem = |reason: String| Problem::new(path, reason);
    let file = std::fs::File::open(path).map_err(|e| problem(format!("cannot read mask: {e}")))?;
    let mut decoder = png::Decoder::new(BufReader::new(file));
    decoder.set_transformations(png::Transformations::IDENTITY);
    let mut reader = decoder.read_info().map_err(|e| problem(format!("mask does not decode as PNG: {e}")))?;
    let size = reader.output_buffer_size().ok_or_else(|| problem("mask is too large to decode".into()))?;
    let mut buffer = vec![0u8; size];
    let info = reader.next_frame(&mut buffer).map_err(|e| problem(format!("mask does not decode as PNG: {e}")))?;
    match (info.color_type, info.bit_depth) {
        (png::ColorType::Indexed | png::ColorType::Grayscale, png::BitDepth::Eight) => {}
        (png::ColorType::Rgb | png::ColorType::Rgba, _) => return Err(colour_mask(path, &format!("{:?}", info.color_type))),
        (color, depth) => {
            return Err(problem(format!("palette mask must be 8-bit indexed, found {color:?} at {depth:?} bits")))
        }
    }
    let (width, height) = (info.width as usize, info.height as usize);
    let mut values = Vec::with_capacity(width * height);
    for row in buffer.chunks(info.line_size).take(height) {
        values.extend_from_slice(&row[..width]);
    }
    Ok(GrayImage::from_raw(info.width, info.height, values).expect("one byte per pixel"))
}

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

    fn gray(values: &[u8]) -> GrayImage {
        GrayImage::from_raw(values.len() as u32, 1, values.to_vec()).unwrap()
    }

    #[test]
    fn every_encoding_reads_into_ade_values() {
        let ade = to_ade(gray(&[0, 1, 3]), 3, MaskEncoding::Offset).unwrap();
        assert_eq!(ade.as_raw(), &[0, 1, 3]);
        let ade = to_ade(gray(&[255, 0, 2]), 3, MaskEncoding::Ignore255).unwrap();
        assert_eq!(ade.as_raw(), &[0, 1, 3]);
        let ade = to_ade(gray(&[255, 0, 20]), 21, MaskEncoding::Palette).unwrap();
        assert_eq!(ade.as_raw(), &[0, 1, 21]);
    }

    #[test]
    fn values_outside_the_classes_are_named() {
        let err = to_ade(gray(&[0, 4, 9]), 3, MaskEncoding::Offset).unwrap_err();
        assert!(err.contains("label 9") && err.contains("3 classes"), "{err}");
        let err = to_ade(gray(&[255, 19, 3]), 19, MaskEncoding::Ignore255).unwrap_err();
        assert!(err.contains("value 19") && err.contains("not the ignored value 255"), "{err}");
    }

    #[test]
    fn palette_pngs_are_read_as_indices_and_colour_masks_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("2007_000032.png");
        let mut encoder = png::Encoder::new(std::fs::File::create(&path).unwrap(), 3, 2);
        encoder.set_color(png::ColorType::Indexed);
        encoder.set_depth(png::BitDepth::Eight);
        let mut palette = vec![0u8; 256 * 3];
        palette[255 * 3..].copy_from_slice(&[224, 224, 192]);
        encoder.set_palette(palette);
        encoder.write_header().unwrap().write_image_data(&[0, 1, 255, 20, 20, 0]).unwrap();
        let mask = read_mask(&path, 21, MaskEncoding::Palette).unwrap();
        assert_eq!(mask.as_raw(), &[1, 2, 0, 21, 21, 1]);
        // Read as plain gray values, the same file would be colour (image expands palettes).
        let err = read_mask(&path, 21, MaskEncoding::Ignore255).unwrap_err().reason;
        assert!(err.contains("colour image") && err.contains("labelTrainIds"), "{err}");
        let rgb = dir.path().join("aachen_000000_000019_gtFine_color.png");
        image::RgbImage::new(2, 2).save(&rgb).unwrap();
        let err = read_mask(&rgb, 19, MaskEncoding::Ignore255).unwrap_err().reason;
        assert!(err.contains("not *_color.png"), "{err}");
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
