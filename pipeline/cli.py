"""The `jstip` command: one subcommand per stage, each a thin wrapper over `stage_*.run`.

Every option is a field of the stage's config dataclass; `--params params.yaml` reads the
stage's section of that file first (DVC's single source of knobs) and flags override it.
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
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
                 "decode held-out utterances; WER and entity error rate"),
    "world-corpus": ("pipeline.stage_world_corpus", "WorldCorpusConfig", "world_corpus",
                     "synthesize the controlled world (rare/common entities, facts, probes) of the Table I/III reproduction"),
}

# tools that are not DVC stages: verb -> (module with add_arguments(parser) and main(args), one-line help)
TOOLS: dict[str, tuple[str, str]] = {
    "inspect": ("pipeline.inspect_sample", "draw one sample (spectrogram, word boundaries, spans) and print what the model sees"),
    "stats": ("pipeline.manifest_stats", "print a summary table of a manifest directory (samples per kind, alignments)"),
    "export": ("pipeline.exporters", "export sample shards as a Lhotse CutSet or a NeMo JSONL manifest"),
    "report": ("pipeline.report", "tables, claims and plots of the Table I/III reproduction from `dvc exp show`"),
}


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
            parser.add_argument(flag, dest=f.name, type=_parse_bool, default=None, metavar="{true,false}", help=help_text)
        else:
            parser.add_argument(flag, dest=f.name, type=kind, default=None, help=help_text)


def _parse_bool(value: str) -> bool:
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jstip",
        description="Prepare joint speech-text interleaved (JSTIP) training data and train a speech-LLM on it. "
        "Each subcommand is one DVC stage; `dvc repro` runs them all from params.yaml.",
    )
    sub = parser.add_subparsers(dest="verb", required=True, metavar="STAGE")
    for verb, (_, _, section, help_line) in STAGES.items():
        stage = sub.add_parser(verb, help=help_line, description=help_line + ".")
        stage.add_argument("--params", metavar="YAML", default=None,
                           help=f"read defaults from section `{section}:` of this params file (flags override)")
        _add_fields(stage, _config_class(verb))
    for verb, (module, help_line) in TOOLS.items():
        tool = sub.add_parser(verb, help=help_line, description=help_line + ".")
        importlib.import_module(module).add_arguments(tool)
    return parser


def load_params(path: str, section: str) -> dict[str, Any]:
    import yaml

    file = Path(path)
    if not file.is_file():
        raise JstipError(f"params file {path} does not exist")
    data = yaml.safe_load(file.read_text()) or {}
    values = data.get(section) or {}
    if not isinstance(values, dict):
        raise JstipError(f"section {section!r} of {path} must be a mapping of option: value")
    return values


def make_config(verb: str, args: argparse.Namespace) -> Any:
    """The stage config: dataclass defaults < params file section < command-line flags."""
    config_cls = _config_class(verb)
    names = {f.name for f in dataclasses.fields(config_cls)}
    values: dict[str, Any] = {}
    if args.params:
        section = STAGES[verb][2]
        from_file = load_params(args.params, section)
        unknown = sorted(set(from_file) - names)
        if unknown:
            raise JstipError(f"{args.params} section {section!r} has unknown options {unknown}; known: {sorted(names)}")
        values.update(from_file)
    values.update({k: v for k, v in vars(args).items() if k in names and v is not None})
    return config_cls(**values)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.verb in TOOLS:
        try:
            return importlib.import_module(TOOLS[args.verb][0]).main(args)
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
