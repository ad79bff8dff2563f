//! A task's training data as one type over the tasks: its source (boxes,
//! masks or class labels; one loader type serves them all) and its batches.

use crate::data::augment::{Augmented, Sample};
use crate::data::batch::{ClsBatch, ClsSource, DetBatch, DetSource, ImageBatch, SampleSource, SegBatch, SegSource};
use crate::data::loader::Position;
use crate::data::problem::Problem;
use crate::data::split::DatasetSplit;
use crate::model::Task;
use super::replay::BufferSource;

/// The training split of one task.
#[derive(Clone)]
pub enum TaskSource {
    Det(DetSource),
    Seg(SegSource),
    Cls(ClsSource),
}

/// A batch of one task's images with their labels.
pub enum TaskBatch {
    Det(DetBatch),
    Seg(SegBatch),
    Cls(ClsBatch),
}

impl TaskBatch {
    pub fn task(&self) -> Task {
        match self {
            Self::Det(_) => Task::Det,
            Self::Seg(_) => Task::Seg,
            Self::Cls(_) => Task::Cls,
        }
    }

    /// The images and where each came from.
    pub fn inputs(&self) -> &ImageBatch {
        match self {
            Self::Det(batch) => &batch.inputs,
            Self::Seg(batch) => &batch.inputs,
            Self::Cls(batch) => &batch.inputs,
        }
    }

    /// The samples left out of the batch because they failed to load.
    pub fn skipped(&self) -> &[Problem] {
        &self.inputs().skipped
    }

    pub fn len(&self) -> usize {
        self.inputs().len()
    }

    pub fn is_empty(&self) -> bool {
        self.inputs().is_empty()
    }
}

impl TaskSource {
    /// A split's records as a source of training samples.
    pub fn new(split: &DatasetSplit) -> Self {
        match split {
            DatasetSplit::Det(split) => Self::Det(DetSource::new(split)),
            DatasetSplit::Seg(split) => Self::Seg(SegSource::new(split)),
            DatasetSplit::Cls(split) => Self::Cls(ClsSource::new(split)),
        }
    }

    fn source(&self) -> &dyn SourceOf {
        match self {
            Self::Det(source) => source,
            Self::Seg(source) => source,
            Self::Cls(source) => source,
        }
    }
}

/// A task's source, its batches made a [`TaskBatch`].
trait SourceOf {
    fn len(&self) -> usize;
    fn id(&self, index: usize) -> &str;
    fn load(&self, index: usize) -> Result<Sample, Problem>;
    fn collate(&self, size: u32, items: Vec<(usize, Augmented)>, position: Position, skipped: Vec<Problem>) -> TaskBatch;
}

macro_rules! source_of {
    ($source:ty, $variant:ident) => {
        impl SourceOf for $source {
            fn len(&self) -> usize {
                SampleSource::len(self)
            }
            fn id(&self, index: usize) -> &str {
                SampleSource::id(self, index)
            }
            fn load(&self, index: usize) -> Result<Sample, Problem> {
                SampleSource::load(self, index)
            }
            fn collate(&self, size: u32, items: Vec<(usize, Augmented)>, position: Position, skipped: Vec<Problem>) -> TaskBatch {
                TaskBatch::$variant(SampleSource::collate(self, size, items, position, skipped))
            }
        }
    };
}

source_of!(DetSource, Det);
source_of!(SegSource, Seg);
source_of!(ClsSource, Cls);

impl SampleSource for TaskSource {
    type Batch = TaskBatch;

    fn len(&self) -> usize {
        self.source().len()
    }

    fn id(&self, index: usize) -> &str {
        self.source().id(index)
    }

    fn load(&self, index: usize) -> Result<Sample, Problem> {
        self.source().load(index)
    }

    fn collate(&self, size: u32, items: Vec<(usize, Augmented)>, position: Position, skipped: Vec<Problem>) -> TaskBatch {
        self.source().collate(size, items, position, skipped)
    }
}

impl BufferSource for TaskSource {
    fn subset(&self, indices: &[usize]) -> Self {
        match self {
            Self::Det(source) => Self::Det(source.subset(indices)),
            Self::Seg(source) => Self::Seg(source.subset(indices)),
            Self::Cls(source) => Self::Cls(source.subset(indices)),
        }
    }
}
