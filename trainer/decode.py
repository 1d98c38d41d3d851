"""Batched greedy or beam-search transcription of utterances, long ones in pieces.

The ASR prompt is the paper's: `formats.asr_prompt(duration)` = `<s>` A `<|asr|>`, continued
until `</s>`, rendered as training renders samples. A free prompt is any
text around the speech, written as a template with `{speech}` (e.g. `"question: {speech}
answer:"`). Utterances longer than `chunk_seconds` are cut at quiet points
(`trainer.chunking`) and decoded piece by piece, the pieces' texts joined with a space, so
memory stays bounded by the piece length whatever the recording's; `max_duration` skips
recordings above it instead. Prompts are decoded in duration order for tight batches and
returned in input order. An utterance whose audio cannot be read, or that is too long, is
skipped with its reason, never silently, and the rest of the set is decoded.
"""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Sequence

from tqdm import tqdm
from transformers import PreTrainedTokenizerBase

from manifests.errors import AudioError, JstipError
from manifests.formats import asr_prompt
from manifests.schema import SPEECH, TEXT, Hypothesis, Sample, Span, Utterance

from .chunking import plan_pieces
from .lm_calls import Prompter
from .model import SpeechLM

ASR_PROMPT = "{speech}"


@dataclass
class DecodeResult:
    """Hypotheses in input order (skipped utterances left out) and what decoding met on the way.

    `skipped` counts reasons by category, `skip_reasons` holds each skipped utterance's reason,
    `pieces` the number of pieces of every utterance decoded in more than one, `truncated` the
    utterances whose generation (of some piece) hit `max_new_tokens` before the end token.
    """

    hypotheses: list[Hypothesis] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)
    skipped_ids: list[str] = field(default_factory=list)
    skip_reasons: dict[str, str] = field(default_factory=dict)
    pieces: dict[str, int] = field(default_factory=dict)
    truncated: list[str] = field(default_factory=list)
    audio_seconds: float = 0.0
    wall_seconds: float = 0.0

    def skip(self, utt_id: str, category: str, reason: str) -> None:
        self.skipped[category] += 1
        self.skipped_ids.append(utt_id)
        self.skip_reasons[utt_id] = reason


def prompt_sample(utt: Utterance, prompt: str = ASR_PROMPT, start: float = 0.0, end: float | None = None,
                  sample_id: str | None = None) -> Sample:
    """The decoding prompt of `start..end` (default: all) of an utterance as a `Sample`.

    `prompt` `"{speech}"` is the ASR prompt `<s>` A `<|asr|>`; any other template gives its
    text before, the speech, its text after.
    """
    if prompt.count("{speech}") != 1:
        raise JstipError(f"prompt {prompt!r} must contain '{{speech}}' exactly once (where the audio goes)")
    end = utt.duration if end is None else end
    duration = end - start
    if prompt == ASR_PROMPT:
        spans: tuple[Span, ...] = asr_prompt(duration)
        words = 0
    else:
        before, after = (part.strip() for part in prompt.split("{speech}"))
        spans = ((Span(TEXT, before),) if before else ()) + (Span(SPEECH, "", 0.0, duration),) + \
            ((Span(TEXT, after),) if after else ())
        words = len(before.split()) + len(after.split())
    return Sample(sample_id=sample_id or utt.utt_id, kind="prompt", source_id=utt.utt_id, audio_path=utt.audio_path,
                  offset=utt.offset + start, duration=duration, spans=spans, n_speech_words=0, n_text_words=words)


def _category(reason: str) -> str:
    return reason.split(":")[0]


def transcribe(model: SpeechLM, tok: PreTrainedTokenizerBase, utterances: Sequence[Utterance], batch_size: int = 8,
               max_new_tokens: int = 64, progress: bool = True, num_beams: int = 1, prompt: str = ASR_PROMPT,
               chunk_seconds: float = 30.0, max_duration: float = 0.0, ctc_weight: float = 0.0) -> DecodeResult:
    """Hypotheses of each utterance (reference: `Utterance.text`, the transcript as written).

    `ctc_weight` > 0 decodes by joint CTC/LM beam search with `num_beams` beams (`trainer.joint_decode`):
    the model's letter CTC head scores every hypothesis too, with that weight.
    """
    if num_beams < 1 or batch_size < 1 or max_new_tokens < 1:
        raise JstipError(f"num_beams ({num_beams}), batch_size ({batch_size}) and max_new_tokens "
                         f"({max_new_tokens}) must be at least 1")
    if not 0.0 <= ctc_weight <= 1.0:
        raise JstipError(f"ctc_weight {ctc_weight} must be in [0, 1] (0: the LM alone, 1: the CTC head alone)")
    if chunk_seconds <= 0:
        raise JstipError(f"chunk_seconds must be positive, got {chunk_seconds}; it bounds the audio decoded at once")
    result = DecodeResult()
    start = time.perf_counter()
    prompts: list[tuple[int, int, Sample]] = []  # (utterance index, piece index, prompt)
    n_pieces: dict[int, int] = {}
    for i, utt in enumerate(utterances):
        if max_duration > 0 and utt.duration > max_duration:
            result.skip(utt.utt_id, "too_long", f"too_long: {utt.duration:.1f}s is above max_duration={max_duration}s")
            continue
        try:
            pieces = plan_pieces(utt.audio_path, utt.offset, utt.duration, chunk_seconds)
        except AudioError as exc:
            result.skip(utt.utt_id, "audio_unreadable", f"audio_unreadable: {exc}")
            continue
        n_pieces[i] = len(pieces)
        for k, (a, b) in enumerate(pieces):
            sid = utt.utt_id if len(pieces) == 1 else f"{utt.utt_id}@{k}"
            prompts.append((i, k, prompt_sample(utt, prompt, a, b, sid)))
    prompter = Prompter(model, tok)
    prompts.sort(key=lambda p: p[2].duration)
    texts: dict[int, dict[int, str]] = {}
    failed: dict[int, str] = {}
    truncated: set[int] = set()
    for b in tqdm(range(0, len(prompts), batch_size), desc="decode", disable=not progress, unit="batch"):
        chunk = prompts[b:b + batch_size]
        outs = (prompter.generate_joint([p for _, _, p in chunk], max_new_tokens, num_beams, ctc_weight) if ctc_weight
                else prompter.generate([p for _, _, p in chunk], max_new_tokens, num_beams))
        for (i, k, sample), out in zip(chunk, outs):
            if out is None:
                failed.setdefault(i, prompter.skipped.get(sample.sample_id, "audio_unreadable: unknown"))
                continue
            texts.setdefault(i, {})[k] = out.text
            result.audio_seconds += sample.duration
            if out.truncated:
                truncated.add(i)
    for i, utt in enumerate(utterances):
        if i in failed:
            result.skip(utt.utt_id, _category(failed[i]), failed[i])
        elif i in n_pieces:
            pieces = texts.get(i, {})
            result.hypotheses.append(Hypothesis(utt.utt_id, utt.text,
                                                " ".join(t for _, t in sorted(pieces.items()) if t)))
            if n_pieces[i] > 1:
                result.pieces[utt.utt_id] = n_pieces[i]
            if i in truncated:
                result.truncated.append(utt.utt_id)
    result.wall_seconds = time.perf_counter() - start
    return result
