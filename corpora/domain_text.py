"""Domain text (the paper's PubMed): text files with one sentence per line, read under the same
encoding policy as transcripts; a line with no words left is a rejection, not a silent drop."""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Iterable, Iterator

from manifests import storage
from manifests.errors import JstipError
from manifests.schema import Rejected, Text

from .base import decode_text
from .textnorm import normalize


def iter_text_lines(path: str | Path, encoding: str = "utf-8") -> Iterator[tuple[str, str, str]]:
    """(text_id, line, problem) for each non-empty line of a domain text file (a local path or an fsspec URL)."""
    path = storage.as_path(str(path))
    if not storage.is_file(str(path)):
        raise JstipError(f"domain text file {path} does not exist; fix prepare.domain_text (or --domain-text)")
    with storage.open_binary(str(path)) as f:
        for n, raw in enumerate(f, start=1):
            line, problem = decode_text(raw, encoding, f"{path.name} line {n}")
            if line.strip() or problem:
                yield f"{path.stem}-{n:06d}", " ".join(line.split()), problem


def domain_text_files(spec: str) -> list[Path | storage.RemotePath]:
    """The files of `prepare.domain_text`: a file, a directory (its *.txt), or a comma-separated list;
    each may be an fsspec URL (`s3://bucket/pubmed/`)."""
    files: list[Path | storage.RemotePath] = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        path = storage.as_path(part)
        if storage.is_dir(part):
            found = [storage.as_path(f) for f in storage.glob(part, "**/*.txt")]
            if not found:
                raise JstipError(f"domain text directory {path} holds no .txt files")
            files += found
        else:
            files.append(path)
    return files


def build_texts(paths: Iterable[Path | storage.RemotePath], encoding: str = "utf-8") -> Iterator[Text | Rejected]:
    """Domain text records from text files; lines with no words left (or undecodable) are rejected."""
    stems: Counter = Counter()
    for path in paths:
        stems[path.stem] += 1
        source = path.stem if stems[path.stem] == 1 else f"{path.parent.name}_{path.stem}"
        for text_id, line, problem in iter_text_lines(path, encoding):
            text_id = text_id if stems[path.stem] == 1 else f"{source}-{text_id.rsplit('-', 1)[1]}"
            norm = normalize(line) if not problem else ""
            if problem or not norm:
                yield Rejected("prepare", text_id, problem or "no_words: no words after normalisation")
            else:
                yield Text(text_id, line, norm, path.name)
