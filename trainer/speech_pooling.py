"""Speech positions at the CTC head's spikes: about one LM position per heard letter.

Why: a small LM fed one adapter frame per 80 ms has to learn where in a stream of acoustic frames
each word is; it does not learn that within a CPU budget (experiments/repro/README.md: the encoder
hears letters, CER 0.32, but the LM writes unrelated sentences). A letter CTC head (`ctc_units:
chars`, on the encoder's 20 ms frames) already says where each letter is: greedy CTC emits a
letter at a *spike* (a frame whose best class is not blank and differs from the frame before).
`speech_positions: ctc_spikes` gives the LM one position per spike, so what it reads is a noisy
spelling of the sentence, in order.

The collator still counts `<|audio|>` placeholders from the audio's length (FrameSpec, `stack`
frames per placeholder), because the number of spikes is only known to the model. So each speech
span keeps its placeholders as *slots*: the span's spikes fill them from the left, in time order,
and the slots left over get one learned filler vector. With `stack: 2` (25 slots per second)
there is room for the world's ~16 letters per second; spikes beyond a span's slots are dropped
and counted (`SpikePooler.stats`).

What a spike position holds (`speech_pool_input`):
- `hidden`: an MLP of the encoder frame at the spike (what the encoder heard there);
- `posteriors`: the CTC head's letter posteriors at the spike (blank left out, renormalised)
  times the LM's own input embeddings of those letters: a soft spelled-out text the LM can embed;
- `both`: the sum of the two.
Selecting spikes (argmax) passes no gradient; the vectors at the spikes do.
"""
from __future__ import annotations

from collections import Counter

import torch
from torch import nn

POSITIONS = ("frames", "ctc_spikes")
POOL_INPUTS = ("hidden", "posteriors", "both")


def spike_frames(best: torch.Tensor, blank: int) -> torch.Tensor:
    """Indices of the frames where greedy CTC emits a class: best class not blank and not the same as the
    frame before (a repeated class with a blank between is emitted twice, as CTC decoding does)."""
    if best.numel() == 0:
        return best.new_zeros(0, dtype=torch.long)
    prev = torch.cat([best.new_full((1,), blank), best[:-1]])
    return torch.nonzero((best != blank) & (best != prev)).flatten()


class SpikePooler(nn.Module):
    """Maps each speech span's encoder frames to its slots: spike vectors from the left, then the filler."""

    def __init__(self, enc_dim: int, hidden: int, out_dim: int, pool_input: str = "both") -> None:
        super().__init__()
        if pool_input not in POOL_INPUTS:
            raise ValueError(f"speech_pool_input {pool_input!r} is unknown; use one of {', '.join(POOL_INPUTS)}")
        self.pool_input = pool_input
        self.mlp = (nn.Sequential(nn.Linear(enc_dim, hidden), nn.GELU(), nn.Linear(hidden, out_dim))
                    if pool_input != "posteriors" else None)
        self.filler = nn.Parameter(torch.zeros(out_dim))
        self.stats: Counter = Counter()  # spans, slots, spikes, dropped (spikes beyond their span's slots)

    def forward(self, hidden: torch.Tensor, logits: torch.Tensor, n_slots: int, blank: int,
                letters: torch.Tensor | None = None, letter_embeds: torch.Tensor | None = None) -> torch.Tensor:
        """`[n_slots, out_dim]` for one span: `hidden` `[T, enc_dim]` its encoder frames, `logits` `[T, V]` the
        CTC head's on them; `letters` (class ids) and `letter_embeds` `[L, out_dim]` their LM embeddings
        (needed unless pool_input is `hidden`)."""
        spikes = spike_frames(logits.argmax(-1), blank)
        kept = spikes[:n_slots]
        self.stats.update(spans=1, slots=n_slots, spikes=int(spikes.numel()), dropped=int(spikes.numel() - kept.numel()))
        vectors = []
        if self.mlp is not None:
            vectors.append(self.mlp(hidden[kept]))
        if self.pool_input != "hidden":
            if letters is None or letter_embeds is None:
                raise ValueError("posterior pooling needs the letter classes and their LM embeddings")
            probs = logits[kept][:, letters].float().softmax(-1)  # renormalised over the letters (blank left out)
            vectors.append(probs.to(letter_embeds.dtype) @ letter_embeds)
        spike_vectors = sum(vectors) if vectors else hidden.new_zeros(0, self.filler.shape[0])
        fill = self.filler.to(spike_vectors.dtype).expand(n_slots - kept.numel(), -1)
        return torch.cat([spike_vectors, fill])
