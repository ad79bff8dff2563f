//! The synthetic world: the kinds of stuff and things, how each kind of stuff
//! looks, and a scene (the ground regions, the horizon, where things stand).

use rand::RngCore;
use rand_chacha::ChaCha8Rng;

use crate::data::augment::unit;
use super::{DET_CLASSES, SEG_CLASSES};
use super::noise::{hash_unit, hsv, mixc, pick, scale, uniform, value_noise};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stuff {
    Wall,
    Sky,
    Floor,
    Grass,
    Road,
    Water,
}

impl Stuff {
    /// ADE label (1-based index into [`SEG_CLASSES`]).
    pub(super) fn label(self) -> u8 {
        self as u8 + 1
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Thing {
    Person,
    Car,
    Chair,
    Bottle,
    Dog,
    Bicycle,
}

pub(super) const THINGS: [Thing; 6] =
    [Thing::Person, Thing::Car, Thing::Chair, Thing::Bottle, Thing::Dog, Thing::Bicycle];

impl Thing {
    pub(super) fn det_class(self) -> usize {
        self as usize
    }

    /// ADE label, or 0 (unlabelled) for things the segmentation set does not name.
    pub(super) fn seg_label(self) -> u8 {
        SEG_CLASSES.iter().position(|&n| n == DET_CLASSES[self as usize]).map_or(0, |i| i as u8 + 1)
    }

    /// Width / height of the full shape.
    pub(super) fn aspect(self, rng: &mut ChaCha8Rng) -> f32 {
        match self {
            Thing::Person => uniform(rng, 0.36, 0.46),
            Thing::Car => uniform(rng, 1.8, 2.5),
            Thing::Chair => uniform(rng, 0.55, 0.85),
            Thing::Bottle => uniform(rng, 0.28, 0.4),
            Thing::Dog => uniform(rng, 1.2, 1.6),
            Thing::Bicycle => uniform(rng, 1.5, 1.8),
        }
    }

    /// Range of the shape's height as a fraction of the image height (before perspective).
    pub(super) fn height_range(self) -> (f32, f32) {
        match self {
            Thing::Person => (0.3, 0.85),
            Thing::Car => (0.15, 0.4),
            Thing::Chair => (0.25, 0.65),
            Thing::Bottle => (0.2, 0.5),
            Thing::Dog => (0.15, 0.4),
            Thing::Bicycle => (0.2, 0.5),
        }
    }
}

/// Per-image parameters of a stuff region's look.
#[derive(Debug, Clone, Copy)]
pub(super) struct StuffStyle {
    pub(super) base: [f32; 3],
    pub(super) alt: [f32; 3],
    pub(super) period: f32,
    pub(super) phase: f32,
    pub(super) seed: u64,
}

pub(super) fn stuff_style(stuff: Stuff, rng: &mut ChaCha8Rng, k: f32) -> StuffStyle {
    let seed = rng.next_u64();
    let phase = uniform(rng, 0.0, std::f32::consts::TAU);
    let (base, alt, period) = match stuff {
        Stuff::Sky => {
            let hue = uniform(rng, 195.0, 222.0);
            (
                hsv(hue, uniform(rng, 0.4, 0.7), uniform(rng, 0.8, 1.0)),
                hsv(hue, 0.05, 1.0),
                uniform(rng, 14.0, 30.0) * k,
            )
        }
        Stuff::Wall => {
            let hue = uniform(rng, 20.0, 60.0);
            let (s, v) = (uniform(rng, 0.08, 0.3), uniform(rng, 0.72, 0.92));
            (hsv(hue, s, v), hsv(hue, s * 1.3, v * 0.88), uniform(rng, 5.0, 12.0) * k)
        }
        Stuff::Floor => {
            let hue = uniform(rng, 15.0, 40.0);
            let (s, v) = (uniform(rng, 0.25, 0.55), uniform(rng, 0.4, 0.65));
            (hsv(hue, s, v), hsv(hue, s, v * 0.7), uniform(rng, 6.0, 12.0) * k)
        }
        Stuff::Grass => {
            let hue = uniform(rng, 85.0, 130.0);
            let (s, v) = (uniform(rng, 0.5, 0.8), uniform(rng, 0.35, 0.6));
            (hsv(hue, s, v), hsv(hue + 10.0, s, v * 0.6), uniform(rng, 1.5, 3.0) * k)
        }
        Stuff::Road => {
            let v = uniform(rng, 0.22, 0.4);
            let line = if unit(rng) < 0.5 { hsv(50.0, 0.8, 0.9) } else { hsv(0.0, 0.0, 0.92) };
            (hsv(uniform(rng, 0.0, 360.0), 0.05, v), line, uniform(rng, 6.0, 10.0) * k)
        }
        Stuff::Water => {
            let hue = uniform(rng, 180.0, 205.0);
            let (s, v) = (uniform(rng, 0.5, 0.8), uniform(rng, 0.4, 0.65));
            (hsv(hue, s, v), hsv(hue, s * 0.4, (v * 1.5).min(1.0)), uniform(rng, 3.5, 6.0) * k)
        }
    };
    StuffStyle { base, alt, period, phase, seed }
}

/// The background: top region above `horizon[x]`, far ground down to `split[x]`, near ground below.
pub(super) struct Scene {
    pub(super) w: usize,
    pub(super) h: usize,
    pub(super) outdoor: bool,
    pub(super) horizon: Vec<f32>,
    pub(super) split: Vec<f32>,
    pub(super) lane: Vec<f32>,
    pub(super) top: (Stuff, StuffStyle),
    pub(super) far: (Stuff, StuffStyle),
    pub(super) near: (Stuff, StuffStyle),
}

impl Scene {
    pub(super) fn new(w: usize, h: usize, rng: &mut ChaCha8Rng) -> Self {
        let k = w.max(h) as f32 / 96.0;
        let outdoor = unit(rng) < 0.6;
        let (hf, wf) = (h as f32, w as f32);
        let h0 = hf * uniform(rng, 0.3, 0.58);
        let (a1, f1, p1) = (hf * uniform(rng, 0.01, 0.07), uniform(rng, 0.5, 2.0), uniform(rng, 0.0, 6.3));
        let (a2, f2, p2) = (hf * uniform(rng, 0.0, 0.025), uniform(rng, 2.0, 5.0), uniform(rng, 0.0, 6.3));
        let slope = uniform(rng, -0.15, 0.15);
        let tau = std::f32::consts::TAU;
        let horizon: Vec<f32> = (0..w)
            .map(|x| {
                let t = x as f32 / wf;
                if outdoor {
                    h0 + a1 * (tau * f1 * t + p1).sin() + a2 * (tau * f2 * t + p2).sin()
                } else {
                    h0 + slope * (x as f32 - wf / 2.0)
                }
            })
            .collect();
        let depth = uniform(rng, 0.3, 0.7);
        let (a3, f3, p3) = (hf * uniform(rng, 0.0, 0.05), uniform(rng, 0.5, 2.5), uniform(rng, 0.0, 6.3));
        let split: Vec<f32> = horizon
            .iter()
            .enumerate()
            .map(|(x, &hz)| hz + (hf - hz) * depth + a3 * (tau * f3 * x as f32 / wf + p3).sin())
            .collect();
        let lane_t = uniform(rng, 0.35, 0.65);
        let (top, far, near) = if outdoor {
            let grounds = [Stuff::Grass, Stuff::Road, Stuff::Water];
            let far = grounds[pick(rng, &[1.0, 1.0, 0.8])];
            let near = if unit(rng) < 0.5 { far } else { grounds[pick(rng, &[1.0, 1.0, 0.5])] };
            (Stuff::Sky, far, near)
        } else {
            (Stuff::Wall, Stuff::Floor, Stuff::Floor)
        };
        let top = (top, stuff_style(top, rng, k));
        let far = (far, stuff_style(far, rng, k));
        let near = if near == far.0 { far } else { (near, stuff_style(near, rng, k)) };
        // The lane marking runs through the middle of the road band it lies in.
        let lane: Vec<f32> = (0..w)
            .map(|x| {
                let (lo, hi) = if far.0 == Stuff::Road { (horizon[x], split[x]) } else { (split[x], hf) };
                lo + (hi - lo) * lane_t
            })
            .collect();
        Self { w, h, outdoor, horizon, split, lane, top, far, near }
    }

    pub(super) fn stuff_at(&self, x: usize, y: usize) -> (Stuff, StuffStyle) {
        let yc = y as f32 + 0.5;
        if yc < self.horizon[x] {
            self.top
        } else if yc < self.split[x] {
            self.far
        } else {
            self.near
        }
    }

    pub(super) fn colour(&self, stuff: Stuff, st: &StuffStyle, x: usize, y: usize) -> [f32; 3] {
        let (xf, yf) = (x as f32 + 0.5, y as f32 + 0.5);
        let k = self.w.max(self.h) as f32 / 96.0;
        match stuff {
            Stuff::Sky => {
                // Lighter towards the horizon, with soft clouds.
                let t = (yf / self.horizon[x].max(1.0)).clamp(0.0, 1.0);
                let c = mixc(st.base, st.alt, 0.45 * t);
                let cloud = value_noise(st.seed, xf / st.period, yf / (st.period * 0.5));
                mixc(c, [245.0; 3], ((cloud - 0.62) * 3.0).clamp(0.0, 0.85))
            }
            Stuff::Wall => {
                // Wallpaper: faint vertical stripes.
                let s = ((xf / st.period + st.phase).fract() < 0.5) as u8 as f32;
                mixc(st.base, st.alt, 0.5 * s)
            }
            Stuff::Floor => {
                // Tiles: checks, larger towards the viewer.
                let depth =
                    ((yf - self.horizon[x]) / (self.h as f32 - self.horizon[x]).max(1.0)).clamp(0.0, 1.0);
                let p = st.period * (0.5 + depth);
                let check = ((xf / p).floor() as i64 + (yf / (p * 0.6)).floor() as i64).rem_euclid(2) as f32;
                mixc(st.base, st.alt, check)
            }
            Stuff::Grass => {
                // Blades: strong noise, stretched vertically.
                let n = value_noise(st.seed, xf / st.period, yf / (st.period * 3.0));
                let fine = hash_unit(st.seed ^ 1, x as i64, y as i64);
                mixc(st.base, st.alt, (0.7 * n + 0.3 * fine).clamp(0.0, 1.0))
            }
            Stuff::Road => {
                let grain = 0.9 + 0.2 * hash_unit(st.seed, x as i64, y as i64);
                let on_lane = (yf - self.lane[x]).abs() < 0.8 * k.max(1.0)
                    && ((xf / st.period + st.phase).fract() < 0.55);
                if on_lane {
                    st.alt
                } else {
                    scale(st.base, grain)
                }
            }
            Stuff::Water => {
                // Ripples: horizontal wavy bands.
                let wave = (yf / st.period * std::f32::consts::TAU
                    + 1.5 * (xf / (st.period * 4.0) + st.phase).sin())
                .sin();
                mixc(st.base, st.alt, ((wave - 0.3) * 0.6).clamp(0.0, 0.6))
            }
        }
    }
}
