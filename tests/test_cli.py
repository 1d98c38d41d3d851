import json
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.cli import STAGES, build_parser, main

REPO = Path(__file__).resolve().parents[1]


def test_data_stages_and_cli_import_without_torch():
    code = ("import sys; sys.modules['torch'] = None\n"
            "import manifests, aligners, interleave, pipeline.cli, pipeline.stage_train, pipeline.stage_evaluate\n"
            "import pipeline.stage_align, pipeline.stage_interleave, pipeline.stage_prepare\n"
            "import interleave.inspect, interleave.stats, corpora.export, pipeline.interleave_build\n"
            "import pipeline.project, corpora.lists, corpora.lhotse_manifest, corpora.hf_parquet\n"
            "pipeline.cli.build_parser()")
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


def test_a_run_imports_only_its_own_stage():
    code = ("import sys; from pipeline.cli import build_parser\n"
            "args = build_parser('prepare').parse_args(['prepare', '--workers', '2'])\n"
            "assert args.workers == 2\n"
            "assert 'pipeline.stage_prepare' in sys.modules\n"
            "print(sorted(m for m in sys.modules if m.startswith('pipeline.stage_') or m in ('pandas', 'torch')))")
    loaded = subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, capture_output=True, text=True).stdout
    assert loaded.strip() == "['pipeline.stage_prepare']"


@pytest.mark.parametrize("verb", list(STAGES))
def test_every_stage_has_a_help_that_lists_its_options(verb, capsys):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args([verb, "--help"])
    assert exit_.value.code == 0
    assert "--params" in capsys.readouterr().out


def test_params_file_then_flags(tmp_path, capsys):
    (tmp_path / "p.yaml").write_text("prepare:\n  corpus: nowhere\n  test_fraction: 0.2\n")
    assert main(["prepare", "--params", str(tmp_path / "p.yaml"), "--corpus", str(tmp_path / "missing")]) == 2
    assert "missing does not exist" in capsys.readouterr().err
    (tmp_path / "p.yaml").write_text("prepare:\n  corpusx: nowhere\n")
    assert main(["prepare", "--params", str(tmp_path / "p.yaml")]) == 2
    assert "unknown options ['corpusx']" in capsys.readouterr().err


@pytest.mark.parametrize("text, message", [
    ("prepare:\n  test_fraction: abc\n", "prepare.test_fraction must be a number (float), got 'abc'"),
    ("prepare:\n  verify_audio: maybe\n", "prepare.verify_audio must be true or false, got 'maybe'"),
    ("align:\n  shard_size: 2.5\n", "align.shard_size must be an integer, got 2.5"),
    ("align:\n  shard_size: true\n", "align.shard_size must be an integer, got True"),
    ("interleave:\n  recipes: asr\n", "interleave.recipes must be a mapping of name: value, got 'asr'"),
    ("prepare:\n  test_fraction: .nan\n", "prepare.test_fraction must be a number (float), got nan"),
    ("align:\n  aligner: ctc\n", "has no `prepare:` section"),
    ("prepare: [1, 2\n", "is not valid YAML"),
])
def test_bad_params_are_one_line_errors_naming_key_and_type(tmp_path, capsys, text, message):
    (tmp_path / "p.yaml").write_text(text)
    verb = text.split(":")[0] if "section" not in message and "YAML" not in message else "prepare"
    assert main([verb, "--params", str(tmp_path / "p.yaml")]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err


def test_stages_read_params_yaml_of_the_working_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["prepare"]) == 2  # no params.yaml and no --corpus: never the demo corpus
    assert "prepare needs a corpus" in capsys.readouterr().err
    (tmp_path / "params.yaml").write_text("prepare:\n  corpus: mine.csv\n")
    assert main(["prepare"]) == 2
    assert "mine.csv does not exist" in capsys.readouterr().err
    assert main(["prepare", "--corpus", "flag.csv"]) == 2  # flags override the file
    assert "flag.csv does not exist" in capsys.readouterr().err
    (tmp_path / "params.yaml").write_text("align:\n  aligner: ctc\n")
    assert main(["prepare", "--corpus", "x"]) == 2
    assert "params.yaml has no `prepare:` section" in capsys.readouterr().err
    assert main(["prepare", "--params", "", "--corpus", "x"]) == 2  # '' reads no params file
    assert "x does not exist" in capsys.readouterr().err


def test_unknown_aligner_fails_before_touching_outputs(tmp_path, capsys):
    out = tmp_path / "alignments"
    out.mkdir()
    (out / "part-00000.parquet").write_bytes(b"earlier output")
    assert main(["align", "--aligner", "nope", "--out", str(out), "--metrics", str(tmp_path / "m.json")]) == 2
    assert "known aligners: pocketsphinx" in capsys.readouterr().err
    assert (out / "part-00000.parquet").exists()


def test_metrics_are_printed_as_json(tmp_path, capsys):
    assert main(["demo-corpus", "--out", str(tmp_path / "d"), "--n-utterances", "2", "--n-domain-texts", "1",
                 "--metrics", str(tmp_path / "m.json"), "--report", str(tmp_path / "r.json")]) == 0
    assert json.loads(capsys.readouterr().out)["utterances"] == 2


@pytest.mark.parametrize("verb", ["inspect", "stats", "export"])
def test_tools_have_help_with_positional_arguments(verb, capsys):
    from pipeline.cli import TOOLS

    assert verb in TOOLS
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args([verb, "--help"])
    assert exit_.value.code == 0
    assert {"inspect": "SAMPLE_ID", "stats": "DIR", "export": "DIR"}[verb] in capsys.readouterr().out


def test_interleave_recipes_come_from_params_and_inline(tmp_path):
    from pipeline.cli import make_config

    (tmp_path / "p.yaml").write_text("interleave:\n  recipe: mine\n  recipes:\n    mine: asr:1,text:3\n")
    args = build_parser().parse_args(["interleave", "--params", str(tmp_path / "p.yaml")])
    from pipeline.stage_interleave import recipe_weights

    assert recipe_weights(make_config("interleave", args)) == {"asr": 0.25, "text": 0.75}
    args = build_parser().parse_args(["interleave", "--recipe", "asr:1,interleave_mixed:1"])
    assert recipe_weights(make_config("interleave", args)) == {"asr": 0.5, "interleave_mixed": 0.5}
