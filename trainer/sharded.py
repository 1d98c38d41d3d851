"""Sharded training states through `torch.distributed.checkpoint` (DCP), for FSDP runs.

Each rank writes only its own shards of the weights and of AdamW's moments (keyed by parameter
name, frozen parameters have none) into `<state>/dcp/`; DCP's metadata records how they tile
each tensor, so a state reloads into any number of processes: the same number to resume, one
process to evaluate, probe or export (`checkpoint.load_checkpoint` reads it like a plain
checkpoint). `full_state_dict` gathers the whole model once on rank 0's host memory for the
consolidated checkpoint and the Hugging Face export at the end of a run.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from manifests import storage

SHARDED_DIR = "dcp"


def is_sharded_state(directory: str | Path) -> bool:
    return storage.is_file(storage.join(str(directory), SHARDED_DIR, ".metadata"))


def _writing(directory: str | Path) -> dict[str, Any]:
    """`dcp.save`'s target for a state folder: at a URL (`s3://...`) through fsspec, every rank writing
    its own shards straight to the store; else the plain file system."""
    target = storage.join(str(directory), SHARDED_DIR)
    if not storage.is_url(target):
        return {"checkpoint_id": target}
    from torch.distributed.checkpoint._fsspec_filesystem import FsspecWriter

    return {"checkpoint_id": target, "storage_writer": FsspecWriter(target)}


def _reading(directory: str | Path) -> dict[str, Any]:
    """`dcp.load`'s source, the same way round."""
    target = storage.join(str(directory), SHARDED_DIR)
    if not storage.is_url(target):
        return {"checkpoint_id": target}
    from torch.distributed.checkpoint._fsspec_filesystem import FsspecReader

    return {"checkpoint_id": target, "storage_reader": FsspecReader(target)}


def save_sharded(directory: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer | None = None) -> None:
    """Every rank writes its shards of the model (and of the optimizer's state) to `directory`/dcp."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_model_state_dict, get_optimizer_state_dict

    state: dict[str, Any] = {"model": get_model_state_dict(model)}
    if optimizer is not None:
        state["optim"] = get_optimizer_state_dict(model, optimizer)
    dcp.save(state, **_writing(directory))


def load_sharded_model(directory: str | Path, model: nn.Module) -> None:
    """The weights of a sharded state into `model`, sharded or not, on any number of processes."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_model_state_dict, set_model_state_dict

    state = {"model": get_model_state_dict(model)}
    dcp.load(state, **_reading(directory))
    set_model_state_dict(model, state["model"])


def load_sharded_optimizer(directory: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """AdamW's moments and step counts of the parameters `optimizer` trains, from a sharded state."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict, set_optimizer_state_dict

    state = {"optim": get_optimizer_state_dict(model, optimizer)}
    dcp.load(state, **_reading(directory))
    set_optimizer_state_dict(model, optimizer, state["optim"])


def full_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The whole model's weights as CPU tensors on rank 0 (every rank must call; other ranks get {})."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
