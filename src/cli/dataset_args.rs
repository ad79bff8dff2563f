//! The options that say what format a dataset folder is in, shared by
//! `data check`, `eval det`, `eval seg` and `data export-coco`.

use std::path::PathBuf;

use crate::data::format::{DetFormat, DetSpec, SegFormat, SegSpec};
use crate::data::masks::{MaskEncoding, MaskPreset, MaskSpec};

#[derive(Debug, Clone, clap::Args)]
pub struct DetFormatArgs {
    /// The detection dataset's format (default: detected from the layout).
    #[arg(long, value_enum)]
    pub det_format: Option<DetFormat>,
}

impl DetFormatArgs {
    pub fn spec(&self, dir: PathBuf) -> DetSpec {
        DetSpec::new(dir, self.det_format)
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct SegFormatArgs {
    /// The segmentation dataset's format (default: detected from the layout;
    /// masks when a preset, encoding or class list is given).
    #[arg(long, value_enum)]
    pub seg_format: Option<SegFormat>,
    /// A known mask dataset: its encoding and classes.
    #[arg(long, value_enum)]
    pub seg_preset: Option<MaskPreset>,
    /// How mask values name classes.
    #[arg(long, value_enum)]
    pub seg_encoding: Option<MaskEncoding>,
    /// The mask classes' list file (one name per line; default: the dataset's classes.txt).
    #[arg(long)]
    pub seg_classes: Option<PathBuf>,
}

impl SegFormatArgs {
    pub fn spec(&self, dir: PathBuf) -> SegSpec {
        let masks = MaskSpec { preset: self.seg_preset, encoding: self.seg_encoding, classes: self.seg_classes.clone() };
        SegSpec::new(dir, self.seg_format, masks)
    }
}
