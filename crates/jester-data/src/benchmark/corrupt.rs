//! The members a noise kind changes, the same for every generator (docs/DATA.md, "The raw pool mimics
//! web noise"): file-name-like captions, lightly perturbed captions, destroyed images and
//! near-copies of images.
use image::RgbImage;
use rand::seq::SliceRandom;
use rand::Rng;
use serde::Serialize;

/// A caption that says nothing about the image, in the forms web alt-text takes: "image",
/// "photo 1234", "untitled", "IMG_0042.jpg", "DSC00123", "DSC_0042.JPG", "untitled-12",
/// "123456.png", "screenshot 7".
pub(crate) fn uninformative_caption(rng: &mut impl Rng) -> String {
    const WORDS: [&str; 7] = [
        "image",
        "photo",
        "picture",
        "untitled",
        "img",
        "no title",
        "thumbnail",
    ];
    match rng.gen_range(0..9) {
        0 => (*WORDS.choose(rng).expect("non-empty")).to_owned(),
        1 => format!("photo {}", rng.gen_range(1..10_000)),
        2 => format!("image {}", rng.gen_range(1..10_000)),
        3 => format!("IMG_{:04}.jpg", rng.gen_range(0..10_000)),
        4 => format!("DSC{:05}", rng.gen_range(0..100_000)),
        5 => format!("DSC_{:04}.JPG", rng.gen_range(0..10_000)),
        6 => format!("untitled-{}", rng.gen_range(1..100)),
        7 => format!("{}.png", rng.gen_range(100_000..1_000_000)),
        _ => format!("screenshot {}", rng.gen_range(1..100)),
    }
}

/// A near-duplicate's caption when it is not copied verbatim: capitalised with a full stop, "and"
/// written "&", or a web suffix such as " (2)". Always differs from `caption`.
pub(crate) fn perturb_caption(caption: &str, rng: &mut impl Rng) -> String {
    const SUFFIXES: [&str; 5] = [" (2)", " - copy", " | stock image", " hd", " #1"];
    let perturbed = match rng.gen_range(0..3) {
        0 => {
            let mut chars = caption.chars();
            let first = chars.next().map(|c| c.to_uppercase().collect::<String>());
            format!("{}{}.", first.unwrap_or_default(), chars.as_str())
        }
        1 => caption.replace(" and ", " & "),
        _ => format!("{caption}{}", SUFFIXES.choose(rng).expect("non-empty")),
    };
    if perturbed == caption {
        format!("{caption}{}", SUFFIXES[0])
    } else {
        perturbed
    }
}

/// How an image was destroyed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Corruption {
    /// 90% uniform noise over 10% of the image.
    Noise,
    /// One flat colour.
    Blank,
    /// A flat colour over a 3% ghost of the image, with ±3 noise.
    NearBlank,
}

/// A destroyed copy of `image` (same size), one of [`Corruption`]'s forms with equal odds.
pub(crate) fn corrupt_image(image: &RgbImage, rng: &mut impl Rng) -> (RgbImage, Corruption) {
    let mut out = image.clone();
    let flat: [f32; 3] = std::array::from_fn(|_| rng.gen_range(0.0..256.0));
    let corruption = match rng.gen_range(0..3) {
        0 => Corruption::Noise,
        1 => Corruption::Blank,
        _ => Corruption::NearBlank,
    };
    for pixel in out.pixels_mut() {
        for (c, value) in pixel.0.iter_mut().enumerate() {
            let x = *value as f32;
            *value = match corruption {
                Corruption::Noise => 0.1 * x + 0.9 * rng.gen_range(0.0..256.0),
                Corruption::Blank => flat[c],
                Corruption::NearBlank => 0.97 * flat[c] + 0.03 * x + rng.gen_range(-3.0..3.0),
            }
            .clamp(0.0, 255.0) as u8;
        }
    }
    (out, corruption)
}

/// A near-copy of `image`: shifted by (dx, dy) pixels (|dx|, |dy| ≤ 2, not both 0; edges
/// repeated) with ±6 noise per channel, as a re-encoded or re-cropped web copy. Returns the shift.
pub(crate) fn near_copy(image: &RgbImage, rng: &mut impl Rng) -> (RgbImage, (i32, i32)) {
    let shift = loop {
        let s = (rng.gen_range(-2..=2), rng.gen_range(-2..=2));
        if s != (0, 0) {
            break s;
        }
    };
    let (w, h) = image.dimensions();
    let out = RgbImage::from_fn(w, h, |x, y| {
        let sx = (x as i32 - shift.0).clamp(0, w as i32 - 1) as u32;
        let sy = (y as i32 - shift.1).clamp(0, h as i32 - 1) as u32;
        let mut pixel = *image.get_pixel(sx, sy);
        for value in pixel.0.iter_mut() {
            *value = (*value as i32 + rng.gen_range(-6..=6)).clamp(0, 255) as u8;
        }
        pixel
    });
    (out, shift)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn perturbed_captions_always_differ() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for caption in ["a red star", "A red star.", "", "a star and a ring"] {
            for _ in 0..20 {
                assert_ne!(perturb_caption(caption, &mut rng), caption);
            }
        }
    }

    #[test]
    fn near_copies_are_the_shifted_image_up_to_small_noise() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let image = RgbImage::from_fn(16, 16, |x, y| {
            image::Rgb([(x * 16) as u8, (y * 16) as u8, 7])
        });
        let (copy, (dx, dy)) = near_copy(&image, &mut rng);
        for (x, y, pixel) in copy.enumerate_pixels() {
            let sx = (x as i32 - dx).clamp(0, 15) as u32;
            let sy = (y as i32 - dy).clamp(0, 15) as u32;
            for (a, b) in pixel.0.iter().zip(image.get_pixel(sx, sy).0) {
                assert!((*a as i32 - b as i32).abs() <= 6);
            }
        }
    }
}
