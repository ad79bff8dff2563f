//! What the loader reads and what it yields: sample sources (detection
//! records, segmentation records, classification records) and the batches ready for Burn.

use std::path::Path;
use std::sync::{Arc, Mutex};

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use image::RgbImage;

use super::ade::{AdeDataset, AdeRecord};
use super::augment::{ade_to_class_mask, normalize_jittered_into, Augmented, Sample, Target};
use super::preprocess::{voc_to_xyxy, Letterbox};
use super::classes::ClassList;
use super::classify::{ClsDataset, ClsRecord};
use super::problem::Problem;
use super::voc::{VocDataset, VocRecord};

/// A place in the loader's stream: batch `batch` of epoch `epoch` (both 0-based).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, serde::Serialize, serde::Deserialize,
)]
pub struct Position {
    pub epoch: usize,
    pub batch: usize,
}

/// A dataset the loader can draw samples from.
///
/// `load` decodes sample `index` (any order, from several threads at once) and
/// reports a broken file as a [`Problem`] instead of panicking; `collate` packs
/// augmented samples (with their dataset indices) into a batch.
pub trait SampleSource: Send + Sync + 'static {
    type Batch: Send + 'static;
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The sample's id (VOC image id, ADE file stem).
    fn id(&self, index: usize) -> &str;
    fn load(&self, index: usize) -> Result<Sample, Problem>;
    fn collate(
        &self,
        size: u32,
        items: Vec<(usize, Augmented)>,
        position: Position,
        skipped: Vec<Problem>,
    ) -> Self::Batch;
}

/// A shared source (`Arc<DetSource>`) is a source too, so several loaders can share one.
impl<T: SampleSource> SampleSource for std::sync::Arc<T> {
    type Batch = T::Batch;
    fn len(&self) -> usize {
        (**self).len()
    }
    fn id(&self, index: usize) -> &str {
        (**self).id(index)
    }
    fn load(&self, index: usize) -> Result<Sample, Problem> {
        (**self).load(index)
    }
    fn collate(
        &self,
        size: u32,
        items: Vec<(usize, Augmented)>,
        position: Position,
        skipped: Vec<Problem>,
    ) -> Self::Batch {
        (**self).collate(size, items, position, skipped)
    }
}

/// Decodes an image file (format guessed from its bytes) to RGB.
pub fn decode_rgb(path: &Path) -> Result<RgbImage, Problem> {
    let bytes = std::fs::read(path).map_err(|e| Problem::new(path, format!("cannot read image: {e}")))?;
    let img = image::load_from_memory(&bytes)
        .map_err(|e| Problem::new(path, format!("image does not decode: {e}")))?;
    Ok(img.into_rgb8())
}

/// Image buffers given back by dropped batches, reused by the next ones: a fresh
/// batch buffer (48 MiB at 16 × 3 × 512²) costs a page fault per 4 KiB page,
/// which was a quarter of the loader's CPU time.
#[derive(Debug, Clone, Default)]
pub(crate) struct BufferPool(Arc<Mutex<Vec<Vec<f32>>>>);

impl BufferPool {
    /// Buffers kept at most (more are freed).
    const KEEP: usize = 8;

    /// A zeroed buffer of `len` floats, reused when one is available.
    fn take(&self, len: usize) -> Vec<f32> {
        let reused = self.0.lock().ok().and_then(|mut pool| pool.pop());
        match reused {
            Some(mut buffer) => {
                buffer.clear();
                buffer.resize(len, 0.0);
                buffer
            }
            None => vec![0.0; len],
        }
    }

    fn give_back(&self, buffer: Vec<f32>) {
        if buffer.capacity() == 0 {
            return;
        }
        if let Ok(mut pool) = self.0.lock() {
            if pool.len() < Self::KEEP {
                pool.push(buffer);
            }
        }
    }
}

/// Normalised images of `items` as one NCHW buffer.
fn pack_images(pool: &BufferPool, size: u32, items: &[(usize, Augmented)]) -> Vec<f32> {
    let plane = 3 * (size * size) as usize;
    let mut images = pool.take(items.len() * plane);
    for ((_, item), out) in items.iter().zip(images.chunks_exact_mut(plane)) {
        normalize_jittered_into(&item.image, item.letterbox.content_rect(), item.jitter, out);
    }
    images
}

/// Detection samples from VOC records.
#[derive(Debug, Clone)]
pub struct DetSource {
    pub records: Vec<VocRecord>,
    pub classes: ClassList,
    pool: BufferPool,
}

impl DetSource {
    pub fn new(dataset: &VocDataset) -> Self {
        Self::from_parts(dataset.records.clone(), dataset.classes.clone())
    }

    /// A source over some records (a subset, a merge of splits).
    pub fn from_parts(records: Vec<VocRecord>, classes: ClassList) -> Self {
        Self { records, classes, pool: BufferPool::default() }
    }
}

/// What every batch carries besides its labels: the normalised images and
/// where each came from.
#[derive(Debug, Clone)]
pub struct ImageBatch {
    /// `N·3·size·size` floats, NCHW, RGB normalised with ImageNet mean and std.
    pub images: Vec<f32>,
    pub size: usize,
    pub ids: Vec<String>,
    /// Dataset index of each image.
    pub indices: Vec<usize>,
    /// Per image: the map from the original image to the input, to map predictions back.
    pub letterboxes: Vec<Letterbox>,
    /// Where this batch lies in the loader's stream.
    pub position: Position,
    /// Samples of this batch left out because they failed to load.
    pub skipped: Vec<Problem>,
    /// Where `images` goes back when the batch is dropped.
    pool: BufferPool,
}

impl Drop for ImageBatch {
    fn drop(&mut self) {
        self.pool.give_back(std::mem::take(&mut self.images));
    }
}

impl ImageBatch {
    /// Packs the images of `items` (their ids and letterboxes too).
    fn collate<S: SampleSource>(
        source: &S,
        pool: &BufferPool,
        size: u32,
        items: &[(usize, Augmented)],
        position: Position,
        skipped: Vec<Problem>,
    ) -> Self {
        Self {
            images: pack_images(pool, size, items),
            size: size as usize,
            ids: items.iter().map(|(index, _)| source.id(*index).to_string()).collect(),
            indices: items.iter().map(|(index, _)| *index).collect(),
            letterboxes: items.iter().map(|(_, item)| item.letterbox).collect(),
            position,
            skipped,
            pool: pool.clone(),
        }
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The images as a `[N, 3, size, size]` float tensor.
    pub fn images<B: Backend>(&self, device: &B::Device) -> Tensor<B, 4> {
        Tensor::from_data(TensorData::new(self.images.to_vec(), [self.len(), 3, self.size, self.size]), device)
    }
}

/// A batch of detection samples, `size`×`size`, ready for the network.
#[derive(Debug, Clone)]
pub struct DetBatch {
    pub inputs: ImageBatch,
    /// Per image: boxes in input pixel coordinates `[x0, y0, x1, y1]` (0-based, continuous).
    pub boxes: Vec<Vec<[f32; 4]>>,
    /// Per image: class index of each box.
    pub labels: Vec<Vec<usize>>,
    /// Per image: the VOC `difficult` flag of each box.
    pub difficult: Vec<Vec<bool>>,
}

/// The shared fields (`ids`, `letterboxes`, `images(device)` …) read through.
impl std::ops::Deref for DetBatch {
    type Target = ImageBatch;
    fn deref(&self) -> &ImageBatch {
        &self.inputs
    }
}

impl SampleSource for DetSource {
    type Batch = DetBatch;

    fn len(&self) -> usize {
        self.records.len()
    }

    fn id(&self, index: usize) -> &str {
        &self.records[index].id
    }

    fn load(&self, index: usize) -> Result<Sample, Problem> {
        let record = &self.records[index];
        let image = decode_rgb(&record.image_path)?;
        let (w, h) = (record.annotation.width, record.annotation.height);
        if image.dimensions() != (w, h) {
            return Err(Problem::new(
                &record.image_path,
                format!("image is {}x{} but the annotation says {w}x{h}", image.width(), image.height()),
            ));
        }
        let targets = record
            .annotation
            .objects
            .iter()
            .map(|o| Target { bbox: voc_to_xyxy(o.bbox), class: o.class, difficult: o.difficult })
            .collect();
        Ok(Sample { image, targets, mask: None })
    }

    fn collate(
        &self,
        size: u32,
        items: Vec<(usize, Augmented)>,
        position: Position,
        skipped: Vec<Problem>,
    ) -> DetBatch {
        DetBatch {
            inputs: ImageBatch::collate(self, &self.pool, size, &items, position, skipped),
            boxes: items.iter().map(|(_, item)| item.targets.iter().map(|t| t.bbox).collect()).collect(),
            labels: items.iter().map(|(_, item)| item.targets.iter().map(|t| t.class).collect()).collect(),
            difficult: items.iter().map(|(_, item)| item.targets.iter().map(|t| t.difficult).collect()).collect(),
        }
    }
}

/// Segmentation samples from ADE records; masks become class indices (label
/// `k` → `k - 1`) with 255 for unlabelled pixels and padding.
#[derive(Debug, Clone)]
pub struct SegSource {
    pub records: Vec<AdeRecord>,
    pub classes: ClassList,
    pool: BufferPool,
}

impl SegSource {
    pub fn new(dataset: &AdeDataset) -> Self {
        Self::from_parts(dataset.records.clone(), dataset.classes.clone())
    }

    /// A source over some records (a subset, a merge of splits).
    pub fn from_parts(records: Vec<AdeRecord>, classes: ClassList) -> Self {
        Self { records, classes, pool: BufferPool::default() }
    }
}

/// A batch of segmentation samples, `size`×`size`, ready for the network.
#[derive(Debug, Clone)]
pub struct SegBatch {
    pub inputs: ImageBatch,
    /// `N·size·size` class indices, 255 = ignore.
    pub masks: Vec<u8>,
}

/// The shared fields (`ids`, `letterboxes`, `images(device)` …) read through.
impl std::ops::Deref for SegBatch {
    type Target = ImageBatch;
    fn deref(&self) -> &ImageBatch {
        &self.inputs
    }
}

impl SegBatch {
    /// The masks as a `[N, size, size]` int tensor of class indices, 255 = ignore.
    pub fn masks<B: Backend>(&self, device: &B::Device) -> Tensor<B, 3, Int> {
        mask_tensor(&self.masks, self.len(), self.size, device)
    }
}

/// `n` square masks of `size`² class indices (255 = ignore) as a `[n, size, size]` int tensor.
pub fn mask_tensor<B: Backend>(masks: &[u8], n: usize, size: usize, device: &B::Device) -> Tensor<B, 3, Int> {
    let data: Vec<i64> = masks.iter().map(|&m| m as i64).collect();
    Tensor::from_data(TensorData::new(data, [n, size, size]), device)
}

impl SampleSource for SegSource {
    type Batch = SegBatch;

    fn len(&self) -> usize {
        self.records.len()
    }

    fn id(&self, index: usize) -> &str {
        &self.records[index].id
    }

    fn load(&self, index: usize) -> Result<Sample, Problem> {
        let record = &self.records[index];
        let image = decode_rgb(&record.image_path)?;
        let mut mask = record.read_mask(self.classes.len())?;
        if mask.dimensions() != image.dimensions() {
            return Err(Problem::new(
                &record.mask_path,
                format!(
                    "mask is {}x{} but its image is {}x{}",
                    mask.width(),
                    mask.height(),
                    image.width(),
                    image.height()
                ),
            ));
        }
        ade_to_class_mask(&mut mask, self.classes.len());
        Ok(Sample { image, targets: Vec::new(), mask: Some(mask) })
    }

    fn collate(
        &self,
        size: u32,
        items: Vec<(usize, Augmented)>,
        position: Position,
        skipped: Vec<Problem>,
    ) -> SegBatch {
        let mut masks = Vec::with_capacity(items.len() * (size * size) as usize);
        for (_, item) in &items {
            masks.extend_from_slice(item.mask.as_ref().expect("segmentation samples carry a mask").as_raw());
        }
        SegBatch { inputs: ImageBatch::collate(self, &self.pool, size, &items, position, skipped), masks }
    }
}

/// Classification samples: an image and its class.
#[derive(Debug, Clone)]
pub struct ClsSource {
    pub records: Vec<ClsRecord>,
    pub classes: ClassList,
    pool: BufferPool,
}

impl ClsSource {
    pub fn new(dataset: &ClsDataset) -> Self {
        Self::from_parts(dataset.records.clone(), dataset.classes.clone())
    }

    /// A source over some records (a subset, a merge of splits).
    pub fn from_parts(records: Vec<ClsRecord>, classes: ClassList) -> Self {
        Self { records, classes, pool: BufferPool::default() }
    }
}

/// A batch of classification samples, `size`×`size`, ready for the network.
#[derive(Debug, Clone)]
pub struct ClsBatch {
    pub inputs: ImageBatch,
    /// Class index of each image.
    pub labels: Vec<usize>,
}

/// The shared fields (`ids`, `letterboxes`, `images(device)` …) read through.
impl std::ops::Deref for ClsBatch {
    type Target = ImageBatch;
    fn deref(&self) -> &ImageBatch {
        &self.inputs
    }
}

impl ClsBatch {
    /// The labels as a `[N]` int tensor.
    pub fn labels<B: Backend>(&self, device: &B::Device) -> Tensor<B, 1, Int> {
        let data: Vec<i64> = self.labels.iter().map(|&c| c as i64).collect();
        Tensor::from_data(TensorData::new(data, [self.labels.len()]), device)
    }
}

impl SampleSource for ClsSource {
    type Batch = ClsBatch;

    fn len(&self) -> usize {
        self.records.len()
    }

    fn id(&self, index: usize) -> &str {
        &self.records[index].id
    }

    fn load(&self, index: usize) -> Result<Sample, Problem> {
        let image = decode_rgb(&self.records[index].image_path)?;
        Ok(Sample { image, targets: Vec::new(), mask: None })
    }

    fn collate(&self, size: u32, items: Vec<(usize, Augmented)>, position: Position, skipped: Vec<Problem>) -> ClsBatch {
        ClsBatch {
            labels: items.iter().map(|(index, _)| self.records[*index].class).collect(),
            inputs: ImageBatch::collate(self, &self.pool, size, &items, position, skipped),
        }
    }
}
