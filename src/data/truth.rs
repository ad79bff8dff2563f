//! The ground truth of a single image found beside it, when the image sits in
//! a dataset: `<root>/JPEGImages/<id>.jpg` has `<root>/Annotations/<id>.xml`
//! (VOC), `<root>/images/<split>/<id>.jpg` has `<root>/annotations/<split>/<id>.png`
//! (ADE20K). Preview uses it to show errors for an image dropped from a dataset.

use std::path::{Path, PathBuf};

use image::GrayImage;

use super::ade::read_mask;
use super::voc::{read_annotation, VocAnnotation};
use super::{ClassList, Problem};

#[derive(Debug, Clone, PartialEq)]
pub enum ImageTruth {
    Boxes(VocAnnotation),
    /// ADE encoding (class + 1, 0 = unlabelled).
    Mask(GrayImage),
}

/// Where the annotation of `image` would be, and which kind.
fn annotation_beside(image: &Path) -> Option<(PathBuf, bool)> {
    let stem = image.file_stem()?.to_str()?;
    let folder = image.parent()?;
    if folder.file_name()? == "JPEGImages" {
        return Some((folder.parent()?.join("Annotations").join(format!("{stem}.xml")), true));
    }
    let split = folder.file_name()?;
    let images = folder.parent()?;
    if images.file_name()? == "images" {
        return Some((images.parent()?.join("annotations").join(split).join(format!("{stem}.png")), false));
    }
    None
}

/// The ground truth beside `image`: `None` when it is not in a dataset layout
/// (or its annotation file is absent), a problem when the file is unreadable or
/// names classes the model does not have.
pub fn truth_beside(image: &Path, det_classes: &ClassList, seg_classes: usize) -> Option<Result<ImageTruth, Problem>> {
    let (path, is_voc) = annotation_beside(image)?;
    if !path.is_file() {
        return None;
    }
    Some(if is_voc {
        read_annotation(&path, det_classes).map(ImageTruth::Boxes)
    } else {
        read_mask(&path, seg_classes).map(ImageTruth::Mask)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annotations_are_found_in_voc_and_ade_layouts_only() {
        let voc = annotation_beside(Path::new("/d/VOC2007/JPEGImages/000005.jpg")).unwrap();
        assert_eq!(voc, (PathBuf::from("/d/VOC2007/Annotations/000005.xml"), true));
        let ade = annotation_beside(Path::new("/d/ADE/images/validation/ADE_val_1.jpg")).unwrap();
        assert_eq!(ade, (PathBuf::from("/d/ADE/annotations/validation/ADE_val_1.png"), false));
        assert_eq!(annotation_beside(Path::new("/home/me/cat.jpg")), None);
        // No file there: nothing to compare with, not an error.
        assert_eq!(truth_beside(Path::new("/nowhere/JPEGImages/1.jpg"), &ClassList::voc(), 150), None);
    }
}
