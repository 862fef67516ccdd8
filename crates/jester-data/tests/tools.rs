//! `jester shards` tools: convert a folder with a captions file, inspect, split.
use std::io::Cursor;
use std::path::PathBuf;

use jester_data::expand_shards;
use jester_data::tools::convert::{convert, read_captions};
use jester_data::tools::inspect::inspect;
use jester_data::tools::split::{split, split_of};

fn workdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("jester-tools-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn png(w: u32, h: u32) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    image::RgbImage::from_pixel(w, h, image::Rgb([9, 99, 199]))
        .write_to(&mut out, image::ImageFormat::Png)
        .unwrap();
    out.into_inner()
}

#[test]
fn captions_files_in_every_format_and_with_bad_headers() {
    let d = workdir("captions");
    std::fs::write(
        d.join("c.csv"),
        "filename,caption\na.png,\"a cat, sitting\"\nb.png,a dog\n",
    )
    .unwrap();
    std::fs::write(
        d.join("c.tsv"),
        "image\ttext\na.png\ta cat, sitting\nb.png\ta dog\n",
    )
    .unwrap();
    std::fs::write(d.join("c.jsonl"), "{\"file\": \"a.png\", \"caption\": \"a cat, sitting\"}\n\n{\"file\": \"b.png\", \"caption\": \"a dog\"}\n").unwrap();
    let want = vec![
        ("a.png".to_owned(), "a cat, sitting".to_owned()),
        ("b.png".to_owned(), "a dog".to_owned()),
    ];
    for name in ["c.csv", "c.tsv", "c.jsonl"] {
        assert_eq!(read_captions(&d.join(name)).unwrap(), want, "{name}");
    }
    std::fs::write(d.join("bad.csv"), "path,label\na.png,cat\n").unwrap();
    let err = read_captions(&d.join("bad.csv")).unwrap_err().to_string();
    assert!(
        err.contains("bad.csv") && err.contains("caption column"),
        "{err}"
    );
    std::fs::write(d.join("bad.jsonl"), "{\"file\": \"a.png\"}\n").unwrap();
    let err = read_captions(&d.join("bad.jsonl")).unwrap_err().to_string();
    assert!(err.contains("line 1"), "{err}");
    assert!(read_captions(&d.join("c.xml")).is_err());
}

#[test]
fn convert_then_inspect_counts_everything() {
    let d = workdir("convert");
    let images = d.join("images");
    std::fs::create_dir_all(&images).unwrap();
    for i in 0..7 {
        std::fs::write(images.join(format!("{i}.png")), png(10 + i, 20)).unwrap();
    }
    std::fs::write(images.join("broken.png"), b"no png here").unwrap();
    let mut csv = String::from("file,caption\n");
    for i in 0..7 {
        csv += &format!("{i}.png,caption {i} with words\n");
    }
    csv += "missing.png,gone\nnotes.txt,text file\nbroken.png,a broken image\n5.png,\n";
    std::fs::write(d.join("captions.csv"), csv).unwrap();
    let report = convert(&images, &d.join("captions.csv"), &d.join("shards"), 3).unwrap();
    assert_eq!(
        (
            report.samples,
            report.missing_image,
            report.unsupported_extension,
            report.empty_caption
        ),
        (8, 1, 1, 1)
    );
    assert_eq!(report.shards.len(), 3);

    let shards = expand_shards(&[d.join("shards").display().to_string()]).unwrap();
    let (stats, sheet) = inspect(shards, 2, 4).unwrap();
    assert_eq!(stats.samples, 7);
    assert_eq!(
        stats.skipped.total(),
        1,
        "the broken png: {}",
        stats.skipped
    );
    assert_eq!(stats.distinct_captions, 7);
    assert_eq!((stats.image_width.min, stats.image_width.max), (10.0, 16.0));
    assert_eq!(stats.image_height.mean, 20.0);
    assert_eq!(stats.caption_words.mean, 4.0);
    assert_eq!(sheet.len(), 4);
    assert_eq!(sheet[0].1, "caption 0 with words");
}

#[test]
fn split_is_deterministic_by_key_and_near_the_fractions() {
    let d = workdir("split");
    let mut w = jester_data::ShardWriter::new(&d.join("in"), 100).unwrap();
    for i in 0..2000 {
        w.write(&jester_data::RawSample::new(format!("{i:06}")).with("txt", "x"))
            .unwrap();
    }
    let shards = w.finish().unwrap();
    let report = split(&shards, &d.join("out"), 0.1, 0.05, 7, 500).unwrap();
    assert_eq!(report.pool + report.curated + report.eval, 2000);
    assert!((150..250).contains(&report.curated), "{report:?}");
    assert!((60..140).contains(&report.eval), "{report:?}");
    // The same key always lands in the same split, whatever the shards.
    let again = split(&shards[..1], &d.join("again"), 0.1, 0.05, 7, 500).unwrap();
    let first100: Vec<&str> = (0..100)
        .map(|i| split_of(&format!("{i:06}"), 7, 0.1, 0.05))
        .collect();
    assert_eq!(
        again.eval,
        first100.iter().filter(|s| **s == "eval").count()
    );
    assert!(split(&shards, &d.join("bad"), 0.7, 0.5, 0, 10).is_err());
}
