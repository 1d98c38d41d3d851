"""Checkpoints in safetensors + JSON: the model for evaluation, and the full training state for resume.

A model checkpoint is a directory with `model.safetensors` (every weight, LoRA adapters and a
frozen Whisper encoder included), `speechlm_config.json`, `lm_config.json` and the tokenizer, so
loading needs neither the original LM nor the encoder path.
A training state (`<dir>/state/step-NNNNNNNN/`) adds `optimizer.safetensors` (AdamW moments and
step counts of the current stage, keyed by parameter name), `rng-rank<r>.safetensors` (torch CPU
and CUDA generators of each rank) and `trainer_state.json` (step, stage and stage step, each
rank's data cursors, scheduler, Python and NumPy RNG states, the settings that must not change
across a resume, the per-step losses and the samples set aside so far). An FSDP run's state holds
no `model.safetensors`/`optimizer.safetensors`: each rank writes its shards to `dcp/` instead
(`sharded.py`), and `load_checkpoint` reads such a state in one process like a plain checkpoint.
`export_lm` writes the LM alone as a Hugging Face model directory (for `train.lm`). A state is written to a temporary directory and
renamed, so a crash never leaves a half state that `resume=auto` would pick up.
Any of these directories may be an fsspec URL (`s3://bucket/run`): files are written to a local temporary
folder and put one by one (a training state's `trainer_state.json` last: a state without it is not
complete), sharded DCP states are written by every rank straight to the store (`sharded.py`), and
loading fetches the files directly in the directory (never its `state/` or `lm/` subfolders).
`init_parts` starts some parts of a new model from another run's checkpoint (`train.init_from`): e.g.
a speech encoder and adapter pretrained once on ASR speech and shared by every run of an experiment,
as the paper starts from a pretrained Conformer encoder.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from safetensors.torch import load_file, load_model, save_file, save_model
from transformers import AutoConfig, PreTrainedTokenizerBase

from manifests import storage
from manifests.errors import JstipError

from .model import SpeechLM, SpeechLMConfig, build_lm
from .sharded import full_state_dict, is_sharded_state, load_sharded_model, load_sharded_optimizer, save_sharded
from .tokenizer import load_tokenizer

CONFIG_FILE, LM_CONFIG_FILE, WEIGHTS_FILE = "speechlm_config.json", "lm_config.json", "model.safetensors"
OPTIM_FILE, STATE_FILE = "optimizer.safetensors", "trainer_state.json"


def save_checkpoint(model: SpeechLM, tok: PreTrainedTokenizerBase, directory: str | Path, weights: bool = True) -> Path | str:
    """Write weights (unless a sharded state holds them), both configs and the tokenizer to `directory`."""
    with storage.folder_to_write(directory) as folder:
        if weights:
            save_model(model, str(folder / WEIGHTS_FILE))
        (folder / CONFIG_FILE).write_text(json.dumps(dataclasses.asdict(model.cfg), indent=2) + "\n")
        (folder / LM_CONFIG_FILE).write_text(json.dumps(model.base_lm().config.to_dict(), indent=2) + "\n")
        tok.save_pretrained(str(folder))
    return _here(directory)


def _here(directory: str | Path) -> Path | str:
    """A local directory as a Path, a URL as it is (pathlib would fold `s3://` to `s3:/`)."""
    return str(directory) if storage.is_url(directory) else Path(directory)


def save_tokenizer(tok: PreTrainedTokenizerBase, directory: str | Path) -> None:
    with storage.folder_to_write(directory) as folder:
        tok.save_pretrained(str(folder))


def load_tokenizer_from(directory: str | Path) -> PreTrainedTokenizerBase:
    """The tokenizer saved in a checkpoint or state directory (local or a URL: its files only, not the weights)."""
    names = [n for n in storage.files_in(str(directory)) if not n.endswith(".safetensors")] if storage.is_url(directory) else ()
    with storage.local_folder(directory, only=tuple(names)) as folder:
        return load_tokenizer(folder)


def load_checkpoint(directory: str | Path, device: str | torch.device = "cpu") -> tuple[SpeechLM, PreTrainedTokenizerBase]:
    """Rebuild a `SpeechLM` and its tokenizer from `save_checkpoint` output (eval mode)."""
    present = set(storage.files_in(str(directory)))
    sharded = is_sharded_state(directory) and WEIGHTS_FILE not in present
    needed = (CONFIG_FILE, LM_CONFIG_FILE) if sharded else (WEIGHTS_FILE, CONFIG_FILE, LM_CONFIG_FILE)
    missing = [f for f in needed if f not in present]
    if missing:
        raise JstipError(f"checkpoint {directory} lacks {missing}; run the train stage first")
    with storage.local_folder(directory) as folder:
        model, tok = build_from_checkpoint(folder)
        if sharded:  # an FSDP training state: its shards, resharded into this one process
            load_sharded_model(directory, model)
        else:
            load_weights(model, folder / WEIGHTS_FILE)
    return model.to(device).eval(), tok


def build_from_checkpoint(directory: str | Path) -> tuple[SpeechLM, PreTrainedTokenizerBase]:
    """The model a checkpoint describes (configs and tokenizer), with fresh weights."""
    directory = Path(directory)
    known = {f.name for f in dataclasses.fields(SpeechLMConfig)}
    cfg = SpeechLMConfig(**{k: v for k, v in json.loads((directory / CONFIG_FILE).read_text()).items() if k in known})
    tok = load_tokenizer(directory)
    lm_dict = json.loads((directory / LM_CONFIG_FILE).read_text())
    lm_dict = {k: v for k, v in lm_dict.items() if not k.startswith("_")}  # e.g. the attention it was trained with
    lm = build_lm(cfg, tok, pretrained=False, lm_config=AutoConfig.for_model(lm_dict.pop("model_type"), **lm_dict))
    return SpeechLM(cfg, tok, lm=lm, pretrained=False), tok


def consolidated(model: SpeechLM, tok: PreTrainedTokenizerBase, rank: int) -> SpeechLM | None:
    """A plain CPU copy of a sharded model on rank 0 (None elsewhere); every rank must call.

    Built from the model's configs and filled with the gathered weights: what the final
    checkpoint and the Hugging Face export of an FSDP run are written from.
    """
    import copy

    full = full_state_dict(model)
    if rank != 0:
        return None
    cfg = copy.deepcopy(model.cfg)
    lm = build_lm(cfg, tok, pretrained=False, lm_config=copy.deepcopy(model.base_lm().config))
    plain = SpeechLM(cfg, tok, lm=lm, pretrained=False)
    plain.load_state_dict(full)
    return plain.eval()


def export_lm(model: SpeechLM, tok: PreTrainedTokenizerBase, directory: str | Path) -> Path:
    """The LM alone as a Hugging Face model directory (weights, config, tokenizer with our special tokens).

    `train.lm: <directory>` of a later run loads it with `from_pretrained`: e.g. an LM pretrained
    on text only (stage 0) before the speech stages. LoRA adapters are merged into a copy.
    """
    import copy

    lm = model.lm
    if hasattr(lm, "merge_and_unload"):
        lm = copy.deepcopy(lm).merge_and_unload()
        if hasattr(lm, "get_input_embeddings") and hasattr(lm.get_input_embeddings(), "merge_and_unload"):
            lm.set_input_embeddings(lm.get_input_embeddings().merge_and_unload())
    with storage.folder_to_write(directory) as folder:
        lm.save_pretrained(str(folder))
        tok.save_pretrained(str(folder))
    return _here(directory)


def load_weights(model: SpeechLM, path: Path) -> None:
    """Load `model.safetensors` into `model`; tied output weights may be absent, nothing else."""
    missing, unexpected = load_model(model, str(path), strict=False)
    if unexpected or [k for k in missing if not k.endswith("lm_head.weight")]:
        raise JstipError(f"checkpoint {path} does not match its config: missing {missing}, unexpected {unexpected}")


def _rng_state() -> dict[str, Any]:
    version, keys, gauss = random.getstate()
    return {"python": [version, list(keys), gauss], "numpy": _numpy_state()}


def _numpy_state() -> dict[str, Any]:
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    return {"name": name, "keys": keys.tolist(), "pos": int(pos), "has_gauss": int(has_gauss), "gauss": float(gauss)}


def _set_rng_state(state: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
    version, keys, gauss = state["python"]
    random.setstate((version, tuple(keys), gauss))
    n = state["numpy"]
    np.random.set_state((n["name"], np.array(n["keys"], dtype=np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    torch.set_rng_state(tensors["torch_cpu"])
    cuda = [tensors[k] for k in sorted(k for k in tensors if k.startswith("torch_cuda_"))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)


def save_rng(directory: Path, rank: int) -> None:
    """Torch CPU/CUDA generator states of this rank (safetensors) and the Python/NumPy ones (JSON)."""
    tensors = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        tensors.update({f"torch_cuda_{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
    save_file(tensors, str(directory / f"rng-rank{rank}.safetensors"))
    (directory / f"rng-rank{rank}.json").write_text(json.dumps(_rng_state()))


def load_rng(directory: Path, rank: int) -> None:
    path = directory / f"rng-rank{rank}.safetensors"
    if not path.exists():
        raise JstipError(f"{directory} has no RNG state for rank {rank}; resume with the same number of processes")
    _set_rng_state(json.loads((directory / f"rng-rank{rank}.json").read_text()), load_file(str(path)))


def optimizer_tensors(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    """The optimizer's per-parameter state as `{"<param name>/<key>": tensor}`."""
    names = {id(p): n for n, p in model.named_parameters()}
    out = {}
    for group in optimizer.param_groups:
        for p in group["params"]:
            for key, value in optimizer.state.get(p, {}).items():
                out[f"{names[id(p)]}/{key}"] = value.detach().cpu().contiguous()
    return out


def load_optimizer_tensors(model: torch.nn.Module, optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor],
                           groups: list[dict[str, Any]]) -> None:
    """Rebuild the optimizer's state dict from name-keyed tensors; `load_state_dict` moves and casts them
    (e.g. AdamW's step counts onto the GPU for the fused kernel)."""
    names = {id(p): n for n, p in model.named_parameters()}
    per_name: dict[str, dict[str, torch.Tensor]] = {}
    position = {names[id(p)]: i for i, p in enumerate(p for g in optimizer.param_groups for p in g["params"])}
    for key, value in tensors.items():
        name, _, field_ = key.rpartition("/")
        if name not in position:
            raise JstipError(f"optimizer state names parameter {name!r} that the model does not train; the model "
                             "config or freeze changed since the state was saved")
        per_name.setdefault(name, {})[field_] = value
    current = optimizer.state_dict()
    if len(groups) != len(current["param_groups"]):
        raise JstipError(f"saved optimizer has {len(groups)} parameter groups, this one {len(current['param_groups'])}")
    state = {position[n]: v for n, v in per_name.items()}
    param_groups = [{**saved, "params": g["params"]} for saved, g in zip(groups, current["param_groups"])]
    optimizer.load_state_dict({"state": state, "param_groups": param_groups})


def save_state(directory: str | Path, step: int, model: SpeechLM, tok: PreTrainedTokenizerBase,
               optimizer: torch.optim.Optimizer, scheduler: Any, state: dict[str, Any], rank: int = 0,
               world_size: int = 1, barrier: Any = None, keep: int = 2) -> Path | str:
    """Write the training state of `step` atomically under `directory`/state; keep the newest `keep`.

    Locally the state is renamed into place; in object storage (no rename) each rank puts its files
    into the state's folder and rank 0 puts `trainer_state.json` last, once every rank is done."""
    remote = storage.is_url(directory)
    root = storage.join(str(directory), "state")
    final = storage.join(root, f"step-{step:08d}")
    sharded = _is_fsdp(model)
    with tempfile.TemporaryDirectory(prefix="jstip-state-") if remote else contextlib.nullcontext() as staging:
        tmp = Path(staging) if remote else Path(root) / f".tmp-step-{step:08d}"
        if rank == 0:
            if remote:
                storage.remove(final)  # what an interrupted save of this step left
            else:
                shutil.rmtree(tmp, ignore_errors=True)
                tmp.mkdir(parents=True)
            save_checkpoint(model, tok, tmp, weights=not sharded)
            if not sharded:
                save_file(optimizer_tensors(model, optimizer), str(tmp / OPTIM_FILE))
        if barrier:
            barrier()
        if sharded:  # every rank writes its shards of weights and AdamW state
            save_sharded(final if remote else tmp, model, optimizer)
        save_rng(tmp, rank)
        if remote:
            storage.upload_folder(tmp, final)  # this rank's files (rank 0: the model's too)
        if barrier:
            barrier()
        if rank == 0:
            groups = [{k: v for k, v in g.items() if k != "params"} for g in optimizer.param_groups]
            meta = {**state, "step": step, "world_size": world_size, "optimizer_groups": groups,
                    "scheduler": {k: v for k, v in scheduler.state_dict().items() if k != "lr_lambdas"}}
            (tmp / STATE_FILE).write_text(json.dumps(meta, default=float))
            if remote:
                storage.upload(tmp / STATE_FILE, storage.join(final, STATE_FILE))  # the state is complete
            else:
                shutil.rmtree(final, ignore_errors=True)
                os.replace(tmp, final)
            for old in storage.folders_in(root, "step-*")[:-keep] if keep > 0 else []:
                storage.remove(old) if remote else shutil.rmtree(old, ignore_errors=True)
    if barrier:
        barrier()
    return _here(final)


def _is_fsdp(model: torch.nn.Module) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


def latest_state(directory: str | Path) -> Path | str | None:
    """The newest complete training state under `directory`/state, or None."""
    done = [p for p in storage.folders_in(storage.join(str(directory), "state"), "step-*")
            if storage.is_file(storage.join(p, STATE_FILE))]
    return _here(done[-1]) if done else None


def load_state(path: str | Path, model: SpeechLM, rank: int = 0) -> dict[str, Any]:
    """Restore weights and this rank's RNG from a training state; returns its trainer_state.json.

    The optimizer and scheduler are restored separately (`load_optimizer`), once the stage the
    state was saved in has built them.
    """
    if not storage.is_file(storage.join(str(path), STATE_FILE)):
        raise JstipError(f"{path} is not a training state (no {STATE_FILE}); give a state/step-* directory or resume=auto")
    sharded = is_sharded_state(path)
    if sharded != _is_fsdp(model):
        raise JstipError(f"{path} was saved by a {'sharded (fsdp)' if sharded else 'ddp'} run; resume "
                         "it with the same parallel setting")
    mine = (STATE_FILE, f"rng-rank{rank}.safetensors", f"rng-rank{rank}.json") + (() if sharded else (WEIGHTS_FILE,))
    with storage.local_folder(path, only=mine) as folder:
        meta = json.loads((folder / STATE_FILE).read_text())
        if sharded:
            load_sharded_model(path, model)
        else:
            load_weights(model, folder / WEIGHTS_FILE)
        load_rng(folder, rank)
    return meta


def load_optimizer(path: str | Path, model: SpeechLM, optimizer: torch.optim.Optimizer, scheduler: Any,
                   meta: dict[str, Any]) -> None:
    """Restore the AdamW moments and the scheduler of a training state."""
    if is_sharded_state(path):
        load_sharded_optimizer(path, model, optimizer)
    else:
        with storage.local_folder(path, only=(OPTIM_FILE,)) as folder:
            load_optimizer_tensors(model, optimizer, load_file(str(folder / OPTIM_FILE)), meta["optimizer_groups"])
    scheduler.load_state_dict({**scheduler.state_dict(), **meta["scheduler"]})


def init_parts(model: SpeechLM, directory: str | Path, parts: str = "encoder,projector") -> dict[str, Any]:
    """Copy the weights of `parts` (any of encoder, projector, lm) from checkpoint `directory` into `model`.

    The CTC head goes with the projector (as it trains with it) when both models have one of the same
    shape. Every tensor of a named part must be in the checkpoint with the same shape, else a
    JstipError names the first mismatches (a different encoder size or LM). Returns what was copied.
    """
    with init_weights_file(directory) as path:
        saved = load_file(str(path))
    keys, wanted = init_part_keys({k: tuple(v.shape) for k, v in model.state_dict().items()},
                                  {k: tuple(v.shape) for k, v in saved.items()}, parts, directory)
    copied = {k: saved[k] for k in keys}
    model.load_state_dict(copied, strict=False)
    return init_report(directory, wanted, {k: tuple(v.shape) for k, v in copied.items()})


@contextlib.contextmanager
def init_weights_file(directory: str | Path) -> Iterator[Path]:
    """`init_from`'s weights file (a jstip checkpoint's model.safetensors), as a local file while the
    block runs (fetched from the store when `directory` is a URL)."""
    if not storage.is_file(storage.join(str(directory), WEIGHTS_FILE)):
        raise JstipError(f"init_from {directory}: no {WEIGHTS_FILE}; give a checkpoint directory written by jstip train")
    with storage.local_folder(directory, only=(WEIGHTS_FILE,)) as folder:
        yield folder / WEIGHTS_FILE


def init_part_keys(own: dict[str, tuple[int, ...]], saved: dict[str, tuple[int, ...]], parts: str,
                   directory: str | Path) -> tuple[list[str], list[str]]:
    """The tensors (by name) `init_parts` copies, from both models' shapes, and the parts named.

    Shapes only, so the sharded loader (`sharded_load.py`) picks the same tensors without reading them.
    """
    from .model import PARTS

    wanted = [p.strip() for p in parts.split(",") if p.strip()]
    ctc_alone = "ctc" in wanted  # the CTC head without the adapter (e.g. a run whose adapter has another shape)
    wanted = [p for p in wanted if p != "ctc"]
    if not (wanted or ctc_alone) or set(wanted) - set(PARTS):
        raise JstipError(f"init_parts={parts!r} must name parts among {', '.join(PARTS)}, ctc (comma-separated)")
    prefixes = tuple(f"{p}." for p in wanted) + (("pooler.",) if "projector" in wanted else ())  # the spike pooler is adapter
    keys = [k for k in own if k.startswith(prefixes)]
    if "projector" in wanted or ctc_alone:
        keys += [k for k in own if k.startswith("ctc_head.") and k in saved and saved[k] == own[k]]
    tied = lambda k: k.endswith("lm_head.weight") and k not in saved  # noqa: E731  (saved once, as the embeddings)
    bad = [f"{k} (missing)" if k not in saved else f"{k} {saved[k]} vs {own[k]}"
           for k in keys if not tied(k) and (k not in saved or saved[k] != own[k])]
    if bad:
        raise JstipError(f"init_from {directory} does not fit this model's {', '.join(wanted)}: {bad[:3]}"
                         f"{' …' if len(bad) > 3 else ''}; use the same encoder and adapter sizes (enc_dim, enc_layers, "
                         "stack, proj_hidden) and LM as the run that wrote it")
    copied = [k for k in keys if k in saved]
    if ctc_alone and not any(k.startswith("ctc_head.") for k in copied):
        raise JstipError(f"init_parts names ctc but {directory} has no CTC head of this model's shape (or this model "
                         "has none: ctc_weight 0)")
    return copied, wanted


def init_report(directory: str | Path, wanted: list[str], copied: dict[str, tuple[int, ...]]) -> dict[str, Any]:
    """What `init_parts` copied, for the run's report."""
    return {"init_from": str(directory), "init_parts": wanted, "init_tensors": len(copied),
            "init_parameters": int(sum(math.prod(s) for s in copied.values())),
            "init_ctc_head": any(k.startswith("ctc_head.") for k in copied)}
