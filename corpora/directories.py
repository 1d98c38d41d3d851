"""Directory corpora: the MFA layout (`speaker/*.wav|flac` beside `.lab`/`.txt`) and the
LibriSpeech layout (`*.trans.txt` listings beside `.flac` files)."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from .base import AUDIO_SUFFIXES, RawUtterance, absolute, decode_text


def iter_mfa_dir(root: Path, encoding: str = "utf-8") -> Iterator[RawUtterance]:
    """MFA layout: each audio file with a same-named `.lab` or `.txt`; the folder is the speaker.
    A transcript without audio is reported too."""
    files = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))
    audio_stems = {p.with_suffix("") for p in files if p.suffix.lower() in AUDIO_SUFFIXES}
    for file in files:
        suffix = file.suffix.lower()
        speaker = file.parent.name if file.parent != root else file.stem
        if suffix in (".lab", ".txt") and file.with_suffix("") not in audio_stems:
            if suffix == ".lab" or not file.name.endswith(".trans.txt"):
                yield RawUtterance(file.stem, absolute(file, Path.cwd()), "", speaker,
                                   problem=f"missing_audio: transcript {file.name} has no audio file beside it "
                                           f"({'/'.join(AUDIO_SUFFIXES)})")
            continue
        if suffix not in AUDIO_SUFFIXES:
            continue
        transcript = next((file.with_suffix(s) for s in (".lab", ".txt") if file.with_suffix(s).exists()), None)
        if transcript is None:
            yield RawUtterance(file.stem, absolute(file, Path.cwd()), "", speaker,
                               problem="no_transcript: no .lab or .txt transcript beside the audio")
            continue
        text, problem = decode_text(transcript.read_bytes(), encoding, transcript.name)
        yield RawUtterance(file.stem, absolute(file, Path.cwd()), " ".join(text.split()), speaker, problem=problem)


def iter_librispeech(root: Path, encoding: str = "utf-8") -> Iterator[RawUtterance]:
    """LibriSpeech: `SPEAKER-CHAPTER.trans.txt` lines `UTT_ID TEXT`, audio `UTT_ID.flac` beside it."""
    for listing in sorted(root.rglob("*.trans.txt")):
        for n, raw_line in enumerate(listing.read_bytes().splitlines(), start=1):
            line, problem = decode_text(raw_line, encoding, f"{listing.name} line {n}")
            if not line.strip() and not problem:
                continue
            utt_id, _, text = line.strip().partition(" ")
            utt_id = utt_id or f"{listing.name}:{n}"
            audio = listing.parent / f"{utt_id}.flac"
            if not problem and not audio.exists():
                problem = f"missing_audio: audio {audio.name} listed in {listing.name} does not exist"
            yield RawUtterance(utt_id, absolute(audio, Path.cwd()), text.strip(), utt_id.split("-")[0], problem=problem)
