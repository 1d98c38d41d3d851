"""Two-process DDP on CPU (gloo) through torchrun: both ranks train on their own row groups, replicas agree."""
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from safetensors.torch import load_file

from manifests.io import write_shards
from manifests.schema import SPEECH, TEXT, Sample
from tests.trainer_samples import asr, word_interleave

SR = 16000
WORDS = ["Alpha beta.", "Gamma delta epsilon!", "One two?", "Red green blue.", "Seven eight.", "Up down left."]

SCRIPT = textwrap.dedent('''
    import json, os, sys
    import torch
    from safetensors.torch import save_file
    from trainer.batching import Batching, data_from_shards
    from trainer.loop import LoopConfig, train
    from trainer.model import SpeechLM, SpeechLMConfig
    from trainer.tokenizer import build_tokenizer

    samples, out = sys.argv[1], sys.argv[2]
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    tok = build_tokenizer(%(words)r * 3, vocab_size=150)
    torch.manual_seed(rank)  # different inits on purpose: DDP must broadcast rank 0's weights
    model = SpeechLM(SpeechLMConfig(enc_dim=32, enc_layers=1, enc_heads=2, proj_hidden=64, lm_hidden=64, lm_layers=2,
                                    lm_heads=2, lm_intermediate=128, dropout=0.0, ctc_weight=0.5), tok)
    data = data_from_shards(samples, tok, model.spec, Batching(batching="packed", batch_size=1, context=96, pool=2),
                            rank, world)
    result = train(model, data, LoopConfig(steps=4, lr=3e-3, warmup_steps=1, log_every=2, device="cpu", save_every=4,
                                           stage1_share=0.5), out_dir=out, tok=tok, progress=False)
    save_file({k: v.contiguous() for k, v in model.state_dict().items() if k != "lm.lm_head.weight"},
              os.path.join(out, f"params-{rank}.safetensors"))
    with open(os.path.join(out, f"rank-{rank}.json"), "w") as f:
        json.dump({"world": result.world_size, "history": result.history, "records": result.records,
                   "samples": [s.sample_id for g in range(len(data.source.groups)) for s in data.source.read(g)],
                   "plans": [[p.name, p.steps] for p in result.plans]}, f)
''') % {"words": WORDS}


def make_shards(root: Path) -> str:
    rng = np.random.default_rng(0)
    samples = []
    for i, words in enumerate(WORDS):
        dur = 0.5 + 0.1 * i
        t = np.arange(int(dur * SR)) / SR
        path = root / f"u{i}.wav"
        sf.write(path, (0.2 * np.sin(2 * np.pi * (200 + 150 * i) * t) + 0.01 * rng.standard_normal(t.size)), SR)
        w = words.split()
        samples.append(asr(f"u{i}:asr", str(path), dur, words))
        samples.append(word_interleave(f"u{i}:w", str(path), dur, [(SPEECH, w[0], 0.0, dur / 2),
                                                                  (TEXT, " ".join(w[1:]), 0, 0)]))
    write_shards(samples, Sample, root / "samples", shard_size=3)  # 4 shards = 4 row groups
    return str(root / "samples")


@pytest.mark.slow
def test_two_process_ddp_on_gloo(tmp_path):
    samples = make_shards(tmp_path)
    script = tmp_path / "ddp_train.py"
    script.write_text(SCRIPT)
    out = tmp_path / "out"
    out.mkdir()
    repo = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           str(script), samples, str(out)], cwd=repo, capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "PYTHONPATH": str(repo), "OMP_NUM_THREADS": "1",
                                                                        "OMP_WAIT_POLICY": "PASSIVE"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((out / f"rank-{r}.json").read_text()) for r in range(2)]
    assert [r["world"] for r in ranks] == [2, 2]
    assert ranks[0]["plans"] == ranks[1]["plans"] and ranks[0]["plans"][0][0] == "stage1"  # same schedule
    n = sum(steps for _, steps in ranks[0]["plans"])
    for r in ranks:
        assert [h["step"] for h in r["history"]] == list(range(1, n + 1))
        assert all(np.isfinite(h["loss"]) and np.isfinite(h["grad_norm"]) for h in r["history"])
    # each rank read its own row groups: their own losses differ; the global loss and gradient norm do not
    assert set(ranks[0]["samples"]).isdisjoint(ranks[1]["samples"]) and ranks[0]["samples"] and ranks[1]["samples"]
    assert [h["rank_loss"] for h in ranks[0]["history"]] != [h["rank_loss"] for h in ranks[1]["history"]]
    assert [h["loss"] for h in ranks[0]["history"]] == [h["loss"] for h in ranks[1]["history"]]  # the global batch
    assert [h["grad_norm"] for h in ranks[0]["history"]] == pytest.approx([h["grad_norm"] for h in ranks[1]["history"]])
    # the log records sum tokens over both ranks
    assert ranks[0]["records"][-1]["tokens_per_s"] == pytest.approx(ranks[1]["records"][-1]["tokens_per_s"], rel=0.5)
    a, b = load_file(str(out / "params-0.safetensors")), load_file(str(out / "params-1.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert np.allclose(a[k].numpy(), b[k].numpy(), atol=1e-6), k
    state = out / f"state/step-{n:08d}"
    assert (state / "rng-rank0.safetensors").exists() and (state / "rng-rank1.safetensors").exists()
    assert json.loads((state / "trainer_state.json").read_text())["world_size"] == 2
