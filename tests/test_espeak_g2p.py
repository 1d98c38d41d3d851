import subprocess
import sys
from pathlib import Path

from aligners.g2p import arpabet

REPO = Path(__file__).resolve().parents[1]

ARPABET = set(
    "AA AE AH AO AW AY B CH D DH EH ER EY F G HH IH IY JH K L M N NG OW OY P R S SH T TH UH UW V W Y Z ZH".split()
)


def test_synthesis_gives_audio_and_ordered_word_times(spoken):
    audio, words = spoken("The patient takes metformin daily.")
    assert len(audio) > 16000 * 0.8
    assert [w.text for w in words] == ["The", "patient", "takes", "metformin", "daily"]
    starts = [w.start for w in words]
    assert starts == sorted(starts)
    assert all(w.end > w.start for w in words)
    assert words[-1].end <= len(audio) / 16000 + 0.05


def test_breathy_voices_synthesize_identically_in_every_process():
    # espeak's breath noise is random; the demo corpus must still be the same on every run
    script = (
        "import hashlib; from aligners.espeak import espeak\n"
        "e = espeak(); h = hashlib.sha1()\n"
        "for i, v in enumerate(['en-us+f3', 'en-us+f2', 'en-us+f3']):\n"
        "    h.update(e.synthesize('A breathy voice speaks.', voice=v, seed=i)[0].tobytes())\n"
        "print(h.hexdigest())"
    )
    runs = [subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=True).stdout
            for _ in range(2)]
    assert runs[0] == runs[1] and len(runs[0].strip()) == 40


def test_g2p_gives_arpabet_for_words_outside_any_dictionary():
    phones = arpabet("atorvastatin")
    assert phones and set(phones) <= ARPABET
    assert arpabet("metformin") == ["M", "EH", "T", "F", "AO", "R", "M", "IH", "N"]
