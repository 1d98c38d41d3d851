"""Batched greedy transcription of utterances with a trained `SpeechLM`.

Each utterance becomes the prompt `<bos><|speech|><|audio|>×n<|/speech|>` (the same layout
and frame arithmetic as training, left-padded) and the LM's `generate` continues it greedily
until `<eos>`. Utterances are decoded in duration order for tight batches and returned in
input order; an utterance whose audio cannot be read is skipped and counted by reason.
"""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Sequence

import torch
from tqdm import tqdm
from transformers import PreTrainedTokenizerFast

from manifests.schema import SPEECH, Hypothesis, Sample, Span, Utterance

from .data import Collator, SampleDataset, to_device
from .model import SpeechLM


@dataclass
class DecodeResult:
    """Hypotheses in input order (skipped utterances left out) and what decoding cost."""

    hypotheses: list[Hypothesis] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)
    skipped_ids: list[str] = field(default_factory=list)
    audio_seconds: float = 0.0
    wall_seconds: float = 0.0


def prompt_sample(utt: Utterance) -> Sample:
    """The decoding prompt of an utterance as a one-speech-span `Sample`."""
    return Sample(sample_id=utt.utt_id, kind="asr", source_id=utt.utt_id, audio_path=utt.audio_path,
                  offset=utt.offset, duration=utt.duration, spans=(Span(SPEECH, "", 0.0, utt.duration),),
                  n_speech_words=0, n_text_words=0)


def transcribe(model: SpeechLM, tok: PreTrainedTokenizerFast, utterances: Sequence[Utterance], batch_size: int = 8,
               max_new_tokens: int = 64, progress: bool = True) -> DecodeResult:
    """Greedy transcripts of `utterances` (reference = `norm_text`), batched and left-padded."""
    device = next(model.parameters()).device
    model.eval()
    dataset = SampleDataset([prompt_sample(u) for u in utterances], model.spec)
    collator = Collator(tok, model.spec, max_tokens=10**9, padding_side="left", add_eos=False)
    order = sorted(range(len(utterances)), key=lambda i: utterances[i].duration)
    texts: dict[int, str] = {}
    result = DecodeResult()
    start = time.perf_counter()
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)
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
            new_ids = model.generate(to_device(batch, device), max_new_tokens=max_new_tokens)
        for i, ids in zip(kept, new_ids.tolist()):
            texts[i] = tok.decode(ids, skip_special_tokens=True).strip()
        result.audio_seconds += batch["audio_seconds"]
    result.wall_seconds = time.perf_counter() - start
    result.hypotheses = [Hypothesis(u.utt_id, u.norm_text, texts[i]) for i, u in enumerate(utterances) if i in texts]
    return result
