"""Does a small LM trained on the world text alone know the rare entities? (the premise of issue 11)

The reproduction only makes sense if the stage-0 LM has a prior to preserve: given the left
context of a test sentence ("For the Drurles disease we recommended ..."), it should rank the
right entity above the other entities of its category, rare ones included, although no rare
entity is ever heard in speech. This bench trains a Llama of the CPU preset's shape (or the sizes
given) on `world_text.txt` with a BPE tokenizer built from it, then reports:

- entity choice on the test sentences' mentions that follow another entity of the same sentence
  (the ones a prior can predict), per tier: is the entity with the highest log-probability given
  the left context, among all entities of its category, one that forms a fact with an entity
  named before it (chance: the share of such entities, averaged); the same with no context (the
  names' unconditional prior) as a baseline;
- spelling choice: after the left context, does the LM prefer the entity's written form over
  every spelling that sounds the same (k/c, f/ph, i/y, l/ll...)? This is what decides the entity
  error rate before normalisation for a name the acoustic model has never heard;
- the multiple-choice probes (text in): MMLU letter form with the k-shot examples, and cloze form
  (the choice text scored after the question), per tier (chance 25%);
- training speed (tokens/s) on this machine.

    PYTHONPATH=. python bench/world_lm_prior.py --world /tmp/w/world --steps 600    # after:
    jstip world-corpus --params experiments/repro/params.yaml --text-only true --out /tmp/w/world
"""
from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path

import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from synthetic.world.probes import LETTERS, render_mc  # noqa: E402
from trainer.tokenizer import build_tokenizer  # noqa: E402

PRESET = Path(__file__).resolve().parents[1] / "experiments" / "repro" / "pretrain" / "lm.yaml"  # the stage-0 LM


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _blocks(tok, lines: list[str], length: int) -> torch.Tensor:
    ids: list[int] = []
    for line in lines:
        ids += tok(line, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    n = len(ids) // length
    return torch.tensor(ids[: n * length]).view(n, length)


@torch.no_grad()
def _score(model, tok, prefix: str, options: list[str]) -> list[float]:
    """Sum of log-probabilities of each option's tokens after `prefix` (one batch)."""
    head = [tok.bos_token_id] + tok(prefix, add_special_tokens=False)["input_ids"] if prefix else [tok.bos_token_id]
    seqs = [head + tok((" " if prefix else "") + o, add_special_tokens=False)["input_ids"] for o in options]
    width = max(map(len, seqs))
    batch = torch.full((len(seqs), width), tok.pad_token_id)
    for i, s in enumerate(seqs):
        batch[i, : len(s)] = torch.tensor(s)
    logp = torch.log_softmax(model(batch).logits.float(), -1)
    scores = []
    for i, s in enumerate(seqs):
        positions = range(len(head), len(s))
        scores.append(sum(logp[i, p - 1, s[p]].item() for p in positions))
    return scores


def entity_choice(model, tok, world: Path, per_tier: int, rng: random.Random) -> dict:
    """Share of test mentions whose best-scored entity (of its category, after the left context) is one
    that forms a fact with an entity named earlier in the sentence (a condition treated by two drugs
    accepts both); `no_context` scores the names alone (the unconditional prior)."""
    entities = _jsonl(world / "entities.jsonl")
    by_cat: dict[str, list[dict]] = {}
    for e in entities:
        by_cat.setdefault(e["category"], []).append(e)
    partners: dict[str, set[str]] = {}
    for f in _jsonl(world / "facts.jsonl"):
        partners.setdefault(f["subject"], set()).add(f["object"])
        partners.setdefault(f["object"], set()).add(f["subject"])
    # only mentions whose left context names another entity: the first entity of a sentence
    # ("Start X at ...") cannot be predicted by any LM, the second one from its partner can
    mentions = []
    for row in _jsonl(world / "test_entities.jsonl"):
        for m in row["entities"]:
            before = [o["entity_id"] for o in row["entities"] if o["tier"] and o["end"] <= m["start"]]
            if m["tier"] and before:
                valid = set().union(*(partners.get(b, set()) for b in before)) | {m["entity_id"]}
                mentions.append((row["text"], m, valid))
    out = {}
    for tier in ("rare", "common"):
        chosen = [x for x in mentions if x[1]["tier"] == tier]
        rng.shuffle(chosen)
        hits = {"context": 0, "no_context": 0}
        for text, m, valid in chosen[:per_tier]:
            cands = by_cat[m["type"]]
            options = [e["name"][0].upper() + e["name"][1:] if m["start"] == 0 else e["name"] for e in cands]
            for key, pre in (("context", text[: m["start"]].rstrip()), ("no_context", "")):
                scores = _score(model, tok, pre, options)
                best = cands[max(range(len(scores)), key=scores.__getitem__)]["entity_id"]
                hits[key] += int(best in valid)
        n = min(per_tier, len(chosen))
        out[tier] = {k: round(v / max(n, 1), 3) for k, v in hits.items()} | {"n": n}
    out["chance"] = round(sum(len(v) / len(by_cat[x[1]["type"]]) for x in mentions
                              for v in [x[2] & {e["entity_id"] for e in by_cat[x[1]["type"]]}])
                          / max(len(mentions), 1), 3)
    return out


_RESPELL = (("ph", "f"), ("f", "ph"), ("ck", "k"), ("c", "k"), ("k", "c"), ("y", "i"), ("i", "y"), ("ll", "l"),
            ("nn", "n"), ("rr", "r"), ("tt", "t"), ("ss", "s"), ("mm", "m"))


def respellings(name: str, limit: int = 6) -> list[str]:
    """Spellings that sound like `name` (one substitution each, the lexicon's ambiguities)."""
    out: list[str] = []
    lower = name.lower()
    for a, b in _RESPELL:
        i = lower.find(a)
        while i >= 0 and len(out) < limit:
            variant = name[:i] + (b.upper() if name[i].isupper() else b) + name[i + len(a):]
            if variant.lower() != lower and variant not in out:
                out.append(variant)
            i = lower.find(a, i + 1)
    return out


def spelling_choice(model, tok, world: Path, per_tier: int, rng: random.Random) -> dict:
    """Share of test mentions where the LM, after the sentence's left context, prefers the entity's
    written form over every spelling that sounds the same: what an acoustic model cannot decide."""
    mentions = [(row["text"], m) for row in _jsonl(world / "test_entities.jsonl") for m in row["entities"]
                if m["tier"] and respellings(m["text"])]
    out = {}
    for tier in ("rare", "common"):
        chosen = [x for x in mentions if x[1]["tier"] == tier]
        rng.shuffle(chosen)
        hits = 0
        for text, m in chosen[:per_tier]:
            options = [m["text"]] + respellings(m["text"])
            scores = _score(model, tok, text[: m["start"]].rstrip(), options)
            hits += int(max(range(len(scores)), key=scores.__getitem__) == 0)
        n = min(per_tier, len(chosen))
        out[tier] = {"right_spelling": round(hits / max(n, 1), 3), "n": n}
    out["chance"] = round(sum(1 / (1 + len(respellings(m["text"]))) for _, m in mentions) / max(len(mentions), 1), 3)
    return out


def multiple_choice(model, tok, world: Path) -> dict:
    items = _jsonl(world / "probes" / "mcq.jsonl")
    shots = [i for i in items if i.get("split") == "dev"]
    context = render_mc(shots[0], header=True) + " " + " ".join(render_mc(s, header=False) for s in shots[1:])
    letters = [tok(" " + L, add_special_tokens=False)["input_ids"][-1] for L in LETTERS]
    out: dict = {}
    for item in (i for i in items if i.get("split") == "test"):
        tier = out.setdefault(item["tier"], {"letter": 0, "cloze": 0, "n": 0})
        prompt = (context + " " + render_mc(item, with_answer=False, header=False)).strip()
        ids = [tok.bos_token_id] + tok(prompt, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0, -1]
        tier["letter"] += int(int(torch.argmax(logits[letters])) == item["answer"])
        cloze = _score(model, tok, f"Question: {item['question']} Answer:", item["choices"])
        tier["cloze"] += int(max(range(4), key=cloze.__getitem__) == item["answer"])
        tier["n"] += 1
    return {t: {k: (round(v / d["n"], 3) if k != "n" else v) for k, v in d.items()} for t, d in out.items()}


def main() -> int:
    preset = yaml.safe_load(PRESET.read_text())["train"]
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--world", required=True, help="a world-corpus output directory (text-only is enough)")
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--seq", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--vocab", type=int, default=preset["vocab_size"])
    for name in ("lm_hidden", "lm_layers", "lm_heads", "lm_intermediate"):
        p.add_argument("--" + name.replace("_", "-"), type=int, default=preset[name])
    p.add_argument("--per-tier", type=int, default=150, help="test mentions scored per tier")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save", default="", help="save the trained LM here (transformers format)")
    p.add_argument("--load", default="", help="evaluate an LM saved by --save (or `jstip train --export-lm`'s "
                                              "checkpoints/lm, with its tokenizer) instead of training (same world)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    from transformers import LlamaConfig, LlamaForCausalLM

    world = Path(args.world)
    lines = [line for line in (world / "world_text.txt").read_text().splitlines() if line.strip()]
    if args.load:  # the saved LM's own tokenizer (e.g. the experiment's pretrained/lm/lm)
        from trainer.tokenizer import load_tokenizer

        tok = load_tokenizer(args.load)
    else:
        tok = build_tokenizer(lines, args.vocab)
    data = _blocks(tok, lines, args.seq)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=args.lm_hidden, num_hidden_layers=args.lm_layers,
                         num_attention_heads=args.lm_heads, num_key_value_heads=args.lm_heads,
                         intermediate_size=args.lm_intermediate, max_position_embeddings=1024,
                         pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                         tie_word_embeddings=True)
    model = LlamaForCausalLM(config)
    rng = random.Random(args.seed)
    before = entity_choice(model.eval(), tok, world, args.per_tier, random.Random(args.seed))
    spelling_untrained = spelling_choice(model, tok, world, args.per_tier, random.Random(args.seed))
    if args.load:
        model = LlamaForCausalLM.from_pretrained(args.load)
        args.steps = 0
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 50) * max(0.05, 1 - s / max(args.steps, 1)))
    model.train()
    started, losses = time.perf_counter(), []
    for step in range(args.steps):
        batch = data[torch.tensor(rng.sample(range(len(data)), min(args.batch, len(data))))]
        loss = model(batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step(), sched.step(), opt.zero_grad()
        losses.append(loss.item())
    seconds = time.perf_counter() - started
    model.eval()
    if args.save:
        model.save_pretrained(args.save)
    report = {
        "world_text": {"lines": len(lines), "tokens": int(data.numel()), "epochs": round(args.steps * args.batch / len(data), 2)},
        "model": {"parameters": sum(p.numel() for p in model.parameters()), "vocab": len(tok)},
        "train": {"steps": args.steps, "loss_first": round(sum(losses[:20]) / max(len(losses[:20]), 1), 3),
                  "loss_last": round(sum(losses[-20:]) / max(len(losses[-20:]), 1), 3),
                  "tokens_per_s": round(args.steps * args.batch * args.seq / max(seconds, 1e-9)),
                  "seconds": round(seconds, 1), "threads": args.threads},
        "entity_choice_untrained": before,
        "entity_choice": entity_choice(model, tok, world, args.per_tier, random.Random(args.seed)),
        "spelling_choice_untrained": spelling_untrained,
        "spelling_choice": spelling_choice(model, tok, world, args.per_tier, random.Random(args.seed)),
        "multiple_choice": multiple_choice(model, tok, world),
    }
    print(json.dumps(report, indent=2))
    return 0 if not losses or math.isfinite(losses[-1]) else 1


if __name__ == "__main__":
    sys.exit(main())
