"""Montreal Forced Aligner 3.x driven by its command line, one staged corpus per shard.

MFA needs conda's Kaldi build, so it is never a Python dependency: `mfa` must be on PATH.
Per shard the utterances are written as `corpus/SPEAKER/UTT.wav` + `.lab` (16 kHz slices of
their audio, `norm_text` as transcript), then

    mfa align CORPUS DICTIONARY ACOUSTIC_MODEL OUT -j JOBS --clean --beam B --retry_beam R
        --output_format long_textgrid [--single_speaker]

runs, and `OUT/SPEAKER/UTT.TextGrid` is read back (`textgrid.read_textgrid`), `<unk>` mapped to
the transcript's words. An utterance without a TextGrid is one MFA could not align (beam too
narrow, audio unusable): it becomes a `failed` record, as does a whole shard when MFA exits
with an error (the reason carries the end of its log).
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np

from manifests.audio import load_audio, write_audio
from manifests.errors import AudioError, JstipError
from manifests.schema import ALIGN_FAILED, ALIGN_OK, Alignment, Utterance, WordSpan

from .base import Aligner, AlignmentFailed
from .textgrid import match_transcript, read_textgrid

INSTALL_HINT = (
    "`mfa` (Montreal Forced Aligner 3.x) is not on PATH. Install it with conda from conda-forge: "
    "`conda create -n aligner -c conda-forge montreal-forced-aligner`, `conda activate aligner`, then "
    "`mfa model download acoustic english_us_arpa` and `mfa model download dictionary english_us_arpa`; "
    "or use --aligner pocketsphinx, which needs nothing installed"
)


class MfaAligner(Aligner):
    """Runs `mfa align` over each shard's utterances and reads its TextGrids."""

    name = "mfa"

    def __init__(self, model: str = "", dictionary: str = "", jobs: int = 1, beam: float = 0,
                 retry_beam: float = 0, single_speaker: bool = False, executable: str = "mfa",
                 **_: object) -> None:
        self.check(executable=executable)
        self.executable = executable
        self.model = model or "english_us_arpa"
        self.dictionary = dictionary or "english_us_arpa"
        self.jobs, self.beam, self.retry_beam, self.single_speaker = jobs, beam, retry_beam, single_speaker

    @staticmethod
    def check(executable: str = "mfa", **_: object) -> None:
        if shutil.which(executable) is None:
            raise JstipError(INSTALL_HINT)

    def command(self, corpus: Path, out: Path) -> list[str]:
        """The `mfa align` command line for a staged corpus."""
        cmd = [self.executable, "align", str(corpus), self.dictionary, self.model, str(out),
               "-j", str(self.jobs), "--clean", "--output_format", "long_textgrid"]
        if self.beam:
            cmd += ["--beam", f"{self.beam:g}"]
        if self.retry_beam:
            cmd += ["--retry_beam", f"{self.retry_beam:g}"]
        if self.single_speaker:
            cmd.append("--single_speaker")
        return cmd

    def align(self, audio: np.ndarray, words: Sequence[str]) -> list[WordSpan]:
        utt = Utterance("utt", "", 0.0, len(audio) / self.sample_rate, self.sample_rate, "speaker",
                        " ".join(words), " ".join(words), "", "")
        with tempfile.TemporaryDirectory(prefix="jstip-mfa-") as tmp:
            path = Path(tmp) / "utt.wav"
            write_audio(audio, path, self.sample_rate)
            result = self.align_utterances([Utterance(**{**utt.__dict__, "audio_path": str(path)})])[0]
        if result.status != ALIGN_OK:
            raise AlignmentFailed(result.reason)
        return list(result.words)

    def align_utterances(self, utterances: Sequence[Utterance]) -> list[Alignment]:
        results: dict[str, Alignment] = {}
        with tempfile.TemporaryDirectory(prefix="jstip-mfa-") as tmp:
            corpus, out = Path(tmp) / "corpus", Path(tmp) / "out"
            staged = []
            for utt in utterances:
                speaker = _safe(utt.speaker or "speaker")
                try:
                    audio = load_audio(utt.audio_path, utt.offset, utt.duration, self.sample_rate)
                except AudioError as exc:
                    results[utt.utt_id] = Alignment(utt.utt_id, self.name, ALIGN_FAILED, str(exc))
                    continue
                stem = corpus / speaker / _safe(utt.utt_id)
                write_audio(audio, stem.with_suffix(".wav"), self.sample_rate)
                stem.with_suffix(".lab").write_text(utt.norm_text + "\n")
                staged.append((utt, speaker))
            if staged:
                proc = subprocess.run(self.command(corpus, out), capture_output=True, text=True)
                for utt, speaker in staged:
                    results[utt.utt_id] = self._read(utt, out / speaker / f"{_safe(utt.utt_id)}.TextGrid", proc)
        return [results[u.utt_id] for u in utterances]

    def _read(self, utt: Utterance, grid: Path, proc: subprocess.CompletedProcess) -> Alignment:
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            return Alignment(utt.utt_id, self.name, ALIGN_FAILED, f"mfa align exited with {proc.returncode}: {' | '.join(tail)}")
        if not grid.exists():
            return Alignment(utt.utt_id, self.name, ALIGN_FAILED,
                             "not aligned by MFA (no TextGrid written; try a wider --retry-beam)")
        try:
            words, phones = read_textgrid(grid)
            spans = match_transcript(words, utt.norm_text.split())
        except (AlignmentFailed, JstipError) as exc:
            return Alignment(utt.utt_id, self.name, ALIGN_FAILED, f"MFA output does not match: {exc}")
        return Alignment(utt.utt_id, self.name, ALIGN_OK, "", tuple(spans), tuple(phones))


def _safe(name: str) -> str:
    """A file-system-safe version of an id (MFA names outputs after the input files)."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
