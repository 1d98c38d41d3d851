"""`sdpa_varlen`: attention for packed rows without flash-attn, registered with transformers.

Packed rows hold several samples whose position ids restart at each sample. transformers' own
sdpa path masks such rows block-diagonally, but still computes (and on CPU materialises) the
full row × row attention, so a 1024-token row of ten samples costs ten times the attention of
its samples. This implementation cuts each row into its samples (from the position ids), runs
causal SDPA on them as one padded batch of segments and puts the outputs back: the cost is the
sum over samples of length², the same as flash-attention's varlen kernel (cu_seqlens). A segment
is right-padded, and a causal query never sees keys after it, so no mask is needed.
It applies only when the caller says the rows are packed (`jstip_packed=True`, passed through
the LM's keyword arguments, see `model.py`); otherwise (padded rows, left-padded prompts,
generation with a cache) it is transformers' sdpa with its mask, unchanged.
"""
from __future__ import annotations

from typing import Any

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

NAME = "sdpa_varlen"


def segments(position_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For packed rows `[B, L]`: the flat index `[S, M]` of each segment's positions (row-major, clipped
    to the segment's last position) and which of them are real `[S, M]` (M = the longest segment)."""
    b, n = position_ids.shape
    start = position_ids == 0
    start[:, 0] = True
    flat_start = start.reshape(-1).nonzero().squeeze(1)  # row-major: segments in order
    row_end = (flat_start // n + 1) * n
    nxt = torch.cat([flat_start[1:], flat_start.new_tensor([b * n])])
    end = torch.minimum(nxt, row_end)
    lengths = end - flat_start
    m = int(lengths.max())
    offsets = torch.arange(m, device=position_ids.device)
    valid = offsets[None, :] < lengths[:, None]
    index = flat_start[:, None] + torch.minimum(offsets[None, :], lengths[:, None] - 1)
    return index, valid


def sdpa_varlen_forward(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                        attention_mask: torch.Tensor | None, dropout: float = 0.0, scaling: float | None = None,
                        is_causal: bool | None = None, **kwargs: Any) -> tuple[torch.Tensor, None]:
    """Causal attention within each sample of packed rows; transformers' sdpa for anything else."""
    position_ids = kwargs.get("position_ids")
    if not kwargs.get("jstip_packed") or position_ids is None or query.shape[2] != key.shape[2]:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      is_causal=is_causal, **kwargs)
    b, h, n, d = query.shape
    index, valid = segments(position_ids.expand(b, -1))

    def gather(x: torch.Tensor) -> torch.Tensor:  # [B, H', L, D] -> [S, H', M, D]
        flat = x.transpose(1, 2).reshape(b * n, x.shape[1], d)
        return flat[index].transpose(1, 2)

    q, k, v = gather(query), gather(key), gather(value)
    out = torch.nn.functional.scaled_dot_product_attention(
        q, k, v, dropout_p=dropout, is_causal=True, scale=scaling, enable_gqa=k.shape[1] != q.shape[1])
    out = out.transpose(1, 2)  # [S, M, H, D]
    result = out.new_zeros(b * n, h, d)
    result[index[valid]] = out[valid]
    return result.reshape(b, n, h, d), None


AttentionInterface.register(NAME, sdpa_varlen_forward)
ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, sdpa_mask)  # padded rows and prompts keep their masks
