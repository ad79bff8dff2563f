//! The ground truth of a single image found beside it, when the image sits in
//! a dataset: `<root>/JPEGImages/<id>.jpg` has `<root>/Annotations/<id>.xml`
//! (VOC), `<root>/images/<split>/<id>.jpg` has `<root>/annotations/<split>/<id>.png`
//! (ADE20K) or `<root>/labels/<split>/<id>.txt` (YOLO). Preview uses it to show
//! errors for an image dropped from a dataset.

use std::path::{Path, PathBuf};

use image::GrayImage;

use super::ade::read_mask;
use super::voc::{read_annotation, VocAnnotation};
use super::{yolo, ClassList, Problem};

#[derive(Debug, Clone, PartialEq)]
pub enum ImageTruth {
    Boxes(VocAnnotation),
    /// ADE encoding (class + 1, 0 = unlabelled).
    Mask(GrayImage),
}

/// The kinds of annotation file found beside an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Beside {
    VocXml,
    AdeMask,
    YoloLabels,
}

/// Where the annotation of `image` would be, and which kind: the first of the
/// candidates that exists (or the first candidate, when none does).
fn annotation_beside(image: &Path) -> Option<(PathBuf, Beside)> {
    let stem = image.file_stem()?.to_str()?;
    let folder = image.parent()?;
    if folder.file_name()? == "JPEGImages" {
        return Some((folder.parent()?.join("Annotations").join(format!("{stem}.xml")), Beside::VocXml));
    }
    let split = folder.file_name()?;
    let images = folder.parent()?;
    if images.file_name()? == "images" {
        let root = images.parent()?;
        let candidates = [
            (root.join("annotations").join(split).join(format!("{stem}.png")), Beside::AdeMask),
            (root.join("labels").join(split).join(format!("{stem}.txt")), Beside::YoloLabels),
        ];
        let first = candidates[0].clone();
        return Some(candidates.into_iter().find(|(path, _)| path.is_file()).unwrap_or(first));
    }
    None
}

/// The ground truth beside `image`: `None` when it is not in a dataset layout
/// (or its annotation file is absent), a problem when the file is unreadable or
/// names classes the model does not have.
pub fn truth_beside(image: &Path, det_classes: &ClassList, seg_classes: usize) -> Option<Result<ImageTruth, Problem>> {
    let (path, kind) = annotation_beside(image)?;
    if !path.is_file() {
        return None;
    }
    Some(match kind {
        Beside::VocXml => read_annotation(&path, det_classes).map(ImageTruth::Boxes),
        Beside::AdeMask => read_mask(&path, seg_classes).map(ImageTruth::Mask),
        Beside::YoloLabels => yolo::read_label_file(&path, image, det_classes).map(ImageTruth::Boxes),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annotations_are_found_in_voc_and_ade_layouts_only() {
        let voc = annotation_beside(Path::new("/d/VOC2007/JPEGImages/000005.jpg")).unwrap();
        assert_eq!(voc, (PathBuf::from("/d/VOC2007/Annotations/000005.xml"), Beside::VocXml));
        let ade = annotation_beside(Path::new("/d/ADE/images/validation/ADE_val_1.jpg")).unwrap();
        assert_eq!(ade, (PathBuf::from("/d/ADE/annotations/validation/ADE_val_1.png"), Beside::AdeMask));
        assert_eq!(annotation_beside(Path::new("/home/me/cat.jpg")), None);
        // No file there: nothing to compare with, not an error.
        assert_eq!(truth_beside(Path::new("/nowhere/JPEGImages/1.jpg"), &ClassList::voc(), 150), None);
    }

    #[test]
    fn yolo_labels_beside_an_image_are_its_boxes() {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("images/val/1.png");
        std::fs::create_dir_all(image.parent().unwrap()).unwrap();
        std::fs::create_dir_all(dir.path().join("labels/val")).unwrap();
        image::RgbImage::new(40, 20).save(&image).unwrap();
        std::fs::write(dir.path().join("labels/val/1.txt"), "1 0.5 0.5 0.5 0.5\n").unwrap();
        let classes = ClassList::new(vec!["car".into(), "sign".into()]);
        let Some(Ok(ImageTruth::Boxes(a))) = truth_beside(&image, &classes, 9) else { panic!("no boxes") };
        assert_eq!((a.width, a.height, a.objects.len(), a.objects[0].class), (40, 20, 1, 1));
        assert_eq!(a.objects[0].bbox, [11.0, 6.0, 30.0, 15.0]);
    }
}
