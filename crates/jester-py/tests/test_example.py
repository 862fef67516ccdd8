"""examples/open_clip_jest.py runs end to end at its --smoke budget: it makes the tiny synthetic
shards with the CLI, trains an open_clip reference, caches its pool embeddings, trains uniform and
JEST learners and writes the three runs' held-out retrieval recalls. Skipped without open_clip
(examples/requirements.txt) or the CLI binary."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest

import jester
from conftest import CLI, REPO

EXAMPLE = REPO / "examples" / "open_clip_jest.py"
RUNS = ("reference", "uniform", "jest")


def test_open_clip_example_smoke(tmp_path):
    if importlib.util.find_spec("open_clip") is None:
        pytest.skip(
            "open_clip is not installed: `python -m pip install -r examples/requirements.txt` "
            "in this venv to run the example's test"
        )
    if not CLI.is_file():
        pytest.skip(
            f"jester CLI binary not found at {CLI} (the example makes its data with it): build it "
            "with `scripts/with-torch cargo build -p jester-cli` (or set JESTER_CLI)"
        )
    out = tmp_path / "results.json"
    env = dict(os.environ, JESTER_CLI=str(CLI), HF_HUB_OFFLINE="1")
    done = subprocess.run(
        [
            sys.executable,
            str(EXAMPLE),
            "--smoke",
            "--work",
            str(tmp_path / "work"),
            "--out",
            str(out),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"the example exited {done.returncode}:\n{done.stderr[-4000:]}"

    report = json.loads(out.read_text())
    assert report["settings"]["smoke"] is True
    assert report["settings"]["super_batch"] == 5 * report["settings"]["batch"]
    for run in RUNS:
        for direction in ("image_to_text", "text_to_image"):
            r1 = report["runs"][run][direction]["r1"]
            assert isinstance(r1, float) and 0.0 <= r1 <= 1.0, (run, direction, r1)
    assert report["eval"]["examples"] == 256

    # The reference cache is the format `jester train --reference` reads: every pool sample by
    # key, with its shards and the hashed weights and tokenizer files as provenance.
    cache = jester.ReferenceCache(report["reference_cache"])
    assert len(cache) == 1024 and cache.dim == report["settings"]["model_config"]["embed_dim"]
    provenance = json.loads(cache.provenance)
    assert len(provenance["shards"]) == 4
    assert len(cache.lookup(["000000000", "000001023"])) == 2
