"""An FSDP model without a full copy of the LM per rank: built on the meta device, sharded, then each
rank reads only its own rows of the pretrained weights.

`from_pretrained` on each of N ranks puts N full fp32 copies of the LM in host memory before FSDP
shards them (a 7B LM: 28 GB per rank, 224 GB on an 8-GPU node). `build_sharded_model` instead:
1. builds the LM from its config with its parameters on the meta device (accelerate's
   `init_empty_weights`: nothing allocated; buffers such as the rotary table are computed for real)
   and lets LoRA wrap it there; the speech encoder, adapter and heads are built as usual, in full
   (the paper's encoder is ~5% of its model), with the same random draws as an ordinary build;
2. shards the model as `parallel.shard_model` does (FSDP2 per layer, then the root) and
   materialises only this rank's shards (`to_empty`); the parts built in full keep their values;
3. reads every parameter a checkpoint holds with `safetensors.safe_open(...).get_slice`: only the
   rows of dim 0 that this rank's shard holds (FSDP2 shards dim 0), the file opened per tensor so
   its mapped pages are let go at once, cast into the shard. Sources: the LM's Hugging Face
   directory (`model.safetensors`, or the files `model.safetensors.index.json` maps) and, with
   `init_from`, the `init_parts` of a jstip checkpoint (which win, as in the plain build). The
   shards are fp32 master weights whatever the checkpoint's dtype (a bf16 file's rows are cast as
   they are read; FSDP's mixed precision gathers them in bf16 on CUDA);
4. parameters no checkpoint holds get their usual init, computed on the whole tensor from a seed
   made of the run's seed and the parameter's name, so every rank and every world size agrees:
   LoRA's A Kaiming-uniform and B zeros (peft's), other LM weights the LM's `_init_weights`;
   vocabulary rows the checkpoint lacks (the added special tokens) are the mean of its rows
   (transformers' `resize_token_embeddings` samples around that mean); peft's trainable-token rows
   start as the loaded rows of their tokens, as peft starts them.
Peak host memory per rank: its shards, the parts built in full and one tensor's slice.
"""
from __future__ import annotations

import contextlib
import copy
import json
import math
import sys
import zlib
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from manifests.errors import JstipError

from .model import SpeechLM, SpeechLMConfig, build_lm
from .parallel import shard_model

INDEX_FILE, WEIGHTS_FILE = "model.safetensors.index.json", "model.safetensors"
# peft's names around the base model's own (`lm.base_model.model.<key>`, `<layer>.base_layer.weight`)
PEFT_WRAPPERS = ((".token_adapter.", "."), (".base_layer.", "."))


def lm_weights_dir(name: str) -> Path:
    """The local directory of the LM `name` (a path, or a name in the local Hugging Face cache)."""
    if Path(name).is_dir():
        return Path(name)
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(name, local_files_only=True))
    except Exception as exc:  # noqa: BLE001 (any lookup failure: no network is used)
        raise JstipError(f"cannot find LM {name!r} locally: {exc}; give a local model directory") from exc


def safetensors_map(directory: str | Path) -> dict[str, Path]:
    """{tensor key: the safetensors file holding it} of a Hugging Face model directory (one file or several)."""
    from safetensors import safe_open

    directory = Path(directory)
    if (directory / INDEX_FILE).is_file():
        weight_map = json.loads((directory / INDEX_FILE).read_text())["weight_map"]
        return {k: directory / f for k, f in weight_map.items()}
    if (directory / WEIGHTS_FILE).is_file():
        with safe_open(str(directory / WEIGHTS_FILE), "pt") as f:
            return {k: directory / WEIGHTS_FILE for k in f.keys()}
    raise JstipError(f"{directory} has no {WEIGHTS_FILE} or {INDEX_FILE}: sharded loading reads safetensors only "
                     "(save the LM with save_pretrained, which writes them) or use parallel: ddp")


def _shape(path: Path, key: str) -> tuple[int, ...]:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        return tuple(f.get_slice(key).get_shape())


def read_rows(path: Path, key: str, start: int, stop: int) -> torch.Tensor:
    """Rows [start, stop) of dim 0 of tensor `key` (a 0-d or 1-row slice works too), nothing else read."""
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:  # closed at once: the mapped pages leave this process's memory
        sl = f.get_slice(key)
        return sl[start:stop] if sl.get_shape() else f.get_tensor(key)


def mean_row(path: Path, key: str, chunk: int = 4096) -> torch.Tensor:
    """The mean of the rows of `key`, read `chunk` rows at a time (float64 sum)."""
    rows = _shape(path, key)[0]
    total = None
    for i in range(0, rows, chunk):
        part = read_rows(path, key, i, min(i + chunk, rows)).double().sum(0)
        total = part if total is None else total + part
    return total / rows


def local_rows(param: torch.Tensor) -> tuple[torch.Tensor, int]:
    """This rank's part of a parameter and the first row of dim 0 it holds (FSDP2: `torch.chunk` of dim 0)."""
    from torch.distributed.tensor import DTensor

    if not isinstance(param, DTensor):
        return param.data, 0
    local = param.to_local()
    if all(p.is_replicate() for p in param.placements):
        return local, 0
    if len(param.placements) != 1 or not param.placements[0].is_shard(0):
        raise JstipError(f"sharded loading expects FSDP's dim-0 shards, got placements {param.placements}")
    mesh = param.device_mesh
    chunk = -(-param.shape[0] // mesh.size())
    start = min(mesh.get_local_rank() * chunk, param.shape[0])
    if local.shape[0] != min(chunk, param.shape[0] - start):
        raise JstipError(f"a shard of {local.shape[0]} rows at row {start} of {tuple(param.shape)} is not torch.chunk's")
    return local, start


def _seed_for(seed: int, name: str) -> int:
    return (seed * 1_000_003 + zlib.crc32(name.encode())) % (2 ** 63)


def _seeded(seed: int, name: str, fn: Callable[[], torch.Tensor]) -> torch.Tensor:
    """`fn()` under a global RNG seeded from (seed, name), the caller's RNG untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_seed_for(seed, name))
        return fn()


def peft_init(name: str, shape: torch.Size, seed: int) -> torch.Tensor | None:
    """peft's init of a LoRA tensor (init_lora_weights=True): A Kaiming-uniform(√5), B and biases zeros; else None."""
    parts = name.split(".")
    if "lora_B" in parts or "lora_embedding_A" in parts or ("lora_A" in parts and parts[-1] == "bias"):
        return torch.zeros(shape)
    if "lora_A" in parts:
        return _seeded(seed, name, lambda: nn.init.kaiming_uniform_(torch.empty(shape), a=math.sqrt(5)))
    if "lora_embedding_B" in parts:
        return _seeded(seed, name, lambda: nn.init.normal_(torch.empty(shape)))
    return None


class LMInit:
    """The LM's own init (`_init_weights`) of a module's parameters, computed on a CPU copy of the module
    (taken while it is still on the meta device); the last module's values are kept for its other tensors."""

    def __init__(self, lm: nn.Module, seed: int) -> None:
        self.lm, self.seed, self.twins, self.last = lm, seed, {}, ("", {})

    def add(self, owner_name: str, owner: nn.Module) -> None:
        if owner_name not in self.twins:
            twin = copy.deepcopy(owner)
            for sub in twin.children():  # only the module's own tensors are initialised
                sub.to("meta")
            self.twins[owner_name] = twin

    def __call__(self, owner_name: str, leaf: str) -> torch.Tensor:
        if self.last[0] != owner_name:
            twin = self.twins[owner_name].to_empty(device="cpu", recurse=False)
            for p in twin.parameters(recurse=False):
                if hasattr(p, "_is_hf_initialized"):
                    del p._is_hf_initialized  # transformers skips tensors so marked

            def init() -> dict[str, torch.Tensor]:
                self.lm._init_weights(twin)
                return {n: p.detach().clone() for n, p in twin.named_parameters(recurse=False)}

            self.last = (owner_name, _seeded(self.seed, owner_name, init))
            twin.to("meta")
        return self.last[1][leaf]


class Sources:
    """Where each model parameter's values come from: a safetensors key, a tensor in memory, or a fresh init."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[Path, str]] = {}  # model name → (file, key)
        self.values: dict[str, torch.Tensor] = {}  # model name → full tensor (parts built in full, small inits)
        # model name → a function giving the full tensor, run when its shard is filled (one module at a time)
        self.fresh: dict[str, Callable[[], torch.Tensor]] = {}
        self.means: dict[tuple[Path, str], torch.Tensor] = {}

    def __contains__(self, name: str) -> bool:
        return name in self.files or name in self.values or name in self.fresh

    def rows(self, name: str, start: int, stop: int, total: int) -> torch.Tensor:
        """Rows [start, stop) of the model's parameter `name` (`total` rows); rows past a shorter checkpoint
        tensor (new vocabulary) are its mean row. A 0-d parameter is returned whole."""
        if name in self.values or name in self.fresh:
            value = self.values[name] if name in self.values else self.fresh[name]()
            return value if value.ndim == 0 else value[start:stop]
        path, key = self.files[name]
        shape = _shape(path, key)
        have = shape[0] if shape else total
        got = read_rows(path, key, start, min(stop, have)) if start < have or not shape else None
        if stop <= have or not shape:
            return got
        if (path, key) not in self.means:
            self.means[(path, key)] = mean_row(path, key).float()
        mean = self.means[(path, key)]
        extra = mean.expand(stop - max(start, have), *mean.shape)
        return extra if got is None else torch.cat([got.float(), extra])


def _lm_key(name: str) -> str:
    """The Hugging Face checkpoint key of an LM parameter named `name` in our model (under peft or not)."""
    name = name[len("lm."):]
    if name.startswith("base_model.model."):
        name = name[len("base_model.model."):]
    for wrapper, plain in PEFT_WRAPPERS:
        name = name.replace(wrapper, plain)
    return name


def meta_lm(cfg: SpeechLMConfig, tok: Any) -> nn.Module:
    """The configured LM with its parameters on the meta device (its config from `cfg.lm` or the sizes)."""
    from accelerate import init_empty_weights

    with init_empty_weights(include_buffers=False):
        lm = build_lm(cfg, tok, pretrained=False)
    lm.tie_weights()  # the context's re-registered meta parameters lose the tie of input and output embeddings
    return lm.float()  # fp32 master weights whatever the checkpoint's dtype (FSDP computes in bf16 on CUDA)


def build_sharded_model(cfg: SpeechLMConfig, tok: Any, device: torch.device, seed: int = 0, init_from: str = "",
                        init_parts: str = "encoder,projector", bf16: bool = False, reshard_after_forward: bool = True,
                        cpu_offload: bool = False, log: bool = True) -> tuple[SpeechLM, dict[str, Any]]:
    """The FSDP-sharded `SpeechLM` with its pretrained weights, no rank ever holding the whole LM.

    Every rank of the process group calls it with the same arguments (and RNG state: the parts built
    in full draw their init from it, as in `SpeechLM(cfg, tok)`). Returns the model and what was
    loaded from where (for the run's report).
    """
    with contextlib.ExitStack() as files:  # an init_from in a store is fetched for the duration of the load
        return _build(cfg, tok, device, seed, init_from, init_parts, bf16, reshard_after_forward, cpu_offload, log,
                      files)


def _build(cfg: SpeechLMConfig, tok: Any, device: torch.device, seed: int, init_from: str, init_parts: str, bf16: bool,
           reshard_after_forward: bool, cpu_offload: bool, log: bool,
           files: contextlib.ExitStack) -> tuple[SpeechLM, dict[str, Any]]:
    from .checkpoint import init_part_keys, init_report, init_weights_file

    model = SpeechLM(cfg, tok, lm=meta_lm(cfg, tok))
    params = dict(model.named_parameters())
    own = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    src = Sources()
    src.values = {n: p.detach() for n, p in params.items() if not p.is_meta}
    report: dict[str, Any] = {"lm_source": "", "lm_files": 0, "from_lm": 0, "fresh": [], "vocab_rows_added": {}}
    if cfg.lm:
        directory = lm_weights_dir(cfg.lm)
        where = safetensors_map(directory)
        report.update(lm_source=str(directory), lm_files=len(set(where.values())))
        prefix = getattr(model.base_lm(), "base_model_prefix", "")
        for name in params:
            if name.startswith("lm."):
                key = _lm_key(name)
                key = key if key in where or not key.startswith(prefix + ".") else key[len(prefix) + 1:]
                if key in where:
                    src.files[name] = (where[key], key)
        for name, (path, key) in src.files.items():
            have, want = _shape(path, key), own[name]
            if have[1:] != want[1:] or (have and have[0] > want[0]) or (have and have[0] < want[0] and
                                                                         "embed" not in name and "lm_head" not in name):
                raise JstipError(f"{path.name}: {key} has shape {have} but the model's {name} is {want}; the LM's "
                                 "config and weights disagree")
            if have and have[0] < want[0]:
                report["vocab_rows_added"][name] = want[0] - have[0]
        report["from_lm"] = len(src.files)
    init_buffers: dict[str, torch.Tensor] = {}
    if init_from:  # a jstip checkpoint's parts: they win over the LM's weights and the fresh build
        path = files.enter_context(init_weights_file(init_from))
        from safetensors import safe_open

        with safe_open(str(path), "pt") as f:
            saved = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
        keys, wanted = init_part_keys(own, saved, init_parts, init_from)
        for k in keys:
            if k in params:
                src.values.pop(k, None)
                src.files[k] = (path, k)
            else:
                init_buffers[k] = read_rows(path, k, 0, saved[k][0] if saved[k] else 0)
        report["init"] = init_report(init_from, wanted, {k: saved[k] for k in keys})
    lm_init = LMInit(model.base_lm(), seed)
    tokens = [n for n in params if ".trainable_tokens_delta." in n]  # peft's trainable tokens: set below
    for name, p in params.items():
        if name in src or name in tokens:
            continue
        if any(f".{w}." in name for w in ("lora_A", "lora_B", "lora_embedding_A", "lora_embedding_B")):
            src.fresh[name] = lambda name=name, shape=p.shape: peft_init(name, shape, seed)
        elif name.startswith("lm."):
            owner_name, _, leaf = name.rpartition(".")
            lm_init.add(owner_name, model.get_submodule(owner_name))
            src.fresh[name] = lambda owner_name=owner_name, leaf=leaf: lm_init(owner_name, leaf)
        else:
            raise JstipError(f"{name} is in no checkpoint and has no init the sharded loader knows; use parallel: ddp")
        report["fresh"].append(name)
    for name in tokens:  # peft starts them as the rows of their tokens (and keeps those as the originals)
        layer_name, _, adapter = name.rpartition(".trainable_tokens_delta.")
        layer = model.get_submodule(layer_name)
        weight = f"{layer_name}.base_layer.weight"
        src.values[name] = torch.stack([src.rows(weight, i, i + 1, own[weight][0])[0].float()
                                        for i in layer.token_indices[adapter]])
        original = layer.trainable_tokens_original[adapter]
        for bname, b in model.named_buffers(remove_duplicate=False):
            if b is original:
                init_buffers[bname] = src.values[name].clone()
    buffers = {n: b.detach().clone() for n, b in model.named_buffers() if not b.is_meta}
    buffers.update(init_buffers)
    missing = [n for n, b in model.named_buffers() if b.is_meta and n not in buffers]
    if missing:
        raise JstipError(f"buffers {missing[:3]} have no value on the meta device; use parallel: ddp")

    shard_model(model, device, bf16=bf16, reshard_after_forward=reshard_after_forward, cpu_offload=cpu_offload,
                broadcast=False)
    model.to_empty(device="cpu" if cpu_offload else device)
    with torch.no_grad():
        for name, p in model.named_parameters():
            local, start = local_rows(p)
            if local.ndim == 0:
                local.copy_(src.rows(name, 0, 0, 0))
            elif local.shape[0]:
                local.copy_(src.rows(name, start, start + local.shape[0], p.shape[0]).to(local.dtype))
        for name, value in buffers.items():
            model.get_buffer(name).copy_(value)
    if log and torch.distributed.get_rank() == 0:
        added = sum(report["vocab_rows_added"].values())
        print(f"train: sharded loading: {report['from_lm']} LM tensors read by rows from {report['lm_files']} "
              f"safetensors file(s)" + (f", {added} new vocabulary rows set to the mean row" if added else "")
              + (f", {len(report['fresh'])} tensors initialised fresh" if report["fresh"] else ""), file=sys.stderr)
    return model, report
