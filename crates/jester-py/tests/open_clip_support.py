"""Helpers of the jester.open_clip tests: the tiny open_clip model config, `jester data synth`
shards and a CSV made from them, and launching `python -m jester.open_clip` (or plain
`open_clip_train.main`) in one process or under torchrun, gloo, one thread per process."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, run_cli

CONFIG = REPO / "examples" / "open_clip" / "jester-tiny.json"
MODEL = "jester-tiny"
# Deterministic preprocessing (a crop of the whole image), so ranks and processes that augment
# with different generators still see the same pixels.
COMMON = [
    "--model", MODEL, "--device", "cpu", "--precision", "fp32", "--lr", "1e-3", "--warmup", "2",
    "--log-every-n-steps", "1", "--report-to", "tensorboard", "--aug-cfg", "scale=(1.0,1.0)",
]  # fmt: skip
# Plain open_clip, with the tiny config registered (open_clip has no flag for a config file).
PLAIN = REPO / "examples" / "open_clip" / "plain_open_clip.py"


def require_open_clip() -> None:
    missing = [
        m for m in ("open_clip_train", "webdataset", "pandas", "tensorboard")
        if importlib.util.find_spec(m) is None
    ]  # fmt: skip
    if missing:
        pytest.skip(
            f"{', '.join(missing)} not installed: `python -m pip install -r "
            "examples/requirements.txt` in this venv (`make test-python` does)",
            allow_module_level=True,
        )


def env() -> dict[str, str]:
    e = dict(os.environ)
    e.update(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TORCH_CPP_LOG_LEVEL="ERROR")
    e.pop("TORCH_LOGS", None)
    return e


def synth(root: Path) -> Path:
    """`jester data synth --preset tiny`: pool/ (1,024 samples, 4 shards), curated-strong/, eval/."""
    out = root / "synth"
    run_cli("data", "synth", "--preset", "tiny", "--out", str(out))
    return out


def eval_csv(data: Path, root: Path) -> Path:
    """The eval shard as images and a CSV (examples/open_clip/shards_to_csv.py)."""
    path = REPO / "examples" / "open_clip" / "shards_to_csv.py"
    spec = importlib.util.spec_from_file_location("shards_to_csv", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.shards_to_csv(sorted((data / "eval").glob("*.tar")), root / "eval-csv")


def pool(data: Path) -> str:
    return str(data / "pool" / "{00000..00003}.tar")


def command(module_args: list[str], ranks: int) -> list[str]:
    if ranks == 1:
        return [sys.executable, *module_args]
    return [
        sys.executable, "-m", "torch.distributed.run", "--standalone",
        f"--nproc-per-node={ranks}", *module_args,
    ]  # fmt: skip


def jest(*args: str, ranks: int = 1, check: bool = True, timeout: float = 300):
    """`python -m jester.open_clip ARGS` (under torchrun with ranks > 1); output and status."""
    module = ["-m", "jester.open_clip", "--jest-model-config", str(CONFIG)]
    done = subprocess.run(
        command([*module, *args], ranks),
        env=env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check:
        assert done.returncode == 0, f"exit {done.returncode}:\n{done.stderr[-6000:]}"
    return done


def plain(*args: str, timeout: float = 300) -> None:
    done = subprocess.run(
        [sys.executable, str(PLAIN), str(CONFIG), *args],
        env=env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, (
        f"open_clip_train.main exit {done.returncode}:\n{done.stderr[-6000:]}"
    )


def jest_log(run: Path) -> dict[int, dict]:
    """jest.jsonl by step (a resumed run appends: the last record of a step wins)."""
    lines = (run / "jest.jsonl").read_text().splitlines()
    return {r["step"]: r for r in map(json.loads, lines)}


def key_log(run: Path, rank: int = 0) -> list[dict]:
    """--jest-log-keys: one record per super-batch drawn by ``rank``."""
    return [
        json.loads(x) for x in (run / "jest-keys" / f"rank{rank}.jsonl").read_text().splitlines()
    ]


def tiny_forward_flops() -> int:
    """FLOPs of one example's forward through examples/open_clip/jester-tiny.json's towers,
    from the config, as jester's flops.rs counts a transformer (2 per multiply-add): per block
    2·T·(4W² + 2·W·M) for the projections and MLP plus 2·2·T²·W for attention; the patch
    embedding 2·P·(3p²)·W; each tower's projection to D, 2·W·D. open_clip's ViT adds a class
    token: T = P + 1 image tokens (pooled by mean here, but the token is still there)."""
    cfg = json.loads(CONFIG.read_text())
    d, vision, text = cfg["embed_dim"], cfg["vision_cfg"], cfg["text_cfg"]

    def block(tokens: int, width: int, mlp: int) -> int:
        return 2 * tokens * (4 * width * width + 2 * width * mlp) + 4 * tokens * tokens * width

    p = vision["patch_size"]
    patches = (vision["image_size"] // p) ** 2
    w = vision["width"]
    image = (
        2 * patches * 3 * p * p * w
        + vision["layers"] * block(patches + 1, w, int(vision["mlp_ratio"] * w))
        + 2 * w * d
    )
    w = text["width"]
    caption = text["layers"] * block(text["context_length"], w, 4 * w) + 2 * w * d
    return image + caption


def scalars(run: Path) -> dict[str, dict[int, float]]:
    """The run's TensorBoard scalars: tag -> {step: value}."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0})
    acc.Reload()
    return {t: {e.step: e.value for e in acc.Scalars(t)} for t in acc.Tags()["scalars"]}
