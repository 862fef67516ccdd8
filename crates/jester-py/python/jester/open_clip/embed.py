"""``python -m jester.open_clip.embed``: a reference cache from any open_clip checkpoint on disk.

    python -m jester.open_clip.embed --model ViT-B-32 --pretrained /path/ckpt.pt \\
        --train-data 'shards/{000..127}.tar' --out reference-pool.safetensors

Every sample of the shards (or CSV rows) is embedded by the frozen model with open_clip's eval
preprocessing and written by key, streamed, in the format ``--jest-reference``, ``jester train
--reference`` and ``jester.ReferenceCache`` read; with its provenance (each shard's name, size and
head hash; the checkpoint's SHA-256; the tokenizer). Under torchrun every rank embeds its own
shards (CSV: its own rows) and rank 0 writes the file.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import torch

PROG = "python -m jester.open_clip.embed"
log = logging.getLogger("jester.open_clip")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    add = p.add_argument
    add("--model", required=True, help="an open_clip model name (or one --model-config adds)")
    add("--pretrained", default="", help="a local checkpoint or weights file (none: random)")
    add("--train-data", required=True, help="webdataset shards (brace ranges, '::') or a CSV")
    add("--out", required=True, type=Path, help="the cache to write (.safetensors)")
    add("--dataset-type", choices=("auto", "webdataset", "csv"), default="auto")
    add("--csv-separator", default="\t")
    add("--csv-img-key", default="filepath")
    add("--csv-caption-key", default="title")
    add("--batch-size", type=int, default=256)
    add("--workers", type=int, default=4, help="data loader workers per rank")
    add("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    add(
        "--precision",
        default=None,
        help="open_clip's --precision (default: amp on CUDA, fp32 otherwise)",
    )
    add(
        "--model-config",
        type=Path,
        action="append",
        default=[],
        metavar="JSON",
        help="register an open_clip model config file (the model name is its stem)",
    )
    add("--cache-dir", default=None)
    add("--allow-other-open-clip", action="store_true")
    return p  # fmt: skip


def _loader(args, preprocess, tokenizer, rank: int, world: int):
    """(loader of (images, texts, keys) batches of this rank's share, the shards embedded)."""
    from open_clip_train.data import expand_urls, get_csv_dataset, get_dataset_fn

    from .checks import refuse_duplicate_csv_keys
    from .data import KeyedCsv, keyed_webdataset

    ns = argparse.Namespace(
        val_data=args.train_data,
        val_num_samples=None,
        batch_size=args.batch_size,
        workers=args.workers,
        distributed=False,
        csv_separator=args.csv_separator,
        csv_img_key=args.csv_img_key,
        csv_caption_key=args.csv_caption_key,
    )
    make = get_dataset_fn(args.train_data, args.dataset_type)
    info = make(ns, preprocess, is_train=False, tokenizer=tokenizer)
    if make is get_csv_dataset:
        csv = info.dataloader.dataset
        keys = [str(k) for k in csv.images]
        refuse_duplicate_csv_keys(keys, f"--csv-img-key {args.csv_img_key}", args.train_data)
        per_rank = -(-len(csv) // world)
        rows = range(rank * per_rank, min(len(csv), (rank + 1) * per_rank))
        loader = torch.utils.data.DataLoader(
            torch.utils.data.Subset(KeyedCsv(csv), rows),
            batch_size=args.batch_size,
            num_workers=args.workers,
        )
        return loader, [args.train_data]
    keyed_webdataset(info, batch=args.batch_size, split_by_node=True)
    urls = args.train_data.split("::")
    return info.dataloader, [u for part in urls for u in expand_urls(part)[0]]


def _collective(device: torch.device) -> torch.device:
    from jester.distributed import collective_device

    return collective_device(None, device)


def _tokenizer_identity(tokenizer, model: str) -> str:
    from open_clip.tokenizer import SimpleTokenizer, default_bpe

    if isinstance(tokenizer, SimpleTokenizer):
        return default_bpe()  # a file: hashed into the provenance
    return f"open_clip tokenizer of {model}"


def embed(args) -> Path:
    from open_clip_train.distributed import init_distributed_device_so
    from open_clip_train.precision import get_autocast

    import jester

    from .models import frozen_model, temperature_and_bias

    env = init_distributed_device_so(device=args.device)
    rank, world, device = env["global_rank"], env["world_size"], torch.device(env["device"])
    precision = args.precision or ("amp" if device.type == "cuda" else "fp32")
    model, preprocess, tokenizer = frozen_model(
        args.model, args.pretrained, precision=precision, device=device, cache_dir=args.cache_dir
    )
    loader, shards = _loader(args, preprocess, tokenizer, rank, world)
    autocast = get_autocast(precision, device_type=device.type)
    writer = jester.ReferenceCacheWriter(str(args.out)) if rank == 0 else None
    batches, rows, started = iter(loader), 0, time.perf_counter()
    while True:
        batch = next(batches, None)
        part = None
        if batch is not None:
            images, texts, keys = batch
            with torch.inference_mode(), autocast():
                zi = model.encode_image(images.to(device), normalize=True).float().cpu()
                zt = model.encode_text(texts.to(device), normalize=True).float().cpu()
            part = (list(keys), zi, zt)
        # Rank 0 writes every rank's rows; the others learn only whether all are done.
        parts = [part]
        if world > 1:
            parts = [None] * world if rank == 0 else None
            torch.distributed.gather_object(part, parts, dst=0)
            done = torch.tensor([part is None], dtype=torch.int32, device=_collective(device))
            torch.distributed.all_reduce(done, op=torch.distributed.ReduceOp.MIN)
            if bool(done.item()):
                break
        elif part is None:
            break
        for p in parts or []:
            if p is not None:
                writer.append(*p)
                rows += len(p[0])
        if rank == 0 and rows and (rows // args.batch_size) % 50 == 0:
            log.info("embedded %d samples (%.0f/s)", rows, rows / (time.perf_counter() - started))
    if writer is None:
        return args.out
    t, b = temperature_and_bias(model)
    path = writer.finish(
        t,
        b,
        shards=shards,
        model=args.pretrained or f"{args.model} (random init)",
        tokenizer=_tokenizer_identity(tokenizer, args.model),
    )
    log.info("wrote %s: %d samples", path, rows)
    return Path(path)


def main(argv: list[str] | None = None) -> int:
    from .checks import check_open_clip
    from .flags import FlagError

    args = parser().parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s | %(levelname)s | %(message)s")
    check_open_clip(args.allow_other_open_clip)
    if args.pretrained and not Path(args.pretrained).is_file():
        raise FlagError(f"--pretrained {args.pretrained}: no such file (nothing is downloaded)")
    import open_clip

    for path in args.model_config:
        open_clip.add_model_config(path)
    embed(args)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
