"""The PyTorch reference model for jester's parity goldens (used by model_parity.py).

Provenance: written for the `jester` project as an independent re-implementation of jester's
two-tower SigLIP model from docs/ALGORITHM.md sections 2 and 5; no jester code is imported or
called. The attention, GELU, patchify, bilinear (antialiased) resize and PI-resize are written out
by hand here; model_parity.py (whose docstring states the formulas) builds the weights and inputs
and writes the goldens.
"""
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

LN_EPS = 1e-6


# ----------------------------------------------------------------------------------------------
# FlexiViT resizing, written out (numpy, float64)

def resize_matrix_1d(old, new):
    """R [new, old]: 1-D bilinear resize with half-pixel centres; when shrinking, the triangle
    filter is widened by old/new (antialiasing), and every row is normalised to sum 1."""
    scale = old / new
    support = max(scale, 1.0)
    r = np.zeros((new, old))
    for i in range(new):
        centre = (i + 0.5) * scale
        for j in range(old):
            r[i, j] = max(0.0, 1.0 - abs((j + 0.5 - centre) / support))
        r[i] /= r[i].sum()
    return r


def resize_matrix_2d(old, new):
    """A [new*new, old*old] on row-major flattened patches: A = R (x) R."""
    r = resize_matrix_1d(old, new)
    return np.kron(r, r)


def pi_resize_matrix(old, new):
    """M [old*old, new*new] with w'_flat = w_flat @ M and M^T = pinv(A^T) (FlexiViT PI-resize)."""
    if old == new:
        return np.eye(old * old)
    a = resize_matrix_2d(old, new)
    return np.linalg.pinv(a.T, rcond=1e-10).T


def check_resize_matrices():
    """The hand-written resize must be torch's antialiased bilinear interpolation (a cross-check
    of the formula above, not part of the golden pipeline)."""
    for old, new in [(4, 8), (4, 2), (8, 4), (4, 3), (3, 7)]:
        basis = torch.eye(old * old, dtype=torch.float64).reshape(old * old, 1, old, old)
        torch_a = F.interpolate(basis, size=(new, new), mode="bilinear", align_corners=False,
                                antialias=True).reshape(old * old, new * new).T
        err = np.abs(torch_a.numpy() - resize_matrix_2d(old, new)).max()
        assert err < 1e-12, (old, new, err)


# ----------------------------------------------------------------------------------------------
# The model: module and parameter names are jester's VarStore names
# (image.blocks.0.qkv.weight, text.tokens.weight, log_temperature, ...).

def gelu_tanh(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def layer_norm(x, ln):
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + LN_EPS) * ln.weight + ln.bias


class Block(nn.Module):
    def __init__(self, width, heads, mlp_dim, causal):
        super().__init__()
        self.norm1 = nn.LayerNorm(width, eps=LN_EPS)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width, eps=LN_EPS)
        self.fc1 = nn.Linear(width, mlp_dim)
        self.fc2 = nn.Linear(mlp_dim, width)
        self.heads, self.causal = heads, causal

    def forward(self, x):
        n, length, width = x.shape
        hd = width // self.heads
        qkv = self.qkv(layer_norm(x, self.norm1)).reshape(n, length, 3, self.heads, hd)
        q, k, v = (qkv[:, :, i].transpose(1, 2) for i in range(3))  # [n, heads, L, hd]
        scores = q @ k.transpose(-1, -2) / math.sqrt(hd)
        if self.causal:  # query i sees keys 0..=i
            future = torch.ones(length, length, dtype=torch.bool).triu(1)
            scores = scores.masked_fill(future, float("-inf"))
        weights = torch.exp(scores - scores.amax(-1, keepdim=True))
        weights = weights / weights.sum(-1, keepdim=True)
        attended = (weights @ v).transpose(1, 2).reshape(n, length, width)
        x = x + self.proj(attended)
        return x + self.fc2(gelu_tanh(self.fc1(layer_norm(x, self.norm2))))


class VisionTower(nn.Module):
    def __init__(self, c, embed_dim):
        super().__init__()
        w, p = c["width"], c["patch_size"]
        grid = c["image_size"] // p
        self.patch_kernel = nn.Parameter(torch.empty(w, 3, p, p))
        self.patch_bias = nn.Parameter(torch.empty(w))
        self.positions = nn.Parameter(torch.empty(1, grid * grid, w))
        self.blocks = nn.ModuleList(Block(w, c["heads"], c["mlp_dim"], False)
                                    for _ in range(c["depth"]))
        self.norm = nn.LayerNorm(w, eps=LN_EPS)
        self.head = nn.Linear(w, embed_dim)
        self.c = c

    def forward(self, images, patch):
        base, size = self.c["patch_size"], self.c["image_size"]
        width = self.c["width"]
        dtype = self.patch_kernel.dtype
        m = torch.from_numpy(pi_resize_matrix(base, patch)).to(dtype)
        kernel = (self.patch_kernel.reshape(width * 3, base * base) @ m).reshape(width, -1)
        # Patchify: [n, 3, g*p, g*p] -> [n, g*g, 3*p*p], patches in row-major grid order, each
        # flattened as (channel, row, column) like the kernel.
        n, g = images.shape[0], size // patch
        patches = (images.reshape(n, 3, g, patch, g, patch).permute(0, 2, 4, 1, 3, 5)
                   .reshape(n, g * g, 3 * patch * patch))
        tokens = patches @ kernel.T + self.patch_bias
        old = size // base
        r = torch.from_numpy(resize_matrix_1d(old, g)).to(dtype)
        grid_pos = self.positions.reshape(old, old, width)
        positions = torch.einsum("ay,yxw,bx->abw", r, grid_pos, r).reshape(1, g * g, width)
        x = tokens + positions
        for block in self.blocks:
            x = block(x)
        return self.head(layer_norm(x, self.norm).mean(1))


class TextTower(nn.Module):
    def __init__(self, c, embed_dim):
        super().__init__()
        w = c["width"]
        self.tokens = nn.Embedding(c["vocab_size"], w)
        self.positions = nn.Parameter(torch.empty(1, c["context_length"], w))
        self.blocks = nn.ModuleList(Block(w, c["heads"], c["mlp_dim"], True)
                                    for _ in range(c["depth"]))
        self.norm = nn.LayerNorm(w, eps=LN_EPS)
        self.head = nn.Linear(w, embed_dim)

    def forward(self, ids, last):
        x = self.tokens.weight[ids] + self.positions
        for block in self.blocks:
            x = block(x)
        pooled = x[torch.arange(x.shape[0]), last]
        return self.head(layer_norm(pooled, self.norm))


def normalise(x):
    return x / torch.linalg.vector_norm(x, dim=-1, keepdim=True).clamp_min(1e-12)


class TwoTower(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.image = VisionTower(c["image"], c["embed_dim"])
        self.text = TextTower(c["text"], c["embed_dim"])
        self.log_temperature = nn.Parameter(torch.empty(()))
        self.bias = nn.Parameter(torch.empty(()))

    def encode_images(self, images, patch):
        return normalise(self.image(images, patch))

    def encode_texts(self, ids, last):
        return normalise(self.text(ids, last))

    def loss(self, images, ids, last, parts):
        zs, start = [], 0
        for rows, patch in parts:
            zs.append(self.encode_images(images[start:start + rows], patch))
            start += rows
        z_img, z_txt = torch.cat(zs), self.encode_texts(ids, last)
        logits = self.log_temperature.exp() * (z_img @ z_txt.T) + self.bias
        label = 2.0 * torch.eye(len(z_img), dtype=logits.dtype) - 1.0
        nll = torch.logaddexp(torch.zeros_like(logits), -label * logits)
        return nll.sum() / len(z_img)

