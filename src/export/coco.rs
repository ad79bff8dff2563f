//! COCO JSON: results (what `predict --format coco` writes) and the ground truth
//! of a VOC split (what `data export-coco` writes), so pycocotools scores our
//! predictions exactly as `eval det --metric coco` does. Boxes are `[x, y, w, h]`
//! made from VOC corners the way Twinhead's COCO metric (and its pycocotools
//! fixtures) read VOC data: `[xmin, ymin, xmax − xmin, ymax − ymin]`; ground truth
//! and predictions alike, so the IoUs are pycocotools' own. Category ids are
//! 1-based positions in the class list; image ids follow [`coco_image_id`].

use serde_json::{json, Value};

use super::ImagePrediction;
use crate::data::augment::xyxy_to_voc;
use crate::data::voc::{VocBox, VocRecord};
use crate::data::ClassList;
use crate::eval::predictions::coco_image_id;

/// A VOC box as COCO's `[x, y, w, h]` (see the module's note).
pub fn voc_to_coco_box(b: VocBox) -> [f64; 4] {
    let [x0, y0, x1, y1] = b.map(f64::from);
    [x0, y0, x1 - x0, y1 - y0]
}

/// The COCO results list of `images`.
pub fn results(images: &[ImagePrediction]) -> Vec<Value> {
    images
        .iter()
        .flat_map(|image| {
            image.detections().iter().map(move |d| {
                json!({
                    "image_id": coco_image_id(image.id),
                    "category_id": d.class + 1,
                    "bbox": voc_to_coco_box(xyxy_to_voc(d.bbox)),
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
        // Corners kept, sizes as differences (what the COCO metric computes IoUs on).
        assert_eq!(voc_to_coco_box([1.0, 1.0, 10.0, 20.0]), [1.0, 1.0, 9.0, 19.0]);
        assert_eq!(voc_to_coco_box([5.5, 3.0, 7.0, 3.0]), [5.5, 3.0, 1.5, 0.0]);
    }
}
