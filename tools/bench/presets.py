"""jester's presets as `jester bench flops --out` writes them (crates/jester-cli/src/bench_flops.rs):
each model's resolved shapes and its analytic forward FLOPs, so the benchmark tools build and count
the same models as the Rust code instead of copying the numbers."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def cli() -> Path:
    """The jester binary: $JESTER_CLI, else the debug build."""
    path = Path(os.environ.get("JESTER_CLI", REPO / "target/debug/jester"))
    if not path.exists():
        raise SystemExit(f"no jester CLI at {path}: build it (cargo build -p jester-cli) or set JESTER_CLI")
    return path


def presets(names: list[str], *settings: str) -> dict[str, dict]:
    """{name: row} for each preset (or config file), with `--set` `settings` applied; a row holds
    `model` (image: image_size, patch_size, width, depth, heads, mlp_dim; text: context_length,
    vocab_size, width, depth, heads, mlp_dim; embed_dim), `image_forward`, `text_forward`, …"""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "flops.json"
        command = [str(cli()), "bench", "flops", "--configs", ",".join(names), "--out", str(out)]
        for setting in settings:
            command += ["--set", setting]
        subprocess.run(command, check=True, capture_output=True, text=True)
        return {row["config"]: row for row in json.loads(out.read_text())}
