"""WebDataset tar shards through the `webdataset` library's `ShardWriter`.

One sample per key: `<key>.flac` (the sample's audio, see `items.audio_flac`) and `<key>.json`
(ids, target text, speaker, language, split, spans and word times in seconds from the audio's
start). Shards are `shard-NNNNNN.tar`, `shard_size` samples each, so that a reader's brace
pattern (`shard-{000000..000009}.tar`) or a sorted glob lists them. WebDataset splits a file name
at its first dot into key and extension, so a sample id with a dot or slash gets a key with those
replaced (and a short hash of the id against collisions); the real id is in the JSON.
"""
from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any, Iterable


from .items import ExportItem, Skips, with_flac

FILES = re.compile(r"shard-\d{6}\.tar")
_UNSAFE = re.compile(r"[./\\]")


def sample_key(sample_id: str) -> str:
    """A WebDataset key for a sample id: the id itself when it has no dot or slash."""
    if not _UNSAFE.search(sample_id):
        return sample_id
    return f"{_UNSAFE.sub('_', sample_id)}-{hashlib.sha1(sample_id.encode()).hexdigest()[:8]}"


def write_webdataset(items: Iterable[ExportItem], out: Path, skips: Skips, shard_size: int) -> dict[str, Any]:
    """Write the items as WebDataset shards into `out`; returns the shard files written."""
    import webdataset as wds

    n = 0
    # maxsize: a shard closes at 1 GB even before `shard_size` samples (very long recordings)
    with wds.ShardWriter(str(out / "shard-%06d.tar"), maxcount=shard_size, maxsize=1e9, verbose=0) as sink:
        for item, audio, rate in with_flac(items, skips):
            sink.write({"__key__": sample_key(item.sample.sample_id), "flac": audio, "json": item.meta(rate)})
            n += 1
    return {"exported": n, "files": sorted(p.name for p in out.glob("shard-*.tar"))}
