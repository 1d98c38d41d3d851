"""Property tests of the paper's construction on random aligned sources: word order, alternation,
text at the end, complementary variants, spans on unit boundaries, and the segmenters."""
import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from interleave.sampling import SAMPLERS, SamplerParams, poisson_speech_mask, rng_for
from interleave.sequences import alternation, spans_column
from interleave.units import SEGMENTERS, Words, _token_pieces, segment_cuts, segment_units, token_info, word_units
from manifests.formats import BOS, EOS, SEGMENT
from corpora.textnorm import normalize


def _name(s: int, i: int) -> str:
    return "w" + "".join(chr(97 + int(d)) for d in f"{s}{i:02d}")  # letters only: digits would be spelled out


@st.composite
def sources(draw):
    n_sources = draw(st.integers(1, 4))
    rows, texts = [], []
    for s in range(n_sources):
        n = draw(st.integers(1, 30))
        durations = draw(st.lists(st.floats(0.05, 0.8), min_size=n, max_size=n))
        gaps = draw(st.lists(st.floats(0.0, 0.9), min_size=n, max_size=n))
        punct = draw(st.lists(st.sampled_from(["", "", ",", "."]), min_size=n, max_size=n))
        t, row = draw(st.floats(0.0, 0.5)), []
        for i in range(n):
            row.append({"word": _name(s, i), "start": t, "end": t + durations[i], "score": 1.0})
            t += durations[i] + gaps[i]
        rows.append(row)
        texts.append(" ".join(f"{_name(s, i).upper()}{p}" for i, p in enumerate(punct)))
    return pa.array(texts), Words.from_lists(pa.array(rows))


@settings(max_examples=120, deadline=None)
@given(sources(), st.sampled_from(SEGMENTERS), st.booleans())
def test_both_variants_alternate_end_with_text_and_cover_every_unit(data, segmenter, segment_level):
    texts, words = data
    units = word_units(texts, words, normalize)
    assert units.raw.all() and units.counts.tolist() == words.counts.tolist()
    if segment_level:
        cut, _ = segment_cuts(units, segmenter, 0.4, 3)
        units = segment_units(units, cut)
    n_sources = len(units.offsets) - 1
    built = alternation(units, np.arange(n_sources), "both", segment_level)
    spans, _ = spans_column(built.slots)
    unit_texts = units.text.to_pylist()
    as_text: dict[int, set] = {s: set() for s in range(n_sources)}
    for i, (source, phase) in enumerate(zip(built.source, built.variant)):
        seq = spans[i].as_py()
        assert seq[0]["text"] == BOS and seq[-1]["text"] == EOS
        body = [x for x in seq[1:-1] if x["modality"] != "token"]
        if segment_level:
            assert [x["text"] for x in seq[1:-1] if x["modality"] == "token"] == [SEGMENT] * (len(body) - 1)
            assert all(seq[k]["modality"] != "token" for k in range(1, len(seq) - 1, 2))
        else:
            assert len(body) == len(seq) - 2  # nothing between speech and text
        lo = int(units.offsets[source])
        assert [x["text"] for x in body] == unit_texts[lo: lo + len(body)]
        modalities = [x["modality"] for x in body]
        assert modalities == [("speech", "text")[(k + phase) % 2] for k in range(len(body))]
        assert modalities[-1] == "text" and "speech" in modalities
        for k, x in enumerate(body):
            if x["modality"] == "speech":
                assert (x["start"], x["end"]) == (units.start[lo + k], units.end[lo + k])
            else:
                as_text[source].add(k)
    for s in range(n_sources):
        if units.counts[s] >= 3:
            assert as_text[s] == set(range(units.counts[s]))  # every unit is a text target in one variant


@settings(max_examples=60, deadline=None)
@given(sources(), st.sampled_from(SEGMENTERS), st.floats(0.05, 1.0))
def test_segments_partition_the_units_in_order(data, segmenter, max_pause):
    texts, words = data
    units = word_units(texts, words, normalize)
    cut, widest = segment_cuts(units, segmenter, max_pause, 4)
    segs = segment_units(units, cut)
    assert segs.words.sum() == units.words.sum()
    assert " ".join(segs.text.to_pylist()).split() == " ".join(units.text.to_pylist()).split()
    assert ((segs.counts >= 2) | (units.counts < 2)).all()  # a source of 2+ units is always cut somewhere
    assert (segs.end >= segs.start).all() and not widest[units.counts < 2].any()


@settings(max_examples=25, deadline=None)
@given(st.floats(1.5, 10.0), st.floats(0.2, 0.8), st.integers(0, 10**6))
def test_poisson_speech_fraction_converges_to_eta(lam, eta, seed):
    eta = min(eta, lam / (lam + 1) - 0.02)  # the text runs' mean must stay at least one unit
    mask = poisson_speech_mask(30000, lam, eta, rng_for(seed, "long"))
    assert abs(np.mean(mask) - eta) < 0.03
    assert set(SAMPLERS) >= {"alternate", "poisson"} and SamplerParams().lam == 3.0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet="aZé'-.,;:!?\"()[]<>{}09 %&_", min_size=1, max_size=8).map(str.strip).filter(bool),
                min_size=1, max_size=20))
def test_the_vectorised_token_normalisation_agrees_with_normalize(tokens):
    tokens = [t for t in tokens if " " not in t] or ["a"]
    pieces, clause, pool, start = _token_pieces(pa.array(tokens), normalize)
    words = pool.to_pylist()
    for i, token in enumerate(tokens):
        expected, ends = token_info(token, normalize)
        assert tuple(words[start[i]: start[i] + pieces[i]]) == expected and clause[i] == ends, token
