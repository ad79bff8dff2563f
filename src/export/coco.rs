//! COCO JSON: results (what `predict --format coco` writes) and the ground truth
//! of a VOC split (what `data export-coco` writes), so pycocotools scores our
//! predictions. Boxes are `[x, y, w, h]` in 0-based continuous pixels: a VOC box
//! (1-based, inclusive) `[xmin, ymin, xmax, ymax]` is `[xmin − 1, ymin − 1,
//! xmax − xmin + 1, ymax − ymin + 1]`. Category ids are 1-based positions in the
//! class list; image ids follow [`coco_image_id`].

use serde_json::{json, Value};

use super::ImagePrediction;
use crate::data::voc::{VocBox, VocRecord};
use crate::data::ClassList;
use crate::eval::predictions::coco_image_id;

/// A VOC box as COCO's `[x, y, w, h]`.
pub fn voc_to_coco_box(b: VocBox) -> [f64; 4] {
    let [x0, y0, x1, y1] = b.map(f64::from);
    [x0 - 1.0, y0 - 1.0, x1 - x0 + 1.0, y1 - y0 + 1.0]
}

/// The COCO results list of `images`.
pub fn results(images: &[ImagePrediction]) -> Vec<Value> {
    images
        .iter()
        .flat_map(|image| {
            image.detections().iter().map(move |d| {
                let [x0, y0, x1, y1] = d.bbox.map(f64::from);
                json!({
                    "image_id": coco_image_id(image.id),
                    "category_id": d.class + 1,
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "score": d.score,
                })
            })
        })
        .collect()
}

/// The COCO ground-truth file of a VOC split: images, annotations (difficult
/// objects as `iscrowd`, as Twinhead's COCO metric treats them) and categories.
pub fn ground_truth(records: &[VocRecord], classes: &ClassList) -> Value {
    let images: Vec<Value> = records
        .iter()
        .map(|r| {
            let file_name = r.image_path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            json!({"id": coco_image_id(&r.id), "file_name": file_name, "width": r.annotation.width, "height": r.annotation.height})
        })
        .collect();
    let annotations: Vec<Value> = records
        .iter()
        .flat_map(|r| r.annotation.objects.iter().map(move |o| (r, o)))
        .enumerate()
        .map(|(i, (r, o))| {
            let bbox = voc_to_coco_box(o.bbox);
            json!({
                "id": i + 1,
                "image_id": coco_image_id(&r.id),
                "category_id": o.class + 1,
                "bbox": bbox,
                "area": bbox[2] * bbox[3],
                "iscrowd": u8::from(o.difficult),
            })
        })
        .collect();
    let categories: Vec<Value> =
        classes.names().iter().enumerate().map(|(i, name)| json!({"id": i + 1, "name": name, "supercategory": "none"})).collect();
    json!({"images": images, "annotations": annotations, "categories": categories})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boxes_convert_between_voc_and_coco() {
        // A 10×20-pixel VOC box starting at pixel 1: COCO [0, 0, 10, 20].
        assert_eq!(voc_to_coco_box([1.0, 1.0, 10.0, 20.0]), [0.0, 0.0, 10.0, 20.0]);
        assert_eq!(voc_to_coco_box([5.5, 3.0, 7.0, 3.0]), [4.5, 2.0, 2.5, 1.0]);
    }
}
