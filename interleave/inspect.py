"""`jstip inspect SAMPLE_ID`: one sample as a picture and as the sequence the model sees.

The PNG shows the log-mel spectrogram of the sample's audio with the aligned word boundaries,
each word shaded by the modality it has in the sample (speech blue, text orange), and the
span sequence printed underneath; text-only samples get the sequence alone. The same
sequence is printed to stdout exactly as the sample's spans give it (manifests/formats.py): special
tokens by name (`<s>`, `<N>`, `<|asr|>`, `</s>`), speech spans as `[speech N frames @40ms a-b s: "words"]`,
text as written.
"""
from __future__ import annotations

import textwrap
from pathlib import Path

from manifests.io import atomic_path
from manifests.schema import SPEECH, Sample, WordSpan

from manifests.views import sample_audio

SPEECH_COLOUR, TEXT_COLOUR = "#1f77b4", "#ff7f0e"


def word_modalities(sample: Sample, words: tuple[WordSpan, ...]) -> list[str]:
    """Each aligned word's modality in the sample: speech when a speech span covers its middle."""
    speech = [(s.start, s.end) for s in sample.spans if s.modality == SPEECH]
    return [SPEECH if any(a - 1e-6 <= (w.start + w.end) / 2 <= b + 1e-6 for a, b in speech) else "text" for w in words]


def draw(sample: Sample, words: tuple[WordSpan, ...], view: str, png: str | Path) -> Path:
    """Spectrogram with word boundaries and modality shading (or the text alone), as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    has_audio = any(s.modality == SPEECH for s in sample.spans)
    fig, (ax, text_ax) = plt.subplots(2, 1, figsize=(12, 5 if has_audio else 2),
                                      gridspec_kw={"height_ratios": [5, 1] if has_audio else [0.01, 1]})
    if has_audio:
        import librosa
        import numpy as np

        audio = sample_audio(sample)
        mel = librosa.power_to_db(librosa.feature.melspectrogram(y=audio, sr=16000, n_mels=80, hop_length=160), ref=np.max)
        seconds = len(audio) / 16000
        ax.imshow(mel, origin="lower", aspect="auto", extent=(0, seconds, 0, 80), cmap="magma")
        for word, modality in zip(words, word_modalities(sample, words)):
            ax.axvspan(word.start, word.end, ymin=0.0, ymax=0.08, color=SPEECH_COLOUR if modality == SPEECH else TEXT_COLOUR)
            ax.axvline(word.start, color="white", lw=0.6, alpha=0.8)
            ax.text((word.start + word.end) / 2, 82, word.word, rotation=60, fontsize=7, ha="left", va="bottom")
        for span in sample.spans:
            if span.modality == SPEECH:
                ax.axvspan(span.start, span.end, color=SPEECH_COLOUR, alpha=0.18)
        ax.set_xlim(0, seconds)
        ax.set_xlabel("seconds (from the sample's audio start)")
        ax.set_ylabel("mel bin")
        ax.legend(handles=[Patch(color=SPEECH_COLOUR, label="speech span"), Patch(color=TEXT_COLOUR, label="text word")],
                  loc="upper right", fontsize=8)
    else:
        ax.axis("off")
    text_ax.axis("off")
    text_ax.text(0, 1, "\n".join(textwrap.wrap(view, 150)), va="top", family="monospace", fontsize=7, wrap=True)
    fig.suptitle(f"{sample.sample_id}  ({sample.kind}, {sample.n_speech_words} speech / {sample.n_text_words} text words)",
                 y=0.995)
    fig.tight_layout()
    with atomic_path(png) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
    return Path(png)
