//! Segmentation masks of any encoding, read into the one encoding the rest of
//! Twinhead uses, ADE's (0 = ignored, `k` = class `k − 1`), so the loader, the
//! metrics and every export work the same on every dataset.

use std::io::BufReader;
use std::path::Path;

use image::GrayImage;
use serde::{Deserialize, Serialize};

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
}
