#!/usr/bin/env python3
"""Plain open_clip (`open_clip_train.main`, nothing of jester) with a model config file registered,
for which open_clip has no flag: `python examples/open_clip/plain_open_clip.py CONFIG.json [open_clip
flags]`. The baseline that examples/open_clip_jest.py and the tests compare `python -m
jester.open_clip` against."""

import sys

import open_clip


def main(argv: list[str]) -> int:
    open_clip.add_model_config(argv[0])
    from open_clip_train.main import main as train

    return train(argv[1:]) or 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
