//! The generator's randomness and colour: per-image generators, hashes and
//! value noise, random draws, colour spaces.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::data::augment::unit;

pub(super) const TASK_DET: u64 = 0x0de7;
pub(super) const TASK_SEG: u64 = 0x05e6;
pub(super) const TASK_CLS: u64 = 0x0c15;

pub(super) fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A well-mixed 64-bit value from several inputs (order matters).
pub(crate) fn mix(parts: &[u64]) -> u64 {
    parts.iter().fold(0x2545_F491_4F6C_DD1D, |h, &p| splitmix64(h ^ splitmix64(p)))
}

pub(super) fn image_rng(seed: u64, task: u64, index: usize) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(mix(&[seed, task, index as u64]))
}

/// A hash of a lattice point to `[0, 1)`.
pub(super) fn hash_unit(seed: u64, x: i64, y: i64) -> f32 {
    (splitmix64(seed ^ splitmix64((x as u64) << 32 ^ (y as u64 & 0xFFFF_FFFF))) >> 40) as f32
        / (1u64 << 24) as f32
}

/// Smooth value noise in `[0, 1)` with lattice spacing 1.
pub(super) fn value_noise(seed: u64, x: f32, y: f32) -> f32 {
    let (xf, yf) = (x.floor(), y.floor());
    let (xi, yi) = (xf as i64, yf as i64);
    let s = |t: f32| t * t * (3.0 - 2.0 * t);
    let (sx, sy) = (s(x - xf), s(y - yf));
    let at = |dx: i64, dy: i64| hash_unit(seed, xi + dx, yi + dy);
    let top = at(0, 0) + (at(1, 0) - at(0, 0)) * sx;
    let bottom = at(0, 1) + (at(1, 1) - at(0, 1)) * sx;
    top + (bottom - top) * sy
}

pub(super) fn uniform(rng: &mut ChaCha8Rng, lo: f32, hi: f32) -> f32 {
    lo + (hi - lo) * unit(rng)
}

pub(super) fn log_uniform(rng: &mut ChaCha8Rng, lo: f32, hi: f32) -> f32 {
    uniform(rng, lo.ln(), hi.ln()).exp()
}

/// Picks an index with probability proportional to its weight.
pub(super) fn pick(rng: &mut ChaCha8Rng, weights: &[f32]) -> usize {
    let total: f32 = weights.iter().sum();
    let mut r = unit(rng) * total;
    for (i, &w) in weights.iter().enumerate() {
        if r < w {
            return i;
        }
        r -= w;
    }
    weights.len() - 1
}

/// HSV (hue in degrees, saturation and value in 0..1) to RGB in 0..255.
pub(super) fn hsv(h: f32, s: f32, v: f32) -> [f32; 3] {
    let h = h.rem_euclid(360.0) / 60.0;
    let c = v * s;
    let x = c * (1.0 - (h % 2.0 - 1.0).abs());
    let (r, g, b) = match h as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let m = v - c;
    [(r + m) * 255.0, (g + m) * 255.0, (b + m) * 255.0]
}

pub(super) fn scale(c: [f32; 3], f: f32) -> [f32; 3] {
    c.map(|v| v * f)
}

/// `c` with its hue turned by `degrees` (a rotation about the grey axis).
pub(super) fn rotate_hue(c: [f32; 3], degrees: f32) -> [f32; 3] {
    let (sin, cos) = degrees.to_radians().sin_cos();
    let k = (1.0 - cos) / 3.0;
    let r = 3f32.sqrt().recip() * sin;
    let row = |a: f32, b: f32, d: f32| (a * c[0] + b * c[1] + d * c[2]).clamp(0.0, 255.0);
    [row(cos + k, k - r, k + r), row(k + r, cos + k, k - r), row(k - r, k + r, cos + k)]
}

pub(super) fn mixc(a: [f32; 3], b: [f32; 3], t: f32) -> [f32; 3] {
    [a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t, a[2] + (b[2] - a[2]) * t]
}
