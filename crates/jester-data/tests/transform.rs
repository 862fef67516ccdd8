//! `Preprocess`: `[3, R, R]` outputs, exact normalisation, where the crops land, determinism.
use image::{DynamicImage, GrayImage, Luma, Rgb, RgbImage, Rgba, RgbaImage};
use jester_data::transform::{Preprocess, CLIP_MEAN, CLIP_STD};
use jester_data::Error;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

fn eval(resolution: u32) -> Preprocess {
    Preprocess {
        resolution,
        ..Preprocess::default()
    }
}

fn train(resolution: u32) -> Preprocess {
    Preprocess {
        train: true,
        ..eval(resolution)
    }
}

fn noise(width: u32, height: u32, seed: u64) -> DynamicImage {
    let mut rng = rng(seed);
    DynamicImage::ImageRgb8(RgbImage::from_fn(width, height, |_, _| {
        Rgb(rng.gen::<[u8; 3]>())
    }))
}

/// Channel `c` of a CHW `[3, R, R]` output.
fn plane(out: &[f32], c: usize) -> &[f32] {
    let n = out.len() / 3;
    &out[c * n..(c + 1) * n]
}

#[test]
fn a_constant_colour_normalises_to_exact_constants() {
    let colour = [255u8, 0, 51];
    let image = DynamicImage::ImageRgb8(RgbImage::from_pixel(37, 23, Rgb(colour)));
    // Default (SigLIP) statistics: (x / 255 - 0.5) / 0.5 = 1, -1, -0.6.
    for config in [eval(16), train(16)] {
        let out = config.apply(&image, &mut rng(0)).unwrap();
        assert_eq!(out.len(), 3 * 16 * 16);
        for (c, expected) in [1.0f32, -1.0, -0.6].into_iter().enumerate() {
            for &x in plane(&out, c) {
                assert!(
                    (x - expected).abs() < 1e-6,
                    "channel {c}: {x} vs {expected}"
                );
            }
        }
    }
    // CLIP's: torchvision's ToTensor + Normalize, computed in f64.
    let out = Preprocess {
        resolution: 8,
        ..Preprocess::clip()
    }
    .apply(&image, &mut rng(0))
    .unwrap();
    for c in 0..3 {
        let expected =
            (f64::from(colour[c]) / 255.0 - f64::from(CLIP_MEAN[c])) / f64::from(CLIP_STD[c]);
        for &x in plane(&out, c) {
            assert!((f64::from(x) - expected).abs() < 1e-5, "{x} vs {expected}");
        }
    }
}

#[test]
fn outputs_are_3_r_r_within_the_normalised_range_for_any_input() {
    let images = [
        noise(1, 1, 0),
        noise(640, 480, 1),
        noise(7, 300, 2),
        DynamicImage::ImageLuma8(GrayImage::from_fn(50, 40, |x, y| Luma([(x * y) as u8]))),
        DynamicImage::ImageRgba8(RgbaImage::from_pixel(20, 30, Rgba([10, 20, 30, 0]))),
        DynamicImage::ImageRgb16(image::ImageBuffer::from_pixel(
            33,
            17,
            Rgb([65535u16, 0, 0]),
        )),
    ];
    for config in [eval(24), train(24), Preprocess::clip()] {
        let r = config.resolution as usize;
        assert_eq!(config.output_shape(), [3, r, r]);
        for image in &images {
            let out = config.apply(image, &mut rng(3)).unwrap();
            assert_eq!(out.len(), 3 * r * r);
            for c in 0..3 {
                let (lo, hi) = (
                    -config.mean[c] / config.std[c],
                    (1.0 - config.mean[c]) / config.std[c],
                );
                assert!(plane(&out, c)
                    .iter()
                    .all(|&x| x >= lo - 1e-6 && x <= hi + 1e-6));
            }
        }
    }
}

#[test]
fn greyscale_becomes_three_equal_channels() {
    let grey =
        DynamicImage::ImageLuma8(GrayImage::from_fn(40, 30, |x, y| Luma([(x * 6 + y) as u8])));
    for config in [eval(16), train(16)] {
        let out = config.apply(&grey, &mut rng(1)).unwrap();
        assert_eq!(plane(&out, 0), plane(&out, 1));
        assert_eq!(plane(&out, 0), plane(&out, 2));
    }
}

/// 400×100 → R = 100 needs no resampling, so the centre crop is exactly columns 150..250.
#[test]
fn centre_crop_takes_the_centre_exactly() {
    let image = DynamicImage::ImageRgb8(RgbImage::from_fn(400, 100, |x, _| match x {
        0..150 => Rgb([255, 0, 0]),
        150..250 => Rgb([0, 255, 0]),
        _ => Rgb([0, 0, 255]),
    }));
    let out = eval(100).apply(&image, &mut rng(0)).unwrap();
    assert!(plane(&out, 0).iter().all(|&x| x == -1.0));
    assert!(plane(&out, 1).iter().all(|&x| x == 1.0));
    assert!(plane(&out, 2).iter().all(|&x| x == -1.0));
}

/// Wide and tall images whose halves differ: after the shorter side is resized to R and the
/// centre kept, each half of the output is its own colour and the boundary sits in the middle.
#[test]
fn shorter_side_resize_then_centre_crop_of_non_square_images() {
    let r = 30;
    let halves = |width, height, wide: bool| {
        DynamicImage::ImageRgb8(RgbImage::from_fn(width, height, |x, y| {
            let first = if wide { x < width / 2 } else { y < height / 2 };
            Rgb(if first { [0; 3] } else { [255; 3] })
        }))
    };
    for (width, height, wide) in [(240, 60, true), (60, 120, false), (90, 45, true)] {
        let out = eval(r)
            .apply(&halves(width, height, wide), &mut rng(0))
            .unwrap();
        let red = plane(&out, 0);
        let at = |x: u32, y: u32| red[(y * r + x) as usize];
        for i in 0..r {
            for j in 0..r {
                let (along, across) = if wide { (i, j) } else { (j, i) };
                let (x, y) = if wide {
                    (along, across)
                } else {
                    (across, along)
                };
                // Two pixels either side of the boundary may mix; the rest are pure.
                if along < r / 2 - 2 {
                    assert_eq!(at(x, y), -1.0, "{width}x{height} at ({x}, {y})");
                } else if along >= r / 2 + 2 {
                    assert_eq!(at(x, y), 1.0, "{width}x{height} at ({x}, {y})");
                }
            }
        }
        // Symmetric about the centre: the mean is 0.
        let mean = red.iter().sum::<f32>() / red.len() as f32;
        assert!(mean.abs() < 1e-3, "{width}x{height}: mean {mean}");
    }
}

/// With the crop pinned to the whole (square, R×R) image, train outputs are the eval output or
/// its exact mirror, and both happen.
#[test]
fn flip_mirrors_left_and_right() {
    let r = 20u32;
    let image = noise(r, r, 7);
    let pinned = Preprocess {
        scale: [1.0, 1.0],
        ratio: [1.0, 1.0],
        flip: true,
        ..train(r)
    };
    let plain = eval(r).apply(&image, &mut rng(0)).unwrap();
    let mirrored: Vec<f32> = (0..3 * r * r)
        .map(|i| {
            let (row, x) = (i / r, i % r);
            plain[(row * r + (r - 1 - x)) as usize]
        })
        .collect();
    assert_ne!(plain, mirrored);
    let (mut flips, mut keeps) = (0, 0);
    for seed in 0..40 {
        let out = pinned.apply(&image, &mut rng(seed)).unwrap();
        if out == mirrored {
            flips += 1;
        } else {
            assert_eq!(out, plain, "seed {seed}");
            keeps += 1;
        }
    }
    // Binomial(40, ½): each count is in [8, 32] except with probability < 1e-4.
    assert!((8..=32).contains(&flips), "{flips} flips, {keeps} kept");

    let no_flip = Preprocess {
        flip: false,
        ..pinned
    };
    for seed in 0..10 {
        assert_eq!(no_flip.apply(&image, &mut rng(seed)).unwrap(), plain);
    }
}

#[test]
fn same_seed_same_output_other_seeds_other_crops() {
    let image = noise(120, 90, 11);
    // Scales well below 1 so every draw fits: with the default (0.9, 1.0) a 4:3 image often
    // falls back to the whole image (torchvision's rule), the same for any seed.
    let config = Preprocess {
        flip: false,
        scale: [0.4, 0.6],
        ..train(32)
    };
    let first = config.apply(&image, &mut rng(5)).unwrap();
    assert_eq!(first, config.apply(&image, &mut rng(5)).unwrap());
    let others: Vec<Vec<f32>> = (0..8)
        .map(|seed| config.apply(&image, &mut rng(100 + seed)).unwrap())
        .collect();
    assert!(others.iter().all(|o| *o != first));
    // The default varies too, if not on every seed.
    let default = train(32);
    let outputs: Vec<Vec<f32>> = (0..8)
        .map(|seed| default.apply(&image, &mut rng(seed)).unwrap())
        .collect();
    assert!(outputs.iter().any(|o| *o != outputs[0]));
    // The eval path ignores the RNG.
    assert_eq!(
        eval(32).apply(&image, &mut rng(1)).unwrap(),
        eval(32).apply(&image, &mut rng(2)).unwrap()
    );
}

#[test]
fn empty_images_and_bad_configs_are_errors() {
    let empty = DynamicImage::ImageRgb8(RgbImage::new(0, 5));
    let err = eval(8).apply(&empty, &mut rng(0)).unwrap_err();
    assert!(
        matches!(
            err,
            Error::EmptyImage {
                width: 0,
                height: 5
            }
        ),
        "{err}"
    );

    let image = noise(4, 4, 0);
    for bad in [
        eval(0),
        Preprocess {
            std: [0.5, 0.0, 0.5],
            ..eval(8)
        },
        Preprocess {
            mean: [f32::NAN, 0.0, 0.0],
            ..eval(8)
        },
        Preprocess {
            scale: [0.0, 1.0],
            ..train(8)
        },
        Preprocess {
            scale: [0.9, 0.8],
            ..train(8)
        },
        Preprocess {
            scale: [0.9, 1.1],
            ..train(8)
        },
        Preprocess {
            ratio: [1.5, 1.0],
            ..train(8)
        },
    ] {
        assert!(
            matches!(bad.validate(), Err(Error::Config { .. })),
            "{bad:?}"
        );
        assert!(bad.apply(&image, &mut rng(0)).is_err(), "{bad:?}");
    }
    Preprocess::default().validate().unwrap();
    Preprocess::clip().validate().unwrap();
}

#[test]
fn configs_read_from_json_with_defaults_and_refuse_unknown_fields() {
    let config: Preprocess = serde_json::from_str(r#"{"resolution": 64, "train": true}"#).unwrap();
    assert_eq!(
        config,
        Preprocess {
            resolution: 64,
            train: true,
            ..Preprocess::default()
        }
    );
    assert!(serde_json::from_str::<Preprocess>(r#"{"resolutoin": 64}"#).is_err());
}
