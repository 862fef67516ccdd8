"""`python -m jester.open_clip` and `python -m jester.open_clip.embed` as real runs of open_clip's
own trainer (open_clip_torch 3.3.0) on `jester data synth` shards: CPU, gloo, a tiny model config,
one thread per process, nothing downloaded.

- with --jest-method uniform, the losses are plain open_clip_train.main's (CSV, one process), and
  2 ranks train the losses of one process with the same global batch; 2 JEST ranks train the keys,
  in order, of their one-process twin;
- a JEST run (1 and 2 ranks) writes open_clip's log, checkpoints and TensorBoard scalars plus
  jester's; killed (SIGKILL) and resumed from open_clip's checkpoint it trains the uninterrupted
  losses; the keys a 2-rank step trains are those jester.distributed.select picks from the
  embeddings of the step's candidates; with --accum-freq 2 jester logs at open_clip's steps;
- --jest-distill adds the KD term to open_clip's loss (uniform and JEST), exactly under 2 ranks;
- the embed command writes every pool sample by key with its provenance, on 1 and 2 ranks alike.
"""

from __future__ import annotations

import hashlib
import io
import json
import signal
import subprocess
import sys
import tarfile

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import jester
from open_clip_support import (
    COMMON,
    CONFIG,
    MODEL,
    command,
    env,
    eval_csv,
    jest,
    jest_log,
    key_log,
    plain,
    pool,
    require_open_clip,
    scalars,
    synth,
    tiny_forward_flops,
)

CSV_RUN = ["--epochs", "1", "--workers", "0", "--gather-with-grad", "--seed", "3"]
STEPS_PER_EPOCH = 8


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The shards, their eval CSV, a plain open_clip run on it (CLIP loss, one epoch of 8 steps of
    32) and a reference cache of the pool embedded from that run's checkpoint."""
    require_open_clip()
    root = tmp_path_factory.mktemp("open-clip")
    data = synth(root)
    csv = eval_csv(data, root)
    logs = root / "logs"
    plain(*COMMON, *CSV_RUN, "--train-data", str(csv), "--batch-size", "32",
          "--logs", str(logs), "--name", "plain")  # fmt: skip
    checkpoint = logs / "plain" / "checkpoints" / "epoch_1.pt"
    cache = root / "reference-pool.safetensors"
    done = subprocess.run(
        [sys.executable, "-m", "jester.open_clip.embed", "--model-config", str(CONFIG),
         "--model", MODEL, "--pretrained", str(checkpoint), "--train-data", pool(data),
         "--out", str(cache), "--workers", "0", "--batch-size", "100"],
        env=env(), capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    return {"root": root, "data": data, "csv": csv, "logs": logs, "cache": cache,
            "checkpoint": checkpoint}  # fmt: skip


def losses(run) -> list[float]:
    return [r["loss"] for _, r in sorted(jest_log(run).items())]


def test_uniform_trains_plain_open_clips_losses(world):
    logs = world["logs"]
    jest("--jest-method", "uniform", *COMMON, *CSV_RUN, "--train-data", str(world["csv"]),
         "--batch-size", "32", "--jest-logs", str(logs), "--name", "uniform")  # fmt: skip
    theirs = scalars(logs / "plain")["train/loss"]
    ours = scalars(logs / "uniform")["train/loss"]
    assert sorted(theirs) == list(range(STEPS_PER_EPOCH))
    assert ours == theirs, "the same data, initialisation and updates: the same float32 losses"
    assert losses(logs / "uniform") == pytest.approx([theirs[s] for s in range(8)], rel=1e-6)
    assert "jest/flops_step" in scalars(logs / "uniform")


def test_two_ranks_train_the_losses_of_one_process_with_their_global_batch(world):
    """open_clip's CLIP loss with --gather-with-grad: each rank's loss is the global batch's, and
    the averaged gradient is its gradient."""
    logs = world["logs"]
    args = [*COMMON, *CSV_RUN, "--train-data", str(world["csv"]), "--jest-method", "uniform",
            "--jest-logs", str(logs)]  # fmt: skip
    one = logs / "uniform"  # 32 a step: the run of the test above
    if not one.exists():
        jest(*args, "--batch-size", "32", "--name", "uniform")
    jest(*args, "--batch-size", "16", "--name", "two-ranks", ranks=2)
    assert len(losses(one)) == STEPS_PER_EPOCH
    torch.testing.assert_close(
        torch.tensor(losses(logs / "two-ranks")), torch.tensor(losses(one)), rtol=1e-5, atol=0
    )


@pytest.fixture(scope="module")
def csv_cache(world):
    """The reference cache of the CSV's rows (keyed by image path), from the plain run's
    checkpoint."""
    cache = world["root"] / "reference-csv.safetensors"
    done = subprocess.run(
        [sys.executable, "-m", "jester.open_clip.embed", "--model-config", str(CONFIG),
         "--model", MODEL, "--pretrained", str(world["checkpoint"]), "--train-data",
         str(world["csv"]), "--out", str(cache), "--workers", "0"],
        env=env(), capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    assert len(jester.ReferenceCache(str(cache))) == 256, "a CSV row's key: its image path"
    return cache


def test_two_jest_ranks_train_the_keys_and_losses_of_their_single_process_twin(world, csv_cache):
    """JEST on the CSV (every rank reads its slice of one global super-batch; the reference cache
    embedded from the CSV, keyed by image path): 2 ranks, and one process selecting with
    --jest-selection-groups 2 (the same quotas, the rows in the gathered order): the same keys
    in the same order (rank 0's rows, then rank 1's), so the same losses."""
    logs, cache = world["logs"], csv_cache
    args = [*COMMON, *CSV_RUN, "--train-data", str(world["csv"]), "--jest-logs", str(logs),
            "--jest-reference", str(cache), "--jest-chunks", "2", "--jest-log-keys"]  # fmt: skip
    jest(*args, "--batch-size", "8", "--name", "jest-two-ranks", ranks=2)
    jest(*args, "--batch-size", "16", "--jest-selection-groups", "2", "--name", "jest-twin")
    ranks = [key_log(logs / "jest-two-ranks", r) for r in (0, 1)]
    alone = key_log(logs / "jest-twin")
    assert len(alone) == len(ranks[0]) == len(ranks[1]) == 16
    for step, (a, b, t) in enumerate(zip(*ranks, alone)):
        assert a["candidates"] + b["candidates"] == t["candidates"], step
        assert a["selected"] + b["selected"] == t["selected"], f"step {step}: rows in gather order"
        assert {*a["selected"]} <= {*a["candidates"]} and {*b["selected"]} <= {*b["candidates"]}
    two, twin = jest_log(logs / "jest-two-ranks"), jest_log(logs / "jest-twin")
    assert sorted(two) == sorted(twin) == list(range(16))
    for key in ("loss", "learnability_selected"):
        torch.testing.assert_close(
            torch.tensor([two[s][key] for s in range(16)]),
            torch.tensor([twin[s][key] for s in range(16)]),
            rtol=1e-4,
            atol=0,
        )


def test_distillation_adds_its_term_to_open_clips_loss_and_two_ranks_distil_one_batch(
    world, csv_cache
):
    """--jest-distill 0.5 with uniform sampling (the CSV, CLIP loss, so softmax KD): open_clip's
    loss gains a `distill_loss` term, logged as open_clip logs each term; on step 0 (the same
    initial model and data as plain open_clip) the contrastive term is plain's and the total is
    their sum, later steps follow the KD's gradient. 2 ranks of 16 train the losses, KD term
    included, of one process of 32: the learner's features and the reference's rows are
    gathered, and DDP's mean gradient is the global KD's."""
    logs = world["logs"]
    args = [*COMMON, *CSV_RUN, "--train-data", str(world["csv"]), "--jest-method", "uniform",
            "--jest-reference", str(csv_cache), "--jest-distill", "0.5",
            "--jest-logs", str(logs)]  # fmt: skip
    jest(*args, "--batch-size", "32", "--name", "uniform-kd")
    jest(*args, "--batch-size", "16", "--name", "uniform-kd-two-ranks", ranks=2)
    plain_ = scalars(logs / "plain")
    one, two = scalars(logs / "uniform-kd"), scalars(logs / "uniform-kd-two-ranks")
    kd, clip, total = one["train/distill_loss"], one["train/contrastive_loss"], one["train/loss"]
    assert sorted(kd) == list(range(STEPS_PER_EPOCH))
    assert all(v > 0 for v in kd.values())
    assert clip[0] == plain_["train/contrastive_loss"][0], "step 0: the same model and rows"
    assert total[0] == pytest.approx(clip[0] + kd[0], rel=1e-6)
    assert clip[STEPS_PER_EPOCH - 1] != plain_["train/contrastive_loss"][STEPS_PER_EPOCH - 1]
    for tag in ("train/distill_loss", "train/loss"):
        steps = range(STEPS_PER_EPOCH)
        torch.testing.assert_close(torch.tensor([two[tag][s] for s in steps]),
                                   torch.tensor([one[tag][s] for s in steps]),
                                   rtol=1e-5, atol=0, msg=tag)  # fmt: skip
    # The KD's FLOPs (each rank's b x b logits of both models) are counted, no reference forward.
    f, d = tiny_forward_flops(), json.loads(CONFIG.read_text())["embed_dim"]
    records = jest_log(logs / "uniform-kd")
    assert records[0]["flops_step"] == 3 * f * 32 + 4 * 2 * 32 * 32 * d
    assert jest_log(logs / "uniform-kd-two-ranks")[0]["flops_step"] == (
        3 * f * 32 + 2 * 4 * 2 * 32 * 32 * d
    )


def test_without_gather_with_grad_the_kd_keeps_its_ratio_to_open_clips_loss(world, csv_cache):
    """open_clip's CLIP loss without --gather-with-grad gives each rank's own features alone their
    gradient, so DDP's mean gradient is 1/W of the global loss's; the KD gathers alike and keeps
    its ratio to the contrastive term. AdamW is blind to a common scale of the gradient (up to
    its eps), so 2 ranks then train the losses of one process; a KD gathered with its gradient
    here (W times the contrastive term's weight) does not."""
    logs = world["logs"]
    one = logs / "uniform-kd"  # the run of the test above: one process of 32
    run = [a for a in CSV_RUN if a != "--gather-with-grad"]
    args = [*COMMON, *run, "--train-data", str(world["csv"]), "--jest-method", "uniform",
            "--jest-reference", str(csv_cache), "--jest-distill", "0.5",
            "--jest-logs", str(logs)]  # fmt: skip
    if not one.exists():
        jest(*args, "--batch-size", "32", "--name", "uniform-kd")
    jest(*args, "--batch-size", "16", "--name", "uniform-kd-two-ranks-local", ranks=2)
    ours, theirs = scalars(logs / "uniform-kd-two-ranks-local"), scalars(one)
    for tag in ("train/contrastive_loss", "train/distill_loss"):
        steps = range(STEPS_PER_EPOCH)
        torch.testing.assert_close(torch.tensor([ours[tag][s] for s in steps]),
                                   torch.tensor([theirs[tag][s] for s in steps]),
                                   rtol=2e-4, atol=0, msg=tag)  # fmt: skip


def test_two_jest_ranks_distil_the_rows_of_their_single_process_twin(world, csv_cache):
    """JEST + KD (ACED's ACID + KD): the reference's rows given to the KD are those of the
    selected rows, in the order the step trains them: 2 ranks and their one-process twin train
    the same losses, KD term included."""
    logs = world["logs"]
    args = [*COMMON, *CSV_RUN, "--train-data", str(world["csv"]), "--jest-logs", str(logs),
            "--jest-reference", str(csv_cache), "--jest-chunks", "2",
            "--jest-distill", "1.0"]  # fmt: skip
    jest(*args, "--batch-size", "8", "--name", "jest-kd-two-ranks", ranks=2)
    jest(*args, "--batch-size", "16", "--jest-selection-groups", "2", "--name", "jest-kd-twin")
    two, twin = scalars(logs / "jest-kd-two-ranks"), scalars(logs / "jest-kd-twin")
    for tag in ("train/distill_loss", "train/loss"):
        assert sorted(two[tag]) == sorted(twin[tag]) == list(range(16)), tag
        torch.testing.assert_close(torch.tensor([two[tag][s] for s in range(16)]),
                                   torch.tensor([twin[tag][s] for s in range(16)]),
                                   rtol=1e-4, atol=0, msg=tag)  # fmt: skip


def jest_args(world, name: str, epochs: int = 3) -> list[str]:
    """JEST on the pool's webdataset shards: b = 16, f = 0.8 (B = 80), 8 steps an epoch."""
    return [
        *COMMON, "--train-data", pool(world["data"]), "--train-num-samples", "128",
        "--batch-size", "16", "--epochs", str(epochs), "--workers", "1", "--seed", "5",
        "--jest-reference", str(world["cache"]), "--jest-filter-ratio", "0.8",
        "--jest-chunks", "4", "--jest-logs", str(world["logs"]), "--name", name,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def uninterrupted(world):
    jest(*jest_args(world, "jest"))
    return world["logs"] / "jest"


def test_a_jest_run_writes_open_clips_logs_checkpoints_and_jesters_numbers(uninterrupted):
    run = uninterrupted
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "epoch_1.pt",
        "epoch_2.pt",
        "epoch_3.pt",
    ]
    text = (run / "out.log").read_text()
    assert "Train Epoch: 2" in text and "JEST step 23 (epoch 2): learnability" in text
    records = jest_log(run)
    assert sorted(records) == list(range(24))
    f = tiny_forward_flops()  # one example's forward through jester-tiny's two towers
    for step, r in records.items():
        assert r["flops_step"] == 3 * f * 16 + f * 80 and r["flops_uniform_step"] == 3 * f * 16
        assert r["flops_total"] == (step + 1) * r["flops_step"]
        assert r["examples_drawn"] == 80 * (step + 1)
        assert r["steps_timed"] == 1, "--log-every-n-steps 1: every step is its own window"
        seconds = [r[f"{p}_seconds"] for p in ("score", "select", "summary", "train")]
        assert min(seconds) > 0 and r["wait_seconds"] >= 0
    selected = [r["learnability_selected"] for r in records.values()]
    uniform = [r["learnability_uniform"] for r in records.values()]
    assert sum(s > u for s, u in zip(selected, uniform)) >= 20, "JEST picks learnable batches"
    tags = scalars(run)
    for tag in ("learnability_selected", "learnability_uniform", "score_seconds",
                "select_seconds", "summary_seconds", "wait_seconds", "train_seconds",
                "flops_total"):  # fmt: skip
        assert sorted(tags[f"jest/{tag}"]) == list(range(24)), tag
    assert tags["train/loss"] == pytest.approx({s: r["loss"] for s, r in records.items()})


def test_with_accum_freq_jester_logs_at_open_clips_steps(world):
    """--accum-freq 2: open_clip's step is two super-batches; jester's records, scalars and FLOPs
    are per open_clip step (W&B drops a step number that goes back), while each super-batch keeps
    its own selection seed (its number in the key log)."""
    args = jest_args(world, "accum", epochs=1)
    jest(*args, "--accum-freq", "2", "--jest-log-keys")
    run = world["logs"] / "accum"
    records, tags = jest_log(run), scalars(run)
    assert sorted(records) == sorted(tags["train/loss"]) == [0, 1, 2, 3]
    assert sorted(tags["jest/flops_total"]) == [0, 1, 2, 3]
    f = tiny_forward_flops()
    for step, r in records.items():
        assert r["flops_step"] == 2 * (3 * f * 16 + f * 80) and r["steps_timed"] == 1
        assert r["examples_drawn"] == 2 * 80 * (step + 1)
    keys = key_log(run)
    assert [(k["step"], k["batch"]) for k in keys] == [(b // 2, b) for b in range(8)]


KILLED = """
import os, signal, sys
import jester.open_clip.scoring as scoring
select = scoring.Scorer.__call__
def dying(self, model, images, texts, keys, step, summary):
    if step == 11:  # the fourth step of the second epoch: epoch_1.pt is on disk, epoch_2.pt is not
        os.kill(os.getpid(), signal.SIGKILL)
    return select(self, model, images, texts, keys, step, summary)
scoring.Scorer.__call__ = dying
from jester.open_clip import main
sys.exit(main(sys.argv[1:]))
"""


def test_killed_and_resumed_from_open_clips_checkpoint_it_trains_the_same_losses(
    world, uninterrupted
):
    args = ["--jest-model-config", str(CONFIG), *jest_args(world, "killed")]
    done = subprocess.run([sys.executable, "-c", KILLED, *args], env=env(),
                          capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert done.returncode == -signal.SIGKILL, done.stderr[-3000:]
    killed = world["logs"] / "killed"
    assert sorted(p.name for p in (killed / "checkpoints").iterdir()) == ["epoch_1.pt"]
    assert max(jest_log(killed)) == 10
    jest(*jest_args(world, "killed"), "--resume", "latest")
    assert "=> resuming checkpoint" in (killed / "out.log").read_text()
    resumed, full = jest_log(killed), jest_log(uninterrupted)
    assert sorted(resumed) == list(range(24))
    # From open_clip's epoch checkpoint: the same data, selections and updates.
    for step in range(8, 24):
        assert resumed[step]["loss"] == full[step]["loss"], step
        assert resumed[step]["learnability_selected"] == full[step]["learnability_selected"]
    assert max(p.name for p in (killed / "checkpoints").iterdir()) == "epoch_3.pt"


def _select_on_rank(rank, world, store_path, parts, options, out):
    store = dist.FileStore(store_path, world)
    dist.init_process_group("gloo", store=store, rank=rank, world_size=world)
    try:
        learner, reference = (jester.Embeddings(*p) for p in parts[rank])
        mine, _ = jester.distributed.select(learner, reference, **options)
        out[rank] = mine.tolist()
    finally:
        dist.destroy_process_group()


def _samples(data, keys: set[str]) -> dict[str, tuple]:
    """(PIL image, caption) of the pool samples with these keys."""
    from PIL import Image

    found = {}
    for shard in sorted((data / "pool").glob("*.tar")):
        with tarfile.open(shard) as tar:
            files = {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}
        for key in keys:
            if f"{key}.png" in files:
                image = Image.open(io.BytesIO(files[f"{key}.png"])).convert("RGB")
                found[key] = (image, files[f"{key}.txt"].decode().strip())
    return found


def test_two_ranks_train_the_keys_jester_distributed_select_picks(world, tmp_path):
    """Step 0 of a 2-rank SigLIP run: the learner is open_clip's seeded initialisation, so the
    test can embed the step's logged candidates itself and select with
    jester.distributed.select on two gloo ranks."""
    import numpy as np
    import open_clip
    from open_clip_train.main import random_seed

    from jester.open_clip.scoring import step_seed

    args = jest_args(world, "two-ranks-jest", epochs=1)
    args[args.index("--batch-size") + 1] = "8"
    args[args.index("--train-num-samples") + 1] = "64"
    jest(*args, "--siglip", "--jest-log-keys", ranks=2)
    run = world["logs"] / "two-ranks-jest"
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["epoch_1.pt"]
    assert sorted(jest_log(run)) == [0, 1, 2, 3] and "JEST step 3" in (run / "out.log").read_text()
    ranks = [key_log(run, r)[0] for r in (0, 1)]
    assert all(r["step"] == r["batch"] == 0 for r in ranks)
    assert all(len(r["candidates"]) == 40 and len(r["selected"]) == 8 for r in ranks)

    open_clip.add_model_config(CONFIG)
    random_seed(5, 0)  # as open_clip_train.main seeds before creating the model
    model, preprocess, _ = open_clip.create_model_and_transforms(
        MODEL, "", precision="fp32", device="cpu", output_dict=True,
        aug_cfg={"scale": (1.0, 1.0)}, init_logit_scale=np.log(10), init_logit_bias=-10,
    )  # fmt: skip
    tokenizer = open_clip.get_tokenizer(MODEL)
    samples = _samples(world["data"], {k for r in ranks for k in r["candidates"]})
    cache = jester.ReferenceCache(str(world["cache"]))
    parts = []
    model.eval()
    for r in ranks:
        images = torch.stack([preprocess(samples[k][0]) for k in r["candidates"]])
        texts = tokenizer([samples[k][1] for k in r["candidates"]])
        with torch.inference_mode():
            zi = model.encode_image(images, normalize=True)
            zt = model.encode_text(texts, normalize=True)
        ref = cache.lookup(r["candidates"])
        t, b = model.logit_scale.exp().item(), model.logit_bias.item()
        parts.append(((zi.clone(), zt.clone(), t, b), (ref.image, ref.text, ref.t, ref.b)))
    options = {"batch_size": 16, "chunks": 4, "seed": step_seed(5, 0), "loss": "sigmoid"}
    with mp.Manager() as manager:
        out = manager.dict()
        store = str(tmp_path / "store")
        mp.spawn(_select_on_rank, args=(2, store, parts, options, out), nprocs=2, join=True)
        picked = dict(out)
    for rank, r in enumerate(ranks):
        assert [r["candidates"][i] for i in picked[rank]] == r["selected"], rank


def test_the_embed_command_caches_every_pool_sample_with_its_provenance(world):
    cache = jester.ReferenceCache(str(world["cache"]))
    assert len(cache) == 1024 and cache.dim == 64
    provenance = json.loads(cache.provenance)
    assert [s["name"] for s in provenance["shards"]] == [f"0000{i}.tar" for i in range(4)]
    digest = hashlib.sha256(world["checkpoint"].read_bytes()).hexdigest()
    assert provenance["model"] == digest, "the checkpoint's SHA-256"
    state = torch.load(world["checkpoint"], map_location="cpu")["state_dict"]
    row = cache.lookup(["000000000"])
    assert row.t == pytest.approx(state["logit_scale"].exp().item()) and row.b == 0.0


def test_two_ranks_embed_what_one_process_embeds(world):
    out = world["root"] / "reference-2.safetensors"
    module = ["-m", "jester.open_clip.embed", "--model-config", str(CONFIG), "--model", MODEL,
              "--pretrained", str(world["checkpoint"]), "--train-data", pool(world["data"]),
              "--out", str(out), "--workers", "0", "--batch-size", "100"]  # fmt: skip
    done = subprocess.run(command(module, 2), env=env(), capture_output=True, text=True,
                          timeout=300, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    one, two = jester.ReferenceCache(str(world["cache"])), jester.ReferenceCache(str(out))
    assert len(two) == len(one) == 1024
    keys = [f"{i:09d}" for i in range(0, 1024, 7)]
    a, b = one.lookup(keys), two.lookup(keys)
    torch.testing.assert_close(b.image, a.image, rtol=0, atol=1e-5)
    torch.testing.assert_close(b.text, a.text, rtol=0, atol=1e-5)


def test_an_online_reference_selects_as_its_cache_does(world, uninterrupted):
    """--jest-reference-model embeds the candidates with the checkpoint the cache was made from:
    the same rows (open_clip's train and eval transforms agree on these whole-image crops), so the
    same selections and losses; its forward is counted in the step's FLOPs."""
    args = jest_args(world, "online")
    at = args.index("--jest-reference")
    args[at : at + 2] = [
        "--jest-reference-model", MODEL, "--jest-reference-pretrained", str(world["checkpoint"])
    ]  # fmt: skip
    jest(*args)
    online, cached = jest_log(world["logs"] / "online"), jest_log(uninterrupted)
    assert sorted(online) == sorted(cached)
    torch.testing.assert_close(
        torch.tensor([online[s]["loss"] for s in sorted(online)]),
        torch.tensor([cached[s]["loss"] for s in sorted(cached)]),
        rtol=1e-5,
        atol=0,
    )
    assert online[0]["flops_step"] == cached[0]["flops_step"] + tiny_forward_flops() * 80
