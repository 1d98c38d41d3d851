"""Multiple-choice answers by next-token likelihood of the option letters.

MMLU's protocol: after `… Answer:` the model's choice is the letter whose continuation
(" A", " B", …) it finds likeliest. How a letter is tokenised depends on the tokenizer (one
token "▁A" or "ĠA"; or a space token then "A"; or a merge with the cue), so the scored
continuation is found, not assumed: each candidate cue `Answer: X` is tokenised as the
collator will tokenise it, the tokens shared by all candidates are context, and what
follows is the candidate. When every candidate is one token (the usual case), one forward
pass per question gives the next-token distribution and the choice is the argmax among the
letters' tokens (the paper's next-token selection). Otherwise each candidate's tokens are
scored by teacher forcing and summed (one row per letter). Letters that tokenise alike
cannot be told apart: that is an error, not a silent 25%.
`cloze` scores each choice's own text the same way (summed log-probability of its tokens after the
cue), the form in which small LMs answer above chance.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from transformers import PreTrainedTokenizerBase

from manifests.errors import JstipError
from manifests.schema import Sample

from .lm_calls import Prompter


@dataclass(frozen=True)
class LetterPlan:
    """How the letters are scored: `next_token` (one token each, one row per question) or `sequence`."""

    mode: str
    letters: str
    continuations: tuple[tuple[int, ...], ...]  # the scored token ids of each letter's cue


def _common(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def plan_letters(tok: PreTrainedTokenizerBase, cue: str, letters: str) -> LetterPlan:
    """Which tokens of `cue + " " + letter` carry each letter; raises when two letters look alike."""
    fulls = [tok(f"{cue} {x}", add_special_tokens=False)["input_ids"] for x in letters]
    shared = min(_common(fulls[0], f) for f in fulls[1:]) if len(fulls) > 1 else len(fulls[0]) - 1
    conts = tuple(tuple(f[shared:]) for f in fulls)
    if len(set(conts)) < len(conts) or any(not c for c in conts):
        same = [i for i, c in enumerate(conts) if conts.count(c) > 1 or not c]
        shown = "; ".join(f"{cue} {letters[i]!s} -> {tok.convert_ids_to_tokens(fulls[i])}" for i in same[:2])
        raise JstipError(f"the tokenizer cannot tell the answer letters {', '.join(letters[i] for i in same)} apart "
                         f"({shown}); set probe.letters to letters it knows (e.g. 'abcd')")
    mode = "next_token" if all(len(c) == 1 for c in conts) else "sequence"
    return LetterPlan(mode, letters, conts)


def choose(prompter: Prompter, plan: LetterPlan, prompt: Callable[[int, str], Sample],
           n_choices: Sequence[int]) -> list[list[float] | None]:
    """Log-likelihood of each choice's letter for a batch of questions; None where the audio failed.

    `prompt(q, suffix)` returns question q's prompt with the cue's suffix (" A", …) appended to
    its last text span; `n_choices[q]` says how many letters question q has.
    """
    rows: list[Sample] = []
    scored: list[int] = []
    owners: list[tuple[int, int]] = []  # (question, letter index or -1 for all letters)
    for q, n in enumerate(n_choices):
        if plan.mode == "next_token":
            rows.append(prompt(q, " " + plan.letters[0]))
            scored.append(1)
            owners.append((q, -1))
        else:
            for j in range(n):
                rows.append(prompt(q, " " + plan.letters[j]))
                scored.append(len(plan.continuations[j]))
                owners.append((q, j))
    logps = prompter.continuation_logprobs(rows, scored)
    out: list[list[float] | None] = [[0.0] * n for n in n_choices]
    for (q, j), logp in zip(owners, logps):
        if logp is None:
            out[q] = None
        elif out[q] is not None and j < 0:
            out[q] = [float(logp[0, plan.continuations[k][0]]) for k in range(n_choices[q])]
        elif out[q] is not None:
            out[q][j] = float(sum(logp[t, tid] for t, tid in enumerate(plan.continuations[j])))
    return out


def choice_continuations(tok: PreTrainedTokenizerBase, cue: str, options: Sequence[str]) -> list[tuple[int, ...]]:
    """The scored tokens of `cue + " " + option` for each option (what follows the tokens all share)."""
    fulls = [tok(f"{cue} {o}", add_special_tokens=False)["input_ids"] for o in options]
    shared = min(_common(fulls[0], f) for f in fulls[1:]) if len(fulls) > 1 else len(
        tok(cue, add_special_tokens=False)["input_ids"])
    shared = min(shared, *(len(f) - 1 for f in fulls))
    return [tuple(f[shared:]) for f in fulls]


def cloze(prompter: Prompter, cue: str, prompt: Callable[[int, str], Sample],
          options: Sequence[Sequence[str]]) -> list[list[float] | None]:
    """Summed log-probability of each option's text after the cue, per question (None where the audio failed).

    `prompt(q, suffix)` returns question q's prompt with `suffix` (" " + option) appended to the cue.
    """
    rows: list[Sample] = []
    scored: list[int] = []
    owners: list[tuple[int, int, tuple[int, ...]]] = []
    for q, opts in enumerate(options):
        for j, (option, cont) in enumerate(zip(opts, choice_continuations(prompter.tok, cue, opts))):
            rows.append(prompt(q, " " + option))
            scored.append(len(cont))
            owners.append((q, j, cont))
    logps = prompter.continuation_logprobs(rows, scored)
    out: list[list[float] | None] = [[0.0] * len(opts) for opts in options]
    for (q, j, cont), logp in zip(owners, logps):
        if logp is None:
            out[q] = None
        elif out[q] is not None:
            out[q][j] = float(sum(logp[t, tid] for t, tid in enumerate(cont)))
    return out
