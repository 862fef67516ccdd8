"""What open_clip's ``train_one_epoch`` iterates over under JEST: each step one super-batch from
open_clip's loader is scored and only the selected rows reach open_clip's forward, loss and
backward. Timing the gaps between requests splits every step into waiting on the loader, scoring,
selection, the learnability summary and open_clip's own work; the log reports each as its mean over
the steps since the last log line (open_clip's own ``AverageMeter`` windows)."""

from __future__ import annotations

import time

import torch

import jester

from .metrics import PHASES, MetricsLog, StepRecord
from .scoring import References, Scorer, forward_flops


class Distiller:
    """The distillation from the reference on the trained batch (ACED's KD; jester's
    ``--set distill=W``, docs/ALGORITHM.md §9): W x ``jester.distill_loss`` of the learner's
    pairwise logits towards the reference's over the step's global batch — softmax KD both ways
    with open_clip's CLIP loss, per-pair binary KL with its SigLIP loss; in float32, outside
    open_clip's autocast.

    The loader hands over the reference's embeddings of the rows it yields (``give``); the loss
    takes them (``__call__``). Under DDP each rank all-gathers the learner's features and the
    reference's rows and computes the whole batch's KD, gathering as open_clip's own loss does so
    that the two terms keep their ratio whatever the number of ranks: with their gradient (SigLIP,
    or CLIP with --gather-with-grad: DDP's mean of the ranks' gradients is then the global KD's
    gradient), or else, as open_clip's ClipLoss does without --gather-with-grad, the other ranks'
    features as constants and this rank's own with its gradient (DDP's mean is then 1/W of it, as
    for open_clip's loss)."""

    def __init__(self, weight: float, loss: str, world: int, *, gather_with_grad: bool = True):
        self.weight, self.loss, self.world = weight, loss, world
        self.gather_with_grad = gather_with_grad
        self.pending: jester.Embeddings | None = None
        self.dim = 0  # the learner's embedding width, known from the first batch

    def give(self, reference: jester.Embeddings) -> None:
        # Copies made outside inference mode: an online reference's embeddings are inference
        # tensors, which autograd may not save.
        image, text = reference.image.clone(), reference.text.clone()
        self.pending = jester.Embeddings(image, text, reference.t, reference.b)

    def _gather(self, x: torch.Tensor) -> torch.Tensor:
        import torch.distributed as dist

        if self.gather_with_grad:
            from torch.distributed.nn.functional import all_gather

            return torch.cat(all_gather(x))
        parts = [torch.empty_like(x) for _ in range(self.world)]
        dist.all_gather(parts, x.detach())
        parts[dist.get_rank()] = x
        return torch.cat(parts)

    def __call__(self, image_features, text_features, logit_scale, logit_bias=None, **_):
        reference, self.pending = self.pending, None
        if reference is None or len(reference) != len(image_features):
            raise RuntimeError(
                "jester.open_clip: the distillation has no reference rows for this batch "
                f"({0 if reference is None else len(reference)} for {len(image_features)} "
                "features): open_clip's loss ran on a batch the loader did not hand over"
            )
        self.dim = image_features.shape[-1]
        with torch.autocast(image_features.device.type, enabled=False):
            image, text = image_features.float(), text_features.float()
            scale = logit_scale.float()
            bias = 0.0 if logit_bias is None else logit_bias.float()
            if self.world > 1:
                image, text = self._gather(image), self._gather(text)
                reference = jester.distributed.gather_embeddings(reference, None, image.device)
            kd = jester.distill_loss(image, text, scale, bias, reference, loss=self.loss)
        return self.weight * kd


class LossRecorder(torch.nn.Module):
    """open_clip's loss, keeping the last step's total (detached, read only on logged steps); with
    a :class:`Distiller`, its term is added as ``distill_loss`` (open_clip sums a loss dict's
    values into the total and logs each)."""

    def __init__(self, loss: torch.nn.Module, distiller: Distiller | None = None):
        super().__init__()
        self.loss, self.distiller, self.last = loss, distiller, None

    def forward(self, *args, **kwargs):
        out = self.loss(*args, **kwargs)
        if self.distiller is not None:
            kd = self.distiller(**kwargs)
            out = {**out, "distill_loss": kd} if isinstance(out, dict) else out + kd
        total = sum(out.values()) if isinstance(out, dict) else out
        self.last = total.detach()
        return out


class Flops:
    """FLOPs per step over all ranks, as jester counts them: 3F per trained example (forward and
    backward), F per scored candidate, plus the reference's forward when it is scored online; a
    step of open_clip's with --accum-freq K is K super-batches. With the distillation, its
    executed cost too: the reference's forward of every trained row when it is online and not
    already scored, and each rank's b x b logits of both models (jester's ``distill_flops``:
    2 b² D for the reference's, 3 x 2 b² D for the learner's, on each of the W ranks)."""

    def __init__(self, batch: int, super_batch: int, scores: bool, reference_model=None,
                 accum: int = 1, distiller: Distiller | None = None,
                 world: int = 1):  # fmt: skip
        self.batch, self.super_batch, self.scores = batch, super_batch, scores
        self.reference_model, self.accum = reference_model, accum
        self.distiller, self.world = distiller, world
        self.learner = self.reference = None

    def measure(self, model, images: torch.Tensor, texts: torch.Tensor) -> None:
        if self.learner is None:
            self.learner = forward_flops(model, images[:1], texts[:1])
            if self.reference_model is not None:
                self.reference = forward_flops(self.reference_model, images[:1], texts[:1])

    @property
    def uniform_step(self) -> float:
        return 3.0 * self.learner * self.batch * self.accum

    @property
    def distill_step(self) -> float:
        """Read after the step's loss ran (the logged steps), when the width is known."""
        if self.distiller is None:
            return 0.0
        logits = 2.0 * self.batch * self.batch * self.distiller.dim
        kd = self.world * 4.0 * logits * self.accum
        if not self.scores and self.reference is not None:
            kd += self.reference * self.batch * self.accum  # the online reference's forward
        return kd

    @property
    def step(self) -> float:
        if not self.scores:
            return self.uniform_step + self.distill_step
        scored = (self.learner + (self.reference or 0)) * self.super_batch * self.accum
        return self.uniform_step + scored + self.distill_step


class Window:
    """Seconds per phase summed since the last log line, and the super-batches they cover."""

    def __init__(self):
        self.seconds = dict.fromkeys(PHASES, 0.0)
        self.batches = 0

    def add(self, **seconds: float) -> None:
        for phase, value in seconds.items():
            self.seconds[phase] += value


class SelectingLoader:
    """Iterates open_clip's keyed loader (image, text, keys batches of B / W rows) and yields the
    selected (image, text) rows of each step, on the device. Has the ``num_batches`` and
    ``num_samples`` that ``train_one_epoch`` reads.

    Steps follow open_clip: with --accum-freq K its step (the optimiser's) is K super-batches, and
    jester logs at open_clip's step; the selection seed follows the super-batch, so that a run
    with K = 1 and one with K > 1 draw each super-batch's seed alike."""

    def __init__(
        self,
        inner,
        *,
        model,
        epoch: int,
        args,
        scorer: Scorer | None,
        flops: Flops,
        recorder: LossRecorder,
        log: MetricsLog,
        input_dtype,
        references: References | None = None,
    ):
        self.inner, self.model, self.epoch, self.args = inner, model, epoch, args
        self.scorer, self.flops, self.recorder, self.log = scorer, flops, recorder, log
        # With the distillation: the reference's rows of every yielded batch go to the loss.
        self.distiller = recorder.distiller
        self.references = references
        self.input_dtype = input_dtype
        self.num_batches = inner.num_batches
        self.num_samples = inner.num_samples
        self.device = torch.device(args.device)
        self.accum = args.accum_freq
        self.steps_per_epoch = self.num_batches // self.accum  # open_clip's

    def __len__(self) -> int:
        return self.num_batches

    def _sync(self) -> None:
        """Waits for the device: the work queued so far lands in the phase that queued it."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _logged(self, i: int) -> bool:
        """open_clip's own cadence: its log line is written after these batches."""
        if (i + 1) % self.accum:
            return False
        step = i // self.accum
        return step % self.args.log_every_n_steps == 0 or step + 1 == self.steps_per_epoch

    def __iter__(self):
        iterator = iter(self.inner)
        window = Window()
        pending: StepRecord | None = None
        yielded = 0.0
        i = 0
        while True:
            self._sync()  # the previous batch's backward and optimiser step are open_clip's
            if pending is not None:
                window.add(train=time.perf_counter() - yielded)
                if self._logged(i - 1):
                    self._write(pending, window)  # jester's own log: in no phase
                    window = Window()
            t0 = time.perf_counter()
            try:
                images, texts, keys = next(iterator)
            except StopIteration:
                return
            images = images.to(device=self.device, dtype=self.input_dtype, non_blocking=True)
            texts = texts.to(device=self.device, non_blocking=True)
            self._sync()
            t1 = time.perf_counter()  # waited: open_clip's loader and the copy (its Data (t))
            self.flops.measure(self.model, images, texts)
            step = self.epoch * self.steps_per_epoch + i // self.accum
            batch = self.epoch * self.num_batches + i  # super-batches drawn before this one
            record = StepRecord(step=step, epoch=self.epoch)
            window.add(wait=t1 - t0)
            window.batches += 1
            candidates = list(keys) if self.log.keys_path is not None else None
            if self.scorer is not None:
                chosen = self.scorer(self.model, images, texts, keys, batch, self._logged(i))
                images, texts = images[chosen.indices], texts[chosen.indices]
                if candidates is not None:  # .tolist() waits for the device
                    keys = [keys[j] for j in chosen.indices.tolist()]
                window.add(
                    score=chosen.score_seconds,
                    select=chosen.select_seconds,
                    summary=chosen.summary_seconds,
                )
                if chosen.summary is not None:
                    record.learnability_selected = chosen.summary["selected"]
                    record.learnability_uniform = chosen.summary["uniform"]
                if self.distiller is not None:
                    self.distiller.give(chosen.reference)
            elif self.distiller is not None:  # uniform: every drawn row is trained
                t2 = time.perf_counter()
                self.distiller.give(self.references(list(keys), images, texts))
                self._sync()
                window.add(score=time.perf_counter() - t2)
            if candidates is not None:
                self.log.write_keys(step, batch, candidates, list(keys))
            pending = record
            self._sync()
            yielded = time.perf_counter()
            yield images, texts
            i += 1

    def _write(self, record: StepRecord, window: Window) -> None:
        """The logged step's record, with the window's mean seconds per step of open_clip's."""
        steps = window.batches // self.accum
        for phase, total in window.seconds.items():
            setattr(record, f"{phase}_seconds", total / steps)
        record.steps_timed = steps
        n = record.step + 1
        record.flops_step = self.flops.step
        record.flops_uniform_step = self.flops.uniform_step
        record.flops_total = n * self.flops.step
        record.examples_drawn = n * self.flops.super_batch * self.accum
        record.examples_trained = n * self.flops.batch * self.accum
        if self.recorder.last is not None:
            record.loss = self.recorder.last.item()
        self.log.write(record)
