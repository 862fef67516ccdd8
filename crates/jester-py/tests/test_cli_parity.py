"""`jester.select` picks exactly the indices `jester select` (the CLI) picks from the same
embeddings written as safetensors files: for joint and independent selection, the learnability and
hard-learner scores, the sigmoid and softmax losses, on raw and on already normalised embeddings,
and uniform selection. The CLI runs are started once per session, three at a time."""

from __future__ import annotations

import json
import math
import subprocess
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import pytest

import jester
from conftest import cli_env, random_pair, require_cli, write_embeddings

B, D, BATCH, CHUNKS, SEED, GAIN = 500, 32, 100, 5, 7, 50.0
LEARNER_TB = (10.0, -5.0)
REFERENCE_TB = (7.5, -2.25)


class Case(NamedTuple):
    method: str
    score: str
    loss: str
    normalised: bool = False

    @property
    def id(self) -> str:
        return "-".join([self.method, self.score, self.loss, "unit" if self.normalised else "raw"])

    @property
    def uses_reference(self) -> bool:
        return self.score != "hard_learner"


CASES = [
    Case(method, score, loss)
    for method in ("joint", "independent")
    for score in ("learnability", "hard_learner")
    for loss in ("sigmoid", "softmax")
] + [
    Case("joint", "learnability", "sigmoid", normalised=True),
    Case("uniform", "learnability", "sigmoid"),
]


def _inputs(normalised: bool):
    learner = random_pair(1, B, D, normalised=normalised)
    reference = random_pair(2, B, D, normalised=normalised)
    return learner, reference


@pytest.fixture(scope="session")
def cli_selections(tmp_path_factory):
    """{case id: the CLI's selection JSON} for every case, computed up front."""
    cli = require_cli()
    root = tmp_path_factory.mktemp("cli")
    files = {}
    for normalised in (False, True):
        (li, lt), (ri, rt) = _inputs(normalised)
        tag = "unit" if normalised else "raw"
        files[normalised] = (
            write_embeddings(root / f"learner-{tag}.safetensors", li, lt, *LEARNER_TB),
            write_embeddings(root / f"reference-{tag}.safetensors", ri, rt, *REFERENCE_TB),
        )

    def run(case: Case):
        learner, reference = files[case.normalised]
        out = root / f"{case.id}.json"
        args = [str(cli), "select", "--learner", str(learner)]
        if case.uses_reference:
            args += ["--reference", str(reference)]
        args += [
            "--out", str(out), "--batch", str(BATCH), "--chunks", str(CHUNKS),
            "--seed", str(SEED), "--gain", str(GAIN), "--device", "cpu",
            "--method", case.method, "--score", case.score.replace("_", "-"),
            "--loss", case.loss,
        ]  # fmt: skip
        done = subprocess.run(
            args, check=False, env=cli_env(), capture_output=True, text=True, timeout=300
        )
        if done.returncode != 0:
            return f"exit {done.returncode}: {done.stderr}"
        return json.loads(out.read_text())

    with ThreadPoolExecutor(max_workers=3) as pool:
        return dict(zip([c.id for c in CASES], pool.map(run, CASES)))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_select_matches_cli(case: Case, cli_selections):
    cli = cli_selections[case.id]
    if isinstance(cli, str):
        pytest.fail(f"jester select ({case.id}) failed: {cli}")
    (li, lt), (ri, rt) = _inputs(case.normalised)
    learner = jester.Embeddings(li, lt, *LEARNER_TB)
    reference = jester.Embeddings(ri, rt, *REFERENCE_TB) if case.uses_reference else None

    indices, summary = jester.select(
        learner,
        reference,
        BATCH,
        method=case.method,
        score=case.score,
        loss=case.loss,
        chunks=CHUNKS,
        gain=GAIN,
        summary=True,
        seed=SEED,
    )

    assert indices.tolist() == cli["indices"]
    assert summary["chunk_sizes"] == [end - start for start, end in cli["chunks"]]
    assert cli["settings"]["super_batch"] == B and cli["settings"]["batch"] == BATCH
    if case.score == "learnability":
        # The CLI always reports learnability; the package reports the score it selected by.
        assert math.isclose(summary["selected"], cli["score_selected"], rel_tol=1e-6)
        assert math.isclose(summary["uniform"], cli["score_superbatch_mean"], rel_tol=1e-6)
        if case.method != "uniform":
            assert summary["selected"] > summary["uniform"]


def test_parity_cases_are_not_trivial(cli_selections):
    """The settings are sensitive: different methods, scores and losses pick different batches
    (so that the parity above is not agreement on one fixed answer)."""
    picked = {tuple(sel["indices"]) for sel in cli_selections.values() if not isinstance(sel, str)}
    assert len(picked) >= len(CASES) - 1
