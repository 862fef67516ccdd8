//! Decoding a raw sample into an image and a caption, or the reason to skip it. Image sizes are read
//! from the header and checked before any pixel buffer is allocated, so a 20,000 × 20,000 image
//! costs nothing.
use std::io::Cursor;

use image::{ImageReader, RgbImage};

use crate::sample::RawSample;
use crate::skip::SkipReason;

/// Limits and choices of decoding.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DecodeOptions {
    /// Images with more pixels than this are refused (default 8192 × 8192).
    pub max_pixels: u64,
    /// The `.json` field read as the caption when there is no `.txt` member.
    pub caption_field: String,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        Self {
            max_pixels: 8192 * 8192,
            caption_field: "caption".into(),
        }
    }
}

/// A decoded image-text pair.
#[derive(Clone, Debug)]
pub struct DecodedSample {
    pub key: String,
    /// RGB, 8 bits per channel.
    pub image: RgbImage,
    pub caption: String,
    /// The `.json` member, when present.
    pub meta: Option<serde_json::Value>,
    /// The `.npy` member's bytes, when present (undecoded).
    pub npy: Option<Vec<u8>>,
}

/// The caption of a raw sample: its `.txt` member, else the caption field of its `.json`.
pub fn caption(raw: &RawSample, options: &DecodeOptions) -> Result<String, SkipReason> {
    let text = if let Some(bytes) = raw.member("txt") {
        String::from_utf8(bytes.to_vec()).map_err(|_| SkipReason::NonUtf8Caption)?
    } else if let Some(bytes) = raw.member("json") {
        let meta: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|_| SkipReason::BadJson)?;
        meta.get(&options.caption_field)
            .and_then(|c| c.as_str())
            .ok_or(SkipReason::NoCaption)?
            .to_owned()
    } else {
        return Err(SkipReason::NoCaption);
    };
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(SkipReason::EmptyCaption);
    }
    Ok(trimmed.to_owned())
}

/// Decodes image and caption (and keeps `.json` and `.npy`), or says why the sample is skipped.
pub fn decode(raw: &RawSample, options: &DecodeOptions) -> Result<DecodedSample, SkipReason> {
    let caption = caption(raw, options)?;
    let image = decode_image(raw, options)?;
    let meta = match raw.member("json") {
        Some(bytes) => Some(serde_json::from_slice(bytes).map_err(|_| SkipReason::BadJson)?),
        None => None,
    };
    Ok(DecodedSample {
        key: raw.key.clone(),
        image,
        caption,
        meta,
        npy: raw.member("npy").map(<[u8]>::to_vec),
    })
}

/// The sample's image as RGB, from the first image member present (jpg, jpeg, png, webp, svg).
pub fn decode_image(raw: &RawSample, options: &DecodeOptions) -> Result<RgbImage, SkipReason> {
    let (extension, bytes) = crate::sample::IMAGE_EXTENSIONS
        .iter()
        .find_map(|e| raw.member(e).map(|b| (*e, b)))
        .ok_or(SkipReason::NoImage)?;
    if bytes.is_empty() {
        return Err(SkipReason::EmptyImage);
    }
    if extension == "svg" {
        return rasterise_svg(bytes, options);
    }
    let reader = || {
        ImageReader::new(Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|_| SkipReason::UndecodableImage)
    };
    let (width, height) = reader()?
        .into_dimensions()
        .map_err(|_| SkipReason::UndecodableImage)?;
    if width as u64 * height as u64 > options.max_pixels {
        return Err(SkipReason::ImageTooLarge);
    }
    let mut decoder = reader()?;
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(options.max_pixels * 4 + (64 << 20));
    decoder.limits(limits);
    let image = decoder.decode().map_err(|e| match e {
        image::ImageError::Limits(_) => SkipReason::ImageTooLarge,
        _ => SkipReason::UndecodableImage,
    })?;
    Ok(image.into_rgb8())
}

/// An SVG drawn at its own size (scaled down to fit `max_pixels`), composited on white. Text
/// elements are not drawn: that would need system fonts.
fn rasterise_svg(bytes: &[u8], options: &DecodeOptions) -> Result<RgbImage, SkipReason> {
    use resvg::{tiny_skia, usvg};
    let tree = usvg::Tree::from_data(bytes, &usvg::Options::default())
        .map_err(|_| SkipReason::UndecodableImage)?;
    let size = tree.size();
    let (w, h) = (size.width() as f64, size.height() as f64);
    let scale = (options.max_pixels as f64 / (w * h).max(1.0))
        .sqrt()
        .min(1.0);
    let (pw, ph) = (
        ((w * scale).round() as u32).max(1),
        ((h * scale).round() as u32).max(1),
    );
    let mut pixmap = tiny_skia::Pixmap::new(pw, ph).ok_or(SkipReason::ImageTooLarge)?;
    let transform =
        tiny_skia::Transform::from_scale((pw as f64 / w) as f32, (ph as f64 / h) as f32);
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
