"""`jstip init`: make a directory (the user's own repository) a JSTIP DVC project.

Writes `params.yaml` (every stage's section with every option at its default and its help as
a comment, plus the inputs given on the command line) and `dvc.yaml` (one stage per verb whose
deps and outs are DVC templates over params.yaml: `${prepare.corpus}`, `${align.reference}`, ...,
so pointing a param at other data makes DVC track that data). Optional inputs that are empty
in params.yaml are left out of dvc.yaml (DVC cannot depend on an empty path): rerun `jstip init`
after setting one, and it rewrites the dvc.yaml it wrote before (never a dvc.yaml of yours,
unless `--force`). An existing params.yaml is kept unless `--force`.

`STAGE_FILES` says which options of each stage are inputs and outputs; the repository's own
dvc.yaml lists the same (plus the code each stage runs, which is not in a user's repository),
and a test keeps the two in step.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import yaml

from manifests.errors import JstipError
from manifests.io import write_text_atomic

HEADER = "# written by `jstip init`"
# verbs that synthesize a corpus of ours (the demo, the reproduction's world): not part of a user's project
CORPUS_GENERATORS = ("demo-corpus", "world-corpus")

# verb -> which config fields are inputs (deps), optional inputs (left out when empty), outputs,
# metrics and plots (field, x, y; both kept in git, not in the DVC cache) and reports (cached outputs:
# an uncached plain output would switch off DVC's run-cache)
STAGE_FILES: dict[str, dict[str, Any]] = {
    "prepare": {"deps": [], "optional": ["corpus", "domain_text"], "outs": ["utterances", "texts", "rejected", "audio_dir"],
                "metrics": "metrics", "report": "report", "plots": []},
    "align": {"deps": ["utterances"], "optional": ["reference", "source"], "outs": ["out"],
              "metrics": "metrics", "report": "report", "plots": []},
    "interleave": {"deps": ["utterances", "alignments", "texts"], "optional": ["tts_texts"], "outs": ["out", "figure"],
                   "metrics": "metrics", "report": "report",
                   "plots": [("plot", "words", "share")]},
    "train": {"deps": ["samples"], "optional": [], "outs": ["checkpoints"], "metrics": "metrics", "report": "report",
              "plots": [("plots/train_loss.csv", "step", "loss"), ("plots/train_lr.csv", "step", "lr"),
                        ("plots/train_padding.csv", "step", "padding_share"),
                        ("plots/train_throughput.csv", "step", "tokens_per_s")]},
    "evaluate": {"deps": ["checkpoints", "utterances"], "optional": ["entities"], "outs": ["hypotheses"],
                 "metrics": "metrics", "report": "report", "plots": []},
    "probe": {"deps": ["checkpoints"], "optional": ["mcq", "qa"], "outs": ["demo_dir"],
              "metrics": "metrics", "report": "report", "plots": []},
}
# the code each stage runs, as deps of the stages in the jstip repository's own dvc.yaml (a user's
# project has no copy of the code: there `dvc repro -f` after upgrading jstip reruns everything)
CODE_DEPS: dict[str, list[str]] = {
    "prepare": ["pipeline/stage_prepare.py", "pipeline/execution.py", "corpora", "manifests/schema.py",
                "manifests/io.py", "manifests/external_sort.py", "manifests/storage.py"],
    "align": ["pipeline/stage_align.py", "pipeline/execution.py", "aligners", "manifests/schema.py", "manifests/storage.py"],
    "interleave": ["pipeline/stage_interleave.py", "pipeline/interleave_build.py", "pipeline/execution.py", "interleave",
                   "synthetic/tts.py", "synthetic/tts_subprocess.py", "corpora/textnorm.py", "manifests/formats.py"],
    "train": ["pipeline/stage_train.py", "trainer", "manifests/frames.py", "manifests/formats.py"],
    "evaluate": ["pipeline/stage_evaluate.py", "evaluation/scoring.py", "evaluation/metrics.py", "evaluation/entities.py",
                 "evaluation/bootstrap.py", "corpora/textnorm.py", "trainer", "manifests/frames.py"],
    "probe": ["pipeline/stage_probe.py", "evaluation/probe.py", "evaluation/probe_items.py", "evaluation/bootstrap.py",
              "manifests/prompts.py", "synthetic/demo_probe.py", "synthetic/demo_text.py", "corpora/textnorm.py",
              "aligners/espeak.py", "trainer", "manifests/frames.py"],
}
REPOSITORY_NOTE = """# The JSTIP flow: prepare -> align -> interleave -> train -> evaluate -> probe. Every stage runs one
# `jstip` verb with its section of params.yaml; its data deps and outs are templates over params.yaml
# (`${prepare.corpus}`, ...), so pointing a param at other data makes DVC track it, and `dvc repro`
# reruns a stage when its code, inputs or parameters change. The demo corpus is demo/dvc.yaml's
# `demo_corpus`, which runs only while params.yaml points at its outputs (data/demo/...).
# Metrics and plots are kept in git (cache: false) so that `dvc exp run` commits them with each
# experiment; reports are ordinary cached outputs (an uncached plain output would switch off DVC's
# run-cache). This file is generated from params.yaml by `jstip init` (pipeline/project.py): an
# optional input left empty there (align.reference, evaluate.entities, ...) is not listed, since DVC
# cannot depend on an empty path; after changing one, run `jstip init` again."""
# values of an optional input that name no file: the stage makes that input itself (probe's demo sets)
GENERATED = ("demo",)
# inputs that a fresh project has none of (the demo's are in the repository's params.yaml)
INIT_DEFAULTS = {"prepare": {"corpus": "", "domain_text": "", "corpus_name": ""}, "align": {"reference": ""},
                 "evaluate": {"entities": ""}}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("directory", nargs="?", default=".", metavar="DIR", help="the project directory (default: here)")
    parser.add_argument("--corpus", default="", help="your corpus (prepare.corpus): a directory, list or manifest")
    parser.add_argument("--domain-text", default="", help="domain text file or directory (prepare.domain_text)")
    parser.add_argument("--entities", default="", help="entity list scored by evaluate (evaluate.entities)")
    parser.add_argument("--reference", default="", help="reference alignments scored by align (align.reference)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing params.yaml and dvc.yaml")


def _stage_configs() -> dict[str, tuple[str, type]]:
    """verb -> (params section, config class) for every stage but the demo corpus."""
    import importlib

    from .cli import STAGES

    return {verb: (section, getattr(importlib.import_module(module), cls))
            for verb, (module, cls, section, _) in STAGES.items() if verb not in CORPUS_GENERATORS}


def default_params(overrides: dict[str, dict[str, Any]] | None = None) -> dict[str, dict[str, Any]]:
    """Every stage's options at their defaults, with `INIT_DEFAULTS` and `overrides` applied."""
    params: dict[str, dict[str, Any]] = {}
    for section, cls in _stage_configs().values():
        values = {}
        for f in dataclasses.fields(cls):
            values[f.name] = f.default_factory() if f.default is dataclasses.MISSING else f.default  # type: ignore[misc]
        params[section] = values
    for extra in (INIT_DEFAULTS, overrides or {}):
        for section, values in extra.items():
            if section in params:
                params[section].update({k: v for k, v in values.items() if k in params[section]})
    return params


def render_params(params: dict[str, dict[str, Any]]) -> str:
    """params.yaml text: one section per stage, each option with its help as a comment."""
    helps = {section: {f.name: f.metadata.get("help", "") for f in dataclasses.fields(cls)}
             for section, cls in _stage_configs().values()}
    lines = [f"{HEADER}: every option of every stage (`jstip STAGE --help`); dvc.yaml reads its paths from here.", ""]
    for section, values in params.items():
        lines.append(f"{section}:")
        for name, value in values.items():
            text = yaml.safe_dump({name: value}, default_flow_style=False, width=1000, sort_keys=False).rstrip("\n")
            help_text = helps.get(section, {}).get(name, "")
            if "\n" in text:
                lines.append("  # " + help_text if help_text else "")
                lines.extend("  " + line for line in text.splitlines())
            else:
                lines.append(f"  {text}" + (f"  # {help_text}" if help_text else ""))
        lines.append("")
    return "\n".join(line for line in lines if line is not None) + "\n"


def render_dvc(params: dict[str, dict[str, Any]], code_deps: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """dvc.yaml as data: each stage's deps/outs as templates over params.yaml; optional inputs
    only when set; `code_deps` (the repository's own code, per verb) first when given."""
    configs = _stage_configs()
    stages: dict[str, Any] = {}
    for verb, (section, cls) in configs.items():
        files = STAGE_FILES.get(verb, {"deps": [], "optional": [], "outs": [], "metrics": "metrics",
                                       "report": "report", "plots": []})
        defaults = {f.name: f.default for f in dataclasses.fields(cls)}
        values = params.get(section, {})

        def ref(name: str) -> list[str]:
            """A template over params.yaml; the default path itself when params.yaml lacks the option."""
            if name not in defaults:
                return []
            value = str(values.get(name, defaults[name]) or "")
            if not value or value in GENERATED:
                return []
            if "," in value:  # a list of files: DVC templates cannot expand it, so they are listed
                return [p.strip() for p in value.split(",") if p.strip()]
            return [f"${{{section}.{name}}}"] if name in values else [value]

        def plot_files(name: str) -> list[str]:
            """A plot option's files; `option/file` names a file in the directory an option gives."""
            option, _, file = name.partition("/")
            setting = str(values.get(option, defaults.get(option, "")))
            paths = [p for template in ref(option) for p in _expand(template, setting)]
            return [f"{p}/{file}" if file else p for p in paths]

        deps = list((code_deps or {}).get(verb, []))
        for name in files["deps"] + files["optional"]:
            deps += ref(name)
        stage: dict[str, Any] = {"cmd": f"jstip {verb} --params params.yaml"}
        if deps:
            stage["deps"] = deps
        stage["params"] = [section]
        outs: list[Any] = [o for name in files["outs"] for o in ref(name)]
        outs += ref(files["report"])
        if outs:
            stage["outs"] = outs
        metrics = ref(files["metrics"])
        if metrics:
            stage["metrics"] = [{metrics[0]: {"cache": False}}]
        plots = [{p: {"cache": False, "x": x, "y": y}} for name, x, y in files["plots"] for p in plot_files(name)]
        if plots:
            stage["plots"] = plots
        stages[verb.replace("-", "_")] = stage
    return {"stages": stages}


# a plot path may name one file per value of a setting (`{segmenter}`): DVC cannot expand it
PLOT_EXPANSIONS = {"{segmenter}": ("silence", "silence_punct")}


def _expand(path: str, value: str) -> list[str]:
    """The files a plot option (`path`, its template; `value`, its setting) names: the template
    itself, or the literal files, one per value of a `{setting}` in it."""
    for key, options in PLOT_EXPANSIONS.items():
        if key in value:
            return [value.replace(key, option) for option in options]
    return [path]


def dump_dvc(pipeline: dict[str, Any], header: str) -> str:
    """dvc.yaml text: `header` (comment lines), then the stages with a blank line between them."""
    body = yaml.safe_dump(pipeline, default_flow_style=False, sort_keys=False, width=1000)
    lines = []
    for line in body.splitlines():
        if line.startswith("  ") and not line.startswith("   ") and lines and lines[-1] != "stages:":
            lines.append("")
        lines.append(line)
    return header + "\n" + "\n".join(lines) + "\n"


def is_repository(directory: str | Path) -> bool:
    """Whether `directory` is the jstip repository this code runs from (a clone): its dvc.yaml then
    lists each stage's code as deps too."""
    return Path(directory).resolve() == Path(__file__).resolve().parents[1]


def render_file(params: dict[str, dict[str, Any]], repository: bool) -> str:
    """dvc.yaml's text for `params`: a user's project, or this repository (code deps, its own note)."""
    if repository:
        return dump_dvc(render_dvc(params, CODE_DEPS), f"{HEADER} from params.yaml.\n{REPOSITORY_NOTE}")
    header = (f"{HEADER} from params.yaml. Optional inputs left empty there are not listed: after setting one,"
              "\n# run `jstip init` again (it rewrites this file and keeps params.yaml).")
    return dump_dvc(render_dvc(params), header)


def init(directory: str, overrides: dict[str, dict[str, Any]], force: bool = False) -> dict[str, Any]:
    """Write params.yaml (unless present) and dvc.yaml in `directory`; returns what was done."""
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    params_file, dvc_file = root / "params.yaml", root / "dvc.yaml"
    done: dict[str, Any] = {}
    if params_file.exists() and not force:
        params = yaml.safe_load(params_file.read_text()) or {}
        if any(overrides.get(s) for s in overrides):
            raise JstipError(f"{params_file} exists: set the inputs in it (or pass --force to rewrite it)")
        done["params.yaml"] = "kept"
    else:
        params = default_params(overrides)
        write_text_atomic(render_params(params), params_file)
        done["params.yaml"] = "written"
    if dvc_file.exists() and not force and not dvc_file.read_text().startswith(HEADER):
        raise JstipError(f"{dvc_file} exists and was not written by jstip init; pass --force to replace it")
    write_text_atomic(render_file(params, is_repository(root)), dvc_file)
    done["dvc.yaml"] = "written"
    done["next"] = _next_steps(root, not params.get("prepare", {}).get("corpus"))
    return done


def _next_steps(root: Path, no_corpus: bool) -> list[str]:
    steps = []
    if no_corpus:
        steps.append("set prepare.corpus in params.yaml to your corpus, then run `jstip init` again")
    if not (root / ".git").exists():
        steps.append("git init")
    if not (root / ".dvc").exists():
        steps.append("dvc init")
    steps.append("dvc repro")
    return steps


def main(args: argparse.Namespace) -> int:
    overrides: dict[str, dict[str, Any]] = {}
    for section, key, value in (("prepare", "corpus", args.corpus), ("prepare", "domain_text", args.domain_text),
                                ("evaluate", "entities", args.entities), ("align", "reference", args.reference)):
        if value:
            overrides.setdefault(section, {})[key] = os.path.abspath(value) if not _inside(value, args.directory) \
                else os.path.relpath(os.path.abspath(value), os.path.abspath(args.directory))
    print(json.dumps(init(args.directory, overrides, args.force), indent=2))
    return 0


def _inside(path: str, directory: str) -> bool:
    """Whether `path` lies inside `directory` (then params.yaml keeps it relative, so the project moves)."""
    full, root = os.path.abspath(path), os.path.abspath(directory)
    return full == root or full.startswith(root + os.sep)
