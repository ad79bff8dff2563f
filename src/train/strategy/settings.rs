//! A strategy's settings described as data, for an editor to draw (Setup's
//! strategy editor draws each kind of setting once, whatever the strategy).

use super::mixing::Mixing;
use super::sequence::Sequence;
use crate::train::pseudo::PseudoLabels;

/// One setting of a strategy, to edit in place.
pub enum Setting<'a> {
    /// The sequential family's order, switch steps and learning-rate factor.
    Sequence(&'a mut Sequence),
    /// `alternate`'s and `joint`'s loss weighting and pseudo-label option.
    Mixing(&'a mut Mixing),
    /// Pseudo-label settings that are always on.
    PseudoLabels(&'a mut PseudoLabels),
    Number(Number<'a>),
    Choice(Choice<'a>),
}

/// A number under `strategy.<key>`.
pub struct Number<'a> {
    pub key: &'static str,
    pub label: &'static str,
    /// Shown on hover; empty for none.
    pub hint: &'static str,
    pub value: NumberValue<'a>,
    pub max: f64,
    /// How fast a drag changes it.
    pub speed: f64,
    pub suffix: &'static str,
}

pub enum NumberValue<'a> {
    Count(&'a mut usize),
    Single(&'a mut f32),
    Double(&'a mut f64),
}

/// One of a list of options, under `strategy.<key>`.
pub struct Choice<'a> {
    pub key: &'static str,
    pub label: &'static str,
    pub hint: &'static str,
    pub value: &'a mut dyn Choosable,
}

/// A value picked from a fixed list, each option by its written key.
pub trait Choosable {
    fn options(&self) -> Vec<String>;
    fn chosen(&self) -> String;
    /// Takes the option written `key` (one of `options`).
    fn choose(&mut self, key: &str);
}

impl<'a> Number<'a> {
    pub fn count(key: &'static str, label: &'static str, value: &'a mut usize, max: usize) -> Self {
        Self { key, label, hint: "", value: NumberValue::Count(value), max: max as f64, speed: 1.0, suffix: "" }
    }

    pub fn single(key: &'static str, label: &'static str, value: &'a mut f32, max: f64, speed: f64) -> Self {
        Self { key, label, hint: "", value: NumberValue::Single(value), max, speed, suffix: "" }
    }

    pub fn double(key: &'static str, label: &'static str, value: &'a mut f64, max: f64, speed: f64) -> Self {
        Self { key, label, hint: "", value: NumberValue::Double(value), max, speed, suffix: "" }
    }

    pub fn hint(self, hint: &'static str) -> Self {
        Self { hint, ..self }
    }

    pub fn suffix(self, suffix: &'static str) -> Self {
        Self { suffix, ..self }
    }
}

impl<'a> From<Number<'a>> for Setting<'a> {
    fn from(number: Number<'a>) -> Self {
        Setting::Number(number)
    }
}

impl<'a> From<Choice<'a>> for Setting<'a> {
    fn from(choice: Choice<'a>) -> Self {
        Setting::Choice(choice)
    }
}
