"""Phones: espeak's phone times, pocketsphinx's phone pass, and the phone boundary error."""
from pathlib import Path

import numpy as np
import pytest

from aligners import get_aligner
from aligners.quality import matched_phone_errors, error_summary, load_references
from corpora.textnorm import normalize
from manifests.audio import load_audio, write_audio
from manifests.schema import PhoneSpan, Utterance, WordSpan
from synthetic.tts import tts_phones, tts_words

SAMPLE = next((p / "shared/data/mfa-sample" for p in Path(__file__).resolve().parents[1:4]
               if (p / "shared/data/mfa-sample").is_dir()), Path("shared/data/mfa-sample"))
SENTENCES = [("The cat sat on a mat and looked at seven big dogs.", "en-us", 160),
             ("She walked to the station with her brother in the morning.", "en-us+f3", 180),
             ("A patient was given metformin twice a day for the pain.", "en", 150),
             ("Put the black cup back on the top shelf.", "en-us+m3", 200)]


def test_espeak_phones_tile_each_word_and_a_voiceless_stop_starts_at_its_closure():
    from aligners.espeak import espeak

    engine = espeak()
    audio, words = engine.synthesize("the cat looked at it")
    for w in words:
        assert w.phones, w
        assert w.phones[0][1] == pytest.approx(w.start) and w.phones[-1][2] == pytest.approx(w.end)
        assert all(a[2] == pytest.approx(b[1]) for a, b in zip(w.phones, w.phones[1:]))  # contiguous
    cat = next(w for w in words if w.text == "cat")
    assert [p[0] for p in cat.phones] == ["k", "a", "t"]
    t_start = cat.phones[2][1]
    closure = audio[int(t_start * engine.sample_rate) + 1: int(t_start * engine.sample_rate) + 200]
    assert np.all(closure == 0)  # the final t begins where its silent closure does, not at the burst
    assert audio[int(t_start * engine.sample_rate) - 1] != 0
    assert len(tts_phones(words)) == sum(len(w.phones) for w in words)


def test_phone_errors_compare_matched_words_whose_phone_counts_agree():
    ref_words = [WordSpan("a", 0.0, 0.1), WordSpan("cat", 0.1, 0.4), WordSpan("sat", 0.4, 0.7)]
    ref_phones = [PhoneSpan("a#", 0.0, 0.1), PhoneSpan("k", 0.1, 0.2), PhoneSpan("a", 0.2, 0.3),
                  PhoneSpan("t", 0.3, 0.4), PhoneSpan("s", 0.4, 0.5), PhoneSpan("a", 0.5, 0.7)]
    hyp_words = [WordSpan("a", 0.0, 0.1), WordSpan("cat", 0.1, 0.42), WordSpan("sat", 0.42, 0.7)]
    hyp_phones = [PhoneSpan("AH", 0.0, 0.1), PhoneSpan("K", 0.12, 0.2), PhoneSpan("AE", 0.2, 0.32),
                  PhoneSpan("T", 0.32, 0.42), PhoneSpan("S", 0.42, 0.5), PhoneSpan("AE", 0.5, 0.6),
                  PhoneSpan("T", 0.6, 0.7)]
    errors, compared, both = matched_phone_errors(hyp_words, hyp_phones, ref_words, ref_phones)
    assert (compared, both) == (2, 3)  # "sat": 3 phones against 2, not comparable
    assert [round(e, 4) for e, _ in errors] == [0.0, 0.01, 0.01, 0.02]
    assert [round(o, 4) for _, o in errors] == [0.0, 0.02, 0.0, 0.02]
    assert matched_phone_errors(hyp_words, [], ref_words, ref_phones) == ([], 0, 0)


@pytest.fixture(scope="module")
def phone_aligner():
    return get_aligner("pocketsphinx", phones=True)


def test_pocketsphinx_places_phones_inside_its_words_close_to_espeaks(phone_aligner, spoken):
    errors, compared, both = [], 0, 0
    for sentence, voice, rate in SENTENCES:
        audio, spoken_words = spoken(sentence, voice=voice, rate=rate)
        spans = phone_aligner.align(audio, normalize(sentence).split())
        phones = phone_aligner.placed_phones
        assert phones and all(p.phone.isalpha() and p.phone.isupper() for p in phones)  # ARPAbet
        for w in spans:  # phones tile their words
            inside = [p for p in phones if w.start <= p.start < w.end]
            assert inside and inside[0].start == pytest.approx(w.start, abs=1e-3)
            assert inside[-1].end == pytest.approx(w.end, abs=1e-3)
        e, c, b = matched_phone_errors(spans, phones, tts_words(spoken_words), tts_phones(spoken_words))
        errors, compared, both = errors + e, compared + c, both + b
    summary = error_summary(errors)
    assert compared >= 0.7 * both and both >= 35
    assert summary["boundary_error_mean_ms"] < 20 and summary["within_50ms"] > 0.9


def test_the_record_carries_phones_only_when_asked(phone_aligner, spoken, tmp_path):
    sentence, voice, rate = SENTENCES[0]
    audio, _ = spoken(sentence, voice=voice, rate=rate)
    write_audio(audio, tmp_path / "a.wav", 16000)
    utt = Utterance("u1", str(tmp_path / "a.wav"), 0.0, len(audio) / 16000, 16000, "s", sentence,
                    normalize(sentence), "c", "train")
    with_phones = phone_aligner.align_one(utt)
    assert with_phones.status == "ok" and len(with_phones.phones) >= len(with_phones.words)
    without = get_aligner("pocketsphinx").align_one(utt)
    assert without.status == "ok" and without.phones == ()
    assert [w.word for w in without.words] == [w.word for w in with_phones.words]


@pytest.mark.skipif(not SAMPLE.is_dir(), reason="the team's MFA sample is not present")
def test_phones_against_real_mfa_phone_tiers(phone_aligner):
    words_ref, phones_ref = load_references(str(SAMPLE))
    assert phones_ref and set(phones_ref) <= set(words_ref)
    name = "acoustic_corpus"
    audio = load_audio(SAMPLE / f"{name}.wav", sample_rate=16000)
    spans = phone_aligner.align(audio, normalize((SAMPLE / f"{name}.lab").read_text()).split())
    errors, compared, both = matched_phone_errors(spans, phone_aligner.placed_phones, words_ref[name],
                                                  phones_ref[name])
    assert compared >= 0.5 * both > 0
    assert error_summary(errors)["boundary_error_median_ms"] < 40


def test_align_stage_reports_phone_error_against_the_demo_reference(tmp_path):
    import json

    from pipeline.stage_align import AlignConfig, run as align
    from pipeline.stage_demo_corpus import DemoCorpusConfig, run as demo_corpus
    from pipeline.stage_prepare import PrepareConfig, run as prepare

    demo_corpus(DemoCorpusConfig(out=str(tmp_path / "demo"), n_utterances=4, n_domain_texts=1,
                                 metrics=str(tmp_path / "m.json")))
    prepare(PrepareConfig(corpus=str(tmp_path / "demo/corpus"), utterances=str(tmp_path / "u.parquet"),
                          texts=str(tmp_path / "t.parquet"), rejected=str(tmp_path / "r.parquet"),
                          metrics=str(tmp_path / "p.json")))
    reports = {}
    for phones in (False, True):
        out = tmp_path / f"phones-{phones}"
        align(AlignConfig(utterances=str(tmp_path / "u.parquet"), out=str(out / "a"), min_shards=1, phones=phones,
                          reference=str(tmp_path / "demo/reference.parquet"), metrics=str(out / "metrics.json"),
                          report=str(out / "report.json")))
        reports[phones] = json.loads((out / "report.json").read_text())
        assert not any("phone" in key for key in json.loads((out / "metrics.json").read_text()))
    assert reports[False]["phones"]["words_with_phones"] == 0 and "--phones" in reports[False]["phones"]["note"]
    scored = reports[True]["phones"]
    assert scored["words_compared"] >= 0.6 * scored["words_with_phones"] > 0
    assert scored["boundary_error_mean_ms"] < 30 and set(scored) >= {"within_10ms", "within_100ms"}
