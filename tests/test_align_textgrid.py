"""Reading MFA TextGrids and CTM files, matching them to transcripts, importing them as a manifest."""
from pathlib import Path

import pytest
from praatio import textgrid
from praatio.utilities.constants import Interval

from aligners import AlignmentFailed, check_aligner
from aligners.imported import ImportedAligner
from aligners.textgrid import match_transcript, read_ctm, read_textgrid
from manifests.errors import JstipError
from manifests.schema import Utterance, WordSpan
from pipeline.textnorm import normalize

SAMPLE = Path(__file__).resolve().parents[2] / "shared/data/mfa-sample"


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
    matched = match_transcript(words, ["hello", "metformin", "adif"])
    assert [(w.word, w.start, w.end) for w in matched] == [("hello", 0.3, 0.6), ("metformin", 0.7, 1.1), ("adif", 1.1, 1.4)]


def test_speaker_prefixed_tiers_and_mismatches(tmp_path):
    write_grid(tmp_path / "b.TextGrid", [(0.1, 0.5, "good"), (0.5, 0.9, "day")], [(0.1, 0.5, "G")], prefix="spk1 - ")
    words, _ = read_textgrid(tmp_path / "b.TextGrid")
    assert [w.word for w in words] == ["good", "day"]
    with pytest.raises(AlignmentFailed, match="'night'"):
        match_transcript(words, ["good", "night"])
    with pytest.raises(AlignmentFailed, match="extra words"):
        match_transcript(words, ["good"])
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
    assert result[1].status == "failed" and "not in the imported" in result[1].reason
    ctm = tmp_path / "a.ctm"
    ctm.write_text("u1 1 0.20 0.30 one 0.9\nu1 1 0.60 0.30 two\nu2 1 0.1 0.2 three\n")
    assert read_ctm(ctm)["u1"][1] == WordSpan("two", 0.6, 0.9, 0.0)
    result = ImportedAligner(source=str(ctm)).align_utterances([utt("u1", "one two"), utt("u2", "four")])
    assert result[0].status == "ok" and result[0].words[0].score == 0.9
    assert result[1].status == "failed" and "'four'" in result[1].reason
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
    matched = match_transcript(words, transcript)
    assert [w.word for w in matched] == transcript
    assert all(a.end <= b.start + 1e-9 for a, b in zip(matched, matched[1:]))
    assert len(phones) > len(words) and "spn" in {p.phone for p in phones}
    words, _, transcript = load("acoustic_corpus")  # MFA was run on a slightly different transcript
    with pytest.raises(AlignmentFailed, match="'uh'"):
        match_transcript(words, transcript)


def test_extra_bracketed_annotations_are_left_out_but_extra_words_are_not():
    spans = [WordSpan("saying", 0.0, 0.4), WordSpan("[adif]", 0.4, 0.6), WordSpan("bunch", 0.6, 0.9),
             WordSpan("<vocnoise>", 0.9, 1.2)]
    matched = match_transcript(spans, ["saying", "bunch"])  # normalize() dropped the annotations
    assert [(w.word, w.start) for w in matched] == [("saying", 0.0), ("bunch", 0.6)]
    assert [w.word for w in match_transcript(spans, ["saying", "adif", "bunch", "vocnoise"])][1] == "adif"
    with pytest.raises(AlignmentFailed, match="extra words"):
        match_transcript([WordSpan("a", 0, 1), WordSpan("<unk>", 1, 2)], ["a"])  # an unknown word is a word
