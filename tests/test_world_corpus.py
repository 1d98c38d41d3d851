"""The world corpus's controls, checked on the files `jstip world-corpus` writes.

The checks here do not reuse the generator's own checks: they read the written lists, texts and
annotations back and test them with separate code (word regexes, sets, string search), so a bug
in the generator's bookkeeping cannot hide a leak.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from aligners.textgrid import read_ctm
from manifests.audio import audio_info
from manifests.io import read_records
from manifests.schema import Alignment
from pipeline.cli import main
from pipeline.stage_world_corpus import WorldCorpusConfig, run
from corpora.textnorm import normalize
from synthetic.world.lexicon import GENERIC_HEADS
from synthetic.world.plan import WorldConfig, make_plan
from synthetic.world.speech import jitter, token_times
from manifests.schema import WordSpan

REPO = Path(__file__).resolve().parents[1]
TINY = dict(drugs=12, conditions=8, procedures=4, world_general=40, world_paraphrases=2, domain_texts=30,
            tts_texts=16, asr_utterances=48, test_medical=36, test_general=4, min_test_occurrences=20,
            test_speakers=3, tts_speakers=2, jitter_ms="20,100", progress=False)


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _lines(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line.strip()]


def _words(text: str) -> set[str]:
    return {w.lower() for w in re.findall(r"[A-Za-z]+", text)}


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("world")
    cfg = WorldCorpusConfig(out=str(root / "world"), metrics=str(root / "m.json"), report=str(root / "r.json"), **TINY)
    run(cfg)
    return root / "world"


def _rare_words(world: Path) -> set[str]:
    rare = [e for e in _jsonl(world / "entities.jsonl") if e["tier"] == "rare"]
    return {w.lower() for e in rare for w in e["name"].split() if w.lower() not in GENERIC_HEADS}


def test_no_rare_entity_is_ever_heard_in_asr_training(world):
    rare = _rare_words(world)
    asr = _jsonl(world / "asr_train.jsonl")
    assert rare and asr
    for row in asr:
        assert not (_words(row["text"]) & rare), row
    heard = read_ctm(world / "reference.ctm")  # what the audio says, word by word
    for row in asr:
        assert not ({w.word for w in heard[row["utt_id"]]} & rare), row["utt_id"]
    # the same check fires where rare entities are meant to be: test speech, TTS pairs, domain text
    for name in ("test.jsonl", "tts_pairs.jsonl"):
        assert any(_words(row["text"]) & rare for row in _jsonl(world / name)), name
    assert any(_words(line) & rare for line in _lines(world / "domain_text.txt"))


def test_every_common_entity_is_heard_in_asr_training(world):
    common = [e for e in _jsonl(world / "entities.jsonl") if e["tier"] == "common"]
    spoken = set().union(*(_words(row["text"]) for row in _jsonl(world / "asr_train.jsonl")))
    for e in common:
        assert {w.lower() for w in e["name"].split()} <= spoken, e


def test_splits_are_disjoint_in_speakers_sentences_and_ids(world):
    lists = {name: _jsonl(world / f"{name}.jsonl") for name in ("asr_train", "test", "tts_pairs")}
    speakers = {name: {r["speaker"] for r in rows} for name, rows in lists.items()}
    assert not speakers["asr_train"] & speakers["test"]
    assert not speakers["tts_pairs"] & speakers["test"]
    assert not speakers["asr_train"] & speakers["tts_pairs"]
    texts = {name: {r["text"] for r in rows} for name, rows in lists.items()}
    for name in ("world_text", "domain_text", "tts_text"):
        texts[name] = set(_lines(world / f"{name}.txt"))
    texts["tts_text"] -= texts["tts_pairs"]  # the pairs speak the TTS transcripts: the same set
    for a in texts:
        for b in texts:
            if a < b and {a, b} != {"tts_text", "tts_pairs"}:
                assert not texts[a] & texts[b], (a, b, sorted(texts[a] & texts[b])[:3])
    ids = [r["utt_id"] for rows in lists.values() for r in rows]
    assert len(ids) == len(set(ids))
    assert {r["split"] for r in lists["test"]} == {"test"} and {r["split"] for r in lists["asr_train"]} == {"train"}


def test_entity_annotations_are_exact_char_spans_and_complete(world):
    entities = {e["entity_id"]: e for e in _jsonl(world / "entities.jsonl")}
    rows = _jsonl(world / "test_entities.jsonl")
    assert [r["utt_id"] for r in rows] == [r["utt_id"] for r in _jsonl(world / "test.jsonl") if r["utt_id"] in
                                           {x["utt_id"] for x in rows}]
    for row in rows:
        text = row["text"]
        for m in row["entities"]:
            assert text[m["start"]:m["end"]] == m["text"]
            if m["type"] == "dose":
                assert re.fullmatch(r"\d+ milligrams", m["text"]) and m["tier"] is None and m["category"] == "dose"
                continue
            e = entities[m["entity_id"]]
            assert m["text"] in (e["name"], e["name"][0].upper() + e["name"][1:])
            assert (m["type"], m["tier"]) == (e["category"], e["tier"])
            assert m["category"] == m["tier"]  # what jstip evaluate breaks the entity error rate down by
        # every written occurrence of a name is annotated, and nothing else is
        found = {(x.start(), x.end()) for e in entities.values()
                 for x in re.finditer(r"\b" + re.escape(e["name"]) + r"\b", text, flags=re.IGNORECASE)}
        found |= {(x.start(), x.end()) for x in re.finditer(r"\b\d+ milligrams\b", text)}
        assert found == {(m["start"], m["end"]) for m in row["entities"]}, text


def test_occurrence_counts_match_the_annotations(world, tmp_path):
    metrics = json.loads((world.parent / "m.json").read_text())
    rows = _jsonl(world / "test_entities.jsonl")
    counted = {"rare": 0, "common": 0, "dose": 0}
    for row in rows:
        for m in row["entities"]:
            counted[m["tier"] or "dose"] += 1
    assert metrics["test_occurrences"] == counted
    assert min(counted["rare"], counted["common"]) >= TINY["min_test_occurrences"]


def test_the_cpu_preset_has_500_occurrences_of_each_tier(tmp_path):
    """The preset's size, checked on text only (no audio): the test set it would speak."""
    params = yaml.safe_load((REPO / "experiments" / "repro" / "params.yaml").read_text())["world_corpus"]
    params = {k: v for k, v in params.items() if k in WorldConfig.__dataclass_fields__}
    cfg = WorldCorpusConfig(**{**params, "out": str(tmp_path / "w"), "text_only": True, "progress": False,
                               "metrics": str(tmp_path / "m.json"), "report": str(tmp_path / "r.json")})
    run(cfg)
    counts = {"rare": 0, "common": 0}
    for row in _jsonl(tmp_path / "w" / "test_entities.jsonl"):
        for m in row["entities"]:
            if m["tier"]:
                counts[m["tier"]] += 1
    assert counts["rare"] >= 500 and counts["common"] >= 500, counts
    assert not (tmp_path / "w" / "speech").exists()


def test_too_small_a_test_set_is_refused_before_any_audio(tmp_path, capsys):
    code = main(["world-corpus", "--out", str(tmp_path / "w"), "--test-medical", "10", "--min-test-occurrences", "500",
                 "--metrics", str(tmp_path / "m.json")])
    assert code == 2
    assert "raise test_medical" in capsys.readouterr().err
    assert not (tmp_path / "w").exists()


def test_reference_times_cover_the_normalised_transcript_and_fit_the_audio(world):
    reference = {a.utt_id: a for a in read_records(world / "reference.parquet", Alignment)}
    for name in ("asr_train", "test", "tts_pairs"):
        for row in _jsonl(world / f"{name}.jsonl"):
            words = reference[row["utt_id"]].words
            assert [w.word for w in words] == normalize(row["text"]).split()
            _, seconds = audio_info(world / row["audio"])
            assert abs(seconds - row["duration"]) < 1e-3
            assert all(0 <= w.start < w.end <= seconds for w in words)
            assert all(a.end <= b.start + 1e-6 for a, b in zip(words, words[1:]))


def test_jittered_boundaries_move_within_the_bound_and_stay_ordered(world):
    exact = read_ctm(world / "reference.ctm")
    moved = read_ctm(world / "reference_jitter100.ctm")
    shifts = []
    for utt, words in exact.items():
        other = moved[utt]
        assert [w.word for w in other] == [w.word for w in words]
        assert all(w.end > w.start for w in other)
        assert all(a.end <= b.start + 1e-4 for a, b in zip(other, other[1:]))
        shifts += [abs(a.start - b.start) for a, b in zip(words, other)]
    assert 0.02 < float(np.mean(shifts)) < 0.1
    assert max(shifts) <= 0.1 + 0.011 * 30  # the bound, plus the 10 ms order fix-ups of a crowded stretch


def test_probe_facts_are_asked_but_never_seen_in_question_form(world):
    world_text = set(_lines(world / "world_text.txt"))
    mcq, qa = _jsonl(world / "probes" / "mcq.jsonl"), _jsonl(world / "probes" / "qa.jsonl")
    facts = {f["fact_id"]: f for f in _jsonl(world / "facts.jsonl")}
    test = [i for i in mcq if i["split"] == "test"]
    dev = [i for i in mcq if i["split"] == "dev"]
    assert test and qa and len(dev) == 5 and {i["tier"] for i in test} == {"rare", "common"}
    for item in test:
        assert len(item["choices"]) == 4 and len(set(item["choices"])) == 4 and 0 <= item["answer"] < 4
        assert facts[item["fact_id"]]["probe"]
        assert not any(item["question"] in line for line in world_text)
    for item in qa:
        assert item["answers"] and not any(item["question"] in line for line in world_text)
    for item in dev:
        assert not facts[item["fact_id"]]["probe"] and "audio" not in item
    questions = [line for line in world_text if "Answer:" in line]
    assert any(q.startswith("Question: ") for q in questions)
    assert any(q.startswith("The following are multiple choice questions (with answers) about medicine.")
               and " A. " in q and q.rstrip()[-1] in "ABCD" for q in questions)


def test_probe_questions_are_spoken_by_test_voices(world):
    test_voices = {r["speaker"] for r in _jsonl(world / "test.jsonl")}
    train_voices = {r["speaker"] for r in _jsonl(world / "asr_train.jsonl")}
    spoken = 0
    for name in ("mcq", "qa"):
        for item in _jsonl(world / "probes" / f"{name}.jsonl"):
            if item.get("split", "test") == "test":
                _, seconds = audio_info(world / "probes" / item["audio"])
                assert seconds > 0.5 and item["speaker"] in test_voices and item["speaker"] not in train_voices
                spoken += 1
    assert spoken > 10
    # the jstip probe stage reads these files as they are (its own parser, when present)
    try:
        from evaluation.probe_items import read_mcq, read_qa
    except ImportError:
        return
    mcq = read_mcq(str(world / "probes" / "mcq.jsonl"), "ABCD", "tier")
    assert len(mcq) == len(_jsonl(world / "probes" / "mcq.jsonl"))
    assert all(Path(i.audio).is_file() for i in read_qa(str(world / "probes" / "qa.jsonl")))
    # the cloze form speaks the question alone: the open question's recording of the same words
    qa = {i["question"]: i["audio"] for i in _jsonl(world / "probes" / "qa.jsonl")}
    test = [i for i in mcq if i.split == "test"]
    assert test and all(Path(i.question_audio).is_file() and i.group in ("rare", "common") for i in test)
    assert all(i.question_audio.endswith(qa[i.question]) for i in test)


def test_the_plan_is_a_function_of_the_seed():
    small = {k: v for k, v in TINY.items() if k in WorldConfig.__dataclass_fields__}
    a, b, c = make_plan(WorldConfig(**small)), make_plan(WorldConfig(**small)), make_plan(WorldConfig(**small, seed=1))
    assert a.sets["test"] == b.sets["test"] and a.sets["world_text"] == b.sets["world_text"]
    assert a.sets["test"] != c.sets["test"]


def test_token_times_group_words_espeak_speaks_together():
    # espeak gives "for a" one event and "150" two; every normalised word still gets a time
    text = "Take it for a week, 150 milligrams."
    events = [(0, 0.0, 0.3), (5, 0.3, 0.5), (8, 0.5, 0.9), (14, 0.9, 1.3), (20, 1.3, 1.8), (21, 1.8, 2.1),
              (24, 2.1, 2.6)]
    words = token_times(text, events)
    assert [w.word for w in words] == normalize(text).split()
    by_word = {w.word: w for w in words}
    assert (by_word["for"].start, by_word["a"].end) == (0.5, 0.9) and by_word["a"].score == 0.5
    assert (by_word["one"].start, by_word["fifty"].end) == (1.3, 2.1)


def test_jitter_keeps_shared_boundaries_shared():
    words = [WordSpan("a", 0.1, 0.4), WordSpan("b", 0.4, 0.8), WordSpan("c", 1.0, 1.3)]
    moved = jitter(words, 50, 1.5, np.random.default_rng(0))
    assert moved[0].end == moved[1].start and moved[1].end <= moved[2].start
    assert all(abs(a.start - b.start) <= 0.05 + 1e-9 for a, b in zip(words, moved))


# --- dictation_frames (issue 18): the ASR/TTS dictation sentences composed from phrase pools ---

# sha256 of the TINY plan's sets (ids, texts, mentions, facts) as written before `dictation_frames`
# existed (commit b04a06d): the default must keep every world byte-identical
TINY_PLAN_SHA256 = "94f21ff3f4a7113908ed4f6c2dff2b42dd81bfb625c9a7ee925bf5ef1dc986f9"


def _plan_digest(plan, names=None) -> str:
    import hashlib

    rows = {name: [(l.line_id, l.text, [m.as_dict() for m in l.mentions], l.fact_id) for l in lines]
            for name, lines in plan.sets.items() if names is None or name in names}
    return hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()


def _small(**over) -> WorldConfig:
    return WorldConfig(**{**{k: v for k, v in TINY.items() if k in WorldConfig.__dataclass_fields__}, **over})


def _frame(line) -> str:
    """The sentence with its entities, symptom/organ literals and filler values masked: its frame."""
    from synthetic.world.facts import ORGANS, SYMPTOMS
    from synthetic.world.templates import FILLERS

    text = line.text
    for m in sorted(line.mentions, key=lambda m: -m.start):
        text = text[:m.start] + "{" + m.category + "}" + text[m.end:]
    for slot, values in (("symptom", SYMPTOMS), ("organ", ORGANS), *((k, FILLERS[k]) for k in
                                                                      ("name", "day", "weeks", "time"))):
        text = re.sub(r"\b(" + "|".join(map(re.escape, values)) + r")\b", "{" + slot + "}", text, flags=re.IGNORECASE)
    return text


def test_default_dictation_frames_keep_the_world_byte_identical():
    assert _plan_digest(make_plan(_small())) == TINY_PLAN_SHA256
    assert _plan_digest(make_plan(_small(dictation_frames="fixed"))) == TINY_PLAN_SHA256


def test_composed_dictation_changes_only_the_speech_transcripts():
    # large enough that the world text's general sentences collide with the ASR ones (and are redrawn)
    sizes = dict(world_general=3000, asr_utterances=1000)
    fixed, composed = make_plan(_small(**sizes)), make_plan(_small(**sizes, dictation_frames="composed"))
    same = ["test", "domain_text", "world_text"]
    assert _plan_digest(fixed, same) == _plan_digest(composed, same)
    assert sorted(l.text for l in fixed.sets["asr_train"] if not l.fact_id) == \
        sorted(l.text for l in composed.sets["asr_train"] if not l.fact_id)
    assert {l.text for l in fixed.sets["asr_train"]} != {l.text for l in composed.sets["asr_train"]}
    assert len(composed.sets["asr_train"]) == len(fixed.sets["asr_train"])


def test_composed_dictation_has_many_frames_and_no_test_template():
    from synthetic.world.templates import TEMPLATES

    sizes = dict(asr_utterances=1200, tts_texts=200)
    fixed, composed = make_plan(_small(**sizes)), make_plan(_small(**sizes, dictation_frames="composed"))

    def medical(plan):
        return [l for name in ("asr_train", "tts_text") for l in plan.sets[name] if l.fact_id]
    frames_fixed, frames_composed = {_frame(l) for l in medical(fixed)}, {_frame(l) for l in medical(composed)}
    assert len(frames_fixed) <= len([t for g in TEMPLATES["dictation"].values() for t in g])
    assert len(frames_composed) >= 300, len(frames_composed)
    # separate code from the generator's check: every held-out template as a regex, on the written sentences
    held_out = [re.compile(re.sub(r"\\\{[a-z_]+\\\}", ".+", re.escape(t)), flags=re.IGNORECASE)
                for g in TEMPLATES["dictation_test"].values() for t in g]
    for line in medical(composed):
        assert not any(p.fullmatch(line.text) for p in held_out), line.text
    test_frames = {_frame(l) for l in composed.sets["test"] if l.fact_id}
    assert not test_frames & frames_composed


def test_a_pool_holding_a_test_template_is_refused():
    from synthetic.world.templates import DICTATION_COMPOSED, TEMPLATES, _check_held_out

    _check_held_out(DICTATION_COMPOSED)
    with pytest.raises(ValueError, match="held-out test templates"):
        leaky = DICTATION_COMPOSED["dose"] + TEMPLATES["dictation_test"]["organ"]
        _check_held_out({**DICTATION_COMPOSED, "dose": leaky})
    with pytest.raises(ValueError, match="dictation_frames"):
        make_plan(_small(dictation_frames="free"))


def test_composed_dictation_annotates_exact_entity_spans():
    plan = make_plan(_small(asr_utterances=400, dictation_frames="composed"))
    entities = plan.world.entities
    names = {e.entity_id: e.name for e in entities.values()}
    for line in plan.sets["asr_train"] + plan.sets["tts_text"]:
        for m in line.mentions:
            assert line.text[m.start:m.end] == m.text
            if m.category == "dose":
                assert re.fullmatch(r"\d+ milligrams", m.text)
            else:
                assert m.text.lower() == names[m.entity_id].lower()
        found = {(x.start(), x.end()) for name in names.values()
                 for x in re.finditer(r"\b" + re.escape(name) + r"\b", line.text, flags=re.IGNORECASE)}
        found |= {(x.start(), x.end()) for x in re.finditer(r"\b\d+ milligrams\b", line.text)}
        assert found == {(m.start, m.end) for m in line.mentions}, line.text
