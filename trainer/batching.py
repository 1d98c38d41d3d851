"""Batch planning: length bucketing per epoch, a resumable cursor, and the map-style batch dataset.

Every batch of an epoch is decided up front from metadata alone (exact sequence lengths from
span times and token counts), deterministically from (seed, epoch): samples are shuffled within
row groups and row groups are shuffled, cut into pools of `pool` batches' worth of samples,
sorted by length (jittered, see `plan_epoch`) inside each pool and cut into batches (a fixed `batch_size`, or as many rows as
fit `batch_tokens` padded tokens), then each pool's batches are shuffled. Sorting within large
pools keeps padding low while batches stay random across the epoch. Pools are dealt to the
loader's worker streams round-robin and the streams interleaved, so each worker reads its own
row groups. The data cursor is just (epoch, position): resuming rebuilds the same plan and
starts at the position, with no audio read for the skipped batches.
"""
from __future__ import annotations

import random
from typing import Any, Callable, Iterator, Sequence

import torch
from transformers import PreTrainedTokenizerBase

from manifests.errors import JstipError
from manifests.schema import SPEECH, Sample

from .data import Collator, Features, load_item
from .features import FrameSpec, encoded_frames, mel_frames, span_frames


def sample_lengths(samples: Sequence[Sample], tok: PreTrainedTokenizerBase, spec: FrameSpec) -> list[int]:
    """Exact sequence length of each sample in the training layout (speech frames from `duration`)."""
    texts = [span.text for s in samples for span in s.spans if span.modality != SPEECH]
    counts = iter([len(ids) for ids in tok(texts, add_special_tokens=False)["input_ids"]] if texts else [])
    out = []
    for s in samples:
        n_frames = encoded_frames(mel_frames(int(round(s.duration * spec.sample_rate)), spec), spec)
        n = 2  # bos, eos
        for span in s.spans:
            if span.modality == SPEECH:
                first, last = span_frames(span.start, span.end, spec, n_frames)
                n += last - first + 2
            else:
                n += next(counts)
        out.append(n)
    return out


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


def plan_epoch(groups: Sequence[Sequence[int]], lengths: Sequence[int], batch_size: int, batch_tokens: int,
               pool: int, seed: int, epoch: int, streams: int = 1, jitter: float = 0.0) -> list[list[int]]:
    """The batches (lists of sample indices) of one epoch; see the module docstring.

    `jitter` sorts by length × (1 + u), u uniform in ±jitter drawn per epoch, so that batches
    are not the same set of samples every epoch (a fixed composition made the demo model
    generalise worse) at the cost of a little padding.
    """
    rng = random.Random(f"{seed}:{epoch}")
    shuffled = [list(g) for g in groups]
    for g in shuffled:
        rng.shuffle(g)
    rng.shuffle(shuffled)
    order = [i for g in shuffled for i in g]
    rows = batch_size if not batch_tokens else max(1, batch_tokens // max(1, sum(lengths) // max(1, len(lengths))))
    size = max(1, rows * pool)
    pools = []
    key = {i: lengths[i] * (1.0 + rng.uniform(-jitter, jitter)) for i in order} if jitter else lengths
    for k in range(0, len(order), size):
        batches = cut_batches(sorted(order[k:k + size], key=lambda i: key[i]), lengths, batch_size, batch_tokens)
        rng.shuffle(batches)
        pools.append(batches)
    lanes: list[list[list[int]]] = [[] for _ in range(max(1, streams))]
    for k, batches in enumerate(pools):
        lanes[k % len(lanes)] += batches
    out = []
    for j in range(max(len(lane) for lane in lanes)):
        out += [lane[j] for lane in lanes if j < len(lane)]
    return out


class PlannedBatches(torch.utils.data.Dataset):
    """Map-style dataset whose item `(epoch, position)` is that collated batch of the epoch's plan.

    Works in the main process or in loader workers (each keeps its own log-mel cache and plan).
    A batch carries `cursor` = the (epoch, position) after it, which the loop saves for resume.
    """

    def __init__(self, samples: Sequence[Sample], lengths: Sequence[int], groups: Sequence[Sequence[int]],
                 collator: Collator, spec: FrameSpec, batch_size: int, batch_tokens: int = 0, pool: int = 64,
                 seed: int = 0, streams: int = 1, audio_bytes: Callable[[Sample], bytes | None] | None = None,
                 cache_mb: float = 512.0, jitter: float = 0.0) -> None:
        if batch_size < 1 and not batch_tokens:
            raise JstipError(f"batch_size must be at least 1 (or batch_tokens > 0), got {batch_size}")
        if not samples:
            raise JstipError("no samples to train on; check the samples directory")
        self.samples, self.lengths, self.groups, self.collator = list(samples), list(lengths), groups, collator
        self.batch_size, self.batch_tokens, self.pool, self.seed, self.streams = batch_size, batch_tokens, pool, seed, streams
        self.jitter = jitter
        self.features = Features(spec, cache_mb, audio_bytes)
        self._plans: dict[int, list[list[int]]] = {}

    def plan(self, epoch: int) -> list[list[int]]:
        if epoch not in self._plans:
            self._plans = {epoch: plan_epoch(self.groups, self.lengths, self.batch_size, self.batch_tokens, self.pool,
                                             self.seed, epoch, self.streams, self.jitter)}
        return self._plans[epoch]

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Any] | None:
        epoch, pos = key
        plan = self.plan(epoch)
        skipped: dict[str, str] = {}
        items = [load_item(self.samples[i], self.features, skipped) for i in plan[pos]]
        self.collator.skipped = {}
        batch = self.collator(items)
        skipped.update(self.collator.skipped)
        nxt = (epoch, pos + 1) if pos + 1 < len(plan) else (epoch + 1, 0)
        batch = batch if batch is not None else {"empty": True}
        batch.update(cursor=nxt, skipped=skipped)  # skipped: samples of this batch only, with reasons
        return batch

    def __len__(self) -> int:
        return len(self.plan(0))


class CursorSampler(torch.utils.data.Sampler):
    """Endless `(epoch, position)` keys from a start cursor, epoch after epoch."""

    def __init__(self, dataset: PlannedBatches, start: tuple[int, int] = (0, 0)) -> None:
        self.dataset, self.start = dataset, start

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch, pos = self.start
        while True:
            n = len(self.dataset.plan(epoch))
            for p in range(pos, n):
                yield epoch, p
            epoch, pos = epoch + 1, 0


def planned_from_samples(samples: Sequence[Sample], tok: PreTrainedTokenizerBase, spec: FrameSpec,
                         batch_size: int = 16, batch_tokens: int = 0, pool: int = 64, seed: int = 0,
                         max_tokens: int = 2048, group_size: int = 1024, streams: int = 1,
                         jitter: float = 0.0) -> PlannedBatches:
    """`PlannedBatches` over in-memory samples (groups of `group_size` stand in for row groups)."""
    lengths = sample_lengths(samples, tok, spec)
    groups = [list(range(i, min(i + group_size, len(samples)))) for i in range(0, len(samples), group_size)]
    return PlannedBatches(samples, lengths, groups, Collator(tok, spec, max_tokens=max_tokens), spec, batch_size,
                          batch_tokens, pool, seed, streams, jitter=jitter)


def planned_from_shards(path: str, tok: PreTrainedTokenizerBase, collator: Collator, spec: FrameSpec, rank: int = 0,
                        world_size: int = 1, batch_size: int = 16, batch_tokens: int = 0, pool: int = 64,
                        seed: int = 0, streams: int = 1, max_tokens: int = 2048,
                        jitter: float = 0.0) -> tuple[PlannedBatches, dict[str, str]]:
    """`PlannedBatches` over this rank's row groups of a sample manifest, and the samples left out as too long.

    Only metadata is read here; embedded audio is read from its row group when a batch needs it.
    """
    from .data import check_sample
    from .shards import EmbeddedAudio, read_metadata, row_groups, split_for_rank

    samples: list[Sample] = []
    groups, refs = [], {}
    for g in split_for_rank(row_groups(path), rank, world_size):
        rows = read_metadata(g)
        groups.append(list(range(len(samples), len(samples) + len(rows))))
        for row, s in enumerate(rows):
            check_sample(s)
            refs[s.sample_id] = (g, row)
        samples += rows
    if not samples:
        raise JstipError(f"{path} holds no samples for rank {rank} of {world_size}; run the interleave stage first")
    lengths = sample_lengths(samples, tok, spec)
    too_long = {s.sample_id: f"longer than max_tokens={max_tokens}: {n} positions"
                for s, n in zip(samples, lengths) if n > max_tokens}
    keep = [[i for i in g if lengths[i] <= max_tokens] for g in groups]
    if not any(keep):
        raise JstipError(f"every sample of {path} (rank {rank}) is longer than max_tokens={max_tokens}; raise max_tokens")
    return PlannedBatches(samples, lengths, keep, collator, spec, batch_size, batch_tokens, pool, seed, streams,
                          EmbeddedAudio(refs), jitter=jitter), too_long
