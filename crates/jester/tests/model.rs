//! The two-tower model: shapes, FlexiViT patch sizes, text pooling, the loss, and weights that
//! round-trip.
use jester::loss::sigmoid_batch_loss;
use jester::model::{half_and_half, BatchTensors, ModelConfig, Precision, TwoTower};
use tch::{Device, Kind, Tensor};

fn config() -> ModelConfig {
    let mut c = ModelConfig::tiny();
    c.text.vocab_size = 50;
    c.text.context_length = 8;
    c
}

fn batch(n: i64, c: &ModelConfig) -> BatchTensors {
    let h = c.image.image_size as i64;
    let t = c.text.context_length as i64;
    BatchTensors {
        images: Tensor::randn([n, 3, h, h], (Kind::Float, Device::Cpu)),
        ids: Tensor::randint_low(
            2,
            c.text.vocab_size as i64,
            [n, t],
            (Kind::Int64, Device::Cpu),
        ),
        last: Tensor::randint_low(1, t, [n], (Kind::Int64, Device::Cpu)),
    }
}

fn max_abs(t: &Tensor) -> f64 {
    t.abs().max().double_value(&[])
}

#[test]
fn embeddings_are_unit_rows_at_every_patch_size_that_tiles_the_image() {
    tch::manual_seed(0);
    let c = config();
    let model = TwoTower::new(&c, Device::Cpu).unwrap();
    let b = batch(5, &c);
    for patch in [4, 8, 16, 2] {
        let z = model.encode_images(&b.images, patch).unwrap();
        assert_eq!(z.size(), [5, c.embed_dim as i64]);
        let norms = z.norm_scalaropt_dim(2, [1i64].as_slice(), false);
        assert!(max_abs(&(norms - 1.0)) < 1e-5, "patch {patch}");
    }
    let err = model.encode_images(&b.images, 5).unwrap_err().to_string();
    assert!(err.contains("does not tile the 32-px image"), "{err}");
    let wrong = Tensor::zeros([2, 3, 16, 16], (Kind::Float, Device::Cpu));
    assert!(model.encode_images(&wrong, 4).is_err());
}

#[test]
fn low_resolution_embeddings_differ_from_but_track_the_full_resolution_ones() {
    // FlexiViT: the same weights at patch 8 give different but related embeddings; smooth images
    // (upsampled from 8×8) keep more of the full-resolution answer than noise does.
    tch::manual_seed(1);
    let c = config();
    let model = TwoTower::new(&c, Device::Cpu).unwrap();
    let _guard = tch::no_grad_guard();
    let small = Tensor::randn([16, 3, 8, 8], (Kind::Float, Device::Cpu));
    let smooth = small.upsample_bilinear2d([32, 32], false, None, None);
    let full = model.encode_images(&smooth, 4).unwrap();
    let low = model.encode_images(&smooth, 8).unwrap();
    let cosine = (&full * &low).sum_dim_intlist([1i64].as_slice(), false, Kind::Float);
    let mean = cosine.mean(Kind::Float).double_value(&[]);
    assert!(max_abs(&(&full - &low)) > 1e-3);
    assert!(mean > 0.5, "mean cosine {mean}");
}

#[test]
fn the_text_tower_reads_a_caption_up_to_its_last_token_and_never_the_padding() {
    tch::manual_seed(2);
    let c = config();
    let model = TwoTower::new(&c, Device::Cpu).unwrap();
    let _guard = tch::no_grad_guard();
    let ids = Tensor::from_slice(&[5i64, 6, 7, 1, 0, 0, 0, 0]).reshape([1, 8]);
    let last = Tensor::from_slice(&[3i64]);
    let base = model.encode_texts(&ids, &last).unwrap();
    // Whatever follows the last real token (here: pad ids that a user tokenizer may use for real
    // words) changes nothing.
    let noisy_tail = Tensor::from_slice(&[5i64, 6, 7, 1, 9, 13, 2, 40]).reshape([1, 8]);
    let same = model.encode_texts(&noisy_tail, &last).unwrap();
    assert!(max_abs(&(&same - &base)) < 1e-6);
    // A token before it does.
    let changed = Tensor::from_slice(&[5i64, 8, 7, 1, 0, 0, 0, 0]).reshape([1, 8]);
    let other = model.encode_texts(&changed, &last).unwrap();
    assert!(max_abs(&(&other - &base)) > 1e-4);
}

#[test]
fn the_loss_is_the_sigmoid_loss_of_the_embeddings_with_parts_at_their_own_patch() {
    tch::manual_seed(3);
    let c = config();
    let model = TwoTower::new(&c, Device::Cpu).unwrap();
    let b = batch(6, &c);
    let parts = half_and_half(6, 4, 8);
    assert_eq!(parts, vec![(3, 4), (3, 8)]);
    let loss = model.loss(&b, &parts).unwrap().double_value(&[]);
    let _guard = tch::no_grad_guard();
    let image = Tensor::cat(
        &[
            model.encode_images(&b.images.narrow(0, 0, 3), 4).unwrap(),
            model.encode_images(&b.images.narrow(0, 3, 3), 8).unwrap(),
        ],
        0,
    );
    let text = model.encode_texts(&b.ids, &b.last).unwrap();
    let expected =
        sigmoid_batch_loss(&image, &text, &model.temperature(), model.bias()).double_value(&[]);
    assert!(
        (loss - expected).abs() < 1e-5 * expected.abs(),
        "{loss} vs {expected}"
    );
    // SigLIP's initialisation: t = 10, b = −10, so each example starts near softplus(10 − 10·cos).
    assert!((model.temperature().double_value(&[]) - 10.0).abs() < 1e-5);
    assert!(model.loss(&b, &[(5, 4)]).is_err());
}

#[test]
fn every_parameter_gets_a_gradient_from_a_multi_resolution_loss() {
    tch::manual_seed(4);
    let c = config();
    let model = TwoTower::new(&c, Device::Cpu).unwrap();
    let b = batch(4, &c);
    model.loss(&b, &half_and_half(4, 4, 8)).unwrap().backward();
    for (name, p) in model.parameters() {
        let g = p.grad();
        assert!(g.defined(), "{name} has no gradient");
        // Token rows never used have zero gradient; everything else moves.
        if name != "text.tokens.weight" {
            assert!(max_abs(&g) > 0.0, "{name} has a zero gradient");
        }
    }
}

#[test]
fn bf16_autocast_tracks_f32_and_keeps_embeddings_and_gradients_in_f32() {
    // Mixed precision is checked against f32 on the same weights and batch: the embeddings stay
    // unit f32 rows within bf16's rounding of them, the loss within 1 %, and the gradients are f32
    // and point the same way (cosine > 0.95 over all parameters).
    tch::manual_seed(6);
    let c = config();
    let mut model = TwoTower::new(&c, Device::Cpu).unwrap();
    let b = batch(16, &c);
    let parts = half_and_half(16, 4, 8);
    let run = |model: &TwoTower| {
        for (_, p) in model.parameters() {
            let mut g = p.grad();
            if g.defined() {
                let _ = g.zero_();
            }
        }
        let loss = model.loss(&b, &parts).unwrap();
        loss.backward();
        let grads: Vec<Tensor> = model
            .parameters()
            .iter()
            .map(|(_, p)| p.grad().flatten(0, -1).copy())
            .collect();
        let z = model.encode_images(&b.images, 4).unwrap();
        (loss.double_value(&[]), Tensor::cat(&grads, 0), z)
    };
    let (loss32, grad32, z32) = run(&model);
    model.set_precision(Precision::Bf16);
    let (loss16, grad16, z16) = run(&model);
    assert_eq!(z16.kind(), Kind::Float);
    assert_eq!(grad16.kind(), Kind::Float);
    let dz = max_abs(&(&z16 - &z32));
    assert!(dz > 0.0, "bf16 changed nothing: autocast is not active");
    assert!(dz < 0.05, "embeddings moved by {dz}");
    assert!(
        (loss16 - loss32).abs() < 0.01 * loss32.abs(),
        "loss {loss16} vs {loss32}"
    );
    let cosine = (&grad16 * &grad32).sum(Kind::Float).double_value(&[])
        / (grad16.norm().double_value(&[]) * grad32.norm().double_value(&[]));
    assert!(cosine > 0.95, "gradient cosine {cosine}");
}

#[test]
fn weights_round_trip_through_safetensors() {
    tch::manual_seed(5);
    let c = config();
    let model = TwoTower::new(&c, Device::Cpu).unwrap();
    let dir = std::env::temp_dir().join(format!("jester-model-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("model.safetensors");
    model.save(&path).unwrap();
    tch::manual_seed(99);
    let loaded = TwoTower::load(&c, &path, Device::Cpu).unwrap();
    let b = batch(3, &c);
    let (x, y) = (model.embed(&b, 4).unwrap(), loaded.embed(&b, 4).unwrap());
    assert!(max_abs(&(x.image() - y.image())) == 0.0 && max_abs(&(x.text() - y.text())) == 0.0);
    let mut other = c.clone();
    other.embed_dim = 32;
    let err = TwoTower::load(&other, &path, Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(err.contains("was it saved with this config"), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn presets_validate_and_bad_configs_say_what_is_wrong() {
    for name in ["tiny", "small", "b16"] {
        ModelConfig::preset(name).unwrap().validate().unwrap();
    }
    let mut c = ModelConfig::tiny();
    c.image.patch_size = 5;
    assert!(c
        .validate()
        .unwrap_err()
        .to_string()
        .contains("not a multiple of image.patch_size 5"));
    let mut c = ModelConfig::tiny();
    c.text.heads = 3;
    assert!(c
        .validate()
        .unwrap_err()
        .to_string()
        .contains("text.width 64 is not a multiple of text.heads 3"));
    assert!(TwoTower::new(&ModelConfig::tiny(), Device::Cpu)
        .unwrap_err()
        .to_string()
        .contains("vocab_size is 0"));
}

#[test]
fn cuda_model_matches_cpu_model_in_f32_and_bf16_tracks_it() {
    if !tch::Cuda::is_available() {
        eprintln!("skipped: no CUDA device (the GPU twin runs only where libtorch sees a GPU)");
        return;
    }
    tch::manual_seed(7);
    let c = config();
    let cpu = TwoTower::new(&c, Device::Cpu).unwrap();
    let gpu_device = Device::Cuda(0);
    let mut gpu = TwoTower::new(&c, gpu_device).unwrap();
    gpu.var_store_mut().copy(cpu.var_store()).unwrap();
    let b = batch(32, &c);
    let on_gpu = BatchTensors {
        images: b.images.to(gpu_device),
        ids: b.ids.to(gpu_device),
        last: b.last.to(gpu_device),
    };
    let parts = half_and_half(32, 4, 8);
    let loss_cpu = cpu.loss(&b, &parts).unwrap().double_value(&[]);
    let loss_gpu = gpu.loss(&on_gpu, &parts).unwrap().double_value(&[]);
    // cuDNN convolutions may use TF32 (libtorch's default), hence 1e-3 rather than f32 rounding.
    assert!(
        (loss_cpu - loss_gpu).abs() < 1e-3 * loss_cpu.abs(),
        "loss cpu {loss_cpu} vs cuda {loss_gpu}"
    );
    let z_cpu = cpu.embed(&b, 4).unwrap();
    let z_gpu = gpu.embed(&on_gpu, 4).unwrap();
    let dz = max_abs(&(z_gpu.image().to(Device::Cpu) - z_cpu.image()));
    assert!(dz < 1e-2, "image embeddings differ by {dz}");
    gpu.set_precision(Precision::Bf16);
    let loss_bf16 = gpu.loss(&on_gpu, &parts).unwrap();
    assert_eq!(loss_bf16.kind(), Kind::Float);
    let loss_bf16 = loss_bf16.double_value(&[]);
    assert!(
        (loss_bf16 - loss_cpu).abs() < 0.01 * loss_cpu.abs(),
        "loss bf16 {loss_bf16} vs f32 {loss_cpu}"
    );
}
