//! Samples as the trainer sees them: decoded, cropped, resized and tokenised on the loader's
//! workers, then stacked into tensors on the model's device. Images stay 8-bit until they are on
//! the device (docs/ARCHITECTURE.md, "Input path"): the loader's buffers hold a quarter of what
//! f32 pixels would, the host-to-GPU copy moves a quarter of the bytes, from pinned memory and
//! without blocking, and the conversion to normalised f32 runs on the device.
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
    /// `[R, R, 3]` row-major 8-bit RGB (HWC), not yet normalised.
    pub image: Vec<u8>,
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
        target_side: Some(preprocess.source_side()),
        ..decode_options
    };
    Arc::new(move |raw| {
        let sample = decode(&raw, &decode_options)?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ fnv1a(sample.key.as_bytes()));
        let image = preprocess
            .resample(&image::DynamicImage::ImageRgb8(sample.image), &mut rng)
            .map_err(|_| SkipReason::UndecodableImage)?
            .into_raw();
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

/// `work` with its results kept in memory up to `budget` bytes, by sample key and content
/// (FNV-1a of the members): a sample read again — every pass over a pool after the first, five
/// or ten times more often for JEST's super-batches — is neither decoded nor resampled nor
/// tokenised again. Exact: [`example_work`] is a function of the sample and the seed (its
/// randomness is seeded by the key), so a kept result equals a recomputed one, skips included.
/// Once the budget is spent, new samples are computed as before and not kept.
pub fn cached_work(work: Work<Example>, budget: usize) -> Work<Example> {
    use std::collections::HashMap;
    use std::sync::Mutex;
    type Kept = std::result::Result<Example, SkipReason>;
    /// Results by (key, content hash), and the bytes they hold.
    type Store = (HashMap<(String, u64), Kept>, usize);
    let kept: Arc<Mutex<Store>> = Arc::default();
    Arc::new(move |raw| {
        let mut hash = 0u64;
        for (name, bytes) in &raw.members {
            hash = hash.rotate_left(5) ^ fnv1a(name.as_bytes()) ^ fnv1a(bytes);
        }
        let id = (raw.key.clone(), hash);
        if let Some(found) = kept.lock().expect("example cache").0.get(&id) {
            return found.clone();
        }
        let made = work(raw);
        let size = match &made {
            Ok(e) => {
                e.image.len()
                    + 8 * e.ids.len()
                    + e.key.len()
                    + e.noise.as_ref().map_or(0, String::len)
                    + 96
            }
            Err(_) => 64,
        } + id.0.len();
        let mut kept = kept.lock().expect("example cache");
        // Another worker may have made the same sample meanwhile: count it once.
        if kept.1 + size <= budget && !kept.0.contains_key(&id) {
            kept.1 += size;
            kept.0.insert(id, made.clone());
        }
        made
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

/// The image transform of a model trained with `config`: its resolution, SigLIP's
/// normalisation.
pub fn model_preprocess(config: &crate::config::TrainConfig) -> Preprocess {
    Preprocess {
        resolution: config.model.image.image_size as u32,
        ..Preprocess::default()
    }
}

/// [`example_work`] for a model trained with `config`: its decoding options, its resolution, its
/// context length and seed.
pub fn model_work(config: &crate::config::TrainConfig, tokenizer: &TextTokenizer) -> Work<Example> {
    let preprocess = model_preprocess(config);
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

/// Stacks examples (all of one image side and T) into tensors on `device`, the images normalised
/// there by `preprocess`'s table ([`Preprocess::table`]: the same bits as normalising on the
/// host). For a CUDA device the 8-bit pixels go through pinned host memory (one host copy: tch
/// cannot allocate pinned memory directly) and are copied without blocking; the step's phase
/// timers synchronise the device, so the copy overlaps only what the device already had queued.
pub fn assemble(examples: Vec<Example>, preprocess: &Preprocess, device: Device) -> Drawn {
    let n = examples.len();
    let image_len = examples.first().map_or(0, |e| e.image.len());
    let context = examples.first().map_or(0, |e| e.ids.len());
    let side = ((image_len / 3) as f64).sqrt().round() as i64;
    assert!(
        3 * (side * side) as usize == image_len
            && examples.iter().all(|e| e.image.len() == image_len),
        "one preprocessing makes one square 8-bit RGB image size"
    );
    let host = Tensor::empty([n as i64, side, side, 3], (Kind::Uint8, Device::Cpu));
    let host = if device.is_cuda() {
        host.pin_memory(device)
    } else {
        host
    };
    if n > 0 && image_len > 0 {
        // SAFETY: `host` is a fresh contiguous u8 tensor of n·R·R·3 = n·image_len bytes that
        // nothing else references while this slice lives.
        let bytes =
            unsafe { std::slice::from_raw_parts_mut(host.data_ptr() as *mut u8, n * image_len) };
        for (e, row) in examples.iter().zip(bytes.chunks_exact_mut(image_len)) {
            row.copy_from_slice(&e.image);
        }
    }
    let mut ids = Vec::with_capacity(n * context);
    let mut last = Vec::with_capacity(n);
    let mut keys = Vec::with_capacity(n);
    let mut noise = Vec::with_capacity(n);
    let mut classes = Vec::with_capacity(n);
    for e in examples {
        ids.extend_from_slice(&e.ids);
        last.push(e.last);
        keys.push(e.key);
        noise.push(e.noise);
        classes.push(e.class);
    }
    let pixels = host.to_device_(device, Kind::Uint8, device.is_cuda(), false);
    let tensors = BatchTensors {
        images: normalise_on(&pixels, preprocess),
        ids: Tensor::from_slice(&ids)
            .reshape([n as i64, context as i64])
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

/// Rows normalised at a time: the int64 lookup index is 8 bytes a pixel, so a whole `b16`
/// super-batch at once (20,480 × 224² × 3) would need 25 GB of it; 256 rows need 0.3 GB.
const NORMALISE_ROWS: i64 = 256;

/// `[n, R, R, 3]` u8 → `[n, 3, R, R]` f32 normalised, on the pixels' device: a lookup of each level
/// in the per-channel table (exact, unlike recomputing `(v / 255 − mean) / std` with the device's
/// rounding), in chunks of rows written into the output.
fn normalise_on(pixels: &Tensor, preprocess: &Preprocess) -> Tensor {
    let device = pixels.device();
    let flat: Vec<f32> = preprocess.table().iter().flatten().copied().collect();
    let table = Tensor::from_slice(&flat).to_device(device);
    let channel = Tensor::from_slice(&[0i64, 256, 512]).to_device(device);
    let [n, h, w, c] = pixels.size()[..] else {
        unreachable!("assemble makes [n, R, R, 3]")
    };
    let out = Tensor::empty([n, c, h, w], (Kind::Float, device));
    for start in (0..n).step_by(NORMALISE_ROWS as usize) {
        let rows = NORMALISE_ROWS.min(n - start);
        let index = pixels.narrow(0, start, rows).to_kind(Kind::Int64) + &channel;
        out.narrow(0, start, rows)
            .copy_(&table.take(&index).permute([0, 3, 1, 2]));
    }
    out
}
