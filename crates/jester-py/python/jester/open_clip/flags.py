"""The ``--jest-*`` flags of ``python -m jester.open_clip``, parsed before open_clip sees the rest.

Names follow ``jester train``'s with a ``--jest-`` prefix. Everything that is not a ``--jest-`` flag
is handed to ``open_clip_train.main`` unchanged, in order. Sizes that need open_clip's own settings
(its per-rank ``--batch-size``, the world size) are derived and checked in :func:`sizes`.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, fields
from decimal import Decimal, InvalidOperation
from pathlib import Path

PROG = "python -m jester.open_clip"
DEFAULT_FILTER = "0.8"
SEED_LIMIT = 1 << 64  # jester.select takes any u64 seed
# jester train's names -> the jester.select arguments they mean.
METHODS = {"uniform": "uniform", "jest": "joint", "independent": "independent"}
SCORES = {
    "learnability": "learnability",
    "hard-learner": "hard_learner",
    "easy-reference": "easy_reference",
}


class FlagError(SystemExit):
    """A flag (or its combination with open_clip's settings) that cannot run: the message names
    the flag. A SystemExit, so the command prints it and exits 1 without a traceback."""

    def __init__(self, message: str):
        super().__init__(f"{PROG}: error: {message}")


@dataclass(frozen=True)
class JestFlags:
    method: str = "jest"
    filter_ratio: str | None = None  # as typed (B from its decimal digits); None: DEFAULT_FILTER
    super_batch: int | None = None
    reference: Path | None = None
    reference_model: str | None = None
    reference_pretrained: str | None = None
    score: str = "learnability"
    loss: str = "auto"
    chunks: int = 16
    gain: float = 100.0
    distill: float = 0.0  # the KD term's weight (0: off)
    seed: int | None = None
    selection_groups: int = 1
    model_config: tuple[Path, ...] = ()
    logs: str | None = None
    log_keys: bool = False
    skip_key_check: bool = False
    allow_other_open_clip: bool = False

    @property
    def filter_text(self) -> str:
        """f as typed, or the default."""
        return DEFAULT_FILTER if self.filter_ratio is None else self.filter_ratio

    @property
    def scores(self) -> bool:
        """Whether each step scores a super-batch (every method but uniform)."""
        return self.method != "uniform"

    @property
    def needs_reference(self) -> bool:
        return (self.scores and self.score != "hard-learner") or self.distills

    @property
    def distills(self) -> bool:
        """Whether the loss adds the distillation from the reference on the trained batch."""
        return self.distill > 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        add_help=False,
        allow_abbrev=False,  # an open_clip flag must never be taken for a prefix of ours
        description="open_clip's own trainer (open_clip_train.main) with the trained batch "
        "chosen by JEST. Every flag that is not listed here goes to open_clip_train "
        "(`python -m open_clip_train.main --help`).",
    )
    add = p.add_argument
    add("-h", "--help", action="store_true", help="show this help and open_clip's")
    add(
        "--jest-method",
        choices=sorted(METHODS),
        default="jest",
        help="jest (joint selection, default), independent, or uniform (plain open_clip)",
    )
    add(
        "--jest-filter-ratio",
        metavar="F",
        help=f"f in [0, 1): each step draws B = ceil(b / (1 - f)) candidates (default {DEFAULT_FILTER})",
    )
    add(
        "--jest-super-batch",
        type=int,
        metavar="B",
        help="the global super-batch B itself, instead of --jest-filter-ratio",
    )
    add(
        "--jest-reference",
        type=Path,
        metavar="CACHE",
        help="reference embeddings by sample key (`python -m jester.open_clip.embed`, "
        "`jester embed` or jester.ReferenceCacheWriter)",
    )
    add(
        "--jest-reference-model",
        metavar="NAME",
        help="score the reference online with this frozen open_clip model instead of a cache",
    )
    add(
        "--jest-reference-pretrained",
        metavar="PATH",
        help="the --jest-reference-model's weights: a local file (nothing is downloaded)",
    )
    add("--jest-score", choices=sorted(SCORES), default="learnability")
    add(
        "--jest-loss",
        choices=("auto", "sigmoid", "softmax"),
        default="auto",
        help="the pairwise loss scores are computed with (auto: sigmoid with --siglip, "
        "softmax otherwise, as open_clip trains)",
    )
    add("--jest-chunks", type=int, default=16, metavar="N", help="chunks of joint selection")
    add("--jest-gain", type=float, default=100.0, help="scores x gain before sampling")
    add(
        "--jest-distill",
        type=float,
        default=0.0,
        metavar="W",
        help="add W x the distillation from the reference on the trained batch to open_clip's "
        "loss (ACED's KD: softmax KD both ways for CLIP, per-pair binary KL for --siglip; "
        "jester.distill_loss); needs a reference; 0 = off (default)",
    )
    add(
        "--jest-seed",
        type=int,
        metavar="S",
        help="selection seed (default: open_clip's --seed); the step's seed follows the step",
    )
    add(
        "--jest-selection-groups",
        type=int,
        default=1,
        metavar="G",
        help="one process only: select as a G-rank run would (its single-process twin)",
    )
    add(
        "--jest-model-config",
        type=Path,
        action="append",
        default=[],
        metavar="JSON",
        help="register an open_clip model config file (the model name is its stem)",
    )
    add(
        "--jest-logs",
        metavar="DIR",
        help="open_clip's --logs (give one of the two); under torchrun `--logs` after `-m MODULE` "
        "is taken for torchrun's --logs-specs",
    )
    add(
        "--jest-log-keys",
        action="store_true",
        help="write each step's candidate and selected sample keys to jest-keys/rank*.jsonl",
    )
    add(
        "--jest-skip-key-check",
        action="store_true",
        help="do not check before training that the cache holds every training sample's key",
    )
    add(
        "--jest-allow-other-open-clip",
        action="store_true",
        help="run on an open_clip_torch other than the pinned release (untested)",
    )
    return p  # fmt: skip


def parse(argv: list[str]) -> tuple[JestFlags, list[str], bool]:
    """(jester's flags, open_clip's arguments, whether help was asked for). Raises FlagError."""
    p = parser()
    ns, rest = p.parse_known_args(argv)
    if ns.help:
        p.print_help()
        return JestFlags(), ["--help"], True
    unknown = [a for a in rest if a.startswith(("--jest-", "--jest_"))]
    if unknown:
        raise FlagError(f"unknown flag {unknown[0]} (see {PROG} --help)")
    # Every field of JestFlags is the flag --jest-<field> (argparse's dest jest_<field>).
    values = {f.name: getattr(ns, f"jest_{f.name}") for f in fields(JestFlags)}
    flags = JestFlags(**{**values, "model_config": tuple(values["model_config"])})
    validate(flags)
    if flags.logs is not None:
        if any(a == "--logs" or a.startswith("--logs=") for a in rest):
            raise FlagError("--jest-logs and --logs: give one of the two (the same open_clip flag)")
        rest = [*rest, "--logs", flags.logs]
    return flags, rest, False


def filter_fraction(text: str) -> tuple[int, int]:
    """f as the exact fraction p/q its decimal digits spell (B from f without float rounding)."""
    try:
        f = Decimal(text)
    except InvalidOperation:
        raise FlagError(f"--jest-filter-ratio {text}: not a number") from None
    if not f.is_finite() or not (0 <= f < 1):
        raise FlagError(f"--jest-filter-ratio {text}: f must be in [0, 1)")
    p, q = f.as_integer_ratio()
    return p, q


def validate(flags: JestFlags) -> None:
    """The checks that need nothing from open_clip."""
    filter_fraction(flags.filter_text)
    if flags.super_batch is not None and flags.filter_ratio is not None:
        raise FlagError("--jest-super-batch and --jest-filter-ratio: give one of the two")
    if not flags.scores:
        for name, value in (("--jest-super-batch", flags.super_batch),
                            ("--jest-filter-ratio", flags.filter_ratio)):  # fmt: skip
            if value is not None:
                raise FlagError(
                    f"{name} {value}: --jest-method uniform trains every sample it draws (B = b)"
                )
    if flags.chunks < 1:
        raise FlagError(f"--jest-chunks {flags.chunks}: must be at least 1")
    if not flags.gain >= 0 or flags.gain == float("inf"):
        raise FlagError(f"--jest-gain {flags.gain}: must be finite and >= 0")
    if not flags.distill >= 0 or flags.distill == float("inf"):
        raise FlagError(f"--jest-distill {flags.distill}: must be finite and >= 0")
    if flags.seed is not None and not 0 <= flags.seed < SEED_LIMIT:
        raise FlagError(f"--jest-seed {flags.seed}: must be in [0, 2^64)")
    if flags.super_batch is not None and flags.super_batch < 1:
        raise FlagError(f"--jest-super-batch {flags.super_batch}: must be positive")
    if flags.selection_groups < 1:
        raise FlagError(f"--jest-selection-groups {flags.selection_groups}: must be >= 1")
    for path in flags.model_config:
        if not path.exists():
            raise FlagError(f"--jest-model-config {path}: no such file or folder")
    if flags.reference is not None and flags.reference_model is not None:
        raise FlagError("--jest-reference and --jest-reference-model: give one of the two")
    if (flags.reference_model is None) != (flags.reference_pretrained is None):
        raise FlagError(
            "--jest-reference-model and --jest-reference-pretrained go together "
            "(the model's name and its local weights file)"
        )
    if flags.reference_pretrained is not None and not Path(flags.reference_pretrained).is_file():
        raise FlagError(
            f"--jest-reference-pretrained {flags.reference_pretrained}: no such file "
            "(a local weights file; nothing is downloaded)"
        )
    if flags.reference is not None and not flags.reference.is_file():
        raise FlagError(f"--jest-reference {flags.reference}: no such file")
    if flags.distills and flags.reference is None and flags.reference_model is None:
        raise FlagError(
            f"--jest-distill {flags.distill}: distils from a reference: --jest-reference CACHE "
            "(or --jest-reference-model NAME --jest-reference-pretrained PATH)"
        )
    if flags.needs_reference and flags.reference is None and flags.reference_model is None:
        raise FlagError(
            f"--jest-method {flags.method} with --jest-score {flags.score} needs a reference: "
            "--jest-reference CACHE (or --jest-reference-model NAME --jest-reference-pretrained "
            "PATH)"
        )


@dataclass(frozen=True)
class Sizes:
    """b and B, global and per rank; W ranks (or G selection groups in one process)."""

    batch: int  # b, global
    super_batch: int  # B, global
    world: int
    groups: int  # the selection's groups: W, or --jest-selection-groups in one process

    @property
    def local_batch(self) -> int:
        return self.batch // self.world

    @property
    def local_super_batch(self) -> int:
        return self.super_batch // self.world


def sizes(flags: JestFlags, batch_size: int, world: int) -> Sizes:
    """b = W x open_clip's per-rank --batch-size; B = ceil(b / (1 - f)) (or --jest-super-batch);
    checked against the world size and the chunks. Raises FlagError naming the flag."""
    b = batch_size * world
    if flags.selection_groups > 1 and world > 1:
        raise FlagError(
            f"--jest-selection-groups {flags.selection_groups}: only for one process (a "
            f"{world}-rank run selects with {world} groups already)"
        )
    groups = world if world > 1 else flags.selection_groups
    if not flags.scores:
        return Sizes(b, b, world, groups)
    if flags.super_batch is not None:
        big, flag = flags.super_batch, f"--jest-super-batch {flags.super_batch}"
        if big < b:
            raise FlagError(f"{flag}: smaller than the batch b = {b} (--batch-size x ranks)")
    else:
        p, q = filter_fraction(flags.filter_text)
        big, flag = -(-b * q // (q - p)), f"--jest-filter-ratio {flags.filter_text}"
    if big % groups:
        what = f"{groups} ranks" if world > 1 else f"--jest-selection-groups {groups}"
        raise FlagError(
            f"{flag}: the super-batch B = {big} is not divisible by {what}; every rank draws "
            f"B / W candidates (b = {b})"
        )
    if b % groups:
        raise FlagError(
            f"--jest-selection-groups {groups}: does not divide the batch b = {b} (--batch-size)"
        )
    if flags.chunks > b // groups:
        who = "each rank keeps" if world > 1 else "each group keeps" if groups > 1 else "are kept"
        raise FlagError(
            f"--jest-chunks {flags.chunks}: more chunks than the {b // groups} examples {who} "
            f"per step (b = {b}); use at most {b // groups}"
        )
    return Sizes(b, big, world, groups)
