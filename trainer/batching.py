"""Batch planning: pools of row groups, padded or packed batches, worker streams with an exact cursor.

Start-up knows only row groups and their row counts (and a columnar scan's estimates, see
`shards.scan`). Each epoch is planned deterministically from (seed, stage, epoch): this rank's
row groups (in chunks) are shuffled and cut into pools of about `pool` batches' worth of samples,
each pool a stratified draw over the chunks' kinds (see `TrainData.pools`); pools are
dealt round-robin to S streams (one per loader worker). A pool is planned only when its stream
reaches it: its samples are read (metadata only), rendered lengths computed exactly, samples
longer than `context` set aside with a reason, the rest shuffled and then
- `padded`: sorted by length × (1 ± `length_jitter`) and cut into batches of `batch_size` rows (or
  as many as fit `batch_tokens` padded tokens), one sample per row; or
- `packed` (the paper's): packed first-fit-decreasing into rows of `context` tokens, `batch_size`
  rows per batch; the model resets attention at each sample (see `model.py`), so packing only
  removes padding.
Batches are shuffled within the pool. The streams are read round-robin (workers of a
`DataLoader`, or in turn in the main process), so the order of batches is fixed by the settings.
A stream's cursor is (epoch, pool, batch): resuming re-plans that pool and starts there, reading
no audio for the batches before it. Nothing here draws from a global RNG (the loader's workers
are seeded from their own generator), so dropout masks of a resumed run match.
"""
from __future__ import annotations

import random
import signal
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from manifests.errors import JstipError
from manifests.schema import Sample

from .data import Collator, Features, load_item
from .features import FrameSpec
from .render import BadSample, check_spans, rendered_lengths, tokenize_pieces
from .shards import CorpusStats, MemorySource, ShardSource, scan, text_sample
from .tokenizer import TokenIds

BATCHING = ("packed", "padded")
Slice = tuple[int, int, int]  # (chunk, start row, stop row) of the source: what a pool reads
PACK_FILL = 0.97  # expected share of a packed row that holds tokens (for estimates only)


@dataclass(frozen=True)
class Batching:
    """How samples become batches (all of it decides the data order: a resume must keep it)."""

    batching: str = "packed"
    batch_size: int = 16  # padded: samples per batch; packed: rows of `context` tokens per batch
    batch_tokens: int = 0  # padded only: padded tokens per batch instead of batch_size
    context: int = 1024  # packed: tokens per row; both: longer samples are skipped
    pool: int = 32  # batches' worth of samples planned together
    length_jitter: float = 0.1  # padded only
    seed: int = 0

    def check(self) -> None:
        if self.batching not in BATCHING:
            raise JstipError(f"batching {self.batching!r} is unknown; use packed or padded")
        if self.context < 8:
            raise JstipError(f"context must be at least 8 tokens, got {self.context}")
        if self.batch_size < 1 and not (self.batching == "padded" and self.batch_tokens > 0):
            raise JstipError(f"batch_size must be at least 1 (padded: or batch_tokens > 0), got {self.batch_size}")
        if self.pool < 1:
            raise JstipError(f"pool must be at least 1, got {self.pool}")


@dataclass(frozen=True)
class Stage:
    """The samples a stream draws: all kinds, or only `kinds` (stage 1 trains on ASR data)."""

    name: str = "main"
    kinds: tuple[str, ...] | None = None


def cut_batches(order: Sequence[int], lengths: Sequence[int], batch_size: int, batch_tokens: int,
                max_padding: float = 0.1) -> list[list[int]]:
    """Consecutive batches of a length-sorted order: `batch_size` rows, or, with `batch_tokens`, as many
    rows as keep rows × longest ≤ `batch_tokens` and the batch's padding share ≤ `max_padding`."""
    if not batch_tokens:
        return [list(order[i:i + batch_size]) for i in range(0, len(order), batch_size)]
    batches, cur, total, longest = [], [], 0, 0
    for i in order:
        new_longest, new_total = max(longest, lengths[i]), total + lengths[i]
        width = (len(cur) + 1) * new_longest
        if cur and (width > batch_tokens or 1 - new_total / width > max_padding):
            batches.append(cur)
            cur, new_longest, new_total = [], lengths[i], lengths[i]
        cur.append(i)
        longest, total = new_longest, new_total
    if cur:
        batches.append(cur)
    return batches


def pack_rows(order: Sequence[int], lengths: Sequence[int], context: int) -> list[list[int]]:
    """First-fit decreasing: each sample (longest first) goes to the first row with room; rows of ≤ `context`."""
    room = np.zeros(0, dtype=np.int64)
    rows: list[list[int]] = []
    for i in sorted(order, key=lambda i: -lengths[i]):
        fits = np.flatnonzero(room >= lengths[i])
        if fits.size:
            r = int(fits[0])
        else:
            r = len(rows)
            rows.append([])
            room = np.append(room, context)
        rows[r].append(i)
        room[r] -= lengths[i]
    return rows


@dataclass
class Planned:
    """One planned batch: indices into its pool's samples and, when packed, each one's row."""

    members: list[int]
    rows: list[int] | None


def _ignore_sigint(_: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle


class TrainData:
    """A rank's training data: a sample source, how to batch it, and the streams that read it."""

    def __init__(self, source: Any, tok: PreTrainedTokenizerBase, spec: FrameSpec, batching: Batching,
                 stats: CorpusStats, span_encoding: str = "concat", streams: int = 1, cache_mb: float = 512.0,
                 ctc_units: str = "tokens") -> None:
        batching.check()
        self.source, self.tok, self.ids, self.spec, self.batching = source, tok, TokenIds(tok), spec, batching
        self.stats = stats
        self.streams = max(1, min(streams, len(source.groups)))
        self.collator = Collator(tok, spec, max_tokens=batching.context, span_encoding=span_encoding, ctc_units=ctc_units)
        self.features = Features(spec, cache_mb, self._audio_bytes)
        self.refs: dict[str, tuple[int, int]] = {}  # sample id -> (row group, row) of the pools being read
        self._pools: tuple[Any, list[list[int]]] | None = None

    # -- sizes (estimates from the scan) ------------------------------------------------------------
    def rows(self, stage: Stage) -> int:
        return sum(n for k, n in self.stats.rows_by_kind.items() if stage.kinds is None or k in stage.kinds)

    def tokens(self, stage: Stage) -> float:
        return sum(n for k, n in self.stats.tokens_by_kind.items() if stage.kinds is None or k in stage.kinds)

    def tokens_per_batch(self, stage: Stage) -> float:
        """Expected sample tokens in one batch."""
        b = self.batching
        if b.batching == "packed":
            return b.batch_size * b.context * PACK_FILL
        if b.batch_tokens:
            return b.batch_tokens * 0.9
        return b.batch_size * max(self.stats.mean_length(stage.kinds), 1.0)

    def batches_per_epoch(self, stage: Stage) -> float:
        return self.tokens(stage) / max(self.tokens_per_batch(stage), 1.0)

    # -- planning -----------------------------------------------------------------------------------
    def pools(self, stage: Stage, epoch: int) -> list[list[Slice]]:
        """The slices (chunk, start, stop) of each pool of an epoch (deterministic), every pool a
        stratified draw: chunks are grouped by their main kind, each group's chunks shuffled and its
        rows cut into as many consecutive runs as there are pools, pool p taking run p of every group.
        So every pool mixes the kinds as the whole data does (interleave writes each kind to its own
        row groups: unstratified pools were one kind each, and a run shorter than an epoch saw only the
        kinds its seed put first)."""
        key = (stage, epoch)
        if self._pools is not None and self._pools[0] == key:
            return self._pools[1]
        rng = random.Random(f"{self.batching.seed}:{stage.name}:{epoch}:pools")
        strata: dict[str, list[int]] = {}
        for g, counts in enumerate(self.source.chunk_kinds()):
            wanted = {k: n for k, n in counts.items() if stage.kinds is None or k in stage.kinds}
            if wanted:
                strata.setdefault(max(sorted(wanted), key=wanted.__getitem__), []).append(g)
        total = sum(self.source.groups[g].n for gs in strata.values() for g in gs)
        share = self.rows(stage) / max(total, 1)
        per_batch = self.tokens_per_batch(stage) / max(self.stats.mean_length(stage.kinds), 1.0)
        target = max(1.0, self.batching.pool * per_batch / max(share, 1e-9))
        n_pools = max(self.streams, min(total, round(total / target))) if total else self.streams
        pools: list[list[Slice]] = [[] for _ in range(n_pools)]
        for name in sorted(strata):
            order = strata[name]
            rng.shuffle(order)
            rows = sum(self.source.groups[g].n for g in order)
            cuts = [round(rows * p / n_pools) for p in range(n_pools + 1)]
            offset = 0  # rows of this stratum before chunk g
            p = 0
            for g in order:
                n = self.source.groups[g].n
                while p < n_pools and cuts[p] < offset + n:
                    a, b = max(cuts[p], offset) - offset, min(cuts[p + 1], offset + n) - offset
                    if b > a:
                        pools[p].append((g, a, b))
                    if cuts[p + 1] > offset + n:
                        break
                    p += 1
                offset += n
        pools = [pool for pool in pools if pool]
        if len(pools) < self.streams:  # tiny data: every stream gets at least one pool of whole chunks
            chunks = sorted(g for gs in strata.values() for g in gs) or list(range(len(self.source.groups)))
            pools = [[(g, 0, self.source.groups[g].n) for g in chunks[s::self.streams]] for s in range(self.streams)]
        self._pools = (key, pools)
        return pools

    def plan_pool(self, stage: Stage, epoch: int, pool: int, slices: Sequence[Slice]
                  ) -> tuple[list[Sample], list[Planned], dict[str, str]]:
        """A pool's samples (of the stage's kinds), its batches, and the samples set aside with reasons.

        Each sample's (row group, row) is kept in `self.refs` for reading its embedded audio.
        """
        samples: list[Sample] = []
        skipped: dict[str, str] = {}
        for g, start, stop in slices:
            for row, s in enumerate(self.source.read(g, start, stop), start=start):
                if stage.kinds is not None and s.kind not in stage.kinds:
                    continue
                try:
                    check_spans(s)
                except BadSample as exc:
                    skipped[s.sample_id] = str(exc)
                    continue
                samples.append(s)
                self.refs[s.sample_id] = (g, row)
        lengths = rendered_lengths(samples, self.tok, self.ids, self.spec)
        b = self.batching
        keep = []
        for i, (s, n) in enumerate(zip(samples, lengths)):
            if n > b.context:
                skipped[s.sample_id] = f"too_long: {n} positions > context {b.context}"
            else:
                keep.append(i)
        rng = random.Random(f"{b.seed}:{stage.name}:{epoch}:{pool}")
        rng.shuffle(keep)
        if b.batching == "packed":
            rows = pack_rows(keep, lengths, b.context)
            rng.shuffle(rows)
            planned = []
            for k in range(0, len(rows), b.batch_size):
                chunk = rows[k:k + b.batch_size]
                planned.append(Planned([i for r in chunk for i in r], [j for j, r in enumerate(chunk) for _ in r]))
        else:
            key = {i: lengths[i] * (1.0 + rng.uniform(-b.length_jitter, b.length_jitter)) for i in keep}
            batches = cut_batches(sorted(keep, key=lambda i: key[i]), lengths, b.batch_size, b.batch_tokens)
            rng.shuffle(batches)
            planned = [Planned(batch, None) for batch in batches]
        return samples, planned, skipped

    def _audio_bytes(self, sample: Sample) -> bytes | None:
        if sample.audio is not None:
            return sample.audio
        ref = self.refs.get(sample.sample_id)
        return self.source.audio(*ref) if ref is not None else None

    def collate(self, samples: Sequence[Sample], planned: Planned, skipped: dict[str, str]) -> dict[str, Any] | None:
        items = [load_item(samples[i], self.features, skipped) for i in planned.members]
        self.collator.skipped = skipped
        return self.collator(items, planned.rows)

    # -- reading ------------------------------------------------------------------------------------
    def stream(self, stage: Stage, s: int, cursor: Sequence[int] = (0, 0, 0)) -> Iterator[dict[str, Any]]:
        """Endless batches of stream `s` from `cursor` = (epoch, pool, batch); each carries the cursor after it.

        Samples set aside are reported only on a pool's first visit (epoch 0), so each is counted once.
        """
        epoch, k, j = (int(c) for c in cursor)
        whole, produced = k == 0 and j == 0, False  # whether this epoch is read from its start, and gave a batch
        while True:
            mine = self.pools(stage, epoch)[s::self.streams]
            if k >= len(mine):
                if whole and not produced:
                    raise JstipError(f"no batch can be built from the row groups of stream {s}"
                                     + (f" for kinds {', '.join(stage.kinds)}" if stage.kinds else "")
                                     + ": every sample is of another kind or was set aside; see the skipped reasons")
                epoch, k, j, whole, produced = epoch + 1, 0, 0, True, False
                continue
            samples, planned, skipped = self.plan_pool(stage, epoch, s + k * self.streams, mine[k])
            report = epoch == 0
            if not planned:
                yield {"empty": True, "stream": s, "epoch": epoch, "cursor": (epoch, k + 1, 0),
                       "skipped": skipped if report else {}}
            for jj in range(j, len(planned)):
                produced = True
                batch_skipped = dict(skipped) if jj == 0 and report else {}
                batch = self.collate(samples, planned[jj], batch_skipped)
                after = (epoch, k, jj + 1) if jj + 1 < len(planned) else (epoch, k + 1, 0)
                batch = batch if batch is not None else {"empty": True}
                batch.update(stream=s, epoch=epoch, cursor=after, skipped=batch_skipped if report else {})
                yield batch
            for sample in samples:
                self.refs.pop(sample.sample_id, None)
            k, j = k + 1, 0

    def loader(self, stage: Stage, cursors: Sequence[Sequence[int]] | None = None, next_stream: int = 0,
               num_workers: int = 0, pin_memory: bool = False) -> Iterator[dict[str, Any]]:
        """Batches of every stream, round-robin from `next_stream`; workers run one stream each."""
        cursors = [tuple(c) for c in cursors] if cursors else [(0, 0, 0)] * self.streams
        if len(cursors) != self.streams:
            raise JstipError(f"the saved data cursor has {len(cursors)} streams, this run {self.streams}; "
                             "resume with the same num_workers")
        streams = _Streams(self, stage, cursors, next_stream)
        if num_workers <= 0:
            return iter(streams)
        return iter(torch.utils.data.DataLoader(streams, batch_size=None, num_workers=self.streams,
                                                worker_init_fn=_ignore_sigint, pin_memory=pin_memory,
                                                generator=torch.Generator().manual_seed(self.batching.seed)))


class _Streams(torch.utils.data.IterableDataset):
    """Worker w runs stream (next + w) mod S; in the main process all streams run in turn."""

    def __init__(self, data: TrainData, stage: Stage, cursors: list[tuple[int, ...]], next_stream: int) -> None:
        self.data, self.stage, self.cursors, self.next = data, stage, cursors, next_stream

    def __iter__(self) -> Iterator[dict[str, Any]]:
        n = self.data.streams
        info = torch.utils.data.get_worker_info()
        if info is not None:
            s = (self.next + info.id) % n
            yield from self.data.stream(self.stage, s, self.cursors[s])
            return
        its = [self.data.stream(self.stage, s, self.cursors[s]) for s in range(n)]
        s = self.next
        while True:
            yield next(its[s])
            s = (s + 1) % n


def chars_per_token(tok: PreTrainedTokenizerBase, texts: Sequence[str], max_chars: int = 200_000) -> float:
    """Characters per token of `tok` on (up to `max_chars` of) `texts`; 4 when there is no text."""
    chosen, total = [], 0
    for t in texts:
        chosen.append(t)
        total += len(t)
        if total >= max_chars:
            break
    n = sum(len(x) for x in tokenize_pieces(tok, chosen))
    return total / n if n else 4.0


def data_from_source(source: Any, tok: PreTrainedTokenizerBase, spec: FrameSpec, batching: Batching,
                     span_encoding: str = "concat", streams: int = 1, cache_mb: float = 512.0,
                     check_format: bool = True, ctc_units: str = "tokens") -> TrainData:
    """`TrainData` after one columnar scan of `source` (sizes, and the `</s>` check)."""
    cpt = chars_per_token(tok, text_sample(source, 200_000, batching.seed))
    stats = scan(source, spec, cpt, check_format)
    return TrainData(source, tok, spec, batching, stats, span_encoding, streams, cache_mb, ctc_units)


def data_from_samples(samples: Sequence[Sample], tok: PreTrainedTokenizerBase, spec: FrameSpec,
                      batching: Batching = Batching(), span_encoding: str = "concat", streams: int = 1,
                      group_size: int = 1024) -> TrainData:
    """`TrainData` over in-memory samples (groups of `group_size` stand in for row groups)."""
    return data_from_source(MemorySource(samples, group_size), tok, spec, batching, span_encoding, streams)


def data_from_shards(path: str, tok: PreTrainedTokenizerBase, spec: FrameSpec, batching: Batching = Batching(),
                     rank: int = 0, world_size: int = 1, span_encoding: str = "concat", streams: int = 1,
                     cache_mb: float = 512.0) -> TrainData:
    """`TrainData` over this rank's row groups of a sample manifest."""
    return data_from_source(ShardSource(path, rank, world_size), tok, spec, batching, span_encoding, streams, cache_mb)
