//! Reference embeddings written streaming and read back by key.
use jester::cache::{EmbeddingCache, EmbeddingWriter};
use jester::provenance::Provenance;
use tch::{Device, Kind, Tensor};

fn unit_rows(n: i64, d: i64) -> Tensor {
    let x = Tensor::randn([n, d], (Kind::Float, Device::Cpu));
    &x / x.norm_scalaropt_dim(2, [1i64].as_slice(), true)
}

fn temp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("jester-cache-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn rows_come_back_by_key_with_t_and_b_and_select_reads_the_same_file() {
    tch::manual_seed(0);
    let dir = temp("roundtrip");
    let out = dir.join("ref.safetensors");
    let mut writer = EmbeddingWriter::create(&out).unwrap();
    let (i1, t1) = (unit_rows(3, 4), unit_rows(3, 4));
    let (i2, t2) = (unit_rows(2, 4), unit_rows(2, 4));
    writer
        .append(&["a".into(), "b".into(), "c".into()], &i1, &t1)
        .unwrap();
    assert!(!out.exists(), "nothing at the destination before finish");
    writer.append(&["d".into(), "e".into()], &i2, &t2).unwrap();
    writer.finish(12.5, -7.25, None).unwrap();
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "temporary files left: {leftovers:?}");

    let cache = EmbeddingCache::read(&out).unwrap();
    assert_eq!((cache.len(), cache.dim()), (5, 4));
    let got = cache
        .lookup(&["e".into(), "a".into()], Device::Cpu)
        .unwrap();
    assert_eq!((got.temperature(), got.bias()), (12.5, -7.25));
    let expected = Tensor::cat(&[i2.get(1).unsqueeze(0), i1.get(0).unsqueeze(0)], 0);
    assert!((got.image() - expected).abs().max().double_value(&[]) < 1e-6);
    // The same file is a valid `jester select` input.
    let plain = jester::io::read_safetensors(&out).unwrap();
    assert_eq!(plain.len(), 5);

    let err = cache
        .lookup(&["zz".into()], Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no reference embedding for sample \"zz\"") && err.contains("jester embed"),
        "{err}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn repeated_keys_are_refused() {
    let dir = temp("dupes");
    let mut writer = EmbeddingWriter::create(&dir.join("x.safetensors")).unwrap();
    writer
        .append(&["a".into()], &unit_rows(1, 4), &unit_rows(1, 4))
        .unwrap();
    let err = writer
        .append(&["a".into()], &unit_rows(1, 4), &unit_rows(1, 4))
        .unwrap_err()
        .to_string();
    assert!(err.contains("appears twice"), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_file_without_keys_is_refused_with_how_to_make_one() {
    let dir = temp("nokeys");
    let path = dir.join("plain.safetensors");
    let image = unit_rows(2, 3);
    let t = Tensor::from(10.0f32);
    let b = Tensor::from(-10.0f32);
    Tensor::write_safetensors(
        &[("image", &image), ("text", &image), ("t", &t), ("b", &b)],
        &path,
    )
    .unwrap();
    let err = EmbeddingCache::read(&path).err().unwrap().to_string();
    assert!(
        err.contains("no `keys` metadata") && err.contains("jester embed"),
        "{err}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_cache_of_other_shards_is_refused_naming_what_differs() {
    // Keys are split-local ("000000" in every split): only the provenance tells the splits apart.
    let dir = temp("provenance");
    let (curated, pool) = (dir.join("curated"), dir.join("pool"));
    std::fs::create_dir_all(&curated).unwrap();
    std::fs::create_dir_all(&pool).unwrap();
    std::fs::write(curated.join("00000.tar"), vec![7u8; 4096]).unwrap();
    std::fs::write(pool.join("00000.tar"), vec![9u8; 4096]).unwrap();
    std::fs::write(dir.join("model.safetensors"), b"weights").unwrap();
    std::fs::write(dir.join("tokenizer.json"), b"{}").unwrap();
    let provenance = Provenance::compute(
        &[curated.join("00000.tar")],
        &dir.join("model.safetensors"),
        &dir.join("tokenizer.json"),
        None,
    )
    .unwrap();
    let out = dir.join("ref.safetensors");
    let mut writer = EmbeddingWriter::create(&out).unwrap();
    writer
        .append(&["000000".into()], &unit_rows(1, 4), &unit_rows(1, 4))
        .unwrap();
    writer.finish(10.0, -10.0, Some(&provenance)).unwrap();

    let cache = EmbeddingCache::read(&out).unwrap();
    assert_eq!(cache.provenance(), Some(&provenance));
    cache.check_shards(&[curated.join("00000.tar")]).unwrap();
    let err = cache
        .check_shards(&[pool.join("00000.tar")])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("ref.safetensors") && err.contains("pool/00000.tar") && err.contains("differ"),
        "{err}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}
