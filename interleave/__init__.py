"""The interleave concept in one place: pure functions over Arrow batches that turn aligned
utterances and texts into the JSTIP paper's training sequences (arXiv 2607.01733, §III-B).

- `units`: word units (raw tokens over the aligned words they cover) and segment units (cut at
  silence, silence + punctuation, punctuation, every N);
- `sequences`: the paper's deterministic alternation in both variants and the token formats of
  `manifests/formats.py` as span columns; `extension`: random span samplers and layouts;
- `samples`, `sentences`: asr, text and interleaved sample rows, ids, sentence splitting;
- `batch`, `text_batch`: both passes of the stage over a batch of utterances or text records;
- `recipes`, `hashing`, `tokens`: the paper's mixtures by name, the hash-threshold selection and
  the token counts it balances; `sampling`: the extension samplers' masks.

The stage (`pipeline/stage_interleave.py`) only reads, calls these and writes.
"""
