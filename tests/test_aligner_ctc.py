"""CTC forced alignment: the batched Viterbi on hand-built emissions, the plumbing on a tiny model."""
import dataclasses
import json

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


def test_word_delimiter_frames_belong_to_no_word(tiny):
    aligner = CtcAligner(model=str(tiny), device="cpu")
    vocab = aligner.vocab
    assert aligner.delimiter == vocab["|"]
    ids, owner = aligner._tokens(["hi", "ab"])
    assert ids == [vocab["H"], vocab["I"], vocab["|"], vocab["A"], vocab["B"]] and owner == [0, 0, -1, 1, 1]
    # the model says: blank, H H I, then "|" for three frames (the gap between the words), A B B, blank
    best = [0, vocab["H"], vocab["H"], vocab["I"], vocab["|"], vocab["|"], vocab["|"], vocab["A"], vocab["B"], vocab["B"], 0]
    lp = emissions(best, vocab=len(vocab))
    sec = 80 / 16000  # the tiny model's frame (conv strides 10 * 8)
    hi, ab = aligner.align_emissions([lp], [["hi", "ab"]])[0]
    assert (hi.word, hi.start, hi.end) == ("hi", 1 * sec, 4 * sec)  # ends before the delimiter frames 4..6
    assert (ab.word, ab.start, ab.end) == ("ab", 7 * sec, 10 * sec)  # starts after them
    # without the delimiter in the target its frames are forced onto a word: "hi" swallows the gap
    aligner.delimiter = None
    stretched = aligner.align_emissions([lp], [["hi", "ab"]])[0]
    assert stretched[0].end > 4 * sec or stretched[1].start < 7 * sec


def test_ctc_without_a_model_fails_before_any_shard_is_touched(tmp_path, tiny):
    from aligners import check_aligner
    from manifests.errors import JstipError
    from manifests.io import write_records
    from manifests.schema import Alignment, Utterance
    from pipeline.stage_align import AlignConfig, run as align

    out = tmp_path / "a"
    write_records([Alignment("old", "ctc", "ok", "", ())], Alignment, out / "part-00000.parquet")
    write_records([Utterance("u1", str(tmp_path / "x.wav"), 0.0, 1.0, 16000, "s", "hi", "hi", "c", "train")],
                  Utterance, tmp_path / "u.parquet")
    with pytest.raises(JstipError, match="--model"):
        align(AlignConfig(utterances=str(tmp_path / "u.parquet"), out=str(out), aligner="ctc", shard_size=1,
                          metrics=str(tmp_path / "m.json"), report=str(tmp_path / "r.json")))
    assert (out / "part-00000.parquet").exists()  # nothing read or removed
    with pytest.raises(JstipError, match="no transformers model there"):
        check_aligner("ctc", model=str(tmp_path / "nowhere"))
    check_aligner("ctc", model=str(tiny), device="cpu")  # a saved model passes


def test_stage_reruns_when_the_local_model_changes_not_when_a_speed_option_does(tmp_path, tiny, sine):
    import os
    import shutil

    from manifests.audio import write_audio
    from manifests.io import read_records, write_records
    from manifests.schema import Alignment, Utterance
    from pipeline.stage_align import AlignConfig, run as align

    model = tmp_path / "model"
    shutil.copytree(tiny, model)
    write_audio(sine(0.8), tmp_path / "x.wav", 16000)
    write_records([Utterance(f"u{i}", str(tmp_path / "x.wav"), 0.0, 0.8, 16000, "s", "hi there", "hi there", "c",
                             "train") for i in range(3)], Utterance, tmp_path / "u.parquet")
    cfg = AlignConfig(utterances=str(tmp_path / "u.parquet"), out=str(tmp_path / "a"), aligner="ctc",
                      model=str(model), device="cpu", batch_size=2, shard_size=2, min_shards=1,
                      metrics=str(tmp_path / "m.json"), report=str(tmp_path / "r.json"))
    first = align(cfg)
    assert (first["shards"], first["shards_skipped"], first["aligned"]) == (2, 0, 3)
    again = align(dataclasses.replace(cfg, batch_size=1, device="auto"))  # speed only: nothing redone
    assert again["shards_skipped"] == 2 and again["real_time_factor"] is None
    weights = next(f for f in model.iterdir() if f.suffix in (".safetensors", ".bin"))
    stat = weights.stat()
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # retrained in place
    third = align(cfg)
    assert third["shards_skipped"] == 0 and third["aligned"] == 3
    assert len(read_records(tmp_path / "a", Alignment)) == 3
