"""A frozen open_clip model from a local checkpoint: the online reference, and the model
``python -m jester.open_clip.embed`` embeds with."""

from __future__ import annotations

import torch


def frozen_model(name: str, pretrained: str | None, *, precision: str, device, cache_dir=None):
    """(model in eval mode without gradients, its eval preprocessing, its tokenizer).

    ``pretrained``: a local file — open_clip's training checkpoint (``epoch_N.pt``) or weights;
    nothing is downloaded. A checkpoint trained with ``--siglip`` holds ``logit_bias``, which
    open_clip only loads into a model created with one, so the model gets one when it does."""
    import open_clip
    from open_clip.factory import load_state_dict

    kwargs = {}
    if pretrained and "logit_bias" in load_state_dict(pretrained):
        kwargs["init_logit_bias"] = 0.0  # replaced by the checkpoint's
    model, _, preprocess = open_clip.create_model_and_transforms(
        name,
        pretrained or None,
        precision=precision,
        device=device,
        output_dict=True,
        cache_dir=cache_dir,
        **kwargs,
    )
    model.eval()
    model.requires_grad_(False)
    tokenizer = open_clip.get_tokenizer(name, cache_dir=cache_dir)
    return model, preprocess, tokenizer


def temperature_and_bias(model: torch.nn.Module) -> tuple[float, float]:
    """(t, b) of the sigmoid loss as the model holds them (b = 0 for a CLIP model)."""
    bias = getattr(model, "logit_bias", None)
    return model.logit_scale.exp().item(), 0.0 if bias is None else bias.item()


# Text the two tokenizers must turn into the same ids (words, digits, punctuation, non-ASCII).
PROBE = "A photo of 2 dogs, 1 cat & a café: naïve résumé, 東京 (1998)!"


def _interface(name: str, *, cache_dir=None, context_length=None, image_size=None) -> dict:
    """What an open_clip model takes in: its tokenizer (class, context length, vocabulary, the ids
    of PROBE), its token table's size and its image size (from the model's config, when open_clip
    has one for the name)."""
    import open_clip

    tokenizer = open_clip.get_tokenizer(name, cache_dir=cache_dir, context_length=context_length)
    config = open_clip.get_model_config(name) or {}
    text, vision = config.get("text_cfg", {}), config.get("vision_cfg", {})
    size = image_size or vision.get("image_size")
    return {
        "tokenizer": type(tokenizer).__name__,
        "context length": tokenizer.context_length,
        "tokenizer's vocabulary": getattr(tokenizer, "vocab_size", None),
        "token ids of a probe caption": tokenizer([PROBE])[0].tolist(),
        "token table (text_cfg.vocab_size)": text.get("vocab_size"),
        "image size": tuple(size) if isinstance(size, (list, tuple)) else size,
    }


def incompatibility(learner: str, reference: str, *, cache_dir=None, context_length=None,
                    image_size=None) -> str | None:  # fmt: skip
    """Why ``reference`` cannot embed ``learner``'s own tokens and images (the online reference is
    fed the learner's batch), or None. Values open_clip cannot tell for one of them are skipped."""
    mine = _interface(learner, cache_dir=cache_dir, context_length=context_length,
                      image_size=image_size)  # fmt: skip
    theirs = _interface(reference, cache_dir=cache_dir)
    for what, value in mine.items():
        if value is not None and theirs[what] is not None and theirs[what] != value:
            shown = (lambda v: v) if what != "token ids of a probe caption" else _short
            return f"its {what} is {shown(theirs[what])}, the learner's {shown(value)}"
    return None


def _short(ids: list[int]) -> str:
    used = [i for i in ids if i] or ids
    return str(used[:12])[:-1] + (", ...]" if len(used) > 12 else "]")
