"""Checks made before training starts: the open_clip release, and that the reference cache holds
a row for every training sample (errors name the flag to change)."""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import tarfile
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import metadata

from .flags import FlagError

log = logging.getLogger("jester.open_clip")

OPEN_CLIP_VERSION = "3.3.0"  # examples/requirements.txt pins it; the hooks are written for it
IMAGE_EXTENSIONS = ("png", "jpg", "jpeg", "webp")  # the ones open_clip's pipeline decodes
_BLOCK = 65_536  # keys asked of the cache at a time (bounds the memory of a long key stream)


def open_clip_version() -> str | None:
    """The installed open_clip_torch release (None: not installed)."""
    try:
        return metadata.version("open_clip_torch")
    except metadata.PackageNotFoundError:
        return None


def check_open_clip(allow_other: bool) -> str:
    """The installed open_clip_torch release; an error unless it is the pinned one."""
    version = open_clip_version()
    if version is None:
        raise FlagError(
            f"open_clip_torch is not installed: `pip install open_clip_torch=={OPEN_CLIP_VERSION}` "
            "and its trainer's extras (the repo's examples/requirements.txt)"
        )
    if version != OPEN_CLIP_VERSION and not allow_other:
        raise FlagError(
            f"open_clip_torch {version} is installed; jester.open_clip hooks into the trainer "
            f"of open_clip_torch=={OPEN_CLIP_VERSION} (pinned in examples/requirements.txt). "
            "Install that release, or pass --jest-allow-other-open-clip to try this one untested"
        )
    if version != OPEN_CLIP_VERSION:
        log.warning("jester.open_clip: running on open_clip_torch %s, untested", version)
    return version


def shard_fingerprint(path: str) -> dict:
    """(name, bytes, SHA-256 of the first 64 KiB): how a jester cache records its shards."""
    with open(path, "rb") as f:
        head = f.read(1 << 16)
    return {
        "name": os.path.basename(path),
        "bytes": os.path.getsize(path),
        "head": hashlib.sha256(head).hexdigest(),
    }


def covered_by_provenance(provenance: str | None, shards: list[str]) -> bool:
    """Whether the cache says it embedded every one of ``shards`` (then it holds their keys)."""
    if not provenance:
        return False
    recorded = json.loads(provenance).get("shards") or []
    known = {(s["name"], s["bytes"], s["head"]) for s in recorded}
    for shard in shards:
        f = shard_fingerprint(shard)
        if (f["name"], f["bytes"], f["head"]) not in known:
            return False
    return True


def webdataset_keys(shards: Iterable[str]) -> Iterator[str]:
    """The keys of the samples open_clip would train on (a caption and an image), read from the tar
    headers alone: webdataset's key is the member path up to the file name's first dot."""
    from webdataset.tariterators import base_plus_ext

    for shard in shards:
        samples: dict[str, set[str]] = {}
        with tarfile.open(shard) as tar:
            for member in tar:
                if not member.isfile():
                    continue
                key, ext = base_plus_ext(member.name)
                if key is not None:
                    samples.setdefault(key, set()).add(ext.lower())
        for key, exts in samples.items():
            if "txt" in exts and any(e in exts for e in IMAGE_EXTENSIONS):
                yield key


@dataclass(frozen=True)
class KeyCheck:
    """One rank's share of the pre-training key check (summed over ranks with :meth:`merge`)."""

    checked: int = 0  # keys looked for in the cache
    missing: int = 0
    first: str | None = None  # the first missing key
    unchecked_shards: int = 0  # pipe:/URL shards: their keys are only seen as they are drawn
    example_unchecked: str | None = None

    @staticmethod
    def merge(parts: Iterable[KeyCheck]) -> KeyCheck:
        parts = list(parts)
        return KeyCheck(
            checked=sum(p.checked for p in parts),
            missing=sum(p.missing for p in parts),
            first=next((p.first for p in parts if p.first is not None), None),
            unchecked_shards=sum(p.unchecked_shards for p in parts),
            example_unchecked=next(
                (p.example_unchecked for p in parts if p.example_unchecked), None
            ),
        )

    @property
    def complete(self) -> bool:
        """Every training sample's key was found (none left to check as it is drawn)."""
        return self.missing == 0 and self.unchecked_shards == 0

    def error(self) -> str | None:
        if not self.missing:
            return None
        return (
            f"the cache has no row for {self.missing} of the {self.checked} training samples "
            f'checked (first: "{self.first}")'
        )


def count_missing(cache, keys: Iterable[str]) -> KeyCheck:
    """How many of ``keys`` the cache lacks (``ReferenceCache.missing``: no rows are read)."""
    checked, missing, first = 0, 0, None
    keys = iter(keys)
    while block := list(itertools.islice(keys, _BLOCK)):
        checked += len(block)
        lacking = cache.missing(block)
        missing += len(lacking)
        if lacking and first is None:
            first = lacking[0]
    return KeyCheck(checked=checked, missing=missing, first=first)


def is_local(url: str) -> bool:
    return "://" not in url and not url.startswith("pipe:") and os.path.isfile(url)


def check_shards(cache, shards: list[str]) -> KeyCheck:
    """The key check of webdataset ``shards``: read from their tar headers, unless the cache's
    provenance lists them all; shards that are not local files (pipe:, URLs) are not checked."""
    local = [s for s in shards if is_local(s)]
    remote = [s for s in shards if not is_local(s)]
    skipped = KeyCheck(unchecked_shards=len(remote), example_unchecked=next(iter(remote), None))
    if not local or covered_by_provenance(cache.provenance, local):
        return skipped
    return KeyCheck.merge([count_missing(cache, webdataset_keys(local)), skipped])


def duplicates(keys: list[str]) -> list[str]:
    """The keys that occur more than once, in order of first occurrence."""
    return [k for k, n in Counter(keys).items() if n > 1]


def refuse_duplicate_csv_keys(keys: list[str], flag: str, path: str) -> None:
    """A CSV row's key is its image path (--csv-img-key): two rows with one image (a multi-caption
    CSV, COCO or Flickr style) would share one reference row though their captions differ."""
    twice = duplicates(keys)
    if twice:
        raise FlagError(
            f"{flag}: {len(twice)} values occur on more than one row of {path} (first: "
            f'"{twice[0]}"); jester.open_clip keys a CSV row by its image path, so each must be '
            "unique: write one row per image (or make the paths unique), or use webdataset shards"
        )


@dataclass(frozen=True)
class TrainingData:
    """open_clip's --train-data as its ``get_dataset_fn`` reads it: webdataset shards, or the
    keys of a CSV's rows (the image path as the CSV has it)."""

    shards: list[str] | None = None
    csv_keys: list[str] | None = None


def training_data(args) -> TrainingData:
    from open_clip_train.data import expand_urls, get_csv_dataset, get_dataset_fn

    if get_dataset_fn(args.train_data, args.dataset_type) is get_csv_dataset:
        import pandas as pd

        frame = pd.read_csv(args.train_data, sep=args.csv_separator)
        return TrainingData(csv_keys=[str(k) for k in frame[args.csv_img_key].tolist()])
    urls = args.train_data
    if isinstance(urls, str):
        return TrainingData(shards=[u for part in urls.split("::") for u in expand_urls(part)[0]])
    return TrainingData(shards=expand_urls(urls)[0])


def check_share(cache, data: TrainingData, rank: int, world: int) -> KeyCheck:
    """Rank ``rank``'s share of the key check: every W-th shard (or CSV key) from the r-th, so the
    ranks scan in parallel and together cover everything once."""
    if data.csv_keys is not None:
        return count_missing(cache, data.csv_keys[rank::world])
    return check_shards(cache, data.shards[rank::world])
