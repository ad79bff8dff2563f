//! The parallel, deterministic, resumable batch loader.
//!
//! A [`Loader`] turns a [`SampleSource`] into an ordered stream of batches,
//! epoch after epoch. Worker threads decode and augment whole batches; the
//! consumer hands out batch numbers through a bounded job channel and gets the
//! results back through a bounded result channel, so at most
//! `max(prefetch, threads)` batches are prepared ahead, and batches come out in
//! order whatever thread finished first.
//!
//! Determinism: epoch `e`'s sample order is a permutation drawn from `(seed, e)`,
//! and sample `i`'s augmentation generator from `(seed, e, i)`. Nothing depends
//! on the thread count or timing, so a batch is a pure function of
//! `(source, config, position)`: [`load_batch`] computes one directly, and
//! [`Loader::starting_at`] resumes the stream at any `(epoch, batch)`.
//!
//! A sample that fails to load (missing file, corrupt JPEG, size mismatch) is
//! left out of its batch (which comes out shorter), listed in the batch's
//! `skipped`, counted in [`Loader::skipped`], kept in [`Loader::problems`] and
//! logged with `tracing::warn!` the first time. A batch where every sample
//! failed is not yielded at all; after a whole epoch of such batches (the
//! dataset went away under a run) the stream ends rather than spin.
//! [`Loader::problems`] keeps the first [`KEPT_PROBLEMS`]; the rest are counted.
//!
//! Dropping the loader stops the workers (they finish at most the sample they
//! are on) and joins them.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use anyhow::{bail, ensure, Result};
use crossbeam_channel::{bounded, Receiver, Sender};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::augment::{augment_deferred, AugmentConfig};
pub use super::batch::{Position, SampleSource};
use super::problem::Problem;
use super::synth::mix;

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LoaderConfig {
    pub batch_size: usize,
    pub seed: u64,
    /// Draw a new sample order each epoch (training); `false` keeps dataset order.
    pub shuffle: bool,
    /// Leave out the last, short batch of each epoch.
    pub drop_last: bool,
    /// Worker threads; 0 prepares each batch on the calling thread when it is asked for.
    pub threads: usize,
    /// Batches prepared ahead of the consumer (at least `threads` are).
    pub prefetch: usize,
    /// Stop after this many epochs; `None` runs on forever.
    pub epochs: Option<usize>,
    pub augment: AugmentConfig,
    /// Which part of each batch this loader prepares (data-parallel replicas).
    #[serde(default)]
    pub shard: Shard,
}

/// Part `index` of `count` of every batch: a contiguous slice of the batch's
/// samples, so the union of a step's shards is the batch one loader gives
/// (a sample's augmentation depends only on `(seed, epoch, index)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Default for Shard {
    fn default() -> Self {
        Self { index: 0, count: 1 }
    }
}

impl Shard {
    /// This shard's part of the samples `start..end`: the first `len % count`
    /// shards take one more, as an uneven last batch divides.
    pub fn slice(self, start: usize, end: usize) -> (usize, usize) {
        let (len, count) = (end - start, self.count.max(1));
        let at = |i: usize| start + i * (len / count) + i.min(len % count);
        (at(self.index), at(self.index + 1))
    }
}

impl LoaderConfig {
    /// Training: shuffled, last short batch dropped, train-mode augmentation, endless.
    pub fn train(size: u32, batch_size: usize, seed: u64) -> Self {
        Self {
            batch_size,
            seed,
            shuffle: true,
            drop_last: true,
            threads: default_threads(),
            prefetch: 4,
            epochs: None,
            augment: AugmentConfig::train(size),
            shard: Shard::default(),
        }
    }

    /// Evaluation: dataset order, every sample once, letterbox only.
    pub fn eval(size: u32, batch_size: usize) -> Self {
        Self {
            batch_size,
            seed: 0,
            shuffle: false,
            drop_last: false,
            threads: default_threads(),
            prefetch: 4,
            epochs: Some(1),
            augment: AugmentConfig::eval(size),
            shard: Shard::default(),
        }
    }

    /// Batches in one epoch of `len` samples.
    pub fn batches_per_epoch(&self, len: usize) -> usize {
        if self.batch_size == 0 {
            0
        } else if self.drop_last {
            len / self.batch_size
        } else {
            len.div_ceil(self.batch_size)
        }
    }
}

/// The machine's available parallelism (1 when unknown).
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The order in which epoch `epoch` visits the `len` samples.
pub fn epoch_order(len: usize, seed: u64, epoch: usize, shuffle: bool) -> Vec<usize> {
    let mut order: Vec<usize> = (0..len).collect();
    if shuffle {
        // Fisher-Yates on our own draws, so the order depends only on ChaCha8's stream.
        let mut rng = ChaCha8Rng::seed_from_u64(mix(&[seed, epoch as u64, 0x5EED_0A7D]));
        for i in (1..len).rev() {
            let j = (rng.next_u64() % (i as u64 + 1)) as usize;
            order.swap(i, j);
        }
    }
    order
}

/// The augmentation generator of sample `index` in epoch `epoch`.
pub fn sample_rng(seed: u64, epoch: usize, index: usize) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(mix(&[seed, epoch as u64, index as u64, 0xA06]))
}

/// One batch, prepared on the calling thread, with the problems of the samples left out.
pub fn load_batch<S: SampleSource>(
    source: &S,
    config: &LoaderConfig,
    position: Position,
) -> (S::Batch, Vec<Problem>) {
    let order = epoch_order(source.len(), config.seed, position.epoch, config.shuffle);
    let built = build_batch(source, config, &order, position, &AtomicBool::new(false));
    (built.batch, built.problems)
}

struct Built<T> {
    batch: T,
    len: usize,
    problems: Vec<Problem>,
}

fn build_batch<S: SampleSource>(
    source: &S,
    config: &LoaderConfig,
    order: &[usize],
    position: Position,
    cancel: &AtomicBool,
) -> Built<S::Batch> {
    let start = (position.batch * config.batch_size).min(order.len());
    let end = (start + config.batch_size).min(order.len());
    let (start, end) = config.shard.slice(start, end);
    let mut items = Vec::with_capacity(end - start);
    let mut problems = Vec::new();
    for &index in &order[start..end] {
        if cancel.load(Ordering::Relaxed) {
            break;
        }
        match source.load(index) {
            Ok(sample) => {
                let mut rng = sample_rng(config.seed, position.epoch, index);
                items.push((index, augment_deferred(&sample, &config.augment, &mut rng)));
            }
            Err(problem) => problems.push(problem),
        }
    }
    let len = items.len();
    let batch = source.collate(config.augment.size, items, position, problems.clone());
    Built { batch, len, problems }
}

struct Shared<S> {
    source: Arc<S>,
    config: LoaderConfig,
    batches_per_epoch: usize,
    /// Absolute batch number (epoch · batches_per_epoch + batch) of sequence number 0.
    start: u64,
    cancel: AtomicBool,
    /// The sample order of the epoch computed last.
    order: Mutex<Option<(usize, Arc<Vec<usize>>)>>,
}

impl<S: SampleSource> Shared<S> {
    fn position(&self, seq: u64) -> Position {
        let abs = self.start + seq;
        let bpe = self.batches_per_epoch as u64;
        Position { epoch: (abs / bpe) as usize, batch: (abs % bpe) as usize }
    }

    fn order(&self, epoch: usize) -> Arc<Vec<usize>> {
        let mut cached = self.order.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((e, order)) = cached.as_ref() {
            if *e == epoch {
                return order.clone();
            }
        }
        let order = Arc::new(epoch_order(self.source.len(), self.config.seed, epoch, self.config.shuffle));
        *cached = Some((epoch, order.clone()));
        order
    }

    fn build(&self, seq: u64) -> Built<S::Batch> {
        let position = self.position(seq);
        let order = self.order(position.epoch);
        build_batch(&*self.source, &self.config, &order, position, &self.cancel)
    }
}

type WorkerResult<T> = (u64, std::thread::Result<Built<T>>);

/// An ordered stream of batches; see the module docs. Iterate it, or call `next()`.
pub struct Loader<S: SampleSource> {
    shared: Arc<Shared<S>>,
    /// Sequence numbers of batches to prepare (none when `threads == 0`).
    jobs: Option<Sender<u64>>,
    results: Option<Receiver<WorkerResult<S::Batch>>>,
    workers: Vec<JoinHandle<()>>,
    reorder: BTreeMap<u64, std::thread::Result<Built<S::Batch>>>,
    in_flight: u64,
    /// Sequence number of the next batch to yield, and of the next job to send.
    next_seq: u64,
    next_job: u64,
    /// Number of batches in the stream (from the start position), `None` when endless.
    total: Option<u64>,
    problems: Vec<Problem>,
    /// Samples left out so far, those beyond the kept problems included.
    skipped: usize,
    /// Batches in a row that came out empty.
    empty_in_a_row: usize,
    warned: HashSet<std::path::PathBuf>,
}

/// How many of a loader's problems are kept to be listed (a dataset gone
/// under a long run would otherwise fill memory with them).
pub const KEPT_PROBLEMS: usize = 1000;

impl<S: SampleSource> Loader<S> {
    /// A loader at the start of epoch 0.
    pub fn new(source: S, config: LoaderConfig) -> Result<Self> {
        Self::starting_at(source, config, Position::default())
    }

    /// A loader whose first batch is `start` (to resume training exactly where it stopped).
    pub fn starting_at(source: S, config: LoaderConfig, start: Position) -> Result<Self> {
        let source = Arc::new(source);
        ensure!(config.batch_size > 0, "batch size must be at least 1");
        ensure!(config.augment.size > 0, "input size must be at least 1 pixel");
        if source.is_empty() {
            bail!("the dataset has no samples to load");
        }
        let batches_per_epoch = config.batches_per_epoch(source.len());
        if batches_per_epoch == 0 {
            bail!(
                "the dataset's {} samples do not fill one batch of {} (drop_last is set)",
                source.len(),
                config.batch_size
            );
        }
        ensure!(
            start.batch < batches_per_epoch,
            "cannot start at batch {} of epoch {}: an epoch has {batches_per_epoch} batches",
            start.batch,
            start.epoch
        );
        let start_abs = (start.epoch * batches_per_epoch + start.batch) as u64;
        let total = config.epochs.map(|e| ((e * batches_per_epoch) as u64).saturating_sub(start_abs));
        let threads = config.threads;
        let in_flight = config.prefetch.max(threads).max(1) as u64;
        let shared = Arc::new(Shared {
            source,
            config,
            batches_per_epoch,
            start: start_abs,
            cancel: AtomicBool::new(false),
            order: Mutex::new(None),
        });
        let mut loader = Self {
            shared,
            jobs: None,
            results: None,
            workers: Vec::new(),
            reorder: BTreeMap::new(),
            in_flight,
            next_seq: 0,
            next_job: 0,
            total,
            problems: Vec::new(),
            skipped: 0,
            empty_in_a_row: 0,
            warned: HashSet::new(),
        };
        if threads > 0 {
            let (job_tx, job_rx) = bounded::<u64>(in_flight as usize);
            let (result_tx, result_rx) = bounded::<WorkerResult<S::Batch>>(in_flight as usize);
            for i in 0..threads {
                let shared = loader.shared.clone();
                let job_rx = job_rx.clone();
                let result_tx = result_tx.clone();
                let handle = std::thread::Builder::new()
                    .name(format!("twinhead-loader-{i}"))
                    .spawn(move || worker(shared, job_rx, result_tx))?;
                loader.workers.push(handle);
            }
            loader.jobs = Some(job_tx);
            loader.results = Some(result_rx);
        }
        Ok(loader)
    }

    /// The position of the next batch this loader will yield. After the last
    /// batch of epoch `e` it is `(e + 1, 0)`. Save it with a checkpoint and pass
    /// it to [`Loader::starting_at`] to resume.
    pub fn position(&self) -> Position {
        self.shared.position(self.next_seq)
    }

    pub fn batches_per_epoch(&self) -> usize {
        self.shared.batches_per_epoch
    }

    pub fn config(&self) -> &LoaderConfig {
        &self.shared.config
    }

    pub fn source(&self) -> &S {
        &self.shared.source
    }

    /// The first [`KEPT_PROBLEMS`] samples left out (each time one was skipped), in stream order.
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }

    /// How many samples were left out so far.
    pub fn skipped(&self) -> usize {
        self.skipped
    }

    /// Batches still to come, `None` when endless.
    pub fn remaining(&self) -> Option<u64> {
        self.total.map(|t| t - self.next_seq)
    }

    fn record(&mut self, problems: &[Problem]) {
        for p in problems {
            if self.warned.insert(p.path.clone()) {
                tracing::warn!("data loader: skipped a sample: {p}");
            } else {
                tracing::debug!("data loader: skipped a sample again: {p}");
            }
        }
        self.skipped += problems.len();
        let room = KEPT_PROBLEMS.saturating_sub(self.problems.len());
        self.problems.extend_from_slice(&problems[..problems.len().min(room)]);
    }

    /// The next prepared batch, in order (whether or not it holds any samples).
    fn next_built(&mut self) -> Option<Built<S::Batch>> {
        if self.total.is_some_and(|t| self.next_seq >= t) {
            return None;
        }
        let seq = self.next_seq;
        let (Some(jobs), Some(results)) = (&self.jobs, &self.results) else {
            self.next_seq += 1;
            return Some(self.shared.build(seq));
        };
        while self.next_job < self.next_seq + self.in_flight && self.total.is_none_or(|t| self.next_job < t) {
            jobs.send(self.next_job).expect("data loader workers stopped");
            self.next_job += 1;
        }
        let result = match self.reorder.remove(&seq) {
            Some(r) => r,
            None => loop {
                let (s, r) = results.recv().expect("data loader workers stopped");
                if s == seq {
                    break r;
                }
                self.reorder.insert(s, r);
            },
        };
        self.next_seq += 1;
        match result {
            Ok(built) => Some(built),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

impl<S: SampleSource> Iterator for Loader<S> {
    type Item = S::Batch;

    fn next(&mut self) -> Option<S::Batch> {
        loop {
            let built = self.next_built()?;
            self.record(&built.problems);
            if built.len > 0 {
                self.empty_in_a_row = 0;
                return Some(built.batch);
            }
            self.empty_in_a_row += 1;
            if self.empty_in_a_row >= self.shared.batches_per_epoch {
                tracing::warn!("data loader: every sample of a whole epoch failed to load; the stream ends");
                return None;
            }
        }
    }
}

fn worker<S: SampleSource>(
    shared: Arc<Shared<S>>,
    jobs: Receiver<u64>,
    results: Sender<WorkerResult<S::Batch>>,
) {
    while let Ok(seq) = jobs.recv() {
        if shared.cancel.load(Ordering::Relaxed) {
            break;
        }
        let built = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| shared.build(seq)));
        if results.send((seq, built)).is_err() {
            break;
        }
    }
}

impl<S: SampleSource> Drop for Loader<S> {
    fn drop(&mut self) {
        self.shared.cancel.store(true, Ordering::Relaxed);
        self.jobs = None;
        self.results = None;
        for handle in self.workers.drain(..) {
            let _ = handle.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::augment::{Augmented, Sample};
    use image::RgbImage;

    /// A source of tiny solid images whose colour is the index; index 3 is "broken".
    struct Fake(usize);

    impl SampleSource for Fake {
        type Batch = Vec<(usize, u8)>;
        fn len(&self) -> usize {
            self.0
        }
        fn id(&self, _index: usize) -> &str {
            "fake"
        }
        fn load(&self, index: usize) -> Result<Sample, Problem> {
            if index == 3 {
                return Err(Problem::new("3.jpg", "broken"));
            }
            Ok(Sample {
                image: RgbImage::from_pixel(4, 4, image::Rgb([index as u8; 3])),
                targets: vec![],
                mask: None,
            })
        }
        fn collate(
            &self,
            _: u32,
            items: Vec<(usize, Augmented)>,
            _: Position,
            _: Vec<Problem>,
        ) -> Self::Batch {
            items.into_iter().map(|(i, a)| (i, a.image.get_pixel(2, 2)[0])).collect()
        }
    }

    /// A dataset that went away: every sample fails.
    struct Gone(usize);

    impl SampleSource for Gone {
        type Batch = Vec<(usize, u8)>;
        fn len(&self) -> usize {
            self.0
        }
        fn id(&self, _index: usize) -> &str {
            "gone"
        }
        fn load(&self, index: usize) -> Result<Sample, Problem> {
            Err(Problem::new(format!("{index}.jpg"), "no such file"))
        }
        fn collate(&self, _: u32, items: Vec<(usize, Augmented)>, _: Position, _: Vec<Problem>) -> Self::Batch {
            items.into_iter().map(|(i, _)| (i, 0)).collect()
        }
    }

    #[test]
    fn an_endless_stream_of_failing_samples_ends_after_an_epoch_and_keeps_few_problems() {
        for threads in [0, 2] {
            let mut loader = Loader::new(Gone(3000), config(threads, None)).unwrap();
            assert!(loader.next().is_none(), "a whole epoch failed: the stream ends");
            assert_eq!(loader.skipped(), 3000 / 3 * 3);
            assert_eq!(loader.problems().len(), KEPT_PROBLEMS);
        }
    }

    fn config(threads: usize, epochs: Option<usize>) -> LoaderConfig {
        LoaderConfig { threads, prefetch: 2, epochs, ..LoaderConfig::train(4, 3, 9) }
    }

    #[test]
    fn epoch_orders_are_permutations_that_differ_by_epoch() {
        let a = epoch_order(50, 1, 0, true);
        let mut sorted = a.clone();
        sorted.sort();
        assert_eq!(sorted, (0..50).collect::<Vec<_>>());
        assert_ne!(a, epoch_order(50, 1, 1, true));
        assert_eq!(a, epoch_order(50, 1, 0, true));
        assert_eq!(epoch_order(5, 1, 0, false), [0, 1, 2, 3, 4]);
    }

    #[test]
    fn streams_every_sample_once_per_epoch_and_skips_broken_ones() {
        for threads in [0, 1, 3] {
            let mut loader =
                Loader::new(Fake(10), LoaderConfig { drop_last: false, ..config(threads, Some(2)) }).unwrap();
            assert_eq!(loader.batches_per_epoch(), 4);
            let batches: Vec<_> = loader.by_ref().collect();
            let mut seen: Vec<usize> = batches.iter().flatten().map(|b| b.0).collect();
            seen.sort();
            let expected: Vec<usize> = (0..10).filter(|&i| i != 3).flat_map(|i| [i, i]).collect();
            assert_eq!(seen, expected, "threads {threads}");
            assert_eq!(loader.skipped(), 2);
            assert_eq!(loader.position(), Position { epoch: 2, batch: 0 });
            assert!(loader.next().is_none());
        }
    }

    #[test]
    fn empty_dataset_or_bad_start_is_an_error() {
        assert!(Loader::new(Fake(0), config(0, None)).is_err());
        assert!(Loader::new(Fake(2), config(0, None)).is_err(), "drop_last with fewer samples than a batch");
        assert!(Loader::starting_at(Fake(9), config(0, None), Position { epoch: 0, batch: 3 }).is_err());
    }

    /// A step's shards, side by side, are the batch one loader gives: the
    /// same samples with the same augmentation, in order.
    #[test]
    fn shards_of_a_batch_join_into_the_whole_batch() {
        let whole: Vec<_> = Loader::new(Fake(20), LoaderConfig { batch_size: 6, ..config(0, Some(2)) }).unwrap().collect();
        assert_eq!(whole.len(), 6);
        for count in [2, 3] {
            let shards: Vec<Vec<_>> = (0..count)
                .map(|index| {
                    let sharded = LoaderConfig { batch_size: 6, shard: Shard { index, count }, ..config(1, Some(2)) };
                    Loader::new(Fake(20), sharded).unwrap().collect()
                })
                .collect();
            for (b, batch) in whole.iter().enumerate() {
                let joined: Vec<_> = shards.iter().flat_map(|s| s[b].clone()).collect();
                assert_eq!(&joined, batch, "batch {b}, {count} shards");
            }
        }
        assert_eq!(Shard { index: 1, count: 2 }.slice(4, 7), (6, 7), "3 samples: 2 then 1");
        assert_eq!(Shard { index: 0, count: 2 }.slice(4, 7), (4, 6));
    }

    #[test]
    fn dropping_an_endless_loader_stops_its_workers() {
        let mut loader = Loader::new(Fake(100), config(2, None)).unwrap();
        assert!(loader.next().is_some());
        drop(loader);
    }
}
