import numpy as np
import pytest

from interleave.builders import asr_sample, interleaved_sample, segment_runs, word_runs
from interleave.sampling import poisson_speech_mask, rng_for
from interleave.spans import segment_spans, split_at_longest_pause
from manifests.schema import Alignment, Utterance, WordSpan
from pipeline.stage_interleave import InterleaveConfig, build_samples


def _words(text: str, pauses: dict[int, float] | None = None) -> list[WordSpan]:
    words, t = [], 0.0
    for i, w in enumerate(text.split()):
        words.append(WordSpan(w, t, t + 0.3))
        t += 0.3 + (pauses or {}).get(i, 0.05)
    return words


UTT = Utterance("u", "u.wav", 1.0, 5.0, 16000, "s", "x", "a b c d e f g h", "c", "train")


def test_segments_split_at_long_pauses_and_respect_min_words():
    words = _words("a b c d e f g h", {2: 0.6, 3: 0.5, 6: 0.45})
    # pauses after c, d and g; "d" alone and "h" alone are too short and fold into their left neighbour
    segments = segment_spans(words, max_pause=0.4, min_words=2)
    assert [[w.word for w in s] for s in segments] == [["a", "b", "c", "d"], ["e", "f", "g", "h"]]


def test_segments_are_bounded_in_duration():
    segments = segment_spans(_words("a b c d e f g h"), max_pause=10, min_words=1, max_segment_duration=1.0)
    assert all(s[-1].end - s[0].start <= 1.0 for s in segments)
    assert [w.word for s in segments for w in s] == list("abcdefgh")


def test_split_at_longest_pause_makes_two_segments():
    left, right = split_at_longest_pause(_words("a b c d", {1: 0.3}))
    assert [w.word for w in left] == ["a", "b"] and [w.word for w in right] == ["c", "d"]


@pytest.mark.parametrize("seed", range(20))
def test_poisson_mask_starts_with_speech_and_keeps_text(seed):
    mask = poisson_speech_mask(12, 3.0, 0.5, rng_for(seed, "u"))
    assert len(mask) == 12 and mask[0] and not all(mask)


def test_poisson_mask_speech_share_converges_to_eta():
    rng = rng_for(0, "long")
    for eta in (0.3, 0.5, 0.7):  # 0.7 < λ/(λ+1) = 0.75
        mask = poisson_speech_mask(20000, 3.0, eta, rng)
        assert abs(np.mean(mask) - eta) < 0.03


def test_randomness_depends_only_on_seed_and_id():
    assert rng_for(1, "a").random() == rng_for(1, "a").random() != rng_for(1, "b").random()


def test_switch_layout_uses_every_word_once_in_order_starting_with_speech():
    words = _words("a b c d e f g h")
    mask = [True, True, False, True, False, False, True, False]
    sample = interleaved_sample(UTT, "interleave_word", word_runs(words, mask))
    assert [s.modality for s in sample.spans] == ["speech", "text", "speech", "text", "speech", "text"]
    assert " ".join(s.text for s in sample.spans) == "a b c d e f g h"
    assert (sample.spans[0].start, sample.spans[0].end) == (words[0].start, words[1].end)
    assert (sample.n_speech_words, sample.n_text_words) == (4, 4)
    segments = interleaved_sample(UTT, "interleave_segment", segment_runs([words[:3], words[3:5], words[5:]]))
    assert [s.modality for s in segments.spans] == ["speech", "text", "speech"]


def test_asr_sample_covers_the_whole_utterance():
    sample = asr_sample(UTT)
    assert [(s.modality, s.start, s.end) for s in sample.spans] == [("speech", 0.0, 5.0), ("text", 0.0, 0.0)]
    assert (sample.audio_path, sample.offset, sample.duration) == ("u.wav", 1.0, 5.0)


def test_build_samples_skips_and_counts_test_split_and_failed_alignments():
    from collections import Counter

    utts = [UTT, Utterance("f", "f.wav", 0, 1, 16000, "s", "x", "a b", "c", "train"),
            Utterance("t", "t.wav", 0, 1, 16000, "s", "x", "a b", "c", "test")]
    alignments = {"u": Alignment("u", "p", "ok", "", tuple(_words("a b c d e f g h"))),
                  "f": Alignment("f", "p", "failed", "no alignment found", ())}
    skipped = Counter()
    samples = list(build_samples(utts, alignments, [], InterleaveConfig(kinds="asr,interleave_word,interleave_segment"), skipped))
    assert [s.source_id for s in samples] == ["u", "u"]
    assert samples[0].kind == "asr" and samples[1].kind.startswith("interleave_")
    assert skipped == Counter({"alignment failed": 1, "split test": 1})
