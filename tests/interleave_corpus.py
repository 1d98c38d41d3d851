"""A tiny aligned corpus for the interleave tests: espeak-ng speech with its true word times."""
from __future__ import annotations

from pathlib import Path

from manifests.audio import write_audio
from manifests.io import write_records, write_table
from manifests.schema import ALIGN_FAILED, ALIGN_OK, ALIGN_PARTIAL, Alignment, Text, Utterance, WordSpan, to_table
from corpora.textnorm import normalize

SENTENCES = [
    "The patient was given metformin, twice a day.",
    "Blood pressure rose to one hundred and forty; the nurse called the doctor.",
    "Take two tablets after dinner. Then rest for an hour.",
    "The scan showed no sign of a fracture, so she went home.",
    "He reported chest pain, shortness of breath and mild fever.",
    "Please repeat the dose in the morning.",
]
TEXTS = [
    "Amoxicillin is given for bacterial infections.",
    "The cardiologist ordered an echocardiogram.",
    "Warfarin needs regular blood tests.",
    "Insulin doses depend on the glucose level.",
    "Ibuprofen can upset the stomach.",
    "The patient was discharged on aspirin.",
    "Chest X rays were clear.",
    "Lisinopril lowers blood pressure.",
    "A biopsy confirmed the diagnosis.",
    "Hydration and rest were advised.",
]


def make_corpus(root: Path, spoken, failed: bool = True, align_rows: int = 0, partial: bool = False) -> dict[str, str]:
    """Write utterances (+ one held out, + one failed alignment), alignments and texts; their paths.

    Alignments go to one file without row metadata (older alignments: the stage joins them by id),
    or, with `align_rows`, to files of that many utterance rows with `utt_rows` as `jstip align` writes."""
    utterances, alignments = [], []
    for i, sentence in enumerate(SENTENCES):
        audio, spoken_words = spoken(sentence)
        path = root / "audio" / f"u{i}.wav"
        write_audio(audio, path, 16000)
        words = []
        for w in spoken_words:
            pieces = normalize(w.text).split()
            step = (w.end - w.start) / max(len(pieces), 1)
            words += [WordSpan(p, w.start + k * step, w.start + (k + 1) * step, 1.0) for k, p in enumerate(pieces)]
        utt_id = f"u{i}"
        split = "test" if i == len(SENTENCES) - 1 else "train"
        utterances.append(Utterance(utt_id, str(path), 0.0, len(audio) / 16000, 16000, "s", sentence,
                                    " ".join(w.word for w in words), "t", split))
        if failed and i == 4:
            alignments.append(Alignment(utt_id, "espeak", ALIGN_FAILED, "no alignment found", ()))
        elif partial and i == 3:  # words placed, but speech that no word explains
            alignments.append(Alignment(utt_id, "espeak", ALIGN_PARTIAL, "unexplained_speech: 1.2 s", tuple(words)))
        else:
            alignments.append(Alignment(utt_id, "espeak", ALIGN_OK, "", tuple(words)))
    texts = [Text(f"t{i}", t, normalize(t), "domain") for i, t in enumerate(TEXTS)]
    paths = {"utterances": str(root / "utterances.parquet"), "alignments": str(root / "alignments"),
             "texts": str(root / "texts.parquet")}
    write_records(utterances, Utterance, paths["utterances"])
    if align_rows:
        for k, lo in enumerate(range(0, len(alignments), align_rows)):
            part = alignments[lo: lo + align_rows]
            write_table(to_table(part, Alignment), Path(paths["alignments"]) / f"part-{k:05d}.parquet",
                        metadata={"utt_rows": f"{lo}:{lo + len(part)}"})
    else:
        write_records(alignments, Alignment, Path(paths["alignments"]) / "part-00000.parquet")
    write_records(texts, Text, paths["texts"])
    return paths
