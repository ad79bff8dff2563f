//! Metrics, independent of any model: detection AP (VOC07, VOC, COCO) and
//! segmentation mIoU.
