"""The `jstip` command: one subcommand per stage, each a thin wrapper over `stage_*.run`.

Every option is a field of the stage's config dataclass. A stage reads its section of
`params.yaml` in the working directory (DVC's single source of knobs) when that file exists,
or of the file given by `--params` (`--params ''` reads none); flags override it. A params file
without the stage's section, an unknown option or a value of the wrong type is a one-line error
naming the key and the type expected.
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import math
import os
import sys
from pathlib import Path
from typing import Any, Sequence

from manifests.errors import JstipError

# verb -> (module, config class, params.yaml section, one-line help)
STAGES: dict[str, tuple[str, str, str, str]] = {
    "demo-corpus": ("pipeline.stage_demo_corpus", "DemoCorpusConfig", "demo_corpus",
                    "synthesize an English demo corpus with espeak-ng (with true word times)"),
    "prepare": ("pipeline.stage_prepare", "PrepareConfig", "prepare",
                "import a corpus and domain text into utterance and text manifests"),
    "align": ("pipeline.stage_align", "AlignConfig", "align",
              "forced-align every utterance into word spans (failed ones keep their reason)"),
    "interleave": ("pipeline.stage_interleave", "InterleaveConfig", "interleave",
                   "build asr, text and interleaved speech-text samples as Parquet shards"),
    "train": ("pipeline.stage_train", "TrainConfig", "train",
              "train the speech-LLM on the sample shards"),
    "evaluate": ("pipeline.stage_evaluate", "EvaluateConfig", "evaluate",
                 "decode held-out utterances; TER, WER and entity error rate with intervals"),
    "probe": ("pipeline.stage_probe", "ProbeConfig", "probe",
              "modality-gap probes: multiple choice (MMLU form) and open questions, text-in vs speech-in"),
    "world-corpus": ("pipeline.stage_world_corpus", "WorldCorpusConfig", "world_corpus",
                     "synthesize the controlled world (rare/common entities, facts, probes) of the Table I/III reproduction"),
}

# tools that are not DVC stages: verb -> (module[:object] with add_arguments(parser) and main(args), one-line help)
TOOLS: dict[str, tuple[str, str]] = {
    "inspect": ("pipeline.tools:Inspect", "draw one sample (spectrogram, word boundaries, spans) and print what the model sees"),
    "stats": ("pipeline.tools:Stats", "print a summary table of a manifest directory (samples per kind, alignments)"),
    "export": ("pipeline.tools:Export", "export sample shards as a Lhotse CutSet or a NeMo JSONL manifest"),
    "init": ("pipeline.project", "write params.yaml and dvc.yaml for your own corpus in this (or another) directory"),
    "report": ("evaluation.report", "tables, claims and plots of the Table I/III reproduction from the run records and `dvc exp show`"),
}
DEFAULT_PARAMS = "params.yaml"


def _tool(spec: str):
    """The object a TOOLS entry names: a module, or `module:attribute`."""
    module, _, attribute = spec.partition(":")
    found = importlib.import_module(module)
    return getattr(found, attribute) if attribute else found


def _config_class(verb: str) -> type:
    module, cls, _, _ = STAGES[verb]
    return getattr(importlib.import_module(module), cls)


def _add_fields(parser: argparse.ArgumentParser, config_cls: type) -> None:
    for f in dataclasses.fields(config_cls):
        kind = f.type if isinstance(f.type, type) else {"int": int, "float": float, "bool": bool}.get(str(f.type), str)
        flag = "--" + f.name.replace("_", "-")
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default  # type: ignore[misc]
        help_text = f"{f.metadata.get('help', '')} (default: {default!r})".replace("%", "%%")
        if kind is bool:
            parser.add_argument(flag, dest=f.name, type=_parse_bool, nargs="?", const=True, default=None,
                                metavar="{true,false}", help=help_text)
        else:
            parser.add_argument(flag, dest=f.name, type=kind, default=None, help=help_text)


def _parse_bool(value: str) -> bool:
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole CLI; with `only` (the verb being run), the other verbs' options are left out, so a
    run imports its own stage module and not every stage's (interleave's alone pulls in pandas)."""
    parser = argparse.ArgumentParser(
        prog="jstip",
        description="Prepare joint speech-text interleaved (JSTIP) training data and train a speech-LLM on it. "
        "Each subcommand is one DVC stage; `dvc repro` runs them all from params.yaml.",
    )
    sub = parser.add_subparsers(dest="verb", required=True, metavar="STAGE")
    for verb, (_, _, section, help_line) in STAGES.items():
        stage = sub.add_parser(verb, help=help_line, description=help_line + ".")
        stage.add_argument("--params", metavar="YAML", default=None,
                           help=f"read section `{section}:` of this params file (default: {DEFAULT_PARAMS} in the "
                                "working directory when it exists; '' reads none); flags override it")
        if only in (None, verb):
            _add_fields(stage, _config_class(verb))
    for verb, (module, help_line) in TOOLS.items():
        tool = sub.add_parser(verb, help=help_line, description=help_line + ".")
        if only in (None, verb):
            _tool(module).add_arguments(tool)
    return parser


def load_params(path: str, section: str) -> dict[str, Any]:
    """The stage's section of a params file; a JstipError when the file or the section is missing."""
    import yaml

    file = Path(path)
    if not file.is_file():
        raise JstipError(f"params file {path} does not exist")
    try:
        data = yaml.safe_load(file.read_text()) or {}
    except yaml.YAMLError as exc:
        raise JstipError(f"{path} is not valid YAML: {' '.join(str(exc).split())}") from exc
    if not isinstance(data, dict) or section not in data:
        raise JstipError(f"{path} has no `{section}:` section; add one (`jstip init` writes a complete params.yaml) "
                         f"or pass --params FILE")
    values = data[section] or {}
    if not isinstance(values, dict):
        raise JstipError(f"{path}: `{section}` must be a mapping of option: value, got {values!r}")
    return values


_TYPES = {"str": (str, "a string"), "int": (int, "an integer"), "float": (float, "a number (float)"),
          "bool": (bool, "true or false"), "dict": (dict, "a mapping of name: value")}


def check_value(where: str, value: Any, type_name: str) -> Any:
    """`value` as the field's type, or a JstipError naming `where` and the type expected."""
    base = type_name.split("[")[0].split("|")[0].strip()
    kind, expected = _TYPES.get(base, (None, base))
    if kind is None:
        return value
    ok = (isinstance(value, kind) and not (kind is int and isinstance(value, bool))) if kind is not float else (
        isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value))
    if kind is str and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)  # `corpus_name: 2024` means the string
    if not ok:
        raise JstipError(f"{where} must be {expected}, got {value!r}")
    return float(value) if kind is float else value


def make_config(verb: str, args: argparse.Namespace) -> Any:
    """The stage config: dataclass defaults < params file section < command-line flags."""
    config_cls = _config_class(verb)
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    values: dict[str, Any] = {}
    path = args.params if args.params is not None else (DEFAULT_PARAMS if Path(DEFAULT_PARAMS).is_file() else "")
    if path:
        section = STAGES[verb][2]
        from_file = load_params(path, section)
        unknown = sorted(set(from_file) - set(fields))
        if unknown:
            raise JstipError(f"{path} section {section!r} has unknown options {unknown}; known: {sorted(fields)}")
        for name, value in from_file.items():
            values[name] = check_value(f"{path}: {section}.{name}", value, str(fields[name].type))
    values.update({k: v for k, v in vars(args).items() if k in fields and v is not None})
    return config_cls(**values)


def main(argv: Sequence[str] | None = None) -> int:
    if "torch" not in sys.modules:  # OpenMP reads it once, when torch starts its thread pool
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # spin-waiting threads stall on a busy CPU
    argv = list(sys.argv[1:] if argv is None else argv)
    verb = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(verb if verb in STAGES or verb in TOOLS else None).parse_args(argv)
    if args.verb in TOOLS:
        try:
            return _tool(TOOLS[args.verb][0]).main(args)
        except JstipError as exc:
            print(f"jstip {args.verb}: error: {exc}", file=sys.stderr)
            return 2
    try:
        config = make_config(args.verb, args)
        run = getattr(importlib.import_module(STAGES[args.verb][0]), "run")
        metrics = run(config)
    except JstipError as exc:
        print(f"jstip {args.verb}: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(metrics, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
