"""Model options on tiny configs saved in the test: Whisper encoder, LM from a config file, LoRA, freezing,
gradient checkpointing."""
import numpy as np
import pytest
import soundfile as sf
import torch
from transformers import Qwen2Config, WhisperConfig, WhisperModel

from manifests.errors import JstipError
from tests.trainer_samples import asr
from trainer.batching import Batching, data_from_samples
from trainer.checkpoint import load_checkpoint, save_checkpoint
from trainer.data import Collator, SampleDataset
from trainer.features import encoded_frames
from trainer.loop import LoopConfig, train
from trainer.model import SpeechLM, SpeechLMConfig
from trainer.tokenizer import build_tokenizer

SR = 16000
WORDS = ["Alpha beta.", "Gamma delta epsilon!", "One two?", "Red green blue."]
TINY = dict(enc_dim=32, enc_layers=1, enc_heads=2, proj_hidden=64, lm_hidden=64, lm_layers=2, lm_heads=2,
            lm_intermediate=128, dropout=0.0, max_positions=512)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("opts")
    samples = []
    for i, words in enumerate(WORDS):
        dur = 0.4 + 0.3 * i
        t = np.arange(int(dur * SR)) / SR
        path = root / f"u{i}.wav"
        sf.write(path, (0.2 * np.sin(2 * np.pi * (300 + 400 * i) * t)).astype(np.float32), SR)
        samples.append(asr(f"u{i}", str(path), dur, words))
    return samples, build_tokenizer(WORDS * 3, vocab_size=150)


@pytest.fixture(scope="module")
def whisper_dir(tmp_path_factory):
    cfg = WhisperConfig(num_mel_bins=80, d_model=32, encoder_layers=2, encoder_attention_heads=2, encoder_ffn_dim=64,
                        decoder_layers=1, decoder_attention_heads=2, decoder_ffn_dim=64, vocab_size=60,
                        max_source_positions=150, max_target_positions=32, pad_token_id=0, bos_token_id=1,
                        eos_token_id=2, decoder_start_token_id=1, suppress_tokens=[], begin_suppress_tokens=[])
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("whisper") / "tiny-whisper"
    WhisperModel(cfg).save_pretrained(path)
    return path


def batch_of(samples, tok, spec, rows):
    ds = SampleDataset(samples, spec)
    return Collator(tok, spec)([ds[i] for i in rows])


def test_whisper_encoder_runs_on_the_batch_length_with_padding_masked(corpus, whisper_dir):
    samples, tok = corpus
    model = SpeechLM(SpeechLMConfig(**{**TINY, "encoder": "whisper", "encoder_path": str(whisper_dir)}), tok).eval()
    assert model.frozen == {"encoder"} and not any(p.requires_grad for p in model.encoder.parameters())
    assert all(p.requires_grad for p in model.projector.parameters())
    short, both = batch_of(samples, tok, model.spec, [0]), batch_of(samples, tok, model.spec, [0, 3])
    with torch.no_grad():
        alone, n_alone = model.encode(short["mel"], short["mel_lens"])
        batched, n_both = model.encode(both["mel"], both["mel_lens"])
    # 3 s of batch, not 30 s: the frame count follows the longest clip
    assert batched.shape[1] == encoded_frames(int(both["mel_lens"].max()), model.spec) < 150 // model.spec.stack
    # the short clip's frames do not depend on the padding added for the longer one
    assert torch.allclose(alone[0, : n_alone[0]], batched[0, : n_alone[0]], atol=1e-5)
    loss = model(both).loss
    assert torch.isfinite(loss)


def test_whisper_clip_longer_than_its_positions_is_a_clear_error(corpus, whisper_dir):
    samples, tok = corpus
    model = SpeechLM(SpeechLMConfig(**{**TINY, "encoder": "whisper", "encoder_path": str(whisper_dir)}), tok)
    mel = torch.zeros(1, 400, 80)  # 4 s, but this tiny Whisper has 150 positions = 3 s
    with pytest.raises(JstipError, match="longer than the Whisper encoder"):
        model.encode(mel, torch.tensor([400]))


def test_whisper_checkpoint_loads_without_the_encoder_path(corpus, whisper_dir, tmp_path):
    samples, tok = corpus
    model = SpeechLM(SpeechLMConfig(**{**TINY, "encoder": "whisper", "encoder_path": str(whisper_dir)}), tok).eval()
    save_checkpoint(model, tok, tmp_path / "ck")
    model.cfg.encoder_path = str(tmp_path / "gone")  # the original weights are not needed any more
    save_checkpoint(model, tok, tmp_path / "ck")
    loaded, _ = load_checkpoint(tmp_path / "ck")
    batch = batch_of(samples, tok, model.spec, [0, 1])
    with torch.no_grad():
        assert torch.equal(model(batch).logits, loaded(batch).logits)


def test_lm_built_from_a_config_file(corpus, tmp_path):
    samples, tok = corpus
    Qwen2Config(vocab_size=50, hidden_size=48, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                intermediate_size=96).save_pretrained(tmp_path / "qwen")
    model = SpeechLM(SpeechLMConfig(**{**TINY, "lm_config": str(tmp_path / "qwen")}), tok)
    assert model.lm.config.model_type == "qwen2" and model.lm.config.hidden_size == 48
    assert model.lm.get_input_embeddings().num_embeddings >= len(tok)  # grown to the tokenizer
    assert torch.isfinite(model(batch_of(samples, tok, model.spec, [0, 1])).loss)


def _train(model, corpus, steps=3, **loop):
    samples, tok = corpus
    data = data_from_samples(samples, tok, model.spec, Batching(batching="padded", batch_size=2))
    return train(model, data, LoopConfig(steps=steps, lr=1e-2, warmup_steps=1, device="cpu", stage1_share=0.0, **loop),
                 progress=False)


def test_lora_trains_adapters_only_and_round_trips(corpus, tmp_path):
    samples, tok = corpus
    torch.manual_seed(0)
    model = SpeechLM(SpeechLMConfig(**{**TINY, "lora_r": 4, "lora_targets": "q_proj,v_proj"}), tok)
    base = {k: v.clone() for k, v in model.lm.state_dict().items() if "lora_" not in k and "trainable_tokens" not in k}
    lora = {k: v.clone() for k, v in model.lm.state_dict().items() if "lora_B" in k}
    assert lora and all(not p.requires_grad for n, p in model.lm.named_parameters() if "base_layer" in n)
    _train(model, corpus)
    after = model.lm.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in base.items())  # base weights untouched
    assert any(not torch.equal(v, after[k]) for k, v in lora.items())  # adapters learned
    save_checkpoint(model, tok, tmp_path / "ck")
    loaded, _ = load_checkpoint(tmp_path / "ck")
    batch = batch_of(samples, tok, model.spec, [0, 1])
    with torch.no_grad():
        assert torch.equal(model.eval()(batch).logits, loaded(batch).logits)


def test_freezing_parts_keeps_their_weights(corpus):
    torch.manual_seed(0)
    model = SpeechLM(SpeechLMConfig(**{**TINY, "freeze": "encoder,lm"}), corpus[1])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    _train(model, corpus)
    after = model.state_dict()
    for k, v in before.items():
        changed = not torch.equal(v, after[k])
        assert changed == k.startswith("projector."), k
    with pytest.raises(JstipError, match="unknown parts"):
        SpeechLMConfig(freeze="decoder").frozen_parts()


def test_gradient_checkpointing_gives_the_same_losses(corpus):
    runs = []
    for gc in (False, True):
        torch.manual_seed(0)
        model = SpeechLM(SpeechLMConfig(**{**TINY, "gradient_checkpointing": gc}), corpus[1])
        runs.append([h["loss"] for h in _train(model, corpus, steps=3).history])
    assert runs[0] == pytest.approx(runs[1], rel=1e-5)


@pytest.mark.slow
def test_torch_compile_gives_the_same_losses(corpus):
    """inductor on CPU (~30 s of compiling); the compiled LM keeps its parameter names."""
    runs = []
    for compile_ in (False, True):
        torch.manual_seed(0)
        model = SpeechLM(SpeechLMConfig(**TINY), corpus[1])
        runs.append([h["loss"] for h in _train(model, corpus, steps=3, compile=compile_).history])
        names = [n for n, _ in model.named_parameters()]
        assert not any("_orig_mod" in n for n in names)
    assert runs[0] == pytest.approx(runs[1], rel=1e-4)


def test_mfu_counts_lm_matmul_flops_and_knows_gpu_peaks():
    from transformers import AutoModelForCausalLM, LlamaConfig

    from trainer.throughput import lm_flops_per_token, peak_flops

    lm = AutoModelForCausalLM.from_config(LlamaConfig(vocab_size=100, hidden_size=64, num_hidden_layers=2,
                                                      num_attention_heads=2, num_key_value_heads=2,
                                                      intermediate_size=128, tie_word_embeddings=True))
    matmul = 2 * (4 * 64 * 64 + 3 * 64 * 128) + 100 * 64  # layers + tied head (the embedding lookup is free)
    norms = 2 * 2 * 64 + 64
    assert lm_flops_per_token(lm, 256) == 6 * (matmul + norms) + 12 * 2 * 64 * 256
    lm.requires_grad_(False)  # frozen LM: no weight gradients
    assert lm_flops_per_token(lm, 0) == 4 * (matmul + norms)
    assert peak_flops("NVIDIA H100 80GB HBM3") == 989e12 and peak_flops("NVIDIA H100 PCIe") == 756e12
    assert peak_flops("NVIDIA H200") == 989e12 and peak_flops("Some GPU") is None and peak_flops("x", 100) == 1e14


def test_init_parts_copies_encoder_and_adapter_from_a_checkpoint_and_nothing_else(corpus, tmp_path):
    from trainer.checkpoint import init_parts

    samples, tok = corpus
    cfg = dict(TINY, ctc_weight=1.0)
    torch.manual_seed(1)
    donor = SpeechLM(SpeechLMConfig(**cfg), tok)
    save_checkpoint(donor, tok, tmp_path / "donor")
    torch.manual_seed(2)
    model = SpeechLM(SpeechLMConfig(**cfg), tok)
    lm_before = {k: v.clone() for k, v in model.lm.state_dict().items()}
    info = init_parts(model, tmp_path / "donor", "encoder,projector")
    for part in ("encoder", "projector", "ctc_head"):
        for (name, a), b in zip(getattr(model, part).state_dict().items(), getattr(donor, part).state_dict().values()):
            assert torch.equal(a, b), f"{part}.{name} was not copied"
    assert all(torch.equal(v, lm_before[k]) for k, v in model.lm.state_dict().items())  # the LM is left alone
    assert info["init_ctc_head"] and info["init_parts"] == ["encoder", "projector"] and info["init_parameters"] > 0
    other = SpeechLM(SpeechLMConfig(**{**cfg, "enc_dim": 48}), tok)
    with pytest.raises(JstipError, match="enc_dim"):
        init_parts(other, tmp_path / "donor", "encoder")
    with pytest.raises(JstipError, match="init_parts"):
        init_parts(model, tmp_path / "donor", "decoder")
    with pytest.raises(JstipError, match="no model.safetensors"):
        init_parts(model, tmp_path / "nowhere", "encoder")
