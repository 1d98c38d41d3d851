"""Does the speech encoder listen? Greedy CTC decoding of a checkpoint's CTC head, scored against
the transcripts (WER and CER after lower-casing and dropping punctuation, as the letter targets).

    python ctc_greedy.py pretrained/encoder data/test_utterances.parquet --n 100   # held-out sentences
    python ctc_greedy.py pretrained/encoder data/utterances.parquet --n 100        # training speech

This reads the encoder alone, without the LM: comparing the two manifests shows memorisation
(training speech decoded, test speech not), and comparing it with `jstip evaluate` (the LM writes)
shows whether the LM uses what the encoder hears. `ctc_units: chars` checkpoints decode letters
from the encoder's 20 ms frames, `tokens` checkpoints tokens from the projected frames.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import jiwer  # noqa: E402
import polars as pl  # noqa: E402
import torch  # noqa: E402

from manifests.audio import load_audio  # noqa: E402
from trainer.checkpoint import load_checkpoint  # noqa: E402
from trainer.data import char_ids  # noqa: E402
from trainer.features import LogMel  # noqa: E402


def _words(text: str) -> str:
    return " ".join(w for w in ("".join(c for c in w if c.isalnum() or c == "'") for w in text.lower().split()) if w)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("checkpoint")
    ap.add_argument("manifest", help="an utterance manifest (Parquet: audio_path, offset, duration, text)")
    ap.add_argument("--n", type=int, default=100, help="the first N utterances")
    ap.add_argument("--show", action="store_true", help="print each reference || hypothesis")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    model, tok = load_checkpoint(args.checkpoint)
    if model.ctc_head is None:
        print(f"{args.checkpoint} has no CTC head (ctc_weight 0)", file=sys.stderr)
        return 1
    chars = model.cfg.ctc_units == "chars"
    letters = {i: c for c, i in char_ids(tok).items()} if chars else {}
    mel = LogMel(model.spec)
    refs, hyps = [], []
    for row in pl.read_parquet(args.manifest).head(args.n).iter_rows(named=True):
        m = mel(load_audio(row["audio_path"], row["offset"], row["duration"], model.spec.sample_rate))[None]
        with torch.no_grad():
            frames, n_frames, hidden, n_hidden = model.encode_all(m, torch.tensor([m.shape[1]]))
            x = hidden[0, : n_hidden[0]] if chars else frames[0, : n_frames[0]]
            best = model.ctc_head(x).argmax(-1).tolist()
        ids = [i for k, i in enumerate(best) if i != model.ids.pad and (k == 0 or i != best[k - 1])]
        hyp = "".join(letters.get(i, "") for i in ids) if chars else tok.decode(ids)
        refs.append(_words(row["text"]))
        hyps.append(_words(hyp) or "<empty>")
        if args.show:
            print(f"{refs[-1]}  ||  {hyps[-1]}")
    print(f"{args.checkpoint} {args.manifest} n={len(refs)} WER {jiwer.wer(refs, hyps):.3f} CER {jiwer.cer(refs, hyps):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
