"""Packed rows: attention reset at sample boundaries, so each sample's loss equals the loss of it alone."""
import pytest
import torch

from manifests.schema import SPEECH, TEXT
from tests.trainer_samples import asr, segment_interleave, text, tone, word_interleave, write_wav
from trainer.data import Collator, SampleDataset
from trainer.model import SpeechLM, SpeechLMConfig
from trainer.tokenizer import build_tokenizer

TINY = dict(enc_dim=32, enc_layers=1, enc_heads=2, proj_hidden=64, lm_hidden=64, lm_layers=2, lm_heads=2,
            lm_intermediate=128, dropout=0.0, max_positions=512, ctc_weight=0.0)
TEXTS = ["Take aspirin daily.", "Fly to New York!", "Walk to the park, then rest.", "One two three."]


@pytest.fixture(scope="module")
def items(tmp_path_factory):
    root = tmp_path_factory.mktemp("pack")
    a = write_wav(root / "a.wav", tone(0.9, 300, 0.02, 1))
    b = write_wav(root / "b.wav", tone(1.3, 900, 0.02, 2))
    samples = [asr("a:asr", a, 0.9, TEXTS[0]),
               word_interleave("b:w", b, 1.3, [(SPEECH, "Fly", 0.0, 0.3), (TEXT, "to", 0, 0),
                                               (SPEECH, "New", 0.55, 0.8), (TEXT, "York!", 0, 0)]),
               text("t", [TEXTS[2], TEXTS[3]]),
               segment_interleave("a:s", a, 0.9, [(SPEECH, "Take", 0.0, 0.4), (TEXT, "aspirin daily.", 0, 0)])]
    tok = build_tokenizer(TEXTS * 3, vocab_size=150)
    ds = SampleDataset(samples)
    return [ds[i] for i in range(len(samples))], tok


@pytest.mark.parametrize("attn", ["sdpa_varlen", "sdpa", "eager", "flattened"])
def test_each_sample_in_a_packed_batch_has_the_loss_it_has_alone(items, attn):
    items, tok = items
    torch.manual_seed(0)
    impl = attn if attn != "flattened" else "sdpa"
    model = SpeechLM(SpeechLMConfig(**TINY, attn_implementation=impl), tok).eval()
    assert model.base_lm().config._attn_implementation == impl
    model._flatten = attn == "flattened"  # the flash-attention layout: one row of real positions (sdpa masks it)
    collator = Collator(tok)
    with torch.no_grad():
        alone = [model(collator([item])) for item in items]
        packed_batch = collator(items, rows=[0, 0, 1, 1])  # two rows of two samples each
        packed = model(packed_batch)
    assert packed_batch["input_ids"].shape[0] == 2 and "attention_mask" not in packed_batch
    assert packed_batch["position_ids"][0].tolist().count(0) == 2  # positions restart at the second sample
    want = torch.stack([o.example_loss[0] for o in alone])
    assert torch.equal(packed.example_tokens, torch.stack([o.example_tokens[0] for o in alone]))
    assert torch.allclose(packed.example_loss, want, rtol=1e-5, atol=1e-5), (packed.example_loss, want)
    assert packed.loss.item() == pytest.approx(want.sum().item() / packed.n_labels, rel=1e-5)


def test_segments_cover_every_position_once():
    from trainer.attention import segments

    pos = torch.tensor([[0, 1, 2, 0, 1, 0, 0, 1], [0, 1, 2, 3, 4, 5, 0, 1]])
    index, valid = segments(pos)
    assert index[valid].tolist() == list(range(16))
    assert valid.sum(1).tolist() == [3, 2, 1, 2, 6, 2]


def test_packed_and_padded_batches_give_the_same_gradients(items):
    items, tok = items
    torch.manual_seed(0)
    model = SpeechLM(SpeechLMConfig(**TINY), tok).eval()
    collator = Collator(tok)
    grads = []
    for rows in (None, [0, 0, 0, 1]):
        model.zero_grad()
        model(collator(items, rows=rows)).loss.backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        assert torch.allclose(grads[0][name], grads[1][name], rtol=1e-4, atol=1e-6), name
