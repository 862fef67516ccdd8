//! The 8-bit input path: pixels leave the loader as u8 and are normalised on the device, to the
//! same bits as the host's f32 transform; on CUDA through pinned memory (skipped without a GPU).
use jester::input::{assemble, Example};
use jester_data::image::{DynamicImage, RgbImage};
use jester_data::transform::Preprocess;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tch::{Device, Kind, Tensor};

fn picture(seed: u32, side: u32) -> RgbImage {
    RgbImage::from_fn(side, side, |x, y| {
        let v = |k: u32| ((x * 31 + y * 17 + seed * 7 + k * 101) % 256) as u8;
        jester_data::image::Rgb([v(0), v(1), v(2)])
    })
}

fn example(image: Vec<u8>, i: usize) -> Example {
    Example {
        key: format!("k{i}"),
        image,
        ids: vec![1, 2, 3, i as i64],
        last: 3,
        noise: None,
        class: None,
    }
}

/// Random crops of 12 pictures through `resample` (u8) + `assemble`, against `apply` (host f32).
fn check_on(device: Device) {
    let preprocess = Preprocess {
        resolution: 24,
        train: true,
        mean: [0.481, 0.458, 0.408],
        std: [0.269, 0.261, 0.276],
        ..Preprocess::default()
    };
    let mut host = Vec::new();
    let mut examples = Vec::new();
    for i in 0..12 {
        let image = DynamicImage::ImageRgb8(picture(i, 40));
        let u8s = preprocess
            .resample(&image, &mut ChaCha8Rng::seed_from_u64(i.into()))
            .unwrap()
            .into_raw();
        host.extend(
            preprocess
                .apply(&image, &mut ChaCha8Rng::seed_from_u64(i.into()))
                .unwrap(),
        );
        examples.push(example(u8s, i as usize));
    }
    let drawn = assemble(examples, &preprocess, device);
    let images = &drawn.tensors.images;
    assert_eq!(images.size(), [12, 3, 24, 24]);
    assert_eq!(images.kind(), Kind::Float);
    assert_eq!(images.device(), device);
    let expected = Tensor::from_slice(&host).reshape([12, 3, 24, 24]);
    let got = images.to(Device::Cpu);
    assert!(
        got.equal(&expected),
        "max |Δ| {}",
        (got - expected).abs().max().double_value(&[])
    );
    assert_eq!(drawn.keys[11], "k11");
    assert_eq!(
        Vec::<i64>::try_from(drawn.tensors.ids.get(11).to(Device::Cpu)).unwrap(),
        [1, 2, 3, 11]
    );
}

#[test]
fn u8_pixels_normalised_on_the_cpu_equal_the_host_transform_bit_for_bit() {
    check_on(Device::Cpu);
}

#[test]
fn u8_pixels_through_pinned_memory_equal_the_host_transform_on_cuda() {
    if !tch::Cuda::is_available() {
        eprintln!("skipped: no CUDA device (the pinned, non-blocking copy runs only on a GPU)");
        return;
    }
    check_on(Device::Cuda(0));
}

#[test]
fn an_empty_draw_assembles_to_empty_tensors() {
    let drawn = assemble(Vec::new(), &Preprocess::default(), Device::Cpu);
    assert_eq!(drawn.tensors.images.size()[0], 0);
    assert!(drawn.keys.is_empty());
}

#[test]
fn the_example_cache_decodes_a_sample_once_within_its_budget_and_returns_the_same_result() {
    use jester::input::cached_work;
    use jester_data::loader::Work;
    use jester_data::{RawSample, SkipReason};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let work: Work<Example> = Arc::new(move |raw: RawSample| {
        counted.fetch_add(1, Ordering::SeqCst);
        match raw.member("txt") {
            Some(b"bad") => Err(SkipReason::EmptyCaption),
            Some(text) => Ok(example(text.to_vec(), raw.key.len())),
            None => Err(SkipReason::NoCaption),
        }
    });
    let raw = |key: &str, text: &str| RawSample::new(key).with("txt", text);
    let kept = cached_work(work.clone(), 1 << 20);
    let first = kept(raw("a", "pixels")).unwrap();
    let again = kept(raw("a", "pixels")).unwrap();
    assert_eq!(
        (first.image.clone(), first.ids.clone()),
        (again.image, again.ids)
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1, "read twice, made once");
    // Skips are kept too; the same key with other bytes is another sample.
    assert_eq!(kept(raw("b", "bad")).unwrap_err(), SkipReason::EmptyCaption);
    assert_eq!(kept(raw("b", "bad")).unwrap_err(), SkipReason::EmptyCaption);
    assert_eq!(kept(raw("a", "other")).unwrap().image, b"other");
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    // With no budget nothing is kept: every read is made again.
    let none = cached_work(work, 0);
    none(raw("c", "x")).unwrap();
    none(raw("c", "x")).unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 5);
}
