//! The runs list's state: the search, grouping, order and archive switch,
//! and which rows they leave, from facts cached per run (a list of hundreds
//! of runs is filtered and grouped within a frame). Drawing is in
//! `runs_panel.rs`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{Hash, Hasher};

use eframe::egui;

use crate::session::run_filter::{RunFacts, RunOrder, RunQuery};
use crate::session::run_record::RunRecord;

/// The keys offered for grouping (any other key can be typed).
pub const GROUP_KEYS: [&str; 6] = ["strategy.kind", "status", "tasks", "tag", "name", "model.size"];

/// One line of the list: a group's header, or a run (its index in the session's records).
#[derive(Debug, Clone, PartialEq)]
pub enum Line {
    Group { key: String, runs: Vec<usize>, open: bool },
    Run(usize),
}

#[derive(Default)]
pub struct RunsList {
    pub search: String,
    query: RunQuery,
    /// A configuration key to group by (empty: no groups).
    pub group_by: String,
    pub order: RunOrder,
    pub show_archived: bool,
    /// Groups folded shut, by their key.
    pub folded: HashSet<String>,
    /// Per run: a fingerprint of what the facts depend on, and the facts.
    facts: HashMap<String, (u64, RunFacts)>,
}

impl RunsList {
    /// The search, grouping, order and archive controls; true when one changed.
    pub fn controls(&mut self, ui: &mut egui::Ui) -> bool {
        let mut changed = false;
        let search = ui.add(
            egui::TextEdit::singleline(&mut self.search)
                .hint_text("search: name, tag, strategy.kind=replay, lr<0.001")
                .desired_width(f32::INFINITY),
        );
        search.widget_info(|| egui::WidgetInfo::labeled(egui::WidgetType::TextEdit, true, "search runs"));
        if search.changed() {
            self.query = RunQuery::parse(&self.search);
            changed = true;
        }
        ui.horizontal(|ui| {
            let shown = if self.group_by.is_empty() { "no groups".to_string() } else { self.group_by.clone() };
            egui::ComboBox::from_label("group").selected_text(shown).show_ui(ui, |ui| {
                changed |= ui.selectable_value(&mut self.group_by, String::new(), "no groups").changed();
                for key in GROUP_KEYS {
                    changed |= ui.selectable_value(&mut self.group_by, key.to_string(), key).changed();
                }
                ui.label("or any key:");
                changed |= ui.text_edit_singleline(&mut self.group_by).changed();
            });
            egui::ComboBox::from_label("sort").selected_text(self.order.label()).show_ui(ui, |ui| {
                for order in RunOrder::ALL {
                    changed |= ui.selectable_value(&mut self.order, order, order.label()).changed();
                }
            });
        });
        changed |= ui.checkbox(&mut self.show_archived, "show archived").changed();
        changed
    }

    /// Searches for `text` (as typed into the search field).
    pub fn set_search(&mut self, text: &str) {
        self.search = text.to_string();
        self.query = RunQuery::parse(text);
    }

    /// The lines to show for `records`: the runs the search keeps (archived
    /// ones only when asked), in order, under their groups' headers.
    pub fn lines(&mut self, records: &[RunRecord]) -> Vec<Line> {
        self.refresh(records);
        let mut kept: Vec<usize> = (0..records.len())
            .filter(|&i| self.show_archived || !records[i].notes.archived)
            .filter(|&i| self.query.is_empty() || self.query.matches(&self.facts[&records[i].name].1))
            .collect();
        self.order.sort(records, &mut kept);
        if self.group_by.trim().is_empty() {
            return kept.into_iter().map(Line::Run).collect();
        }
        // Groups in the order of their first run; runs within keep the order.
        let key = self.group_by.trim().to_lowercase();
        let mut groups: BTreeMap<usize, (String, Vec<usize>)> = BTreeMap::new();
        let mut first: HashMap<String, usize> = HashMap::new();
        for (position, &i) in kept.iter().enumerate() {
            let group = self.facts[&records[i].name].1.group_of(&key);
            let at = *first.entry(group.clone()).or_insert(position);
            groups.entry(at).or_insert_with(|| (group, Vec::new())).1.push(i);
        }
        let mut lines = Vec::new();
        for (_, (group, runs)) in groups {
            let open = !self.folded.contains(&group);
            lines.push(Line::Group { key: group, runs: runs.clone(), open });
            if open {
                lines.extend(runs.into_iter().map(Line::Run));
            }
        }
        lines
    }

    /// Recomputes the facts of the runs that changed, and forgets removed ones.
    fn refresh(&mut self, records: &[RunRecord]) {
        if self.facts.len() > records.len() {
            let names: HashSet<&str> = records.iter().map(|r| r.name.as_str()).collect();
            self.facts.retain(|name, _| names.contains(name.as_str()));
        }
        for record in records {
            let print = fingerprint(record);
            match self.facts.get(&record.name) {
                Some((seen, _)) if *seen == print => {}
                _ => {
                    self.facts.insert(record.name.clone(), (print, RunFacts::of(record)));
                }
            }
        }
    }
}

/// What a run's facts are computed from, hashed: cheap enough for every frame.
fn fingerprint(record: &RunRecord) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (record.status.label(), record.step, record.evals.len(), record.strategy.name(), &record.notes.tags, record.notes.archived).hash(&mut hasher);
    record.strategy.label().hash(&mut hasher);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::run_record::RunStatus;
    use crate::train::config::TrainConfig;

    #[test]
    fn lines_filter_group_fold_and_hide_archived_runs() {
        let record = |name: &str, kind: &str, archived: bool| {
            let mut overrides = vec![format!("strategy.kind={kind}")];
            if kind == "replay" {
                overrides.push("strategy.switch_step=100".into());
            }
            let config = TrainConfig::load_preset("quick", &overrides).unwrap();
            let mut record = RunRecord::new(std::path::Path::new(name), config, RunStatus::Completed);
            record.notes.archived = archived;
            record
        };
        let records = vec![record("a", "joint", false), record("b", "replay", false), record("c", "joint", false), record("d", "replay", true)];
        let mut list = RunsList::default();
        assert_eq!(list.lines(&records), [Line::Run(2), Line::Run(1), Line::Run(0)], "newest first, the archived run hidden");
        list.show_archived = true;
        list.group_by = "strategy.kind".into();
        let groups: Vec<(String, Vec<usize>)> = list
            .lines(&records)
            .into_iter()
            .filter_map(|line| match line {
                Line::Group { key, runs, .. } => Some((key, runs)),
                Line::Run(_) => None,
            })
            .collect();
        assert_eq!(groups, [("replay".to_string(), vec![3, 1]), ("joint".to_string(), vec![2, 0])]);
        list.folded.insert("replay".into());
        assert_eq!(list.lines(&records).len(), 2 + 2, "a folded group shows its header only");
        list.set_search("kind=joint");
        list.group_by.clear();
        assert_eq!(list.lines(&records), [Line::Run(2), Line::Run(0)]);
    }
}
