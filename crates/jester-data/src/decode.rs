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
    /// Captions longer than this (raw bytes, before trimming) are skipped as `caption-too-long`
    /// (default 16 KiB). Web alt-text is a few hundred bytes and a text tower reads only its first
    /// T tokens; a multi-megabyte "caption" is a scraped page or spam that only costs time.
    /// Left out of a serialised config at its default, so that configs (and the experiment keys
    /// hashed from them) written before it existed stay the same.
    #[serde(skip_serializing_if = "is_default_max_caption_bytes")]
    pub max_caption_bytes: usize,
    /// `.json` members larger than this are skipped as `json-too-large` before they are parsed
    /// (default 1 MiB): a sample's metadata is a few hundred bytes, and parsing a 120 MB one takes
    /// ten times its size in memory. Left out of a serialised config at its default.
    #[serde(skip_serializing_if = "is_default_max_json_bytes")]
    pub max_json_bytes: usize,
    /// The shorter side the transform needs (its [`source_side`]): SVGs are drawn at most this
    /// large, however large they declare themselves, and JPEGs at least four times as large are
    /// decoded at the smallest DCT scale (¼ or ⅛: a fraction of the IDCT work and of the memory)
    /// that keeps their shorter side at least this long; the transform then resamples as usual.
    /// Set from the preprocessing in code, not a config.
    ///
    /// [`source_side`]: crate::transform::Preprocess::source_side
    #[serde(skip)]
    pub target_side: Option<u32>,
}

const DEFAULT_MAX_CAPTION_BYTES: usize = 16 << 10;
const DEFAULT_MAX_JSON_BYTES: usize = 1 << 20;

fn is_default_max_json_bytes(n: &usize) -> bool {
    *n == DEFAULT_MAX_JSON_BYTES
}

fn is_default_max_caption_bytes(n: &usize) -> bool {
    *n == DEFAULT_MAX_CAPTION_BYTES
}

impl Default for DecodeOptions {
    fn default() -> Self {
        Self {
            max_pixels: 8192 * 8192,
            caption_field: "caption".into(),
            max_caption_bytes: DEFAULT_MAX_CAPTION_BYTES,
            max_json_bytes: DEFAULT_MAX_JSON_BYTES,
            target_side: None,
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

/// The caption of a raw sample: its `.txt` member, else the caption field of its `.json`. Its
/// length is checked first: nothing else is done with a caption over the limit.
pub fn caption(raw: &RawSample, options: &DecodeOptions) -> Result<String, SkipReason> {
    let checked = |len: usize| {
        if len > options.max_caption_bytes {
            Err(SkipReason::CaptionTooLong)
        } else {
            Ok(())
        }
    };
    let trimmed = |text: &str| match text.trim() {
        "" => Err(SkipReason::EmptyCaption),
        text => Ok(text.to_owned()),
    };
    if let Some(bytes) = raw.member("txt") {
        checked(bytes.len())?;
        trimmed(std::str::from_utf8(bytes).map_err(|_| SkipReason::NonUtf8Caption)?)
    } else if let Some(meta) = metadata(raw, options)? {
        let text = meta
            .get(&options.caption_field)
            .and_then(|c| c.as_str())
            .ok_or(SkipReason::NoCaption)?;
        checked(text.len())?;
        trimmed(text)
    } else {
        Err(SkipReason::NoCaption)
    }
}

/// The sample's `.json` member parsed, if it has one; refused unparsed over the size limit.
fn metadata(
    raw: &RawSample,
    options: &DecodeOptions,
) -> Result<Option<serde_json::Value>, SkipReason> {
    let Some(bytes) = raw.member("json") else {
        return Ok(None);
    };
    if bytes.len() > options.max_json_bytes {
        return Err(SkipReason::JsonTooLarge);
    }
    serde_json::from_slice(bytes)
        .map(Some)
        .map_err(|_| SkipReason::BadJson)
}

/// Decodes image and caption (and keeps `.json` and `.npy`), or says why the sample is skipped.
pub fn decode(raw: &RawSample, options: &DecodeOptions) -> Result<DecodedSample, SkipReason> {
    let caption = caption(raw, options)?;
    let image = decode_image(raw, options)?;
    let meta = metadata(raw, options)?;
    Ok(DecodedSample {
        key: raw.key.clone(),
        image,
        caption,
        meta,
        npy: raw.member("npy").map(<[u8]>::to_vec),
    })
}

/// A JPEG decoded at the smallest DCT scale (1/8, 1/4) whose shorter side is still ≥ `side`
/// (jpeg-decoder's `scale`: the IDCT then computes only the low frequencies of each block). `None`
/// — decode in full with the image crate's faster decoder — when the scale would be ½ or 1 (shorter
/// side under 4 × `side`: measured, jpeg-decoder at ½ scale is slower than zune-jpeg at full size,
/// BENCHMARKS.md "Data loader") or for what the scaled path does not cover (16-bit or CMYK JPEGs,
/// sides over 65,535).
fn decode_jpeg_scaled(
    bytes: &[u8],
    side: u32,
    max_pixels: u64,
) -> Result<Option<RgbImage>, SkipReason> {
    use jpeg_decoder::{Decoder, PixelFormat};
    // Anything this decoder cannot read (a PNG named .jpg, what only zune-jpeg tolerates) goes to
    // the full decoder, which sniffs the format and decides whether to skip.
    let mut decoder = Decoder::new(Cursor::new(bytes));
    if decoder.read_info().is_err() {
        return Ok(None);
    }
    let Some(info) = decoder.info() else {
        return Ok(None);
    };
    let (width, height) = (u32::from(info.width), u32::from(info.height));
    if u64::from(width) * u64::from(height) > max_pixels {
        return Err(SkipReason::ImageTooLarge);
    }
    let short = width.min(height);
    let side = side.max(1);
    // Lossless JPEGs are decoded at full size whatever the scale asks: full decoder.
    if short < 4 * side
        || !matches!(info.pixel_format, PixelFormat::RGB24 | PixelFormat::L8)
        || info.coding_process == jpeg_decoder::CodingProcess::Lossless
    {
        return Ok(None);
    }
    // Each side scaled as the shorter one is: the decoder picks the smallest scale at least this.
    let want = |long: u32| (u64::from(long) * u64::from(side)).div_ceil(u64::from(short));
    let (Ok(w), Ok(h)) = (u16::try_from(want(width)), u16::try_from(want(height))) else {
        return Ok(None);
    };
    if decoder.scale(w, h).is_err() {
        return Ok(None);
    }
    let Ok(pixels) = decoder.decode() else {
        return Ok(None);
    };
    let Some(info) = decoder.info() else {
        return Ok(None);
    };
    let (w, h) = (u32::from(info.width), u32::from(info.height));
    let channels = if info.pixel_format == PixelFormat::RGB24 {
        3
    } else {
        1
    };
    if pixels.len() != w as usize * h as usize * channels {
        return Ok(None);
    }
    let rgb = match info.pixel_format {
        PixelFormat::RGB24 => pixels,
        _ => pixels.iter().flat_map(|&v| [v, v, v]).collect(),
    };
    Ok(RgbImage::from_raw(w, h, rgb))
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
        return crate::svg::rasterise(bytes, options.target_side, options.max_pixels);
    }
    if let (Some(side), "jpg" | "jpeg") = (options.target_side, extension) {
        if let Some(image) = decode_jpeg_scaled(bytes, side, options.max_pixels)? {
            return Ok(image);
        }
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
