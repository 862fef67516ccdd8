//! Drawing a synthetic scene: a textured background, then each object as an analytic shape in
//! its 3×3 cell, anti-aliased by 4×4 supersampling. Position jitter, a small rotation and colour
//! jitter (from the sample's render seed) make two images of the same scene differ in pixels.
use std::sync::OnceLock;

use image::{Rgb, RgbImage};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::synthetic_scene::{Object, Scene, Shape, Size, Texture};

/// The `size`×`size` RGB image of `scene`.
pub(crate) fn render(scene: &Scene, size: u32, rng: &mut ChaCha8Rng) -> RgbImage {
    let base = jitter(scene.background.colour.rgb(), 8, rng);
    let period = (size / 8).max(2);
    let texture = scene.background.texture;
    let mut image = RgbImage::from_fn(size, size, |x, y| {
        let delta = match texture {
            Texture::Plain => 0,
            Texture::Striped if ((x + y) / period).is_multiple_of(2) => 28,
            Texture::Striped => -28,
            Texture::Checked if (x / period + y / period).is_multiple_of(2) => 24,
            Texture::Checked => -24,
            Texture::Speckled => rng.gen_range(-22..=22),
        };
        Rgb(base.map(|c| (c as i32 + delta).clamp(0, 255) as u8))
    });
    for object in &scene.objects {
        draw(&mut image, object, rng);
    }
    image
}

fn draw(image: &mut RgbImage, object: &Object, rng: &mut ChaCha8Rng) {
    const SUB: u32 = 4;
    let size = image.width();
    let cell = size as f32 / 3.0;
    let (col, row) = object.position.cell();
    let wobble = cell * 0.08;
    let cx = (col as f32 + 0.5) * cell + rng.gen_range(-wobble..=wobble);
    let cy = (row as f32 + 0.5) * cell + rng.gen_range(-wobble..=wobble);
    let radius = cell
        * match object.size {
            Size::Large => 0.46,
            Size::Small => 0.28,
        };
    let (sin, cos) = rng.gen_range(-0.26f32..=0.26).sin_cos();
    let colour = jitter(object.colour.rgb(), 12, rng);
    let lo = |c: f32| (c - radius * 1.05).floor().max(0.0) as u32;
    let hi = |c: f32| ((c + radius * 1.05).ceil() as u32).min(size);
    for y in lo(cy)..hi(cy) {
        for x in lo(cx)..hi(cx) {
            let mut covered = 0;
            for s in 0..SUB * SUB {
                let sx = x as f32 + ((s % SUB) as f32 + 0.5) / SUB as f32;
                let sy = y as f32 + ((s / SUB) as f32 + 0.5) / SUB as f32;
                let (dx, dy) = ((sx - cx) / radius, (sy - cy) / radius);
                if inside(object.shape, cos * dx + sin * dy, -sin * dx + cos * dy) {
                    covered += 1;
                }
            }
            if covered > 0 {
                let alpha = covered as f32 / (SUB * SUB) as f32;
                let pixel = image.get_pixel_mut(x, y);
                for (p, c) in pixel.0.iter_mut().zip(colour) {
                    *p = (*p as f32 * (1.0 - alpha) + c as f32 * alpha).round() as u8;
                }
            }
        }
    }
}

/// Whether (u, v) lies in `shape` drawn in the unit disk; v points down, as in the image.
fn inside(shape: Shape, u: f32, v: f32) -> bool {
    let r2 = u * u + v * v;
    match shape {
        Shape::Circle => r2 <= 1.0,
        Shape::Square => u.abs() <= 0.78 && v.abs() <= 0.78,
        Shape::Triangle => v <= 0.75 && u.abs() <= 0.95 * (v + 0.95) / 1.7,
        Shape::Star => in_polygon(star(), u, v),
        Shape::Ring => (0.3..=1.0).contains(&r2),
        Shape::Cross => (u.abs() <= 0.3 && v.abs() <= 0.95) || (v.abs() <= 0.3 && u.abs() <= 0.95),
        Shape::Diamond => u.abs() / 0.75 + v.abs() <= 1.0,
        Shape::Heart => {
            // (x² + y² − 1)³ ≤ x²y³, scaled from its box [−1.14, 1.14] × [−1, 1.24] to the disk.
            let (x, y) = (u * 1.14, -v * 1.12 + 0.12);
            (x * x + y * y - 1.0).powi(3) <= x * x * y.powi(3)
        }
        Shape::Hexagon => v.abs() <= 0.866 && u.abs() + 0.577 * v.abs() <= 1.0,
        Shape::Crescent => r2 <= 1.0 && (u - 0.4).powi(2) + (v + 0.2).powi(2) > 0.64,
    }
}

/// A five-pointed star, point up: ten vertices alternating radius 1 and 0.42.
fn star() -> &'static [(f32, f32)] {
    static STAR: OnceLock<Vec<(f32, f32)>> = OnceLock::new();
    STAR.get_or_init(|| {
        (0..10)
            .map(|k| {
                let angle = -std::f32::consts::FRAC_PI_2 + k as f32 * std::f32::consts::PI / 5.0;
                let r = if k % 2 == 0 { 1.0 } else { 0.42 };
                (r * angle.cos(), r * angle.sin())
            })
            .collect()
    })
}

/// Even-odd rule.
fn in_polygon(points: &[(f32, f32)], x: f32, y: f32) -> bool {
    let mut inside = false;
    let mut j = points.len() - 1;
    for (i, &(xi, yi)) in points.iter().enumerate() {
        let (xj, yj) = points[j];
        if (yi > y) != (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi {
            inside = !inside;
        }
        j = i;
    }
    inside
}

fn jitter(rgb: [u8; 3], amount: i32, rng: &mut ChaCha8Rng) -> [u8; 3] {
    rgb.map(|c| (c as i32 + rng.gen_range(-amount..=amount)).clamp(0, 255) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each shape covers a distinct set of points of a 41×41 grid on the unit square, so the
    /// classes are tellable apart in principle.
    #[test]
    fn shapes_are_distinct_and_fill_a_fair_part_of_the_disk() {
        let masks: Vec<Vec<bool>> = Shape::ALL
            .iter()
            .map(|&s| {
                (0..41 * 41)
                    .map(|i| {
                        inside(
                            s,
                            (i % 41) as f32 / 20.0 - 1.0,
                            (i / 41) as f32 / 20.0 - 1.0,
                        )
                    })
                    .collect()
            })
            .collect();
        for (a, mask) in masks.iter().enumerate() {
            let fill = mask.iter().filter(|&&b| b).count() as f32 / (41.0 * 41.0);
            assert!(
                (0.15..0.8).contains(&fill),
                "{:?} fills {fill}",
                Shape::ALL[a]
            );
            for (b, other) in masks.iter().enumerate().skip(a + 1) {
                let differ = mask.iter().zip(other).filter(|(x, y)| x != y).count();
                assert!(
                    differ > 60,
                    "{:?} vs {:?}: {differ}",
                    Shape::ALL[a],
                    Shape::ALL[b]
                );
            }
        }
    }
}
