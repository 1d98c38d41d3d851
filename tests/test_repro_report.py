"""`jstip report`, the experiment definition and the queue plan, on a hand-made `dvc exp show --json`.

The JSON has the shape DVC 3 writes (checked against a real `dvc exp show --json` of a queued
run): baselines with `experiments` groups of `revs`, params and metrics per file under `data`.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy import stats

from manifests.errors import JstipError
from pipeline.cli import main
from evaluation.experiment import flatten, load, queue_commands, run_settings, stage_flags
from evaluation.report import assign, claims, parse_exp_show, write_report
from evaluation.bootstrap import paired_bootstrap
from evaluation.seeds import paired_seed_difference, summarize

REPO = Path(__file__).resolve().parents[1]
EXPERIMENT = REPO / "experiments" / "repro" / "experiment.yaml"
PARAMS = yaml.safe_load((REPO / "experiments" / "repro" / "params.yaml").read_text())
PFILE = "experiments/repro/params.yaml"


def _unflatten(flat: dict) -> dict:
    tree: dict = {}
    for key, value in flat.items():
        node = tree
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return tree


def _entry(name: str, sets: dict, metrics: dict | None, state: str = "success", rev: str = "") -> dict:
    params = {**flatten(PARAMS), **sets}
    data = {"rev": rev or name, "timestamp": "2026-12-01T07:30:56",
            "params": {PFILE: {"data": _unflatten(params)}, "params.yaml": {"data": {"train": {"seed": 99}}}},
            "metrics": ({"experiments/repro/metrics/eval.json": {"data": metrics["eval"]},
                         "experiments/repro/metrics/probe.json": {"data": metrics["probe"]},
                         "metrics/eval.json": {"data": {"wer": 0.99}}} if metrics else
                        {"experiments/repro/metrics/eval.json": {"error": {"type": "FileNotFoundError", "msg": "x"}}})}
    return {"revs": [{"rev": rev or f"{abs(hash(name)):040x}"[:40], "name": name, "data": data,
                      "error": None, "experiments": None}],
            "executor": {"state": state, "name": "dvc-task", "local": None}, "name": name}


def _metrics(eer_rare: float, mc_t: float = 0.5, mc_s: float = 0.4) -> dict:
    """Metrics in the shape `jstip evaluate` and `jstip probe` write them."""
    return {"eval": {"eer": 0.2, "eer_lo": 0.15, "eer_hi": 0.25, "wer": 0.15, "ter": 0.2,
                     "eer_by_category": {"rare": {"eer": eer_rare, "instances": 500},
                                         "common": {"eer": 0.1, "instances": 500}}},
            "probe": {"mcq_t2t": mc_t, "mcq_s2t": mc_s, "mcq_gap": mc_s - mc_t, "qa_t2t": 0.3, "qa_s2t": 0.1,
                      "qa_gap": -0.2}}


def _seeds(s: int) -> dict:
    return {"interleave.seed": s, "train.seed": s}


ASR_ONLY = [0.40, 0.44, 0.42]
ASR_IL = [0.30, 0.35, 0.31]


def exp_show() -> list[dict]:
    groups = []
    for s, v in enumerate(ASR_ONLY):
        groups.append(_entry(f"asr_only-s{s}", {"interleave.recipe": "asr_only", **_seeds(s)}, _metrics(v)))
    for s, v in enumerate(ASR_IL):
        groups.append(_entry(f"asr_il-s{s}", {"interleave.recipe": "asr_il", **_seeds(s)}, _metrics(v, 0.5, 0.5)))
    groups.append(_entry("seg-sil-s0", {"interleave.recipe": "il_segment_silence", **_seeds(0)}, _metrics(0.33)))
    groups.append(_entry("asr_text-s0", {"interleave.recipe": "asr_text", **_seeds(0)}, None, state="failed"))
    groups.append(_entry("asr_text-s1", {"interleave.recipe": "asr_text", **_seeds(1)}, None, state="queued"))
    groups.append(_entry("odd-s0", {"interleave.recipe": "asr_only", "train.lr": 0.1, **_seeds(0)}, _metrics(0.9)))
    baseline = {"rev": "a" * 40, "name": "main", "data": {"params": {PFILE: {"data": PARAMS}}, "metrics": {}},
                "error": None, "experiments": groups}
    workspace = {"rev": "workspace", "name": None, "data": {"params": {PFILE: {"data": PARAMS}}, "metrics": {}},
                 "error": None, "experiments": None}
    return [workspace, baseline]


def _t_half(values: list[float]) -> float:
    return stats.t.ppf(0.975, len(values) - 1) * np.std(values, ddof=1) / math.sqrt(len(values))


def test_report_tables_claims_and_plots_from_exp_show(tmp_path):
    exp = load(EXPERIMENT)
    runs = parse_exp_show(exp_show(), exp)
    assert len(runs) == 10
    assign(exp, runs)
    by_name = {r.name: r for r in runs}
    assert by_name["asr_il-s2"].row.row_id == "asr_il" and by_name["asr_il-s2"].seed == 2
    assert by_name["seg-sil-s0"].row.row_id == "segment_il_sil"
    assert by_name["odd-s0"].row is None  # a knob no row changes: not silently put under asr_only
    assert by_name["asr_text-s0"].row is None and by_name["asr_text-s1"].row is None
    write_report(exp, runs, tmp_path, list(exp.tables))

    md = (tmp_path / "tables.md").read_text()
    mean, half = 100 * np.mean(ASR_ONLY), 100 * _t_half(ASR_ONLY)
    asr_only_line = next(line for line in md.splitlines() if line.startswith("| ASR-only |"))
    assert f"{mean:.1f} ± {half:.1f}" in asr_only_line and "| 3/3 |" in asr_only_line and "7.97" in asr_only_line
    t3_line = next(line for line in md.splitlines() if line.startswith("| ASR only (= asr_only) |"))
    assert f"{mean:.1f} ± {half:.1f}" in t3_line  # Table III repeats Table I's runs
    gap = next(line for line in md.splitlines() if line.startswith("| +Interleave |"))
    assert "0.0 ± 0.0" in gap  # MC gap of asr_il: 50 - 50 in every seed
    for reason in ("odd-s0", "params match no row", "asr_text-s0", "failed", "asr_text-s1", "queued"):
        assert reason in md

    claims = {(c["a"], c["b"], c["metric"]): c for c in
              __import__("csv").DictReader((tmp_path / "claims.csv").open())}
    c = claims[("asr_only", "asr_il", "eer_rare")]
    diffs = [100 * (b - a) for a, b in zip(ASR_ONLY, ASR_IL)]
    assert float(c["diff"]) == pytest.approx(np.mean(diffs)) and c["seeds_b_better"] == "3" and c["seeds"] == "3"
    assert float(c["high"]) < 0  # all three seeds lower: the interval excludes 0
    assert claims[("asr_text", "asr_text_il", "eer_rare")]["seeds"] == "0"

    runs_csv = (tmp_path / "runs.csv").read_text().splitlines()
    assert len(runs_csv) == 11  # every run is listed, matched or not
    for png in ("eer.png", "gap.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_cell_over_fewer_runs_than_its_row_says_so(tmp_path):
    """Probes added after a row's first runs: the cell is over the runs that have them, and says how many."""
    exp = load(EXPERIMENT)
    groups = exp_show()
    for group in groups[1]["experiments"]:
        if group["name"] == "asr_only-s2":
            group["revs"][0]["data"]["metrics"].pop("experiments/repro/metrics/probe.json")
    runs = parse_exp_show(groups, exp)
    assign(exp, runs)
    write_report(exp, runs, tmp_path, ["table1"])
    line = next(x for x in (tmp_path / "tables.md").read_text().splitlines() if x.startswith("| ASR-only |"))
    cells = [c.strip() for c in line.split("|")]
    assert cells[2] == "3/3" and "(" not in cells[3]  # EER rare over all three runs
    assert "50.0 ± 0.0 (2 of 3)" in cells  # MC letter T2T: only two runs have probes


def test_report_preset_selects_its_own_runs(tmp_path):
    exp = load(EXPERIMENT)
    gpu = exp.preset("gpu")
    data = exp_show()
    data[1]["experiments"] = [_entry("asr_only-gpu-s0", {**gpu, "interleave.recipe": "asr_only", **_seeds(0)},
                                     _metrics(0.2))]
    for preset, expected in (("cpu", None), ("gpu", "asr_only")):
        runs = parse_exp_show(data, exp)
        assign(exp, runs, preset)
        assert (runs[0].row.row_id if runs[0].row else None) == expected


def _evaluate_report(misses: dict[str, dict[str, int]]) -> dict:
    """A `jstip evaluate` report's per-utterance part: 40 utterances with one rare and one common entity each."""
    return {"utterances": [{"utt_id": f"u{i:02d}", "entities": 2,
                            "entities_missed": ["x"] * (misses["rare"].get(i, 0) + misses["common"].get(i, 0)),
                            "by_category": {"rare": [1, misses["rare"].get(i, 0)], "common": [1, misses["common"].get(i, 0)]}}
                           for i in range(40)]}


def test_claims_add_a_paired_bootstrap_over_test_utterances(tmp_path):
    exp = load(EXPERIMENT)
    runs = parse_exp_show(exp_show(), exp)
    assign(exp, runs)
    reports = {}
    for r in runs:  # asr_only misses rare entities in utterances 0-19, asr_il in 0-9; common ones alike
        if r.row is not None and r.row.row_id in ("asr_only", "asr_il"):
            n = 20 if r.row.row_id == "asr_only" else 10
            reports[r.rev] = _evaluate_report({"rare": {i: 1 for i in range(n)}, "common": {i: 1 for i in range(5)}})
    write_report(exp, runs, tmp_path, list(exp.tables), plots=False, reader=reports.get)
    claims = {(c["a"], c["b"], c["metric"]): c for c in __import__("csv").DictReader((tmp_path / "claims.csv").open())}
    rare = claims[("asr_only", "asr_il", "eer_rare")]
    assert float(rare["utt_diff"]) == pytest.approx(100 * (10 - 20) / 40)  # pooled over 3 seeds each, in %
    assert float(rare["utt_high"]) < 0 and float(rare["utt_p_not_better"]) < 0.01 and rare["utt_runs_b"] == "3"
    common = claims[("asr_only", "asr_il", "eer_common")]
    assert float(common["utt_diff"]) == 0 and float(common["utt_low"]) <= 0 <= float(common["utt_high"])
    assert claims[("asr_only", "asr_il", "mc_gap")]["utt_diff"] == ""  # not an entity error rate
    assert claims[("asr_text", "asr_text_il", "eer_rare")]["utt_diff"] == ""  # no finished runs
    assert "bootstrap" in (tmp_path / "tables.md").read_text()


def test_the_bootstrap_pools_only_the_seeds_both_rows_have():
    """A row with one seed against a row with three: both sides of the bootstrap are that seed's runs."""
    exp = load(EXPERIMENT)
    runs = parse_exp_show(exp_show(), exp)
    assign(exp, runs)
    runs = [r for r in runs if not (r.row is not None and r.row.row_id == "asr_il" and r.seed != 0)]
    reports = {}
    for r in runs:  # asr_only's seed 0 misses 5 rare entities, its seeds 1-2 miss 30; asr_il's seed 0 misses 10
        if r.row is not None and r.row.row_id in ("asr_only", "asr_il"):
            n = 10 if r.row.row_id == "asr_il" else (5 if r.seed == 0 else 30)
            reports[r.rev] = _evaluate_report({"rare": {i: 1 for i in range(n)}, "common": {}})
    rare = next(c for c in claims(exp, runs, reader=reports.get) if (c["a"], c["b"], c["metric"]) == ("asr_only", "asr_il", "eer_rare"))
    assert rare["seeds"] == 1 and rare["utt_runs_a"] == rare["utt_runs_b"] == 1
    assert rare["utt_diff"] == pytest.approx(100 * (10 - 5) / 40)


def test_report_command_reads_a_saved_exp_show(tmp_path, capsys):
    saved = tmp_path / "exp.json"
    saved.write_text(json.dumps(exp_show()))
    assert main(["report", "--experiment", str(EXPERIMENT), "--exp-json", str(saved), "--out", str(tmp_path / "r"),
                 "--tables", "table1", "--no-plots", "--no-utterance-bootstrap"]) == 0
    assert json.loads(capsys.readouterr().out)["in_tables"] == 7
    assert "Table III" not in (tmp_path / "r" / "tables.md").read_text()
    saved.write_text("{not json")
    assert main(["report", "--experiment", str(EXPERIMENT), "--exp-json", str(saved), "--out", str(tmp_path / "r"),
                 "--no-utterance-bootstrap"]) == 2


def test_queue_plan_covers_every_runnable_row_and_seed_once():
    exp = load(EXPERIMENT)
    table1 = queue_commands(exp, ["table1"], [0, 1, 2])
    runnable = [r for r in exp.rows if r.table == "table1" and not r.pending and not r.ref]
    assert len(table1) == 3 * len(runnable) and len(runnable) >= 8
    names = [c[c.index("--name") + 1] for c in table1]
    assert len(set(names)) == len(names) and "asr_only-s2" in names
    assert all(c[:4] == ["dvc", "exp", "run", "--queue"] and c[-1] == "dvc.yaml" for c in table1)
    with_pending = queue_commands(exp, ["table1"], [0], include_pending=True)
    assert any("--name" in c and "best-s0" in c for c in with_pending)
    # Table III's rows that repeat Table I queue nothing again
    both = queue_commands(exp, ["table1", "table3"], [0])
    assert len(both) == len({tuple(c) for c in both})
    assert not any("t3_asr_only-s0" in c for c in both)
    gpu = queue_commands(exp, ["table1"], [0], preset="gpu")
    assert "pretrain/lm.yaml:train.lm_layers=16" in " ".join(gpu[0]) and "train.context=8192" in " ".join(gpu[0])
    assert gpu[0][gpu[0].index("--name") + 1] == "asr_only-gpu-s0"
    # a part of the queue: some rows, some seeds; a row id not in the tables is refused by name
    part = queue_commands(exp, ["table1"], [1, 2], only_rows=["asr_text", "asr_text_il"])
    assert sorted(c[c.index("--name") + 1] for c in part) == ["asr_text-s1", "asr_text-s2", "asr_text_il-s1", "asr_text_il-s2"]
    with pytest.raises(JstipError, match="word_il"):
        queue_commands(exp, ["table1"], [0], only_rows=["word_il"])


def test_dvc_reads_every_queued_setting_as_the_one_value_the_row_sets():
    """DVC parses `-S` with Hydra, where `a,b` is a sweep: an inline mixture must reach params.yaml whole."""
    parser = pytest.importorskip("hydra.core.override_parser.overrides_parser").OverridesParser.create()
    exp = load(EXPERIMENT)
    commands = queue_commands(exp, list(exp.tables), [0])
    assert any("tts_pair:13" in " ".join(c) for c in commands)  # the row with an inline mixture is queued
    for argv in commands:
        for i, arg in enumerate(argv):
            if arg != "--set-param":
                continue
            override = parser.parse_overrides([argv[i + 1]])[0]
            assert not override.is_sweep_override(), argv[i + 1]
            key = override.key_or_group
            wanted = run_settings(exp, argv[argv.index("--name") + 1].rsplit("-s", 1)[0], 0)[key]
            assert override.value() == wanted, (key, override.value(), wanted)


def test_a_run_outside_the_queue_gets_each_stage_its_flags(tmp_path):
    """rerun_row.sh runs a row's stages itself: every runnable row's settings become flags its stages take."""
    from pipeline.cli import build_parser

    exp = load(EXPERIMENT)
    for row in (r for r in exp.rows if not r.ref and not r.pending):
        flags = stage_flags(run_settings(exp, row.row_id, 1))
        assert flags["interleave"][-2:] == ["--seed", "1"] and flags["train"][-2:] == ["--seed", "1"]
        for stage, argv in flags.items():
            if argv:
                args = vars(build_parser(stage).parse_args([stage, *argv]))
                for flag, value in zip(argv[::2], argv[1::2]):
                    assert str(args[flag[2:].replace("-", "_")]).lower() == value.lower(), (row.row_id, flag)
    jitter = stage_flags(run_settings(exp, "word_j050", 0))
    assert jitter["align"] == ["--aligner", "import", "--source", "data/world/reference_jitter050.ctm"]
    assert stage_flags(run_settings(exp, "asr_il", 2))["align"] == []
    with pytest.raises(JstipError, match="runs of row word_il"):
        run_settings(exp, "word_hmm", 0)
    entity = stage_flags(run_settings(exp, "mixed_entity", 0))["interleave"]
    assert entity[entity.index("--word-sampler") + 1] == "entity" and "--entity-list" in entity
    data = yaml.safe_load(EXPERIMENT.read_text())
    data["tables"]["table1"]["rows"][0]["pending"] = "waits for a thing"
    (tmp_path / "e.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(JstipError, match="cannot run yet: waits for a thing"):
        run_settings(load(tmp_path / "e.yaml"), data["tables"]["table1"]["rows"][0]["id"], 0)
    with pytest.raises(JstipError, match="shared stage"):  # the GPU preset changes the pretrained models: DVC only
        stage_flags(run_settings(exp, "asr_only", 0, preset="gpu"))


def test_row_flags_script_prints_bash_arrays():
    import subprocess
    import sys

    script = REPO / "experiments" / "repro" / "row_flags.py"
    shell = f'eval "$({sys.executable} {script} asr_il_equal_asr 2)"; echo "${{FLAGS_train[*]}}|${{#FLAGS_align[@]}}|${{RECORD_SETS[*]}}"'
    out = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ("--steps 1600 --seed 2|0|--set interleave.recipe=asr_il --set train.steps=1600 "
                   "--set interleave.seed=2 --set train.seed=2")
    refused = subprocess.run([sys.executable, str(script), "word_hmm", "0"], capture_output=True, text=True)
    assert refused.returncode == 2 and "word_il" in refused.stderr


def test_every_knob_a_row_or_preset_sets_exists_in_params():
    from interleave.recipes import DEFAULT_RECIPES, resolve
    from pipeline.stage_interleave import InterleaveConfig

    exp = load(EXPERIMENT)
    params = flatten(PARAMS)
    for row in exp.rows:
        for key in row.set:
            assert key in params, (row.row_id, key)
        recipe = row.set.get("interleave.recipe")
        if recipe and not row.pending and ":" in recipe:
            resolve(recipe, DEFAULT_RECIPES)  # an inline mixture (a control row): a ValueError names a bad kind
        elif recipe and not row.pending:
            assert recipe in DEFAULT_RECIPES, (row.row_id, recipe)  # the paper's recipes of jstip interleave
    assert "recipes" not in PARAMS["interleave"] and set(PARAMS["interleave"]) <= set(InterleaveConfig.__dataclass_fields__)
    for key in exp.preset("gpu"):
        file, _, name = key.rpartition(":")
        other = flatten(yaml.safe_load((REPO / "experiments" / "repro" / file).read_text())) if file else params
        assert name in other, key
    for key in exp.seed_params:
        assert key in params


def test_experiment_file_errors_name_the_problem(tmp_path):
    base = yaml.safe_load(EXPERIMENT.read_text())
    cases = {
        "appear more than once": lambda d: d["tables"]["table1"]["rows"].append(dict(d["tables"]["table1"]["rows"][0])),
        "must `ref` a row": lambda d: d["tables"]["table3"]["rows"].append({"id": "x", "ref": "nope"}),
        "claim": lambda d: d["claims"].append({"a": "asr_only", "b": "nope", "metric": "eer_rare"}),
        "set the same params": lambda d: d["tables"]["table1"]["rows"].append(
            {"id": "twin", "set": dict(d["tables"]["table1"]["rows"][0]["set"])}),
    }
    for message, spoil in cases.items():
        data = json.loads(json.dumps(base))
        spoil(data)
        path = tmp_path / "e.yaml"
        path.write_text(yaml.safe_dump(data))
        with pytest.raises(JstipError, match=message):
            load(path)


def test_summaries_and_paired_statistics():
    s = summarize([1.0, 2.0, 4.0])
    assert s.n == 3 and s.mean == pytest.approx(7 / 3)
    assert s.half_width == pytest.approx(_t_half([1.0, 2.0, 4.0]))
    assert summarize([None, 2.0]).half_width is None and summarize([]).mean is None
    d = paired_seed_difference({0: 1.0, 1: 2.0, 2: 3.0}, {0: 0.5, 1: 1.0, 3: 9.0})
    assert d.n == 2 and d.diff == pytest.approx(-0.75) and d.favour_b == 2
    tie = paired_seed_difference({0: 0.5, 1: 0.5}, {0: 0.5, 1: 0.7})
    assert tie.favour_b == 0 and tie.higher_b == 1  # a tie is in nobody's favour

    rng = np.random.default_rng(0)
    totals = rng.integers(1, 4, 300)
    a = np.minimum(totals, rng.binomial(totals, 0.4))[None, :]
    same = paired_bootstrap(a, a, totals, resamples=500)
    assert same.delta == 0 and same.lo <= 0 <= same.hi and same.p_b_not_lower == 1.0
    better = np.maximum(0, a - (rng.random(300) < 0.5))  # B fixes about half of A's erring utterances
    result = paired_bootstrap(np.vstack([a, a]), np.vstack([better, better]), totals, resamples=500)
    assert result.delta < 0 and result.hi < 0 and result.p_b_not_lower < 0.01
    with pytest.raises(ValueError, match="runs x items"):
        paired_bootstrap(a, a[:, :10], totals)
