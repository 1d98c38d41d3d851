import dataclasses
import itertools
from collections import Counter

import numpy as np
import pytest

from interleave.builders import asr_sample, interleaved_sample, segment_runs, spans_from_runs, word_runs
from interleave.recipes import Candidate, parse_mixture, select
from interleave.sampling import SamplerParams, poisson_speech_mask, rng_for, speech_mask
from interleave.spans import clause_ends, every_n_spans, punctuation_spans, segment_spans, split_at_longest_pause
from manifests.audio import encode_flac
from manifests.errors import JstipError
from manifests.schema import Alignment, Text, Utterance, WordSpan
from pipeline.interleave_build import Item, row_group_rows, utterance_sample
from pipeline.interleave_tts import tts_audio_path
from pipeline.sample_view import sample_audio
from pipeline.stage_interleave import InterleaveConfig, plan, recipe_weights
from pipeline.textnorm import normalize


def _words(text: str, pauses: dict[int, float] | None = None) -> list[WordSpan]:
    words, t = [], 0.0
    for i, w in enumerate(text.split()):
        words.append(WordSpan(w, t, t + 0.3))
        t += 0.3 + (pauses or {}).get(i, 0.05)
    return words


UTT = Utterance("u", "u.wav", 1.0, 5.0, 16000, "s", "A b, c d. E f g h", "a b c d e f g h", "c", "train")


def test_segments_split_at_long_pauses_and_respect_min_words():
    words = _words("a b c d e f g h", {2: 0.6, 3: 0.5, 6: 0.45})
    # pauses after c, d and g; "d" alone and "h" alone are too short and fold into their left neighbour
    segments = segment_spans(words, max_pause=0.4, min_words=2)
    assert [[w.word for w in s] for s in segments] == [["a", "b", "c", "d"], ["e", "f", "g", "h"]]


def test_segments_are_bounded_in_duration():
    segments = segment_spans(_words("a b c d e f g h"), max_pause=10, min_words=1, max_segment_duration=1.0)
    assert all(s[-1].end - s[0].start <= 1.0 for s in segments)
    assert [w.word for s in segments for w in s] == list("abcdefgh")


def test_punctuation_segments_follow_the_raw_transcript():
    ends = clause_ends("We gave 500 mg, twice a day; then we stopped.", normalize)
    assert ends == [False, False, False, False, True, False, False, True, False, False, True]  # 500 -> five hundred
    words = _words("we gave five hundred mg twice a day then we stopped")
    segments = punctuation_spans(words, ends, min_words=2)
    assert [" ".join(w.word for w in s) for s in segments] == ["we gave five hundred mg", "twice a day", "then we stopped"]
    with pytest.raises(ValueError, match="raw transcript has 11 words, the alignment 3"):
        punctuation_spans(words[:3], ends)


def test_every_n_words():
    assert [len(s) for s in every_n_spans(_words("a b c d e f g"), 3)] == [3, 3, 1]


def test_split_at_longest_pause_makes_two_segments():
    left, right = split_at_longest_pause(_words("a b c d", {1: 0.3}))
    assert [w.word for w in left] == ["a", "b"] and [w.word for w in right] == ["c", "d"]


@pytest.mark.parametrize("name", ["poisson", "alternate", "random", "spirit"])
@pytest.mark.parametrize("seed", range(10))
def test_every_sampler_starts_with_speech_and_keeps_text(name, seed):
    mask = speech_mask(name, 12, SamplerParams(speech_range=(2, 4), text_range=(1, 3)), rng_for(seed, "u"))
    assert len(mask) == 12 and mask[0] and not all(mask)


def test_spirit_runs_lie_in_their_ranges():
    mask = speech_mask("spirit", 400, SamplerParams(speech_range=(3, 5), text_range=(2, 2)), rng_for(0, "x"))
    runs = [(m, len(list(g))) for m, g in itertools.groupby(mask)][:-1]  # the last run is cut at the end
    assert all(3 <= n <= 5 for m, n in runs if m) and all(n == 2 for m, n in runs if not m)


def test_random_sampler_share_is_p():
    assert abs(np.mean(speech_mask("random", 20000, SamplerParams(p=0.3), rng_for(0, "r"))) - 0.3) < 0.02


def test_poisson_mask_speech_share_converges_to_eta():
    rng = rng_for(0, "long")
    for eta in (0.3, 0.5, 0.7):  # 0.7 < λ/(λ+1) = 0.75
        mask = poisson_speech_mask(20000, 3.0, eta, rng)
        assert abs(np.mean(mask) - eta) < 0.03


def test_bad_sampler_settings_name_the_value():
    with pytest.raises(ValueError, match="unknown span sampler 'nope'"):
        speech_mask("nope", 3, SamplerParams(), rng_for(0, "x"))
    with pytest.raises(ValueError, match="random needs 0 < p < 1, got p=1.5"):
        speech_mask("random", 3, SamplerParams(p=1.5), rng_for(0, "x"))


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


def test_chunk_transcript_layout_follows_each_speech_chunk_with_its_words():
    words = _words("a b c d e")
    spans = spans_from_runs(word_runs(words, [True, True, False, True, False]), "chunk_transcript")
    assert [(s.modality, s.text) for s in spans] == [("speech", "a b"), ("text", "a b c"), ("speech", "d"), ("text", "d e")]


def test_asr_sample_covers_the_whole_utterance_with_an_optional_prompt():
    sample = asr_sample(UTT)
    assert [(s.modality, s.start, s.end) for s in sample.spans] == [("speech", 0.0, 5.0), ("text", 0.0, 0.0)]
    assert (sample.audio_path, sample.offset, sample.duration) == ("u.wav", 1.0, 5.0)
    assert asr_sample(UTT, "transcribe:").spans[1].text == "transcribe: a b c d e f g h"


def test_mixed_samples_are_word_level_with_probability_p():
    settings = vars(InterleaveConfig())
    alignment = Alignment("u", "p", "ok", "", tuple(_words("a b c d e f g h")))
    levels = Counter()
    for i in range(400):
        utt = Utterance(f"u{i}", "u.wav", 0, 5, 16000, "s", "x", "a b c d e f g h", "c", "train")
        levels[utterance_sample(Item("interleave_mixed", 0, utt, alignment), {**settings, "word_probability": 0.25},
                                Counter()).sample_id.rsplit(":", 1)[1]] += 1
    assert abs(levels["word"] / 400 - 0.25) < 0.06 and set(levels) == {"word", "segment"}


def test_recipes_parse_and_reject_unknown_kinds():
    assert parse_mixture("asr:2,text:1") == pytest.approx({"asr": 2 / 3, "text": 1 / 3})
    with pytest.raises(ValueError, match="unknown kind 'speech'"):
        parse_mixture("speech:1")
    assert recipe_weights(InterleaveConfig(recipe="jstip_tts")) == pytest.approx(
        {"asr": 0.4, "interleave_mixed": 0.4, "tts_pair": 0.2})
    assert recipe_weights(InterleaveConfig(recipe="asr_only", text_ratio=0.5)) == pytest.approx({"asr": 2 / 3, "text": 1 / 3})


def test_selection_by_samples_and_by_tokens_meets_the_ratio():
    pools = {"asr": [Candidate("asr", f"u{i}", i, 10.0) for i in range(100)],
             "text": [Candidate("text", f"t{i}", 100 + i, 1.0) for i in range(1000)]}
    chosen, summary = select(pools, {"asr": 0.5, "text": 0.5}, "samples", 0)
    assert Counter(c.kind for c in chosen) == {"asr": 100, "text": 100} and summary["limited_by"] == "asr"
    chosen, _ = select(pools, {"asr": 0.5, "text": 0.5}, "tokens", 0)
    assert Counter(c.kind for c in chosen) == {"asr": 100, "text": 1000}
    chosen, _ = select(pools, {"asr": 0.8, "text": 0.2}, "tokens", 0)
    assert Counter(c.kind for c in chosen) == {"asr": 100, "text": 250}
    twice, _ = select(pools, {"asr": 0.5, "text": 0.5}, "samples", 0, max_repeats=2)
    assert Counter(c.kind for c in twice) == {"asr": 200, "text": 200}


def test_plan_skips_and_counts_test_split_and_failed_alignments():
    utts = [UTT, Utterance("f", "f.wav", 0, 1, 16000, "s", "x", "a b", "c", "train"),
            Utterance("t", "t.wav", 0, 1, 16000, "s", "x", "a b", "c", "test")]
    alignments = {"u": Alignment("u", "p", "ok", "", tuple(_words("a b c d e f g h"))),
                  "f": Alignment("f", "p", "failed", "no alignment found", ())}
    skipped = Counter()
    cfg = InterleaveConfig(recipe="asr:1,interleave_word:1")
    items, _ = plan(cfg, recipe_weights(cfg), utts, alignments, [], skipped)
    assert [(x.kind, x.utterance.utt_id) for x in items] == [("asr", "u"), ("interleave_word", "u")]
    assert skipped == Counter({"alignment failed": 1, "split test": 1})


def test_row_groups_are_bounded_in_bytes():
    sizes = [100, 900, 100, 100, 800, 100, 100]
    k = row_group_rows(sizes, 1000)
    assert all(sum(sizes[i:i + k]) <= 1000 for i in range(0, len(sizes), k)) and k == 2
    assert row_group_rows([5000], 1000) == 1


def test_an_empty_pool_leaves_the_mixture_and_the_rest_keep_their_ratio():
    pools = {"asr": [Candidate("asr", f"u{i}", i) for i in range(10)], "text": []}
    weights = {"asr": 0.4, "interleave_word": 0.2, "text": 0.4}
    pools["interleave_word"] = [Candidate("interleave_word", f"u{i}", i) for i in range(10)]
    chosen, summary = select(pools, weights, "samples", 0)
    assert Counter(c.kind for c in chosen) == {"asr": 10, "interleave_word": 5}
    assert summary["dropped"] == ["text"] and summary["weights"] == pytest.approx({"asr": 2 / 3, "interleave_word": 1 / 3})
    chosen, summary = select({}, weights, "tokens", 0)
    assert chosen == [] and summary["dropped"] == list(weights) and "every pool is empty" in summary["empty"]


def test_plan_drops_interleaved_kinds_when_no_utterance_has_two_words():
    one_word = Utterance("o", "o.wav", 0, 1, 16000, "s", "Hi", "hi", "c", "train")
    alignments = {"o": Alignment("o", "p", "ok", "", tuple(_words("hi")))}
    cfg = InterleaveConfig(recipe="demo", texts="")
    skipped = Counter()
    items, summary = plan(cfg, recipe_weights(cfg), [one_word], alignments, [], skipped)
    assert [x.kind for x in items] == ["asr"]
    assert summary["dropped_kinds"] == {"interleave_word": "no aligned utterance has 2 or more words",
                                        "interleave_segment": "no aligned utterance has 2 or more words",
                                        "text": "no domain texts (--texts '')"}


def test_unused_repeats_are_not_counted_as_skipped_sources():
    utts = [Utterance(f"u{i}", "u.wav", 0, 5, 16000, "s", "x", "a b c d", "c", "train") for i in range(4)]
    alignments = {u.utt_id: Alignment(u.utt_id, "p", "ok", "", tuple(_words("a b c d"))) for u in utts}
    texts = [Text("t0", "x y", "x y", "d")]
    cfg = InterleaveConfig(recipe="asr:1,text:1", max_repeats=3)
    skipped = Counter()
    items, _ = plan(cfg, recipe_weights(cfg), utts, alignments, texts, skipped)
    assert Counter(x.kind for x in items) == {"asr": 3, "text": 3}  # text limits: 1 source x 3 repeats
    assert sum(n for reason, n in skipped.items() if reason.startswith("asr: beyond")) == 1  # one of the 4 utterances gives nothing


def test_tts_audio_files_of_ids_that_sanitise_alike_differ():
    assert tts_audio_path("o", "a/b", 0) != tts_audio_path("o", "a_b", 0) != tts_audio_path("o", "a_b", 1)
    assert tts_audio_path("o", "a/b", 0).parent.name == "tts" and tts_audio_path("o", "a/b", 0).suffix == ".flac"


def test_sample_audio_decodes_embedded_flac_at_the_requested_rate():
    tone = np.sin(2 * np.pi * 440 * np.arange(8000) / 8000).astype(np.float32) * 0.5
    sample = asr_sample(UTT)
    embedded = dataclasses.replace(sample, audio=encode_flac(tone, 8000))
    audio = sample_audio(embedded, 16000)
    assert audio.dtype == np.float32 and len(audio) == 16000
    with pytest.raises(JstipError, match="u:asr"):
        sample_audio(dataclasses.replace(sample, audio=b"not flac"), 16000)
