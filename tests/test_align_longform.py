"""Long recordings: cut at silences by the VAD, aligned piece by piece, one alignment per utterance."""
import numpy as np
import pytest

from aligners import get_aligner
from aligners.longform import LongformSettings, pieces, speech_regions
from manifests.audio import write_audio
from manifests.schema import Utterance
from corpora.textnorm import normalize

SENTENCES = ["The patient was given atorvastatin for hypertension yesterday.",
             "She reported mild dizziness after the second dose.",
             "Her blood pressure improved within two weeks of treatment.",
             "The physician recommended a follow up visit next month.",
             "Nobody answered the phone at the clinic on saturday."]

WRONG = ("Seven purple elephants danced slowly across the frozen lake while an orchestra of geese played "
         "a march and nobody in the village could explain why the bells kept ringing.")


def _recording(spoken, pauses, noise=0.002):
    """Sentences with the given pauses after each (seconds), faint noise throughout; true word starts
    and, per sentence, (index of its first word, its true start)."""
    rng = np.random.default_rng(0)
    parts, truth, words, first, t = [], [], [], [], 0.0
    for sentence, pause in zip(SENTENCES * 4, pauses):
        audio, spoken_words = spoken(sentence, voice="en-us", rate=160)
        first.append((len(words), t + spoken_words[0].start))
        truth += [t + w.start for w in spoken_words]
        words += normalize(sentence).split()
        parts += [audio, np.zeros(int(pause * 16000), np.float32)]
        t += len(audio) / 16000 + pause
    audio = np.concatenate(parts)
    return audio + noise * rng.standard_normal(len(audio)).astype(np.float32), words, truth, first


def test_long_silences_and_dense_speech_are_aligned_in_pieces_from_the_file(tmp_path, spoken):
    # a 9 s and a 12 s silence (one pass fails past ~7 s), and sentences 0.4-1.2 s apart
    pauses = [0.6, 9.0, 0.4, 1.2, 12.0, 0.5, 0.8, 0.4, 3.0, 0.6]
    audio, words, truth, first = _recording(spoken, pauses)
    seconds = len(audio) / 16000
    assert seconds > 60
    write_audio(audio, tmp_path / "long.wav", 16000)
    utt = Utterance("long", str(tmp_path / "long.wav"), 0.0, seconds, 16000, "s", "", " ".join(words), "c", "train")
    record = get_aligner("pocketsphinx").align_one(utt)
    assert record.status == "ok", record.reason
    spans = record.words
    assert [s.word for s in spans] == words
    onsets = np.abs(np.array([s.start for s in spans]) - np.array(truth))
    assert np.mean(onsets) < 0.05
    # no sentence's first word pulled into the pause before it
    for index, start in first:
        assert abs(spans[index].start - start) < 0.1, (spans[index], start)
    assert all(a.end <= b.start + 1e-6 for a, b in zip(spans, spans[1:]))


def test_speech_is_grouped_into_pieces_cut_at_pauses():
    s = LongformSettings(min_gap=0.3, pad=0.2)
    regions = [(1.0, 3.0), (3.1, 5.0), (5.5, 9.0), (9.5, 12.0), (20.0, 21.0)]
    # 3.0-3.1 is too short to cut at; the other pauses end a piece
    assert pieces(regions, 22.0, s) == [(0.8, 5.2, 5.0), (5.3, 9.2, 9.0), (9.3, 12.2, 12.0), (19.8, 21.2, 21.0)]
    probs = np.array([0.1] * 10 + [0.9] * 20 + [0.2] * 10 + [0.6] * 2 + [0.1] * 10, np.float32)
    assert [tuple(round(x, 3) for x in r) for r in speech_regions(probs, LongformSettings())] == [(0.32, 0.96)]


def test_silence_only_long_recording_fails_with_a_reason(tmp_path):
    audio = 0.001 * np.random.default_rng(0).standard_normal(16000 * 35).astype(np.float32)
    with pytest.raises(Exception, match="no speech"):
        get_aligner("pocketsphinx").align(audio, ["hello", "world"])


def test_a_stretch_whose_transcript_is_wrong_is_left_out_and_every_other_piece_keeps_its_words(tmp_path, spoken):
    # 12 sentences by four voices, 0.5 s apart; the transcript of the 6th is another, longer text
    voices = ["en-us", "en-us+f3", "en-gb-x-rp+m2", "en-us+m3"]
    wrong = WRONG
    rng = np.random.default_rng(1)
    parts, words, truth, bad, t = [], [], [], [], 0.0
    for k, sentence in enumerate((SENTENCES * 3)[:12]):
        audio, spoken_words = spoken(sentence, voice=voices[k % 4], rate=160)
        if k == 5:
            bad += normalize(wrong).split()
            words += normalize(wrong).split()
            truth += [None] * len(normalize(wrong).split())
        else:
            words += normalize(sentence).split()
            truth += [t + w.start for w in spoken_words]
        parts += [audio, np.zeros(8000, np.float32)]
        t += len(audio) / 16000 + 0.5
    audio = np.concatenate(parts)
    audio += 0.002 * rng.standard_normal(len(audio)).astype(np.float32)
    write_audio(audio, tmp_path / "long.wav", 16000)
    utt = Utterance("long", str(tmp_path / "long.wav"), 0.0, len(audio) / 16000, 16000, "s", "", " ".join(words),
                    "c", "train")
    record = get_aligner("pocketsphinx").align_one(utt)
    assert record.status == "partial", record.reason
    assert record.reason.startswith("gap: ") and "words left out" in record.reason
    good = [i for i, x in enumerate(truth) if x is not None]
    placed = {}
    j = 0
    for span in record.words:  # the kept words, in transcript order
        while words[j] != span.word:
            j += 1
        placed[j] = span
        j += 1
    kept = [i for i in good if i in placed]
    assert len(kept) >= 0.97 * len(good)  # every other piece keeps its words
    onsets = np.array([abs(placed[i].start - truth[i]) for i in kept])
    assert np.median(onsets) < 0.03 and np.mean(onsets < 0.1) > 0.95
    assert all(a.end <= b.start + 1e-6 for a, b in zip(record.words, record.words[1:]))


def test_with_gaps_off_a_wrong_stretch_fails_the_recording(tmp_path, spoken):
    parts, words = [], []
    for k, sentence in enumerate(SENTENCES * 2):
        audio, _ = spoken(sentence, voice="en-us", rate=160)
        parts += [audio, np.zeros(8000, np.float32)]
        words += normalize(WRONG if k == 4 else sentence).split()
    audio = np.concatenate(parts) + 0.002 * np.random.default_rng(0).standard_normal(sum(map(len, parts))).astype(np.float32)
    aligner = get_aligner("pocketsphinx", longform=LongformSettings(gaps=False))
    with pytest.raises(Exception, match="check that the transcript matches"):
        aligner.align(audio, words)
