"""The interleave concept as pure functions: units, segments, the paper's alternation and token
formats, text samples, samplers (bounded), hashing and the hash-threshold selection."""
import re

import numpy as np
import pyarrow as pa
import pytest

from interleave.extension import sampled
from interleave.hashing import string_hash
from interleave.recipes import ALIASES, DEFAULT_RECIPES, chosen, histogram, parse_mixture, resolve, thresholds
from interleave.sampling import (SamplerParams, entity_phrases, entity_units, poisson_speech_mask, rng_for,
                                 speech_mask)
from interleave.samples import asr, text
from interleave.sentences import sentences
from interleave.sequences import alternation, alternation_measure, plan_variants, spans_column
from interleave.tokens import Rates
from interleave.units import Units, Words, bound_cuts, segment_cuts, segment_units, word_units
from manifests.formats import ASR, BOS, EOS, SEGMENT, SPEECH_CLOSE, SPEECH_OPEN
from corpora.textnorm import normalize

RAW = "We gave 500 mg, twice a day; then — stopped."
NORM = "we gave five hundred mg twice a day then stopped".split()


def _words(lists: list[list[str]], pauses: dict[tuple[int, int], float] | None = None) -> Words:
    rows = []
    for s, ws in enumerate(lists):
        t, row = 0.1, []
        for i, w in enumerate(ws):
            row.append({"word": w, "start": t, "end": t + 0.3, "score": 1.0})
            t += 0.3 + (pauses or {}).get((s, i), 0.0)
        rows.append(row)
    return Words.from_lists(pa.array(rows))


def _spans(list_array, i):
    return [(s["modality"], s["text"]) for s in list_array[i].as_py()]


def test_word_units_are_raw_tokens_over_the_aligned_words_they_cover():
    units = word_units(pa.array([RAW]), _words([NORM]), normalize)
    assert units.text.to_pylist() == ["We", "gave", "500", "mg,", "twice", "a", "day;", "then —", "stopped."]
    assert units.words.tolist() == [1, 1, 2, 1, 1, 1, 1, 1, 1]
    assert (units.start[2], units.end[2]) == pytest.approx((0.7, 1.3))  # "500": five.start .. hundred.end
    assert units.clause.tolist() == [False, False, False, True, False, False, True, False, True]
    assert units.raw.tolist() == [True]
    norm = word_units(pa.array([RAW]), _words([NORM]), normalize, form="norm")
    assert norm.text.to_pylist() == NORM and norm.clause[[4, 7, 9]].all() and norm.clause.sum() == 3
    counted = word_units(pa.array([RAW]), _words([NORM]), normalize, with_text=False)
    assert counted.text is None and counted.offsets.tolist() == units.offsets.tolist()


def test_a_source_whose_words_do_not_match_its_transcript_falls_back_to_aligned_words():
    words = _words([NORM[:-1], ["hello", "there"], ["hello", "where"]])
    units = word_units(pa.array([RAW, "Hello there!", "Hello there!"]), words, normalize)
    assert units.raw.tolist() == [False, True, False]  # a word missing; a word different
    assert units.text.to_pylist() == NORM[:-1] + ["Hello", "there!", "hello", "where"]
    assert units.offsets.tolist() == [0, 9, 11, 13]


def test_silence_and_punctuation_segmenters_cut_between_word_units_only():
    words = _words([NORM], {(0, 2): 0.6, (0, 6): 0.5})  # a pause inside "500" and after "a"
    units = word_units(pa.array([RAW]), words, normalize)
    cut, widest = segment_cuts(units, "silence", max_pause=0.4)
    assert [t for t, c in zip(units.text.to_pylist(), cut) if c] == ["a"]  # never inside "500"
    cut, _ = segment_cuts(units, "silence_punct", max_pause=0.4)
    segs = segment_units(units, cut)
    assert segs.text.to_pylist() == ["We gave 500 mg,", "twice a", "day;", "then — stopped."]
    assert segs.words.tolist() == [5, 2, 1, 2] and not widest.any()
    cut, _ = segment_cuts(units, "punctuation")
    assert segment_units(units, cut).text.to_pylist() == ["We gave 500 mg,", "twice a day;", "then — stopped."]
    cut, _ = segment_cuts(units, "every_n", every_n=4)
    assert segment_units(units, cut).counts.tolist() == [3]


def test_a_source_no_rule_cuts_is_cut_at_its_widest_pause():
    units = word_units(pa.array(["a b c d"]), _words([["a", "b", "c", "d"]], {(0, 0): 0.1, (0, 2): 0.2}), normalize)
    cut, widest = segment_cuts(units, "silence", max_pause=1.0)
    assert widest.tolist() == [True] and segment_units(units, cut).text.to_pylist() == ["a b c", "d"]


def test_bounds_on_segments_are_an_option():
    units = word_units(pa.array(["a b c d e f"]), _words([list("abcdef")], {(0, 0): 0.5, (0, 3): 0.5}), normalize)
    cut, _ = segment_cuts(units, "silence", 0.4)
    assert segment_units(units, cut).text.to_pylist() == ["a", "b c d", "e f"]
    assert segment_units(units, bound_cuts(units, cut, 2, 0)).text.to_pylist() == ["a b c d", "e f"]
    assert segment_units(units, bound_cuts(units, cut, 1, 0.8)).words.max() <= 2


def _units(n_per_source: list[int]) -> Units:
    lists = [[f"w{s}{i}" for i in range(n)] for s, n in enumerate(n_per_source)]
    return word_units(pa.array([" ".join(x) for x in lists]), _words(lists), normalize)


@pytest.mark.parametrize("n,expected", [
    (4, {"a1": "A T A T", "t1": "T A T"}),       # t1 would end with speech: drops its last unit
    (5, {"a1": "A T A T", "t1": "T A T A T"}),   # a1 drops its last unit
    (2, {"a1": "A T"}),                          # t1 needs 3 units
])
def test_both_variants_alternate_and_end_with_text(n, expected):
    units = _units([n])
    built = alternation(units, np.array([0]), "both")
    spans, _ = spans_column(built.slots)
    got = {}
    for i, phase in enumerate(built.variant):
        seq = _spans(spans, i)
        assert seq[0] == ("token", BOS) and seq[-1] == ("token", EOS) and seq[-2][0] == "text"
        got[("a1", "t1")[phase]] = " ".join("A" if m == "speech" else "T" for m, _ in seq[1:-1])
    assert got == expected
    assert built.dropped.sum() == (n > 2)


def test_variants_option_and_complementary_units():
    units = _units([5])
    built = alternation(units, np.array([0]), "both")
    spans, _ = spans_column(built.slots)
    text_units = set()
    for i in range(2):
        seq = _spans(spans, i)[1:-1]
        assert [t for _, t in seq] == [f"w0{j}" for j in range(len(seq))]  # in order, nothing between
        text_units |= {t for m, t in seq if m == "text"}
    assert text_units == {f"w0{j}" for j in range(5)}  # every word is a text target once
    assert [plan_variants(np.array([n]), v)[1].tolist() for n, v in
            [(5, "whole"), (4, "whole"), (5, "speech_first"), (4, "text_first")]] == [[1], [0], [0], [1]]
    assert plan_variants(np.array([2]), "text_first")[3] == 1


def test_segment_level_puts_N_before_every_unit_but_the_first_and_tagged_wraps_speech():
    units = _units([3])
    built = alternation(units, np.array([0]), "speech_first", segment_level=True)
    spans, n_tokens = spans_column(built.slots)
    assert [t for _, t in _spans(spans, 0)] == [BOS, "w00", SEGMENT, "w01", EOS]
    tagged, _ = spans_column(built.slots, tagged=True)
    assert [t for _, t in _spans(tagged, 0)] == [BOS, SPEECH_OPEN, "w00", SPEECH_CLOSE, SEGMENT, "w01", EOS]
    assert n_tokens.tolist() == [3]


def test_the_first_pass_measure_equals_what_alternation_builds():
    units = _units([7, 2, 1, 4])
    for segment in (False, True):
        m = alternation_measure(units, "both", segment)
        built = alternation(units, np.arange(4), "both", segment)
        _, n_tokens = spans_column(built.slots)
        assert m["samples"].tolist() == np.bincount(built.source, minlength=4).tolist()
        assert m["speech_seconds"] == pytest.approx(np.bincount(built.source, built.speech_seconds, 4))
        assert m["token_spans"] == pytest.approx(np.bincount(built.source, n_tokens, 4))


def test_asr_and_text_formats():
    a = asr("asr", pa.array(["u"]), pa.array(["u.wav"]), np.array([1.0]), np.array([3.0]), pa.array(["Hi, Bob."]),
            np.array([2]), np.array([0]), np.array([0]), Rates())
    spans = a.table.column("spans")[0].as_py()
    assert [(s["modality"], s["text"]) for s in spans] == [("token", BOS), ("speech", "Hi, Bob."), ("token", ASR),
                                                          ("text", "Hi, Bob."), ("token", EOS)]
    assert (spans[1]["start"], spans[1]["end"]) == (0.0, 3.0) and a.table.column("sample_id")[0].as_py() == "u:asr"
    t = text("text", pa.array(["t", "e"]), ["Dr. Smith came. He left!", " "], np.array([5, 0]), np.array([0, 1]),
             np.array([0, 0]), Rates())
    assert t.skipped == 1 and t.table.num_rows == 1
    assert [s["text"] for s in t.table.column("spans")[0].as_py()] == [BOS, "Dr. Smith came.", EOS, "He left!", EOS]
    assert t.tokens[0] == pytest.approx(5 * 1.5 + 3)


def test_sentences_split_at_ends_but_not_at_abbreviations_or_initials():
    assert sentences("Dr. Smith gave 2.5 mg. Then he left! Was it ok? yes.") == \
        ["Dr. Smith gave 2.5 mg.", "Then he left!", "Was it ok? yes."]
    assert sentences('See Fig. 3. J. Smith agreed.\nNew "line." Here') == \
        ["See Fig. 3.", "J. Smith agreed.", 'New "line."', "Here"]


def test_extension_samplers_start_with_speech_end_with_text_and_keep_word_order():
    units = _units([12, 6])
    params = SamplerParams(speech_range=(2, 3), text_range=(1, 2))
    for sampler in ("poisson", "random", "spirit"):
        built = sampled(units, np.array([0, 1]), ["a", "b"], sampler, params, seed=3)
        spans, _ = spans_column(built.slots)
        for i in range(2):
            seq = _spans(spans, i)[1:-1]
            assert seq[0][0] == "speech" and seq[-1][0] == "text"
            words = " ".join(t for _, t in seq).split()
            assert words == [f"w{built.source[i]}{j}" for j in range(len(words))]
    chunk = sampled(units, np.array([1]), ["b"], "alternate", params, 0, layout="chunk_transcript")
    assert [t for _, t in _spans(spans_column(chunk.slots)[0], 0)][1:3] == ["w10", "w10 w11"]


def test_sampler_parameters_are_bounded_and_the_work_per_sample_too():
    with pytest.raises(ValueError, match="0.01 <= η <= 0.99"):
        SamplerParams(eta=1e-9).check("poisson")
    with pytest.raises(ValueError, match="spirit speech range"):
        SamplerParams(speech_range=(1, 10**9)).check("spirit")

    class Counting:  # a generator that counts draws and asks for absurd run lengths
        draws = 0

        def poisson(self, lam):
            Counting.draws += 1
            return 10**12

    mask = poisson_speech_mask(50, 3.0, 0.01, Counting())
    assert len(mask) == 50 and mask[0] and not all(mask) and Counting.draws <= 2


def test_the_entity_sampler_and_the_entity_scorer_agree_on_which_words_are_entities(tmp_path):
    """The entity-aware ablation rests on this: the words the sampler keeps as text are exactly the
    words evaluation scores as entity instances, though the two match differently (word tuples over
    units vs whole-word patterns over characters)."""
    from evaluation.entities import locate, read_entity_source

    listing = tmp_path / "entities.txt"
    listing.write_text("Chest X-ray\tcommon\nx ray\tcommon\nheart\trare\nSjogren's syndrome\trare\n"
                       "o'brien\trare\n")
    source = read_entity_source(str(listing))
    phrases = entity_phrases(listing.read_text().splitlines())
    text = ("After a chest x-ray, O'Brien (heart-rate normal) had Sjogren's syndrome; "
            "the X ray and heartburn were noted by heart.")
    units = [(m.start(), m.end()) for m in re.finditer(r"\S+", text)]
    spans = locate(source, {"u": text}).spans["u"]
    scored = [any(a < s.end and s.start < b for s in spans) for a, b in units]
    sampled_as_text = entity_units([text[a:b] for a, b in units], phrases).tolist()
    assert sum(scored) == 9 and sampled_as_text == scored


def test_randomness_depends_only_on_seed_and_id():
    assert rng_for(1, "a").random() == rng_for(1, "a").random() != rng_for(1, "b").random()
    mask = speech_mask("random", 20000, SamplerParams(p=0.3), rng_for(0, "r"))
    assert abs(np.mean(mask) - 0.3) < 0.02


def test_the_entity_sampler_writes_listed_phrases_as_text_wherever_they_fall():
    phrases = entity_phrases(["Chest pain\tcommon", "  ", "x-ray", "chest"])
    assert phrases == (("chest", "pain"), ("x", "ray"), ("chest",))  # longest first, '-' as a space
    units = ["He", "reported", "chest", "pain,", "an", "X-ray", "and", "a", "chest."]
    assert entity_units(units, phrases).tolist() == [False, False, True, True, False, True, False, False, True]
    assert entity_units(["chest pain was", "gone"], phrases).tolist() == [True, False]  # a segment holding one
    params = SamplerParams(p=0.99, entities=phrases)
    for key in "abcdefgh":
        mask = speech_mask("entity", len(units), params, rng_for(0, key), units)
        assert not any(m for m, hit in zip(mask, entity_units(units, phrases)) if hit)
        assert mask[0]
    with pytest.raises(ValueError, match="entity needs a list of entity phrases"):
        SamplerParams().check("entity")
    with pytest.raises(ValueError, match="needs the text of each unit"):
        speech_mask("entity", 3, params, rng_for(0, "a"))


def _reference_hash(value: str, salt: str) -> int:
    """FNV-1a 64 over salt then value, then murmur3's fmix64, one byte at a time in plain Python."""
    mask, h = (1 << 64) - 1, 0xCBF29CE484222325
    for byte in (salt + value).encode():
        h = ((h ^ byte) * 0x100000001B3) & mask
    for mult in (0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53):
        h = ((h ^ (h >> 33)) * mult) & mask
    return h ^ (h >> 33)


def test_hashes_are_stable_and_independent_of_the_batch():
    ids = pa.array(["u1", "spk-7/utt 3", "", None, "é", "a-much-longer-identifier/with/parts:0001"])
    h = string_hash(ids.slice(0), "0:asr:0")
    assert h.tolist() == [_reference_hash(x or "", "0:asr:0") for x in ids.to_pylist()]
    assert string_hash(ids.slice(1, 2), "0:asr:0").tolist() == h[1:3].tolist()  # a slice hashes alike
    assert h[2] == h[3] and h[0] != string_hash(pa.array(["u1"]), "1:asr:0")[0]
    assert int(h[0]) == 0xC75843F65FE2D383  # the order candidates are taken in must never change


def test_selection_meets_the_ratio_by_samples_and_by_tokens_and_matches_the_second_pass():
    asr_ids = pa.array([f"u{i}" for i in range(1000)])
    text_ids = pa.array([f"t{i}" for i in range(5000)])
    hists = {"asr": histogram(asr_ids, np.full(1000, 10.0), 0, "asr", 1),
             "text": histogram(text_ids, np.ones(5000), 0, "text", 1)}
    sel = thresholds(hists, {"asr": 0.5, "text": 0.5})
    assert sel.limited_by == "text" and sel.taken["text"] == 5000 and sel.taken["asr"] == pytest.approx(5000, rel=0.01)
    picked = chosen(asr_ids, 0, "asr", 1, sel.thresholds["asr"])
    assert len(picked[0][1]) * 10.0 == sel.taken["asr"]  # pass 2 takes exactly what pass 1 counted
    sel = thresholds({**hists, "interleave_word": np.zeros(4096)}, {"asr": 0.4, "text": 0.4, "interleave_word": 0.2})
    assert sel.dropped == ["interleave_word"] and sel.weights == pytest.approx({"asr": 0.5, "text": 0.5})
    twice = thresholds({"text": histogram(text_ids[:10], np.ones(10), 0, "text", 3),
                        "asr": histogram(asr_ids, np.ones(1000), 0, "asr", 1)}, {"asr": 0.5, "text": 0.5})
    assert twice.taken["text"] == 30 and abs(twice.taken["asr"] - 30) <= 1  # text redrawn 3 times limits (±1 bucket)


def test_recipes_parse_resolve_and_name_the_paper_rows():
    assert parse_mixture("asr:2,text:1") == pytest.approx({"asr": 2 / 3, "text": 1 / 3})
    with pytest.raises(ValueError, match="unknown kind 'speech'"):
        parse_mixture("speech:1")
    weights, settings = resolve("il_segment_silence", DEFAULT_RECIPES)
    assert weights == {"asr": 0.5, "interleave_segment": 0.5} and settings == {"segmenter": "silence"}
    weights, _ = resolve("asr_il", DEFAULT_RECIPES)
    assert weights["asr"] == pytest.approx(weights["interleave_word"] + weights["interleave_segment"])
    assert resolve("jstip_mixed", DEFAULT_RECIPES) == resolve(ALIASES["jstip_mixed"], DEFAULT_RECIPES)
    assert resolve("asr:1,tts_text:1", {})[0] == {"asr": 0.5, "tts_text": 0.5}
    with pytest.raises(ValueError, match="unknown recipe 'nope'"):
        resolve("nope", DEFAULT_RECIPES)
