"""JEST inside open_clip's own trainer (open_clip_torch 3.3.0, its ``open_clip_train``).

    python -m jester.open_clip [open_clip_train flags] --jest-filter-ratio 0.8 --jest-reference CACHE
    python -m jester.open_clip.embed --model NAME --pretrained CKPT --train-data SHARDS --out CACHE

The first runs ``open_clip_train.main`` with the batch it trains chosen by jester: open_clip's
loader draws super-batches of B = b / (1 - f) per rank with their sample keys, the learner embeds
them without autograd, the reference comes from a cache by key (or online from a frozen open_clip
model), ``jester.distributed.select`` chooses b across all ranks, and open_clip's own loss trains
on the selected rows. The second writes the reference cache from any open_clip checkpoint. See the
repo's README ("JEST in open_clip") and docs/PYTHON.md.
"""

from __future__ import annotations

import sys

from .checks import OPEN_CLIP_VERSION

__all__ = ["OPEN_CLIP_VERSION", "main"]


def main(argv: list[str] | None = None) -> int:
    """``python -m jester.open_clip ARGS``: returns the exit status. An error in the flags raises
    ``FlagError`` (a SystemExit: the command prints its message, which names the flag, and exits
    1), before open_clip writes anything."""
    from .checks import check_open_clip
    from .flags import parse

    flags, rest, asked_help = parse(sys.argv[1:] if argv is None else list(argv))
    check_open_clip(flags.allow_other_open_clip)
    from .trainer import run  # imports open_clip_train: after the version check

    return run(flags, rest, asked_help)
