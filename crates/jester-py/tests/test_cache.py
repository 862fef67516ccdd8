"""Reference caches: `jester.ReferenceCacheWriter` appends rows in pieces and finishes the file
atomically; `jester.ReferenceCache` reads it back (length, width, provenance) and looks rows up by
sample key, normalised, in the order asked. Errors name the key or argument; a finished writer
refuses more work; `jester select` reads the same file."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch

import jester
from conftest import has_cuda, random_pair, run_cli, unit_rows, write_embeddings

N, D = 10, 16
KEYS = [f"sample-{i:03d}" for i in range(N)]


@pytest.fixture
def rows():
    return random_pair(8, N, D, normalised=False)


@pytest.fixture
def cache_path(tmp_path, rows):
    image, text = rows
    path = tmp_path / "reference.safetensors"
    writer = jester.ReferenceCacheWriter(path)
    writer.append(KEYS[:6], image[:6], text[:6])
    assert not path.exists(), "nothing appears before finish"
    writer.append(KEYS[6:], image[6:].double(), text[6:].half())
    assert writer.finish(7.5, -2.0) == path
    return path


def test_written_cache_reads_back(cache_path, rows):
    image, text = rows
    cache = jester.ReferenceCache(cache_path)
    assert len(cache) == N and cache.dim == D
    assert cache.provenance is None
    assert sorted(p.name for p in cache_path.parent.iterdir()) == [cache_path.name], "no temp files"

    asked = ["sample-007", "sample-000", "sample-003", "sample-007"]
    rows_asked = [7, 0, 3, 7]
    found = cache.lookup(asked)
    assert isinstance(found, jester.Embeddings)
    assert (len(found), found.dim, found.t, found.b) == (4, D, 7.5, -2.0)
    assert found.image.dtype == torch.float32 and found.image.device.type == "cpu"
    torch.testing.assert_close(found.image, unit_rows(image)[rows_asked])
    # The second append's text went in as float16.
    torch.testing.assert_close(
        found.text, unit_rows(torch.cat([text[:6], text[6:].half().float()]))[rows_asked]
    )
    norms = found.image.norm(dim=1)
    torch.testing.assert_close(norms, torch.ones(4))


def test_lookup_of_an_unknown_key_names_it(cache_path):
    cache = jester.ReferenceCache(cache_path)
    with pytest.raises(ValueError, match=r'no reference embedding for sample "nope"'):
        cache.lookup(["sample-001", "nope"])
    assert len(cache.lookup(["sample-001"])) == 1, "the cache still works"


def test_missing_keys_are_listed_without_a_lookup(cache_path):
    cache = jester.ReferenceCache(cache_path)
    assert cache.missing(["sample-001", "nope", "sample-000", "gone"]) == ["nope", "gone"]
    assert cache.missing(KEYS) == []


def test_lookup_of_an_unknown_device_names_it(cache_path):
    with pytest.raises(ValueError, match=r'^device = "tpu"'):
        jester.ReferenceCache(cache_path).lookup(KEYS[:2], device="tpu")


def test_lookup_rows_feed_select(cache_path):
    cache = jester.ReferenceCache(cache_path)
    reference = cache.lookup(KEYS)
    learner = jester.Embeddings(*random_pair(9, N, D), 10.0, -5.0)
    indices, summary = jester.select(learner, reference, 4, chunks=2)
    assert len(set(indices.tolist())) == 4 and summary["chunk_sizes"] == [2, 2]


def test_finished_writer_refuses_more(tmp_path, rows):
    image, text = rows
    writer = jester.ReferenceCacheWriter(tmp_path / "c.safetensors")
    writer.append(KEYS[:2], image[:2], text[:2])
    writer.finish(1.0, 0.0)
    with pytest.raises(ValueError, match="already finished"):
        writer.finish(1.0, 0.0)
    with pytest.raises(ValueError, match="already finished"):
        writer.append(KEYS[2:4], image[2:4], text[2:4])


def test_writer_argument_errors(tmp_path, rows):
    image, text = rows
    writer = jester.ReferenceCacheWriter(tmp_path / "c.safetensors")
    with pytest.raises(ValueError, match=r"^keys: 3 keys for 2 rows"):
        writer.append(KEYS[:3], image[:2], text[:2])
    with pytest.raises(TypeError, match=r"^image"):
        writer.append(KEYS[:2], image[:2].long(), text[:2])
    with pytest.raises(ValueError, match=r"image .* text"):
        writer.append(KEYS[:2], image[:2], text[:3])
    writer.append(KEYS[:2], image[:2], text[:2])
    with pytest.raises(ValueError, match="width changed"):
        writer.append(KEYS[2:4], image[2:4, :8], text[2:4, :8])
    with pytest.raises(ValueError, match=r'sample key "sample-000" appears twice'):
        writer.append(KEYS[:1], image[:1], text[:1])
    with pytest.raises(ValueError, match=r"^t = 0"):
        writer.finish(0.0, 0.0)
    # A refused finish leaves the writer usable.
    writer.finish(2.0, 0.5)
    cache = jester.ReferenceCache(tmp_path / "c.safetensors")
    assert len(cache) == 2 and cache.dim == D


def test_provenance_is_recorded(tmp_path, rows):
    image, text = rows
    shard = tmp_path / "shard-000.tar"
    shard.write_bytes(b"shard bytes" * 100)
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"weights")
    path = tmp_path / "c.safetensors"
    writer = jester.ReferenceCacheWriter(path)
    writer.append(KEYS, image, text)
    writer.finish(1.0, 0.0, shards=[shard], model=str(weights), tokenizer="bpe-v1")
    provenance = json.loads(jester.ReferenceCache(path).provenance)
    assert provenance["model"] == hashlib.sha256(b"weights").hexdigest()
    assert provenance["tokenizer"] == "bpe-v1"
    assert [s["name"] for s in provenance["shards"]] == ["shard-000.tar"]
    assert provenance["shards"][0]["bytes"] == shard.stat().st_size


def test_reading_a_file_without_keys_says_so(tmp_path, rows):
    image, text = rows
    path = write_embeddings(tmp_path / "plain.safetensors", image, text, 1.0, 0.0)
    with pytest.raises(ValueError, match="no `keys` metadata"):
        jester.ReferenceCache(path)
    with pytest.raises(OSError):
        jester.ReferenceCache(tmp_path / "missing.safetensors")
    with pytest.raises(OSError):
        jester.ReferenceCacheWriter(tmp_path / "no-such-dir" / "c.safetensors")


def test_cli_select_reads_the_cache(cache_path, tmp_path):
    """A cache is an ordinary safetensors file `jester select` reads: its selection equals the
    package's on the same rows."""
    out = tmp_path / "sel.json"
    run_cli(
        "select", "--learner", str(cache_path), "--score", "hard-learner", "--out", str(out),
        "--batch", "4", "--chunks", "2", "--seed", "5", "--device", "cpu",
    )  # fmt: skip
    learner = jester.ReferenceCache(cache_path).lookup(KEYS)
    indices, _ = jester.select(learner, None, 4, score="hard_learner", chunks=2, seed=5)
    assert indices.tolist() == json.loads(out.read_text())["indices"]


@pytest.mark.skipif(has_cuda(), reason="needs a machine without CUDA")
def test_lookup_on_a_missing_cuda_device_raises_and_keeps_the_cache(cache_path):
    cache = jester.ReferenceCache(cache_path)
    with pytest.raises(ValueError, match=r'^device = "cuda": libtorch sees 0 CUDA device'):
        cache.lookup(KEYS[:1], device="cuda")
    assert len(cache) == N, "the cache still works"


def test_lookup_on_cuda(cache_path):
    if not has_cuda():
        pytest.skip("no CUDA device: lookup(device='cuda') needs one")
    cache = jester.ReferenceCache(cache_path)
    on_gpu = cache.lookup(KEYS[:3], device="cuda")
    assert on_gpu.image.device.type == "cuda"
    torch.testing.assert_close(on_gpu.image.cpu(), cache.lookup(KEYS[:3]).image)


def test_rejected_append_leaves_the_writer_consistent(tmp_path, rows):
    image, text = rows
    path = tmp_path / "c.safetensors"
    writer = jester.ReferenceCacheWriter(path)
    writer.append(KEYS[:2], image[:2], text[:2])
    with pytest.raises(ValueError, match="appears twice"):
        writer.append([KEYS[2], KEYS[0]], image[2:4], text[2:4])
    writer.finish(1.0, 0.0)
    assert len(jester.ReferenceCache(path)) == 2


@pytest.mark.parametrize("bad", ["nan-row", "b-nan"])
def test_writer_refuses_values_the_reader_refuses(tmp_path, rows, bad):
    image, text = rows
    path = tmp_path / "c.safetensors"
    writer = jester.ReferenceCacheWriter(path)
    writer.append(KEYS[:2], image[:2], text[:2])
    if bad == "nan-row":
        with pytest.raises(ValueError, match="image"):
            writer.append(KEYS[2:3], image[2:3] * float("nan"), text[2:3])
    else:
        with pytest.raises(ValueError, match="^b"):
            writer.finish(1.0, float("nan"))
