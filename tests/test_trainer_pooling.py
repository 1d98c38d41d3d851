"""Speech positions at the letter CTC head's spikes (trainer/speech_pooling.py, `speech_positions: ctc_spikes`)."""
import pytest
import torch

from manifests import formats
from manifests.errors import JstipError
from manifests.schema import Sample
from tests.trainer_samples import asr, flac, tone
from trainer.checkpoint import init_parts, load_checkpoint, save_checkpoint
from trainer.data import Collator, SampleDataset
from trainer.features import FrameSpec
from trainer.model import SpeechLM, SpeechLMConfig
from trainer.speech_pooling import SpikePooler, spike_frames
from trainer.tokenizer import build_tokenizer

SIZES = dict(enc_dim=32, enc_layers=1, enc_heads=2, proj_hidden=64, lm_hidden=48, lm_layers=1, lm_heads=2,
             lm_intermediate=64, dropout=0.0, max_positions=256, ctc_weight=1.0, ctc_units="chars")


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer(["one two three", "alpha beta gamma delta"] * 5, vocab_size=150)


def items(spec: FrameSpec):
    samples = [asr(f"u{i}", "", 0.6 + 0.2 * i, "one two", audio=flac(tone(0.6 + 0.2 * i, 300 + 200 * i, 0.05, i)))
               for i in range(2)]
    ds = SampleDataset(samples, spec)
    return [ds[0], ds[1]]


def test_spikes_are_the_frames_where_greedy_ctc_emits():
    blank = 0
    best = torch.tensor([0, 5, 5, 0, 5, 7, 7, 0, 0, 3])
    # 5 (new), 5 repeated (no), blank, 5 again after a blank (yes), 7 (new), 7 repeated, blanks, 3
    assert spike_frames(best, blank).tolist() == [1, 4, 5, 9]
    assert spike_frames(torch.zeros(0, dtype=torch.long), blank).numel() == 0


def test_spikes_fill_the_slots_from_the_left_then_the_filler_and_overflow_is_counted():
    torch.manual_seed(0)
    pooler = SpikePooler(enc_dim=4, hidden=8, out_dim=6, pool_input="hidden")
    with torch.no_grad():
        pooler.filler.fill_(7.0)
    hidden = torch.randn(6, 4)
    logits = torch.full((6, 3), -5.0)
    logits[:, 0] = 5.0  # blank everywhere ...
    logits[1, 1] = logits[4, 2] = 10.0  # ... but a spike at frames 1 and 4
    out = pooler(hidden, logits, n_slots=4, blank=0)
    assert out.shape == (4, 6)
    assert torch.allclose(out[0], pooler.mlp(hidden[1])) and torch.allclose(out[1], pooler.mlp(hidden[4]))
    assert torch.all(out[2:] == 7.0)
    assert pooler.stats["spikes"] == 2 and pooler.stats["dropped"] == 0
    out = pooler(hidden, logits, n_slots=1, blank=0)  # more spikes than slots: the later ones are dropped, counted
    assert out.shape == (1, 6) and torch.allclose(out[0], pooler.mlp(hidden[1]))
    assert pooler.stats["dropped"] == 1 and pooler.stats["spans"] == 2


def test_posterior_pooling_is_the_letter_posteriors_times_their_embeddings():
    pooler = SpikePooler(enc_dim=4, hidden=8, out_dim=2, pool_input="posteriors")
    logits = torch.tensor([[9.0, 0.0, 0.0, 0.0], [0.0, 0.0, 9.0, 9.0]])  # blank, then a spike split between 2 and 3
    letters, embeds = torch.tensor([1, 2, 3]), torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 3.0]])
    out = pooler(torch.randn(2, 4), logits, n_slots=1, blank=0, letters=letters, letter_embeds=embeds)
    assert torch.allclose(out[0], torch.tensor([0.0, 2.0]), atol=1e-3)  # half of letter 2 and half of letter 3


def test_a_spike_pooled_model_trains_end_to_end_and_round_trips(tok, tmp_path):
    spec = FrameSpec(stack=2)
    torch.manual_seed(0)
    model = SpeechLM(SpeechLMConfig(**SIZES, stack=2, speech_positions="ctc_spikes"), tok)
    batch = Collator(tok, spec, ctc_units="chars")(items(spec))
    with torch.no_grad():  # a CTC head that emits everywhere: every slot a spike (or dropped beyond the slots)
        model.ctc_head.bias.fill_(0.0)
        model.ctc_head.bias[int(model.letter_ids[0])] = 50.0
        model.ctc_head.bias[int(model.letter_ids[1])] = 0.0
    out = model(batch)
    assert out.ctc_loss is not None and torch.isfinite(out.loss)
    out.loss.backward()
    assert model.pooler.mlp[0].weight.grad.abs().sum() > 0 and model.encoder.conv[0].weight.grad.abs().sum() > 0
    assert model.pooler.stats["spans"] == 2 and model.pooler.stats["slots"] == int((batch["input_ids"] == model.ids.audio).sum())
    save_checkpoint(model, tok, tmp_path / "ck")
    loaded, _ = load_checkpoint(tmp_path / "ck")
    assert loaded.cfg.speech_positions == "ctc_spikes"
    model.eval(), loaded.eval()
    with torch.no_grad():
        assert torch.equal(model(batch).logits, loaded(batch).logits)
    prompts = [Sample(f"p{i}", "asr", f"p{i}", "", 0.0, it.sample.duration, formats.asr_prompt(it.sample.duration), 0, 0,
                      it.sample.audio) for i, it in enumerate(items(spec))]
    ds = SampleDataset(prompts, spec)
    new = loaded.generate(Collator(tok, spec, padding_side="left", add_eos=False)([ds[0], ds[1]]), max_new_tokens=4)
    assert new.shape[0] == 2 and 0 < new.shape[1] <= 4  # decoding reads the pooled positions too


def test_ctc_spikes_need_the_letter_ctc_head(tok):
    with pytest.raises(JstipError, match="ctc_units chars"):
        SpeechLM(SpeechLMConfig(**{**SIZES, "ctc_units": "tokens"}, speech_positions="ctc_spikes"), tok)
    with pytest.raises(JstipError, match="speech_positions"):
        SpeechLM(SpeechLMConfig(**SIZES, speech_positions="phones"), tok)


def test_init_parts_ctc_starts_the_ctc_head_of_a_model_whose_adapter_has_another_shape(tok, tmp_path):
    torch.manual_seed(1)
    frames = SpeechLM(SpeechLMConfig(**SIZES, stack=4), tok)  # a shared encoder trained at 80 ms per position
    save_checkpoint(frames, tok, tmp_path / "enc")
    spikes = SpeechLM(SpeechLMConfig(**SIZES, stack=2, speech_positions="ctc_spikes"), tok)
    with pytest.raises(JstipError, match="projector"):  # the adapter's shape differs (stack 2 vs 4)
        init_parts(spikes, tmp_path / "enc", "encoder,projector")
    info = init_parts(spikes, tmp_path / "enc", "encoder,ctc")
    assert info["init_ctc_head"]
    assert torch.equal(spikes.ctc_head.weight, frames.ctc_head.weight)
    assert torch.equal(spikes.encoder.conv[0].weight, frames.encoder.conv[0].weight)
    no_ctc = SpeechLM(SpeechLMConfig(**{**SIZES, "ctc_weight": 0.0}), tok)
    with pytest.raises(JstipError, match="CTC head"):
        init_parts(no_ctc, tmp_path / "enc", "encoder,ctc")


def test_init_parts_projector_carries_the_spike_pooler(tok, tmp_path):
    torch.manual_seed(2)
    a = SpeechLM(SpeechLMConfig(**SIZES, stack=2, speech_positions="ctc_spikes"), tok)
    with torch.no_grad():
        a.pooler.filler.fill_(3.0)
    save_checkpoint(a, tok, tmp_path / "a")
    b = SpeechLM(SpeechLMConfig(**SIZES, stack=2, speech_positions="ctc_spikes"), tok)
    init_parts(b, tmp_path / "a", "encoder,projector")
    assert torch.equal(b.pooler.filler, a.pooler.filler) and torch.equal(b.pooler.mlp[0].weight, a.pooler.mlp[0].weight)
