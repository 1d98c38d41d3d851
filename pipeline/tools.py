"""The `jstip` tools that are not DVC stages: `inspect`, `stats` and `export`. Each is a class with
`add_arguments(parser)` and `main(args)`: the argument parsing and printing, over the concept code
(`interleave.inspect`, `interleave.stats`, `corpora.exporters`)."""
from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from manifests.errors import JstipError, ManifestError


class Inspect:
    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("sample_id", metavar="SAMPLE_ID", help="e.g. demo-med-00003:interleave_word")
        parser.add_argument("--samples", default="data/samples", help="directory of sample shards (default: data/samples)")
        parser.add_argument("--alignments", default="data/alignments",
                            help="alignment manifest for word boundaries (default: data/alignments)")
        parser.add_argument("--png", default="", help="where to draw the picture (default: plots/inspect/<id>.png)")
        parser.add_argument("--stack", type=int, default=2,
                            help="encoder frames (20 ms) stacked per LM position, as train.stack: 2 gives 40 ms")

    @staticmethod
    def main(args: argparse.Namespace) -> int:
        from interleave.inspect import draw
        from manifests.frames import FrameSpec
        from manifests.schema import TOKEN
        from manifests.views import alignment_index, find_sample, model_view, sample_words

        sample = find_sample(args.samples, args.sample_id)
        alignments = alignment_index([args.alignments, str(Path(args.samples) / "tts" / "alignments")])
        words = sample_words(sample, alignments)
        if args.stack < 1:
            raise JstipError(f"--stack must be at least 1, got {args.stack}")
        view = model_view(sample, FrameSpec(stack=args.stack))
        png = args.png or f"plots/inspect/{re.sub(r'[^A-Za-z0-9._-]+', '_', sample.sample_id)}.png"
        try:
            draw(sample, words, view, png)
        except JstipError as exc:
            raise JstipError(f"cannot draw {sample.sample_id}: {exc}") from exc
        print(view)
        tokens = sum(s.modality == TOKEN for s in sample.spans)
        print(f"[{sample.kind}] {len(sample.spans)} spans ({tokens} special tokens), {sample.n_speech_words} speech / "
              f"{sample.n_text_words} text words, "
              f"{len(words)} aligned words; picture: {png}")
        return 0


class Stats:
    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("path", metavar="DIR", help="a manifest directory (part-*.parquet) or file, e.g. data/samples")
        parser.add_argument("--speech-tokens-per-second", type=float, default=12.5, help="tokens per speech second (the paper: 12.5)")
        parser.add_argument("--tokens-per-word", type=float, default=1.5, help="token estimate per text word")

    @staticmethod
    def main(args: argparse.Namespace) -> int:
        from interleave.stats import alignment_table, sample_table

        path = str(Path(args.path))
        try:
            print(sample_table(path, args.speech_tokens_per_second, args.tokens_per_word))
        except ManifestError as sample_error:
            if "missing columns" not in str(sample_error):
                raise
            print(alignment_table(path))
        return 0


class Export:
    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("samples", metavar="DIR", help="directory of sample shards, e.g. data/samples")
        parser.add_argument("--format", choices=("lhotse", "nemo", "shar", "webdataset", "hf"), required=True,
                            help="lhotse (CutSet JSONL), nemo (JSONL), shar (Lhotse Shar), webdataset (tar "
                                 "shards) or hf (Hugging Face dataset folder); see docs/pipeline.md")
        parser.add_argument("--out", required=True, help="output manifest (lhotse, nemo: e.g. cuts.jsonl.gz) or "
                                                         "directory (shar, webdataset, hf)")
        parser.add_argument("--kind", default=None, help="comma-separated sample kinds to export (default: nemo "
                                                         "asr,tts_pair; the others every kind with audio)")
        parser.add_argument("--alignments", default="data/alignments", help="word alignments of the source utterances")
        parser.add_argument("--utterances", default="data/utterances.parquet",
                            help="utterance manifest (speakers; splits for hf)")
        parser.add_argument("--language", default="en", help="language written on supervisions, lines and rows")
        parser.add_argument("--shard-size", type=int, default=1000,
                            help="samples per shard (shar, webdataset, hf); 1000 is Lhotse's default")
        parser.add_argument("--progress", default=True, action=argparse.BooleanOptionalAction,
                            help="show a progress bar (shar, webdataset, hf)")

    @staticmethod
    def main(args: argparse.Namespace) -> int:
        from corpora.exporters import export

        report = export(args.samples, args.format, args.out, args.alignments, args.kind, args.utterances,
                        args.language, args.shard_size, args.progress)
        print(json.dumps(report, indent=2, sort_keys=True))
        return 0
