"""Reading MFA TextGrids and CTM files, matching them to transcripts, importing them as a manifest."""
from pathlib import Path

import numpy as np
import pytest
from praatio import textgrid
from praatio.utilities.constants import Interval

from aligners import AlignmentFailed, check_aligner
from aligners.imported import ImportedAligner
from aligners.textgrid import match_transcript, read_ctm, read_textgrid
from manifests.errors import JstipError
from manifests.schema import Utterance, WordSpan
from corpora.textnorm import normalize

# the team's real-speech sample: `shared/` beside the checkout (or inside it, or beside a worktree's parent)
SAMPLE = next((p / "shared/data/mfa-sample" for p in Path(__file__).resolve().parents[1:4]
               if (p / "shared/data/mfa-sample").is_dir()), Path("shared/data/mfa-sample"))


def write_grid(path, words, phones, prefix=""):
    grid = textgrid.Textgrid()
    end = max(e for _, e, _ in words) + 0.5
    for name, entries in (("words", words), ("phones", phones)):
        grid.addTier(textgrid.IntervalTier(prefix + name, [Interval(*e) for e in entries], 0, end))
    grid.save(str(path), format="long_textgrid", includeBlankSpaces=True)


def utt(utt_id, text):
    return Utterance(utt_id, "", 0.0, 3.0, 16000, "s", text, text, "c", "train")


def test_reads_mfa_tiers_skips_silence_and_maps_unknown_words(tmp_path):
    write_grid(tmp_path / "a.TextGrid", [(0.3, 0.6, "hello"), (0.7, 1.1, "<unk>"), (1.1, 1.4, "[adif]")],
               [(0.3, 0.4, "HH"), (0.4, 0.6, "AH0"), (0.7, 1.1, "spn"), (1.1, 1.4, "spn")])
    words, phones = read_textgrid(tmp_path / "a.TextGrid")
    assert [w.word for w in words] == ["hello", "<unk>", "[adif]"]  # the blank 0..0.3 is silence, not a word
    assert phones[0].phone == "HH" and len(phones) == 4
    matched = match_transcript(words, ["hello", "metformin", "adif"]).spans
    assert [(w.word, w.start, w.end) for w in matched] == [("hello", 0.3, 0.6), ("metformin", 0.7, 1.1), ("adif", 1.1, 1.4)]


def test_speaker_prefixed_tiers_and_mismatches(tmp_path):
    write_grid(tmp_path / "b.TextGrid", [(0.1, 0.5, "good"), (0.5, 0.9, "day")], [(0.1, 0.5, "G")], prefix="spk1 - ")
    words, _ = read_textgrid(tmp_path / "b.TextGrid")
    assert [w.word for w in words] == ["good", "day"]
    with pytest.raises(AlignmentFailed, match="'night'") as failure:
        match_transcript(words, ["good", "night"])  # a substitution: one dropped + one extra, over the 1 tolerated
    assert failure.value.category == "transcript_mismatch"
    with pytest.raises(AlignmentFailed, match="extra words"):
        match_transcript(words, ["good"], max_unmatched=0)
    assert match_transcript(words, ["good"]).note().startswith("partial: extra words")
    bad = tmp_path / "c.TextGrid"
    bad.write_text("not a textgrid")
    with pytest.raises(JstipError, match="c.TextGrid"):
        read_textgrid(bad)


def test_import_from_textgrids_and_ctm_records_what_is_missing(tmp_path):
    (tmp_path / "grids" / "spk").mkdir(parents=True)
    write_grid(tmp_path / "grids" / "spk" / "u1.TextGrid", [(0.2, 0.5, "one"), (0.6, 0.9, "two")], [(0.2, 0.5, "W")])
    result = ImportedAligner(source=str(tmp_path / "grids")).align_utterances(
        [utt("u1", "one two"), utt("u2", "three"), utt("u3", "")])
    assert result[0].status == "ok" and [w.word for w in result[0].words] == ["one", "two"] and result[0].phones
    assert result[1].status == "failed" and result[1].reason.startswith("not_in_source: ")
    ctm = tmp_path / "a.ctm"
    ctm.write_text("u1 1 0.20 0.30 one 0.9\nu1 1 0.60 0.30 two\nu2 1 0.1 0.2 three\n")
    assert read_ctm(ctm)["u1"][1] == WordSpan("two", 0.6, 0.9, 0.0)
    result = ImportedAligner(source=str(ctm)).align_utterances([utt("u1", "one two"), utt("u2", "four")])
    assert result[0].status == "ok" and result[0].words[0].score == 0.9
    assert result[1].status == "failed" and "'four'" in result[1].reason
    assert result[1].reason.startswith("transcript_mismatch: ")
    with pytest.raises(JstipError, match="--source"):
        check_aligner("import", source=str(tmp_path / "nowhere"))


def test_mfa_without_the_executable_says_how_to_install_it(tmp_path, monkeypatch, capsys):
    from pipeline.cli import main

    monkeypatch.setenv("PATH", str(tmp_path))  # no `mfa` here
    code = main(["align", "--aligner", "mfa", "--utterances", str(tmp_path / "u.parquet"), "--out", str(tmp_path / "a")])
    assert code == 2
    assert "conda-forge" in capsys.readouterr().err


def test_mfa_command_line_carries_the_options(tmp_path):
    from aligners.mfa import MfaAligner

    fake = tmp_path / "mfa"
    fake.write_text("#!/bin/sh\nexit 1\n")
    fake.chmod(0o755)
    aligner = MfaAligner(executable=str(fake), beam=10, retry_beam=40, single_speaker=True, jobs=3)
    cmd = aligner.command(Path("c"), Path("o"))
    assert cmd[:6] == [str(fake), "align", "c", "english_us_arpa", "english_us_arpa", "o"]
    assert ["-j", "3"] == cmd[6:8] and "--clean" in cmd and "--single_speaker" in cmd
    assert cmd[cmd.index("--beam") + 1] == "10" and cmd[cmd.index("--retry_beam") + 1] == "40"


@pytest.mark.skipif(not SAMPLE.is_dir(), reason="the team's MFA sample is not present")
def test_reads_real_mfa_output_and_matches_its_transcripts():
    def load(name):
        words, phones = read_textgrid(SAMPLE / f"{name}.mfa.TextGrid")
        return words, phones, normalize((SAMPLE / f"{name}.lab").read_text()).split()

    words, phones, transcript = load("cold_corpus3")  # holds [adif] and <vocnoise>, phones spn
    match = match_transcript(words, transcript)
    assert [w.word for w in match.spans] == transcript and match.note() == ""
    assert all(a.end <= b.start + 1e-9 for a, b in zip(match.spans, match.spans[1:]))
    assert len(phones) > len(words) and "spn" in {p.phone for p in phones}
    # MFA was run on a slightly different transcript: one "uh" fewer, "word" for "words".
    # The matched words keep their spans; the "uh" without one is left out and noted.
    words, _, transcript = load("acoustic_corpus")
    match = match_transcript(words, transcript)
    assert len(match.spans) == len(transcript) - 1 and match.missing == ["'uh' #39"]
    assert match.relabelled == ["'word'->'words'"] and "words" in [w.word for w in match.spans]
    assert [w.word for w in match.spans] == transcript[:38] + transcript[39:]
    assert match.note().startswith("partial: transcript words without a span: 'uh' #39")
    words, _, transcript = load("cold_corpus")  # MFA's output holds an "uh" the transcript lacks
    match = match_transcript(words, transcript)
    assert [w.word for w in match.spans] == transcript and match.extra == ["'uh'"]


def test_extra_bracketed_annotations_are_left_out_but_extra_words_are_not():
    spans = [WordSpan("saying", 0.0, 0.4), WordSpan("[adif]", 0.4, 0.6), WordSpan("bunch", 0.6, 0.9),
             WordSpan("<vocnoise>", 0.9, 1.2)]
    matched = match_transcript(spans, ["saying", "bunch"])  # normalize() dropped the annotations
    assert [(w.word, w.start) for w in matched.spans] == [("saying", 0.0), ("bunch", 0.6)] and not matched.note()
    assert [w.word for w in match_transcript(spans, ["saying", "adif", "bunch", "vocnoise"]).spans][1] == "adif"
    with pytest.raises(AlignmentFailed, match="extra words"):  # an unknown word is a word
        match_transcript([WordSpan("a", 0, 1), WordSpan("<unk>", 1, 2)], ["a"], max_unmatched=0)


def test_imported_alignment_for_another_transcript_fails_but_one_dropped_filler_is_kept(tmp_path):
    words = "so we went to the clinic on monday and the doctor said it was fine".split()
    grid = [(0.1 + 0.3 * i, 0.35 + 0.3 * i, w) for i, w in enumerate(words)]
    (tmp_path / "g").mkdir()
    write_grid(tmp_path / "g" / "u1.TextGrid", grid, [(0.1, 0.2, "S")])
    write_grid(tmp_path / "g" / "u2.TextGrid", grid, [(0.1, 0.2, "S")])
    (tmp_path / "g" / "u3.TextGrid").write_text("garbage")  # one unreadable file fails one utterance only
    with_uh = " ".join(words[:4] + ["uh"] + words[4:])
    other = "the weather was cold and wet all week long so we stayed at home mostly"
    result = ImportedAligner(source=str(tmp_path / "g")).align_utterances(
        [utt("u1", with_uh), utt("u2", other), utt("u3", "so")])
    assert result[0].status == "ok" and [w.word for w in result[0].words] == words
    assert result[0].reason == "partial: transcript words without a span: 'uh' #5"
    assert result[1].status == "failed" and result[1].reason.startswith("transcript_mismatch: ")
    assert result[2].status == "failed" and result[2].reason.startswith("source_unreadable: ")


def test_mfa_staging_names_are_injective_and_results_map_back_by_position(tmp_path):
    """Ids with dots, `a/b` against `a_b`, odd speakers: each utterance gets its own file and its own result.

    A stand-in `mfa` (a script: the real one needs conda's Kaldi) writes, for every staged .lab,
    a TextGrid whose words are that .lab's words, timed by the file's position in the corpus.
    """
    import sys

    from aligners.mfa import MfaAligner, staging_names
    from manifests.audio import write_audio

    ids = ["lib.001", "lib.002", "a/b", "a_b", "a b", "ünï.cøde", "x" * 200, "x" * 200 + "y"]
    utts = [Utterance(i, str(tmp_path / "x.wav"), 0.0, 1.0, 16000, spk, f"w{n} {'z' * (n + 1)}",
                      f"w{n} {'z' * (n + 1)}", "c", "train")
            for n, (i, spk) in enumerate(zip(ids, ["s/1", "s_1", "s.1", "", "s/1", "s_1", "s.1", ""]))]
    names = staging_names(utts)
    assert len(set(names)) == len(names) and len({stem for _, stem in names}) == len(names)
    assert all("." not in d + s and "/" not in d + s and len(s) < 80 for d, s in names)
    assert len({d for d, _ in names}) == 4  # one directory per distinct speaker, "" and "s/1" apart from "s_1"
    write_audio(np.zeros(16000, np.float32) + 0.01, tmp_path / "x.wav", 16000)
    fake = tmp_path / "mfa"
    fake.write_text(f"#!{sys.executable}\n" + FAKE_MFA)
    fake.chmod(0o755)
    result = MfaAligner(executable=str(fake)).align_utterances(utts)
    assert [r.utt_id for r in result] == ids and all(r.status == "ok" for r in result)
    assert [" ".join(w.word for w in r.words) for r in result] == [u.norm_text for u in utts]
    assert len({r.words[0].start for r in result}) == len(ids)  # each got its own file's grid


FAKE_MFA = """
import sys
from pathlib import Path
from praatio import textgrid
from praatio.utilities.constants import Interval
corpus, out = Path(sys.argv[2]), Path(sys.argv[5])
for k, lab in enumerate(sorted(corpus.rglob("*.lab"))):
    words = lab.read_text().split()
    grid = textgrid.Textgrid()
    start = 0.01 * k
    entries = [Interval(start + 0.2 * i, start + 0.2 * i + 0.15, w) for i, w in enumerate(words)]
    grid.addTier(textgrid.IntervalTier("words", entries, 0, 5.0))
    target = out / lab.parent.name / (lab.stem + ".TextGrid")
    target.parent.mkdir(parents=True, exist_ok=True)
    grid.save(str(target), format="long_textgrid", includeBlankSpaces=True)
"""
