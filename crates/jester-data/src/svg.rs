//! SVG members rasterised with resvg, composited on white. An SVG's size is only a scale, so a
//! large one is drawn at the size the transform will resample from rather than its own: clip art
//! declaring widths of thousands of pixels was drawn in full (0.6 s, 1.8 GB peak) only to be
//! shrunk to 224. Small ones keep their own size: drawing 72-unit OpenMoji at 273 px for training
//! crops would be sharper but cut the loader's throughput 4× (BENCHMARKS.md).
use image::RgbImage;
use resvg::{tiny_skia, usvg};

use crate::skip::SkipReason;

/// Draws an SVG at its own size, scaled down (aspect kept) so its shorter side is at most `side`
/// pixels; refused as too large if that still exceeds `max_pixels` (only aspect ratios beyond
/// about 1300:1 at 224 px). Without `side`, scaled down to fit `max_pixels` instead. Text
/// elements are not drawn: that would need system fonts.
pub fn rasterise(bytes: &[u8], side: Option<u32>, max_pixels: u64) -> Result<RgbImage, SkipReason> {
    let tree = usvg::Tree::from_data(bytes, &usvg::Options::default())
        .map_err(|_| SkipReason::UndecodableImage)?;
    let size = tree.size();
    let (w, h) = (f64::from(size.width()), f64::from(size.height()));
    let (pw, ph) = pixel_size(w, h, side, max_pixels)?;
    let mut pixmap = tiny_skia::Pixmap::new(pw, ph).ok_or(SkipReason::ImageTooLarge)?;
    let transform =
        tiny_skia::Transform::from_scale((f64::from(pw) / w) as f32, (f64::from(ph) / h) as f32);
    resvg::render(&tree, transform, &mut pixmap.as_mut());
    // Premultiplied RGBA over white: c + (255 − a).
    let rgb = pixmap.data().chunks_exact(4).flat_map(|p| {
        let white = 255 - p[3];
        [
            p[0].saturating_add(white),
            p[1].saturating_add(white),
            p[2].saturating_add(white),
        ]
    });
    Ok(RgbImage::from_raw(pw, ph, rgb.collect()).expect("w × h × 3 bytes"))
}

/// The pixmap size for a drawing of `w × h` user units (see [`rasterise`]).
fn pixel_size(
    w: f64,
    h: f64,
    side: Option<u32>,
    max_pixels: u64,
) -> Result<(u32, u32), SkipReason> {
    let scale = match side {
        Some(side) => (f64::from(side.max(1)) / w.min(h)).min(1.0),
        None => (max_pixels as f64 / (w * h).max(1.0)).sqrt().min(1.0),
    };
    // `as` saturates, so an absurd scale cannot wrap round to a small size.
    let pixels = |x: f64| ((x * scale).round() as u32).max(1);
    let (pw, ph) = (pixels(w), pixels(h));
    if side.is_some() && u64::from(pw) * u64::from(ph) > max_pixels {
        return Err(SkipReason::ImageTooLarge);
    }
    Ok((pw, ph))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shorter_side_is_drawn_at_most_at_the_requested_size() {
        let cap = 8192 * 8192;
        assert_eq!(
            pixel_size(10_000.0, 10_000.0, Some(224), cap),
            Ok((224, 224))
        );
        assert_eq!(
            pixel_size(10_153.0, 5_000.0, Some(224), cap),
            Ok((455, 224))
        );
        // Small drawings keep their own size, as before.
        assert_eq!(pixel_size(72.0, 72.0, Some(273), cap), Ok((72, 72)));
        assert_eq!(pixel_size(300.0, 10.0, Some(224), cap), Ok((300, 10)));
        assert_eq!(
            pixel_size(1e4, 1e9, Some(224), cap),
            Err(SkipReason::ImageTooLarge)
        );
    }

    #[test]
    fn without_a_side_the_own_size_is_kept_within_the_cap() {
        assert_eq!(pixel_size(72.0, 36.0, None, 1 << 20), Ok((72, 36)));
        assert_eq!(pixel_size(4096.0, 4096.0, None, 1 << 20), Ok((1024, 1024)));
    }
}
