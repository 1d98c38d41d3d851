"""Exporters, checked by loading their output with the real libraries (lhotse; json for NeMo)."""
import json

import pytest

from pipeline.exporters import export
from pipeline.stage_interleave import InterleaveConfig, run
from tests.interleave_corpus import make_corpus
from tests.test_interleave_stage import spoken_module  # noqa: F401  (fixture)


@pytest.fixture(scope="module")
def shards(tmp_path_factory, spoken_module):  # noqa: F811
    root = tmp_path_factory.mktemp("export")
    paths = make_corpus(root, spoken_module)
    run(InterleaveConfig(**paths, out=str(root / "samples"), metrics=str(root / "m.json"),
                         recipe="asr:2,interleave_mixed:2,tts_pair:1,text:1", tts_voices="en-us"))
    return root, paths


def test_lhotse_cutset_loads_with_word_alignments(shards):
    from lhotse import CutSet

    root, paths = shards
    report = export(str(root / "samples"), "lhotse", str(root / "cuts.jsonl.gz"), paths["alignments"])
    assert report["exported"] == 10 and report["skipped"] == {"text: no audio file": 2}
    cuts = CutSet.from_file(root / "cuts.jsonl.gz").to_eager()
    assert len(cuts) == 10
    cut = cuts["u0:asr"]
    words = cut.supervisions[0].alignment["word"]
    assert " ".join(w.symbol for w in words) == cut.supervisions[0].text == "the patient was given metformin twice a day"
    assert all(0 <= w.start and w.end <= cut.recording.duration + 1e-6 for w in words)
    assert cut.custom["kind"] == "asr" and cut.custom["spans"][0]["modality"] == "speech"
    audio = cut.load_audio()
    assert audio.shape[1] == pytest.approx(cut.duration * 16000, abs=2)
    tts = [c for c in cuts if c.custom["kind"] == "tts_pair"]
    assert len(tts) == 2 and all(c.supervisions[0].alignment["word"] for c in tts)
    assert tts[0].load_audio().shape[1] > 16000 * 0.5


def test_nemo_manifest_has_nemo_keys(shards):
    root, paths = shards
    report = export(str(root / "samples"), "nemo", str(root / "nemo.jsonl"), paths["alignments"])
    lines = [json.loads(line) for line in (root / "nemo.jsonl").read_text().splitlines()]
    assert len(lines) == report["exported"] == 10
    for line in lines:
        assert {"audio_filepath", "duration", "text", "offset"} <= set(line)
        assert line["duration"] > 0 and line["text"] and line["audio_filepath"]
    asr = next(x for x in lines if x["sample_id"] == "u1:asr")
    assert asr["text"].startswith("blood pressure rose to one hundred and forty")
