"""Property tests of interleaving: word order, span placement, speech share, speech first."""
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from interleave.builders import interleaved_sample, segment_runs, word_runs
from interleave.sampling import SAMPLERS, SamplerParams, poisson_speech_mask, rng_for, speech_mask
from interleave.spans import segment_spans, split_at_longest_pause
from manifests.schema import SPEECH, Utterance, WordSpan


@st.composite
def utterances(draw):
    n = draw(st.integers(1, 40))
    durations = draw(st.lists(st.floats(0.05, 0.8), min_size=n, max_size=n))
    gaps = draw(st.lists(st.floats(0.0, 0.9), min_size=n, max_size=n))
    words, t = [], draw(st.floats(0.0, 0.5))
    for i in range(n):
        words.append(WordSpan(f"w{i}", t, t + durations[i]))
        t += durations[i] + gaps[i]
    utt = Utterance("u", "u.wav", 0.0, t + 0.2, 16000, "s", "", " ".join(w.word for w in words), "c", "train")
    return utt, words


@settings(max_examples=150, deadline=None)
@given(utterances(), st.sampled_from(SAMPLERS), st.integers(0, 10**6), st.booleans())
def test_switch_layout_every_word_once_in_order_spans_on_word_boundaries(data, sampler, seed, segment_level):
    utt, words = data
    params = SamplerParams(lam=2.5, eta=0.4, p=0.4, speech_range=(1, 4), text_range=(1, 3))
    rng = rng_for(seed, utt.utt_id)
    if segment_level:
        segments = segment_spans(words, 0.4, 2, 3.0)
        segments = segments if len(segments) >= 2 else split_at_longest_pause(words)  # as the stage does
        runs = segment_runs(segments, speech_mask(sampler, len(segments), params, rng))
    else:
        runs = word_runs(words, speech_mask(sampler, len(words), params, rng))
    sample = interleaved_sample(utt, "interleave_word", runs)
    assert " ".join(s.text for s in sample.spans).split() == [w.word for w in words]
    assert sample.spans[0].modality == SPEECH
    assert sample.n_speech_words + sample.n_text_words == len(words)
    starts, ends = {w.start for w in words}, {w.end for w in words}
    for span in sample.spans:
        if span.modality == SPEECH:
            assert 0.0 <= span.start < span.end <= utt.duration
            assert span.start in starts and span.end in ends
    if len(words) >= 2:
        assert any(s.modality != SPEECH for s in sample.spans)


@settings(max_examples=25, deadline=None)
@given(st.floats(1.5, 10.0), st.floats(0.2, 0.8), st.integers(0, 10**6))
def test_poisson_speech_fraction_converges_to_eta(lam, eta, seed):
    eta = min(eta, lam / (lam + 1) - 0.02)  # the text runs' mean must stay at least one unit
    mask = poisson_speech_mask(30000, lam, eta, rng_for(seed, "long"))
    assert abs(np.mean(mask) - eta) < 0.03
