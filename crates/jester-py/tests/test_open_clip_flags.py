"""`python -m jester.open_clip`'s flags and the errors it gives before training starts, each naming
the flag to change and leaving no run folder behind; the sizes it derives (B from b and f in exact
decimal arithmetic); its CSV sampler against torch's RandomSampler."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile

import pytest
import torch

import jester
from jester.open_clip import main
from jester.open_clip.flags import FlagError, JestFlags, sizes
from open_clip_support import COMMON, CONFIG, command, env, require_open_clip

require_open_clip()


def run(tmp_path, *args: str) -> str:
    """main() in this process; the FlagError's message (the test fails if it trains)."""
    logs = tmp_path / "logs"
    argv = ["--jest-model-config", str(CONFIG), *COMMON, "--batch-size", "8",
            "--jest-logs", str(logs), "--name", "run", *args]  # fmt: skip
    with pytest.raises(FlagError) as error:
        main(argv)
    assert not (logs / "run").exists(), "refused before open_clip wrote anything"
    return str(error.value)


@pytest.mark.parametrize("f", ["1", "1.0", "-0.1", "abc", "inf", "nan"])
def test_a_filter_ratio_outside_0_1_is_refused(tmp_path, f):
    message = run(tmp_path, "--jest-filter-ratio", f, "--jest-score", "hard-learner")
    assert f"--jest-filter-ratio {f}" in message


def test_a_missing_reference_is_asked_for(tmp_path):
    assert "--jest-reference CACHE" in run(tmp_path, "--train-data", "x.csv")
    message = run(tmp_path, "--jest-reference-model", "RN50")
    assert "--jest-reference-pretrained" in message


def write_cache(path, keys: list[str]) -> str:
    writer = jester.ReferenceCacheWriter(str(path))
    unit = torch.nn.functional.normalize(torch.randn(len(keys), 8), dim=1)
    writer.append(keys, unit, unit)
    writer.finish(10.0, -10.0)
    return str(path)


def write_csv(path, images: list[str]) -> str:
    path.write_text("filepath\ttitle\n" + "".join(f"{k}\tcaption {k}\n" for k in images))
    return str(path)


def test_a_cache_without_a_csv_rows_key_is_refused(tmp_path):
    images = [f"r{i}.png" for i in range(10)]
    csv = write_csv(tmp_path / "data.csv", images)
    cache = write_cache(tmp_path / "cache.safetensors", [k for k in images if k != "r5.png"])
    message = run(tmp_path, "--train-data", csv, "--jest-reference", cache,
                  "--jest-super-batch", "10", "--jest-chunks", "4")  # fmt: skip
    assert f"--jest-reference {cache}" in message
    assert 'no row for 1 of the 10 training samples checked (first: "r5.png")' in message


def write_shard(path, keys: list[str]) -> str:
    """A webdataset shard of (KEY.png, KEY.txt) members; the key check reads only the headers."""
    with tarfile.open(path, "w") as tar:
        for key in keys:
            for ext, data in (("png", b"not decoded"), ("txt", f"caption {key}".encode())):
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return str(path)


def test_a_cache_without_one_shards_keys_is_refused_from_the_tar_headers(tmp_path):
    """A pool cache that lacks the second shard's samples (its provenance names no shards, so the
    keys are read from the tar headers)."""
    shards = [[f"s{s}-{i:03d}" for i in range(6)] for s in range(2)]
    for s, keys in enumerate(shards):
        write_shard(tmp_path / f"{s:05d}.tar", keys)
    cache = write_cache(tmp_path / "pool.safetensors", shards[0])
    message = run(tmp_path, "--train-data", str(tmp_path / "{00000..00001}.tar"),
                  "--train-num-samples", "12", "--jest-reference", cache,
                  "--jest-chunks", "4")  # fmt: skip
    assert f"--jest-reference {cache}" in message
    assert 'no row for 6 of the 12 training samples checked (first: "s1-000")' in message
    assert "--jest-skip-key-check" in message


def test_a_csv_with_an_image_on_two_rows_is_refused(tmp_path):
    """A multi-caption CSV (COCO style) keys two rows alike: one reference row for two captions."""
    csv = write_csv(
        tmp_path / "data.csv", ["a.png", "b.png", "a.png"] + [f"{i}.png" for i in range(9)]
    )
    cache = write_cache(tmp_path / "cache.safetensors", ["a.png", "b.png"])
    message = run(tmp_path, "--train-data", csv, "--jest-reference", cache, "--jest-chunks", "4")
    assert "--csv-img-key filepath: 1 values occur on more than one row" in message
    assert '(first: "a.png")' in message


def test_the_embed_command_refuses_a_csv_with_an_image_on_two_rows(tmp_path):
    from jester.open_clip.embed import main as embed

    csv = write_csv(tmp_path / "data.csv", ["a.png", "b.png", "b.png"])
    out = tmp_path / "cache.safetensors"
    with pytest.raises(FlagError, match='--csv-img-key filepath: .*"b.png"'):
        embed(["--model-config", str(CONFIG), "--model", "jester-tiny", "--train-data", csv,
               "--out", str(out), "--workers", "0", "--device", "cpu"])  # fmt: skip
    assert not out.exists()


def test_a_super_batch_larger_than_the_csv_is_refused(tmp_path):
    csv = write_csv(tmp_path / "data.csv", [f"{i}.png" for i in range(30)])
    message = run(tmp_path, "--train-data", csv, "--jest-score", "hard-learner",
                  "--jest-chunks", "4")  # fmt: skip
    assert "--jest-filter-ratio 0.8: the super-batch B = 40 is larger than the CSV's 30" in message


def test_an_online_reference_with_another_tokenizer_or_image_size_is_refused(tmp_path):
    """The online reference embeds the learner's own tokens and images."""
    tiny = json.loads(CONFIG.read_text())
    weights = tmp_path / "weights.pt"
    weights.write_bytes(b"never loaded: refused first")
    for name, edit, expected in (
        ("tiny-ctx16", ("text_cfg", "context_length", 16), "its context length is 16, the learner's 32"),
        ("tiny-48px", ("vision_cfg", "image_size", 48), "its image size is 48, the learner's 32"),
        ("tiny-vocab", ("text_cfg", "vocab_size", 1000), "its token table (text_cfg.vocab_size) is 1000"),
    ):  # fmt: skip
        config = json.loads(json.dumps(tiny))
        config[edit[0]][edit[1]] = edit[2]
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(config))
        message = run(tmp_path, "--train-data", "x.csv", "--jest-score", "hard-learner",
                      "--jest-chunks", "4", "--jest-model-config", str(path),
                      "--jest-reference-model", name, "--jest-reference-pretrained",
                      str(weights))  # fmt: skip
        assert f"--jest-reference-model {name}: {expected}" in message, message


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--jest-super-batch", "40", "--jest-filter-ratio", "0.8"],
         "--jest-super-batch and --jest-filter-ratio: give one of the two"),
        (["--logs", "elsewhere"], "--jest-logs and --logs: give one of the two"),
        (["--jest-method", "uniform", "--jest-super-batch", "40"],
         "--jest-super-batch 40: --jest-method uniform trains every sample it draws"),
        (["--jest-method", "uniform", "--jest-filter-ratio", "0.5"],
         "--jest-filter-ratio 0.5: --jest-method uniform"),
        (["--jest-seed", str(1 << 64)], "--jest-seed 18446744073709551616: must be in [0, 2^64)"),
    ],
)  # fmt: skip
def test_conflicting_flags_are_refused(tmp_path, args, expected):
    assert expected in run(tmp_path, "--jest-score", "hard-learner", *args)


@pytest.mark.parametrize("w", ["-0.5", "inf", "nan"])
def test_a_distillation_weight_below_0_or_not_finite_is_refused(tmp_path, w):
    assert f"--jest-distill {float(w)}: must be finite and >= 0" in run(
        tmp_path, "--jest-distill", w, "--jest-score", "hard-learner"
    )


def test_distillation_asks_for_a_reference_and_refuses_what_it_cannot_distil(tmp_path):
    """KD needs the reference's embeddings of the trained rows, also with uniform sampling and
    with a score that needs no reference; it refuses open_clip's accumulated loss, a second
    teacher, and data without sample keys."""
    for method in (["--jest-method", "uniform"], ["--jest-score", "hard-learner"]):
        message = run(tmp_path, *method, "--jest-distill", "0.3")
        assert "--jest-distill 0.3: distils from a reference: --jest-reference CACHE" in message
    images = [f"r{i}.png" for i in range(40)]
    csv = write_csv(tmp_path / "data.csv", images)
    cache = write_cache(tmp_path / "cache.safetensors", images)
    distil = ["--jest-method", "uniform", "--jest-reference", cache, "--jest-distill", "0.3"]
    message = run(tmp_path, *distil, "--train-data", csv, "--accum-freq", "2")
    assert "--jest-distill 0.3 with --accum-freq 2" in message
    message = run(tmp_path, *distil, "--train-data", csv, "--distill-model", "RN50",
                  "--distill-pretrained", cache)  # fmt: skip
    assert "--jest-distill 0.3 and open_clip's --distill-model" in message
    message = run(tmp_path, *distil, "--dataset-type", "synthetic")
    assert "--jest-distill 0.3 needs --train-data" in message


def test_more_chunks_than_a_rank_keeps_are_refused(tmp_path):
    message = run(tmp_path, "--jest-chunks", "9", "--jest-score", "hard-learner",
                  "--train-data", "x.csv")  # fmt: skip
    assert "--jest-chunks 9" in message and "at most 8" in message


def test_an_open_clip_other_than_the_pinned_one_is_refused(tmp_path, monkeypatch):
    from jester.open_clip import checks

    monkeypatch.setattr(checks, "open_clip_version", lambda: "3.2.0")
    message = run(tmp_path, "--jest-score", "hard-learner", "--train-data", "x.csv")
    assert "open_clip_torch 3.2.0" in message and "==3.3.0" in message
    assert "--jest-allow-other-open-clip" in message


def test_a_super_batch_the_ranks_cannot_share_is_refused_under_torchrun(tmp_path):
    """b = 2 x 4, f = 0.25: B = ceil(8 / 0.75) = 11 candidates cannot be split over 2 ranks."""
    logs = tmp_path / "logs"
    module = ["-m", "jester.open_clip", "--jest-model-config", str(CONFIG), *COMMON,
              "--batch-size", "4", "--jest-filter-ratio", "0.25", "--jest-score", "hard-learner",
              "--train-data", "x.csv", "--jest-logs", str(logs), "--name", "run"]  # fmt: skip
    done = subprocess.run(command(module, 2), env=env(), capture_output=True, text=True,
                          timeout=300, check=False)  # fmt: skip
    assert done.returncode != 0
    assert "--jest-filter-ratio 0.25: the super-batch B = 11 is not divisible by 2 ranks" in (
        done.stderr
    )
    assert not (logs / "run").exists()


def test_the_super_batch_is_computed_from_fs_decimal_digits():
    jest = JestFlags(filter_ratio="0.8")
    s = sizes(jest, 4096, 8)  # the paper's b = 32,768 on 8 ranks
    assert (s.batch, s.super_batch, s.local_super_batch) == (32_768, 163_840, 20_480)
    assert sizes(JestFlags(filter_ratio="0.9"), 64, 1).super_batch == 640
    assert sizes(JestFlags(filter_ratio="0.7"), 30, 1).super_batch == 100
    assert sizes(JestFlags(filter_ratio="0.25", chunks=4), 8, 1).super_batch == 11  # ceil(8 / 0.75)
    uniform = sizes(JestFlags(method="uniform"), 64, 2)
    assert uniform.super_batch == uniform.batch == 128
    assert sizes(JestFlags(super_batch=96, chunks=4), 16, 2).local_super_batch == 48
    with pytest.raises(FlagError, match="--jest-super-batch 20: smaller than the batch b = 32"):
        sizes(JestFlags(super_batch=20), 16, 2)
    with pytest.raises(FlagError, match="--jest-selection-groups 2: only for one process"):
        sizes(JestFlags(selection_groups=2), 16, 2)
    with pytest.raises(FlagError, match="--jest-selection-groups 3"):
        sizes(JestFlags(selection_groups=3, chunks=1), 16, 1)


def test_the_csv_sampler_of_one_rank_is_torchs_random_batch_sampler():
    """The same generator state gives the batches open_clip's DataLoader(shuffle=True) draws."""
    from torch.utils.data import BatchSampler, RandomSampler

    from jester.open_clip.data import GlobalBatchSampler

    torch.manual_seed(7)
    ours = list(GlobalBatchSampler(100, 16, 1, 0, batches=6))
    torch.manual_seed(7)
    theirs = list(BatchSampler(RandomSampler(range(100)), 16, drop_last=True))
    assert ours == theirs and len(ours) == 6


def test_help_lists_jesters_flags_and_open_clips(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "--jest-filter-ratio" in out and "--train-data" in out and "--siglip" in out


def test_the_package_runs_as_a_module():
    done = subprocess.run([sys.executable, "-m", "jester.open_clip", "--jest-filter-ratio", "2"],
                          env=env(), capture_output=True, text=True, check=False)  # fmt: skip
    assert done.returncode == 1
    assert "python -m jester.open_clip: error: --jest-filter-ratio 2: f must be in [0, 1)" in (
        done.stderr
    )
