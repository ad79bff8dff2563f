//! COCO JSON: results (what `predict --format coco` writes) and the ground truth
//! of a VOC split (what `data export-coco` writes), so pycocotools scores our
//! predictions exactly as `eval det --metric coco` does. Boxes are `[x, y, w, h]`
//! made from VOC corners the way Twinhead's COCO metric (and its pycocotools
//! fixtures) read VOC data: `[xmin, ymin, xmax − xmin, ymax − ymin]`; ground truth
//! and predictions alike, so the IoUs are pycocotools' own. Image and category
//! ids are a COCO dataset's own, else numbered (see [`CocoIds`]).

use anyhow::{anyhow, Result};
use serde_json::{json, Value};

use super::ImagePrediction;
use crate::data::preprocess::xyxy_to_voc;
use crate::data::coco::{CocoId, CocoIds};
use crate::data::voc::{VocBox, VocRecord};
use crate::data::ClassList;

/// A VOC box as COCO's `[x, y, w, h]` (see the module's note).
pub fn voc_to_coco_box(b: VocBox) -> [f64; 4] {
    let [x0, y0, x1, y1] = b.map(f64::from);
    [x0, y0, x1 - x0, y1 - y0]
}

/// The COCO results list of `images`, with the ids `ids` gives them.
pub fn results(images: &[ImagePrediction], ids: &CocoIds) -> Result<Vec<Value>> {
    let mut results = Vec::new();
    for image in images {
        let image_id = image_id(ids, image.id)?;
        results.extend(image.detections().iter().map(|d| {
            json!({
                "image_id": image_id,
                "category_id": ids.category(d.class),
                "bbox": voc_to_coco_box(xyxy_to_voc(d.bbox)),
                "score": d.score,
            })
        }));
    }
    Ok(results)
}

fn image_id<'a>(ids: &'a CocoIds, id: &str) -> Result<&'a CocoId> {
    ids.image(id).ok_or_else(|| anyhow!("image {id:?} has no COCO id (it is not among the COCO file's images)"))
}

/// The COCO ground-truth file of a VOC split: images, annotations (difficult
/// objects as `iscrowd`, as Twinhead's COCO metric treats them) and categories.
pub fn ground_truth(records: &[VocRecord], classes: &ClassList, ids: &CocoIds) -> Result<Value> {
    let mut images = Vec::with_capacity(records.len());
    let mut annotations = Vec::new();
    for r in records {
        let image_id = image_id(ids, &r.id)?;
        let file_name = r.image_path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        images.push(json!({"id": image_id, "file_name": file_name, "width": r.annotation.width, "height": r.annotation.height}));
        for o in &r.annotation.objects {
            let bbox = voc_to_coco_box(o.bbox);
            annotations.push(json!({
                "id": annotations.len() + 1,
                "image_id": image_id,
                "category_id": ids.category(o.class),
                "bbox": bbox,
                "area": bbox[2] * bbox[3],
                "iscrowd": u8::from(o.difficult),
            }));
        }
    }
    let categories: Vec<Value> = classes
        .names()
        .iter()
        .zip(ids.categories())
        .map(|(name, id)| json!({"id": id, "name": name, "supercategory": "none"}))
        .collect();
    Ok(json!({"images": images, "annotations": annotations, "categories": categories}))
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
