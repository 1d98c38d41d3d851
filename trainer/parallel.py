"""How the model is spread over the processes of a run: DDP (a full replica per rank) or FSDP2 (shards).

- `ddp`: every rank holds the whole model, its gradients and AdamW's state; gradients are
  all-reduced (torch `DistributedDataParallel`). Fastest when it fits.
- `fsdp`: torch's FSDP2 (`torch.distributed.fsdp.fully_shard`): each LM decoder layer and each
  encoder block is one unit, then the root (embeddings, projector, norms, heads); parameters,
  gradients and optimizer state are split over the ranks, a unit's full weights exist only while
  it runs (`reshard_after_forward`: free them again after the forward, all-gather in backward).
  On CUDA the parameters compute in bf16 and gradients are reduced in fp32
  (`MixedPrecisionPolicy`); `cpu_offload` keeps the shards and their AdamW state in host memory.
- `auto`: `ddp` on one process or when the memory plan says a replica fits; `fsdp` otherwise.

`fsdp` asked for in one process shards over a world of one (a one-rank process group is made when
none exists): each shard is the whole tensor, but the run takes the same code path as N ranks
(meta-device loading, bf16 gathers with fp32 reduction on CUDA, CPU offload, sharded states).

FSDP needs every rank to run every unit the same number of times per micro-batch (each run is an
all-gather): the model is told to encode all speech rows of a batch in one call and to run the
encoder on a silent stub when a batch has no speech (its output enters the loss times zero), and
parameters without a gradient on one rank are reduce-scattered as zeros.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as tdist
from torch import nn

from manifests.errors import JstipError

PARALLEL = ("auto", "ddp", "fsdp")


@dataclass
class Parallel:
    """The chosen mode and why (printed at start and kept in the report)."""

    mode: str
    reason: str


def choose_parallel(mode: str, world_size: int, ddp_fits: bool | None = None) -> Parallel:
    """Resolve `auto`: one process → no wrapping; a replica that fits → ddp; otherwise fsdp.

    `fsdp` is kept in one process (a world of one); `ddp` and `auto` there wrap nothing."""
    if mode not in PARALLEL:
        raise JstipError(f"parallel {mode!r} is unknown; use {', '.join(PARALLEL)}")
    if world_size <= 1:
        if mode == "fsdp":
            return Parallel("fsdp", "asked for; one process: a world of one rank")
        return Parallel("none", "one process")
    if mode != "auto":
        return Parallel(mode, "asked for")
    if ddp_fits is False:
        return Parallel("fsdp", "a full replica per device (ddp) does not fit the device memory (see --plan)")
    return Parallel("ddp", "a full replica fits each device" if ddp_fits else "device memory unknown: ddp")


def decoder_layers(lm: nn.Module) -> list[nn.Module]:
    """The transformer blocks of a transformers causal LM (Llama, Qwen2, ... all keep them in `.layers`)."""
    decoder = lm.get_decoder()
    layers = getattr(decoder, "layers", None)
    if layers is None:
        raise JstipError(f"cannot find the decoder layers of {type(lm).__name__} to shard; use parallel: ddp")
    return list(layers)


def broadcast_from_rank0(model: nn.Module) -> None:
    """Rank 0's weights and buffers on every rank (DDP does this itself; FSDP shards what each rank holds)."""
    with torch.no_grad():
        for t in list(model.parameters()) + list(model.buffers()):
            tdist.broadcast(t.data, 0)


def ensure_process_group(device: torch.device) -> None:
    """A one-rank process group when this process has none (FSDP in one process needs a device mesh)."""
    if not tdist.is_initialized():
        tdist.init_process_group("nccl" if device.type == "cuda" else "gloo", store=tdist.HashStore(), rank=0,
                                 world_size=1)


def shard_model(model: nn.Module, device: torch.device, bf16: bool = False, reshard_after_forward: bool = True,
                cpu_offload: bool = False, broadcast: bool = True) -> nn.Module:
    """FSDP2 over all ranks: encoder blocks and LM decoder layers one unit each, then the root (in place).

    `bf16`: parameters gathered and computed in bf16, gradients reduced in fp32 (CUDA runs).
    `broadcast`: give every rank rank 0's weights first (False for a model built on the meta
    device, whose ranks load their own shards: `sharded_load.py`).
    """
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import CPUOffloadPolicy, MixedPrecisionPolicy, OffloadPolicy, fully_shard

    if cpu_offload and device.type != "cuda":
        raise JstipError("cpu_offload moves FSDP shards from the GPU to host memory; it needs device cuda")
    ensure_process_group(device)
    mesh = init_device_mesh(device.type, (tdist.get_world_size(),))
    kw: dict[str, Any] = dict(mesh=mesh, offload_policy=CPUOffloadPolicy() if cpu_offload else OffloadPolicy())
    if bf16:
        kw["mp_policy"] = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    if broadcast and tdist.get_world_size() > 1:
        broadcast_from_rank0(model)
    for block in model.encoder.blocks():
        fully_shard(block, reshard_after_forward=reshard_after_forward, **kw)
    for layer in decoder_layers(model.base_lm()):
        fully_shard(layer, reshard_after_forward=reshard_after_forward, **kw)
    fully_shard(model, reshard_after_forward=False, **kw)  # the root's weights are needed again at once in backward
    model.set_reduce_scatter_unused_params(True)  # e.g. the CTC head on a rank whose batch has no ASR sample
    model.encode_max_padding = float("inf")  # one encoder call per batch on every rank
    model.always_encode = True
    return model


def is_sharded(model: nn.Module) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


def full_value(t: torch.Tensor) -> torch.Tensor:
    """A DTensor's whole value (e.g. the gradient norm of sharded gradients); plain tensors as they are."""
    from torch.distributed.tensor import DTensor

    return t.full_tensor() if isinstance(t, DTensor) else t
