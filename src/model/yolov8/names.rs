//! Which Ultralytics YOLOv8 module each of our layers is.
//!
//! Our CSP backbone and PAN neck are YOLOv8's layer for layer (yolov8.yaml):
//! the same blocks, channel formula and concatenation orders, so a layer's
//! path maps onto the index of its `model.model` entry, with C2f's
//! bottlenecks under `m` where ours are under `blocks`.

/// Our top-level layers and their YOLOv8 `model.N` module, in yolov8.yaml's
/// order. Layers 10, 11, 13, 14, 17 and 20 (upsampling, concatenation) have
/// no weights; the neck's stride-4 path (`neck.top_down2`) and the
/// segmentation head have no counterpart.
const LAYERS: [(&str, &str); 16] = [
    ("backbone.stem", "model.0"),
    ("backbone.down2", "model.1"),
    ("backbone.stage2", "model.2"),
    ("backbone.down3", "model.3"),
    ("backbone.stage3", "model.4"),
    ("backbone.down4", "model.5"),
    ("backbone.stage4", "model.6"),
    ("backbone.down5", "model.7"),
    ("backbone.stage5", "model.8"),
    ("backbone.sppf", "model.9"),
    ("neck.top_down4", "model.12"),
    ("neck.top_down3", "model.15"),
    ("neck.down3", "model.16"),
    ("neck.bottom_up4", "model.18"),
    ("neck.down4", "model.19"),
    ("neck.bottom_up5", "model.21"),
];

/// Where a layer of ours sits in a YOLOv8 checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Counterpart {
    /// A backbone or neck layer: the checkpoint must hold it.
    Required(String),
    /// A detection-head layer: loaded where the file has it with our shape
    /// (its widths depend on the class count).
    Optional(String),
    /// No YOLOv8 layer computes this one.
    None,
}

/// The YOLOv8 module prefix (`model.2.m.0.cv1`) of our layer `path`
/// (`backbone.stage2.blocks.0.cv1`), as [`EditableLayers`](crate::model::EditableLayers) names it.
pub fn counterpart(path: &str) -> Counterpart {
    for (ours, theirs) in LAYERS {
        if let Some(rest) = path.strip_prefix(ours).filter(|rest| rest.is_empty() || rest.starts_with('.')) {
            return Counterpart::Required(format!("{theirs}{}", rest.replace(".blocks.", ".m.")));
        }
    }
    // The head's hidden layers: Detect's cv3 (classes) and cv2 (boxes), per level.
    let head = path.strip_prefix("det_head.levels.").and_then(|rest| rest.split_once('.'));
    match head {
        Some((level, layer)) => match layer {
            "cls1" => Counterpart::Optional(format!("model.22.cv3.{level}.0")),
            "cls2" => Counterpart::Optional(format!("model.22.cv3.{level}.1")),
            "box1" => Counterpart::Optional(format!("model.22.cv2.{level}.0")),
            "box2" => Counterpart::Optional(format!("model.22.cv2.{level}.1")),
            _ => Counterpart::None,
        },
        None => Counterpart::None,
    }
}

/// The YOLOv8 size whose stem has `channels` output channels (64 × its width).
pub fn size_of_stem(channels: usize) -> Option<&'static str> {
    match channels {
        16 => Some("n"),
        32 => Some("s"),
        48 => Some("m"),
        64 => Some("l"),
        80 => Some("x"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{EditableLayers, ModelConfig, ModelSize, TwinNet};
    use burn::backend::Flex;

    #[test]
    fn backbone_neck_and_head_layers_map_onto_yolov8_modules() {
        let required = |s: &str| Counterpart::Required(s.to_string());
        assert_eq!(counterpart("backbone.stem"), required("model.0"));
        assert_eq!(counterpart("backbone.stage2.cv1"), required("model.2.cv1"));
        assert_eq!(counterpart("backbone.stage3.blocks.1.cv2"), required("model.4.m.1.cv2"));
        assert_eq!(counterpart("backbone.sppf.cv2"), required("model.9.cv2"));
        assert_eq!(counterpart("neck.bottom_up5.blocks.0.cv1"), required("model.21.m.0.cv1"));
        assert_eq!(counterpart("neck.down4"), required("model.19"));
        assert_eq!(counterpart("det_head.levels.2.box1"), Counterpart::Optional("model.22.cv2.2.0".into()));
        assert_eq!(counterpart("det_head.levels.0.cls2"), Counterpart::Optional("model.22.cv3.0.1".into()));
        assert_eq!(counterpart("neck.top_down2.cv1"), Counterpart::None);
        assert_eq!(counterpart("seg_head.lateral.0"), Counterpart::None);
        // A prefix of another layer's name is not that layer.
        assert_eq!(counterpart("backbone.stage20"), Counterpart::None);
    }

    #[test]
    fn every_backbone_and_neck_layer_but_the_stride_4_path_has_a_counterpart() {
        let mut net = TwinNet::<Flex>::new(&ModelConfig::new(ModelSize::N, 20, 150), &Default::default());
        let mut unmapped = Vec::new();
        net.visit_layers("", &mut |path, _| {
            if (path.starts_with("backbone.") || path.starts_with("neck.")) && counterpart(path) == Counterpart::None {
                unmapped.push(path.to_string());
            }
        });
        assert!(unmapped.iter().all(|p| p.starts_with("neck.top_down2.")), "{unmapped:?}");
        assert!(!unmapped.is_empty());
    }
}
