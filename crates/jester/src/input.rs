//! Samples as the trainer sees them: decoded, preprocessed and tokenised on the loader's workers,
//! then stacked into tensors on the model's device.
use std::sync::Arc;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tch::{Device, Kind, Tensor};

use jester_data::decode::{decode, DecodeOptions};
use jester_data::image;
use jester_data::loader::Work;
use jester_data::tokenizer::TextTokenizer;
use jester_data::tools::inspect::fnv1a;
use jester_data::transform::Preprocess;
use jester_data::SkipReason;

use crate::model::BatchTensors;

/// One training example.
#[derive(Clone, Debug)]
pub struct Example {
    pub key: String,
    /// `[3, R, R]` row-major.
    pub image: Vec<f32>,
    /// `[T]` ids.
    pub ids: Vec<i64>,
    /// Position of the caption's last real token.
    pub last: i64,
    /// The benchmark's ground-truth noise kind (`noise` in the sample's `.json`), when present.
    pub noise: Option<String>,
    /// The zero-shot class of a one-object scene (`class` in the `.json`), when present.
    pub class: Option<i64>,
}

/// The loader's work function: decode, preprocess, tokenise. `seed` and the sample key seed the
/// preprocessing's randomness, so a sample is transformed the same way whenever it is read.
pub fn example_work(
    decode_options: DecodeOptions,
    preprocess: Preprocess,
    tokenizer: Arc<TextTokenizer>,
    context_length: usize,
    seed: u64,
) -> Work<Example> {
    // SVGs drawn at the size the transform resamples from, not their own (often thousands of px).
    let decode_options = DecodeOptions {
        svg_side: Some(preprocess.source_side()),
        ..decode_options
    };
    Arc::new(move |raw| {
        let sample = decode(&raw, &decode_options)?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ fnv1a(sample.key.as_bytes()));
        let image = preprocess
            .apply(&image::DynamicImage::ImageRgb8(sample.image), &mut rng)
            .map_err(|_| SkipReason::UndecodableImage)?;
        let (ids, length) = tokenizer
            .encode_with_length(&sample.caption, context_length)
            .map_err(|_| SkipReason::Untokenizable)?;
        let field = |name: &str| sample.meta.as_ref().and_then(|m| m.get(name));
        Ok(Example {
            key: sample.key,
            image,
            ids: ids.into_iter().map(i64::from).collect(),
            last: length.max(1) as i64 - 1,
            noise: field("noise").and_then(|n| n.as_str()).map(str::to_owned),
            class: field("class").and_then(|c| c.as_i64()),
        })
    })
}

/// A loader that reads `share` of `data` once, in file order, making examples for a model trained
/// with `config` (what `embed` and evaluation read; training shuffles instead).
pub fn file_order_loader(
    data: &[String],
    config: &crate::config::TrainConfig,
    tokenizer: &TextTokenizer,
    workers: usize,
    prefetch: usize,
    share: jester_data::Share,
) -> crate::error::Result<jester_data::Loader<Example>> {
    let shards = jester_data::expand_shards(data)?;
    let options = jester_data::LoaderOptions {
        shuffle: false,
        shuffle_buffer: 0,
        workers: workers.max(1),
        prefetch: prefetch.max(1),
        epochs: Some(1),
        seed: 0,
    };
    let work = model_work(config, tokenizer);
    Ok(jester_data::Loader::new_share(
        shards, &options, work, None, share,
    )?)
}

/// [`example_work`] for a model trained with `config`: its decoding options, its resolution, its
/// context length and seed.
pub fn model_work(config: &crate::config::TrainConfig, tokenizer: &TextTokenizer) -> Work<Example> {
    let preprocess = Preprocess {
        resolution: config.model.image.image_size as u32,
        ..Preprocess::default()
    };
    example_work(
        config.data.decode.clone(),
        preprocess,
        Arc::new(tokenizer.clone()),
        config.model.text.context_length,
        config.seed,
    )
}

/// A drawn batch: its examples' keys and ground truth, and their tensors on the device.
pub struct Drawn {
    pub keys: Vec<String>,
    pub noise: Vec<Option<String>>,
    pub classes: Vec<Option<i64>>,
    pub tensors: BatchTensors,
}

/// Stacks examples (all of one image shape and T) into tensors on `device`.
pub fn assemble(examples: Vec<Example>, device: Device) -> Drawn {
    let n = examples.len() as i64;
    let image_len = examples.first().map_or(0, |e| e.image.len());
    let context = examples.first().map_or(0, |e| e.ids.len());
    let side = ((image_len / 3) as f64).sqrt().round() as i64;
    let mut pixels = Vec::with_capacity(examples.len() * image_len);
    let mut ids = Vec::with_capacity(examples.len() * context);
    let mut last = Vec::with_capacity(examples.len());
    let mut keys = Vec::with_capacity(examples.len());
    let mut noise = Vec::with_capacity(examples.len());
    let mut classes = Vec::with_capacity(examples.len());
    for e in examples {
        pixels.extend_from_slice(&e.image);
        ids.extend_from_slice(&e.ids);
        last.push(e.last);
        keys.push(e.key);
        noise.push(e.noise);
        classes.push(e.class);
    }
    let tensors = BatchTensors {
        images: Tensor::from_slice(&pixels)
            .reshape([n, 3, side, side])
            .to_device(device),
        ids: Tensor::from_slice(&ids)
            .reshape([n, context as i64])
            .to_kind(Kind::Int64)
            .to_device(device),
        last: Tensor::from_slice(&last).to_device(device),
    };
    Drawn {
        keys,
        noise,
        classes,
        tensors,
    }
}
