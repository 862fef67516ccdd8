"""``python -m jester.open_clip``: ``open_clip_train.main.main`` itself, with five of the names it
calls wrapped for the duration of the run (open_clip_torch 3.3.0; checked at start):

- ``init_distributed_device``: then jester's checks, before anything is written (sizes against the
  world size, the reference cache's keys, the online reference's tokenizer and image size, the
  open_clip settings JEST cannot run with);
- ``get_data``: the training loader hands over super-batches of B / W rows with their sample keys
  (``data.py``);
- ``create_loss``: open_clip's loss, its last value kept for jester's log;
- ``train_one_epoch``: seeds the epoch (so that a resumed run continues exactly) and trains on what
  ``SelectingLoader`` yields: the selected rows of each super-batch (``loop.py``);
- ``torch.nn.parallel.DistributedDataParallel``: a subclass that drops CPU ``device_ids`` (open_clip
  passes ``[device]``, which torch 2.11 refuses for a CPU module), so gloo runs work; a subclass, so
  ``isinstance`` checks against DDP (torch._dynamo's among them) still hold.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import replace
from pathlib import Path

import torch
from open_clip_train.data import CsvDataset

from . import flags as flags_mod
from .checks import KeyCheck, check_share, refuse_duplicate_csv_keys, training_data
from .data import keyed_csv, keyed_webdataset, mix, seed_everything
from .flags import FlagError, JestFlags
from .loop import Distiller, Flops, LossRecorder, SelectingLoader
from .metrics import MetricsLog
from .scoring import References, Scorer


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed every epoch starts from (epoch 0: open_clip's own, so a one-epoch uniform run is
    plain open_clip's exactly)."""
    return seed if epoch == 0 else mix(seed, epoch)


class Run:
    """The state one run's hooks share."""

    def __init__(self, flags: JestFlags, oc_main):
        self.flags, self.oc = flags, oc_main
        self.args = self.sizes = self.device = None
        self.cache = self.reference_model = None
        self.recorder: LossRecorder | None = None
        self.keyed = False
        self.keys_verified = False  # every training key found in the cache before training

    # -- hooks ------------------------------------------------------------------------------

    def init_distributed_device(self, args):
        device = self.original["init_distributed_device"](args)
        self.args, self.device = args, device
        self._check(args)
        return device

    def get_data(self, args, preprocess_fns, epoch=0, tokenizer=None):
        data = self.original["get_data"](args, preprocess_fns, epoch=epoch, tokenizer=tokenizer)
        if "train" not in data:
            return data
        train, sizes = data["train"], self.sizes
        self.keyed = True
        if train.shared_epoch is not None:  # webdataset
            keyed_webdataset(train, batch=sizes.local_super_batch, seed=args.seed, rank=args.rank)
        elif isinstance(getattr(train.dataloader, "dataset", None), CsvDataset):
            train = keyed_csv(
                train,
                batch=sizes.local_super_batch,
                trained=sizes.batch,
                world=sizes.world,
                rank=args.rank,
                workers=args.workers,
            )
        else:  # synthetic data: uniform only (checked), trained as open_clip does
            self.keyed = False
        return {**data, "train": train}

    def create_loss(self, args):
        loss = self.original["create_loss"](args)
        distiller = None
        if self.flags.distills:
            from open_clip.loss import SigLipLoss

            # The KD of the loss open_clip trains (its choice: CoCa trains a CLIP loss even with
            # --siglip), gathered as that loss gathers.
            siglip = isinstance(loss, SigLipLoss)
            distiller = Distiller(
                self.flags.distill,
                "sigmoid" if siglip else "softmax",
                args.world_size,
                gather_with_grad=siglip or args.gather_with_grad,
            )
        self.recorder = LossRecorder(loss, distiller)
        return self.recorder

    def train_one_epoch(
        self, model, data, loss, epoch, optimizer, scaler, scheduler, dist_model, args,
        tb_writer=None,
    ):  # fmt: skip
        seed_everything(epoch_seed(args.seed, epoch) + args.rank)
        if not self.keyed:
            return self.original["train_one_epoch"](
                model, data, loss, epoch, optimizer, scaler, scheduler, dist_model, args,
                tb_writer=tb_writer,
            )  # fmt: skip
        from open_clip import get_input_dtype
        from open_clip_train.precision import get_autocast

        autocast = get_autocast(args.precision, device_type=self.device.type)
        references = References(
            self.flags,
            self.sizes,
            device=self.device,
            autocast=autocast,
            cache=self.cache,
            model=self.reference_model,
            keys_verified=self.keys_verified,
        )
        scorer = None
        if self.flags.scores:
            scorer = Scorer(
                self.flags,
                self.sizes,
                siglip=args.siglip,
                seed=self.flags.seed if self.flags.seed is not None else args.seed,
                device=self.device,
                autocast=autocast,
                references=references,
            )
        loader = SelectingLoader(
            data["train"].dataloader,
            model=model,
            epoch=epoch,
            args=args,
            scorer=scorer,
            flops=Flops(
                self.sizes.batch,
                self.sizes.super_batch,
                self.flags.scores,
                self.reference_model,
                accum=args.accum_freq,
                distiller=self.recorder.distiller,
                world=self.sizes.world,
            ),
            recorder=self.recorder,
            log=MetricsLog(args, tb_writer, log_keys=self.flags.log_keys),
            input_dtype=get_input_dtype(args.precision),
            references=references,
        )
        data = {**data, "train": replace(data["train"], dataloader=loader)}
        return self.original["train_one_epoch"](
            model, data, loss, epoch, optimizer, scaler, scheduler, dist_model, args,
            tb_writer=tb_writer,
        )  # fmt: skip

    # -- checks and set-up --------------------------------------------------------------------

    def _check(self, args) -> None:
        flags = self.flags
        if args.horovod:
            raise FlagError(
                "--horovod: jester.open_clip selects across ranks with torch.distributed"
            )
        self.sizes = flags_mod.sizes(flags, args.batch_size, args.world_size)
        if flags.distills:
            self._check_distill(args)
        if not flags.scores and not flags.distills:
            return
        if args.dataset_type == "synthetic" or not args.train_data:
            what = (
                f"--jest-method {flags.method}"
                if flags.scores
                else f"--jest-distill {flags.distill}"
            )
            raise FlagError(
                f"{what} needs --train-data (webdataset shards or a CSV): the reference's "
                "embeddings are looked up by sample key"
            )
        if flags.reference_model is not None:
            self._check_reference_model(args)
        data = training_data(args)
        if data.csv_keys is not None:
            self._check_csv(args, data.csv_keys)
        if flags.reference is not None:
            import jester

            self.cache = jester.ReferenceCache(str(flags.reference))
            if not flags.skip_key_check:
                self.keys_verified = self._check_keys(args, data)
        if flags.reference_model is not None:
            self.reference_model = self._reference_model(args)

    def _check_distill(self, args) -> None:
        flag = f"--jest-distill {self.flags.distill}"
        if args.accum_freq > 1:
            raise FlagError(
                f"{flag} with --accum-freq {args.accum_freq}: open_clip's accumulated loss mixes "
                "several batches' features; distil with --accum-freq 1"
            )
        if getattr(args, "distill_model", None) is not None:
            raise FlagError(
                f"{flag} and open_clip's --distill-model: one teacher (jester's is the reference)"
            )

    def _check_csv(self, args, keys: list[str]) -> None:
        """Every rank reads the CSV and fails alike: B rows must fit, and a cache's keys (the image
        paths) must be unique."""
        if self.flags.reference is not None:
            flag = f"--csv-img-key {args.csv_img_key}"
            refuse_duplicate_csv_keys(keys, flag, args.train_data)
        if len(keys) < self.sizes.super_batch:
            flag = (
                f"--jest-super-batch {self.flags.super_batch}"
                if self.flags.super_batch is not None
                else f"--jest-filter-ratio {self.flags.filter_text}"
            )
            raise FlagError(
                f"{flag}: the super-batch B = {self.sizes.super_batch} is larger than the CSV's "
                f"{len(keys)} rows (a super-batch never repeats a row)"
            )

    def _check_reference_model(self, args) -> None:
        from .models import incompatibility

        name = self.flags.reference_model
        why = incompatibility(
            args.model,
            name,
            cache_dir=args.cache_dir,
            context_length=args.force_context_length,
            image_size=args.force_image_size,
        )
        if why is not None:
            raise FlagError(
                f"--jest-reference-model {name}: {why} (--model {args.model}); the online "
                "reference embeds the learner's own tokens and images, so they must agree"
            )

    def _reference_model(self, args):
        from .models import frozen_model

        model, _, _ = frozen_model(
            self.flags.reference_model,
            self.flags.reference_pretrained,
            precision=args.precision,
            device=self.device,
            cache_dir=args.cache_dir,
        )
        return model

    def _check_keys(self, args, data) -> bool:
        """Every rank checks its share of the training keys against the cache, the verdicts are
        all-gathered, and all ranks fail alike. Returns whether every key was found (pipe:/URL
        shards are not read ahead: then a missing key is caught, on every rank, as it is drawn)."""
        mine = check_share(self.cache, data, args.rank, args.world_size)
        parts = [mine]
        if args.world_size > 1:
            parts = [None] * args.world_size
            torch.distributed.all_gather_object(parts, mine)
        verdict = KeyCheck.merge(parts)
        if verdict.unchecked_shards:
            logging.getLogger("jester.open_clip").warning(
                "jester.open_clip: %d shards are not local files (%s, ...): their keys are "
                "checked against the reference cache as they are drawn, not before training",
                verdict.unchecked_shards,
                verdict.example_unchecked,
            )
        error = verdict.error()
        if error is not None:
            raise FlagError(
                f"--jest-reference {self.flags.reference}: {error} (checked before training; "
                "--jest-skip-key-check defers the check to the steps that draw such a sample)"
            )
        return verdict.complete

    # -- installation -------------------------------------------------------------------------

    @contextlib.contextmanager
    def installed(self):
        """The hooks, in place for the duration of ``open_clip_train.main.main``."""
        names = ("init_distributed_device", "get_data", "create_loss", "train_one_epoch")
        for name in names:
            if not callable(getattr(self.oc, name, None)):
                raise TypeError(f"open_clip_train.main has no {name}: not open_clip 3.3.0")
        self.original = {name: getattr(self.oc, name) for name in names}
        parallel = torch.nn.parallel
        try:
            for name in names:
                setattr(self.oc, name, getattr(self, name))
            parallel.DistributedDataParallel = CpuAwareDDP
            yield
        finally:
            for name in names:
                setattr(self.oc, name, self.original[name])
            parallel.DistributedDataParallel = _DDP


_DDP = torch.nn.parallel.DistributedDataParallel


class CpuAwareDDP(_DDP):
    """DistributedDataParallel without ``device_ids`` for a CPU module (torch 2.11 refuses
    ``device_ids=[cpu]``, which open_clip passes on every device)."""

    def __init__(self, module, device_ids=None, *args, **kwargs):
        if device_ids is not None and all(torch.device(d).type == "cpu" for d in device_ids):
            device_ids = None
        super().__init__(module, device_ids, *args, **kwargs)


def run(flags: JestFlags, rest: list[str], asked_help: bool) -> int:
    """Runs open_clip's trainer with JEST; returns its exit status."""
    import open_clip
    import open_clip_train.main as oc_main

    for path in flags.model_config:
        open_clip.add_model_config(Path(path))
    if asked_help:
        print("\nopen_clip_train's flags:\n")
        oc_main.parse_args(["--help"])  # prints them and exits 0
    hooks = Run(flags, oc_main)
    with hooks.installed():
        status = oc_main.main(rest)
    if status not in (None, 0):
        logging.getLogger("jester.open_clip").error("open_clip_train.main returned %s", status)
        return 1
    return 0
