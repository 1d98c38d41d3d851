"""Run espeak-ng syntheses in a fresh process: `python -m synthetic.tts_subprocess` (pickle in, pickle out).

espeak-ng keeps filter state from one synthesis to the next, even across re-initialisation,
so the same call gives slightly different samples after a different history. Each shard
task of `jstip interleave` synthesizes its tts pairs here, in a process with no history,
so the shard's bytes never depend on which worker ran it or what it ran before.
"""
from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

from manifests.errors import JstipError

Request = tuple[str, str, int, int]  # text, voice, rate (wpm), noise seed


def synthesize_fresh(requests: list[Request]) -> list[tuple[Any, list[tuple[str, float, float]], int] | str]:
    """(audio float32, [(word, start, end)], sample rate) per request, or the error text."""
    if not requests:
        return []
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run([sys.executable, "-m", "synthetic.tts_subprocess"], input=pickle.dumps(requests),
                          capture_output=True, env=env, cwd=root)
    if done.returncode != 0:
        raise JstipError(f"tts: the espeak-ng process failed: {done.stderr.decode(errors='replace')[-500:]}")
    return pickle.loads(done.stdout)


def _serve() -> None:
    from aligners.espeak import espeak

    engine = espeak()
    results: list[Any] = []
    for text, voice, rate, seed in pickle.loads(sys.stdin.buffer.read()):
        try:
            audio, words = engine.synthesize(text, voice=voice, rate=rate, seed=seed)
            results.append((audio, [(w.text, w.start, w.end) for w in words], engine.sample_rate))
        except JstipError as exc:
            results.append(str(exc))
    sys.stdout.buffer.write(pickle.dumps(results))


if __name__ == "__main__":
    _serve()
