//! Evaluation: ties count against the sample (a collapsed tower scores zero, not 100 %), and
//! examples sharing a caption are matches of one another in both retrieval directions.
use std::io::Cursor;
use std::path::PathBuf;

use jester::config::TrainConfig;
use jester::eval::{
    caption_groups, duplicate_captions, retrieval, zero_shot_accuracy, EvalMetrics, EvalSet,
};
use jester::model::TwoTower;
use jester_data::image::{ImageFormat, Rgb, RgbImage};
use jester_data::tokenizer::TextTokenizer;
use jester_data::{RawSample, ShardWriter};
use tch::{Device, Kind, Tensor};

fn distinct(n: i64) -> Vec<i64> {
    (0..n).collect()
}

fn random_unit(n: i64, d: i64) -> Tensor {
    let x = Tensor::randn([n, d], (Kind::Float, Device::Cpu));
    &x / x.norm_scalaropt_dim(2, [1i64].as_slice(), true)
}

/// `[n, d]` small integers: their products and sums are exact in f32, so equal embeddings tie
/// exactly whatever order the matrix product adds in.
fn integers(n: i64, d: i64) -> Tensor {
    Tensor::randint_low(-4, 5, [n, d], (Kind::Float, Device::Cpu))
}

#[test]
fn a_collapsed_text_tower_retrieves_at_chance_or_below() {
    tch::manual_seed(0);
    let n = 20;
    let image = integers(n, 8);
    // Every caption embeds to the same vector: every text ties with every other for every image.
    let text = integers(1, 8).expand([n, 8], false).contiguous();
    let (i2t, t2i) = retrieval(&image, &text, &distinct(n)).unwrap();
    assert_eq!(i2t.r1, 0.0, "{i2t:?}");
    assert_eq!(i2t.r10, 0.0, "all 19 others tie with the partner: {i2t:?}");
    // Every text asks the same question, so one image at most is the answer at rank 1.
    assert!(t2i.r1 <= 1.0 / n as f64, "{t2i:?}");
    // Up to 10 examples, all of them fit in the top 10 however they are ranked.
    let (i2t, _) = retrieval(
        &image.narrow(0, 0, 10),
        &text.narrow(0, 0, 10),
        &distinct(10),
    )
    .unwrap();
    assert_eq!((i2t.r1, i2t.r5, i2t.r10), (0.0, 0.0, 1.0));
    // One example has no competitor: R@1 = 1 = 1/n.
    let (i2t, t2i) = retrieval(&image.narrow(0, 0, 1), &text.narrow(0, 0, 1), &[0]).unwrap();
    assert_eq!((i2t.r1, t2i.r1), (1.0, 1.0));
}

#[test]
fn equal_class_embeddings_classify_nothing() {
    tch::manual_seed(1);
    let image = integers(12, 8);
    let classes = integers(1, 8).expand([7, 8], false).contiguous();
    let labels: Vec<i64> = (0..12).map(|i| i % 7).collect();
    let apart: Vec<i64> = (0..7).collect();
    assert_eq!(
        zero_shot_accuracy(&image, &classes, &labels, &apart),
        (0.0, 0.0)
    );
    // With no more classes than k, top-k always holds the truth.
    let few = classes.narrow(0, 0, 4);
    let labels: Vec<i64> = (0..12).map(|i| i % 4).collect();
    assert_eq!(
        zero_shot_accuracy(&image, &few, &labels, &apart[..4]),
        (0.0, 1.0)
    );
}

#[test]
fn an_oracle_is_still_perfect() {
    tch::manual_seed(2);
    let n = 600; // over one ranking block
    let image = random_unit(n, 32);
    let (i2t, t2i) = retrieval(&image, &image, &distinct(n)).unwrap();
    assert_eq!((i2t.r1, t2i.r1), (1.0, 1.0));
    let classes = random_unit(9, 32);
    let labels: Vec<i64> = (0..9).collect();
    assert_eq!(
        zero_shot_accuracy(&classes, &classes, &labels, &labels),
        (1.0, 1.0)
    );
}

#[test]
fn a_shared_caption_is_a_hit_both_ways_and_is_counted() {
    // Images 0 and 1 are both "A frog.", so texts 0 and 1 are one embedding, between them; image
    // 1 leans towards it, so text 0 finds image 1 first. (Small integers: exact ties.)
    let rows = |r: &[f32]| Tensor::from_slice(r).reshape([3, 3]);
    let image = rows(&[1.0, 0.0, 0.0, 1.0, 2.0, 0.0, 0.0, 0.0, 1.0]);
    let text = rows(&[1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0]);
    // Token ids as the eval set holds them: "A frog." twice, then another caption.
    let ids = Tensor::from_slice(&[40i64, 41, 1, 0, 40, 41, 1, 0, 50, 51, 52, 1]).reshape([3, 4]);
    let last = Tensor::from_slice(&[2i64, 2, 3]);
    let captions = caption_groups(&ids, &last).unwrap();
    assert_eq!(duplicate_captions(&captions), 2);
    let (i2t, t2i) = retrieval(&image, &text, &captions).unwrap();
    assert_eq!((i2t.r1, t2i.r1), (1.0, 1.0), "{i2t:?} {t2i:?}");
    // Taken as different captions, the tie (image→text) and the swap (text→image) are misses,
    // and the two directions disagree.
    let (i2t, t2i) = retrieval(&image, &text, &distinct(3)).unwrap();
    assert_eq!(i2t.r1, 1.0 / 3.0, "{i2t:?}");
    assert_eq!(t2i.r1, 2.0 / 3.0, "{t2i:?}");
}

#[test]
fn mismatched_shapes_are_refused() {
    let image = random_unit(3, 4);
    let err = retrieval(&image, &random_unit(2, 4), &distinct(3)).unwrap_err();
    assert!(matches!(err, jester::Error::Shape { .. }), "{err}");
    let err = retrieval(&image, &image, &distinct(2)).unwrap_err();
    assert!(matches!(err, jester::Error::Shape { .. }), "{err}");
}

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("jester-eval-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn jpeg(shade: u8) -> Vec<u8> {
    let img = RgbImage::from_fn(32, 32, |x, y| Rgb([shade, (x * 8) as u8, (y * 8) as u8]));
    let mut bytes = Cursor::new(Vec::new());
    img.write_to(&mut bytes, ImageFormat::Jpeg).unwrap();
    bytes.into_inner()
}

#[test]
fn an_eval_set_counts_its_duplicate_captions_and_writes_them_in_the_metrics() {
    tch::manual_seed(3);
    let dir = temp("dupes");
    let captions = [
        "A frog.",
        "a red cube",
        "A frog.",
        "two blue spheres",
        " a  frog.",
    ];
    let mut writer = ShardWriter::new(&dir.join("shards"), 100).unwrap();
    for (i, caption) in captions.iter().enumerate() {
        let meta = format!("{{\"class\": {}}}", i % 2);
        writer
            .write(
                &RawSample::new(format!("{i:04}"))
                    .with("jpg", jpeg(40 * i as u8))
                    .with("txt", *caption)
                    .with("json", meta),
            )
            .unwrap();
    }
    writer.finish().unwrap();
    let classes = dir.join("classes.json");
    std::fs::write(
        &classes,
        r#"{"classes": ["frog", "cube"], "templates": ["a photo of a {}."]}"#,
    )
    .unwrap();
    let tokenizer =
        TextTokenizer::train_bpe(captions.iter().map(|c| c.to_string()), 300, 1).unwrap();
    let mut config = TrainConfig::preset("tiny").unwrap();
    config.model.text.vocab_size = tokenizer.vocab_size();
    let model = TwoTower::new(&config.model, Device::Cpu).unwrap();

    let data = [dir.join("shards").to_str().unwrap().to_owned()];
    let set = EvalSet::load(&data, Some(&classes), &config, &tokenizer).unwrap();
    let metrics = set.evaluate(&model).unwrap();
    // The two "A frog."s, and " a  frog.": the tokenizer lowercases and collapses whitespace, so
    // the text tower cannot tell it from them.
    assert_eq!(metrics.duplicate_captions, 3, "{metrics:?}");
    assert_eq!(metrics.retrieval_examples, 5);
    assert_eq!(metrics.zero_shot_examples, 5);
    let json = serde_json::to_value(&metrics).unwrap();
    assert_eq!(json["duplicate_captions"], 3, "{json}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn classes_whose_prompts_tokenise_alike_answer_for_each_other() {
    // "Frog" and "frog" (class 0 and 2) read the same to a lowercasing tokenizer: their class
    // embeddings are equal, so each always ties with the other. Grouped, an image of either is
    // right when the shared embedding wins; ungrouped, both would always miss.
    tch::manual_seed(4);
    let dir = temp("tied-classes");
    let mut writer = ShardWriter::new(&dir.join("shards"), 100).unwrap();
    for i in 0..6u8 {
        let meta = format!("{{\"class\": {}}}", i % 3);
        writer
            .write(
                &RawSample::new(format!("{i:04}"))
                    .with("jpg", jpeg(40 * i))
                    .with("txt", "a photo of a frog")
                    .with("json", meta),
            )
            .unwrap();
    }
    writer.finish().unwrap();
    let classes = dir.join("classes.json");
    std::fs::write(
        &classes,
        r#"{"classes": ["Frog", "cube", "frog"], "templates": ["a photo of a {}.", "a {}"]}"#,
    )
    .unwrap();
    let tokenizer = TextTokenizer::train_bpe(
        ["a photo of a frog.", "a cube"]
            .iter()
            .map(|c| c.to_string()),
        300,
        1,
    )
    .unwrap();
    let mut config = TrainConfig::preset("tiny").unwrap();
    config.model.text.vocab_size = tokenizer.vocab_size();
    let model = TwoTower::new(&config.model, Device::Cpu).unwrap();
    let data = [dir.join("shards").to_str().unwrap().to_owned()];
    let set = EvalSet::load(&data, Some(&classes), &config, &tokenizer).unwrap();
    let metrics = set.evaluate(&model).unwrap();
    std::fs::remove_dir_all(dir).unwrap();
    assert_eq!(metrics.zero_shot_tied_classes, 2, "{metrics:?}");
    // The rule itself: three images, classes 0 and 2 one embedding, class 1 another.
    let image = Tensor::from_slice(&[1.0f32, 0.0, 1.0, 0.0, 0.0, 1.0]).reshape([3, 2]);
    let class = Tensor::from_slice(&[1.0f32, 0.0, 0.0, 1.0, 1.0, 0.0]).reshape([3, 2]);
    let labels = [0i64, 2, 1];
    assert_eq!(
        zero_shot_accuracy(&image, &class, &labels, &[0, 1, 0]),
        (1.0, 1.0)
    );
    // Taken apart, the images of classes 0 and 2 tie with each other and miss.
    let (top1, _) = zero_shot_accuracy(&image, &class, &labels, &[0, 1, 2]);
    assert!((top1 - 1.0 / 3.0).abs() < 1e-12, "{top1}");
}

#[test]
fn metrics_written_before_duplicates_were_counted_still_read() {
    let old = r#"{"zero_shot_top1": 0.5, "zero_shot_top5": 1.0, "zero_shot_examples": 4,
        "image_to_text": {"r1": 0.25, "r5": 1.0, "r10": 1.0},
        "text_to_image": {"r1": 0.5, "r5": 1.0, "r10": 1.0}, "retrieval_examples": 4}"#;
    let metrics: EvalMetrics = serde_json::from_str(old).unwrap();
    assert_eq!(
        (metrics.duplicate_captions, metrics.image_to_text.r1),
        (0, 0.25)
    );
}
