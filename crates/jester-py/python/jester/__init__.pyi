"""Type stubs of the `jester` package (the extension `jester._jester` and `jester.distributed`)."""

from collections.abc import Sequence
from typing import Literal

import torch
from typing_extensions import TypeAlias

from . import distributed as distributed

Method: TypeAlias = Literal["joint", "independent", "uniform"]
Score: TypeAlias = Literal["learnability", "hard_learner", "easy_reference", "uniform"]
Loss: TypeAlias = Literal["sigmoid", "softmax"]
Scalar: TypeAlias = float | torch.Tensor

__version__: str

class Embeddings:
    """One model's embeddings of a super-batch: image and text [B, D] (any float dtype, any device;
    rows already of unit norm are kept as they are, without a copy), the sigmoid loss's temperature
    t (the temperature itself, not its log) and bias b."""

    def __init__(self, image: torch.Tensor, text: torch.Tensor, t: float, b: float) -> None: ...
    @property
    def image(self) -> torch.Tensor: ...
    @property
    def text(self) -> torch.Tensor: ...
    @property
    def t(self) -> float: ...
    @property
    def b(self) -> float: ...
    @property
    def dim(self) -> int: ...
    def __len__(self) -> int: ...

def select(
    learner: Embeddings,
    reference: Embeddings | None,
    batch_size: int,
    *,
    method: Method = "joint",
    score: Score = "learnability",
    loss: Loss = "sigmoid",
    chunks: int = 16,
    gain: float = 100.0,
    seed: int = 0,
    summary: bool = False,
    groups: int = 1,
) -> tuple[torch.Tensor, dict]:
    """Selects batch_size of the B examples: joint selection draws them in `chunks` chunks, each
    conditioned on the chunks before (paper Alg. 1), by Gumbel-top-k on gain × the scores.

    Returns (indices: int64 [batch_size] on the embeddings' device, in selection order; summary:
    chunk_sizes, score, and with summary=True the mean score per example of the selected batch
    (`selected`) and of a uniform batch of the same size (`uniform`) — a pass over all B² pairs,
    several times the selection's own time at B = 20,000, so off by default). With `groups` = G the
    super-batch is G equal consecutive groups and every chunk takes the same share of each.
    Releases the GIL while it works."""

def sigmoid_loss(image: torch.Tensor, text: torch.Tensor, t: Scalar, b: Scalar) -> torch.Tensor:
    """SigLIP batch loss (mean over images of the summed pairwise sigmoid NLL); differentiable."""

def softmax_loss(image: torch.Tensor, text: torch.Tensor, t: Scalar) -> torch.Tensor:
    """CLIP batch loss (mean of the image→text and text→image cross-entropies); differentiable."""

def distill_loss(
    image: torch.Tensor,
    text: torch.Tensor,
    t: Scalar,
    b: Scalar,
    reference: Embeddings,
    *,
    loss: Loss = "sigmoid",
) -> torch.Tensor:
    """Distillation of the learner's pairwise logits towards the reference's on the same batch
    (ACED; docs/ALGORITHM.md §9): per-pair binary KL with each model's t and b (sigmoid) or the KL
    of both directions' softmaxes (softmax); differentiable in image, text, t and b. The reference
    holds the same rows (row i the same example) and may be of another width."""

def scores(
    learner: Embeddings,
    reference: Embeddings | None,
    *,
    score: Score = "learnability",
    loss: Loss = "sigmoid",
) -> torch.Tensor:
    """Per-example scores [B] within the whole super-batch (learnability: learner loss − reference
    loss)."""

class ReferenceCacheWriter:
    """Writes reference embeddings keyed by sample key, in the format `jester train --reference`
    reads, in pieces (streamed to disk)."""

    def __init__(self, path: str) -> None: ...
    def append(self, keys: Sequence[str], image: torch.Tensor, text: torch.Tensor) -> None: ...
    def finish(
        self,
        t: float,
        b: float,
        *,
        shards: Sequence[str] | None = None,
        model: str | None = None,
        tokenizer: str | None = None,
    ) -> str: ...

class ReferenceCache:
    """A reference cache (from `jester embed` or ReferenceCacheWriter), rows found by key."""

    def __init__(self, path: str) -> None: ...
    def lookup(self, keys: Sequence[str], device: str = "cpu") -> Embeddings: ...
    def missing(self, keys: Sequence[str]) -> list[str]:
        """The keys the cache does not hold, in order (empty when all are there)."""
    def __len__(self) -> int: ...
    @property
    def dim(self) -> int: ...
    @property
    def provenance(self) -> str | None: ...
