"""WER/CER of one checkpoint's decodings on an utterance manifest, for several decoders (E11):

    python decode_sweep.py CHECKPOINT MANIFEST N WEIGHT:BEAMS [WEIGHT:BEAMS …]

WEIGHT is `transcribe`'s `ctc_weight` (0: the LM alone; > 0: joint CTC/LM beam search), BEAMS its
`num_beams`; N the first N utterances. Used to choose the joint decoder's weight and beam on a
development set (`dev_set.py`), never on the test speech. Prints one line per decoder and three
hypotheses beside their references. One thread.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

import jiwer  # noqa: E402
import torch  # noqa: E402

from corpora.textnorm import normalize  # noqa: E402
from manifests.io import iter_records  # noqa: E402
from manifests.schema import Utterance  # noqa: E402
from trainer.checkpoint import load_checkpoint  # noqa: E402
from trainer.decode import transcribe  # noqa: E402


def main(argv: list[str]) -> int:
    torch.set_num_threads(1)
    checkpoint, manifest, n, *specs = argv
    utts = list(iter_records(manifest, Utterance))[: int(n)]
    model, tok = load_checkpoint(checkpoint, "cpu")
    for spec in specs:
        weight, beams = float(spec.split(":")[0]), int(spec.split(":")[1])
        start = time.time()
        result = transcribe(model, tok, utts, batch_size=16, max_new_tokens=48, progress=False, num_beams=beams,
                            ctc_weight=weight)
        refs = [normalize(h.reference) for h in result.hypotheses]
        hyps = [normalize(h.hypothesis) for h in result.hypotheses]
        print(f"w={weight} beams={beams} WER {jiwer.wer(refs, hyps):.3f} CER {jiwer.cer(refs, hyps):.3f} "
              f"{time.time() - start:.1f}s", flush=True)
        for h in result.hypotheses[:3]:
            print("   ", h.reference, "|", h.hypothesis)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
