"""`jstip probe`: item files, MMLU prompts, letter scoring against a direct forward pass, the stage on the demo set."""
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from manifests.errors import JstipError
from manifests.schema import SPEECH, TEXT, TOKEN
from synthetic.demo_probe import demo_facts, mcq_items, qa_items
from evaluation.probe_items import (CUE, mcq_parts, normalize_answer, probe_sample, qa_correct, read_mcq,
                                  read_qa, shots_for)
from pipeline.stage_probe import ProbeConfig, Speech, run
from trainer.checkpoint import save_checkpoint
from trainer.lm_calls import Prompter
from trainer.model import SpeechLM, SpeechLMConfig
from trainer.probe import choose, plan_letters
from trainer.tokenizer import build_tokenizer

TINY = dict(enc_dim=32, enc_layers=1, enc_heads=2, proj_hidden=64, lm_hidden=64, lm_layers=2, lm_heads=2,
            lm_intermediate=128, dropout=0.0)


def write_jsonl(path: Path, rows: list) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_read_mcq_validates_and_picks_shots(tmp_path):
    rows = [{"id": "d1", "question": "Q1?", "choices": ["a", "b"], "answer": 1, "subject": "med", "split": "dev"},
            {"id": "d2", "question": "Q2?", "choices": ["a", "b"], "answer": "A", "subject": "law", "split": "dev"},
            {"id": "d3", "question": "Q3?", "choices": ["a", "b"], "answer": "b", "subject": "med", "split": "dev"},
            {"id": "t1", "question": "Q4?", "choices": ["w", "x", "y", "z"], "answer": "D", "subject": "med"}]
    items = read_mcq(write_jsonl(tmp_path / "m.jsonl", rows), "ABCD")
    assert [i.answer for i in items] == [1, 0, 1, 3] and items[3].split == "test"
    assert [s.id for s in shots_for(items, 2)["t1"]] == ["d1", "d3"]  # same subject first
    assert [s.id for s in shots_for(items, 5)["t1"]] == ["d1", "d3", "d2"]
    assert list(shots_for(items, 5)) == ["t1"]  # dev items are shots, never scored
    for bad, message in [({"choices": ["a"], "answer": 0}, "choices"), ({"choices": ["a", "b"], "answer": "C"}, "answer"),
                         ({"choices": ["a", "b"], "answer": 5}, "not one of"),
                         ({"choices": ["a", "b"], "answer": 0, "split": "train"}, "split")]:
        path = write_jsonl(tmp_path / "bad.jsonl", [rows[0], {"id": "x", "question": "Q?", **bad}])
        with pytest.raises(JstipError, match=rf"bad.jsonl:2: .*{message}"):
            read_mcq(path, "ABCD")
    with pytest.raises(JstipError, match="twice"):
        read_mcq(write_jsonl(tmp_path / "dup.jsonl", [rows[0], rows[0]]), "ABCD")


def test_mmlu_prompt_and_the_spoken_part():
    items = read_mcq_rows([{"id": "d", "question": "What is aspirin?", "choices": ["a drug", "a city"], "answer": 0,
                            "split": "dev", "subject": "clinical_knowledge"},
                           {"id": "t", "question": "What is Boston?", "choices": ["a drug", "a city"], "answer": 1,
                            "subject": "clinical_knowledge"}])
    before, spoken, cue = mcq_parts(items[1], [items[0]], "ABCD")
    assert before == ("The following are multiple choice questions (with answers) about clinical knowledge.\n\n"
                      "What is aspirin?\nA. a drug\nB. a city\nAnswer: A\n\n")
    assert spoken == "What is Boston?\nA. a drug\nB. a city" and cue == CUE
    text = probe_sample("t:t2t", (before, spoken, cue), None, " B")
    speech = probe_sample("t:s2t", (before, spoken, cue), (b"flac", "", 2.5), " B")
    assert [s.modality for s in text.spans] == [TOKEN, TEXT, TEXT, TEXT] and text.spans[-1].text == "Answer: B"
    assert [s.modality for s in speech.spans] == [TOKEN, TEXT, SPEECH, TEXT]
    assert speech.spans[2].end == 2.5 and speech.audio == b"flac" and speech.spans[1:] != text.spans[1:]
    assert [s.text for s in speech.spans] == [s.text for s in text.spans]  # only the modality differs


def read_mcq_rows(rows):
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        return read_mcq(write_jsonl(Path(d) / "m.jsonl", rows), "ABCD")


def test_open_answers_are_normalised():
    assert normalize_answer("The Drug!") == "drug" and normalize_answer("5 mg") == "five milligrams"
    assert qa_correct("A drug.\nAnd more", ["drug"]) and not qa_correct("It is a drug", ["drug"])
    assert qa_correct("It is a drug", ["drug"], "contains") and not qa_correct("drugs", ["drug"], "contains")
    with pytest.raises(JstipError, match="qa_match"):
        qa_correct("x", ["x"], "fuzzy")


def test_demo_sets_read_back_and_are_seeded(tmp_path):
    mcq = mcq_items(demo_facts(), 10, 5, seed=0)
    assert mcq == mcq_items(demo_facts(), 10, 5, seed=0) and mcq != mcq_items(demo_facts(), 10, 5, seed=1)
    items = read_mcq(write_jsonl(tmp_path / "m.jsonl", mcq), "ABCD")
    assert sum(i.split == "dev" for i in items) == 5 and all(len(i.choices) == 4 for i in items)
    assert {r["tier"] for r in mcq if r["split"] == "test"} == {"common", "rare"}
    qa = read_qa(write_jsonl(tmp_path / "q.jsonl", qa_items(demo_facts(), 6)))
    assert len(qa) == 6 and all(normalize_answer(q.answers[0]) in {"drug", "condition", "procedure"} for q in qa)


TEXTS = ["The following are multiple choice questions (with answers) about medicine.",
         "What is aspirin? A. a drug B. a city C. a condition D. a procedure Answer: A",
         "Question: Is sepsis a drug, a condition or a procedure? Answer: a condition"] * 3
LETTER_TEXTS = ["Answer: A Answer: B Answer: C Answer: D"] * 3  # makes "▁B" … one token each


def tiny_model(mode: str):
    """A tiny model whose tokenizer spells " B" as two tokens (sequence scoring) or one (next-token choice)."""
    tok = build_tokenizer(TEXTS + (LETTER_TEXTS if mode == "next_token" else []), vocab_size=150)
    assert plan_letters(tok, CUE, "ABCD").mode == mode
    torch.manual_seed(0)
    return SpeechLM(SpeechLMConfig(**TINY), tok).eval(), tok


@pytest.fixture(scope="module", params=["sequence", "next_token"])
def model_tok(request):
    return tiny_model(request.param)


def test_letters_are_found_in_the_tokenizer_or_refused(model_tok):
    _, tok = model_tok
    plan = plan_letters(tok, CUE, "ABCD")
    assert len(set(plan.continuations)) == 4 and plan.mode in ("next_token", "sequence")
    for letter, cont in zip("ABCD", plan.continuations):
        assert tok(f"{CUE} {letter}", add_special_tokens=False)["input_ids"][-len(cont):] == list(cont)
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = Tokenizer(models.WordLevel({"<unk>": 0, "Answer:": 1}, unk_token="<unk>"))  # letters all map to <unk>
    words.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    blind = PreTrainedTokenizerFast(tokenizer_object=words, unk_token="<unk>")
    with pytest.raises(JstipError, match="cannot tell the answer letters"):
        plan_letters(blind, CUE, "ABCD")


def test_choices_scored_in_a_batch_equal_a_direct_forward_pass(model_tok, tmp_path):
    model, tok = model_tok
    prompter = Prompter(model, tok)
    speech = Speech("en-us", 170)
    parts = [("Context one.", "What is aspirin?\nA. a drug\nB. a city", CUE),
             ("A longer context, with more words in it than the first one.", "What is Boston?", CUE)]
    audio = [speech(p[1], "") for p in parts]
    plan = plan_letters(tok, CUE, "AB")
    for spoken in (False, True):
        batched = choose(prompter, plan, lambda q, s: probe_sample(f"q{q}", parts[q], audio[q] if spoken else None, s),
                         [2, 2])
        for q in range(2):
            alone = choose(prompter, plan, lambda _, s: probe_sample(f"q{q}", parts[q], audio[q] if spoken else None, s),
                           [2])[0]
            assert batched[q] == pytest.approx(alone, abs=1e-4)
            # the same scores from a plain forward pass of each full candidate (sum over its letter tokens)
            for j, letter in enumerate("AB"):
                sample = probe_sample(f"q{q}", parts[q], audio[q] if spoken else None, " " + letter)
                ids, logp = full_logprobs(prompter, sample)
                n = len(plan.continuations[j])
                assert ids[len(ids) - n:] == list(plan.continuations[j])
                direct = sum(float(logp[t - 1, ids[t]]) for t in range(len(ids) - n, len(ids)))
                assert batched[q][j] == pytest.approx(direct, abs=1e-4)
    if plan.mode == "next_token":  # one row per question gives the same scores as one row per letter
        a = choose(prompter, plan, lambda q, s: probe_sample(f"q{q}", parts[q], None, s), [2, 2])
        b = choose(prompter, replace(plan, mode="sequence"), lambda q, s: probe_sample(f"q{q}", parts[q], None, s),
                   [2, 2])
        np.testing.assert_allclose(a, b, atol=1e-4)


def full_logprobs(prompter, sample):
    """Token ids of one prompt as the model sees it and its log-probabilities from an unpadded forward pass."""
    from trainer.data import Collator, SampleDataset

    batch = Collator(prompter.tok, prompter.model.spec, add_eos=False)([SampleDataset([sample], prompter.model.spec)[0]])
    with torch.no_grad():
        logits = prompter.model({k: v for k, v in batch.items() if k != "labels"}).logits[0]
    return batch["input_ids"][0].tolist(), logits.log_softmax(-1)


def test_probe_stage_on_the_demo_sets(tmp_path):
    model, tok = tiny_model("next_token")
    save_checkpoint(model, tok, tmp_path / "ck")
    cfg = ProbeConfig(checkpoints=str(tmp_path / "ck"), demo_dir=str(tmp_path / "probe"), demo_items=6, shots=2,
                      max_new_tokens=3, batch_size=4, bootstrap=100, progress=False, device="cpu",
                      metrics=str(tmp_path / "metrics/probe.json"), report=str(tmp_path / "reports/probe.json"))
    m = run(cfg)
    assert json.loads(Path(cfg.metrics).read_text()) == json.loads(json.dumps(m))
    assert m["mcq_items"] == 6 and m["qa_items"] == 6 and m["mcq_chance"] == 0.25
    for p in ("mcq", "qa"):
        assert 0 <= m[f"{p}_t2t"] <= 1 and 0 <= m[f"{p}_s2t"] <= 1
        assert m[f"{p}_gap"] == pytest.approx(m[f"{p}_s2t"] - m[f"{p}_t2t"])
        assert m[f"{p}_gap_lo"] <= m[f"{p}_gap"] <= m[f"{p}_gap_hi"]
    report = json.loads(Path(cfg.report).read_text())
    assert len(report["mcq"]["items"]) == 6 and report["mcq"]["scoring"] in ("next_token", "sequence")
    row = report["mcq"]["items"][0]
    assert row["t2t"] == "ABCD"[max(range(4), key=row["t2t_logprobs"].__getitem__)]
    assert (tmp_path / "probe/mcq.jsonl").exists() and (tmp_path / "probe/qa.jsonl").exists()

    # a user's file: one question with a broken recording is left out of both conditions, with its reason
    (tmp_path / "broken.wav").write_bytes(b"nope")
    qa = write_jsonl(tmp_path / "qa.jsonl", [{"id": "ok", "question": "Is sepsis a drug?", "answers": ["no"]},
                                             {"id": "bad", "question": "Is it?", "answers": ["no"], "audio": "broken.wav"}])
    m = run(replace(cfg, mcq="", qa=qa))
    assert m["qa_items"] == 1 and m["qa_skipped"] == 1 and "mcq_items" not in m
    assert json.loads(Path(cfg.report).read_text())["qa"]["skipped"]["bad"].startswith("no speech")


def test_cloze_scores_each_choice_text_as_a_direct_forward_pass_does(model_tok):
    from evaluation.probe_items import QUESTION
    from trainer.probe import choice_continuations, cloze

    model, tok = model_tok
    prompter = Prompter(model, tok)
    options = [("a drug", "a city", "a condition"), ("a drug", "a drug store")]  # a shared prefix, and a prefix of another
    parts = [(QUESTION, "What is aspirin?", CUE), (QUESTION, "What is Boston?", CUE)]
    audio = [Speech("en-us", 170)(p[1], "") for p in parts]
    for spoken in (False, True):
        scores = cloze(prompter, CUE, lambda q, s: probe_sample(f"q{q}", parts[q], audio[q] if spoken else None, s),
                       options)
        for q, opts in enumerate(options):
            conts = choice_continuations(tok, CUE, opts)
            assert all(conts) and len(set(conts)) == len(opts)
            for j, option in enumerate(opts):
                ids, logp = full_logprobs(prompter, probe_sample(f"q{q}", parts[q], audio[q] if spoken else None,
                                                                 " " + option))
                n = len(conts[j])
                assert ids[len(ids) - n:] == list(conts[j])
                direct = sum(float(logp[t - 1, ids[t]]) for t in range(len(ids) - n, len(ids)))
                assert scores[q][j] == pytest.approx(direct, abs=1e-4)


def test_probe_stage_cloze_form_and_accuracies_by_tier(tmp_path):
    from manifests.io import check_metrics

    model, tok = tiny_model("next_token")
    save_checkpoint(model, tok, tmp_path / "ck")
    cfg = ProbeConfig(checkpoints=str(tmp_path / "ck"), demo_dir=str(tmp_path / "probe"), demo_items=8, shots=2,
                      max_new_tokens=3, batch_size=4, bootstrap=50, progress=False, device="cpu", qa="",
                      mcq_form="both", group_by="tier", metrics=str(tmp_path / "m.json"), report=str(tmp_path / "r.json"))
    m = run(cfg)
    check_metrics(m)
    assert m["mcq_items"] == m["mcq_cloze_items"] == 8
    for prefix in ("mcq", "mcq_cloze"):
        tiers = m[f"{prefix}_by_tier"]
        assert set(tiers) == {"rare", "common"} and sum(t["items"] for t in tiers.values()) == 8
        right = sum(t["t2t"] * t["items"] for t in tiers.values())
        assert right == pytest.approx(m[f"{prefix}_t2t"] * 8)
    report = json.loads(Path(cfg.report).read_text())
    row = report["mcq_cloze"]["items"][0]
    assert row["t2t"] == row["choices"][max(range(4), key=row["t2t_logprobs"].__getitem__)]
    assert "mcq_cloze_gap_lo" in m and run(replace(cfg, mcq_form="cloze")).keys() >= {"mcq_cloze_t2t"}
    with pytest.raises(JstipError, match="mcq_form"):
        run(replace(cfg, mcq_form="essay"))
