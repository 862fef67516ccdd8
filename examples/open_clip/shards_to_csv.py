"""Unpacks webdataset shards into image files and a tab-separated CSV (columns `filepath`, `title`:
open_clip's defaults), the layout open_clip's `--dataset-type csv` trains on.

    python examples/open_clip/shards_to_csv.py synth/eval --out synth-eval-csv

A sample's key becomes its image's file name; the CSV's `filepath` column is the key
jester.open_clip looks CSV rows up by, so a cache made from this CSV
(`python -m jester.open_clip.embed --train-data DIR/data.csv`) matches it.
"""

from __future__ import annotations

import argparse
import csv
import tarfile
from pathlib import Path

from jester.open_clip.checks import IMAGE_EXTENSIONS


def shards_to_csv(shards: list[Path], out: Path) -> Path:
    """Writes OUT/images/KEY.EXT and OUT/data.csv; returns the CSV's path."""
    (out / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for shard in shards:
        samples: dict[str, dict[str, bytes]] = {}
        with tarfile.open(shard) as tar:
            for member in tar:
                name = member.name.rpartition("/")[2]
                if member.isfile() and "." in name:
                    key, ext = name.split(".", 1)
                    samples.setdefault(key, {})[ext.lower()] = tar.extractfile(member).read()
        for key, files in samples.items():
            ext = next((e for e in IMAGE_EXTENSIONS if e in files), None)
            if ext is None or "txt" not in files:
                continue
            image = out / "images" / f"{key}.{ext}"
            image.write_bytes(files[ext])
            caption = files["txt"].decode("utf-8").strip().replace("\t", " ").replace("\n", " ")
            rows.append((str(image), caption))
    path = out / "data.csv"
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, delimiter="\t", quoting=csv.QUOTE_NONE, escapechar="\\")
        writer.writerow(("filepath", "title"))
        writer.writerows(rows)
    return path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("shards", type=Path, help="a folder of .tar shards, or one .tar")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    shards = sorted(args.shards.glob("*.tar")) if args.shards.is_dir() else [args.shards]
    print(shards_to_csv(shards, args.out))


if __name__ == "__main__":
    main()
