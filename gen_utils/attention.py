"""Scaled dot-product attention, causal masks and a key/value cache (chapters 09 and 10).

Chapter 09 writes each of these out for teaching; this module holds the same pieces, unit-tested,
for the chapters that build on them. Masks are boolean with ``True`` = "may attend", the
convention of ``torch.nn.functional.scaled_dot_product_attention``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def causal_mask(n_queries: int, n_keys: int | None = None,
                device: torch.device | str | None = None) -> torch.Tensor:
    """(n_queries, n_keys) bool, True where query i may see key j.

    The queries are the *last* ``n_queries`` positions of the ``n_keys`` keys (bottom-right
    alignment), so with a cache of ``n_keys - n_queries`` earlier positions query i sits at
    position ``n_keys - n_queries + i`` and sees keys ``0 … n_keys - n_queries + i``.
    """
    n_keys = n_queries if n_keys is None else n_keys
    if n_keys < n_queries:
        raise ValueError(f"{n_queries} queries need at least as many keys, got {n_keys}")
    ones = torch.ones(n_queries, n_keys, dtype=torch.bool, device=device)
    return ones.tril(diagonal=n_keys - n_queries)


def dot_product_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
              mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """softmax(q kᵀ / √d) v, written out; also returns the attention weights.

    q: (..., Tq, d), k: (..., Tk, d), v: (..., Tk, dv); mask: bool, broadcastable to
    (..., Tq, Tk), True = keep. Returns out (..., Tq, dv) and weights (..., Tq, Tk).
    A query whose keys are all masked gets NaN weights, as in a softmax over nothing.
    """
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"queries have dimension {q.shape[-1]} but keys {k.shape[-1]}")
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = scores.softmax(dim=-1)
    return weights @ v, weights


class KVCache:
    """Keys and values of the positions seen so far, per layer: (B, H, T, d_head) each.

    ``append`` adds the new positions and returns everything cached so far, so a decoding
    step computes keys and values for its new token only.
    """

    def __init__(self) -> None:
        self.k: torch.Tensor | None = None
        self.v: torch.Tensor | None = None

    def __len__(self) -> int:
        return 0 if self.k is None else self.k.shape[-2]

    def append(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.k is None:
            self.k, self.v = k, v
        else:
            self.k = torch.cat([self.k, k], dim=-2)
            self.v = torch.cat([self.v, v], dim=-2)
        return self.k, self.v


class MultiHeadAttention(nn.Module):
    """Multi-head attention (Vaswani et al., 2017), self- or cross-, with an optional KV cache.

    forward(x, context=None, mask=None, causal=False, cache=None):
      x: (B, Tq, d_model) queries; context: (B, Tk, d_model) for cross-attention (keys and
      values come from x itself when None); mask: bool, broadcastable to (B, n_heads, Tq, Tk),
      True = keep (e.g. a key-padding mask of shape (B, 1, 1, Tk)); causal: add the causal
      mask, aligned so that x holds the last Tq positions (correct with a cache);
      cache: a KVCache for self-attention, extended with this call's keys and values.
    Returns (B, Tq, d_model). Uses torch's fused scaled_dot_product_attention.
    """

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0, bias: bool = True) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} is not divisible by n_heads={n_heads}")
        self.n_heads, self.d_head, self.dropout = n_heads, d_model // n_heads, dropout
        self.q = nn.Linear(d_model, d_model, bias=bias)
        self.kv = nn.Linear(d_model, 2 * d_model, bias=bias)
        self.out = nn.Linear(d_model, d_model, bias=bias)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, d_model) -> (B, H, T, d_head)
        return x.view(x.shape[0], x.shape[1], self.n_heads, self.d_head).transpose(1, 2)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None,
                mask: torch.Tensor | None = None, causal: bool = False,
                cache: KVCache | None = None) -> torch.Tensor:
        if cache is not None and context is not None:
            raise ValueError("a KV cache is for self-attention; cache the projected context instead")
        B, Tq, _ = x.shape
        q = self._heads(self.q(x))
        k, v = (self._heads(t) for t in self.kv(x if context is None else context).chunk(2, dim=-1))
        if cache is not None:
            k, v = cache.append(k, v)
        if causal:
            cm = causal_mask(Tq, k.shape[-2], device=x.device)
            mask = cm if mask is None else mask & cm
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.out(y.transpose(1, 2).reshape(B, Tq, -1))
