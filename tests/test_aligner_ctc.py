"""CTC forced alignment: the batched Viterbi on hand-built emissions, the plumbing on a tiny model."""
import json

import numpy as np
import pytest
import torch

from aligners.base import AlignmentFailed
from aligners.ctc import WILDCARD, CtcAligner, viterbi_batch


def emissions(best: list[int], vocab: int = 5, peak: float = 0.9) -> torch.Tensor:
    lp = torch.full((len(best), vocab), (1 - peak) / (vocab - 1))
    lp[torch.arange(len(best)), torch.tensor(best)] = peak
    return lp.log()


def test_viterbi_follows_the_known_best_path_in_a_batch():
    # blank=0; item 0: tokens 1 2 2 (a repeat needs a blank between); item 1: token 3, shorter
    a = emissions([0, 1, 1, 0, 2, 0, 2, 2, 0])
    b = torch.cat([emissions([0, 0, 3, 3, 0]), torch.zeros(4, 5)])
    paths = viterbi_batch(torch.stack([a, b]), torch.tensor([[1, 2, 2], [3, 0, 0]]), torch.tensor([9, 5]),
                          torch.tensor([3, 1]))
    assert paths[0] == [-1, 0, 0, -1, 1, -1, 2, 2, -1]
    assert paths[1] == [-1, -1, 0, 0, -1]


def test_wildcard_takes_any_token_and_impossible_transcripts_fail():
    lp = emissions([0, 4, 4, 0, 1, 0])
    path = viterbi_batch(lp[None], torch.tensor([[WILDCARD, 1]]), torch.tensor([6]), torch.tensor([2]))[0]
    assert path == [-1, 0, 0, -1, 1, -1]
    with pytest.raises(AlignmentFailed, match="does not fit"):
        viterbi_batch(lp[None, :2], torch.tensor([[1, 1, 2]]), torch.tensor([2]), torch.tensor([3]))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from transformers import (Wav2Vec2Config, Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor, Wav2Vec2ForCTC,
                              Wav2Vec2Processor)

    root = tmp_path_factory.mktemp("ctc")
    vocab = {"<pad>": 0, "|": 1, **{c: i + 2 for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZ'")}}
    (root / "vocab.json").write_text(json.dumps(vocab))
    tokenizer = Wav2Vec2CTCTokenizer(str(root / "vocab.json"), pad_token="<pad>", word_delimiter_token="|")
    processor = Wav2Vec2Processor(Wav2Vec2FeatureExtractor(return_attention_mask=True), tokenizer)
    torch.manual_seed(0)
    config = Wav2Vec2Config(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                            intermediate_size=37, conv_dim=(16, 16), conv_kernel=(10, 8), conv_stride=(10, 8),
                            num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, pad_token_id=0)
    model = Wav2Vec2ForCTC(config).eval()
    model.save_pretrained(root / "model")
    processor.save_pretrained(root / "model")
    return root / "model"


def test_tiny_model_aligns_a_batch_with_long_audio_and_unknown_characters(tiny, sine):
    aligner = CtcAligner(model=str(tiny), device="cpu", batch_size=2, window_seconds=1.0, overlap_seconds=0.25)
    short, long = sine(0.6), sine(2.5, freq=300)
    out = aligner.align_batch([short, long], [["hi", "there"], ["naïve", "café", "ok", "42"]])
    assert [w.word for w in out[0]] == ["hi", "there"] and [w.word for w in out[1]] == ["naïve", "café", "ok", "42"]
    frame = 80 / 16000
    assert abs(len(aligner.emissions([long])[0]) - len(long) // 80) <= 3  # windows stitched to one timeline
    for spans, audio in zip(out, (short, long)):
        assert all(0 <= s.start < s.end <= len(audio) / 16000 + frame for s in spans)
        assert all(a.end <= b.start for a, b in zip(spans, spans[1:]))
    # a batch of equal-length audio (no padding) gives what one-at-a-time gives
    pair = aligner.align_batch([short, short], [["hi", "there"], ["hi", "there"]])
    single = aligner.align(short, ["hi", "there"])
    assert [(w.start, w.end) for w in single] == [(w.start, w.end) for w in pair[0]] == [(w.start, w.end) for w in pair[1]]
