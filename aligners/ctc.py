"""CTC forced alignment with any transformers CTC model (wav2vec2, HuBERT, MMS…), on GPU or CPU.

- Emissions: `AutoModelForCTC` + its processor by path or name, utterances batched (padded,
  with an attention mask); audio longer than `window_seconds` is cut into overlapping windows
  whose emissions are stitched at the middle of each overlap.
- Alignment: a batched Viterbi over the CTC topology (blank, token, blank, …) written in torch,
  run on the model's device. A target may be the WILDCARD (-1): it matches any non-blank token,
  so untranscribed or unspellable speech still gets a place; blanks between words absorb pauses.
- Characters the vocabulary lacks are dropped from a word (and a word left empty aligns to
  the wildcard: the blank-or-anything state), so no transcript is refused for a symbol.
- A vocabulary with a word delimiter token (wav2vec2's `|`, the tokenizer's
  `word_delimiter_token`) gets it between words, owned by no word, as in the standard CTC
  forced-alignment recipe: the frames the model spends on `|` are not forced onto a word's
  letters (which would stretch that word over the gap).
- Word spans from the first and last frame of the word's tokens; score = mean log-prob.
This module imports torch (the only aligner that does).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from manifests.errors import JstipError
from manifests.schema import WordSpan

from .base import Aligner, AlignmentFailed, check_utterance

NEG = -1e30
WILDCARD = -1  # a target id meaning "any token" (the best non-blank emission of the frame)


def viterbi_batch(log_probs: torch.Tensor, targets: torch.Tensor, frame_lens: torch.Tensor,
                  target_lens: torch.Tensor, blank: int = 0) -> list[list[int]]:
    """Best CTC path per item: for each frame, the index of the target token it is in (-1 for blank).

    log_probs (B, T, V); targets (B, L) padded, WILDCARD allowed; lengths per item. Raises
    AlignmentFailed for an item whose transcript cannot fit its frames.
    """
    B, T, V = log_probs.shape
    L = targets.shape[1]
    S = 2 * L + 1
    dev = log_probs.device
    ext = torch.full((B, S), blank, dtype=torch.long, device=dev)
    ext[:, 1::2] = targets
    wild = ext == WILDCARD
    best_token = log_probs.clone()
    best_token[..., blank] = NEG
    wildcard_lp = best_token.max(-1).values  # (B, T)
    gather_ids = ext.clamp(min=0)
    # may skip from s-2 to s: s is a token differing from the token at s-2
    skip = torch.zeros((B, S), dtype=torch.bool, device=dev)
    skip[:, 3::2] = (ext[:, 3::2] != ext[:, 1:-2:2]) | wild[:, 3::2]
    valid_s = torch.arange(S, device=dev)[None, :] < (2 * target_lens[:, None] + 1)
    alpha = torch.full((B, S), NEG, device=dev)
    back = torch.zeros((B, T, S), dtype=torch.int8, device=dev)

    def emit(t: int) -> torch.Tensor:
        lp = log_probs[:, t].gather(1, gather_ids)
        return torch.where(wild, wildcard_lp[:, t : t + 1].expand(-1, S), lp)

    e0 = emit(0)
    alpha[:, 0] = e0[:, 0]
    alpha[:, 1] = torch.where(target_lens > 0, e0[:, 1], torch.full_like(e0[:, 1], NEG))
    for t in range(1, T):
        stay = alpha
        step = torch.cat([torch.full((B, 1), NEG, device=dev), alpha[:, :-1]], 1)
        jump = torch.cat([torch.full((B, 2), NEG, device=dev), alpha[:, :-2]], 1)
        jump = torch.where(skip, jump, torch.full_like(jump, NEG))
        cand = torch.stack([stay, step, jump], -1)
        best, arg = cand.max(-1)
        new = torch.where(valid_s, best + emit(t), torch.full_like(best, NEG))
        active = (t < frame_lens)[:, None]
        alpha = torch.where(active, new, alpha)
        back[:, t] = torch.where(active, arg, torch.zeros_like(arg)).to(torch.int8)
    paths = []
    alpha_c, back_c = alpha.cpu(), back.cpu()
    for b in range(B):
        n, end = int(frame_lens[b]), 2 * int(target_lens[b])
        finals = [s for s in (end, end - 1) if s >= 0]
        s = max(finals, key=lambda k: float(alpha_c[b, k]))
        if float(alpha_c[b, s]) <= NEG / 2:
            raise AlignmentFailed(f"transcript of {int(target_lens[b])} tokens does not fit {n} frames", "too_short")
        states = [0] * n
        for t in range(n - 1, -1, -1):
            states[t] = s
            s -= int(back_c[b, t, s])
        paths.append([(st - 1) // 2 if st % 2 == 1 else -1 for st in states])
    return paths


class CtcAligner(Aligner):
    """Word alignment from a character (or token) CTC model's emissions."""

    name = "ctc"

    def __init__(self, model: str = "", device: str = "auto", batch_size: int = 8, window_seconds: float = 30.0,
                 overlap_seconds: float = 2.0, **_: object) -> None:
        from transformers import AutoModelForCTC, AutoProcessor

        self.check(model=model, device=device)
        self.device = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                                   ("cpu" if device == "auto" else device))
        self.processor = AutoProcessor.from_pretrained(model)
        self.model = AutoModelForCTC.from_pretrained(model).to(self.device).eval()
        self.setup(self.model, self.processor, batch_size, window_seconds, overlap_seconds)

    @staticmethod
    def check(model: str = "", device: str = "auto", **_: object) -> None:
        """Fail before any shard is touched: no --model, a local model path that is not there, no CUDA."""
        if not model:
            raise JstipError("--aligner ctc needs --model: a transformers CTC model directory or hub name "
                             "(e.g. --model facebook/wav2vec2-base-960h)")
        looks_local = model.startswith(("/", "./", "../", "~")) or Path(model).expanduser().exists()
        if looks_local and not (Path(model).expanduser() / "config.json").is_file():
            raise JstipError(f"--model {model!r}: no transformers model there (no config.json); give the directory "
                             "a model was saved to with save_pretrained, or a hub name")
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise JstipError(f"--device {device!r}: CUDA is not available on this machine; use --device cpu or auto")

    def setup(self, model, processor, batch_size=8, window_seconds=30.0, overlap_seconds=2.0) -> None:
        """Use an already built model and processor (also how tests build a tiny one)."""
        self.model, self.processor = model, processor
        self.device = next(model.parameters()).device
        self.batch_size, self.window, self.overlap = batch_size, window_seconds, overlap_seconds
        tokenizer = getattr(processor, "tokenizer", processor)
        self.vocab = {k: v for k, v in tokenizer.get_vocab().items()}
        self.blank = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        # wav2vec2's "|": put between words so its frames belong to no word (None: no such token)
        self.delimiter = self.vocab.get(getattr(tokenizer, "word_delimiter_token", None) or "")
        if self.delimiter == self.blank:
            self.delimiter = None
        self.lower = not any(k.isalpha() and k.islower() for k in self.vocab if len(k) == 1)

    def _ratio(self) -> int:
        """Audio samples per emission frame (the product of the conv strides)."""
        return int(np.prod(getattr(self.model.config, "conv_stride", [320])))

    @torch.no_grad()
    def emissions(self, audios: Sequence[np.ndarray]) -> list[torch.Tensor]:
        """Log-probabilities (frames, vocab) per audio, batched; long audio in overlapping windows."""
        sr, ratio = self.sample_rate, self._ratio()
        win, hop = int(self.window * sr), int((self.window - self.overlap) * sr)
        pieces = []  # (audio index, start sample, samples)
        for i, a in enumerate(audios):
            starts = [0] if len(a) <= win else list(range(0, len(a) - int(self.overlap * sr), hop))
            pieces += [(i, s, a[s : s + win]) for s in starts]
        outs: dict[tuple[int, int], torch.Tensor] = {}
        for k in range(0, len(pieces), self.batch_size):
            batch = pieces[k : k + self.batch_size]
            feats = self.processor([p[2] for p in batch], sampling_rate=sr, return_tensors="pt", padding=True,
                                   return_attention_mask=True)
            kwargs = {"attention_mask": feats["attention_mask"].to(self.device)} if "attention_mask" in feats else {}
            logits = self.model(feats["input_values"].to(self.device), **kwargs).logits.float()
            lp = logits.log_softmax(-1)
            for (i, s, x), row in zip(batch, lp):
                outs[(i, s)] = row[: max(1, len(x) // ratio)]
        result = []
        for i, a in enumerate(audios):
            keys = sorted(s for j, s in outs if j == i)
            parts, cut = [], 0
            for n, s in enumerate(keys):
                row, first = outs[(i, s)], s // ratio
                keep_to = (keys[n + 1] + int(self.overlap * sr) // 2) // ratio if n + 1 < len(keys) else first + len(row)
                parts.append(row[max(cut - first, 0) : keep_to - first])
                cut = keep_to
            result.append(torch.cat(parts))
        return result

    def _tokens(self, words: Sequence[str]) -> tuple[list[int], list[int]]:
        """Token ids of the transcript and, per token, the index of its word (-1: the delimiter between
        words); unknown chars dropped."""
        ids, owner = [], []
        for w, word in enumerate(words):
            if w and self.delimiter is not None:
                ids.append(self.delimiter)
                owner.append(-1)
            chars = [self.vocab.get(c.upper() if self.lower else c) for c in word]
            known = [c for c in chars if c is not None and c != self.delimiter]
            for c in known or [WILDCARD]:
                ids.append(c)
                owner.append(w)
        return ids, owner

    def align(self, audio: np.ndarray, words: Sequence[str]) -> list[WordSpan]:
        return self.align_batch([audio], [words])[0]

    def align_utterances(self, utterances):
        """Batches of `batch_size` utterances; a batch that fails is redone one by one for the reasons."""
        from manifests.audio import load_audio
        from manifests.schema import ALIGN_OK, Alignment

        out = []
        for k in range(0, len(utterances), self.batch_size):
            batch = list(utterances[k : k + self.batch_size])
            try:
                for u in batch:
                    check_utterance(u)  # a bad duration or a too-short clip: redone one by one, failed with why
                audios = [load_audio(u.audio_path, u.offset, u.duration, self.sample_rate) for u in batch]
                spans = self.align_batch(audios, [u.norm_text.split() for u in batch])
                out += [Alignment(u.utt_id, self.name, ALIGN_OK, "", tuple(w)) for u, w in zip(batch, spans)]
            except Exception:  # noqa: BLE001 - redone one by one, where each failure gets its reason
                out += super().align_utterances(batch)
        return out

    def align_batch(self, audios: Sequence[np.ndarray], transcripts: Sequence[Sequence[str]]) -> list[list[WordSpan]]:
        """Word spans per utterance; one batched Viterbi over all of them."""
        for words in transcripts:
            if not words:
                raise AlignmentFailed("empty transcript: nothing to align", "empty_transcript")
        return self.align_emissions(self.emissions(audios), transcripts)

    def align_emissions(self, emissions: Sequence[torch.Tensor],
                        transcripts: Sequence[Sequence[str]]) -> list[list[WordSpan]]:
        """Word spans per utterance from its (frames, vocab) log-probabilities; one batched Viterbi."""
        tokens = [self._tokens(w) for w in transcripts]
        B = len(emissions)
        T = max(len(e) for e in emissions)
        lp = torch.full((B, T, emissions[0].shape[1]), NEG, device=self.device)
        for b, e in enumerate(emissions):
            lp[b, : len(e)] = e.to(self.device)
        L = max(len(t[0]) for t in tokens)
        targets = torch.full((B, L), self.blank, dtype=torch.long, device=self.device)
        for b, (ids, _) in enumerate(tokens):
            targets[b, : len(ids)] = torch.tensor(ids, device=self.device)
        frame_lens = torch.tensor([len(e) for e in emissions], device=self.device)
        target_lens = torch.tensor([len(t[0]) for t in tokens], device=self.device)
        paths = viterbi_batch(lp, targets, frame_lens, target_lens, self.blank)
        sec = self._ratio() / self.sample_rate
        out = []
        for b, (path, words) in enumerate(zip(paths, transcripts)):
            owner = tokens[b][1]
            frames: dict[int, list[int]] = {}
            for t, k in enumerate(path):
                if k >= 0 and owner[k] >= 0:  # not a blank, not the delimiter between words
                    frames.setdefault(owner[k], []).append(t)
            spans = []
            for w, word in enumerate(words):
                fs = frames[w]
                score = float(lp[b, fs].max(-1).values.mean())
                spans.append(WordSpan(word, round(fs[0] * sec, 4), round((fs[-1] + 1) * sec, 4), round(score, 4)))
            out.append(spans)
        return out
