//! The things in a scene: each class's shape built from parts, its colours
//! and texture, and which pixels it covers.

use rand::RngCore;
use rand_chacha::ChaCha8Rng;

use crate::data::augment::unit;
use super::noise::{hash_unit, hsv, mixc, rotate_hue, scale, uniform, value_noise};
use super::world::Thing;

/// One thing in the scene: its full shape box (may extend past the image) and its look.
#[derive(Debug, Clone)]
pub(super) struct Obj {
    pub(super) thing: Thing,
    pub(super) x0: f32,
    pub(super) y0: f32,
    pub(super) w: f32,
    pub(super) h: f32,
    pub(super) mirrored: bool,
    pub(super) variant: u8,
    pub(super) colours: [[f32; 3]; 4],
    pub(super) textured: bool,
    pub(super) period: f32,
    pub(super) seed: u64,
}

// Parts of a shape, indexing `Obj::colours`.
pub(super) const P0: u8 = 0;
pub(super) const P1: u8 = 1;
pub(super) const P2: u8 = 2;
pub(super) const P3: u8 = 3;

pub(super) fn in_rect(u: f32, v: f32, u0: f32, v0: f32, u1: f32, v1: f32) -> bool {
    u >= u0 && u < u1 && v >= v0 && v < v1
}

pub(super) fn in_super(u: f32, v: f32, cu: f32, cv: f32, ru: f32, rv: f32, p: i32) -> bool {
    ((u - cu) / ru).abs().powi(p) + ((v - cv) / rv).abs().powi(p) <= 1.0
}

/// Distance from point `p` to the segment `a`–`b`.
pub(super) fn seg_dist(p: (f32, f32), a: (f32, f32), b: (f32, f32)) -> f32 {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let t = (((p.0 - a.0) * dx + (p.1 - a.1) * dy) / (dx * dx + dy * dy).max(1e-6)).clamp(0.0, 1.0);
    ((p.0 - a.0 - t * dx).powi(2) + (p.1 - a.1 - t * dy).powi(2)).sqrt()
}

impl Obj {
    pub(super) fn new(thing: Thing, x0: f32, y0: f32, w: f32, h: f32, rng: &mut ChaCha8Rng) -> Self {
        let mirrored = unit(rng) < 0.5;
        let variant = (rng.next_u32() % 2) as u8;
        let textured = unit(rng) < 0.7;
        let seed = rng.next_u64();
        let mut u = |lo: f32, hi: f32| uniform(rng, lo, hi);
        let (colours, period) = match thing {
            // Skin, shirt (magenta-purple, striped), trousers (dark blue), hair and shoes.
            Thing::Person => (
                [
                    hsv(u(18.0, 35.0), u(0.3, 0.55), u(0.6, 0.95)),
                    hsv(u(280.0, 340.0), u(0.5, 0.85), u(0.5, 0.9)),
                    hsv(u(210.0, 240.0), u(0.3, 0.6), u(0.15, 0.4)),
                    hsv(u(20.0, 40.0), u(0.3, 0.6), u(0.05, 0.3)),
                ],
                u(0.05, 0.09),
            ),
            // Body (red), windows, tyres, hubs and lights.
            Thing::Car => (
                [
                    hsv(u(-20.0, 15.0), u(0.65, 0.95), u(0.55, 0.95)),
                    hsv(u(190.0, 210.0), u(0.15, 0.35), u(0.75, 0.95)),
                    hsv(0.0, 0.0, u(0.05, 0.15)),
                    hsv(u(45.0, 60.0), u(0.2, 0.5), u(0.75, 0.95)),
                ],
                0.0,
            ),
            // Wood (brown, grain), cushion (checked), dark wood.
            Thing::Chair => {
                let hue = u(18.0, 35.0);
                let (s, v) = (u(0.55, 0.8), u(0.3, 0.6));
                (
                    [
                        hsv(hue, s, v),
                        hsv(hue + u(-10.0, 10.0), s * 0.7, (v * 1.4).min(1.0)),
                        hsv(hue, s, v * 0.6),
                        hsv(hue, s, v * 0.4),
                    ],
                    u(0.12, 0.2),
                )
            }
            // Glass (green), label (light), cap.
            Thing::Bottle => (
                [
                    hsv(u(95.0, 160.0), u(0.5, 0.9), u(0.3, 0.65)),
                    hsv(u(0.0, 360.0), u(0.05, 0.3), u(0.85, 1.0)),
                    hsv(u(0.0, 360.0), u(0.6, 0.9), u(0.5, 0.8)),
                    [240.0; 3],
                ],
                0.0,
            ),
            // Fur (tan to black), ears and nose, spots.
            Thing::Dog => {
                let hue = u(20.0, 40.0);
                let v = if u(0.0, 1.0) < 0.2 { u(0.1, 0.2) } else { u(0.35, 0.75) };
                let spot_v = if v < 0.3 { 0.85 } else { v * 0.35 };
                (
                    [hsv(hue, u(0.3, 0.7), v), hsv(hue, 0.5, v * 0.45), hsv(hue, 0.2, spot_v), [20.0; 3]],
                    u(2.5, 4.0),
                )
            }
            // Frame (cyan to yellow-green), tyres, saddle and bars.
            Thing::Bicycle => (
                [
                    hsv(u(160.0, 195.0), u(0.6, 0.95), u(0.6, 0.95)),
                    hsv(0.0, 0.0, u(0.05, 0.12)),
                    hsv(0.0, 0.0, u(0.15, 0.3)),
                    [0.0; 3],
                ],
                0.0,
            ),
        };
        Self { thing, x0, y0, w, h, mirrored, variant, colours, textured, period, seed }
    }

    /// Makes the thing the first (`second = false`) or second kind of its
    /// classification classes: chairs differ in shape (front or side view),
    /// the rest in the colour of one part (hue turned 150°; the dog's fur darkened).
    pub(super) fn set_kind(&mut self, second: bool) {
        if self.thing == Thing::Chair {
            self.variant = second as u8;
            return;
        }
        if !second {
            return;
        }
        let part = if self.thing == Thing::Person { P1 } else { P0 } as usize;
        self.colours[part] = match self.thing {
            Thing::Dog => scale(self.colours[part], 0.3),
            _ => rotate_hue(self.colours[part], 150.0),
        };
    }

    /// The part at normalised shape coordinates `(u, v)` in `[0, 1)`, or `None` outside the shape.
    pub(super) fn part(&self, u: f32, v: f32) -> Option<u8> {
        let u = if self.mirrored { 1.0 - u } else { u };
        let (w, h) = (self.w, self.h);
        // Distance in pixels from (u, v) to (cu, cv).
        let dist = |cu: f32, cv: f32| (((u - cu) * w).powi(2) + ((v - cv) * h).powi(2)).sqrt();
        let px = (u * w, v * h);
        let pt = |a: f32, b: f32| (a * w, b * h);
        match self.thing {
            Thing::Person => {
                if dist(0.5, 0.1) <= 0.095 * h {
                    return Some(if v < 0.06 { P3 } else { P0 });
                }
                if in_rect(u, v, 0.43, 0.18, 0.57, 0.23) {
                    return Some(P0);
                }
                if in_super(u, v, 0.5, 0.4, 0.3, 0.19, 4) {
                    return Some(P1);
                }
                let arm = in_rect(u, v, 0.06, 0.24, 0.19, 0.52) || in_rect(u, v, 0.81, 0.24, 0.94, 0.52);
                if arm {
                    return Some(P1);
                }
                if in_rect(u, v, 0.07, 0.52, 0.18, 0.58) || in_rect(u, v, 0.82, 0.52, 0.93, 0.58) {
                    return Some(P0);
                }
                if in_rect(u, v, 0.24, 0.58, 0.47, 0.95) || in_rect(u, v, 0.53, 0.58, 0.76, 0.95) {
                    return Some(P2);
                }
                if in_rect(u, v, 0.21, 0.95, 0.47, 1.0) || in_rect(u, v, 0.53, 0.95, 0.79, 1.0) {
                    return Some(P3);
                }
                None
            }
            Thing::Car => {
                for cu in [0.2, 0.8] {
                    let d = dist(cu, 0.8);
                    if d <= 0.19 * h {
                        return Some(if d <= 0.08 * h { P3 } else { P2 });
                    }
                }
                if in_super(u, v, 0.5, 0.6, 0.5, 0.2, 6) {
                    return Some(if u > 0.95 && (0.47..0.56).contains(&v) { P3 } else { P0 });
                }
                if (0.08..0.42).contains(&v) {
                    let t = (0.42 - v) / 0.34;
                    let (ul, ur) = (0.16 + 0.14 * t, 0.74 - 0.12 * t);
                    if u >= ul && u < ur {
                        let window = v > 0.14
                            && v < 0.37
                            && u > ul + 0.035
                            && u < ur - 0.035
                            && (u - 0.46).abs() > 0.02;
                        return Some(if window { P1 } else { P0 });
                    }
                }
                None
            }
            Thing::Chair => {
                let leg = if self.variant == 0 {
                    in_rect(u, v, 0.08, 0.6, 0.22, 1.0) || in_rect(u, v, 0.78, 0.6, 0.92, 1.0)
                } else {
                    in_rect(u, v, 0.08, 0.6, 0.22, 1.0) || in_rect(u, v, 0.8, 0.6, 0.94, 1.0)
                };
                if leg {
                    return Some(P2);
                }
                if in_rect(u, v, 0.04, 0.48, 0.96, 0.61) {
                    return Some(P1);
                }
                if self.variant == 0 {
                    // Front view: an upholstered back in a wooden frame.
                    if in_rect(u, v, 0.22, 0.1, 0.78, 0.42) {
                        return Some(P1);
                    }
                    in_rect(u, v, 0.1, 0.0, 0.9, 0.5).then_some(P0)
                } else {
                    // Side view: a slanted back post.
                    let shift = 0.08 * (0.5 - v);
                    in_rect(u + shift, v, 0.06, 0.0, 0.3, 0.5).then_some(P0)
                }
            }
            Thing::Bottle => {
                if in_rect(u, v, 0.33, 0.0, 0.67, 0.07) {
                    return Some(P2);
                }
                if in_rect(u, v, 0.37, 0.07, 0.63, 0.22) {
                    return Some(P0);
                }
                if (0.22..0.38).contains(&v) {
                    let half = 0.13 + (0.42 - 0.13) * (v - 0.22) / 0.16;
                    return ((u - 0.5).abs() <= half).then_some(P0);
                }
                if in_super(u, v, 0.5, 0.69, 0.42, 0.31, 8) {
                    return Some(if (0.55..0.78).contains(&v) { P1 } else { P0 });
                }
                None
            }
            Thing::Dog => {
                if dist(0.97, 0.27) <= 0.03 * h.max(w) {
                    return Some(P3);
                }
                if in_super(u, v, 0.75, 0.15, 0.045, 0.11, 2) {
                    return Some(P1);
                }
                if in_super(u, v, 0.8, 0.25, 0.13, 0.17, 2) || in_super(u, v, 0.9, 0.3, 0.08, 0.07, 2) {
                    return Some(P0);
                }
                if in_super(u, v, 0.45, 0.45, 0.33, 0.2, 2) {
                    return Some(P0);
                }
                let leg = [0.18, 0.3, 0.56, 0.66].iter().any(|&l| in_rect(u, v, l, 0.5, l + 0.07, 0.97));
                if leg {
                    return Some(P0);
                }
                if [0.18, 0.3, 0.56, 0.66].iter().any(|&l| in_rect(u, v, l, 0.97, l + 0.07, 1.0)) {
                    return Some(P1);
                }
                if seg_dist(px, pt(0.15, 0.4), pt(0.03, 0.12)) <= (0.035 * h).max(0.6) {
                    return Some(P0);
                }
                None
            }
            Thing::Bicycle => {
                let thick = (0.045 * h).max(0.6);
                let (rear, crank, seat, head, front) =
                    (pt(0.22, 0.68), pt(0.47, 0.7), pt(0.4, 0.3), pt(0.72, 0.28), pt(0.78, 0.68));
                if in_rect(u, v, 0.32, 0.22, 0.47, 0.28) {
                    return Some(P2);
                }
                let bar = pt(0.68, 0.16);
                if seg_dist(px, head, bar) <= thick || seg_dist(px, bar, pt(0.76, 0.16)) <= thick {
                    return Some(P2);
                }
                let frame =
                    [(rear, crank), (rear, seat), (seat, crank), (seat, head), (head, crank), (head, front)];
                if frame.iter().any(|&(a, b)| seg_dist(px, a, b) <= thick) {
                    return Some(P0);
                }
                for c in [rear, front] {
                    let d = ((px.0 - c.0).powi(2) + (px.1 - c.1).powi(2)).sqrt();
                    let r = 0.31 * h;
                    if d <= r && d >= r - (0.07 * h).max(1.0) {
                        return Some(P1);
                    }
                    if d <= (0.04 * h).max(0.6) {
                        return Some(P0);
                    }
                }
                None
            }
        }
    }

    /// The colour of a part at shape coordinates `(u, v)`, image pixel `(x, y)`.
    pub(super) fn colour(&self, part: u8, u: f32, v: f32, x: usize, y: usize) -> [f32; 3] {
        let c = self.colours[part as usize];
        match (self.thing, part) {
            (Thing::Person, P1) if self.textured => {
                // Horizontal stripes on the shirt.
                if (v / self.period).fract() < 0.5 {
                    c
                } else {
                    scale(c, 0.6)
                }
            }
            (Thing::Car, P0) => {
                // Glossy: lighter at the top, a highlight line along the body.
                let mut c = scale(c, 1.2 - 0.5 * v);
                if (0.5..0.53).contains(&v) {
                    c = mixc(c, [255.0; 3], 0.4);
                }
                c
            }
            (Thing::Chair, P0) | (Thing::Chair, P2) => {
                // Wood grain along the legs and posts.
                let g = value_noise(self.seed, u * self.w * 0.7, v * self.h * 0.06);
                scale(c, 0.8 + 0.4 * g)
            }
            (Thing::Chair, P1) => {
                // Checked cushion.
                let check = ((u / self.period).floor() as i64 + (v / (self.period * 0.6)).floor() as i64)
                    .rem_euclid(2);
                if check == 0 {
                    c
                } else {
                    scale(c, 0.7)
                }
            }
            (Thing::Bottle, P0) => {
                // Glass: a bright vertical highlight, darker edges.
                let uu = if self.mirrored { 1.0 - u } else { u };
                if (0.22..0.32).contains(&uu) && v > 0.1 {
                    mixc(c, [255.0; 3], 0.55)
                } else {
                    scale(c, 0.75 + 0.5 * (1.0 - (uu - 0.5).abs() * 2.0))
                }
            }
            (Thing::Dog, P0) => {
                // Fur noise, and spots on some dogs.
                let fur = 0.7 + 0.6 * hash_unit(self.seed, x as i64, y as i64);
                let spot = self.textured
                    && value_noise(self.seed ^ 7, u * self.w / self.period, v * self.h / self.period) > 0.68;
                scale(if spot { self.colours[P2 as usize] } else { c }, fur)
            }
            _ => c,
        }
    }
}
