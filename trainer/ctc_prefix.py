"""CTC prefix scores of letter sequences: how well the CTC head's posteriors support a partial transcript.

Why: a speech-LM that reads its speech through a small adapter can write a fluent sentence the
audio does not support (experiments/repro/listen/README.md: the full model writes ~0.1 WER worse
than its own CTC head's letters). Joint CTC/attention decoding (Watanabe et al., "Hybrid
CTC/Attention Architecture for End-to-End Speech Recognition", 2017; ESPnet's `CTCPrefixScore`)
scores every partial hypothesis by the CTC probability of its letters as a *prefix* too, so a
frame the letters do not support loses during the search, not after it.

The letters are the CTC head's classes for `ctc_units: chars` (`trainer.data.char_ids`): lower-case
letters, digits, the apostrophe and one word boundary between words. `LetterMap` turns the LM's
tokens into those letters incrementally, exactly as `trainer.data.char_targets` turns a transcript
into CTC targets (so a hypothesis is scored against what the head was trained on).

The forward recursions over time are linear in log space, so each letter extension is computed for
all frames at once with `logcumsumexp` (float64) instead of a Python loop over frames:
  n'[t] = logaddexp(n'[t-1], phi[t-1]) + x_c[t]   →  n' = C + logcumsumexp(a − C_prev)
  b'[t] = logaddexp(n'[t-1], b'[t-1]) + x_blank[t] →  b' = B + logcumsumexp(n'_prev − B_prev)
with C, B the cumulative sums of the letter's and the blank's log-posteriors.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerBase

from .data import WORD_BOUNDARY, char_ids

NEG_INF = float("-inf")


class LetterMap:
    """Each LM token's contribution to the CTC letter sequence, and the incremental rule that joins them.

    A token's piece is lower-cased; a word boundary (`▁`, or a space in byte-level pieces `Ġ`) opens a
    new word; characters outside the CTC classes (punctuation, other scripts) are dropped;
    empty words and a leading boundary leave nothing, as in `char_targets`. Special tokens give no letters.
    """

    def __init__(self, tok: PreTrainedTokenizerBase) -> None:
        ids = char_ids(tok)
        self.boundary = ids.pop(" ", None)
        self.classes = sorted(set(ids.values()) | ({self.boundary} if self.boundary is not None else set()))
        self.column = {cls: i + 1 for i, cls in enumerate(self.classes)}  # column 0 is the blank
        letter_col = {c: self.column[i] for c, i in ids.items()}
        boundary_col = self.column.get(self.boundary, -1)
        special = set(tok.all_special_ids)
        pieces = tok.convert_ids_to_tokens(list(range(len(tok))))
        # per token: a tuple of columns, with -1 standing for "a word boundary here"
        self.token_units: list[tuple[int, ...]] = []
        for i, piece in enumerate(pieces):
            units: list[int] = []
            if i not in special and piece is not None:
                for ch in piece.replace("Ġ", " ").replace(WORD_BOUNDARY, " ").lower():
                    if ch.isspace():
                        units.append(-1)
                    elif ch in letter_col:
                        units.append(letter_col[ch])
            self.token_units.append(tuple(units))
        self.boundary_col = boundary_col
        # what the first letter a token writes needs: its column (-1: none) and whether a boundary unit comes first
        self.first_col = torch.tensor([next((u for u in units if u >= 0), -1) for units in self.token_units])
        self.boundary_first = torch.tensor([bool(units) and units[0] < 0 for units in self.token_units])

    def extend(self, letters_len: int, pending: bool, token: int) -> tuple[list[int], bool]:
        """The columns token `token` appends to a hypothesis with `letters_len` letters so far and a
        word boundary `pending` (seen but not yet written: it is written only before a next letter)."""
        out: list[int] = []
        for unit in self.token_units[token]:
            if unit < 0:
                pending = pending or (letters_len + len(out)) > 0
            else:
                if pending and self.boundary_col > 0:
                    out.append(self.boundary_col)
                pending = False
                out.append(unit)
        return out, pending


@dataclass
class PrefixState:
    """A hypothesis's CTC forward variables: `r` `[T, 2]` (log-prob of the prefix ending at each frame
    in its last letter, in a blank), its last column (0 when empty) and its prefix log-probability."""

    r: torch.Tensor
    last: int
    score: float
    length: int


class CTCPrefixScorer:
    """Prefix and full-sequence CTC log-probabilities on one utterance's posteriors `logp` `[T, 1 + L]`
    (column 0 the blank, then the letter columns of a `LetterMap`)."""

    def __init__(self, logp: torch.Tensor) -> None:
        self.x = logp.double()
        self.T = self.x.shape[0]
        self.blank_cum = self.x[:, 0].cumsum(0)
        self.blank_prev = torch.cat([self.x.new_zeros(1), self.blank_cum[:-1]])

    def initial(self) -> PrefixState:
        """The empty prefix: every frame so far blank."""
        r = torch.full((self.T, 2), NEG_INF, dtype=torch.float64)
        r[:, 1] = self.blank_cum
        return PrefixState(r, 0, 0.0, 0)

    def extend(self, states: list[PrefixState], cols: list[int]) -> list[PrefixState]:
        """Each state extended by one letter column (vectorized over the pairs)."""
        n = len(states)
        if n == 0:
            return []
        r = torch.stack([s.r for s in states], dim=2)  # [T, 2, N]
        c = torch.tensor(cols)
        last = torch.tensor([s.last for s in states])
        empty = torch.tensor([s.length == 0 for s in states])
        xc = self.x[:, c]  # [T, N]
        total = torch.logaddexp(r[:, 0], r[:, 1])
        phi = torch.where((c == last)[None, :], r[:, 1], total)  # a repeated letter needs a blank between
        # a[s]: log-prob of everything before frame s that lets the new letter start at s
        start = torch.where(empty, 0.0, NEG_INF).to(torch.float64)[None, :]
        a = torch.cat([start, phi[:-1]], dim=0)
        c_cum = xc.cumsum(0)
        c_prev = torch.cat([xc.new_zeros(1, n), c_cum[:-1]], dim=0)
        new_n = c_cum + torch.logcumsumexp(a - c_prev, dim=0)
        b_in = torch.cat([xc.new_full((1, n), NEG_INF), new_n[:-1]], dim=0)
        new_b = self.blank_cum[:, None] + torch.logcumsumexp(b_in - self.blank_prev[:, None], dim=0)
        psi = torch.logsumexp(a + xc, dim=0)
        r_new = torch.stack([new_n, new_b], dim=1)  # [T, 2, N]: each state keeps a view of its column
        scores = psi.tolist()
        out = [PrefixState(r_new[:, :, k], cols[k], scores[k], states[k].length + 1) for k in range(n)]
        return out

    def next_scores(self, state: PrefixState) -> torch.Tensor:
        """`[1 + L]` prefix log-probabilities of `state` extended by each letter column (column 0, the
        blank, gets the state's own score): what `extend` gives for every column, without its forward
        variables (one `[T, 1 + L]` reduction)."""
        total = torch.logaddexp(state.r[:, 0], state.r[:, 1])
        start = torch.tensor([0.0 if state.length == 0 else NEG_INF], dtype=torch.float64)
        a_other = torch.cat([start, total[:-1]])
        a_same = torch.cat([start, state.r[:-1, 1]])  # a repeated letter needs a blank between
        psi = torch.logsumexp(a_other[:, None] + self.x, dim=0)
        if state.last:
            psi[state.last] = torch.logsumexp(a_same + self.x[:, state.last], dim=0)
        psi[0] = state.score
        return psi

    def final(self, state: PrefixState) -> float:
        """The log-probability of exactly this letter sequence (the prefix ends with the audio)."""
        return float(torch.logaddexp(state.r[-1, 0], state.r[-1, 1]))
