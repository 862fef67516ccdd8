//! What each noise kind of the synthetic benchmark does (docs/DATA.md, "The raw pool mimics web
//! noise"), the cluster structure (docs/DATA.md, "Batch-level structure matters") and how rare
//! duplicate captions are in a batch.
#[path = "support/benchmark.rs"]
mod support;

use std::collections::{HashMap, HashSet};

use jester_data::benchmark::synthetic::{self, SyntheticConfig};
use jester_data::benchmark::{BenchmarkConfig, NoiseRates};
use support::{duplicate_caption_rate, fresh_dir, read_split, roughness, split, spread, Sample};

fn is_uninformative(caption: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
    let words = [
        "image",
        "photo",
        "picture",
        "untitled",
        "img",
        "no title",
        "thumbnail",
    ];
    words.contains(&caption)
        || [
            "photo ",
            "image ",
            "untitled-",
            "screenshot ",
            "DSC",
            "DSC_",
            "IMG_",
        ]
        .iter()
        .any(|p| {
            caption
                .strip_prefix(p)
                .is_some_and(|rest| digits(rest.trim_end_matches(".jpg").trim_end_matches(".JPG")))
        })
        || caption.strip_suffix(".png").is_some_and(digits)
}

#[test]
fn each_noise_kind_does_what_it_says() {
    let pool = split("pool");
    let by_key: HashMap<&str, &Sample> = pool.iter().map(|s| (s.key.as_str(), s)).collect();
    let mut misaligned_differs = (0, 0);
    for s in &pool {
        let clean_caption = s.meta["clean_caption"].as_str().unwrap();
        match s.noise() {
            "clean" => {
                assert_eq!(s.txt, clean_caption);
                assert!(roughness(&s.image()) < 40.0, "{}", s.key);
            }
            "misaligned" => {
                let other = by_key[s.meta["caption_of"].as_str().unwrap()];
                assert_ne!(other.key, s.key);
                assert_eq!(s.txt, other.meta["clean_caption"]);
                misaligned_differs.0 += usize::from(s.txt != clean_caption);
                misaligned_differs.1 += 1;
            }
            "partly-wrong" => {
                let wrong = &s.meta["wrong"];
                assert_ne!(s.txt, clean_caption);
                let (truth, said) = (
                    wrong["truth"].as_str().unwrap(),
                    wrong["caption"].as_str().unwrap(),
                );
                assert_ne!(truth, said);
                assert!(s.txt.contains(said), "{:?} lacks {said:?}", s.txt);
                let object = &s.meta["objects"][wrong["object"].as_u64().unwrap() as usize];
                let attribute = wrong["attribute"].as_str().unwrap();
                assert_eq!(object[attribute].as_str().unwrap().replace('-', " "), truth);
            }
            "uninformative" => assert!(is_uninformative(&s.txt), "{:?}", s.txt),
            "corrupted-image" => {
                assert_eq!(s.txt, clean_caption);
                let image = s.image();
                match s.meta["corruption"].as_str().unwrap() {
                    "noise" => assert!(roughness(&image) > 50.0, "{}", roughness(&image)),
                    "blank" | "near-blank" => assert!(spread(&image) < 6.0, "{}", spread(&image)),
                    other => panic!("corruption {other}"),
                }
            }
            "near-duplicate" => {
                let source = by_key[s.meta["duplicate_of"].as_str().unwrap()];
                assert_eq!(source.noise(), "clean");
                assert_eq!(s.meta["objects"], source.meta["objects"]);
                let undone = s.txt.to_lowercase().replace(" & ", " and ");
                if s.meta["caption_perturbed"] == true {
                    assert_ne!(s.txt, source.txt);
                    assert!(
                        undone.starts_with(&source.txt),
                        "{:?} vs {:?}",
                        s.txt,
                        source.txt
                    );
                } else {
                    assert_eq!(s.txt, source.txt);
                }
                let shift = &s.meta["shift"];
                let (dx, dy) = (shift[0].as_i64().unwrap(), shift[1].as_i64().unwrap());
                let (copy, original) = (s.image(), source.image());
                for (x, y, pixel) in copy.enumerate_pixels() {
                    let sx = (x as i64 - dx).clamp(0, 31) as u32;
                    let sy = (y as i64 - dy).clamp(0, 31) as u32;
                    for (a, b) in pixel.0.iter().zip(original.get_pixel(sx, sy).0) {
                        assert!((*a as i32 - b as i32).abs() <= 6);
                    }
                }
            }
            other => panic!("noise {other}"),
        }
    }
    assert!(
        misaligned_differs.0 * 100 >= misaligned_differs.1 * 95,
        "{misaligned_differs:?}"
    );
}

#[test]
fn scenes_cluster_around_their_prototypes() {
    let pool = split("pool");
    let clean: Vec<&Sample> = pool.iter().filter(|s| s.noise() == "clean").collect();
    let from_prototype = clean
        .iter()
        .filter(|s| s.meta["from_prototype"] == true)
        .count();
    let fraction = from_prototype as f64 / clean.len() as f64;
    assert!((fraction - 0.8).abs() < 0.04, "{fraction}");
    // A cluster's prototype scenes use at most its 3 shapes and 3 colours.
    let mut seen: HashMap<u64, (HashSet<String>, HashSet<String>)> = HashMap::new();
    for s in clean.iter().filter(|s| s.meta["from_prototype"] == true) {
        let entry = seen.entry(s.meta["cluster"].as_u64().unwrap()).or_default();
        for object in s.meta["objects"].as_array().unwrap() {
            entry.0.insert(object["shape"].to_string());
            entry.1.insert(object["colour"].to_string());
        }
    }
    assert!(seen.len() > 20);
    assert!(seen
        .values()
        .all(|(shapes, colours)| shapes.len() <= 3 && colours.len() <= 3));
}

/// docs/DATA.md: "two random examples almost never share a caption (in-batch negatives must be true
/// negatives)", measured on a clean pool with the default clusters.
#[test]
fn duplicate_captions_are_rare_in_batches_of_256() {
    let config = SyntheticConfig {
        benchmark: BenchmarkConfig {
            pool: 8_192,
            curated: 1,
            eval: 1,
            pool_noise: NoiseRates::CLEAN,
            ..BenchmarkConfig::default()
        },
        ..SyntheticConfig::default()
    };
    let dir = fresh_dir("synthetic-duplicates");
    synthetic::generate(&config, &dir).unwrap();
    let captions: Vec<String> = read_split(&dir.join("pool"))
        .into_iter()
        .map(|s| s.txt)
        .collect();
    let (rate, with_any) = duplicate_caption_rate(&captions, 200);
    eprintln!(
        "synthetic duplicate-caption rate (clean pool, clusters 32, strength 0.8, batches of 256): \
         {:.3}% of samples; {with_any}/200 batches have a duplicate",
        100.0 * rate
    );
    assert!(rate < 0.005, "duplicate-caption rate {rate}");
}
