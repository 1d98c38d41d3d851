"""The token formats of the paper, as the data records them and the trainer renders them.

A sample's `spans` list the whole training sequence in order. Besides `speech` spans (audio
between two times) and `text` spans (words the model predicts), a `token` span holds one
special token by name; nothing is added implicitly at train time. The paper's formats
(arXiv 2607.01733, §III-B and §IV-A), as the interleave stage writes them:

| kind | spans |
| --- | --- |
| asr, tts_pair | `<s>` A `<|asr|>` T `</s>` |
| word-level interleave | `<s>` A1 T2 A3 … Tn `</s>` (nothing between speech and text) |
| segment-level interleave | `<s>` A1 `<N>` T2 `<N>` A3 … `<N>` Tn `</s>` |
| text | `<s>` S1 `</s>` S2 `</s>` … (an end token after each sentence) |

Loss: text tokens and the end token `</s>` are targets (the model must learn to stop);
speech positions and the indicator tokens (`<s>`, `<N>`, `<|asr|>`, and the `tagged`
extension's `<|speech|>`/`<|/speech|>`) are not. The trainer maps `<s>`/`</s>` to its
tokenizer's bos/eos and adds the others as special tokens.
"""
from __future__ import annotations

from typing import Sequence

from .schema import SPEECH, TEXT, TOKEN, Span

BOS = "<s>"
EOS = "</s>"
SEGMENT = "<N>"  # the paper's leading token of each segment after the first
ASR = "<|asr|>"  # the ASR task token between the speech and its transcript
SPEECH_OPEN, SPEECH_CLOSE = "<|speech|>", "<|/speech|>"  # the `tagged` extension (our first build's layout)
TOKENS = (BOS, EOS, SEGMENT, ASR, SPEECH_OPEN, SPEECH_CLOSE)
TARGET_TOKENS = frozenset({EOS})  # tokens the loss predicts; every other token is input only


def token(name: str) -> Span:
    """A span holding one special token."""
    if name not in TOKENS:
        raise ValueError(f"unknown special token {name!r}; known: {', '.join(TOKENS)}")
    return Span(TOKEN, name)


def is_target(span: Span) -> bool:
    """Whether a span's tokens are loss targets: text, and the end token."""
    return span.modality == TEXT or (span.modality == TOKEN and span.text in TARGET_TOKENS)


def asr_prompt(duration: float) -> tuple[Span, ...]:
    """What a recognizer is given for ASR decoding: `<s>` A `<|asr|>` (it then writes T `</s>`)."""
    return (token(BOS), Span(SPEECH, "", 0.0, float(duration)), token(ASR))


def render(spans: Sequence[Span]) -> str:
    """The sequence as a line of text, speech spans as [speech a–b s: words] (for `jstip inspect`, logs)."""
    parts = []
    for span in spans:
        if span.modality == SPEECH:
            parts.append(f"[speech {span.start:.2f}–{span.end:.2f}s: {span.text}]")
        else:
            parts.append(span.text)
    return " ".join(parts)
