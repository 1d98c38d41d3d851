"""FSDP2 on CPU (two gloo processes through torchrun): the same training as DDP and as one process.

One process with `grad_accum=2`, fed rank 0's and rank 1's micro-batches in turn, trains on the
same global batch as two ranks; the loop normalises the loss by the global label count, so all
three must give the same losses (float tolerance: sharded reductions sum in another order).
Stage 1 (adapter only) then stage 2 (all parts): the stage switch changes what FSDP reduces.
"""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from manifests.io import write_shards
from manifests.schema import SPEECH, TEXT, Sample
from tests.trainer_samples import asr, text, tone, word_interleave, write_wav

WORDS = ["Alpha beta.", "Gamma delta epsilon!", "One two?", "Red green blue.", "Seven eight.", "Up down left.",
         "Nine ten eleven.", "Blue sky above."]
REPO = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent('''
    import json, os, sys
    import torch
    from trainer.batching import Batching, data_from_shards
    from trainer.loop import LoopConfig, train
    from trainer.model import SpeechLM, SpeechLMConfig
    from trainer.tokenizer import build_tokenizer

    samples, out, mode, steps = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    resume = sys.argv[5] if len(sys.argv) > 5 else ""
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    tok = build_tokenizer(%(words)r * 3, vocab_size=150)
    torch.manual_seed(rank + 10 * bool(resume))  # ranks (and a resumed run) start from other weights on purpose
    model = SpeechLM(SpeechLMConfig(enc_dim=32, enc_layers=2, enc_heads=2, proj_hidden=64, lm_hidden=64, lm_layers=2,
                                    lm_heads=2, lm_intermediate=128, dropout=0.0, ctc_weight=0.5,
                                    **json.loads(os.environ.get("MODEL_EXTRA", "{}"))), tok)  # e.g. LoRA
    batching = Batching(batching="packed", batch_size=1, context=64, pool=2)
    without_speech = []

    class Alternate:
        """One process reading rank 0's and rank 1's batches in turn (grad_accum=2: the global batch)."""
        def __init__(self, parts):
            self.parts, self.streams, self.batching, self.stats = parts, 1, parts[0].batching, parts[0].stats
        def tokens(self, stage):
            return sum(p.tokens(stage) for p in self.parts)
        def tokens_per_batch(self, stage):
            return self.parts[0].tokens_per_batch(stage)
        def loader(self, stage, cursors=None, next_stream=0, num_workers=0, pin_memory=False):
            its = [p.loader(stage) for p in self.parts]
            while True:
                for it in its:
                    batch = next(it)
                    yield {**batch, "stream": 0}

    if mode == "single":
        data = Alternate([data_from_shards(samples, tok, model.spec, batching, r, 2) for r in range(2)])
        accum = 2
    else:
        data = data_from_shards(samples, tok, model.spec, batching, rank, world)
        loader = data.loader
        def watched(*a, **k):
            for batch in loader(*a, **k):
                without_speech.append("mel" not in batch)
                yield batch
        data.loader = watched
        accum = 1
    cfg = LoopConfig(steps=steps, lr=3e-3, warmup_steps=2, log_every=5, device="cpu", stage1_share=1.0,
                     grad_accum=accum, parallel=mode if mode != "single" else "auto", save_every=3, keep_states=9,
                     resume=resume)
    result = train(model, data, cfg, out_dir=out, tok=tok, progress=False)
    if mode == "fsdp" and not resume:  # the consolidated checkpoint an FSDP run ends with
        from trainer.checkpoint import consolidated, save_checkpoint
        plain = consolidated(model, tok, rank)
        if rank == 0:
            save_checkpoint(plain, tok, os.path.join(out, "final"))
    with open(os.path.join(out, f"{mode}-rank{rank}{'-resumed' if resume else ''}.json"), "w") as f:
        json.dump({"history": result.history, "plans": [[p.name, p.steps] for p in result.plans],
                   "parallel": result.parallel, "without_speech": sum(without_speech)}, f)
''') % {"words": WORDS}


def make_shards(root: Path) -> str:
    samples = []
    for i, words in enumerate(WORDS):
        dur = 0.4 + 0.05 * i
        path = write_wav(root / f"u{i}.wav", tone(dur, 200 + 120 * i, 0.01, i))
        w = words.split()
        samples.append(asr(f"u{i}:asr", path, dur, words))
        samples.append(word_interleave(f"u{i}:w", path, dur, [(SPEECH, w[0], 0.0, dur / 2),
                                                              (TEXT, " ".join(w[1:]), 0, 0)]))
        samples.append(text(f"t{i}", [WORDS[(i + k) % len(WORDS)] for k in range(7)]))  # 57 tokens: a row of its own
    write_shards(samples, Sample, root / "samples", shard_size=4)  # 6 row groups, 3 per rank
    return str(root / "samples")


def launch(script: Path, samples: str, out: Path, mode: str, steps: int, resume: str = "",
           model_extra: dict | None = None) -> None:
    head = [sys.executable] if mode == "single" else [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    proc = subprocess.run(head + [str(script), samples, str(out), mode, str(steps)] + ([resume] if resume else []),
                          cwd=REPO, capture_output=True, text=True, timeout=400,
                          env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1",
                               "OMP_WAIT_POLICY": "PASSIVE", "MODEL_EXTRA": json.dumps(model_extra or {})})
    assert proc.returncode == 0, proc.stderr[-4000:]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("fsdp")
    samples = make_shards(root)
    script = root / "train.py"
    script.write_text(SCRIPT)
    outs = {}
    for mode in ("single", "ddp", "fsdp"):
        outs[mode] = root / mode
        outs[mode].mkdir()
        launch(script, samples, outs[mode], mode, 20)
    return root, script, samples, outs


def _load(out: Path, name: str) -> dict:
    return json.loads((out / f"{name}.json").read_text())


@pytest.mark.slow
def test_fsdp_ddp_and_one_process_give_the_same_losses(runs):
    _, _, _, outs = runs
    single = _load(outs["single"], "single-rank0")
    ddp = [_load(outs["ddp"], f"ddp-rank{r}") for r in range(2)]
    fsdp = [_load(outs["fsdp"], f"fsdp-rank{r}") for r in range(2)]
    assert [d["parallel"] for d in ddp + fsdp] == ["ddp", "ddp", "fsdp", "fsdp"]
    plans = single["plans"]
    assert plans[0][0] == "stage1" and plans[0][1] >= 2 and plans[1] == ["stage2", 20]
    assert all(d["plans"] == plans for d in ddp + fsdp)
    # every rank had batches without speech: the encoder ran on a stub there (FSDP would hang otherwise)
    assert all(d["without_speech"] > 0 for d in fsdp)
    losses = lambda d: [h["loss"] for h in d["history"]]  # noqa: E731
    assert len(losses(single)) == 20 + plans[0][1] and all(np.isfinite(losses(single)))
    assert losses(single)[-1] < losses(single)[0] - 0.5  # it learned something: the comparison is not vacuous
    for d in ddp + fsdp:
        assert losses(d) == pytest.approx(losses(single), rel=2e-4, abs=2e-4)
        assert [h["grad_norm"] for h in d["history"]] == pytest.approx([h["grad_norm"] for h in single["history"]],
                                                                       rel=2e-3, abs=1e-4)
        assert [h["total_loss"] for h in d["history"]] == pytest.approx([h["total_loss"] for h in single["history"]],
                                                                        rel=2e-4, abs=2e-4)
    assert [h["rank_loss"] for h in fsdp[0]["history"]] != [h["rank_loss"] for h in fsdp[1]["history"]]


@pytest.mark.slow
def test_fsdp_resume_repeats_the_losses_and_a_sharded_state_reloads_in_one_process(runs):
    root, script, samples, outs = runs
    full = _load(outs["fsdp"], "fsdp-rank0")
    n = len(full["history"])
    states = sorted(p.name for p in (outs["fsdp"] / "state").glob("step-*"))
    assert states[0] == "step-00000003" and states[-1] == f"step-{n:08d}"
    state = outs["fsdp"] / "state/step-00000003"  # inside stage 2: its AdamW state is sharded over the ranks
    assert (state / "dcp/.metadata").is_file() and not (state / "model.safetensors").exists()
    launch(script, samples, outs["fsdp"], "fsdp", 20, resume=str(state))
    for r in range(2):
        resumed = _load(outs["fsdp"], f"fsdp-rank{r}-resumed")
        assert [h["step"] for h in resumed["history"]] == list(range(4, n + 1))
        # losses, lr, grad norms, this rank's own loss: bit for bit
        assert resumed["history"] == _load(outs["fsdp"], f"fsdp-rank{r}")["history"][3:]

    import torch

    from trainer.checkpoint import load_checkpoint
    from trainer.decode import transcribe
    from manifests.schema import Utterance

    last = outs["fsdp"] / f"state/step-{n:08d}"
    sharded, tok = load_checkpoint(last)  # 2 ranks' shards, resharded into this one process
    final, _ = load_checkpoint(outs["fsdp"] / "final")  # the consolidated checkpoint
    a, b = sharded.state_dict(), final.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    utts = [Utterance(f"u{i}", str(root / f"u{i}.wav"), 0.0, 0.4 + 0.05 * i, 16000, "s", w, w, "c", "test")
            for i, w in enumerate(WORDS[:4])]
    hyps = [transcribe(m, tok, utts, max_new_tokens=8, progress=False).hypotheses for m in (sharded, final)]
    assert hyps[0] == hyps[1] and len(hyps[0]) == 4
