"""Pretrained speech encoders through transformers' AutoModel (`encoder: hf`): wav2vec2, HuBERT,
wav2vec2-conformer (raw waveform in) and w2v-BERT 2.0 (stacked fbank in), each a tiny config built and
`save_pretrained` here and loaded back from its directory as a user's checkpoint would be."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import (HubertConfig, HubertModel, Wav2Vec2BertConfig, Wav2Vec2BertModel, Wav2Vec2Config,
                          Wav2Vec2ConformerConfig, Wav2Vec2ConformerModel, Wav2Vec2FeatureExtractor, Wav2Vec2Model)

from manifests.errors import JstipError
from manifests.schema import Utterance
from tests.trainer_samples import SR, asr, tone, write_wav
from trainer.batching import Batching, data_from_samples
from trainer.checkpoint import load_checkpoint, save_checkpoint
from trainer.config import TrainConfig
from trainer.data import Collator, SampleDataset
from trainer.decode import transcribe
from trainer.features import feature_extractor
from trainer.loop import LoopConfig, train
from trainer.memory_plan import count_model
from trainer.model import SpeechLM, SpeechLMConfig, count_parameters
from trainer.run import plan_text
from trainer.tokenizer import build_tokenizer

WORDS = ["Alpha beta.", "Gamma delta epsilon!", "One two?", "Red green blue."]
TINY = dict(proj_hidden=64, lm_hidden=64, lm_layers=2, lm_heads=2, lm_intermediate=128)
BLOCKS = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
CONV = dict(conv_dim=(16, 16, 16, 16), conv_kernel=(10, 4, 4, 4), conv_stride=(5, 4, 4, 4),  # 320 samples: 20 ms
            num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2)
# family -> (model class, config, encoder frame in ms read from that config)
FAMILIES = {
    "wav2vec2": (Wav2Vec2Model, Wav2Vec2Config(**BLOCKS, **CONV), 20),
    # strides 5·4·4·8 = 640 samples: a 40 ms encoder, to show the rate comes from the config
    "hubert": (HubertModel, HubertConfig(**BLOCKS, **{**CONV, "conv_kernel": (10, 4, 4, 8),
                                                      "conv_stride": (5, 4, 4, 8)}), 40),
    "wav2vec2-conformer": (Wav2Vec2ConformerModel, Wav2Vec2ConformerConfig(**BLOCKS, **CONV, feat_extract_norm="layer",
                                                                           conv_depthwise_kernel_size=7), 20),
    "w2v-bert": (Wav2Vec2BertModel, Wav2Vec2BertConfig(**BLOCKS, conv_depthwise_kernel_size=7,
                                                       left_max_position_embeddings=16,
                                                       right_max_position_embeddings=4), 20),
}


@pytest.fixture(scope="module")
def encoder_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf_encoders")
    dirs = {}
    for name, (cls, config, _) in FAMILIES.items():
        torch.manual_seed(0)
        dirs[name] = root / name
        cls(config).save_pretrained(dirs[name])
    # wav2vec2's directory carries its feature extractor's settings (as a hub checkpoint does): read, not assumed
    Wav2Vec2FeatureExtractor(do_normalize=False).save_pretrained(dirs["wav2vec2"])
    return dirs


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf_corpus")
    samples, utts = [], []
    for i, words in enumerate(WORDS):
        dur = 0.5 + 0.2 * i
        path = write_wav(root / f"u{i}.wav", tone(dur, 300 + 400 * i, 0.01, i))
        samples.append(asr(f"u{i}", path, dur, words))
        utts.append(Utterance(f"u{i}", path, 0.0, dur, SR, "s", words, words.lower(), "synth", "test"))
    return samples, utts, build_tokenizer(WORDS * 3, vocab_size=150)


def _model(encoder_dirs, tok, family, **kw):
    return SpeechLM(SpeechLMConfig(**{**TINY, "encoder": "hf", "encoder_path": str(encoder_dirs[family]), **kw}), tok)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_each_family_trains_decodes_and_runs_at_its_configs_frame_rate(encoder_dirs, corpus, family, tmp_path):
    samples, utts, tok = corpus
    torch.manual_seed(0)
    np.random.seed(0)  # transformers draws SpecAugment's masks from numpy's global generator
    # the encoder trains too (SpecAugment, backward through it), with the CTC head of TrainConfig's default
    model = _model(encoder_dirs, tok, family, freeze="", ctc_weight=1.0)
    frame_ms = FAMILIES[family][2]
    assert model.spec.frame_duration == pytest.approx(frame_ms * model.cfg.stack / 1000)
    # one second of audio: the encoder's own output length and the positions the collator counts agree
    second = tone(1.0, 440)
    rows = feature_extractor(model.spec)(second)
    with torch.no_grad():
        hidden, lens = model.eval().encoder(rows[None], torch.tensor([rows.shape[0]]))
    assert hidden.shape[1] == rows.shape[0] == SR // (SR * frame_ms // 1000) + 1  # one row per encoder frame
    positions = model.encode(rows[None], torch.tensor([rows.shape[0]]))[1][0]
    assert abs(positions - 1000 / (frame_ms * model.cfg.stack)) <= 1
    if model.spec.features == "waveform":  # the model's own count of frames for 1 s of raw samples
        own = int(model.encoder.model._get_feat_extract_output_lengths(torch.tensor(SR)))
    else:  # w2v-BERT: SeamlessM4TFeatureExtractor's own count of stacked frames
        own = feature_extractor(model.spec).extractor(second, sampling_rate=SR)["input_features"][0].shape[0]
    assert 0 <= rows.shape[0] - own <= 2  # rows pad the clip's last frame or two

    data = data_from_samples(samples, tok, model.spec, Batching(batching="packed", batch_size=2, context=256))
    result = train(model.train(), data, LoopConfig(steps=12, lr=1e-2, warmup_steps=1, device="cpu", stage1_share=0.0),
                   progress=False)
    assert np.mean(result.losses[-3:]) < np.mean(result.losses[:3])
    hyps = transcribe(model.eval(), tok, utts[:2], batch_size=2, max_new_tokens=4, progress=False).hypotheses
    assert [h.utt_id for h in hyps] == ["u0", "u1"] and all(h.hypothesis for h in hyps)

    # a checkpoint holds the encoder's config and feature settings: it loads without the original directory
    save_checkpoint(model, tok, tmp_path / "ck")
    cfg = json.loads((tmp_path / "ck" / "speechlm_config.json").read_text())
    cfg["encoder_path"] = str(tmp_path / "gone")
    (tmp_path / "ck" / "speechlm_config.json").write_text(json.dumps(cfg))
    loaded, _ = load_checkpoint(tmp_path / "ck")
    assert loaded.spec == model.spec
    ds = SampleDataset(samples, model.spec)
    batch = Collator(tok, model.spec)([ds[0], ds[3]])
    with torch.no_grad():
        assert torch.allclose(model(batch).logits, loaded(batch).logits, atol=1e-5)

    plan = TrainConfig(encoder="hf", encoder_path=str(encoder_dirs[family]), **TINY, vocab_size=150)
    counts = count_model(plan)  # built on meta: the same parameters as the model, the encoder frozen by auto
    assert counts.total == count_parameters(model)
    assert counts.enc_layers == 2 and counts.enc_dim == 32
    # the conv front end's activations per frame: 3 × 16 channels at 64, 16, 4, 1 (or 2) positions per frame
    assert counts.enc_front == (0 if family == "w2v-bert" else
                                320 + 3 * 16 * (64 + 16 + 4 + 1) if frame_ms == 20 else 640 + 3 * 16 * (128 + 32 + 8 + 1))
    assert counts.trained == counts.total - count_parameters(model.encoder)
    assert "| **total** |" in plan_text(plan)


def test_inputs_follow_the_models_feature_extractor(encoder_dirs, corpus):
    samples, _, tok = corpus
    w2v = _model(encoder_dirs, tok, "wav2vec2")
    conformer = _model(encoder_dirs, tok, "wav2vec2-conformer")
    bert = _model(encoder_dirs, tok, "w2v-bert")
    assert (w2v.spec.features, w2v.spec.normalize, w2v.spec.n_mels) == ("waveform", False, 320)  # its preprocessor
    assert (conformer.spec.features, conformer.spec.normalize) == ("waveform", True)  # transformers' default
    assert (bert.spec.features, bert.spec.n_mels) == ("fbank", 160)
    wave = tone(0.7, 500) + 0.3
    raw = feature_extractor(w2v.spec)(wave)
    assert torch.allclose(raw.flatten()[: wave.size], torch.from_numpy(wave))  # the samples themselves
    norm = feature_extractor(conformer.spec)(wave).flatten()[: wave.size]
    assert abs(float(norm.mean())) < 1e-3 and float(norm.std()) == pytest.approx(1.0, abs=1e-2)
    fbank = feature_extractor(bert.spec)(wave)
    assert fbank.shape == (wave.size // 320 + 1, 160)
    # `freeze: auto` freezes a pretrained encoder, as for Whisper
    assert w2v.frozen == {"encoder"} and not any(p.requires_grad for p in w2v.encoder.parameters())


def test_layer_norm_encoders_mask_their_padding(encoder_dirs, corpus):
    """w2v-BERT's frames of a short row do not depend on the padding of a longer one in its batch."""
    samples, _, tok = corpus
    model = _model(encoder_dirs, tok, "w2v-bert").eval()
    ds = SampleDataset(samples, model.spec)
    short, both = Collator(tok, model.spec)([ds[0]]), Collator(tok, model.spec)([ds[0], ds[3]])
    with torch.no_grad():
        alone, n = model.encode(short["mel"], short["mel_lens"], max_padding=float("inf"))
        batched, _ = model.encode(both["mel"], both["mel_lens"], max_padding=float("inf"))
    assert torch.allclose(alone[0, : n[0]], batched[0, : n[0]], atol=1e-5)


def test_blocks_are_the_encoder_layers_and_bad_models_are_refused(encoder_dirs, corpus, tmp_path):
    _, _, tok = corpus
    model = _model(encoder_dirs, tok, "wav2vec2-conformer")
    assert model.encoder.blocks() == list(model.encoder.model.encoder.layers) and len(model.encoder.blocks()) == 2
    assert model.encoder.model.config.layerdrop == 0.0  # LayerDrop would desynchronise FSDP's per-block gathers
    Wav2Vec2Model(Wav2Vec2Config(**BLOCKS, **CONV, add_adapter=True)).save_pretrained(tmp_path / "adapter")
    with pytest.raises(JstipError, match="add_adapter"):
        _model({"x": tmp_path / "adapter"}, tok, "x")
    with pytest.raises(JstipError, match="cannot load a config"):
        _model({"x": tmp_path / "missing"}, tok, "x")
    with pytest.raises(JstipError, match="needs encoder_path"):
        SpeechLM(SpeechLMConfig(**{**TINY, "encoder": "hf"}), tok)


def test_the_released_conv_stack_gives_one_frame_per_row(tmp_path):
    """wav2vec2's released front end (kernels 10,3,3,3,3,2,2, strides 5,2,2,2,2,2,2: 400-sample field, 320
    stride), narrowed: rows of 320 samples plus the 80-sample tail give exactly one frame per row."""
    from trainer.hf_encoders import load_hf_encoder

    config = Wav2Vec2Config(**BLOCKS, conv_dim=(8,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2)
    Wav2Vec2Model(config).save_pretrained(tmp_path / "w2v")
    encoder, saved = load_hf_encoder(str(tmp_path / "w2v"), None, stack=4)
    assert (encoder.spec.hop_length, encoder.tail, encoder.spec.frame_duration) == (320, 80, 0.08)
    assert saved["model"]["conv_stride"] == [5, 2, 2, 2, 2, 2, 2] and saved["features"]["do_normalize"]
    for seconds in (0.13, 1.0, 2.51):
        rows = feature_extractor(encoder.spec)(tone(seconds, 300))
        with torch.no_grad():
            hidden, _ = encoder.eval()(rows[None], torch.tensor([rows.shape[0]]))
        assert hidden.shape[1] == rows.shape[0] == int(seconds * SR) // 320 + 1


def test_short_rows_train_with_spec_augment_on(encoder_dirs, corpus):
    """Rows shorter than SpecAugment's mask span (a one-word span, the FSDP stub) train without its error."""
    _, _, tok = corpus
    model = _model(encoder_dirs, tok, "wav2vec2", freeze="").train()
    assert model.encoder.model.config.mask_time_prob > 0 and model.encoder.model.config.mask_time_length == 10
    rows = torch.randn(2, 4, 320)
    hidden, _ = model.encoder(rows, torch.tensor([4, 3]))
    hidden.sum().backward()
    assert hidden.shape == (2, 4, 32)


def test_cli_train_plan_and_evaluate_with_an_hf_encoder(encoder_dirs, tmp_path, capsys):
    """`jstip train --plan`, `jstip train` and `jstip evaluate` with a w2v-BERT encoder from its directory."""
    import yaml

    from pipeline.cli import main
    from tests.test_trainer_stages import make_corpus, outputs

    paths = make_corpus(tmp_path)
    out = outputs(tmp_path)
    train = dict(samples=paths["samples"], encoder="hf", encoder_path=str(encoder_dirs["w2v-bert"]), **TINY, **out,
                 vocab_size=150, context=128, batch_size=2, steps=6, lr=3e-3, warmup_steps=2, loss_window=2,
                 progress=False)
    evaluate = dict(checkpoints=out["checkpoints"], utterances=paths["utterances"], entities=paths["entities"],
                    hypotheses=str(tmp_path / "hyp.parquet"), metrics=str(tmp_path / "eval.json"),
                    report=str(tmp_path / "eval_report.json"), max_new_tokens=4, batch_size=2, bootstrap=0,
                    progress=False)
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"train": train, "evaluate": evaluate}))
    assert main(["train", "--params", str(params), "--plan", "--device-memory-gb", "1"]) == 0
    printed = capsys.readouterr().out
    assert "| **total** |" in printed and "parallel auto → ddp" in printed
    assert main(["train", "--params", str(params)]) == 0
    report = json.loads(Path(out["report"]).read_text())
    assert report["frame_ms"] == pytest.approx(40.0) and report["skipped_by_reason"] == {"audio_unreadable": 1}
    metrics = json.loads(Path(out["metrics"]).read_text())
    assert metrics["loss_last"] < metrics["loss_first"]
    assert main(["evaluate", "--params", str(params)]) == 0
    result = json.loads((tmp_path / "eval.json").read_text())
    assert result["utterances"] == 2 and result["wer"] is not None


FSDP_SCRIPT = '''
import json, os, sys
import torch
from trainer.batching import Batching, data_from_shards
from trainer.loop import LoopConfig, train
from trainer.model import SpeechLM, SpeechLMConfig
from trainer.tokenizer import build_tokenizer

samples, encoder, out, mode, words = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], json.loads(sys.argv[5])
rank = int(os.environ.get("RANK", "0"))
tok = build_tokenizer(words * 3, vocab_size=150)
torch.manual_seed(rank)  # ranks start from other weights on purpose: FSDP must take rank 0's
model = SpeechLM(SpeechLMConfig(encoder="hf", encoder_path=encoder, freeze="", proj_hidden=64, lm_hidden=64,
                                lm_layers=2, lm_heads=2, lm_intermediate=128, ctc_weight=0.5), tok)
batching = Batching(batching="packed", batch_size=1, context=64, pool=2)


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
                yield {**next(it), "stream": 0}


if mode == "single":
    data, accum = Alternate([data_from_shards(samples, tok, model.spec, batching, r, 2) for r in range(2)]), 2
else:
    data, accum = data_from_shards(samples, tok, model.spec, batching, rank, 2), 1
cfg = LoopConfig(steps=6, lr=3e-3, warmup_steps=2, log_every=3, device="cpu", stage1_share=0.0, grad_accum=accum,
                 parallel=mode if mode != "single" else "auto")
result = train(model, data, cfg, out_dir=out, tok=tok, progress=False)
from torch.distributed.fsdp import FSDPModule
sharded = [isinstance(b, FSDPModule) for b in model.encoder.blocks()]
with open(os.path.join(out, f"{mode}-rank{rank}.json"), "w") as f:
    json.dump({"losses": [h["loss"] for h in result.history], "parallel": result.parallel,
               "sharded_blocks": sharded}, f)
'''


@pytest.mark.slow
def test_fsdp_shards_the_hf_encoder_per_block_and_matches_one_process(tmp_path):
    """Two gloo processes, the w2v-BERT encoder trained: one FSDP unit per conformer block, the losses of one
    process fed both ranks' micro-batches (dropout and SpecAugment off, so the runs are comparable)."""
    import os
    import subprocess
    import sys

    from tests.test_trainer_fsdp import REPO, WORDS as FSDP_WORDS, make_shards

    config = Wav2Vec2BertConfig(**BLOCKS, conv_depthwise_kernel_size=7, left_max_position_embeddings=16,
                                right_max_position_embeddings=4, hidden_dropout=0.0, attention_dropout=0.0,
                                activation_dropout=0.0, feat_proj_dropout=0.0, conformer_conv_dropout=0.0,
                                apply_spec_augment=False)
    torch.manual_seed(0)
    Wav2Vec2BertModel(config).save_pretrained(tmp_path / "w2v-bert")
    samples = make_shards(tmp_path)
    script = tmp_path / "train.py"
    script.write_text(FSDP_SCRIPT)
    results = {}
    for mode in ("single", "fsdp"):
        out = tmp_path / mode
        out.mkdir()
        head = [sys.executable] if mode == "single" else [
            sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
        proc = subprocess.run(head + [str(script), samples, str(tmp_path / "w2v-bert"), str(out), mode,
                                      json.dumps(FSDP_WORDS)], cwd=REPO, capture_output=True, text=True, timeout=400,
                              env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1",
                                   "OMP_WAIT_POLICY": "PASSIVE"})
        assert proc.returncode == 0, proc.stderr[-4000:]
        results[mode] = [json.loads((out / f"{mode}-rank{r}.json").read_text()) for r in range(1 if mode == "single"
                                                                                               else 2)]
    single, fsdp = results["single"][0], results["fsdp"]
    assert all(r["parallel"] == "fsdp" and r["sharded_blocks"] == [True, True] for r in fsdp)
    assert len(single["losses"]) == 6 and all(np.isfinite(single["losses"]))
    for r in fsdp:
        assert r["losses"] == pytest.approx(single["losses"], rel=2e-4, abs=2e-4)
