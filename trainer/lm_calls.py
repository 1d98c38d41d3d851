"""The only place evaluation and the probes call the model: prompts in, text or log-likelihoods out.

Callers build prompts as `Sample`s whose spans follow `manifests/formats.py` (`<s>` A
`<|asr|>` for ASR, `<s>` text… A text… for the probes: a speech span followed directly by
text, as word-level interleave trains). This module turns them into batches with the
trainer APIs and calls the model:

- `generate`: `Collator(tok, spec, padding_side="left", add_eos=False)` then
  `SpeechLM.generate(batch, max_new_tokens, num_beams)` (greedy or beam search until eos);
- `generate_joint`: the same prompts decoded by joint CTC/LM beam search (`joint_decode.py`);
- `continuation_logprobs`: right-padded prompt batch (positions count from 0 in every row, as
  in training; a left-padded forward would shift them), then `SpeechLM(batch).logits`, which
  for a batch without labels holds every position.

Prompts are rendered exactly as training renders samples (`trainer/render.py`): nothing is
added implicitly, so a prompt starts with its own `<s>`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from transformers import PreTrainedTokenizerBase

from manifests.errors import JstipError
from manifests.schema import Sample

from .data import Collator, SampleDataset, to_device
from .loop import autocast_for
from .model import SpeechLM


@dataclass
class Generated:
    """One prompt's continuation: the text, and whether it stopped at `max_new_tokens` without eos."""

    text: str
    truncated: bool


class Prompter:
    """A loaded model with its tokenizer, feature cache and device; skipped prompts keep their reason."""

    def __init__(self, model: SpeechLM, tok: PreTrainedTokenizerBase, cache_mb: float = 256.0) -> None:
        self.model, self.tok = model.eval(), tok
        self.device = next(model.parameters()).device
        self.autocast = autocast_for(self.device)
        self.cache_mb = cache_mb
        self.skipped: dict[str, str] = {}  # sample_id -> reason
        self._letters = None  # the CTC letter map, built on the first joint decoding

    def _items(self, samples: Sequence[Sample]) -> list:
        """Loaded items (None where the audio cannot be read; the reason lands in `skipped`)."""
        dataset = SampleDataset(samples, self.model.spec, cache_mb=self.cache_mb)
        items = [dataset[i] for i in range(len(samples))]
        self.skipped.update(dataset.skipped)
        return items

    def _batch(self, samples: Sequence[Sample], padding_side: str) -> tuple[list[int], dict | None]:
        """The indices of the prompts whose audio could be read and their collated batch (None when none could)."""
        items = self._items(samples)
        kept = [i for i, item in enumerate(items) if item is not None]
        if not kept:
            return kept, None
        collator = Collator(self.tok, self.model.spec, max_tokens=10**9, padding_side=padding_side, add_eos=False)
        return kept, collator([items[i] for i in kept])

    def max_positions(self) -> int | None:
        """The LM's trained context (max_position_embeddings), None when its config lacks one."""
        return getattr(self.model.base_lm().config, "max_position_embeddings", None)

    @torch.no_grad()
    def generate(self, samples: Sequence[Sample], max_new_tokens: int, num_beams: int = 1) -> list[Generated | None]:
        """Continuations of the prompts (None for a prompt whose audio could not be read)."""
        kept, batch = self._batch(samples, "left")
        out: list[Generated | None] = [None] * len(samples)
        if batch is None:
            return out
        with self.autocast:
            new_ids = self.model.generate(to_device(batch, self.device), max_new_tokens=max_new_tokens,
                                          num_beams=num_beams)
        eos, pad = self.tok.eos_token_id, self.tok.pad_token_id
        for i, ids in zip(kept, new_ids.tolist()):
            body = ids[: ids.index(eos)] if eos in ids else [t for t in ids if t != pad]
            out[i] = Generated(self.tok.decode(body, skip_special_tokens=True).strip(),
                               truncated=eos not in ids and len(ids) >= max_new_tokens)
        return out

    @torch.no_grad()
    def generate_joint(self, samples: Sequence[Sample], max_new_tokens: int, num_beams: int,
                       ctc_weight: float) -> list[Generated | None]:
        """Continuations by joint CTC/LM beam search (`trainer.joint_decode`), one prompt at a time
        after encoding them together; None for a prompt whose audio could not be read."""
        from .ctc_prefix import LetterMap
        from .joint_decode import joint_beam_search, letter_posteriors

        if self.model.ctc_head is None or self.model.cfg.ctc_units != "chars":
            raise JstipError("joint CTC/LM decoding (ctc_weight > 0) needs a model trained with the letter CTC head "
                             "(train.ctc_weight > 0, ctc_units: chars); decode this one with ctc_weight 0")
        if self._letters is None:
            self._letters = LetterMap(self.tok)
        kept, batch = self._batch(samples, "left")
        out: list[Generated | None] = [None] * len(samples)
        if batch is None:
            return out
        batch = to_device(batch, self.device)
        with self.autocast:
            embeds, frames = self.model.embed_with_frames(batch)
            audio_of_row = batch["span_audio"].tolist()  # one speech span per prompt, in row order
            if frames is None or len(audio_of_row) != len(kept):
                raise JstipError("joint CTC/LM decoding takes prompts with exactly one speech span each")
            hidden, n_hidden = frames
            banned = list(self.tok.all_special_ids)
            for row, i in enumerate(kept):
                a = audio_of_row[row]
                logp = letter_posteriors(self.model, hidden[a, : n_hidden[a]], self._letters)
                prompt = embeds[row][batch["attention_mask"][row].bool()]
                ids, truncated = joint_beam_search(self.model, prompt, logp, self._letters, ctc_weight, num_beams,
                                                   max_new_tokens, banned)
                out[i] = Generated(self.tok.decode(ids, skip_special_tokens=True).strip(), truncated)
        return out

    @torch.no_grad()
    def continuation_logprobs(self, samples: Sequence[Sample], n_scored: Sequence[int]) -> list[torch.Tensor | None]:
        """Next-token log-probabilities `[n, vocab]` at each of the last `n = n_scored[i]` tokens of each prompt.

        Row j is the distribution the model gave for token `len - n + j` from everything before
        it, so `out[i][j, id]` scores any candidate there (the tokens actually in the prompt, or
        others). Prompts are laid out as usual (no eos added); the scored tokens are the end of
        the last text span. None for a prompt whose audio could not be read.
        """
        kept, batch = self._batch(samples, "right")
        out: list[torch.Tensor | None] = [None] * len(samples)
        if batch is None:
            return out
        lengths = batch["attention_mask"].sum(1).tolist()
        for row, i in enumerate(kept):
            if not 0 < n_scored[i] < lengths[row]:
                raise ValueError(f"prompt {samples[i].sample_id}: cannot score {n_scored[i]} of its {lengths[row]} tokens")
        with self.autocast:
            logits = self.model(to_device(batch, self.device)).logits  # a prompt batch: every position's logits
        for row, i in enumerate(kept):  # logit position t predicts token t + 1
            n, end = n_scored[i], lengths[row]
            out[i] = logits[row, end - n - 1:end - 1].float().log_softmax(-1).cpu()
        return out
