"""`jstip init` and the repository's dvc.yaml: deps and outs follow params.yaml."""
import re
from pathlib import Path

import pytest
import yaml

from manifests.errors import JstipError
from pipeline.cli import STAGES, build_parser, main, make_config
from pipeline.project import CORPUS_GENERATORS, HEADER, init, is_repository, render_file

REPO = Path(__file__).resolve().parents[1]
CODE_DIRS = ("pipeline/", "aligners", "interleave", "trainer", "manifests/")


def _resolve(value, params):
    return re.sub(r"\$\{(\w+)\.(\w+)\}", lambda m: str(params[m.group(1)][m.group(2)]), value)


def _files(stage, params, skip_code=True):
    """A stage's data deps, outs, metrics and plots as the paths DVC will see."""
    out = {}
    for key in ("deps", "outs", "metrics", "plots"):
        entries = [e if isinstance(e, str) else next(iter(e)) for e in stage.get(key, [])]
        out[key] = sorted(_resolve(e, params) for e in entries if not (skip_code and e.startswith(CODE_DIRS)))
    out["params"] = stage.get("params")
    return out


def test_repository_dvc_yaml_is_the_one_jstip_init_writes():
    """The clone's dvc.yaml is generated from its params.yaml, as `jstip init` writes a project's:
    stale code deps or a hand edit fail here (regenerate: `jstip init` in the repository)."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    assert is_repository(REPO)
    assert (REPO / "dvc.yaml").read_text() == render_file(params, repository=True), \
        "dvc.yaml is not what `jstip init` writes from params.yaml: run `jstip init` in the repository"
    for stage in yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"].values():
        for entry in stage.get("deps", []):
            assert Path(REPO / entry).exists() or entry.startswith("${"), f"dep {entry} is neither code nor a param"


def test_an_optional_input_left_empty_in_the_clone_never_reaches_dvc(tmp_path):
    """Setting align.reference to '' in the clone and running `jstip init` gives a dvc.yaml without
    the empty dep (DVC answered an empty path with 'unexpected error'), keeping the code deps."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["align"]["reference"] = ""
    params["evaluate"]["entities"] = ""
    stages = yaml.safe_load(render_file(params, repository=True))["stages"]
    assert "${align.reference}" not in stages["align"]["deps"] and "aligners" in stages["align"]["deps"]
    assert "${evaluate.entities}" not in stages["evaluate"]["deps"]
    assert all(dep for stage in stages.values() for dep in stage.get("deps", []))


def test_init_writes_a_project_for_your_own_corpus(tmp_path):
    (tmp_path / "corpus").mkdir()
    done = init(str(tmp_path), {"prepare": {"corpus": "corpus"}})
    assert done["params.yaml"] == "written" and "dvc repro" in done["next"]
    params = yaml.safe_load((tmp_path / "params.yaml").read_text())
    assert set(params) == {section for verb, (_, _, section, _) in STAGES.items() if verb not in CORPUS_GENERATORS}
    assert params["prepare"]["corpus"] == "corpus" and params["align"]["reference"] == ""
    assert params["evaluate"]["entities"] == ""
    for verb, (_, _, section, _) in STAGES.items():  # every value has the type its stage expects
        if verb not in CORPUS_GENERATORS:
            make_config(verb, build_parser().parse_args([verb, "--params", str(tmp_path / "params.yaml")]))
    dvc = (tmp_path / "dvc.yaml").read_text()
    assert dvc.startswith(HEADER)
    stages = yaml.safe_load(dvc)["stages"]
    assert "${prepare.corpus}" in stages["prepare"]["deps"] and "demo_corpus" not in stages
    assert "${align.reference}" not in stages["align"]["deps"]  # empty: not a dep
    assert not any(d.startswith(CODE_DIRS) for s in stages.values() for d in s.get("deps", []))
    assert "${prepare.report}" in stages["prepare"]["outs"]  # cached: DVC's run-cache stays on

    params_text = (tmp_path / "params.yaml").read_text().replace("reference: ''", "reference: ref.parquet")
    (tmp_path / "params.yaml").write_text(params_text)
    assert init(str(tmp_path), {})["params.yaml"] == "kept"  # again: params kept, dvc.yaml follows them
    assert "${align.reference}" in yaml.safe_load((tmp_path / "dvc.yaml").read_text())["stages"]["align"]["deps"]
    with pytest.raises(JstipError, match="exists"):
        init(str(tmp_path), {"prepare": {"corpus": "other"}})
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    with pytest.raises(JstipError, match="not written by jstip init"):
        init(str(tmp_path), {})


def test_init_from_the_command_line(tmp_path, capsys):
    corpus = tmp_path / "elsewhere" / "list.csv"
    corpus.parent.mkdir()
    corpus.write_text("audio,text\n")
    assert main(["init", str(tmp_path / "proj"), "--corpus", str(corpus)]) == 0
    params = yaml.safe_load((tmp_path / "proj" / "params.yaml").read_text())
    assert params["prepare"]["corpus"] == str(corpus)  # outside the project: absolute
    assert "dvc init" in capsys.readouterr().out
