//! The Fashion-MNIST scene benchmark (docs/DATA.md §Benchmarks 2). The tests that need the real
//! files skip (with a message) where `apt-get install -y dataset-fashion-mnist` has not been run;
//! the error for missing or broken files is always tested.
#[path = "support/benchmark.rs"]
mod support;

use std::path::Path;

use jester_data::benchmark::fashion_mnist::{self, FashionMnistConfig, CLASSES};
use jester_data::benchmark::{BenchmarkConfig, NoiseKind, NoiseRates};
use serde_json::Value;
use support::{duplicate_caption_rate, fresh_dir, read_split};

const DATA: &str = "/usr/share/datasets/fashion-mnist";

fn installed() -> bool {
    let present = Path::new(DATA).join("train-images-idx3-ubyte.gz").is_file();
    if !present {
        eprintln!(
            "skipped: Fashion-MNIST is not installed (apt-get install -y dataset-fashion-mnist)"
        );
    }
    present
}

#[test]
fn missing_files_name_the_install_command() {
    let empty = fresh_dir("no-data");
    std::fs::create_dir_all(&empty).unwrap();
    let config = FashionMnistConfig {
        data_dir: empty.to_path_buf(),
        ..FashionMnistConfig::tiny()
    };
    let err = fashion_mnist::generate(&config, &fresh_dir("out-missing"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("apt-get install -y dataset-fashion-mnist"),
        "{err}"
    );
    assert!(err.contains("train-images-idx3-ubyte.gz"), "{err}");

    // A file that is there but is not an IDX image file.
    std::fs::write(
        empty.join("train-images-idx3-ubyte"),
        [0u8, 0, 8, 1, 0, 0, 0, 0],
    )
    .unwrap();
    let err = fashion_mnist::generate(&config, &fresh_dir("out-bad"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("train-images-idx3-ubyte") && err.contains("IDX"),
        "{err}"
    );
}

#[test]
fn scenes_are_real_items_with_matching_captions_and_classes() {
    if !installed() {
        return;
    }
    let config = FashionMnistConfig {
        benchmark: BenchmarkConfig {
            pool: 2_000,
            curated: 200,
            eval: 300,
            samples_per_shard: 500,
            ..BenchmarkConfig::default()
        },
        ..FashionMnistConfig::default()
    };
    let dir = fresh_dir("scenes");
    let summary = fashion_mnist::generate(&config, &dir).unwrap();
    assert_eq!(summary.classes, 10);
    let classes: Value =
        serde_json::from_slice(&std::fs::read(dir.join("eval/classes.json")).unwrap()).unwrap();
    assert_eq!(classes["classes"], serde_json::json!(CLASSES));

    let pool = read_split(&dir.join("pool"));
    assert_eq!(pool.len(), 2_000);
    for kind in NoiseKind::ALL {
        let realised = pool
            .iter()
            .filter(|s| s.meta["noise"] == kind.name())
            .count() as f64
            / 2_000.0;
        assert!(
            (realised - NoiseRates::POOL.rate(kind)).abs() <= 1e-3,
            "{kind:?} {realised}"
        );
    }
    for s in &pool {
        assert_eq!(s.meta["items_from"], "train");
        let objects = s.meta["objects"].as_array().unwrap();
        assert!((1..=4).contains(&objects.len()));
        let clean = s.meta["clean_caption"].as_str().unwrap();
        for object in objects {
            assert!(
                clean.contains(object["name"].as_str().unwrap()),
                "{clean:?}"
            );
            assert!(
                clean.contains(object["colour"].as_str().unwrap()),
                "{clean:?}"
            );
        }
        if s.meta["noise"] == "partly-wrong" {
            let wrong = &s.meta["wrong"];
            assert_ne!(s.txt, clean);
            assert!(
                s.txt.contains(wrong["caption"].as_str().unwrap()),
                "{:?}",
                s.txt
            );
            let object = &objects[wrong["object"].as_u64().unwrap() as usize];
            assert_eq!(object[wrong["attribute"].as_str().unwrap()], wrong["truth"]);
        }
    }

    let eval = read_split(&dir.join("eval"));
    let mut per_class = [0; 10];
    for s in &eval {
        assert_eq!(s.meta["items_from"], "test");
        let image = image::load_from_memory(&s.png).unwrap().to_rgb8();
        assert_eq!(image.dimensions(), (56, 56));
        if let Some(class) = s.meta["class"].as_u64() {
            let item = &s.meta["objects"][0];
            assert_eq!(item["label"], class);
            assert_eq!(item["name"], CLASSES[class as usize]);
            assert_eq!(item["position"], "centre");
            per_class[class as usize] += 1;
        } else {
            assert!(s.meta["objects"].as_array().unwrap().len() >= 2);
        }
    }
    assert_eq!(per_class, [15; 10]);

    // Same seed, same bytes (the tiny config is quick).
    let tiny = FashionMnistConfig::tiny();
    let (a, b) = (fresh_dir("seed-a"), fresh_dir("seed-b"));
    fashion_mnist::generate(&tiny, &a).unwrap();
    fashion_mnist::generate(&tiny, &b).unwrap();
    for sub in [
        "pool/00000.tar",
        "curated-weak/00000.tar",
        "eval/00000.tar",
        "summary.json",
    ] {
        assert!(
            std::fs::read(a.join(sub)).unwrap() == std::fs::read(b.join(sub)).unwrap(),
            "{sub}"
        );
    }
}

/// The same measure as the synthetic benchmark's test, reported for the Fashion-MNIST world.
#[test]
fn duplicate_captions_are_rare_in_batches_of_256() {
    if !installed() {
        return;
    }
    let config = FashionMnistConfig {
        benchmark: BenchmarkConfig {
            pool: 8_192,
            curated: 1,
            eval: 1,
            pool_noise: NoiseRates::CLEAN,
            ..BenchmarkConfig::default()
        },
        ..FashionMnistConfig::default()
    };
    let dir = fresh_dir("duplicates");
    fashion_mnist::generate(&config, &dir).unwrap();
    let captions: Vec<String> = read_split(&dir.join("pool"))
        .into_iter()
        .map(|s| s.txt)
        .collect();
    let (rate, with_any) = duplicate_caption_rate(&captions, 200);
    eprintln!(
        "fashion-mnist duplicate-caption rate (clean pool, clusters 32, strength 0.8, batches of \
         256): {:.3}% of samples; {with_any}/200 batches have a duplicate",
        100.0 * rate
    );
    assert!(rate < 0.01, "duplicate-caption rate {rate}");
}
