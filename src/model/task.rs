//! The tasks one network learns (detection, segmentation, classification)
//! and sets of them: a run's tasks, the heads a forward pass computes, the
//! tasks one training step trains.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    Det,
    Seg,
    Cls,
}

impl Task {
    /// Every task, in the order runs list them.
    pub const ALL: [Task; 3] = [Task::Det, Task::Seg, Task::Cls];

    /// The short name configurations use (`det`, `seg`, `cls`).
    pub fn key(self) -> &'static str {
        match self {
            Task::Det => "det",
            Task::Seg => "seg",
            Task::Cls => "cls",
        }
    }

    /// The name of the task's headline metric.
    pub fn metric_name(self) -> &'static str {
        match self {
            Task::Det => "mAP50",
            Task::Seg => "mIoU",
            Task::Cls => "top-1",
        }
    }
}

impl fmt::Display for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Task::Det => "detection",
            Task::Seg => "segmentation",
            Task::Cls => "classification",
        })
    }
}

/// A set of tasks: a run's, or those one step trains. Written as one task's
/// key, `both` (detection and segmentation, as two-task logs always had it),
/// or keys joined by `+` (`det+seg+cls`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TaskSet(u8);

impl TaskSet {
    pub const DET_SEG: TaskSet = TaskSet(0b011);
    pub const ALL: TaskSet = TaskSet(0b111);

    pub const fn of(tasks: &[Task]) -> Self {
        let mut set = Self(0);
        let mut i = 0;
        while i < tasks.len() {
            set = set.with(tasks[i]);
            i += 1;
        }
        set
    }

    pub const fn with(self, task: Task) -> Self {
        Self(self.0 | 1 << task as u8)
    }

    pub fn without(self, task: Task) -> Self {
        Self(self.0 & !(1 << task as u8))
    }

    pub const fn contains(self, task: Task) -> bool {
        self.0 & 1 << task as u8 != 0
    }

    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The tasks in [`Task::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Task> {
        Task::ALL.into_iter().filter(move |&task| self.contains(task))
    }
}

impl FromIterator<Task> for TaskSet {
    fn from_iter<I: IntoIterator<Item = Task>>(tasks: I) -> Self {
        tasks.into_iter().fold(Self::default(), Self::with)
    }
}

impl From<Task> for TaskSet {
    fn from(task: Task) -> Self {
        Self::default().with(task)
    }
}

impl TryFrom<String> for TaskSet {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        if text == "both" {
            return Ok(Self::DET_SEG);
        }
        text.split('+').try_fold(Self::default(), |set, key| {
            let task = Task::ALL.into_iter().find(|t| t.key() == key).ok_or_else(|| format!("{key:?} is not a task (det, seg, cls)"))?;
            Ok(set.with(task))
        })
    }
}

impl From<TaskSet> for String {
    fn from(set: TaskSet) -> String {
        if set == TaskSet::DET_SEG {
            return "both".into();
        }
        set.iter().map(Task::key).collect::<Vec<_>>().join("+")
    }
}

/// One value per task, indexed by [`Task`]: what code keeps and iterates
/// over where it would otherwise write a `det_`, a `seg_` and a `cls_` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct PerTask<T>([T; 3]);

impl<T> PerTask<T> {
    /// `value(task)` for every task.
    pub fn from_fn(value: impl FnMut(Task) -> T) -> Self {
        Self(Task::ALL.map(value))
    }

    /// The tasks with their values, in [`Task::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (Task, &T)> {
        Task::ALL.into_iter().zip(&self.0)
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = (Task, &mut T)> {
        Task::ALL.into_iter().zip(&mut self.0)
    }

    pub fn map<U>(self, mut f: impl FnMut(Task, T) -> U) -> PerTask<U> {
        let mut tasks = Task::ALL.into_iter();
        PerTask(self.0.map(|value| f(tasks.next().expect("three tasks"), value)))
    }

    /// The values in [`Task::ALL`] order.
    pub fn into_array(self) -> [T; 3] {
        self.0
    }

    pub fn as_ref(&self) -> PerTask<&T> {
        PerTask::from_fn(|task| &self[task])
    }
}

impl<T> PerTask<Option<T>> {
    /// The tasks that have a value.
    pub fn tasks(&self) -> TaskSet {
        self.iter().filter(|(_, value)| value.is_some()).map(|(task, _)| task).collect()
    }
}

/// Written as a map from each task's key (`{"det": …, "seg": …, "cls": …}`).
impl<T: Serialize> Serialize for PerTask<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(Task::ALL.len()))?;
        for (task, value) in self.iter() {
            map.serialize_entry(task.key(), value)?;
        }
        map.end()
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for PerTask<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Keyed<T> {
            det: T,
            seg: T,
            cls: T,
        }
        let Keyed { det, seg, cls } = Keyed::deserialize(deserializer)?;
        Ok(Self([det, seg, cls]))
    }
}

/// The values in [`Task::ALL`] order.
impl<T> From<[T; 3]> for PerTask<T> {
    fn from(values: [T; 3]) -> Self {
        Self(values)
    }
}

impl<T> std::ops::Index<Task> for PerTask<T> {
    type Output = T;
    fn index(&self, task: Task) -> &T {
        &self.0[task as usize]
    }
}

impl<T> std::ops::IndexMut<Task> for PerTask<T> {
    fn index_mut(&mut self, task: Task) -> &mut T {
        &mut self.0[task as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_task_values_are_indexed_and_iterated_by_task() {
        let mut names = PerTask::from_fn(|task| task.key().to_string());
        names[Task::Seg].push('!');
        assert_eq!(names[Task::Seg], "seg!");
        let keys: Vec<(Task, usize)> = names.iter().map(|(task, name)| (task, name.len())).collect();
        assert_eq!(keys, [(Task::Det, 3), (Task::Seg, 4), (Task::Cls, 3)]);
        let some = PerTask::from_fn(|task| (task != Task::Seg).then_some(1));
        assert_eq!(some.tasks(), TaskSet::of(&[Task::Det, Task::Cls]));
        assert_eq!(some.map(|task, value| value.map(|v| v + task as usize)), PerTask([Some(1), None, Some(3)]));
        // Written as a map from task keys (what a struct of det, seg and cls fields wrote).
        let counts = PerTask::from([0usize, 4, 0]);
        assert_eq!(serde_json::to_string(&counts).unwrap(), r#"{"det":0,"seg":4,"cls":0}"#);
        assert_eq!(serde_json::from_str::<PerTask<usize>>(r#"{"cls":0,"det":0,"seg":4}"#).unwrap(), counts);
        assert!(serde_json::from_str::<PerTask<usize>>(r#"{"det":0,"seg":4}"#).unwrap_err().to_string().contains("cls"));
    }
}
