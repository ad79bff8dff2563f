//! Replay's buffers: a fixed, reproducible subset of each earlier task's
//! training images that the later phases rehearse, listed in the run folder
//! (`replay_buffer.txt` for the first task, `replay_buffer_<task>.txt` for the
//! later ones of three or more phases; one image id a line) so a user sees what was kept.

use std::path::{Path, PathBuf};

use anyhow::Result;

use super::run_dir::write_atomic;
use crate::data::batch::{ClsSource, DetSource, SampleSource, SegSource};
use crate::data::loader::epoch_order;
use crate::model::Task;

/// The list of the buffer of the task at `index` in the strategy's order.
pub fn buffer_file(run_dir: &Path, task: Task, index: usize) -> PathBuf {
    match index {
        0 => run_dir.join("replay_buffer.txt"),
        _ => run_dir.join(format!("replay_buffer_{}.txt", task.key())),
    }
}

/// How many images a `buffer` setting keeps out of `total`: a count (≥ 1) or a
/// fraction (< 1, rounded up); at least one, at most all.
pub fn buffer_size(buffer: f64, total: usize) -> usize {
    let wanted = if buffer >= 1.0 { buffer as usize } else { (buffer * total as f64).ceil() as usize };
    wanted.clamp(1, total.max(1))
}

/// The buffer's indices into a split of `total` images: a seeded draw, sorted.
pub fn buffer_indices(buffer: f64, total: usize, seed: u64) -> Vec<usize> {
    let mut picked: Vec<usize> = epoch_order(total, seed ^ 0x0BEE_F00D, 0, true).into_iter().take(buffer_size(buffer, total)).collect();
    picked.sort_unstable();
    picked
}

/// The buffer's source: the picked records of `source`, and its ids written to the run folder.
pub trait BufferSource: SampleSource + Sized {
    fn subset(&self, indices: &[usize]) -> Self;
}

impl BufferSource for DetSource {
    fn subset(&self, indices: &[usize]) -> Self {
        DetSource::from_parts(indices.iter().map(|&i| self.records[i].clone()).collect(), self.classes.clone())
    }
}

impl BufferSource for SegSource {
    fn subset(&self, indices: &[usize]) -> Self {
        SegSource::from_parts(indices.iter().map(|&i| self.records[i].clone()).collect(), self.classes.clone())
    }
}

impl BufferSource for ClsSource {
    fn subset(&self, indices: &[usize]) -> Self {
        ClsSource::from_parts(indices.iter().map(|&i| self.records[i].clone()).collect(), self.classes.clone())
    }
}

/// Picks the buffer from `source` and lists its image ids in `list`.
pub fn make_buffer<S: BufferSource>(source: &S, buffer: f64, seed: u64, list: &Path) -> Result<S> {
    let subset = source.subset(&buffer_indices(buffer, source.len(), seed));
    let ids: String = (0..subset.len()).map(|i| format!("{}\n", subset.id(i))).collect();
    write_atomic(list, ids.as_bytes())?;
    Ok(subset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_buffer_is_a_reproducible_draw_of_the_stated_size() {
        assert_eq!(buffer_size(0.05, 480), 24);
        assert_eq!(buffer_size(0.001, 480), 1);
        assert_eq!(buffer_size(30.0, 480), 30);
        assert_eq!(buffer_size(900.0, 480), 480);
        let a = buffer_indices(0.05, 480, 7);
        assert_eq!(a, buffer_indices(0.05, 480, 7));
        assert_ne!(a, buffer_indices(0.05, 480, 8));
        assert_eq!(a.len(), 24);
        assert!(a.windows(2).all(|w| w[0] < w[1]) && *a.last().unwrap() < 480);
        assert_ne!(a, (0..24).collect::<Vec<_>>(), "a draw, not the first images");
    }
}
