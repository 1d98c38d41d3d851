"""A stable 64-bit hash of every string of an Arrow array, vectorised: how items are chosen.

Selection (which source gives which kind) and per-item draws (the level of an
`interleave_mixed` sample) depend only on (seed, purpose, id), never on sharding, worker count or
order, so 1 and N workers choose the same items. FNV-1a over the UTF-8 bytes, seeded by a salt,
then murmur3's 64-bit finaliser so that every bit is well mixed. Fixed arithmetic: the same id
hashes alike on every machine and version (unlike Python's `hash` or Arrow's internal hashes).
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa

_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)
_M1, _M2 = np.uint64(0xFF51AFD7ED558CCD), np.uint64(0xC4CEB9FE1A85EC53)
_S33 = np.uint64(33)


def _salt_state(salt: str) -> np.uint64:
    h = int(_FNV_OFFSET)
    for byte in salt.encode():
        h = ((h ^ byte) * int(_FNV_PRIME)) & 0xFFFFFFFFFFFFFFFF
    return np.uint64(h)


def _fmix(h: np.ndarray) -> np.ndarray:
    h = h ^ (h >> _S33)
    h = h * _M1
    h = h ^ (h >> _S33)
    h = h * _M2
    return h ^ (h >> _S33)


def string_hash(ids: pa.Array | pa.ChunkedArray, salt: str) -> np.ndarray:
    """uint64 hash of each string (nulls hash as empty strings), depending only on `salt` and the bytes."""
    if isinstance(ids, pa.ChunkedArray):
        ids = ids.combine_chunks() if ids.num_chunks else pa.array([], pa.string())
    if not pa.types.is_string(ids.type):
        ids = ids.cast(pa.string())
    n = len(ids)
    h = np.full(n, _salt_state(salt), dtype=np.uint64)
    if n == 0:
        return h
    buffers = ids.buffers()
    offsets = np.frombuffer(buffers[1], dtype=np.int32)[ids.offset: ids.offset + n + 1].astype(np.int64)
    data = np.frombuffer(buffers[2], dtype=np.uint8) if buffers[2] is not None else np.zeros(1, np.uint8)
    lengths = np.diff(offsets)
    if ids.null_count:
        lengths = np.where(np.asarray(ids.is_valid()), lengths, 0)
    starts = offsets[:-1]
    with np.errstate(over="ignore"):
        order = np.argsort(-lengths, kind="stable")  # longest first: position p touches a prefix
        sorted_len, sorted_start = lengths[order], starts[order]
        hs = h[order]
        for p in range(int(lengths.max(initial=0))):
            k = int(np.searchsorted(-sorted_len, -p, side="left"))  # strings longer than p
            hs[:k] = (hs[:k] ^ data[sorted_start[:k] + p].astype(np.uint64)) * _FNV_PRIME
        h[order] = hs
        return _fmix(h)


def unit_interval(h: np.ndarray) -> np.ndarray:
    """Hashes as floats uniform in [0, 1) (53 bits)."""
    return (h >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def buckets(h: np.ndarray, bits: int) -> np.ndarray:
    """Hashes as bucket numbers in [0, 2**bits): the order in which candidates are taken."""
    return (h >> np.uint64(64 - bits)).astype(np.int64)
