"""A Hugging Face dataset folder: Parquet shards with an `Audio` column and a dataset card.

The layout is what `Dataset.push_to_hub` itself uploads, so the folder can be pushed as it is
(`HfApi().upload_folder(..., repo_type="dataset")`) and `datasets.load_dataset(folder)` reads it
locally: `data/<split>-NNNNN-of-NNNNN.parquet` (`shard_size` rows each, row groups of 100 rows as
`datasets` writes audio) and `README.md` whose YAML front matter names the splits' files and the
features. The schema comes from `datasets.Features` and the card from the same calls
`push_to_hub` makes (`DatasetInfosDict`/`MetadataConfigs` into a `DatasetCardData`). Splits
follow the utterance manifest's `split` of each sample's source (`train` when it has none).
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Iterable


from .items import ExportItem, Skips, with_flac

FILES = re.compile(r"README\.md|data/\w+(\.\w+)*-\d{5}-of-\d{5}\.parquet")
ROW_GROUP_ROWS = 100  # datasets' row group size for audio datasets: a reader fetches little at a time
COLUMNS = ("sample_id", "kind", "source_id", "audio", "text", "duration", "sampling_rate", "speaker", "language",
           "spans", "words", "audio_path", "offset")


def features() -> Any:
    """The dataset's `datasets.Features`: audio as `Audio` (bytes + name), spans and words as lists."""
    from datasets import Audio, Features, Value

    string, seconds = Value("string"), Value("float64")
    return Features({
        "sample_id": string, "kind": string, "source_id": string, "audio": Audio(), "text": string,
        "duration": seconds, "sampling_rate": Value("int32"), "speaker": string, "language": string,
        "spans": [{"modality": string, "text": string, "start": seconds, "end": seconds}],
        "words": [{"word": string, "start": seconds, "end": seconds, "score": seconds}],
        "audio_path": string, "offset": seconds,
    })


def split_name(split: str) -> str:
    """A split name the Hub accepts (word characters and dots): `dev-clean` becomes `dev_clean`."""
    return re.sub(r"[^\w.]", "_", split).strip(".") or "train"


def row(item: ExportItem, audio: bytes, rate: int) -> dict[str, Any]:
    meta = item.meta(rate)
    meta["audio"] = {"bytes": audio, "path": f"{item.sample.sample_id}.flac"}
    return {k: meta[k] for k in COLUMNS}


class _SplitShards:
    """Rows of one split into Parquet files of `shard_size` rows, written a row group at a time."""

    def __init__(self, out: Path, split: str, schema: Any, shard_size: int) -> None:
        self.out, self.split, self.schema, self.shard_size = out, split, schema, shard_size
        self.files: list[Path] = []
        self.pending: list[dict[str, Any]] = []
        self.writer: Any = None
        self.rows_in_file = 0
        self.rows = 0
        self.nbytes = 0

    def add(self, values: dict[str, Any]) -> None:
        self.pending.append(values)
        if len(self.pending) >= ROW_GROUP_ROWS or self.rows_in_file + len(self.pending) >= self.shard_size:
            self.flush()

    def flush(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not self.pending:
            return
        if self.writer is None:
            self.files.append(self.out / "data" / f".{self.split}-{len(self.files):05d}.parquet")
            self.files[-1].parent.mkdir(parents=True, exist_ok=True)
            self.writer = pq.ParquetWriter(self.files[-1], self.schema, compression="zstd")
        table = pa.Table.from_pylist(self.pending, schema=self.schema)
        self.writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
        self.rows += table.num_rows
        self.rows_in_file += table.num_rows
        self.nbytes += table.nbytes
        self.pending = []
        if self.rows_in_file >= self.shard_size:
            self.close_file()

    def close_file(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer, self.rows_in_file = None, 0

    def finish(self) -> list[str]:
        """Close and give the files their final names, `<split>-00000-of-00003.parquet`."""
        self.flush()
        self.close_file()
        names = []
        for i, tmp in enumerate(self.files):
            name = f"data/{self.split}-{i:05d}-of-{len(self.files):05d}.parquet"
            os.replace(tmp, self.out / name)
            names.append(name)
        return names


def dataset_card(feats: Any, shards: dict[str, _SplitShards], language: str) -> str:
    """README.md: the YAML front matter `load_dataset` and the Hub read (configs, features, splits)."""
    from datasets import DatasetInfo, SplitDict, SplitInfo
    from datasets.info import DatasetInfosDict
    from datasets.utils.metadata import MetadataConfigs
    from huggingface_hub import DatasetCardData

    splits = SplitDict()
    for name, s in shards.items():
        splits.add(SplitInfo(name=name, num_bytes=s.nbytes, num_examples=s.rows))
    download = sum(f.stat().st_size for s in shards.values() for f in (s.out / "data").glob(f"{s.split}-*.parquet"))
    info = DatasetInfo(features=feats, splits=splits, download_size=download,
                       dataset_size=sum(s.nbytes for s in shards.values()))
    card = DatasetCardData(language=[language] if language else None, task_categories=["automatic-speech-recognition"],
                           tags=["speech", "jstip", "speech-text-interleaved"])
    DatasetInfosDict({"default": info}).to_dataset_card_data(card)
    MetadataConfigs({"default": {"data_files": [{"split": name, "path": f"data/{name}-*"} for name in shards]}}
                    ).to_dataset_card_data(card)
    total = sum(s.rows for s in shards.values())
    by_split = ", ".join(f"{name}: {s.rows}" for name, s in shards.items())
    body = f"""
# JSTIP export

{total} speech samples ({by_split}) exported by `jstip export --format hf`: each row is one training sample
of the JSTIP pipeline (its `kind`: asr, interleave_word, interleave_segment, tts_pair, ...) with its audio
(`audio`: FLAC bytes, the source's stretch `offset`..`offset + duration` of `audio_path`), the target `text`,
the sample's `spans` (speech and text, in order; speech times in seconds from the audio's start) and the
`words` of its forced alignment (seconds from the audio's start).

```python
from datasets import load_dataset
ds = load_dataset("path/to/this/folder", split="train")
```
"""
    return f"---\n{card}\n---\n{body}"


def write_hf(items: Iterable[ExportItem], out: Path, skips: Skips, shard_size: int) -> dict[str, Any]:
    """Write the items as a Hugging Face dataset folder into `out`; returns the files written."""
    feats = features()
    schema = feats.arrow_schema
    shards: dict[str, _SplitShards] = {}
    n, language = 0, ""
    for item, audio, rate in with_flac(items, skips):
        split = split_name(item.split)
        if split not in shards:
            shards[split] = _SplitShards(out, split, schema, shard_size)
        shards[split].add(row(item, audio, rate))
        n, language = n + 1, item.language
    files = [name for s in shards.values() for name in s.finish()]
    (out / "README.md").write_text(dataset_card(feats, shards, language), encoding="utf-8")
    return {"exported": n, "files": ["README.md", *files], "splits": {k: s.rows for k, s in shards.items()}}
