"""A controlled "world" for reproducing the JSTIP paper's Tables I and III (issue 11).

The paper's effect needs a textual prior: its 7B LM knows medical terms from text, ASR training
erodes that knowledge, and interleaving is claimed to keep it. This package builds a small domain
in which that chain can be tested and the answer is not built in:

- `lexicon`: invented drug, condition and procedure names (spelling not recoverable from sound
  alone), split at random into a *rare* tier (never heard in ASR training speech) and a *common* one;
- `facts`: which drug treats which condition, doses, which procedure diagnoses what;
- `templates` and `render`: sentences in four styles (textbook, abstract, dictation, questions),
  with entity annotations as character spans of the written text;
- `plan`: every text set of the experiment (stage-0 world text, domain text, TTS transcripts, ASR
  training speech, test speech) with its controls checked, before any audio exists;
- `probes`: multiple-choice (MMLU form) and open questions over held-out facts;
- `speech`: espeak-ng synthesis with voices, rates, pitch and noise, and the true word times.

`pipeline/stage_world_corpus.py` (`jstip world-corpus`) writes it all.
"""
