"""One step's selection: the learner (and an online reference) embed the super-batch without
autograd, under open_clip's autocast; the reference comes from a cache by key or online; jester
chooses b across all ranks. Shapes: B super-batch, b batch, D embedding width (per rank: B / W)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

import jester

from .flags import METHODS, SCORES, FlagError, JestFlags, Sizes
from .models import temperature_and_bias


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The model under DDP or torch.compile."""
    model = getattr(model, "module", model)
    return getattr(model, "_orig_mod", model)


def step_seed(seed: int, step: int) -> int:
    """The step's selection seed, ``jester train``'s: ``seed ^ ((step + 1) * 0x9E3779B97F4A7C15)``
    in 64 bits. It follows the step, so a resumed run selects as the uninterrupted one did."""
    return (seed ^ ((step + 1) * 0x9E3779B97F4A7C15)) & ((1 << 64) - 1)


def forward_flops(model: torch.nn.Module, image: torch.Tensor, text: torch.Tensor) -> int:
    """FLOPs of one example's forward pass through both towers, as jester counts them: every
    matrix product and convolution, attention's included, 2 per multiply-add (PyTorch's FLOP
    counter). ``image`` [1, 3, H, W], ``text`` [1, T].

    Counted in train mode under ``no_grad`` with the math attention kernel: in eval mode
    ``nn.MultiheadAttention`` runs a fused kernel the counter does not see, and neither does it
    see the CPU's fused attention; the random generators are restored (dropout draws)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    model = unwrap(model)
    training = model.training
    devices = [image.device] if image.device.type == "cuda" else []
    model.train()
    try:
        with (
            torch.random.fork_rng(devices=devices),
            torch.no_grad(),
            sdpa_kernel(SDPBackend.MATH),
            FlopCounterMode(display=False) as counter,
        ):
            model.encode_image(image)
            model.encode_text(text)
    finally:
        model.train(training)
    return int(counter.get_total_flops())


def embed(model: torch.nn.Module, images: torch.Tensor, texts: torch.Tensor, *, autocast,
          block: int) -> jester.Embeddings:  # fmt: skip
    """Normalised embeddings [n, D] of ``model`` in inference mode and eval mode, in blocks of
    ``block`` rows (a training forward's activation memory, without the graph)."""
    model = unwrap(model)
    training = model.training
    model.eval()
    zi, zt = [], []
    try:
        with torch.inference_mode(), autocast():
            for start in range(0, len(images), block):
                rows = slice(start, start + block)
                zi.append(model.encode_image(images[rows], normalize=True).float())
                zt.append(model.encode_text(texts[rows], normalize=True).float())
    finally:
        model.train(training)
    return jester.Embeddings(torch.cat(zi), torch.cat(zt), *temperature_and_bias(model))


def scoring_block(sizes: Sizes) -> int:
    """Rows per scoring forward: one training micro-batch of this rank, so scoring never needs
    more activation memory than the training forward open_clip already runs."""
    return max(1, sizes.local_batch)


def rows(e: jester.Embeddings, indices: torch.Tensor) -> jester.Embeddings:
    """The embeddings of ``indices``' rows, in that order."""
    return jester.Embeddings(e.image[indices], e.text[indices], e.t, e.b)


class References:
    """The reference's embeddings of a step's rows: from a cache by sample key, or from the frozen
    online open_clip model (``__call__``)."""

    def __init__(
        self,
        flags: JestFlags,
        sizes: Sizes,
        *,
        device: torch.device,
        autocast,
        cache: jester.ReferenceCache | None = None,
        model: torch.nn.Module | None = None,
        keys_verified: bool = False,
    ):
        self.flags, self.sizes, self.device, self.autocast = flags, sizes, device, autocast
        self.cache, self.model = cache, model
        self.block = scoring_block(sizes)
        # Ranks agree on every step's keys unless all were found before training: a rank that
        # drew a key the cache lacks must not leave the others waiting in the next collective.
        self.agree_on_keys = sizes.world > 1 and not keys_verified

    @property
    def available(self) -> bool:
        return self.cache is not None or self.model is not None

    def _missing_error(self, detail: str) -> FlagError:
        return FlagError(
            f"--jest-reference {self.flags.reference}: {detail} (a training sample without a "
            "row in the reference cache: embed these shards, or check --train-data)"
        )

    def _agree_on_keys(self, keys: list[str]) -> None:
        """Every rank learns whether any rank drew a key the cache lacks, and then all fail."""
        from jester.distributed import collective_device

        lacking = self.cache.missing(keys)
        flag = torch.tensor([len(lacking)], device=collective_device(None, self.device))
        torch.distributed.all_reduce(flag)
        if int(flag.item()) == 0:
            return
        firsts = [None] * self.sizes.world
        torch.distributed.all_gather_object(firsts, lacking[0] if lacking else None)
        ranks = [r for r, k in enumerate(firsts) if k is not None]
        raise self._missing_error(
            f"{int(flag.item())} of this step's samples have no row (ranks {ranks}; first: "
            f'"{firsts[ranks[0]]}")'
        )

    def __call__(self, keys: list[str], images: torch.Tensor, texts: torch.Tensor):
        """The reference's embeddings of these rows (None without a reference)."""
        if self.model is not None:
            return embed(self.model, images, texts, autocast=self.autocast, block=self.block)
        if self.cache is None:
            return None
        if self.agree_on_keys:
            self._agree_on_keys(keys)
        try:
            return self.cache.lookup(keys, device=str(self.device))
        except ValueError as e:
            raise self._missing_error(str(e)) from None


@dataclass
class Selected:
    """This rank's selected rows, in the order its step trains them, and what it took."""

    indices: torch.Tensor  # int64 [b / W], local indices into this rank's B / W candidates
    summary: dict | None  # jester's (mean learnability of the selection and of a uniform batch)
    score_seconds: float
    select_seconds: float
    summary_seconds: float = 0.0
    reference: jester.Embeddings | None = None  # the reference's embeddings of the selected rows


class Scorer:
    """Scores and selects one super-batch per step (``__call__``)."""

    def __init__(
        self,
        flags: JestFlags,
        sizes: Sizes,
        *,
        siglip: bool,
        seed: int,
        device: torch.device,
        autocast,
        references: References,
    ):
        self.flags, self.sizes, self.seed, self.device = flags, sizes, seed, device
        self.autocast, self.references = autocast, references
        self.loss = flags.loss if flags.loss != "auto" else ("sigmoid" if siglip else "softmax")
        self.block = scoring_block(sizes)

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def embed(self, model: torch.nn.Module, images: torch.Tensor, texts: torch.Tensor):
        """The learner's normalised embeddings [n, D] (:func:`embed`)."""
        return embed(model, images, texts, autocast=self.autocast, block=self.block)

    def _select(self, learner, reference, seed: int, summary: bool):
        options = {
            "method": METHODS[self.flags.method],
            "score": SCORES[self.flags.score],
            "loss": self.loss,
            "chunks": self.flags.chunks,
            "gain": self.flags.gain,
            "seed": seed,
            "summary": summary,
        }
        if self.sizes.world > 1:
            return jester.distributed.select(learner, reference, self.sizes.batch, **options)
        indices, info = jester.select(
            learner, reference, self.sizes.batch, groups=self.sizes.groups, **options
        )
        if self.sizes.groups > 1:
            # The twin of a G-rank step trains the rows in the order the ranks' gathered
            # features have: group by group (group g: rows [g B/G, (g+1) B/G)), each in
            # selection order.
            group = torch.div(
                indices, self.sizes.super_batch // self.sizes.groups, rounding_mode="floor"
            )
            indices = indices[torch.sort(group, stable=True).indices]
        return indices, info

    def __call__(
        self,
        model: torch.nn.Module,
        images: torch.Tensor,
        texts: torch.Tensor,
        keys: list[str],
        step: int,
        summary: bool,
    ) -> Selected:
        """Selects b / W of this rank's B / W candidates ``images`` [B / W, 3, H, W] and ``texts``
        [B / W, T] (on the device). ``step`` numbers the super-batches drawn (micro-batches with
        --accum-freq), seeding the selection. ``summary`` also measures the learnability of the
        selection and of a uniform batch: a pass over all B² pairs, timed apart (it repeats the
        selection with jester's summary on, which selects the same rows)."""
        t0 = time.perf_counter()
        learner = self.embed(model, images, texts)
        reference = self.references(keys, images, texts)
        self._sync()
        t1 = time.perf_counter()
        seed = step_seed(self.seed, step)
        indices, _ = self._select(learner, reference, seed, summary=False)
        self._sync()
        t2 = time.perf_counter()
        info = None
        if summary:
            _, info = self._select(learner, reference, seed, summary=True)
            self._sync()
        kept = rows(reference, indices) if reference is not None else None
        return Selected(indices, info, t1 - t0, t2 - t1, time.perf_counter() - t2, kept)
