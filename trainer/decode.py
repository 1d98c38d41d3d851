"""Batched greedy or beam-search decoding of utterances with a trained `SpeechLM`.

Each utterance becomes a prompt in the training layout, left-padded: the `asr` prompt is
`<bos><|speech|><|audio|>×n<|/speech|>` (what `asr` samples look like before their transcript);
a free prompt is any text around the speech, written as a template with `{speech}`, e.g.
`"question: {speech} answer:"` for the spoken-question probe. The LM's `generate` continues it
(`num_beams=1`: greedy) until `<eos>`. Utterances are decoded in duration order for tight batches
and returned in input order; an utterance whose audio cannot be read is skipped and counted.
"""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Sequence

from tqdm import tqdm
from transformers import PreTrainedTokenizerBase

from manifests.errors import JstipError
from manifests.schema import SPEECH, TEXT, Hypothesis, Sample, Span, Utterance

from .data import Collator, SampleDataset, to_device
from .loop import autocast_for
from .model import SpeechLM

ASR_PROMPT = "{speech}"


@dataclass
class DecodeResult:
    """Hypotheses in input order (skipped utterances left out) and what decoding cost."""

    hypotheses: list[Hypothesis] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)
    skipped_ids: list[str] = field(default_factory=list)
    audio_seconds: float = 0.0
    wall_seconds: float = 0.0


def prompt_sample(utt: Utterance, prompt: str = ASR_PROMPT) -> Sample:
    """The decoding prompt of an utterance as a `Sample`: text before, the whole speech, text after."""
    if prompt.count("{speech}") != 1:
        raise JstipError(f"prompt {prompt!r} must contain '{{speech}}' exactly once (where the audio goes)")
    before, after = (part.strip() for part in prompt.split("{speech}"))
    spans = ((Span(TEXT, before),) if before else ()) + (Span(SPEECH, "", 0.0, utt.duration),) + \
        ((Span(TEXT, after),) if after else ())
    return Sample(sample_id=utt.utt_id, kind="asr", source_id=utt.utt_id, audio_path=utt.audio_path,
                  offset=utt.offset, duration=utt.duration, spans=spans, n_speech_words=0,
                  n_text_words=len(before.split()) + len(after.split()))


def transcribe(model: SpeechLM, tok: PreTrainedTokenizerBase, utterances: Sequence[Utterance], batch_size: int = 8,
               max_new_tokens: int = 64, progress: bool = True, num_beams: int = 1,
               prompt: str = ASR_PROMPT) -> DecodeResult:
    """Continuations of each utterance's prompt (reference = `norm_text`), batched and left-padded."""
    if num_beams < 1:
        raise JstipError(f"num_beams must be at least 1, got {num_beams}")
    device = next(model.parameters()).device
    model.eval()
    dataset = SampleDataset([prompt_sample(u, prompt) for u in utterances], model.spec)
    collator = Collator(tok, model.spec, max_tokens=10**9, padding_side="left", add_eos=False)
    order = sorted(range(len(utterances)), key=lambda i: utterances[i].duration)
    texts: dict[int, str] = {}
    result = DecodeResult()
    start = time.perf_counter()
    autocast = autocast_for(device)
    for b in tqdm(range(0, len(order), batch_size), desc="decode", disable=not progress, unit="batch"):
        idx = order[b:b + batch_size]
        items = [dataset[i] for i in idx]
        for i, item in zip(idx, items):
            if item is None:
                result.skipped[dataset.skipped[utterances[i].utt_id].split(":")[0]] += 1
                result.skipped_ids.append(utterances[i].utt_id)
        kept = [i for i, item in zip(idx, items) if item is not None]
        batch = collator([item for item in items if item is not None])
        if batch is None:
            continue
        with autocast:
            new_ids = model.generate(to_device(batch, device), max_new_tokens=max_new_tokens, num_beams=num_beams)
        for i, ids in zip(kept, new_ids.tolist()):
            texts[i] = tok.decode(ids, skip_special_tokens=True).strip()
        result.audio_seconds += batch["audio_seconds"]
    result.wall_seconds = time.perf_counter() - start
    result.hypotheses = [Hypothesis(u.utt_id, u.norm_text, texts[i]) for i, u in enumerate(utterances) if i in texts]
    return result
