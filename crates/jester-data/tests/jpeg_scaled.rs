//! Large JPEGs are decoded at a DCT scale (¼, ⅛) that keeps the transform's source side, and
//! the scaled decode shows the same picture as the full one.
use image::codecs::jpeg::JpegEncoder;
use image::{GrayImage, ImageEncoder, RgbImage};
use jester_data::decode::{decode_image, DecodeOptions};
use jester_data::{RawSample, SkipReason};

/// A smooth RGB picture (gradients), `width × height`, as JPEG bytes.
fn jpeg(width: u32, height: u32) -> Vec<u8> {
    let image = RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([
            (255 * x / width) as u8,
            (255 * y / height) as u8,
            (128 + 127 * (x + y) / (width + height)) as u8,
        ])
    });
    let mut bytes = Vec::new();
    JpegEncoder::new_with_quality(&mut bytes, 95)
        .write_image(
            image.as_raw(),
            width,
            height,
            image::ExtendedColorType::Rgb8,
        )
        .unwrap();
    bytes
}

fn decoded(bytes: &[u8], target_side: Option<u32>) -> Result<RgbImage, SkipReason> {
    let options = DecodeOptions {
        target_side,
        ..DecodeOptions::default()
    };
    decode_image(&RawSample::new("k").with("jpg", bytes.to_vec()), &options)
}

#[test]
fn the_scale_is_the_smallest_that_keeps_the_target_side() {
    let bytes = jpeg(800, 600);
    assert_eq!(decoded(&bytes, None).unwrap().dimensions(), (800, 600));
    // 600 / 4 = 150 ≥ 140 > 600 / 8.
    assert_eq!(decoded(&bytes, Some(140)).unwrap().dimensions(), (200, 150));
    // 600 / 8 = 75 ≥ 64.
    assert_eq!(decoded(&bytes, Some(64)).unwrap().dimensions(), (100, 75));
    // Under four times the target (a ½ scale, slower than the full decoder): decoded whole,
    // exactly as without a hint.
    assert_eq!(
        decoded(&bytes, Some(151)).unwrap().as_raw(),
        decoded(&bytes, None).unwrap().as_raw()
    );
}

#[test]
fn the_scaled_picture_is_the_full_picture_shrunk() {
    let bytes = jpeg(640, 480);
    let full = decoded(&bytes, None).unwrap();
    let quarter = decoded(&bytes, Some(100)).unwrap();
    assert_eq!(quarter.dimensions(), (160, 120));
    // Each scaled pixel against the mean of the 4 × 4 block it stands for.
    let mut worst = 0.0f64;
    for (x, y, pixel) in quarter.enumerate_pixels() {
        for c in 0..3 {
            let mean: f64 = (0..16)
                .map(|i| f64::from(full.get_pixel(4 * x + i % 4, 4 * y + i / 4).0[c]))
                .sum::<f64>()
                / 16.0;
            worst = worst.max((mean - f64::from(pixel.0[c])).abs());
        }
    }
    assert!(
        worst <= 6.0,
        "largest difference from the block means: {worst}"
    );
}

#[test]
fn greyscale_jpegs_become_three_equal_channels() {
    let grey = GrayImage::from_fn(400, 400, |x, _| image::Luma([(x % 256) as u8]));
    let mut bytes = Vec::new();
    JpegEncoder::new(&mut bytes)
        .write_image(grey.as_raw(), 400, 400, image::ExtendedColorType::L8)
        .unwrap();
    let image = decoded(&bytes, Some(50)).unwrap();
    assert_eq!(image.dimensions(), (50, 50)); // ⅛
    assert!(image.pixels().all(|p| p.0[0] == p.0[1] && p.0[1] == p.0[2]));
}

#[test]
fn corrupt_and_oversized_jpegs_are_skipped_with_their_reason() {
    let mut bytes = jpeg(800, 600);
    bytes.truncate(300);
    assert_eq!(decoded(&bytes, Some(64)), Err(SkipReason::UndecodableImage));
    let options = DecodeOptions {
        target_side: Some(64),
        max_pixels: 1000,
        ..DecodeOptions::default()
    };
    let raw = RawSample::new("k").with("jpg", jpeg(800, 600));
    assert_eq!(decode_image(&raw, &options), Err(SkipReason::ImageTooLarge));
}

#[test]
fn what_the_scaled_decoder_cannot_read_goes_to_the_full_decoder() {
    // A PNG named .jpg: jpeg-decoder refuses it, the image crate sniffs and decodes it.
    let image = RgbImage::from_pixel(400, 400, image::Rgb([10, 200, 30]));
    let mut png = Vec::new();
    image::codecs::png::PngEncoder::new(&mut png)
        .write_image(image.as_raw(), 400, 400, image::ExtendedColorType::Rgb8)
        .unwrap();
    let decoded = decoded(&png, Some(50)).unwrap();
    assert_eq!(decoded.dimensions(), (400, 400));
    assert_eq!(decoded.get_pixel(7, 7).0, [10, 200, 30]);
}
