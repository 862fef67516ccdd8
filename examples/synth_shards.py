"""Reading `jester data synth` shards in plain Python (tarfile + PIL), and making them with the
`jester` CLI (tools/bench/open_clip_speed.py reads its data with it)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Split:
    name: str
    shards: list[Path]
    keys: list[str]
    images: torch.Tensor  # [n, 3, H, W], open_clip's preprocessing
    ids: torch.Tensor  # [n, CONTEXT] token ids
    noise: list[
        str | None
    ]  # the generator's label per sample ("clean", "misaligned", ...)

    def __len__(self) -> int:
        return len(self.keys)


def sample_key(member: str) -> str:
    """WebDataset's key: the path up to the first dot of the file name (as jester's reader)."""
    folder, _, name = member.rpartition("/")
    stem = name.split(".", 1)[0]
    return f"{folder}/{stem}" if folder else stem


def read_samples(shard: Path) -> list[tuple[str, dict[str, bytes]]]:
    """The samples of one tar, members grouped by key, in file order."""
    samples: dict[str, dict[str, bytes]] = {}
    with tarfile.open(shard) as tar:
        for member in tar:
            if not member.isfile():
                continue
            name = member.name.rpartition("/")[2]
            if "." not in name:
                continue
            key, ext = sample_key(member.name), name.split(".", 1)[1].lower()
            samples.setdefault(key, {})[ext] = tar.extractfile(member).read()
    return list(samples.items())


def load_split(folder: Path, preprocess, tokenizer) -> Split:
    shards = sorted(folder.glob("*.tar"))
    if not shards:
        raise SystemExit(f"no .tar shards in {folder}")
    keys, images, captions, noise = [], [], [], []
    for shard in shards:
        for key, files in read_samples(shard):
            if "png" not in files or "txt" not in files:
                raise SystemExit(f"{shard}: sample {key} lacks a .png or a .txt")
            with Image.open(io.BytesIO(files["png"])) as image:
                images.append(preprocess(image.convert("RGB")))
            captions.append(files["txt"].decode("utf-8").strip())
            meta = json.loads(files["json"]) if "json" in files else {}
            noise.append(meta.get("noise"))
            keys.append(key)
    if len(set(keys)) != len(keys):
        raise SystemExit(f"{folder}: sample keys repeat across shards")
    return Split(
        folder.name, shards, keys, torch.stack(images), tokenizer(captions), noise
    )


def image_size_of(folder: Path) -> int:
    for key, files in read_samples(min(folder.glob("*.tar"))):
        with Image.open(io.BytesIO(files["png"])) as image:
            width, height = image.size
        if width != height or width % 8:
            raise SystemExit(
                f"{key}: {width}x{height} images; expected square, a multiple of 8"
            )
        return width
    raise SystemExit(f"{folder}: empty shard")


def find_cli() -> Path:
    cli = Path(os.environ.get("JESTER_CLI", REPO / "target" / "debug" / "jester"))
    if not cli.is_file():
        raise SystemExit(
            f"no jester CLI at {cli}: build it (`scripts/with-torch cargo build -p jester-cli`), "
            "set JESTER_CLI, or pass --data DIR"
        )
    return cli


def generate_data(out: Path) -> None:
    """`jester data synth --preset tiny --out OUT`, with this interpreter's libtorch."""
    env = dict(os.environ)
    torch_lib = str(Path(torch.__file__).parent / "lib")
    env["LD_LIBRARY_PATH"] = os.pathsep.join(
        p for p in [torch_lib, env.get("LD_LIBRARY_PATH", "")] if p
    )
    env.setdefault("RUST_LOG", "warn")
    command = [str(find_cli()), "data", "synth", "--preset", "tiny", "--out", str(out)]
    print("generating data:", " ".join(command), flush=True)
    subprocess.run(command, env=env, check=True)
