"""Corpus readers: (audio, transcript) pairs from the layouts users already have, behind one table.

| format | reader | layout |
| --- | --- | --- |
| `mfa` | `directories.iter_mfa_dir` | `speaker/*.wav|flac|...` beside `.lab`/`.txt` |
| `librispeech` | `directories.iter_librispeech` | `*.trans.txt` listings + flac |
| `list`, `nemo` | `lists.iter_list` | CSV/TSV/JSONL list, NeMo manifest |
| `lhotse` | `lhotse_manifest.iter_lhotse` | a CutSet or supervision + recording manifests |
| `hf` | `hf_parquet.iter_hf` | a Hugging Face dataset as Parquet with an `Audio` column |

`auto` detects the layout (`detect_format`). Readers only find pairs; `checks` verifies audio and
text for `jstip prepare`, `textnorm` normalises, `domain_text` reads the transcript-only text, and
`export` writes sample shards in peers' formats (Lhotse, NeMo). Every pair carries an absolute
audio path (relative paths are resolved against the list's own folder), so manifests work from
any directory. Imports neither torch nor the peers' libraries.
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Iterator

from manifests import storage
from manifests.errors import JstipError
from manifests.storage import is_url

from .base import AUDIO_SUFFIXES, LIST_SUFFIXES, RawUtterance

# format -> (module, reader function); a reader takes (path, encoding=..., audio_dir=...) keywords it needs
READERS: dict[str, tuple[str, str]] = {
    "mfa": ("corpora.directories", "iter_mfa_dir"),
    "librispeech": ("corpora.directories", "iter_librispeech"),
    "list": ("corpora.lists", "iter_list"),
    "nemo": ("corpora.lists", "iter_list"),
    "lhotse": ("corpora.lhotse_manifest", "iter_lhotse"),
    "hf": ("corpora.hf_parquet", "iter_hf"),
}
FORMATS = ("auto", *READERS)


def detect_format(path: Path) -> str:
    """Guess a corpus layout from what is on disk."""
    name = path.name.lower()
    if path.is_file():
        if name.endswith(".parquet"):
            return "hf"
        if name.endswith((".jsonl.gz", ".json.gz")) or name.endswith((".jsonl", ".json")):
            from .lhotse_manifest import looks_like_lhotse

            return "lhotse" if looks_like_lhotse(path) else "list"
        if name.endswith(LIST_SUFFIXES):
            return "list"
        raise JstipError(f"{path} is a file but not a .csv/.tsv/.jsonl/.json list, a Lhotse manifest or a "
                         "Parquet dataset; pass one of those or a corpus directory")
    if not path.is_dir():
        raise JstipError(f"corpus {path} does not exist; set prepare.corpus (or --corpus) to your data")
    if next(path.rglob("*.trans.txt"), None) is not None:
        return "librispeech"
    has_audio = any(p.suffix.lower() in AUDIO_SUFFIXES for p in path.rglob("*"))
    if not has_audio and next(path.rglob("*.parquet"), None) is not None:
        return "hf"
    return "mfa"


def iter_corpus(path: str | Path, fmt: str = "auto", encoding: str = "utf-8", audio_dir: str | Path = "") -> Iterator[RawUtterance]:
    """Pairs found under `path` in layout `fmt` (`auto` detects it); `audio_dir` receives audio
    embedded in a Parquet dataset."""
    if fmt not in FORMATS:
        raise JstipError(f"unknown corpus format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if is_url(path):
        return _iter_remote(str(path), fmt, encoding)
    path = Path(path)
    if not path.exists():
        raise JstipError(f"corpus {path} does not exist; set prepare.corpus (or --corpus) to your data")
    fmt = detect_format(path) if fmt == "auto" else fmt
    if fmt in ("mfa", "librispeech") and not path.is_dir():
        raise JstipError(f"format {fmt} needs a corpus directory, got the file {path}")
    module, name = READERS[fmt]
    reader = getattr(importlib.import_module(module), name)
    if fmt == "hf":
        return reader(path, Path(audio_dir or "data/prepared_audio"))
    if fmt == "lhotse":
        return reader(path)
    return reader(path, encoding)


def _iter_remote(url: str, fmt: str, encoding: str) -> Iterator[RawUtterance]:
    """A list or NeMo manifest in object storage (read as a stream; its audio stays there too)."""
    if fmt == "auto":
        if not url.lower().endswith(tuple(LIST_SUFFIXES) + tuple(s + ".gz" for s in LIST_SUFFIXES)):
            raise JstipError(f"{url}: a corpus in object storage is read as a CSV/TSV/JSONL list or NeMo manifest "
                             "(format list or nemo); copy other layouts locally")
        fmt = "list"
    if fmt not in ("list", "nemo"):
        raise JstipError(f"format {fmt} is read from local files only; {url} is in object storage (use a list)")
    if not storage.is_file(url):
        raise JstipError(f"corpus {url} does not exist (or the credentials in the environment cannot read it)")
    from .lists import iter_list

    return iter_list(storage.as_path(url), encoding)
