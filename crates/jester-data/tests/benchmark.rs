//! The synthetic-scene benchmark, and through it the parts both generators share (docs/DATA.md
//! §Benchmarks): layout, determinism, noise rates, curation levels, zero-shot classes, configs.
#[path = "support/benchmark.rs"]
mod support;

use std::path::Path;

use jester_data::benchmark::synthetic::{self, SyntheticConfig};
use jester_data::benchmark::{BenchmarkConfig, NoiseKind, NoiseRates, Split, Summary};
use serde_json::Value;
use support::{all_files, fresh_dir, generated, small_config, split};

#[test]
fn same_seed_gives_identical_bytes_and_another_seed_does_not() {
    let config = SyntheticConfig {
        benchmark: BenchmarkConfig {
            pool: 300,
            curated: 60,
            eval: 60,
            samples_per_shard: 100,
            ..BenchmarkConfig::default()
        },
        ..SyntheticConfig::default()
    };
    let (a, b, c) = (
        fresh_dir("seed-a"),
        fresh_dir("seed-b"),
        fresh_dir("seed-c"),
    );
    synthetic::generate(&config, &a).unwrap();
    synthetic::generate(&config, &b).unwrap();
    let mut other = config.clone();
    other.benchmark.seed = 1;
    synthetic::generate(&other, &c).unwrap();
    let (files_a, files_b) = (all_files(&a), all_files(&b));
    // Pool: 3 shards, each curated set and eval: 1, plus classes.json, config.json, summary.json.
    assert_eq!(files_a.len(), 3 + 3 + 1 + 3);
    assert!(files_a == files_b, "same seed, different bytes");
    let pool = Path::new("pool/00000.tar");
    assert_ne!(files_a[pool], all_files(&c)[pool]);
}

#[test]
fn layout_config_and_summary_agree_with_the_shards() {
    let (dir, summary) = generated();
    let config = small_config();
    let saved: SyntheticConfig =
        serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(saved, config);
    let on_disk: Summary =
        serde_json::from_slice(&std::fs::read(dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(&on_disk, summary);
    for s in Split::ALL {
        let samples = split(s.name());
        let expected = if s == Split::Pool {
            3_000
        } else if s == Split::Eval {
            400
        } else {
            800
        };
        assert_eq!(samples.len(), expected, "{s:?}");
        assert_eq!(summary.splits[&s].samples, expected);
        assert_eq!(summary.splits[&s].shards, expected.div_ceil(700));
        for kind in NoiseKind::ALL {
            let counted = samples.iter().filter(|x| x.noise() == kind.name()).count();
            assert_eq!(summary.splits[&s].noise[&kind], counted, "{s:?} {kind:?}");
        }
        for (i, sample) in samples.iter().enumerate() {
            assert_eq!(sample.key, format!("{i:09}"));
            assert_eq!(sample.meta["split"], s.name());
            assert_eq!(sample.image().dimensions(), (32, 32));
        }
    }
}

#[test]
fn noise_rates_are_realised_and_curated_strong_is_clean() {
    let config = small_config().benchmark;
    let levels = [
        ("pool", config.pool_noise),
        ("curated-strong", config.curated_noise.strong),
        ("curated-moderate", config.curated_noise.moderate),
        ("curated-weak", config.curated_noise.weak),
    ];
    for (name, rates) in levels {
        let samples = split(name);
        for kind in NoiseKind::ALL {
            let realised = samples.iter().filter(|s| s.noise() == kind.name()).count() as f64
                / samples.len() as f64;
            let tolerance = 1.5 / samples.len() as f64;
            assert!(
                (realised - rates.rate(kind)).abs() <= tolerance,
                "{name} {kind:?}: {realised} vs {}",
                rates.rate(kind)
            );
        }
    }
    for sample in split("curated-strong") {
        assert_eq!(sample.noise(), "clean");
        assert_eq!(sample.txt, sample.meta["clean_caption"]);
    }
    assert!((NoiseRates::POOL.rate(NoiseKind::Clean) - 0.45).abs() < 1e-12);
}

#[test]
fn classes_file_matches_the_eval_labels() {
    let (dir, summary) = generated();
    let classes: Value =
        serde_json::from_slice(&std::fs::read(dir.join("eval/classes.json")).unwrap()).unwrap();
    let names: Vec<&str> = classes["classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 10);
    assert_eq!(summary.classes, 10);
    assert!(classes["templates"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t.as_str().unwrap().contains("{}")));
    let eval = split("eval");
    let mut per_class = vec![0; names.len()];
    for s in &eval {
        assert_eq!(s.noise(), "clean");
        assert_eq!(s.txt, s.meta["clean_caption"]);
        let objects = s.meta["objects"].as_array().unwrap();
        match s.meta["class"].as_u64() {
            Some(class) => {
                assert_eq!(objects.len(), 1);
                assert_eq!(objects[0]["shape"], names[class as usize]);
                assert!(s.txt.contains(names[class as usize]));
                per_class[class as usize] += 1;
            }
            None => assert!(objects.len() >= 2),
        }
    }
    // 400 × 0.5 single-object scenes, balanced over 10 classes.
    assert_eq!(per_class, vec![20; 10]);
}

#[test]
fn bad_configs_and_used_folders_are_refused() {
    let unknown =
        serde_json::from_str::<SyntheticConfig>(r#"{"benchmark": {"pool": 10, "pol": 3}}"#);
    assert!(unknown.unwrap_err().to_string().contains("pol"));
    let partial: SyntheticConfig = serde_json::from_str(
        r#"{"image_size": 48, "benchmark": {"pool_noise": {"misaligned": 0.3}}}"#,
    )
    .unwrap();
    assert_eq!(partial.image_size, 48);
    assert_eq!(
        partial.benchmark.pool_noise,
        NoiseRates {
            misaligned: 0.3,
            ..NoiseRates::CLEAN
        }
    );

    let mut config = small_config();
    config.benchmark.pool_noise.uninformative = 0.9;
    let err = synthetic::generate(&config, &fresh_dir("bad"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("pool_noise") && err.contains("sum"), "{err}");
    let mut config = small_config();
    config.max_objects = 0;
    assert!(synthetic::generate(&config, &fresh_dir("bad"))
        .unwrap_err()
        .to_string()
        .contains("max_objects"));

    let used = fresh_dir("used");
    std::fs::create_dir_all(&used).unwrap();
    std::fs::write(used.join("old.tar"), b"x").unwrap();
    let err = synthetic::generate(&SyntheticConfig::tiny(), &used)
        .unwrap_err()
        .to_string();
    assert!(err.contains("not empty"), "{err}");
}
