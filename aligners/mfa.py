"""Montreal Forced Aligner 3.x driven by its command line, one staged corpus per shard.

MFA needs conda's Kaldi build, so it is never a Python dependency: `mfa` must be on PATH.
Per shard the utterances are written as `corpus/SPEAKER/UTT.wav` + `.lab` (16 kHz slices of
their audio, `norm_text` as transcript; names from `staging_names`, injective whatever the ids
hold, and mapped back by position), then

    mfa align CORPUS DICTIONARY ACOUSTIC_MODEL OUT -j JOBS --clean --beam B --retry_beam R
        --output_format long_textgrid [--single_speaker]

runs, and `OUT/SPEAKER/UTT.TextGrid` is read back (`textgrid.read_textgrid`), `<unk>` mapped to
the transcript's words (`match_transcript`). An utterance without a TextGrid is one MFA could not align (beam too
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
from manifests.schema import ALIGN_OK, Alignment, Utterance, WordSpan

from .base import Aligner, AlignmentFailed, check_utterance, failed, failure_category
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
            raise AlignmentFailed(result.reason.split(": ", 1)[-1], failure_category(result.reason))
        return list(result.words)

    def align_utterances(self, utterances: Sequence[Utterance]) -> list[Alignment]:
        results: dict[int, Alignment] = {}
        names = staging_names(utterances)
        with tempfile.TemporaryDirectory(prefix="jstip-mfa-") as tmp:
            corpus, out = Path(tmp) / "corpus", Path(tmp) / "out"
            staged = []
            for i, (utt, (speaker, stem)) in enumerate(zip(utterances, names)):
                try:
                    check_utterance(utt)
                    audio = load_audio(utt.audio_path, utt.offset, utt.duration, self.sample_rate)
                except AlignmentFailed as exc:
                    results[i] = failed(utt.utt_id, self.name, exc.category, str(exc))
                    continue
                except AudioError as exc:
                    results[i] = failed(utt.utt_id, self.name, "audio_unreadable", str(exc))
                    continue
                write_audio(audio, corpus / speaker / f"{stem}.wav", self.sample_rate)
                (corpus / speaker / f"{stem}.lab").write_text(utt.norm_text + "\n", encoding="utf-8")
                staged.append(i)
            if staged:
                try:
                    proc = subprocess.run(self.command(corpus, out), capture_output=True, text=True)
                except OSError as exc:  # the executable vanished or cannot run: retried on rerun
                    proc = subprocess.CompletedProcess(self.command(corpus, out), 127, "", str(exc))
                for i in staged:
                    speaker, stem = names[i]
                    results[i] = self._read(utterances[i], out / speaker / f"{stem}.TextGrid", proc)
        return [results[i] for i in range(len(utterances))]

    def _read(self, utt: Utterance, grid: Path, proc: subprocess.CompletedProcess) -> Alignment:
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            return failed(utt.utt_id, self.name, "backend_failed", f"mfa align exited with {proc.returncode}: "
                          f"{' | '.join(tail)}")
        if not grid.exists():
            return failed(utt.utt_id, self.name, "not_aligned",
                          "MFA wrote no TextGrid for it (beam too narrow or audio unusable; try a wider --retry-beam)")
        try:
            words, phones = read_textgrid(grid)
            match = match_transcript(words, utt.norm_text.split())
        except AlignmentFailed as exc:
            return failed(utt.utt_id, self.name, exc.category, f"MFA output: {exc}")
        except JstipError as exc:
            return failed(utt.utt_id, self.name, "not_aligned", f"MFA output unreadable: {exc}")
        return Alignment(utt.utt_id, self.name, ALIGN_OK, match.note(), tuple(match.spans), tuple(phones))


def staging_names(utterances: Sequence[Utterance]) -> list[tuple[str, str]]:
    """(speaker directory, file stem) under which each utterance is staged for MFA, in order.

    MFA names its outputs after the staged files, so these must be injective and must not
    depend on how a file system or MFA reads dots and slashes (`lib.001` and `lib.002` must not
    both become `lib`; `a/b` and `a_b` must not meet). Each name starts with the utterance's
    position in the shard (and each speaker directory with the speaker's), which makes the
    names distinct whatever the ids; the readable rest is the id with every character but
    letters, digits, `-` and `_` replaced by `_`. Results are mapped back by position, never
    by parsing a name.
    """
    speakers: dict[str, str] = {}
    names = []
    for i, utt in enumerate(utterances):
        speaker = utt.speaker or "speaker"
        if speaker not in speakers:
            speakers[speaker] = f"s{len(speakers):05d}-{_safe(speaker)}"
        names.append((speakers[speaker], f"u{i:06d}-{_safe(utt.utt_id)}"))
    return names


def _safe(name: str, limit: int = 60) -> str:
    """A readable, file-system-safe fragment of an id: no dots, slashes or spaces; at most `limit` chars."""
    return "".join(c if c.isascii() and (c.isalnum() or c in "-_") else "_" for c in name)[:limit] or "_"
