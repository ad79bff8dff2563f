//! Work that must not block the window (generating datasets, checking a
//! folder, inference, decoding images) runs as a [`Job`] on its own thread,
//! reporting progress and answering a cancel request.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Result;
use crossbeam_channel::{Receiver, Sender};

/// The job's side: report progress, check for cancellation.
pub struct Progress {
    updates: Sender<(usize, usize)>,
    cancel: Arc<AtomicBool>,
}

impl Progress {
    /// `done` of `total` units finished.
    pub fn set(&self, done: usize, total: usize) {
        let _ = self.updates.send((done, total));
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    /// The flag itself, for functions that take one.
    pub fn cancel_flag(&self) -> &AtomicBool {
        &self.cancel
    }
}

impl crate::inspection::Progress for Progress {
    fn set(&self, done: usize, total: usize) {
        Progress::set(self, done, total)
    }
    fn is_cancelled(&self) -> bool {
        Progress::is_cancelled(self)
    }
}

/// The window's side of a background job producing a `T`.
pub struct Job<T> {
    pub label: String,
    /// Latest `(done, total)` reported.
    pub progress: (usize, usize),
    updates: Receiver<(usize, usize)>,
    result: Receiver<Result<T>>,
    cancel: Arc<AtomicBool>,
}

impl<T: Send + 'static> Job<T> {
    /// Runs `work` on a new thread; `repaint` is called when there is news for the window.
    pub fn spawn(
        label: impl Into<String>,
        repaint: impl Fn() + Send + Sync + 'static,
        work: impl FnOnce(&Progress) -> Result<T> + Send + 'static,
    ) -> Self {
        let label = label.into();
        let (update_tx, updates) = crossbeam_channel::unbounded();
        let (result_tx, result) = crossbeam_channel::bounded(1);
        let cancel = Arc::new(AtomicBool::new(false));
        let progress = Progress { updates: update_tx, cancel: cancel.clone() };
        let thread_label = label.clone();
        let spawned = std::thread::Builder::new().name(label.clone()).stack_size(crate::backend::ENGINE_THREAD_STACK).spawn(move || {
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(&progress)))
                .unwrap_or_else(|_| Err(anyhow::anyhow!("{thread_label}: the job panicked")));
            let _ = result_tx.send(outcome);
            repaint();
        });
        let job = Self { label, progress: (0, 0), updates, result, cancel };
        if let Err(error) = spawned {
            // No thread: the job ends at once with the reason.
            let (tx, rx) = crossbeam_channel::bounded(1);
            let _ = tx.send(Err(anyhow::anyhow!("cannot start a thread: {error}")));
            return Self { result: rx, ..job };
        }
        job
    }

    /// The result once the job has ended (then the job is done with).
    pub fn poll(&mut self) -> Option<Result<T>> {
        while let Ok(update) = self.updates.try_recv() {
            self.progress = update;
        }
        self.result.try_recv().ok()
    }

    /// Waits for the result (tests and shutdown).
    pub fn wait(self) -> Result<T> {
        self.result.recv().unwrap_or_else(|_| Err(anyhow::anyhow!("{}: the job ended without a result", self.label)))
    }

    /// Waits at most `limit` for the job to end; `false` when it is still running.
    pub fn wait_within(&self, limit: std::time::Duration) -> bool {
        self.result.recv_timeout(limit).is_ok()
    }

    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }

    /// One line: `text`, a progress bar, and (when `cancellable`) a Cancel button.
    pub fn progress_row(&self, ui: &mut eframe::egui::Ui, text: String, cancellable: bool) {
        ui.horizontal(|ui| {
            ui.label(text);
            ui.add(eframe::egui::ProgressBar::new(self.fraction()).desired_width(240.0).show_percentage());
            if cancellable && ui.button("Cancel").clicked() {
                self.cancel();
            }
        });
    }

    /// Progress 0–1 (0 before the first report).
    pub fn fraction(&self) -> f32 {
        let (done, total) = self.progress;
        if total == 0 {
            0.0
        } else {
            done as f32 / total as f32
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_reports_progress_and_its_result() {
        let job = Job::spawn("count", || {}, |p| {
            for i in 1..=3 {
                p.set(i, 3);
            }
            Ok(42)
        });
        assert_eq!(job.wait().unwrap(), 42);
    }

    #[test]
    fn a_cancelled_job_sees_the_flag_and_a_panic_becomes_an_error() {
        let (go_tx, go) = crossbeam_channel::bounded::<()>(0);
        let job = Job::spawn("wait", || {}, move |p| {
            go.recv().ok();
            Ok(p.is_cancelled())
        });
        job.cancel();
        go_tx.send(()).unwrap();
        assert!(job.wait().unwrap());
        let job: Job<()> = Job::spawn("boom", || {}, |_| panic!("boom"));
        assert!(job.wait().unwrap_err().to_string().contains("panicked"));
    }
}
