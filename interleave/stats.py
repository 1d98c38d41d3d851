"""`jstip stats DIR`: a summary table of a manifest directory (or file).

Sample shards: one row per kind with samples, shares, speech hours, words, the speech/text
word ratio, tokens (speech seconds x rate + text words x tokens per word + special tokens, as
`jstip interleave` counts them) and embedded audio; alignment shards: counts by status and
reason. Reads through `manifests.io` so the schema is checked on the way.
"""
from __future__ import annotations

from collections import Counter, defaultdict

from interleave.tokens import Rates, count
from manifests.io import iter_records, manifest_files
from manifests.schema import SPEECH, TOKEN, Alignment, Sample


def table(header: list[str], rows: list[list[object]]) -> str:
    """A plain aligned text table."""
    cells = [header] + [[f"{c:,.4g}" if isinstance(c, float) else str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in cells]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


def sample_table(path: str, sps: float, tpw: float) -> str:
    agg: dict[str, Counter] = defaultdict(Counter)
    for s in iter_records(path, Sample):
        a = agg[s.kind]
        a["samples"] += 1
        seconds = sum(sp.end - sp.start for sp in s.spans if sp.modality == SPEECH)
        a["seconds"] += seconds
        a["speech_words"] += s.n_speech_words
        a["text_words"] += s.n_text_words
        a["spans"] += len(s.spans)
        a["tokens"] += float(count(seconds, s.n_text_words, sum(sp.modality == TOKEN for sp in s.spans), Rates(sps, tpw)))
        a["audio"] += len(s.audio or b"")
    total = Counter()
    for a in agg.values():
        total.update(a)
    rows = []
    for kind, a in sorted(agg.items()) + [("TOTAL", total)]:
        rows.append([kind, int(a["samples"]), a["samples"] / max(total["samples"], 1), a["seconds"] / 3600,
                     int(a["speech_words"]), int(a["text_words"]), a["speech_words"] / max(a["text_words"], 1),
                     a["spans"] / max(a["samples"], 1), int(a["tokens"]), a["tokens"] / max(total["tokens"], 1e-9),
                     a["audio"] / 2**20])
    files = manifest_files(path)
    size = sum(f.stat().st_size for f in files) / 2**20
    head = ["kind", "samples", "share", "speech_h", "speech_words", "text_words", "speech/text", "spans/sample",
            "tokens", "token_share", "audio_MB"]
    return f"{path}: {len(files)} shard(s), {size:.2f} MB on disk\n" + table(head, rows)


def alignment_table(path: str) -> str:
    counts = Counter((a.status, a.reason or "-", a.aligner) for a in iter_records(path, Alignment))
    words = Counter()
    for a in iter_records(path, Alignment):
        words[a.status] += len(a.words)
    rows = [[status, reason[:60], aligner, n] for (status, reason, aligner), n in sorted(counts.items())]
    return f"{path}: {sum(counts.values())} alignments, {sum(words.values())} words\n" + table(
        ["status", "reason", "aligner", "count"], rows)
