//! Decoded image to the image tower's input: CHW f32 `[3, R, R]`, normalised per channel.
//!
//! - eval: resize the shorter side to R, then take the centre R×R (as CLIP and open_clip);
//! - train: a random resized crop of the image scaled to R×R, then (optionally) a horizontal
//!   flip with probability ½ (torchvision's `RandomResizedCrop` and `RandomHorizontalFlip`).
//!
//! Resampling is bilinear, the method of big_vision's SigLIP input pipeline, with antialiasing
//! when shrinking (`image`'s `Triangle` filter widens with the scale factor, as PIL's does for
//! torchvision and open_clip) and in 8 bits as PIL resamples. Bicubic (CLIP's) would overshoot
//! and need clamping, for little gain at these sizes.
use std::borrow::Cow;

use image::imageops;
use image::{DynamicImage, RgbImage};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// CLIP's (and open_clip's OpenAI models') per-channel mean of RGB in [0, 1], as published:
/// (0.48145466, 0.4578275, 0.40821073).
pub const CLIP_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
/// CLIP's per-channel standard deviation, published as (0.26862954, 0.26130258, 0.27577711);
/// written here as the nearest f32s.
pub const CLIP_STD: [f32; 3] = [0.268_629_54, 0.261_302_6, 0.275_777_1];

/// How images become tensors; every field has a default (SigLIP's input at 224 px).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Preprocess {
    /// R: the output is `[3, R, R]`.
    pub resolution: u32,
    /// Per-channel (RGB) mean and standard deviation of pixel values in [0, 1]; the output is
    /// `(x - mean) / std`. The default 0.5 maps [0, 1] to [-1, 1], what SigLIP's towers (and so
    /// JEST's) are trained on; [`Preprocess::clip`] has CLIP's statistics.
    pub mean: [f32; 3],
    pub std: [f32; 3],
    /// Random resized crop and flip (training) instead of resize and centre crop (evaluation).
    pub train: bool,
    /// Training crop: area as a fraction of the image, drawn uniformly from this range. Default
    /// (0.9, 1.0), open_clip's: captions describe the whole image, so a crop must keep most of it
    /// (torchvision's (0.08, 1.0) is for labels that survive a crop to one object).
    pub scale: [f32; 2],
    /// Training crop: aspect ratio (width / height), log-uniform in this range (torchvision's
    /// (3/4, 4/3)); the crop is then stretched to R×R.
    pub ratio: [f32; 2],
    /// Training: mirror left–right with probability ½. Off by default: the benchmarks' captions say
    /// "left" and "right", which a flip would make wrong (open_clip does not flip either).
    pub flip: bool,
}

impl Default for Preprocess {
    fn default() -> Self {
        Self {
            resolution: 224,
            mean: [0.5; 3],
            std: [0.5; 3],
            train: false,
            scale: [0.9, 1.0],
            ratio: [3.0 / 4.0, 4.0 / 3.0],
            flip: false,
        }
    }
}

impl Preprocess {
    /// CLIP's normalisation at 224 px, for towers initialised from OpenAI CLIP weights.
    pub fn clip() -> Self {
        Self {
            mean: CLIP_MEAN,
            std: CLIP_STD,
            ..Self::default()
        }
    }

    pub fn validate(&self) -> Result<()> {
        let bad = |why: String| {
            Err(Error::Config {
                what: "image preprocessing",
                why,
            })
        };
        if self.resolution == 0 {
            return bad("resolution must be at least 1".into());
        }
        if !self.mean.iter().all(|m| m.is_finite()) {
            return bad(format!("mean {:?} must be finite", self.mean));
        }
        if !self.std.iter().all(|s| s.is_finite() && *s > 0.0) {
            return bad(format!("std {:?} must be finite and > 0", self.std));
        }
        let [lo, hi] = self.scale;
        if !(0.0 < lo && lo <= hi && hi <= 1.0) {
            return bad(format!("scale [{lo}, {hi}] must satisfy 0 < lo <= hi <= 1"));
        }
        let [lo, hi] = self.ratio;
        if !(0.0 < lo && lo <= hi && hi.is_finite()) {
            return bad(format!(
                "ratio [{lo}, {hi}] must satisfy 0 < lo <= hi < inf"
            ));
        }
        Ok(())
    }

    /// The shorter side a source image needs for this transform to only ever shrink it: R for
    /// evaluation (the shorter side is resized to R); for training, R over the smallest side a
    /// random crop can have relative to the image's shorter side, √(scale₀ · min(ratio₀, 1/ratio₁))
    /// (273 at 224 px with the defaults). Large vector images are drawn at this size (the decode
    /// options' `target_side`).
    pub fn source_side(&self) -> u32 {
        if !self.train {
            return self.resolution;
        }
        let narrowest = self.ratio[0].min(1.0 / self.ratio[1]).min(1.0);
        let smallest = f64::from(self.scale[0] * narrowest).sqrt();
        (f64::from(self.resolution) / smallest)
            .ceil()
            .min(f64::from(u32::MAX)) as u32
    }

    /// `[3, R, R]`.
    pub fn output_shape(&self) -> [usize; 3] {
        let r = self.resolution as usize;
        [3, r, r]
    }

    /// One image as row-major CHW f32 `[3, R, R]`, normalised: [`Self::resample`] then
    /// [`Self::normalise`].
    pub fn apply(&self, image: &DynamicImage, rng: &mut impl Rng) -> Result<Vec<f32>> {
        Ok(self.normalise(&self.resample(image, rng)?))
    }

    /// The geometric half of the transform: the image cropped and resized to R×R, still 8-bit
    /// RGB (what the loader hands the trainer, which normalises on the device: 4× less to copy
    /// and prefetch than f32). Greyscale becomes three equal channels; alpha is dropped (not
    /// composited), as PIL's `convert("RGB")` does. The eval path draws nothing from `rng`; the
    /// train path is a function of the image and the RNG's state.
    pub fn resample(&self, image: &DynamicImage, rng: &mut impl Rng) -> Result<RgbImage> {
        self.validate()?;
        let (width, height) = (image.width(), image.height());
        if width == 0 || height == 0 {
            return Err(Error::EmptyImage { width, height });
        }
        let rgb = match image.as_rgb8() {
            Some(rgb) => Cow::Borrowed(rgb),
            None => Cow::Owned(image.to_rgb8()),
        };
        let r = self.resolution;
        let out = if self.train {
            let [x, y, w, h] = self.random_crop(width, height, rng);
            let mut out = resize(&rgb, [x, y, w, h], r, r);
            if self.flip && rng.gen_bool(0.5) {
                imageops::flip_horizontal_in_place(&mut out);
            }
            out
        } else {
            let (w, h) = shorter_side_to(width, height, r);
            let resized = resize(&rgb, [0, 0, width, height], w, h);
            imageops::crop_imm(&resized, (w - r) / 2, (h - r) / 2, r, r).to_image()
        };
        Ok(out)
    }

    /// torchvision's `RandomResizedCrop.get_params`: up to ten draws of an area fraction and a
    /// log-uniform aspect ratio, the first that fits placed uniformly; otherwise the largest
    /// centred crop whose ratio is within range. Returns `[x, y, w, h]`.
    fn random_crop(&self, width: u32, height: u32, rng: &mut impl Rng) -> [u32; 4] {
        let area = f64::from(width) * f64::from(height);
        let [s_lo, s_hi] = self.scale.map(f64::from);
        let [log_lo, log_hi] = self.ratio.map(|r| f64::from(r).ln());
        for _ in 0..10 {
            let target = area * rng.gen_range(s_lo..=s_hi);
            let aspect = rng.gen_range(log_lo..=log_hi).exp();
            let w = (target * aspect).sqrt().round() as u32;
            let h = (target / aspect).sqrt().round() as u32;
            if (1..=width).contains(&w) && (1..=height).contains(&h) {
                let x = rng.gen_range(0..=width - w);
                let y = rng.gen_range(0..=height - h);
                return [x, y, w, h];
            }
        }
        let (ratio, [lo, hi]) = (f64::from(width) / f64::from(height), self.ratio);
        let (w, h) = if ratio < f64::from(lo) {
            (width, (f64::from(width) / f64::from(lo)).round() as u32)
        } else if ratio > f64::from(hi) {
            ((f64::from(height) * f64::from(hi)).round() as u32, height)
        } else {
            (width, height)
        };
        let (w, h) = (w.clamp(1, width), h.clamp(1, height));
        [(width - w) / 2, (height - h) / 2, w, h]
    }

    /// The normalised value of every 8-bit level, per channel: `(v / 255 - mean) / std` in f32
    /// (the arithmetic of torchvision's `ToTensor` + `Normalize`). Normalising through this table,
    /// here or on the device, gives the same bits.
    pub fn table(&self) -> [[f32; 256]; 3] {
        std::array::from_fn(|c| {
            std::array::from_fn(|v| (v as f32 / 255.0 - self.mean[c]) / self.std[c])
        })
    }

    /// HWC u8 → CHW f32 through [`Self::table`].
    pub fn normalise(&self, image: &RgbImage) -> Vec<f32> {
        let table = self.table();
        let plane = image.width() as usize * image.height() as usize;
        let mut out = vec![0.0; 3 * plane];
        let (red, rest) = out.split_at_mut(plane);
        let (green, blue) = rest.split_at_mut(plane);
        for (i, pixel) in image.pixels().enumerate() {
            let [r, g, b] = pixel.0;
            red[i] = table[0][usize::from(r)];
            green[i] = table[1][usize::from(g)];
            blue[i] = table[2][usize::from(b)];
        }
        out
    }
}

/// The size that makes the shorter side `r`, the longer side scaled to keep the aspect ratio
/// (rounded down, as torchvision's `Resize(int)`).
fn shorter_side_to(width: u32, height: u32, r: u32) -> (u32, u32) {
    let scaled = |long: u32, short: u32| (u64::from(r) * u64::from(long) / u64::from(short)) as u32;
    if width <= height {
        (r, scaled(height, width))
    } else {
        (scaled(width, height), r)
    }
}

/// The region `[x, y, w, h]` of `image` resampled to `out_w × out_h` with a bilinear (triangle)
/// convolution, antialiased when shrinking — the filter PIL and torchvision use — by
/// fast_image_resize's SIMD kernels (see BENCHMARKS.md: the image crate's generic resize made
/// 224-px training crops resize-bound).
fn resize(image: &RgbImage, [x, y, w, h]: [u32; 4], out_w: u32, out_h: u32) -> RgbImage {
    use fast_image_resize as fr;
    let mut out = RgbImage::new(out_w, out_h);
    let options = fr::ResizeOptions::new()
        .resize_alg(fr::ResizeAlg::Convolution(fr::FilterType::Bilinear))
        .crop(f64::from(x), f64::from(y), f64::from(w), f64::from(h));
    fr::Resizer::new()
        .resize(image, &mut out, &options)
        .expect("RGB8 into RGB8 of a non-empty size cannot fail");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn shorter_side_sizes_round_down_like_torchvision() {
        // int(224 * 640 / 480) = 298; int(224 * 500 / 333) = 336.
        assert_eq!(shorter_side_to(640, 480, 224), (298, 224));
        assert_eq!(shorter_side_to(333, 500, 224), (224, 336));
        assert_eq!(shorter_side_to(50, 50, 224), (224, 224));
        assert_eq!(shorter_side_to(1, 1000, 8), (8, 8000));
    }

    /// On a 1000×1000 image no draw from scale (0.3, 0.6) and ratio (3/4, 4/3) is rejected, so
    /// the area fraction is U(0.3, 0.6), the log aspect U(ln 3/4, ln 4/3) and the position
    /// uniform; means are checked to 4.5 standard errors over 4000 draws.
    #[test]
    fn random_crops_follow_their_distributions() {
        let config = Preprocess {
            train: true,
            scale: [0.3, 0.6],
            ..Preprocess::default()
        };
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let n = 4000;
        let (mut area, mut log_aspect, mut position) = (0.0, 0.0, 0.0);
        for _ in 0..n {
            let [x, y, w, h] = config.random_crop(1000, 1000, &mut rng);
            assert!(x + w <= 1000 && y + h <= 1000 && w > 0 && h > 0);
            let fraction = f64::from(w * h) / 1e6;
            assert!((0.3 - 2e-3..=0.6 + 2e-3).contains(&fraction), "{fraction}");
            let aspect = f64::from(w) / f64::from(h);
            assert!(
                (0.75 - 3e-3..=4.0 / 3.0 + 3e-3).contains(&aspect),
                "{aspect}"
            );
            area += fraction;
            log_aspect += aspect.ln();
            position += f64::from(x) / f64::from(1000 - w);
        }
        let n = f64::from(n);
        let se = |width: f64| 4.5 * width / 12f64.sqrt() / n.sqrt();
        assert!((area / n - 0.45).abs() < se(0.3), "{}", area / n);
        assert!(
            (log_aspect / n).abs() < se((4.0f64 / 3.0 / 0.75).ln()),
            "{}",
            log_aspect / n
        );
        assert!((position / n - 0.5).abs() < se(1.0), "{}", position / n);
    }

    /// An image whose shorter side is `source_side` is never upsampled: every crop is at least R
    /// pixels on each side.
    #[test]
    fn crops_of_a_source_side_image_are_at_least_the_resolution() {
        let eval = Preprocess::default();
        assert_eq!(eval.source_side(), 224);
        let train = Preprocess {
            train: true,
            ..Preprocess::default()
        };
        let side = train.source_side();
        assert_eq!(side, 273);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut smallest = u32::MAX;
        for (w, h) in [(side, side), (side, 2 * side), (3 * side, side)] {
            for _ in 0..2000 {
                let [_, _, cw, ch] = train.random_crop(w, h, &mut rng);
                smallest = smallest.min(cw).min(ch);
            }
        }
        assert!((224..250).contains(&smallest), "{smallest}");
    }

    /// A 100:1 strip fits no draw; the fallback is the centred crop of the widest allowed ratio.
    #[test]
    fn impossible_draws_fall_back_to_a_centred_crop() {
        let config = Preprocess {
            train: true,
            ..Preprocess::default()
        };
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        assert_eq!(config.random_crop(1000, 10, &mut rng), [493, 0, 13, 10]);
        assert_eq!(config.random_crop(10, 1000, &mut rng), [0, 493, 10, 13]);
        assert_eq!(config.random_crop(1, 1, &mut rng), [0, 0, 1, 1]);
    }
}
