"""Joint CTC/LM beam search: each hypothesis scored by the LM and by the CTC head's letters.

score(y) = (1 − λ) · log p_LM(y | speech) + λ · log p_CTC(letters(y) as a prefix | speech)

as ESPnet's hybrid decoder does (Watanabe et al. 2017; `trainer/ctc_prefix.py`). At each step every
open hypothesis gets its `pre_beam` most promising next tokens (`_pre_beam`: by the LM and the CTC
score of each token's first letter, over the whole vocabulary) plus the end token; each is scored
jointly with its full letters and the best `beam` open hypotheses go on. A hypothesis that ends is
scored with the CTC probability of its whole letter sequence (it must explain all the audio), so
ending early or writing words the letters do not support both lose. λ = 0 is the LM's own beam
search (up to the pre-beam pruning), λ = 1 the CTC head choosing among the tokens.

The model needs the letter CTC head (`ctc_units: chars`, `ctc_weight > 0` in training). The LM
reads the prompt once and then, per step, only each open hypothesis's new token, with its
key/value cache reordered to the hypotheses' parents (transformers' `DynamicCache.reorder_cache`),
and computes logits only at the last position.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from manifests.errors import JstipError

from .ctc_prefix import CTCPrefixScorer, LetterMap, PrefixState


@dataclass
class _Hyp:
    ids: list[int]
    lm: float
    ctc: PrefixState
    pending: bool  # a word boundary seen, not yet written as a letter
    score: float
    after_letterless: bool = False  # the last token wrote no letter
    parent: int = 0  # its parent's row in the previous step's key/value cache


def letter_posteriors(model, hidden: torch.Tensor, letters: LetterMap) -> torch.Tensor:
    """`[T, 1 + L]` log-posteriors of the blank and the letter columns at the encoder's frames `hidden` `[T, d]`."""
    logp = model.ctc_head(hidden).float().log_softmax(-1)
    cols = torch.tensor([model.ids.pad, *letters.classes], device=logp.device)
    return logp[:, cols].cpu()


def _pre_beam(hyps: list[_Hyp], logp: torch.Tensor, scorer: CTCPrefixScorer, letters: LetterMap,
              ctc_weight: float, k: int, lm_k: int) -> list[list[int]]:
    """Each hypothesis's `k` most promising next tokens over the whole vocabulary, by the LM's score and the
    CTC prefix score of the token's *first* letter (with the word boundary before it when it opens a word).

    A weak LM does not propose the tokens the audio supports (its top tokens are its own sentence), so
    proposing by the LM alone, as most hybrid decoders do, loses them; scoring every token's full letters
    is ~25x the work. First letters take one `[T, letters]` reduction per hypothesis (two after a word).
    Tokens that write no letter are free for CTC, so they are proposed only when among the LM's `lm_k` best,
    and never right after another one."""
    first = letters.first_col[: logp.shape[1]]
    idx = first.clamp(min=0)  # column 0 (no letter): the hypothesis's own score
    out = []
    for h, hyp in enumerate(hyps):
        plain = scorer.next_scores(hyp.ctc)
        if hyp.ctc.length and letters.boundary_col > 0:
            spaced = scorer.next_scores(scorer.extend([hyp.ctc], [letters.boundary_col])[0])
            spaced[0] = hyp.ctc.score
        else:
            spaced = plain
        needs_space = torch.tensor(hyp.pending) | (letters.boundary_first[: logp.shape[1]] & (hyp.ctc.length > 0))
        ctc = torch.where(needs_space & (first > 0), spaced[idx], plain[idx]).to(logp.dtype)
        joint = (1 - ctc_weight) * (hyp.lm + logp[h]) + ctc_weight * ctc
        # a token without letters (punctuation, a bare boundary) costs nothing in CTC: only the LM may propose it
        lm_top = logp[h].topk(min(lm_k, logp.shape[1])).indices
        letterless = first < 0
        if not hyp.after_letterless:  # never two in a row: else a beam fills with free punctuation
            letterless[lm_top] = False
        joint[letterless] = float("-inf")
        out.append(joint.topk(min(k, joint.shape[0])).indices.tolist())
    return out


def joint_beam_search(model, prompt_embeds: torch.Tensor, ctc_logp: torch.Tensor, letters: LetterMap,
                      ctc_weight: float, beam: int, max_new_tokens: int, banned: list[int],
                      pre_beam: int = 0) -> tuple[list[int], bool]:
    """The best continuation of one prompt (`prompt_embeds` `[P, H]`, no padding) and whether it hit
    `max_new_tokens` without the end token. `banned`: token ids never written (the special tokens but eos)."""
    if not 0.0 <= ctc_weight <= 1.0:
        raise JstipError(f"ctc_weight {ctc_weight} must be in [0, 1] (0: the LM alone, 1: the CTC head alone)")
    eos = model.ids.eos
    pre_beam = pre_beam or max(20, 2 * beam)
    embed = model.lm.get_input_embeddings()
    scorer = CTCPrefixScorer(ctc_logp)
    vocab = embed.num_embeddings
    never = torch.zeros(vocab, dtype=torch.bool)
    never[[i for i in banned if i != eos and i < vocab]] = True
    open_hyps = [_Hyp([], 0.0, scorer.initial(), False, 0.0)]
    ended: list[_Hyp] = []
    cache = None
    for step in range(max_new_tokens):
        if step == 0:  # the prompt once; then each step only the new token of every open hypothesis
            embeds = prompt_embeds[None]
        else:
            cache.reorder_cache(torch.tensor([h.parent for h in open_hyps], device=prompt_embeds.device))
            last = torch.tensor([[h.ids[-1]] for h in open_hyps], dtype=torch.long, device=prompt_embeds.device)
            embeds = embed(last).to(prompt_embeds.dtype)
        out = model.lm(inputs_embeds=embeds, cache=cache, use_cache=True, logits_to_keep=1)
        cache = out.cache
        logp = out.logits[:, -1].float().log_softmax(-1).cpu()
        logp[:, never[: logp.shape[1]]] = float("-inf")
        top = _pre_beam(open_hyps, logp, scorer, letters, ctc_weight, pre_beam, beam)
        pairs, grown = [], []  # (hyp index, token); per pair the letter columns it appends
        for h, cands in enumerate(top):
            for t in dict.fromkeys([*cands, eos]):
                if t == eos:
                    hyp = open_hyps[h]
                    lm = hyp.lm + float(logp[h, eos])
                    ended.append(_Hyp(hyp.ids, lm, hyp.ctc, hyp.pending,
                                      (1 - ctc_weight) * lm + ctc_weight * scorer.final(hyp.ctc)))
                    continue
                cols, pending = letters.extend(open_hyps[h].ctc.length, open_hyps[h].pending, t)
                pairs.append((h, t, pending))
                grown.append(cols)
        states = [open_hyps[h].ctc for h, _, _ in pairs]
        for k in range(max((len(c) for c in grown), default=0)):  # one letter at a time, all pairs together
            idx = [i for i, c in enumerate(grown) if len(c) > k]
            for i, s in zip(idx, scorer.extend([states[i] for i in idx], [grown[i][k] for i in idx])):
                states[i] = s
        cands = []
        for (h, t, pending), state in zip(pairs, states):
            lm = open_hyps[h].lm + float(logp[h, t])
            cands.append(_Hyp(open_hyps[h].ids + [t], lm, state, pending,
                              (1 - ctc_weight) * lm + ctc_weight * state.score, int(letters.first_col[t]) < 0, h))
        cands.sort(key=lambda c: c.score, reverse=True)
        open_hyps = cands[:beam]
        best_ended = max((e.score for e in ended), default=float("-inf"))
        # scores only fall as hypotheses grow (both terms are log-probabilities of longer prefixes)
        if not open_hyps or best_ended >= open_hyps[0].score:
            break
    if ended:
        best = max(ended, key=lambda e: e.score)
        return best.ids, False
    best = max(open_hyps, key=lambda e: e.score)
    return best.ids, True
