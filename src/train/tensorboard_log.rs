//! The run's TensorBoard log, `runs/<name>/tensorboard/`: every number of
//! `metrics.jsonl` as a scalar at its step, and at each evaluation the
//! timeline's predictions drawn over their images (classification images
//! framed green where the top-1 class is right, red where it is wrong).
//! `tensorboard --logdir runs` then shows every run.
//!
//! The file is derived from the run's own log: a run that resumes (and drops
//! the events of the steps its kill lost) writes it anew from what it kept, so
//! each step appears once, as in `metrics.jsonl`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use image::RgbImage;

use super::events::{Event, EvalRecord};
use super::timeline::{self, TimelinePrediction};
use crate::backend::device::mib;
use crate::eval::cls::is_right;
use crate::model::postprocess::PostprocessConfig;
use crate::model::Task;
use crate::overlay;
use crate::tensorboard::EventWriter;

pub const TENSORBOARD_DIR: &str = "tensorboard";
/// TensorBoard reads every file whose name holds `tfevents`; a run has this one.
pub const EVENTS_FILE: &str = "events.out.tfevents.twinhead";
/// The longest side of the timeline images (real photos are larger; the dashboard shows them small).
const IMAGE_SIDE: u32 = 320;
/// The frame of a classification image whose top-1 class is right, and wrong.
const RIGHT: [u8; 3] = [60, 170, 90];
const WRONG: [u8; 3] = [220, 60, 60];

/// Appends a run's events to its TensorBoard file.
pub struct TensorboardLog {
    run_dir: PathBuf,
    writer: EventWriter,
    /// Segmentation classes, for reading the timeline's masks.
    seg_classes: usize,
}

pub fn events_path(run_dir: &Path) -> PathBuf {
    run_dir.join(TENSORBOARD_DIR).join(EVENTS_FILE)
}

impl TensorboardLog {
    /// Writes the file anew from `events` (the run's `metrics.jsonl`) and the
    /// run's timeline (through a temporary file and a rename), then appends to it.
    pub fn rebuild(run_dir: &Path, events: &[Event], seg_classes: usize) -> Result<Self> {
        let dir = run_dir.join(TENSORBOARD_DIR);
        std::fs::create_dir_all(&dir).with_context(|| format!("{}: cannot create", dir.display()))?;
        let path = events_path(run_dir);
        EventWriter::replace(&path, |writer| {
            for event in events {
                record(writer, run_dir, seg_classes, event)?;
            }
            Ok(())
        })?;
        Ok(Self { run_dir: run_dir.to_path_buf(), writer: EventWriter::append(&path)?, seg_classes })
    }

    pub fn seg_classes(&self) -> usize {
        self.seg_classes
    }

    /// Writes what `event` holds; flushed at each evaluation, checkpoint and end.
    pub fn record(&mut self, event: &Event) -> Result<()> {
        record(&mut self.writer, &self.run_dir, self.seg_classes, event)?;
        if matches!(event, Event::Eval(_) | Event::Checkpoint { .. } | Event::Finished { .. } | Event::Paused { .. }) {
            self.writer.flush()?;
        }
        Ok(())
    }
}

fn record(writer: &mut EventWriter, run_dir: &Path, seg_classes: usize, event: &Event) -> Result<()> {
    let step = event.step();
    writer.scalars(step, &scalars(event))?;
    if let Event::Eval(_) = event {
        writer.images(step, &timeline_images(run_dir, step, seg_classes))?;
    }
    Ok(())
}

/// The timeline's predictions at `step` over their images; none when the
/// step was not stored or its images are gone (a scalar log is still useful).
fn timeline_images(run_dir: &Path, step: usize, seg_classes: usize) -> Vec<(String, RgbImage)> {
    let Ok(stored) = timeline::read_step(run_dir, step, seg_classes) else { return Vec::new() };
    let threshold = PostprocessConfig::display().score_threshold;
    let (mut images, mut undrawn) = (Vec::new(), 0);
    for (task, entries) in [("det", &stored.det), ("seg", &stored.seg), ("cls", &stored.cls)] {
        for entry in entries {
            let Ok(picture) = image::open(&entry.image) else {
                undrawn += 1;
                continue;
            };
            let mut picture = picture.to_rgb8();
            match &entry.prediction {
                TimelinePrediction::Boxes(boxes) => overlay::draw_boxes(&mut picture, boxes, threshold),
                TimelinePrediction::Mask(mask) if mask.dimensions() == picture.dimensions() => {
                    overlay::blend_mask(&mut picture, mask, 0.5)
                }
                TimelinePrediction::Mask(_) => {
                    undrawn += 1;
                    continue;
                }
                TimelinePrediction::Classes { probabilities, truth } => {
                    let color = if is_right(probabilities, *truth) { RIGHT } else { WRONG };
                    let width = (picture.width().min(picture.height()) / 16).max(2);
                    overlay::draw_frame(&mut picture, color, width);
                }
            }
            images.push((format!("timeline/{task}/{}", entry.id), shrink(picture)));
        }
    }
    if undrawn > 0 {
        tracing::warn!("{}: {undrawn} timeline image(s) of step {step} left out of TensorBoard (image unreadable or resized)", run_dir.display());
    }
    images
}

fn shrink(image: RgbImage) -> RgbImage {
    let side = image.width().max(image.height());
    if side <= IMAGE_SIDE {
        return image;
    }
    let scale = IMAGE_SIDE as f32 / side as f32;
    let (w, h) = (((image.width() as f32 * scale).round() as u32).max(1), ((image.height() as f32 * scale).round() as u32).max(1));
    image::imageops::resize(&image, w, h, image::imageops::FilterType::Triangle)
}

/// The scalars an event holds, with their TensorBoard tags.
pub fn scalars(event: &Event) -> Vec<(String, f32)> {
    let mut out = Vec::new();
    let mut push = |tag: &str, value: f64| out.push((tag.to_string(), value as f32));
    match event {
        Event::Step { losses, penalty, lr, images_per_sec, device_memory, .. } => {
            for (task, loss) in losses.iter() {
                if let Some(loss) = loss {
                    push(&format!("loss/{}", task.key()), f64::from(*loss));
                }
            }
            if let Some(penalty) = penalty {
                push("loss/penalty", f64::from(*penalty));
            }
            push("train/lr", *lr);
            push("train/images_per_sec", f64::from(*images_per_sec));
            if let Some(memory) = device_memory {
                push("device/memory_in_use_mib", mib(memory.in_use));
                push("device/memory_reserved_mib", mib(memory.reserved));
            }
        }
        Event::Eval(record) => eval_scalars(record, &mut push),
        _ => {}
    }
    out
}

fn eval_scalars(record: &EvalRecord, push: &mut impl FnMut(&str, f64)) {
    let (metric, forgetting) = (&record.metric, &record.forgetting);
    let values = [
        ("eval/map50", metric[Task::Det]),
        ("eval/miou", metric[Task::Seg]),
        ("eval/pixel_acc", record.pixel_acc),
        ("forgetting/det", forgetting[Task::Det]),
        ("forgetting/seg", forgetting[Task::Seg]),
        ("eval/top1", metric[Task::Cls]),
        ("eval/top5", record.top5),
        ("forgetting/cls", forgetting[Task::Cls]),
    ];
    for (tag, value) in values {
        if let Some(value) = value {
            push(tag, value);
        }
    }
    if let Some(conflict) = &record.conflict {
        push("conflict/shared", conflict.shared);
        push("conflict/backbone", conflict.backbone);
        push("conflict/neck", conflict.neck);
    }
    for pair in &record.cls_conflicts {
        push(&format!("conflict/{}-{}", pair.tasks[0].key(), pair.tasks[1].key()), pair.cosines.shared);
    }
    for (group, (_, per_class)) in ["ap50", "iou", "accuracy"].into_iter().zip(record.per_class.iter()) {
        for (class, value) in per_class {
            if let Some(value) = value {
                push(&format!("{group}/{class}"), *value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensorboard::proto::{Kind, What};
    use crate::train::run_dir::EventLog;
    use crate::model::task::PerTask;
    use crate::train::strategy::{Task, TaskSet};

    fn det_losses(run_dir: &Path) -> Vec<(i64, f32)> {
        let (events, _) = crate::tensorboard::read_file(&events_path(run_dir)).unwrap();
        events
            .iter()
            .filter_map(|e| match &e.what {
                Some(What::Summary(s)) => Some((e.step, s)),
                _ => None,
            })
            .flat_map(|(step, s)| s.value.iter().filter(|v| v.tag == "loss/det").map(move |v| (step, v.value.clone())))
            .map(|(step, v)| match v {
                Some(Kind::SimpleValue(v)) => (step, v),
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn the_steps_a_kill_lost_leave_the_file_with_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = EventLog::open(dir.path(), None).unwrap();
        log.attach_tensorboard(TensorboardLog::rebuild(dir.path(), &crate::train::run_dir::read_events(dir.path()).unwrap().0, 3).unwrap());
        for step in 1..=5 {
            let step_event = Event::Step {
                step,
                tasks: TaskSet::from(Task::Det),
                losses: PerTask::from_fn(|task| (task == Task::Det).then_some(step as f32 / 2.0)),
                penalty: None,
                lr: 0.01,
                images_per_sec: 10.0,
                device_memory: None,
            };
            log.emit(step_event).unwrap();
        }
        log.emit(Event::Paused { step: 5 }).unwrap();
        assert_eq!(det_losses(dir.path()), [(1, 0.5), (2, 1.0), (3, 1.5), (4, 2.0), (5, 2.5)]);
        // Resumed from a checkpoint at step 3: steps 4 and 5 are gone from both.
        log.truncate_after(3).unwrap();
        assert_eq!(det_losses(dir.path()), [(1, 0.5), (2, 1.0), (3, 1.5)]);
        let files: Vec<_> = std::fs::read_dir(dir.path().join(TENSORBOARD_DIR)).unwrap().collect();
        assert_eq!(files.len(), 1, "one file, no temporary left");
    }
}
