"""The reproduction's experiment definition (`experiments/repro/experiment.yaml`), read in one place.

The file is the single mapping from the paper's table rows to what a run changes (`set`: params
keys -> values, e.g. `interleave.recipe`), the seeds and which params they set, the metrics the
report shows and the claims it tests. The queue script turns it into
`dvc exp run --queue` commands; `jstip report` uses it to say which experiment is which row: an
experiment belongs to row R when its params equal the baseline's, overlaid with the preset and
R's `set`, everywhere except the seed params. So the table is built from what actually ran.
"""
from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from manifests.errors import JstipError


@dataclass(frozen=True)
class Row:
    row_id: str
    label: str
    table: str
    set: dict[str, Any]
    paper: dict[str, float] = field(default_factory=dict)
    ref: str = ""  # shows another row's runs (Table III repeats Table I rows); runs nothing itself
    pending: str = ""  # why this row cannot run yet; queued only when asked

    @property
    def source(self) -> str:
        """The row whose runs this row shows."""
        return self.ref or self.row_id


@dataclass(frozen=True)
class Metric:
    name: str
    key: str  # `<metrics file stem>.<dotted key>`, e.g. eval.entity_error_rate_rare ('' when derived)
    label: str
    scale: float = 1.0  # 100 shows a rate as a percentage
    higher_is_better: bool = False
    minus: tuple[str, ...] = ()  # derived: metric minus[0] minus metric minus[1] (e.g. the modality gap)


@dataclass
class Experiment:
    path: Path
    params_file: str
    seeds: list[int]
    seed_params: list[str]
    tables: dict[str, str]  # id -> title
    rows: list[Row]
    metrics: list[Metric]
    claims: list[dict[str, str]]
    presets: dict[str, str]
    paper_metrics: dict[str, str]

    def row(self, row_id: str) -> Row:
        for r in self.rows:
            if r.row_id == row_id:
                return r
        raise JstipError(f"{self.path}: no row {row_id!r}; rows: {', '.join(r.row_id for r in self.rows)}")

    def preset(self, name: str) -> dict[str, Any]:
        """A preset's overrides as flat `section.key: value` (the CPU preset is params.yaml itself: empty)."""
        if name in ("", "cpu"):
            return {}
        if name not in self.presets:
            raise JstipError(f"unknown preset {name!r}; known: cpu, {', '.join(self.presets)}")
        file = self.path.parent / self.presets[name]
        return flatten(yaml.safe_load(file.read_text()) or {})


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings as `a.b.c: value` (lists and scalars are leaves)."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def load(path: str | Path) -> Experiment:
    """Read and check an experiment file; errors name the entry and the fix."""
    path = Path(path)
    if not path.is_file():
        raise JstipError(f"experiment file {path} not found (the reproduction's is experiments/repro/experiment.yaml)")
    data = yaml.safe_load(path.read_text()) or {}
    try:
        tables = {t: spec.get("title", t) for t, spec in data["tables"].items()}
        rows = [Row(r["id"], r.get("label", r["id"]), t, dict(r.get("set") or {}), dict(r.get("paper") or {}),
                    r.get("ref", ""), r.get("pending", ""))
                for t, spec in data["tables"].items() for r in spec["rows"]]
        metrics = [Metric(name, m.get("key", ""), m.get("label", name), float(m.get("scale", 1.0)),
                          bool(m.get("higher_is_better", False)), tuple(m.get("minus", ())))
                   for name, m in data["metrics"].items()]
        exp = Experiment(path, data.get("params_file", str(path.parent / "params.yaml")),
                         [int(s) for s in data.get("seeds", [0, 1, 2])], list(data.get("seed_params", [])),
                         tables, rows, metrics, list(data.get("claims", [])),
                         dict(data.get("presets", {})), dict(data.get("paper_metrics", {})))
    except (KeyError, TypeError, AttributeError) as exc:
        raise JstipError(f"{path}: malformed experiment file ({exc!r}); it needs tables: {{id: {{rows: [{{id, set}}]}}}} "
                         "and metrics: {name: {key}}") from exc
    ids = [r.row_id for r in exp.rows]
    duplicated = sorted({i for i in ids if ids.count(i) > 1})
    if duplicated:
        raise JstipError(f"{path}: row ids {duplicated} appear more than once")
    names = {m.name for m in exp.metrics}
    for m in exp.metrics:
        if not m.key and (len(m.minus) != 2 or not set(m.minus) <= names):
            raise JstipError(f"{path}: metric {m.name} needs a key, or minus: [metric, metric] of {sorted(names)}")
    for claim in exp.claims:
        if claim.get("metric") not in names or claim.get("a") not in ids or claim.get("b") not in ids:
            raise JstipError(f"{path}: claim {claim} must name rows a, b and a metric of {sorted(names)}")
    bad_refs = sorted(r.row_id for r in exp.rows if r.ref and (r.ref not in ids or exp.row(r.ref).ref or r.set))
    if bad_refs:
        raise JstipError(f"{path}: rows {bad_refs} must `ref` a row that runs (has `set`) and set nothing themselves")
    running = [r for r in exp.rows if not r.ref]
    settings = [tuple(sorted((k, str(v)) for k, v in r.set.items())) for r in running]
    same = sorted({r.row_id for r, s in zip(running, settings) if settings.count(s) > 1})
    if same:
        raise JstipError(f"{path}: rows {same} set the same params; the report could not tell their runs apart")
    return exp


def exp_name(row: Row, seed: int, preset: str = "") -> str:
    """The experiment's name in `dvc exp show`: `<row>-s<seed>` (with `-<preset>` unless CPU)."""
    return f"{row.row_id}{'' if preset in ('', 'cpu') else '-' + preset}-s{seed}"


def param_value(value: Any) -> str:
    """A params value as `dvc exp run -S` and the stages' flags take it (booleans lower-case)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


_HYDRA_SPECIAL = re.compile(r"[,\s\[\](){}'\"=\\]")


def dvc_set_value(value: Any) -> str:
    """A params value as `dvc exp run -S key=VALUE` reads it: DVC parses overrides with Hydra, where
    `a,b` is a sweep over two values, so a string holding Hydra's special characters (an inline
    mixture `asr:38,tts_pair:13`) is quoted to stay one string; numbers stay bare (quoted they would
    become strings)."""
    text = param_value(value)
    if isinstance(value, str) and _HYDRA_SPECIAL.search(text):
        return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return text


def queue_commands(exp: Experiment, tables: list[str], seeds: list[int], preset: str = "",
                   target: str = "dvc.yaml", include_pending: bool = False,
                   only_rows: list[str] | None = None) -> list[list[str]]:
    """One `dvc exp run --queue` argv per (row of `tables`, seed), run from the experiment directory.

    Rows that show another row's runs (`ref`) queue nothing; `pending` rows only when asked; a row
    in several of `tables` is queued once. `only_rows` (row ids) runs a part of the tables, the queue
    split over sittings."""
    unknown = sorted(set(tables) - set(exp.tables))
    if unknown:
        raise JstipError(f"unknown tables {unknown}; known: {', '.join(exp.tables)}")
    in_tables = [r for r in exp.rows if r.table in tables]
    unknown_rows = sorted(set(only_rows or []) - {r.row_id for r in in_tables})
    if unknown_rows:
        raise JstipError(f"unknown rows {unknown_rows} in tables {', '.join(tables)}; known: "
                         f"{', '.join(r.row_id for r in in_tables)}")
    overrides = exp.preset(preset)
    commands = []
    rows = [r for r in in_tables if not r.ref and (include_pending or not r.pending)
            and (not only_rows or r.row_id in only_rows)]
    for row in rows:
        for seed in seeds:
            settings = _settings(exp, overrides, row, seed)
            argv = ["dvc", "exp", "run", "--queue", "--name", exp_name(row, seed, preset)]
            for key, value in settings.items():
                argv += ["--set-param", f"{key}={dvc_set_value(value)}"]
            commands.append(argv + [target])
    return commands


def _settings(exp: Experiment, overrides: dict[str, Any], row: Row, seed: int) -> dict[str, Any]:
    return {**overrides, **row.set, **{k: seed for k in exp.seed_params}}


def run_settings(exp: Experiment, row_id: str, seed: int, preset: str = "") -> dict[str, Any]:
    """What one run of a row sets over the params file (the preset, the row's `set`, the seeds), as
    `dvc exp run -S` would; a row that only shows another's runs, or a pending one, is refused."""
    row = exp.row(row_id)
    if row.ref:
        raise JstipError(f"row {row_id} shows the runs of row {row.ref}: run {row.ref}")
    if row.pending:
        raise JstipError(f"row {row_id} cannot run yet: {row.pending}")
    return _settings(exp, exp.preset(preset), row, seed)


# The stages a run makes itself (outside DVC's queue, on shared stages already built); `align` only for
# rows that change the alignments (the boundary-noise ablations import true or jittered word times).
PER_RUN_STAGES = ("align", "interleave", "train", "evaluate", "probe")


def stage_flags(settings: dict[str, Any]) -> dict[str, list[str]]:
    """Settings as flags of the per-run stages' commands (`train.steps: 1600` -> train: --steps 1600).

    A setting of a shared stage (the world, prepare, the pretrained models) or of another params file
    is refused: such a run changes what every run shares and has to go through `dvc exp run`."""
    flags: dict[str, list[str]] = {stage: [] for stage in PER_RUN_STAGES}
    for key, value in settings.items():
        stage, _, name = key.partition(".")
        if ":" in key or stage not in flags or not name or "." in name:
            raise JstipError(f"setting {key}={param_value(value)} changes a shared stage or another params file; "
                             f"run it with run_experiments.py (DVC), not outside the queue")
        flags[stage] += [f"--{name.replace('_', '-')}", param_value(value)]
    return flags


def shell(argv: list[str]) -> str:
    return " ".join(shlex.quote(a) for a in argv)


def expected_params(exp: Experiment, baseline: dict[str, Any], row: Row, preset: str = "") -> dict[str, Any]:
    """What a run of `row` must have as params of the experiment's params file (seed params excluded;
    settings of other params files, `file:section.key`, are not compared)."""
    expected = {**baseline, **exp.preset(preset), **row.set}
    return {k: v for k, v in expected.items() if k not in exp.seed_params and ":" not in k}


def match_row(exp: Experiment, baseline: dict[str, Any], params: dict[str, Any], preset: str = "") -> Row | None:
    """The row whose expected params equal `params` (compared as strings, as `-S` sets them)."""
    for row in (r for r in exp.rows if not r.ref):
        expected = expected_params(exp, baseline, row, preset)
        if all(param_value(params.get(k)) == param_value(v) for k, v in expected.items()):
            return row
    return None
