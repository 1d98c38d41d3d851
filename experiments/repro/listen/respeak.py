"""Speak the sentences of a manifest again with other voices, as a manifest for ctc_greedy.py or a list corpus:

    python respeak.py data/test_utterances.parquet --voices en-us+m1,en-us+f1 --out respoken/test_trainvoices
    python respeak.py data/utterances.parquet --voices train:params.yaml --n 0 --copies 3 --min-rate 130 \
        --max-rate 200 --noise-share 0.5 --seed 1 --with-source --out data/respoken

Why: greedy CTC is worse on the test speech (held-out sentences, unseen voices) than on the training
speech; the held-out sentences spoken by *training* voices tell which of the two the encoder fails on
(the first form: clean speech, each voice in turn at `--rate` words per minute, 0.1 s of silence either
side). The second form makes more ASR training speech from the same sentences (E10): every row (`--n 0`)
`--copies` times, each copy by a voice drawn from the world's *training* voices (`train:PARAMS`: the
voices `jstip world-corpus` assigns to training with PARAMS's world_corpus section; never a test or TTS
voice) other than the row's own speaker, a rate drawn from [min-rate, max-rate], 0.05-0.3 s of silence
either side and, for a `--noise-share` of the copies, the world's white noise at 10-30 dB SNR.
Writes OUT/audio/*.flac, OUT/utterances.parquet (audio_path, offset, duration, text) and OUT/list.jsonl
(a list corpus for `jstip prepare`; with `--with-source` the source rows first, under their own ids).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402
import yaml  # noqa: E402

from manifests.audio import write_audio  # noqa: E402
from synthetic.world.speakers import ACCENTS, TRAIN, VARIANTS, Speaker, make_speakers  # noqa: E402
from synthetic.world.speech import SpeechItem, synthesize  # noqa: E402


def voices_of(spec: str) -> list[str]:
    """Voices from a comma-separated list, or `train:PARAMS` for the world's training voices."""
    if not spec.startswith("train:"):
        return [v.strip() for v in spec.split(",") if v.strip()]
    cfg = yaml.safe_load(Path(spec[len("train:"):]).read_text())["world_corpus"]
    speakers = make_speakers(cfg.get("accents", ACCENTS), cfg.get("variants", VARIANTS), cfg["test_speakers"],
                             cfg["tts_speakers"], cfg["min_rate"], cfg["max_rate"], cfg["seed"])
    return sorted(s.voice for s in speakers if s.group == TRAIN)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("manifest")
    ap.add_argument("--voices", required=True, help="espeak-ng voices, comma-separated (accent+variant), "
                    "or train:PARAMS (the world's training voices)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--n", type=int, default=100, help="first N rows (0: all)")
    ap.add_argument("--rate", type=int, default=160, help="words per minute (without --min-rate/--max-rate)")
    ap.add_argument("--min-rate", type=int, default=0)
    ap.add_argument("--max-rate", type=int, default=0)
    ap.add_argument("--copies", type=int, default=1)
    ap.add_argument("--noise-share", type=float, default=0.0)
    ap.add_argument("--snr-min", type=float, default=10.0)
    ap.add_argument("--snr-max", type=float, default=30.0)
    ap.add_argument("--seed", type=int, default=-1, help="-1: voices in turn, fixed rate, clean (the first form)")
    ap.add_argument("--with-source", action="store_true", help="list.jsonl also holds the source rows")
    ap.add_argument("--sample-rate", type=int, default=16000)
    args = ap.parse_args(argv)
    voices = voices_of(args.voices)
    out = Path(args.out)
    source = pl.read_parquet(args.manifest)
    if args.n:
        source = source.head(args.n)
    rng = np.random.default_rng(args.seed) if args.seed >= 0 else None
    rows, listed = [], []
    if args.with_source:
        listed = [{"utt_id": r["utt_id"], "audio": r["audio_path"], "offset": r["offset"], "duration": r["duration"],
                   "text": r["text"], "speaker": r["speaker"]} for r in source.iter_rows(named=True)]
    k = 0
    for copy in range(args.copies):
        for i, row in enumerate(source.iter_rows(named=True)):
            if rng is None:
                voice, rate, lead, trail, snr, seed = voices[k % len(voices)], args.rate, 0.1, 0.1, None, k
            else:
                own = row.get("speaker") or ""
                choices = [v for v in voices if v.replace("+", "_") != own] or voices
                voice = choices[int(rng.integers(len(choices)))]
                rate = int(rng.integers(args.min_rate or args.rate, (args.max_rate or args.rate) + 1))
                lead, trail = (round(float(x), 3) for x in rng.uniform(0.05, 0.3, 2))
                snr = round(float(rng.uniform(args.snr_min, args.snr_max)), 1) if rng.random() < args.noise_share else None
                seed = int(rng.integers(2**31 - 1))
            utt_id = f"re-{k:04d}" if rng is None else f"{row.get('utt_id', k)}-r{copy + 1}"
            speaker = Speaker(voice.replace("+", "_"), voice, rate, "train")
            audio, _ = synthesize(SpeechItem(utt_id, row["text"], speaker, rate, lead, trail, snr, seed),
                                  args.sample_rate, words=False)
            path = write_audio(audio, out / "audio" / f"{utt_id}.flac", args.sample_rate)
            duration = len(audio) / args.sample_rate
            rows.append({"audio_path": str(path.resolve()), "offset": 0.0, "duration": duration, "text": row["text"],
                         "voice": voice, "utt_id": utt_id, "rate": rate, "snr_db": snr})
            listed.append({"utt_id": utt_id, "audio": str(path.resolve()), "offset": 0.0, "duration": duration,
                           "text": row["text"], "speaker": speaker.speaker_id})
            k += 1
    pl.DataFrame(rows).write_parquet(out / "utterances.parquet")
    with open(out / "list.jsonl", "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in listed)
    print(f"{len(rows)} utterances ({sum(r['duration'] for r in rows) / 3600:.2f} h), {len(set(r['voice'] for r in rows))}"
          f" voices -> {out / 'utterances.parquet'}, {len(listed)} rows -> {out / 'list.jsonl'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
