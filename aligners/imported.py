"""`--aligner import`: alignments made elsewhere (MFA run on another machine, a CTM file) as the manifest.

`source` is a directory of TextGrids named by utterance id (`ID.TextGrid` or `ID.mfa.TextGrid`,
in any sub-directory) or a CTM file. Each utterance's spans are matched to its `norm_text`
(`textgrid.match_transcript`: a word or two inserted or dropped, as when MFA was run on a
slightly different transcript, keeps the matched words and notes the rest as `partial: …`);
an utterance with no alignment in the source, or whose words do not match its transcript,
becomes a `failed` record saying so.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from manifests.errors import JstipError
from manifests.schema import ALIGN_OK, Alignment, Utterance, WordSpan

from .base import Aligner, AlignmentFailed, check_utterance, failed
from .textgrid import match_transcript, read_existing


class ImportedAligner(Aligner):
    """Looks each utterance up in existing alignments instead of computing one."""

    name = "import"

    def __init__(self, source: str = "", **_: object) -> None:
        self.check(source)
        self.source = source
        self._alignments = read_existing(source)

    @staticmethod
    def check(source: str = "", **_: object) -> None:
        if not source or not Path(source).exists():
            raise JstipError(
                f"--aligner import needs --source: a directory of TextGrids or a .ctm file (got {source!r})"
            )

    def align(self, audio: np.ndarray, words: Sequence[str]) -> list[WordSpan]:
        raise JstipError("the import backend looks utterances up by id; use align_utterances")

    def align_utterances(self, utterances: Sequence[Utterance]) -> list[Alignment]:
        out = []
        for utt in utterances:
            found = self._alignments.get(utt.utt_id)
            try:
                check_utterance(utt)
                if found is None:
                    raise AlignmentFailed(f"no {utt.utt_id}.TextGrid or CTM lines in {self.source}", "not_in_source")
                if isinstance(found, Exception):
                    raise AlignmentFailed(str(found), "source_unreadable")
                match = match_transcript(found[0], utt.norm_text.split())
            except AlignmentFailed as exc:
                out.append(failed(utt.utt_id, self.name, exc.category, f"imported alignment: {exc}"))
                continue
            out.append(Alignment(utt.utt_id, self.name, ALIGN_OK, match.note(), tuple(match.spans), tuple(found[1])))
        return out
