"""`parallel: fsdp` in one process: FSDP2 over a world of one rank (trainer/parallel.py makes the group).

The loop trains the same model the same way sharded over one rank as unwrapped (same losses), and
`jstip train` with `parallel: fsdp` builds the model on the meta device (sharded_load.py), trains,
writes sharded training states and ends with a consolidated checkpoint that loads in a plain process.
Run in a subprocess: it makes a process group, which should not outlive the test.
"""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent('''
    import copy, dataclasses, json, sys
    from pathlib import Path
    import torch
    from pipeline.stage_train import TrainConfig, run as train_stage
    from tests.test_trainer_stages import TINY, make_corpus, outputs
    from trainer.batching import Batching, data_from_shards
    from trainer.loop import LoopConfig, train
    from trainer.model import SpeechLM, SpeechLMConfig
    from trainer.tokenizer import build_tokenizer

    root = Path(sys.argv[1])
    paths = make_corpus(root)
    tok = build_tokenizer(["Take aspirin daily.", "Fly to New York!", "Walk to the park."] * 5, vocab_size=150)
    torch.manual_seed(0)
    model = SpeechLM(SpeechLMConfig(enc_dim=32, enc_layers=1, enc_heads=2, proj_hidden=64, lm_hidden=64, lm_layers=2,
                                    lm_heads=2, lm_intermediate=128, dropout=0.0, ctc_weight=0.5), tok)
    twin = copy.deepcopy(model)
    data = data_from_shards(paths["samples"], tok, model.spec, Batching(batch_size=2, context=128, pool=2))
    cfg = LoopConfig(steps=6, lr=3e-3, warmup_steps=2, device="cpu", stage1_share=1.0)
    plain = train(model, data, cfg, progress=False)
    sharded = train(twin, data, dataclasses.replace(cfg, parallel="fsdp"), progress=False)
    out = {"plain": plain.history, "sharded": sharded.history, "modes": [plain.parallel, sharded.parallel]}
    metrics = train_stage(TrainConfig(samples=paths["samples"], steps=20, lr=3e-3, warmup_steps=4, loss_window=4,
                                      parallel="fsdp", save_every=10, **outputs(root), **TINY))
    out["metrics"] = metrics
    print("RESULT " + json.dumps(out))
''')


@pytest.mark.slow
def test_fsdp_in_one_process_shards_over_a_world_of_one_and_trains(tmp_path):
    script = tmp_path / "one.py"
    script.write_text(SCRIPT)
    proc = subprocess.run([sys.executable, str(script), str(tmp_path)], cwd=REPO, capture_output=True, text=True,
                          timeout=600, env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads(proc.stdout.split("RESULT ", 1)[1])
    assert out["modes"] == ["none", "fsdp"]
    assert len(out["plain"]) == len(out["sharded"]) > 6  # stage 1, then stage 2's 6 steps
    for a, b in zip(out["plain"], out["sharded"]):
        assert a["stage"] == b["stage"]
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5, abs=1e-6)
        assert b["grad_norm"] == pytest.approx(a["grad_norm"], rel=1e-4, abs=1e-6)

    metrics = out["metrics"]
    assert metrics["loss_last"] < metrics["loss_first"] - 0.3  # it trains
    report = json.loads((tmp_path / "reports/train.json").read_text())
    assert report["parallel"] == "fsdp" and report["world_size"] == 1
    assert report["sharded_load"]["from_lm"] == 0 and report["sharded_load"]["fresh"] > 10  # LM from sizes: all fresh
    ckpt = tmp_path / "ck"
    states = sorted((ckpt / "state").glob("step-*"))
    assert states and all((s / "dcp/.metadata").is_file() and not (s / "model.safetensors").exists() for s in states)
    from trainer.checkpoint import load_checkpoint

    final, _ = load_checkpoint(ckpt)  # the consolidated checkpoint
    last, _ = load_checkpoint(states[-1])  # the last sharded state, read in this plain process
    a, b = final.state_dict(), last.state_dict()
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
