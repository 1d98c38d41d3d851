"""Loading without a full copy per rank (trainer/sharded_load.py), on CPU with two gloo processes.

The test saves a tiny Llama with `save_pretrained(max_shard_size=...)` so its weights span several
safetensors files and an index, then builds the speech-LLM on it three ways: plainly in one
process (`SpeechLM`: `from_pretrained`), and with the meta-device loader over two ranks and over a
world of one. The sharded models must hold exactly the plain model's weights (gathered) and give
its loss and logits on a packed batch of speech and text; with LoRA too (A drawn by name, B zero);
a jstip checkpoint's parts (`init_from`) land in the shards as they land in the plain model.
"""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent('''
    import json, os, sys
    import torch
    from safetensors.torch import save_file
    from trainer.data import Collator, Features, Item
    from trainer.model import SpeechLM, SpeechLMConfig
    from trainer.tokenizer import load_tokenizer
    from tests.trainer_samples import asr, flac, text, tone, word_interleave
    from manifests.schema import SPEECH, TEXT

    lm_dir, out, mode, extra = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
    rank = int(os.environ.get("RANK", "0"))
    tok = load_tokenizer(lm_dir)
    cfg = SpeechLMConfig(lm=lm_dir, enc_dim=32, enc_layers=2, enc_heads=2, proj_hidden=48, dropout=0.0, ctc_weight=0.5,
                         **extra)
    torch.manual_seed(0)
    if mode == "plain":
        model = SpeechLM(cfg, tok)
        if "init_from" in os.environ:
            from trainer.checkpoint import init_parts
            init_parts(model, os.environ["init_from"], "encoder,projector")
    else:
        import torch.distributed as tdist
        from trainer.parallel import ensure_process_group
        from trainer.sharded_load import build_sharded_model
        from trainer.sharded import full_state_dict
        if "WORLD_SIZE" in os.environ:
            tdist.init_process_group("gloo")
        ensure_process_group(torch.device("cpu"))
        model, report = build_sharded_model(cfg, tok, torch.device("cpu"), seed=0,
                                            init_from=os.environ.get("init_from", ""))
    model.eval()
    wave = tone(0.6, 300, 0.01, 1)
    samples = [asr("u0:asr", "", 0.6, "alpha beta gamma", audio=flac(wave)),
               word_interleave("u0:w", "", 0.6, [(SPEECH, "alpha", 0.0, 0.3), (TEXT, "beta gamma delta", 0, 0)],
                               audio=flac(wave)),
               text("t0", ["gamma delta alpha", "beta beta"])]
    feats = Features(model.spec)
    items = [Item(s, feats(s) if s.audio else None) for s in samples]
    batch = Collator(tok, model.spec)(items, rows=[0, 0, 1])
    with torch.no_grad():
        o = model(batch)
    state = full_state_dict(model) if mode != "plain" else model.state_dict()
    if rank == 0:
        save_file({k: v.detach().clone() for k, v in state.items()}, os.path.join(out, f"{mode}-state.safetensors"))
        torch.save({"loss": o.loss, "logits": o.logits, "ctc": o.ctc_loss}, os.path.join(out, f"{mode}-out.pt"))
        if mode != "plain":
            with open(os.path.join(out, f"{mode}-report.json"), "w") as f:
                json.dump(report, f)
''')


def make_lm(root: Path, vocab_extra: int = 0) -> Path:
    """A tiny Llama and its tokenizer, the weights in several safetensors files with an index."""
    from transformers import AutoModelForCausalLM, LlamaConfig

    from trainer.tokenizer import build_tokenizer

    tok = build_tokenizer(["alpha beta gamma delta epsilon"] * 40 + ["Alpha, beta; gamma."] * 10, vocab_size=120)
    cfg = LlamaConfig(vocab_size=len(tok) - vocab_extra, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, intermediate_size=96, tie_word_embeddings=True,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    torch.manual_seed(123)
    lm = AutoModelForCausalLM.from_config(cfg)
    with torch.no_grad():  # norms away from 1 so a norm left at its init would show
        for name, p in lm.named_parameters():
            if "norm" in name:
                p.uniform_(0.5, 1.5)
    directory = root / "lm"
    lm.save_pretrained(directory, max_shard_size="30KB")
    tok.save_pretrained(directory)
    return directory


def run(script: Path, lm_dir: Path, out: Path, mode: str, extra: dict | None = None, env: dict | None = None) -> None:
    head = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"] \
        if mode == "fsdp2" else [sys.executable]
    proc = subprocess.run(head + [str(script), str(lm_dir), str(out), mode, json.dumps(extra or {})], cwd=REPO,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", **(env or {})})
    assert proc.returncode == 0, proc.stderr[-4000:]


def compare(out: Path, mode: str) -> dict:
    from safetensors.torch import load_file

    plain, sharded = load_file(str(out / "plain-state.safetensors")), load_file(str(out / f"{mode}-state.safetensors"))
    assert plain.keys() == sharded.keys()
    different = [k for k in plain if not torch.equal(plain[k], sharded[k])]
    assert not different, different[:5]
    a, b = torch.load(out / "plain-out.pt"), torch.load(out / f"{mode}-out.pt")
    assert torch.allclose(a["logits"], b["logits"], atol=1e-5, rtol=1e-5)
    assert float(a["loss"]) == pytest.approx(float(b["loss"]), rel=1e-5)
    return json.loads((out / f"{mode}-report.json").read_text())


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("sharded_load")
    script = root / "load.py"
    script.write_text(SCRIPT)
    return root, script, make_lm(root)


@pytest.mark.slow
def test_sharded_loading_gives_the_plain_models_weights_and_loss(setup):
    root, script, lm_dir = setup
    files = sorted(p.name for p in lm_dir.glob("*.safetensors"))
    assert len(files) >= 3 and (lm_dir / "model.safetensors.index.json").is_file()
    out = root / "full"
    out.mkdir()
    for mode in ("plain", "fsdp2", "fsdp1"):
        run(script, lm_dir, out, mode)
    for mode in ("fsdp2", "fsdp1"):
        report = compare(out, mode)
        assert report["lm_files"] == len(files) and report["from_lm"] > 10 and report["fresh"] == []


@pytest.mark.slow
def test_sharded_loading_with_lora_and_init_from(setup):
    root, script, lm_dir = setup
    out = root / "lora"
    out.mkdir()
    # a jstip checkpoint whose encoder and projector the run starts from
    from trainer.checkpoint import save_checkpoint
    from trainer.model import SpeechLM, SpeechLMConfig
    from trainer.tokenizer import load_tokenizer

    tok = load_tokenizer(lm_dir)
    torch.manual_seed(7)
    donor = SpeechLM(SpeechLMConfig(lm=str(lm_dir), enc_dim=32, enc_layers=2, enc_heads=2, proj_hidden=48,
                                    ctc_weight=0.5), tok)
    save_checkpoint(donor, tok, root / "donor")
    env = {"init_from": str(root / "donor")}
    for mode in ("plain", "fsdp2"):
        run(script, lm_dir, out, mode, {"lora_r": 4}, env)
    from safetensors.torch import load_file

    plain, sharded = load_file(str(out / "plain-state.safetensors")), load_file(str(out / "fsdp2-state.safetensors"))
    lora_a = sorted(k for k in plain if ".lora_A." in k)
    assert lora_a and all(not torch.equal(plain[k], sharded[k]) for k in lora_a)  # drawn by name: other values
    for k in lora_a:  # ... from the same distribution (peft's Kaiming-uniform bound 1/sqrt(fan_in))
        assert sharded[k].abs().max() <= 1 / plain[k].shape[1] ** 0.5 and sharded[k].std() > 0
    for k in lora_a:
        sharded[k] = plain[k]
    assert all(torch.equal(plain[k], sharded[k]) for k in plain), [k for k in plain if not torch.equal(plain[k], sharded[k])][:5]
    donor_state = donor.state_dict()
    assert all(torch.equal(sharded[k], donor_state[k]) for k in sharded if k.startswith(("encoder.", "projector.")))
    a, b = torch.load(out / "plain-out.pt"), torch.load(out / "fsdp2-out.pt")  # B = 0: LoRA adds nothing yet
    assert float(a["loss"]) == pytest.approx(float(b["loss"]), rel=1e-5)
    report = json.loads((out / "fsdp2-report.json").read_text())
    assert report["init"]["init_tensors"] > 0 and any(".lora_B." in n for n in report["fresh"])


def test_rows_are_read_per_shard_and_new_vocabulary_rows_are_the_mean(tmp_path):
    from safetensors.torch import save_file

    from trainer.sharded_load import Sources, local_rows, safetensors_map

    emb = torch.arange(15, dtype=torch.bfloat16).reshape(5, 3)
    save_file({"model.embed_tokens.weight": emb, "model.norm.weight": torch.ones(3)}, str(tmp_path / "model.safetensors"))
    where = safetensors_map(tmp_path)
    assert set(where) == {"model.embed_tokens.weight", "model.norm.weight"}
    src = Sources()
    src.files["lm.model.embed_tokens.weight"] = (where["model.embed_tokens.weight"], "model.embed_tokens.weight")
    # the model has 8 rows (3 added tokens); rank 1 of 2 holds rows 4..7: one from the file, three new
    rows = src.rows("lm.model.embed_tokens.weight", 4, 8, 8)
    mean = emb.float().mean(0)
    assert torch.equal(rows[0], emb[4].float()) and all(torch.allclose(r, mean) for r in rows[1:])
    assert torch.equal(src.rows("lm.model.embed_tokens.weight", 0, 4, 8), emb[:4])  # rank 0: the file's rows only
    plain = torch.zeros(4, 2)
    assert local_rows(plain)[1] == 0 and local_rows(plain)[0].data_ptr() == plain.data_ptr()
    with pytest.raises(Exception, match="safetensors"):
        safetensors_map(tmp_path / "nowhere")


@pytest.mark.slow
def test_jstip_train_with_fsdp_loads_a_pretrained_lm_by_rows_and_extends_its_vocabulary(tmp_path):
    """`jstip train` over two ranks with `parallel: fsdp`, a pretrained LM lacking 6 of the tokenizer's tokens
    and LoRA: rows read per rank, the new rows the mean, a consolidated checkpoint that loads."""
    from tests.test_trainer_stages import TINY, make_corpus, outputs

    make_corpus(tmp_path)
    make_lm(tmp_path, vocab_extra=6)
    tiny = {k: v for k, v in TINY.items() if not k.startswith("lm_") and k != "vocab_size"}
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(f'''
        from pipeline.stage_train import TrainConfig, run
        run(TrainConfig(samples={str(tmp_path / "samples")!r}, lm={str(tmp_path / "lm")!r}, steps=4, lr=3e-3,
                        warmup_steps=2, loss_window=2, parallel="fsdp", lora_r=4, **{outputs(tmp_path)!r},
                        **{tiny!r}))
    '''))
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           str(script)], cwd=REPO, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "6 new vocabulary rows set to the mean row" in proc.stderr
    report = json.loads((tmp_path / "reports/train.json").read_text())
    assert report["parallel"] == "fsdp" and report["world_size"] == 2
    loaded = report["sharded_load"]
    assert loaded["from_lm"] == 20 and loaded["lm_files"] > 2 and list(loaded["vocab_rows_added"].values()) == [6]
    from trainer.checkpoint import load_checkpoint

    model, tok = load_checkpoint(tmp_path / "ck")
    assert model.lm.get_input_embeddings().weight.shape[0] == len(tok)
