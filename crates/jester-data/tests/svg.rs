//! Large SVGs are drawn at the size the transform resamples from, not at their declared size.
use jester_data::decode::{decode_image, DecodeOptions};
use jester_data::transform::Preprocess;
use jester_data::{RawSample, SkipReason};

fn svg(width: u32, height: u32) -> RawSample {
    let body = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">
  <rect width="{half}" height="{height}" fill="#ff0000"/>
</svg>"##,
        half = width / 2
    );
    RawSample::new("big").with("svg", body)
}

fn drawn_for(raw: &RawSample, preprocess: &Preprocess) -> Result<(u32, u32), SkipReason> {
    let options = DecodeOptions {
        target_side: Some(preprocess.source_side()),
        ..DecodeOptions::default()
    };
    decode_image(raw, &options).map(|image| image.dimensions())
}

#[test]
fn a_huge_svg_is_drawn_near_the_training_resolution() {
    let eval = Preprocess::default();
    assert_eq!(drawn_for(&svg(10_000, 10_000), &eval), Ok((224, 224)));
    // Aspect ratio kept, so the resize and crop see the geometry the full-size drawing had.
    assert_eq!(drawn_for(&svg(10_000, 5_000), &eval), Ok((448, 224)));
    let train = Preprocess {
        train: true,
        ..Preprocess::default()
    };
    assert_eq!(drawn_for(&svg(10_000, 10_000), &train), Ok((273, 273)));
}

#[test]
fn the_drawing_is_the_svg_scaled() {
    let options = DecodeOptions {
        target_side: Some(100),
        ..DecodeOptions::default()
    };
    let image = decode_image(&svg(10_000, 5_000), &options).unwrap();
    // Left half red, right half white (transparent composited on white).
    assert_eq!(image.get_pixel(50, 50).0, [255, 0, 0]);
    assert_eq!(image.get_pixel(150, 50).0, [255, 255, 255]);
}

#[test]
fn a_drawing_beyond_the_pixel_cap_is_skipped_and_counted_as_too_large() {
    let options = DecodeOptions {
        target_side: Some(224),
        max_pixels: 1 << 20,
        ..DecodeOptions::default()
    };
    // Already under 224 px high, so drawn at its own 100,000 × 100: 10 Mpx, over the 1 Mpx cap.
    let strip = svg(100_000, 100);
    assert_eq!(
        decode_image(&strip, &options).map(|i| i.dimensions()),
        Err(SkipReason::ImageTooLarge)
    );
}

#[test]
fn a_small_svg_keeps_its_own_size() {
    let train = Preprocess {
        train: true,
        ..Preprocess::default()
    };
    assert_eq!(drawn_for(&svg(72, 72), &train), Ok((72, 72)));
}

#[test]
fn without_a_side_an_svg_keeps_its_own_size() {
    let image = decode_image(&svg(300, 200), &DecodeOptions::default()).unwrap();
    assert_eq!(image.dimensions(), (300, 200));
}
