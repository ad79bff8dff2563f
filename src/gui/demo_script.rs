//! Scripted actions for the real window: `twinhead --demo-script FILE --shots DIR`.
//!
//! An egui plugin that reads the AccessKit tree egui builds each frame (the
//! tree egui_kittest queries in the interaction tests) and plays a script of
//! what a person would do: click a widget found by its label, wait until a
//! label shows up, type into a field, drop files, take a screenshot of the
//! window's own frame buffer. Widgets are found by what they say, never by
//! their position, so a layout change breaks no script; a line whose widget
//! never appears fails the script, naming the line, and the process exits 2.
//!
//! One command per line; `#` starts a comment. A widget is named by a
//! *matcher*: `"Start"` (the whole label), `~"step 3"` (part of it) or
//! `/step [34]\d\d/` (a regular expression). Where several widgets match,
//! `index N` picks the N-th from the top (then from the left); actions wait
//! up to `within SECONDS` (default 60) for their widget.
//!
//! ```text
//! size 1600 1000                  the window's inner size in points
//! click "Start"                   press and release the pointer on an enabled widget
//! click ~"sequential" index 2
//! hover "Image" at 0.4 0.6        move the pointer there (fractions of the widget's rect)
//! type "Method" "prune:0.3"       focus the field, select its text, type over it
//! wait ~"step 300/" within 300    until a widget says so
//! scroll-to "Dataset statistics"  scroll it into view
//! key ctrl+3                      a key press with modifiers
//! drop datasets/a.jpg b.jpg       files dropped on the window
//! sleep 2                         seconds
//! shot curves                     save DIR/curves.png
//! dump                            log every label in the tree (for writing scripts)
//! quit                            close the window
//! ```

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use eframe::egui::{self, accesskit};

/// How long an action waits for its widget unless the line says `within`.
const DEFAULT_WITHIN: Duration = Duration::from_secs(60);
/// How often the window repaints while the script runs (it checks each frame).
const POLL: Duration = Duration::from_millis(100);

/// What names a widget.
#[derive(Debug, Clone)]
pub enum Matcher {
    Exact(String),
    Contains(String),
    Regex(regex::Regex),
}

impl Matcher {
    fn matches(&self, label: &str) -> bool {
        match self {
            Matcher::Exact(text) => label == text,
            Matcher::Contains(text) => label.contains(text.as_str()),
            Matcher::Regex(re) => re.is_match(label),
        }
    }
}

impl std::fmt::Display for Matcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Matcher::Exact(text) => write!(f, "{text:?}"),
            Matcher::Contains(text) => write!(f, "~{text:?}"),
            Matcher::Regex(re) => write!(f, "/{re}/"),
        }
    }
}

/// A widget as the script names it: its label, and which match (1-based, top to bottom).
#[derive(Debug, Clone)]
pub struct Target {
    pub matcher: Matcher,
    pub index: usize,
    pub within: Duration,
}

#[derive(Debug, Clone)]
pub enum Command {
    Size(f32, f32),
    Click(Target, Option<egui::Vec2>),
    Hover(Target, Option<egui::Vec2>),
    Type(Target, String),
    Wait(Target),
    ScrollTo(Target),
    Key(egui::Modifiers, egui::Key),
    Drop(Vec<PathBuf>),
    Sleep(Duration),
    Shot(String),
    Dump,
    Quit,
}

/// One parsed line, with its number for messages.
#[derive(Debug, Clone)]
pub struct Line {
    pub number: usize,
    pub text: String,
    pub command: Command,
}

/// Parses a script; an error names the line and what is wrong with it.
pub fn parse(text: &str, file: &Path) -> Result<Vec<Line>> {
    let mut lines = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let number = i + 1;
        let tokens = tokenize(raw).with_context(|| format!("{}:{number}: {raw}", file.display()))?;
        if tokens.is_empty() {
            continue;
        }
        let command = parse_command(&tokens).with_context(|| format!("{}:{number}: {}", file.display(), raw.trim()))?;
        lines.push(Line { number, text: raw.trim().to_string(), command });
    }
    Ok(lines)
}

/// A token: a bare word, a quoted string (`"…"`, `~"…"`) or a regular expression (`/…/`).
#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Quoted(String),
    Contains(String),
    Regex(String),
}

fn tokenize(line: &str) -> Result<Vec<Token>> {
    let mut tokens = Vec::new();
    let mut chars = line.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '#' {
            break;
        } else if c == '"' || (c == '~' && quote_follows(chars.clone())) {
            let contains = c == '~';
            if contains {
                chars.next();
            }
            chars.next();
            let text = read_until(&mut chars, '"')?;
            tokens.push(if contains { Token::Contains(text) } else { Token::Quoted(text) });
        } else if c == '/' {
            chars.next();
            tokens.push(Token::Regex(read_until(&mut chars, '/')?));
        } else {
            let mut word = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                word.push(c);
                chars.next();
            }
            tokens.push(Token::Word(word));
        }
    }
    Ok(tokens)
}

/// Whether a `"` follows the current character (`~"…"` is a matcher, a lone `~` a word).
fn quote_follows(mut chars: std::iter::Peekable<std::str::Chars<'_>>) -> bool {
    chars.next();
    chars.peek() == Some(&'"')
}

/// Reads up to the closing `end`; `\` escapes the next character.
fn read_until(chars: &mut std::iter::Peekable<std::str::Chars<'_>>, end: char) -> Result<String> {
    let mut text = String::new();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                // In a regular expression the backslash belongs to it, except before the delimiter.
                Some(next) if end == '/' && next != '/' => {
                    text.push('\\');
                    text.push(next);
                }
                Some(next) => text.push(next),
                None => bail!("a line ends after a backslash"),
            },
            c if c == end => return Ok(text),
            c => text.push(c),
        }
    }
    bail!("no closing {end}")
}

fn parse_command(tokens: &[Token]) -> Result<Command> {
    let Token::Word(verb) = &tokens[0] else { bail!("a line starts with a command, e.g. click") };
    let rest = &tokens[1..];
    let words = || -> Result<Vec<&str>> {
        rest.iter()
            .map(|t| match t {
                Token::Word(w) => Ok(w.as_str()),
                _ => bail!("{verb} takes plain words"),
            })
            .collect()
    };
    Ok(match verb.as_str() {
        "size" => match words()?.as_slice() {
            [w, h] => Command::Size(number(w)?, number(h)?),
            _ => bail!("size takes a width and a height"),
        },
        "click" => {
            let (target, at) = target(rest, true)?;
            Command::Click(target, at)
        }
        "hover" => {
            let (target, at) = target(rest, true)?;
            Command::Hover(target, at)
        }
        "wait" => Command::Wait(target(rest, false)?.0),
        "scroll-to" => Command::ScrollTo(target(rest, false)?.0),
        "type" => {
            let Some((Token::Quoted(text), named)) = rest.split_last() else { bail!("type takes a widget and the text in quotes") };
            Command::Type(target(named, false)?.0, text.clone())
        }
        "key" => match words()?.as_slice() {
            [combination] => {
                let (modifiers, key) = key(combination)?;
                Command::Key(modifiers, key)
            }
            _ => bail!("key takes one key, e.g. ctrl+3 or Escape"),
        },
        "drop" => {
            let paths: Vec<PathBuf> = rest
                .iter()
                .map(|t| match t {
                    Token::Word(w) | Token::Quoted(w) => Ok(PathBuf::from(w)),
                    _ => bail!("drop takes file paths"),
                })
                .collect::<Result<_>>()?;
            if paths.is_empty() {
                bail!("drop takes one or more files");
            }
            Command::Drop(paths)
        }
        "sleep" => match words()?.as_slice() {
            [s] => Command::Sleep(Duration::from_secs_f32(number(s)?)),
            _ => bail!("sleep takes seconds"),
        },
        "shot" => match words()?.as_slice() {
            [name] if !name.contains(['/', '\\']) => Command::Shot(name.to_string()),
            _ => bail!("shot takes a file name without a folder (it goes to --shots)"),
        },
        "dump" if rest.is_empty() => Command::Dump,
        "quit" if rest.is_empty() => Command::Quit,
        other => bail!("unknown command {other:?} (size, click, hover, type, wait, scroll-to, key, drop, sleep, shot, dump, quit)"),
    })
}

/// A matcher, then `index N`, `within S` and (where allowed) `at FX FY`, in any order.
fn target(tokens: &[Token], allow_at: bool) -> Result<(Target, Option<egui::Vec2>)> {
    let matcher = match tokens.first() {
        Some(Token::Quoted(text)) => Matcher::Exact(text.clone()),
        Some(Token::Contains(text)) => Matcher::Contains(text.clone()),
        Some(Token::Regex(re)) => Matcher::Regex(regex::Regex::new(re).with_context(|| format!("/{re}/ is no regular expression"))?),
        _ => bail!("name the widget: \"label\", ~\"part of it\" or /regex/"),
    };
    let mut target = Target { matcher, index: 1, within: DEFAULT_WITHIN };
    let mut at = None;
    let mut rest = tokens[1..].iter();
    while let Some(token) = rest.next() {
        let mut value = || match rest.next() {
            Some(Token::Word(w)) => number(w),
            _ => bail!("{token:?} takes a number"),
        };
        match token {
            Token::Word(w) if w == "index" => {
                let n = value()?;
                if n < 1.0 || n.fract() != 0.0 {
                    bail!("index counts from 1");
                }
                target.index = n as usize;
            }
            Token::Word(w) if w == "within" => target.within = Duration::from_secs_f32(value()?),
            Token::Word(w) if w == "at" && allow_at => {
                let (x, y) = (value()?, value()?);
                if !(0.0..=1.0).contains(&x) || !(0.0..=1.0).contains(&y) {
                    bail!("at takes fractions of the widget's width and height, 0 to 1");
                }
                at = Some(egui::vec2(x, y));
            }
            other => bail!("unexpected {other:?}"),
        }
    }
    Ok((target, at))
}

fn number(word: &str) -> Result<f32> {
    word.parse::<f32>().ok().filter(|v| v.is_finite() && *v >= 0.0).with_context(|| format!("{word:?} is not a number ≥ 0"))
}

fn key(combination: &str) -> Result<(egui::Modifiers, egui::Key)> {
    let mut modifiers = egui::Modifiers::NONE;
    let mut parts: Vec<&str> = combination.split('+').collect();
    let name = parts.pop().unwrap_or_default();
    for part in parts {
        match part.to_ascii_lowercase().as_str() {
            "ctrl" | "cmd" => modifiers = modifiers | egui::Modifiers::COMMAND,
            "shift" => modifiers = modifiers | egui::Modifiers::SHIFT,
            "alt" => modifiers = modifiers | egui::Modifiers::ALT,
            other => bail!("unknown modifier {other:?} (ctrl, shift, alt)"),
        }
    }
    let key = egui::Key::from_name(name).or_else(|| egui::Key::from_name(&name.to_ascii_uppercase())).with_context(|| format!("unknown key {name:?}"))?;
    Ok((modifiers, key))
}

/// A widget of the last frame's tree.
#[derive(Debug, Clone)]
struct Widget {
    id: accesskit::NodeId,
    label: String,
    rect: egui::Rect,
    enabled: bool,
    /// A text label (what names the widget beside it), not a control.
    is_text: bool,
}

/// How the script ended, for `gui::run` to report once the window has closed.
#[derive(Debug, Default)]
pub struct Outcome {
    pub finished: bool,
    pub failure: Option<String>,
}

/// The plugin that plays a script.
pub struct DemoScript {
    lines: Vec<Line>,
    at: usize,
    /// When the current line began (for `within` and `sleep`).
    line_started: Instant,
    /// The current line's progress through its frames.
    stage: Stage,
    widgets: Vec<Widget>,
    shots: PathBuf,
    commands: Vec<egui::ViewportCommand>,
    outcome: Arc<Mutex<Outcome>>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Stage {
    Start,
    /// Asked last frame for its widget to be scrolled into view.
    Scrolling,
    /// Its widget is in view: acts on it this frame.
    Scrolled,
    /// Focused the field last frame; selects its text and types this frame.
    Focused,
    /// A screenshot was asked for; waiting for its image.
    AwaitingShot,
}

enum Progress {
    Next,
    Wait,
}

impl DemoScript {
    pub fn new(lines: Vec<Line>, shots: PathBuf, outcome: Arc<Mutex<Outcome>>) -> Self {
        Self { lines, at: 0, line_started: Instant::now(), stage: Stage::Start, widgets: Vec::new(), shots, commands: Vec::new(), outcome }
    }

    /// The widget `target` names: its match counted top to bottom, then left to
    /// right. To act on (`for_action`), it must be enabled, and a control is
    /// preferred to a text label that names it (a combo box and the label beside it).
    fn find(&self, target: &Target, for_action: bool) -> Option<&Widget> {
        let mut found: Vec<&Widget> =
            self.in_reading_order().into_iter().filter(|w| (!for_action || w.enabled) && target.matcher.matches(&w.label)).collect();
        if for_action && found.iter().any(|w| !w.is_text) {
            found.retain(|w| !w.is_text);
        }
        found.get(target.index - 1).copied()
    }

    /// The widgets top to bottom, then left to right, as a person reads the window.
    fn in_reading_order(&self) -> Vec<&Widget> {
        let mut widgets: Vec<&Widget> = self.widgets.iter().collect();
        widgets.sort_by(|a, b| (a.rect.top(), a.rect.left()).partial_cmp(&(b.rect.top(), b.rect.left())).unwrap_or(std::cmp::Ordering::Equal));
        widgets
    }

    fn line(&self) -> Option<&Line> {
        self.lines.get(self.at)
    }

    fn fail(&mut self, message: String) {
        let line = self.line().map_or(String::new(), |l| format!("line {}: {}: ", l.number, l.text));
        let message = format!("demo script, {line}{message}");
        self.outcome.lock().expect("outcome lock").failure = Some(message);
        self.at = self.lines.len();
        self.commands.push(egui::ViewportCommand::Close);
    }

    /// Performs as much of the script as this frame allows, adding events to `input`.
    fn play(&mut self, input: &mut egui::RawInput) {
        while let Some(line) = self.line().cloned() {
            match self.step(&line.command, input) {
                Ok(Progress::Next) => {
                    tracing::info!("demo script, line {}: {}", line.number, line.text);
                    self.at += 1;
                    self.stage = Stage::Start;
                    self.line_started = Instant::now();
                }
                Ok(Progress::Wait) => return,
                Err(e) => return self.fail(format!("{e:#}")),
            }
        }
        let mut outcome = self.outcome.lock().expect("outcome lock");
        if !outcome.finished && outcome.failure.is_none() {
            outcome.finished = true;
            tracing::info!("demo script finished");
        }
    }

    fn step(&mut self, command: &Command, input: &mut egui::RawInput) -> Result<Progress> {
        let waited = self.line_started.elapsed();
        Ok(match command {
            Command::Size(w, h) => {
                self.commands.push(egui::ViewportCommand::InnerSize(egui::vec2(*w, *h)));
                Progress::Next
            }
            Command::Sleep(duration) => {
                if waited >= *duration {
                    Progress::Next
                } else {
                    Progress::Wait
                }
            }
            Command::Wait(target) => match self.find(target, false) {
                Some(_) => Progress::Next,
                None => self.not_yet(target, waited)?,
            },
            Command::ScrollTo(target) | Command::Click(target, _) | Command::Hover(target, _) | Command::Type(target, _) => {
                let for_action = matches!(command, Command::Click(..) | Command::Type(..));
                let Some(widget) = self.find(target, for_action).cloned() else { return self.not_yet(target, waited) };
                match (self.stage, command) {
                    (Stage::Scrolled, Command::ScrollTo(_)) => Progress::Next,
                    (Stage::Scrolled, Command::Click(_, at)) => {
                        let pos = point_in(widget.rect, *at);
                        input.events.push(egui::Event::PointerMoved(pos));
                        for pressed in [true, false] {
                            input.events.push(egui::Event::PointerButton {
                                pos,
                                button: egui::PointerButton::Primary,
                                pressed,
                                modifiers: egui::Modifiers::NONE,
                            });
                        }
                        Progress::Next
                    }
                    (Stage::Scrolled, Command::Hover(_, at)) => {
                        input.events.push(egui::Event::PointerMoved(point_in(widget.rect, *at)));
                        Progress::Next
                    }
                    (Stage::Scrolled, Command::Type(..)) => {
                        input.events.push(action(accesskit::Action::Focus, widget.id));
                        self.stage = Stage::Focused;
                        Progress::Wait
                    }
                    (Stage::Focused, Command::Type(_, text)) => {
                        press(input, egui::Modifiers::COMMAND, egui::Key::A);
                        input.events.push(egui::Event::Text(text.clone()));
                        Progress::Next
                    }
                    (Stage::Scrolling, _) => {
                        // The scroll lands in the frame after the request; the rect is read the frame after that.
                        self.stage = Stage::Scrolled;
                        Progress::Wait
                    }
                    _ => {
                        // A widget below the fold is scrolled into view first, as a person scrolls to it.
                        input.events.push(action(accesskit::Action::ScrollIntoView, widget.id));
                        self.stage = Stage::Scrolling;
                        Progress::Wait
                    }
                }
            }
            Command::Key(modifiers, key) => {
                press(input, *modifiers, *key);
                Progress::Next
            }
            Command::Drop(paths) => {
                for path in paths {
                    if !path.is_file() {
                        bail!("{} is not a file", path.display());
                    }
                    input.dropped_files.push(egui::DroppedFile { path: Some(path.clone()), ..Default::default() });
                }
                Progress::Next
            }
            Command::Shot(name) => match self.stage {
                Stage::AwaitingShot => match take_screenshot(input) {
                    Some(image) => {
                        let path = self.shots.join(format!("{name}.png"));
                        save_png(&image, &path)?;
                        tracing::info!("saved {}", path.display());
                        Progress::Next
                    }
                    None if waited > Duration::from_secs(30) => bail!("the window sent no screenshot within 30 s"),
                    None => Progress::Wait,
                },
                _ => {
                    self.commands.push(egui::ViewportCommand::Screenshot(egui::UserData::new(name.clone())));
                    self.stage = Stage::AwaitingShot;
                    Progress::Wait
                }
            },
            Command::Dump => {
                for w in self.in_reading_order() {
                    tracing::info!("widget {:?} at ({:.0}, {:.0}){}", w.label, w.rect.left(), w.rect.top(), if w.enabled { "" } else { " (disabled)" });
                }
                Progress::Next
            }
            Command::Quit => {
                self.commands.push(egui::ViewportCommand::Close);
                Progress::Next
            }
        })
    }

    /// Keeps waiting for a widget until its line's time is up.
    fn not_yet(&self, target: &Target, waited: Duration) -> Result<Progress> {
        if waited < target.within {
            return Ok(Progress::Wait);
        }
        let shown: Vec<&str> = self.in_reading_order().into_iter().map(|w| w.label.as_str()).filter(|l| !l.is_empty()).take(60).collect();
        let which = if target.index > 1 { format!(" (match {})", target.index) } else { String::new() };
        bail!("no widget {}{which} within {:.0} s; the window shows: {}", target.matcher, target.within.as_secs_f32(), shown.join(" | "))
    }
}

impl egui::Plugin for DemoScript {
    fn debug_name(&self) -> &'static str {
        "demo script"
    }

    fn setup(&mut self, ctx: &egui::Context) {
        ctx.enable_accesskit();
        self.line_started = Instant::now();
    }

    fn input_hook(&mut self, _ctx: &egui::Context, input: &mut egui::RawInput) {
        self.play(input);
    }

    fn on_begin_pass(&mut self, ui: &mut egui::Ui) {
        for command in self.commands.drain(..) {
            ui.ctx().send_viewport_cmd(command);
        }
        if self.at < self.lines.len() {
            ui.ctx().request_repaint_after(POLL);
        }
    }

    fn output_hook(&mut self, _ctx: &egui::Context, output: &mut egui::FullOutput) {
        if let Some(update) = &output.platform_output.accesskit_update {
            self.widgets = widgets(&update.nodes);
        }
    }
}

/// The named widgets of a tree, each named as a screen reader names it: its
/// label; a text label's text; or the text of the labels it is labelled by
/// (a combo box or field beside its label).
fn widgets(nodes: &[(accesskit::NodeId, accesskit::Node)]) -> Vec<Widget> {
    let by_id: std::collections::HashMap<_, _> = nodes.iter().map(|(id, node)| (*id, node)).collect();
    fn own_name(node: &accesskit::Node) -> Option<&str> {
        match node.role() {
            accesskit::Role::Label => node.value(),
            _ => node.label(),
        }
    }
    nodes
        .iter()
        .filter_map(|(id, node)| {
            let label = match own_name(node) {
                Some(name) => name.to_string(),
                None => {
                    let names: Vec<&str> = node.labelled_by().iter().filter_map(|l| by_id.get(l).and_then(|n| own_name(n))).collect();
                    if names.is_empty() {
                        return None;
                    }
                    names.join(" ")
                }
            };
            let bounds = node.bounds()?;
            let rect = egui::Rect::from_min_max(egui::pos2(bounds.x0 as f32, bounds.y0 as f32), egui::pos2(bounds.x1 as f32, bounds.y1 as f32));
            Some(Widget { id: *id, label, rect, enabled: !node.is_disabled(), is_text: node.role() == accesskit::Role::Label })
        })
        .collect()
}

fn action(action: accesskit::Action, target: accesskit::NodeId) -> egui::Event {
    egui::Event::AccessKitActionRequest(accesskit::ActionRequest { action, target_tree: accesskit::TreeId::ROOT, target_node: target, data: None })
}

fn press(input: &mut egui::RawInput, modifiers: egui::Modifiers, key: egui::Key) {
    for pressed in [true, false] {
        input.events.push(egui::Event::Key { key, physical_key: None, pressed, repeat: false, modifiers });
    }
}

fn point_in(rect: egui::Rect, at: Option<egui::Vec2>) -> egui::Pos2 {
    at.map_or(rect.center(), |f| rect.min + f * rect.size())
}

/// The screenshot the window sent this frame, if any (taken out of the input).
fn take_screenshot(input: &mut egui::RawInput) -> Option<Arc<egui::ColorImage>> {
    let at = input.events.iter().position(|e| matches!(e, egui::Event::Screenshot { .. }))?;
    match input.events.remove(at) {
        egui::Event::Screenshot { image, .. } => Some(image),
        _ => None,
    }
}

fn save_png(image: &egui::ColorImage, path: &Path) -> Result<()> {
    let [w, h] = image.size;
    let buffer = image::RgbaImage::from_raw(w as u32, h as u32, image.as_raw().to_vec()).context("screenshot of an unexpected size")?;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    }
    buffer.save(path).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(line: &str) -> Command {
        let mut lines = parse(line, Path::new("t.demo")).unwrap();
        assert_eq!(lines.len(), 1);
        lines.remove(0).command
    }

    fn error(line: &str) -> String {
        format!("{:#}", parse(line, Path::new("t.demo")).unwrap_err())
    }

    #[test]
    fn parses_every_command() {
        let Command::Click(target, None) = one(r#"click "Start""#) else { panic!() };
        assert!(matches!(target.matcher, Matcher::Exact(ref t) if t == "Start"));
        assert_eq!((target.index, target.within), (1, DEFAULT_WITHIN));
        let Command::Click(target, Some(at)) = one(r#"click ~"sequential" index 2 within 5 at 0.25 1"#) else { panic!() };
        assert!(matches!(target.matcher, Matcher::Contains(ref t) if t == "sequential"));
        assert_eq!((target.index, target.within, at), (2, Duration::from_secs(5), egui::vec2(0.25, 1.0)));
        let Command::Wait(target) = one(r"wait /step [34]\d\d\/450/ within 300 # a comment") else { panic!() };
        assert!(target.matcher.matches("step 312/450") && !target.matcher.matches("step 212/450"));
        let Command::Type(target, text) = one(r#"type "Method" "prune:0.3 \"x\"""#) else { panic!() };
        assert!(target.matcher.matches("Method"));
        assert_eq!(text, "prune:0.3 \"x\"");
        assert!(matches!(one("key ctrl+3"), Command::Key(m, egui::Key::Num3) if m == egui::Modifiers::COMMAND));
        assert!(matches!(one("key Escape"), Command::Key(m, egui::Key::Escape) if m == egui::Modifiers::NONE));
        assert!(matches!(one("size 1600 1000"), Command::Size(w, h) if (w, h) == (1600.0, 1000.0)));
        assert!(matches!(one("drop a.jpg \"b c.jpg\""), Command::Drop(p) if p == [PathBuf::from("a.jpg"), PathBuf::from("b c.jpg")]));
        assert!(matches!(one("sleep 1.5"), Command::Sleep(d) if d == Duration::from_millis(1500)));
        assert!(matches!(one("shot curves"), Command::Shot(n) if n == "curves"));
        assert!(matches!(one("dump"), Command::Dump));
        assert!(matches!(one("quit"), Command::Quit));
        assert!(parse("# only a comment\n\n   \n", Path::new("t.demo")).unwrap().is_empty());
    }

    #[test]
    fn bad_lines_are_named() {
        let e = error("click \"Start\"\nclik \"Stop\"");
        assert!(e.contains("t.demo:2") && e.contains("unknown command \"clik\""), "{e}");
        assert!(error("click Start").contains("name the widget"));
        assert!(error("click \"Start").contains("no closing \""));
        assert!(error("click \"A\" index 0").contains("index counts from 1"));
        assert!(error("hover \"A\" at 2 0").contains("fractions"));
        assert!(error("wait \"A\" at 0.5 0.5").contains("unexpected"));
        assert!(error("wait /(/").contains("no regular expression"));
        assert!(error("shot a/b").contains("without a folder"));
        assert!(error("key hyper+x").contains("unknown modifier"));
        assert!(error("sleep -1").contains("not a number"));
    }

    #[test]
    fn the_nth_match_counts_from_the_top_and_controls_come_first() {
        let outcome = Arc::new(Mutex::new(Outcome::default()));
        let mut script = DemoScript::new(Vec::new(), PathBuf::new(), outcome);
        let at = |y: f32, enabled, is_text| Widget {
            id: accesskit::NodeId(y as u64),
            label: "Next".into(),
            rect: egui::Rect::from_min_size(egui::pos2(0.0, y), egui::vec2(10.0, 10.0)),
            enabled,
            is_text,
        };
        script.widgets = vec![at(300.0, true, false), at(100.0, false, false), at(200.0, true, false), at(50.0, true, true)];
        let target = |index| Target { matcher: Matcher::Exact("Next".into()), index, within: DEFAULT_WITHIN };
        // To wait for or look at, any widget; to act on, enabled controls before text labels.
        assert_eq!(script.find(&target(1), false).unwrap().rect.top(), 50.0);
        assert_eq!(script.find(&target(2), false).unwrap().rect.top(), 100.0);
        assert_eq!(script.find(&target(1), true).unwrap().rect.top(), 200.0);
        assert_eq!(script.find(&target(2), true).unwrap().rect.top(), 300.0);
        assert!(script.find(&target(3), true).is_none());
    }
}
