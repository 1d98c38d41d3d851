"""`jstip evaluate`: scoring of hand-made hypotheses, entity files, long audio in pieces, skips with reasons."""
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import soundfile as sf
import torch

from manifests.errors import JstipError
from manifests.io import split_metrics, write_records
from manifests.schema import Hypothesis, Utterance
from evaluation.entities import locate, read_entity_source
from evaluation.scoring import Intervals, score
from pipeline.stage_evaluate import EVALUATE_METRICS, EvaluateConfig, run
from corpora.textnorm import normalize
from trainer.checkpoint import save_checkpoint
from trainer.chunking import plan_cuts, plan_pieces
from trainer.model import SpeechLM, SpeechLMConfig
from trainer.tokenizer import build_tokenizer

SR = 16000
TINY = dict(enc_dim=32, enc_layers=1, enc_heads=2, proj_hidden=64, lm_hidden=64, lm_layers=2, lm_heads=2,
            lm_intermediate=128, dropout=0.0)
TEXTS = ["The patient takes Metformin daily.", "She had a chest X-ray, then rested.", "No entity here."]


def utt(i: int, text: str, path: str = "", duration: float = 1.0) -> Utterance:
    return Utterance(f"u{i}", path, 0.0, duration, SR, "s", text, normalize(text), "synth", "test")


def test_score_hand_made_hypotheses():
    utts = [utt(i, t) for i, t in enumerate(TEXTS)]
    hyps = [Hypothesis("u0", TEXTS[0], "The patient takes metformin daily"),  # case + full stop
            Hypothesis("u1", TEXTS[1], "She had a chest X-ray, then rested."),
            Hypothesis("u2", TEXTS[2], "No entity here.")]
    source = read_entity_source("")
    source.phrases = [("metformin", "drug"), ("chest x ray", "procedure")]
    spans = locate(source, {u.utt_id: u.text for u in utts}).spans
    m, details = score(utts, hyps, spans, Intervals(bootstrap=200))
    assert m["ter_errors"] == 2 and m["reference_tokens"] == 6 + 11 + 4 and m["ter"] == pytest.approx(2 / 21)
    assert m["wer"] == 0.0 and m["reference_words"] == 5 + 8 + 3  # "x-ray" is two normalised words
    assert (m["entity_instances"], m["entity_hits"], m["entity_hits_normalised"]) == (2, 1, 2)
    assert m["eer"] == 0.5 and m["eer_normalised"] == 0.0
    assert m["eer_by_category"]["drug"]["eer"] == 1.0 and m["eer_by_category"]["procedure"]["eer"] == 0.0
    assert m["ter_lo"] <= m["ter"] <= m["ter_hi"] and m["eer_lo"] <= 0.5 <= m["eer_hi"]
    assert details["missed_entities"] == {"metformin": {"instances": 1, "missed": 1, "missed_normalised": 0,
                                                        "category": "drug", "examples": [
                                                            {"utt_id": "u0", "reference": "Metformin",
                                                             "hypothesis": "metformin"}]}}
    assert details["utterances"][0]["entities_missed"] == ["Metformin"]
    assert [u["by_category"] for u in details["utterances"]] == [{"drug": [1, 1]}, {"procedure": [1, 0]}, {}]


def test_annotation_file_offsets_texts_and_problems(tmp_path):
    f = tmp_path / "ann.jsonl"
    rows = [{"utt_id": "u0", "entities": [{"start": 18, "end": 27, "category": "rare"},
                                          {"start": 18, "end": 27, "text": "metformin"},  # wrong case: mismatch
                                          {"start": 40, "end": 45}]},  # past the end
            {"utt_id": "u1", "entities": [{"text": "chest x ray"}, {"text": "aspirin"}]},
            {"utt_id": "gone", "entities": [{"text": "x"}]}]
    f.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    located = locate(read_entity_source(str(f)), {f"u{i}": t for i, t in enumerate(TEXTS)})
    assert [(s.start, s.end, s.category) for s in located.spans["u0"]] == [(18, 27, "rare")]
    assert [TEXTS[1][s.start:s.end] for s in located.spans["u1"]] == ["chest X-ray"]
    assert located.problems == {"offsets_do_not_match_text": 1, "offsets_outside_text": 1,
                                "text_not_in_reference": 1, "utterance_not_evaluated": 1}
    f.write_text('{"utt_id": "u0", "entities": [{"start": "3"}]}\n')
    with pytest.raises(JstipError, match=r"ann.jsonl:1 .*neither"):
        read_entity_source(str(f))
    f.write_text("not json\n")
    with pytest.raises(JstipError, match="ann.jsonl:1 is not JSON"):
        read_entity_source(str(f))


def test_entity_list_with_categories_and_missing_files(tmp_path):
    f = tmp_path / "entities.txt"
    f.write_text("metformin\tcommon\n  chest   x ray \n\n")
    assert read_entity_source(str(f)).phrases == [("metformin", "common"), ("chest x ray", "")]
    assert "not found" in read_entity_source(str(tmp_path / "nope.txt")).note
    f.write_text("\n")
    assert "no entities" in read_entity_source(str(f)).note


def speechy(seconds: float, pause_every: float, rng: np.random.Generator) -> np.ndarray:
    """Tones with 0.4 s of near-silence every `pause_every` seconds (where a good cut goes)."""
    t = np.arange(int(seconds * SR)) / SR
    wave = 0.3 * np.sin(2 * np.pi * 220 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
    wave[(t % pause_every) > pause_every - 0.4] = 0.0
    return (wave + 0.001 * rng.standard_normal(t.size)).astype(np.float32)


def test_cuts_fall_in_pauses_and_bound_the_pieces(tmp_path):
    path = tmp_path / "long.wav"
    sf.write(path, speechy(95.0, 7.0, np.random.default_rng(0)), SR)
    pieces = plan_pieces(str(path), 0.0, 95.0, chunk_seconds=20.0)
    assert pieces[0][0] == 0.0 and pieces[-1][1] == 95.0
    assert all(a2 == b1 for (_, b1), (a2, _) in zip(pieces, pieces[1:]))
    assert all(b - a <= 20.0 for a, b in pieces) and all(b - a >= 10.0 for a, b in pieces[:-1])
    for _, cut in pieces[:-1]:
        assert cut % 7.0 > 6.6, cut  # inside a 0.4 s pause
    assert plan_cuts(np.ones(100), 1.0, 20.0) == [(0.0, 1.0)]
    flat = plan_cuts(np.ones(6000), 60.0, 20.0)  # no pause anywhere: still bounded pieces
    assert all(b - a <= 20.0 for a, b in flat) and flat[-1][1] == 60.0


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpt")
    tok = build_tokenizer([t for t in TEXTS for _ in range(3)] + ["metformin helps."], vocab_size=120)
    torch.manual_seed(0)
    save_checkpoint(SpeechLM(SpeechLMConfig(**TINY), tok), tok, root / "ck")
    return root / "ck"


def test_evaluate_stage_decodes_long_audio_in_pieces_and_counts_skips(tmp_path, checkpoint):
    rng = np.random.default_rng(0)
    utts = []
    for i, (text, seconds) in enumerate([(TEXTS[0], 1.2), (TEXTS[1], 62.0), (TEXTS[2], 0.9), ("Too long.", 30.0)]):
        path = tmp_path / f"u{i}.wav"
        sf.write(path, speechy(seconds, 4.0, rng), SR)
        utts.append(utt(i, text, str(path), seconds))
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"not audio")
    utts.append(utt(9, "Gone.", str(broken), 1.0))
    utts.append(Utterance("train0", str(broken), 0.0, 1.0, SR, "s", "x", "x", "synth", "train"))
    write_records(utts, Utterance, tmp_path / "utterances.parquet")
    (tmp_path / "entities.txt").write_text("metformin\tcommon\nchest x ray\trare\n")
    cfg = EvaluateConfig(checkpoints=str(checkpoint), utterances=str(tmp_path / "utterances.parquet"),
                         entities=str(tmp_path / "entities.txt"), hypotheses=str(tmp_path / "eval/h.parquet"),
                         metrics=str(tmp_path / "metrics/eval.json"), report=str(tmp_path / "reports/evaluate.json"),
                         max_new_tokens=4, batch_size=3, chunk_seconds=20.0, max_duration=25.0, bootstrap=50,
                         progress=False, device="cpu")
    with pytest.raises(JstipError, match="chunk_seconds"):
        run(EvaluateConfig(**{**cfg.__dict__, "chunk_seconds": 0.0}))
    m = run(cfg)
    written = json.loads(Path(cfg.metrics).read_text())
    kept, rest = split_metrics(json.loads(json.dumps(m)), EVALUATE_METRICS)
    assert written == kept and json.loads(Path(cfg.report).read_text())["figures"] == rest
    assert set(written["eer_by_category"]["common"]) == {"eer", "eer_lo", "eer_hi", "instances"}
    assert (m["utterances"], m["decoded"], m["skipped"]) == (5, 2, 3)
    assert m["skipped_by_reason"] == {"too_long": 2, "audio_unreadable": 1}
    assert m["entity_instances"] == 1 and m["entity_instances_not_decoded"] == 1  # u1 (62 s) was skipped
    report = json.loads(Path(cfg.report).read_text())
    assert {s["utt_id"]: s["reason"].split(":")[0] for s in report["skipped"]} == {
        "u1": "too_long", "u3": "too_long", "u9": "audio_unreadable"}

    cfg.max_duration = 0.0  # no bound: the 62 s and 30 s recordings are decoded in pieces of at most 20 s
    m = run(cfg)
    assert (m["decoded"], m["skipped"], m["chunked_utterances"]) == (4, 1, 2)
    assert 4 <= m["pieces"] <= 2 * 92 / 20 + 2 and m["audio_seconds"] == pytest.approx(1.2 + 62 + 0.9 + 30, abs=0.01)
    hyps = pl.read_parquet(cfg.hypotheses)
    assert hyps["utt_id"].to_list() == ["u0", "u1", "u2", "u3"]
    assert hyps["reference"].to_list()[:3] == TEXTS  # references as written
    assert m["entity_instances"] == 2 and set(m["eer_by_category"]) == {"common", "rare"}
    assert m["ter"] is not None and m["wer_lo"] <= m["wer"] <= m["wer_hi"]
    report = json.loads(Path(cfg.report).read_text())
    assert set(report["chunked"]) == {"u1", "u3"} and report["categories"] == ["common", "rare"]
    assert [u["utt_id"] for u in report["utterances"]] == ["u0", "u1", "u2", "u3"]


def test_asr_prompt_follows_the_formats_and_renders_as_training_does():
    from manifests.formats import asr_prompt
    from trainer.decode import prompt_sample
    from trainer.render import render_sample
    from trainer.tokenizer import TokenIds

    u = utt(0, TEXTS[0], "a.wav", 40.0)
    piece = prompt_sample(u, start=30.0, end=40.0, sample_id="u0@1")
    assert piece.spans == asr_prompt(10.0) and piece.offset == 30.0 and piece.duration == 10.0
    tok = build_tokenizer(TEXTS * 3, vocab_size=120)
    ids = TokenIds(tok)
    from trainer.features import FrameSpec

    r = render_sample(piece, tok, ids, FrameSpec(), 250)
    assert r.input_ids[0] == ids.bos and r.input_ids[-1] == ids.of("<|asr|>")
    assert set(r.input_ids[1:-1]) == {ids.audio} and all(label == -100 for label in r.labels)
