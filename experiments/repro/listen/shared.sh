#!/usr/bin/env bash
# The shared parts of the listen experiments (issue 18), in a scratch directory W (default /tmp/r18) holding
# copies of experiments/repro/params.yaml and pretrain/: the world corpus without the TTS and probe audio
# (the ASR-only row's WER/EER needs neither), the ASR training and test manifests, the stage-0 LM.
# The same commands as experiments/repro/dvc.yaml's shared stages; one process at a time, one thread, nice 15.
set -euo pipefail
W=${W:-/tmp/r18}
cd "$W"
export OMP_NUM_THREADS=1
run() { echo "+ $*"; nice -n 15 /usr/bin/time -f "%e s wall %U s user %M KiB" "$@"; }
[ -f data/world/test.jsonl ] || run jstip world-corpus --params params.yaml --tts-audio false --probe-audio false
run jstip prepare --params params.yaml
run jstip prepare --params params.yaml --corpus data/world/test.jsonl --corpus-name world_test \
  --domain-text "" --utterances data/test_utterances.parquet --texts data/test_texts.parquet \
  --rejected data/test_rejected.parquet --metrics metrics/prepare_test.json --report reports/prepare_test.json
run jstip prepare --params params.yaml --corpus "" --domain-text data/world/world_text.txt \
  --utterances data/lm_utterances.parquet --texts data/world_texts.parquet --rejected data/lm_rejected.parquet \
  --metrics metrics/prepare_lm.json --report reports/prepare_lm.json
run jstip interleave --params pretrain/lm.yaml
run jstip train --params pretrain/lm.yaml
run jstip interleave --params pretrain/encoder.yaml
